/* SPDX-License-Identifier: MIT */
/*
 * test_serial.c - unit tests for the UART (devices/serial.c) with its
 * console sink, and for the test device (devices/testdev.c). Registers are
 * driven through their bus_ops as a vCPU would; the console and the
 * heartbeat log are temporary files read back after a flush; interrupt
 * levels, exits and events are recorded by fake dev_host callbacks.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <linux/serial_reg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/devices.h"

/* ---- fake host ---------------------------------------------------------- */

#define MAX_LEVELS 64

static int levels[MAX_LEVELS], nr_levels;
static unsigned int level_gsi;
static int exits, exit_code;
static char exit_why[64];
static int events;
static char event_name[32];
static uint64_t event_id, event_arg;

static void rec_irq(void *opaque, unsigned int gsi, int level)
{
	cr_assert_lt(nr_levels, MAX_LEVELS);
	level_gsi = gsi;
	levels[nr_levels++] = level;
}

static void rec_exit(void *opaque, int code, const char *why)
{
	exits++;
	exit_code = code;
	snprintf(exit_why, sizeof(exit_why), "%s", why);
}

static void rec_event(void *opaque, const char *name, uint64_t id, uint64_t arg)
{
	events++;
	snprintf(event_name, sizeof(event_name), "%s", name);
	event_id = id;
	event_arg = arg;
}

static struct dev_host host = {
	.irq_line = rec_irq,
	.request_exit = rec_exit,
	.event = rec_event,
};

static int level_now(void)
{
	return nr_levels ? levels[nr_levels - 1] : 0;
}

/* ---- a console in a temporary file ----------------------------------------
 */

static struct console con;
static char con_path[64];

static void console_setup(void)
{
	char err[256];
	int fd;

	snprintf(con_path, sizeof(con_path), "/tmp/vmm-test-console-XXXXXX");
	fd = mkstemp(con_path);

	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(console_open(&con, con_path, err, sizeof(err)), 0, "%s",
		     err);
}

static void console_teardown(void)
{
	console_close(&con);
	unlink(con_path);
}

/* What reached the file so far, NUL-terminated; the caller frees it. */
static char *file_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 20);
	size_t n;

	cr_assert_not_null(f);
	cr_assert_not_null(buf);
	n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void expect_file(const char *path, const char *want)
{
	char *got = file_text(path);

	cr_expect_str_eq(got, want);
	free(got);
}

/* ---- serial ---------------------------------------------------------------
 */

static struct serial s;

static void serial_setup(void)
{
	nr_levels = 0;
	console_setup();
	cr_assert_eq(serial_init(&s, &host, &con, SERIAL_COM1_IRQ), 0);
}

static void serial_teardown(void)
{
	serial_destroy(&s);
	console_teardown();
}

TestSuite(serial, .init = serial_setup, .fini = serial_teardown);

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

Test(serial, thr_goes_to_console_by_line)
{
	const char *msg = "hello, world\nno newline";
	size_t i;

	for (i = 0; i < strlen(msg); i++)
		wr(UART_TX, (uint8_t)msg[i]);
	expect_file(con_path, "hello, world\n");
	console_flush(&con);
	expect_file(con_path, "hello, world\nno newline");
	cr_assert_eq(con.bytes, strlen(msg));
	cr_assert_eq(nr_levels, 0); /* no interrupt enabled, none raised */
}

Test(serial, console_long_line_flushed_when_full)
{
	static char big[CONSOLE_LINE_MAX + 10];
	char *got;

	memset(big, 'x', sizeof(big));
	console_write(&con, big, sizeof(big));
	got = file_text(con_path);
	cr_assert_eq(strlen(got), CONSOLE_LINE_MAX);
	free(got);
	console_flush(&con);
	got = file_text(con_path);
	cr_assert_eq(strlen(got), sizeof(big));
	free(got);
}

#define LINE_THREADS 4
#define LINE_COUNT   500

