/* SPDX-License-Identifier: MIT */
/*
 * test_fault.c - the userfaultfd fault service on a plain 16 MiB memfd.
 *
 * No KVM: accessor threads load or store through the host mapping of guest
 * RAM and block in the kernel until the fault thread (or the test thread,
 * for fetch ranges) resolves the fault. Every wait is on a condvar or a
 * join with a generous deadline that only turns a hang into a failure; the
 * one poll loop (for the duplicate-fault counter, which has no hook) also
 * just waits for a condition. A woken faulter may run before the fault
 * thread has accounted its fault, so tests of fault-thread resolvers read
 * the counters after fault_stop() (which joins the thread). The histogram
 * is tested on its own against exact nearest-rank percentiles.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/page.h"
#include "common/clock.h"
#include "ept/fault.h"
#include "common/guest_abi.h"

#define MiB	  (1ULL << 20)
#define MS	  1000000ULL
#define GUARD_S	  20 /* failure guard for every wait */
#define MAX_TOUCH 128
#define QLEN	  256

static struct guest_mem gm;
static struct fault_service fs;
static uint8_t zero_page[PAGE_SIZE];

static struct timespec deadline(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	ts.tv_sec += GUARD_S;
	return ts;
}

/* ---- the fetch hook's queue and the stall reporter ------------------------
 */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t gpa[QLEN];
	int head, tail;
	int calls;	/* every fetch() call, failed or not */
	int fail_first; /* fail this many calls with -EIO */
	bool stalled;
	uint64_t stall_gpa, stall_waited;
	pid_t stall_tid;
} q;

static void q_init(void)
{
	pthread_condattr_t ca;

	memset(&q, 0, sizeof(q));
	pthread_mutex_init(&q.lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q.cond, &ca);
	pthread_condattr_destroy(&ca);
}

static int fetch_hook(void *opaque, uint64_t gpa)
{
	int ret = 0;

	pthread_mutex_lock(&q.lock);
	if (q.calls++ < q.fail_first) {
		ret = -EIO;
	} else {
		q.gpa[q.tail++ % QLEN] = gpa;
		pthread_cond_broadcast(&q.cond);
	}
	pthread_mutex_unlock(&q.lock);
	return ret;
}

static void stall_hook(void *opaque, uint64_t gpa, uint64_t waited_ns,
		       pid_t tid)
{
	pthread_mutex_lock(&q.lock);
	if (!q.stalled) {
		q.stalled = true;
		q.stall_gpa = gpa;
		q.stall_waited = waited_ns;
		q.stall_tid = tid;
	}
	pthread_cond_broadcast(&q.cond);
	pthread_mutex_unlock(&q.lock);
}

/* Next requested gpa; fails the test after GUARD_S seconds. */
static uint64_t q_pop(void)
{
	struct timespec dl = deadline(CLOCK_MONOTONIC);
	uint64_t gpa;
	int ret = 0;

	pthread_mutex_lock(&q.lock);
	while (q.head == q.tail && ret != ETIMEDOUT)
		ret = pthread_cond_timedwait(&q.cond, &q.lock, &dl);
	cr_assert_neq(q.head, q.tail, "no fetch request within %d s", GUARD_S);
	gpa = q.gpa[q.head++ % QLEN];
	pthread_mutex_unlock(&q.lock);
	return gpa;
}

static void q_wait_stall(void)
{
	struct timespec dl = deadline(CLOCK_MONOTONIC);
	int ret = 0;

	pthread_mutex_lock(&q.lock);
	while (!q.stalled && ret != ETIMEDOUT)
		ret = pthread_cond_timedwait(&q.cond, &q.lock, &dl);
	pthread_mutex_unlock(&q.lock);
	cr_assert(q.stalled, "no stall report within %d s", GUARD_S);
}

static int q_calls(void)
{
	int n;

	pthread_mutex_lock(&q.lock);
	n = q.calls;
	pthread_mutex_unlock(&q.lock);
	return n;
}

/* ---- accessor threads --------------------------------------------------- */

struct accessor {
	pthread_t thread;
	uint64_t gpa[MAX_TOUCH];
	uint64_t seen[MAX_TOUCH]; /* first 8 bytes of each page */
	int n;
	bool write_odd; /* store 0 to odd-numbered pages instead of loading */
	pid_t tid;
};

static void *accessor_run(void *arg)
{
	struct accessor *a = arg;

	__atomic_store_n(&a->tid, gettid(), __ATOMIC_RELEASE);
	for (int i = 0; i < a->n; i++) {
		volatile uint64_t *p =
			mem_gpa_to_hva(&gm, a->gpa[i], PAGE_SIZE);

		if (a->write_odd && (i & 1))
			*p = 0;
		a->seen[i] = *p;
	}
	return NULL;
}

static void accessor_start(struct accessor *a)
{
	for (int i = 0; i < a->n; i++)
		cr_assert_not_null(mem_gpa_to_hva(&gm, a->gpa[i], PAGE_SIZE));
	cr_assert_eq(pthread_create(&a->thread, NULL, accessor_run, a), 0);
}

