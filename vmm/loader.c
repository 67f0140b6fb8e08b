/* SPDX-License-Identifier: MIT */
/*
 * loader.c - the static ELF64 loader for our test guests.
 *
 * A guest image is an untrusted buffer. elf_parse() validates it field by
 * field, in the order a reader of readelf output would, and stops at the
 * first problem with a message naming the field, its value and what was
 * expected; every offset and address sum is checked for wrap-around before
 * use, and headers are copied out with memcpy so the buffer needs no
 * alignment. elf_load() then only copies: segments land at p_paddr (the
 * guest's identity page tables make that its virtual address too) and
 * their tails up to p_memsz are zeroed. elf_load_file() adds the file
 * handling and prefixes every message with "kernel PATH: ".
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/guest_abi.h"
#include "vmm/loader.h"

typedef unsigned long long ull;

__attribute__((format(printf, 4, 5))) static int
elf_err(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

#define PARSE_ERR(...) elf_err(err, errlen, -ENOEXEC, __VA_ARGS__)

static const char *elf_class_name(unsigned int c)
{
	switch (c) {
	case ELFCLASS32:
		return "32-bit";
	case ELFCLASS64:
		return "64-bit";
	default:
		return "invalid";
	}
}

static const char *elf_machine_name(unsigned int m)
{
	switch (m) {
	case EM_386:
		return "i386";
	case EM_ARM:
		return "ARM";
	case EM_AARCH64:
		return "AArch64";
	case EM_RISCV:
		return "RISC-V";
	case EM_PPC64:
		return "PowerPC64";
	case EM_S390:
		return "s390";
	default:
		return "unknown";
	}
}

static const char *elf_type_name(unsigned int t)
{
	switch (t) {
	case ET_NONE:
		return "ET_NONE";
	case ET_REL:
		return "ET_REL, an object file: link it";
	case ET_DYN:
		return "ET_DYN, a shared object or PIE: link with -static "
		       "-no-pie at a fixed address";
	case ET_CORE:
		return "ET_CORE, a core dump";
	default:
		return "unknown";
	}
}

/* e_ident: magic, class, data encoding, version. */
static int elf_check_ident(const unsigned char *id, size_t len, char *err,
			   size_t errlen)
{
	size_t n = len < SELFMAG ? len : SELFMAG;

	if (n && memcmp(id, ELFMAG, n) != 0)
		return PARSE_ERR("not an ELF file (bad magic)");
	if (len < sizeof(Elf64_Ehdr))
		return PARSE_ERR("file truncated: %zu bytes is less than the "
				 "ELF header (%zu bytes)",
				 len, sizeof(Elf64_Ehdr));
	if (id[EI_CLASS] != ELFCLASS64)
		return PARSE_ERR("ELF class %u (%s) is not supported: need "
				 "ELFCLASS64",
				 id[EI_CLASS], elf_class_name(id[EI_CLASS]));
	if (id[EI_DATA] != ELFDATA2LSB)
		return PARSE_ERR("ELF data encoding %u (%s) is not supported: "
				 "need ELFDATA2LSB (little-endian)",
				 id[EI_DATA],
				 id[EI_DATA] == ELFDATA2MSB ? "big-endian"
							    : "invalid");
	if (id[EI_VERSION] != EV_CURRENT)
		return PARSE_ERR("ELF ident version %u is not supported: need "
				 "EV_CURRENT (%u)",
				 id[EI_VERSION], EV_CURRENT);
	return 0;
}

