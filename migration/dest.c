/* SPDX-License-Identifier: MIT */
/*
 * dest.c - the migration destination's state machine: the one place its
 * state changes (dest_set_state, by the table of states.c), the frames of
 * both connections dispatched by that table to the phase modules (dest.h:
 * dest_recv.c, dest_switch.c, dest_postcopy.c, dest_recover.c), which
 * report what happened; the failures and the end; the entry points of
 * migration.h.
 *
 *   LISTENING -> RECEIVING (connected; HELLO checked against this VM,
 *   pages, RAM_END, the state sections) -> STATE_END: restore -> [VERIFY]
 *   -> READY sent: WAIT_READY -> GO: vCPUs start, RUNNING sent: RUNNING
 *
 * Live update (unix:PATH, dest_local.c): the connection's header brings
 * the source's memfd; HELLO maps it as guest RAM (no page ever arrives),
 * then RAM_END, the state and READY/GO as above.
 *
 * Post-copy: POSTCOPY(cookie) -> STATE_END: restore, guest RAM registered
 * with the fault service -> the urgent connection shows the cookie
 * (URGENT_HELLO) -> READY -> GO: RUNNING; pages are fetched on fault and
 * pushed -> POSTCOPY_END -> COMPLETE. A break after GO: POSTCOPY_PAUSED,
 * listening again, until the source's RESUME (RUNNING again).
 *
 * Any failure before GO ends in MIG_FAILED and the caller exits: a VM that
 * was not received whole never runs. After GO in post-copy a failure
 * pauses the migration (dest_pc_break) unless it is an abort, which is
 * fatal to the VM: done() reports MIG_FAILED a second time.
 *
 * Threads: everything here runs on the event-loop thread; the fault
 * thread and the urgent thread (dest_postcopy.c) reach it only through
 * the session's async (dest_on_async). No vCPU thread exists until GO.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "migration/dest.h"
#include "migration/states.h"
#include "vmm/vm.h"

_Static_assert(offsetof(struct mig_dest, ss) == 0,
	       "the session is the destination's first member");

/* ---- the state ----------------------------------------------------------- */

static void dest_end(struct mig_dest *d, enum mig_state state)
{
	if (d->ss.ended)
		return;
	d->ss.ended = true;
	d->ss.st.state = state; /* terminal, or RUNNING (GO) */
	mig_session_elapsed(&d->ss);
	/* Failed: let the ERROR we queued reach the source, then close. */
	if (state != MIG_RUNNING) {
		dest_urgent_stop(d);
		mig_session_close_channels(&d->ss);
	}
	mig_session_done(&d->ss);
}

