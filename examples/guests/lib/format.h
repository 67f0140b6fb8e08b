/* SPDX-License-Identifier: MIT */
/*
 * format.h - printf-style formatting into a caller's buffer.
 *
 * Supported: %d %i %u %x %X %p %s %c %%, the flags '-' and '0', a field
 * width (digits or *), and the length modifiers l, ll and z. The result is
 * always NUL-terminated (size > 0) and silently truncated; the return value
 * is the number of characters stored, without the NUL.
 */
#ifndef GUEST_FORMAT_H
#define GUEST_FORMAT_H

#include <stdarg.h>
#include <stddef.h>

int fmt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int fmt_snprintf(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* GUEST_FORMAT_H */
