/* SPDX-License-Identifier: MIT */
/*
 * src_postcopy.c - the source after the switch to post-copy: the push of
 * every page the destination may lack (in the order of push.h), the
 * urgent thread's answers to its page requests, and recovery after a
 * break (the pages it still lacks, pushed again).
 *
 * Threads: the src_urgent_* functions below the marker run on the urgent
 * thread (urgent.h) alone; they touch ubatch, ubuf, the u_* atomics, the
 * atomic SENT bits and the push's hint ring, and read the paused RAM.
 * Everything else runs on the loop thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/page.h"
#include "ept/ram_io.h"
#include "migration/source.h"
#include "migration/states.h"
#include "vmm/vm.h"

/*
 * Pure post-copy: is page i resident (the VM is paused: it stays so)? A
 * chunk that cannot be scanned counts as resident: its holes are then
 * sent as zero pages, which is only a few bytes more.
 */
static bool src_push_resident(struct mig_source *s, uint64_t i)
{
	uint64_t first = i / MEM_SCAN_PAGES * MEM_SCAN_PAGES;
	uint64_t n = s->resident.nbits - first < MEM_SCAN_PAGES
			     ? s->resident.nbits - first
			     : MEM_SCAN_PAGES;

	if (!s->lazy_resident)
		return true;
	if (!bitmap_test_and_set(&s->scanned, i / MEM_SCAN_PAGES) &&
	    mem_resident_range(&s->ss.vm->mem, first, n, &s->resident))
		bitmap_set_range(&s->resident, first, n);
	return bitmap_test(&s->resident, i);
}

/* One short batch of the push, in the push order (push.h). */
bool src_fill_push(struct mig_source *s)
{
	struct bitmap *sent = &s->ss.vm->mem.state[MEM_PS_SENT];
	uint64_t i;

	while (s->batch->nr_pages < SRC_PC_BATCH &&
	       mig_push_next(&s->push, &s->todo, &i)) {
		/* A page answered on the urgent path is not pushed. */
		if (!src_push_resident(s, i) || bitmap_test_and_set(sent, i))
			continue;
		src_add_page(s, i);
		s->ss.st.postcopy_pushed++;
	}
	return s->batch->nr_pages > 0;
}

/*
 * The destination runs: push every page it lacks. Short pump runs (the
 * requests are read between them); the vCPUs' resume pages go first
 * (push.h), and a failure to find them only loses that.
 */
void src_postcopy_push_start(struct mig_source *s)
{
	int r;

	s->ss.ch.high = SRC_PC_HIGH;
	mig_push_rewind(&s->push);
	src_start_round(s);
	r = mig_push_resume(&s->push, s->ss.vm);
	s->ss.st.push_walk_err = r < 0 ? -r : 0;
}

static void src_walk_wake(void *opaque)
{
	struct mig_source *s = opaque;

	uv_async_send(&s->ss.async); /* the walk thread: src_on_async */
}

/*
 * The accessed pages come first in the push (push.h): walk the paused
 * VM's page tables now, after the downtime, on a thread of the walk's own
 * (push.c) so that the loop goes on pushing and answering; the urgent
 * thread already answers faults. A failed walk only loses the preference:
 * the push goes on in fault and guest-physical order.
 */
void src_push_walk(struct mig_source *s)
{
	int r = mig_push_walk_start(&s->push, s->ss.vm, src_walk_wake, s);

	if (r < 0)
		s->ss.st.push_walk_err = -r;
}

/* Loop, woken by the walk thread: take its marks and its report. */
void src_push_walk_end(struct mig_source *s)
{
	const struct mig_push_walker *wk = &s->push.wk;
	struct mig_stats *st = &s->ss.st;
	int64_t r = mig_push_walk_end(&s->push);

	st->push_walk_us = wk->rep.ns / 1000;
	st->push_walk_wall_us = wk->wall_ns / 1000;
	st->push_walk_tables = wk->rep.tables;
	st->push_walk_revisits = wk->rep.revisits;
	st->push_walk_cycles = wk->rep.cycles;
	st->push_walk_leaves = wk->rep.leaves;
	st->push_walk_stop = (int)wk->rep.stop;
	if (r < 0)
		st->push_walk_err = (int)-r;
	src_pump(s); /* the marked pages may go now */
}

/* ---- the urgent thread (urgent.h): it alone runs these ------------------ */

