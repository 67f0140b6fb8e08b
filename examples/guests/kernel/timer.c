/* SPDX-License-Identifier: MIT */
/*
 * timer.c - the interrupt mode (`--timer KIND`, lib/timer.h): the local
 * APIC, the IOAPIC and the PIT, the tick and IPI handlers, and the system
 * calls that start them, wait for them and send IPIs.
 *
 * The LAPIC (0xfee00000) and the IOAPIC (0xfec00000) lie in the MMIO hole,
 * which the VMM leaves unmapped: the first start maps each with one 2 MiB
 * supervisor page (PCD|PWT) in the page directory that already maps the
 * device window; the hole's entries there were not present, so no TLB
 * holds them. CPU 0 takes TIMER_HZ ticks (LAPIC periodic, TSC-deadline
 * re-armed by the handler, or PIT channel 0 through IOAPIC pin 2, where
 * the MADT's override puts IRQ0; the PIC is masked) and the IPIs; CPU 1
 * takes a pacing timer at TIMER_IPI_HZ (the LAPIC, periodic or deadline).
 *
 * Every instruction here is emulated by the host (~700 ns), so a tick is
 * a handful of stores: the count, the heartbeat page, the EOI, then the
 * heartbeat's MMIO store, after the EOI so that the exit it causes cannot
 * find the interrupt still in service. A tick is counted once however
 * often it is delivered: a deadline tick only when the deadline has
 * passed (a second delivery finds it re-armed in the future); the other
 * sources are edge-triggered. Ring 0 runs with IF clear except inside
 * SYS_TIMER_WAIT (sti; hlt); ring 3 runs with IF set once a CPU started
 * its timer. Each timer_page field has one writer CPU (lib/timer.h).
 */
#include "kernel/kernel.h"
#include "lib/syscall_nr.h"
#include "lib/testdev.h"
#include "lib/timer.h"
#include "lib/x86.h"

struct timer_page timer_page __attribute__((aligned(4096)));

/* kvmclock's per-vCPU time page (pvclock), registered by CPU 0 only. */
struct pvclock_page pvclock_page __attribute__((aligned(4096)));

#define LAPIC_BASE  0xfee00000ULL
#define IOAPIC_BASE 0xfec00000ULL
#define LAPIC_ID    0x020
#define LAPIC_EOI   0x0b0
#define LAPIC_SVR   0x0f0
#define LAPIC_ICR   0x300
#define LAPIC_ICR2  0x310
#define LAPIC_LVTT  0x320
#define LAPIC_LINT0 0x350
#define LAPIC_LINT1 0x360
#define LAPIC_TMICT 0x380
#define LAPIC_TDCR  0x3e0

#define LVT_MASKED	  0x10000
#define LVTT_PERIODIC	  0x20000
#define LVTT_TSC_DEADLINE 0x40000
#define SVR_ENABLE	  0x100
#define TDCR_DIV1	  0xb
#define LAPIC_NS_PER_TICK 1 /* KVM's APIC bus runs at 1 GHz */

#define MSR_TSC_DEADLINE	0x6e0
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01
#define CPUID_TSC_DEADLINE	(1U << 24) /* leaf 1, ECX */
#define CPUID_KVM_CLOCK2	(1U << 3)  /* leaf 0x40000001, EAX */

#define PIT_CMD	       0x43
#define PIT_CH0	       0x40
#define PIT_HZ	       1193182ULL
#define PIT_DIVISOR    ((PIT_HZ + TIMER_HZ / 2) / TIMER_HZ)
#define PIT_CH0_MODE2  0x34 /* channel 0, lobyte/hibyte, rate generator */
#define PIC1_DATA      0x21
#define PIC2_DATA      0xa1
#define PIT_IOAPIC_PIN 2

#define PD_2M_FLAGS (PTE_P | PTE_W | PTE_PS | PTE_PCD | PTE_PWT)
#define PTE_ADDR    0x000ffffffffff000ULL

/* Per CPU (0 and 1), written by that CPU's ring 0 only. */
static struct {
	uint64_t period;   /* TSC cycles per tick */
	uint64_t deadline; /* TSC-deadline mode: the armed deadline */
	uint32_t kind;
} tcpu[2];

static uint64_t tsc_khz;

static void lapic_write(uint32_t reg, uint32_t val)
{
	mmio_write32(LAPIC_BASE + reg, val);
}

static void ioapic_write(uint32_t reg, uint32_t val)
{
	mmio_write32(IOAPIC_BASE, reg);
	mmio_write32(IOAPIC_BASE + 0x10, val);
}

