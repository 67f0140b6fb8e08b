// SPDX-License-Identifier: MIT
/*
 * test_guest_mb.c - the built test guest images, checked as a Multiboot
 * loader sees them (no KVM, no QEMU): guest-mb.elf must carry a valid
 * Multiboot header in its first 8 KiB, be ELF32 with loadable segments at
 * GUEST_KERNEL_BASE and an entry that is not the 64-bit _start, and load
 * into RAM with vmm/multiboot.c's loader; guest.elf must carry no header,
 * so that vmmctl keeps starting it in 64-bit mode on its own tables.
 * CTest passes the images' paths in GUEST_MB_ELF and GUEST_ELF.
 */
#include <criterion/criterion.h>
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/guest_abi.h"
#include "ept/mem.h"
#include "vmm/multiboot.h"

#define MiB (1ULL << 20)

/* The whole file named by environment variable var, or a failed test. */
static void *read_image(const char *var, size_t *len)
{
	const char *path = getenv(var);
	FILE *f;
	void *buf;
	long n;

	cr_assert(path, "%s is not set (CTest sets it)", var);
	f = fopen(path, "rb");
	cr_assert(f, "open %s: %s", path, strerror(errno));
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	cr_assert_gt(n, 0, "%s is empty", path);
	rewind(f);
	buf = malloc((size_t)n);
	cr_assert(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n, "read %s", path);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

Test(guest_mb, multiboot_image_is_elf32_with_header)
{
	struct multiboot_image img;
	char err[256] = "";
	size_t len;
	void *buf = read_image("GUEST_MB_ELF", &len);
	const Elf32_Ehdr *eh = buf;

	cr_assert_eq(multiboot_probe(buf, len), 1, "no Multiboot header");
	cr_assert_eq(multiboot_parse(buf, len, &img, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_lt(img.hdr_off, MULTIBOOT_SEARCH);
	cr_assert_eq(img.hdr_flags, 0, "flags 0: no a.out fields");
	cr_assert_eq(eh->e_ident[EI_CLASS], ELFCLASS32);
	cr_assert_eq(eh->e_machine, EM_386);
	cr_assert_geq(img.nr_segs, 3, "text, rodata, data+bss");
	cr_assert_eq(img.lowest, GUEST_KERNEL_BASE);
	cr_assert_gt(img.entry, img.lowest, "entry is _start32, not _start");
	cr_assert_lt(img.entry, img.highest);
	/* Below the image: the boot-info and heartbeat pages. */
	cr_assert_lt(GUEST_HB_PAGE_GPA + GUEST_PAGE_SIZE, img.lowest);
	free(buf);
}

Test(guest_mb, multiboot_image_loads)
{
	struct multiboot_args a = {.name = "guest-mb.elf",
				   .append = "heartbeat"};
	struct multiboot_entry e;
	struct guest_mem gm;
	char err[256] = "";
	size_t len;
	void *buf = read_image("GUEST_MB_ELF", &len);

	cr_assert_eq(mem_create(&gm, 64 * MiB), 0);
	cr_assert_eq(multiboot_load(&gm, buf, len, &a, &e, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_gt(e.entry, GUEST_KERNEL_BASE);
	/* The info area stays clear of the pages the guest writes first. */
	cr_assert(e.area_end <= GUEST_BOOT_INFO_GPA ||
			  e.area_start >= GUEST_HB_PAGE_GPA + GUEST_PAGE_SIZE,
		  "info area [0x%llx, 0x%llx)",
		  (unsigned long long)e.area_start,
		  (unsigned long long)e.area_end);
	mem_destroy(&gm);
	free(buf);
}

Test(guest_mb, vmm_image_has_no_header)
{
	size_t len;
	void *buf = read_image("GUEST_ELF", &len);

	cr_assert_eq(multiboot_probe(buf, len), 0,
		     "guest.elf must keep the VMM's 64-bit entry");
	free(buf);
}
