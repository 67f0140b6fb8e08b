/* SPDX-License-Identifier: MIT */
/*
 * common/ - the lowest floor: the guest ABI shared with the test guests
 * (guest_abi.h) and small helpers every layer may use (error text, the
 * monotonic clock, the page size). It depends on nothing but libc.
 *
 * err.h - how a failing function says why: it returns a negative errno and
 * writes one line into the caller's buffer with err_set().
 */
#ifndef COMMON_ERR_H
#define COMMON_ERR_H

#include <stddef.h>

/* Format one error line into err (errlen bytes); no-op when err is NULL. */
void err_set(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* COMMON_ERR_H */