/* The one way the state changes (session.c: by the table of states.c). */
static bool dest_set_state(struct mig_dest *d, enum mig_state to)
{
	if (mig_session_set_state(&d->ss, MIG_SIDE_DEST, to))
		return true;
	dest_end(d, MIG_FAILED);
	return false;
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

static void dest_progress(struct mig_dest *d)
{
	if (d->ss.hooks.progress)
		d->ss.hooks.progress(d->ss.hooks.opaque, mig_dest_stats(d));
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
	dest_recover_break(d);
	dest_progress(d);
}

/* Tell the source why (best effort), then give up or pause post-copy. */
void dest_fail(struct mig_dest *d, const char *fmt, ...)
{
	va_list ap;

	if (d->ss.ended && !dest_live(d))
		return;
	va_start(ap, fmt);
	vsnprintf(d->ss.st.error, sizeof(d->ss.st.error), fmt, ap);
	va_end(ap);
	mig_session_send_error(&d->ss, EPROTO);
	if (d->ss.ended) {
		dest_pc_break(d);
		return;
	}
	dest_end(d, MIG_FAILED);
}

/* A phase's outcome: 0 goes on, anything else fails with its line. */
static bool dest_ok(struct mig_dest *d, int r, const char *err)
{
	if (r < 0)
		dest_fail(d, "%s", err);
	return r >= 0;
}

/* READY, once everything it stands for is true. */
static void dest_maybe_ready(struct mig_dest *d)
{
	char err[256];

	if (d->ss.st.state == MIG_WAIT_READY || !dest_switch_ready(d))
		return;
	if (dest_set_state(d, MIG_WAIT_READY))
		dest_ok(d, dest_reply_empty(d, PROTO_READY, err, sizeof(err)),
			err);
}

/* POSTCOPY or URGENT_HELLO: with both, the urgent thread takes over. */
static void dest_check_urgent(struct mig_dest *d)
{
	char err[300];
	int r = dest_urgent_check(d, err, sizeof(err));

	if (r <= 0) {
		dest_ok(d, r, err);
		return;
	}
	if (d->go_done)
		dest_resume_requests(d);
	else
		dest_maybe_ready(d);
}

/*
 * Waiting for a source - the first, or ours again after a break - the
 * main connection is not one yet: it failed or sent no frame, or its first
 * frame was not HELLO (RESUME).
 */
/*
 * Whether a failing connection can only be a stranger: before its HELLO
 * (over TLS, before on_connect: the handshake failed, so it proved nothing)
 * or while post-copy waits for its source to come back.
 */
static bool dest_awaits_source(const struct mig_dest *d)
{
	return d->ss.st.state == MIG_LISTENING ||
	       (d->ss.st.state == MIG_RECEIVING && !d->hello_done &&
		!d->local) || /* a live update's peer showed its header */
	       d->ss.st.state == MIG_POSTCOPY_PAUSED;
}

/*
 * A connection that is not our source (a port scan, garbage, silence):
 * say so, close it, and once it is closed listen again; the migration
 * waits on as it did.
 */
static void dest_drop_stray(struct mig_dest *d, const char *why)
{
	d->strays++;
	fprintf(stderr,
		"vmm: incoming migration: dropped a connection from %s that is "
		"not the source (%s); still listening\n",
		d->spec, why);
	if (d->first_timer_on)
		uv_timer_stop(&d->first_timer);
	if (d->ss.st.state == MIG_RECEIVING &&
	    !dest_set_state(d, MIG_LISTENING))
		return;
	dest_recover_reopen(d);
}

static void dest_on_first_timer(uv_timer_t *t)
{
	struct mig_dest *d = t->data;

	if (dest_awaits_source(d) && d->ss.ch.connected && !d->ss.ch.closed)
		dest_drop_stray(d, "no frame within 3 s");
}

/* RESUME while paused: our source comes back, or a stranger is refused. */
static void dest_on_resume(struct mig_dest *d, const struct proto_hdr *h,
			   const uint8_t *p)
{
	char err[300];

	if (d->first_timer_on)
		uv_timer_stop(&d->first_timer);
	switch (dest_recover_resume(d, h, p, err, sizeof(err))) {
	case DEST_RESUME_REFUSE:
		d->strays++;
		fprintf(stderr,
			"vmm: incoming migration: dropped a connection from %s "
			"that is not the source (its first frame was %s, not "
			"our RESUME); still listening\n",
			d->spec, proto_type_name(h->type));
		return;
	case DEST_RESUME_FAILED:
		snprintf(d->ss.st.error, sizeof(d->ss.st.error),
			 "resuming post-copy: %s", err);
		dest_set_state(d, MIG_RUNNING);
		dest_pc_break(d);
		return;
	case DEST_RESUME_OK:
		d->ss.st.error[0] = '\0';
		dest_set_state(d, MIG_RUNNING);
		dest_progress(d);
	}
}

/* ---- frames -------------------------------------------------------------- */

/* PAGES: pre-copy's into RAM, post-copy's placed (and perhaps the end). */
static int dest_on_pages(struct mig_dest *d, const uint8_t *p, size_t len,
			 char *err, size_t errlen)
{
	int r;

	if (!d->postcopy)
		return dest_recv_pages(d, p, len, err, errlen);
	r = dest_pc_pages(d, p, len, err, errlen);
	return r ? r : dest_pc_try_complete(d, err, errlen);
}

static int dest_on_postcopy_end(struct mig_dest *d, char *err, size_t errlen)
{
	if (!d->postcopy || !d->go_done || d->pc_end) {
		snprintf(err, errlen, "POSTCOPY_END out of order");
		return -EPROTO;
	}
	d->pc_end = true;
	return dest_pc_try_complete(d, err, errlen);
}

/* SYNC: every frame before it is processed; echo it. */
static int dest_on_sync(struct mig_dest *d, char *err, size_t errlen)
{
	d->discard_ns = 0; /* what follows is the switch's, if anything */
	if (!d->ram_end)
		return dest_reply_empty(d, PROTO_SYNC, err, errlen);
	snprintf(err, errlen, "SYNC after RAM_END");
	return -EPROTO;
}

/* A frame the table lets through in this state, to its phase. */
static int dest_dispatch(struct mig_dest *d, const struct proto_hdr *h,
			 const uint8_t *p, char *err, size_t errlen)
{
	switch (h->type) {
	case PROTO_HELLO:
		return d->local ? dest_local_hello(d, p, h->len, err, errlen)
				: dest_recv_hello(d, p, h->len, err, errlen);
	case PROTO_PAGES:
		return dest_on_pages(d, p, h->len, err, errlen);
	case PROTO_RAM_END:
		dest_chans_stop(d); /* channels.h: nothing after this */
		d->ram_end = true;
		return 0;
	case PROTO_SYNC:
		return dest_on_sync(d, err, errlen);
	case PROTO_STATE:
		return dest_recv_state(d, p, h->len, err, errlen);
	case PROTO_STATE_END:
		return d->local ? dest_local_restore(d, err, errlen)
				: dest_switch_restore(d, err, errlen);
	case PROTO_VERIFY:
		return dest_switch_verify(d, p, h->len, err, errlen);
	case PROTO_GO:
		return dest_switch_go(d, err, errlen);
	case PROTO_DISCARD:
		return dest_recv_discard(d, p, h->len, err, errlen);
	case PROTO_POSTCOPY:
		dest_chans_stop(d);
		return dest_recv_postcopy(d, p, h->len, err, errlen);
	case PROTO_POSTCOPY_END:
		return dest_on_postcopy_end(d, err, errlen);
	default: /* PROTO_ERROR */
		snprintf(err, errlen, "the source gave up: ");
		mig_session_error_reason(p, h->len, err + strlen(err),
					 errlen - strlen(err));
		return -EPROTO;
	}
}

/* What a frame that went well leads to. */
static void dest_after(struct mig_dest *d, enum proto_type t)
{
	switch (t) {
	case PROTO_STATE_END:
	case PROTO_VERIFY:
		dest_maybe_ready(d);
		break;
	case PROTO_POSTCOPY:
		dest_check_urgent(d);
		break;
	case PROTO_GO:
		dest_end(d, MIG_RUNNING);
		break;
	default:
		break;
	}
}

static void dest_on_frame(struct mig_channel *ch, const struct proto_hdr *h,
			  const uint8_t *p)
{
	struct mig_dest *d = ch->opaque;
	char err[1200];
	int r;

	if (d->ss.ended && !dest_live(d))
		return;
	if (d->ss.st.state == MIG_POSTCOPY_PAUSED) {
		dest_on_resume(d, h, p);
		return;
	}
	r = mig_state_check_frame(MIG_SIDE_DEST, d->ss.st.state, h->type, err,
				  sizeof(err));
	if (!r && h->type != PROTO_HELLO && !d->hello_done) {
		snprintf(err, sizeof(err), "its first frame was %s, not HELLO",
			 proto_type_name(h->type));
		dest_drop_stray(d, err);
		return;
	}
	if (h->type == PROTO_HELLO && d->first_timer_on)
		uv_timer_stop(&d->first_timer);
	if (!r)
		r = dest_dispatch(d, h, p, err, sizeof(err));
	if (r)
		dest_fail(d, "%s", err);
	else
		dest_after(d, h->type);
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
	if (dest_awaits_source(d)) {
		dest_drop_stray(d, why);
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
	snprintf(d->ss.st.tcp_congestion, sizeof(d->ss.st.tcp_congestion), "%s",
		 ch->congestion);
	if (d->first_timer_on)
		uv_timer_start(&d->first_timer, dest_on_first_timer,
			       DEST_FIRST_FRAME_MS, 0);
	if (d->go_done)
		return; /* a resume: its first frame must be RESUME */
	dest_set_state(d, MIG_RECEIVING);
	d->ss.st.start_ns = clock_now_ns();
}

/*
 * A pre-copy PAGES frame may have its data spliced into RAM (channel.h):
 * only where dest_on_frame would hand it to dest_recv_pages.
 */
static int dest_on_splice_begin(struct mig_channel *ch,
				const struct proto_hdr *h, const uint8_t *p,
				size_t have, char *err, size_t errlen)
{
	struct mig_dest *d = ch->opaque;

	if (h->type != PROTO_PAGES || d->ss.ended || !d->hello_done ||
	    d->postcopy || d->ss.st.state == MIG_POSTCOPY_PAUSED ||
	    mig_state_check_frame(MIG_SIDE_DEST, d->ss.st.state, h->type, err,
				  errlen))
		return 0; /* dest_on_frame says what is wrong */
	return dest_splice_begin(d, p, have, h->len, err, errlen);
}

static int dest_on_splice_data(struct mig_channel *ch, int pipe_rd, size_t n,
			       char *err, size_t errlen)
{
	return dest_splice_data(ch->opaque, pipe_rd, n, err, errlen);
}

static int dest_on_splice_iov(struct mig_channel *ch, size_t max,
			      struct iovec *iov, int niov, char *err,
			      size_t errlen)
{
	return dest_splice_iov(ch->opaque, max, iov, niov, err, errlen);
}

static int dest_on_splice_placed(struct mig_channel *ch, size_t n, char *err,
				 size_t errlen)
{
	return dest_splice_placed(ch->opaque, n, err, errlen);
}

const struct mig_channel_ops dest_channel_ops = {
	.on_frame = dest_on_frame,
	.on_error = dest_on_error,
	.on_connect = dest_on_connect,
	.splice_begin = dest_on_splice_begin,
	.splice_data = dest_on_splice_data,
	.splice_iov = dest_on_splice_iov,
	.splice_placed = dest_on_splice_placed,
};

/* The urgent connection, until its thread takes it: URGENT_HELLO only. */
static void dest_urgent_on_frame(struct mig_channel *ch,
				 const struct proto_hdr *h, const uint8_t *p)
{
	struct mig_dest *d = ch->opaque;
	char err[300];

	if (d->ss.ended && !dest_live(d))
		return;
	if (d->urgent_seen) /* after URGENT_HELLO the socket is the thread's */
		dest_fail(d, "unexpected %s on the urgent connection",
			  proto_type_name(h->type));
	else if (h->type != PROTO_URGENT_HELLO)
		dest_fail(d, "urgent connection began with %s",
			  proto_type_name(h->type));
	else if (dest_urgent_hello(d, p, h->len, err, sizeof(err)))
		dest_fail(d, "urgent connection: %s", err);
	else
		dest_check_urgent(d); /* or when POSTCOPY arrives */
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

const struct mig_channel_ops dest_urgent_ops = {
	.on_frame = dest_urgent_on_frame,
	.on_error = dest_urgent_on_error,
	.on_connect = dest_urgent_on_connect,
};

/*
 * Another thread woke the loop: a stalled fault, the urgent thread's end or
 * progress. Requests queued while there is no urgent thread are dropped:
 * complete, failed, or paused (asked again from the fault service's
 * pending list once the urgent connection is back: dest_resume_requests).
 */
static void dest_on_async(uv_async_t *h)
{
	struct mig_dest *d = h->data;
	char err[256];

	if (atomic_exchange(&d->stalled, false))
		dest_progress(d);
	if (dest_chans_poll(d))
		return;
	if (mig_session_urgent_ended(&d->ss)) {
		dest_urgent_stop(d);
		dest_fail(d, "urgent connection: %s", d->ss.u_why);
		return;
	}
	dest_drop_requests(d);
	if (d->pc_end)
		dest_ok(d, dest_pc_try_complete(d, err, sizeof(err)), err);
}

/* ---- entry points (migration.h) ------------------------------------------ */

const struct mig_stats *mig_dest_stats(struct mig_dest *d)
{
	dest_fold_urgent(d);
	mig_chans_stats(&d->ss, false);
	if (d->postcopy && d->go_done)
		dest_fault_stats(d);
	return &d->ss.st;
}

static int dest_timer_init(struct mig_dest *d, char *err, size_t errlen)
{
	int r = uv_timer_init(d->ss.loop, &d->first_timer);

	if (r) {
		snprintf(err, errlen, "uv_timer_init: %s", uv_strerror(r));
		return r;
	}
	d->first_timer.data = d;
	d->first_timer_on = true;
	return 0;
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
	d->insecure = dp->insecure;
	d->recover_fd = -1;
	d->local_memfd = -1;
	d->ux.lfd = -1;
	vm_snapshot_init(&d->snap);
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
		r = dest_timer_init(d, err, errlen);
	if (!r && mig_addr_is_unix(spec)) {
		r = dest_local_listen(d, spec, err, errlen);
		if (r) {
			mig_dest_free(d);
			return r;
		}
		*out = d;
		return 0;
	}
	if (!r)
		r = mig_tls_open(&d->ss.tls, spec, dp->tls_dir, TLS_SERVER,
				 dp->tls_authz, dp->insecure, err, errlen);
	if (!r)
		r = mig_session_congestion(&d->ss, dp->tcp_congestion, err,
					   errlen);
	if (!r)
		r = mig_channel_listen(&d->ss.ch, loop, spec, d->ss.tcp_cc,
				       &dest_channel_ops, d, err, errlen);
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

	vm_snapshot_free(&d->snap);
	free(d->batch);
	free(d->ubatch);
	free(d->discard);
	if (d->recover_fd >= 0)
		close(d->recover_fd);
	if (d->local_memfd >= 0)
		close(d->local_memfd);
	bitmap_free(&d->claimed);
	mig_sum_free(&d->sum);
	mig_pagesum_free(&d->placed);
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
	uv_handle_t *extra[] = {
		d->first_timer_on ? (uv_handle_t *)&d->first_timer : NULL,
		mig_unix_close(&d->ux),
	};

	mig_session_free(&d->ss, extra, 2, dest_release);
}

int mig_dest_abort(struct mig_dest *d)
{
	if (!dest_live(d))
		return -EALREADY;
	dest_recover_abort_message(d);
	dest_postcopy_failed(d);
	return 0;
}
