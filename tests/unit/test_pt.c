/* SPDX-License-Identifier: MIT */
/*
 * test_pt.c - the passthrough-style receive device (devices/pt.c) on a real
 * 16 MiB struct guest_mem, without KVM.
 *
 * The test plays the guest driver: it writes the ring and the descriptors
 * in guest RAM through the host mapping and drives the registers through
 * pt_ops exactly as a vCPU's MMIO exit would (offset, width). The source
 * is driven by pt_tick() with exact elapsed times, so every test but one
 * is deterministic; the last starts the real device thread and waits for
 * packets with a deadline loop. Interrupts are recorded by the dev_host.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "devices/devices.h"

#define MiB	 (1ULL << 20)
#define MS	 1000000ULL
#define RING_GPA 0x200000ULL
/* Buffers 1 KiB apart from a page offset of 0x200: every 4th crosses a page. */
#define BUF_GPA(i) (0x300200ULL + (uint64_t)(i)*PT_BUF_MIN)
#define GUARD_S	   20 /* failure guard for the one wait on the thread */

static struct guest_mem gm;
static struct pt p, p2;
static bool p2_on;
static char err[512];

static struct {
	int raises, lowers;
	int level;
	unsigned int gsi;
	bool bad_order; /* a 0 without a 1 before it, or two 1s */
} irq;

static void rec_irq_line(void *opaque, unsigned int gsi, int level)
{
	irq.gsi = gsi;
	if (level == irq.level)
		irq.bad_order = true;
	irq.level = level;
	if (level)
		irq.raises++;
	else
		irq.lowers++;
}

static const struct dev_host host = {
	.irq_line = rec_irq_line,
	.mem = &gm,
};

static void init_dev(struct pt *d, uint32_t rate)
{
	struct pt_config cfg = {.rate_pps = rate, .gsi = PT_GSI};

	cr_assert_eq(pt_init(d, &host, &cfg, err, sizeof(err)), 0, "%s", err);
}

static void setup(void)
{
	cr_assert_eq(mem_create(&gm, 16 * MiB), 0);
	memset(&irq, 0, sizeof(irq));
	err[0] = '\0';
	init_dev(&p, 1000);
}

static void teardown(void)
{
	pt_destroy(&p);
	if (p2_on)
		pt_destroy(&p2);
	mem_destroy(&gm);
}

TestSuite(pt, .init = setup, .fini = teardown, .timeout = 60);

/* ---- the vCPU side: register accesses ------------------------------------ */

static void w32(struct pt *d, uint64_t off, uint32_t v)
{
	pt_ops.write(d, off, &v, sizeof(v));
}

static void w64(struct pt *d, uint64_t off, uint64_t v)
{
	pt_ops.write(d, off, &v, sizeof(v));
}

static uint32_t r32(struct pt *d, uint64_t off)
{
	uint32_t v = 0xdeadbeef;

	pt_ops.read(d, off, &v, sizeof(v));
	return v;
}

static struct pt_stats stats(struct pt *d)
{
	struct pt_stats st;

	pt_get_stats(d, &st);
	return st;
}

/* ---- the guest driver: ring in guest RAM ----------------------------------
 */

static struct pt_ring_hdr *ring_hdr(void)
{
	struct pt_ring_hdr *h = mem_gpa_to_hva(
		&gm, RING_GPA,
		sizeof(*h) + PT_RING_MAX * sizeof(struct pt_desc));

	cr_assert_not_null(h);
	return h;
}

static struct pt_desc *desc(uint32_t idx)
{
	return (struct pt_desc *)(ring_hdr() + 1) + idx;
}

static uint32_t done_idx(void)
{
	return __atomic_load_n(&ring_hdr()->done_idx, __ATOMIC_ACQUIRE);
}

struct drv {
	struct pt *dev;
	uint32_t size;
	uint32_t tail;	   /* posted up to (free-running) */
	uint32_t seen;	   /* completions consumed (free-running) */
	uint64_t next_seq; /* the seq the next packet must carry */
};

