/* SPDX-License-Identifier: MIT */
/*
 * start.S - entry point, exception entry stubs and the drop to ring 3.
 *
 * The VMM starts every vCPU at _start at once, in 64-bit mode with paging on,
 * RSP = 0, RDI = boot-info pointer and RSI = CPU id. _start picks this CPU's
 * ring-0 stack out of kstack[] and calls kernel_main(). The 48 entry
 * stubs (32 exceptions, 16 interrupt vectors) push a dummy error code where the CPU pushes none, then the vector,
 * so trap_common always builds the same struct trap_frame (kernel/kernel.h);
 * trap_dispatch() may edit the frame and return, and trap_common resumes
 * the interrupted code with iretq. user_enter() builds an iretq frame by hand
 * to leave ring 0 for good. Every instruction here runs in the ring-0
 * emulator of the host, so the paths are kept short and plain.
 */
#include "kernel/layout.h"

	.section .text.entry, "ax", @progbits
	.globl	_start
	.type	_start, @function
_start:
	cmpq	$KERNEL_MAX_CPUS, %rsi
	jae	.Lpark			/* no stack for this CPU: stop it */
	leaq	kstack(%rip), %rsp
	movq	%rsi, %rax
	incq	%rax
	shlq	$KSTACK_SHIFT, %rax
	addq	%rax, %rsp		/* top of kstack[cpu], 16-byte aligned */
	xorl	%ebp, %ebp
	call	kernel_main		/* (boot_info in RDI, cpu in RSI) */
.Lpark:
	cli
	hlt
	jmp	.Lpark
	.size	_start, . - _start

	.text

/* One stub per vector: [dummy error code], vector, common path. */
.macro	TRAP_STUB vec
	.p2align 4
trap_stub_\vec:
	.if ((TRAP_ERRCODE_MASK >> \vec) & 1) == 0
	pushq	$0
	.endif
	pushq	$\vec
	jmp	trap_common
.endm

	.irp	vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47
	TRAP_STUB \vec
	.endr

/*
 * Stack on entry (growing down): ss rsp rflags cs rip error vector. Push the
 * general registers in the reverse order of struct trap_frame, call the C
 * handler with the frame, restore, drop vector and error code, iretq. From
 * a 16-byte aligned stack top the 22 quadwords keep RSP aligned at the call.
 */
	.p2align 4
	.type	trap_common, @function
trap_common:
	pushq	%rax
	pushq	%rbx
	pushq	%rcx
	pushq	%rdx
	pushq	%rsi
	pushq	%rdi
	pushq	%rbp
	pushq	%r8
	pushq	%r9
	pushq	%r10
	pushq	%r11
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	cld
	movq	%rsp, %rdi
	call	trap_dispatch
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%r11
	popq	%r10
	popq	%r9
	popq	%r8
	popq	%rbp
	popq	%rdi
	popq	%rsi
	popq	%rdx
	popq	%rcx
	popq	%rbx
	popq	%rax
	addq	$16, %rsp		/* vector and error code */
	iretq
	.size	trap_common, . - trap_common

/*
 * void user_enter(uint64_t rip, uint64_t rsp, uint64_t arg0, uint64_t arg1)
 * iretq frame: SS, RSP, RFLAGS, CS, RIP (pushed in that order).
 */
	.globl	user_enter
	.type	user_enter, @function
user_enter:
	pushq	$(SEL_UDATA | SEL_RPL3)
	pushq	%rsi
	pushq	$RFLAGS_FIXED
	pushq	$(SEL_UCODE | SEL_RPL3)
	pushq	%rdi
	movq	%rdx, %rdi
	movq	%rcx, %rsi
	xorl	%ebp, %ebp
	iretq
	.size	user_enter, . - user_enter

	.section .rodata
	.globl	trap_stubs
	.p2align 3
trap_stubs:
	.irp	vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47
	.quad	trap_stub_\vec
	.endr
	.size	trap_stubs, . - trap_stubs

	.section .note.GNU-stack, "", @progbits