static void *line_writer(void *arg)
{
	long id = (long)arg;
	char line[64];
	int i, n;

	for (i = 0; i < LINE_COUNT; i++) {
		n = snprintf(line, sizeof(line), "thread %ld line %d %s\n", id,
			     i, "padding-to-make-lines-long-enough");
		console_write(&con, line, (size_t)n);
	}
	return NULL;
}

Test(serial, console_lines_from_threads_stay_whole)
{
	pthread_t th[LINE_THREADS];
	int next[LINE_THREADS] = {0};
	char *text, *line, *save;
	long i;

	for (i = 0; i < LINE_THREADS; i++)
		cr_assert_eq(
			pthread_create(&th[i], NULL, line_writer, (void *)i),
			0);
	for (i = 0; i < LINE_THREADS; i++)
		pthread_join(th[i], NULL);
	console_flush(&con);
	text = file_text(con_path);
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		long id;
		int n;

		cr_assert_eq(sscanf(line, "thread %ld line %d", &id, &n), 2,
			     "torn line: %s", line);
		cr_assert(id >= 0 && id < LINE_THREADS);
		cr_assert_eq(n, next[id]++, "line out of order: %s", line);
	}
	for (i = 0; i < LINE_THREADS; i++)
		cr_assert_eq(next[i], LINE_COUNT);
	free(text);
}

