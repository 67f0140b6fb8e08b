/* SPDX-License-Identifier: MIT */
/*
 * dest_postcopy.c - the destination in post-copy (dest.h): guest RAM
 * registered with the fault service (FAULT_FETCH); a missing page a vCPU
 * touches is queued by dest_fetch (the fault thread) and requested by the
 * urgent thread (PAGE_REQ), whose answers it places with UFFDIO_COPY, as
 * the loop places the pages pushed on the main connection; after
 * POSTCOPY_END and once no fetch is outstanding, the fault service stops
 * (pages never sent are holes, zero on both sides) and COMPLETE goes.
 *
 * Threads: dest_fetch and dest_stall run on the fault thread and only
 * queue (req, under qlock) or set an atomic and wake the loop; the
 * dest_urgent_* callbacks at the end run on the urgent thread; the rest
 * on the event loop. A page is placed by whoever sets its bit in claimed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/page.h"
#include "migration/dest.h"
#include "vmm/vm.h"

/* After GO in post-copy and before COMPLETE: pages still arrive. */
bool dest_live(const struct mig_dest *d)
{
	return d->postcopy && d->go_done && !d->complete_sent && !d->pc_failed;
}

/* The fault service's view of post-copy, into st. */
void dest_fault_stats(struct mig_dest *d)
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

/* Pages placed in post-copy, into st. */
static void dest_count_add(struct mig_dest *d, uint64_t normal, uint64_t zero)
{
	d->ss.st.memory_normal += normal;
	d->ss.st.memory_constant += zero;
	d->ss.st.memory_processed += (normal + zero) * PAGE_SIZE;
}

/* Take the urgent thread's counts into st. */
void dest_fold_urgent(struct mig_dest *d)
{
	dest_count_add(d, atomic_exchange(&d->u_normal, 0),
		       atomic_exchange(&d->u_zero, 0));
	d->ss.st.memory_postcopy_requests += atomic_exchange(&d->u_requests, 0);
}

/* No more urgent thread (dest_fetch will not wake it). */
void dest_urgent_stop(struct mig_dest *d)
{
	pthread_mutex_lock(&d->qlock);
	d->urg_on = false;
	pthread_mutex_unlock(&d->qlock);
	mig_urgent_stop(&d->ss.urg);
	dest_fold_urgent(d);
}

void dest_drop_requests(struct mig_dest *d)
{
	pthread_mutex_lock(&d->qlock);
	if (!d->urg_on)
		d->req_len = 0;
	pthread_mutex_unlock(&d->qlock);
}

/* Every page is here (or the migration is over): stop demand paging. */
void dest_faults_off(struct mig_dest *d)
{
	if (d->faults_on)
		fault_stop(&d->ss.vm->faults);
	d->faults_on = false;
	atomic_store(&d->ss.vm->ram_incomplete, false);
}

/*
 * --verify in post-copy: sum what we hold at the switch (pre-copy pages the
 * discard set left alone) before any vCPU runs or any fault is registered;
 * placed pages are added as they come (dest_place_one).
 */
int dest_pc_sum(struct mig_dest *d, char *err, size_t errlen)
{
	int r;

	if (!(d->ss.caps & PROTO_CAP_VERIFY))
		return 0;
	r = mig_sum_init(&d->sum, mig_sum_algo_of(d->ss.caps));
	d->sum_on = !r;
	/*
	 * What pre-copy placed and the discard set left alone is summed
	 * already, page by page (dest_recv.c): nothing to hash in the
	 * downtime.
	 */
	if (!r)
		memcpy(d->sum.lane, d->placed.sum.lane, sizeof(d->sum.lane));
	if (r)
		snprintf(err, errlen, "hashing guest RAM: %s", strerror(-r));
	return r;
}

/*
 * The fetch hook: runs ON THE FAULT THREAD and must not block. Queue the
 * gpa and wake the urgent thread (or the loop, which drops it while there
 * is none); a full queue fails the fetch, which the fault service retries
 * later.
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

/* STATE_END in post-copy: every RAM page is fetched on first touch. */
int dest_pc_faults_on(struct mig_dest *d, char *err, size_t errlen)
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
	atomic_store(&d->placing, true);
	return 0;
}

