// SPDX-License-Identifier: MIT
/*
 * test_dest_limits.c - a destination takes from its source no more state
 * than the VM can hold (issue 13): a STATE blob larger than the largest
 * valid one of its kind, a section sent twice, a vCPU or device the VM
 * does not have. A fake source on its own thread (a blocking socket)
 * sends a well-formed HELLO of the destination's shape, RAM_END and the
 * sections of the case; the real destination, on this thread's libuv
 * loop with an incoming test VM, must fail the migration at once with
 * one line naming the section. Before the cap, an oversized blob was
 * kept (malloc'ed at the peer's length) and the destination waited on.
 *
 * The same fake source sends a live PAGES frame first in the spliced_*
 * cases (its data goes socket -> pipe -> memfd, channel_splice.c): a run
 * outside guest RAM is refused before a byte moves, a frame cut short
 * ends the migration as a lost peer after part of it was spliced, and a
 * whole one lands in guest RAM page for page.
 *
 * And a HELLO with a TSC frequency no vCPU here can tick at (1 kHz) ends
 * the migration at HELLO, one line naming the TSC, before a page moves;
 * at this host's own frequency the handshake goes on. A snapshot file's
 * state sections meet the same checks as a source's.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "common/clock.h"
#include "migration/hello.h"
#include "migration/migration.h"
#include "migration/snapfile.h"
#include "tests/kvm/kvmtest.h"
#include "vmm/snapshot.h"
#include "vmm/vmstate.h"

#define DL_WAIT_MS 5000 /* the failure comes with the frame, not later */

struct dl_section {
	uint16_t kind;
	uint32_t id, len;
};

/* The fake source: the test thread fills it, the peer thread reads it. */
struct dl_peer {
	int port;
	struct proto_hello hello;
	struct dl_section sec[3];
	int nr_sec;
	const uint8_t *pages; /* sent after HELLO (pages_len bytes) */
	size_t pages_len;
	bool cut; /* then the connection closed, nothing more sent */
	pthread_t thread;
};

static struct tvm V;
static uv_loop_t loop;
static uint32_t dl_tsc_khz; /* non-zero: HELLO carries PROTO_CAP_TSC */
static bool done;
static struct mig_stats last;

static void on_done(void *opaque, const struct mig_stats *st)
{
	(void)opaque;
	if (!done)
		last = *st;
	done = true;
}

static bool send_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static bool send_frame(int fd, uint8_t *buf, int n)
{
	return n > 0 && send_all(fd, buf, (size_t)n);
}

static void *peer_main(void *arg)
{
	struct dl_peer *pr = arg;
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)pr->port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	size_t cap = PROTO_HDR_SIZE + PROTO_MAX_PAYLOAD;
	uint8_t *buf = calloc(1, cap), *blob = calloc(1, PROTO_MAX_PAYLOAD);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok =
		buf && blob && fd >= 0 &&
		!connect(fd, (struct sockaddr *)&a, sizeof(a)) &&
		send_frame(fd, buf, proto_hello_encode(buf, cap, &pr->hello)) &&
		(!pr->pages_len || send_all(fd, pr->pages, pr->pages_len)) &&
		!pr->cut &&
		send_frame(fd, buf,
			   proto_empty_encode(buf, cap, PROTO_RAM_END));

	for (int i = 0; ok && i < pr->nr_sec; i++) {
		struct proto_state st = {.kind = pr->sec[i].kind,
					 .version = 1,
					 .id = pr->sec[i].id,
					 .len = pr->sec[i].len,
					 .blob = blob};

		ok = send_frame(fd, buf, proto_state_encode(buf, cap, &st));
	}
	/* Read the answers until the destination closes. */
	while (ok && read(fd, buf, cap) > 0)
		;
	if (fd >= 0)
		close(fd);
	free(buf);
	free(blob);
	return NULL;
}

/* A destination on a free port of 127.0.0.1. */
static struct mig_dest *dest_listen(int *port)
{
	const struct mig_hooks hooks = {.done = on_done};
	struct mig_dest *d = NULL;
	char spec[64], err[512] = "";
	unsigned int seed = 0;
	int r = -EADDRINUSE;

