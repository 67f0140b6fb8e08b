/* SPDX-License-Identifier: MIT */
/*
 * policy.c - the pre-copy convergence decision (see policy.h).
 */
#include "common/page.h"
#include "migration/policy.h"

#include <stdint.h>

/*
 * Bytes a dirty page will cost on the wire: what data pages have cost so
 * far (compression included). Dirty pages are data pages, so zero pages
 * are left out of the average; that keeps the prediction conservative.
 */
static uint64_t policy_bytes_per_page(const struct mig_stats *st)
{
	uint64_t pages = st->memory_normal;

	if (!pages || !st->wire_bytes)
		return PAGE_SIZE;
	return st->wire_bytes / pages ? st->wire_bytes / pages : 1;
}

/* Count rounds that left more than MIG_POLICY_FLAT_PCT of the last one. */
static void policy_track_shrink(struct mig_policy_state *ps, uint64_t dirty)
{
	if (ps->last_dirty &&
	    dirty * 100 > ps->last_dirty * MIG_POLICY_FLAT_PCT)
		ps->flat++;
	else
		ps->flat = 0;
	ps->last_dirty = dirty;
}

uint32_t mig_policy_rounds_ahead(const struct mig_params *p, uint64_t bps,
				 uint64_t dirty_bytes,
				 uint64_t dirty_bytes_rate)
{
	uint64_t limit_us = p->downtime_limit_ms * 1000ULL;
	double fit, left = (double)dirty_bytes, r;
	uint32_t k = 0;

	if (!bps)
		return UINT32_MAX;
	fit = limit_us > MIG_POLICY_FIXED_US
		      ? (double)(limit_us - MIG_POLICY_FIXED_US) * bps / 1e6
		      : 0;
	r = (double)dirty_bytes_rate / (double)bps;
	if (left <= fit)
		return 0;
	if (r >= 1.0)
		return UINT32_MAX;
	/* Each round sends what is dirty and leaves r of it. */
	while (left > fit && k < 64) {
		left *= r;
		k++;
	}
	return left > fit ? UINT32_MAX : k;
}

/* The user's limits: which one is spent (MIG_REASON_NONE: none). */
static enum mig_reason policy_budget(const struct mig_params *p,
				     const struct mig_stats *st,
				     uint64_t precopy_ns)
{
	if (p->budget_ms && precopy_ns >= p->budget_ms * 1000000ULL)
		return MIG_REASON_BUDGET_TIME;
	if (p->budget_bytes && st->wire_bytes >= p->budget_bytes)
		return MIG_REASON_BUDGET_BYTES;
	if (st->memory_iteration >= p->max_rounds)
		return MIG_REASON_MAX_ROUNDS;
	return MIG_REASON_NONE;
}

/* Cannot converge, or may not go on: why (MIG_REASON_NONE: go on). */
static enum mig_reason
policy_give_up(const struct mig_params *p, const struct mig_stats *st,
	       const struct mig_policy_state *ps, uint64_t dirty_bytes,
	       uint64_t dirty_bytes_rate, uint64_t precopy_ns)
{
	/*
	 * Only hybrid gives up on the evidence alone: it has post-copy to go
	 * to. Pre-copy mode iterates until converged or a budget is spent,
	 * as the user asked. From round 0 on, the rate is what the guest
	 * dirtied while a whole pass went by: enough to judge.
	 */
	bool hybrid = p->mode == MIG_MODE_HYBRID && st->memory_bps;
	/* The user's limits first: when one is spent, that is the reason. */
	enum mig_reason spent = policy_budget(p, st, precopy_ns);

	if (spent != MIG_REASON_NONE)
		return spent;
	if (hybrid && dirty_bytes_rate >= st->memory_bps)
		return MIG_REASON_RATE;
	if (hybrid &&
	    mig_policy_rounds_ahead(p, st->memory_bps, dirty_bytes,
				    dirty_bytes_rate) > MIG_POLICY_AHEAD_ROUNDS)
		return MIG_REASON_SLOW;
	if (p->mode == MIG_MODE_HYBRID && ps->flat >= MIG_POLICY_FLAT_ROUNDS)
		return MIG_REASON_NOT_SHRINKING;
	return MIG_REASON_NONE;
}

/*
 * It fits the limit: is one more round still worth it? Only while rounds
 * shrink fast (this one left at most MIG_POLICY_REFINE_KEEP_NUM/_DEN of what
 * the last round sent: the dirty set before it, or round 0's pages), more than
 * MIG_POLICY_FLOOR_PAGES are left, and no budget says stop: each such round
 * costs less time than the one before and takes downtime off the stop-copy. The
 * limit is a cap, not a target.
 */
static bool policy_refine(const struct mig_params *p,
			  const struct mig_stats *st,
			  struct mig_policy_state *ps, uint64_t prev_dirty,
			  uint64_t dirty, uint64_t precopy_ns)
{
	/* After round 0 the last round sent every page it found. */
	if (!prev_dirty && st->memory_iteration == 1)
		prev_dirty = st->memory_normal + st->memory_constant;
	if (dirty <= MIG_POLICY_FLOOR_PAGES || !prev_dirty ||
	    dirty * MIG_POLICY_REFINE_KEEP_DEN >
		    prev_dirty * MIG_POLICY_REFINE_KEEP_NUM ||
	    ps->refined >= MIG_POLICY_REFINE_ROUNDS ||
	    policy_budget(p, st, precopy_ns) != MIG_REASON_NONE)
		return false;
	ps->refined++;
	return true;
}

bool mig_policy_last_pass(const struct mig_stats *st,
			  const struct mig_policy_state *ps)
{
	return st->converged &&
	       st->memory_dirty_rate * policy_bytes_per_page(st) < ps->peak_bps;
}

void mig_policy_decide(const struct mig_params *p, const struct mig_stats *st,
		       struct mig_policy_state *ps, uint64_t dirty_pages,
		       uint64_t precopy_ns, struct mig_decision *d)
{
	uint64_t bps = st->memory_bps ? st->memory_bps : MIG_POLICY_DEFAULT_BPS;
	uint64_t bpp = policy_bytes_per_page(st);
	uint64_t bytes = dirty_pages * bpp;
	uint64_t prev = ps->last_dirty;

	policy_track_shrink(ps, dirty_pages);
	if (st->memory_bps > ps->peak_bps)
		ps->peak_bps = st->memory_bps;
	d->predicted_us = bytes * 1000000ULL / bps + MIG_POLICY_FIXED_US;
	d->converged = d->predicted_us <= p->downtime_limit_ms * 1000ULL;
	if (d->converged)
		d->reason =
			policy_refine(p, st, ps, prev, dirty_pages, precopy_ns)
				? MIG_REASON_NONE
				: MIG_REASON_CONVERGED;
	else
		d->reason =
			policy_give_up(p, st, ps, bytes,
				       st->memory_dirty_rate * bpp, precopy_ns);
	d->stop = d->reason != MIG_REASON_NONE;
}
