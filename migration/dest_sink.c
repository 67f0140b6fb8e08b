/* SPDX-License-Identifier: MIT */
/*
 * dest_sink.c - a live PAGES frame whose data the destination takes
 * straight from the socket (splice.h, dest.h): its runs checked against
 * RAM and its zero runs punched at the head, then the data placed run by
 * run as it comes, either from the channel's pipe (splice into the memfd:
 * one copy in the kernel) or, where guest RAM is populated (--mem-prealloc:
 * no page is a hole and no userfaultfd is registered), read from the
 * socket into the mapping itself (readv: one copy, without the memfd's
 * page-cache lookup and lock per page, ~35% less CPU here). --verify hashes
 * the frame's pages once all are in. Owned by the thread that reads the
 * frame's connection (the loop's, or an extra channel's).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/page.h"
#include "ept/ram_io.h"
#include "migration/dest.h"
#include "vmm/vm.h"

/*
 * The next piece of data the sink expects: its guest-physical address and
 * length (at most n), zero and finished runs skipped. 0 when the runs are
 * done (the frame has more data than its runs: the caller says so).
 */
static uint64_t dest_sink_next(struct mig_sink *s, uint64_t n, uint64_t *gpa)
{
	while (s->run < s->b->nr_runs) {
		const struct proto_run *run = &s->b->runs[s->run];
		uint64_t left = (uint64_t)run->npages * PAGE_SIZE - s->off;

		if ((run->flags & PROTO_RUN_ZERO) || !left) {
			s->run++;
			s->off = 0;
			continue;
		}
		*gpa = run->gpa + s->off;
		return n < left ? n : left;
	}
	return 0;
}

static void dest_sink_advance(struct mig_sink *s, uint64_t k)
{
	s->off += k;
	s->got += k;
}

static int dest_sink_beyond(char *err, size_t errlen)
{
	snprintf(err, errlen, "PAGES: data beyond its runs");
	return -EPROTO;
}

/*
 * The next n bytes of the frame's data into its runs, from buf or (NULL)
 * from the pipe pipe_rd, as far as the sink had got.
 */
int dest_sink_take(const struct guest_mem *m, struct mig_sink *s,
		   const uint8_t *buf, int pipe_rd, size_t n, char *err,
		   size_t errlen)
{
	while (n) {
		uint64_t gpa, k = dest_sink_next(s, n, &gpa);
		int r;

		if (!k)
			return dest_sink_beyond(err, errlen);
		r = buf ? mem_pwrite(m, gpa, buf, k)
			: mem_splice_in(m, pipe_rd, gpa, k);
		if (r) {
			snprintf(err, errlen,
				 "writing %llu bytes at 0x%llx: %s",
				 (unsigned long long)k, (unsigned long long)gpa,
				 r == -EFAULT ? "outside guest RAM"
					      : strerror(-r));
			return r;
		}
		if (buf) {
			buf += k;
			s->head += k;
		} else {
			s->spliced += k;
		}
		dest_sink_advance(s, k);
		n -= k;
	}
	return 0;
}

int dest_sink_iov(const struct guest_mem *m, const struct mig_sink *s,
		  size_t max, struct iovec *iov, int niov, char *err,
		  size_t errlen)
{
	struct mig_sink t = *s;
	int n = 0;

	while (max && n < niov) {
		uint64_t gpa, k = dest_sink_next(&t, max, &gpa);

		if (!k)
			return dest_sink_beyond(err, errlen);
		iov[n].iov_base = mem_gpa_to_hva(m, gpa, k);
		iov[n++].iov_len = k; /* in RAM: dest_sink_begin checked */
		dest_sink_advance(&t, k);
		max -= k;
	}
	return n;
}

void dest_sink_placed(struct mig_sink *s, size_t n)
{
	s->direct += n;
	while (n) {
		uint64_t gpa, k = dest_sink_next(s, n, &gpa);

		dest_sink_advance(s, k); /* k > 0: dest_sink_iov came here */
		n -= k;
	}
}

/*
 * A live PAGES frame's head (p: have of its len payload bytes) into b and
 * the sink: every run checked against RAM before a byte is placed, zero
 * runs punched, the data already here placed. MIG_SPLICE_PIPE or
 * MIG_SPLICE_DIRECT (direct): the sink takes the rest; 0: not live or
 * zstd (read it whole); or -errno with err set.
 */
