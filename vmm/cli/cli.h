/* SPDX-License-Identifier: MIT */
/*
 * cmd.h - vmmctl subcommands. Each takes the arguments after its name
 * (argv[0] is the subcommand) and returns the process exit status; only
 * main() exits.
 */
#ifndef VMM_CLI_CLI_H
#define VMM_CLI_CLI_H

/* vmmctl boot: this process becomes the VMM. Exits with the guest's code. */
int cmd_boot(int argc, char **argv);

#endif /* VMM_CLI_CLI_H */
