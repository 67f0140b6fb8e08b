/* SPDX-License-Identifier: MIT */
/*
 * pvh.c - the PVH note and hvm_start_info (see pvh.h). The file buffer is
 * untrusted: every offset is checked against its length before use and
 * headers are copied out with memcpy.
 */
#include <elf.h>
#include <errno.h>
#include <string.h>

#include "common/err.h"
#include "common/page.h"
#include "vmm/pvh.h"

#define PVH_ERR(...) (err_set(err, errlen, "pvh: " __VA_ARGS__), -ENOEXEC)

typedef unsigned long long ull;

static int pvh_is_elf64(const uint8_t *b, size_t len, Elf64_Ehdr *eh)
{
	if (len < sizeof(*eh))
		return 0;
	memcpy(eh, b, sizeof(*eh));
	return !memcmp(eh->e_ident, ELFMAG, SELFMAG) &&
	       eh->e_ident[EI_CLASS] == ELFCLASS64 &&
	       eh->e_ident[EI_DATA] == ELFDATA2LSB &&
	       eh->e_machine == EM_X86_64 &&
	       eh->e_phentsize == sizeof(Elf64_Phdr);
}

/* The note's descriptor as an entry point. */
static int pvh_note_entry(const uint8_t *desc, uint32_t dsz, uint32_t *entry,
			  char *err, size_t errlen)
{
	uint64_t v = 0;

	if (dsz != 4 && dsz != 8)
		return PVH_ERR("PHYS32_ENTRY note has a %u-byte descriptor "
			       "(4 or 8 expected)",
			       dsz);
	memcpy(&v, desc, dsz);
	if (v >= 0x100000000ULL)
		return PVH_ERR("PHYS32_ENTRY 0x%llx is above 4 GiB", (ull)v);
	*entry = (uint32_t)v;
	return 1;
}

/* Walk the notes in [off, off + size) of the file. */
static int pvh_scan_notes(const uint8_t *b, uint64_t off, uint64_t size,
			  uint32_t *entry, char *err, size_t errlen)
{
	uint64_t p = off, end = off + size;
	Elf64_Nhdr nh;

	while (p + sizeof(nh) <= end) {
		uint64_t name_at = p + sizeof(nh), desc_at;

		memcpy(&nh, b + p, sizeof(nh));
		desc_at = name_at + (((uint64_t)nh.n_namesz + 3) & ~3ULL);
		if (desc_at + nh.n_descsz > end)
			return PVH_ERR("note at offset 0x%llx runs past its "
				       "segment",
				       (ull)p);
		if (nh.n_type == PVH_NOTE_PHYS32_ENTRY && nh.n_namesz == 4 &&
		    !memcmp(b + name_at, "Xen", 4))
			return pvh_note_entry(b + desc_at, nh.n_descsz, entry,
					      err, errlen);
		p = desc_at + (((uint64_t)nh.n_descsz + 3) & ~3ULL);
	}
	return 0;
}

int pvh_find_entry(const void *img, size_t len, uint32_t *entry, char *err,
		   size_t errlen)
{
	const uint8_t *b = img;
	Elf64_Ehdr eh;
	Elf64_Phdr ph;

	if (!b || !pvh_is_elf64(b, len, &eh))
		return 0;
	if (eh.e_phoff > len ||
	    (uint64_t)eh.e_phnum * sizeof(ph) > len - eh.e_phoff)
		return 0; /* elf_parse() names this problem */
	for (int i = 0; i < eh.e_phnum; i++) {
		int r;

		memcpy(&ph, b + eh.e_phoff + (uint64_t)i * sizeof(ph),
		       sizeof(ph));
		if (ph.p_type != PT_NOTE)
			continue;
		if (ph.p_offset > len || ph.p_filesz > len - ph.p_offset)
			return PVH_ERR("note segment %d [0x%llx+0x%llx) is "
				       "outside the %zu-byte file",
				       i, (ull)ph.p_offset, (ull)ph.p_filesz,
				       len);
		r = pvh_scan_notes(b, ph.p_offset, ph.p_filesz, entry, err,
				   errlen);
		if (r)
			return r;
	}
	return 0;
}

void pvh_build_info(const struct pvh_info_args *a, uint8_t *page)
{
	struct hvm_start_info si = {
		.magic = PVH_START_MAGIC,
		.version = PVH_START_VERSION,
		.cmdline_paddr = a->cmdline_gpa,
		.rsdp_paddr = a->rsdp_gpa,
		.memmap_paddr = LINUX_START_INFO_GPA + PVH_MEMMAP_OFF,
		.memmap_entries = (uint32_t)a->nr_e820,
	};

	memset(page, 0, PAGE_SIZE);
	if (a->initrd_size) {
		struct hvm_modlist_entry mod = {
			.paddr = a->initrd_gpa,
			.size = a->initrd_size,
		};

		si.nr_modules = 1;
		si.modlist_paddr = LINUX_START_INFO_GPA + PVH_MODLIST_OFF;
		memcpy(page + PVH_MODLIST_OFF, &mod, sizeof(mod));
	}
	for (int i = 0; i < a->nr_e820; i++) {
		struct hvm_memmap_entry e = {
			.addr = a->e820[i].addr,
			.size = a->e820[i].size,
			.type = a->e820[i].type,
		};

		memcpy(page + PVH_MEMMAP_OFF + (size_t)i * sizeof(e), &e,
		       sizeof(e));
	}
	memcpy(page, &si, sizeof(si));
}
