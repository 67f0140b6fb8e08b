// SPDX-License-Identifier: MIT
/*
 * test_dirty_log.c - dirty tracking on a real KVM guest, both back ends.
 *
 * The guest runs the `touch --mib N` workload; for each round the host
 * posts GUEST_REQ_TOUCH with a seed, the guest writes exactly the pages
 * touch_page_selected(seed, i) of its region (common/guest_abi.h) and
 * acknowledges, and the host harvests. Inside the region the harvested set
 * must equal the written set exactly; outside it, only pages the guest
 * cannot avoid writing (its own image with stacks and .bss, and the
 * boot-info page with the mailbox) may appear. A ring smaller than a
 * round's writes must still lose nothing, through the ring-full exit.
 * Host writes reported with ept_mark_dirty join the set.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define TOUCH_MIB 8
#define ROUNDS	  5

/* Test thread and vCPU threads: everything below is guarded by lock. */
struct harness {
	struct vm vm;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t markers[MARK_MAX];
	uint64_t marker_arg[MARK_MAX];
	uint32_t done_seq;
	bool exited;
	char serial[64];
};

static struct harness h;

static void harness_event(void *opaque, const char *name, uint64_t id,
			  uint64_t arg)
{
	(void)opaque;
	if (strcmp(name, "marker") || id >= MARK_MAX)
		return;
	pthread_mutex_lock(&h.lock);
	h.markers[id]++;
	h.marker_arg[id] = arg;
	if (id == MARK_REQ_DONE)
		h.done_seq = (uint32_t)arg;
	pthread_cond_broadcast(&h.cond);
	pthread_mutex_unlock(&h.lock);
}

static void harness_exit(void *opaque)
{
	(void)opaque;
	pthread_mutex_lock(&h.lock);
	h.exited = true;
	pthread_cond_broadcast(&h.cond);
	pthread_mutex_unlock(&h.lock);
}

static void harness_dump_serial(void)
{
	char line[256];
	FILE *f = fopen(h.serial, "r");

	while (f && fgets(line, sizeof(line), f))
		fprintf(stderr, "guest: %s", line);
	if (f)
		fclose(f);
}

/* Wait (10 s at most) until marker id has been seen at least n times. */
static void harness_wait_marker(int id, uint64_t n)
{
	struct timespec dl;
	int r = 0;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 10;
	pthread_mutex_lock(&h.lock);
	while (h.markers[id] < n && !h.exited && r == 0)
		r = pthread_cond_timedwait(&h.cond, &h.lock, &dl);
	pthread_mutex_unlock(&h.lock);
	if (h.markers[id] < n)
		harness_dump_serial();
	cr_assert_geq(h.markers[id], n, "marker %d: saw %llu, want %llu%s", id,
		      (unsigned long long)h.markers[id], (unsigned long long)n,
		      h.exited ? " (the VM exited)" : "");
}

static void harness_boot(enum dirty_backend backend, uint32_t ring_entries)
{
	const char *elf = getenv("GUEST_ELF");
	struct vm_config cfg = {
		.kernel = elf,
		.append = "touch --mib 8",
		.serial_path = h.serial,
		.mem_size = 128ULL << 20,
		.nr_cpus = 2,
		.dirty_backend = backend,
		.dirty_ring_entries = ring_entries,
	};
	char err[512];

	if (access("/dev/kvm", R_OK | W_OK))
		cr_skip_test("SKIP: /dev/kvm is absent on this machine");
	cr_assert(elf, "GUEST_ELF must name the test guest image");
	snprintf(h.serial, sizeof(h.serial), "/tmp/vmm-dirty-XXXXXX");
	cr_assert_geq(mkstemp(h.serial), 0);
	pthread_mutex_init(&h.lock, NULL);
	pthread_cond_init(&h.cond, NULL);
	cr_assert_eq(vcpu_signals_init(), 0);
	cr_assert_eq(vm_create(&h.vm, &cfg, err, sizeof(err)), 0, "%s", err);
	h.vm.on_event = harness_event;
	h.vm.on_exit = harness_exit;
	cr_assert_eq(vm_start(&h.vm, err, sizeof(err)), 0, "%s", err);
	harness_wait_marker(MARK_RESULT, 1); /* the region is ready */
}

static void harness_teardown(void)
{
	if (h.vm.fd <= 0)
		return;
	vm_request_exit(&h.vm, 0, "test done");
	vm_join(&h.vm);
	vm_destroy(&h.vm);
	unlink(h.serial);
	memset(&h, 0, sizeof(h));
}

