// SPDX-License-Identifier: MIT
/*
 * test_migrate_inproc.c - live migration between two VMs of one process,
 * over a loopback TCP connection, through the public API of migration/
 * driven by one libuv loop on the test thread: no vmmctl, no shell.
 *
 * VM A boots the test guest with the `dirty` workload on two vCPUs; VM B
 * is created incoming, with KVM dirty logging on (so that its log holds
 * exactly what B's own guest writes after GO: received pages and
 * UFFDIO_COPY placements are host writes, which KVM never logs). One test
 * per mode migrates A to B with --verify and then checks:
 *  - the source reports completed and the destination runs (in post-copy
 *    its RAM is complete too); the source stays paused;
 *  - RAM: B is paused, its dirty log harvested, and every page B's guest
 *    did not write equals A's (paused with its RAM as of the switch) byte
 *    for byte; those pages must be most of RAM and include most of the
 *    workload's, so that the comparison cannot pass by comparing nothing;
 *  - the guest goes on on B: its first heartbeat is A's last + 1 with no
 *    sequence error, and the guest's own verify of its region passes.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <uv.h>

#include "common/clock.h"
#include "common/page.h"
#include "migration/migration.h"
#include "tests/kvm/kvmtest.h"

#define WORKLOAD_MIB	  8
#define WORKLOAD	  "dirty --mib 8 --rate 50"
#define WARMUP_HEARTBEATS 300 /* ~300 ms: the first pass is long done */
#define MIG_TIMEOUT_MS	  30000
/* Ports below the ephemeral range (scripts/ports.sh), from a random one. */
#define PORT_LO	   20000
#define PORT_HI	   32767
#define PORT_TRIES 100

/* One migration A -> B: everything here belongs to the test (loop) thread. */
struct inproc {
	struct tvm a, b;
	uv_loop_t loop;
	bool loop_on;
	uv_timer_t timer;
	bool timer_on, timed_out;
	struct mig_source *src;
	struct mig_dest *dst;
	bool src_done, dst_done;
	struct mig_stats src_st, dst_st; /* as done() reported them */
	/* Round 1 as progress() reported it: dirty bytes/s over bytes/s. */
	double round1_ratio;
	char to[64];
};

static struct inproc m;

/* ---- the loop ----------------------------------------------------------- */

static void src_done(void *opaque, const struct mig_stats *st)
{
	(void)opaque;
	m.src_done = true;
	m.src_st = *st;
}

static void src_progress(void *opaque, const struct mig_stats *st)
{
	(void)opaque;
	if (st->memory_iteration == 1 && st->memory_bps)
		m.round1_ratio = (double)st->memory_dirty_rate * PAGE_SIZE /
				 (double)st->memory_bps;
}

static void dst_done(void *opaque, const struct mig_stats *st)
{
	(void)opaque;
	m.dst_done = true;
	m.dst_st = *st;
}

static void on_timeout(uv_timer_t *t)
{
	(void)t;
	m.timed_out = true;
}

/* Over: both sides reported, or either failed. */
static bool mig_over(void)
{
	if (m.src_done && m.src_st.state != MIG_COMPLETED)
		return true;
	if (m.dst_done && m.dst_st.state != MIG_RUNNING)
		return true;
	return m.src_done && m.dst_done;
}

static void loop_init(void)
{
	cr_assert_eq(uv_loop_init(&m.loop), 0);
	m.loop_on = true;
	cr_assert_eq(uv_timer_init(&m.loop, &m.timer), 0);
	m.timer_on = true;
}

/* Release the migration objects and close the loop (after both done). */
static void loop_fini(void)
{
	if (!m.loop_on)
		return;
	mig_source_free(m.src);
	mig_dest_free(m.dst);
	m.src = NULL;
	m.dst = NULL;
	if (m.timer_on)
		uv_close((uv_handle_t *)&m.timer, NULL);
	m.timer_on = false;
	uv_run(&m.loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&m.loop), 0, "a handle is still open");
	m.loop_on = false;
}

/*
 * A migration that has not ended has threads working on both VMs: leave
 * everything to the end of this test's process. Otherwise free it all.
 */
static void teardown(void)
{
	if ((m.src || m.dst) && !mig_over())
		return;
	loop_fini();
	tvm_destroy(&m.b);
	tvm_destroy(&m.a);
}

/* ---- the migration ------------------------------------------------------ */

