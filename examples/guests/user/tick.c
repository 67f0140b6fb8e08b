/* SPDX-License-Identifier: MIT */
/*
 * tick.c - the heartbeat and the mailbox, called from every workload loop.
 *
 * tick() sends heartbeat number 1, 2, 3, ... to the test device once per
 * millisecond of TSC time: the next one is due 1 ms after the previous one
 * was sent, so beats never bunch up, and after a long gap (the VM was
 * paused) exactly one goes out. The VMM timestamps each one to measure
 * downtime, so a number is never skipped or repeated. Each beat also goes,
 * with its TSC, into the heartbeat page (struct guest_hb_page at
 * GUEST_HB_PAGE_GPA, under its seqlock) first: a host process that maps
 * guest RAM reads it there, the only channel when there is no test device.
 * Each beat carries the guest's own stall before it: the longest TSC step
 * between two consecutive calls since the previous beat (a pause or a
 * migration shows there at the first beat after the resume, as the guest
 * saw it, without the beats' 1 ms cadence; the loops call tick() every few
 * microseconds). The test device gets it in the same exit (BEAT_STALL).
 * It then polls the host's mailbox in the boot-info page: a new seq means a
 * request (verify the dirty region, stop the current workload, write the
 * page set of a touch round), which is carried out before its result is
 * stored into mailbox.result, seq into ack, and MARK_REQ_DONE is posted.
 * GUEST_REQ_TOUCH goes to the handler the `touch` workload installs while it
 * runs; without one it does nothing and its result is 0. Handling a request
 * writes guest RAM only in .data/.bss, the stack and the mailbox (and the
 * touch handler in its region): `touch` depends on that.
 * With `--timer` the heartbeat comes from ring 0's tick interrupt instead
 * (timer.c) and tick() watches the clocks where it would beat.
 * Only CPU 0 ticks, so the state here needs no lock.
 */
#include "lib/testdev.h"
#include "lib/x86.h"
#include "user/user.h"

#define TICK_DEFAULT_KHZ 1000000 /* if the VMM leaves tsc_khz at 0 */

static struct {
	struct boot_info *bi;
	uint64_t period;  /* TSC ticks per millisecond */
	uint64_t next;	  /* TSC of the next heartbeat; 0: send now */
	uint64_t prev;	  /* TSC of the previous call; 0: none yet */
	uint64_t stall;	  /* longest step between calls since the beat */
	uint32_t seq;	  /* last heartbeat number sent */
	uint32_t mb_done; /* last mailbox seq handled */
	bool stop;	  /* STOP_WORKLOAD received for this workload */
	uint64_t (*touch)(uint64_t arg); /* GUEST_REQ_TOUCH, or NULL */
	bool testdev;			 /* MMIO heartbeats too */
} tk;

#define TICK_HB ((struct guest_hb_page *)GUEST_HB_PAGE_GPA)

void tick_init(struct boot_info *bi)
{
	tk.bi = bi;
	tk.period = bi->tsc_khz;
	if (!tk.period) {
		console_printf("guest: boot info has no TSC frequency, "
			       "assuming %u kHz\n",
			       TICK_DEFAULT_KHZ);
		tk.period = TICK_DEFAULT_KHZ;
	}
	tk.mb_done = __atomic_load_n(&bi->mailbox.ack, __ATOMIC_ACQUIRE);
	tk.testdev = guest_testdev();
	/* RAM under another VMM's firmware need not be zero: start clean. */
	TICK_HB->lock = 0;
	TICK_HB->seq = 0;
	TICK_HB->tsc = 0;
	TICK_HB->tsc_khz = bi->tsc_khz;
	__atomic_store_n(&TICK_HB->magic, GUEST_HB_MAGIC, __ATOMIC_RELEASE);
}

uint64_t tick_ms_to_tsc(uint64_t ms)
{
	return ms * tk.period;
}

uint64_t tick_tsc_hz(void)
{
	return tk.period * 1000;
}

uint64_t tick_tsc_to_ns(uint64_t tsc)
{
	return tsc * 1000000 / tk.period;
}

/*
 * Installing a handler also stores mailbox.result once (the host reads it
 * only after an ack), so that the first ack of a round does not have to set
 * the dirty bit of the boot-info page in the page tables.
 */
