/* SPDX-License-Identifier: MIT */
/*
 * fault.c - the userfaultfd fault service (see fault.h for the contract).
 *
 * One fault thread polls the userfaultfd and a stop eventfd. Each missing-page
 * fault is translated host address -> gpa -> registered range and resolved by
 * that range's resolver: zero-fill and file ranges are resolved at once with
 * UFFDIO_ZEROPAGE or a bounce buffer and UFFDIO_COPY; fetch ranges get a
 * pending entry and a call to the fetch hook, and the page is placed later
 * by fault_place_page() from any thread. A resolution that fails (fetch hook
 * error, pread or ioctl error) leaves the faulting thread blocked and its
 * pending entry in place; the periodic scan of the pending table retries it
 * and reports entries that wait longer than stall_ns. EEXIST from an ioctl
 * means someone else placed the page first: it counts as success, followed
 * by an explicit UFFDIO_WAKE because a failed ioctl wakes nobody.
 *
 * Who owns what:
 *   fault thread   uffd reads, the bounce buffer, the retry/scan schedule;
 *                  reads ranges[], hooks and stall_ns (all written before
 *                  fault_start, which the pthread_create orders before it).
 *   any thread     fault_place_page/fault_place_zero, fault_get_stats.
 *   fs->lock       st and pending[]/nr_pending. Never held across a hook
 *                  call or an ioctl.
 *   atomics        the PRESENT and REQUESTED bits of mem->state. REQUESTED
 *                  is set only by the fault thread. A placer sets PRESENT
 *                  (after its ioctl) before taking the lock to drop the
 *                  pending entry; the fault thread re-checks PRESENT under
 *                  the lock before adding one, so an entry is never added
 *                  for a page whose placer has already passed that point.
 *   the caller     fault_init/register/set_hooks/start/stop, from one
 *                  thread; fault_place_* must not race with fault_stop.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/userfaultfd.h>

#include "common/page.h"
#include "common/clock.h"
#include "common/err.h"
#include "ept/fault.h"
#include "common/guest_abi.h"

#define FAULT_PAGE	   PAGE_SIZE
#define FAULT_MSG_BATCH	   64
#define FAULT_SCAN_BATCH   64
#define FAULT_SCAN_MAX_NS  (100 * 1000000ULL) /* scan period ceiling */
#define FAULT_EAGAIN_TRIES 16
#define FAULT_NO_T0	   UINT64_MAX /* placement without a fault of ours */

_Static_assert(FAULT_HIST_SUB == 8, "bucket formula assumes 8 sub-buckets");

const char *fault_resolver_name(enum fault_resolver r)
{
	switch (r) {
	case FAULT_ZERO:
		return "zero";
	case FAULT_FILE:
		return "file";
	case FAULT_FETCH:
		return "fetch";
	default:
		return "?";
	}
}

/* ---- latency histogram ------------------------------------------------ */

/*
 * Values below 8 ns have a bucket each; above, each power of two [2^m,
 * 2^(m+1)) is cut into 8 equal buckets: index (m - 2) * 8 + the three bits
 * below the top one. Index 8 (ns = 8) follows index 7, so the index is
 * monotonic; the largest is 61 * 8 + 7 = 495 < FAULT_HIST_BUCKETS.
 */
static unsigned int fault_hist_index(uint64_t ns)
{
	unsigned int msb;

	if (ns < FAULT_HIST_SUB)
		return (unsigned int)ns;
	msb = 63 - (unsigned int)__builtin_clzll(ns);
	return (msb - 2) * FAULT_HIST_SUB + ((ns >> (msb - 3)) & 7);
}

/* Largest value that falls in bucket idx. */
static uint64_t fault_hist_upper(unsigned int idx)
{
	unsigned int shift;
	uint64_t lower;

	if (idx < FAULT_HIST_SUB)
		return idx;
	shift = idx / FAULT_HIST_SUB + 2 - 3;
	lower = (uint64_t)(FAULT_HIST_SUB + idx % FAULT_HIST_SUB) << shift;
	return lower + ((1ULL << shift) - 1);
}

