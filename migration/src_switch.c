/* SPDX-License-Identifier: MIT */
/*
 * src_switch.c - the source's switch-over, once the passthrough devices
 * are quiesced (src_quiesce.c): the pause, stop-copy's state sections
 * (vCPUs, VM, devices) after RAM_END, and for post-copy the discard set
 * (sent early by hybrid while the guest still runs), POSTCOPY and the
 * urgent connection. source.c moves the state around these. Loop thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/clock.h"
#include "common/page.h"
#include "migration/ram.h"
#include "migration/sections.h"
#include "migration/source.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"
#include "vmm/snapshot.h"

/* ---- pause and stop-copy ------------------------------------------------ */

/*
 * Stop the guest for the switch-over (stop-copy or post-copy). The guest
 * stops somewhere inside vm_pause: the downtime counts from its start.
 */
int src_pause(struct mig_source *s, char *err, size_t errlen)
{
	uint64_t t0;
	int r;

	src_throttle_stop(s); /* auto-converge's pauses end here */
	t0 = clock_now_ns();
	r = vm_pause_saving(s->ss.vm);

	if (r) {
		snprintf(err, errlen, "pausing the VM: %s", strerror(-r));
		return r;
	}
	s->paused_here = true;
	s->pause_ns = t0;
	s->ss.st.pause_us = (clock_now_ns() - t0) / 1000;
	return 0;
}

/* Everything of the switch-over is queued: READY is awaited. */
void src_switch_queued(struct mig_source *s)
{
	s->queued_ns = clock_now_ns();
	s->ss.st.stop_copy_us =
		(s->queued_ns - s->pause_ns) / 1000 - s->ss.st.pause_us;
}

/*
 * The paused VM's state: every vCPU, the VM, every device, then STATE_END
 * (sections.h), queued as one write: each write of its own cost 5-10 us
 * here (loopback runs the receiver's TCP path in the sender's write), all
 * of it in the downtime.
 */
static int src_send_sections(struct mig_source *s, char *err, size_t errlen)
{
	struct vm_snapshot snap;
	uint8_t *f = NULL;
	int r;

	vm_snapshot_init(&snap);
	r = vm_snapshot_take(s->ss.vm, &snap, err, errlen);
	if (!r) {
		size_t cap = mig_sections_size(&snap);

		f = malloc(cap);
		r = f ? mig_sections_encode(&snap, f, cap) : -ENOMEM;
	}
	vm_snapshot_free(&snap);
	if (r < 0) {
		free(f);
		return r;
	}
	return mig_channel_send(&s->ss.ch, f, (size_t)r);
}

/* Every page is queued: RAM_END, then the state, then (maybe) VERIFY. */
int src_send_finish(struct mig_source *s, char *err, size_t errlen)
{
	char why[256] = "";
	int r = mig_session_send_empty(&s->ss, PROTO_RAM_END);

	if (!r)
		r = src_send_sections(s, why, sizeof(why));
	if (!r && (s->ss.caps & PROTO_CAP_VERIFY))
		r = src_send_verify(s);
	if (r)
		snprintf(err, errlen, "sending state: %s",
			 why[0] ? why : strerror(-r));
	return r;
}

/* ---- the discard set ---------------------------------------------------- */

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
	return mig_channel_send(&s->ss.ch, f, n);
}

/*
 * The discard set: every page of set (dirtied after it was sent), as runs
 * of consecutive guest-physical pages; discard_runs counts them all.
 */
static int src_discard_set(struct mig_source *s, const struct bitmap *set)
{
	struct proto_run *runs = malloc(PROTO_MAX_DISCARD_RUNS * sizeof(*runs));
	uint64_t pos = 0;
	uint32_t nr;
	int r = runs ? 0 : -ENOMEM;

	while (!r && (nr = mig_ram_runs(&s->ss.vm->mem, set, true, &pos, runs,
					PROTO_MAX_DISCARD_RUNS))) {
		r = src_send_discard(s, runs, nr);
		s->discard_runs += nr;
	}
	free(runs);
	return r;
}

/* Every page of todo is to be pushed (and, after a break, resent). */
static void src_push_todo(struct mig_source *s)
{
	bitmap_or_words(&s->pushset, 0, s->todo.words,
			BITMAP_WORDS(s->todo.nbits));
}

/*
 * The discard set: what todo holds beyond the pages already discarded
 * early (pushset), but the pages the switch sends in the downtime (now,
 * or NULL: src_hot.c), which it overwrites over there; then pushset =
 * todo, every page to push.
 */
