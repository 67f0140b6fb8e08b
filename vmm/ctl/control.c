// SPDX-License-Identifier: MIT
/*
 * control.c - the control socket's server: a libuv pipe server bound to a
 * UNIX socket (created 0600 under a tight umask, stale files replaced, a
 * live owner refused); each client's bytes are split into lines, every line
 * is parsed by ctl_proto and answered with one reply line from the VMM's
 * handler. Events posted from any thread are queued under ev_lock and
 * written to every client by the loop after a uv_async wake-up. All client
 * state belongs to the loop thread; only the event queue is shared. The
 * client side is control_call.c.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/err.h"
#include "vmm/ctl/control.h"

/* One connection. Owned by the loop thread; freed in its close callback. */
struct control_client {
	uv_pipe_t pipe; /* pipe.data points back to this client */
	struct control *ctl;
	struct control_client *next;
	int closing;		    /* shutdown or close under way */
	size_t len;		    /* bytes held in buf */
	char buf[CTL_LINE_MAX + 1]; /* a partial line (plus its '\n') */
	uv_shutdown_t shutdown_req;
};

/* A queued event line. Written by any thread, consumed by the loop. */
struct control_event {
	struct control_event *next;
	char *line;
};

/* One uv_write and the bytes it carries; freed in the write callback. */
struct control_write {
	uv_write_t req;
	char data[];
};

/* ---- server: clients ------------------------------------------------- */

static void client_free_cb(uv_handle_t *h)
{
	struct control_client *cl = h->data;
	struct control *c = cl->ctl;
	struct control_client **pp;

	for (pp = &c->clients; *pp; pp = &(*pp)->next) {
		if (*pp == cl) {
			*pp = cl->next;
			atomic_fetch_sub(&c->nr_clients, 1);
			break;
		}
	}
	free(cl);
	if (c->closing && !c->clients && c->lingering) {
		c->lingering = 0;
		uv_close((uv_handle_t *)&c->linger, NULL);
	}
}

static void client_close(struct control_client *cl)
{
	if (uv_is_closing((uv_handle_t *)&cl->pipe))
		return;
	cl->closing = 1;
	uv_close((uv_handle_t *)&cl->pipe, client_free_cb);
}

static void client_shutdown_cb(uv_shutdown_t *req, int status)
{
	client_close(req->handle->data);
}

/* Stop reading, let queued writes drain, then close. */
static void client_shutdown(struct control_client *cl)
{
	if (cl->closing)
		return;
	cl->closing = 1;
	uv_read_stop((uv_stream_t *)&cl->pipe);
	if (uv_shutdown(&cl->shutdown_req, (uv_stream_t *)&cl->pipe,
			client_shutdown_cb) < 0)
		client_close(cl);
}

static void client_write_cb(uv_write_t *req, int status)
{
	struct control_write *w = (struct control_write *)req;
	struct control_client *cl = req->handle->data;

	free(w);
	if (status < 0 && status != UV_ECANCELED)
		client_close(cl);
}

/* Queue a copy of line (len bytes) to cl; a lagging client is dropped. */
static void client_send(struct control_client *cl, const char *line, size_t len)
{
	uv_stream_t *s = (uv_stream_t *)&cl->pipe;
	struct control_write *w;
	uv_buf_t buf;

	if (cl->closing)
		return;
	if (uv_stream_get_write_queue_size(s) > CONTROL_WQUEUE_MAX) {
		client_close(cl);
		return;
	}
	w = malloc(sizeof(*w) + len);
	if (!w) {
		client_close(cl);
		return;
	}
	memcpy(w->data, line, len);
	buf = uv_buf_init(w->data, len);
	if (uv_write(&w->req, s, &buf, 1, client_write_cb) < 0) {
		free(w);
		client_close(cl);
	}
}

/* Send a malloc'd line built by ctl_proto and free it. */
static void client_send_line(struct control_client *cl, char *line)
{
	if (!line) {
		client_close(cl); /* out of memory: the reply is lost */
		return;
	}
	client_send(cl, line, strlen(line));
	free(line);
}

