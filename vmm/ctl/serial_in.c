/* SPDX-License-Identifier: MIT */
/*
 * serial_in.c - stdin or a file into the UART's receive FIFO (serial_in.h).
 * Everything here runs on the event-loop thread but serial_in_room, which
 * a vCPU thread calls (under the UART's lock) and which only sends the
 * async.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "vmm/ctl/serial_in.h"

static void serial_in_next(struct serial_in *in);

/* Push what is held into the FIFO; true when nothing is left. */
static bool serial_in_drain(struct serial_in *in)
{
	size_t n;

	if (in->off < in->len) {
		n = serial_push_input(in->uart, in->buf + in->off,
				      in->len - in->off);
		in->off += n;
		in->bytes += n;
	}
	if (in->off < in->len)
		return false;
	in->off = in->len = 0;
	return true;
}

/* After a read: feed it, and read on unless the FIFO is full. */
static void serial_in_got(struct serial_in *in, size_t n)
{
	in->off = 0;
	in->len = n;
	if (serial_in_drain(in)) {
		serial_in_next(in);
		return;
	}
	in->waiting = true;
	if (in->kind == SERIAL_IN_STREAM)
		uv_read_stop((uv_stream_t *)&in->h);
}

static void serial_in_end(struct serial_in *in, const char *why)
{
	if (why)
		fprintf(stderr,
			"vmmctl boot: serial input: %s; no more input\n", why);
	in->ended = true;
	if (in->kind == SERIAL_IN_STREAM)
		uv_read_stop((uv_stream_t *)&in->h);
}

static void serial_in_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct serial_in *in = h->data;

	(void)hint;
	/* Reading only happens while nothing is held. */
	*buf = uv_buf_init((char *)in->buf, sizeof(in->buf));
}

static void serial_in_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct serial_in *in = s->data;

	(void)buf;
	if (n > 0)
		serial_in_got(in, (size_t)n);
	else if (n == UV_EOF)
		serial_in_end(in, NULL);
	else if (n < 0)
		serial_in_end(in, uv_strerror((int)n));
}

static void serial_in_fs_read(uv_fs_t *req)
{
	struct serial_in *in = req->data;
	ssize_t n = req->result;

	uv_fs_req_cleanup(req);
	in->reading = false;
	if (in->ended && in->kind == SERIAL_IN_NONE) { /* closed meanwhile */
		if (in->own_fd)
			close(in->fd);
		return;
	}
	if (n > 0)
		serial_in_got(in, (size_t)n);
	else
		serial_in_end(in, n ? uv_strerror((int)n) : NULL);
}

/* Read more: the stream reads on by itself, a file one buffer at a time. */
static void serial_in_next(struct serial_in *in)
{
	uv_buf_t b = uv_buf_init((char *)in->buf, sizeof(in->buf));
	int r;

	if (in->ended || in->kind != SERIAL_IN_FILE || in->reading)
		return;
	in->req.data = in;
	r = uv_fs_read(in->loop, &in->req, in->fd, &b, 1, -1,
		       serial_in_fs_read);
	if (r)
		serial_in_end(in, uv_strerror(r));
	else
		in->reading = true;
}

/* The loop side of the UART's rx_room: feed what is held, then go on. */
static void serial_in_on_room(uv_async_t *h)
{
	struct serial_in *in = h->data;

	if (!in->waiting || !serial_in_drain(in))
		return;
	in->waiting = false;
	if (in->ended)
		return;
	if (in->kind == SERIAL_IN_STREAM)
		uv_read_start((uv_stream_t *)&in->h, serial_in_alloc,
			      serial_in_read);
	else
		serial_in_next(in);
}

/* The UART's rx_room (a vCPU thread, the UART's lock held). */
static void serial_in_room(void *opaque)
{
	struct serial_in *in = opaque;

	uv_async_send(&in->room);
}

