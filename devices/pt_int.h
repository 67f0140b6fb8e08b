/* SPDX-License-Identifier: MIT */
/*
 * pt_int.h - what pt.c and pt_migrate.c share: private to the pt device.
 * The locking rules are pt.c's (its header comment).
 */
#ifndef DEVICES_PT_INT_H
#define DEVICES_PT_INT_H

#include "devices/pt.h"

#define PT_TICK_NS    1000000ULL   /* the source's tick: 1 ms */
#define PT_WARN_NS    NSEC_PER_SEC /* at most one warning a second */
#define PT_NO_RING    UINT64_MAX   /* ring_gpa before RING is written */
#define PT_RING_ALIGN 8		   /* the descriptors hold 64-bit fields */

/* What an access or a tick leaves to do once p->lock is dropped. */
struct pt_after {
	char warn[256];	     /* the first refusal's message, or "" */
	uint64_t suppressed; /* warnings not printed before it */
	void (*ack_fn)(void *opaque, enum pt_req req, uint32_t seq);
	void *ack_opaque;
	enum pt_req ack_req;
	uint32_t ack_seq;
};

/* pt.c, for pt_migrate.c; p->lock held. */
/* The ring header in guest RAM, or NULL while no valid ring is set. */
struct pt_ring_hdr *pt_ring(const struct pt *p);
/* The pending request mirrored into the ring header for the driver. */
void pt_mirror_req(struct pt *p, struct pt_ring_hdr *hdr);
/* Raise the device's interrupt (unless masked). */
void pt_irq(struct pt *p);
/* The buffers the device holds (descriptors in [head, tail)) into out. */
uint32_t pt_pinned_locked(struct pt *p, struct pt_pin *out, int max);

#endif /* DEVICES_PT_INT_H */
