// SPDX-License-Identifier: MIT
/*
 * test_fuzz_states.c - fuzz the migration state machines, not the
 * decoders: a seeded fake peer (fuzz_plans.h) speaks valid frames in
 * random orders and at random times to a real destination and to a real
 * source, both in this process on one libuv loop (the test thread), with
 * real VMs of the test guest.
 *
 * Oracles, per iteration (each has a seed; FUZZ_SEED=<seed> replays it):
 *  - no crash (run it once under ASan: -DVMM_SANITIZE=ON);
 *  - done() within the stall limit (lowered to FZ_STALL_MS here) and some
 *    slack after the peer's last word: no hang;
 *  - destination: done(MIG_RUNNING) only when the peer's frames were a
 *    whole migration (the right HELLO first, RAM_END or POSTCOPY, every
 *    state section whole, STATE_END, READY before GO, the digests when
 *    agreed); after an honest pre-copy with every page, the guest runs;
 *  - source: MIG_COMPLETED only when the fake destination said RUNNING
 *    after GO and had the state; afterwards the VM runs (heartbeats
 *    advance) unless GO went out, and then it is paused whole; post-copy
 *    paused only after GO.
 * The peer never sees the real side send a malformed frame.
 *
 * FUZZ_SECONDS (default 20) is the run's length, half for each side. The
 * summary line says how many iterations and frames, and every finding is
 * printed with its seed and the peer's trace. Findings of the issue the
 * fuzzer was written for that are still open are counted as known and do
 * not fail the run (fz_known).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <uv.h>

#include "common/clock.h"
#include "migration/channel.h"
#include "migration/dest.h"
#include "migration/hello.h"
#include "migration/migration.h"
#include "migration/ram.h"
#include "migration/source.h"
#include "tests/kvm/fuzz_plans.h"
#include "tests/kvm/kvmtest.h"

#define FZ_STALL_MS    1500   /* the channels' stall limit in this test */
#define FZ_SLACK_MS    4000   /* the stall timer's 1 s tick, closing, load */
#define FZ_PEER_MAX_MS 120000 /* a plan that runs longer is stopped */
#define FZ_HB_WAIT_MS  3000
#define FZ_WORKLOAD    "dirty --mib 8 --rate 50"

/* Everything is the test thread's but what fz_peer says of itself. */
struct fuzz {
	uv_loop_t loop;
	uv_timer_t tick;
	struct tvm tmpl, vm; /* destination: template + incoming; source */
	struct fz_template t;
	struct fz_peer peer;
	pthread_t thread;
	struct proto_batch *batch;
	uint8_t *reply;
	bool done;
	struct mig_stats st, first; /* the last done() and the first */
	uint64_t iterations, frames, completed, findings, known, hangs, lost;
	uint64_t strays; /* peers the destination dropped, listening on */
	bool stop; /* a hang: leave everything as it is */
};

static struct fuzz F;

static void on_done(void *opaque, const struct mig_stats *st)
{
	(void)opaque;
	if (!F.done)
		F.first = *st;
	F.done = true;
	F.st = *st;
}

static void on_tick(uv_timer_t *t)
{
	(void)t;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 0) : dflt;
}

