/* SPDX-License-Identifier: MIT */
/*
 * control.h - the control server: a UNIX stream socket (mode 0600) served by
 * the libuv event loop. Each client sends request lines and gets one reply
 * line per request; every client also receives asynchronous event lines.
 *
 * Threads: everything here runs on the event-loop thread, except
 * control_post_event(), which any thread (a vCPU, say) may call: it queues
 * the event under a mutex and wakes the loop with a uv_async.
 */
#ifndef VMM_CTL_CONTROL_H
#define VMM_CTL_CONTROL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "vmm/ctl/ctl_proto.h"

/*
 * Called on the loop thread for every valid request. Returns 0 and sets
 * *result (a new reference, or NULL for {}) or returns -1 and fills err.
 */
typedef int (*control_handler_fn)(void *opaque, const struct ctl_request *req,
				  json_t **result, struct ctl_error *err);

struct control_client;
struct control_event;

struct control {
	uv_loop_t *loop;
	uv_pipe_t server;
	char path[108];
	control_handler_fn handler;
	void *opaque;
	struct control_client *clients; /* loop thread only */
	atomic_uint nr_clients;		/* written by the loop, read by any */
	uv_async_t wake;		/* wakes the loop for posted events */
	pthread_mutex_t ev_lock;	/* guards ev_head..ev_dropped */
	struct control_event *ev_head, *ev_tail;
	unsigned int ev_queued; /* events between ev_head and ev_tail */
	uint64_t ev_dropped;	/* posts dropped: the queue was full */
	int closing;		/* set under ev_lock by control_stop */
	uv_timer_t linger;	/* control_stop: bounds client flush */
	int lingering; /* linger's next step: 0 none, 1 shut down, 2 close */
};

#define CONTROL_LINGER_MS	1000	  /* control_stop flushes this long */
#define CONTROL_EVQ_MAX		1024	  /* events queued for the loop */
#define CONTROL_WQUEUE_MAX	(1 << 20) /* drop a client lagging more */
#define CONTROL_CALL_TIMEOUT_MS 10000	  /* control_call waits for a reply */

/*
 * Bind and listen on path. Refuses (-EADDRINUSE) when a live server already
 * answers there; removes a stale socket file left by a dead one (but refuses,
 * -EEXIST, to remove anything that is not a socket). err names the path and
 * the cause. On failure any handle it had opened is already closing: run the
 * loop once (uv_run(loop, UV_RUN_NOWAIT)) before uv_loop_close. Sets SIGPIPE
 * to SIG_IGN when it is still SIG_DFL: a client hanging up must not kill the
 * VMM.
 */
int control_start(struct control *c, uv_loop_t *loop, const char *path,
		  control_handler_fn handler, void *opaque, char *err,
		  size_t errlen);

/*
 * Thread-safe: send {"event": name, "data": data} to every client. Steals
 * data. At most CONTROL_EVQ_MAX events wait for the loop; a post beyond
 * that is dropped and counted (control_events_dropped), so that a thread
 * posting faster than the loop writes cannot grow memory without bound.
 */
void control_post_event(struct control *c, const char *name, json_t *data);
/*
 * Thread-safe: whether a client is connected to get events. A poster whose
 * event takes work to build (the migration's statistics) may skip it when
 * none is; a client that connects just after gets the next one.
 */
bool control_listened(struct control *c);
/* Thread-safe: how many posts were dropped because the queue was full. */
uint64_t control_events_dropped(struct control *c);

/*
 * Loop thread: close every handle and unlink the socket file. Events posted
 * before the call are still written to every client, and each client's
 * pending output is flushed (for at most CONTROL_LINGER_MS) before its
 * connection is closed; run the loop until it ends. Later posts are dropped.
 */
void control_stop(struct control *c);

/* Fill sun for path: -ENAMETOOLONG when path is empty or does not fit. */
struct sockaddr_un;
int control_sun_fill(struct sockaddr_un *sun, const char *path);

/*
 * Client side (control_call.c; vmmctl status|pause|...): connect to path, send
 * one request, wait for its reply (skipping event lines), return it in *reply
 * (new reference) with 0; or -errno with err naming the socket and the cause.
 * Blocking; plain sockets, no libuv.
 */
int control_call(const char *path, const char *cmd, json_t *args,
		 json_t **reply, char *err, size_t errlen);

/*
 * control_call for a request the VMM may take long to answer (a snapshot
 * writes all of RAM): the reply may take CONTROL_CALL_LONG_MS.
 */
#define CONTROL_CALL_LONG_MS 600000
int control_call_long(const char *path, const char *cmd, json_t *args,
		      json_t **reply, char *err, size_t errlen);

/*
 * Like control_call, then keep reading: every event line after the reply
 * goes to on_event (a borrowed reference) until it returns 1, or the
 * connection ends (-ECONNRESET), or no line comes for
 * CONTROL_WATCH_IDLE_MS (-ETIMEDOUT). A reply with ok false ends the call
 * at once.
 */
typedef int (*control_event_fn)(void *opaque, json_t *event);
#define CONTROL_WATCH_IDLE_MS 120000
int control_call_watch(const char *path, const char *cmd, json_t *args,
		       json_t **reply, control_event_fn on_event, void *opaque,
		       char *err, size_t errlen);

#endif /* VMM_CTL_CONTROL_H */
