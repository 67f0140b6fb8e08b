/* SPDX-License-Identifier: MIT */
/*
 * test_fw_cfg.c - QEMU's fw_cfg I/O interface (devices/fw_cfg.c), driven
 * through its bus registration on a real PIO bus exactly as
 * kvm-unit-tests' fwcfg_get_u() does: outw(key, 0x510), then N x inb(0x511).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "devices/bus.h"
#include "devices/fw_cfg.h"

static struct bus pio;
static struct fw_cfg fc;
static char err[256];

static void setup(void)
{
	bus_init(&pio, "pio");
	cr_assert_eq(fw_cfg_init(&fc, 3, 128ULL << 20, 0, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(bus_register(&pio, FW_CFG_PORT, FW_CFG_PORT_LEN,
				  &fw_cfg_ops, &fc, "fw_cfg", err, sizeof(err)),
		     0, "%s", err);
	bus_seal(&pio);
}

static void teardown(void)
{
	bus_destroy(&pio);
	fw_cfg_destroy(&fc);
}

TestSuite(fw_cfg, .init = setup, .fini = teardown);

static void sel(uint16_t key)
{
	cr_assert_eq(bus_dispatch(&pio, 0x510, &key, 2, true), 0);
}

static uint8_t inb(uint16_t port)
{
	uint8_t b;

	cr_assert_eq(bus_dispatch(&pio, port, &b, 1, false), 0);
	return b;
}

/* lib/x86/fwcfg.c fwcfg_get_u(). */
static uint64_t get_u(uint16_t key, int bytes)
{
	uint64_t r = 0;

	sel(key);
	for (int i = 0; i < bytes; i++)
		r |= (uint64_t)inb(0x511) << (8 * i);
	return r;
}

Test(fw_cfg, keys_kut_reads)
{
	cr_expect_eq(get_u(FW_CFG_NB_CPUS, 2), 3);
	cr_expect_eq(get_u(FW_CFG_RAM_SIZE, 8), 128ULL << 20);
	cr_expect_eq(get_u(FW_CFG_MAX_RAM, 8), 0);
	cr_expect_eq(get_u(FW_CFG_MAX_CPUS, 2), 3);
	cr_expect_eq(get_u(FW_CFG_ID, 4), 1);
	cr_expect_eq(get_u(FW_CFG_SIGNATURE, 4), 0x554d4551, "\"QEMU\"");
}

Test(fw_cfg, past_the_end_and_unknown_keys_read_zero)
{
	cr_expect_eq(get_u(FW_CFG_NB_CPUS, 4), 3, "bytes 2-3 read 0");
	cr_expect_eq(get_u(0x02, 8), 0, "UUID is not provided");
	cr_expect_eq(get_u(0x3000, 8), 0);
	cr_expect_eq(get_u(FW_CFG_ARCH | FW_CFG_NB_CPUS, 2), 0,
		     "arch-local keys are not the generic ones");
	cr_expect_eq(get_u(0x4000 | FW_CFG_NB_CPUS, 2), 3,
		     "the write-channel bit still selects the item");
}

Test(fw_cfg, selecting_rewinds)
{
	sel(FW_CFG_SIGNATURE);
	cr_expect_eq(inb(0x511), 'Q');
	cr_expect_eq(inb(0x511), 'E');
	sel(FW_CFG_SIGNATURE);
	cr_expect_eq(inb(0x511), 'Q');
	cr_expect_eq(inb(0x510), 'E',
		     "QEMU's combined port: a byte read "
		     "of 0x510 is data too");
}

Test(fw_cfg, other_accesses_ignored)
{
	uint8_t b = FW_CFG_RAM_SIZE;
	uint16_t w;
	uint32_t l = FW_CFG_RAM_SIZE;

	sel(FW_CFG_SIGNATURE);
	cr_assert_eq(bus_dispatch(&pio, 0x510, &b, 1, true), 0);
	cr_assert_eq(bus_dispatch(&pio, 0x511, &b, 1, true), 0);
	cr_expect_eq(inb(0x511), 'Q', "byte writes neither select nor move");
	cr_assert_eq(bus_dispatch(&pio, 0x510, &w, 2, false), 0);
	cr_expect_eq(w, 0xffff, "word reads are refused");
	cr_expect_eq(inb(0x511), 'E', "and do not move the position");
	cr_expect_neq(bus_dispatch(&pio, 0x510, &l, 4, true), 0,
		      "a dword at 0x510 straddles the range");
}

Test(fw_cfg, save_load_round_trip)
{
	struct fw_cfg other;
	struct fw_cfg_state st;

	sel(FW_CFG_RAM_SIZE);
	inb(0x511);
	inb(0x511);
	inb(0x511);
	fw_cfg_save(&fc, &st);
	cr_expect_eq(st.sel, FW_CFG_RAM_SIZE);
	cr_expect_eq(st.off, 3);
	cr_expect_eq(st.pad, 0);
	cr_assert_eq(fw_cfg_init(&other, 3, 128ULL << 20, 0, err, sizeof(err)),
		     0);
	cr_assert_eq(fw_cfg_load(&other, &st, err, sizeof(err)), 0, "%s", err);
	/* The destination continues with byte 3 of RAM_SIZE (128 MiB). */
	uint64_t rest = 0;
	for (int i = 3; i < 8; i++) {
		uint8_t b;

		fw_cfg_ops.read(&other, 1, &b, 1);
		rest |= (uint64_t)b << (8 * i);
	}
	cr_expect_eq(rest, (128ULL << 20) & ~0xffffffULL);
	fw_cfg_destroy(&other);
}

Test(fw_cfg, load_refuses_bad_state)
{
	struct fw_cfg_state st = {.sel = FW_CFG_NB_CPUS, .off = 3};

	cr_expect_eq(fw_cfg_load(&fc, &st, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "offset 3 past the end (2 bytes)"), "%s", err);
	st = (struct fw_cfg_state){.sel = 0x1234, .off = 1};
	cr_expect_eq(fw_cfg_load(&fc, &st, err, sizeof(err)), -EINVAL);
	st = (struct fw_cfg_state){.sel = FW_CFG_NB_CPUS, .pad = 1};
	cr_expect_eq(fw_cfg_load(&fc, &st, err, sizeof(err)), -EINVAL);
	st = (struct fw_cfg_state){.sel = FW_CFG_NB_CPUS, .off = 2};
	cr_expect_eq(fw_cfg_load(&fc, &st, err, sizeof(err)), 0, "at the end");
}

Test(fw_cfg, init_refuses_bad_cpu_count)
{
	struct fw_cfg other;

	cr_expect_eq(fw_cfg_init(&other, 0, 1 << 20, 0, err, sizeof(err)),
		     -EINVAL);
	cr_expect(strstr(err, "NB_CPUS"), "%s", err);
}
