// SPDX-License-Identifier: MIT
/*
 * cmd_vm.c - the commands that act on a running VM through its control
 * socket: status, pause, resume, stop, guest-request, stats, dirty-log and
 * translate. Each parses its flags and operands, sends one request with
 * control_call and prints the reply (client.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/cli/cli.h"
#include "vmm/ctl/control.h"
#include "vmm/ctl/ctl_proto.h"

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

static int run_client(const struct vmmctl_cmd *cmd, int argc, char **argv)
{
	struct client_opts o;
	json_t *args;
	int r;

	r = client_parse(cmd, argc, argv, &o);
	if (r)
		return r > 0 ? 0 : EXIT_USAGE;
	r = client_args(cmd, &o, &args);
	if (r)
		return r == -EINVAL ? EXIT_USAGE : 1;
	return client_call(cmd, o.api, args, false);
}

const struct vmmctl_cmd vmmctl_status = {
	.name = "status",
	.usage = "--api SOCK",
	.summary = "show the VM's state and counters",
	.help = "Print the VM's state (running, paused, stopping), its "
		"shape, kernel,\n"
		"heartbeat and marker counters and uptime as JSON; "
		"with --device pt,\n"
		"the pt device's counters too (\"pt\").\n",
	.run = run_client,
};

const struct vmmctl_cmd vmmctl_pause = {
	.name = "pause",
	.usage = "--api SOCK",
	.summary = "stop running the vCPUs",
	.help = "Pause every vCPU. Fails with bad-state when the VM is "
		"not running.\n",
	.run = run_client,
};

const struct vmmctl_cmd vmmctl_resume = {
	.name = "resume",
	.usage = "--api SOCK",
	.summary = "run the vCPUs again after pause",
	.help = "Resume a paused VM. Fails with bad-state when it is "
		"not paused.\n",
	.run = run_client,
};

const struct vmmctl_cmd vmmctl_stop = {
	.name = "stop",
	.usage = "--api SOCK",
	.summary = "stop the VM; the VMM exits",
	.help = "Stop the VM: the VMM posts a \"shutdown\" event, "
		"closes the control\n"
		"socket and exits with status 0.\n",
	.run = run_client,
};

const struct vmmctl_cmd vmmctl_guest_request = {
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
};

const struct vmmctl_cmd vmmctl_stats = {
	.name = "stats",
	.usage = "--api SOCK",
	.summary = "show vCPU, dirty-log and fault counters",
	.help = "Print per-vCPU exit counters, dirty-log statistics "
		"and, in lazy\n"
		"memory mode, second-level fault counts and latency "
		"percentiles.\n",
	.run = run_client,
};

const struct vmmctl_cmd vmmctl_dirty_log = {
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
};

const struct vmmctl_cmd vmmctl_translate = {
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
};
