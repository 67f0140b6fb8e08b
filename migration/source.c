/* SPDX-License-Identifier: MIT */
/*
 * source.c - the migration source: handshake, pre-copy rounds, stop-copy,
 * switch-over, and failure handling that always leaves the guest running
 * here unless the destination may already run it.
 *
 *   SETUP      connect, HELLO -> HELLO_ACK, dirty logging on
 *   PRECOPY    round 0: every resident page; round n: pages dirtied during
 *              round n-1. After each round: harvest, measure dirty rate and
 *              bandwidth, ask the policy (policy.c) whether the rest fits
 *              the downtime limit.
 *   STOP_COPY  pause, final harvest, the rest of the pages, RAM_END, state
 *              sections (vCPUs, VM, devices), STATE_END, [VERIFY]
 *   WAIT_READY the destination restores; READY -> GO
 *   COMPLETED  RUNNING received: the destination runs the VM
 *
 * Post-copy (--mode postcopy), after HELLO_ACK: pause, POSTCOPY(cookie),
 * the state sections, STATE_END, then the urgent connection (URGENT_HELLO);
 * READY -> GO -> RUNNING; then POSTCOPY: every resident page is pushed on
 * the main connection while PAGE_REQs on the urgent one are answered there
 * at once (the SENT bitmap keeps the push from repeating them);
 * POSTCOPY_END -> COMPLETE -> COMPLETED.
 *
 * Until GO is sent, any failure (peer gone, bad frame, refusal, cancel)
 * resumes the guest here as if nothing happened. After GO the destination
 * may be running the VM, so a failure leaves it paused here and says so.
 * Everything runs on the event-loop thread; the pump sends while the
 * channel is below its high-water mark and continues from on_drain.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/page.h"
#include "common/clock.h"
#include "ept/dirty.h"
#include "migration/channel.h"
#include "migration/hello.h"
#include "migration/migration.h"
#include "migration/policy.h"
#include "migration/push.h"
#include "migration/ram.h"
#include "migration/urgent.h"
#include "vmm/vcpu.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

#define SRC_PC_HIGH (1U << 20) /* post-copy push: bytes queued at most */
/*
 * Post-copy push: pages a frame. The destination places a frame's pages
 * in one go on the thread that also places the answers to its faults, so
 * a frame must be short (32 pages: ~0.2 ms of UFFDIO_COPY here).
 */
#define SRC_PC_BATCH 32
/* Discard at most this many pages in the downtime (~0.6 us each here). */
#define SRC_DISCARD_REST_MAX 1024
#define SRC_EARLY_ROUNDS     4

struct mig_source {
	struct vm *vm;
	uv_loop_t *loop;
	struct mig_params p;
	struct mig_hooks hooks;
	struct mig_channel ch;
	struct mig_channel uch; /* post-copy: the urgent connection */
	/*
	 * Its thread answers the PAGE_REQs (urgent.h). It owns ubatch and
	 * ubuf, and counts what it sends in the u_* atomics, which the loop
	 * folds into st (src_fold_counts). uasync brings its end (u_why)
	 * to the loop.
	 */
	struct mig_urgent urg;
	uv_async_t uasync;
	bool uasync_on;
	uint8_t *ubuf;
	atomic_uint_fast64_t u_normal, u_zero, u_unpushed;
	atomic_bool u_ended;
	bool u_own; /* u_why is the callback's own text (no prefix) */
	char u_why[600];
	/*
	 * Passthrough-device quiesce (loop thread, but q_acked, which the
	 * vCPU thread that wrote the driver's ACK sets before waking
	 * uasync). q_then is what the quiesce stands in front of: the
	 * pause for stop-copy, or the switch to post-copy.
	 */
	uv_timer_t qtimer;
	bool qtimer_on;
	bool q_asked; /* a QUIESCE was posted: resume the device on failure */
	void (*q_then)(struct mig_source *s);
	atomic_bool q_acked;
	struct mig_stats st;
	uint64_t caps;	    /* agreed in the handshake */
	struct bitmap todo; /* pages to send in this round */
	uint64_t cursor;    /* pre-copy: next page index to look at */
	struct proto_batch *batch;
	size_t frame_cap;
	uint64_t pinned_new; /* src_take_pinned: pages it added to todo */
	struct proto_digest digest[PROTO_MAX_REGIONS];
	int nr_digest;
	bool remote_verified;
	bool logging;	  /* we turned dirty logging on */
	bool paused_here; /* we paused the VM */
	bool go_sent;
	bool ended;
	uint64_t round_start_ns;
	uint64_t round_bytes; /* frame bytes queued in this round */
	uint64_t round_pages;
	bool sync_wait;	      /* round queued, SYNC sent, not echoed yet */
	uint32_t zstd_skip;   /* batches to send raw before trying again */
	uint32_t zstd_misses; /* consecutive batches zstd did not shrink */
	uint64_t pause_ns;
	uint64_t queued_ns; /* everything of stop-copy queued */
	uint64_t go_ns;
	/* post-copy */
	char to[128]; /* p.to points here: the caller's copy goes away */
	uint64_t cookie;
	struct proto_batch *ubatch; /* answers to PAGE_REQ */
	bool pc_end_sent;	    /* POSTCOPY_END queued */
	bool pc;		    /* the switch went to post-copy */
	bool giving_up;		    /* a failure recovery cannot mend */
	struct bitmap pushset;	    /* post-copy: the pages to push, all */
	struct mig_push push;	    /* post-copy: in which order */
	/*
	 * Pure post-copy pushes what is resident, found lazily, a chunk of
	 * MIG_RAM_SCAN_PAGES at a time (scanned: chunk done): a scan of all
	 * RAM in the downtime costs ~9 ms a GiB (mincore on the memfd).
	 */
	bool lazy_resident;
	struct bitmap resident, scanned;
	struct bitmap lacking; /* recovery: what the destination lacks */
	uint64_t resume_runs;  /* recovery: DISCARD runs received */
	bool early_discard;    /* hybrid: discard sent, SYNC awaited */
	uint32_t early_rounds; /* early discards after the first */
	uint64_t discard_runs; /* DISCARD runs sent so far */
	struct mig_policy_state policy;
	uint64_t precopy_ns; /* pre-copy started (HELLO_ACK) */
	uint64_t running_ns; /* post-copy: RUNNING arrived */
	int closing;	     /* channels still closing (free) */
};

static bool src_postcopy(const struct mig_source *s)
{
	return s->p.mode == MIG_MODE_POSTCOPY;
}

static uint64_t src_caps_offered(const struct mig_source *s)
{
	uint64_t caps = PROTO_CAP_ZSTD | (s->p.verify ? PROTO_CAP_VERIFY : 0);

	if (s->p.mode != MIG_MODE_PRECOPY)
		caps |= PROTO_CAP_POSTCOPY;
	return caps;
}

static void src_pump(struct mig_source *s);
static void src_pc_break(struct mig_source *s);
static void src_on_lacking(struct mig_source *s, const uint8_t *p, size_t len);
static void src_on_resume_ack(struct mig_source *s, const uint8_t *p,
			      size_t len);
static const struct mig_channel_ops src_channel_ops;
static void src_postcopy_pushed(struct mig_source *s);
static void src_postcopy_start(struct mig_source *s);

/* Loop thread: take the urgent thread's and the push's counts into st. */
static void src_fold_counts(struct mig_source *s)
{
	uint64_t normal = atomic_exchange(&s->u_normal, 0);
	uint64_t zero = atomic_exchange(&s->u_zero, 0);
	uint64_t unpushed = atomic_exchange(&s->u_unpushed, 0) * PAGE_SIZE;

	s->st.memory_normal += normal;
	s->st.memory_normal_bytes += normal * PAGE_SIZE;
	s->st.memory_constant += zero;
	s->st.memory_processed += (normal + zero) * PAGE_SIZE;
	s->st.memory_postcopy_requests += normal + zero;
	s->st.memory_remaining -= unpushed < s->st.memory_remaining
					  ? unpushed
					  : s->st.memory_remaining;
	s->st.push_first = s->push.pushed_first;
	s->st.push_near = s->push.pushed_near;
	s->st.push_hot = s->push.pushed_hot;
}

const struct mig_stats *mig_source_stats(struct mig_source *s)
{
	src_fold_counts(s);
	s->st.wire_bytes = s->ch.bytes_out + s->urg.bytes_out;
	return &s->st;
}

