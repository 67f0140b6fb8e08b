/* SPDX-License-Identifier: MIT */
/*
 * source.h - the migration source's pieces, shared by source.c (the state
 * machine: the one place its state changes) and its phase modules, which
 * do the work of one phase each and return what happened (0, -errno with
 * err set, or a phase's outcome) instead of moving the state themselves:
 *
 *   src_precopy.c   rounds, batches, the harvest, zstd, the page pump
 *   src_switch.c    device quiesce, pause, stop-copy, state sections,
 *                   the discard set, the switch to post-copy
 *   src_hot.c       hybrid's write-hot pages: found, sent at the switch
 *   src_postcopy.c  the push, the urgent thread's answers, recovery
 *   src_verify.c    --verify digests and sums
 *   src_rate.c      bandwidth caps, --auto-converge's vCPU throttle
 *   src_api.c       construction, freeing, statistics
 *   src_local.c     live update (mode local): the memfd handed over
 *
 * Threads: every field is the event-loop thread's except where noted.
 */
#ifndef MIGRATION_SOURCE_H
#define MIGRATION_SOURCE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "migration/policy.h"
#include "migration/push.h"
#include "migration/ram.h"
#include "migration/rate.h"
#include "migration/session.h"

#define SRC_PC_HIGH (1U << 20) /* post-copy push: bytes queued at most */
/*
 * Post-copy push: pages a frame. The destination places a frame's pages
 * in one go on the thread that also places the answers to its faults, so
 * a frame must be short (32 pages: ~0.2 ms of UFFDIO_COPY here).
 */
#define SRC_PC_BATCH 32
/*
 * Post-copy: an answer to a page request also carries up to this many of
 * the pages after it that the destination still lacks (src_add_ahead).
 */
#define SRC_URGENT_AHEAD 3
/*
 * Discarding a page costs the destination ~0.6 us when contiguous, 2.5-4
 * us when scattered (docs/kvm-host.md), in the downtime for what is left
 * at the switch. Early discards repeat while more than SRC_DISCARD_REST_MIN
 * pages are pending, or more than SRC_DISCARD_REST_MAX, or the last round
 * shrank them by a quarter or more (the guest dirties new pages as fast
 * as they are dropped: a few hundred at 100k pages/s), at most
 * SRC_EARLY_ROUNDS times (4 left 12-19 ms of discard in the downtime in 3
 * of 5 runs where the guest dirties 100k pages/s; docs/benchmarks.md).
 */
#define SRC_DISCARD_REST_MIN 64
#define SRC_DISCARD_REST_MAX 256
#define SRC_EARLY_ROUNDS     12
/*
 * The switch to post-copy sends at most this many write-hot pages in the
 * downtime (1 MiB: ~1 ms on loopback here), src_hot.c.
 */
#define SRC_HOT_MAX 256
/*
 * A write-hot page is dirty in each of two windows of this span: a page
 * the guest writes every millisecond is, one its workload rewrites once a
 * second seldom is (docs/benchmarks.md).
 */
#define SRC_HOT_WINDOW_NS 5000000ULL

