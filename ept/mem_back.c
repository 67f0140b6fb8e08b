/* SPDX-License-Identifier: MIT */
/*
 * mem_back.c - the memfd behind guest RAM (mem_back.h): adopt another
 * process's, populate it, lock it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ept/mem_back.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif

int mem_adopt_fd(struct guest_mem *m, int fd, char *err, size_t errlen)
{
	struct stat sb;
	void *p;

	if (fstat(fd, &sb) < 0) {
		snprintf(err, errlen, "guest RAM handed over: fstat: %s",
			 strerror(errno));
		return -errno;
	}
	if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != m->size) {
		snprintf(err, errlen,
			 "guest RAM handed over is %llu MiB, this VM has %llu "
			 "MiB (--mem)",
			 (unsigned long long)sb.st_size >> 20,
			 (unsigned long long)m->size >> 20);
		return -EINVAL;
	}
	/* The same address: KVM's memslots (and its MMU notifier) follow. */
	p = mmap(m->base, m->size, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, fd, 0);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "mapping the guest RAM handed over: %s",
			 strerror(errno));
		return -errno;
	}
	if (madvise(p, m->size, MADV_DONTDUMP) < 0) {
		snprintf(err, errlen, "madvise(MADV_DONTDUMP) of guest RAM: %s",
			 strerror(errno));
		return -errno;
	}
	close(m->memfd);
	m->memfd = fd;
	return 0;
}

int mem_populate(struct guest_mem *m, char *err, size_t errlen)
{
	if (!madvise(m->base, m->size, MADV_POPULATE_WRITE))
		return 0;
	if (errno == EINVAL)
		snprintf(err, errlen,
			 "--mem-prealloc: this kernel lacks "
			 "MADV_POPULATE_WRITE (Linux 5.14 or later)");
	else
		snprintf(err, errlen,
			 "--mem-prealloc: populating %llu MiB of guest RAM: %s",
			 (unsigned long long)m->size >> 20, strerror(errno));
	return -errno;
}

/* Root (CAP_IPC_LOCK) is not bound by RLIMIT_MEMLOCK. */
static int mem_lock_limit(const struct guest_mem *m, char *err, size_t errlen)
{
	struct rlimit rl;

	if (geteuid() == 0)
		return 0;
	if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0) {
		snprintf(err, errlen, "--mlock: getrlimit(RLIMIT_MEMLOCK): %s",
			 strerror(errno));
		return -errno;
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= m->size)
		return 0;
	snprintf(err, errlen,
		 "--mlock: RLIMIT_MEMLOCK is %llu KiB, guest RAM is %llu KiB "
		 "(raise it: ulimit -l, or run as root)",
		 (unsigned long long)rl.rlim_cur >> 10,
		 (unsigned long long)m->size >> 10);
	return -EPERM;
}

int mem_lock(struct guest_mem *m, char *err, size_t errlen)
{
	int r = mem_lock_limit(m, err, errlen);

	if (r)
		return r;
	if (!mlock2(m->base, m->size, MLOCK_ONFAULT))
		return 0;
	snprintf(err, errlen, "--mlock: locking %llu MiB of guest RAM: %s",
		 (unsigned long long)m->size >> 20, strerror(errno));
	return -errno;
}
