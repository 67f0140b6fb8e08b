/* SPDX-License-Identifier: MIT */
/*
 * bitmap.c - the non-inline parts of struct bitmap (see bitmap.h for the
 * atomicity each operation gives).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ept/bitmap.h"

int bitmap_init(struct bitmap *b, uint64_t nbits)
{
	b->nbits = nbits;
	b->words = calloc(BITMAP_WORDS(nbits) ? BITMAP_WORDS(nbits) : 1,
			  sizeof(uint64_t));
	return b->words ? 0 : -ENOMEM;
}

void bitmap_free(struct bitmap *b)
{
	free(b->words);
	b->words = NULL;
	b->nbits = 0;
}

void bitmap_zero(struct bitmap *b)
{
	for (uint64_t w = 0; w < BITMAP_WORDS(b->nbits); w++)
		__atomic_store_n(&b->words[w], 0, __ATOMIC_RELEASE);
}

uint64_t bitmap_count(const struct bitmap *b)
{
	uint64_t n = 0;

	for (uint64_t w = 0; w < BITMAP_WORDS(b->nbits); w++)
		n += __builtin_popcountll(
			__atomic_load_n(&b->words[w], __ATOMIC_ACQUIRE));
	return n;
}

/* First bit at or after from that differs from flip's (0: set, ~0: clear). */
static uint64_t bitmap_next(const struct bitmap *b, uint64_t from,
			    uint64_t flip)
{
	uint64_t w = from / 64;
	uint64_t word;

	if (from >= b->nbits)
		return b->nbits;
	word = (__atomic_load_n(&b->words[w], __ATOMIC_ACQUIRE) ^ flip) &
	       (~0ULL << (from % 64));
	for (;;) {
		if (word) {
			uint64_t i = w * 64 + __builtin_ctzll(word);

			return i < b->nbits ? i : b->nbits;
		}
		if (++w >= BITMAP_WORDS(b->nbits))
			return b->nbits;
		word = __atomic_load_n(&b->words[w], __ATOMIC_ACQUIRE) ^ flip;
	}
}

uint64_t bitmap_next_set(const struct bitmap *b, uint64_t from)
{
	return bitmap_next(b, from, 0);
}

uint64_t bitmap_next_clear(const struct bitmap *b, uint64_t from)
{
	return bitmap_next(b, from, ~0ULL);
}

void bitmap_set_range(struct bitmap *b, uint64_t first, uint64_t n)
{
	while (n && (first % 64)) {
		bitmap_set(b, first++);
		n--;
	}
	while (n >= 64) {
		__atomic_store_n(&b->words[first / 64], ~0ULL,
				 __ATOMIC_RELEASE);
		first += 64;
		n -= 64;
	}
	while (n--)
		bitmap_set(b, first++);
}

void bitmap_or_words(struct bitmap *b, uint64_t w, const uint64_t *src,
		     uint64_t nwords)
{
	for (uint64_t i = 0; i < nwords; i++)
		if (src[i])
			__atomic_fetch_or(&b->words[w + i], src[i],
					  __ATOMIC_RELEASE);
}
