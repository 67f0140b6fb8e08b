/* SPDX-License-Identifier: MIT */
/*
 * test_elf.c - the ELF64 guest loader against good and malformed images.
 *
 * elf_image_make() writes a valid static x86-64 image with N PT_LOAD
 * segments into a buffer; each test mutates one field and checks that
 * elf_parse() refuses it with the right message (and never reads outside
 * the buffer: run under valgrind or ASan). elf_load() runs against a real
 * 16 MiB guest_mem (a memfd, no KVM), and elf_load_file() against missing,
 * directory, empty, text and valid files.
 */
#include <criterion/criterion.h>
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ept/mem.h"
#include "common/guest_abi.h"
#include "vmm/loader.h"

#define SEG_FILESZ 0x800
#define SEG_MEMSZ  0x1800 /* 0x1000 bytes of .bss after the data */
#define SEG_STRIDE 0x10000
#define ENTRY	   (GUEST_KERNEL_BASE + 0x10)
#define IMG_MAX	   (0x1000 * (ELF_MAX_SEGS + 2))

static uint8_t img_buf[IMG_MAX];
static struct elf_image img;
static char err[256];

static Elf64_Ehdr *ehdr(void)
{
	return (Elf64_Ehdr *)img_buf;
}

static Elf64_Phdr *phdr(int i)
{
	return (Elf64_Phdr *)(img_buf + sizeof(Elf64_Ehdr)) + i;
}

static uint8_t seg_byte(int seg, size_t i)
{
	return (uint8_t)(seg * 31 + i * 7 + 1);
}

/*
 * A valid image with n PT_LOAD segments: headers in the first page, segment
 * i's data in page i + 1, loaded at GUEST_KERNEL_BASE + i * SEG_STRIDE.
 * Segment 0 is R+X and holds the entry point, the others are R+W.
 * Returns the image length.
 */
static size_t elf_image_make(int n)
{
	Elf64_Ehdr *eh = ehdr();
	int i;

	memset(img_buf, 0, sizeof(img_buf));
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_X86_64;
	eh->e_version = EV_CURRENT;
	eh->e_entry = ENTRY;
	eh->e_phoff = sizeof(Elf64_Ehdr);
	eh->e_ehsize = sizeof(Elf64_Ehdr);
	eh->e_phentsize = sizeof(Elf64_Phdr);
	eh->e_phnum = n;
	for (i = 0; i < n; i++) {
		Elf64_Phdr *ph = phdr(i);
		size_t j;

		ph->p_type = PT_LOAD;
		ph->p_flags = i == 0 ? PF_R | PF_X : PF_R | PF_W;
		ph->p_offset = 0x1000 * (i + 1);
		ph->p_paddr = GUEST_KERNEL_BASE + (uint64_t)i * SEG_STRIDE;
		ph->p_vaddr = ph->p_paddr;
		ph->p_filesz = SEG_FILESZ;
		ph->p_memsz = SEG_MEMSZ;
		ph->p_align = 0x1000;
		for (j = 0; j < SEG_FILESZ; j++)
			img_buf[ph->p_offset + j] = seg_byte(i, j);
	}
	return 0x1000 * (n + 1);
}

static int parse(size_t len)
{
	memset(err, 0, sizeof(err));
	return elf_parse(img_buf, len, &img, err, sizeof(err));
}

/* elf_parse() must fail with -ENOEXEC and a message containing want. */
static void expect_reject(size_t len, const char *want)
{
	cr_expect_eq(parse(len), -ENOEXEC, "accepted, want \"%s\"", want);
	cr_expect(strstr(err, want) != NULL, "err \"%s\", want \"%s\"", err,
		  want);
}

Test(elf_parse, valid_one_segment)
{
	size_t len = elf_image_make(1);

	cr_assert_eq(parse(len), 0, "%s", err);
	cr_expect_eq(img.entry, ENTRY);
	cr_assert_eq(img.nr_segs, 1);
	cr_expect_eq(img.segs[0].gpa, GUEST_KERNEL_BASE);
	cr_expect_eq(img.segs[0].off, 0x1000);
	cr_expect_eq(img.segs[0].filesz, SEG_FILESZ);
	cr_expect_eq(img.segs[0].memsz, SEG_MEMSZ);
	cr_expect_eq(img.segs[0].flags, PF_R | PF_X);
	cr_expect_eq(img.lowest, GUEST_KERNEL_BASE);
	cr_expect_eq(img.highest, GUEST_KERNEL_BASE + SEG_MEMSZ);
}

