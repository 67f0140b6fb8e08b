/* SPDX-License-Identifier: MIT */
/*
 * test_bus.c - unit tests for the address map (devices/bus.c): dispatch with
 * range-relative offsets, lookups at the edges of ranges, every way two
 * ranges can overlap, invalid and late registrations, accesses that hit
 * nothing or straddle a range end; and the i8042 decoded through a bus.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/devices.h"

struct fake_dev {
	int reads, writes;
	uint64_t off;
	uint32_t len;
	uint8_t data[8];
	uint8_t fill; /* byte returned by reads */
};

static void fake_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct fake_dev *d = opaque;

	d->reads++;
	d->off = off;
	d->len = len;
	memset(data, d->fill, len);
}

static void fake_write(void *opaque, uint64_t off, const void *data,
		       uint32_t len)
{
	struct fake_dev *d = opaque;

	d->writes++;
	d->off = off;
	d->len = len;
	memcpy(d->data, data, len);
}

static const struct bus_ops fake_ops = {
	.read = fake_read,
	.write = fake_write,
};

static struct bus b;
static char err[256];

static void setup(void)
{
	bus_init(&b, "mmio");
	err[0] = '\0';
}

static void teardown(void)
{
	bus_destroy(&b);
}

TestSuite(bus, .init = setup, .fini = teardown);

static int reg(uint64_t base, uint64_t len, struct fake_dev *d,
	       const char *name)
{
	return bus_register(&b, base, len, &fake_ops, d, name, err,
			    sizeof(err));
}

Test(bus, dispatch_reaches_right_device_with_offset)
{
	struct fake_dev a = {.fill = 0xaa}, c = {.fill = 0xcc};
	uint32_t v = 0x11223344;
	uint8_t buf[4];

	cr_assert_eq(reg(0x3000, 0x100, &c, "c"), 0);
	cr_assert_eq(reg(0x1000, 0x100, &a, "a"), 0);

	cr_assert_eq(bus_dispatch(&b, 0x1010, &v, 4, true), 0);
	cr_assert_eq(a.writes, 1);
	cr_assert_eq(a.off, 0x10);
	cr_assert_eq(a.len, 4);
	cr_assert_arr_eq(a.data, &v, 4);
	cr_assert_eq(c.writes, 0);

	cr_assert_eq(bus_dispatch(&b, 0x30fe, buf, 2, false), 0);
	cr_assert_eq(c.reads, 1);
	cr_assert_eq(c.off, 0xfe);
	cr_assert_eq(c.len, 2);
	cr_assert_eq(buf[0], 0xcc);
	cr_assert_eq(buf[1], 0xcc);
	cr_assert_eq(a.reads, 0);
	cr_assert_eq(b.unhandled, 0);
}

Test(bus, find_at_range_boundaries)
{
	struct fake_dev a = {0}, c = {0};

	cr_assert_eq(reg(0x1000, 0x1000, &a, "a"), 0);
	cr_assert_eq(reg(0x2000, 0x10, &c, "c"), 0);

	cr_assert_null(bus_find(&b, 0));
	cr_assert_null(bus_find(&b, 0xfff));
	cr_assert_eq(bus_find(&b, 0x1000)->opaque, &a);
	cr_assert_eq(bus_find(&b, 0x1fff)->opaque, &a);
	cr_assert_eq(bus_find(&b, 0x2000)->opaque, &c);
	cr_assert_eq(bus_find(&b, 0x200f)->opaque, &c);
	cr_assert_null(bus_find(&b, 0x2010));
	cr_assert_null(bus_find(&b, UINT64_MAX));
}

Test(bus, many_ranges_stay_sorted_and_found)
{
	static struct fake_dev d[64];
	int i;

	/* Register in a scrambled order: 37 is coprime with 64. */
	for (i = 0; i < 64; i++) {
		int k = (i * 37) % 64;

		cr_assert_eq(
			reg(0x10000 + (uint64_t)k * 0x100, 0x80, &d[k], "d"),
			0);
	}
	cr_assert_eq(b.nr, 64);
	for (i = 1; i < b.nr; i++)
		cr_assert_lt(b.ranges[i - 1].base, b.ranges[i].base);
	for (i = 0; i < 64; i++) {
		uint64_t base = 0x10000 + (uint64_t)i * 0x100;

		cr_assert_eq(bus_find(&b, base)->opaque, &d[i]);
		cr_assert_eq(bus_find(&b, base + 0x7f)->opaque, &d[i]);
		cr_assert_null(bus_find(&b, base + 0x80));
	}
}

