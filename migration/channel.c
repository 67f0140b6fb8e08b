/* SPDX-License-Identifier: MIT */
/*
 * channel.c - proto/ frames over a libuv TCP stream (see channel.h).
 * Everything here runs on the event-loop thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "migration/channel_int.h"
#include "migration/tls.h"

/* ---- addresses ------------------------------------------------------------
 */

static int mig_addr_port(const char *s, int *port)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (end == s || *end || v < 1 || v > 65535)
		return -EINVAL;
	*port = (int)v;
	return 0;
}

int mig_addr_parse(const char *spec, struct sockaddr_storage *ss, char *err,
		   size_t errlen)
{
	char host[64];
	const char *h, *colon;
	size_t hl;
	int port;

	memset(ss, 0, sizeof(*ss));
	if (strncmp(spec, "tcp:", 4) != 0)
		goto bad;
	h = spec + 4;
	colon = strrchr(h, ':');
	if (!colon || mig_addr_port(colon + 1, &port))
		goto bad;
	hl = colon - h;
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') { /* [v6]:port */
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(host))
		goto bad;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0 ||
	    uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
		return 0;
bad:
	snprintf(err, errlen,
		 "'%s': expected tcp:HOST:PORT with a numeric IPv4 or [IPv6] "
		 "address (or localhost) and a port 1-65535",
		 spec);
	return -EINVAL;
}

/* ---- failure and close ------------------------------------------------------
 */

void mig_channel_fail(struct mig_channel *ch, int e, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	if (ch->failed || ch->closed)
		return;
	ch->failed = true;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (ch->connected)
		uv_read_stop((uv_stream_t *)&ch->tcp);
	mig_tls_stop(ch);
	ch->ops->on_error(ch, e, why);
}

/*
 * One close of one of the channel's handles is done. The channel is let go
 * (on_closed) once it is closed and every close it ever started - the
 * listener's may have begun long before (mig_channel_stop_listening) - has
 * run its callback: only then may its memory be set up anew or freed.
 */
static void mig_channel_close_done(struct mig_channel *ch)
{
	if (--ch->pending_closes || !ch->closed)
		return;
	free(ch->rbuf);
	ch->rbuf = NULL;
	mig_splice_close(&ch->sp);
	mig_tls_release(ch);
	if (ch->on_closed)
		ch->on_closed(ch);
}

static void mig_channel_handle_closed(uv_handle_t *h)
{
	mig_channel_close_done(h->data);
}

void mig_channel_close_one(struct mig_channel *ch, uv_handle_t *h)
{
	if (!h->loop || uv_is_closing(h))
		return;
	h->data = ch;
	ch->pending_closes++;
	uv_close(h, mig_channel_handle_closed);
}

void mig_channel_close(struct mig_channel *ch,
		       void (*on_closed)(struct mig_channel *ch))
{
	if (ch->closed)
		return;
	ch->closed = true;
	ch->listening = false;
	ch->on_closed = on_closed;
	ch->pending_closes++; /* held until every close is queued */
	mig_channel_close_one(ch, (uv_handle_t *)&ch->timer);
	mig_channel_close_one(ch, (uv_handle_t *)&ch->rearm);
	mig_tls_close(ch); /* the poll handle goes before the socket's */
	if (ch->poll_init)
		mig_channel_close_one(ch, (uv_handle_t *)&ch->poll);
	mig_channel_close_one(ch, (uv_handle_t *)&ch->tcp);
	mig_channel_close_one(ch, (uv_handle_t *)&ch->listener);
	mig_channel_close_done(ch);
}

/* ---- stall detection
 * --------------------------------------------------------- */

unsigned int mig_channel_stall_ms = MIG_CHANNEL_STALL_MS;

void mig_channel_progress(struct mig_channel *ch)
{
	ch->last_progress_ms = uv_now(ch->loop);
}

/* A connection with work outstanding that moves no byte for too long. */
static void mig_channel_on_timer(uv_timer_t *t)
{
	struct mig_channel *ch = t->data;
	uint64_t idle = uv_now(ch->loop) - ch->last_progress_ms;

	if (idle < mig_channel_stall_ms)
		return;
	/* Quiet is fine once up: a connect or a handshake must progress. */
	if (ch->idle_ok && ch->connected && (!ch->tls_ctx || ch->tls_up) &&
	    !ch->queued && !ch->flush_close) {
		mig_channel_progress(ch); /* nothing owed either way */
		return;
	}
	if (ch->flush_close) {
		mig_channel_close(ch, ch->on_closed);
		return;
	}
	mig_channel_fail(ch, -ETIMEDOUT,
			 "%s: no progress for %llu s (peer stalled or gone)",
			 ch->peer, (unsigned long long)idle / 1000);
}

