/* SPDX-License-Identifier: MIT */
/*
 * state.c - STATE frames: one section of the paused VM's state (a vCPU,
 * the VM-wide KVM state, or a device) as an opaque blob with its kind,
 * version and id. The blob's contents belong to whoever saved it (vmm/,
 * devices/); this layer only checks the envelope: a known kind, an id in
 * range for it, and a blob length that is exactly the rest of the payload.
 */
#include <string.h>

#include "proto/wire.h"

#define STATE_FIXED 12 /* kind, version, id, blob length */

_Static_assert(PROTO_STATE_OVERHEAD == PROTO_HDR_SIZE + STATE_FIXED,
	       "PROTO_STATE_OVERHEAD is out of date");

/* NULL when kind and id are valid together, else why not. */
static const char *state_bad_id(uint16_t kind, uint32_t id)
{
	switch (kind) {
	case PROTO_STATE_VCPU:
		return id < PROTO_MAX_VCPUS ? NULL : "vCPU id out of range";
	case PROTO_STATE_VM:
		return id == 0 ? NULL : "VM section id not 0";
	case PROTO_STATE_DEVICE:
		return id < PROTO_MAX_DEVICES ? NULL : "device id out of range";
	default:
		return "unknown kind";
	}
}

int proto_state_encode(uint8_t *buf, size_t cap, const struct proto_state *s)
{
	size_t len = STATE_FIXED + (size_t)s->len;
	uint8_t *q = buf + PROTO_HDR_SIZE;
	int ret;

	if (state_bad_id(s->kind, s->id) || (s->len && !s->blob))
		return -EINVAL;
	ret = proto_frame_room(cap, len);
	if (ret)
		return ret;
	/* memmove: the blob may already sit in place, after the fields. */
	if (s->len)
		memmove(q + STATE_FIXED, s->blob, s->len);
	q = proto_put16(q, s->kind);
	q = proto_put16(q, s->version);
	q = proto_put32(q, s->id);
	proto_put32(q, s->len);
	proto_frame_seal(buf, PROTO_STATE, (uint32_t)len);
	return PROTO_HDR_SIZE + (int)len;
}

int proto_state_decode(const uint8_t *p, size_t len, struct proto_state *s,
		       char *err, size_t errlen)
{
	struct proto_cur c;
	const char *bad;

	memset(s, 0, sizeof(*s));
	proto_cur_init(&c, p, len, "STATE", err, errlen);
	if (proto_cur_u16(&c, "kind", &s->kind) ||
	    proto_cur_u16(&c, "version", &s->version) ||
	    proto_cur_u32(&c, "id", &s->id) ||
	    proto_cur_u32(&c, "blob length", &s->len))
		return -EPROTO;
	bad = state_bad_id(s->kind, s->id);
	if (bad)
		return proto_cur_fail(&c, "kind %u id %u: %s", s->kind, s->id,
				      bad);
	if (s->len != proto_cur_left(&c))
		return proto_cur_fail(&c, "blob length %u but %zu bytes follow",
				      s->len, proto_cur_left(&c));
	s->blob = proto_cur_take(&c, s->len);
	return 0;
}