static void accessor_join(struct accessor *a)
{
	struct timespec dl = deadline(CLOCK_REALTIME);

	cr_assert_eq(pthread_timedjoin_np(a->thread, NULL, &dl), 0,
		     "accessor still blocked after %d s", GUARD_S);
}

static pid_t accessor_tid(struct accessor *a)
{
	return __atomic_load_n(&a->tid, __ATOMIC_ACQUIRE);
}

/* ---- fixture --------------------------------------------------------------
 */

static void setup(void)
{
	char err[256] = "";
	int ret;

	q_init();
	cr_assert_eq(mem_create(&gm, 16 * MiB), 0);
	ret = fault_init(&fs, &gm, err, sizeof(err));
	cr_assert_eq(ret, 0, "fault_init: %s (%d)", err, ret);
}

static void teardown(void)
{
	fault_stop(&fs);
	mem_destroy(&gm);
}

static void reg(uint64_t gpa, uint64_t size, enum fault_resolver res, int fd,
		uint64_t off)
{
	struct fault_range r = {
		.gpa = gpa,
		.size = size,
		.resolver = res,
		.file_fd = fd,
		.file_off = off,
	};
	char err[256] = "";
	int ret = fault_register(&fs, &r, err, sizeof(err));

	cr_assert_eq(ret, 0, "fault_register: %s (%d)", err, ret);
}

static void start_fetch(uint64_t gpa, uint64_t size, uint64_t stall_ns)
{
	reg(gpa, size, FAULT_FETCH, -1, 0);
	fault_set_hooks(&fs, fetch_hook, stall_hook, NULL, stall_ns);
	cr_assert_eq(fault_start(&fs), 0);
}

static void fill_pattern(uint8_t *buf, uint64_t gpa, uint8_t salt)
{
	for (uint64_t i = 0; i < PAGE_SIZE; i++)
		buf[i] = (uint8_t)((gpa >> 12) * 31 + i * 7 + salt);
}

static bool page_state(uint64_t gpa, enum mem_page_state s)
{
	uint64_t page;

	cr_assert_eq(mem_gpa_to_page(&gm, gpa, &page), 0);
	return bitmap_test(&gm.state[s], page);
}

static void print_latency(const char *what, const struct fault_hist *h)
{
	fprintf(stderr,
		"fault latency %-6s n=%llu mean=%.1f us p50=%.1f us p99=%.1f "
		"us max=%.1f us\n",
		what, (unsigned long long)h->count,
		h->count ? (double)h->sum_ns / (double)h->count / 1e3 : 0.0,
		(double)fault_hist_percentile(h, 50) / 1e3,
		(double)fault_hist_percentile(h, 99) / 1e3,
		(double)h->max_ns / 1e3);
}

static void check_percentiles(const struct fault_hist *h)
{
	uint64_t p50 = fault_hist_percentile(h, 50);
	uint64_t p99 = fault_hist_percentile(h, 99);

	cr_expect_gt(p50, 0);
	cr_expect_leq(p50, p99);
	cr_expect_leq(p99, h->max_ns);
}

TestSuite(fault, .init = setup, .fini = teardown, .timeout = 60);

/* ---- zero-fill and file ranges --------------------------------------------
 */

Test(fault, zero_fill_hundred_pages)
{
	static struct accessor a;
	struct fault_stats st;

	reg(gm.regions[0].gpa, gm.regions[0].size, FAULT_ZERO, -1, 0);
	cr_assert_eq(fault_start(&fs), 0);
	a.n = 100;
	a.write_odd = true;
	for (int i = 0; i < a.n; i++)
		a.gpa[i] = (uint64_t)(3 * i + 1) * PAGE_SIZE;
	accessor_start(&a);
	accessor_join(&a);
	/* The faulter runs on once woken, before the accounting: join it. */
	fault_stop(&fs);

	for (int i = 0; i < a.n; i++) {
		cr_expect_eq(a.seen[i], 0);
		cr_expect_eq(memcmp(mem_gpa_to_hva(&gm, a.gpa[i], PAGE_SIZE),
				    zero_page, PAGE_SIZE),
			     0, "page 0x%llx not zero",
			     (unsigned long long)a.gpa[i]);
		cr_expect(page_state(a.gpa[i], MEM_PS_PRESENT));
	}
	cr_expect_eq(bitmap_count(&gm.state[MEM_PS_PRESENT]), 100);
	cr_expect_eq(bitmap_count(&gm.state[MEM_PS_REQUESTED]), 0);

	fault_get_stats(&fs, &st);
	cr_expect_eq(st.cls[FAULT_ZERO].faults, 100);
	cr_expect_eq(st.cls[FAULT_ZERO].latency.count, 100);
	cr_expect_eq(st.cls[FAULT_FILE].faults + st.cls[FAULT_FETCH].faults, 0);
	cr_expect_eq(st.errors, 0);
	cr_expect_eq(st.pending, 0);
	check_percentiles(&st.cls[FAULT_ZERO].latency);
	print_latency("zero", &st.cls[FAULT_ZERO].latency);
}

