/* SPDX-License-Identifier: MIT */
/*
 * exit.c - the `exit N` workload: stop the guest with exit code N.
 *
 * The VMM ends the run at the EXIT store, so workloads after this one never
 * start; "...; exit 7" lets a test tell "the sequence got here" from a
 * panic (99), a failed verify (3) or a bad command line (2).
 */
#include "user/user.h"
#include "user/workload.h"

enum { EXIT_CODE };

static const struct wl_flag exit_flags[] = {
	[EXIT_CODE] = {.name = "code",
		       .min = 0,
		       .max = 255,
		       .required = true,
		       .positional = true},
	{0},
};

static void exit_run(const struct wl_call *c)
{
	guest_exit((uint32_t)c->val[EXIT_CODE]);
}

const struct workload wl_exit = {
	.name = "exit",
	.flags = exit_flags,
	.run = exit_run,
};
