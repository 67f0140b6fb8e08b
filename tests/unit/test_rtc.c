/* SPDX-License-Identifier: MIT */
/*
 * test_rtc.c - the RTC/CMOS (devices/rtc.c) with a fixed wall clock: the
 * time in BCD and binary, UIP around the update, register C cleared on
 * read, the alarm as a wake source, and save/load.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "devices/rtc.h"

#define SEC 1000000000ULL

/* 2021-01-02 03:04:05 UTC, a Saturday. */
#define T0 (1609556645ULL * SEC)

static uint64_t fake_now;
static char err[256];

static uint64_t fake_clock(void)
{
	return fake_now;
}

static void setup(struct rtc *r)
{
	cr_assert_eq(rtc_init(r), 0);
	r->now = fake_clock;
	fake_now = T0 + SEC / 2;
}

static uint8_t cmos_in(struct rtc *r, uint8_t reg)
{
	uint8_t v = 0;

	rtc_ops.write(r, 0, &reg, 1);
	rtc_ops.read(r, 1, &v, 1);
	return v;
}

static void cmos_out(struct rtc *r, uint8_t reg, uint8_t v)
{
	rtc_ops.write(r, 0, &reg, 1);
	rtc_ops.write(r, 1, &v, 1);
}

Test(rtc, time_in_bcd_and_binary)
{
	struct rtc r;

	setup(&r);
	cr_expect_eq(cmos_in(&r, RTC_SEC), 0x05);
	cr_expect_eq(cmos_in(&r, RTC_MIN), 0x04);
	cr_expect_eq(cmos_in(&r, RTC_HOUR), 0x03);
	cr_expect_eq(cmos_in(&r, RTC_MDAY), 0x02);
	cr_expect_eq(cmos_in(&r, RTC_MONTH), 0x01);
	cr_expect_eq(cmos_in(&r, RTC_YEAR), 0x21);
	cr_expect_eq(cmos_in(&r, RTC_WDAY), 7);
	cr_expect_eq(cmos_in(&r, RTC_CENTURY), 0x20);
	cmos_out(&r, RTC_REG_B, RTC_B_24H | RTC_B_DM_BIN);
	fake_now += 10 * 3600 * SEC + 7 * SEC; /* 13:04:12 */
	cr_expect_eq(cmos_in(&r, RTC_SEC), 12);
	cr_expect_eq(cmos_in(&r, RTC_HOUR), 13);
	cmos_out(&r, RTC_REG_B, RTC_B_DM_BIN); /* 12-hour: 1 PM */
	cr_expect_eq(cmos_in(&r, RTC_HOUR), 0x81);
	cr_expect_eq(cmos_in(&r, RTC_REG_D), RTC_D_VRT);
	rtc_destroy(&r);
}

Test(rtc, uip_around_the_update)
{
	struct rtc r;

	setup(&r);
	cr_expect_eq(cmos_in(&r, RTC_REG_A), 0x26, "mid-second: no UIP");
	fake_now = T0 + SEC - RTC_UIP_BEFORE_NS;
	cr_expect_eq(cmos_in(&r, RTC_REG_A), 0x26 | RTC_A_UIP);
	fake_now = T0 + SEC + RTC_UIP_AFTER_NS - 1;
	cr_expect_eq(cmos_in(&r, RTC_REG_A), 0x26 | RTC_A_UIP);
	fake_now = T0 + SEC + RTC_UIP_AFTER_NS;
	cr_expect_eq(cmos_in(&r, RTC_REG_A), 0x26);
	cmos_out(&r, RTC_REG_A, 0xff);
	cr_expect_eq(cmos_in(&r, RTC_REG_A), 0x7f, "UIP is not writable");
	rtc_destroy(&r);
}

Test(rtc, alarm_wakes_and_flags)
{
	struct rtc r;
	uint64_t at = 0;

	setup(&r);
	cmos_out(&r, RTC_SEC_ALARM, RTC_DONT_CARE);
	cmos_out(&r, RTC_MIN_ALARM, RTC_DONT_CARE);
	cmos_out(&r, RTC_HOUR_ALARM, RTC_DONT_CARE);
	cr_expect_not(rtc_next_alarm(&r, fake_now, &at), "AIE off");
	cmos_out(&r, RTC_REG_B, cmos_in(&r, RTC_REG_B) | RTC_B_AIE);
	cr_assert(rtc_next_alarm(&r, fake_now, &at));
	cr_expect_eq(at, T0 + SEC, "don't-care fires at the next second");
	cmos_out(&r, RTC_SEC_ALARM, 0x30);
	cmos_out(&r, RTC_MIN_ALARM, 0x04);
	cr_assert(rtc_next_alarm(&r, fake_now, &at));
	cr_expect_eq(at, T0 + 25 * SEC, "03:04:30");
	cmos_out(&r, RTC_MIN_ALARM, 0x03);
	cr_assert(rtc_next_alarm(&r, fake_now, &at));
	cr_expect_eq(at, T0 + 3600 * SEC - 35 * SEC, "04:03:30");
	cr_expect_eq(cmos_in(&r, RTC_REG_C), 0);
	rtc_alarm_fired(&r);
	cr_expect_eq(cmos_in(&r, RTC_REG_C), RTC_C_AF | RTC_C_IRQF);
	cr_expect_eq(cmos_in(&r, RTC_REG_C), 0, "cleared by the read");
	rtc_destroy(&r);
}

Test(rtc, cmos_ram_and_save_load)
{
	struct rtc a, b;
	struct rtc_state st;

	setup(&a);
	setup(&b);
	cmos_out(&a, 0x40, 0x5a);
	cmos_out(&a, RTC_REG_B, RTC_B_24H | RTC_B_AIE);
	cr_expect_eq(cmos_in(&a, 0x40 | 0x80), 0x5a, "bit 7 is the NMI mask");
	rtc_save(&a, &st);
	cr_assert_eq(rtc_load(&b, &st, err, sizeof(err)), 0);
	cr_expect_eq(cmos_in(&b, 0x40), 0x5a);
	cr_expect_eq(cmos_in(&b, RTC_REG_B), RTC_B_24H | RTC_B_AIE);
	st.cmos[RTC_REG_A] |= RTC_A_UIP;
	cr_expect_eq(rtc_load(&b, &st, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "UIP"), "%s", err);
	cr_expect_eq(rtc_dev_ops.state_size, sizeof(st));
	rtc_destroy(&a);
	rtc_destroy(&b);
}
