// SPDX-License-Identifier: MIT
/*
 * fuzz_src.c - the fake source (fuzz_plans.h): HELLO of the destination's
 * shape, the template's pages, random pages in and out of RAM, its state
 * sections whole, cut short or random, VERIFY, GO, the post-copy frames
 * and an urgent connection that answers page requests, in honest or
 * mutated orders. It records whether a GO it sent was earned.
 */
#include <stdlib.h>
#include <string.h>

#include "tests/kvm/fuzz_plans.h"

enum {
	S_HELLO,
	S_HELLO_BAD,
	S_PAGES_ALL,
	S_PAGES_RAND,
	S_SYNC,
	S_WAIT_SYNC,
	S_RAM_END,
	S_STATE, /* arg: the template's section */
	S_STATE_RAND,
	S_STATE_TRUNC,
	S_STATE_END,
	S_VERIFY,
	S_VERIFY_RAND,
	S_WAIT_READY,
	S_GO,
	S_WAIT_RUNNING,
	S_DISCARD,
	S_POSTCOPY,
	S_URGENT,
	S_URGENT_BAD,
	S_POSTCOPY_END,
	S_WAIT_COMPLETE,
	S_ERROR,
	S_RESUME,
	S_WRONG_DIR,
	S_SLEEP,
	S_SLEEP_LONG,
	S_HALF,
	S_STRAY,
	S_NR
};

static const char *const src_names[S_NR] = {
	"HELLO",   "HELLO!",  "PAGES*", "PAGES?",    "SYNC",	  "wSYNC",
	"RAM_END", "STATE",   "STATE?", "STATE/",    "STATE_END", "VERIFY",
	"VERIFY?", "wREADY",  "GO",	"wRUNNING",  "DISCARD",	  "POSTCOPY",
	"URGENT",  "URGENT?", "PC_END", "wCOMPLETE", "ERROR",	  "RESUME",
	"WRONG",   "sleep",   "SLEEP",	"HALF",	     "STRAY",
};

static struct fz_src *src_of(struct fz_peer *p)
{
	return p->side;
}

static int src_nr_sec(struct fz_peer *p)
{
	return src_of(p)->t->snap.nr;
}

static struct fz_step src_random_step(struct fz_peer *p)
{
	struct fz_step st = {(uint8_t)fz_below(p, S_NR), 0};

	/* Long pauses are expensive: a tenth as likely as the others. */
	if (st.op == S_SLEEP_LONG && !fz_chance(p, 10))
		st.op = S_SLEEP;
	st.arg = (uint8_t)fz_below(p, (uint32_t)src_nr_sec(p));
	return st;
}

static void src_plan(struct fz_peer *p, struct fz_plan *pl)
{
	struct fz_src *s = src_of(p);

	if (fz_chance(p, 45)) {
		s->honest = true;
		s->postcopy = fz_chance(p, 35);
		fz_plan_add(pl, S_HELLO, 0);
		if (!s->postcopy) {
			fz_plan_add(pl, S_PAGES_ALL, 0);
			fz_plan_add(pl, S_SYNC, 0);
			fz_plan_add(pl, S_WAIT_SYNC, 0);
			fz_plan_add(pl, S_RAM_END, 0);
		} else {
			if (fz_chance(p, 50))
				fz_plan_add(pl, S_PAGES_RAND, 0);
			if (fz_chance(p, 50))
				fz_plan_add(pl, S_DISCARD, 0);
			fz_plan_add(pl, S_POSTCOPY, 0);
			fz_plan_add(pl, S_URGENT, 0);
		}
		for (int i = 0; i < src_nr_sec(p); i++)
			fz_plan_add(pl, S_STATE, i);
		fz_plan_add(pl, S_STATE_END, 0);
		fz_plan_add(pl, S_VERIFY, 0);
		fz_plan_add(pl, S_WAIT_READY, 0);
		fz_plan_add(pl, S_GO, 0);
		fz_plan_add(pl, S_WAIT_RUNNING, 0);
		if (s->postcopy) {
			fz_plan_add(pl, S_PAGES_ALL, 0);
			fz_plan_add(pl, S_POSTCOPY_END, 0);
			fz_plan_add(pl, S_WAIT_COMPLETE, 0);
		}
		if (fz_chance(p, 50)) {
			s->honest = false;
			fz_plan_mutate(p, pl, src_random_step);
		}
		return;
	}
	s->postcopy = fz_chance(p, 40);
	if (fz_chance(p, 80))
		fz_plan_add(pl, S_HELLO, 0);
	for (int n = 1 + (int)fz_below(p, 30); n--;)
		fz_plan_add(pl, src_random_step(p).op, fz_below(p, 32));
	for (int i = 0; i < pl->n; i++)
		pl->s[i].arg %= (uint8_t)src_nr_sec(p);
}

