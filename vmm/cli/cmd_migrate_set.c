// SPDX-License-Identifier: MIT
/*
 * cmd_migrate_set.c - `vmmctl migrate-set`: change the bandwidth caps of
 * the migration under way (the control command migrate-set), and the
 * parser of a RATE that it shares with `vmmctl migrate --max-bandwidth`.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "vmm/cli/cli.h"
#include "vmm/ctl/control.h"
#include "vmm/ctl/ctl_proto.h"

/* A RATE's suffix: bytes a second it stands for. */
struct rate_unit {
	const char *suffix;
	unsigned long long mult;
};

static const struct rate_unit rate_units[] = {
	{"", 1ULL << 20}, /* a bare number: MiB/s, as QEMU's -m is MiB */
	{"B/s", 1},
	{"K", 1ULL << 10},
	{"KiB/s", 1ULL << 10},
	{"M", 1ULL << 20},
	{"MiB/s", 1ULL << 20},
	{"G", 1ULL << 30},
	{"GiB/s", 1ULL << 30},
};

int cli_parse_rate(const char *cmd, const char *flag, const char *s,
		   json_t *args, const char *key)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s < '0' || *s > '9')
		goto bad;
	for (size_t i = 0; i < sizeof(rate_units) / sizeof(rate_units[0]);
	     i++) {
		unsigned long long mult = rate_units[i].mult;

		if (strcasecmp(end, rate_units[i].suffix))
			continue;
		if (v > CTL_MIG_BANDWIDTH_MAX / mult) {
			fprintf(stderr,
				"vmmctl %s: %s '%s' is out of range (up to "
				"1 TiB/s)\n",
				cmd, flag, s);
			return -EINVAL;
		}
		json_object_set_new(args, key,
				    json_integer((json_int_t)(v * mult)));
		return 0;
	}
bad:
	fprintf(stderr,
		"vmmctl %s: %s '%s' is not a rate (MiB/s; or with B/s, "
		"KiB/s, MiB/s, GiB/s, K, M, G; 0: no cap)\n",
		cmd, flag, s);
	return -EINVAL;
}

static int migrate_set_parse(int argc, char **argv, const char **api,
			     json_t *args)
{
	static const struct option longopts[] = {
		{"api", required_argument, NULL, 'A'},
		{"max-bandwidth", required_argument, NULL, 'B'},
		{"postcopy-bandwidth", required_argument, NULL, 'P'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const struct vmmctl_cmd *cmd = &vmmctl_migrate_set;
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'A') {
			*api = optarg;
		} else if (c == 'B' || c == 'P') {
			if (cli_parse_rate(cmd->name, argv[optind - 1], optarg,
					   args,
					   c == 'B' ? "max_bandwidth"
						    : "postcopy_bandwidth"))
				return -EINVAL;
		} else if (c == 'h') {
			client_help(cmd);
			return 1;
		} else {
			client_bad_flag(cmd, c, argv[optind - 1], optopt);
			return -EINVAL;
		}
	}
	if (optind < argc)
		return client_usage_err(cmd, "unexpected argument");
	if (!*api)
		return client_usage_err(cmd, "--api SOCK is required");
	if (!json_object_size(args))
		return client_usage_err(cmd,
					"--max-bandwidth and/or "
					"--postcopy-bandwidth is required");
	return 0;
}

static int run_migrate_set(const struct vmmctl_cmd *cmd, int argc, char **argv)
{
	json_t *args = json_object(), *reply = NULL;
	const char *api = NULL;
	char err[512];
	int r = migrate_set_parse(argc, argv, &api, args);

	if (r) {
		json_decref(args);
		return r > 0 ? 0 : EXIT_USAGE;
	}
	if (control_call(api, cmd->name, args, &reply, err, sizeof(err)) < 0 &&
	    !reply) {
		fprintf(stderr, "vmmctl %s: %s\n", cmd->name, err);
		return 1;
	}
	r = client_report(cmd, api, reply);
	json_decref(reply);
	return r;
}

const struct vmmctl_cmd vmmctl_migrate_set = {
	.name = "migrate-set",
	.usage = "--api SOCK [--max-bandwidth RATE] [--postcopy-bandwidth "
		 "RATE]",
	.summary = "change the bandwidth caps of the migration under way",
	.help = "Change the caps of the outgoing migration in progress; they "
		"apply from the\n"
		"next batch of pages. Prints the caps now in force as JSON.\n"
		"\n"
		"  --max-bandwidth RATE       pre-copy rounds and the "
		"post-copy push\n"
		"  --postcopy-bandwidth RATE  the post-copy push (overrides "
		"the other there)\n"
		"\n"
		"RATE: a number of MiB/s, or with a unit: 500K, 100M, 1G, "
		"100MiB/s,\n"
		"1GiB/s, 1048576B/s; 0 removes the cap.\n",
	.run = run_migrate_set,
};
