/* SPDX-License-Identifier: MIT */
/*
 * dest_channels.c - the destination's parallel channels (channels.h): the
 * listener takes the n - 1 extra connections HELLO asked for; each must
 * open with CHAN_HELLO (this migration's token, over TLS the proof bound
 * to the main session) and is then handed to a thread of its own that
 * receives PAGES and places them into guest RAM (a live frame's data
 * spliced from the socket into the memfd, or read into guest RAM's mapping
 * where it is populated: splice.h, dest_sink.c; others pwrite'n from
 * the frame read; holes for zero pages), and echoes SYNC once everything before
 * it is placed. RAM_END or POSTCOPY on the main connection stops and joins the
 * threads (dest_chans_stop): the source sent nothing on them after the
 * last round's SYNCs came back, and nothing they read later is placed.
 * Loop thread, except the thread callbacks (marked).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "common/page.h"
#include "ept/ram_io.h"
#include "migration/dest.h"
#include "vmm/vm.h"

static struct mig_xchan *dest_xchan(struct mig_channel *ch)
{
	return (struct mig_xchan *)((char *)ch -
				    offsetof(struct mig_xchan, ch));
}

/* ---- the placing thread -------------------------------------------------- */

/* Extra channel's thread: one run of a batch into guest RAM. */
static int dest_xchan_run(struct mig_xchan *x, const struct proto_run *run,
			  const uint8_t **data, char *err, size_t errlen)
{
	struct mig_dest *d = x->owner;
	uint64_t len = (uint64_t)run->npages * PAGE_SIZE;
	bool zero = run->flags & PROTO_RUN_ZERO;
	int r;

	r = zero ? mem_punch_range(&d->ss.vm->mem, run->gpa, run->npages)
		 : mem_pwrite(&d->ss.vm->mem, run->gpa, *data, len);
	if (r) {
		snprintf(err, errlen,
			 "channel %u: placing %u pages at 0x%llx: %s", x->index,
			 run->npages, (unsigned long long)run->gpa,
			 r == -EFAULT ? "outside guest RAM" : strerror(-r));
		return r;
	}
	if (zero) {
		x->zero += run->npages;
	} else {
		*data += len;
		x->pages += run->npages;
	}
	return dest_verify_placed(d, run->gpa, run->npages, zero, err, errlen);
}

/*
 * Test knob VMM_TEST_CHAN_CUT=1 (docs/migration.md): channel 1 is cut at
 * its first PAGES frame, as a lost connection, to show the source fails
 * cleanly and keeps its VM.
 */
static bool dest_xchan_cut(void)
{
	const char *knob = getenv("VMM_TEST_CHAN_CUT");

	return knob && !strcmp(knob, "1");
}

/* Extra channel's thread: PAGES placed, SYNC echoed, nothing else. */
static int dest_xchan_frame(void *opaque, const struct proto_hdr *h,
			    const uint8_t *p, char *err, size_t errlen)
{
	struct mig_xchan *x = opaque;
	uint8_t buf[PROTO_HDR_SIZE];
	const uint8_t *data;
	int r;

	if (h->type == PROTO_SYNC) {
		r = proto_empty_encode(buf, sizeof(buf), PROTO_SYNC);
		return mig_urgent_send(&x->thr, buf, (size_t)r);
	}
	if (h->type == PROTO_PAGES && x->index == 1 && dest_xchan_cut()) {
		shutdown(x->thr.fd, SHUT_RDWR); /* as a lost link: EOF next */
		x->cut = true; /* the source is to notice, not us */
		return 0;
	}
	if (h->type != PROTO_PAGES) {
		snprintf(err, errlen, "channel %u: unexpected %s", x->index,
			 proto_type_name(h->type));
		return -EPROTO;
	}
	r = proto_pages_decode(p, h->len, x->batch, err, errlen);
	data = x->batch->raw;
	for (int i = 0; !r && i < x->batch->nr_runs; i++)
		r = dest_xchan_run(x, &x->batch->runs[i], &data, err, errlen);
	return r;
}

/*
 * Extra channel's thread ended by itself. The source closes its extra
 * channels when pre-copy ends (before RAM_END or POSTCOPY reach us), so a
 * clean close between frames is no error; a lost source shows on the main
 * connection. Anything else fails the migration (dest_chans_poll).
 */
