/* SPDX-License-Identifier: MIT */
/*
 * ram_io.c - resident-page scans (mincore), memfd writes, holes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/page.h"
#include "ept/ram_io.h"

#define SCAN_CHUNK (64ULL << 20) /* mincore vector per call: 16 KiB */

int mem_region_residency(const struct mem_region *r, uint64_t off, uint64_t len,
			 unsigned char *vec)
{
	if (mincore(r->hva + off, len, vec) < 0)
		return -errno;
	return 0;
}

int mem_resident(const struct guest_mem *m, struct bitmap *out)
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

			ret = mem_region_residency(r, off, len, vec);
			for (uint64_t p = 0; !ret && p < len / PAGE_SIZE; p++)
				if (vec[p] & 1)
					bitmap_set(out,
						   first + off / PAGE_SIZE + p);
		}
	}
	free(vec);
	return ret;
}

int mem_resident_range(const struct guest_mem *m, uint64_t first, uint64_t n,
		       struct bitmap *out)
{
	unsigned char vec[MEM_SCAN_PAGES];

	if (n > MEM_SCAN_PAGES)
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
		ret = mem_region_residency(r, (lo - rfirst) * PAGE_SIZE,
					   (hi - lo) * PAGE_SIZE, vec);
		if (ret)
			return ret;
		for (uint64_t p = 0; p < hi - lo; p++)
			if (vec[p] & 1)
				bitmap_set(out, lo + p);
	}
	return 0;
}

bool mem_page_resident(const struct guest_mem *m, uint64_t gpa)
{
	const struct mem_region *r = mem_find_region(m, gpa & ~(PAGE_SIZE - 1));
	unsigned char res = 0;

	if (!r || mincore(r->hva + ((gpa & ~(PAGE_SIZE - 1)) - r->gpa),
			  PAGE_SIZE, &res) < 0)
		return false;
	return res & 1;
}

int mem_pwrite(const struct guest_mem *m, uint64_t gpa, const void *data,
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

int mem_splice_in(const struct guest_mem *m, int pipe_rd, uint64_t gpa,
		  uint64_t len)
{
	const struct mem_region *r = mem_find_region(m, gpa);
	loff_t off;

	if (!r || gpa + len > r->gpa + r->size)
		return -EFAULT;
	off = (loff_t)(r->file_off + (gpa - r->gpa));
	while (len) {
		ssize_t n = splice(pipe_rd, NULL, m->memfd, &off, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO; /* 0: the pipe ran dry */
		len -= (uint64_t)n;		      /* splice advanced off */
	}
	return 0;
}

int mem_punch_page(const struct guest_mem *m, uint64_t gpa)
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

int mem_punch_range(const struct guest_mem *m, uint64_t gpa, uint64_t npages)
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
