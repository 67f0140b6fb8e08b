/* SPDX-License-Identifier: MIT */
/*
 * postcopy.c - the messages of post-copy migration: DISCARD (runs of pages
 * the destination does not hold valid: the source's discard set before the
 * switch, the destination's missing pages after a RESUME), POSTCOPY and
 * RESUME_ACK (a 64-bit cookie and the number of DISCARD runs that came
 * before, which ends the list), URGENT_HELLO and RESUME (the cookie alone:
 * the first frame of the urgent connection, and of a new main connection
 * after a break), and PAGE_REQ (a few page addresses the destination's
 * fault thread needs now). Every count, address, run and cookie is checked
 * by the decoder, and the encoder refuses what the decoder would refuse.
 * The empty ones (POSTCOPY_END, COMPLETE) are in msg.c.
 */
#include <inttypes.h>
#include <string.h>

#include "common/page.h"
#include "proto/wire.h"

#define DISCARD_FIXED 4			     /* nr_runs */
#define RUN_SIZE      PROTO_DISCARD_RUN_SIZE /* gpa, npages, flags */

_Static_assert(PROTO_DISCARD_MAX_FRAME - PROTO_HDR_SIZE <= PROTO_MAX_PAYLOAD,
	       "a full DISCARD frame must fit in one payload");
_Static_assert(PROTO_DISCARD_MAX_FRAME ==
		       PROTO_HDR_SIZE + DISCARD_FIXED +
			       PROTO_MAX_DISCARD_RUNS * RUN_SIZE,
	       "PROTO_DISCARD_MAX_FRAME is out of date");
_Static_assert(PROTO_PAGE_REQ_MAX_FRAME ==
		       PROTO_HDR_SIZE + 4 + PROTO_MAX_PAGE_REQ * 8,
	       "PROTO_PAGE_REQ_MAX_FRAME is out of date");

/* ---- DISCARD: u32 nr_runs, nr_runs x {u64 gpa, u32 npages, u32 flags} ---- */

/*
 * 0 when run i is valid, else -EPROTO with the reason in c's error. The
 * encoder checks with a cursor that has no error buffer.
 */
static int discard_check_run(struct proto_cur *c, uint32_t i,
			     const struct proto_run *r)
{
	if (r->flags)
		return proto_cur_fail(c, "run %u flags 0x%x not 0", i,
				      r->flags);
	if (r->npages == 0)
		return proto_cur_fail(c, "run %u has no pages", i);
	if (r->gpa % PAGE_SIZE)
		return proto_cur_fail(
			c, "run %u gpa 0x%" PRIx64 " not page-aligned", i,
			r->gpa);
	if ((uint64_t)r->npages * PAGE_SIZE - 1 > UINT64_MAX - r->gpa)
		return proto_cur_fail(
			c, "run %u gpa 0x%" PRIx64 " + %u pages overflows", i,
			r->gpa, r->npages);
	return 0;
}

int proto_discard_encode(uint8_t *buf, size_t cap, const struct proto_run *r,
			 uint32_t nr)
{
	size_t len = DISCARD_FIXED + (size_t)nr * RUN_SIZE;
	uint8_t *q = buf + PROTO_HDR_SIZE;
	struct proto_cur c;
	int ret;

	if (nr < 1 || nr > PROTO_MAX_DISCARD_RUNS || !r)
		return -EINVAL;
	proto_cur_init(&c, NULL, 0, "DISCARD", NULL, 0);
	for (uint32_t i = 0; i < nr; i++)
		if (discard_check_run(&c, i, &r[i]))
			return -EINVAL;
	ret = proto_frame_room(cap, len);
	if (ret)
		return ret;
	q = proto_put32(q, nr);
	for (uint32_t i = 0; i < nr; i++) {
		q = proto_put64(q, r[i].gpa);
		q = proto_put32(q, r[i].npages);
		q = proto_put32(q, r[i].flags);
	}
	proto_frame_seal(buf, PROTO_DISCARD, (uint32_t)len);
	return PROTO_HDR_SIZE + (int)len;
}

