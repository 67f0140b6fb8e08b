/* SPDX-License-Identifier: MIT */
/*
 * pt.h - a passthrough-style receive device: guest buffers pinned for DMA,
 * a host-side traffic source that writes packets into them, and the
 * paravirtual quiesce handshake that makes such a device migratable.
 * Register map and ring layout: common/guest_abi.h; the protocol and its state
 * diagram: docs/pt-quiesce.md.
 *
 * The traffic source is the device's own thread (pt_start): it makes
 * sequence-numbered packets at cfg.rate_pps into a host-side queue of at
 * most PT_QUEUE_MAX packets (when the queue is full it waits: no packet is
 * ever dropped), and delivers queued packets in order into posted buffers
 * by writing guest RAM directly, as hardware DMA would. Every byte it
 * writes into guest RAM (payload, descriptor, ring header) is reported
 * with ept_mark_dirty(): KVM's dirty log never sees host writes.
 *
 * Threads: vCPU threads call the bus ops; the device thread delivers; the
 * event-loop thread calls the pt_quiesce_* / pt_resume / save / load /
 * stats functions. p->lock guards every field below it, and DMA into guest
 * RAM happens with p->lock held, so that ENABLE 0 returns only after DMA
 * in progress has completed. The ack callback runs on the vCPU thread that
 * wrote ACK, without p->lock.
 */
#ifndef DEVICES_PT_H
#define DEVICES_PT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/bus.h"
#include "devices/dev.h"
#include "common/guest_abi.h"

struct dev_host;

#define PT_QUEUE_MAX	 32   /* packets waiting for a buffer, at most */
#define PT_RATE_DEFAULT	 1000 /* packets per second */
#define PT_RATE_MAX	 100000
#define PT_STATE_VERSION 1

struct pt_config {
	uint32_t rate_pps; /* 0: PT_RATE_DEFAULT */
	unsigned int gsi;  /* PT_GSI (0: PT_GSI) */
};

/* Where the device stands in the migration handshake. */
enum pt_quiesce_state {
	PT_Q_RUNNING,	/* no request outstanding */
	PT_Q_REQUESTED, /* QUIESCE posted, the driver has not acked */
	PT_Q_ACKED, /* the driver acked QUIESCE (check it: pt_quiesce_check) */
	PT_Q_RESUMING, /* RESUME posted, the driver has not acked */
};

/* A posted buffer the device holds: pinned until filled or handed back. */
struct pt_pin {
	uint32_t desc; /* ring index (head + i) % ring_size */
	uint64_t gpa;
	uint32_t len;
};

struct pt_stats {
	bool enabled;
	enum pt_quiesce_state qstate;
	uint32_t ring_size;
	uint32_t pinned;       /* buffers posted and not completed */
	uint32_t queued;       /* packets made, not yet delivered */
	uint64_t next_seq;     /* the next packet the source makes */
	uint64_t delivered;    /* packets written into guest buffers */
	uint64_t returned;     /* buffers handed back unfilled */
	uint64_t irqs;	       /* interrupts raised */
	uint64_t doorbells;    /* TAIL writes */
	uint64_t full_waits;   /* ticks the source waited on a full queue */
	uint64_t quiesces;     /* QUIESCE requests posted */
	uint64_t quiesce_acks; /* ... and acked */
	uint64_t quiesce_ns;   /* request -> ack of the last one acked */
	uint64_t resumes;      /* RESUME requests posted */
	uint64_t bad_accesses; /* guest accesses refused (bad width, ...) */
};

struct pt {
	const struct dev_host *host;
	struct pt_config cfg;
	pthread_t thread;
	bool thread_on;
	int timer_fd; /* the source's 1 ms tick (timerfd) */
	int stop_fd;  /* eventfd: pt_destroy wakes the thread */

	/* Called without p->lock on the vCPU thread that wrote ACK. */
	void (*on_ack)(void *opaque, enum pt_req req, uint32_t seq);
	void *ack_opaque;

	pthread_mutex_t lock; /* guards everything below */
	uint64_t ring_gpa;
	uint32_t ring_size;
	uint32_t irq_mask;
	bool enabled;
	uint32_t head; /* next descriptor the device fills (free-running) */
	uint32_t tail; /* the driver's last doorbell (free-running) */
	uint32_t req, req_seq;
	uint32_t ack_seq;
	enum pt_quiesce_state qstate;
	uint64_t req_ns; /* when the current request was posted */
	uint64_t
		credit_ns; /* source pacing: time not yet turned into packets */
	uint64_t queue_seq[PT_QUEUE_MAX]; /* ring of queued packet seqs */
	uint8_t queue_data[PT_QUEUE_MAX][PT_PKT_MAX]; /* their payloads */
	uint32_t q_head, q_len;
	uint64_t warn_ns;	  /* time of the last rate-limited warning */
	uint64_t warn_suppressed; /* warnings not printed since then */
	struct pt_stats st;  /* counters; next_seq and delivered are state */
	dev_ack_fn q_ack_fn; /* the dev_ops quiesce-ack notification */
	void *q_ack_opaque;
};

