/* SPDX-License-Identifier: MIT */
/*
 * flood.c - the `flood --markers N [--ms T]` workload: a hostile guest's
 * event storm, for tests of the VMM's event rate limit and queue bound.
 *
 * It posts N MARK_RESULT markers (arg: 1..N) as fast as the vCPU can write
 * the test device's register, ticking between them (a STOP_WORKLOAD ends
 * the flood early), says `flood: done I markers` and ticks like heartbeat
 * until STOP_WORKLOAD or T ms. The VMM's marker counters must still count
 * every one of them.
 */
#include "lib/testdev.h"
#include "user/user.h"
#include "user/workload.h"

enum { FLOOD_MARKERS, FLOOD_MS };

static const struct wl_flag flood_flags[] = {
	[FLOOD_MARKERS] = {.name = "markers",
			   .min = 1,
			   .max = 1ULL << 32,
			   .required = true},
	[FLOOD_MS] = {.name = "ms", .min = 0, .max = 1ULL << 32},
	{0},
};

static void flood_run(const struct wl_call *c)
{
	uint64_t n = c->val[FLOOD_MARKERS], i;

	for (i = 1; i <= n; i++) {
		testdev_marker(MARK_RESULT, (uint32_t)i);
		if (tick())
			break;
	}
	console_printf("flood: done %lu markers\n", i > n ? n : i);
	heartbeat_spin(c->given[FLOOD_MS], c->val[FLOOD_MS]);
}

const struct workload wl_flood = {
	.name = "flood",
	.flags = flood_flags,
	.run = flood_run,
};
