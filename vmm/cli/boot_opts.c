/* SPDX-License-Identifier: MIT */
/*
 * boot_opts.c - `vmmctl boot`'s options: the usage text, each flag's value
 * parsed and range-checked, and the combinations refused (--incoming with a
 * kernel, TLS without --incoming, --restore's companions, ...). Pure: runs
 * on the main thread before the VMM exists; every error is one line on
 * stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/cli/boot_opts.h"

#define BOOT_DEFAULT_MEM (256ULL << 20)
#define BOOT_STALL_MS	 1000 /* default --fault-stall-ms */

static const char boot_usage[] =
	"usage: vmmctl boot --kernel FILE [options]\n"
	"\n"
	"Run a VM in this process until the guest exits or it is stopped.\n"
	"Exits with the guest's exit code (0 after `vmmctl stop`,\n"
	"128+N after signal N, 1 when the VMM fails, 2 on bad usage).\n"
	"\n"
	"  --kernel FILE         guest to boot (required): our static ELF64\n"
	"                        test guest, a Multiboot v1 image, a Linux\n"
	"                        vmlinux (PVH entry) or bzImage\n"
	"  --append CMDLINE      guest command line, e.g. \"heartbeat\"\n"
	"  --initrd FILE         Multiboot: FILE is the one module; Linux\n"
	"                        (vmlinux through PVH, bzImage): the initrd\n"
	"  --mem SIZE            guest RAM, 16M..64G (default 256M; a plain\n"
	"                        number is MiB)\n"
	"  --cpus N              number of vCPUs, 1..32 (default 1)\n"
	"  --api SOCK            serve the control API on UNIX socket SOCK\n"
	"  --serial FILE         write serial output to FILE, not stdout\n"
	"  --serial-in FILE|-    the UART receives FILE's bytes, or stdin's\n"
	"                        with '-' (default: stdin when it is a\n"
	"                        terminal or a pipe; else no input); reading\n"
	"                        pauses while the receive FIFO is full\n"
	"  --heartbeat-log FILE  log \"<seq> <CLOCK_MONOTONIC ns>\" per "
	"heartbeat\n"
	"                        (\" <stall us>\" after it when the guest\n"
	"                        sends its own stall)\n"
	"  --mem-mode MODE       eager (default) or lazy: RAM is populated on\n"
	"                        first touch through userfaultfd "
	"(demand-zero)\n"
	"  --mem-prealloc        allocate all guest RAM at boot (on a\n"
	"                        destination: when the VM is created, before\n"
	"                        the switch); not with --mem-mode lazy\n"
	"  --mlock               keep guest RAM in memory (mlock2 on fault:\n"
	"                        RLIMIT_MEMLOCK must cover --mem unless root)\n"
	"  --fault-stall-ms MS   in lazy mode, report a fault waiting longer\n"
	"                        as a fault-stalled event (default 1000)\n"
	"  --dirty-ring ENTRIES  track dirty pages with a per-vCPU dirty ring\n"
	"                        of ENTRIES (power of two, >= 512) instead of\n"
	"                        the dirty bitmap\n"
	"  --device SPEC         add a device (at most one of each type; the\n"
	"                        devices/ layer lists them below)\n"
	"  --incoming tcp:ADDR:PORT\n"
	"                        be a migration destination: listen there and\n"
	"                        run the VM the source sends (same --mem,\n"
	"                        --cpus and --device as the source; no\n"
	"                        --kernel)\n"
	"  --incoming unix:PATH  live update: take the VM of a VMM on this\n"
	"                        host (migrate --to unix:PATH), its guest RAM\n"
	"                        shared, not copied; PATH is created mode 0600\n"
	"  --tls-dir DIR         with --incoming: mutual TLS 1.3; DIR holds\n"
	"                        ca.pem, cert.pem, key.pem (see\n"
	"                        scripts/mkcerts.sh); a source is admitted\n"
	"                        only with a certificate of that CA\n"
	"  --tls-authz NAME[,NAME...]\n"
	"                        and only if its certificate names one of\n"
	"                        these identities (subject CN or SAN)\n"
	"  --insecure            with --incoming: accept a plaintext\n"
	"                        migration on a non-loopback address\n"
	"                        (refused without --tls-dir otherwise)\n"
	"  --tcp-congestion NAME with --incoming: TCP congestion control\n"
	"                        of the connections accepted, e.g. cubic\n"
	"                        (default: the system's)\n"
	"  --restore FILE        start the VM from snapshot FILE (vmmctl\n"
	"                        snapshot) instead of booting a kernel;\n"
	"                        --mem and --cpus default to the file's,\n"
	"                        --device must match; --mem-mode eager\n"
	"                        reads all RAM first, lazy loads it on\n"
	"                        demand and in the background\n"
	"  --record-ws MS        with --restore and --mem-mode lazy: record\n"
	"                        the pages the guest touches in its first MS\n"
	"                        ms (vmmctl snapshot --ws FILE stores them)\n"
	"  --ws-mode MODE        with --restore --mem-mode lazy of a file with\n"
	"                        a loading set: before (default) places it\n"
	"                        before the vCPUs run; race: the loader\n"
	"                        places it first while the guest runs\n"
	"  --kvm-device PATH     KVM device (default /dev/kvm)\n"
	"  -h, --help            show this help\n";

