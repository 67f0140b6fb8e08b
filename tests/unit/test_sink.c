/* SPDX-License-Identifier: MIT */
/*
 * test_sink.c - a live PAGES frame's data read from a socket straight into
 * guest RAM (dest_sink.c, MIG_SPLICE_DIRECT), no KVM: the head taken by
 * dest_sink_begin (runs checked, zero runs punched, data already in hand
 * placed), then the data arriving in pieces that end mid-page, each read
 * by mig_splice_readv into the iovecs dest_sink_iov gives and accounted
 * by dest_sink_placed; the zero runs skipped, the iovecs bounded, and
 * data beyond the runs refused; the connection's pipe made only for a
 * frame taken through it (mig_splice_take). The end-to-end path is
 * t_migrate_loopback's and t_migrate_channels' direct_bytes.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/page.h"
#include "ept/mem.h"
#include "migration/dest.h"
#include "migration/splice.h"
#include "proto/proto.h"

static char err[256];

static const uint64_t gpas[] = {0x0000, 0x1000, 0x2000, 0x3000, 0x4000,
				0x8000, 0x9000, 0xa000, 0xc000, 0xd000};
static const int zero[] = {0, 0, 0, 1, 1, 0, 0, 0, 1, 0};
#define NPAGES 10
#define NDATA  7

static uint8_t *page_of(int i)
{
	static uint8_t pages[NPAGES][PAGE_SIZE];
	uint8_t *p = pages[i];

	for (int k = 0; k < (int)PAGE_SIZE; k++)
		p[k] = (uint8_t)(i * 31 + k / 7 + 1);
	return p;
}

/* Four runs of data and zero pages: 0-2 data, 3-4 zero, 8-a data, c zero,
 * d data (five runs). */
static void batch_mixed(struct proto_batch *b)
{
	proto_batch_init(b);
	for (int i = 0; i < NPAGES; i++)
		cr_assert_eq(proto_batch_add(b, gpas[i],
					     zero[i] ? NULL : page_of(i)),
			     0);
}

/* The data pages in order, as the frame carries them after its head. */
static uint8_t *data_of(void)
{
	uint8_t *d = malloc(NDATA * PAGE_SIZE), *p = d;

	cr_assert_not_null(d);
	for (int i = 0; i < NPAGES; i++) {
		if (zero[i])
			continue;
		memcpy(p, page_of(i), PAGE_SIZE);
		p += PAGE_SIZE;
	}
	return d;
}

struct fixture {
	struct guest_mem m;
	struct proto_batch *in, *out;
	struct mig_sink s;
	uint8_t f[PROTO_PAGES_HEAD_MAX + 512];
	size_t head, len;
};

/* RAM with garbage where the zero pages go; the frame's head encoded. */
static void setup(struct fixture *x)
{
	struct iovec iov[PROTO_MAX_BATCH];
	int niov, n;

	memset(x, 0, sizeof(*x));
	cr_assert_eq(mem_create(&x->m, 16ULL << 20), 0);
	memset(x->m.base, 0xee, 64 * PAGE_SIZE);
	x->in = malloc(sizeof(*x->in));
	x->out = malloc(sizeof(*x->out));
	cr_assert(x->in && x->out);
	batch_mixed(x->in);
	n = proto_pages_encode_head(x->f, PROTO_PAGES_HEAD_MAX, x->in, true,
				    iov, &niov);
	cr_assert_gt(n, 0);
	x->head = (size_t)n - PROTO_HDR_SIZE;
	x->len = x->head + NDATA * PAGE_SIZE;
}

static void teardown(struct fixture *x)
{
	mem_destroy(&x->m);
	free(x->in);
	free(x->out);
}

static void check_ram(struct fixture *x)
{
	static const uint8_t zeros[PAGE_SIZE];

	for (int i = 0; i < NPAGES; i++)
		cr_assert_eq(memcmp(x->m.base + gpas[i],
				    zero[i] ? zeros : page_of(i), PAGE_SIZE),
			     0, "page at 0x%llx", (unsigned long long)gpas[i]);
}

/* Feed the data after the first extra bytes in pieces of piece bytes. */
static void feed(struct fixture *x, size_t extra, size_t piece)
{
	uint8_t *data = data_of();
	size_t sent = extra, total = NDATA * PAGE_SIZE;
	struct mig_splice sp = {.direct = true, .rest = total - extra};
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv),
		     0);
	while (sp.rest) {
		struct iovec iov[MIG_SPLICE_IOV];
		int niov = dest_sink_iov(&x->m, &x->s, sp.rest, iov,
					 MIG_SPLICE_IOV, err, sizeof(err));
		ssize_t n;

		cr_assert_gt(niov, 0, "%s", err);
		n = mig_splice_readv(&sp, sv[0], iov, niov);
		if (n == -EAGAIN) {
			size_t k = total - sent < piece ? total - sent : piece;

			cr_assert_gt(k, 0, "nothing left to send");
			cr_assert_eq(write(sv[1], data + sent, k), (ssize_t)k);
			sent += k;
			continue;
		}
		cr_assert_gt(n, 0);
		dest_sink_placed(&x->s, (size_t)n);
	}
	close(sv[0]);
	close(sv[1]);
	free(data);
}

