/* SPDX-License-Identifier: MIT */
/*
 * fault_pages.c - the fault service's page-state bookkeeping: the pending
 * table (fetches requested and not yet placed, watched for stalls), settling
 * a placed page (PRESENT set, REQUESTED and its pending entry dropped, the
 * fault accounted), placement from any thread (fault_place_page/zero),
 * counters and the log-linear latency histograms, and their readers
 * (fault_get_stats, fault_pending_list).
 *
 * Threads: st and pending[]/nr_pending are guarded by fs->lock (any thread;
 * only the fault thread adds pending entries); the PRESENT and REQUESTED
 * bits are atomic, PRESENT set before the lock is taken to drop an entry.
 * See fault.c for the whole service's ownership.
 */
#include <pthread.h>
#include <errno.h>

#include "common/clock.h"
#include "ept/fault_int.h"

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

void fault_account_locked(struct fault_service *fs, enum fault_resolver cls,
			  uint64_t lat_ns)
{
	fs->st.cls[cls].faults++;
	fault_hist_add(&fs->st.cls[cls].latency, lat_ns);
}

void fault_count_error(struct fault_service *fs)
{
	pthread_mutex_lock(&fs->lock);
	fs->st.errors++;
	pthread_mutex_unlock(&fs->lock);
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
bool fault_pending_add(struct fault_service *fs, uint64_t page, uint64_t t0,
		       pid_t tid)
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
void fault_settle(struct fault_service *fs, uint64_t page,
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

/* ---- placement from any thread ----------------------------------------- */

/* Settle n pages from page on, placed by one ioctl. */
static void fault_settle_run(struct fault_service *fs, uint64_t page,
			     uint64_t n)
{
	for (uint64_t k = 0; k < n; k++)
		fault_settle(fs, page + k, FAULT_FETCH, FAULT_NO_T0, false);
}

int fault_place_pages(struct fault_service *fs, uint64_t gpa, const void *data,
		      uint32_t n)
{
	const struct guest_mem *mem = fs->mem;
	const uint8_t *src = data;
	uint64_t page, i = 0;
	int tries = 0;
	uint8_t *hva;

	if (!mem || fs->uffd < 0)
		return -EBADF;
	if (gpa % FAULT_PAGE || !n)
		return -EINVAL;
	hva = mem_gpa_to_hva(mem, gpa, (uint64_t)n * FAULT_PAGE);
	if (!hva || mem_gpa_to_page(mem, gpa, &page))
		return -EFAULT;
	while (i < n) {
		uint64_t off = i * FAULT_PAGE, done;
		int r = fault_fill_run(fs, (uint64_t)(uintptr_t)hva + off,
				       src ? src + off : NULL,
				       (n - i) * FAULT_PAGE, &done);

		fault_settle_run(fs, page + i, done / FAULT_PAGE);
		i += done / FAULT_PAGE;
		if (!r)
			break;
		if (r == -EEXIST) { /* someone placed it first: wake, on */
			fault_wake(fs,
				   (uint64_t)(uintptr_t)hva + i * FAULT_PAGE);
			fault_settle(fs, page + i, FAULT_FETCH, FAULT_NO_T0,
				     true);
			i++;
			continue;
		}
		if ((r == -EAGAIN || r == -EINTR) &&
		    (done || ++tries < FAULT_EAGAIN_TRIES))
			continue;
		fault_count_error(fs);
		return r;
	}
	return 0;
}

/* One page: no ioctl where it is PRESENT already, else a stretch of one. */
static int fault_place(struct fault_service *fs, uint64_t gpa, const void *data)
{
	const struct guest_mem *mem = fs->mem;
	uint64_t page;

	if (mem && fs->uffd >= 0 && !(gpa % FAULT_PAGE) &&
	    !mem_gpa_to_page(mem, gpa, &page) &&
	    bitmap_test(&mem->state[MEM_PS_PRESENT], page)) {
		fault_settle(fs, page, FAULT_FETCH, FAULT_NO_T0, false);
		return 0;
	}
	return fault_place_pages(fs, gpa, data, 1);
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
