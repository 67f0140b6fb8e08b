/* SPDX-License-Identifier: MIT */
/*
 * sched.h - latency hints for the calling thread.
 */
#ifndef COMMON_SCHED_H
#define COMMON_SCHED_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Ask the scheduler (SCHED_OTHER, EEVDF) for a time slice of slice_ns
 * (Linux 6.12+ reads sched_attr.sched_runtime as the slice and clamps it
 * to 0.1-100 ms): a thread with a shorter slice than the running one
 * preempts it when it wakes, without the starvation risk of real-time.
 * 0 or -errno (-EINVAL from older kernels, which then ignore the hint).
 */
int sched_short_slice(uint64_t slice_ns);

/*
 * Run the calling thread SCHED_FIFO at the lowest real-time priority until
 * sched_fifo_leave: threads it wakes meanwhile (a VM's vCPUs, which then
 * spin in the guest) wait for it instead of preempting it on its CPU,
 * where it would sit runnable until the next scheduler tick moved it (4 ms
 * at HZ=250), and it does what must follow the wake-up at once. Where the
 * kernel refuses (no CAP_SYS_NICE, no real-time budget) nothing changes.
 * Returns whether it took effect; give that to sched_fifo_leave, which
 * puts the thread back to SCHED_OTHER.
 */
bool sched_fifo_enter(void);
void sched_fifo_leave(bool entered);

/*
 * Lower the calling thread to nice 19 for good: it still runs (never
 * starved, unlike SCHED_IDLE) but yields at once to any thread of normal
 * priority. For work that is left once nothing waits for it. 0 or -errno.
 */
int sched_background(void);

#endif /* COMMON_SCHED_H */
