/* SPDX-License-Identifier: MIT */
/*
 * serial_in.h - the UART's input: bytes from stdin or a file, fed into the
 * 16550's receive FIFO on the event loop, with back-pressure.
 *
 * A terminal or a pipe (or socket) is read as a libuv stream, a regular
 * file with uv_fs_read. At most one buffer of bytes read but not yet in
 * the FIFO is held here; while it is not empty nothing more is read, and
 * the UART's rx_room callback (a guest read made room in a full FIFO)
 * wakes the loop to go on. End of input stops the feed.
 */
#ifndef VMM_CTL_SERIAL_IN_H
#define VMM_CTL_SERIAL_IN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "devices/serial.h"

enum serial_in_kind {
	SERIAL_IN_NONE,	  /* no input */
	SERIAL_IN_STREAM, /* terminal, pipe or socket: a uv stream */
	SERIAL_IN_FILE,	  /* a regular file (or device): uv_fs_read */
};

/* Owned by the event-loop thread but room, which any thread may send. */
struct serial_in {
	uv_loop_t *loop;
	struct serial *uart;
	enum serial_in_kind kind;
	int fd;
	bool own_fd;  /* opened here: closed here */
	bool waiting; /* not reading: the FIFO is full */
	bool ended;   /* end of input or an error: no more reads */
	bool reading; /* a file read is in flight */
	bool held;    /* opened, not fed yet (serial_in_go) */
	union {
		uv_tty_t tty;
		uv_pipe_t pipe;
	} h;
	uv_fs_t req;
	uv_async_t room;
	uint8_t buf[256];
	size_t off, len; /* buf[off..len): read, not yet in the FIFO */
	uint64_t bytes;	 /* fed into the FIFO so far */
};

/*
 * Feed uart from path: NULL means stdin when it is a terminal or a pipe
 * (else no input), "-" stdin whatever it is, else the file path. 0, or
 * -errno with err set. hold: open it but feed nothing until serial_in_go
 * (a migration destination: the UART's state, FIFO included, is the
 * source's until the guest runs here; bytes fed before would be lost).
 */
int serial_in_open(struct serial_in *in, uv_loop_t *loop, struct serial *uart,
		   const char *path, bool hold, char *err, size_t errlen);
/* Start feeding a held input (nothing when it is not held). */
int serial_in_go(struct serial_in *in, char *err, size_t errlen);
/* Stop the feed and close its handles (the loop finishes the closing). */
void serial_in_close(struct serial_in *in);

#endif /* VMM_CTL_SERIAL_IN_H */
