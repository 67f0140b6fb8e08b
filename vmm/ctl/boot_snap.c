/* SPDX-License-Identifier: MIT */
/*
 * boot_snap.c - snapshots on a booted VMM's control socket, and the
 * restore a `vmmctl boot --restore` starts with (migration/snapfile.h,
 * docs/snapshot.md): the snapshot command (write a file, or store the
 * working set this VM recorded into the file it was restored from), and
 * the restore's figures for status and stats. Event-loop thread; the
 * loop is busy while a snapshot is written (control requests wait).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "vmm/ctl/boot_app.h"

/* A migration or a lazy restore's loading owns RAM or the dirty log. */
static const char *boot_snap_busy(struct boot_app *app)
{
	struct lazy_src_stats ls;

	if (app->mig_src) {
		enum mig_state s = mig_source_stats(app->mig_src)->state;

		if (s != MIG_FAILED && s != MIG_CANCELLED)
			return "a migration is running";
	}
	if (app->mig_dest &&
	    (mig_dest_stats(app->mig_dest)->state != MIG_RUNNING ||
	     atomic_load(&app->vm.ram_incomplete)))
		return "an incoming migration has not completed";
	if (app->restore && app->restore->ls_ready) {
		lazy_src_get_stats(&app->restore->ls, &ls);
		if (!ls.loader_done)
			return "the lazy restore is still loading RAM from its "
			       "file: try again when status shows "
			       "restore.loaded";
	}
	return NULL;
}

/* Called with the VM paused, just after its state was taken. */
static void boot_snap_at_pause(void *opaque)
{
	struct boot_app *app = opaque;
	struct testdev_stats st;

	testdev_get_stats(&app->vm.testdev, &st);
	app->snap_hb_seq = st.last_seq;
}

static json_t *boot_snap_result(const struct snap_save_result *r,
				uint64_t hb_seq)
{
	char id[20];

	snprintf(id, sizeof(id), "%016llx", (unsigned long long)r->id);
	return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			 "id", id, "file_bytes", (json_int_t)r->file_bytes,
			 "disk_bytes", (json_int_t)r->disk_bytes, "data_pages",
			 (json_int_t)r->data_pages, "zero_pages",
			 (json_int_t)r->zero_pages, "written_pages",
			 (json_int_t)r->written_pages, "rounds",
			 (json_int_t)r->rounds, "total_us",
			 (json_int_t)r->total_us, "downtime_us",
			 (json_int_t)r->downtime_us, "heartbeat_seq",
			 (json_int_t)hb_seq);
}

static int boot_snap_ws(struct boot_app *app, const char *path, json_t **result,
			struct ctl_error *err)
{
	char why[512];
	uint64_t n = 0;
	int r;

	if (!app->restore)
		return boot_fail(err, CTL_ERR_BAD_STATE,
				 "this VM was not restored from a snapshot "
				 "(boot --restore FILE --mem-mode lazy "
				 "--record-ws MS)");
	r = snap_restore_store_ws(app->restore, path, &n, why, sizeof(why));
	if (r)
		return boot_fail(err,
				 r == -EBUSY || r == -ENOENT || r == -EINVAL
					 ? CTL_ERR_BAD_STATE
					 : CTL_ERR_INTERNAL,
				 why);
	*result =
		json_pack("{s:s, s:I, s:I}", "ws", path, "pages", (json_int_t)n,
			  "bytes", (json_int_t)(n * PAGE_SIZE));
	return 0;
}

int boot_snapshot(struct boot_app *app, const struct ctl_request *req,
		  json_t **result, struct ctl_error *err)
{
	struct snap_save_params p = {
		.path = req->snap.to,
		.live = req->snap.live,
		.at_pause = boot_snap_at_pause,
		.opaque = app,
	};
	struct snap_save_result res;
	const char *busy;
	char why[512];

	if (req->snap.ws)
		return boot_snap_ws(app, req->snap.ws, result, err);
	busy = boot_snap_busy(app);
	if (busy)
		return boot_fail(err, CTL_ERR_BAD_STATE, busy);
	if (snap_save(&app->vm, &p, &res, why, sizeof(why)))
		return boot_fail(err, CTL_ERR_INTERNAL, why);
	*result = boot_snap_result(&res, app->snap_hb_seq);
	return 0;
}

/* status/stats "restore": how the VM came from its file, and the loading. */
json_t *boot_restore_json(struct boot_app *app)
{
	struct snap_restore *sr = app->restore;
	struct lazy_src_stats ls;
	char id[20];
	json_t *o;

	if (!sr)
		return NULL;
	snprintf(id, sizeof(id), "%016llx", (unsigned long long)sr->f.h.id);
	o = json_pack(
		"{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "file", sr->f.path,
		"id", id, "guest", snapf_guest_name(sr->f.h.guest), "mem_mode",
		sr->lazy ? "lazy" : "eager", "ws_mode",
		sr->ws_race ? "race" : "before", "restore_us",
		(json_int_t)sr->restore_us, "set_pages",
		(json_int_t)sr->set_pages, "set_us", (json_int_t)sr->set_us);
	if (!o || !sr->ls_ready)
		return o;
	lazy_src_get_stats(&sr->ls, &ls);
	json_object_update_new(
		o, json_pack("{s:I, s:I, s:I, s:I, s:I, s:b, s:I, s:I, s:I, "
			     "s:b, s:I}",
			     "demand_pages", (json_int_t)ls.demand_pages,
			     "demand_zero", (json_int_t)ls.demand_zero,
			     "loader_pages", (json_int_t)ls.loader_pages,
			     "data_pages", (json_int_t)ls.data_pages, "errors",
			     (json_int_t)ls.errors, "loaded", ls.loader_done,
			     "loader_ms", (json_int_t)ls.loader_ms,
			     "set_placed", (json_int_t)ls.set_pages, "set_ms",
			     (json_int_t)ls.set_ms, "recording", ls.recording,
			     "recorded", (json_int_t)ls.recorded));
	return o;
}

/* Fault thread: a lazy restore's fault waits too long (vm.h events). */
static void boot_restore_stalled(void *opaque, uint64_t gpa, uint64_t waited_ns,
				 pid_t tid)
{
	struct vm *vm = opaque;

	(void)tid;
	if (vm->on_event)
		vm->on_event(vm->cb_opaque, "fault-stalled", gpa, waited_ns);
}

/* --restore: the VM was created incoming with the user's flags. */
int boot_restore_start(struct boot_app *app, const char *path, bool lazy,
		       uint64_t record_ms, bool ws_race, char *err,
		       size_t errlen)
{
	struct snap_restore_params p = {
		.path = path,
		.lazy = lazy,
		.record_ms = record_ms,
		.ws_race = ws_race,
		.on_stall = boot_restore_stalled,
		.opaque = &app->vm,
		.stall_ns = app->vm.cfg.fault_stall_ms * 1000000ULL,
	};

	app->restore = calloc(1, sizeof(*app->restore));
	if (!app->restore) {
		snprintf(err, errlen, "restore: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	return snap_restore_start(app->restore, &app->vm, &p, err, errlen);
}

void boot_restore_stop(struct boot_app *app)
{
	if (app->restore)
		snap_restore_stop(app->restore);
}

void boot_restore_free(struct boot_app *app)
{
	if (!app->restore)
		return;
	snap_restore_free(app->restore);
	free(app->restore);
	app->restore = NULL;
}
