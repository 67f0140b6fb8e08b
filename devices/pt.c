/* SPDX-License-Identifier: MIT */
/*
 * pt.c - the passthrough-style receive device (interface: devices/pt.h,
 * register map and ring layout: common/guest_abi.h): the ring in guest
 * RAM, the traffic source and its delivery, the registers. Its life cycle
 * and thread are in pt_life.c, its migration side (quiesce handshake,
 * state) in pt_migrate.c; what they share, in pt_int.h.
 *
 * Who owns what:
 *   - host, cfg, thread, thread_on, timer_fd, stop_fd: written by the main
 *     or event-loop thread in pt_init/pt_start/pt_destroy, while no other
 *     thread uses the device (before the vCPUs run, after they stopped).
 *   - everything from p->lock down (registers, head/tail, the request, the
 *     source's credit and queue, the ack hook, the warning rate limit, the
 *     statistics): p->lock, taken by vCPU threads (bus ops), the device
 *     thread (pt_tick) and the event loop (pt_quiesce_*, save, load, stats).
 *   - guest RAM: the device writes the payloads, the descriptors it owns
 *     ([head, tail)) and the ring header, always with p->lock held, so that
 *     when ENABLE 0 returns no DMA is in flight.
 * Interrupts are raised with p->lock held, as serial.c does, so that the
 * edges of two batches reach KVM in order. Warnings and the ack callback
 * are deferred until p->lock is dropped (struct pt_after).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "devices/devices.h"
#include "devices/pt_int.h"

_Static_assert(sizeof(struct pt_ring_hdr) == 64, "pt ring header ABI");
_Static_assert(sizeof(struct pt_desc) == 32, "pt descriptor ABI");
_Static_assert(PT_PKT_MAX % 8 == 0 && PT_PKT_MIN % 8 == 0, "pt packets");

static void pt_bad(struct pt *p, struct pt_after *a, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * A refused guest access: count it and, rate-limited, keep its message for
 * pt_after_run(). p->lock held.
 */
static void pt_bad(struct pt *p, struct pt_after *a, const char *fmt, ...)
{
	uint64_t now = clock_now_ns();
	va_list ap;

	p->st.bad_accesses++;
	if (a->warn[0] || (p->warn_ns && now - p->warn_ns < PT_WARN_NS)) {
		p->warn_suppressed++;
		return;
	}
	a->suppressed = p->warn_suppressed;
	p->warn_suppressed = 0;
	p->warn_ns = now ? now : 1;
	va_start(ap, fmt);
	vsnprintf(a->warn, sizeof(a->warn), fmt, ap);
	va_end(ap);
}

/* Print the deferred warning, call the ack hook. p->lock not held. */
static void pt_after_run(const struct pt_after *a)
{
	if (a->warn[0]) {
		if (a->suppressed)
			fprintf(stderr, "pt: %" PRIu64 " warnings suppressed\n",
				a->suppressed);
		fprintf(stderr, "pt: %s\n", a->warn);
	}
	if (a->ack_fn)
		a->ack_fn(a->ack_opaque, a->ack_req, a->ack_seq);
}

/* ---- guest RAM: the ring ------------------------------------------------ */

static uint64_t pt_ring_bytes(uint32_t size)
{
	return sizeof(struct pt_ring_hdr) +
	       (uint64_t)size * sizeof(struct pt_desc);
}

static bool pt_ring_in_ram(const struct pt *p, uint64_t gpa, uint32_t size)
{
	return mem_gpa_to_hva(p->host->mem, gpa, pt_ring_bytes(size)) != NULL;
}

/* The ring header (descriptors follow it), or NULL when there is no ring. */
struct pt_ring_hdr *pt_ring(const struct pt *p)
{
	if (p->ring_gpa == PT_NO_RING)
		return NULL;
	return mem_gpa_to_hva(p->host->mem, p->ring_gpa,
			      pt_ring_bytes(p->ring_size));
}

