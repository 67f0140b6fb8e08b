/* SPDX-License-Identifier: MIT */
/*
 * timer.c - ring 3 of the interrupt mode (`--timer KIND`, lib/timer.h):
 * the option, CPU 1's IPI sender, the watch every tick() runs, and the
 * workloads `idle` and `timer-check`.
 *
 * With `--timer lapic|tscdeadline|pit` as the first part of the command
 * line, CPU 0 starts its 1 kHz tick (SYS_TIMER_START) before the first
 * workload: from then on ring 0 sends the heartbeats, from the interrupt,
 * and tick() only polls the mailbox and watches. CPU 1 (reading the option
 * at boot, as reader.c does) waits for CPU 0's start, starts its own
 * 100 Hz pacing timer and loops: halt until its timer fires, then send one
 * IPI to CPU 0 if CPU 0 has taken every earlier one (so that two IPIs never
 * meet in CPU 0's IRR and merge: a merge would look like a loss). CPU 1 is
 * thus almost always halted in `hlt` waiting for its timer, and a migration
 * finds it there.
 *
 * The watch (CPU 0, ring 3, at every tick()): the tick count, the TSC and
 * kvmclock must never go back (else `timer: FAIL ...`, exit 3); it keeps
 * the largest TSC step between two watches with the kvmclock step beside
 * it, and the largest TSC step between two consecutive ticks with the tick
 * that ended it: across a migration both are the pause, seen by the guest.
 * Only CPU 0 runs this file's state (CPU 1 has only its loop's locals).
 */
#include "lib/format.h"
#include "lib/string.h"
#include "lib/syscall_nr.h"
#include "lib/testdev.h"
#include "lib/timer.h"
#include "lib/x86.h"
#include "user/user.h"
#include "user/workload.h"

#define TIMER_OPT	      "--timer"
#define TIMER_CHECK_WAIT_MS   2000 /* for IPIs in flight and CPU 1's pace */
#define TIMER_CHECK_NEW_IPIS  3
#define TIMER_SLACK_TICKS     2
#define TIMER_KVMCLOCK_TOL_US 1000
#define TIMER_LONG_GAPS	      32
#define TIMER_MARK_WAIT_MS    1000 /* for the first tick after a resume */

static const char *const timer_names[] = {
	[TIMER_LAPIC] = "lapic",
	[TIMER_TSC_DEADLINE] = "tscdeadline",
	[TIMER_PIT] = "pit",
};

static struct {
	bool on;
	uint64_t tsc, kc, ticks, tick_tsc; /* the previous watch */
	uint64_t max_step, max_step_kc;	   /* TSC and kvmclock, cycles/ns */
	uint64_t max_gap, max_gap_tick;	   /* between consecutive ticks */
	/* The longest gaps between consecutive ticks: tick, TSC cycles. */
	uint64_t long_tick[TIMER_LONG_GAPS], long_gap[TIMER_LONG_GAPS];
	uint64_t mark_tick, mark_ipis; /* the last timer_mark(): IPIs sent */
} tw;

/* Keep gap (ending at tick) if it is among the longest seen. */
static void timer_note_gap(uint64_t tick, uint64_t gap)
{
	int min = 0;

	for (int i = 1; i < TIMER_LONG_GAPS; i++)
		if (tw.long_gap[i] < tw.long_gap[min])
			min = i;
	if (gap > tw.long_gap[min]) {
		tw.long_gap[min] = gap;
		tw.long_tick[min] = tick;
	}
}

uint32_t timer_kind_parse(const char *name)
{
	for (uint32_t k = TIMER_LAPIC; k <= TIMER_PIT; k++)
		if (!strcmp(name, timer_names[k]))
			return k;
	return TIMER_NONE;
}

const char *timer_kind_name(uint32_t kind)
{
	return kind >= TIMER_LAPIC && kind <= TIMER_PIT ? timer_names[kind]
							: "none";
}

