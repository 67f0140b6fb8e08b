/* SPDX-License-Identifier: MIT */
/*
 * channel.h - a migration connection: TCP through libuv on the event-loop
 * thread, carrying proto/ frames.
 *
 * Reads are reassembled into whole frames, checked (header, CRC) and handed
 * to on_frame one at a time; a bad frame or a closed, failed or stalled
 * connection ends in on_error, exactly once. Writes take ownership of a
 * malloc'd frame; the bytes queued in the kernel and in libuv are bounded:
 * a sender checks mig_channel_writable() and continues from on_drain, so
 * memory never grows with the guest's size. TCP_NODELAY is set: the
 * switch-over is a handful of small messages whose latency is downtime.
 * Every field is owned by the event-loop thread.
 */
#ifndef MIGRATION_CHANNEL_H
#define MIGRATION_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "migration/splice.h"
#include "proto/proto.h"

struct tls_ctx;
struct tls_conn;
struct mig_write;

#define MIG_TCP_CA_NAME	     16		/* TCP_CA_NAME_MAX, with its NUL */
#define MIG_CHANNEL_HIGH     (8U << 20) /* stop producing above this */
#define MIG_CHANNEL_STALL_MS 10000	/* no progress this long: error */

/*
 * The stall limit every channel applies, MIG_CHANNEL_STALL_MS unless a
 * test lowers it (before any channel exists) to fail stalls quickly.
 */
extern unsigned int mig_channel_stall_ms;

struct mig_channel;

struct mig_channel_ops {
	/* A whole, checked frame. payload is valid only during the call. */
	void (*on_frame)(struct mig_channel *ch, const struct proto_hdr *h,
			 const uint8_t *payload);
	/* The connection failed; the channel is closing. Called once. */
	void (*on_error)(struct mig_channel *ch, int err, const char *why);
	/* The write queue went below MIG_CHANNEL_HIGH / 2. May be NULL. */
	void (*on_drain)(struct mig_channel *ch);
	/* Client: connected (status 0) or not (then on_error follows). */
	void (*on_connect)(struct mig_channel *ch);
	/*
	 * Optional (channel_splice.c; plaintext only): the receiver of a
	 * large frame whose checksum ends before its data (PROTO_PAGES_LIVE)
	 * may take the data straight from the socket. splice_begin sees the
	 * checked header and the first have bytes of the payload (the part
	 * under the CRC, then perhaps some data) and returns MIG_SPLICE_PIPE
	 * or MIG_SPLICE_DIRECT to take the frame (it has used those bytes;
	 * the rest comes by splice_data or splice_read and on_frame is not
	 * called for it), 0 to leave it to on_frame, or a negative errno with
	 * err set (the channel fails). splice_data (PIPE): the next n bytes
	 * of the payload wait in the pipe pipe_rd; move them all out, or
	 * return a negative errno with err set. DIRECT: splice_iov says where
	 * the next at most max bytes of the payload go (fills at most niov
	 * iovecs and returns their count, or a negative errno with err set),
	 * the channel reads the socket into them, and splice_placed hears
	 * that n bytes came there (0, or a negative errno with err set).
	 */
	int (*splice_begin)(struct mig_channel *ch, const struct proto_hdr *h,
			    const uint8_t *payload, size_t have, char *err,
			    size_t errlen);
	int (*splice_data)(struct mig_channel *ch, int pipe_rd, size_t n,
			   char *err, size_t errlen);
	int (*splice_iov)(struct mig_channel *ch, size_t max, struct iovec *iov,
			  int niov, char *err, size_t errlen);
	int (*splice_placed)(struct mig_channel *ch, size_t n, char *err,
			     size_t errlen);
};

struct mig_channel {
	uv_loop_t *loop;
	uv_tcp_t tcp;
	uv_tcp_t listener;
	uv_connect_t conn_req;
	uv_timer_t timer;
	uv_idle_t rearm; /* read_chunk: reading resumes on the next turn */
	const struct mig_channel_ops *ops;
	void *opaque;
	char peer[64]; /* "tcp:HOST:PORT", for messages */

