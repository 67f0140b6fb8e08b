/* SPDX-License-Identifier: MIT */
/*
 * faultlat.c - the `faultlat --pages N` workload: the latency of first
 * touches, for the bench of second-level (host) fault latency.
 *
 * N pages of never-touched free RAM, already identity mapped by the VMM,
 * so the only fault a first store can take is the host's (in --mem-mode
 * lazy: the VMM's zero-fill). Each page gets one 8-byte store, timed from
 * ring 3 with the TSC: lfence; rdtsc; lfence before it, mfence; lfence;
 * rdtsc after it (the SDM's sequence for "after all earlier loads and
 * stores are globally visible"; it works without RDTSCP in the CPUID).
 * tick() runs between stores, outside the timed window. The latencies go
 * into an array that is touched before the loop, are sorted in place
 * (heapsort, with heartbeats) and reported in ns by nearest rank:
 * "faultlat: N pages p50 X ns p99 Y ns max Z ns", then MARK_RESULT with
 * p50 and a second MARK_RESULT with p99 (ns, at most 2^32 - 1). That is
 * the only line starting with "faultlat:" (bench/faults.sh waits for it).
 * A STOP_WORKLOAD request ends the loop early; the pages timed so far count.
 */
#include "lib/string.h"
#include "lib/testdev.h"
#include "user/user.h"
#include "user/workload.h"

enum { FL_PAGES };

#define FL_MAX_PAGES  (1ULL << 18) /* 1 GiB: ~12 s of first touches here */
#define FL_PAGE_WORDS (GUEST_PAGE_SIZE / sizeof(uint64_t))
#define FL_SORT_TICK  1024 /* sort steps between heartbeats */

static const struct wl_flag faultlat_flags[] = {
	[FL_PAGES] = {.name = "pages",
		      .min = 1,
		      .max = FL_MAX_PAGES,
		      .required = true},
	{0},
};

/* Store v at p; returns the TSC cycles the store took to become visible. */
static uint64_t fl_timed_store(uint64_t *p, uint64_t v)
{
	uint64_t lo, hi, t0;

	asm volatile("lfence\n\t"
		     "rdtsc\n\t"
		     "lfence\n\t"
		     "shlq $32, %%rdx\n\t"
		     "orq %%rdx, %%rax\n\t"
		     "movq %%rax, %[t0]\n\t"
		     "movq %[v], (%[p])\n\t"
		     "mfence\n\t"
		     "lfence\n\t"
		     "rdtsc"
		     : "=&a"(lo), "=&d"(hi), [t0] "=&r"(t0)
		     : [v] "r"(v), [p] "r"(p)
		     : "memory");
	return (hi << 32 | lo) - t0;
}

/* Time the first store to each page; returns the pages timed. */
static uint64_t fl_measure(uint64_t *pages, uint64_t *lat, uint64_t n)
{
	uint64_t i;

	for (i = 0; i < n; i++) {
		if (i % TICK_PAGES == 0 && tick())
			return i;
		lat[i] = fl_timed_store(pages + i * FL_PAGE_WORDS, i + 1);
	}
	return n;
}

static void fl_sift(uint64_t *a, uint64_t root, uint64_t n)
{
	uint64_t child, t;

	while ((child = 2 * root + 1) < n) {
		if (child + 1 < n && a[child + 1] > a[child])
			child++;
		if (a[root] >= a[child])
			return;
		t = a[root];
		a[root] = a[child];
		a[child] = t;
		root = child;
	}
}

static void fl_sort(uint64_t *a, uint64_t n)
{
	uint64_t i, t;

	for (i = n / 2; i-- > 0;)
		fl_sift(a, i, n);
	for (i = n; i-- > 1;) {
		if (i % FL_SORT_TICK == 0)
			tick_heartbeat();
		t = a[0];
		a[0] = a[i];
		a[i] = t;
		fl_sift(a, 0, i);
	}
}

/* Percentile p by nearest rank of the sorted a[0..n), in ns. */
static uint64_t fl_rank_ns(const uint64_t *a, uint64_t n, uint64_t p)
{
	return tick_tsc_to_ns(a[(n * p + 99) / 100 - 1]);
}

static uint32_t fl_u32(uint64_t v)
{
	return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static void faultlat_run(const struct wl_call *c)
{
	uint64_t n = c->val[FL_PAGES], p50, p99;
	uint64_t *lat = mem_alloc(n * sizeof(*lat));
	uint64_t *pages = mem_alloc_fresh(n * GUEST_PAGE_SIZE);

	if (!lat || !pages) {
		console_printf("faultlat: cannot allocate %lu never-touched "
			       "pages and %lu KiB of results from free RAM\n",
			       n, (n * sizeof(*lat) + 1023) / 1024);
		guest_exit(GUEST_EXIT_USAGE);
	}
	memset(lat, 0, n * sizeof(*lat));
	n = fl_measure(pages, lat, n);
	if (!n)
		return; /* stopped before the first page */
	fl_sort(lat, n);
	p50 = fl_rank_ns(lat, n, 50);
	p99 = fl_rank_ns(lat, n, 99);
	console_printf("faultlat: %lu pages p50 %lu ns p99 %lu ns max %lu ns\n",
		       n, p50, p99, tick_tsc_to_ns(lat[n - 1]));
	testdev_marker(MARK_RESULT, fl_u32(p50));
	testdev_marker(MARK_RESULT, fl_u32(p99));
}

const struct workload wl_faultlat = {
	.name = "faultlat",
	.flags = faultlat_flags,
	.run = faultlat_run,
};
