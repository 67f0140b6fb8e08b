/* SPDX-License-Identifier: MIT */
/*
 * cmd_snapshot.c - `vmmctl snapshot`: write a running VM's snapshot to a
 * file (paused, or --live), or store the working set a restored VM
 * recorded into the snapshot it came from (--ws). docs/snapshot.md.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/cli/cli.h"

struct snap_opts {
	const char *api, *to, *ws;
	int live;
};

static int snap_parse(const struct vmmctl_cmd *cmd, int argc, char **argv,
		      struct snap_opts *o)
{
	static const struct option longopts[] = {
		{"api", required_argument, NULL, 'A'},
		{"to", required_argument, NULL, 't'},
		{"live", no_argument, NULL, 'l'},
		{"ws", required_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	memset(o, 0, sizeof(*o));
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'h') {
			client_help(cmd);
			return 1;
		}
		if (c == 'A')
			o->api = optarg;
		else if (c == 't')
			o->to = optarg;
		else if (c == 'w')
			o->ws = optarg;
		else if (c == 'l')
			o->live = 1;
		else {
			client_bad_flag(cmd, c, argv[optind - 1], optopt);
			return -EINVAL;
		}
	}
	if (optind < argc)
		return client_usage_err(cmd, "unexpected argument");
	if (!o->api)
		return client_usage_err(cmd, "--api SOCK is required");
	if (!o->to == !o->ws)
		return client_usage_err(cmd, "give --to FILE or --ws FILE");
	if (o->ws && o->live)
		return client_usage_err(cmd, "--live goes with --to");
	return 0;
}

static int snap_run(const struct vmmctl_cmd *cmd, int argc, char **argv)
{
	struct snap_opts o;
	json_t *args;
	int r = snap_parse(cmd, argc, argv, &o);

	if (r)
		return r > 0 ? 0 : EXIT_USAGE;
	args = o.ws ? json_pack("{s:s}", "ws", o.ws)
		    : json_pack("{s:s, s:b}", "to", o.to, "live", o.live);
	if (!args)
		return 1;
	return client_call(cmd, o.api, args, true);
}

const struct vmmctl_cmd vmmctl_snapshot = {
	.name = "snapshot",
	.usage = "--api SOCK --to FILE [--live] | --api SOCK --ws FILE",
	.summary = "write the VM's snapshot to a file, or store a working set",
	.help = "Write a snapshot of the VM to FILE (docs/snapshot.md): its\n"
		"shape, its machine state and its RAM, zero pages as holes.\n"
		"The VM is paused while the file is written and then resumed\n"
		"(left paused if it was). The file appears whole or not at\n"
		"all. Restore it with vmmctl boot --restore FILE.\n"
		"\n"
		"  --to FILE    the snapshot to write (replaced atomically)\n"
		"  --live       keep the VM running while RAM is written, in\n"
		"               dirty-tracking rounds; pause only for the "
		"last\n"
		"               dirty pages and the state\n"
		"  --ws FILE    instead: store the working set this VM "
		"recorded\n"
		"               (it was started with boot --restore FILE\n"
		"               --mem-mode lazy --record-ws MS) in FILE as "
		"its\n"
		"               loading set, which later lazy restores place\n"
		"               before the guest runs\n",
	.run = snap_run,
};
