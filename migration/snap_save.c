/* SPDX-License-Identifier: MIT */
/*
 * snap_save.c - write a snapshot file (snapfile.h, docs/snapshot.md).
 *
 * RAM goes first, page i at its fixed offset; a zero page (never touched,
 * or all zeros) is not written, so it stays a hole of the sparse file.
 * Without --live the VM is paused for the whole write. With --live it
 * runs while RAM is written in dirty-tracking rounds, as pre-copy does: a
 * round writes what the previous one found dirty (a page that became zero
 * since it was written is punched out again), until a round is small
 * enough or stops shrinking; then the VM pauses for the last dirty set and
 * its state, and runs on while the file is finished. The file is written
 * under a temporary name, fsynced and renamed over the path: a failed or
 * partial write never leaves a file that restores.
 *
 * Event-loop thread (it pauses and resumes the VM); it owns the dirty log
 * while a --live snapshot runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/fileio.h"
#include "ept/ram_io.h"
#include "migration/hello.h"
#include "migration/sections.h"
#include "migration/snapfile.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

#define SNAP_LIVE_ROUNDS_MAX 16
#define SNAP_LIVE_LAST_PAGES 512 /* 2 MiB: small enough to pause for */

struct snap_writer {
	struct vm *vm;
	int fd;
	char tmp[300];
	struct snapf_hdr h;
	struct bitmap map;  /* pages whose data is in the file */
	struct bitmap todo; /* pages to (re)write this round */
	uint64_t written, zero;
	bool log_on; /* --live: we turned dirty logging on */
};

static bool snap_page_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;

	for (unsigned int i = 0; i < PAGE_SIZE / 8; i++)
		if (w[i])
			return false;
	return true;
}

/* A page that became zero after it was written: make it a hole again. */
static int snap_punch(struct snap_writer *w, uint64_t page)
{
	if (!bitmap_test_and_clear(&w->map, page))
		return 0;
	if (fallocate(w->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)(w->h.ram_off + page * PAGE_SIZE), PAGE_SIZE) < 0)
		return -errno;
	return 0;
}

/*
 * Write the pages of todo (clearing it): runs of non-zero pages in one
 * pwrite each, straight from the memfd's mapping (page i is at base + i
 * pages); zero pages skipped or punched.
 */
static int snap_write_todo(struct snap_writer *w)
{
	struct guest_mem *m = &w->vm->mem;
	uint64_t p = bitmap_next_set(&w->todo, 0), n;
	int r = 0;

	while (!r && p < m->nr_pages) {
		n = 0;
		while (p + n < m->nr_pages && bitmap_test(&w->todo, p + n) &&
		       !snap_page_zero(m->base + (p + n) * PAGE_SIZE)) {
			bitmap_set(&w->map, p + n);
			n++;
		}
		if (n)
			r = file_pwrite_all(w->fd, m->base + p * PAGE_SIZE,
					    n * PAGE_SIZE,
					    w->h.ram_off + p * PAGE_SIZE);
		else {
			w->zero++;
			r = snap_punch(w, p);
			n = 1;
		}
		w->written += n;
		p = bitmap_next_set(&w->todo, p + n);
	}
	bitmap_zero(&w->todo);
	return r;
}

/* The machine state: HELLO, a STATE frame per section, STATE_END. */
static int snap_encode_state(struct vm *vm, const struct vm_snapshot *s,
			     uint8_t **out, uint64_t *len)
{
	static struct proto_hello hello; /* big: event-loop thread only */
	size_t cap = PROTO_HELLO_MAX_FRAME + mig_sections_size(s);
	uint8_t *buf = malloc(cap);
	int n, m = 0;

	if (!buf)
		return -ENOMEM;
	mig_hello_local(vm, 0, &hello);
	n = proto_hello_encode(buf, cap, &hello);
	if (n >= 0)
		m = mig_sections_encode(s, buf + n, cap - (size_t)n);
	if (n < 0 || m < 0) {
		free(buf);
		return n < 0 ? n : m;
	}
	*out = buf;
	*len = (uint64_t)n + (uint64_t)m;
	return 0;
}

