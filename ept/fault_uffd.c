/* SPDX-License-Identifier: MIT */
/*
 * fault_uffd.c - the fault service's userfaultfd: opening it and the API
 * handshake (fault_init), range registration and its checks
 * (fault_register), the hooks (fault_set_hooks), the page fill and wake
 * ioctls, and unregistering and closing at fault_stop.
 *
 * Threads: fs->uffd, ranges[] and the hooks are written by the caller's one
 * thread before fault_start and after the fault thread is joined; in
 * between they are only read (the fault thread, placers). The fill and wake
 * ioctls run on the fault thread or a placer's thread; their failures are
 * counted under fs->lock. See fault.c for the whole service's ownership.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/userfaultfd.h>

#include "common/err.h"
#include "ept/fault_int.h"

/* ---- setup and teardown ----------------------------------------------- */

static int fault_uffd_open(char *err, size_t errlen)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	int ret;

	if (fd >= 0)
		return fd;
	ret = -errno;
	if (ret == -EPERM)
		err_set(err, errlen,
			  "userfaultfd: Operation not permitted (as root, or "
			  "set vm.unprivileged_userfaultfd=1)");
	else
		err_set(err, errlen, "userfaultfd: %s", strerror(-ret));
	return ret;
}

static int fault_uffd_api(int fd, uint64_t features)
{
	struct uffdio_api api = {.api = UFFD_API, .features = features};

	return ioctl(fd, UFFDIO_API, &api) < 0 ? -errno : 0;
}

/*
 * UFFDIO_API may be issued once per fd, so when the kernel refuses
 * THREAD_ID (EINVAL) the handshake is redone on a fresh fd without it;
 * faults then carry tid 0.
 */
static int fault_open(struct fault_service *fs, char *err, size_t errlen)
{
	int fd, ret;

	fd = fault_uffd_open(err, errlen);
	if (fd < 0)
		return fd;
	ret = fault_uffd_api(fd, UFFD_FEATURE_THREAD_ID);
	if (ret == -EINVAL) {
		close(fd);
		fd = fault_uffd_open(err, errlen);
		if (fd < 0)
			return fd;
		ret = fault_uffd_api(fd, 0);
	}
	if (ret) {
		err_set(err, errlen, "UFFDIO_API: %s", strerror(-ret));
		close(fd);
		return ret;
	}
	fs->uffd = fd;
	return 0;
}

int fault_init(struct fault_service *fs, const struct guest_mem *mem, char *err,
	       size_t errlen)
{
	int ret;

	memset(fs, 0, sizeof(*fs));
	fs->uffd = -1;
	fs->stop_efd = -1;
	if (!mem || !mem->base || !mem->state[MEM_PS_PRESENT].words) {
		err_set(err, errlen, "fault: guest memory not created");
		return -EINVAL;
	}
	ret = fault_open(fs, err, errlen);
	if (ret)
		return ret;
	fs->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fs->stop_efd < 0) {
		ret = -errno;
		err_set(err, errlen, "eventfd: %s", strerror(-ret));
		goto fail;
	}
	ret = -pthread_mutex_init(&fs->lock, NULL);
	if (ret) {
		err_set(err, errlen, "pthread_mutex_init: %s",
			  strerror(-ret));
		goto fail;
	}
	fs->mem = mem;
	return 0;
fail:
	if (fs->stop_efd >= 0)
		close(fs->stop_efd);
	close(fs->uffd);
	fs->uffd = -1;
	fs->stop_efd = -1;
	return ret;
}

