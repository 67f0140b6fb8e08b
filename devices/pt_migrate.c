/* SPDX-License-Identifier: MIT */
/*
 * pt_migrate.c - the pt device's side of a migration: the quiesce
 * handshake with the guest driver (docs/pt-quiesce.md) and its migratable
 * state (save, the checks of a loaded state, load). Every function takes
 * p->lock (pt.c's header comment says who owns what); run on the event
 * loop.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "devices/devices.h"
#include "devices/pt_int.h"

/* ---- the migration handshake --------------------------------------------- */

/* Post request r: register, ring header mirror, interrupt. Locked. */
static uint32_t pt_post_request(struct pt *p, enum pt_req r)
{
	struct pt_ring_hdr *hdr = pt_ring(p);

	p->req = r;
	p->req_seq++;
	p->req_ns = clock_now_ns();
	if (p->enabled && hdr)
		pt_mirror_req(p, hdr);
	pt_irq(p);
	return p->req_seq;
}

uint32_t pt_quiesce_request(struct pt *p)
{
	uint32_t seq;

	pthread_mutex_lock(&p->lock);
	p->qstate = PT_Q_REQUESTED;
	p->st.quiesces++;
	seq = pt_post_request(p, PT_REQ_QUIESCE);
	pthread_mutex_unlock(&p->lock);
	return seq;
}

uint32_t pt_resume(struct pt *p)
{
	uint32_t seq;

	pthread_mutex_lock(&p->lock);
	p->qstate = PT_Q_RESUMING;
	p->st.resumes++;
	seq = pt_post_request(p, PT_REQ_RESUME);
	pthread_mutex_unlock(&p->lock);
	return seq;
}

/* Acked: may the VM switch over? p->lock held. */
static int pt_check_acked(struct pt *p, char *err, size_t errlen)
{
	struct pt_pin pin;
	uint32_t n = pt_pinned_locked(p, &pin, 1);

	if (p->enabled && !n) {
		err_set(err, errlen,
		       "pt: driver acknowledged the quiesce but left the "
		       "queue enabled");
		return -EBUSY;
	}
	if (p->enabled) {
		err_set(err, errlen,
		       "pt: driver acknowledged the quiesce but left the queue "
		       "enabled with %" PRIu32
		       " buffers pinned; buffer %" PRIu32 " at gpa 0x%" PRIx64
		       " (%" PRIu32 " bytes) is still pinned",
		       n, pin.desc, pin.gpa, pin.len);
		return -EBUSY;
	}
	if (n) {
		err_set(err, errlen,
		       "pt: buffer %" PRIu32 " at gpa 0x%" PRIx64 " (%" PRIu32
		       " bytes) is still pinned",
		       pin.desc, pin.gpa, pin.len);
		return -EBUSY;
	}
	return 0;
}

int pt_quiesce_check(struct pt *p, char *err, size_t errlen)
{
	int ret;

	pthread_mutex_lock(&p->lock);
	if (p->qstate == PT_Q_ACKED) {
		ret = pt_check_acked(p, err, errlen);
	} else {
		ret = -EAGAIN;
		err_set(err, errlen,
		       "pt: the driver has not acknowledged a quiesce (%s, "
		       "REQ_SEQ %" PRIu32 ")",
		       pt_quiesce_state_name(p->qstate), p->req_seq);
	}
	pthread_mutex_unlock(&p->lock);
	return ret;
}

const char *pt_quiesce_state_name(enum pt_quiesce_state s)
{
	switch (s) {
	case PT_Q_RUNNING:
		return "running";
	case PT_Q_REQUESTED:
		return "requested";
	case PT_Q_ACKED:
		return "acked";
	case PT_Q_RESUMING:
		return "resuming";
	}
	return "unknown";
}

/* ---- migratable state --------------------------------------------------- */

int pt_save(struct pt *p, struct pt_state *st, char *err, size_t errlen)
{
	int ret = 0;

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&p->lock);
	if (p->enabled) {
		err_set(err, errlen,
		       "pt: cannot save: the queue is enabled (%" PRIu32
		       " buffers pinned); the driver has not quiesced",
		       p->tail - p->head);
		ret = -EBUSY;
	} else if (p->tail != p->head) {
		err_set(err, errlen,
		       "pt: cannot save: %" PRIu32 " buffers still pinned",
		       p->tail - p->head);
		ret = -EBUSY;
	}
	if (ret) {
		pthread_mutex_unlock(&p->lock);
		return ret;
	}
	st->next_seq = p->st.next_seq;
	st->delivered = p->st.delivered;
	st->irq_mask = p->irq_mask;
	st->rate_pps = p->cfg.rate_pps;
	st->nr_queued = p->q_len;
	for (uint32_t i = 0; i < p->q_len; i++) {
		uint32_t slot = (p->q_head + i) % PT_QUEUE_MAX;
		struct pt_state_pkt *pkt = &st->queue[i];

		pkt->seq = p->queue_seq[slot];
		pkt->len = pt_pkt_len(pkt->seq);
		memcpy(pkt->data, p->queue_data[slot], pkt->len);
	}
	pthread_mutex_unlock(&p->lock);
	return 0;
}

