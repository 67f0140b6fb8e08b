/* SPDX-License-Identifier: MIT */
/*
 * dest.h - the migration destination's pieces, shared by dest.c (the state
 * machine: the one place its state changes, the frame dispatch, the
 * failures and the entry points) and its phase modules, which do one
 * phase's work each and report what happened - 0, or -errno with one line
 * in err - without moving the state or failing the migration themselves:
 *
 *   dest_recv.c      HELLO, pages, state sections, DISCARD, POSTCOPY
 *   dest_switch.c    restore, --verify digests, the conditions of READY, GO
 *   dest_postcopy.c  fault fetch queue, the urgent thread, placement,
 *                    completion
 *   dest_recover.c   a break: close, listen again, RESUME, the pages lacking
 *   dest_local.c     live update (unix:PATH): the source's memfd adopted
 *
 * Threads: every field is the event-loop thread's except where noted; the
 * functions below run on the loop unless they say otherwise.
 */
#ifndef MIGRATION_DEST_H
#define MIGRATION_DEST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/guest_abi.h"
#include "ept/fault.h"
#include "migration/channel_unix.h"
#include "migration/ram.h"
#include "migration/session.h"
#include "vmm/snapshot.h"

#define DEST_REQ_QUEUE	   FAULT_MAX_PENDING
#define DEST_PC_READ_CHUNK (16U << 10)
#define DEST_STALL_MS	   1000 /* a fault waiting this long is reported */
/* A connection that sends no first frame this long is not a source. */
#define DEST_FIRST_FRAME_MS 3000

struct mig_dest {
	struct mig_session ss; /* first: channels' and async's opaque */
	/*
	 * Live update (dest_local.c): the unix:PATH listener, and the
	 * source's memfd from its connection until HELLO adopts it.
	 */
	bool local;
	struct mig_unix ux;
	int local_memfd;
	bool hello_done, ram_end, state_end, restored, verify_done;
	struct proto_batch *batch;
	struct mig_sink sink;	 /* loop thread: a frame being spliced */
	struct vm_snapshot snap; /* the STATE sections, kept to STATE_END */
	/*
	 * --verify: the sum of the page digests of what was placed, each
	 * page hashed as read back from guest RAM once written (a term
	 * replaced when a page comes again, cleared when it is discarded).
	 * corrupt_gpa (test knob VMM_TEST_CORRUPT_GPA, docs/migration.md):
	 * a page whose byte 0 is flipped as it is placed; ~0: none.
	 */
	struct mig_pagesum placed;
	uint64_t corrupt_gpa;
	uint64_t go_ns;
	/* post-copy (loop thread, but the queue) */
	bool postcopy, urgent_seen, urgent_ok, faults_on;
	bool go_done, complete_sent, pc_failed;
	/* POSTCOPY_END came (loop writes; the urgent thread reads it). */
	atomic_bool pc_end;
	uint64_t urgent_cookie;
	uint64_t nr_discard;
	uint64_t discard_ns; /* DISCARD work since the last SYNC (loop) */
	struct proto_run *discard;
	struct mig_sum sum; /* --verify in post-copy: what we hold */
	bool sum_on;
	char spec[128]; /* our incoming address: listened on again */
	bool insecure;	/* plaintext allowed off loopback (for spec) */
	/* mig_dest_recover_listen: bound on spec, the listener once closed */
	int recover_fd;
	/* A new main connection's first frame is due (dest_on_first_timer). */
	uv_timer_t first_timer;
	bool first_timer_on;
	uint64_t strays;     /* connections dropped that were not the source */
	int pc_closing;	     /* break: channels still closing */
	atomic_bool stalled; /* fault thread -> loop: a fault waits long */
	/*
	 * Fault thread -> urgent thread (or, while there is none, the loop,
	 * which drops them: dest_resume_requests asks again): gpas to
	 * request; guarded by qlock, as is urg_on.
	 */
	pthread_mutex_t qlock;
	uint64_t req[DEST_REQ_QUEUE];
	unsigned int req_head, req_len;
	bool urg_on;
	/*
	 * The urgent connection's thread (urgent.h) sends the requests and
	 * places the answers. It owns ubatch; counts in the u_* atomics,
	 * folded into st by the loop (dest_fold_urgent); its end (u_why)
	 * reaches the loop through async. Pages are placed by both threads:
	 * whoever sets a page's bit in claimed places it (once), and sum is
	 * guarded by sum_lock.
	 */
	struct proto_batch *ubatch;
	struct bitmap claimed;
	pthread_mutex_t sum_lock;
	atomic_uint_fast64_t u_normal, u_zero, u_requests;
	atomic_bool u_resend;
	/* The fault service is up: PAGES may be placed (loop -> urgent). */
	atomic_bool placing;
};

/* Placed in post-copy: the loop adds these to st, the urgent thread to u_*. */
struct dest_count {
	uint64_t normal, zero;
};

