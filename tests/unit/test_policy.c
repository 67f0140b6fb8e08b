// SPDX-License-Identifier: MIT
/*
 * test_policy.c - mig_policy_decide(): the predicted downtime, converging,
 * hybrid giving up (dirty rate, too many rounds ahead, rounds not
 * shrinking), pre-copy mode that
 * never does, the time, bytes and round budgets, and whether a converged
 * pre-copy makes its last pass before the pause (mig_policy_last_pass).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "migration/policy.h"

/* 100 000 pages of 4096 bytes per second. */
#define BPS 409600000ULL

static void setup(struct mig_params *p, struct mig_stats *st,
		  struct mig_policy_state *ps, enum mig_mode mode)
{
	memset(p, 0, sizeof(*p));
	p->mode = mode;
	p->downtime_limit_ms = MIG_DEFAULT_DOWNTIME_MS;
	p->max_rounds = MIG_DEFAULT_MAX_ROUNDS;
	memset(st, 0, sizeof(*st));
	st->memory_bps = BPS;
	st->memory_iteration = 1;
	memset(ps, 0, sizeof(*ps));
}

/* Far too many dirty pages to fit 10 ms at BPS: 1 s of transfer. */
#define MANY 100000ULL

Test(policy, converged_predicted_us)
{
	struct mig_params p;
	struct mig_stats st;
	struct mig_policy_state ps;
	struct mig_decision d;

	setup(&p, &st, &ps, MIG_MODE_HYBRID);
	/* No data pages yet: 4096 bytes a page; 409600 B at BPS is 1 ms. */
	mig_policy_decide(&p, &st, &ps, 100, 0, &d);
	cr_assert_eq(d.predicted_us, 1000 + MIG_POLICY_FIXED_US);
	cr_assert(d.converged);
	cr_assert(d.stop);
	cr_assert_eq(d.reason, MIG_REASON_CONVERGED);
}

Test(policy, predicted_us_uses_data_page_cost)
{
	struct mig_params p;
	struct mig_stats st;
	struct mig_policy_state ps;
	struct mig_decision d;

	setup(&p, &st, &ps, MIG_MODE_HYBRID);
	/* Compressed to 2048 bytes a page so far: half the time. */
	st.memory_normal = 100;
	st.wire_bytes = 100 * 2048;
	mig_policy_decide(&p, &st, &ps, 100, 0, &d);
	cr_assert_eq(d.predicted_us, 500 + MIG_POLICY_FIXED_US);
	cr_assert_eq(d.reason, MIG_REASON_CONVERGED);
}

Test(policy, converged_at_the_limit_exactly)
{
	struct mig_params p;
	struct mig_stats st;
	struct mig_policy_state ps;
	struct mig_decision d;

	setup(&p, &st, &ps, MIG_MODE_HYBRID);
	/* 900 pages: 9000 us + 1000 us fixed = 10 ms, the limit. */
	mig_policy_decide(&p, &st, &ps, 900, 0, &d);
	cr_assert_eq(d.predicted_us, 10000);
	cr_assert(d.converged);
	cr_assert_eq(d.reason, MIG_REASON_CONVERGED);

	setup(&p, &st, &ps, MIG_MODE_HYBRID);
	mig_policy_decide(&p, &st, &ps, 901, 0, &d);
	cr_assert_not(d.converged);
	cr_assert_not(d.stop);
	cr_assert_eq(d.reason, MIG_REASON_NONE);
}

Test(policy, nothing_applies_goes_on)
{
	struct mig_params p;
	struct mig_stats st;
	struct mig_policy_state ps;
	struct mig_decision d;

	setup(&p, &st, &ps, MIG_MODE_HYBRID);
	st.memory_iteration = 3;
	st.memory_dirty_rate = 1000;
	st.wire_bytes = 1 << 20;
	p.budget_ms = 1000;
	p.budget_bytes = 1ULL << 30;
	mig_policy_decide(&p, &st, &ps, MANY, 1000000, &d);
	cr_assert_not(d.stop);
	cr_assert_not(d.converged);
	cr_assert_eq(d.reason, MIG_REASON_NONE);
	cr_assert_gt(d.predicted_us, p.downtime_limit_ms * 1000);
}

