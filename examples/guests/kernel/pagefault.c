/* SPDX-License-Identifier: MIT */
/*
 * pagefault.c - the #PF handler: demand paging for one registered region.
 *
 * Ring 3 registers a virtual region and a pool of never-touched RAM with
 * SYS_PF_POOL (lib/syscall_nr.h). A not-present fault from ring 3 inside
 * the region is resolved by mapping the faulting page P|W|U to the next
 * pool page; page tables missing on the way down (PDPT, PD, PT) are taken
 * from the pool as well. The handler then returns and trap_common's iretq
 * retries the access, which is the first access to that guest-physical
 * page and so faults in the host (the second level): the handler never
 * touches the data page. There is no invlpg: no TLB holds a not-present
 * translation, and in the host's emulator it costs ~10 us per fault.
 * Every other #PF panics with CR2 in the message, as before.
 *
 * A new table page is cleared before it is linked. Fresh RAM does read as
 * zeros, but the pool is only as fresh as ring 3 says, and a table with
 * stale entries would map garbage. The clear is one `rep stosq` (512
 * emulated iterations, ~0.4 ms; `rep stosb` took 2.4 ms), paid once per
 * 512 pages. Tables are reached through the VMM's identity map (VA == GPA).
 * The state needs no lock: only CPU 0 runs workloads, the others halt.
 */
#include "kernel/kernel.h"
#include "lib/syscall_nr.h"
#include "lib/x86.h"

#define PTE_ADDR_MASK 0x000ffffffffff000ULL

#define PF_ERR_P 0x1 /* the page was present: a protection fault */
#define PF_ERR_U 0x4 /* the access came from ring 3 */

#define PT_LEVELS 4

static struct {
	uint64_t va_start, va_end; /* the region; empty when va_end == 0 */
	uint64_t next, end;	   /* the pool: GPAs still to hand out */
	uint64_t faults;	   /* resolved since the last SYS_PF_POOL */
} pf;

static bool pf_aligned(uint64_t v)
{
	return (v & (GUEST_PAGE_SIZE - 1)) == 0;
}

uint64_t pagefault_set_pool(uint64_t pool, uint64_t pool_pages, uint64_t va,
			    uint64_t pages)
{
	uint64_t va_end, pool_end;

	if (!pages) {
		pf.va_start = pf.va_end = pf.next = pf.end = 0;
		return 0;
	}
	if (!pf_aligned(pool) || !pf_aligned(va) || !pool ||
	    pool_pages > SYS_PF_REGION_END >> 12 ||
	    pages > SYS_PF_REGION_END >> 12)
		return SYS_EINVAL;
	va_end = va + pages * GUEST_PAGE_SIZE;
	pool_end = pool + pool_pages * GUEST_PAGE_SIZE;
	if (va < SYS_PF_REGION_MIN || va_end > SYS_PF_REGION_END ||
	    pool_end < pool)
		return SYS_EINVAL;
	pf.va_start = va;
	pf.va_end = va_end;
	pf.next = pool;
	pf.end = pool_end;
	pf.faults = 0;
	return 0;
}

uint64_t pagefault_count(void)
{
	return pf.faults;
}

/* The next pool page, or 0 when the pool is used up. */
static uint64_t pf_take(void)
{
	uint64_t p = pf.next;

	if (p >= pf.end)
		return 0;
	pf.next += GUEST_PAGE_SIZE;
	return p;
}

/* Map va to a pool page, with tables from the pool; NULL or what failed. */
static const char *pf_map(uint64_t va)
{
	uint64_t *t = (uint64_t *)(x86_read_cr3() & PTE_ADDR_MASK);
	uint64_t *e, p;
	int level;

	for (level = PT_LEVELS - 1; level > 0; level--) {
		e = &t[(va >> (12 + 9 * level)) & 511];
		if (!(*e & PTE_P)) {
			p = pf_take();
			if (!p)
				return "pool used up";
			x86_clear_page(p);
			*e = p | PTE_P | PTE_W | PTE_U;
		}
		t = (uint64_t *)(*e & PTE_ADDR_MASK);
	}
	e = &t[(va >> 12) & 511];
	if (*e & PTE_P)
		return "page already mapped";
	p = pf_take();
	if (!p)
		return "pool used up";
	*e = p | PTE_P | PTE_W | PTE_U;
	return NULL;
}

void pagefault_handle(struct trap_frame *f)
{
	uint64_t va = x86_read_cr2();
	const char *err;

	if (va < pf.va_start || va >= pf.va_end ||
	    (f->error & (PF_ERR_P | PF_ERR_U)) != PF_ERR_U)
		trap_panic(f);
	err = pf_map(va);
	if (err) {
		uart_printf("guest: #PF at 0x%lx: %s\n", va, err);
		trap_panic(f);
	}
	pf.faults++;
}
