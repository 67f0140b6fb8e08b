/* SPDX-License-Identifier: MIT */
/*
 * dirty.h - the region the `dirty` workload writes and `verify` checks.
 *
 * Pages [0, nr_filled) hold data(i, gen[i]) (user/data.h) at every
 * moment between two page writes, which is whenever tick() runs. Both the
 * pages and the generation array live in guest RAM, so they migrate with
 * the guest and the destination can verify what the source wrote.
 */
#ifndef GUEST_DIRTY_H
#define GUEST_DIRTY_H

#include <stdint.h>

#include "common/guest_abi.h"

struct dirty_region {
	uint64_t *base; /* nr_pages pages, page aligned */
	uint32_t *gen;	/* generation of each page */
	uint64_t nr_pages;
	uint64_t nr_filled; /* pages written at least once */
	uint32_t data;	    /* enum data_mode of every page */
};

/*
 * The most recent dirty region, or NULL if no `dirty` has run yet (or the
 * next one is being allocated). Any CPU.
 */
const struct dirty_region *dirty_current(void);

static inline uint64_t *dirty_page(const struct dirty_region *r, uint64_t i)
{
	return r->base + i * (GUEST_PAGE_SIZE / sizeof(uint64_t));
}

#endif /* GUEST_DIRTY_H */
