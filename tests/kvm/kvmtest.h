/* SPDX-License-Identifier: MIT */
/*
 * kvmtest.h - what the in-process KVM tests share: one test VM (struct
 * tvm) booted from the test guest (env GUEST_ELF) or created incoming,
 * the markers its vCPU threads post, and the checks of its heartbeat and
 * of the guest's own verify. Every helper asserts (Criterion) and so ends
 * the test on failure; each runs on the test thread.
 */
#ifndef TESTS_KVM_KVMTEST_H
#define TESTS_KVM_KVMTEST_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/vm.h"

#define KVMTEST_MEM_SIZE (64ULL << 20)
#define KVMTEST_NR_CPUS	 2
#define KVMTEST_WAIT_S	 10

/* One VM of a test; its vCPU threads post markers (guarded by lock). */
struct tvm {
	struct vm vm;
	bool created;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t markers[MARK_MAX];
	uint32_t done_seq;
	bool exited;
	char serial[64];
	char hblog[64];
};

/*
 * Create t's VM (KVMTEST_MEM_SIZE, KVMTEST_NR_CPUS, the bitmap dirty back
 * end): a guest booting append, or an incoming one when append is NULL.
 * Skips the test when /dev/kvm is absent.
 */
void tvm_create(struct tvm *t, const char *append);
void tvm_start(struct tvm *t);
/* Stop, join and destroy t's VM, if created; remove its files. */
void tvm_destroy(struct tvm *t);
void tvm_dump_serial(const struct tvm *t);

struct testdev_stats tvm_stats(struct tvm *t);
/* Poll the test device until it has seen n heartbeats (KVMTEST_WAIT_S). */
void tvm_wait_heartbeats(struct tvm *t, uint64_t n);
/* Post a mailbox request and wait until the guest has done it. */
void tvm_request(struct tvm *t, int req);
/* The guest checks every page of its dirty region: all must be right. */
void tvm_verify(struct tvm *t);
/* The first heartbeat this VM's test device logged. */
uint32_t tvm_first_logged_seq(struct tvm *t);
/*
 * After a migration: t's heartbeat goes on from exactly where the source's
 * stopped (before: the source's statistics at the switch), for 100 more.
 */
void tvm_check_continues(struct tvm *t, const struct testdev_stats *before);

#endif /* TESTS_KVM_KVMTEST_H */
