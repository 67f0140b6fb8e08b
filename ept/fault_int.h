/* SPDX-License-Identifier: MIT */
/*
 * fault_int.h - what the three parts of the fault service share: fault.c
 * (the fault thread and its dispatch), fault_uffd.c (the userfaultfd: its
 * handshake, range registration and the fill/wake ioctls) and fault_pages.c
 * (page-state bookkeeping: the pending table, settling a placed page,
 * placement from any thread, counters and histograms). Private to the three;
 * fault.c's header comment says which thread owns what.
 */
#ifndef EPT_FAULT_INT_H
#define EPT_FAULT_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/page.h"
#include "ept/fault.h"

#define FAULT_PAGE     PAGE_SIZE
#define FAULT_NO_T0    UINT64_MAX /* placement without a fault of ours */
#define FAULT_SLICE_NS 100000 /* the fault thread's slice (common/sched.h) */
/* A fill that places nothing, -EAGAIN or -EINTR: tried at most this often. */
#define FAULT_EAGAIN_TRIES 16

/* fault_uffd.c */
const struct fault_range *fault_find_range(const struct fault_service *fs,
					   uint64_t gpa);
/* UFFDIO_WAKE one page; a failure is counted. Returns 0 or -errno. */
int fault_wake(struct fault_service *fs, uint64_t hva);
/*
 * Place one page (src NULL: zeros) and wake its waiters. Returns 0, 1 when
 * the page was already there (EEXIST; the waiters are woken explicitly, as
 * a failed ioctl wakes nobody), or -errno.
 */
int fault_fill(struct fault_service *fs, uint64_t hva, const void *src);
/*
 * One UFFDIO_COPY (src NULL: UFFDIO_ZEROPAGE) of len bytes at hva, which
 * wakes the waiters of what it placed. 0 with *done = len, or -errno with
 * *done the bytes placed before the page that stopped it (-EEXIST: that
 * page was there; -EAGAIN: try the rest again).
 */
int fault_fill_run(struct fault_service *fs, uint64_t hva, const void *src,
		   uint64_t len, uint64_t *done);
/* Unregister every range, close the uffd and the stop eventfd. */
void fault_uffd_close(struct fault_service *fs);

/* fault_pages.c */
/* Under fs->lock: one fault of class cls resolved after lat_ns. */
void fault_account_locked(struct fault_service *fs, enum fault_resolver cls,
			  uint64_t lat_ns);
void fault_count_error(struct fault_service *fs);
/*
 * Under fs->lock: track page; an existing entry keeps its (earlier) t0.
 * False when full.
 */
bool fault_pending_add(struct fault_service *fs, uint64_t page, uint64_t t0,
		       pid_t tid);
/*
 * A page is in place: publish PRESENT, drop REQUESTED and the pending
 * entry, account the fault (takes fs->lock).
 */
void fault_settle(struct fault_service *fs, uint64_t page,
		  enum fault_resolver cls, uint64_t t0, bool eexist);

#endif /* EPT_FAULT_INT_H */