/* B listens on the first free port from a random one (PORT_LO-PORT_HI). */
static void dest_listen(void)
{
	const struct mig_hooks hooks = {.done = dst_done};
	unsigned int seed = 0;
	char spec[64], err[512] = "";
	int r = -EADDRINUSE;

	cr_assert_eq(getrandom(&seed, sizeof(seed), 0), sizeof(seed));
	for (int i = 0; i < PORT_TRIES && r == -EADDRINUSE; i++) {
		int port = PORT_LO + (seed + i) % (PORT_HI - PORT_LO + 1);

		snprintf(spec, sizeof(spec), "tcp:127.0.0.1:%d", port);
		const struct mig_dest_params dp = {.spec = spec};

		r = mig_dest_start(&m.dst, &m.b.vm, &m.loop, &dp, &hooks, err,
				   sizeof(err));
	}
	cr_assert_eq(r, 0, "the destination cannot listen: %s", err);
	snprintf(m.to, sizeof(m.to), "%s", spec);
}

static void migrate(const struct mig_params *p)
{
	const struct mig_hooks hooks = {.progress = src_progress,
					.done = src_done};
	char err[512] = "";

	cr_assert_eq(mig_source_start(&m.src, &m.a.vm, &m.loop, p, &hooks, err,
				      sizeof(err)),
		     0, "mig_source_start: %s", err);
	cr_assert_eq(uv_timer_start(&m.timer, on_timeout, MIG_TIMEOUT_MS, 0),
		     0);
	while (!mig_over() && !m.timed_out)
		uv_run(&m.loop, UV_RUN_ONCE);
	cr_assert(!m.timed_out, "no end after %d ms: source %s, destination %s",
		  MIG_TIMEOUT_MS,
		  mig_state_name(mig_source_stats(m.src)->state),
		  mig_state_name(mig_dest_stats(m.dst)->state));
	uv_timer_stop(&m.timer);
	cr_assert_eq(m.src_st.state, MIG_COMPLETED, "source: %s: %s",
		     mig_state_name(m.src_st.state), m.src_st.error);
	cr_assert_eq(m.dst_st.state, MIG_RUNNING, "destination: %s: %s",
		     mig_state_name(m.dst_st.state), m.dst_st.error);
}

/* ---- the checks --------------------------------------------------------- */

/* Pages of B's RAM compared with A's, and what was left out. */
struct ram_cmp {
	uint64_t compared; /* not written by B's guest: compared with A's */
	uint64_t data;	   /* of those, pages not all zero */
	uint64_t written;  /* in B's dirty log: left out */
	uint64_t differ;   /* compared and different */
	uint64_t first_gpa, first_off;
};

static bool page_is_zero(const uint8_t *p)
{
	static const uint8_t zero[PAGE_SIZE];

	return !memcmp(p, zero, PAGE_SIZE);
}

/* The first byte at which two differing pages differ. */
static uint64_t page_diff_at(const uint8_t *a, const uint8_t *b)
{
	uint64_t off = 0;

	while (off < PAGE_SIZE && a[off] == b[off])
		off++;
	return off;
}

/* Page by page through the memfd mappings; skip what B's guest wrote. */
static struct ram_cmp ram_compare(const struct guest_mem *a,
				  const struct guest_mem *b)
{
	const struct bitmap *wrote = &b->state[MEM_PS_DIRTY];
	struct ram_cmp c = {0};

	cr_assert_eq(a->nr_pages, b->nr_pages);
	for (uint64_t i = 0; i < b->nr_pages; i++) {
		const uint8_t *pa = a->base + i * PAGE_SIZE;
		const uint8_t *pb = b->base + i * PAGE_SIZE;

		if (bitmap_test(wrote, i)) {
			c.written++;
			continue;
		}
		c.compared++;
		if (memcmp(pa, pb, PAGE_SIZE)) {
			if (!c.differ++) {
				c.first_gpa = mem_page_to_gpa(b, i);
				c.first_off = page_diff_at(pa, pb);
			}
			continue;
		}
		if (!page_is_zero(pa))
			c.data++;
	}
	return c;
}

/*
 * B paused: what its guest wrote since GO is in its dirty log; everything
 * else must be A's RAM at the switch, byte for byte. Not vacuously: nine
 * tenths of RAM at least are compared, and a quarter of the workload's
 * pages at least hold data (in post-copy B's guest rewrites about half of
 * its region while the rest is pushed: ~100 ms at 50 MiB/s).
 */
