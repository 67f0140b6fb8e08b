/* SPDX-License-Identifier: MIT */
/*
 * cmd_boot.c - `vmmctl boot`: this process becomes the VMM.
 *
 * The main thread runs the libuv event loop (control socket, signals, the
 * heartbeat-log flush timer, terminal input for the UART) and owns the VM's
 * life: it creates it, starts the vCPU threads, serves pause/resume/stop,
 * and tears everything down when the VM exits. vCPU threads reach the loop
 * only through uv_async (exit) and control_post_event (markers).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "vmm/ctl/boot_app.h"
#include "vmm/cli/cli.h"
#include "vmm/ctl/control.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define BOOT_DEFAULT_MEM (256ULL << 20)
#define BOOT_FLUSH_MS	 50   /* heartbeat log: flushed well within 100 ms */
#define BOOT_STALL_MS	 1000 /* default --fault-stall-ms */

struct boot_opts {
	struct vm_config cfg;
	const char *api;
	const char *incoming;
	struct mig_dest_params mig; /* --incoming, --tls-dir, ... */
	const char *serial_in; /* --serial-in: NULL stdin if a tty or pipe */
	const char *restore;   /* --restore FILE */
	uint64_t record_ws_ms; /* --record-ws MS */
	bool ws_race;	       /* --ws-mode race */
	bool mem_given, cpus_given; /* else a restore takes the file's */
};

static const char boot_usage[] =
	"usage: vmmctl boot --kernel FILE [options]\n"
	"\n"
	"Run a VM in this process until the guest exits or it is stopped.\n"
	"Exits with the guest's exit code (0 after `vmmctl stop`,\n"
	"128+N after signal N, 1 when the VMM fails, 2 on bad usage).\n"
	"\n"
	"  --kernel FILE         guest to boot (required): our static ELF64\n"
	"                        test guest, a Multiboot v1 image, a Linux\n"
	"                        vmlinux (PVH entry) or bzImage\n"
	"  --append CMDLINE      guest command line, e.g. \"heartbeat\"\n"
	"  --initrd FILE         Multiboot: FILE is the one module; Linux\n"
	"                        (vmlinux through PVH, bzImage): the initrd\n"
	"  --mem SIZE            guest RAM, 16M..64G (default 256M; a plain\n"
	"                        number is MiB)\n"
	"  --cpus N              number of vCPUs, 1..32 (default 1)\n"
	"  --api SOCK            serve the control API on UNIX socket SOCK\n"
	"  --serial FILE         write serial output to FILE, not stdout\n"
	"  --serial-in FILE|-    the UART receives FILE's bytes, or stdin's\n"
	"                        with '-' (default: stdin when it is a\n"
	"                        terminal or a pipe; else no input); reading\n"
	"                        pauses while the receive FIFO is full\n"
	"  --heartbeat-log FILE  log \"<seq> <CLOCK_MONOTONIC ns>\" per "
	"heartbeat\n"
	"  --mem-mode MODE       eager (default) or lazy: RAM is populated on\n"
	"                        first touch through userfaultfd "
	"(demand-zero)\n"
	"  --mem-prealloc        allocate all guest RAM at boot (on a\n"
	"                        destination: when the VM is created, before\n"
	"                        the switch); not with --mem-mode lazy\n"
	"  --mlock               keep guest RAM in memory (mlock2 on fault:\n"
	"                        RLIMIT_MEMLOCK must cover --mem unless root)\n"
	"  --fault-stall-ms MS   in lazy mode, report a fault waiting longer\n"
	"                        as a fault-stalled event (default 1000)\n"
	"  --dirty-ring ENTRIES  track dirty pages with a per-vCPU dirty ring\n"
	"                        of ENTRIES (power of two, >= 512) instead of\n"
	"                        the dirty bitmap\n"
	"  --device SPEC         add a device (at most one of each type; the\n"
	"                        devices/ layer lists them below)\n"
	"  --incoming tcp:ADDR:PORT\n"
	"                        be a migration destination: listen there and\n"
	"                        run the VM the source sends (same --mem,\n"
	"                        --cpus and --device as the source; no\n"
	"                        --kernel)\n"
	"  --incoming unix:PATH  live update: take the VM of a VMM on this\n"
	"                        host (migrate --to unix:PATH), its guest RAM\n"
	"                        shared, not copied; PATH is created mode 0600\n"
	"  --tls-dir DIR         with --incoming: mutual TLS 1.3; DIR holds\n"
	"                        ca.pem, cert.pem, key.pem (see\n"
	"                        scripts/mkcerts.sh); a source is admitted\n"
	"                        only with a certificate of that CA\n"
	"  --tls-authz NAME[,NAME...]\n"
	"                        and only if its certificate names one of\n"
	"                        these identities (subject CN or SAN)\n"
	"  --insecure            with --incoming: accept a plaintext\n"
	"                        migration on a non-loopback address\n"
	"                        (refused without --tls-dir otherwise)\n"
	"  --restore FILE        start the VM from snapshot FILE (vmmctl\n"
	"                        snapshot) instead of booting a kernel;\n"
	"                        --mem and --cpus default to the file's,\n"
	"                        --device must match; --mem-mode eager\n"
	"                        reads all RAM first, lazy loads it on\n"
	"                        demand and in the background\n"
	"  --record-ws MS        with --restore and --mem-mode lazy: record\n"
	"                        the pages the guest touches in its first MS\n"
	"                        ms (vmmctl snapshot --ws FILE stores them)\n"
	"  --ws-mode MODE        with --restore --mem-mode lazy of a file with\n"
	"                        a loading set: before (default) places it\n"
	"                        before the vCPUs run; race: the loader\n"
	"                        places it first while the guest runs\n"
	"  --kvm-device PATH     KVM device (default /dev/kvm)\n"
	"  -h, --help            show this help\n";

