/* SPDX-License-Identifier: MIT */
/*
 * idt.c - per-CPU interrupt descriptor table for the 32 exception vectors and
 * the 16 interrupt vectors of the timer mode (lib/timer.h).
 *
 * Every gate is a 64-bit interrupt gate (IF clear in every handler) to the stub
 * for its vector in start.S, with the kernel code selector, DPL 0 and no IST:
 * CPU exceptions ignore the gate DPL, so they reach ring 0 from ring 3 as well,
 * on the TSS's RSP0 stack. Each CPU fills its own table so no CPU depends on
 * another's progress.
 */
#include "kernel/kernel.h"

struct idt_gate {
	uint16_t offset_lo;
	uint16_t selector;
	uint8_t ist;
	uint8_t type_attr; /* P | DPL | type */
	uint16_t offset_mid;
	uint32_t offset_hi;
	uint32_t reserved;
} __attribute__((packed));

_Static_assert(sizeof(struct idt_gate) == 16, "64-bit IDT gate is 16 bytes");

#define IDT_INTERRUPT_GATE 0x8e /* present, DPL 0, 64-bit interrupt gate */

struct idt_ptr {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));

static struct idt_gate idt[KERNEL_MAX_CPUS][IDT_VECTORS]
	__attribute__((aligned(16)));

static void idt_set_gate(struct idt_gate *g, uint64_t handler)
{
	g->offset_lo = handler & 0xffff;
	g->selector = SEL_KCODE;
	g->ist = 0;
	g->type_attr = IDT_INTERRUPT_GATE;
	g->offset_mid = (handler >> 16) & 0xffff;
	g->offset_hi = handler >> 32;
	g->reserved = 0;
}

void idt_init(unsigned int cpu)
{
	struct idt_ptr p = {sizeof(idt[cpu]) - 1,
			    (uint64_t)(uintptr_t)idt[cpu]};
	unsigned int v;

	for (v = 0; v < IDT_VECTORS; v++)
		idt_set_gate(&idt[cpu][v], trap_stubs[v]);
	asm volatile("lidt %0" : : "m"(p) : "memory");
}
