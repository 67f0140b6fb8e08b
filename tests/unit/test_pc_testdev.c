/* SPDX-License-Identifier: MIT */
/*
 * test_pc_testdev.c - pc-testdev (devices/pc_testdev.c) on a real PIO bus:
 * the scratch register at 0xe0 and 0xe8, the IRQ lines at 0x2000 (QEMU's
 * byte-wise split of a wide write), the flush page on real guest RAM, the
 * state round trip re-driving lines, and `--device pc-testdev`.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "devices/devices.h"
#include "devices/pc_testdev.h"

#define NR_EVENTS 64
static struct {
	unsigned int gsi;
	int level;
} ev[NR_EVENTS];
static int nr_ev;

static void rec_irq(void *opaque, unsigned int gsi, int level)
{
	if (nr_ev < NR_EVENTS)
		ev[nr_ev++] = (typeof(ev[0])){gsi, level};
}

static struct guest_mem mem;
static struct dev_host host = {.irq_line = rec_irq};
static struct bus pio;
static struct pc_testdev td;
static char err[256];

static void setup(void)
{
	nr_ev = 0;
	bus_init(&pio, "pio");
	cr_assert_eq(pc_testdev_init(&td, &host), 0);
	cr_assert_eq(bus_register(&pio, PC_TESTDEV_IO_PORT, PC_TESTDEV_IO_LEN,
				  &pc_testdev_io_ops, &td, "pc_testdev", err,
				  sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(bus_register(&pio, PC_TESTDEV_IRQ_PORT,
				  PC_TESTDEV_NR_LINES, &pc_testdev_irq_ops, &td,
				  "pc_testdev", err, sizeof(err)),
		     0, "%s", err);
	bus_seal(&pio);
}

static void teardown(void)
{
	pc_testdev_destroy(&td);
	bus_destroy(&pio);
}

TestSuite(pc_testdev, .init = setup, .fini = teardown);

static void out(uint16_t port, uint32_t v, uint32_t len)
{
	cr_assert_eq(bus_dispatch(&pio, port, &v, len, true), 0);
}

static uint32_t in(uint16_t port, uint32_t len)
{
	uint32_t v = 0xdeadbeef;

	cr_assert_eq(bus_dispatch(&pio, port, &v, len, false), 0);
	return len == 4 ? v : v & ((1U << (len * 8)) - 1);
}

Test(pc_testdev, scratch_register_as_realmode_uses_it)
{
	out(0xe0, 0xff, 1);
	cr_expect_eq(in(0xe0, 1), 0xff);
	out(0xe0, 0xffff, 2);
	cr_expect_eq(in(0xe0, 2), 0xffff);
	out(0xe0, 0x12345678, 4);
	cr_expect_eq(in(0xe0, 4), 0x12345678);
	out(0xe1, 0xab, 1);
	cr_expect_eq(in(0xe0, 4), 0x1234ab78, "a byte replaces its byte");
	cr_expect_eq(in(0xe2, 2), 0x1234);
	cr_expect_eq(in(0xe8, 4), 0x1234ab78, "0xe8 is the same register");
	out(0xeb, 0x99, 1);
	cr_expect_eq(in(0xe0, 4), 0x9934ab78);
	cr_expect_eq(in(0xe4, 4), 0, "the flush port reads 0");
	cr_expect_eq(nr_ev, 0);
}

Test(pc_testdev, irq_line_byte_writes)
{
	out(0x200b, 1, 1);
	out(0x200b, 0, 1);
	cr_assert_eq(nr_ev, 2);
	cr_expect_eq(ev[0].gsi, 11);
	cr_expect_eq(ev[0].level, 1);
	cr_expect_eq(ev[1].gsi, 11);
	cr_expect_eq(ev[1].level, 0);
	out(0x2017, 0x80, 1);
	cr_expect_eq(ev[2].gsi, 23);
	cr_expect_eq(ev[2].level, 1, "any non-zero byte raises");
	cr_expect_eq(in(0x2017, 1), 0, "lines read 0");
}

Test(pc_testdev, wide_write_drives_consecutive_lines)
{
	out(0x200b, 1, 4); /* realmode's outl: line 11 up, 12-14 down */
	cr_assert_eq(nr_ev, 4);
	for (int i = 0; i < 4; i++) {
		cr_expect_eq(ev[i].gsi, 11U + (unsigned int)i);
		cr_expect_eq(ev[i].level, i == 0);
	}
	out(0x2004, 0x00010001, 4);
	cr_expect_eq(ev[4].gsi, 4);
	cr_expect_eq(ev[4].level, 1);
	cr_expect_eq(ev[6].gsi, 6);
	cr_expect_eq(ev[6].level, 1);
	cr_expect_eq(ev[5].level, 0);
}