/* The rest of the ELF header, up to a program header table inside the file. */
static int elf_check_ehdr(const Elf64_Ehdr *eh, size_t len, char *err,
			  size_t errlen)
{
	uint64_t tbl, end;

	if (eh->e_version != EV_CURRENT)
		return PARSE_ERR("ELF version %u is not supported: need "
				 "EV_CURRENT (%u)",
				 eh->e_version, EV_CURRENT);
	if (eh->e_machine != EM_X86_64)
		return PARSE_ERR("ELF machine %u (%s) is not supported: need "
				 "EM_X86_64 (%u)",
				 eh->e_machine, elf_machine_name(eh->e_machine),
				 EM_X86_64);
	if (eh->e_type != ET_EXEC)
		return PARSE_ERR("ELF type %u (%s) is not supported: need "
				 "ET_EXEC",
				 eh->e_type, elf_type_name(eh->e_type));
	if (eh->e_phentsize != sizeof(Elf64_Phdr))
		return PARSE_ERR("program header entry size %u is wrong: need "
				 "%zu",
				 eh->e_phentsize, sizeof(Elf64_Phdr));
	if (eh->e_phnum < 1 || eh->e_phnum > ELF_MAX_PHDRS)
		return PARSE_ERR("program header count %u is out of range "
				 "1..%d",
				 eh->e_phnum, ELF_MAX_PHDRS);
	tbl = (uint64_t)eh->e_phnum * eh->e_phentsize;
	if (__builtin_add_overflow(eh->e_phoff, tbl, &end))
		return PARSE_ERR("program header offset 0x%llx + table size "
				 "0x%llx overflows",
				 (ull)eh->e_phoff, (ull)tbl);
	if (end > len)
		return PARSE_ERR("file truncated: program headers end at "
				 "0x%llx beyond file size 0x%zx",
				 (ull)end, len);
	return 0;
}

/* One PT_LOAD header on its own: inside the file, sizes and address sane. */
static int elf_check_load(const Elf64_Phdr *ph, int idx, size_t len, char *err,
			  size_t errlen)
{
	uint64_t end;

	if (__builtin_add_overflow(ph->p_offset, ph->p_filesz, &end))
		return PARSE_ERR("segment %d: file offset 0x%llx + size 0x%llx "
				 "overflows",
				 idx, (ull)ph->p_offset, (ull)ph->p_filesz);
	if (end > len)
		return PARSE_ERR("file truncated: segment %d data "
				 "[0x%llx-0x%llx) ends beyond file size 0x%zx",
				 idx, (ull)ph->p_offset, (ull)end, len);
	if (ph->p_filesz > ph->p_memsz)
		return PARSE_ERR("segment %d: file size 0x%llx is larger than "
				 "memory size 0x%llx",
				 idx, (ull)ph->p_filesz, (ull)ph->p_memsz);
	if (__builtin_add_overflow(ph->p_paddr, ph->p_memsz, &end))
		return PARSE_ERR("segment %d: address 0x%llx + memory size "
				 "0x%llx overflows",
				 idx, (ull)ph->p_paddr, (ull)ph->p_memsz);
	if (ph->p_memsz && ph->p_paddr < GUEST_KERNEL_BASE)
		return PARSE_ERR(
			"segment %d at 0x%llx is below the kernel base "
			"0x%llx",
			idx, (ull)ph->p_paddr, GUEST_KERNEL_BASE);
	return 0;
}

/* The new segment img->segs[n] against the ones before it. */
static int elf_check_overlap(const struct elf_image *img, int n, char *err,
			     size_t errlen)
{
	const struct elf_seg *s = &img->segs[n];
	int i;

	for (i = 0; i < n; i++) {
		const struct elf_seg *o = &img->segs[i];

		if (s->gpa < o->gpa + o->memsz && o->gpa < s->gpa + s->memsz)
			return PARSE_ERR("segment %d [0x%llx-0x%llx) overlaps "
					 "segment %d [0x%llx-0x%llx)",
					 n, (ull)s->gpa,
					 (ull)(s->gpa + s->memsz), i,
					 (ull)o->gpa, (ull)(o->gpa + o->memsz));
	}
	return 0;
}

/*
 * Collect the PT_LOAD segments. "Segment N" in messages is img->segs[N]:
 * the N-th PT_LOAD with a non-zero p_memsz, in program header order. Empty
 * ones are checked (inside the file, filesz <= memsz) but not kept.
 */
