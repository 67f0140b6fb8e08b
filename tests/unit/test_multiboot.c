/* SPDX-License-Identifier: MIT */
/*
 * test_multiboot.c - the Multiboot v1 loader (vmm/multiboot.c) against
 * synthetic ELF32 images, and the entry register states (vmm/entry32.c).
 *
 * mb_make() writes a valid image shaped like a kvm-unit-tests .flat: the
 * Multiboot header at 0x100, a text segment at 4 MiB holding the entry
 * point and a data segment with a .bss tail. Each error test breaks one
 * thing and checks the error and its message. Loads go into a real 16 MiB
 * guest_mem (a memfd, no KVM) pre-filled with 0xaa, so that untouched
 * memory (page 0) and zeroed .bss can be told apart.
 */
#include <criterion/criterion.h>
#include <elf.h>
#include <errno.h>
#include <string.h>

#include "ept/mem.h"
#include "vmm/entry32.h"
#include "vmm/multiboot.h"

#define MiB	    (1ULL << 20)
#define IMG_LEN	    0x3000
#define HDR_OFF	    0x100
#define TEXT_GPA    0x400000U
#define DATA_GPA    0x401000U
#define DATA_FILESZ 0x80U
#define DATA_MEMSZ  0x3000U
#define ENTRY	    (TEXT_GPA + 0x10)
#define FILL	    0xaa

static uint8_t img[IMG_LEN];
static struct guest_mem gm;
static char err[256];

static Elf32_Ehdr *eh(void)
{
	return (Elf32_Ehdr *)img;
}

static Elf32_Phdr *ph(int i)
{
	return (Elf32_Phdr *)(img + sizeof(Elf32_Ehdr)) + i;
}

static void mb_header(uint32_t flags)
{
	uint32_t h[3] = {MULTIBOOT_HEADER_MAGIC, flags,
			 -(MULTIBOOT_HEADER_MAGIC + flags)};

	memcpy(img + HDR_OFF, h, sizeof(h));
}

static void mb_make(void)
{
	memset(img, 0, sizeof(img));
	memcpy(eh()->e_ident, ELFMAG, SELFMAG);
	eh()->e_ident[EI_CLASS] = ELFCLASS32;
	eh()->e_ident[EI_DATA] = ELFDATA2LSB;
	eh()->e_ident[EI_VERSION] = EV_CURRENT;
	eh()->e_type = ET_EXEC;
	eh()->e_machine = EM_386;
	eh()->e_version = EV_CURRENT;
	eh()->e_entry = ENTRY;
	eh()->e_phoff = sizeof(Elf32_Ehdr);
	eh()->e_ehsize = sizeof(Elf32_Ehdr);
	eh()->e_phentsize = sizeof(Elf32_Phdr);
	eh()->e_phnum = 2;
	*ph(0) = (Elf32_Phdr){PT_LOAD, 0x1000, TEXT_GPA,    TEXT_GPA,
			      0x100,   0x100,  PF_R | PF_X, 0x1000};
	*ph(1) = (Elf32_Phdr){PT_LOAD,	   0x2000,     DATA_GPA,    DATA_GPA,
			      DATA_FILESZ, DATA_MEMSZ, PF_R | PF_W, 0x1000};
	mb_header(0);
	for (int i = 0; i < 0x100; i++)
		img[0x1000 + i] = (uint8_t)(i + 1);
	for (unsigned int i = 0; i < DATA_FILESZ; i++)
		img[0x2000 + i] = (uint8_t)(0x80 + i);
}

static void setup(void)
{
	mb_make();
	cr_assert_eq(mem_create(&gm, 16 * MiB), 0);
	memset(gm.base, FILL, gm.size);
}

static void teardown(void)
{
	mem_destroy(&gm);
}

static const struct multiboot_args args = {.name = "x86/test.flat",
					   .append = "-v one"};

static int load(const struct multiboot_args *a, struct multiboot_entry *e)
{
	err[0] = '\0';
	return multiboot_load(&gm, img, sizeof(img), a, e, err, sizeof(err));
}

