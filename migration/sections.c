/* SPDX-License-Identifier: MIT */
/*
 * sections.c - a VM snapshot's sections as STATE frames (sections.h).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include "migration/sections.h"
#include "proto/proto.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

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

/* ---- taking sections back -------------------------------------------------
 */

static const struct {
	const char *name; /* for messages */
	enum vm_snap_kind kind;
} mig_kinds[PROTO_STATE_KIND_MAX] = {
	[PROTO_STATE_VCPU] = {"vCPU", VM_SNAP_VCPU},
	[PROTO_STATE_VM] = {"VM", VM_SNAP_VM},
	[PROTO_STATE_DEVICE] = {"device", VM_SNAP_DEVICE},
};

/* The section's name in snap (as vm_snapshot_take names it), or NULL. */
static const char *mig_section_name(const struct vm *vm,
				    const struct proto_state *ps, char *buf,
				    size_t len)
{
	const struct dev *d;

	switch (ps->kind) {
	case PROTO_STATE_VCPU:
		if (ps->id >= (uint32_t)vm->nr_vcpus)
			return NULL;
		snprintf(buf, len, "vcpu%u", ps->id);
		return buf;
	case PROTO_STATE_VM:
		return ps->id == 0 ? "vm" : NULL;
	default:
		d = vm_dev_at(vm, (int)ps->id);
		return d ? d->name : NULL;
	}
}

int mig_sections_add(struct vm *vm, struct vm_snapshot *snap,
		     const struct proto_state *ps, char *err, size_t errlen)
{
	const char *kind = mig_kinds[ps->kind].name;
	enum vm_snap_kind k = mig_kinds[ps->kind].kind;
	char buf[32];
	const char *name = mig_section_name(vm, ps, buf, sizeof(buf));
	size_t max;

	if (!name) {
		snprintf(err, errlen,
			 "STATE of %s %u: this VM has %d vCPUs and %d devices",
			 kind, ps->id, vm->nr_vcpus, vm->devs.nr);
		return -EPROTO;
	}
	if (vm_snapshot_find(snap, k, name)) {
		snprintf(err, errlen, "STATE of %s %u sent twice", kind,
			 ps->id);
		return -EPROTO;
	}
	max = vm_snapshot_section_max(vm, k, ps->id);
	if (ps->len > max) {
		snprintf(err, errlen,
			 "STATE of %s %u: %u bytes, the largest valid blob "
			 "here is %zu",
			 kind, ps->id, ps->len, max);
		return -EPROTO;
	}
	return vm_snapshot_add(snap, k, ps->id, name, ps->version, ps->blob,
			       ps->len, err, errlen);
}