/* ---- options ---------------------------------------------------------- */

static int boot_parse_cpus(const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > GUEST_MAX_CPUS)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

static int boot_parse_mem(const char *s, uint64_t *out)
{
	struct mem_region regs[GUEST_MEM_MAX_REGS];

	if (mem_parse_size(s, out))
		return -EINVAL;
	if (mem_layout(*out, regs, GUEST_MEM_MAX_REGS) < 0)
		return -ERANGE;
	return 0;
}

static int boot_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || *out > max)
		return -EINVAL;
	return 0;
}

static int boot_opt_memory(struct boot_opts *o, int c, const char *arg)
{
	uint64_t v;

	switch (c) {
	case 'M':
		if (!strcmp(arg, "lazy") || !strcmp(arg, "eager")) {
			o->cfg.mem_lazy = !strcmp(arg, "lazy");
			return 0;
		}
		fprintf(stderr,
			"vmmctl boot: --mem-mode '%s': expected eager "
			"or lazy\n",
			arg);
		return -EINVAL;
	case 'P':
		o->cfg.mem_prealloc = true;
		return 0;
	case 'L':
		o->cfg.mem_lock = true;
		return 0;
	case 'S':
		if (boot_parse_u64(arg, 3600000, &o->cfg.fault_stall_ms) == 0)
			return 0;
		fprintf(stderr,
			"vmmctl boot: --fault-stall-ms '%s': need "
			"milliseconds, 0 to 3600000\n",
			arg);
		return -EINVAL;
	case 'R':
		if (boot_parse_u64(arg, 1U << 31, &v) == 0 && v) {
			o->cfg.dirty_backend = DIRTY_RING;
			o->cfg.dirty_ring_entries = (uint32_t)v;
			return 0;
		}
		fprintf(stderr,
			"vmmctl boot: --dirty-ring '%s': need a number "
			"of entries\n",
			arg);
		return -EINVAL;
	}
	return -EINVAL;
}

/* One option of --device pt (len bytes at opt): "rate=PPS". */
/* --device SPEC: parsed by the device layer, which knows the types. */
static int boot_opt_device(struct vm_config *cfg, const char *arg)
{
	char err[256];

	if (dev_request_parse(arg, cfg->devices, cfg->nr_devices,
			      &cfg->devices[cfg->nr_devices], err,
			      sizeof(err))) {
		fprintf(stderr, "vmmctl boot: --device: %s\n", err);
		return -EINVAL;
	}
	cfg->nr_devices++;
	return 0;
}

