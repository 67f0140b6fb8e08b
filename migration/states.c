/* SPDX-License-Identifier: MIT */
/*
 * states.c - the table of both state machines (states.h).
 *
 * One row per state: `next`, the states it may move to, and `frames`, the
 * frame types the main connection may bring in it. Every live state may
 * end in MIG_FAILED; the source may also be cancelled (MIG_CANCELLED)
 * until GO (mig_source_cancel refuses after it). Terminal states accept
 * nothing and move nowhere.
 *
 * Source (frames from the destination):
 *
 *   state            moves to                          accepts
 *   SETUP            PRECOPY, QUIESCE, STOP_COPY       HELLO_ACK, ERROR
 *   PRECOPY          QUIESCE, STOP_COPY                SYNC, ERROR
 *   QUIESCE          PRECOPY (the device let go)       ERROR
 *   STOP_COPY        WAIT_READY                        ERROR
 *   WAIT_READY       COMPLETED, POSTCOPY,              VERIFY, READY,
 *                    POSTCOPY_PAUSED                   RUNNING, ERROR
 *   POSTCOPY         COMPLETED, POSTCOPY_PAUSED        VERIFY, COMPLETE, ERROR
 *   POSTCOPY_PAUSED  POSTCOPY_RECOVER                  -
 *   POSTCOPY_RECOVER POSTCOPY, POSTCOPY_PAUSED         DISCARD, RESUME_ACK,
 *                                                      ERROR
 *
 * Pure post-copy goes SETUP -> STOP_COPY (the pause) -> WAIT_READY; with
 * a passthrough device SETUP -> QUIESCE -> PRECOPY -> STOP_COPY. A live
 * update (mode local) takes the same path as pure post-copy to
 * WAIT_READY, then READY -> GO -> RUNNING -> COMPLETED as pre-copy: no
 * page and no SYNC, so PRECOPY is only passed through after a QUIESCE.
 *
 * Destination (frames from the source):
 *
 *   state            moves to                          accepts
 *   LISTENING        RECEIVING (connected)             -
 *   RECEIVING        WAIT_READY (READY sent),          HELLO, PAGES, RAM_END,
 *                    LISTENING (a stray: a connection
 *                    that failed or sent no HELLO
 *                    first is dropped)
 *                                                      SYNC, STATE, STATE_END,
 *                                                      VERIFY, DISCARD,
 *                                                      POSTCOPY, ERROR
 *   WAIT_READY       RUNNING (GO)                      GO, ERROR
 *   RUNNING          POSTCOPY_PAUSED                   PAGES, POSTCOPY_END,
 *                                                      ERROR (post-copy only:
 *                                                      after pre-copy, or once
 *                                                      COMPLETE is sent, the
 *                                                      main connection is
 *                                                      not read any more)
 *   POSTCOPY_PAUSED  RUNNING (RESUME accepted)         RESUME (anything else
 *                                                      is refused, and the
 *                                                      wait goes on)
 *
 * The urgent connection: the source's thread reads PAGE_REQ and ERROR,
 * the destination's PAGES (its first frame, URGENT_HELLO, is read on the
 * loop before the thread takes the socket).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include "migration/states.h"

#define S(x) (1U << (x))
#define F(x) (1U << PROTO_##x)

struct mig_state_rule {
	uint32_t next;	 /* bit per enum mig_state */
	uint32_t frames; /* bit per enum proto_type */
};

#define SRC_END (S(MIG_FAILED) | S(MIG_CANCELLED))

static const struct mig_state_rule src_rules[MIG_RUNNING + 1] = {
	[MIG_SETUP] = {S(MIG_PRECOPY) | S(MIG_QUIESCE) | S(MIG_STOP_COPY) |
			       SRC_END,
		       F(HELLO_ACK) | F(ERROR)},
	[MIG_PRECOPY] = {S(MIG_QUIESCE) | S(MIG_STOP_COPY) | SRC_END,
			 F(SYNC) | F(ERROR)},
	[MIG_QUIESCE] = {S(MIG_PRECOPY) | SRC_END, F(ERROR)},
	[MIG_STOP_COPY] = {S(MIG_WAIT_READY) | SRC_END, F(ERROR)},
	[MIG_WAIT_READY] = {S(MIG_COMPLETED) | S(MIG_POSTCOPY) |
				    S(MIG_POSTCOPY_PAUSED) | SRC_END,
			    F(VERIFY) | F(READY) | F(RUNNING) | F(ERROR)},
	[MIG_POSTCOPY] = {S(MIG_COMPLETED) | S(MIG_POSTCOPY_PAUSED) |
				  S(MIG_FAILED),
			  F(VERIFY) | F(COMPLETE) | F(ERROR)},
	[MIG_POSTCOPY_PAUSED] = {S(MIG_POSTCOPY_RECOVER) | S(MIG_FAILED), 0},
	[MIG_POSTCOPY_RECOVER] = {S(MIG_POSTCOPY) | S(MIG_POSTCOPY_PAUSED) |
					  S(MIG_FAILED),
				  F(DISCARD) | F(RESUME_ACK) | F(ERROR)},
};

static const struct mig_state_rule dest_rules[MIG_RUNNING + 1] = {
	[MIG_LISTENING] = {S(MIG_RECEIVING) | S(MIG_FAILED), 0},
	[MIG_RECEIVING] = {S(MIG_WAIT_READY) | S(MIG_LISTENING) | S(MIG_FAILED),
			   F(HELLO) | F(PAGES) | F(RAM_END) | F(SYNC) |
				   F(STATE) | F(STATE_END) | F(VERIFY) |
				   F(DISCARD) | F(POSTCOPY) | F(ERROR)},
	[MIG_WAIT_READY] = {S(MIG_RUNNING) | S(MIG_FAILED), F(GO) | F(ERROR)},
	[MIG_RUNNING] = {S(MIG_POSTCOPY_PAUSED) | S(MIG_FAILED),
			 F(PAGES) | F(POSTCOPY_END) | F(ERROR)},
	[MIG_POSTCOPY_PAUSED] = {S(MIG_RUNNING) | S(MIG_FAILED), F(RESUME)},
};

static const struct mig_state_rule *mig_rule(enum mig_side side,
					     enum mig_state s)
{
	if ((unsigned int)s > MIG_RUNNING)
		return NULL;
	return side == MIG_SIDE_SOURCE ? &src_rules[s] : &dest_rules[s];
}

bool mig_state_move_ok(enum mig_side side, enum mig_state from,
		       enum mig_state to)
{
	const struct mig_state_rule *r = mig_rule(side, from);

	if (from == to)
		return true;
	return r && (unsigned int)to < 32 && (r->next & S(to));
}

bool mig_state_frame_ok(enum mig_side side, enum mig_state s, enum proto_type t)
{
	const struct mig_state_rule *r = mig_rule(side, s);

	return r && (unsigned int)t < 32 && (r->frames & (1U << t));
}

int mig_state_check_frame(enum mig_side side, enum mig_state s,
			  enum proto_type t, char *err, size_t errlen)
{
	if (mig_state_frame_ok(side, s, t))
		return 0;
	snprintf(err, errlen, "frame %s not allowed in state %s",
		 proto_type_name(t), mig_state_name(s));
	return -EPROTO;
}

bool mig_urgent_frame_ok(enum mig_side side, enum proto_type t)
{
	if (side == MIG_SIDE_SOURCE)
		return t == PROTO_PAGE_REQ || t == PROTO_ERROR;
	return t == PROTO_PAGES;
}
