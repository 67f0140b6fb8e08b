/* SPDX-License-Identifier: MIT */
/*
 * channel_tls.c - a migration channel over TLS (channel.h, tls.h).
 *
 * libuv still connects and accepts the TCP socket, but never reads or
 * writes it: a uv_poll_t on the same socket follows the session's wants.
 * The handshake runs first (a silent one is a stall, as any silence with
 * work owed); on_connect follows it. Frames wait in a queue; the head is
 * offered to tls_conn_write (again, the same bytes, after -EAGAIN) and a
 * frame counts as written, for bytes_out and on_drain, once the session
 * has taken all of it. Plaintext read is reassembled as in channel.c.
 * Everything runs on the event-loop thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/err.h"
#include "migration/channel_int.h"
#include "migration/tls.h"

/* "tcp:HOST:PORT" -> HOST as given (no [] around an IPv6 literal). */
static void mig_addr_host(const char *spec, char *out, size_t len)
{
	const char *h = strncmp(spec, "tcp:", 4) ? spec : spec + 4;
	const char *colon = strrchr(h, ':');
	size_t hl = colon ? (size_t)(colon - h) : strlen(h);

	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	snprintf(out, len, "%.*s", (int)hl, h);
}

void mig_channel_use_tls(struct mig_channel *ch, struct tls_ctx *ctx,
			 const char *name)
{
	ch->tls_ctx = ctx;
	if (!ctx)
		return;
	if (name && *name)
		snprintf(ch->tls_name, sizeof(ch->tls_name), "%s", name);
	else
		mig_addr_host(ch->peer, ch->tls_name, sizeof(ch->tls_name));
}

struct tls_conn *mig_channel_tls(const struct mig_channel *ch)
{
	return ch->tls_up ? ch->tls : NULL;
}

static bool mig_addr_loopback(const struct sockaddr_storage *ss)
{
	static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)ss;
	const struct sockaddr_in *a4 = (const struct sockaddr_in *)ss;

	if (ss->ss_family == AF_INET)
		return (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
	if (IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr))
		return true;
	return !memcmp(a6->sin6_addr.s6_addr, mapped, sizeof(mapped)) &&
	       a6->sin6_addr.s6_addr[12] == 127;
}

int mig_tls_open(struct tls_ctx **out, const char *spec, const char *dir,
		 int role, const char *authz, bool insecure, char *err,
		 size_t errlen)
{
	struct sockaddr_storage ss;
	int r;

	*out = NULL;
	if (dir && *dir && insecure) {
		err_set(err, errlen,
			"--tls-dir and --insecure exclude each "
			"other");
		return -EINVAL;
	}
	if (dir && *dir)
		return tls_ctx_new(out, dir, (enum tls_role)role, authz, err,
				   errlen);
	if (authz && *authz) {
		err_set(err, errlen, "--tls-authz needs --tls-dir");
		return -EINVAL;
	}
	r = mig_addr_parse(spec, &ss, err, errlen);
	if (r || insecure || mig_addr_loopback(&ss))
		return r;
	err_set(err, errlen,
		"refusing a plaintext migration on %s (not a loopback "
		"address): give --tls-dir DIR, or --insecure to send the VM "
		"in the clear",
		spec);
	return -EPERM;
}

/* ---- the session, driven by the poll handle ----------------------------- */

static bool mig_tls_live(const struct mig_channel *ch)
{
	return ch->tls && !ch->failed && !ch->closed && !ch->detached &&
	       !ch->tls_linger;
}

static void mig_tls_arm(struct mig_channel *ch);
static void mig_tls_on_poll(uv_poll_t *p, int status, int events);

/* ---- lingering after a refusal (channel.h: tls_linger) ------------------ */

#define MIG_TLS_LINGER_MS 2000 /* the most a refused peer is waited for */

static void mig_tls_linger_end(struct mig_channel *ch)
{
	if (!ch->tls_linger)
		return;
	ch->tls_linger = false;
	mig_channel_fail(ch, ch->linger_err, "%s: TLS: %s", ch->peer,
			 ch->linger_why);
}

static void mig_tls_linger_timeout(uv_timer_t *t)
{
	mig_tls_linger_end(t->data);
}