static void drv_register(struct drv *v, struct pt *d, uint32_t size)
{
	*v = (struct drv){.dev = d, .size = size, .next_seq = 1};
	w64(d, PT_REG_RING, RING_GPA);
	w32(d, PT_REG_RING_SIZE, size);
	w32(d, PT_REG_ENABLE, 1);
	cr_assert(r32(d, PT_REG_STATUS) & PT_STATUS_ENABLED);
}

/* Post n buffers (descriptor i gets buffer i) and ring the doorbell. */
static void drv_post(struct drv *v, uint32_t n)
{
	for (uint32_t k = 0; k < n; k++, v->tail++) {
		uint32_t idx = v->tail % v->size;
		struct pt_desc *d = desc(idx);

		d->buf_gpa = BUF_GPA(idx);
		d->buf_len = PT_BUF_MIN;
		d->flags = 0;
	}
	w32(v->dev, PT_REG_TAIL, v->tail);
}

static void check_payload(uint64_t gpa, uint64_t seq, uint32_t len)
{
	const uint8_t *buf = mem_gpa_to_hva(&gm, gpa, len);

	cr_assert_not_null(buf);
	for (uint32_t k = 0; k < len / 8; k++) {
		uint64_t w;

		memcpy(&w, buf + k * 8, sizeof(w));
		cr_assert_eq(w, pt_pkt_word(seq, k), "seq %lu word %u",
			     (unsigned long)seq, k);
	}
}

/* Consume every completion: packets in seq order, each one intact. */
static uint32_t drv_consume(struct drv *v)
{
	uint32_t n = 0, done = done_idx();

	for (; v->seen != done; v->seen++, n++) {
		uint32_t idx = v->seen % v->size;
		struct pt_desc *d = desc(idx);

		cr_assert_eq(__atomic_load_n(&d->flags, __ATOMIC_ACQUIRE),
			     PT_DESC_DONE, "descriptor %u", idx);
		cr_assert_eq(d->pkt_seq, v->next_seq, "descriptor %u", idx);
		cr_assert_eq(d->pkt_len, pt_pkt_len(v->next_seq));
		cr_assert_eq(d->pkt_len % 8, 0);
		check_payload(d->buf_gpa, d->pkt_seq, d->pkt_len);
		v->next_seq++;
	}
	return n;
}

static bool host_dirty(uint64_t gpa)
{
	uint64_t page;

	cr_assert_eq(mem_gpa_to_page(&gm, gpa, &page), 0);
	return bitmap_test(&gm.state[MEM_PS_HOST_DIRTY], page);
}

/* ---- registers ------------------------------------------------------------
 */

Test(pt, id_and_status)
{
	struct drv v;

	cr_assert_eq(r32(&p, PT_REG_ID), PT_ID);
	cr_assert_eq(r32(&p, PT_REG_STATUS), 0);
	cr_assert_eq(r32(&p, PT_REG_REQ), PT_REQ_NONE);
	cr_assert_eq(r32(&p, PT_REG_REQ_SEQ), 0);
	drv_register(&v, &p, 8);
	cr_assert_eq(r32(&p, PT_REG_STATUS), PT_STATUS_ENABLED);
	pt_quiesce_request(&p);
	cr_assert_eq(r32(&p, PT_REG_STATUS),
		     PT_STATUS_ENABLED | PT_STATUS_QUIESCE);
	cr_assert_eq(stats(&p).bad_accesses, 0);
	cr_assert_str_eq(pt_quiesce_state_name(PT_Q_RUNNING), "running");
	cr_assert_str_eq(pt_quiesce_state_name(PT_Q_REQUESTED), "requested");
	cr_assert_str_eq(pt_quiesce_state_name(PT_Q_ACKED), "acked");
	cr_assert_str_eq(pt_quiesce_state_name(PT_Q_RESUMING), "resuming");
}

Test(pt, init_checks_its_config)
{
	struct pt_config cfg = {.rate_pps = PT_RATE_MAX + 1};
	struct dev_host nomem = {0};

	cr_assert_eq(pt_init(&p2, &host, &cfg, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "rate"), "%s", err);
	cr_assert_eq(pt_init(&p2, &nomem, NULL, err, sizeof(err)), -EINVAL);
	cr_assert_eq(pt_init(&p2, &host, NULL, err, sizeof(err)), 0);
	p2_on = true;
	cr_assert_eq(p2.cfg.rate_pps, PT_RATE_DEFAULT);
	cr_assert_eq(p2.cfg.gsi, PT_GSI);
}