Test(policy, hybrid_rate_at_bandwidth)
{
	struct mig_params p;
	struct mig_stats st;
	struct mig_policy_state ps;
	struct mig_decision d;

	/* 100 000 pages/s x 4096 B = BPS: dirtied as fast as sent. */
	setup(&p, &st, &ps, MIG_MODE_HYBRID);
	st.memory_dirty_rate = 100000;
	mig_policy_decide(&p, &st, &ps, MANY, 0, &d);
	cr_assert(d.stop);
	cr_assert_not(d.converged);
	cr_assert_eq(d.reason, MIG_REASON_RATE);

	/* Just below the bandwidth: converging, but far too slowly. */
	setup(&p, &st, &ps, MIG_MODE_HYBRID);
	st.memory_dirty_rate = 99999;
	mig_policy_decide(&p, &st, &ps, MANY, 0, &d);
	cr_assert(d.stop);
	cr_assert_eq(d.reason, MIG_REASON_SLOW);
}

Test(policy, rounds_ahead)
{
	struct mig_params p = {.downtime_limit_ms = 10};
	/* 9 ms at BPS fit: 3 686 400 bytes. */
	uint64_t fit = 9 * BPS / 1000;

	cr_assert_eq(mig_policy_rounds_ahead(&p, BPS, fit, BPS / 2), 0);
	cr_assert_eq(mig_policy_rounds_ahead(&p, BPS, fit + 1, 0), 1);
	/* Halved each round: 2 x fit needs one round, 2^3 x fit three. */
	cr_assert_eq(mig_policy_rounds_ahead(&p, BPS, 2 * fit, BPS / 2), 1);
	cr_assert_eq(mig_policy_rounds_ahead(&p, BPS, 8 * fit, BPS / 2), 3);
	cr_assert_eq(mig_policy_rounds_ahead(&p, BPS, 8 * fit + 8, BPS / 2), 4);
	cr_assert_eq(mig_policy_rounds_ahead(&p, BPS, 2 * fit, BPS),
		     UINT32_MAX);
	cr_assert_eq(mig_policy_rounds_ahead(&p, 0, 2 * fit, 0), UINT32_MAX);
	/* A limit below the fixed cost fits nothing. */
	p.downtime_limit_ms = 0;
	cr_assert_eq(mig_policy_rounds_ahead(&p, BPS, 1, 0), 1);
}

Test(policy, hybrid_slow_after_round_0)
{
	struct mig_params p;
	struct mig_stats st;
	struct mig_policy_state ps;
	struct mig_decision d;
	uint64_t fit_pages = 9 * BPS / 1000 / 4096;

	/* Half the bandwidth, 32 x what fits: 5 rounds ahead, goes on. */
	setup(&p, &st, &ps, MIG_MODE_HYBRID);
	st.memory_dirty_rate = 50000;
	mig_policy_decide(&p, &st, &ps, 32 * fit_pages, 0, &d);
	cr_assert_not(d.stop);
	cr_assert_eq(d.reason, MIG_REASON_NONE);

	/* 64 x: 6 rounds ahead, more than MIG_POLICY_AHEAD_ROUNDS. */
	setup(&p, &st, &ps, MIG_MODE_HYBRID);
	st.memory_dirty_rate = 50000;
	mig_policy_decide(&p, &st, &ps, 64 * fit_pages, 0, &d);
	cr_assert(d.stop);
	cr_assert_not(d.converged);
	cr_assert_eq(d.reason, MIG_REASON_SLOW);

	/* Pre-copy mode never gives up on it. */
	setup(&p, &st, &ps, MIG_MODE_PRECOPY);
	st.memory_dirty_rate = 50000;
	mig_policy_decide(&p, &st, &ps, 64 * fit_pages, 0, &d);
	cr_assert_not(d.stop);
}

Test(policy, hybrid_not_shrinking)
{
	struct mig_params p;
	struct mig_stats st;
	struct mig_policy_state ps;
	struct mig_decision d;

	setup(&p, &st, &ps, MIG_MODE_HYBRID);
	mig_policy_decide(&p, &st, &ps, MANY, 0, &d);
	cr_assert_not(d.stop);
	cr_assert_eq(ps.flat, 0);

	/* 90% of the last round: the first flat one goes on. */
	st.memory_iteration = 2;
	mig_policy_decide(&p, &st, &ps, MANY * 9 / 10, 0, &d);
	cr_assert_eq(ps.flat, 1);
	cr_assert_not(d.stop);
	cr_assert_eq(d.reason, MIG_REASON_NONE);

	/* The second flat round in a row gives pre-copy up. */
	st.memory_iteration = 3;
	mig_policy_decide(&p, &st, &ps, MANY * 9 / 10, 0, &d);
	cr_assert_eq(ps.flat, MIG_POLICY_FLAT_ROUNDS);
	cr_assert(d.stop);
	cr_assert_not(d.converged);
	cr_assert_eq(d.reason, MIG_REASON_NOT_SHRINKING);
}

