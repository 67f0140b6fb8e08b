// SPDX-License-Identifier: MIT
/*
 * cmd_migrate.c - `vmmctl migrate`: start a live migration (or cancel,
 * resume or abort one) on a running VMM, then watch its events: a progress
 * line on a terminal, the final statistics as JSON on stdout, and the exit
 * status saying where the VM runs.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migration/migration.h"
#include "vmm/cli/cli.h"
#include "vmm/ctl/control.h"
#include "vmm/ctl/ctl_proto.h"

struct migrate_opts {
	const char *api, *to, *mode, *limit, *rounds, *budget, *quiesce;
	const char *push, *compress, *tls_dir, *tls_hostname;
	const char *tcp_cc; /* --tcp-congestion NAME */
	const char *max_bw, *pc_bw;
	const char *channels; /* --channels N */
	const char *listen; /* --recover --listen ADDR (destination) */
	bool verify, cancel, resume, abort, confirm, insecure, recover;
	bool auto_converge;
};

static int migrate_number(const char *flag, const char *s, const char *unit,
			  json_t **out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (unit && !strcmp(end, unit))
		end += strlen(unit);
	if (errno || end == s || *end || *s == '-') {
		fprintf(stderr, "vmmctl migrate: %s '%s' is not a number%s\n",
			flag, s, unit ? " of milliseconds" : "");
		return -EINVAL;
	}
	*out = json_integer((json_int_t)v);
	return 0;
}

/* A --precopy-budget unit: what it sends, and the range it allows. */
struct budget_unit {
	const char *unit, *key, *range;
	unsigned long long mult, min, max;
};

static const struct budget_unit budget_units[] = {
	{"ms", "precopy_budget_ms", "1ms..3600s", 1, 1, CTL_MIG_BUDGET_MS_MAX},
	{"s", "precopy_budget_ms", "1ms..3600s", 1000, 1,
	 CTL_MIG_BUDGET_MS_MAX},
	{"KiB", "precopy_budget_bytes", "1MiB..1024GiB", 1ULL << 10,
	 CTL_MIG_BUDGET_BYTES_MIN, CTL_MIG_BUDGET_BYTES_MAX},
	{"MiB", "precopy_budget_bytes", "1MiB..1024GiB", 1ULL << 20,
	 CTL_MIG_BUDGET_BYTES_MIN, CTL_MIG_BUDGET_BYTES_MAX},
	{"GiB", "precopy_budget_bytes", "1MiB..1024GiB", 1ULL << 30,
	 CTL_MIG_BUDGET_BYTES_MIN, CTL_MIG_BUDGET_BYTES_MAX},
};

/* --precopy-budget's unit (NULL: none of them); *v its number. */
static const struct budget_unit *migrate_budget_unit(const char *s,
						     unsigned long long *v)
{
	char *end;

	if (*s < '0' || *s > '9')
		return NULL;
	errno = 0;
	*v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		*v = ULLONG_MAX; /* out of range, once its unit is known */
	for (size_t i = 0; i < sizeof(budget_units) / sizeof(budget_units[0]);
	     i++)
		if (!strcmp(end, budget_units[i].unit))
			return &budget_units[i];
	return NULL;
}

/* --precopy-budget 500ms|2s|256MiB|1GiB into args (ms or bytes). */
static int migrate_budget(const char *s, json_t *args)
{
	const struct budget_unit *u;
	unsigned long long v;

	u = migrate_budget_unit(s, &v);
	if (!u) {
		fprintf(stderr,
			"vmmctl migrate: --precopy-budget '%s' is not a "
			"duration (ms, s) or a size (KiB, MiB, GiB)\n",
			s);
		return -EINVAL;
	}
	if (v > u->max / u->mult || v * u->mult < u->min) {
		fprintf(stderr,
			"vmmctl migrate: --precopy-budget '%s' is out of range "
			"(%s)\n",
			s, u->range);
		return -EINVAL;
	}
	json_object_set_new(args, u->key,
			    json_integer((json_int_t)(v * u->mult)));
	return 0;
}