static inline uint64_t timer_sys(uint64_t nr, uint64_t a0, uint64_t a1)
{
	return sys_call4(nr, a0, a1, 0, 0);
}

/* kvmclock in ns now (0 when it is not on) and the TSC it was read at. */
static uint64_t timer_kvmclock(uint64_t *tsc)
{
	uint8_t flags;

	return pvclock_read(&pvclock_page, tsc, &flags);
}

static void timer_fail(const char *what, uint64_t before, uint64_t after)
{
	console_printf("timer: FAIL %s went back: %lu -> %lu\n", what, before,
		       after);
	guest_exit(GUEST_EXIT_VERIFY);
}

/* The tick count and the TSC of that tick, as one pair. */
static uint64_t timer_ticks(uint64_t *tick_tsc)
{
	uint64_t t;

	do {
		t = __atomic_load_n(&timer_page.ticks, __ATOMIC_ACQUIRE);
		*tick_tsc = timer_page.tick_tsc;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	} while (t != timer_page.ticks);
	return t;
}

void timer_watch(void)
{
	uint64_t now, kc = timer_kvmclock(&now), tt, t = timer_ticks(&tt);

	if (now < tw.tsc)
		timer_fail("TSC", tw.tsc, now);
	if (kc < tw.kc)
		timer_fail("kvmclock", tw.kc, kc);
	if (t < tw.ticks)
		timer_fail("tick count", tw.ticks, t);
	if (now - tw.tsc > tw.max_step) {
		tw.max_step = now - tw.tsc;
		tw.max_step_kc = kc - tw.kc;
	}
	if (t == tw.ticks + 1 && tw.ticks) {
		if (tt - tw.tick_tsc > tw.max_gap) {
			tw.max_gap = tt - tw.tick_tsc;
			tw.max_gap_tick = t;
		}
	}
	tw.tsc = now;
	tw.kc = kc;
	tw.ticks = t;
	tw.tick_tsc = tt;
}

static uint64_t timer_us(uint64_t tsc);

/* Wait (up to TIMER_MARK_WAIT_MS) for a tick after the resume. */
static uint64_t timer_mark_stopped(uint64_t tick)
{
	uint64_t end = x86_rdtsc() + tick_ms_to_tsc(TIMER_MARK_WAIT_MS), s;

	while ((s = __atomic_load_n(&timer_page.stopped_tick,
				    __ATOMIC_ACQUIRE)) < tick &&
	       x86_rdtsc() < end)
		x86_pause();
	return s;
}

/*
 * GUEST_REQ_TIMER_MARK: the host names the tick it saw first after a
 * migration (the destination's first heartbeat, N); report the TSC and
 * kvmclock steps from tick N-1 to the first tick whose kvmclock read found
 * PVCLOCK_GUEST_STOPPED (S), from ring 0's logs. S is N, or N+1 when the
 * pause fell inside tick N's handler, after its stamps and before its
 * heartbeat (tick N stamped on the source, beaten on the destination).
 * Returns the TSC step in us (0: no such tick in the log).
 */
uint64_t timer_mark(uint64_t tick)
{
	uint64_t tt, last, s = timer_mark_stopped(tick), tsc, kc;

	last = timer_ticks(&tt);
	if (tick < 2 || s < tick || s > tick + 1 || s > last ||
	    last - tick >= TIMER_LOG - 1) {
		console_printf("timer: mark: tick %lu: stopped at tick %lu, "
			       "last %lu\n",
			       tick, s, last);
		return 0;
	}
	tsc = timer_page.tsc_log[s % TIMER_LOG] -
	      timer_page.tsc_log[(tick - 1) % TIMER_LOG];
	kc = timer_page.kc_log[s % TIMER_LOG] -
	     timer_page.kc_log[(tick - 1) % TIMER_LOG];
	tw.mark_tick = tick;
	tw.mark_ipis = __atomic_load_n(&timer_page.ipi_sent, __ATOMIC_ACQUIRE);
	console_printf("timer: mark tick %lu: step TSC %lu us kvmclock %lu us "
		       "to stopped tick %lu, IPIs sent %lu\n",
		       tick, timer_us(tsc), kc / 1000, s, tw.mark_ipis);
	return timer_us(tsc);
}

