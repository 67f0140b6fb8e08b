/* SPDX-License-Identifier: MIT */
/*
 * user.h - what the ring-3 files of the guest share.
 *
 * Ring 3 is where the guest does its work, at native speed: one program on
 * every CPU (main.c), of which CPU 0 runs the workloads of the command line
 * and the others halt. It reaches the host only through the test device's
 * MMIO registers and ring 0 only through the ud2 system call.
 */
#ifndef GUEST_USER_H
#define GUEST_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/syscall_nr.h"
#include "vmm/guest_abi.h"

/* Pages between two calls of tick() in loops over a region. */
#define TICK_PAGES 4

static inline __attribute__((noreturn)) void sys_halt(void)
{
	asm volatile("ud2" : : "a"((uint64_t)SYS_MAGIC + SYS_HALT) : "memory");
	__builtin_unreachable();
}

static inline __attribute__((noreturn)) void sys_reset(void)
{
	asm volatile("ud2" : : "a"((uint64_t)SYS_MAGIC + SYS_RESET) : "memory");
	__builtin_unreachable();
}

/* main.c: write the exit code to the test device, then halt. */
void guest_exit(uint32_t code) __attribute__((noreturn));

/* console.c: whole lines to the VMM's output, one MMIO exit each. */
void console_write(const char *s, size_t len);
void console_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* tick.c: the 1 kHz heartbeat and the host's request mailbox. */
void tick_init(struct boot_info *bi);
uint64_t tick_ms_to_tsc(uint64_t ms);
uint64_t tick_tsc_hz(void);
void tick_workload_begin(void);
bool tick_at(uint64_t now);
bool tick(void);
void tick_heartbeat(void);

/* mem.c: page-aligned bump allocation from boot_info->free[]. */
void mem_init(const struct boot_info *bi);
void mem_reset(void);
void *mem_alloc(uint64_t bytes);

/* verify.c: check the current dirty region; exits 2 or 3 unless ok. */
void verify_current(void);

/* workload.c: parse the command line, run every workload in order. */
void workload_run_cmdline(const struct boot_info *bi);

#endif /* GUEST_USER_H */
