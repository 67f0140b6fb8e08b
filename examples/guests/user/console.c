/* SPDX-License-Identifier: MIT */
/*
 * console.c - line output from ring 3 through the test device.
 *
 * A line is formatted into a buffer on the caller's stack (identity mapped,
 * so its address is its GPA) and handed to the VMM with one CONSOLE_BUF
 * store: one exit (~47 us from ring 3) per line instead of one per byte.
 * A spinlock keeps lines of different CPUs whole; atomics run natively in
 * ring 3. A line cut short by the buffer still ends in a newline. Without
 * the test device the line goes to ring 0's UART instead (SYS_CONSOLE: a
 * #UD and an exit per byte, for the few lines of such a boot).
 */
#include <stdarg.h>

#include "lib/format.h"
#include "lib/testdev.h"
#include "lib/x86.h"
#include "user/user.h"

#define CONSOLE_LINE_MAX 512

_Static_assert(TESTDEV_CONSOLE_BUF_MAX <= SYS_CONSOLE_MAX,
	       "a CONSOLE_BUF chunk must fit one SYS_CONSOLE");

static uint32_t console_lock_word;

static void console_lock(void)
{
	while (__atomic_exchange_n(&console_lock_word, 1, __ATOMIC_ACQUIRE))
		while (__atomic_load_n(&console_lock_word, __ATOMIC_RELAXED))
			x86_pause();
}

static void console_unlock(void)
{
	__atomic_store_n(&console_lock_word, 0, __ATOMIC_RELEASE);
}

void console_write(const char *s, size_t len)
{
	size_t n;

	console_lock();
	while (len) {
		n = len < TESTDEV_CONSOLE_BUF_MAX ? len
						  : TESTDEV_CONSOLE_BUF_MAX;
		if (guest_testdev())
			testdev_console_buf(s, n);
		else
			sys_console(s, n);
		s += n;
		len -= n;
	}
	console_unlock();
}

void console_printf(const char *fmt, ...)
{
	char line[CONSOLE_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = fmt_vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n == (int)sizeof(line) - 1 && line[n - 1] != '\n')
		line[n - 1] = '\n';
	console_write(line, (size_t)n);
}