bool timer_on(void)
{
	return tw.on;
}

void timer_start(uint32_t kind, uint64_t tsc_khz)
{
	if (timer_sys(SYS_TIMER_START, kind, tsc_khz) == SYS_EINVAL) {
		console_printf("guest: --timer %s: not available on this "
			       "machine (TSC %lu kHz)\n",
			       timer_kind_name(kind), tsc_khz);
		guest_exit(GUEST_EXIT_USAGE);
	}
	tw.kc = timer_kvmclock(&tw.tsc);
	tw.ticks = timer_ticks(&tw.tick_tsc);
	tw.on = true;
	console_printf("timer: %s at %u Hz on cpu 0, kvmclock %s, IPIs from "
		       "cpu 1: %s\n",
		       timer_kind_name(kind), TIMER_HZ, tw.kc ? "on" : "absent",
		       guest_nr_cpus() > 1 ? "yes" : "no (one CPU)");
}

bool timer_wanted(const struct boot_info *bi)
{
	const char *s = bi->cmdline;

	while (*s == ' ' || *s == '\t')
		s++;
	return !strncmp(s, TIMER_OPT, sizeof(TIMER_OPT) - 1);
}

/* CPU 1: pace, and one IPI per pace tick while CPU 0 keeps up. */
void timer_ipi_run(const struct boot_info *bi)
{
	uint64_t kind;

	while (!(kind = __atomic_load_n(&timer_page.kind, __ATOMIC_ACQUIRE)))
		x86_pause();
	if (timer_sys(SYS_TIMER_PACE, kind, bi->tsc_khz) == SYS_EINVAL) {
		console_printf("timer: cpu 1 cannot pace with %s\n",
			       timer_kind_name((uint32_t)kind));
		sys_halt();
	}
	for (;;) {
		timer_sys(SYS_TIMER_WAIT, 0, 0);
		if (__atomic_load_n(&timer_page.ipi_received,
				    __ATOMIC_ACQUIRE) == timer_page.ipi_sent)
			timer_sys(SYS_IPI_SEND, 0, 0);
	}
}

/* ---- idle: CPU 0 halted in hlt, waiting for its tick --------------------- */

enum { IDLE_MS };

static const struct wl_flag idle_flags[] = {
	[IDLE_MS] = {.name = "ms", .min = 0, .max = 1ULL << 32},
	{0},
};

static void idle_run(const struct wl_call *c)
{
	uint64_t end = x86_rdtsc() + tick_ms_to_tsc(c->val[IDLE_MS]);
	uint64_t waits = 0;

	if (!tw.on) {
		console_printf("idle: needs --timer\n");
		guest_exit(GUEST_EXIT_USAGE);
	}
	console_printf("idle: halting until each tick\n");
	while (!tick() && (!c->given[IDLE_MS] || x86_rdtsc() < end)) {
		timer_sys(SYS_TIMER_WAIT, 0, 0);
		waits++;
	}
	console_printf("idle: woke %lu times\n", waits);
}

const struct workload wl_idle = {
	.name = "idle",
	.flags = idle_flags,
	.run = idle_run,
};

/* ---- timer-check: the report and the end-of-run checks ------------------ */

static uint64_t timer_us(uint64_t tsc)
{
	return tick_tsc_to_ns(tsc) / 1000;
}