/* Parse one request line, run the handler, reply. */
static void client_handle_line(struct control_client *cl, const char *line,
			       size_t len)
{
	struct control *c = cl->ctl;
	struct ctl_request req;
	struct ctl_error err;
	json_t *result = NULL;

	if (ctl_parse_request(line, len, &req, &err) < 0) {
		client_send_line(cl, ctl_reply_error(req.id, &err));
		json_decref(req.id);
		return;
	}
	if (c->handler(c->opaque, &req, &result, &err) < 0) {
		if (err.code == CTL_ERR_NONE)
			err.code = CTL_ERR_INTERNAL;
		client_send_line(cl, ctl_reply_error(req.id, &err));
	} else {
		client_send_line(cl, ctl_reply_ok(req.id, result));
	}
	ctl_request_free(&req);
}

/* Handle every complete line in cl->buf; keep the partial tail. */
static void client_drain_lines(struct control_client *cl)
{
	size_t start = 0;
	char *nl;

	while (!cl->closing && !cl->ctl->closing &&
	       (nl = memchr(cl->buf + start, '\n', cl->len - start))) {
		size_t end = nl - cl->buf, n = end - start;

		if (n && cl->buf[end - 1] == '\r')
			n--;
		if (n)
			client_handle_line(cl, cl->buf + start, n);
		start = end + 1;
	}
	memmove(cl->buf, cl->buf + start, cl->len - start);
	cl->len -= start;
}

static void client_too_long(struct control_client *cl)
{
	struct ctl_error err = {.code = CTL_ERR_TOO_LONG};

	snprintf(err.message, sizeof(err.message),
		 "request line longer than %d bytes; closing the connection",
		 CTL_LINE_MAX);
	client_send_line(cl, ctl_reply_error(NULL, &err));
	client_shutdown(cl);
}

static void client_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct control_client *cl = h->data;

	*buf = uv_buf_init(cl->buf + cl->len, sizeof(cl->buf) - cl->len);
}

static void client_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct control_client *cl = s->data;

	if (nread < 0) {
		client_close(cl); /* UV_EOF or a socket error */
		return;
	}
	if (cl->closing || cl->ctl->closing)
		return; /* no new requests once control_stop ran */
	cl->len += nread;
	client_drain_lines(cl);
	if (!cl->closing && cl->len == sizeof(cl->buf))
		client_too_long(cl);
}

static void server_connection_cb(uv_stream_t *server, int status)
{
	struct control *c = server->data;
	struct control_client *cl;

	if (status < 0 || c->closing)
		return;
	cl = calloc(1, sizeof(*cl));
	if (!cl)
		return; /* out of memory: libuv stops accepting */
	cl->ctl = c;
	if (uv_pipe_init(c->loop, &cl->pipe, 0) < 0) {
		free(cl);
		return;
	}
	cl->pipe.data = cl;
	cl->next = c->clients;
	c->clients = cl;
	atomic_fetch_add(&c->nr_clients, 1);
	if (uv_accept(server, (uv_stream_t *)&cl->pipe) < 0 ||
	    uv_read_start((uv_stream_t *)&cl->pipe, client_alloc_cb,
			  client_read_cb) < 0)
		client_close(cl);
}

/* ---- server: events -------------------------------------------------- */

/* Loop thread: take the whole queue. */
static struct control_event *control_take_events(struct control *c)
{
	struct control_event *ev;

	pthread_mutex_lock(&c->ev_lock);
	ev = c->ev_head;
	c->ev_head = c->ev_tail = NULL;
	c->ev_queued = 0;
	pthread_mutex_unlock(&c->ev_lock);
	return ev;
}

/* Loop thread: write each event to every open client, then free them. */
static void control_broadcast(struct control *c, struct control_event *ev)
{
	struct control_event *next;
	struct control_client *cl;

	for (; ev; ev = next) {
		size_t len = strlen(ev->line);

		next = ev->next;
		for (cl = c->clients; cl; cl = cl->next)
			if (!cl->closing)
				client_send(cl, ev->line, len);
		free(ev->line);
		free(ev);
	}
}

static void control_wake_cb(uv_async_t *a)
{
	struct control *c = a->data;

	control_broadcast(c, control_take_events(c));
}

/* Under ev_lock: the queue is full; count the drop. */
static bool control_queue_full(struct control *c)
{
	if (c->ev_queued < CONTROL_EVQ_MAX)
		return false;
	c->ev_dropped++;
	return true;
}

bool control_listened(struct control *c)
{
	return atomic_load(&c->nr_clients) > 0;
}

uint64_t control_events_dropped(struct control *c)
{
	uint64_t n;

	pthread_mutex_lock(&c->ev_lock);
	n = c->ev_dropped;
	pthread_mutex_unlock(&c->ev_lock);
	return n;
}

