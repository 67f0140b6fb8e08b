/* SPDX-License-Identifier: MIT */
/*
 * fuzzpeer.h - the fake migration peer of the state-machine fuzzer
 * (test_fuzz_states.c): a seeded random generator, plain blocking-free
 * sockets on its own thread, well-encoded frames out, every frame in parsed
 * and counted. It plays the source towards a real destination or the
 * destination towards a real source; what it says and when is the plan's
 * (fuzz_plans.c). Everything in struct fz_peer is the peer thread's but
 * `stop` (set by the test thread) and what the test thread reads after
 * joining it.
 */
#ifndef TESTS_KVM_FUZZPEER_H
#define TESTS_KVM_FUZZPEER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

#define FZ_MAX_CONN 4 /* main, urgent, strays */
#define FZ_PORT_LO  20000
#define FZ_PORT_HI  32767

struct fz_peer;

struct fz_conn {
	int fd; /* -1: closed */
	uint8_t *buf;
	size_t len, cap;
};

/* A frame the real side sent (h checked, CRC included). */
typedef void (*fz_frame_fn)(struct fz_peer *p, int ci,
			    const struct proto_hdr *h, const uint8_t *pl);

struct fz_peer {
	uint64_t rng;
	struct fz_conn c[FZ_MAX_CONN]; /* c[0]: the main connection */
	int lfd;		       /* fake destination: its listener */
	int port;		       /* where the real destination listens */
	atomic_bool stop;	       /* test thread: give up now */
	atomic_uint_fast64_t plan_end; /* clock_now_ms() the plan ended; 0 */
	bool deaf;		       /* stop reading (the real side stalls) */
	uint64_t frames_sent;
	uint32_t rx[PROTO_TYPE_MAX];  /* frames received, main connection */
	uint32_t urx[PROTO_TYPE_MAX]; /* on the other connections */
	char bad[256];		      /* the real side sent a malformed frame */
	fz_frame_fn on_frame;
	/* Between waits (never inside fz_send): the plan's auto-replies. */
	void (*on_idle)(struct fz_peer *p);
	void *side;    /* the plan's state */
	uint8_t *fbuf; /* frame scratch, FZ_FBUF bytes */
};

#define FZ_FBUF (PROTO_MAX_PAYLOAD + PROTO_HDR_SIZE)

/* splitmix64: one seed replays one iteration. */
uint64_t fz_rand(struct fz_peer *p);
uint32_t fz_below(struct fz_peer *p, uint32_t n);
bool fz_chance(struct fz_peer *p, uint32_t percent);

int fz_init(struct fz_peer *p, uint64_t seed);
void fz_fini(struct fz_peer *p);

/* Listen on 127.0.0.1, the first free port from a random one: port or -errno.
 */
int fz_listen(int *fd);
/* Connect to 127.0.0.1:port as connection index ci: 0 or -1. */
int fz_connect(struct fz_peer *p, int ci, int port);
/* Accept a connection on lfd within ms into a free slot: its index or -1. */
int fz_accept(struct fz_peer *p, int ms);
void fz_close(struct fz_peer *p, int ci);
/* Half-close (the real side sees EOF but may still send). */
void fz_shutdown(struct fz_peer *p, int ci);
/*
 * Send len bytes on ci, reading (unless deaf) meanwhile so that neither
 * side blocks the other. 0, or -1 when the connection is gone, stop is set
 * or nothing moved for limit_ms.
 */
int fz_send(struct fz_peer *p, int ci, const uint8_t *buf, size_t len,
	    int limit_ms);
/* Read and dispatch whatever arrives for ms milliseconds. */
void fz_pump(struct fz_peer *p, int ms);
/* Pump until pred(p) holds (true) or ms elapse (false). */
bool fz_wait(struct fz_peer *p, bool (*pred)(struct fz_peer *p), int ms);
/* Is connection ci open? */
bool fz_open(const struct fz_peer *p, int ci);

#endif /* TESTS_KVM_FUZZPEER_H */
