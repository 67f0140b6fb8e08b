/* SPDX-License-Identifier: MIT */
/*
 * multiboot.c - Multiboot v1 loading of ELF32 images (layout in
 * multiboot.h). The file buffer is untrusted: every offset is checked
 * against its length before use, and headers are copied out with memcpy.
 */
#include <elf.h>
#include <errno.h>
#include <string.h>

#include "common/err.h"
#include "common/guest_abi.h"
#include "common/page.h"
#include "vmm/multiboot.h"

typedef unsigned long long ull;

#define MB_ERR(code, ...) (err_set(err, errlen, __VA_ARGS__), (code))
#define PARSE_ERR(...)	  MB_ERR(-ENOEXEC, "multiboot: " __VA_ARGS__)
#define LOAD_ERR(...)	  MB_ERR(-ENOSPC, "multiboot: " __VA_ARGS__)

#define MB_MMAP_MAX   (GUEST_MEM_MAX_REGS + 3)
#define MB_INFO_SPACE 128 /* struct multiboot_info, rounded up */
#define MB_4G	      0x100000000ULL

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static int overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* Offset of a valid header in the first MULTIBOOT_SEARCH bytes, or -1. */
static long multiboot_find(const void *img, size_t len)
{
	size_t end = len < MULTIBOOT_SEARCH ? len : MULTIBOOT_SEARCH;
	uint32_t h[3];

	if (!img)
		return -1;
	for (size_t off = 0; off + sizeof(h) <= end; off += 4) {
		memcpy(h, (const uint8_t *)img + off, sizeof(h));
		if (h[0] == MULTIBOOT_HEADER_MAGIC &&
		    (uint32_t)(h[0] + h[1] + h[2]) == 0)
			return (long)off;
	}
	return -1;
}

int multiboot_probe(const void *img, size_t len)
{
	return multiboot_find(img, len) >= 0;
}

static int mb_check_flags(uint32_t flags, char *err, size_t errlen)
{
	uint32_t known = MULTIBOOT_HF_PAGE_ALIGN | MULTIBOOT_HF_MEMORY;

	if (flags & MULTIBOOT_HF_AOUT)
		return PARSE_ERR("header flags 0x%x ask for the a.out address "
				 "fields (bit 16), which are not supported: "
				 "use an ELF32 image",
				 flags);
	if (flags & MULTIBOOT_HF_VIDEO)
		return PARSE_ERR("header flags 0x%x ask for a video mode "
				 "(bit 2): there is no display",
				 flags);
	if (flags & 0xffffU & ~known)
		return PARSE_ERR("header flags 0x%x carry requirement bits "
				 "0x%x this loader does not know",
				 flags, flags & 0xffffU & ~known);
	return 0;
}

static int mb_check_ehdr(const uint8_t *buf, size_t len, Elf32_Ehdr *eh,
			 char *err, size_t errlen)
{
	if (len < sizeof(*eh) || memcmp(buf, ELFMAG, SELFMAG))
		return PARSE_ERR("not an ELF file (and no a.out fields)");
	memcpy(eh, buf, sizeof(*eh));
	if (eh->e_ident[EI_CLASS] != ELFCLASS32)
		return PARSE_ERR("not an ELF32 image (class %u): Multiboot v1 "
				 "loads ELF32 only",
				 eh->e_ident[EI_CLASS]);
	if (eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_machine != EM_386)
		return PARSE_ERR("not a little-endian i386 ELF (machine %u)",
				 eh->e_machine);
	if (eh->e_type != ET_EXEC)
		return PARSE_ERR("not an executable (ELF type %u)", eh->e_type);
	if (eh->e_phnum == 0)
		return PARSE_ERR("no program headers");
	if (eh->e_phentsize != sizeof(Elf32_Phdr))
		return PARSE_ERR("program header size %u, expected %zu",
				 eh->e_phentsize, sizeof(Elf32_Phdr));
	if ((uint64_t)eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(Elf32_Phdr) >
	    len)
		return PARSE_ERR("program headers [0x%x, +%u entries) run past "
				 "the end of the file (%zu bytes)",
				 eh->e_phoff, eh->e_phnum, len);
	return 0;
}