Test(pt, bad_ring_size_refused)
{
	static const uint32_t bad[] = {0, 3, 6, 100, 512, PT_RING_MAX + 1};
	uint64_t n = 0;

	w64(&p, PT_REG_RING, RING_GPA);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		w32(&p, PT_REG_RING_SIZE, bad[i]);
		cr_assert_eq(stats(&p).bad_accesses, ++n, "RING_SIZE %u",
			     bad[i]);
		cr_assert_eq(stats(&p).ring_size, 0);
	}
	w32(&p, PT_REG_ENABLE, 1); /* still no ring size */
	cr_assert_eq(stats(&p).bad_accesses, ++n);
	cr_assert_not(stats(&p).enabled);
	w32(&p, PT_REG_RING_SIZE, PT_RING_MAX);
	cr_assert_eq(stats(&p).ring_size, PT_RING_MAX);
	cr_assert_eq(stats(&p).bad_accesses, n);
}

Test(pt, bad_accesses_refused)
{
	uint64_t end = 16 * MiB, n = 0;
	uint16_t v16 = 0;

	/* Widths, unknown offsets, read-only and write-only registers. */
	w64(&p, PT_REG_TAIL, 1);
	w32(&p, PT_REG_RING, RING_GPA);
	pt_ops.read(&p, PT_REG_ID, &v16, sizeof(v16));
	cr_assert_eq(v16, 0);
	cr_assert_eq(r32(&p, PT_REG_TAIL), 0);
	cr_assert_eq(r32(&p, 0x100), 0);
	w32(&p, 0x100, 1);
	w32(&p, PT_REG_ID, 1);
	n += 7;
	cr_assert_eq(stats(&p).bad_accesses, n);

	/* Rings that are not guest RAM or not aligned. */
	w64(&p, PT_REG_RING, GUEST_MMIO_HOLE_BASE);
	w64(&p, PT_REG_RING, end - 32);
	w64(&p, PT_REG_RING, RING_GPA + 4);
	n += 3;
	cr_assert_eq(stats(&p).bad_accesses, n);
	w64(&p, PT_REG_RING, end - 64 - 32); /* header + one descriptor */
	w32(&p, PT_REG_RING_SIZE, 1);
	w32(&p, PT_REG_RING_SIZE, 2);
	cr_assert_eq(stats(&p).bad_accesses, ++n);
	cr_assert_eq(stats(&p).ring_size, 1);

	/* Other values, TAIL while disabled, ACK with nothing outstanding. */
	w32(&p, PT_REG_ENABLE, 2);
	w32(&p, PT_REG_IRQ_MASK, 7);
	w32(&p, PT_REG_TAIL, 1);
	w32(&p, PT_REG_ACK, 0);
	n += 4;
	cr_assert_eq(stats(&p).bad_accesses, n);
	cr_assert_eq(stats(&p).pinned, 0);
	cr_assert_eq(r32(&p, PT_REG_IRQ_MASK), 0);
}

Test(pt, ring_registers_locked_while_enabled)
{
	struct drv v;

	drv_register(&v, &p, 8);
	w64(&p, PT_REG_RING, RING_GPA + 0x1000);
	w32(&p, PT_REG_RING_SIZE, 4);
	w32(&p, PT_REG_ENABLE, 1);
	cr_assert_eq(stats(&p).bad_accesses, 3);
	cr_assert_eq(stats(&p).ring_size, 8);
	/* Still the first ring: a packet lands there. */
	drv_post(&v, 1);
	pt_tick(&p, MS);
	cr_assert_eq(drv_consume(&v), 1);
}

