/* SPDX-License-Identifier: MIT */
/*
 * urgent.c - the urgent connection's thread: poll(), read, parse, hand
 * frames over; write answers in place. See urgent.h.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/sched.h"
#include "migration/tls.h"
#include "migration/urgent.h"

#define URGENT_READ	(64U << 10)
#define URGENT_POLL_MS	100    /* a send re-checks the stop flag this often */
#define URGENT_SLICE_NS 100000 /* the shortest slice the kernel grants */

/* Bytes a read asks for (ops->read_size, else URGENT_READ). */
static size_t urgent_chunk(const struct mig_urgent *u)
{
	return u->ops->read_size ? u->ops->read_size : URGENT_READ;
}

static bool urgent_stopping(struct mig_urgent *u)
{
	return atomic_load(&u->stop);
}

/* Wait (a slice at a time, for the stop flag) for what the session wants. */
static int urgent_tls_wait(struct mig_urgent *u)
{
	struct pollfd pfd = {.fd = u->fd};

	pfd.events = (u->tls->want_read ? POLLIN : 0) |
		     (u->tls->want_write ? POLLOUT : 0);
	if (urgent_stopping(u))
		return -ECANCELED;
	if (poll(&pfd, 1, URGENT_POLL_MS) < 0 && errno != EINTR)
		return -errno;
	return 0;
}

static int urgent_tls_send(struct mig_urgent *u, const uint8_t *frame,
			   size_t len)
{
	char err[512];

	while (len) {
		ssize_t n =
			tls_conn_write(u->tls, frame, len, err, sizeof(err));
		int r;

		if (n > 0) {
			frame += n;
			len -= (size_t)n;
			u->bytes_out += (uint64_t)n;
			continue;
		}
		if (n != -EAGAIN)
			return (int)n;
		r = urgent_tls_wait(u);
		if (r)
			return r;
	}
	return 0;
}

