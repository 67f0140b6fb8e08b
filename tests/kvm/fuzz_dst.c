// SPDX-License-Identifier: MIT
/*
 * fuzz_dst.c - the fake destination (fuzz_plans.h): it listens, takes the
 * real source's connections (main, then urgent) and answers HELLO_ACK with
 * random capabilities, SYNC, VERIFY (the source's own digests echoed, or
 * random), READY early or late, RUNNING with or without GO, COMPLETE,
 * ERROR, the recovery frames, page requests in and out of RAM, frames only
 * a source sends, pauses, deafness (it stops reading) and early EOF. It
 * records whether it ever said RUNNING before GO had arrived.
 */
#include <string.h>

#include "tests/kvm/fuzz_plans.h"

enum {
	D_WAIT_HELLO,
	D_HELLO_ACK,
	D_HELLO_ACK_BAD,
	D_ECHO_ON,
	D_ECHO_OFF,
	D_SYNC,
	D_WAIT_STATE_END,
	D_VERIFY_ECHO,
	D_VERIFY_RAND,
	D_READY,
	D_WAIT_GO,
	D_RUNNING,
	D_WAIT_PC_END,
	D_COMPLETE,
	D_ERROR,
	D_LACKING,
	D_RESUME_ACK,
	D_WRONG_DIR,
	D_PAGE_REQ,
	D_SLEEP,
	D_SLEEP_LONG,
	D_DEAF,
	D_HALF,
	D_CLOSE_URGENT,
	D_NR
};

static const char *const dst_names[D_NR] = {
	"wHELLO",  "HELLO_ACK",	 "HELLO_ACK!", "echo",	       "noecho",
	"SYNC",	   "wSTATE_END", "VERIFY",     "VERIFY?",      "READY",
	"wGO",	   "RUNNING",	 "wPC_END",    "COMPLETE",     "ERROR",
	"LACKING", "RESUME_ACK", "WRONG",      "PAGE_REQ",     "sleep",
	"SLEEP",   "DEAF",	 "HALF",       "close-urgent",
};

static struct fz_dst *dst_of(struct fz_peer *p)
{
	return p->side;
}

static struct fz_step dst_random_step(struct fz_peer *p)
{
	struct fz_step st = {(uint8_t)fz_below(p, D_NR), 0};

	if ((st.op == D_SLEEP_LONG || st.op == D_DEAF) && !fz_chance(p, 10))
		st.op = D_SLEEP;
	return st;
}

static void dst_plan(struct fz_peer *p, struct fz_plan *pl)
{
	struct fz_dst *d = dst_of(p);

	if (fz_chance(p, 45)) {
		d->honest = true;
		fz_plan_add(pl, D_WAIT_HELLO, 0);
		fz_plan_add(pl, D_HELLO_ACK, 0);
		fz_plan_add(pl, D_ECHO_ON, 0);
		fz_plan_add(pl, D_WAIT_STATE_END, 0);
		fz_plan_add(pl, D_VERIFY_ECHO, 0);
		fz_plan_add(pl, D_READY, 0);
		fz_plan_add(pl, D_WAIT_GO, 0);
		fz_plan_add(pl, D_RUNNING, 0);
		fz_plan_add(pl, D_WAIT_PC_END, 0);
		fz_plan_add(pl, D_COMPLETE, 0);
		if (fz_chance(p, 50)) {
			d->honest = false;
			fz_plan_mutate(p, pl, dst_random_step);
		}
		return;
	}
	fz_plan_add(pl, D_WAIT_HELLO, 0);
	if (fz_chance(p, 70))
		fz_plan_add(pl, D_HELLO_ACK, 0);
	if (fz_chance(p, 50))
		fz_plan_add(pl, D_ECHO_ON, 0);
	for (int n = 1 + (int)fz_below(p, 20); n--;)
		fz_plan_add(pl, dst_random_step(p).op, 0);
}

/* The real source's frames: queue SYNC answers, keep its VERIFY. */
static void dst_on_frame(struct fz_peer *p, int ci, const struct proto_hdr *h,
			 const uint8_t *pl)
{
	struct fz_dst *d = dst_of(p);
	struct proto_hello hello;

	if (ci != 0)
		return;
	if (h->type == PROTO_SYNC)
		d->syncs_due++;
	if (h->type == PROTO_VERIFY &&
	    h->len + PROTO_HDR_SIZE <= sizeof(d->verify)) {
		memcpy(d->verify, pl - PROTO_HDR_SIZE, h->len + PROTO_HDR_SIZE);
		d->verify_len = h->len + PROTO_HDR_SIZE;
	}
	if (h->type == PROTO_HELLO && !d->got_hello &&
	    !proto_hello_decode(pl, h->len, &hello, NULL, 0)) {
		d->got_hello = true;
		d->offered = hello.caps;
		d->ram_pages = hello.mem_size / PAGE_SIZE;
	}
}