Test(fault, file_range_reads_the_file_and_zeros_past_eof)
{
	static uint8_t file[3 * PAGE_SIZE + PAGE_SIZE / 2], want[PAGE_SIZE];
	static struct accessor a;
	char path[] = "/tmp/test_fault.XXXXXX";
	const uint64_t base = 2 * MiB;
	struct fault_stats st;
	int fd;

	for (size_t i = 0; i < sizeof(file); i++)
		file[i] = (uint8_t)(i * 7 + i / PAGE_SIZE + 1);
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	unlink(path);
	cr_assert_eq(write(fd, file, sizeof(file)), (ssize_t)sizeof(file));

	/* Range page k holds file page k + 1: 2.5 pages of data, then EOF. */
	reg(base, 8 * PAGE_SIZE, FAULT_FILE, fd, PAGE_SIZE);
	cr_assert_eq(fault_start(&fs), 0);
	a.n = 8;
	for (int i = 0; i < a.n; i++)
		a.gpa[i] = base + (uint64_t)i * PAGE_SIZE;
	accessor_start(&a);
	accessor_join(&a);
	fault_stop(&fs); /* see zero_fill_hundred_pages */

	for (int k = 0; k < 8; k++) {
		uint64_t off = (uint64_t)(k + 1) * PAGE_SIZE;

		memset(want, 0, PAGE_SIZE);
		if (off < sizeof(file))
			memcpy(want, file + off,
			       sizeof(file) - off < PAGE_SIZE
				       ? sizeof(file) - off
				       : PAGE_SIZE);
		cr_expect_eq(memcmp(mem_gpa_to_hva(&gm, a.gpa[k], PAGE_SIZE),
				    want, PAGE_SIZE),
			     0, "range page %d differs from the file", k);
	}
	fault_get_stats(&fs, &st);
	cr_expect_eq(st.cls[FAULT_FILE].faults, 8);
	cr_expect_eq(st.errors, 0);
	print_latency("file", &st.cls[FAULT_FILE].latency);
	close(fd);
}

/* ---- fetch ranges ------------------------------------------------------- */

Test(fault, fetch_ten_pages_placed_by_another_thread)
{
	static struct accessor a;
	static uint8_t buf[PAGE_SIZE];
	const uint64_t base = 4 * MiB;
	struct fault_stats st;

	start_fetch(base, MiB, 0);
	a.n = 10;
	for (int i = 0; i < a.n; i++)
		a.gpa[i] = base + (uint64_t)(3 * i) * PAGE_SIZE;
	accessor_start(&a);
	for (int i = 0; i < a.n; i++) {
		uint64_t gpa = q_pop();

		cr_assert_eq(gpa, a.gpa[i]); /* the accessor goes in order */
		cr_expect(page_state(gpa, MEM_PS_REQUESTED));
		fill_pattern(buf, gpa, 1);
		cr_assert_eq(fault_place_page(&fs, gpa, buf), 0);
	}
	accessor_join(&a);

	for (int i = 0; i < a.n; i++) {
		fill_pattern(buf, a.gpa[i], 1);
		cr_expect_eq(memcmp(&a.seen[i], buf, 8), 0);
		cr_expect_eq(memcmp(mem_gpa_to_hva(&gm, a.gpa[i], PAGE_SIZE),
				    buf, PAGE_SIZE),
			     0);
		cr_expect(page_state(a.gpa[i], MEM_PS_PRESENT));
		cr_expect_not(page_state(a.gpa[i], MEM_PS_REQUESTED));
	}
	fault_get_stats(&fs, &st);
	cr_expect_eq(q_calls(), 10);
	cr_expect_eq(st.cls[FAULT_FETCH].faults, 10);
	cr_expect_eq(st.cls[FAULT_FETCH].latency.count, 10);
	cr_expect_eq(st.pending, 0);
	cr_expect_eq(st.errors, 0);
	check_percentiles(&st.cls[FAULT_FETCH].latency);
	print_latency("fetch", &st.cls[FAULT_FETCH].latency);
}

/* The duplicate counter has no hook: wait for it, bounded. */
static uint64_t wait_dup_faults(void)
{
	const struct timespec tick = {.tv_nsec = 1000000};
	uint64_t end = clock_now_ns() + GUARD_S * 1000 * MS;
	struct fault_stats st;

	for (;;) {
		fault_get_stats(&fs, &st);
		if (st.dup_faults || clock_now_ns() > end)
			return st.dup_faults;
		nanosleep(&tick, NULL);
	}
}

Test(fault, two_threads_one_page_one_fetch)
{
	static struct accessor a, b;
	static uint8_t buf[PAGE_SIZE];
	const uint64_t gpa = 4 * MiB + 5 * PAGE_SIZE;
	struct fault_stats st;

	start_fetch(4 * MiB, MiB, 0);
	a.n = b.n = 1;
	a.gpa[0] = b.gpa[0] = gpa;
	accessor_start(&a);
	cr_assert_eq(q_pop(), gpa);
	accessor_start(&b);
	/* b faults while a's request is in flight: a duplicate. */
	cr_expect_geq(wait_dup_faults(), 1);
	fill_pattern(buf, gpa, 2);
	cr_assert_eq(fault_place_page(&fs, gpa, buf), 0);
	accessor_join(&a);
	accessor_join(&b);

	cr_expect_eq(memcmp(&a.seen[0], buf, 8), 0);
	cr_expect_eq(memcmp(&b.seen[0], buf, 8), 0);
	cr_expect_eq(q_calls(), 1);
	fault_get_stats(&fs, &st);
	cr_expect_eq(st.cls[FAULT_FETCH].faults, 1);
	cr_expect_eq(st.pending, 0);
}