Test(pt, bad_doorbells_refused_whole)
{
	struct drv v;

	drv_register(&v, &p, 4);
	w32(&p, PT_REG_TAIL, 5); /* more than the ring */
	cr_assert_eq(stats(&p).bad_accesses, 1);

	for (uint32_t i = 0; i < 3; i++) {
		desc(i)->buf_gpa = BUF_GPA(i);
		desc(i)->buf_len = PT_BUF_MIN;
	}
	desc(2)->buf_len = PT_BUF_MIN - 8; /* too small */
	w32(&p, PT_REG_TAIL, 3);
	cr_assert_eq(stats(&p).bad_accesses, 2);
	desc(2)->buf_len = PT_BUF_MIN;
	desc(1)->buf_gpa = 16 * MiB - 512; /* runs past the end of RAM */
	w32(&p, PT_REG_TAIL, 3);
	cr_assert_eq(stats(&p).bad_accesses, 3);
	cr_assert_eq(stats(&p).pinned, 0);
	cr_assert_eq(stats(&p).doorbells, 3);

	desc(1)->buf_gpa = BUF_GPA(1);
	w32(&p, PT_REG_TAIL, 3);
	cr_assert_eq(stats(&p).pinned, 3);
	w32(&p, PT_REG_TAIL, 2); /* backwards */
	cr_assert_eq(stats(&p).bad_accesses, 4);
	cr_assert_eq(stats(&p).pinned, 3);
}

/* ---- delivery ---------------------------------------------------------------
 */

Test(pt, tick_delivers_in_order_and_raises_irq)
{
	struct pt_pin pins[8];
	struct drv v;

	drv_register(&v, &p, 8);
	drv_post(&v, 4);
	cr_assert_eq(pt_pinned(&p, pins, 8), 4);
	cr_assert_eq(pins[3].desc, 3);
	cr_assert_eq(pins[3].gpa, BUF_GPA(3));
	cr_assert_eq(pins[3].len, PT_BUF_MIN);
	cr_assert_eq(irq.raises, 0); /* nothing was queued yet */
	bitmap_zero(&gm.state[MEM_PS_HOST_DIRTY]);

	pt_tick(&p, 10 * MS); /* 10 packets at 1000 pps; 4 buffers */
	cr_assert_eq(done_idx(), 4);
	cr_assert_eq(drv_consume(&v), 4);
	cr_assert_eq(irq.raises, 1);
	cr_assert_eq(irq.lowers, 1);
	cr_assert_eq(irq.gsi, PT_GSI);
	cr_assert_not(irq.bad_order);
	cr_assert_eq(stats(&p).irqs, 1);
	cr_assert_eq(stats(&p).delivered, 4);
	cr_assert_eq(stats(&p).queued, 6);
	cr_assert_eq(stats(&p).next_seq, 11);
	cr_assert_eq(stats(&p).pinned, 0);
	cr_assert_eq(pt_pinned(&p, pins, 8), 0);

	/* Host writes are in the dirty log: buffers (both pages of the one
	 * that crosses a page), the ring; nothing else. */
	for (uint32_t i = 0; i < 4; i++) {
		cr_assert(host_dirty(BUF_GPA(i)), "buffer %u", i);
		cr_assert(host_dirty(BUF_GPA(i) + desc(i)->pkt_len - 1));
	}
	cr_assert(host_dirty(RING_GPA));
	cr_assert_not(host_dirty(BUF_GPA(8) + 0x1000));
	cr_assert_not(host_dirty(0));

	/* A doorbell with packets waiting delivers at once. */
	drv_post(&v, 4);
	cr_assert_eq(drv_consume(&v), 4);
	cr_assert_eq(irq.raises, 2);
	cr_assert_eq(stats(&p).queued, 2);
	cr_assert_eq(stats(&p).doorbells, 2);
}

Test(pt, ring_wraps_and_seq_stays_continuous)
{
	struct drv v;

	drv_register(&v, &p, 4);
	for (int round = 0; round < 40; round++) {
		drv_post(&v, 4 - (v.tail - v.seen));
		pt_tick(&p, 3 * MS);
		drv_consume(&v);
	}
	cr_assert_eq(v.next_seq, 121);
	cr_assert_eq(stats(&p).delivered, 120);
	cr_assert_eq(stats(&p).bad_accesses, 0);
}

