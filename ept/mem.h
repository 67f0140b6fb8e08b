/* SPDX-License-Identifier: MIT */
/*
 * ept/ - guest physical memory and second-level faults. This layer owns
 * guest RAM (one memfd mapped MAP_SHARED, cut into regions around the MMIO
 * hole below 4 GiB, exposed as KVM memslots), translation between
 * guest-physical addresses and host pointers, the per-page state bitmaps,
 * dirty tracking (dirty.h), the userfaultfd fault service (fault.h) and the
 * guest page-table walker (ptwalk.h). It knows nothing of devices, the VM
 * core or migration: it is handed a VM file descriptor and works on memory
 * alone.
 *
 * mem.h - guest RAM: a memfd, its host mapping, and the regions it is cut in.
 *
 * Ownership: a struct guest_mem is built by the main thread before any vCPU
 * runs and is immutable afterwards (a live-update destination swaps its
 * memfd for the source's before its vCPUs run: mem_back.h) (the bytes of guest RAM are of course
 * written by everyone: vCPUs, devices, the loader). Translation functions
 * are therefore lock-free and safe from any thread.
 */
#ifndef EPT_MEM_H
#define EPT_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ept/bitmap.h"

#define GUEST_MEM_MIN	   (16ULL << 20) /* 16 MiB */
#define GUEST_MEM_MAX	   (64ULL << 30) /* 64 GiB */
#define GUEST_MEM_MAX_REGS 2

/* One contiguous range of guest-physical RAM, backed by a slice of the memfd.
 */
struct mem_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t file_off; /* offset in the memfd */
	uint8_t *hva;	   /* host address of gpa */
	uint32_t slot;	   /* KVM memslot id */
};

/*
 * Per-page state, one bit per 4 KiB page, indexed by the page's offset in
 * the memfd (mem_gpa_to_page). Every bit operation is atomic; who sets and
 * who clears each bitmap:
 *   PRESENT    fault service / migration destination, once the page holds
 *              its final data (set only after the uffd ioctl succeeded)
 *   DIRTY      the dirty tracker ORs harvested pages in; migration clears
 *   HOST_DIRTY ept_mark_dirty() (device DMA, host writes); the dirty
 *              tracker moves it into DIRTY at each harvest
 *   SENT       migration source
 *   REQUESTED  fault service: a fetch for the page is in flight
 */
enum mem_page_state {
	MEM_PS_PRESENT,
	MEM_PS_DIRTY,
	MEM_PS_HOST_DIRTY,
	MEM_PS_SENT,
	MEM_PS_REQUESTED,
	MEM_PS_MAX
};

struct guest_mem {
	int memfd;
	uint8_t *base;	   /* mapping of the whole memfd */
	uint64_t size;	   /* bytes of RAM (excluding holes) */
	uint64_t nr_pages; /* size / 4 KiB */
	int nr_regions;
	struct mem_region regions[GUEST_MEM_MAX_REGS];
	struct bitmap state[MEM_PS_MAX];
};

/*
 * Pure layout computation: split ram_size bytes of RAM around the MMIO hole.
 * Fills regions[] (gpa, size, file_off, slot; hva left NULL) and returns the
 * number of regions, or -EINVAL when ram_size is outside
 * [GUEST_MEM_MIN, GUEST_MEM_MAX] or not a multiple of 4 KiB.
 */
int mem_layout(uint64_t ram_size, struct mem_region *regions, int max);

/*
 * Parse a size such as "512M", "1G", "2048" (MiB when there is no suffix,
 * as QEMU's -m) or "64K". Returns 0 or -EINVAL.
 */
int mem_parse_size(const char *s, uint64_t *out);

/* Create the memfd and its mapping; regions get their hva. */
int mem_create(struct guest_mem *m, uint64_t ram_size);
void mem_destroy(struct guest_mem *m);

/* Register every region as a KVM memslot on vm_fd (flags: KVM_MEM_*). */
int mem_register_slots(struct guest_mem *m, int vm_fd, uint32_t flags);

/* Host pointer for [gpa, gpa+len) if it lies wholly in one region, else NULL.
 */
void *mem_gpa_to_hva(const struct guest_mem *m, uint64_t gpa, uint64_t len);

/* Guest-physical address of a host pointer into RAM; -EFAULT if outside. */
int mem_hva_to_gpa(const struct guest_mem *m, const void *hva, uint64_t *gpa);

/* The region that holds gpa, or NULL. */
const struct mem_region *mem_find_region(const struct guest_mem *m,
					 uint64_t gpa);

/* Copy to/from guest RAM; -EFAULT when the range is not RAM. */
int mem_write(const struct guest_mem *m, uint64_t gpa, const void *src,
	      uint64_t len);
int mem_read(const struct guest_mem *m, uint64_t gpa, void *dst, uint64_t len);

/* Page index (memfd offset / 4 KiB) of gpa; -EFAULT if gpa is not RAM. */
int mem_gpa_to_page(const struct guest_mem *m, uint64_t gpa, uint64_t *page);
/* Guest-physical address of page index i. */
uint64_t mem_page_to_gpa(const struct guest_mem *m, uint64_t i);

/*
 * Record a host write to guest RAM (device DMA, read() into it): KVM's dirty
 * log never sees those, so every writer must call this. Any thread.
 */
void ept_mark_dirty(const struct guest_mem *m, uint64_t gpa, uint64_t len);

#endif /* EPT_MEM_H */
