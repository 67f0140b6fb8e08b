/* SPDX-License-Identifier: MIT */
/*
 * cmd_boot.c - `vmmctl boot`: this process becomes the VMM.
 *
 * The main thread runs the libuv event loop (control socket, signals, the
 * heartbeat-log flush timer, terminal input for the UART) and owns the VM's
 * life: it creates it, starts the vCPU threads, serves pause/resume/stop,
 * and tears everything down when the VM exits. vCPU threads reach the loop
 * only through uv_async (exit) and control_post_event (markers). Its
 * options are parsed and checked in boot_opts.c.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "vmm/ctl/boot_app.h"
#include "vmm/cli/boot_opts.h"
#include "vmm/cli/cli.h"
#include "vmm/ctl/control.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define BOOT_FLUSH_MS 50 /* heartbeat log: flushed well within 100 ms */

/* ---- loop callbacks -------------------------------------------------------
 */

static void boot_on_exit(void *opaque)
{
	struct boot_app *app = opaque;

	uv_async_send(&app->exit_async); /* any thread */
}

static void boot_on_event(void *opaque, const char *name, uint64_t id,
			  uint64_t arg)
{
	struct boot_app *app = opaque;

	if (!app->has_ctl)
		return;
	if (!strcmp(name, "fault-stalled"))
		boot_guest_event(app, name,
				 json_pack("{s:I, s:I}", "gpa", (json_int_t)id,
					   "waited_ns", (json_int_t)arg));
	else
		boot_guest_event(app, name,
				 json_pack("{s:s, s:I, s:I}", "name",
					   testdev_marker_name((unsigned)id),
					   "id", (json_int_t)id, "arg",
					   (json_int_t)arg));
}

static void boot_close_handle(uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/* The VM asked to stop: join vCPUs, tell clients, close every handle. */
static void boot_exit_async(uv_async_t *h)
{
	struct boot_app *app = h->data;
	struct vm *vm = &app->vm;

	vm_join(vm);
	boot_restore_stop(app);
	testdev_flush(&vm->testdev);
	console_flush(&vm->console);
	/* Migration channels close with the loop's other handles. */
	mig_source_free(app->mig_src);
	mig_dest_free(app->mig_dest);
	app->mig_src = NULL;
	app->mig_dest = NULL;
	if (app->has_ctl) {
		control_post_event(&app->ctl, "shutdown",
				   json_pack("{s:s, s:i}", "reason",
					     vm->exit_why, "exit_code",
					     vm->exit_code));
		control_stop(&app->ctl);
	}
	boot_close_handle((uv_handle_t *)&app->exit_async);
	boot_close_handle((uv_handle_t *)&app->sig_int);
	boot_close_handle((uv_handle_t *)&app->sig_term);
	boot_close_handle((uv_handle_t *)&app->flush_timer);
	serial_in_close(&app->serial_in);
}

static void boot_on_signal(uv_signal_t *h, int signum)
{
	struct boot_app *app = h->data;

	if (boot_guard_hold_signal(app, signum))
		return; /* until the migration ends (boot_guard.c) */
	vm_request_exit(&app->vm, 128 + signum, "received %s",
			strsignal(signum));
}

static void boot_on_flush(uv_timer_t *h)
{
	struct boot_app *app = h->data;

	testdev_flush(&app->vm.testdev);
	console_flush(&app->vm.console);
	/* A destination's post-copy ends without a hook: check each tick. */
	boot_guard_release(app);
}

static int boot_init_handles(struct boot_app *app)
{
	int r;

	app->exit_async.data = app;
	app->sig_int.data = app;
	app->sig_term.data = app;
	app->flush_timer.data = app;
	r = uv_async_init(&app->loop, &app->exit_async, boot_exit_async);
	if (!r)
		r = uv_signal_init(&app->loop, &app->sig_int);
	if (!r)
		r = uv_signal_start(&app->sig_int, boot_on_signal, SIGINT);
	if (!r)
		r = uv_signal_init(&app->loop, &app->sig_term);
	if (!r)
		r = uv_signal_start(&app->sig_term, boot_on_signal, SIGTERM);
	if (!r)
		r = uv_timer_init(&app->loop, &app->flush_timer);
	if (!r)
		r = uv_timer_start(&app->flush_timer, boot_on_flush,
				   BOOT_FLUSH_MS, BOOT_FLUSH_MS);
	return r;
}

/* A destination: the vCPUs start when the source says GO (migration/). */
static int boot_start_incoming(struct boot_app *app,
			       const struct mig_dest_params *dp)
{
	struct mig_hooks hooks = boot_mig_dest_hooks;
	char err[768];
	int r;

	hooks.opaque = app;
	app->incoming = dp->spec;
	r = mig_dest_start(&app->mig_dest, &app->vm, &app->loop, dp, &hooks,
			   err, sizeof(err));
	if (r)
		fprintf(stderr, "vmmctl boot: --incoming %s\n", err);
	return r;
}

/*
 * --restore: the file's RAM size and vCPU count unless the flags say
 * otherwise; flags that differ from the file are refused in one line.
 */
static int boot_restore_shape(struct boot_opts *o)
{
	struct snap_file f;
	char err[512] = "";
	int r = snap_file_open(&f, o->restore, err, sizeof(err));

	if (r) {
		fprintf(stderr, "vmmctl boot: --restore: %s\n", err);
		return r;
	}
	if (o->mem_given && o->cfg.mem_size != f.h.mem_size)
		snprintf(err, sizeof(err),
			 "snapshot %s has %llu MiB of RAM; --mem asks for "
			 "%llu MiB",
			 o->restore, (unsigned long long)(f.h.mem_size >> 20),
			 (unsigned long long)(o->cfg.mem_size >> 20));
	else if (o->cpus_given && (uint32_t)o->cfg.nr_cpus != f.h.nr_vcpus)
		snprintf(err, sizeof(err),
			 "snapshot %s has %u vCPUs; --cpus asks for %d",
			 o->restore, f.h.nr_vcpus, o->cfg.nr_cpus);
	o->cfg.mem_size = f.h.mem_size;
	o->cfg.nr_cpus = (int)f.h.nr_vcpus;
	snap_file_close(&f);
	if (!*err)
		return 0;
	fprintf(stderr, "vmmctl boot: --restore: %s\n", err);
	return -EINVAL;
}

/* --restore: RAM and state from the file, then the vCPUs run. */
static int boot_start_restore(struct boot_app *app, const struct boot_opts *o)
{
	char err[768];
	int r = boot_restore_start(app, o->restore, o->cfg.mem_lazy,
				   o->record_ws_ms, o->ws_race, err,
				   sizeof(err));

	if (r)
		fprintf(stderr, "vmmctl boot: --restore: %s\n", err);
	return r;
}

static int boot_setup(struct boot_app *app, struct boot_opts *o)
{
	char err[512];
	int r;

	if (o->restore && boot_restore_shape(o))
		return -EINVAL;
	r = vm_create(&app->vm, &o->cfg, err, sizeof(err));
	if (r) {
		fprintf(stderr, "vmmctl boot: %s\n", err);
		return r;
	}
	app->vm.on_exit = boot_on_exit;
	app->vm.on_event = boot_on_event;
	app->vm.cb_opaque = app;
	if (o->api) {
		r = control_start(&app->ctl, &app->loop, o->api, boot_handle,
				  app, err, sizeof(err));
		if (r) {
			fprintf(stderr, "vmmctl boot: %s\n", err);
			return r;
		}
		app->has_ctl = true;
	}
	r = boot_init_handles(app);
	if (r) {
		fprintf(stderr, "vmmctl boot: event loop: %s\n",
			uv_strerror(r));
		return r;
	}
	r = serial_in_open(&app->serial_in, &app->loop, &app->vm.com1,
			   o->serial_in, o->incoming != NULL, err, sizeof(err));
	if (r) {
		fprintf(stderr, "vmmctl boot: %s\n", err);
		return r;
	}
	if (o->incoming)
		return boot_start_incoming(app, &o->mig);
	if (o->restore)
		return boot_start_restore(app, o);
	r = vm_start(&app->vm, err, sizeof(err));
	if (r)
		fprintf(stderr, "vmmctl boot: %s\n", err);
	return 0; /* a failed start already requested exit: the loop ends it */
}

static void boot_walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	boot_close_handle(h);
}