Test(policy, hybrid_shrinking_round_resets)
{
	struct mig_params p;
	struct mig_stats st;
	struct mig_policy_state ps;
	struct mig_decision d;

	setup(&p, &st, &ps, MIG_MODE_HYBRID);
	mig_policy_decide(&p, &st, &ps, MANY * 2, 0, &d);
	mig_policy_decide(&p, &st, &ps, MANY * 19 / 10, 0, &d);
	cr_assert_eq(ps.flat, 1);
	cr_assert_not(d.stop);

	/* Exactly 80% of the last round shrinks: the count starts over. */
	mig_policy_decide(&p, &st, &ps, MANY * 19 / 10 * 8 / 10, 0, &d);
	cr_assert_eq(ps.flat, 0);
	cr_assert_not(d.stop);
	cr_assert_eq(ps.last_dirty, MANY * 19 / 10 * 8 / 10);

	/* One flat round after it is not yet enough. */
	mig_policy_decide(&p, &st, &ps, MANY * 19 / 10 * 8 / 10, 0, &d);
	cr_assert_eq(ps.flat, 1);
	cr_assert_not(d.stop);
	cr_assert_eq(d.reason, MIG_REASON_NONE);
}

Test(policy, precopy_never_gives_up_on_evidence)
{
	struct mig_params p;
	struct mig_stats st;
	struct mig_policy_state ps;
	struct mig_decision d;
	int i;

	/* Dirtied ten times faster than sent, rounds flat: goes on. */
	setup(&p, &st, &ps, MIG_MODE_PRECOPY);
	st.memory_dirty_rate = 1000000;
	for (i = 0; i < 5; i++) {
		st.memory_iteration = 2 + i;
		mig_policy_decide(&p, &st, &ps, MANY, 0, &d);
		cr_assert_not(d.stop, "round %d", i);
		cr_assert_eq(d.reason, MIG_REASON_NONE, "round %d", i);
	}
	cr_assert_geq(ps.flat, MIG_POLICY_FLAT_ROUNDS);

	/* Converged still stops (at the floor: no round to refine). */
	mig_policy_decide(&p, &st, &ps, MIG_POLICY_FLOOR_PAGES, 0, &d);
	cr_assert(d.stop);
	cr_assert_eq(d.reason, MIG_REASON_CONVERGED);
}

/* One decision after another; returns the last. */
static struct mig_decision decide_seq(struct mig_params *p,
				      struct mig_stats *st,
				      struct mig_policy_state *ps,
				      const uint64_t *dirty, int n)
{
	struct mig_decision d = {0};

	for (int i = 0; i < n; i++) {
		st->memory_iteration = 1 + i;
		mig_policy_decide(p, st, ps, dirty[i], 0, &d);
	}
	return d;
}

Test(policy, fits_but_shrinking_fast_goes_on)
{
	static const uint64_t seq[] = {2000, 800};
	struct mig_params p;
	struct mig_stats st;
	struct mig_policy_state ps;
	struct mig_decision d;

	setup(&p, &st, &ps, MIG_MODE_HYBRID);
	d = decide_seq(&p, &st, &ps, seq, 2);
	/* 800 pages fit 10 ms, but the round left 0.4 of the last one. */
	cr_assert(d.converged);
	cr_assert_not(d.stop);
	cr_assert_eq(d.reason, MIG_REASON_NONE);
	cr_assert_eq(ps.refined, 1);
	/* 600: three quarters of 800, on; 500: 0.83 of 600, it stops. */
	st.memory_iteration = 3;
	mig_policy_decide(&p, &st, &ps, 600, 0, &d);
	cr_assert_not(d.stop);
	st.memory_iteration = 4;
	mig_policy_decide(&p, &st, &ps, 500, 0, &d);
	cr_assert(d.stop);
	cr_assert(d.converged);
	cr_assert_eq(d.reason, MIG_REASON_CONVERGED);
}

Test(policy, refines_after_round_0)
{
	struct mig_params p;
	struct mig_stats st;
	struct mig_policy_state ps;
	struct mig_decision d;

	/* Round 0 sent 30 000 pages; 800 are dirty: fits, and refines. */
	setup(&p, &st, &ps, MIG_MODE_PRECOPY);
	st.memory_normal = 25000;
	st.memory_constant = 5000;
	st.wire_bytes = 25000ULL * 4096;
	mig_policy_decide(&p, &st, &ps, 800, 0, &d);
	cr_assert(d.converged);
	cr_assert_not(d.stop);
	/* Not from a later round without a previous dirty set. */
	setup(&p, &st, &ps, MIG_MODE_PRECOPY);
	st.memory_iteration = 2;
	st.memory_normal = 25000;
	mig_policy_decide(&p, &st, &ps, 800, 0, &d);
	cr_assert(d.stop);
}

