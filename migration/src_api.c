/* SPDX-License-Identifier: MIT */
/*
 * src_api.c - the source's life cycle and bookkeeping around the state
 * machine of source.c: construction (buffers, bitmaps, the quiesce timer,
 * the first connection) and freeing, the statistics (the urgent thread's
 * and the push's counts folded into st), and what an abort loses. Nothing
 * here changes the state. Event-loop thread; the u_* atomics it folds are
 * written by the urgent thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/page.h"
#include "ept/ram_io.h"
#include "migration/hello.h"
#include "migration/source.h"
#include "vmm/vm.h"
#include "vmm/vmstate.h"

/* Take the urgent thread's and the push's counts into st. */
void src_fold_counts(struct mig_source *s)
{
	struct mig_stats *st = &s->ss.st;
	uint64_t normal = atomic_exchange(&s->u_normal, 0);
	uint64_t zero = atomic_exchange(&s->u_zero, 0);
	uint64_t unpushed = atomic_exchange(&s->u_unpushed, 0) * PAGE_SIZE;

	st->memory_normal += normal;
	st->memory_normal_bytes += normal * PAGE_SIZE;
	st->memory_constant += zero;
	st->memory_processed += (normal + zero) * PAGE_SIZE;
	st->memory_postcopy_requests += atomic_exchange(&s->u_req, 0);
	st->postcopy_ahead += atomic_exchange(&s->u_ahead, 0);
	st->memory_remaining -= unpushed < st->memory_remaining
					? unpushed
					: st->memory_remaining;
	st->push_first = s->push.pushed_first;
	st->push_near = s->push.pushed_near;
	st->push_hot = s->push.pushed_hot;
}

const struct mig_stats *mig_source_stats(struct mig_source *s)
{
	src_fold_counts(s);
	mig_chans_stats(&s->ss, true); /* channel_bytes[0]: the main one's */
	s->ss.st.wire_bytes = s->ss.urg.bytes_out;
	for (uint32_t i = 0; i < s->ss.st.channels; i++)
		s->ss.st.wire_bytes += s->ss.st.channel_bytes[i];
	return &s->ss.st;
}

void src_update_elapsed(struct mig_source *s)
{
	mig_source_stats(s);
	mig_session_elapsed(&s->ss);
	s->ss.st.data_processed = s->ss.st.memory_processed;
	s->ss.st.data_remaining = s->ss.st.memory_remaining;
}

/* What an abort loses, for the error line. */
void src_abort_message(struct mig_source *s)
{
	uint64_t lacking;
	uint64_t secs =
		s->running_ns ? (clock_now_ns() - s->running_ns) / 1000000000ULL
			      : 0;

	src_fold_counts(s);
	lacking = s->ss.st.memory_remaining / PAGE_SIZE;
	snprintf(s->ss.st.error, sizeof(s->ss.st.error),
		 "post-copy aborted by the user: the destination lacked up to "
		 "%llu pages (%llu MiB) and cannot run the VM; its run there "
		 "(%llu s since the switch) is lost. The VM stays paused here "
		 "as it was at the switch (vmmctl resume once the destination "
		 "is stopped)",
		 (unsigned long long)lacking,
		 (unsigned long long)(lacking * PAGE_SIZE >> 20),
		 (unsigned long long)secs);
}

/* Hybrid's windows of write-hot pages (source.h). */
static int src_alloc_hot(struct mig_source *s, uint64_t nr_pages)
{
	if (s->p.mode != MIG_MODE_HYBRID)
		return 0;
	if (bitmap_init(&s->dnew, nr_pages) || bitmap_init(&s->win, nr_pages) ||
	    bitmap_init(&s->wprev, nr_pages) ||
	    bitmap_init(&s->hot, nr_pages) || bitmap_init(&s->now, nr_pages))
		return -ENOMEM;
	return 0;
}

static int src_alloc(struct mig_source *s)
{
	uint64_t nr_pages = s->ss.vm->mem.nr_pages;

	s->frame_cap = proto_batch_max_frame();
	s->batch = malloc(sizeof(*s->batch));
	s->ubatch = malloc(sizeof(*s->ubatch));
	s->ubuf = malloc(s->frame_cap);
	if (!s->batch || !s->ubatch || !s->ubuf)
		return -ENOMEM;
	proto_batch_init(s->batch);
	proto_batch_init(s->ubatch);
	if (bitmap_init(&s->todo, nr_pages) ||
	    bitmap_init(&s->pushset, nr_pages) ||
	    bitmap_init(&s->lacking, nr_pages) ||
	    bitmap_init(&s->resident, nr_pages) ||
	    bitmap_init(&s->scanned,
			BITMAP_WORDS(nr_pages) / (MEM_SCAN_PAGES / 64) + 1) ||
	    mig_push_init(&s->push, s->p.push_order, nr_pages))
		return -ENOMEM;
	return src_alloc_hot(s, nr_pages);
}