/* Map the IOAPIC's and the LAPIC's 2 MiB; false if the walk fails. */
static bool timer_map_apics(void)
{
	uint64_t *t = (uint64_t *)(uintptr_t)(x86_read_cr3() & PTE_ADDR);

	if (!(t[0] & PTE_P))
		return false;
	t = (uint64_t *)(uintptr_t)(t[0] & PTE_ADDR);
	if (!(t[IOAPIC_BASE >> 30] & PTE_P) || (t[IOAPIC_BASE >> 30] & PTE_PS))
		return false;
	t = (uint64_t *)(uintptr_t)(t[IOAPIC_BASE >> 30] & PTE_ADDR);
	t[(IOAPIC_BASE >> 21) & 511] = IOAPIC_BASE | PD_2M_FLAGS;
	t[(LAPIC_BASE >> 21) & 511] = LAPIC_BASE | PD_2M_FLAGS;
	return true;
}

static bool timer_has_deadline(void)
{
	uint32_t r[4];

	x86_cpuid(1, r);
	return r[2] & CPUID_TSC_DEADLINE;
}

/* kvmclock for ring 3, when KVM offers it (CPUID 0x40000000 "KVMKVMKVM"). */
static void timer_kvmclock_init(void)
{
	uint32_t r[4];

	x86_cpuid(0x40000000, r);
	if (r[1] != 0x4b4d564b || r[0] < 0x40000001)
		return;
	x86_cpuid(0x40000001, r);
	if (r[0] & CPUID_KVM_CLOCK2)
		x86_wrmsr(MSR_KVM_SYSTEM_TIME_NEW,
			  (uint64_t)(uintptr_t)&pvclock_page | 1);
}

/* The LAPIC on, LINT0/LINT1 masked (no ExtINT from the PIC), timer off. */
static void timer_lapic_init(void)
{
	lapic_write(LAPIC_SVR, SVR_ENABLE | TIMER_VEC_SPURIOUS);
	lapic_write(LAPIC_LINT0, LVT_MASKED);
	lapic_write(LAPIC_LINT1, LVT_MASKED);
	lapic_write(LAPIC_TDCR, TDCR_DIV1);
}

static void timer_arm_deadline(unsigned int cpu, uint64_t now)
{
	uint64_t next = tcpu[cpu].deadline + tcpu[cpu].period;

	/* Behind by a tick or more (a pause): the next one from now. */
	if (next <= now)
		next = now + tcpu[cpu].period;
	tcpu[cpu].deadline = next;
	x86_wrmsr(MSR_TSC_DEADLINE, next);
}

static void timer_pit_start(void)
{
	x86_outb(PIC1_DATA, 0xff);
	x86_outb(PIC2_DATA, 0xff);
	/* Pin 2, edge, active high, fixed, physical, to this LAPIC. */
	ioapic_write(0x11 + 2 * PIT_IOAPIC_PIN,
		     mmio_read32(LAPIC_BASE + LAPIC_ID) & 0xff000000);
	ioapic_write(0x10 + 2 * PIT_IOAPIC_PIN, TIMER_VEC_TICK);
	x86_outb(PIT_CMD, PIT_CH0_MODE2);
	x86_outb(PIT_CH0, PIT_DIVISOR & 0xff);
	x86_outb(PIT_CH0, PIT_DIVISOR >> 8);
}

/* Start this CPU's timer of kind at hz; false if it cannot. */
static bool timer_start(unsigned int cpu, uint32_t kind, uint32_t hz)
{
	uint64_t now = x86_rdtsc();

	if (cpu > 1 || !tsc_khz || !timer_map_apics())
		return false;
	if (kind == TIMER_TSC_DEADLINE && !timer_has_deadline())
		return false;
	tcpu[cpu].kind = kind;
	tcpu[cpu].period = tsc_khz * 1000 / hz;
	timer_lapic_init();
	switch (kind) {
	case TIMER_LAPIC:
		lapic_write(LAPIC_LVTT, LVTT_PERIODIC | TIMER_VEC_TICK);
		lapic_write(LAPIC_TMICT, 1000000000 / LAPIC_NS_PER_TICK / hz);
		return true;
	case TIMER_TSC_DEADLINE:
		lapic_write(LAPIC_LVTT, LVTT_TSC_DEADLINE | TIMER_VEC_TICK);
		tcpu[cpu].deadline = now;
		timer_arm_deadline(cpu, now);
		return true;
	case TIMER_PIT:
		tcpu[cpu].period = tsc_khz * 1000 * PIT_DIVISOR / PIT_HZ;
		timer_pit_start();
		return true;
	}
	return false;
}

/* SYS_TIMER_START on CPU 0, SYS_TIMER_PACE on CPU 1. */
static uint64_t timer_sys_start(struct trap_frame *f, bool pace)
{
	unsigned int cpu = (unsigned int)trap_cpu(f);
	uint32_t kind = (uint32_t)f->rdi;

	if (cpu != (pace ? 1 : 0))
		return SYS_EINVAL;
	tsc_khz = f->rsi;
	if (pace && kind == TIMER_PIT)
		kind = TIMER_LAPIC; /* one PIT: CPU 1 paces on its LAPIC */
	if (!timer_start(cpu, kind, pace ? TIMER_IPI_HZ : TIMER_HZ))
		return SYS_EINVAL;
	if (!pace) {
		timer_kvmclock_init();
		timer_page.period_tsc = tcpu[0].period;
		timer_page.start_tsc = x86_rdtsc();
		__atomic_store_n(&timer_page.kind, kind, __ATOMIC_RELEASE);
	}
	f->rflags |= RFLAGS_IF; /* ring 3 runs with interrupts on */
	return 0;
}

