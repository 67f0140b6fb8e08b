/* SPDX-License-Identifier: MIT */
/*
 * rtc.c - MC146818 RTC and CMOS (see rtc.h): the time from the host's
 * wall clock, UIP around each second's update, the alarm as a wake source.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "devices/rtc.h"

#define NS_PER_SEC    1000000000ULL
#define RTC_A_DEFAULT 0x26
#define RTC_DAY_SECS  86400U

static uint64_t rtc_realtime(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static uint8_t rtc_to_bcd(unsigned int v)
{
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

/* A time field in the guest's format (register B: BCD or binary). */
static uint8_t rtc_enc(const struct rtc *r, unsigned int v)
{
	return (r->cmos[RTC_REG_B] & RTC_B_DM_BIN) ? (uint8_t)v : rtc_to_bcd(v);
}

static uint8_t rtc_hour(const struct rtc *r, unsigned int h)
{
	unsigned int h12;

	if (r->cmos[RTC_REG_B] & RTC_B_24H)
		return rtc_enc(r, h);
	h12 = h % 12 ? h % 12 : 12;
	return rtc_enc(r, h12) | (h >= 12 ? 0x80 : 0);
}

/* The clock's bytes at wall time ns; r->lock held. */
static uint8_t rtc_time_reg(const struct rtc *r, unsigned int reg, uint64_t ns)
{
	time_t t = (time_t)(ns / NS_PER_SEC);
	struct tm tm;

	gmtime_r(&t, &tm);
	switch (reg) {
	case RTC_SEC:
		return rtc_enc(r, tm.tm_sec);
	case RTC_MIN:
		return rtc_enc(r, tm.tm_min);
	case RTC_HOUR:
		return rtc_hour(r, tm.tm_hour);
	case RTC_WDAY:
		return rtc_enc(r, tm.tm_wday + 1);
	case RTC_MDAY:
		return rtc_enc(r, tm.tm_mday);
	case RTC_MONTH:
		return rtc_enc(r, tm.tm_mon + 1);
	case RTC_YEAR:
		return rtc_enc(r, tm.tm_year % 100);
	default: /* RTC_CENTURY */
		return rtc_enc(r, 19 + tm.tm_year / 100);
	}
}

static bool rtc_is_time_reg(unsigned int reg)
{
	return reg == RTC_SEC || reg == RTC_MIN || reg == RTC_HOUR ||
	       (reg >= RTC_WDAY && reg <= RTC_YEAR) || reg == RTC_CENTURY;
}

/* UIP: just before a second's update, or during the update cycle. */
static bool rtc_uip(uint64_t ns)
{
	uint64_t frac = ns % NS_PER_SEC;

	return frac >= NS_PER_SEC - RTC_UIP_BEFORE_NS ||
	       frac < RTC_UIP_AFTER_NS;
}

static uint8_t rtc_read_reg(struct rtc *r, unsigned int reg)
{
	uint8_t v;

	if (rtc_is_time_reg(reg))
		return rtc_time_reg(r, reg, r->now());
	switch (reg) {
	case RTC_REG_A:
		v = r->cmos[RTC_REG_A] & ~RTC_A_UIP;
		return v | (rtc_uip(r->now()) ? RTC_A_UIP : 0);
	case RTC_REG_C:
		v = r->cmos[RTC_REG_C];
		r->cmos[RTC_REG_C] = 0;
		return v;
	case RTC_REG_D:
		return RTC_D_VRT;
	default:
		return r->cmos[reg];
	}
}

static void rtc_write_reg(struct rtc *r, unsigned int reg, uint8_t v)
{
	switch (reg) {
	case RTC_REG_A:
		r->cmos[RTC_REG_A] = v & ~RTC_A_UIP;
		break;
	case RTC_REG_C:
	case RTC_REG_D:
		break; /* read-only */
	default:
		r->cmos[reg] = v;
		break;
	}
}