static void dest_xchan_end(void *opaque, int code, const char *why, bool own)
{
	struct mig_xchan *x = opaque;
	struct mig_dest *d = x->owner;

	if ((code == -ECONNRESET && !own && !x->thr.rlen) || x->cut)
		return;
	if (own)
		snprintf(d->ss.xc.why, sizeof(d->ss.xc.why), "%s", why);
	else
		snprintf(d->ss.xc.why, sizeof(d->ss.xc.why), "channel %u: %s",
			 x->index, why);
	atomic_store(&d->ss.xc.failed, true);
	uv_async_send(&d->ss.async);
}

/*
 * Extra channel's thread: a live PAGES frame's data may come by splice
 * (splice.h; --verify hashes it once all is in RAM), but not for the test
 * knob's cut.
 */
static int dest_xchan_splice_begin(void *opaque, const struct proto_hdr *h,
				   const uint8_t *p, size_t have, char *err,
				   size_t errlen)
{
	struct mig_xchan *x = opaque;
	struct mig_dest *d = x->owner;
	int r, how;

	if (h->type != PROTO_PAGES || (x->index == 1 && dest_xchan_cut()))
		return 0;
	how = dest_sink_begin(&d->ss.vm->mem, &x->sink, x->batch, p, have,
			      h->len, dest_sink_direct(d), err, errlen);
	if (how <= 0)
		return how;
	r = dest_sink_verify(d, &x->sink, err, errlen);
	if (r)
		return r;
	x->pages += (uint64_t)x->batch->nr_data;
	x->zero += (uint64_t)(x->batch->nr_pages - x->batch->nr_data);
	return how;
}

static int dest_xchan_splice_data(void *opaque, int pipe_rd, size_t n,
				  char *err, size_t errlen)
{
	struct mig_xchan *x = opaque;
	struct mig_dest *d = x->owner;

	int r = dest_sink_take(&d->ss.vm->mem, &x->sink, NULL, pipe_rd, n, err,
			       errlen);

	return r ? r : dest_sink_verify(d, &x->sink, err, errlen);
}

static int dest_xchan_splice_iov(void *opaque, size_t max, struct iovec *iov,
				 int niov, char *err, size_t errlen)
{
	struct mig_xchan *x = opaque;
	struct mig_dest *d = x->owner;

	return dest_sink_iov(&d->ss.vm->mem, &x->sink, max, iov, niov, err,
			     errlen);
}

static int dest_xchan_splice_placed(void *opaque, size_t n, char *err,
				    size_t errlen)
{
	struct mig_xchan *x = opaque;

	dest_sink_placed(&x->sink, n);
	return dest_sink_verify(x->owner, &x->sink, err, errlen);
}

static const struct mig_urgent_ops dest_xchan_thread_ops = {
	.on_frame = dest_xchan_frame,
	.on_end = dest_xchan_end,
	.read_size = 1U << 20, /* a PAGES frame is up to ~1 MiB */
	.splice_begin = dest_xchan_splice_begin,
	.splice_data = dest_xchan_splice_data,
	.splice_iov = dest_xchan_splice_iov,
	.splice_placed = dest_xchan_splice_placed,
};

/* ---- loop side ----------------------------------------------------------- */

/* CHAN_HELLO: this migration's token, the index once, the TLS proof. */
static int dest_xchan_check(struct mig_dest *d, struct mig_xchan *x,
			    const uint8_t *p, size_t len, char *err,
			    size_t errlen)
{
	uint8_t proof[PROTO_PROOF_LEN];
	uint64_t token;
	uint32_t index;
	bool has;
	int r = proto_chan_hello_decode(p, len, &token, &index, proof, &has,
					err, errlen);

	if (r)
		return r;
	if (token != d->ss.xc.token || index >= d->ss.xc.n ||
	    (d->ss.xc.seen & (1U << index))) {
		snprintf(err, errlen, "CHAN_HELLO: wrong token or index %u",
			 index);
		return -EPERM;
	}
	if (d->ss.tls &&
	    (!has ||
	     !mig_session_tls_check(&d->ss, &x->ch, MIG_TLS_CHANNEL, proof))) {
		snprintf(err, errlen,
			 "its TLS session is not bound to the main "
			 "connection's peers (wrong proof)");
		return -EPERM;
	}
	d->ss.xc.seen |= 1U << index;
	x->index = index;
	return 0;
}

