/* SPDX-License-Identifier: MIT */
/*
 * linux_boot.h - booting a Linux kernel by its own protocols: an ELF
 * vmlinux through its PVH entry (vmm/pvh.c) or a bzImage through the
 * 64-bit boot protocol (vmm/bzimage.c). This file holds what both share:
 * the guest-physical layout of what the loader writes, the e820 memory map
 * of our RAM layout, the placement of the initrd, and the VM-level glue
 * (vm_load_linux, vm_boot_linux in linux_boot.c).
 *
 * Guest-physical layout (all in the first 640 KiB, which the e820 map
 * reports as RAM: Linux reserves what it finds in use by the boot data
 * itself, from the pointers it is handed):
 *   page 0                    never written (real-mode IVT / BDA area)
 *   LINUX_GDT_GPA             bzImage: the boot GDT (null, null, code64
 *                             at 0x10 = __BOOT_CS, data at 0x18)
 *   LINUX_START_INFO_GPA      PVH: struct hvm_start_info, the module list
 *                             and the memory map, one page
 *   LINUX_ZERO_PAGE_GPA       bzImage: struct boot_params (the zero page)
 *   LINUX_PGT_GPA             bzImage: identity page tables for the first
 *                             4 GiB with 2 MiB pages (PML4, PDPT, 4 PDs)
 *   LINUX_CMDLINE_GPA         the command line, NUL-terminated
 *   [0xa0000, 0x100000)       reserved in the map; ACPI tables at 0xe0000
 *   kernel                    PVH: the PT_LOAD segments at their p_paddr;
 *                             bzImage: the protected-mode kernel at its
 *                             pref_address, init_size bytes reserved
 *   initrd                    page-aligned, as high as possible below the
 *                             end of low RAM (and the kernel's
 *                             initrd_addr_max), above the kernel
 *   [GUEST_MMIO_HOLE_BASE, 4 GiB)  reserved in the map (LAPIC, IOAPIC,
 *                             our devices); RAM above 3 GiB moves to 4 GiB
 *
 * Threads: main thread, before any vCPU runs.
 */
#ifndef VMM_LINUX_BOOT_H
#define VMM_LINUX_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "ept/mem.h"

#define LINUX_GDT_GPA	     0x500ULL
#define LINUX_START_INFO_GPA 0x6000ULL
#define LINUX_ZERO_PAGE_GPA  0x7000ULL
#define LINUX_PGT_GPA	     0x9000ULL
#define LINUX_PGT_PAGES	     6
#define LINUX_CMDLINE_GPA    0x20000ULL
#define LINUX_CMDLINE_MAX    2048 /* x86 COMMAND_LINE_SIZE, NUL included */
#define LINUX_LOW_END	     0xa0000ULL
#define LINUX_HIGH_START     0x100000ULL

#define LINUX_E820_RAM	    1
#define LINUX_E820_RESERVED 2
#define LINUX_E820_MAX	    (GUEST_MEM_MAX_REGS + 3)

enum linux_kind {
	LINUX_NONE,
	LINUX_PVH,     /* ELF vmlinux with a XEN_ELFNOTE_PHYS32_ENTRY note */
	LINUX_BZIMAGE, /* "HdrS" setup header */
};

struct linux_e820 {
	uint64_t addr, size;
	uint32_t type;
};

/* What the loader leaves for the vCPU set-up. */
struct linux_entry {
	enum linux_kind kind;
	uint64_t entry; /* PVH: 32-bit entry; bzImage: the 64-bit entry */
	uint64_t info; /* PVH: hvm_start_info (EBX); bzImage: zero page (RSI) */
	uint64_t kernel_start, kernel_end;
	uint64_t initrd, initrd_size;
};

/* Which boot protocol img speaks: LINUX_BZIMAGE, LINUX_PVH or LINUX_NONE. */
enum linux_kind linux_probe(const void *img, size_t len);

/*
 * The e820 map of m: [0, 640 KiB) RAM, [640 KiB, 1 MiB) reserved, the rest
 * of each RAM region, and the MMIO hole reserved. Returns the number of
 * entries (at most LINUX_E820_MAX).
 */
int linux_e820(const struct guest_mem *m, struct linux_e820 *e);

/*
 * Place size bytes of initrd page-aligned as high as possible in the RAM
 * region that holds 1 MiB, at or above kernel_end and ending at or below
 * max_end. -ENOSPC with one line in err when it does not fit.
 */
int linux_place_initrd(const struct guest_mem *m, uint64_t kernel_end,
		       uint64_t max_end, uint64_t size, uint64_t *gpa,
		       char *err, size_t errlen);

struct vm;

/*
 * Load img (kind from linux_probe) and cfg.initrd/cfg.append into the VM's
 * RAM with ACPI tables, filling vm->lx. err names the file and the problem.
 */
int vm_load_linux(struct vm *vm, enum linux_kind kind, const uint8_t *img,
		  size_t len, char *err, size_t errlen);

/* The BSP at the kernel's entry; every AP waits for INIT/SIPI. */
int vm_boot_linux(struct vm *vm, char *err, size_t errlen);

#endif /* VMM_LINUX_BOOT_H */
