/* SPDX-License-Identifier: MIT */
/*
 * syscall.c - the ud2 "system call" from ring 3 (see lib/syscall_nr.h).
 *
 * A #UD is a system call only if it came from CPL 3, RAX holds SYS_MAGIC
 * plus a known number, and the faulting instruction really is ud2 (0f 0b);
 * anything else is left to the panic path. SYS_HALT parks the CPU with
 * interrupts off: the host blocks the vCPU in hlt, so idle CPUs cost no
 * host time. SYS_RESET does the port I/O that ring 3 cannot: it asks the
 * i8042 to reset the machine, then parks in case the reset never comes.
 * SYS_CONSOLE and SYS_EXIT are ring 3's UART and exit where there is no
 * test device (a Multiboot boot under another VMM).
 * The calls that return (SYS_HALTED, SYS_CONSOLE; SYS_PF_POOL and
 * SYS_PF_COUNT are in kernel/pagefault.c) set f->rax to their result, advance
 * f->rip past the ud2 and return true.
 */
#include "kernel/kernel.h"
#include "lib/syscall_nr.h"
#include "lib/x86.h"

#define I8042_COMMAND 0x64
#define I8042_RESET   0xfe
#define UD2_LEN	      2

static uint32_t syscall_halted; /* CPUs parked by SYS_HALT */

static bool syscall_is_ud2(const struct trap_frame *f)
{
	/* The CPU just fetched these two bytes: they are mapped. */
	const volatile uint8_t *ip = (const volatile uint8_t *)f->rip;

	return ip[0] == 0x0f && ip[1] == 0x0b;
}

static bool syscall_return(struct trap_frame *f, uint64_t result)
{
	f->rax = result;
	f->rip += UD2_LEN;
	return true;
}

bool syscall_handle(struct trap_frame *f)
{
	if ((f->cs & 3) != 3)
		return false;
	if ((f->rax & ~(uint64_t)SYS_NR_MASK) != SYS_MAGIC)
		return false;
	if (!syscall_is_ud2(f))
		return false;
	switch (f->rax & SYS_NR_MASK) {
	case SYS_HALT:
		__atomic_add_fetch(&syscall_halted, 1, __ATOMIC_RELEASE);
		x86_park();
	case SYS_RESET:
		x86_outb(I8042_COMMAND, I8042_RESET);
		x86_park();
	case SYS_HALTED:
		return syscall_return(
			f, __atomic_load_n(&syscall_halted, __ATOMIC_ACQUIRE));
	case SYS_PF_POOL:
		return syscall_return(
			f, pagefault_set_pool(f->rdi, f->rsi, f->rdx, f->rcx));
	case SYS_PF_COUNT:
		return syscall_return(f, pagefault_count());
	case SYS_CONSOLE:
		if (f->rsi > SYS_CONSOLE_MAX)
			return syscall_return(f, SYS_EINVAL);
		uart_write((const char *)f->rdi, f->rsi);
		return syscall_return(f, 0);
	case SYS_EXIT:
		kernel_exit((uint32_t)f->rdi);
	case SYS_TIMER_START:
	case SYS_TIMER_PACE:
	case SYS_TIMER_WAIT:
	case SYS_IPI_SEND:
		return syscall_return(f, timer_syscall(f, f->rax & SYS_NR_MASK));
	}
	return false;
}
