/* SPDX-License-Identifier: MIT */
/*
 * push.h - the order of the post-copy background push: which page the
 * source sends next while the destination's guest runs.
 *
 * Whatever the order, the pages each vCPU needs the moment it resumes go
 * first: those holding the code at RIP, the stack at RSP, the GDT, IDT and
 * TSS, and the page-table pages that map them (mig_push_resume), so that
 * the guest's first steps do not wait a round trip each.
 *
 *   linear    guest-physical order over the pages still to push.
 *   faults    first the pages that follow each page the destination
 *             faulted on (a fault's neighbours are what a guest that
 *             walks memory touches next), then linear.
 *   accessed  faults, then the pages the guest's page tables mark
 *             accessed - walked from each vCPU's CR3 at the switch, the
 *             table pages themselves included - then linear.
 *
 * Threads: mig_push_hint runs on the source's urgent thread (it answers
 * the faults); the page-table walk of the accessed order on a thread of
 * its own (mig_push_walk_start: it owns p->hot until the loop joins it);
 * everything else on the event-loop thread. The hints cross
 * in a single-producer single-consumer ring; a hint that finds it full is
 * dropped (counted): a hint only changes the order, never what is sent.
 */
#ifndef MIGRATION_PUSH_H
#define MIGRATION_PUSH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/guest_abi.h"
#include "ept/bitmap.h"
#include "ept/ptwalk.h"
#include "migration/migration.h"

struct vm;

#define MIG_PUSH_HINTS 256 /* faults waiting to be followed (power of 2) */
#define MIG_PUSH_NEAR  32  /* pages pushed after a faulted page */
#define MIG_PUSH_FIRST 512 /* resume pages at most */

/* The page-table walk of the accessed order, on its own thread (push.c). */
struct mig_push_walker {
	/* loop thread, before the thread starts and after the join */
	bool started, joined;
	pthread_t thread;
	struct ptw_ctx ctx[GUEST_MAX_CPUS]; /* one per distinct CR3 */
	int nr_ctx;
	const struct guest_mem *mem;
	void (*wake)(void *opaque); /* called by the thread when done */
	void *wake_opaque;
	uint64_t t0, wall_ns; /* start -> join, loop's clock */
	atomic_bool stop;     /* loop -> thread: give up now */
	atomic_bool done;     /* thread -> loop: results final */
	/* the thread's, until the join */
	ptw_read_fn read;
	void *ropaque;
	uint64_t marked;
	int err;
	struct ptw_walk_report rep; /* summed over the CR3s */
};

struct mig_push {
	enum mig_push_order order;
	/* urgent thread -> loop: faulted page indexes */
	uint64_t ring[MIG_PUSH_HINTS];
	atomic_uint_fast32_t head; /* written by the urgent thread */
	atomic_uint_fast32_t tail; /* written by the loop */
	atomic_uint_fast64_t dropped;
	/* loop thread */
	uint64_t near_next, near_end; /* the neighbour run being pushed */
	struct bitmap hot; /* accessed: pages the walk marked (the walker's
			    * until hot_ready) */
	bool hot_ready;	   /* the walk joined: the push may use hot */
	uint64_t hot_cursor;
	struct mig_push_walker wk;
	uint64_t cursor;		/* linear: next page index to look at */
	uint64_t first[MIG_PUSH_FIRST]; /* resume pages, in order */
	int nr_first, first_pos;
	uint64_t pushed_first, pushed_near, pushed_hot;
};

int mig_push_init(struct mig_push *p, enum mig_push_order order,
		  uint64_t nr_pages);
void mig_push_free(struct mig_push *p);
/* Start over (a new push, or the resend after a recovery). */
void mig_push_rewind(struct mig_push *p);
/* Urgent thread: the destination faulted on page i. */
void mig_push_hint(struct mig_push *p, uint64_t i);
/*
 * Loop thread, with the VM paused (it stays paused until the walk ends):
 * start a thread that walks each vCPU's page tables and marks the pages
 * they map with the accessed bit set, and the table pages, in p->hot; it
 * calls wake(opaque) when done. 0 (also when the order needs no walk) or
 * -errno.
 */
int mig_push_walk_start(struct mig_push *p, struct vm *vm, void (*wake)(void *),
			void *opaque);
/* Loop: the walk has finished; mig_push_walk_end will not block. */
bool mig_push_walk_done(struct mig_push *p);
/*
 * Loop: join the walk (at once after mig_push_walk_done) and let the push
 * use what it marked. The pages marked, or -errno; p->wk.rep and
 * p->wk.wall_ns report it.
 */
int64_t mig_push_walk_end(
	struct mig_push *p); /*
			      * Loop thread, with the VM paused: note each
			      * vCPU's resume pages (see above) to go before
			      * everything else. Returns how many, or -errno.
			      */
int mig_push_resume(struct mig_push *p, struct vm *vm);
/*
 * The next page to push: taken out of todo (its bit cleared). false when
 * todo is empty from the linear cursor on and no priority page is left.
 */
bool mig_push_next(struct mig_push *p, struct bitmap *todo, uint64_t *page);

#endif /* MIGRATION_PUSH_H */
