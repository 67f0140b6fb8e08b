/* SPDX-License-Identifier: MIT */
/*
 * guest_abi.h - the contract between the VMM and our test guest OS.
 *
 * This header is included by both sides: the VMM (hosted C) and the test
 * guests in examples/guests (freestanding C). It therefore uses only
 * <stdint.h> and plain structs with fixed-width fields. It defines the
 * guest-physical layout the VMM builds before the first instruction runs
 * (boot-info page, identity page tables, kernel load address), the boot-info
 * page, the host->guest request mailbox inside it, and the register map of
 * the test device's MMIO window.
 */
#ifndef VMM_GUEST_ABI_H
#define VMM_GUEST_ABI_H

#include <stdint.h>

/* ---- guest-physical layout ------------------------------------------- */

#define GUEST_PAGE_SIZE	     4096ULL
#define GUEST_BOOT_INFO_GPA  0x1000ULL	   /* one page: struct boot_info */
#define GUEST_KERNEL_BASE    0x100000ULL   /* ELF images link at or above */
#define GUEST_MMIO_HOLE_BASE 0xC0000000ULL /* RAM above 3 GiB moves to 4 GiB   \
					    */
#define GUEST_MMIO_HOLE_END 0x100000000ULL
#define GUEST_MAX_CPUS	    32
#define GUEST_CMDLINE_MAX   1024
#define GUEST_MAX_RANGES    4

/*
 * Device MMIO window, inside the hole. The VMM maps it in the guest's
 * identity page tables with 4 KiB user pages (cache disabled), so ring-3
 * code reaches every device register directly.
 */
#define GUEST_DEV_MMIO_BASE 0xD0000000ULL
#define GUEST_DEV_MMIO_SIZE 0x200000ULL /* 2 MiB: one page table */

/* ---- boot-info page ---------------------------------------------------- */

#define BOOT_INFO_MAGIC	  0x424d4d56U /* "VMMB" */
#define BOOT_INFO_VERSION 1

/* A range of guest RAM that no loaded segment or page table uses. */
struct boot_mem_range {
	uint64_t start;
	uint64_t end; /* exclusive */
};

/*
 * Host -> guest request mailbox. The host writes arg then req and increments
 * seq last (with a release barrier); the guest polls seq from its main loop
 * (a plain load, no exit), acts, and stores seq into ack.
 */
enum guest_req {
	GUEST_REQ_NONE = 0,
	GUEST_REQ_VERIFY = 1,	     /* check every page of the workload now */
	GUEST_REQ_STOP_WORKLOAD = 2, /* end the current workload, run next */
	GUEST_REQ_TOUCH = 3,	     /* `touch`: write the page set of arg */
};

/*
 * The page set of a GUEST_REQ_TOUCH round, shared by the guest that writes
 * it and the host test that checks the dirty log: page i of the region is
 * in round `seed`'s set when touch_page_selected(seed, i). A seed of 0
 * selects every page.
 */
static inline int touch_page_selected(uint32_t seed, uint64_t i)
{
	uint64_t x = ((uint64_t)seed << 32) ^ i ^ 0x9e3779b97f4a7c15ULL;

	if (seed == 0)
		return 1;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return (x % 3) == 0;
}

struct boot_mailbox {
	volatile uint32_t seq;
	volatile uint32_t req; /* enum guest_req */
	volatile uint64_t arg;
	volatile uint32_t ack;
	uint32_t pad;
	volatile uint64_t result; /* written by the guest before ack */
};

struct boot_info {
	uint32_t magic;
	uint32_t version;
	uint32_t nr_cpus;
	uint32_t pad0;
	uint64_t ram_size; /* bytes of RAM, holes excluded */
	uint64_t tsc_khz;  /* guest TSC frequency */
	uint64_t pt_base;  /* the identity page tables the VMM built */
	uint64_t pt_size;
	uint64_t kernel_end; /* end of the highest loaded segment */
	uint64_t dev_mmio_base;
	uint32_t nr_ranges;
	uint32_t pad1;
	struct boot_mem_range free[GUEST_MAX_RANGES];
	struct boot_mailbox mailbox;
	char cmdline[GUEST_CMDLINE_MAX]; /* NUL-terminated */
};

/* ---- the test device ---------------------------------------------------- */

#define TESTDEV_GPA  GUEST_DEV_MMIO_BASE
#define TESTDEV_SIZE 0x1000ULL
#define TESTDEV_ID   0x544d4d56U /* "VMMT", read from TESTDEV_REG_ID */

/*
 * Registers (offsets into the window). Writes of the stated width only.
 *   ID          r  u32  TESTDEV_ID
 *   EXIT        w  u32  guest exit code; the VMM stops and exits with it
 *   HEARTBEAT   w  u32  sequence number; timestamped with CLOCK_MONOTONIC
 *   MARKER      w  u64  (id << 32) | argument, see enum testdev_marker
 *   CONSOLE     w  u8   one byte to the serial output
 *   CONSOLE_BUF w  u64  (len << 48) | gpa: len bytes at gpa to the output
 */
#define TESTDEV_REG_ID		0x00
#define TESTDEV_REG_EXIT	0x04
#define TESTDEV_REG_HEARTBEAT	0x08
#define TESTDEV_REG_MARKER	0x10
#define TESTDEV_REG_CONSOLE	0x18
#define TESTDEV_REG_CONSOLE_BUF 0x20

#define TESTDEV_CONSOLE_BUF_MAX 4096

enum testdev_marker {
	MARK_CPU_UP = 1,	 /* arg: cpu id, sent from ring 3 */
	MARK_WORKLOAD_START = 2, /* arg: index in the command line */
	MARK_VERIFY_OK = 3,	 /* arg: pages checked */
	MARK_VERIFY_FAIL = 4,	 /* arg: pages wrong */
	MARK_GUEST_PANIC = 5,	 /* arg: vector or reason */
	MARK_REQ_DONE = 6,	 /* arg: mailbox seq handled */
	MARK_PF_COUNT = 7,	 /* arg: guest-level #PFs the kernel resolved */
	MARK_RESULT = 8,	 /* arg: a workload's figure (see its docs) */
	MARK_MAX
};

#endif /* VMM_GUEST_ABI_H */