void fault_hist_add(struct fault_hist *h, uint64_t ns)
{
	h->count++;
	h->sum_ns += ns;
	if (ns > h->max_ns)
		h->max_ns = ns;
	h->buckets[fault_hist_index(ns)]++;
}

/* Nearest rank: the smallest sample with at least p% of samples <= it. */
uint64_t fault_hist_percentile(const struct fault_hist *h, double p)
{
	uint64_t rank, seen = 0;
	double r;

	if (!h->count)
		return 0;
	if (p > 100.0)
		p = 100.0;
	r = p * (double)h->count / 100.0;
	rank = r > 0 ? (uint64_t)r : 0;
	if ((double)rank < r)
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank > h->count)
		rank = h->count;
	for (unsigned int i = 0; i < FAULT_HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank) {
			uint64_t up = fault_hist_upper(i);

			return up < h->max_ns ? up : h->max_ns;
		}
	}
	return h->max_ns;
}

/* Under fs->lock: one fault of class cls resolved after lat_ns. */
static void fault_account_locked(struct fault_service *fs,
				 enum fault_resolver cls, uint64_t lat_ns)
{
	fs->st.cls[cls].faults++;
	fault_hist_add(&fs->st.cls[cls].latency, lat_ns);
}

static void fault_count_error(struct fault_service *fs)
{
	pthread_mutex_lock(&fs->lock);
	fs->st.errors++;
	pthread_mutex_unlock(&fs->lock);
}

/* ---- setup and teardown ----------------------------------------------- */

static int fault_uffd_open(char *err, size_t errlen)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	int ret;

	if (fd >= 0)
		return fd;
	ret = -errno;
	if (ret == -EPERM)
		err_set(err, errlen,
			  "userfaultfd: Operation not permitted (as root, or "
			  "set vm.unprivileged_userfaultfd=1)");
	else
		err_set(err, errlen, "userfaultfd: %s", strerror(-ret));
	return ret;
}

static int fault_uffd_api(int fd, uint64_t features)
{
	struct uffdio_api api = {.api = UFFD_API, .features = features};

	return ioctl(fd, UFFDIO_API, &api) < 0 ? -errno : 0;
}

/*
 * UFFDIO_API may be issued once per fd, so when the kernel refuses
 * THREAD_ID (EINVAL) the handshake is redone on a fresh fd without it;
 * faults then carry tid 0.
 */
static int fault_open(struct fault_service *fs, char *err, size_t errlen)
{
	int fd, ret;

	fd = fault_uffd_open(err, errlen);
	if (fd < 0)
		return fd;
	ret = fault_uffd_api(fd, UFFD_FEATURE_THREAD_ID);
	if (ret == -EINVAL) {
		close(fd);
		fd = fault_uffd_open(err, errlen);
		if (fd < 0)
			return fd;
		ret = fault_uffd_api(fd, 0);
	}
	if (ret) {
		err_set(err, errlen, "UFFDIO_API: %s", strerror(-ret));
		close(fd);
		return ret;
	}
	fs->uffd = fd;
	return 0;
}

int fault_init(struct fault_service *fs, const struct guest_mem *mem, char *err,
	       size_t errlen)
{
	int ret;

	memset(fs, 0, sizeof(*fs));
	fs->uffd = -1;
	fs->stop_efd = -1;
	if (!mem || !mem->base || !mem->state[MEM_PS_PRESENT].words) {
		err_set(err, errlen, "fault: guest memory not created");
		return -EINVAL;
	}
	ret = fault_open(fs, err, errlen);
	if (ret)
		return ret;
	fs->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fs->stop_efd < 0) {
		ret = -errno;
		err_set(err, errlen, "eventfd: %s", strerror(-ret));
		goto fail;
	}
	ret = -pthread_mutex_init(&fs->lock, NULL);
	if (ret) {
		err_set(err, errlen, "pthread_mutex_init: %s",
			  strerror(-ret));
		goto fail;
	}
	fs->mem = mem;
	return 0;
fail:
	if (fs->stop_efd >= 0)
		close(fs->stop_efd);
	close(fs->uffd);
	fs->uffd = -1;
	fs->stop_efd = -1;
	return ret;
}

