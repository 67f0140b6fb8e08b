/* SPDX-License-Identifier: MIT */
/*
 * mb_boot.c - what a VMM does for us, done by the guest itself when a
 * Multiboot loader started it (start32.S; only guest-mb.elf links this).
 *
 * mb_boot() runs once, on the boot CPU, in 64-bit mode on the bootstrap
 * 2 MiB map of [0, 4 GiB). It snapshots the Multiboot information first
 * (the loader may have put it anywhere, even where the tables go), then
 * does what vmm/boot.c does on the host: identity page tables with 4 KiB
 * pages over every RAM range of the memory map (page 0 left out) and the
 * device window (uncached), all user pages, at the top of the RAM range
 * that holds the image; and the boot-info page. Page tables are written
 * here at ring-0 emulator speed, a few us per entry, and timed: the
 * console line "mb_boot: ..." gives the TSC cycles from _start32 to each
 * step. It takes the TSC frequency from kvmclock (KVM's own scale), else
 * measures it against the PIT (channel 2, 10 ms runs), asks fw_cfg how
 * many CPUs the machine has (only this one runs: there is no AP start-up
 * in this guest, so nr_cpus is 1), and probes the test device;
 * without it BOOT_INFO_F_NO_TESTDEV sends the console to the UART and the
 * heartbeat to the heartbeat page only. Anything it cannot work with is a
 * line on the UART and a parked CPU: there is no one else to tell.
 */
#include "kernel/kernel.h"
#include "lib/string.h"
#include "lib/testdev.h"
#include "lib/x86.h"

#define MB_IF_MEMORY  (1U << 0)
#define MB_IF_CMDLINE (1U << 2)
#define MB_IF_MMAP    (1U << 6)
#define MB_MMAP_RAM   1
#define MB_MAX_RAM    8 /* RAM ranges kept from the memory map */

#define PTE_ADDR_MASK 0x000ffffffffff000ULL
#define SZ_1M	      (1ULL << 20)
#define SZ_2M	      (1ULL << 21)
#define SZ_1G	      (1ULL << 30)
#define SZ_512G	      (1ULL << 39)

#define FW_CFG_PORT_SEL	 0x510
#define FW_CFG_PORT_DATA 0x511
#define FW_CFG_SIGNATURE 0x00
#define FW_CFG_NB_CPUS	 0x05

#define PIT_HZ	       1193182ULL
#define PIT_LATCH      (PIT_HZ / 100) /* 10 ms */
#define PIT_CH2	       0x42
#define PIT_CMD	       0x43
#define PIT_CH2_MODE0  0xb0 /* channel 2, lobyte/hibyte, mode 0 */
#define PORT_B	       0x61 /* bit 0: gate 2, bit 1: speaker, bit 5: OUT2 */
#define PIT_SPIN_LIMIT (1ULL << 33) /* TSC cycles: no PIT after all */
#define PIT_RUNS       5

#define KVM_CPUID_SIGNATURE	 0x40000000
#define KVM_CPUID_FEATURES	 0x40000001
#define KVM_FEATURE_CLOCKSOURCE2 (1U << 3)
#define MSR_KVM_SYSTEM_TIME_NEW	 0x4b564d01
#define KVMCLOCK_TRIES		 1000

/* The part of the Multiboot information structure read here. */
struct mb_info {
	uint32_t flags;
	uint32_t mem_lower; /* KiB from 0 */
	uint32_t mem_upper; /* KiB from 1 MiB */
	uint32_t boot_device;
	uint32_t cmdline;
	uint32_t mods[2];
	uint32_t syms[4];
	uint32_t mmap_length;
	uint32_t mmap_addr;
};

struct mb_mmap_entry {
	uint32_t size; /* bytes after this field */
	uint64_t addr;
	uint64_t len;
	uint32_t type;
} __attribute__((packed));