/* The real destination's frames: record, queue what is to be answered. */
static void src_on_frame(struct fz_peer *p, int ci, const struct proto_hdr *h,
			 const uint8_t *pl)
{
	struct fz_src *s = src_of(p);
	uint64_t gpa[PROTO_MAX_PAGE_REQ];
	uint32_t nr;

	if (ci == 0 && h->type == PROTO_HELLO_ACK)
		proto_hello_ack_decode(pl, h->len, &s->acked, NULL, 0);
	if (ci == 0 || h->type != PROTO_PAGE_REQ || !s->answer_req ||
	    proto_page_req_decode(pl, h->len, gpa, &nr, NULL, 0))
		return;
	for (uint32_t i = 0; i < nr && s->nr_req < PROTO_MAX_PAGE_REQ * 4; i++)
		s->req[s->nr_req++] = gpa[i];
}

/* Answer the queued page requests on the urgent connection (c[1]). */
static void src_on_idle(struct fz_peer *p)
{
	struct fz_src *s = src_of(p);
	const struct guest_mem *m = s->t->mem;
	int n;

	if (!s->nr_req || !s->answer_req || !fz_open(p, 1))
		return;
	proto_batch_init(s->batch);
	for (uint32_t i = 0; i < s->nr_req && !proto_batch_full(s->batch);
	     i++) {
		uint64_t gpa = s->req[i];

		for (uint64_t k = 0; k < m->nr_pages; k++) /* small RAM */
			if (mem_page_to_gpa(m, k) == gpa) {
				proto_batch_add(s->batch, gpa,
						m->base + k * PAGE_SIZE);
				break;
			}
	}
	s->nr_req = 0;
	n = s->batch->nr_pages
		    ? proto_pages_encode(s->reply, FZ_FBUF, s->batch, 0)
		    : -1;
	if (n > 0)
		fz_send(p, 1, s->reply, (size_t)n, (int)s->stall_ms + 2000);
}

/* Send the encoded frame on the main connection; track the first one. */
static int src_out(struct fz_peer *p, int n, bool good_hello)
{
	struct fz_src *s = src_of(p);

	if (n < 0)
		return -1;
	if (!s->framed && good_hello)
		s->first_hello_good = true;
	s->framed = true;
	return fz_put(p, 0, n, s->stall_ms);
}

static int src_hello(struct fz_peer *p, bool bad)
{
	struct fz_src *s = src_of(p);
	struct proto_hello *h = malloc(sizeof(*h));
	int n = -1;

	if (!h)
		return -1;
	*h = s->t->hello;
	s->caps = PROTO_CAP_ZSTD | (fz_chance(p, 30) ? PROTO_CAP_VERIFY : 0) |
		  (s->postcopy ? PROTO_CAP_POSTCOPY : 0) |
		  (fz_chance(p, 5) ? 1ULL << 40 : 0);
	h->caps = s->caps;
	if (bad) {
		switch (fz_below(p, 5)) {
		case 0:
			h->nr_vcpus++;
			break;
		case 1:
			h->mem_size *= 2;
			h->regions[0].size *= 2;
			break;
		case 2:
			h->cpuid[fz_below(p, h->nr_cpuid)].ebx ^= 1U << 3;
			break;
		case 3:
			h->devices[0].version++;
			break;
		default:
			h->nr_devices--;
		}
	}
	n = proto_hello_encode(p->fbuf, FZ_FBUF, h);
	free(h);
	return src_out(p, n, !bad);
}

