/* SPDX-License-Identifier: MIT */
/*
 * test_linux.c - the Linux boot paths without KVM: the bzImage setup
 * header checks, kernel placement, zero page, page tables and entry state
 * (vmm/bzimage.c); the PVH note and hvm_start_info (vmm/pvh.c); the e820
 * map, initrd placement and protocol probe (vmm/linux_boot.c).
 *
 * bz_make() writes a valid synthetic bzImage shaped like Debian's (protocol
 * 2.15, XLF_KERNEL_64, relocatable, pref_address 16 MiB); each error test
 * breaks one field and checks the one error line. pvh_make() writes an
 * ELF64 file whose PT_NOTE segment holds a GNU note and then the Xen
 * PHYS32_ENTRY note, as vmlinux does. Layouts come from mem_layout(), the
 * pure RAM split the VM uses, so no memfd is needed.
 */
#include <criterion/criterion.h>
#include <elf.h>
#include <errno.h>
#include <string.h>

#include "common/guest_abi.h"
#include "common/page.h"
#include "ept/mem.h"
#include "vmm/bzimage.h"
#include "vmm/linux_boot.h"
#include "vmm/pvh.h"

#define MiB	   (1ULL << 20)
#define GiB	   (1ULL << 30)
#define BZ_LEN	   0x3000
#define SETUP_SECT 1
#define KOFF	   ((SETUP_SECT + 1) * 512)

static uint8_t bz[BZ_LEN];
static uint8_t elf[0x1000];
static char err[256];

static void put(uint8_t *b, size_t off, uint64_t v, size_t n)
{
	memcpy(b + off, &v, n);
}

static uint64_t get(const uint8_t *b, size_t off, size_t n)
{
	uint64_t v = 0;

	memcpy(&v, b + off, n);
	return v;
}

static void bz_make(void)
{
	memset(bz, 0, sizeof(bz));
	put(bz, BZ_SETUP_SECTS, SETUP_SECT, 1);
	put(bz, BZ_BOOT_FLAG, 0xaa55, 2);
	put(bz, BZ_JUMP, 0x6aeb, 2); /* jmp to 0x26c: header ends there */
	put(bz, BZ_HEADER, BZ_MAGIC, 4);
	put(bz, BZ_VERSION, 0x20f, 2);
	put(bz, BZ_LOADFLAGS, 1, 1);
	put(bz, BZ_CODE32_START, 0x100000, 4);
	put(bz, BZ_INITRD_MAX, 0x7fffffff, 4);
	put(bz, BZ_KERNEL_ALIGN, 0x200000, 4);
	put(bz, BZ_RELOCATABLE, 1, 1);
	put(bz, BZ_XLOADFLAGS, 0x7f, 2);
	put(bz, BZ_CMDLINE_SIZE, 2047, 4);
	put(bz, BZ_PREF_ADDRESS, 0x1000000, 8);
	put(bz, BZ_INIT_SIZE, 0x400000, 4);
	for (size_t i = KOFF; i < BZ_LEN; i++)
		bz[i] = (uint8_t)i;
}

static int bz_parse(size_t len, struct bzimage *out)
{
	err[0] = '\0';
	return bzimage_parse(bz, len, out, err, sizeof(err));
}

static void layout(struct guest_mem *m, uint64_t size)
{
	memset(m, 0, sizeof(*m));
	m->nr_regions = mem_layout(size, m->regions, GUEST_MEM_MAX_REGS);
	cr_assert_gt(m->nr_regions, 0);
	m->size = size;
}

Test(bzimage, valid_header)
{
	struct bzimage b;

	bz_make();
	cr_assert_eq(bz_parse(BZ_LEN, &b), 0, "%s", err);
	cr_assert_eq(b.version, 0x20f);
	cr_assert_eq(b.hdr_end, 0x26c);
	cr_assert_eq(b.kernel_off, KOFF);
	cr_assert_eq(b.kernel_len, BZ_LEN - KOFF);
	cr_assert_eq(b.pref_address, 0x1000000);
	cr_assert_eq(b.init_size, 0x400000);
	cr_assert_eq(b.cmdline_size, 2047);
	cr_assert_eq(linux_probe(bz, BZ_LEN), LINUX_BZIMAGE);
}