static void src_update_elapsed(struct mig_source *s)
{
	src_fold_counts(s);
	s->st.time_elapsed_ms = (clock_now_ns() - s->st.start_ns) / 1000000;
	s->st.wire_bytes = s->ch.bytes_out + s->urg.bytes_out;
	s->st.data_processed = s->st.memory_processed;
	s->st.data_remaining = s->st.memory_remaining;
}

/* ---- the end, one way or another -------------------------------------------
 */

/* Stop the urgent thread, then close its connection (after a flush). */
static void src_urgent_close(struct mig_source *s, bool flush)
{
	mig_urgent_stop(&s->urg);
	if (!s->uch.loop)
		return;
	if (flush)
		mig_channel_close_after_flush(&s->uch, NULL);
	else
		mig_channel_close(&s->uch, NULL);
}

static void src_end(struct mig_source *s, enum mig_state state)
{
	if (s->ended)
		return;
	s->ended = true;
	s->st.state = state;
	if (s->q_asked)
		vm_devs_set_ack_hook(s->vm, NULL, NULL);
	if (s->qtimer_on)
		uv_timer_stop(&s->qtimer);
	src_update_elapsed(s);
	mig_channel_close_after_flush(&s->ch, NULL);
	src_urgent_close(s, true);
	if (s->hooks.done)
		s->hooks.done(s->hooks.opaque, &s->st);
}

/*
 * Post-copy after GO: the destination runs the VM but lacks pages that only
 * we hold, so no failure gives up. Close both connections, keep the VM
 * paused and whole, and wait for mig_source_resume() (or an abort).
 */
static void src_pc_break(struct mig_source *s)
{
	size_t n = strlen(s->st.error);

	if (s->st.state == MIG_POSTCOPY_PAUSED)
		return;
	snprintf(s->st.error + n, sizeof(s->st.error) - n,
		 "; the VM stays paused here with every page");
	s->st.state = MIG_POSTCOPY_PAUSED;
	s->st.postcopy_breaks++;
	mig_channel_close(&s->ch, NULL);
	src_urgent_close(s, false);
	src_update_elapsed(s);
	if (s->hooks.progress)
		s->hooks.progress(s->hooks.opaque, &s->st);
}

/*
 * Give up. Before GO the guest has never left: stop logging and resume it.
 * After GO the destination may be running it: keep it paused and say so.
 */
