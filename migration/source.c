/* SPDX-License-Identifier: MIT */
/*
 * source.c - the migration source's state machine: the one place its
 * state changes (src_set_state, by the table of states.c), the frames of
 * the main connection dispatched by that table, the end of a migration one
 * way or another, and the entry points of migration.h. The work of each
 * phase is in src_precopy.c, src_quiesce.c, src_switch.c, src_postcopy.c
 * and src_verify.c (source.h), which report what happened and leave the
 * moving to this file; src_api.c builds and frees it and keeps its
 * statistics.
 *
 *   SETUP      connect, HELLO -> HELLO_ACK, dirty logging on
 *   PRECOPY    rounds until the policy (policy.c) stops them
 *   QUIESCE    the passthrough device lets go of its buffers
 *   STOP_COPY  pause, final harvest, the rest of the pages, RAM_END, state
 *              sections, STATE_END, [VERIFY]
 *   WAIT_READY the destination restores; READY -> GO
 *   COMPLETED  RUNNING received: the destination runs the VM
 *
 * Live update (mode local, unix:PATH: src_local.c): the guest-RAM memfd
 * is handed over before HELLO; HELLO_ACK -> [QUIESCE] -> STOP_COPY (pause,
 * RAM_END, state, STATE_END) -> WAIT_READY -> COMPLETED; no page is sent.
 *
 * Post-copy (--mode postcopy, or hybrid when pre-copy will not converge):
 * pause, [DISCARD...], POSTCOPY(cookie), the state, STATE_END, the urgent
 * connection (URGENT_HELLO); READY -> GO -> RUNNING; then POSTCOPY: the
 * push on the main connection while the urgent thread answers PAGE_REQs;
 * POSTCOPY_END -> COMPLETE -> COMPLETED. A break pauses it
 * (POSTCOPY_PAUSED) until mig_source_resume (POSTCOPY_RECOVER).
 *
 * Until GO is sent, any failure (peer gone, bad frame, refusal, cancel)
 * resumes the guest here as if nothing happened. After GO the destination
 * may be running the VM, so a failure leaves it paused here and says so.
 *
 * Threads: the state and everything else here belong to the event-loop
 * thread. The urgent thread (src_postcopy.c) and the vCPU thread that
 * writes the device's ACK (src_switch.c) only set atomics and wake the
 * loop through the session's async (src_on_async).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/page.h"
#include "common/sched.h"
#include "ept/dirty.h"
#include "ept/ram_io.h"
#include "migration/source.h"
#include "migration/states.h"
#include "vmm/vm.h"

_Static_assert(offsetof(struct mig_source, ss) == 0,
	       "the session is the source's first member");

bool src_postcopy(const struct mig_source *s)
{
	return s->p.mode == MIG_MODE_POSTCOPY;
}

/* ---- the state ----------------------------------------------------------- */

static void src_end(struct mig_source *s, enum mig_state state);

/* The one way the state changes (session.c: by the table of states.c). */
static bool src_set_state(struct mig_source *s, enum mig_state to)
{
	if (mig_session_set_state(&s->ss, MIG_SIDE_SOURCE, to))
		return true;
	src_end(s, MIG_FAILED);
	return false;
}

/*
 * Completed: what is left here (statistics, closing, the VM's teardown) is
 * nobody's hurry, and at nice 19 it no longer delays a guest resumed on
 * the same host (docs/benchmarks.md, "Hybrid's heartbeat gap").
 */
static void src_end(struct mig_source *s, enum mig_state state)
{
	if (s->ss.ended)
		return;
	if (state == MIG_COMPLETED)
		(void)sched_background();
	s->ss.ended = true;
	s->ss.st.state = state; /* terminal: allowed from every live state */
	src_throttle_stop(s);
	src_devs_release(s);
	if (s->qtimer_on)
		uv_timer_stop(&s->qtimer);
	src_update_elapsed(s);
	mig_session_close_channels(&s->ss);
	mig_session_done(&s->ss);
}

