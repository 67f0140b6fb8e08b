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
 * resuming and saving/restoring the VM. Each side is a state machine
 * (source.c, dest.c: the only places state changes, by the one table of
 * states.c) over a shared session (session.h) and phase modules that
 * return an outcome and never move the state (src_precopy, src_switch,
 * src_postcopy, src_verify, src_local on the source; dest_recv,
 * dest_switch, dest_postcopy, dest_recover, dest_local on the
 * destination). A unix:PATH address is a live update in place (mode
 * local): the guest-RAM memfd is handed over, only the state crosses. The
 * state, sockets, timers and the pre-copy pump belong to the event-loop
 * thread (libuv); in post-copy the urgent thread on each side answers or
 * sends page requests and the destination's fault thread queues fetches,
 * both only through atomics, locks and a uv_async. The one rule above
 * all: until the destination has confirmed it runs the VM, the source keeps
 * it whole and resumes it on any failure.
 *
 * Source states: setup -> precopy -> stop-copy -> (ready) -> completed, or
 * failed / cancelled -> the guest runs on. Post-copy: setup -> (ready) ->
 * postcopy (the destination runs, pages pushed and requested) ->
 * completed; after GO a failure leaves the guest paused here
 * (postcopy-paused) until migrate --resume. Destination states: listening
 * -> receiving -> (ready) -> running, or failed -> everything discarded;
 * in post-copy a break after GO -> postcopy-paused (the VM runs, faults on
 * missing pages wait) -> running again on the source's RESUME.
 */
#ifndef MIGRATION_MIGRATION_H
#define MIGRATION_MIGRATION_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

struct vm;

enum mig_mode {
	MIG_MODE_HYBRID,  /* pre-copy, then post-copy if it will not converge */
	MIG_MODE_PRECOPY, /* pre-copy only; forced stop-copy at the budget */
	MIG_MODE_POSTCOPY, /* switch at once; pages pushed and fetched */
	/*
	 * Live update (chosen for a unix:PATH address): guest RAM's memfd
	 * is handed over, only the machine state crosses; no page moves.
	 */
	MIG_MODE_LOCAL,
};

/* The order of the post-copy background push (push.h). */
enum mig_push_order {
	MIG_PUSH_ACCESSED, /* faults' neighbours, accessed pages, the rest */
	MIG_PUSH_FAULTS,   /* faults' neighbours, then the rest */
	MIG_PUSH_LINEAR,   /* guest-physical order */
};

/* How pre-copy and stop-copy compress pages (src_precopy.c). */
enum mig_compress {
	MIG_COMPRESS_AUTO, /* zstd where a sample of the batch says it pays */
	MIG_COMPRESS_NONE, /* raw pages (a link faster than zstd) */
	MIG_COMPRESS_ZSTD, /* zstd for every batch with data */
};

/* Why pre-copy stopped iterating (policy.c). */
enum mig_reason {
	MIG_REASON_NONE,
	MIG_REASON_CONVERGED,	  /* the rest fits the downtime limit */
	MIG_REASON_RATE,	  /* dirty rate >= achieved bandwidth */
	MIG_REASON_NOT_SHRINKING, /* rounds stopped shrinking */
	MIG_REASON_SLOW,	  /* would take too many more rounds */
	MIG_REASON_BUDGET_TIME,	  /* --precopy-budget (time) spent */
	MIG_REASON_BUDGET_BYTES,  /* --precopy-budget (bytes) spent */
	MIG_REASON_MAX_ROUNDS,	  /* --max-rounds reached */
	MIG_REASON_POSTCOPY,	  /* --mode postcopy: no pre-copy at all */
};

enum mig_state {
	MIG_NONE,
	MIG_SETUP,
	MIG_PRECOPY,
	MIG_QUIESCE, /* asking device drivers to release their DMA pins */
	MIG_STOP_COPY,
	MIG_WAIT_READY,	      /* everything sent; destination restoring */
	MIG_POSTCOPY,	      /* destination runs; pages still moving */
	MIG_POSTCOPY_PAUSED,  /* post-copy connection broke: waiting for
			       * migrate --resume (source: VM paused whole;
			       * destination: runs, faults on missing pages wait)
			       */
	MIG_POSTCOPY_RECOVER, /* --resume: reconnecting, RESUME sent */
	MIG_COMPLETED,
	MIG_FAILED,
	MIG_CANCELLED,
	/* destination */
	MIG_LISTENING,
	MIG_RECEIVING,
	MIG_RUNNING,
};

