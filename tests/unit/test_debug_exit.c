/* SPDX-License-Identifier: MIT */
/*
 * test_debug_exit.c - isa-debug-exit (devices/debug_exit.c) on a real PIO
 * bus: 1-, 2- and 4-byte writes of a code end the VM with (code << 1) | 1
 * through the fake host's request_exit, as QEMU and kvm-unit-tests' runner
 * expect.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "devices/devices.h"
#include "devices/debug_exit.h"

static int exits, exit_code;
static char exit_why[96];

static void rec_exit(void *opaque, int code, const char *why)
{
	exits++;
	exit_code = code;
	snprintf(exit_why, sizeof(exit_why), "%s", why);
}

static struct dev_host host = {.request_exit = rec_exit};
static struct bus pio;
static struct debug_exit dx;
static char err[256];

static void setup(void)
{
	exits = 0;
	bus_init(&pio, "pio");
	debug_exit_init(&dx, &host, DEBUG_EXIT_PORT);
	cr_assert_eq(bus_register(&pio, DEBUG_EXIT_PORT, DEBUG_EXIT_PORT_LEN,
				  &debug_exit_ops, &dx, "debug-exit", err,
				  sizeof(err)),
		     0, "%s", err);
	bus_seal(&pio);
}

static void teardown(void)
{
	bus_destroy(&pio);
}

TestSuite(debug_exit, .init = setup, .fini = teardown);

static void out(uint16_t port, uint32_t v, uint32_t len)
{
	cr_assert_eq(bus_dispatch(&pio, port, &v, len, true), 0);
}

Test(debug_exit, kut_codes_4_bytes)
{
	static const uint32_t code[] = {0, 1, 38, 63};
	static const int status[] = {1, 3, 77, 127};

	for (int i = 0; i < 4; i++) {
		out(0xf4, code[i], 4);
		cr_expect_eq(exits, i + 1);
		cr_expect_eq(exit_code, status[i], "code %u", code[i]);
	}
	cr_expect(strstr(exit_why, "isa-debug-exit"), "%s", exit_why);
}

Test(debug_exit, byte_and_word_writes)
{
	out(0xf4, 0x2, 1);
	cr_expect_eq(exit_code, 5);
	out(0xf4, 0x102, 2);
	cr_expect_eq(exit_code, 0x205);
	out(0xf5, 0x7, 1);
	cr_expect_eq(exit_code, 15, "any port of the range");
	cr_expect_eq(exits, 3);
}

Test(debug_exit, status_keeps_the_low_bits)
{
	cr_expect_eq(debug_exit_status(0x80000000U), 1);
	cr_expect_eq(debug_exit_status(0x7f) & 0xff, 0xff);
}

Test(debug_exit, reads_zero_and_no_exit)
{
	uint32_t v = 0xdeadbeef;

	cr_assert_eq(bus_dispatch(&pio, 0xf4, &v, 4, false), 0);
	cr_expect_eq(v, 0);
	cr_expect_eq(exits, 0);
}

Test(debug_exit, state_checks_the_port)
{
	struct debug_exit_state st;
	struct debug_exit other;

	debug_exit_save(&dx, &st);
	cr_expect_eq(st.port, 0xf4);
	cr_expect_eq(st.pad, 0);
	debug_exit_init(&other, &host, 0xf4);
	cr_expect_eq(debug_exit_load(&other, &st, err, sizeof(err)), 0);
	debug_exit_init(&other, &host, 0x501);
	cr_expect_eq(debug_exit_load(&other, &st, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "port 0xf4 on the source, 0x501 here"), "%s",
		  err);
}
