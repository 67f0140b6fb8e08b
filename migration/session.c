/* SPDX-License-Identifier: MIT */
/*
 * session.c - the part both sides share (session.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "migration/session.h"
#include "vmm/vm.h"

int mig_session_init(struct mig_session *ss, struct vm *vm, uv_loop_t *loop,
		     const struct mig_hooks *hooks, enum mig_state first,
		     uv_async_cb on_async, void *owner, char *err,
		     size_t errlen)
{
	int r;

	ss->vm = vm;
	ss->loop = loop;
	ss->hooks = *hooks;
	ss->st.state = first;
	ss->st.start_ns = clock_now_ns();
	ss->st.memory_total = vm->mem.size;
	r = uv_async_init(loop, &ss->async, on_async);
	if (r) {
		snprintf(err, errlen, "uv_async_init: %s", uv_strerror(r));
		return r;
	}
	ss->async.data = owner;
	ss->async_on = true;
	return 0;
}

bool mig_session_set_state(struct mig_session *ss, enum mig_side side,
			   enum mig_state to)
{
	enum mig_state from = ss->st.state;

	if (mig_state_move_ok(side, from, to)) {
		ss->st.state = to;
		return true;
	}
	snprintf(ss->st.error, sizeof(ss->st.error),
		 "internal error: state %s may not move to %s",
		 mig_state_name(from), mig_state_name(to));
	return false;
}

void mig_session_elapsed(struct mig_session *ss)
{
	uint64_t ns = clock_now_ns() - ss->st.start_ns;

	ss->st.time_elapsed_ms = ns / 1000000;
	ss->st.time_elapsed_us = ns / 1000;
}

void mig_session_progress(struct mig_session *ss)
{
	if (ss->hooks.progress)
		ss->hooks.progress(ss->hooks.opaque, &ss->st);
}

void mig_session_done(struct mig_session *ss)
{
	if (ss->hooks.done)
		ss->hooks.done(ss->hooks.opaque, &ss->st);
}

int mig_session_send_empty(struct mig_session *ss, enum proto_type t)
{
	uint8_t buf[PROTO_HDR_SIZE];

	return mig_channel_send_copy(&ss->ch, buf,
				     proto_empty_encode(buf, sizeof(buf), t));
}

void mig_session_send_error(struct mig_session *ss, int code)
{
	uint8_t buf[PROTO_HDR_SIZE + 1100];

	if (ss->ch.connected && !ss->ch.failed)
		mig_channel_send_copy(&ss->ch, buf,
				      proto_error_encode(buf, sizeof(buf), code,
							 ss->st.error));
}

void mig_session_error_reason(const uint8_t *p, size_t len, char *reason,
			      size_t rlen)
{
	char why[256];
	int code;

	if (proto_error_decode(p, len, &code, reason, rlen, why, sizeof(why)))
		snprintf(reason, rlen, "(%s)", why);
}

void mig_session_close_channels(struct mig_session *ss)
{
	mig_chans_close(ss);
	mig_urgent_stop(&ss->urg);
	mig_channel_close_after_flush(&ss->ch, NULL);
	if (ss->uch.loop)
		mig_channel_close_after_flush(&ss->uch, NULL);
}

bool mig_session_channel_idle(const struct mig_channel *ch)
{
	return !ch->loop || (ch->closed && !ch->pending_closes);
}

void mig_session_urgent_end(struct mig_session *ss, const char *why, bool own)
{
	snprintf(ss->u_why, sizeof(ss->u_why), "%s", why);
	ss->u_own = own;
	atomic_store(&ss->u_ended, true);
	uv_async_send(&ss->async);
}

void mig_session_urgent_on_end(void *opaque, int code, const char *why,
			       bool own)
{
	(void)code;
	mig_session_urgent_end(opaque, why, own);
}

bool mig_session_urgent_ended(struct mig_session *ss)
{
	return atomic_exchange(&ss->u_ended, false);
}

static void mig_session_closed(struct mig_session *ss)
{
	if (--ss->closing)
		return;
	mig_chans_free(&ss->xc);
	tls_ctx_free(ss->tls); /* each session holds its own reference */
	ss->tls = NULL;
	ss->release(ss);
}

int mig_session_congestion(struct mig_session *ss, const char *name, char *err,
			   size_t errlen)
{
	if (!name)
		return 0;
	snprintf(ss->tcp_cc, sizeof(ss->tcp_cc), "%s", name);
	return mig_tcp_congestion_check(name, err, errlen);
}

int mig_session_tls_main(struct mig_session *ss)
{
	struct tls_conn *c = mig_channel_tls(&ss->ch);
	struct mig_stats *st = &ss->st;
	int r = 0;

	st->tls = c != NULL;
	if (!c)
		return 0;
	tls_conn_ktls(c, &st->ktls_send, &st->ktls_recv);
	snprintf(st->tls_cipher, sizeof(st->tls_cipher), "%s",
		 tls_conn_cipher(c));
	snprintf(st->tls_peer, sizeof(st->tls_peer), "%s", tls_conn_peer(c));
	if (!ss->tls_bound)
		r = tls_conn_binding(c, MIG_TLS_MAIN, ss->tls_main);
	ss->tls_bound = !r;
	return r;
}

int mig_session_tls_proof(struct mig_session *ss, struct mig_channel *ch,
			  const char *label, uint8_t *proof)
{
	struct tls_conn *c = mig_channel_tls(ch);

	if (!c || !ss->tls_bound)
		return -ENOTCONN;
	return tls_conn_proof(c, ss->tls_main, label, proof);
}

bool mig_session_tls_check(struct mig_session *ss, struct mig_channel *ch,
			   const char *label, const uint8_t *proof)
{
	uint8_t want[TLS_BINDING_LEN];

	return !mig_session_tls_proof(ss, ch, label, want) &&
	       tls_binding_equal(want, proof);
}

static void mig_session_channel_closed(struct mig_channel *ch)
{
	mig_session_closed(ch->opaque);
}

static void mig_session_handle_closed(uv_handle_t *h)
{
	mig_session_closed(h->data);
}

/* The channel's handles must be closed before ss goes away. */
static void mig_session_free_channel(struct mig_session *ss,
				     struct mig_channel *ch)
{
	if (!ch->loop)
		return;
	if (!ch->closed) {
		ch->flush_close = false;
		ss->closing++;
		mig_channel_close(ch, mig_session_channel_closed);
		return;
	}
	if (ch->pending_closes) {
		ss->closing++;
		ch->on_closed = mig_session_channel_closed;
	}
}

static void mig_session_close_handle(struct mig_session *ss, uv_handle_t *h)
{
	ss->closing++;
	h->data = ss;
	uv_close(h, mig_session_handle_closed);
}

void mig_session_free(struct mig_session *ss, uv_handle_t *const *extra,
		      int nr_extra, void (*release)(struct mig_session *ss))
{
	mig_urgent_stop(&ss->urg);
	ss->release = release;
	ss->closing = 1; /* held while the handles are looked at */
	mig_session_free_channel(ss, &ss->ch);
	mig_session_free_channel(ss, &ss->uch);
	for (uint32_t i = 0; ss->xc.x && i + 1 < ss->xc.n; i++) {
		mig_urgent_stop(&ss->xc.x[i].thr);
		mig_session_free_channel(ss, &ss->xc.x[i].ch);
	}
	if (ss->async_on)
		mig_session_close_handle(ss, (uv_handle_t *)&ss->async);
	for (int i = 0; i < nr_extra; i++)
		if (extra[i])
			mig_session_close_handle(ss, extra[i]);
	mig_session_closed(ss);
}