static void bz_expect(size_t len, const char *what)
{
	struct bzimage b;

	cr_assert_eq(bz_parse(len, &b), -ENOEXEC);
	cr_assert(strstr(err, what), "error \"%s\" lacks \"%s\"", err, what);
	cr_assert(!strchr(err, '\n'));
}

Test(bzimage, truncated_header)
{
	bz_make();
	bz_expect(0x240, "setup header truncated");
	put(bz, BZ_JUMP + 1, 0x7e, 1); /* header would end at 0x280 */
	bz_expect(0x270, "setup header truncated");
}

Test(bzimage, bad_boot_flag)
{
	bz_make();
	put(bz, BZ_BOOT_FLAG, 0x1234, 2);
	bz_expect(BZ_LEN, "boot_flag");
}

Test(bzimage, protocol_too_old)
{
	bz_make();
	put(bz, BZ_VERSION, 0x205, 2);
	bz_expect(BZ_LEN, "boot protocol 2.05 is older than 2.06");
}

Test(bzimage, no_64bit_entry)
{
	bz_make();
	put(bz, BZ_XLOADFLAGS, 0x7e, 2);
	bz_expect(BZ_LEN, "no 64-bit entry");
	bz_make();
	put(bz, BZ_VERSION, 0x20a, 2); /* before xloadflags existed */
	bz_expect(BZ_LEN, "no 64-bit entry");
}

Test(bzimage, not_relocatable)
{
	bz_make();
	put(bz, BZ_RELOCATABLE, 0, 1);
	bz_expect(BZ_LEN, "not relocatable");
}

Test(bzimage, no_kernel_after_setup)
{
	bz_make();
	bz_expect(KOFF, "no protected-mode kernel");
}

Test(bzimage, init_size_too_small)
{
	bz_make();
	put(bz, BZ_INIT_SIZE, 0x100, 4);
	bz_expect(BZ_LEN, "init_size 0x100 is smaller");
}

Test(bzimage, place)
{
	struct guest_mem m;
	struct bzimage b;
	uint64_t at;

	bz_make();
	cr_assert_eq(bz_parse(BZ_LEN, &b), 0);
	layout(&m, 256 * MiB);
	cr_assert_eq(bzimage_place(&b, &m, &at, err, sizeof(err)), 0);
	cr_assert_eq(at, 0x1000000, "pref_address");
	layout(&m, 16 * MiB); /* 16 MiB + init_size does not fit */
	cr_assert_eq(bzimage_place(&b, &m, &at, err, sizeof(err)), 0);
	cr_assert_eq(at, 0x200000, "1 MiB rounded up to kernel_alignment");
	b.init_size = 0x2000000;
	cr_assert_eq(bzimage_place(&b, &m, &at, err, sizeof(err)), -ENOSPC);
	cr_assert(strstr(err, "init_size 0x2000000"), "%s", err);
}