Test(fault, two_threads_two_pages_count_two_waiters)
{
	static struct accessor a, b;
	static uint8_t buf[PAGE_SIZE];
	const uint64_t ga = 4 * MiB + 7 * PAGE_SIZE,
		       gb = 4 * MiB + 9 * PAGE_SIZE;
	struct fault_stats st;

	start_fetch(4 * MiB, MiB, 0);
	a.n = b.n = 1;
	a.gpa[0] = ga;
	b.gpa[0] = gb;
	accessor_start(&a);
	cr_assert_eq(q_pop(), ga);
	fault_get_stats(&fs, &st);
	cr_expect_eq(st.max_waiters, 1);
	accessor_start(&b);
	cr_assert_eq(q_pop(), gb); /* both wait now */
	fill_pattern(buf, ga, 1);
	cr_assert_eq(fault_place_page(&fs, ga, buf), 0);
	fill_pattern(buf, gb, 1);
	cr_assert_eq(fault_place_page(&fs, gb, buf), 0);
	accessor_join(&a);
	accessor_join(&b);
	fault_get_stats(&fs, &st);
	cr_expect_eq(st.max_waiters, 2);
	cr_expect_eq(st.pending, 0);
}

Test(fault, place_zero_wakes_the_faulter)
{
	static struct accessor a;
	const uint64_t gpa = 4 * MiB + 9 * PAGE_SIZE;

	start_fetch(4 * MiB, MiB, 0);
	a.n = 1;
	a.gpa[0] = gpa;
	accessor_start(&a);
	cr_assert_eq(q_pop(), gpa);
	cr_assert_eq(fault_place_zero(&fs, gpa), 0);
	accessor_join(&a);
	cr_expect_eq(a.seen[0], 0);
	cr_expect(page_state(gpa, MEM_PS_PRESENT));
}

Test(fault, place_twice_keeps_the_first)
{
	static uint8_t first[PAGE_SIZE], second[PAGE_SIZE];
	const uint64_t gpa = 4 * MiB + 7 * PAGE_SIZE;
	struct fault_stats st;
	uint64_t page;

	start_fetch(4 * MiB, MiB, 0);
	fill_pattern(first, gpa, 3);
	fill_pattern(second, gpa, 4);
	cr_assert_eq(fault_place_page(&fs, gpa, first), 0);
	/* Already PRESENT: no ioctl. */
	cr_assert_eq(fault_place_page(&fs, gpa, second), 0);
	fault_get_stats(&fs, &st);
	cr_expect_eq(st.eexist, 0);
	/* Two placers that both saw it missing: the second gets EEXIST. */
	cr_assert_eq(mem_gpa_to_page(&gm, gpa, &page), 0);
	bitmap_clear(&gm.state[MEM_PS_PRESENT], page);
	cr_assert_eq(fault_place_page(&fs, gpa, second), 0);
	fault_get_stats(&fs, &st);
	cr_expect_eq(st.eexist, 1);
	cr_expect_eq(st.errors, 0);
	cr_expect_eq(st.cls[FAULT_FETCH].faults, 0);
	cr_expect(page_state(gpa, MEM_PS_PRESENT));
	cr_expect_eq(
		memcmp(mem_gpa_to_hva(&gm, gpa, PAGE_SIZE), first, PAGE_SIZE),
		0);
	cr_expect_eq(q_calls(), 0);
}

Test(fault, place_before_fault_means_no_fault)
{
	static struct accessor a;
	static uint8_t buf[PAGE_SIZE];
	const uint64_t gpa = 4 * MiB + 11 * PAGE_SIZE;
	struct fault_stats st;

	start_fetch(4 * MiB, MiB, 0);
	fill_pattern(buf, gpa, 5);
	cr_assert_eq(fault_place_page(&fs, gpa, buf), 0);
	a.n = 1;
	a.gpa[0] = gpa;
	accessor_start(&a);
	accessor_join(&a);
	cr_expect_eq(memcmp(&a.seen[0], buf, 8), 0);
	cr_expect_eq(q_calls(), 0);
	fault_get_stats(&fs, &st);
	cr_expect_eq(st.cls[FAULT_FETCH].faults, 0);
	cr_expect_eq(st.dup_faults, 0);
}