/* One touch round: post the request, wait for its acknowledgement. */
static void harness_touch(uint32_t seed)
{
	int seq = vm_guest_request(&h.vm, GUEST_REQ_TOUCH, seed);
	struct timespec dl;
	int r = 0;

	cr_assert_gt(seq, 0);
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 10;
	pthread_mutex_lock(&h.lock);
	while (h.done_seq < (uint32_t)seq && !h.exited && r == 0)
		r = pthread_cond_timedwait(&h.cond, &h.lock, &dl);
	pthread_mutex_unlock(&h.lock);
	cr_assert_geq(h.done_seq, (uint32_t)seq, "touch %u not acknowledged",
		      seed);
}

static const struct boot_info *harness_boot_info(void)
{
	return mem_gpa_to_hva(&h.vm.mem, GUEST_BOOT_INFO_GPA,
			      sizeof(struct boot_info));
}

/* Pages the guest writes whatever it does: image, boot info, heartbeat. */
static bool harness_unavoidable(uint64_t gpa)
{
	const struct boot_info *bi = harness_boot_info();

	if (gpa >> 12 == GUEST_BOOT_INFO_GPA >> 12 ||
	    gpa >> 12 == GUEST_HB_PAGE_GPA >> 12)
		return true;
	return gpa >= GUEST_KERNEL_BASE && gpa < bi->kernel_end;
}

/*
 * Harvest (dirty_harvest_last if last) and compare with the round's set
 * (plus extra[], host writes). Returns the pages found in the region.
 */
static uint64_t harness_check_by(bool last, uint32_t seed,
				 const uint64_t *extra, int nr_extra)
{
	struct bitmap *dirty = &h.vm.mem.state[MEM_PS_DIRTY];
	uint64_t base = h.marker_arg[MARK_RESULT]; /* region page number */
	uint64_t npages = TOUCH_MIB * 256, in = 0, bad = 0;
	char err[256];

	cr_assert_eq(
		last ? dirty_harvest_last(&h.vm.dirty, NULL, err, sizeof(err))
		     : dirty_harvest(&h.vm.dirty, NULL, err, sizeof(err)),
		0, "%s", err);
	for (uint64_t i = 0; i < npages; i++) {
		bool want = touch_page_selected(seed, i);
		bool got = bitmap_test(dirty, base + i);

		for (int e = 0; e < nr_extra; e++)
			want |= extra[e] == i;
		if (want != got && bad++ < 5)
			cr_log_error("seed %u page %llu: %s", seed,
				     (unsigned long long)i,
				     want ? "written but not reported dirty"
					  : "reported dirty, never written");
		in += got;
	}
	cr_assert_eq(bad, 0, "seed %u: %llu pages differ", seed,
		     (unsigned long long)bad);
	for (uint64_t p = bitmap_next_set(dirty, 0); p < dirty->nbits;
	     p = bitmap_next_set(dirty, p + 1)) {
		uint64_t gpa = mem_page_to_gpa(&h.vm.mem, p);

		if (p >= base && p < base + npages)
			continue;
		cr_assert(harness_unavoidable(gpa),
			  "seed %u: page at gpa 0x%llx reported dirty outside "
			  "the region and the guest's own pages",
			  seed, (unsigned long long)gpa);
	}
	bitmap_zero(dirty);
	return in;
}

static uint64_t harness_check(uint32_t seed, const uint64_t *extra,
			      int nr_extra)
{
	return harness_check_by(false, seed, extra, nr_extra);
}

/* Harvest; how many region pages were reported (expected: none). */
static uint64_t harness_check_none(void)
{
	struct bitmap *dirty = &h.vm.mem.state[MEM_PS_DIRTY];
	uint64_t base = h.marker_arg[MARK_RESULT], n = 0;
	char err[256];

	cr_assert_eq(dirty_harvest(&h.vm.dirty, NULL, err, sizeof(err)), 0);
	for (uint64_t i = 0; i < TOUCH_MIB * 256; i++)
		n += bitmap_test(dirty, base + i);
	bitmap_zero(dirty);
	return n;
}

/* Start logging, drop what boot dirtied, then check ROUNDS rounds + all. */
static void harness_rounds(void)
{
	char err[256];

	cr_assert_eq(dirty_start(&h.vm.dirty, err, sizeof(err)), 0, "%s", err);
	harness_touch(1000); /* let the log settle, then forget it */
	cr_assert_eq(dirty_harvest(&h.vm.dirty, NULL, err, sizeof(err)), 0);
	bitmap_zero(&h.vm.mem.state[MEM_PS_DIRTY]);
	for (uint32_t seed = 1; seed <= ROUNDS; seed++) {
		harness_touch(seed);
		cr_assert_gt(harness_check(seed, NULL, 0), 0);
	}
	harness_touch(0); /* every page */
	cr_assert_eq(harness_check(0, NULL, 0), TOUCH_MIB * 256);
	/* No round posted: nothing in the region is reported. */
	cr_assert_eq(harness_check_none(), 0);
}

