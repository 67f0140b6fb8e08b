/* SPDX-License-Identifier: MIT */
/*
 * debug_exit.h - QEMU's isa-debug-exit, as kvm-unit-tests uses it
 * (-device isa-debug-exit,iobase=0xf4,iosize=0x4): a 1-, 2- or 4-byte
 * write of `code` to any of ports 0xf4-0xf7 ends the VM with exit status
 * (code << 1) | 1 through dev_host->request_exit(). The status is odd, so
 * it can never be mistaken for a clean 0; the process exit status keeps its
 * low 8 bits. kvm-unit-tests: exit(0) (all passed) -> 1, exit(1) (some
 * failed) -> 3, 38 (all skipped) -> 77, 63 (abort) -> 127; its runner maps
 * 1 to PASS and 77 to SKIP. The library writes outl(code, 0xf4) (realmode:
 * outb; s3's resume code: a 32-bit out from real mode) and, if that
 * returns, "Shutdown" byte by byte to the Bochs port 0x8900, then halts.
 * Reads return 0, as in QEMU. Off unless the VMM is asked for it.
 *
 * No mutable state and no lock: any vCPU thread may dispatch at any time.
 */
#ifndef DEVICES_DEBUG_EXIT_H
#define DEVICES_DEBUG_EXIT_H

#include <stddef.h>
#include <stdint.h>

#include "devices/bus.h"
#include "devices/dev.h"

#define DEBUG_EXIT_PORT	    0xf4
#define DEBUG_EXIT_PORT_LEN 4

struct dev_host;

struct debug_exit {
	const struct dev_host *host;
	uint16_t port; /* where it is registered, for the state check */
};

extern const struct bus_ops debug_exit_ops;

void debug_exit_init(struct debug_exit *d, const struct dev_host *host,
		     uint16_t port);

/* The exit status a write of code asks for: (code << 1) | 1. */
int debug_exit_status(uint32_t code);

/*
 * Migratable state, version DEBUG_EXIT_STATE_VERSION: the device has none
 * but its port, which the destination checks against its own so that a
 * guest does not lose its exit port across a migration.
 */
#define DEBUG_EXIT_STATE_VERSION 1

struct debug_exit_state {
	uint16_t port;
	uint16_t pad; /* zero */
};

void debug_exit_save(const struct debug_exit *d, struct debug_exit_state *st);
int debug_exit_load(struct debug_exit *d, const struct debug_exit_state *st,
		    char *err, size_t errlen);

/* The device table's view: its state struct, no thread, no DMA. */
extern const struct dev_ops debug_exit_dev_ops;

/* Type "debug-exit" (`--device debug-exit`): an instance at DEBUG_EXIT_PORT. */
extern const struct dev_type debug_exit_dev_type;

#endif /* DEVICES_DEBUG_EXIT_H */
