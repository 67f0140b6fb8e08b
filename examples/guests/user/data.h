/* SPDX-License-Identifier: MIT */
/*
 * data.h - what the `dirty` workload writes into a page: its data mode
 * (`dirty --data MODE`), which sets how compressible the dirtied pages are.
 *
 * Every mode is a function of (page, generation), so `verify` can check
 * it; how much a check proves depends on the mode:
 *   random  pattern.h's words (the default): incompressible; a lost, stale
 *           or misplaced page is caught and identified.
 *   text    word 0 the pattern seed, then English-like text (words of a
 *           small vocabulary, blanks, line breaks) drawn from the seed:
 *           compresses ~3-4x; caught and identified like random.
 *   byte    byte 0 = 1 + gen % 255, the rest zeros (QEMU's migration-test
 *           guest writes one byte per page): a stale page is caught unless
 *           its generation is a multiple of 255 behind, a misplaced one not.
 *   zero    all zeros: only a page that is not zero is caught.
 */
#ifndef GUEST_DATA_H
#define GUEST_DATA_H

#include <stdint.h>

enum data_mode { DATA_RANDOM, DATA_TEXT, DATA_BYTE, DATA_ZERO };

/* The mode names, indexed by enum data_mode, NULL-ended (a flag's words). */
extern const char *const data_mode_names[];

void data_fill(uint64_t *w, uint64_t page, uint32_t gen, enum data_mode m);

/* Index of the first 64-bit word that differs, or -1 when the page is right. */
int data_check(const uint64_t *w, uint64_t page, uint32_t gen,
	       enum data_mode m);

#endif /* GUEST_DATA_H */
