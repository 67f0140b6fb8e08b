/* SPDX-License-Identifier: MIT */
/*
 * dest.c - the migration destination: accept one source, check its HELLO
 * against this VM, receive pages into guest RAM (zero pages stay holes),
 * collect the state sections, restore them in order, and run the VM only
 * when the source says GO.
 *
 *   LISTENING -> RECEIVING (HELLO ok) -> STATE_END: restore -> [VERIFY]
 *   -> READY sent -> GO: vCPUs start, RUNNING sent -> MIG_RUNNING
 *
 * Post-copy: POSTCOPY(cookie) -> STATE_END: restore, guest RAM registered
 * with the fault service (FAULT_FETCH) -> the urgent connection shows the
 * cookie (URGENT_HELLO) -> READY -> GO: vCPUs start, RUNNING; a missing
 * page a vCPU touches is requested on the urgent connection (PAGE_REQ) and
 * placed with UFFDIO_COPY when its PAGES arrive, as are the pages pushed
 * on the main connection -> POSTCOPY_END: once no fetch is outstanding,
 * the fault service stops (pages never sent are holes, zero on both sides)
 * -> COMPLETE.
 *
 * Any failure before GO ends in MIG_FAILED and the caller exits: a VM that
 * was not received whole never runs. After GO in post-copy a failure is
 * fatal to the VM (it lacks pages): done() reports MIG_FAILED a second
 * time. The state changes only in dest_set_state, by the table of
 * states.c, and every frame of the main connection is checked against it
 * first; what both sides share (channels, the urgent thread's plumbing,
 * statistics, hooks, freeing) is session.c's. Everything runs on the
 * event-loop thread but dest_fetch(), which runs on the fault thread and
 * only queues (reqs, under qlock), and the urgent thread's callbacks; no
 * vCPU thread exists until GO.
 */
#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/page.h"
#include "common/clock.h"
#include "ept/fault.h"
#include "ept/ram_io.h"
#include "migration/channel.h"
#include "migration/hello.h"
#include "migration/migration.h"
#include "migration/ram.h"
#include "migration/dest.h"
#include "migration/states.h"
#include "migration/urgent.h"
#include "vmm/snapshot.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

_Static_assert(offsetof(struct mig_dest, ss) == 0,
	       "the session is the destination's first member");

static void dest_end(struct mig_dest *d, enum mig_state state);

/*
 * The one way the state changes: by the table (states.c). A move the table
 * does not allow is a bug here; it fails the migration rather than
 * happening silently.
 */
static bool dest_set_state(struct mig_dest *d, enum mig_state to)
{
	enum mig_state from = d->ss.st.state;

	if (mig_state_move_ok(MIG_SIDE_DEST, from, to)) {
		d->ss.st.state = to;
		return true;
	}
	snprintf(d->ss.st.error, sizeof(d->ss.st.error),
		 "internal error: state %s may not move to %s",
		 mig_state_name(from), mig_state_name(to));
	dest_end(d, MIG_FAILED);
	return false;
}

/* After GO in post-copy and before COMPLETE: pages still arrive. */
static bool dest_live(const struct mig_dest *d)
{
	return d->postcopy && d->go_done && !d->complete_sent && !d->pc_failed;
}

/* The fault service's view of post-copy, into st. */
static void dest_fault_stats(struct mig_dest *d)
{
	struct fault_stats *fs = malloc(sizeof(*fs));
	const struct fault_class_stats *c;
	uint64_t oldest = 0;

	if (!fs)
		return;
	fault_get_stats(&d->ss.vm->faults, fs);
	c = &fs->cls[FAULT_FETCH];
	d->ss.st.postcopy_faults = c->faults;
	d->ss.st.fault_wait_p50_us =
		fault_hist_percentile(&c->latency, 50) / 1000;
	d->ss.st.fault_wait_p99_us =
		fault_hist_percentile(&c->latency, 99) / 1000;
	d->ss.st.fault_wait_max_us = c->latency.max_ns / 1000;
	d->ss.st.faults_waiting = fs->pending;
	d->ss.st.fault_max_vcpus = fs->max_waiters;
	free(fs);
	if (d->faults_on)
		fault_pending_list(&d->ss.vm->faults, NULL, 0, &oldest);
	d->ss.st.fault_oldest_wait_ms = oldest / 1000000;
}

/* Loop thread: pages placed in post-copy, into st. */
static void dest_count_add(struct mig_dest *d, uint64_t normal, uint64_t zero)
{
	d->ss.st.memory_normal += normal;
	d->ss.st.memory_constant += zero;
	d->ss.st.memory_processed += (normal + zero) * PAGE_SIZE;
}

/* Loop thread: take the urgent thread's counts into st. */
static void dest_fold_urgent(struct mig_dest *d)
{
	dest_count_add(d, atomic_exchange(&d->u_normal, 0),
		       atomic_exchange(&d->u_zero, 0));
	d->ss.st.memory_postcopy_requests += atomic_exchange(&d->u_requests, 0);
}

/* Loop thread: no more urgent thread (dest_fetch will not wake it). */
static void dest_urgent_stop(struct mig_dest *d)
{
	pthread_mutex_lock(&d->qlock);
	d->urg_on = false;
	pthread_mutex_unlock(&d->qlock);
	mig_urgent_stop(&d->ss.urg);
	dest_fold_urgent(d);
}

const struct mig_stats *mig_dest_stats(struct mig_dest *d)
{
	dest_fold_urgent(d);
	if (d->postcopy && d->go_done)
		dest_fault_stats(d);
	return &d->ss.st;
}

static void dest_end(struct mig_dest *d, enum mig_state state)
{
	if (d->ss.ended)
		return;
	d->ss.ended = true;
	d->ss.st.state = state; /* terminal, or RUNNING (dest_on_go) */
	d->ss.st.time_elapsed_ms =
		(clock_now_ns() - d->ss.st.start_ns) / 1000000;
	/* Failed: let the ERROR we queued reach the source, then close. */
	if (state != MIG_RUNNING) {
		dest_urgent_stop(d);
		mig_session_close_channels(&d->ss);
	}
	mig_session_done(&d->ss);
}