/* ---- options ---------------------------------------------------------- */

static int boot_parse_cpus(const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > GUEST_MAX_CPUS)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

static int boot_parse_mem(const char *s, uint64_t *out)
{
	struct mem_region regs[GUEST_MEM_MAX_REGS];

	if (mem_parse_size(s, out))
		return -EINVAL;
	if (mem_layout(*out, regs, GUEST_MEM_MAX_REGS) < 0)
		return -ERANGE;
	return 0;
}

static int boot_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || *out > max)
		return -EINVAL;
	return 0;
}

static int boot_opt_memory(struct boot_opts *o, int c, const char *arg)
{
	uint64_t v;

	switch (c) {
	case 'M':
		if (!strcmp(arg, "lazy") || !strcmp(arg, "eager")) {
			o->cfg.mem_lazy = !strcmp(arg, "lazy");
			return 0;
		}
		fprintf(stderr,
			"vmmctl boot: --mem-mode '%s': expected eager "
			"or lazy\n",
			arg);
		return -EINVAL;
	case 'P':
		o->cfg.mem_prealloc = true;
		return 0;
	case 'L':
		o->cfg.mem_lock = true;
		return 0;
	case 'S':
		if (boot_parse_u64(arg, 3600000, &o->cfg.fault_stall_ms) == 0)
			return 0;
		fprintf(stderr,
			"vmmctl boot: --fault-stall-ms '%s': need "
			"milliseconds, 0 to 3600000\n",
			arg);
		return -EINVAL;
	case 'R':
		if (boot_parse_u64(arg, 1U << 31, &v) == 0 && v) {
			o->cfg.dirty_backend = DIRTY_RING;
			o->cfg.dirty_ring_entries = (uint32_t)v;
			return 0;
		}
		fprintf(stderr,
			"vmmctl boot: --dirty-ring '%s': need a number "
			"of entries\n",
			arg);
		return -EINVAL;
	}
	return -EINVAL;
}

