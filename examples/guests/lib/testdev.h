/* SPDX-License-Identifier: MIT */
/*
 * testdev.h - the test device's registers, reachable from ring 0 and ring 3.
 *
 * The VMM maps the device window into the identity page tables as user
 * pages, so both rings store to it directly; every store is one MMIO exit
 * (about 7 us from ring 0, 47 us from ring 3). Each register is written with
 * one instruction of exactly its width, from inline assembly so that the
 * compiler can neither split, merge nor reorder it with the buffer contents
 * it refers to ("memory" clobber). mmio_read32() reads a register the same
 * way (the pt device's, for user/ptdriver.c; also one exit). The exit codes
 * this guest uses are here too, so that the VMM's tests and the guest read
 * them in one place.
 */
#ifndef GUEST_TESTDEV_H
#define GUEST_TESTDEV_H

#include <stddef.h>
#include <stdint.h>

#include "common/guest_abi.h"

#define GUEST_EXIT_OK	  0
#define GUEST_EXIT_USAGE  2  /* bad command line, or nothing to verify */
#define GUEST_EXIT_VERIFY 3  /* verify found wrong pages */
#define GUEST_EXIT_PANIC  99 /* unexpected exception or bad boot info */

/* MARK_GUEST_PANIC arguments that are not exception vectors. */
#define GUEST_PANIC_BOOT_INFO 0x100

static inline void mmio_write8(uint64_t addr, uint8_t val)
{
	asm volatile("movb %0, (%1)" : : "q"(val), "r"(addr) : "memory");
}

static inline void mmio_write32(uint64_t addr, uint32_t val)
{
	asm volatile("movl %0, (%1)" : : "r"(val), "r"(addr) : "memory");
}

static inline void mmio_write64(uint64_t addr, uint64_t val)
{
	asm volatile("movq %0, (%1)" : : "r"(val), "r"(addr) : "memory");
}

/* A register read, for devices that have readable registers. */
static inline uint32_t mmio_read32(uint64_t addr)
{
	uint32_t val;

	asm volatile("movl (%1), %0" : "=r"(val) : "r"(addr) : "memory");
	return val;
}

static inline void testdev_exit(uint32_t code)
{
	mmio_write32(TESTDEV_GPA + TESTDEV_REG_EXIT, code);
}

static inline void testdev_heartbeat(uint32_t seq)
{
	mmio_write32(TESTDEV_GPA + TESTDEV_REG_HEARTBEAT, seq);
}

/* Heartbeat seq with the guest's stall before it, in one exit. */
static inline void testdev_beat_stall(uint32_t seq, uint32_t stall_us)
{
	mmio_write64(TESTDEV_GPA + TESTDEV_REG_BEAT_STALL,
		     (uint64_t)stall_us << 32 | seq);
}

static inline void testdev_marker(uint32_t id, uint32_t arg)
{
	mmio_write64(TESTDEV_GPA + TESTDEV_REG_MARKER,
		     (uint64_t)id << 32 | arg);
}

/*
 * len bytes at buf (an identity-mapped address: .bss, .data or a stack)
 * to the VMM's output in one exit. len <= TESTDEV_CONSOLE_BUF_MAX.
 */
static inline void testdev_console_buf(const void *buf, size_t len)
{
	mmio_write64(TESTDEV_GPA + TESTDEV_REG_CONSOLE_BUF,
		     (uint64_t)len << 48 | (uint64_t)(uintptr_t)buf);
}

#endif /* GUEST_TESTDEV_H */
