/* SPDX-License-Identifier: MIT */
/*
 * snapshot.h - the whole state of a paused VM as one object: a blob per
 * vCPU, the VM-wide KVM state (irqchip, PIT, clock) and a blob per device,
 * each a section with a name, a version and its bytes (a run of proto
 * records: vmstate.h, vmstate_rec.h). Migration carries the sections in
 * STATE frames; a snapshot file or a local update can carry them as well.
 *
 * vm_snapshot_take() only with every vCPU stopped (vm_pause), which also
 * guarantees that a pending PIO/MMIO exit was completed by one more
 * KVM_RUN with immediate_exit, and with every DMA device quiesced
 * (vm_devs_quiesce_*). vm_snapshot_apply() on a VM whose vCPUs have not
 * run since it was created (an incoming VM) or are paused. Both run on
 * the thread that paused the VM. A snapshot itself is owned by whoever
 * holds it; nothing in it points into the VM.
 */
#ifndef VMM_SNAPSHOT_H
#define VMM_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "devices/dev.h"
#include "proto/proto.h"

struct vm;

enum vm_snap_kind {
	VM_SNAP_VCPU,	/* id: the vCPU's index; name "vcpu<id>" */
	VM_SNAP_VM,	/* id 0; name "vm" */
	VM_SNAP_DEVICE, /* id: its index in the device table; its name */
};

struct vm_snap_section {
	enum vm_snap_kind kind;
	uint32_t id;
	char name[DEV_NAME_MAX];
	uint32_t version; /* of the blob (also in its header record) */
	uint8_t *data;	  /* malloc()ed, owned by the snapshot */
	size_t len;
};

/*
 * The sections in the order vm_snapshot_take() makes them: every vCPU by
 * index, the VM, every device in table order. Iterate sec[0..nr-1].
 */
struct vm_snapshot {
	int nr, cap;
	struct vm_snap_section *sec;
};

void vm_snapshot_init(struct vm_snapshot *s);
/* Free every section; s is empty (and may be reused) afterwards. */
void vm_snapshot_free(struct vm_snapshot *s);
/* Append a copy of data as a section. 0 or -ENOMEM (err set). */
int vm_snapshot_add(struct vm_snapshot *s, enum vm_snap_kind kind, uint32_t id,
		    const char *name, uint32_t version, const void *data,
		    size_t len, char *err, size_t errlen);
/* The section of this kind and name, or NULL. */
const struct vm_snap_section *vm_snapshot_find(const struct vm_snapshot *s,
					       enum vm_snap_kind kind,
					       const char *name);

/*
 * The largest valid blob of a section this VM has (a vCPU's from its
 * records at their limits, the VM's, a device's state at its larger
 * version with the framing), never above VMSTATE_BLOB_MAX; 0 when the VM
 * has no such section (a vCPU or device index beyond its own, a VM id
 * but 0). A receiver asks this before it keeps a peer's section.
 */
size_t vm_snapshot_section_max(const struct vm *vm, enum vm_snap_kind kind,
			       uint32_t id);

/* Save the paused VM into s (vm_snapshot_init()ed, empty). 0 or -errno. */
int vm_snapshot_take(struct vm *vm, struct vm_snapshot *s, char *err,
		     size_t errlen);
/*
 * Restore s into vm, every section required, in the order KVM wants (the
 * rules are comments above the code). Each blob is checked whole before
 * its first ioctl; a blob refused leaves the ones before it loaded.
 */
/*
 * The guest pages KVM itself writes while s is applied (the areas of the
 * vCPUs' paravirtual MSRs: kvmclock, steal time, async PF, PV EOI), at
 * most max, into gpa; how many, or -errno. A post-copy destination must
 * not let such a write decide a page that has not arrived.
 */
int vm_snapshot_guest_pages(const struct vm_snapshot *s, uint64_t *gpa,
			    int max);
int vm_snapshot_apply(struct vm *vm, const struct vm_snapshot *s, char *err,
		      size_t errlen);

/*
 * One device's blob: a header record (version, id 0) and the state record
 * (ops->state_size bytes). Save: 0, -ENOSPC when w is too small, or the
 * device's refusal (a DMA device unless quiesced) with err set.
 */
int vm_dev_state_save(const struct dev *d, struct proto_rec_writer *w,
		      char *err, size_t errlen);
int vm_dev_state_load(const struct dev *d, const uint8_t *blob, size_t len,
		      char *err, size_t errlen);

#endif /* VMM_SNAPSHOT_H */
