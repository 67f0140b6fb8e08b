/* SPDX-License-Identifier: MIT */
/*
 * spew.c - the `spew --lines N [--ms T]` workload: console output as fast as
 * the guest makes it, for tests of a console whose reader stops reading.
 *
 * It prints N lines of SPEW_LINE bytes, `spew: line I of N ` padded with
 * dots, one CONSOLE_BUF exit each, and ticks between lines (a STOP_WORKLOAD
 * ends the lines early); then `spew: done I lines` and it ticks like
 * heartbeat until STOP_WORKLOAD or T ms. A VMM whose console blocks stops
 * the vCPU here, and the heartbeats with it.
 */
#include "lib/format.h"
#include "user/user.h"
#include "user/workload.h"

enum { SPEW_LINES, SPEW_MS };

#define SPEW_LINE 200 /* bytes per line, the newline included */

static const struct wl_flag spew_flags[] = {
	[SPEW_LINES] = {.name = "lines",
			.min = 1,
			.max = 1ULL << 32,
			.required = true},
	[SPEW_MS] = {.name = "ms", .min = 0, .max = 1ULL << 32},
	{0},
};

static void spew_line(uint64_t i, uint64_t n)
{
	char line[SPEW_LINE];
	size_t len = fmt_snprintf(line, sizeof(line), "spew: line %lu of %lu ",
				  i, n);

	while (len < SPEW_LINE - 1)
		line[len++] = '.';
	line[len++] = '\n';
	console_write(line, len);
}

static void spew_run(const struct wl_call *c)
{
	uint64_t n = c->val[SPEW_LINES], i;

	for (i = 1; i <= n; i++) {
		spew_line(i, n);
		if (tick())
			break;
	}
	console_printf("spew: done %lu lines\n", i > n ? n : i);
	heartbeat_spin(c->given[SPEW_MS], c->val[SPEW_MS]);
}

const struct workload wl_spew = {
	.name = "spew",
	.flags = spew_flags,
	.run = spew_run,
};