void tick_set_touch(uint64_t (*fn)(uint64_t arg))
{
	tk.touch = fn;
	if (fn)
		tk.bi->mailbox.result = 0;
}

void tick_workload_begin(void)
{
	tk.stop = false;
}

/* One seqlock write section; the page's lock is ours alone (CPU 0). */
static void tick_hb_page(uint64_t seq, uint64_t tsc, uint64_t stall)
{
	struct guest_hb_page *hb = TICK_HB;
	uint64_t lock = hb->lock;

	__atomic_store_n(&hb->lock, lock + 1, __ATOMIC_RELEASE);
	__atomic_store_n(&hb->tsc, tsc, __ATOMIC_RELEASE);
	__atomic_store_n(&hb->stall, stall, __ATOMIC_RELEASE);
	__atomic_store_n(&hb->seq, seq, __ATOMIC_RELEASE);
	__atomic_store_n(&hb->lock, lock + 2, __ATOMIC_RELEASE);
}

/* The step since the previous call, kept if it is the longest so far. */
static void tick_note_step(uint64_t now)
{
	if (tk.prev && now > tk.prev && now - tk.prev > tk.stall)
		tk.stall = now - tk.prev;
	tk.prev = now;
}

/* A stall of stall TSC cycles in microseconds, saturated to 32 bits. */
static uint32_t tick_stall_us(uint64_t stall)
{
	uint64_t us = guest_hb_stall_us(stall, tk.period);

	return us > 0xffffffffULL ? 0xffffffffU : (uint32_t)us;
}

static void tick_heartbeat_at(uint64_t now)
{
	/* With --timer, ring 0 beats from the interrupt; ring 3 watches. */
	if (timer_on()) {
		timer_watch();
		return;
	}
	tick_note_step(now);
	/* Not due yet; a TSC that went backwards (next too far ahead) is. */
	if (now < tk.next && tk.next - now <= tk.period)
		return;
	/*
	 * now was read by the caller: a pause that stopped the guest since
	 * then (a migration's lands there now and then, e.g. in the fault of
	 * a dirty-logged store) would be missing from the stall this beat
	 * carries. The TSC again, right before the beat goes out.
	 */
	now = x86_rdtsc();
	tick_note_step(now);
	tick_hb_page(++tk.seq, now, tk.stall);
	if (tk.testdev) {
		/* And after the page's store, which can fault. */
		tick_note_step(x86_rdtsc());
		testdev_beat_stall(tk.seq, tick_stall_us(tk.stall));
	}
	tk.next = now + tk.period;
	tk.stall = 0;
}

/* Carry out request req; returns what goes into mailbox.result. */
static uint64_t tick_request(uint32_t seq, uint32_t req, uint64_t arg)
{
	switch (req) {
	case GUEST_REQ_VERIFY:
		verify_current();
		break;
	case GUEST_REQ_STOP_WORKLOAD:
		tk.stop = true;
		break;
	case GUEST_REQ_TOUCH:
		if (tk.touch)
			return tk.touch(arg);
		break;
	case GUEST_REQ_TIMER_MARK:
		return timer_on() ? timer_mark(arg) : 0;
	default:
		console_printf("guest: mailbox seq %u: unknown request %u, "
			       "ignored\n",
			       seq, req);
		break;
	}
	return 0;
}

static void tick_poll_mailbox(void)
{
	struct boot_mailbox *mb = &tk.bi->mailbox;
	uint32_t seq = __atomic_load_n(&mb->seq, __ATOMIC_ACQUIRE);
	uint64_t result;

	if (seq == tk.mb_done)
		return;
	tk.mb_done = seq;
	result = tick_request(seq, mb->req, mb->arg);
	mb->result = result;
	__atomic_store_n(&mb->ack, seq, __ATOMIC_RELEASE);
	testdev_marker(MARK_REQ_DONE, seq);
}

bool tick_at(uint64_t now)
{
	tick_heartbeat_at(now);
	tick_poll_mailbox();
	return tk.stop;
}

bool tick(void)
{
	return tick_at(x86_rdtsc());
}

/* The heartbeat alone, for loops that must not recurse into a request. */
void tick_heartbeat(void)
{
	tick_heartbeat_at(x86_rdtsc());
}
