/* SPDX-License-Identifier: MIT */
/*
 * sched.c - latency hints for the calling thread (sched.h).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/sched.h"

/* The kernel's struct sched_attr (glibc 2.36 has no wrapper). */
struct sched_attr_v1 {
	uint32_t size;
	uint32_t sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime;
	uint64_t sched_deadline;
	uint64_t sched_period;
};

bool sched_fifo_enter(void)
{
	struct sched_param sp = {.sched_priority =
					 sched_get_priority_min(SCHED_FIFO)};

	return pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0;
}

void sched_fifo_leave(bool entered)
{
	struct sched_param sp = {.sched_priority = 0};

	if (entered) /* back as it was: SCHED_OTHER cannot be refused */
		(void)pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);
}

int sched_background(void)
{
	/* Linux: nice is per thread, and who = the thread id names one. */
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19) < 0)
		return -errno;
	return 0;
}

int sched_short_slice(uint64_t slice_ns)
{
	struct sched_attr_v1 a;

	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.sched_policy = SCHED_OTHER;
	a.sched_runtime = slice_ns;
	if (syscall(SYS_sched_setattr, 0, &a, 0) < 0)
		return -errno;
	return 0;
}
