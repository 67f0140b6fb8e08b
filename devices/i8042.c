/* SPDX-License-Identifier: MIT */
/*
 * i8042.c - the PS/2 controller's reset line, and nothing else.
 *
 * One bus range covers ports 0x60-0x64 and is decoded by offset: command
 * 0xFE written to the command port ends the VM through
 * dev_host->request_exit(); the status port reads 0 (output buffer empty,
 * input buffer empty) so polling guests move on; every other read is 0 and
 * every other write is dropped. The device has no mutable state, so it
 * needs no lock: any vCPU thread may dispatch to it at any time.
 */
#include <string.h>

#include "devices/devices.h"

#define I8042_OFF_COMMAND (I8042_COMMAND_PORT - I8042_DATA_PORT)

static void i8042_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	/* Data port: nothing; status port: no data, input buffer empty. */
	memset(data, 0, len);
}

static void i8042_write(void *opaque, uint64_t off, const void *data,
			uint32_t len)
{
	const struct i8042 *k = opaque;
	const uint8_t *p = data;

	if (off != I8042_OFF_COMMAND || p[0] != I8042_CMD_RESET)
		return;
	if (k->host && k->host->request_exit)
		k->host->request_exit(k->host->opaque, 0,
				      "guest reset via i8042");
}

const struct bus_ops i8042_ops = {
	.read = i8042_read,
	.write = i8042_write,
};

void i8042_init(struct i8042 *k, const struct dev_host *host)
{
	k->host = host;
}
