/* SPDX-License-Identifier: MIT */
/*
 * boot_ctl.c - what a booted VMM answers on its control socket: status,
 * pause/resume/stop, guest requests, statistics, dirty logging and page-
 * table walks. Every handler runs on the event-loop thread.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Only for the VIR_DOMAIN_JOB_* names; nothing of libvirt is linked. */
#include <libvirt/libvirt.h>

#include "common/page.h"
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

static int boot_fail(struct ctl_error *err, enum ctl_err code, const char *msg);

/* The event loop must not touch guest RAM still at the source (vm.h). */
#define BOOT_RAM_ARRIVING                                                      \
	"guest RAM is still arriving from the migration source (post-copy): "  \
	"try again shortly"

/* Post-copy and the switch: how pre-copy ended and what came after. */
static void boot_mig_switch_json(json_t *o, const struct mig_stats *st)
{
#define SET(k, v) json_object_set_new(o, k, json_integer((json_int_t)(v)))
	json_object_set_new(o, "postcopy", json_boolean(st->postcopy));
	json_object_set_new(o, "switch_reason",
			    json_string(mig_reason_name(st->reason)));
	SET("precopy_bytes", st->precopy_bytes);
	SET("switch_dirty_pages", st->switch_dirty);
	SET("postcopy_pushed_pages", st->postcopy_pushed);
	SET("push_resume_pages", st->push_first);
	SET("push_near_pages", st->push_near);
	SET("push_hot_pages", st->push_hot);
	SET("push_walk_us", st->push_walk_us);
	SET("push_walk_errno", st->push_walk_err);
	SET("postcopy_ms", st->postcopy_ms);
	SET("postcopy_breaks", st->postcopy_breaks);
	SET("postcopy_lacking_pages", st->postcopy_lacking);
#undef SET
}

/* A post-copy destination's fault service: faults waiting for pages. */
static void boot_mig_faults_json(json_t *o, const struct mig_stats *st)
{
#define SET(k, v) json_object_set_new(o, k, json_integer((json_int_t)(v)))
	SET("postcopy_faults", st->postcopy_faults);
	SET("fault_wait_p50_us", st->fault_wait_p50_us);
	SET("fault_wait_p99_us", st->fault_wait_p99_us);
	SET("fault_wait_max_us", st->fault_wait_max_us);
	SET("faults_waiting", st->faults_waiting);
	SET("fault_max_vcpus_waiting", st->fault_max_vcpus);
	SET("fault_oldest_wait_ms", st->fault_oldest_wait_ms);
#undef SET
}

/*
 * Migration statistics under libvirt's job-stat names (virsh domjobinfo).
 * dest: st is the incoming migration's (fault figures, no mode); else the
 * outgoing one's, started in app->mig_mode.
 */
