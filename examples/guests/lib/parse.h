/* SPDX-License-Identifier: MIT */
/*
 * parse.h - strict number parsing for the guest command line.
 */
#ifndef GUEST_PARSE_H
#define GUEST_PARSE_H

#include <stdint.h>

/*
 * The whole of s as an unsigned number: decimal, or hexadecimal with a
 * 0x/0X prefix. Returns 0 and stores *out, or -1 for an empty string, a
 * stray character or a value that does not fit in 64 bits.
 */
int parse_u64(const char *s, uint64_t *out);

#endif /* GUEST_PARSE_H */
