/* SPDX-License-Identifier: MIT */
/*
 * boot.c - identity page tables and the boot-info page for test guests.
 *
 * Guests start in 64-bit mode, so paging must already be on: the VMM writes
 * a 4-level identity map with 4 KiB pages (2 MiB pages would make the dirty
 * log over-report, docs/kvm-host.md) at host memcpy speed, instead of letting
 * emulated ring-0 guest code spend seconds on it. Layout of low RAM:
 *
 *   0x0000  not mapped (catches NULL dereferences)
 *   0x1000  boot-info page
 *   1 MiB   the guest ELF image ... kernel_end
 *           free RAM (boot_info.free[0])
 *   top     page tables, up to the end of low RAM
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/page.h"
#include "vmm/boot.h"

#define PTE_P	      0x001ULL
#define PTE_W	      0x002ULL
#define PTE_U	      0x004ULL
#define PTE_PWT	      0x008ULL
#define PTE_PCD	      0x010ULL
#define PTE_ADDR_MASK 0x000ffffffffff000ULL

#define SZ_2M	(1ULL << 21)
#define SZ_1G	(1ULL << 30)
#define SZ_512G (1ULL << 39)

/* Page-table pages are handed out from [next, end) by a bump allocator. */
struct pgt_builder {
	const struct guest_mem *m;
	uint64_t pml4;
	uint64_t next;
	uint64_t end;
};

static uint64_t align_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) & ~(a - 1);
}

static uint64_t chunks(uint64_t start, uint64_t end, uint64_t size)
{
	return align_up(end, size) / size - start / size;
}

uint64_t boot_pgt_size(const struct guest_mem *m)
{
	uint64_t pages = 1; /* PML4 */
	uint64_t dev_end = GUEST_DEV_MMIO_BASE + GUEST_DEV_MMIO_SIZE;

	for (int i = 0; i < m->nr_regions; i++) {
		uint64_t s = m->regions[i].gpa;
		uint64_t e = s + m->regions[i].size;

		pages += chunks(s, e, SZ_512G) + chunks(s, e, SZ_1G) +
			 chunks(s, e, SZ_2M);
	}
	pages += chunks(GUEST_DEV_MMIO_BASE, dev_end, SZ_512G) +
		 chunks(GUEST_DEV_MMIO_BASE, dev_end, SZ_1G) +
		 chunks(GUEST_DEV_MMIO_BASE, dev_end, SZ_2M);
	return pages * PAGE_SIZE;
}

static uint64_t *pgt_hva(struct pgt_builder *b, uint64_t gpa)
{
	return mem_gpa_to_hva(b->m, gpa, PAGE_SIZE);
}

static int pgt_alloc(struct pgt_builder *b, uint64_t *gpa)
{
	uint64_t *p;

	if (b->next + PAGE_SIZE > b->end)
		return -ENOSPC;
	p = pgt_hva(b, b->next);
	if (!p)
		return -EFAULT;
	memset(p, 0, PAGE_SIZE);
	*gpa = b->next;
	b->next += PAGE_SIZE;
	return 0;
}

/* The next-level table behind entry idx of table, allocated on demand. */
static int pgt_next(struct pgt_builder *b, uint64_t table, unsigned int idx,
		   uint64_t *next)
{
	uint64_t *t = pgt_hva(b, table);
	int r;

	if (t[idx] & PTE_P) {
		*next = t[idx] & PTE_ADDR_MASK;
		return 0;
	}
	r = pgt_alloc(b, next);
	if (r)
		return r;
	t[idx] = *next | PTE_P | PTE_W | PTE_U;
	return 0;
}

/* The last-level table (PT) that maps va. */
static int pgt_leaf_table(struct pgt_builder *b, uint64_t va, uint64_t *pgt)
{
	uint64_t pdpt, pd;
	int r;

	r = pgt_next(b, b->pml4, (va >> 39) & 511, &pdpt);
	if (!r)
		r = pgt_next(b, pdpt, (va >> 30) & 511, &pd);
	if (!r)
		r = pgt_next(b, pd, (va >> 21) & 511, pgt);
	return r;
}