/* --tcp-congestion: checked now, asked for on every connection made. */
static int src_congestion(struct mig_source *s, const char *name, char *err,
			  size_t errlen)
{
	if (!name)
		return 0;
	if (src_local(s)) {
		snprintf(err, errlen,
			 "--tcp-congestion: a unix: address has no "
			 "TCP connection");
		return -EINVAL;
	}
	return mig_session_congestion(&s->ss, name, err, errlen);
}

static int src_init(struct mig_source *s, struct vm *vm, uv_loop_t *loop,
		    const struct mig_params *p, const struct mig_hooks *hooks,
		    char *err, size_t errlen)
{
	int r, khz = vm_tsc_khz(vm);

	s->p = *p;
	s->tsc_khz = khz > 0 ? (uint32_t)khz : 0;
	snprintf(s->to, sizeof(s->to), "%s", p->to);
	s->p.to = s->to;
	r = src_local_mode(&s->p, err, errlen);
	if (!r && !src_local(s))
		r = mig_tls_open(&s->ss.tls, p->to, p->tls_dir, TLS_CLIENT,
				 NULL, p->insecure, err, errlen);
	if (r)
		return r;
	snprintf(s->ss.tls_name, sizeof(s->ss.tls_name), "%s",
		 p->tls_hostname ? p->tls_hostname : "");
	r = src_congestion(s, p->tcp_congestion, err, errlen);
	if (r)
		return r;
	s->p.tls_dir = s->p.tls_hostname = NULL; /* the caller's strings */
	s->p.tcp_congestion = NULL;
	if (!s->p.quiesce_timeout_ms)
		s->p.quiesce_timeout_ms = MIG_DEFAULT_QUIESCE_MS;
	r = mig_session_init(&s->ss, vm, loop, hooks, MIG_SETUP, src_on_async,
			     s, err, errlen);
	if (r)
		return r;
	r = src_alloc(s);
	if (r) {
		snprintf(err, errlen, "out of memory");
		return r;
	}
	r = uv_timer_init(loop, &s->qtimer);
	if (r) {
		snprintf(err, errlen, "uv_timer_init: %s", uv_strerror(r));
		return r;
	}
	s->qtimer.data = s;
	s->qtimer_on = true;
	r = src_rate_init(s, loop, err, errlen);
	if (r)
		return r;
	if (src_local(s)) {
		r = src_local_connect(s, err, errlen);
		if (!r) /* connected already: HELLO */
			src_channel_ops.on_connect(&s->ss.ch);
		return r;
	}
	r = mig_channel_connect(&s->ss.ch, loop, s->p.to, s->ss.tcp_cc,
				&src_channel_ops, s, err, errlen);
	mig_channel_use_tls(&s->ss.ch, s->ss.tls, s->ss.tls_name);
	return r;
}

int mig_source_start(struct mig_source **out, struct vm *vm, uv_loop_t *loop,
		     const struct mig_params *p, const struct mig_hooks *hooks,
		     char *err, size_t errlen)
{
	struct mig_source *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	r = src_init(s, vm, loop, p, hooks, err, errlen);
	if (r) {
		mig_source_free(s);
		return r;
	}
	*out = s;
	return 0;
}

static void src_release(struct mig_session *ss)
{
	struct mig_source *s = (struct mig_source *)ss;

	bitmap_free(&s->todo);
	mig_pagesum_free(&s->sent);
	bitmap_free(&s->pushset);
	bitmap_free(&s->lacking);
	bitmap_free(&s->dnew);
	bitmap_free(&s->win);
	bitmap_free(&s->wprev);
	bitmap_free(&s->hot);
	bitmap_free(&s->now);
	mig_push_free(&s->push);
	bitmap_free(&s->resident);
	bitmap_free(&s->scanned);
	free(s->batch);
	free(s->ubatch);
	free(s->ubuf);
	free(s);
}

