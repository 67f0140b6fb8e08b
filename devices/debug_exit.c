/* SPDX-License-Identifier: MIT */
/*
 * debug_exit.c - isa-debug-exit: a write ends the VM with (code << 1) | 1
 * (see debug_exit.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "devices/debug_exit.h"
#include "devices/devices.h"

int debug_exit_status(uint32_t code)
{
	return (int)((code << 1) | 1);
}

static void debug_exit_read(void *opaque, uint64_t off, void *data,
			    uint32_t len)
{
	memset(data, 0, len);
}

static void debug_exit_write(void *opaque, uint64_t off, const void *data,
			     uint32_t len)
{
	const struct debug_exit *d = opaque;
	uint32_t code = 0;
	char why[64];

	if (len != 1 && len != 2 && len != 4)
		return;
	memcpy(&code, data, len);
	snprintf(why, sizeof(why), "guest wrote 0x%x to isa-debug-exit", code);
	if (d->host && d->host->request_exit)
		d->host->request_exit(d->host->opaque, debug_exit_status(code),
				      why);
}

const struct bus_ops debug_exit_ops = {
	.read = debug_exit_read,
	.write = debug_exit_write,
};

void debug_exit_init(struct debug_exit *d, const struct dev_host *host,
		     uint16_t port)
{
	d->host = host;
	d->port = port;
}

void debug_exit_save(const struct debug_exit *d, struct debug_exit_state *st)
{
	*st = (struct debug_exit_state){.port = d->port};
}

int debug_exit_load(struct debug_exit *d, const struct debug_exit_state *st,
		    char *err, size_t errlen)
{
	if (st->pad || st->port != d->port) {
		err_set(err, errlen,
			"debug-exit state: port 0x%x on the source, 0x%x here",
			st->port, d->port);
		return -EINVAL;
	}
	return 0;
}

/* ---- the device table's view --------------------------------------------- */

DEV_OPS_STATE(debug_exit_dev_ops, "debug_exit", DEBUG_EXIT_STATE_VERSION,
	      struct debug_exit, struct debug_exit_state, debug_exit_save,
	      debug_exit_load);

/* An instance the table owns, on the PIO bus at DEBUG_EXIT_PORT. */
static int debug_exit_create(struct dev_table *t, const struct dev_spec *spec,
			     const struct dev_env *env, char *err,
			     size_t errlen)
{
	struct debug_exit *d = malloc(sizeof(*d));
	int r;

	if (!d) {
		err_set(err, errlen, "device %s: %s", spec->name,
			strerror(ENOMEM));
		return -ENOMEM;
	}
	debug_exit_init(d, env->host, DEBUG_EXIT_PORT);
	r = dev_table_adopt(t, spec->name, &debug_exit_dev_ops, d, err, errlen);
	if (r) {
		free(d);
		return r;
	}
	return bus_register(env->pio, DEBUG_EXIT_PORT, DEBUG_EXIT_PORT_LEN,
			    &debug_exit_ops, d, dev_table_find(t, spec->name)->name,
			    err, errlen);
}

const struct dev_type debug_exit_dev_type = {
	.type = "debug-exit",
	.usage = "debug-exit",
	.help = "isa-debug-exit at port 0xf4: a guest write of CODE\n"
		"                        ends the VMM with status (CODE << 1) | 1,\n"
		"                        as QEMU's",
	.instance = "debug_exit",
	.create = debug_exit_create,
};