/* Identity-map [start, end) with 4 KiB pages and the given flags. */
static int pgt_map_range(struct pgt_builder *b, uint64_t start, uint64_t end,
			uint64_t flags)
{
	uint64_t *pgt = NULL;
	uint64_t pgt_gpa;
	int r;

	for (uint64_t a = start; a < end; a += PAGE_SIZE) {
		if (!pgt || (a & (SZ_2M - 1)) == 0) {
			r = pgt_leaf_table(b, a, &pgt_gpa);
			if (r)
				return r;
			pgt = pgt_hva(b, pgt_gpa);
		}
		pgt[(a >> 12) & 511] = a | flags;
	}
	return 0;
}

int boot_build_page_tables(const struct guest_mem *m, uint64_t pgt_base)
{
	struct pgt_builder b = {
		.m = m,
		.next = pgt_base,
		.end = pgt_base + boot_pgt_size(m),
	};
	uint64_t ram = PTE_P | PTE_W | PTE_U;
	int r;

	r = pgt_alloc(&b, &b.pml4);
	for (int i = 0; !r && i < m->nr_regions; i++) {
		uint64_t s = m->regions[i].gpa;

		/* Guest-physical page 0 stays unmapped. */
		if (s == 0)
			s = PAGE_SIZE;
		r = pgt_map_range(&b, s, m->regions[i].gpa + m->regions[i].size,
				 ram);
	}
	if (!r)
		r = pgt_map_range(&b, GUEST_DEV_MMIO_BASE,
				 GUEST_DEV_MMIO_BASE + GUEST_DEV_MMIO_SIZE,
				 ram | PTE_PWT | PTE_PCD);
	return r;
}

static void boot_fill_ranges(struct boot_info *bi, const struct guest_mem *m,
			     uint64_t free_start, uint64_t pgt_base)
{
	bi->nr_ranges = 0;
	if (free_start < pgt_base) {
		bi->free[0].start = free_start;
		bi->free[0].end = pgt_base;
		bi->nr_ranges = 1;
	}
	for (int i = 1; i < m->nr_regions; i++) {
		if (bi->nr_ranges >= GUEST_MAX_RANGES)
			break;
		bi->free[bi->nr_ranges].start = m->regions[i].gpa;
		bi->free[bi->nr_ranges].end =
			m->regions[i].gpa + m->regions[i].size;
		bi->nr_ranges++;
	}
}

int boot_write_guest(const struct guest_mem *m, const struct boot_params *p,
	       char *err, size_t errlen)
{
	const struct mem_region *low = &m->regions[0];
	uint64_t pgt_size = boot_pgt_size(m);
	uint64_t pgt_base = (low->size - pgt_size) & ~(PAGE_SIZE - 1);
	uint64_t free_start = align_up(p->kernel_end, PAGE_SIZE);
	struct boot_info *bi;
	size_t cl = p->cmdline ? strlen(p->cmdline) : 0;
	int r;

	if (cl >= GUEST_CMDLINE_MAX) {
		snprintf(err, errlen,
			 "guest command line is %zu bytes; at most %d fit", cl,
			 GUEST_CMDLINE_MAX - 1);
		return -E2BIG;
	}
	if (pgt_size >= low->size || pgt_base < free_start) {
		snprintf(err, errlen,
			 "guest RAM too small: kernel ends at 0x%llx and page "
			 "tables need %llu KiB below 0x%llx",
			 (unsigned long long)p->kernel_end,
			 (unsigned long long)(pgt_size >> 10),
			 (unsigned long long)low->size);
		return -ENOSPC;
	}
	r = boot_build_page_tables(m, pgt_base);
	if (r) {
		snprintf(err, errlen, "building page tables: %s", strerror(-r));
		return r;
	}
	bi = mem_gpa_to_hva(m, GUEST_BOOT_INFO_GPA, sizeof(*bi));
	if (!bi) {
		snprintf(err, errlen, "boot-info page is not in RAM");
		return -EFAULT;
	}
	memset(bi, 0, sizeof(*bi));
	bi->magic = BOOT_INFO_MAGIC;
	bi->version = BOOT_INFO_VERSION;
	bi->nr_cpus = p->nr_cpus;
	bi->ram_size = m->size;
	bi->tsc_khz = p->tsc_khz;
	bi->pgt_base = pgt_base;
	bi->pgt_size = pgt_size;
	bi->kernel_end = p->kernel_end;
	bi->dev_mmio_base = GUEST_DEV_MMIO_BASE;
	boot_fill_ranges(bi, m, free_start, pgt_base);
	if (cl)
		memcpy(bi->cmdline, p->cmdline, cl);
	return 0;
}