extern const struct bus_ops pt_ops;
/* The device table's view (pt_dev.c): state, thread, quiesce handshake. */
extern const struct dev_ops pt_dev_ops;
/* Type "pt": builds an instance from a struct pt_config, maps it at PT_GPA. */
extern const struct dev_type pt_dev_type;

/* Registers nothing: the caller maps pt_ops at PT_GPA. 0 or -errno. */
int pt_init(struct pt *p, const struct dev_host *host,
	    const struct pt_config *cfg, char *err, size_t errlen);
/* Start the traffic source's thread. 0 or -errno with err set. */
int pt_start(struct pt *p, char *err, size_t errlen);
/* Stop the thread (if started) and free everything. */
void pt_destroy(struct pt *p);
/*
 * One tick of the traffic source: turn elapsed_ns of credit into packets,
 * then deliver what fits into posted buffers. The device thread calls it
 * every 1 ms; exposed so that tests can drive the device without it.
 */
void pt_tick(struct pt *p, uint64_t elapsed_ns);
void pt_set_ack_hook(struct pt *p,
		     void (*fn)(void *opaque, enum pt_req req, uint32_t seq),
		     void *opaque);
void pt_get_stats(struct pt *p, struct pt_stats *out);

/*
 * The buffers the device holds (pinned), up to max; returns how many there
 * are in all (may exceed max).
 */
int pt_pinned(struct pt *p, struct pt_pin *out, int max);

/*
 * Migration handshake (event-loop thread).
 * pt_quiesce_request: post PT_REQ_QUIESCE (register + ring header mirror,
 * interrupt unless masked); returns its seq. From now on ENABLE 1 is
 * ignored until pt_resume().
 * pt_quiesce_check: 0 when the driver has acked and the device holds no
 * buffer and does no DMA (the VM may switch over); -EAGAIN while no ack
 * has come; -EBUSY when the driver acked but a buffer is still pinned or
 * the queue still enabled, err naming the buffer ("buffer 3 at gpa 0x...
 * (2048 bytes) is still pinned").
 * pt_resume: post PT_REQ_RESUME: the quiesce is over (source: the
 * migration did not happen; destination: after the load), the driver
 * re-registers. Returns its seq.
 */
uint32_t pt_quiesce_request(struct pt *p);
int pt_quiesce_check(struct pt *p, char *err, size_t errlen);
uint32_t pt_resume(struct pt *p);

/*
 * Migratable state. Saved only from a quiesced device (nothing pinned, the
 * queue disabled); the queue of undelivered packets travels with it and
 * is delivered first on the destination. Loading leaves the device in its
 * reset state (no ring, disabled) with PT_Q_RUNNING; the destination then
 * calls pt_resume() once the vCPUs run.
 */
struct pt_state_pkt {
	uint64_t seq;
	uint32_t len;
	uint32_t pad; /* zero */
	uint8_t data[PT_PKT_MAX];
};

struct pt_state {
	uint64_t next_seq;
	uint64_t delivered;
	uint32_t irq_mask;
	uint32_t nr_queued; /* <= PT_QUEUE_MAX */
	uint32_t rate_pps;  /* informational: the destination keeps its own */
	uint32_t pad;	    /* zero */
	struct pt_state_pkt queue[PT_QUEUE_MAX];
};

/* -EBUSY (err says why) unless quiesced. */
int pt_save(struct pt *p, struct pt_state *st, char *err, size_t errlen);
int pt_load(struct pt *p, const struct pt_state *st, char *err, size_t errlen);

const char *pt_quiesce_state_name(enum pt_quiesce_state s);

struct dev_status;
/*
 * status "pt" (pt_dev.c): st's counters and the rate as named fields; st
 * NULL (post-copy RAM still arriving: the counters need the lock) gives
 * the rate and "ram_arriving" only.
 */
void pt_status_fill(const struct pt_stats *st, uint32_t rate_pps,
		    struct dev_status *o);

#endif /* DEVICES_PT_H */
