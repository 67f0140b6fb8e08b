/* SPDX-License-Identifier: MIT */
/*
 * snap_restore.c - start a VM from a snapshot file (snapfile.h). Eager:
 * every data page is read into RAM, then the state goes in and the vCPUs
 * start. Lazy: RAM is registered with the fault service with the file as
 * its source (ept/lazysrc.h) before the state goes in (KVM may write guest
 * pages while it is restored: those pages come from the file first), the
 * loading set, if the file has one, is placed with large reads (before
 * the vCPUs start, or by the loader first, racing the guest), the vCPUs
 * start, and the loader fills the rest in file order.
 *
 * Event-loop thread; the fault and loader threads are lazysrc's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "migration/snapfile.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

static int snap_restore_lazy(struct snap_restore *sr, struct vm *vm,
			     const struct snap_restore_params *p, char *err,
			     size_t errlen)
{
	struct snap_file *f = &sr->f;
	uint64_t t0;
	int r;

	r = lazy_src_init(&sr->ls, &vm->mem, f->fd, f->h.ram_off, f->map, err,
			  errlen);
	if (r)
		return r;
	sr->ls_ready = true;
	lazy_src_record(&sr->ls, p->record_ms);
	r = lazy_src_attach(&sr->ls, &vm->faults, p->on_stall, p->opaque,
			    p->stall_ns, err, errlen);
	/* A recording wants every first touch: the old set is not placed. */
	if (r || !f->h.ws_pages || p->record_ms)
		return r;
	sr->set_pages = f->h.ws_pages;
	if (p->ws_race) {
		lazy_src_race_set(&sr->ls, f->ws, f->h.ws_pages,
				  snapf_ws_data_off(&f->h));
		return 0;
	}
	t0 = clock_now_ns();
	r = lazy_src_place_set(&sr->ls, f->ws, f->h.ws_pages,
			       snapf_ws_data_off(&f->h), err, errlen);
	sr->set_us = (clock_now_ns() - t0) / 1000;
	return r;
}

static int snap_restore_state(struct snap_restore *sr, struct vm *vm, char *err,
			      size_t errlen)
{
	struct vm_snapshot s;
	char why[256];
	int r;

	vm_snapshot_init(&s);
	r = snap_file_state(&sr->f, vm, &s, why, sizeof(why));
	if (!r)
		r = vm_snapshot_apply(vm, &s, why, sizeof(why));
	vm_snapshot_free(&s);
	if (r)
		err_set(err, errlen, "snapshot %s: restoring the VM: %s",
			sr->f.path, why);
	return r;
}

int snap_restore_start(struct snap_restore *sr, struct vm *vm,
		       const struct snap_restore_params *p, char *err,
		       size_t errlen)
{
	uint64_t t0 = clock_now_ns();
	char why[256];
	int r;

	memset(sr, 0, sizeof(*sr));
	sr->lazy = p->lazy;
	sr->ws_race = p->ws_race;
	r = snap_file_open(&sr->f, p->path, err, errlen);
	if (!r)
		r = snap_file_check_vm(&sr->f, vm, err, errlen);
	if (!r)
		r = p->lazy ? snap_restore_lazy(sr, vm, p, err, errlen)
			    : snap_file_load_eager(&sr->f, vm, err, errlen);
	if (!r)
		r = snap_restore_state(sr, vm, err, errlen);
	if (r)
		return r;
	r = vm_start(vm, why, sizeof(why));
	if (r) {
		err_set(err, errlen, "starting the vCPUs: %s", why);
		return r;
	}
	/* The devices came in reset: a DMA driver re-registers on RESUME. */
	vm_devs_resume(vm);
	sr->restore_us = (clock_now_ns() - t0) / 1000;
	return p->lazy ? lazy_src_loader_start(&sr->ls, err, errlen) : 0;
}

void snap_restore_stop(struct snap_restore *sr)
{
	if (sr->ls_ready)
		lazy_src_stop(&sr->ls);
}

void snap_restore_free(struct snap_restore *sr)
{
	if (sr->ls_ready)
		lazy_src_free(&sr->ls);
	sr->ls_ready = false;
	snap_file_close(&sr->f);
}

int snap_restore_store_ws(struct snap_restore *sr, const char *path,
			  uint64_t *pages_out, char *err, size_t errlen)
{
	uint64_t *pages = NULL, n = 0;
	int r;

	if (!sr->ls_ready) {
		err_set(err, errlen,
			"this VM was not restored lazily with "
			"--record-ws");
		return -EINVAL;
	}
	r = lazy_src_recorded(&sr->ls, &pages, &n);
	if (r == -EBUSY)
		err_set(err, errlen,
			"the working set is still being recorded "
			"(--record-ws): try again when it ends");
	else if (r == -ENOENT)
		err_set(err, errlen,
			"no working set was recorded (boot "
			"--restore with --record-ws MS)");
	else if (r)
		err_set(err, errlen, "working set: %s", strerror(-r));
	if (!r)
		r = snap_file_store_ws(path, sr->f.h.id, pages, n, err, errlen);
	free(pages);
	*pages_out = n;
	return r;
}
