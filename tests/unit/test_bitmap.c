// SPDX-License-Identifier: MIT
/*
 * test_bitmap.c - struct bitmap: single-bit operations, ranges, scans, word
 * exchange, and concurrent setters from several threads losing nothing.
 */
#include <criterion/criterion.h>
#include <pthread.h>

#include "ept/bitmap.h"

Test(bitmap, set_test_clear)
{
	struct bitmap b;

	cr_assert_eq(bitmap_init(&b, 130), 0);
	cr_assert_not(bitmap_test(&b, 0));
	bitmap_set(&b, 0);
	bitmap_set(&b, 64);
	bitmap_set(&b, 129);
	cr_assert(bitmap_test(&b, 0));
	cr_assert(bitmap_test(&b, 64));
	cr_assert(bitmap_test(&b, 129));
	cr_assert_not(bitmap_test(&b, 63));
	cr_assert_eq(bitmap_count(&b), 3);
	bitmap_clear(&b, 64);
	cr_assert_not(bitmap_test(&b, 64));
	cr_assert_eq(bitmap_count(&b), 2);
	bitmap_free(&b);
}

Test(bitmap, test_and_set_and_clear)
{
	struct bitmap b;

	cr_assert_eq(bitmap_init(&b, 64), 0);
	cr_assert_not(bitmap_test_and_set(&b, 5));
	cr_assert(bitmap_test_and_set(&b, 5));
	cr_assert(bitmap_test_and_clear(&b, 5));
	cr_assert_not(bitmap_test_and_clear(&b, 5));
	bitmap_free(&b);
}

Test(bitmap, next_set_scans_words_and_stops_at_nbits)
{
	struct bitmap b;

	cr_assert_eq(bitmap_init(&b, 200), 0);
	cr_assert_eq(bitmap_next_set(&b, 0), 200);
	bitmap_set(&b, 3);
	bitmap_set(&b, 130);
	bitmap_set(&b, 199);
	cr_assert_eq(bitmap_next_set(&b, 0), 3);
	cr_assert_eq(bitmap_next_set(&b, 3), 3);
	cr_assert_eq(bitmap_next_set(&b, 4), 130);
	cr_assert_eq(bitmap_next_set(&b, 131), 199);
	cr_assert_eq(bitmap_next_set(&b, 200), 200);
	cr_assert_eq(bitmap_next_set(&b, 5000), 200);
	bitmap_free(&b);
}

Test(bitmap, next_clear_scans_words_and_stops_at_nbits)
{
	struct bitmap b;

	cr_assert_eq(bitmap_init(&b, 200), 0);
	bitmap_set_range(&b, 0, 200);
	cr_assert_eq(bitmap_next_clear(&b, 0), 200);
	bitmap_clear(&b, 3);
	bitmap_clear(&b, 130);
	bitmap_clear(&b, 199);
	cr_assert_eq(bitmap_next_clear(&b, 0), 3);
	cr_assert_eq(bitmap_next_clear(&b, 3), 3);
	cr_assert_eq(bitmap_next_clear(&b, 4), 130);
	cr_assert_eq(bitmap_next_clear(&b, 131), 199);
	cr_assert_eq(bitmap_next_clear(&b, 200), 200);
	cr_assert_eq(bitmap_next_clear(&b, 5000), 200);
	bitmap_free(&b);
}

Test(bitmap, set_range_matches_single_sets)
{
	struct bitmap a, b;

	cr_assert_eq(bitmap_init(&a, 1000), 0);
	cr_assert_eq(bitmap_init(&b, 1000), 0);
	bitmap_set_range(&a, 5, 300);
	for (int i = 5; i < 305; i++)
		bitmap_set(&b, i);
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(bitmap_test(&a, i), bitmap_test(&b, i), "bit %d",
			     i);
	cr_assert_eq(bitmap_count(&a), 300);
	bitmap_free(&a);
	bitmap_free(&b);
}

Test(bitmap, or_words_and_xchg)
{
	struct bitmap b;
	uint64_t src[2] = {0x5, 0x8000000000000000ULL};

	cr_assert_eq(bitmap_init(&b, 256), 0);
	bitmap_set(&b, 64);
	bitmap_or_words(&b, 1, src, 2);
	cr_assert(bitmap_test(&b, 64));
	cr_assert(bitmap_test(&b, 66));
	cr_assert(bitmap_test(&b, 191));
	cr_assert_eq(bitmap_count(&b), 3);
	cr_assert_eq(bitmap_xchg_word(&b, 1), 0x5);
	cr_assert_eq(bitmap_count(&b), 1);
	bitmap_zero(&b);
	cr_assert_eq(bitmap_count(&b), 0);
	bitmap_free(&b);
}

#define NR_THREADS 4
#define NR_BITS	   (1 << 16)

struct setter {
	struct bitmap *b;
	int id;
};

/* Thread id sets every bit i with i % NR_THREADS == id: same words. */
static void *setter_run(void *arg)
{
	struct setter *s = arg;

	for (int i = s->id; i < NR_BITS; i += NR_THREADS)
		bitmap_set(s->b, i);
	return NULL;
}

Test(bitmap, concurrent_setters_lose_nothing)
{
	struct bitmap b;
	pthread_t t[NR_THREADS];
	struct setter s[NR_THREADS];

	cr_assert_eq(bitmap_init(&b, NR_BITS), 0);
	for (int i = 0; i < NR_THREADS; i++) {
		s[i] = (struct setter){.b = &b, .id = i};
		cr_assert_eq(pthread_create(&t[i], NULL, setter_run, &s[i]), 0);
	}
	for (int i = 0; i < NR_THREADS; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(bitmap_count(&b), NR_BITS);
	bitmap_free(&b);
}