/*
 * Post-copy after GO: the destination runs the VM but lacks pages that only
 * we hold, so no failure gives up. Close both connections, keep the VM
 * paused and whole, and wait for mig_source_resume() (or an abort).
 */
static void src_pc_break(struct mig_source *s)
{
	size_t n = strlen(s->ss.st.error);

	if (s->ss.st.state == MIG_POSTCOPY_PAUSED)
		return;
	snprintf(s->ss.st.error + n, sizeof(s->ss.st.error) - n,
		 "; the VM stays paused here with every page");
	if (!src_set_state(s, MIG_POSTCOPY_PAUSED))
		return;
	s->ss.st.postcopy_breaks++;
	mig_channel_close(&s->ss.ch, NULL);
	mig_urgent_stop(&s->ss.urg);
	if (s->ss.uch.loop)
		mig_channel_close(&s->ss.uch, NULL);
	src_update_elapsed(s);
	mig_session_progress(&s->ss);
}

/*
 * Give up. Before GO the guest has never left: stop logging and resume it.
 * After GO the destination may be running it: keep it paused and say so.
 */
void src_fail(struct mig_source *s, enum mig_state state, const char *fmt, ...)
{
	va_list ap;

	if (s->ss.ended)
		return;
	va_start(ap, fmt);
	vsnprintf(s->ss.st.error, sizeof(s->ss.st.error), fmt, ap);
	va_end(ap);
	if (s->go_sent && s->pc && !s->giving_up) {
		src_pc_break(s);
		return;
	}
	if (s->go_sent) {
		size_t n = strlen(s->ss.st.error);

		snprintf(s->ss.st.error + n, sizeof(s->ss.st.error) - n,
			 " (after GO: the destination may be running the VM; "
			 "it stays paused here)");
		src_end(s, MIG_FAILED);
		return;
	}
	mig_session_send_error(&s->ss, ECANCELED);
	src_precopy_end(s);
	src_quiesce_cancel(s);
	if (s->paused_here)
		vm_resume(s->ss.vm);
	s->paused_here = false;
	src_end(s, state);
}

/* ---- the flow: what each phase's outcome leads to ------------------------ */

static void src_stop_copy(struct mig_source *s);
static void src_postcopy_start(struct mig_source *s);

/* The pump stopped: everything of stop-copy or post-copy may be queued. */
void src_pump(struct mig_source *s)
{
	char err[256];
	int r;

	/* Early discard: no page may follow the discard set (src_switch.c). */
	if (s->ss.ended || s->early_discard)
		return;
	r = src_pages_pump(s, err, sizeof(err));
	if (r < 0) {
		src_fail(s, MIG_FAILED, "%s", err);
		return;
	}
	if (r != SRC_PUMP_EMPTY)
		return;
	if (s->last_pass) { /* queued: now the pause */
		s->last_pass = false;
		src_stop_copy(s);
		return;
	}
	if (s->ss.st.state == MIG_STOP_COPY) {
		s->ss.st.stop_copy_pages = s->round_pages;
		if (src_send_finish(s, err, sizeof(err))) {
			src_fail(s, MIG_FAILED, "%s", err);
			return;
		}
		src_switch_queued(s);
		src_set_state(s, MIG_WAIT_READY);
		return;
	}
	/* Post-copy: every resident page is queued on one path or other. */
	if (mig_session_send_empty(&s->ss, PROTO_POSTCOPY_END)) {
		src_fail(s, MIG_FAILED, "sending POSTCOPY_END failed");
		return;
	}
	s->pc_end_sent = true;
}

static void src_quiesce_done(struct mig_source *s)
{
	void (*then)(struct mig_source * s) = s->q_then;

	uv_timer_stop(&s->qtimer);
	s->q_then = NULL;
	if (src_set_state(s, MIG_PRECOPY)) /* then(s) pauses, or discards */
		then(s);
}