/* --quiesce-timeout 500ms|2s|N (ms) into args, 1 ms .. 600 s. */
static int migrate_quiesce(const char *s, json_t *args)
{
	unsigned long long v, mult = 1;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (!strcmp(end, "s"))
		mult = 1000;
	else if (*end && strcmp(end, "ms"))
		end = (char *)s;
	if (errno || end == s || *s < '0' || *s > '9') {
		fprintf(stderr,
			"vmmctl migrate: --quiesce-timeout '%s' is not a "
			"duration (500ms, 2s)\n",
			s);
		return -EINVAL;
	}
	if (v == 0 || v > CTL_MIG_QUIESCE_MS_MAX / mult) {
		fprintf(stderr,
			"vmmctl migrate: --quiesce-timeout '%s' is out of "
			"range "
			"(1ms..600s)\n",
			s);
		return -EINVAL;
	}
	json_object_set_new(args, "quiesce_timeout_ms",
			    json_integer((json_int_t)(v * mult)));
	return 0;
}

/* The one-line reason when the flags do not go together; NULL: they do. */
static const char *migrate_conflict(const struct migrate_opts *o)
{
	bool tuning = o->mode || o->limit || o->rounds || o->channels ||
		      o->verify ||
		      o->budget || o->quiesce || o->push || o->tls_dir ||
		      o->tls_hostname || o->insecure || o->max_bw || o->pc_bw ||
		      o->auto_converge || o->tcp_cc;
	int mode = o->mode ? mig_mode_parse(o->mode) : MIG_MODE_HYBRID;

	if (o->confirm && !o->abort)
		return "--confirm goes with --abort";
	if (o->recover != !!o->listen)
		return "--recover and --listen tcp:HOST:PORT go together";
	if (o->recover &&
	    (o->to || tuning || o->cancel || o->resume || o->abort))
		return "--recover takes only --listen";
	if (o->cancel && (o->to || tuning || o->resume || o->abort))
		return "--cancel takes no other option";
	if (o->resume && (tuning || o->abort))
		return "--resume takes only --to";
	if (o->abort && (o->to || tuning))
		return "--abort takes only --confirm";
	if (!o->cancel && !o->resume && !o->abort && !o->recover && !o->to)
		return "--to tcp:HOST:PORT (or unix:PATH) is required";
	if (o->tls_hostname && !o->tls_dir)
		return "--tls-hostname goes with --tls-dir";
	if (o->insecure && o->tls_dir)
		return "--insecure and --tls-dir exclude each other";
	if (o->budget && o->mode &&
	    mig_mode_parse(o->mode) == MIG_MODE_POSTCOPY)
		return "--precopy-budget is not used with --mode postcopy";
	if (o->push && o->mode && mig_mode_parse(o->mode) == MIG_MODE_PRECOPY)
		return "--push-order is not used with --mode precopy";
	if (o->auto_converge && mode != MIG_MODE_PRECOPY)
		return "--auto-converge goes with --mode precopy";
	if (o->pc_bw && mode == MIG_MODE_PRECOPY)
		return "--postcopy-bandwidth is not used with --mode precopy";
	return NULL;
}

static int migrate_check(const struct vmmctl_cmd *cmd,
			 const struct migrate_opts *o)
{
	const char *conflict = migrate_conflict(o);

	if (!o->api)
		return client_usage_err(cmd, "--api SOCK is required");
	if (conflict)
		return client_usage_err(cmd, conflict);
	if (o->abort && !o->confirm) {
		fputs("vmmctl migrate: --abort gives up the post-copy "
		      "migration: the destination lacks pages and the guest's "
		      "run there is lost; repeat with --confirm\n",
		      stderr);
		return -EINVAL;
	}
	return 0;
}