/*
 * The tick of CPU 0: count, heartbeat page, EOI, heartbeat. The TSC and
 * kvmclock it logs are one pair (pvclock_read). A read that finds
 * PVCLOCK_GUEST_STOPPED (the first after a migration) names its tick in
 * stopped_tick and clears the flag, as Linux does: KVM rewrites the page
 * only on this vCPU's entries, never while the guest runs.
 */
static void timer_tick(void)
{
	struct guest_hb_page *hb = (struct guest_hb_page *)GUEST_HB_PAGE_GPA;
	uint64_t now, kc, seq, lock;
	uint8_t flags;

	kc = pvclock_read(&pvclock_page, &now, &flags);

	if (tcpu[0].kind == TIMER_TSC_DEADLINE) {
		if (now < tcpu[0].deadline) {
			timer_page.spurious++;
			lapic_write(LAPIC_EOI, 0);
			return;
		}
		timer_arm_deadline(0, now);
	}
	seq = timer_page.ticks + 1;
	timer_page.tick_tsc = now;
	timer_page.tsc_log[seq % TIMER_LOG] = now;
	timer_page.kc_log[seq % TIMER_LOG] = kc;
	if (flags & PVCLOCK_GUEST_STOPPED) {
		pvclock_page.flags &= (uint8_t)~PVCLOCK_GUEST_STOPPED;
		timer_page.stopped_tick = seq;
	}
	__atomic_store_n(&timer_page.ticks, seq, __ATOMIC_RELEASE);
	lock = hb->lock;
	__atomic_store_n(&hb->lock, lock + 1, __ATOMIC_RELEASE);
	__atomic_store_n(&hb->tsc, now, __ATOMIC_RELEASE);
	__atomic_store_n(&hb->seq, seq, __ATOMIC_RELEASE);
	__atomic_store_n(&hb->lock, lock + 2, __ATOMIC_RELEASE);
	lapic_write(LAPIC_EOI, 0);
	testdev_heartbeat((uint32_t)seq);
}

/* CPU 1's pacing tick: count, re-arm, EOI. */
static void timer_pace(void)
{
	uint64_t now = x86_rdtsc();

	if (tcpu[1].kind == TIMER_TSC_DEADLINE) {
		if (now < tcpu[1].deadline) {
			lapic_write(LAPIC_EOI, 0);
			return;
		}
		timer_arm_deadline(1, now);
	}
	timer_page.pace_ticks++;
	lapic_write(LAPIC_EOI, 0);
}

void timer_interrupt(struct trap_frame *f)
{
	int cpu = trap_cpu(f);

	switch (f->vector) {
	case TIMER_VEC_TICK:
		if (cpu == 0)
			timer_tick();
		else
			timer_pace();
		return;
	case TIMER_VEC_IPI:
		timer_page.ipi_received++;
		lapic_write(LAPIC_EOI, 0);
		return;
	case TIMER_VEC_SPURIOUS:
		return; /* no EOI for the spurious vector */
	}
	trap_panic(f);
}

/* Halt until this CPU's count moves; interrupts on only in sti; hlt. */
static uint64_t timer_sys_wait(struct trap_frame *f)
{
	int cpu = trap_cpu(f);
	volatile uint64_t *count =
		cpu == 0 ? &timer_page.ticks : &timer_page.pace_ticks;
	uint64_t seen = *count;

	if ((cpu != 0 && cpu != 1) || !tcpu[cpu].kind)
		return SYS_EINVAL;
	while (*count == seen)
		asm volatile("sti; hlt; cli" ::: "memory");
	return *count;
}

/* A fixed IPI from CPU 1 to CPU 0 (physical destination 0). */
static uint64_t timer_sys_ipi(struct trap_frame *f)
{
	if (trap_cpu(f) != 1 || !tcpu[1].kind)
		return SYS_EINVAL;
	/* Counted first: received never runs ahead of sent. */
	__atomic_store_n(&timer_page.ipi_sent, timer_page.ipi_sent + 1,
			 __ATOMIC_RELEASE);
	lapic_write(LAPIC_ICR2, 0);
	lapic_write(LAPIC_ICR, TIMER_VEC_IPI);
	return timer_page.ipi_sent;
}

uint64_t timer_syscall(struct trap_frame *f, uint64_t nr)
{
	switch (nr) {
	case SYS_TIMER_START:
		return timer_sys_start(f, false);
	case SYS_TIMER_PACE:
		return timer_sys_start(f, true);
	case SYS_TIMER_WAIT:
		return timer_sys_wait(f);
	case SYS_IPI_SEND:
		return timer_sys_ipi(f);
	}
	return SYS_EINVAL;
}