static void dest_fail(struct mig_dest *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Every page is here (or the migration is over): stop demand paging. */
static void dest_faults_off(struct mig_dest *d)
{
	if (d->faults_on)
		fault_stop(&d->ss.vm->faults);
	d->faults_on = false;
	atomic_store(&d->ss.vm->ram_incomplete, false);
}

/*
 * An aborted post-copy: the VM lacks pages and cannot go on. Report it (the
 * caller fails the VM), then let blocked vCPUs go (they read zeroes, but
 * the VM is being torn down) so that they can be joined.
 */
static void dest_postcopy_failed(struct mig_dest *d)
{
	d->pc_failed = true;
	if (!dest_set_state(d, MIG_FAILED))
		return;
	dest_urgent_stop(d);
	mig_session_close_channels(&d->ss);
	mig_session_done(&d->ss);
	dest_faults_off(d);
}

static void dest_pc_break(struct mig_dest *d);

/* Tell the source why (best effort), then give everything up. */
static void dest_fail(struct mig_dest *d, const char *fmt, ...)
{
	uint8_t buf[PROTO_HDR_SIZE + 1100];
	va_list ap;
	int n;

	if (d->ss.ended && !dest_live(d))
		return;
	va_start(ap, fmt);
	vsnprintf(d->ss.st.error, sizeof(d->ss.st.error), fmt, ap);
	va_end(ap);
	n = proto_error_encode(buf, sizeof(buf), EPROTO, d->ss.st.error);
	if (d->ss.ch.connected && !d->ss.ch.failed)
		mig_channel_send_copy(&d->ss.ch, buf, n); /* best effort */
	if (d->ss.ended) {
		dest_pc_break(d);
		return;
	}
	dest_end(d, MIG_FAILED);
}

static void dest_send_on(struct mig_dest *d, struct mig_channel *ch,
			 const uint8_t *buf, int n)
{
	int r = mig_channel_send_copy(ch, buf, n);

	/* A failed send reports itself through on_error. */
	if (n <= 0 || r == -ENOMEM)
		dest_fail(d, "encoding a reply failed");
}

static void dest_send(struct mig_dest *d, const uint8_t *buf, int n)
{
	dest_send_on(d, &d->ss.ch, buf, n);
}

static void dest_send_empty(struct mig_dest *d, enum proto_type t)
{
	uint8_t buf[PROTO_HDR_SIZE];

	dest_send(d, buf, proto_empty_encode(buf, sizeof(buf), t));
}

/* ---- handshake ------------------------------------------------------------
 */

static const struct mig_channel_ops dest_urgent_ops;

/* Post-copy agreed: the listener takes one more (urgent) connection. */
static int dest_urgent_listen(struct mig_dest *d)
{
	int r;

	if (!(d->ss.caps & PROTO_CAP_POSTCOPY)) {
		mig_channel_stop_listening(&d->ss.ch);
		return 0;
	}
	r = mig_channel_listen_next(&d->ss.ch, &d->ss.uch, &dest_urgent_ops, d);
	if (r) {
		dest_fail(d, "listening for the urgent connection: %s",
			  r == -EINVAL ? "the listener is closed"
				       : uv_strerror(r));
		return r;
	}
	d->ss.uch.idle_ok = true; /* requests come when vCPUs fault */
	return 0;
}

static void dest_on_hello(struct mig_dest *d, const uint8_t *p, size_t len)
{
	struct proto_hello *remote = malloc(sizeof(*remote));
	struct proto_hello *local = malloc(sizeof(*local));
	uint8_t buf[PROTO_HDR_SIZE + 16];
	char err[256];
	int r = -ENOMEM;

	if (remote && local) {
		mig_hello_local(d->ss.vm,
				PROTO_CAP_ZSTD | PROTO_CAP_VERIFY |
					PROTO_CAP_POSTCOPY,
				local);
		r = proto_hello_decode(p, len, remote, err, sizeof(err));
		if (!r)
			r = proto_hello_compare(local, remote, err,
						sizeof(err));
	} else {
		snprintf(err, sizeof(err), "out of memory");
	}
	if (!r) {
		d->ss.caps = remote->caps & local->caps;
		d->nr_devs = (int)local->nr_devices;
	}
	free(remote);
	free(local);
	if (r) {
		dest_fail(d, "incompatible VM: %s", err);
		return;
	}
	if (dest_urgent_listen(d))
		return;
	d->hello_done = true;
	dest_send(d, buf, proto_hello_ack_encode(buf, sizeof(buf), d->ss.caps));
}

/* ---- pages ----------------------------------------------------------------
 */

static int dest_place_zero(struct mig_dest *d, const struct proto_run *run)
{
	for (uint32_t i = 0; i < run->npages; i++) {
		uint64_t gpa = run->gpa + i * PAGE_SIZE;
		int r = mem_punch_page(&d->ss.vm->mem, gpa);

		if (r) {
			dest_fail(d, "zeroing page 0x%llx: %s",
				  (unsigned long long)gpa,
				  r == -EFAULT ? "outside guest RAM"
					       : strerror(-r));
			return r;
		}
	}
	d->ss.st.memory_constant += run->npages;
	return 0;
}

/* One run of a PAGES batch into guest RAM; *data advances past its pages. */
static int dest_place_run(struct mig_dest *d, const struct proto_run *run,
			  const uint8_t **data)
{
	uint64_t len = (uint64_t)run->npages * PAGE_SIZE;
	int r;

	d->ss.st.memory_processed += len;
	if (run->flags & PROTO_RUN_ZERO)
		return dest_place_zero(d, run);
	r = mem_pwrite(&d->ss.vm->mem, run->gpa, *data, len);
	if (r) {
		dest_fail(d, "writing %u pages at 0x%llx: %s", run->npages,
			  (unsigned long long)run->gpa,
			  r == -EFAULT ? "outside guest RAM" : strerror(-r));
		return r;
	}
	*data += len;
	d->ss.st.memory_normal += run->npages;
	d->ss.st.memory_normal_bytes += len;
	return 0;
}

static void dest_postcopy_pages(struct mig_dest *d, const uint8_t *p,
				size_t len);

static void dest_on_pages(struct mig_dest *d, const uint8_t *p, size_t len)
{
	const uint8_t *data;
	char err[256];

	if (d->postcopy) {
		dest_postcopy_pages(d, p, len);
		return;
	}
	if (!d->hello_done || d->ram_end) {
		dest_fail(d, "PAGES %s",
			  d->ram_end ? "after RAM_END" : "before HELLO");
		return;
	}
	if (proto_pages_decode(p, len, d->batch, err, sizeof(err))) {
		dest_fail(d, "%s", err);
		return;
	}
	data = d->batch->data;
	for (int i = 0; i < d->batch->nr_runs; i++)
		if (dest_place_run(d, &d->batch->runs[i], &data))
			return;
}

/* ---- state -----------------------------------------------------------------
 */

static struct dest_blob *dest_slot(struct mig_dest *d,
				   const struct proto_state *s)
{
	switch (s->kind) {
	case PROTO_STATE_VCPU:
		return s->id < (uint32_t)d->ss.vm->nr_vcpus ? &d->vcpu[s->id]
							    : NULL;
	case PROTO_STATE_VM:
		return s->id == 0 ? &d->vmstate : NULL;
	case PROTO_STATE_DEVICE:
		return s->id < (uint32_t)d->nr_devs ? &d->dev[s->id] : NULL;
	}
	return NULL;
}

static void dest_on_state(struct mig_dest *d, const uint8_t *p, size_t len)
{
	struct proto_state s;
	struct dest_blob *b;
	char err[256];

	if (!d->ram_end || d->state_end) {
		dest_fail(d, "STATE out of order");
		return;
	}
	if (proto_state_decode(p, len, &s, err, sizeof(err))) {
		dest_fail(d, "%s", err);
		return;
	}
	b = dest_slot(d, &s);
	if (!b || b->data) {
		dest_fail(d, "STATE kind %u id %u: %s", s.kind, s.id,
			  b ? "sent twice" : "no such vCPU or device here");
		return;
	}
	b->data = malloc(s.len ? s.len : 1);
	if (!b->data) {
		dest_fail(d, "out of memory");
		return;
	}
	memcpy(b->data, s.blob, s.len);
	b->len = s.len;
	b->version = s.version;
}

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
	int r;

	vm_snapshot_init(&snap);
	r = dest_snapshot(d, &snap, err, errlen);
	if (!r)
		r = vm_snapshot_apply(d->ss.vm, &snap, err, errlen);
	vm_snapshot_free(&snap);
	return r;
}

