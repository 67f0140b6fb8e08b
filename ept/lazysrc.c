/* SPDX-License-Identifier: MIT */
/*
 * lazysrc.c - guest RAM from a snapshot file, on demand and in the
 * background (lazysrc.h has the contract and the threads).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/fileio.h"
#include "common/page.h"
#include "ept/lazysrc.h"

#define LAZY_RUN_PAGES 256 /* the loader's read: 1 MiB */
#define LAZY_SET_CHUNK (4U << 20)

int lazy_src_init(struct lazy_src *ls, const struct guest_mem *mem, int fd,
		  uint64_t ram_off, const uint64_t *map, char *err,
		  size_t errlen)
{
	pthread_condattr_t ca;

	memset(ls, 0, sizeof(*ls));
	ls->mem = mem;
	ls->fd = fd;
	ls->ram_off = ram_off;
	if (bitmap_init(&ls->data, mem->nr_pages) ||
	    bitmap_init(&ls->claimed, mem->nr_pages)) {
		bitmap_free(&ls->data);
		err_set(err, errlen, "lazy restore: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	bitmap_or_words(&ls->data, 0, map, BITMAP_WORDS(mem->nr_pages));
	ls->data_pages = bitmap_count(&ls->data);
	pthread_mutex_init(&ls->rec_lock, NULL);
	pthread_mutex_init(&ls->stop_lock, NULL);
	/* The recording window's deadline is CLOCK_MONOTONIC. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ls->stop_cond, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

void lazy_src_record(struct lazy_src *ls, uint64_t ms)
{
	ls->rec_until_ns = ms ? clock_now_ns() + ms * 1000000ULL : 0;
}

/* Fault thread: append page to the recorded list while the window is open. */
static void lazy_rec_add(struct lazy_src *ls, uint64_t page)
{
	if (!ls->rec_until_ns || clock_now_ns() >= ls->rec_until_ns)
		return;
	pthread_mutex_lock(&ls->rec_lock);
	if (ls->rec_n == ls->rec_cap) {
		uint64_t cap = ls->rec_cap ? 2 * ls->rec_cap : 4096;
		uint64_t *p = realloc(ls->rec, cap * sizeof(*p));

		if (p) {
			ls->rec = p;
			ls->rec_cap = cap;
		}
	}
	if (ls->rec_n < ls->rec_cap)
		ls->rec[ls->rec_n++] = page;
	pthread_mutex_unlock(&ls->rec_lock);
}

/*
 * The fetch hook (fault thread): a hole is a zero page; a data page is
 * read and placed, unless the loader claimed it first (then its placement
 * wakes the faulting vCPU). A failure unclaims it for the retry.
 */
static int lazy_fetch(void *opaque, uint64_t gpa)
{
	struct lazy_src *ls = opaque;
	uint64_t page;
	int r;

	if (mem_gpa_to_page(ls->mem, gpa, &page))
		return -EFAULT;
	if (!bitmap_test(&ls->data, page)) {
		atomic_fetch_add(&ls->demand_zero, 1);
		return fault_place_zero(ls->fs, gpa);
	}
	if (bitmap_test_and_set(&ls->claimed, page))
		return 0;
	lazy_rec_add(ls, page);
	r = file_pread_all(ls->fd, ls->bounce, PAGE_SIZE,
			   ls->ram_off + page * PAGE_SIZE);
	if (!r)
		r = fault_place_page(ls->fs, gpa, ls->bounce);
	if (r) {
		bitmap_clear(&ls->claimed, page);
		atomic_fetch_add(&ls->errors, 1);
		return r;
	}
	atomic_fetch_add(&ls->demand_pages, 1);
	return 0;
}

static void lazy_stall(void *opaque, uint64_t gpa, uint64_t waited_ns,
		       pid_t tid)
{
	struct lazy_src *ls = opaque;

	if (ls->on_stall)
		ls->on_stall(ls->stall_opaque, gpa, waited_ns, tid);
}

int lazy_src_attach(struct lazy_src *ls, struct fault_service *fs,
		    fault_stall_fn on_stall, void *opaque, uint64_t stall_ns,
		    char *err, size_t errlen)
{
	const struct guest_mem *m = ls->mem;
	int r = fault_init(fs, m, err, errlen);

	for (int i = 0; !r && i < m->nr_regions; i++) {
		struct fault_range fr = {
			.gpa = m->regions[i].gpa,
			.size = m->regions[i].size,
			.resolver = FAULT_FETCH,
		};

		r = fault_register(fs, &fr, err, errlen);
	}
	if (r)
		return r;
	ls->fs = fs;
	ls->on_stall = on_stall;
	ls->stall_opaque = opaque;
	fault_set_hooks(fs, lazy_fetch, lazy_stall, ls, stall_ns);
	r = fault_start(fs);
	if (r)
		err_set(err, errlen, "starting the fault thread: %s",
			strerror(-r));
	return r;
}

/*
 * Write the pages of one chunk of the loading set into RAM, through the
 * memfd: no vCPU runs yet, and a page there is one no fault will ask for.
 */
static int lazy_set_chunk(struct lazy_src *ls, const uint64_t *list, uint64_t n,
			  const uint8_t *buf)
{
	struct guest_mem *mem = (struct guest_mem *)ls->mem;
	uint64_t i = 0, k;
	int r;

	while (i < n) {
		/* A run of pages that follow each other in RAM too. */
		for (k = 0; i + k < n; k++) {
			uint64_t page = list[i + k];

			if ((k && page != list[i] + k) ||
			    page >= mem->nr_pages ||
			    !bitmap_test(&ls->data, page) ||
			    bitmap_test_and_set(&ls->claimed, page))
				break;
		}
		/* Page index = memfd offset / 4 KiB (mem.h). */
		r = k ? file_pwrite_all(mem->memfd, buf + i * PAGE_SIZE,
					k * PAGE_SIZE, list[i] * PAGE_SIZE)
		      : 0;
		if (r)
			return r;
		bitmap_set_range(&mem->state[MEM_PS_PRESENT], k ? list[i] : 0,
				 k);
		atomic_fetch_add(&ls->set_pages, k);
		i += k ? k : 1;
	}
	return 0;
}

int lazy_src_place_set(struct lazy_src *ls, const uint64_t *list, uint64_t n,
		       uint64_t data_off, char *err, size_t errlen)
{
	uint64_t per = LAZY_SET_CHUNK / PAGE_SIZE;
	uint8_t *buf = malloc(LAZY_SET_CHUNK);
	int r = buf ? 0 : -ENOMEM;

	for (uint64_t i = 0; !r && i < n; i += per) {
		uint64_t k = n - i < per ? n - i : per;

		r = file_pread_all(ls->fd, buf, k * PAGE_SIZE,
				   data_off + i * PAGE_SIZE);
		if (!r)
			r = lazy_set_chunk(ls, list + i, k, buf);
	}
	free(buf);
	if (r)
		err_set(err, errlen, "placing the loading set: %s",
			strerror(-r));
	return r;
}

static bool lazy_stopping(struct lazy_src *ls)
{
	bool stop;

	pthread_mutex_lock(&ls->stop_lock);
	stop = ls->stop;
	pthread_mutex_unlock(&ls->stop_lock);
	return stop;
}

/*
 * Claim the run of unclaimed data pages from *page (at most
 * LAZY_RUN_PAGES, stopping at the first page someone else has); *page
 * moves past what was looked at. Returns the run's length.
 */
static uint64_t lazy_claim_run(struct lazy_src *ls, uint64_t *page,
			       uint64_t *first)
{
	uint64_t n = 0, p = bitmap_next_set(&ls->data, *page);

	while (p < ls->data.nbits && bitmap_test_and_set(&ls->claimed, p))
		p = bitmap_next_set(&ls->data, p + 1);
	*first = p;
	if (p < ls->data.nbits) {
		n = 1;
		while (n < LAZY_RUN_PAGES && p + n < ls->data.nbits &&
		       bitmap_test(&ls->data, p + n) &&
		       !bitmap_test_and_set(&ls->claimed, p + n))
			n++;
	}
	*page = p + n;
	return n;
}

/*
 * Place the claimed pages [first, first + n) from buf: one ioctl per
 * stretch within one RAM region (fault_place_pages). A page that is not
 * in place after a failure is left for a fault to load.
 */
static void lazy_place_run(struct lazy_src *ls, uint64_t first, uint64_t n,
			   const uint8_t *buf, bool ok)
{
	const struct guest_mem *mem = ls->mem;
	uint64_t i = 0;

	while (i < n) {
		uint64_t gpa = mem_page_to_gpa(mem, first + i), k = 1;

		while (i + k < n && mem_page_to_gpa(mem, first + i + k) ==
					    gpa + k * PAGE_SIZE)
			k++;
		if (ok && !fault_place_pages(ls->fs, gpa, buf + i * PAGE_SIZE,
					     (uint32_t)k)) {
			atomic_fetch_add(&ls->loader_pages, k);
			i += k;
			continue;
		}
		for (uint64_t j = i; j < i + k; j++) {
			if (bitmap_test(&mem->state[MEM_PS_PRESENT], first + j))
				continue;
			bitmap_clear(&ls->claimed, first + j);
			atomic_fetch_add(&ls->errors, 1);
		}
		i += k;
	}
}

static void lazy_load_run(struct lazy_src *ls, uint64_t first, uint64_t n,
			  uint8_t *buf)
{
	int r = file_pread_all(ls->fd, buf, n * PAGE_SIZE,
			       ls->ram_off + first * PAGE_SIZE);

	lazy_place_run(ls, first, n, buf, r == 0);
}

/* Wait out the recording window (or a stop). */
static void lazy_wait_window(struct lazy_src *ls)
{
	struct timespec ts;
	uint64_t until = ls->rec_until_ns;

	if (!until)
		return;
	/* clock_now_ns() is CLOCK_MONOTONIC, the condition's clock. */
	ts.tv_sec = (time_t)(until / 1000000000ULL);
	ts.tv_nsec = (long)(until % 1000000000ULL);
	pthread_mutex_lock(&ls->stop_lock);
	while (!ls->stop &&
	       pthread_cond_timedwait(&ls->stop_cond, &ls->stop_lock, &ts) !=
		       ETIMEDOUT)
		;
	pthread_mutex_unlock(&ls->stop_lock);
}

void lazy_src_race_set(struct lazy_src *ls, const uint64_t *list, uint64_t n,
		       uint64_t data_off)
{
	ls->race_list = list;
	ls->race_n = n;
	ls->race_off = data_off;
}

/* The loader: the racing loading set, LAZY_RUN_PAGES a read. */
static void lazy_race_set(struct lazy_src *ls, uint8_t *buf)
{
	const struct guest_mem *mem = ls->mem;

	for (uint64_t i = 0; i < ls->race_n && !lazy_stopping(ls);
	     i += LAZY_RUN_PAGES) {
		uint64_t k = ls->race_n - i < LAZY_RUN_PAGES ? ls->race_n - i
							     : LAZY_RUN_PAGES;

		if (file_pread_all(ls->fd, buf, k * PAGE_SIZE,
				   ls->race_off + i * PAGE_SIZE)) {
			atomic_fetch_add(&ls->errors, 1);
			return; /* the rest: in file order, or on demand */
		}
		for (uint64_t j = 0; j < k; j++) {
			uint64_t p = ls->race_list[i + j];

			if (p >= mem->nr_pages || !bitmap_test(&ls->data, p) ||
			    bitmap_test_and_set(&ls->claimed, p))
				continue;
			if (fault_place_page(ls->fs, mem_page_to_gpa(mem, p),
					     buf + j * PAGE_SIZE)) {
				bitmap_clear(&ls->claimed, p);
				atomic_fetch_add(&ls->errors, 1);
				continue;
			}
			atomic_fetch_add(&ls->set_pages, 1);
		}
	}
	atomic_store(&ls->set_done_ns, clock_now_ns());
}

static void *lazy_loader(void *arg)
{
	struct lazy_src *ls = arg;
	uint8_t *buf = malloc(LAZY_RUN_PAGES * PAGE_SIZE);
	uint64_t page = 0, first, n;

	pthread_setname_np(pthread_self(), "snap-loader");
	lazy_wait_window(ls);
	ls->loader_t0_ns = clock_now_ns();
	if (buf && ls->race_n)
		lazy_race_set(ls, buf);
	while (buf && !lazy_stopping(ls) &&
	       (n = lazy_claim_run(ls, &page, &first)))
		lazy_load_run(ls, first, n, buf);
	if (buf && !lazy_stopping(ls))
		atomic_store(&ls->loader_done_ns, clock_now_ns());
	free(buf);
	return NULL;
}

int lazy_src_loader_start(struct lazy_src *ls, char *err, size_t errlen)
{
	sigset_t all, old;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&ls->loader, NULL, lazy_loader, ls);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		err_set(err, errlen, "starting the loader thread: %s",
			strerror(-r));
		return r;
	}
	ls->loader_running = true;
	return 0;
}

void lazy_src_stop(struct lazy_src *ls)
{
	if (!ls->loader_running)
		return;
	pthread_mutex_lock(&ls->stop_lock);
	ls->stop = true;
	pthread_cond_broadcast(&ls->stop_cond);
	pthread_mutex_unlock(&ls->stop_lock);
	pthread_join(ls->loader, NULL);
	ls->loader_running = false;
}

void lazy_src_free(struct lazy_src *ls)
{
	lazy_src_stop(ls);
	bitmap_free(&ls->data);
	bitmap_free(&ls->claimed);
	free(ls->rec);
	ls->rec = NULL;
	pthread_mutex_destroy(&ls->rec_lock);
	pthread_mutex_destroy(&ls->stop_lock);
	pthread_cond_destroy(&ls->stop_cond);
}

void lazy_src_get_stats(struct lazy_src *ls, struct lazy_src_stats *st)
{
	uint64_t done = atomic_load(&ls->loader_done_ns);
	uint64_t set = atomic_load(&ls->set_done_ns);

	memset(st, 0, sizeof(*st));
	st->demand_pages = atomic_load(&ls->demand_pages);
	st->demand_zero = atomic_load(&ls->demand_zero);
	st->loader_pages = atomic_load(&ls->loader_pages);
	st->set_pages = atomic_load(&ls->set_pages);
	st->errors = atomic_load(&ls->errors);
	st->data_pages = ls->data_pages;
	st->recording = ls->rec_until_ns && clock_now_ns() < ls->rec_until_ns;
	st->loader_done = done != 0;
	st->loader_ms = done ? (done - ls->loader_t0_ns) / 1000000 : 0;
	st->set_ms = set ? (set - ls->loader_t0_ns) / 1000000 : 0;
	pthread_mutex_lock(&ls->rec_lock);
	st->recorded = ls->rec_n;
	pthread_mutex_unlock(&ls->rec_lock);
}

int lazy_src_recorded(struct lazy_src *ls, uint64_t **pages, uint64_t *n)
{
	int r = 0;

	if (ls->rec_until_ns && clock_now_ns() < ls->rec_until_ns)
		return -EBUSY;
	pthread_mutex_lock(&ls->rec_lock);
	*n = ls->rec_n;
	*pages = ls->rec_n ? malloc(ls->rec_n * sizeof(uint64_t)) : NULL;
	if (!ls->rec_n)
		r = -ENOENT;
	else if (!*pages)
		r = -ENOMEM;
	else
		memcpy(*pages, ls->rec, ls->rec_n * sizeof(uint64_t));
	pthread_mutex_unlock(&ls->rec_lock);
	return r;
}