/* KVM's per-CPU time info (kvmclock), of which only the TSC scale is used. */
struct mb_pvclock {
	volatile uint32_t version; /* odd while the host updates it */
	uint32_t pad0;
	uint64_t tsc_timestamp;
	uint64_t system_time;
	volatile uint32_t tsc_to_system_mul;
	volatile int8_t tsc_shift;
	uint8_t flags;
	uint8_t pad[2];
} __attribute__((aligned(32)));

uint64_t mb_tsc_start; /* written by _start32 */
static struct mb_pvclock mb_pvclock;

/* The snapshot of the loader's information, and the table allocator. */
static struct {
	uint32_t nr_ram;
	struct boot_mem_range ram[MB_MAX_RAM];
	char cmdline[GUEST_CMDLINE_MAX];
	uint64_t pml4, next, end; /* page-table pages: [next, end) left */
} mb;

extern char __kernel_end[];

static __attribute__((noreturn)) void mb_fail(const char *what)
{
	uart_printf("mb_boot: %s; stopping\n", what);
	x86_park();
}

static void mb_add_ram(uint64_t start, uint64_t end)
{
	start = (start + GUEST_PAGE_SIZE - 1) & ~(GUEST_PAGE_SIZE - 1);
	end &= ~(GUEST_PAGE_SIZE - 1);
	if (start < end && mb.nr_ram < MB_MAX_RAM)
		mb.ram[mb.nr_ram++] = (struct boot_mem_range){start, end};
}

/* The command line without its first word (the image's name). */
static void mb_copy_cmdline(const char *s)
{
	size_t n = 0;

	while (*s && *s != ' ')
		s++;
	while (*s == ' ')
		s++;
	while (s[n] && n < GUEST_CMDLINE_MAX - 1) {
		mb.cmdline[n] = s[n];
		n++;
	}
}

static void mb_read_info(const struct mb_info *mi)
{
	uint64_t p, end;

	if (mi->flags & MB_IF_MMAP) {
		p = mi->mmap_addr;
		end = p + mi->mmap_length;
		while (p < end) {
			const struct mb_mmap_entry *e = (const void *)p;

			if (e->type == MB_MMAP_RAM)
				mb_add_ram(e->addr, e->addr + e->len);
			p += e->size + sizeof(e->size);
		}
	} else if (mi->flags & MB_IF_MEMORY) {
		mb_add_ram(0, (uint64_t)mi->mem_lower << 10);
		mb_add_ram(SZ_1M, SZ_1M + ((uint64_t)mi->mem_upper << 10));
	}
	if (mi->flags & MB_IF_CMDLINE)
		mb_copy_cmdline((const char *)(uint64_t)mi->cmdline);
}

static uint64_t mb_chunks(uint64_t start, uint64_t end, uint64_t size)
{
	return (end + size - 1) / size - start / size;
}

/* Table pages for an identity map of [start, end): PDPTs, PDs, PTs. */
static uint64_t mb_pgt_pages(uint64_t start, uint64_t end)
{
	return mb_chunks(start, end, SZ_512G) + mb_chunks(start, end, SZ_1G) +
	       mb_chunks(start, end, SZ_2M);
}

static uint64_t *mb_alloc(void)
{
	uint64_t p = mb.next;

	if (p >= mb.end)
		mb_fail("page-table area used up");
	mb.next += GUEST_PAGE_SIZE;
	return (uint64_t *)p;
}

/* The table behind entry idx of t, allocated and cleared on demand. */
static uint64_t *mb_next(uint64_t *t, unsigned int idx)
{
	uint64_t *n;

	if (t[idx] & PTE_P)
		return (uint64_t *)(t[idx] & PTE_ADDR_MASK);
	n = mb_alloc();
	x86_clear_page((uint64_t)n);
	t[idx] = (uint64_t)n | PTE_P | PTE_W | PTE_U;
	return n;
}

