/* SPDX-License-Identifier: MIT */
/*
 * policy.c - the pre-copy convergence decision (see policy.h).
 */
#include "migration/policy.h"

#define PAGE 4096ULL

/*
 * Bytes a dirty page will cost on the wire: what data pages have cost so
 * far (compression included). Dirty pages are data pages, so zero pages
 * are left out of the average; that keeps the prediction conservative.
 */
static uint64_t policy_bytes_per_page(const struct mig_stats *st)
{
	uint64_t pages = st->memory_normal;

	if (!pages || !st->wire_bytes)
		return PAGE;
	return st->wire_bytes / pages ? st->wire_bytes / pages : 1;
}

void mig_policy_decide(const struct mig_params *p, const struct mig_stats *st,
		       uint64_t dirty_pages, struct mig_decision *d)
{
	uint64_t bps = st->memory_bps ? st->memory_bps : MIG_POLICY_DEFAULT_BPS;
	uint64_t bytes = dirty_pages * policy_bytes_per_page(st);

	d->predicted_us = bytes * 1000000ULL / bps + MIG_POLICY_FIXED_US;
	d->converged = d->predicted_us <= p->downtime_limit_ms * 1000ULL;
	d->stop_copy = d->converged || st->memory_iteration >= p->max_rounds;
}