static json_t *boot_mig_json(const struct boot_app *app,
			     const struct mig_stats *st, bool dest)
{
	json_t *o = json_object();

#define SET(k, v) json_object_set_new(o, k, json_integer((json_int_t)(v)))
	json_object_set_new(o, "state", json_string(mig_state_name(st->state)));
	if (!dest)
		json_object_set_new(o, "mode",
				    json_string(mig_mode_name(app->mig_mode)));
	SET(VIR_DOMAIN_JOB_TIME_ELAPSED, st->time_elapsed_ms);
	SET(VIR_DOMAIN_JOB_SETUP_TIME, st->setup_time_ms);
	SET(VIR_DOMAIN_JOB_DOWNTIME, st->downtime_ms);
	SET("downtime_us", st->downtime_us);
	SET(VIR_DOMAIN_JOB_DATA_TOTAL, st->memory_total);
	SET(VIR_DOMAIN_JOB_DATA_PROCESSED, st->memory_processed);
	SET(VIR_DOMAIN_JOB_DATA_REMAINING, st->memory_remaining);
	SET(VIR_DOMAIN_JOB_MEMORY_TOTAL, st->memory_total);
	SET(VIR_DOMAIN_JOB_MEMORY_PROCESSED, st->memory_processed);
	SET(VIR_DOMAIN_JOB_MEMORY_REMAINING, st->memory_remaining);
	SET(VIR_DOMAIN_JOB_MEMORY_CONSTANT, st->memory_constant);
	SET(VIR_DOMAIN_JOB_MEMORY_NORMAL, st->memory_normal);
	SET(VIR_DOMAIN_JOB_MEMORY_NORMAL_BYTES, st->memory_normal_bytes);
	SET(VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE, st->memory_dirty_rate);
	SET(VIR_DOMAIN_JOB_MEMORY_PAGE_SIZE, PAGE_SIZE);
	SET(VIR_DOMAIN_JOB_MEMORY_ITERATION, st->memory_iteration);
	SET(VIR_DOMAIN_JOB_MEMORY_BPS, st->memory_bps);
	SET(VIR_DOMAIN_JOB_COMPRESSION_BYTES, st->compression_bytes);
	SET("wire_bytes", st->wire_bytes);
	SET("predicted_downtime_us", st->predicted_downtime_us);
	SET("pause_us", st->pause_us);
	SET("stop_copy_us", st->stop_copy_us);
	SET("ready_wait_us", st->ready_wait_us);
	SET("go_wait_us", st->go_wait_us);
	SET("restore_us", st->restore_us);
	SET("quiesce_us", st->quiesce_us);
	SET(VIR_DOMAIN_JOB_MEMORY_POSTCOPY_REQS, st->memory_postcopy_requests);
#undef SET
	json_object_set_new(o, "converged", json_boolean(st->converged));
	boot_mig_switch_json(o, st);
	if (dest)
		boot_mig_faults_json(o, st);
	if (st->error[0])
		json_object_set_new(o, VIR_DOMAIN_JOB_ERRMSG,
				    json_string(st->error));
	return o;
}

/* status "migration": the outgoing migration's, else the incoming one's. */
static json_t *boot_mig_status_json(struct boot_app *app)
{
	if (app->mig_src)
		return boot_mig_json(app, mig_source_stats(app->mig_src),
				     false);
	if (app->mig_dest)
		return boot_mig_json(app, mig_dest_stats(app->mig_dest), true);
	return NULL;
}

static void boot_mig_event(struct boot_app *app, const char *name,
			   const struct mig_stats *st, bool dest)
{
	if (app->has_ctl)
		control_post_event(&app->ctl, name,
				   boot_mig_json(app, st, dest));
}

/* A round, or a change of state: paused post-copy has its own event. */
static const char *boot_mig_progress_event(const struct mig_stats *st)
{
	return st->state == MIG_POSTCOPY_PAUSED ? "migration-paused"
						: "migration-progress";
}

static void boot_src_progress(void *opaque, const struct mig_stats *st)
{
	boot_mig_event(opaque, boot_mig_progress_event(st), st, false);
}

static void boot_dest_progress(void *opaque, const struct mig_stats *st)
{
	boot_mig_event(opaque, boot_mig_progress_event(st), st, true);
}

/* The source's migration ended: completed means the VM now lives there. */
static void boot_src_done(void *opaque, const struct mig_stats *st)
{
	struct boot_app *app = opaque;

	if (st->state == MIG_COMPLETED) {
		boot_mig_event(app, "migration-complete", st, false);
		vm_request_exit(&app->vm, 0, "migrated (downtime %llu us)",
				(unsigned long long)st->downtime_us);
		return;
	}
	boot_mig_event(app,
		       st->state == MIG_CANCELLED ? "migration-cancelled"
						  : "migration-failed",
		       st, false);
}

/* The destination: running means ours now; failed means nothing ran. */
static void boot_dest_done(void *opaque, const struct mig_stats *st)
{
	struct boot_app *app = opaque;

	if (st->state == MIG_RUNNING) {
		boot_mig_event(app, "migration-complete", st, true);
		return;
	}
	boot_mig_event(app, "migration-failed", st, true);
	vm_fail(&app->vm, "incoming migration failed: %s", st->error);
}

const struct mig_hooks boot_mig_src_hooks = {
	.progress = boot_src_progress,
	.done = boot_src_done,
};