Test(elf_parse, valid_many_segments)
{
	size_t len = elf_image_make(ELF_MAX_SEGS);
	int i;

	cr_assert_eq(parse(len), 0, "%s", err);
	cr_assert_eq(img.nr_segs, ELF_MAX_SEGS);
	for (i = 0; i < ELF_MAX_SEGS; i++)
		cr_expect_eq(img.segs[i].gpa,
			     GUEST_KERNEL_BASE + (uint64_t)i * SEG_STRIDE);
	cr_expect_eq(img.lowest, GUEST_KERNEL_BASE);
	cr_expect_eq(img.highest, GUEST_KERNEL_BASE +
					  (ELF_MAX_SEGS - 1) * SEG_STRIDE +
					  SEG_MEMSZ);
}

Test(elf_parse, segments_in_any_order)
{
	size_t len = elf_image_make(3);
	Elf64_Phdr tmp = *phdr(0);

	*phdr(0) = *phdr(2);
	*phdr(2) = tmp;
	cr_assert_eq(parse(len), 0, "%s", err);
	cr_expect_eq(img.lowest, GUEST_KERNEL_BASE);
	cr_expect_eq(img.highest,
		     GUEST_KERNEL_BASE + 2 * SEG_STRIDE + SEG_MEMSZ);
}

Test(elf_parse, other_headers_and_empty_loads_are_skipped)
{
	size_t len = elf_image_make(4);

	phdr(1)->p_type = PT_GNU_STACK;
	phdr(2)->p_type = PT_NOTE;
	phdr(3)->p_filesz = 0;
	phdr(3)->p_memsz = 0;
	phdr(3)->p_paddr = 0; /* an empty segment is not "below the base" */
	cr_assert_eq(parse(len), 0, "%s", err);
	cr_expect_eq(img.nr_segs, 1);
	cr_expect_eq(img.highest, GUEST_KERNEL_BASE + SEG_MEMSZ);
}

Test(elf_parse, bss_only_segment)
{
	size_t len = elf_image_make(2);

	phdr(1)->p_filesz = 0;
	phdr(1)->p_offset = 0;
	cr_assert_eq(parse(len), 0, "%s", err);
	cr_expect_eq(img.segs[1].filesz, 0);
	cr_expect_eq(img.segs[1].memsz, SEG_MEMSZ);
}

Test(elf_parse, truncated_at_named_lengths)
{
	static const size_t lens[] = {
		0,
		3,
		16,
		63,
		64,
		64 + 20,		 /* in the first program header */
		64 + 56 + 30,		 /* in the second program header */
		0x1000,			 /* headers only */
		0x1000 + SEG_FILESZ / 2, /* in segment 0 */
		0x2000 + SEG_FILESZ - 1, /* one byte short of the end */
	};
	size_t i, full = elf_image_make(2);

	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		cr_assert_lt(lens[i], full);
		expect_reject(lens[i], "file truncated");
	}
	cr_expect_eq(elf_parse(NULL, 0, &img, err, sizeof(err)), -ENOEXEC);
	cr_expect(strstr(err, "file truncated: 0 bytes") != NULL, "%s", err);
	expect_reject(0, "file truncated: 0 bytes is less than the ELF "
			 "header (64 bytes)");
	expect_reject(64 + 20, "file truncated: program headers end at 0xb0 "
			       "beyond file size 0x54");
	expect_reject(0x1000 + 1, "file truncated: segment 0 data "
				  "[0x1000-0x1800) ends beyond file size "
				  "0x1001");
}

Test(elf_parse, truncated_at_every_length)
{
	size_t full = elf_image_make(3) - 0x1000 + SEG_FILESZ;
	size_t len;

	cr_assert_eq(parse(full), 0, "%s", err);
	for (len = 0; len < full; len++) {
		int ret = parse(len);

		cr_assert_eq(ret, -ENOEXEC, "length %zu accepted", len);
		cr_assert(strstr(err, "file truncated") != NULL,
			  "length %zu: \"%s\"", len, err);
	}
}

Test(elf_parse, bad_magic)
{
	size_t len = elf_image_make(1);

	img_buf[1] = 'e';
	expect_reject(len, "not an ELF file (bad magic)");
	expect_reject(3, "not an ELF file (bad magic)");
	memcpy(img_buf, "#!/bin/sh\n", 10);
	expect_reject(len, "not an ELF file (bad magic)");
}