	cr_assert_eq(getrandom(&seed, sizeof(seed), 0), sizeof(seed));
	for (int i = 0; i < 100 && r == -EADDRINUSE; i++) {
		*port = 20000 + (int)((seed + i) % 12000);
		snprintf(spec, sizeof(spec), "tcp:127.0.0.1:%d", *port);
		struct mig_dest_params dp = {.spec = spec};

		r = mig_dest_start(&d, &V.vm, &loop, &dp, &hooks, err,
				   sizeof(err));
	}
	cr_assert_eq(r, 0, "the destination cannot listen: %s", err);
	return d;
}

/*
 * Run the case: the destination must fail within DL_WAIT_MS with an error
 * matching want; returns the error line.
 */
static void run_pages_case(const char *name, const struct dl_section *sec,
			   int nr, const uint8_t *pages, size_t pages_len,
			   bool cut, void (*check)(void), const char *want)
{
	struct dl_peer pr = {.nr_sec = nr,
			     .pages = pages,
			     .pages_len = pages_len,
			     .cut = cut};
	struct mig_dest *d;
	uint64_t end;

	tvm_create(&V, NULL);
	cr_assert_eq(uv_loop_init(&loop), 0);
	done = false;
	memset(&last, 0, sizeof(last));
	/* Section tests agree on --verify; page tests splice without it. */
	mig_hello_local(&V.vm, pages ? 0 : PROTO_CAP_VERIFY, &pr.hello);
	if (dl_tsc_khz) {
		pr.hello.caps |= PROTO_CAP_TSC;
		pr.hello.tsc_khz = dl_tsc_khz;
	}
	memcpy(pr.sec, sec, nr * sizeof(*sec));
	d = dest_listen(&pr.port);
	cr_assert_eq(pthread_create(&pr.thread, NULL, peer_main, &pr), 0);
	end = clock_now_ms() + DL_WAIT_MS;
	while (!done && clock_now_ms() < end)
		uv_run(&loop, UV_RUN_NOWAIT);
	if (!done)
		mig_dest_abort(d);
	cr_log_info("%s: %s: %s", name,
		    done ? mig_state_name(last.state) : "no end",
		    done ? last.error : mig_dest_stats(d)->error);
	cr_expect(done,
		  "%s: the destination kept the sections and waits on "
		  "in %s (a peer's blob was kept at its length)",
		  name, mig_state_name(mig_dest_stats(d)->state));
	mig_dest_free(d);
	uv_run(&loop, UV_RUN_DEFAULT);
	pthread_join(pr.thread, NULL);
	uv_loop_close(&loop);
	if (check)
		check();
	tvm_destroy(&V);
	if (!done)
		return;
	cr_expect_eq(last.state, MIG_FAILED, "%s: ended %s", name,
		     mig_state_name(last.state));
	cr_expect(strstr(last.error, want) && !strchr(last.error, '\n'),
		  "%s: the error is not one line naming '%s': %s", name, want,
		  last.error);
}

static void run_case(const char *name, const struct dl_section *sec, int nr,
		     const char *want)
{
	run_pages_case(name, sec, nr, NULL, 0, false, NULL, want);
}

static void init(void)
{
	signal(SIGPIPE, SIG_IGN);
}

TestSuite(dest_limits, .init = init);

/* A vCPU blob of 1 MiB: more than XSAVE, CPUID and MSRs at their limits. */
Test(dest_limits, vcpu_blob_oversized)
{
	const struct dl_section s = {PROTO_STATE_VCPU, 0, 1U << 20};

	run_case("vcpu 1 MiB", &s, 1, "largest valid blob");
}

