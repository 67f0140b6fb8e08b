/* SPDX-License-Identifier: MIT */
/*
 * dest_switch.c - the destination's side of the switch-over (dest.h):
 * STATE_END restores the machine from the sections that arrived (in KVM's
 * order, vm_snapshot_apply), sets post-copy's fault service up, hashes
 * guest RAM for --verify; the source's digests are compared and ours sent
 * back; dest_switch_ready says when READY may go; GO starts the vCPUs.
 * Event-loop thread; no vCPU thread exists before dest_switch_go. Each
 * function returns 0 or -errno with one line in err; dest.c moves the
 * state.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "ept/ram_io.h"
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

/* Post-copy: the pages resident before the restore (those that arrived). */
static int dest_resident_before(struct mig_dest *d, struct bitmap *have,
				char *err, size_t errlen)
{
	int r = bitmap_init(have, d->ss.vm->mem.nr_pages);

	if (!r)
		r = mem_resident(&d->ss.vm->mem, have);
	if (r)
		snprintf(err, errlen, "scanning resident pages: %s",
			 strerror(-r));
	return r;
}

/*
 * Post-copy: the restore must not decide the content of a page that has
 * not arrived. KVM writes guest RAM while the state goes in: KVM_SET_MSRS
 * of MSR_KVM_SYSTEM_TIME_NEW maps and writes the kvmclock page. Faulted in
 * here, before the fault service is on, such a page is zeros plus KVM's
 * bytes, and post-copy would never fetch it: the guest lost the page's
 * other data and the kvmclock version its seqlock counts on (restarted at
 * 0, it met the source's number again, and a TSC read on the source
 * before the pause passed for one read after it: a kvmclock of ~7e18 ns).
 * So every page the restore made resident is punched again: the source's
 * copy comes on first touch, and KVM (its mapping invalidated by the
 * punch) writes over that copy at the vCPU's first entry.
 */
static int dest_unpopulate(struct mig_dest *d, const struct bitmap *before,
			   char *err, size_t errlen)
{
	const struct guest_mem *m = &d->ss.vm->mem;
	struct bitmap after;
	uint64_t i;
	int r = dest_resident_before(d, &after, err, errlen);

	for (i = 0; !r && i < m->nr_pages; i++) {
		if (!bitmap_test(&after, i) || bitmap_test(before, i))
			continue;
		r = mem_punch_page(m, mem_page_to_gpa(m, i));
		if (r)
			snprintf(err, errlen,
				 "punching page 0x%llx the restore wrote: %s",
				 (unsigned long long)mem_page_to_gpa(m, i),
				 strerror(-r));
	}
	bitmap_free(&after);
	return r;
}

/* Post-copy, once restored: every page fetched on first touch. */
static int dest_restore_postcopy(struct mig_dest *d, char *err, size_t errlen)
{
	char why[256];

	if (dest_pc_faults_on(d, why, sizeof(why))) {
		snprintf(err, errlen, "post-copy: %s", why);
		return -EIO;
	}
	return 0;
}

/*
 * --verify: hash RAM as received (stop-copy: its SHA-256; post-copy: the
 * sum of what is here so far), before the state goes in.
 * Restoring the vCPUs writes guest memory from the kernel: KVM_SET_MSRS of
 * MSR_KVM_SYSTEM_TIME_NEW rewrites the guest's kvmclock page (version and
 * flags, measured) on the nested KVM of our machines, and that page would
 * differ from the source's paused copy although the transfer was exact.
 */
static int dest_hash(struct mig_dest *d, char *err, size_t errlen)
{
	char why[256];

	if (d->postcopy && dest_pc_sum(d, why, sizeof(why))) {
		snprintf(err, errlen, "verify: %s", why);
		return -EIO;
	}
	if (!(d->ss.caps & PROTO_CAP_VERIFY) || d->postcopy)
		return 0;
	d->nr_digest =
		mig_ram_digest(&d->ss.vm->mem, d->digest, PROTO_MAX_REGIONS);
	if (d->nr_digest >= 0)
		return 0;
	snprintf(err, errlen, "verify: cannot hash guest RAM here: %s",
		 strerror(-d->nr_digest));
	return d->nr_digest;
}

/* STATE_END: hash (while the source hashes its side), then restore. */
int dest_switch_restore(struct mig_dest *d, char *err, size_t errlen)
{
	struct bitmap before = {0};
	uint64_t t0 = clock_now_ns();
	int r;

	if (!d->ram_end || d->state_end) {
		snprintf(err, errlen, "STATE_END out of order");
		return -EPROTO;
	}
	d->state_end = true;
	r = dest_hash(d, err, errlen);
	if (!r && d->postcopy)
		r = dest_resident_before(d, &before, err, errlen);
	if (!r)
		r = dest_restore(d, err, errlen);
	if (!r && d->postcopy)
		r = dest_unpopulate(d, &before, err, errlen);
	bitmap_free(&before);
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

/* The source's digests: compare with ours, then send ours back. */
int dest_switch_verify(struct mig_dest *d, const uint8_t *p, size_t len,
		       char *err, size_t errlen)
{
	struct proto_digest remote[PROTO_MAX_REGIONS];
	const struct proto_digest *local = d->digest;
	uint8_t buf[PROTO_HDR_SIZE + 8 + PROTO_MAX_REGIONS * 48];
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
	if ((uint32_t)d->nr_digest != nr) {
		snprintf(err, errlen,
			 "verify: the source hashed %u regions, here %d", nr,
			 d->nr_digest);
		return -EPROTO;
	}
	for (uint32_t i = 0; i < nr; i++) {
		if (memcmp(remote[i].sha256, local[i].sha256, 32)) {
			snprintf(err, errlen,
				 "verify: SHA-256 of RAM region at 0x%llx "
				 "differs between source and destination",
				 (unsigned long long)local[i].gpa);
			return -EIO;
		}
	}
	d->verify_done = true;
	return dest_reply(d, buf,
			  proto_verify_encode(buf, sizeof(buf), local, nr), err,
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