static int elf_collect(const unsigned char *buf, size_t len,
		       const Elf64_Ehdr *eh, struct elf_image *img, char *err,
		       size_t errlen)
{
	Elf64_Phdr ph;
	int i, ret;

	for (i = 0; i < eh->e_phnum; i++) {
		struct elf_seg *s;

		memcpy(&ph, buf + eh->e_phoff + (uint64_t)i * sizeof(ph),
		       sizeof(ph));
		if (ph.p_type != PT_LOAD)
			continue;
		ret = elf_check_load(&ph, img->nr_segs, len, err, errlen);
		if (ret < 0)
			return ret;
		if (ph.p_memsz == 0)
			continue;
		if (img->nr_segs == ELF_MAX_SEGS)
			return PARSE_ERR("too many PT_LOAD segments: at most "
					 "%d are supported",
					 ELF_MAX_SEGS);
		s = &img->segs[img->nr_segs];
		s->gpa = ph.p_paddr;
		s->off = ph.p_offset;
		s->filesz = ph.p_filesz;
		s->memsz = ph.p_memsz;
		s->flags = ph.p_flags;
		ret = elf_check_overlap(img, img->nr_segs, err, errlen);
		if (ret < 0)
			return ret;
		img->nr_segs++;
	}
	if (img->nr_segs == 0)
		return PARSE_ERR("no loadable segment (PT_LOAD with a memory "
				 "size > 0)");
	return 0;
}

/* Entry point, lowest and highest address. */
static int elf_finish(struct elf_image *img, char *err, size_t errlen)
{
	bool entry_ok = false;
	int i;

	img->lowest = UINT64_MAX;
	img->highest = 0;
	for (i = 0; i < img->nr_segs; i++) {
		const struct elf_seg *s = &img->segs[i];

		if (s->gpa < img->lowest)
			img->lowest = s->gpa;
		if (s->gpa + s->memsz > img->highest)
			img->highest = s->gpa + s->memsz;
		if ((s->flags & PF_X) && img->entry >= s->gpa &&
		    img->entry - s->gpa < s->memsz)
			entry_ok = true;
	}
	if (!entry_ok)
		return PARSE_ERR("entry point 0x%llx is not in an executable "
				 "segment",
				 (ull)img->entry);
	return 0;
}

int elf_parse(const void *buf, size_t len, struct elf_image *img, char *err,
	      size_t errlen)
{
	Elf64_Ehdr eh;
	int ret;

	memset(img, 0, sizeof(*img));
	if (!buf)
		len = 0;
	ret = elf_check_ident(buf, len, err, errlen);
	if (ret < 0)
		return ret;
	memcpy(&eh, buf, sizeof(eh));
	ret = elf_check_ehdr(&eh, len, err, errlen);
	if (ret < 0)
		return ret;
	ret = elf_collect(buf, len, &eh, img, err, errlen);
	if (ret < 0)
		return ret;
	img->entry = eh.e_entry;
	return elf_finish(img, err, errlen);
}

/* Print a RAM size as "16 MiB", "3 GiB" or "12345 bytes". */
static void elf_fmt_size(char *buf, size_t len, uint64_t size)
{
	if (size && size % (1ULL << 30) == 0)
		snprintf(buf, len, "%llu GiB", (ull)(size >> 30));
	else if (size && size % (1ULL << 20) == 0)
		snprintf(buf, len, "%llu MiB", (ull)(size >> 20));
	else
		snprintf(buf, len, "%llu bytes", (ull)size);
}

static int elf_err_nofit(const struct elf_seg *s, int i,
			 const struct guest_mem *m, char *err, size_t errlen)
{
	char ram[32];

	elf_fmt_size(ram, sizeof(ram), m->size);
	return elf_err(err, errlen, -ENOSPC,
		       "segment %d [0x%llx-0x%llx) does not fit in guest RAM "
		       "(%s; images load below 0x%llx)",
		       i, (ull)s->gpa, (ull)(s->gpa + s->memsz), ram,
		       (ull)m->regions[0].size);
}

