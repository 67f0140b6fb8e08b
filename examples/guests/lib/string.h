/* SPDX-License-Identifier: MIT */
/*
 * string.h - the few C library string and memory functions the guest uses.
 *
 * The compiler may emit calls to memset, memcpy, memmove and memcmp on its
 * own (struct copies, zeroing loops), so they must exist under exactly these
 * names even in a freestanding image.
 */
#ifndef GUEST_STRING_H
#define GUEST_STRING_H

#include <stddef.h>

void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strchr(const char *s, int c);

#endif /* GUEST_STRING_H */