/* The proven channel's socket goes to its placing thread. */
static int dest_xchan_handover(struct mig_xchan *x, char *err, size_t errlen)
{
	uint8_t *left = NULL;
	size_t len = 0;
	int fd = -1;
	int r;

	x->batch = malloc(sizeof(*x->batch));
	if (!x->batch) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = mig_channel_detach(&x->ch, &fd, &left, &len);
	if (r) {
		snprintf(err, errlen, "%s", uv_strerror(r));
		return r;
	}
	r = mig_urgent_start(&x->thr, fd, mig_channel_tls(&x->ch), left, len,
			     NULL, 0, x->ch.peer, &dest_xchan_thread_ops, x,
			     err, errlen);
	free(left);
	if (!r)
		x->proven = true;
	return r;
}

static void dest_xchan_on_frame(struct mig_channel *ch,
				const struct proto_hdr *h, const uint8_t *p)
{
	struct mig_xchan *x = dest_xchan(ch);
	struct mig_dest *d = x->owner;
	char err[400];
	int r;

	if (h->type != PROTO_CHAN_HELLO) {
		dest_fail(d, "extra channel began with %s",
			  proto_type_name(h->type));
		return;
	}
	r = dest_xchan_check(d, x, p, h->len, err, sizeof(err));
	if (!r)
		r = dest_xchan_handover(x, err, sizeof(err));
	if (r)
		dest_fail(d, "extra channel: %s", err);
}

static void dest_xchan_on_error(struct mig_channel *ch, int e, const char *why)
{
	struct mig_xchan *x = dest_xchan(ch);

	(void)e;
	if (!x->closing && !x->proven)
		dest_fail(x->owner, "extra channel: %s", why);
}

static void dest_xchan_on_connect(struct mig_channel *ch)
{
	(void)ch; /* CHAN_HELLO comes next */
}

static const struct mig_channel_ops dest_xchan_ops = {
	.on_frame = dest_xchan_on_frame,
	.on_error = dest_xchan_on_error,
	.on_connect = dest_xchan_on_connect,
};

/*
 * HELLO asked for n > 1 channels (d->ss.xc.n): agree, pick the token, and
 * arm the listener for the n - 1 extra connections.
 */
int dest_chans_listen(struct mig_dest *d, char *err, size_t errlen)
{
	struct mig_chans *c = &d->ss.xc;
	uint32_t n = c->n;
	int r;

	c->n = 0;
	if (!(d->ss.caps & PROTO_CAP_CHANNELS) || n < 2)
		return 0;
	while (!c->token)
		if (getrandom(&c->token, sizeof(c->token), 0) < 0 &&
		    errno != EINTR) {
			snprintf(err, errlen, "getrandom: %s", strerror(errno));
			return -errno;
		}
	r = mig_chans_alloc(c, n, d);
	for (uint32_t i = 0; !r && i + 1 < n; i++) {
		r = mig_channel_listen_next(&d->ss.ch, &c->x[i].ch,
					    &dest_xchan_ops, d);
		c->x[i].index = 0; /* CHAN_HELLO says which */
	}
	if (r)
		snprintf(err, errlen, "listening for %u channels: %s", n,
			 r == -ENOMEM ? "out of memory" : uv_strerror(r));
	return r;
}

/*
 * RAM_END or POSTCOPY on the main connection: pre-copy is over; join the
 * placing threads (their pages are placed) and count what they placed.
 */
void dest_chans_stop(struct mig_dest *d)
{
	struct mig_chans *c = &d->ss.xc;
	struct mig_stats *st = &d->ss.st;

	if (!c->x || c->stopped)
		return;
	for (uint32_t i = 0; i + 1 < c->n; i++) {
		struct mig_xchan *x = &c->x[i];

		x->bytes = x->thr.bytes_in;
		mig_urgent_stop(&x->thr);
		st->memory_normal += x->pages;
		st->memory_normal_bytes += x->pages * PAGE_SIZE;
		st->memory_constant += x->zero;
		st->memory_processed += (x->pages + x->zero) * PAGE_SIZE;
		st->spliced_bytes += x->sink.spliced;
		st->direct_bytes += x->sink.direct;
		st->head_bytes += x->sink.head;
	}
	mig_chans_stats(&d->ss, false);
	c->stopped = true;
	mig_chans_close(&d->ss);
}

/* Loop (async): an extra channel's thread failed. True: d failed. */
bool dest_chans_poll(struct mig_dest *d)
{
	if (!atomic_exchange(&d->ss.xc.failed, false))
		return false;
	dest_fail(d, "%s", d->ss.xc.why);
	return true;
}
