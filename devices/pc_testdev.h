/* SPDX-License-Identifier: MIT */
/*
 * pc_testdev.h - QEMU's pc-testdev, the ISA test device kvm-unit-tests'
 * x86 runner adds (-device pc-testdev), in the parts the x86 tests use:
 *
 *   0xe0-0xe3     a 32-bit scratch register: a write of len bytes at
 *                 offset o replaces those bytes, a read returns them
 *                 (realmode's and emulator's PIO tests, amd_sev).
 *   0xe4-0xe7     flush page: a 4-byte write of a guest-physical address
 *                 makes KVM drop its mapping of that page (eventinj).
 *                 QEMU mprotect()s the host page to PROT_NONE and back;
 *                 here madvise(MADV_DONTNEED) on the shared memfd mapping
 *                 fires the same MMU notifier without a moment in which
 *                 another thread (a vCPU, the migration sender) would
 *                 fault on the page; its contents stay in the memfd.
 *                 Reads 0.
 *   0xe8-0xeb     the same scratch register, taken a byte at a time
 *                 (QEMU's "ioport-byte" region: same result).
 *   0x2000-0x2017 IRQ lines: a write sets ISA line (port - 0x2000) to
 *                 level (byte != 0), through dev_host->irq_line (GSI =
 *                 ISA line). QEMU accepts only byte accesses there and
 *                 splits a wider write, so byte i of a len-byte write
 *                 drives line N + i: `outl 1` to 0x200b raises IRQ 11 and
 *                 lowers 12-14 (realmode's sti inhibit; lib/x86
 *                 set_irq_line uses outb). Reads 0.
 *
 * Not provided: QEMU's 64 KiB "iomem" scratch MMIO at 0xff000000
 * (kvm-unit-tests' IORAM_BASE_PHYS: emulator, cmpxchg8b, msr and lam
 * use it) - its state would exceed DEV_STATE_MAX.
 *
 * Threads: any vCPU thread dispatches; t->lock guards the register and
 * the line levels, and is held while irq_line() runs so the levels and
 * the irqchip agree.
 */
#ifndef DEVICES_PC_TESTDEV_H
#define DEVICES_PC_TESTDEV_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/bus.h"
#include "devices/dev.h"

#define PC_TESTDEV_IO_PORT   0xe0
#define PC_TESTDEV_IO_LEN    12 /* 0xe0 data, 0xe4 flush, 0xe8 byte data */
#define PC_TESTDEV_FLUSH_OFF 4
#define PC_TESTDEV_BYTE_OFF  8
#define PC_TESTDEV_IRQ_PORT  0x2000
#define PC_TESTDEV_NR_LINES  24

struct dev_host;

struct pc_testdev {
	const struct dev_host *host;
	pthread_mutex_t lock;
	uint32_t data;	  /* the scratch register */
	uint32_t levels;  /* bit N: line N was last driven high */
	uint64_t flushes; /* flush-page writes carried out */
};

extern const struct bus_ops pc_testdev_io_ops;	/* at PC_TESTDEV_IO_PORT */
extern const struct bus_ops pc_testdev_irq_ops; /* at PC_TESTDEV_IRQ_PORT */

int pc_testdev_init(struct pc_testdev *t, const struct dev_host *host);
void pc_testdev_destroy(struct pc_testdev *t);

/*
 * Migratable state, version PC_TESTDEV_STATE_VERSION: the register and
 * the line levels. load() drives every line to its saved level, so the
 * destination's irqchip hears a line the source left high.
 */
#define PC_TESTDEV_STATE_VERSION 1

struct pc_testdev_state {
	uint32_t data;
	uint32_t levels; /* bits >= PC_TESTDEV_NR_LINES are zero */
};

void pc_testdev_save(struct pc_testdev *t, struct pc_testdev_state *st);
int pc_testdev_load(struct pc_testdev *t, const struct pc_testdev_state *st,
		    char *err, size_t errlen);

extern const struct dev_ops pc_testdev_dev_ops;

/* Type "pc-testdev" (`--device pc-testdev`). */
extern const struct dev_type pc_testdev_dev_type;

#endif /* DEVICES_PC_TESTDEV_H */
