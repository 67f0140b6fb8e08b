/* SPDX-License-Identifier: MIT */
/*
 * crc32c.h - the two CRC32C implementations behind proto_crc32c(), exposed
 * so that the unit tests can check each one against known vectors whatever
 * CPU they run on. Same convention as proto_crc32c: start with crc 0, pass
 * the previous result to continue over more bytes.
 */
#ifndef PROTO_CRC32C_H
#define PROTO_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Portable slice-by-8 with 8 KiB of tables built on first use. */
uint32_t proto_crc32c_sw(uint32_t crc, const void *buf, size_t len);
/* SSE4.2 crc32 instructions; call only when proto_crc32c_hw_ok(). */
uint32_t proto_crc32c_hw(uint32_t crc, const void *buf, size_t len);
bool proto_crc32c_hw_ok(void);

#endif /* PROTO_CRC32C_H */