static int src_send_urgent(struct mig_source *s)
{
	int n;

	if (!s->ubatch->nr_pages)
		return 0;
	/* Raw: latency matters more than bytes here. */
	n = proto_pages_encode(s->ubuf, s->frame_cap, s->ubatch, 0);
	proto_batch_init(s->ubatch);
	return n < 0 ? n : mig_urgent_send(&s->ss.urg, s->ubuf, n);
}

/*
 * One page into the answer; a hole here is sent as a zero page, untouched.
 * The VM is paused: residency and contents cannot change under us.
 */
static int src_urgent_page(struct mig_source *s, uint64_t gpa)
{
	struct guest_mem *mem = &s->ss.vm->mem;
	const void *hva = NULL;

	if (mem_page_resident(mem, gpa))
		hva = mem_gpa_to_hva(mem, gpa, PAGE_SIZE);
	if (hva && proto_page_is_zero(hva))
		hva = NULL;
	proto_batch_add(s->ubatch, gpa, hva);
	atomic_fetch_add(hva ? &s->u_normal : &s->u_zero, 1);
	return proto_batch_full(s->ubatch) ? src_send_urgent(s) : 0;
}

/*
 * The pages after requested page i that the destination still lacks (in
 * pushset, not sent yet), up to SRC_URGENT_AHEAD, in the same answer: a
 * guest that touches a page often touches the next ones next (a stack
 * growing into them, an array, code), and each would otherwise be a fault
 * and a round trip of its own, or wait for the push behind a queue. The
 * SENT bit is atomic, shared with the loop's push: a page goes by one path
 * only. pushset does not change while this thread runs.
 */
static int src_add_ahead(struct mig_source *s, uint64_t i)
{
	struct guest_mem *mem = &s->ss.vm->mem;
	int r = 0;

	for (uint64_t j = i + 1;
	     !r && j <= i + SRC_URGENT_AHEAD && j < s->pushset.nbits; j++) {
		if (!bitmap_test(&s->pushset, j) ||
		    bitmap_test_and_set(&mem->state[MEM_PS_SENT], j))
			continue;
		atomic_fetch_add(&s->u_unpushed, 1);
		atomic_fetch_add(&s->u_ahead, 1);
		r = src_urgent_page(s, mem_page_to_gpa(mem, j));
	}
	return r;
}

/*
 * One requested page, last in the answer after the pages that follow it:
 * the destination places a frame in order and its vCPU wakes when the
 * requested page is in, so the ones after it are there by then.
 */
static int src_add_urgent(struct mig_source *s, uint64_t gpa)
{
	struct guest_mem *mem = &s->ss.vm->mem;
	uint64_t i;
	int r;

	if (mem_gpa_to_page(mem, gpa, &i))
		return -EFAULT;
	if (!bitmap_test_and_set(&mem->state[MEM_PS_SENT], i) &&
	    bitmap_test(&s->pushset, i))
		atomic_fetch_add(&s->u_unpushed, 1);
	mig_push_hint(&s->push, i);
	atomic_fetch_add(&s->u_req, 1);
	r = src_add_ahead(s, i);
	return r ? r : src_urgent_page(s, gpa);
}

static int src_on_page_req(struct mig_source *s, const uint8_t *p, size_t len,
			   char *err, size_t errlen)
{
	uint64_t gpa[PROTO_MAX_PAGE_REQ];
	char why[256];
	uint32_t nr;
	int r = 0;

	if (proto_page_req_decode(p, len, gpa, &nr, why, sizeof(why))) {
		snprintf(err, errlen, "urgent connection: %s", why);
		return -EPROTO;
	}
	proto_batch_init(s->ubatch);
	for (uint32_t i = 0; !r && i < nr; i++)
		r = src_add_urgent(s, gpa[i]);
	if (!r)
		r = src_send_urgent(s);
	if (r)
		snprintf(err, errlen, "answering a page request: %s",
			 r == -EFAULT ? "page outside guest RAM"
				      : strerror(-r));
	return r;
}

static int src_urgent_frame(void *opaque, const struct proto_hdr *h,
			    const uint8_t *p, char *err, size_t errlen)
{
	struct mig_source *s = opaque;
	char reason[400];

	if (!mig_urgent_frame_ok(MIG_SIDE_SOURCE, h->type)) {
		snprintf(err, errlen, "unexpected %s on the urgent connection",
			 proto_type_name(h->type));
		return -EPROTO;
	}
	if (h->type == PROTO_PAGE_REQ)
		return src_on_page_req(s, p, h->len, err, errlen);
	mig_session_error_reason(p, h->len, reason, sizeof(reason));
	snprintf(err, errlen, "destination refused: %s", reason);
	return -EPROTO;
}

