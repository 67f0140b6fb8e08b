// SPDX-License-Identifier: MIT
/*
 * kvmtest.c - the test VM shared by the in-process KVM tests (kvmtest.h):
 * creation from the test guest, the vCPU threads' marker and exit
 * callbacks, and the checks of heartbeats and the guest's verify.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "tests/kvm/kvmtest.h"
#include "vmm/vcpu.h"

/* vCPU thread: a marker from the guest. */
static void tvm_event(void *opaque, const char *name, uint64_t id, uint64_t arg)
{
	struct tvm *t = opaque;

	if (strcmp(name, "marker") || id >= MARK_MAX)
		return;
	pthread_mutex_lock(&t->lock);
	t->markers[id]++;
	if (id == MARK_REQ_DONE)
		t->done_seq = (uint32_t)arg;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

static void tvm_exit(void *opaque)
{
	struct tvm *t = opaque;

	pthread_mutex_lock(&t->lock);
	t->exited = true;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

void tvm_dump_serial(const struct tvm *t)
{
	char line[256];
	FILE *f = fopen(t->serial, "r");

	while (f && fgets(line, sizeof(line), f))
		fprintf(stderr, "guest: %s", line);
	if (f)
		fclose(f);
}

static void tvm_tmpfile(char *path, size_t len, const char *what)
{
	int fd;

	snprintf(path, len, "/tmp/vmm-kvmtest-%s-XXXXXX", what);
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
}

void tvm_create(struct tvm *t, const char *append)
{
	struct vm_config cfg = {
		.kernel = getenv("GUEST_ELF"),
		.append = append,
		.mem_size = KVMTEST_MEM_SIZE,
		.nr_cpus = KVMTEST_NR_CPUS,
		.dirty_backend = DIRTY_BITMAP,
		.incoming = append == NULL,
	};
	char err[512];

	if (access("/dev/kvm", R_OK | W_OK))
		cr_skip_test("SKIP: /dev/kvm is absent on this machine");
	cr_assert(cfg.kernel, "GUEST_ELF must name the test guest image");
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	tvm_tmpfile(t->serial, sizeof(t->serial), "serial");
	tvm_tmpfile(t->hblog, sizeof(t->hblog), "hb");
	cfg.serial_path = t->serial;
	cfg.hb_log_path = t->hblog;
	cr_assert_eq(vcpu_signals_init(), 0);
	cr_assert_eq(vm_create(&t->vm, &cfg, err, sizeof(err)), 0, "%s", err);
	t->created = true;
	t->vm.on_event = tvm_event;
	t->vm.on_exit = tvm_exit;
	t->vm.cb_opaque = t;
}

void tvm_start(struct tvm *t)
{
	char err[256];

	cr_assert_eq(vm_start(&t->vm, err, sizeof(err)), 0, "%s", err);
}

void tvm_destroy(struct tvm *t)
{
	if (!t->created)
		return;
	vm_request_exit(&t->vm, 0, "test done");
	vm_join(&t->vm);
	vm_destroy(&t->vm);
	unlink(t->serial);
	unlink(t->hblog);
	t->created = false;
}

struct testdev_stats tvm_stats(struct tvm *t)
{
	struct testdev_stats st;

	testdev_get_stats(&t->vm.testdev, &st);
	return st;
}

void tvm_wait_heartbeats(struct tvm *t, uint64_t n)
{
	uint64_t deadline = clock_now_ns() + KVMTEST_WAIT_S * 1000000000ULL;
	struct testdev_stats st = tvm_stats(t);

	while (st.heartbeats < n && !t->exited && clock_now_ns() < deadline) {
		usleep(5000);
		st = tvm_stats(t);
	}
	if (st.heartbeats < n)
		tvm_dump_serial(t);
	cr_assert_geq(st.heartbeats, n, "heartbeats: saw %llu, want %llu%s",
		      (unsigned long long)st.heartbeats, (unsigned long long)n,
		      t->exited ? " (the VM exited)" : "");
}

void tvm_request(struct tvm *t, int req)
{
	int seq = vm_guest_request(&t->vm, req, 0);
	struct timespec dl;
	int r = 0;

	cr_assert_gt(seq, 0, "vm_guest_request(%d): %d", req, seq);
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += KVMTEST_WAIT_S;
	pthread_mutex_lock(&t->lock);
	while (t->done_seq < (uint32_t)seq && !t->exited && r == 0)
		r = pthread_cond_timedwait(&t->cond, &t->lock, &dl);
	pthread_mutex_unlock(&t->lock);
	if (t->done_seq < (uint32_t)seq)
		tvm_dump_serial(t);
	cr_assert_geq(t->done_seq, (uint32_t)seq, "request %d not done%s", req,
		      t->exited ? " (the VM exited)" : "");
}

void tvm_verify(struct tvm *t)
{
	tvm_request(t, GUEST_REQ_VERIFY);
	if (t->markers[MARK_VERIFY_OK] != 1)
		tvm_dump_serial(t);
	cr_assert_eq(t->markers[MARK_VERIFY_FAIL], 0, "guest verify failed");
	cr_assert_eq(t->markers[MARK_VERIFY_OK], 1, "no verify-ok marker");
}

uint32_t tvm_first_logged_seq(struct tvm *t)
{
	unsigned long long ns;
	unsigned int seq = 0;
	FILE *f;

	testdev_flush(&t->vm.testdev);
	f = fopen(t->hblog, "r");
	cr_assert(f, "heartbeat log %s", t->hblog);
	cr_assert_eq(fscanf(f, "%u %llu", &seq, &ns), 2,
		     "no heartbeat in the log");
	fclose(f);
	return seq;
}

void tvm_check_continues(struct tvm *t, const struct testdev_stats *before)
{
	struct testdev_stats st;

	tvm_wait_heartbeats(t, before->heartbeats + 100);
	st = tvm_stats(t);
	cr_assert_eq(tvm_first_logged_seq(t), before->last_seq + 1,
		     "first heartbeat after the migration");
	cr_assert_eq(st.seq_errors, 0, "%llu heartbeat sequence errors",
		     (unsigned long long)st.seq_errors);
	cr_assert_gt(st.last_seq, before->last_seq);
}