Test(fault, stall_is_reported_with_the_faulting_tid)
{
	static struct accessor a;
	static uint8_t buf[PAGE_SIZE];
	const uint64_t gpa = 4 * MiB + 13 * PAGE_SIZE;
	struct fault_stats st;

	start_fetch(4 * MiB, MiB, 50 * MS);
	a.n = 1;
	a.gpa[0] = gpa;
	accessor_start(&a);
	cr_assert_eq(q_pop(), gpa); /* requested, never answered */
	q_wait_stall();
	cr_expect_eq(q.stall_gpa, gpa);
	cr_expect_geq(q.stall_waited, 50 * MS);
	cr_expect_eq(q.stall_tid, accessor_tid(&a));
	fault_get_stats(&fs, &st);
	cr_expect_eq(st.stalls, 1);
	cr_expect_eq(st.pending, 1);

	fill_pattern(buf, gpa, 6);
	cr_assert_eq(fault_place_page(&fs, gpa, buf), 0);
	accessor_join(&a);
	cr_expect_eq(memcmp(&a.seen[0], buf, 8), 0);
	fault_get_stats(&fs, &st);
	cr_expect_eq(st.stalls, 1);
	cr_expect_eq(st.pending, 0);
	cr_expect_geq(st.cls[FAULT_FETCH].latency.max_ns, 50 * MS);
	fprintf(stderr, "stall reported after %.1f ms (limit 50 ms)\n",
		(double)q.stall_waited / 1e6);
}

Test(fault, failed_fetch_is_retried)
{
	static struct accessor a;
	static uint8_t buf[PAGE_SIZE];
	const uint64_t gpa = 4 * MiB + 17 * PAGE_SIZE;
	struct fault_stats st;

	q.fail_first = 1;
	start_fetch(4 * MiB, MiB, 0); /* no stall limit: retry period only */
	a.n = 1;
	a.gpa[0] = gpa;
	accessor_start(&a);
	cr_assert_eq(q_pop(), gpa); /* the second call, from the scan */
	cr_expect_eq(q_calls(), 2);
	fill_pattern(buf, gpa, 7);
	cr_assert_eq(fault_place_page(&fs, gpa, buf), 0);
	accessor_join(&a);
	cr_expect_eq(memcmp(&a.seen[0], buf, 8), 0);
	fault_get_stats(&fs, &st);
	cr_expect_eq(st.errors, 1);
	cr_expect_eq(st.cls[FAULT_FETCH].faults, 1);
	cr_expect_eq(st.pending, 0);
	cr_expect_not(page_state(gpa, MEM_PS_REQUESTED));
}

Test(fault, unreadable_file_stalls_until_placed)
{
	static struct accessor a;
	const uint64_t gpa = 2 * MiB + 3 * PAGE_SIZE;
	struct fault_stats st;
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0);
	reg(2 * MiB, 8 * PAGE_SIZE, FAULT_FILE, fd, 0); /* pread: EBADF */
	fault_set_hooks(&fs, NULL, stall_hook, NULL, 20 * MS);
	cr_assert_eq(fault_start(&fs), 0);
	a.n = 1;
	a.gpa[0] = gpa;
	accessor_start(&a);
	q_wait_stall();
	cr_expect_eq(q.stall_gpa, gpa);
	cr_expect_eq(q.stall_tid, accessor_tid(&a));
	cr_expect_not(page_state(gpa, MEM_PS_PRESENT));
	cr_assert_eq(fault_place_zero(&fs, gpa), 0);
	accessor_join(&a);
	cr_expect_eq(a.seen[0], 0);
	fault_stop(&fs);
	fault_get_stats(&fs, &st);
	cr_expect_geq(st.errors, 1);
	cr_expect_eq(st.pending, 0);
	cr_expect_eq(st.stalls, 1);
	close(fd);
}

/*
 * Everything at once on 256 pages: four accessors in different orders, a
 * pusher placing every page in order (post-copy's background push) and an
 * answerer placing requested pages. Each page is requested at most once,
 * every accessor sees the right bytes, and nothing is left behind.
 */
#define RACE_BASE  (4 * MiB)
#define RACE_PAGES 256

static bool race_stop;
static uint8_t race_requested[RACE_PAGES];
static int race_failures; /* no cr_assert off the test thread */

static void race_place(uint64_t gpa)
{
	uint8_t buf[PAGE_SIZE];

	fill_pattern(buf, gpa, 9);
	if (fault_place_page(&fs, gpa, buf))
		__atomic_add_fetch(&race_failures, 1, __ATOMIC_RELAXED);
}

/* Start pushing once the accessors are well under way. */
static void *race_push(void *arg)
{
	pthread_mutex_lock(&q.lock);
	while (q.calls < 8 && !race_stop)
		pthread_cond_wait(&q.cond, &q.lock);
	pthread_mutex_unlock(&q.lock);
	for (uint64_t i = 0; i < RACE_PAGES; i++)
		race_place(RACE_BASE + i * PAGE_SIZE);
	return NULL;
}

static void *race_answer(void *arg)
{
	for (;;) {
		uint64_t gpa;

		pthread_mutex_lock(&q.lock);
		while (q.head == q.tail && !race_stop)
			pthread_cond_wait(&q.cond, &q.lock);
		if (q.head == q.tail) {
			pthread_mutex_unlock(&q.lock);
			return NULL;
		}
		gpa = q.gpa[q.head++ % QLEN];
		pthread_mutex_unlock(&q.lock);
		race_requested[(gpa - RACE_BASE) / PAGE_SIZE]++;
		race_place(gpa);
	}
}

