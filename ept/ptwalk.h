/* SPDX-License-Identifier: MIT */
/*
 * ptwalk.h - the x86-64 guest page-table walker: GVA -> GPA from a vCPU's
 * CR3 with 4-level paging, honouring 4 KiB, 2 MiB and 1 GiB pages, and
 * saying at which level and why a translation stops.
 *
 * Pure: guest memory is read through a callback, so it is tested on
 * synthetic page tables and used on a live guest (vmmctl translate) and by
 * post-copy's page-table-aware prefetch (ptw_for_each_leaf). No thread
 * state: callers provide the registers (read with the vCPU stopped).
 */
#ifndef EPT_PTWALK_H
#define EPT_PTWALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Read the 8-byte entry at gpa. 0, or -EFAULT when gpa is not RAM. */
typedef int (*ptw_read_fn)(void *opaque, uint64_t gpa, uint64_t *val);

struct ptw_ctx {
	ptw_read_fn read;
	void *opaque;
	uint64_t cr0, cr3, cr4, efer;
	unsigned int maxphyaddr; /* CPUID 0x80000008 EAX[7:0]; 0 means 52 */
};

enum ptw_status {
	PTW_OK,
	PTW_NOT_PRESENT,   /* P bit clear at `level` */
	PTW_RESERVED,	   /* a reserved bit set at `level` */
	PTW_NON_CANONICAL, /* the GVA is not canonical (48-bit) */
	PTW_NO_PAGING,	   /* CR0.PG clear: GVA == GPA, reported as such */
	PTW_UNSUPPORTED,   /* not 4-level long mode (no PAE/LME, or LA57) */
	PTW_BAD_TABLE,	   /* a table address is not guest RAM */
};

struct ptw_step {
	int level;	    /* 4 = PML4, 3 = PDPT, 2 = PD, 1 = PT */
	uint64_t table_gpa; /* the table read at this level */
	unsigned int index; /* entry index in it */
	uint64_t entry;	    /* its value */
};

struct ptw_result {
	enum ptw_status status;
	int level;	    /* level where the walk stopped (or the leaf's) */
	uint64_t gpa;	    /* PTW_OK / PTW_NO_PAGING */
	uint64_t page_size; /* 4 KiB, 2 MiB or 1 GiB */
	bool writable, user, nx, accessed, dirty; /* effective rights */
	int nr_steps;
	struct ptw_step steps[4];
};

/* Returns 0 when translated (status PTW_OK or PTW_NO_PAGING), else -EFAULT. */
int ptw_translate(const struct ptw_ctx *c, uint64_t gva, struct ptw_result *r);
const char *ptw_status_name(enum ptw_status s);
/* Human-readable walk ("PML4[1] @0x... = 0x... -> ..."). Returns length. */
int ptw_format(const struct ptw_result *r, uint64_t gva, char *buf, size_t len);

/*
 * Call fn for every present leaf mapping reachable from CR3 (in GVA order).
 * fn returns non-zero to stop the walk early (that value is returned).
 * Tables that are not RAM or have reserved bits are skipped.
 *
 * The walk is bounded whatever the guest's tables hold: each table page is
 * read at most once (a link to a table already read - a recursive PML4
 * slot, a cycle, a sub-table shared by many entries - is counted and not
 * followed, so a shared table's leaves are reported once, under the first
 * GVA that reaches it), and at most max_tables table pages and max_ns of
 * wall time are spent. Running out of a budget is not an error: the leaves
 * found so far stay reported, the walk returns 0 and the report says why it
 * stopped.
 */
typedef int (*ptw_leaf_fn)(void *opaque, uint64_t gva, uint64_t gpa,
			   uint64_t size, uint64_t entry);

#define PTW_WALK_MAX_TABLES 65536ULL		  /* 256 MiB of page tables */
#define PTW_WALK_MAX_NS	    (50ULL * 1000 * 1000) /* 50 ms */

/* Budgets of a leaf walk; a zero field takes the default above. */
struct ptw_walk_limits {
	uint64_t max_tables; /* distinct table pages read */
	uint64_t max_ns;     /* wall time (CLOCK_MONOTONIC) */
};

enum ptw_stop {
	PTW_STOP_DONE,	   /* every reachable table was read */
	PTW_STOP_CALLBACK, /* fn returned non-zero */
	PTW_STOP_TABLES,   /* max_tables table pages were read */
	PTW_STOP_TIME,	   /* max_ns passed */
	PTW_STOP_NOMEM,	   /* the set of tables read could not grow */
};

struct ptw_walk_report {
	enum ptw_stop stop;
	uint64_t tables;   /* distinct table pages read (or tried: not RAM) */
	uint64_t revisits; /* links to a table already read, not followed */
	uint64_t cycles;   /* of those, links back to a table on the path */
	uint64_t leaves;   /* calls of fn */
	uint64_t ns;	   /* wall time of the walk */
};

/*
 * Returns fn's non-zero value when it stopped the walk, 0 when the walk
 * ended (done, or out of a budget: see rep), -EINVAL with paging off,
 * -EOPNOTSUPP when not in 4-level long mode, -ENOMEM. lim and rep may be
 * NULL (the defaults; no report).
 */
int ptw_walk_leaves(const struct ptw_ctx *c, const struct ptw_walk_limits *lim,
		    ptw_leaf_fn fn, void *opaque, struct ptw_walk_report *rep);
/* ptw_walk_leaves with the default budgets and no report. */
int ptw_for_each_leaf(const struct ptw_ctx *c, ptw_leaf_fn fn, void *opaque);
const char *ptw_stop_name(enum ptw_stop s);

#endif /* EPT_PTWALK_H */
