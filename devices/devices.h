/* SPDX-License-Identifier: MIT */
/*
 * devices/ - the emulated devices and the bus that routes guest accesses.
 *
 * This layer owns the port-I/O and MMIO address maps (struct bus), the
 * device models (8250 UART on COM1, the i8042 reset line, the test device,
 * and pt, a passthrough-style receive device that DMAs packets into guest
 * buffers from its own thread and quiesces for migration), the console
 * sink they print to, and the table of a VM's devices (dev.h: each
 * migratable device offers a struct dev_ops - state, thread, quiesce
 * handshake - and registers its instance; the VM core and migration go
 * through the table, never a device type). Devices never call into vmm/: they
 * reach the VM through struct dev_host, a small table of callbacks the VMM
 * fills in (raise an interrupt line, request exit, post an event), and they
 * reach guest RAM through ept/ (a device that writes guest RAM reports it with
 * ept_mark_dirty()). Each device protects its own registers with its own
 * mutex, because every vCPU thread dispatches accesses concurrently.
 */
#ifndef DEVICES_DEVICES_H
#define DEVICES_DEVICES_H

#include <stdint.h>

#include "ept/mem.h"

/*
 * What a device may ask of the machine it sits in. Filled by the VMM before
 * any device is created; every callback is safe to call from a vCPU thread.
 */
struct dev_host {
	void *opaque;
	/* Drive an interrupt line (GSI) to level 0 or 1. */
	void (*irq_line)(void *opaque, unsigned int gsi, int level);
	/* The guest asked to end the VM: exit code and a short reason. */
	void (*request_exit)(void *opaque, int code, const char *why);
	/* An asynchronous event for control-socket clients ("marker", ...). */
	void (*event)(void *opaque, const char *name, uint64_t id,
		      uint64_t arg);
	/* The guest put the machine to sleep (ACPI S3); may be NULL. */
	void (*sleep)(void *opaque);
	const struct guest_mem *mem;
};

#include "devices/bus.h"
#include "devices/dev.h"
#include "devices/console.h"
#include "devices/serial.h"
#include "devices/i8042.h"
#include "devices/testdev.h"
#include "devices/pt.h"
#include "devices/fw_cfg.h"
#include "devices/pm_timer.h"
#include "devices/debug_exit.h"
#include "devices/pc_testdev.h"
#include "devices/acpi_pm.h"
#include "devices/rtc.h"

#endif /* DEVICES_DEVICES_H */