void control_post_event(struct control *c, const char *name, json_t *data)
{
	struct control_event *ev;
	char *line;
	bool full;

	/* Full: drop before the work of formatting the line. */
	pthread_mutex_lock(&c->ev_lock);
	full = control_queue_full(c);
	pthread_mutex_unlock(&c->ev_lock);
	if (full) {
		json_decref(data);
		return;
	}
	ev = malloc(sizeof(*ev));
	line = ctl_event(name, data);
	if (!ev || !line) {
		free(ev);
		free(line);
		return;
	}
	ev->next = NULL;
	ev->line = line;
	pthread_mutex_lock(&c->ev_lock);
	if (c->closing || control_queue_full(c)) {
		pthread_mutex_unlock(&c->ev_lock);
		free(line);
		free(ev);
		return;
	}
	c->ev_queued++;
	if (c->ev_tail)
		c->ev_tail->next = ev;
	else
		c->ev_head = ev;
	c->ev_tail = ev;
	/* Under the lock, so control_stop cannot close wake meanwhile. */
	uv_async_send(&c->wake);
	pthread_mutex_unlock(&c->ev_lock);
}

/* ---- server: start and stop ------------------------------------------ */

int control_sun_fill(struct sockaddr_un *sun, const char *path)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (!*path || strlen(path) >= sizeof(sun->sun_path))
		return -ENAMETOOLONG;
	strcpy(sun->sun_path, path);
	return 0;
}

/* 1 when a server accepts connections at path, 0 when none, or -errno. */
static int control_probe(const char *path)
{
	struct sockaddr_un sun;
	int fd, ret;

	ret = control_sun_fill(&sun, path);
	if (ret < 0)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		ret = 1;
	else if (errno == EAGAIN) /* a live server with a full backlog */
		ret = 1;
	else if (errno == ECONNREFUSED || errno == ENOENT)
		ret = 0;
	else
		ret = -errno;
	close(fd);
	return ret;
}

/* Make path free to bind: refuse a live server, remove a stale socket. */
static int control_claim_path(const char *path, char *err, size_t errlen)
{
	struct stat st;
	int ret;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		ret = -errno;
		err_set(err, errlen, "cannot stat control socket %s: %s", path,
			strerror(-ret));
		return ret;
	}
	if (!S_ISSOCK(st.st_mode)) {
		err_set(err, errlen,
			"control socket %s exists and is not a socket", path);
		return -EEXIST;
	}
	ret = control_probe(path);
	if (ret == 1) {
		err_set(err, errlen,
			"control socket %s is in use by another VMM", path);
		return -EADDRINUSE;
	}
	if (ret < 0) {
		err_set(err, errlen, "cannot probe control socket %s: %s", path,
			strerror(-ret));
		return ret;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		ret = -errno;
		err_set(err, errlen,
			"cannot remove stale control socket %s: %s", path,
			strerror(-ret));
		return ret;
	}
	return 0;
}

/*
 * libuv writes to clients with write(2), not send(MSG_NOSIGNAL): a client
 * that hangs up before its reply or an event would kill the VMM with
 * SIGPIPE. Ignore it process-wide (the write then fails with EPIPE and the
 * client is dropped), unless the program already chose a disposition.
 */
static int control_ignore_sigpipe(void)
{
	struct sigaction sa;

	if (sigaction(SIGPIPE, NULL, &sa) < 0)
		return -errno;
	if (sa.sa_handler != SIG_DFL || (sa.sa_flags & SA_SIGINFO))
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGPIPE, &sa, NULL) < 0)
		return -errno;
	return 0;
}

/*
 * Bind under umask 0177 so the socket is 0600 from its first moment (the
 * umask is process-wide: this runs at start-up, before other threads create
 * files), then chmod to be explicit about it.
 */
static int control_bind(struct control *c, char *err, size_t errlen)
{
	mode_t old = umask(0177);
	int ret = uv_pipe_bind(&c->server, c->path);

	umask(old);
	if (ret < 0) {
		err_set(err, errlen, "cannot bind control socket %s: %s",
			c->path, uv_strerror(ret));
		return ret == UV_EADDRINUSE ? -EADDRINUSE : ret;
	}
	if (chmod(c->path, 0600) < 0) {
		ret = -errno;
		err_set(err, errlen, "cannot chmod control socket %s: %s",
			c->path, strerror(-ret));
		unlink(c->path);
		return ret;
	}
	return 0;
}

