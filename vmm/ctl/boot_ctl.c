/* SPDX-License-Identifier: MIT */
/*
 * boot_ctl.c - what a booted VMM answers on its control socket: status,
 * pause/resume/stop, guest requests, statistics, dirty logging and page-
 * table walks; migrate is boot_mig.c's. Every handler runs on the
 * event-loop thread.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "ept/ptwalk.h"
#include "vmm/ctl/boot_app.h"
#include "vmm/vcpu.h"

static json_t *boot_markers_json(const struct testdev_stats *st)
{
	json_t *o = json_object();

	for (unsigned int id = 1; id < MARK_MAX; id++)
		json_object_set_new(o, testdev_marker_name(id),
				    json_integer(st->markers[id]));
	return o;
}

static json_t *boot_vcpus_json(struct vm *vm)
{
	json_t *a = json_array();

	for (int i = 0; i < vm->nr_vcpus; i++) {
		const struct vcpu_stats *s = &vm->vcpus[i].st;

		json_array_append_new(a,
				      json_pack("{s:i, s:I, s:I, s:I}", "id", i,
						"exits", (json_int_t)s->exits,
						"io", (json_int_t)s->io, "mmio",
						(json_int_t)s->mmio));
	}
	return a;
}

/*
 * Each device's status under its own key (devices/dev.h). While post-copy
 * RAM arrives a device that DMAs under its lock reports only what needs no
 * lock: a DMA that faults on a page still at the source waits for this
 * (the loop) thread to fetch it, so taking that lock here could wait for
 * ever.
 */
static void boot_devs_status(struct vm *vm, json_t *o)
{
	bool arriving = atomic_load(&vm->ram_incomplete);
	const struct dev *d;

	for (int i = 0; (d = vm_dev_at(vm, i)); i++) {
		struct dev_status st = {0};
		json_t *j;

		if (!d->ops->status)
			continue;
		d->ops->status(d->dev, arriving, &st);
		j = st.section ? ctl_dev_status(&st) : NULL;
		if (j)
			json_object_set_new(o, st.section, j);
	}
}

/*
 * An incoming post-copy: how many vCPUs wait on pages that have not come;
 * while its connections are broken the VM runs but is not whole, and the
 * state says so rather than "running".
 */
static void boot_status_waiting(json_t *o, json_t *mig, enum vm_state state)
{
	const char *ms = json_string_value(json_object_get(mig, "state"));
	json_t *w = json_object_get(mig, "faults_waiting");

	if (w)
		json_object_set(o, "waiting_vcpus", w);
	if (ms && !strcmp(ms, "postcopy-paused") && state == VM_RUNNING)
		json_object_set_new(o, "state", json_string(ms));
}

void boot_guest_event(struct boot_app *app, const char *name, json_t *data)
{
	uint64_t now = clock_now_ns() / 1000000000ULL;
	uint64_t was = atomic_load(&app->gev_second);

	if (was != now &&
	    atomic_compare_exchange_strong(&app->gev_second, &was, now))
		atomic_store(&app->gev_in_second, 0);
	if (atomic_fetch_add(&app->gev_in_second, 1) >=
	    BOOT_GUEST_EVENTS_PER_S) {
		atomic_fetch_add(&app->gev_dropped, 1);
		json_decref(data);
		return;
	}
	control_post_event(&app->ctl, name, data);
}

/* status/stats "events": what was not sent, and why. */
static json_t *boot_events_json(struct boot_app *app)
{
	return json_pack("{s:I, s:I, s:i, s:i}", "dropped_rate",
			 (json_int_t)atomic_load(&app->gev_dropped),
			 "dropped_queue",
			 (json_int_t)control_events_dropped(&app->ctl),
			 "guest_rate_limit_per_s", BOOT_GUEST_EVENTS_PER_S,
			 "queue_max", CONTROL_EVQ_MAX);
}

