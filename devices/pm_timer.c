/* SPDX-License-Identifier: MIT */
/*
 * pm_timer.c - the ACPI PM timer, counted from CLOCK_MONOTONIC (see
 * pm_timer.h).
 */
#include <errno.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "devices/pm_timer.h"

uint64_t pm_timer_ticks(uint64_t ns)
{
	return (uint64_t)((unsigned __int128)ns * PM_TIMER_HZ / NSEC_PER_SEC);
}

static uint32_t pm_timer_mask(const struct pm_timer *t)
{
	return t->bits == 32 ? UINT32_MAX : (1U << t->bits) - 1;
}

uint32_t pm_timer_read(const struct pm_timer *t)
{
	uint64_t off = __atomic_load_n(&t->offset, __ATOMIC_ACQUIRE);

	return (uint32_t)(pm_timer_ticks(clock_now_ns()) + off) &
	       pm_timer_mask(t);
}

static void pm_timer_io_read(void *opaque, uint64_t off, void *data,
			     uint32_t len)
{
	uint32_t count = pm_timer_read(opaque);
	uint64_t v = off < 4 ? (uint64_t)count >> (8 * off) : 0;

	memset(data, 0, len);
	memcpy(data, &v, len < sizeof(v) ? len : sizeof(v));
}

static void pm_timer_io_write(void *opaque, uint64_t off, const void *data,
			      uint32_t len)
{
	/* Read-only register. */
}

const struct bus_ops pm_timer_ops = {
	.read = pm_timer_io_read,
	.write = pm_timer_io_write,
};

/* The offset that makes the count read `count` now. */
static void pm_timer_set(struct pm_timer *t, uint32_t count)
{
	uint64_t off = (uint64_t)count - pm_timer_ticks(clock_now_ns());

	__atomic_store_n(&t->offset, off, __ATOMIC_RELEASE);
}

int pm_timer_init(struct pm_timer *t, unsigned int bits, char *err,
		  size_t errlen)
{
	if (bits != 24 && bits != 32) {
		err_set(err, errlen, "pm-timer: %u bits, must be 24 or 32",
			bits);
		return -EINVAL;
	}
	t->bits = bits;
	pm_timer_set(t, 0);
	return 0;
}

void pm_timer_save(const struct pm_timer *t, struct pm_timer_state *st)
{
	st->count = pm_timer_read(t);
	st->bits = t->bits;
}

int pm_timer_load(struct pm_timer *t, const struct pm_timer_state *st,
		  char *err, size_t errlen)
{
	if (st->bits != t->bits || st->count > pm_timer_mask(t)) {
		err_set(err, errlen,
			"pm-timer state: %u-bit count 0x%x, this timer counts "
			"%u bits",
			st->bits, st->count, t->bits);
		return -EINVAL;
	}
	pm_timer_set(t, st->count);
	return 0;
}

/* ---- the device table's view --------------------------------------------- */

DEV_OPS_STATE(pm_timer_dev_ops, "pm_timer", PM_TIMER_STATE_VERSION,
	      struct pm_timer, struct pm_timer_state, pm_timer_save,
	      pm_timer_load);
