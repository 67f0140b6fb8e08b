/* SPDX-License-Identifier: MIT */
/*
 * states.h - the one table of the migration state machines: which state
 * each side may move to from which, and which frame of the main connection
 * each state accepts (states.c holds the table and explains it).
 *
 * source.c and dest.c change their state only through one function each
 * (src_set_state, dest_set_state), which asks mig_state_move_ok first; a
 * frame is handed to its handler only when mig_state_check_frame lets it
 * through, so a frame out of order is the error "frame X not allowed in
 * state Y", never a silent transition. The handlers still check what the
 * state alone cannot say (e.g. a SYNC nobody waits for). The urgent
 * connection's frames are read on the urgent thread, which never looks at
 * the state: mig_urgent_frame_ok is their table. Pure; any thread.
 */
#ifndef MIGRATION_STATES_H
#define MIGRATION_STATES_H

#include <stdbool.h>
#include <stddef.h>

#include "migration/migration.h"
#include "proto/proto.h"

enum mig_side {
	MIG_SIDE_SOURCE,
	MIG_SIDE_DEST,
};

/* May side move from `from` to `to`? (Staying put is always allowed.) */
bool mig_state_move_ok(enum mig_side side, enum mig_state from,
		       enum mig_state to);
/* Does state s of side accept frame t on the main connection? */
bool mig_state_frame_ok(enum mig_side side, enum mig_state s,
			enum proto_type t);
/* The same, as 0 or -EPROTO with "frame X not allowed in state Y" in err. */
int mig_state_check_frame(enum mig_side side, enum mig_state s,
			  enum proto_type t, char *err, size_t errlen);
/* Is t a frame side reads on the urgent connection? */
bool mig_urgent_frame_ok(enum mig_side side, enum proto_type t);

#endif /* MIGRATION_STATES_H */
