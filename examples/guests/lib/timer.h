/* SPDX-License-Identifier: MIT */
/*
 * timer.h - the interrupt mode of the guest (`--timer KIND`), shared by
 * ring 0 (kernel/timer.c: the timers, the handlers, the IPIs) and ring 3
 * (user/timer.c: start, the IPI sender, the checks).
 *
 * Ring 0 counts into struct timer_page, which ring 3 reads directly (all
 * RAM is mapped user-readable): every field has one writer, stated below,
 * and is read with atomic loads. Vectors: TIMER_VEC_TICK for the periodic
 * timer of CPU 0 and the pacing timer of CPU 1, TIMER_VEC_IPI for CPU 1's
 * fixed IPIs to CPU 0, TIMER_VEC_SPURIOUS for the LAPIC's spurious vector.
 */
#ifndef GUEST_TIMER_H
#define GUEST_TIMER_H

#include <stdint.h>

enum timer_kind {
	TIMER_NONE = 0,
	TIMER_LAPIC = 1,	/* LAPIC periodic, 1 GHz bus, divide by 1 */
	TIMER_TSC_DEADLINE = 2, /* LAPIC TSC-deadline, re-armed per tick */
	TIMER_PIT = 3,		/* PIT channel 0, IRQ0 -> IOAPIC pin 2 */
};

#define TIMER_VEC_TICK	   32
#define TIMER_VEC_IPI	   33
#define TIMER_VEC_SPURIOUS 47
#define TIMER_VECTORS	   48 /* IDT entries: exceptions and these */

#define TIMER_HZ     1000 /* CPU 0's tick */
#define TIMER_IPI_HZ 100  /* CPU 1's pace: at most one IPI per period */

#define TIMER_LOG 8192 /* ticks whose TSC the page keeps (8 s) */

struct timer_page {
	/* Written by CPU 0's ring 0 (tick handler, IPI handler). */
	volatile uint64_t ticks;    /* tick interrupts taken: 1, 2, ... */
	volatile uint64_t tick_tsc; /* TSC at the last counted tick */
	volatile uint64_t ipi_received;
	volatile uint64_t spurious; /* tick deliveries not counted */
	/* Written by CPU 1's ring 0 (pacing timer, SYS_IPI_SEND). */
	volatile uint64_t pace_ticks;
	volatile uint64_t ipi_sent;
	/* Written once by SYS_TIMER_START on CPU 0. */
	volatile uint64_t kind;
	volatile uint64_t start_tsc;
	volatile uint64_t period_tsc; /* TSC cycles per tick */
	/* Written by CPU 0's tick: the TSC of tick n at [n % TIMER_LOG]. */
	volatile uint64_t tsc_log[TIMER_LOG];
	/* ... and its kvmclock (ns; 0 without kvmclock) at kc_log[n % ...]. */
	volatile uint64_t kc_log[TIMER_LOG];
	/*
	 * Written by CPU 0's tick: the last tick whose kvmclock read found
	 * PVCLOCK_GUEST_STOPPED (the first after a migration's resume).
	 */
	volatile uint64_t stopped_tick;
};

/* kvmclock's time page (struct pvclock_vcpu_time_info), written by KVM. */
struct pvclock_page {
	volatile uint32_t version; /* odd while KVM updates the page */
	uint32_t pad0;
	volatile uint64_t tsc_timestamp;
	volatile uint64_t system_time; /* ns at tsc_timestamp */
	volatile uint32_t mul;
	volatile int8_t shift;
	volatile uint8_t flags;
	uint8_t pad[2];
};

#define PVCLOCK_GUEST_STOPPED 0x02 /* flags: set by KVM_KVMCLOCK_CTRL */

/*
 * kvmclock in ns now, in *tsc the TSC it was computed at and in *flags the
 * page's flags of that version (0 when kvmclock is off; *tsc is set either
 * way). The TSC is read inside the
 * version loop, as the pvclock ABI wants: KVM rewrites the page on a VM
 * entry (after a migration: the first one on the destination), and a TSC
 * read before that exit paired with the page after it is a TSC older than
 * tsc_timestamp, whose difference wraps to ~2^64 cycles (measured: a TSC
 * read on the source before the pause, the page of the destination).
 * lfence keeps rdtsc after the version load.
 */
static inline uint64_t pvclock_read(const struct pvclock_page *p, uint64_t *tsc,
				    uint8_t *flags)
{
	uint32_t v, lo, hi;
	uint8_t f;
	uint64_t t, delta, ns;

	do {
		v = __atomic_load_n(&p->version, __ATOMIC_ACQUIRE);
		asm volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi)::"memory");
		t = (uint64_t)hi << 32 | lo;
		delta = t - p->tsc_timestamp;
		if (p->shift < 0)
			delta >>= -p->shift;
		else
			delta <<= p->shift;
		ns = p->system_time +
		     (uint64_t)(((unsigned __int128)delta * p->mul) >> 32);
		f = p->flags;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	} while ((v & 1) || v != p->version);
	*tsc = t;
	*flags = v ? f : 0;
	return v ? ns : 0;
}

/* ring 0's pages (kernel/timer.c), read by ring 3 */
extern struct timer_page timer_page;
extern struct pvclock_page pvclock_page; /* version 0: no kvmclock */

#endif /* GUEST_TIMER_H */