static void dest_maybe_ready(struct mig_dest *d)
{
	if (!d->restored || d->ss.st.state == MIG_WAIT_READY)
		return;
	if (d->postcopy && !d->urgent_ok)
		return; /* READY also means: the urgent connection is up */
	if ((d->ss.caps & PROTO_CAP_VERIFY) && !d->postcopy && !d->verify_done)
		return; /* the source's digests come after STATE_END */
	if (dest_set_state(d, MIG_WAIT_READY))
		dest_send_empty(d, PROTO_READY);
}

static int dest_postcopy_faults(struct mig_dest *d, char *err, size_t errlen);

/*
 * --verify in post-copy: sum what we hold at the switch (pre-copy pages the
 * discard set left alone) before any vCPU runs or any fault is registered;
 * placed pages are added as they come (dest_place_one).
 */
static int dest_postcopy_sum(struct mig_dest *d, char *err, size_t errlen)
{
	int r;

	if (!(d->ss.caps & PROTO_CAP_VERIFY))
		return 0;
	r = mig_sum_init(&d->sum);
	d->sum_on = !r;
	/*
	 * RAM arrived fresh (all holes): without a pre-copy page there is
	 * nothing to add, and the scan would cost ~10 ms a GiB of downtime.
	 */
	if (!r && d->ss.st.memory_normal)
		r = mig_sum_ram(&d->sum, &d->ss.vm->mem);
	if (r)
		snprintf(err, errlen, "hashing guest RAM: %s", strerror(-r));
	return r;
}

static void dest_on_state_end(struct mig_dest *d)
{
	char err[256] = "";

	if (!d->ram_end || d->state_end) {
		dest_fail(d, "STATE_END out of order");
		return;
	}
	d->state_end = true;
	d->ss.st.restore_us = clock_now_ns();
	if (dest_restore(d, err, sizeof(err))) {
		dest_fail(d, "restoring the VM: %s", err);
		return;
	}
	if (d->postcopy && dest_postcopy_sum(d, err, sizeof(err))) {
		dest_fail(d, "verify: %s", err);
		return;
	}
	if (d->postcopy && dest_postcopy_faults(d, err, sizeof(err))) {
		dest_fail(d, "post-copy: %s", err);
		return;
	}
	d->restored = true;
	d->ss.st.restore_us = (clock_now_ns() - d->ss.st.restore_us) / 1000;
	/* Hash now, while the source hashes its side: not one after the other.
	 */
	if ((d->ss.caps & PROTO_CAP_VERIFY) && !d->postcopy) {
		d->nr_digest = mig_ram_digest(&d->ss.vm->mem, d->digest,
					      PROTO_MAX_REGIONS);
		if (d->nr_digest < 0) {
			dest_fail(d, "verify: cannot hash guest RAM here: %s",
				  strerror(-d->nr_digest));
			return;
		}
	}
	dest_maybe_ready(d);
}

/* The source's digests: compare with ours, then send ours back. */
static void dest_on_verify(struct mig_dest *d, const uint8_t *p, size_t len)
{
	struct proto_digest remote[PROTO_MAX_REGIONS];
	const struct proto_digest *local = d->digest;
	uint8_t buf[PROTO_HDR_SIZE + 8 + PROTO_MAX_REGIONS * 48];
	char err[256];
	uint32_t nr;
	int n;

	if (!d->state_end || !(d->ss.caps & PROTO_CAP_VERIFY) ||
	    d->verify_done || d->postcopy) {
		dest_fail(d, "VERIFY out of order");
		return;
	}
	if (proto_verify_decode(p, len, remote, PROTO_MAX_REGIONS, &nr, err,
				sizeof(err))) {
		dest_fail(d, "%s", err);
		return;
	}
	n = d->nr_digest;
	if ((uint32_t)n != nr) {
		dest_fail(d, "verify: the source hashed %u regions, here %d",
			  nr, n);
		return;
	}
	for (uint32_t i = 0; i < nr; i++) {
		if (memcmp(remote[i].sha256, local[i].sha256, 32)) {
			dest_fail(d,
				  "verify: SHA-256 of RAM region at 0x%llx "
				  "differs between source and destination",
				  (unsigned long long)local[i].gpa);
			return;
		}
	}
	d->verify_done = true;
	dest_send(d, buf, proto_verify_encode(buf, sizeof(buf), local, nr));
	dest_maybe_ready(d);
}