static struct pt_desc *pt_desc_at(struct pt_ring_hdr *hdr, uint32_t idx)
{
	return (struct pt_desc *)(hdr + 1) + idx;
}

/* The ring index of free-running index i. */
static uint32_t pt_idx(const struct pt *p, uint32_t i)
{
	return i & (p->ring_size - 1);
}

static uint64_t pt_ring_gpa_of(const struct pt *p,
			       const struct pt_ring_hdr *hdr,
			       const volatile void *field)
{
	return p->ring_gpa + (uint64_t)((const volatile uint8_t *)field -
					(const volatile uint8_t *)hdr);
}

/* Store v into a ring field (release) and report the write as dirty. */
static void pt_put32(struct pt *p, struct pt_ring_hdr *hdr,
		     volatile uint32_t *field, uint32_t v)
{
	__atomic_store_n(field, v, __ATOMIC_RELEASE);
	ept_mark_dirty(p->host->mem, pt_ring_gpa_of(p, hdr, field), sizeof(v));
}

static void pt_put64(struct pt *p, struct pt_ring_hdr *hdr,
		     volatile uint64_t *field, uint64_t v)
{
	__atomic_store_n(field, v, __ATOMIC_RELEASE);
	ept_mark_dirty(p->host->mem, pt_ring_gpa_of(p, hdr, field), sizeof(v));
}

/* The buffer the driver posted in a descriptor, read once. */
static void pt_desc_buf(const struct pt_desc *d, uint64_t *gpa, uint32_t *len)
{
	*gpa = __atomic_load_n(&d->buf_gpa, __ATOMIC_ACQUIRE);
	*len = __atomic_load_n(&d->buf_len, __ATOMIC_ACQUIRE);
}

/* Mirror REQ and REQ_SEQ into the ring header (the queue is enabled). */
void pt_mirror_req(struct pt *p, struct pt_ring_hdr *hdr)
{
	pt_put32(p, hdr, &hdr->req, p->req);
	pt_put32(p, hdr, &hdr->req_seq, p->req_seq);
}

/* Complete descriptor head with flags (DONE or RETURNED); head advances. */
static void pt_complete(struct pt *p, struct pt_ring_hdr *hdr, uint32_t flags)
{
	struct pt_desc *d = pt_desc_at(hdr, pt_idx(p, p->head));

	pt_put32(p, hdr, &d->flags, flags);
	p->head++;
	pt_put32(p, hdr, &hdr->done_idx, p->head);
}

/* An edge on the device's line, unless the driver polls. p->lock held. */
void pt_irq(struct pt *p)
{
	if (p->irq_mask || !p->host->irq_line)
		return;
	p->host->irq_line(p->host->opaque, p->cfg.gsi, 1);
	p->host->irq_line(p->host->opaque, p->cfg.gsi, 0);
	p->st.irqs++;
}

/* ---- the traffic source and delivery (p->lock held) --------------------- */

static void pt_make_packet(struct pt *p)
{
	uint32_t slot = (p->q_head + p->q_len) % PT_QUEUE_MAX;
	uint64_t seq = p->st.next_seq++;
	uint32_t len = pt_pkt_len(seq);

	p->queue_seq[slot] = seq;
	for (uint32_t k = 0; k < len / 8; k++) {
		uint64_t w = pt_pkt_word(seq, k);

		memcpy(&p->queue_data[slot][k * 8], &w, sizeof(w));
	}
	p->q_len++;
}

/*
 * Credit elapsed_ns at rate_pps and turn whole packets into the queue; the
 * remainder carries to the next tick (less than 1 ns of it is lost per
 * tick). The credit is capped at what one tick could ever use. When the
 * queue cannot take every packet due, the source waits: the packets it
 * could not make are not made (their credit is dropped), so none is lost
 * and seq never skips; it goes on from next_seq once there is room.
 */
