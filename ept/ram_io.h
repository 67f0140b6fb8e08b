/* SPDX-License-Identifier: MIT */
/*
 * ram_io.h - guest RAM through its memfd rather than through a vCPU: which
 * pages exist at all (resident in the memfd: a never-touched page is a hole
 * and reads as zero), writing whole pages with pwrite, and making pages
 * read as zero again by punching holes.
 *
 * These are pure guest-RAM primitives: no page-state bitmap, no KVM, no
 * wire format. Migration uses them (the source to skip holes, the
 * destination to place pages before its vCPUs exist); any thread may call
 * them, but what they report about a page a vCPU is writing may be stale
 * at once: callers use them while the VM is paused or not yet running.
 */
#ifndef EPT_RAM_IO_H
#define EPT_RAM_IO_H

#include <stdbool.h>
#include <stdint.h>

#include "ept/mem.h"

/* mem_resident_range scans at most this many pages a call. */
#define MEM_SCAN_PAGES 512

/* Set out's bit for every page of m that is resident (mincore). */
int mem_resident(const struct guest_mem *m, struct bitmap *out);
/*
 * The same for the n page indexes from first (n <= MEM_SCAN_PAGES;
 * indexes outside RAM are left alone): one mincore call per region.
 */
int mem_resident_range(const struct guest_mem *m, uint64_t first, uint64_t n,
		       struct bitmap *out);
/* Is the page at gpa resident? (false also outside RAM or on error) */
bool mem_page_resident(const struct guest_mem *m, uint64_t gpa);
/*
 * Residency of len bytes (whole pages) of region r from offset off into
 * vec, one byte a page (bit 0: resident), as mincore(2) reports it.
 */
int mem_region_residency(const struct mem_region *r, uint64_t off, uint64_t len,
			 unsigned char *vec);
/*
 * Write len bytes (whole pages) at gpa through the memfd, not the mapping:
 * for pages written whole, the kernel then neither faults them in nor
 * zeroes them first (~2.6 GB/s here against ~1 GB/s through the mapping).
 * Only while no vCPU runs (a migration destination before GO).
 */
int mem_pwrite(const struct guest_mem *m, uint64_t gpa, const void *data,
	       uint64_t len);
/*
 * Move len bytes that wait in the pipe pipe_rd into guest RAM at gpa
 * through the memfd, as mem_pwrite writes them (splice: the kernel copies
 * the pipe's pages into the file's, no user-space buffer between). The
 * bytes must all be in the pipe already; gpa to gpa + len must lie in one
 * region (-EFAULT otherwise, nothing moved). Same rule: no vCPU runs.
 */
int mem_splice_in(const struct guest_mem *m, int pipe_rd, uint64_t gpa,
		  uint64_t len);
/* Make the page at gpa read as zero and hold no memory (punch a hole). */
int mem_punch_page(const struct guest_mem *m, uint64_t gpa);
/* The same for npages from gpa, one hole per region: -EFAULT outside RAM. */
int mem_punch_range(const struct guest_mem *m, uint64_t gpa, uint64_t npages);

#endif /* EPT_RAM_IO_H */
