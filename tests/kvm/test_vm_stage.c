// SPDX-License-Identifier: MIT
/*
 * test_vm_stage.c - vm_stage(): the vCPU threads exist, parked before
 * their first KVM_RUN, and nothing of the guest runs until vm_start; a
 * staged VM that never starts still exits; a running VM is not staged;
 * a staged vCPU waits SCHED_FIFO and is an ordinary thread again once its
 * first stretch is over (vcpu_boost.c).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/sched.h"
#include "tests/kvm/kvmtest.h"
#include "vmm/vcpu.h"

/* Wait on vm->cond until every vCPU thread is parked (vcpu_park). */
static void wait_all_parked(struct vm *vm)
{
	struct timespec dl;
	int r = 0;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += KVMTEST_WAIT_S;
	pthread_mutex_lock(&vm->lock);
	while (vm->nr_parked < vm->nr_vcpus && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&vm->cond, &vm->lock, &dl);
	cr_assert_eq(vm->nr_parked, vm->nr_vcpus, "%d of %d vCPUs parked",
		     vm->nr_parked, vm->nr_vcpus);
	pthread_mutex_unlock(&vm->lock);
}

/* A heartbeat guest, its vCPU threads staged and parked. */
static void create_staged(struct tvm *t)
{
	char err[256];

	tvm_create(t, "heartbeat");
	cr_assert_eq(vm_stage(&t->vm, err, sizeof(err)), 0, "%s", err);
	wait_all_parked(&t->vm);
}

Test(vm_stage, nothing_runs_until_start)
{
	struct tvm t;
	char err[256];

	create_staged(&t);
	for (int i = 0; i < t.vm.nr_vcpus; i++) {
		cr_assert(t.vm.vcpus[i].thread_started, "vcpu%d", i);
		cr_assert_eq(atomic_load(&t.vm.vcpus[i].epoch), 0,
			     "vcpu%d returned from KVM_RUN while staged", i);
	}
	cr_assert_eq(tvm_stats(&t).heartbeats, 0);
	tvm_start(&t);
	tvm_wait_heartbeats(&t, 20);
	cr_assert_eq(vm_stage(&t.vm, err, sizeof(err)), -EBUSY);
	cr_assert(strstr(err, "the VM is running"), "%s", err);
	tvm_destroy(&t);
}

Test(vm_stage, a_staged_vm_that_never_starts_exits)
{
	struct tvm t;

	create_staged(&t);
	cr_assert_eq(tvm_stats(&t).heartbeats, 0);
	/* vm_request_exit wakes them and vm_join returns (a hang would time
	 * the test out). */
	tvm_destroy(&t);
	cr_assert_not(t.created);
}

/* The kernel's scheduling policy of vCPU i's thread (not glibc's copy). */
static int vcpu_policy(struct tvm *t, int i)
{
	pid_t tid = atomic_load(&t->vm.vcpus[i].tid);
	int policy;

	cr_assert_gt(tid, 0, "vcpu%d has no thread id", i);
	policy = sched_getscheduler(tid);
	cr_assert_geq(policy, 0, "sched_getscheduler(vcpu%d): %s", i,
		      strerror(errno));
	return policy;
}

/*
 * Parked, a staged vCPU is SCHED_FIFO; once started, each one is an
 * ordinary thread again after its first exit (the bound for a vCPU that
 * never exits: tests/unit/test_vcpu_boost.c).
 */
Test(vm_stage, the_first_stretch_is_real_time_then_ordinary)
{
	bool fifo = sched_fifo_enter();
	struct tvm t;

	sched_fifo_leave(fifo);
	if (!fifo)
		cr_skip_test("no real-time scheduling here (CAP_SYS_NICE)");
	create_staged(&t);
	for (int i = 0; i < t.vm.nr_vcpus; i++)
		cr_assert_eq(vcpu_policy(&t, i), SCHED_FIFO,
			     "staged vcpu%d is not SCHED_FIFO", i);
	tvm_start(&t);
	tvm_wait_heartbeats(&t, 20);
	for (int i = 0; i < t.vm.nr_vcpus; i++)
		cr_assert_eq(vcpu_policy(&t, i), SCHED_OTHER,
			     "vcpu%d still real-time 20 beats after start", i);
	tvm_destroy(&t);
}