struct mig_source {
	struct mig_session ss; /* first: channels' and async's opaque */
	struct mig_params p;
	char to[128];	  /* p.to points here: the caller's copy goes away */
	uint32_t tsc_khz; /* the guest's TSC rate for HELLO (0: unknown) */
	/*
	 * The urgent thread answers the PAGE_REQs (src_postcopy.c). It owns
	 * ubatch and ubuf, and counts what it sends in the u_* atomics,
	 * which the loop folds into st (src_fold_counts).
	 */
	struct proto_batch *ubatch;
	uint8_t *ubuf;
	atomic_uint_fast64_t u_normal, u_zero, u_unpushed, u_req, u_ahead;
	/*
	 * Passthrough-device quiesce (src_switch.c; loop thread, but
	 * q_acked, which the vCPU thread that wrote the driver's ACK sets
	 * before waking the async). q_then is what the quiesce stands in
	 * front of: the pause for stop-copy, or the switch to post-copy.
	 */
	uv_timer_t qtimer;
	bool qtimer_on;
	bool q_asked; /* a QUIESCE was posted: resume the device on failure */
	void (*q_then)(struct mig_source *s);
	atomic_bool q_acked;
	/* pre-copy (src_precopy.c) */
	struct bitmap todo; /* pages to send in this round */
	uint64_t cursor;    /* pre-copy: next page index to look at */
	struct proto_batch *batch;
	size_t frame_cap;
	uint64_t round_start_ns;
	uint64_t round_bytes; /* frame bytes queued in this round */
	uint64_t round_pages;
	bool sync_wait;	      /* round queued, SYNC sent, not echoed yet */
	uint32_t zstd_skip;   /* batches to send raw before trying again */
	uint32_t zstd_misses; /* consecutive batches zstd did not shrink */
	struct mig_policy_state policy;
	/* bandwidth caps and --auto-converge (src_rate.c) */
	struct mig_rate rate;
	uv_timer_t rtimer; /* the pump waits for tokens */
	bool rtimer_on, rtimer_armed;
	uv_timer_t ttimer; /* the throttle's held and run phases */
	bool ttimer_on, throttle_on, throttle_held;
	uint64_t precopy_ns; /* pre-copy started (HELLO_ACK) */
	bool logging;	     /* we turned dirty logging on */
	/* the switch (src_switch.c) */
	uint64_t pinned_new; /* src_devs_take_pinned: pages it added */
	bool paused_here;    /* we paused the VM */
	bool last_pass;	     /* converged: the live pass before the pause */
	bool last_pass_done;
	bool go_sent;
	uint64_t pause_ns;
	uint64_t queued_ns; /* everything of stop-copy queued */
	uint64_t go_ns;
	bool early_discard;	/* hybrid: discard sent, SYNC awaited */
	uint32_t early_rounds;	/* early discards after the first */
	uint64_t early_pending; /* pages the last one discarded */
	uint64_t discard_runs;	/* DISCARD runs sent so far */
	/* post-copy (src_postcopy.c) */
	bool pc;	       /* the switch went to post-copy */
	bool pc_urgent_wait;   /* --mode postcopy: switch once urgent is up */
	bool hello_acked;      /* HELLO_ACK came (it may come once) */
	bool pc_end_sent;      /* POSTCOPY_END queued */
	bool giving_up;	       /* a failure recovery cannot mend */
	struct bitmap pushset; /* the pages to push, all */
	struct mig_push push;  /* in which order */
	/*
	 * Pure post-copy pushes what is resident, found lazily, a chunk of
	 * MEM_SCAN_PAGES at a time (scanned: chunk done): a scan of all RAM
	 * in the downtime costs ~9 ms a GiB (mincore on the memfd).
	 */
	bool lazy_resident;
	struct bitmap resident, scanned;
	struct bitmap lacking; /* recovery: what the destination lacks */
	/*
	 * Hybrid (src_hot.c): the write-hot pages, which the guest
	 * writes all the time and would fault on as soon as it runs over
	 * there. Harvests (dnew) are ORed into win until it spans
	 * SRC_HOT_WINDOW_NS (from win_ns); then hot = win & wprev, the pages
	 * dirty in each of the last two windows, and win becomes wprev.
	 */
	struct bitmap dnew, win, wprev, hot;
	uint64_t win_ns;
	struct bitmap now;     /* the switch: the pages sent in the downtime */
	uint64_t resume_runs;  /* recovery: DISCARD runs received */
	uint64_t lacking_next; /* recovery: the next run starts here or above */
	uint64_t running_ns;   /* RUNNING arrived */
	/*
	 * --verify (src_verify.c): in pre-copy the sum of the page digests
	 * of what was sent, each page's term replaced when it is sent again
	 * (sent_err: a page could not be hashed); digest: the destination's
	 * sum once it came.
	 */
	struct mig_pagesum sent;
	int sent_err;
	struct proto_digest digest;
	bool remote_verified;
};

/* What the pump found when it stopped (src_pages_pump). */
enum src_pump_end {
	SRC_PUMP_WAIT,	/* the channel is full, or a SYNC is awaited */
	SRC_PUMP_ROUND, /* pre-copy: the round is queued, SYNC sent */
	SRC_PUMP_EMPTY, /* stop-copy or post-copy: every page is queued */
};

/* source.c */
extern const struct mig_channel_ops src_channel_ops;
void src_on_async(uv_async_t *h);
/* The urgent connection is up and handed over to its thread. */
void src_urgent_up(struct mig_source *s);
bool src_postcopy(const struct mig_source *s);
/* src_api.c: HELLO and its capabilities, and HELLO_ACK's checked. */
uint64_t src_caps_offered(const struct mig_source *s);
int src_hello_send(struct mig_source *s, struct mig_channel *ch);
int src_check_caps(struct mig_source *s, const uint8_t *p, size_t len,
		   char *err, size_t errlen);