Test(fault, requests_pushes_and_duplicates_race)
{
	static struct accessor acc[4];
	static uint8_t want[PAGE_SIZE];
	pthread_t pusher, answerer;
	struct fault_stats st;

	start_fetch(RACE_BASE, RACE_PAGES * PAGE_SIZE, 0);
	for (int t = 0; t < 4; t++) {
		acc[t].n = MAX_TOUCH;
		for (int i = 0; i < MAX_TOUCH; i++) {
			uint64_t k = t == 0   ? (uint64_t)i * 2
				     : t == 1 ? RACE_PAGES - 1 - (uint64_t)i
				     : t == 2 ? (uint64_t)i * 37 % RACE_PAGES
					      : (uint64_t)i * 101 % RACE_PAGES;

			acc[t].gpa[i] = RACE_BASE + k * PAGE_SIZE;
		}
	}
	cr_assert_eq(pthread_create(&answerer, NULL, race_answer, NULL), 0);
	for (int t = 0; t < 4; t++)
		accessor_start(&acc[t]);
	cr_assert_eq(pthread_create(&pusher, NULL, race_push, NULL), 0);
	for (int t = 0; t < 4; t++)
		accessor_join(&acc[t]);
	pthread_join(pusher, NULL);
	pthread_mutex_lock(&q.lock);
	race_stop = true;
	pthread_cond_broadcast(&q.cond);
	pthread_mutex_unlock(&q.lock);
	pthread_join(answerer, NULL);
	fault_stop(&fs); /* wake-only faults are accounted after the wake */

	for (int t = 0; t < 4; t++) {
		for (int i = 0; i < MAX_TOUCH; i++) {
			fill_pattern(want, acc[t].gpa[i], 9);
			cr_expect_eq(memcmp(&acc[t].seen[i], want, 8), 0);
		}
	}
	for (uint64_t i = 0; i < RACE_PAGES; i++) {
		uint64_t gpa = RACE_BASE + i * PAGE_SIZE;

		fill_pattern(want, gpa, 9);
		cr_expect_eq(memcmp(mem_gpa_to_hva(&gm, gpa, PAGE_SIZE), want,
				    PAGE_SIZE),
			     0);
		cr_expect_leq(race_requested[i], 1, "page %llu requested %d",
			      (unsigned long long)i, race_requested[i]);
	}
	fault_get_stats(&fs, &st);
	cr_expect_eq(race_failures, 0);
	cr_expect_eq(bitmap_count(&gm.state[MEM_PS_PRESENT]), RACE_PAGES);
	cr_expect_eq(bitmap_count(&gm.state[MEM_PS_REQUESTED]), 0);
	cr_expect_eq(st.pending, 0);
	cr_expect_eq(st.errors, 0);
	cr_expect_eq(st.stalls, 0);
	fprintf(stderr,
		"race: %d requests, %llu fetch faults, %llu dups, %llu "
		"eexist\n",
		q_calls(), (unsigned long long)st.cls[FAULT_FETCH].faults,
		(unsigned long long)st.dup_faults,
		(unsigned long long)st.eexist);
}

/* ---- registration ------------------------------------------------------- */

static int try_reg(uint64_t gpa, uint64_t size, enum fault_resolver res, int fd)
{
	struct fault_range r = {
		.gpa = gpa, .size = size, .resolver = res, .file_fd = fd};
	char err[256] = "";
	int ret = fault_register(&fs, &r, err, sizeof(err));

	if (ret)
		cr_expect_neq(err[0], '\0', "no message for %d", ret);
	return ret;
}

Test(fault, register_rejects_bad_ranges)
{
	cr_expect_eq(try_reg(0x800, PAGE_SIZE, FAULT_ZERO, -1), -EINVAL);
	cr_expect_eq(try_reg(0, 0, FAULT_ZERO, -1), -EINVAL);
	cr_expect_eq(try_reg(0, PAGE_SIZE + 1, FAULT_ZERO, -1), -EINVAL);
	cr_expect_eq(try_reg(15 * MiB, 2 * MiB, FAULT_ZERO, -1), -EINVAL);
	cr_expect_eq(try_reg(16 * MiB, PAGE_SIZE, FAULT_ZERO, -1), -EINVAL);
	cr_expect_eq(try_reg(0, PAGE_SIZE, FAULT_RESOLVER_MAX, -1), -EINVAL);
	cr_expect_eq(try_reg(0, PAGE_SIZE, FAULT_FILE, -1), -EBADF);
	cr_expect_eq(try_reg(0, 2 * PAGE_SIZE, FAULT_ZERO, -1), 0);
	cr_expect_eq(try_reg(PAGE_SIZE, PAGE_SIZE, FAULT_ZERO, -1), -EEXIST);
	for (int i = 1; i < FAULT_MAX_RANGES; i++)
		cr_expect_eq(
			try_reg((uint64_t)i * MiB, PAGE_SIZE, FAULT_ZERO, -1),
			0);
	cr_expect_eq(try_reg(15 * MiB, PAGE_SIZE, FAULT_ZERO, -1), -ENOSPC);
	cr_expect_eq(fs.nr_ranges, FAULT_MAX_RANGES);
}