int mig_channel_init(struct mig_channel *ch, uv_loop_t *loop, const char *spec,
		     const struct mig_channel_ops *ops, void *opaque)
{
	int r;

	/* Never over handles libuv still holds: their closes run first. */
	if (ch->loop && !(ch->closed && !ch->pending_closes))
		return -EBUSY;
	memset(ch, 0, sizeof(*ch));
	ch->loop = loop;
	ch->ops = ops;
	ch->opaque = opaque;
	snprintf(ch->peer, sizeof(ch->peer), "%s", spec);
	r = uv_timer_init(loop, &ch->timer);
	if (r)
		return r;
	r = uv_idle_init(loop, &ch->rearm);
	if (r)
		return r;
	ch->timer.data = ch;
	ch->rearm.data = ch;
	ch->tcp.data = ch;
	ch->listener.data = ch;
	mig_channel_progress(ch);
	return uv_timer_start(&ch->timer, mig_channel_on_timer, 1000, 1000);
}

/* (Re)start the stall watch: one check a second. */
void mig_channel_watch(struct mig_channel *ch)
{
	uv_timer_start(&ch->timer, mig_channel_on_timer, 1000, 1000);
}

/* Parse the address and set the channel up: the part both ends share. */
int mig_channel_prepare(struct mig_channel *ch, uv_loop_t *loop,
			const char *spec, const struct mig_channel_ops *ops,
			void *opaque, struct sockaddr_storage *ss, char *err,
			size_t errlen)
{
	int r = mig_addr_parse(spec, ss, err, errlen);

	if (r)
		return r;
	r = mig_channel_init(ch, loop, spec, ops, opaque);
	if (r)
		snprintf(err, errlen, "%s: %s", spec, uv_strerror(r));
	return r;
}

/* ---- reading ----------------------------------------------------------------
 */

#define MIG_CHANNEL_HEAD_READ 4096 /* a header and a PAGES frame's runs */

int mig_channel_room(struct mig_channel *ch, uint8_t **room, size_t *len)
{
	size_t want = ch->rlen + 65536;

	if (want > ch->rcap) {
		size_t cap = ch->rcap ? ch->rcap : 65536;
		uint8_t *p;

		while (cap < want)
			cap *= 2;
		p = realloc(ch->rbuf, cap);
		if (!p)
			return -ENOMEM;
		ch->rbuf = p;
		ch->rcap = cap;
	}
	want = ch->rcap - ch->rlen;
	if (ch->read_chunk && want > ch->read_chunk)
		want = ch->read_chunk;
	/*
	 * Up to the end of the frame being read, not into the next one, and
	 * no more than MIG_CHANNEL_HEAD_READ when none is begun: once
	 * handled, little or nothing is left over to move to rbuf's front.
	 */
	if (ch->frame_rest && want > ch->frame_rest)
		want = ch->frame_rest;
	else if (!ch->frame_rest && want > MIG_CHANNEL_HEAD_READ)
		want = MIG_CHANNEL_HEAD_READ;
	*room = ch->rbuf + ch->rlen;
	*len = want;
	return 0;
}

static void mig_channel_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct mig_channel *ch = h->data;
	uint8_t *p;
	size_t n;

	(void)hint;
	if (ch->sp.rest) /* UV_ENOBUFS: mig_channel_splice_step */
		*buf = uv_buf_init(NULL, 0);
	else if (mig_channel_room(ch, &p, &n))
		*buf = uv_buf_init(NULL, 0);
	else
		*buf = uv_buf_init((char *)p, n);
}

/*
 * Bytes that are not a frame header: a TLS peer talking to this plaintext
 * end says so (its ClientHello, or the alert a TLS listener answers a
 * plaintext HELLO with), which is then the error.
 */
static bool mig_channel_sniff_tls(struct mig_channel *ch, const uint8_t *p,
				  size_t n)
{
	const char *what = NULL;

	if (ch->tls_ctx)
		return false;
	if (tls_looks_like_client_hello(p, n))
		what = "it sent a ClientHello";
	else if (tls_looks_like_record(p, n))
		what = "it answered with a TLS record";
	if (!what)
		return false;
	mig_channel_fail(ch, -EPROTO,
			 "%s: the peer speaks TLS (%s) and this end has no "
			 "--tls-dir; give both ends --tls-dir",
			 ch->peer, what);
	return true;
}

void mig_channel_eof(struct mig_channel *ch)
{
	if (ch->rbuf && mig_channel_sniff_tls(ch, ch->rbuf, ch->rlen))
		return;
	mig_channel_fail(ch, -ECONNRESET, "%s: connection closed by peer",
			 ch->peer);
}