/* A finding: printed at once with the seed to replay it. */
static void __attribute__((format(printf, 5, 6)))
finding(const char *side, uint64_t seed, bool known, const char *tr,
	const char *fmt, ...)
{
	char why[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (known)
		F.known++;
	else
		F.findings++;
	fprintf(stderr,
		"FINDING%s [%s] seed 0x%016llx: %s\n  peer: %s\n"
		"  replay: FUZZ_SEED=0x%llx test_fuzz_states --filter "
		"fuzz_states/%s\n",
		known ? " (known, issue 13)" : "", side,
		(unsigned long long)seed, why, tr, (unsigned long long)seed,
		side);
}

static void *peer_main(void *arg)
{
	struct fz_peer *p = arg;

	if (p->lfd >= 0)
		fz_dst_run(p);
	else
		fz_src_run(p);
	return NULL;
}

static void fuzz_init(void)
{
	mig_channel_stall_ms = FZ_STALL_MS;
	signal(SIGPIPE, SIG_IGN); /* as the VMM does (vmm/ctl/control.c) */
	memset(&F, 0, sizeof(F));
	cr_assert_eq(uv_loop_init(&F.loop), 0);
	cr_assert_eq(uv_timer_init(&F.loop, &F.tick), 0);
	cr_assert_eq(uv_timer_start(&F.tick, on_tick, 20, 20), 0);
	F.batch = malloc(sizeof(*F.batch));
	F.reply = malloc(FZ_FBUF);
	cr_assert(F.batch && F.reply);
}

/* Turn the loop for ms (handles closing, frames in flight). */
static void loop_for(uint64_t ms)
{
	uint64_t end = clock_now_ms() + ms;

	while (clock_now_ms() < end)
		uv_run(&F.loop, UV_RUN_ONCE);
}

static void fuzz_fini(void)
{
	if (F.stop)
		return; /* a hang: threads still work on the VMs */
	uv_close((uv_handle_t *)&F.tick, NULL);
	uv_run(&F.loop, UV_RUN_DEFAULT);
	uv_loop_close(&F.loop);
	tvm_destroy(&F.vm);
	tvm_destroy(&F.tmpl);
	vm_snapshot_free(&F.t.snap);
	free(F.t.nz);
	free(F.batch);
	free(F.reply);
}

/* Start the peer thread on seed (its plan is drawn there). */
static void peer_start(void)
{
	cr_assert_eq(pthread_create(&F.thread, NULL, peer_main, &F.peer), 0);
}

static void peer_stop(void)
{
	atomic_store(&F.peer.stop, true);
	pthread_join(F.thread, NULL);
	F.frames += F.peer.frames_sent;
}

static bool peer_ended(void)
{
	return atomic_load(&F.peer.plan_end) != 0;
}

/* Past the peer's last word by the stall limit and the slack. */
static bool overdue(uint64_t start)
{
	uint64_t end = atomic_load(&F.peer.plan_end);

	if (clock_now_ms() - start > FZ_PEER_MAX_MS)
		atomic_store(&F.peer.stop, true);
	return end && clock_now_ms() > end + FZ_STALL_MS + FZ_SLACK_MS;
}

/* Do the guest's heartbeats advance (by 20 within FZ_HB_WAIT_MS)? */
static bool heartbeats_advance(struct tvm *t)
{
	uint64_t end = clock_now_ms() + FZ_HB_WAIT_MS;
	uint64_t hb = tvm_stats(t).heartbeats;

	while (clock_now_ms() < end) {
		if (tvm_stats(t).heartbeats >= hb + 20)
			return true;
		usleep(5000);
	}
	return false;
}

static uint64_t iter_seed(uint64_t base, uint64_t i)
{
	struct fz_peer tmp = {.rng = base + i};

	return fz_rand(&tmp);
}

/*
 * Iterate side's step until the budget is spent (or once, FUZZ_SEED).
 * The summary goes to the log; the test fails on a finding not known.
 */
static void fuzz_run(const char *side, bool (*step)(uint64_t seed))
{
	uint64_t one = env_u64("FUZZ_SEED", 0), base = 0;
	uint64_t budget = env_u64("FUZZ_SECONDS", 20) * 1000 / 2;
	uint64_t t0 = clock_now_ms();

	cr_assert_eq(getrandom(&base, sizeof(base), 0), sizeof(base));
	for (uint64_t i = 0; !F.stop; i++) {
		uint64_t seed = one ? one : iter_seed(base, i);

		F.iterations++;
		if (!step(seed) || one || clock_now_ms() - t0 >= budget)
			break;
	}
	fprintf(stderr,
		"fuzz_states %s: %llu iterations in %llu s, %llu frames sent, "
		"%llu migrations completed, %llu strays dropped, %llu hangs, "
		"%llu lost VMs, %llu findings (+%llu known)\n",
		side, (unsigned long long)F.iterations,
		(unsigned long long)(clock_now_ms() - t0) / 1000,
		(unsigned long long)F.frames, (unsigned long long)F.completed,
		(unsigned long long)F.strays,
		(unsigned long long)F.hangs, (unsigned long long)F.lost,
		(unsigned long long)F.findings, (unsigned long long)F.known);
	cr_assert_eq(F.findings, 0, "%llu findings (above, with their seeds)",
		     (unsigned long long)F.findings);
}

/* ==== towards a real destination ========================================= */

/* A paused VM of the destination's shape: what an honest source sends. */
static void template_make(void)
{
	struct fz_template *t = &F.t;
	const struct guest_mem *m;
	char err[256];

	tvm_create(&F.tmpl, "dirty --mib 2 --rate 20");
	tvm_start(&F.tmpl);
	tvm_wait_heartbeats(&F.tmpl, 200);
	cr_assert_eq(vm_pause(&F.tmpl.vm), 0);
	vm_snapshot_init(&t->snap);
	cr_assert_eq(vm_snapshot_take(&F.tmpl.vm, &t->snap, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_leq(t->snap.nr, 32);
	mig_hello_local(&F.tmpl.vm, 0, &t->hello);
	m = t->mem = &F.tmpl.vm.mem;
	t->nz = malloc(m->nr_pages * sizeof(*t->nz));
	cr_assert(t->nz);
	for (uint64_t i = 0; i < m->nr_pages; i++)
		if (!proto_page_is_zero(m->base + i * PAGE_SIZE))
			t->nz[t->nr_nz++] = i;
	/* The sum a real source sends in pre-copy: of the pages it sent. */
	struct mig_sum sum;

	cr_assert_eq(mig_sum_init(&sum, MIG_SUM_SHA256), 0);
	cr_assert_eq(mig_sum_ram(&sum, m), 0);
	mig_sum_digest(&sum, m->size, &t->digest[0]);
	mig_sum_free(&sum);
	t->nr_digest = 1;
	cr_log_info("template: %d sections, %llu data pages", t->snap.nr,
		    (unsigned long long)t->nr_nz);
}

static struct mig_dest *dest_listen(int *port)
{
	const struct mig_hooks hooks = {.done = on_done};
	struct mig_dest *d = NULL;
	char spec[64], err[512] = "";
	int r = -EADDRINUSE;
	unsigned int seed = 0;

	cr_assert_eq(getrandom(&seed, sizeof(seed), 0), sizeof(seed));
	for (int i = 0; i < 100 && r == -EADDRINUSE; i++) {
		*port = FZ_PORT_LO +
			(int)((seed + i) % (FZ_PORT_HI - FZ_PORT_LO));
		snprintf(spec, sizeof(spec), "tcp:127.0.0.1:%d", *port);
		struct mig_dest_params dp = {.spec = spec};

		r = mig_dest_start(&d, &F.vm.vm, &F.loop, &dp, &hooks, err,
				   sizeof(err));
	}
	cr_assert_eq(r, 0, "the destination cannot listen: %s", err);
	return d;
}

/* The destination ran: was that earned, and does its guest go on? */
static void dest_check_running(uint64_t seed, const struct fz_src *s)
{
	if (!s->go_legit) {
		finding("dest", seed, false, s->trace,
			"the destination reports running but the fake source "
			"never sent a whole migration (hello %d, ram_end %d, "
			"sections 0x%x of %d whole, 0x%x mutated, state_end "
			"%d, verify %d)",
			s->first_hello_good, s->ram_end, s->sec_good,
			F.t.snap.nr, s->sec_mutated, s->state_end,
			s->verify_good);
		return;
	}
	if (F.peer.rx[PROTO_RUNNING] && !F.peer.rx[PROTO_READY])
		finding("dest", seed, false, s->trace,
			"the destination said RUNNING without READY before it");
	F.completed++;
	if (s->honest && !s->postcopy && s->all_pages &&
	    !heartbeats_advance(&F.vm))
		finding("dest", seed, false, s->trace,
			"an honest pre-copy of every page ran, but the guest's "
			"heartbeats do not advance on the destination");
}

/*
 * The peer is gone and the destination took it for a stranger: it dropped
 * the connection and listens again for its source (issue 13: a stray
 * never ends an incoming migration), which is as good an end as done().
 */
static bool dest_dropped(struct mig_dest *d)
{
	return peer_ended() && d->strays &&
	       mig_dest_stats(d)->state == MIG_LISTENING && !d->ss.ch.connected;
}

static bool dest_step(uint64_t seed)
{
	struct fz_src side = {.t = &F.t,
			      .stall_ms = FZ_STALL_MS,
			      .batch = F.batch,
			      .reply = F.reply};
	uint64_t start = clock_now_ms();
	struct mig_dest *d;
	int port;

	tvm_create(&F.vm, NULL);
	cr_assert_eq(fz_init(&F.peer, seed), 0);
	F.peer.side = &side;
	F.done = false;
	d = dest_listen(&port);
	F.peer.port = port;
	peer_start();
	while (!(F.done && peer_ended()) && !dest_dropped(d) &&
	       !overdue(start))
		uv_run(&F.loop, UV_RUN_ONCE);
	if (!F.done && dest_dropped(d)) {
		/* Not its source: dropped, the destination waits on. */
		F.strays++;
		peer_stop();
		mig_dest_free(d);
		loop_for(20);
		fz_fini(&F.peer);
		tvm_destroy(&F.vm);
		return true;
	}
	if (!F.done) {
		F.hangs++;
		F.stop = true;
		peer_stop();
		finding("dest", seed, false, side.trace,
			"no done() %d ms after the peer's last word: the "
			"destination hangs in state %s",
			FZ_STALL_MS + FZ_SLACK_MS,
			mig_state_name(mig_dest_stats(d)->state));
		return false;
	}
	if (F.first.state != MIG_RUNNING && F.first.state != MIG_FAILED)
		finding("dest", seed, false, side.trace, "done() with state %s",
			mig_state_name(F.first.state));
	mig_dest_abort(d); /* post-copy that ran: stop waiting for pages */
	peer_stop();
	if (F.first.state == MIG_RUNNING)
		dest_check_running(seed, &side);
	if (F.peer.bad[0])
		finding("dest", seed, false, side.trace,
			"the destination sent a malformed frame: %s",
			F.peer.bad);
	mig_dest_free(d);
	loop_for(20);
	fz_fini(&F.peer);
	tvm_destroy(&F.vm);
	return true;
}

/* ==== towards a real source ============================================== */

static struct mig_params source_params(struct fz_peer *p, char *to)
{
	static const enum mig_mode modes[] = {MIG_MODE_PRECOPY, MIG_MODE_HYBRID,
					      MIG_MODE_POSTCOPY};

	return (struct mig_params){
		.to = to,
		.mode = modes[fz_below(p, 3)],
		.downtime_limit_ms = 1 + fz_below(p, 50),
		.max_rounds = 1 + fz_below(p, 4),
		.verify = fz_chance(p, 25),
		.zstd_level = (int)fz_below(p, 2),
		.push_order = (enum mig_push_order)fz_below(p, 3),
	};
}

/*
 * Is the source's VM as it must be: running unless GO went out, paused
 * whole after it? Then run it again (the operator's resume) for the next.
 */
static void source_check_vm(uint64_t seed, const struct fz_dst *dd,
			    bool go_sent, bool known)
{
	struct vm *vm = &F.vm.vm;

	if (!go_sent &&
	    (vm->state != VM_RUNNING || !heartbeats_advance(&F.vm))) {
		F.lost++;
		finding("source", seed, known, dd->trace,
			"the migration failed before GO but the source VM is "
			"%s, heartbeats %s",
			vm_state_name(vm->state),
			heartbeats_advance(&F.vm) ? "advance" : "stopped");
	}
	if (go_sent && vm->state != VM_PAUSED)
		finding("source", seed, false, dd->trace,
			"GO went out but the source VM is %s, not paused",
			vm_state_name(vm->state));
	if (vm->state == VM_PAUSED)
		cr_assert_eq(vm_resume(vm), 0);
	if (!heartbeats_advance(&F.vm)) {
		/* Beyond repair: a fresh source VM for the next. */
		F.lost++;
		finding("source", seed, false, dd->trace,
			"the source VM does not run again after vm_resume");
		tvm_destroy(&F.vm);
		tvm_create(&F.vm, FZ_WORKLOAD);
		tvm_start(&F.vm);
		tvm_wait_heartbeats(&F.vm, 300);
	}
}

/*
 * COMPLETED: the fake destination must have had the state, and the
 * source must have sent GO before it took RUNNING (a fake destination
 * that says RUNNING before GO reaches it is a race the source cannot
 * see when GO had gone out). The source refuses RUNNING before GO (issue
 * 13): a completion without GO is a finding like any other. Returns
 * false: no finding here is a known one any more.
 */
static bool source_check_completed(uint64_t seed, const struct fz_dst *dd,
				   bool go_sent)
{
	if (F.st.state != MIG_COMPLETED)
		return false;
	if (!go_sent)
		finding("source", seed, false, dd->trace,
			"the source completed (VM given up) on a RUNNING that "
			"came before GO (STATE_END sent: %s)",
			F.peer.rx[PROTO_STATE_END] ? "yes" : "no");
	else if (!F.peer.rx[PROTO_STATE_END])
		finding("source", seed, false, dd->trace,
			"the source completed without sending STATE_END");
	else
		F.completed++;
	return false;
}

/* Post-copy paused (no done() by design): legitimate only after GO. */
static void source_paused(uint64_t seed, struct mig_source *s,
			  const struct fz_dst *dd)
{
	if (!s->go_sent || !s->pc)
		finding("source", seed, false, dd->trace,
			"post-copy paused although GO %s and post-copy %s",
			s->go_sent ? "went out" : "never went out",
			s->pc ? "on" : "off");
	cr_assert_eq(mig_source_abort(s), 0);
}

static bool source_step(uint64_t seed)
{
	const struct mig_hooks hooks = {.done = on_done};
	struct fz_dst side = {.stall_ms = FZ_STALL_MS};
	uint64_t start = clock_now_ms(), cancel_at = 0;
	struct mig_source *s = NULL;
	struct mig_params prm;
	char to[64], err[512] = "";
	bool go_sent, known;
	int port;

	cr_assert_eq(fz_init(&F.peer, seed), 0);
	F.peer.side = &side;
	F.done = false;
	port = fz_listen(&F.peer.lfd);
	cr_assert_gt(port, 0, "the fake destination cannot listen");
	snprintf(to, sizeof(to), "tcp:127.0.0.1:%d", port);
	prm = source_params(&F.peer, to);
	if (fz_chance(&F.peer, 15))
		cancel_at = start + fz_below(&F.peer, 2000);
	peer_start();
	cr_assert_eq(mig_source_start(&s, &F.vm.vm, &F.loop, &prm, &hooks, err,
				      sizeof(err)),
		     0, "mig_source_start: %s", err);
	while (!(F.done && peer_ended())) {
		if (!F.done && cancel_at && clock_now_ms() >= cancel_at) {
			cancel_at = 0;
			mig_source_cancel(s);
		}
		if (!F.done && peer_ended() &&
		    mig_source_stats(s)->state == MIG_POSTCOPY_PAUSED)
			source_paused(seed, s, &side);
		if (!F.done && overdue(start))
			break;
		uv_run(&F.loop, UV_RUN_ONCE);
	}
	if (!F.done) {
		F.hangs++;
		F.stop = true;
		peer_stop();
		finding("source", seed, false, side.trace,
			"no done() %d ms after the peer's last word: the "
			"source "
			"hangs in state %s",
			FZ_STALL_MS + FZ_SLACK_MS,
			mig_state_name(mig_source_stats(s)->state));
		return false;
	}
	go_sent = s->go_sent;
	peer_stop();
	if (F.peer.bad[0])
		finding("source", seed, false, side.trace,
			"the source sent a malformed frame: %s", F.peer.bad);
	known = source_check_completed(seed, &side, go_sent);
	mig_source_free(s);
	loop_for(20);
	fz_fini(&F.peer);
	/* The known bug gives the VM up too: a lost VM, known. */
	source_check_vm(seed, &side, go_sent, known);
	return true;
}

TestSuite(fuzz_states, .init = fuzz_init, .fini = fuzz_fini);

Test(fuzz_states, dest)
{
	template_make();
	fuzz_run("dest", dest_step);
}

Test(fuzz_states, source)
{
	tvm_create(&F.vm, FZ_WORKLOAD);
	tvm_start(&F.vm);
	tvm_wait_heartbeats(&F.vm, 300);
	fuzz_run("source", source_step);
}
