/* SPDX-License-Identifier: MIT */
/*
 * trap.c - exception dispatch and the guest panic.
 *
 * trap_dispatch() gets every exception, from ring 0 or ring 3, with the
 * full register frame. #UD may be a system call (syscall.c) and #PF has its
 * own handler (pagefault.c); both may fix the frame up and return, which
 * resumes the faulting code. Everything else is a panic: one line on the
 * UART, a MARK_GUEST_PANIC marker with the vector, exit code 99 through
 * kernel_exit(), and the CPU parks in case the VMM lets it run on.
 */
#include "kernel/kernel.h"
#include "lib/testdev.h"
#include "lib/x86.h"

/* The CPU whose ring-0 stack holds the frame, or -1 (a corrupted RSP). */
int trap_cpu(const struct trap_frame *f)
{
	uintptr_t p = (uintptr_t)f, base = (uintptr_t)kstack;

	if (p < base || p >= base + sizeof(kstack))
		return -1;
	return (int)((p - base) / KSTACK_SIZE);
}

void trap_panic(const struct trap_frame *f)
{
	uart_printf("guest panic: vector %lu err 0x%lx rip 0x%lx cr2 0x%lx "
		    "cpu %d\n",
		    f->vector, f->error, f->rip, x86_read_cr2(), trap_cpu(f));
	testdev_marker(MARK_GUEST_PANIC, (uint32_t)f->vector);
	kernel_exit(GUEST_EXIT_PANIC);
}

void trap_dispatch(struct trap_frame *f)
{
	if (f->vector >= 32) {
		timer_interrupt(f);
		return;
	}
	switch (f->vector) {
	case TRAP_UD:
		if (syscall_handle(f))
			return;
		break;
	case TRAP_PF:
		pagefault_handle(f);
		return;
	}
	trap_panic(f);
}