int elf_load(const struct elf_image *img, const void *buf,
	     const struct guest_mem *m, char *err, size_t errlen)
{
	int i;

	for (i = 0; i < img->nr_segs; i++) {
		const struct elf_seg *s = &img->segs[i];
		uint8_t *hva = mem_gpa_to_hva(m, s->gpa, s->memsz);
		uint64_t end;

		/* Only RAM below the MMIO hole: region 0, at its gpa. */
		if (!hva || __builtin_add_overflow(s->gpa, s->memsz, &end) ||
		    end > GUEST_MMIO_HOLE_BASE)
			return elf_err_nofit(s, i, m, err, errlen);
		memcpy(hva, (const uint8_t *)buf + s->off, s->filesz);
		memset(hva + s->filesz, 0, s->memsz - s->filesz);
	}
	return 0;
}

/* Read all of fd (size bytes) into a new buffer; -errno, or -EIO if short. */
static int elf_read_all(int fd, size_t size, uint8_t **out)
{
	uint8_t *p = malloc(size);
	size_t done = 0;
	ssize_t n;

	if (!p)
		return -ENOMEM;
	while (done < size) {
		n = read(fd, p + done, size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int ret = n < 0 ? -errno : -EIO;

			free(p);
			return ret;
		}
		done += (size_t)n;
	}
	*out = p;
	return 0;
}

/* Refuse what cannot be a guest image before reading it. */
static int elf_check_stat(const char *what, const char *path,
			  const struct stat *st, char *err, size_t errlen)
{
	if (S_ISDIR(st->st_mode))
		return elf_err(err, errlen, -EISDIR, "%s %s: is a directory",
			       what, path);
	if (!S_ISREG(st->st_mode))
		return elf_err(err, errlen, -EINVAL,
			       "%s %s: not a regular file", what, path);
	if (st->st_size == 0)
		return elf_err(err, errlen, -ENOEXEC, "%s %s: empty file", what,
			       path);
	if ((uint64_t)st->st_size > ELF_MAX_FILE)
		return elf_err(err, errlen, -EFBIG,
			       "%s %s: file too large (%lld bytes, at "
			       "most %llu MiB)",
			       what, path, (long long)st->st_size,
			       ELF_MAX_FILE >> 20);
	return 0;
}

int loader_read_file(const char *what, const char *path, uint8_t **buf,
		     size_t *len, char *err, size_t errlen)
{
	struct stat st;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		ret = -errno;
		if (fd >= 0)
			close(fd);
		return elf_err(err, errlen, ret, "%s %s: %s", what, path,
			       strerror(-ret));
	}
	ret = elf_check_stat(what, path, &st, err, errlen);
	if (ret == 0) {
		ret = elf_read_all(fd, (size_t)st.st_size, buf);
		if (ret < 0)
			elf_err(err, errlen, ret, "%s %s: read: %s", what, path,
				ret == -EIO ? "file shrank while reading it"
					    : strerror(-ret));
	}
	close(fd);
	*len = (size_t)st.st_size;
	return ret;
}

int elf_load_file(const char *path, const struct guest_mem *m,
		  struct elf_image *img, char *err, size_t errlen)
{
	char why[256];
	uint8_t *buf = NULL;
	size_t len = 0;
	int ret;

	ret = loader_read_file("kernel", path, &buf, &len, err, errlen);
	if (ret < 0)
		return ret;
	ret = elf_parse(buf, len, img, why, sizeof(why));
	if (ret == 0)
		ret = elf_load(img, buf, m, why, sizeof(why));
	if (ret < 0)
		elf_err(err, errlen, ret, "kernel %s: %s", path, why);
	free(buf);
	return ret;
}
