/* SPDX-License-Identifier: MIT */
/*
 * lazysrc.h - guest RAM served lazily from a file whose page i sits at a
 * fixed offset (a snapshot: docs/snapshot.md), through the fault service
 * (fault.h) in fetch mode.
 *
 * A fault on a page the file holds as a hole is resolved with
 * UFFDIO_ZEROPAGE and no I/O; any other page is read with one pread and
 * placed with UFFDIO_COPY, on the fault thread (a local file: nothing to
 * wait for but the page cache or the disk). A background loader thread
 * fills the remaining data pages in file order, a run of up to 1 MiB per
 * read. No page is read twice: whoever sets its CLAIMED bit first (the
 * loader or the fault thread, atomically) loads it; a fault on a page the
 * loader has claimed waits for the loader's placement. A loading set (the
 * pages a guest touched first, recorded earlier) can be placed before any
 * vCPU runs, from contiguous data, with large reads.
 *
 * Recording: for its first window, every fault on a data page is appended
 * to a list, in order (the loader waits for the window to end, so that
 * every first touch of the guest is a fault and is seen).
 *
 * Threads: lazy_src_attach/place_set/loader_start/stop/free on the owner's
 * thread (the event loop); the fetch hook on the fault thread; the loader
 * on its own thread. Counters are atomics; the recorded list is under
 * rec_lock; the data bitmap is read-only after lazy_src_init.
 */
#ifndef EPT_LAZYSRC_H
#define EPT_LAZYSRC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ept/fault.h"
#include "ept/mem.h"

struct lazy_src_stats {
	uint64_t demand_pages; /* data pages read for a fault */
	uint64_t demand_zero;  /* holes resolved for a fault */
	uint64_t loader_pages; /* data pages the loader placed */
	uint64_t set_pages;    /* loading-set pages placed (before the start,
				  or by the loader first when racing) */
	uint64_t set_ms;       /* racing: loader start -> set placed */
	uint64_t data_pages;   /* data pages in the file */
	uint64_t errors;       /* reads or placements that failed */
	uint64_t recorded;     /* pages in the recorded list */
	bool recording;	       /* the recording window is open */
	bool loader_done;      /* every data page is present */
	uint64_t loader_ms;    /* loader start -> done */
};

struct lazy_src {
	struct fault_service *fs;
	const struct guest_mem *mem;
	int fd;		       /* borrowed: the owner keeps it open */
	uint64_t ram_off;      /* file offset of page 0 */
	struct bitmap data;    /* pages whose data the file holds */
	struct bitmap claimed; /* someone reads (or has read) the page */
	uint8_t bounce[4096];  /* the fault thread's */
	fault_stall_fn on_stall;
	void *stall_opaque;

	/* The recording window and its list (rec_lock). */
	uint64_t rec_until_ns; /* 0: no recording; set before the start */
	pthread_mutex_t rec_lock;
	uint64_t *rec;
	uint64_t rec_n, rec_cap;

	pthread_t loader;
	bool loader_running;
	pthread_mutex_t stop_lock; /* with stop_cond: the loader's wait */
	pthread_cond_t stop_cond;
	bool stop;
	uint64_t loader_t0_ns;
	const uint64_t *race_list; /* lazy_src_race_set: the loader's first */
	uint64_t race_n, race_off;

	_Atomic uint64_t demand_pages, demand_zero, loader_pages, set_pages,
		errors, loader_done_ns, set_done_ns;
	uint64_t data_pages;
};

/*
 * ls for mem, reading fd (page i at ram_off + i * 4096); map: one bit per
 * page (1: data in the file), BITMAP_WORDS(mem->nr_pages) words.
 */
int lazy_src_init(struct lazy_src *ls, const struct guest_mem *mem, int fd,
		  uint64_t ram_off, const uint64_t *map, char *err,
		  size_t errlen);
/* Record the data pages faulted in the first ms after attach (0: none). */
void lazy_src_record(struct lazy_src *ls, uint64_t ms);
/*
 * Initialise fs on mem, register all RAM in fetch mode with ls as the
 * source, start the fault thread. Stalls go to on_stall.
 */
int lazy_src_attach(struct lazy_src *ls, struct fault_service *fs,
		    fault_stall_fn on_stall, void *opaque, uint64_t stall_ns,
		    char *err, size_t errlen);
/*
 * Before any vCPU runs: the n pages of list, whose data is contiguous in
 * the file from data_off, read in large chunks and written into RAM.
 */
int lazy_src_place_set(struct lazy_src *ls, const uint64_t *list, uint64_t n,
		       uint64_t data_off, char *err, size_t errlen);
/*
 * The same set placed by the loader instead, racing the guest: its pages
 * first (claimed one by one, as faults may take some), then the rest in
 * file order. list must live until lazy_src_stop. Before loader_start.
 */
void lazy_src_race_set(struct lazy_src *ls, const uint64_t *list, uint64_t n,
		       uint64_t data_off);
/* Start the background loader (after the recording window, if any). */
int lazy_src_loader_start(struct lazy_src *ls, char *err, size_t errlen);
/* Stop and join the loader; before fault_stop. Idempotent. */
void lazy_src_stop(struct lazy_src *ls);
void lazy_src_free(struct lazy_src *ls);
void lazy_src_get_stats(struct lazy_src *ls, struct lazy_src_stats *st);
/*
 * A copy of the recorded list once the window has closed: *n pages in
 * *pages (malloc()ed; the caller frees). -EBUSY while it is open,
 * -ENOENT when nothing was recorded.
 */
int lazy_src_recorded(struct lazy_src *ls, uint64_t **pages, uint64_t *n);

#endif /* EPT_LAZYSRC_H */
