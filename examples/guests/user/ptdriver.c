/* SPDX-License-Identifier: MIT */
/*
 * ptdriver.c - the `pt-driver [--ms T] [--ring N] [--bug B]` workload: a
 * poll-mode driver for the passthrough-style receive device (common/guest_abi.h,
 * "the passthrough-style DMA device"; the VMM side is devices/pt.c).
 *
 * It takes a descriptor ring (64-byte header + N descriptors) and N receive
 * buffers of PTD_BUF_SIZE bytes from free RAM (identity mapped: VA == GPA),
 * registers the ring with the device and posts every buffer. Interrupts are
 * off in this guest, so the device's interrupt stays masked (IRQ_MASK 1) and
 * the driver polls, like a DPDK poll-mode driver: each turn of the loop
 * ticks, consumes completed descriptors in ring order, checks every packet
 * (sequence number continuous for the VM's whole life, length and payload
 * as pt_pkt_len()/pt_pkt_word() say) and reposts the buffers in batches of
 * PTD_BATCH, so that TAIL costs few MMIO exits.
 *
 * The migration handshake: while the queue is enabled the device mirrors
 * its current request into the ring header, so polling it costs nothing;
 * a new req_seq there is confirmed with one read of REQ_SEQ (so that the
 * header's req and req_seq surely belong together). QUIESCE:
 * stop posting, ENABLE 0 (the device finishes DMA and hands back the
 * buffers it did not fill), consume what arrived, ACK. From then on the
 * header is not written any more, so the driver reads the REQ registers
 * (MMIO exits) once per ms until a RESUME comes: program the ring again,
 * ENABLE 1, post every buffer, ACK. A RESUME may come on the same machine
 * (the migration failed) or on the destination; the driver does the same.
 * --bug 1 ignores QUIESCE, --bug 2 acks it at once but keeps its buffers
 * posted: both are for host tests that must catch such a driver.
 *
 * STOP_WORKLOAD, or T ms after the first packet, ends it: ENABLE 0 (so that
 * no DMA lands in memory a later workload reuses), consume what arrived,
 * print the summary. A later pt-driver in the same guest carries on with
 * the sequence.
 */
#include "lib/testdev.h"
#include "lib/x86.h"
#include "user/user.h"
#include "user/workload.h"

enum { PTD_MS, PTD_RING, PTD_BUG };

enum {
	PTD_BUG_NONE = 0,
	PTD_BUG_NO_ACK = 1,	/* never acknowledges a quiesce */
	PTD_BUG_ACK_POSTED = 2, /* acks a quiesce, keeps buffers posted */
};

#define PTD_RING_DEFAULT 64
#define PTD_BUF_SIZE	 2048
#define PTD_BATCH	 16   /* reposted descriptors per TAIL write */
#define PTD_MARK_EVERY	 1000 /* packets between MARK_PT_PACKETS */
#define PTD_IDLE_MS	 10   /* enabled and no packet: check the registers */
#define PTD_RX_FLAGS	 (PT_DESC_DONE | PT_DESC_RETURNED)

_Static_assert(sizeof(struct pt_ring_hdr) == 64, "ring header is 64 bytes");
_Static_assert(sizeof(struct pt_desc) == 32, "descriptor is 32 bytes");
_Static_assert(PTD_BUF_SIZE >= PT_BUF_MIN, "buffer holds any packet");

static const struct wl_flag ptd_flags[] = {
	[PTD_MS] = {.name = "ms", .min = 0, .max = 1ULL << 32},
	[PTD_RING] = {.name = "ring", .min = 1, .max = PT_RING_MAX},
	[PTD_BUG] = {.name = "bug", .min = 0, .max = 2},
	{0},
};

