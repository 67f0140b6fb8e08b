/* SPDX-License-Identifier: MIT */
/*
 * channel_unix.c - the local connection of a live update (channel_unix.h):
 * the header and the memfd by sendmsg/recvmsg (SCM_RIGHTS) on the raw
 * socket, then the socket handed to a migration channel.
 *
 * The channel's stream is a uv_tcp_t; libuv's stream code is the same for
 * every stream socket on Unix and uv_tcp_open takes any connected one, so a
 * UNIX socket is adopted as is (TCP_NODELAY, which mig_channel_start asks
 * for, does not apply and is ignored there). The header must be read with
 * recvmsg before libuv reads the socket (a plain read would drop the fd),
 * so the destination reads it on accept, before a libuv handle has the
 * socket. Event-loop thread.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "migration/channel_int.h"
#include "migration/channel_unix.h"

bool mig_addr_is_unix(const char *spec)
{
	return spec && !strncmp(spec, "unix:", 5);
}

static int mig_unix_addr(const char *spec, struct sockaddr_un *sa, char *err,
			 size_t errlen)
{
	const char *path = spec + 5;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (!mig_addr_is_unix(spec) || !*path ||
	    strlen(path) >= sizeof(sa->sun_path)) {
		snprintf(err, errlen,
			 "'%s': expected unix:PATH (a path of 1 to %zu bytes)",
			 spec, sizeof(sa->sun_path) - 1);
		return -EINVAL;
	}
	memcpy(sa->sun_path, path, strlen(path));
	return 0;
}

/* ---- the header and the memfd -------------------------------------------- */

static int mig_unix_send_hdr(int sock, int memfd, uint64_t mem_size)
{
	struct mig_unix_hdr h = {.magic = MIG_UNIX_MAGIC,
				 .version = MIG_UNIX_VERSION,
				 .nr_fds = 1,
				 .mem_size = mem_size};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} c;
	struct iovec iov = {.iov_base = &h, .iov_len = sizeof(h)};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = c.buf,
			     .msg_controllen = sizeof(c.buf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	ssize_t n;

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &memfd, sizeof(int));
	n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	if (n < 0)
		return -errno;
	return n == sizeof(h) ? 0 : -EPIPE;
}

/*
 * The header and its fd: 0, -EAGAIN (not here yet), or -EPROTO with why
 * (not a live-update source, or one this build cannot read).
 */
static int mig_unix_recv_hdr(int sock, struct mig_unix_hdr *h, int *memfd,
			     char *why, size_t whylen)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} c;
	struct iovec iov = {.iov_base = h, .iov_len = sizeof(*h)};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = c.buf,
			     .msg_controllen = sizeof(c.buf)};
	struct cmsghdr *cm;
	int nfd = 0, fds[4];
	ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return -EAGAIN;
	for (cm = CMSG_FIRSTHDR(&msg); n > 0 && cm; cm = CMSG_NXTHDR(&msg, cm))
		if (cm->cmsg_level == SOL_SOCKET &&
		    cm->cmsg_type == SCM_RIGHTS) {
			nfd = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			nfd = nfd > 4 ? 4 : nfd; /* the rest were cut (CTRUNC) */
			memcpy(fds, CMSG_DATA(cm), sizeof(int) * nfd);
		}
	if (n == sizeof(*h) && !memcmp(h->magic, MIG_UNIX_MAGIC, 8) &&
	    h->version == MIG_UNIX_VERSION && h->nr_fds == 1 && nfd == 1) {
		*memfd = fds[0];
		return 0;
	}
	for (int i = 0; i < nfd; i++)
		close(fds[i]);
	if (n < 0)
		snprintf(why, whylen, "%s", strerror(errno));
	else if (n == sizeof(*h) && !memcmp(h->magic, MIG_UNIX_MAGIC, 8))
		snprintf(why, whylen,
			 "live-update header version %u with %u fds (this "
			 "build reads version %u with 1)",
			 h->version, h->nr_fds, MIG_UNIX_VERSION);
	else
		snprintf(why, whylen, "no live-update header (%zd bytes)", n);
	return -EPROTO;
}

/* ---- the channel over the socket ----------------------------------------- */

int mig_unix_adopt(struct mig_channel *ch, uv_loop_t *loop, const char *spec,
		   int sock, const struct mig_channel_ops *ops, void *opaque,
		   char *err, size_t errlen)
{
	int r = mig_channel_init(ch, loop, spec, ops, opaque);

	if (!r)
		r = uv_tcp_init(loop, &ch->tcp);
	ch->tcp.data = ch;
	if (!r)
		r = uv_tcp_open(&ch->tcp, sock);
	if (r) {
		close(sock); /* uv_tcp_open failed: the handle does not own it
			      */
		snprintf(err, errlen, "%s: %s", spec, uv_strerror(r));
		return r;
	}
	r = mig_channel_start(ch);
	if (r)
		snprintf(err, errlen, "%s: %s", spec, uv_strerror(r));
	return r;
}

void mig_unix_touch(struct mig_channel *ch)
{
	uv_update_time(ch->loop);
	mig_channel_progress(ch);
}

