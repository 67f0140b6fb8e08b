// SPDX-License-Identifier: MIT
/*
 * test_push.c - the post-copy push order (migration/push.c): neighbours of
 * faults first (after the vCPUs' resume pages), then the pages marked
 * accessed, then guest-physical order;
 * every page of todo exactly once whatever the order; a full hint ring
 * drops hints, never pages. (mig_push_walk on a live guest's page tables
 * is driven by it.t_migrate_postcopy.)
 */
#include <criterion/criterion.h>

#include "migration/push.h"

#define NR 1024

static struct bitmap todo;
static struct mig_push push;

static void start(enum mig_push_order order)
{
	cr_assert_eq(bitmap_init(&todo, NR), 0);
	bitmap_set_range(&todo, 0, NR);
	cr_assert_eq(mig_push_init(&push, order, NR), 0);
}

static void stop(void)
{
	mig_push_free(&push);
	bitmap_free(&todo);
}

static uint64_t next(void)
{
	uint64_t i = ~0ULL;

	cr_assert(mig_push_next(&push, &todo, &i));
	return i;
}

Test(push, linear_is_guest_physical_order)
{
	start(MIG_PUSH_LINEAR);
	mig_push_hint(&push, 500); /* ignored in linear */
	for (uint64_t i = 0; i < NR; i++)
		cr_assert_eq(next(), i);
	cr_assert_not(mig_push_next(&push, &todo, &(uint64_t){0}));
	cr_assert_eq(push.pushed_near, 0);
	stop();
}

Test(push, neighbours_of_a_fault_first)
{
	start(MIG_PUSH_FAULTS);
	cr_assert_eq(next(), 0);
	mig_push_hint(&push, 100);
	/* The faulted page itself went on the urgent path. */
	for (uint64_t i = 101; i <= 100 + MIG_PUSH_NEAR; i++)
		cr_assert_eq(next(), i);
	cr_assert_eq(next(), 1); /* then the linear order resumes */
	cr_assert_eq(push.pushed_near, MIG_PUSH_NEAR);
	stop();
}

Test(push, neighbours_already_pushed_are_skipped)
{
	start(MIG_PUSH_FAULTS);
	bitmap_clear(&todo, 11);
	bitmap_clear(&todo, 12);
	mig_push_hint(&push, 10);
	cr_assert_eq(next(), 13);
	/* A hint at the end of RAM stops at the end. */
	mig_push_hint(&push, NR - 2);
	for (uint64_t i = 14; i <= 10 + MIG_PUSH_NEAR; i++)
		cr_assert_eq(next(), i);
	cr_assert_eq(next(), NR - 1);
	cr_assert_eq(next(), 0);
	stop();
}

Test(push, accessed_after_neighbours_before_the_rest)
{
	start(MIG_PUSH_ACCESSED);
	push.hot_ready = true; /* as after the walk's join */
	bitmap_set(&push.hot, 700);
	bitmap_set(&push.hot, 900);
	mig_push_hint(&push, 300);
	for (uint64_t i = 301; i <= 300 + MIG_PUSH_NEAR; i++)
		cr_assert_eq(next(), i);
	cr_assert_eq(next(), 700);
	/* A fault meanwhile goes before the rest of the accessed pages. */
	mig_push_hint(&push, 50);
	cr_assert_eq(next(), 51);
	for (uint64_t i = 52; i <= 50 + MIG_PUSH_NEAR; i++)
		cr_assert_eq(next(), i);
	cr_assert_eq(next(), 900);
	cr_assert_eq(next(), 0);
	cr_assert_eq(push.pushed_hot, 2);
	stop();
}

Test(push, every_page_once_whatever_the_order)
{
	struct bitmap seen;
	uint64_t i, n = 0;

	start(MIG_PUSH_ACCESSED);
	cr_assert_eq(bitmap_init(&seen, NR), 0);
	for (i = 0; i < NR; i += 7)
		bitmap_set(&push.hot, i);
	while (mig_push_next(&push, &todo, &i)) {
		cr_assert_not(bitmap_test_and_set(&seen, i), "page %lu twice",
			      (unsigned long)i);
		if (++n % 50 == 0)
			mig_push_hint(&push, (n * 37) % NR);
	}
	cr_assert_eq(n, NR);
	cr_assert_eq(bitmap_count(&todo), 0);
	bitmap_free(&seen);
	stop();
}

Test(push, a_full_ring_drops_hints)
{
	start(MIG_PUSH_FAULTS);
	for (uint64_t i = 0; i < MIG_PUSH_HINTS + 5; i++)
		mig_push_hint(&push, i);
	cr_assert_eq(atomic_load(&push.dropped), 5);
	stop();
}

Test(push, rewind_starts_over)
{
	start(MIG_PUSH_LINEAR);
	for (int k = 0; k < 10; k++)
		next();
	bitmap_set(&todo, 3); /* a recovery resends page 3 */
	mig_push_rewind(&push);
	cr_assert_eq(next(), 3);
	cr_assert_eq(next(), 10);
	stop();
}

Test(push, resume_pages_before_everything)
{
	start(MIG_PUSH_ACCESSED);
	push.first[push.nr_first++] = 600;
	push.first[push.nr_first++] = 5;
	push.first[push.nr_first++] = 601;
	bitmap_clear(&todo, 601); /* the destination holds it already */
	bitmap_set(&push.hot, 800);
	mig_push_hint(&push, 100);
	cr_assert_eq(next(), 600);
	cr_assert_eq(next(), 5);
	cr_assert_eq(next(), 101);
	cr_assert_eq(push.pushed_first, 2);
	/* A rewind (recovery) offers them again, if still to push. */
	bitmap_set(&todo, 600);
	mig_push_rewind(&push);
	cr_assert_eq(next(), 600);
	stop();
}