/* Acked (or timed out): the device must hold nothing now. */
static void src_quiesce_check(struct mig_source *s, bool timed_out)
{
	char err[512];
	int r;

	if (s->ss.ended || s->ss.st.state != MIG_QUIESCE)
		return;
	r = src_quiesce_outcome(s, timed_out, err, sizeof(err));
	if (!r)
		src_quiesce_done(s);
	else if (r != -EAGAIN)
		src_fail(s, MIG_FAILED, "%s", err);
}

static void src_on_qtimer(uv_timer_t *t)
{
	src_quiesce_check(t->data, true);
}

/*
 * Before the VM stops here (stop-copy, or the switch to post-copy): the
 * passthrough device's driver must stop DMA and release its buffers; go on
 * with then(s) once it has and the device holds nothing.
 */
static void src_quiesce_then(struct mig_source *s,
			     void (*then)(struct mig_source *s))
{
	if (!src_devs_quiesce_needed(s)) {
		then(s);
		return;
	}
	s->q_then = then;
	if (!src_set_state(s, MIG_QUIESCE))
		return;
	if (src_devs_quiesce_request(s)) {
		src_quiesce_done(s);
		return;
	}
	uv_timer_start(&s->qtimer, src_on_qtimer, s->p.quiesce_timeout_ms, 0);
	mig_session_progress(&s->ss);
}

/* Hybrid: discard early what is dirty, then (SYNC) perhaps again. */
static void src_discard_early_step(struct mig_source *s)
{
	int r = src_discard_early(s);

	if (r)
		src_fail(s, MIG_FAILED, "sending the discard set: %s",
			 strerror(-r));
}

/*
 * The early discard is done. What the guest dirtied meanwhile is discarded
 * at the switch, in the downtime: while that is more than
 * SRC_DISCARD_REST_MAX pages, discard it early too (the working set soon
 * is all discarded, so this ends within a round or two).
 */
static void src_early_discard_more(struct mig_source *s)
{
	char err[256];
	uint64_t n, last = s->early_pending;

	if (src_harvest(s, err, sizeof(err))) {
		src_fail(s, MIG_FAILED, "%s", err);
		return;
	}
	src_take_dirty(s);
	n = s->early_pending = src_discard_pending(s);
	if (n <= SRC_DISCARD_REST_MIN ||
	    (n <= SRC_DISCARD_REST_MAX && last && n * 4 > last * 3) ||
	    ++s->early_rounds >= SRC_EARLY_ROUNDS) {
		s->early_discard = false;
		src_postcopy_start(s);
		return;
	}
	src_discard_early_step(s);
}

static void src_stop_precopy(struct mig_source *s)
{
	char err[256];

	if (s->ss.st.converged || s->p.mode != MIG_MODE_HYBRID) {
		src_stop_copy(s);
		return;
	}
	if (src_urgent_connect(s, err, sizeof(err))) {
		src_fail(s, MIG_FAILED, "urgent connection: %s", err);
		return;
	}
	src_discard_early_step(s);
}

static void src_stop_copy(struct mig_source *s)
{
	char err[256];

	if (src_last_pass(s)) { /* src_pump pauses once it is queued */
		src_pump(s);
		return;
	}
	if (src_pause(s, err, sizeof(err)) || !src_set_state(s, MIG_STOP_COPY))
		goto fail;
	if (src_harvest_last(s, err, sizeof(err)))
		goto fail;
	src_take_dirty(s);
	src_start_round(s);
	src_pump(s);
	return;
fail:
	src_fail(s, MIG_FAILED, "%s", err);
}

/* Live update: no page moves; the state goes as soon as the VM stops. */
static void src_local_stop(struct mig_source *s)
{
	char err[256];

	if (src_pause(s, err, sizeof(err)) ||
	    !src_set_state(s, MIG_STOP_COPY) ||
	    src_send_finish(s, err, sizeof(err))) {
		src_fail(s, MIG_FAILED, "%s", err);
		return;
	}
	src_switch_queued(s);
	src_set_state(s, MIG_WAIT_READY);
}