static int mb_add_seg(struct multiboot_image *im, const Elf32_Phdr *ph,
		      size_t len, char *err, size_t errlen)
{
	int n = im->nr_segs;

	if ((uint64_t)ph->p_offset + ph->p_filesz > len)
		return PARSE_ERR(
			"segment %d: file bytes [0x%x-0x%llx) run past "
			"the end of the file (%zu bytes): truncated?",
			n, ph->p_offset, (ull)ph->p_offset + ph->p_filesz, len);
	if (ph->p_filesz > ph->p_memsz)
		return PARSE_ERR(
			"segment %d: file size 0x%x exceeds its memory "
			"size 0x%x",
			n, ph->p_filesz, ph->p_memsz);
	if ((uint64_t)ph->p_paddr + ph->p_memsz > MB_4G)
		return PARSE_ERR("segment %d [0x%x-0x%llx) wraps past 4 GiB", n,
				 ph->p_paddr, (ull)ph->p_paddr + ph->p_memsz);
	if (ph->p_memsz == 0)
		return 0;
	if (n == MULTIBOOT_MAX_SEGS)
		return PARSE_ERR("more than %d loadable segments",
				 MULTIBOOT_MAX_SEGS);
	for (int i = 0; i < n; i++) {
		const struct multiboot_seg *o = &im->segs[i];

		if (overlaps(ph->p_paddr, ph->p_memsz, o->gpa, o->memsz))
			return PARSE_ERR("segment %d [0x%x-0x%llx) overlaps "
					 "segment %d",
					 n, ph->p_paddr,
					 (ull)ph->p_paddr + ph->p_memsz, i);
	}
	im->segs[n] = (struct multiboot_seg){ph->p_paddr, ph->p_offset,
					     ph->p_filesz, ph->p_memsz};
	im->nr_segs++;
	return 0;
}

static int mb_collect(const uint8_t *buf, size_t len, const Elf32_Ehdr *eh,
		      struct multiboot_image *im, char *err, size_t errlen)
{
	Elf32_Phdr ph;
	int ret, entry_ok = 0;

	for (int i = 0; i < eh->e_phnum; i++) {
		memcpy(&ph, buf + eh->e_phoff + (size_t)i * sizeof(ph),
		       sizeof(ph));
		if (ph.p_type != PT_LOAD)
			continue;
		ret = mb_add_seg(im, &ph, len, err, errlen);
		if (ret)
			return ret;
	}
	if (!im->nr_segs)
		return PARSE_ERR("Multiboot header but no loadable segment "
				 "(PT_LOAD with a memory size > 0)");
	im->lowest = UINT64_MAX;
	for (int i = 0; i < im->nr_segs; i++) {
		const struct multiboot_seg *s = &im->segs[i];

		if (s->gpa < im->lowest)
			im->lowest = s->gpa;
		if ((uint64_t)s->gpa + s->memsz > im->highest)
			im->highest = (uint64_t)s->gpa + s->memsz;
		if (im->entry >= s->gpa && im->entry - s->gpa < s->memsz)
			entry_ok = 1;
	}
	if (!entry_ok)
		return PARSE_ERR("entry point 0x%x is in no loadable segment",
				 im->entry);
	return 0;
}