static void pt_source_run(struct pt *p, uint64_t elapsed_ns)
{
	uint64_t rate = p->cfg.rate_pps;
	uint64_t cap = (PT_QUEUE_MAX + 1) * NSEC_PER_SEC / rate;
	uint64_t units, want, room;

	if (elapsed_ns > cap)
		elapsed_ns = cap;
	p->credit_ns += elapsed_ns;
	if (p->credit_ns > cap)
		p->credit_ns = cap;
	units = p->credit_ns * rate; /* NSEC_PER_SEC of them make a packet */
	want = units / NSEC_PER_SEC;
	if (want > PT_QUEUE_MAX)
		want = PT_QUEUE_MAX;
	p->credit_ns = (units - want * NSEC_PER_SEC) / rate;
	room = PT_QUEUE_MAX - p->q_len;
	if (want > room) {
		p->st.full_waits++;
		want = room;
	}
	while (want--)
		pt_make_packet(p);
}

/*
 * Write the first queued packet into descriptor head. The driver may have
 * rewritten the descriptor since its doorbell: a buffer that is no longer
 * valid is handed back (RETURNED) and the packet stays queued. Returns
 * whether a packet was delivered.
 */
static bool pt_fill_one(struct pt *p, struct pt_ring_hdr *hdr,
			struct pt_after *a)
{
	uint32_t idx = pt_idx(p, p->head), slot = p->q_head, blen;
	struct pt_desc *d = pt_desc_at(hdr, idx);
	uint64_t seq = p->queue_seq[slot], bgpa;
	uint32_t len = pt_pkt_len(seq);
	void *buf = NULL;

	pt_desc_buf(d, &bgpa, &blen);
	if (blen >= PT_BUF_MIN)
		buf = mem_gpa_to_hva(p->host->mem, bgpa, blen);
	if (!buf) {
		pt_bad(p, a,
		       "descriptor %" PRIu32 " changed after its doorbell "
		       "(buffer 0x%" PRIx64 ", %" PRIu32 " bytes): handed back",
		       idx, bgpa, blen);
		pt_complete(p, hdr, PT_DESC_RETURNED);
		p->st.returned++;
		return false;
	}
	memcpy(buf, p->queue_data[slot], len);
	ept_mark_dirty(p->host->mem, bgpa, len);
	pt_put64(p, hdr, &d->pkt_seq, seq);
	pt_put32(p, hdr, &d->pkt_len, len);
	pt_complete(p, hdr, PT_DESC_DONE);
	p->q_head = (p->q_head + 1) % PT_QUEUE_MAX;
	p->q_len--;
	p->st.delivered++;
	return true;
}

/* Deliver queued packets into posted buffers; one interrupt per batch. */
static void pt_deliver(struct pt *p, struct pt_after *a)
{
	struct pt_ring_hdr *hdr = pt_ring(p);
	unsigned int n = 0;

	if (!hdr)
		return;
	while (p->enabled && p->q_len && p->head != p->tail)
		n += pt_fill_one(p, hdr, a);
	if (n)
		pt_irq(p);
}

void pt_tick(struct pt *p, uint64_t elapsed_ns)
{
	struct pt_after a = {0};

	pthread_mutex_lock(&p->lock);
	pt_source_run(p, elapsed_ns);
	pt_deliver(p, &a);
	pthread_mutex_unlock(&p->lock);
	pt_after_run(&a);
}

/* ---- register writes (p->lock held) ------------------------------------- */

static void pt_set_ring(struct pt *p, uint64_t v, struct pt_after *a)
{
	if (p->enabled)
		pt_bad(p, a, "RING written while the queue is enabled");
	else if (v % PT_RING_ALIGN)
		pt_bad(p, a, "RING 0x%" PRIx64 " is not %d-byte aligned", v,
		       PT_RING_ALIGN);
	else if (!pt_ring_in_ram(p, v, p->ring_size))
		pt_bad(p, a,
		       "RING 0x%" PRIx64 ": the ring (%" PRIu64
		       " bytes) is not inside guest RAM",
		       v, pt_ring_bytes(p->ring_size));
	else
		p->ring_gpa = v;
}