static int migrate_parse(int argc, char **argv, struct migrate_opts *o)
{
	static const struct option longopts[] = {
		{"api", required_argument, NULL, 'A'},
		{"to", required_argument, NULL, 't'},
		{"mode", required_argument, NULL, 'm'},
		{"downtime-limit", required_argument, NULL, 'd'},
		{"max-rounds", required_argument, NULL, 'r'},
		{"channels", required_argument, NULL, 'n'},
		{"precopy-budget", required_argument, NULL, 'b'},
		{"quiesce-timeout", required_argument, NULL, 'q'},
		{"push-order", required_argument, NULL, 'p'},
		{"compress", required_argument, NULL, 'z'},
		{"verify", no_argument, NULL, 'v'},
		{"max-bandwidth", required_argument, NULL, 'B'},
		{"postcopy-bandwidth", required_argument, NULL, 'P'},
		{"auto-converge", no_argument, NULL, 'C'},
		{"tls-dir", required_argument, NULL, 'T'},
		{"tls-hostname", required_argument, NULL, 'H'},
		{"insecure", no_argument, NULL, 'N'},
		{"tcp-congestion", required_argument, NULL, 'G'},
		{"cancel", no_argument, NULL, 'c'},
		{"resume", no_argument, NULL, 'R'},
		{"abort", no_argument, NULL, 'a'},
		{"confirm", no_argument, NULL, 'y'},
		{"recover", no_argument, NULL, 'V'},
		{"listen", required_argument, NULL, 'L'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const struct vmmctl_cmd *cmd = &vmmctl_migrate;
	int c;

	memset(o, 0, sizeof(*o));
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'A':
			o->api = optarg;
			break;
		case 't':
			o->to = optarg;
			break;
		case 'm':
			o->mode = optarg;
			break;
		case 'd':
			o->limit = optarg;
			break;
		case 'r':
			o->rounds = optarg;
			break;
		case 'n':
			o->channels = optarg;
			break;
		case 'b':
			o->budget = optarg;
			break;
		case 'q':
			o->quiesce = optarg;
			break;
		case 'p':
			o->push = optarg;
			break;
		case 'z':
			o->compress = optarg;
			break;
		case 'v':
			o->verify = true;
			break;
		case 'B':
			o->max_bw = optarg;
			break;
		case 'P':
			o->pc_bw = optarg;
			break;
		case 'C':
			o->auto_converge = true;
			break;
		case 'T':
			o->tls_dir = optarg;
			break;
		case 'H':
			o->tls_hostname = optarg;
			break;
		case 'N':
			o->insecure = true;
			break;
		case 'G':
			o->tcp_cc = optarg;
			break;
		case 'c':
			o->cancel = true;
			break;
		case 'R':
			o->resume = true;
			break;
		case 'a':
			o->abort = true;
			break;
		case 'y':
			o->confirm = true;
			break;
		case 'V':
			o->recover = true;
			break;
		case 'L':
			o->listen = optarg;
			break;
		case 'h':
			client_help(cmd);
			return 1;
		default:
			client_bad_flag(cmd, c, argv[optind - 1], optopt);
			return -EINVAL;
		}
	}
	if (optind < argc)
		return client_usage_err(cmd, "unexpected argument");
	return migrate_check(cmd, o);
}

/*
 * --tls-dir travels to the VMM, whose working directory may differ: send
 * it absolute. A directory that does not resolve goes as given, and the
 * VMM names the file it cannot read.
 */
static int migrate_tls_dir(const char *dir, json_t *a)
{
	char *abs = realpath(dir, NULL);

	json_object_set_new(a, "tls_dir", json_string(abs ? abs : dir));
	free(abs);
	return 0;
}

