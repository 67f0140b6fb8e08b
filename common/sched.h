/* SPDX-License-Identifier: MIT */
/*
 * sched.h - latency hints for the calling thread.
 */
#ifndef COMMON_SCHED_H
#define COMMON_SCHED_H

#include <stdint.h>

/*
 * Ask the scheduler (SCHED_OTHER, EEVDF) for a time slice of slice_ns
 * (Linux 6.12+ reads sched_attr.sched_runtime as the slice and clamps it
 * to 0.1-100 ms): a thread with a shorter slice than the running one
 * preempts it when it wakes, without the starvation risk of real-time.
 * 0 or -errno (-EINVAL from older kernels, which then ignore the hint).
 */
int sched_short_slice(uint64_t slice_ns);

#endif /* COMMON_SCHED_H */