static void check_ram(void)
{
	const struct guest_mem *a = &m.a.vm.mem, *b = &m.b.vm.mem;
	const uint64_t workload = WORKLOAD_MIB * (1ULL << 20) / PAGE_SIZE;
	uint64_t t0, logged = 0;
	struct ram_cmp c;
	char err[256];

	cr_assert_eq(vm_pause(&m.b.vm), 0, "pausing the destination");
	cr_assert_eq(dirty_harvest(&m.b.vm.dirty, &logged, err, sizeof(err)), 0,
		     "%s", err);
	/* The premise: nothing but B's guest is in the log. */
	cr_assert_eq(m.b.vm.dirty.st.host_pages, 0,
		     "host writes in the destination's dirty log");
	t0 = clock_now_ns();
	c = ram_compare(a, b);
	cr_log_info("RAM: %llu pages compared (%llu with data) in %llu ms, "
		    "%llu written by the guest on B since GO (%llu logged)",
		    (unsigned long long)c.compared, (unsigned long long)c.data,
		    (unsigned long long)(clock_now_ns() - t0) / 1000000,
		    (unsigned long long)c.written, (unsigned long long)logged);
	cr_assert_eq(c.differ, 0,
		     "%llu pages the guest did not write differ between "
		     "source and destination; the first at GPA 0x%llx "
		     "(byte 0x%llx)",
		     (unsigned long long)c.differ,
		     (unsigned long long)c.first_gpa,
		     (unsigned long long)c.first_off);
	cr_assert_eq(c.written, logged);
	cr_assert_geq(c.compared, b->nr_pages * 9 / 10,
		      "only %llu of %llu pages compared",
		      (unsigned long long)c.compared,
		      (unsigned long long)b->nr_pages);
	cr_assert_geq(c.data, workload / 4,
		      "only %llu pages with data compared (workload: %llu)",
		      (unsigned long long)c.data, (unsigned long long)workload);
	cr_assert_eq(dirty_stop(&m.b.vm.dirty), 0);
	cr_assert_eq(vm_resume(&m.b.vm), 0, "resuming the destination");
}

static void log_stats(enum mig_mode mode, const struct mig_stats *s)
{
	cr_log_info("%s: %s in %llu ms, downtime %llu us, %llu rounds (%s), "
		    "%llu pages normal + %llu zero, %llu wire bytes "
		    "(%llu saved by zstd), "
		    "post-copy %s (%llu ms, %llu requests, %llu pushed)",
		    mig_mode_name(mode), mig_state_name(s->state),
		    (unsigned long long)s->time_elapsed_ms,
		    (unsigned long long)s->downtime_us,
		    (unsigned long long)s->memory_iteration,
		    mig_reason_name(s->reason),
		    (unsigned long long)s->memory_normal,
		    (unsigned long long)s->memory_constant,
		    (unsigned long long)s->wire_bytes,
		    (unsigned long long)s->compression_bytes,
		    s->postcopy ? "yes" : "no",
		    (unsigned long long)s->postcopy_ms,
		    (unsigned long long)s->memory_postcopy_requests,
		    (unsigned long long)s->postcopy_pushed);
}

/*
 * Boot A, create B, migrate with p (to: filled in here), then every check.
 * postcopy: whether the switch must have gone to post-copy.
 */
static void run(struct mig_params *p, bool postcopy)
{
	struct testdev_stats at_switch;
	char err[256];

	loop_init();
	tvm_create(&m.a, WORKLOAD);
	tvm_start(&m.a);
	tvm_wait_heartbeats(&m.a, WARMUP_HEARTBEATS);
	tvm_create(&m.b, NULL);
	cr_assert_eq(dirty_start(&m.b.vm.dirty, err, sizeof(err)), 0, "%s",
		     err);
	dest_listen();
	p->to = m.to;
	p->verify = true;
	migrate(p);
	log_stats(p->mode, &m.src_st);
	cr_assert_eq(m.src_st.postcopy, postcopy, "the switch went to %s",
		     m.src_st.postcopy ? "post-copy" : "stop-copy");
	/* The source keeps the VM whole and paused; B has all its RAM. */
	cr_assert_eq(m.a.vm.state, VM_PAUSED, "source VM %s",
		     vm_state_name(m.a.vm.state));
	cr_assert(!atomic_load(&m.b.vm.ram_incomplete),
		  "the destination still lacks pages");
	check_ram();
	at_switch = tvm_stats(&m.a);
	tvm_check_continues(&m.b, &at_switch);
	tvm_verify(&m.b);
}