static json_t *boot_status(struct boot_app *app)
{
	struct vm *vm = &app->vm;
	json_t *mig = boot_mig_status_json(app);
	struct testdev_stats st;
	enum vm_state state;
	json_t *o;

	testdev_get_stats(&vm->testdev, &st);
	pthread_mutex_lock(&vm->lock);
	state = vm->state;
	pthread_mutex_unlock(&vm->lock);
	o = json_pack(
		"{s:s, s:i, s:I, s:s?, s:{s:I, s:I, s:I, s:I}, s:o, s:o, s:I}",
		"state", vm_state_name(state), "vcpus", vm->nr_vcpus,
		"mem_bytes", (json_int_t)vm->mem.size, "kernel", vm->cfg.kernel,
		"heartbeats", "count", (json_int_t)st.heartbeats, "last_seq",
		(json_int_t)st.last_seq, "last_ns", (json_int_t)st.last_ns,
		"seq_errors", (json_int_t)st.seq_errors, "markers",
		boot_markers_json(&st), "vcpu_stats", boot_vcpus_json(vm),
		"uptime_ms",
		(json_int_t)(vm->start_ns
				     ? (clock_now_ns() - vm->start_ns) / 1000000
				     : 0));
	if (o && mig)
		boot_status_waiting(o, mig, state);
	if (o && mig)
		json_object_set_new(o, "migration", mig);
	else
		json_decref(mig);
	if (o) {
		boot_devs_status(vm, o);
		json_object_set_new(o, "events", boot_events_json(app));
	}
	if (o && app->restore)
		json_object_set_new(o, "restore", boot_restore_json(app));
	return o;
}

int boot_fail(struct ctl_error *err, enum ctl_err code, const char *msg)
{
	err->code = code;
	snprintf(err->message, sizeof(err->message), "%s", msg);
	return -1;
}

static int boot_run_state_err(int r, struct ctl_error *err, const char *verb)
{
	char msg[128];

	if (r == -EALREADY)
		snprintf(msg, sizeof(msg), "the VM is already %s", verb);
	else if (r == -ESHUTDOWN)
		snprintf(msg, sizeof(msg), "the VM is stopping");
	else
		snprintf(msg, sizeof(msg), "could not stop every vCPU: %s",
			 strerror(-r));
	return boot_fail(err,
			 r == -ETIMEDOUT ? CTL_ERR_INTERNAL : CTL_ERR_BAD_STATE,
			 msg);
}

/*
 * resume, before GO (boot_guard.c refused it after): a VM the migration
 * paused (stop-copy, or post-copy before GO) would run while its final
 * state goes to the destination, so cancel the migration first; its
 * cancel resumes the guest.
 */
static int boot_resume(struct boot_app *app, struct ctl_error *err)
{
	bool cancelled = false;
	int r;

	if (app->mig_src && app->vm.state == VM_PAUSED)
		cancelled = mig_source_cancel(app->mig_src) == 0;
	r = vm_resume(&app->vm);
	if (r == -EALREADY && cancelled)
		return 0;
	return r ? boot_run_state_err(r, err, "running") : 0;
}

static json_t *boot_hist_json(const struct fault_class_stats *c)
{
	const struct fault_hist *h = &c->latency;

	return json_pack("{s:I, s:I, s:I, s:I, s:I}", "faults",
			 (json_int_t)c->faults, "p50_ns",
			 (json_int_t)fault_hist_percentile(h, 50), "p99_ns",
			 (json_int_t)fault_hist_percentile(h, 99), "max_ns",
			 (json_int_t)h->max_ns, "mean_ns",
			 (json_int_t)(h->count ? h->sum_ns / h->count : 0));
}

static json_t *boot_faults_json(struct vm *vm)
{
	struct fault_stats st;
	json_t *o;

	if (!vm->cfg.mem_lazy)
		return json_pack("{s:s}", "mem_mode", "eager");
	fault_get_stats(&vm->faults, &st);
	o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "mem_mode", "lazy",
		      "eexist", (json_int_t)st.eexist, "dup_faults",
		      (json_int_t)st.dup_faults, "stalls",
		      (json_int_t)st.stalls, "pending", (json_int_t)st.pending,
		      "errors", (json_int_t)st.errors);
	for (int i = 0; i < FAULT_RESOLVER_MAX; i++)
		json_object_set_new(o, fault_resolver_name(i),
				    boot_hist_json(&st.cls[i]));
	return o;
}

