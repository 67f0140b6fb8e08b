/* SPDX-License-Identifier: MIT */
/*
 * policy.h - when pre-copy stops iterating, and what comes next. Pure:
 * statistics in, a decision out.
 *
 * Predicted stop-copy time = dirty pages x wire bytes per page / achieved
 * bandwidth + a fixed cost for the state and the switch-over. Stop-copy
 * when that fits the downtime limit (converged) and the rounds have
 * stopped shrinking fast (below: refining). Otherwise hybrid mode
 * gives pre-copy up when it cannot converge soon - the guest dirties
 * memory at least as fast as the link carries it, or each round leaves so
 * much of the last (dirty rate / bandwidth) that more than
 * MIG_POLICY_AHEAD_ROUNDS further rounds would be needed, or the rounds
 * stopped shrinking - and switches to post-copy; both modes stop when the
 * time, bytes or round budget is spent (pre-copy mode then does a forced
 * stop-copy: the downtime is what it is).
 */
#ifndef MIGRATION_POLICY_H
#define MIGRATION_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "migration/migration.h"

/* State sections, RAM_END/STATE_END, READY/GO/RUNNING round trips. */
#define MIG_POLICY_FIXED_US 1000
/* Bandwidth assumed before a round has measured one (bytes/s). */
#define MIG_POLICY_DEFAULT_BPS (1ULL << 30)
/*
 * A round "does not shrink" when it leaves more than this share (in %) of
 * the previous round's dirty pages; after MIG_POLICY_FLAT_ROUNDS such
 * rounds in a row pre-copy is given up. With a steady dirty rate R and
 * bandwidth B each round leaves R/B of the one before, so 80% means
 * R >= 0.8 B: ten more rounds would only reach 0.8^10 = 11% of today.
 */
#define MIG_POLICY_FLAT_PCT    80
#define MIG_POLICY_FLAT_ROUNDS 2
/*
 * Hybrid: go on only while convergence is predicted within this many more
 * rounds. Round k+1 carries what the guest dirtied during round k, a
 * share r = dirty rate / bandwidth of it, so converging from D dirty bytes
 * to what the limit lets through (T) takes log(T/D) / log(r) rounds and
 * resends D r / (1 - r) bytes on the way; post-copy sends D once, but
 * the guest then waits on faults for a while and sees a longer gap (3-8
 * ms here against ~2 ms for a converged stop-copy, which the refine rounds
 * below bring to ~1 ms of VMM downtime). With a 176 MB dirty set and a
 * ~4.5 MB budget, 5 rounds is r <~ 0.48 (dirty rate up to about half the
 * bandwidth), at most as many bytes again as the dirty set;
 * docs/migration.md has the figures.
 */
#define MIG_POLICY_AHEAD_ROUNDS 5

/*
 * Fitting the limit does not stop pre-copy while a round still shrinks the
 * dirty set to MIG_POLICY_REFINE_KEEP_NUM / MIG_POLICY_REFINE_KEEP_DEN or
 * less of the one before (3/4: eight rounds then leave at most a tenth of
 * the set that first fitted; 1/2 stopped refining on a machine whose guest
 * dirties at half the link's speed, with 5-10 ms of pages left): up to
 * MIG_POLICY_REFINE_ROUNDS more rounds, down to MIG_POLICY_FLOOR_PAGES (what
 * a guest keeps dirty in any short round: its stacks, timers, counters).
 * A round of a shrinking set is shorter than the last, and what it sends
 * no longer counts against the downtime. (Four rounds left ~200 pages at
 * 1000 MiB/s on the AMD machine, still halving each round; eight leave
 * ~80, in 1-2 ms more of pre-copy: docs/benchmarks.md.)
 */
#define MIG_POLICY_REFINE_KEEP_NUM 3
#define MIG_POLICY_REFINE_KEEP_DEN 4
#define MIG_POLICY_REFINE_ROUNDS   8
#define MIG_POLICY_FLOOR_PAGES	   64

/* What the source keeps between decisions (policy.c updates it). */
struct mig_policy_state {
	uint64_t last_dirty; /* dirty pages after the previous round */
	uint32_t flat;	     /* rounds in a row that did not shrink */
	uint32_t refined;    /* rounds run although the last one fitted */
	uint64_t peak_bps;   /* the fastest round's bandwidth (bytes/s) */
};

struct mig_decision {
	bool stop;	/* stop iterating (see reason) */
	bool converged; /* it fits the limit */
	enum mig_reason reason;
	uint64_t predicted_us; /* predicted stop-copy downtime */
};

/* Rounds still needed from dirty to fit the limit (UINT32_MAX: never). */
uint32_t mig_policy_rounds_ahead(const struct mig_params *p, uint64_t bps,
				 uint64_t dirty_bytes,
				 uint64_t dirty_bytes_rate);

/*
 * After a round: dirty_pages are what is dirty now, precopy_ns the time
 * since pre-copy started, st->wire_bytes what crossed so far.
 */
void mig_policy_decide(const struct mig_params *p, const struct mig_stats *st,
		       struct mig_policy_state *ps, uint64_t dirty_pages,
		       uint64_t precopy_ns, struct mig_decision *d);

/*
 * Converged (st->converged set): is a last pass worth it, the dirty set sent
 * once more while the guest runs, right before the pause (source.c)? Only
 * while the guest dirties slower than the link carries (the fastest round's
 * bandwidth: a short round's is mostly its SYNC round trip, which the pass
 * does not wait for), so that what it dirties during the pass is less than
 * the set: a large --downtime-limit can converge with the guest dirtying
 * faster.
 */
bool mig_policy_last_pass(const struct mig_stats *st,
			  const struct mig_policy_state *ps);

#endif /* MIGRATION_POLICY_H */
