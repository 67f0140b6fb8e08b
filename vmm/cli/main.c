// SPDX-License-Identifier: MIT
/*
 * main.c - vmmctl's command table and main(). `vmmctl boot` becomes the VMM
 * (cmd_boot.c); every other subcommand is a client of a running VMM's control
 * socket: it parses its flags, sends one request with control_call, prints
 * the reply's result as indented JSON on stdout (exit 0) or the error as
 * "vmmctl CMD: code: message" on stderr (exit 1). Bad usage is one line on
 * stderr and exit 2. Single-threaded; only main() exits.
 */
#include <stdio.h>
#include <string.h>

#include "vmm/cli/cli.h"

/* In the order vmmctl --help lists them. */
static const struct vmmctl_cmd *const vmmctl_cmds[] = {
	&vmmctl_boot,	   &vmmctl_status,	&vmmctl_pause,
	&vmmctl_resume,	   &vmmctl_stop,	&vmmctl_guest_request,
	&vmmctl_migrate,   &vmmctl_migrate_set, &vmmctl_stats,
	&vmmctl_dirty_log, &vmmctl_translate,	&vmmctl_snapshot,
};

#define NR_CMDS (sizeof(vmmctl_cmds) / sizeof(vmmctl_cmds[0]))

static void vmmctl_usage(FILE *f)
{
	fputs("usage: vmmctl COMMAND [options]\n"
	      "\n"
	      "Commands:\n",
	      f);
	for (size_t i = 0; i < NR_CMDS; i++)
		fprintf(f, "  %-14s %s\n", vmmctl_cmds[i]->name,
			vmmctl_cmds[i]->summary);
	fputs("\n"
	      "Run 'vmmctl COMMAND --help' for a command's options.\n",
	      f);
}

static const struct vmmctl_cmd *vmmctl_find(const char *name)
{
	for (size_t i = 0; i < NR_CMDS; i++)
		if (strcmp(vmmctl_cmds[i]->name, name) == 0)
			return vmmctl_cmds[i];
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
