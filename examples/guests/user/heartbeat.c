/* SPDX-License-Identifier: MIT */
/*
 * heartbeat.c - the `heartbeat [--ms N]` workload: only the 1 kHz tick.
 *
 * It spins on tick(), which sends the heartbeat and serves the mailbox,
 * until a STOP_WORKLOAD request or, with --ms, until N milliseconds of TSC
 * time have passed. This is the guest a downtime measurement wants: the
 * smallest possible working set, a heartbeat every millisecond.
 */
#include "lib/x86.h"
#include "user/user.h"
#include "user/workload.h"

enum { HB_MS };

static const struct wl_flag heartbeat_flags[] = {
	[HB_MS] = {.name = "ms", .min = 0, .max = 1ULL << 32},
	{0},
};

void heartbeat_spin(bool timed, uint64_t ms)
{
	uint64_t now = x86_rdtsc();
	uint64_t end = now + tick_ms_to_tsc(ms);

	for (;;) {
		now = x86_rdtsc();
		if (tick_at(now) || (timed && now >= end))
			break;
		x86_pause();
	}
}

static void heartbeat_run(const struct wl_call *c)
{
	bool timed = c->given[HB_MS];

	if (timed)
		console_printf("heartbeat: every 1 ms for %lu ms\n",
			       c->val[HB_MS]);
	else
		console_printf("heartbeat: every 1 ms until stopped\n");
	heartbeat_spin(timed, c->val[HB_MS]);
}

const struct workload wl_heartbeat = {
	.name = "heartbeat",
	.flags = heartbeat_flags,
	.run = heartbeat_run,
};