/* The tuning flags of a new migration into a. */
static int migrate_tuning_args(const struct migrate_opts *o, json_t *a)
{
	json_t *v;

	if (o->mode)
		json_object_set_new(a, "mode", json_string(o->mode));
	if (o->push)
		json_object_set_new(a, "push_order", json_string(o->push));
	if (o->compress)
		json_object_set_new(a, "compress", json_string(o->compress));
	if (o->verify)
		json_object_set_new(a, "verify", json_true());
	if (o->auto_converge)
		json_object_set_new(a, "auto_converge", json_true());
	if ((o->max_bw && cli_parse_rate("migrate", "--max-bandwidth",
					 o->max_bw, a, "max_bandwidth")) ||
	    (o->pc_bw && cli_parse_rate("migrate", "--postcopy-bandwidth",
					o->pc_bw, a, "postcopy_bandwidth")))
		return -EINVAL;
	if (o->insecure)
		json_object_set_new(a, "insecure", json_true());
	if (o->tls_hostname)
		json_object_set_new(a, "tls_hostname",
				    json_string(o->tls_hostname));
	if (o->tcp_cc)
		json_object_set_new(a, "tcp_congestion", json_string(o->tcp_cc));
	if (o->tls_dir && migrate_tls_dir(o->tls_dir, a))
		return -EINVAL;
	if (o->limit) {
		if (migrate_number("--downtime-limit", o->limit, "ms", &v))
			return -EINVAL;
		json_object_set_new(a, "downtime_limit_ms", v);
	}
	if (o->rounds) {
		if (migrate_number("--max-rounds", o->rounds, NULL, &v))
			return -EINVAL;
		json_object_set_new(a, "max_rounds", v);
	}
	if (o->channels) {
		if (migrate_number("--channels", o->channels, NULL, &v))
			return -EINVAL;
		json_object_set_new(a, "channels", v);
	}
	if (o->budget && migrate_budget(o->budget, a))
		return -EINVAL;
	if (o->quiesce && migrate_quiesce(o->quiesce, a))
		return -EINVAL;
	return 0;
}

/* --cancel, --resume or --abort: the args member; NULL for a new one. */
static const char *migrate_action(const struct migrate_opts *o)
{
	if (o->cancel)
		return "cancel";
	if (o->resume)
		return "resume";
	if (o->recover)
		return "recover";
	return o->abort ? "abort" : NULL;
}

static json_t *migrate_args(const struct migrate_opts *o)
{
	const char *action = migrate_action(o);
	json_t *a = json_object();

	if (action)
		json_object_set_new(a, action, json_true());
	if (o->confirm)
		json_object_set_new(a, "confirm", json_true());
	if (o->to)
		json_object_set_new(a, "to", json_string(o->to));
	if (o->listen)
		json_object_set_new(a, "listen", json_string(o->listen));
	if (!action && migrate_tuning_args(o, a)) {
		json_decref(a);
		return NULL;
	}
	return a;
}

struct migrate_watch {
	const char *api;
	bool tty;
	bool noticed; /* the migration's notice was printed */
	int result;   /* exit status once the migration ended */
	bool ended;
};

static json_int_t migrate_get(json_t *d, const char *k)
{
	return json_integer_value(json_object_get(d, k));
}

/*
 * A choice the migration made against what was asked (--mode postcopy
 * went pre-copy): once. Hybrid's fall-back is one of its outcomes: the
 * statistics carry it, stderr stays for errors.
 */
static void migrate_notice(struct migrate_watch *w, json_t *d)
{
	const char *n = json_string_value(json_object_get(d, "notice"));
	const char *mode = json_string_value(json_object_get(d, "mode"));

	if (!n || w->noticed || !mode || strcmp(mode, "postcopy"))
		return;
	w->noticed = true;
	fprintf(stderr, "%svmmctl migrate: %s\n", w->tty ? "\r" : "", n);
}

static void migrate_progress(struct migrate_watch *w, json_t *d)
{
	migrate_notice(w, d);
	if (!w->tty)
		return;
	if (json_is_true(json_object_get(d, "postcopy")))
		fprintf(stderr,
			"\rpost-copy  pushed %lld pages  requested %lld  "
			"lacking %lld  ",
			(long long)migrate_get(d, "postcopy_pushed_pages"),
			(long long)migrate_get(d, "memory_postcopy_requests"),
			(long long)migrate_get(d, "postcopy_lacking_pages"));
	else
		fprintf(stderr,
			"\rround %lld  remaining %6.1f MiB  dirty %8.1f MiB/s  "
			"bandwidth %8.1f MiB/s  ",
			(long long)migrate_get(d, "memory_iteration"),
			migrate_get(d, "memory_remaining") / 1048576.0,
			migrate_get(d, "memory_dirty_rate") * 4096.0 /
				1048576.0,
			migrate_get(d, "memory_bps") / 1048576.0);
	fflush(stderr);
}