uint32_t snap_guest_kind(const struct vm *vm)
{
	if (vm->multiboot)
		return SNAPF_GUEST_MULTIBOOT;
	return vm->lx.kind != LINUX_NONE ? SNAPF_GUEST_LINUX : SNAPF_GUEST_ELF;
}

/* Take the paused VM's state into the header and the state buffer. */
static int snap_take_state(struct snap_writer *w,
			   const struct snap_save_params *p, uint8_t **state,
			   char *err, size_t errlen)
{
	struct vm_snapshot s;
	struct timespec ts;
	int r;

	vm_snapshot_init(&s);
	r = vm_snapshot_take(w->vm, &s, err, errlen);
	if (r)
		return r;
	if (p->at_pause)
		p->at_pause(p->opaque);
	r = snap_encode_state(w->vm, &s, state, &w->h.state_len);
	vm_snapshot_free(&s);
	if (r) {
		err_set(err, errlen, "encoding the machine state: %s",
			strerror(-r));
		return r;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	w->h.created_ns =
		(uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	return 0;
}

/* State, map, size, header; fsync; rename over the path; fsync the dir. */
static int snap_finish(struct snap_writer *w, const char *path,
		       const uint8_t *state)
{
	uint8_t hdr[SNAPF_HDR_SIZE];
	char dir[300];
	int r, dfd;

	if (snapf_layout(&w->h))
		return -EINVAL;
	w->h.meta_crc = proto_crc32c(proto_crc32c(0, state, w->h.state_len),
				     w->map.words, w->h.map_len);
	snapf_hdr_encode(hdr, &w->h);
	r = file_pwrite_all(w->fd, state, w->h.state_len, w->h.state_off);
	if (!r)
		r = file_pwrite_all(w->fd, w->map.words, w->h.map_len,
				    w->h.map_off);
	if (!r && ftruncate(w->fd, (off_t)w->h.file_size) < 0)
		r = -errno;
	if (!r)
		r = file_pwrite_all(w->fd, hdr, sizeof(hdr), 0);
	if (!r && fsync(w->fd) < 0)
		r = -errno;
	if (!r && rename(w->tmp, path) < 0)
		r = -errno;
	if (r)
		return r;
	snprintf(dir, sizeof(dir), "%s", path);
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		r = fsync(dfd) < 0 ? -errno : 0;
		close(dfd);
	}
	return r;
}

static int snap_writer_open(struct snap_writer *w, struct vm *vm,
			    const char *path, char *err, size_t errlen)
{
	memset(w, 0, sizeof(*w));
	w->vm = vm;
	w->fd = -1;
	snprintf(w->tmp, sizeof(w->tmp), "%s.tmp.XXXXXX", path);
	if (bitmap_init(&w->map, vm->mem.nr_pages) ||
	    bitmap_init(&w->todo, vm->mem.nr_pages)) {
		err_set(err, errlen, "snapshot: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	w->fd = mkostemp(w->tmp, O_CLOEXEC);
	if (w->fd < 0) {
		int r = -errno;

		err_set(err, errlen, "snapshot %s: creating %s: %s", path,
			w->tmp, strerror(-r));
		return r;
	}
	w->h.version = SNAPF_VERSION;
	w->h.mem_size = vm->mem.size;
	w->h.nr_vcpus = (uint32_t)vm->nr_vcpus;
	w->h.guest = snap_guest_kind(vm);
	if (getrandom(&w->h.id, sizeof(w->h.id), 0) != sizeof(w->h.id))
		w->h.id = clock_now_ns();
	w->h.state_len = 0;
	return snapf_layout(&w->h);
}

static void snap_writer_close(struct snap_writer *w, bool keep)
{
	if (w->fd >= 0) {
		close(w->fd);
		if (!keep)
			unlink(w->tmp);
	}
	bitmap_free(&w->map);
	bitmap_free(&w->todo);
}

/* Every page with memory behind it (a hole in the memfd is zero). */
static int snap_round0(struct snap_writer *w)
{
	int r = mem_resident(&w->vm->mem, &w->todo);

	return r ? r : snap_write_todo(w);
}

/* --live: rounds while the guest runs; returns with the log on. */
static int snap_live_rounds(struct snap_writer *w, struct snap_save_result *res,
			    char *err, size_t errlen)
{
	struct dirty_tracker *t = &w->vm->dirty;
	uint64_t last = UINT64_MAX, n;
	int r;

	if (t->active) {
		err_set(err, errlen,
			"dirty logging is in use (a migration, "
			"or dirty-log start)");
		return -EBUSY;
	}
	r = dirty_start(t, err, errlen);
	if (r)
		return r;
	w->log_on = true;
	dirty_forget(t);
	r = snap_round0(w);
	while (!r && res->rounds < SNAP_LIVE_ROUNDS_MAX) {
		r = dirty_harvest(t, NULL, err, errlen);
		if (r)
			return r;
		n = dirty_take(t, &w->todo);
		res->rounds++;
		if (n <= SNAP_LIVE_LAST_PAGES || n >= last)
			break; /* the rest with the VM paused */
		last = n;
		r = snap_write_todo(w);
	}
	if (r)
		err_set(err, errlen, "writing RAM: %s", strerror(-r));
	return r;
}

/* Paused: the last dirty pages (--live) or all RAM, then the state. */
static int snap_paused_part(struct snap_writer *w,
			    const struct snap_save_params *p, uint8_t **state,
			    char *err, size_t errlen)
{
	int r;

	if (p->live) {
		r = dirty_harvest(&w->vm->dirty, NULL, err, errlen);
		if (r)
			return r;
		dirty_take(&w->vm->dirty, &w->todo);
		r = snap_write_todo(w);
	} else {
		r = snap_round0(w);
	}
	if (r) {
		err_set(err, errlen, "writing RAM: %s", strerror(-r));
		return r;
	}
	return snap_take_state(w, p, state, err, errlen);
}

static void snap_result(struct snap_writer *w, const char *path,
			struct snap_save_result *res)
{
	struct stat st;

	res->id = w->h.id;
	res->data_pages = bitmap_count(&w->map);
	res->zero_pages = w->zero;
	res->written_pages = w->written;
	if (stat(path, &st) == 0) {
		res->file_bytes = (uint64_t)st.st_size;
		res->disk_bytes = (uint64_t)st.st_blocks * 512;
	}
}

int snap_save(struct vm *vm, const struct snap_save_params *p,
	      struct snap_save_result *res, char *err, size_t errlen)
{
	struct snap_writer w;
	uint64_t t0 = clock_now_ns(), tp = 0;
	uint8_t *state = NULL;
	bool paused = false;
	char why[256] = "";
	int r;

	memset(res, 0, sizeof(*res));
	if (vm_devs_nr_quiesce(vm)) {
		err_set(err, errlen,
			"snapshot %s: the VM has a DMA device (--device pt), "
			"which a snapshot does not quiesce yet",
			p->path);
		return -EOPNOTSUPP;
	}
	r = snap_writer_open(&w, vm, p->path, err, errlen);
	if (r)
		goto out;
	if (p->live)
		r = snap_live_rounds(&w, res, why, sizeof(why));
	if (!r) {
		tp = clock_now_ns();
		r = vm_pause(vm);
		paused = r == 0;
		if (r == -EALREADY)
			r = 0;
		if (r)
			snprintf(why, sizeof(why), "pausing the VM: %s",
				 strerror(-r));
	}
	if (!r)
		r = snap_paused_part(&w, p, &state, why, sizeof(why));
	if (p->live) {
		if (paused)
			vm_resume(vm);
		res->downtime_us = (clock_now_ns() - tp) / 1000;
		paused = false;
	}
	if (!r) {
		r = snap_finish(&w, p->path, state);
		if (r)
			snprintf(why, sizeof(why), "writing the file: %s",
				 strerror(-r));
	}
	if (paused) {
		vm_resume(vm);
		res->downtime_us = (clock_now_ns() - tp) / 1000;
	}
	if (r)
		err_set(err, errlen, "snapshot %s: %s", p->path, why);
	else
		snap_result(&w, p->path, res);
out:
	if (w.log_on)
		dirty_stop(&vm->dirty);
	snap_writer_close(&w, r == 0);
	free(state);
	res->total_us = (clock_now_ns() - t0) / 1000;
	return r;
}