struct ptd {
	volatile struct pt_ring_hdr *hdr;
	volatile struct pt_desc *desc;
	uint8_t *bufs;
	uint32_t n;	   /* ring size, a power of two */
	uint32_t head;	   /* next descriptor to consume (free-running) */
	uint32_t tail;	   /* the last TAIL written (free-running) */
	bool enabled;	   /* the queue runs with our buffers posted */
	uint32_t bug;	   /* PTD_BUG_* */
	uint32_t last_seq; /* the last request seq acted on (or ignored) */
	uint32_t hdr_seen; /* the last header req_seq looked into */
	uint64_t packets;  /* in this run */
	uint64_t first;	   /* seq of this run's first packet */
	uint32_t quiesces, resumes;
	uint64_t period;  /* TSC ticks per ms */
	uint64_t polled;  /* TSC of the last register poll or packet */
	uint64_t ms, end; /* --ms, and its deadline once started */
	bool started;	  /* the first packet has come: end is set */
};

/* The packet sequence and the acks go on across runs in one guest. */
static uint64_t ptd_expect = 1;
static uint32_t ptd_acked;

static uint32_t pt_read(uint32_t reg)
{
	return mmio_read32(PT_GPA + reg);
}

static void pt_write(uint32_t reg, uint32_t val)
{
	mmio_write32(PT_GPA + reg, val);
}

static volatile struct pt_desc *ptd_slot(struct ptd *d, uint32_t idx)
{
	return &d->desc[idx & (d->n - 1)];
}

static const uint64_t *ptd_buf(struct ptd *d, uint32_t idx)
{
	return (const uint64_t *)(d->bufs +
				  (uint64_t)(idx & (d->n - 1)) * PTD_BUF_SIZE);
}

static __attribute__((noreturn)) void ptd_fail_seq(uint64_t seq)
{
	console_printf("pt-driver: FAIL packet seq %lu, expected %lu\n", seq,
		       ptd_expect);
	testdev_marker(MARK_PT_SEQ_ERROR, (uint32_t)seq);
	guest_exit(GUEST_EXIT_VERIFY);
}

/* Check the packet in descriptor idx (DONE seen with acquire). */
static void ptd_check(struct ptd *d, uint32_t idx)
{
	volatile struct pt_desc *ds = ptd_slot(d, idx);
	const uint64_t *w = ptd_buf(d, idx);
	uint64_t seq = ds->pkt_seq;
	uint32_t len = ds->pkt_len, k;

	if (seq != ptd_expect)
		ptd_fail_seq(seq);
	if (len != pt_pkt_len(seq)) {
		console_printf("pt-driver: FAIL packet seq %lu length %u, "
			       "expected %u\n",
			       seq, len, pt_pkt_len(seq));
		guest_exit(GUEST_EXIT_VERIFY);
	}
	for (k = 0; k < len / 8; k++) {
		if (w[k] == pt_pkt_word(seq, k))
			continue;
		console_printf("pt-driver: FAIL packet seq %lu wrong at "
			       "word %u\n",
			       seq, k);
		guest_exit(GUEST_EXIT_VERIFY);
	}
}

static void ptd_packet(struct ptd *d, uint32_t idx)
{
	ptd_check(d, idx);
	if (!d->packets)
		d->first = ptd_expect;
	ptd_expect++;
	if (++d->packets % PTD_MARK_EVERY == 0)
		testdev_marker(MARK_PT_PACKETS, (uint32_t)d->packets);
}

/*
 * Consume descriptor head if the device has completed it: a packet (DONE)
 * is checked, a buffer handed back (RETURNED) is not a packet. The slot is
 * cleared for reposting. False if it is still the device's.
 */
static bool ptd_consume(struct ptd *d)
{
	volatile struct pt_desc *ds = ptd_slot(d, d->head);
	uint32_t flags;

	if (d->head == d->tail)
		return false;
	flags = __atomic_load_n(&ds->flags, __ATOMIC_ACQUIRE);
	if (!(flags & PTD_RX_FLAGS))
		return false;
	if (flags & PT_DESC_DONE)
		ptd_packet(d, d->head);
	ds->flags = 0;
	ds->pkt_seq = 0;
	ds->pkt_len = 0;
	d->head++;
	return true;
}