/* GO: the source has let go; run the VM. */
static void dest_on_go(struct mig_dest *d)
{
	char err[256];

	if (d->ss.st.state != MIG_WAIT_READY) {
		dest_fail(d, "GO before READY");
		return;
	}
	d->go_ns = clock_now_ns();
	if (vm_start(d->ss.vm, err, sizeof(err))) {
		dest_fail(d, "starting the vCPUs: %s", err);
		return;
	}
	dest_send_empty(d, PROTO_RUNNING);
	d->go_done = true;
	/* The devices came in reset: a DMA driver re-registers on RESUME. */
	vm_devs_resume(d->ss.vm);
	dest_end(d, MIG_RUNNING);
}

/* ---- post-copy --------------------------------------------------------------
 */

/* Pages the source says are not valid here: drop them (loop thread). */
static void dest_on_discard(struct mig_dest *d, const uint8_t *p, size_t len)
{
	char err[256];
	uint32_t nr;

	if (!(d->ss.caps & PROTO_CAP_POSTCOPY) || d->postcopy) {
		dest_fail(d, "DISCARD out of order");
		return;
	}
	if (!d->discard)
		d->discard =
			malloc(PROTO_MAX_DISCARD_RUNS * sizeof(*d->discard));
	if (!d->discard) {
		dest_fail(d, "out of memory");
		return;
	}
	if (proto_discard_decode(p, len, d->discard, PROTO_MAX_DISCARD_RUNS,
				 &nr, err, sizeof(err))) {
		dest_fail(d, "%s", err);
		return;
	}
	for (uint32_t i = 0; i < nr; i++) {
		const struct proto_run *run = &d->discard[i];
		int r = mem_punch_range(&d->ss.vm->mem, run->gpa, run->npages);

		if (r) {
			dest_fail(d, "discarding %u pages at 0x%llx: %s",
				  run->npages, (unsigned long long)run->gpa,
				  r == -EFAULT ? "outside guest RAM"
					       : strerror(-r));
			return;
		}
	}
	d->nr_discard += nr;
}

static void dest_resume_requests(struct mig_dest *d);

/* The urgent connection proved it belongs to this migration. */
static int dest_urgent_handover(struct mig_dest *d, char *err, size_t errlen);

static void dest_check_urgent(struct mig_dest *d)
{
	char err[256];

	if (!d->postcopy || !d->urgent_seen)
		return;
	if (d->urgent_cookie != d->ss.cookie) {
		dest_fail(d, "urgent connection: wrong cookie");
		return;
	}
	d->urgent_ok = true;
	if (dest_urgent_handover(d, err, sizeof(err))) {
		dest_fail(d, "urgent connection: %s", err);
		return;
	}
	if (d->go_done) {
		dest_resume_requests(d);
		return;
	}
	dest_maybe_ready(d);
}

static void dest_on_postcopy(struct mig_dest *d, const uint8_t *p, size_t len)
{
	uint64_t cookie, nr_runs;
	char err[256];

	if (!(d->ss.caps & PROTO_CAP_POSTCOPY) || d->postcopy || d->ram_end) {
		dest_fail(d, "POSTCOPY out of order");
		return;
	}
	if (proto_postcopy_decode(p, len, &cookie, &nr_runs, err,
				  sizeof(err))) {
		dest_fail(d, "%s", err);
		return;
	}
	if (nr_runs != d->nr_discard) {
		dest_fail(d, "POSTCOPY counts %llu discard runs, %llu arrived",
			  (unsigned long long)nr_runs,
			  (unsigned long long)d->nr_discard);
		return;
	}
	d->ss.cookie = cookie;
	d->postcopy = true;
	d->ram_end = true; /* the state sections follow */
	/* Pushed pages must not hold up the answers to requests. */
	d->ss.ch.read_chunk = DEST_PC_READ_CHUNK;
	dest_check_urgent(d);
}

/*
 * The fetch hook: runs ON THE FAULT THREAD and must not block. Queue the
 * gpa and wake the loop thread; a full queue fails the fetch, which the
 * fault service retries later.
 */
static int dest_fetch(void *opaque, uint64_t gpa)
{
	struct mig_dest *d = opaque;
	bool urg = false;
	int r = 0;

	pthread_mutex_lock(&d->qlock);
	if (d->req_len == DEST_REQ_QUEUE)
		r = -EAGAIN;
	else
		d->req[(d->req_head + d->req_len++) % DEST_REQ_QUEUE] = gpa;
	/* Under qlock: the thread cannot stop meanwhile. */
	if (!r && d->urg_on) {
		mig_urgent_wake(&d->ss.urg);
		urg = true;
	}
	pthread_mutex_unlock(&d->qlock);
	if (!r && !urg)
		uv_async_send(&d->ss.async);
	return r;
}

/* A vCPU's fault has waited DEST_STALL_MS (fault thread): tell the loop. */
static void dest_stall(void *opaque, uint64_t gpa, uint64_t waited_ns,
		       pid_t tid)
{
	struct mig_dest *d = opaque;

	(void)gpa;
	(void)waited_ns;
	(void)tid;
	atomic_store(&d->stalled, true);
	uv_async_send(&d->ss.async);
}

static uint32_t dest_take_reqs(struct mig_dest *d, uint64_t *gpa)
{
	uint32_t n = 0;

	pthread_mutex_lock(&d->qlock);
	while (d->req_len && n < PROTO_MAX_PAGE_REQ) {
		gpa[n++] = d->req[d->req_head];
		d->req_head = (d->req_head + 1) % DEST_REQ_QUEUE;
		d->req_len--;
	}
	pthread_mutex_unlock(&d->qlock);
	return n;
}

static void dest_try_complete(struct mig_dest *d);

/* --verify: our sum, before COMPLETE (the source compares it). */
static void dest_send_sum(struct mig_dest *d)
{
	uint8_t buf[PROTO_HDR_SIZE + 8 + 48];
	struct proto_digest dg;

	mig_sum_digest(&d->sum, d->ss.vm->mem.size, &dg);
	dest_send(d, buf, proto_verify_encode(buf, sizeof(buf), &dg, 1));
}

/*
 * Loop thread: a stalled fault, the urgent thread's end or progress.
 * Requests queued while there is no urgent thread are dropped: complete,
 * failed, or paused (asked again from the fault service's pending list
 * once the urgent connection is back: dest_resume_requests).
 */