static void rtc_io_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct rtc *r = opaque;
	uint8_t *p = data;

	memset(data, 0xff, len);
	pthread_mutex_lock(&r->lock);
	if (off == 0)
		p[0] = r->index;
	else
		p[0] = rtc_read_reg(r, r->index & (RTC_CMOS_LEN - 1));
	pthread_mutex_unlock(&r->lock);
}

static void rtc_io_write(void *opaque, uint64_t off, const void *data,
			 uint32_t len)
{
	struct rtc *r = opaque;
	uint8_t v = *(const uint8_t *)data;

	(void)len; /* the low byte: a wider write's other bytes miss the port */
	pthread_mutex_lock(&r->lock);
	if (off == 0)
		r->index = v;
	else
		rtc_write_reg(r, r->index & (RTC_CMOS_LEN - 1), v);
	pthread_mutex_unlock(&r->lock);
}

const struct bus_ops rtc_ops = {
	.read = rtc_io_read,
	.write = rtc_io_write,
};

int rtc_init(struct rtc *r)
{
	int ret;

	memset(r, 0, sizeof(*r));
	ret = pthread_mutex_init(&r->lock, NULL);
	if (ret)
		return -ret;
	r->cmos[RTC_REG_A] = RTC_A_DEFAULT;
	r->cmos[RTC_REG_B] = RTC_B_24H;
	r->now = rtc_realtime;
	return 0;
}

void rtc_destroy(struct rtc *r)
{
	pthread_mutex_destroy(&r->lock);
}

/* One alarm byte against the clock's value (don't-care: 0xc0-0xff). */
static bool rtc_alarm_match(const struct rtc *r, uint8_t alarm, uint8_t now)
{
	return (alarm & RTC_DONT_CARE) == RTC_DONT_CARE || alarm == now;
}

bool rtc_next_alarm(struct rtc *r, uint64_t after, uint64_t *at)
{
	uint64_t sec = (after + NS_PER_SEC - 1) / NS_PER_SEC;
	bool found = false;

	pthread_mutex_lock(&r->lock);
	if (!(r->cmos[RTC_REG_B] & RTC_B_AIE))
		goto out;
	/* The alarm compares seconds, minutes and hours: one day repeats. */
	for (unsigned int i = 0; i <= RTC_DAY_SECS && !found; i++) {
		uint64_t ns = (sec + i) * NS_PER_SEC;

		found = rtc_alarm_match(r, r->cmos[RTC_SEC_ALARM],
					rtc_time_reg(r, RTC_SEC, ns)) &&
			rtc_alarm_match(r, r->cmos[RTC_MIN_ALARM],
					rtc_time_reg(r, RTC_MIN, ns)) &&
			rtc_alarm_match(r, r->cmos[RTC_HOUR_ALARM],
					rtc_time_reg(r, RTC_HOUR, ns));
		if (found)
			*at = ns;
	}
out:
	pthread_mutex_unlock(&r->lock);
	return found;
}

void rtc_alarm_fired(struct rtc *r)
{
	pthread_mutex_lock(&r->lock);
	r->cmos[RTC_REG_C] |= RTC_C_AF | RTC_C_IRQF;
	pthread_mutex_unlock(&r->lock);
}

void rtc_save(struct rtc *r, struct rtc_state *st)
{
	pthread_mutex_lock(&r->lock);
	st->index = r->index;
	memcpy(st->cmos, r->cmos, sizeof(st->cmos));
	pthread_mutex_unlock(&r->lock);
}

int rtc_load(struct rtc *r, const struct rtc_state *st, char *err,
	     size_t errlen)
{
	if (st->cmos[RTC_REG_A] & RTC_A_UIP) {
		err_set(err, errlen, "rtc state: UIP stored in register A");
		return -EINVAL;
	}
	pthread_mutex_lock(&r->lock);
	r->index = st->index;
	memcpy(r->cmos, st->cmos, sizeof(r->cmos));
	pthread_mutex_unlock(&r->lock);
	return 0;
}

/* ---- the device table's view --------------------------------------------- */

DEV_OPS_STATE(rtc_dev_ops, "rtc", RTC_STATE_VERSION, struct rtc,
	      struct rtc_state, rtc_save, rtc_load);
