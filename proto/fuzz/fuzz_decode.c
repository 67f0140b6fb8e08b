/* SPDX-License-Identifier: MIT */
/*
 * fuzz_decode.c - libFuzzer target over the whole wire format. The input
 * is taken as a frame: the header is decoded, the CRC checked as sent,
 * then patched to be right (so that mutations get past it) and checked
 * again, and the payload - copied into a buffer of exactly its length, so
 * that ASan sees any read past its end - goes to the decoder for its type.
 * What a decoder accepts must survive a round trip: re-encoding gives the
 * same bytes (or, for zstd pages, the same pages), so a decoder that lets
 * through something the encoder would never produce is a finding too.
 *
 * With PROTO_FUZZ_SEED_DIR set in the environment, the binary writes a
 * seed corpus of valid frames into that directory and exits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "common/page.h"
#include "proto/fuzz/fuzz.h"
#include "proto/proto.h"

#define fuzz_assert(cond)                                                      \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "fuzz: %s:%d: %s\n", __FILE__,         \
				__LINE__, #cond);                              \
			__builtin_trap();                                      \
		}                                                              \
	} while (0)

static char err[512];
static uint8_t *out; /* re-encoding buffer, out_cap bytes */
static size_t out_cap;
static struct proto_batch batch, batch2;
static struct proto_hello hello, local;
static struct proto_run runs[PROTO_MAX_DISCARD_RUNS];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = getenv("PROTO_FUZZ_SEED_DIR");

	(void)argc;
	(void)argv;
	if (dir) {
		int ret = fuzz_write_seeds(dir);

		fprintf(stderr, "fuzz: seeds into %s: %s\n", dir,
			ret ? "failed" : "written");
		exit(ret ? 1 : 0);
	}
	out_cap = proto_batch_max_frame();
	if (out_cap < PROTO_DISCARD_MAX_FRAME)
		out_cap = PROTO_DISCARD_MAX_FRAME;
	out = malloc(out_cap);
	if (!out)
		abort();
	local.version = PROTO_VERSION;
	local.page_size = PAGE_SIZE;
	local.mem_size = 1ULL << 30;
	local.nr_regions = 1;
	local.regions[0].size = 1ULL << 30;
	local.nr_vcpus = 2;
	return 0;
}

/* The frame just encoded into out carries exactly payload p. */
static void same_payload(int n, const uint8_t *p, size_t len)
{
	fuzz_assert(n >= PROTO_HDR_SIZE);
	fuzz_assert((size_t)n - PROTO_HDR_SIZE == len);
	fuzz_assert(memcmp(out + PROTO_HDR_SIZE, p, len) == 0);
}

static void fuzz_hello(const uint8_t *p, size_t len)
{
	if (proto_hello_decode(p, len, &hello, err, sizeof(err)))
		return;
	proto_hello_compare(&local, &hello, err, sizeof(err));
	if (hello.version != PROTO_VERSION)
		return;
	fuzz_assert(proto_hello_compare(&hello, &hello, err, sizeof(err)) == 0);
	same_payload(proto_hello_encode(out, PROTO_HELLO_MAX_FRAME, &hello), p,
		     len);
}

/* With PROTO_CAP_CHANNELS, HELLO_ACK also carries the channels' count and
 * token: only the _chan pair round-trips every HELLO_ACK. */
static void fuzz_hello_ack(const uint8_t *p, size_t len)
{
	uint64_t caps, token;
	uint32_t nr;

	if (proto_hello_ack_chan_decode(p, len, &caps, &nr, &token, err,
					sizeof(err)))
		return;
	same_payload(proto_hello_ack_chan_encode(out, 64, caps, nr, token), p,
		     len);
}

/* A live frame again: the head, then its pages gathered after it. */
static int fuzz_pages_live(void)
{
	static struct iovec iov[PROTO_MAX_BATCH];
	int niov, n = proto_pages_encode_head(out, out_cap, &batch, true, iov,
					      &niov);

	for (int i = 0; n > 0 && i < niov; i++) {
		memcpy(out + n, iov[i].iov_base, iov[i].iov_len);
		n += (int)iov[i].iov_len;
	}
	return n;
}

/*
 * The head decoder (a receiver that splices the data) agrees with the full
 * one: what it takes decodes whole to the same runs, and every live raw
 * frame whose runs are within its first bytes is taken.
 */