/* dest.c: the channels' callbacks (dest_recover.c listens again). */
extern const struct mig_channel_ops dest_channel_ops;
extern const struct mig_channel_ops dest_urgent_ops;
/* Tell the source why (best effort), then give up. */
void dest_fail(struct mig_dest *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* dest_local.c */
int dest_local_listen(struct mig_dest *d, const char *spec, char *err,
		      size_t errlen);
int dest_local_hello(struct mig_dest *d, const uint8_t *p, size_t len,
		     char *err, size_t errlen);
int dest_local_restore(struct mig_dest *d, char *err, size_t errlen);

/* dest_recv.c */
/* Queue a reply on ch (n: the encoder's result); -ENOMEM/-EINVAL, err. */
int dest_reply_on(struct mig_channel *ch, const uint8_t *buf, int n, char *err,
		  size_t errlen);
int dest_reply(struct mig_dest *d, const uint8_t *buf, int n, char *err,
	       size_t errlen);
int dest_reply_empty(struct mig_dest *d, enum proto_type t, char *err,
		     size_t errlen);
int dest_recv_hello(struct mig_dest *d, const uint8_t *p, size_t len, char *err,
		    size_t errlen);
int dest_recv_pages(struct mig_dest *d, const uint8_t *p, size_t len, char *err,
		    size_t errlen);
int dest_recv_state(struct mig_dest *d, const uint8_t *p, size_t len, char *err,
		    size_t errlen);
int dest_recv_discard(struct mig_dest *d, const uint8_t *p, size_t len,
		      char *err, size_t errlen);
int dest_recv_postcopy(struct mig_dest *d, const uint8_t *p, size_t len,
		       char *err, size_t errlen);
int dest_verify_begin(struct mig_dest *d, char *err, size_t errlen);
/*
 * A pre-copy PAGES frame whose data the channel takes from the socket
 * (channel.h, splice_begin/splice_data/splice_iov/splice_placed;
 * dest_sink.c): its runs and the first have bytes of the payload of len;
 * MIG_SPLICE_PIPE or, where direct, MIG_SPLICE_DIRECT: taken; 0: not (not
 * live, or zstd), or a negative errno. Then n bytes more, from a pipe
 * (take), or read into the iovecs of the next max bytes (iov) and placed.
 */
int dest_sink_begin(const struct guest_mem *m, struct mig_sink *s,
		    struct proto_batch *b, const uint8_t *p, size_t have,
		    size_t len, bool direct, char *err, size_t errlen);
int dest_sink_take(const struct guest_mem *m, struct mig_sink *s,
		   const uint8_t *buf, int pipe_rd, size_t n, char *err,
		   size_t errlen);
int dest_sink_iov(const struct guest_mem *m, const struct mig_sink *s,
		  size_t max, struct iovec *iov, int niov, char *err,
		  size_t errlen);
void dest_sink_placed(struct mig_sink *s, size_t n);
int dest_sink_verify(struct mig_dest *d, struct mig_sink *s, char *err,
		     size_t errlen);
/* May the socket be read straight into guest RAM (MIG_SPLICE_DIRECT)? */
bool dest_sink_direct(const struct mig_dest *d);
int dest_splice_begin(struct mig_dest *d, const uint8_t *p, size_t have,
		      size_t len, char *err, size_t errlen);
int dest_splice_data(struct mig_dest *d, int pipe_rd, size_t n, char *err,
		     size_t errlen);
int dest_splice_iov(struct mig_dest *d, size_t max, struct iovec *iov, int niov,
		    char *err, size_t errlen);
int dest_splice_placed(struct mig_dest *d, size_t n, char *err, size_t errlen);
int dest_verify_placed(struct mig_dest *d, uint64_t gpa, uint32_t npages,
		       bool zero, char *err, size_t errlen);
/* Parallel channels (dest_channels.c, channels.h). */
int dest_chans_listen(struct mig_dest *d, char *err, size_t errlen);
void dest_chans_stop(struct mig_dest *d);
bool dest_chans_poll(struct mig_dest *d);

/* dest_switch.c */
int dest_switch_restore(struct mig_dest *d, char *err, size_t errlen);
bool dest_switch_ready(const struct mig_dest *d);
int dest_switch_verify(struct mig_dest *d, const uint8_t *p, size_t len,
		       char *err, size_t errlen);
int dest_switch_go(struct mig_dest *d, char *err, size_t errlen);

/* dest_postcopy.c */
bool dest_live(const struct mig_dest *d);
void dest_fault_stats(struct mig_dest *d);
void dest_fold_urgent(struct mig_dest *d);
void dest_urgent_stop(struct mig_dest *d);
void dest_faults_off(struct mig_dest *d);
int dest_pc_sum(struct mig_dest *d, char *err, size_t errlen);
int dest_pc_faults_on(struct mig_dest *d, char *err, size_t errlen);
int dest_pc_pages(struct mig_dest *d, const uint8_t *p, size_t len, char *err,
		  size_t errlen);
int dest_pc_try_complete(struct mig_dest *d, char *err, size_t errlen);
int dest_urgent_hello(struct mig_dest *d, const uint8_t *p, size_t len,
		      char *err, size_t errlen);
int dest_urgent_check(struct mig_dest *d, char *err, size_t errlen);
void dest_resume_requests(struct mig_dest *d);
/* Drop the requests queued while no urgent thread runs. */
void dest_drop_requests(struct mig_dest *d);

/* dest_recover.c */
/* What a connection that comes while post-copy is paused turned out to be. */
enum dest_resume {
	DEST_RESUME_OK,	    /* our source: LACKING and RESUME_ACK sent */
	DEST_RESUME_REFUSE, /* not our source: refused, listening again */
	DEST_RESUME_FAILED, /* ours, but the answer failed (err) */
};
void dest_recover_break(struct mig_dest *d);
void dest_recover_reopen(struct mig_dest *d);
enum dest_resume dest_recover_resume(struct mig_dest *d,
				     const struct proto_hdr *h,
				     const uint8_t *p, char *err,
				     size_t errlen);
void dest_recover_abort_message(struct mig_dest *d);

#endif /* MIGRATION_DEST_H */
