/* SPDX-License-Identifier: MIT */
/*
 * console.c - the line-buffered sink behind the UART and the test device.
 *
 * Any thread may write: vCPU threads (UART THR, test device CONSOLE and
 * CONSOLE_BUF) and the main thread (flush at exit). c->lock guards the line
 * buffer and the counters, and is held across the write(2) of a finished
 * line so that lines from different vCPUs come out whole and in order.
 * Devices call in with their own lock held; the console never calls back,
 * so the lock order is always device -> console. A write error drops the
 * line and is reported on stderr once per distinct errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "devices/console.h"

/* How long a full pipe or terminal may hold up a vCPU before we drop. */
#define CONSOLE_BLOCK_MS 1000

static void console_report(struct console *c, int err)
{
	if (err == c->last_err)
		return;
	c->last_err = err;
	fprintf(stderr, "console: write to '%s': %s (output dropped)\n",
		c->name, strerror(err));
}

/* Wait until fd takes more bytes; 0, or -errno (-EAGAIN on timeout). */
static int console_wait(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int n;

	do {
		n = poll(&p, 1, CONSOLE_BLOCK_MS);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == 0 ? -EAGAIN : 0;
}

/* write(2) all of buf, through partial writes, EINTR and EAGAIN. */
static int console_write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		int ret;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			ret = console_wait(fd);
			if (ret)
				return ret;
			continue;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Called with c->lock held. */
static void console_flush_locked(struct console *c)
{
	int ret;

	if (!c->len)
		return;
	ret = console_write_all(c->fd, c->line, c->len);
	if (ret) {
		c->dropped += c->len;
		console_report(c, -ret);
	} else {
		c->bytes += c->len;
		c->last_err = 0;
	}
	c->len = 0;
}

int console_open(struct console *c, const char *path, char *err, size_t errlen)
{
	int ret;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	if (path) {
		c->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			     0644);
		if (c->fd < 0) {
			ret = -errno;
			if (err && errlen)
				snprintf(err, errlen,
					 "console: cannot open '%s': %s", path,
					 strerror(-ret));
			return ret;
		}
		c->own_fd = 1;
		snprintf(c->name, sizeof(c->name), "%s", path);
	} else {
		c->fd = STDOUT_FILENO;
		snprintf(c->name, sizeof(c->name), "stdout");
	}
	ret = -pthread_mutex_init(&c->lock, NULL);
	if (ret) {
		if (err && errlen)
			snprintf(err, errlen, "console: '%s': %s", c->name,
				 strerror(-ret));
		if (c->own_fd)
			close(c->fd);
		c->fd = -1;
		return ret;
	}
	return 0;
}

void console_write(struct console *c, const void *buf, size_t len)
{
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
			console_flush_locked(c);
	}
	pthread_mutex_unlock(&c->lock);
}

void console_flush(struct console *c)
{
	pthread_mutex_lock(&c->lock);
	console_flush_locked(c);
	pthread_mutex_unlock(&c->lock);
}

void console_close(struct console *c)
{
	console_flush(c);
	if (c->own_fd && close(c->fd) < 0)
		fprintf(stderr, "console: close '%s': %s\n", c->name,
			strerror(errno));
	c->fd = -1;
	c->own_fd = 0;
	pthread_mutex_destroy(&c->lock);
}