Test(elf_parse, class32)
{
	size_t len = elf_image_make(1);

	ehdr()->e_ident[EI_CLASS] = ELFCLASS32;
	expect_reject(len, "ELF class 1 (32-bit) is not supported: need "
			   "ELFCLASS64");
	ehdr()->e_ident[EI_CLASS] = 7;
	expect_reject(len, "ELF class 7 (invalid)");
}

Test(elf_parse, big_endian)
{
	size_t len = elf_image_make(1);

	ehdr()->e_ident[EI_DATA] = ELFDATA2MSB;
	expect_reject(len, "ELF data encoding 2 (big-endian) is not "
			   "supported: need ELFDATA2LSB");
}

Test(elf_parse, bad_version)
{
	size_t len = elf_image_make(1);

	ehdr()->e_ident[EI_VERSION] = 2;
	expect_reject(len, "ELF ident version 2 is not supported");
	elf_image_make(1);
	ehdr()->e_version = 0;
	expect_reject(len, "ELF version 0 is not supported");
}

Test(elf_parse, wrong_machine)
{
	size_t len = elf_image_make(1);

	ehdr()->e_machine = EM_AARCH64;
	expect_reject(len, "ELF machine 183 (AArch64) is not supported: need "
			   "EM_X86_64 (62)");
	ehdr()->e_machine = EM_386;
	expect_reject(len, "ELF machine 3 (i386)");
}

Test(elf_parse, shared_object)
{
	size_t len = elf_image_make(1);

	ehdr()->e_type = ET_DYN;
	expect_reject(len, "ELF type 3 (ET_DYN");
	expect_reject(len, "need ET_EXEC");
	ehdr()->e_type = ET_REL;
	expect_reject(len, "ELF type 1 (ET_REL");
}

Test(elf_parse, bad_phentsize)
{
	size_t len = elf_image_make(1);

	ehdr()->e_phentsize = 32;
	expect_reject(len, "program header entry size 32 is wrong: need 56");
	ehdr()->e_phentsize = 0;
	expect_reject(len, "program header entry size 0 is wrong");
}

Test(elf_parse, phoff_past_end)
{
	size_t len = elf_image_make(1);

	ehdr()->e_phoff = len;
	expect_reject(len, "file truncated: program headers end at 0x2038 "
			   "beyond file size 0x2000");
	ehdr()->e_phoff = len - 8;
	expect_reject(len, "file truncated: program headers end");
	ehdr()->e_phoff = UINT64_MAX - 8;
	expect_reject(len, "program header offset 0xfffffffffffffff7 + table "
			   "size 0x38 overflows");
	ehdr()->e_phoff = UINT64_MAX;
	expect_reject(len, "overflows");
}

Test(elf_parse, bad_phnum)
{
	size_t len = elf_image_make(1);

	ehdr()->e_phnum = 0xffff;
	expect_reject(len, "program header count 65535 is out of range 1..");
	ehdr()->e_phnum = ELF_MAX_PHDRS + 1;
	expect_reject(len, "program header count");
	ehdr()->e_phnum = 0;
	expect_reject(len, "program header count 0 is out of range");
}

Test(elf_parse, filesz_above_memsz)
{
	size_t len = elf_image_make(2);

	phdr(1)->p_filesz = 0x801;
	phdr(1)->p_memsz = 0x800;
	expect_reject(len, "segment 1: file size 0x801 is larger than memory "
			   "size 0x800");
}

Test(elf_parse, offset_plus_filesz_overflows)
{
	size_t len = elf_image_make(2);

	phdr(1)->p_offset = UINT64_MAX - 0x10;
	expect_reject(len, "segment 1: file offset 0xffffffffffffffef + size "
			   "0x800 overflows");
	phdr(1)->p_offset = 0x2000;
	phdr(1)->p_filesz = UINT64_MAX;
	phdr(1)->p_memsz = UINT64_MAX;
	expect_reject(len, "overflows");
}

Test(elf_parse, segment_beyond_file)
{
	size_t len = elf_image_make(2);

	phdr(1)->p_offset = len;
	expect_reject(len, "file truncated: segment 1 data [0x3000-0x3800) "
			   "ends beyond file size 0x3000");
}

Test(elf_parse, paddr_plus_memsz_overflows)
{
	size_t len = elf_image_make(2);

	phdr(1)->p_paddr = UINT64_MAX - 0x100;
	expect_reject(len, "segment 1: address 0xfffffffffffffeff + memory "
			   "size 0x1800 overflows");
	phdr(1)->p_paddr = GUEST_KERNEL_BASE + SEG_STRIDE;
	phdr(1)->p_memsz = UINT64_MAX;
	expect_reject(len, "overflows");
}