int proto_discard_decode(const uint8_t *p, size_t len, struct proto_run *r,
			 uint32_t max, uint32_t *nr, char *err, size_t errlen)
{
	uint32_t lim =
		max < PROTO_MAX_DISCARD_RUNS ? max : PROTO_MAX_DISCARD_RUNS;
	struct proto_cur c;
	const uint8_t *q;
	uint32_t n;

	*nr = 0;
	proto_cur_init(&c, p, len, "DISCARD", err, errlen);
	if (proto_cur_u32(&c, "nr_runs", &n))
		return -EPROTO;
	if (n == 0)
		return proto_cur_fail(&c, "nr_runs is 0");
	if (n > lim)
		return proto_cur_fail(&c, "nr_runs %u exceeds %u", n, lim);
	if (proto_cur_need(&c, (size_t)n * RUN_SIZE, "runs"))
		return -EPROTO;
	q = proto_cur_take(&c, (size_t)n * RUN_SIZE);
	if (proto_cur_end(&c))
		return -EPROTO;
	for (uint32_t i = 0; i < n; i++, q += RUN_SIZE) {
		r[i].gpa = get_le64(q);
		r[i].npages = get_le32(q + 8);
		r[i].flags = get_le32(q + 12);
		if (discard_check_run(&c, i, &r[i]))
			return -EPROTO;
	}
	*nr = n;
	return 0;
}

/* ---- POSTCOPY, RESUME_ACK: u64 cookie, u64 nr_runs ----------------------- */

static int cookie_runs_encode(uint8_t *buf, size_t cap, enum proto_type type,
			      uint64_t cookie, uint64_t nr_runs)
{
	int ret;

	if (!cookie)
		return -EINVAL;
	ret = proto_frame_room(cap, 16);
	if (ret)
		return ret;
	put_le64(buf + PROTO_HDR_SIZE, cookie);
	put_le64(buf + PROTO_HDR_SIZE + 8, nr_runs);
	proto_frame_seal(buf, type, 16);
	return PROTO_HDR_SIZE + 16;
}

static int cookie_runs_decode(const uint8_t *p, size_t len,
			      enum proto_type type, uint64_t *cookie,
			      uint64_t *nr_runs, char *err, size_t errlen)
{
	struct proto_cur c;

	*cookie = 0;
	*nr_runs = 0;
	proto_cur_init(&c, p, len, proto_type_name(type), err, errlen);
	if (proto_cur_u64(&c, "cookie", cookie) ||
	    proto_cur_u64(&c, "nr_runs", nr_runs) || proto_cur_end(&c))
		goto fail;
	if (!*cookie) {
		proto_cur_fail(&c, "cookie is 0");
		goto fail;
	}
	return 0;
fail:
	*cookie = 0;
	*nr_runs = 0;
	return -EPROTO;
}

int proto_postcopy_encode(uint8_t *buf, size_t cap, uint64_t cookie,
			  uint64_t nr_runs)
{
	return cookie_runs_encode(buf, cap, PROTO_POSTCOPY, cookie, nr_runs);
}

int proto_postcopy_decode(const uint8_t *p, size_t len, uint64_t *cookie,
			  uint64_t *nr_runs, char *err, size_t errlen)
{
	return cookie_runs_decode(p, len, PROTO_POSTCOPY, cookie, nr_runs, err,
				  errlen);
}

int proto_resume_ack_encode(uint8_t *buf, size_t cap, uint64_t cookie,
			    uint64_t nr_runs)
{
	return cookie_runs_encode(buf, cap, PROTO_RESUME_ACK, cookie, nr_runs);
}

int proto_resume_ack_decode(const uint8_t *p, size_t len, uint64_t *cookie,
			    uint64_t *nr_runs, char *err, size_t errlen)
{
	return cookie_runs_decode(p, len, PROTO_RESUME_ACK, cookie, nr_runs,
				  err, errlen);
}

/* ---- URGENT_HELLO, RESUME: u64 cookie ------------------------------------ */

/* proof: NULL for the cookie alone (plaintext), else PROTO_PROOF_LEN. */
static int cookie_encode(uint8_t *buf, size_t cap, enum proto_type type,
			 uint64_t cookie, const uint8_t *proof)
{
	uint32_t len = proof ? 8 + PROTO_PROOF_LEN : 8;
	int ret;

	if (!cookie)
		return -EINVAL;
	ret = proto_frame_room(cap, len);
	if (ret)
		return ret;
	put_le64(buf + PROTO_HDR_SIZE, cookie);
	if (proof)
		memcpy(buf + PROTO_HDR_SIZE + 8, proof, PROTO_PROOF_LEN);
	proto_frame_seal(buf, type, len);
	return PROTO_HDR_SIZE + (int)len;
}