/* ---- placement (loop or urgent thread) ----------------------------------- */

/*
 * Is the page at gpa this thread's to place (1: claimed, and with --verify
 * summed), or already there or being placed by the other thread (loop or
 * urgent thread: 0)? -EFAULT outside RAM, -EIO when the sum fails.
 */
static int dest_claim_one(struct mig_dest *d, uint64_t gpa, const void *data)
{
	uint64_t i;
	int r = 0;

	if (mem_gpa_to_page(&d->ss.vm->mem, gpa, &i))
		return -EFAULT;
	if (bitmap_test(&d->ss.vm->mem.state[MEM_PS_PRESENT], i) ||
	    bitmap_test_and_set(&d->claimed, i))
		return 0;
	if (data && d->sum_on) {
		pthread_mutex_lock(&d->sum_lock);
		r = mig_sum_page(&d->sum, gpa, data) ? -EIO : 0;
		pthread_mutex_unlock(&d->sum_lock);
	}
	return r ? r : 1;
}

static int dest_place_fail(uint64_t gpa, int r, char *err, size_t errlen)
{
	snprintf(err, errlen, "placing page 0x%llx: %s",
		 (unsigned long long)gpa,
		 r == -EFAULT ? "outside guest RAM" : strerror(-r));
	return r;
}

/*
 * A run's pages, the claimed ones placed in stretches of consecutive pages
 * with one UFFDIO_COPY / ZEROPAGE each (fault_place_pages): one ioctl per
 * page cost ~2.5 us of this thread per page here.
 */
static int dest_place_pc_run(struct mig_dest *d, const struct proto_run *run,
			     const uint8_t **data, struct dest_count *c,
			     char *err, size_t errlen)
{
	struct fault_service *fs = &d->ss.vm->faults;
	bool zero = run->flags & PROTO_RUN_ZERO;
	uint32_t from = 0, n = 0; /* the stretch claimed, not yet placed */

	for (uint32_t k = 0; k <= run->npages; k++) {
		uint64_t gpa = run->gpa + (uint64_t)k * PAGE_SIZE;
		const uint8_t *p = zero ? NULL : *data + (size_t)k * PAGE_SIZE;
		int r = k < run->npages ? dest_claim_one(d, gpa, p) : 0;

		if (r < 0)
			return dest_place_fail(gpa, r, err, errlen);
		if (r > 0 && !n++)
			from = k;
		if (r > 0 || !n)
			continue;
		/* The stretch ends at this page: place it. */
		gpa = run->gpa + (uint64_t)from * PAGE_SIZE;
		r = fault_place_pages(
			fs, gpa, zero ? NULL : *data + (size_t)from * PAGE_SIZE,
			n);
		if (r)
			return dest_place_fail(gpa, r, err, errlen);
		n = 0;
	}
	if (!zero)
		*data += (size_t)run->npages * PAGE_SIZE;
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
	data = batch->raw;
	for (int i = 0; !r && i < batch->nr_runs; i++)
		r = dest_place_pc_run(d, &batch->runs[i], &data, c, err,
				      errlen);
	return r;
}

/* PAGES in post-copy on the main connection: the vCPUs run. */
int dest_pc_pages(struct mig_dest *d, const uint8_t *p, size_t len, char *err,
		  size_t errlen)
{
	struct dest_count c = {0};
	int r;

	if (!d->go_done) {
		snprintf(err, errlen, "PAGES before GO in post-copy");
		return -EPROTO;
	}
	r = dest_place_pc_pages(d, d->batch, p, len, &c, err, errlen);
	if (!r)
		dest_count_add(d, c.normal, c.zero);
	return r;
}

/* ---- completion ---------------------------------------------------------- */

