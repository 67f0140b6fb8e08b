/* SPDX-License-Identifier: MIT */
/*
 * layout.h - constants of the guest kernel shared by C and assembly.
 *
 * Only #defines live here, because start.S includes this file too (the ABI
 * header common/guest_abi.h has structs and cannot be included from assembly).
 * The GDT is laid out the way SYSCALL/SYSRET would want it even though we do
 * not use them: kernel code, kernel data, user data, user code, then the TSS.
 * Every CPU has its own GDT, so the TSS selector is the same on all of them.
 */
#ifndef GUEST_KERNEL_LAYOUT_H
#define GUEST_KERNEL_LAYOUT_H

#define KERNEL_MAX_CPUS 32 /* == GUEST_MAX_CPUS, checked in main.c */

#define KSTACK_SHIFT 14 /* ring-0 stack: 16 KiB per CPU */
#define KSTACK_SIZE  (1 << KSTACK_SHIFT)
#define USTACK_SIZE  (64 * 1024) /* ring-3 stack: 64 KiB per CPU */

#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UDATA 0x18 /* used with RPL 3 */
#define SEL_UCODE 0x20 /* used with RPL 3 */
#define SEL_TSS	  0x28 /* 16-byte descriptor: GDT slots 5 and 6 */
#define SEL_RPL3  3

#define GDT_ENTRIES 7
#define IDT_VECTORS 48 /* exceptions, then lib/timer.h's vectors */

/* Vectors for which the CPU pushes an error code: 8 10-14 17 21 29 30. */
#define TRAP_ERRCODE_MASK 0x60227d00

#define RFLAGS_FIXED 0x2 /* bit 1 is always set; IF clear */
#define RFLAGS_IF    0x200 /* set for ring 3 by SYS_TIMER_START/PACE */

/* Page-table entry bits (no ULL: start32.S uses them too). */
#define PTE_P	0x001
#define PTE_W	0x002
#define PTE_U	0x004
#define PTE_PWT 0x008
#define PTE_PCD 0x010
#define PTE_PS	0x080 /* a 2 MiB page, in a page directory */

#endif /* GUEST_KERNEL_LAYOUT_H */
