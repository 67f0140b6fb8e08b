/* SPDX-License-Identifier: MIT */
/*
 * bzimage.h - the x86 Linux boot protocol for a bzImage, 64-bit entry (as
 * Firecracker and Cloud Hypervisor use it): the setup header at 0x1f1
 * ("HdrS" at 0x202) is checked and copied into the zero page (struct
 * boot_params), the protected-mode kernel (the file from (setup_sects + 1)
 * * 512 on) goes to its pref_address, and the BSP starts in long mode at
 * load address + 0x200 on identity page tables with RSI = the zero page,
 * CS = __BOOT_CS (0x10) and DS/ES/SS = __BOOT_DS (0x18) from a GDT the
 * loader writes, interrupts off.
 *
 * Everything here is pure (buffers in, buffers out); linux_boot.c writes
 * the results into guest RAM at the addresses of linux_boot.h.
 */
#ifndef VMM_BZIMAGE_H
#define VMM_BZIMAGE_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/linux_boot.h"

/* Setup header fields: offsets in the file and in the zero page alike. */
#define BZ_SETUP_SECTS	  0x1f1
#define BZ_BOOT_FLAG	  0x1fe
#define BZ_JUMP		  0x200
#define BZ_HEADER	  0x202
#define BZ_VERSION	  0x206
#define BZ_TYPE_OF_LOADER 0x210
#define BZ_LOADFLAGS	  0x211
#define BZ_CODE32_START	  0x214
#define BZ_RAMDISK_IMAGE  0x218
#define BZ_RAMDISK_SIZE	  0x21c
#define BZ_CMD_LINE_PTR	  0x228
#define BZ_INITRD_MAX	  0x22c
#define BZ_KERNEL_ALIGN	  0x230
#define BZ_RELOCATABLE	  0x234
#define BZ_XLOADFLAGS	  0x236
#define BZ_CMDLINE_SIZE	  0x238
#define BZ_PREF_ADDRESS	  0x258
#define BZ_INIT_SIZE	  0x260
#define BZ_HDR_MIN_END	  0x264 /* through init_size (protocol 2.10) */

/* Zero page fields outside the header. */
#define BZ_E820_ENTRIES 0x1e8
#define BZ_E820_TABLE	0x2d0
#define BZ_E820_MAX	128

#define BZ_MAGIC	 0x53726448U /* "HdrS" */
#define BZ_BOOT_FLAG_VAL 0xaa55
#define BZ_MIN_VERSION	 0x206
#define BZ_XLF_VERSION	 0x20c /* xloadflags exist from 2.12 on */
#define BZ_XLF_KERNEL_64 (1U << 0)
#define BZ_LOADER_OTHER	 0xff
#define BZ_ENTRY64_OFF	 0x200
#define BZ_BOOT_CS	 0x10
#define BZ_BOOT_DS	 0x18
#define LINUX_STACK_TOP	 0x9000ULL /* bzImage entry RSP: page 0x8000 */

/* What the loader needs from a checked setup header. */
struct bzimage {
	uint16_t version;
	uint16_t xloadflags;
	uint32_t hdr_end;    /* file offset just past the setup header */
	uint32_t kernel_off; /* file offset of the protected-mode kernel */
	uint32_t kernel_len; /* its bytes */
	uint64_t pref_address;
	uint32_t kernel_align;
	uint32_t init_size; /* bytes the kernel needs from its load address */
	uint32_t initrd_addr_max; /* highest byte address of the initrd */
	uint32_t cmdline_size;	  /* longest command line, NUL excluded */
};

/* 1 when img has "HdrS" at 0x202, else 0. */
int bzimage_probe(const void *img, size_t len);

/*
 * Check the setup header: -ENOEXEC with one line in err for a truncated
 * header, a bad boot flag, protocol older than 2.06, no 64-bit entry (no
 * XLF_KERNEL_64), a kernel that is not relocatable, no protected-mode
 * kernel after the setup sectors, or an init_size smaller than it.
 */
int bzimage_parse(const void *img, size_t len, struct bzimage *out, char *err,
		  size_t errlen);

/*
 * Where the kernel goes: pref_address when [pref, pref + init_size) lies in
 * the RAM region holding 1 MiB, else the first kernel_align boundary from
 * 1 MiB. -ENOSPC with one line in err when neither fits.
 */
int bzimage_place(const struct bzimage *bz, const struct guest_mem *m,
		  uint64_t *gpa, char *err, size_t errlen);

struct bzimage_args {
	uint64_t load_gpa;
	uint64_t cmdline_gpa;
	uint64_t initrd_gpa, initrd_size;
	const struct linux_e820 *e820;
	int nr_e820;
};

/* Fill zp (PAGE_SIZE bytes): the header copied from img, then our fields. */
void bzimage_zero_page(const void *img, const struct bzimage *bz,
		       const struct bzimage_args *a, uint8_t *zp);

/* The boot GDT (4 descriptors, LINUX_GDT_GPA). */
void bzimage_gdt(uint64_t gdt[4]);

/*
 * Identity page tables for [0, 4 GiB) with 2 MiB pages: LINUX_PGT_PAGES
 * pages into buf, which will live at base.
 */
void bzimage_page_tables(uint8_t *buf, uint64_t base);

/* Long mode at entry, RSI = zero_page; apic_base/interrupt_bitmap kept. */
void bzimage_entry_state(struct kvm_sregs *s, struct kvm_regs *r,
			 uint64_t entry, uint64_t zero_page);

#endif /* VMM_BZIMAGE_H */
