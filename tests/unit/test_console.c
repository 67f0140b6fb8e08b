/* SPDX-License-Identifier: MIT */
/*
 * test_console.c - a console whose reader stops reading blocks nobody.
 *
 * Standard output is a pipe whose read end nobody reads (the console's
 * shared-fd path: a writer thread and a bounded ring), or the console opens
 * the pipe itself by path (its own fd, O_NONBLOCK). Two threads write
 * 10 MiB of lines through console_write: both return within a second, and
 * bytes were dropped. Then a reader drains the pipe; once everything the
 * console kept has come out, each thread writes 100 more lines. After
 * console_close every line read is whole (one writer's, its sequence
 * increasing, never cut or mixed with another) and all the later lines
 * arrived.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "devices/console.h"

#define LINE	   100	      /* bytes per line, the newline included */
#define FLOOD	   (5U << 20) /* bytes per thread in the first phase */
#define LATER	   100	      /* lines per thread after the reader started */
#define LATER_BASE 1000000000UL

static struct console con;

struct writer {
	int id;
	unsigned long first, n; /* sequence numbers first .. first + n - 1 */
};

/* "w<id> <seq> ....\n": LINE bytes. */
static void *writer_run(void *arg)
{
	const struct writer *w = arg;
	char line[LINE];

	for (unsigned long i = 0; i < w->n; i++) {
		int len = snprintf(line, sizeof(line), "w%d %lu ", w->id,
				   w->first + i);

		memset(line + len, '.', LINE - 1 - (size_t)len);
		line[LINE - 1] = '\n';
		console_write(&con, line, LINE);
	}
	return NULL;
}

static void write_from_two(unsigned long first, unsigned long n)
{
	struct writer w[2] = {{0, first, n}, {1, first, n}};
	pthread_t t[2];

	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, writer_run, &w[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
}

struct reader {
	int fd;
	char *buf;
	size_t len, cap;
};

static void *reader_run(void *arg)
{
	struct reader *r = arg;
	ssize_t n;

	for (;;) {
		if (r->cap - r->len < 65536) {
			r->cap = r->cap * 2 + 65536;
			r->buf = realloc(r->buf, r->cap);
			cr_assert_not_null(r->buf);
		}
		n = read(r->fd, r->buf + r->len, r->cap - r->len);
		if (n <= 0)
			break;
		r->len += (size_t)n;
	}
	return NULL;
}

/* Every line whole and in order per writer; returns how many later lines. */
static unsigned long check_lines(const struct reader *r)
{
	unsigned long later = 0, last[2] = {0, 0};
	bool seen[2] = {false, false};
	size_t off = 0;

	cr_assert_eq(r->len % LINE, 0, "%zu bytes read", r->len);
	for (; off < r->len; off += LINE) {
		const char *l = r->buf + off;
		unsigned long seq;
		int id, len;

		cr_assert_eq(sscanf(l, "w%d %lu %n", &id, &seq, &len), 2,
			     "line at %zu: %.20s", off, l);
		cr_assert(id == 0 || id == 1);
		cr_assert(!seen[id] || seq > last[id], "w%d: %lu after %lu", id,
			  seq, last[id]);
		for (int k = len; k < LINE - 1; k++)
			cr_assert_eq(l[k], '.', "line at %zu cut at %d", off,
				     k);
		cr_assert_eq(l[LINE - 1], '\n');
		seen[id] = true;
		last[id] = seq;
		later += seq >= LATER_BASE;
	}
	return later;
}

/* Wait until everything the console accepted has reached the pipe. */
static void wait_drained(void)
{
	uint64_t t0 = clock_now_ns();

	for (;;) {
		bool empty;

		pthread_mutex_lock(&con.lock);
		empty = con.head == con.tail;
		pthread_mutex_unlock(&con.lock);
		if (empty)
			return;
		cr_assert_lt(clock_now_ns() - t0, 10 * NSEC_PER_SEC,
			     "the writer did not drain the ring");
		sched_yield();
	}
}

static void flood_then_read(int rfd, int wfd_extra)
{
	struct reader r = {.fd = rfd};
	pthread_t rt;
	uint64_t t0 = clock_now_ns(), dt;

	write_from_two(1, FLOOD / LINE);
	dt = clock_now_ns() - t0;
	cr_expect_lt(dt, NSEC_PER_SEC, "10 MiB took %lu ms",
		     (unsigned long)(dt / NSEC_PER_MSEC));
	cr_expect_gt(con.dropped, 0);
	cr_expect_eq(con.dropped % LINE, 0, "lines are dropped whole");

	cr_assert_eq(pthread_create(&rt, NULL, reader_run, &r), 0);
	wait_drained();
	write_from_two(LATER_BASE, LATER);
	console_close(&con);
	if (wfd_extra >= 0)
		close(wfd_extra);
	pthread_join(rt, NULL);
	cr_expect_eq(check_lines(&r), 2 * LATER);
	cr_expect_eq(r.len + con.dropped, 2 * (FLOOD / LINE + LATER) * LINE);
	free(r.buf);
	close(rfd);
}

/* Standard output is the pipe: the writer thread's path. */
Test(console, stdout_pipe_nobody_reads)
{
	int p[2];

	cr_assert_eq(pipe(p), 0);
	cr_assert_geq(dup2(p[1], STDOUT_FILENO), 0);
	close(p[1]);
	cr_assert_eq(console_open(&con, NULL, NULL, 0), 0);
	cr_expect_not(con.direct);
	/* console_close leaves stdout open: close it for the reader's EOF. */
	flood_then_read(p[0], STDOUT_FILENO);
}

/* The console opens the pipe itself (a FIFO given as --serial). */
Test(console, own_pipe_nobody_reads)
{
	char path[64];
	int p[2];

	cr_assert_eq(pipe(p), 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", p[1]);
	cr_assert_eq(console_open(&con, path, NULL, 0), 0);
	close(p[1]);
	cr_expect(con.direct);
	cr_expect(fcntl(con.fd, F_GETFL) & O_NONBLOCK);
	flood_then_read(p[0], -1);
}

/* A reader that never reads and never closes: close still returns. */
Test(console, close_with_reader_stuck)
{
	uint64_t t0;
	int p[2];

	cr_assert_eq(pipe(p), 0);
	cr_assert_geq(dup2(p[1], STDOUT_FILENO), 0);
	close(p[1]);
	cr_assert_eq(console_open(&con, NULL, NULL, 0), 0);
	write_from_two(1, 4096);
	t0 = clock_now_ns();
	console_close(&con);
	cr_expect_lt(clock_now_ns() - t0, 3 * NSEC_PER_SEC);
	cr_expect_gt(con.dropped, 0);
	close(p[0]);
}