static void src_postcopy_start(struct mig_source *s)
{
	char err[256];

	if (src_postcopy_prepare(s, err, sizeof(err)) ||
	    src_pause(s, err, sizeof(err)) ||
	    !src_set_state(s, MIG_STOP_COPY) ||
	    src_postcopy_switch(s, err, sizeof(err))) {
		src_fail(s, MIG_FAILED, "%s", err);
		return;
	}
	src_switch_queued(s);
	src_set_state(s, MIG_WAIT_READY);
}

/* ---- frames from the destination ----------------------------------------- */

static void src_on_connect(struct mig_channel *ch)
{
	struct mig_source *s = ch->opaque;
	int r;

	if (mig_session_tls_main(&s->ss)) {
		src_fail(s, MIG_FAILED, "%s: TLS: no channel binding",
			 ch->peer);
		return;
	}
	if (s->ss.st.state == MIG_POSTCOPY_RECOVER) {
		if (src_resume_send(s))
			src_fail(s, MIG_FAILED, "sending RESUME failed");
		return;
	}
	snprintf(s->ss.st.tcp_congestion, sizeof(s->ss.st.tcp_congestion), "%s",
		 ch->congestion);
	r = src_hello_send(s, ch);
	if (r)
		src_fail(s, MIG_FAILED, "encoding HELLO: %s", strerror(-r));
}

/* HELLO_ACK: the destination accepts; start logging and round 0. */
static void src_on_hello_ack(struct mig_source *s, const uint8_t *p, size_t len)
{
	char err[256];
	int r;

	/*
	 * Once: the table lets HELLO_ACK through while SETUP lasts, and in
	 * post-copy SETUP lasts until the urgent connection is up.
	 */
	if (s->hello_acked) {
		src_fail(s, MIG_FAILED,
			 "the destination sent HELLO_ACK twice: out of order");
		return;
	}
	s->hello_acked = true;
	if (src_check_caps(s, p, len, err, sizeof(err))) {
		src_fail(s, MIG_FAILED, "%s", err);
		return;
	}
	if (src_local(s)) { /* no rounds: quiesce, then the state */
		src_local_acked(s);
		src_quiesce_then(s, src_local_stop);
		return;
	}
	if (src_postcopy(s)) {
		/*
		 * The urgent connection first, and the switch once it is up
		 * (src_urgent_on_connect): its connect, TLS handshake and
		 * proof are not downtime, as in hybrid's early discard.
		 */
		s->ss.st.reason = MIG_REASON_POSTCOPY;
		s->pc_urgent_wait = true;
		if (src_urgent_connect(s, err, sizeof(err)))
			src_fail(s, MIG_FAILED, "urgent connection: %s", err);
		return;
	}
	r = src_chans_start(s, err, sizeof(err));
	if (r < 0)
		src_fail(s, MIG_FAILED, "%s", err);
	else if (!r) /* else src_precopy_go once every channel is up */
		src_precopy_go(s);
}

void src_precopy_go(struct mig_source *s)
{
	char err[256];

	if (src_precopy_begin(s, err, sizeof(err))) {
		src_fail(s, MIG_FAILED, "%s", err);
		return;
	}
	if (src_set_state(s, MIG_PRECOPY))
		src_pump(s);
}

/* A pre-copy round (or an early discard) has reached the destination. */
void src_on_sync(struct mig_source *s)
{
	struct mig_decision d;
	char err[256];

	if (src_chans_sync_hold(s)) /* an extra channel's echo is due */
		return;
	if (!s->sync_wait) {
		src_fail(s, MIG_FAILED, "unexpected SYNC from the destination");
		return;
	}
	s->sync_wait = false;
	if (s->early_discard) {
		src_early_discard_more(s);
		return;
	}
	if (src_end_round(s, &d, err, sizeof(err))) {
		src_fail(s, MIG_FAILED, "%s", err);
		return;
	}
	src_throttle_round(s, &d);
	src_update_elapsed(s);
	if (d.stop) {
		/* Hybrid switches to post-copy, pre-copy stops anyway. */
		s->ss.st.converged = d.converged;
		s->ss.st.reason = d.reason;
		src_chans_done(s); /* precopy_bytes: every channel's */
		s->ss.st.precopy_ms =
			(clock_now_ns() - s->precopy_ns) / 1000000;
		src_quiesce_then(s, src_stop_precopy);
	} else {
		/*
		 * Not for the round that ends pre-copy: a client listening
		 * would read it in the downtime, on the CPU the switch needs.
		 * The switch's own event (complete, or the start of
		 * post-copy) carries its figures.
		 */
		mig_session_progress(&s->ss);
		src_start_round(s);
	}
	src_pump(s);
}

