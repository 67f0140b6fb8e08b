/* SPDX-License-Identifier: MIT */
/*
 * crc32c.c - CRC32C (Castagnoli, reflected polynomial 0x82f63b78), the
 * integrity check of every frame. Two implementations give the same
 * result: the SSE4.2 crc32 instruction eight bytes at a time, chosen at run
 * time when the CPU has it, and a portable slice-by-8 table walk whose
 * tables are built once (pthread_once) on first use. Both are pure and
 * safe to call from any thread. Convention as zlib's crc32(): pass 0 to
 * start, the previous result to continue; "123456789" gives 0xe3069283.
 */
#include <pthread.h>
#include <string.h>
#include <nmmintrin.h>

#include "proto/crc32c.h"
#include "proto/proto.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "slice-by-8 below loads words little-endian");

#define CRC32C_POLY 0x82f63b78U

static uint32_t tab[8][256];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_build(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		tab[0][n] = c;
	}
	for (uint32_t n = 0; n < 256; n++)
		for (int t = 1; t < 8; t++)
			tab[t][n] = (tab[t - 1][n] >> 8) ^
				    tab[0][tab[t - 1][n] & 0xff];
}

uint32_t proto_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	pthread_once(&crc32c_once, crc32c_build);
	crc = ~crc;
	for (; len >= 8; len -= 8, p += 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		w ^= crc;
		crc = tab[7][w & 0xff] ^ tab[6][(w >> 8) & 0xff] ^
		      tab[5][(w >> 16) & 0xff] ^ tab[4][(w >> 24) & 0xff] ^
		      tab[3][(w >> 32) & 0xff] ^ tab[2][(w >> 40) & 0xff] ^
		      tab[1][(w >> 48) & 0xff] ^ tab[0][w >> 56];
	}
	while (len--)
		crc = (crc >> 8) ^ tab[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

__attribute__((target("sse4.2"))) uint32_t
proto_crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t c = ~crc;

	for (; len >= 8; len -= 8, p += 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		c = _mm_crc32_u64(c, w);
	}
	while (len--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return ~(uint32_t)c;
}

bool proto_crc32c_hw_ok(void)
{
	return __builtin_cpu_supports("sse4.2");
}

uint32_t proto_crc32c(uint32_t crc, const void *buf, size_t len)
{
	if (proto_crc32c_hw_ok())
		return proto_crc32c_hw(crc, buf, len);
	return proto_crc32c_sw(crc, buf, len);
}
