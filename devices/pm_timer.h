/* SPDX-License-Identifier: MIT */
/*
 * pm_timer.h - the ACPI power-management timer: a free-running counter at
 * 3.579545 MHz, 24 or 32 bits wide (the FADT's TMR_VAL_EXT flag says
 * which), read with inl from the port the FADT's pm_tmr_blk names (0x608
 * in vmm/acpi.h). Reads of 1 or 2 bytes return those bytes of the count;
 * writes are ignored. kvm-unit-tests' vmexit inl_pmtimer reads it.
 *
 * The count is derived, never stored: count = ticks(CLOCK_MONOTONIC) +
 * offset, masked to the width. A migration saves the count and the
 * destination sets its offset so that the count continues from there:
 * CLOCK_MONOTONIC is per host, the count is the guest's.
 *
 * Threads: vCPU threads read; pm_timer_load() (main thread, vCPUs
 * stopped) is the only writer of offset, an atomic, so reads take no lock.
 */
#ifndef DEVICES_PM_TIMER_H
#define DEVICES_PM_TIMER_H

#include <stddef.h>
#include <stdint.h>

#include "devices/bus.h"
#include "devices/dev.h"

#define PM_TIMER_HZ	  3579545ULL
#define PM_TIMER_PORT_LEN 4

struct pm_timer {
	unsigned int bits; /* 24 or 32 */
	uint64_t offset;   /* atomic: added to ticks(now), modulo 2^64 */
};

extern const struct bus_ops pm_timer_ops;

/* bits: 24 or 32 (-EINVAL, err set, otherwise). The count starts at 0. */
int pm_timer_init(struct pm_timer *t, unsigned int bits, char *err,
		  size_t errlen);

/* Timer ticks in ns nanoseconds, rounded down. */
uint64_t pm_timer_ticks(uint64_t ns);
/* The count now, as the guest reads it. */
uint32_t pm_timer_read(const struct pm_timer *t);

/* Migratable state, version PM_TIMER_STATE_VERSION. */
#define PM_TIMER_STATE_VERSION 1

struct pm_timer_state {
	uint32_t count; /* the count when saved */
	uint32_t bits;	/* 24 or 32: must match the destination's FADT */
};

void pm_timer_save(const struct pm_timer *t, struct pm_timer_state *st);
int pm_timer_load(struct pm_timer *t, const struct pm_timer_state *st,
		  char *err, size_t errlen);

/* The device table's view: its state struct, no thread, no DMA. */
extern const struct dev_ops pm_timer_dev_ops;

#endif /* DEVICES_PM_TIMER_H */