/* Wait for IPIs in flight and for CPU 1 to send a few more. */
static bool timer_check_ipis(uint64_t *sent, uint64_t *recv)
{
	uint64_t end = x86_rdtsc() + tick_ms_to_tsc(TIMER_CHECK_WAIT_MS);
	uint64_t s0 = __atomic_load_n(&timer_page.ipi_sent, __ATOMIC_ACQUIRE);

	do {
		tick();
		*sent = __atomic_load_n(&timer_page.ipi_sent, __ATOMIC_ACQUIRE);
		*recv = timer_page.ipi_received;
		if (*sent >= s0 + TIMER_CHECK_NEW_IPIS && *sent == *recv)
			return true;
	} while (x86_rdtsc() < end);
	return false;
}

/* "timer: long gaps (tick:us) T:U ..." for the host to find its gap in. */
static void timer_print_gaps(void)
{
	char buf[640];
	size_t len = 0;

	uint64_t tt, last = timer_ticks(&tt);

	/* The gaps of the last TIMER_LOG ticks, from ring 0's log. */
	for (uint64_t t = last > TIMER_LOG ? last - TIMER_LOG + 2 : 2;
	     t <= last; t++)
		timer_note_gap(t,
			       timer_page.tsc_log[t % TIMER_LOG] -
				       timer_page.tsc_log[(t - 1) % TIMER_LOG]);
	for (int i = 0; i < TIMER_LONG_GAPS; i++)
		if (tw.long_gap[i])
			len += fmt_snprintf(buf + len, sizeof(buf) - len,
					    " %lu:%lu", tw.long_tick[i],
					    timer_us(tw.long_gap[i]));
	buf[len] = '\0';
	console_printf("timer: long gaps (tick:us)%s\n", buf);
}

static void timer_check_run(const struct wl_call *c)
{
	uint64_t now = x86_rdtsc(), tt, ticks = timer_ticks(&tt), sent = 0,
		 recv = 0, elapsed, expect, step_us, kc_us, bad = 0;
	bool ipis_ok;

	(void)c;
	if (!tw.on) {
		console_printf("timer-check: needs --timer\n");
		guest_exit(GUEST_EXIT_USAGE);
	}
	ipis_ok = guest_nr_cpus() < 2 || timer_check_ipis(&sent, &recv);
	elapsed = now - timer_page.start_tsc;
	expect = elapsed / timer_page.period_tsc;
	step_us = timer_us(tw.max_step);
	kc_us = tw.max_step_kc / 1000;
	console_printf("timer: %s ticks %lu in %lu us (lost %ld), max tick gap "
		       "%lu us at tick %lu, spurious %lu\n",
		       timer_kind_name((uint32_t)timer_page.kind), ticks,
		       timer_us(elapsed), (long)(expect - ticks),
		       timer_us(tw.max_gap), tw.max_gap_tick,
		       timer_page.spurious);
	console_printf("timer: largest step TSC %lu us kvmclock %lu us, IPIs "
		       "sent %lu received %lu, cpu 1 paced %lu\n",
		       step_us, kc_us, sent, recv, timer_page.pace_ticks);
	if (ticks > expect + TIMER_SLACK_TICKS)
		bad |= 1, console_printf("timer: FAIL more ticks than time\n");
	if (!ipis_ok)
		bad |= 2, console_printf("timer: FAIL IPIs sent %lu received "
					 "%lu\n",
					 sent, recv);
	if (tw.kc && (step_us > kc_us + TIMER_KVMCLOCK_TOL_US ||
		      kc_us > step_us + TIMER_KVMCLOCK_TOL_US))
		bad |= 4, console_printf("timer: FAIL kvmclock and TSC steps "
					 "differ\n");
	timer_print_gaps();
	if (tw.mark_tick)
		console_printf("timer: IPIs sent since the mark at tick %lu: "
			       "%lu\n",
			       tw.mark_tick, sent - tw.mark_ipis);
	testdev_marker(MARK_RESULT, (uint32_t)bad);
	if (bad)
		guest_exit(GUEST_EXIT_VERIFY);
	console_printf("timer: ok\n");
}

const struct workload wl_timer_check = {
	.name = "timer-check",
	.flags = idle_flags + 1, /* none */
	.run = timer_check_run,
};
