/* SPDX-License-Identifier: MIT */
/*
 * fault.h - the second-level fault service: missing-page faults on guest RAM
 * caught with userfaultfd (MODE_MISSING) and resolved in user space.
 *
 * Each registered range of guest RAM has a resolver: zero-fill
 * (UFFDIO_ZEROPAGE), fill from a file (pread into a bounce buffer, then
 * UFFDIO_COPY), or fetch: a hook that queues a request for the page (the
 * migration destination sends it to the source) and returns at once; the
 * page is placed later by fault_place_page() from whichever thread receives
 * it, which wakes the faulting vCPU. The fault thread never blocks on
 * anything but poll(), and never touches registered guest memory itself.
 *
 * Threads: one fault thread (started by fault_start) reads the userfaultfd.
 * fault_place_page/fault_place_zero may be called from any thread.
 * Counters and histograms are guarded by fs->lock; the REQUESTED and
 * PRESENT page-state bits (ept/mem.h) are atomic. A page is marked PRESENT
 * only after its UFFDIO_COPY/ZEROPAGE succeeded or failed with EEXIST.
 */
#ifndef EPT_FAULT_H
#define EPT_FAULT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ept/mem.h"

enum fault_resolver {
	FAULT_ZERO,  /* demand-zero */
	FAULT_FILE,  /* from file_fd at file_off + (gpa - range gpa) */
	FAULT_FETCH, /* fetch hook; the page arrives via fault_place_page */
	FAULT_RESOLVER_MAX
};

/*
 * Latency histogram: log-linear buckets (8 per power of two of
 * nanoseconds), so percentiles are exact to within 1/8 of their value.
 */
#define FAULT_HIST_SUB	   8
#define FAULT_HIST_BUCKETS (64 * FAULT_HIST_SUB)

struct fault_hist {
	uint64_t count;
	uint64_t sum_ns;
	uint64_t max_ns;
	uint64_t buckets[FAULT_HIST_BUCKETS];
};

void fault_hist_add(struct fault_hist *h, uint64_t ns);
/* The p-th percentile (0 < p <= 100) in ns: the bucket's upper bound. */
uint64_t fault_hist_percentile(const struct fault_hist *h, double p);

struct fault_class_stats {
	uint64_t faults;	   /* faults resolved with this resolver */
	struct fault_hist latency; /* fault read -> page placed */
};

struct fault_stats {
	struct fault_class_stats cls[FAULT_RESOLVER_MAX];
	uint64_t eexist;     /* placement found the page already there */
	uint64_t dup_faults; /* fault for a page already requested */
	uint64_t stalls;     /* faults reported as waiting too long */
	uint64_t pending;    /* fetches requested, not yet placed */
	uint64_t errors;     /* ioctls that failed otherwise */
	/* The most vCPU threads ever waiting for fetches at the same time. */
	uint64_t max_waiters;
};

/* Queue a fetch of the page at gpa. Must not block. Returns 0 or -errno. */
typedef int (*fault_fetch_fn)(void *opaque, uint64_t gpa);
/* A fault has waited longer than the stall limit (called on fault thread). */
typedef void (*fault_stall_fn)(void *opaque, uint64_t gpa, uint64_t waited_ns,
			       pid_t tid);

struct fault_range {
	uint64_t gpa;
	uint64_t size;
	enum fault_resolver resolver;
	int file_fd;	   /* FAULT_FILE */
	uint64_t file_off; /* FAULT_FILE: file offset of gpa */
};

#define FAULT_MAX_RANGES  8
#define FAULT_MAX_PENDING 4096 /* fetches in flight tracked for stalls */

struct fault_pending {
	uint64_t page; /* page index (ept/mem.h) */
	uint64_t t0_ns;
	pid_t tid;
	bool reported;
};

struct fault_service {
	const struct guest_mem *mem;
	int uffd;
	int stop_efd; /* eventfd: fault_stop() wakes the thread with it */
	pthread_t thread;
	bool running;
	int nr_ranges;
	struct fault_range
		ranges[FAULT_MAX_RANGES]; /* set before fault_start */
	fault_fetch_fn fetch;
	fault_stall_fn on_stall;
	void *opaque;
	uint64_t stall_ns; /* 0: never report */

	pthread_mutex_t lock; /* guards st and pending[] */
	struct fault_stats st;
	int nr_pending;
	struct fault_pending pending[FAULT_MAX_PENDING];
};

/*
 * Prepare fs for mem: open the userfaultfd (never UFFD_USER_MODE_ONLY: KVM's
 * guest accesses would then fail with EFAULT), negotiate the API (with
 * UFFD_FEATURE_THREAD_ID so stalls name the vCPU thread). err names the
 * cause (e.g. vm.unprivileged_userfaultfd).
 */
int fault_init(struct fault_service *fs, const struct guest_mem *mem, char *err,
	       size_t errlen);
/* Register [gpa, gpa+size) (page aligned, inside one RAM region). */
int fault_register(struct fault_service *fs, const struct fault_range *r,
		   char *err, size_t errlen);
/* Set the fetch hook, stall reporter and limit (before fault_start). */
void fault_set_hooks(struct fault_service *fs, fault_fetch_fn fetch,
		     fault_stall_fn on_stall, void *opaque, uint64_t stall_ns);
int fault_start(struct fault_service *fs);
/* Stop the thread (eventfd), unregister, close. Idempotent. */
void fault_stop(struct fault_service *fs);

/*
 * Place one page (4 KiB at a page-aligned gpa) and wake whoever waits on
 * it. EEXIST (already placed) counts as success. Any thread.
 */
int fault_place_page(struct fault_service *fs, uint64_t gpa, const void *data);
int fault_place_zero(struct fault_service *fs, uint64_t gpa);
/*
 * n consecutive pages from gpa (in one RAM region; data: n pages, NULL for
 * zeros), with as few ioctls as the pages allow: one where none is there
 * yet; a page someone placed first is woken and skipped. 0 or -errno
 * (-EFAULT: the range is not all in one region of RAM). Any thread.
 */
int fault_place_pages(struct fault_service *fs, uint64_t gpa, const void *data,
		      uint32_t n);

void fault_get_stats(struct fault_service *fs, struct fault_stats *out);
/*
 * The gpas of the fetches still pending (at most max into gpa, which may be
 * NULL) and how long the oldest has waited. Any thread.
 */
int fault_pending_list(struct fault_service *fs, uint64_t *gpa, int max,
		       uint64_t *oldest_ns);
const char *fault_resolver_name(enum fault_resolver r);

#endif /* EPT_FAULT_H */
