/* SPDX-License-Identifier: MIT */
/*
 * rate.c - the token bucket of the bandwidth caps (rate.h).
 */
#include "migration/rate.h"

static int64_t rate_burst(const struct mig_rate *r)
{
	return (int64_t)(r->bps * MIG_RATE_BURST_MS / 1000);
}

static void rate_refill(struct mig_rate *r, uint64_t now_ns)
{
	uint64_t dt = now_ns > r->last_ns ? now_ns - r->last_ns : 0;
	int64_t add = (int64_t)((unsigned __int128)dt * r->bps / 1000000000ULL);

	r->last_ns = now_ns;
	r->tokens += add;
	if (r->tokens > rate_burst(r))
		r->tokens = rate_burst(r);
}

void mig_rate_set(struct mig_rate *r, uint64_t bps, uint64_t now_ns)
{
	if (r->bps)
		rate_refill(r, now_ns);
	else
		r->tokens = 0;
	r->bps = bps;
	r->last_ns = now_ns;
	if (r->tokens > rate_burst(r))
		r->tokens = rate_burst(r);
}

uint64_t mig_rate_wait_ns(struct mig_rate *r, uint64_t now_ns)
{
	if (!r->bps)
		return 0;
	rate_refill(r, now_ns);
	if (r->tokens > 0)
		return 0;
	/* Until the debt is paid and one byte more. */
	return (uint64_t)(((unsigned __int128)(1 - r->tokens) * 1000000000ULL +
			   r->bps - 1) /
			  r->bps);
}

void mig_rate_spend(struct mig_rate *r, uint64_t bytes)
{
	if (r->bps)
		r->tokens -= (int64_t)bytes;
}
