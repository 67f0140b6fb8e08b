/* SPDX-License-Identifier: MIT */
/*
 * channel_splice.c - a frame's data from the socket to its receiver without
 * a copy through user space (mig_channel_ops.splice_begin): the channel
 * reads a frame's header and the part its CRC covers as usual, and when
 * the receiver takes the frame, the data goes socket -> pipe by splice(2)
 * (the socket buffer's pages move, nothing is copied) and the receiver
 * moves it on from the pipe (into guest RAM's memfd: one copy in all, where
 * read() + pwrite() make two). Plaintext only: TLS must decrypt in user
 * space. libuv keeps the socket: while a frame is being spliced the read
 * buffer the channel offers is empty, libuv reports UV_ENOBUFS on each
 * readable wakeup (its poll is level-triggered), and the channel splices
 * what has come instead (mig_channel_splice_step). Event-loop thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "migration/channel_int.h"

/* Smaller remainders are read as usual: a splice costs two system calls. */
#define MIG_SPLICE_MIN (64U << 10)
/* The pipe holds a whole batch's data: one socket -> pipe splice a turn. */
#define MIG_SPLICE_PIPE (1U << 20)

static int mig_splice_pipe(struct mig_channel *ch)
{
	if (ch->spipe_open)
		return 0;
	if (pipe2(ch->spipe, O_CLOEXEC) < 0)
		return -errno;
	/* Best effort: a smaller pipe only means more turns. */
	(void)fcntl(ch->spipe[1], F_SETPIPE_SZ, MIG_SPLICE_PIPE);
	ch->spipe_open = true;
	return 0;
}

void mig_channel_splice_close(struct mig_channel *ch)
{
	if (!ch->spipe_open)
		return;
	close(ch->spipe[0]);
	close(ch->spipe[1]);
	ch->spipe_open = false;
}

/*
 * The frame whose first have bytes (header included) are at f lacks its
 * last frame_rest: offer it to the receiver. 1: taken (splice_rest set),
 * 0: read it as usual, -1: the channel failed.
 */
int mig_channel_splice_try(struct mig_channel *ch, const struct proto_hdr *h,
			   const uint8_t *f, size_t have)
{
	const uint8_t *payload = f + PROTO_HDR_SIZE;
	size_t got = have - PROTO_HDR_SIZE;
	char err[400];
	size_t crc;
	int r;

	if (!ch->ops->splice_begin || ch->tls_ctx ||
	    ch->frame_rest < MIG_SPLICE_MIN)
		return 0;
	crc = proto_frame_crc_len(h->type, payload, h->len);
	if (crc >= h->len || crc > got)
		return 0; /* the data is under the CRC, or the head not here */
	if (proto_frame_check(f, h, err, sizeof(err))) {
		mig_channel_fail(ch, -EPROTO, "%s: %s", ch->peer, err);
		return -1;
	}
	if (mig_splice_pipe(ch))
		return 0; /* no pipe (out of descriptors?): the plain way */
	r = ch->ops->splice_begin(ch, h, payload, got, err, sizeof(err));
	if (r < 0) {
		mig_channel_fail(ch, r, "%s: %s", ch->peer, err);
		return -1;
	}
	if (r > 0)
		ch->splice_rest = ch->frame_rest;
	return r > 0;
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

	while (ch->splice_rest && !ch->failed && !ch->closed) {
		size_t want = ch->splice_rest < MIG_SPLICE_PIPE
				      ? ch->splice_rest
				      : MIG_SPLICE_PIPE;
		ssize_t n = splice(fd, NULL, ch->spipe[1], NULL, want,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		int r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return; /* nothing more yet: the next wakeup */
		if (n == 0) {
			mig_channel_eof(ch);
			return;
		}
		if (n < 0) {
			mig_channel_fail(ch, -errno, "%s: splice: %s", ch->peer,
					 strerror(errno));
			return;
		}
		ch->bytes_in += (size_t)n;
		ch->bytes_spliced += (size_t)n;
		mig_channel_progress(ch);
		r = ch->ops->splice_data(ch, ch->spipe[0], (size_t)n, err,
					 sizeof(err));
		if (r) {
			mig_channel_fail(ch, r, "%s: %s", ch->peer, err);
			return;
		}
		ch->splice_rest -= (size_t)n;
	}
}