static void pt_set_ring_size(struct pt *p, uint64_t v, struct pt_after *a)
{
	if (p->enabled)
		pt_bad(p, a, "RING_SIZE written while the queue is enabled");
	else if (!v || v > PT_RING_MAX || (v & (v - 1)))
		pt_bad(p, a,
		       "RING_SIZE %" PRIu64
		       " is not a power of two from 1 to %d",
		       v, PT_RING_MAX);
	else if (p->ring_gpa != PT_NO_RING &&
		 !pt_ring_in_ram(p, p->ring_gpa, (uint32_t)v))
		pt_bad(p, a,
		       "RING_SIZE %" PRIu64 ": the ring at 0x%" PRIx64
		       " (%" PRIu64 " bytes) is not inside guest RAM",
		       v, p->ring_gpa, pt_ring_bytes((uint32_t)v));
	else
		p->ring_size = (uint32_t)v;
}

static bool pt_quiescing(const struct pt *p)
{
	return p->qstate == PT_Q_REQUESTED || p->qstate == PT_Q_ACKED;
}

static void pt_queue_start(struct pt *p, struct pt_ring_hdr *hdr)
{
	p->head = 0;
	p->tail = 0;
	p->enabled = true;
	pt_mirror_req(p, hdr);
	pt_put32(p, hdr, &hdr->done_idx, 0);
}

/* ENABLE 0: hand back every posted buffer; afterwards nothing is pinned. */
static void pt_queue_stop(struct pt *p)
{
	struct pt_ring_hdr *hdr = pt_ring(p);

	if (!p->enabled)
		return;
	while (hdr && p->head != p->tail) {
		pt_complete(p, hdr, PT_DESC_RETURNED);
		p->st.returned++;
	}
	p->tail = p->head;
	p->enabled = false;
}

static void pt_set_enable(struct pt *p, uint64_t v, struct pt_after *a)
{
	struct pt_ring_hdr *hdr = p->ring_size ? pt_ring(p) : NULL;

	if (v == 0)
		pt_queue_stop(p);
	else if (v != 1)
		pt_bad(p, a, "ENABLE %" PRIu64 " (takes 0 or 1)", v);
	else if (pt_quiescing(p))
		pt_bad(p, a, "ENABLE 1 ignored: a quiesce is in progress");
	else if (p->enabled)
		pt_bad(p, a, "ENABLE 1 while the queue is already enabled");
	else if (!hdr)
		pt_bad(p, a, "ENABLE 1 without a ring (RING, RING_SIZE first)");
	else
		pt_queue_start(p, hdr);
}

/* The descriptors [from, to) hold valid buffers; else report the first. */
static bool pt_posted_ok(struct pt *p, uint32_t from, uint32_t to,
			 struct pt_after *a)
{
	struct pt_ring_hdr *hdr = pt_ring(p);

	for (uint32_t i = from; i != to; i++) {
		uint32_t idx = pt_idx(p, i), blen;
		uint64_t bgpa;

		pt_desc_buf(pt_desc_at(hdr, idx), &bgpa, &blen);
		if (blen < PT_BUF_MIN) {
			pt_bad(p, a,
			       "TAIL %" PRIu32 " refused: descriptor %" PRIu32
			       " has buf_len %" PRIu32 " (at least %d)",
			       to, idx, blen, PT_BUF_MIN);
			return false;
		}
		if (!mem_gpa_to_hva(p->host->mem, bgpa, blen)) {
			pt_bad(p, a,
			       "TAIL %" PRIu32 " refused: descriptor %" PRIu32
			       " buffer 0x%" PRIx64 " (%" PRIu32
			       " bytes) is not inside guest RAM",
			       to, idx, bgpa, blen);
			return false;
		}
	}
	return true;
}

