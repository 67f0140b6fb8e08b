/* SPDX-License-Identifier: MIT */
/*
 * pt.c - the passthrough-style receive device (interface: devices/pt.h,
 * register map and ring layout: common/guest_abi.h).
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

#define PT_TICK_NS    1000000ULL   /* the source's tick: 1 ms */
#define PT_WARN_NS    NSEC_PER_SEC /* at most one warning a second */
#define PT_NO_RING    UINT64_MAX   /* ring_gpa before RING is written */
#define PT_RING_ALIGN 8		   /* the descriptors hold 64-bit fields */

_Static_assert(sizeof(struct pt_ring_hdr) == 64, "pt ring header ABI");
_Static_assert(sizeof(struct pt_desc) == 32, "pt descriptor ABI");
_Static_assert(PT_PKT_MAX % 8 == 0 && PT_PKT_MIN % 8 == 0, "pt packets");

/* What an access or a tick leaves to do once p->lock is dropped. */
struct pt_after {
	char warn[256];	     /* the first refusal's message, or "" */
	uint64_t suppressed; /* warnings not printed before it */
	void (*ack_fn)(void *opaque, enum pt_req req, uint32_t seq);
	void *ack_opaque;
	enum pt_req ack_req;
	uint32_t ack_seq;
};

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
static struct pt_ring_hdr *pt_ring(const struct pt *p)
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
static void pt_mirror_req(struct pt *p, struct pt_ring_hdr *hdr)
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
static void pt_irq(struct pt *p)
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

/* ---- life cycle and the device thread ----------------------------------- */

int pt_init(struct pt *p, const struct dev_host *host,
	    const struct pt_config *cfg, char *err, size_t errlen)
{
	struct pt_config c = cfg ? *cfg : (struct pt_config){0};
	int ret;

	memset(p, 0, sizeof(*p));
	p->timer_fd = -1;
	p->stop_fd = -1;
	if (!host || !host->mem) {
		err_set(err, errlen, "pt: no guest memory to DMA into");
		return -EINVAL;
	}
	if (!c.rate_pps)
		c.rate_pps = PT_RATE_DEFAULT;
	if (!c.gsi)
		c.gsi = PT_GSI;
	if (c.rate_pps > PT_RATE_MAX) {
		err_set(err, errlen, "pt: rate %" PRIu32 " pps above %d",
		       c.rate_pps, PT_RATE_MAX);
		return -EINVAL;
	}
	p->host = host;
	p->cfg = c;
	p->ring_gpa = PT_NO_RING;
	p->qstate = PT_Q_RUNNING;
	p->st.next_seq = 1;
	ret = -pthread_mutex_init(&p->lock, NULL);
	if (ret)
		err_set(err, errlen, "pt: pthread_mutex_init: %s",
		       strerror(-ret));
	return ret;
}

/* Wait for the next tick; false when the thread should end. */
static bool pt_thread_wait(struct pt *p)
{
	struct pollfd fds[2] = {
		{.fd = p->timer_fd, .events = POLLIN},
		{.fd = p->stop_fd, .events = POLLIN},
	};
	uint64_t ticks;

	for (;;) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "pt: poll: %s\n", strerror(errno));
			return false;
		}
		if (fds[1].revents)
			return false;
		if (!fds[0].revents)
			continue;
		if (read(p->timer_fd, &ticks, sizeof(ticks)) == sizeof(ticks))
			return true;
		if (errno != EAGAIN && errno != EINTR) {
			fprintf(stderr, "pt: read timerfd: %s\n",
				strerror(errno));
			return false;
		}
	}
}

/* The device thread: a tick every 1 ms credits the time that really passed. */
static void *pt_thread(void *arg)
{
	struct pt *p = arg;
	uint64_t last = clock_now_ns(), now;

	while (pt_thread_wait(p)) {
		now = clock_now_ns();
		pt_tick(p, now - last);
		last = now;
	}
	return NULL;
}

static void pt_close_fds(struct pt *p)
{
	if (p->timer_fd >= 0 && close(p->timer_fd) < 0)
		fprintf(stderr, "pt: close timerfd: %s\n", strerror(errno));
	if (p->stop_fd >= 0 && close(p->stop_fd) < 0)
		fprintf(stderr, "pt: close eventfd: %s\n", strerror(errno));
	p->timer_fd = -1;
	p->stop_fd = -1;
}

static int pt_open_fds(struct pt *p, char *err, size_t errlen)
{
	struct itimerspec its = {
		.it_interval = {.tv_nsec = PT_TICK_NS},
		.it_value = {.tv_nsec = PT_TICK_NS},
	};

	const char *what = "timerfd_create";
	int ret;

	p->timer_fd =
		timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (p->timer_fd >= 0) {
		what = "timerfd_settime";
		if (timerfd_settime(p->timer_fd, 0, &its, NULL) == 0) {
			what = "eventfd";
			p->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			if (p->stop_fd >= 0)
				return 0;
		}
	}
	ret = -errno;
	err_set(err, errlen, "pt: %s: %s", what, strerror(-ret));
	return ret;
}

int pt_start(struct pt *p, char *err, size_t errlen)
{
	int ret;

	if (p->thread_on) {
		err_set(err, errlen, "pt: the device thread is already running");
		return -EBUSY;
	}
	ret = pt_open_fds(p, err, errlen);
	if (!ret) {
		ret = -pthread_create(&p->thread, NULL, pt_thread, p);
		if (ret)
			err_set(err, errlen, "pt: pthread_create: %s",
			       strerror(-ret));
	}
	if (ret) {
		pt_close_fds(p);
		return ret;
	}
	p->thread_on = true;
	return 0;
}

/* Wake the thread through its eventfd and join it. */
static void pt_stop_thread(struct pt *p)
{
	uint64_t one = 1;
	ssize_t n;
	int ret;

	do
		n = write(p->stop_fd, &one, sizeof(one));
	while (n < 0 && errno == EINTR);
	if (n != sizeof(one)) {
		/* Cannot happen; if it does, poll() is a cancellation point */
		fprintf(stderr, "pt: write eventfd: %s\n",
			n < 0 ? strerror(errno) : "short write");
		ret = pthread_cancel(p->thread);
		if (ret)
			fprintf(stderr, "pt: pthread_cancel: %s\n",
				strerror(ret));
	}
	ret = pthread_join(p->thread, NULL);
	if (ret)
		fprintf(stderr, "pt: pthread_join: %s\n", strerror(ret));
	p->thread_on = false;
}

void pt_destroy(struct pt *p)
{
	if (p->thread_on)
		pt_stop_thread(p);
	pt_close_fds(p);
	pthread_mutex_destroy(&p->lock);
}

void pt_set_ack_hook(struct pt *p,
		     void (*fn)(void *opaque, enum pt_req req, uint32_t seq),
		     void *opaque)
{
	pthread_mutex_lock(&p->lock);
	p->on_ack = fn;
	p->ack_opaque = opaque;
	pthread_mutex_unlock(&p->lock);
}

void pt_get_stats(struct pt *p, struct pt_stats *out)
{
	pthread_mutex_lock(&p->lock);
	*out = p->st;
	out->enabled = p->enabled;
	out->qstate = p->qstate;
	out->ring_size = p->ring_size;
	out->pinned = p->tail - p->head;
	out->queued = p->q_len;
	pthread_mutex_unlock(&p->lock);
}

/* Up to max of the pinned buffers into out; how many there are. Locked. */
static uint32_t pt_pinned_locked(struct pt *p, struct pt_pin *out, int max)
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
