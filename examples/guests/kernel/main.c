/* SPDX-License-Identifier: MIT */
/*
 * main.c - ring-0 main: the shortest path from the VMM's entry to ring 3.
 *
 * Every CPU runs kernel_main() on its own ring-0 stack (start.S): its own
 * GDT/TSS and IDT, a check of the boot-info page (CPU 0 also notes
 * whether the test device is there, for kernel_exit), then iretq into
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

#define DEBUG_EXIT_PORT 0xf4

/* Set by CPU 0 before ring 3 runs; read-only afterwards. */
static bool kernel_no_testdev;

void kernel_exit(uint32_t code)
{
	if (!kernel_no_testdev) {
		testdev_exit(code);
	} else {
		uart_printf("guest: exit %u\n", code);
		x86_outb(DEBUG_EXIT_PORT, (uint8_t)code);
	}
	x86_park();
}

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
		kernel_exit(GUEST_EXIT_PANIC);
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
	if (cpu == 0)
		kernel_no_testdev = bi->flags & BOOT_INFO_F_NO_TESTDEV;
	user_enter((uint64_t)(uintptr_t)user_main, usp, (uint64_t)(uintptr_t)bi,
		   cpu);
}
