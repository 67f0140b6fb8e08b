/* SPDX-License-Identifier: MIT */
/*
 * rate.h - a token bucket for --max-bandwidth / --postcopy-bandwidth: the
 * source's page pump queues a batch only while the bucket holds tokens
 * and spends the batch's wire bytes after; when it is empty, the pump
 * waits mig_rate_wait_ns and a timer brings it back. The bucket may go
 * below zero by one batch, so the average rate over a migration is the
 * cap to within one batch. Pure (the caller passes the clock); the
 * source's loop thread owns it.
 */
#ifndef MIGRATION_RATE_H
#define MIGRATION_RATE_H

#include <stdint.h>

/* The most the bucket holds: this long at the cap (a burst after idling). */
#define MIG_RATE_BURST_MS 50

struct mig_rate {
	uint64_t bps;	  /* bytes a second; 0: no cap */
	int64_t tokens;	  /* bytes that may go now (below 0: owed) */
	uint64_t last_ns; /* tokens last refilled */
};

/* (Re)set the cap at now; a change keeps what is owed. */
void mig_rate_set(struct mig_rate *r, uint64_t bps, uint64_t now_ns);
/* 0: a batch may be queued now; else nanoseconds until one may. */
uint64_t mig_rate_wait_ns(struct mig_rate *r, uint64_t now_ns);
/* A frame of bytes was queued. */
void mig_rate_spend(struct mig_rate *r, uint64_t bytes);

#endif /* MIGRATION_RATE_H */
