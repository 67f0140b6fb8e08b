/* SPDX-License-Identifier: MIT */
/*
 * main.c - the ring-3 program every CPU enters from kernel_main().
 *
 * Each CPU announces itself (a MARK_CPU_UP marker and a console line). CPUs
 * other than 0 then halt through the ud2 system call, so they cost the host
 * nothing; CPU 0 runs the command line's workloads and exits with 0 when
 * they are done. A CPU never returns from here.
 */
#include "lib/testdev.h"
#include "user/user.h"

void guest_exit(uint32_t code)
{
	testdev_exit(code);
	sys_halt(); /* the VMM stops at the exit; never run on regardless */
}

void user_main(struct boot_info *bi, uint64_t cpu)
{
	testdev_marker(MARK_CPU_UP, (uint32_t)cpu);
	console_printf("cpu %lu up (ring 3)\n", cpu);
	if (cpu != 0)
		sys_halt();
	tick_init(bi);
	mem_init(bi);
	workload_run_cmdline(bi);
	guest_exit(GUEST_EXIT_OK);
}