int multiboot_parse(const void *img, size_t len, struct multiboot_image *out,
		    char *err, size_t errlen)
{
	long off = multiboot_find(img, len);
	Elf32_Ehdr eh;
	uint32_t h[2];
	int ret;

	memset(out, 0, sizeof(*out));
	if (off < 0)
		return PARSE_ERR("no Multiboot header (magic 0x%x with a valid "
				 "checksum) in the first %d bytes",
				 MULTIBOOT_HEADER_MAGIC, MULTIBOOT_SEARCH);
	memcpy(h, (const uint8_t *)img + off, sizeof(h));
	out->hdr_off = (uint32_t)off;
	out->hdr_flags = h[1];
	ret = mb_check_flags(h[1], err, errlen);
	if (!ret)
		ret = mb_check_ehdr(img, len, &eh, err, errlen);
	if (ret)
		return ret;
	out->entry = eh.e_entry;
	return mb_collect(img, len, &eh, out, err, errlen);
}

/* A segment must lie in one RAM region, clear of page 0 and the hole. */
static int mb_check_seg_ram(const struct guest_mem *m,
			    const struct multiboot_seg *s, int i, char *err,
			    size_t errlen)
{
	uint64_t end = (uint64_t)s->gpa + s->memsz;

	if (overlaps(s->gpa, s->memsz, GUEST_MMIO_HOLE_BASE,
		     GUEST_MMIO_HOLE_END - GUEST_MMIO_HOLE_BASE))
		return LOAD_ERR("segment %d [0x%x-0x%llx) overlaps the MMIO "
				"hole [0x%llx-0x%llx)",
				i, s->gpa, (ull)end, (ull)GUEST_MMIO_HOLE_BASE,
				(ull)GUEST_MMIO_HOLE_END);
	if (s->gpa < PAGE_SIZE)
		return LOAD_ERR("segment %d [0x%x-0x%llx) overlaps physical "
				"page 0, which stays free for the guest",
				i, s->gpa, (ull)end);
	if (overlaps(s->gpa, s->memsz, MULTIBOOT_LOW_END,
		     MULTIBOOT_HOLE_END - MULTIBOOT_LOW_END))
		return LOAD_ERR(
			"segment %d [0x%x-0x%llx) overlaps the reserved "
			"area [0x%llx-0x%llx) (video/BIOS hole, ACPI "
			"tables)",
			i, s->gpa, (ull)end, (ull)MULTIBOOT_LOW_END,
			(ull)MULTIBOOT_HOLE_END);
	if (!mem_gpa_to_hva(m, s->gpa, s->memsz))
		return LOAD_ERR("segment %d [0x%x-0x%llx) is outside guest RAM "
				"(%llu MiB)",
				i, s->gpa, (ull)end, (ull)(m->size >> 20));
	return 0;
}

/* Bytes of the info area: everything, the module page-aligned last. */
static uint64_t mb_area_size(const struct multiboot_args *a, uint64_t *mod_off)
{
	uint64_t n = MB_INFO_SPACE +
		     MB_MMAP_MAX * sizeof(struct multiboot_mmap_entry) +
		     sizeof(struct multiboot_module);

	n += strlen(a->name) + 1 + (a->append ? strlen(a->append) + 1 : 0);
	n += (a->modname ? strlen(a->modname) : 0) + 1;
	n += sizeof(MULTIBOOT_LOADER);
	*mod_off = round_up(n, PAGE_SIZE);
	return a->mod ? *mod_off + a->modlen : n;
}

static int mb_hits_seg(const struct multiboot_image *im, uint64_t start,
		       uint64_t size, uint64_t *seg_end)
{
	for (int i = 0; i < im->nr_segs; i++) {
		const struct multiboot_seg *s = &im->segs[i];

		if (overlaps(start, size, s->gpa, s->memsz)) {
			*seg_end = (uint64_t)s->gpa + s->memsz;
			return i;
		}
	}
	return -1;
}

/* The first page-aligned start in [lo, hi) clear of every segment, or 0. */
static uint64_t mb_first_gap(const struct multiboot_image *im, uint64_t lo,
			     uint64_t hi, uint64_t size)
{
	uint64_t start = lo, seg_end;

	while (start + size <= hi) {
		if (mb_hits_seg(im, start, size, &seg_end) < 0)
			return start;
		start = round_up(seg_end, PAGE_SIZE);
	}
	return 0;
}