Test(policy, refining_stops_at_the_floor)
{
	static const uint64_t seq[] = {5000, MIG_POLICY_FLOOR_PAGES};
	struct mig_params p;
	struct mig_stats st;
	struct mig_policy_state ps;
	struct mig_decision d;

	setup(&p, &st, &ps, MIG_MODE_PRECOPY);
	d = decide_seq(&p, &st, &ps, seq, 2);
	cr_assert(d.stop);
	cr_assert_eq(d.reason, MIG_REASON_CONVERGED);
	cr_assert_eq(ps.refined, 0);
}

Test(policy, refining_is_bounded)
{
	/* Halving each round, above the floor throughout. */
	static const uint64_t seq[] = {100000, 50000, 25000, 12500, 6250,
				       3125,   1562,  781,   390,   195};
	struct mig_params p;
	struct mig_stats st;
	struct mig_policy_state ps;
	struct mig_decision d;

	_Static_assert(sizeof(seq) / sizeof(seq[0]) >=
			       MIG_POLICY_REFINE_ROUNDS + 2,
		       "seq too short for MIG_POLICY_REFINE_ROUNDS");
	setup(&p, &st, &ps, MIG_MODE_HYBRID);
	p.downtime_limit_ms = 1000; /* 99 900 pages fit */
	for (int i = 1; i <= MIG_POLICY_REFINE_ROUNDS; i++) {
		d = decide_seq(&p, &st, &ps, seq, i + 1);
		cr_assert_not(d.stop, "refine %d", i);
		memset(&ps, 0, sizeof(ps));
	}
	d = decide_seq(&p, &st, &ps, seq, MIG_POLICY_REFINE_ROUNDS + 2);
	cr_assert(d.stop);
	cr_assert_eq(d.reason, MIG_REASON_CONVERGED);
	cr_assert_eq(ps.refined, MIG_POLICY_REFINE_ROUNDS);
}

Test(policy, refining_respects_max_rounds)
{
	static const uint64_t seq[] = {2000, 800};
	struct mig_params p;
	struct mig_stats st;
	struct mig_policy_state ps;
	struct mig_decision d;

	setup(&p, &st, &ps, MIG_MODE_HYBRID);
	p.max_rounds = 2;
	d = decide_seq(&p, &st, &ps, seq, 2);
	cr_assert(d.stop);
	cr_assert_eq(d.reason, MIG_REASON_CONVERGED);
}

Test(policy, precopy_stops_at_budgets_and_max_rounds)
{
	struct mig_params p;
	struct mig_stats st;
	struct mig_policy_state ps;
	struct mig_decision d;

	setup(&p, &st, &ps, MIG_MODE_PRECOPY);
	st.memory_iteration = 3;
	st.memory_dirty_rate = 1000000;
	p.budget_ms = 50;
	mig_policy_decide(&p, &st, &ps, MANY, 50000000ULL, &d);
	cr_assert(d.stop);
	cr_assert_not(d.converged);
	cr_assert_eq(d.reason, MIG_REASON_BUDGET_TIME);

	setup(&p, &st, &ps, MIG_MODE_PRECOPY);
	st.memory_iteration = 3;
	st.memory_dirty_rate = 1000000;
	p.budget_bytes = 1 << 20;
	st.wire_bytes = 1 << 20;
	mig_policy_decide(&p, &st, &ps, MANY, 0, &d);
	cr_assert(d.stop);
	cr_assert_eq(d.reason, MIG_REASON_BUDGET_BYTES);

	setup(&p, &st, &ps, MIG_MODE_PRECOPY);
	st.memory_dirty_rate = 1000000;
	st.memory_iteration = p.max_rounds;
	mig_policy_decide(&p, &st, &ps, MANY, 0, &d);
	cr_assert(d.stop);
	cr_assert_eq(d.reason, MIG_REASON_MAX_ROUNDS);
}

Test(policy, budget_time)
{
	struct mig_params p;
	struct mig_stats st;
	struct mig_policy_state ps;
	struct mig_decision d;

	setup(&p, &st, &ps, MIG_MODE_HYBRID);
	p.budget_ms = 100;
	mig_policy_decide(&p, &st, &ps, MANY, 100000000ULL - 1, &d);
	cr_assert_not(d.stop);
	cr_assert_eq(d.reason, MIG_REASON_NONE);

	mig_policy_decide(&p, &st, &ps, MANY / 2, 100000000ULL, &d);
	cr_assert(d.stop);
	cr_assert_not(d.converged);
	cr_assert_eq(d.reason, MIG_REASON_BUDGET_TIME);
}

