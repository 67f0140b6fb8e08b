/* SPDX-License-Identifier: MIT */
/*
 * snapshot.c - the state of a paused VM as one object (snapshot.h): the
 * device blobs, the sections, and the order in which a machine's state is
 * taken and put back.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "vmm/snapshot.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"
#include "vmm/vmstate.h"
#include "vmm/vmstate_rec.h"

/* Device blob, the device's version: both records mandatory. */
enum dev_rec {
	DEV_REC_HDR = 1,   /* struct vmstate_hdr: version, id 0 */
	DEV_REC_STATE = 2, /* struct serial_state, testdev_state, pt_state */
	DEV_REC_MAX
};

_Static_assert(DEV_REC_MAX <= REC_MAX_TAGS, "struct rec_set is too small");
/* The largest state record plus the blob's header and record framing. */
_Static_assert(DEV_STATE_MAX + 64 <= VMSTATE_BLOB_MAX,
	       "a device's state does not fit in a blob");

/* ---- device blobs -------------------------------------------------------- */

/*
 * The state is saved into the heap (struct pt_state is ~33 KiB). A DMA
 * device refuses (-EBUSY) unless quiesced: the migration code quiesces
 * first and reports.
 */
int vm_dev_state_save(const struct dev *d, struct proto_rec_writer *w,
		      char *err, size_t errlen)
{
	void *st = malloc(d->ops->state_size);
	int r;

	if (!st) {
		err_set(err, errlen, "%s state: %s", d->name, strerror(ENOMEM));
		return -ENOMEM;
	}
	r = d->ops->save(d->dev, st, err, errlen);
	if (!r) {
		rec_put_hdr(w, DEV_REC_HDR, d->ops->version, 0);
		proto_rec_put(w, DEV_REC_STATE, st, d->ops->state_size);
		r = rec_writer_check(d->name, w, err, errlen);
	}
	free(st);
	return r;
}

/*
 * The version of a parsed blob's header: the device's own, or its older
 * one when it still loads that (*old set). -EPROTO with err set otherwise,
 * or when the state record is not that version's size.
 */
static int vm_dev_state_version(const struct dev *d, const char *what,
				const struct rec_set *set, bool *old, char *err,
				size_t errlen)
{
	const struct dev_ops *o = d->ops;
	struct vmstate_hdr h;
	uint32_t size;
	int r;

	memcpy(&h, set->data[DEV_REC_HDR], sizeof(h));
	*old = o->load_old && h.version == o->old_version;
	if (!*old) {
		r = rec_check_hdr(what, set, DEV_REC_HDR, o->version, 0, err,
				  errlen);
		if (r)
			return r;
	}
	size = *old ? o->old_state_size : o->state_size;
	if (set->len[DEV_REC_STATE] != size || h.id) {
		err_set(err, errlen,
			"%s: version %u: %u state bytes, id %u "
			"(expected %u, 0)",
			what, h.version, set->len[DEV_REC_STATE], h.id, size);
		return -EPROTO;
	}
	return 0;
}

/* Check the blob, then hand its state record to the device. */
int vm_dev_state_load(const struct dev *d, const uint8_t *blob, size_t len,
		      char *err, size_t errlen)
{
	const struct dev_ops *o = d->ops;
	uint32_t min = o->load_old && o->old_state_size < o->state_size
			       ? o->old_state_size
			       : o->state_size;
	/* With an older version, STATE's size is checked per version. */
	const struct rec_type types[DEV_REC_MAX] = {
		[DEV_REC_HDR] = {"HDR", sizeof(struct vmstate_hdr), false},
		[DEV_REC_STATE] = {"STATE", min, o->load_old != NULL},
	};
	struct rec_set set;
	char what[DEV_NAME_MAX + 8];
	bool old = false;
	void *st;
	int r;

	snprintf(what, sizeof(what), "%s state", d->name);
	r = rec_parse(what, types, DEV_REC_MAX, blob, len, &set, err, errlen);
	if (!r)
		r = vm_dev_state_version(d, what, &set, &old, err, errlen);
	if (r)
		return r;
	st = rec_dup(&set, DEV_REC_STATE, set.len[DEV_REC_STATE]);
	if (!st) {
		err_set(err, errlen, "%s: %s", what, strerror(ENOMEM));
		return -ENOMEM;
	}
	r = old ? o->load_old(d->dev, st, err, errlen)
		: o->load(d->dev, st, err, errlen);
	free(st);
	return r;
}

/* The device's blob at its larger state version. */
static size_t vm_dev_state_max(const struct dev *d)
{
	const struct dev_ops *o = d->ops;
	const struct rec_type types[DEV_REC_MAX] = {
		[DEV_REC_HDR] = {"HDR", sizeof(struct vmstate_hdr), false},
		[DEV_REC_STATE] = {"STATE", 0, true},
	};
	uint32_t var[DEV_REC_MAX] = {
		[DEV_REC_STATE] =
			o->load_old && o->old_state_size > o->state_size
				? o->old_state_size
				: o->state_size,
	};

	return rec_blob_max(types, DEV_REC_MAX, var);
}

