/* SPDX-License-Identifier: MIT */
/*
 * vcpu_boost.c - a staged vCPU's first stretch, once the VM starts, goes
 * ahead of every ordinary thread on its CPU.
 *
 * At a migration's GO the destination's loop lets the staged vCPU threads
 * go and sends RUNNING; at that moment the source (reading RUNNING, tearing
 * down), the client it wakes (printing the statistics) and the loop itself
 * are runnable too. On a shared host the woken vCPU, an ordinary thread,
 * ran after them or was preempted by them while it re-warmed its shadow
 * page tables: 0.2-0.8 ms of the guest's downtime (docs/benchmarks.md,
 * "The resumed vCPU first"). So a staged vCPU thread makes itself
 * SCHED_FIFO at the lowest real-time priority before it first parks
 * (vcpu_boost_arm): parked, that costs nothing; woken, it runs before
 * every SCHED_OTHER thread and none of them preempts it. The loop, itself
 * SCHED_FIFO through the wake-up (sched_fifo_enter), still sends RUNNING
 * first. The boost ends at the vCPU's first return from KVM_RUN (the guest
 * needed the VMM: its first stretch is over), or after VCPU_BOOST_MAX_NS
 * by a timer that kicks it out of KVM_RUN, so a guest that never exits
 * cannot hold a CPU; the thread is then SCHED_OTHER with its short slice.
 * Where the kernel refuses real time (no CAP_SYS_NICE, no budget) nothing
 * changes.
 *
 * Everything here runs on the vCPU's own thread and is its own state.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/sched.h"
#include "vmm/vcpu.h"

#define VCPU_BOOST_MAX_NS 2000000 /* at most 2 ms ahead of the rest */

void vcpu_boost_arm(struct vcpu *v)
{
	if (v->boost == VCPU_BOOST_OFF && sched_fifo_enter())
		v->boost = VCPU_BOOST_ARMED;
}

/* The thread's own one-shot timer, sending it the kick signal. */
static int vcpu_boost_timer(struct vcpu *v)
{
	struct sigevent sev;

	if (v->boost_timer_ok)
		return 0;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIGVCPU_KICK;
	sev._sigev_un._tid = gettid();
	if (timer_create(CLOCK_MONOTONIC, &sev, &v->boost_timer) < 0)
		return -errno;
	v->boost_timer_ok = true;
	return 0;
}

void vcpu_boost_begin(struct vcpu *v)
{
	struct itimerspec its = {.it_value.tv_nsec = VCPU_BOOST_MAX_NS};

	if (v->boost != VCPU_BOOST_ARMED)
		return;
	v->boost = VCPU_BOOST_ON;
	/* No boost without the timer's bound. */
	if (vcpu_boost_timer(v) ||
	    timer_settime(v->boost_timer, 0, &its, NULL) < 0)
		vcpu_boost_end(v);
}

void vcpu_boost_end(struct vcpu *v)
{
	struct itimerspec off;

	if (v->boost == VCPU_BOOST_OFF)
		return;
	if (v->boost_timer_ok) {
		memset(&off, 0, sizeof(off));
		/* Cannot fail for a timer of ours; a late kick is harmless. */
		(void)timer_settime(v->boost_timer, 0, &off, NULL);
	}
	/* Back to SCHED_OTHER: with the short slice, or plain without. */
	if (sched_short_slice(VCPU_SLICE_NS))
		sched_fifo_leave(true);
	v->boost = VCPU_BOOST_OFF;
}

void vcpu_boost_free(struct vcpu *v)
{
	if (v->boost_timer_ok)
		(void)timer_delete(v->boost_timer);
	v->boost_timer_ok = false;
}
