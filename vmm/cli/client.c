// SPDX-License-Identifier: MIT
/*
 * client.c - what vmmctl's client commands share: the --api and --cpu
 * flags, the one-line usage errors, and turning a reply into output and an
 * exit status.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "vmm/cli/cli.h"
#include "vmm/ctl/control.h"

static const char client_opts_help[] =
	"\n"
	"  --api SOCK   the VMM's control socket (required)\n"
	"  -h, --help   show this help\n"
	"\n"
	"Exit status: 0 on success, 1 when the VMM refuses or cannot be\n"
	"reached, 2 on bad usage.\n";

void client_help(const struct vmmctl_cmd *cmd)
{
	printf("usage: vmmctl %s %s\n\n%s%s", cmd->name, cmd->usage, cmd->help,
	       client_opts_help);
}

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

void client_bad_flag(const struct vmmctl_cmd *cmd, int c, const char *arg,
		     int opt)
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

int client_parse(const struct vmmctl_cmd *cmd, int argc, char **argv,
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

int client_usage_err(const struct vmmctl_cmd *cmd, const char *what)
{
	fprintf(stderr, "vmmctl %s: %s (see vmmctl %s --help)\n", cmd->name,
		what, cmd->name);
	return -EINVAL;
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

int client_report(const struct vmmctl_cmd *cmd, const char *api, json_t *reply)
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

int client_call(const struct vmmctl_cmd *cmd, const char *api, json_t *args,
		bool slow)
{
	char err[512];
	json_t *reply;
	int r;

	r = slow ? control_call_long(api, cmd->name, args, &reply, err,
				     sizeof(err))
		 : control_call(api, cmd->name, args, &reply, err,
				sizeof(err));
	if (r < 0) {
		fprintf(stderr, "vmmctl %s: %s\n", cmd->name, err);
		return 1;
	}
	r = client_report(cmd, api, reply);
	json_decref(reply);
	return r;
}
