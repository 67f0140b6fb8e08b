/* SPDX-License-Identifier: MIT */
/*
 * test_pm_timer.c - the ACPI PM timer (devices/pm_timer.c): its rate
 * against CLOCK_MONOTONIC read around each access (so the bounds are exact,
 * not tolerances), its width, and a save/load that continues the count.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "devices/bus.h"
#include "devices/pm_timer.h"

static char err[256];

static uint32_t inl(struct pm_timer *t)
{
	uint32_t v = 0xdeadbeef;

	pm_timer_ops.read(t, 0, &v, 4);
	return v;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {0, ms * 1000000L};

	nanosleep(&ts, NULL);
}

Test(pm_timer, ticks)
{
	cr_expect_eq(pm_timer_ticks(0), 0);
	cr_expect_eq(pm_timer_ticks(NSEC_PER_SEC), 3579545);
	cr_expect_eq(pm_timer_ticks(280), 1, "one tick is 279.4 ns");
	cr_expect_eq(pm_timer_ticks(279), 0);
	cr_expect_eq(pm_timer_ticks(3600ULL * NSEC_PER_SEC * 24 * 365),
		     3579545ULL * 3600 * 24 * 365, "no overflow in a year");
}

Test(pm_timer, counts_at_3_579545_mhz)
{
	struct pm_timer t;
	uint64_t a0, a1, b0, b1;
	uint32_t c0, c1;

	cr_assert_eq(pm_timer_init(&t, 32, err, sizeof(err)), 0);
	a0 = clock_now_ns();
	c0 = inl(&t);
	a1 = clock_now_ns();
	sleep_ms(20);
	b0 = clock_now_ns();
	c1 = inl(&t);
	b1 = clock_now_ns();
	/* c1 - c0 lies between the ticks of the inner and outer spans. */
	cr_expect_geq((uint32_t)(c1 - c0), pm_timer_ticks(b0 - a1) - 1);
	cr_expect_leq((uint32_t)(c1 - c0), pm_timer_ticks(b1 - a0) + 1);
	cr_expect_geq((uint32_t)(c1 - c0), 20 * 3579, "20 ms passed");
}

Test(pm_timer, monotonic)
{
	struct pm_timer t;
	uint32_t prev, now;

	cr_assert_eq(pm_timer_init(&t, 32, err, sizeof(err)), 0);
	prev = inl(&t);
	for (int i = 0; i < 100000; i++) {
		now = inl(&t);
		cr_assert_geq(now, prev);
		prev = now;
	}
}

Test(pm_timer, narrow_reads)
{
	struct pm_timer t;
	struct pm_timer_state st = {.count = 0x12345678, .bits = 32};
	uint8_t b = 0;
	uint16_t w = 0;

	cr_assert_eq(pm_timer_init(&t, 32, err, sizeof(err)), 0);
	cr_assert_eq(pm_timer_load(&t, &st, err, sizeof(err)), 0);
	pm_timer_ops.read(&t, 3, &b, 1);
	cr_expect_eq(b, 0x12, "the top byte does not move in a test's time");
	pm_timer_ops.read(&t, 2, &w, 2);
	cr_expect_eq(w, 0x1234);
}

Test(pm_timer, width_24_wraps)
{
	struct pm_timer t;
	struct pm_timer_state st = {.count = 0xffffff, .bits = 24};
	uint32_t c;

	cr_assert_eq(pm_timer_init(&t, 24, err, sizeof(err)), 0);
	cr_assert_eq(pm_timer_load(&t, &st, err, sizeof(err)), 0);
	sleep_ms(1);
	c = inl(&t);
	cr_expect_leq(c, 0xffffff, "24 bits");
	cr_expect_lt(c, 0x100000, "wrapped past 0xffffff (0x%x)", c);
	cr_expect_gt(c, 3000, "and counted on (0x%x)", c);
}

Test(pm_timer, save_load_continues_the_count)
{
	struct pm_timer src, dst;
	struct pm_timer_state st;
	uint64_t t0, t1;
	uint32_t c;

	cr_assert_eq(pm_timer_init(&src, 32, err, sizeof(err)), 0);
	cr_assert_eq(pm_timer_init(&dst, 32, err, sizeof(err)), 0);
	sleep_ms(30); /* the source ran ahead of the destination */
	pm_timer_save(&src, &st);
	cr_expect_eq(st.bits, 32);
	cr_expect_geq(st.count, 30 * 3579);
	t0 = clock_now_ns();
	cr_assert_eq(pm_timer_load(&dst, &st, err, sizeof(err)), 0, "%s", err);
	c = inl(&dst);
	t1 = clock_now_ns();
	cr_expect_geq(c, st.count);
	cr_expect_leq(c - st.count, pm_timer_ticks(t1 - t0) + 1);
}

Test(pm_timer, refuses_bad_width_and_state)
{
	struct pm_timer t;
	struct pm_timer_state st = {.count = 1, .bits = 24};

	cr_expect_eq(pm_timer_init(&t, 16, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "16 bits"), "%s", err);
	cr_assert_eq(pm_timer_init(&t, 32, err, sizeof(err)), 0);
	cr_expect_eq(pm_timer_load(&t, &st, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "24-bit count"), "%s", err);
	cr_assert_eq(pm_timer_init(&t, 24, err, sizeof(err)), 0);
	st.count = 0x1000000;
	cr_expect_eq(pm_timer_load(&t, &st, err, sizeof(err)), -EINVAL);
}

Test(pm_timer, writes_ignored)
{
	struct pm_timer t;
	uint32_t v = 0, c0, c1;

	cr_assert_eq(pm_timer_init(&t, 32, err, sizeof(err)), 0);
	c0 = inl(&t);
	pm_timer_ops.write(&t, 0, &v, 4);
	c1 = inl(&t);
	cr_expect_geq(c1, c0);
}