int mig_unix_connect(struct mig_channel *ch, uv_loop_t *loop, const char *spec,
		     int memfd, uint64_t mem_size,
		     const struct mig_channel_ops *ops, void *opaque, char *err,
		     size_t errlen)
{
	struct sockaddr_un sa;
	int r = mig_unix_addr(spec, &sa, err, errlen);
	int sock;

	if (r)
		return r;
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (sock < 0) {
		snprintf(err, errlen, "%s: socket: %s", spec, strerror(errno));
		return -errno;
	}
	/* Local: connected at once, or refused (EAGAIN: nobody accepts). */
	if (connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot connect to %s: %s", spec,
			 strerror(errno));
	} else if ((r = mig_unix_send_hdr(sock, memfd, mem_size))) {
		snprintf(err, errlen, "%s: handing guest RAM over: %s", spec,
			 strerror(-r));
	}
	if (r) {
		close(sock);
		return r;
	}
	return mig_unix_adopt(ch, loop, spec, sock, ops, opaque, err, errlen);
}

/* ---- the destination's listener ------------------------------------------ */

/*
 * The first source is taken: nobody else may connect. The poll handle's
 * close completes on the loop's next turn, before the owner (freed only
 * after its own handles' closes, queued later) goes.
 */
static void mig_unix_stop_listening(struct mig_unix *u)
{
	uv_handle_t *h = mig_unix_close(u);

	if (h)
		uv_close(h, NULL);
}

/*
 * A connection: its header comes with the source's connect (the same
 * call), so it is read at once, waiting MIG_UNIX_HDR_MS at most for a
 * peer that sends nothing (only a local process of our user can connect).
 */
static int mig_unix_take_hdr(int fd, struct mig_unix_hdr *h, int *memfd,
			     char *why, size_t whylen)
{
	struct timeval tv = {.tv_sec = MIG_UNIX_HDR_MS / 1000,
			     .tv_usec = MIG_UNIX_HDR_MS % 1000 * 1000};
	int r;

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		snprintf(why, whylen, "SO_RCVTIMEO: %s", strerror(errno));
		return -errno;
	}
	r = mig_unix_recv_hdr(fd, h, memfd, why, whylen);
	if (r == -EAGAIN)
		snprintf(why, whylen, "no header within %d ms",
			 MIG_UNIX_HDR_MS);
	return r; /* uv_tcp_open makes the socket nonblocking */
}

static void mig_unix_on_listen(uv_poll_t *p, int status, int events)
{
	struct mig_unix *u = p->data;
	struct mig_unix_hdr h;
	char why[160];
	int fd, memfd = -1;

	(void)events;
	if (status)
		return;
	fd = accept4(u->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return; /* EAGAIN, or a connection that went away */
	if (mig_unix_take_hdr(fd, &h, &memfd, why, sizeof(why))) {
		u->strays++;
		fprintf(stderr,
			"vmm: incoming migration: dropped a connection on "
			"unix:%s that is not a live-update source (%s); "
			"still listening\n",
			u->path, why);
		close(fd);
		return;
	}
	mig_unix_stop_listening(u);
	u->on_accept(u, fd, memfd, &h);
}

/* The socket file is the source's only way in: mode 0600 from the start. */
static int mig_unix_bind(struct mig_unix *u, const char *spec, char *err,
			 size_t errlen)
{
	struct sockaddr_un sa;
	mode_t old;
	int r = mig_unix_addr(spec, &sa, err, errlen);

	if (r)
		return r;
	snprintf(u->path, sizeof(u->path), "%s", sa.sun_path);
	u->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (u->lfd < 0) {
		snprintf(err, errlen, "%s: socket: %s", spec, strerror(errno));
		return -errno;
	}
	old = umask(0177); /* main thread, before any vCPU or device thread */
	r = bind(u->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	if (!r && listen(u->lfd, 1) < 0) {
		r = -errno;
		unlink(u->path);
	}
	if (r) {
		snprintf(err, errlen, "%s: %s%s", spec, strerror(-r),
			 r == -EADDRINUSE ? " (the file exists: remove it "
					    "or pick another path)"
					  : "");
		close(u->lfd);
		u->lfd = -1;
	}
	return r;
}

int mig_unix_listen(struct mig_unix *u, uv_loop_t *loop, const char *spec,
		    mig_unix_accept_fn on_accept, void *opaque, char *err,
		    size_t errlen)
{
	int r;

	memset(u, 0, sizeof(*u));
	u->loop = loop;
	u->lfd = -1;
	u->on_accept = on_accept;
	u->opaque = opaque;
	r = mig_unix_bind(u, spec, err, errlen);
	if (r)
		return r;
	r = uv_poll_init(loop, &u->lpoll, u->lfd);
	if (!r) {
		u->lpoll.data = u;
		u->lpoll_on = true;
		r = uv_poll_start(&u->lpoll, UV_READABLE, mig_unix_on_listen);
	}
	if (r)
		snprintf(err, errlen, "%s: %s", spec, uv_strerror(r));
	return r;
}

uv_handle_t *mig_unix_close(struct mig_unix *u)
{
	uv_handle_t *h = u->lpoll_on ? (uv_handle_t *)&u->lpoll : NULL;

	/* Out of epoll before the fd goes; the owner closes the handle. */
	if (u->lpoll_on)
		uv_poll_stop(&u->lpoll);
	u->lpoll_on = false;
	if (u->lfd >= 0) {
		close(u->lfd);
		unlink(u->path);
	}
	u->lfd = -1;
	return h;
}
