/* SPDX-License-Identifier: MIT */
/*
 * guest_abi.h - the contract between the VMM and our test guest OS.
 *
 * This header is included by both sides: the VMM (hosted C) and the test
 * guests in examples/guests (freestanding C). It therefore uses only
 * <stdint.h> and plain structs with fixed-width fields. It defines the
 * guest-physical layout the VMM builds before the first instruction runs
 * (boot-info page, identity page tables, kernel load address), the boot-info
 * page, the host->guest request mailbox inside it, the heartbeat page the
 * guest writes for host tools, and the register map of the test device's
 * MMIO window.
 */
#ifndef COMMON_GUEST_ABI_H
#define COMMON_GUEST_ABI_H

#include <stdint.h>

/* ---- guest-physical layout ------------------------------------------- */

#define GUEST_PAGE_SIZE	    4096ULL
#define GUEST_BOOT_INFO_GPA 0x1000ULL	/* one page: struct boot_info */
#define GUEST_HB_PAGE_GPA   0x2000ULL	/* one page: struct guest_hb_page */
#define GUEST_KERNEL_BASE   0x100000ULL /* ELF images link at or above */
#define GUEST_MMIO_HOLE_BASE                                                   \
	0xC0000000ULL /* RAM above 3 GiB moves to 4 GiB                        \
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

/*
 * boot_info.flags. A VMM writes 0. The guest's own Multiboot entry
 * (examples/guests/kernel/start32.S), which fills the page itself when
 * another loader started it, sets BOOT_INFO_F_MULTIBOOT, and
 * BOOT_INFO_F_NO_TESTDEV when nothing answers at TESTDEV_GPA.
 */
#define BOOT_INFO_F_MULTIBOOT  (1U << 0)
#define BOOT_INFO_F_NO_TESTDEV (1U << 1)

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
	GUEST_REQ_TIMER_MARK = 4, /* --timer: report the clocks at tick arg */
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
	uint32_t flags;	   /* BOOT_INFO_F_*, 0 from a VMM */
	uint64_t ram_size; /* bytes of RAM, holes excluded */
	uint64_t tsc_khz;  /* guest TSC frequency */
	uint64_t pgt_base; /* the identity page tables the VMM built */
	uint64_t pgt_size;
	uint64_t kernel_end; /* end of the highest loaded segment */
	uint64_t dev_mmio_base;
	uint32_t nr_ranges;
	uint32_t pad1;
	struct boot_mem_range free[GUEST_MAX_RANGES];
	struct boot_mailbox mailbox;
	char cmdline[GUEST_CMDLINE_MAX]; /* NUL-terminated */
};

/* ---- the heartbeat page ---------------------------------------------- */

/*
 * The heartbeat's second channel, for VMMs without our test device: at
 * every heartbeat the guest also writes its number and TSC here, at
 * GUEST_HB_PAGE_GPA, so that a host process that maps the guest's RAM
 * (a file-backed memory backend; examples/tools/hbread.c) can follow it
 * without an exit. A seqlock keeps seq and tsc a pair: the writer makes
 * lock odd, writes seq and tsc, makes lock even again (each store a
 * release). A reader loads lock (acquire), then seq and tsc, then lock
 * again after an acquire fence; it retries while lock is odd or changed.
 * magic and tsc_khz are written once, before the first beat. stall (under
 * the same seqlock) is the guest's own measure of how long it was held
 * still: the longest TSC step between two consecutive passes of its tick
 * loop since the previous beat. Across a migration or a pause, the first
 * beat after the resume carries the downtime as the guest saw it, free of
 * the 1 ms cadence of the beats (where the guest's TSC goes on with the
 * host's time, as KVM keeps it).
 */
#define GUEST_HB_MAGIC 0x54414542484d4d56ULL /* "VMMHBEAT" */

struct guest_hb_page {
	uint64_t magic;		/* GUEST_HB_MAGIC once the guest ticks */
	uint64_t tsc_khz;	/* the guest's TSC frequency, 0: unknown */
	volatile uint64_t lock; /* seqlock: odd while seq/tsc change */
	volatile uint64_t seq;	/* heartbeat number: 1, 2, 3, ... */
	volatile uint64_t tsc;	/* guest TSC when beat seq was sent */
	volatile uint64_t stall; /* TSC cycles: longest step before beat seq */
};

/* stall TSC cycles at tsc_khz in microseconds (0 when the rate is 0). */
static inline uint64_t guest_hb_stall_us(uint64_t stall, uint64_t tsc_khz)
{
	if (!tsc_khz)
		return 0;
	return stall / tsc_khz * 1000 + stall % tsc_khz * 1000 / tsc_khz;
}

/* ---- the test device ---------------------------------------------------- */

#define TESTDEV_GPA  GUEST_DEV_MMIO_BASE
#define TESTDEV_SIZE 0x1000ULL
#define TESTDEV_ID   0x544d4d56U /* "VMMT", read from TESTDEV_REG_ID */

/*
 * Registers (offsets into the window). Writes of the stated width only.
 *   ID          r  u32  TESTDEV_ID
 *   EXIT        w  u32  guest exit code; the VMM stops and exits with it
 *   HEARTBEAT   w  u32  sequence number; timestamped with CLOCK_MONOTONIC
 *   BEAT_STALL  w  u64  (stall_us << 32) | sequence number: HEARTBEAT with
 *                       the guest's stall before it (struct guest_hb_page)
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
#define TESTDEV_REG_BEAT_STALL	0x28

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
	MARK_PT_PACKETS = 9, /* arg: pt-driver packets received, all in order */
	MARK_PT_SEQ_ERROR = 10, /* arg: the packet seq that broke the order */
	MARK_PT_QUIESCED = 11,	/* arg: pt-driver quiesce requests handled */
	MARK_PT_RESUMED = 12,	/* arg: pt-driver resume requests handled */
	MARK_MAX
};

