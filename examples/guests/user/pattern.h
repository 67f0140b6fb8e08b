/* SPDX-License-Identifier: MIT */
/*
 * pattern.h - the contents a dirty-region page must hold.
 *
 * Page i at generation g holds 512 words seed ^ (k * STEP), k = 0..511,
 * where seed = mix64(i << 32 | g). mix64 (the splitmix64 finalizer) is a
 * bijection, so every (page, generation) pair has its own seed: a page that
 * is lost (zero), stale (an older generation) or misplaced (another page's
 * data) does not match. Word 0 is the seed itself, and mix64 can be run
 * backwards, so a wrong page tells which (page, generation) it holds if it
 * holds any. The check ORs all differences and looks for the first wrong
 * word only when there is one.
 */
#ifndef GUEST_PATTERN_H
#define GUEST_PATTERN_H

#include <stdbool.h>
#include <stdint.h>

#include "common/guest_abi.h"

#define PATTERN_WORDS (GUEST_PAGE_SIZE / 8)
#define PATTERN_STEP  0x9e3779b97f4a7c15ULL

static inline uint64_t pattern_mix64(uint64_t x)
{
	x += PATTERN_STEP;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* x from x ^ (x >> s): each round fixes s more of the top bits. */
static inline uint64_t pattern_unshift(uint64_t y, unsigned int s)
{
	uint64_t x = y;
	unsigned int i;

	for (i = s; i < 64; i += s)
		x = y ^ (x >> s);
	return x;
}

/* The inverse of pattern_mix64 (modular inverses of its multipliers). */
static inline uint64_t pattern_unmix64(uint64_t x)
{
	x = pattern_unshift(x, 31) * 0x319642b2d24d8ec3ULL;
	x = pattern_unshift(x, 27) * 0x96de1b173f119089ULL;
	return pattern_unshift(x, 30) - PATTERN_STEP;
}

static inline uint64_t pattern_seed(uint64_t page, uint32_t gen)
{
	return pattern_mix64(page << 32 | gen);
}

static inline void pattern_fill(uint64_t *w, uint64_t page, uint32_t gen)
{
	uint64_t seed = pattern_seed(page, gen);
	uint64_t k;

	for (k = 0; k < PATTERN_WORDS; k++)
		w[k] = seed ^ (k * PATTERN_STEP);
}

/* Index of the first word that differs, or -1 when the page is right. */
static inline int pattern_check(const uint64_t *w, uint64_t page, uint32_t gen)
{
	uint64_t seed = pattern_seed(page, gen);
	uint64_t diff = 0, k;

	for (k = 0; k < PATTERN_WORDS; k++)
		diff |= w[k] ^ seed ^ (k * PATTERN_STEP);
	if (!diff)
		return -1;
	for (k = 0; k < PATTERN_WORDS; k++)
		if (w[k] != (seed ^ (k * PATTERN_STEP)))
			return (int)k;
	return -1; /* changed under us: only the host could do that */
}

/* The (page, generation) whose pattern w holds; false if none. */
static inline bool pattern_identify(const uint64_t *w, uint64_t *page,
				    uint32_t *gen)
{
	uint64_t x = pattern_unmix64(w[0]);

	*page = x >> 32;
	*gen = (uint32_t)x;
	return pattern_check(w, *page, *gen) < 0;
}

#endif /* GUEST_PATTERN_H */