/*
 * Real-time here only: the answers then preempt the loop's push (p99 of
 * the destination's fault wait 0.2-0.3 ms instead of 1-4 ms, bench).
 * On the destination it would preempt the vCPUs and slow the guest more
 * than it speeds the faults (docs/benchmarks.md).
 */
static const struct mig_urgent_ops src_urgent_thread_ops = {
	.on_frame = src_urgent_frame,
	.on_end = mig_session_urgent_on_end, /* source.c's async */
	.realtime = true,
};

/* ---- back on the loop thread -------------------------------------------- */

/*
 * The urgent connection is up: the socket goes to the urgent thread at
 * once, and its first frame is URGENT_HELLO, written before it starts.
 */
/*
 * URGENT_HELLO or RESUME: the cookie, and over TLS the proof that ch's
 * session is between the peers of the main one (proto.h).
 */
static int src_cookie_frame(struct mig_source *s, struct mig_channel *ch,
			    enum proto_type type, const char *label,
			    uint8_t buf[PROTO_PROOF_FRAME])
{
	uint8_t proof[PROTO_PROOF_LEN];
	int r = 0;

	if (s->ss.tls)
		r = mig_session_tls_proof(&s->ss, ch, label, proof);
	if (r)
		return r;
	return proto_cookie_proof_encode(buf, PROTO_PROOF_FRAME, type,
					 s->ss.cookie,
					 s->ss.tls ? proof : NULL);
}

static int src_urgent_handover(struct mig_source *s, char *err, size_t errlen)
{
	uint8_t buf[PROTO_PROOF_FRAME], *left = NULL;
	size_t len = 0;
	int fd = -1, n, r;

	n = src_cookie_frame(s, &s->ss.uch, PROTO_URGENT_HELLO, MIG_TLS_URGENT,
			     buf);
	r = n < 0 ? n : mig_channel_detach(&s->ss.uch, &fd, &left, &len);
	free(left); /* the destination says nothing before our hello */
	if (!r)
		r = mig_urgent_start(&s->ss.urg, fd,
				     mig_channel_tls(&s->ss.uch), NULL, 0, buf,
				     n, s->ss.uch.peer, &src_urgent_thread_ops,
				     s, err, errlen);
	if (r && !err[0])
		snprintf(err, errlen, "%s", strerror(-r));
	return r;
}

/* The urgent connection, loop side: connected, it goes to the urgent thread. */
static void src_urgent_on_connect(struct mig_channel *ch)
{
	struct mig_source *s = ch->opaque;
	char err[256] = "";

	if (src_urgent_handover(s, err, sizeof(err))) {
		src_fail(s, MIG_FAILED, "urgent connection: %s", err);
		return;
	}
	src_urgent_up(s);
}

/* Nothing is read here: the socket is the urgent thread's once connected. */
static void src_urgent_on_frame(struct mig_channel *ch,
				const struct proto_hdr *h, const uint8_t *p)
{
	(void)ch;
	(void)h;
	(void)p;
}

static void src_urgent_on_error(struct mig_channel *ch, int e, const char *why)
{
	(void)e;
	src_fail(ch->opaque, MIG_FAILED, "urgent connection: %s", why);
}

const struct mig_channel_ops src_urgent_ops = {
	.on_frame = src_urgent_on_frame,
	.on_error = src_urgent_on_error,
	.on_connect = src_urgent_on_connect,
};

/* ---- recovery ----------------------------------------------------------- */

/*
 * --resume [--to ADDR]: a new main connection, once the broken ones are
 * closed (RESUME goes when it is up: src_resume_send). The caller moves
 * the state.
 */
int src_resume_connect(struct mig_source *s, const char *to, char *err,
		       size_t errlen)
{
	struct sockaddr_storage ss;
	int r;

	if (!mig_session_channel_idle(&s->ss.ch) ||
	    !mig_session_channel_idle(&s->ss.uch)) {
		snprintf(err, errlen,
			 "the broken connections are still closing; try again");
		return -EBUSY;
	}
	if (to && (r = mig_addr_parse(to, &ss, err, errlen)))
		return r;
	if (to)
		snprintf(s->to, sizeof(s->to), "%s", to);
	memset(&s->ss.uch, 0, sizeof(s->ss.uch));
	r = mig_channel_connect(&s->ss.ch, s->ss.loop, s->p.to, s->ss.tcp_cc,
				&src_channel_ops, s, err, errlen);
	if (r)
		return r;
	mig_channel_use_tls(&s->ss.ch, s->ss.tls, s->ss.tls_name);
	return 0;
}