static void dest_on_async(uv_async_t *h)
{
	struct mig_dest *d = h->data;

	if (atomic_exchange(&d->stalled, false) && d->ss.hooks.progress)
		d->ss.hooks.progress(d->ss.hooks.opaque, mig_dest_stats(d));
	if (mig_session_urgent_ended(&d->ss)) {
		dest_urgent_stop(d);
		dest_fail(d, "urgent connection: %s", d->ss.u_why);
		return;
	}
	pthread_mutex_lock(&d->qlock);
	if (!d->urg_on)
		d->req_len = 0;
	pthread_mutex_unlock(&d->qlock);
	if (d->pc_end)
		dest_try_complete(d);
}

/*
 * One page, placed with UFFDIO_COPY / ZEROPAGE unless already there or
 * being placed by the other thread (loop or urgent thread).
 */
static int dest_place_one(struct mig_dest *d, uint64_t gpa, const void *data)
{
	struct fault_service *fs = &d->ss.vm->faults;
	uint64_t i;
	int r = 0;

	if (mem_gpa_to_page(&d->ss.vm->mem, gpa, &i))
		return -EFAULT;
	if (bitmap_test(&d->ss.vm->mem.state[MEM_PS_PRESENT], i) ||
	    bitmap_test_and_set(&d->claimed, i))
		return 0;
	if (!data)
		return fault_place_zero(fs, gpa);
	if (d->sum_on) {
		pthread_mutex_lock(&d->sum_lock);
		r = mig_sum_page(&d->sum, gpa, data) ? -EIO : 0;
		pthread_mutex_unlock(&d->sum_lock);
	}
	return r ? r : fault_place_page(fs, gpa, data);
}

static int dest_place_pc_run(struct mig_dest *d, const struct proto_run *run,
			     const uint8_t **data, struct dest_count *c,
			     char *err, size_t errlen)
{
	bool zero = run->flags & PROTO_RUN_ZERO;

	for (uint32_t k = 0; k < run->npages; k++) {
		uint64_t gpa = run->gpa + k * PAGE_SIZE;
		int r = dest_place_one(d, gpa, zero ? NULL : *data);

		if (r) {
			snprintf(err, errlen, "placing page 0x%llx: %s",
				 (unsigned long long)gpa,
				 r == -EFAULT ? "outside guest RAM"
					      : strerror(-r));
			return r;
		}
		if (!zero)
			*data += PAGE_SIZE;
	}
	if (zero)
		c->zero += run->npages;
	else
		c->normal += run->npages;
	return 0;
}

/* A PAGES frame in post-copy, into batch (either thread). */
static int dest_place_pc_pages(struct mig_dest *d, struct proto_batch *batch,
			       const uint8_t *p, size_t len,
			       struct dest_count *c, char *err, size_t errlen)
{
	const uint8_t *data;
	int r;

	if ((r = proto_pages_decode(p, len, batch, err, errlen)))
		return r;
	data = batch->data;
	for (int i = 0; !r && i < batch->nr_runs; i++)
		r = dest_place_pc_run(d, &batch->runs[i], &data, c, err,
				      errlen);
	return r;
}

/* PAGES in post-copy on the main connection (loop): the vCPUs run. */
static void dest_postcopy_pages(struct mig_dest *d, const uint8_t *p,
				size_t len)
{
	struct dest_count c = {0};
	char err[256];

	if (!d->go_done) {
		dest_fail(d, "PAGES before GO in post-copy");
		return;
	}
	if (dest_place_pc_pages(d, d->batch, p, len, &c, err, sizeof(err))) {
		dest_fail(d, "%s", err);
		return;
	}
	dest_count_add(d, c.normal, c.zero);
	dest_try_complete(d);
}

/*
 * After POSTCOPY_END every page the source had is placed or on its way in
 * answer to a request (a pending fetch). When none is pending, every page
 * not present is a hole on the source too: stop the fault service (blocked
 * or later accesses read the memfd's zeroes) and say COMPLETE.
 */
static void dest_try_complete(struct mig_dest *d)
{
	struct fault_stats *st;
	uint64_t pending;

	if (!d->pc_end || !dest_live(d))
		return;
	st = malloc(sizeof(*st));
	if (!st) {
		dest_fail(d, "out of memory");
		return;
	}
	fault_get_stats(&d->ss.vm->faults, st);
	pending = st->pending;
	free(st);
	if (pending)
		return;
	dest_urgent_stop(d);
	dest_faults_off(d);
	d->complete_sent = true;
	d->ss.st.time_elapsed_ms =
		(clock_now_ns() - d->ss.st.start_ns) / 1000000;
	if (d->sum_on)
		dest_send_sum(d);
	dest_send_empty(d, PROTO_COMPLETE);
}

static void dest_on_postcopy_end(struct mig_dest *d)
{
	if (!d->postcopy || !d->go_done || d->pc_end) {
		dest_fail(d, "POSTCOPY_END out of order");
		return;
	}
	d->pc_end = true;
	dest_try_complete(d);
}

/* STATE_END in post-copy: every RAM page is fetched on first touch. */
static int dest_postcopy_faults(struct mig_dest *d, char *err, size_t errlen)
{
	struct vm *vm = d->ss.vm;
	int r = bitmap_init(&d->claimed, vm->mem.nr_pages);

	if (r) {
		snprintf(err, errlen, "out of memory");
		return r;
	}
	r = fault_init(&vm->faults, &vm->mem, err, errlen);
	for (int i = 0; !r && i < vm->mem.nr_regions; i++) {
		struct fault_range fr = {
			.gpa = vm->mem.regions[i].gpa,
			.size = vm->mem.regions[i].size,
			.resolver = FAULT_FETCH,
		};

		r = fault_register(&vm->faults, &fr, err, errlen);
	}
	if (r)
		return r;
	fault_set_hooks(&vm->faults, dest_fetch, dest_stall, d,
			DEST_STALL_MS * 1000000ULL);
	r = fault_start(&vm->faults);
	if (r) {
		snprintf(err, errlen, "starting the fault thread: %s",
			 strerror(-r));
		return r;
	}
	d->faults_on = true;
	atomic_store(&vm->ram_incomplete, true);
	return 0;
}

/* ---- the urgent thread (urgent.h): it alone runs these --------------------
 */

