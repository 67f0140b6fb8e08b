/* SPDX-License-Identifier: MIT */
/*
 * boot_mig.c - a booted VMM's migrations: the migrate command (start,
 * cancel, resume, abort), the hooks through which migration/ reports
 * progress and the end, turned into control events, and the statistics
 * under libvirt's job-stat names. Everything runs on the event-loop thread.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Only for the VIR_DOMAIN_JOB_* names; nothing of libvirt is linked. */
#include <libvirt/libvirt.h>

#include "common/page.h"
#include "ept/ptwalk.h"
#include "vmm/ctl/boot_app.h"

/* Post-copy and the switch: how pre-copy ended and what came after. */
/* "channels": the wire bytes of each connection pre-copy used. */
static void boot_mig_channels_json(json_t *o, const struct mig_stats *st)
{
	json_t *a = json_array();

	for (uint32_t i = 0; i < st->channels && i < MIG_MAX_CHANNELS; i++)
		json_array_append_new(
			a, json_integer((json_int_t)st->channel_bytes[i]));
	json_object_set_new(o, "channel_bytes", a);
}

static void boot_mig_switch_json(json_t *o, const struct mig_stats *st)
{
#define SET(k, v) json_object_set_new(o, k, json_integer((json_int_t)(v)))
	json_object_set_new(o, "postcopy", json_boolean(st->postcopy));
	json_object_set_new(o, "switch_reason",
			    json_string(mig_reason_name(st->reason)));
	SET("precopy_bytes", st->precopy_bytes);
	boot_mig_channels_json(o, st);
	SET("last_pass_pages", st->last_pass_pages);
	SET("stop_copy_pages", st->stop_copy_pages);
	SET("switch_dirty_pages", st->switch_dirty);
	SET("switch_hot_pages", st->switch_hot);
	SET("postcopy_pushed_pages", st->postcopy_pushed);
	SET("push_resume_pages", st->push_first);
	SET("push_near_pages", st->push_near);
	SET("push_hot_pages", st->push_hot);
	SET("postcopy_ahead_pages", st->postcopy_ahead);
	SET("spliced_bytes", st->spliced_bytes);
	SET("direct_bytes", st->direct_bytes);
	SET("head_bytes", st->head_bytes);
	SET("push_walk_us", st->push_walk_us);
	SET("push_walk_wall_us", st->push_walk_wall_us);
	SET("push_walk_tables", st->push_walk_tables);
	SET("push_walk_revisits", st->push_walk_revisits);
	SET("push_walk_cycles", st->push_walk_cycles);
	SET("push_walk_leaves", st->push_walk_leaves);
	json_object_set_new(o, "push_walk_stop",
			    json_string(ptw_stop_name(st->push_walk_stop)));
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

/* The main connection's transport: "tls" and, with it, what it runs. */
static void boot_mig_tls_json(json_t *o, const struct mig_stats *st)
{
	if (st->tcp_congestion[0])
		json_object_set_new(o, "tcp_congestion",
				    json_string(st->tcp_congestion));
	json_object_set_new(o, "tls", json_boolean(st->tls));
	if (!st->tls)
		return;
	json_object_set_new(o, "tls_cipher", json_string(st->tls_cipher));
	json_object_set_new(o, "tls_peer", json_string(st->tls_peer));
	json_object_set_new(o, "ktls_send", json_boolean(st->ktls_send));
	json_object_set_new(o, "ktls_recv", json_boolean(st->ktls_recv));
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
	SET("time_elapsed_us", st->time_elapsed_us);
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
	SET("discard_us", st->discard_us);
	SET("quiesce_us", st->quiesce_us);
	SET(VIR_DOMAIN_JOB_MEMORY_POSTCOPY_REQS, st->memory_postcopy_requests);
	SET(VIR_DOMAIN_JOB_AUTO_CONVERGE_THROTTLE, st->throttle_pct);
	SET("throttle_raised", st->throttle_raised);
	SET("max_bandwidth", st->max_bandwidth);
	SET("postcopy_bandwidth", st->postcopy_bandwidth);
	SET("precopy_ms", st->precopy_ms);
	SET("verify_audit_ms", st->verify_audit_ms);
#undef SET
	if (st->verify)
		json_object_set_new(
			o, "verify_hash",
			json_string(st->verify_xxh3 ? "xxh3-128" : "sha-256"));
	json_object_set_new(o, "converged", json_boolean(st->converged));
	boot_mig_switch_json(o, st);
	boot_mig_tls_json(o, st);
	if (dest)
		boot_mig_faults_json(o, st);
	if (st->error[0])
		json_object_set_new(o, VIR_DOMAIN_JOB_ERRMSG,
				    json_string(st->error));
	if (st->notice[0])
		json_object_set_new(o, "notice", json_string(st->notice));
	return o;
}

/* status "migration": the outgoing migration's, else the incoming one's. */
json_t *boot_mig_status_json(struct boot_app *app)
{
	if (app->mig_src)
		return boot_mig_json(app, mig_source_stats(app->mig_src),
				     false);
	if (app->mig_dest)
		return boot_mig_json(app, mig_dest_stats(app->mig_dest), true);
	return NULL;
}

/*
 * Built only for a listener: on the destination it is built right after
 * GO, on the CPU the resumed guest wants (docs/benchmarks.md, "After GO").
 */
static void boot_mig_event(struct boot_app *app, const char *name,
			   const struct mig_stats *st, bool dest)
{
	if (app->has_ctl && control_listened(&app->ctl))
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
	boot_guard_release(app); /* a signal held through the migration */
}

/* The destination: running means ours now; failed means nothing ran. */
static void boot_dest_done(void *opaque, const struct mig_stats *st)
{
	struct boot_app *app = opaque;
	char err[256];

	if (st->state == MIG_RUNNING) {
		boot_mig_event(app, "migration-complete", st, true);
		/* The guest is ours: its UART takes input now. */
		if (serial_in_go(&app->serial_in, err, sizeof(err)))
			fprintf(stderr, "vmmctl boot: %s\n", err);
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

/*
 * The destination's migrate-recover: listen for the resume on another
 * address while post-copy is paused; refused in any other state.
 */
static int boot_mig_recover(struct boot_app *app, const char *listen,
			    json_t **result, struct ctl_error *err)
{
	char why[256] = "";
	int r;

	if (!app->mig_dest)
		return boot_fail(err, CTL_ERR_BAD_STATE,
				 "no incoming migration here: --recover "
				 "--listen is for the destination");
	r = mig_dest_recover_listen(app->mig_dest, listen, why, sizeof(why));
	if (r)
		return boot_fail(
			err, r == -EBUSY ? CTL_ERR_BAD_STATE : CTL_ERR_BAD_ARGS,
			why[0] ? why : strerror(-r));
	*result = json_pack("{s:s, s:s}", "state",
			    mig_state_name(MIG_POSTCOPY_PAUSED), "listen",
			    listen);
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
		.channels = (unsigned int)m->channels,
		.compress = m->compress,
		.quiesce_timeout_ms = m->quiesce_timeout_ms,
		.push_order = m->push_order,
		.max_bandwidth = m->max_bandwidth,
		.postcopy_bandwidth = m->postcopy_bandwidth,
		.auto_converge = m->auto_converge,
		.tls_dir = m->tls_dir,
		.tls_hostname = m->tls_hostname,
		.insecure = m->insecure,
		.tcp_congestion = m->tcp_congestion,
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
	app->mig_mode = mig_source_mode(app->mig_src);
	*result = json_pack("{s:s, s:s, s:s}", "state", "setup", "to", m->to,
			    "mode", mig_mode_name(app->mig_mode));
	return 0;
}

/* migrate-set: new caps for the outgoing migration under way. */
static int boot_mig_set(struct boot_app *app, const struct ctl_migrate *m,
			json_t **result, struct ctl_error *err)
{
	const struct mig_stats *st;

	if (!app->mig_src ||
	    mig_source_set_bandwidth(app->mig_src, m->max_bandwidth,
				     m->postcopy_bandwidth))
		return boot_fail(err, CTL_ERR_BAD_STATE,
				 "no outgoing migration in progress");
	st = mig_source_stats(app->mig_src);
	*result = json_pack("{s:I, s:I}", "max_bandwidth",
			    (json_int_t)st->max_bandwidth, "postcopy_bandwidth",
			    (json_int_t)st->postcopy_bandwidth);
	return 0;
}

/*
 * cancel, resume and abort act on a migration under way, so they come
 * before start's checks (a paused post-copy source is not running).
 */
int boot_migrate(struct boot_app *app, const struct ctl_request *req,
		 json_t **result, struct ctl_error *err)
{
	const struct ctl_migrate *m = &req->mig;

	if (req->cmd == CTL_CMD_MIGRATE_SET)
		return boot_mig_set(app, m, result, err);
	if (m->cancel)
		return boot_mig_cancel(app, err);
	if (m->resume)
		return boot_mig_resume(app, m->to, result, err);
	if (m->recover)
		return boot_mig_recover(app, m->listen, result, err);
	if (m->abort)
		return boot_mig_abort(app, result, err);
	return boot_mig_start(app, m, result, err);
}