static int mb_place_fixed(const struct guest_mem *m,
			  const struct multiboot_image *im, uint64_t at,
			  uint64_t size, char *err, size_t errlen)
{
	uint64_t seg_end;
	int i = mb_hits_seg(im, at, size, &seg_end);

	if (i >= 0)
		return MB_ERR(
			-EINVAL,
			"multiboot: segment %d [0x%x-0x%llx) overlaps the "
			"information area [0x%llx-0x%llx)",
			i, im->segs[i].gpa, (ull)seg_end, (ull)at,
			(ull)(at + size));
	if (at < PAGE_SIZE || at % PAGE_SIZE || at + size > MB_4G ||
	    !mem_gpa_to_hva(m, at, size))
		return MB_ERR(-EINVAL,
			      "multiboot: information area [0x%llx-0x%llx) is "
			      "not page-aligned RAM above page 0 and below "
			      "4 GiB",
			      (ull)at, (ull)(at + size));
	return 0;
}

static int mb_place(const struct guest_mem *m, const struct multiboot_image *im,
		    const struct multiboot_args *a, uint64_t size, uint64_t *at,
		    char *err, size_t errlen)
{
	uint64_t after = round_up(im->highest, PAGE_SIZE);

	if (a->info_gpa) {
		*at = a->info_gpa;
		return mb_place_fixed(m, im, *at, size, err, errlen);
	}
	*at = mb_first_gap(im, MULTIBOOT_LOW_START, MULTIBOOT_LOW_END, size);
	if (*at)
		return 0;
	*at = after;
	if (after + size <= MB_4G && mem_gpa_to_hva(m, after, size))
		return 0;
	return LOAD_ERR("no room for the information area (%llu bytes) below "
			"640 KiB or after the image at 0x%llx",
			(ull)size, (ull)after);
}

/* The memory map: RAM regions with [640 KiB, 1 MiB) reserved. */
static int mb_mmap(const struct guest_mem *m, struct multiboot_mmap_entry *e)
{
	int n = 0;

	for (int i = 0; i < m->nr_regions; i++) {
		uint64_t lo = m->regions[i].gpa;
		uint64_t hi = lo + m->regions[i].size;

		if (lo < MULTIBOOT_LOW_END && hi > MULTIBOOT_HOLE_END) {
			e[n++] = (struct multiboot_mmap_entry){
				20, lo, MULTIBOOT_LOW_END - lo,
				MULTIBOOT_MMAP_RAM};
			e[n++] = (struct multiboot_mmap_entry){
				20, MULTIBOOT_LOW_END,
				MULTIBOOT_HOLE_END - MULTIBOOT_LOW_END,
				MULTIBOOT_MMAP_RESERVED};
			lo = MULTIBOOT_HOLE_END;
		}
		e[n++] = (struct multiboot_mmap_entry){20, lo, hi - lo,
						       MULTIBOOT_MMAP_RAM};
	}
	return n;
}

/* KiB of RAM from 1 MiB on, contiguous (the region holding 1 MiB). */
static uint32_t mb_mem_upper(const struct guest_mem *m)
{
	const struct mem_region *r = mem_find_region(m, MULTIBOOT_HOLE_END);
	uint64_t kib;

	if (!r)
		return 0;
	kib = (r->gpa + r->size - MULTIBOOT_HOLE_END) >> 10;
	return kib > UINT32_MAX ? UINT32_MAX : (uint32_t)kib;
}

/* Append a string at *pos of the area; returns its guest address. */
static uint32_t mb_put_str(uint8_t *area, uint64_t base, uint64_t *pos,
			   const char *s1, const char *s2)
{
	uint64_t at = *pos;
	size_t n1 = strlen(s1);

	memcpy(area + *pos, s1, n1);
	*pos += n1;
	if (s2) {
		area[(*pos)++] = ' ';
		memcpy(area + *pos, s2, strlen(s2));
		*pos += strlen(s2);
	}
	area[(*pos)++] = '\0';
	return (uint32_t)(base + at);
}

