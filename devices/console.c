/* SPDX-License-Identifier: MIT */
/*
 * console.c - the line-buffered sink behind the UART and the test device.
 *
 * Any thread may write: vCPU threads (UART THR, test device CONSOLE and
 * CONSOLE_BUF) and the main thread (flush at exit). c->lock guards the line
 * buffer, the ring and the counters. Devices call in with their own lock
 * held; the console never calls back, so the lock order is always device
 * -> console, and no caller ever waits on the output while holding it:
 *
 * - A finished line goes to fd at once, with one write(2), only when fd
 *   cannot block (c->direct: a file we opened, made O_NONBLOCK, or a
 *   regular file) and nothing is queued before it. What that write does
 *   not take is queued.
 * - Otherwise it is queued whole in the ring, or, when the ring lacks room
 *   for it, dropped whole and counted: lines never come out cut or mixed.
 *   The first drop of a stall prints one warning on stderr; the stall ends
 *   when the ring runs empty again.
 * - The writer thread (owned by the console, started by console_open,
 *   joined by console_close) drains the ring into fd. It may block in
 *   write(2) or poll(2) on a reader that does not read, with the lock
 *   released; that is all a stalled reader holds up. It is the only thread
 *   that moves the ring's tail, and it is cancellable only inside those two
 *   calls, so console_close can end it even then.
 *
 * A write error drops what was being written and is reported on stderr
 * once per distinct errno. Messages are printed after c->lock is released.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "devices/console.h"

/* How long console_close waits for a reader to take what is queued. */
#define CONSOLE_CLOSE_MS 1000

/* What a call learnt under the lock, to be said after releasing it. */
struct console_note {
	int err;    /* a write failed with this errno, first time */
	bool stall; /* a line was dropped: the first of a stall */
};

static void console_say(const struct console *c, const struct console_note *n)
{
	if (n->err)
		fprintf(stderr, "console: write to '%s': %s (output dropped)\n",
			c->name, strerror(n->err));
	if (n->stall)
		fprintf(stderr,
			"console: '%s' is not being read: dropping guest "
			"output until it is (%u KiB queued)\n",
			c->name, CONSOLE_RING >> 10);
}

/* Called with c->lock held: note err unless it was the last one seen. */
static void console_error(struct console *c, int err, struct console_note *n)
{
	if (err != c->last_err)
		n->err = err;
	c->last_err = err;
}

/* ---- the writer thread ---------------------------------------------------
 */

/* Block in op only where console_close may cancel it. */
#define CONSOLE_CANCELLABLE(op)                                                \
	({                                                                     \
		int old_;                                                      \
		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old_);          \
		__typeof__(op) r_ = (op);                                      \
		int e_ = errno;                                                \
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old_);         \
		errno = e_;                                                    \
		r_;                                                            \
	})

/* Write some of buf, waiting as long as fd takes; > 0, or -errno. */
static ssize_t console_write_wait(int fd, const char *buf, size_t len)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		ssize_t n = CONSOLE_CANCELLABLE(write(fd, buf, len));

		if (n > 0)
			return n;
		if (n == 0)
			return -EIO;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		if (CONSOLE_CANCELLABLE(poll(&p, 1, -1)) < 0 && errno != EINTR)
			return -errno;
	}
}

/* Write the oldest contiguous span of the ring. Called with c->lock held. */
static void console_drain(struct console *c)
{
	size_t off = c->tail % CONSOLE_RING;
	size_t len = c->head - c->tail;
	struct console_note note = {0};
	int fd = c->fd;
	ssize_t n;

	if (len > CONSOLE_RING - off)
		len = CONSOLE_RING - off;
	/* A pipe takes up to PIPE_BUF bytes whole or not at all. */
	if (len > PIPE_BUF)
		len = PIPE_BUF;
	pthread_mutex_unlock(&c->lock);
	n = console_write_wait(fd, c->ring + off, len);
	pthread_mutex_lock(&c->lock);
	if (n < 0) {
		c->tail += len;
		c->dropped += len;
		console_error(c, (int)-n, &note);
	} else {
		c->tail += (size_t)n;
		c->bytes += (size_t)n;
		c->last_err = 0;
	}
	if (c->head == c->tail)
		c->stalled = false;
	if (note.err) {
		pthread_mutex_unlock(&c->lock);
		console_say(c, &note);
		pthread_mutex_lock(&c->lock);
	}
}

static void *console_writer(void *arg)
{
	struct console *c = arg;
	int old;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (c->head == c->tail && !c->stop)
			pthread_cond_wait(&c->more, &c->lock);
		if (c->head == c->tail)
			break;
		console_drain(c);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- callers (any thread) ------------------------------------------------
 */

/* Queue len bytes whole, or drop them whole. Called with c->lock held. */
static void console_queue(struct console *c, const char *p, size_t len,
			  struct console_note *note)
{
	size_t off = c->head % CONSOLE_RING;
	size_t first = len < CONSOLE_RING - off ? len : CONSOLE_RING - off;

	if (CONSOLE_RING - (c->head - c->tail) < len) {
		c->dropped += len;
		if (!c->stalled)
			note->stall = true;
		c->stalled = true;
		return;
	}
	memcpy(c->ring + off, p, first);
	memcpy(c->ring, p + first, len - first);
	c->head += len;
	pthread_cond_signal(&c->more);
}

/* Hand on the line buffer. Called with c->lock held. */
static void console_flush_locked(struct console *c, struct console_note *note)
{
	const char *p = c->line;
	size_t len = c->len;
	ssize_t n;

	c->len = 0;
	if (!len)
		return;
	if (c->direct && c->head == c->tail) {
		do {
			n = write(c->fd, p, len);
		} while (n < 0 && errno == EINTR);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			c->dropped += len;
			console_error(c, errno, note);
			return;
		}
		if (n > 0) {
			c->bytes += (size_t)n;
			c->last_err = 0;
			p += n;
			len -= (size_t)n;
		}
	}
	if (len)
		console_queue(c, p, len, note);
}