/* Hand every complete frame in rbuf to on_frame. */
static void mig_channel_parse(struct mig_channel *ch)
{
	char err[256];
	size_t off = 0;
	int r;

	ch->frame_rest = 0;
	while (!ch->failed && !ch->closed && !ch->detached &&
	       ch->rlen - off >= PROTO_HDR_SIZE) {
		struct proto_hdr h;
		const uint8_t *f = ch->rbuf + off;

		if (proto_hdr_decode(f, &h, err, sizeof(err))) {
			if (!mig_channel_sniff_tls(ch, f, ch->rlen - off))
				mig_channel_fail(ch, -EPROTO, "%s: %s",
						 ch->peer, err);
			return;
		}
		if (ch->rlen - off < PROTO_HDR_SIZE + (size_t)h.len) {
			ch->frame_rest =
				PROTO_HDR_SIZE + h.len - (ch->rlen - off);
			r = mig_channel_splice_try(ch, &h, f, ch->rlen - off);
			if (r < 0)
				return;
			if (r > 0) { /* used: the rest comes by splice */
				ch->rlen = off;
				ch->frame_rest = 0;
			}
			break;
		}
		if (proto_frame_check(f, &h, err, sizeof(err))) {
			mig_channel_fail(ch, -EPROTO, "%s: %s", ch->peer, err);
			return;
		}
		off += PROTO_HDR_SIZE + h.len;
		ch->parse_off = off;
		ch->ops->on_frame(ch, &h, f + PROTO_HDR_SIZE);
	}
	ch->parse_off = 0;
	if (ch->rbuf && off) {
		memmove(ch->rbuf, ch->rbuf + off, ch->rlen - off);
		ch->rlen -= off;
	}
}

static void mig_channel_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* Next turn of the loop after a read_chunk read: read again. */
static void mig_channel_on_rearm(uv_idle_t *h)
{
	struct mig_channel *ch = h->data;
	int r;

	uv_idle_stop(h);
	if (ch->closed || ch->failed || ch->flush_close || ch->detached)
		return;
	if (ch->tls_ctx) {
		mig_tls_resume(ch);
		return;
	}
	r = uv_read_start((uv_stream_t *)&ch->tcp, mig_channel_alloc,
			  mig_channel_on_read);
	if (r)
		mig_channel_fail(ch, r, "%s: %s", ch->peer, uv_strerror(r));
}

/* After one read_chunk read: let the loop serve the others first. */
static void mig_channel_yield(struct mig_channel *ch)
{
	if (!ch->read_chunk || ch->closed || ch->failed || ch->flush_close ||
	    ch->detached)
		return;
	if (ch->tls_ctx)
		mig_tls_yield(ch);
	else
		uv_read_stop((uv_stream_t *)&ch->tcp);
	uv_idle_start(&ch->rearm, mig_channel_on_rearm);
}

static void mig_channel_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct mig_channel *ch = s->data;

	(void)buf;
	if (n == UV_ENOBUFS && ch->sp.rest) {
		mig_channel_splice_step(ch);
		mig_channel_yield(ch);
		return;
	}
	if (n == UV_ENOBUFS) {
		mig_channel_fail(ch, -ENOMEM, "%s: out of memory", ch->peer);
		return;
	}
	if (n == UV_EOF) {
		mig_channel_eof(ch);
		return;
	}
	if (n == UV_ECONNRESET && ch->rbuf &&
	    mig_channel_sniff_tls(ch, ch->rbuf, ch->rlen))
		return;
	if (n < 0) {
		mig_channel_fail(ch, (int)n, "%s: %s", ch->peer,
				 uv_strerror(n));
		return;
	}
	mig_channel_got(ch, (size_t)n);
}

void mig_channel_got(struct mig_channel *ch, size_t n)
{
	ch->rlen += n;
	ch->bytes_in += n;
	mig_channel_progress(ch);
	mig_channel_parse(ch);
	mig_channel_yield(ch);
}

/* Connected: read (plaintext) or start the TLS handshake. */
int mig_channel_start(struct mig_channel *ch)
{
	ch->connected = true;
	uv_tcp_nodelay(&ch->tcp, 1);
	mig_channel_progress(ch);
	if (ch->tls_ctx)
		return mig_tls_start(ch);
	return uv_read_start((uv_stream_t *)&ch->tcp, mig_channel_alloc,
			     mig_channel_on_read);
}

/* ---- writing
 * ------------------------------------------------------------------- */

static size_t mig_channel_high(const struct mig_channel *ch)
{
	return ch->high ? ch->high : MIG_CHANNEL_HIGH;
}

static void mig_channel_on_write(uv_write_t *req, int status)
{
	struct mig_write *w = req->data;
	struct mig_channel *ch = w->ch;
	size_t len = w->len;

	free(w->frame);
	free(w);
	mig_channel_wrote(ch, len, status);
}

