/* SPDX-License-Identifier: MIT */
/*
 * names.c - the names of migration states, modes, push orders, compression
 * choices and switch reasons, as the control API and the logs spell them: one table per enum,
 * read in both directions (mig_*_name, mig_*_parse).
 */
#include <string.h>

#include "migration/migration.h"

#define NR(tab)	     (sizeof(tab) / sizeof(tab[0]))
#define NAME(tab, i) ((unsigned)(i) < NR(tab) && tab[i] ? tab[i] : "unknown")

static const char *const state_names[] = {
	[MIG_NONE] = "none",
	[MIG_SETUP] = "setup",
	[MIG_PRECOPY] = "precopy",
	[MIG_QUIESCE] = "device-quiesce",
	[MIG_STOP_COPY] = "stop-copy",
	[MIG_WAIT_READY] = "wait-ready",
	[MIG_POSTCOPY] = "postcopy-active",
	[MIG_POSTCOPY_PAUSED] = "postcopy-paused",
	[MIG_POSTCOPY_RECOVER] = "postcopy-recover",
	[MIG_COMPLETED] = "completed",
	[MIG_FAILED] = "failed",
	[MIG_CANCELLED] = "cancelled",
	[MIG_LISTENING] = "listening",
	[MIG_RECEIVING] = "receiving",
	[MIG_RUNNING] = "running",
};

static const char *const mode_names[] = {
	[MIG_MODE_HYBRID] = "hybrid",
	[MIG_MODE_PRECOPY] = "precopy",
	[MIG_MODE_POSTCOPY] = "postcopy",
	[MIG_MODE_LOCAL] = "local",
};

static const char *const push_order_names[] = {
	[MIG_PUSH_ACCESSED] = "accessed",
	[MIG_PUSH_FAULTS] = "faults",
	[MIG_PUSH_LINEAR] = "linear",
};

static const char *const compress_names[] = {
	[MIG_COMPRESS_AUTO] = "auto",
	[MIG_COMPRESS_NONE] = "none",
	[MIG_COMPRESS_ZSTD] = "zstd",
};

static const char *const reason_names[] = {
	[MIG_REASON_NONE] = "none",
	[MIG_REASON_CONVERGED] = "converged",
	[MIG_REASON_RATE] = "dirty-rate-above-bandwidth",
	[MIG_REASON_NOT_SHRINKING] = "rounds-not-shrinking",
	[MIG_REASON_SLOW] = "converges-too-slowly",
	[MIG_REASON_BUDGET_TIME] = "precopy-budget-time",
	[MIG_REASON_BUDGET_BYTES] = "precopy-budget-bytes",
	[MIG_REASON_MAX_ROUNDS] = "max-rounds",
	[MIG_REASON_POSTCOPY] = "postcopy-mode",
};

/* The index of name in names[0..n), or -1. */
static int names_find(const char *const *names, unsigned int n,
		      const char *name)
{
	for (unsigned int i = 0; i < n; i++)
		if (names[i] && !strcmp(names[i], name))
			return (int)i;
	return -1;
}

const char *mig_state_name(enum mig_state s)
{
	return NAME(state_names, s);
}

const char *mig_mode_name(enum mig_mode m)
{
	return NAME(mode_names, m);
}

const char *mig_reason_name(enum mig_reason r)
{
	return NAME(reason_names, r);
}

int mig_mode_parse(const char *name)
{
	return names_find(mode_names, NR(mode_names), name);
}

int mig_push_order_parse(const char *name)
{
	return names_find(push_order_names, NR(push_order_names), name);
}

int mig_compress_parse(const char *name)
{
	return names_find(compress_names, NR(compress_names), name);
}
