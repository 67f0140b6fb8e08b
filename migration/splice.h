/* SPDX-License-Identifier: MIT */
/*
 * splice.h - a frame's data from a socket to its receiver by splice(2),
 * for whoever reads the socket (channel.c on the loop, urgent.c on a
 * channel's thread): the part of a frame under its CRC is read as usual,
 * and when the receiver takes the frame, its data goes socket -> pipe (the
 * socket buffer's pages move, nothing is copied) and the receiver moves it
 * on from the pipe (into guest RAM's memfd: one copy in all, where read()
 * + pwrite() make two); or, where the receiver says so (MIG_SPLICE_DIRECT),
 * the socket is read straight into where the receiver says the data goes
 * (readv into guest RAM's populated mapping). Plaintext only: TLS must
 * decrypt in user space. Implemented in channel_splice.c.
 */
#ifndef MIGRATION_SPLICE_H
#define MIGRATION_SPLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "proto/proto.h"

/* Smaller remainders are read as usual: a splice costs two system calls. */
#define MIG_SPLICE_MIN (64U << 10)
/* Payload bytes a frame must have read before it is offered. */
#define MIG_SPLICE_HEAD_MIN 64
/* The pipe holds a whole batch's data: one socket -> pipe splice a turn. */
#define MIG_SPLICE_PIPE_SIZE (1U << 20)

/*
 * What a receiver's splice_begin answers when it takes a frame: the data
 * comes through the pipe (splice_data), or is read from the socket where
 * the receiver says (splice_iov, splice_placed).
 */
enum {
	MIG_SPLICE_PIPE = 1,
	MIG_SPLICE_DIRECT = 2,
};

/* One connection's splice state; the thread that reads the socket owns it. */
struct mig_splice {
	int pipe[2];
	bool open;   /* pipe made (at the first frame taken through it) */
	bool direct; /* the taken frame: MIG_SPLICE_DIRECT */
	size_t rest; /* bytes of the taken frame still to come */
};

/*
 * Where a spliced live PAGES frame's data goes next (the destination's
 * dest_sink_*): its runs (b), the run being filled and the bytes of it
 * done. Owned by the thread that reads the frame's connection.
 */
struct mig_sink {
	const struct proto_batch *b;
	int run;
	uint64_t off;
	uint64_t want, got; /* the frame's data bytes, and those placed */
	bool hashed;	    /* --verify: its pages hashed once all came */
	uint64_t spliced;   /* bytes placed from the pipe, in all */
	uint64_t direct;    /* bytes read into guest RAM (DIRECT), in all */
	uint64_t head;	    /* bytes that came with a frame's head, in all */
};

/*
 * May the frame whose first have bytes (header included) are at f, rest
 * bytes still to come, be spliced? Its data must lie outside its CRC
 * (PROTO_PAGES_LIVE) and the checked part be here: then the CRC is
 * checked. 1: offer it to the receiver, 0: read it as usual, -EPROTO with
 * err set: the CRC is wrong.
 */
int mig_splice_offer(const struct proto_hdr *h, const uint8_t *f, size_t have,
		     size_t rest, char *err, size_t errlen);
/*
 * The receiver took the frame, its rest bytes still to come, the way how
 * says (MIG_SPLICE_PIPE or MIG_SPLICE_DIRECT): the pipe is made at the
 * first frame that needs one (a direct receiver never does). 0, or -errno
 * with err set (no pipe: the receiver has the frame's head, so the
 * connection cannot go on).
 */
int mig_splice_take(struct mig_splice *s, int how, size_t rest, char *err,
		    size_t errlen);
/*
 * The receiver took the frame: up to s->rest bytes socket fd -> pipe
 * without waiting. Returns the bytes now in the pipe (s->rest already
 * counted: hand them all to the receiver), -EAGAIN when none has
 * come, 0 at EOF, or -errno.
 */
ssize_t mig_splice_read(struct mig_splice *s, int fd);
/*
 * MIG_SPLICE_DIRECT: the iovecs the receiver gave (niov of them, at most
 * s->rest bytes) filled from the socket fd without waiting, as
 * mig_splice_read answers.
 */
ssize_t mig_splice_readv(struct mig_splice *s, int fd, const struct iovec *iov,
			 int niov);
/* iovecs a receiver is offered for one read (MIG_SPLICE_DIRECT). */
#define MIG_SPLICE_IOV 64
void mig_splice_close(struct mig_splice *s);

#endif /* MIGRATION_SPLICE_H */