const struct mig_hooks boot_mig_dest_hooks = {
	.progress = boot_dest_progress,
	.done = boot_dest_done,
};

static bool boot_mig_postcopy_held(enum mig_state s)
{
	return s == MIG_POSTCOPY_PAUSED || s == MIG_POSTCOPY_RECOVER;
}

/* Why a new migration cannot start now (NULL: it can). */
static const char *boot_mig_busy(struct boot_app *app)
{
	const struct mig_stats *src =
		app->mig_src ? mig_source_stats(app->mig_src) : NULL;
	const struct mig_stats *dst =
		app->mig_dest ? mig_dest_stats(app->mig_dest) : NULL;

	if (src && src->state == MIG_POSTCOPY_PAUSED)
		return "a post-copy migration is paused: migrate --resume or "
		       "--abort --confirm";
	if (src && src->state != MIG_COMPLETED && src->state != MIG_FAILED &&
	    src->state != MIG_CANCELLED)
		return "a migration is already in progress";
	if (dst && boot_mig_postcopy_held(dst->state))
		return "the incoming post-copy migration is paused: resume it "
		       "at the source, or migrate --abort --confirm here";
	return NULL;
}

static int boot_mig_cancel(struct boot_app *app, struct ctl_error *err)
{
	int r = app->mig_src ? mig_source_cancel(app->mig_src) : -EALREADY;

	if (r == -EBUSY)
		return boot_fail(err, CTL_ERR_BAD_STATE,
				 "too late to cancel: the destination was "
				 "told to run the VM");
	if (r)
		return boot_fail(err, CTL_ERR_BAD_STATE,
				 "no migration in progress");
	return 0;
}

/* Post-copy recovery: reconnect (to `to`, or where it went) and go on. */
static int boot_mig_resume(struct boot_app *app, const char *to,
			   json_t **result, struct ctl_error *err)
{
	char why[256] = "";
	int r;

	r = app->mig_src ? mig_source_resume(app->mig_src, to, why, sizeof(why))
			 : -EALREADY;
	if (r == -EALREADY)
		return boot_fail(err, CTL_ERR_BAD_STATE,
				 app->mig_src || !app->mig_dest
					 ? "no post-copy migration is paused"
					 : "no post-copy migration is paused "
					   "here: resume it at the source");
	if (r)
		return boot_fail(err, CTL_ERR_BAD_ARGS,
				 why[0] ? why : strerror(-r));
	*result = json_pack("{s:s}", "state",
			    mig_state_name(MIG_POSTCOPY_RECOVER));
	if (*result && to)
		json_object_set_new(*result, "to", json_string(to));
	return 0;
}

/*
 * Give post-copy up: at the source (the VM stays paused here) or, on an
 * incoming VM, at the destination (the VM fails). The result is the
 * migration's statistics, whose errmsg says what was lost.
 */
static int boot_mig_abort(struct boot_app *app, json_t **result,
			  struct ctl_error *err)
{
	int r = app->mig_src ? mig_source_abort(app->mig_src) : -EALREADY;
	bool dest = false;
	char msg[128];

	if (r == -EALREADY && app->mig_dest) {
		r = mig_dest_abort(app->mig_dest);
		dest = true;
	}
	if (r == -EALREADY)
		return boot_fail(err, CTL_ERR_BAD_STATE,
				 "no post-copy migration to abort");
	if (r) {
		snprintf(msg, sizeof(msg), "could not abort: %s", strerror(-r));
		return boot_fail(err, CTL_ERR_INTERNAL, msg);
	}
	*result = dest ? boot_mig_json(app, mig_dest_stats(app->mig_dest), true)
		       : boot_mig_json(app, mig_source_stats(app->mig_src),
				       false);
	return 0;
}

