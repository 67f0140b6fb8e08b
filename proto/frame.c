/* SPDX-License-Identifier: MIT */
/*
 * frame.c - the frame header every message starts with: 16 bytes, u32
 * magic, u16 type, u16 flags (zero), u32 payload length, u32 CRC32C over
 * the header (its crc field taken as zero) followed by the payload. The
 * header is decoded and checked before the payload is even read, so a
 * corrupt or hostile length is refused before anything is allocated or
 * waited for; the CRC is checked once the payload is in. A PAGES frame
 * sent live (PROTO_PAGES_LIVE) has its CRC end with its runs
 * (proto_frame_crc_len): its pages left guest RAM as they were when the
 * kernel copied them, while the guest ran.
 */
#include <string.h>
#include <sys/uio.h>

#include "proto/wire.h"

#define HDR_CRC_OFF 12

static const char *const proto_type_names[PROTO_TYPE_MAX] = {
	[PROTO_HELLO] = "HELLO",
	[PROTO_HELLO_ACK] = "HELLO_ACK",
	[PROTO_PAGES] = "PAGES",
	[PROTO_RAM_END] = "RAM_END",
	[PROTO_STATE] = "STATE",
	[PROTO_STATE_END] = "STATE_END",
	[PROTO_READY] = "READY",
	[PROTO_GO] = "GO",
	[PROTO_RUNNING] = "RUNNING",
	[PROTO_ERROR] = "ERROR",
	[PROTO_VERIFY] = "VERIFY",
	[PROTO_SYNC] = "SYNC",
	[PROTO_DISCARD] = "DISCARD",
	[PROTO_POSTCOPY] = "POSTCOPY",
	[PROTO_URGENT_HELLO] = "URGENT_HELLO",
	[PROTO_PAGE_REQ] = "PAGE_REQ",
	[PROTO_POSTCOPY_END] = "POSTCOPY_END",
	[PROTO_COMPLETE] = "COMPLETE",
	[PROTO_RESUME] = "RESUME",
	[PROTO_RESUME_ACK] = "RESUME_ACK",
	[PROTO_CHAN_HELLO] = "CHAN_HELLO",
};

_Static_assert(PROTO_TYPE_MAX == 22, "name the new type in proto_type_names");

const char *proto_type_name(unsigned int type)
{
	if (type == 0 || type >= PROTO_TYPE_MAX)
		return "unknown";
	return proto_type_names[type];
}

size_t proto_frame_crc_len(unsigned int type, const uint8_t *payload,
			   size_t len)
{
	size_t n;

	if (type != PROTO_PAGES)
		return len;
	n = proto_pages_crc_len(payload, len);
	return n < len ? n : len;
}

void proto_frame_seal_iov(uint8_t *buf, enum proto_type type, uint32_t len,
			  size_t inbuf, const struct iovec *iov, int niov)
{
	size_t n = proto_frame_crc_len(type, buf + PROTO_HDR_SIZE, len);
	uint32_t crc;

	put_le32(buf, PROTO_MAGIC);
	put_le16(buf + 4, (uint16_t)type);
	put_le16(buf + 6, 0);
	put_le32(buf + 8, len);
	put_le32(buf + HDR_CRC_OFF, 0);
	crc = proto_crc32c(0, buf, PROTO_HDR_SIZE + (n < inbuf ? n : inbuf));
	n = n > inbuf ? n - inbuf : 0;
	for (int i = 0; i < niov && n; i++) {
		size_t k = iov[i].iov_len < n ? iov[i].iov_len : n;

		crc = proto_crc32c(crc, iov[i].iov_base, k);
		n -= k;
	}
	put_le32(buf + HDR_CRC_OFF, crc);
}

void proto_frame_seal(uint8_t *buf, enum proto_type type, uint32_t len)
{
	proto_frame_seal_iov(buf, type, len, len, NULL, 0);
}

int proto_hdr_decode(const uint8_t *buf, struct proto_hdr *h, char *err,
		     size_t errlen)
{
	uint32_t magic = get_le32(buf);

	if (magic != PROTO_MAGIC) {
		err_set(err, errlen, "frame: bad magic 0x%08x", magic);
		return -EPROTO;
	}
	h->type = get_le16(buf + 4);
	h->flags = get_le16(buf + 6);
	h->len = get_le32(buf + 8);
	h->crc = get_le32(buf + HDR_CRC_OFF);
	if (h->type == 0 || h->type >= PROTO_TYPE_MAX) {
		err_set(err, errlen, "frame: unknown type %u", h->type);
		return -EPROTO;
	}
	if (h->flags) {
		err_set(err, errlen, "frame: flags 0x%x not zero", h->flags);
		return -EPROTO;
	}
	if (h->len > PROTO_MAX_PAYLOAD) {
		err_set(err, errlen, "frame: payload length %u exceeds %u",
			   h->len, PROTO_MAX_PAYLOAD);
		return -EPROTO;
	}
	return 0;
}

int proto_frame_check(const uint8_t *frame, const struct proto_hdr *h,
		      char *err, size_t errlen)
{
	static const uint8_t zero[4];
	uint32_t crc;

	crc = proto_crc32c(0, frame, HDR_CRC_OFF);
	crc = proto_crc32c(crc, zero, sizeof(zero));
	crc = proto_crc32c(crc, frame + PROTO_HDR_SIZE,
			   proto_frame_crc_len(h->type, frame + PROTO_HDR_SIZE,
					       h->len));
	if (crc != h->crc) {
		err_set(err, errlen,
			   "frame: crc mismatch (got 0x%08x, computed 0x%08x)",
			   h->crc, crc);
		return -EPROTO;
	}
	return 0;
}

int proto_frame_decode(const uint8_t *buf, size_t len, struct proto_hdr *h,
		       char *err, size_t errlen)
{
	if (len < PROTO_HDR_SIZE) {
		err_set(err, errlen,
			   "frame: truncated header (%zu of %d bytes)", len,
			   PROTO_HDR_SIZE);
		return -EPROTO;
	}
	if (proto_hdr_decode(buf, h, err, errlen))
		return -EPROTO;
	if (len - PROTO_HDR_SIZE < h->len) {
		err_set(err, errlen,
			   "frame: %s truncated payload (%zu of %u bytes)",
			   proto_type_name(h->type), len - PROTO_HDR_SIZE,
			   h->len);
		return -EPROTO;
	}
	if (proto_frame_check(buf, h, err, errlen))
		return -EPROTO;
	return PROTO_HDR_SIZE + (int)h->len;
}
