/* SPDX-License-Identifier: MIT */
/*
 * test_serial_rx.c - the UART's receive side (devices/serial.c): the FIFO
 * as serial_push_input fills it and RBR empties it, data-ready and the RX
 * interrupt, back-pressure (what does not fit is refused; rx_room when a
 * read makes room in a full FIFO), overrun in loopback with its line-status
 * interrupt, and the migrated state: version 2 round trip with the FIFO
 * wrapped and an overrun pending, version 1 still loading. The UART runs
 * with no console (output is test_serial.c's part).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/serial_reg.h>
#include <string.h>

#include "devices/devices.h"

static int level, nr_edges;
static int rooms;

static void rec_irq(void *opaque, unsigned int gsi, int l)
{
	(void)opaque;
	cr_assert_eq(gsi, SERIAL_COM1_IRQ);
	if (l != level)
		nr_edges++;
	level = l;
}

static const struct dev_host host = {.irq_line = rec_irq};
static struct serial s;

static void on_room(void *opaque)
{
	cr_assert_eq(opaque, &s);
	rooms++;
}

static void setup(void)
{
	level = 0;
	nr_edges = 0;
	rooms = 0;
	cr_assert_eq(serial_init(&s, &host, NULL, SERIAL_COM1_IRQ), 0);
	serial_set_rx_room(&s, on_room, &s);
}

static void teardown(void)
{
	serial_destroy(&s);
}

TestSuite(serial_rx, .init = setup, .fini = teardown);

static uint8_t rd(unsigned int reg)
{
	uint8_t v;

	serial_ops.read(&s, reg, &v, 1);
	return v;
}

static void wr(unsigned int reg, uint8_t v)
{
	serial_ops.write(&s, reg, &v, 1);
}

static void push_str(const char *p, size_t want)
{
	cr_assert_eq(serial_push_input(&s, p, strlen(p)), want);
}

Test(serial_rx, bytes_in_order_with_data_ready_and_rx_interrupt)
{
	cr_expect_eq(rd(UART_LSR) & UART_LSR_DR, 0);
	wr(UART_IER, UART_IER_RDI);
	cr_expect_eq(level, 0, "no data: no interrupt");
	push_str("ok\n", 3);
	cr_expect_eq(level, 1, "data waits: RDA raised");
	cr_expect_eq(rd(UART_IIR) & UART_IIR_ID, UART_IIR_RDI);
	cr_expect(rd(UART_LSR) & UART_LSR_DR);
	cr_expect_eq(rd(UART_RX), 'o');
	cr_expect_eq(rd(UART_RX), 'k');
	cr_expect_eq(level, 1);
	cr_expect_eq(rd(UART_RX), '\n');
	cr_expect_eq(level, 0, "FIFO empty: RDA dropped");
	cr_expect_eq(rd(UART_LSR) & UART_LSR_DR, 0);
	cr_expect_eq(rd(UART_IIR) & UART_IIR_NO_INT, UART_IIR_NO_INT);
	cr_expect_eq(rooms, 0, "the FIFO was never full");
}

Test(serial_rx, full_fifo_refuses_and_a_read_makes_room_once)
{
	char in[SERIAL_FIFO_SIZE + 10];

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (char)('A' + i % 26);
	cr_assert_eq(serial_push_input(&s, in, sizeof(in)), SERIAL_FIFO_SIZE);
	cr_expect_eq(serial_rx_room(&s), 0);
	cr_expect_eq(serial_push_input(&s, "x", 1), 0, "full: refused");
	cr_expect_eq(rd(UART_RX), 'A');
	cr_expect_eq(rooms, 1, "full -> room: the feeder is told");
	cr_expect_eq(serial_rx_room(&s), 1);
	cr_expect_eq(rd(UART_RX), 'B');
	cr_expect_eq(rooms, 1, "not full before this read: no call");
	/* The feeder goes on with what was refused: order is kept. */
	cr_assert_eq(serial_push_input(&s, in + SERIAL_FIFO_SIZE, 10), 2);
	for (size_t i = 2; i < SERIAL_FIFO_SIZE + 2; i++)
		cr_assert_eq(rd(UART_RX), in[i], "byte %zu", i);
	cr_expect_eq(rd(UART_LSR) & UART_LSR_DR, 0);
	serial_set_rx_room(&s, NULL, NULL);
	cr_assert_eq(serial_push_input(&s, in, sizeof(in)), SERIAL_FIFO_SIZE);
	rd(UART_RX);
	cr_expect_eq(rooms, 2, "no callback once unset");
}

