/* SPDX-License-Identifier: MIT */
/*
 * snap_read.c - open and check a snapshot file, its state as a
 * vm_snapshot, the eager load of its RAM, and storing a loading set
 * (snapfile.h). The file is checked whole before anything in it is used.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/fileio.h"
#include "migration/hello.h"
#include "migration/sections.h"
#include "migration/snapfile.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

#define SNAP_EAGER_RUN (64ULL << 20) /* the eager load's largest read */

static int snap_read_part(struct snap_file *f, void **out, uint64_t len,
			  uint64_t off, const char *what, char *err,
			  size_t errlen)
{
	int r;

	*out = malloc(len ? len : 1);
	if (!*out) {
		err_set(err, errlen, "snapshot %s: %s: %s", f->path, what,
			strerror(ENOMEM));
		return -ENOMEM;
	}
	r = file_pread_all(f->fd, *out, len, off);
	if (r)
		err_set(err, errlen, "snapshot %s: reading its %s: %s", f->path,
			what, strerror(-r));
	return r;
}

static int snap_read_header(struct snap_file *f, char *err, size_t errlen)
{
	uint8_t buf[SNAPF_HDR_SIZE];
	struct stat st;
	char why[200];
	int r;

	if (fstat(f->fd, &st) < 0) {
		r = -errno;
		err_set(err, errlen, "snapshot %s: %s", f->path, strerror(-r));
		return r;
	}
	memset(buf, 0, sizeof(buf));
	r = (uint64_t)st.st_size >= sizeof(buf)
		    ? file_pread_all(f->fd, buf, sizeof(buf), 0)
		    : 0;
	if (!r && snapf_hdr_decode(buf,
				   (size_t)st.st_size < sizeof(buf)
					   ? (size_t)st.st_size
					   : sizeof(buf),
				   &f->h, why, sizeof(why)))
		r = -EPROTO;
	if (r) {
		err_set(err, errlen, "snapshot %s: %s", f->path,
			r == -EPROTO ? why : strerror(-r));
		return r;
	}
	if ((uint64_t)st.st_size < f->h.file_size) {
		err_set(err, errlen,
			"snapshot %s: truncated: %llu bytes, its header says "
			"%llu",
			f->path, (unsigned long long)st.st_size,
			(unsigned long long)f->h.file_size);
		return -EPROTO;
	}
	return 0;
}

/* The state: a HELLO, STATE frames, STATE_END, each frame's CRC checked. */
static int snap_check_state(struct snap_file *f, char *err, size_t errlen)
{
	const uint8_t *p = f->state;
	uint64_t left = f->h.state_len;
	struct proto_hdr h;
	char why[200];
	bool hello = false;
	int n;

	while (left) {
		n = proto_frame_decode(p, left, &h, why, sizeof(why));
		if (n < 0)
			break;
		if (!hello &&
		    (h.type != PROTO_HELLO ||
		     proto_hello_decode(p + PROTO_HDR_SIZE, h.len, &f->hello,
					why, sizeof(why)))) {
			n = -EPROTO;
			break;
		}
		hello = true;
		p += n;
		left -= (uint64_t)n;
		if (h.type == PROTO_STATE_END)
			return left ? -EPROTO : 0;
	}
	err_set(err, errlen, "snapshot %s: its machine state is corrupt (%s)",
		f->path, n < 0 ? why : "no STATE_END");
	return -EPROTO;
}

static uint32_t snap_meta_crc(const struct snap_file *f)
{
	uint32_t crc = proto_crc32c(0, f->state, f->h.state_len);

	crc = proto_crc32c(crc, f->map, f->h.map_len);
	return proto_crc32c(crc, f->ws, f->h.ws_pages * 8);
}

int snap_file_open(struct snap_file *f, const char *path, char *err,
		   size_t errlen)
{
	int r;

	memset(f, 0, sizeof(*f));
	snprintf(f->path, sizeof(f->path), "%s", path);
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0) {
		r = -errno;
		err_set(err, errlen, "snapshot %s: %s", path, strerror(-r));
		return r;
	}
	r = snap_read_header(f, err, errlen);
	if (!r)
		r = snap_read_part(f, (void **)&f->state, f->h.state_len,
				   f->h.state_off, "state", err, errlen);
	if (!r)
		r = snap_read_part(f, (void **)&f->map, f->h.map_len,
				   f->h.map_off, "page map", err, errlen);
	if (!r)
		r = snap_read_part(f, (void **)&f->ws, f->h.ws_pages * 8,
				   f->h.ws_off, "loading set", err, errlen);
	if (!r && snap_meta_crc(f) != f->h.meta_crc) {
		err_set(err, errlen,
			"snapshot %s: checksum mismatch in its state, page map "
			"or loading set (corrupt)",
			path);
		r = -EPROTO;
	}
	if (!r)
		r = snap_check_state(f, err, errlen);
	if (r)
		snap_file_close(f);
	return r;
}

void snap_file_close(struct snap_file *f)
{
	if (f->fd > 0)
		close(f->fd);
	f->fd = -1;
	free(f->state);
	free(f->map);
	free(f->ws);
	f->state = NULL;
	f->map = NULL;
	f->ws = NULL;
}

int snap_file_check_vm(const struct snap_file *f, struct vm *vm, char *err,
		       size_t errlen)
{
	static struct proto_hello local; /* big: the VM owner's thread only */
	char why[256];

	mig_hello_local(vm, 0, &local);
	if (!proto_hello_compare(&local, &f->hello, why, sizeof(why)))
		return 0;
	err_set(err, errlen, "snapshot %s does not fit this VM: %s", f->path,
		why);
	return -EPROTO;
}