Test(pt, irq_mask_means_no_irq)
{
	struct drv v;

	w32(&p, PT_REG_IRQ_MASK, 1);
	cr_assert_eq(r32(&p, PT_REG_IRQ_MASK), 1);
	drv_register(&v, &p, 8);
	drv_post(&v, 8);
	pt_tick(&p, 5 * MS);
	cr_assert_eq(drv_consume(&v), 5);
	pt_quiesce_request(&p);
	cr_assert_eq(irq.raises, 0);
	cr_assert_eq(stats(&p).irqs, 0);
	/* A polling driver sees the request in the ring header. */
	cr_assert_eq(ring_hdr()->req, PT_REQ_QUIESCE);
}

Test(pt, disable_hands_back_unfilled_buffers)
{
	struct drv v;

	drv_register(&v, &p, 8);
	drv_post(&v, 6);
	pt_tick(&p, 2 * MS);
	cr_assert_eq(drv_consume(&v), 2);
	cr_assert_eq(stats(&p).pinned, 4);
	bitmap_zero(&gm.state[MEM_PS_HOST_DIRTY]);

	w32(&p, PT_REG_ENABLE, 0);
	cr_assert_eq(r32(&p, PT_REG_STATUS), 0);
	for (uint32_t i = 2; i < 6; i++)
		cr_assert_eq(desc(i)->flags, PT_DESC_RETURNED, "desc %u", i);
	cr_assert_eq(done_idx(), 6);
	cr_assert(host_dirty(RING_GPA));
	cr_assert_eq(stats(&p).pinned, 0);
	cr_assert_eq(stats(&p).returned, 4);
	cr_assert_eq(pt_pinned(&p, NULL, 0), 0);

	/* Disabled: packets queue up, nothing is written. */
	pt_tick(&p, 3 * MS);
	cr_assert_eq(done_idx(), 6);
	cr_assert_eq(stats(&p).queued, 3);
	w32(&p, PT_REG_ENABLE, 0); /* again: harmless */
	cr_assert_eq(stats(&p).bad_accesses, 0);
}

Test(pt, descriptor_rewritten_after_doorbell_is_handed_back)
{
	struct drv v;

	drv_register(&v, &p, 4);
	drv_post(&v, 2);
	desc(0)->buf_gpa = GUEST_MMIO_HOLE_BASE; /* the driver misbehaves */
	pt_tick(&p, MS);
	cr_assert_eq(desc(0)->flags, PT_DESC_RETURNED);
	cr_assert_eq(desc(1)->flags, PT_DESC_DONE);
	cr_assert_eq(desc(1)->pkt_seq, 1);
	cr_assert_eq(stats(&p).bad_accesses, 1);
	cr_assert_eq(stats(&p).returned, 1);
}

Test(pt, full_queue_waits_without_dropping)
{
	struct drv v;

	for (int i = 0; i < 40; i++) /* 40 ms, no ring: 32 fit */
		pt_tick(&p, MS);
	cr_assert_eq(stats(&p).queued, PT_QUEUE_MAX);
	cr_assert_eq(stats(&p).next_seq, PT_QUEUE_MAX + 1);
	cr_assert_eq(stats(&p).full_waits, 8);

	drv_register(&v, &p, 16);
	drv_post(&v, 16); /* seqs 1..16 at once */
	cr_assert_eq(drv_consume(&v), 16);
	pt_tick(&p, MS); /* room again: seq 33, no skip */
	cr_assert_eq(stats(&p).next_seq, PT_QUEUE_MAX + 2);
	for (int round = 0; round < 4; round++) {
		drv_post(&v, 16 - (v.tail - v.seen));
		pt_tick(&p, MS);
		drv_consume(&v);
	}
	cr_assert_eq(v.next_seq, stats(&p).delivered + 1);
	cr_assert_eq(stats(&p).delivered, PT_QUEUE_MAX + 5);
}