/* proof NULL: the cookie alone; else a proof may follow (*has_proof). */
static int cookie_decode(const uint8_t *p, size_t len, enum proto_type type,
			 uint64_t *cookie, uint8_t *proof, bool *has_proof,
			 char *err, size_t errlen)
{
	struct proto_cur c;

	*cookie = 0;
	proto_cur_init(&c, p, len, proto_type_name(type), err, errlen);
	if (proto_cur_u64(&c, "cookie", cookie))
		return -EPROTO;
	*has_proof = proof && proto_cur_left(&c) == PROTO_PROOF_LEN;
	if (*has_proof)
		memcpy(proof, proto_cur_take(&c, PROTO_PROOF_LEN),
		       PROTO_PROOF_LEN);
	if (proto_cur_end(&c)) {
		*cookie = 0;
		return -EPROTO;
	}
	if (!*cookie)
		return proto_cur_fail(&c, "cookie is 0");
	return 0;
}

int proto_urgent_hello_encode(uint8_t *buf, size_t cap, uint64_t cookie)
{
	return cookie_encode(buf, cap, PROTO_URGENT_HELLO, cookie, NULL);
}

int proto_urgent_hello_decode(const uint8_t *p, size_t len, uint64_t *cookie,
			      char *err, size_t errlen)
{
	bool has;

	return cookie_decode(p, len, PROTO_URGENT_HELLO, cookie, NULL, &has,
			     err, errlen);
}

int proto_resume_encode(uint8_t *buf, size_t cap, uint64_t cookie)
{
	return cookie_encode(buf, cap, PROTO_RESUME, cookie, NULL);
}

int proto_resume_decode(const uint8_t *p, size_t len, uint64_t *cookie,
			char *err, size_t errlen)
{
	bool has;

	return cookie_decode(p, len, PROTO_RESUME, cookie, NULL, &has, err,
			     errlen);
}

int proto_cookie_proof_encode(uint8_t *buf, size_t cap, enum proto_type type,
			      uint64_t cookie, const uint8_t *proof)
{
	if (type != PROTO_URGENT_HELLO && type != PROTO_RESUME)
		return -EINVAL;
	return cookie_encode(buf, cap, type, cookie, proof);
}

int proto_cookie_proof_decode(const uint8_t *p, size_t len,
			      enum proto_type type, uint64_t *cookie,
			      uint8_t *proof, bool *has_proof, char *err,
			      size_t errlen)
{
	*has_proof = false;
	if (type != PROTO_URGENT_HELLO && type != PROTO_RESUME)
		return -EINVAL;
	return cookie_decode(p, len, type, cookie, proof, has_proof, err,
			     errlen);
}

/* ---- PAGE_REQ: u32 nr, nr x u64 gpa -------------------------------------- */

int proto_page_req_encode(uint8_t *buf, size_t cap, const uint64_t *gpa,
			  uint32_t nr)
{
	size_t len = 4 + (size_t)nr * 8;
	uint8_t *q = buf + PROTO_HDR_SIZE;
	int ret;

	if (nr < 1 || nr > PROTO_MAX_PAGE_REQ || !gpa)
		return -EINVAL;
	for (uint32_t i = 0; i < nr; i++)
		if (gpa[i] % PAGE_SIZE)
			return -EINVAL;
	ret = proto_frame_room(cap, len);
	if (ret)
		return ret;
	q = proto_put32(q, nr);
	for (uint32_t i = 0; i < nr; i++)
		q = proto_put64(q, gpa[i]);
	proto_frame_seal(buf, PROTO_PAGE_REQ, (uint32_t)len);
	return PROTO_HDR_SIZE + (int)len;
}

int proto_page_req_decode(const uint8_t *p, size_t len,
			  uint64_t gpa[PROTO_MAX_PAGE_REQ], uint32_t *nr,
			  char *err, size_t errlen)
{
	struct proto_cur c;
	const uint8_t *q;
	uint32_t n;

	*nr = 0;
	proto_cur_init(&c, p, len, "PAGE_REQ", err, errlen);
	if (proto_cur_u32(&c, "nr", &n))
		return -EPROTO;
	if (n < 1 || n > PROTO_MAX_PAGE_REQ)
		return proto_cur_fail(&c, "nr %u not in 1..%d", n,
				      PROTO_MAX_PAGE_REQ);
	if (proto_cur_need(&c, (size_t)n * 8, "gpas"))
		return -EPROTO;
	q = proto_cur_take(&c, (size_t)n * 8);
	if (proto_cur_end(&c))
		return -EPROTO;
	for (uint32_t i = 0; i < n; i++, q += 8) {
		gpa[i] = get_le64(q);
		if (gpa[i] % PAGE_SIZE)
			return proto_cur_fail(
				&c, "gpa %u 0x%" PRIx64 " not page-aligned", i,
				gpa[i]);
	}
	*nr = n;
	return 0;
}