/* The new main connection is up: RESUME with this migration's cookie. */
int src_resume_send(struct mig_source *s)
{
	uint8_t buf[PROTO_PROOF_FRAME];

	s->resume_runs = 0;
	s->lacking_next = 0;
	bitmap_zero(&s->lacking);
	return src_send_small(s, buf,
			      src_cookie_frame(s, &s->ss.ch, PROTO_RESUME,
					       MIG_TLS_RECOVER, buf));
}

/* DISCARD after RESUME: runs of pages the destination still lacks. */
/*
 * A run the destination lacks, marked in lacking. The runs come from the
 * peer: each must lie in one RAM region and start past the previous one
 * (lacking_next), so that all the list makes us loop over is guest RAM,
 * once.
 */
static int src_lacking_run(struct mig_source *s, const struct proto_run *run,
			   char *err, size_t errlen)
{
	const struct guest_mem *m = &s->ss.vm->mem;
	uint64_t len = (uint64_t)run->npages * PAGE_SIZE, i;

	for (int k = 0; k < m->nr_regions; k++) {
		const struct mem_region *rg = &m->regions[k];

		if (run->gpa < rg->gpa || run->gpa - rg->gpa >= rg->size ||
		    len > rg->size - (run->gpa - rg->gpa) ||
		    run->gpa < s->lacking_next)
			continue;
		mem_gpa_to_page(m, run->gpa, &i);
		for (uint64_t j = 0; j < run->npages; j++)
			bitmap_set(&s->lacking, i + j);
		s->lacking_next = run->gpa + len;
		return 0;
	}
	snprintf(err, errlen,
		 "DISCARD run of %u pages at 0x%llx: outside guest RAM or out "
		 "of order",
		 run->npages, (unsigned long long)run->gpa);
	return -EPROTO;
}

int src_on_lacking(struct mig_source *s, const uint8_t *p, size_t len,
		   char *err, size_t errlen)
{
	struct proto_run *runs = malloc(PROTO_MAX_DISCARD_RUNS * sizeof(*runs));
	uint32_t nr;
	int r;

	if (!runs) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = proto_discard_decode(p, len, runs, PROTO_MAX_DISCARD_RUNS, &nr, err,
				 errlen);
	for (uint32_t k = 0; !r && k < nr; k++)
		r = src_lacking_run(s, &runs[k], err, errlen);
	if (!r)
		s->resume_runs += nr;
	free(runs);
	return r;
}

/*
 * The list is complete: push again every page of the push set it names
 * (whatever was in flight at the break), nothing the destination holds.
 */
static void src_resume_lacking(struct mig_source *s)
{
	struct bitmap *sent = &s->ss.vm->mem.state[MEM_PS_SENT];
	uint64_t n = 0;

	bitmap_zero(&s->todo);
	for (uint64_t i = bitmap_next_set(&s->lacking, 0); i < s->lacking.nbits;
	     i = bitmap_next_set(&s->lacking, i + 1)) {
		bitmap_clear(sent, i);
		if (bitmap_test(&s->pushset, i)) {
			bitmap_set(&s->todo, i);
			n++;
		}
	}
	s->ss.st.postcopy_lacking = n;
	s->ss.st.memory_remaining = n * PAGE_SIZE;
	mig_push_rewind(&s->push);
}

/*
 * RESUME_ACK: the destination knows us and has listed what it lacks. Set
 * the push up again and reconnect the urgent connection.
 */
int src_on_resume_ack_check(struct mig_source *s, const uint8_t *p, size_t len,
			    char *err, size_t errlen)
{
	uint64_t cookie, nr_runs;
	char why[256];
	int r;

	if (proto_resume_ack_decode(p, len, &cookie, &nr_runs, err, errlen))
		return -EPROTO;
	if (cookie != s->ss.cookie || nr_runs != s->resume_runs) {
		snprintf(err, errlen, "RESUME_ACK: %s",
			 cookie != s->ss.cookie ? "another migration's cookie"
						: "the count of runs differs");
		return -EPROTO;
	}
	src_resume_lacking(s);
	r = src_urgent_connect(s, why, sizeof(why));
	if (r) {
		snprintf(err, errlen, "urgent connection: %s", why);
		return r;
	}
	s->pc_end_sent = false;
	s->remote_verified = false;
	s->ss.ch.high = SRC_PC_HIGH;
	src_start_round(s);
	return 0;
}
