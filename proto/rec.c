/* SPDX-License-Identifier: MIT */
/*
 * rec.c - records inside a state blob: {u32 tag, u32 len, len bytes,
 * zeroes up to a multiple of 8}. The writer never writes past its buffer:
 * a record that does not fit sets overflow, and every later put is
 * ignored, so a saver can put everything and check once at the end. The
 * reader checks each record's header and padded length against what is
 * left before handing the record out.
 */
#include <string.h>

#include "proto/wire.h"

#define REC_HDR 8

static uint64_t rec_padded(uint32_t len)
{
	return ((uint64_t)len + 7) & ~(uint64_t)7;
}

void proto_rec_writer_init(struct proto_rec_writer *w, uint8_t *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->overflow = false;
}

void proto_rec_put(struct proto_rec_writer *w, uint32_t tag, const void *data,
		   uint32_t len)
{
	uint64_t padded = rec_padded(len);
	uint8_t *q;

	if (w->overflow || w->cap - w->len < REC_HDR ||
	    w->cap - w->len - REC_HDR < padded) {
		w->overflow = true;
		return;
	}
	q = w->buf + w->len;
	put_le32(q, tag);
	put_le32(q + 4, len);
	if (len)
		memcpy(q + REC_HDR, data, len);
	memset(q + REC_HDR + len, 0, padded - len);
	w->len += REC_HDR + padded;
}

void proto_rec_reader_init(struct proto_rec_reader *r, const uint8_t *buf,
			   size_t len)
{
	r->buf = buf;
	r->len = len;
	r->off = 0;
}

int proto_rec_next(struct proto_rec_reader *r, uint32_t *tag,
		   const uint8_t **data, uint32_t *len)
{
	size_t left = r->len - r->off;
	const uint8_t *q = r->buf + r->off;
	uint32_t n;

	if (!left)
		return 0;
	if (left < REC_HDR)
		return -EPROTO;
	n = get_le32(q + 4);
	if (left - REC_HDR < rec_padded(n))
		return -EPROTO;
	*tag = get_le32(q);
	*len = n;
	*data = q + REC_HDR;
	r->off += REC_HDR + rec_padded(n);
	return 1;
}