Test(fault, fetch_range_needs_a_hook_and_no_late_register)
{
	reg(4 * MiB, MiB, FAULT_FETCH, -1, 0);
	cr_expect_eq(fault_start(&fs), -EINVAL);
	fault_set_hooks(&fs, fetch_hook, NULL, NULL, 0);
	cr_assert_eq(fault_start(&fs), 0);
	cr_expect_eq(fault_start(&fs), -EBUSY);
	cr_expect_eq(try_reg(8 * MiB, MiB, FAULT_ZERO, -1), -EBUSY);
}

Test(fault, resolver_names)
{
	cr_expect_str_eq(fault_resolver_name(FAULT_ZERO), "zero");
	cr_expect_str_eq(fault_resolver_name(FAULT_FILE), "file");
	cr_expect_str_eq(fault_resolver_name(FAULT_FETCH), "fetch");
}

/* ---- shutdown ------------------------------------------------------------ */

Test(fault, stop_idle_is_prompt_and_idempotent)
{
	struct fault_stats st;
	uint64_t t0;

	start_fetch(4 * MiB, MiB, 0); /* infinite poll timeout */
	t0 = clock_now_ns();
	fault_stop(&fs);
	cr_expect_lt(clock_now_ns() - t0, 1000 * MS);
	fprintf(stderr, "idle fault_stop took %.1f us\n",
		(double)(clock_now_ns() - t0) / 1e3);
	fault_stop(&fs);
	cr_expect_eq(fs.uffd, -1);
	cr_expect_eq(fs.stop_efd, -1);
	cr_expect_eq(fault_place_zero(&fs, 4 * MiB), -EBADF);
	fault_get_stats(&fs, &st);
	cr_expect_eq(st.errors, 0);
}

Test(fault, stop_without_start)
{
	reg(0, MiB, FAULT_ZERO, -1, 0);
	fault_stop(&fs);
	fault_stop(&fs);
	cr_expect_eq(fs.uffd, -1);
}

Test(fault, stop_never_initialised)
{
	static struct fault_service zeroed;

	fault_stop(&zeroed); /* must not close fd 0 */
	cr_expect_neq(fcntl(0, F_GETFD), -1);
}

Test(fault, stop_releases_a_blocked_faulter)
{
	static struct accessor a;
	const uint64_t gpa = 4 * MiB + 19 * PAGE_SIZE;

	start_fetch(4 * MiB, MiB, 0);
	a.n = 1;
	a.gpa[0] = gpa;
	accessor_start(&a);
	cr_assert_eq(q_pop(), gpa);
	fault_stop(&fs); /* unregister wakes it: a plain zero page */
	accessor_join(&a);
	cr_expect_eq(a.seen[0], 0);
}

/* ---- histogram ------------------------------------------------------------
 */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[n]. */
static uint64_t exact_pct(const uint64_t *v, size_t n, double p)
{
	double r = p * (double)n / 100.0;
	size_t rank = (size_t)r;

	if ((double)rank < r)
		rank++;
	if (rank < 1)
		rank = 1;
	return v[rank - 1];
}

static void check_dist(uint64_t *v, size_t n)
{
	static const double ps[] = {0.1, 1, 10, 25, 50, 75, 90, 99, 99.9, 100};
	static struct fault_hist h;
	uint64_t max = 0;

	memset(&h, 0, sizeof(h));
	for (size_t i = 0; i < n; i++) {
		fault_hist_add(&h, v[i]);
		max = v[i] > max ? v[i] : max;
	}
	qsort(v, n, sizeof(*v), cmp_u64);
	cr_assert_eq(h.count, n);
	cr_assert_eq(h.max_ns, max);
	for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
		uint64_t want = exact_pct(v, n, ps[i]);
		uint64_t got = fault_hist_percentile(&h, ps[i]);

		cr_expect_geq(got, want, "p%g: %llu < %llu", ps[i],
			      (unsigned long long)got,
			      (unsigned long long)want);
		cr_expect_leq(got - want, want / 8, "p%g: %llu vs %llu", ps[i],
			      (unsigned long long)got,
			      (unsigned long long)want);
	}
	cr_expect_eq(fault_hist_percentile(&h, 100), max);
}

Test(fault_hist, empty_is_zero)
{
	static struct fault_hist h;

	cr_expect_eq(fault_hist_percentile(&h, 50), 0);
	cr_expect_eq(fault_hist_percentile(&h, 100), 0);
}

Test(fault_hist, small_values_are_exact)
{
	uint64_t v[] = {0, 1, 2, 3, 4, 5, 6, 7};

	check_dist(v, 8);
	memcpy(v, (uint64_t[]){0, 1, 2, 3, 4, 5, 6, 7}, sizeof(v));
	for (size_t i = 0; i < 8; i++) {
		static struct fault_hist h;

		memset(&h, 0, sizeof(h));
		fault_hist_add(&h, v[i]);
		fault_hist_add(&h, 1000);
		cr_expect_eq(fault_hist_percentile(&h, 50), v[i]);
	}
}

