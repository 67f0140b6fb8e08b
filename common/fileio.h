/* SPDX-License-Identifier: MIT */
/*
 * fileio.h - whole reads and writes at a file offset: pread/pwrite until
 * every byte moved, EINTR retried.
 */
#ifndef COMMON_FILEIO_H
#define COMMON_FILEIO_H

#include <stddef.h>
#include <stdint.h>

/* 0, -errno, or -EIO when the file ends first. */
int file_pread_all(int fd, void *buf, size_t len, uint64_t off);
/* 0 or -errno. */
int file_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);

#endif /* COMMON_FILEIO_H */
