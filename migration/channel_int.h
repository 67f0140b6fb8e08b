/* SPDX-License-Identifier: MIT */
/*
 * channel_int.h - what channel.c (libuv streams, reassembly, accounting),
 * channel_conn.c (connect, listen, accept, detach), channel_tls.c (the
 * same channel over a TLS session) and channel_splice.c (frame data
 * spliced to its receiver) share. Private
 * to the two; everything runs on the event-loop thread.
 */
#ifndef MIGRATION_CHANNEL_INT_H
#define MIGRATION_CHANNEL_INT_H

#include "migration/channel.h"

/* One queued frame: a uv_write request, or a TLS queue entry. */
struct mig_write {
	uv_write_t req;
	struct mig_channel *ch;
	uint8_t *frame;
	size_t len;
	struct mig_write *next; /* TLS queue */
};

void mig_channel_fail(struct mig_channel *ch, int e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void mig_channel_progress(struct mig_channel *ch);
/* uv_close one of ch's handles, counted until its callback has run. */
void mig_channel_close_one(struct mig_channel *ch, uv_handle_t *h);
/* Room at the end of rbuf for the next read (read_chunk bounded). */
int mig_channel_room(struct mig_channel *ch, uint8_t **p, size_t *len);
/* n bytes were read into the room: account and hand frames over. */
void mig_channel_got(struct mig_channel *ch, size_t n);
/* A queued frame of len bytes is written (status 0) or failed. */
void mig_channel_wrote(struct mig_channel *ch, size_t len, int status);
/* The peer closed the connection: why (the sniffed bytes say TLS?). */
void mig_channel_eof(struct mig_channel *ch);
/* Set a channel up on loop (its timers, the stall watch started). */
int mig_channel_init(struct mig_channel *ch, uv_loop_t *loop, const char *spec,
		     const struct mig_channel_ops *ops, void *opaque);
/* (Re)start the stall watch: one check a second. */
void mig_channel_watch(struct mig_channel *ch);
/* Parse the address and set the channel up: the part both ends share. */
int mig_channel_prepare(struct mig_channel *ch, uv_loop_t *loop,
			const char *spec, const struct mig_channel_ops *ops,
			void *opaque, struct sockaddr_storage *ss, char *err,
			size_t errlen);
/* Connected: read (plaintext) or start the TLS handshake. */
int mig_channel_start(struct mig_channel *ch);

/* channel_splice.c */
int mig_channel_splice_try(struct mig_channel *ch, const struct proto_hdr *h,
			   const uint8_t *f, size_t have);
void mig_channel_splice_step(struct mig_channel *ch);

/* channel_tls.c */
int mig_tls_start(struct mig_channel *ch);
void mig_tls_send(struct mig_channel *ch, struct mig_write *w);
void mig_tls_stop(struct mig_channel *ch);    /* no more polling */
void mig_tls_yield(struct mig_channel *ch);   /* read_chunk: pause reads */
void mig_tls_resume(struct mig_channel *ch);  /* from the idle handle */
void mig_tls_close(struct mig_channel *ch);   /* close_notify, close poll */
void mig_tls_release(struct mig_channel *ch); /* every handle let go */

#endif /* MIGRATION_CHANNEL_INT_H */