static void dst_on_idle(struct fz_peer *p)
{
	struct fz_dst *d = dst_of(p);
	uint8_t f[PROTO_HDR_SIZE];

	while (d->echo_sync && d->syncs_due && fz_open(p, 0)) {
		d->syncs_due--;
		fz_send(p, 0, f,
			(size_t)proto_empty_encode(f, sizeof(f), PROTO_SYNC),
			(int)d->stall_ms + 2000);
	}
}

static bool dst_hello(struct fz_peer *p)
{
	return !fz_open(p, 0) || dst_of(p)->got_hello;
}

static bool dst_state_end(struct fz_peer *p)
{
	return !fz_open(p, 0) || p->rx[PROTO_STATE_END] || p->rx[PROTO_ERROR];
}

static bool dst_verify(struct fz_peer *p)
{
	return !fz_open(p, 0) || dst_of(p)->verify_len;
}

static bool dst_go(struct fz_peer *p)
{
	return !fz_open(p, 0) || p->rx[PROTO_GO] || p->rx[PROTO_ERROR];
}

static bool dst_pc_end(struct fz_peer *p)
{
	return !fz_open(p, 0) || p->rx[PROTO_POSTCOPY_END] ||
	       p->rx[PROTO_ERROR];
}

static int dst_out(struct fz_peer *p, int n)
{
	return fz_put(p, 0, n, dst_of(p)->stall_ms);
}

static int dst_empty(struct fz_peer *p, enum proto_type t)
{
	return dst_out(p, proto_empty_encode(p->fbuf, FZ_FBUF, t));
}

static int dst_hello_ack(struct fz_peer *p, bool bad)
{
	struct fz_dst *d = dst_of(p);
	uint64_t caps = d->offered & PROTO_CAP_ALL;

	if (bad && fz_chance(p, 50))
		caps = fz_rand(p) & PROTO_CAP_ALL;
	else if (bad)
		caps &= fz_rand(p);
	/* A lie about channels (never offered here) must be refused. */
	return dst_out(p, proto_hello_ack_chan_encode(p->fbuf, FZ_FBUF, caps, 2,
						      fz_rand(p) | 1));
}

static int dst_verify_frame(struct fz_peer *p, bool echo)
{
	struct fz_dst *d = dst_of(p);
	struct proto_digest dg = {.gpa = 0, .size = d->ram_pages * PAGE_SIZE};

	if (echo && d->honest && !(d->offered & PROTO_CAP_VERIFY))
		return 0;
	if (echo && fz_wait(p, dst_verify, 1000) && d->verify_len) {
		memcpy(p->fbuf, d->verify, d->verify_len);
		return dst_out(p, (int)d->verify_len);
	}
	for (int i = 0; i < 32; i++)
		dg.sha256[i] = (uint8_t)fz_rand(p);
	return dst_out(p, proto_verify_encode(p->fbuf, FZ_FBUF, &dg, 1));
}

static int dst_running(struct fz_peer *p)
{
	struct fz_dst *d = dst_of(p);

	if (!p->rx[PROTO_GO])
		d->running_early = true;
	d->running_sent = true;
	return dst_empty(p, PROTO_RUNNING);
}

static int dst_wrong_dir(struct fz_peer *p)
{
	static const uint8_t empty[] = {PROTO_RAM_END, PROTO_STATE_END,
					PROTO_GO, PROTO_POSTCOPY_END};
	struct proto_state st = {.kind = PROTO_STATE_VCPU, .len = 0};

	switch (fz_below(p, 4)) {
	case 0:
		return dst_out(p, proto_state_encode(p->fbuf, FZ_FBUF, &st));
	case 1:
		return dst_out(p, proto_urgent_hello_encode(p->fbuf, FZ_FBUF,
							    fz_cookie(p)));
	case 2:
		return dst_out(p, proto_postcopy_encode(p->fbuf, FZ_FBUF,
							fz_cookie(p), 0));
	default:
		return dst_empty(p, empty[fz_below(p, 4)]);
	}
}

