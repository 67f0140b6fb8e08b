// SPDX-License-Identifier: MIT
/*
 * control_call.c - the control socket's client, for vmmctl: connect, send
 * one request line, and read lines until its reply (and, for
 * control_call_watch, the events after it), each wait bounded by a
 * deadline. Blocking, over a plain socket: no libuv, no threads.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "vmm/ctl/control.h"

static int call_connect(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	int fd, ret;

	ret = control_sun_fill(&sun, path);
	if (ret < 0) {
		err_set(err, errlen,
			"control socket path '%s' is empty or too long", path);
		return ret;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		err_set(err, errlen, "cannot create a socket: %s",
			strerror(-ret));
		return ret;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		ret = -errno;
		err_set(err, errlen, "cannot connect to control socket %s: %s",
			path, strerror(-ret));
		close(fd);
		return ret;
	}
	return fd;
}

static int call_send(int fd, const char *path, const char *line, char *err,
		     size_t errlen)
{
	size_t off = 0, len = strlen(line);
	ssize_t n;

	while (off < len) {
		n = send(fd, line + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			n = -errno;
			err_set(err, errlen,
				"cannot send to control socket %s: %s", path,
				strerror(-n));
			return n;
		}
		off += n;
	}
	return 0;
}

/* Buffered line reader over the socket, bounded by a deadline. */
struct call_reader {
	int fd;
	const char *path;
	control_event_fn on_event; /* control_call_watch */
	void *opaque;
	long long deadline, timeout_ms;
	size_t len;
	char buf[CTL_LINE_MAX * 4]; /* replies may exceed request size */
};

/* Wait for and read more bytes: 0, or -errno with err filled. */
static int call_fill(struct call_reader *r, char *err, size_t errlen)
{
	struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
	long long left = r->deadline - (long long)clock_now_ms();
	ssize_t n;
	int ret;

	if (r->len == sizeof(r->buf)) {
		err_set(err, errlen,
			"control socket %s sent a line over %zu bytes", r->path,
			sizeof(r->buf));
		return -EMSGSIZE;
	}
	ret = left > 0 ? poll(&pfd, 1, (int)left) : 0;
	if (ret < 0 && errno == EINTR)
		return 0;
	if (ret < 0) {
		ret = -errno;
		err_set(err, errlen, "poll on control socket %s: %s", r->path,
			strerror(-ret));
		return ret;
	}
	if (ret == 0) {
		err_set(err, errlen,
			"no reply from control socket %s within %lld s",
			r->path, r->timeout_ms / 1000);
		return -ETIMEDOUT;
	}
	n = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
	if (n < 0 && errno == EINTR)
		return 0;
	if (n < 0) {
		ret = -errno;
		err_set(err, errlen, "cannot read from control socket %s: %s",
			r->path, strerror(-ret));
		return ret;
	}
	if (n == 0) {
		err_set(err, errlen,
			"control socket %s closed the connection before "
			"replying",
			r->path);
		return -ECONNRESET;
	}
	r->len += n;
	return 0;
}

/*
 * Look at the complete lines in r->buf: return 1 with *reply set at the
 * first reply, 0 when more bytes are needed, -EPROTO for a bad line. Event
 * lines go to r->on_event when set (it returns 1 to end the call: then 2
 * is returned), and are dropped otherwise.
 */
static int call_scan(struct call_reader *r, json_t **reply, char *err,
		     size_t errlen)
{
	json_error_t jerr;
	json_t *j;
	char *nl;

	while ((nl = memchr(r->buf, '\n', r->len))) {
		size_t n = nl - r->buf;

		j = n ? json_loadb(r->buf, n, 0, &jerr) : NULL;
		memmove(r->buf, nl + 1, r->len - n - 1);
		r->len -= n + 1;
		if (!n)
			continue;
		if (!json_is_object(j)) {
			json_decref(j);
			err_set(err, errlen,
				"control socket %s sent a line that is "
				"not a JSON object",
				r->path);
			return -EPROTO;
		}
		if (!*reply && json_object_get(j, "ok")) {
			*reply = j;
			if (!r->on_event)
				return 1;
			continue;
		}
		if (*reply && r->on_event) {
			int stop = r->on_event(r->opaque, j);

			json_decref(j);
			r->deadline = (long long)clock_now_ms() +
				      CONTROL_WATCH_IDLE_MS;
			if (stop)
				return 2;
			continue;
		}
		json_decref(j); /* an event before the reply: not ours */
	}
	return 0;
}

static int call_run(const char *path, const char *cmd, json_t *args,
		    json_t **reply, control_event_fn on_event, void *opaque,
		    long long timeout_ms, char *err, size_t errlen)
{
	struct call_reader *r;
	char *line;
	int fd, ret;

	*reply = NULL;
	line = ctl_request_line(cmd, args, 1);
	r = malloc(sizeof(*r));
	if (!line || !r) {
		err_set(err, errlen, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	fd = call_connect(path, err, errlen);
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	ret = call_send(fd, path, line, err, errlen);
	r->fd = fd;
	r->path = path;
	r->timeout_ms = timeout_ms;
	r->deadline = (long long)clock_now_ms() + timeout_ms;
	r->len = 0;
	r->on_event = on_event;
	r->opaque = opaque;
	while (ret == 0 && (ret = call_scan(r, reply, err, errlen)) == 0) {
		/* A refused request ends the call: no events to follow. */
		if (*reply && !json_is_true(json_object_get(*reply, "ok")))
			break;
		ret = call_fill(r, err, errlen);
	}
	if (ret > 0)
		ret = 0;
	close(fd);
out:
	free(line);
	free(r);
	return ret;
}

int control_call(const char *path, const char *cmd, json_t *args,
		 json_t **reply, char *err, size_t errlen)
{
	return call_run(path, cmd, args, reply, NULL, NULL,
			CONTROL_CALL_TIMEOUT_MS, err, errlen);
}

int control_call_long(const char *path, const char *cmd, json_t *args,
		      json_t **reply, char *err, size_t errlen)
{
	return call_run(path, cmd, args, reply, NULL, NULL,
			CONTROL_CALL_LONG_MS, err, errlen);
}

int control_call_watch(const char *path, const char *cmd, json_t *args,
		       json_t **reply, control_event_fn on_event, void *opaque,
		       char *err, size_t errlen)
{
	return call_run(path, cmd, args, reply, on_event, opaque,
			CONTROL_CALL_TIMEOUT_MS, err, errlen);
}