	uint8_t *rbuf; /* reassembly buffer */
	size_t rlen, rcap;
	size_t queued;	    /* bytes handed to uv_write, not yet done */
	uint64_t bytes_out; /* bytes whose write completed (bandwidth) */
	uint64_t bytes_in;
	uint64_t last_progress_ms;
	bool connected, listening, failed, closed, timer_on, flush_close;
	int pending_closes;
	struct mig_channel *next;  /* listener: takes the next connection */
	struct mig_channel *chain; /* armed: the one after it (listen_next) */
	bool idle_ok;	   /* silence with nothing queued is not a stall */
	bool detached;	   /* the socket belongs to another thread now */
	size_t parse_off;  /* rbuf bytes consumed by the frame being handled */
	size_t frame_rest; /* bytes the frame begun in rbuf still lacks */
	/* splice_begin took the frame being read: sp.rest bytes to come. */
	struct mig_splice sp;
	/*
	 * Latency over throughput (post-copy): read at most read_chunk bytes
	 * per turn of the loop, and stop producing above high bytes queued.
	 * libuv would read up to 32 times per wakeup; the channel stops
	 * reading after one read and resumes from an idle handle, so that a
	 * connection full of bulk data holds the loop for one chunk before
	 * the other connections are served. 0: the defaults.
	 */
	size_t read_chunk;
	size_t high;
	/* TCP congestion control in use, read back once connected. */
	char congestion[MIG_TCP_CA_NAME];
	void (*on_closed)(struct mig_channel *ch);
	/*
	 * TLS (channel_tls.c), when tls_ctx is set (mig_channel_use_tls):
	 * libuv never reads or writes the socket; a uv_poll_t on it drives
	 * the session, frames wait in the queue wq (the head's first wq_off
	 * bytes taken), and on_connect follows the handshake. tls_name: the
	 * name the destination's certificate must carry (client).
	 */
	struct tls_ctx *tls_ctx;
	char tls_name[256];
	struct tls_conn *tls;
	uv_poll_t poll;
	bool poll_init, tls_up, tls_busy, tls_yield;
	struct mig_write *wq_head, *wq_tail;
	size_t wq_off;
	/*
	 * A handshake this end refused (server): the alert went out, our FIN
	 * followed, and what the peer still sends is read and dropped until
	 * its EOF (or MIG_TLS_LINGER_MS), so that our close does not reset
	 * the connection before the peer has read why; then on_error, with
	 * linger_err and linger_why.
	 */
	bool tls_linger;
	int linger_err;
	char linger_why[600];
};

/* Parse "tcp:HOST:PORT" (numeric IPv4/IPv6 or localhost). */
int mig_addr_parse(const char *spec, struct sockaddr_storage *ss, char *err,
		   size_t errlen);

/*
 * Connect to spec. cc: the TCP congestion control algorithm of the
 * connection (TCP_CONGESTION, set on the socket before it connects, so
 * that the kernel never starts the system's: BBR's pacing, once begun,
 * outlives a later switch); NULL or "": the system's default
 * (net.ipv4.tcp_congestion_control). The same for the listeners below:
 * the connections they accept inherit it.
 */
int mig_channel_connect(struct mig_channel *ch, uv_loop_t *loop,
			const char *spec, const char *cc,
			const struct mig_channel_ops *ops, void *opaque,
			char *err, size_t errlen);
/* Listen on spec; the first connection becomes the channel (on_connect). */
int mig_channel_listen(struct mig_channel *ch, uv_loop_t *loop,
		       const char *spec, const char *cc,
		       const struct mig_channel_ops *ops, void *opaque,
		       char *err, size_t errlen);

/*
 * A socket bound and listening on spec (SO_REUSEADDR, nonblocking), for
 * mig_channel_listen_fd: the address is taken before the channel that
 * will use it exists. 0 with *fd, or -errno with one line in err.
 */
int mig_channel_bind(const char *spec, int *fd, char *err, size_t errlen);
/* mig_channel_listen on fd (from mig_channel_bind; the channel owns it). */
int mig_channel_listen_fd(struct mig_channel *ch, uv_loop_t *loop,
			  const char *spec, int fd, const char *cc,
			  const struct mig_channel_ops *ops, void *opaque,
			  char *err, size_t errlen);

