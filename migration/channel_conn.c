/* SPDX-License-Identifier: MIT */
/*
 * channel_conn.c - how a channel gets its connection (see channel.h):
 * connect, bind and listen, accept the next peer (refusing a second one
 * while one is served), and detach a connected socket for the urgent
 * thread. Everything here runs on the event-loop thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migration/channel_int.h"
#include "migration/tls.h"

/* ---- connecting
 * ---------------------------------------------------------------- */

static int mig_tcp_congestion_set(int fd, const char *name)
{
	if (setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, strlen(name)))
		return -errno;
	return 0;
}

/* The congestion control of the connected or accepted socket, read back. */
static void mig_channel_congestion(struct mig_channel *ch)
{
	socklen_t len = sizeof(ch->congestion) - 1;
	uv_os_fd_t fd;

	memset(ch->congestion, 0, sizeof(ch->congestion));
	if (uv_fileno((uv_handle_t *)&ch->tcp, &fd) ||
	    getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, ch->congestion, &len))
		ch->congestion[0] = 0; /* unknown: left unsaid */
}

/* cc (NULL or "": none) on the socket of handle h, which must exist. */
static int mig_handle_congestion(uv_handle_t *h, const char *cc, char *err,
				 size_t errlen)
{
	uv_os_fd_t fd;
	int r;

	if (!cc || !*cc)
		return 0;
	r = uv_fileno(h, &fd) ? -EBADF : mig_tcp_congestion_set(fd, cc);
	if (r)
		snprintf(err, errlen, "TCP congestion control '%s': %s", cc,
			 strerror(-r));
	return r;
}

/* The first line of a /proc/sys file, or "?" where it cannot be read. */
static void mig_read_sysctl(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "r");

	if (!f || !fgets(out, (int)len, f))
		snprintf(out, len, "?");
	else
		out[strcspn(out, "\n")] = 0;
	if (f)
		fclose(f);
}

int mig_tcp_congestion_check(const char *name, char *err, size_t errlen)
{
	char have[256];
	int fd, r;

	if (!*name || strlen(name) >= MIG_TCP_CA_NAME) {
		snprintf(err, errlen,
			 "TCP congestion control '%s': a name of 1 to %d "
			 "characters",
			 name, MIG_TCP_CA_NAME - 1);
		return -EINVAL;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "TCP congestion control: socket: %s",
			 strerror(-r));
		return r;
	}
	r = mig_tcp_congestion_set(fd, name);
	close(fd);
	if (!r)
		return 0;
	if (r == -ENOENT)
		mig_read_sysctl("/proc/sys/net/ipv4/"
				"tcp_available_congestion_control",
				have, sizeof(have));
	else
		mig_read_sysctl("/proc/sys/net/ipv4/"
				"tcp_allowed_congestion_control",
				have, sizeof(have));
	snprintf(err, errlen, "TCP congestion control '%s': %s (%s here: %s)",
		 name, r == -ENOENT ? "not on this host" : strerror(-r),
		 r == -ENOENT ? "available" : "allowed", have);
	return r;
}

static void mig_channel_on_connect(uv_connect_t *req, int status)
{
	struct mig_channel *ch = req->data;
	int r;

	if (ch->closed)
		return;
	if (status) {
		mig_channel_fail(ch, status, "cannot connect to %s: %s",
				 ch->peer, uv_strerror(status));
		return;
	}
	mig_channel_congestion(ch);
	r = mig_channel_start(ch);
	if (r) {
		mig_channel_fail(ch, r, "%s: %s", ch->peer, uv_strerror(r));
		return;
	}
	if (!ch->tls_ctx) /* else once the handshake is done */
		ch->ops->on_connect(ch);
}

int mig_channel_connect(struct mig_channel *ch, uv_loop_t *loop,
			const char *spec, const char *cc,
			const struct mig_channel_ops *ops, void *opaque,
			char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	char why[128];
	int r = mig_channel_prepare(ch, loop, spec, ops, opaque, &ss, err,
				    errlen);

	if (r)
		return r;
	/* The socket now (not at connect), for its congestion control. */
	r = uv_tcp_init_ex(loop, &ch->tcp, ss.ss_family);
	ch->conn_req.data = ch;
	if (r) {
		snprintf(err, errlen, "cannot connect to %s: %s", spec,
			 uv_strerror(r));
		return r;
	}
	r = mig_handle_congestion((uv_handle_t *)&ch->tcp, cc, why,
				  sizeof(why));
	if (r) {
		snprintf(err, errlen, "cannot connect to %s: %s", spec, why);
		return r;
	}
	r = uv_tcp_connect(&ch->conn_req, &ch->tcp, (struct sockaddr *)&ss,
			   mig_channel_on_connect);
	if (r)
		snprintf(err, errlen, "cannot connect to %s: %s", spec,
			 uv_strerror(r));
	return r;
}

/* The channel owns the listener's close too: counted in pending_closes. */
static void mig_channel_stop_listener(struct mig_channel *ch)
{
	ch->listening = false;
	mig_channel_close_one(ch, (uv_handle_t *)&ch->listener);
}

void mig_channel_stop_listening(struct mig_channel *ch)
{
	mig_channel_stop_listener(ch);
}

/*
 * A connection after the first: it becomes ch->next when the owner armed
 * one, else the listener closes (refusing it, as a single-connection
 * listener always did).
 */