/* Pages: the template's data pages (all, or some), or random ones. */
static int src_pages(struct fz_peer *p, bool all, bool random)
{
	struct fz_src *s = src_of(p);
	const struct guest_mem *m = s->t->mem;
	uint64_t i = 0, n = all ? s->t->nr_nz : 1 + fz_below(p, 300);
	uint8_t junk[PAGE_SIZE];

	while (i < n) {
		proto_batch_init(s->batch);
		for (; i < n && !proto_batch_full(s->batch); i++) {
			uint64_t k =
				random ? fz_below(p, (uint32_t)m->nr_pages)
				       : s->t->nz[all ? i
						      : fz_below(
								p,
								(uint32_t)s->t
									->nr_nz)];
			uint64_t gpa = mem_page_to_gpa(m, k);
			const void *data = m->base + k * PAGE_SIZE;

			if (random && fz_chance(p, 10))
				gpa = m->size + (uint64_t)fz_below(p, 1 << 20) *
							PAGE_SIZE;
			if (random && fz_chance(p, 30))
				data = NULL;
			else if (random && fz_chance(p, 30)) {
				for (size_t b = 0; b < sizeof(junk); b += 8)
					*(uint64_t *)(junk + b) = fz_rand(p);
				data = junk;
			}
			proto_batch_add(s->batch, gpa, data);
		}
		if (src_out(p,
			    proto_pages_encode(p->fbuf, FZ_FBUF, s->batch,
					       fz_chance(p, 50) ? 1 : 0),
			    false))
			return -1;
	}
	if (all)
		s->all_pages = true;
	return 0;
}

static const uint16_t src_kinds[] = {
	[VM_SNAP_VCPU] = PROTO_STATE_VCPU,
	[VM_SNAP_VM] = PROTO_STATE_VM,
	[VM_SNAP_DEVICE] = PROTO_STATE_DEVICE,
};

/* The template section i, whole or cut short; or a random blob. */
static int src_state(struct fz_peer *p, int i, int how)
{
	struct fz_src *s = src_of(p);
	const struct vm_snap_section *sec = &s->t->snap.sec[i];
	struct proto_state st = {.kind = src_kinds[sec->kind],
				 .version = (uint16_t)sec->version,
				 .id = sec->id,
				 .len = (uint32_t)sec->len,
				 .blob = sec->data};
	uint8_t junk[512];
	uint32_t bit = 1U << i;

	if (how == S_STATE_TRUNC && sec->len)
		st.len = fz_below(p, (uint32_t)sec->len);
	if (how == S_STATE_RAND) {
		st.len = fz_below(p, sizeof(junk));
		for (uint32_t b = 0; b < st.len; b++)
			junk[b] = (uint8_t)fz_rand(p);
		st.blob = junk;
		if (fz_chance(p, 40)) {
			st.kind = (uint16_t)(1 + fz_below(p, 3));
			st.id = fz_below(p, 4);
		}
	}
	for (int k = 0; k < src_nr_sec(p); k++) {
		const struct vm_snap_section *o = &s->t->snap.sec[k];

		if (src_kinds[o->kind] == st.kind && o->id == st.id)
			bit = 1U << k;
	}
	if (!((s->sec_good | s->sec_mutated) & bit)) {
		if (how == S_STATE)
			s->sec_good |= bit;
		else
			s->sec_mutated |= bit;
	}
	return src_out(p, proto_state_encode(p->fbuf, FZ_FBUF, &st), false);
}

static int src_verify(struct fz_peer *p, bool good)
{
	struct fz_src *s = src_of(p);
	struct proto_digest d[PROTO_MAX_REGIONS];
	uint32_t nr = (uint32_t)s->t->nr_digest;

	memcpy(d, s->t->digest, sizeof(d));
	if (!good)
		d[fz_below(p, nr)].sha256[fz_below(p, 32)] ^= 0x40;
	if (good && s->framed)
		s->verify_good = true;
	return src_out(p, proto_verify_encode(p->fbuf, FZ_FBUF, d, nr), false);
}