static void src_on_ready(struct mig_source *s)
{
	if ((s->ss.caps & PROTO_CAP_VERIFY) && !s->pc && !s->remote_verified) {
		src_fail(s, MIG_FAILED,
			 "verify: READY without the destination's digests");
		return;
	}
	/* From here on the destination may run the VM: never resume. */
	s->go_sent = true;
	s->go_ns = clock_now_ns();
	s->ss.st.ready_wait_us = (s->go_ns - s->queued_ns) / 1000;
	if (mig_session_send_empty(&s->ss, PROTO_GO))
		s->go_sent = false,
		src_fail(s, MIG_FAILED, "sending GO failed");
}

static void src_on_running(struct mig_source *s)
{
	uint64_t now = clock_now_ns();
	struct mig_stats *st = &s->ss.st;

	/* The table lets RUNNING into WAIT_READY; only GO makes it true. */
	if (!s->go_sent) {
		src_fail(s, MIG_FAILED,
			 "frame RUNNING before GO: the destination cannot be "
			 "running the VM; it stays here");
		return;
	}

	st->downtime_us = (now - s->pause_ns) / 1000;
	st->go_wait_us = (now - s->go_ns) / 1000;
	st->downtime_ms = st->downtime_us / 1000;
	/*
	 * Logging stays on: after GO the VM never runs here again, and the
	 * memslot update (0.9-1.8 ms) would take the CPU the resumed guest
	 * waits for on a shared host (docs/benchmarks.md, "After GO").
	 */
	src_throttle_stop(s);
	if (!s->pc) {
		char err[256];

		st->memory_remaining = 0;
		if (src_verify_audit(s, err, sizeof(err))) {
			src_fail(s, MIG_FAILED, "%s", err);
			return;
		}
		src_end(s, MIG_COMPLETED);
		return;
	}
	/* The destination runs: push every page it lacks. */
	s->running_ns = now;
	if (!src_set_state(s, MIG_POSTCOPY))
		return;
	src_rate_apply(s); /* --postcopy-bandwidth from here */
	src_postcopy_push_start(s);
	/* The first frames carry the resume pages, then walk. */
	src_pump(s);
	src_push_walk(s);
	if (!s->ss.ended) /* the state is POSTCOPY now: say so */
		mig_session_progress(&s->ss);
}

static void src_on_complete(struct mig_source *s)
{
	char err[256];

	if (!s->pc_end_sent) {
		src_fail(s, MIG_FAILED, "COMPLETE before POSTCOPY_END");
		return;
	}
	s->giving_up = true; /* a mismatch now is final */
	if (src_postcopy_verify(s, err, sizeof(err))) {
		src_fail(s, MIG_FAILED, "%s", err);
		return;
	}
	s->ss.st.memory_remaining = 0;
	s->ss.st.postcopy_ms = (clock_now_ns() - s->running_ns) / 1000000;
	src_end(s, MIG_COMPLETED);
}

static void src_on_resume_ack(struct mig_source *s, const uint8_t *p,
			      size_t len)
{
	char err[256];

	if (src_on_resume_ack_check(s, p, len, err, sizeof(err))) {
		src_fail(s, MIG_FAILED, "%s", err);
		return;
	}
	s->ss.st.error[0] = '\0';
	if (!src_set_state(s, MIG_POSTCOPY))
		return;
	src_pump(s);
	mig_session_progress(&s->ss);
}

