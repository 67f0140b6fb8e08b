/* SPDX-License-Identifier: MIT */
/*
 * fuzz_plans.h - what the fake peer of the state-machine fuzzer says and
 * when (fuzz_plans.c): as a source towards a real destination, as a
 * destination towards a real source. A plan is an honest migration with a
 * few random mutations (a step dropped, repeated, moved, a foreign step
 * inserted, the end cut), or a random walk over every frame the side may
 * send, with pauses shorter and longer than the stall limit, early EOF and
 * stray connections. Each plan also records what it did, for the oracles of
 * test_fuzz_states.c. Everything runs on the peer thread.
 */
#ifndef TESTS_KVM_FUZZ_PLANS_H
#define TESTS_KVM_FUZZ_PLANS_H

#include <stdbool.h>
#include <stdint.h>

#include "ept/mem.h"
#include "tests/kvm/fuzzpeer.h"
#include "vmm/snapshot.h"

#define FZ_TRACE 400

/* A paused VM of the destination's shape: its HELLO, state and RAM. */
struct fz_template {
	struct proto_hello hello;
	struct vm_snapshot snap;
	const struct guest_mem *mem;
	uint64_t *nz; /* page indices that hold data */
	uint64_t nr_nz;
	struct proto_digest digest[PROTO_MAX_REGIONS];
	int nr_digest;
};

/* The fake source's record (towards a real destination). */
struct fz_src {
	const struct fz_template *t;
	unsigned int stall_ms;
	struct proto_batch *batch;
	uint8_t *reply; /* frame scratch of the auto-replies */
	bool honest;	/* an unmutated honest plan */
	bool postcopy;	/* the plan's shape */
	uint64_t caps;	/* offered in its HELLO */
	uint64_t acked; /* the destination's HELLO_ACK */
	uint64_t cookie;
	uint64_t discard_runs;
	bool first_hello_good; /* the first frame was the right HELLO */
	bool framed;	       /* a frame went out on the main connection */
	bool ram_end, state_end, verify_good;
	uint32_t sec_good; /* template sections whose first STATE was valid */
	uint32_t sec_mutated; /* ... was mutated */
	bool go_legit;	      /* a GO went out after all of the rest */
	bool go_sent;
	bool all_pages;	 /* every data page of the template went out */
	bool answer_req; /* answer PAGE_REQ with the template's pages */
	uint64_t req[PROTO_MAX_PAGE_REQ * 4];
	uint32_t nr_req;
	char trace[FZ_TRACE];
};

/* The fake destination's record (towards a real source). */
struct fz_dst {
	unsigned int stall_ms;
	bool honest;
	bool echo_sync;	    /* answer each SYNC */
	uint32_t syncs_due; /* SYNCs received, not answered */
	uint64_t offered;   /* the source's HELLO caps */
	bool got_hello;
	bool running_early; /* a RUNNING went out before GO arrived */
	bool running_sent;
	uint8_t verify[PROTO_VERIFY_MAX_FRAME]; /* the source's, to echo */
	uint32_t verify_len;
	uint64_t ram_pages; /* of the source VM: PAGE_REQ within it */
	char trace[FZ_TRACE];
};

/* ---- what both plans share (fuzz_plans.c) ---- */

#define FZ_MAX_STEPS 48

struct fz_step {
	uint8_t op, arg;
};

struct fz_plan {
	struct fz_step s[FZ_MAX_STEPS];
	int n;
};

void fz_plan_add(struct fz_plan *pl, int op, int arg);
/*
 * 1..3 mutations: drop a step, repeat one, swap neighbours, insert a
 * random step (rnd), cut the tail.
 */
void fz_plan_mutate(struct fz_peer *p, struct fz_plan *pl,
		    struct fz_step (*rnd)(struct fz_peer *p));
/* Append a token to a trace (FZ_TRACE bytes). */
void fz_trace(char *t, const char *tok);
/* A pause: short (under half the stall limit) or long (past it). */
void fz_sleep(struct fz_peer *p, unsigned int stall_ms, bool longer);
/* Send the frame in p->fbuf (n: the encoder's result) on ci: 0 or -1. */
int fz_put(struct fz_peer *p, int ci, int n, unsigned int stall_ms);
/* A random part of the frame in p->fbuf, then close ci (early EOF). */
void fz_half(struct fz_peer *p, int ci, int n, unsigned int stall_ms);
int fz_error_frame(struct fz_peer *p);
/* DISCARD of 1..8 random runs of RAM of `pages` (*nr: how many). */
int fz_discard_frame(struct fz_peer *p, uint8_t *buf, uint64_t pages,
		     uint32_t *nr);
uint64_t fz_cookie(struct fz_peer *p);
/*
 * End the plan: close everything, half-close, or fall silent; publish
 * plan_end, then keep the sockets (reading) until the test says stop.
 */
void fz_plan_end(struct fz_peer *p, char *tr);

/* Run one plan on p (p->side: a struct fz_src / fz_dst, filled in). */
void fz_src_run(struct fz_peer *p);
void fz_dst_run(struct fz_peer *p);

#endif /* TESTS_KVM_FUZZ_PLANS_H */