/* A page request on the urgent connection (the first other one open). */
static int dst_page_req(struct fz_peer *p)
{
	struct fz_dst *d = dst_of(p);
	uint64_t gpa[8];
	uint32_t nr = 1 + fz_below(p, 8);
	int ci = 1;

	while (ci < FZ_MAX_CONN && !fz_open(p, ci))
		ci++;
	if (ci == FZ_MAX_CONN)
		return 0;
	for (uint32_t i = 0; i < nr; i++)
		gpa[i] = (uint64_t)fz_below(
				 p, (uint32_t)d->ram_pages + 1 +
					    (fz_chance(p, 10) ? 9999 : 0)) *
			 PAGE_SIZE;
	fz_put(p, ci, proto_page_req_encode(p->fbuf, FZ_FBUF, gpa, nr),
	       d->stall_ms);
	return 0;
}

static int dst_exec(struct fz_peer *p, const struct fz_step *st)
{
	struct fz_dst *d = dst_of(p);
	int wait = (int)d->stall_ms + 3000;
	uint32_t nr;

	switch (st->op) {
	case D_WAIT_HELLO:
		fz_wait(p, dst_hello, wait);
		return 0;
	case D_HELLO_ACK:
	case D_HELLO_ACK_BAD:
		return dst_hello_ack(p, st->op == D_HELLO_ACK_BAD);
	case D_ECHO_ON:
	case D_ECHO_OFF:
		d->echo_sync = st->op == D_ECHO_ON;
		return 0;
	case D_SYNC:
		return dst_empty(p, PROTO_SYNC);
	case D_WAIT_STATE_END:
		fz_wait(p, dst_state_end, wait * 4); /* pre-copy rounds */
		return 0;
	case D_VERIFY_ECHO:
	case D_VERIFY_RAND:
		return dst_verify_frame(p, st->op == D_VERIFY_ECHO);
	case D_READY:
		return dst_empty(p, PROTO_READY);
	case D_WAIT_GO:
		fz_wait(p, dst_go, wait);
		return 0;
	case D_RUNNING:
		return dst_running(p);
	case D_WAIT_PC_END:
		if (p->rx[PROTO_POSTCOPY] || !d->honest)
			fz_wait(p, dst_pc_end, wait * 4);
		return 0;
	case D_COMPLETE:
		if (d->honest && !p->rx[PROTO_POSTCOPY_END])
			return 0;
		return dst_empty(p, PROTO_COMPLETE);
	case D_ERROR:
		return dst_out(p, fz_error_frame(p));
	case D_LACKING:
		return dst_out(
			p, fz_discard_frame(p, p->fbuf, d->ram_pages + 1, &nr));
	case D_RESUME_ACK:
		return dst_out(p, proto_resume_ack_encode(p->fbuf, FZ_FBUF,
							  fz_cookie(p),
							  fz_below(p, 3)));
	case D_WRONG_DIR:
		return dst_wrong_dir(p);
	case D_PAGE_REQ:
		return dst_page_req(p);
	case D_SLEEP:
	case D_SLEEP_LONG:
		fz_sleep(p, d->stall_ms, st->op == D_SLEEP_LONG);
		return 0;
	case D_DEAF:
		p->deaf = true;
		fz_sleep(p, d->stall_ms, true);
		p->deaf = false;
		return 0;
	case D_HALF:
		fz_half(p, 0, proto_empty_encode(p->fbuf, FZ_FBUF, PROTO_READY),
			d->stall_ms);
		return -1;
	default:
		for (int ci = 1; ci < FZ_MAX_CONN; ci++)
			fz_close(p, ci);
		return 0;
	}
}

void fz_dst_run(struct fz_peer *p)
{
	struct fz_dst *d = dst_of(p);
	struct fz_plan pl = {.n = 0};

	p->on_frame = dst_on_frame;
	p->on_idle = dst_on_idle;
	dst_plan(p, &pl);
	if (fz_accept(p, (int)d->stall_ms + 3000) != 0) {
		fz_trace(d->trace, "no-connection");
		fz_plan_end(p, d->trace);
		return;
	}
	for (int i = 0; i < pl.n && !atomic_load(&p->stop); i++) {
		fz_trace(d->trace, dst_names[pl.s[i].op]);
		if (dst_exec(p, &pl.s[i]) || !fz_open(p, 0))
			break;
	}
	if (d->honest)
		fz_pump(p, 100);
	d->echo_sync = false;
	fz_plan_end(p, d->trace);
}