Test(pc_testdev, state_round_trip_redrives_high_lines)
{
	struct pc_testdev_state st;
	struct pc_testdev dst;

	out(0xe0, 0xcafe, 2);
	out(0x2003, 1, 1);
	out(0x2008, 1, 1);
	out(0x2008, 0, 1);
	pc_testdev_save(&td, &st);
	cr_expect_eq(st.data, 0xcafe);
	cr_expect_eq(st.levels, 1U << 3);
	nr_ev = 0;
	cr_assert_eq(pc_testdev_init(&dst, &host), 0);
	cr_assert_eq(pc_testdev_load(&dst, &st, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(nr_ev, 1, "only the line left high is driven");
	cr_expect_eq(ev[0].gsi, 3);
	cr_expect_eq(ev[0].level, 1);
	cr_expect_eq(dst.data, 0xcafe);
	st.levels = 1U << 24;
	cr_expect_eq(pc_testdev_load(&dst, &st, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "line levels 0x1000000"), "%s", err);
	pc_testdev_destroy(&dst);
}

Test(pc_testdev, flush_page_keeps_ram_contents)
{
	uint8_t *p;

	cr_assert_eq(mem_create(&mem, 16ULL << 20), 0);
	host.mem = &mem;
	p = mem_gpa_to_hva(&mem, 0x3000, 4096);
	cr_assert_not_null(p);
	memset(p, 0x5a, 4096);
	out(0xe4, 0x3123, 4);
	cr_expect_eq(td.flushes, 1);
	cr_expect_eq(p[0], 0x5a, "the memfd keeps the page");
	cr_expect_eq(p[4095], 0x5a);
	out(0xe4, 0xfff00000, 4); /* not RAM: ignored */
	out(0xe4, 0x3000, 2);	  /* not a 4-byte write: ignored */
	cr_expect_eq(td.flushes, 1);
	host.mem = NULL;
	mem_destroy(&mem);
}

Test(pc_testdev, device_flag_builds_it)
{
	struct dev_request req;
	struct dev_table t;
	struct bus b;
	struct dev_env env = {.host = &host, .pio = &b};
	uint32_t v = 0x77;

	cr_assert_eq(dev_request_parse("pc-testdev", NULL, 0, &req, err,
				       sizeof(err)),
		     0, "%s", err);
	cr_expect(strstr(dev_types_usage(), "pc-testdev"));
	dev_table_init(&t);
	bus_init(&b, "pio");
	cr_assert_eq(dev_request_create(&t, &req, &env, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_not_null(dev_table_find(&t, "pc_testdev"));
	cr_expect_eq(dev_table_find(&t, "pc_testdev")->ops->state_size,
		     sizeof(struct pc_testdev_state));
	bus_seal(&b);
	cr_expect_eq(bus_dispatch(&b, 0xe0, &v, 1, true), 0);
	nr_ev = 0;
	cr_expect_eq(bus_dispatch(&b, 0x2001, &v, 1, true), 0);
	cr_expect_eq(nr_ev, 1);
	cr_expect_eq(ev[0].gsi, 1);
	dev_table_destroy(&t);
	bus_destroy(&b);
}
