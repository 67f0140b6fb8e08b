/* SPDX-License-Identifier: MIT */
/*
 * uart.c - polled output on the 16550 at port 0x3f8, for ring 0 only.
 *
 * Port I/O faults in ring 3 on this host, so the UART is the console of the
 * ring-0 paths (panics, a bad boot-info page); ring 3 prints through the
 * test device instead (user/console.c). Each port access is a VM exit, so
 * the wait for the transmitter is bounded: an emulated UART is always ready,
 * and a broken one must not hang a panic. No lock: ring-0 output happens
 * only when the guest is dying anyway.
 */
#include <stdarg.h>

#include "kernel/kernel.h"
#include "lib/format.h"
#include "lib/x86.h"

#define UART_BASE     0x3f8
#define UART_THR      0 /* transmit holding register */
#define UART_LSR      5 /* line status register */
#define UART_LSR_THRE 0x20
#define UART_SPINS    256

static void uart_putc(char c)
{
	int i;

	for (i = 0; i < UART_SPINS; i++)
		if (x86_inb(UART_BASE + UART_LSR) & UART_LSR_THRE)
			break;
	x86_outb(UART_BASE + UART_THR, (uint8_t)c);
}

void uart_write(const char *s, size_t len)
{
	while (len--)
		uart_putc(*s++);
}

void uart_printf(const char *fmt, ...)
{
	char line[160];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = fmt_vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	uart_write(line, (size_t)n);
}
