/* SPDX-License-Identifier: MIT */
/*
 * console.h - the serial output sink shared by the UART and the test device.
 *
 * Bytes are collected per line and handed on whole when a line ends, the
 * line buffer fills, or console_flush() is called, so that lines from
 * different vCPUs never interleave mid-line. Any thread may call; a mutex
 * guards the state. No caller ever blocks on the output: a file the
 * console opened itself is non-blocking and written at once when it takes
 * the bytes; anything else (standard output, which may be a pipe nobody
 * reads) is written by the console's own writer thread from a bounded
 * ring. Lines that do not fit in the ring are dropped whole and counted,
 * with one warning on stderr per stall.
 */
#ifndef DEVICES_CONSOLE_H
#define DEVICES_CONSOLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONSOLE_LINE_MAX 1024
#define CONSOLE_RING	 (1U << 20) /* bytes waiting for a slow reader */

struct console {
	int fd;	     /* stdout or the --serial file */
	int own_fd;  /* 1 when console_close() closes fd */
	bool direct; /* fd never blocks (ours, O_NONBLOCK; or a regular file):
			callers write(2) it while the ring is empty */
	bool open;   /* console_open succeeded, console_close not yet run */
	pthread_mutex_t lock;
	pthread_cond_t more; /* the ring gained bytes, or stop was set */
	pthread_t writer;    /* drains the ring into fd; may block there */
	bool stop;	     /* console_close: drain, then end */
	char line[CONSOLE_LINE_MAX];
	size_t len;
	char *ring; /* CONSOLE_RING bytes; [tail, head) mod size is queued */
	uint64_t head, tail;
	bool stalled;	  /* lines dropped since the ring last ran empty */
	uint64_t bytes;	  /* total written */
	uint64_t dropped; /* bytes lost: ring full, or a write error */
	int last_err;	  /* errno of the last failed write, reported once */
	char name[256];	  /* "stdout" or the path, for messages */
};

/* path NULL: standard output. Returns 0 or -errno (err says which file). */
int console_open(struct console *c, const char *path, char *err, size_t errlen);
void console_write(struct console *c, const void *buf, size_t len);
/* Hand on the partial line; it reaches the file when the file takes it. */
void console_flush(struct console *c);
/*
 * Flush, wait up to CONSOLE_CLOSE_MS for the writer to drain the ring
 * (what is left then is dropped and reported), close a file we opened.
 */
void console_close(struct console *c);

#endif /* DEVICES_CONSOLE_H */