Test(pt, source_keeps_its_rate)
{
	uint64_t made;

	pt_destroy(&p);
	init_dev(&p, 3000); /* 3 per ms: exact */
	for (int i = 0; i < 10; i++)
		pt_tick(&p, MS);
	cr_assert_eq(stats(&p).next_seq, 31);
	pt_destroy(&p);
	/* 0.7 per ms in quarter-ms ticks: only the carried remainder makes
	 * packets (less than 1 ns of it is lost per tick). */
	init_dev(&p, 700);
	for (int i = 0; i < 160; i++) /* 40 ms: 28 packets fit the queue */
		pt_tick(&p, MS / 4);
	made = stats(&p).next_seq - 1;
	cr_assert(made == 27 || made == 28, "%lu packets", (unsigned long)made);
	cr_assert_eq(stats(&p).full_waits, 0);
}

/* ---- the quiesce handshake -------------------------------------------------
 */

static struct {
	int calls;
	enum pt_req req;
	uint32_t seq;
	enum pt_quiesce_state qstate; /* as seen from the hook */
} ack;

static void on_ack(void *opaque, enum pt_req req, uint32_t seq)
{
	struct pt_stats st;

	pt_get_stats(opaque, &st); /* p->lock is not held */
	ack.calls++;
	ack.req = req;
	ack.seq = seq;
	ack.qstate = st.qstate;
}

Test(pt, quiesce_request_mirrors_into_ring_header)
{
	struct pt_ring_hdr *h = ring_hdr();
	struct drv v;
	uint32_t seq;

	drv_register(&v, &p, 8);
	cr_assert_eq(h->req, PT_REQ_NONE);
	bitmap_zero(&gm.state[MEM_PS_HOST_DIRTY]);
	seq = pt_quiesce_request(&p);
	cr_assert_eq(seq, 1);
	cr_assert_eq(r32(&p, PT_REG_REQ), PT_REQ_QUIESCE);
	cr_assert_eq(r32(&p, PT_REG_REQ_SEQ), 1);
	cr_assert_eq(h->req, PT_REQ_QUIESCE);
	cr_assert_eq(h->req_seq, 1);
	cr_assert(host_dirty(RING_GPA));
	cr_assert_eq(irq.raises, 1);
	cr_assert_eq(stats(&p).quiesces, 1);
	cr_assert_eq(stats(&p).qstate, PT_Q_REQUESTED);
}

Test(pt, quiesce_check_follows_the_driver)
{
	struct drv v;
	uint32_t seq;

	pt_set_ack_hook(&p, on_ack, &p);
	memset(&ack, 0, sizeof(ack));
	drv_register(&v, &p, 8);
	drv_post(&v, 3);
	cr_assert_eq(pt_quiesce_check(&p, err, sizeof(err)), -EAGAIN);
	seq = pt_quiesce_request(&p);
	cr_assert_eq(pt_quiesce_check(&p, err, sizeof(err)), -EAGAIN);

	w32(&p, PT_REG_ACK, seq + 1); /* not the current request */
	cr_assert_eq(stats(&p).bad_accesses, 1);
	cr_assert_eq(ack.calls, 0);
	cr_assert_eq(pt_quiesce_check(&p, err, sizeof(err)), -EAGAIN);

	/* A buggy driver acks without stopping the queue. */
	w32(&p, PT_REG_ACK, seq);
	cr_assert_eq(ack.calls, 1);
	cr_assert_eq(ack.req, PT_REQ_QUIESCE);
	cr_assert_eq(ack.seq, seq);
	cr_assert_eq(ack.qstate, PT_Q_ACKED);
	cr_assert_eq(stats(&p).quiesce_acks, 1);
	cr_assert_eq(pt_quiesce_check(&p, err, sizeof(err)), -EBUSY);
	cr_assert(strstr(err, "buffer 0 at gpa 0x300200 (1024 bytes)"), "%s",
		  err);
	cr_assert(strstr(err, "3 buffers pinned"), "%s", err);

	w32(&p, PT_REG_ENABLE, 0);
	cr_assert_eq(pt_quiesce_check(&p, err, sizeof(err)), 0, "%s", err);
	w32(&p, PT_REG_ACK, seq); /* twice: nothing outstanding */
	cr_assert_eq(ack.calls, 1);
	cr_assert_eq(stats(&p).bad_accesses, 2);
}

Test(pt, enabled_without_buffers_is_still_busy)
{
	struct drv v;
	uint32_t seq;

	drv_register(&v, &p, 8);
	seq = pt_quiesce_request(&p);
	w32(&p, PT_REG_ACK, seq);
	cr_assert_eq(pt_quiesce_check(&p, err, sizeof(err)), -EBUSY);
	cr_assert(strstr(err, "enabled"), "%s", err);
}