/* Drop what the refused peer still sends; its EOF (or an error) ends it. */
static void mig_tls_linger_read(struct mig_channel *ch)
{
	char buf[16384];

	for (int i = 0; i < 16; i++) {
		ssize_t n = recv(ch->tls->fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n > 0 || (n < 0 && errno == EINTR))
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return; /* the poll handle calls again */
		break;
	}
	mig_tls_linger_end(ch);
}

/*
 * The session refused the peer and its alert is on the wire. Closing now
 * would reset a peer whose bytes are still unread here (a TLS 1.3 client
 * writes as soon as its side of the handshake is done), and the reset
 * would throw the alert away on its side: it would see "connection reset
 * by peer" instead of the cause. So: our FIN, then drain until the peer's
 * EOF, bounded in time; the error is reported then.
 */
static void mig_tls_linger(struct mig_channel *ch, int r, const char *why)
{
	ch->tls_linger = true;
	ch->linger_err = r;
	snprintf(ch->linger_why, sizeof(ch->linger_why), "%s", why);
	if (shutdown(ch->tls->fd, SHUT_WR) ||
	    uv_timer_start(&ch->timer, mig_tls_linger_timeout,
			   MIG_TLS_LINGER_MS, 0) ||
	    uv_poll_start(&ch->poll, UV_READABLE, mig_tls_on_poll))
		mig_tls_linger_end(ch);
}

static void mig_tls_handshake(struct mig_channel *ch)
{
	char err[600];
	int r = tls_conn_handshake(ch->tls, err, sizeof(err));

	if (r == -EAGAIN)
		return;
	/* A peer gone already has nothing left to read. */
	if (r && r != -ECONNRESET && ch->tls_ctx->role == TLS_SERVER) {
		mig_tls_linger(ch, r, err);
		return;
	}
	if (r) {
		mig_channel_fail(ch, r, "%s: TLS: %s", ch->peer, err);
		return;
	}
	ch->tls_up = true;
	mig_channel_progress(ch);
	ch->ops->on_connect(ch);
}

/* The queue's head frames into the session until it would block. */
static void mig_tls_flush(struct mig_channel *ch)
{
	while (ch->wq_head && mig_tls_live(ch)) {
		struct mig_write *w = ch->wq_head;
		char err[600];
		ssize_t k =
			tls_conn_write(ch->tls, w->frame + ch->wq_off,
				       w->len - ch->wq_off, err, sizeof(err));
		size_t len = w->len;

		if (k == -EAGAIN)
			return;
		if (k < 0) {
			mig_channel_fail(ch, (int)k, "%s: TLS: %s", ch->peer,
					 err);
			return;
		}
		ch->wq_off += (size_t)k;
		mig_channel_progress(ch);
		if (ch->wq_off < w->len)
			continue;
		ch->wq_head = w->next;
		if (!ch->wq_head)
			ch->wq_tail = NULL;
		ch->wq_off = 0;
		free(w->frame);
		free(w);
		mig_channel_wrote(ch, len, 0); /* may queue more, or close */
	}
}

/* Plaintext into rbuf, frames out, until the session has no more. */
static void mig_tls_read(struct mig_channel *ch)
{
	while (mig_tls_live(ch) && !ch->flush_close && !ch->tls_yield) {
		char err[600];
		uint8_t *p;
		size_t n;
		ssize_t k;

		if (mig_channel_room(ch, &p, &n)) {
			mig_channel_fail(ch, -ENOMEM, "%s: out of memory",
					 ch->peer);
			return;
		}
		k = tls_conn_read(ch->tls, p, n, err, sizeof(err));
		if (k == -EAGAIN)
			return;
		if (k == 0) {
			mig_channel_fail(ch, -ECONNRESET,
					 "%s: connection closed by peer",
					 ch->peer);
			return;
		}
		if (k < 0) {
			mig_channel_fail(ch, (int)k, "%s: TLS: %s", ch->peer,
					 err);
			return;
		}
		mig_channel_got(ch, (size_t)k);
	}
}

/* Everything the session can do now, then wait for what it wants. */
static void mig_tls_run(struct mig_channel *ch)
{
	if (ch->tls_busy || !mig_tls_live(ch))
		return;
	ch->tls_busy = true;
	if (!ch->tls_up)
		mig_tls_handshake(ch);
	if (ch->tls_up) {
		mig_tls_flush(ch);
		mig_tls_read(ch);
		mig_tls_flush(ch); /* what the frames just read answered */
	}
	ch->tls_busy = false;
	mig_tls_arm(ch);
}