/*
 * The listener stays open after the first connection. Arm next (set up
 * here with ops and opaque; its on_connect follows) to take the next
 * connection, then the listener closes; or refuse any more with
 * mig_channel_stop_listening. Unarmed, a second connection closes the
 * listener unaccepted. Arming again before that queues the channels: the
 * connections are taken in order, and the listener closes after the last.
 */
int mig_channel_listen_next(struct mig_channel *ch, struct mig_channel *next,
			    const struct mig_channel_ops *ops, void *opaque);
void mig_channel_stop_listening(struct mig_channel *ch);

/*
 * Hand the connected socket to another thread (migration/urgent.h): libuv
 * stops reading it and its stall timer, and nothing may be queued on it
 * any more (-EBUSY while a write is pending). Bytes read but not yet
 * handled are copied to *leftover (malloc'ed, may be NULL with *len 0).
 * Callable from on_frame (the frames after the current one are not
 * handed to on_frame any more) or when no callback runs. The channel is
 * then only closed, after the other thread is done with the socket.
 */
int mig_channel_detach(struct mig_channel *ch, int *fd, uint8_t **leftover,
		       size_t *len);

/*
 * May this process use congestion control name? 0, or -errno with err
 * naming it and what this host offers (a name the kernel lacks) or allows
 * (one it may not use).
 */
int mig_tcp_congestion_check(const char *name, char *err, size_t errlen);

/*
 * Speak TLS on this channel: call right after mig_channel_connect or
 * mig_channel_listen (a listener's next channel inherits it). ctx NULL:
 * plaintext. name (client; NULL: the host of the address as given, before
 * "localhost" becomes 127.0.0.1) is checked against the destination's
 * certificate.
 */
void mig_channel_use_tls(struct mig_channel *ch, struct tls_ctx *ctx,
			 const char *name);
/* The established TLS session (NULL: plaintext or not yet). */
struct tls_conn *mig_channel_tls(const struct mig_channel *ch);
/*
 * The transport policy of an address: with dir, load the TLS context for
 * role (authz: server only); without, plaintext only on a loopback address
 * or when insecure, else -EPERM with one line saying what to give.
 * *out NULL means plaintext.
 */
int mig_tls_open(struct tls_ctx **out, const char *spec, const char *dir,
		 int role, const char *authz, bool insecure, char *err,
		 size_t errlen);

/* Queue a whole frame (ownership passes: freed when written). */
int mig_channel_send(struct mig_channel *ch, uint8_t *frame, size_t len);
/*
 * Queue a frame whose first hlen bytes are head (malloc'd; ownership
 * passes) and whose rest are the niov (<= MIG_CHANNEL_MAX_IOV) buffers of
 * iov, taken where they are: they must stay mapped until written (guest
 * RAM), and are read when the kernel copies them. Plaintext: one writev,
 * no copy here; TLS: gathered into one buffer first.
 */
#define MIG_CHANNEL_MAX_IOV PROTO_MAX_BATCH
struct iovec;
int mig_channel_sendv(struct mig_channel *ch, uint8_t *head, size_t hlen,
		      const struct iovec *iov, int niov);
/*
 * Queue a copy of a small frame an encoder wrote into buf: n is the
 * encoder's result (negative: returned as is). -ENOMEM before anything is
 * queued; else mig_channel_send's result.
 */
int mig_channel_send_copy(struct mig_channel *ch, const uint8_t *buf, int n);
/* Below the high-water mark: the sender may queue more. */
bool mig_channel_writable(const struct mig_channel *ch);

/* Close once every queued frame is written (bounded by the stall rule). */
void mig_channel_close_after_flush(struct mig_channel *ch,
				   void (*on_closed)(struct mig_channel *ch));
/* Close everything; on_closed (may be NULL) when libuv has let go. */
void mig_channel_close(struct mig_channel *ch,
		       void (*on_closed)(struct mig_channel *ch));

#endif /* MIGRATION_CHANNEL_H */