Test(pt, enable_ignored_while_quiesced)
{
	struct drv v;
	uint32_t seq;

	pt_set_ack_hook(&p, on_ack, &p);
	memset(&ack, 0, sizeof(ack));
	drv_register(&v, &p, 8);
	seq = pt_quiesce_request(&p);
	w32(&p, PT_REG_ENABLE, 0);
	w32(&p, PT_REG_ENABLE, 1); /* requested */
	cr_assert_eq(stats(&p).bad_accesses, 1);
	w32(&p, PT_REG_ACK, seq);
	w32(&p, PT_REG_ENABLE, 1); /* acked */
	cr_assert_eq(stats(&p).bad_accesses, 2);
	cr_assert_not(stats(&p).enabled);
	cr_assert_eq(pt_quiesce_check(&p, err, sizeof(err)), 0);

	/* The migration did not happen: resume, the driver re-registers. */
	seq = pt_resume(&p);
	cr_assert_eq(seq, 2);
	cr_assert_eq(r32(&p, PT_REG_REQ), PT_REQ_RESUME);
	cr_assert_eq(r32(&p, PT_REG_STATUS), 0);
	drv_register(&v, &p, 8);
	cr_assert_eq(ring_hdr()->req, PT_REQ_RESUME);
	cr_assert_eq(ring_hdr()->req_seq, 2);
	w32(&p, PT_REG_ACK, seq);
	cr_assert_eq(ack.calls, 2);
	cr_assert_eq(ack.req, PT_REQ_RESUME);
	cr_assert_eq(stats(&p).qstate, PT_Q_RUNNING);
	cr_assert_eq(stats(&p).resumes, 1);
	cr_assert_eq(stats(&p).bad_accesses, 2);
}

/* ---- migratable state -------------------------------------------------------
 */

Test(pt, save_refused_while_enabled)
{
	static struct pt_state st;
	struct drv v;

	drv_register(&v, &p, 8);
	cr_assert_eq(pt_save(&p, &st, err, sizeof(err)), -EBUSY);
	cr_assert(strstr(err, "enabled"), "%s", err);
	drv_post(&v, 2);
	cr_assert_eq(pt_save(&p, &st, err, sizeof(err)), -EBUSY);
	cr_assert(strstr(err, "2 buffers pinned"), "%s", err);
}

