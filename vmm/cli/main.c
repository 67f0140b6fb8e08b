// SPDX-License-Identifier: MIT
/*
 * vmmctl.c - the command-line front end. `vmmctl boot` becomes the VMM
 * (cmd_boot); every other subcommand is a client of a running VMM's control
 * socket: it parses its flags, sends one request with control_call, prints
 * the reply's result as indented JSON on stdout (exit 0) or the error as
 * "vmmctl CMD: code: message" on stderr (exit 1). Bad usage is one line on
 * stderr and exit 2. Single-threaded; only main() exits.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/cli/cli.h"
#include "vmm/ctl/control.h"
#include "vmm/ctl/ctl_proto.h"

#define EXIT_USAGE 2

struct client_opts {
	const char *api;
	const char *cpu; /* translate --cpu N */
	char **operands;
	int nr_operands;
};

struct vmmctl_cmd {
	const char *name;
	const char *usage;   /* what follows "vmmctl NAME" */
	const char *summary; /* one line for vmmctl --help */
	const char *help;    /* the body of vmmctl NAME --help */
	int (*run)(const struct vmmctl_cmd *cmd, int argc, char **argv);
	int positional; /* client commands: how many operands they take */
	/* client commands with operands: build the request's args */
	int (*args)(const struct vmmctl_cmd *cmd, const struct client_opts *o,
		    json_t **args);
};

static const char client_opts_help[] =
	"\n"
	"  --api SOCK   the VMM's control socket (required)\n"
	"  -h, --help   show this help\n"
	"\n"
	"Exit status: 0 on success, 1 when the VMM refuses or cannot be\n"
	"reached, 2 on bad usage.\n";

static int run_boot(const struct vmmctl_cmd *cmd, int argc, char **argv)
{
	return cmd_boot(argc, argv);
}

static int run_client(const struct vmmctl_cmd *cmd, int argc, char **argv);
static int run_migrate(const struct vmmctl_cmd *cmd, int argc, char **argv);
static const struct vmmctl_cmd *vmmctl_find(const char *name);
static int args_guest_request(const struct vmmctl_cmd *cmd,
			      const struct client_opts *o, json_t **args);
static int args_dirty_log(const struct vmmctl_cmd *cmd,
			  const struct client_opts *o, json_t **args);
static int args_translate(const struct vmmctl_cmd *cmd,
			  const struct client_opts *o, json_t **args);