static struct mig_params params(enum mig_mode mode)
{
	return (struct mig_params){
		.mode = mode,
		.downtime_limit_ms = MIG_DEFAULT_DOWNTIME_MS,
		.max_rounds = MIG_DEFAULT_MAX_ROUNDS,
		.zstd_level = MIG_DEFAULT_ZSTD,
		.push_order = MIG_PUSH_ACCESSED,
	};
}

TestSuite(migrate_inproc, .fini = teardown, .timeout = 120);

Test(migrate_inproc, precopy)
{
	struct mig_params p = params(MIG_MODE_PRECOPY);

	run(&p, false);
	/*
	 * The guest's code and page tables compress, its workload's data does
	 * not: zstd's sample must find the former (and raw batches, sent from
	 * guest RAM by reference, carry the latter: check_ram compared them).
	 */
	cr_assert_gt(m.src_st.compression_bytes, 0,
		     "zstd never used on a guest with page tables");
}

Test(migrate_inproc, postcopy)
{
	struct mig_params p = params(MIG_MODE_POSTCOPY);

	run(&p, true);
}

/*
 * A 1 ms downtime limit is all fixed cost (policy.h): no dirty page fits,
 * so hybrid gives up pre-copy after round 0 and switches to post-copy.
 */
Test(migrate_inproc, hybrid)
{
	struct mig_params p = params(MIG_MODE_HYBRID);

	p.downtime_limit_ms = 1;
	run(&p, true);
}

/* The first page of A's RAM that holds data: round 0 sends it as such. */
static uint64_t first_data_gpa(const struct guest_mem *mem)
{
	for (uint64_t i = 0; i < mem->nr_pages; i++)
		if (!page_is_zero(mem->base + i * PAGE_SIZE))
			return mem_page_to_gpa(mem, i);
	cr_assert_fail("A's RAM holds no data");
	return 0;
}

/*
 * --verify must notice one byte of one page that differs on B: the
 * destination flips it as the page is placed (VMM_TEST_CORRUPT_GPA), so
 * only a digest of B's RAM as it is, not of the bytes that crossed the
 * wire, can tell; the pages came by splice, hashed once in RAM. B refuses
 * READY, nothing runs there, A runs on.
 */
Test(migrate_inproc, verify_catches_corrupt_page)
{
	struct mig_params p = params(MIG_MODE_PRECOPY);
	char gpa[32];

	loop_init();
	tvm_create(&m.a, WORKLOAD);
	tvm_start(&m.a);
	tvm_wait_heartbeats(&m.a, WARMUP_HEARTBEATS);
	tvm_create(&m.b, NULL);
	snprintf(gpa, sizeof(gpa), "0x%llx",
		 (unsigned long long)first_data_gpa(&m.a.vm.mem));
	cr_assert_eq(setenv("VMM_TEST_CORRUPT_GPA", gpa, 1), 0);
	dest_listen();
	p.to = m.to;
	p.verify = true;
	cr_assert_eq(mig_source_start(&m.src, &m.a.vm, &m.loop, &p,
				      &(struct mig_hooks){.done = src_done},
				      gpa, sizeof(gpa)),
		     0);
	cr_assert_eq(uv_timer_start(&m.timer, on_timeout, MIG_TIMEOUT_MS, 0),
		     0);
	while (!(m.src_done && m.dst_done) && !m.timed_out)
		uv_run(&m.loop, UV_RUN_ONCE);
	unsetenv("VMM_TEST_CORRUPT_GPA");
	cr_assert(!m.timed_out, "no end after %d ms", MIG_TIMEOUT_MS);
	cr_log_info("source: %s", m.src_st.error);
	cr_log_info("destination: %s", m.dst_st.error);
	cr_assert_eq(m.src_st.state, MIG_FAILED, "source %s",
		     mig_state_name(m.src_st.state));
	cr_assert_eq(m.dst_st.state, MIG_FAILED, "destination %s",
		     mig_state_name(m.dst_st.state));
	cr_assert(strstr(m.dst_st.error, "verify: guest RAM here differs"),
		  "destination: %s", m.dst_st.error);
	cr_assert_gt(m.dst_st.spliced_bytes, 0, "no page came by splice");
	cr_assert(strstr(m.src_st.error, "verify:"), "source: %s",
		  m.src_st.error);
	cr_assert_eq(m.a.vm.state, VM_RUNNING, "source VM %s",
		     vm_state_name(m.a.vm.state));
	tvm_verify(&m.a);
}