/* A quiesced device with 4 packets delivered and 6 queued, saved. */
static void save_quiesced(struct pt_state *st)
{
	struct drv v;
	uint32_t seq;

	drv_register(&v, &p, 4);
	drv_post(&v, 4);
	pt_tick(&p, 10 * MS);
	cr_assert_eq(drv_consume(&v), 4);
	seq = pt_quiesce_request(&p);
	w32(&p, PT_REG_ENABLE, 0);
	w32(&p, PT_REG_ACK, seq);
	cr_assert_eq(pt_quiesce_check(&p, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(pt_save(&p, st, err, sizeof(err)), 0, "%s", err);
}

Test(pt, save_load_round_trip)
{
	static struct pt_state st;
	struct drv v;
	uint32_t seq;

	save_quiesced(&st);
	cr_assert_eq(st.nr_queued, 6);
	cr_assert_eq(st.next_seq, 11);
	cr_assert_eq(st.delivered, 4);
	cr_assert_eq(st.queue[0].seq, 5);
	cr_assert_eq(st.rate_pps, 1000);

	/* The destination: a fresh device on the same RAM. */
	init_dev(&p2, 1000);
	p2_on = true;
	cr_assert_eq(pt_load(&p2, &st, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(stats(&p2).queued, 6);
	cr_assert_eq(stats(&p2).next_seq, 11);
	cr_assert_eq(stats(&p2).qstate, PT_Q_RUNNING);
	cr_assert_not(stats(&p2).enabled);
	cr_assert_eq(stats(&p2).ring_size, 0);

	seq = pt_resume(&p2);
	cr_assert_eq(r32(&p2, PT_REG_REQ), PT_REQ_RESUME);
	cr_assert_eq(r32(&p2, PT_REG_REQ_SEQ), seq);
	drv_register(&v, &p2, 8);
	v.next_seq = 5;
	drv_post(&v, 8); /* the queued packets first, at once */
	cr_assert_eq(desc(0)->pkt_seq, 5);
	cr_assert_eq(drv_consume(&v), 6);
	w32(&p2, PT_REG_ACK, seq);
	cr_assert_eq(stats(&p2).qstate, PT_Q_RUNNING);
	pt_tick(&p2, 2 * MS); /* then the source goes on from next_seq */
	cr_assert_eq(drv_consume(&v), 2);
	cr_assert_eq(v.next_seq, 13);
	cr_assert_eq(stats(&p2).delivered, 12);
	cr_assert_eq(stats(&p2).bad_accesses, 0);
}

Test(pt, load_rejects_corrupt_state)
{
	static struct pt_state st, bad;

	save_quiesced(&st);
	init_dev(&p2, 1000);
	p2_on = true;

	bad = st;
	bad.nr_queued = PT_QUEUE_MAX + 1;
	cr_assert_eq(pt_load(&p2, &bad, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "nr_queued"), "%s", err);

	bad = st;
	bad.queue[2].len += 8;
	cr_assert_eq(pt_load(&p2, &bad, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "queue[2].len"), "%s", err);

	bad = st;
	bad.queue[3].seq++;
	cr_assert_eq(pt_load(&p2, &bad, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "queue[3].seq"), "%s", err);

	bad = st;
	bad.next_seq++;
	cr_assert_eq(pt_load(&p2, &bad, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "next_seq"), "%s", err);

	bad = st;
	bad.queue[1].data[16] ^= 1;
	cr_assert_eq(pt_load(&p2, &bad, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "queue[1].data"), "%s", err);

	bad = st;
	bad.queue[0].pad = 1;
	cr_assert_eq(pt_load(&p2, &bad, err, sizeof(err)), -EINVAL);

	/* Nothing of the refused states stuck. */
	cr_assert_eq(stats(&p2).next_seq, 1);
	cr_assert_eq(stats(&p2).queued, 0);
	cr_assert_eq(pt_load(&p2, &st, err, sizeof(err)), 0, "%s", err);
}

/* ---- the device thread ------------------------------------------------------
 */

Test(pt, thread_delivers_at_rate)
{
	const struct timespec poll_gap = {.tv_nsec = 200000};
	uint64_t deadline = clock_now_ns() + GUARD_S * 1000000000ULL;
	struct drv v;

	pt_destroy(&p);
	init_dev(&p, PT_RATE_MAX);
	cr_assert_eq(pt_start(&p, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(pt_start(&p, err, sizeof(err)), -EBUSY);
	drv_register(&v, &p, PT_RING_MAX);
	drv_post(&v, PT_RING_MAX);
	/* Consume and repost as a driver would, until 1000 packets came. */
	while (v.next_seq <= 1000) {
		cr_assert_lt(clock_now_ns(), deadline, "only %lu packets",
			     (unsigned long)v.next_seq - 1);
		if (!drv_consume(&v)) {
			nanosleep(&poll_gap, NULL); /* a poll interval */
			continue;
		}
		drv_post(&v, PT_RING_MAX - (v.tail - v.seen));
	}
	w32(&p, PT_REG_ENABLE, 0); /* no DMA in flight once it returns */
	for (; v.seen != done_idx(); v.seen++) {
		struct pt_desc *d = desc(v.seen % v.size);

		if (d->flags == PT_DESC_DONE) {
			cr_assert_eq(d->pkt_seq, v.next_seq++);
			continue;
		}
		cr_assert_eq(d->flags, PT_DESC_RETURNED);
	}
	cr_assert_eq(stats(&p).pinned, 0);
	cr_assert_eq(stats(&p).delivered, v.next_seq - 1);
	cr_assert_gt(stats(&p).irqs, 0);
	cr_assert_eq(irq.raises, irq.lowers);
	pt_destroy(&p); /* joins the thread */
	init_dev(&p, 1000);
}