Test(serial_rx, loopback_overrun_sets_oe_and_line_status_interrupt)
{
	wr(UART_MCR, UART_MCR_LOOP);
	for (int i = 0; i < SERIAL_FIFO_SIZE; i++)
		wr(UART_TX, (uint8_t)i);
	cr_expect_eq(rd(UART_LSR) & UART_LSR_OE, 0, "full, not overrun");
	wr(UART_TX, 0xee); /* lost */
	wr(UART_IER, UART_IER_RDI | UART_IER_RLSI);
	cr_expect_eq(level, 1);
	cr_expect_eq(rd(UART_IIR) & UART_IIR_ID, UART_IIR_RLSI,
		     "line status outranks received data");
	cr_expect(rd(UART_LSR) & UART_LSR_OE);
	cr_expect_eq(rd(UART_LSR) & UART_LSR_OE, 0, "reading LSR clears OE");
	cr_expect_eq(rd(UART_IIR) & UART_IIR_ID, UART_IIR_RDI);
	for (int i = 0; i < SERIAL_FIFO_SIZE; i++)
		cr_assert_eq(rd(UART_RX), i);
	cr_expect_eq(level, 0);
}

/* A FIFO that wrapped, an overrun pending, registers set: all of it moves. */
Test(serial_rx, state_v2_round_trip_keeps_fifo_and_overrun)
{
	struct serial_state st;
	struct serial t;
	char err[128];
	char in[SERIAL_FIFO_SIZE];

	memset(in, 'a', sizeof(in));
	wr(UART_MCR, UART_MCR_LOOP);
	for (int i = 0; i < SERIAL_FIFO_SIZE + 1; i++)
		wr(UART_TX, (uint8_t)i);
	for (int i = 0; i < 40; i++)
		rd(UART_RX);
	wr(UART_MCR, UART_MCR_OUT2);
	cr_assert_eq(serial_push_input(&s, "wrap", 4), 4);
	wr(UART_IER, UART_IER_RDI | UART_IER_RLSI);
	wr(UART_SCR, 0x5a);
	cr_assert_eq(serial_dev_ops.version, 2);
	cr_assert_eq(serial_dev_ops.state_size, sizeof(st));
	cr_assert_eq(serial_dev_ops.save(&s, &st, err, sizeof(err)), 0);
	cr_expect_eq(st.rx_len, SERIAL_FIFO_SIZE - 40 + 4);
	cr_expect_eq(st.lsr_err, UART_LSR_OE);

	level = 0;
	cr_assert_eq(serial_init(&t, &host, NULL, SERIAL_COM1_IRQ), 0);
	cr_assert_eq(serial_dev_ops.load(&t, &st, err, sizeof(err)), 0, "%s",
		     err);
	cr_expect_eq(level, 1, "the loaded UART drives its line");
	serial_ops.read(&t, UART_IIR, &in[0], 1);
	cr_expect_eq(in[0] & UART_IIR_ID, UART_IIR_RLSI);
	serial_ops.read(&t, UART_SCR, &in[0], 1);
	cr_expect_eq((uint8_t)in[0], 0x5a);
	for (int i = 40; i < SERIAL_FIFO_SIZE; i++) {
		serial_ops.read(&t, UART_RX, &in[0], 1);
		cr_assert_eq((uint8_t)in[0], i);
	}
	for (int i = 0; i < 4; i++) {
		serial_ops.read(&t, UART_RX, &in[0], 1);
		cr_assert_eq(in[0], "wrap"[i]);
	}
	serial_destroy(&t);

	st.lsr_err = UART_LSR_BI;
	cr_expect_eq(serial_dev_ops.load(&s, &st, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "lsr_err"), "%s", err);
}

Test(serial_rx, state_v1_still_loads_with_no_error_pending)
{
	struct serial_state_v1 v1;
	char err[128];

	cr_assert_eq(serial_dev_ops.old_version, 1);
	cr_assert_eq(serial_dev_ops.old_state_size, sizeof(v1));
	cr_assert_not_null(serial_dev_ops.load_old);
	memset(&v1, 0, sizeof(v1));
	v1.ier = UART_IER_RDI;
	v1.lcr = UART_LCR_WLEN8;
	v1.msr = UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
	v1.rx_len = 2;
	v1.rx[0] = 'h';
	v1.rx[1] = 'i';
	wr(UART_MCR, UART_MCR_LOOP);
	for (int i = 0; i < SERIAL_FIFO_SIZE + 1; i++)
		wr(UART_TX, 0); /* an overrun here must not survive the load */
	cr_assert_eq(serial_dev_ops.load_old(&s, &v1, err, sizeof(err)), 0,
		     "%s", err);
	cr_expect_eq(level, 1);
	cr_expect_eq(rd(UART_LSR) & (UART_LSR_OE | UART_LSR_DR), UART_LSR_DR);
	cr_expect_eq(rd(UART_LCR), UART_LCR_WLEN8);
	cr_expect_eq(rd(UART_RX), 'h');
	cr_expect_eq(rd(UART_RX), 'i');
	cr_expect_eq(level, 0);

	v1.rx_len = SERIAL_FIFO_SIZE + 1;
	cr_expect_eq(serial_dev_ops.load_old(&s, &v1, err, sizeof(err)),
		     -EINVAL);
}