/* --verify: our sum, before COMPLETE (the source compares it). */
static int dest_send_sum(struct mig_dest *d, char *err, size_t errlen)
{
	uint8_t buf[PROTO_HDR_SIZE + 8 + 48];
	struct proto_digest dg;

	mig_sum_digest(&d->sum, d->ss.vm->mem.size, &dg);
	return dest_reply(d, buf, proto_verify_encode(buf, sizeof(buf), &dg, 1),
			  err, errlen);
}

/*
 * After POSTCOPY_END every page the source had is placed or on its way in
 * answer to a request (a pending fetch). When none is pending, every page
 * not present is a hole on the source too: stop the fault service (blocked
 * or later accesses read the memfd's zeroes) and say COMPLETE.
 */
int dest_pc_try_complete(struct mig_dest *d, char *err, size_t errlen)
{
	struct fault_stats *st;
	uint64_t pending;
	int r = 0;

	if (!d->pc_end || !dest_live(d))
		return 0;
	st = malloc(sizeof(*st));
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	fault_get_stats(&d->ss.vm->faults, st);
	pending = st->pending;
	free(st);
	if (pending)
		return 0;
	dest_urgent_stop(d);
	dest_faults_off(d);
	d->complete_sent = true;
	mig_session_elapsed(&d->ss);
	if (d->sum_on)
		r = dest_send_sum(d, err, errlen);
	return r ? r : dest_reply_empty(d, PROTO_COMPLETE, err, errlen);
}

/* ---- the urgent thread (urgent.h): it alone runs these ------------------- */

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

	if (!mig_urgent_frame_ok(MIG_SIDE_DEST, h->type)) {
		snprintf(err, errlen, "unexpected %s on the urgent connection",
			 proto_type_name(h->type));
		return -EPROTO;
	}
	/* The urgent connection may come before the state: nothing to fill. */
	if (!atomic_load(&d->placing)) {
		snprintf(err, errlen,
			 "PAGES on the urgent connection before the state is "
			 "complete");
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

static const struct mig_urgent_ops dest_urgent_thread_ops = {
	.on_frame = dest_urgent_frame,
	.on_wake = dest_urgent_wake,
	.on_end = mig_session_urgent_on_end,
};

/* ---- the urgent connection, loop side ------------------------------------ */

/* The urgent socket goes to its own thread. */
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

/*
 * URGENT_HELLO, the urgent connection's first frame: the cookie it shows,
 * and over TLS the proof that its session is bound to the main one's.
 */
int dest_urgent_hello(struct mig_dest *d, const uint8_t *p, size_t len,
		      char *err, size_t errlen)
{
	uint8_t proof[PROTO_PROOF_LEN];
	bool has;
	int r = proto_cookie_proof_decode(p, len, PROTO_URGENT_HELLO,
					  &d->urgent_cookie, proof, &has, err,
					  errlen);

	if (r)
		return r;
	if (d->ss.tls &&
	    (!has || !mig_session_tls_check(&d->ss, &d->ss.uch, MIG_TLS_URGENT,
					    proof))) {
		snprintf(err, errlen,
			 "its TLS session is not bound to the main "
			 "connection's peers (wrong proof)");
		return -EPERM;
	}
	d->urgent_seen = true;
	return 0;
}

/*
 * Both POSTCOPY and URGENT_HELLO came: the urgent connection proved it
 * belongs to this migration; hand it to its thread. 1 when done, 0 when
 * one of the two is still to come, or -errno with err.
 */
int dest_urgent_check(struct mig_dest *d, char *err, size_t errlen)
{
	char why[256];
	int r;

	if (!d->postcopy || !d->urgent_seen)
		return 0;
	if (d->urgent_cookie != d->ss.cookie) {
		snprintf(err, errlen, "urgent connection: wrong cookie");
		return -EPERM;
	}
	d->urgent_ok = true;
	r = dest_urgent_handover(d, why, sizeof(why));
	if (r) {
		snprintf(err, errlen, "urgent connection: %s", why);
		return r;
	}
	return 1;
}

/* The urgent connection is back: ask again for every waiting fault. */
void dest_resume_requests(struct mig_dest *d)
{
	atomic_store(&d->u_resend, true);
	mig_urgent_wake(&d->ss.urg);
}
