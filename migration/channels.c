/* SPDX-License-Identifier: MIT */
/*
 * channels.c - the parallel channels both sides keep (channels.h): their
 * allocation, closing and statistics. The source's use is
 * src_channels.c, the destination's dest_channels.c. Loop thread.
 */
#include <errno.h>
#include <stdlib.h>

#include "migration/channels.h"
#include "migration/session.h"

_Static_assert(PROTO_MAX_CHANNELS == MIG_MAX_CHANNELS, "one limit");

int mig_chans_alloc(struct mig_chans *c, uint32_t n, void *owner)
{
	int r;

	c->x = calloc(n - 1, sizeof(*c->x));
	if (!c->x)
		return -ENOMEM;
	r = pthread_mutex_init(&c->sum_lock, NULL);
	if (r) {
		free(c->x);
		c->x = NULL;
		return -r;
	}
	c->n = n;
	for (uint32_t i = 0; i + 1 < n; i++) {
		c->x[i].owner = owner;
		c->x[i].index = i + 1;
	}
	return 0;
}

void mig_chans_close(struct mig_session *ss)
{
	struct mig_chans *c = &ss->xc;

	for (uint32_t i = 0; c->x && i + 1 < c->n; i++) {
		struct mig_xchan *x = &c->x[i];

		mig_urgent_stop(&x->thr);
		x->closing = true;
		if (x->ch.loop && !x->ch.closed)
			mig_channel_close_after_flush(&x->ch, NULL);
	}
}

void mig_chans_stats(struct mig_session *ss, bool out)
{
	struct mig_chans *c = &ss->xc;
	struct mig_stats *st = &ss->st;

	st->channels = c->n > 1 ? c->n : 1;
	st->channel_bytes[0] = out ? ss->ch.bytes_out : ss->ch.bytes_in;
	for (uint32_t i = 0; c->x && i + 1 < c->n; i++) {
		struct mig_xchan *x = &c->x[i];

		if (out)
			st->channel_bytes[i + 1] = x->ch.bytes_out;
		else
			st->channel_bytes[i + 1] =
				x->ch.bytes_in + x->bytes +
				(x->thr.running ? x->thr.bytes_in : 0);
	}
}

void mig_chans_free(struct mig_chans *c)
{
	if (!c->x)
		return;
	for (uint32_t i = 0; i + 1 < c->n; i++)
		free(c->x[i].batch);
	free(c->x);
	c->x = NULL;
	pthread_mutex_destroy(&c->sum_lock);
}
