/* SPDX-License-Identifier: MIT */
/*
 * snapfile.h - snapshots of a VM in a file, and restores from one
 * (docs/snapshot.md; the layout is proto/snapfile.h). The same engine as
 * a migration: the VM's shape is a HELLO, its state the STATE sections of
 * vm_snapshot, a live snapshot's memory goes in dirty-tracking rounds.
 *
 *   snap_save.c     write a snapshot (paused, or --live), to a temporary
 *                   name, fsync, rename
 *   snap_read.c     open and check a file; its state as a vm_snapshot;
 *                   the eager load of RAM; storing a loading set
 *   snap_restore.c  a restore: eager, or lazy through ept/lazysrc.h
 *
 * Threads: everything here runs on the thread that owns the VM's life
 * (the event loop), which it blocks while it reads or writes; a lazy
 * restore's fault and loader threads are ept/lazysrc.h's.
 */
#ifndef MIGRATION_SNAPFILE_H
#define MIGRATION_SNAPFILE_H

#include <stdbool.h>
#include <stdint.h>

#include "ept/lazysrc.h"
#include "proto/proto.h"
#include "proto/snapfile.h"

struct vm;
struct vm_snapshot;

/* ---- save (snap_save.c) ------------------------------------------------ */

struct snap_save_params {
	const char *path;
	bool live;
	/* Called with the VM paused, just after its state was taken. */
	void (*at_pause)(void *opaque);
	void *opaque;
};

struct snap_save_result {
	uint64_t id;
	uint64_t file_bytes;	/* the file's size */
	uint64_t disk_bytes;	/* blocks it takes on disk */
	uint64_t data_pages;	/* non-zero pages in it */
	uint64_t zero_pages;	/* resident pages found zero (holes) */
	uint64_t written_pages; /* page writes, every round */
	uint64_t rounds;	/* --live: rounds before the pause */
	uint64_t total_us;	/* the whole snapshot */
	uint64_t downtime_us;	/* the VM paused */
};

/*
 * Snapshot vm (running or paused; left as it was) into p->path. 0, or
 * -errno with one line in err: nothing is left at p->path then (an older
 * file there is untouched).
 */
int snap_save(struct vm *vm, const struct snap_save_params *p,
	      struct snap_save_result *res, char *err, size_t errlen);
/* The guest kind of vm for the header. */
uint32_t snap_guest_kind(const struct vm *vm);

/* ---- read (snap_read.c) ------------------------------------------------ */

struct snap_file {
	int fd;
	char path[256];
	struct snapf_hdr h;
	uint8_t *state;		  /* h.state_len bytes */
	uint64_t *map;		  /* h.map_len bytes */
	uint64_t *ws;		  /* h.ws_pages page indexes */
	struct proto_hello hello; /* the VM's shape, from the state */
};

/*
 * Open path and check it whole before anything is used: the header
 * (magic, version, checksum, offsets), the file's size (truncated?), the
 * checksum of state, map and loading-set list, and each state frame.
 * 0, or -errno with one line in err naming the file and the cause.
 */
int snap_file_open(struct snap_file *f, const char *path, char *err,
		   size_t errlen);
void snap_file_close(struct snap_file *f);
/* Does vm (created with the user's flags) have the file's shape? */
int snap_file_check_vm(const struct snap_file *f, struct vm *vm, char *err,
		       size_t errlen);
/* The file's state sections as a snapshot of vm (vm_snapshot_init()ed). */
int snap_file_state(const struct snap_file *f, struct vm *vm,
		    struct vm_snapshot *s, char *err, size_t errlen);
/* Read every data page into vm's RAM (no vCPU runs). */
int snap_file_load_eager(const struct snap_file *f, struct vm *vm, char *err,
			 size_t errlen);
/*
 * Store pages (n, in order) as path's loading set; path must be the
 * snapshot id (the one that was restored). Crash-safe: the header is
 * rewritten without a set first, then with the new one.
 */
int snap_file_store_ws(const char *path, uint64_t id, const uint64_t *pages,
		       uint64_t n, char *err, size_t errlen);

/* ---- restore (snap_restore.c) ------------------------------------------ */

struct snap_restore_params {
	const char *path;
	bool lazy;
	uint64_t record_ms;	 /* --record-ws: 0 none */
	bool ws_race;		 /* the loading set races the guest */
	fault_stall_fn on_stall; /* lazy: stalled faults */
	void *opaque;
	uint64_t stall_ns;
};

struct snap_restore {
	struct snap_file f;
	bool lazy;
	bool ws_race;
	bool ls_ready;
	struct lazy_src ls;
	uint64_t restore_us; /* open to vCPUs started */
	uint64_t set_us;     /* placing the loading set */
	uint64_t set_pages;
};

/*
 * Restore vm (created incoming, with the file's shape) from p->path and
 * start its vCPUs. 0, or -errno with one line in err.
 */
int snap_restore_start(struct snap_restore *sr, struct vm *vm,
		       const struct snap_restore_params *p, char *err,
		       size_t errlen);
/* Before the VM's teardown: stop the loader. */
void snap_restore_stop(struct snap_restore *sr);
void snap_restore_free(struct snap_restore *sr);
/* Store the recorded working set into path (the restored snapshot). */
int snap_restore_store_ws(struct snap_restore *sr, const char *path,
			  uint64_t *pages_out, char *err, size_t errlen);

#endif /* MIGRATION_SNAPFILE_H */
