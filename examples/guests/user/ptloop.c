/* SPDX-License-Identifier: MIT */
/*
 * ptloop.c - the `ptloop [--slots N] [--ms T]` workload: page tables that
 * point back at themselves, for the host's page-table walker (the
 * post-copy push in order "accessed" walks every vCPU's tables from CR3).
 *
 * The VMM's identity map maps all RAM present|RW|user, its own page tables
 * included (VA == GPA), so ring 3 edits the live PML4 at
 * boot_info->pgt_base (the CR3 the guest never changes) directly:
 *
 *   - PML4[511] -> the PML4 itself: the classic recursive slot;
 *   - a loop table L, a page of fresh RAM whose 512 entries all point at L
 *     (a cycle at every level, and one sub-table shared under every entry),
 *     linked from N PML4 slots from 256 up (the high half: the identity
 *     map is slot 0, pagefault's regions slots 128..255).
 *
 * Every entry is present|RW|accessed, supervisor only. A walker that
 * follows every link reads L 512^3 times under each of the N slots (some
 * 10^10 entries for N = 255); one that reads each table once reads three
 * pages. Nothing ever accesses an address through these entries, and the
 * slots were not present before (a slot in use: one line, exit 2), so no
 * TLB or paging-structure cache can hold a stale translation. The entries
 * stay when the workload ends. Then it ticks, like heartbeat, until
 * STOP_WORKLOAD or T ms (T = 0: at once, so that a later workload, e.g.
 * dirty, runs with the loops in place).
 */
#include "lib/testdev.h"
#include "user/user.h"
#include "user/workload.h"

enum { PTL_SLOTS, PTL_MS };

#define PTL_P	       0x001ULL
#define PTL_W	       0x002ULL
#define PTL_A	       0x020ULL
#define PTL_ENTRY(gpa) ((gpa) | PTL_P | PTL_W | PTL_A)
#define PTL_FIRST_SLOT 256
#define PTL_SELF_SLOT  511
#define PTL_MAX_SLOTS  (PTL_SELF_SLOT - PTL_FIRST_SLOT)
#define PTL_ENTRIES    512

static const struct wl_flag ptloop_flags[] = {
	[PTL_SLOTS] = {.name = "slots", .min = 0, .max = PTL_MAX_SLOTS},
	[PTL_MS] = {.name = "ms", .min = 0, .max = 1ULL << 32},
	{0},
};

/* Exit 2 unless PML4 slots [first, first + n) are all not present. */
static void ptloop_check_free(volatile uint64_t *pml4, uint64_t first,
			      uint64_t n)
{
	for (uint64_t i = first; i < first + n; i++)
		if (pml4[i] & PTL_P) {
			console_printf("ptloop: PML4 slot %lu is in use "
				       "(0x%lx)\n",
				       i, pml4[i]);
			guest_exit(GUEST_EXIT_USAGE);
		}
}

static void ptloop_install(uint64_t slots)
{
	const struct boot_info *bi =
		(const struct boot_info *)(uintptr_t)GUEST_BOOT_INFO_GPA;
	volatile uint64_t *pml4 = (volatile uint64_t *)(uintptr_t)bi->pgt_base;
	volatile uint64_t *loop = mem_alloc_fresh(GUEST_PAGE_SIZE);
	uint64_t l = (uint64_t)(uintptr_t)loop;

	if (!loop) {
		console_printf("ptloop: no free RAM for the loop table\n");
		guest_exit(GUEST_EXIT_USAGE);
	}
	ptloop_check_free(pml4, PTL_FIRST_SLOT, slots);
	ptloop_check_free(pml4, PTL_SELF_SLOT, 1);
	for (int i = 0; i < PTL_ENTRIES; i++)
		loop[i] = PTL_ENTRY(l);
	for (uint64_t i = PTL_FIRST_SLOT; i < PTL_FIRST_SLOT + slots; i++)
		pml4[i] = PTL_ENTRY(l);
	pml4[PTL_SELF_SLOT] = PTL_ENTRY(bi->pgt_base);
	console_printf("ptloop: PML4 at 0x%lx, slot %d -> itself, %lu slots "
		       "from %d -> loop table at 0x%lx\n",
		       bi->pgt_base, PTL_SELF_SLOT, slots, PTL_FIRST_SLOT, l);
}

static void ptloop_run(const struct wl_call *c)
{
	ptloop_install(c->given[PTL_SLOTS] ? c->val[PTL_SLOTS] : PTL_MAX_SLOTS);
	heartbeat_spin(c->given[PTL_MS], c->val[PTL_MS]);
}

const struct workload wl_ptloop = {
	.name = "ptloop",
	.flags = ptloop_flags,
	.run = ptloop_run,
};