/* The VM blob and a device's, one byte past their largest valid size. */
Test(dest_limits, vm_and_device_blob_oversized)
{
	struct tvm probe;
	struct dl_section s;
	size_t vm_max, dev_max;

	tvm_create(&probe, NULL);
	vm_max = vm_snapshot_section_max(&probe.vm, VM_SNAP_VM, 0);
	dev_max = vm_snapshot_section_max(&probe.vm, VM_SNAP_DEVICE, 0);
	cr_assert(vm_max > 0 && dev_max > 0);
	cr_assert_eq(vm_snapshot_section_max(&probe.vm, VM_SNAP_VCPU,
					     KVMTEST_NR_CPUS),
		     0, "a vCPU the VM lacks has a size");
	tvm_destroy(&probe);
	s = (struct dl_section){PROTO_STATE_VM, 0, (uint32_t)vm_max + 8};
	run_case("vm +8", &s, 1, "largest valid blob");
	s = (struct dl_section){PROTO_STATE_DEVICE, 0, (uint32_t)dev_max + 8};
	run_case("device +8", &s, 1, "largest valid blob");
}

/* The same vCPU's section twice. */
Test(dest_limits, repeated_section)
{
	const struct dl_section s[2] = {{PROTO_STATE_VCPU, 1, 64},
					{PROTO_STATE_VCPU, 1, 64}};

	run_case("vcpu 1 twice", s, 2, "sent twice");
}

Test(dest_limits, sections_beyond_the_vm)
{
	const struct dl_section v = {PROTO_STATE_VCPU, KVMTEST_NR_CPUS, 64};
	const struct dl_section dv = {PROTO_STATE_DEVICE, PROTO_MAX_DEVICES - 1,
				      64};

	run_case("vcpu beyond", &v, 1, "this VM has");
	run_case("device beyond", &dv, 1, "this VM has");
}

/* ---- the TSC frequency in HELLO ------------------------------------------ */

/* 1 kHz: no KVM scales a TSC that far (a ratio of ~0). */
Test(dest_limits, tsc_khz_out_of_reach_refused_at_hello)
{
	const struct dl_section v = {PROTO_STATE_VCPU, KVMTEST_NR_CPUS, 64};

	dl_tsc_khz = 1;
	run_case("tsc 1 kHz", &v, 1, "the guest's TSC ticks at 1 kHz");
	dl_tsc_khz = 0;
}

/* This host's own frequency: HELLO passes, the bad section fails later. */
Test(dest_limits, tsc_khz_of_this_host_passes_hello)
{
	const struct dl_section v = {PROTO_STATE_VCPU, KVMTEST_NR_CPUS, 64};
	struct tvm probe;
	int khz;

	tvm_create(&probe, NULL);
	khz = vm_tsc_khz(&probe.vm);
	tvm_destroy(&probe);
	cr_assert_gt(khz, 0, "vm_tsc_khz: %d", khz);
	dl_tsc_khz = (uint32_t)khz;
	run_case("tsc here", &v, 1, "this VM has");
	dl_tsc_khz = 0;
}

/* ---- live PAGES, their data spliced -------------------------------------- */

#define SP_GPA 0x200000ULL /* in the test VM's RAM, not its loaded code */

/* A live PAGES frame of PROTO_MAX_BATCH data pages from gpa: page i holds
 * byte i + 1. Returns its length in f. */