void console_write(struct console *c, const void *buf, size_t len)
{
	struct console_note note = {0};
	const char *p = buf;

	pthread_mutex_lock(&c->lock);
	while (len) {
		size_t room = CONSOLE_LINE_MAX - c->len;
		size_t n = len < room ? len : room;
		const char *nl = memchr(p, '\n', n);

		if (nl)
			n = (size_t)(nl - p) + 1;
		memcpy(c->line + c->len, p, n);
		c->len += n;
		p += n;
		len -= n;
		if (nl || c->len == CONSOLE_LINE_MAX)
			console_flush_locked(c, &note);
	}
	pthread_mutex_unlock(&c->lock);
	console_say(c, &note);
}

void console_flush(struct console *c)
{
	struct console_note note = {0};

	pthread_mutex_lock(&c->lock);
	console_flush_locked(c, &note);
	pthread_mutex_unlock(&c->lock);
	console_say(c, &note);
}

/* ---- open and close ------------------------------------------------------
 */

static int console_open_fd(struct console *c, const char *path, char *err,
			   size_t errlen)
{
	struct stat st;
	int fl;

	if (!path) {
		c->fd = STDOUT_FILENO;
		snprintf(c->name, sizeof(c->name), "stdout");
		/* Not ours to make O_NONBLOCK: the shell shares it. */
		c->direct = fstat(c->fd, &st) == 0 && S_ISREG(st.st_mode);
		return 0;
	}
	snprintf(c->name, sizeof(c->name), "%s", path);
	c->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (c->fd < 0)
		goto fail;
	c->own_fd = 1;
	fl = fcntl(c->fd, F_GETFL);
	if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0)
		goto fail;
	c->direct = true;
	return 0;
fail:
	fl = -errno;
	if (err && errlen)
		snprintf(err, errlen, "console: cannot open '%s': %s", path,
			 strerror(-fl));
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->own_fd = 0;
	return fl;
}

static int console_start(struct console *c)
{
	int ret;

	c->ring = malloc(CONSOLE_RING);
	if (!c->ring)
		return -ENOMEM;
	ret = -pthread_mutex_init(&c->lock, NULL);
	if (ret)
		goto free_ring;
	ret = -pthread_cond_init(&c->more, NULL);
	if (ret)
		goto destroy_lock;
	ret = -pthread_create(&c->writer, NULL, console_writer, c);
	if (!ret)
		return 0;
	pthread_cond_destroy(&c->more);
destroy_lock:
	pthread_mutex_destroy(&c->lock);
free_ring:
	free(c->ring);
	c->ring = NULL;
	return ret;
}

int console_open(struct console *c, const char *path, char *err, size_t errlen)
{
	int ret;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	ret = console_open_fd(c, path, err, errlen);
	if (ret)
		return ret;
	ret = console_start(c);
	if (ret) {
		if (err && errlen)
			snprintf(err, errlen, "console: '%s': %s", c->name,
				 strerror(-ret));
		if (c->own_fd)
			close(c->fd);
		c->fd = -1;
		c->own_fd = 0;
		return ret;
	}
	c->open = true;
	return 0;
}

/* Join the writer within ms; false when it is still blocked. */
static bool console_join(struct console *c, long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return pthread_timedjoin_np(c->writer, NULL, &ts) == 0;
}

/*
 * A writer still blocked on a reader that does not read is cancelled (it
 * holds nothing there). One that does not end even then (blocked on stderr)
 * is left detached with the ring and the lock it uses: the process is
 * exiting.
 */
static bool console_stop_writer(struct console *c)
{
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_signal(&c->more);
	pthread_mutex_unlock(&c->lock);
	if (console_join(c, CONSOLE_CLOSE_MS))
		return true;
	pthread_cancel(c->writer);
	if (console_join(c, CONSOLE_CLOSE_MS))
		return true;
	pthread_detach(c->writer);
	return false;
}

void console_close(struct console *c)
{
	uint64_t left;
	bool joined;

	if (!c->open)
		return;
	c->open = false;
	console_flush(c);
	joined = console_stop_writer(c);
	pthread_mutex_lock(&c->lock);
	left = c->head - c->tail;
	c->dropped += left;
	c->head = c->tail;
	pthread_mutex_unlock(&c->lock);
	if (c->dropped)
		fprintf(stderr,
			"console: '%s': %" PRIu64 " bytes of guest output "
			"dropped (%" PRIu64 " left unread at exit)\n",
			c->name, c->dropped, left);
	if (c->own_fd && close(c->fd) < 0)
		fprintf(stderr, "console: close '%s': %s\n", c->name,
			strerror(errno));
	c->fd = -1;
	c->own_fd = 0;
	if (!joined)
		return;
	pthread_cond_destroy(&c->more);
	pthread_mutex_destroy(&c->lock);
	free(c->ring);
	c->ring = NULL;
}