Test(bzimage, zero_page)
{
	static uint8_t zp[PAGE_SIZE];
	struct linux_e820 e[LINUX_E820_MAX];
	struct guest_mem m;
	struct bzimage b;
	struct bzimage_args a = {
		.load_gpa = 0x1000000,
		.cmdline_gpa = LINUX_CMDLINE_GPA,
		.initrd_gpa = 0xf000000,
		.initrd_size = 0x12345,
		.e820 = e,
	};

	bz_make();
	cr_assert_eq(bz_parse(BZ_LEN, &b), 0);
	layout(&m, 256 * MiB);
	a.nr_e820 = linux_e820(&m, e);
	memset(zp, 0xee, sizeof(zp));
	bzimage_zero_page(bz, &b, &a, zp);
	cr_assert_eq(get(zp, BZ_HEADER, 4), BZ_MAGIC, "header copied");
	cr_assert_eq(get(zp, BZ_PREF_ADDRESS, 8), 0x1000000);
	cr_assert_eq(get(zp, 0x26c, 1), 0, "nothing past the header");
	cr_assert_eq(get(zp, 0, 8), 0, "zeroed");
	cr_assert_eq(get(zp, BZ_TYPE_OF_LOADER, 1), 0xff);
	cr_assert_eq(get(zp, BZ_CODE32_START, 4), 0x1000000);
	cr_assert_eq(get(zp, BZ_CMD_LINE_PTR, 4), LINUX_CMDLINE_GPA);
	cr_assert_eq(get(zp, BZ_RAMDISK_IMAGE, 4), 0xf000000);
	cr_assert_eq(get(zp, BZ_RAMDISK_SIZE, 4), 0x12345);
	cr_assert_eq(get(zp, BZ_E820_ENTRIES, 1), 4);
	for (int i = 0; i < 4; i++) {
		size_t off = BZ_E820_TABLE + (size_t)i * 20;

		cr_assert_eq(get(zp, off, 8), e[i].addr);
		cr_assert_eq(get(zp, off + 8, 8), e[i].size);
		cr_assert_eq(get(zp, off + 16, 4), e[i].type);
	}
}

Test(bzimage, page_tables_and_entry)
{
	static uint8_t pgt[LINUX_PGT_PAGES * PAGE_SIZE];
	struct kvm_sregs s;
	struct kvm_regs r;
	uint64_t gdt[4], pde;

	bzimage_page_tables(pgt, LINUX_PGT_GPA);
	cr_assert_eq(get(pgt, 0, 8), (LINUX_PGT_GPA + PAGE_SIZE) | 3);
	cr_assert_eq(get(pgt, PAGE_SIZE + 3 * 8, 8),
		     (LINUX_PGT_GPA + 5 * PAGE_SIZE) | 3);
	/* The PD entry for 3 GiB + 2 MiB * 5 maps exactly that. */
	pde = get(pgt, 5 * PAGE_SIZE + 5 * 8, 8);
	cr_assert_eq(pde, (3 * GiB + 5 * 0x200000ULL) | 0x83);
	bzimage_gdt(gdt);
	cr_assert_eq((gdt[BZ_BOOT_CS / 8] >> 53) & 1, 1, "L bit");
	memset(&s, 0, sizeof(s));
	s.apic_base = 0xfee00900;
	bzimage_entry_state(&s, &r, 0x1000200, LINUX_ZERO_PAGE_GPA);
	cr_assert_eq(s.apic_base, 0xfee00900);
	cr_assert_eq(s.cs.selector, BZ_BOOT_CS);
	cr_assert_eq(s.cs.l, 1);
	cr_assert_eq(s.ds.selector, BZ_BOOT_DS);
	cr_assert_eq(s.ss.selector, BZ_BOOT_DS);
	cr_assert_eq(s.cr3, LINUX_PGT_GPA);
	cr_assert_eq(s.efer & 0x500, 0x500, "LME|LMA");
	cr_assert_eq(s.cr0 & 0x80000001, 0x80000001, "PG|PE");
	cr_assert_eq(s.gdt.base, LINUX_GDT_GPA);
	cr_assert_eq(r.rip, 0x1000200);
	cr_assert_eq(r.rsi, LINUX_ZERO_PAGE_GPA);
	cr_assert_eq(r.rflags & 0x200, 0, "interrupts off");
}

/* ---- PVH ------------------------------------------------------------------
 */

#define NOTE_OFF 0x200

/* A note at *at: name, type, descriptor of dsz bytes; returns its end. */
static size_t note(size_t at, const char *name, uint32_t type, uint64_t desc,
		   uint32_t dsz)
{
	uint32_t nsz = (uint32_t)strlen(name) + 1;
	Elf64_Nhdr nh = {nsz, dsz, type};

	memcpy(elf + at, &nh, sizeof(nh));
	at += sizeof(nh);
	memcpy(elf + at, name, nsz);
	at += (nsz + 3) & ~3U;
	memcpy(elf + at, &desc, dsz < 8 ? dsz : 8);
	return at + ((dsz + 3) & ~3U);
}

