// SPDX-License-Identifier: MIT
/*
 * fuzz_plans.c - what the plans of both fake peers share (fuzz_plans.h):
 * steps and their mutations, pauses, early EOF, the end of a plan. A plan
 * is a list of steps, made from the seed before it runs: an honest
 * migration perturbed by a few mutations, or a random walk. The frames are
 * always well encoded (proto/'s encoders): what is fuzzed is their order,
 * timing and content, not their framing (proto/fuzz does that), but for the
 * early EOF, which cuts one frame short.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "tests/kvm/fuzz_plans.h"

void fz_plan_add(struct fz_plan *pl, int op, int arg)
{
	if (pl->n < FZ_MAX_STEPS)
		pl->s[pl->n++] = (struct fz_step){(uint8_t)op, (uint8_t)arg};
}

/*
 * 1..3 mutations: drop, repeat, swap neighbours, insert a random step, cut
 * the tail. rnd(p) makes a random step.
 */
void fz_plan_mutate(struct fz_peer *p, struct fz_plan *pl,
		    struct fz_step (*rnd)(struct fz_peer *p))
{
	int k = 1 + (int)fz_below(p, 3);

	while (k-- && pl->n > 1) {
		int i = (int)fz_below(p, (uint32_t)pl->n);

		switch (fz_below(p, 5)) {
		case 0:
			memmove(&pl->s[i], &pl->s[i + 1],
				(size_t)(pl->n - i - 1) * sizeof(pl->s[0]));
			pl->n--;
			break;
		case 1:
		case 3:
			if (pl->n == FZ_MAX_STEPS)
				break;
			memmove(&pl->s[i + 1], &pl->s[i],
				(size_t)(pl->n - i) * sizeof(pl->s[0]));
			pl->n++;
			if (fz_chance(p, 50))
				pl->s[i] = rnd(p);
			break;
		case 2:
			if (i + 1 < pl->n) {
				struct fz_step t = pl->s[i];

				pl->s[i] = pl->s[i + 1];
				pl->s[i + 1] = t;
			}
			break;
		default:
			pl->n = i + 1;
		}
	}
}

void fz_trace(char *t, const char *tok)
{
	size_t n = strlen(t);

	if (n + strlen(tok) + 2 < FZ_TRACE)
		snprintf(t + n, FZ_TRACE - n, "%s%s", n ? " " : "", tok);
}

/* A pause: short (under half the stall limit) or long (past it). */
void fz_sleep(struct fz_peer *p, unsigned int stall_ms, bool longer)
{
	fz_pump(p, longer ? (int)(stall_ms + 1500)
			  : (int)fz_below(p, stall_ms / 2 + 1));
}

/* Send the frame encoded in p->fbuf (n: the encoder's result) on ci. */
int fz_put(struct fz_peer *p, int ci, int n, unsigned int stall_ms)
{
	if (n < 0)
		return -1;
	return fz_send(p, ci, p->fbuf, (size_t)n, (int)stall_ms + 2000);
}

/* Half of a frame, then EOF: the real side must take it as a break. */
void fz_half(struct fz_peer *p, int ci, int n, unsigned int stall_ms)
{
	if (n <= 1)
		return;
	fz_send(p, ci, p->fbuf, 1 + fz_below(p, (uint32_t)n - 1),
		(int)stall_ms);
	fz_close(p, ci);
}

int fz_error_frame(struct fz_peer *p)
{
	return proto_error_encode(p->fbuf, FZ_FBUF, 1 + (int)fz_below(p, 130),
				  "the fuzzer gives up");
}

int fz_discard_frame(struct fz_peer *p, uint8_t *buf, uint64_t pages,
		     uint32_t *nr)
{
	struct proto_run r[8];

	*nr = 1 + fz_below(p, 8);
	for (uint32_t i = 0; i < *nr; i++) {
		uint64_t at = fz_below(p, (uint32_t)pages);

		r[i] = (struct proto_run){at * PAGE_SIZE, 1 + fz_below(p, 64),
					  0};
		if (fz_chance(p, 5))
			r[i].gpa = (pages + fz_below(p, 1000)) * PAGE_SIZE;
	}
	return proto_discard_encode(buf, PROTO_DISCARD_MAX_FRAME, r, *nr);
}

uint64_t fz_cookie(struct fz_peer *p)
{
	return fz_rand(p) | 1;
}

/* The end of a plan: close, half-close, or fall silent (a stall). */
void fz_plan_end(struct fz_peer *p, char *tr)
{
	uint32_t how = fz_below(p, 10);

	if (how < 5) {
		fz_trace(tr, "close");
		for (int i = 0; i < FZ_MAX_CONN; i++)
			fz_close(p, i);
	} else if (how < 7) {
		fz_trace(tr, "shut");
		fz_shutdown(p, 0);
	} else {
		fz_trace(tr, "silent");
	}
	atomic_store(&p->plan_end, clock_now_ms());
	while (!atomic_load(&p->stop))
		fz_pump(p, 50);
}