static void mig_tls_arm(struct mig_channel *ch)
{
	int ev = 0, r;

	if (!ch->poll_init || !mig_tls_live(ch))
		return;
	if (!ch->tls_up) {
		ev = (ch->tls->want_read ? UV_READABLE : 0) |
		     (ch->tls->want_write ? UV_WRITABLE : 0);
	} else {
		if ((!ch->tls_yield && !ch->flush_close) || ch->tls->want_read)
			ev |= UV_READABLE;
		if (ch->wq_head || ch->tls->want_write)
			ev |= UV_WRITABLE;
	}
	r = ev ? uv_poll_start(&ch->poll, ev, mig_tls_on_poll)
	       : uv_poll_stop(&ch->poll);
	if (r)
		mig_channel_fail(ch, r, "%s: %s", ch->peer, uv_strerror(r));
}

static void mig_tls_on_poll(uv_poll_t *p, int status, int events)
{
	struct mig_channel *ch = p->data;

	(void)events;
	if (ch->tls_linger) {
		mig_tls_linger_read(ch);
		return;
	}
	/*
	 * An error on the socket (libuv says EBADF for POLLERR, as a reset
	 * gives): what the session read before it, an alert that says why,
	 * is the better reason; the socket's error only when there is none.
	 */
	mig_tls_run(ch);
	if (status < 0 && mig_tls_live(ch))
		mig_channel_fail(ch, status, "%s: %s", ch->peer,
				 status == UV_EBADF ? "connection reset"
						    : uv_strerror(status));
}

/* ---- channel.c's hooks -------------------------------------------------- */

int mig_tls_start(struct mig_channel *ch)
{
	bool client = ch->tls_ctx->role == TLS_CLIENT;
	char err[600];
	uv_os_fd_t fd;
	int r = uv_fileno((uv_handle_t *)&ch->tcp, &fd);

	if (r)
		return r;
	r = tls_conn_new(&ch->tls, ch->tls_ctx, fd,
			 client ? ch->tls_name : NULL, err, sizeof(err));
	if (r) {
		mig_channel_fail(ch, r, "%s: TLS: %s", ch->peer, err);
		return 0; /* failed already: on_error said it */
	}
	r = uv_poll_init_socket(ch->loop, &ch->poll, fd);
	if (r)
		return r;
	ch->poll.data = ch;
	ch->poll_init = true;
	mig_tls_run(ch);
	return 0;
}

void mig_tls_send(struct mig_channel *ch, struct mig_write *w)
{
	if (ch->wq_tail)
		ch->wq_tail->next = w;
	else
		ch->wq_head = w;
	ch->wq_tail = w;
	if (ch->tls_up && !ch->tls_busy) {
		mig_tls_flush(ch);
		mig_tls_arm(ch);
	}
}

void mig_tls_stop(struct mig_channel *ch)
{
	if (ch->poll_init && !uv_is_closing((uv_handle_t *)&ch->poll))
		uv_poll_stop(&ch->poll);
}

void mig_tls_yield(struct mig_channel *ch)
{
	ch->tls_yield = true;
	if (!ch->tls_busy)
		mig_tls_arm(ch);
}

void mig_tls_resume(struct mig_channel *ch)
{
	ch->tls_yield = false;
	if (!ch->tls_busy)
		mig_tls_run(ch);
}

void mig_tls_close(struct mig_channel *ch)
{
	/* Best effort: close_notify if the session can take it now. */
	if (ch->tls && ch->tls_up && !ch->failed && !ch->detached)
		(void)tls_conn_shutdown(ch->tls);
}

void mig_tls_release(struct mig_channel *ch)
{
	while (ch->wq_head) {
		struct mig_write *w = ch->wq_head;

		ch->wq_head = w->next;
		free(w->frame);
		free(w);
	}
	ch->wq_tail = NULL;
	ch->wq_off = 0;
	tls_conn_free(ch->tls);
	ch->tls = NULL;
	ch->tls_up = false;
	ch->poll_init = false;
}
