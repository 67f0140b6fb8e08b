/* SPDX-License-Identifier: MIT */
/*
 * channel_unix.h - the local connection of a live update (unix:PATH): a
 * UNIX stream socket between two VMM processes on one host. Its first
 * bytes are a small header sent with sendmsg, which carries the source's
 * guest-RAM memfd as SCM_RIGHTS; after it the socket becomes an ordinary
 * migration channel (channel.h) carrying proto/ frames (HELLO, the state
 * sections, READY, GO, RUNNING). No TLS: the socket file is created mode
 * 0600 (docs/security.md). Every field is the event-loop thread's.
 */
#ifndef MIGRATION_CHANNEL_UNIX_H
#define MIGRATION_CHANNEL_UNIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "migration/channel.h"

#define MIG_UNIX_MAGIC	 "VMMLIVE"
#define MIG_UNIX_VERSION 1
#define MIG_UNIX_HDR_MS	 1000 /* a connection's header is due by then */

/* The socket's first bytes; the memfd rides along (SCM_RIGHTS). */
struct mig_unix_hdr {
	char magic[8];	   /* MIG_UNIX_MAGIC */
	uint32_t version;  /* MIG_UNIX_VERSION */
	uint32_t nr_fds;   /* memfds attached: 1 */
	uint64_t mem_size; /* bytes of guest RAM (the memfd's size) */
};

struct mig_unix;
/*
 * Destination: a source's header and memfd arrived on sock (nonblocking,
 * now the callee's, as is memfd).
 */
typedef void (*mig_unix_accept_fn)(struct mig_unix *u, int sock, int memfd,
				   const struct mig_unix_hdr *h);

/* The destination's listener. */
struct mig_unix {
	uv_loop_t *loop;
	char path[108];
	int lfd;	 /* the listening socket */
	uv_poll_t lpoll; /* readable: a connection to accept */
	bool lpoll_on;	 /* open (closed at the first source, or by free) */
	mig_unix_accept_fn on_accept;
	void *opaque;
	uint64_t strays; /* connections dropped: no valid header */
};

bool mig_addr_is_unix(const char *spec);

/*
 * Source: connect to spec (unix:PATH), send the header with memfd, and
 * make ch the migration channel over that socket (ops as for
 * mig_channel_connect, but on_connect is not called: the caller queues
 * its HELLO at once). 0 or -errno with one line in err.
 */
int mig_unix_connect(struct mig_channel *ch, uv_loop_t *loop, const char *spec,
		     int memfd, uint64_t mem_size,
		     const struct mig_channel_ops *ops, void *opaque, char *err,
		     size_t errlen);

/*
 * Destination: create the socket file (mode 0600; an existing file is
 * refused) and listen; on_accept gets the first connection whose header is
 * valid (a connection without one within MIG_UNIX_HDR_MS is dropped, the
 * loop waiting for it meanwhile), after which the listener is closed and
 * the file removed.
 */
int mig_unix_listen(struct mig_unix *u, uv_loop_t *loop, const char *spec,
		    mig_unix_accept_fn on_accept, void *opaque, char *err,
		    size_t errlen);

/* Destination: ch becomes the migration channel over sock (the socket). */
int mig_unix_adopt(struct mig_channel *ch, uv_loop_t *loop, const char *spec,
		   int sock, const struct mig_channel_ops *ops, void *opaque,
		   char *err, size_t errlen);

/*
 * The loop was blocked on purpose (a destination populating the RAM it
 * adopted): that time is not the peer's silence. Restart ch's stall clock.
 */
void mig_unix_touch(struct mig_channel *ch);

/*
 * Stop listening: close the socket and remove the file. The poll handle,
 * when it still needs closing, is returned (else NULL) for the owner's
 * mig_session_free.
 */
uv_handle_t *mig_unix_close(struct mig_unix *u);

#endif /* MIGRATION_CHANNEL_UNIX_H */
