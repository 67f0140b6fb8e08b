/* SPDX-License-Identifier: MIT */
/*
 * boot_opts.h - `vmmctl boot`'s command line (boot_opts.c): the options a
 * VMM process starts with, parsed and checked against each other.
 */
#ifndef VMM_CLI_BOOT_OPTS_H
#define VMM_CLI_BOOT_OPTS_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/ctl/boot_app.h"
#include "vmm/vm.h"

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

/*
 * Parse argv into o. Returns 0, 1 after printing --help, or -EINVAL after
 * one line on stderr naming what is wrong.
 */
int boot_parse(int argc, char **argv, struct boot_opts *o);

#endif /* VMM_CLI_BOOT_OPTS_H */