/* One option of --device pt (len bytes at opt): "rate=PPS". */
/* --device SPEC: parsed by the device layer, which knows the types. */
static int boot_opt_device(struct vm_config *cfg, const char *arg)
{
	char err[256];

	if (dev_request_parse(arg, cfg->devices, cfg->nr_devices,
			      &cfg->devices[cfg->nr_devices], err,
			      sizeof(err))) {
		fprintf(stderr, "vmmctl boot: --device: %s\n", err);
		return -EINVAL;
	}
	cfg->nr_devices++;
	return 0;
}

/* --restore FILE, --record-ws MS, --ws-mode before|race. */
static int boot_opt_restore(struct boot_opts *o, int c, const char *arg)
{
	if (c == 'X') {
		o->restore = arg;
		o->cfg.incoming = true; /* no kernel: the state comes */
		return 0;
	}
	if (c == 'Y') {
		o->ws_race = !strcmp(arg, "race");
		if (o->ws_race || !strcmp(arg, "before"))
			return 0;
		fprintf(stderr, "vmmctl boot: --ws-mode '%s': expected before "
				"or race\n",
			arg);
		return -EINVAL;
	}
	if (boot_parse_u64(arg, 3600000, &o->record_ws_ms) == 0 &&
	    o->record_ws_ms)
		return 0;
	fprintf(stderr, "vmmctl boot: --record-ws '%s': need milliseconds, "
			"1 to 3600000\n",
		arg);
	return -EINVAL;
}

static int boot_opt_value(struct boot_opts *o, int c, const char *arg)
{
	int r;

	switch (c) {
	case 'k':
		o->cfg.kernel = arg;
		return 0;
	case 'a':
		o->cfg.append = arg;
		return 0;
	case 'i':
		o->cfg.initrd = arg;
		return 0;
	case 's':
		o->cfg.serial_path = arg;
		return 0;
	case 'r':
		o->serial_in = arg;
		return 0;
	case 'b':
		o->cfg.hb_log_path = arg;
		return 0;
	case 'K':
		o->cfg.kvm_path = arg;
		return 0;
	case 'A':
		o->api = arg;
		return 0;
	case 'I':
		o->incoming = arg;
		o->mig.spec = arg;
		o->cfg.incoming = true;
		o->cfg.mem_handed_over = !strncmp(arg, "unix:", 5);
		return 0;
	case 'T':
		o->mig.tls_dir = arg;
		return 0;
	case 'Z':
		o->mig.tls_authz = arg;
		return 0;
	case 'N':
		o->mig.insecure = true;
		return 0;
	case 'D':
		return boot_opt_device(&o->cfg, arg);
	case 'X':
	case 'W':
	case 'Y':
		return boot_opt_restore(o, c, arg);
	case 'c':
		o->cpus_given = true;
		if (boot_parse_cpus(arg, &o->cfg.nr_cpus) == 0)
			return 0;
		fprintf(stderr,
			"vmmctl boot: --cpus '%s': need a whole number "
			"from 1 to %d\n",
			arg, GUEST_MAX_CPUS);
		return -EINVAL;
	case 'm':
		o->mem_given = true;
		r = boot_parse_mem(arg, &o->cfg.mem_size);
		if (r == 0)
			return 0;
		if (r == -ERANGE)
			fprintf(stderr,
				"vmmctl boot: --mem '%s': guest RAM must "
				"be 16M to 64G in whole 4 KiB pages\n",
				arg);
		else
			fprintf(stderr,
				"vmmctl boot: --mem '%s': not a size "
				"(examples: 512M, 2G, 1024)\n",
				arg);
		return -EINVAL;
	}
	return boot_opt_memory(o, c, arg);
}

/* --restore goes alone: no kernel, no --incoming; --record-ws is lazy's. */
static int boot_check_restore(const struct boot_opts *o)
{
	const char *bad = NULL;

	if (o->restore && (o->cfg.kernel || o->cfg.append || o->cfg.initrd))
		bad = "--restore takes the guest from the file: no --kernel "
		      "or --append (nor --initrd)";
	else if (o->restore && o->incoming)
		bad = "--restore and --incoming exclude each other";
	else if ((o->record_ws_ms || o->ws_race) &&
		 (!o->restore || !o->cfg.mem_lazy))
		bad = "--record-ws and --ws-mode go with --restore FILE "
		      "--mem-mode lazy";
	if (bad)
		fprintf(stderr, "vmmctl boot: %s\n", bad);
	return bad ? -EINVAL : 0;
}