/* Hand the consumed buffers back: PTD_BATCH at once, or when dry. */
static void ptd_repost(struct ptd *d)
{
	uint32_t ready = d->head + d->n - d->tail;

	if (!ready || (ready < PTD_BATCH && d->head != d->tail))
		return;
	d->tail = d->head + d->n;
	pt_write(PT_REG_TAIL, d->tail); /* the slots were cleared before */
}

/* Receive what the device has completed; returns the descriptors. */
static uint32_t ptd_rx(struct ptd *d)
{
	uint32_t got = 0;

	while (ptd_consume(d))
		got++;
	if (got)
		ptd_repost(d);
	return got;
}

static void ptd_fill_ring(struct ptd *d)
{
	uint32_t i;

	for (i = 0; i < sizeof(*d->hdr) / sizeof(uint32_t); i++)
		((volatile uint32_t *)d->hdr)[i] = 0;
	for (i = 0; i < d->n; i++) {
		volatile struct pt_desc *ds = &d->desc[i];

		ds->buf_gpa = (uint64_t)(uintptr_t)ptd_buf(d, i);
		ds->buf_len = PTD_BUF_SIZE;
		ds->flags = 0;
		ds->pkt_seq = 0;
		ds->pkt_len = 0;
		ds->pad = 0;
	}
}

/*
 * Program the ring, enable the queue, post every buffer. The header is
 * cleared first: while disabled the device does not write it, so it may
 * still show an old request. False if the device refused ENABLE 1 (a
 * quiesce is requested): the queue stays off, nothing is posted.
 */
static bool ptd_register(struct ptd *d)
{
	ptd_fill_ring(d);
	pt_write(PT_REG_IRQ_MASK, 1); /* poll mode: interrupts are off here */
	mmio_write64(PT_GPA + PT_REG_RING, (uint64_t)(uintptr_t)d->hdr);
	pt_write(PT_REG_RING_SIZE, d->n);
	pt_write(PT_REG_ENABLE, 1);
	if (!(pt_read(PT_REG_STATUS) & PT_STATUS_ENABLED))
		return false;
	d->enabled = true;
	d->head = 0;
	d->tail = d->n;
	d->hdr_seen = 0;
	pt_write(PT_REG_TAIL, d->tail);
	return true;
}

/*
 * Stop the queue: when ENABLE 0 returns, every posted buffer is filled or
 * handed back and no DMA is in flight. Consume them all (packets are
 * checked as usual). strict: a posted buffer with neither flag is the
 * device breaking its contract; otherwise (the device was reset under us)
 * such buffers are just forgotten: the next registration reposts them.
 */
static void ptd_disable(struct ptd *d, bool strict)
{
	pt_write(PT_REG_ENABLE, 0);
	d->enabled = false;
	while (ptd_consume(d))
		;
	if (strict && d->head != d->tail) {
		console_printf("pt-driver: FAIL descriptor %u neither filled "
			       "nor handed back after ENABLE 0\n",
			       d->head & (d->n - 1));
		guest_exit(GUEST_EXIT_VERIFY);
	}
	d->tail = d->head;
}

static void ptd_ack(uint32_t seq)
{
	pt_write(PT_REG_ACK, seq);
	ptd_acked = seq;
}

static void ptd_quiesced(struct ptd *d, uint32_t seq)
{
	ptd_ack(seq);
	testdev_marker(MARK_PT_QUIESCED, ++d->quiesces);
	console_printf("pt-driver: quiesced after %lu packets\n", d->packets);
}

static void ptd_quiesce(struct ptd *d, uint32_t seq)
{
	switch (d->bug) {
	case PTD_BUG_NO_ACK:
		console_printf("pt-driver: ignoring quiesce request %u "
			       "(--bug 1)\n",
			       seq);
		return;
	case PTD_BUG_ACK_POSTED: /* acks, but keeps receiving */
		break;
	default:
		if (d->enabled)
			ptd_disable(d, true);
		break;
	}
	ptd_quiesced(d, seq);
}