static const struct vmmctl_cmd vmmctl_cmds[] = {
	{
		.name = "boot",
		.usage = "--kernel FILE [options]",
		.summary = "run a VM; this process is the VMM",
		.run = run_boot,
	},
	{
		.name = "status",
		.usage = "--api SOCK",
		.summary = "show the VM's state and counters",
		.help = "Print the VM's state (running, paused, stopping), its "
			"shape, kernel,\n"
			"heartbeat and marker counters and uptime as JSON; "
			"with --device pt,\n"
			"the pt device's counters too (\"pt\").\n",
		.run = run_client,
	},
	{
		.name = "pause",
		.usage = "--api SOCK",
		.summary = "stop running the vCPUs",
		.help = "Pause every vCPU. Fails with bad-state when the VM is "
			"not running.\n",
		.run = run_client,
	},
	{
		.name = "resume",
		.usage = "--api SOCK",
		.summary = "run the vCPUs again after pause",
		.help = "Resume a paused VM. Fails with bad-state when it is "
			"not paused.\n",
		.run = run_client,
	},
	{
		.name = "stop",
		.usage = "--api SOCK",
		.summary = "stop the VM; the VMM exits",
		.help = "Stop the VM: the VMM posts a \"shutdown\" event, "
			"closes the control\n"
			"socket and exits with status 0.\n",
		.run = run_client,
	},
	{
		.name = "guest-request",
		.usage = "--api SOCK REQUEST [ARG]",
		.summary = "post a request to the test guest's mailbox",
		.help = "Post REQUEST (with the number ARG, default 0) to the "
			"test guest's mailbox:\n"
			"  verify         check every page of the current "
			"workload now\n"
			"  stop-workload  end the current workload and run the "
			"next one\n"
			"  touch SEED     `touch` workload: write the page set "
			"of SEED\n",
		.run = run_client,
		.positional = 2,
		.args = args_guest_request,
	},
	{
		.name = "migrate",
		.usage = "--api SOCK --to tcp:HOST:PORT [options]\n"
			 "       vmmctl migrate --api SOCK --cancel\n"
			 "       vmmctl migrate --api SOCK --resume [--to "
			 "tcp:HOST:PORT]\n"
			 "       vmmctl migrate --api SOCK --abort --confirm",
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
			"  --mode MODE            hybrid (default): pre-copy, "
			"then post-copy if it\n"
			"                         will not converge; precopy: "
			"pre-copy only, stop-copy\n"
			"                         at the latest at the budget; "
			"postcopy: switch at\n"
			"                         once, then push pages and "
			"fetch those the guest touches\n"
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
			"  --verify               compare SHA-256 of guest RAM "
			"on both sides\n"
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
			"with it)\n",
		.run = run_migrate,
	},
	{
		.name = "stats",
		.usage = "--api SOCK",
		.summary = "show vCPU, dirty-log and fault counters",
		.help = "Print per-vCPU exit counters, dirty-log statistics "
			"and, in lazy\n"
			"memory mode, second-level fault counts and latency "
			"percentiles.\n",
		.run = run_client,
	},
	{
		.name = "dirty-log",
		.usage = "--api SOCK start|harvest|stop",
		.summary = "drive dirty-page logging (measure a dirty rate)",
		.help = "start    turn dirty logging on (the log starts "
			"empty)\n"
			"harvest  collect what was dirtied since the last "
			"harvest: pages,\n"
			"         dirty rate and what the harvest cost\n"
			"stop     turn dirty logging off\n",
		.run = run_client,
		.positional = 1,
		.args = args_dirty_log,
	},
	{
		.name = "translate",
		.usage = "--api SOCK --cpu N GVA",
		.summary = "walk a vCPU's page tables: GVA -> GPA",
		.help = "Translate the guest-virtual address GVA (decimal or "
			"0x hex) with\n"
			"vCPU N's CR3 and print the GPA and every level of the "
			"walk. The VM\n"
			"is paused for the walk if it was running.\n"
			"\n"
			"  --cpu N      the vCPU whose page tables to walk "
			"(required)\n",
		.run = run_client,
		.positional = 1,
		.args = args_translate,
	},
};

#define NR_CMDS (sizeof(vmmctl_cmds) / sizeof(vmmctl_cmds[0]))

static void vmmctl_usage(FILE *f)
{
	fputs("usage: vmmctl COMMAND [options]\n"
	      "\n"
	      "Commands:\n",
	      f);
	for (size_t i = 0; i < NR_CMDS; i++)
		fprintf(f, "  %-14s %s\n", vmmctl_cmds[i].name,
			vmmctl_cmds[i].summary);
	fputs("\n"
	      "Run 'vmmctl COMMAND --help' for a command's options.\n",
	      f);
}

static void client_help(const struct vmmctl_cmd *cmd)
{
	printf("usage: vmmctl %s %s\n\n%s%s", cmd->name, cmd->usage, cmd->help,
	       client_opts_help);
}

/* ---- client commands ----------------------------------------------- */

