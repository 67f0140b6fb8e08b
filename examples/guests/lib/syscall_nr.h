/* SPDX-License-Identifier: MIT */
/*
 * syscall_nr.h - the numbers of the guest's "system calls".
 *
 * Neither `int` nor `syscall` gets from ring 3 to ring 0 on the nested KVM
 * we run on (docs/kvm-host.md), but exceptions do. A system call is therefore a
 * deliberate `ud2` executed in ring 3 with SYS_MAGIC + number in RAX; the
 * ring-0 #UD handler recognises it by all three: CPL 3, the magic in RAX and
 * the ud2 opcode at RIP. Arguments go in RDI, RSI, RDX, RCX (the order of
 * a C call); a call that returns does so with RIP advanced past the ud2,
 * its result in RAX and every other register unchanged.
 */
#ifndef GUEST_SYSCALL_NR_H
#define GUEST_SYSCALL_NR_H

#include <stdint.h>

#define SYS_MAGIC   0x5ca11000
#define SYS_NR_MASK 0xfff

#define SYS_HALT  0 /* park this CPU in ring 0 (cli; hlt), never returns */
#define SYS_RESET 1 /* pulse the i8042 reset line (port 0x64 <- 0xfe) */

/*
 * SYS_PF_POOL(pool_gpa, pool_pages, region_gva, region_pages): from now on
 * a not-present #PF from ring 3 inside [region_gva, +region_pages pages)
 * is resolved by mapping the page to the next page of the pool
 * [pool_gpa, +pool_pages pages); the missing page tables of the region
 * come from the pool too. Zeroes the fault counter. Everything page
 * aligned, the region outside PML4 slot 0 (the identity map) and in the
 * lower canonical half. region_pages == 0 unregisters: every #PF panics
 * again. Returns 0, or SYS_EINVAL.
 */
#define SYS_PF_POOL  2
#define SYS_PF_COUNT 3 /* returns the #PFs resolved since SYS_PF_POOL */
#define SYS_HALTED   4 /* returns how many CPUs have parked by SYS_HALT */

/*
 * For a guest without the test device (BOOT_INFO_F_NO_TESTDEV), where ring
 * 3 has no way to the host of its own: SYS_CONSOLE(buf, len) writes len
 * bytes (at most SYS_CONSOLE_MAX) at buf to the UART and returns 0, or
 * SYS_EINVAL; SYS_EXIT(code) ends the guest through kernel_exit() and
 * never returns.
 */
#define SYS_CONSOLE	5
#define SYS_EXIT	6
#define SYS_CONSOLE_MAX 4096

/*
 * The interrupt mode (lib/timer.h, kernel/timer.c). SYS_TIMER_START(kind,
 * tsc_khz) on CPU 0: its TIMER_HZ tick and kvmclock; SYS_TIMER_PACE(kind,
 * tsc_khz) on CPU 1: its TIMER_IPI_HZ pacing timer. Both return 0 with
 * interrupts enabled in ring 3 from then on, or SYS_EINVAL. SYS_TIMER_WAIT
 * halts until this CPU's count moves and returns it; SYS_IPI_SEND (CPU 1)
 * sends TIMER_VEC_IPI to CPU 0 and returns the IPIs sent.
 */
#define SYS_TIMER_START 7
#define SYS_TIMER_PACE	8
#define SYS_TIMER_WAIT	9
#define SYS_IPI_SEND	10

#define SYS_EINVAL	  ((uint64_t)-1) /* the result of bad arguments */
#define SYS_PF_REGION_MIN (1ULL << 39)	 /* PML4 slot 1 and above */
#define SYS_PF_REGION_END (1ULL << 47)	 /* the end of the lower half */

#endif /* GUEST_SYSCALL_NR_H */
