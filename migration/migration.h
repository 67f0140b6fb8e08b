/* SPDX-License-Identifier: MIT */
/*
 * migration/ - live migration: the source and destination state machines,
 * the pre-copy loop and its convergence policy, and the channels they talk
 * over.
 *
 * It owns the migration of a VM from the moment `vmmctl migrate` (source)
 * or `vmmctl boot --incoming` (destination) starts it until the destination
 * runs the VM or the attempt is abandoned. It uses proto/ for every byte on
 * the wire, ept/ for guest RAM and dirty tracking, and vmm/ for pausing,
 * resuming and saving/restoring the VM. Everything runs on the event-loop
 * thread (libuv): sockets, timers, the pre-copy pump. The one rule above
 * all: until the destination has confirmed it runs the VM, the source keeps
 * it whole and resumes it on any failure.
 *
 * Source states: setup -> precopy -> stop-copy -> (ready) -> completed, or
 * failed / cancelled -> the guest runs on. Post-copy: setup -> (ready) ->
 * postcopy (the destination runs, pages pushed and requested) ->
 * completed; after GO a failure leaves the guest paused here. Destination
 * states: listening -> receiving -> (ready) -> running, or failed -> everything
 * discarded.
 */
#ifndef MIGRATION_MIGRATION_H
#define MIGRATION_MIGRATION_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

struct vm;

enum mig_mode {
	MIG_MODE_PRECOPY,
	MIG_MODE_POSTCOPY, /* switch at once; pages pushed and fetched */
};

enum mig_state {
	MIG_NONE,
	MIG_SETUP,
	MIG_PRECOPY,
	MIG_STOP_COPY,
	MIG_WAIT_READY, /* everything sent; destination restoring */
	MIG_POSTCOPY,	/* destination runs; pages still moving */
	MIG_COMPLETED,
	MIG_FAILED,
	MIG_CANCELLED,
	/* destination */
	MIG_LISTENING,
	MIG_RECEIVING,
	MIG_RUNNING,
};

struct mig_params {
	const char *to; /* tcp:HOST:PORT */
	enum mig_mode mode;
	uint64_t downtime_limit_ms; /* stop-copy when predicted below */
	uint32_t max_rounds;	    /* then stop-copy regardless */
	bool verify;		    /* SHA-256 of RAM on both sides */
	int zstd_level;		    /* 0: raw pages */
};

#define MIG_DEFAULT_DOWNTIME_MS 10
#define MIG_DEFAULT_MAX_ROUNDS	30
#define MIG_DEFAULT_ZSTD	1

/* Statistics, named after libvirt's VIR_DOMAIN_JOB_* fields. */
struct mig_stats {
	enum mig_state state;
	uint64_t start_ns;
	uint64_t time_elapsed_ms;
	uint64_t setup_time_ms;
	uint64_t downtime_ms; /* VMM's view: pause -> destination runs */
	uint64_t downtime_us;
	uint64_t memory_total;	   /* bytes of guest RAM */
	uint64_t memory_processed; /* bytes of pages transferred (incl. zero) */
	uint64_t memory_remaining; /* bytes dirty, not yet sent */
	uint64_t memory_constant;  /* zero pages sent as a flag */
	uint64_t memory_normal;	   /* pages sent with data */
	uint64_t memory_normal_bytes;
	uint64_t memory_dirty_rate; /* pages per second, last round */
	uint64_t memory_iteration;  /* rounds completed */
	uint64_t memory_bps;	    /* bytes per second, last round */
	uint64_t data_total, data_processed, data_remaining;
	uint64_t compression_bytes; /* bytes saved by zstd */
	uint64_t wire_bytes;	    /* every byte written to the socket */
	uint64_t predicted_downtime_us;
	/* Pages requested by the destination's faults (post-copy). */
	uint64_t memory_postcopy_requests;
	bool converged; /* stop-copy chosen because it fit the limit */
	/* Where the downtime went (source's clock), microseconds: */
	uint64_t pause_us;	/* vm_pause: every vCPU parked */
	uint64_t stop_copy_us;	/* final harvest, pages and state queued */
	uint64_t ready_wait_us; /* until READY: destination restored */
	uint64_t go_wait_us;	/* GO -> RUNNING */
	uint64_t restore_us;	/* destination: state restore (its clock) */
	char error[256];
};

struct mig_hooks {
	void *opaque;
	/* After each pre-copy round (source). */
	void (*progress)(void *opaque, const struct mig_stats *st);
	/* The migration ended: completed, failed or cancelled. */
	void (*done)(void *opaque, const struct mig_stats *st);
};

struct mig_source;
struct mig_dest;

/* Source: start migrating vm to p->to. err says why it could not start. */
int mig_source_start(struct mig_source **out, struct vm *vm, uv_loop_t *loop,
		     const struct mig_params *p, const struct mig_hooks *hooks,
		     char *err, size_t errlen);
/* Cancel: refused (-EBUSY) once GO was sent; else the guest runs on. */
int mig_source_cancel(struct mig_source *s);
const struct mig_stats *mig_source_stats(const struct mig_source *s);
/* After done(): release it (loop thread). */
void mig_source_free(struct mig_source *s);

/*
 * Destination: vm was created with cfg.incoming. Listen on spec and
 * receive one migration; done() reports MIG_RUNNING (the VM now runs) or
 * MIG_FAILED (nothing ran; the caller exits non-zero).
 */
int mig_dest_start(struct mig_dest **out, struct vm *vm, uv_loop_t *loop,
		   const char *spec, const struct mig_hooks *hooks, char *err,
		   size_t errlen);
const struct mig_stats *mig_dest_stats(const struct mig_dest *d);
void mig_dest_free(struct mig_dest *d);

const char *mig_state_name(enum mig_state s);

#endif /* MIGRATION_MIGRATION_H */