void mig_channel_wrote(struct mig_channel *ch, size_t len, int status)
{
	bool was_high = ch->queued >= mig_channel_high(ch) / 2;

	ch->queued -= len;
	if (!status)
		ch->bytes_out += len;
	if (ch->flush_close && (status || !ch->queued)) {
		mig_channel_close(ch, ch->on_closed);
		return;
	}
	if (status) {
		if (status != UV_ECANCELED)
			mig_channel_fail(ch, status, "%s: %s", ch->peer,
					 uv_strerror(status));
		return;
	}
	mig_channel_progress(ch);
	if (was_high && ch->queued < mig_channel_high(ch) / 2 && !ch->failed &&
	    !ch->closed && ch->ops->on_drain)
		ch->ops->on_drain(ch);
}

/* Queue frame (len bytes on the wire: bufs, the first of them frame). */
static int mig_channel_queue(struct mig_channel *ch, uint8_t *frame, size_t len,
			     const uv_buf_t *bufs, unsigned int nbufs)
{
	struct mig_write *w;
	int r;

	if (ch->failed || ch->closed || !ch->connected || ch->detached) {
		free(frame);
		return -EPIPE;
	}
	w = malloc(sizeof(*w));
	if (!w) {
		free(frame);
		return -ENOMEM;
	}
	w->ch = ch;
	w->frame = frame;
	w->len = len;
	w->next = NULL;
	w->req.data = w;
	if (ch->tls_ctx) {
		ch->queued += len;
		mig_tls_send(ch, w);
		return ch->failed ? -EPIPE : 0;
	}
	/* libuv keeps a copy of bufs (not of the bytes) until written. */
	r = uv_write(&w->req, (uv_stream_t *)&ch->tcp, bufs, nbufs,
		     mig_channel_on_write);
	if (r) {
		free(frame);
		free(w);
		mig_channel_fail(ch, r, "%s: %s", ch->peer, uv_strerror(r));
		return r;
	}
	ch->queued += len;
	return 0;
}

int mig_channel_send(struct mig_channel *ch, uint8_t *frame, size_t len)
{
	uv_buf_t buf = uv_buf_init((char *)frame, len);

	return mig_channel_queue(ch, frame, len, &buf, 1);
}

/* TLS encrypts one buffer: gather the frame into one. */
static int mig_channel_send_gathered(struct mig_channel *ch, uint8_t *head,
				     size_t hlen, const struct iovec *iov,
				     int niov, size_t len)
{
	uint8_t *f = malloc(len), *q;

	if (!f) {
		free(head);
		return -ENOMEM;
	}
	memcpy(f, head, hlen);
	free(head);
	q = f + hlen;
	for (int i = 0; i < niov; i++) {
		memcpy(q, iov[i].iov_base, iov[i].iov_len);
		q += iov[i].iov_len;
	}
	return mig_channel_send(ch, f, len);
}

int mig_channel_sendv(struct mig_channel *ch, uint8_t *head, size_t hlen,
		      const struct iovec *iov, int niov)
{
	uv_buf_t bufs[1 + MIG_CHANNEL_MAX_IOV];
	size_t len = hlen;

	if (niov < 0 || niov > MIG_CHANNEL_MAX_IOV) {
		free(head);
		return -EINVAL;
	}
	for (int i = 0; i < niov; i++)
		len += iov[i].iov_len;
	if (ch->tls_ctx)
		return mig_channel_send_gathered(ch, head, hlen, iov, niov,
						 len);
	bufs[0] = uv_buf_init((char *)head, hlen);
	for (int i = 0; i < niov; i++)
		bufs[1 + i] = uv_buf_init(iov[i].iov_base, iov[i].iov_len);
	return mig_channel_queue(ch, head, len, bufs, 1 + (unsigned int)niov);
}

int mig_channel_send_copy(struct mig_channel *ch, const uint8_t *buf, int n)
{
	uint8_t *f;

	if (n <= 0)
		return n ? n : -EINVAL;
	f = malloc(n);
	if (!f)
		return -ENOMEM;
	memcpy(f, buf, n);
	return mig_channel_send(ch, f, n);
}

bool mig_channel_writable(const struct mig_channel *ch)
{
	return !ch->failed && !ch->closed && ch->connected &&
	       ch->queued < mig_channel_high(ch);
}

void mig_channel_close_after_flush(struct mig_channel *ch,
				   void (*on_closed)(struct mig_channel *ch))
{
	if (ch->closed || ch->flush_close)
		return;
	if (!ch->connected || ch->failed || !ch->queued) {
		mig_channel_close(ch, on_closed);
		return;
	}
	ch->flush_close = true;
	ch->on_closed = on_closed;
	uv_read_stop((uv_stream_t *)&ch->tcp);
	if (ch->tls_ctx)
		mig_tls_resume(ch); /* re-armed without reading */
}