static int control_listen(struct control *c, char *err, size_t errlen)
{
	int ret;

	ret = uv_pipe_init(c->loop, &c->server, 0);
	if (ret < 0) {
		err_set(err, errlen, "control socket %s: %s", c->path,
			uv_strerror(ret));
		return ret;
	}
	c->server.data = c;
	ret = control_bind(c, err, errlen);
	if (ret == 0) {
		ret = uv_listen((uv_stream_t *)&c->server, 16,
				server_connection_cb);
		if (ret < 0) {
			err_set(err, errlen,
				"cannot listen on control socket %s: %s",
				c->path, uv_strerror(ret));
			unlink(c->path);
		}
	}
	if (ret < 0)
		uv_close((uv_handle_t *)&c->server, NULL);
	return ret;
}

int control_start(struct control *c, uv_loop_t *loop, const char *path,
		  control_handler_fn handler, void *opaque, char *err,
		  size_t errlen)
{
	struct sockaddr_un sun;
	int ret;

	memset(c, 0, sizeof(*c));
	c->closing = 1; /* until started: control_post_event drops */
	c->loop = loop;
	c->handler = handler;
	c->opaque = opaque;
	ret = -pthread_mutex_init(&c->ev_lock, NULL);
	if (ret < 0) {
		err_set(err, errlen, "control socket %s: %s", path,
			strerror(-ret));
		return ret;
	}
	if (control_sun_fill(&sun, path) < 0 ||
	    strlen(path) >= sizeof(c->path)) {
		err_set(err, errlen,
			"control socket path '%s' is empty or longer than "
			"%zu bytes",
			path, sizeof(c->path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(c->path, path);
	ret = control_ignore_sigpipe();
	if (ret < 0) {
		err_set(err, errlen, "control socket %s: sigaction: %s", path,
			strerror(-ret));
		return ret;
	}
	ret = control_claim_path(path, err, errlen);
	if (ret < 0)
		return ret;
	ret = uv_async_init(loop, &c->wake, control_wake_cb);
	if (ret < 0) {
		err_set(err, errlen, "control socket %s: %s", path,
			uv_strerror(ret));
		return ret;
	}
	c->wake.data = c;
	ret = control_listen(c, err, errlen);
	if (ret < 0) {
		uv_close((uv_handle_t *)&c->wake, NULL);
		return ret;
	}
	c->closing = 0;
	return 0;
}

/*
 * The linger timer, armed by control_stop when clients remain. First tick
 * (0 ms, after the current callback has sent its reply): shut every client
 * down so its queued lines drain. Second tick (CONTROL_LINGER_MS later):
 * close whoever is still flushing to a peer that does not read.
 */
static void control_linger_cb(uv_timer_t *t)
{
	struct control *c = t->data;
	struct control_client *cl, *next;

	for (cl = c->clients; cl; cl = next) {
		next = cl->next;
		if (c->lingering == 1)
			client_shutdown(cl);
		else
			client_close(cl);
	}
	if (c->lingering == 1) {
		c->lingering = 2;
	} else if (c->lingering) {
		c->lingering = 0;
		uv_close((uv_handle_t *)&c->linger, NULL);
	}
}

/*
 * ev_lock is never destroyed: other threads may still take it to find
 * closing set.
 */
void control_stop(struct control *c)
{
	struct control_event *ev;

	pthread_mutex_lock(&c->ev_lock);
	if (c->closing) {
		pthread_mutex_unlock(&c->ev_lock);
		return;
	}
	c->closing = 1;
	ev = c->ev_head;
	c->ev_head = c->ev_tail = NULL;
	c->ev_queued = 0;
	pthread_mutex_unlock(&c->ev_lock);

	control_broadcast(c, ev);
	uv_close((uv_handle_t *)&c->wake, NULL);
	uv_close((uv_handle_t *)&c->server, NULL);
	if (unlink(c->path) < 0 && errno != ENOENT)
		fprintf(stderr, "vmm: cannot remove control socket %s: %s\n",
			c->path, strerror(errno));
	if (!c->clients)
		return;
	c->linger.data = c;
	if (uv_timer_init(c->loop, &c->linger) < 0) {
		control_linger_cb(&c->linger); /* lingering 0: close all */
		return;
	}
	c->lingering = 1;
	if (uv_timer_start(&c->linger, control_linger_cb, 0,
			   CONTROL_LINGER_MS) < 0) {
		c->lingering = 2;
		control_linger_cb(&c->linger);
	}
}
