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
#include "common/sched.h"
#include "ept/ram_io.h"
#include "migration/dest.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

#define DEST_PV_PAGES_MAX (4 * PROTO_MAX_VCPUS)

/*
 * Post-copy: the restore must not decide the content of a page that has
 * not arrived. KVM writes guest RAM while the state goes in: KVM_SET_MSRS
 * of a paravirtual MSR (kvmclock, measured here: its version and flags)
 * maps and writes the area it points at. Faulted in before the fault
 * service is on, such a page would be zeros plus KVM's bytes and post-copy
 * would never fetch it: the guest lost the page's other data, and the
 * kvmclock version its seqlock counts on restarted at 0 (a TSC read on the
 * source passed for one after the pause: a kvmclock of ~7e18 ns). So the
 * pages the snapshot's MSRs point at that were holes before the restore
 * are punched again after it: the source's copy comes on first touch, and
 * KVM (its mapping invalidated by the punch) writes over it at the vCPU's
 * first entry. Only those few pages are looked at: no scan of RAM in the
 * downtime.
 */
static int dest_pv_holes(struct mig_dest *d, const struct vm_snapshot *snap,
			 uint64_t *gpa, int *nr)
{
	int n = vm_snapshot_guest_pages(snap, gpa, DEST_PV_PAGES_MAX), k = 0;

	if (n < 0)
		return n;
	for (int i = 0; i < n; i++)
		if (!mem_page_resident(&d->ss.vm->mem, gpa[i]))
			gpa[k++] = gpa[i];
	*nr = k;
	return 0;
}

static int dest_pv_punch(struct mig_dest *d, const uint64_t *gpa, int nr,
			 char *err, size_t errlen)
{
	for (int i = 0; i < nr; i++) {
		int r = mem_punch_page(&d->ss.vm->mem, gpa[i]);

		if (r) {
			snprintf(err, errlen,
				 "punching page 0x%llx the restore wrote: %s",
				 (unsigned long long)gpa[i], strerror(-r));
			return r;
		}
	}
	return 0;
}

/* vm_snapshot_apply restores in the order KVM requires (snapshot.c). */
static int dest_restore(struct mig_dest *d, char *err, size_t errlen)
{
	static uint64_t holes[DEST_PV_PAGES_MAX]; /* loop thread only */
	char why[256];
	int r = 0, nr = 0;

	if (d->postcopy)
		r = dest_pv_holes(d, &d->snap, holes, &nr);
	if (!r)
		r = vm_snapshot_apply(d->ss.vm, &d->snap, why, sizeof(why));
	vm_snapshot_free(&d->snap);
	if (r) {
		snprintf(err, errlen, "restoring the VM: %s",
			 r == -ENOMEM ? strerror(ENOMEM) : why);
		return r;
	}
	return dest_pv_punch(d, holes, nr, err, errlen);
}

/*
 * Post-copy --verify: the sum of what is here, taken before the state goes
 * in (the restore writes the kvmclock page, see dest_pv_holes).
 */
static int dest_postcopy_sum(struct mig_dest *d, char *err, size_t errlen)
{
	char why[256];

	if (!dest_pc_sum(d, why, sizeof(why)))
		return 0;
	snprintf(err, errlen, "verify: %s", why);
	return -EIO;
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
	r = d->postcopy ? dest_postcopy_sum(d, err, errlen) : 0;
	if (!r)
		r = dest_restore(d, err, errlen);
	if (!r && d->postcopy)
		r = dest_restore_postcopy(d, err, errlen);
	if (r)
		return r;
	/*
	 * The vCPU threads, for GO to wake (vm_stage): staged at HELLO
	 * already (dest_recv_hello, which live update's HELLO ends in too),
	 * so a no-op kept as the guarantee that they exist before READY.
	 */
	r = vm_stage(d->ss.vm, err, errlen);
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

/*
 * GO: the source has let go; run the VM and say so. The vCPUs woken by
 * vm_start would otherwise preempt this thread on its CPU and hold RUNNING
 * back until the next scheduler tick (2-4 ms here, while the guest already
 * ran): the source's downtime figure and its wait to end grew by that.
 */
int dest_switch_go(struct mig_dest *d, char *err, size_t errlen)
{
	bool fifo = sched_fifo_enter();
	char why[256];
	int r;

	d->go_ns = clock_now_ns();
	r = vm_start(d->ss.vm, why, sizeof(why));
	if (r) {
		sched_fifo_leave(fifo);
		snprintf(err, errlen, "starting the vCPUs: %s", why);
		return r;
	}
	r = dest_reply_empty(d, PROTO_RUNNING, err, errlen);
	sched_fifo_leave(fifo);
	d->go_done = true;
	/* The devices came in reset: a DMA driver re-registers on RESUME. */
	vm_devs_resume(d->ss.vm);
	return r;
}
