/* SPDX-License-Identifier: MIT */
/*
 * channels.h - parallel channels (`migrate --channels N`): pre-copy's pages
 * spread over N connections to the same destination, so that on the
 * destination each extra connection has a thread of its own receiving and
 * placing pages (its single loop thread is what limits round 0).
 *
 * The ordering rule (docs/protocol.md, "Parallel channels"): in pre-copy a
 * page always travels on channel (page index / 512) % N - by 2 MiB chunk,
 * in every round - so the copies of one page are ordered by one TCP
 * stream; a round ends when its SYNC came back on every channel (each
 * extra channel echoes SYNC after placing everything before it), so when
 * pre-copy ends nothing is in flight on any extra channel; and everything
 * after pre-copy (stop-copy, discard sets, post-copy) travels on the main
 * connection only. The destination stops its extra threads (joined) when
 * RAM_END or POSTCOPY arrives on the main connection, so no extra channel
 * places a page after the switch.
 *
 * Channel 0 is the main connection; x[i] is channel i + 1. Each extra
 * channel opens with CHAN_HELLO: the token HELLO_ACK gave, and over TLS
 * the proof that its session belongs to the main one's peers (as the
 * urgent connection's). Threads: everything here is the event-loop
 * thread's, except a destination extra channel once handed to its thread
 * (thr): then its socket, batch and counters are that thread's until
 * mig_urgent_stop().
 */
#ifndef MIGRATION_CHANNELS_H
#define MIGRATION_CHANNELS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "migration/channel.h"
#include "migration/urgent.h"
#include "proto/proto.h"

#define MIG_TLS_CHANNEL "vmm-migration channel"
#define MIG_CHAN_SHIFT	9 /* 512 pages: the 2 MiB chunk is the unit */

struct mig_session;

struct mig_xchan {
	struct mig_channel ch; /* loop thread */
	void *owner;	       /* the mig_source or mig_dest */
	uint32_t index;	       /* 1..n-1 */
	bool closing;	       /* closed on purpose: errors are expected */
	/* source */
	bool up;	/* connected, CHAN_HELLO queued */
	bool sync_wait; /* SYNC sent on it, echo not back yet */
	/* destination */
	bool proven;		   /* CHAN_HELLO checked, thr runs */
	struct mig_urgent thr;	   /* the placing thread */
	struct proto_batch *batch; /* thr's decode buffer */
	struct mig_sink sink;	   /* thr: a frame being spliced */
	uint64_t pages, zero;	   /* thr's counts (read after join) */
	uint64_t bytes;		   /* wire bytes, once thr is stopped */
	bool cut;		   /* thr: VMM_TEST_CHAN_CUT cut it */
};

struct mig_chans {
	uint32_t n;	     /* connections agreed, the main one included */
	uint64_t token;	     /* names the migration to extra channels */
	struct mig_xchan *x; /* n - 1 extra channels (NULL: none) */
	uint32_t up;	     /* source: extra channels connected */
	bool main_synced;    /* source: main SYNC back, extras' awaited */
	uint32_t cur;	     /* source: the channel the batch is for */
	uint32_t seen;	     /* destination: indexes proven (bit mask) */
	bool stopped;	     /* destination: threads joined */
	/* destination: an extra thread failed (for the loop, via async) */
	atomic_bool failed;
	char why[600];
	pthread_mutex_t sum_lock; /* --verify's page sum, placed by all */
};

/* Allocate the n - 1 extra channels (n >= 2). 0 or -ENOMEM. */
int mig_chans_alloc(struct mig_chans *c, uint32_t n, void *owner);
/* Stop every thread and close every channel (flushed). Loop thread. */
void mig_chans_close(struct mig_session *ss);
/* Wire bytes per channel into ss->st (out: sent, else received). */
void mig_chans_stats(struct mig_session *ss, bool out);
/* Released with the session (its handles are closed). */
void mig_chans_free(struct mig_chans *c);

#endif /* MIGRATION_CHANNELS_H */
