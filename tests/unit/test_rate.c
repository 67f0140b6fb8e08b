// SPDX-License-Identifier: MIT
/*
 * test_rate.c - the token bucket of the bandwidth caps (migration/rate.h):
 * a simulated pump that sends a frame whenever the bucket lets it and
 * sleeps as long as it says must average the cap; no cap never waits; a
 * change keeps the debt; the burst after idling is bounded.
 */
#include <criterion/criterion.h>

#include "migration/rate.h"

#define FRAME (1U << 20) /* a full batch: 256 pages */
#define S     1000000000ULL

/* Send frames for `seconds` of simulated time; returns bytes sent. */
static uint64_t pump(struct mig_rate *r, uint64_t *now, uint64_t seconds,
		     uint64_t late_ns)
{
	uint64_t end = *now + seconds * S, sent = 0;

	while (*now < end) {
		uint64_t wait = mig_rate_wait_ns(r, *now);

		if (wait) {
			*now += wait + late_ns; /* a timer fires late */
			continue;
		}
		mig_rate_spend(r, FRAME);
		sent += FRAME;
	}
	return sent;
}

Test(rate, no_cap_never_waits)
{
	struct mig_rate r = {0};

	mig_rate_set(&r, 0, 0);
	for (int i = 0; i < 1000; i++) {
		cr_assert_eq(mig_rate_wait_ns(&r, 0), 0);
		mig_rate_spend(&r, FRAME);
	}
}

Test(rate, averages_the_cap)
{
	static const uint64_t caps[] = {1ULL << 20, 50ULL << 20, 100ULL << 20,
					1ULL << 30};

	for (unsigned i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		struct mig_rate r = {0};
		uint64_t now = 5 * S;
		uint64_t sent;

		mig_rate_set(&r, caps[i], now);
		sent = pump(&r, &now, 10, 0);
		/* Within one frame of cap x 10 s. */
		cr_assert_leq(sent, caps[i] * 10 + FRAME, "cap %llu: %llu",
			      (unsigned long long)caps[i],
			      (unsigned long long)sent);
		cr_assert_geq(sent + FRAME, caps[i] * 10, "cap %llu: %llu",
			      (unsigned long long)caps[i],
			      (unsigned long long)sent);
	}
}

/* A timer that fires up to 5 ms late loses nothing: the bucket keeps time. */
Test(rate, late_timers_lose_nothing)
{
	struct mig_rate r = {0};
	uint64_t now = 0, cap = 100ULL << 20, sent;

	mig_rate_set(&r, cap, now);
	sent = pump(&r, &now, 10, 5000000);
	cr_assert_geq(sent + 2 * FRAME, cap * 10, "%llu",
		      (unsigned long long)sent);
}

/* After a long idle only MIG_RATE_BURST_MS worth goes at once. */
Test(rate, burst_is_bounded)
{
	struct mig_rate r = {0};
	uint64_t cap = 100ULL << 20, burst = 0;

	mig_rate_set(&r, cap, 0);
	while (!mig_rate_wait_ns(&r, 60 * S)) {
		mig_rate_spend(&r, FRAME);
		burst += FRAME;
	}
	cr_assert_leq(burst, cap * MIG_RATE_BURST_MS / 1000 + FRAME);
	cr_assert_gt(burst, 0);
}

/* A new cap applies from now on; what was owed stays owed. */
Test(rate, change_keeps_the_debt)
{
	struct mig_rate r = {0};
	uint64_t wait;

	mig_rate_set(&r, 1ULL << 20, 0);
	mig_rate_spend(&r, 10 * FRAME); /* 10 s owed at 1 MiB/s */
	wait = mig_rate_wait_ns(&r, 0);
	cr_assert_gt(wait, 9 * S);
	mig_rate_set(&r, 10ULL << 20, 0); /* 1 s owed at 10 MiB/s */
	wait = mig_rate_wait_ns(&r, 0);
	cr_assert(wait > S * 9 / 10 && wait < S * 11 / 10, "%llu",
		  (unsigned long long)wait);
	mig_rate_set(&r, 0, 0); /* no cap: nothing owed */
	cr_assert_eq(mig_rate_wait_ns(&r, 0), 0);
}