TestSuite(dirty_log, .fini = harness_teardown, .timeout = 120);

Test(dirty_log, bitmap_exact_each_round)
{
	harness_boot(DIRTY_BITMAP, 0);
	harness_rounds();
}

Test(dirty_log, ring_exact_each_round)
{
	harness_boot(DIRTY_RING, 65536);
	harness_rounds();
	cr_assert_eq(h.vm.dirty.st.ring_full_exits, 0);
}

Test(dirty_log, small_ring_fills_and_loses_nothing)
{
	harness_boot(DIRTY_RING, 512);
	harness_rounds(); /* every round writes more pages than 512 */
	cr_assert_gt(h.vm.dirty.st.ring_full_exits, 0,
		     "the 512-entry ring never filled: test proves nothing");
}

Test(dirty_log, host_writes_join_the_dirty_set)
{
	uint64_t extra[3] = {3, 700, 2047};
	uint64_t base;
	char err[256];

	harness_boot(DIRTY_BITMAP, 0);
	base = h.marker_arg[MARK_RESULT];
	cr_assert_eq(dirty_start(&h.vm.dirty, err, sizeof(err)), 0, "%s", err);
	harness_check_none();
	harness_touch(7);
	for (int i = 0; i < 3; i++) {
		uint64_t gpa = mem_page_to_gpa(&h.vm.mem, base + extra[i]);
		uint64_t v = 0x1234;

		cr_assert_eq(mem_write(&h.vm.mem, gpa + 8, &v, sizeof(v)), 0);
		ept_mark_dirty(&h.vm.mem, gpa + 8, sizeof(v));
	}
	harness_check(7, extra, 3);
	/* The three, and the mailbox page of the touch request. */
	cr_assert_eq(h.vm.dirty.st.host_pages, 4);
	cr_assert_eq(harness_check_none(), 0);
}

/*
 * The switch's last harvest finds exactly what was written but leaves it
 * writable: with the bitmap back end the next harvest reports the same
 * pages again (nothing was cleared), where after an ordinary harvest it
 * reports none. Both back ends lose nothing in it.
 */
static void harness_last(void)
{
	char err[256];

	cr_assert_eq(dirty_start(&h.vm.dirty, err, sizeof(err)), 0, "%s", err);
	harness_touch(1000);
	harness_check_none();
	harness_touch(3);
	cr_assert_gt(harness_check_by(true, 3, NULL, 0), 0);
}

Test(dirty_log, last_harvest_does_not_protect_again_bitmap)
{
	harness_boot(DIRTY_BITMAP, 0);
	harness_last();
	cr_assert_gt(harness_check(3, NULL, 0), 0,
		     "the last harvest cleared the log");
	cr_assert_eq(harness_check_none(), 0);
}

Test(dirty_log, last_harvest_loses_nothing_ring)
{
	harness_boot(DIRTY_RING, 65536);
	harness_last();
}

/*
 * A guest request writes the boot-info mailbox from the host: with every
 * vCPU paused (the guest cannot write it itself), the harvest must still
 * report that page, as a host write.
 */
Test(dirty_log, guest_request_marks_the_mailbox_dirty)
{
	struct bitmap *dirty = &h.vm.mem.state[MEM_PS_DIRTY];
	uint64_t page;
	char err[256];
	int seq;

	harness_boot(DIRTY_BITMAP, 0);
	cr_assert_eq(mem_gpa_to_page(&h.vm.mem, GUEST_BOOT_INFO_GPA, &page), 0);
	cr_assert_eq(dirty_start(&h.vm.dirty, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(vm_pause(&h.vm), 0);
	harness_check_none();
	cr_assert_eq(dirty_harvest(&h.vm.dirty, NULL, err, sizeof(err)), 0);
	cr_assert_not(bitmap_test(dirty, page), "paused, yet the mailbox "
						"page was reported dirty");
	seq = vm_guest_request(&h.vm, GUEST_REQ_TOUCH, 9);
	cr_assert_gt(seq, 0);
	cr_assert_eq(dirty_harvest(&h.vm.dirty, NULL, err, sizeof(err)), 0);
	cr_assert(bitmap_test(dirty, page),
		  "the guest request wrote the mailbox page (gpa 0x%llx) but "
		  "the harvest does not report it",
		  (unsigned long long)GUEST_BOOT_INFO_GPA);
	cr_assert_eq(h.vm.dirty.st.host_pages, 1);
	bitmap_zero(dirty);
	cr_assert_eq(vm_resume(&h.vm), 0);
}
