/* SPDX-License-Identifier: MIT */
/*
 * src_precopy.c - the source's pre-copy phase: round 0 sends every
 * resident page, round n the pages dirtied during round n-1; each round
 * ends with a SYNC the destination echoes, then the harvest and the
 * policy's verdict (src_end_round). The page pump (src_pages_pump) also
 * carries stop-copy's last pages and post-copy's push. Zero pages travel
 * as a flag; data pages go from guest RAM to the socket without a copy
 * here, unless a sample says zstd pays. Loop thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "common/clock.h"
#include "common/page.h"
#include "ept/dirty.h"
#include "ept/ram_io.h"
#include "migration/source.h"
#include "vmm/vm.h"

/* Queue a small frame encoded into tmp (n: the encoder's result). */
int src_send_small(struct mig_source *s, uint8_t *tmp, int n)
{
	return mig_channel_send_copy(&s->ss.ch, tmp, n);
}

/*
 * Compress only where it pays: a batch whose sample (two pages, proto/)
 * zstd does not shrink by 1/8, or whose whole data it then does not, is a
 * miss; after a few misses in a row, send raw for a while (doubling up to
 * 64 batches) before sampling again. Random-looking guest data then costs
 * a sample now and then, and compressible data is found again within a
 * few batches. That is --compress auto; none sends raw, zstd compresses
 * every batch with data.
 */
#define SRC_ZSTD_MISSES 4

static int src_zstd_level(struct mig_source *s)
{
	if (!s->p.zstd_level || s->p.compress == MIG_COMPRESS_NONE ||
	    !(s->ss.caps & PROTO_CAP_ZSTD))
		return 0;
	if (s->p.compress == MIG_COMPRESS_ZSTD)
		return s->p.zstd_level;
	if (s->zstd_skip) {
		s->zstd_skip--;
		return 0;
	}
	return s->p.zstd_level;
}

static void src_zstd_miss(struct mig_source *s)
{
	unsigned int k;

	if (++s->zstd_misses < SRC_ZSTD_MISSES)
		return;
	k = s->zstd_misses - SRC_ZSTD_MISSES;
	s->zstd_skip = 1U << (k < 6 ? k : 6);
}

static void src_zstd_account(struct mig_source *s, int n)
{
	uint64_t raw = (uint64_t)s->batch->nr_data * PAGE_SIZE;

	if (raw > (uint64_t)n)
		s->ss.st.compression_bytes += raw - n;
	if ((uint64_t)n + raw / 8 < raw)
		s->zstd_misses = 0;
	else
		src_zstd_miss(s);
}

/* The batch through zstd into a frame of its own. */
static int src_send_zstd(struct mig_source *s, int level)
{
	uint8_t *f = malloc(s->frame_cap);
	int n;

	if (!f)
		return -ENOMEM;
	n = proto_pages_encode(f, s->frame_cap, s->batch, level);
	if (n < 0) {
		free(f);
		return n;
	}
	src_zstd_account(s, n);
	proto_batch_init(s->batch);
	s->round_bytes += n;
	src_rate_spend(s, n);
	return mig_channel_send(src_chans_pick(s), f, n);
}

/*
 * The batch raw, its pages written from guest RAM where they are (no copy
 * here; plaintext channels writev them). In pre-copy the guest runs: a
 * page it changes before the kernel has copied it is dirty, so sent
 * again (what arrives is never older than what the dirty log says was
 * sent), and the frame is live: its CRC cannot cover the pages. Paused
 * (stop-copy, post-copy), the CRC covers them.
 */
static int src_send_raw(struct mig_source *s)
{
	bool live = s->ss.st.state == MIG_PRECOPY;
	struct iovec iov[PROTO_MAX_BATCH];
	uint8_t *head = malloc(PROTO_PAGES_HEAD_MAX);
	size_t len;
	int n, niov;

	if (!head)
		return -ENOMEM;
	n = proto_pages_encode_head(head, PROTO_PAGES_HEAD_MAX, s->batch, live,
				    iov, &niov);
	if (n < 0) {
		free(head);
		return n;
	}
	len = (size_t)n + (size_t)s->batch->nr_data * PAGE_SIZE;
	proto_batch_init(s->batch);
	s->round_bytes += len;
	src_rate_spend(s, len);
	return mig_channel_sendv(src_chans_pick(s), head, (size_t)n, iov, niov);
}

