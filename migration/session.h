/* SPDX-License-Identifier: MIT */
/*
 * session.h - what both sides of a migration hold alike: the VM, the loop,
 * the main connection, the urgent connection and its thread, the wakeup
 * from other threads, the statistics and hooks, and the bookkeeping that
 * frees it all once libuv has let go of every handle.
 *
 * struct mig_source and struct mig_dest embed one (first member, `ss`).
 * Threads: everything is the event-loop thread's but the urgent thread's
 * end report (u_ended, u_why, u_own: written by mig_session_urgent_end on
 * the urgent thread before it wakes the loop through `async`, read by the
 * loop after the atomic u_ended says so) and `urg`, which urgent.h
 * describes.
 */
#ifndef MIGRATION_SESSION_H
#define MIGRATION_SESSION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "migration/channel.h"
#include "migration/channels.h"
#include "migration/migration.h"
#include "migration/states.h"
#include "migration/tls.h"
#include "migration/urgent.h"

#define MIG_TLS_MAIN	"vmm-migration main"
#define MIG_TLS_URGENT	"vmm-migration urgent"
#define MIG_TLS_RECOVER "vmm-migration recover"

struct mig_session {
	struct vm *vm;
	uv_loop_t *loop;
	struct mig_hooks hooks;
	struct mig_stats st;
	uint64_t caps;		/* agreed in the handshake */
	uint64_t cookie;	/* post-copy: names this migration */
	bool ended;		/* done() reported the end */
	struct mig_channel ch;	/* the main connection */
	struct mig_channel uch; /* post-copy: the urgent connection */
	struct mig_urgent urg;	/* its thread, once the socket is handed over */
	struct mig_chans xc;	/* parallel channels (channels.h) */
	uv_async_t async;	/* other threads -> loop */
	bool async_on;
	/* The urgent thread's end, for the loop (mig_session_urgent_end). */
	atomic_bool u_ended;
	bool u_own; /* u_why is the callback's own text (no prefix) */
	char u_why[600];
	/*
	 * TLS: the context both channels use (NULL: plaintext), and the
	 * binding of the first main session, which the urgent connection
	 * and every recovery prove they share (tls_conn_proof).
	 */
	struct tls_ctx *tls;
	uint8_t tls_main[TLS_BINDING_LEN];
	bool tls_bound;
	char tls_name[256]; /* source: --tls-hostname; "": the host of --to */
	/* Every connection's TCP congestion control; "": the system's. */
	char tcp_cc[MIG_TCP_CA_NAME];
	/* Freeing: handles still closing, then release(ss). */
	int closing;
	void (*release)(struct mig_session *ss);
};

/*
 * Fill in ss (zeroed by the caller) in state `first` and start the async
 * handle (on_async, its data = owner). 0 or a libuv error with err set.
 */
int mig_session_init(struct mig_session *ss, struct vm *vm, uv_loop_t *loop,
		     const struct mig_hooks *hooks, enum mig_state first,
		     uv_async_cb on_async, void *owner, char *err,
		     size_t errlen);
/*
 * The one way either side's state changes: by the table (states.c). A move
 * the table does not allow is a bug in the caller: false, with
 * "internal error: state X may not move to Y" in st.error (the caller then
 * fails the migration rather than let it happen silently).
 */
bool mig_session_set_state(struct mig_session *ss, enum mig_side side,
			   enum mig_state to);
/* time_elapsed_ms, now. */
void mig_session_elapsed(struct mig_session *ss);
/* The hooks, with st (progress may be NULL). */
void mig_session_progress(struct mig_session *ss);
void mig_session_done(struct mig_session *ss);
/* Queue an empty frame of type t on the main connection. */
int mig_session_send_empty(struct mig_session *ss, enum proto_type t);
/* Best effort: ERROR(code, st.error) to the peer while it can be sent. */
void mig_session_send_error(struct mig_session *ss, int code);
/* The reason an ERROR frame carries (or why it could not be read). */
void mig_session_error_reason(const uint8_t *p, size_t len, char *reason,
			      size_t rlen);
/*
 * The main connection is up: with TLS, keep its binding (the first time)
 * and describe the session in st. 0 or -errno.
 */
int mig_session_tls_main(struct mig_session *ss);
/*
 * --tcp-congestion: name (NULL: the system's) kept in ss->tcp_cc for every
 * connection the session makes or accepts, and checked now. 0 or -errno
 * with err naming what the host offers.
 */
int mig_session_congestion(struct mig_session *ss, const char *name, char *err,
			   size_t errlen);
/*
 * proof (TLS_BINDING_LEN bytes) that ch's session belongs to the peers of
 * the main session, under label. -ENOTCONN without TLS or main binding.
 */
int mig_session_tls_proof(struct mig_session *ss, struct mig_channel *ch,
			  const char *label, uint8_t *proof);
/* A received proof: true when it is the one ch's session must carry. */
bool mig_session_tls_check(struct mig_session *ss, struct mig_channel *ch,
			   const char *label, const uint8_t *proof);
/* Stop the urgent thread, then close both connections after a flush. */
void mig_session_close_channels(struct mig_session *ss);
/* Nothing of ch is open or closing (it may be set up again). */
bool mig_session_channel_idle(const struct mig_channel *ch);
/* urgent.h's on_end for both sides: record why and wake the loop. */
void mig_session_urgent_end(struct mig_session *ss, const char *why, bool own);
/*
 * The same as urgent.h's on_end of either side (urgent thread): opaque is
 * the side's struct, whose first member is the session.
 */
void mig_session_urgent_on_end(void *opaque, int code, const char *why,
			       bool own);
/* Loop: did the urgent thread end by itself? (once per end) */
bool mig_session_urgent_ended(struct mig_session *ss);
/*
 * Free: close every handle (both channels, async, and each of the
 * nr_extra handles of extra that is not NULL), then call release(ss) once
 * libuv has let go of the last.
 */
void mig_session_free(struct mig_session *ss, uv_handle_t *const *extra,
		      int nr_extra, void (*release)(struct mig_session *ss));

#endif /* MIGRATION_SESSION_H */