static int boot_mig_start(struct boot_app *app, const struct ctl_migrate *m,
			  json_t **result, struct ctl_error *err)
{
	struct mig_hooks hooks = boot_mig_src_hooks;
	struct mig_params p = {
		.to = m->to,
		.mode = m->mode,
		.downtime_limit_ms = m->downtime_limit_ms
					     ? m->downtime_limit_ms
					     : MIG_DEFAULT_DOWNTIME_MS,
		.max_rounds = m->max_rounds ? (uint32_t)m->max_rounds
					    : MIG_DEFAULT_MAX_ROUNDS,
		.budget_ms = m->budget_ms,
		.budget_bytes = m->budget_bytes,
		.verify = m->verify,
		.zstd_level = MIG_DEFAULT_ZSTD,
		.quiesce_timeout_ms = m->quiesce_timeout_ms,
		.push_order = m->push_order,
	};
	const char *busy = boot_mig_busy(app);
	char why[256];

	if (busy)
		return boot_fail(err, CTL_ERR_BAD_STATE, busy);
	if (app->vm.state != VM_RUNNING)
		return boot_fail(err, CTL_ERR_BAD_STATE,
				 "only a running VM can be migrated");
	if (atomic_load(&app->vm.ram_incomplete))
		return boot_fail(err, CTL_ERR_BAD_STATE, BOOT_RAM_ARRIVING);
	if (app->vm.dirty.active)
		return boot_fail(err, CTL_ERR_BAD_STATE,
				 "dirty logging is in use (dirty-log stop)");
	hooks.opaque = app;
	mig_source_free(app->mig_src);
	app->mig_src = NULL;
	if (mig_source_start(&app->mig_src, &app->vm, &app->loop, &p, &hooks,
			     why, sizeof(why)))
		return boot_fail(err, CTL_ERR_BAD_ARGS, why);
	app->mig_mode = p.mode;
	*result = json_pack("{s:s, s:s, s:s}", "state", "setup", "to", m->to,
			    "mode", mig_mode_name(p.mode));
	return 0;
}

/*
 * cancel, resume and abort act on a migration under way, so they come
 * before start's checks (a paused post-copy source is not running).
 */
static int boot_migrate(struct boot_app *app, const struct ctl_request *req,
			json_t **result, struct ctl_error *err)
{
	const struct ctl_migrate *m = &req->mig;

	if (m->cancel)
		return boot_mig_cancel(app, err);
	if (m->resume)
		return boot_mig_resume(app, m->to, result, err);
	if (m->abort)
		return boot_mig_abort(app, result, err);
	return boot_mig_start(app, m, result, err);
}

/*
 * status "pt", when the VM has the device. Not while post-copy RAM is
 * arriving: the device DMAs with its lock held, and a DMA that faults on
 * a page still at the source waits for this (the loop) thread to fetch
 * it, so taking the lock here could wait forever.
 */
static json_t *boot_pt_status_json(struct vm *vm)
{
	struct pt_stats st;

	if (!vm->pt_on)
		return NULL;
	if (atomic_load(&vm->ram_incomplete))
		return ctl_pt_status(NULL, vm->pt.cfg.rate_pps);
	pt_get_stats(&vm->pt, &st);
	return ctl_pt_status(&st, vm->pt.cfg.rate_pps);
}

static json_t *boot_status(struct boot_app *app)
{
	struct vm *vm = &app->vm;
	json_t *mig = boot_mig_status_json(app);
	struct testdev_stats st;
	enum vm_state state;
	json_t *o, *pt;

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
		json_object_set_new(o, "migration", mig);
	else
		json_decref(mig);
	pt = boot_pt_status_json(vm);
	if (o && pt)
		json_object_set_new(o, "pt", pt);
	else
		json_decref(pt);
	return o;
}

static int boot_fail(struct ctl_error *err, enum ctl_err code, const char *msg)
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
	return json_pack("{s:o, s:o, s:o}", "vcpu_stats",
			 boot_vcpus_json(&app->vm), "dirty_log",
			 boot_dirty_json(&app->vm), "faults",
			 boot_faults_json(&app->vm));
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
		r = vm_resume(&app->vm);
		return r ? boot_run_state_err(r, err, "running") : 0;
	case CTL_CMD_STOP:
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
		return boot_migrate(app, req, result, err);
	default:
		return boot_fail(err, CTL_ERR_UNKNOWN_COMMAND,
				 "command not served by this VMM");
	}
}
