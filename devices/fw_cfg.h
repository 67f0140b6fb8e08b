/* SPDX-License-Identifier: MIT */
/*
 * fw_cfg.h - QEMU's firmware configuration interface, the legacy I/O port
 * form kvm-unit-tests reads (lib/x86/fwcfg.c): a 16-bit write of a key to
 * port 0x510 selects an item and rewinds it; each 1-byte read (of 0x511, or
 * of 0x510: QEMU's combined port answers both) returns the item's next
 * byte, little-endian, then 0 past its end. Other accesses are ignored
 * (writes) or read all ones, as QEMU's "fw_cfg_comb_valid" refuses them.
 *
 * Items (fixed at init, identical on a migration's two sides): SIGNATURE
 * 0x00 "QEMU", ID 0x01 (feature bits: 1 = the traditional interface, no
 * DMA), RAM_SIZE 0x03 (8 bytes: bytes of RAM), NB_CPUS 0x05 (2 bytes),
 * MAX_CPUS 0x0f (2 bytes), MAX_RAM 0x11 (8 bytes: the highest RAM address
 * the guest may use, 0 = no limit; kvm-unit-tests' own "bare metal" key).
 * The selector's write-channel (0x4000) and arch-local (0x8000) bits
 * select no item. kvm-unit-tests reads NB_CPUS in every test (the BSP waits
 * for that many CPUs: a wrong count hangs it), RAM_SIZE in rmap_chain, svm
 * and vmx, MAX_RAM in find_highmem(); its environ (NR_CPUS, MEMSIZE,
 * MEMLIMIT) overrides the values when given.
 *
 * Threads: vCPU threads dispatch; f->lock guards the selector and offset.
 */
#ifndef DEVICES_FW_CFG_H
#define DEVICES_FW_CFG_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/bus.h"
#include "devices/dev.h"

#define FW_CFG_PORT	0x510
#define FW_CFG_PORT_LEN 2 /* 0x510 selector, 0x511 data */

#define FW_CFG_SIGNATURE 0x00
#define FW_CFG_ID	 0x01
#define FW_CFG_RAM_SIZE	 0x03
#define FW_CFG_NB_CPUS	 0x05
#define FW_CFG_MAX_CPUS	 0x0f
#define FW_CFG_MAX_RAM	 0x11
#define FW_CFG_NR_KEYS	 (FW_CFG_MAX_RAM + 1)
#define FW_CFG_KEY_MASK	 0x3fff /* without the write and arch bits */
#define FW_CFG_ARCH	 0x8000
#define FW_CFG_ITEM_MAX	 8

struct fw_cfg_item {
	uint8_t len; /* 0: no such item */
	uint8_t data[FW_CFG_ITEM_MAX];
};

struct fw_cfg {
	pthread_mutex_t lock; /* guards sel and off */
	uint16_t sel;	      /* the selector as written */
	uint32_t off;	      /* next byte of the selected item */
	struct fw_cfg_item items[FW_CFG_NR_KEYS]; /* read-only after init */
};

extern const struct bus_ops fw_cfg_ops;

/* Items from the machine's shape; max_ram 0 = no limit. -errno, err set. */
int fw_cfg_init(struct fw_cfg *f, unsigned int nr_cpus, uint64_t ram_size,
		uint64_t max_ram, char *err, size_t errlen);
void fw_cfg_destroy(struct fw_cfg *f);

/*
 * Migratable state, version FW_CFG_STATE_VERSION: the selector and the read
 * position, so a guest reading an item byte by byte across the switch-over
 * continues where it was. The items are configuration, not state.
 */
#define FW_CFG_STATE_VERSION 1

struct fw_cfg_state {
	uint16_t sel;
	uint16_t pad; /* zero */
	uint32_t off;
};

void fw_cfg_save(struct fw_cfg *f, struct fw_cfg_state *st);
/* -EINVAL (err set) when off lies past the selected item's end. */
int fw_cfg_load(struct fw_cfg *f, const struct fw_cfg_state *st, char *err,
		size_t errlen);

/* The device table's view: its state struct, no thread, no DMA. */
extern const struct dev_ops fw_cfg_dev_ops;

#endif /* DEVICES_FW_CFG_H */
