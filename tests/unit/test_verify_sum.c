/* SPDX-License-Identifier: MIT */
/*
 * test_verify_sum.c - --verify's order-free sum of page terms
 * (migration/ram.h), no KVM, for both algorithms the handshake can agree
 * on: SHA-256(gpa || page) and XXH3-128 seeded with gpa
 * (PROTO_CAP_VERIFY_XXH3). The same pages in any order sum the same; a
 * byte changed, or the same page at another gpa, changes the sum; zero
 * pages count nothing; the page-by-page sum equals the whole-RAM one after
 * pages are replaced; the XXH3 term is the library's own hash. End to end:
 * every --verify migration test (t_migrate_loopback, t_migrate_hybrid).
 */
#include <criterion/criterion.h>
#include <string.h>
#include <xxhash.h>

#include "common/page.h"
#include "ept/mem.h"
#include "migration/ram.h"

#define MiB (1ULL << 20)

static uint8_t pages[4][PAGE_SIZE];

static void pages_fill(void)
{
	for (int p = 0; p < 4; p++)
		for (int i = 0; i < (int)PAGE_SIZE; i++)
			pages[p][i] = (uint8_t)(p * 31 + i * 7 + (i >> 9));
}

static void digest_of(struct mig_sum *s, struct proto_digest *d)
{
	mig_sum_digest(s, 4 * PAGE_SIZE, d);
}

static void sum_order_free(enum mig_sum_algo algo)
{
	struct mig_sum a, b;
	struct proto_digest da, db;

	pages_fill();
	cr_assert_eq(mig_sum_init(&a, algo), 0);
	cr_assert_eq(mig_sum_init(&b, algo), 0);
	for (int p = 0; p < 4; p++)
		cr_assert_eq(mig_sum_page(&a, p * PAGE_SIZE, pages[p]), 0);
	for (int p = 3; p >= 0; p--)
		cr_assert_eq(mig_sum_page(&b, p * PAGE_SIZE, pages[p]), 0);
	digest_of(&a, &da);
	digest_of(&b, &db);
	cr_assert_eq(memcmp(&da, &db, sizeof(da)), 0, "order changed the sum");
	/* A zero page counts nothing. */
	memset(pages[0], 0, PAGE_SIZE);
	cr_assert_eq(mig_sum_page(&b, 9 * PAGE_SIZE, pages[0]), 0);
	digest_of(&b, &db);
	cr_assert_eq(memcmp(&da, &db, sizeof(da)), 0, "a zero page counted");
	mig_sum_free(&a);
	mig_sum_free(&b);
}

static void sum_sees_changes(enum mig_sum_algo algo)
{
	struct mig_sum a, b, c;
	struct proto_digest da, db, dc;

	pages_fill();
	cr_assert_eq(mig_sum_init(&a, algo), 0);
	cr_assert_eq(mig_sum_init(&b, algo), 0);
	cr_assert_eq(mig_sum_init(&c, algo), 0);
	cr_assert_eq(mig_sum_page(&a, 0, pages[1]), 0);
	cr_assert_eq(mig_sum_page(&c, PAGE_SIZE, pages[1]), 0);
	pages[1][1234] ^= 1;
	cr_assert_eq(mig_sum_page(&b, 0, pages[1]), 0);
	digest_of(&a, &da);
	digest_of(&b, &db);
	digest_of(&c, &dc);
	cr_assert_neq(memcmp(&da, &db, sizeof(da)), 0, "a flipped bit unseen");
	cr_assert_neq(memcmp(&da, &dc, sizeof(da)), 0, "the gpa unseen");
	mig_sum_free(&a);
	mig_sum_free(&b);
	mig_sum_free(&c);
}

/* Pages replaced one by one end with the sum of what RAM holds. */
static void pagesum_matches_ram(enum mig_sum_algo algo)
{
	struct guest_mem m;
	struct mig_pagesum t;
	struct mig_sum whole;
	struct proto_digest dt, dw;

	pages_fill();
	cr_assert_eq(mem_create(&m, 16 * MiB), 0);
	cr_assert_eq(mig_pagesum_init(&t, m.nr_pages, algo), 0);
	for (int p = 0; p < 4; p++)
		cr_assert_eq(mig_pagesum_set(&t, p, p * PAGE_SIZE, pages[p]),
			     0);
	/* Page 2 written again, page 3 now zero: their terms replaced. */
	pages[2][7] ^= 0xff;
	cr_assert_eq(mig_pagesum_set(&t, 2, 2 * PAGE_SIZE, pages[2]), 0);
	cr_assert_eq(mig_pagesum_set(&t, 3, 3 * PAGE_SIZE, NULL), 0);
	for (int p = 0; p < 3; p++)
		cr_assert_eq(mem_write(&m, p * PAGE_SIZE, pages[p], PAGE_SIZE),
			     0);
	cr_assert_eq(mig_sum_init(&whole, algo), 0);
	cr_assert_eq(mig_sum_ram(&whole, &m), 0);
	mig_sum_digest(&t.sum, m.size, &dt);
	mig_sum_digest(&whole, m.size, &dw);
	cr_assert_eq(memcmp(&dt, &dw, sizeof(dt)), 0);
	mig_sum_free(&whole);
	mig_pagesum_free(&t);
	mem_destroy(&m);
}

Test(verify_sum, sha256_is_order_free)
{
	sum_order_free(MIG_SUM_SHA256);
}
Test(verify_sum, xxh3_is_order_free)
{
	sum_order_free(MIG_SUM_XXH3);
}
Test(verify_sum, sha256_sees_a_bit_and_the_gpa)
{
	sum_sees_changes(MIG_SUM_SHA256);
}
Test(verify_sum, xxh3_sees_a_bit_and_the_gpa)
{
	sum_sees_changes(MIG_SUM_XXH3);
}
Test(verify_sum, sha256_pagesum_equals_ram)
{
	pagesum_matches_ram(MIG_SUM_SHA256);
}
Test(verify_sum, xxh3_pagesum_equals_ram)
{
	pagesum_matches_ram(MIG_SUM_XXH3);
}

Test(verify_sum, xxh3_term_is_the_seeded_hash_and_caps_choose)
{
	struct mig_sum s;
	struct proto_digest d;
	XXH128_hash_t h;

	pages_fill();
	h = XXH3_128bits_withSeed(pages[2], PAGE_SIZE, 5 * PAGE_SIZE);
	cr_assert_eq(mig_sum_init(&s, MIG_SUM_XXH3), 0);
	cr_assert_eq(mig_sum_page(&s, 5 * PAGE_SIZE, pages[2]), 0);
	cr_assert_eq(s.lane[0], h.low64);
	cr_assert_eq(s.lane[1], h.high64);
	cr_assert_eq(s.lane[2] | s.lane[3], 0);
	mig_sum_digest(&s, PAGE_SIZE, &d);
	cr_assert_eq(d.size, PAGE_SIZE);
	mig_sum_free(&s);
	cr_assert_eq(mig_sum_algo_of(PROTO_CAP_VERIFY), MIG_SUM_SHA256);
	cr_assert_eq(mig_sum_algo_of(PROTO_CAP_VERIFY | PROTO_CAP_VERIFY_XXH3),
		     MIG_SUM_XXH3);
}
