/* SPDX-License-Identifier: MIT */
/*
 * linux_boot.c - what the PVH and bzImage paths share (layout in
 * linux_boot.h): the e820 map, initrd placement, and the VM-level glue
 * that loads a kernel into RAM and starts the BSP at its entry.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/guest_abi.h"
#include "common/page.h"
#include "vmm/acpi.h"
#include "vmm/bzimage.h"
#include "vmm/entry32.h"
#include "vmm/linux_boot.h"
#include "vmm/loader.h"
#include "vmm/pvh.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

typedef unsigned long long ull;

enum linux_kind linux_probe(const void *img, size_t len)
{
	uint32_t entry;
	char why[8];

	if (bzimage_probe(img, len))
		return LINUX_BZIMAGE;
	/* A malformed note is PVH too: vm_load_linux() says what is wrong. */
	return pvh_find_entry(img, len, &entry, why, sizeof(why)) ? LINUX_PVH
								  : LINUX_NONE;
}

static void e820_add(struct linux_e820 *e, int *n, uint64_t addr, uint64_t size,
		     uint32_t type)
{
	e[(*n)++] = (struct linux_e820){addr, size, type};
}

int linux_e820(const struct guest_mem *m, struct linux_e820 *e)
{
	int n = 0, hole = 0;

	for (int i = 0; i < m->nr_regions; i++) {
		uint64_t lo = m->regions[i].gpa;
		uint64_t hi = lo + m->regions[i].size;

		if (!hole && lo >= GUEST_MMIO_HOLE_END) {
			e820_add(e, &n, GUEST_MMIO_HOLE_BASE,
				 GUEST_MMIO_HOLE_END - GUEST_MMIO_HOLE_BASE,
				 LINUX_E820_RESERVED);
			hole = 1;
		}
		if (lo < LINUX_LOW_END && hi > LINUX_HIGH_START) {
			e820_add(e, &n, lo, LINUX_LOW_END - lo, LINUX_E820_RAM);
			e820_add(e, &n, LINUX_LOW_END,
				 LINUX_HIGH_START - LINUX_LOW_END,
				 LINUX_E820_RESERVED);
			lo = LINUX_HIGH_START;
		}
		e820_add(e, &n, lo, hi - lo, LINUX_E820_RAM);
	}
	if (!hole)
		e820_add(e, &n, GUEST_MMIO_HOLE_BASE,
			 GUEST_MMIO_HOLE_END - GUEST_MMIO_HOLE_BASE,
			 LINUX_E820_RESERVED);
	return n;
}