int src_send_batch(struct mig_source *s)
{
	int level;

	if (!s->batch->nr_pages)
		return 0;
	level = s->batch->nr_data ? src_zstd_level(s) : 0;
	if (level && s->p.compress == MIG_COMPRESS_AUTO &&
	    !proto_pages_zstd_pays(s->batch, level)) {
		src_zstd_miss(s);
		level = 0;
	}
	return level ? src_send_zstd(s, level) : src_send_raw(s);
}

/*
 * While the guest is paused for the switch (until GO), frames hold at most
 * SRC_PAUSED_BATCH pages: the destination then places one frame while the
 * next is built and carried, so the last pages cost the slowest of the
 * three steps instead of their sum. Full frames cost fewer headers and
 * syscalls, which is what counts while the guest runs.
 */
#define SRC_PAUSED_BATCH 32

bool src_batch_full(const struct mig_source *s)
{
	if (s->paused_here && !s->go_sent)
		return s->batch->nr_pages >= SRC_PAUSED_BATCH;
	return proto_batch_full(s->batch);
}

/* Add page i (a bit of todo) to the batch: zero pages as a flag. */
void src_add_page(struct mig_source *s, uint64_t i)
{
	struct mig_stats *st = &s->ss.st;
	uint64_t gpa = mem_page_to_gpa(&s->ss.vm->mem, i);
	const void *hva = mem_gpa_to_hva(&s->ss.vm->mem, gpa, PAGE_SIZE);

	bool zero = proto_page_is_zero(hva);

	if (!s->pc)
		src_verify_sent(s, i, gpa, zero ? NULL : hva);
	if (zero) {
		proto_batch_add(s->batch, gpa, NULL);
		st->memory_constant++;
	} else {
		proto_batch_add(s->batch, gpa, hva);
		st->memory_normal++;
		st->memory_normal_bytes += PAGE_SIZE;
	}
	st->memory_processed += PAGE_SIZE;
	if (st->memory_remaining >= PAGE_SIZE)
		st->memory_remaining -= PAGE_SIZE;
	s->round_pages++;
}

/* Fill one batch from todo. Returns false when the round has no pages left. */
static bool src_fill_batch(struct mig_source *s)
{
	uint64_t i = bitmap_next_set(&s->todo, s->cursor);

	for (; i < s->todo.nbits; i = bitmap_next_set(&s->todo, i + 1)) {
		if (src_chans_other(s, i)) { /* channels.h: the rule */
			s->cursor = i;
			return true;
		}
		bitmap_clear(&s->todo, i);
		src_add_page(s, i);
		if (src_batch_full(s)) {
			s->cursor = i + 1;
			return true;
		}
	}
	s->cursor = s->todo.nbits;
	return s->batch->nr_pages > 0;
}

/* The harvested set into todo; in hybrid through dnew, for hot. */
static uint64_t src_take_harvest(struct mig_source *s, bool last)
{
	if (s->dnew.words)
		return src_hot_take(s, last);
	return dirty_take(&s->ss.vm->dirty, &s->todo);
}

static uint64_t src_take(struct mig_source *s, bool last)
{
	uint64_t n = src_devs_take_pinned(s);

	n += src_take_harvest(s, last);
	s->cursor = 0;
	s->ss.st.memory_remaining = n * PAGE_SIZE;
	return n;
}

/* Move the harvested dirty set (and the device's pins) into todo. */
uint64_t src_take_dirty(struct mig_source *s)
{
	return src_take(s, false);
}

/* The same for the switch to post-copy: its pages are write-hot too. */
uint64_t src_take_last(struct mig_source *s)
{
	return src_take(s, true);
}

int src_harvest(struct mig_source *s, char *err, size_t errlen)
{
	return dirty_harvest(&s->ss.vm->dirty, NULL, err, errlen);
}

/*
 * Paused for the switch: the guest runs here again only after a failure,
 * which turns logging off first (src_precopy_end), so nothing found now
 * need be write-protected again (KVM_CLEAR_DIRTY_LOG: in the downtime).
 */
int src_harvest_last(struct mig_source *s, char *err, size_t errlen)
{
	return dirty_harvest_last(&s->ss.vm->dirty, NULL, err, errlen);
}

void src_start_round(struct mig_source *s)
{
	s->round_start_ns = clock_now_ns();
	s->round_bytes = 0;
	s->round_pages = 0;
}

