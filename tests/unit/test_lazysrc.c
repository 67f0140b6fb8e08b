/* SPDX-License-Identifier: MIT */
/*
 * test_lazysrc.c - guest RAM served from a file through the fault service
 * (ept/lazysrc.c), on a plain 16 MiB memfd and a temporary file; no KVM.
 * The test thread's own loads through the RAM mapping fault and block
 * until the fault thread resolves them. Every page i of the file is data
 * (a pattern of i) unless i % 3 == 0, which is a hole.
 *
 * Checked: each page reads as the file says (holes as zeros); no page is
 * read twice (demand + loader + loading-set pages == data pages, whatever
 * the race); the loading set is placed without a fault, skipping holes,
 * duplicates and pages out of range; the recording window keeps the fault
 * order and is refused while open; the racing set is placed by the loader.
 * The one wait (for the loader's end) polls a counter with a deadline that
 * only turns a hang into a failure.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/page.h"
#include "ept/lazysrc.h"

#define MiB	(1ULL << 20)
#define RAM_OFF (2 * PAGE_SIZE)

static struct guest_mem gm;
static struct fault_service fs;
static struct lazy_src ls;
static int fd = -1;
static uint64_t *map;
static char path[] = "/tmp/test_lazysrc.XXXXXX";

static bool is_data(uint64_t page)
{
	return page % 3 != 0;
}

static void pattern(uint8_t *buf, uint64_t page)
{
	for (uint64_t i = 0; i < PAGE_SIZE; i++)
		buf[i] = (uint8_t)(page * 31 + i * 7 + 1);
}

/* Page p's pattern into the file at off. */
static void put_page(uint64_t p, uint64_t off)
{
	uint8_t buf[PAGE_SIZE];

	pattern(buf, p);
	cr_assert_eq(pwrite(fd, buf, PAGE_SIZE, (off_t)off), PAGE_SIZE);
}

static void setup(void)
{
	char err[256] = "";

	cr_assert_eq(mem_create(&gm, 16 * MiB), 0);
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	unlink(path);
	map = calloc(BITMAP_WORDS(gm.nr_pages), 8);
	cr_assert_not_null(map);
	for (uint64_t p = 0; p < gm.nr_pages; p++) {
		if (!is_data(p))
			continue;
		put_page(p, RAM_OFF + p * PAGE_SIZE);
		map[p / 64] |= 1ULL << (p % 64);
	}
	cr_assert_eq(
		lazy_src_init(&ls, &gm, fd, RAM_OFF, map, err, sizeof(err)), 0,
		"%s", err);
}

static void teardown(void)
{
	lazy_src_stop(&ls);
	fault_stop(&fs);
	lazy_src_free(&ls);
	mem_destroy(&gm);
	free(map);
	close(fd);
}

TestSuite(lazysrc, .init = setup, .fini = teardown, .timeout = 60);

static void attach(void)
{
	char err[256] = "";

	cr_assert_eq(lazy_src_attach(&ls, &fs, NULL, NULL, 0, err, sizeof(err)),
		     0, "%s", err);
}

/* Read page p through the mapping (faults if absent) and check it. */
static void check_page(uint64_t p)
{
	uint8_t want[PAGE_SIZE];
	const uint8_t *got = gm.base + p * PAGE_SIZE;

	if (is_data(p))
		pattern(want, p);
	else
		memset(want, 0, sizeof(want));
	cr_assert_eq(memcmp(got, want, PAGE_SIZE), 0, "page %llu",
		     (unsigned long long)p);
}

static void wait_loaded(struct lazy_src_stats *st)
{
	uint64_t end = clock_now_ns() + 20000000000ULL;

	do {
		lazy_src_get_stats(&ls, st);
		if (st->loader_done)
			return;
		usleep(1000);
	} while (clock_now_ns() < end);
	cr_assert_fail("the loader did not finish");
}

static uint64_t data_pages(void)
{
	uint64_t n = 0;

	for (uint64_t p = 0; p < gm.nr_pages; p++)
		n += is_data(p);
	return n;
}