static void *gpa(uint64_t a)
{
	void *p = mem_gpa_to_hva(&gm, a, 1);

	cr_assert_not_null(p, "0x%llx is not RAM", (unsigned long long)a);
	return p;
}

static void expect_err(int want, const struct multiboot_args *a,
		       const char *needle)
{
	struct multiboot_entry e;
	int r = load(a, &e);

	cr_expect_eq(r, want, "load returned %d (%s)", r, err);
	cr_expect(strstr(err, needle), "message '%s' lacks '%s'", err, needle);
	cr_expect_null(strchr(err, '\n'), "one line: '%s'", err);
}

TestSuite(multiboot, .init = setup, .fini = teardown);

Test(multiboot, probe)
{
	cr_expect_eq(multiboot_probe(img, sizeof(img)), 1);
	cr_expect_eq(multiboot_probe(img, HDR_OFF + 8), 0, "header cut short");
	cr_expect_eq(multiboot_probe(NULL, 0), 0);
	mb_header(0);
	img[HDR_OFF + 8] ^= 1; /* checksum */
	cr_expect_eq(multiboot_probe(img, sizeof(img)), 0);
	memset(img + HDR_OFF, 0, 12);
	cr_expect_eq(multiboot_probe(img, sizeof(img)), 0);
}

Test(multiboot, header_past_8k_or_unaligned_not_found)
{
	static uint8_t big[MULTIBOOT_SEARCH + 64];
	uint32_t h[3] = {MULTIBOOT_HEADER_MAGIC, 0, -MULTIBOOT_HEADER_MAGIC};

	memcpy(big + MULTIBOOT_SEARCH, h, sizeof(h));
	cr_expect_eq(multiboot_probe(big, sizeof(big)), 0);
	memset(big, 0, sizeof(big));
	memcpy(big + MULTIBOOT_SEARCH - 12, h, sizeof(h));
	cr_expect_eq(multiboot_probe(big, sizeof(big)), 1);
	memset(big, 0, sizeof(big));
	memcpy(big + 2, h, sizeof(h));
	cr_expect_eq(multiboot_probe(big, sizeof(big)), 0);
}

Test(multiboot, loads_segments_and_zeroes_bss)
{
	struct multiboot_entry e;

	cr_assert_eq(load(&args, &e), 0, "%s", err);
	cr_expect_eq(e.entry, ENTRY);
	cr_expect_eq(memcmp(gpa(TEXT_GPA), img + 0x1000, 0x100), 0);
	cr_expect_eq(memcmp(gpa(DATA_GPA), img + 0x2000, DATA_FILESZ), 0);
	for (unsigned int i = DATA_FILESZ; i < DATA_MEMSZ; i++)
		cr_assert_eq(((uint8_t *)gpa(DATA_GPA))[i], 0, "bss byte %u",
			     i);
	cr_expect_eq(*(uint8_t *)gpa(DATA_GPA + DATA_MEMSZ), FILL);
	cr_expect_eq(e.lowest, TEXT_GPA);
	cr_expect_eq(e.highest, DATA_GPA + DATA_MEMSZ);
	for (uint64_t i = 0; i < 4096; i++)
		cr_assert_eq(gm.base[i], FILL, "page 0 byte %llu written",
			     (unsigned long long)i);
}