static int dest_urgent_send_reqs(struct mig_dest *d, const uint64_t *gpa,
				 uint32_t n)
{
	uint8_t buf[PROTO_PAGE_REQ_MAX_FRAME];
	int len = proto_page_req_encode(buf, sizeof(buf), gpa, n);

	atomic_fetch_add(&d->u_requests, n);
	return len < 0 ? len : mig_urgent_send(&d->ss.urg, buf, len);
}

/* Every fault still waiting (after a resume), then the queue. */
static int dest_urgent_wake(void *opaque, char *err, size_t errlen)
{
	struct mig_dest *d = opaque;
	uint64_t gpa[PROTO_MAX_PAGE_REQ];
	uint32_t n;
	int r = 0;

	if (atomic_exchange(&d->u_resend, false)) {
		uint64_t *all = malloc(FAULT_MAX_PENDING * sizeof(*all));
		int k = all ? fault_pending_list(&d->ss.vm->faults, all,
						 FAULT_MAX_PENDING, NULL)
			    : -ENOMEM;

		for (int i = 0; i < k && !r; i += PROTO_MAX_PAGE_REQ)
			r = dest_urgent_send_reqs(d, all + i,
						  k - i < PROTO_MAX_PAGE_REQ
							  ? k - i
							  : PROTO_MAX_PAGE_REQ);
		free(all);
		if (k < 0)
			r = k;
	}
	while (!r && (n = dest_take_reqs(d, gpa)))
		r = dest_urgent_send_reqs(d, gpa, n);
	if (r)
		snprintf(err, errlen, "sending page requests: %s",
			 strerror(-r));
	return r;
}

static int dest_urgent_frame(void *opaque, const struct proto_hdr *h,
			     const uint8_t *p, char *err, size_t errlen)
{
	struct mig_dest *d = opaque;
	struct dest_count c = {0};
	int r;

	if (h->type != PROTO_PAGES) {
		snprintf(err, errlen, "unexpected %s on the urgent connection",
			 proto_type_name(h->type));
		return -EPROTO;
	}
	r = dest_place_pc_pages(d, d->ubatch, p, h->len, &c, err, errlen);
	atomic_fetch_add(&d->u_normal, c.normal);
	atomic_fetch_add(&d->u_zero, c.zero);
	/*
	 * After POSTCOPY_END the last answers may complete the migration: let
	 * the loop look. (Placing decrements the pending count under the
	 * fault service's lock before pc_end is read; the loop sets pc_end
	 * before it reads that count: one of the two sees the other.)
	 */
	if (!r && atomic_load(&d->pc_end))
		uv_async_send(&d->ss.async);
	return r;
}

static void dest_urgent_end(void *opaque, int code, const char *why, bool own)
{
	struct mig_dest *d = opaque;

	(void)code;
	(void)own; /* every end is "urgent connection: ..." here */
	mig_session_urgent_end(&d->ss, why, own);
}

static const struct mig_urgent_ops dest_urgent_thread_ops = {
	.on_frame = dest_urgent_frame,
	.on_wake = dest_urgent_wake,
	.on_end = dest_urgent_end,
};

/* Loop thread: the urgent socket goes to its own thread. */
static int dest_urgent_handover(struct mig_dest *d, char *err, size_t errlen)
{
	uint8_t *left = NULL;
	size_t len = 0;
	int fd = -1;
	int r = mig_channel_detach(&d->ss.uch, &fd, &left, &len);

	if (r) {
		snprintf(err, errlen, "%s", uv_strerror(r));
		return r;
	}
	r = mig_urgent_start(&d->ss.urg, fd, mig_channel_tls(&d->ss.uch), left,
			     len, NULL, 0, d->ss.uch.peer,
			     &dest_urgent_thread_ops, d, err, errlen);
	free(left);
	if (r)
		return r;
	pthread_mutex_lock(&d->qlock);
	d->urg_on = true;
	pthread_mutex_unlock(&d->qlock);
	return 0;
}

/* ---- the urgent connection (loop thread) ----------------------------------
 */

static void dest_urgent_hello(struct mig_dest *d, const uint8_t *p, size_t len)
{
	uint8_t proof[PROTO_PROOF_LEN];
	char err[256];
	bool has;

	if (proto_cookie_proof_decode(p, len, PROTO_URGENT_HELLO,
				      &d->urgent_cookie, proof, &has, err,
				      sizeof(err))) {
		dest_fail(d, "urgent connection: %s", err);
		return;
	}
	if (d->ss.tls &&
	    (!has || !mig_session_tls_check(&d->ss, &d->ss.uch, MIG_TLS_URGENT,
					    proof))) {
		dest_fail(d, "urgent connection: its TLS session is not bound "
			     "to the main connection's peers (wrong proof)");
		return;
	}
	d->urgent_seen = true;
	dest_check_urgent(d); /* or when POSTCOPY arrives */
}

static void dest_urgent_on_frame(struct mig_channel *ch,
				 const struct proto_hdr *h, const uint8_t *p)
{
	struct mig_dest *d = ch->opaque;

	if (d->ss.ended && !dest_live(d))
		return;
	if (!d->urgent_seen) {
		if (h->type == PROTO_URGENT_HELLO)
			dest_urgent_hello(d, p, h->len);
		else
			dest_fail(d, "urgent connection began with %s",
				  proto_type_name(h->type));
		return;
	}
	/* After URGENT_HELLO the socket is the urgent thread's. */
	dest_fail(d, "unexpected %s on the urgent connection",
		  proto_type_name(h->type));
}

static void dest_urgent_on_error(struct mig_channel *ch, int e, const char *why)
{
	struct mig_dest *d = ch->opaque;

	(void)e;
	if (d->ss.ended && !dest_live(d)) {
		mig_channel_close(ch, NULL);
		return;
	}
	dest_fail(d, "urgent connection: %s", why);
}

static void dest_urgent_on_connect(struct mig_channel *ch)
{
	(void)ch; /* its first frame must be URGENT_HELLO */
}

static const struct mig_channel_ops dest_urgent_ops = {
	.on_frame = dest_urgent_on_frame,
	.on_error = dest_urgent_on_error,
	.on_connect = dest_urgent_on_connect,
};

static const struct mig_channel_ops dest_channel_ops;
static void dest_on_resume(struct mig_dest *d, const struct proto_hdr *h,
			   const uint8_t *p);

