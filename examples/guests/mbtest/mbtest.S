/* SPDX-License-Identifier: MIT */
/*
 * mbtest.S - a small Multiboot v1 guest for CI (t_multiboot.sh): entered by
 * the VMM's Multiboot loader in 32-bit protected mode with paging off, it
 * prints on the 16550 at 0x3f8, reads NB_CPUS from fw_cfg (0x510/0x511),
 * starts every AP with INIT and SIPI (they count themselves in from real
 * mode), and ends through isa-debug-exit at 0xf4: code 0 (status 1) when
 * all CPUs came up, 1 (status 3) when not, 2 (status 5) without the
 * Multiboot magic. With "echo" in its command line it first prints
 * "mbtest: echo", then copies what the UART receives to its output up to
 * and including a newline (t_multiboot.sh migrates it while it waits).
 * Only ring 0 and a few instructions: this host emulates them.
 */
#define MB_MAGIC     0x1BADB002
#define MB_BOOTED    0x2BADB002
#define COM1	     0x3f8
#define FW_CFG_SEL   0x510
#define FW_CFG_DATA  0x511
#define NB_CPUS	     0x05
#define EXIT_PORT    0xf4
#define LAPIC_SVR    0xfee000f0
#define LAPIC_ICR_LO 0xfee00300
#define TRAMPOLINE   0x8000 /* SIPI vector 8 */
#define AP_COUNT     0x7ff0 /* APs in, written from real mode */

	.section .multiboot, "a"
	.balign 4
	.long MB_MAGIC, 0, -MB_MAGIC

	.text
	.code32
	.globl _start
_start:
	mov $stack_top, %esp
	cmp $MB_BOOTED, %eax
	jne no_magic
	mov %ebx, %edi /* the Multiboot information */
	mov $msg_hello, %esi
	call puts
	/* The command line (info flags bit 2). */
	testl $4, (%edi)
	jz 1f
	mov $msg_cmdline, %esi
	call puts
	mov 16(%edi), %esi
	call puts
	mov $'\n', %al
	call putc
1:	/* NB_CPUS: 2 bytes, little-endian. */
	mov $FW_CFG_SEL, %dx
	mov $NB_CPUS, %ax
	outw %ax, %dx
	mov $FW_CFG_DATA, %dx
	inb %dx, %al
	movzbl %al, %ebx
	mov $msg_cpus, %esi
	call puts
	mov %ebx, %eax
	call putdec
	mov $'\n', %al
	call putc
	call start_aps
	mov $msg_up, %esi
	call puts
	movzwl AP_COUNT, %eax
	inc %eax
	mov %eax, %ecx
	call putdec
	mov $'\n', %al
	call putc
	call echo_line
	xor %eax, %eax
	cmp %ebx, %ecx
	je 2f
	mov $1, %eax
2:	mov $EXIT_PORT, %dx
	outl %eax, %dx
	jmp halt
no_magic:
	mov $2, %eax
	mov $EXIT_PORT, %dx
	outl %eax, %dx
halt:	cli
	hlt
	jmp halt

/* Copy the trampoline, INIT then SIPI to all but self, wait for the APs. */
start_aps:
	push %edi
	cmp $1, %ebx
	jbe 9f
	movw $0, AP_COUNT
	mov $ap_start, %esi
	mov $TRAMPOLINE, %edi
	mov $(ap_end - ap_start), %ecx
	rep movsb
	movl $0x1ff, LAPIC_SVR /* software-enable, spurious vector 0xff */
	movl $0xc4500, LAPIC_ICR_LO /* INIT, assert, all but self */
	movl $0xc4600 + (TRAMPOLINE >> 12), LAPIC_ICR_LO /* SIPI */
	mov $100000000, %ecx
1:	movzwl AP_COUNT, %eax
	inc %eax
	cmp %ebx, %eax
	je 9f
	pause
	loop 1b
9:	pop %edi
	ret

/* With "echo" in the command line (%edi: the info), echo one input line. */
echo_line:
	testl $4, (%edi)
	jz 9f
	mov 16(%edi), %esi
1:	cmpb $0, (%esi)
	je 9f
	cmpl $0x6f686365, (%esi) /* "echo" */
	je 2f
	inc %esi
	jmp 1b
2:	push %esi
	mov $msg_echo, %esi
	call puts
	pop %esi
3:	mov $COM1 + 5, %dx /* LSR: data ready */
	inb %dx, %al
	test $1, %al
	jz 3b
	mov $COM1, %dx
	inb %dx, %al
	call putc
	cmp $'\n', %al
	jne 3b
9:	ret

/* Print the NUL-terminated string at %esi. */
puts:	lodsb
	test %al, %al
	jz 1f
	call putc
	jmp puts
1:	ret

/* Print %al once the transmitter holds nothing. */
putc:	push %edx
	push %eax
	mov $COM1 + 5, %dx
1:	inb %dx, %al
	test $0x20, %al
	jz 1b
	pop %eax
	mov $COM1, %dx
	outb %al, %dx
	pop %edx
	ret

/* Print %eax (< 100) in decimal. */
putdec:	push %ecx
	push %edx
	xor %edx, %edx
	mov $10, %ecx
	div %ecx
	test %eax, %eax
	jz 1f
	add $'0', %al
	call putc
1:	mov %dl, %al
	add $'0', %al
	call putc
	pop %edx
	pop %ecx
	ret

/* Runs at 0800:0000 in real mode on each AP: count in, then halt. */
	.code16
ap_start:
	lock incw AP_COUNT
1:	cli
	hlt
	jmp 1b
ap_end:
	.code32

	.section .rodata
msg_hello:	.asciz "mbtest: booted by Multiboot\n"
msg_cmdline:	.asciz "mbtest: cmdline "
msg_cpus:	.asciz "mbtest: fw_cfg NB_CPUS "
msg_up:		.asciz "mbtest: cpus up "
msg_echo:	.asciz "mbtest: echo\n"

	.bss
	.balign 16
	.skip 4096
stack_top:
