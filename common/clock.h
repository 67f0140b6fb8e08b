/* SPDX-License-Identifier: MIT */
/*
 * clock.h - the one clock the VMM measures with: CLOCK_MONOTONIC in
 * nanoseconds (shared by every process on the host, so two VMMs on one
 * machine can compare their timestamps).
 */
#ifndef COMMON_CLOCK_H
#define COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

#define NSEC_PER_SEC  1000000000ULL
#define NSEC_PER_MSEC 1000000ULL
#define NSEC_PER_USEC 1000ULL

/* CLOCK_MONOTONIC now, in ns. It cannot fail for this clock id on Linux. */
static inline uint64_t clock_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* The same clock in whole milliseconds. */
static inline uint64_t clock_now_ms(void)
{
	return clock_now_ns() / NSEC_PER_MSEC;
}

#endif /* COMMON_CLOCK_H */
