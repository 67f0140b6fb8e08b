/* SPDX-License-Identifier: MIT */
/*
 * ram.c - RAM digests for --verify and the runs of a page set; the
 * guest-RAM primitives they stand on are ept/ram_io.h's.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/page.h"
#include "ept/ram_io.h"
#include "migration/ram.h"

#define SCAN_CHUNK (64ULL << 20) /* mincore vector per call: 16 KiB */

/*
 * The digest of a region is SHA-256 over, for each page in order, the tag
 * 'Z' when the page reads as zero (a hole or an all-zero page: both sides
 * agree whichever they hold) or the tag 'D' followed by its 4096 bytes.
 * Zero pages cost a zero check instead of hashing, so a mostly empty guest
 * hashes in milliseconds.
 */
static int mig_ram_digest_region(const struct mem_region *r, EVP_MD_CTX *ctx,
				 unsigned char *vec, uint8_t out[32])
{
	static const uint8_t tag_zero = 'Z', tag_data = 'D';
	unsigned int n = 0;

	if (!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
		return -EIO;
	for (uint64_t off = 0; off < r->size; off += SCAN_CHUNK) {
		uint64_t len =
			r->size - off < SCAN_CHUNK ? r->size - off : SCAN_CHUNK;
		int ret = mem_region_residency(r, off, len, vec);

		if (ret)
			return ret;
		for (uint64_t p = 0; p < len / PAGE_SIZE; p++) {
			const uint8_t *pg = r->hva + off + p * PAGE_SIZE;
			bool zero = !(vec[p] & 1) || proto_page_is_zero(pg);

			if (!EVP_DigestUpdate(ctx, zero ? &tag_zero : &tag_data,
					      1) ||
			    (!zero && !EVP_DigestUpdate(ctx, pg, PAGE_SIZE)))
				return -EIO;
		}
	}
	if (!EVP_DigestFinal_ex(ctx, out, &n) || n != 32)
		return -EIO;
	return 0;
}

int mig_ram_digest(const struct guest_mem *m, struct proto_digest *d, int max)
{
	unsigned char *vec = malloc(SCAN_CHUNK / PAGE_SIZE);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ret = 0, i;

	if (!vec || !ctx) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0; i < m->nr_regions && i < max && !ret; i++) {
		d[i].gpa = m->regions[i].gpa;
		d[i].size = m->regions[i].size;
		ret = mig_ram_digest_region(&m->regions[i], ctx, vec,
					    d[i].sha256);
	}
	if (!ret)
		ret = i;
out:
	EVP_MD_CTX_free(ctx);
	free(vec);
	return ret;
}

int mig_sum_init(struct mig_sum *s)
{
	memset(s, 0, sizeof(*s));
	s->ctx = EVP_MD_CTX_new();
	return s->ctx ? 0 : -ENOMEM;
}

void mig_sum_free(struct mig_sum *s)
{
	EVP_MD_CTX_free(s->ctx);
	s->ctx = NULL;
}

int mig_sum_page(struct mig_sum *s, uint64_t gpa, const void *page)
{
	uint8_t md[32], le[8];
	unsigned int n = 0;

	if (proto_page_is_zero(page))
		return 0;
	for (int i = 0; i < 8; i++)
		le[i] = (uint8_t)(gpa >> (8 * i));
	if (!EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(s->ctx, le, sizeof(le)) ||
	    !EVP_DigestUpdate(s->ctx, page, PAGE_SIZE) ||
	    !EVP_DigestFinal_ex(s->ctx, md, &n) || n != 32)
		return -EIO;
	for (int l = 0; l < 4; l++) {
		uint64_t v = 0;

		for (int i = 0; i < 8; i++)
			v |= (uint64_t)md[l * 8 + i] << (8 * i);
		s->lane[l] += v;
	}
	return 0;
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
				ret = mig_sum_page(s, r->gpa + off + p * PAGE_SIZE,
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

uint32_t mig_ram_runs(const struct guest_mem *m, const struct bitmap *set,
		      bool value, uint64_t *pos, struct proto_run *runs,
		      uint32_t max)
{
	uint32_t nr = 0;
	uint64_t i;

	for (i = *pos; i < set->nbits; i++) {
		uint64_t gpa;
		struct proto_run *last = nr ? &runs[nr - 1] : NULL;

		if (bitmap_test(set, i) != value)
			continue;
		gpa = mem_page_to_gpa(m, i);
		if (last && last->gpa + (uint64_t)last->npages * PAGE_SIZE == gpa) {
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

int mig_ram_digests_differ(const struct proto_digest *a,
			   const struct proto_digest *b, uint32_t nr,
			   char *err, size_t errlen)
{
	for (uint32_t i = 0; i < nr; i++)
		if (memcmp(a[i].sha256, b[i].sha256, 32)) {
			snprintf(err, errlen,
				 "verify: SHA-256 of RAM region at 0x%llx "
				 "differs between source and destination",
				 (unsigned long long)a[i].gpa);
			return -EIO;
		}
	return 0;
}