static void mb_write_info(const struct guest_mem *m,
			  const struct multiboot_args *a, uint64_t base,
			  uint64_t mod_off, uint8_t *area)
{
	struct multiboot_mmap_entry mmap[MB_MMAP_MAX];
	struct multiboot_info info = {0};
	struct multiboot_module mod = {0};
	int n = mb_mmap(m, mmap);
	uint64_t pos = MB_INFO_SPACE;
	uint64_t mod_at = pos + (uint64_t)n * sizeof(mmap[0]);

	info.flags = MULTIBOOT_IF_MEMORY | MULTIBOOT_IF_CMDLINE |
		     MULTIBOOT_IF_MMAP | MULTIBOOT_IF_LOADER;
	info.mem_lower = MULTIBOOT_LOW_END >> 10;
	info.mem_upper = mb_mem_upper(m);
	info.mmap_addr = (uint32_t)(base + pos);
	info.mmap_length = (uint32_t)(n * sizeof(mmap[0]));
	memcpy(area + pos, mmap, info.mmap_length);
	pos = mod_at + sizeof(mod);
	info.cmdline = mb_put_str(area, base, &pos, a->name, a->append);
	info.boot_loader_name =
		mb_put_str(area, base, &pos, MULTIBOOT_LOADER, NULL);
	if (a->mod) {
		info.flags |= MULTIBOOT_IF_MODS;
		info.mods_count = 1;
		info.mods_addr = (uint32_t)(base + mod_at);
		mod.string = mb_put_str(area, base, &pos,
					a->modname ? a->modname : "", NULL);
		mod.mod_start = (uint32_t)(base + mod_off);
		mod.mod_end = (uint32_t)(base + mod_off + a->modlen);
		memcpy(area + mod_at, &mod, sizeof(mod));
		memcpy(area + mod_off, a->mod, a->modlen);
	}
	memcpy(area, &info, sizeof(info));
}

static void mb_copy_segs(const struct guest_mem *m,
			 const struct multiboot_image *im, const uint8_t *buf)
{
	for (int i = 0; i < im->nr_segs; i++) {
		const struct multiboot_seg *s = &im->segs[i];
		uint8_t *hva = mem_gpa_to_hva(m, s->gpa, s->memsz);

		memcpy(hva, buf + s->off, s->filesz);
		memset(hva + s->filesz, 0, s->memsz - s->filesz);
		ept_mark_dirty(m, s->gpa, s->memsz);
	}
}

int multiboot_load(const struct guest_mem *m, const void *img, size_t len,
		   const struct multiboot_args *a, struct multiboot_entry *out,
		   char *err, size_t errlen)
{
	struct multiboot_image im;
	uint64_t size, mod_off, at;
	uint8_t *area;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = multiboot_parse(img, len, &im, err, errlen);
	for (int i = 0; !ret && i < im.nr_segs; i++)
		ret = mb_check_seg_ram(m, &im.segs[i], i, err, errlen);
	if (ret)
		return ret;
	if (a->mod && a->modlen > UINT32_MAX)
		return LOAD_ERR("module of %zu bytes is over 4 GiB", a->modlen);
	size = mb_area_size(a, &mod_off);
	ret = mb_place(m, &im, a, size, &at, err, errlen);
	if (ret)
		return ret;
	mb_copy_segs(m, &im, img);
	area = mem_gpa_to_hva(m, at, size);
	memset(area, 0, size);
	mb_write_info(m, a, at, mod_off, area);
	ept_mark_dirty(m, at, size);
	*out = (struct multiboot_entry){im.entry,  (uint32_t)at, at,
					at + size, im.lowest,	 im.highest};
	return 0;
}