Test(multiboot, info_structure)
{
	struct multiboot_entry e;
	struct multiboot_info *mi;
	struct multiboot_mmap_entry mm[4];

	cr_assert_eq(load(&args, &e), 0, "%s", err);
	cr_expect_eq(e.info, MULTIBOOT_LOW_START, "info in low memory");
	mi = gpa(e.info);
	cr_expect_eq(mi->flags, MULTIBOOT_IF_MEMORY | MULTIBOOT_IF_CMDLINE |
					MULTIBOOT_IF_MMAP |
					MULTIBOOT_IF_LOADER);
	cr_expect_eq(mi->mem_lower, 640);
	cr_expect_eq(mi->mem_upper, (16 * MiB - MiB) >> 10);
	cr_expect_str_eq((char *)gpa(mi->cmdline), "x86/test.flat -v one");
	cr_expect_str_eq((char *)gpa(mi->boot_loader_name), "vmm");
	cr_expect_eq(mi->mods_count, 0);
	cr_assert_eq(mi->mmap_length, 3 * sizeof(mm[0]));
	memcpy(mm, gpa(mi->mmap_addr), mi->mmap_length);
	cr_expect(mm[0].size == 20 && mm[0].addr == 0 && mm[0].len == 0xa0000 &&
		  mm[0].type == MULTIBOOT_MMAP_RAM);
	cr_expect(mm[1].addr == 0xa0000 && mm[1].len == 0x60000 &&
		  mm[1].type == MULTIBOOT_MMAP_RESERVED);
	cr_expect(mm[2].addr == MiB && mm[2].len == 15 * MiB &&
		  mm[2].type == MULTIBOOT_MMAP_RAM);
	cr_expect_leq(mi->cmdline, e.area_end);
	cr_expect_geq(mi->mmap_addr, e.area_start);
}

Test(multiboot, name_alone_without_append)
{
	struct multiboot_args a = {.name = "k.flat"};
	struct multiboot_entry e;

	cr_assert_eq(load(&a, &e), 0, "%s", err);
	cr_expect_str_eq(
		(char *)gpa(((struct multiboot_info *)gpa(e.info))->cmdline),
		"k.flat");
}

Test(multiboot, module_page_aligned_with_its_string)
{
	static const char env[] = "NR_CPUS=2\nMEMSIZE=16\nTEST_DEVICE=0\n";
	struct multiboot_args a = args;
	struct multiboot_entry e;
	struct multiboot_info *mi;
	struct multiboot_module *mod;

	a.mod = env;
	a.modlen = sizeof(env) - 1;
	a.modname = "environ";
	cr_assert_eq(load(&a, &e), 0, "%s", err);
	mi = gpa(e.info);
	cr_expect(mi->flags & MULTIBOOT_IF_MODS);
	cr_assert_eq(mi->mods_count, 1);
	mod = gpa(mi->mods_addr);
	cr_expect_eq(mod->mod_start % 4096, 0);
	cr_expect_eq(mod->mod_end - mod->mod_start, a.modlen);
	cr_expect_eq(memcmp(gpa(mod->mod_start), env, a.modlen), 0);
	cr_expect_str_eq((char *)gpa(mod->string), "environ");
	cr_expect_eq(e.area_end, mod->mod_end);
}

Test(multiboot, low_memory_full_goes_after_the_image)
{
	struct multiboot_entry e;

	ph(0)->p_paddr = 0x8000; /* text fills [0x8000, 0xa0000) */
	ph(0)->p_memsz = 0x98000;
	eh()->e_entry = 0x8010;
	cr_assert_eq(load(&args, &e), 0, "%s", err);
	cr_expect_eq(e.info, DATA_GPA + DATA_MEMSZ);
}

Test(multiboot, segment_in_low_window_is_skipped)
{
	struct multiboot_entry e;

	ph(0)->p_paddr = 0x8000; /* like realmode.flat: 0x8000-0x18000 */
	ph(0)->p_memsz = 0x10000;
	eh()->e_entry = 0x8018;
	cr_assert_eq(load(&args, &e), 0, "%s", err);
	cr_expect_eq(e.info, 0x18000);
	cr_expect_eq(e.entry, 0x8018);
}

Test(multiboot, fixed_info_area)
{
	struct multiboot_args a = args;
	struct multiboot_entry e;

	a.info_gpa = 0x200000;
	cr_assert_eq(load(&a, &e), 0, "%s", err);
	cr_expect_eq(e.info, 0x200000);
	a.info_gpa = DATA_GPA;
	expect_err(-EINVAL, &a, "overlaps the information area");
	a.info_gpa = 0x800; /* page 0 */
	expect_err(-EINVAL, &a, "not page-aligned RAM above page 0");
}