void src_fail(struct mig_source *s, enum mig_state state, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void src_pump(struct mig_source *s);
/* A pre-copy round's SYNC came back (on every channel). */
void src_on_sync(struct mig_source *s);
/* HELLO_ACK and every channel up: logging on, state PRECOPY, round 0. */
void src_precopy_go(struct mig_source *s);
/* Parallel channels (src_channels.c, channels.h). */
uint32_t src_chans_wanted(const struct mig_source *s);
int src_chans_start(struct mig_source *s, char *err, size_t errlen);
/* Page i belongs to another channel than the batch's (send it first). */
bool src_chans_other(struct mig_source *s, uint64_t i);
struct mig_channel *src_chans_pick(struct mig_source *s);
bool src_chans_writable(const struct mig_source *s);
int src_chans_sync(struct mig_source *s);
bool src_chans_sync_hold(struct mig_source *s);
void src_chans_done(struct mig_source *s);

/* src_api.c */
void src_fold_counts(struct mig_source *s);
void src_update_elapsed(struct mig_source *s);
void src_abort_message(struct mig_source *s);

/* src_precopy.c */
int src_send_small(struct mig_source *s, uint8_t *tmp, int n);
void src_add_page(struct mig_source *s, uint64_t i);
bool src_batch_full(const struct mig_source *s);
int src_send_batch(struct mig_source *s);
uint64_t src_take_dirty(struct mig_source *s);
uint64_t src_take_last(struct mig_source *s);
int src_harvest(struct mig_source *s, char *err, size_t errlen);
int src_harvest_last(struct mig_source *s, char *err, size_t errlen);
void src_start_round(struct mig_source *s);
/* Converged: the last pass begins (true), its pages in todo. */
bool src_last_pass(struct mig_source *s);
int src_precopy_begin(struct mig_source *s, char *err, size_t errlen);
void src_precopy_end(struct mig_source *s);
int src_end_round(struct mig_source *s, struct mig_decision *d, char *err,
		  size_t errlen);
int src_pages_pump(struct mig_source *s, char *err, size_t errlen);

/* src_hot.c: hybrid's write-hot pages */
/* The harvest into todo and the windows; last: the switch's final one. */
uint64_t src_hot_take(struct mig_source *s, bool last);
/* The switch: the pages to send in the downtime, into now. */
void src_hot_pick(struct mig_source *s);
/* The switch, after the discard set: the pages of now. */
int src_hot_send(struct mig_source *s);

/* src_quiesce.c */
bool src_devs_quiesce_needed(struct mig_source *s);
bool src_devs_quiesce_request(struct mig_source *s);
int src_quiesce_outcome(struct mig_source *s, bool timed_out, char *err,
			size_t errlen);
void src_quiesce_cancel(struct mig_source *s);
void src_devs_release(struct mig_source *s);
uint64_t src_devs_take_pinned(struct mig_source *s);

/* src_switch.c */
int src_pause(struct mig_source *s, char *err, size_t errlen);
void src_switch_queued(struct mig_source *s);
int src_send_finish(struct mig_source *s, char *err, size_t errlen);
int src_discard_early(struct mig_source *s);
uint64_t src_discard_pending(const struct mig_source *s);
int src_postcopy_prepare(struct mig_source *s, char *err, size_t errlen);
int src_postcopy_switch(struct mig_source *s, char *err, size_t errlen);
int src_urgent_connect(struct mig_source *s, char *err, size_t errlen);

/* src_postcopy.c */
bool src_fill_push(struct mig_source *s);
void src_postcopy_push_start(struct mig_source *s);
void src_push_walk(struct mig_source *s);
/* Loop: the walk thread is done (src_on_async). */
void src_push_walk_end(struct mig_source *s);
extern const struct mig_channel_ops src_urgent_ops;
int src_resume_connect(struct mig_source *s, const char *to, char *err,
		       size_t errlen);
int src_resume_send(struct mig_source *s);
int src_on_lacking(struct mig_source *s, const uint8_t *p, size_t len,
		   char *err, size_t errlen);
int src_on_resume_ack_check(struct mig_source *s, const uint8_t *p, size_t len,
			    char *err, size_t errlen);

/* src_local.c */
bool src_local(const struct mig_source *s);
int src_local_mode(struct mig_params *p, char *err, size_t errlen);
int src_local_connect(struct mig_source *s, char *err, size_t errlen);
void src_local_acked(struct mig_source *s);

/* src_rate.c */
int src_rate_init(struct mig_source *s, uv_loop_t *loop, char *err,
		  size_t errlen);
void src_rate_apply(struct mig_source *s);
bool src_rate_hold(struct mig_source *s);
void src_rate_spend(struct mig_source *s, uint64_t bytes);
void src_throttle_round(struct mig_source *s, const struct mig_decision *d);
void src_throttle_stop(struct mig_source *s);

/* src_verify.c */
int src_send_verify(struct mig_source *s);
int src_on_verify(struct mig_source *s, const uint8_t *p, size_t len, char *err,
		  size_t errlen);
int src_postcopy_verify(struct mig_source *s, char *err, size_t errlen);
int src_verify_begin(struct mig_source *s, char *err, size_t errlen);
void src_verify_sent(struct mig_source *s, uint64_t i, uint64_t gpa,
		     const void *page);
int src_verify_audit(struct mig_source *s, char *err, size_t errlen);

#endif /* MIGRATION_SOURCE_H */
