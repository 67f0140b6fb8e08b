/* SPDX-License-Identifier: MIT */
/*
 * urgent.h - the post-copy urgent connection's own thread.
 *
 * In post-copy a vCPU waits while its page request crosses the urgent
 * connection and the answer comes back. On the event-loop thread that round
 * trip waited behind the bulk work of the same loop (placing or pushing the
 * background stream) and behind the CPU that work used: p99 of several ms
 * on two cores. So once the urgent connection is up, its socket is taken
 * from libuv (mig_channel_detach) and served by a thread of its own, which
 * the scheduler wakes promptly because it sleeps most of the time. The
 * thread reads frames, hands each to on_frame, and may be woken with
 * mig_urgent_wake() to run on_wake (the destination sends the page
 * requests the fault thread queued).
 *
 * Threads: mig_urgent_start/stop run on the event-loop thread; on_frame,
 * on_wake and on_end run on the urgent thread, which alone reads and
 * writes the socket until mig_urgent_stop() has joined it. on_end is
 * called once when the thread ends on its own (EOF, a socket error, a bad
 * frame, or a callback's error); it must only hand the news to the loop
 * (uv_async_send), never close anything itself.
 */
#ifndef MIGRATION_URGENT_H
#define MIGRATION_URGENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "migration/splice.h"
#include "proto/proto.h"

struct tls_conn;

struct mig_urgent_ops {
	/* A checked frame; nonzero ends the thread (why in err). */
	int (*on_frame)(void *opaque, const struct proto_hdr *h,
			const uint8_t *p, char *err, size_t errlen);
	/* mig_urgent_wake() was called; nonzero ends the thread. */
	int (*on_wake)(void *opaque, char *err, size_t errlen);
	/*
	 * The thread ended by itself: code is -errno, why one line. own:
	 * why is on_frame's or on_wake's own error text; otherwise the
	 * thread found the fault itself (EOF, a socket error, a bad frame).
	 */
	void (*on_end)(void *opaque, int code, const char *why, bool own);
	/*
	 * Run the thread SCHED_FIFO when allowed (urgent_set_realtime);
	 * otherwise it asks for a short time slice (common/sched.h).
	 */
	bool realtime;
	/* Bytes one read asks for; 0: 64 KiB (bulk streams want more). */
	size_t read_size;
	/*
	 * Optional, plaintext only: a large frame's data straight from the
	 * socket (splice.h), as mig_channel_ops' of the same names: begin
	 * sees the header and the first have payload bytes and returns
	 * MIG_SPLICE_PIPE or MIG_SPLICE_DIRECT (taken: the rest comes by
	 * data or iov and placed, on_frame is not called), 0 (read it as usual)
	 * or a negative errno with err set.
	 */
	int (*splice_begin)(void *opaque, const struct proto_hdr *h,
			    const uint8_t *p, size_t have, char *err,
			    size_t errlen);
	int (*splice_data)(void *opaque, int pipe_rd, size_t n, char *err,
			   size_t errlen);
	int (*splice_iov)(void *opaque, size_t max, struct iovec *iov, int niov,
			  char *err, size_t errlen);
	int (*splice_placed)(void *opaque, size_t n, char *err, size_t errlen);
};

struct mig_urgent {
	const struct mig_urgent_ops *ops;
	void *opaque;
	char peer[64];
	int fd; /* borrowed from the libuv handle; closed by it */
	/* TLS: the channel's session, this thread's alone while it runs */
	struct tls_conn *tls;
	int wake_fd; /* eventfd: work (on_wake) or stop */
	pthread_t thread;
	bool running;
	atomic_bool stop;
	/* Urgent thread only: the reassembly buffer. */
	uint8_t *rbuf;
	size_t rlen, rcap;
	struct mig_splice sp; /* urgent thread: a frame being spliced */
	bool cb_failed;	      /* a callback returned the error */
	int rt_err; /* realtime or short slice: 0 or the errno it failed with */
	atomic_uint_fast64_t bytes_in, bytes_out; /* any thread may read */
};

/*
 * Start serving fd (already detached from libuv) with the bytes libuv had
 * read but not parsed (leftover, len; copied), after writing the frame
 * first (first_len bytes; none when NULL) before the thread starts. tls:
 * the channel's established session on fd (NULL: plaintext); every byte
 * then goes through it, and the channel frees it after mig_urgent_stop.
 * 0 or -errno with err set.
 */
int mig_urgent_start(struct mig_urgent *u, int fd, struct tls_conn *tls,
		     const uint8_t *leftover, size_t len, const uint8_t *first,
		     size_t first_len, const char *peer,
		     const struct mig_urgent_ops *ops, void *opaque, char *err,
		     size_t errlen);
/* Any thread: run on_wake on the urgent thread soon. */
void mig_urgent_wake(struct mig_urgent *u);
/*
 * Urgent thread only: write the whole frame (waiting for the socket as
 * needed, but giving up when asked to stop). 0 or -errno.
 */
int mig_urgent_send(struct mig_urgent *u, const uint8_t *frame, size_t len);
/* Loop thread: stop and join the thread (no-op when not running). */
void mig_urgent_stop(struct mig_urgent *u);

#endif /* MIGRATION_URGENT_H */
