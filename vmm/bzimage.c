/* SPDX-License-Identifier: MIT */
/*
 * bzimage.c - setup header checks, kernel placement, the zero page and the
 * 64-bit entry state (see bzimage.h). The file buffer is untrusted: each
 * field is read with memcpy at an offset checked against its length.
 */
#include <errno.h>
#include <string.h>

#include "common/err.h"
#include "common/page.h"
#include "vmm/bzimage.h"

typedef unsigned long long ull;

#define BZ_ERR(code, ...)                                                      \
	(err_set(err, errlen, "bzImage: " __VA_ARGS__), (code))
#define SECTOR	512U
#define MiB	0x100000ULL
#define PAGE_2M 0x200000ULL

#define PTE_P  (1ULL << 0)
#define PTE_RW (1ULL << 1)
#define PTE_PS (1ULL << 7)

#define X86_CR0_PE   (1ULL << 0)
#define X86_CR0_ET   (1ULL << 4)
#define X86_CR0_PG   (1ULL << 31)
#define X86_CR4_PAE  (1ULL << 5)
#define X86_EFER_LME (1ULL << 8)
#define X86_EFER_LMA (1ULL << 10)

static uint64_t rd(const uint8_t *b, size_t off, size_t n)
{
	uint64_t v = 0;

	memcpy(&v, b + off, n);
	return v;
}

static void wr(uint8_t *b, size_t off, uint64_t v, size_t n)
{
	memcpy(b + off, &v, n);
}

int bzimage_probe(const void *img, size_t len)
{
	return img && len >= BZ_HEADER + 4 && rd(img, BZ_HEADER, 4) == BZ_MAGIC;
}

static int bz_check_version(const uint8_t *b, struct bzimage *bz, char *err,
			    size_t errlen)
{
	bz->version = (uint16_t)rd(b, BZ_VERSION, 2);
	if (bz->version < BZ_MIN_VERSION)
		return BZ_ERR(-ENOEXEC,
			      "boot protocol %u.%02u is older than 2.06",
			      bz->version >> 8, bz->version & 0xff);
	bz->xloadflags = bz->version >= BZ_XLF_VERSION
				 ? (uint16_t)rd(b, BZ_XLOADFLAGS, 2)
				 : 0;
	if (!(bz->xloadflags & BZ_XLF_KERNEL_64))
		return BZ_ERR(-ENOEXEC,
			      "no 64-bit entry: XLF_KERNEL_64 is not in "
			      "xloadflags 0x%x (protocol %u.%02u)",
			      bz->xloadflags, bz->version >> 8,
			      bz->version & 0xff);
	if (!rd(b, BZ_RELOCATABLE, 1))
		return BZ_ERR(-ENOEXEC, "kernel is not relocatable "
					"(relocatable_kernel is 0)");
	return 0;
}

static int bz_check_kernel(const uint8_t *b, size_t len, struct bzimage *bz,
			   char *err, size_t errlen)
{
	unsigned int sects = (unsigned int)rd(b, BZ_SETUP_SECTS, 1);

	if (!sects)
		sects = 4; /* the protocol's rule for setup_sects 0 */
	bz->kernel_off = (sects + 1) * SECTOR;
	if (bz->kernel_off >= len)
		return BZ_ERR(-ENOEXEC,
			      "no protected-mode kernel: %u setup sectors end "
			      "at 0x%x, the file has %zu bytes",
			      sects, bz->kernel_off, len);
	bz->kernel_len = (uint32_t)(len - bz->kernel_off);
	bz->pref_address = rd(b, BZ_PREF_ADDRESS, 8);
	bz->kernel_align = (uint32_t)rd(b, BZ_KERNEL_ALIGN, 4);
	bz->init_size = (uint32_t)rd(b, BZ_INIT_SIZE, 4);
	bz->initrd_addr_max = (uint32_t)rd(b, BZ_INITRD_MAX, 4);
	bz->cmdline_size = (uint32_t)rd(b, BZ_CMDLINE_SIZE, 4);
	if (bz->init_size < bz->kernel_len)
		return BZ_ERR(-ENOEXEC,
			      "init_size 0x%x is smaller than the 0x%x-byte "
			      "protected-mode kernel",
			      bz->init_size, bz->kernel_len);
	if (bz->kernel_align & (bz->kernel_align - 1))
		return BZ_ERR(-ENOEXEC,
			      "kernel_alignment 0x%x is not a power of two",
			      bz->kernel_align);
	return 0;
}

int bzimage_parse(const void *img, size_t len, struct bzimage *bz, char *err,
		  size_t errlen)
{
	const uint8_t *b = img;
	int r;

	memset(bz, 0, sizeof(*bz));
	if (!bzimage_probe(img, len))
		return BZ_ERR(-ENOEXEC, "no \"HdrS\" setup header at 0x202");
	bz->hdr_end = BZ_HEADER + (uint32_t)rd(b, BZ_JUMP + 1, 1);
	if (len < BZ_HDR_MIN_END || len < bz->hdr_end)
		return BZ_ERR(-ENOEXEC,
			      "setup header truncated: the file ends at 0x%zx, "
			      "the header at 0x%x",
			      len,
			      bz->hdr_end > BZ_HDR_MIN_END ? bz->hdr_end
							   : BZ_HDR_MIN_END);
	if (bz->hdr_end < BZ_HDR_MIN_END)
		return BZ_ERR(-ENOEXEC,
			      "setup header ends at 0x%x, before init_size "
			      "(0x%x)",
			      bz->hdr_end, BZ_HDR_MIN_END);
	if (rd(b, BZ_BOOT_FLAG, 2) != BZ_BOOT_FLAG_VAL)
		return BZ_ERR(-ENOEXEC, "boot_flag 0x%llx is not 0xaa55",
			      (ull)rd(b, BZ_BOOT_FLAG, 2));
	r = bz_check_version(b, bz, err, errlen);
	if (!r)
		r = bz_check_kernel(b, len, bz, err, errlen);
	return r;
}