static size_t live_frame(uint8_t *f, uint64_t gpa)
{
	static uint8_t pages[PROTO_MAX_BATCH][PAGE_SIZE];
	struct proto_batch *b = malloc(sizeof(*b));
	struct iovec iov[PROTO_MAX_BATCH];
	int niov = 0, n;
	size_t off;

	cr_assert_not_null(b);
	proto_batch_init(b);
	for (int i = 0; i < PROTO_MAX_BATCH; i++) {
		memset(pages[i], i + 1, PAGE_SIZE);
		cr_assert_eq(proto_batch_add(b, gpa + (uint64_t)i * PAGE_SIZE,
					     pages[i]),
			     0);
	}
	n = proto_pages_encode_head(f, PROTO_PAGES_HEAD_MAX, b, true, iov,
				    &niov);
	cr_assert_gt(n, 0);
	off = (size_t)n;
	for (int i = 0; i < niov; i++) {
		memcpy(f + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	free(b);
	return off;
}

static uint8_t *frame_mem(void)
{
	uint8_t *f = malloc(PROTO_PAGES_HEAD_MAX +
			    (size_t)PROTO_MAX_BATCH * PAGE_SIZE);

	cr_assert_not_null(f);
	return f;
}

Test(dest_limits, spliced_pages_outside_ram)
{
	uint8_t *f = frame_mem();
	size_t n = live_frame(f, 1ULL << 40);

	run_pages_case("pages at 1 TiB", NULL, 0, f, n, false, NULL,
		       "outside guest RAM");
	cr_expect_eq(last.spliced_bytes, 0, "%llu bytes spliced",
		     (unsigned long long)last.spliced_bytes);
	free(f);
}

Test(dest_limits, spliced_pages_cut)
{
	uint8_t *f = frame_mem();
	size_t n = live_frame(f, SP_GPA);

	run_pages_case("pages cut short", NULL, 0, f, n - 65536, true, NULL,
		       "by peer");
	cr_expect_gt(last.spliced_bytes, 0, "the cut frame was not spliced");
	free(f);
}

static void placed_check(void)
{
	const uint8_t *ram =
		mem_gpa_to_hva(&V.vm.mem, SP_GPA, PROTO_MAX_BATCH * PAGE_SIZE);

	cr_assert_not_null(ram);
	for (int i = 0; i < PROTO_MAX_BATCH; i++)
		for (size_t k = 0; k < PAGE_SIZE; k += 511)
			cr_assert_eq(ram[(size_t)i * PAGE_SIZE + k],
				     (uint8_t)(i + 1), "page %d byte %zu", i,
				     k);
}

/* A whole frame, then a bad section to end the migration. */
Test(dest_limits, spliced_pages_placed)
{
	const struct dl_section s = {PROTO_STATE_VCPU, 0, 1U << 20};
	uint8_t *f = frame_mem();
	size_t n = live_frame(f, SP_GPA);

	run_pages_case("pages placed", &s, 1, f, n, false, placed_check,
		       "largest valid blob");
	cr_expect_geq(last.spliced_bytes, (PROTO_MAX_BATCH - 1) * PAGE_SIZE,
		      "%llu bytes spliced",
		      (unsigned long long)last.spliced_bytes);
	free(f);
}

/*
 * A snapshot file's state sections go through the same checks as a
 * source's (mig_sections_add, snap_read.c): a section twice and a blob
 * past its largest valid size are refused in one line, where the loader
 * once kept both.
 */
Test(dest_limits, snapshot_file_sections)
{
	struct proto_state ps = {
		.kind = PROTO_STATE_VCPU, .version = 1, .id = 1, .len = 64};
	struct snap_file f = {.fd = -1};
	struct vm_snapshot snap;
	struct tvm t;
	char err[256] = "";
	size_t max, cap;
	uint8_t *buf, *blob;
	int n;

	tvm_create(&t, NULL);
	max = vm_snapshot_section_max(&t.vm, VM_SNAP_VM, 0);
	cap = 2 * PROTO_STATE_OVERHEAD + max + 8;
	buf = calloc(1, cap);
	blob = calloc(1, max + 8); /* any bytes: the checks come first */
	cr_assert(buf && blob);
	ps.blob = blob;
	n = proto_state_encode(buf, cap, &ps);
	cr_assert_gt(n, 0);
	cr_assert_eq(proto_state_encode(buf + n, cap - (size_t)n, &ps), n);
	f.state = buf;
	f.h.state_len = 2 * (uint64_t)n;
	vm_snapshot_init(&snap);
	cr_expect_eq(snap_file_state(&f, &t.vm, &snap, err, sizeof(err)),
		     -EPROTO);
	cr_expect(strstr(err, "STATE of vCPU 1 sent twice"), "%s", err);
	vm_snapshot_free(&snap);
	ps = (struct proto_state){.kind = PROTO_STATE_VM,
				  .version = 1,
				  .len = (uint32_t)max + 8,
				  .blob = blob};
	n = proto_state_encode(buf, cap, &ps);
	cr_assert_gt(n, 0);
	f.h.state_len = (uint64_t)n;
	cr_expect_eq(snap_file_state(&f, &t.vm, &snap, err, sizeof(err)),
		     -EPROTO);
	cr_expect(strstr(err, "largest valid blob"), "%s", err);
	vm_snapshot_free(&snap);
	free(blob);
	free(buf);
	tvm_destroy(&t);
}
