// SPDX-License-Identifier: MIT
/*
 * test_vcpu_boost.c - a boosted vCPU's first stretch is bounded: the
 * boost's timer kicks a thread that never leaves a blocking call (as a
 * guest that never exits never leaves KVM_RUN) out of it, and the end
 * puts the thread back to SCHED_OTHER. No KVM needed: the kick is the
 * same signal that interrupts KVM_RUN.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>

#include "common/clock.h"
#include "vmm/vcpu.h"

struct stretch {
	bool armed;    /* the kernel let the thread go real-time */
	int policy_on; /* during the stretch */
	int poll_ret, poll_errno;
	uint64_t poll_ns; /* how long the blocking call lasted */
	int policy_off;	  /* after vcpu_boost_end */
	enum vcpu_boost boost_off;
};

/* A vCPU thread whose KVM_RUN never returns by itself: ppoll for 5 s. */
static void *stretch_thread(void *arg)
{
	struct timespec five = {.tv_sec = 5};
	struct stretch *s = arg;
	struct vcpu v;
	sigset_t set;
	uint64_t t0;

	memset(&v, 0, sizeof(v));
	sigemptyset(&set);
	sigaddset(&set, SIGVCPU_KICK);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	vcpu_boost_arm(&v);
	s->armed = v.boost == VCPU_BOOST_ARMED;
	if (!s->armed)
		return NULL;
	vcpu_boost_begin(&v);
	s->policy_on = sched_getscheduler(0);
	t0 = clock_now_ns();
	s->poll_ret = ppoll(NULL, 0, &five, NULL);
	s->poll_errno = errno;
	s->poll_ns = clock_now_ns() - t0;
	vcpu_boost_end(&v);
	s->policy_off = sched_getscheduler(0);
	s->boost_off = v.boost;
	vcpu_boost_free(&v);
	return NULL;
}

Test(vcpu_boost, the_timer_ends_a_stretch_that_never_exits)
{
	struct stretch s;
	pthread_t th;
	sigset_t set, old;

	memset(&s, 0, sizeof(s));
	cr_assert_eq(vcpu_signals_init(), 0);
	/* Only the stretch's thread takes the kick, as in the VMM. */
	sigemptyset(&set);
	sigaddset(&set, SIGVCPU_KICK);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	cr_assert_eq(pthread_create(&th, NULL, stretch_thread, &s), 0);
	pthread_join(th, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!s.armed)
		cr_skip_test("no real-time scheduling here (CAP_SYS_NICE)");
	cr_assert_eq(s.policy_on, SCHED_FIFO);
	cr_assert_eq(s.poll_ret, -1,
		     "the blocking call was not interrupted "
		     "(returned %d after %llu ms)",
		     s.poll_ret, (unsigned long long)(s.poll_ns / 1000000));
	cr_assert_eq(s.poll_errno, EINTR, "%s", strerror(s.poll_errno));
	/* The bound is 2 ms (vcpu_boost.c): 500 leaves a loaded host room. */
	cr_assert_lt(s.poll_ns, 500000000ULL, "kicked only after %llu ms",
		     (unsigned long long)(s.poll_ns / 1000000));
	cr_assert_eq(s.policy_off, SCHED_OTHER);
	cr_assert_eq(s.boost_off, VCPU_BOOST_OFF);
}
