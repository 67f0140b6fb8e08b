/* SPDX-License-Identifier: MIT */
/* err.c - err_set(): one error line into the caller's buffer. */
#include <stdarg.h>
#include <stdio.h>

#include "common/err.h"

void err_set(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