Test(sink, direct_read_in_pieces)
{
	struct fixture x;

	setup(&x);
	cr_assert_eq(dest_sink_begin(&x.m, &x.s, x.out, x.f + PROTO_HDR_SIZE,
				     x.head, x.len, true, err, sizeof(err)),
		     MIG_SPLICE_DIRECT, "%s", err);
	feed(&x, 0, 5000); /* pieces end mid-page and cross runs */
	cr_assert_eq(x.s.got, x.s.want);
	cr_assert_eq(x.s.direct, NDATA * PAGE_SIZE);
	cr_assert_eq(x.s.spliced, 0);
	cr_assert_eq(x.s.head, 0);
	check_ram(&x);
	teardown(&x);
}

Test(sink, data_in_hand_then_direct)
{
	struct fixture x;
	uint8_t *data = data_of();

	setup(&x);
	/* 100 bytes of data came with the head: placed by begin. */
	memcpy(x.f + PROTO_HDR_SIZE + x.head, data, 100);
	cr_assert_eq(dest_sink_begin(&x.m, &x.s, x.out, x.f + PROTO_HDR_SIZE,
				     x.head + 100, x.len, false, err,
				     sizeof(err)),
		     MIG_SPLICE_PIPE, "%s", err);
	cr_assert_eq(x.s.got, 100);
	cr_assert_eq(x.s.head, 100);
	feed(&x, 100, 3 * PAGE_SIZE);
	cr_assert_eq(x.s.got, x.s.want);
	cr_assert_eq(x.s.direct, NDATA * PAGE_SIZE - 100);
	cr_assert_eq(x.s.head, 100, "the data in hand counts once");
	check_ram(&x);
	teardown(&x);
	free(data);
}

Test(sink, iovecs_skip_zero_runs_and_stop_at_niov)
{
	struct fixture x;
	struct iovec iov[4];

	setup(&x);
	cr_assert_eq(dest_sink_begin(&x.m, &x.s, x.out, x.f + PROTO_HDR_SIZE,
				     x.head, x.len, true, err, sizeof(err)),
		     MIG_SPLICE_DIRECT);
	cr_assert_eq(dest_sink_iov(&x.m, &x.s, NDATA * PAGE_SIZE, iov, 2, err,
				   sizeof(err)),
		     2);
	cr_assert_eq(iov[0].iov_base, x.m.base + 0x0000);
	cr_assert_eq(iov[0].iov_len, 3 * PAGE_SIZE);
	cr_assert_eq(iov[1].iov_base, x.m.base + 0x8000);
	cr_assert_eq(iov[1].iov_len, 3 * PAGE_SIZE);
	/* max ends inside the second run. */
	cr_assert_eq(dest_sink_iov(&x.m, &x.s, 3 * PAGE_SIZE + 10, iov, 4, err,
				   sizeof(err)),
		     2);
	cr_assert_eq(iov[1].iov_len, 10);
	/* Asking the sink for nothing moves nothing. */
	cr_assert_eq(x.s.got, 0);
	teardown(&x);
}

Test(sink, data_beyond_the_runs_is_refused)
{
	struct fixture x;
	struct iovec iov[MIG_SPLICE_IOV];

	setup(&x);
	cr_assert_eq(dest_sink_begin(&x.m, &x.s, x.out, x.f + PROTO_HDR_SIZE,
				     x.head, x.len, true, err, sizeof(err)),
		     MIG_SPLICE_DIRECT);
	cr_assert_eq(dest_sink_iov(&x.m, &x.s, NDATA * PAGE_SIZE + 1, iov,
				   MIG_SPLICE_IOV, err, sizeof(err)),
		     -EPROTO);
	cr_assert(strstr(err, "beyond its runs"), "%s", err);
	teardown(&x);
}

/* The pipe is made at the first frame taken through it, never for direct. */
Test(sink, pipe_made_only_when_a_frame_goes_through_one)
{
	struct mig_splice sp = {0};
	int rd, wr;

	cr_assert_eq(
		mig_splice_take(&sp, MIG_SPLICE_DIRECT, 100, err, sizeof(err)),
		0, "%s", err);
	cr_assert(sp.direct && !sp.open && sp.rest == 100);
	cr_assert_eq(
		mig_splice_take(&sp, MIG_SPLICE_PIPE, 200, err, sizeof(err)), 0,
		"%s", err);
	cr_assert(!sp.direct && sp.open && sp.rest == 200);
	rd = sp.pipe[0];
	wr = sp.pipe[1];
	cr_assert_eq(
		mig_splice_take(&sp, MIG_SPLICE_PIPE, 300, err, sizeof(err)), 0,
		"%s", err);
	cr_assert(sp.pipe[0] == rd && sp.pipe[1] == wr, "a second pipe");
	mig_splice_close(&sp);
	cr_assert(!sp.open);
	cr_assert_eq(fcntl(rd, F_GETFD), -1, "the pipe was not closed");
}