Test(bus, overlap_message_names_both)
{
	struct fake_dev a = {0}, c = {0};

	cr_assert_eq(reg(0x1800, 0x1000, &a, "a"), 0);
	cr_assert_eq(reg(0x1000, 0x1000, &c, "b"), -EEXIST);
	cr_assert_str_eq(
		err, "mmio: 'b' [0x1000-0x1fff] overlaps 'a' [0x1800-0x27ff]");
	cr_assert_eq(b.nr, 1);
}

Test(bus, overlap_every_shape_rejected)
{
	struct fake_dev a = {0}, x = {0};

	cr_assert_eq(reg(0x1000, 0x1000, &a, "a"), 0);
	cr_assert_eq(reg(0x1000, 0x1000, &x, "identical"), -EEXIST);
	cr_assert_eq(reg(0x1400, 0x100, &x, "inside"), -EEXIST);
	cr_assert_eq(reg(0x0800, 0x2000, &x, "around"), -EEXIST);
	cr_assert_eq(reg(0x1fff, 0x10, &x, "tail"), -EEXIST);
	cr_assert_eq(reg(0x0ff0, 0x11, &x, "head"), -EEXIST);
	cr_assert_eq(reg(0x1000, 1, &x, "first-byte"), -EEXIST);
	cr_assert_eq(reg(0x1fff, 1, &x, "last-byte"), -EEXIST);
	cr_assert_eq(b.nr, 1);
}

Test(bus, touching_ranges_accepted)
{
	struct fake_dev a = {0}, l = {0}, r = {0};

	cr_assert_eq(reg(0x1000, 0x1000, &a, "a"), 0);
	cr_assert_eq(reg(0x2000, 0x1000, &r, "right"), 0, "%s", err);
	cr_assert_eq(reg(0x0800, 0x800, &l, "left"), 0, "%s", err);
	cr_assert_eq(b.nr, 3);
	cr_assert_eq(bus_find(&b, 0x0fff)->opaque, &l);
	cr_assert_eq(bus_find(&b, 0x1000)->opaque, &a);
	cr_assert_eq(bus_find(&b, 0x1fff)->opaque, &a);
	cr_assert_eq(bus_find(&b, 0x2000)->opaque, &r);
}

Test(bus, len_zero_and_wrap_rejected)
{
	struct fake_dev a = {0};

	cr_assert_eq(reg(0x1000, 0, &a, "zero"), -EINVAL);
	cr_assert_eq(reg(UINT64_MAX - 0xf, 0x20, &a, "wrap"), -EINVAL);
	cr_assert_eq(reg(2, UINT64_MAX, &a, "wrap2"), -EINVAL);
	cr_assert_eq(b.nr, 0);
	/* Ending exactly at the top of the space is not a wrap. */
	cr_assert_eq(reg(UINT64_MAX - 0xf, 0x10, &a, "top"), 0);
	cr_assert_eq(bus_find(&b, UINT64_MAX)->opaque, &a);
}

Test(bus, register_after_seal_rejected)
{
	struct fake_dev a = {0}, c = {0};

	cr_assert_eq(reg(0x1000, 0x10, &a, "a"), 0);
	bus_seal(&b);
	cr_assert_eq(reg(0x2000, 0x10, &c, "c"), -EBUSY);
	cr_assert_eq(b.nr, 1);
	cr_assert_eq(bus_find(&b, 0x1000)->opaque, &a);
}

Test(bus, unmapped_access_reads_ones_and_counts)
{
	struct fake_dev a = {0};
	uint64_t v = 0;
	uint32_t w = 0x12345678;

	cr_assert_eq(reg(0x1000, 0x10, &a, "a"), 0);
	bus_seal(&b);
	cr_assert_eq(bus_dispatch(&b, 0x5000, &v, 8, false), -ENOENT);
	cr_assert_eq(v, UINT64_MAX);
	cr_assert_eq(b.unhandled, 1);
	v = 0;
	cr_assert_eq(bus_dispatch(&b, 0xfff, &v, 2, false), -ENOENT);
	cr_assert_eq(v, 0xffff);
	cr_assert_eq(bus_dispatch(&b, 0x5000, &w, 4, true), -ENOENT);
	cr_assert_eq(b.unhandled, 3);
	cr_assert_eq(a.reads + a.writes, 0);
}