static const struct option client_longopts[] = {
	{"api", required_argument, NULL, 'A'},
	{"cpu", required_argument, NULL, 'c'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* 1 when arg ("--name=value") names one of our long options. */
static int client_known_long(const char *arg, int len)
{
	for (const struct option *o = client_longopts; o->name; o++)
		if ((int)strlen(o->name) == len - 2 &&
		    !strncmp(o->name, arg + 2, len - 2))
			return 1;
	return 0;
}

/* Report the getopt failure c for arg (the argv element), opt = optopt. */
static void client_bad_flag(const struct vmmctl_cmd *cmd, int c,
			    const char *arg, int opt)
{
	const char *what = "unknown option";
	int len = (int)strcspn(arg, "=");
	char shortopt[3] = {'-', (char)opt, '\0'};

	if (strncmp(arg, "--", 2) != 0 && opt) {
		arg = shortopt; /* e.g. "-x" out of "-vx" */
		len = 2;
	}
	if (c == ':')
		what = "missing value for";
	else if (arg[len] == '=' && client_known_long(arg, len))
		what = "no value allowed for";
	fprintf(stderr, "vmmctl %s: %s '%.*s' (see vmmctl %s --help)\n",
		cmd->name, what, len, arg, cmd->name);
}

/* 0 parsed, 1 help shown, -EINVAL bad usage (reported). */
static int client_parse(const struct vmmctl_cmd *cmd, int argc, char **argv,
			struct client_opts *o)
{
	int c;

	memset(o, 0, sizeof(*o));
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", client_longopts, NULL)) !=
	       -1) {
		switch (c) {
		case 'A':
			o->api = optarg;
			break;
		case 'c':
			o->cpu = optarg;
			break;
		case 'h':
			client_help(cmd);
			return 1;
		default:
			client_bad_flag(cmd, c, argv[optind - 1], optopt);
			return -EINVAL;
		}
	}
	o->operands = argv + optind;
	o->nr_operands = argc - optind;
	if (o->nr_operands > cmd->positional) {
		fprintf(stderr,
			"vmmctl %s: unexpected argument '%s' (see vmmctl %s "
			"--help)\n",
			cmd->name, o->operands[cmd->positional], cmd->name);
		return -EINVAL;
	}
	if (!o->api) {
		fprintf(stderr, "vmmctl %s: --api SOCK is required\n",
			cmd->name);
		return -EINVAL;
	}
	return 0;
}

static int client_usage_err(const struct vmmctl_cmd *cmd, const char *what)
{
	fprintf(stderr, "vmmctl %s: %s (see vmmctl %s --help)\n", cmd->name,
		what, cmd->name);
	return -EINVAL;
}

/* A number operand (decimal or 0x hex) as a JSON string the VMM parses. */
static int client_number(const struct vmmctl_cmd *cmd, const char *what,
			 const char *s, json_t **out)
{
	char *end;

	errno = 0;
	strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-') {
		fprintf(stderr, "vmmctl %s: %s '%s' is not a number\n",
			cmd->name, what, s);
		return -EINVAL;
	}
	*out = json_string(s);
	return *out ? 0 : -ENOMEM;
}

static int args_guest_request(const struct vmmctl_cmd *cmd,
			      const struct client_opts *o, json_t **args)
{
	const char *req;
	json_t *arg = NULL;

	if (o->nr_operands < 1)
		return client_usage_err(cmd, "REQUEST is required (verify, "
					     "stop-workload or touch)");
	req = o->operands[0];
	if (ctl_guest_req_from_name(req) < 0) {
		fprintf(stderr,
			"vmmctl %s: unknown request '%s' (expected verify, "
			"stop-workload or touch)\n",
			cmd->name, req);
		return -EINVAL;
	}
	if (o->nr_operands > 1 &&
	    client_number(cmd, "ARG", o->operands[1], &arg))
		return -EINVAL;
	*args = arg ? json_pack("{s:s, s:o}", "request", req, "arg", arg)
		    : json_pack("{s:s}", "request", req);
	return *args ? 0 : -ENOMEM;
}

static int args_dirty_log(const struct vmmctl_cmd *cmd,
			  const struct client_opts *o, json_t **args)
{
	if (o->nr_operands < 1)
		return client_usage_err(cmd, "ACTION is required (start, "
					     "harvest or stop)");
	*args = json_pack("{s:s}", "action", o->operands[0]);
	return *args ? 0 : -ENOMEM;
}