/* ---- the passthrough-style DMA device (devices/pt, --device pt) -------- */

/*
 * A NIC-like receive device in the second page of the device window. The
 * guest driver (examples/guests/user/ptdriver.c) hands receive buffers to
 * the device through a descriptor ring in guest RAM; a host-side traffic
 * source writes sequence-numbered packets into them by DMA. Protocol and
 * state diagram: docs/pt-quiesce.md.
 */
#define PT_GPA	    (GUEST_DEV_MMIO_BASE + 0x1000ULL)
#define PT_SIZE	    0x1000ULL
#define PT_ID	    0x504d4d56U /* "VMMP", read from PT_REG_ID */
#define PT_GSI	    5		/* its interrupt line */
#define PT_RING_MAX 256		/* descriptors in a ring, at most */
#define PT_PKT_MIN  64		/* packet length range, bytes */
#define PT_PKT_MAX  1024
#define PT_BUF_MIN  PT_PKT_MAX /* a posted buffer holds any packet */

/*
 * Registers (offsets into the window; 32-bit accesses, RING is 64-bit):
 *   ID        r  PT_ID
 *   STATUS    r  enum pt_status bits
 *   RING      w  u64: guest-physical address of the ring (struct pt_ring_hdr
 *                followed by RING_SIZE struct pt_desc, contiguous, 8-byte
 *                aligned); only while disabled
 *   RING_SIZE w  descriptors, a power of two from 1 to PT_RING_MAX; only
 *                while disabled
 *   ENABLE    w  1: start the queue (the device's head and the driver's tail
 *                restart at 0). 0: stop it: DMA in progress completes, every
 *                posted buffer not yet filled is handed back (flags
 *                PT_DESC_RETURNED) and unpinned; when the write returns
 *                nothing is pinned and no DMA is in flight. An ENABLE of 1
 *                while a quiesce is requested or done is ignored.
 *   TAIL      w  doorbell: the driver has posted descriptors up to this
 *                free-running index; [head, tail) are now the device's and
 *                their buffers are pinned until filled or handed back
 *   IRQ_MASK  rw 1: the device raises no interrupt (poll mode)
 *   REQ       r  the current host request (enum pt_req)
 *   REQ_SEQ   r  its sequence number (increments with every request; it
 *                restarts from 0 when the device state is loaded on a
 *                migration destination, so a driver whose queue is off
 *                acts on any RESUME whatever its number)
 *   ACK       w  the driver has carried out request REQ_SEQ
 *
 * The device also mirrors REQ and REQ_SEQ into the ring header while the
 * queue is enabled, so that a polling driver sees a request without an
 * MMIO exit.
 */
#define PT_REG_ID	 0x00
#define PT_REG_STATUS	 0x04
#define PT_REG_RING	 0x08
#define PT_REG_RING_SIZE 0x10
#define PT_REG_ENABLE	 0x14
#define PT_REG_TAIL	 0x18
#define PT_REG_IRQ_MASK	 0x1c
#define PT_REG_REQ	 0x20
#define PT_REG_REQ_SEQ	 0x24
#define PT_REG_ACK	 0x28

enum pt_status {
	PT_STATUS_ENABLED = 1U << 0, /* the queue runs */
	PT_STATUS_QUIESCE = 1U << 1, /* a quiesce is requested or done */
};

enum pt_req {
	PT_REQ_NONE = 0,
	/*
	 * Prepare for migration: stop posting buffers, write ENABLE 0 (the
	 * device finishes DMA in flight and hands back what it did not
	 * fill), consume every packet that arrived, then ACK.
	 */
	PT_REQ_QUIESCE = 1,
	/*
	 * The device is back in its reset state (on the destination after a
	 * migration, or on the source when the migration did not happen):
	 * program RING and RING_SIZE again, ENABLE 1, post buffers, ACK.
	 */
	PT_REQ_RESUME = 2,
};

/* The ring header: written by the device only. 64 bytes. */
struct pt_ring_hdr {
	volatile uint32_t req;	    /* mirror of REQ */
	volatile uint32_t req_seq;  /* mirror of REQ_SEQ */
	volatile uint32_t done_idx; /* free-running: completed (DONE or
				     * RETURNED) descriptors */
	uint32_t pad[13];
};

enum pt_desc_flags {
	PT_DESC_DONE = 1U << 0,	    /* filled: pkt_seq and pkt_len are valid */
	PT_DESC_RETURNED = 1U << 1, /* handed back unfilled (ENABLE 0) */
};

/*
 * A receive descriptor, 32 bytes. The driver writes buf_gpa and buf_len
 * and clears flags before posting it (TAIL); the device writes pkt_seq and
 * pkt_len, then flags (release), then the header's done_idx. Descriptors
 * complete in ring order.
 */
struct pt_desc {
	uint64_t buf_gpa;
	uint32_t buf_len; /* at least PT_BUF_MIN */
	volatile uint32_t flags;
	volatile uint64_t pkt_seq; /* 1, 2, 3, ... for the VM's whole life */
	volatile uint32_t pkt_len;
	uint32_t pad;
};

/* Packet seq: its length and its 64-bit words, for sender and checker. */
static inline uint32_t pt_pkt_len(uint64_t seq)
{
	return PT_PKT_MIN +
	       (uint32_t)((seq * 56) % (PT_PKT_MAX - PT_PKT_MIN + 8)) / 8 * 8;
}

static inline uint64_t pt_pkt_word(uint64_t seq, uint32_t k)
{
	uint64_t x = seq * 0x9e3779b97f4a7c15ULL + k;

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 29;
	return x;
}

#endif /* COMMON_GUEST_ABI_H */
