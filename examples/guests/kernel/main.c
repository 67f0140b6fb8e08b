/* SPDX-License-Identifier: MIT */
/*
 * main.c - ring-0 main: the shortest path from the VMM's entry to ring 3.
 *
 * Every CPU runs kernel_main() on its own ring-0 stack (start.S): its own
 * GDT/TSS and IDT, a check of the boot-info page, then iretq into
 * user_main() on its own 64 KiB ring-3 stack. Nothing else happens in ring
 * 0, because every ring-0 instruction is emulated by the host (about 350 ns
 * each); ring 0 is re-entered only through exceptions (trap.c).
 */
#include "kernel/kernel.h"
#include "lib/testdev.h"
#include "lib/x86.h"

_Static_assert(KERNEL_MAX_CPUS == GUEST_MAX_CPUS, "layout.h is out of date");

/* Ring-0 stacks: start.S points RSP at the end of kstack[cpu]. */
uint8_t kstack[KERNEL_MAX_CPUS][KSTACK_SIZE] __attribute__((aligned(16)));

static uint8_t ustack[KERNEL_MAX_CPUS][USTACK_SIZE]
	__attribute__((aligned(16)));

/* CPU 0 reports a foreign boot-info page; every CPU then stops. */
static void kernel_check_boot_info(const struct boot_info *bi, unsigned int cpu)
{
	if (bi->magic == BOOT_INFO_MAGIC && bi->version == BOOT_INFO_VERSION)
		return;
	if (cpu == 0) {
		uart_printf("guest: bad boot info at %p: magic 0x%x version "
			    "%u (want magic 0x%x version %u)\n",
			    (const void *)bi, bi->magic, bi->version,
			    BOOT_INFO_MAGIC, BOOT_INFO_VERSION);
		testdev_marker(MARK_GUEST_PANIC, GUEST_PANIC_BOOT_INFO);
		testdev_exit(GUEST_EXIT_PANIC);
	}
	x86_park();
}

void kernel_main(struct boot_info *bi, uint64_t cpu)
{
	/*
	 * The ring-3 function is entered by iretq, not by a call: start it
	 * with RSP = 8 mod 16 as if a return address had been pushed, so the
	 * ABI's stack alignment (movaps on locals) holds. The slot holds 0.
	 */
	uint64_t usp = (uint64_t)(uintptr_t)ustack[cpu] + USTACK_SIZE - 8;

	gdt_init(cpu);
	idt_init(cpu);
	kernel_check_boot_info(bi, cpu);
	user_enter((uint64_t)(uintptr_t)user_main, usp, (uint64_t)(uintptr_t)bi,
		   cpu);
}
