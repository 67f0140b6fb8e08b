/* SPDX-License-Identifier: MIT */
/*
 * sections.c - a VM snapshot's sections as STATE frames (sections.h).
 */
#include <errno.h>
#include <stdint.h>

#include "migration/sections.h"
#include "proto/proto.h"
#include "vmm/snapshot.h"

size_t mig_sections_size(const struct vm_snapshot *snap)
{
	size_t cap = PROTO_HDR_SIZE; /* STATE_END */

	for (int i = 0; i < snap->nr; i++)
		cap += PROTO_STATE_OVERHEAD + snap->sec[i].len;
	return cap;
}

/* sec's STATE frame at buf (room: cap). Its length, or -errno. */
static int mig_section_encode(const struct vm_snap_section *sec, uint8_t *buf,
			      size_t cap)
{
	static const uint16_t kinds[] = {
		[VM_SNAP_VCPU] = PROTO_STATE_VCPU,
		[VM_SNAP_VM] = PROTO_STATE_VM,
		[VM_SNAP_DEVICE] = PROTO_STATE_DEVICE,
	};
	struct proto_state ps = {.kind = kinds[sec->kind],
				 .version = (uint16_t)sec->version,
				 .id = sec->id,
				 .len = (uint32_t)sec->len,
				 .blob = sec->data};

	if (sec->len > UINT32_MAX)
		return -E2BIG;
	return proto_state_encode(buf, cap, &ps);
}

int mig_sections_encode(const struct vm_snapshot *snap, uint8_t *buf,
			size_t cap)
{
	size_t off = 0;
	int n;

	for (int i = 0; i < snap->nr; i++) {
		n = mig_section_encode(&snap->sec[i], buf + off, cap - off);
		if (n < 0)
			return n;
		off += (size_t)n;
	}
	n = proto_empty_encode(buf + off, cap - off, PROTO_STATE_END);
	return n < 0 ? n : (int)(off + (size_t)n);
}
