/* SPDX-License-Identifier: MIT */
/*
 * main.c - the ring-3 program every CPU enters from kernel_main().
 *
 * Each CPU announces itself (a MARK_CPU_UP marker and a console line). CPUs
 * other than 0 then halt through the ud2 system call, so they cost the host
 * nothing (unless the command line makes them readers: reader.c); CPU 0 runs
 * the command line's workloads and exits with 0 when they are done. A CPU never
 * returns from here. A workload that needs CPU 0 to be the only writer of guest
 * memory (`touch`) first waits until the others have parked in ring 0: a late
 * CPU's first writes would also set accessed/dirty bits in the page tables.
 */
#include "lib/testdev.h"
#include "lib/x86.h"
#include "user/user.h"

#define MAIN_HALT_WAIT_MS 10000

static uint32_t main_nr_cpus;
static bool main_no_testdev; /* written only where CPU 0 runs alone */

bool guest_testdev(void)
{
	return !main_no_testdev;
}

void guest_exit(uint32_t code)
{
	if (main_no_testdev)
		sys_exit(code);
	testdev_exit(code);
	sys_halt(); /* the VMM stops at the exit; never run on regardless */
}

uint32_t guest_nr_cpus(void)
{
	return main_nr_cpus;
}

void guest_wait_others_halted(void)
{
	uint64_t end = x86_rdtsc() + tick_ms_to_tsc(MAIN_HALT_WAIT_MS);
	uint64_t n;

	while ((n = sys_halted()) + 1 < main_nr_cpus) {
		if (x86_rdtsc() > end) {
			console_printf("guest: only %lu of %u other CPUs "
				       "halted after %u ms\n",
				       n, main_nr_cpus - 1, MAIN_HALT_WAIT_MS);
			return;
		}
		tick_heartbeat();
		x86_pause();
	}
}

void user_main(struct boot_info *bi, uint64_t cpu)
{
	if (bi->flags & BOOT_INFO_F_NO_TESTDEV)
		main_no_testdev = true;
	testdev_marker(MARK_CPU_UP, (uint32_t)cpu);
	console_printf("cpu %lu up (ring 3)\n", cpu);
	if (cpu == 1 && timer_wanted(bi))
		timer_ipi_run(bi);
	if (cpu != 0 && cpu <= reader_wanted(bi))
		reader_run((uint32_t)cpu);
	if (cpu != 0)
		sys_halt();
	main_nr_cpus = bi->nr_cpus;
	tick_init(bi);
	mem_init(bi);
	workload_run_cmdline(bi);
	guest_exit(GUEST_EXIT_OK);
}