/* The last statistics: on stdout, after the progress line. */
static void migrate_print_stats(struct migrate_watch *w, json_t *d)
{
	if (w->tty)
		fputc('\n', stderr);
	json_dumpf(d, stdout, JSON_INDENT(2));
	putchar('\n');
	fflush(stdout);
}

/* Post-copy paused: the watch ends (exit 1), but the VM lives on. */
static int migrate_paused(struct migrate_watch *w, json_t *d)
{
	migrate_print_stats(w, d);
	fprintf(stderr,
		"vmmctl migrate: post-copy paused (%s); the VM is not lost: "
		"vmmctl migrate --api %s --resume [--to tcp:HOST:PORT], or "
		"--abort --confirm to give it up\n",
		json_string_value(json_object_get(d, "errmsg"))
			?: "connection lost",
		w->api);
	w->ended = true;
	w->result = 1;
	return 1;
}

static int migrate_on_event(void *opaque, json_t *ev)
{
	struct migrate_watch *w = opaque;
	const char *name = json_string_value(json_object_get(ev, "event"));
	json_t *d = json_object_get(ev, "data");

	if (!name)
		return 0;
	if (!strcmp(name, "migration-progress")) {
		migrate_progress(w, d);
		return 0;
	}
	if (!strcmp(name, "migration-paused"))
		return migrate_paused(w, d);
	if (strcmp(name, "migration-complete") &&
	    strcmp(name, "migration-failed") &&
	    strcmp(name, "migration-cancelled"))
		return 0;
	migrate_notice(w, d);
	migrate_print_stats(w, d);
	w->ended = true;
	w->result = strcmp(name, "migration-complete") ? 1 : 0;
	if (w->result)
		fprintf(stderr, "vmmctl migrate: %s: %s\n",
			strcmp(name, "migration-failed") ? "cancelled"
							 : "failed",
			json_string_value(json_object_get(d, "errmsg"))
				?: "no reason given");
	return 1;
}

static int run_migrate(const struct vmmctl_cmd *cmd, int argc, char **argv)
{
	struct migrate_watch w = {.tty = isatty(STDERR_FILENO)};
	struct migrate_opts o;
	json_t *args, *reply;
	char err[512];
	bool once;
	int r = migrate_parse(argc, argv, &o);

	if (r)
		return r > 0 ? 0 : EXIT_USAGE;
	args = migrate_args(&o);
	if (!args)
		return EXIT_USAGE;
	/* cancel and abort: the reply says it all; start and resume: watch. */
	once = o.cancel || o.abort || o.recover;
	w.api = o.api;
	if (once) {
		r = control_call(o.api, cmd->name, args, &reply, err,
				 sizeof(err));
	} else {
		r = control_call_watch(o.api, cmd->name, args, &reply,
				       migrate_on_event, &w, err, sizeof(err));
	}
	if (r < 0 && !(reply && w.ended)) {
		fprintf(stderr, "vmmctl migrate: %s\n", err);
		json_decref(reply);
		return 1;
	}
	if (!json_is_true(json_object_get(reply, "ok")) || once) {
		r = client_report(cmd, o.api, reply);
		json_decref(reply);
		return r;
	}
	json_decref(reply);
	return w.ended ? w.result : 1;
}