static int boot_parse(int argc, char **argv, struct boot_opts *o)
{
	static const struct option longopts[] = {
		{"kernel", required_argument, NULL, 'k'},
		{"append", required_argument, NULL, 'a'},
		{"initrd", required_argument, NULL, 'i'},
		{"mem", required_argument, NULL, 'm'},
		{"cpus", required_argument, NULL, 'c'},
		{"api", required_argument, NULL, 'A'},
		{"serial", required_argument, NULL, 's'},
		{"serial-in", required_argument, NULL, 'r'},
		{"heartbeat-log", required_argument, NULL, 'b'},
		{"kvm-device", required_argument, NULL, 'K'},
		{"mem-mode", required_argument, NULL, 'M'},
		{"mem-prealloc", no_argument, NULL, 'P'},
		{"mlock", no_argument, NULL, 'L'},
		{"fault-stall-ms", required_argument, NULL, 'S'},
		{"dirty-ring", required_argument, NULL, 'R'},
		{"incoming", required_argument, NULL, 'I'},
		{"device", required_argument, NULL, 'D'},
		{"tls-dir", required_argument, NULL, 'T'},
		{"tls-authz", required_argument, NULL, 'Z'},
		{"insecure", no_argument, NULL, 'N'},
		{"restore", required_argument, NULL, 'X'},
		{"record-ws", required_argument, NULL, 'W'},
		{"ws-mode", required_argument, NULL, 'Y'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->cfg.mem_size = BOOT_DEFAULT_MEM;
	o->cfg.nr_cpus = 1;
	o->cfg.fault_stall_ms = BOOT_STALL_MS;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'h') {
			fputs(boot_usage, stdout);
			fputs(dev_types_help(), stdout);
			return 1;
		}
		if (c == '?' || c == ':') {
			fprintf(stderr,
				"vmmctl boot: %s '%s' (see vmmctl boot "
				"--help)\n",
				c == '?' ? "unknown option"
					 : "missing value for",
				argv[optind - 1]);
			return -EINVAL;
		}
		if (boot_opt_value(o, c, optarg))
			return -EINVAL;
	}
	if (optind < argc) {
		fprintf(stderr,
			"vmmctl boot: unexpected argument '%s' (see "
			"vmmctl boot --help)\n",
			argv[optind]);
		return -EINVAL;
	}
	if (o->incoming && (o->cfg.kernel || o->cfg.append || o->cfg.initrd)) {
		fprintf(stderr, "vmmctl boot: --incoming takes the guest from "
				"the source: no --kernel or --append (nor "
				"--initrd)\n");
		return -EINVAL;
	}
	if (!o->incoming &&
	    (o->mig.tls_dir || o->mig.tls_authz || o->mig.insecure)) {
		fprintf(stderr, "vmmctl boot: --tls-dir, --tls-authz and "
				"--insecure go with --incoming\n");
		return -EINVAL;
	}
	if (o->cfg.mem_prealloc && o->cfg.mem_lazy) {
		fprintf(stderr, "vmmctl boot: --mem-prealloc populates what "
				"--mem-mode lazy leaves missing: not both\n");
		return -EINVAL;
	}
	if (o->cfg.mem_handed_over && (o->mig.tls_dir || o->mig.tls_authz ||
				       o->mig.insecure)) {
		fprintf(stderr, "vmmctl boot: --incoming unix: is local (no "
				"TLS: the socket file's mode 0600 admits the "
				"source); no --tls-dir, --tls-authz or "
				"--insecure\n");
		return -EINVAL;
	}
	if (boot_check_restore(o))
		return -EINVAL;
	if (!o->cfg.kernel && !o->incoming && !o->restore) {
		fprintf(stderr, "vmmctl boot: --kernel FILE is required\n");
		return -EINVAL;
	}
	return 0;
}

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