/* --restore FILE, --record-ws MS, --ws-mode before|race. */
static int boot_opt_restore(struct boot_opts *o, int c, const char *arg)
{
	if (c == 'X') {
		o->restore = arg;
		o->cfg.incoming = true; /* no kernel: the state comes */
		return 0;
	}
	if (c == 'Y') {
		o->ws_race = !strcmp(arg, "race");
		if (o->ws_race || !strcmp(arg, "before"))
			return 0;
		fprintf(stderr, "vmmctl boot: --ws-mode '%s': expected before "
				"or race\n",
			arg);
		return -EINVAL;
	}
	if (boot_parse_u64(arg, 3600000, &o->record_ws_ms) == 0 &&
	    o->record_ws_ms)
		return 0;
	fprintf(stderr, "vmmctl boot: --record-ws '%s': need milliseconds, "
			"1 to 3600000\n",
		arg);
	return -EINVAL;
}

static int boot_opt_value(struct boot_opts *o, int c, const char *arg)
{
	int r;

	switch (c) {
	case 'k':
		o->cfg.kernel = arg;
		return 0;
	case 'a':
		o->cfg.append = arg;
		return 0;
	case 'i':
		o->cfg.initrd = arg;
		return 0;
	case 's':
		o->cfg.serial_path = arg;
		return 0;
	case 'r':
		o->serial_in = arg;
		return 0;
	case 'b':
		o->cfg.hb_log_path = arg;
		return 0;
	case 'K':
		o->cfg.kvm_path = arg;
		return 0;
	case 'A':
		o->api = arg;
		return 0;
	case 'I':
		o->incoming = arg;
		o->mig.spec = arg;
		o->cfg.incoming = true;
		o->cfg.mem_handed_over = !strncmp(arg, "unix:", 5);
		return 0;
	case 'T':
		o->mig.tls_dir = arg;
		return 0;
	case 'Z':
		o->mig.tls_authz = arg;
		return 0;
	case 'N':
		o->mig.insecure = true;
		return 0;
	case 'G':
		o->mig.tcp_congestion = arg;
		return 0;
	case 'D':
		return boot_opt_device(&o->cfg, arg);
	case 'X':
	case 'W':
	case 'Y':
		return boot_opt_restore(o, c, arg);
	case 'c':
		o->cpus_given = true;
		if (boot_parse_cpus(arg, &o->cfg.nr_cpus) == 0)
			return 0;
		fprintf(stderr,
			"vmmctl boot: --cpus '%s': need a whole number "
			"from 1 to %d\n",
			arg, GUEST_MAX_CPUS);
		return -EINVAL;
	case 'm':
		o->mem_given = true;
		r = boot_parse_mem(arg, &o->cfg.mem_size);
		if (r == 0)
			return 0;
		if (r == -ERANGE)
			fprintf(stderr,
				"vmmctl boot: --mem '%s': guest RAM must "
				"be 16M to 64G in whole 4 KiB pages\n",
				arg);
		else
			fprintf(stderr,
				"vmmctl boot: --mem '%s': not a size "
				"(examples: 512M, 2G, 1024)\n",
				arg);
		return -EINVAL;
	}
	return boot_opt_memory(o, c, arg);
}

/* --restore goes alone: no kernel, no --incoming; --record-ws is lazy's. */
static int boot_check_restore(const struct boot_opts *o)
{
	const char *bad = NULL;

	if (o->restore && (o->cfg.kernel || o->cfg.append || o->cfg.initrd))
		bad = "--restore takes the guest from the file: no --kernel "
		      "or --append (nor --initrd)";
	else if (o->restore && o->incoming)
		bad = "--restore and --incoming exclude each other";
	else if ((o->record_ws_ms || o->ws_race) &&
		 (!o->restore || !o->cfg.mem_lazy))
		bad = "--record-ws and --ws-mode go with --restore FILE "
		      "--mem-mode lazy";
	if (bad)
		fprintf(stderr, "vmmctl boot: %s\n", bad);
	return bad ? -EINVAL : 0;
}