/* The input's kind from its fd; -errno with err set when it has none. */
static int serial_in_kind_of(struct serial_in *in, const char *path, char *err,
			     size_t errlen)
{
	uv_handle_type t = uv_guess_handle(in->fd);

	if (t == UV_TTY || t == UV_NAMED_PIPE || t == UV_TCP) {
		in->kind = SERIAL_IN_STREAM;
		return 0;
	}
	in->kind = SERIAL_IN_NONE;
	if (!path) /* stdin, neither a terminal nor a pipe: no input */
		return 0;
	if (t == UV_FILE) {
		in->kind = SERIAL_IN_FILE;
		return 0;
	}
	err_set(err, errlen, "serial input %s: not a file, pipe or terminal",
		path);
	return -EINVAL;
}

static int serial_in_start(struct serial_in *in, char *err, size_t errlen)
{
	uv_stream_t *s = (uv_stream_t *)&in->h;
	int r;

	in->room.data = in;
	r = uv_async_init(in->loop, &in->room, serial_in_on_room);
	if (r)
		goto fail;
	serial_set_rx_room(in->uart, serial_in_room, in);
	if (in->kind == SERIAL_IN_FILE) {
		serial_in_next(in);
		return 0;
	}
	if (uv_guess_handle(in->fd) == UV_TTY)
		r = uv_tty_init(in->loop, &in->h.tty, in->fd, 1);
	else if (!(r = uv_pipe_init(in->loop, &in->h.pipe, 0)))
		r = uv_pipe_open(&in->h.pipe, in->fd);
	if (!r) {
		s->data = in;
		r = uv_read_start(s, serial_in_alloc, serial_in_read);
	}
	if (!r)
		return 0;
	serial_set_rx_room(in->uart, NULL, NULL);
	uv_close((uv_handle_t *)s, NULL);
	uv_close((uv_handle_t *)&in->room, NULL);
fail:
	err_set(err, errlen, "serial input: %s", uv_strerror(r));
	return r;
}

int serial_in_open(struct serial_in *in, uv_loop_t *loop, struct serial *uart,
		   const char *path, bool hold, char *err, size_t errlen)
{
	int r;

	memset(in, 0, sizeof(*in));
	in->loop = loop;
	in->uart = uart;
	in->fd = STDIN_FILENO;
	if (path && strcmp(path, "-")) {
		in->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (in->fd < 0) {
			r = -errno;
			err_set(err, errlen, "serial input %s: %s", path,
				strerror(-r));
			return r;
		}
		in->own_fd = true;
	}
	r = serial_in_kind_of(in, path, err, errlen);
	in->held = hold && !r && in->kind != SERIAL_IN_NONE;
	if (!r && in->kind != SERIAL_IN_NONE && !in->held)
		r = serial_in_start(in, err, errlen);
	if (r && in->own_fd)
		close(in->fd);
	if (r)
		in->kind = SERIAL_IN_NONE;
	return r;
}

int serial_in_go(struct serial_in *in, char *err, size_t errlen)
{
	int r;

	if (!in->held)
		return 0;
	in->held = false;
	r = serial_in_start(in, err, errlen);
	if (r) {
		if (in->own_fd)
			close(in->fd);
		in->kind = SERIAL_IN_NONE;
	}
	return r;
}

void serial_in_close(struct serial_in *in)
{
	if (in->kind == SERIAL_IN_NONE)
		return;
	if (in->held) {
		if (in->own_fd)
			close(in->fd);
		in->kind = SERIAL_IN_NONE;
		return;
	}
	serial_set_rx_room(in->uart, NULL, NULL);
	in->ended = true;
	if (in->kind == SERIAL_IN_STREAM)
		uv_close((uv_handle_t *)&in->h, NULL);
	else if (in->reading)
		uv_cancel((uv_req_t *)&in->req);
	uv_close((uv_handle_t *)&in->room, NULL);
	/* A read in flight still uses the fd: its callback closes it. */
	if (in->own_fd && !in->reading)
		close(in->fd);
	in->kind = SERIAL_IN_NONE;
}