static void pt_set_tail(struct pt *p, uint32_t v, struct pt_after *a)
{
	uint32_t n = v - p->head;

	p->st.doorbells++;
	if (!p->enabled)
		pt_bad(p, a, "TAIL %" PRIu32 " while the queue is disabled", v);
	else if (n > p->ring_size)
		pt_bad(p, a,
		       "TAIL %" PRIu32 " would give the device %" PRIu32
		       " descriptors (head %" PRIu32 ", ring of %" PRIu32 ")",
		       v, n, p->head, p->ring_size);
	else if (n < p->tail - p->head)
		pt_bad(p, a, "TAIL %" PRIu32 " moves back from %" PRIu32, v,
		       p->tail);
	else if (pt_posted_ok(p, p->tail, v, a)) {
		p->tail = v;
		pt_deliver(p, a);
	}
}

static void pt_set_irq_mask(struct pt *p, uint64_t v, struct pt_after *a)
{
	if (v > 1)
		pt_bad(p, a, "IRQ_MASK %" PRIu64 " (takes 0 or 1)", v);
	else
		p->irq_mask = (uint32_t)v;
}

static void pt_ack(struct pt *p, uint32_t v, struct pt_after *a)
{
	if (p->qstate != PT_Q_REQUESTED && p->qstate != PT_Q_RESUMING) {
		pt_bad(p, a, "ACK %" PRIu32 " but no request is outstanding",
		       v);
		return;
	}
	if (v != p->req_seq) {
		pt_bad(p, a, "ACK %" PRIu32 " does not match REQ_SEQ %" PRIu32,
		       v, p->req_seq);
		return;
	}
	p->ack_seq = v;
	if (p->req == PT_REQ_QUIESCE) {
		p->qstate = PT_Q_ACKED;
		p->st.quiesce_acks++;
		p->st.quiesce_ns = clock_now_ns() - p->req_ns;
	} else {
		p->qstate = PT_Q_RUNNING;
	}
	a->ack_fn = p->on_ack;
	a->ack_opaque = p->ack_opaque;
	a->ack_req = (enum pt_req)p->req;
	a->ack_seq = v;
}

/* ---- bus ops ------------------------------------------------------------ */

static const char *pt_reg_name(uint64_t off)
{
	switch (off) {
	case PT_REG_ID:
		return "ID";
	case PT_REG_STATUS:
		return "STATUS";
	case PT_REG_RING:
		return "RING";
	case PT_REG_RING_SIZE:
		return "RING_SIZE";
	case PT_REG_ENABLE:
		return "ENABLE";
	case PT_REG_TAIL:
		return "TAIL";
	case PT_REG_IRQ_MASK:
		return "IRQ_MASK";
	case PT_REG_REQ:
		return "REQ";
	case PT_REG_REQ_SEQ:
		return "REQ_SEQ";
	case PT_REG_ACK:
		return "ACK";
	default:
		return NULL;
	}
}

/* The width a register takes in this direction; 0 when it cannot. */
static uint32_t pt_reg_width(uint64_t off, bool write)
{
	switch (off) {
	case PT_REG_ID:
	case PT_REG_STATUS:
	case PT_REG_REQ:
	case PT_REG_REQ_SEQ:
		return write ? 0 : 4;
	case PT_REG_RING:
		return write ? 8 : 0;
	case PT_REG_RING_SIZE:
	case PT_REG_ENABLE:
	case PT_REG_TAIL:
	case PT_REG_ACK:
		return write ? 4 : 0;
	case PT_REG_IRQ_MASK:
		return 4;
	default:
		return 0;
	}
}

/* Refuse (and report) an access of the wrong kind. p->lock held. */
static bool pt_access_ok(struct pt *p, uint64_t off, uint32_t len, bool write,
			 struct pt_after *a)
{
	const char *name = pt_reg_name(off), *op = write ? "write" : "read";
	uint32_t width = pt_reg_width(off, write);

