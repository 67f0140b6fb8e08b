/* SPDX-License-Identifier: MIT */
/*
 * channel_splice.c - splice.h, and its use by a libuv channel
 * (mig_channel_ops.splice_begin): libuv keeps the socket; while a frame is
 * being spliced the read buffer the channel offers is empty, libuv reports
 * UV_ENOBUFS on each readable wakeup (its poll is level-triggered), and
 * the channel splices what has come instead (mig_channel_splice_step).
 * The channel's part runs on the event-loop thread; mig_splice_* on the
 * thread that reads the socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "migration/channel_int.h"
#include "migration/splice.h"

/* ---- splice.h ------------------------------------------------------------ */

int mig_splice_offer(const struct proto_hdr *h, const uint8_t *f, size_t have,
		     size_t rest, char *err, size_t errlen)
{
	size_t got = have - PROTO_HDR_SIZE, crc;

	/* The fixed fields that say where the CRC ends must be here. */
	if (rest < MIG_SPLICE_MIN || got < MIG_SPLICE_HEAD_MIN)
		return 0;
	crc = proto_frame_crc_len(h->type, f + PROTO_HDR_SIZE, h->len);
	if (crc >= h->len || crc > got)
		return 0; /* the data is under the CRC, or the head not here */
	if (proto_frame_check(f, h, err, errlen))
		return -EPROTO;
	return 1;
}

int mig_splice_take(struct mig_splice *s, int how, size_t rest, char *err,
		    size_t errlen)
{
	s->rest = rest;
	s->direct = how == MIG_SPLICE_DIRECT;
	if (s->direct || s->open)
		return 0;
	if (pipe2(s->pipe, O_CLOEXEC) < 0) {
		int e = errno;

		snprintf(err, errlen, "splice: pipe: %s", strerror(e));
		return -e;
	}
	/* Best effort: a smaller pipe only means more turns. */
	(void)fcntl(s->pipe[1], F_SETPIPE_SZ, MIG_SPLICE_PIPE_SIZE);
	s->open = true;
	return 0;
}

ssize_t mig_splice_read(struct mig_splice *s, int fd)
{
	size_t want =
		s->rest < MIG_SPLICE_PIPE_SIZE ? s->rest : MIG_SPLICE_PIPE_SIZE;
	ssize_t n;

	do
		n = splice(fd, NULL, s->pipe[1], NULL, want,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno; /* -EAGAIN: nothing yet */
	s->rest -= (size_t)n;
	return n;
}

ssize_t mig_splice_readv(struct mig_splice *s, int fd, const struct iovec *iov,
			 int niov)
{
	ssize_t n;

	do
		n = readv(fd, iov, niov);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	s->rest -= (size_t)n;
	return n;
}

void mig_splice_close(struct mig_splice *s)
{
	if (!s->open)
		return;
	close(s->pipe[0]);
	close(s->pipe[1]);
	s->open = false;
}

/* ---- a libuv channel ----------------------------------------------------- */

/*
 * The frame whose first have bytes (header included) are at f lacks its
 * last frame_rest: offer it to the receiver. 1: taken (sp.rest set), 0:
 * read it as usual, -1: the channel failed.
 */
int mig_channel_splice_try(struct mig_channel *ch, const struct proto_hdr *h,
			   const uint8_t *f, size_t have)
{
	char err[400];
	int r;

	if (!ch->ops->splice_begin || ch->tls_ctx)
		return 0;
	r = mig_splice_offer(h, f, have, ch->frame_rest, err, sizeof(err));
	if (r > 0)
		r = ch->ops->splice_begin(ch, h, f + PROTO_HDR_SIZE,
					  have - PROTO_HDR_SIZE, err,
					  sizeof(err));
	if (r > 0) {
		int e = mig_splice_take(&ch->sp, r, ch->frame_rest, err,
					sizeof(err));

		r = e ? e : r;
	}
	if (r < 0) {
		mig_channel_fail(ch, r, "%s: %s", ch->peer, err);
		return -1;
	}
	return r > 0;
}

/*
 * The next bytes of the frame being taken: into the pipe and on to the
 * receiver, or read by the receiver itself. Bytes moved, -EAGAIN, 0 at
 * EOF, or another -errno with err set.
 */
static ssize_t mig_channel_splice_pull(struct mig_channel *ch, int fd,
				       char *err, size_t errlen)
{
	struct iovec iov[MIG_SPLICE_IOV];
	ssize_t n;
	int r;

	if (ch->sp.direct) {
		r = ch->ops->splice_iov(ch, ch->sp.rest, iov, MIG_SPLICE_IOV,
					err, errlen);
		if (r < 0)
			return r;
		n = mig_splice_readv(&ch->sp, fd, iov, r);
	} else {
		n = mig_splice_read(&ch->sp, fd);
	}
	if (n < 0 && n != -EAGAIN)
		snprintf(err, errlen, "%s: %s",
			 ch->sp.direct ? "reading pages" : "splice",
			 strerror((int)-n));
	if (n <= 0)
		return n;
	r = ch->sp.direct ? ch->ops->splice_placed(ch, (size_t)n, err, errlen)
			  : ch->ops->splice_data(ch, ch->sp.pipe[0], (size_t)n,
						 err, errlen);
	return r ? r : n;
}

/* Socket readable while a frame is spliced: move what has come. */
void mig_channel_splice_step(struct mig_channel *ch)
{
	char err[400];
	uv_os_fd_t fd;

	if (uv_fileno((uv_handle_t *)&ch->tcp, &fd)) {
		mig_channel_fail(ch, -EBADF, "%s: splice: no socket", ch->peer);
		return;
	}
	while (ch->sp.rest && !ch->failed && !ch->closed) {
		ssize_t n = mig_channel_splice_pull(ch, fd, err, sizeof(err));

		if (n == -EAGAIN)
			return; /* nothing more yet: the next wakeup */
		if (n == 0) {
			mig_channel_eof(ch);
			return;
		}
		if (n < 0) {
			mig_channel_fail(ch, (int)n, "%s: %s", ch->peer, err);
			return;
		}
		ch->bytes_in += (size_t)n;
		mig_channel_progress(ch);
	}
}