Test(serial, reset_values)
{
	cr_assert_eq(rd(UART_IER), 0);
	cr_assert_eq(rd(UART_IIR), UART_IIR_NO_INT);
	cr_assert_eq(rd(UART_LCR), 0);
	cr_assert_eq(rd(UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
	cr_assert_eq(rd(UART_MSR), UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS);
}

Test(serial, dlab_switches_divisor_latch)
{
	wr(UART_IER, 0x05);
	wr(UART_LCR, UART_LCR_DLAB | 0x03);
	wr(UART_DLL, 0x01);
	wr(UART_DLM, 0x02);
	cr_assert_eq(rd(UART_DLL), 0x01);
	cr_assert_eq(rd(UART_DLM), 0x02);
	cr_assert_eq(rd(UART_LCR), UART_LCR_DLAB | 0x03);

	wr(UART_LCR, 0x03);
	cr_assert_eq(rd(UART_IER), 0x05); /* IER untouched by DLM writes */
	wr(UART_TX, 'A');		  /* THR, not DLL */
	console_flush(&con);
	expect_file(con_path, "A");

	wr(UART_LCR, UART_LCR_DLAB | 0x03);
	cr_assert_eq(rd(UART_DLL), 0x01);
	cr_assert_eq(rd(UART_DLM), 0x02);
	cr_assert_eq(s.dll, 0x01);
	cr_assert_eq(s.dlm, 0x02);
}

Test(serial, ier_keeps_low_nibble_scr_stores)
{
	wr(UART_IER, 0xf0);
	cr_assert_eq(rd(UART_IER), 0);
	wr(UART_SCR, 0x5a);
	cr_assert_eq(rd(UART_SCR), 0x5a);
	wr(UART_MCR, UART_MCR_OUT2 | UART_MCR_RTS | UART_MCR_DTR);
	cr_assert_eq(rd(UART_MCR), UART_MCR_OUT2 | UART_MCR_RTS | UART_MCR_DTR);
}

Test(serial, thre_interrupt_like_the_real_part)
{
	/* Enabling THRI with THR empty interrupts at once. */
	wr(UART_IER, UART_IER_THRI);
	cr_assert_eq(nr_levels, 1);
	cr_assert_eq(levels[0], 1);
	cr_assert_eq(level_gsi, SERIAL_COM1_IRQ);

	/* Reading IIR reports THRE and acknowledges it. */
	cr_assert_eq(rd(UART_IIR), UART_IIR_THRI);
	cr_assert_eq(level_now(), 0);
	cr_assert_eq(rd(UART_IIR), UART_IIR_NO_INT);
	cr_assert_eq(nr_levels, 2);

	/* Each byte sent raises it again. */
	wr(UART_TX, 'x');
	cr_assert_eq(nr_levels, 3);
	cr_assert_eq(level_now(), 1);

	/* A THR write while pending pulses the line: one edge per byte. */
	wr(UART_TX, 'y');
	cr_assert_eq(nr_levels, 5);
	cr_assert_eq(levels[3], 0);
	cr_assert_eq(levels[4], 1);

	/* Masking it drops the line; unmasking brings it back. */
	wr(UART_IER, 0);
	cr_assert_eq(level_now(), 0);
	cr_assert_eq(rd(UART_IIR), UART_IIR_NO_INT);
	wr(UART_IER, UART_IER_THRI);
	cr_assert_eq(level_now(), 1);
}

Test(serial, irq_line_called_only_on_change)
{
	int i;

	wr(UART_IER, UART_IER_THRI | UART_IER_RDI);
	for (i = 0; i < 10; i++) {
		(void)rd(UART_LSR);
		wr(UART_SCR, (uint8_t)i);
		serial_push_input(&s, "a", 1);
	}
	for (i = 1; i < nr_levels; i++)
		cr_assert_neq(levels[i], levels[i - 1]);
	cr_assert_eq(nr_levels, 1);
}

Test(serial, iir_fifo_bits_follow_fcr)
{
	cr_assert_eq(rd(UART_IIR) & 0xc0, 0);
	wr(UART_FCR, UART_FCR_ENABLE_FIFO | UART_FCR_CLEAR_RCVR |
			     UART_FCR_CLEAR_XMIT | UART_FCR_TRIGGER_14);
	cr_assert_eq(rd(UART_IIR), 0xc0 | UART_IIR_NO_INT);
	wr(UART_IER, UART_IER_THRI);
	cr_assert_eq(rd(UART_IIR), 0xc0 | UART_IIR_THRI);
	wr(UART_FCR, 0);
	cr_assert_eq(rd(UART_IIR), UART_IIR_NO_INT);
}

Test(serial, input_sets_dr_and_reads_in_order)
{
	cr_assert_eq(serial_push_input(&s, "ok", 2), 2);
	cr_assert_eq(rd(UART_LSR), UART_LSR_DR | UART_LSR_THRE | UART_LSR_TEMT);
	cr_assert_eq(rd(UART_RX), 'o');
	cr_assert(rd(UART_LSR) & UART_LSR_DR);
	cr_assert_eq(rd(UART_RX), 'k');
	cr_assert_eq(rd(UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
	cr_assert_eq(nr_levels, 0); /* RDI not enabled */
}

Test(serial, rda_interrupt)
{
	wr(UART_IER, UART_IER_RDI);
	cr_assert_eq(nr_levels, 0);
	serial_push_input(&s, "ab", 2);
	cr_assert_eq(nr_levels, 1);
	cr_assert_eq(levels[0], 1);
	cr_assert_eq(rd(UART_IIR), UART_IIR_RDI);
	cr_assert_eq(rd(UART_IIR), UART_IIR_RDI); /* not acked by IIR */
	cr_assert_eq(rd(UART_RX), 'a');
	cr_assert_eq(level_now(), 1);
	cr_assert_eq(rd(UART_RX), 'b');
	cr_assert_eq(level_now(), 0);
	cr_assert_eq(rd(UART_IIR), UART_IIR_NO_INT);
	cr_assert_eq(nr_levels, 2);
}

Test(serial, rda_has_priority_over_thre)
{
	wr(UART_IER, UART_IER_RDI | UART_IER_THRI);
	serial_push_input(&s, "z", 1);
	cr_assert_eq(rd(UART_IIR), UART_IIR_RDI);
	cr_assert_eq(rd(UART_RX), 'z');
	cr_assert_eq(rd(UART_IIR), UART_IIR_THRI);
	cr_assert_eq(rd(UART_IIR), UART_IIR_NO_INT);
	cr_assert_eq(level_now(), 0);
}

Test(serial, fifo_full_takes_what_fits)
{
	uint8_t in[100];
	int i;

	for (i = 0; i < 100; i++)
		in[i] = (uint8_t)i;
	cr_assert_eq(serial_push_input(&s, in, sizeof(in)), SERIAL_FIFO_SIZE);
	cr_assert_eq(serial_push_input(&s, in, 1), 0);
	cr_assert_eq(rd(UART_RX), 0);
	/* One slot freed: the caller's next byte fits, order survives. */
	cr_assert_eq(serial_push_input(&s, &in[SERIAL_FIFO_SIZE], 10), 1);
	for (i = 1; i <= SERIAL_FIFO_SIZE; i++)
		cr_assert_eq(rd(UART_RX), i);
	cr_assert_eq(rd(UART_LSR) & UART_LSR_DR, 0);
}

Test(serial, fcr_clears_receiver)
{
	serial_push_input(&s, "abc", 3);
	wr(UART_FCR, UART_FCR_ENABLE_FIFO); /* enabling resets the FIFO */
	cr_assert_eq(rd(UART_LSR) & UART_LSR_DR, 0);
	serial_push_input(&s, "abc", 3);
	wr(UART_FCR, UART_FCR_ENABLE_FIFO); /* no change: kept */
	cr_assert(rd(UART_LSR) & UART_LSR_DR);
	wr(UART_FCR, UART_FCR_ENABLE_FIFO | UART_FCR_CLEAR_RCVR);
	cr_assert_eq(rd(UART_LSR) & UART_LSR_DR, 0);
}

Test(serial, loopback_mirrors_mcr_and_thr)
{
	/* What Linux's 8250 probe checks. */
	wr(UART_MCR, UART_MCR_LOOP | UART_MCR_OUT2 | UART_MCR_RTS);
	cr_assert_eq(rd(UART_MSR) & 0xf0, UART_MSR_DCD | UART_MSR_CTS);
	wr(UART_TX, 'L');
	cr_assert(rd(UART_LSR) & UART_LSR_DR);
	cr_assert_eq(rd(UART_RX), 'L');
	wr(UART_MCR, 0);
	cr_assert_eq(rd(UART_MSR), UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS);
	console_flush(&con);
	expect_file(con_path, "");
}

Test(serial, wide_access_is_bytes_to_consecutive_registers)
{
	uint16_t v = 0x0203; /* LCR (reg 3) = 0x03, then MCR (reg 4) = 0x02 */

	serial_ops.write(&s, UART_LCR, &v, 2);
	cr_assert_eq(rd(UART_LCR), 0x03);
	cr_assert_eq(rd(UART_MCR), 0x02);
	v = 0;
	serial_ops.read(&s, UART_LCR, &v, 2);
	cr_assert_eq(v, 0x0203);
}

Test(serial, no_host_no_console)
{
	struct serial n;

	cr_assert_eq(serial_init(&n, NULL, NULL, 4), 0);
	serial_ops.write(&n, UART_IER, &(uint8_t){UART_IER_THRI}, 1);
	serial_ops.write(&n, UART_TX, &(uint8_t){'x'}, 1);
	cr_assert_eq(n.irq_level, 1);
	cr_assert_eq(serial_push_input(&n, "q", 1), 1);
	serial_destroy(&n);

	host.irq_line = NULL;
	cr_assert_eq(serial_init(&n, &host, NULL, 4), 0);
	serial_ops.write(&n, UART_IER, &(uint8_t){UART_IER_THRI}, 1);
	serial_destroy(&n);
	host.irq_line = rec_irq;
	cr_assert_eq(nr_levels, 0);
}

Test(serial, console_open_error_names_file)
{
	struct console c2;
	char err[256];

	cr_assert_eq(console_open(&c2, "/nonexistent-dir/x", err, sizeof(err)),
		     -ENOENT);
	cr_assert_not_null(strstr(err, "/nonexistent-dir/x"));
	cr_assert_not_null(strstr(err, strerror(ENOENT)));
}

Test(serial, console_to_pipe)
{
	struct console c2;
	char buf[64] = {0};
	int p[2];

	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(console_open(&c2, NULL, NULL, 0), 0);
	c2.fd = p[1]; /* stand in for stdout */
	console_write(&c2, "one\ntwo", 7);
	cr_assert_eq(read(p[0], buf, sizeof(buf)), 4);
	cr_assert_str_eq(buf, "one\n");
	console_close(&c2); /* flushes, does not close a borrowed fd */
	cr_assert_eq(read(p[0], buf, sizeof(buf)), 3);
	cr_assert_eq(memcmp(buf, "two", 3), 0);
	close(p[0]);
	close(p[1]);
}

/* ---- testdev ----------------------------------------------------------------
 */

static struct testdev t;
static char hb_path[64];

static void testdev_setup(void)
{
	char err[256];
	int fd;

	snprintf(hb_path, sizeof(hb_path), "/tmp/vmm-test-hb-XXXXXX");
	fd = mkstemp(hb_path);

	exits = 0;
	events = 0;
	host.mem = NULL;
	cr_assert_geq(fd, 0);
	close(fd);
	console_setup();
	cr_assert_eq(testdev_init(&t, &host, &con, hb_path, err, sizeof(err)),
		     0, "%s", err);
}

static void testdev_teardown(void)
{
	testdev_destroy(&t);
	console_teardown();
	unlink(hb_path);
}

TestSuite(testdev, .init = testdev_setup, .fini = testdev_teardown);

static void td_write(uint64_t off, uint64_t v, uint32_t len)
{
	testdev_ops.write(&t, off, &v, len);
}

static uint64_t td_read(uint64_t off, uint32_t len)
{
	uint64_t v = 0x5555555555555555ULL;

	testdev_ops.read(&t, off, &v, len);
	return len == 8 ? v : v & ((1ULL << (8 * len)) - 1);
}

Test(testdev, id_and_other_reads)
{
	cr_assert_eq(td_read(TESTDEV_REG_ID, 4), TESTDEV_ID);
	cr_assert_eq(td_read(TESTDEV_REG_ID, 1), 0);
	cr_assert_eq(td_read(TESTDEV_REG_HEARTBEAT, 4), 0);
	cr_assert_eq(td_read(0x800, 8), 0);
}

Test(testdev, heartbeats_logged_and_checked)
{
	static const uint32_t seqs[] = {1000, 1001, 1002, 1004, 1005, 1005};
	struct testdev_stats st;
	char *log, *p;
	uint64_t prev_ns = 0;
	size_t i;

	for (i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++)
		td_write(TESTDEV_REG_HEARTBEAT, seqs[i], 4);
	testdev_get_stats(&t, &st);
	cr_assert_eq(st.heartbeats, 6);
	cr_assert_eq(st.last_seq, 1005);
	cr_assert_eq(st.seq_errors, 2); /* 1004 skipped 1003; 1005 twice */
	cr_assert_gt(st.last_ns, 0);

	testdev_flush(&t);
	log = file_text(hb_path);
	p = log;
	for (i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
		unsigned int seq;
		uint64_t ns;
		int n;

		cr_assert_eq(sscanf(p, "%u %" SCNu64 "\n%n", &seq, &ns, &n), 2);
		cr_assert_eq(seq, seqs[i]);
		cr_assert_geq(ns, prev_ns);
		prev_ns = ns;
		p += n;
	}
	cr_assert_eq(*p, '\0');
	cr_assert_eq(prev_ns, st.last_ns);
	free(log);
}

/* BEAT_STALL: a heartbeat like the others, with the guest's stall logged. */
Test(testdev, beat_stall_logged)
{
	struct testdev_stats st;
	unsigned int seq, stall;
	uint64_t ns;
	char *log;
	int n;

	td_write(TESTDEV_REG_HEARTBEAT, 41, 4);
	td_write(TESTDEV_REG_BEAT_STALL, (uint64_t)1750 << 32 | 42, 8);
	td_write(TESTDEV_REG_BEAT_STALL, 43, 4); /* wrong width: ignored */
	testdev_get_stats(&t, &st);
	cr_assert_eq(st.heartbeats, 2);
	cr_assert_eq(st.last_seq, 42);
	cr_assert_eq(st.seq_errors, 0);

	testdev_flush(&t);
	log = file_text(hb_path);
	cr_assert_eq(sscanf(log, "%u %" SCNu64 "\n%n", &seq, &ns, &n), 2);
	cr_assert_eq(seq, 41);
	cr_assert_eq(sscanf(log + n, "%u %" SCNu64 " %u\n", &seq, &ns, &stall),
		     3, "line 2: %s", log + n);
	cr_assert_eq(seq, 42);
	cr_assert_eq(stall, 1750);
	cr_assert_eq(ns, st.last_ns);
	free(log);
}

Test(testdev, heartbeat_seq_wraps)
{
	struct testdev_stats st;

	td_write(TESTDEV_REG_HEARTBEAT, 0xffffffffU, 4);
	td_write(TESTDEV_REG_HEARTBEAT, 0, 4);
	td_write(TESTDEV_REG_HEARTBEAT, 1, 2); /* wrong width: ignored */
	testdev_get_stats(&t, &st);
	cr_assert_eq(st.heartbeats, 2);
	cr_assert_eq(st.seq_errors, 0);
}

Test(testdev, no_log_still_counts)
{
	struct testdev t2;
	struct testdev_stats st;
	uint32_t seq = 7;

	cr_assert_eq(testdev_init(&t2, NULL, NULL, NULL, NULL, 0), 0);
	testdev_ops.write(&t2, TESTDEV_REG_HEARTBEAT, &seq, 4);
	testdev_flush(&t2);
	testdev_get_stats(&t2, &st);
	cr_assert_eq(st.heartbeats, 1);
	testdev_destroy(&t2);
}

Test(testdev, bad_log_path_named)
{
	struct testdev t2;
	char err[256];

	cr_assert_eq(testdev_init(&t2, NULL, NULL, "/nonexistent-dir/hb", err,
				  sizeof(err)),
		     -ENOENT);
	cr_assert_not_null(strstr(err, "/nonexistent-dir/hb"));
}

Test(testdev, markers_counted_and_posted)
{
	struct testdev_stats st;

	td_write(TESTDEV_REG_MARKER, ((uint64_t)MARK_CPU_UP << 32) | 3, 8);
	td_write(TESTDEV_REG_MARKER, ((uint64_t)MARK_CPU_UP << 32) | 1, 8);
	td_write(TESTDEV_REG_MARKER, ((uint64_t)MARK_VERIFY_OK << 32) | 512, 8);
	cr_assert_eq(events, 3);
	cr_assert_str_eq(event_name, "marker");
	cr_assert_eq(event_id, MARK_VERIFY_OK);
	cr_assert_eq(event_arg, 512);

	td_write(TESTDEV_REG_MARKER, (99ULL << 32) | 0xffffffffU, 8);
	cr_assert_eq(events, 4);
	cr_assert_eq(event_id, 99);
	cr_assert_eq(event_arg, 0xffffffffU);

	td_write(TESTDEV_REG_MARKER, (uint64_t)MARK_CPU_UP, 4); /* ignored */
	cr_assert_eq(events, 4);

	testdev_get_stats(&t, &st);
	cr_assert_eq(st.markers[MARK_CPU_UP], 2);
	cr_assert_eq(st.marker_arg[MARK_CPU_UP], 1);
	cr_assert_eq(st.markers[MARK_VERIFY_OK], 1);
	cr_assert_eq(st.marker_arg[MARK_VERIFY_OK], 512);
	cr_assert_eq(st.markers[0], 0);
}

Test(testdev, exit_requests_exit)
{
	td_write(TESTDEV_REG_EXIT, 3, 8); /* wrong width */
	td_write(TESTDEV_REG_EXIT, 3, 1);
	cr_assert_eq(exits, 0);
	td_write(TESTDEV_REG_EXIT, 3, 4);
	cr_assert_eq(exits, 1);
	cr_assert_eq(exit_code, 3);
	cr_assert_str_eq(exit_why, "guest exit");
}

Test(testdev, console_bytes)
{
	const char *msg = "ring 3\n";
	size_t i;

	for (i = 0; i < strlen(msg); i++)
		td_write(TESTDEV_REG_CONSOLE, (uint8_t)msg[i], 1);
	td_write(TESTDEV_REG_CONSOLE, '!', 4); /* wrong width */
	expect_file(con_path, "ring 3\n");
}

static uint64_t console_buf(uint64_t len, uint64_t gpa)
{
	return (len << 48) | gpa;
}

Test(testdev, console_buf_without_mem_ignored)
{
	td_write(TESTDEV_REG_CONSOLE_BUF, console_buf(6, 0x1000), 8);
	console_flush(&con);
	expect_file(con_path, "");
}

Test(testdev, console_buf_from_guest_ram)
{
	static uint8_t ram[8192];
	struct guest_mem mem = {
		.size = sizeof(ram),
		.nr_regions = 1,
		.regions[0] = {.gpa = 0x100000,
			       .size = sizeof(ram),
			       .hva = ram},
	};

	host.mem = &mem;
	memcpy(ram + 0x10, "from RAM\n", 9);
	memcpy(ram + sizeof(ram) - 4, "end\n", 4);
	td_write(TESTDEV_REG_CONSOLE_BUF, console_buf(9, 0x100010), 8);
	td_write(TESTDEV_REG_CONSOLE_BUF,
		 console_buf(4, 0x100000 + sizeof(ram) - 4), 8);
	/* Past the end of RAM, too long, elsewhere: all ignored. */
	td_write(TESTDEV_REG_CONSOLE_BUF,
		 console_buf(5, 0x100000 + sizeof(ram) - 4), 8);
	td_write(TESTDEV_REG_CONSOLE_BUF,
		 console_buf(TESTDEV_CONSOLE_BUF_MAX + 1, 0x100000), 8);
	td_write(TESTDEV_REG_CONSOLE_BUF, console_buf(4, 0x10), 8);
	td_write(TESTDEV_REG_CONSOLE_BUF, console_buf(9, 0x100010), 4);
	expect_file(con_path, "from RAM\nend\n");
	/* Three warnings within a second: one printed, two held back. */
	cr_assert_eq(t.warn_suppressed, 2);
	host.mem = NULL;
}

Test(testdev, marker_names)
{
	cr_assert_str_eq(testdev_marker_name(MARK_CPU_UP), "cpu-up");
	cr_assert_str_eq(testdev_marker_name(MARK_WORKLOAD_START),
			 "workload-start");
	cr_assert_str_eq(testdev_marker_name(MARK_VERIFY_OK), "verify-ok");
	cr_assert_str_eq(testdev_marker_name(MARK_VERIFY_FAIL), "verify-fail");
	cr_assert_str_eq(testdev_marker_name(MARK_GUEST_PANIC), "guest-panic");
	cr_assert_str_eq(testdev_marker_name(MARK_REQ_DONE), "req-done");
	cr_assert_str_eq(testdev_marker_name(0), "unknown");
	cr_assert_str_eq(testdev_marker_name(MARK_MAX), "unknown");
	cr_assert_str_eq(testdev_marker_name(12345), "unknown");
}
