/* SPDX-License-Identifier: MIT */
/*
 * start32.S - the Multiboot header and 32-bit entry of guest-mb.elf.
 *
 * Only the Multiboot image links this file: any Multiboot v1 loader (QEMU's
 * -kernel, GRUB, vmmctl's) enters _start32 on the boot CPU in 32-bit
 * protected mode with paging off, EAX = 0x2BADB002 and EBX = the Multiboot
 * information. The header's flags are 0: no a.out fields, so the loader
 * takes the segments from the ELF32 program headers.
 *
 * The way to long mode is kept short, because every ring-0 instruction is
 * emulated on our hosts (docs/kvm-host.md): a bootstrap identity map of
 * [0, 4 GiB) with 2048 2 MiB pages in .bss, PAE, EFER.LME, paging, a 64-bit
 * GDT, and a far jump. mb_boot() (mb_boot.c) then builds the real 4 KiB
 * identity tables, fills the boot-info page and returns it; _start32 enters
 * the ordinary 64-bit _start with the registers a VMM gives CPU 0
 * (RDI = boot info, RSI = 0, RSP = 0). Other CPUs are never started.
 * The TSC at the first instruction goes to mb_tsc_start, for the timing
 * line mb_boot() prints.
 */
#include "kernel/layout.h"

#define MB_HEADER_MAGIC 0x1BADB002
#define MB_HEADER_FLAGS 0
#define MB_BOOT_MAGIC	0x2BADB002

#define CR0_PE	       0x00000001
#define CR0_MP	       0x00000002
#define CR0_ET	       0x00000010
#define CR0_NE	       0x00000020
#define CR0_WP	       0x00010000
#define CR0_PG	       0x80000000
#define CR4_PAE	       0x00000020
#define CR4_OSFXSR     0x00000200
#define CR4_OSXMMEXCPT 0x00000400
#define MSR_EFER       0xc0000080
#define EFER_LME       0x00000100

#define BOOT_PDS 4 /* page directories: 4 x 1 GiB */

	.section .multiboot, "a"
	.p2align 2
	.long	MB_HEADER_MAGIC
	.long	MB_HEADER_FLAGS
	.long	-(MB_HEADER_MAGIC + MB_HEADER_FLAGS)

	.section .text.entry32, "ax", @progbits
	.code32
	.globl	_start32
	.type	_start32, @function
_start32:
	movl	%eax, %ecx
	rdtsc
	movl	%eax, mb_tsc_start
	movl	%edx, mb_tsc_start + 4
	cmpl	$MB_BOOT_MAGIC, %ecx
	jne	.Lhalt32		/* not a Multiboot loader: no info */
	movl	%ebx, mb_info

	/* PD entries: 2 MiB pages over [0, 4 GiB), high halves stay 0 (.bss). */
	movl	$mb_boot_pd, %edi
	movl	$(PTE_P | PTE_W | PTE_PS), %eax
	movl	$(BOOT_PDS * 512), %ecx
1:	movl	%eax, (%edi)
	addl	$0x200000, %eax
	addl	$8, %edi
	decl	%ecx
	jnz	1b
	movl	$(mb_boot_pd + (PTE_P | PTE_W)), mb_boot_pdpt
	movl	$(mb_boot_pd + 0x1000 + (PTE_P | PTE_W)), mb_boot_pdpt + 8
	movl	$(mb_boot_pd + 0x2000 + (PTE_P | PTE_W)), mb_boot_pdpt + 16
	movl	$(mb_boot_pd + 0x3000 + (PTE_P | PTE_W)), mb_boot_pdpt + 24
	movl	$(mb_boot_pdpt + (PTE_P | PTE_W)), mb_boot_pml4

	/* The control registers of the VMM's entry contract (README). */
	lgdt	mb_gdt_ptr
	movl	$(CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT), %eax
	movl	%eax, %cr4
	movl	$mb_boot_pml4, %eax
	movl	%eax, %cr3
	movl	$MSR_EFER, %ecx
	rdmsr
	orl	$EFER_LME, %eax
	wrmsr
	movl	$(CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG), %eax
	movl	%eax, %cr0
	ljmp	$SEL_KCODE, $mb_start64

.Lhalt32:
	cli
	hlt
	jmp	.Lhalt32
	.size	_start32, . - _start32

	.code64
	.type	mb_start64, @function
mb_start64:
	movl	$SEL_KDATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs
	leaq	kstack + KSTACK_SIZE(%rip), %rsp /* CPU 0's ring-0 stack */
	xorl	%ebp, %ebp
	movl	mb_info(%rip), %edi
	call	mb_boot			/* returns the boot-info page */
	movq	%rax, %rdi
	xorl	%esi, %esi
	xorl	%esp, %esp
	jmp	_start
	.size	mb_start64, . - mb_start64

/* Flat 64-bit code and data, accessed bits preset as in gdt.c. */
	.section .rodata
	.p2align 3
mb_gdt:
	.quad	0
	.quad	0x00af9b000000ffff	/* SEL_KCODE: 64-bit code, DPL 0 */
	.quad	0x00cf93000000ffff	/* SEL_KDATA: data, DPL 0 */
mb_gdt_ptr:
	.word	mb_gdt_ptr - mb_gdt - 1
	.long	mb_gdt

	.section .bss
	.p2align 12
mb_boot_pml4:
	.skip	4096
mb_boot_pdpt:
	.skip	4096
mb_boot_pd:
	.skip	BOOT_PDS * 4096
	.p2align 3
mb_info:
	.skip	4

	.section .note.GNU-stack, "", @progbits