const struct fault_range *fault_find_range(const struct fault_service *fs,
					   uint64_t gpa)
{
	for (int i = 0; i < fs->nr_ranges; i++) {
		const struct fault_range *r = &fs->ranges[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return r;
	}
	return NULL;
}

static int fault_check_range(const struct fault_service *fs,
			     const struct fault_range *r, char *err,
			     size_t errlen)
{
	if ((unsigned int)r->resolver >= FAULT_RESOLVER_MAX) {
		err_set(err, errlen, "fault: bad resolver %d", r->resolver);
		return -EINVAL;
	}
	if (!r->size || (r->gpa | r->size) % FAULT_PAGE) {
		err_set(err, errlen,
			  "fault: range 0x%llx+0x%llx is empty or not page "
			  "aligned",
			  (unsigned long long)r->gpa,
			  (unsigned long long)r->size);
		return -EINVAL;
	}
	if (!mem_gpa_to_hva(fs->mem, r->gpa, r->size)) {
		err_set(err, errlen,
			  "fault: range 0x%llx+0x%llx is not inside one RAM "
			  "region",
			  (unsigned long long)r->gpa,
			  (unsigned long long)r->size);
		return -EINVAL;
	}
	if (r->resolver == FAULT_FILE && r->file_fd < 0) {
		err_set(err, errlen, "fault: file range without a file");
		return -EBADF;
	}
	return 0;
}

static bool fault_overlaps(const struct fault_service *fs,
			   const struct fault_range *r)
{
	for (int i = 0; i < fs->nr_ranges; i++) {
		const struct fault_range *o = &fs->ranges[i];

		if (r->gpa < o->gpa + o->size && o->gpa < r->gpa + r->size)
			return true;
	}
	return false;
}

static int fault_uffd_register(struct fault_service *fs,
			       const struct fault_range *r, char *err,
			       size_t errlen)
{
	const uint64_t need =
		(1ULL << _UFFDIO_COPY) | (1ULL << _UFFDIO_ZEROPAGE);
	struct uffdio_register reg = {
		.range.start = (uint64_t)(uintptr_t)mem_gpa_to_hva(
			fs->mem, r->gpa, r->size),
		.range.len = r->size,
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	if (ioctl(fs->uffd, UFFDIO_REGISTER, &reg) < 0) {
		int ret = -errno;

		err_set(err, errlen, "UFFDIO_REGISTER: %s", strerror(-ret));
		return ret;
	}
	if ((reg.ioctls & need) != need) {
		ioctl(fs->uffd, UFFDIO_UNREGISTER, &reg.range);
		err_set(err, errlen,
			  "UFFDIO_REGISTER: no UFFDIO_COPY/ZEROPAGE on guest "
			  "RAM (ioctls 0x%llx)",
			  (unsigned long long)reg.ioctls);
		return -EOPNOTSUPP;
	}
	return 0;
}

int fault_register(struct fault_service *fs, const struct fault_range *r,
		   char *err, size_t errlen)
{
	int ret;

	if (fs->uffd < 0 || !fs->mem) {
		err_set(err, errlen, "fault: service not initialised");
		return -EBADF;
	}
	if (fs->running) {
		err_set(err, errlen, "fault: register before fault_start");
		return -EBUSY;
	}
	ret = fault_check_range(fs, r, err, errlen);
	if (ret)
		return ret;
	if (fs->nr_ranges == FAULT_MAX_RANGES) {
		err_set(err, errlen, "fault: more than %d ranges",
			  FAULT_MAX_RANGES);
		return -ENOSPC;
	}
	if (fault_overlaps(fs, r)) {
		err_set(err, errlen, "fault: range 0x%llx+0x%llx overlaps",
			  (unsigned long long)r->gpa,
			  (unsigned long long)r->size);
		return -EEXIST;
	}
	ret = fault_uffd_register(fs, r, err, errlen);
	if (ret)
		return ret;
	fs->ranges[fs->nr_ranges++] = *r;
	return 0;
}

void fault_set_hooks(struct fault_service *fs, fault_fetch_fn fetch,
		     fault_stall_fn on_stall, void *opaque, uint64_t stall_ns)
{
	fs->fetch = fetch;
	fs->on_stall = on_stall;
	fs->opaque = opaque;
	fs->stall_ns = stall_ns;
}

/* ---- uffd ioctls ------------------------------------------------------- */

int fault_wake(struct fault_service *fs, uint64_t hva)
{
	struct uffdio_range range = {.start = hva, .len = FAULT_PAGE};

	int ret;

	if (ioctl(fs->uffd, UFFDIO_WAKE, &range) == 0)
		return 0;
	ret = -errno;
	fault_count_error(fs);
	return ret;
}

/* See fault_int.h. */
int fault_fill_run(struct fault_service *fs, uint64_t hva, const void *src,
		   uint64_t len, uint64_t *done)
{
	struct uffdio_copy copy = {
		.dst = hva,
		.src = (uint64_t)(uintptr_t)src,
		.len = len,
	};
	struct uffdio_zeropage zero = {
		.range = {.start = hva, .len = len},
	};
	int64_t got;
	int ret;

	if (src)
		ret = ioctl(fs->uffd, UFFDIO_COPY, &copy);
	else
		ret = ioctl(fs->uffd, UFFDIO_ZEROPAGE, &zero);
	if (!ret) {
		*done = len;
		return 0;
	}
	ret = -errno;
	/* Partial: the bytes placed (and woken) come back, with -EAGAIN. */
	got = src ? copy.copy : zero.zeropage;
	*done = got > 0 ? (uint64_t)got : 0;
	return ret;
}

int fault_fill(struct fault_service *fs, uint64_t hva, const void *src)
{
	int ret, tries = 0;
	uint64_t done;

	do {
		ret = fault_fill_run(fs, hva, src, FAULT_PAGE, &done);
	} while ((ret == -EAGAIN || ret == -EINTR) &&
		 ++tries < FAULT_EAGAIN_TRIES);
	if (ret != -EEXIST)
		return ret;
	fault_wake(fs, hva);
	return 1;
}

void fault_uffd_close(struct fault_service *fs)
{
	if (fs->uffd >= 0) {
		for (int i = 0; i < fs->nr_ranges; i++) {
			const struct fault_range *r = &fs->ranges[i];
			struct uffdio_range range = {
				.start = (uint64_t)(uintptr_t)mem_gpa_to_hva(
					fs->mem, r->gpa, r->size),
				.len = r->size,
			};

			ioctl(fs->uffd, UFFDIO_UNREGISTER, &range);
		}
		close(fs->uffd);
		fs->uffd = -1;
	}
	if (fs->stop_efd >= 0) {
		close(fs->stop_efd);
		fs->stop_efd = -1;
	}
}