static void pvh_make(uint64_t entry, uint32_t dsz)
{
	Elf64_Ehdr eh = {0};
	Elf64_Phdr ph = {0};
	size_t end;

	memset(elf, 0, sizeof(elf));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_X86_64;
	eh.e_phoff = sizeof(eh);
	eh.e_phentsize = sizeof(ph);
	eh.e_phnum = 1;
	memcpy(elf, &eh, sizeof(eh));
	end = note(NOTE_OFF, "GNU", 3, 0x1122334455667788ULL, 8);
	end = note(end, "Xen", PVH_NOTE_PHYS32_ENTRY, entry, dsz);
	ph.p_type = PT_NOTE;
	ph.p_offset = NOTE_OFF;
	ph.p_filesz = end - NOTE_OFF;
	memcpy(elf + sizeof(eh), &ph, sizeof(ph));
}

static int pvh_find(uint32_t *entry)
{
	err[0] = '\0';
	return pvh_find_entry(elf, sizeof(elf), entry, err, sizeof(err));
}

Test(pvh, finds_the_entry)
{
	uint32_t entry = 0;

	pvh_make(0x1000850, 8);
	cr_assert_eq(pvh_find(&entry), 1, "%s", err);
	cr_assert_eq(entry, 0x1000850);
	cr_assert_eq(linux_probe(elf, sizeof(elf)), LINUX_PVH);
	pvh_make(0x200123, 4);
	cr_assert_eq(pvh_find(&entry), 1, "%s", err);
	cr_assert_eq(entry, 0x200123);
}

Test(pvh, no_note_is_not_pvh)
{
	uint32_t entry;

	pvh_make(0x1000850, 8);
	elf[NOTE_OFF + 24 + 8] = 17; /* the Xen note's type: not 18 */
	cr_assert_eq(pvh_find(&entry), 0);
	cr_assert_eq(linux_probe(elf, sizeof(elf)), LINUX_NONE);
	memset(elf, 0, 4);
	cr_assert_eq(pvh_find(&entry), 0, "not ELF");
}

Test(pvh, malformed_notes)
{
	uint32_t entry;

	pvh_make(0x1000850, 2);
	cr_assert_eq(pvh_find(&entry), -ENOEXEC);
	cr_assert(strstr(err, "2-byte descriptor"), "%s", err);
	pvh_make(0x100000000ULL, 8);
	cr_assert_eq(pvh_find(&entry), -ENOEXEC);
	cr_assert(strstr(err, "above 4 GiB"), "%s", err);
	pvh_make(0x1000850, 8);
	put(elf, sizeof(Elf64_Ehdr) + offsetof(Elf64_Phdr, p_filesz), 0x2c,
	    8); /* cuts the Xen note */
	cr_assert_eq(pvh_find(&entry), -ENOEXEC);
	cr_assert(strstr(err, "runs past its segment"), "%s", err);
	put(elf, sizeof(Elf64_Ehdr) + offsetof(Elf64_Phdr, p_filesz), 0x10000,
	    8);
	cr_assert_eq(pvh_find(&entry), -ENOEXEC);
	cr_assert(strstr(err, "outside the"), "%s", err);
}

