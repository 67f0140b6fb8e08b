/* SPDX-License-Identifier: MIT */
/*
 * test_sched.c - common/sched.h's hold on the CPU (sched_fifo_enter/leave):
 * where the kernel lets this process use SCHED_FIFO (root, with a
 * real-time budget) the thread runs SCHED_FIFO at the lowest priority
 * between the two and SCHED_OTHER after; where it refuses, enter says so
 * and the thread's policy never changes. And sched_short_slice leaves the
 * policy SCHED_OTHER, and sched_background leaves the thread at nice 19
 * (each test runs in a process of its own, so the change ends with it).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/sched.h"

static int policy_now(int *prio)
{
	struct sched_param sp;
	int policy = -1;

	cr_assert_eq(pthread_getschedparam(pthread_self(), &policy, &sp), 0);
	if (prio)
		*prio = sp.sched_priority;
	return policy;
}

Test(sched, fifo_between_enter_and_leave)
{
	int prio = -1;
	bool in;

	cr_assert_eq(policy_now(NULL), SCHED_OTHER);
	in = sched_fifo_enter();
	if (in) {
		cr_assert_eq(policy_now(&prio), SCHED_FIFO);
		cr_assert_eq(prio, sched_get_priority_min(SCHED_FIFO));
	} else {
		cr_assert_eq(policy_now(NULL), SCHED_OTHER,
			     "refused, yet the policy changed");
	}
	sched_fifo_leave(in);
	cr_assert_eq(policy_now(&prio), SCHED_OTHER);
	cr_assert_eq(prio, 0);
}

Test(sched, leave_without_enter_changes_nothing)
{
	sched_fifo_leave(false);
	cr_assert_eq(policy_now(NULL), SCHED_OTHER);
}

Test(sched, short_slice_keeps_sched_other)
{
	int r = sched_short_slice(100000);

	cr_assert(r == 0 || r == -EINVAL || r == -EPERM, "r = %d", r);
	cr_assert_eq(policy_now(NULL), SCHED_OTHER);
}

Test(sched, background_is_nice_19)
{
	id_t me = (id_t)syscall(SYS_gettid);

	errno = 0;
	cr_assert_eq(getpriority(PRIO_PROCESS, me), 0);
	cr_assert_eq(sched_background(), 0);
	errno = 0;
	cr_assert_eq(getpriority(PRIO_PROCESS, me), 19, "errno %d", errno);
	cr_assert_eq(policy_now(NULL), SCHED_OTHER);
}