/* ---- bandwidth caps, --auto-converge, the fall-back from post-copy ------ */

/*
 * 50 MiB/s: well below what pre-copy reaches on this shared 2-core machine
 * even when other work loads it, so that the rate measured is the cap's.
 */
#define CAP_BPS (50ULL << 20)
/* The guest's first pass over 40 MiB is over by then, even under load. */
#define FILL_HEARTBEATS 1000

/* Boot A with workload, create B, B listens: ready to migrate. */
static void setup_pair(const char *workload, int heartbeats)
{
	loop_init();
	tvm_create(&m.a, workload);
	tvm_start(&m.a);
	tvm_wait_heartbeats(&m.a, heartbeats);
	tvm_create(&m.b, NULL);
	dest_listen();
}

/*
 * The wire rate of pre-copy (HELLO_ACK to the switch: what the cap
 * governs; stop-copy and the handshakes are not throttled), bytes/s.
 */
static double wire_rate(const struct mig_stats *st)
{
	return (double)st->precopy_bytes * 1000.0 / (double)st->precopy_ms;
}

/*
 * --max-bandwidth 50 MiB/s, a 40 MiB working set written once (rate 0;
 * the test VM has 64 MiB):
 * pre-copy moves ~45 MiB; wire bytes over the time it took must be the
 * cap within 10% (docs/benchmarks.md has the precise figure).
 */
Test(migrate_inproc, max_bandwidth_holds)
{
	struct mig_params p = params(MIG_MODE_PRECOPY);
	double rate;

	setup_pair("dirty --mib 40 --rate 0", FILL_HEARTBEATS);
	p.to = m.to;
	p.max_bandwidth = CAP_BPS;
	p.zstd_level = 0;
	migrate(&p);
	rate = wire_rate(&m.src_st);
	cr_log_info("cap %llu B/s: pre-copy %llu wire bytes in %llu ms = %.0f "
		    "B/s (%.2f%% of the cap); whole migration %llu bytes in "
		    "%llu ms",
		    (unsigned long long)CAP_BPS,
		    (unsigned long long)m.src_st.precopy_bytes,
		    (unsigned long long)m.src_st.precopy_ms, rate,
		    rate * 100.0 / (double)CAP_BPS,
		    (unsigned long long)m.src_st.wire_bytes,
		    (unsigned long long)m.src_st.time_elapsed_ms);
	cr_assert_gt(m.src_st.precopy_bytes, 32ULL << 20);
	cr_assert(rate > 0.9 * CAP_BPS && rate < 1.1 * CAP_BPS,
		  "rate %.0f B/s, cap %llu", rate, (unsigned long long)CAP_BPS);
}

static int set_cap_result = 1; /* 1: not called yet */

static void on_set_cap(uv_timer_t *t)
{
	(void)t;
	set_cap_result =
		mig_source_set_bandwidth(m.src, 2 * CAP_BPS, UINT64_MAX);
}

/*
 * Live change: 25 MiB/s for the first 200 ms, then 100 MiB/s (~5 MiB
 * then ~37 MiB: ~570 ms, where 25 MiB/s throughout takes ~1.7 s). The
 * pre-copy rate must be well above the first cap, and the cap in force
 * must say 100 MiB/s.
 */
Test(migrate_inproc, max_bandwidth_live_change)
{
	struct mig_params p = params(MIG_MODE_PRECOPY);
	static uv_timer_t set; /* the loop outlives this function */
	double rate;

	setup_pair("dirty --mib 40 --rate 0", FILL_HEARTBEATS);
	p.to = m.to;
	p.max_bandwidth = CAP_BPS / 2;
	p.zstd_level = 0;
	cr_assert_eq(uv_timer_init(&m.loop, &set), 0);
	cr_assert_eq(uv_timer_start(&set, on_set_cap, 200, 0), 0);
	migrate(&p);
	uv_close((uv_handle_t *)&set, NULL);
	cr_assert_eq(set_cap_result, 0, "the cap was changed: %d",
		     set_cap_result);
	rate = wire_rate(&m.src_st);
	cr_log_info("25 then 100 MiB/s: pre-copy %llu wire bytes in %llu ms = "
		    "%.1f MiB/s",
		    (unsigned long long)m.src_st.precopy_bytes,
		    (unsigned long long)m.src_st.precopy_ms, rate / 1048576.0);
	cr_assert_eq(m.src_st.max_bandwidth, 2 * CAP_BPS);
	cr_assert_gt(m.src_st.precopy_bytes, 32ULL << 20);
	cr_assert_gt(rate, CAP_BPS, "rate %.0f B/s", rate);
}