Test(pvh, start_info)
{
	static uint8_t page[PAGE_SIZE];
	struct linux_e820 e[LINUX_E820_MAX];
	struct hvm_start_info si;
	struct hvm_modlist_entry mod;
	struct hvm_memmap_entry me;
	struct guest_mem m;
	struct pvh_info_args a = {
		.e820 = e,
		.cmdline_gpa = LINUX_CMDLINE_GPA,
		.rsdp_gpa = 0xe0000,
		.initrd_gpa = 0x7000000,
		.initrd_size = 4097,
	};

	layout(&m, 4 * GiB);
	a.nr_e820 = linux_e820(&m, e);
	pvh_build_info(&a, page);
	memcpy(&si, page, sizeof(si));
	cr_assert_eq(sizeof(si), 56);
	cr_assert_eq(si.magic, 0x336ec578);
	cr_assert_eq(si.version, 1);
	cr_assert_eq(si.cmdline_paddr, LINUX_CMDLINE_GPA);
	cr_assert_eq(si.rsdp_paddr, 0xe0000);
	cr_assert_eq(si.nr_modules, 1);
	cr_assert_eq(si.modlist_paddr, LINUX_START_INFO_GPA + PVH_MODLIST_OFF);
	memcpy(&mod, page + PVH_MODLIST_OFF, sizeof(mod));
	cr_assert_eq(mod.paddr, 0x7000000);
	cr_assert_eq(mod.size, 4097);
	cr_assert_eq(si.memmap_paddr, LINUX_START_INFO_GPA + PVH_MEMMAP_OFF);
	cr_assert_eq(si.memmap_entries, 5);
	for (int i = 0; i < 5; i++) {
		memcpy(&me, page + PVH_MEMMAP_OFF + i * sizeof(me), sizeof(me));
		cr_assert_eq(me.addr, e[i].addr);
		cr_assert_eq(me.size, e[i].size);
		cr_assert_eq(me.type, e[i].type);
	}
	a.initrd_size = 0;
	pvh_build_info(&a, page);
	memcpy(&si, page, sizeof(si));
	cr_assert_eq(si.nr_modules, 0);
	cr_assert_eq(si.modlist_paddr, 0);
}

/* ---- shared ---------------------------------------------------------------
 */

Test(linux_boot, e820_small)
{
	struct linux_e820 e[LINUX_E820_MAX];
	struct guest_mem m;

	layout(&m, 256 * MiB);
	cr_assert_eq(linux_e820(&m, e), 4);
	cr_assert(e[0].addr == 0 && e[0].size == 0xa0000 &&
		  e[0].type == LINUX_E820_RAM);
	cr_assert(e[1].addr == 0xa0000 && e[1].size == 0x60000 &&
		  e[1].type == LINUX_E820_RESERVED);
	cr_assert(e[2].addr == MiB && e[2].size == 255 * MiB &&
		  e[2].type == LINUX_E820_RAM);
	cr_assert(e[3].addr == GUEST_MMIO_HOLE_BASE && e[3].size == GiB &&
		  e[3].type == LINUX_E820_RESERVED);
}

Test(linux_boot, e820_above_the_hole)
{
	struct linux_e820 e[LINUX_E820_MAX];
	struct guest_mem m;

	layout(&m, 4 * GiB);
	cr_assert_eq(linux_e820(&m, e), 5);
	cr_assert_eq(e[2].addr + e[2].size, GUEST_MMIO_HOLE_BASE);
	cr_assert(e[3].addr == GUEST_MMIO_HOLE_BASE &&
			  e[3].type == LINUX_E820_RESERVED,
		  "hole in address order");
	cr_assert(e[4].addr == GUEST_MMIO_HOLE_END && e[4].size == GiB &&
		  e[4].type == LINUX_E820_RAM);
}

Test(linux_boot, initrd_placement)
{
	struct guest_mem m;
	uint64_t at;

	layout(&m, 256 * MiB);
	cr_assert_eq(linux_place_initrd(&m, 0x4a00000, 4 * GiB, 0x1001, &at,
					err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(at, 256 * MiB - 0x2000, "page-aligned, at the top");
	cr_assert_eq(linux_place_initrd(&m, 0x4a00000, 0x8000000, 0x1000, &at,
					err, sizeof(err)),
		     0);
	cr_assert_eq(at, 0x8000000 - 0x1000, "below initrd_addr_max");
	cr_assert_eq(linux_place_initrd(&m, 0x4a00000, 4 * GiB, 200 * MiB, &at,
					err, sizeof(err)),
		     -ENOSPC);
	cr_assert(strstr(err, "initrd of 209715200 bytes does not fit"), "%s",
		  err);
	cr_assert_eq(linux_place_initrd(&m, 0, 4 * GiB, 512 * MiB, &at, err,
					sizeof(err)),
		     -ENOSPC, "larger than RAM");
}
