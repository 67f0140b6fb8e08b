/* SPDX-License-Identifier: MIT */
/*
 * entry32.c - Multiboot entry and RESET/INIT register states (see
 * entry32.h). Pure: no KVM, no guest memory.
 */
#include <string.h>

#include "vmm/entry32.h"
#include "vmm/multiboot.h"

#define SEG_TYPE_DATA_RW   3  /* read/write, accessed */
#define SEG_TYPE_CODE_RX   11 /* execute/read, accessed */
#define SEG_TYPE_LDT	   2
#define SEG_TYPE_TSS32_BSY 11

/* A present segment with a 4 GiB (flat) or 64 KiB (real mode) limit. */
static void entry32_seg(struct kvm_segment *s, uint16_t sel, uint64_t base,
			uint8_t type, int flat)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->base = base;
	s->limit = flat ? 0xffffffffU : 0xffffU;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->db = flat;
	s->g = flat;
}

/* LDTR and TR as after reset: present, base 0, limit 0xffff. */
static void entry32_system_segs(struct kvm_sregs *s)
{
	entry32_seg(&s->ldt, 0, 0, SEG_TYPE_LDT, 0);
	s->ldt.s = 0;
	entry32_seg(&s->tr, 0, 0, SEG_TYPE_TSS32_BSY, 0);
	s->tr.s = 0;
}

static void entry32_clear(struct kvm_sregs *s, struct kvm_regs *r)
{
	uint64_t apic_base = s->apic_base;
	__u64 bitmap[sizeof(s->interrupt_bitmap) / sizeof(__u64)];

	memcpy(bitmap, s->interrupt_bitmap, sizeof(bitmap));
	memset(s, 0, sizeof(*s));
	memset(r, 0, sizeof(*r));
	s->apic_base = apic_base;
	memcpy(s->interrupt_bitmap, bitmap, sizeof(bitmap));
	r->rflags = ENTRY32_RFLAGS;
}

void entry32_multiboot(struct kvm_sregs *s, struct kvm_regs *r, uint32_t entry,
		       uint32_t info)
{
	entry32_clear(s, r);
	entry32_seg(&s->cs, ENTRY32_SEL_CODE, 0, SEG_TYPE_CODE_RX, 1);
	entry32_seg(&s->ds, ENTRY32_SEL_DATA, 0, SEG_TYPE_DATA_RW, 1);
	s->es = s->fs = s->gs = s->ss = s->ds;
	entry32_system_segs(s);
	s->cr0 = ENTRY32_CR0_PE | ENTRY32_CR0_ET;
	r->rip = entry;
	r->rax = MULTIBOOT_BOOT_MAGIC;
	r->rbx = info;
}

void entry32_pvh(struct kvm_sregs *s, struct kvm_regs *r, uint32_t entry,
		 uint32_t start_info)
{
	entry32_multiboot(s, r, entry, start_info);
	r->rax = 0;
}

void entry32_reset(struct kvm_sregs *s, struct kvm_regs *r)
{
	entry32_clear(s, r);
	entry32_seg(&s->cs, 0xf000, 0xffff0000U, SEG_TYPE_CODE_RX, 0);
	entry32_seg(&s->ds, 0, 0, SEG_TYPE_DATA_RW, 0);
	s->es = s->fs = s->gs = s->ss = s->ds;
	entry32_system_segs(s);
	s->gdt.limit = 0xffff;
	s->idt.limit = 0xffff;
	s->cr0 = ENTRY32_CR0_ET | ENTRY32_CR0_NW | ENTRY32_CR0_CD;
	r->rip = 0xfff0;
}
