/* SPDX-License-Identifier: MIT */
/*
 * bitmap.h - a fixed-size bitmap whose single-bit operations are atomic, so
 * that vCPU, event-loop and fault threads can share per-page state without
 * a lock. Bulk operations (count, find, zero) are not atomic as a whole:
 * each word is read or written atomically, which is what a scan racing
 * with setters needs (a bit set during the scan may or may not be seen).
 */
#ifndef EPT_BITMAP_H
#define EPT_BITMAP_H

#include <stdbool.h>
#include <stdint.h>

struct bitmap {
	uint64_t *words;
	uint64_t nbits;
};

#define BITMAP_WORDS(n) (((n) + 63) / 64)

int bitmap_init(struct bitmap *b, uint64_t nbits);
void bitmap_free(struct bitmap *b);
void bitmap_zero(struct bitmap *b);
uint64_t bitmap_count(const struct bitmap *b);
/* First set bit at or after from; b->nbits when there is none. */
uint64_t bitmap_next_set(const struct bitmap *b, uint64_t from);
/* First clear bit at or after from; b->nbits when there is none. */
uint64_t bitmap_next_clear(const struct bitmap *b, uint64_t from);
/* Set bits [first, first+n). */
void bitmap_set_range(struct bitmap *b, uint64_t first, uint64_t n);
/* OR nwords words of src into b from word index w (atomic per word). */
void bitmap_or_words(struct bitmap *b, uint64_t w, const uint64_t *src,
		     uint64_t nwords);

static inline bool bitmap_test(const struct bitmap *b, uint64_t i)
{
	return (__atomic_load_n(&b->words[i / 64], __ATOMIC_ACQUIRE) >>
		(i % 64)) &
	       1;
}

static inline void bitmap_set(struct bitmap *b, uint64_t i)
{
	__atomic_fetch_or(&b->words[i / 64], 1ULL << (i % 64),
			  __ATOMIC_RELEASE);
}

static inline void bitmap_clear(struct bitmap *b, uint64_t i)
{
	__atomic_fetch_and(&b->words[i / 64], ~(1ULL << (i % 64)),
			   __ATOMIC_RELEASE);
}

/* Set bit i; returns whether it was already set. */
static inline bool bitmap_test_and_set(struct bitmap *b, uint64_t i)
{
	uint64_t m = 1ULL << (i % 64);

	return __atomic_fetch_or(&b->words[i / 64], m, __ATOMIC_ACQ_REL) & m;
}

/* Clear bit i; returns whether it was set. */
static inline bool bitmap_test_and_clear(struct bitmap *b, uint64_t i)
{
	uint64_t m = 1ULL << (i % 64);

	return __atomic_fetch_and(&b->words[i / 64], ~m, __ATOMIC_ACQ_REL) & m;
}

/* Take word w and leave it zero, atomically. */
static inline uint64_t bitmap_xchg_word(struct bitmap *b, uint64_t w)
{
	return __atomic_exchange_n(&b->words[w], 0, __ATOMIC_ACQ_REL);
}

#endif /* EPT_BITMAP_H */
