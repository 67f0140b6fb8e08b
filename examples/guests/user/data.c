/* SPDX-License-Identifier: MIT */
/*
 * data.c - the data modes of `dirty --data MODE` (see data.h): page
 * contents of a chosen compressibility, each a function of (page, gen).
 * Ring 3, CPU 0 writes; any CPU may check.
 */
#include "lib/string.h"
#include "user/data.h"
#include "user/pattern.h"

const char *const data_mode_names[] = {"random", "text", "byte", "zero",
				       NULL};

/* 32 words: 5 bits of the generator pick one. */
static const char *const data_vocab[32] = {
	"the",	    "of",	"and",	   "to",     "in",	"migration",
	"page",	    "memory",	"guest",   "host",   "is",	"that",
	"for",	    "with",	"dirty",   "copy",   "network", "downtime",
	"a",	    "time",	"vcpu",	   "kernel", "round",	"state",
	"virtual",  "machine",	"on",	   "by",     "stream",	"we",
	"pages",    "bytes",
};

/* xorshift64*: the text's word choices, seeded by the page's seed. */
static uint64_t data_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static void data_text(uint64_t *w, uint64_t seed)
{
	char *p = (char *)w, *end = p + GUEST_PAGE_SIZE;
	uint64_t s = seed | 1, r;
	unsigned int col = 0;
	const char *word;

	w[0] = seed;
	p += sizeof(uint64_t);
	while (p < end) {
		r = data_next(&s);
		word = data_vocab[r & 31];
		while (*word && p < end)
			*p++ = *word++;
		col += 8;
		if (p < end)
			*p++ = col > 64 && (r >> 5 & 3) == 0 ? '\n' : ' ';
		if (p[-1] == '\n')
			col = 0;
	}
}

void data_fill(uint64_t *w, uint64_t page, uint32_t gen, enum data_mode m)
{
	switch (m) {
	case DATA_TEXT:
		data_text(w, pattern_seed(page, gen));
		break;
	case DATA_BYTE:
		memset(w, 0, GUEST_PAGE_SIZE);
		*(volatile uint8_t *)w = (uint8_t)(1 + gen % 255);
		break;
	case DATA_ZERO:
		memset(w, 0, GUEST_PAGE_SIZE);
		break;
	default:
		pattern_fill(w, page, gen);
	}
}

/* The first word of w that differs from want, or -1. */
static int data_diff(const uint64_t *w, const uint64_t *want)
{
	uint64_t k;

	for (k = 0; k < PATTERN_WORDS; k++)
		if (w[k] != want[k])
			return (int)k;
	return -1;
}

int data_check(const uint64_t *w, uint64_t page, uint32_t gen,
	       enum data_mode m)
{
	uint64_t want[PATTERN_WORDS];

	if (m == DATA_RANDOM)
		return pattern_check(w, page, gen);
	data_fill(want, page, gen, m);
	return data_diff(w, want);
}