Test(bus, straddling_access_rejected)
{
	struct fake_dev a = {0}, c = {0};
	uint32_t v = 0;

	cr_assert_eq(reg(0x1000, 0x10, &a, "a"), 0);
	cr_assert_eq(reg(0x1010, 0x10, &c, "c"), 0);
	cr_assert_eq(bus_dispatch(&b, 0x100e, &v, 4, false), -ENOENT);
	cr_assert_eq(v, 0xffffffff);
	cr_assert_eq(bus_dispatch(&b, 0x100d, &v, 4, true), -ENOENT);
	cr_assert_eq(a.reads + a.writes + c.reads + c.writes, 0);
	cr_assert_eq(b.unhandled, 2);
	/* The last full word of the range is fine. */
	cr_assert_eq(bus_dispatch(&b, 0x100c, &v, 4, true), 0);
	cr_assert_eq(a.writes, 1);
	cr_assert_eq(a.off, 0xc);
}

Test(bus, straddling_top_of_space_rejected)
{
	struct fake_dev a = {0};
	uint64_t v = 0;

	cr_assert_eq(reg(UINT64_MAX - 3, 4, &a, "top"), 0);
	cr_assert_eq(bus_dispatch(&b, UINT64_MAX - 1, &v, 8, false), -ENOENT);
	cr_assert_eq(bus_dispatch(&b, UINT64_MAX - 1, &v, 2, false), 0);
	cr_assert_eq(a.off, 2);
}

/* ---- i8042, reached through a port bus --------------------------------- */

static int exits, exit_code;
static char exit_why[64];

static void record_exit(void *opaque, int code, const char *why)
{
	exits++;
	exit_code = code;
	snprintf(exit_why, sizeof(exit_why), "%s", why);
}

Test(bus, i8042_reset_and_status)
{
	struct dev_host host = {.request_exit = record_exit};
	struct i8042 k;
	uint8_t v = 0xaa;

	exits = 0;
	bus_init(&b, "pio");
	i8042_init(&k, &host);
	cr_assert_eq(bus_register(&b, I8042_DATA_PORT, I8042_PORT_LEN,
				  &i8042_ops, &k, "i8042", err, sizeof(err)),
		     0);
	bus_seal(&b);

	cr_assert_eq(bus_dispatch(&b, I8042_COMMAND_PORT, &v, 1, false), 0);
	cr_assert_eq(v, 0);
	v = 0xaa;
	cr_assert_eq(bus_dispatch(&b, I8042_DATA_PORT, &v, 1, false), 0);
	cr_assert_eq(v, 0);

	v = 0xd1; /* another command: ignored */
	cr_assert_eq(bus_dispatch(&b, I8042_COMMAND_PORT, &v, 1, true), 0);
	v = I8042_CMD_RESET; /* to the data port: not a command */
	cr_assert_eq(bus_dispatch(&b, I8042_DATA_PORT, &v, 1, true), 0);
	cr_assert_eq(exits, 0);

	v = I8042_CMD_RESET;
	cr_assert_eq(bus_dispatch(&b, I8042_COMMAND_PORT, &v, 1, true), 0);
	cr_assert_eq(exits, 1);
	cr_assert_eq(exit_code, 0);
	cr_assert_str_eq(exit_why, "guest reset via i8042");
	cr_assert_null(bus_find(&b, I8042_COMMAND_PORT + 1));
}

/*
 * Without a host (nothing to reset) the reset command is dropped, and the
 * controller still reads as idle: status 0 (no output, input buffer empty)
 * on the command port, 0 on the data port, so a polling guest moves on.
 */
Test(bus, i8042_without_host)
{
	struct i8042 k;
	uint8_t v = I8042_CMD_RESET, status = 0xff, data = 0xff;

	i8042_init(&k, NULL);
	cr_assert_null(k.host);
	i8042_ops.write(&k, I8042_COMMAND_PORT - I8042_DATA_PORT, &v, 1);
	i8042_ops.read(&k, I8042_COMMAND_PORT - I8042_DATA_PORT, &status, 1);
	i8042_ops.read(&k, 0, &data, 1);
	cr_assert_eq(status, 0, "status after reset without host: 0x%x",
		     status);
	cr_assert_eq(data, 0, "data port: 0x%x", data);
}