int mig_urgent_send(struct mig_urgent *u, const uint8_t *frame, size_t len)
{
	if (u->tls)
		return urgent_tls_send(u, frame, len);
	while (len) {
		ssize_t n = send(u->fd, frame, len, MSG_NOSIGNAL);
		struct pollfd pfd = {.fd = u->fd, .events = POLLOUT};

		if (n > 0) {
			frame += n;
			len -= (size_t)n;
			u->bytes_out += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (urgent_stopping(u))
			return -ECANCELED;
		if (poll(&pfd, 1, URGENT_POLL_MS) < 0 && errno != EINTR)
			return -errno;
	}
	return 0;
}

static int urgent_grow(struct mig_urgent *u, size_t want, char *err,
		       size_t errlen)
{
	size_t cap = u->rcap ? u->rcap : URGENT_READ;
	uint8_t *p;

	if (want <= u->rcap)
		return 0;
	while (cap < want)
		cap *= 2;
	p = realloc(u->rbuf, cap);
	if (!p) {
		snprintf(err, errlen, "%s: out of memory", u->peer);
		return -ENOMEM;
	}
	u->rbuf = p;
	u->rcap = cap;
	return 0;
}

/*
 * The frame at off lacks rest bytes: offer it to the receiver (splice.h).
 * 1: taken (u->sp.rest set), 0: read it as usual, or -errno (err set).
 */
static int urgent_splice_try(struct mig_urgent *u, const struct proto_hdr *h,
			     size_t off, size_t rest, char *err, size_t errlen)
{
	const uint8_t *f = u->rbuf + off;
	size_t have = u->rlen - off;
	char why[256];
	int r;

	if (!u->ops->splice_begin || u->tls)
		return 0;
	r = mig_splice_offer(h, f, have, rest, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", u->peer, why);
		return r;
	}
	if (r > 0)
		r = u->ops->splice_begin(u->opaque, h, f + PROTO_HDR_SIZE,
					 have - PROTO_HDR_SIZE, err, errlen);
	u->cb_failed = r < 0;
	if (r > 0) {
		int e = mig_splice_take(&u->sp, r, rest, why, sizeof(why));

		if (e) {
			snprintf(err, errlen, "%s: %s", u->peer, why);
			return e;
		}
	}
	return r;
}

/* Every complete frame in rbuf to on_frame. */
static int urgent_parse(struct mig_urgent *u, char *err, size_t errlen)
{
	char why[256];
	size_t off = 0;
	int r = 0;

	while (!r && u->rlen - off >= PROTO_HDR_SIZE) {
		const uint8_t *f = u->rbuf + off;
		struct proto_hdr h;

		if (proto_hdr_decode(f, &h, why, sizeof(why)) ||
		    (u->rlen - off >= PROTO_HDR_SIZE + (size_t)h.len &&
		     proto_frame_check(f, &h, why, sizeof(why)))) {
			snprintf(err, errlen, "%s: %s", u->peer, why);
			return -EPROTO;
		}
		if (u->rlen - off < PROTO_HDR_SIZE + (size_t)h.len) {
			r = urgent_splice_try(u, &h, off,
					      PROTO_HDR_SIZE + h.len -
						      (u->rlen - off),
					      err, errlen);
			if (r > 0) { /* used: the rest comes by splice */
				u->rlen = off;
				r = 0;
			}
			break;
		}
		off += PROTO_HDR_SIZE + h.len;
		r = u->ops->on_frame(u->opaque, &h, f + PROTO_HDR_SIZE, err,
				     errlen);
		u->cb_failed = r != 0;
	}
	memmove(u->rbuf, u->rbuf + off, u->rlen - off);
	u->rlen -= off;
	return r;
}

/* Everything the session has, frame by frame (urgent_read's TLS twin). */
static int urgent_tls_read(struct mig_urgent *u, char *err, size_t errlen)
{
	char why[400];
	int r = 0;

	while (!r && !urgent_stopping(u)) {
		ssize_t n =
			urgent_grow(u, u->rlen + urgent_chunk(u), err, errlen);

		if (n)
			return (int)n;
		n = tls_conn_read(u->tls, u->rbuf + u->rlen, u->rcap - u->rlen,
				  why, sizeof(why));
		if (n == -EAGAIN)
			return 0;
		if (n <= 0) {
			snprintf(err, errlen, "%s: %s", u->peer,
				 n ? why : "connection closed by peer");
			return n ? (int)n : -ECONNRESET;
		}
		u->rlen += (size_t)n;
		u->bytes_in += (uint64_t)n;
		r = urgent_parse(u, err, errlen);
	}
	return r;
}

/* A frame is being spliced: move what has come to the receiver. */
static int urgent_splice_step(struct mig_urgent *u, char *err, size_t errlen)
{
	while (u->sp.rest && !urgent_stopping(u)) {
		struct iovec iov[MIG_SPLICE_IOV];
		ssize_t n;
		int r = 0;

		if (u->sp.direct)
			r = u->ops->splice_iov(u->opaque, u->sp.rest, iov,
					       MIG_SPLICE_IOV, err, errlen);
		u->cb_failed = r < 0;
		if (r < 0)
			return r;
		n = u->sp.direct ? mig_splice_readv(&u->sp, u->fd, iov, r)
				 : mig_splice_read(&u->sp, u->fd);
		if (n == -EAGAIN)
			return 0;
		if (n <= 0) {
			snprintf(err, errlen, "%s: %s", u->peer,
				 n ? strerror((int)-n)
				   : "connection closed by peer");
			return n ? (int)n : -ECONNRESET;
		}
		u->bytes_in += (uint64_t)n;
		r = u->sp.direct ? u->ops->splice_placed(u->opaque, (size_t)n,
							 err, errlen)
				 : u->ops->splice_data(u->opaque, u->sp.pipe[0],
						       (size_t)n, err, errlen);
		u->cb_failed = r != 0;
		if (r)
			return r;
	}
	return 0;
}

/*
 * Bytes to ask for: a read_size chunk, but only a header's worth between
 * frames when frames may be spliced (so that their data is left in the
 * socket for splice, not read into rbuf).
 */
static size_t urgent_want(const struct mig_urgent *u)
{
	if (u->ops->splice_begin && !u->rlen)
		return PROTO_PAGES_HEAD_MAX;
	return u->rcap - u->rlen;
}

static int urgent_read(struct mig_urgent *u, char *err, size_t errlen)
{
	ssize_t n;
	int r;

	if (u->tls)
		return urgent_tls_read(u, err, errlen);
	if (u->sp.rest)
		return urgent_splice_step(u, err, errlen);
	r = urgent_grow(u, u->rlen + urgent_chunk(u), err, errlen);
	if (r)
		return r;
	n = recv(u->fd, u->rbuf + u->rlen, urgent_want(u), 0);
	if (n == 0) {
		snprintf(err, errlen, "%s: connection closed by peer", u->peer);
		return -ECONNRESET;
	}
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		r = -errno;
		snprintf(err, errlen, "%s: %s", u->peer, strerror(errno));
		return r;
	}
	u->rlen += (size_t)n;
	u->bytes_in += (uint64_t)n;
	return urgent_parse(u, err, errlen);
}

