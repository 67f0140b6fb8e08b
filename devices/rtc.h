/* SPDX-License-Identifier: MIT */
/*
 * rtc.h - the PC's MC146818 real-time clock and CMOS RAM on ports 0x70
 * (index; bit 7 masks NMI) and 0x71 (data), as much of it as guests that
 * read the time or arm the alarm to wake from S3 use (kvm-unit-tests' s3).
 *
 * The time registers (0, 2, 4, 6-9) read the host's CLOCK_REALTIME in UTC,
 * in BCD or binary and 24- or 12-hour form as register B says; writes to
 * them are kept in CMOS but do not set the clock. Register A reads UIP
 * (bit 7) from RTC_UIP_BEFORE_NS before each second's update to
 * RTC_UIP_AFTER_NS after it (the part's 244 us warning plus its update
 * cycle), so a guest that waits for UIP to rise and fall lands just after
 * an update. Register C's flags clear on read; AF (alarm) is set when the
 * alarm wakes the machine (rtc_alarm_fired). Register D reads VRT (valid
 * RAM). No interrupt is raised on IRQ 8 (no periodic, update or alarm
 * interrupt): the alarm is only a wake-up source (rtc_next_alarm). The
 * other CMOS bytes (14-127) are plain RAM, zero at reset.
 *
 * Threads: vCPU threads dispatch, the VM core asks for the next alarm;
 * r->lock guards the index and the CMOS bytes.
 */
#ifndef DEVICES_RTC_H
#define DEVICES_RTC_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/bus.h"
#include "devices/dev.h"

#define RTC_PORT     0x70
#define RTC_PORT_LEN 2
#define RTC_CMOS_LEN 128

#define RTC_SEC	       0x00
#define RTC_SEC_ALARM  0x01
#define RTC_MIN	       0x02
#define RTC_MIN_ALARM  0x03
#define RTC_HOUR       0x04
#define RTC_HOUR_ALARM 0x05
#define RTC_WDAY       0x06
#define RTC_MDAY       0x07
#define RTC_MONTH      0x08
#define RTC_YEAR       0x09
#define RTC_REG_A      0x0a
#define RTC_REG_B      0x0b
#define RTC_REG_C      0x0c
#define RTC_REG_D      0x0d
#define RTC_CENTURY    0x32

#define RTC_A_UIP     0x80
#define RTC_B_SET     0x80
#define RTC_B_AIE     0x20
#define RTC_B_DM_BIN  0x04 /* binary, not BCD */
#define RTC_B_24H     0x02
#define RTC_C_IRQF    0x80
#define RTC_C_AF      0x20
#define RTC_D_VRT     0x80
#define RTC_DONT_CARE 0xc0 /* alarm byte: matches any value */

#define RTC_UIP_BEFORE_NS 244000ULL
#define RTC_UIP_AFTER_NS  1984000ULL

struct rtc {
	pthread_mutex_t lock; /* guards index and cmos */
	uint8_t index;	      /* last write to 0x70 (bit 7: NMI masked) */
	uint8_t cmos[RTC_CMOS_LEN];
	/* The wall clock, ns since the epoch: CLOCK_REALTIME unless a test sets
	 * it. */
	uint64_t (*now)(void);
};

extern const struct bus_ops rtc_ops;

/* Register A 0x26 (32.768 kHz, 1024 Hz rate), B 0x02, D VRT. */
int rtc_init(struct rtc *r);
void rtc_destroy(struct rtc *r);

/*
 * The wall-clock time (ns since the epoch) at or after `after` when the
 * alarm next matches, if the guest enabled the alarm (register B AIE):
 * true and *at set; false when the alarm is off.
 */
bool rtc_next_alarm(struct rtc *r, uint64_t after, uint64_t *at);
/* The alarm woke the machine: register C reads AF and IRQF. */
void rtc_alarm_fired(struct rtc *r);

/* Migratable state, version RTC_STATE_VERSION: the index and the CMOS. */
#define RTC_STATE_VERSION 1

struct rtc_state {
	uint8_t index;
	uint8_t cmos[RTC_CMOS_LEN]; /* time bytes as written, not the clock */
};

void rtc_save(struct rtc *r, struct rtc_state *st);
int rtc_load(struct rtc *r, const struct rtc_state *st, char *err,
	     size_t errlen);

extern const struct dev_ops rtc_dev_ops;

#endif /* DEVICES_RTC_H */