static int boot_run(const struct vmmctl_cmd *cmd, int argc, char **argv)
{
	static struct boot_app app; /* big (struct vm) and loop-owned */
	struct boot_opts o;
	int r;

	r = boot_parse(argc, argv, &o);
	if (r)
		return r > 0 ? 0 : 2;
	r = vcpu_signals_init();
	if (r) {
		fprintf(stderr, "vmmctl boot: sigaction: %s\n", strerror(-r));
		return 1;
	}
	memset(&app, 0, sizeof(app));
	r = uv_loop_init(&app.loop);
	if (r) {
		fprintf(stderr, "vmmctl boot: uv_loop_init: %s\n",
			uv_strerror(r));
		return 1;
	}
	r = boot_setup(&app, &o);
	if (r) {
		if (app.has_ctl)
			control_stop(&app.ctl);
		uv_walk(&app.loop, boot_walk_close, NULL);
		uv_run(&app.loop, UV_RUN_DEFAULT);
		uv_loop_close(&app.loop);
		boot_restore_stop(&app);
		if (app.vm.fd > 0)
			vm_destroy(&app.vm);
		boot_restore_free(&app);
		return 1;
	}
	uv_run(&app.loop, UV_RUN_DEFAULT);
	uv_loop_close(&app.loop);
	if (app.vm.exit_error)
		fprintf(stderr, "vmmctl boot: %s\n", app.vm.exit_why);
	r = app.vm.exit_code;
	vm_destroy(&app.vm);
	boot_restore_free(&app);
	return r;
}

const struct vmmctl_cmd vmmctl_boot = {
	.name = "boot",
	.usage = "--kernel FILE [options]",
	.summary = "run a VM; this process is the VMM",
	.run = boot_run,
};
