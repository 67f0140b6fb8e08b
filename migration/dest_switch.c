/* SPDX-License-Identifier: MIT */
/*
 * dest_switch.c - the destination's side of the switch-over (dest.h):
 * STATE_END restores the machine from the sections that arrived (in KVM's
 * order, vm_snapshot_apply), sets post-copy's fault service up; for
 * --verify the source's sum of page digests is compared with ours (kept as
 * pages were placed, dest_recv.c) and ours sent back; dest_switch_ready says
 * when READY may go; GO starts the vCPUs. Event-loop thread; no vCPU thread
 * exists before dest_switch_go. Each function returns 0 or -errno with one line
 * in err; dest.c moves the state.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "migration/dest.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

/* The blobs that arrived, as the snapshot of the machine. */
static int dest_snapshot(struct mig_dest *d, struct vm_snapshot *snap,
			 char *err, size_t errlen)
{
	char name[32];
	int r = 0;

	for (int i = 0; !r && i < d->ss.vm->nr_vcpus; i++) {
		snprintf(name, sizeof(name), "vcpu%d", i);
		if (d->vcpu[i].data)
			r = vm_snapshot_add(snap, VM_SNAP_VCPU, i, name,
					    d->vcpu[i].version, d->vcpu[i].data,
					    d->vcpu[i].len, err, errlen);
	}
	if (!r && d->vmstate.data)
		r = vm_snapshot_add(snap, VM_SNAP_VM, 0, "vm",
				    d->vmstate.version, d->vmstate.data,
				    d->vmstate.len, err, errlen);
	for (int i = 0; !r && i < d->nr_devs && vm_dev_at(d->ss.vm, i); i++)
		if (d->dev[i].data)
			r = vm_snapshot_add(snap, VM_SNAP_DEVICE, i,
					    vm_dev_at(d->ss.vm, i)->name,
					    d->dev[i].version, d->dev[i].data,
					    d->dev[i].len, err, errlen);
	return r;
}

/* vm_snapshot_apply restores in the order KVM requires (snapshot.c). */
static int dest_restore(struct mig_dest *d, char *err, size_t errlen)
{
	struct vm_snapshot snap;
	char why[256];
	int r;

	vm_snapshot_init(&snap);
	r = dest_snapshot(d, &snap, why, sizeof(why));
	if (!r)
		r = vm_snapshot_apply(d->ss.vm, &snap, why, sizeof(why));
	vm_snapshot_free(&snap);
	if (r)
		snprintf(err, errlen, "restoring the VM: %s", why);
	return r;
}

/* Post-copy: the sum for --verify, then every page fetched on first touch. */
static int dest_restore_postcopy(struct mig_dest *d, char *err, size_t errlen)
{
	char why[256];

	if (dest_pc_sum(d, why, sizeof(why))) {
		snprintf(err, errlen, "verify: %s", why);
		return -EIO;
	}
	if (dest_pc_faults_on(d, why, sizeof(why))) {
		snprintf(err, errlen, "post-copy: %s", why);
		return -EIO;
	}
	return 0;
}

/* STATE_END: restore. */
int dest_switch_restore(struct mig_dest *d, char *err, size_t errlen)
{
	uint64_t t0 = clock_now_ns();
	int r;

	if (!d->ram_end || d->state_end) {
		snprintf(err, errlen, "STATE_END out of order");
		return -EPROTO;
	}
	d->state_end = true;
	r = dest_restore(d, err, errlen);
	if (!r && d->postcopy)
		r = dest_restore_postcopy(d, err, errlen);
	if (r)
		return r;
	d->restored = true;
	d->ss.st.restore_us = (clock_now_ns() - t0) / 1000;
	return 0;
}

/* May READY go? (The caller knows it has not gone yet.) */
bool dest_switch_ready(const struct mig_dest *d)
{
	if (!d->restored)
		return false;
	if (d->postcopy && !d->urgent_ok)
		return false; /* READY also means: the urgent connection is up
			       */
	/* The source's digests come after STATE_END. */
	return !(d->ss.caps & PROTO_CAP_VERIFY) || d->postcopy ||
	       d->verify_done;
}

/*
 * The source's sum of what it sent: compare with ours of what was placed
 * (kept page by page: nothing is hashed here), then send ours back.
 */
int dest_switch_verify(struct mig_dest *d, const uint8_t *p, size_t len,
		       char *err, size_t errlen)
{
	struct proto_digest remote[PROTO_MAX_REGIONS], local;
	uint8_t buf[PROTO_HDR_SIZE + 8 + 48];
	uint32_t nr;
	int r;

	if (!d->state_end || !(d->ss.caps & PROTO_CAP_VERIFY) ||
	    d->verify_done || d->postcopy) {
		snprintf(err, errlen, "VERIFY out of order");
		return -EPROTO;
	}
	r = proto_verify_decode(p, len, remote, PROTO_MAX_REGIONS, &nr, err,
				errlen);
	if (r)
		return r;
	if (nr != 1 || !d->placed.term) {
		snprintf(err, errlen, "verify: the source sent %u sums, not 1",
			 nr);
		return -EPROTO;
	}
	mig_sum_digest(&d->placed.sum, d->ss.vm->mem.size, &local);
	if (memcmp(remote[0].sha256, local.sha256, 32)) {
		snprintf(err, errlen,
			 "verify: guest RAM here differs from what the source "
			 "sent (sums of page digests differ); the VM does not "
			 "run here");
		return -EIO;
	}
	d->verify_done = true;
	return dest_reply(d, buf,
			  proto_verify_encode(buf, sizeof(buf), &local, 1), err,
			  errlen);
}

/* GO: the source has let go; run the VM and say so. */
int dest_switch_go(struct mig_dest *d, char *err, size_t errlen)
{
	char why[256];
	int r;

	d->go_ns = clock_now_ns();
	r = vm_start(d->ss.vm, why, sizeof(why));
	if (r) {
		snprintf(err, errlen, "starting the vCPUs: %s", why);
		return r;
	}
	r = dest_reply_empty(d, PROTO_RUNNING, err, errlen);
	d->go_done = true;
	/* The devices came in reset: a DMA driver re-registers on RESUME. */
	vm_devs_resume(d->ss.vm);
	return r;
}