/* One queued packet of a saved state: 0 or -EINVAL with err set. */
static int pt_check_pkt(const struct pt_state *st, uint32_t i, char *err,
			size_t errlen)
{
	const struct pt_state_pkt *pkt = &st->queue[i];
	uint64_t want = st->next_seq - st->nr_queued + i;

	if (pkt->seq != want) {
		err_set(err, errlen,
		       "pt state: queue[%" PRIu32 "].seq %" PRIu64
		       " should be %" PRIu64
		       " (the queue holds the last packets made, in order)",
		       i, pkt->seq, want);
		return -EINVAL;
	}
	if (pkt->len != pt_pkt_len(pkt->seq) || pkt->pad) {
		err_set(err, errlen,
		       "pt state: queue[%" PRIu32 "].len %" PRIu32
		       " (pad %" PRIu32 ") should be %" PRIu32
		       " for seq %" PRIu64 " (pad 0)",
		       i, pkt->len, pkt->pad, pt_pkt_len(pkt->seq), pkt->seq);
		return -EINVAL;
	}
	for (uint32_t k = 0; k < pkt->len / 8; k++) {
		uint64_t w, good = pt_pkt_word(pkt->seq, k);

		memcpy(&w, &pkt->data[k * 8], sizeof(w));
		if (w != good) {
			err_set(err, errlen,
			       "pt state: queue[%" PRIu32 "].data word %" PRIu32
			       " is not packet %" PRIu64 "'s",
			       i, k, pkt->seq);
			return -EINVAL;
		}
	}
	return 0;
}

static int pt_check_state(const struct pt_state *st, char *err, size_t errlen)
{
	if (st->nr_queued > PT_QUEUE_MAX) {
		err_set(err, errlen,
		       "pt state: nr_queued %" PRIu32 " exceeds %d",
		       st->nr_queued, PT_QUEUE_MAX);
		return -EINVAL;
	}
	if (st->pad || st->irq_mask > 1) {
		err_set(err, errlen,
		       "pt state: pad %" PRIu32
		       " (must be 0) or irq_mask %" PRIu32 " (0 or 1) invalid",
		       st->pad, st->irq_mask);
		return -EINVAL;
	}
	if (!st->next_seq || st->delivered >= st->next_seq ||
	    st->next_seq - 1 - st->delivered != st->nr_queued) {
		err_set(err, errlen,
		       "pt state: next_seq %" PRIu64
		       " does not follow delivered %" PRIu64
		       " + nr_queued %" PRIu32 " (packets start at 1)",
		       st->next_seq, st->delivered, st->nr_queued);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < st->nr_queued; i++) {
		int ret = pt_check_pkt(st, i, err, errlen);

		if (ret)
			return ret;
	}
	return 0;
}

/*
 * The device restarts in its reset state: no ring, disabled, head = tail =
 * 0, qstate RUNNING, REQ = NONE and REQ_SEQ = 0. The request sequence is
 * not carried (struct pt_state has no field for it): the destination's
 * first request, the RESUME, is REQ_SEQ 1 whatever the source had reached.
 * A driver must therefore take any change of the pair (REQ, REQ_SEQ) as a
 * new request, not only a larger REQ_SEQ. The destination's own counters
 * (irqs, doorbells, quiesces, ...) are kept: they describe this process.
 */
int pt_load(struct pt *p, const struct pt_state *st, char *err, size_t errlen)
{
	int ret = pt_check_state(st, err, errlen);

	if (ret)
		return ret;
	pthread_mutex_lock(&p->lock);
	p->ring_gpa = PT_NO_RING;
	p->ring_size = 0;
	p->enabled = false;
	p->head = p->tail = 0;
	p->req = PT_REQ_NONE;
	p->req_seq = p->ack_seq = 0;
	p->qstate = PT_Q_RUNNING;
	p->req_ns = 0;
	p->credit_ns = 0;
	p->irq_mask = st->irq_mask;
	p->st.next_seq = st->next_seq;
	p->st.delivered = st->delivered;
	p->q_head = 0;
	p->q_len = st->nr_queued;
	for (uint32_t i = 0; i < st->nr_queued; i++) {
		p->queue_seq[i] = st->queue[i].seq;
		memcpy(p->queue_data[i], st->queue[i].data, PT_PKT_MAX);
	}
	pthread_mutex_unlock(&p->lock);
	return 0;
}