void mig_source_free(struct mig_source *s)
{
	if (!s)
		return;
	uv_handle_t *timers[] = {
		s->qtimer_on ? (uv_handle_t *)&s->qtimer : NULL,
		s->rtimer_on ? (uv_handle_t *)&s->rtimer : NULL,
		s->ttimer_on ? (uv_handle_t *)&s->ttimer : NULL,
	};

	mig_session_free(&s->ss, timers, 3, src_release);
}

bool mig_source_after_go(const struct mig_source *s)
{
	return s->go_sent && !s->ss.ended;
}

/* ---- the handshake's capabilities ------------------------------------- */

/* What HELLO offers: zstd, verify when asked, post-copy but in pre-copy. */
uint64_t src_caps_offered(const struct mig_source *s)
{
	uint64_t caps = PROTO_CAP_ZSTD;

	if (s->p.verify)
		caps |= PROTO_CAP_VERIFY | PROTO_CAP_VERIFY_XXH3;
	if (src_local(s)) /* no page crosses */
		return 0;
	if (s->p.mode != MIG_MODE_PRECOPY)
		caps |= PROTO_CAP_POSTCOPY;
	if (src_chans_wanted(s) > 1)
		caps |= PROTO_CAP_CHANNELS;
	if (s->tsc_khz)
		caps |= PROTO_CAP_TSC;
	return caps;
}

/* HELLO on ch: this VM's shape and the capabilities offered; -errno. */
int src_hello_send(struct mig_source *s, struct mig_channel *ch)
{
	struct proto_hello *h = malloc(sizeof(*h));
	size_t cap = PROTO_HDR_SIZE + sizeof(*h) * 2;
	uint8_t *f = malloc(cap);
	int n = -ENOMEM;

	if (h && f) {
		mig_hello_local(s->ss.vm, src_caps_offered(s), h);
		if (h->caps & PROTO_CAP_CHANNELS)
			h->nr_channels = src_chans_wanted(s);
		h->tsc_khz = h->caps & PROTO_CAP_TSC ? s->tsc_khz : 0;
		n = proto_hello_encode(f, cap, h);
	}
	free(h);
	if (n < 0) {
		free(f);
		return n;
	}
	return mig_channel_send(ch, f, n);
}

/* HELLO_ACK: what the destination accepts; 0 or -EPROTO with err. */
int src_check_caps(struct mig_source *s, const uint8_t *p, size_t len,
		   char *err, size_t errlen)
{
	uint64_t offered = src_caps_offered(s);
	int r = proto_hello_ack_chan_decode(p, len, &s->ss.caps, &s->ss.xc.n,
					    &s->ss.xc.token, err, errlen);

	if (!r && (s->ss.caps & ~offered))
		r = -EPROTO, snprintf(err, errlen,
				      "HELLO_ACK accepts capabilities that "
				      "were not offered (0x%llx)",
				      (unsigned long long)s->ss.caps);
	if (!r && s->ss.xc.n > src_chans_wanted(s))
		r = -EPROTO, snprintf(err, errlen,
				      "HELLO_ACK agrees on %u channels, %u "
				      "were asked",
				      s->ss.xc.n, src_chans_wanted(s));
	if (!r && s->p.verify && !(s->ss.caps & PROTO_CAP_VERIFY))
		r = -EPROTO,
		snprintf(err, errlen, "the destination cannot --verify");
	s->ss.st.verify = !r && (s->ss.caps & PROTO_CAP_VERIFY);
	s->ss.st.verify_xxh3 = mig_sum_algo_of(s->ss.caps) == MIG_SUM_XXH3;
	/*
	 * A destination that cannot post-copy (it cannot use userfaultfd,
	 * or is older): pre-copy only, and say so when post-copy was asked.
	 */
	if (!r && !(s->ss.caps & PROTO_CAP_POSTCOPY) &&
	    s->p.mode != MIG_MODE_PRECOPY)
		snprintf(s->ss.st.notice, sizeof(s->ss.st.notice),
			 "the destination cannot post-copy (it cannot use "
			 "userfaultfd: its log says why): %s pre-copy instead",
			 src_postcopy(s) ? "mode postcopy falls back to"
					 : "hybrid goes on in");
	if (!(s->ss.caps & PROTO_CAP_POSTCOPY) && !src_local(s))
		s->p.mode = MIG_MODE_PRECOPY;
	return r;
}
