/* SPDX-License-Identifier: MIT */
/*
 * pagefault.c - the `pagefault --pages N` workload: nested faults, end to
 * end.
 *
 * It takes N pages plus the page tables they need (one PDPT, the PDs, the
 * PTs) of never-touched RAM from the free ranges, without touching them,
 * and hands them to the kernel as the pool of a virtual region of N pages
 * that nothing maps yet (SYS_PF_POOL). Each run gets its own PML4 slot,
 * from PF_REGION_BASE up, so that every page of every run faults anew.
 * Then one 8-byte store per page: each raises a guest #PF, the ring-0
 * handler (kernel/pagefault.c) maps the page to the next pool page and
 * returns, and the retried store is the first access to that guest-physical
 * page, which faults in the host (resolved by the VMM in --mem-mode lazy).
 * The kernel's fault count (SYS_PF_COUNT) goes out as MARK_PF_COUNT and
 * must equal the number of pages: page-table pages are written by ring 0
 * through the identity map and never fault. Last, the data check: every
 * page must hold its store and zeros elsewhere (fresh RAM), then the
 * dirty pattern of (page, 1) is written to all pages and read back, which
 * also catches two pages mapped to one frame. A wrong page: exit 3.
 */
#include "lib/testdev.h"
#include "user/pattern.h"
#include "user/user.h"
#include "user/workload.h"

enum { PF_PAGES };

#define PF_MAX_PAGES	 (1ULL << 22)	       /* 16 GiB */
#define PF_REGION_BASE	 0x0000400000000000ULL /* PML4 slot 128 */
#define PF_REGION_STRIDE (1ULL << 39)	       /* one PML4 slot per run */
#define PF_REGION_RUNS	 128		       /* slots 128-255 */
#define PF_PT_SPAN	 512ULL		       /* pages one PT maps */
#define PF_PD_SPAN	 (512ULL * 512)	       /* pages one PD maps */
#define PF_TAG_GEN	 0 /* the first store: word 0 = pattern_seed(i, 0) */
#define PF_FILL_GEN	 1
#define PF_REPORT_MAX	 8

static const struct wl_flag pagefault_flags[] = {
	[PF_PAGES] = {.name = "pages",
		      .min = 1,
		      .max = PF_MAX_PAGES,
		      .required = true},
	{0},
};

static unsigned int pf_runs;

static uint64_t *pf_page(uint64_t va, uint64_t i)
{
	return (uint64_t *)(uintptr_t)(va + i * GUEST_PAGE_SIZE);
}

/* Tables for n pages from a PML4-slot-aligned base: PDPT, PDs, PTs. */
static uint64_t pf_table_pages(uint64_t n)
{
	return 1 + (n + PF_PD_SPAN - 1) / PF_PD_SPAN +
	       (n + PF_PT_SPAN - 1) / PF_PT_SPAN;
}

/* One store per page, each a guest #PF; returns the pages touched. */
static uint64_t pf_touch(uint64_t va, uint64_t n)
{
	uint64_t i;

	for (i = 0; i < n; i++) {
		if (i % TICK_PAGES == 0 && tick())
			return i;
		*(volatile uint64_t *)pf_page(va, i) =
			pattern_seed(i, PF_TAG_GEN);
	}
	return n;
}

/* Word 0 holds the first store, the rest is still zero: -1, or a word. */
static int pf_check_fresh(const uint64_t *w, uint64_t i)
{
	uint64_t k;

	if (w[0] != pattern_seed(i, PF_TAG_GEN))
		return 0;
	for (k = 1; k < PATTERN_WORDS; k++)
		if (w[k])
			return (int)k;
	return -1;
}

static void pf_report(uint64_t *bad, uint64_t i, uint64_t va, const char *what,
		      int word)
{
	if ((*bad)++ < PF_REPORT_MAX)
		console_printf("pagefault: FAIL page %lu va 0x%lx: %s at word "
			       "%d\n",
			       i, (uint64_t)(uintptr_t)pf_page(va, i), what,
			       word);
}

/* The fresh check and the pattern round trip; returns the bad pages. */
static uint64_t pf_check(uint64_t va, uint64_t n)
{
	uint64_t i, bad = 0;
	int word;

	for (i = 0; i < n; i++) {
		if (i % TICK_PAGES == 0)
			tick_heartbeat();
		word = pf_check_fresh(pf_page(va, i), i);
		if (word >= 0)
			pf_report(&bad, i, va, "not a fresh page", word);
		pattern_fill(pf_page(va, i), i, PF_FILL_GEN);
	}
	for (i = 0; i < n; i++) {
		if (i % TICK_PAGES == 0)
			tick_heartbeat();
		word = pattern_check(pf_page(va, i), i, PF_FILL_GEN);
		if (word >= 0)
			pf_report(&bad, i, va, "pattern wrong", word);
	}
	return bad;
}

/* The pool and the region of this run, registered with the kernel. */
static uint64_t pf_setup(uint64_t n)
{
	uint64_t pool_pages = n + pf_table_pages(n);
	uint64_t va = PF_REGION_BASE + pf_runs * PF_REGION_STRIDE;
	void *pool;

	if (pf_runs == PF_REGION_RUNS) {
		console_printf("pagefault: more than %u runs\n",
			       PF_REGION_RUNS);
		guest_exit(GUEST_EXIT_USAGE);
	}
	pool = mem_alloc_fresh(pool_pages * GUEST_PAGE_SIZE);
	if (!pool) {
		console_printf("pagefault: cannot allocate %lu never-touched "
			       "pages from free RAM\n",
			       pool_pages);
		guest_exit(GUEST_EXIT_USAGE);
	}
	if (sys_pf_pool((uint64_t)(uintptr_t)pool, pool_pages, va, n)) {
		console_printf("pagefault: the kernel refused the pool\n");
		guest_exit(GUEST_EXIT_PANIC);
	}
	pf_runs++;
	console_printf("pagefault: region at 0x%lx, %lu pages, pool of %lu "
		       "pages at 0x%lx\n",
		       va, n, pool_pages, (uint64_t)(uintptr_t)pool);
	return va;
}

static void pagefault_run(const struct wl_call *c)
{
	uint64_t n = c->val[PF_PAGES], va = pf_setup(n), done, faults, bad;

	done = pf_touch(va, n);
	faults = sys_pf_count();
	sys_pf_pool(0, 0, 0, 0); /* any #PF panics again */
	testdev_marker(MARK_PF_COUNT, (uint32_t)faults);
	console_printf("pagefault: %lu pages, %lu guest faults\n", done,
		       faults);
	if (faults != done) {
		console_printf("pagefault: FAIL %lu guest faults for %lu "
			       "pages\n",
			       faults, done);
		guest_exit(GUEST_EXIT_VERIFY);
	}
	bad = pf_check(va, done);
	if (bad) {
		console_printf("pagefault: FAIL %lu of %lu pages wrong\n", bad,
			       done);
		guest_exit(GUEST_EXIT_VERIFY);
	}
	console_printf("pagefault: data ok %lu pages\n", done);
}

const struct workload wl_pagefault = {
	.name = "pagefault",
	.flags = pagefault_flags,
	.run = pagefault_run,
};