static bool src_all_sections(const struct fz_src *s)
{
	uint32_t all = (uint32_t)((1ULL << s->t->snap.nr) - 1);

	return (s->sec_good & all) == all && !(s->sec_mutated & all);
}

static int src_go(struct fz_peer *p)
{
	struct fz_src *s = src_of(p);
	bool verify = (s->acked & PROTO_CAP_VERIFY) && !s->postcopy;

	/*
	 * Not READY: whether it was sent before GO arrived is the
	 * destination's to check (GO may cross READY on the wire).
	 */
	if (s->first_hello_good && s->ram_end && src_all_sections(s) &&
	    s->state_end && (!verify || s->verify_good))
		s->go_legit = true;
	s->go_sent = true;
	return src_out(p, proto_empty_encode(p->fbuf, FZ_FBUF, PROTO_GO),
		       false);
}

static bool src_ready(struct fz_peer *p)
{
	return !fz_open(p, 0) || p->rx[PROTO_READY] || p->rx[PROTO_ERROR];
}

static bool src_running(struct fz_peer *p)
{
	return !fz_open(p, 0) || p->rx[PROTO_RUNNING] || p->rx[PROTO_ERROR];
}

static bool src_complete(struct fz_peer *p)
{
	return !fz_open(p, 0) || p->rx[PROTO_COMPLETE] || p->rx[PROTO_ERROR];
}

static bool src_synced(struct fz_peer *p)
{
	return !fz_open(p, 0) || p->rx[PROTO_SYNC] || p->rx[PROTO_ERROR];
}

static int src_wrong_dir(struct fz_peer *p)
{
	static const uint8_t empty[] = {PROTO_READY, PROTO_RUNNING,
					PROTO_COMPLETE};
	uint64_t gpa = PAGE_SIZE * fz_below(p, 64);

	switch (fz_below(p, 5)) {
	case 0:
		return src_out(p,
			       proto_hello_ack_encode(p->fbuf, FZ_FBUF,
						      PROTO_CAP_ZSTD),
			       false);
	case 1:
		return src_out(p,
			       proto_page_req_encode(p->fbuf, FZ_FBUF, &gpa, 1),
			       false);
	case 2:
		return src_out(p,
			       proto_resume_ack_encode(p->fbuf, FZ_FBUF,
						       fz_cookie(p), 0),
			       false);
	default:
		return src_out(p,
			       proto_empty_encode(p->fbuf, FZ_FBUF,
						  empty[fz_below(p, 3)]),
			       false);
	}
}

/* A connection that is not the migration's, then gone. */
static void src_stray(struct fz_peer *p)
{
	struct fz_src *s = src_of(p);

	if (fz_connect(p, 2, p->port))
		return;
	if (fz_chance(p, 50))
		fz_put(p, 2,
		       fz_chance(p, 50)
			       ? proto_urgent_hello_encode(p->fbuf, FZ_FBUF,
							   fz_cookie(p))
			       : proto_empty_encode(p->fbuf, FZ_FBUF,
						    PROTO_SYNC),
		       s->stall_ms);
	fz_pump(p, (int)fz_below(p, 200));
	fz_close(p, 2);
}