Test(elf_parse, overlapping_segments)
{
	size_t len = elf_image_make(3);

	phdr(2)->p_paddr = 0x200000;
	phdr(2)->p_memsz = 0x1000;
	phdr(1)->p_paddr = 0x1ff000;
	phdr(1)->p_memsz = 0x2000;
	expect_reject(len, "segment 2 [0x200000-0x201000) overlaps segment 1 "
			   "[0x1ff000-0x201000)");

	/* Touching is fine; one byte of overlap is not. */
	elf_image_make(2);
	phdr(1)->p_paddr = GUEST_KERNEL_BASE + SEG_MEMSZ;
	cr_expect_eq(parse(len), 0, "%s", err);
	phdr(1)->p_paddr = GUEST_KERNEL_BASE + SEG_MEMSZ - 1;
	expect_reject(len, "segment 1 [0x1017ff-0x102fff) overlaps segment 0 "
			   "[0x100000-0x101800)");

	/* One inside the other. */
	elf_image_make(2);
	phdr(1)->p_paddr = GUEST_KERNEL_BASE + 0x100;
	phdr(1)->p_memsz = 0x900;
	expect_reject(len, "overlaps segment 0");
}

Test(elf_parse, below_kernel_base)
{
	size_t len = elf_image_make(1);

	phdr(0)->p_paddr = 0x1000;
	ehdr()->e_entry = 0x1010;
	expect_reject(len, "segment 0 at 0x1000 is below the kernel base "
			   "0x100000");
	phdr(0)->p_paddr = 0;
	expect_reject(len, "segment 0 at 0x0 is below");
}

Test(elf_parse, entry_outside_executable_segment)
{
	size_t len = elf_image_make(2);

	ehdr()->e_entry = GUEST_KERNEL_BASE + SEG_STRIDE; /* in R+W seg 1 */
	expect_reject(len, "entry point 0x110000 is not in an executable "
			   "segment");
	ehdr()->e_entry = 0;
	expect_reject(len, "entry point 0x0 is not in an executable segment");
	ehdr()->e_entry = GUEST_KERNEL_BASE + SEG_MEMSZ; /* just past seg 0 */
	expect_reject(len, "entry point 0x101800");
	ehdr()->e_entry = GUEST_KERNEL_BASE + SEG_MEMSZ - 1;
	cr_expect_eq(parse(len), 0, "%s", err);
}

Test(elf_parse, no_load_segment)
{
	size_t len = elf_image_make(2);

	phdr(0)->p_type = PT_NOTE;
	phdr(1)->p_type = PT_GNU_STACK;
	expect_reject(len, "no loadable segment");
	elf_image_make(1);
	phdr(0)->p_memsz = 0;
	phdr(0)->p_filesz = 0;
	expect_reject(len, "no loadable segment");
}

Test(elf_parse, too_many_segments)
{
	size_t len = elf_image_make(ELF_MAX_SEGS + 1);

	expect_reject(len, "too many PT_LOAD segments: at most 16");
}

Test(elf_parse, no_error_buffer)
{
	size_t len = elf_image_make(1);

	ehdr()->e_machine = 0;
	cr_expect_eq(elf_parse(img_buf, len, &img, NULL, 0), -ENOEXEC);
	cr_expect_eq(elf_parse(img_buf, len, &img, err, 1), -ENOEXEC);
	cr_expect_eq(err[0], '\0');
}

static struct guest_mem gm;

static void gm_setup(void)
{
	cr_assert_eq(mem_create(&gm, 16ULL << 20), 0);
	memset(gm.base, 0xff, gm.size);
}

static void gm_teardown(void)
{
	mem_destroy(&gm);
}

TestSuite(elf_load, .init = gm_setup, .fini = gm_teardown);

Test(elf_load, copies_and_zeroes_bss)
{
	size_t len = elf_image_make(3);
	int s;
	size_t j;

	cr_assert_eq(parse(len), 0, "%s", err);
	cr_assert_eq(elf_load(&img, img_buf, &gm, err, sizeof(err)), 0, "%s",
		     err);
	for (s = 0; s < 3; s++) {
		const uint8_t *p = gm.base + GUEST_KERNEL_BASE + s * SEG_STRIDE;

		for (j = 0; j < SEG_FILESZ; j++)
			cr_assert_eq(p[j], seg_byte(s, j), "seg %d byte %zu", s,
				     j);
		for (; j < SEG_MEMSZ; j++)
			cr_assert_eq(p[j], 0, "seg %d bss byte %zu", s, j);
		/* Not a byte more. */
		cr_expect_eq(p[SEG_MEMSZ], 0xff);
		cr_expect_eq(p[-1], 0xff);
	}
}

