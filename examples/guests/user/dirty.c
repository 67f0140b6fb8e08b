/* SPDX-License-Identifier: MIT */
/*
 * dirty.c - the `dirty --mib N --rate R [--ms T]` workload.
 *
 * It takes N MiB plus a generation array (one u32 per page) from free RAM,
 * writes every page once with generation 1 in address order, then rewrites
 * pages at R MiB/s of TSC time, visiting them in a scrambled order (a fixed
 * stride coprime with the page count, so every page comes round once per
 * pass and neighbours are written far apart). A write bumps the page's
 * generation, then fills the whole page with that generation's pattern;
 * tick() runs only between whole writes, so a verify from the mailbox
 * always sees consistent pages. R = 0 only ticks. The loop ends at a
 * STOP_WORKLOAD request or after T ms (counted from the end of the first
 * pass); a stop during the first pass ends it early, and verify then checks
 * the pages written so far. A new `dirty` replaces the previous region.
 * `--data MODE` sets what a write puts in the page (user/data.h: random,
 * the default, text, byte or zero), i.e. how compressible the pages are.
 * The end of the first pass is one console line ("dirty: first pass
 * done"), which a host waits for before it measures.
 */
#include "lib/testdev.h"
#include "lib/x86.h"
#include "user/data.h"
#include "user/dirty.h"
#include "user/pattern.h"
#include "user/user.h"
#include "user/workload.h"

enum { DIRTY_MIB, DIRTY_RATE, DIRTY_MS, DIRTY_READERS, DIRTY_DATA };

#define DIRTY_MAX_MIB	  (1ULL << 20)
#define DIRTY_MAX_RATE	  (1ULL << 20)
#define PAGES_PER_MIB	  ((uint64_t)((1ULL << 20) / GUEST_PAGE_SIZE))
#define DIRTY_BATCH	  TICK_PAGES /* most pages written between ticks */
#define DIRTY_BACKLOG_DIV 10	     /* owe at most 1/10 s of writes */

static const struct wl_flag dirty_flags[] = {
	[DIRTY_MIB] = {.name = "mib",
		       .min = 1,
		       .max = DIRTY_MAX_MIB,
		       .required = true},
	[DIRTY_RATE] = {.name = "rate",
			.min = 0,
			.max = DIRTY_MAX_RATE,
			.required = true},
	[DIRTY_MS] = {.name = "ms", .min = 0, .max = 1ULL << 32},
	[DIRTY_READERS] = {.name = "readers", .min = 0, .max = 31},
	[DIRTY_DATA] = {.name = "data", .words = data_mode_names},
	{0},
};

/* Pages owed are credit / tsc_hz; credit grows by pages_per_s per tick. */
struct dirty_pace {
	uint64_t last;
	uint64_t credit;
	uint64_t max_credit;
	uint64_t pages_per_s;
	uint64_t tsc_hz;
};

static struct dirty_region dirty_region;
/* &dirty_region once allocated; other CPUs read it too (reader.c). */
static const struct dirty_region *dirty_published;

const struct dirty_region *dirty_current(void)
{
	return __atomic_load_n(&dirty_published, __ATOMIC_ACQUIRE);
}

static int dirty_alloc(struct dirty_region *r, uint64_t mib, uint64_t data)
{
	r->nr_pages = mib * PAGES_PER_MIB;
	r->data = (uint32_t)data;
	r->nr_filled = 0;
	mem_reset();
	r->base = mem_alloc(r->nr_pages * GUEST_PAGE_SIZE);
	r->gen = mem_alloc(r->nr_pages * sizeof(*r->gen));
	return r->base && r->gen ? 0 : -1;
}

static uint64_t dirty_gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/* A stride near n / phi and coprime with n: visits every page per pass. */
static uint64_t dirty_stride(uint64_t n)
{
	uint64_t s;

	if (n < 3)
		return 1;
	s = (n * 618 / 1000) | 1;
	while (dirty_gcd(s, n) != 1)
		s++;
	return s;
}

static void dirty_write(struct dirty_region *r, uint64_t i)
{
	uint32_t gen = ++r->gen[i];

	data_fill(dirty_page(r, i), i, gen, r->data);
}

