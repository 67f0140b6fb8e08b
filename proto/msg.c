/* SPDX-License-Identifier: MIT */
/*
 * msg.c - the small messages: the empty ones that mark the steps of the
 * switch-over (RAM_END, STATE_END, READY, GO, RUNNING, SYNC, and
 * post-copy's POSTCOPY_END and COMPLETE), ERROR with an errno and a reason
 * a user reads, and VERIFY with a SHA-256 digest per RAM region. A reason
 * is text from the peer: the decoder bounds it and replaces every byte
 * that is not printable ASCII, so that it is safe to log and to print on
 * a terminal.
 */
#include <string.h>

#include "proto/wire.h"

#define DIGEST_SIZE 48 /* gpa, size, sha256 */

_Static_assert(PROTO_VERIFY_MAX_FRAME ==
		       PROTO_HDR_SIZE + 4 + PROTO_MAX_REGIONS * DIGEST_SIZE,
	       "PROTO_VERIFY_MAX_FRAME is out of date");

static bool msg_is_empty_type(unsigned int type)
{
	switch (type) {
	case PROTO_RAM_END:
	case PROTO_STATE_END:
	case PROTO_READY:
	case PROTO_GO:
	case PROTO_RUNNING:
	case PROTO_SYNC:
	case PROTO_POSTCOPY_END:
	case PROTO_COMPLETE:
		return true;
	default:
		return false;
	}
}

int proto_empty_encode(uint8_t *buf, size_t cap, enum proto_type type)
{
	if (!msg_is_empty_type(type))
		return -EINVAL;
	if (cap < PROTO_HDR_SIZE)
		return -ENOSPC;
	proto_frame_seal(buf, type, 0);
	return PROTO_HDR_SIZE;
}

int proto_empty_decode(const uint8_t *p, size_t len, enum proto_type type,
		       char *err, size_t errlen)
{
	struct proto_cur c;

	proto_cur_init(&c, p, len, proto_type_name(type), err, errlen);
	if (!msg_is_empty_type(type))
		return proto_cur_fail(&c, "not an empty message");
	if (len)
		return proto_cur_fail(&c,
				      "payload must be empty, got %zu "
				      "bytes",
				      len);
	return 0;
}

/* ---- ERROR: u32 code, u16 length, reason --------------------------------- */

int proto_error_encode(uint8_t *buf, size_t cap, int code, const char *reason)
{
	size_t n = reason ? strnlen(reason, PROTO_REASON_MAX) : 0;
	uint8_t *q = buf + PROTO_HDR_SIZE;
	int ret;

	if (code < 0)
		code = -code;
	if (code < 1 || code > PROTO_ERRNO_MAX)
		return -EINVAL;
	ret = proto_frame_room(cap, 6 + n);
	if (ret)
		return ret;
	q = proto_put32(q, (uint32_t)code);
	q = proto_put16(q, (uint16_t)n);
	if (n)
		memcpy(q, reason, n);
	proto_frame_seal(buf, PROTO_ERROR, (uint32_t)(6 + n));
	return PROTO_HDR_SIZE + 6 + (int)n;
}

/* Copy the peer's text, bounded, NUL-terminated, printable only. */
static void msg_copy_reason(char *dst, size_t cap, const uint8_t *src, size_t n)
{
	size_t i;

	if (!dst || !cap)
		return;
	for (i = 0; i < n && i < cap - 1; i++)
		dst[i] = src[i] >= 0x20 && src[i] <= 0x7e ? (char)src[i] : '?';
	dst[i] = '\0';
}

int proto_error_decode(const uint8_t *p, size_t len, int *code, char *reason,
		       size_t reason_len, char *err, size_t errlen)
{
	struct proto_cur c;
	const uint8_t *text;
	uint32_t v;
	uint16_t n;

	proto_cur_init(&c, p, len, "ERROR", err, errlen);
	if (proto_cur_u32(&c, "code", &v) ||
	    proto_cur_u16(&c, "reason length", &n))
		return -EPROTO;
	if (v < 1 || v > PROTO_ERRNO_MAX)
		return proto_cur_fail(&c, "code %u not an errno", v);
	if (n > PROTO_REASON_MAX)
		return proto_cur_fail(&c, "reason length %u exceeds %d", n,
				      PROTO_REASON_MAX);
	if (proto_cur_need(&c, n, "reason"))
		return -EPROTO;
	text = proto_cur_take(&c, n);
	if (proto_cur_end(&c))
		return -EPROTO;
	msg_copy_reason(reason, reason_len, text, n);
	*code = (int)v;
	return 0;
}

/* ---- VERIFY: u32 nr, nr x {u64 gpa, u64 size, u8 sha256[32]} ------------- */

int proto_verify_encode(uint8_t *buf, size_t cap, const struct proto_digest *d,
			uint32_t nr)
{
	size_t len = 4 + (size_t)nr * DIGEST_SIZE;
	uint8_t *q = buf + PROTO_HDR_SIZE;
	int ret;

	if (nr > PROTO_MAX_REGIONS)
		return -EINVAL;
	ret = proto_frame_room(cap, len);
	if (ret)
		return ret;
	q = proto_put32(q, nr);
	for (uint32_t i = 0; i < nr; i++) {
		q = proto_put64(q, d[i].gpa);
		q = proto_put64(q, d[i].size);
		memcpy(q, d[i].sha256, sizeof(d[i].sha256));
		q += sizeof(d[i].sha256);
	}
	proto_frame_seal(buf, PROTO_VERIFY, (uint32_t)len);
	return PROTO_HDR_SIZE + (int)len;
}

int proto_verify_decode(const uint8_t *p, size_t len, struct proto_digest *d,
			uint32_t max, uint32_t *nr, char *err, size_t errlen)
{
	struct proto_cur c;
	const uint8_t *q;
	uint32_t n;

	proto_cur_init(&c, p, len, "VERIFY", err, errlen);
	if (proto_cur_u32(&c, "nr", &n))
		return -EPROTO;
	if (n > max || n > PROTO_MAX_REGIONS)
		return proto_cur_fail(
			&c, "nr %u exceeds %u", n,
			max < PROTO_MAX_REGIONS ? max : PROTO_MAX_REGIONS);
	if (proto_cur_need(&c, (size_t)n * DIGEST_SIZE, "digests"))
		return -EPROTO;
	q = proto_cur_take(&c, (size_t)n * DIGEST_SIZE);
	if (proto_cur_end(&c))
		return -EPROTO;
	for (uint32_t i = 0; i < n; i++, q += DIGEST_SIZE) {
		d[i].gpa = get_le64(q);
		d[i].size = get_le64(q + 8);
		memcpy(d[i].sha256, q + 16, sizeof(d[i].sha256));
	}
	*nr = n;
	return 0;
}