Test(lazysrc, demand_then_loader_each_page_once)
{
	struct lazy_src_stats st;
	char err[256] = "";

	attach();
	/* Faults first: every 5th page of the first half. */
	for (uint64_t p = 0; p < gm.nr_pages / 2; p += 5)
		check_page(p);
	cr_assert_eq(lazy_src_loader_start(&ls, err, sizeof(err)), 0, "%s",
		     err);
	/* And faults racing the loader from the end. */
	for (uint64_t p = gm.nr_pages - 1; p > gm.nr_pages / 2; p -= 7)
		check_page(p);
	wait_loaded(&st);
	for (uint64_t p = 0; p < gm.nr_pages; p++)
		check_page(p);
	cr_assert_eq(st.data_pages, data_pages());
	cr_assert_eq(st.demand_pages + st.loader_pages, st.data_pages,
		     "demand %llu + loader %llu != %llu data pages",
		     (unsigned long long)st.demand_pages,
		     (unsigned long long)st.loader_pages,
		     (unsigned long long)st.data_pages);
	cr_assert_gt(st.demand_pages, 0);
	cr_assert_gt(st.demand_zero, 0);
	cr_assert_eq(st.errors, 0);
	for (uint64_t p = 0; p < gm.nr_pages; p++)
		if (is_data(p))
			cr_assert(bitmap_test(&gm.state[MEM_PS_PRESENT], p));
}

Test(lazysrc, loading_set_before_the_start_takes_no_fault)
{
	/* Data pages 1, 2, 4, 5 (a run), a hole (3), a repeat, out of range. */
	const uint64_t list[] = {1, 2, 3, 4, 5, 2, 100000, 40, 41};
	const uint64_t n = sizeof(list) / sizeof(list[0]);
	uint64_t off = RAM_OFF + gm.nr_pages * PAGE_SIZE + PAGE_SIZE;
	struct lazy_src_stats st;
	struct fault_stats fst;
	uint8_t buf[PAGE_SIZE];
	char err[256] = "";

	for (uint64_t i = 0; i < n; i++) {
		/* The set holds the pages' data, whatever the map says. */
		if (list[i] < gm.nr_pages)
			pattern(buf, list[i]);
		else
			memset(buf, 0xee, sizeof(buf));
		cr_assert_eq(pwrite(fd, buf, PAGE_SIZE,
				    (off_t)(off + i * PAGE_SIZE)),
			     PAGE_SIZE);
	}
	attach();
	cr_assert_eq(lazy_src_place_set(&ls, list, n, off, err, sizeof(err)), 0,
		     "%s", err);
	lazy_src_get_stats(&ls, &st);
	cr_assert_eq(st.set_pages, 6, "placed %llu",
		     (unsigned long long)st.set_pages);
	for (uint64_t i = 0; i < n; i++)
		if (list[i] < gm.nr_pages && is_data(list[i]))
			check_page(list[i]);
	fault_get_stats(&fs, &fst);
	cr_assert_eq(fst.cls[FAULT_FETCH].faults, 0);
	check_page(3); /* the hole: a fault, resolved as zeros */
	lazy_src_get_stats(&ls, &st);
	cr_assert_eq(st.demand_zero, 1);
	cr_assert_eq(st.demand_pages, 0);
}

Test(lazysrc, recording_keeps_the_fault_order)
{
	const uint64_t touch[] = {7, 5, 3, 2, 7, 11};
	uint64_t *pages = NULL, n = 0;

	lazy_src_record(&ls, 60000);
	attach();
	for (size_t i = 0; i < sizeof(touch) / sizeof(touch[0]); i++)
		check_page(touch[i]);
	cr_assert_eq(lazy_src_recorded(&ls, &pages, &n), -EBUSY);
	ls.rec_until_ns = clock_now_ns(); /* close the window now */
	cr_assert_eq(lazy_src_recorded(&ls, &pages, &n), 0);
	/* Data pages only, each once (a page faults once), in fault order. */
	cr_assert_eq(n, 4);
	cr_assert_eq(pages[0], 7);
	cr_assert_eq(pages[1], 5);
	cr_assert_eq(pages[2], 2);
	cr_assert_eq(pages[3], 11);
	free(pages);
}

Test(lazysrc, racing_set_is_placed_by_the_loader)
{
	uint64_t list[64], off = RAM_OFF + gm.nr_pages * PAGE_SIZE;
	struct lazy_src_stats st;
	char err[256] = "";
	uint64_t n = 0;

	for (uint64_t p = 3000; n < 64; p++) {
		if (!is_data(p))
			continue;
		put_page(p, off + n * PAGE_SIZE);
		list[n++] = p;
	}
	attach();
	lazy_src_race_set(&ls, list, n, off);
	cr_assert_eq(lazy_src_loader_start(&ls, err, sizeof(err)), 0, "%s",
		     err);
	wait_loaded(&st);
	cr_assert_eq(st.set_pages, 64);
	cr_assert_eq(st.demand_pages + st.loader_pages + st.set_pages,
		     st.data_pages);
	for (uint64_t i = 0; i < n; i++)
		check_page(list[i]);
}