/*
 * A guest dirtying 24 MiB at 400 MiB/s over a link capped at 20 MiB/s
 * never converges in pre-copy. Round 1 must show it: the guest dirtied
 * at least 95% of what the link carried (the dirty set saturates at the
 * working set, so the ratio shows ~1.0), else it was starved and the test
 * proves nothing; at 0.95 a round would leave 95% of the last, and 24 MiB
 * would take over 80 rounds to fit the 20 ms limit (~0.4 MB). With
 * --auto-converge it converges within the 30 rounds.
 */
Test(migrate_inproc, auto_converge)
{
	struct mig_params p = params(MIG_MODE_PRECOPY);

	setup_pair("dirty --mib 24 --rate 400", WARMUP_HEARTBEATS);
	p.to = m.to;
	p.max_bandwidth = 20ULL << 20;
	p.downtime_limit_ms = 20;
	p.auto_converge = true;
	migrate(&p);
	log_stats(p.mode, &m.src_st);
	cr_log_info("round 1 dirtied %.2fx the link; throttle %u%% (raised "
		    "%llu times), downtime %llu us",
		    m.round1_ratio, m.src_st.throttle_pct,
		    (unsigned long long)m.src_st.throttle_raised,
		    (unsigned long long)m.src_st.downtime_us);
	cr_assert_geq(m.round1_ratio, 0.95,
		      "round 1 dirtied only %.2fx what the link carried: the "
		      "guest did not out-dirty the link",
		      m.round1_ratio);
	cr_assert(m.src_st.converged, "reason %s",
		  mig_reason_name(m.src_st.reason));
	cr_assert_gt(m.src_st.throttle_pct, 0);
}

/*
 * The destination cannot use userfaultfd (VMM_TEST_NO_UFFD=1): a
 * --mode postcopy migration falls back to pre-copy, says why, completes.
 */
Test(migrate_inproc, postcopy_falls_back_without_uffd)
{
	struct mig_params p = params(MIG_MODE_POSTCOPY);

	cr_assert_eq(setenv("VMM_TEST_NO_UFFD", "1", 1), 0);
	setup_pair(WORKLOAD, WARMUP_HEARTBEATS);
	p.to = m.to;
	migrate(&p);
	unsetenv("VMM_TEST_NO_UFFD");
	cr_log_info("source: %s", m.src_st.notice);
	cr_log_info("destination: %s", m.dst_st.notice);
	cr_assert(!m.src_st.postcopy);
	cr_assert(strstr(m.src_st.notice, "pre-copy instead"), "%s",
		  m.src_st.notice);
	cr_assert(strstr(m.dst_st.notice, "VMM_TEST_NO_UFFD"), "%s",
		  m.dst_st.notice);
}

/*
 * --postcopy-bandwidth 16 MiB/s caps the push after the switch: the ~8.5
 * MiB a guest that only ticks after its fill holds take ~0.55 s to push
 * (its few faults are answered on the urgent connection meanwhile, never
 * throttled), where uncapped the push is over in well under 0.2 s here.
 */
Test(migrate_inproc, postcopy_bandwidth_caps_the_push)
{
	struct mig_params p = params(MIG_MODE_POSTCOPY);
	const uint64_t cap = 16ULL << 20;
	double rate;

	setup_pair("dirty --mib 8 --rate 0", WARMUP_HEARTBEATS);
	p.to = m.to;
	p.postcopy_bandwidth = cap;
	p.zstd_level = 0;
	migrate(&p);
	log_stats(p.mode, &m.src_st);
	rate = (double)m.src_st.wire_bytes * 1000.0 /
	       (double)m.src_st.postcopy_ms;
	cr_log_info("push at %.1f MiB/s (cap 16)", rate / 1048576.0);
	cr_assert(m.src_st.postcopy);
	cr_assert_eq(m.src_st.postcopy_bandwidth, cap);
	cr_assert(rate < 1.1 * cap && rate > 0.7 * cap, "push at %.0f B/s",
		  rate);
}