/*
 * The page table for the 2 MiB chunk at va. A new one that [va, stop) will
 * fill completely is not cleared first (most of them): clearing costs as
 * much as filling in the emulator.
 */
static uint64_t *mb_leaf(uint64_t va, uint64_t stop)
{
	uint64_t *pdpt = mb_next((uint64_t *)mb.pml4, (va >> 39) & 511);
	uint64_t *pd = mb_next(pdpt, (va >> 30) & 511);
	unsigned int idx = (va >> 21) & 511;
	uint64_t *pt;

	if (pd[idx] & PTE_P)
		return (uint64_t *)(pd[idx] & PTE_ADDR_MASK);
	pt = mb_alloc();
	if ((va & (SZ_2M - 1)) || stop - va != SZ_2M)
		x86_clear_page((uint64_t)pt);
	pd[idx] = (uint64_t)pt | PTE_P | PTE_W | PTE_U;
	return pt;
}

static void mb_map(uint64_t start, uint64_t end, uint64_t flags)
{
	uint64_t va = start, stop, *pte;

	while (va < end) {
		stop = (va | (SZ_2M - 1)) + 1;
		if (stop > end)
			stop = end;
		pte = mb_leaf(va, stop) + ((va >> 12) & 511);
		for (; va < stop; va += GUEST_PAGE_SIZE)
			*pte++ = va | flags;
	}
}

/* The RAM range that holds the image: its top takes the tables. */
static const struct boot_mem_range *mb_low_range(void)
{
	uint32_t i;

	for (i = 0; i < mb.nr_ram; i++)
		if (mb.ram[i].start <= GUEST_KERNEL_BASE &&
		    mb.ram[i].end > (uint64_t)__kernel_end)
			return &mb.ram[i];
	mb_fail("no RAM range holds the image (memory map missing?)");
}

static void mb_build_tables(struct boot_info *bi)
{
	const struct boot_mem_range *low = mb_low_range();
	uint64_t kend = (uint64_t)__kernel_end, pages = 1, ram = 0;
	uint64_t dev_end = GUEST_DEV_MMIO_BASE + GUEST_DEV_MMIO_SIZE;
	uint32_t i;

	for (i = 0; i < mb.nr_ram; i++)
		pages += mb_pgt_pages(mb.ram[i].start, mb.ram[i].end);
	pages += mb_pgt_pages(GUEST_DEV_MMIO_BASE, dev_end);
	bi->pgt_size = pages * GUEST_PAGE_SIZE;
	bi->pgt_base = low->end - bi->pgt_size;
	if (low->end - low->start <= bi->pgt_size || bi->pgt_base < kend)
		mb_fail("not enough RAM above the image for the page tables");
	mb.next = bi->pgt_base;
	mb.end = low->end;
	mb.pml4 = (uint64_t)mb_alloc();
	x86_clear_page(mb.pml4);
	for (i = 0; i < mb.nr_ram; i++) {
		uint64_t s = mb.ram[i].start;

		mb_map(s ? s : GUEST_PAGE_SIZE, mb.ram[i].end,
		       PTE_P | PTE_W | PTE_U);
		ram += mb.ram[i].end - s;
	}
	mb_map(GUEST_DEV_MMIO_BASE, dev_end,
	       PTE_P | PTE_W | PTE_U | PTE_PWT | PTE_PCD);
	x86_write_cr3(mb.pml4);
	bi->ram_size = ram;
}

/*
 * Free RAM, as vmm/boot.c lists it: from the image's end to the tables,
 * then every RAM range above the low one. Low memory (below 1 MiB) holds
 * the boot-info and heartbeat pages and stays out.
 */
static void mb_fill_ranges(struct boot_info *bi)
{
	uint64_t kend = (uint64_t)__kernel_end;
	uint32_t i;

	bi->free[0] = (struct boot_mem_range){kend, bi->pgt_base};
	bi->nr_ranges = 1;
	for (i = 0; i < mb.nr_ram && bi->nr_ranges < GUEST_MAX_RANGES; i++)
		if (mb.ram[i].start > bi->pgt_base)
			bi->free[bi->nr_ranges++] = mb.ram[i];
}

