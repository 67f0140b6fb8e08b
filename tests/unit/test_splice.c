/* SPDX-License-Identifier: MIT */
/*
 * test_splice.c - the two halves of receiving page data by splice(2), no
 * KVM: proto_pages_decode_head (a live PAGES frame's runs taken from its
 * first bytes, before its data has come; anything else left to the full
 * decoder) and mem_splice_in (bytes waiting in a pipe moved into guest
 * RAM's memfd at a page's offset, seen through the RAM mapping; a range
 * outside RAM refused before a byte moves). The end-to-end path (socket ->
 * pipe -> memfd in a migration) is t_migrate_precopy's spliced_bytes.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/page.h"
#include "ept/mem.h"
#include "ept/ram_io.h"
#include "proto/proto.h"

#define MiB (1ULL << 20)

static char err[256];

static uint8_t *page_of(uint8_t seed)
{
	static uint8_t pages[8][PAGE_SIZE];
	uint8_t *p = pages[seed % 8];

	for (int i = 0; i < (int)PAGE_SIZE; i++)
		p[i] = (uint8_t)(seed * 7 + i / 64);
	return p;
}

/* Three data runs and two zero runs, 7 data pages. */
static struct proto_batch *batch_mixed(void)
{
	struct proto_batch *b = malloc(sizeof(*b));
	static const uint64_t gpas[] = {0x0000, 0x1000, 0x2000, 0x3000, 0x4000,
					0x8000, 0x9000, 0xa000, 0xc000, 0xd000};
	static const int zero[] = {0, 0, 0, 1, 1, 0, 0, 0, 1, 0};

	cr_assert_not_null(b);
	proto_batch_init(b);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(proto_batch_add(b, gpas[i],
					     zero[i] ? NULL : page_of(i)),
			     0);
	return b;
}

/* The frame's head (header, fixed fields, runs) and its length. */
static size_t head_of(const struct proto_batch *b, bool live, uint8_t *f,
		      size_t *len)
{
	struct iovec iov[PROTO_MAX_BATCH];
	int niov = -1;
	int n = proto_pages_encode_head(f, PROTO_PAGES_HEAD_MAX, b, live, iov,
					&niov);

	cr_assert_gt(n, 0, "encode_head: %d", n);
	*len = (size_t)n - PROTO_HDR_SIZE + (size_t)b->nr_data * PAGE_SIZE;
	return (size_t)n - PROTO_HDR_SIZE;
}

Test(decode_head, runs_before_the_data)
{
	struct proto_batch *b = batch_mixed(), *out = malloc(sizeof(*out));
	uint8_t *f = malloc(PROTO_PAGES_HEAD_MAX);
	size_t len, head = 0, h = head_of(b, true, f, &len);
	const uint8_t *p = f + PROTO_HDR_SIZE;

	cr_assert_eq(b->nr_runs, 5);
	/* Only the head here, then the head and part of the data. */
	for (size_t have = h; have <= h + 100; have += 100) {
		cr_assert_eq(proto_pages_decode_head(p, have, len, out, &head,
						     err, sizeof(err)),
			     0, "%s", err);
		cr_assert_eq(head, h);
		cr_assert_eq(out->nr_runs, b->nr_runs);
		cr_assert_eq(out->nr_data, 7);
		cr_assert_null(out->raw);
		for (int i = 0; i < b->nr_runs; i++) {
			cr_assert_eq(out->runs[i].gpa, b->runs[i].gpa);
			cr_assert_eq(out->runs[i].npages, b->runs[i].npages);
			cr_assert_eq(out->runs[i].flags, b->runs[i].flags);
		}
	}
	free(f);
	free(out);
	free(b);
}

Test(decode_head, refuses_what_it_cannot_place)
{
	struct proto_batch *b = batch_mixed(), *out = malloc(sizeof(*out));
	uint8_t *f = malloc(PROTO_PAGES_HEAD_MAX);
	size_t len, head, h = head_of(b, true, f, &len);
	uint8_t *p = f + PROTO_HDR_SIZE;

	/* The runs not all here yet: an error, never a guess. */
	cr_assert_eq(proto_pages_decode_head(p, h - 1, len, out, &head, err,
					     sizeof(err)),
		     -EPROTO);
	cr_assert_eq(out->nr_runs, 0);
	/* Data that does not match the runs' count. */
	cr_assert_eq(proto_pages_decode_head(p, h, len + PAGE_SIZE, out, &head,
					     err, sizeof(err)),
		     -EPROTO);
	cr_assert(strstr(err, "follow"), "%s", err);
	/* Not live (paused guest: data under the CRC), or zstd: not ours. */
	p[2] &= (uint8_t)~PROTO_PAGES_LIVE;
	cr_assert_eq(proto_pages_decode_head(p, h, len, out, &head, err,
					     sizeof(err)),
		     -ENOTSUP);
	p[2] |= PROTO_PAGES_ZSTD | PROTO_PAGES_LIVE;
	cr_assert_eq(proto_pages_decode_head(p, h, len, out, &head, err,
					     sizeof(err)),
		     -ENOTSUP);
	/* Too short for the fixed fields. */
	cr_assert_eq(proto_pages_decode_head(p, 4, len, out, &head, err,
					     sizeof(err)),
		     -ENOTSUP);
	free(f);
	free(out);
	free(b);
}

/* Bytes from a pipe land in guest RAM at gpa, even mid-page. */
Test(mem_splice_in, pipe_into_guest_ram)
{
	struct guest_mem m;
	uint8_t *src = malloc(3 * PAGE_SIZE + 100), back[10];
	int pp[2];

	cr_assert_eq(mem_create(&m, 16 * MiB), 0);
	cr_assert_eq(pipe(pp), 0);
	for (size_t i = 0; i < 3 * PAGE_SIZE + 100; i++)
		src[i] = (uint8_t)(i * 31 + 7);
	/* A page and a half, then the rest: as a socket's pieces come. */
	cr_assert_eq(write(pp[1], src, PAGE_SIZE + 2048), PAGE_SIZE + 2048);
	cr_assert_eq(mem_splice_in(&m, pp[0], 0x5000, PAGE_SIZE + 2048), 0);
	cr_assert_eq(write(pp[1], src + PAGE_SIZE + 2048, 2 * PAGE_SIZE - 1948),
		     2 * PAGE_SIZE - 1948);
	cr_assert_eq(mem_splice_in(&m, pp[0], 0x5000 + PAGE_SIZE + 2048,
				   2 * PAGE_SIZE - 1948),
		     0);
	cr_assert_eq(memcmp(m.base + 0x5000, src, 3 * PAGE_SIZE + 100), 0);
	cr_assert_eq(m.base[0x4fff], 0);
	cr_assert_eq(m.base[0x5000 + 3 * PAGE_SIZE + 100], 0);
	/* Beyond RAM: refused, the pipe's bytes left where they are. */
	cr_assert_eq(write(pp[1], src, 10), 10);
	cr_assert_eq(mem_splice_in(&m, pp[0], 16 * MiB - 4, 10), -EFAULT);
	cr_assert_eq(read(pp[0], back, 10), 10);
	cr_assert_eq(memcmp(src, back, 10), 0);
	close(pp[0]);
	close(pp[1]);
	mem_destroy(&m);
	free(src);
}