static int src_discard_rest(struct mig_source *s, const struct bitmap *now)
{
	struct bitmap rest = {0};
	uint64_t nw = BITMAP_WORDS(s->todo.nbits);
	int r = bitmap_init(&rest, s->todo.nbits);

	for (uint64_t w = 0; !r && w < nw; w++) {
		uint64_t extra = s->todo.words[w] & ~s->pushset.words[w];

		if (now)
			extra &= ~now->words[w];
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

/*
 * Hybrid gives pre-copy up. The pages dirty now will be in the discard set
 * whatever happens next, and dropping them costs the destination ~0.6 us a
 * page (the kernel frees them): send them now, while the guest still runs,
 * and pause only when SYNC says the destination has dropped them. The
 * switch then discards just what was dirtied meanwhile.
 *
 * src_discard_early: discard what is dirty and not discarded yet (the
 * whole of todo the first time), then SYNC. No page may be sent meanwhile
 * (the pump waits): a page sent after its discard would stay valid there
 * even if dirtied again.
 */
int src_discard_early(struct mig_source *s)
{
	int r = src_discard_rest(s, NULL);

	if (!r)
		r = mig_session_send_empty(&s->ss, PROTO_SYNC);
	if (r)
		return r;
	s->early_discard = true;
	s->sync_wait = true;
	return 0;
}

/* Pages of todo not discarded yet (not in pushset). */
uint64_t src_discard_pending(const struct mig_source *s)
{
	uint64_t n = 0;

	for (uint64_t w = 0; w < BITMAP_WORDS(s->todo.nbits); w++)
		n += __builtin_popcountll(s->todo.words[w] &
					  ~s->pushset.words[w]);
	return n;
}

/* ---- the switch to post-copy -------------------------------------------- */

static int src_pick_cookie(struct mig_source *s)
{
	while (!s->ss.cookie) {
		ssize_t n = getrandom(&s->ss.cookie, sizeof(s->ss.cookie), 0);

		if (n < 0 && errno != EINTR)
			return -errno;
	}
	return 0;
}

/*
 * The urgent connection; hybrid opens it before pausing (early discard) so
 * that its handshake is not part of the downtime.
 */
int src_urgent_connect(struct mig_source *s, char *err, size_t errlen)
{
	int r = src_pick_cookie(s);

	if (r) {
		snprintf(err, errlen, "getrandom: %s", strerror(-r));
		return r;
	}
	r = mig_channel_connect(&s->ss.uch, s->ss.loop, s->p.to, s->ss.tcp_cc,
				&src_urgent_ops, s, err, errlen);
	mig_channel_use_tls(&s->ss.uch, s->ss.tls, s->ss.tls_name);
	/* Requests come when the guest faults: quiet is fine. */
	s->ss.uch.idle_ok = true;
	return r;
}

/*
 * Paused: what is resident now is everything the destination may lack.
 * Pure post-copy pushes all of it (every page is to push; the push skips
 * the holes, src_push_resident); after pre-copy only what was dirtied
 * since it was sent (the final harvest): the rest is there already.
 */
static int src_postcopy_scan(struct mig_source *s, char *err, size_t errlen)
{
	if (!s->logging) {
		bitmap_set_range(&s->todo, 0, s->todo.nbits);
		s->lazy_resident = true;
	} else {
		int r = src_harvest_last(s, err, errlen);

		if (r)
			return r;
		src_take_last(s);
		s->ss.st.switch_dirty = bitmap_count(&s->todo);
	}
	/* Logging goes off after RUNNING: a memslot update costs downtime. */
	bitmap_zero(&s->ss.vm->mem.state[MEM_PS_SENT]);
	s->ss.st.memory_remaining = bitmap_count(&s->todo) * PAGE_SIZE;
	return 0;
}

/* DISCARD*, POSTCOPY, the state, STATE_END; the urgent connection. */
static int src_postcopy_send(struct mig_source *s, char *err, size_t errlen)
{
	uint8_t buf[PROTO_POSTCOPY_FRAME];
	bool hot = s->hot.words; /* hybrid: src_hot.c */
	int r = 0;

	if (hot)
		src_hot_pick(s);
	if (src_postcopy(s))
		src_push_todo(s); /* nothing was sent: nothing to discard */
	else
		r = src_discard_rest(s, hot ? &s->now : NULL);
	if (!r && hot)
		r = src_hot_send(s);
	if (!r)
		r = src_send_small(s, buf,
				   proto_postcopy_encode(buf, sizeof(buf),
							 s->ss.cookie,
							 s->discard_runs));
	if (!r)
		r = src_send_sections(s, err, errlen);
	if (!r && !s->ss.uch.loop)
		r = src_urgent_connect(s, err, errlen);
	return r;
}

/* Paused for post-copy: find what to push, and queue the switch. */
int src_postcopy_switch(struct mig_source *s, char *err, size_t errlen)
{
	char why[256] = "";
	int r;

	s->pc = true;
	s->ss.st.postcopy = true;
	r = src_postcopy_scan(s, err, errlen);
	if (r)
		return r;
	r = src_postcopy_send(s, why, sizeof(why));
	if (r)
		snprintf(err, errlen, "switching to post-copy: %s",
			 why[0] ? why : strerror(-r));
	return r;
}

/* Before the pause of post-copy: the cookie that names this migration. */
int src_postcopy_prepare(struct mig_source *s, char *err, size_t errlen)
{
	int r;

	if (src_postcopy(s))
		s->ss.st.setup_time_ms =
			(clock_now_ns() - s->ss.st.start_ns) / 1000000;
	r = src_pick_cookie(s);
	if (r)
		snprintf(err, errlen, "getrandom: %s", strerror(-r));
	return r;
}