/*
 * One run: TSC cycles while the PIT counts PIT_LATCH ticks, 0 without a
 * PIT. The start lies between the TSC reads around the write that loads
 * the count, the end between the reads around the poll that saw OUT2 go
 * high; both are taken as midpoints, so the error is at most the longer
 * of those two gaps, returned in *err. A gap is long when the host
 * preempted the vCPU (or the VMM's thread serving the port) right there,
 * which can move the result either way; preemptions in between do not
 * matter.
 */
static uint64_t mb_pit_run(uint64_t *err)
{
	uint64_t ta, tb, prev, now;
	bool high;

	x86_outb(PORT_B, (x86_inb(PORT_B) & ~0x02) | 0x01);
	x86_outb(PIT_CMD, PIT_CH2_MODE0);
	x86_outb(PIT_CH2, PIT_LATCH & 0xff);
	ta = x86_rdtsc();
	x86_outb(PIT_CH2, PIT_LATCH >> 8);
	tb = prev = x86_rdtsc();
	do {
		high = x86_inb(PORT_B) & 0x20;
		now = x86_rdtsc();
		if (now - ta > PIT_SPIN_LIMIT)
			return 0;
		if (!high)
			prev = now;
	} while (!high);
	*err = tb - ta > now - prev ? tb - ta : now - prev;
	return (prev + now) / 2 - (ta + tb) / 2;
}

/*
 * The TSC frequency from the best of up to PIT_RUNS runs (the one with the
 * smallest error bound; the first within 0.5% ends the search), or 0 when
 * the ports have no PIT behind them (OUT2 high at once, or never).
 */
static uint64_t mb_pit_tsc_khz(uint64_t *err_khz)
{
	uint64_t cycles, err, best = 0, best_err = 0, khz;
	int i;

	for (i = 0; i < PIT_RUNS; i++) {
		cycles = mb_pit_run(&err);
		if (!cycles)
			return 0;
		if (!best || err * best < best_err * cycles) {
			best = cycles;
			best_err = err;
		}
		if (best_err * 200 < best)
			break;
	}
	khz = best * PIT_HZ / (PIT_LATCH * 1000);
	*err_khz = best_err * PIT_HZ / (PIT_LATCH * 1000);
	return khz >= 100000 && khz <= 20000000 ? khz : 0;
}

/*
 * The TSC frequency KVM itself uses, from the kvmclock scale (as Linux's
 * pvclock_tsc_khz()), or 0 without kvmclock. The page is registered only
 * for this read and unregistered at once, so the host stops writing it.
 */
static uint64_t mb_kvmclock_khz(void)
{
	uint32_t r[4], mul = 0, v = 1;
	uint64_t khz;
	int8_t shift = 0;
	int i;

	x86_cpuid(KVM_CPUID_SIGNATURE, r);
	if (r[1] != 0x4b4d564b || r[2] != 0x564b4d56 || r[3] != 0x4d ||
	    r[0] < KVM_CPUID_FEATURES) /* "KVMKVMKVM\0\0\0" */
		return 0;
	x86_cpuid(KVM_CPUID_FEATURES, r);
	if (!(r[0] & KVM_FEATURE_CLOCKSOURCE2))
		return 0;
	x86_wrmsr(MSR_KVM_SYSTEM_TIME_NEW, (uint64_t)&mb_pvclock | 1);
	for (i = 0; i < KVMCLOCK_TRIES && ((v & 1) || !mul); i++) {
		v = mb_pvclock.version;
		mul = mb_pvclock.tsc_to_system_mul;
		shift = mb_pvclock.tsc_shift;
		if (mb_pvclock.version != v)
			v = 1;
	}
	x86_wrmsr(MSR_KVM_SYSTEM_TIME_NEW, 0);
	if (!mul || (v & 1))
		return 0;
	khz = (1000000ULL << 32) / mul;
	return shift < 0 ? khz << -shift : khz >> shift;
}

