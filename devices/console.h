/* SPDX-License-Identifier: MIT */
/*
 * console.h - the serial output sink shared by the UART and the test device.
 *
 * Bytes are collected per line and written with one write(2) when a line
 * ends, the buffer fills, or console_flush() is called, so that lines from
 * different vCPUs never interleave mid-line. Any thread may call; a mutex
 * guards the buffer.
 */
#ifndef DEVICES_CONSOLE_H
#define DEVICES_CONSOLE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define CONSOLE_LINE_MAX 1024

struct console {
	int fd;	    /* stdout or the --serial file */
	int own_fd; /* 1 when console_close() closes fd */
	pthread_mutex_t lock;
	char line[CONSOLE_LINE_MAX];
	size_t len;
	uint64_t bytes;	  /* total written */
	uint64_t dropped; /* bytes lost to write errors */
	int last_err;	  /* errno of the last failed write, reported once */
	char name[256];	  /* "stdout" or the path, for messages */
};

/* path NULL: standard output. Returns 0 or -errno (err says which file). */
int console_open(struct console *c, const char *path, char *err, size_t errlen);
void console_write(struct console *c, const void *buf, size_t len);
void console_flush(struct console *c);
void console_close(struct console *c);

#endif /* DEVICES_CONSOLE_H */
