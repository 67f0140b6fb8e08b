/* SPDX-License-Identifier: MIT */
/*
 * ram.h - guest RAM as migration compares and describes it: SHA-256
 * digests of each region and the order-free sum of post-copy for --verify,
 * and the runs of guest-physical pages a DISCARD carries. Which pages are
 * resident, memfd writes and holes are ept/'s (ept/ram_io.h). Called on
 * the event-loop thread, mig_sum_page also on the destination's urgent
 * thread (under the caller's lock).
 */
#ifndef MIGRATION_RAM_H
#define MIGRATION_RAM_H

#include "ept/mem.h"
#include "proto/proto.h"

/*
 * A SHA-256 digest of each region in which zero pages (holes, never
 * touched, and all-zero pages alike) count as a one-byte tag: both sides
 * agree whichever form they hold a zero page in, and hashing skips them.
 * Returns the number of digests (one per region) or -errno.
 */
int mig_ram_digest(const struct guest_mem *m, struct proto_digest *d, int max);
/* 0 when the nr digests of a and b agree, else -EIO with err naming one. */
int mig_ram_digests_differ(const struct proto_digest *a,
			   const struct proto_digest *b, uint32_t nr,
			   char *err, size_t errlen);

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