const struct vmmctl_cmd vmmctl_migrate = {
	.name = "migrate",
	.usage = "--api SOCK --to tcp:HOST:PORT|unix:PATH [options]\n"
		 "       vmmctl migrate --api SOCK --cancel\n"
		 "       vmmctl migrate --api SOCK --resume [--to "
		 "tcp:HOST:PORT]\n"
		 "       vmmctl migrate --api SOCK --abort --confirm\n"
		 "       vmmctl migrate --api SOCK --recover --listen "
		 "tcp:HOST:PORT",
	.summary = "live-migrate the VM to a destination VMM",
	.help = "Migrate the running VM to a VMM started with `vmmctl "
		"boot --incoming`.\n"
		"Shows a progress line on a terminal and prints the "
		"final statistics\n"
		"(libvirt job-stat names) as JSON. Exit 0 when the "
		"destination runs the\n"
		"VM (this VMM then exits), 1 when the migration failed "
		"or was cancelled\n"
		"(the VM keeps running here) or when a post-copy "
		"migration paused (its\n"
		"connection broke; nothing is lost: --resume or "
		"--abort --confirm).\n"
		"\n"
		"  --to tcp:HOST:PORT     the destination (required to "
		"start a migration)\n"
		"  --to unix:PATH         live update: a VMM on this host "
		"(boot --incoming\n"
		"                         unix:PATH) takes the VM; guest "
		"RAM is handed over\n"
		"                         (memfd), not copied: mode "
		"local, no TLS, no --verify\n"
		"  --mode MODE            hybrid (default): pre-copy, "
		"then post-copy if it\n"
		"                         will not converge; precopy: "
		"pre-copy only, stop-copy\n"
		"                         at the latest at the budget; "
		"postcopy: switch at\n"
		"                         once, then push pages and "
		"fetch those the guest touches;\n"
		"                         local: live update (the mode "
		"of a unix: address)\n"
		"  --downtime-limit MS    stop-copy when the rest fits "
		"(default 10; \"5ms\" ok)\n"
		"  --max-rounds N         then stop-copy regardless "
		"(default 30)\n"
		"  --precopy-budget V     end pre-copy after a time "
		"(500ms, 2s) or after\n"
		"                         sending so much (256MiB, "
		"1GiB); not with postcopy\n"
		"  --quiesce-timeout T    how long a passthrough "
		"device's driver may take\n"
		"                         to release its buffers "
		"(default 1s; 500ms, 2s)\n"
		"  --push-order O         post-copy push order: "
		"accessed (default: a fault's\n"
		"                         neighbours, then pages the "
		"page tables mark accessed),\n"
		"                         faults, or linear\n"
		"  --channels N           pre-copy's pages over N "
		"connections (1..8, default 1;\n"
		"                         the destination places each "
		"on its own thread)\n"
		"  --compress C           pre-copy pages: auto (default: "
		"zstd where a sample\n"
		"                         of the batch says it pays), "
		"none, or zstd (always)\n"
		"  --verify               compare sums of page digests "
		"of guest RAM on both\n"
		"                         sides (kept as pages move: "
		"~no downtime)\n"
		"  --max-bandwidth RATE   cap pre-copy and the post-copy "
		"push (MiB/s, or\n"
		"                         100M, 1GiB/s...; live: vmmctl "
		"migrate-set)\n"
		"  --postcopy-bandwidth RATE  cap the post-copy push "
		"instead\n"
		"  --auto-converge        with --mode precopy: hold the "
		"vCPUs paused a growing\n"
		"                         share of the time until "
		"pre-copy converges\n"
		"  --tls-dir DIR          mutual TLS 1.3 with ca.pem, "
		"cert.pem, key.pem in DIR\n"
		"                         (the destination needs "
		"--tls-dir too)\n"
		"  --tls-hostname NAME    the name the destination's "
		"certificate must carry\n"
		"                         (default: the host of --to)\n"
		"  --insecure             plaintext to a non-loopback "
		"address (else refused\n"
		"                         without --tls-dir)\n"
		"  --tcp-congestion NAME  TCP congestion control of every "
		"connection, e.g.\n"
		"                         cubic (default: the system's, "
		"net.ipv4.tcp_congestion_control)\n"
		"  --cancel               cancel the migration in "
		"progress (before the switch)\n"
		"  --resume               resume a paused post-copy "
		"migration and watch it;\n"
		"                         with --to: at the "
		"destination's new address\n"
		"  --abort                give a post-copy migration "
		"up: the destination\n"
		"                         lacks pages and the guest's "
		"run there is lost\n"
		"  --confirm              confirm --abort (required "
		"with it)\n"
		"  --recover --listen tcp:HOST:PORT\n"
		"                         on a destination whose "
		"post-copy is paused: listen\n"
		"                         for the resume there instead "
		"(the source then\n"
		"                         resumes with --resume --to "
		"that address)\n",
	.run = run_migrate,
};