/* kvmclock's word when there is one, else the PIT's; which in *src. */
static uint64_t mb_tsc_khz(uint64_t *err_khz, const char **src)
{
	uint64_t khz = mb_kvmclock_khz();

	*src = "kvmclock";
	*err_khz = 0;
	if (khz)
		return khz;
	*src = "PIT";
	return mb_pit_tsc_khz(err_khz);
}

/* fw_cfg's CPU count, or 0 without fw_cfg. */
static uint32_t mb_fw_cfg_cpus(void)
{
	static const char sig[4] = "QEMU";
	uint32_t n;
	int i;

	x86_outw(FW_CFG_PORT_SEL, FW_CFG_SIGNATURE);
	for (i = 0; i < 4; i++)
		if (x86_inb(FW_CFG_PORT_DATA) != (uint8_t)sig[i])
			return 0;
	x86_outw(FW_CFG_PORT_SEL, FW_CFG_NB_CPUS);
	n = x86_inb(FW_CFG_PORT_DATA);
	return n | (uint32_t)x86_inb(FW_CFG_PORT_DATA) << 8;
}

static uint64_t mb_us(uint64_t cycles, uint64_t khz)
{
	return khz ? cycles * 1000 / khz : 0;
}

struct boot_info *mb_boot(uint32_t info)
{
	struct boot_info *bi = (struct boot_info *)GUEST_BOOT_INFO_GPA;
	uint64_t t64 = x86_rdtsc(), tpgt, tend, khz_err = 0;
	const char *khz_src;
	uint32_t cpus;
	bool testdev;

	mb_read_info((const struct mb_info *)(uint64_t)info);
	memset(bi, 0, sizeof(*bi));
	mb_build_tables(bi);
	tpgt = x86_rdtsc();
	bi->magic = BOOT_INFO_MAGIC;
	bi->version = BOOT_INFO_VERSION;
	bi->nr_cpus = 1;
	bi->kernel_end = (uint64_t)__kernel_end;
	bi->dev_mmio_base = GUEST_DEV_MMIO_BASE;
	mb_fill_ranges(bi);
	memcpy(bi->cmdline, mb.cmdline, sizeof(bi->cmdline));
	testdev = mmio_read32(TESTDEV_GPA + TESTDEV_REG_ID) == TESTDEV_ID;
	bi->flags =
		BOOT_INFO_F_MULTIBOOT | (testdev ? 0 : BOOT_INFO_F_NO_TESTDEV);
	cpus = mb_fw_cfg_cpus();
	bi->tsc_khz = mb_tsc_khz(&khz_err, &khz_src);
	tend = x86_rdtsc();
	uart_printf("mb_boot: %lu MiB RAM in %u ranges, %lu KiB of 4 KiB page "
		    "tables at 0x%lx\n",
		    bi->ram_size >> 20, mb.nr_ram, bi->pgt_size >> 10,
		    bi->pgt_base);
	uart_printf("mb_boot: TSC %lu kHz (%s +-%lu), test device %s, fw_cfg "
		    "CPUs %u (only CPU 0 runs)\n",
		    bi->tsc_khz, khz_src, khz_err,
		    testdev ? "present" : "absent", cpus);
	uart_printf("mb_boot: TSC cycles from _start32: 64-bit entry %lu, "
		    "tables built %lu (%lu us), boot info done %lu (%lu us)\n",
		    t64 - mb_tsc_start, tpgt - mb_tsc_start,
		    mb_us(tpgt - t64, bi->tsc_khz), tend - mb_tsc_start,
		    mb_us(tend - mb_tsc_start, bi->tsc_khz));
	return bi;
}