/* The first pass; false if a STOP_WORKLOAD request cut it short. */
static bool dirty_fill(struct dirty_region *r)
{
	uint64_t i;

	for (i = 0; i < r->nr_pages; i++) {
		if (i % TICK_PAGES == 0 && tick())
			return false;
		r->gen[i] = 1;
		data_fill(dirty_page(r, i), i, 1, r->data);
		__atomic_store_n(&r->nr_filled, i + 1, __ATOMIC_RELEASE);
	}
	return true;
}

static void dirty_pace_init(struct dirty_pace *p, uint64_t rate_mib)
{
	p->last = x86_rdtsc();
	p->credit = 0;
	p->tsc_hz = tick_tsc_hz();
	p->pages_per_s = rate_mib * PAGES_PER_MIB;
	p->max_credit =
		p->tsc_hz * (p->pages_per_s / DIRTY_BACKLOG_DIV + DIRTY_BATCH);
}

/*
 * Pages to write now (at most DIRTY_BATCH). A gap longer than a second (the
 * VM was paused) and a backlog beyond 1/10 s are not made up, so a pause or
 * an unreachable rate never turns into a burst.
 */
static uint64_t dirty_pace_step(struct dirty_pace *p, uint64_t now)
{
	uint64_t dt = now > p->last ? now - p->last : 0;
	uint64_t owed;

	p->last = now;
	if (dt > p->tsc_hz)
		dt = p->tsc_hz;
	p->credit += dt * p->pages_per_s;
	if (p->credit > p->max_credit)
		p->credit = p->max_credit;
	owed = p->credit / p->tsc_hz;
	if (owed > DIRTY_BATCH)
		owed = DIRTY_BATCH;
	p->credit -= owed * p->tsc_hz;
	return owed;
}

static uint64_t dirty_loop(struct dirty_region *r, const struct wl_call *c)
{
	uint64_t n = r->nr_pages, stride = dirty_stride(n), pos = 0;
	uint64_t writes = 0, owed, now;
	bool timed = c->given[DIRTY_MS];
	struct dirty_pace pace;
	uint64_t end;

	dirty_pace_init(&pace, c->val[DIRTY_RATE]);
	end = pace.last + tick_ms_to_tsc(c->val[DIRTY_MS]);
	for (;;) {
		now = x86_rdtsc();
		if (tick_at(now) || (timed && now >= end))
			return writes;
		owed = dirty_pace_step(&pace, now);
		if (!owed)
			x86_pause();
		for (; owed; owed--, writes++) {
			dirty_write(r, pos);
			pos += stride;
			if (pos >= n)
				pos -= n;
		}
	}
}

static void dirty_run(const struct wl_call *c)
{
	struct dirty_region *r = &dirty_region;
	uint64_t mib = c->val[DIRTY_MIB];

	if (c->val[DIRTY_READERS] >= guest_nr_cpus()) {
		console_printf("dirty: --readers %lu needs %lu CPUs, the guest "
			       "has %u\n",
			       c->val[DIRTY_READERS], c->val[DIRTY_READERS] + 1,
			       guest_nr_cpus());
		guest_exit(GUEST_EXIT_USAGE);
	}
	__atomic_store_n(&dirty_published, NULL, __ATOMIC_RELEASE);
	if (dirty_alloc(r, mib, c->val[DIRTY_DATA]) < 0) {
		console_printf("dirty: cannot allocate %lu MiB and %lu KiB of "
			       "generations from free RAM\n",
			       mib, mib * PAGES_PER_MIB * 4 / 1024);
		guest_exit(GUEST_EXIT_USAGE);
	}
	console_printf("dirty: %lu MiB at 0x%lx rate %lu MiB/s data %s\n", mib,
		       (uint64_t)(uintptr_t)r->base, c->val[DIRTY_RATE],
		       data_mode_names[r->data]);
	__atomic_store_n(&dirty_published, r, __ATOMIC_RELEASE);
	if (!dirty_fill(r)) {
		console_printf("dirty: stopped during the first pass, %lu of "
			       "%lu pages written\n",
			       r->nr_filled, r->nr_pages);
		return;
	}
	console_printf("dirty: first pass done\n");
	console_printf("dirty: stopped after %lu page writes\n",
		       dirty_loop(r, c));
}

const struct workload wl_dirty = {
	.name = "dirty",
	.flags = dirty_flags,
	.run = dirty_run,
};
