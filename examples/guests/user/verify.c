/* SPDX-License-Identifier: MIT */
/*
 * verify.c - check the dirty region page by page: `verify`, and the
 * mailbox's GUEST_REQ_VERIFY request.
 *
 * Every written page must hold the data (user/data.h, in the region's data
 * mode) of its index and of the generation the generation array records. All good: "verify: ok N pages"
 * and MARK_VERIFY_OK(N). Otherwise the first few bad pages are described
 * with what they hold instead (zeros, the pattern of some page and
 * generation: stale or misplaced data, or garbage), the count goes out as
 * MARK_VERIFY_FAIL and the guest exits with 3. Without a dirty region there is
 * nothing to check: exit 2. The check sends heartbeats while it runs but does
 * not poll the mailbox, so a verify requested by the mailbox cannot recurse.
 */
#include "lib/format.h"
#include "lib/testdev.h"
#include "user/data.h"
#include "user/dirty.h"
#include "user/pattern.h"
#include "user/user.h"
#include "user/workload.h"

#define VERIFY_REPORT_MAX 8

static bool verify_zero(const uint64_t *w)
{
	uint64_t or = 0, k;

	for (k = 0; k < PATTERN_WORDS; k++)
		or |= w[k];
	return ! or ;
}

/* The (page, gen) whose data w holds (modes that carry the seed only). */
static bool verify_identify(const struct dirty_region *r, const uint64_t *w,
			    uint64_t *page, uint32_t *gen)
{
	uint64_t x = pattern_unmix64(w[0]);

	if (r->data != DATA_RANDOM && r->data != DATA_TEXT)
		return false;
	*page = x >> 32;
	*gen = (uint32_t)x;
	return data_check(w, *page, *gen, r->data) < 0;
}

static void verify_report(const struct dirty_region *r, uint64_t i, int word)
{
	const uint64_t *w = dirty_page(r, i);
	uint32_t gen = r->gen[i], found_gen;
	uint64_t found_page;
	char found[64];

	if (verify_zero(w))
		fmt_snprintf(found, sizeof(found), "zero page");
	else if (verify_identify(r, w, &found_page, &found_gen))
		fmt_snprintf(found, sizeof(found), "page %lu gen %u",
			     found_page, found_gen);
	else
		fmt_snprintf(found, sizeof(found), "wrong from word %d", word);
	console_printf("verify: FAIL page %lu gpa 0x%lx gen %u (found %s)\n", i,
		       (uint64_t)(uintptr_t)w, gen, found);
}

static uint64_t verify_region(const struct dirty_region *r)
{
	uint64_t i, bad = 0;
	int word;

	for (i = 0; i < r->nr_filled; i++) {
		if (i % TICK_PAGES == 0)
			tick_heartbeat();
		word = data_check(dirty_page(r, i), i, r->gen[i], r->data);
		if (word < 0)
			continue;
		if (bad++ < VERIFY_REPORT_MAX)
			verify_report(r, i, word);
	}
	return bad;
}

void verify_current(void)
{
	const struct dirty_region *r = dirty_current();
	uint64_t bad;

	if (!r) {
		console_printf("verify: no dirty region to check (run "
			       "'dirty' first)\n");
		guest_exit(GUEST_EXIT_USAGE);
	}
	bad = verify_region(r);
	if (!bad) {
		console_printf("verify: ok %lu pages\n", r->nr_filled);
		testdev_marker(MARK_VERIFY_OK, (uint32_t)r->nr_filled);
		return;
	}
	console_printf("verify: FAIL %lu of %lu pages wrong\n", bad,
		       r->nr_filled);
	testdev_marker(MARK_VERIFY_FAIL, (uint32_t)bad);
	guest_exit(GUEST_EXIT_VERIFY);
}

static const struct wl_flag verify_flags[] = {
	{0},
};

static void verify_run(const struct wl_call *c)
{
	(void)c;
	verify_current();
}

const struct workload wl_verify = {
	.name = "verify",
	.flags = verify_flags,
	.run = verify_run,
};