static int args_translate(const struct vmmctl_cmd *cmd,
			  const struct client_opts *o, json_t **args)
{
	json_t *cpu, *gva;

	if (!o->cpu)
		return client_usage_err(cmd, "--cpu N is required");
	if (o->nr_operands < 1)
		return client_usage_err(cmd, "GVA is required");
	if (client_number(cmd, "--cpu", o->cpu, &cpu))
		return -EINVAL;
	if (client_number(cmd, "GVA", o->operands[0], &gva)) {
		json_decref(cpu);
		return -EINVAL;
	}
	*args = json_pack("{s:o, s:o}", "cpu", cpu, "gva", gva);
	return *args ? 0 : -ENOMEM;
}

/* Build the request's args from the operands; *args NULL when none. */
static int client_args(const struct vmmctl_cmd *cmd,
		       const struct client_opts *o, json_t **args)
{
	*args = NULL;
	if (o->cpu && cmd->args != args_translate)
		return client_usage_err(cmd, "--cpu is only for translate");
	return cmd->args ? cmd->args(cmd, o, args) : 0;
}

/* Print an ok reply's result to stdout: 0, or 1 when stdout fails. */
static int client_print_result(const struct vmmctl_cmd *cmd, json_t *reply)
{
	json_t *result = json_object_get(reply, "result");
	json_t *empty = json_object();
	int r = 0;

	if (json_dumpf(result ? result : empty, stdout, JSON_INDENT(2)) < 0 ||
	    putchar('\n') == EOF || fflush(stdout) == EOF) {
		fprintf(stderr, "vmmctl %s: cannot write the result: %s\n",
			cmd->name, strerror(errno));
		r = 1;
	}
	json_decref(empty);
	return r;
}

/* Turn a reply into the exit status, printing what the user needs. */
static int client_report(const struct vmmctl_cmd *cmd, const char *api,
			 json_t *reply)
{
	json_t *ok = json_object_get(reply, "ok");
	json_t *error = json_object_get(reply, "error");
	const char *code, *msg;

	if (json_is_true(ok))
		return client_print_result(cmd, reply);
	code = json_string_value(json_object_get(error, "code"));
	msg = json_string_value(json_object_get(error, "message"));
	if (!json_is_false(ok) || !code || !msg) {
		fprintf(stderr, "vmmctl %s: malformed reply from %s\n",
			cmd->name, api);
		return 1;
	}
	fprintf(stderr, "vmmctl %s: %s: %s\n", cmd->name, code, msg);
	return 1;
}

static int run_client(const struct vmmctl_cmd *cmd, int argc, char **argv)
{
	struct client_opts o;
	char err[512];
	json_t *args, *reply;
	int r;

	r = client_parse(cmd, argc, argv, &o);
	if (r)
		return r > 0 ? 0 : EXIT_USAGE;
	r = client_args(cmd, &o, &args);
	if (r)
		return r == -EINVAL ? EXIT_USAGE : 1;
	r = control_call(o.api, cmd->name, args, &reply, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "vmmctl %s: %s\n", cmd->name, err);
		return 1;
	}
	r = client_report(cmd, o.api, reply);
	json_decref(reply);
	return r;
}

/* ---- migrate ---------------------------------------------------------- */

struct migrate_opts {
	const char *api, *to, *mode, *limit, *rounds, *budget, *quiesce;
	const char *push;
	bool verify, cancel, resume, abort, confirm;
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
	bool tuning = o->mode || o->limit || o->rounds || o->verify ||
		      o->budget || o->quiesce || o->push;

