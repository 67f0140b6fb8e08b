/* SPDX-License-Identifier: MIT */
/*
 * fault.c - the fault thread of the userfaultfd fault service (see fault.h
 * for the contract) and its dispatch: fault_start/fault_stop, the poll loop,
 * resolution of each fault, the stall scan and retries. The userfaultfd
 * itself (handshake, registration, ioctls) is fault_uffd.c; the pending
 * table, placement and counters are fault_pages.c.
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
 * Who owns what (for all three files):
 *   fault thread   uffd reads, the bounce buffer, the retry/scan schedule;
 *                  reads ranges[], hooks and stall_ns (all written before
 *                  fault_start, which the pthread_create orders before it).
 *   any thread     fault_place_page/fault_place_zero, fault_get_stats,
 *                  fault_pending_list (fault_pages.c).
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
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/userfaultfd.h>

#include "common/clock.h"
#include "common/sched.h"
#include "ept/fault_int.h"

#define FAULT_MSG_BATCH	  64
#define FAULT_SCAN_BATCH  64
#define FAULT_SCAN_MAX_NS (100 * 1000000ULL) /* scan period ceiling */

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
	/*
	 * A vCPU waits on every fault this thread reads: a short slice lets
	 * it preempt the bulk work (pages pushed, the loader) when a fault
	 * wakes it. An older kernel ignores the hint: only slower.
	 */
	(void)sched_short_slice(FAULT_SLICE_NS);
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
	fault_uffd_close(fs);
}
