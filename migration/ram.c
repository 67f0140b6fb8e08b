/* SPDX-License-Identifier: MIT */
/*
 * ram.c - the page-digest sums of --verify and the runs of a page set; the
 * guest-RAM primitives they stand on are ept/ram_io.h's.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <xxhash.h>

#include "common/page.h"
#include "ept/ram_io.h"
#include "migration/ram.h"

#define SCAN_CHUNK (64ULL << 20) /* mincore vector per call: 16 KiB */

enum mig_sum_algo mig_sum_algo_of(uint64_t caps)
{
	return (caps & PROTO_CAP_VERIFY_XXH3) ? MIG_SUM_XXH3 : MIG_SUM_SHA256;
}

int mig_sum_init(struct mig_sum *s, enum mig_sum_algo algo)
{
	memset(s, 0, sizeof(*s));
	s->algo = algo;
	if (algo == MIG_SUM_XXH3)
		return 0;
	s->ctx = EVP_MD_CTX_new();
	return s->ctx ? 0 : -ENOMEM;
}

void mig_sum_free(struct mig_sum *s)
{
	EVP_MD_CTX_free(s->ctx);
	s->ctx = NULL;
}

/* The term of a non-zero page: XXH3-128(page, seed gpa) as two lanes. */
static void mig_sum_term_xxh3(uint64_t gpa, const void *page, uint64_t term[4])
{
	XXH128_hash_t h = XXH3_128bits_withSeed(page, PAGE_SIZE, gpa);

	term[0] = h.low64;
	term[1] = h.high64;
	term[2] = term[3] = 0;
}

/* The term of a non-zero page: SHA-256(gpa || page) as four lanes. */
static int mig_sum_term(struct mig_sum *s, uint64_t gpa, const void *page,
			uint64_t term[4])
{
	uint8_t md[32], le[8];
	unsigned int n = 0;

	if (s->algo == MIG_SUM_XXH3) {
		mig_sum_term_xxh3(gpa, page, term);
		return 0;
	}
	for (int i = 0; i < 8; i++)
		le[i] = (uint8_t)(gpa >> (8 * i));
	if (!EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(s->ctx, le, sizeof(le)) ||
	    !EVP_DigestUpdate(s->ctx, page, PAGE_SIZE) ||
	    !EVP_DigestFinal_ex(s->ctx, md, &n) || n != 32)
		return -EIO;
	for (int l = 0; l < 4; l++) {
		term[l] = 0;
		for (int i = 0; i < 8; i++)
			term[l] |= (uint64_t)md[l * 8 + i] << (8 * i);
	}
	return 0;
}

int mig_sum_page(struct mig_sum *s, uint64_t gpa, const void *page)
{
	uint64_t term[4];
	int r;

	if (proto_page_is_zero(page))
		return 0;
	r = mig_sum_term(s, gpa, page, term);
	for (int l = 0; !r && l < 4; l++)
		s->lane[l] += term[l];
	return r;
}

static int mig_sum_region(struct mig_sum *s, const struct mem_region *r,
			  unsigned char *vec)
{
	for (uint64_t off = 0; off < r->size; off += SCAN_CHUNK) {
		uint64_t len =
			r->size - off < SCAN_CHUNK ? r->size - off : SCAN_CHUNK;
		int ret = mem_region_residency(r, off, len, vec);

		for (uint64_t p = 0; !ret && p < len / PAGE_SIZE; p++)
			if (vec[p] & 1)
				ret = mig_sum_page(
					s, r->gpa + off + p * PAGE_SIZE,
					r->hva + off + p * PAGE_SIZE);
		if (ret)
			return ret;
	}
	return 0;
}

int mig_sum_ram(struct mig_sum *s, const struct guest_mem *m)
{
	unsigned char *vec = malloc(SCAN_CHUNK / PAGE_SIZE);
	int ret = vec ? 0 : -ENOMEM;

	for (int i = 0; i < m->nr_regions && !ret; i++)
		ret = mig_sum_region(s, &m->regions[i], vec);
	free(vec);
	return ret;
}

void mig_sum_digest(const struct mig_sum *s, uint64_t size,
		    struct proto_digest *d)
{
	d->gpa = 0;
	d->size = size;
	for (int l = 0; l < 4; l++)
		for (int i = 0; i < 8; i++)
			d->sha256[l * 8 + i] = (uint8_t)(s->lane[l] >> (8 * i));
}

/* The next page at or after i whose bit in set is value (a word at a time). */
static uint64_t ram_next(const struct bitmap *set, bool value, uint64_t i)
{
	return value ? bitmap_next_set(set, i) : bitmap_next_clear(set, i);
}

uint32_t mig_ram_runs(const struct guest_mem *m, const struct bitmap *set,
		      bool value, uint64_t *pos, struct proto_run *runs,
		      uint32_t max)
{
	uint32_t nr = 0;
	uint64_t i;

	for (i = ram_next(set, value, *pos); i < set->nbits;
	     i = ram_next(set, value, i + 1)) {
		uint64_t gpa;
		struct proto_run *last = nr ? &runs[nr - 1] : NULL;

		gpa = mem_page_to_gpa(m, i);
		if (last &&
		    last->gpa + (uint64_t)last->npages * PAGE_SIZE == gpa) {
			last->npages++;
			continue;
		}
		if (nr == max)
			break;
		runs[nr++] = (struct proto_run){.gpa = gpa, .npages = 1};
	}
	*pos = i;
	return nr;
}

int mig_pagesum_init(struct mig_pagesum *t, uint64_t nr_pages,
		     enum mig_sum_algo algo)
{
	int r = mig_sum_init(&t->sum, algo);

	t->nr_pages = nr_pages;
	t->term = r ? NULL : calloc(nr_pages ? nr_pages : 1, sizeof(*t->term));
	if (!r && !t->term) {
		mig_sum_free(&t->sum);
		r = -ENOMEM;
	}
	return r;
}

void mig_pagesum_free(struct mig_pagesum *t)
{
	if (!t->term)
		return;
	mig_sum_free(&t->sum);
	free(t->term);
	t->term = NULL;
}

int mig_pagesum_set(struct mig_pagesum *t, uint64_t i, uint64_t gpa,
		    const void *page)
{
	uint64_t term[4] = {0};
	int r = 0;

	if (i >= t->nr_pages)
		return -EFAULT;
	if (page && !proto_page_is_zero(page))
		r = mig_sum_term(&t->sum, gpa, page, term);
	if (r)
		return r;
	for (int l = 0; l < 4; l++) {
		t->sum.lane[l] += term[l] - t->term[i][l];
		t->term[i][l] = term[l];
	}
	return 0;
}