Test(fault_hist, constant_distribution)
{
	static uint64_t v[1000];

	for (size_t i = 0; i < 1000; i++)
		v[i] = 12345;
	check_dist(v, 1000);
}

Test(fault_hist, uniform_distribution)
{
	static uint64_t v[100000];

	for (size_t i = 0; i < 100000; i++)
		v[i] = 100000 - i;
	check_dist(v, 100000);
}

Test(fault_hist, log_uniform_distribution)
{
	static uint64_t v[50000];
	uint64_t x = 88172645463325252ULL;

	for (size_t i = 0; i < 50000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
		v[i] = (x >> 20) >> (x % 44);
	}
	check_dist(v, 50000);
}

/* Every bucket edge: a value's percentile is its bucket's upper bound. */
Test(fault_hist, bucket_bounds_within_an_eighth)
{
	static struct fault_hist h;

	for (int b = 3; b < 64; b++) {
		uint64_t p2 = 1ULL << b;
		uint64_t vals[] = {p2 - 1,	    p2,		 p2 + 1,
				   p2 + p2 / 8 - 1, p2 + p2 / 8, p2 + p2 / 2};

		for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
			uint64_t got;

			memset(&h, 0, sizeof(h));
			fault_hist_add(&h, vals[i]);
			fault_hist_add(&h, UINT64_MAX);
			got = fault_hist_percentile(&h, 50);
			cr_expect_geq(got, vals[i]);
			cr_expect_leq(got - vals[i], vals[i] / 8,
				      "%llu -> %llu",
				      (unsigned long long)vals[i],
				      (unsigned long long)got);
		}
	}
	memset(&h, 0, sizeof(h));
	fault_hist_add(&h, UINT64_MAX);
	cr_expect_eq(fault_hist_percentile(&h, 99), UINT64_MAX);
	cr_expect_eq(h.buckets[FAULT_HIST_BUCKETS - 1 - 16], 1);
}

/*
 * A stretch of 16 pages in as few ioctls as the pages allow: the one
 * placed first in its middle is skipped (EEXIST, kept), the faulter
 * waiting on the stretch's last page is woken, every page is PRESENT
 * with its data; then 8 zero pages the same way.
 */
Test(fault, place_pages_a_stretch_around_one_placed_first)
{
	static uint8_t buf[16 * PAGE_SIZE], first[PAGE_SIZE];
	static struct accessor a;
	const uint64_t base = 4 * MiB;
	struct fault_stats st;
	uint64_t page;

	start_fetch(base, MiB, 0);
	a.n = 1;
	a.gpa[0] = base + 15 * PAGE_SIZE;
	accessor_start(&a);
	cr_assert_eq(q_pop(), a.gpa[0]);
	for (int i = 0; i < 16; i++)
		fill_pattern(buf + i * PAGE_SIZE, base + i * PAGE_SIZE, 5);
	fill_pattern(first, base + 6 * PAGE_SIZE, 6);
	cr_assert_eq(fault_place_page(&fs, base + 6 * PAGE_SIZE, first), 0);
	/* As if another placer got there first: PRESENT not yet seen. */
	cr_assert_eq(mem_gpa_to_page(&gm, base + 6 * PAGE_SIZE, &page), 0);
	bitmap_clear(&gm.state[MEM_PS_PRESENT], page);
	cr_assert_eq(fault_place_pages(&fs, base, buf, 16), 0);
	accessor_join(&a);
	cr_expect_eq(memcmp(&a.seen[0], buf + 15 * PAGE_SIZE, 8), 0);
	for (int i = 0; i < 16; i++) {
		uint64_t gpa = base + i * PAGE_SIZE;

		cr_expect(page_state(gpa, MEM_PS_PRESENT), "page %d", i);
		cr_expect_eq(memcmp(mem_gpa_to_hva(&gm, gpa, PAGE_SIZE),
				    i == 6 ? first : buf + i * PAGE_SIZE,
				    PAGE_SIZE),
			     0, "page %d", i);
	}
	cr_assert_eq(fault_place_pages(&fs, base + 32 * PAGE_SIZE, NULL, 8), 0);
	for (int i = 32; i < 40; i++)
		cr_expect_eq(memcmp(mem_gpa_to_hva(&gm, base + i * PAGE_SIZE,
						   PAGE_SIZE),
				    zero_page, PAGE_SIZE),
			     0, "zero page %d", i);
	/* Beyond RAM, and not page-aligned: refused before any ioctl. */
	cr_expect_eq(fault_place_pages(&fs, 16 * MiB - PAGE_SIZE, buf, 2),
		     -EFAULT);
	cr_expect_eq(fault_place_pages(&fs, base + 1, buf, 1), -EINVAL);
	fault_get_stats(&fs, &st);
	cr_expect_eq(st.eexist, 1);
	cr_expect_eq(st.errors, 0);
	cr_expect_eq(st.pending, 0);
}