Test(elf_load, segment_beyond_ram)
{
	size_t len = elf_image_make(2);

	phdr(1)->p_paddr = (16ULL << 20) - 0x1000; /* straddles the end */
	cr_assert_eq(parse(len), 0, "%s", err);
	cr_expect_eq(elf_load(&img, img_buf, &gm, err, sizeof(err)), -ENOSPC);
	cr_expect(strstr(err, "segment 1 [0xfff000-0x1000800) does not fit "
			      "in guest RAM (16 MiB") != NULL,
		  "%s", err);

	phdr(1)->p_paddr = 1ULL << 32;
	cr_assert_eq(parse(len), 0, "%s", err);
	cr_expect_eq(elf_load(&img, img_buf, &gm, err, sizeof(err)), -ENOSPC);
	cr_expect(strstr(err, "segment 1 [0x100000000-") != NULL, "%s", err);
}

Test(elf_load, segment_above_the_hole)
{
	static uint8_t ram[0x4000];
	struct guest_mem fake = {
		.memfd = -1,
		.base = ram,
		.size = sizeof(ram),
		.nr_regions = 1,
		.regions = {{.gpa = GUEST_MMIO_HOLE_END,
			     .size = sizeof(ram),
			     .hva = ram}},
	};
	size_t len = elf_image_make(1);

	/* RAM above 4 GiB is RAM, but not where a guest image may go. */
	phdr(0)->p_paddr = GUEST_MMIO_HOLE_END;
	ehdr()->e_entry = GUEST_MMIO_HOLE_END;
	cr_assert_eq(parse(len), 0, "%s", err);
	cr_expect_eq(elf_load(&img, img_buf, &fake, err, sizeof(err)), -ENOSPC);
	cr_expect(strstr(err, "segment 0 [0x100000000-0x100001800)") != NULL,
		  "%s", err);
}

static char tmp_path[64];

static void write_tmp(const void *data, size_t len)
{
	int fd;

	strcpy(tmp_path, "/tmp/test_elf.XXXXXX");
	fd = mkstemp(tmp_path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void expect_file_err(const char *path, int ret, const char *cause)
{
	char want[512];
	struct elf_image fi;

	snprintf(want, sizeof(want), "kernel %s: %s", path, cause);
	memset(err, 0, sizeof(err));
	cr_expect_eq(elf_load_file(path, &gm, &fi, err, sizeof(err)), ret);
	cr_expect_str_eq(err, want);
}

Test(elf_load, file_missing)
{
	expect_file_err("/nonexistent/x/y", -ENOENT,
			"No such file or directory");
}

Test(elf_load, file_is_directory)
{
	expect_file_err("/tmp", -EISDIR, "is a directory");
}

Test(elf_load, file_empty)
{
	write_tmp("", 0);
	expect_file_err(tmp_path, -ENOEXEC, "empty file");
	unlink(tmp_path);
}

Test(elf_load, file_text)
{
	static const char text[] = "console=ttyS0 this is not a kernel\n";

	write_tmp(text, sizeof(text) - 1);
	expect_file_err(tmp_path, -ENOEXEC, "not an ELF file (bad magic)");
	unlink(tmp_path);
}

Test(elf_load, file_bad_elf)
{
	size_t len = elf_image_make(1);

	ehdr()->e_machine = EM_AARCH64;
	write_tmp(img_buf, len);
	expect_file_err(tmp_path, -ENOEXEC,
			"ELF machine 183 (AArch64) is not supported: need "
			"EM_X86_64 (62)");
	unlink(tmp_path);
}

Test(elf_load, file_valid)
{
	size_t len = elf_image_make(2);
	struct elf_image fi;
	const uint8_t *p = gm.base + GUEST_KERNEL_BASE + SEG_STRIDE;

	write_tmp(img_buf, len);
	cr_expect_eq(elf_load_file(tmp_path, &gm, &fi, err, sizeof(err)), 0,
		     "%s", err);
	unlink(tmp_path);
	cr_expect_eq(fi.entry, ENTRY);
	cr_expect_eq(fi.nr_segs, 2);
	cr_expect_eq(p[0], seg_byte(1, 0));
	cr_expect_eq(p[SEG_FILESZ], 0);
}