static json_t *boot_dirty_json(struct vm *vm)
{
	const struct dirty_stats *d = &vm->dirty.st;

	return json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "backend",
			 dirty_backend_name(vm->dirty.backend), "active",
			 vm->dirty.active, "harvests", (json_int_t)d->harvests,
			 "pages", (json_int_t)d->pages, "last_pages",
			 (json_int_t)d->last_pages, "last_harvest_ns",
			 (json_int_t)d->last_ns, "ring_full_exits",
			 (json_int_t)d->ring_full_exits, "host_pages",
			 (json_int_t)d->host_pages);
}

static json_t *boot_stats(struct boot_app *app)
{
	json_t *o = json_pack(
		"{s:o, s:o, s:o, s:o}", "vcpu_stats", boot_vcpus_json(&app->vm),
		"dirty_log", boot_dirty_json(&app->vm), "faults",
		boot_faults_json(&app->vm), "events", boot_events_json(app));

	if (o && app->restore)
		json_object_set_new(o, "restore", boot_restore_json(app));
	return o;
}

/*
 * dirty-log harvest: the pages dirtied since start or the last harvest.
 * The DIRTY page-state bitmap is this command's to consume while no
 * migration runs.
 */
static json_t *boot_dirty_harvest(struct boot_app *app, struct ctl_error *err)
{
	struct vm *vm = &app->vm;
	struct bitmap *dirty = &vm->mem.state[MEM_PS_DIRTY];
	uint64_t now = clock_now_ns(), pages;
	double secs = (now - app->dirty_mark_ns) / 1e9;
	char why[256];

	if (dirty_harvest(&vm->dirty, NULL, why, sizeof(why))) {
		boot_fail(err, CTL_ERR_INTERNAL, why);
		return NULL;
	}
	pages = bitmap_count(dirty);
	bitmap_zero(dirty);
	app->dirty_mark_ns = now;
	return json_pack("{s:I, s:f, s:f, s:I}", "pages", (json_int_t)pages,
			 "interval_s", secs, "dirty_rate_mib_s",
			 secs > 0 ? pages / 256.0 / secs : 0.0, "harvest_ns",
			 (json_int_t)vm->dirty.st.last_ns);
}

static int boot_dirty_log(struct boot_app *app, const struct ctl_request *req,
			  json_t **result, struct ctl_error *err)
{
	struct vm *vm = &app->vm;
	char why[256];

	switch (req->dirty_action) {
	case CTL_DIRTY_START:
		if (vm->dirty.active)
			return boot_fail(err, CTL_ERR_BAD_STATE,
					 "dirty logging is already on");
		if (dirty_start(&vm->dirty, why, sizeof(why)))
			return boot_fail(err, CTL_ERR_INTERNAL, why);
		bitmap_zero(&vm->mem.state[MEM_PS_DIRTY]);
		app->dirty_mark_ns = clock_now_ns();
		*result = boot_dirty_json(vm);
		return 0;
	case CTL_DIRTY_HARVEST:
		if (!vm->dirty.active)
			return boot_fail(err, CTL_ERR_BAD_STATE,
					 "dirty logging is off (dirty-log "
					 "start)");
		*result = boot_dirty_harvest(app, err);
		return *result ? 0 : -1;
	default:
		if (!vm->dirty.active)
			return boot_fail(err, CTL_ERR_BAD_STATE,
					 "dirty logging is already off");
		dirty_stop(&vm->dirty);
		*result = boot_dirty_json(vm);
		return 0;
	}
}