/*
 * Re-register. A driver that never stopped (--bug 1 or 2) may find its
 * queue still running: then there is nothing to redo. If ENABLE 1 is
 * refused, a new quiesce has come: no ack, the register poll finds it.
 */
static void ptd_resume(struct ptd *d, uint32_t seq)
{
	bool live = d->enabled && (pt_read(PT_REG_STATUS) & PT_STATUS_ENABLED);

	if (!live) {
		if (d->enabled)
			ptd_disable(d, false);
		if (!ptd_register(d))
			return;
	}
	ptd_ack(seq);
	testdev_marker(MARK_PT_RESUMED, ++d->resumes);
	console_printf("pt-driver: resumed\n");
}

static void ptd_request(struct ptd *d, uint32_t req, uint32_t seq)
{
	d->last_seq = seq;
	switch (req) {
	case PT_REQ_QUIESCE:
		ptd_quiesce(d, seq);
		break;
	case PT_REQ_RESUME:
		ptd_resume(d, seq);
		break;
	default:
		console_printf("pt-driver: request %u seq %u unknown, "
			       "ignored\n",
			       req, seq);
		break;
	}
}

/*
 * The registers (MMIO exits): REQ_SEQ, REQ, and REQ_SEQ once more when
 * there is something to do, so that REQ belongs to that seq (the device
 * changes both under its lock). A RESUME while disabled is acted on
 * whatever its seq: the destination's device counts requests afresh, so
 * its seq may equal one seen before the migration. False if the request
 * changed between the reads: try again.
 */
static bool ptd_poll_regs(struct ptd *d)
{
	uint32_t seq = pt_read(PT_REG_REQ_SEQ);
	uint32_t req = pt_read(PT_REG_REQ);
	bool act;

	if (req == PT_REQ_RESUME && !d->enabled)
		act = true;
	else
		act = req != PT_REQ_NONE && seq != d->last_seq;
	if (!act)
		return true;
	if (pt_read(PT_REG_REQ_SEQ) != seq)
		return false;
	ptd_request(d, req, seq);
	return true;
}

/*
 * While enabled: the header mirror, plain loads, says that a request has
 * come. The ABI does not promise that a reader sees req and req_seq there
 * as a pair, so one register read confirms the seq: the device sets the
 * registers before the mirror, under the lock that the read takes, so if
 * REQ_SEQ still equals the header's seq, the header's req is that
 * request's. If not, a newer one is on its way into the header.
 */
static void ptd_poll_hdr(struct ptd *d)
{
	volatile struct pt_ring_hdr *h = d->hdr;
	uint32_t seq = __atomic_load_n(&h->req_seq, __ATOMIC_ACQUIRE);
	uint32_t req = h->req;

	if (seq == d->last_seq || seq == d->hdr_seen || req == PT_REQ_NONE)
		return;
	d->hdr_seen = seq;
	if (pt_read(PT_REG_REQ_SEQ) == seq)
		ptd_request(d, req, seq);
}

static bool ptd_done(struct ptd *d, uint64_t now)
{
	if (d->packets && !d->started) {
		d->started = true;
		d->end = now + tick_ms_to_tsc(d->ms);
	}
	return d->ms && d->started && now >= d->end;
}

/*
 * Enabled and no packet for PTD_IDLE_MS: is the queue still running? A
 * device reset under a driver that ignored a quiesce stops it without
 * telling (no header mirror, no packets); the driver then waits for a
 * RESUME like after a quiesce.
 */
static void ptd_idle(struct ptd *d)
{
	if (!(pt_read(PT_REG_STATUS) & PT_STATUS_ENABLED)) {
		console_printf("pt-driver: the device stopped the queue, "
			       "waiting for a resume\n");
		ptd_disable(d, false);
	}
	ptd_poll_regs(d);
}

