/* SPDX-License-Identifier: MIT */
/*
 * chan.c - CHAN_HELLO, the first frame of an extra (parallel) channel: the
 * migration's token from HELLO_ACK, the channel's index, and over TLS the
 * proof that its session is bound to the main connection's peers. The
 * decoder checks the token (non-zero), the index (1..PROTO_MAX_CHANNELS-1)
 * and the length (with or without the proof, nothing else).
 */
#include <string.h>

#include "proto/wire.h"

#define CHAN_HELLO_FIXED 12 /* token, index */

int proto_chan_hello_encode(uint8_t *buf, size_t cap, uint64_t token,
			    uint32_t index, const uint8_t *proof)
{
	size_t len = CHAN_HELLO_FIXED + (proof ? PROTO_PROOF_LEN : 0);
	uint8_t *q = buf + PROTO_HDR_SIZE;
	int ret;

	if (!token || index < 1 || index >= PROTO_MAX_CHANNELS)
		return -EINVAL;
	ret = proto_frame_room(cap, len);
	if (ret)
		return ret;
	q = proto_put64(q, token);
	q = proto_put32(q, index);
	if (proof)
		memcpy(q, proof, PROTO_PROOF_LEN);
	proto_frame_seal(buf, PROTO_CHAN_HELLO, (uint32_t)len);
	return PROTO_HDR_SIZE + (int)len;
}

int proto_chan_hello_decode(const uint8_t *p, size_t len, uint64_t *token,
			    uint32_t *index, uint8_t *proof, bool *has_proof,
			    char *err, size_t errlen)
{
	struct proto_cur c;

	*has_proof = false;
	proto_cur_init(&c, p, len, "CHAN_HELLO", err, errlen);
	if (proto_cur_u64(&c, "token", token) ||
	    proto_cur_u32(&c, "index", index))
		return -EPROTO;
	if (!*token)
		return proto_cur_fail(&c, "token 0");
	if (*index < 1 || *index >= PROTO_MAX_CHANNELS)
		return proto_cur_fail(&c, "index %u not in 1..%d", *index,
				      PROTO_MAX_CHANNELS - 1);
	if (proto_cur_left(&c) == PROTO_PROOF_LEN) {
		memcpy(proof, proto_cur_take(&c, PROTO_PROOF_LEN),
		       PROTO_PROOF_LEN);
		*has_proof = true;
	}
	return proto_cur_end(&c);
}