/*
 * Converged: the dirty set the last round left (src_end_round took it
 * into todo) goes while the guest still runs, with no SYNC to wait for,
 * and the pause follows as soon as it is queued (source.c: src_pump).
 * Stop-copy then carries only what the guest dirtied during that pass
 * instead of that set and all it dirtied since, in the downtime. The pages
 * go on the main connection only (src_chan_of: the extra channels closed
 * at the stop): everything of theirs was placed before the SYNC that ended
 * pre-copy, so the destination still places the newest copy last. False:
 * no pass (done already, or policy.c says it would not pay: not converged,
 * and a spent budget must not go on; or the guest dirties as fast as the
 * link carries).
 */
bool src_last_pass(struct mig_source *s)
{
	if (s->last_pass_done || !mig_policy_last_pass(&s->ss.st, &s->policy))
		return false;
	s->last_pass_done = true;
	s->last_pass = true;
	s->ss.st.last_pass_pages = bitmap_count(&s->todo);
	src_start_round(s);
	return true;
}

/* HELLO_ACK agreed on pre-copy: logging on, round 0 is every page that is. */
int src_precopy_begin(struct mig_source *s, char *err, size_t errlen)
{
	int r = src_verify_begin(s, err, errlen);

	if (!r)
		r = dirty_start(&s->ss.vm->dirty, err, errlen);
	if (r)
		return r;
	s->logging = true;
	dirty_forget(&s->ss.vm->dirty);
	/* Holes are zero over there too. */
	r = mem_resident(&s->ss.vm->mem, &s->todo);
	if (r) {
		snprintf(err, errlen, "scanning guest RAM: %s", strerror(-r));
		return r;
	}
	s->ss.st.memory_remaining = bitmap_count(&s->todo) * PAGE_SIZE;
	s->ss.st.setup_time_ms = (clock_now_ns() - s->ss.st.start_ns) / 1000000;
	s->precopy_ns = clock_now_ns();
	src_start_round(s);
	return 0;
}

/* Dirty logging off (no more rounds, or the migration is over). */
void src_precopy_end(struct mig_source *s)
{
	src_throttle_stop(s);
	if (s->logging)
		dirty_stop(&s->ss.vm->dirty);
	s->logging = false;
}

/*
 * A pre-copy round has reached the destination (its SYNC came back):
 * measure the dirty rate and the end-to-end bandwidth, and ask the policy
 * (into d) whether to go on. Nothing of this round is in flight any more,
 * so stop-copy will send only what is dirty now.
 */
int src_end_round(struct mig_source *s, struct mig_decision *d, char *err,
		  size_t errlen)
{
	struct mig_stats *st = &s->ss.st;
	uint64_t dt = clock_now_ns() - s->round_start_ns;
	uint64_t sent = s->round_bytes;
	uint64_t dirty;
	int r = src_harvest(s, err, errlen);

	if (r)
		return r;
	dirty = src_take_dirty(s);
	st->memory_iteration++;
	st->memory_dirty_rate = dt ? dirty * 1000000000ULL / dt : 0;
	if (sent && dt)
		st->memory_bps = sent * 1000000000ULL / dt;
	mig_policy_decide(&s->p, st, &s->policy, dirty,
			  clock_now_ns() - s->precopy_ns, d);
	st->predicted_downtime_us = d->predicted_us;
	return 0;
}

/*
 * Queue pages while the channel is below its high-water mark (on_drain
 * brings the caller back): pre-copy's round, stop-copy's rest, or
 * post-copy's push. Returns how it stopped, or -errno with err set.
 */
int src_pages_pump(struct mig_source *s, char *err, size_t errlen)
{
	enum mig_state *state = &s->ss.st.state;

	while (*state == MIG_PRECOPY || *state == MIG_STOP_COPY ||
	       (*state == MIG_POSTCOPY && !s->pc_end_sent)) {
		if (!src_chans_writable(s) || src_rate_hold(s))
			return SRC_PUMP_WAIT;
		if (s->pc ? src_fill_push(s) : src_fill_batch(s)) {
			int r = src_send_batch(s);

			if (r) {
				snprintf(err, errlen, "sending pages: %s",
					 strerror(-r));
				return r;
			}
			continue;
		}
		if (*state != MIG_PRECOPY || s->last_pass)
			return SRC_PUMP_EMPTY;
		/* Round queued: SYNC, and continue when it comes back. */
		if (s->sync_wait)
			return SRC_PUMP_WAIT;
		if (mig_session_send_empty(&s->ss, PROTO_SYNC) ||
		    src_chans_sync(s)) {
			snprintf(err, errlen, "sending SYNC failed");
			return -EIO;
		}
		s->sync_wait = true;
		return SRC_PUMP_ROUND;
	}
	return SRC_PUMP_WAIT;
}
