/* SPDX-License-Identifier: MIT */
/*
 * test_states.c - the one table of both migration state machines
 * (migration/states.c): every (state, frame) pair is either let through or
 * refused with "frame X not allowed in state Y"; the frames that end a
 * handshake or a switch-over are accepted in their one state only.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>

#include "migration/states.h"

#define LAST_FRAME PROTO_RESUME_ACK

static void check_pairs(enum mig_side side)
{
	char err[128], want[128];

	for (int s = MIG_NONE; s <= MIG_RUNNING; s++) {
		for (int t = 0; t <= LAST_FRAME + 1; t++) {
			int r = mig_state_check_frame(side, s, t, err,
						      sizeof(err));

			if (mig_state_frame_ok(side, s, t)) {
				cr_expect_eq(r, 0, "state %d frame %d", s, t);
				continue;
			}
			snprintf(want, sizeof(want),
				 "frame %s not allowed in state %s",
				 proto_type_name(t), mig_state_name(s));
			cr_expect_eq(r, -EPROTO, "state %d frame %d", s, t);
			cr_expect_str_eq(err, want);
		}
	}
}

Test(states, every_pair_allowed_or_refused)
{
	check_pairs(MIG_SIDE_SOURCE);
	check_pairs(MIG_SIDE_DEST);
}

/* The states of side that accept frame t, as a bit mask. */
static unsigned int accepting(enum mig_side side, enum proto_type t)
{
	unsigned int m = 0;

	for (int s = MIG_NONE; s <= MIG_RUNNING; s++)
		if (mig_state_frame_ok(side, s, t))
			m |= 1U << s;
	return m;
}

Test(states, source_handshake_and_running_in_one_state)
{
	/* HELLO_ACK only in SETUP, which it leaves: it is taken once. */
	cr_expect_eq(accepting(MIG_SIDE_SOURCE, PROTO_HELLO_ACK),
		     1U << MIG_SETUP);
	cr_expect(!mig_state_move_ok(MIG_SIDE_SOURCE, MIG_PRECOPY, MIG_SETUP));
	/* RUNNING only while READY/GO are exchanged (source.c: after GO). */
	cr_expect_eq(accepting(MIG_SIDE_SOURCE, PROTO_RUNNING),
		     1U << MIG_WAIT_READY);
	cr_expect(
		!mig_state_frame_ok(MIG_SIDE_SOURCE, MIG_SETUP, PROTO_RUNNING));
	cr_expect(!mig_state_frame_ok(MIG_SIDE_SOURCE, MIG_PRECOPY,
				      PROTO_RUNNING));
	cr_expect(
		!mig_state_move_ok(MIG_SIDE_SOURCE, MIG_SETUP, MIG_COMPLETED));
}

Test(states, dest_waits_on_after_a_stray)
{
	cr_expect(
		mig_state_move_ok(MIG_SIDE_DEST, MIG_RECEIVING, MIG_LISTENING));
	cr_expect(!mig_state_move_ok(MIG_SIDE_DEST, MIG_WAIT_READY,
				     MIG_LISTENING));
	cr_expect_eq(accepting(MIG_SIDE_DEST, PROTO_GO), 1U << MIG_WAIT_READY);
	cr_expect_eq(accepting(MIG_SIDE_DEST, PROTO_RESUME),
		     1U << MIG_POSTCOPY_PAUSED);
}

Test(states, terminal_states_accept_nothing)
{
	int ends[] = {MIG_COMPLETED, MIG_FAILED, MIG_CANCELLED};

	for (unsigned int i = 0; i < sizeof(ends) / sizeof(ends[0]); i++)
		for (int t = 0; t <= LAST_FRAME; t++) {
			cr_expect(!mig_state_frame_ok(MIG_SIDE_SOURCE, ends[i],
						      t));
			cr_expect(
				!mig_state_frame_ok(MIG_SIDE_DEST, ends[i], t));
		}
}