static const struct fault_range *
fault_find_range(const struct fault_service *fs, uint64_t gpa)
{
	for (int i = 0; i < fs->nr_ranges; i++) {
		const struct fault_range *r = &fs->ranges[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return r;
	}
	return NULL;
}

static int fault_check_range(const struct fault_service *fs,
			     const struct fault_range *r, char *err,
			     size_t errlen)
{
	if ((unsigned int)r->resolver >= FAULT_RESOLVER_MAX) {
		err_set(err, errlen, "fault: bad resolver %d", r->resolver);
		return -EINVAL;
	}
	if (!r->size || (r->gpa | r->size) % FAULT_PAGE) {
		err_set(err, errlen,
			  "fault: range 0x%llx+0x%llx is empty or not page "
			  "aligned",
			  (unsigned long long)r->gpa,
			  (unsigned long long)r->size);
		return -EINVAL;
	}
	if (!mem_gpa_to_hva(fs->mem, r->gpa, r->size)) {
		err_set(err, errlen,
			  "fault: range 0x%llx+0x%llx is not inside one RAM "
			  "region",
			  (unsigned long long)r->gpa,
			  (unsigned long long)r->size);
		return -EINVAL;
	}
	if (r->resolver == FAULT_FILE && r->file_fd < 0) {
		err_set(err, errlen, "fault: file range without a file");
		return -EBADF;
	}
	return 0;
}

static bool fault_overlaps(const struct fault_service *fs,
			   const struct fault_range *r)
{
	for (int i = 0; i < fs->nr_ranges; i++) {
		const struct fault_range *o = &fs->ranges[i];

		if (r->gpa < o->gpa + o->size && o->gpa < r->gpa + r->size)
			return true;
	}
	return false;
}

static int fault_uffd_register(struct fault_service *fs,
			       const struct fault_range *r, char *err,
			       size_t errlen)
{
	const uint64_t need =
		(1ULL << _UFFDIO_COPY) | (1ULL << _UFFDIO_ZEROPAGE);
	struct uffdio_register reg = {
		.range.start = (uint64_t)(uintptr_t)mem_gpa_to_hva(
			fs->mem, r->gpa, r->size),
		.range.len = r->size,
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	if (ioctl(fs->uffd, UFFDIO_REGISTER, &reg) < 0) {
		int ret = -errno;

		err_set(err, errlen, "UFFDIO_REGISTER: %s", strerror(-ret));
		return ret;
	}
	if ((reg.ioctls & need) != need) {
		ioctl(fs->uffd, UFFDIO_UNREGISTER, &reg.range);
		err_set(err, errlen,
			  "UFFDIO_REGISTER: no UFFDIO_COPY/ZEROPAGE on guest "
			  "RAM (ioctls 0x%llx)",
			  (unsigned long long)reg.ioctls);
		return -EOPNOTSUPP;
	}
	return 0;
}

int fault_register(struct fault_service *fs, const struct fault_range *r,
		   char *err, size_t errlen)
{
	int ret;

	if (fs->uffd < 0 || !fs->mem) {
		err_set(err, errlen, "fault: service not initialised");
		return -EBADF;
	}
	if (fs->running) {
		err_set(err, errlen, "fault: register before fault_start");
		return -EBUSY;
	}
	ret = fault_check_range(fs, r, err, errlen);
	if (ret)
		return ret;
	if (fs->nr_ranges == FAULT_MAX_RANGES) {
		err_set(err, errlen, "fault: more than %d ranges",
			  FAULT_MAX_RANGES);
		return -ENOSPC;
	}
	if (fault_overlaps(fs, r)) {
		err_set(err, errlen, "fault: range 0x%llx+0x%llx overlaps",
			  (unsigned long long)r->gpa,
			  (unsigned long long)r->size);
		return -EEXIST;
	}
	ret = fault_uffd_register(fs, r, err, errlen);
	if (ret)
		return ret;
	fs->ranges[fs->nr_ranges++] = *r;
	return 0;
}

void fault_set_hooks(struct fault_service *fs, fault_fetch_fn fetch,
		     fault_stall_fn on_stall, void *opaque, uint64_t stall_ns)
{
	fs->fetch = fetch;
	fs->on_stall = on_stall;
	fs->opaque = opaque;
	fs->stall_ns = stall_ns;
}

/* ---- uffd ioctls ------------------------------------------------------- */

static int fault_wake(struct fault_service *fs, uint64_t hva)
{
	struct uffdio_range range = {.start = hva, .len = FAULT_PAGE};

	int ret;

	if (ioctl(fs->uffd, UFFDIO_WAKE, &range) == 0)
		return 0;
	ret = -errno;
	fault_count_error(fs);
	return ret;
}

static int fault_ioctl_fill(int uffd, uint64_t hva, const void *src)
{
	struct uffdio_copy copy = {
		.dst = hva,
		.src = (uint64_t)(uintptr_t)src,
		.len = FAULT_PAGE,
	};
	struct uffdio_zeropage zero = {
		.range = {.start = hva, .len = FAULT_PAGE},
	};
	int ret;

	if (src)
		ret = ioctl(uffd, UFFDIO_COPY, &copy);
	else
		ret = ioctl(uffd, UFFDIO_ZEROPAGE, &zero);
	return ret < 0 ? -errno : 0;
}

/*
 * Place one page (src NULL: zeros) and wake its waiters. Returns 0, 1 when
 * the page was already there (EEXIST; the waiters are woken explicitly, as
 * a failed ioctl wakes nobody), or -errno.
 */
static int fault_fill(struct fault_service *fs, uint64_t hva, const void *src)
{
	int ret, tries = 0;

	do {
		ret = fault_ioctl_fill(fs->uffd, hva, src);
	} while ((ret == -EAGAIN || ret == -EINTR) &&
		 ++tries < FAULT_EAGAIN_TRIES);
	if (ret != -EEXIST)
		return ret;
	fault_wake(fs, hva);
	return 1;
}

/* ---- pending fetches (all under fs->lock) ------------------------------ */

static int fault_pending_find(const struct fault_service *fs, uint64_t page)
{
	for (int i = 0; i < fs->nr_pending; i++)
		if (fs->pending[i].page == page)
			return i;
	return -1;
}

static void fault_pending_del(struct fault_service *fs, int i)
{
	fs->pending[i] = fs->pending[--fs->nr_pending];
}

/*
 * Distinct threads among the pending fetches: each waits on one page, so
 * this is how many vCPUs wait at once. Counted only while the table is
 * short (it is, unless the source is gone): the work is quadratic.
 */
#define FAULT_WAITERS_SCAN 64

static void fault_count_waiters(struct fault_service *fs)
{
	uint64_t n = 0;

	if (fs->nr_pending > FAULT_WAITERS_SCAN)
		return;
	for (int i = 0; i < fs->nr_pending; i++) {
		int j = 0;

		while (j < i && fs->pending[j].tid != fs->pending[i].tid)
			j++;
		n += j == i;
	}
	if (n > fs->st.max_waiters)
		fs->st.max_waiters = n;
}

/* Track page; an existing entry keeps its (earlier) t0. False when full. */
static bool fault_pending_add(struct fault_service *fs, uint64_t page,
			      uint64_t t0, pid_t tid)
{
	if (fault_pending_find(fs, page) >= 0)
		return true;
	if (fs->nr_pending == FAULT_MAX_PENDING)
		return false;
	fs->pending[fs->nr_pending++] = (struct fault_pending){
		.page = page,
		.t0_ns = t0,
		.tid = tid,
	};
	fault_count_waiters(fs);
	return true;
}

/*
 * A page is in place (its ioctl succeeded or found it there): publish
 * PRESENT, drop REQUESTED and the pending entry, account the fault. The
 * latency runs from the pending entry's t0 when there is one, else from
 * t0 (FAULT_NO_T0: not a fault, nothing to account).
 */
static void fault_settle(struct fault_service *fs, uint64_t page,
			 enum fault_resolver cls, uint64_t t0, bool eexist)
{
	struct guest_mem *mem = (struct guest_mem *)fs->mem;
	uint64_t now;
	int i;

	bitmap_set(&mem->state[MEM_PS_PRESENT], page);
	pthread_mutex_lock(&fs->lock);
	bitmap_clear(&mem->state[MEM_PS_REQUESTED], page);
	now = clock_now_ns();
	if (eexist)
		fs->st.eexist++;
	i = fs->nr_pending ? fault_pending_find(fs, page) : -1;
	if (i >= 0) {
		t0 = fs->pending[i].t0_ns;
		fault_pending_del(fs, i);
	}
	if (t0 != FAULT_NO_T0)
		fault_account_locked(fs, cls, now > t0 ? now - t0 : 0);
	pthread_mutex_unlock(&fs->lock);
}

/* ---- resolution on the fault thread ------------------------------------ */

static int fault_read_file(const struct fault_range *r, uint64_t gpa,
			   uint8_t *buf)
{
	off_t off = (off_t)(r->file_off + (gpa - r->gpa));
	size_t got = 0;

	while (got < FAULT_PAGE) {
		ssize_t n = pread(r->file_fd, buf + got, FAULT_PAGE - got,
				  off + (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break; /* end of file: the rest reads as zeros */
		got += (size_t)n;
	}
	memset(buf + got, 0, FAULT_PAGE - got);
	return 0;
}

/* Zero-fill or file range. On failure the faulter stays blocked: retried. */
static bool fault_resolve_local(struct fault_service *fs,
				const struct fault_range *r, uint64_t gpa,
				uint64_t page, uint64_t t0, pid_t tid,
				uint8_t *buf)
{
	uint64_t hva = (uint64_t)(uintptr_t)(fs->mem->base + page * FAULT_PAGE);
	const void *src = NULL;
	int ret = 0;

	if (r->resolver == FAULT_FILE) {
		ret = fault_read_file(r, gpa, buf);
		src = buf;
	}
	if (ret == 0)
		ret = fault_fill(fs, hva, src);
	if (ret >= 0) {
		fault_settle(fs, page, r->resolver, t0, ret > 0);
		return true;
	}
	pthread_mutex_lock(&fs->lock);
	fs->st.errors++;
	/* A placer got there meanwhile (and woke the faulter): done. */
	if (bitmap_test(&fs->mem->state[MEM_PS_PRESENT], page)) {
		pthread_mutex_unlock(&fs->lock);
		return true;
	}
	fault_pending_add(fs, page, t0, tid);
	pthread_mutex_unlock(&fs->lock);
	return false;
}

/* The page was placed before we got to its fault: just wake the faulter. */
static void fault_wake_present(struct fault_service *fs, uint64_t hva,
			       uint64_t t0)
{
	if (fault_wake(fs, hva))
		return;
	pthread_mutex_lock(&fs->lock);
	fault_account_locked(fs, FAULT_FETCH, clock_now_ns() - t0);
	pthread_mutex_unlock(&fs->lock);
}

/* Call the fetch hook for a page whose REQUESTED bit we just set. */
static bool fault_request(struct fault_service *fs, uint64_t gpa, uint64_t page)
{
	struct guest_mem *mem = (struct guest_mem *)fs->mem;

	if (fs->fetch(fs->opaque, gpa) == 0)
		return true;
	bitmap_clear(&mem->state[MEM_PS_REQUESTED], page);
	fault_count_error(fs);
	return false;
}

/*
 * Returns false when the fetch hook failed (the pending entry stays, to be
 * retried by the scan). A table overflow still fetches, but the fault is
 * counted now, without a latency sample, and is not watched for stalls.
 */
static bool fault_fetch(struct fault_service *fs, uint64_t gpa, uint64_t page,
			uint64_t t0, pid_t tid)
{
	struct guest_mem *mem = (struct guest_mem *)fs->mem;
	uint64_t hva = (uint64_t)(uintptr_t)(mem->base + page * FAULT_PAGE);

	if (bitmap_test(&mem->state[MEM_PS_PRESENT], page)) {
		fault_wake_present(fs, hva, t0);
		return true;
	}
	if (bitmap_test_and_set(&mem->state[MEM_PS_REQUESTED], page)) {
		pthread_mutex_lock(&fs->lock);
		fs->st.dup_faults++; /* the placement wakes every waiter */
		pthread_mutex_unlock(&fs->lock);
		return true;
	}
	pthread_mutex_lock(&fs->lock);
	if (bitmap_test(&mem->state[MEM_PS_PRESENT], page)) {
		bitmap_clear(&mem->state[MEM_PS_REQUESTED], page);
		pthread_mutex_unlock(&fs->lock);
		fault_wake_present(fs, hva, t0);
		return true;
	}
	if (!fault_pending_add(fs, page, t0, tid))
		fs->st.cls[FAULT_FETCH].faults++;
	pthread_mutex_unlock(&fs->lock);
	return fault_request(fs, gpa, page);
}

/* One uffd message. Returns false when a resolution needs a retry. */
static bool fault_handle(struct fault_service *fs, const struct uffd_msg *msg,
			 uint64_t t0, uint8_t *buf)
{
	uint64_t addr = msg->arg.pagefault.address & ~(FAULT_PAGE - 1);
	pid_t tid = (pid_t)msg->arg.pagefault.feat.ptid;
	const struct fault_range *r = NULL;
	uint64_t gpa, page;

	if (msg->event != UFFD_EVENT_PAGEFAULT)
		return true; /* no other event was asked for */
	if (mem_hva_to_gpa(fs->mem, (void *)(uintptr_t)addr, &gpa) == 0 &&
	    mem_gpa_to_page(fs->mem, gpa, &page) == 0)
		r = fault_find_range(fs, gpa);
	if (!r) {
		fault_count_error(fs); /* cannot happen: we registered it */
		return true;
	}
	if (r->resolver == FAULT_FETCH)
		return fault_fetch(fs, gpa, page, t0, tid);
	return fault_resolve_local(fs, r, gpa, page, t0, tid, buf);
}

/* Read faults until the fd is empty. Returns false when one needs a retry. */
static bool fault_drain(struct fault_service *fs, uint8_t *buf)
{
	struct uffd_msg msgs[FAULT_MSG_BATCH];
	bool ok = true;

	for (;;) {
		ssize_t n = read(fs->uffd, msgs, sizeof(msgs));
		uint64_t t0 = clock_now_ns();

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			fault_count_error(fs);
		if (n <= 0)
			return ok;
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++)
			ok &= fault_handle(fs, &msgs[i], t0, buf);
	}
}

/* ---- stall scan and retries -------------------------------------------- */

struct fault_todo {
	uint64_t page;
	uint64_t waited_ns;
	pid_t tid;
	bool stall;
	bool retry;
};

/* Retry the resolution of a pending page whose request is not in flight. */
static bool fault_retry(struct fault_service *fs, uint64_t page, uint8_t *buf)
{
	struct guest_mem *mem = (struct guest_mem *)fs->mem;
	uint64_t gpa = mem_page_to_gpa(mem, page);
	const struct fault_range *r = fault_find_range(fs, gpa);

	if (!r)
		return true;
	if (r->resolver != FAULT_FETCH)
		return fault_resolve_local(fs, r, gpa, page, clock_now_ns(), 0,
					   buf);
	if (bitmap_test_and_set(&mem->state[MEM_PS_REQUESTED], page))
		return true;
	if (bitmap_test(&mem->state[MEM_PS_PRESENT], page)) {
		bitmap_clear(&mem->state[MEM_PS_REQUESTED], page);
		return true; /* placed since the scan looked */
	}
	return fault_request(fs, gpa, page);
}

/* Under fs->lock: what pending entry p needs now. */
static bool fault_scan_one(struct fault_service *fs, struct fault_pending *p,
			   uint64_t now, struct fault_todo *t)
{
	const struct guest_mem *mem = fs->mem;
	uint64_t waited = now > p->t0_ns ? now - p->t0_ns : 0;

	*t = (struct fault_todo){.page = p->page, .tid = p->tid};
	if (fs->stall_ns && !p->reported && waited >= fs->stall_ns) {
		p->reported = true;
		fs->st.stalls++;
		t->stall = true;
		t->waited_ns = waited;
	}
	t->retry = !bitmap_test(&mem->state[MEM_PS_REQUESTED], p->page);
	return t->stall || t->retry;
}

/*
 * Report stalls and retry failed resolutions, at most FAULT_SCAN_BATCH per
 * scan (the rest wait for the next one); hooks run without the lock.
 * Returns true when another scan should follow for retries.
 */
static bool fault_scan(struct fault_service *fs, uint8_t *buf)
{
	struct guest_mem *mem = (struct guest_mem *)fs->mem;
	struct fault_todo todo[FAULT_SCAN_BATCH];
	uint64_t now = clock_now_ns();
	bool again = false;
	int i = 0, n = 0;

	pthread_mutex_lock(&fs->lock);
	while (i < fs->nr_pending && n < FAULT_SCAN_BATCH) {
		struct fault_pending *p = &fs->pending[i];

		/* PRESENT: its placer is about to drop it and account it. */
		if (!bitmap_test(&mem->state[MEM_PS_PRESENT], p->page) &&
		    fault_scan_one(fs, p, now, &todo[n]))
			n++;
		i++;
	}
	again = i < fs->nr_pending;
	pthread_mutex_unlock(&fs->lock);

	for (i = 0; i < n; i++) {
		if (todo[i].stall && fs->on_stall)
			fs->on_stall(fs->opaque,
				     mem_page_to_gpa(mem, todo[i].page),
				     todo[i].waited_ns, todo[i].tid);
		if (todo[i].retry)
			again |= !fault_retry(fs, todo[i].page, buf);
	}
	return again;
}

/*
 * Scan period: half the stall limit (at most 100 ms), 100 ms for retries;
 * none while nothing is pending. Only this thread adds pending entries, so
 * an empty table stays empty until the next fault wakes us anyway.
 */
static uint64_t fault_scan_period(struct fault_service *fs, bool retry)
{
	uint64_t period = 0;
	int pending;

	pthread_mutex_lock(&fs->lock);
	pending = fs->nr_pending;
	pthread_mutex_unlock(&fs->lock);
	if (!pending)
		return 0;
	if (fs->stall_ns) {
		period = fs->stall_ns / 2;
		if (period > FAULT_SCAN_MAX_NS)
			period = FAULT_SCAN_MAX_NS;
		if (period < 1000000)
			period = 1000000;
	} else if (retry) {
		period = FAULT_SCAN_MAX_NS;
	}
	return period;
}

static int fault_poll_timeout(uint64_t period, uint64_t next_scan, uint64_t now)
{
	if (!period)
		return -1;
	if (now >= next_scan)
		return 0;
	return (int)((next_scan - now + 999999) / 1000000);
}

static int fault_poll(struct fault_service *fs, struct pollfd *pfd, bool retry,
		      uint64_t last_scan)
{
	uint64_t period = fault_scan_period(fs, retry);
	uint64_t next = last_scan + period;
	int n = poll(pfd, 2, fault_poll_timeout(period, next, clock_now_ns()));

	if (n < 0 && errno != EINTR)
		fault_count_error(fs);
	return n;
}

static void *fault_thread(void *arg)
{
	struct fault_service *fs = arg;
	uint8_t bounce[FAULT_PAGE] __attribute__((aligned(64)));
	struct pollfd pfd[2] = {
		{.fd = fs->uffd, .events = POLLIN},
		{.fd = fs->stop_efd, .events = POLLIN},
	};
	uint64_t last_scan = clock_now_ns(), period, now;
	bool retry = false;

	pthread_setname_np(pthread_self(), "ept-fault");
	for (;;) {
		if (fault_poll(fs, pfd, retry, last_scan) < 0)
			continue;
		if (pfd[1].revents)
			break;
		if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
			fault_count_error(fs);
			break;
		}
		if ((pfd[0].revents & POLLIN) && !fault_drain(fs, bounce))
			retry = true;
		now = clock_now_ns();
		period = fault_scan_period(fs, retry);
		if (period && now - last_scan >= period) {
			retry = fault_scan(fs, bounce);
			last_scan = now;
		}
	}
	return NULL;
}

int fault_start(struct fault_service *fs)
{
	sigset_t all, old;
	int ret;

	if (fs->uffd < 0 || !fs->mem)
		return -EBADF;
	if (fs->running)
		return -EBUSY;
	for (int i = 0; i < fs->nr_ranges; i++)
		if (fs->ranges[i].resolver == FAULT_FETCH && !fs->fetch)
			return -EINVAL;
	/* vCPU kick signals are not for this thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&fs->thread, NULL, fault_thread, fs);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		return -ret;
	pthread_setname_np(fs->thread, "uffd"); /* only a name: unchecked */
	fs->running = true;
	return 0;
}

/*
 * Unregistering wakes any thread still blocked on a fault; it retries and,
 * the range being plain memory again, reads a zero page. Fine at teardown.
 */
void fault_stop(struct fault_service *fs)
{
	uint64_t one = 1;

	if (!fs->mem)
		return; /* never initialised */
	if (fs->running) {
		while (write(fs->stop_efd, &one, sizeof(one)) < 0 &&
		       errno == EINTR)
			;
		pthread_join(fs->thread, NULL);
		fs->running = false;
	}
	if (fs->uffd >= 0) {
		for (int i = 0; i < fs->nr_ranges; i++) {
			const struct fault_range *r = &fs->ranges[i];
			struct uffdio_range range = {
				.start = (uint64_t)(uintptr_t)mem_gpa_to_hva(
					fs->mem, r->gpa, r->size),
				.len = r->size,
			};

			ioctl(fs->uffd, UFFDIO_UNREGISTER, &range);
		}
		close(fs->uffd);
		fs->uffd = -1;
	}
	if (fs->stop_efd >= 0) {
		close(fs->stop_efd);
		fs->stop_efd = -1;
	}
}

/* ---- placement from any thread ----------------------------------------- */

static int fault_place(struct fault_service *fs, uint64_t gpa, const void *data)
{
	const struct guest_mem *mem = fs->mem;
	uint64_t page;
	uint8_t *hva;
	int ret = 0;

	if (!mem || fs->uffd < 0)
		return -EBADF;
	if (gpa % FAULT_PAGE)
		return -EINVAL;
	hva = mem_gpa_to_hva(mem, gpa, FAULT_PAGE);
	if (!hva || mem_gpa_to_page(mem, gpa, &page))
		return -EFAULT;
	if (!bitmap_test(&mem->state[MEM_PS_PRESENT], page)) {
		ret = fault_fill(fs, (uint64_t)(uintptr_t)hva, data);
		if (ret < 0) {
			fault_count_error(fs);
			return ret;
		}
	}
	fault_settle(fs, page, FAULT_FETCH, FAULT_NO_T0, ret > 0);
	return 0;
}

int fault_place_page(struct fault_service *fs, uint64_t gpa, const void *data)
{
	if (!data)
		return -EINVAL;
	return fault_place(fs, gpa, data);
}

int fault_place_zero(struct fault_service *fs, uint64_t gpa)
{
	return fault_place(fs, gpa, NULL);
}

int fault_pending_list(struct fault_service *fs, uint64_t *gpa, int max,
		       uint64_t *oldest_ns)
{
	uint64_t now = clock_now_ns(), oldest = 0;
	int n = 0;

	pthread_mutex_lock(&fs->lock);
	for (int i = 0; i < fs->nr_pending; i++) {
		const struct fault_pending *p = &fs->pending[i];
		uint64_t waited = now > p->t0_ns ? now - p->t0_ns : 0;

		if (waited > oldest)
			oldest = waited;
		if (gpa && n < max)
			gpa[n++] = mem_page_to_gpa(fs->mem, p->page);
	}
	pthread_mutex_unlock(&fs->lock);
	if (oldest_ns)
		*oldest_ns = oldest;
	return n;
}

void fault_get_stats(struct fault_service *fs, struct fault_stats *out)
{
	pthread_mutex_lock(&fs->lock);
	*out = fs->st;
	out->pending = (uint64_t)fs->nr_pending;
	pthread_mutex_unlock(&fs->lock);
}
