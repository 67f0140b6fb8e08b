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
#include "common/guest_abi.h"

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

/* A system call that returns: result in RAX, other registers kept. */
static inline uint64_t sys_call4(uint64_t nr, uint64_t a0, uint64_t a1,
				 uint64_t a2, uint64_t a3)
{
	uint64_t rax = SYS_MAGIC + nr;

	asm volatile("ud2"
		     : "+a"(rax)
		     : "D"(a0), "S"(a1), "d"(a2), "c"(a3)
		     : "memory");
	return rax;
}

static inline uint64_t sys_console(const void *buf, uint64_t len)
{
	return sys_call4(SYS_CONSOLE, (uint64_t)(uintptr_t)buf, len, 0, 0);
}

static inline __attribute__((noreturn)) void sys_exit(uint32_t code)
{
	sys_call4(SYS_EXIT, code, 0, 0, 0);
	__builtin_unreachable();
}

static inline uint64_t sys_halted(void)
{
	return sys_call4(SYS_HALTED, 0, 0, 0, 0);
}

static inline uint64_t sys_pf_pool(uint64_t pool, uint64_t pool_pages,
				   uint64_t va, uint64_t pages)
{
	return sys_call4(SYS_PF_POOL, pool, pool_pages, va, pages);
}

static inline uint64_t sys_pf_count(void)
{
	return sys_call4(SYS_PF_COUNT, 0, 0, 0, 0);
}

/*
 * main.c: write the exit code to the test device, then halt; without the
 * test device, SYS_EXIT. guest_testdev(): false when the boot info says
 * BOOT_INFO_F_NO_TESTDEV (a Multiboot boot under another VMM): console
 * lines then go through SYS_CONSOLE and heartbeats only to the heartbeat
 * page. Markers are still posted (an absent window drops them).
 */
void guest_exit(uint32_t code) __attribute__((noreturn));
bool guest_testdev(void);
/* main.c: wait (with heartbeats) until the other CPUs have halted. */
void guest_wait_others_halted(void);
uint32_t guest_nr_cpus(void);
/* reader.c: how many CPUs read for `dirty --readers N`; a reader's loop. */
uint32_t reader_wanted(const struct boot_info *bi);
void reader_run(uint32_t cpu) __attribute__((noreturn));

/* console.c: whole lines to the VMM's output, one MMIO exit each. */
void console_write(const char *s, size_t len);
void console_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* tick.c: the 1 kHz heartbeat and the host's request mailbox. */
void tick_init(struct boot_info *bi);
uint64_t tick_ms_to_tsc(uint64_t ms);
uint64_t tick_tsc_hz(void);
uint64_t tick_tsc_to_ns(uint64_t tsc);
/* GUEST_REQ_TOUCH goes to fn (its result into mailbox.result); NULL: none. */
void tick_set_touch(uint64_t (*fn)(uint64_t arg));
void tick_workload_begin(void);
bool tick_at(uint64_t now);
bool tick(void);
void tick_heartbeat(void);

/*
 * mem.c: page-aligned bump allocation from boot_info->free[]. mem_alloc()
 * memory may have been used before (mem_reset() gives it back);
 * mem_alloc_fresh() memory has never been handed out and is never handed
 * out again.
 */
void mem_init(const struct boot_info *bi);
void mem_reset(void);
void *mem_alloc(uint64_t bytes);
void *mem_alloc_fresh(uint64_t bytes);

/*
 * timer.c: the interrupt mode (`--timer KIND`). timer_start() on CPU 0
 * (exits with 2 if the machine cannot); timer_watch() from tick() once it
 * is on; timer_wanted()/timer_ipi_run() for CPU 1 at boot.
 */
uint32_t timer_kind_parse(const char *name); /* TIMER_NONE: unknown */
const char *timer_kind_name(uint32_t kind);
void timer_start(uint32_t kind, uint64_t tsc_khz);
bool timer_on(void);
void timer_watch(void);
uint64_t timer_mark(uint64_t tick); /* GUEST_REQ_TIMER_MARK */
bool timer_wanted(const struct boot_info *bi);
void timer_ipi_run(const struct boot_info *bi) __attribute__((noreturn));

/* heartbeat.c: tick until STOP_WORKLOAD or, when timed, ms of TSC time. */
void heartbeat_spin(bool timed, uint64_t ms);

/* verify.c: check the current dirty region; exits 2 or 3 unless ok. */
void verify_current(void);

/* workload.c: parse the command line, run every workload in order. */
void workload_run_cmdline(const struct boot_info *bi);

#endif /* GUEST_USER_H */