static void src_fail(struct mig_source *s, enum mig_state state,
		     const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void src_quiesce_cancel(struct mig_source *s);

static void src_fail(struct mig_source *s, enum mig_state state,
		     const char *fmt, ...)
{
	va_list ap;

	if (s->ended)
		return;
	va_start(ap, fmt);
	vsnprintf(s->st.error, sizeof(s->st.error), fmt, ap);
	va_end(ap);
	if (s->go_sent && s->pc && !s->giving_up) {
		src_pc_break(s);
		return;
	}
	if (s->go_sent) {
		size_t n = strlen(s->st.error);

		snprintf(s->st.error + n, sizeof(s->st.error) - n,
			 " (after GO: the destination may be running the VM; "
			 "it stays paused here)");
		src_end(s, MIG_FAILED);
		return;
	}
	if (s->ch.connected && !s->ch.failed) {
		uint8_t buf[PROTO_HDR_SIZE + 1100];

		mig_channel_send_copy(&s->ch, buf,
				      proto_error_encode(buf, sizeof(buf),
							 ECANCELED,
							 s->st.error));
	}
	if (s->logging)
		dirty_stop(&s->vm->dirty);
	s->logging = false;
	src_quiesce_cancel(s);
	if (s->paused_here)
		vm_resume(s->vm);
	s->paused_here = false;
	src_end(s, state);
}

/* ---- sending
 * ------------------------------------------------------------------ */

/* Queue a small frame encoded into tmp (n: the encoder's result). */
static int src_send_small(struct mig_source *s, uint8_t *tmp, int n)
{
	return mig_channel_send_copy(&s->ch, tmp, n);
}

static int src_send_empty(struct mig_source *s, enum proto_type t)
{
	uint8_t buf[PROTO_HDR_SIZE];

	return src_send_small(s, buf, proto_empty_encode(buf, sizeof(buf), t));
}

/*
 * Compress only where it pays: a batch zstd does not shrink by 1/8 is a
 * miss; after a few misses in a row, send raw for a while (doubling up to
 * 64 batches) before trying again. Random-looking guest data then costs
 * nothing, and compressible data is found again within a few batches.
 */
#define SRC_ZSTD_MISSES 4

static int src_zstd_level(struct mig_source *s)
{
	if (!s->p.zstd_level || !(s->caps & PROTO_CAP_ZSTD))
		return 0;
	if (s->zstd_skip) {
		s->zstd_skip--;
		return 0;
	}
	return s->p.zstd_level;
}

static void src_zstd_account(struct mig_source *s, int level, int n)
{
	uint64_t raw = (uint64_t)s->batch->nr_data * PAGE_SIZE;

	if (!level || !raw)
		return;
	if (raw > (uint64_t)n)
		s->st.compression_bytes += raw - n;
	if ((uint64_t)n + raw / 8 < raw) {
		s->zstd_misses = 0;
		return;
	}
	if (++s->zstd_misses >= SRC_ZSTD_MISSES)
		s->zstd_skip = 1U << (s->zstd_misses - SRC_ZSTD_MISSES < 6
					      ? s->zstd_misses - SRC_ZSTD_MISSES
					      : 6);
}

static int src_send_batch(struct mig_source *s)
{
	int level = src_zstd_level(s);
	uint8_t *f;
	int n;

	if (!s->batch->nr_pages)
		return 0;
	f = malloc(s->frame_cap);
	if (!f)
		return -ENOMEM;
	n = proto_pages_encode(f, s->frame_cap, s->batch, level);
	if (n < 0) {
		free(f);
		return n;
	}
	src_zstd_account(s, level, n);
	proto_batch_init(s->batch);
	s->round_bytes += n;
	return mig_channel_send(&s->ch, f, n);
}

/* Add page i (a bit of todo) to the batch: zero pages as a flag. */
static void src_add_page(struct mig_source *s, uint64_t i)
{
	uint64_t gpa = mem_page_to_gpa(&s->vm->mem, i);
	const void *hva = mem_gpa_to_hva(&s->vm->mem, gpa, PAGE_SIZE);

	if (proto_page_is_zero(hva)) {
		proto_batch_add(s->batch, gpa, NULL);
		s->st.memory_constant++;
	} else {
		proto_batch_add(s->batch, gpa, hva);
		s->st.memory_normal++;
		s->st.memory_normal_bytes += PAGE_SIZE;
	}
	s->st.memory_processed += PAGE_SIZE;
	if (s->st.memory_remaining >= PAGE_SIZE)
		s->st.memory_remaining -= PAGE_SIZE;
	s->round_pages++;
}

/* Fill one batch from todo. Returns false when the round has no pages left. */
static bool src_fill_batch(struct mig_source *s)
{
	uint64_t i = bitmap_next_set(&s->todo, s->cursor);

	for (; i < s->todo.nbits; i = bitmap_next_set(&s->todo, i + 1)) {
		bitmap_clear(&s->todo, i);
		src_add_page(s, i);
		if (proto_batch_full(s->batch)) {
			s->cursor = i + 1;
			return true;
		}
	}
	s->cursor = s->todo.nbits;
	return s->batch->nr_pages > 0;
}

/*
 * Pure post-copy: is page i resident (the VM is paused: it stays so)? A
 * chunk that cannot be scanned counts as resident: its holes are then
 * sent as zero pages, which is only a few bytes more.
 */
static bool src_push_resident(struct mig_source *s, uint64_t i)
{
	uint64_t first = i / MIG_RAM_SCAN_PAGES * MIG_RAM_SCAN_PAGES;
	uint64_t n = s->resident.nbits - first < MIG_RAM_SCAN_PAGES
			     ? s->resident.nbits - first
			     : MIG_RAM_SCAN_PAGES;

	if (!s->lazy_resident)
		return true;
	if (!bitmap_test_and_set(&s->scanned, i / MIG_RAM_SCAN_PAGES) &&
	    mig_ram_resident_range(&s->vm->mem, first, n, &s->resident))
		bitmap_set_range(&s->resident, first, n);
	return bitmap_test(&s->resident, i);
}

/* Post-copy: one short batch of the push, in the push order (push.h). */
static bool src_fill_push(struct mig_source *s)
{
	uint64_t i;

	while (s->batch->nr_pages < SRC_PC_BATCH &&
	       mig_push_next(&s->push, &s->todo, &i)) {
		/* A page answered on the urgent path is not pushed. */
		if (!src_push_resident(s, i) ||
		    bitmap_test_and_set(&s->vm->mem.state[MEM_PS_SENT], i))
			continue;
		src_add_page(s, i);
		s->st.postcopy_pushed++;
	}
	return s->batch->nr_pages > 0;
}

/* One pinned buffer: its pages go into todo, counted in s->pinned_new. */
static void src_take_pin(void *opaque, uint64_t gpa, uint64_t len)
{
	struct mig_source *s = opaque;
	uint64_t end = gpa + len;

	for (uint64_t g = gpa & ~(PAGE_SIZE - 1); g < end; g += PAGE_SIZE) {
		uint64_t i;

		if (!mem_gpa_to_page(&s->vm->mem, g, &i) &&
		    !bitmap_test_and_set(&s->todo, i))
			s->pinned_new++;
	}
}

/*
 * The buffers a passthrough device holds (pinned) may be written by its DMA
 * at any moment: they count as dirty in every round, the last included.
 * (A quiesced device holds none: the switch is refused otherwise.)
 */
static uint64_t src_take_pinned(struct mig_source *s)
{
	s->pinned_new = 0;
	vm_devs_pinned(s->vm, src_take_pin, s);
	return s->pinned_new;
}

/* Move the harvested DIRTY set into todo for the next round. */
static uint64_t src_take_dirty(struct mig_source *s)
{
	struct bitmap *dirty = &s->vm->mem.state[MEM_PS_DIRTY];
	uint64_t n = src_take_pinned(s);

	for (uint64_t w = 0; w < BITMAP_WORDS(dirty->nbits); w++) {
		uint64_t word = bitmap_xchg_word(dirty, w);

		if (word) {
			bitmap_or_words(&s->todo, w, &word, 1);
			n += __builtin_popcountll(word);
		}
	}
	s->cursor = 0;
	s->st.memory_remaining = n * PAGE_SIZE;
	return n;
}

static int src_harvest(struct mig_source *s)
{
	char err[256];
	int r = dirty_harvest(&s->vm->dirty, NULL, err, sizeof(err));

	if (r)
		src_fail(s, MIG_FAILED, "%s", err);
	return r;
}

/* ---- rounds
 * -------------------------------------------------------------------- */

static void src_start_round(struct mig_source *s)
{
	s->round_start_ns = clock_now_ns();
	s->round_bytes = 0;
	s->round_pages = 0;
}

static void src_stop_copy(struct mig_source *s);
static int src_discard_set(struct mig_source *s, const struct bitmap *set);
static int src_discard_rest(struct mig_source *s);

/*
 * Hybrid gives pre-copy up. The pages dirty now will be in the discard set
 * whatever happens next, and dropping them costs the destination ~0.6 us a
 * page (the kernel frees them): send them now, while the guest still runs,
 * and pause only when SYNC says the destination has dropped them. The
 * switch then discards just what was dirtied meanwhile.
 *
 * src_discard_early: discard what is dirty and not discarded yet (the
 * whole of todo the first time); SYNC brings us to src_early_discard_more.
 * No page may be sent meanwhile (src_pump waits): a page sent after its
 * discard would stay valid there even if dirtied again.
 */
static void src_discard_early(struct mig_source *s)
{
	int r = src_discard_rest(s);

	if (!r)
		r = src_send_empty(s, PROTO_SYNC);
	if (r) {
		src_fail(s, MIG_FAILED, "sending the discard set: %s",
			 strerror(-r));
		return;
	}
	s->early_discard = true;
	s->sync_wait = true;
}

/* Pages of todo not discarded yet (not in pushset). */
static uint64_t src_discard_pending(const struct mig_source *s)
{
	uint64_t n = 0;

	for (uint64_t w = 0; w < BITMAP_WORDS(s->todo.nbits); w++)
		n += __builtin_popcountll(s->todo.words[w] &
					  ~s->pushset.words[w]);
	return n;
}

/*
 * The early discard is done. What the guest dirtied meanwhile is discarded
 * at the switch, in the downtime: while that is more than
 * SRC_DISCARD_REST_MAX pages, discard it early too (the working set soon
 * is all discarded, so this ends within a round or two).
 */
static void src_early_discard_more(struct mig_source *s)
{
	if (src_harvest(s))
		return;
	src_take_dirty(s);
	if (src_discard_pending(s) <= SRC_DISCARD_REST_MAX ||
	    ++s->early_rounds >= SRC_EARLY_ROUNDS) {
		s->early_discard = false;
		src_postcopy_start(s);
		return;
	}
	src_discard_early(s);
}

static int src_urgent_connect(struct mig_source *s, char *err, size_t errlen);

static void src_early_discard(struct mig_source *s)
{
	char err[256];

	if (src_urgent_connect(s, err, sizeof(err))) {
		src_fail(s, MIG_FAILED, "urgent connection: %s", err);
		return;
	}
	src_discard_early(s);
}

/* ---- passthrough devices: the quiesce handshake (docs/pt-quiesce.md) -----
 */

/* On the vCPU thread that wrote a driver's quiesce ACK: wake the loop. */
static void src_dev_acked(void *opaque)
{
	struct mig_source *s = opaque;

	atomic_store(&s->q_acked, true);
	uv_async_send(&s->uasync);
}

static void src_quiesce_done(struct mig_source *s)
{
	void (*then)(struct mig_source * s) = s->q_then;

	uv_timer_stop(&s->qtimer);
	s->st.quiesce_us = vm_devs_quiesce_ns(s->vm) / 1000;
	s->q_then = NULL;
	s->st.state = MIG_PRECOPY; /* then(s) pauses, or discards early */
	then(s);
}

/* Acked (or timed out): the device must hold nothing now. */
static void src_quiesce_check(struct mig_source *s, bool timed_out)
{
	char err[400];
	int r;

	if (s->ended || s->st.state != MIG_QUIESCE)
		return;
	r = vm_devs_quiesce_poll(s->vm, err, sizeof(err));
	if (r > 0) {
		src_quiesce_done(s);
		return;
	}
	if (r == 0 && !timed_out)
		return;
	if (r == 0)
		src_fail(s, MIG_FAILED,
			 "%s within %llu ms; the VM keeps running here with "
			 "the device",
			 err, (unsigned long long)s->p.quiesce_timeout_ms);
	else
		src_fail(s, MIG_FAILED,
			 "%s; the switch-over is refused and the VM keeps "
			 "running here with the device",
			 err);
}

static void src_on_qtimer(uv_timer_t *t)
{
	src_quiesce_check(t->data, true);
}

/*
 * Before the VM stops here (stop-copy, or the switch to post-copy): ask
 * the passthrough device's driver to stop DMA and release its buffers, and
 * go on with then(s) once it has and the device holds nothing. A device
 * nobody has enabled holds nothing to wait for: the request is still
 * posted, which keeps the driver from enabling it meanwhile.
 */
static void src_quiesce_then(struct mig_source *s,
			     void (*then)(struct mig_source *s))
{
	if (!vm_devs_nr_quiesce(s->vm)) {
		then(s);
		return;
	}
	s->q_then = then;
	s->st.state = MIG_QUIESCE;
	atomic_store(&s->q_acked, false);
	vm_devs_set_ack_hook(s->vm, src_dev_acked, s);
	s->q_asked = true;
	if (!vm_devs_quiesce_request(s->vm)) {
		src_quiesce_done(s);
		return;
	}
	uv_timer_start(&s->qtimer, src_on_qtimer, s->p.quiesce_timeout_ms, 0);
	if (s->hooks.progress)
		s->hooks.progress(s->hooks.opaque, &s->st);
}

/* The migration did not happen: the driver may use the device again. */
static void src_quiesce_cancel(struct mig_source *s)
{
	if (s->qtimer_on)
		uv_timer_stop(&s->qtimer);
	if (!s->q_asked)
		return;
	s->q_asked = false;
	vm_devs_set_ack_hook(s->vm, NULL, NULL);
	vm_devs_resume(s->vm);
}

static void src_stop_precopy(struct mig_source *s)
{
	if (!s->st.converged && s->p.mode == MIG_MODE_HYBRID)
		src_early_discard(s);
	else
		src_stop_copy(s);
}

/* Pre-copy gives up: hybrid switches to post-copy, pre-copy stops anyway. */
static void src_stop_iterating(struct mig_source *s,
			       const struct mig_decision *d)
{
	s->st.converged = d->converged;
	s->st.reason = d->reason;
	s->st.precopy_bytes = s->ch.bytes_out;
	src_quiesce_then(s, src_stop_precopy);
}

/*
 * A pre-copy round has reached the destination (its SYNC came back):
 * measure the dirty rate and the end-to-end bandwidth, then go on or stop.
 * Nothing of this round is in flight any more, so stop-copy will send only
 * what is dirty now.
 */
static void src_end_round(struct mig_source *s)
{
	uint64_t dt = clock_now_ns() - s->round_start_ns;
	uint64_t sent = s->round_bytes;
	uint64_t dirty;
	struct mig_decision d;

	if (src_harvest(s))
		return;
	dirty = src_take_dirty(s);
	s->st.memory_iteration++;
	s->st.memory_dirty_rate = dt ? dirty * 1000000000ULL / dt : 0;
	if (sent && dt)
		s->st.memory_bps = sent * 1000000000ULL / dt;
	src_update_elapsed(s);
	mig_policy_decide(&s->p, &s->st, &s->policy, dirty,
			  clock_now_ns() - s->precopy_ns, &d);
	s->st.predicted_downtime_us = d.predicted_us;
	if (s->hooks.progress)
		s->hooks.progress(s->hooks.opaque, &s->st);
	if (d.stop) {
		src_stop_iterating(s, &d);
		return;
	}
	src_start_round(s);
}

/* ---- stop-copy and state
 * ------------------------------------------------------- */

static int src_send_state(struct mig_source *s, uint16_t kind, uint16_t ver,
			  uint32_t id, const uint8_t *blob, size_t len)
{
	struct proto_state st = {.kind = kind,
				 .version = ver,
				 .id = id,
				 .len = (uint32_t)len,
				 .blob = blob};
	size_t cap = PROTO_HDR_SIZE + 16 + len;
	uint8_t *f;
	int n;

	if (len > UINT32_MAX)
		return -E2BIG;
	f = malloc(cap);
	if (!f)
		return -ENOMEM;
	n = proto_state_encode(f, cap, &st);
	if (n < 0) {
		free(f);
		return n;
	}
	return mig_channel_send(&s->ch, f, n);
}

/* The paused VM's state: every vCPU, the VM, every device, in that order. */
static int src_send_snapshot(struct mig_source *s, char *err, size_t errlen)
{
	static const uint16_t kinds[] = {
		[VM_SNAP_VCPU] = PROTO_STATE_VCPU,
		[VM_SNAP_VM] = PROTO_STATE_VM,
		[VM_SNAP_DEVICE] = PROTO_STATE_DEVICE,
	};
	struct vm_snapshot snap;
	int r;

	vm_snapshot_init(&snap);
	r = vm_snapshot_take(s->vm, &snap, err, errlen);
	for (int i = 0; !r && i < snap.nr; i++) {
		const struct vm_snap_section *sec = &snap.sec[i];

		r = src_send_state(s, kinds[sec->kind], sec->version, sec->id,
				   sec->data, sec->len);
	}
	vm_snapshot_free(&snap);
	return r;
}

static int src_send_verify(struct mig_source *s)
{
	uint8_t buf[PROTO_HDR_SIZE + 8 + PROTO_MAX_REGIONS * 48];
	int n = mig_ram_digest(&s->vm->mem, s->digest, PROTO_MAX_REGIONS);

	if (n < 0)
		return n;
	s->nr_digest = n;
	return src_send_small(
		s, buf,
		proto_verify_encode(buf, sizeof(buf), s->digest, (uint32_t)n));
}

/*
 * Stop the guest for the switch-over (stop-copy or post-copy). The guest
 * stops somewhere inside vm_pause: the downtime counts from its start.
 * Returns 0, or -1 after failing the migration.
 */
static int src_pause(struct mig_source *s)
{
	uint64_t t0 = clock_now_ns();
	int r = vm_pause(s->vm);

	if (r) {
		src_fail(s, MIG_FAILED, "pausing the VM: %s", strerror(-r));
		return -1;
	}
	s->paused_here = true;
	s->pause_ns = t0;
	s->st.pause_us = (clock_now_ns() - t0) / 1000;
	s->st.state = MIG_STOP_COPY;
	return 0;
}

/* Everything of the switch-over is queued: wait for READY. */
static void src_switch_queued(struct mig_source *s)
{
	s->queued_ns = clock_now_ns();
	s->st.stop_copy_us =
		(s->queued_ns - s->pause_ns) / 1000 - s->st.pause_us;
	s->st.state = MIG_WAIT_READY;
}

/* Every page is queued: RAM_END, then the state, then (maybe) VERIFY. */
static void src_finish(struct mig_source *s)
{
	char err[256] = "";
	int r = src_send_empty(s, PROTO_RAM_END);

	if (!r)
		r = src_send_snapshot(s, err, sizeof(err));
	if (!r)
		r = src_send_empty(s, PROTO_STATE_END);
	if (!r && (s->caps & PROTO_CAP_VERIFY))
		r = src_send_verify(s);
	if (r) {
		src_fail(s, MIG_FAILED, "sending state: %s",
			 err[0] ? err : strerror(-r));
		return;
	}
	src_switch_queued(s);
}

static void src_stop_copy(struct mig_source *s)
{
	if (src_pause(s))
		return;
	if (src_harvest(s))
		return;
	src_take_dirty(s);
	src_start_round(s);
	src_pump(s);
}

/* ---- the pump
 * ------------------------------------------------------------------- */

static void src_pump(struct mig_source *s)
{
	/* Early discard: no page may follow the discard set (see there). */
	if (s->ended || s->early_discard)
		return;
	while (s->st.state == MIG_PRECOPY || s->st.state == MIG_STOP_COPY ||
	       (s->st.state == MIG_POSTCOPY && !s->pc_end_sent)) {
		if (!mig_channel_writable(&s->ch))
			return; /* on_drain brings us back */
		if (s->pc ? src_fill_push(s) : src_fill_batch(s)) {
			int r = src_send_batch(s);

			if (r) {
				src_fail(s, MIG_FAILED, "sending pages: %s",
					 strerror(-r));
				return;
			}
			continue;
		}
		if (s->st.state == MIG_STOP_COPY) {
			src_finish(s);
			return;
		}
		if (s->st.state == MIG_POSTCOPY) {
			src_postcopy_pushed(s);
			return;
		}
		/* Round queued: SYNC, and continue when it comes back. */
		if (s->sync_wait)
			return;
		if (src_send_empty(s, PROTO_SYNC)) {
			src_fail(s, MIG_FAILED, "sending SYNC failed");
			return;
		}
		s->sync_wait = true;
		return;
	}
}

static void src_on_sync(struct mig_source *s)
{
	if (!s->sync_wait || s->st.state != MIG_PRECOPY) {
		src_fail(s, MIG_FAILED, "unexpected SYNC from the destination");
		return;
	}
	s->sync_wait = false;
	if (s->early_discard) {
		src_early_discard_more(s);
		return;
	}
	src_end_round(s);
	src_pump(s);
}

/* ---- channel callbacks
 * ------------------------------------------------------------ */

static void src_resume_connected(struct mig_source *s);

static void src_on_connect(struct mig_channel *ch)
{
	struct mig_source *s = ch->opaque;

	if (s->st.state == MIG_POSTCOPY_RECOVER) {
		src_resume_connected(s);
		return;
	}
	struct proto_hello *h = malloc(sizeof(*h));
	uint8_t *f = malloc(PROTO_HDR_SIZE + sizeof(*h) * 2);
	uint64_t caps = src_caps_offered(s);
	int n = -ENOMEM;

	if (h && f) {
		mig_hello_local(s->vm, caps, h);
		n = proto_hello_encode(f, PROTO_HDR_SIZE + sizeof(*h) * 2, h);
	}
	free(h);
	if (n < 0) {
		free(f);
		src_fail(s, MIG_FAILED, "encoding HELLO: %s", strerror(-n));
		return;
	}
	mig_channel_send(ch, f, n);
}

/* HELLO_ACK: the destination accepts; start logging and round 0. */
static void src_on_hello_ack(struct mig_source *s, const uint8_t *p, size_t len)
{
	char err[256];
	uint64_t offered = src_caps_offered(s);
	int r = proto_hello_ack_decode(p, len, &s->caps, err, sizeof(err));

	if (!r && (s->caps & ~offered))
		r = -EPROTO, snprintf(err, sizeof(err),
				      "HELLO_ACK accepts capabilities that "
				      "were not offered (0x%llx)",
				      (unsigned long long)s->caps);
	if (!r && s->p.verify && !(s->caps & PROTO_CAP_VERIFY))
		r = -EPROTO,
		snprintf(err, sizeof(err), "the destination cannot --verify");
	if (!r && src_postcopy(s) && !(s->caps & PROTO_CAP_POSTCOPY))
		r = -EPROTO,
		snprintf(err, sizeof(err), "the destination cannot post-copy");
	/* Hybrid with a peer that cannot post-copy: pre-copy only. */
	if (!(s->caps & PROTO_CAP_POSTCOPY))
		s->p.mode = MIG_MODE_PRECOPY;
	if (!r && src_postcopy(s)) {
		s->st.reason = MIG_REASON_POSTCOPY;
		src_quiesce_then(s, src_postcopy_start);
		return;
	}
	if (!r)
		r = dirty_start(&s->vm->dirty, err, sizeof(err));
	if (r) {
		src_fail(s, MIG_FAILED, "%s", err);
		return;
	}
	s->logging = true;
	bitmap_zero(&s->vm->mem.state[MEM_PS_DIRTY]);
	/* Round 0: every page that exists; holes are zero over there too. */
	r = mig_ram_resident(&s->vm->mem, &s->todo);
	if (r) {
		src_fail(s, MIG_FAILED, "scanning guest RAM: %s", strerror(-r));
		return;
	}
	s->st.memory_remaining = bitmap_count(&s->todo) * PAGE_SIZE;
	s->st.setup_time_ms = (clock_now_ns() - s->st.start_ns) / 1000000;
	s->st.state = MIG_PRECOPY;
	s->precopy_ns = clock_now_ns();
	src_start_round(s);
	src_pump(s);
}

static void src_on_verify(struct mig_source *s, const uint8_t *p, size_t len)
{
	struct proto_digest d[PROTO_MAX_REGIONS];
	char err[256];
	uint32_t nr;

	if (proto_verify_decode(p, len, d, PROTO_MAX_REGIONS, &nr, err,
				sizeof(err))) {
		src_fail(s, MIG_FAILED, "%s", err);
		return;
	}
	if (s->pc) {
		/* Post-copy: the destination's sum, compared at COMPLETE. */
		if (nr != 1 || s->remote_verified || !s->pc_end_sent) {
			src_fail(s, MIG_FAILED, "VERIFY out of order");
			return;
		}
		s->digest[0] = d[0];
		s->remote_verified = true;
		return;
	}
	if ((int)nr != s->nr_digest) {
		src_fail(s, MIG_FAILED,
			 "verify: destination hashed %u regions, "
			 "source %d",
			 nr, s->nr_digest);
		return;
	}
	for (uint32_t i = 0; i < nr; i++) {
		if (memcmp(d[i].sha256, s->digest[i].sha256, 32)) {
			src_fail(s, MIG_FAILED,
				 "verify: SHA-256 of RAM region "
				 "at 0x%llx differs between source and "
				 "destination",
				 (unsigned long long)d[i].gpa);
			return;
		}
	}
	s->remote_verified = true;
}

static void src_on_ready(struct mig_source *s)
{
	if (s->st.state != MIG_WAIT_READY) {
		src_fail(s, MIG_FAILED, "READY before the state was sent");
		return;
	}
	if ((s->caps & PROTO_CAP_VERIFY) && !s->pc && !s->remote_verified) {
		src_fail(s, MIG_FAILED,
			 "verify: READY without the "
			 "destination's digests");
		return;
	}
	/* From here on the destination may run the VM: never resume. */
	s->go_sent = true;
	s->go_ns = clock_now_ns();
	s->st.ready_wait_us = (s->go_ns - s->queued_ns) / 1000;
	if (src_send_empty(s, PROTO_GO))
		s->go_sent = false,
		src_fail(s, MIG_FAILED, "sending GO failed");
}

/*
 * The accessed pages come first in the push (push.h): walk the paused
 * VM's page tables now, after the downtime, while the urgent thread
 * already answers faults. A failed walk only loses the preference: the
 * push goes on in fault and guest-physical order.
 */
static void src_push_walk(struct mig_source *s)
{
	uint64_t t0 = clock_now_ns();
	int64_t r = mig_push_walk(&s->push, s->vm, &s->todo);

	s->st.push_walk_us = (clock_now_ns() - t0) / 1000;
	if (r < 0)
		s->st.push_walk_err = (int)-r;
}

/* The vCPUs' resume pages go first (push.h); a failure only loses that. */
static void src_push_resume(struct mig_source *s)
{
	int r = mig_push_resume(&s->push, s->vm);

	s->st.push_walk_err = r < 0 ? -r : 0;
}

static void src_on_running(struct mig_source *s)
{
	uint64_t now = clock_now_ns();

	s->st.downtime_us = (now - s->pause_ns) / 1000;
	s->st.go_wait_us = (now - s->go_ns) / 1000;
	s->st.downtime_ms = s->st.downtime_us / 1000;
	if (s->logging)
		dirty_stop(&s->vm->dirty);
	s->logging = false;
	if (s->pc) {
		/* The destination runs: push every page it lacks. */
		s->running_ns = now;
		s->st.state = MIG_POSTCOPY;
		/* Short pump runs: requests are read between them. */
		s->ch.high = SRC_PC_HIGH;
		mig_push_rewind(&s->push);
		src_start_round(s);
		/* The first frames carry the resume pages, then walk. */
		src_push_resume(s);
		src_pump(s);
		src_push_walk(s);
		return;
	}
	s->st.memory_remaining = 0;
	src_end(s, MIG_COMPLETED);
}

/* ---- post-copy (loop thread) ------------------------------------------------
 */

static const struct mig_channel_ops src_urgent_ops;

/* The push is done: every resident page is queued on one path or other. */
static void src_postcopy_pushed(struct mig_source *s)
{
	if (src_send_empty(s, PROTO_POSTCOPY_END)) {
		src_fail(s, MIG_FAILED, "sending POSTCOPY_END failed");
		return;
	}
	s->pc_end_sent = true;
}

/*
 * --verify after post-copy: the destination summed every page it holds
 * (mig_sum); sum the paused RAM here, which is what it should hold.
 */
static int src_postcopy_verify(struct mig_source *s)
{
	struct proto_digest mine;
	struct mig_sum sum;
	int r;

	if (!(s->caps & PROTO_CAP_VERIFY))
		return 0;
	if (!s->remote_verified) {
		src_fail(s, MIG_FAILED,
			 "verify: COMPLETE without the "
			 "destination's digest");
		return -EPROTO;
	}
	r = mig_sum_init(&sum);
	if (!r)
		r = mig_sum_ram(&sum, &s->vm->mem);
	mig_sum_digest(&sum, s->vm->mem.size, &mine);
	mig_sum_free(&sum);
	if (r) {
		src_fail(s, MIG_FAILED, "verify: hashing RAM: %s",
			 strerror(-r));
		return r;
	}
	if (memcmp(mine.sha256, s->digest[0].sha256, 32)) {
		src_fail(s, MIG_FAILED,
			 "verify: the destination's RAM differs from the "
			 "source's after post-copy");
		return -EIO;
	}
	return 0;
}

static void src_on_complete(struct mig_source *s)
{
	if (s->st.state != MIG_POSTCOPY || !s->pc_end_sent) {
		src_fail(s, MIG_FAILED, "COMPLETE before POSTCOPY_END");
		return;
	}
	s->giving_up = true; /* a mismatch now is final */
	if (src_postcopy_verify(s))
		return;
	s->st.memory_remaining = 0;
	s->st.postcopy_ms = (clock_now_ns() - s->running_ns) / 1000000;
	src_end(s, MIG_COMPLETED);
}

static int src_pick_cookie(struct mig_source *s)
{
	while (!s->cookie) {
		ssize_t n = getrandom(&s->cookie, sizeof(s->cookie), 0);

		if (n < 0 && errno != EINTR)
			return -errno;
	}
	return 0;
}

/*
 * Paused: what is resident now is everything the destination may lack.
 * Pure post-copy pushes all of it (every page is to push; the push skips
 * the holes, src_push_resident); after pre-copy only what was dirtied
 * since it was sent (the final harvest): the rest is there already.
 */
static int src_postcopy_scan(struct mig_source *s)
{
	if (!s->logging) {
		bitmap_set_range(&s->todo, 0, s->todo.nbits);
		s->lazy_resident = true;
	} else if (!src_harvest(s)) {
		src_take_dirty(s);
		s->st.switch_dirty = bitmap_count(&s->todo);
	}
	if (s->ended)
		return -ECANCELED;
	/* Logging goes off after RUNNING: a memslot update costs downtime. */
	bitmap_zero(&s->vm->mem.state[MEM_PS_SENT]);
	s->st.memory_remaining = bitmap_count(&s->todo) * PAGE_SIZE;
	return 0;
}

/* Every page of todo is to be pushed (and, after a break, resent). */
static void src_push_todo(struct mig_source *s)
{
	bitmap_or_words(&s->pushset, 0, s->todo.words,
			BITMAP_WORDS(s->todo.nbits));
}

/*
 * The discard set at the switch: what todo holds beyond the pages already
 * discarded early (pushset); then pushset = todo, every page to push.
 */
static int src_discard_rest(struct mig_source *s)
{
	struct bitmap rest = {0};
	uint64_t nw = BITMAP_WORDS(s->todo.nbits);
	int r = bitmap_init(&rest, s->todo.nbits);

	for (uint64_t w = 0; !r && w < nw; w++) {
		uint64_t extra = s->todo.words[w] & ~s->pushset.words[w];

		if (extra)
			bitmap_or_words(&rest, w, &extra, 1);
	}
	if (!r)
		r = src_discard_set(s, &rest);
	if (!r)
		src_push_todo(s);
	bitmap_free(&rest);
	return r;
}

/* Queue one DISCARD frame of nr runs. */
static int src_send_discard(struct mig_source *s, const struct proto_run *runs,
			    uint32_t nr)
{
	uint8_t *f = malloc(PROTO_DISCARD_MAX_FRAME);
	int n;

	if (!f)
		return -ENOMEM;
	n = proto_discard_encode(f, PROTO_DISCARD_MAX_FRAME, runs, nr);
	if (n < 0) {
		free(f);
		return n;
	}
	return mig_channel_send(&s->ch, f, n);
}

/*
 * The discard set: every page of todo (dirtied after it was sent), as runs
 * of consecutive guest-physical pages. *nr_runs counts them all.
 */
static int src_discard_set(struct mig_source *s, const struct bitmap *set)
{
	struct proto_run *runs = malloc(PROTO_MAX_DISCARD_RUNS * sizeof(*runs));
	uint64_t pos = 0;
	uint32_t nr;
	int r = runs ? 0 : -ENOMEM;

	while (!r && (nr = mig_ram_runs(&s->vm->mem, set, true, &pos, runs,
					PROTO_MAX_DISCARD_RUNS))) {
		r = src_send_discard(s, runs, nr);
		s->discard_runs += nr;
	}
	free(runs);
	return r;
}

/*
 * The urgent connection; hybrid opens it before pausing (early discard) so
 * that its handshake is not part of the downtime.
 */
static int src_urgent_connect(struct mig_source *s, char *err, size_t errlen)
{
	int r = src_pick_cookie(s);

	if (r) {
		snprintf(err, errlen, "getrandom: %s", strerror(-r));
		return r;
	}
	r = mig_channel_connect(&s->uch, s->loop, s->p.to, &src_urgent_ops, s,
				err, errlen);
	/* Requests come when the guest faults: quiet is fine. */
	s->uch.idle_ok = true;
	return r;
}

/* DISCARD*, POSTCOPY, the state, STATE_END; the urgent connection. */
static int src_postcopy_send(struct mig_source *s, char *err, size_t errlen)
{
	uint8_t buf[PROTO_POSTCOPY_FRAME];
	int r = 0;

	if (src_postcopy(s))
		src_push_todo(s); /* nothing was sent: nothing to discard */
	else
		r = src_discard_rest(s);
	if (!r)
		r = src_send_small(s, buf,
				   proto_postcopy_encode(buf, sizeof(buf),
							 s->cookie,
							 s->discard_runs));

	if (!r)
		r = src_send_snapshot(s, err, errlen);
	if (!r)
		r = src_send_empty(s, PROTO_STATE_END);
	if (!r && !s->uch.loop)
		r = src_urgent_connect(s, err, errlen);
	return r;
}

static void src_postcopy_start(struct mig_source *s)
{
	char err[256] = "";
	uint64_t t0 = clock_now_ns();
	int r;

	if (src_postcopy(s))
		s->st.setup_time_ms = (t0 - s->st.start_ns) / 1000000;
	r = src_pick_cookie(s);
	if (r) {
		src_fail(s, MIG_FAILED, "getrandom: %s", strerror(-r));
		return;
	}
	if (src_pause(s))
		return;
	s->pc = true;
	s->st.postcopy = true;
	r = src_postcopy_scan(s);
	if (r == -ECANCELED)
		return; /* the final harvest failed the migration */
	if (r) {
		src_fail(s, MIG_FAILED, "scanning guest RAM: %s", strerror(-r));
		return;
	}
	r = src_postcopy_send(s, err, sizeof(err));
	if (r) {
		src_fail(s, MIG_FAILED, "switching to post-copy: %s",
			 err[0] ? err : strerror(-r));
		return;
	}
	src_switch_queued(s);
}

/* ---- the urgent thread (urgent.h): it alone runs these --------------------
 */

static int src_send_urgent(struct mig_source *s)
{
	int n;

	if (!s->ubatch->nr_pages)
		return 0;
	/* Raw: latency matters more than bytes here. */
	n = proto_pages_encode(s->ubuf, s->frame_cap, s->ubatch, 0);
	proto_batch_init(s->ubatch);
	return n < 0 ? n : mig_urgent_send(&s->urg, s->ubuf, n);
}

/*
 * One requested page; a hole here is sent as a zero page, untouched. The
 * VM is paused: residency and contents cannot change under us, and the
 * SENT bit is atomic, shared with the loop's push.
 */
static int src_add_urgent(struct mig_source *s, uint64_t gpa)
{
	const void *hva = NULL;
	uint64_t i;

	if (mem_gpa_to_page(&s->vm->mem, gpa, &i))
		return -EFAULT;
	if (!bitmap_test_and_set(&s->vm->mem.state[MEM_PS_SENT], i) &&
	    bitmap_test(&s->pushset, i))
		atomic_fetch_add(&s->u_unpushed, 1);
	mig_push_hint(&s->push, i);
	if (mig_ram_page_resident(&s->vm->mem, gpa))
		hva = mem_gpa_to_hva(&s->vm->mem, gpa, PAGE_SIZE);
	if (hva && proto_page_is_zero(hva))
		hva = NULL;
	proto_batch_add(s->ubatch, gpa, hva);
	atomic_fetch_add(hva ? &s->u_normal : &s->u_zero, 1);
	return proto_batch_full(s->ubatch) ? src_send_urgent(s) : 0;
}

static int src_on_page_req(struct mig_source *s, const uint8_t *p, size_t len,
			   char *err, size_t errlen)
{
	uint64_t gpa[PROTO_MAX_PAGE_REQ];
	char why[256];
	uint32_t nr;
	int r = 0;

	if (proto_page_req_decode(p, len, gpa, &nr, why, sizeof(why))) {
		snprintf(err, errlen, "urgent connection: %s", why);
		return -EPROTO;
	}
	proto_batch_init(s->ubatch);
	for (uint32_t i = 0; !r && i < nr; i++)
		r = src_add_urgent(s, gpa[i]);
	if (!r)
		r = src_send_urgent(s);
	if (r)
		snprintf(err, errlen, "answering a page request: %s",
			 r == -EFAULT ? "page outside guest RAM"
				      : strerror(-r));
	return r;
}

static int src_urgent_frame(void *opaque, const struct proto_hdr *h,
			    const uint8_t *p, char *err, size_t errlen)
{
	struct mig_source *s = opaque;
	char reason[400], why[256];
	int code;

	switch (h->type) {
	case PROTO_PAGE_REQ:
		return src_on_page_req(s, p, h->len, err, errlen);
	case PROTO_ERROR:
		if (proto_error_decode(p, h->len, &code, reason, sizeof(reason),
				       why, sizeof(why)))
			snprintf(reason, sizeof(reason), "(%s)", why);
		snprintf(err, errlen, "destination refused: %s", reason);
		return -EPROTO;
	default:
		snprintf(err, errlen, "unexpected %s on the urgent connection",
			 proto_type_name(h->type));
		return -EPROTO;
	}
}

/* The thread ended by itself: tell the loop (src_on_uasync). */
static void src_urgent_end(void *opaque, int code, const char *why, bool own)
{
	struct mig_source *s = opaque;

	(void)code;
	snprintf(s->u_why, sizeof(s->u_why), "%s", why);
	s->u_own = own;
	atomic_store(&s->u_ended, true);
	uv_async_send(&s->uasync);
}

/*
 * Real-time here only: the answers then preempt the loop's push (p99 of
 * the destination's fault wait 0.2-0.3 ms instead of 1-4 ms, bench).
 * On the destination it would preempt the vCPUs and slow the guest more
 * than it speeds the faults (docs/benchmarks.md).
 */
static const struct mig_urgent_ops src_urgent_thread_ops = {
	.on_frame = src_urgent_frame,
	.on_end = src_urgent_end,
	.realtime = true,
};

/* Loop thread. */
static void src_on_uasync(uv_async_t *h)
{
	struct mig_source *s = h->data;

	if (atomic_exchange(&s->q_acked, false))
		src_quiesce_check(s, false);
	if (!atomic_exchange(&s->u_ended, false) || s->ended)
		return;
	mig_urgent_stop(&s->urg);
	src_fail(s, MIG_FAILED, "%s%s",
		 s->u_own ? "" : "urgent connection: ", s->u_why);
}

/*
 * Connected: the socket goes to the urgent thread at once, and its first
 * frame is URGENT_HELLO, written here before the thread starts.
 */
static void src_urgent_on_connect(struct mig_channel *ch)
{
	struct mig_source *s = ch->opaque;
	uint8_t buf[PROTO_COOKIE_FRAME], *left = NULL;
	char err[256] = "";
	size_t len = 0;
	int fd = -1, n, r;

	n = proto_urgent_hello_encode(buf, sizeof(buf), s->cookie);
	r = n < 0 ? n : mig_channel_detach(ch, &fd, &left, &len);
	free(left); /* the destination says nothing before our hello */
	if (!r)
		r = mig_urgent_start(&s->urg, fd, NULL, 0, buf, n, ch->peer,
				     &src_urgent_thread_ops, s, err,
				     sizeof(err));
	if (r)
		src_fail(s, MIG_FAILED, "urgent connection: %s",
			 err[0] ? err : strerror(-r));
}

/* ERROR from the destination, on either connection. */
static void src_on_peer_error(struct mig_source *s, const uint8_t *p,
			      size_t len)
{
	char reason[1100], err[256];
	int code;

	if (proto_error_decode(p, len, &code, reason, sizeof(reason), err,
			       sizeof(err)))
		snprintf(reason, sizeof(reason), "(%s)", err);
	src_fail(s, MIG_FAILED, "destination refused: %s", reason);
}

/* Nothing is read here: the socket is the urgent thread's once connected. */
static void src_urgent_on_frame(struct mig_channel *ch,
				const struct proto_hdr *h, const uint8_t *p)
{
	(void)ch;
	(void)h;
	(void)p;
}

static void src_urgent_on_error(struct mig_channel *ch, int e, const char *why)
{
	struct mig_source *s = ch->opaque;

	(void)e;
	src_fail(s, MIG_FAILED, "urgent connection: %s", why);
}

static const struct mig_channel_ops src_urgent_ops = {
	.on_frame = src_urgent_on_frame,
	.on_error = src_urgent_on_error,
	.on_connect = src_urgent_on_connect,
};

/* ---- post-copy recovery (loop thread) --------------------------------------
 */

/* The new main connection is up: RESUME with this migration's cookie. */
static void src_resume_connected(struct mig_source *s)
{
	uint8_t buf[PROTO_COOKIE_FRAME];

	s->resume_runs = 0;
	bitmap_zero(&s->lacking);
	if (src_send_small(s, buf,
			   proto_resume_encode(buf, sizeof(buf), s->cookie)))
		src_fail(s, MIG_FAILED, "sending RESUME failed");
}

/* DISCARD after RESUME: runs of pages the destination still lacks. */
static void src_on_lacking(struct mig_source *s, const uint8_t *p, size_t len)
{
	struct proto_run *runs = malloc(PROTO_MAX_DISCARD_RUNS * sizeof(*runs));
	char err[256];
	uint32_t nr;

	if (s->st.state != MIG_POSTCOPY_RECOVER || !runs) {
		free(runs);
		src_fail(s, MIG_FAILED, "%s",
			 runs ? "DISCARD out of order" : "out of memory");
		return;
	}
	if (proto_discard_decode(p, len, runs, PROTO_MAX_DISCARD_RUNS, &nr, err,
				 sizeof(err))) {
		free(runs);
		src_fail(s, MIG_FAILED, "%s", err);
		return;
	}
	for (uint32_t k = 0; k < nr; k++)
		for (uint64_t j = 0; j < runs[k].npages; j++) {
			uint64_t i;

			if (!mem_gpa_to_page(&s->vm->mem,
					     runs[k].gpa + j * PAGE_SIZE, &i))
				bitmap_set(&s->lacking, i);
		}
	s->resume_runs += nr;
	free(runs);
}

/*
 * The list is complete: push again every page of the push set it names
 * (whatever was in flight at the break), nothing the destination holds.
 */
static void src_resume_lacking(struct mig_source *s)
{
	struct bitmap *sent = &s->vm->mem.state[MEM_PS_SENT];
	uint64_t n = 0;

	bitmap_zero(&s->todo);
	for (uint64_t i = bitmap_next_set(&s->lacking, 0); i < s->lacking.nbits;
	     i = bitmap_next_set(&s->lacking, i + 1)) {
		bitmap_clear(sent, i);
		if (bitmap_test(&s->pushset, i)) {
			bitmap_set(&s->todo, i);
			n++;
		}
	}
	s->st.postcopy_lacking = n;
	s->st.memory_remaining = n * PAGE_SIZE;
	mig_push_rewind(&s->push);
}

static void src_on_resume_ack(struct mig_source *s, const uint8_t *p,
			      size_t len)
{
	uint64_t cookie, nr_runs;
	char err[256];
	int r;

	if (s->st.state != MIG_POSTCOPY_RECOVER) {
		src_fail(s, MIG_FAILED, "RESUME_ACK out of order");
		return;
	}
	if (proto_resume_ack_decode(p, len, &cookie, &nr_runs, err,
				    sizeof(err))) {
		src_fail(s, MIG_FAILED, "%s", err);
		return;
	}
	if (cookie != s->cookie || nr_runs != s->resume_runs) {
		src_fail(s, MIG_FAILED, "RESUME_ACK: %s",
			 cookie != s->cookie ? "another migration's cookie"
					     : "the count of runs differs");
		return;
	}
	src_resume_lacking(s);
	r = mig_channel_connect(&s->uch, s->loop, s->p.to, &src_urgent_ops, s,
				err, sizeof(err));
	if (r) {
		src_fail(s, MIG_FAILED, "urgent connection: %s", err);
		return;
	}
	s->uch.idle_ok = true;
	s->st.error[0] = '\0';
	s->st.state = MIG_POSTCOPY;
	s->pc_end_sent = false;
	s->remote_verified = false;
	s->ch.high = SRC_PC_HIGH;
	src_start_round(s);
	src_pump(s);
	if (s->hooks.progress)
		s->hooks.progress(s->hooks.opaque, &s->st);
}

static bool src_channel_idle(const struct mig_channel *ch)
{
	return !ch->loop || (ch->closed && !ch->pending_closes);
}

int mig_source_resume(struct mig_source *s, const char *to, char *err,
		      size_t errlen)
{
	struct sockaddr_storage ss;
	int r;

	if (s->ended || s->st.state != MIG_POSTCOPY_PAUSED) {
		snprintf(err, errlen, "no post-copy migration is paused");
		return -EALREADY;
	}
	if (!src_channel_idle(&s->ch) || !src_channel_idle(&s->uch)) {
		snprintf(err, errlen,
			 "the broken connections are still "
			 "closing; try again");
		return -EBUSY;
	}
	if (to && (r = mig_addr_parse(to, &ss, err, errlen)))
		return r;
	if (to)
		snprintf(s->to, sizeof(s->to), "%s", to);
	memset(&s->uch, 0, sizeof(s->uch));
	r = mig_channel_connect(&s->ch, s->loop, s->p.to, &src_channel_ops, s,
				err, errlen);
	if (r)
		return r;
	s->st.state = MIG_POSTCOPY_RECOVER;
	s->st.error[0] = '\0';
	return 0;
}

/* What an abort loses, for the error line. */
static void src_abort_message(struct mig_source *s)
{
	uint64_t lacking = (src_fold_counts(s), s->st.memory_remaining / PAGE_SIZE);
	uint64_t secs = s->running_ns
				? (clock_now_ns() - s->running_ns) / 1000000000ULL
				: 0;

	snprintf(s->st.error, sizeof(s->st.error),
		 "post-copy aborted by the user: the destination lacked up to "
		 "%llu pages (%llu MiB) and cannot run the VM; its run there "
		 "(%llu s since the switch) is lost. The VM stays paused here "
		 "as it was at the switch (vmmctl resume once the destination "
		 "is stopped)",
		 (unsigned long long)lacking,
		 (unsigned long long)(lacking * PAGE_SIZE >> 20),
		 (unsigned long long)secs);
}

int mig_source_abort(struct mig_source *s)
{
	if (s->ended || !s->pc || !s->go_sent)
		return -EALREADY;
	src_abort_message(s);
	src_end(s, MIG_FAILED);
	return 0;
}

static void src_on_frame(struct mig_channel *ch, const struct proto_hdr *h,
			 const uint8_t *p)
{
	struct mig_source *s = ch->opaque;

	if (s->ended)
		return;
	switch (h->type) {
	case PROTO_DISCARD:
		src_on_lacking(s, p, h->len);
		break;
	case PROTO_RESUME_ACK:
		src_on_resume_ack(s, p, h->len);
		break;
	case PROTO_HELLO_ACK:
		src_on_hello_ack(s, p, h->len);
		break;
	case PROTO_VERIFY:
		src_on_verify(s, p, h->len);
		break;
	case PROTO_READY:
		src_on_ready(s);
		break;
	case PROTO_RUNNING:
		src_on_running(s);
		break;
	case PROTO_SYNC:
		src_on_sync(s);
		break;
	case PROTO_COMPLETE:
		src_on_complete(s);
		break;
	case PROTO_ERROR:
		src_on_peer_error(s, p, h->len);
		break;
	default:
		src_fail(s, MIG_FAILED, "unexpected %s from the destination",
			 proto_type_name(h->type));
	}
}

static void src_on_error(struct mig_channel *ch, int e, const char *why)
{
	struct mig_source *s = ch->opaque;

	(void)e;
	src_fail(s, MIG_FAILED, "%s", why);
}

static void src_on_drain(struct mig_channel *ch)
{
	src_pump(ch->opaque);
}

static const struct mig_channel_ops src_channel_ops = {
	.on_frame = src_on_frame,
	.on_error = src_on_error,
	.on_drain = src_on_drain,
	.on_connect = src_on_connect,
};

/* ---- entry points
 * ------------------------------------------------------------------ */

static int src_alloc(struct mig_source *s)
{
	s->frame_cap = proto_batch_max_frame();
	s->batch = malloc(sizeof(*s->batch));
	s->ubatch = malloc(sizeof(*s->ubatch));
	s->ubuf = malloc(s->frame_cap);
	if (!s->batch || !s->ubatch || !s->ubuf)
		return -ENOMEM;
	proto_batch_init(s->batch);
	proto_batch_init(s->ubatch);
	if (bitmap_init(&s->todo, s->vm->mem.nr_pages) ||
	    bitmap_init(&s->pushset, s->vm->mem.nr_pages) ||
	    bitmap_init(&s->lacking, s->vm->mem.nr_pages) ||
	    bitmap_init(&s->resident, s->vm->mem.nr_pages) ||
	    bitmap_init(&s->scanned, BITMAP_WORDS(s->vm->mem.nr_pages) /
						     (MIG_RAM_SCAN_PAGES / 64) +
					     1) ||
	    mig_push_init(&s->push, s->p.push_order, s->vm->mem.nr_pages))
		return -ENOMEM;
	return 0;
}

int mig_source_start(struct mig_source **out, struct vm *vm, uv_loop_t *loop,
		     const struct mig_params *p, const struct mig_hooks *hooks,
		     char *err, size_t errlen)
{
	struct mig_source *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	s->vm = vm;
	s->loop = loop;
	s->p = *p;
	snprintf(s->to, sizeof(s->to), "%s", p->to);
	s->p.to = s->to;
	s->hooks = *hooks;
	s->st.state = MIG_SETUP;
	s->st.start_ns = clock_now_ns();
	s->st.memory_total = vm->mem.size;
	r = src_alloc(s);
	if (r) {
		snprintf(err, errlen, "out of memory");
		mig_source_free(s);
		return r;
	}
	r = uv_async_init(loop, &s->uasync, src_on_uasync);
	if (r) {
		snprintf(err, errlen, "uv_async_init: %s", uv_strerror(r));
		mig_source_free(s);
		return r;
	}
	s->uasync.data = s;
	s->uasync_on = true;
	r = uv_timer_init(loop, &s->qtimer);
	if (r) {
		snprintf(err, errlen, "uv_timer_init: %s", uv_strerror(r));
		mig_source_free(s);
		return r;
	}
	s->qtimer.data = s;
	s->qtimer_on = true;
	if (!s->p.quiesce_timeout_ms)
		s->p.quiesce_timeout_ms = MIG_DEFAULT_QUIESCE_MS;
	r = mig_channel_connect(&s->ch, loop, p->to, &src_channel_ops, s, err,
				errlen);
	if (r) {
		mig_source_free(s);
		return r;
	}
	*out = s;
	return 0;
}

int mig_source_cancel(struct mig_source *s)
{
	if (s->ended)
		return -EALREADY;
	if (s->go_sent)
		return -EBUSY;
	src_fail(s, MIG_CANCELLED, "cancelled by the user");
	return 0;
}

static void src_release(struct mig_source *s)
{
	bitmap_free(&s->todo);
	bitmap_free(&s->pushset);
	bitmap_free(&s->lacking);
	mig_push_free(&s->push);
	bitmap_free(&s->resident);
	bitmap_free(&s->scanned);
	free(s->batch);
	free(s->ubatch);
	free(s->ubuf);
	free(s);
}

static void src_closed_cb(struct mig_channel *ch)
{
	struct mig_source *s = ch->opaque;

	if (--s->closing == 0)
		src_release(s);
}

/* The channel's handles must be closed before s goes away. */
static void src_free_channel(struct mig_source *s, struct mig_channel *ch)
{
	if (!ch->loop)
		return;
	if (!ch->closed) {
		ch->flush_close = false;
		s->closing++;
		mig_channel_close(ch, src_closed_cb);
		return;
	}
	if (ch->pending_closes) {
		s->closing++;
		ch->on_closed = src_closed_cb;
	}
}

static void src_handle_closed(uv_handle_t *h)
{
	struct mig_source *s = h->data;

	if (--s->closing == 0)
		src_release(s);
}

void mig_source_free(struct mig_source *s)
{
	if (!s)
		return;
	mig_urgent_stop(&s->urg);
	s->closing = 1; /* held while both channels are looked at */
	src_free_channel(s, &s->ch);
	src_free_channel(s, &s->uch);
	if (s->uasync_on) {
		s->closing++;
		uv_close((uv_handle_t *)&s->uasync, src_handle_closed);
	}
	if (s->qtimer_on) {
		s->closing++;
		uv_close((uv_handle_t *)&s->qtimer, src_handle_closed);
	}
	if (--s->closing == 0)
		src_release(s);
}