static int urgent_woken(struct mig_urgent *u, char *err, size_t errlen)
{
	uint64_t v;
	int r;

	if (read(u->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN) {
		r = -errno;
		snprintf(err, errlen, "%s: eventfd: %s", u->peer, strerror(-r));
		return r;
	}
	if (urgent_stopping(u) || !u->ops->on_wake)
		return 0;
	r = u->ops->on_wake(u->opaque, err, errlen);
	u->cb_failed = r != 0;
	return r;
}

/*
 * ops->realtime: SCHED_FIFO at the lowest real-time priority, so that a
 * request preempts the bulk work of the same process at once. The thread
 * sleeps in poll() and does little per frame; the kernel's real-time
 * throttling (sched_rt_runtime_us) bounds it even under a request flood.
 * Without the privilege (EPERM) it runs at normal priority: only slower.
 * Otherwise (the destination's, which shares the cores with the vCPUs
 * real-time would preempt for whole slices) a short time slice: it still
 * preempts the bulk work when an answer wakes it, but stays fair.
 */
static void urgent_set_realtime(struct mig_urgent *u)
{
	struct sched_param sp = {.sched_priority = 1};

	if (u->ops->realtime)
		u->rt_err =
			pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
	else
		u->rt_err = -sched_short_slice(URGENT_SLICE_NS);
}

static void *urgent_thread(void *arg)
{
	struct mig_urgent *u = arg;
	char err[512] = "";
	int r;

	urgent_set_realtime(u);
	r = u->rlen ? urgent_parse(u, err, sizeof(err)) : 0;
	/*
	 * Records the loop thread's session read past the handover wait
	 * decrypted inside it, where no poll() sees them. Each read after
	 * this drains the session to -EAGAIN.
	 */
	if (!r && u->tls && tls_conn_pending(u->tls))
		r = urgent_read(u, err, sizeof(err));

	while (!r && !urgent_stopping(u)) {
		struct pollfd pfd[2] = {
			{.fd = u->fd, .events = POLLIN},
			{.fd = u->wake_fd, .events = POLLIN},
		};

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			snprintf(err, sizeof(err), "%s: poll: %s", u->peer,
				 strerror(errno));
			break;
		}
		if (pfd[1].revents)
			r = urgent_woken(u, err, sizeof(err));
		if (!r && pfd[0].revents && !urgent_stopping(u))
			r = urgent_read(u, err, sizeof(err));
	}
	if (r && !urgent_stopping(u) && u->ops->on_end)
		u->ops->on_end(u->opaque, r, err[0] ? err : strerror(-r),
			       u->cb_failed);
	return NULL;
}

int mig_urgent_start(struct mig_urgent *u, int fd, struct tls_conn *tls,
		     const uint8_t *leftover, size_t len, const uint8_t *first,
		     size_t first_len, const char *peer,
		     const struct mig_urgent_ops *ops, void *opaque, char *err,
		     size_t errlen)
{
	int r;

	memset(u, 0, sizeof(*u));
	u->fd = fd;
	u->tls = tls;
	u->ops = ops;
	u->opaque = opaque;
	snprintf(u->peer, sizeof(u->peer), "%s", peer);
	if ((r = urgent_grow(u, len + URGENT_READ, err, errlen)))
		return r;
	if (len)
		memcpy(u->rbuf, leftover, len);
	u->rlen = len;
	if (first && (r = mig_urgent_send(u, first, first_len))) {
		snprintf(err, errlen, "%s: %s", peer, strerror(-r));
		goto fail;
	}
	u->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (u->wake_fd < 0) {
		r = -errno;
		snprintf(err, errlen, "urgent thread: eventfd: %s",
			 strerror(errno));
		goto fail;
	}
	r = -pthread_create(&u->thread, NULL, urgent_thread, u);
	if (r) {
		snprintf(err, errlen, "urgent thread: %s", strerror(-r));
		close(u->wake_fd);
		goto fail;
	}
	pthread_setname_np(u->thread, "mig-urgent"); /* a name only */
	u->running = true;
	return 0;
fail:
	free(u->rbuf);
	u->rbuf = NULL;
	return r;
}

void mig_urgent_wake(struct mig_urgent *u)
{
	uint64_t one = 1;

	/* Can only fail when the counter is full: it is woken anyway. */
	if (write(u->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		fprintf(stderr, "urgent thread: eventfd: %s\n",
			strerror(errno));
}

void mig_urgent_stop(struct mig_urgent *u)
{
	if (!u->running)
		return;
	atomic_store(&u->stop, true);
	mig_urgent_wake(u);
	pthread_join(u->thread, NULL);
	u->running = false;
	close(u->wake_fd);
	mig_splice_close(&u->sp);
	free(u->rbuf);
	u->rbuf = NULL;
	u->rlen = u->rcap = 0;
}
