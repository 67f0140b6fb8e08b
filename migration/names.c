/* SPDX-License-Identifier: MIT */
/*
 * names.c - the names of migration states, modes and switch reasons, as the
 * control API and the logs spell them.
 */
#include "migration/migration.h"

#define NAME(tab, i)                                                           \
	((unsigned)(i) < sizeof(tab) / sizeof(tab[0]) && tab[i] ? tab[i]       \
								: "unknown")

const char *mig_state_name(enum mig_state s)
{
	static const char *const names[] = {
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

	return NAME(names, s);
}

const char *mig_mode_name(enum mig_mode m)
{
	static const char *const names[] = {
		[MIG_MODE_HYBRID] = "hybrid",
		[MIG_MODE_PRECOPY] = "precopy",
		[MIG_MODE_POSTCOPY] = "postcopy",
	};

	return NAME(names, m);
}

const char *mig_push_order_name(enum mig_push_order o)
{
	static const char *const names[] = {
		[MIG_PUSH_ACCESSED] = "accessed",
		[MIG_PUSH_FAULTS] = "faults",
		[MIG_PUSH_LINEAR] = "linear",
	};

	return NAME(names, o);
}

const char *mig_reason_name(enum mig_reason r)
{
	static const char *const names[] = {
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

	return NAME(names, r);
}
