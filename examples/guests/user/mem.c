/* SPDX-License-Identifier: MIT */
/*
 * mem.c - page-aligned bump allocation from the boot-info free ranges.
 *
 * Workload memory comes only from boot_info->free[]: RAM that neither the
 * loaded image nor the page tables use. Each range has a cursor; an
 * allocation takes the first range with room, page aligned. As a guard
 * against a wrong free list, a candidate block is also moved past anything
 * the guest knows is in use (page 0, the boot-info and heartbeat pages,
 * the image, the page tables, the MMIO hole). mem_reset() gives everything
 * back: a workload that sets up a new region reuses the memory of the last one,
 * which is already faulted in on the host.
 *
 * Some workloads need RAM that nobody has touched yet (the first access is
 * what they measure, or what the host must fault in). mem_alloc_fresh()
 * takes it from the top of a range, growing down, and only above the
 * highest address mem_alloc() ever handed out; mem_alloc() in turn stops
 * below the fresh blocks, and mem_reset() does not give them back, so a
 * fresh block is never handed out twice (it may hold live page tables of
 * the #PF region: see kernel/pagefault.c).
 */
#include "user/user.h"

struct mem_span {
	uint64_t start, end;
};

static struct {
	uint32_t nr;
	struct mem_span free[GUEST_MAX_RANGES];
	uint64_t next[GUEST_MAX_RANGES]; /* mem_alloc() from here up */
	uint64_t high[GUEST_MAX_RANGES]; /* end of what it ever handed out */
	uint64_t top[GUEST_MAX_RANGES];	 /* fresh blocks from here down */
	struct mem_span used[4];
} mem;

#define MEM_USED (sizeof(mem.used) / sizeof(mem.used[0]))

_Static_assert(GUEST_BOOT_INFO_GPA < GUEST_HB_PAGE_GPA,
	       "used[0] covers both low pages");

static uint64_t mem_align(uint64_t v)
{
	return (v + GUEST_PAGE_SIZE - 1) & ~(GUEST_PAGE_SIZE - 1);
}

static uint64_t mem_align_down(uint64_t v)
{
	return v & ~(GUEST_PAGE_SIZE - 1);
}

void mem_init(const struct boot_info *bi)
{
	uint32_t i;

	mem.nr = bi->nr_ranges < GUEST_MAX_RANGES ? bi->nr_ranges
						  : GUEST_MAX_RANGES;
	for (i = 0; i < mem.nr; i++) {
		mem.free[i] =
			(struct mem_span){bi->free[i].start, bi->free[i].end};
		mem.high[i] = mem_align(bi->free[i].start);
		mem.top[i] = mem_align_down(bi->free[i].end);
	}
	mem.used[0] = (struct mem_span){0, GUEST_HB_PAGE_GPA + GUEST_PAGE_SIZE};
	mem.used[1] = (struct mem_span){GUEST_KERNEL_BASE, bi->kernel_end};
	mem.used[2] = (struct mem_span){bi->pgt_base, bi->pgt_base + bi->pgt_size};
	mem.used[3] =
		(struct mem_span){GUEST_MMIO_HOLE_BASE, GUEST_MMIO_HOLE_END};
	mem_reset();
}

void mem_reset(void)
{
	uint32_t i;

	for (i = 0; i < mem.nr; i++)
		mem.next[i] = mem_align(mem.free[i].start);
}

/* First address >= at where [at, at + len) overlaps nothing in use. */
static uint64_t mem_skip_used(uint64_t at, uint64_t len)
{
	bool moved = true;
	unsigned int i;

	while (moved) {
		moved = false;
		for (i = 0; i < MEM_USED; i++) {
			const struct mem_span *u = &mem.used[i];

			if (at < u->end && u->start < at + len) {
				at = mem_align(u->end);
				moved = true;
			}
		}
	}
	return at;
}

void *mem_alloc(uint64_t bytes)
{
	uint64_t len = mem_align(bytes), at, end;
	uint32_t i;

	if (!len || len < bytes)
		return NULL;
	for (i = 0; i < mem.nr; i++) {
		at = mem_skip_used(mem.next[i], len);
		if (__builtin_add_overflow(at, len, &end) || end > mem.top[i])
			continue;
		mem.next[i] = end;
		if (end > mem.high[i])
			mem.high[i] = end;
		return (void *)(uintptr_t)at;
	}
	return NULL;
}

/* Last address <= at where [at, at + len) overlaps nothing in use; 0: none. */
static uint64_t mem_skip_used_down(uint64_t at, uint64_t len)
{
	bool moved = true;
	unsigned int i;

	while (moved) {
		moved = false;
		for (i = 0; i < MEM_USED; i++) {
			const struct mem_span *u = &mem.used[i];

			if (at < u->end && u->start < at + len) {
				if (u->start < len)
					return 0;
				at = mem_align_down(u->start - len);
				moved = true;
			}
		}
	}
	return at;
}

void *mem_alloc_fresh(uint64_t bytes)
{
	uint64_t len = mem_align(bytes), at;
	uint32_t i;

	if (!len || len < bytes)
		return NULL;
	for (i = 0; i < mem.nr; i++) {
		if (mem.top[i] < len)
			continue;
		at = mem_skip_used_down(mem.top[i] - len, len);
		if (!at || at < mem.high[i])
			continue;
		mem.top[i] = at;
		return (void *)(uintptr_t)at;
	}
	return NULL;
}