	if (!name)
		pt_bad(p, a, "%" PRIu32 "-byte %s at unknown offset 0x%" PRIx64,
		       len, op, off);
	else if (!width)
		pt_bad(p, a, "%s of %s, which is %s-only", op, name,
		       write ? "read" : "write");
	else if (len != width)
		pt_bad(p, a, "%" PRIu32 "-byte %s of %s (takes %" PRIu32 ")",
		       len, op, name, width);
	return name && width && len == width;
}

static void pt_write_reg(struct pt *p, uint64_t off, uint64_t v,
			 struct pt_after *a)
{
	switch (off) {
	case PT_REG_RING:
		pt_set_ring(p, v, a);
		break;
	case PT_REG_RING_SIZE:
		pt_set_ring_size(p, v, a);
		break;
	case PT_REG_ENABLE:
		pt_set_enable(p, v, a);
		break;
	case PT_REG_TAIL:
		pt_set_tail(p, (uint32_t)v, a);
		break;
	case PT_REG_IRQ_MASK:
		pt_set_irq_mask(p, v, a);
		break;
	case PT_REG_ACK:
		pt_ack(p, (uint32_t)v, a);
		break;
	default:
		break;
	}
}

static uint32_t pt_read_reg(const struct pt *p, uint64_t off)
{
	switch (off) {
	case PT_REG_ID:
		return PT_ID;
	case PT_REG_STATUS:
		return (p->enabled ? PT_STATUS_ENABLED : 0) |
		       (pt_quiescing(p) ? PT_STATUS_QUIESCE : 0);
	case PT_REG_IRQ_MASK:
		return p->irq_mask;
	case PT_REG_REQ:
		return p->req;
	case PT_REG_REQ_SEQ:
		return p->req_seq;
	default:
		return 0;
	}
}

static void pt_mmio_write(void *opaque, uint64_t off, const void *data,
			  uint32_t len)
{
	struct pt *p = opaque;
	struct pt_after a = {0};
	uint64_t v = 0;

	memcpy(&v, data, len < sizeof(v) ? len : sizeof(v));
	pthread_mutex_lock(&p->lock);
	if (pt_access_ok(p, off, len, true, &a))
		pt_write_reg(p, off, v, &a);
	pthread_mutex_unlock(&p->lock);
	pt_after_run(&a);
}

static void pt_mmio_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct pt *p = opaque;
	struct pt_after a = {0};
	uint32_t v;

	memset(data, 0, len);
	pthread_mutex_lock(&p->lock);
	if (pt_access_ok(p, off, len, false, &a)) {
		v = pt_read_reg(p, off);
		memcpy(data, &v, sizeof(v));
	}
	pthread_mutex_unlock(&p->lock);
	pt_after_run(&a);
}

const struct bus_ops pt_ops = {
	.read = pt_mmio_read,
	.write = pt_mmio_write,
};

/* Up to max of the pinned buffers into out; how many there are. Locked. */
uint32_t pt_pinned_locked(struct pt *p, struct pt_pin *out, int max)
{
	struct pt_ring_hdr *hdr = pt_ring(p);
	uint32_t n = hdr ? p->tail - p->head : 0;

	for (uint32_t i = 0; i < n && (int64_t)i < max; i++) {
		uint32_t idx = pt_idx(p, p->head + i);

		out[i].desc = idx;
		pt_desc_buf(pt_desc_at(hdr, idx), &out[i].gpa, &out[i].len);
	}
	return n;
}

int pt_pinned(struct pt *p, struct pt_pin *out, int max)
{
	uint32_t n;

	pthread_mutex_lock(&p->lock);
	n = pt_pinned_locked(p, out, out ? max : 0);
	pthread_mutex_unlock(&p->lock);
	return (int)n;
}

