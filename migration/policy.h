/* SPDX-License-Identifier: MIT */
/*
 * policy.h - when pre-copy stops iterating. Pure: statistics in, a decision
 * out. Predicted stop-copy time = dirty pages x wire bytes per page /
 * achieved bandwidth + a fixed cost for the state and the switch-over;
 * stop-copy when that fits the downtime limit, or when the round budget is
 * spent (then it does not converge: the downtime is what it is).
 */
#ifndef MIGRATION_POLICY_H
#define MIGRATION_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "migration/migration.h"

/* State sections, RAM_END/STATE_END, READY/GO/RUNNING round trips. */
#define MIG_POLICY_FIXED_US 1000
/* Bandwidth assumed before a round has measured one (bytes/s). */
#define MIG_POLICY_DEFAULT_BPS (1ULL << 30)

struct mig_decision {
	bool stop_copy;
	bool converged;	       /* it fits the limit */
	uint64_t predicted_us; /* predicted downtime */
};

void mig_policy_decide(const struct mig_params *p, const struct mig_stats *st,
		       uint64_t dirty_pages, struct mig_decision *d);

#endif /* MIGRATION_POLICY_H */
