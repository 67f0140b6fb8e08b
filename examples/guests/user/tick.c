/* SPDX-License-Identifier: MIT */
/*
 * tick.c - the heartbeat and the mailbox, called from every workload loop.
 *
 * tick() sends heartbeat number 1, 2, 3, ... to the test device once per
 * millisecond of TSC time: the next one is due 1 ms after the previous one
 * was sent, so beats never bunch up, and after a long gap (the VM was
 * paused) exactly one goes out. The VMM timestamps each one to measure
 * downtime, so a number is never skipped or repeated.
 * It then polls the host's mailbox in the boot-info page: a new seq means a
 * request (verify the dirty region, stop the current workload), which is
 * carried out before seq is stored into ack and MARK_REQ_DONE is posted.
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
	uint32_t seq;	  /* last heartbeat number sent */
	uint32_t mb_done; /* last mailbox seq handled */
	bool stop;	  /* STOP_WORKLOAD received for this workload */
} tk;

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
}

uint64_t tick_ms_to_tsc(uint64_t ms)
{
	return ms * tk.period;
}

uint64_t tick_tsc_hz(void)
{
	return tk.period * 1000;
}

void tick_workload_begin(void)
{
	tk.stop = false;
}

static void tick_heartbeat_at(uint64_t now)
{
	/* Not due yet; a TSC that went backwards (next too far ahead) is. */
	if (now < tk.next && tk.next - now <= tk.period)
		return;
	testdev_heartbeat(++tk.seq);
	tk.next = now + tk.period;
}

static void tick_request(uint32_t seq, uint32_t req)
{
	switch (req) {
	case GUEST_REQ_VERIFY:
		verify_current();
		break;
	case GUEST_REQ_STOP_WORKLOAD:
		tk.stop = true;
		break;
	default:
		console_printf("guest: mailbox seq %u: unknown request %u, "
			       "ignored\n",
			       seq, req);
		break;
	}
}

static void tick_poll_mailbox(void)
{
	struct boot_mailbox *mb = &tk.bi->mailbox;
	uint32_t seq = __atomic_load_n(&mb->seq, __ATOMIC_ACQUIRE);

	if (seq == tk.mb_done)
		return;
	tk.mb_done = seq;
	tick_request(seq, __atomic_load_n(&mb->req, __ATOMIC_ACQUIRE));
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
