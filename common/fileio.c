/* SPDX-License-Identifier: MIT */
/*
 * fileio.c - whole reads and writes at a file offset (fileio.h).
 */
#include <errno.h>
#include <unistd.h>

#include "common/fileio.h"

int file_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + got, len - got,
				  (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		got += (size_t)n;
	}
	return 0;
}

int file_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t put = 0;

	while (put < len) {
		ssize_t n = pwrite(fd, (const uint8_t *)buf + put, len - put,
				   (off_t)(off + put));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		put += (size_t)n;
	}
	return 0;
}
