/* SPDX-License-Identifier: MIT */
/*
 * wire.h - private helpers of proto/: little-endian stores and loads written
 * byte by byte (never a struct cast onto a buffer, never an unaligned word
 * access), a bounds-checked decoding cursor whose every read first checks
 * that the field lies within the payload and names the field when it does
 * not, and the one-line error formatter every decoder reports through.
 */
#ifndef PROTO_WIRE_H
#define PROTO_WIRE_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "proto/proto.h"

static inline void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* Sequential stores for encoders that have already checked the capacity. */
static inline uint8_t *proto_put16(uint8_t *q, uint16_t v)
{
	put_le16(q, v);
	return q + 2;
}

static inline uint8_t *proto_put32(uint8_t *q, uint32_t v)
{
	put_le32(q, v);
	return q + 4;
}

static inline uint8_t *proto_put64(uint8_t *q, uint64_t v)
{
	put_le64(q, v);
	return q + 8;
}

/*
 * Decoding cursor over one payload. Every failure writes "WHAT: reason"
 * into err and returns -EPROTO.
 */
struct proto_cur {
	const uint8_t *p;
	size_t len, off;
	const char *what; /* message name for errors, e.g. "HELLO" */
	char *err;
	size_t errlen;
};

void proto_cur_init(struct proto_cur *c, const uint8_t *p, size_t len,
		    const char *what, char *err, size_t errlen);
/* Report a failure: "WHAT: " + the formatted text. Returns -EPROTO. */
int proto_cur_fail(struct proto_cur *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* 0 when n more bytes (named field) lie within the payload, else -EPROTO. */
int proto_cur_need(struct proto_cur *c, size_t n, const char *field);
/* Return the next n bytes and step over them; proto_cur_need came first. */
const uint8_t *proto_cur_take(struct proto_cur *c, size_t n);
int proto_cur_u16(struct proto_cur *c, const char *field, uint16_t *v);
int proto_cur_u32(struct proto_cur *c, const char *field, uint32_t *v);
int proto_cur_u64(struct proto_cur *c, const char *field, uint64_t *v);
/* Bytes not yet read. */
size_t proto_cur_left(const struct proto_cur *c);
/* 0 when the whole payload was read, else -EPROTO (trailing bytes). */
int proto_cur_end(struct proto_cur *c);

/*
 * Start a frame: 0 when a payload of len bytes fits in cap (after the
 * header) and within PROTO_MAX_PAYLOAD, else -ENOSPC / -EMSGSIZE.
 */
int proto_frame_room(size_t cap, size_t len);

/*
 * The part of a PAGES payload of len bytes that its CRC covers: len, or
 * with PROTO_PAGES_LIVE the fixed fields and the runs (as its nr_runs
 * says: may exceed len, a payload the decoder refuses).
 */
size_t proto_pages_crc_len(const uint8_t *p, size_t len);

#endif /* PROTO_WIRE_H */