static void fuzz_pages_head(const uint8_t *p, size_t len)
{
	size_t have = len < 4096 ? len : 4096, head = 0, runs_end;
	int r = proto_pages_decode_head(p, have, len, &batch2, &head, err,
					sizeof(err));
	int full = proto_pages_decode(p, len, &batch, err, sizeof(err));

	if (full) {
		fuzz_assert(r != 0);
		return;
	}
	runs_end = len - (size_t)batch.nr_data * PAGE_SIZE;
	if (!(p[2] & PROTO_PAGES_LIVE) || runs_end > have) {
		fuzz_assert(r != 0);
		return;
	}
	fuzz_assert(r == 0 && head == runs_end);
	fuzz_assert(batch2.nr_runs == batch.nr_runs &&
		    batch2.nr_data == batch.nr_data);
	fuzz_assert(memcmp(batch2.runs, batch.runs,
			   batch.nr_runs * sizeof(batch.runs[0])) == 0);
}

static void fuzz_pages(const uint8_t *p, size_t len)
{
	size_t cap = out_cap;
	int n;

	fuzz_pages_head(p, len);
	if (proto_pages_decode(p, len, &batch, err, sizeof(err)))
		return;
	if (p[2] & PROTO_PAGES_LIVE) {
		same_payload(fuzz_pages_live(), p, len);
		return;
	}
	n = proto_pages_encode(out, cap, &batch, 0);
	if (!(p[2] & PROTO_PAGES_ZSTD)) {
		same_payload(n, p, len);
		return;
	}
	/* zstd: the raw re-encoding must decode to the same pages */
	fuzz_assert(n > PROTO_HDR_SIZE);
	fuzz_assert(proto_pages_decode(out + PROTO_HDR_SIZE, n - PROTO_HDR_SIZE,
				       &batch2, err, sizeof(err)) == 0);
	fuzz_assert(batch2.nr_runs == batch.nr_runs);
	fuzz_assert(batch2.nr_data == batch.nr_data);
	fuzz_assert(memcmp(batch2.runs, batch.runs,
			   batch.nr_runs * sizeof(batch.runs[0])) == 0);
	fuzz_assert(memcmp(batch2.raw, batch.raw,
			   (size_t)batch.nr_data * PAGE_SIZE) == 0);
}

static void fuzz_state(const uint8_t *p, size_t len)
{
	struct proto_rec_reader r;
	struct proto_state s;
	const uint8_t *data;
	uint32_t tag, rlen;
	size_t sum = 0;

	if (proto_state_decode(p, len, &s, err, sizeof(err)))
		return;
	proto_rec_reader_init(&r, s.blob, s.len);
	while (proto_rec_next(&r, &tag, &data, &rlen) == 1) {
		fuzz_assert(data >= s.blob && data + rlen <= s.blob + s.len);
		sum += rlen;
	}
	fuzz_assert(sum <= s.len);
	same_payload(proto_state_encode(out, out_cap, &s), p, len);
}

static void fuzz_error(const uint8_t *p, size_t len)
{
	static char reason[PROTO_REASON_MAX + 1];
	bool printable = true;
	int code;

	if (proto_error_decode(p, len, &code, reason, sizeof(reason), err,
			       sizeof(err)))
		return;
	for (size_t i = 6; i < len; i++)
		printable &= p[i] >= 0x20 && p[i] <= 0x7e;
	fuzz_assert(strlen(reason) == len - 6);
	if (printable)
		same_payload(proto_error_encode(out, 64 + PROTO_REASON_MAX,
						code, reason),
			     p, len);
}

static void fuzz_verify(const uint8_t *p, size_t len)
{
	struct proto_digest d[PROTO_MAX_REGIONS];
	uint32_t nr;

	if (proto_verify_decode(p, len, d, PROTO_MAX_REGIONS, &nr, err,
				sizeof(err)))
		return;
	same_payload(proto_verify_encode(out, PROTO_VERIFY_MAX_FRAME, d, nr), p,
		     len);
}

static void fuzz_discard(const uint8_t *p, size_t len)
{
	uint32_t nr;

	if (proto_discard_decode(p, len, runs, PROTO_MAX_DISCARD_RUNS, &nr, err,
				 sizeof(err)))
		return;
	fuzz_assert(nr >= 1 && nr <= PROTO_MAX_DISCARD_RUNS);
	for (uint32_t i = 0; i < nr; i++) {
		fuzz_assert(runs[i].npages && !runs[i].flags);
		fuzz_assert(runs[i].gpa % PAGE_SIZE == 0);
		fuzz_assert((uint64_t)runs[i].npages * PAGE_SIZE - 1 <=
			    UINT64_MAX - runs[i].gpa);
	}
	same_payload(
		proto_discard_encode(out, PROTO_DISCARD_MAX_FRAME, runs, nr), p,
		len);
}

