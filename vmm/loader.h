/* SPDX-License-Identifier: MIT */
/*
 * loader.h - the static ELF64 loader for our test guests.
 *
 * elf_parse() is pure (a buffer in, a validated description out) so that it
 * can be tested against malformed files without KVM; elf_load() copies the
 * PT_LOAD segments into guest RAM at their physical addresses and zeroes
 * their .bss tails.
 */
#ifndef VMM_LOADER_H
#define VMM_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "ept/mem.h"

#define ELF_MAX_SEGS 16

/* Bound on e_phnum (program headers of every type together). */
#define ELF_MAX_PHDRS 128
/* elf_load_file() refuses larger files. */
#define ELF_MAX_FILE (256ULL << 20)

struct elf_seg {
	uint64_t gpa; /* p_paddr */
	uint64_t off; /* p_offset */
	uint64_t filesz;
	uint64_t memsz;
	uint32_t flags; /* PF_R/PF_W/PF_X */
};

struct elf_image {
	uint64_t entry;
	uint64_t lowest;  /* lowest segment gpa */
	uint64_t highest; /* end of the highest segment (exclusive) */
	int nr_segs;
	struct elf_seg segs[ELF_MAX_SEGS];
};

/*
 * Validate an ELF file image: ELF magic, ELFCLASS64, little-endian, current
 * version, x86-64, ET_EXEC, sane program header table inside the file,
 * 1..ELF_MAX_SEGS PT_LOAD segments each inside the file with filesz <=
 * memsz, no address overflow, not below GUEST_KERNEL_BASE, not overlapping
 * each other, and an entry point inside an executable segment. Returns 0 or
 * -ENOEXEC with err saying exactly what is wrong.
 */
int elf_parse(const void *buf, size_t len, struct elf_image *img, char *err,
	      size_t errlen);

/*
 * Copy the segments of a parsed image into guest RAM. -ENOSPC (err says
 * which segment) when a segment does not lie wholly in one RAM region.
 */
int elf_load(const struct elf_image *img, const void *buf,
	     const struct guest_mem *m, char *err, size_t errlen);

/*
 * Read the regular file path whole into a new buffer (*buf, *len; free()
 * it). err says "<what> <path>: <cause>" (what: "kernel", "initrd").
 */
int loader_read_file(const char *what, const char *path, uint8_t **buf,
		     size_t *len, char *err, size_t errlen);

/* Read path, parse and load it. err names the file and the cause. */
int elf_load_file(const char *path, const struct guest_mem *m,
		  struct elf_image *img, char *err, size_t errlen);

#endif /* VMM_LOADER_H */
