/* SPDX-License-Identifier: MIT */
/*
 * wire.c - the decoding cursor and error formatting shared by every
 * decoder (see wire.h). A cursor never reads a byte before checking that
 * it lies within the payload, and every failure becomes one line that
 * names the message and the field: "HELLO: truncated at nr_cpuid (need 4
 * bytes at offset 36, payload is 38)".
 */
#include <stdio.h>

#include "proto/wire.h"

void proto_cur_init(struct proto_cur *c, const uint8_t *p, size_t len,
		    const char *what, char *err, size_t errlen)
{
	c->p = p;
	c->len = len;
	c->off = 0;
	c->what = what;
	c->err = err;
	c->errlen = errlen;
}

int proto_cur_fail(struct proto_cur *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!c->err || !c->errlen)
		return -EPROTO;
	n = snprintf(c->err, c->errlen, "%s: ", c->what);
	if (n >= 0 && (size_t)n < c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err + n, c->errlen - n, fmt, ap);
		va_end(ap);
	}
	return -EPROTO;
}

int proto_cur_need(struct proto_cur *c, size_t n, const char *field)
{
	if (n <= c->len - c->off)
		return 0;
	return proto_cur_fail(c,
			      "truncated at %s (need %zu bytes at offset %zu, "
			      "payload is %zu)",
			      field, n, c->off, c->len);
}

const uint8_t *proto_cur_take(struct proto_cur *c, size_t n)
{
	const uint8_t *p = c->p + c->off;

	c->off += n;
	return p;
}

int proto_cur_u16(struct proto_cur *c, const char *field, uint16_t *v)
{
	if (proto_cur_need(c, 2, field))
		return -EPROTO;
	*v = get_le16(proto_cur_take(c, 2));
	return 0;
}

int proto_cur_u32(struct proto_cur *c, const char *field, uint32_t *v)
{
	if (proto_cur_need(c, 4, field))
		return -EPROTO;
	*v = get_le32(proto_cur_take(c, 4));
	return 0;
}

int proto_cur_u64(struct proto_cur *c, const char *field, uint64_t *v)
{
	if (proto_cur_need(c, 8, field))
		return -EPROTO;
	*v = get_le64(proto_cur_take(c, 8));
	return 0;
}

size_t proto_cur_left(const struct proto_cur *c)
{
	return c->len - c->off;
}

int proto_cur_end(struct proto_cur *c)
{
	size_t left = proto_cur_left(c);

	if (!left)
		return 0;
	return proto_cur_fail(c,
			      "%zu trailing byte%s after the last field "
			      "(payload is %zu)",
			      left, left == 1 ? "" : "s", c->len);
}

int proto_frame_room(size_t cap, size_t len)
{
	if (len > PROTO_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (cap < PROTO_HDR_SIZE || cap - PROTO_HDR_SIZE < len)
		return -ENOSPC;
	return 0;
}
