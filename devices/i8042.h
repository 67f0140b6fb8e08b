/* SPDX-License-Identifier: MIT */
/*
 * i8042.h - just enough of the PS/2 controller for a guest to reset the
 * machine: command 0xFE written to port 0x64 pulses the reset line, which we
 * turn into dev_host->request_exit(). Status reads say "no data, input
 * buffer empty" so that guests polling it never spin.
 */
#ifndef DEVICES_I8042_H
#define DEVICES_I8042_H

#include "devices/bus.h"

#define I8042_DATA_PORT	   0x60
#define I8042_COMMAND_PORT 0x64
#define I8042_CMD_RESET	   0xfe
/* One port range, 0x60-0x64, decoded by offset. */
#define I8042_PORT_LEN (I8042_COMMAND_PORT - I8042_DATA_PORT + 1)

struct dev_host;

struct i8042 {
	const struct dev_host *host;
};

extern const struct bus_ops i8042_ops;

void i8042_init(struct i8042 *k, const struct dev_host *host);

#endif /* DEVICES_I8042_H */
