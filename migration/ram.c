/* SPDX-License-Identifier: MIT */
/*
 * ram.c - resident-page scans, zero pages as holes, RAM digests.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/page.h"
#include "migration/ram.h"

#define SCAN_CHUNK (64ULL << 20) /* mincore vector per call: 16 KiB */

static int mig_ram_scan(const struct mem_region *r, uint64_t off, uint64_t len,
			unsigned char *vec)
{
	if (mincore(r->hva + off, len, vec) < 0)
		return -errno;
	return 0;
}

int mig_ram_resident(const struct guest_mem *m, struct bitmap *out)
{
	unsigned char *vec = malloc(SCAN_CHUNK / PAGE_SIZE);
	int ret = 0;

	if (!vec)
		return -ENOMEM;
	for (int i = 0; i < m->nr_regions && !ret; i++) {
		const struct mem_region *r = &m->regions[i];
		uint64_t first = r->file_off / PAGE_SIZE;

		for (uint64_t off = 0; off < r->size && !ret;
		     off += SCAN_CHUNK) {
			uint64_t len = r->size - off < SCAN_CHUNK
					       ? r->size - off
					       : SCAN_CHUNK;

			ret = mig_ram_scan(r, off, len, vec);
			for (uint64_t p = 0; !ret && p < len / PAGE_SIZE; p++)
				if (vec[p] & 1)
					bitmap_set(out, first + off / PAGE_SIZE + p);
		}
	}
	free(vec);
	return ret;
}

int mig_ram_resident_range(const struct guest_mem *m, uint64_t first,
			   uint64_t n, struct bitmap *out)
{
	unsigned char vec[MIG_RAM_SCAN_PAGES];

	if (n > MIG_RAM_SCAN_PAGES)
		return -EINVAL;
	for (int i = 0; i < m->nr_regions; i++) {
		const struct mem_region *r = &m->regions[i];
		uint64_t rfirst = r->file_off / PAGE_SIZE;
		uint64_t lo = first > rfirst ? first : rfirst;
		uint64_t hi = first + n < rfirst + r->size / PAGE_SIZE
				      ? first + n
				      : rfirst + r->size / PAGE_SIZE;
		int ret;

		if (lo >= hi)
			continue;
		ret = mig_ram_scan(r, (lo - rfirst) * PAGE_SIZE, (hi - lo) * PAGE_SIZE,
				   vec);
		if (ret)
			return ret;
		for (uint64_t p = 0; p < hi - lo; p++)
			if (vec[p] & 1)
				bitmap_set(out, lo + p);
	}
	return 0;
}

bool mig_ram_page_resident(const struct guest_mem *m, uint64_t gpa)
{
	const struct mem_region *r = mem_find_region(m, gpa & ~(PAGE_SIZE - 1));
	unsigned char res = 0;

	if (!r ||
	    mincore(r->hva + ((gpa & ~(PAGE_SIZE - 1)) - r->gpa), PAGE_SIZE, &res) < 0)
		return false;
	return res & 1;
}

int mig_ram_write(const struct guest_mem *m, uint64_t gpa, const void *data,
		  uint64_t len)
{
	const struct mem_region *r = mem_find_region(m, gpa);
	const uint8_t *p = data;
	off_t off;

	if (!r || gpa + len > r->gpa + r->size)
		return -EFAULT;
	off = (off_t)(r->file_off + (gpa - r->gpa));
	while (len) {
		ssize_t n = pwrite(m->memfd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

int mig_ram_zero_page(const struct guest_mem *m, uint64_t gpa)
{
	const struct mem_region *r = mem_find_region(m, gpa);
	unsigned char res = 0;
	uint64_t off;

	if (!r || (gpa & (PAGE_SIZE - 1)))
		return -EFAULT;
	off = gpa - r->gpa;
	if (mincore(r->hva + off, PAGE_SIZE, &res) < 0)
		return -errno;
	if (!(res & 1))
		return 0; /* already a hole: nothing to do, nothing touched */
	if (fallocate(m->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)(r->file_off + off), PAGE_SIZE) < 0)
		return -errno;
	return 0;
}

int mig_ram_zero_range(const struct guest_mem *m, uint64_t gpa, uint64_t npages)
{
	uint64_t len = npages * PAGE_SIZE;

	if (gpa & (PAGE_SIZE - 1))
		return -EFAULT;
	while (len) {
		const struct mem_region *r = mem_find_region(m, gpa);
		uint64_t n;

		if (!r)
			return -EFAULT;
		n = r->gpa + r->size - gpa < len ? r->gpa + r->size - gpa : len;
		if (fallocate(m->memfd,
			      FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)(r->file_off + (gpa - r->gpa)),
			      (off_t)n) < 0)
			return -errno;
		gpa += n;
		len -= n;
	}
	return 0;
}

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
		int ret = mig_ram_scan(r, off, len, vec);

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
		int ret = mig_ram_scan(r, off, len, vec);

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
