/* SPDX-License-Identifier: MIT */
/*
 * src_channels.c - the source's parallel channels (channels.h): connect
 * the extra connections after HELLO_ACK, pick each pre-copy batch's
 * channel by the ordering rule, send SYNC on every channel at the end of a
 * round and hold the round until every echo is back, and close them when
 * pre-copy ends. A lost extra channel fails the migration like a lost main
 * connection (the VM keeps running here). Loop thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migration/source.h"

static struct mig_xchan *src_xchan(struct mig_channel *ch)
{
	return (struct mig_xchan *)((char *)ch -
				    offsetof(struct mig_xchan, ch));
}

/* HELLO asks for p.channels connections (pre-copy and hybrid only). */
uint32_t src_chans_wanted(const struct mig_source *s)
{
	uint32_t n = s->p.channels;

	if (n < 2 || src_local(s) || s->p.mode == MIG_MODE_POSTCOPY)
		return 1;
	return n > PROTO_MAX_CHANNELS ? PROTO_MAX_CHANNELS : n;
}

static void src_xchan_on_connect(struct mig_channel *ch)
{
	struct mig_xchan *x = src_xchan(ch);
	struct mig_source *s = x->owner;
	uint8_t buf[PROTO_CHAN_HELLO_FRAME], proof[PROTO_PROOF_LEN];
	bool tls = s->ss.tls != NULL;
	int n;

	if (tls && mig_session_tls_proof(&s->ss, ch, MIG_TLS_CHANNEL, proof)) {
		src_fail(s, MIG_FAILED, "channel %u: TLS: no channel binding",
			 x->index);
		return;
	}
	n = proto_chan_hello_encode(buf, sizeof(buf), s->ss.xc.token, x->index,
				    tls ? proof : NULL);
	if (mig_channel_send_copy(ch, buf, n)) {
		src_fail(s, MIG_FAILED, "channel %u: sending CHAN_HELLO failed",
			 x->index);
		return;
	}
	x->up = true;
	if (++s->ss.xc.up == s->ss.xc.n - 1)
		src_precopy_go(s);
}

/* Only SYNC's echo comes back on an extra channel. */
static void src_xchan_on_frame(struct mig_channel *ch,
			       const struct proto_hdr *h, const uint8_t *p)
{
	struct mig_xchan *x = src_xchan(ch);
	struct mig_source *s = x->owner;

	(void)p;
	if (h->type != PROTO_SYNC || !x->sync_wait) {
		src_fail(s, MIG_FAILED, "channel %u: unexpected %s", x->index,
			 proto_type_name(h->type));
		return;
	}
	x->sync_wait = false;
	if (s->ss.xc.main_synced && !src_chans_sync_hold(s)) {
		s->ss.xc.main_synced = false;
		src_on_sync(s);
	}
}

static void src_xchan_on_error(struct mig_channel *ch, int e, const char *why)
{
	struct mig_xchan *x = src_xchan(ch);

	(void)e;
	if (!x->closing)
		src_fail(x->owner, MIG_FAILED, "channel %u: %s", x->index, why);
}

static void src_xchan_on_drain(struct mig_channel *ch)
{
	src_pump(src_xchan(ch)->owner);
}

static const struct mig_channel_ops src_xchan_ops = {
	.on_frame = src_xchan_on_frame,
	.on_error = src_xchan_on_error,
	.on_drain = src_xchan_on_drain,
	.on_connect = src_xchan_on_connect,
};

/*
 * HELLO_ACK agreed on n > 1 channels: connect the extra ones; pre-copy
 * starts (src_precopy_go) once all are up. 1: wait for them; 0: one
 * channel, go on now; -errno with err.
 */
int src_chans_start(struct mig_source *s, char *err, size_t errlen)
{
	struct mig_chans *c = &s->ss.xc;
	int r;

	if (c->n < 2)
		return 0;
	r = mig_chans_alloc(c, c->n, s);
	if (r) {
		snprintf(err, errlen, "channels: %s", strerror(-r));
		return r;
	}
	for (uint32_t i = 0; i + 1 < c->n; i++) {
		struct mig_xchan *x = &c->x[i];
		char why[256];

		r = mig_channel_connect(&x->ch, s->ss.loop, s->p.to,
					s->ss.tcp_cc, &src_xchan_ops, s, why,
					sizeof(why));
		if (r) {
			snprintf(err, errlen, "channel %u: %s", x->index, why);
			return r;
		}
		mig_channel_use_tls(&x->ch, s->ss.tls, s->ss.tls_name);
		x->ch.idle_ok = true; /* quiet between rounds */
	}
	return 1;
}

/*
 * The ordering rule: in pre-copy page i goes on channel (i >> 9) % n in
 * every round; everything else on the main one (0).
 */
static uint32_t src_chan_of(const struct mig_source *s, uint64_t i)
{
	const struct mig_chans *c = &s->ss.xc;

	if (c->n < 2 || s->ss.st.state != MIG_PRECOPY || c->x[0].closing)
		return 0;
	return (uint32_t)((i >> MIG_CHAN_SHIFT) % c->n);
}

bool src_chans_other(struct mig_source *s, uint64_t i)
{
	uint32_t k = src_chan_of(s, i);

	if (s->batch->nr_pages && k != s->ss.xc.cur)
		return true;
	s->ss.xc.cur = k;
	return false;
}

struct mig_channel *src_chans_pick(struct mig_source *s)
{
	uint32_t k = s->ss.xc.cur;

	if (!k || s->ss.st.state != MIG_PRECOPY)
		return &s->ss.ch;
	return &s->ss.xc.x[k - 1].ch;
}

bool src_chans_writable(const struct mig_source *s)
{
	const struct mig_chans *c = &s->ss.xc;

	if (!mig_channel_writable(&s->ss.ch))
		return false;
	if (s->ss.st.state != MIG_PRECOPY)
		return true;
	for (uint32_t i = 0; c->x && i + 1 < c->n; i++)
		if (!c->x[i].closing && !mig_channel_writable(&c->x[i].ch))
			return false;
	return true;
}

/* The round is queued: SYNC on every extra channel too. */
int src_chans_sync(struct mig_source *s)
{
	struct mig_chans *c = &s->ss.xc;
	uint8_t buf[PROTO_HDR_SIZE];

	for (uint32_t i = 0; c->x && i + 1 < c->n; i++) {
		int n = proto_empty_encode(buf, sizeof(buf), PROTO_SYNC);

		if (mig_channel_send_copy(&c->x[i].ch, buf, n))
			return -EIO;
		c->x[i].sync_wait = true;
	}
	return 0;
}

/* The main SYNC came back: hold the round while an extra one has not. */
bool src_chans_sync_hold(struct mig_source *s)
{
	struct mig_chans *c = &s->ss.xc;

	for (uint32_t i = 0; c->x && i + 1 < c->n; i++)
		if (c->x[i].sync_wait) {
			c->main_synced = true;
			return true;
		}
	return false;
}

/* Pre-copy is over: nothing is in flight on the extra channels. */
void src_chans_done(struct mig_source *s)
{
	mig_chans_stats(&s->ss, true);
	s->ss.st.precopy_bytes = 0;
	for (uint32_t i = 0; i < s->ss.st.channels; i++)
		s->ss.st.precopy_bytes += s->ss.st.channel_bytes[i];
	s->ss.xc.cur = 0;
	mig_chans_close(&s->ss);
}