static json_t *boot_walk_json(const struct ptw_result *r)
{
	static const char *const names[] = {"", "PT", "PD", "PDPT", "PML4"};
	json_t *a = json_array();
	char buf[32];

	for (int i = 0; i < r->nr_steps; i++) {
		const struct ptw_step *st = &r->steps[i];

		snprintf(buf, sizeof(buf), "0x%llx",
			 (unsigned long long)st->entry);
		json_array_append_new(
			a, json_pack("{s:s, s:I, s:i, s:s}", "level",
				     names[st->level & 7 ? st->level : 0],
				     "table_gpa", (json_int_t)st->table_gpa,
				     "index", (int)st->index, "entry", buf));
	}
	return a;
}

static int boot_translate(struct boot_app *app, const struct ctl_request *req,
			  json_t **result, struct ctl_error *err)
{
	struct ptw_result r = {0};
	char text[1024], gva[32], gpa[32];
	int ret = vm_translate(&app->vm, req->cpu, req->gva, &r);

	if (ret == -EINVAL)
		return boot_fail(err, CTL_ERR_BAD_ARGS,
				 "no such vCPU (see vcpus in status)");
	if (ret == -EAGAIN)
		return boot_fail(err, CTL_ERR_BAD_STATE, BOOT_RAM_ARRIVING);
	if (ret)
		return boot_fail(err, CTL_ERR_INTERNAL, strerror(-ret));
	ptw_format(&r, req->gva, text, sizeof(text));
	snprintf(gva, sizeof(gva), "0x%llx", (unsigned long long)req->gva);
	snprintf(gpa, sizeof(gpa), "0x%llx", (unsigned long long)r.gpa);
	*result = json_pack(
		"{s:s, s:s, s:s, s:i, s:I, s:b, s:b, s:o, s:s}", "gva", gva,
		"status", ptw_status_name(r.status), "gpa",
		r.status == PTW_OK || r.status == PTW_NO_PAGING ? gpa : "",
		"level", r.level, "page_size", (json_int_t)r.page_size,
		"writable", r.writable, "user", r.user, "walk",
		boot_walk_json(&r), "text", text);
	return 0;
}

int boot_handle(void *opaque, const struct ctl_request *req, json_t **result,
		struct ctl_error *err)
{
	struct boot_app *app = opaque;
	int r;

	switch (req->cmd) {
	case CTL_CMD_STATUS:
		*result = boot_status(app);
		return 0;
	case CTL_CMD_PAUSE: {
		uint64_t t0 = clock_now_ns();

		r = vm_pause(&app->vm);
		if (r)
			return boot_run_state_err(r, err, "paused");
		*result = json_pack("{s:I}", "pause_us",
				    (json_int_t)((clock_now_ns() - t0) / 1000));
		return 0;
	}
	case CTL_CMD_RESUME:
		if (boot_guard_refuse(app, "resume", err))
			return -1;
		return boot_resume(app, err);
	case CTL_CMD_STOP:
		if (boot_guard_refuse(app, "stop", err))
			return -1;
		vm_request_exit(&app->vm, 0, "stopped by the control API");
		return 0;
	case CTL_CMD_GUEST_REQUEST:
		r = vm_guest_request(&app->vm, req->guest_req, req->req_arg);
		if (r == -EAGAIN)
			return boot_fail(err, CTL_ERR_BAD_STATE,
					 BOOT_RAM_ARRIVING);
		if (r < 0)
			return boot_fail(err, CTL_ERR_INTERNAL,
					 "boot-info page is not in RAM");
		*result = json_pack("{s:i}", "seq", r);
		return 0;
	case CTL_CMD_STATS:
		*result = boot_stats(app);
		return 0;
	case CTL_CMD_DIRTY_LOG:
		return boot_dirty_log(app, req, result, err);
	case CTL_CMD_TRANSLATE:
		return boot_translate(app, req, result, err);
	case CTL_CMD_MIGRATE:
	case CTL_CMD_MIGRATE_SET:
		return boot_migrate(app, req, result, err);
	case CTL_CMD_SNAPSHOT:
		return boot_snapshot(app, req, result, err);
	default:
		return boot_fail(err, CTL_ERR_UNKNOWN_COMMAND,
				 "command not served by this VMM");
	}
}