/* ---- sections ------------------------------------------------------------ */

size_t vm_snapshot_section_max(const struct vm *vm, enum vm_snap_kind kind,
			       uint32_t id)
{
	const struct dev *d;
	size_t max = 0;

	switch (kind) {
	case VM_SNAP_VCPU:
		if (id < (uint32_t)vm->nr_vcpus)
			max = vcpu_state_max(vm);
		break;
	case VM_SNAP_VM:
		if (id == 0)
			max = vm_arch_state_max();
		break;
	case VM_SNAP_DEVICE:
		d = id <= INT32_MAX ? vm_dev_at(vm, (int)id) : NULL;
		if (d)
			max = vm_dev_state_max(d);
		break;
	}
	return max < VMSTATE_BLOB_MAX ? max : VMSTATE_BLOB_MAX;
}

void vm_snapshot_init(struct vm_snapshot *s)
{
	memset(s, 0, sizeof(*s));
}

void vm_snapshot_free(struct vm_snapshot *s)
{
	for (int i = 0; i < s->nr; i++)
		free(s->sec[i].data);
	free(s->sec);
	vm_snapshot_init(s);
}

static int vm_snapshot_grow(struct vm_snapshot *s)
{
	int cap = s->cap ? 2 * s->cap : 8;
	struct vm_snap_section *sec = realloc(s->sec, cap * sizeof(*sec));

	if (!sec)
		return -ENOMEM;
	s->sec = sec;
	s->cap = cap;
	return 0;
}

int vm_snapshot_add(struct vm_snapshot *s, enum vm_snap_kind kind, uint32_t id,
		    const char *name, uint32_t version, const void *data,
		    size_t len, char *err, size_t errlen)
{
	struct vm_snap_section *sec;
	uint8_t *copy = malloc(len ? len : 1);

	if (!copy || (s->nr == s->cap && vm_snapshot_grow(s))) {
		free(copy);
		err_set(err, errlen, "snapshot section %s: %s", name,
			strerror(ENOMEM));
		return -ENOMEM;
	}
	memcpy(copy, data, len);
	sec = &s->sec[s->nr++];
	memset(sec, 0, sizeof(*sec));
	sec->kind = kind;
	sec->id = id;
	snprintf(sec->name, sizeof(sec->name), "%s", name);
	sec->version = version;
	sec->data = copy;
	sec->len = len;
	return 0;
}

const struct vm_snap_section *vm_snapshot_find(const struct vm_snapshot *s,
					       enum vm_snap_kind kind,
					       const char *name)
{
	for (int i = 0; i < s->nr; i++)
		if (s->sec[i].kind == kind && !strcmp(s->sec[i].name, name))
			return &s->sec[i];
	return NULL;
}

/* ---- take ---------------------------------------------------------------- */

/* Save into buf, then keep a copy as the next section. */
static int snap_take_vcpus(struct vm *vm, struct vm_snapshot *s, uint8_t *buf,
			   char *err, size_t errlen)
{
	struct proto_rec_writer w;
	char name[DEV_NAME_MAX];
	int r = 0;

	for (int i = 0; !r && i < vm->nr_vcpus; i++) {
		const uint8_t *blob = buf;
		size_t len;

		/* Taken by the vCPU's thread as it parked, or here. */
		r = vcpu_presaved(&vm->vcpus[i], &blob, &len, err, errlen);
		if (r == -ENOENT) {
			proto_rec_writer_init(&w, buf, VMSTATE_BLOB_MAX);
			r = vcpu_state_save(&vm->vcpus[i], &w, err, errlen);
			len = w.len;
		}
		snprintf(name, sizeof(name), "vcpu%d", i);
		if (!r)
			r = vm_snapshot_add(s, VM_SNAP_VCPU, i, name,
					    VMSTATE_VCPU_VERSION, blob, len,
					    err, errlen);
	}
	return r;
}

static int snap_take_devices(struct vm *vm, struct vm_snapshot *s, uint8_t *buf,
			     char *err, size_t errlen)
{
	struct proto_rec_writer w;
	const struct dev *d;
	int r = 0;

	for (int i = 0; !r && (d = vm_dev_at(vm, i)); i++) {
		proto_rec_writer_init(&w, buf, VMSTATE_BLOB_MAX);
		r = vm_dev_state_save(d, &w, err, errlen);
		if (r)
			err_set(err, errlen, "saving device %s: %s", d->name,
				strerror(-r));
		else
			r = vm_snapshot_add(s, VM_SNAP_DEVICE, i, d->name,
					    d->ops->version, buf, w.len, err,
					    errlen);
	}
	return r;
}