static void dest_on_frame(struct mig_channel *ch, const struct proto_hdr *h,
			  const uint8_t *p)
{
	struct mig_dest *d = ch->opaque;
	char reason[1100], err[256];
	int code;

	if (d->ss.ended && !dest_live(d))
		return;
	if (d->ss.st.state == MIG_POSTCOPY_PAUSED) {
		dest_on_resume(d, h, p);
		return;
	}
	if (mig_state_check_frame(MIG_SIDE_DEST, d->ss.st.state, h->type, err,
				  sizeof(err))) {
		dest_fail(d, "%s", err);
		return;
	}
	if (h->type != PROTO_HELLO && !d->hello_done) {
		dest_fail(d, "%s before HELLO", proto_type_name(h->type));
		return;
	}
	switch (h->type) {
	case PROTO_HELLO:
		if (d->hello_done)
			dest_fail(d, "HELLO twice");
		else
			dest_on_hello(d, p, h->len);
		break;
	case PROTO_PAGES:
		dest_on_pages(d, p, h->len);
		break;
	case PROTO_RAM_END:
		d->ram_end = true;
		break;
	case PROTO_SYNC:
		/* Every frame before it is processed: echo it. */
		if (d->ram_end)
			dest_fail(d, "SYNC after RAM_END");
		else
			dest_send_empty(d, PROTO_SYNC);
		break;
	case PROTO_STATE:
		dest_on_state(d, p, h->len);
		break;
	case PROTO_STATE_END:
		dest_on_state_end(d);
		break;
	case PROTO_VERIFY:
		dest_on_verify(d, p, h->len);
		break;
	case PROTO_GO:
		dest_on_go(d);
		break;
	case PROTO_DISCARD:
		dest_on_discard(d, p, h->len);
		break;
	case PROTO_POSTCOPY:
		dest_on_postcopy(d, p, h->len);
		break;
	case PROTO_POSTCOPY_END:
		dest_on_postcopy_end(d);
		break;
	case PROTO_ERROR:
		if (proto_error_decode(p, h->len, &code, reason, sizeof(reason),
				       err, sizeof(err)))
			snprintf(reason, sizeof(reason), "(%s)", err);
		dest_fail(d, "the source gave up: %s", reason);
		break;
	default:
		dest_fail(d, "unexpected %s from the source",
			  proto_type_name(h->type));
	}
}

static void dest_on_error(struct mig_channel *ch, int e, const char *why)
{
	struct mig_dest *d = ch->opaque;

	(void)e;
	if (d->ss.ended && !dest_live(d)) {
		/* Running: the source closing the connection is the end. */
		mig_channel_close(&d->ss.ch, NULL);
		return;
	}
	dest_fail(d, "%s", why);
}

static void dest_on_connect(struct mig_channel *ch)
{
	struct mig_dest *d = ch->opaque;

	if (mig_session_tls_main(&d->ss)) {
		dest_fail(d, "%s: TLS: no channel binding", ch->peer);
		return;
	}
	if (d->ss.st.tls)
		fprintf(stderr, "migration: TLS from %s, %s\n",
			d->ss.st.tls_peer, d->ss.st.tls_cipher);

	if (d->go_done)
		return; /* a resume: its first frame must be RESUME */
	dest_set_state(d, MIG_RECEIVING);
	d->ss.st.start_ns = clock_now_ns();
}

static const struct mig_channel_ops dest_channel_ops = {
	.on_frame = dest_on_frame,
	.on_error = dest_on_error,
	.on_connect = dest_on_connect,
};

/* ---- post-copy recovery (loop thread) ---------------------------------------
 */

/* Pages resident here; the others never arrived (or are holes there too). */
static int dest_resident(struct mig_dest *d, struct bitmap *have)
{
	int r = bitmap_init(have, d->ss.vm->mem.nr_pages);

	if (!r)
		r = mem_resident(&d->ss.vm->mem, have);
	return r;
}

static uint64_t dest_missing_pages(struct mig_dest *d)
{
	struct bitmap have = {0};
	uint64_t n = 0;

	if (!dest_resident(d, &have))
		n = have.nbits - bitmap_count(&have);
	bitmap_free(&have);
	return n;
}

static void dest_pc_relisten(struct mig_dest *d)
{
	char err[256];
	int r;

	if (d->pc_failed || d->complete_sent)
		return;
	memset(&d->ss.uch, 0, sizeof(d->ss.uch));
	r = mig_channel_listen(&d->ss.ch, d->ss.loop, d->spec,
			       &dest_channel_ops, d, err, sizeof(err));
	mig_channel_use_tls(&d->ss.ch, d->ss.tls, NULL);
	if (r)
		snprintf(d->ss.st.error, sizeof(d->ss.st.error),
			 "post-copy paused, and cannot listen for the resume: "
			 "%s",
			 err);
}

static void dest_pc_closed(struct mig_channel *ch)
{
	struct mig_dest *d = ch->opaque;

	if (--d->pc_closing == 0)
		dest_pc_relisten(d);
}

static void dest_pc_close(struct mig_dest *d, struct mig_channel *ch)
{
	if (!ch->loop)
		return;
	if (!ch->closed) {
		d->pc_closing++;
		mig_channel_close_after_flush(ch, dest_pc_closed);
	} else if (ch->pending_closes) {
		d->pc_closing++;
		ch->on_closed = dest_pc_closed;
	}
}

/* Close both connections, then listen again for a RESUME. */
static void dest_pc_reopen(struct mig_dest *d)
{
	dest_urgent_stop(d);
	d->pc_closing = 1; /* held while both are looked at */
	dest_pc_close(d, &d->ss.ch);
	dest_pc_close(d, &d->ss.uch);
	dest_pc_closed(&d->ss.ch);
}

/*
 * A connection broke (or carried something wrong) after GO in post-copy:
 * keep running - a vCPU touching a missing page waits - close both
 * connections and listen on our address again for the source's RESUME.
 */
static void dest_pc_break(struct mig_dest *d)
{
	size_t n = strlen(d->ss.st.error);

	if (d->ss.st.state == MIG_POSTCOPY_PAUSED)
		return;
	snprintf(d->ss.st.error + n, sizeof(d->ss.st.error) - n,
		 "; the VM runs here, faults on missing pages wait for the "
		 "source's migrate --resume");
	if (!dest_set_state(d, MIG_POSTCOPY_PAUSED))
		return;
	d->ss.st.postcopy_breaks++;
	d->urgent_ok = d->urgent_seen = false;
	d->pc_end = false;
	dest_pc_reopen(d);
	if (d->ss.hooks.progress)
		d->ss.hooks.progress(d->ss.hooks.opaque, mig_dest_stats(d));
}

