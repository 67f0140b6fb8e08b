/* SPDX-License-Identifier: MIT */
/*
 * dirty.h - dirty-page tracking behind one small interface, two back ends:
 *
 *   bitmap  KVM_GET_DIRTY_LOG with KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2: fetch
 *           a slot's bitmap, then KVM_CLEAR_DIRTY_LOG exactly the bits
 *           fetched (never a bit that was not first fetched; whole slots,
 *           so every clear starts at page 0, a multiple of 64). Default.
 *   ring    KVM_CAP_DIRTY_LOG_RING: per-vCPU rings of dirty GFNs. Harvest
 *           kicks every vCPU out of guest mode first (so buffered entries
 *           reach the ring), collects each ring in order, resets
 *           (KVM_RESET_DIRTY_RINGS: pages are write-protected again) and
 *           only then publishes the pages, so a write racing with the
 *           harvest is always in this harvest or the next. A vCPU whose
 *           ring fills exits with KVM_EXIT_DIRTY_RING_FULL and calls
 *           dirty_ring_full(), which collects and resets its ring into a
 *           holding bitmap published by the next harvest.
 *
 * Both publish into the guest_mem DIRTY page-state bitmap, together with
 * host writes recorded by ept_mark_dirty() (HOST_DIRTY), which KVM never
 * sees. Threads: dirty_harvest/start/stop on one controlling thread (the
 * event loop or a migration thread); dirty_ring_full on vCPU threads; the
 * ring indices and KVM_RESET_DIRTY_RINGS are serialised by ring_lock.
 */
#ifndef EPT_DIRTY_H
#define EPT_DIRTY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ept/mem.h"

enum dirty_backend {
	DIRTY_BITMAP,
	DIRTY_RING,
};

/*
 * Make every vCPU leave guest mode at least once and return when each has
 * (or is outside KVM_RUN anyway). 0, or -errno (e.g. -ETIMEDOUT).
 */
typedef int (*dirty_kick_fn)(void *opaque);

struct dirty_ring {
	struct kvm_dirty_gfn *gfns; /* the vCPU's ring (mmap) */
	uint32_t fetch;		    /* next entry to collect */
};

struct dirty_stats {
	uint64_t harvests;
	uint64_t pages;	     /* pages published, all harvests */
	uint64_t last_pages; /* pages published by the last harvest */
	uint64_t last_ns;    /* duration of the last harvest */
	uint64_t total_ns;
	uint64_t ring_full_exits; /* ring back end */
	uint64_t host_pages;	  /* pages that came from ept_mark_dirty */
};

struct dirty_tracker {
	enum dirty_backend backend;
	int vm_fd;
	struct guest_mem *mem;
	bool active;
	uint64_t *slot_buf; /* bitmap back end: scratch for one slot */

	uint32_t ring_entries;
	int nr_rings;
	struct dirty_ring *rings;
	struct bitmap ring_hold; /* collected on ring-full, not yet published */
	pthread_mutex_t ring_lock;
	dirty_kick_fn kick;
	void *kick_opaque;

	struct dirty_stats st; /* written by the harvesting thread */
};

/*
 * Enable the back end on the VM. For DIRTY_RING this must run before any
 * vCPU exists (KVM sizes each vCPU's ring at creation); ring_entries is a
 * power of two, at least 512 here.
 */
int dirty_init(struct dirty_tracker *t, enum dirty_backend backend, int vm_fd,
	       struct guest_mem *mem, uint32_t ring_entries, int nr_vcpus,
	       char *err, size_t errlen);
/* DIRTY_RING: map vCPU idx's ring (after KVM_CREATE_VCPU). */
int dirty_ring_map(struct dirty_tracker *t, int idx, int vcpu_fd, char *err,
		   size_t errlen);
void dirty_set_kick(struct dirty_tracker *t, dirty_kick_fn kick, void *opaque);

/* Turn logging on for every slot; the log starts empty. */
int dirty_start(struct dirty_tracker *t, char *err, size_t errlen);
int dirty_stop(struct dirty_tracker *t);

/*
 * Collect what was dirtied since the last harvest (or start) into the
 * DIRTY page-state bitmap. *pages (may be NULL): pages published now.
 */
int dirty_harvest(struct dirty_tracker *t, uint64_t *pages, char *err,
		  size_t errlen);
/*
 * The same for the last harvest of a paused VM that will not run while
 * logging is on (a migration's switch; a failure turns logging off before
 * the guest resumes): what it finds is not write-protected again
 * (KVM_CLEAR_DIRTY_LOG, KVM_RESET_DIRTY_RINGS skipped), which no write
 * could need. A harvest after it may report those pages again (bitmap).
 */
int dirty_harvest_last(struct dirty_tracker *t, uint64_t *pages, char *err,
		       size_t errlen);

/*
 * Hand the published dirty set to its consumer: every page of the DIRTY
 * bitmap is moved into out (ORed in) and cleared here, a word at a time
 * and atomically, so a harvest publishing meanwhile loses nothing: its
 * pages are in this take or the next. Returns the number of pages moved
 * (the bits taken). Controlling thread.
 */
uint64_t dirty_take(struct dirty_tracker *t, struct bitmap *out);
/* Drop what is published (after dirty_start: the consumer starts over). */
void dirty_forget(struct dirty_tracker *t);
/* vCPU thread, on KVM_EXIT_DIRTY_RING_FULL. */
int dirty_ring_full(struct dirty_tracker *t, int idx);

void dirty_destroy(struct dirty_tracker *t);
const char *dirty_backend_name(enum dirty_backend b);

#endif /* EPT_DIRTY_H */