#define MIG_MAX_CHANNELS 8 /* --channels: PROTO_MAX_CHANNELS */

struct mig_params {
	const char *to; /* tcp:HOST:PORT, or unix:PATH (mode local) */
	enum mig_mode mode;
	uint64_t downtime_limit_ms; /* stop-copy when predicted below */
	uint32_t max_rounds;	    /* then stop-copy regardless */
	uint64_t budget_ms;	    /* pre-copy time budget; 0: none */
	uint64_t budget_bytes;	    /* pre-copy wire-bytes budget; 0: none */
	bool verify;		    /* page digests of RAM on both sides */
	int zstd_level;		    /* 0: raw pages */
	/*
	 * Connections for pre-copy's pages (migration/channels.h), the main
	 * one included: 0 or 1 one, up to PROTO_MAX_CHANNELS. Pre-copy and
	 * hybrid only; the destination may agree to fewer (not to none).
	 */
	unsigned int channels;
	enum mig_compress compress;  /* with zstd_level: when to use it */
	uint64_t quiesce_timeout_ms; /* driver must ack by then; 0: default */
	enum mig_push_order push_order;
	/*
	 * Bandwidth caps, bytes a second (0: none; live: mig_source_set_
	 * bandwidth): max_bandwidth for pre-copy's rounds and the post-copy
	 * push, postcopy_bandwidth for the push when set. Stop-copy (the
	 * guest paused) and the answers to the destination's faults are
	 * never throttled.
	 */
	uint64_t max_bandwidth;
	uint64_t postcopy_bandwidth;
	/*
	 * Pre-copy mode: while the rounds will not converge, hold the
	 * vCPUs paused a growing share of the time (MIG_THROTTLE_*, as
	 * QEMU's cpu-throttle) until they do.
	 */
	bool auto_converge;
	/*
	 * Transport: tls_dir (ca.pem, cert.pem, key.pem) for mutual TLS;
	 * tls_hostname: the name the destination's certificate must carry
	 * (NULL: the host of `to`); insecure: plaintext to a non-loopback
	 * address (refused otherwise).
	 */
	const char *tls_dir;
	const char *tls_hostname;
	bool insecure;
	/*
	 * The TCP congestion control of every connection (TCP_CONGESTION),
	 * e.g. "cubic"; NULL: the system's. Loss-based control moves bulk
	 * data with less CPU than BBR's paced sends on a fast, clean link.
	 */
	const char *tcp_congestion;
};

/* What the destination is started with (mig_dest_start). */
struct mig_dest_params {
	const char *spec;      /* tcp:HOST:PORT or unix:PATH to listen on */
	const char *tls_dir;   /* NULL: plaintext (loopback or insecure) */
	const char *tls_authz; /* "NAME[,NAME...]": admitted identities */
	bool insecure;	       /* plaintext on a non-loopback address */
	/* TCP congestion control of the connections accepted (mig_params') */
	const char *tcp_congestion;
};

#define MIG_DEFAULT_DOWNTIME_MS 10
#define MIG_DEFAULT_MAX_ROUNDS	30
#define MIG_DEFAULT_ZSTD	1
#define MIG_DEFAULT_QUIESCE_MS	1000
/*
 * --auto-converge, as QEMU's cpu-throttle: the vCPUs run MIG_THROTTLE_RUN_MS,
 * then are held RUN_MS x pct / (100 - pct) (at 99%: 990 ms).
 */
#define MIG_THROTTLE_RUN_MS    10
#define MIG_THROTTLE_FIRST_PCT 20 /* the first throttle, % */
#define MIG_THROTTLE_STEP_PCT  10 /* raised by this each round, % */
#define MIG_THROTTLE_MAX_PCT   99