/* A frame the table lets through in this state, to its phase. */
static int src_dispatch(struct mig_source *s, const struct proto_hdr *h,
			const uint8_t *p, char *err, size_t errlen)
{
	switch (h->type) {
	case PROTO_HELLO_ACK:
		src_on_hello_ack(s, p, h->len);
		return 0;
	case PROTO_SYNC:
		src_on_sync(s);
		return 0;
	case PROTO_VERIFY:
		return src_on_verify(s, p, h->len, err, errlen);
	case PROTO_READY:
		src_on_ready(s);
		return 0;
	case PROTO_RUNNING:
		src_on_running(s);
		return 0;
	case PROTO_COMPLETE:
		src_on_complete(s);
		return 0;
	case PROTO_DISCARD:
		return src_on_lacking(s, p, h->len, err, errlen);
	case PROTO_RESUME_ACK:
		src_on_resume_ack(s, p, h->len);
		return 0;
	default: /* PROTO_ERROR */
		snprintf(err, errlen, "destination refused: ");
		mig_session_error_reason(p, h->len, err + strlen(err),
					 errlen - strlen(err));
		return -EPROTO;
	}
}

static void src_on_frame(struct mig_channel *ch, const struct proto_hdr *h,
			 const uint8_t *p)
{
	struct mig_source *s = ch->opaque;
	char err[1200];

	if (s->ss.ended)
		return;
	if (mig_state_check_frame(MIG_SIDE_SOURCE, s->ss.st.state, h->type, err,
				  sizeof(err)) ||
	    src_dispatch(s, h, p, err, sizeof(err)))
		src_fail(s, MIG_FAILED, "%s", err);
}

static void src_on_error(struct mig_channel *ch, int e, const char *why)
{
	(void)e;
	src_fail(ch->opaque, MIG_FAILED, "%s", why);
}

static void src_on_drain(struct mig_channel *ch)
{
	src_pump(ch->opaque);
}

const struct mig_channel_ops src_channel_ops = {
	.on_frame = src_on_frame,
	.on_error = src_on_error,
	.on_drain = src_on_drain,
	.on_connect = src_on_connect,
};

/* The urgent connection is up (src_urgent_ops): --mode postcopy switches. */
void src_urgent_up(struct mig_source *s)
{
	if (!s->pc_urgent_wait)
		return;
	s->pc_urgent_wait = false;
	src_quiesce_then(s, src_postcopy_start);
}

/* Another thread woke the loop: the device's ACK, the urgent thread's end. */
void src_on_async(uv_async_t *h)
{
	struct mig_source *s = h->data;

	if (atomic_exchange(&s->q_acked, false))
		src_quiesce_check(s, false);
	if (mig_push_walk_done(&s->push) && !s->ss.ended)
		src_push_walk_end(s);
	if (!mig_session_urgent_ended(&s->ss) || s->ss.ended)
		return;
	mig_urgent_stop(&s->ss.urg);
	src_fail(s, MIG_FAILED, "%s%s",
		 s->ss.u_own ? "" : "urgent connection: ", s->ss.u_why);
}

/* ---- entry points (migration.h) ------------------------------------------ */

int mig_source_resume(struct mig_source *s, const char *to, char *err,
		      size_t errlen)
{
	int r;

	if (s->ss.ended || s->ss.st.state != MIG_POSTCOPY_PAUSED) {
		snprintf(err, errlen, "no post-copy migration is paused");
		return -EALREADY;
	}
	r = src_resume_connect(s, to, err, errlen);
	if (r)
		return r;
	src_set_state(s, MIG_POSTCOPY_RECOVER);
	s->ss.st.error[0] = '\0';
	return 0;
}

int mig_source_abort(struct mig_source *s)
{
	if (s->ss.ended || !s->pc || !s->go_sent)
		return -EALREADY;
	src_abort_message(s);
	src_end(s, MIG_FAILED);
	return 0;
}

int mig_source_cancel(struct mig_source *s)
{
	if (s->ss.ended)
		return -EALREADY;
	if (s->go_sent)
		return -EBUSY;
	src_fail(s, MIG_CANCELLED, "cancelled by the user");
	return 0;
}
