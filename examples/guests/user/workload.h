/* SPDX-License-Identifier: MIT */
/*
 * workload.h - how a workload describes its flags and is called.
 *
 * A workload is a name, a table of numeric flags ("--mib 64", "--mib=64",
 * or positional like the N of "exit N") with their ranges (a flag with a
 * word list also takes a word: its index), and a run
 * function. cmdline.c turns the command line into a sequence of wl_call,
 * checking every flag before anything runs; workload.c runs them in order.
 */
#ifndef GUEST_WORKLOAD_H
#define GUEST_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WL_MAX_FLAGS 8
#define WL_MAX_CALLS 32 /* workloads in one command line */
#define WL_MAX_WORDS 16 /* words in one workload, its name included */

struct wl_flag {
	const char *name; /* "mib" for --mib */
	uint64_t min, max;
	bool required;
	bool positional; /* a bare word rather than --name */
	/* NULL-ended words the value may be given as (value = index), or NULL */
	const char *const *words;
};

struct wl_call;

struct workload {
	const char *name;
	const struct wl_flag *flags; /* ends with a NULL name */
	void (*run)(const struct wl_call *c);
};

struct wl_call {
	const struct workload *wl;
	uint64_t val[WL_MAX_FLAGS]; /* indexed like wl->flags */
	bool given[WL_MAX_FLAGS];
};

struct wl_seq {
	int nr;
	uint32_t timer; /* `--timer KIND` first: enum timer_kind, else 0 */
	struct wl_call call[WL_MAX_CALLS];
};

extern const struct workload wl_heartbeat, wl_dirty, wl_verify, wl_exit,
	wl_reset, wl_corrupt, wl_pagefault, wl_touch, wl_faultlat, wl_ptdriver,
	wl_ptloop, wl_spew;
extern const struct workload wl_flood; /* flood.c */
extern const struct workload wl_idle, wl_timer_check; /* timer.c */

/* workload.c */
const struct workload *workload_find(const char *name);
void workload_names(char *buf, size_t size); /* "a b c" */

/* cmdline.c: 0, or -1 after printing what is wrong. */
int cmdline_parse(const char *cmdline, struct wl_seq *seq);

#endif /* GUEST_WORKLOAD_H */