Test(policy, budget_bytes)
{
	struct mig_params p;
	struct mig_stats st;
	struct mig_policy_state ps;
	struct mig_decision d;

	setup(&p, &st, &ps, MIG_MODE_HYBRID);
	p.budget_bytes = 1ULL << 30;
	st.wire_bytes = (1ULL << 30) - 1;
	mig_policy_decide(&p, &st, &ps, MANY, 0, &d);
	cr_assert_not(d.stop);
	cr_assert_eq(d.reason, MIG_REASON_NONE);

	st.wire_bytes = 1ULL << 30;
	mig_policy_decide(&p, &st, &ps, MANY / 2, 0, &d);
	cr_assert(d.stop);
	cr_assert_not(d.converged);
	cr_assert_eq(d.reason, MIG_REASON_BUDGET_BYTES);
}

Test(policy, max_rounds)
{
	struct mig_params p;
	struct mig_stats st;
	struct mig_policy_state ps;
	struct mig_decision d;

	setup(&p, &st, &ps, MIG_MODE_HYBRID);
	p.max_rounds = 5;
	st.memory_iteration = 4;
	mig_policy_decide(&p, &st, &ps, MANY, 0, &d);
	cr_assert_not(d.stop);
	cr_assert_eq(d.reason, MIG_REASON_NONE);

	st.memory_iteration = 5;
	mig_policy_decide(&p, &st, &ps, MANY / 2, 0, &d);
	cr_assert(d.stop);
	cr_assert_not(d.converged);
	cr_assert_eq(d.reason, MIG_REASON_MAX_ROUNDS);
}

Test(policy, a_spent_budget_is_the_reason_over_the_evidence)
{
	struct mig_params p;
	struct mig_stats st;
	struct mig_policy_state ps;
	struct mig_decision d;

	setup(&p, &st, &ps, MIG_MODE_HYBRID);
	st.memory_dirty_rate = 100000; /* at the bandwidth */
	p.budget_ms = 1;
	mig_policy_decide(&p, &st, &ps, MANY, 2000000, &d);
	cr_assert(d.stop);
	cr_assert_eq(d.reason, MIG_REASON_BUDGET_TIME);
}

/* The last pass before the pause: only converged, only if it shrinks. */
Test(policy, last_pass_when_converged_and_slower_than_the_link)
{
	struct mig_params p;
	struct mig_stats st;
	struct mig_policy_state ps;
	struct mig_decision d;

	setup(&p, &st, &ps, MIG_MODE_PRECOPY);
	/* Round 0 at BPS, then a short round whose SYNC halved its figure. */
	mig_policy_decide(&p, &st, &ps, MANY, 0, &d);
	st.memory_bps = BPS / 2;
	mig_policy_decide(&p, &st, &ps, 100, 0, &d);
	cr_assert(d.converged);
	st.converged = true;
	/* 3/4 of the link's speed in 4096-byte pages: the pass shrinks. */
	st.memory_dirty_rate = BPS / 4096 * 3 / 4;
	cr_assert_eq(ps.peak_bps, BPS);
	cr_assert(mig_policy_last_pass(&st, &ps));
	/* Not converged (a budget stopped it): no pass. */
	st.converged = false;
	cr_assert_not(mig_policy_last_pass(&st, &ps));
}

Test(policy, no_last_pass_when_dirtying_at_link_speed)
{
	struct mig_params p;
	struct mig_stats st;
	struct mig_policy_state ps;
	struct mig_decision d;

	setup(&p, &st, &ps, MIG_MODE_PRECOPY);
	mig_policy_decide(&p, &st, &ps, 100, 0, &d);
	st.converged = true; /* a large --downtime-limit converges so */
	st.memory_dirty_rate = BPS / 4096;
	cr_assert_not(mig_policy_last_pass(&st, &ps));
	/* Data pages cost 1024 bytes on the wire (compressed): it shrinks. */
	st.memory_normal = 1000;
	st.wire_bytes = 1024 * 1000;
	cr_assert(mig_policy_last_pass(&st, &ps));
	/* No bandwidth measured yet: no evidence, no pass. */
	ps.peak_bps = 0;
	cr_assert_not(mig_policy_last_pass(&st, &ps));
}