/*
 * Enabled: packets and the header every turn, the registers only after
 * PTD_IDLE_MS without a packet (in case the device stopped the queue).
 * Disabled: the registers once per ms.
 */
static void ptd_step(struct ptd *d, uint64_t now)
{
	if (d->enabled) {
		if (ptd_rx(d))
			d->polled = now;
		ptd_poll_hdr(d);
		if (now - d->polled >= PTD_IDLE_MS * d->period) {
			d->polled = now;
			ptd_idle(d);
		}
	} else if (now - d->polled >= d->period) {
		d->polled = now;
		ptd_poll_regs(d);
	}
}

static void ptd_loop(struct ptd *d)
{
	uint64_t now;

	d->polled = x86_rdtsc();
	for (;;) {
		now = x86_rdtsc();
		if (tick_at(now) || ptd_done(d, now))
			return;
		ptd_step(d, now);
		x86_pause();
	}
}

static void ptd_setup(struct ptd *d, const struct wl_call *c)
{
	uint32_t id;
	uint8_t *ring;

	d->n = c->given[PTD_RING] ? (uint32_t)c->val[PTD_RING]
				  : PTD_RING_DEFAULT;
	if (d->n & (d->n - 1)) {
		console_printf("pt-driver: --ring %u is not a power of two\n",
			       d->n);
		guest_exit(GUEST_EXIT_USAGE);
	}
	id = pt_read(PT_REG_ID); /* all ones if nothing is mapped there */
	if (id != PT_ID) {
		console_printf("pt-driver: no pt device (id 0x%x)\n", id);
		guest_exit(GUEST_EXIT_USAGE);
	}
	ring = mem_alloc(sizeof(struct pt_ring_hdr) +
			 (uint64_t)d->n * sizeof(struct pt_desc));
	d->bufs = mem_alloc((uint64_t)d->n * PTD_BUF_SIZE);
	if (!ring || !d->bufs) {
		console_printf("pt-driver: cannot allocate a ring of %u and "
			       "its buffers from free RAM\n",
			       d->n);
		guest_exit(GUEST_EXIT_USAGE);
	}
	d->hdr = (volatile struct pt_ring_hdr *)ring;
	d->desc = (volatile struct pt_desc *)(ring + sizeof(*d->hdr));
}

static void ptd_start(struct ptd *d)
{
	d->last_seq = ptd_acked;
	d->hdr_seen = ptd_acked;
	ptd_register(d);
	console_printf("pt-driver: ring of %u at 0x%lx, buffers at 0x%lx\n",
		       d->n, (uint64_t)(uintptr_t)d->hdr,
		       (uint64_t)(uintptr_t)d->bufs);
	/* A request from before we ran (a RESUME not acked, a QUIESCE). */
	ptd_poll_regs(d);
}

static void ptd_finish(struct ptd *d)
{
	uint64_t first;

	if (d->enabled)
		ptd_disable(d, false); /* may still bring packets */
	first = d->packets ? d->first : ptd_expect;
	console_printf("pt-driver: ok %lu packets, seq %lu..%lu continuous, "
		       "%u quiesces, %u resumes\n",
		       d->packets, first, first + d->packets - 1, d->quiesces,
		       d->resumes);
	testdev_marker(MARK_PT_PACKETS, (uint32_t)d->packets);
}

static void ptd_run(const struct wl_call *c)
{
	static struct ptd ptd;
	struct ptd *d = &ptd;

	*d = (struct ptd){
		.bug = (uint32_t)c->val[PTD_BUG],
		.ms = c->val[PTD_MS],
		.period = tick_ms_to_tsc(1),
	};
	ptd_setup(d, c);
	ptd_start(d);
	ptd_loop(d);
	ptd_finish(d);
}

const struct workload wl_ptdriver = {
	.name = "pt-driver",
	.flags = ptd_flags,
	.run = ptd_run,
};