int dest_sink_begin(const struct guest_mem *m, struct mig_sink *s,
		    struct proto_batch *b, const uint8_t *p, size_t have,
		    size_t len, bool direct, char *err, size_t errlen)
{
	size_t head;
	int r = proto_pages_decode_head(p, have, len, b, &head, err, errlen);

	if (r)
		return r == -ENOTSUP ? 0 : r;
	for (int i = 0; i < b->nr_runs; i++) {
		const struct proto_run *run = &b->runs[i];

		if (!mem_gpa_to_hva(m, run->gpa,
				    (uint64_t)run->npages * PAGE_SIZE)) {
			snprintf(err, errlen,
				 "PAGES: %u pages at 0x%llx: outside guest RAM",
				 run->npages, (unsigned long long)run->gpa);
			return -EFAULT;
		}
	}
	for (int i = 0; i < b->nr_runs; i++) {
		const struct proto_run *run = &b->runs[i];

		if (!(run->flags & PROTO_RUN_ZERO))
			continue;
		r = mem_punch_range(m, run->gpa, run->npages);
		if (r) {
			snprintf(err, errlen, "zeroing %u pages at 0x%llx: %s",
				 run->npages, (unsigned long long)run->gpa,
				 strerror(-r));
			return r;
		}
	}
	s->b = b;
	s->run = 0;
	s->off = 0;
	s->want = (uint64_t)b->nr_data * PAGE_SIZE;
	s->got = 0;
	s->hashed = false;
	r = dest_sink_take(m, s, p + head, -1, have - head, err, errlen);
	if (r)
		return r;
	return direct ? MIG_SPLICE_DIRECT : MIG_SPLICE_PIPE;
}

/*
 * --verify: once the whole of a spliced frame's data is in guest RAM, its
 * pages are hashed as read back from there (dest_verify_placed), like the
 * pages placed by pwrite; the zero runs clear their terms.
 */
int dest_sink_verify(struct mig_dest *d, struct mig_sink *s, char *err,
		     size_t errlen)
{
	int r = 0;

	if (!d->placed.term || s->hashed || s->got != s->want)
		return 0;
	s->hashed = true;
	for (int i = 0; !r && i < s->b->nr_runs; i++) {
		const struct proto_run *run = &s->b->runs[i];

		r = dest_verify_placed(d, run->gpa, run->npages,
				       run->flags & PROTO_RUN_ZERO, err,
				       errlen);
	}
	return r;
}

/*
 * Read the socket into the mapping? Only where every page is populated
 * (--mem-prealloc) and so no first touch faults on this thread, and no
 * userfaultfd is registered: --mem-prealloc declines post-copy
 * (dest_recv.c), so none ever is on such a destination.
 */
bool dest_sink_direct(const struct mig_dest *d)
{
	return d->ss.vm->cfg.mem_prealloc && !d->faults_on;
}

/* ---- the loop's channel (dest.c) ----------------------------------------- */

int dest_splice_begin(struct mig_dest *d, const uint8_t *p, size_t have,
		      size_t len, char *err, size_t errlen)
{
	struct mig_stats *st = &d->ss.st;
	const struct proto_batch *b = d->batch;
	int r, how;

	if (d->ram_end)
		return 0; /* dest_recv_pages says what is wrong */
	how = dest_sink_begin(&d->ss.vm->mem, &d->sink, d->batch, p, have, len,
			      dest_sink_direct(d), err, errlen);
	if (how <= 0)
		return how;
	st->head_bytes = d->sink.head;
	r = dest_sink_verify(d, &d->sink, err, errlen);
	if (r)
		return r;
	st->memory_processed += (uint64_t)b->nr_pages * PAGE_SIZE;
	st->memory_constant += (uint64_t)(b->nr_pages - b->nr_data);
	st->memory_normal += (uint64_t)b->nr_data;
	st->memory_normal_bytes += (uint64_t)b->nr_data * PAGE_SIZE;
	return how;
}

int dest_splice_data(struct mig_dest *d, int pipe_rd, size_t n, char *err,
		     size_t errlen)
{
	int r = dest_sink_take(&d->ss.vm->mem, &d->sink, NULL, pipe_rd, n, err,
			       errlen);

	d->ss.st.spliced_bytes = d->sink.spliced; /* the sink counts them all */
	return r ? r : dest_sink_verify(d, &d->sink, err, errlen);
}

int dest_splice_iov(struct mig_dest *d, size_t max, struct iovec *iov, int niov,
		    char *err, size_t errlen)
{
	return dest_sink_iov(&d->ss.vm->mem, &d->sink, max, iov, niov, err,
			     errlen);
}

int dest_splice_placed(struct mig_dest *d, size_t n, char *err, size_t errlen)
{
	dest_sink_placed(&d->sink, n);
	d->ss.st.direct_bytes = d->sink.direct;
	return dest_sink_verify(d, &d->sink, err, errlen);
}