Test(multiboot, aout_flag_refused)
{
	mb_header(MULTIBOOT_HF_AOUT);
	expect_err(-ENOEXEC, &args, "a.out address fields (bit 16)");
}

Test(multiboot, video_and_unknown_flags_refused)
{
	mb_header(MULTIBOOT_HF_VIDEO);
	expect_err(-ENOEXEC, &args, "video mode");
	mb_header(1U << 7);
	expect_err(-ENOEXEC, &args, "requirement bits 0x80");
	mb_header(MULTIBOOT_HF_PAGE_ALIGN | MULTIBOOT_HF_MEMORY | (1U << 20));
	struct multiboot_entry e;
	cr_expect_eq(load(&args, &e), 0, "optional bits are fine: %s", err);
}

Test(multiboot, no_header)
{
	memset(img + HDR_OFF, 0, 12);
	expect_err(-ENOEXEC, &args, "no Multiboot header");
}

Test(multiboot, header_but_no_loadable_segment)
{
	ph(0)->p_type = PT_NOTE;
	ph(1)->p_memsz = 0;
	ph(1)->p_filesz = 0;
	expect_err(-ENOEXEC, &args, "no loadable segment");
}

Test(multiboot, not_elf32)
{
	eh()->e_ident[EI_CLASS] = ELFCLASS64;
	expect_err(-ENOEXEC, &args, "not an ELF32 image");
	mb_make();
	memset(img, 0, 4);
	expect_err(-ENOEXEC, &args, "not an ELF file");
	mb_make();
	eh()->e_machine = EM_X86_64;
	expect_err(-ENOEXEC, &args, "i386");
}

Test(multiboot, truncated_file)
{
	struct multiboot_entry e;
	int r = multiboot_load(&gm, img, 0x2040, &args, &e, err, sizeof(err));

	cr_expect_eq(r, -ENOEXEC);
	cr_expect(strstr(err, "segment 1: file bytes [0x2000-0x2080) run "
			      "past the end of the file (8256 bytes)"),
		  "%s", err);
}

Test(multiboot, program_headers_out_of_file)
{
	eh()->e_phoff = IMG_LEN - 0x10;
	expect_err(-ENOEXEC, &args, "program headers");
	mb_make();
	eh()->e_phentsize = 40;
	expect_err(-ENOEXEC, &args, "program header size 40");
}

Test(multiboot, filesz_over_memsz)
{
	ph(1)->p_memsz = 0x10;
	expect_err(-ENOEXEC, &args, "file size 0x80 exceeds its memory size");
}

Test(multiboot, overlapping_segments)
{
	ph(1)->p_paddr = TEXT_GPA + 0x80;
	expect_err(-ENOEXEC, &args,
		   "segment 1 [0x400080-0x403080) overlaps "
		   "segment 0");
}

Test(multiboot, entry_outside_segments)
{
	eh()->e_entry = 0x100;
	expect_err(-ENOEXEC, &args, "entry point 0x100 is in no loadable");
}

Test(multiboot, segment_outside_ram)
{
	ph(1)->p_paddr = 0x2000000; /* 32 MiB, RAM is 16 */
	expect_err(-ENOSPC, &args,
		   "segment 1 [0x2000000-0x2003000) is outside "
		   "guest RAM (16 MiB)");
}

Test(multiboot, segment_in_mmio_hole)
{
	ph(1)->p_paddr = 0xbffff000;
	expect_err(-ENOSPC, &args, "overlaps the MMIO hole");
}

Test(multiboot, segment_wraps_4g)
{
	ph(1)->p_paddr = 0xfffff000;
	expect_err(-ENOEXEC, &args, "wraps past 4 GiB");
}

