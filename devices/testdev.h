/* SPDX-License-Identifier: MIT */
/*
 * testdev.h - the test device: an MMIO window that ring-3 guest code uses to
 * exit with a code, send heartbeats, post markers and print to the console.
 * Register map: common/guest_abi.h.
 *
 * Heartbeats are timestamped with CLOCK_MONOTONIC in the vCPU thread at the
 * moment of the exit and appended to the --heartbeat-log file as
 * "<seq> <ns>\n", or "<seq> <ns> <stall_us>\n" when the guest sends its
 * own stall before the beat (TESTDEV_REG_BEAT_STALL); testdev_flush()
 * (called by the event loop at least every 100 ms, and at exit) pushes the
 * buffered lines to the file.
 */
#ifndef DEVICES_TESTDEV_H
#define DEVICES_TESTDEV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "devices/bus.h"
#include "devices/console.h"
#include "devices/dev.h"
#include "common/guest_abi.h"

struct dev_host;

/* stdio buffer of the heartbeat log: ~10 s of 1 kHz heartbeats. */
#define TESTDEV_HB_BUF (256 * 1024)

struct testdev_stats {
	uint64_t heartbeats;	       /* heartbeats seen */
	uint32_t last_seq;	       /* sequence number of the last one */
	uint64_t last_ns;	       /* its CLOCK_MONOTONIC timestamp */
	uint64_t seq_errors;	       /* heartbeats not exactly last_seq + 1 */
	uint64_t markers[MARK_MAX];    /* count per marker id */
	uint64_t marker_arg[MARK_MAX]; /* argument of the last one */
};

struct testdev {
	pthread_mutex_t lock; /* guards everything below */
	const struct dev_host *host;
	struct console *out;
	FILE *hb_log; /* NULL when there is no --heartbeat-log */
	char *hb_buf; /* its stdio buffer, TESTDEV_HB_BUF bytes */
	int hb_err;   /* errno of the last log error, reported once */
	char hb_path[256];
	struct testdev_stats st;
	uint64_t warn_ns;	  /* time of the last rate-limited warning */
	uint64_t warn_suppressed; /* warnings not printed since then */
};

extern const struct bus_ops testdev_ops;

/* hb_path may be NULL. Returns 0 or -errno with err naming the file. */
int testdev_init(struct testdev *t, const struct dev_host *host,
		 struct console *out, const char *hb_path, char *err,
		 size_t errlen);
void testdev_flush(struct testdev *t);
void testdev_get_stats(struct testdev *t, struct testdev_stats *out);
void testdev_destroy(struct testdev *t);
const char *testdev_marker_name(unsigned int id);

/*
 * Migratable state, version TESTDEV_STATE_VERSION: the heartbeat
 * statistics and marker counts, so that the destination's sequence check
 * continues where the source stopped. Not the log file nor timestamps:
 * they belong to the VMM process that takes them.
 */
#define TESTDEV_STATE_VERSION 2

struct testdev_state {
	uint64_t heartbeats;
	uint64_t seq_errors;
	uint32_t last_seq;
	uint32_t pad; /* zero */
	uint64_t markers[MARK_MAX];
	uint64_t marker_arg[MARK_MAX];
};

void testdev_save(struct testdev *t, struct testdev_state *st);
int testdev_load(struct testdev *t, const struct testdev_state *st, char *err,
		 size_t errlen);

/* The device table's view: struct testdev_state, no thread, no DMA. */
extern const struct dev_ops testdev_dev_ops;

#endif /* DEVICES_TESTDEV_H */