/*
 * vCPUs, then the VM, then the devices: the order a migration sends them.
 * Saving has no ordering rule between these (nothing runs); within a vCPU
 * blob the rules are in vcpu_state.c, and KVM_GET_CLOCK is read once, in
 * the VM blob, with every vCPU stopped.
 */
int vm_snapshot_take(struct vm *vm, struct vm_snapshot *s, char *err,
		     size_t errlen)
{
	uint8_t *buf = malloc(VMSTATE_BLOB_MAX);
	struct proto_rec_writer w;
	int r;

	if (!buf) {
		err_set(err, errlen, "snapshot: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	r = snap_take_vcpus(vm, s, buf, err, errlen);
	if (!r) {
		proto_rec_writer_init(&w, buf, VMSTATE_BLOB_MAX);
		r = vm_arch_state_save(vm, &w, err, errlen);
	}
	if (!r)
		r = vm_snapshot_add(s, VM_SNAP_VM, 0, "vm", VMSTATE_VM_VERSION,
				    buf, w.len, err, errlen);
	if (!r)
		r = snap_take_devices(vm, s, buf, err, errlen);
	free(buf);
	if (r)
		vm_snapshot_free(s);
	return r;
}

/* ---- apply --------------------------------------------------------------- */

/* The section the VM's vCPU i needs, or NULL. */
static const struct vm_snap_section *snap_vcpu(const struct vm_snapshot *s,
					       int i)
{
	char name[DEV_NAME_MAX];

	snprintf(name, sizeof(name), "vcpu%d", i);
	return vm_snapshot_find(s, VM_SNAP_VCPU, name);
}

/* Every section this VM needs, and none for a vCPU or device it lacks. */
static int snap_check_sections(struct vm *vm, const struct vm_snapshot *s,
			       char *err, size_t errlen)
{
	const struct dev *d;

	for (int i = 0; i < s->nr; i++) {
		const struct vm_snap_section *sec = &s->sec[i];

		if (sec->kind == VM_SNAP_DEVICE &&
		    !dev_table_find(&vm->devs, sec->name)) {
			err_set(err, errlen,
				"state for device %s, which this VM lacks",
				sec->name);
			return -EPROTO;
		}
		if (sec->kind == VM_SNAP_VCPU &&
		    sec->id >= (uint32_t)vm->nr_vcpus) {
			err_set(err, errlen,
				"state for vCPU %u; this VM has %d vCPUs",
				sec->id, vm->nr_vcpus);
			return -EPROTO;
		}
	}
	for (int i = 0; (d = vm_dev_at(vm, i)); i++) {
		if (!vm_snapshot_find(s, VM_SNAP_DEVICE, d->name)) {
			err_set(err, errlen, "no state for device %s", d->name);
			return -EPROTO;
		}
	}
	for (int i = 0; i < vm->nr_vcpus; i++) {
		if (!snap_vcpu(s, i)) {
			err_set(err, errlen, "no state for vCPU %d", i);
			return -EPROTO;
		}
	}
	if (!vm_snapshot_find(s, VM_SNAP_VM, "vm")) {
		err_set(err, errlen, "no VM state (irqchip, PIT, clock)");
		return -EPROTO;
	}
	return 0;
}

/*
 * Restore order: devices (plain data), then every vCPU (vcpu_state_load
 * obeys the per-vCPU ordering rules), then the VM-wide state last, so that
 * KVM_SET_CLOCK is the final step before the vCPUs run. Every section is
 * known to be there (snap_check_sections) before the first is loaded.
 */
int vm_snapshot_apply(struct vm *vm, const struct vm_snapshot *s, char *err,
		      size_t errlen)
{
	const struct vm_snap_section *sec;
	const struct dev *d;
	int r = snap_check_sections(vm, s, err, errlen);

	for (int i = 0; !r && (d = vm_dev_at(vm, i)); i++) {
		sec = vm_snapshot_find(s, VM_SNAP_DEVICE, d->name);
		r = vm_dev_state_load(d, sec->data, sec->len, err, errlen);
	}
	for (int i = 0; !r && i < vm->nr_vcpus; i++) {
		sec = snap_vcpu(s, i);
		r = vcpu_state_load(&vm->vcpus[i], sec->data, sec->len, err,
				    errlen);
	}
	if (r)
		return r;
	sec = vm_snapshot_find(s, VM_SNAP_VM, "vm");
	return vm_arch_state_load(vm, sec->data, sec->len, err, errlen);
}

int vm_snapshot_guest_pages(const struct vm_snapshot *s, uint64_t *gpa, int max)
{
	int n = 0;

	for (int i = 0; i < s->nr && n < max; i++) {
		const struct vm_snap_section *sec = &s->sec[i];
		int r;

		if (sec->kind != VM_SNAP_VCPU)
			continue;
		r = vcpu_state_guest_pages(sec->data, sec->len, gpa + n,
					   max - n);
		if (r < 0)
			return r;
		n += r;
	}
	return n;
}