static int src_exec(struct fz_peer *p, const struct fz_step *st)
{
	struct fz_src *s = src_of(p);
	int wait = (int)s->stall_ms + 3000;
	uint32_t nr;
	int n;

	switch (st->op) {
	case S_HELLO:
	case S_HELLO_BAD:
		return src_hello(p, st->op == S_HELLO_BAD);
	case S_PAGES_ALL:
	case S_PAGES_RAND:
		return src_pages(p, st->op == S_PAGES_ALL,
				 st->op == S_PAGES_RAND);
	case S_SYNC:
		return src_out(p,
			       proto_empty_encode(p->fbuf, FZ_FBUF, PROTO_SYNC),
			       false);
	case S_WAIT_SYNC:
		fz_wait(p, src_synced, wait);
		return 0;
	case S_RAM_END:
		s->ram_end = s->ram_end || s->framed;
		return src_out(
			p, proto_empty_encode(p->fbuf, FZ_FBUF, PROTO_RAM_END),
			false);
	case S_STATE:
	case S_STATE_RAND:
	case S_STATE_TRUNC:
		return src_state(p, st->arg, st->op);
	case S_STATE_END:
		s->state_end = s->state_end || src_all_sections(s);
		return src_out(
			p,
			proto_empty_encode(p->fbuf, FZ_FBUF, PROTO_STATE_END),
			false);
	case S_VERIFY:
	case S_VERIFY_RAND:
		/* The honest plan sends it only when it was agreed. */
		if (st->op == S_VERIFY && s->honest &&
		    (!(s->acked & PROTO_CAP_VERIFY) || s->postcopy))
			return 0;
		return src_verify(p, st->op == S_VERIFY);
	case S_WAIT_READY:
		fz_wait(p, src_ready, wait);
		return 0;
	case S_GO:
		return src_go(p);
	case S_WAIT_RUNNING:
		fz_wait(p, src_running, wait);
		return 0;
	case S_DISCARD:
		n = fz_discard_frame(p, p->fbuf, s->t->mem->nr_pages, &nr);
		s->discard_runs += n > 0 ? nr : 0;
		return src_out(p, n, false);
	case S_POSTCOPY:
		s->cookie = s->cookie ? s->cookie : fz_cookie(p);
		s->ram_end = s->ram_end || s->framed;
		return src_out(p,
			       proto_postcopy_encode(
				       p->fbuf, FZ_FBUF, s->cookie,
				       fz_chance(p, 90) ? s->discard_runs
							: s->discard_runs + 1),
			       false);
	case S_URGENT:
	case S_URGENT_BAD:
		s->cookie = s->cookie ? s->cookie : fz_cookie(p);
		if (fz_connect(p, 1, p->port))
			return 0;
		s->answer_req = st->op == S_URGENT;
		n = proto_urgent_hello_encode(
			p->fbuf, FZ_FBUF,
			st->op == S_URGENT ? s->cookie : fz_cookie(p));
		fz_put(p, 1, n, s->stall_ms); /* a refusal is the dest's */
		return 0;
	case S_POSTCOPY_END:
		return src_out(p,
			       proto_empty_encode(p->fbuf, FZ_FBUF,
						  PROTO_POSTCOPY_END),
			       false);
	case S_WAIT_COMPLETE:
		fz_wait(p, src_complete, wait);
		return 0;
	case S_ERROR:
		return src_out(p, fz_error_frame(p), false);
	case S_RESUME:
		return src_out(p,
			       proto_resume_encode(p->fbuf, FZ_FBUF,
						   s->cookie ? s->cookie
							     : fz_cookie(p)),
			       false);
	case S_WRONG_DIR:
		return src_wrong_dir(p);
	case S_SLEEP:
	case S_SLEEP_LONG:
		fz_sleep(p, s->stall_ms, st->op == S_SLEEP_LONG);
		return 0;
	case S_HALF:
		fz_half(p, 0, proto_empty_encode(p->fbuf, FZ_FBUF, PROTO_SYNC),
			s->stall_ms);
		return -1;
	default:
		src_stray(p);
		return 0;
	}
}

void fz_src_run(struct fz_peer *p)
{
	struct fz_src *s = src_of(p);
	struct fz_plan pl = {.n = 0};

	p->on_frame = src_on_frame;
	p->on_idle = src_on_idle;
	src_plan(p, &pl);
	if (fz_connect(p, 0, p->port)) {
		fz_trace(s->trace, "no-connect");
		fz_plan_end(p, s->trace);
		return;
	}
	for (int i = 0; i < pl.n && !atomic_load(&p->stop); i++) {
		fz_trace(s->trace, src_names[pl.s[i].op]);
		if (src_exec(p, &pl.s[i]) || !fz_open(p, 0))
			break;
	}
	/* Honest post-copy: let the last requests be answered first. */
	if (s->honest)
		fz_pump(p, 100);
	s->answer_req = false;
	fz_plan_end(p, s->trace);
}
