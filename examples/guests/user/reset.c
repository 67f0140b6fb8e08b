/* SPDX-License-Identifier: MIT */
/*
 * reset.c - the `reset` workload: reset the machine through the i8042, as
 * a PC guest does on reboot. Ring 3 cannot do port I/O here, so it asks
 * ring 0 with the SYS_RESET ud2 call. The VMM ends the VM on reset.
 */
#include "user/user.h"
#include "user/workload.h"

static const struct wl_flag reset_flags[] = {
	{0},
};

static void reset_run(const struct wl_call *c)
{
	(void)c;
	console_printf("reset: via i8042\n");
	sys_reset();
}

const struct workload wl_reset = {
	.name = "reset",
	.flags = reset_flags,
	.run = reset_run,
};