Test(multiboot, segment_over_page0_or_bios_area)
{
	struct multiboot_entry e;

	ph(1)->p_paddr = 0x800;
	expect_err(-ENOSPC, &args, "overlaps physical page 0");
	ph(1)->p_paddr = 0xe0000;
	expect_err(-ENOSPC, &args,
		   "overlaps the reserved area [0xa0000-"
		   "0x100000)");
	ph(1)->p_paddr = 0x1000; /* page 1 is fine */
	cr_expect_eq(load(&args, &e), 0, "%s", err);
}

Test(multiboot, no_room_for_the_info_area)
{
	ph(0)->p_paddr = 0x10000;
	ph(0)->p_memsz = 0x90000;
	eh()->e_entry = 0x10010;
	ph(1)->p_paddr = 16 * MiB - DATA_MEMSZ; /* ends at the end of RAM */
	expect_err(-ENOSPC, &args, "no room for the information area");
}

/* Registers full of garbage but for an APIC base the functions keep. */
static void regs_garbage(struct kvm_sregs *s, struct kvm_regs *r,
			 uint64_t apic_base)
{
	memset(s, 0x5a, sizeof(*s));
	memset(r, 0x5a, sizeof(*r));
	s->apic_base = apic_base;
}

Test(entry32, multiboot_state)
{
	struct kvm_sregs s;
	struct kvm_regs r;

	regs_garbage(&s, &r, 0xfee00900);
	entry32_multiboot(&s, &r, 0x4000bc, 0x10000);
	cr_expect_eq(r.rip, 0x4000bc);
	cr_expect_eq(r.rax, 0x2BADB002);
	cr_expect_eq(r.rbx, 0x10000);
	cr_expect_eq(r.rflags, 0x2, "IF clear");
	cr_expect_eq(r.rsp, 0);
	cr_expect_eq(s.cr0, 0x11, "PE|ET, paging off");
	cr_expect(s.cr3 == 0 && s.cr4 == 0 && s.efer == 0);
	cr_expect_eq(s.apic_base, 0xfee00900);
	cr_expect(s.cs.selector == 0x08 && s.cs.base == 0 &&
		  s.cs.limit == 0xffffffff && s.cs.type == 11 && s.cs.db == 1 &&
		  s.cs.l == 0 && s.cs.g == 1 && s.cs.present == 1 &&
		  s.cs.s == 1 && s.cs.dpl == 0);
	struct kvm_segment *d[] = {&s.ds, &s.es, &s.fs, &s.gs, &s.ss};
	for (int i = 0; i < 5; i++)
		cr_expect(d[i]->selector == 0x10 && d[i]->base == 0 &&
				  d[i]->limit == 0xffffffff &&
				  d[i]->type == 3 && d[i]->db == 1 &&
				  d[i]->g == 1 && d[i]->present == 1 &&
				  !d[i]->unusable,
			  "data segment %d", i);
	cr_expect(s.tr.type == 11 && s.tr.present && !s.tr.s);
	cr_expect(s.ldt.type == 2 && s.ldt.present && !s.ldt.s);
}

Test(entry32, reset_state_waits_for_sipi)
{
	struct kvm_sregs s;
	struct kvm_regs r;

	regs_garbage(&s, &r, 0xfee00800);
	entry32_reset(&s, &r);
	cr_expect_eq(r.rip, 0xfff0);
	cr_expect_eq(r.rflags, 0x2);
	cr_expect_eq(s.cr0, 0x60000010);
	cr_expect(s.cr3 == 0 && s.cr4 == 0 && s.efer == 0);
	cr_expect(s.cs.selector == 0xf000 && s.cs.base == 0xffff0000 &&
		  s.cs.limit == 0xffff && s.cs.db == 0 && s.cs.g == 0 &&
		  s.cs.type == 11 && s.cs.present);
	cr_expect(s.ss.selector == 0 && s.ss.base == 0 &&
		  s.ss.limit == 0xffff && s.ss.type == 3);
	cr_expect(s.gdt.base == 0 && s.gdt.limit == 0xffff);
	cr_expect(s.idt.base == 0 && s.idt.limit == 0xffff);
	cr_expect_eq(s.apic_base, 0xfee00800);
}
