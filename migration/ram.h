/* SPDX-License-Identifier: MIT */
/*
 * ram.h - guest RAM as migration sees it: which pages exist at all
 * (resident in the memfd: a never-touched page is a hole and reads as zero,
 * so it never needs to cross the wire), zero pages placed as holes on the
 * destination, and SHA-256 digests of each region for --verify.
 * Called on the event-loop thread.
 */
#ifndef MIGRATION_RAM_H
#define MIGRATION_RAM_H

#include "ept/mem.h"
#include "proto/proto.h"

/* Set out's bit for every page of m that is resident (mincore). */
int mig_ram_resident(const struct guest_mem *m, struct bitmap *out);
/*
 * The same for the n page indexes from first (n <= MIG_RAM_SCAN_PAGES;
 * indexes outside RAM are left alone): one mincore call per region.
 */
#define MIG_RAM_SCAN_PAGES 512
int mig_ram_resident_range(const struct guest_mem *m, uint64_t first,
			   uint64_t n, struct bitmap *out);
/* Is the page at gpa resident? (false also outside RAM or on error) */
bool mig_ram_page_resident(const struct guest_mem *m, uint64_t gpa);
/*
 * Write len bytes (whole pages) at gpa through the memfd, not the mapping:
 * for pages written whole, the kernel then neither faults them in nor
 * zeroes them first (~2.6 GB/s here against ~1 GB/s through the mapping).
 * Only while no vCPU runs: pre-copy on the destination.
 */
int mig_ram_write(const struct guest_mem *m, uint64_t gpa, const void *data,
		  uint64_t len);
/* Make the page at gpa read as zero and hold no memory (punch a hole). */
int mig_ram_zero_page(const struct guest_mem *m, uint64_t gpa);
/* The same for npages from gpa, one hole per region: -EFAULT outside RAM. */
int mig_ram_zero_range(const struct guest_mem *m, uint64_t gpa,
		       uint64_t npages);
/*
 * A SHA-256 digest of each region in which zero pages (holes, never
 * touched, and all-zero pages alike) count as a one-byte tag: both sides
 * agree whichever form they hold a zero page in, and hashing skips them.
 * Returns the number of digests (one per region) or -errno.
 */
int mig_ram_digest(const struct guest_mem *m, struct proto_digest *d, int max);

/*
 * Runs of guest-physical pages whose bit in set equals value, starting at
 * page *pos: at most max runs into runs; *pos advances past what was
 * taken (set->nbits when done). A run never spans a gap between regions.
 */
uint32_t mig_ram_runs(const struct guest_mem *m, const struct bitmap *set,
		      bool value, uint64_t *pos, struct proto_run *runs,
		      uint32_t max);

/*
 * The post-copy digest: over every non-zero page, SHA-256(gpa || page)
 * read as four 64-bit lanes, summed lane by lane mod 2^64. The sum does not
 * depend on order, so the destination adds pages as they are placed (and
 * those it already held at the switch, before its vCPUs ran), while the
 * source sums its paused RAM: equal sums mean equal images. Zero pages
 * (holes or all-zero) count as nothing, as in mig_ram_digest.
 */
struct mig_sum {
	uint64_t lane[4];
	void *ctx; /* EVP_MD_CTX */
};

int mig_sum_init(struct mig_sum *s);
void mig_sum_free(struct mig_sum *s);
int mig_sum_page(struct mig_sum *s, uint64_t gpa, const void *page);
/* Add every resident non-zero page of m (only while nothing changes it). */
int mig_sum_ram(struct mig_sum *s, const struct guest_mem *m);
/* As a VERIFY entry: gpa 0, size = RAM size, the lanes little-endian. */
void mig_sum_digest(const struct mig_sum *s, uint64_t size,
		    struct proto_digest *d);

#endif /* MIGRATION_RAM_H */