/* Statistics, named after libvirt's VIR_DOMAIN_JOB_* fields. */
struct mig_stats {
	enum mig_state state;
	uint64_t start_ns;
	uint64_t time_elapsed_ms;
	uint64_t time_elapsed_us; /* the same, finer (a live update's ~ms) */
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
	/* Destination: page data moved socket -> guest RAM by splice(2). */
	uint64_t spliced_bytes;
	/* Destination: page data read from the socket into guest RAM's
	 * populated mapping (--mem-prealloc), instead of by splice(2). */
	uint64_t direct_bytes;
	/* Destination: page data of those frames that came in the read
	 * buffer with the frame's head, written from there (pwrite). */
	uint64_t head_bytes;
	uint64_t predicted_downtime_us;
	/* Pages requested by the destination's faults (post-copy). */
	uint64_t memory_postcopy_requests;
	uint64_t postcopy_breaks; /* connection breaks survived */
	uint64_t
		postcopy_lacking; /* pages the destination lacks (last known) */
	/* Destination, post-copy: its fault service's view. */
	uint64_t postcopy_faults; /* faults resolved by a fetch */
	uint64_t fault_wait_p50_us;
	uint64_t fault_wait_p99_us;
	uint64_t fault_wait_max_us;
	uint64_t faults_waiting;       /* vCPU faults waiting right now */
	uint64_t fault_max_vcpus;      /* most vCPUs ever waiting at once */
	uint64_t fault_oldest_wait_ms; /* the longest of them has waited */
	bool converged;		/* stop-copy chosen because it fit the limit */
	bool postcopy;		/* the switch went to post-copy */
	enum mig_reason reason; /* why pre-copy stopped */
	uint64_t precopy_bytes; /* wire bytes before the switch */
	/* Connections used (1: the main one), and the wire bytes of each. */
	uint32_t channels;
	uint64_t channel_bytes[MIG_MAX_CHANNELS]; /* [0]: the main one */
	uint64_t precopy_ms;	     /* HELLO_ACK -> pre-copy stopped */
	uint64_t last_pass_pages;    /* converged: sent live before the pause */
	uint64_t stop_copy_pages;    /* sent while paused, in stop-copy */
	uint64_t switch_dirty;	     /* pages dirty at the switch (discarded) */
	uint64_t switch_hot;	     /* of those: sent in the downtime */
	uint64_t postcopy_pushed;    /* pages pushed after the switch */
	uint64_t push_first;	     /* of those: vCPUs' resume pages, first */
	uint64_t push_near;	     /* of those: as a fault's neighbours */
	uint64_t push_hot;	     /* of those: marked accessed */
	uint64_t postcopy_ahead;     /* sent with an answer, unrequested */
	uint64_t push_walk_us;	     /* the page-table walk for push_hot */
	uint64_t push_walk_wall_us;  /* its thread's start -> join (loop) */
	uint64_t push_walk_tables;   /* distinct table pages read */
	uint64_t push_walk_revisits; /* links to tables read, not followed */
	uint64_t push_walk_cycles;   /* of those: back to the path */
	uint64_t push_walk_leaves;   /* leaf mappings seen */
	int push_walk_stop;	     /* enum ptw_stop: why the walk ended */
	int push_walk_err;	     /* errno of a failed walk, 0: none */
	uint64_t postcopy_ms;	     /* RUNNING -> COMPLETE */
	/* Where the downtime went (source's clock), microseconds: */
	uint64_t pause_us;	/* vm_pause: every vCPU parked */
	uint64_t stop_copy_us;	/* final harvest, pages and state queued */
	uint64_t ready_wait_us; /* until READY: destination restored */
	uint64_t go_wait_us;	/* GO -> RUNNING */
	uint64_t restore_us;	/* destination: state restore (its clock) */
	/* Destination: dropping the pages the switch discarded (after the
	 * last SYNC, so in the downtime), us. */
	uint64_t discard_us;
	/* Passthrough devices: the driver's quiesce (request -> ack), us. */
	uint64_t quiesce_us;
	/* --verify, pre-copy: summing the paused RAM after RUNNING, ms. */
	uint64_t verify_audit_ms;
	/* --verify agreed, and its page terms are XXH3-128 (else SHA-256). */
	bool verify, verify_xxh3;
	/* --auto-converge: the vCPUs' share of the time held paused, %. */
	uint32_t throttle_pct;
	uint64_t throttle_raised; /* times it was raised */
	/* The caps in force, bytes a second (0: none). */
	uint64_t max_bandwidth, postcopy_bandwidth;
	/*
	 * One line about a choice made on the way that the user should
	 * know, e.g. post-copy refused by the destination: pre-copy instead.
	 */
	char notice[256];
	/* The main connection's transport (set once it is up). */
	bool tls;		   /* mutual TLS 1.3; false: plaintext */
	bool ktls_send, ktls_recv; /* the kernel does the record crypto */
	char tls_cipher[48];	   /* "TLS_AES_256_GCM_SHA384" */
	/* The main connection's TCP congestion control, as read back. */
	char tcp_congestion[16];
	char tls_peer[256]; /* the peer's certificate, as tls_conn_peer */
	char error[512];
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
/*
 * Post-copy recovery (state MIG_POSTCOPY_PAUSED): reconnect to `to` (NULL:
 * the address of the migration) with RESUME and carry on. -EALREADY when
 * there is nothing to resume; err says why it could not start.
 */
int mig_source_resume(struct mig_source *s, const char *to, char *err,
		      size_t errlen);
/*
 * Give a post-copy migration up after GO (paused or not). The VM stays
 * paused here with the RAM and state of the switch; what is lost (the
 * guest's run on the destination, the pages it lacks) is written to
 * st->error and reported through done(MIG_FAILED). -EALREADY when no
 * post-copy migration is under way.
 */
int mig_source_abort(struct mig_source *s);
/*
 * True from GO until the migration ends: the destination may run the VM
 * (and, in post-copy, lacks pages only this side holds), so stopping or
 * resuming the VM here would lose it or run it twice (vmm/ctl refuses).
 */
bool mig_source_after_go(const struct mig_source *s);
/*
 * Change the caps of a migration under way (bytes a second, 0: none;
 * UINT64_MAX: leave that one as it is). -EALREADY when it has ended.
 */
int mig_source_set_bandwidth(struct mig_source *s, uint64_t max_bps,
			     uint64_t postcopy_bps);
const struct mig_stats *mig_source_stats(struct mig_source *s);
/* The mode it runs in (a unix: address makes it MIG_MODE_LOCAL). */
enum mig_mode mig_source_mode(const struct mig_source *s);
/* After done(): release it (loop thread). */
void mig_source_free(struct mig_source *s);

/*
 * Destination: vm was created with cfg.incoming. Listen on spec and
 * receive one migration; done() reports MIG_RUNNING (the VM now runs) or
 * MIG_FAILED (nothing ran; the caller exits non-zero).
 */
int mig_dest_start(struct mig_dest **out, struct vm *vm, uv_loop_t *loop,
		   const struct mig_dest_params *dp,
		   const struct mig_hooks *hooks, char *err, size_t errlen);
/* Statistics; in post-copy also the fault service's (hence not const). */
const struct mig_stats *mig_dest_stats(struct mig_dest *d);
/*
 * Give an incoming post-copy migration up after GO: the VM lacks pages and
 * is failed (done(MIG_FAILED), st->error says how many pages were lost).
 * -EALREADY when no post-copy migration is under way.
 */
int mig_dest_abort(struct mig_dest *d);
/*
 * Post-copy paused: listen for the resume on spec instead of the incoming
 * address (QEMU's migrate-recover), for when that address is gone. The
 * new address is bound before the old listener closes; a connection in
 * progress there is dropped. -EBUSY in any other state, or the bind's
 * -errno (the old listener stays); err says why.
 */
int mig_dest_recover_listen(struct mig_dest *d, const char *spec, char *err,
			    size_t errlen);
void mig_dest_free(struct mig_dest *d);

/* Names (names.c): "unknown" for a value out of range. */
const char *mig_state_name(enum mig_state s);
const char *mig_reason_name(enum mig_reason r);
const char *mig_mode_name(enum mig_mode m);
/* Parse a name: its enum mig_mode / mig_push_order / mig_compress, or -1. */
int mig_mode_parse(const char *name);
int mig_push_order_parse(const char *name);
int mig_compress_parse(const char *name);

#endif /* MIGRATION_MIGRATION_H */
