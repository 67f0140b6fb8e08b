/* SPDX-License-Identifier: MIT */
/*
 * ram.h - guest RAM as migration compares and describes it: the
 * order-free sum of page digests for --verify (whole RAM, or kept page by
 * page as pages move) and the runs of guest-physical pages a DISCARD
 * carries. Which pages are
 * resident, memfd writes and holes are ept/'s (ept/ram_io.h). Called on
 * the event-loop thread, mig_sum_page also on the destination's urgent
 * thread (under the caller's lock).
 */
#ifndef MIGRATION_RAM_H
#define MIGRATION_RAM_H

#include "ept/mem.h"
#include "proto/proto.h"

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
 * read as four 64-bit lanes (or, MIG_SUM_XXH3, XXH3-128 of the page seeded
 * with gpa as two, proto.h's PROTO_CAP_VERIFY_XXH3), summed lane by lane
 * mod 2^64. The sum does not
 * depend on order, so the destination adds pages as they are placed (and
 * those it already held at the switch, before its vCPUs ran), while the
 * source sums its paused RAM: equal sums mean equal images. Zero pages
 * (holes or all-zero) count as nothing: both sides agree whichever form
 * they hold a zero page in.
 */
enum mig_sum_algo { MIG_SUM_SHA256, MIG_SUM_XXH3 };

struct mig_sum {
	uint64_t lane[4];
	enum mig_sum_algo algo;
	void *ctx; /* EVP_MD_CTX (SHA-256) */
};

/* The algorithm the handshake's capabilities agreed on. */
enum mig_sum_algo mig_sum_algo_of(uint64_t caps);
int mig_sum_init(struct mig_sum *s, enum mig_sum_algo algo);
void mig_sum_free(struct mig_sum *s);
int mig_sum_page(struct mig_sum *s, uint64_t gpa, const void *page);
/* Add every resident non-zero page of m (only while nothing changes it). */
int mig_sum_ram(struct mig_sum *s, const struct guest_mem *m);
/* As a VERIFY entry: gpa 0, size = RAM size, the lanes little-endian. */
void mig_sum_digest(const struct mig_sum *s, uint64_t size,
		    struct proto_digest *d);

/*
 * The same sum kept page by page (--verify in pre-copy, no downtime): each
 * page index holds the term its last copy added, so a page sent or placed
 * again replaces its term instead of adding a second. The source sets a
 * page as it is sent (hashing the bytes it sends), the destination as it
 * is placed (hashing the bytes read back from its guest RAM), so at the
 * switch only the last dirty set is hashed and the sums compare in O(1).
 * 32 bytes a page: 8 MiB per GiB of guest RAM. Loop thread.
 */
struct mig_pagesum {
	struct mig_sum sum;  /* lanes: the sum of every term below */
	uint64_t (*term)[4]; /* per page index; all zero: a zero page */
	uint64_t nr_pages;
};

int mig_pagesum_init(struct mig_pagesum *t, uint64_t nr_pages,
		     enum mig_sum_algo algo);
void mig_pagesum_free(struct mig_pagesum *t);
/* Page i (at gpa) now holds page (NULL: zero): replace its term. */
int mig_pagesum_set(struct mig_pagesum *t, uint64_t i, uint64_t gpa,
		    const void *page);

#endif /* MIGRATION_RAM_H */