/* The pages we lack, as DISCARD runs, then RESUME_ACK. */
static int dest_send_lacking(struct mig_dest *d)
{
	struct proto_run *runs = malloc(PROTO_MAX_DISCARD_RUNS * sizeof(*runs));
	uint8_t *f = malloc(PROTO_DISCARD_MAX_FRAME);
	uint8_t buf[PROTO_POSTCOPY_FRAME];
	struct bitmap have = {0};
	uint64_t pos = 0, total = 0;
	uint32_t nr;
	int r = runs && f ? dest_resident(d, &have) : -ENOMEM;

	while (!r && (nr = mig_ram_runs(&d->ss.vm->mem, &have, false, &pos,
					runs, PROTO_MAX_DISCARD_RUNS))) {
		int n = proto_discard_encode(f, PROTO_DISCARD_MAX_FRAME, runs,
					     nr);

		if (n < 0)
			r = n;
		else
			dest_send(d, f, n);
		total += nr;
	}
	if (!r)
		dest_send(d, buf,
			  proto_resume_ack_encode(buf, sizeof(buf),
						  d->ss.cookie, total));
	bitmap_free(&have);
	free(runs);
	free(f);
	return r;
}

/* RESUME: the first frame of a new main connection while paused. */
static void dest_on_resume(struct mig_dest *d, const struct proto_hdr *h,
			   const uint8_t *p)
{
	uint8_t proof[PROTO_PROOF_LEN];
	uint64_t cookie = 0;
	char err[256];
	bool has = false;
	int r;

	if (!mig_state_frame_ok(MIG_SIDE_DEST, d->ss.st.state, h->type) ||
	    proto_cookie_proof_decode(p, h->len, PROTO_RESUME, &cookie, proof,
				      &has, err, sizeof(err)) ||
	    cookie != d->ss.cookie ||
	    (d->ss.tls &&
	     (!has || !mig_session_tls_check(&d->ss, &d->ss.ch, MIG_TLS_RECOVER,
					     proof)))) {
		/* Not our source: refuse it, keep waiting for ours. */
		uint8_t buf[PROTO_HDR_SIZE + 64];

		dest_send(d, buf,
			  proto_error_encode(buf, sizeof(buf), EPROTO,
					     "not the paused post-copy "
					     "migration"));
		dest_pc_reopen(d);
		return;
	}
	r = mig_channel_listen_next(&d->ss.ch, &d->ss.uch, &dest_urgent_ops, d);
	if (!r)
		r = dest_send_lacking(d);
	if (r) {
		snprintf(d->ss.st.error, sizeof(d->ss.st.error),
			 "resuming post-copy: %s", strerror(r < 0 ? -r : r));
		dest_set_state(d, MIG_RUNNING);
		dest_pc_break(d);
		return;
	}
	d->ss.uch.idle_ok = true;
	d->ss.st.error[0] = '\0';
	dest_set_state(d, MIG_RUNNING);
	if (d->ss.hooks.progress)
		d->ss.hooks.progress(d->ss.hooks.opaque, mig_dest_stats(d));
}

/* The urgent connection is back: ask again for every waiting fault. */
static void dest_resume_requests(struct mig_dest *d)
{
	atomic_store(&d->u_resend, true);
	mig_urgent_wake(&d->ss.urg);
}

int mig_dest_start(struct mig_dest **out, struct vm *vm, uv_loop_t *loop,
		   const struct mig_dest_params *dp,
		   const struct mig_hooks *hooks, char *err, size_t errlen)
{
	const char *spec = dp->spec;
	struct mig_dest *d = calloc(1, sizeof(*d));
	int r;

	if (!d)
		return -ENOMEM;
	snprintf(d->spec, sizeof(d->spec), "%s", spec);
	d->batch = malloc(sizeof(*d->batch));
	d->ubatch = malloc(sizeof(*d->ubatch));
	if (!d->batch || !d->ubatch) {
		free(d->batch);
		free(d->ubatch);
		free(d);
		return -ENOMEM;
	}
	pthread_mutex_init(&d->qlock, NULL);
	pthread_mutex_init(&d->sum_lock, NULL);
	r = mig_session_init(&d->ss, vm, loop, hooks, MIG_LISTENING,
			     dest_on_async, d, err, errlen);
	if (!r)
		r = mig_tls_open(&d->ss.tls, spec, dp->tls_dir, TLS_SERVER,
				 dp->tls_authz, dp->insecure, err, errlen);
	if (!r)
		r = mig_channel_listen(&d->ss.ch, loop, spec, &dest_channel_ops,
				       d, err, errlen);
	mig_channel_use_tls(&d->ss.ch, d->ss.tls, NULL);
	if (r) {
		mig_dest_free(d);
		return r;
	}
	*out = d;
	return 0;
}

static void dest_release(struct mig_session *ss)
{
	struct mig_dest *d = (struct mig_dest *)ss;

	for (int i = 0; i < GUEST_MAX_CPUS; i++)
		free(d->vcpu[i].data);
	for (int i = 0; i < PROTO_MAX_DEVICES; i++)
		free(d->dev[i].data);
	free(d->vmstate.data);
	free(d->batch);
	free(d->ubatch);
	free(d->discard);
	bitmap_free(&d->claimed);
	mig_sum_free(&d->sum);
	pthread_mutex_destroy(&d->qlock);
	pthread_mutex_destroy(&d->sum_lock);
	free(d);
}

void mig_dest_free(struct mig_dest *d)
{
	if (!d)
		return;
	/* The fault thread calls dest_fetch(d): stop it first. */
	dest_urgent_stop(d);
	dest_faults_off(d);
	mig_session_free(&d->ss, NULL, dest_release);
}

int mig_dest_abort(struct mig_dest *d)
{
	uint64_t missing;

	if (!dest_live(d))
		return -EALREADY;
	dest_fault_stats(d);
	missing = dest_missing_pages(d);
	snprintf(
		d->ss.st.error, sizeof(d->ss.st.error),
		"post-copy aborted by the user: %llu pages (%llu MiB) of guest "
		"RAM had not arrived (%llu faults waiting); the VM cannot run "
		"without them and stops",
		(unsigned long long)missing,
		(unsigned long long)(missing * PAGE_SIZE >> 20),
		(unsigned long long)d->ss.st.faults_waiting);
	dest_postcopy_failed(d);
	return 0;
}
