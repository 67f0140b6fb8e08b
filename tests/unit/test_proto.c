// SPDX-License-Identifier: MIT
/*
 * test_proto.c - unit tests for the migration wire format (proto/). CRC32C
 * in both implementations against known vectors; the frame layer (good
 * frames, every way a header can be wrong, every single-bit flip of a small
 * frame caught); round trips of every message; every decoder fed every
 * truncation of a valid payload, one trailing byte too many, and payloads
 * whose counts and lengths disagree; the handshake comparison with each
 * difference and its message; the post-copy messages (discard runs, cookies,
 * page requests) with every limit, alignment and overflow; and 100k random
 * frames through everything.
 * Payloads under test are copied into buffers of exactly their length so
 * that ASan builds catch any read past the end.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <zstd.h>

#include "common/page.h"
#include "proto/crc32c.h"
#include "proto/proto.h"

static char err[512];

/* ---- helpers ------------------------------------------------------------- */

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint32_t v)
{
	wr16(p, (uint16_t)v);
	wr16(p + 2, (uint16_t)(v >> 16));
}

static void wr64(uint8_t *p, uint64_t v)
{
	wr32(p, (uint32_t)v);
	wr32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static enum proto_type type_at(const uint8_t *p)
{
	return (enum proto_type)(p[4] | p[5] << 8);
}

/* A private copy of exactly len bytes: ASan sees any overread. */
static uint8_t *dup_exact(const uint8_t *p, size_t len)
{
	uint8_t *q = malloc(len ? len : 1);

	cr_assert_not_null(q);
	if (len)
		memcpy(q, p, len);
	return q;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void fill_random(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rnd();
}

static struct proto_batch *batch_new(void)
{
	struct proto_batch *b = malloc(sizeof(*b));

	cr_assert_not_null(b);
	proto_batch_init(b);
	return b;
}

static struct proto_batch *scratch_batch;
static struct proto_hello scratch_hello;
static struct proto_run scratch_runs[PROTO_MAX_DISCARD_RUNS];

static struct proto_batch *scratch(void)
{
	if (!scratch_batch)
		scratch_batch = batch_new();
	return scratch_batch;
}

/* The decoder for type on payload p: 0 or -errno. */
static int decode_any(unsigned int type, const uint8_t *p, size_t len)
{
	struct proto_state s;
	struct proto_digest d[PROTO_MAX_REGIONS];
	uint64_t gpas[PROTO_MAX_PAGE_REQ];
	char reason[64];
	uint64_t caps, cookie, runs;
	uint32_t nr;
	int code;

	switch (type) {
	case PROTO_HELLO:
		return proto_hello_decode(p, len, &scratch_hello, err,
					  sizeof(err));
	case PROTO_HELLO_ACK:
		return proto_hello_ack_decode(p, len, &caps, err, sizeof(err));
	case PROTO_PAGES:
		return proto_pages_decode(p, len, scratch(), err, sizeof(err));
	case PROTO_STATE:
		return proto_state_decode(p, len, &s, err, sizeof(err));
	case PROTO_ERROR:
		return proto_error_decode(p, len, &code, reason, sizeof(reason),
					  err, sizeof(err));
	case PROTO_VERIFY:
		return proto_verify_decode(p, len, d, PROTO_MAX_REGIONS, &nr,
					   err, sizeof(err));
	case PROTO_DISCARD:
		return proto_discard_decode(p, len, scratch_runs,
					    PROTO_MAX_DISCARD_RUNS, &nr, err,
					    sizeof(err));
	case PROTO_POSTCOPY:
		return proto_postcopy_decode(p, len, &cookie, &runs, err,
					     sizeof(err));
	case PROTO_RESUME_ACK:
		return proto_resume_ack_decode(p, len, &cookie, &runs, err,
					       sizeof(err));
	case PROTO_URGENT_HELLO:
		return proto_urgent_hello_decode(p, len, &cookie, err,
						 sizeof(err));
	case PROTO_RESUME:
		return proto_resume_decode(p, len, &cookie, err, sizeof(err));
	case PROTO_PAGE_REQ:
		return proto_page_req_decode(p, len, gpas, &nr, err,
					     sizeof(err));
	case PROTO_CHAN_HELLO: {
		uint8_t proof[PROTO_PROOF_LEN];
		uint64_t token;
		uint32_t index;
		bool has;

		return proto_chan_hello_decode(p, len, &token, &index, proof,
					       &has, err, sizeof(err));
	}
	default:
		return proto_empty_decode(p, len, type, err, sizeof(err));
	}
}

/* Every shorter payload and one with a trailing byte: all refused. */
static void check_truncations(unsigned int type, const uint8_t *frame, int flen)
{
	const uint8_t *p = frame + PROTO_HDR_SIZE;
	size_t len = (size_t)flen - PROTO_HDR_SIZE;
	uint8_t *q = dup_exact(p, len);

	cr_assert_eq(decode_any(type, q, len), 0, "%s: %s",
		     proto_type_name(type), err);
	free(q);
	for (size_t n = 0; n < len; n++) {
		q = dup_exact(p, n);
		cr_assert_neq(decode_any(type, q, n), 0,
			      "%s truncated to %zu of %zu accepted",
			      proto_type_name(type), n, len);
		free(q);
	}
	q = malloc(len + 1);
	memcpy(q, p, len);
	q[len] = 0;
	cr_assert_neq(decode_any(type, q, len + 1), 0,
		      "%s with a trailing byte accepted",
		      proto_type_name(type));
	cr_assert(strstr(err, "trailing") || strstr(err, "follow") ||
			  strstr(err, "must be empty"),
		  "%s", err);
	free(q);
}

/* ---- CRC32C -------------------------------------------------------------- */

struct crc_vector {
	uint8_t data[32];
	size_t len;
	uint32_t crc;
};

/* RFC 3720 (iSCSI) B.4 vectors plus the classic check value. */
static void crc_vectors(uint32_t (*fn)(uint32_t, const void *, size_t))
{
	uint8_t buf[32];

	cr_assert_eq(fn(0, "123456789", 9), 0xe3069283);
	cr_assert_eq(fn(0, "", 0), 0);
	memset(buf, 0, 32);
	cr_assert_eq(fn(0, buf, 32), 0x8a9136aa);
	memset(buf, 0xff, 32);
	cr_assert_eq(fn(0, buf, 32), 0x62a8ab43);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	cr_assert_eq(fn(0, buf, 32), 0x46dd794e);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	cr_assert_eq(fn(0, buf, 32), 0x113fdb5c);
	/* chaining: crc(a || b) == crc(crc(a), b) */
	cr_assert_eq(fn(fn(0, "1234", 4), "56789", 5), 0xe3069283);
}

Test(crc32c, software_vectors)
{
	crc_vectors(proto_crc32c_sw);
}

Test(crc32c, sse42_vectors)
{
	if (!proto_crc32c_hw_ok())
		cr_skip_test("CPU has no SSE4.2");
	crc_vectors(proto_crc32c_hw);
}

Test(crc32c, dispatch_vectors)
{
	crc_vectors(proto_crc32c);
}

Test(crc32c, paths_agree_on_every_length_and_alignment)
{
	uint8_t buf[600];

	if (!proto_crc32c_hw_ok())
		cr_skip_test("CPU has no SSE4.2");
	fill_random(buf, sizeof(buf));
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len + off <= 520; len++)
			cr_assert_eq(proto_crc32c_sw(0x1234, buf + off, len),
				     proto_crc32c_hw(0x1234, buf + off, len),
				     "off %zu len %zu", off, len);
}

/* ---- frame layer --------------------------------------------------------- */

Test(frame, good_frame_accepted)
{
	uint8_t buf[64];
	struct proto_hdr h;
	int n = proto_error_encode(buf, sizeof(buf), EIO, "disk");

	cr_assert_eq(n, PROTO_HDR_SIZE + 10);
	cr_assert_eq(rd32(buf), PROTO_MAGIC);
	cr_assert_eq(memcmp(buf, "MGIM", 4), 0);
	cr_assert_eq(proto_hdr_decode(buf, &h, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(h.type, PROTO_ERROR);
	cr_assert_eq(h.flags, 0);
	cr_assert_eq(h.len, 10);
	cr_assert_eq(proto_frame_check(buf, &h, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(proto_frame_decode(buf, n, &h, err, sizeof(err)), n);
	/* more bytes after the frame are the next frame's business */
	cr_assert_eq(proto_frame_decode(buf, sizeof(buf), &h, err, sizeof(err)),
		     n);
}

Test(frame, seal_crc_covers_header_with_zero_crc_then_payload)
{
	uint8_t buf[PROTO_HDR_SIZE + 5] = {0};
	uint8_t copy[sizeof(buf)];

	memcpy(buf + PROTO_HDR_SIZE, "hello", 5);
	proto_frame_seal(buf, PROTO_STATE, 5);
	memcpy(copy, buf, sizeof(buf));
	memset(copy + 12, 0, 4);
	cr_assert_eq(rd32(buf + 12), proto_crc32c(0, copy, sizeof(copy)));
}

Test(frame, truncated_header_and_payload)
{
	uint8_t buf[64];
	struct proto_hdr h;
	int n = proto_empty_encode(buf, sizeof(buf), PROTO_GO);

	cr_assert_eq(n, PROTO_HDR_SIZE);
	for (int len = 0; len < PROTO_HDR_SIZE; len++) {
		uint8_t *q = dup_exact(buf, len);

		cr_assert_eq(proto_frame_decode(q, len, &h, err, sizeof(err)),
			     -EPROTO);
		cr_assert(strstr(err, "frame: truncated header"), "%s", err);
		free(q);
	}
	n = proto_error_encode(buf, sizeof(buf), EIO, "boom");
	for (int len = PROTO_HDR_SIZE; len < n; len++) {
		uint8_t *q = dup_exact(buf, len);

		cr_assert_eq(proto_frame_decode(q, len, &h, err, sizeof(err)),
			     -EPROTO);
		cr_assert(strstr(err, "truncated payload"), "%s", err);
		free(q);
	}
}

Test(frame, bad_magic)
{
	uint8_t buf[PROTO_HDR_SIZE];
	struct proto_hdr h;

	proto_empty_encode(buf, sizeof(buf), PROTO_READY);
	wr32(buf, 0x12345678);
	cr_assert_eq(proto_hdr_decode(buf, &h, err, sizeof(err)), -EPROTO);
	cr_assert_str_eq(err, "frame: bad magic 0x12345678");
}

Test(frame, unknown_types)
{
	const unsigned int bad[] = {0, PROTO_TYPE_MAX, PROTO_TYPE_MAX + 1,
				    0x100, 0xffff};
	uint8_t buf[PROTO_HDR_SIZE];
	struct proto_hdr h;
	char want[64];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		proto_empty_encode(buf, sizeof(buf), PROTO_READY);
		wr16(buf + 4, (uint16_t)bad[i]);
		cr_assert_eq(proto_hdr_decode(buf, &h, err, sizeof(err)),
			     -EPROTO);
		snprintf(want, sizeof(want), "frame: unknown type %u", bad[i]);
		cr_assert_str_eq(err, want);
	}
	for (unsigned int t = 1; t < PROTO_TYPE_MAX; t++) {
		wr16(buf + 4, (uint16_t)t);
		cr_assert_eq(proto_hdr_decode(buf, &h, err, sizeof(err)), 0);
	}
}

Test(frame, nonzero_flags)
{
	uint8_t buf[PROTO_HDR_SIZE];
	struct proto_hdr h;

	for (int bit = 0; bit < 16; bit++) {
		proto_empty_encode(buf, sizeof(buf), PROTO_RUNNING);
		wr16(buf + 6, (uint16_t)(1u << bit));
		cr_assert_eq(proto_hdr_decode(buf, &h, err, sizeof(err)),
			     -EPROTO);
		cr_assert(strstr(err, "flags"), "%s", err);
	}
}

Test(frame, oversized_length)
{
	uint8_t buf[PROTO_HDR_SIZE];
	struct proto_hdr h;

	proto_empty_encode(buf, sizeof(buf), PROTO_STATE_END);
	wr32(buf + 8, 9437184);
	cr_assert_eq(proto_hdr_decode(buf, &h, err, sizeof(err)), -EPROTO);
	cr_assert_str_eq(err, "frame: payload length 9437184 exceeds 8388608");
	wr32(buf + 8, PROTO_MAX_PAYLOAD + 1);
	cr_assert_eq(proto_hdr_decode(buf, &h, err, sizeof(err)), -EPROTO);
	wr32(buf + 8, 0xffffffff);
	cr_assert_eq(proto_hdr_decode(buf, &h, err, sizeof(err)), -EPROTO);
	wr32(buf + 8, PROTO_MAX_PAYLOAD);
	cr_assert_eq(proto_hdr_decode(buf, &h, err, sizeof(err)), 0);
}

Test(frame, every_single_bit_flip_is_caught)
{
	uint8_t buf[64];
	struct proto_hdr h;
	int n = proto_error_encode(buf, sizeof(buf), EPIPE, "peer gone");

	cr_assert_gt(n, PROTO_HDR_SIZE);
	for (int bit = 0; bit < n * 8; bit++) {
		uint8_t *q = dup_exact(buf, n);

		q[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		cr_assert_eq(proto_frame_decode(q, n, &h, err, sizeof(err)),
			     -EPROTO, "flip of bit %d not caught", bit);
		free(q);
	}
}

Test(frame, crc_mismatch_message)
{
	uint8_t buf[64];
	struct proto_hdr h;
	char want[128];
	int n = proto_hello_ack_encode(buf, sizeof(buf), PROTO_CAP_ZSTD);
	uint32_t good = rd32(buf + 12);

	buf[PROTO_HDR_SIZE] ^= 1;
	cr_assert_eq(proto_hdr_decode(buf, &h, err, sizeof(err)), 0);
	cr_assert_eq(proto_frame_check(buf, &h, err, sizeof(err)), -EPROTO);
	buf[PROTO_HDR_SIZE] ^= 1;
	wr32(buf + 12, good ^ 0x80);
	cr_assert_eq(proto_frame_decode(buf, n, &h, err, sizeof(err)), -EPROTO);
	snprintf(want, sizeof(want),
		 "frame: crc mismatch (got 0x%08x, computed 0x%08x)",
		 good ^ 0x80, good);
	cr_assert_str_eq(err, want);
}

Test(frame, type_names)
{
	static const char *const names[] = {
		"unknown",    "HELLO",	      "HELLO_ACK", "PAGES",
		"RAM_END",    "STATE",	      "STATE_END", "READY",
		"GO",	      "RUNNING",      "ERROR",	   "VERIFY",
		"SYNC",	      "DISCARD",      "POSTCOPY",  "URGENT_HELLO",
		"PAGE_REQ",   "POSTCOPY_END", "COMPLETE",  "RESUME",
		"RESUME_ACK", "CHAN_HELLO",
	};

	cr_assert_eq(sizeof(names) / sizeof(names[0]), PROTO_TYPE_MAX);
	for (unsigned int t = 0; t < PROTO_TYPE_MAX; t++)
		cr_assert_str_eq(proto_type_name(t), names[t]);
	cr_assert_str_eq(proto_type_name(PROTO_TYPE_MAX), "unknown");
	cr_assert_str_eq(proto_type_name(0xffff), "unknown");
	cr_assert_str_eq(proto_type_name(~0u), "unknown");
}

Test(frame, encoders_refuse_small_buffers)
{
	uint8_t buf[PROTO_HDR_SIZE + 8];
	struct proto_state s = {.kind = PROTO_STATE_VM,
				.len = 8,
				.blob = (const uint8_t *)"12345678"};

	cr_assert_eq(proto_empty_encode(buf, PROTO_HDR_SIZE - 1, PROTO_GO),
		     -ENOSPC);
	cr_assert_eq(proto_hello_ack_encode(buf, PROTO_HDR_SIZE + 7, 0),
		     -ENOSPC);
	cr_assert_eq(proto_state_encode(buf, sizeof(buf), &s), -ENOSPC);
	cr_assert_eq(proto_error_encode(buf, PROTO_HDR_SIZE + 5, EIO, ""),
		     -ENOSPC);
	cr_assert_eq(proto_verify_encode(buf, PROTO_HDR_SIZE + 3, NULL, 0),
		     -ENOSPC);
}

/* ---- HELLO --------------------------------------------------------------- */

static void hello_fill(struct proto_hello *h, bool full)
{
	memset(h, 0, sizeof(*h));
	h->version = PROTO_VERSION;
	h->caps = PROTO_CAP_ZSTD | PROTO_CAP_VERIFY |
		  (full ? PROTO_CAP_CHANNELS | PROTO_CAP_TSC : 0);
	h->nr_channels = full ? PROTO_MAX_CHANNELS : 0;
	h->tsc_khz = full ? PROTO_MAX_TSC_KHZ : 0;
	h->page_size = PAGE_SIZE;
	h->mem_size = 6ULL << 30;
	h->nr_regions = full ? PROTO_MAX_REGIONS : 2;
	for (uint32_t i = 0; i < h->nr_regions; i++) {
		h->regions[i].gpa = (uint64_t)i << 32;
		h->regions[i].size = (3ULL << 30) - i * PAGE_SIZE;
	}
	h->nr_vcpus = 4;
	h->nr_cpuid = full ? PROTO_MAX_CPUID : 3;
	for (uint32_t i = 0; i < h->nr_cpuid; i++) {
		struct proto_cpuid *e = &h->cpuid[i];

		e->function = i < 3 ? (i == 2 ? 7 : i) : 0x80000000 + i;
		e->index = 0;
		e->flags = i & 1;
		e->eax = 0x1000 + i;
		e->ebx = 0x2000 + i;
		e->ecx = 0x3000 + i;
		e->edx = 0x4000 + i;
	}
	h->nr_devices = full ? PROTO_MAX_DEVICES : 2;
	for (uint32_t i = 0; i < h->nr_devices; i++) {
		if (i == 1)
			memset(h->devices[i].name, 'x', PROTO_NAME_MAX - 1);
		else
			snprintf(h->devices[i].name, PROTO_NAME_MAX,
				 "dev-%u virtio", i);
		h->devices[i].version = i + 1;
	}
}

static uint8_t hello_buf[PROTO_HELLO_MAX_FRAME + 64];

static int hello_frame(const struct proto_hello *h)
{
	return proto_hello_encode(hello_buf, sizeof(hello_buf), h);
}

/* Decode hello_buf's payload (of a frame n long) into out. */
static int hello_redecode(int n, struct proto_hello *out)
{
	uint8_t *q = dup_exact(hello_buf + PROTO_HDR_SIZE, n - PROTO_HDR_SIZE);
	int ret = proto_hello_decode(q, n - PROTO_HDR_SIZE, out, err,
				     sizeof(err));

	free(q);
	return ret;
}

static void hello_reseal(int n)
{
	proto_frame_seal(hello_buf, PROTO_HELLO, n - PROTO_HDR_SIZE);
}

Test(hello, round_trip_full_arrays)
{
	static struct proto_hello in, out;
	struct proto_hdr h;
	int n;

	hello_fill(&in, true);
	n = hello_frame(&in);
	cr_assert_eq(n, PROTO_HELLO_MAX_FRAME);
	cr_assert_eq(proto_frame_decode(hello_buf, n, &h, err, sizeof(err)), n,
		     "%s", err);
	cr_assert_eq(h.type, PROTO_HELLO);
	cr_assert_eq(hello_redecode(n, &out), 0, "%s", err);
	cr_assert_eq(memcmp(&in, &out, sizeof(in)), 0);
	cr_assert_eq(proto_hello_compare(&in, &out, err, sizeof(err)), 0, "%s",
		     err);
}

Test(hello, round_trip_small_and_empty_arrays)
{
	static struct proto_hello in, out;
	int n;

	hello_fill(&in, false);
	n = hello_frame(&in);
	cr_assert_gt(n, 0);
	cr_assert_eq(hello_redecode(n, &out), 0, "%s", err);
	cr_assert_eq(memcmp(&in, &out, sizeof(in)), 0);
	in.nr_regions = in.nr_cpuid = in.nr_devices = 0;
	memset(in.regions, 0, sizeof(in.regions));
	memset(in.cpuid, 0, sizeof(in.cpuid));
	memset(in.devices, 0, sizeof(in.devices));
	n = hello_frame(&in);
	cr_assert_eq(n, PROTO_HDR_SIZE + 40);
	cr_assert_eq(hello_redecode(n, &out), 0, "%s", err);
	cr_assert_eq(memcmp(&in, &out, sizeof(in)), 0);
}

Test(hello, names_are_zero_padded_on_the_wire)
{
	static struct proto_hello in, out;
	int n;

	hello_fill(&in, false);
	memset(in.devices[0].name, 0x55, PROTO_NAME_MAX);
	strcpy(in.devices[0].name, "serial");
	n = hello_frame(&in);
	cr_assert_gt(n, 0);
	cr_assert_eq(hello_redecode(n, &out), 0, "%s", err);
	cr_assert_str_eq(out.devices[0].name, "serial");
	for (int i = 7; i < PROTO_NAME_MAX; i++)
		cr_assert_eq(out.devices[0].name[i], 0);
}

Test(hello, every_truncation_and_trailing_byte_refused)
{
	static struct proto_hello in;
	int n;

	hello_fill(&in, true);
	n = hello_frame(&in);
	check_truncations(PROTO_HELLO, hello_buf, n);
	hello_fill(&in, false);
	n = hello_frame(&in);
	check_truncations(PROTO_HELLO, hello_buf, n);
}

Test(hello, encoder_refuses_invalid_input)
{
	static struct proto_hello in;

	hello_fill(&in, false);
	cr_assert_eq(proto_hello_encode(hello_buf, 100, &in), -ENOSPC);
	in.nr_cpuid = PROTO_MAX_CPUID + 1;
	cr_assert_eq(hello_frame(&in), -EINVAL);
	cr_assert_eq(proto_hello_check(&in, err, sizeof(err)), -EPROTO);
	cr_assert_str_eq(err, "HELLO: nr_cpuid 257 exceeds 256");
	hello_fill(&in, false);
	in.nr_vcpus = 0;
	cr_assert_eq(hello_frame(&in), -EINVAL);
	hello_fill(&in, false);
	in.nr_regions = PROTO_MAX_REGIONS + 1;
	cr_assert_eq(hello_frame(&in), -EINVAL);
	hello_fill(&in, false);
	in.nr_devices = PROTO_MAX_DEVICES + 1;
	cr_assert_eq(hello_frame(&in), -EINVAL);
	hello_fill(&in, false);
	memset(in.devices[1].name, 'a', PROTO_NAME_MAX);
	cr_assert_eq(hello_frame(&in), -EINVAL);
	hello_fill(&in, false);
	in.devices[0].name[0] = '\0';
	cr_assert_eq(hello_frame(&in), -EINVAL);
	hello_fill(&in, false);
	in.devices[0].name[2] = '\n';
	cr_assert_eq(hello_frame(&in), -EINVAL);
	hello_fill(&in, false);
	in.regions[1].gpa += 0x800;
	cr_assert_eq(hello_frame(&in), -EINVAL);
	hello_fill(&in, false);
	in.caps |= PROTO_CAP_TSC; /* its frequency left 0 */
	cr_assert_eq(hello_frame(&in), -EINVAL);
	cr_assert_eq(proto_hello_check(&in, err, sizeof(err)), -EPROTO);
	cr_assert_str_eq(err, "HELLO: tsc_khz 0 not in 1..100000000");
}

/* The TSC frequency travels only with its capability, and is checked. */
Test(hello, tsc_khz_with_its_cap)
{
	static struct proto_hello in, out;
	int n, small;

	hello_fill(&in, false);
	small = hello_frame(&in);
	in.caps |= PROTO_CAP_TSC;
	in.tsc_khz = 2793438;
	n = hello_frame(&in);
	cr_assert_eq(n, small + 4);
	cr_assert_eq(hello_redecode(n, &out), 0, "%s", err);
	cr_assert_eq(out.tsc_khz, 2793438);
	cr_assert_eq(memcmp(&in, &out, sizeof(in)), 0);
	check_truncations(PROTO_HELLO, hello_buf, n);
	/* the last 4 bytes are the frequency: 0 and 100 GHz + 1 refused */
	wr32(hello_buf + n - 4, 0);
	hello_reseal(n);
	cr_assert_eq(hello_redecode(n, &out), -EPROTO);
	cr_assert_str_eq(err, "HELLO: tsc_khz 0 not in 1..100000000");
	wr32(hello_buf + n - 4, PROTO_MAX_TSC_KHZ + 1);
	hello_reseal(n);
	cr_assert_eq(hello_redecode(n, &out), -EPROTO);
	cr_assert_str_eq(err, "HELLO: tsc_khz 100000001 not in 1..100000000");
}

/* Offsets in a small HELLO (2 regions, 3 leaves, 2 devices). */
#define H_NR_REGIONS 24
#define H_NR_VCPUS   (28 + 2 * 16)
#define H_NR_CPUID   (H_NR_VCPUS + 4)
#define H_NR_DEVICES (H_NR_CPUID + 4 + 3 * 28)
#define H_DEV0	     (H_NR_DEVICES + 4)

/* Patch a small HELLO's payload at off, decode, expect msg. */
static void hello_bad(size_t off, const void *bytes, size_t n, const char *msg)
{
	static struct proto_hello in, out;
	int len;

	hello_fill(&in, false);
	len = hello_frame(&in);
	memcpy(hello_buf + PROTO_HDR_SIZE + off, bytes, n);
	hello_reseal(len);
	cr_assert_eq(hello_redecode(len, &out), -EPROTO, "accepted: %s", msg);
	cr_assert_str_eq(err, msg);
}

static void hello_bad32(size_t off, uint32_t v, const char *msg)
{
	uint8_t b[4];

	wr32(b, v);
	hello_bad(off, b, 4, msg);
}

Test(hello, decoder_validates_counts)
{
	hello_bad32(H_NR_CPUID, 300, "HELLO: nr_cpuid 300 exceeds 256");
	hello_bad32(H_NR_REGIONS, 9, "HELLO: nr_regions 9 exceeds 8");
	hello_bad32(H_NR_DEVICES, 17, "HELLO: nr_devices 17 exceeds 16");
	hello_bad32(H_NR_VCPUS, 0, "HELLO: nr_vcpus 0 not in 1..4096");
	hello_bad32(H_NR_VCPUS, 4097, "HELLO: nr_vcpus 4097 not in 1..4096");
	/* a count that claims more entries than the payload holds */
	hello_bad32(H_NR_CPUID, 7,
		    "HELLO: truncated at cpuid (need 196 bytes at offset 68, "
		    "payload is 228)");
	/* 2 leaves: the third leaf's function (7) is read as nr_devices */
	hello_bad32(H_NR_CPUID, 2,
		    "HELLO: truncated at devices (need 252 bytes at offset "
		    "128, payload is 228)");
}

Test(hello, decoder_validates_names_and_regions)
{
	uint8_t name[PROTO_NAME_MAX];

	memset(name, 'a', sizeof(name));
	hello_bad(H_DEV0, name, sizeof(name),
		  "HELLO: device 0 name not NUL-terminated");
	hello_bad(H_DEV0, "", 1, "HELLO: device 0 name empty");
	hello_bad(H_DEV0 + 1, "\x1b", 1,
		  "HELLO: device 0 name has a non-printable byte");
	hello_bad(H_DEV0 + 1, "\xc3", 1,
		  "HELLO: device 0 name has a non-printable byte");
	hello_bad(H_DEV0 + PROTO_NAME_MAX - 1, "z", 1,
		  "HELLO: device 0 name not zero-padded");
	hello_bad(H_DEV0 + PROTO_NAME_MAX - 2, "z", 1,
		  "HELLO: device 0 name not zero-padded");
	hello_bad(28 + 16, "\x01\x10", 2,
		  "HELLO: region 1 (gpa 0x100001001 size 0xbffff000): gpa not "
		  "page-aligned");
	hello_bad(28 + 24, "\0\0\0\0\0\0\0\0", 8,
		  "HELLO: region 1 (gpa 0x100000000 size 0x0): size is zero");
	hello_bad(28 + 24, "\x01", 1,
		  "HELLO: region 1 (gpa 0x100000000 size 0xbffff001): size "
		  "not page-aligned");
	hello_bad(28 + 16, "\0\0\0\xf0\xff\xff\xff\xff", 8,
		  "HELLO: region 1 (gpa 0xfffffffff0000000 size 0xbffff000): "
		  "end overflows");
}

Test(hello, duplicate_cpuid_leaf_refused)
{
	static struct proto_hello in;
	uint8_t leaf[8];

	hello_fill(&in, false);
	in.cpuid[2].function = 1;
	cr_assert_eq(hello_frame(&in), -EINVAL);
	cr_assert_eq(proto_hello_check(&in, err, sizeof(err)), -EPROTO);
	cr_assert_str_eq(err, "HELLO: CPUID leaf 0x1.0 appears twice (entries "
			      "1 and 2)");
	in.cpuid[2].index = 1; /* another subleaf: fine */
	cr_assert_eq(proto_hello_check(&in, err, sizeof(err)), 0, "%s", err);
	/* on the wire: leaf 2 made a copy of leaf 0's (function, index) */
	memset(leaf, 0, sizeof(leaf));
	hello_bad(H_NR_CPUID + 4 + 2 * 28, leaf, sizeof(leaf),
		  "HELLO: CPUID leaf 0x0.0 appears twice (entries 0 and 2)");
}

Test(hello, other_version_refused_by_compare)
{
	static struct proto_hello local, in, out;
	int n;

	hello_fill(&local, false);
	in = local;
	in.version = PROTO_VERSION + 1;
	n = hello_frame(&in);
	cr_assert_gt(n, 0);
	cr_assert_eq(hello_redecode(n, &out), 0, "%s", err);
	cr_assert_eq(out.version, PROTO_VERSION + 1);
	cr_assert_eq(out.nr_vcpus, 0);
	cr_assert_eq(proto_hello_compare(&local, &out, err, sizeof(err)),
		     -EPROTO);
	cr_assert_str_eq(err, "protocol version differs: source speaks 3, "
			      "here 2");
	/* a foreign version is not held to this version's layout */
	cr_assert_eq(proto_hello_decode(hello_buf + PROTO_HDR_SIZE, 4, &out,
					err, sizeof(err)),
		     0);
	in.version = 0;
	hello_frame(&in);
	cr_assert_eq(proto_hello_decode(hello_buf + PROTO_HDR_SIZE, 4, &out,
					err, sizeof(err)),
		     0);
	cr_assert_eq(proto_hello_compare(&local, &out, err, sizeof(err)),
		     -EPROTO);
	cr_assert_str_eq(err, "protocol version differs: source speaks 0, "
			      "here 2");
}

static struct proto_hello cmp_local, cmp_remote;

static void cmp_expect(const char *msg)
{
	cr_assert_eq(
		proto_hello_compare(&cmp_local, &cmp_remote, err, sizeof(err)),
		-EPROTO, "accepted: %s", msg);
	cr_assert_str_eq(err, msg);
	hello_fill(&cmp_local, true);
	hello_fill(&cmp_remote, true);
}

Test(hello, compare_reports_each_difference)
{
	hello_fill(&cmp_local, true);
	hello_fill(&cmp_remote, true);
	cr_assert_eq(
		proto_hello_compare(&cmp_local, &cmp_remote, err, sizeof(err)),
		0);
	/* capabilities are negotiated, not compared */
	cmp_remote.caps = PROTO_CAP_POSTCOPY | (1ULL << 40);
	cr_assert_eq(
		proto_hello_compare(&cmp_local, &cmp_remote, err, sizeof(err)),
		0);

	cmp_remote.page_size = 8192;
	cmp_expect("page size differs: source 8192, here 4096");
	cmp_remote.mem_size = 8ULL << 30;
	cmp_expect("RAM size differs: source 8 GiB, here 6 GiB");
	cmp_local.mem_size = 1536ULL << 20;
	cmp_expect("RAM size differs: source 6 GiB, here 1536 MiB");
	cmp_local.mem_size = 12345;
	cmp_expect("RAM size differs: source 6 GiB, here 12345 bytes");
	cmp_remote.nr_regions = 7;
	cmp_expect("RAM layout differs: source has 7 regions, here 8");
	cmp_remote.regions[3].size += PAGE_SIZE;
	cmp_expect("RAM region 3 differs: source gpa 0x300000000 size "
		   "0xbfffe000, here gpa 0x300000000 size 0xbfffd000");
	cmp_local.nr_vcpus = 2;
	cmp_expect("VM has 2 vCPUs here, source has 4");
	cmp_remote.cpuid[2].ebx = 0x29c6fbf;
	cmp_expect("CPUID leaf 0x7.0 ebx differs: source 0x029c6fbf, here "
		   "0x00002002");
	cmp_local.cpuid[1].eax = 0xa;
	cmp_expect("CPUID leaf 0x1.0 eax differs: source 0x00001001, here "
		   "0x0000000a");
	cmp_remote.cpuid[0].ecx = 0;
	cmp_expect("CPUID leaf 0x0.0 ecx differs: source 0x00000000, here "
		   "0x00003000");
	cmp_remote.cpuid[5].edx = 1;
	cmp_expect("CPUID leaf 0x80000005.0 edx differs: source 0x00000001, "
		   "here 0x00004005");
	cmp_remote.cpuid[4].flags = 1;
	cmp_expect("CPUID leaf 0x80000004.0 flags differ: source 0x00000001, "
		   "here 0x00000000");
	cmp_remote.cpuid[2].index = 1;
	cmp_expect("CPUID leaf 0x7.1 of the source is missing here");
	cmp_local.nr_cpuid = 100;
	cmp_expect("CPUID leaf 0x80000064.0 of the source is missing here");
	cmp_remote.nr_devices = 15;
	cmp_expect("device count differs: source has 15 devices, here 16 "
		   "(dev-15 virtio is not on the source)");
	cmp_local.nr_devices = 14;
	cmp_expect("device count differs: source has 16 devices, here 14 "
		   "(dev-14 virtio is missing here)");
	/* Same names on both sides (one twice): no device to name. */
	cmp_remote.nr_devices = 15;
	strcpy(cmp_local.devices[15].name, "dev-14 virtio");
	cmp_expect("device count differs: source has 15 devices, here 16");
	strcpy(cmp_local.devices[3].name, "virtio-blk");
	cmp_expect("device 3 differs: source has dev-3 virtio, here "
		   "virtio-blk");
	cmp_remote.devices[5].version = 9;
	cmp_expect("device dev-5 virtio state version differs: source 9, here "
		   "6");
	cmp_remote.version = 7;
	cmp_expect("protocol version differs: source speaks 7, here 2");
}

Test(hello, compare_allows_extra_and_reordered_local_leaves)
{
	struct proto_cpuid t;

	hello_fill(&cmp_local, true);
	hello_fill(&cmp_remote, true);
	cmp_remote.nr_cpuid = 10;
	t = cmp_local.cpuid[0];
	cmp_local.cpuid[0] = cmp_local.cpuid[200];
	cmp_local.cpuid[200] = t;
	cr_assert_eq(
		proto_hello_compare(&cmp_local, &cmp_remote, err, sizeof(err)),
		0, "%s", err);
}

Test(hello, ack_round_trip_and_unknown_caps)
{
	uint8_t buf[64];
	uint64_t caps;
	uint64_t noch = PROTO_CAP_ALL & ~PROTO_CAP_CHANNELS;
	int n = proto_hello_ack_encode(buf, sizeof(buf), noch);

	cr_assert_eq(n, PROTO_HDR_SIZE + 8);
	cr_assert_eq(proto_hello_ack_decode(buf + PROTO_HDR_SIZE, 8, &caps, err,
					    sizeof(err)),
		     0);
	cr_assert_eq(caps, noch);
	check_truncations(PROTO_HELLO_ACK, buf, n);
	cr_assert_eq(proto_hello_ack_encode(buf, sizeof(buf), 1ULL << 6),
		     -EINVAL);
	/* Channels need their count and token. */
	cr_assert_eq(proto_hello_ack_encode(buf, sizeof(buf), PROTO_CAP_ALL),
		     -EINVAL);
	wr64(buf + PROTO_HDR_SIZE, PROTO_CAP_ZSTD | 1ULL << 63);
	cr_assert_eq(proto_hello_ack_decode(buf + PROTO_HDR_SIZE, 8, &caps, err,
					    sizeof(err)),
		     -EPROTO);
	cr_assert_str_eq(err, "HELLO_ACK: unknown caps 0x8000000000000000");
}

Test(hello, ack_channels)
{
	uint8_t buf[PROTO_HELLO_ACK_MAX_FRAME];
	uint64_t caps, token;
	uint32_t nr;
	int n = proto_hello_ack_chan_encode(buf, sizeof(buf), PROTO_CAP_ALL, 4,
					    0x1234);

	cr_assert_eq(n, PROTO_HELLO_ACK_MAX_FRAME);
	cr_assert_eq(proto_hello_ack_chan_decode(buf + PROTO_HDR_SIZE,
						 n - PROTO_HDR_SIZE, &caps, &nr,
						 &token, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(caps, PROTO_CAP_ALL);
	cr_assert_eq(nr, 4);
	cr_assert_eq(token, 0x1234);
	check_truncations(PROTO_HELLO_ACK, buf, n);
	cr_assert_eq(proto_hello_ack_chan_encode(buf, sizeof(buf),
						 PROTO_CAP_CHANNELS, 1, 5),
		     -EINVAL);
	cr_assert_eq(proto_hello_ack_chan_encode(buf, sizeof(buf),
						 PROTO_CAP_CHANNELS, 2, 0),
		     -EINVAL);
	wr32(buf + PROTO_HDR_SIZE + 8, PROTO_MAX_CHANNELS + 1);
	cr_assert_eq(proto_hello_ack_chan_decode(buf + PROTO_HDR_SIZE,
						 n - PROTO_HDR_SIZE, &caps, &nr,
						 &token, err, sizeof(err)),
		     -EPROTO);
	cr_assert_str_eq(err, "HELLO_ACK: nr_channels 9 not in 2..8");
}

Test(chan, hello_round_trip)
{
	uint8_t buf[PROTO_CHAN_HELLO_FRAME], proof[PROTO_PROOF_LEN], got[32];
	uint64_t token;
	uint32_t index;
	bool has;
	int n;

	memset(proof, 0xab, sizeof(proof));
	n = proto_chan_hello_encode(buf, sizeof(buf), 77, 3, proof);
	cr_assert_eq(n, PROTO_CHAN_HELLO_FRAME);
	cr_assert_eq(proto_chan_hello_decode(buf + PROTO_HDR_SIZE,
					     n - PROTO_HDR_SIZE, &token, &index,
					     got, &has, err, sizeof(err)),
		     0, "%s", err);
	cr_assert(has);
	cr_assert_eq(token, 77);
	cr_assert_eq(index, 3);
	cr_assert_eq(memcmp(got, proof, sizeof(proof)), 0);
	n = proto_chan_hello_encode(buf, sizeof(buf), 77, 1, NULL);
	cr_assert_eq(n, PROTO_HDR_SIZE + 12);
	cr_assert_eq(proto_chan_hello_decode(buf + PROTO_HDR_SIZE,
					     n - PROTO_HDR_SIZE, &token, &index,
					     got, &has, err, sizeof(err)),
		     0, "%s", err);
	cr_assert(!has);
	check_truncations(PROTO_CHAN_HELLO, buf, n);
	cr_assert_eq(proto_chan_hello_encode(buf, sizeof(buf), 0, 1, NULL),
		     -EINVAL);
	cr_assert_eq(proto_chan_hello_encode(buf, sizeof(buf), 1, 0, NULL),
		     -EINVAL);
	wr32(buf + PROTO_HDR_SIZE + 8, 0);
	cr_assert_eq(proto_chan_hello_decode(buf + PROTO_HDR_SIZE,
					     n - PROTO_HDR_SIZE, &token, &index,
					     got, &has, err, sizeof(err)),
		     -EPROTO);
	cr_assert_str_eq(err, "CHAN_HELLO: index 0 not in 1..7");
}

/* ---- page batches -------------------------------------------------------- */

/* A page per seed: a batch keeps the address of each page it holds. */
static uint8_t *page_of(uint8_t seed)
{
	static uint8_t pages[256][PAGE_SIZE];
	uint8_t *p = pages[seed];

	for (int i = 0; i < (int)PAGE_SIZE; i++)
		p[i] = (uint8_t)(seed + i / 64);
	return p;
}

static void run_is(const struct proto_batch *b, int i, uint64_t gpa,
		   uint32_t npages, uint32_t flags)
{
	cr_assert_lt(i, b->nr_runs);
	cr_assert_eq(b->runs[i].gpa, gpa, "run %d gpa 0x%lx", i,
		     (unsigned long)b->runs[i].gpa);
	cr_assert_eq(b->runs[i].npages, npages, "run %d npages %u", i,
		     b->runs[i].npages);
	cr_assert_eq(b->runs[i].flags, flags, "run %d flags", i);
}

/* 0,1,2 data; 3,4 zero; 5 data; 10, 9 data (not ascending); 11 zero. */
static void batch_mixed(struct proto_batch *b)
{
	proto_batch_init(b);
	cr_assert_eq(proto_batch_add(b, 0x0000, page_of(1)), 0);
	cr_assert_eq(proto_batch_add(b, 0x1000, page_of(2)), 0);
	cr_assert_eq(proto_batch_add(b, 0x2000, page_of(3)), 0);
	cr_assert_eq(proto_batch_add(b, 0x3000, NULL), 0);
	cr_assert_eq(proto_batch_add(b, 0x4000, NULL), 0);
	cr_assert_eq(proto_batch_add(b, 0x5000, page_of(4)), 0);
	cr_assert_eq(proto_batch_add(b, 0xa000, page_of(5)), 0);
	cr_assert_eq(proto_batch_add(b, 0x9000, page_of(6)), 0);
	cr_assert_eq(proto_batch_add(b, 0xb000, NULL), 0);
}

Test(pages, builder_forms_runs)
{
	struct proto_batch *b = batch_new();

	batch_mixed(b);
	cr_assert_eq(b->nr_runs, 6);
	cr_assert_eq(b->nr_pages, 9);
	cr_assert_eq(b->nr_data, 6);
	run_is(b, 0, 0x0000, 3, 0);
	run_is(b, 1, 0x3000, 2, PROTO_RUN_ZERO);
	run_is(b, 2, 0x5000, 1, 0);
	run_is(b, 3, 0xa000, 1, 0);
	run_is(b, 4, 0x9000, 1, 0);
	run_is(b, 5, 0xb000, 1, PROTO_RUN_ZERO);
	/* data pages are kept where they are, in order, not copied */
	cr_assert_eq(b->page[3], page_of(4));
	cr_assert_eq(b->page[5], page_of(6));
	free(b);
}

Test(pages, builder_limits)
{
	struct proto_batch *b = batch_new();

	cr_assert_eq(proto_batch_add(b, 0x1001, NULL), -EINVAL);
	for (int i = 0; i < PROTO_MAX_BATCH; i++) {
		cr_assert_not(proto_batch_full(b));
		cr_assert_eq(proto_batch_add(b, (uint64_t)i * 2 * 4096,
					     i % 3 ? page_of(7) : NULL),
			     0);
	}
	cr_assert(proto_batch_full(b));
	cr_assert_eq(proto_batch_add(b, 1ULL << 40, NULL), -ENOSPC);
	cr_assert_eq(b->nr_runs, PROTO_MAX_BATCH);
	/* the top page of the address space does not wrap into page 0 */
	proto_batch_init(b);
	cr_assert_eq(proto_batch_add(b, 0xfffffffffffff000ULL, NULL), 0);
	cr_assert_eq(proto_batch_add(b, 0, NULL), 0);
	cr_assert_eq(b->nr_runs, 2);
	free(b);
}

Test(pages, page_is_zero)
{
	static uint8_t page[PAGE_SIZE];

	cr_assert(proto_page_is_zero(page));
	for (int i = 0; i < (int)PAGE_SIZE; i += 509) {
		page[i] = 1;
		cr_assert_not(proto_page_is_zero(page), "byte %d", i);
		page[i] = 0;
	}
	page[PAGE_SIZE - 1] = 0x80;
	cr_assert_not(proto_page_is_zero(page));
}

/* Each implementation, every byte and bit, on an unaligned page too. */
static void page_is_zero_each(bool (*is_zero)(const void *), const char *nm)
{
	static uint8_t buf[PAGE_SIZE + 64];

	for (int shift = 0; shift < 64; shift += 63) {
		uint8_t *page = buf + shift;

		memset(buf, 0, sizeof(buf));
		cr_assert(is_zero(page), "%s: zero page at +%d", nm, shift);
		buf[shift ? shift - 1 : (int)PAGE_SIZE] = 0xff; /* outside */
		cr_assert(is_zero(page), "%s: byte outside at +%d", nm, shift);
		for (int i = 0; i < (int)PAGE_SIZE; i++) {
			page[i] = (uint8_t)(1u << (i % 8));
			cr_assert_not(is_zero(page), "%s: byte %d at +%d", nm,
				      i, shift);
			page[i] = 0;
		}
	}
}

Test(pages, page_is_zero_sse2_and_avx2)
{
	page_is_zero_each(proto_page_is_zero_sse2, "sse2");
	if (proto_avx2_ok())
		page_is_zero_each(proto_page_is_zero_avx2, "avx2");
	else
		cr_log_warn("no AVX2 on this CPU: its zero check not run");
}


static uint8_t *frame_buf(void)
{
	uint8_t *f = malloc(proto_batch_max_frame());

	cr_assert_not_null(f);
	return f;
}

/* out (decoded) holds b's runs and b's data pages, in order, at raw. */
static void batch_same(const struct proto_batch *b,
		       const struct proto_batch *out)
{
	cr_assert_eq(out->nr_runs, b->nr_runs);
	cr_assert_eq(out->nr_pages, b->nr_pages);
	cr_assert_eq(out->nr_data, b->nr_data);
	cr_assert_eq(
		memcmp(out->runs, b->runs, b->nr_runs * sizeof(b->runs[0])), 0);
	for (int i = 0; i < b->nr_data; i++)
		cr_assert_eq(memcmp(out->raw + (size_t)i * PAGE_SIZE,
				    b->page[i], PAGE_SIZE),
			     0, "data page %d", i);
}

/* Encode b, check the frame, decode it into out; returns the frame length. */
static int pages_round_trip(const struct proto_batch *b, int level, uint8_t *f,
			    struct proto_batch *out)
{
	struct proto_hdr h;
	int n = proto_pages_encode(f, proto_batch_max_frame(), b, level);
	uint8_t *q;

	cr_assert_gt(n, 0, "encode: %d", n);
	cr_assert_eq(proto_frame_decode(f, n, &h, err, sizeof(err)), n, "%s",
		     err);
	cr_assert_eq(h.type, PROTO_PAGES);
	q = dup_exact(f + PROTO_HDR_SIZE, h.len);
	cr_assert_eq(proto_pages_decode(q, h.len, out, err, sizeof(err)), 0,
		     "%s", err);
	batch_same(b, out);
	free(q);
	return n;
}

static uint16_t pages_flags(const uint8_t *f)
{
	return (uint16_t)(f[PROTO_HDR_SIZE + 2] | f[PROTO_HDR_SIZE + 3] << 8);
}

Test(pages, round_trip_mixed_raw_and_zstd)
{
	struct proto_batch *b = batch_new(), *out = batch_new();
	uint8_t *f = frame_buf();
	int raw, z;

	batch_mixed(b);
	raw = pages_round_trip(b, 0, f, out);
	cr_assert_eq(pages_flags(f), 0);
	cr_assert_eq(raw, PROTO_HDR_SIZE + 12 + 6 * 16 + 6 * PAGE_SIZE);
	check_truncations(PROTO_PAGES, f, raw);
	z = pages_round_trip(b, 1, f, out);
	cr_assert_eq(pages_flags(f), PROTO_PAGES_ZSTD);
	cr_assert_lt(z, raw / 10, "compressible pages: %d of %d", z, raw);
	check_truncations(PROTO_PAGES, f, z);
	z = pages_round_trip(b, -1, f, out);
	cr_assert_eq(pages_flags(f), PROTO_PAGES_ZSTD);
	free(f);
	free(out);
	free(b);
}

/* The head and the iovecs, written one after the other, are the frame. */
static size_t head_gather(const struct proto_batch *b, bool live, uint8_t *f)
{
	struct iovec iov[PROTO_MAX_BATCH];
	int niov = -1, n;
	size_t off;

	n = proto_pages_encode_head(f, PROTO_PAGES_HEAD_MAX, b, live, iov,
				    &niov);
	cr_assert_gt(n, 0, "encode_head: %d", n);
	cr_assert_geq(niov, 0);
	off = (size_t)n;
	for (int i = 0; i < niov; i++) {
		memcpy(f + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	return off;
}

Test(pages, encode_head_is_the_raw_frame)
{
	struct proto_batch *b = batch_new(), *out = batch_new();
	uint8_t *f = frame_buf(), *g = frame_buf();
	struct iovec iov[PROTO_MAX_BATCH];
	struct proto_hdr h;
	size_t len;
	int niov;

	batch_mixed(b);
	len = head_gather(b, false, g);
	cr_assert_eq(len, (size_t)proto_pages_encode(
				  f, proto_batch_max_frame(), b, 0));
	cr_assert_eq(memcmp(f, g, len), 0, "same bytes as the copying encoder");
	for (int live = 0; live < 2; live++) {
		cr_assert_eq(head_gather(b, live, g), len);
		cr_assert_eq(proto_frame_decode(g, len, &h, err, sizeof(err)),
			     (int)len, "%s", err);
		cr_assert_eq(pages_flags(g), live ? PROTO_PAGES_LIVE : 0);
		cr_assert_eq(proto_pages_decode(g + PROTO_HDR_SIZE, h.len, out,
						err, sizeof(err)),
			     0, "%s", err);
		batch_same(b, out);
		check_truncations(PROTO_PAGES, g, (int)len);
	}
	/* neighbouring pages in memory are one iovec */
	proto_batch_init(b);
	for (int i = 0; i < 8; i++)
		proto_batch_add(b, (uint64_t)i << 12, page_of(100 + i));
	cr_assert_gt(proto_pages_encode_head(g, PROTO_PAGES_HEAD_MAX, b, true,
					     iov, &niov),
		     0);
	cr_assert_eq(niov, 1);
	cr_assert_eq(iov[0].iov_len, 8 * PAGE_SIZE);
	cr_assert_eq(proto_pages_encode_head(g, 40, b, true, iov, &niov),
		     -ENOSPC);
	proto_batch_init(b);
	cr_assert_eq(proto_pages_encode_head(g, PROTO_PAGES_HEAD_MAX, b, false,
					     iov, &niov),
		     -EINVAL);
	free(g);
	free(f);
	free(out);
	free(b);
}

/* A live PAGES frame's CRC ends with its runs; any other covers its data. */
Test(pages, crc_covers_data_unless_live)
{
	struct proto_batch *b = batch_new();
	uint8_t *f = frame_buf();
	struct proto_hdr h;
	size_t runs_end = PROTO_HDR_SIZE + 12 + 6 * 16, len;

	batch_mixed(b);
	len = head_gather(b, false, f);
	f[runs_end + 5] ^= 0x40; /* a data byte of a paused guest's page */
	cr_assert_eq(proto_frame_decode(f, len, &h, err, sizeof(err)),
		     -EPROTO);
	cr_assert(strstr(err, "crc mismatch"), "%s", err);
	cr_assert_eq(proto_frame_crc_len(PROTO_PAGES, f + PROTO_HDR_SIZE,
					 len - PROTO_HDR_SIZE),
		     len - PROTO_HDR_SIZE);
	len = head_gather(b, true, f);
	f[runs_end + 5] ^= 0x40; /* a live page changed after the CRC */
	cr_assert_eq(proto_frame_decode(f, len, &h, err, sizeof(err)),
		     (int)len, "%s", err);
	cr_assert_eq(proto_frame_crc_len(PROTO_PAGES, f + PROTO_HDR_SIZE,
					 h.len),
		     runs_end - PROTO_HDR_SIZE);
	f[runs_end - 3] ^= 0x40; /* a run's flags */
	cr_assert_eq(proto_frame_decode(f, len, &h, err, sizeof(err)),
		     -EPROTO);
	cr_assert(strstr(err, "crc mismatch"), "%s", err);
	f[runs_end - 3] ^= 0x40;
	f[PROTO_HDR_SIZE + 2] ^= PROTO_PAGES_LIVE; /* the flag itself */
	cr_assert_eq(proto_frame_decode(f, len, &h, err, sizeof(err)),
		     -EPROTO);
	/* other types: all of the payload */
	cr_assert_eq(proto_frame_crc_len(PROTO_STATE, f, 100), 100);
	free(f);
	free(b);
}

/* zstd data is never live: the decoder refuses the pair of flags. */
Test(pages, zstd_and_live_refused)
{
	struct proto_batch *b = batch_new(), *out = batch_new();
	uint8_t *f = frame_buf();
	int n;

	batch_mixed(b);
	n = proto_pages_encode(f, proto_batch_max_frame(), b, 1);
	cr_assert_eq(pages_flags(f), PROTO_PAGES_ZSTD);
	f[PROTO_HDR_SIZE + 2] |= PROTO_PAGES_LIVE;
	cr_assert_eq(proto_pages_decode(f + PROTO_HDR_SIZE,
					(size_t)n - PROTO_HDR_SIZE, out, err,
					sizeof(err)),
		     -EPROTO);
	cr_assert_str_eq(err, "PAGES: zstd data cannot be live");
	free(f);
	free(out);
	free(b);
}

Test(pages, zstd_sample_finds_compressible_data)
{
	struct proto_batch *b = batch_new();

	cr_assert_not(proto_pages_zstd_pays(b, 1), "no data");
	batch_mixed(b);
	cr_assert(proto_pages_zstd_pays(b, 1));
	free(b);
}

Test(pages, random_data_stays_raw)
{
	struct proto_batch *b = batch_new(), *out = batch_new();
	uint8_t *f = frame_buf();
	static uint8_t pages[PROTO_MAX_BATCH][PAGE_SIZE];
	int n;

	fill_random(&pages[0][0], sizeof(pages));
	for (int i = 0; i < PROTO_MAX_BATCH; i++)
		cr_assert_eq(proto_batch_add(b, (uint64_t)i << 12, pages[i]),
			     0);
	cr_assert_not(proto_pages_zstd_pays(b, 1));
	cr_assert_eq(b->nr_runs, 1);
	n = pages_round_trip(b, 3, f, out);
	cr_assert_eq(pages_flags(f), 0);
	cr_assert_eq((size_t)n,
		     PROTO_HDR_SIZE + 12 + 16 +
			     (size_t)PROTO_MAX_BATCH * PAGE_SIZE);
	cr_assert_leq((size_t)n, proto_batch_max_frame());
	free(f);
	free(out);
	free(b);
}

Test(pages, full_batch_of_scattered_runs)
{
	struct proto_batch *b = batch_new(), *out = batch_new();
	uint8_t *f = frame_buf();
	int n;

	for (int i = 0; i < PROTO_MAX_BATCH; i++)
		proto_batch_add(b, (uint64_t)i * 3 << 12,
				i % 2 ? page_of((uint8_t)i) : NULL);
	cr_assert_eq(b->nr_runs, PROTO_MAX_BATCH);
	pages_round_trip(b, 0, f, out);
	n = pages_round_trip(b, 1, f, out);
	cr_assert_eq(pages_flags(f), PROTO_PAGES_ZSTD);
	cr_assert_leq((size_t)n, proto_batch_max_frame());
	free(f);
	free(out);
	free(b);
}

Test(pages, zero_only_batch_has_no_data)
{
	struct proto_batch *b = batch_new(), *out = batch_new();
	uint8_t *f = frame_buf();
	int n;

	for (int i = 0; i < 100; i++)
		proto_batch_add(b, (1ULL << 32) + ((uint64_t)i << 12), NULL);
	n = pages_round_trip(b, 1, f, out);
	cr_assert_eq(pages_flags(f), 0);
	cr_assert_eq(n, PROTO_HDR_SIZE + 12 + 16);
	check_truncations(PROTO_PAGES, f, n);
	free(f);
	free(out);
	free(b);
}

Test(pages, encoder_refuses_bad_batches)
{
	struct proto_batch *b = batch_new();
	uint8_t *f = frame_buf();

	cr_assert_eq(proto_pages_encode(f, proto_batch_max_frame(), b, 0),
		     -EINVAL);
	batch_mixed(b);
	cr_assert_eq(proto_pages_encode(f, 100, b, 0), -ENOSPC);
	b->nr_data--;
	cr_assert_eq(proto_pages_encode(f, proto_batch_max_frame(), b, 0),
		     -EINVAL);
	batch_mixed(b);
	b->runs[2].gpa |= 1;
	cr_assert_eq(proto_pages_encode(f, proto_batch_max_frame(), b, 0),
		     -EINVAL);
	free(f);
	free(b);
}

Test(pages, max_frame)
{
	cr_assert_eq(
		proto_batch_max_frame(),
		PROTO_HDR_SIZE + 12 + PROTO_MAX_BATCH * 16 +
			ZSTD_compressBound(PROTO_MAX_BATCH * PAGE_SIZE));
	cr_assert_leq(proto_batch_max_frame(),
		      PROTO_HDR_SIZE + PROTO_MAX_PAYLOAD);
}

/* Build a PAGES payload by hand: fixed fields, runs, then data. */
struct hand_run {
	uint64_t gpa;
	uint32_t npages, flags;
};

static size_t pages_hand(uint8_t *p, uint16_t nr_runs, uint16_t flags,
			 uint32_t raw, uint32_t stored,
			 const struct hand_run *runs, int nr,
			 const uint8_t *data, size_t dlen)
{
	size_t off = 12;

	wr16(p, nr_runs);
	wr16(p + 2, flags);
	wr32(p + 4, raw);
	wr32(p + 8, stored);
	for (int i = 0; i < nr; i++, off += 16) {
		wr64(p + off, runs[i].gpa);
		wr32(p + off + 8, runs[i].npages);
		wr32(p + off + 12, runs[i].flags);
	}
	if (dlen)
		memcpy(p + off, data, dlen);
	return off + dlen;
}

static void pages_bad(const uint8_t *p, size_t len, const char *msg)
{
	uint8_t *q = dup_exact(p, len);
	struct proto_batch *b = batch_new();

	cr_assert_eq(proto_pages_decode(q, len, b, err, sizeof(err)), -EPROTO,
		     "accepted: %s", msg);
	if (strchr(msg, '*'))
		cr_assert(strncmp(err, msg, strchr(msg, '*') - msg) == 0,
			  "got \"%s\", want \"%s\"", err, msg);
	else
		cr_assert_str_eq(err, msg);
	cr_assert_eq(b->nr_runs, 0);
	free(q);
	free(b);
}

static uint8_t hand[3 * PAGE_SIZE + 4096];

Test(pages, decoder_validates_header_and_runs)
{
	struct hand_run zero = {0x1000, 1, PROTO_RUN_ZERO};
	struct hand_run r[4] = {{0x10000, 1, PROTO_RUN_ZERO},
				{0x20000, 2, PROTO_RUN_ZERO},
				{0x30000, 1, PROTO_RUN_ZERO},
				{0x1001, 1, PROTO_RUN_ZERO}};
	struct hand_run big[2] = {{0, 200, PROTO_RUN_ZERO},
				  {1ULL << 30, 57, PROTO_RUN_ZERO}};
	size_t n;

	n = pages_hand(hand, 4, 0, 0, 0, r, 4, NULL, 0);
	pages_bad(hand, n, "PAGES: run 3 gpa 0x1001 not page-aligned");
	n = pages_hand(hand, 0, 0, 0, 0, NULL, 0, NULL, 0);
	pages_bad(hand, n, "PAGES: nr_runs 0 not in 1..256");
	n = pages_hand(hand, 257, 0, 0, 0, NULL, 0, NULL, 0);
	pages_bad(hand, n, "PAGES: nr_runs 257 not in 1..256");
	n = pages_hand(hand, 1, 4, 0, 0, &zero, 1, NULL, 0);
	pages_bad(hand, n, "PAGES: unknown flags 0x4");
	n = pages_hand(hand, 1, 0, 4095, 0, &zero, 1, NULL, 0);
	pages_bad(hand, n,
		  "PAGES: raw length 4095 not a multiple of 4096 "
		  "up to 1048576");
	n = pages_hand(hand, 1, 0, 257 * 4096, 0, &zero, 1, NULL, 0);
	pages_bad(hand, n,
		  "PAGES: raw length 1052672 not a multiple of 4096 "
		  "up to 1048576");
	zero.flags = 3;
	n = pages_hand(hand, 1, 0, 0, 0, &zero, 1, NULL, 0);
	pages_bad(hand, n, "PAGES: run 0 unknown flags 0x3");
	zero.flags = PROTO_RUN_ZERO;
	zero.npages = 0;
	n = pages_hand(hand, 1, 0, 0, 0, &zero, 1, NULL, 0);
	pages_bad(hand, n, "PAGES: run 0 has no pages");
	n = pages_hand(hand, 2, 0, 0, 0, big, 2, NULL, 0);
	pages_bad(hand, n, "PAGES: run 1: more than 256 pages in the batch");
	big[1].npages = 0xffffffff;
	n = pages_hand(hand, 2, 0, 0, 0, big, 2, NULL, 0);
	pages_bad(hand, n, "PAGES: run 1: more than 256 pages in the batch");
	big[1].npages = 56; /* 256 in all: fine */
	n = pages_hand(hand, 2, 0, 0, 0, big, 2, NULL, 0);
	cr_assert_eq(proto_pages_decode(hand, n, scratch(), err, sizeof(err)),
		     0, "%s", err);
	zero.npages = 2;
	zero.gpa = 0xfffffffffffff000ULL;
	n = pages_hand(hand, 1, 0, 0, 0, &zero, 1, NULL, 0);
	pages_bad(hand, n,
		  "PAGES: run 0 gpa 0xfffffffffffff000 + 2 pages "
		  "overflows");
	/* runs that claim more entries than the payload holds */
	n = pages_hand(hand, 3, 0, 0, 0, r, 2, NULL, 0);
	pages_bad(hand, n,
		  "PAGES: truncated at runs (need 48 bytes at "
		  "offset 12, payload is 44)");
}

Test(pages, decoder_checks_data_lengths)
{
	struct hand_run one = {0x1000, 1, 0};
	struct hand_run two = {0x1000, 2, 0};
	uint8_t *page = page_of(9);
	size_t n;

	n = pages_hand(hand, 1, 0, 8192, 8192, &one, 1, page, 4096);
	pages_bad(hand, n, "PAGES: 1 data pages but raw length 8192");
	n = pages_hand(hand, 1, 0, 4096, 4096, &two, 1, page, 4096);
	pages_bad(hand, n, "PAGES: 2 data pages but raw length 4096");
	n = pages_hand(hand, 1, 0, 4096, 4000, &one, 1, page, 4096);
	pages_bad(hand, n, "PAGES: stored length 4000 but 4096 bytes follow");
	n = pages_hand(hand, 1, 0, 4096, 4096, &one, 1, page, 4000);
	pages_bad(hand, n, "PAGES: stored length 4096 but 4000 bytes follow");
	n = pages_hand(hand, 1, 0, 4096, 100, &one, 1, page, 100);
	pages_bad(hand, n, "PAGES: raw data 100 bytes, raw length 4096");
	n = pages_hand(hand, 1, 0, 4096, 4096, &one, 1, page, 4096);
	cr_assert_eq(proto_pages_decode(hand, n, scratch(), err, sizeof(err)),
		     0, "%s", err);
}

/* Compress n bytes of page_of() data into z; returns the size. */
static size_t zstd_of(uint8_t *z, size_t cap, size_t n)
{
	static uint8_t src[3 * PAGE_SIZE];
	size_t zn;

	for (size_t i = 0; i < n; i += PAGE_SIZE)
		memcpy(src + i, page_of((uint8_t)i), PAGE_SIZE);
	zn = ZSTD_compress(z, cap, src, n, 1);
	cr_assert_not(ZSTD_isError(zn));
	return zn;
}

Test(pages, decoder_checks_zstd)
{
	struct hand_run two = {0x1000, 2, 0};
	struct hand_run three = {0x1000, 3, 0};
	uint8_t z[1024], data[2048];
	size_t zn, n;
	int fcs_pos, fcs_len;

	zn = zstd_of(z, sizeof(z), 8192);
	n = pages_hand(hand, 1, PROTO_PAGES_ZSTD, 8192, zn, &two, 1, z, zn);
	cr_assert_eq(proto_pages_decode(hand, n, scratch(), err, sizeof(err)),
		     0, "%s", err);
	/* the frame's content size lies: says 8192, payload says 12288 */
	n = pages_hand(hand, 1, PROTO_PAGES_ZSTD, 12288, zn, &three, 1, z, zn);
	pages_bad(hand, n, "PAGES: zstd content size 8192, raw length 12288");
	/* ... and the other way: patch the frame's content size to 12288 */
	cr_assert_eq(rd32(z), ZSTD_MAGICNUMBER);
	cr_assert((z[4] >> 5) & 1, "expected a single-segment frame");
	fcs_len = (int[]){1, 2, 4, 8}[z[4] >> 6];
	fcs_pos = 5 + (int[]){0, 1, 2, 4}[z[4] & 3];
	cr_assert_eq(fcs_len, 2);
	wr16(z + fcs_pos, 12288 - 256);
	cr_assert_eq(ZSTD_getFrameContentSize(z, zn), 12288);
	n = pages_hand(hand, 1, PROTO_PAGES_ZSTD, 12288, zn, &three, 1, z, zn);
	pages_bad(hand, n, "PAGES: zstd*");
	/* stored not smaller than raw */
	memset(data, 0xa5, sizeof(data));
	zn = zstd_of(z, sizeof(z), 8192);
	n = pages_hand(hand, 1, PROTO_PAGES_ZSTD, 8192, 8192, &two, 1,
		       page_of(1), 4096);
	memcpy(hand + n, page_of(2), 4096);
	n += 4096;
	pages_bad(hand, n,
		  "PAGES: zstd data 8192 bytes not smaller than raw "
		  "8192");
	/* garbage after the zstd frame */
	memcpy(z + zn, data, 16);
	n = pages_hand(hand, 1, PROTO_PAGES_ZSTD, 8192, zn + 16, &two, 1, z,
		       zn + 16);
	pages_bad(hand, n, "PAGES: zstd data is not one whole frame");
	/* not a zstd frame at all */
	n = pages_hand(hand, 1, PROTO_PAGES_ZSTD, 8192, 100, &two, 1, data,
		       100);
	pages_bad(hand, n, "PAGES: zstd data is not one whole frame");
	/* corrupted blocks: refused or not, never a crash or overrun */
	for (size_t i = 6; i < zn; i++) {
		uint8_t *q;

		zstd_of(z, sizeof(z), 8192);
		z[i] ^= 0x5a;
		n = pages_hand(hand, 1, PROTO_PAGES_ZSTD, 8192, zn, &two, 1, z,
			       zn);
		q = dup_exact(hand, n);
		proto_pages_decode(q, n, scratch(), err, sizeof(err));
		free(q);
	}
}

/* ---- state and records --------------------------------------------------- */

Test(state, round_trip)
{
	uint8_t buf[256], blob[100];
	struct proto_state in = {PROTO_STATE_DEVICE, 3, 15, sizeof(blob), blob},
			   out;
	int n;

	fill_random(blob, sizeof(blob));
	n = proto_state_encode(buf, sizeof(buf), &in);
	cr_assert_eq(n, PROTO_STATE_OVERHEAD + (int)sizeof(blob));
	cr_assert_eq(proto_state_decode(buf + PROTO_HDR_SIZE,
					n - PROTO_HDR_SIZE, &out, err,
					sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(out.kind, in.kind);
	cr_assert_eq(out.version, 3);
	cr_assert_eq(out.id, 15);
	cr_assert_eq(out.len, sizeof(blob));
	cr_assert_eq(out.blob, buf + PROTO_STATE_OVERHEAD);
	cr_assert_eq(memcmp(out.blob, blob, sizeof(blob)), 0);
	check_truncations(PROTO_STATE, buf, n);
}

Test(state, blob_in_place_and_empty)
{
	uint8_t buf[256];
	struct proto_state in = {PROTO_STATE_VCPU, 1, 4095, 40,
				 buf + PROTO_STATE_OVERHEAD},
			   out;
	int n;

	memset(buf + PROTO_STATE_OVERHEAD, 0x3c, 40);
	n = proto_state_encode(buf, sizeof(buf), &in);
	cr_assert_eq(n, PROTO_STATE_OVERHEAD + 40);
	cr_assert_eq(proto_state_decode(buf + PROTO_HDR_SIZE,
					n - PROTO_HDR_SIZE, &out, err,
					sizeof(err)),
		     0, "%s", err);
	for (int i = 0; i < 40; i++)
		cr_assert_eq(out.blob[i], 0x3c);
	in = (struct proto_state){PROTO_STATE_VM, 2, 0, 0, NULL};
	n = proto_state_encode(buf, sizeof(buf), &in);
	cr_assert_eq(n, PROTO_STATE_OVERHEAD);
	cr_assert_eq(proto_state_decode(buf + PROTO_HDR_SIZE, 12, &out, err,
					sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(out.len, 0);
	check_truncations(PROTO_STATE, buf, n);
}

static void state_bad(uint16_t kind, uint32_t id, uint32_t blen, size_t len,
		      const char *msg)
{
	uint8_t p[64] = {0};
	struct proto_state out;

	wr16(p, kind);
	wr16(p + 2, 1);
	wr32(p + 4, id);
	wr32(p + 8, blen);
	cr_assert_eq(proto_state_decode(p, len, &out, err, sizeof(err)),
		     -EPROTO, "accepted: %s", msg);
	cr_assert_str_eq(err, msg);
}

Test(state, decoder_validates_kind_id_and_length)
{
	uint8_t buf[64];
	struct proto_state s = {0, 1, 0, 0, NULL};

	state_bad(0, 0, 0, 12, "STATE: kind 0 id 0: unknown kind");
	state_bad(4, 0, 0, 12, "STATE: kind 4 id 0: unknown kind");
	state_bad(0xffff, 0, 0, 12, "STATE: kind 65535 id 0: unknown kind");
	state_bad(PROTO_STATE_VM, 1, 0, 12,
		  "STATE: kind 2 id 1: VM section id not 0");
	state_bad(PROTO_STATE_VCPU, 4096, 0, 12,
		  "STATE: kind 1 id 4096: vCPU id out of range");
	state_bad(PROTO_STATE_DEVICE, 16, 0, 12,
		  "STATE: kind 3 id 16: device id out of range");
	state_bad(PROTO_STATE_VM, 0, 10, 20,
		  "STATE: blob length 10 but 8 bytes follow");
	state_bad(PROTO_STATE_VM, 0, 0xffffffff, 20,
		  "STATE: blob length 4294967295 but 8 bytes follow");
	state_bad(PROTO_STATE_VM, 0, 0, 11,
		  "STATE: truncated at blob length (need 4 bytes at offset 8, "
		  "payload is 11)");
	cr_assert_eq(proto_state_encode(buf, sizeof(buf), &s), -EINVAL);
	s.kind = PROTO_STATE_KIND_MAX;
	cr_assert_eq(proto_state_encode(buf, sizeof(buf), &s), -EINVAL);
	s.kind = PROTO_STATE_VM;
	s.len = 4;
	cr_assert_eq(proto_state_encode(buf, sizeof(buf), &s), -EINVAL);
}

Test(state, oversized_blob_refused)
{
	static uint8_t blob[16];
	struct proto_state s = {PROTO_STATE_VM, 1, 0, PROTO_MAX_PAYLOAD - 11,
				blob};
	uint8_t buf[64];

	cr_assert_eq(proto_state_encode(buf, sizeof(buf), &s), -EMSGSIZE);
}

Test(records, round_trip_with_padding)
{
	uint8_t buf[256], src[20];
	struct proto_rec_writer w;
	struct proto_rec_reader r;
	const uint32_t lens[] = {0, 1, 7, 8, 9, 20};
	const uint8_t *data;
	uint32_t tag, len;

	fill_random(src, sizeof(src));
	memset(buf, 0xee, sizeof(buf));
	proto_rec_writer_init(&w, buf, sizeof(buf));
	for (int i = 0; i < 6; i++)
		proto_rec_put(&w, 100 + i, src, lens[i]);
	cr_assert_not(w.overflow);
	cr_assert_eq(w.len, 6 * 8 + 0 + 8 + 8 + 8 + 16 + 24);
	cr_assert_eq(buf[8 + 8 + 1], 0, "padding is zero");
	proto_rec_reader_init(&r, buf, w.len);
	for (int i = 0; i < 6; i++) {
		cr_assert_eq(proto_rec_next(&r, &tag, &data, &len), 1);
		cr_assert_eq(tag, 100u + i);
		cr_assert_eq(len, lens[i]);
		cr_assert_eq(memcmp(data, src, len), 0);
		cr_assert_eq(((uintptr_t)data - (uintptr_t)buf) % 8, 0);
	}
	cr_assert_eq(proto_rec_next(&r, &tag, &data, &len), 0);
	cr_assert_eq(proto_rec_next(&r, &tag, &data, &len), 0);
}

Test(records, writer_overflows_without_writing_past_cap)
{
	uint8_t buf[64];
	struct proto_rec_writer w;
	uint8_t src[40] = {1};

	memset(buf, 0xee, sizeof(buf));
	proto_rec_writer_init(&w, buf, 40);
	proto_rec_put(&w, 1, src, 16); /* 24 bytes */
	cr_assert_not(w.overflow);
	proto_rec_put(&w, 2, src, 9); /* 24 more: does not fit */
	cr_assert(w.overflow);
	cr_assert_eq(w.len, 24);
	proto_rec_put(&w, 3, src, 0); /* would fit, but overflow sticks */
	cr_assert_eq(w.len, 24);
	for (int i = 24; i < 64; i++)
		cr_assert_eq(buf[i], 0xee, "byte %d written", i);
	proto_rec_writer_init(&w, buf, 4);
	proto_rec_put(&w, 1, NULL, 0);
	cr_assert(w.overflow);
	proto_rec_writer_init(&w, buf, 8);
	proto_rec_put(&w, 1, NULL, 0);
	cr_assert_not(w.overflow);
	proto_rec_put(&w, 1, src, 0xffffffff);
	cr_assert(w.overflow);
	cr_assert_eq(w.len, 8);
}

Test(records, reader_refuses_records_running_past_the_end)
{
	uint8_t buf[128];
	struct proto_rec_writer w;
	struct proto_rec_reader r;
	const uint8_t *data;
	uint32_t tag, len;
	uint8_t src[12] = {0};
	size_t ends[] = {0, 16, 40, 48};

	proto_rec_writer_init(&w, buf, sizeof(buf));
	proto_rec_put(&w, 1, src, 5);
	proto_rec_put(&w, 2, src, 12);
	proto_rec_put(&w, 3, NULL, 0);
	cr_assert_eq(w.len, 48);
	for (size_t n = 0; n <= w.len; n++) {
		uint8_t *q = dup_exact(buf, n);
		bool boundary = false;
		int ret, recs = 0;

		for (size_t i = 0; i < 4; i++)
			boundary |= ends[i] == n;
		proto_rec_reader_init(&r, q, n);
		while ((ret = proto_rec_next(&r, &tag, &data, &len)) == 1)
			recs++;
		cr_assert_eq(ret, boundary ? 0 : -EPROTO, "length %zu", n);
		free(q);
	}
	wr32(buf + 4, 0xfffffff9);
	proto_rec_reader_init(&r, buf, 48);
	cr_assert_eq(proto_rec_next(&r, &tag, &data, &len), -EPROTO);
	cr_assert_eq(proto_rec_next(&r, &tag, &data, &len), -EPROTO);
}

/* ---- small messages ------------------------------------------------------ */

Test(msg, empty_messages)
{
	const enum proto_type types[] = {PROTO_RAM_END, PROTO_STATE_END,
					 PROTO_READY, PROTO_GO, PROTO_RUNNING};
	uint8_t buf[PROTO_HDR_SIZE + 1];
	struct proto_hdr h;

	for (size_t i = 0; i < 5; i++) {
		cr_assert_eq(proto_empty_encode(buf, sizeof(buf), types[i]),
			     PROTO_HDR_SIZE);
		cr_assert_eq(proto_frame_decode(buf, PROTO_HDR_SIZE, &h, err,
						sizeof(err)),
			     PROTO_HDR_SIZE);
		cr_assert_eq(h.type, types[i]);
		cr_assert_eq(h.len, 0);
		cr_assert_eq(proto_empty_decode(buf + PROTO_HDR_SIZE, 0,
						types[i], err, sizeof(err)),
			     0);
		check_truncations(types[i], buf, PROTO_HDR_SIZE);
	}
	cr_assert_eq(proto_empty_decode(buf, 1, PROTO_GO, err, sizeof(err)),
		     -EPROTO);
	cr_assert_str_eq(err, "GO: payload must be empty, got 1 bytes");
	cr_assert_eq(proto_empty_encode(buf, sizeof(buf), PROTO_HELLO),
		     -EINVAL);
	cr_assert_eq(proto_empty_encode(buf, sizeof(buf), PROTO_TYPE_MAX),
		     -EINVAL);
	cr_assert_eq(proto_empty_decode(buf, 0, PROTO_PAGES, err, sizeof(err)),
		     -EPROTO);
}

Test(msg, error_round_trip)
{
	uint8_t buf[PROTO_HDR_SIZE + 6 + PROTO_REASON_MAX + 8];
	char reason[128];
	int code, n;

	n = proto_error_encode(buf, sizeof(buf), -ENOSPC,
			       "destination refuses: VM has 2 vCPUs here, "
			       "source has 4");
	cr_assert_gt(n, 0);
	cr_assert_eq(proto_error_decode(buf + PROTO_HDR_SIZE,
					n - PROTO_HDR_SIZE, &code, reason,
					sizeof(reason), err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(code, ENOSPC);
	cr_assert_str_eq(reason, "destination refuses: VM has 2 vCPUs here, "
				 "source has 4");
	check_truncations(PROTO_ERROR, buf, n);
	/* a short reason buffer gets a cut, terminated reason */
	cr_assert_eq(proto_error_decode(buf + PROTO_HDR_SIZE,
					n - PROTO_HDR_SIZE, &code, reason, 12,
					err, sizeof(err)),
		     0);
	cr_assert_str_eq(reason, "destination");
	/* no reason at all */
	n = proto_error_encode(buf, sizeof(buf), EIO, NULL);
	cr_assert_eq(n, PROTO_HDR_SIZE + 6);
	cr_assert_eq(proto_error_decode(buf + PROTO_HDR_SIZE, 6, &code, reason,
					sizeof(reason), err, sizeof(err)),
		     0);
	cr_assert_str_eq(reason, "");
	cr_assert_eq(proto_error_encode(buf, sizeof(buf), 0, "x"), -EINVAL);
	cr_assert_eq(proto_error_encode(buf, sizeof(buf), 4096, "x"), -EINVAL);
}

Test(msg, error_reason_bounded_and_sanitised)
{
	static char longr[3000];
	uint8_t buf[PROTO_HDR_SIZE + 6 + PROTO_REASON_MAX + 8];
	char reason[2048];
	int code, n;

	memset(longr, 'r', sizeof(longr) - 1);
	n = proto_error_encode(buf, sizeof(buf), EIO, longr);
	cr_assert_eq(n, PROTO_HDR_SIZE + 6 + PROTO_REASON_MAX);
	cr_assert_eq(proto_error_decode(buf + PROTO_HDR_SIZE,
					n - PROTO_HDR_SIZE, &code, reason,
					sizeof(reason), err, sizeof(err)),
		     0);
	cr_assert_eq(strlen(reason), PROTO_REASON_MAX);
	/* 1025 bytes of reason: refused even though they are all there */
	wr16(buf + PROTO_HDR_SIZE + 4, PROTO_REASON_MAX + 1);
	buf[n] = 'r';
	cr_assert_eq(proto_error_decode(buf + PROTO_HDR_SIZE,
					n + 1 - PROTO_HDR_SIZE, &code, reason,
					sizeof(reason), err, sizeof(err)),
		     -EPROTO);
	cr_assert_str_eq(err, "ERROR: reason length 1025 exceeds 1024");
	/* the reason must lie within the payload */
	n = proto_error_encode(buf, sizeof(buf), EIO, "abc");
	wr16(buf + PROTO_HDR_SIZE + 4, 4);
	cr_assert_eq(proto_error_decode(buf + PROTO_HDR_SIZE, 9, &code, reason,
					sizeof(reason), err, sizeof(err)),
		     -EPROTO);
	cr_assert_str_eq(err, "ERROR: truncated at reason (need 4 bytes at "
			      "offset 6, payload is 9)");
	/* control characters, escapes and NULs never reach a terminal */
	n = proto_error_encode(buf, sizeof(buf), EIO, "a\x1b[2Jb\tc\x7f\xff");
	buf[PROTO_HDR_SIZE + 6 + 1] = 0;
	cr_assert_eq(proto_error_decode(buf + PROTO_HDR_SIZE,
					n - PROTO_HDR_SIZE, &code, reason,
					sizeof(reason), err, sizeof(err)),
		     0);
	cr_assert_str_eq(reason, "a?[2Jb?c??");
	/* codes that are not errnos */
	wr32(buf + PROTO_HDR_SIZE, 0);
	cr_assert_eq(proto_error_decode(buf + PROTO_HDR_SIZE,
					n - PROTO_HDR_SIZE, &code, reason,
					sizeof(reason), err, sizeof(err)),
		     -EPROTO);
	cr_assert_str_eq(err, "ERROR: code 0 not an errno");
	wr32(buf + PROTO_HDR_SIZE, 0xfffffffb);
	cr_assert_eq(proto_error_decode(buf + PROTO_HDR_SIZE,
					n - PROTO_HDR_SIZE, &code, reason,
					sizeof(reason), err, sizeof(err)),
		     -EPROTO);
}

Test(msg, verify_round_trip_and_limits)
{
	struct proto_digest in[PROTO_MAX_REGIONS], out[PROTO_MAX_REGIONS];
	uint8_t buf[PROTO_VERIFY_MAX_FRAME + 64];
	uint32_t nr;
	int n;

	for (int i = 0; i < PROTO_MAX_REGIONS; i++) {
		in[i].gpa = (uint64_t)i << 32;
		in[i].size = 1ULL << 30;
		fill_random(in[i].sha256, 32);
	}
	n = proto_verify_encode(buf, sizeof(buf), in, PROTO_MAX_REGIONS);
	cr_assert_eq(n, PROTO_VERIFY_MAX_FRAME);
	cr_assert_eq(proto_verify_decode(
			     buf + PROTO_HDR_SIZE, n - PROTO_HDR_SIZE, out,
			     PROTO_MAX_REGIONS, &nr, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(nr, PROTO_MAX_REGIONS);
	cr_assert_eq(memcmp(in, out, sizeof(in)), 0);
	check_truncations(PROTO_VERIFY, buf, n);
	cr_assert_eq(proto_verify_decode(buf + PROTO_HDR_SIZE,
					 n - PROTO_HDR_SIZE, out, 2, &nr, err,
					 sizeof(err)),
		     -EPROTO);
	cr_assert_str_eq(err, "VERIFY: nr 8 exceeds 2");
	wr32(buf + PROTO_HDR_SIZE, 9);
	cr_assert_eq(proto_verify_decode(buf + PROTO_HDR_SIZE,
					 n - PROTO_HDR_SIZE, out, 100, &nr, err,
					 sizeof(err)),
		     -EPROTO);
	cr_assert_str_eq(err, "VERIFY: nr 9 exceeds 8");
	wr32(buf + PROTO_HDR_SIZE, 7);
	cr_assert_eq(proto_verify_decode(buf + PROTO_HDR_SIZE,
					 n - PROTO_HDR_SIZE, out, 100, &nr, err,
					 sizeof(err)),
		     -EPROTO);
	cr_assert_str_eq(err, "VERIFY: 48 trailing bytes after the last field "
			      "(payload is 388)");
	n = proto_verify_encode(buf, sizeof(buf), in, 0);
	cr_assert_eq(n, PROTO_HDR_SIZE + 4);
	check_truncations(PROTO_VERIFY, buf, n);
	cr_assert_eq(proto_verify_encode(buf, sizeof(buf), in, 9), -EINVAL);
}

/* ---- post-copy ----------------------------------------------------------- */

/* The frame in buf is a whole, valid frame of type t. */
static void frame_is(const uint8_t *buf, int n, enum proto_type t)
{
	struct proto_hdr h;

	cr_assert_gt(n, 0);
	cr_assert_eq(proto_frame_decode(buf, (size_t)n, &h, err, sizeof(err)),
		     n, "%s", err);
	cr_assert_eq(h.type, t, "type %u, want %s", h.type, proto_type_name(t));
}

/* Write DISCARD payload runs by hand: u32 nr_runs, then the given runs. */
static size_t discard_hand(uint8_t *p, uint32_t nr_runs,
			   const struct proto_run *r, uint32_t n)
{
	wr32(p, nr_runs);
	for (uint32_t i = 0; i < n; i++) {
		wr64(p + 4 + 16 * i, r[i].gpa);
		wr32(p + 4 + 16 * i + 8, r[i].npages);
		wr32(p + 4 + 16 * i + 12, r[i].flags);
	}
	return 4 + 16 * (size_t)n;
}

/* decode_any(type) on exactly len bytes of p refuses with message msg. */
static void pc_bad(unsigned int type, const uint8_t *p, size_t len,
		   const char *msg)
{
	uint8_t *q = dup_exact(p, len);

	cr_assert_eq(decode_any(type, q, len), -EPROTO, "accepted: %s", msg);
	cr_assert_str_eq(err, msg);
	free(q);
}

Test(postcopy, discard_round_trip)
{
	const struct proto_run in[] = {
		{0x0, 1, 0},
		{0x100000, 256, 0},
		{0x100000000ULL, 0xffffffffU, 0},
		{0x5000, 3, 0}, /* out of order and overlapping: allowed */
		{0x4000, 2, 0},
		{UINT64_MAX - PAGE_SIZE + 1, 1, 0}, /* the last page */
		{0xfffff00000000000ULL, 0xffffffffU, 0},
	};
	const uint32_t nin = sizeof(in) / sizeof(in[0]);
	uint8_t buf[PROTO_HDR_SIZE + 4 + 16 * 8];
	struct proto_run out[8];
	uint32_t nr;
	int n;

	n = proto_discard_encode(buf, sizeof(buf), in, nin);
	cr_assert_eq(n, PROTO_HDR_SIZE + 4 + 16 * (int)nin);
	frame_is(buf, n, PROTO_DISCARD);
	cr_assert_eq(rd32(buf + PROTO_HDR_SIZE), nin);
	cr_assert_eq(proto_discard_decode(buf + PROTO_HDR_SIZE,
					  n - PROTO_HDR_SIZE, out, 8, &nr, err,
					  sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(nr, nin);
	cr_assert_eq(memcmp(in, out, sizeof(in)), 0);
	check_truncations(PROTO_DISCARD, buf, n);
	/* one run */
	n = proto_discard_encode(buf, sizeof(buf), in + 1, 1);
	cr_assert_eq(n, PROTO_HDR_SIZE + 20);
	check_truncations(PROTO_DISCARD, buf, n);
	/* exactly the room the caller has, and one run too many for it */
	n = proto_discard_encode(buf, sizeof(buf), in, 3);
	cr_assert_eq(proto_discard_decode(buf + PROTO_HDR_SIZE,
					  n - PROTO_HDR_SIZE, out, 3, &nr, err,
					  sizeof(err)),
		     0);
	cr_assert_eq(proto_discard_decode(buf + PROTO_HDR_SIZE,
					  n - PROTO_HDR_SIZE, out, 2, &nr, err,
					  sizeof(err)),
		     -EPROTO);
	cr_assert_str_eq(err, "DISCARD: nr_runs 3 exceeds 2");
	cr_assert_eq(nr, 0);
}

Test(postcopy, discard_full_frame)
{
	size_t cap = PROTO_DISCARD_MAX_FRAME + 1;
	struct proto_run *in = calloc(PROTO_MAX_DISCARD_RUNS + 1, sizeof(*in));
	struct proto_run *out = calloc(PROTO_MAX_DISCARD_RUNS, sizeof(*out));
	uint8_t *buf = malloc(cap);
	uint8_t *q;
	uint32_t nr;
	int n;

	cr_assert(in && out && buf);
	for (uint32_t i = 0; i <= PROTO_MAX_DISCARD_RUNS; i++) {
		in[i].gpa = (uint64_t)i * 2 * PAGE_SIZE;
		in[i].npages = 1 + i % 7;
	}
	n = proto_discard_encode(buf, cap, in, PROTO_MAX_DISCARD_RUNS);
	cr_assert_eq(n, PROTO_DISCARD_MAX_FRAME);
	cr_assert_leq((uint32_t)(n - PROTO_HDR_SIZE), PROTO_MAX_PAYLOAD);
	frame_is(buf, n, PROTO_DISCARD);
	q = dup_exact(buf + PROTO_HDR_SIZE, n - PROTO_HDR_SIZE);
	cr_assert_eq(proto_discard_decode(q, n - PROTO_HDR_SIZE, out,
					  PROTO_MAX_DISCARD_RUNS, &nr, err,
					  sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(nr, PROTO_MAX_DISCARD_RUNS);
	cr_assert_eq(memcmp(in, out, PROTO_MAX_DISCARD_RUNS * sizeof(*in)), 0);
	/* the last byte of the last run missing; a byte too many */
	cr_assert_eq(proto_discard_decode(q, n - PROTO_HDR_SIZE - 1, out,
					  PROTO_MAX_DISCARD_RUNS, &nr, err,
					  sizeof(err)),
		     -EPROTO);
	cr_assert_str_eq(err, "DISCARD: truncated at runs (need 1048576 bytes "
			      "at offset 4, payload is 1048579)");
	free(q);
	buf[n] = 0;
	q = dup_exact(buf + PROTO_HDR_SIZE, n + 1 - PROTO_HDR_SIZE);
	cr_assert_eq(proto_discard_decode(q, n + 1 - PROTO_HDR_SIZE, out,
					  PROTO_MAX_DISCARD_RUNS, &nr, err,
					  sizeof(err)),
		     -EPROTO);
	cr_assert(strstr(err, "1 trailing byte"), "%s", err);
	free(q);
	/* one run over the limit: the encoder refuses, the decoder too */
	cr_assert_eq(
		proto_discard_encode(buf, cap, in, PROTO_MAX_DISCARD_RUNS + 1),
		-EINVAL);
	wr32(buf + PROTO_HDR_SIZE, PROTO_MAX_DISCARD_RUNS + 1);
	cr_assert_eq(proto_discard_decode(buf + PROTO_HDR_SIZE,
					  n - PROTO_HDR_SIZE, out, UINT32_MAX,
					  &nr, err, sizeof(err)),
		     -EPROTO);
	cr_assert_str_eq(err, "DISCARD: nr_runs 65537 exceeds 65536");
	/* a count so large that count x 16 wraps a 32-bit size */
	wr32(buf + PROTO_HDR_SIZE, 0x10000001);
	cr_assert_eq(proto_discard_decode(buf + PROTO_HDR_SIZE,
					  n - PROTO_HDR_SIZE, out, UINT32_MAX,
					  &nr, err, sizeof(err)),
		     -EPROTO);
	cr_assert_str_eq(err, "DISCARD: nr_runs 268435457 exceeds 65536");
	free(in);
	free(out);
	free(buf);
}

Test(postcopy, discard_decoder_validates_runs)
{
	uint8_t p[4 + 16 * 4];
	struct proto_run r[3] = {{0x1000, 1, 0}, {0x8000, 4, 0}, {0, 1, 0}};
	size_t len;

	/* no runs */
	len = discard_hand(p, 0, r, 0);
	pc_bad(PROTO_DISCARD, p, len, "DISCARD: nr_runs is 0");
	/* count and runs disagree */
	len = discard_hand(p, 3, r, 2);
	pc_bad(PROTO_DISCARD, p, len,
	       "DISCARD: truncated at runs (need 48 bytes at offset 4, "
	       "payload is 36)");
	len = discard_hand(p, 1, r, 2);
	pc_bad(PROTO_DISCARD, p, len,
	       "DISCARD: 16 trailing bytes after the last field (payload is "
	       "36)");
	/* misaligned gpa, in the last run */
	r[2].gpa = 0x3001;
	len = discard_hand(p, 3, r, 3);
	pc_bad(PROTO_DISCARD, p, len,
	       "DISCARD: run 2 gpa 0x3001 not page-aligned");
	r[2].gpa = 0x800;
	len = discard_hand(p, 3, r, 3);
	pc_bad(PROTO_DISCARD, p, len,
	       "DISCARD: run 2 gpa 0x800 not page-aligned");
	r[2].gpa = 0x3000;
	/* zero npages */
	r[1].npages = 0;
	len = discard_hand(p, 3, r, 3);
	pc_bad(PROTO_DISCARD, p, len, "DISCARD: run 1 has no pages");
	r[1].npages = 4;
	/* a run that wraps past 2^64 */
	r[0].gpa = UINT64_MAX - PAGE_SIZE + 1;
	r[0].npages = 2;
	len = discard_hand(p, 3, r, 3);
	pc_bad(PROTO_DISCARD, p, len,
	       "DISCARD: run 0 gpa 0xfffffffffffff000 + 2 pages overflows");
	r[0].gpa = 0xfffff00000000000ULL;
	r[0].npages = 0xffffffffU;
	len = discard_hand(p, 3, r, 3);
	cr_assert_eq(decode_any(PROTO_DISCARD, p, len), 0, "%s", err);
	r[0].gpa = 0xfffff00000001000ULL; /* ends exactly at 2^64 */
	len = discard_hand(p, 3, r, 3);
	cr_assert_eq(decode_any(PROTO_DISCARD, p, len), 0, "%s", err);
	r[0].gpa = 0xfffff00000002000ULL;
	len = discard_hand(p, 3, r, 3);
	pc_bad(PROTO_DISCARD, p, len,
	       "DISCARD: run 0 gpa 0xfffff00000002000 + 4294967295 pages "
	       "overflows");
	r[0].gpa = 0x1000;
	r[0].npages = 1;
	/* flags: none defined, not even PAGES' zero flag */
	r[1].flags = PROTO_RUN_ZERO;
	len = discard_hand(p, 3, r, 3);
	pc_bad(PROTO_DISCARD, p, len, "DISCARD: run 1 flags 0x1 not 0");
	r[1].flags = 0x80000000U;
	len = discard_hand(p, 3, r, 3);
	pc_bad(PROTO_DISCARD, p, len, "DISCARD: run 1 flags 0x80000000 not 0");
	r[1].flags = 0;
	len = discard_hand(p, 3, r, 3);
	cr_assert_eq(decode_any(PROTO_DISCARD, p, len), 0, "%s", err);
	/* the caller's room of 0 runs */
	cr_assert_eq(proto_discard_decode(p, len, r, 0, &(uint32_t){0}, err,
					  sizeof(err)),
		     -EPROTO);
	cr_assert_str_eq(err, "DISCARD: nr_runs 3 exceeds 0");
}

Test(postcopy, discard_encoder_refuses_invalid_input)
{
	uint8_t buf[PROTO_HDR_SIZE + 4 + 16 * 2];
	struct proto_run r[2] = {{0x1000, 1, 0}, {0x2000, 1, 0}};

	cr_assert_eq(proto_discard_encode(buf, sizeof(buf), r, 2),
		     (int)sizeof(buf));
	cr_assert_eq(proto_discard_encode(buf, sizeof(buf), r, 0), -EINVAL);
	cr_assert_eq(proto_discard_encode(buf, sizeof(buf), NULL, 1), -EINVAL);
	cr_assert_eq(proto_discard_encode(buf, sizeof(buf) - 1, r, 2), -ENOSPC);
	cr_assert_eq(proto_discard_encode(buf, PROTO_HDR_SIZE - 1, r, 1),
		     -ENOSPC);
	r[1].gpa = 0x2008;
	cr_assert_eq(proto_discard_encode(buf, sizeof(buf), r, 2), -EINVAL);
	r[1].gpa = 0x2000;
	r[1].npages = 0;
	cr_assert_eq(proto_discard_encode(buf, sizeof(buf), r, 2), -EINVAL);
	r[1].npages = 1;
	r[1].flags = PROTO_RUN_ZERO;
	cr_assert_eq(proto_discard_encode(buf, sizeof(buf), r, 2), -EINVAL);
	r[1].flags = 0;
	r[1].gpa = UINT64_MAX - PAGE_SIZE + 1;
	r[1].npages = 2;
	cr_assert_eq(proto_discard_encode(buf, sizeof(buf), r, 2), -EINVAL);
	r[1].npages = 1;
	cr_assert_eq(proto_discard_encode(buf, sizeof(buf), r, 2),
		     (int)sizeof(buf));
}

Test(postcopy, postcopy_and_resume_ack_round_trip)
{
	static const enum proto_type types[] = {PROTO_POSTCOPY,
						PROTO_RESUME_ACK};
	static const uint64_t runs[] = {0, 1, 65536, UINT64_MAX};
	uint8_t buf[PROTO_POSTCOPY_FRAME + 8];
	uint64_t cookie, nr;
	int n;

	for (size_t t = 0; t < 2; t++) {
		for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
			uint64_t want = 0x0123456789abcdefULL + i;

			n = types[t] == PROTO_POSTCOPY
				    ? proto_postcopy_encode(buf, sizeof(buf),
							    want, runs[i])
				    : proto_resume_ack_encode(buf, sizeof(buf),
							      want, runs[i]);
			cr_assert_eq(n, PROTO_POSTCOPY_FRAME);
			frame_is(buf, n, types[t]);
			cookie = nr = 42;
			cr_assert_eq(types[t] == PROTO_POSTCOPY
					     ? proto_postcopy_decode(
						       buf + PROTO_HDR_SIZE, 16,
						       &cookie, &nr, err,
						       sizeof(err))
					     : proto_resume_ack_decode(
						       buf + PROTO_HDR_SIZE, 16,
						       &cookie, &nr, err,
						       sizeof(err)),
				     0, "%s", err);
			cr_assert_eq(cookie, want);
			cr_assert_eq(nr, runs[i]);
			check_truncations(types[t], buf, n);
		}
		/* cookie 0 is "none": refused both ways */
		wr64(buf + PROTO_HDR_SIZE, 0);
		pc_bad(types[t], buf + PROTO_HDR_SIZE, 16,
		       types[t] == PROTO_POSTCOPY ? "POSTCOPY: cookie is 0"
						  : "RESUME_ACK: cookie is 0");
	}
	cr_assert_eq(proto_postcopy_encode(buf, sizeof(buf), 0, 1), -EINVAL);
	cr_assert_eq(proto_resume_ack_encode(buf, sizeof(buf), 0, 1), -EINVAL);
	cr_assert_eq(proto_postcopy_encode(buf, PROTO_POSTCOPY_FRAME - 1, 1, 1),
		     -ENOSPC);
	cr_assert_eq(
		proto_resume_ack_encode(buf, PROTO_POSTCOPY_FRAME - 1, 1, 1),
		-ENOSPC);
	/* outputs are zero after a refusal */
	proto_postcopy_encode(buf, sizeof(buf), 7, 9);
	cookie = nr = 42;
	cr_assert_eq(proto_postcopy_decode(buf + PROTO_HDR_SIZE, 17, &cookie,
					   &nr, err, sizeof(err)),
		     -EPROTO);
	cr_assert_eq(cookie, 0);
	cr_assert_eq(nr, 0);
	cr_assert_str_eq(err, "POSTCOPY: 1 trailing byte after the last field "
			      "(payload is 17)");
	cr_assert_eq(proto_postcopy_decode(buf + PROTO_HDR_SIZE, 12, &cookie,
					   &nr, err, sizeof(err)),
		     -EPROTO);
	cr_assert_str_eq(err, "POSTCOPY: truncated at nr_runs (need 8 bytes "
			      "at offset 8, payload is 12)");
}

Test(postcopy, urgent_hello_and_resume_round_trip)
{
	static const enum proto_type types[] = {PROTO_URGENT_HELLO,
						PROTO_RESUME};
	static const uint64_t cookies[] = {1, 0x8000000000000000ULL, UINT64_MAX,
					   0xfeedfacecafebeefULL};
	uint8_t buf[PROTO_COOKIE_FRAME + 8];
	uint64_t cookie;
	int n;

	for (size_t t = 0; t < 2; t++) {
		bool urgent = types[t] == PROTO_URGENT_HELLO;

		for (size_t i = 0; i < sizeof(cookies) / sizeof(cookies[0]);
		     i++) {
			n = urgent ? proto_urgent_hello_encode(buf, sizeof(buf),
							       cookies[i])
				   : proto_resume_encode(buf, sizeof(buf),
							 cookies[i]);
			cr_assert_eq(n, PROTO_COOKIE_FRAME);
			frame_is(buf, n, types[t]);
			cookie = 0;
			cr_assert_eq(urgent ? proto_urgent_hello_decode(
						      buf + PROTO_HDR_SIZE, 8,
						      &cookie, err, sizeof(err))
					    : proto_resume_decode(
						      buf + PROTO_HDR_SIZE, 8,
						      &cookie, err,
						      sizeof(err)),
				     0, "%s", err);
			cr_assert_eq(cookie, cookies[i]);
			check_truncations(types[t], buf, n);
		}
		wr64(buf + PROTO_HDR_SIZE, 0);
		pc_bad(types[t], buf + PROTO_HDR_SIZE, 8,
		       urgent ? "URGENT_HELLO: cookie is 0"
			      : "RESUME: cookie is 0");
	}
	cr_assert_eq(proto_urgent_hello_encode(buf, sizeof(buf), 0), -EINVAL);
	cr_assert_eq(proto_resume_encode(buf, sizeof(buf), 0), -EINVAL);
	cr_assert_eq(proto_urgent_hello_encode(buf, PROTO_COOKIE_FRAME - 1, 1),
		     -ENOSPC);
	cr_assert_eq(proto_resume_encode(buf, PROTO_COOKIE_FRAME - 1, 1),
		     -ENOSPC);
	proto_resume_encode(buf, sizeof(buf), 5);
	cr_assert_eq(proto_resume_decode(buf + PROTO_HDR_SIZE, 9, &cookie, err,
					 sizeof(err)),
		     -EPROTO);
	cr_assert_eq(cookie, 0);
	cr_assert_str_eq(err, "RESUME: 1 trailing byte after the last field "
			      "(payload is 9)");
	cr_assert_eq(proto_urgent_hello_decode(buf + PROTO_HDR_SIZE, 7, &cookie,
					       err, sizeof(err)),
		     -EPROTO);
	cr_assert_str_eq(err, "URGENT_HELLO: truncated at cookie (need 8 "
			      "bytes at offset 0, payload is 7)");
}

Test(postcopy, page_req_round_trip)
{
	uint64_t in[PROTO_MAX_PAGE_REQ], out[PROTO_MAX_PAGE_REQ];
	uint8_t buf[PROTO_PAGE_REQ_MAX_FRAME + 8];
	uint32_t nr;
	int n;

	for (int i = 0; i < PROTO_MAX_PAGE_REQ; i++)
		in[i] = (rnd() & ~(uint64_t)(PAGE_SIZE - 1));
	in[0] = 0;
	in[1] = UINT64_MAX - PAGE_SIZE + 1;
	in[2] = in[3]; /* the same page twice: allowed */
	for (uint32_t k = 1; k <= PROTO_MAX_PAGE_REQ; k++) {
		n = proto_page_req_encode(buf, sizeof(buf), in, k);
		cr_assert_eq(n, PROTO_HDR_SIZE + 4 + 8 * (int)k);
		frame_is(buf, n, PROTO_PAGE_REQ);
		memset(out, 0, sizeof(out));
		cr_assert_eq(proto_page_req_decode(buf + PROTO_HDR_SIZE,
						   n - PROTO_HDR_SIZE, out, &nr,
						   err, sizeof(err)),
			     0, "%s", err);
		cr_assert_eq(nr, k);
		cr_assert_eq(memcmp(in, out, k * sizeof(in[0])), 0);
		if (k == 1 || k == 2 || k == PROTO_MAX_PAGE_REQ)
			check_truncations(PROTO_PAGE_REQ, buf, n);
	}
	cr_assert_eq(n, PROTO_PAGE_REQ_MAX_FRAME);
}

Test(postcopy, page_req_limits)
{
	uint64_t gpa[PROTO_MAX_PAGE_REQ + 1], out[PROTO_MAX_PAGE_REQ];
	uint8_t p[4 + 8 * (PROTO_MAX_PAGE_REQ + 1)];
	uint8_t buf[PROTO_PAGE_REQ_MAX_FRAME + 8];
	uint32_t nr = 99;

	for (int i = 0; i <= PROTO_MAX_PAGE_REQ; i++) {
		gpa[i] = (uint64_t)i << 20;
		wr64(p + 4 + 8 * i, gpa[i]);
	}
	/* nr 0 */
	wr32(p, 0);
	pc_bad(PROTO_PAGE_REQ, p, 4, "PAGE_REQ: nr 0 not in 1..64");
	/* nr 65, the addresses all there */
	wr32(p, PROTO_MAX_PAGE_REQ + 1);
	pc_bad(PROTO_PAGE_REQ, p, sizeof(p), "PAGE_REQ: nr 65 not in 1..64");
	wr32(p, UINT32_MAX);
	pc_bad(PROTO_PAGE_REQ, p, sizeof(p),
	       "PAGE_REQ: nr 4294967295 not in 1..64");
	/* nr and length disagree */
	wr32(p, 3);
	pc_bad(PROTO_PAGE_REQ, p, 4 + 8 * 2,
	       "PAGE_REQ: truncated at gpas (need 24 bytes at offset 4, "
	       "payload is 20)");
	pc_bad(PROTO_PAGE_REQ, p, 4 + 8 * 4,
	       "PAGE_REQ: 8 trailing bytes after the last field (payload is "
	       "36)");
	/* misaligned addresses */
	wr64(p + 4 + 8 * 2, 0x1234);
	pc_bad(PROTO_PAGE_REQ, p, 4 + 8 * 3,
	       "PAGE_REQ: gpa 2 0x1234 not page-aligned");
	wr64(p + 4 + 8 * 2, UINT64_MAX);
	pc_bad(PROTO_PAGE_REQ, p, 4 + 8 * 3,
	       "PAGE_REQ: gpa 2 0xffffffffffffffff not page-aligned");
	wr64(p + 4 + 8 * 2, 0x2000);
	cr_assert_eq(
		proto_page_req_decode(p, 4 + 8 * 3, out, &nr, err, sizeof(err)),
		0, "%s", err);
	cr_assert_eq(nr, 3);
	cr_assert_eq(out[2], 0x2000);
	/* a refused request reports no addresses */
	wr32(p, 0);
	cr_assert_eq(proto_page_req_decode(p, 4, out, &nr, err, sizeof(err)),
		     -EPROTO);
	cr_assert_eq(nr, 0);
	/* the encoder refuses the same */
	cr_assert_eq(proto_page_req_encode(buf, sizeof(buf), gpa, 0), -EINVAL);
	cr_assert_eq(proto_page_req_encode(buf, sizeof(buf), gpa,
					   PROTO_MAX_PAGE_REQ + 1),
		     -EINVAL);
	cr_assert_eq(proto_page_req_encode(buf, sizeof(buf), NULL, 1), -EINVAL);
	gpa[5] |= 0x800;
	cr_assert_eq(proto_page_req_encode(buf, sizeof(buf), gpa, 6), -EINVAL);
	cr_assert_eq(proto_page_req_encode(buf, sizeof(buf), gpa, 5),
		     PROTO_HDR_SIZE + 4 + 40);
	cr_assert_eq(
		proto_page_req_encode(buf, PROTO_HDR_SIZE + 4 + 39, gpa, 5),
		-ENOSPC);
}

Test(postcopy, empty_messages)
{
	const enum proto_type types[] = {PROTO_POSTCOPY_END, PROTO_COMPLETE,
					 PROTO_SYNC};
	uint8_t buf[PROTO_HDR_SIZE + 1];

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		int n = proto_empty_encode(buf, sizeof(buf), types[i]);

		cr_assert_eq(n, PROTO_HDR_SIZE);
		frame_is(buf, n, types[i]);
		check_truncations(types[i], buf, n);
	}
	cr_assert_eq(
		proto_empty_decode(buf, 1, PROTO_COMPLETE, err, sizeof(err)),
		-EPROTO);
	cr_assert_str_eq(err, "COMPLETE: payload must be empty, got 1 bytes");
	/* the post-copy messages with a payload are not empty ones */
	for (unsigned int t = PROTO_DISCARD; t <= PROTO_RESUME_ACK; t++) {
		if (t == PROTO_POSTCOPY_END || t == PROTO_COMPLETE)
			continue;
		cr_assert_eq(proto_empty_encode(buf, sizeof(buf),
						(enum proto_type)t),
			     -EINVAL, "%s", proto_type_name(t));
		cr_assert_eq(proto_empty_decode(buf, 0, (enum proto_type)t, err,
						sizeof(err)),
			     -EPROTO);
	}
}

Test(postcopy, messages_are_told_apart)
{
	uint8_t a[PROTO_POSTCOPY_FRAME], b[PROTO_POSTCOPY_FRAME];
	uint8_t c[PROTO_COOKIE_FRAME], d[PROTO_COOKIE_FRAME];

	/* same payload, different type: the header (and CRC) differ */
	cr_assert_eq(proto_postcopy_encode(a, sizeof(a), 9, 3),
		     PROTO_POSTCOPY_FRAME);
	cr_assert_eq(proto_resume_ack_encode(b, sizeof(b), 9, 3),
		     PROTO_POSTCOPY_FRAME);
	cr_assert_eq(memcmp(a + PROTO_HDR_SIZE, b + PROTO_HDR_SIZE, 16), 0);
	cr_assert_neq(memcmp(a, b, PROTO_HDR_SIZE), 0);
	cr_assert_eq(proto_urgent_hello_encode(c, sizeof(c), 9),
		     PROTO_COOKIE_FRAME);
	cr_assert_eq(proto_resume_encode(d, sizeof(d), 9), PROTO_COOKIE_FRAME);
	cr_assert_eq(memcmp(c + PROTO_HDR_SIZE, d + PROTO_HDR_SIZE, 8), 0);
	cr_assert_neq(memcmp(c, d, PROTO_HDR_SIZE), 0);
	frame_is(a, sizeof(a), PROTO_POSTCOPY);
	frame_is(b, sizeof(b), PROTO_RESUME_ACK);
	frame_is(c, sizeof(c), PROTO_URGENT_HELLO);
	frame_is(d, sizeof(d), PROTO_RESUME);
	/* little-endian on the wire */
	cr_assert_eq(a[PROTO_HDR_SIZE], 9);
	cr_assert_eq(a[PROTO_HDR_SIZE + 8], 3);
	cr_assert_eq(a[4], PROTO_POSTCOPY);
	cr_assert_eq(b[4], PROTO_RESUME_ACK);
}

/* ---- random input -------------------------------------------------------- */

Test(random, hundred_thousand_random_frames, .timeout = 120)
{
	static uint8_t buf[2048];
	struct proto_hdr h;
	int accepted = 0, decoded = 0;

	for (int i = 0; i < 100000; i++) {
		size_t n = rnd() % sizeof(buf);
		uint8_t *q;

		fill_random(buf, n);
		/* most get a plausible header and a right CRC, to go deeper */
		if (n >= PROTO_HDR_SIZE && i % 4) {
			wr32(buf, PROTO_MAGIC);
			wr16(buf + 4,
			     (uint16_t)(1 + rnd() % (PROTO_TYPE_MAX - 1)));
			wr16(buf + 6, 0);
			if (i % 8)
				wr32(buf + 8, (uint32_t)(n - PROTO_HDR_SIZE));
			if (i % 16)
				proto_frame_seal(
					buf, type_at(buf),
					rd32(buf + 8) <= n - PROTO_HDR_SIZE
						? rd32(buf + 8)
						: 0);
		}
		q = dup_exact(buf, n);
		if (n >= PROTO_HDR_SIZE &&
		    proto_hdr_decode(q, &h, err, sizeof(err)) == 0 &&
		    h.len <= n - PROTO_HDR_SIZE &&
		    proto_frame_check(q, &h, err, sizeof(err)) == 0)
			accepted++;
		if (proto_frame_decode(q, n, &h, err, sizeof(err)) > 0 &&
		    decode_any(h.type, q + PROTO_HDR_SIZE, h.len) == 0)
			decoded++;
		for (unsigned int t = 1; t < PROTO_TYPE_MAX; t++)
			decode_any(t, q, n);
		free(q);
	}
	cr_assert_gt(accepted, 10000);
	cr_log_info("random frames: %d of 100000 passed the frame layer, %d "
		    "decoded",
		    accepted, decoded);
}