int snap_file_state(const struct snap_file *f, struct vm *vm,
		    struct vm_snapshot *s, char *err, size_t errlen)
{
	const uint8_t *p = f->state;
	uint64_t left = f->h.state_len;
	struct proto_state ps;
	struct proto_hdr h;
	int n, r = 0;

	while (!r && left) {
		n = proto_frame_decode(p, left, &h, err, errlen);
		if (n < 0)
			return n;
		if (h.type == PROTO_STATE) {
			r = proto_state_decode(p + PROTO_HDR_SIZE, h.len, &ps,
					       err, errlen);
			if (!r)
				r = mig_sections_add(vm, s, &ps, err, errlen);
		}
		p += n;
		left -= (uint64_t)n;
	}
	return r;
}

/* The run of data pages from *page (at most SNAP_EAGER_RUN bytes). */
static uint64_t snap_next_run(const struct bitmap *map, uint64_t *page)
{
	uint64_t p = bitmap_next_set(map, *page), n = 0;

	while (p + n < map->nbits && bitmap_test(map, p + n) &&
	       n < SNAP_EAGER_RUN / PAGE_SIZE)
		n++;
	*page = p;
	return n;
}

/*
 * len bytes from the file at off into the memfd at moff, in kernel
 * (sendfile: page cache to shmem, no user copy, and no fault and zeroing
 * of each page as a read into the mapping would cost). No vCPU runs.
 */
static int snap_copy_run(int fd, uint64_t off, int memfd, uint64_t moff,
			 uint64_t len)
{
	off_t in = (off_t)off;

	if (lseek(memfd, (off_t)moff, SEEK_SET) < 0)
		return -errno;
	while (len) {
		ssize_t n = sendfile(memfd, fd, &in, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		len -= (uint64_t)n;
	}
	return 0;
}

int snap_file_load_eager(const struct snap_file *f, struct vm *vm, char *err,
			 size_t errlen)
{
	struct guest_mem *m = &vm->mem;
	struct bitmap map = {.words = f->map, .nbits = m->nr_pages};
	uint64_t page = 0, n;
	int r = 0;

	while (!r && (n = snap_next_run(&map, &page))) {
		r = snap_copy_run(f->fd, f->h.ram_off + page * PAGE_SIZE,
				  m->memfd, page * PAGE_SIZE, n * PAGE_SIZE);
		page += n;
	}
	if (r)
		err_set(err, errlen,
			"snapshot %s: reading RAM at page %llu: "
			"%s",
			f->path, (unsigned long long)page, strerror(-r));
	return r;
}

/* Write f's header as h says (meta_crc over state, map and list), fsync. */
static int snap_ws_header(struct snap_file *f, int fd, const uint64_t *list)
{
	uint8_t buf[SNAPF_HDR_SIZE];
	uint32_t crc = proto_crc32c(0, f->state, f->h.state_len);
	int r;

	crc = proto_crc32c(crc, f->map, f->h.map_len);
	f->h.meta_crc = proto_crc32c(crc, list, f->h.ws_pages * 8);
	snapf_hdr_encode(buf, &f->h);
	r = file_pwrite_all(fd, buf, sizeof(buf), 0);
	if (!r && fdatasync(fd) < 0)
		r = -errno;
	return r;
}

/* The set's list and its pages' data (from RAM in this file) after it. */
static int snap_ws_data(struct snap_file *f, int fd, const uint64_t *pages,
			uint64_t n)
{
	struct bitmap map = {.words = f->map, .nbits = f->h.nr_pages};
	uint64_t off = snapf_ws_data_off(&f->h);
	uint8_t *page = malloc(PAGE_SIZE);
	int r = page ? file_pwrite_all(fd, pages, n * 8, f->h.ws_off) : -ENOMEM;

	for (uint64_t i = 0; !r && i < n; i++) {
		if (pages[i] >= f->h.nr_pages)
			r = -EINVAL;
		else if (!bitmap_test(&map, pages[i]))
			memset(page, 0, PAGE_SIZE);
		else
			r = file_pread_all(f->fd, page, PAGE_SIZE,
					   f->h.ram_off + pages[i] * PAGE_SIZE);
		if (!r)
			r = file_pwrite_all(fd, page, PAGE_SIZE,
					    off + i * PAGE_SIZE);
	}
	free(page);
	if (!r && ftruncate(fd, (off_t)f->h.file_size) < 0)
		r = -errno;
	if (!r && fdatasync(fd) < 0)
		r = -errno;
	return r;
}

int snap_file_store_ws(const char *path, uint64_t id, const uint64_t *pages,
		       uint64_t n, char *err, size_t errlen)
{
	struct snap_file f;
	int fd, r = snap_file_open(&f, path, err, errlen);

	if (r)
		return r;
	if (f.h.id != id) {
		err_set(err, errlen,
			"snapshot %s is not the one this VM was restored from",
			path);
		snap_file_close(&f);
		return -EINVAL;
	}
	fd = open(path, O_RDWR | O_CLOEXEC);
	r = fd < 0 ? -errno : 0;
	/* First a valid file without a set, then the set, then its header. */
	snapf_layout_ws(&f.h, 0);
	if (!r)
		r = snap_ws_header(&f, fd, NULL);
	if (!r && ftruncate(fd, (off_t)f.h.file_size) < 0)
		r = -errno;
	snapf_layout_ws(&f.h, n);
	if (!r)
		r = snap_ws_data(&f, fd, pages, n);
	if (!r)
		r = snap_ws_header(&f, fd, pages);
	if (r)
		err_set(err, errlen, "snapshot %s: storing the loading set: %s",
			path, strerror(-r));
	if (fd >= 0)
		close(fd);
	snap_file_close(&f);
	return r;
}