	if (o->confirm && !o->abort)
		return "--confirm goes with --abort";
	if (o->cancel && (o->to || tuning || o->resume || o->abort))
		return "--cancel takes no other option";
	if (o->resume && (tuning || o->abort))
		return "--resume takes only --to";
	if (o->abort && (o->to || tuning))
		return "--abort takes only --confirm";
	if (!o->cancel && !o->resume && !o->abort && !o->to)
		return "--to tcp:HOST:PORT is required";
	if (o->budget && o->mode &&
	    mig_mode_parse(o->mode) == MIG_MODE_POSTCOPY)
		return "--precopy-budget is not used with --mode postcopy";
	if (o->push && o->mode && mig_mode_parse(o->mode) == MIG_MODE_PRECOPY)
		return "--push-order is not used with --mode precopy";
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
		{"precopy-budget", required_argument, NULL, 'b'},
		{"quiesce-timeout", required_argument, NULL, 'q'},
		{"push-order", required_argument, NULL, 'p'},
		{"verify", no_argument, NULL, 'v'},
		{"cancel", no_argument, NULL, 'c'},
		{"resume", no_argument, NULL, 'R'},
		{"abort", no_argument, NULL, 'a'},
		{"confirm", no_argument, NULL, 'y'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const struct vmmctl_cmd *cmd = vmmctl_find("migrate");
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
		case 'b':
			o->budget = optarg;
			break;
		case 'q':
			o->quiesce = optarg;
			break;
		case 'p':
			o->push = optarg;
			break;
		case 'v':
			o->verify = true;
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

/* The tuning flags of a new migration into a. */
static int migrate_tuning_args(const struct migrate_opts *o, json_t *a)
{
	json_t *v;

	if (o->mode)
		json_object_set_new(a, "mode", json_string(o->mode));
	if (o->push)
		json_object_set_new(a, "push_order", json_string(o->push));
	if (o->verify)
		json_object_set_new(a, "verify", json_true());
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
	if (!action && migrate_tuning_args(o, a)) {
		json_decref(a);
		return NULL;
	}
	return a;
}

struct migrate_watch {
	const char *api;
	bool tty;
	int result; /* exit status once the migration ended */
	bool ended;
};

static json_int_t migrate_get(json_t *d, const char *k)
{
	return json_integer_value(json_object_get(d, k));
}

static void migrate_progress(struct migrate_watch *w, json_t *d)
{
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
	once = o.cancel || o.abort;
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

/* ---- main ------------------------------------------------------------ */

static const struct vmmctl_cmd *vmmctl_find(const char *name)
{
	for (size_t i = 0; i < NR_CMDS; i++)
		if (strcmp(vmmctl_cmds[i].name, name) == 0)
			return &vmmctl_cmds[i];
	return NULL;
}

static int is_help(const char *arg)
{
	return !strcmp(arg, "--help") || !strcmp(arg, "-h") ||
	       !strcmp(arg, "help");
}

/* vmmctl help [COMMAND] */
static int vmmctl_help(int argc, char **argv)
{
	const struct vmmctl_cmd *cmd;
	char *sub[3];

	if (argc < 3 || is_help(argv[2])) {
		vmmctl_usage(stdout);
		return 0;
	}
	cmd = vmmctl_find(argv[2]);
	if (!cmd) {
		fprintf(stderr,
			"vmmctl: unknown command '%s' (see vmmctl --help)\n",
			argv[2]);
		return EXIT_USAGE;
	}
	sub[0] = argv[2];
	sub[1] = "--help";
	sub[2] = NULL;
	return cmd->run(cmd, 2, sub);
}

int main(int argc, char **argv)
{
	const struct vmmctl_cmd *cmd;

	if (argc < 2) {
		vmmctl_usage(stderr);
		return EXIT_USAGE;
	}
	if (is_help(argv[1]))
		return vmmctl_help(argc, argv);
	cmd = vmmctl_find(argv[1]);
	if (!cmd) {
		fprintf(stderr, "vmmctl: unknown %s '%s' (see vmmctl --help)\n",
			argv[1][0] == '-' ? "option" : "command", argv[1]);
		return EXIT_USAGE;
	}
	return cmd->run(cmd, argc - 1, argv + 1);
}