static void mig_channel_accept_next(struct mig_channel *ch, uv_stream_t *server,
				    int status)
{
	struct mig_channel *nx = ch->next;
	int r;

	if (!nx || nx->connected || nx->closed) {
		mig_channel_stop_listener(ch);
		return;
	}
	r = status ? status : uv_tcp_init(nx->loop, &nx->tcp);
	nx->tcp.data = nx;
	if (!r)
		r = uv_accept(server, (uv_stream_t *)&nx->tcp);
	nx->tls_ctx = ch->tls_ctx;
	if (!r)
		r = mig_channel_start(nx);
	ch->next = nx->chain; /* the next armed one, if any */
	nx->chain = NULL;
	if (!ch->next)
		mig_channel_stop_listener(ch);
	if (r) {
		mig_channel_fail(nx, r, "accepting on %s: %s", nx->peer,
				 uv_strerror(r));
		return;
	}
	mig_channel_watch(nx);
	mig_channel_congestion(nx);
	if (!nx->tls_ctx)
		nx->ops->on_connect(nx);
}

static void mig_channel_on_accept(uv_stream_t *server, int status)
{
	struct mig_channel *ch = server->data;
	int r;

	if (ch->closed)
		return;
	if (ch->connected) {
		mig_channel_accept_next(ch, server, status);
		return;
	}
	r = status ? status : uv_tcp_init(ch->loop, &ch->tcp);
	ch->tcp.data = ch;
	if (!r)
		r = uv_accept(server, (uv_stream_t *)&ch->tcp);
	if (!r)
		r = mig_channel_start(ch);
	if (r) {
		mig_channel_fail(ch, r, "accepting on %s: %s", ch->peer,
				 uv_strerror(r));
		return;
	}
	/*
	 * From now on a silent source is a stall, as on the other side. The
	 * listener stays open for post-copy's urgent connection until its
	 * owner arms it (mig_channel_listen_next) or refuses it
	 * (mig_channel_stop_listening).
	 */
	mig_channel_watch(ch);
	mig_channel_congestion(ch);
	if (!ch->tls_ctx)
		ch->ops->on_connect(ch);
}

int mig_channel_listen(struct mig_channel *ch, uv_loop_t *loop,
		       const char *spec, const char *cc,
		       const struct mig_channel_ops *ops, void *opaque,
		       char *err, size_t errlen)
{
	return mig_channel_listen_fd(ch, loop, spec, -1, cc, ops, opaque, err,
				     errlen);
}

int mig_channel_bind(const char *spec, int *fd, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	int one = 1, r = mig_addr_parse(spec, &ss, err, errlen);

	if (r)
		return r;
	*fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
		     0);
	if (*fd < 0 ||
	    setsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(*fd, (struct sockaddr *)&ss,
		 ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
					  : sizeof(struct sockaddr_in)) ||
	    listen(*fd, 1)) {
		r = -errno;
		snprintf(err, errlen, "cannot listen on %s: %s", spec,
			 strerror(-r));
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
	}
	return r;
}

int mig_channel_listen_fd(struct mig_channel *ch, uv_loop_t *loop,
			  const char *spec, int fd, const char *cc,
			  const struct mig_channel_ops *ops, void *opaque,
			  char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	char why[128];
	int r = mig_channel_prepare(ch, loop, spec, ops, opaque, &ss, err,
				    errlen);
	int owned = fd; /* closed here unless the handle took it */

	if (r) {
		if (owned >= 0)
			close(owned);
		return r;
	}
	r = uv_tcp_init(loop, &ch->listener);
	ch->listener.data = ch;
	if (!r && fd >= 0) {
		r = uv_tcp_open(&ch->listener, fd);
		if (!r)
			owned = -1;
	} else if (!r) {
		r = uv_tcp_bind(&ch->listener, (struct sockaddr *)&ss, 0);
	}
	if (owned >= 0)
		close(owned);
	/* Before any connection comes: each inherits it when accepted. */
	if (!r) {
		int e = mig_handle_congestion((uv_handle_t *)&ch->listener, cc,
					      why, sizeof(why));

		if (e) {
			snprintf(err, errlen, "cannot listen on %s: %s", spec,
				 why);
			return e;
		}
	}
	if (!r)
		r = uv_listen((uv_stream_t *)&ch->listener, 1,
			      mig_channel_on_accept);
	if (r) {
		snprintf(err, errlen, "cannot listen on %s: %s", spec,
			 uv_strerror(r));
		return r;
	}
	ch->listening = true;
	/* Waiting for a source to connect is not a stall. */
	uv_timer_stop(&ch->timer);
	return 0;
}

int mig_channel_listen_next(struct mig_channel *ch, struct mig_channel *next,
			    const struct mig_channel_ops *ops, void *opaque)
{
	int r;

	struct mig_channel **tail = &ch->next;

	if (!ch->listening)
		return -EINVAL;
	r = mig_channel_init(next, ch->loop, ch->peer, ops, opaque);
	if (r)
		return r;
	/* Waiting for the second connection is not a stall. */
	uv_timer_stop(&next->timer);
	while (*tail)
		tail = &(*tail)->chain;
	*tail = next;
	next->chain = NULL;
	return 0;
}

int mig_channel_detach(struct mig_channel *ch, int *fd, uint8_t **leftover,
		       size_t *len)
{
	uv_os_fd_t ufd;
	size_t n = ch->rlen - ch->parse_off;
	int r;

	if (!ch->connected || ch->closed || ch->failed || ch->detached)
		return -ENOTCONN;
	if (ch->queued)
		return -EBUSY;
	r = uv_fileno((uv_handle_t *)&ch->tcp, &ufd);
	if (r)
		return r;
	*leftover = NULL;
	if (n) {
		*leftover = malloc(n);
		if (!*leftover)
			return -ENOMEM;
		memcpy(*leftover, ch->rbuf + ch->parse_off, n);
	}
	*len = n;
	*fd = ufd;
	ch->detached = true;
	uv_read_stop((uv_stream_t *)&ch->tcp);
	mig_tls_stop(ch);
	uv_idle_stop(&ch->rearm);
	uv_timer_stop(&ch->timer);
	return 0;
}