static int bz_fits(const struct mem_region *low, uint64_t at, uint64_t size)
{
	return at >= low->gpa && at + size <= low->gpa + low->size;
}

int bzimage_place(const struct bzimage *bz, const struct guest_mem *m,
		  uint64_t *gpa, char *err, size_t errlen)
{
	const struct mem_region *low = mem_find_region(m, MiB);
	uint64_t align = bz->kernel_align ? bz->kernel_align : PAGE_2M;
	uint64_t alt = (MiB + align - 1) & ~(align - 1);

	if (!low)
		return BZ_ERR(-ENOSPC, "no RAM at 1 MiB");
	if (!(bz->pref_address & (align - 1)) &&
	    bz_fits(low, bz->pref_address, bz->init_size)) {
		*gpa = bz->pref_address;
		return 0;
	}
	if (bz_fits(low, alt, bz->init_size)) {
		*gpa = alt;
		return 0;
	}
	return BZ_ERR(-ENOSPC,
		      "the kernel needs init_size 0x%x bytes at 0x%llx or "
		      "0x%llx; RAM from 1 MiB ends at 0x%llx",
		      bz->init_size, (ull)bz->pref_address, (ull)alt,
		      (ull)(low->gpa + low->size));
}

void bzimage_zero_page(const void *img, const struct bzimage *bz,
		       const struct bzimage_args *a, uint8_t *zp)
{
	const uint8_t *b = img;
	int n = a->nr_e820 < BZ_E820_MAX ? a->nr_e820 : BZ_E820_MAX;

	memset(zp, 0, PAGE_SIZE);
	memcpy(zp + BZ_SETUP_SECTS, b + BZ_SETUP_SECTS,
	       bz->hdr_end - BZ_SETUP_SECTS);
	wr(zp, BZ_TYPE_OF_LOADER, BZ_LOADER_OTHER, 1);
	wr(zp, BZ_CODE32_START, a->load_gpa, 4);
	wr(zp, BZ_CMD_LINE_PTR, a->cmdline_gpa, 4);
	wr(zp, BZ_RAMDISK_IMAGE, a->initrd_gpa, 4);
	wr(zp, BZ_RAMDISK_SIZE, a->initrd_size, 4);
	wr(zp, BZ_E820_ENTRIES, (uint64_t)n, 1);
	for (int i = 0; i < n; i++) {
		uint8_t *e = zp + BZ_E820_TABLE + (size_t)i * 20;

		wr(e, 0, a->e820[i].addr, 8);
		wr(e, 8, a->e820[i].size, 8);
		wr(e, 16, a->e820[i].type, 4);
	}
}

void bzimage_gdt(uint64_t gdt[4])
{
	gdt[0] = 0;
	gdt[1] = 0;
	gdt[2] = 0x00af9b000000ffffULL; /* 64-bit code, execute/read */
	gdt[3] = 0x00cf93000000ffffULL; /* flat data, read/write */
}

void bzimage_page_tables(uint8_t *buf, uint64_t base)
{
	uint64_t *pml4 = (uint64_t *)buf;
	uint64_t *pdpt = (uint64_t *)(buf + PAGE_SIZE);

	memset(buf, 0, LINUX_PGT_PAGES * PAGE_SIZE);
	pml4[0] = (base + PAGE_SIZE) | PTE_P | PTE_RW;
	for (uint64_t g = 0; g < 4; g++) {
		uint64_t *pd = (uint64_t *)(buf + (2 + g) * PAGE_SIZE);

		pdpt[g] = (base + (2 + g) * PAGE_SIZE) | PTE_P | PTE_RW;
		for (uint64_t i = 0; i < 512; i++)
			pd[i] = ((g << 30) + i * PAGE_2M) | PTE_P | PTE_RW |
				PTE_PS;
	}
}

static void bz_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, int code)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->limit = 0xffffffffU;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = code;
	s->db = !code;
}

void bzimage_entry_state(struct kvm_sregs *s, struct kvm_regs *r,
			 uint64_t entry, uint64_t zero_page)
{
	uint64_t apic_base = s->apic_base;
	__u64 bitmap[sizeof(s->interrupt_bitmap) / sizeof(__u64)];
	struct kvm_segment tr = s->tr, ldt = s->ldt;

	memcpy(bitmap, s->interrupt_bitmap, sizeof(bitmap));
	memset(s, 0, sizeof(*s));
	memset(r, 0, sizeof(*r));
	s->apic_base = apic_base;
	memcpy(s->interrupt_bitmap, bitmap, sizeof(bitmap));
	bz_seg(&s->cs, BZ_BOOT_CS, 11, 1);
	bz_seg(&s->ds, BZ_BOOT_DS, 3, 0);
	s->es = s->fs = s->gs = s->ss = s->ds;
	tr.type = 11; /* a 64-bit TSS, busy: VM entry insists */
	tr.present = 1;
	s->tr = tr;
	s->ldt = ldt;
	s->gdt.base = LINUX_GDT_GPA;
	s->gdt.limit = 4 * 8 - 1;
	s->cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_PG;
	s->cr3 = LINUX_PGT_GPA;
	s->cr4 = X86_CR4_PAE;
	s->efer = X86_EFER_LME | X86_EFER_LMA;
	r->rip = entry;
	r->rsi = zero_page;
	r->rsp = LINUX_STACK_TOP;
	r->rflags = 0x2;
}
