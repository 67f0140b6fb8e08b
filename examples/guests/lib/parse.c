/* SPDX-License-Identifier: MIT */
/*
 * parse.c - strict unsigned number parsing (no libc strtoull here).
 *
 * Accepts exactly what a person types for a size or a count: decimal digits,
 * or 0x followed by hexadecimal digits. No sign, no spaces, no suffixes, and
 * overflow is an error rather than a wrap, so "--mib 99999999999999999999"
 * is reported instead of becoming some other number.
 */
#include "lib/parse.h"

static int parse_digit(char c, unsigned int base)
{
	int d;

	if (c >= '0' && c <= '9')
		d = c - '0';
	else if (c >= 'a' && c <= 'f')
		d = c - 'a' + 10;
	else if (c >= 'A' && c <= 'F')
		d = c - 'A' + 10;
	else
		return -1;
	return d < (int)base ? d : -1;
}

int parse_u64(const char *s, uint64_t *out)
{
	unsigned int base = 10;
	uint64_t v = 0;
	int d;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (!*s)
		return -1;
	for (; *s; s++) {
		d = parse_digit(*s, base);
		if (d < 0)
			return -1;
		if (__builtin_mul_overflow(v, base, &v) ||
		    __builtin_add_overflow(v, (uint64_t)d, &v))
			return -1;
	}
	*out = v;
	return 0;
}
