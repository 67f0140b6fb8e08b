/* SPDX-License-Identifier: MIT */
/*
 * multiboot.h - the Multiboot (v1) loader: ELF32 i386 images such as the
 * kvm-unit-tests x86 .flat files.
 *
 * multiboot_probe() looks for the header (magic 0x1BADB002, valid checksum,
 * 4-byte aligned, in the first MULTIBOOT_SEARCH bytes). multiboot_parse() is
 * pure: it validates the header flags and the ELF32 program headers against
 * the file alone. multiboot_load() checks the segments against guest RAM,
 * copies them (p_filesz bytes at p_paddr, zeroes up to p_memsz), then writes
 * the Multiboot information structure, its memory map, the command line
 * "<name> <append>", the optional module and its string into one area of
 * free RAM outside every segment.
 *
 * Guest-physical layout the loader honours:
 *   page 0                    never written (the guest's AP trampoline);
 *                             a segment overlapping it is refused
 *   [0xa0000, 0x100000)       reserved in the memory map (legacy video and
 *                             BIOS hole; the VMM's ACPI tables live at
 *                             0xe0000); a segment overlapping it is refused
 *   info area                 the first page-aligned gap of
 *                             [MULTIBOOT_LOW_START, MULTIBOOT_LOW_END) that
 *                             avoids every segment, else the page after the
 *                             highest segment (below 4 GiB), unless the
 *                             caller fixes it with info_gpa. Low memory is
 *                             preferred because kvm-unit-tests hands
 *                             [end of image, mem_upper * 1 KiB) to its page
 *                             allocator.
 * The area's layout: struct multiboot_info, the memory map, the module
 * entry, the command line and module strings, then (page-aligned) the
 * module's bytes.
 *
 * Threads: main thread, before any vCPU runs.
 */
#ifndef VMM_MULTIBOOT_H
#define VMM_MULTIBOOT_H

#include <stddef.h>
#include <stdint.h>

#include "ept/mem.h"

#define MULTIBOOT_HEADER_MAGIC 0x1BADB002U
#define MULTIBOOT_BOOT_MAGIC   0x2BADB002U /* in EAX at entry */
#define MULTIBOOT_SEARCH       8192	   /* the header is in these bytes */

/* Header flags (bits 0-15 are requirements the loader must meet). */
#define MULTIBOOT_HF_PAGE_ALIGN (1U << 0) /* modules page-aligned */
#define MULTIBOOT_HF_MEMORY	(1U << 1) /* mem_* and mmap wanted */
#define MULTIBOOT_HF_VIDEO	(1U << 2) /* video mode: unsupported */
#define MULTIBOOT_HF_AOUT	(1U << 16) /* a.out address fields: unsupported */

/* Information structure flags. */
#define MULTIBOOT_IF_MEMORY  (1U << 0)
#define MULTIBOOT_IF_CMDLINE (1U << 2)
#define MULTIBOOT_IF_MODS    (1U << 3)
#define MULTIBOOT_IF_MMAP    (1U << 6)
#define MULTIBOOT_IF_LOADER  (1U << 9)

#define MULTIBOOT_MMAP_RAM	1
#define MULTIBOOT_MMAP_RESERVED 2

#define MULTIBOOT_MAX_SEGS  16
#define MULTIBOOT_LOW_START 0x10000ULL /* info area search, low memory */
#define MULTIBOOT_LOW_END   0xa0000ULL /* = mem_lower, 640 KiB */
#define MULTIBOOT_HOLE_END  0x100000ULL
#define MULTIBOOT_LOADER    "vmm"

/* The information structure, as the guest reads it (spec section 3.3). */
struct multiboot_info {
	uint32_t flags;
	uint32_t mem_lower; /* KiB from 0 */
	uint32_t mem_upper; /* KiB from 1 MiB */
	uint32_t boot_device;
	uint32_t cmdline;
	uint32_t mods_count;
	uint32_t mods_addr;
	uint32_t syms[4];
	uint32_t mmap_length;
	uint32_t mmap_addr;
	uint32_t drives_length;
	uint32_t drives_addr;
	uint32_t config_table;
	uint32_t boot_loader_name;
	uint32_t apm_table;
	uint32_t vbe[4];
};

struct multiboot_module {
	uint32_t mod_start;
	uint32_t mod_end; /* exclusive */
	uint32_t string;
	uint32_t reserved;
};

/* One memory map entry; size counts the bytes after itself (20). */
struct multiboot_mmap_entry {
	uint32_t size;
	uint64_t addr;
	uint64_t len;
	uint32_t type;
} __attribute__((packed));

struct multiboot_seg {
	uint32_t gpa; /* p_paddr */
	uint32_t off; /* p_offset */
	uint32_t filesz;
	uint32_t memsz;
};

struct multiboot_image {
	uint32_t hdr_off; /* offset of the Multiboot header in the file */
	uint32_t hdr_flags;
	uint32_t entry;
	uint64_t lowest, highest; /* [lowest, highest) holds every segment */
	int nr_segs;
	struct multiboot_seg segs[MULTIBOOT_MAX_SEGS];
};

struct multiboot_args {
	const char *name;   /* first word of the command line (argv[0]) */
	const char *append; /* rest of the command line, may be NULL */
	const void *mod;    /* the one module (--initrd), NULL for none */
	size_t modlen;
	const char *modname; /* the module's string, may be NULL */
	uint64_t info_gpa;   /* 0: the loader places the info area */
};

struct multiboot_entry {
	uint32_t entry;		       /* EIP at entry */
	uint32_t info;		       /* EBX at entry: struct multiboot_info */
	uint64_t area_start, area_end; /* everything the loader wrote */
	uint64_t lowest, highest;      /* the segments' span */
};

/* 1 when img carries a valid Multiboot header, else 0. */
int multiboot_probe(const void *img, size_t len);

/*
 * Validate the header and the ELF32 image; -ENOEXEC with one line in err
 * naming the problem.
 */
int multiboot_parse(const void *img, size_t len, struct multiboot_image *out,
		    char *err, size_t errlen);

/*
 * Parse, check the segments against RAM (-ENOSPC: outside RAM, in the MMIO
 * hole, over page 0 or the reserved hole, no room for the info area; -EINVAL:
 * the info area at info_gpa collides), load, and write the information
 * structure. out gets the entry point and the info address.
 */
int multiboot_load(const struct guest_mem *m, const void *img, size_t len,
		   const struct multiboot_args *a, struct multiboot_entry *out,
		   char *err, size_t errlen);

#endif /* VMM_MULTIBOOT_H */
