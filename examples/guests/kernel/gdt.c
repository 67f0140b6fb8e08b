/* SPDX-License-Identifier: MIT */
/*
 * gdt.c - per-CPU GDT and 64-bit TSS.
 *
 * Each CPU has its own GDT: the four flat code/data descriptors copied from
 * a template, plus a 16-byte TSS descriptor for its own TSS whose RSP0 is
 * the top of its ring-0 stack, where the CPU switches to on an exception
 * from ring 3. Private tables mean no CPU waits for another and the TSS
 * selector is the same everywhere. The accessed bits are preset so that the
 * CPU (here: the host's ring-0 emulator) never writes to the GDT on a
 * segment load; ltr still sets the TSS busy bit, in this CPU's own copy.
 */
#include "kernel/kernel.h"

struct tss {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
} __attribute__((packed));

_Static_assert(sizeof(struct tss) == 104, "64-bit TSS is 104 bytes");

struct desc_ptr {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));

struct cpu_gdt {
	uint64_t gdt[GDT_ENTRIES];
	struct tss tss;
} __attribute__((aligned(64)));

/*
 * Limit 0xfffff, base 0. Access byte: P | DPL | S | type (code: execute/
 * read, data: read/write) | accessed. Flags: G, and L for 64-bit code
 * (D must be 0 with L).
 */
static const uint64_t gdt_template[SEL_TSS / 8] = {
	0,		       /* 0x00 null */
	0x00af9b000000ffffULL, /* 0x08 kernel code, DPL 0, 64-bit */
	0x00cf93000000ffffULL, /* 0x10 kernel data, DPL 0 */
	0x00cff3000000ffffULL, /* 0x18 user data, DPL 3 */
	0x00affb000000ffffULL, /* 0x20 user code, DPL 3, 64-bit */
};

static struct cpu_gdt cpu_gdt[KERNEL_MAX_CPUS];

/* Available 64-bit TSS (type 9), present, DPL 0, byte granular. */
static void gdt_set_tss(uint64_t *d, const struct tss *tss)
{
	uint64_t base = (uint64_t)(uintptr_t)tss;
	uint64_t limit = sizeof(*tss) - 1;

	d[0] = (limit & 0xffff) | (base & 0xffffff) << 16 | 0x89ULL << 40 |
	       ((limit >> 16) & 0xf) << 48 | ((base >> 24) & 0xff) << 56;
	d[1] = base >> 32;
}

static void gdt_load(const struct cpu_gdt *g)
{
	struct desc_ptr p = {sizeof(g->gdt) - 1, (uint64_t)(uintptr_t)g->gdt};

	asm volatile("lgdt %0" : : "m"(p) : "memory");
	/* CS already holds 0x08 (the VMM's hidden state matches slot 1). */
	asm volatile("movw %w0, %%ds\n\t"
		     "movw %w0, %%es\n\t"
		     "movw %w0, %%fs\n\t"
		     "movw %w0, %%gs\n\t"
		     "movw %w0, %%ss"
		     :
		     : "r"(SEL_KDATA)
		     : "memory");
	asm volatile("ltr %w0" : : "r"(SEL_TSS) : "memory");
}

void gdt_init(unsigned int cpu)
{
	struct cpu_gdt *g = &cpu_gdt[cpu];
	unsigned int i;

	for (i = 0; i < SEL_TSS / 8; i++)
		g->gdt[i] = gdt_template[i];
	gdt_set_tss(&g->gdt[SEL_TSS / 8], &g->tss);
	g->tss.rsp[0] = (uint64_t)(uintptr_t)kstack[cpu] + KSTACK_SIZE;
	g->tss.iomap_base = sizeof(g->tss); /* no I/O bitmap: ring 3 gets #GP */
	gdt_load(g);
}
