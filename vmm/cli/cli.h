/* SPDX-License-Identifier: MIT */
/*
 * vmm/cli/ - vmmctl, the command-line application: the top floor.
 *
 * It owns the command line: one command table (main.c), the flags, usage
 * and help of every command, and what is printed and returned as the exit
 * status. `vmmctl boot` (cmd_boot.c; its options: boot_opts.c) makes this
 * process the VMM: it owns the process life cycle (the event loop, signals,
 * terminal input) and serves the control socket with the handlers of
 * vmm/ctl/. Every other command is
 * a client of a running VMM (client.c): the VM commands (cmd_vm.c) send one
 * request and print its reply, migrate (cmd_migrate.c) also watches the
 * migration's events. Each command returns the process exit status; only
 * main() exits. Single-threaded, except the VMM that boot becomes.
 */
#ifndef VMM_CLI_CLI_H
#define VMM_CLI_CLI_H

#include <jansson.h>
#include <stdbool.h>

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

/* The commands, one file per group; main.c lists them for --help. */
extern const struct vmmctl_cmd vmmctl_boot; /* cmd_boot.c */
extern const struct vmmctl_cmd vmmctl_status, vmmctl_pause, vmmctl_resume,
	vmmctl_stop, vmmctl_guest_request, vmmctl_stats, vmmctl_dirty_log,
	vmmctl_translate;			   /* cmd_vm.c */
extern const struct vmmctl_cmd vmmctl_migrate;	   /* cmd_migrate.c */
extern const struct vmmctl_cmd vmmctl_migrate_set; /* cmd_migrate_set.c */
extern const struct vmmctl_cmd vmmctl_snapshot;	   /* cmd_snapshot.c */

/*
 * cmd_migrate_set.c: a RATE (MiB/s, or 100M, 1GiB/s, ...; 0: no cap) into
 * args[key] in bytes a second; else one line on stderr, -EINVAL.
 */
int cli_parse_rate(const char *cmd, const char *flag, const char *s,
		   json_t *args, const char *key);

/* client.c: what the client commands share. */
void client_help(const struct vmmctl_cmd *cmd);
/* Report the getopt failure c for arg (the argv element), opt = optopt. */
void client_bad_flag(const struct vmmctl_cmd *cmd, int c, const char *arg,
		     int opt);
/* --api, --cpu and operands: 0 parsed, 1 help shown, -EINVAL bad usage. */
int client_parse(const struct vmmctl_cmd *cmd, int argc, char **argv,
		 struct client_opts *o);
/* "vmmctl CMD: what (see vmmctl CMD --help)"; returns -EINVAL. */
int client_usage_err(const struct vmmctl_cmd *cmd, const char *what);
/* A reply to the exit status: the result on stdout, or the error. */
int client_report(const struct vmmctl_cmd *cmd, const char *api, json_t *reply);
/*
 * Send cmd with args (stolen) to api and report the reply: the exit
 * status. slow: the VMM may take minutes (control_call_long).
 */
int client_call(const struct vmmctl_cmd *cmd, const char *api, json_t *args,
		bool slow);

#endif /* VMM_CLI_CLI_H */