/* POSTCOPY and RESUME_ACK: cookie, nr_runs. */
static void fuzz_cookie_runs(unsigned int type, const uint8_t *p, size_t len)
{
	uint64_t cookie, nr;
	int ret, n;

	if (type == PROTO_POSTCOPY)
		ret = proto_postcopy_decode(p, len, &cookie, &nr, err,
					    sizeof(err));
	else
		ret = proto_resume_ack_decode(p, len, &cookie, &nr, err,
					      sizeof(err));
	if (ret) {
		fuzz_assert(cookie == 0 && nr == 0);
		return;
	}
	fuzz_assert(cookie != 0);
	if (type == PROTO_POSTCOPY)
		n = proto_postcopy_encode(out, PROTO_POSTCOPY_FRAME, cookie,
					  nr);
	else
		n = proto_resume_ack_encode(out, PROTO_POSTCOPY_FRAME, cookie,
					    nr);
	same_payload(n, p, len);
}

/* URGENT_HELLO and RESUME: cookie. */
static void fuzz_cookie(unsigned int type, const uint8_t *p, size_t len)
{
	uint64_t cookie;
	int ret, n;

	if (type == PROTO_URGENT_HELLO)
		ret = proto_urgent_hello_decode(p, len, &cookie, err,
						sizeof(err));
	else
		ret = proto_resume_decode(p, len, &cookie, err, sizeof(err));
	if (ret) {
		fuzz_assert(cookie == 0);
		return;
	}
	fuzz_assert(cookie != 0);
	if (type == PROTO_URGENT_HELLO)
		n = proto_urgent_hello_encode(out, PROTO_COOKIE_FRAME, cookie);
	else
		n = proto_resume_encode(out, PROTO_COOKIE_FRAME, cookie);
	same_payload(n, p, len);
}

static void fuzz_page_req(const uint8_t *p, size_t len)
{
	uint64_t gpa[PROTO_MAX_PAGE_REQ];
	uint32_t nr;

	if (proto_page_req_decode(p, len, gpa, &nr, err, sizeof(err))) {
		fuzz_assert(nr == 0);
		return;
	}
	fuzz_assert(nr >= 1 && nr <= PROTO_MAX_PAGE_REQ);
	for (uint32_t i = 0; i < nr; i++)
		fuzz_assert(gpa[i] % PAGE_SIZE == 0);
	same_payload(
		proto_page_req_encode(out, PROTO_PAGE_REQ_MAX_FRAME, gpa, nr),
		p, len);
}

static void fuzz_payload(unsigned int type, const uint8_t *p, size_t len)
{
	switch (type) {
	case PROTO_HELLO:
		fuzz_hello(p, len);
		break;
	case PROTO_HELLO_ACK:
		fuzz_hello_ack(p, len);
		break;
	case PROTO_PAGES:
		fuzz_pages(p, len);
		break;
	case PROTO_STATE:
		fuzz_state(p, len);
		break;
	case PROTO_ERROR:
		fuzz_error(p, len);
		break;
	case PROTO_VERIFY:
		fuzz_verify(p, len);
		break;
	case PROTO_DISCARD:
		fuzz_discard(p, len);
		break;
	case PROTO_POSTCOPY:
	case PROTO_RESUME_ACK:
		fuzz_cookie_runs(type, p, len);
		break;
	case PROTO_URGENT_HELLO:
	case PROTO_RESUME:
		fuzz_cookie(type, p, len);
		break;
	case PROTO_PAGE_REQ:
		fuzz_page_req(p, len);
		break;
	default:
		if (proto_empty_decode(p, len, type, err, sizeof(err)) == 0)
			fuzz_assert(len == 0);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_hdr h, h2;
	uint8_t *f;
	int good;

	if (size < PROTO_HDR_SIZE ||
	    proto_hdr_decode(data, &h, err, sizeof(err)) ||
	    h.len > size - PROTO_HDR_SIZE) {
		fuzz_assert(proto_frame_decode(data, size, &h, err,
					       sizeof(err)) < 0);
		return 0;
	}
	good = proto_frame_check(data, &h, err, sizeof(err)) == 0;
	fuzz_assert(good ==
		    (proto_frame_decode(data, size, &h, err, sizeof(err)) > 0));
	f = malloc(PROTO_HDR_SIZE + h.len);
	if (!f)
		return 0;
	memcpy(f, data, PROTO_HDR_SIZE + h.len);
	proto_frame_seal(f, (enum proto_type)h.type, h.len);
	fuzz_assert(memcmp(f, data, PROTO_HDR_SIZE - 4) == 0);
	fuzz_assert(proto_hdr_decode(f, &h2, err, sizeof(err)) == 0);
	fuzz_assert(proto_frame_check(f, &h2, err, sizeof(err)) == 0);
	fuzz_assert(good == (h2.crc == h.crc));
	fuzz_payload(h.type, f + PROTO_HDR_SIZE, h.len);
	free(f);
	return 0;
}
