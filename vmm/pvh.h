/* SPDX-License-Identifier: MIT */
/*
 * pvh.h - the PVH boot ABI (Xen's "HVM direct boot", which Linux, FreeBSD
 * and others implement for x86 VMMs): an ELF kernel names its 32-bit entry
 * in a XEN_ELFNOTE_PHYS32_ENTRY note; the loader puts its PT_LOAD segments
 * at their physical addresses and enters in 32-bit protected mode, paging
 * off, flat segments, EBX = the guest-physical address of struct
 * hvm_start_info (version 1: with the memory map).
 *
 * pvh_find_entry() and pvh_build_info() are pure (buffers in, buffers out),
 * so the unit tests check them without KVM; linux_boot.c writes the result
 * into guest RAM at LINUX_START_INFO_GPA.
 */
#ifndef VMM_PVH_H
#define VMM_PVH_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/linux_boot.h"

#define PVH_NOTE_PHYS32_ENTRY 18 /* XEN_ELFNOTE_PHYS32_ENTRY */
#define PVH_START_MAGIC	      0x336ec578U
#define PVH_START_VERSION     1

/* The structures as the guest reads them (the PVH ABI, version 1). */
struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

/* Offsets inside the start-info page. */
#define PVH_MODLIST_OFF 0x40
#define PVH_MEMMAP_OFF	0x80

/*
 * Look for the PHYS32_ENTRY note in the PT_NOTE segments of an ELF64 file.
 * Returns 1 with *entry set, 0 when img is no ELF64 file or carries no such
 * note, -ENOEXEC with one line in err when the note is malformed (a
 * descriptor that is not 4 or 8 bytes, an entry at or above 4 GiB, a note
 * segment outside the file).
 */
int pvh_find_entry(const void *img, size_t len, uint32_t *entry, char *err,
		   size_t errlen);

struct pvh_info_args {
	const struct linux_e820 *e820;
	int nr_e820;
	uint64_t cmdline_gpa;
	uint64_t rsdp_gpa;
	uint64_t initrd_gpa, initrd_size; /* size 0: no module */
};

/*
 * Fill page (PAGE_SIZE bytes, to be placed at LINUX_START_INFO_GPA) with
 * the start info, the module list and the memory map.
 */
void pvh_build_info(const struct pvh_info_args *a, uint8_t *page);

#endif /* VMM_PVH_H */