int boot_parse(int argc, char **argv, struct boot_opts *o)
{
	static const struct option longopts[] = {
		{"kernel", required_argument, NULL, 'k'},
		{"append", required_argument, NULL, 'a'},
		{"initrd", required_argument, NULL, 'i'},
		{"mem", required_argument, NULL, 'm'},
		{"cpus", required_argument, NULL, 'c'},
		{"api", required_argument, NULL, 'A'},
		{"serial", required_argument, NULL, 's'},
		{"serial-in", required_argument, NULL, 'r'},
		{"heartbeat-log", required_argument, NULL, 'b'},
		{"kvm-device", required_argument, NULL, 'K'},
		{"mem-mode", required_argument, NULL, 'M'},
		{"mem-prealloc", no_argument, NULL, 'P'},
		{"mlock", no_argument, NULL, 'L'},
		{"fault-stall-ms", required_argument, NULL, 'S'},
		{"dirty-ring", required_argument, NULL, 'R'},
		{"incoming", required_argument, NULL, 'I'},
		{"device", required_argument, NULL, 'D'},
		{"tls-dir", required_argument, NULL, 'T'},
		{"tls-authz", required_argument, NULL, 'Z'},
		{"insecure", no_argument, NULL, 'N'},
		{"tcp-congestion", required_argument, NULL, 'G'},
		{"restore", required_argument, NULL, 'X'},
		{"record-ws", required_argument, NULL, 'W'},
		{"ws-mode", required_argument, NULL, 'Y'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->cfg.mem_size = BOOT_DEFAULT_MEM;
	o->cfg.nr_cpus = 1;
	o->cfg.fault_stall_ms = BOOT_STALL_MS;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'h') {
			fputs(boot_usage, stdout);
			fputs(dev_types_help(), stdout);
			return 1;
		}
		if (c == '?' || c == ':') {
			fprintf(stderr,
				"vmmctl boot: %s '%s' (see vmmctl boot "
				"--help)\n",
				c == '?' ? "unknown option"
					 : "missing value for",
				argv[optind - 1]);
			return -EINVAL;
		}
		if (boot_opt_value(o, c, optarg))
			return -EINVAL;
	}
	if (optind < argc) {
		fprintf(stderr,
			"vmmctl boot: unexpected argument '%s' (see "
			"vmmctl boot --help)\n",
			argv[optind]);
		return -EINVAL;
	}
	if (o->incoming && (o->cfg.kernel || o->cfg.append || o->cfg.initrd)) {
		fprintf(stderr, "vmmctl boot: --incoming takes the guest from "
				"the source: no --kernel or --append (nor "
				"--initrd)\n");
		return -EINVAL;
	}
	if (!o->incoming && (o->mig.tls_dir || o->mig.tls_authz ||
			     o->mig.insecure || o->mig.tcp_congestion)) {
		fprintf(stderr, "vmmctl boot: --tls-dir, --tls-authz, "
				"--insecure and --tcp-congestion go with "
				"--incoming\n");
		return -EINVAL;
	}
	if (o->cfg.mem_prealloc && o->cfg.mem_lazy) {
		fprintf(stderr, "vmmctl boot: --mem-prealloc populates what "
				"--mem-mode lazy leaves missing: not both\n");
		return -EINVAL;
	}
	if (o->cfg.mem_handed_over &&
	    (o->mig.tls_dir || o->mig.tls_authz || o->mig.insecure ||
	     o->mig.tcp_congestion)) {
		fprintf(stderr, "vmmctl boot: --incoming unix: is local (no "
				"TLS or TCP: the socket file's mode 0600 admits "
				"the source); no --tls-dir, --tls-authz, "
				"--insecure or --tcp-congestion\n");
		return -EINVAL;
	}
	if (boot_check_restore(o))
		return -EINVAL;
	if (!o->cfg.kernel && !o->incoming && !o->restore) {
		fprintf(stderr, "vmmctl boot: --kernel FILE is required\n");
		return -EINVAL;
	}
	return 0;
}