int linux_place_initrd(const struct guest_mem *m, uint64_t kernel_end,
		       uint64_t max_end, uint64_t size, uint64_t *gpa,
		       char *err, size_t errlen)
{
	const struct mem_region *low = mem_find_region(m, LINUX_HIGH_START);
	uint64_t end, at;

	if (!low) {
		err_set(err, errlen, "initrd: no RAM at 1 MiB");
		return -ENOSPC;
	}
	end = low->gpa + low->size;
	if (max_end < end)
		end = max_end;
	end &= ~(PAGE_SIZE - 1);
	kernel_end = (kernel_end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	at = (end - size) & ~(PAGE_SIZE - 1);
	if (size > end || at < kernel_end) {
		err_set(err, errlen,
			"initrd of %llu bytes does not fit between the "
			"kernel's end 0x%llx and 0x%llx",
			(ull)size, (ull)kernel_end, (ull)end);
		return -ENOSPC;
	}
	*gpa = at;
	return 0;
}

/* ---- the VM glue ---------------------------------------------------------
 */

/* What both paths hand from the image-specific part to the common part. */
struct linux_load {
	const uint8_t *img;
	size_t len;
	const char *cmdline;
	size_t cmdline_max; /* bytes, NUL excluded */
	uint8_t *initrd;
	size_t initrd_size;
	uint64_t initrd_max_end;
	struct bzimage bz;
	struct linux_e820 e820[LINUX_E820_MAX];
	int nr_e820;
	uint64_t rsdp;
};

static int lx_load_pvh(struct vm *vm, struct linux_load *l, char *err,
		       size_t errlen)
{
	struct elf_image ei;
	uint32_t entry = 0;
	int r = pvh_find_entry(l->img, l->len, &entry, err, errlen);

	if (r < 0)
		return r;
	r = elf_parse(l->img, l->len, &ei, err, errlen);
	if (!r)
		r = elf_load(&ei, l->img, &vm->mem, err, errlen);
	if (r)
		return r;
	vm->lx.entry = entry;
	vm->lx.kernel_start = ei.lowest;
	vm->lx.kernel_end = ei.highest;
	l->initrd_max_end = GUEST_MMIO_HOLE_BASE;
	l->cmdline_max = LINUX_CMDLINE_MAX - 1;
	return 0;
}

static int lx_load_bzimage(struct vm *vm, struct linux_load *l, char *err,
			   size_t errlen)
{
	uint64_t at;
	int r = bzimage_parse(l->img, l->len, &l->bz, err, errlen);

	if (!r)
		r = bzimage_place(&l->bz, &vm->mem, &at, err, errlen);
	if (r)
		return r;
	r = mem_write(&vm->mem, at, l->img + l->bz.kernel_off,
		      l->bz.kernel_len);
	if (r) {
		err_set(err, errlen, "bzImage: kernel at 0x%llx: not RAM",
			(ull)at);
		return r;
	}
	vm->lx.entry = at + BZ_ENTRY64_OFF;
	vm->lx.kernel_start = at;
	vm->lx.kernel_end = at + l->bz.init_size;
	l->initrd_max_end = (uint64_t)l->bz.initrd_addr_max + 1;
	l->cmdline_max = l->bz.cmdline_size < LINUX_CMDLINE_MAX - 1
				 ? l->bz.cmdline_size
				 : LINUX_CMDLINE_MAX - 1;
	return 0;
}

static int lx_write_initrd(struct vm *vm, struct linux_load *l, char *err,
			   size_t errlen)
{
	int r;

	if (!l->initrd)
		return 0;
	r = linux_place_initrd(&vm->mem, vm->lx.kernel_end, l->initrd_max_end,
			       l->initrd_size, &vm->lx.initrd, err, errlen);
	if (r)
		return r;
	vm->lx.initrd_size = l->initrd_size;
	return mem_write(&vm->mem, vm->lx.initrd, l->initrd, l->initrd_size);
}

static int lx_write_cmdline(struct vm *vm, struct linux_load *l, char *err,
			    size_t errlen)
{
	size_t n = strlen(l->cmdline);

	if (n > l->cmdline_max) {
		err_set(err, errlen,
			"command line of %zu bytes: the kernel takes at most "
			"%zu",
			n, l->cmdline_max);
		return -EINVAL;
	}
	return mem_write(&vm->mem, LINUX_CMDLINE_GPA, l->cmdline, n + 1);
}

/* bzImage: zero page, boot GDT, identity page tables. */
static int lx_write_bzimage_info(struct vm *vm, struct linux_load *l,
				 uint8_t *page)
{
	struct bzimage_args a = {
		.load_gpa = vm->lx.kernel_start,
		.cmdline_gpa = LINUX_CMDLINE_GPA,
		.initrd_gpa = vm->lx.initrd,
		.initrd_size = vm->lx.initrd_size,
		.e820 = l->e820,
		.nr_e820 = l->nr_e820,
	};
	static uint8_t pgt[LINUX_PGT_PAGES * PAGE_SIZE];
	uint64_t gdt[4];
	int r;

	bzimage_zero_page(l->img, &l->bz, &a, page);
	vm->lx.info = LINUX_ZERO_PAGE_GPA;
	r = mem_write(&vm->mem, LINUX_ZERO_PAGE_GPA, page, PAGE_SIZE);
	bzimage_gdt(gdt);
	if (!r)
		r = mem_write(&vm->mem, LINUX_GDT_GPA, gdt, sizeof(gdt));
	bzimage_page_tables(pgt, LINUX_PGT_GPA);
	if (!r)
		r = mem_write(&vm->mem, LINUX_PGT_GPA, pgt, sizeof(pgt));
	return r;
}

/* The boot data each protocol hands over: start info, or zero page. */
static int lx_write_info(struct vm *vm, struct linux_load *l)
{
	uint8_t page[PAGE_SIZE];

	if (vm->lx.kind == LINUX_PVH) {
		struct pvh_info_args a = {
			.e820 = l->e820,
			.nr_e820 = l->nr_e820,
			.cmdline_gpa = LINUX_CMDLINE_GPA,
			.rsdp_gpa = l->rsdp,
			.initrd_gpa = vm->lx.initrd,
			.initrd_size = vm->lx.initrd_size,
		};

		pvh_build_info(&a, page);
		vm->lx.info = LINUX_START_INFO_GPA;
		return mem_write(&vm->mem, LINUX_START_INFO_GPA, page,
				 PAGE_SIZE);
	}
	return lx_write_bzimage_info(vm, l, page);
}

static int lx_load(struct vm *vm, struct linux_load *l, char *why,
		   size_t whylen)
{
	struct acpi_config ac;
	struct acpi_layout al;
	int r = vm->lx.kind == LINUX_PVH ? lx_load_pvh(vm, l, why, whylen)
					 : lx_load_bzimage(vm, l, why, whylen);

	if (!r)
		r = lx_write_initrd(vm, l, why, whylen);
	if (!r)
		r = lx_write_cmdline(vm, l, why, whylen);
	if (r)
		return r;
	acpi_config_default(&ac, (unsigned int)vm->cfg.nr_cpus);
	r = acpi_write(&vm->mem, &ac, &al, why, whylen);
	if (r)
		return r;
	vm->acpi = al;
	l->rsdp = al.rsdp;
	l->nr_e820 = linux_e820(&vm->mem, l->e820);
	r = lx_write_info(vm, l);
	if (r)
		err_set(why, whylen, "boot data at 0x%llx: not RAM",
			(ull)LINUX_START_INFO_GPA);
	return r;
}

int vm_load_linux(struct vm *vm, enum linux_kind kind, const uint8_t *img,
		  size_t len, char *err, size_t errlen)
{
	struct linux_load l = {
		.img = img,
		.len = len,
		.cmdline = vm->cfg.append ? vm->cfg.append : "",
	};
	char why[256];
	int r = 0;

	memset(&vm->lx, 0, sizeof(vm->lx));
	vm->lx.kind = kind;
	if (vm->cfg.initrd)
		r = loader_read_file("initrd", vm->cfg.initrd, &l.initrd,
				     &l.initrd_size, err, errlen);
	if (r)
		return r;
	r = lx_load(vm, &l, why, sizeof(why));
	free(l.initrd);
	if (r)
		err_set(err, errlen, "kernel %s: %s", vm->cfg.kernel, why);
	return r;
}

static void lx_bsp_state(struct kvm_sregs *s, struct kvm_regs *r,
			 const void *arg)
{
	const struct linux_entry *lx = arg;

	if (lx->kind == LINUX_PVH)
		entry32_pvh(s, r, (uint32_t)lx->entry, (uint32_t)lx->info);
	else
		bzimage_entry_state(s, r, lx->entry, lx->info);
}

int vm_boot_linux(struct vm *vm, char *err, size_t errlen)
{
	int r = 0;

	for (int i = 0; !r && i < vm->nr_vcpus; i++)
		r = vcpu_boot_start(&vm->vcpus[i], lx_bsp_state, &vm->lx, err,
				    errlen);
	return r;
}
