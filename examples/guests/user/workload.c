/* SPDX-License-Identifier: MIT */
/*
 * workload.c - the table of workloads and the loop that runs them.
 *
 * CPU 0 parses the whole command line (cmdline.c), announces it, starts
 * the timer of `--timer` (timer.c) if given, then runs
 * each workload in turn: a fresh stop flag, a MARK_WORKLOAD_START marker
 * with its index, its run function. When the last one returns, main.c
 * exits with 0. An empty command line runs nothing and exits with 0 too.
 */
#include "lib/format.h"
#include "lib/string.h"
#include "lib/testdev.h"
#include "user/user.h"
#include "user/workload.h"

static const struct workload *const workloads[] = {
	&wl_heartbeat, &wl_dirty,     &wl_verify, &wl_exit,	&wl_reset,
	&wl_corrupt,   &wl_pagefault, &wl_touch,  &wl_faultlat, &wl_ptdriver,
	&wl_ptloop,    &wl_spew,      &wl_flood,  &wl_idle,	&wl_timer_check,
};

#define NR_WORKLOADS (sizeof(workloads) / sizeof(workloads[0]))

const struct workload *workload_find(const char *name)
{
	size_t i;

	for (i = 0; i < NR_WORKLOADS; i++)
		if (!strcmp(workloads[i]->name, name))
			return workloads[i];
	return NULL;
}

void workload_names(char *buf, size_t size)
{
	size_t i, len = 0;

	buf[0] = '\0';
	for (i = 0; i < NR_WORKLOADS && len < size; i++)
		len += fmt_snprintf(buf + len, size - len, "%s%s", i ? " " : "",
				    workloads[i]->name);
}

void workload_run_cmdline(const struct boot_info *bi)
{
	static struct wl_seq seq;
	char text[GUEST_CMDLINE_MAX];
	size_t len = strnlen(bi->cmdline, sizeof(text) - 1);
	int i;

	memcpy(text, bi->cmdline, len);
	text[len] = '\0';
	if (cmdline_parse(text, &seq) < 0)
		guest_exit(GUEST_EXIT_USAGE);
	console_printf("guest: %d workload%s: %s\n", seq.nr,
		       seq.nr == 1 ? "" : "s", text);
	if (seq.timer)
		timer_start(seq.timer, bi->tsc_khz);
	for (i = 0; i < seq.nr; i++) {
		tick_workload_begin();
		testdev_marker(MARK_WORKLOAD_START, (uint32_t)i);
		seq.call[i].wl->run(&seq.call[i]);
	}
}
