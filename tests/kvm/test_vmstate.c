// SPDX-License-Identifier: MIT
/*
 * test_vmstate.c - vCPU, VM and device state save/restore (vmm/vmstate.h,
 * vmm/snapshot.h) on real KVM guests, in one process. The main test boots
 * VM A with the `dirty` workload on two vCPUs, lets it send a few hundred
 * heartbeats (each an MMIO exit, so a pause lands in the middle of MMIO
 * traffic), pauses it, saves every vCPU, the irqchip/PIT/clock and the
 * devices, creates an incoming VM B of the same shape, copies RAM, destroys A
 * and restores into B. B must go on exactly where A stopped: its first
 * heartbeat is A's last + 1, no sequence error, the guest's own check of
 * every dirty page passes, and the halted AP is still halted where it was.
 * The other tests chain several migrations; load a blob and save it again
 * (after giving every record state a new VM lacks, and a clock a day
 * ahead), which must give the same state back; feed corrupt blobs to every
 * loader (each must be refused with a clear reason, before any ioctl); and
 * round-trip the device blobs, and refuse incomplete snapshots, without KVM.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/clock.h"
#include "tests/kvm/kvmtest.h"
#include "vmm/snapshot.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"
#include "vmm/vmstate.h"

#define NR_CPUS	 KVMTEST_NR_CPUS
#define MAX_VMS	 4
#define MAX_DEVS 8 /* com1, testdev, fw_cfg, acpi_pm, pm_timer, rtc, and room  \
		    */

/*
 * Record tags the tests aim at: enum vcpu_rec (vcpu_state.c), vm_rec
 * (vm_arch_state.c), dev_rec (snapshot.c).
 */
#define TAG_HDR		  1
#define TAG_VCPU_REGS	  3
#define TAG_VCPU_CPUID	  9
#define TAG_VCPU_LAPIC	  7
#define TAG_VCPU_MSRS	  11
#define TAG_VM_PIC_MASTER 2
#define TAG_VM_IOAPIC	  4
#define TAG_VM_PIT2	  5
#define TAG_VM_CLOCK	  6
#define TAG_DEV_STATE	  2

/* A paused VM's state: one blob per vCPU, the VM blob, one per device. */
struct saved {
	uint8_t vcpu[NR_CPUS][VMSTATE_BLOB_MAX];
	size_t vcpu_len[NR_CPUS];
	uint8_t arch[VMSTATE_BLOB_MAX];
	size_t arch_len;
	int nr_devs;
	char dev_name[MAX_DEVS][DEV_NAME_MAX];
	uint32_t dev_version[MAX_DEVS];
	uint8_t dev[MAX_DEVS][VMSTATE_BLOB_MAX];
	size_t dev_len[MAX_DEVS];
	struct testdev_stats hb;
	struct kvm_regs regs[NR_CPUS];
	struct kvm_mp_state mp[NR_CPUS];
	uint64_t tsc[NR_CPUS]; /* guest TSC just after the save */
	uint64_t clock;	       /* kvmclock just after the save */
	uint64_t clock_at_ns;  /* clock_now_ns() when clock was read */
};

static struct tvm vms[MAX_VMS];
static struct saved sv;

/* ---- VMs --------------------------------------------------------------- */
static void teardown(void)
{
	for (int i = 0; i < MAX_VMS; i++)
		tvm_destroy(&vms[i]);
}

static void vcpu_get(struct vcpu *v, unsigned long ioc, void *arg)
{
	cr_assert_eq(ioctl(v->fd, ioc, arg), 0, "vcpu%d: ioctl 0x%lx: %s",
		     v->id, ioc, strerror(errno));
}

#define MSR_IA32_TSC 0x10

/* One MSR through KVM_GET_MSRS or KVM_SET_MSRS; returns what KVM did. */
static int msr_ioctl(int fd, unsigned long req, uint32_t index, uint64_t *val)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + sizeof(m->entries[0]));
	int r;

	cr_assert(m);
	m->nmsrs = 1;
	m->entries[0].index = index;
	m->entries[0].data = *val;
	r = ioctl(fd, req, m);
	*val = m->entries[0].data;
	free(m);
	return r;
}

static uint64_t fd_tsc(int fd)
{
	uint64_t tsc = 0;

	cr_assert_eq(msr_ioctl(fd, KVM_GET_MSRS, MSR_IA32_TSC, &tsc), 1,
		     "KVM_GET_MSRS: TSC");
	return tsc;
}

static void fd_set_tsc(int fd, uint64_t tsc)
{
	cr_assert_eq(msr_ioctl(fd, KVM_SET_MSRS, MSR_IA32_TSC, &tsc), 1,
		     "KVM_SET_MSRS: TSC");
}

static uint64_t vcpu_tsc(struct vcpu *v)
{
	return fd_tsc(v->fd);
}

/*
 * Does this KVM honour a write to MSR_IA32_TSC? kvm_pvm, the nested KVM
 * of our machines, accepts one and ignores it: its guests read the host's
 * TSC. Asked once, of a scratch VM: move a vCPU's TSC a day ahead.
 */
static bool tsc_writable(struct vm *like)
{
	static int writable = -1;
	int vm, cpu, khz;
	uint64_t before;

	if (writable >= 0)
		return writable;
	vm = ioctl(like->kvm.fd, KVM_CREATE_VM, 0);
	cr_assert_geq(vm, 0);
	cpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	cr_assert_geq(cpu, 0);
	khz = ioctl(cpu, KVM_GET_TSC_KHZ, 0);
	cr_assert_gt(khz, 0);
	before = fd_tsc(cpu);
	fd_set_tsc(cpu, before + (uint64_t)khz * 1000 * 86400);
	writable = fd_tsc(cpu) > before + (uint64_t)khz * 1000 * 43200;
	close(cpu);
	close(vm);
	if (!writable)
		cr_log_info("this KVM ignores writes to MSR_IA32_TSC: guests "
			    "read the host's TSC, so a restore here only "
			    "shows that it does not go backwards");
	return writable;
}

static uint64_t vm_clock(struct vm *vm)
{
	struct kvm_clock_data c = {0};

	cr_assert_eq(ioctl(vm->fd, KVM_GET_CLOCK, &c), 0);
	return c.clock;
}

/* ---- save, copy, load -------------------------------------------------- */

/* One section of a snapshot into the arrays of s. */
static void state_keep(struct saved *s, const struct vm_snap_section *sec)
{
	uint8_t *to;

	cr_assert_leq(sec->len, VMSTATE_BLOB_MAX, "%s", sec->name);
	switch (sec->kind) {
	case VM_SNAP_VCPU:
		cr_assert_lt(sec->id, NR_CPUS);
		to = s->vcpu[sec->id];
		s->vcpu_len[sec->id] = sec->len;
		break;
	case VM_SNAP_VM:
		to = s->arch;
		s->arch_len = sec->len;
		break;
	default:
		cr_assert_eq(sec->id, (uint32_t)s->nr_devs, "%s", sec->name);
		cr_assert_lt(s->nr_devs, MAX_DEVS);
		to = s->dev[s->nr_devs];
		s->dev_len[s->nr_devs] = sec->len;
		snprintf(s->dev_name[s->nr_devs], DEV_NAME_MAX, "%s",
			 sec->name);
		s->dev_version[s->nr_devs++] = sec->version;
		break;
	}
	memcpy(to, sec->data, sec->len);
}

static void state_save(struct tvm *t, struct saved *s)
{
	struct vm_snapshot snap;
	char err[256];

	s->hb = tvm_stats(t);
	for (int i = 0; i < NR_CPUS; i++) {
		struct vcpu *v = &t->vm.vcpus[i];

		vcpu_get(v, KVM_GET_REGS, &s->regs[i]);
		vcpu_get(v, KVM_GET_MP_STATE, &s->mp[i]);
	}
	vm_snapshot_init(&snap);
	cr_assert_eq(vm_snapshot_take(&t->vm, &snap, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(snap.nr, NR_CPUS + 1 + t->vm.devs.nr);
	s->nr_devs = 0;
	for (int i = 0; i < snap.nr; i++)
		state_keep(s, &snap.sec[i]);
	vm_snapshot_free(&snap);
	for (int i = 0; i < NR_CPUS; i++)
		s->tsc[i] = vcpu_tsc(&t->vm.vcpus[i]);
	s->clock = vm_clock(&t->vm);
	s->clock_at_ns = clock_now_ns();
}

/*
 * vms[0] runs the heartbeat guest for 50 beats, paused and saved into sv,
 * then destroyed; vms[1] is a new incoming VM to load it into.
 */
static void heartbeat_saved_then_incoming(void)
{
	tvm_create(&vms[0], "heartbeat");
	tvm_start(&vms[0]);
	tvm_wait_heartbeats(&vms[0], 50);
	cr_assert_eq(vm_pause(&vms[0].vm), 0);
	state_save(&vms[0], &sv);
	tvm_destroy(&vms[0]);
	tvm_create(&vms[1], NULL);
}

static void ram_copy(struct tvm *dst, struct tvm *src)
{
	const struct guest_mem *a = &src->vm.mem;
	struct guest_mem *b = &dst->vm.mem;

	cr_assert_eq(a->nr_regions, b->nr_regions);
	for (int i = 0; i < a->nr_regions; i++) {
		cr_assert_eq(a->regions[i].gpa, b->regions[i].gpa);
		cr_assert_eq(a->regions[i].size, b->regions[i].size);
		memcpy(b->regions[i].hva, a->regions[i].hva,
		       a->regions[i].size);
	}
}

static void snap_add(struct vm_snapshot *snap, enum vm_snap_kind kind,
		     uint32_t id, const char *name, uint32_t version,
		     const uint8_t *blob, size_t len)
{
	char err[256];

	cr_assert_eq(vm_snapshot_add(snap, kind, id, name, version, blob, len,
				     err, sizeof(err)),
		     0, "%s", err);
}

static void state_load(struct tvm *t, const struct saved *s)
{
	struct vm_snapshot snap;
	const struct dev *d;
	char err[256], name[16];

	vm_snapshot_init(&snap);
	for (int i = 0; i < s->nr_devs; i++) {
		d = vm_dev_at(&t->vm, i);
		cr_assert_not_null(d);
		cr_assert_str_eq(d->name, s->dev_name[i]);
		cr_assert_eq(d->ops->version, s->dev_version[i]);
		snap_add(&snap, VM_SNAP_DEVICE, i, d->name, d->ops->version,
			 s->dev[i], s->dev_len[i]);
	}
	cr_assert_null(vm_dev_at(&t->vm, s->nr_devs));
	snap_add(&snap, VM_SNAP_VM, 0, "vm", VMSTATE_VM_VERSION, s->arch,
		 s->arch_len);
	for (int i = 0; i < NR_CPUS; i++) {
		snprintf(name, sizeof(name), "vcpu%d", i);
		snap_add(&snap, VM_SNAP_VCPU, i, name, VMSTATE_VCPU_VERSION,
			 s->vcpu[i], s->vcpu_len[i]);
	}
	cr_assert_eq(vm_snapshot_apply(&t->vm, &snap, err, sizeof(err)), 0,
		     "%s", err);
	vm_snapshot_free(&snap);
}

static bool near(uint64_t a, uint64_t b, uint64_t tol)
{
	return a > b ? a - b <= tol : b - a <= tol;
}

/*
 * A restored VM's clocks go on from the saved values: the TSC within
 * 100 ms of what the source had just after its save (both were taken
 * while the source stood still; a new VM's would differ by the source's
 * whole run time), kvmclock within 100 ms of the saved value advanced by
 * the time since (docs/migration.md, "Clocks": advance by the downtime).
 */
static void check_clocks(struct tvm *t, const struct saved *s)
{
	uint64_t tol = t->vm.tsc_khz * 100, c = vm_clock(&t->vm);
	uint64_t expect = s->clock + (clock_now_ns() - s->clock_at_ns);

	for (int i = 0; i < NR_CPUS; i++) {
		uint64_t tsc = vcpu_tsc(&t->vm.vcpus[i]);

		if (!tsc_writable(&t->vm)) {
			cr_assert_geq(tsc, s->tsc[i], "vcpu%d: TSC went back",
				      i);
			continue;
		}
		cr_assert(near(tsc, s->tsc[i], tol),
			  "vcpu%d: TSC %llu, the source had %llu", i,
			  (unsigned long long)tsc,
			  (unsigned long long)s->tsc[i]);
	}
	cr_assert(near(c, expect, 100000000ULL),
		  "kvmclock %llu ns, the source had %llu, advanced: %llu",
		  (unsigned long long)c, (unsigned long long)s->clock,
		  (unsigned long long)expect);
}

/*
 * Pause src, save it, restore it into a new incoming dst, destroy src and
 * start dst: the heartbeat statistics arrive unchanged.
 */
static void migrate(struct tvm *src, struct tvm *dst)
{
	struct testdev_stats st;

	/* As a migration pauses: the vCPUs take their state as they park. */
	cr_assert_eq(vm_pause_saving(&src->vm), 0, "pausing the source");
	state_save(src, &sv);
	tvm_create(dst, NULL);
	ram_copy(dst, src);
	tvm_destroy(src);
	state_load(dst, &sv);
	st = tvm_stats(dst);
	cr_assert_eq(st.heartbeats, sv.hb.heartbeats);
	cr_assert_eq(st.last_seq, sv.hb.last_seq);
	cr_assert_eq(st.seq_errors, 0);
	check_clocks(dst, &sv);
	tvm_start(dst);
}

/* CPU 0 runs (MMIO exits); the AP is in the run state and at the RIP it had. */
static void check_vcpus(struct tvm *t, const struct saved *s)
{
	struct kvm_mp_state mp;
	struct kvm_regs regs;

	cr_assert_eq(vm_pause(&t->vm), 0);
	for (int i = 0; i < NR_CPUS; i++) {
		cr_assert(t->vm.vcpus[i].thread_started);
		vcpu_get(&t->vm.vcpus[i], KVM_GET_MP_STATE, &mp);
		vcpu_get(&t->vm.vcpus[i], KVM_GET_REGS, &regs);
		cr_log_info("vcpu%d: mp_state %u (saved %u), rip 0x%llx "
			    "(saved 0x%llx), %llu MMIO exits",
			    i, mp.mp_state, s->mp[i].mp_state,
			    (unsigned long long)regs.rip,
			    (unsigned long long)s->regs[i].rip,
			    (unsigned long long)t->vm.vcpus[i].st.mmio);
		if (i == 0)
			continue;
		cr_assert_eq(mp.mp_state, s->mp[i].mp_state);
		cr_assert_eq(regs.rip, s->regs[i].rip, "vcpu%d moved", i);
	}
	cr_assert_gt(t->vm.vcpus[0].st.mmio, 0);
	cr_assert_eq(vm_resume(&t->vm), 0);
}

TestSuite(vmstate, .fini = teardown, .timeout = 60);

Test(vmstate, migrate_dirty_guest_in_mmio_traffic)
{
	struct testdev_stats before;

	tvm_create(&vms[0], "dirty --mib 8 --rate 50");
	tvm_start(&vms[0]);
	tvm_wait_heartbeats(&vms[0], 300);
	migrate(&vms[0], &vms[1]);
	before = sv.hb;
	cr_log_info("saved at heartbeat %u: vcpu blobs %zu/%zu bytes, vm %zu",
		    before.last_seq, sv.vcpu_len[0], sv.vcpu_len[1],
		    sv.arch_len);
	tvm_check_continues(&vms[1], &before);
	tvm_verify(&vms[1]);
	check_vcpus(&vms[1], &sv);
}

Test(vmstate, migrate_three_times_in_a_row)
{
	struct testdev_stats first;

	tvm_create(&vms[0], "dirty --mib 8 --rate 50");
	tvm_start(&vms[0]);
	tvm_wait_heartbeats(&vms[0], 200);
	for (int i = 1; i < MAX_VMS; i++) {
		migrate(&vms[i - 1], &vms[i]);
		if (i == 1)
			first = sv.hb;
		tvm_check_continues(&vms[i], &sv.hb);
	}
	/* Each hop waited for at least 100 more on its new VM. */
	cr_assert_geq(tvm_stats(&vms[MAX_VMS - 1]).heartbeats,
		      first.heartbeats + 300);
	tvm_verify(&vms[MAX_VMS - 1]);
}

/* ---- corrupt blobs ------------------------------------------------------- */

enum edit_op { ED_DROP, ED_DUP, ED_SHRINK, ED_BUMP };

static uint8_t edited[VMSTATE_BLOB_MAX];

/* Re-encode blob with one edit of its record `tag`; returns the length. */
static size_t blob_edit(const uint8_t *blob, size_t len, uint32_t tag,
			enum edit_op op)
{
	static uint8_t rec[VMSTATE_BLOB_MAX];
	struct proto_rec_reader rd;
	struct proto_rec_writer w;
	const uint8_t *d;
	uint32_t t, n, u;

	proto_rec_reader_init(&rd, blob, len);
	proto_rec_writer_init(&w, edited, sizeof(edited));
	while (proto_rec_next(&rd, &t, &d, &n) > 0) {
		memcpy(rec, d, n);
		if (t == tag && op == ED_DROP)
			continue;
		if (t == tag && op == ED_DUP)
			proto_rec_put(&w, t, rec, n);
		if (t == tag && op == ED_SHRINK)
			n -= 8;
		if (t == tag && op == ED_BUMP) {
			memcpy(&u, rec, 4);
			u++;
			memcpy(rec, &u, 4);
		}
		proto_rec_put(&w, t, rec, n);
	}
	cr_assert(!w.overflow);
	return w.len;
}

/* Append a record with an unknown tag. */
static size_t blob_add_unknown(const uint8_t *blob, size_t len)
{
	struct proto_rec_writer w;
	uint64_t junk = 0x1234;

	memcpy(edited, blob, len);
	proto_rec_writer_init(&w, edited, sizeof(edited));
	w.len = len;
	proto_rec_put(&w, 99, &junk, sizeof(junk));
	return w.len;
}

static void expect_vcpu_refused(struct vcpu *v, const uint8_t *blob, size_t len,
				const char *why)
{
	char err[256] = "";

	cr_assert_lt(vcpu_state_load(v, blob, len, err, sizeof(err)), 0,
		     "a blob with %s was accepted", why);
	cr_log_info("refused: %s", err);
	cr_assert(strstr(err, why), "error '%s' does not say '%s'", err, why);
	cr_assert(strstr(err, "vcpu0"), "error '%s' names no vCPU", err);
}

static void expect_vm_refused(struct vm *vm, const uint8_t *blob, size_t len,
			      const char *why)
{
	char err[256] = "";

	cr_assert_lt(vm_arch_state_load(vm, blob, len, err, sizeof(err)), 0,
		     "a VM blob with %s was accepted", why);
	cr_log_info("refused: %s", err);
	cr_assert(strstr(err, why), "error '%s' does not say '%s'", err, why);
}

Test(vmstate, corrupt_blobs_are_refused_before_any_change)
{
	struct kvm_regs before, after;
	struct kvm_sregs sbefore, safter;
	struct vcpu *v;
	const uint8_t *b;
	size_t n;
	char err[256];

	heartbeat_saved_then_incoming();
	v = &vms[1].vm.vcpus[0];
	vcpu_get(v, KVM_GET_REGS, &before);
	vcpu_get(v, KVM_GET_SREGS, &sbefore);
	b = sv.vcpu[0];
	n = sv.vcpu_len[0];

	expect_vcpu_refused(v, b, n - 5, "truncated");
	expect_vcpu_refused(v, b, 0, "no HDR record");
	expect_vcpu_refused(v, edited,
			    blob_edit(b, n, TAG_VCPU_REGS, ED_SHRINK),
			    "REGS record of 136 bytes");
	expect_vcpu_refused(v, edited, blob_edit(b, n, TAG_VCPU_REGS, ED_DUP),
			    "duplicate REGS");
	expect_vcpu_refused(v, edited, blob_edit(b, n, TAG_VCPU_REGS, ED_DROP),
			    "no REGS record");
	expect_vcpu_refused(v, edited, blob_add_unknown(b, n),
			    "unknown record tag 99");
	expect_vcpu_refused(v, edited, blob_edit(b, n, TAG_HDR, ED_BUMP),
			    "version 2");
	expect_vcpu_refused(v, edited, blob_edit(b, n, TAG_VCPU_CPUID, ED_BUMP),
			    "CPUID record");
	expect_vcpu_refused(v, edited, blob_edit(b, n, TAG_VCPU_MSRS, ED_BUMP),
			    "MSRS record");
	expect_vcpu_refused(v, sv.vcpu[1], sv.vcpu_len[1], "id 1");

	/* Nothing was touched: the registers are what a new vCPU has. */
	vcpu_get(v, KVM_GET_REGS, &after);
	vcpu_get(v, KVM_GET_SREGS, &safter);
	cr_assert_eq(memcmp(&before, &after, sizeof(after)), 0);
	cr_assert_eq(memcmp(&sbefore, &safter, sizeof(safter)), 0);

	expect_vm_refused(&vms[1].vm, sv.arch, sv.arch_len - 8, "truncated");
	expect_vm_refused(
		&vms[1].vm, edited,
		blob_edit(sv.arch, sv.arch_len, TAG_VM_IOAPIC, ED_BUMP),
		"IOAPIC record holds chip id 3");
	expect_vm_refused(
		&vms[1].vm, edited,
		blob_edit(sv.arch, sv.arch_len, TAG_VM_IOAPIC, ED_DROP),
		"no IOAPIC record");

	/* The intact blobs still load, and the registers are A's. */
	cr_assert_eq(vm_arch_state_load(&vms[1].vm, sv.arch, sv.arch_len, err,
					sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(vcpu_state_load(v, b, n, err, sizeof(err)), 0, "%s", err);
	vcpu_get(v, KVM_GET_REGS, &after);
	cr_assert_eq(memcmp(&sv.regs[0], &after, sizeof(after)), 0);
}

/* ---- load, then save again ------------------------------------------ */

static uint8_t vcpu_copy[VMSTATE_BLOB_MAX], arch_copy[VMSTATE_BLOB_MAX];
static uint8_t resaved[VMSTATE_BLOB_MAX];

/* The bytes of record tag inside blob (a writable copy). */
static uint8_t *blob_record(uint8_t *blob, size_t len, uint32_t tag,
			    uint32_t *rlen)
{
	struct proto_rec_reader rd;
	const uint8_t *d;
	uint32_t t, n;

	proto_rec_reader_init(&rd, blob, len);
	while (proto_rec_next(&rd, &t, &d, &n) > 0) {
		if (t == tag) {
			*rlen = n;
			return blob + (d - blob);
		}
	}
	cr_assert_fail("no record %u", tag);
	return NULL;
}

/* Add delta to the u64 at off in record tag, or to MSR index's value. */
static void blob_add(uint8_t *blob, size_t len, uint32_t tag, uint32_t msr,
		     size_t off, uint64_t delta)
{
	uint32_t n, nmsrs, index;
	uint8_t *r = blob_record(blob, len, tag, &n);
	uint64_t v;

	if (tag == TAG_VCPU_MSRS) {
		memcpy(&nmsrs, r, 4);
		for (off = 0; off < nmsrs; off++) {
			memcpy(&index, r + 8 + off * 16, 4);
			if (index == msr)
				break;
		}
		cr_assert_lt(off, nmsrs, "MSR 0x%x not saved", msr);
		off = 8 + off * 16 + 8;
	}
	memcpy(&v, r + off, 8);
	v += delta;
	memcpy(r + off, &v, 8);
}

/* The value of MSR index in a MSRS record. */
static uint64_t msr_value(const uint8_t *r, uint32_t n, uint32_t index)
{
	uint32_t idx;
	uint64_t v;

	for (uint32_t off = 8; off + 16 <= n; off += 16) {
		memcpy(&idx, r + off, 4);
		memcpy(&v, r + off + 8, 8);
		if (idx == index)
			return v;
	}
	cr_assert_fail("MSR 0x%x not saved", index);
	return 0;
}

/* Same MSRs, same values; the TSC within tsc_tol. */
static void compare_msrs(const uint8_t *a, const uint8_t *b, uint32_t len,
			 uint64_t tsc_tol)
{
	uint32_t index;

	cr_assert(near(msr_value(b, len, MSR_IA32_TSC),
		       msr_value(a, len, MSR_IA32_TSC), tsc_tol));
	for (uint32_t off = 8; off < len; off += 16) {
		memcpy(&index, a + off, 4);
		if (index == MSR_IA32_TSC)
			continue;
		cr_assert_eq(memcmp(a + off, b + off, 16), 0,
			     "MSR 0x%x differs", index);
	}
}

/* Record by record, b holds what a held; timers and the TSC moved on. */
static void compare_vcpu_blobs(const uint8_t *a, size_t alen, const uint8_t *b,
			       size_t blen, uint64_t tsc_tol)
{
	struct proto_rec_reader ra, rb;
	const uint8_t *da, *db;
	uint32_t ta, tb, na, nb;

	proto_rec_reader_init(&ra, a, alen);
	proto_rec_reader_init(&rb, b, blen);
	while (proto_rec_next(&ra, &ta, &da, &na) > 0) {
		cr_assert_eq(proto_rec_next(&rb, &tb, &db, &nb), 1);
		cr_assert_eq(ta, tb);
		cr_assert_eq(na, nb, "record %u: %u bytes, was %u", ta, nb, na);
		if (ta == TAG_VCPU_MSRS) {
			compare_msrs(da, db, na, tsc_tol);
			continue;
		}
		if (ta == TAG_VCPU_LAPIC) { /* the timer's current count */
			cr_assert_eq(memcmp(da, db, 0x390), 0);
			cr_assert_eq(memcmp(da + 0x3a0, db + 0x3a0, na - 0x3a0),
				     0);
			continue;
		}
		cr_assert_eq(memcmp(da, db, na), 0, "record %u differs", ta);
	}
	cr_assert_eq(proto_rec_next(&rb, &tb, &db, &nb), 0);
}

static void ioc(int fd, unsigned long req, void *arg, const char *name)
{
	cr_assert_geq(ioctl(fd, req, arg), 0, "%s: %s", name, strerror(errno));
}

static void vcpu_set_msr(struct vcpu *v, uint32_t index, uint64_t val)
{
	cr_assert_eq(msr_ioctl(v->fd, KVM_SET_MSRS, index, &val), 1, "MSR 0x%x",
		     index);
}

/*
 * Give a paused VM state a new VM does not have in every record that the
 * guest leaves alone (it never programs its LAPIC, PIC, IOAPIC or PIT), so
 * that a record the loader skipped shows. It never runs again.
 */
static void state_make_unusual(struct vm *vm)
{
	struct kvm_irqchip chip = {.chip_id = KVM_IRQCHIP_PIC_MASTER};
	struct kvm_irqchip io = {.chip_id = KVM_IRQCHIP_IOAPIC};
	struct kvm_pit_state2 pit;

	for (int i = 0; i < NR_CPUS; i++) {
		struct vcpu *v = &vm->vcpus[i];
		struct kvm_lapic_state lapic;
		struct kvm_debugregs dr;
		struct kvm_xcrs xcrs;

		ioc(v->fd, KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC");
		lapic.regs[0x80] = 0x20 + i; /* TPR */
		ioc(v->fd, KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC");
		ioc(v->fd, KVM_GET_DEBUGREGS, &dr, "KVM_GET_DEBUGREGS");
		dr.db[0] = 0x1000 + i; /* an address only: DR7 stays off */
		ioc(v->fd, KVM_SET_DEBUGREGS, &dr, "KVM_SET_DEBUGREGS");
		ioc(v->fd, KVM_GET_XCRS, &xcrs, "KVM_GET_XCRS");
		cr_assert_eq(xcrs.nr_xcrs, 1);
		xcrs.xcrs[0].value = 0x3; /* x87 | SSE */
		ioc(v->fd, KVM_SET_XCRS, &xcrs, "KVM_SET_XCRS");
		vcpu_set_msr(v, 0x174, 0x10 + i);	    /* SYSENTER_CS */
		vcpu_set_msr(v, 0xc0000102, 0xdead000 + i); /* KERNEL_GS_BASE */
	}
	ioc(vm->fd, KVM_GET_IRQCHIP, &chip, "KVM_GET_IRQCHIP");
	chip.chip.pic.imr = 0xfa;
	ioc(vm->fd, KVM_SET_IRQCHIP, &chip, "KVM_SET_IRQCHIP");
	ioc(vm->fd, KVM_GET_IRQCHIP, &io, "KVM_GET_IRQCHIP");
	io.chip.ioapic.redirtbl[4].fields.vector = 0x24;
	io.chip.ioapic.redirtbl[4].fields.mask = 1;
	ioc(vm->fd, KVM_SET_IRQCHIP, &io, "KVM_SET_IRQCHIP");
	ioc(vm->fd, KVM_GET_PIT2, &pit, "KVM_GET_PIT2");
	pit.channels[2].count = 0x1234;
	pit.channels[2].mode = 3;
	ioc(vm->fd, KVM_SET_PIT2, &pit, "KVM_SET_PIT2");
}

Test(vmstate, load_then_save_gives_the_state_back)
{
	uint64_t day_ns = 86400ULL * 1000000000ULL, day_tsc, tol;
	bool tsc_moves;
	struct proto_rec_writer w;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data c;
	uint32_t n;
	char err[256];

	tvm_create(&vms[0], "dirty --mib 8 --rate 50");
	tvm_start(&vms[0]);
	tvm_wait_heartbeats(&vms[0], 100);
	cr_assert_eq(vm_pause(&vms[0].vm), 0);
	state_make_unusual(&vms[0].vm);
	state_save(&vms[0], &sv);
	tvm_destroy(&vms[0]);
	tvm_create(&vms[1], NULL);
	tsc_moves = tsc_writable(&vms[1].vm);
	day_tsc = tsc_moves ? vms[1].vm.tsc_khz * 1000 * 86400 : 0;
	/* 100 ms; the host's TSC ran on since the save when it is not */
	tol = vms[1].vm.tsc_khz * (tsc_moves ? 100 : 10000);

	/* A guest a day older: only a loader that applies them shows it. */
	memcpy(arch_copy, sv.arch, sv.arch_len);
	blob_add(arch_copy, sv.arch_len, TAG_VM_CLOCK, 0, 0, day_ns);
	cr_assert_eq(vm_arch_state_load(&vms[1].vm, arch_copy, sv.arch_len, err,
					sizeof(err)),
		     0, "%s", err);
	cr_assert(near(vm_clock(&vms[1].vm), sv.clock + day_ns, 100000000ULL));
	for (int i = 0; i < NR_CPUS; i++) {
		struct vcpu *v = &vms[1].vm.vcpus[i];
		const struct kvm_cpuid2 *cpuid = v->cpuid;

		memcpy(vcpu_copy, sv.vcpu[i], sv.vcpu_len[i]);
		blob_add(vcpu_copy, sv.vcpu_len[i], TAG_VCPU_MSRS, MSR_IA32_TSC,
			 0, day_tsc);
		cr_assert_eq(vcpu_state_load(v, vcpu_copy, sv.vcpu_len[i], err,
					     sizeof(err)),
			     0, "%s", err);
		/* The same configuration's table: not loaded again. */
		cr_assert(cpuid && v->cpuid == cpuid,
			  "vcpu%d: CPUID loaded though the same", i);
		cr_assert(near(vcpu_tsc(v), sv.tsc[i] + day_tsc, tol));
		cr_assert_geq(vcpu_tsc(v), sv.tsc[i] + day_tsc);
		proto_rec_writer_init(&w, resaved, sizeof(resaved));
		cr_assert_eq(vcpu_state_save(v, &w, err, sizeof(err)), 0, "%s",
			     err);
		compare_vcpu_blobs(vcpu_copy, sv.vcpu_len[i], resaved, w.len,
				   tol);
	}
	/* The irqchips come back as saved; the PIT's channels run on. */
	proto_rec_writer_init(&w, resaved, sizeof(resaved));
	cr_assert_eq(vm_arch_state_save(&vms[1].vm, &w, err, sizeof(err)), 0);
	cr_assert_eq(w.len, sv.arch_len);
	for (uint32_t tag = TAG_VM_PIC_MASTER; tag <= TAG_VM_IOAPIC; tag++) {
		const uint8_t *now = blob_record(resaved, w.len, tag, &n);
		const uint8_t *was = blob_record(sv.arch, sv.arch_len, tag, &n);

		cr_assert_eq(memcmp(now, was, n), 0,
			     "irqchip record %u differs", tag);
	}
	memcpy(&pit, blob_record(resaved, w.len, TAG_VM_PIT2, &n), sizeof(pit));
	cr_assert_eq(pit.channels[2].count, 0x1234);
	cr_assert_eq(pit.channels[2].mode, 3);
	memcpy(&c, blob_record(resaved, w.len, TAG_VM_CLOCK, &n), sizeof(c));
	cr_assert(near(c.clock, sv.clock + day_ns, 100000000ULL));
}

/*
 * vm_pause_saving: each vCPU's thread took its state as it parked, and it
 * is what the loop thread reads itself (but for the TSC and the LAPIC
 * timer's count, which ran on); a plain pause after a resume takes none,
 * so an older one is never used.
 */
Test(vmstate, vcpus_take_their_state_as_they_park)
{
	struct proto_rec_writer w;
	const uint8_t *blob;
	uint64_t tol;
	size_t len;
	char err[256];

	tvm_create(&vms[0], "dirty --mib 8 --rate 50");
	tvm_start(&vms[0]);
	tvm_wait_heartbeats(&vms[0], 50);
	tol = vms[0].vm.tsc_khz * 10000ULL; /* 10 s of the TSC */
	cr_assert_eq(vm_pause_saving(&vms[0].vm), 0);
	for (int i = 0; i < NR_CPUS; i++) {
		struct vcpu *v = &vms[0].vm.vcpus[i];

		cr_assert_eq(vcpu_presaved(v, &blob, &len, err, sizeof(err)), 0,
			     "vcpu%d took no state as it parked: %s", i, err);
		proto_rec_writer_init(&w, resaved, sizeof(resaved));
		cr_assert_eq(vcpu_state_save(v, &w, err, sizeof(err)), 0, "%s",
			     err);
		compare_vcpu_blobs(blob, len, resaved, w.len, tol);
	}
	cr_assert_eq(vm_resume(&vms[0].vm), 0);
	tvm_wait_heartbeats(&vms[0], 60);
	cr_assert_eq(vm_pause(&vms[0].vm), 0);
	for (int i = 0; i < NR_CPUS; i++)
		cr_assert_eq(vcpu_presaved(&vms[0].vm.vcpus[i], &blob, &len,
					   err, sizeof(err)),
			     -ENOENT, "vcpu%d: a state from an earlier pause",
			     i);
	cr_assert_eq(vm_resume(&vms[0].vm), 0);
}

/* Leaf 1 of a CPUID record (struct kvm_cpuid2), or NULL. */
static struct kvm_cpuid_entry2 *cpuid_leaf1(uint8_t *rec)
{
	struct kvm_cpuid2 *c = (struct kvm_cpuid2 *)rec;

	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == 1)
			return &c->entries[i];
	return NULL;
}

/*
 * A source table that differs beyond the bits KVM rewrites at run time (no
 * hypervisor bit) is loaded, and saved back as loaded: the skip of an
 * equal table never hides a difference.
 */
Test(vmstate, a_different_cpuid_is_loaded)
{
	struct proto_rec_writer w;
	struct kvm_cpuid_entry2 *e;
	struct vcpu *v;
	char err[256];
	uint32_t n;

	heartbeat_saved_then_incoming();
	v = &vms[1].vm.vcpus[0];
	memcpy(vcpu_copy, sv.vcpu[0], sv.vcpu_len[0]);
	e = cpuid_leaf1(
		blob_record(vcpu_copy, sv.vcpu_len[0], TAG_VCPU_CPUID, &n));
	cr_assert(e && (e->ecx & (1U << 31)),
		  "leaf 1 without the hypervisor bit");
	e->ecx &= ~(1U << 31);
	cr_assert_eq(
		vcpu_state_load(v, vcpu_copy, sv.vcpu_len[0], err, sizeof(err)),
		0, "%s", err);
	proto_rec_writer_init(&w, resaved, sizeof(resaved));
	cr_assert_eq(vcpu_state_save(v, &w, err, sizeof(err)), 0, "%s", err);
	e = cpuid_leaf1(blob_record(resaved, w.len, TAG_VCPU_CPUID, &n));
	cr_assert(e && !(e->ecx & (1U << 31)),
		  "the hypervisor bit came back: the table was not loaded");
	tvm_destroy(&vms[1]);
}

/* ---- devices, without KVM ----------------------------------------------- */

static int irq_levels[16], nr_irq_levels;

static void fake_irq_line(void *opaque, unsigned int gsi, int level)
{
	if (gsi == SERIAL_COM1_IRQ && nr_irq_levels < 16)
		irq_levels[nr_irq_levels++] = level;
}

static const struct dev_host fake_host = {.irq_line = fake_irq_line};

/* Two machines' worth of devices: only com1 and testdev are used. */
static struct vm dvm[2];

static void devs_init(void)
{
	char err[128];

	memset(dvm, 0, sizeof(dvm));
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(serial_init(&dvm[i].com1, i ? &fake_host : NULL,
					 NULL, SERIAL_COM1_IRQ),
			     0);
		cr_assert_eq(testdev_init(&dvm[i].testdev, NULL, NULL, NULL,
					  err, sizeof(err)),
			     0, "%s", err);
		cr_assert_eq(vm_devs_register(&dvm[i], err, sizeof(err)), 0,
			     "%s", err);
	}
	nr_irq_levels = 0;
}

static void devs_fini(void)
{
	for (int i = 0; i < 2; i++) {
		serial_destroy(&dvm[i].com1);
		testdev_destroy(&dvm[i].testdev);
	}
}

static void uart_out(struct serial *s, unsigned int reg, uint8_t val)
{
	serial_ops.write(s, reg, &val, 1);
}

static uint8_t uart_in(struct serial *s, unsigned int reg)
{
	uint8_t val;

	serial_ops.read(s, reg, &val, 1);
	return val;
}

static void heartbeat(struct testdev *t, uint32_t seq)
{
	testdev_ops.write(t, TESTDEV_REG_HEARTBEAT, &seq, sizeof(seq));
}

/* Busy registers, waiting input, heartbeats 1-5 and a marker on dvm[0]. */
static void devs_dirty(void)
{
	struct serial *s = &dvm[0].com1;
	uint64_t mark = (uint64_t)MARK_RESULT << 32 | 77;

	uart_out(s, 3, 0x83); /* LCR: DLAB */
	uart_out(s, 0, 0x01); /* DLL: 115200 baud */
	uart_out(s, 3, 0x03); /* LCR: 8n1 */
	uart_out(s, 2, 0x07); /* FCR: FIFOs on, both cleared */
	uart_out(s, 4, 0x0b); /* MCR: DTR RTS OUT2 */
	uart_out(s, 7, 0x5a); /* SCR */
	uart_out(s, 1, 0x01); /* IER: received data */
	cr_assert_eq(serial_push_input(s, "hello", 5), 5);
	for (uint32_t seq = 1; seq <= 5; seq++)
		heartbeat(&dvm[0].testdev, seq);
	testdev_ops.write(&dvm[0].testdev, TESTDEV_REG_MARKER, &mark,
			  sizeof(mark));
}

/* The VM has exactly two devices. */
static void two_devices(const struct vm *vm)
{
	cr_assert_not_null(vm_dev_at(vm, 0));
	cr_assert_not_null(vm_dev_at(vm, 1));
	cr_assert_null(vm_dev_at(vm, 2));
}

static size_t dev_blob(int i, uint8_t *buf)
{
	struct proto_rec_writer w;
	char err[256];

	two_devices(&dvm[0]);
	proto_rec_writer_init(&w, buf, VMSTATE_BLOB_MAX);
	cr_assert_eq(
		vm_dev_state_save(vm_dev_at(&dvm[0], i), &w, err, sizeof(err)),
		0, "%s", err);
	return w.len;
}

static int dev_load(int i, const uint8_t *blob, size_t len, char *err,
		    size_t errlen)
{
	two_devices(&dvm[1]);
	return vm_dev_state_load(vm_dev_at(&dvm[1], i), blob, len, err, errlen);
}

Test(vmstate, devices_round_trip, .init = devs_init, .fini = devs_fini)
{
	struct serial_state a, b;
	struct testdev_stats ta, tb;
	char err[256], got[6] = "";
	size_t n;

	two_devices(&dvm[0]);
	cr_assert_str_eq(vm_dev_at(&dvm[0], 0)->name, "serial-com1");
	cr_assert_str_eq(vm_dev_at(&dvm[0], 1)->name, "testdev");
	cr_assert_null(vm_dev_at(&dvm[0], -1));
	devs_dirty();
	for (int i = 0; i < 2; i++) {
		n = dev_blob(i, sv.dev[i]);
		cr_assert_eq(dev_load(i, sv.dev[i], n, err, sizeof(err)), 0,
			     "%s", err);
	}
	/* The UART: same registers, the input still waiting, IRQ raised. */
	serial_save(&dvm[0].com1, &a);
	serial_save(&dvm[1].com1, &b);
	cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0);
	cr_assert_eq(nr_irq_levels, 1);
	cr_assert_eq(irq_levels[0], 1, "received data waits: IRQ 4 high");
	for (int i = 0; i < 5; i++)
		got[i] = (char)uart_in(&dvm[1].com1, 0);
	cr_assert_str_eq(got, "hello");
	cr_assert_eq(irq_levels[nr_irq_levels - 1], 0, "FIFO drained");
	cr_assert_eq(uart_in(&dvm[1].com1, 7), 0x5a);
	/* The test device: statistics continue, the sequence check too. */
	testdev_get_stats(&dvm[0].testdev, &ta);
	testdev_get_stats(&dvm[1].testdev, &tb);
	cr_assert_eq(tb.heartbeats, 5);
	cr_assert_eq(tb.last_seq, 5);
	cr_assert_eq(memcmp(ta.markers, tb.markers, sizeof(ta.markers)), 0);
	cr_assert_eq(tb.marker_arg[MARK_RESULT], 77);
	heartbeat(&dvm[1].testdev, 6);
	testdev_get_stats(&dvm[1].testdev, &tb);
	cr_assert_eq(tb.seq_errors, 0);
	heartbeat(&dvm[1].testdev, 8);
	testdev_get_stats(&dvm[1].testdev, &tb);
	cr_assert_eq(tb.seq_errors, 1);
}

static void expect_dev_refused(int i, const uint8_t *blob, size_t len,
			       const char *why)
{
	char err[256] = "";

	cr_assert_lt(dev_load(i, blob, len, err, sizeof(err)), 0,
		     "a device blob with %s was accepted", why);
	cr_log_info("refused: %s", err);
	cr_assert(strstr(err, why), "error '%s' does not say '%s'", err, why);
}

Test(vmstate, corrupt_device_blobs_are_refused, .init = devs_init,
     .fini = devs_fini)
{
	struct proto_rec_writer w;
	struct serial_state st;
	struct testdev_state ts;
	struct testdev_stats ts2;
	uint8_t *b = sv.dev[0];
	size_t n;

	devs_dirty();
	n = dev_blob(0, b);
	expect_dev_refused(0, b, n - 1, "serial-com1 state: truncated");
	expect_dev_refused(0, edited, blob_edit(b, n, TAG_HDR, ED_BUMP),
			   "this VMM reads 2");
	expect_dev_refused(0, edited, blob_edit(b, n, TAG_DEV_STATE, ED_SHRINK),
			   "STATE record of");
	expect_dev_refused(0, edited, blob_edit(b, n, TAG_DEV_STATE, ED_DROP),
			   "no STATE record");
	expect_dev_refused(0, edited, blob_add_unknown(b, n), "unknown");
	/* Well-formed blobs with impossible contents. */
	serial_save(&dvm[0].com1, &st);
	st.rx_len = SERIAL_FIFO_SIZE + 1;
	proto_rec_writer_init(&w, b, VMSTATE_BLOB_MAX);
	proto_rec_put(&w, TAG_HDR, (uint32_t[2]){SERIAL_STATE_VERSION, 0}, 8);
	proto_rec_put(&w, TAG_DEV_STATE, &st, sizeof(st));
	expect_dev_refused(0, b, w.len, "rx_len");
	/* Each version at its own size only. */
	st.rx_len = 0;
	proto_rec_writer_init(&w, b, VMSTATE_BLOB_MAX);
	proto_rec_put(&w, TAG_HDR, (uint32_t[2]){SERIAL_STATE_VERSION_V1, 0},
		      8);
	proto_rec_put(&w, TAG_DEV_STATE, &st, sizeof(st));
	expect_dev_refused(0, b, w.len, "version 1: 77 state bytes");
	proto_rec_writer_init(&w, b, VMSTATE_BLOB_MAX);
	proto_rec_put(&w, TAG_HDR, (uint32_t[2]){SERIAL_STATE_VERSION, 0}, 8);
	proto_rec_put(&w, TAG_DEV_STATE, &st, sizeof(struct serial_state_v1));
	expect_dev_refused(0, b, w.len, "version 2: 76 state bytes");
	testdev_save(&dvm[0].testdev, &ts);
	ts.pad = 1;
	proto_rec_writer_init(&w, b, VMSTATE_BLOB_MAX);
	proto_rec_put(&w, TAG_HDR, (uint32_t[2]){TESTDEV_STATE_VERSION, 0}, 8);
	proto_rec_put(&w, TAG_DEV_STATE, &ts, sizeof(ts));
	expect_dev_refused(1, b, w.len, "testdev state: inconsistent");
	/* The destination's devices are as they were. */
	serial_save(&dvm[1].com1, &st);
	cr_assert_eq(st.rx_len, 0);
	testdev_get_stats(&dvm[1].testdev, &ts2);
	cr_assert_eq(ts2.heartbeats, 0);
	cr_assert_eq(nr_irq_levels, 0);
}

/* A version 1 UART blob (from a VMM before lsr_err) still loads. */
Test(vmstate, serial_v1_blob_loads, .init = devs_init, .fini = devs_fini)
{
	struct proto_rec_writer w;
	struct serial_state st;
	uint8_t *b = sv.dev[0];
	char err[256] = "";

	devs_dirty();
	serial_save(&dvm[0].com1, &st);
	proto_rec_writer_init(&w, b, VMSTATE_BLOB_MAX);
	proto_rec_put(&w, TAG_HDR, (uint32_t[2]){SERIAL_STATE_VERSION_V1, 0},
		      8);
	proto_rec_put(&w, TAG_DEV_STATE, &st, sizeof(struct serial_state_v1));
	cr_assert_eq(dev_load(0, b, w.len, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(uart_in(&dvm[1].com1, 0), 'h', "the FIFO came along");
	cr_assert_eq(uart_in(&dvm[1].com1, 7), 0x5a);
	cr_assert_eq(uart_in(&dvm[1].com1, 5) & 0x02, 0, "no overrun");
}

/*
 * A snapshot must hold every device of the VM and nothing else: both are
 * refused before any device is loaded.
 */
Test(vmstate, incomplete_snapshots_are_refused, .init = devs_init,
     .fini = devs_fini)
{
	struct vm_snapshot snap;
	struct serial_state st;
	char err[256] = "";
	size_t n;

	devs_dirty();
	n = dev_blob(0, sv.dev[0]);
	vm_snapshot_init(&snap);
	snap_add(&snap, VM_SNAP_DEVICE, 0, "serial-com1", SERIAL_STATE_VERSION,
		 sv.dev[0], n);
	cr_assert_eq(vm_snapshot_apply(&dvm[1], &snap, err, sizeof(err)),
		     -EPROTO);
	cr_assert(strstr(err, "no state for device testdev"), "%s", err);
	snap_add(&snap, VM_SNAP_DEVICE, 2, "bogus", 1, sv.dev[0], n);
	cr_assert_eq(vm_snapshot_apply(&dvm[1], &snap, err, sizeof(err)),
		     -EPROTO);
	cr_assert(strstr(err, "device bogus, which this VM lacks"), "%s", err);
	cr_assert_not_null(vm_snapshot_find(&snap, VM_SNAP_DEVICE, "bogus"));
	cr_assert_null(vm_snapshot_find(&snap, VM_SNAP_VCPU, "bogus"));
	vm_snapshot_free(&snap);
	cr_assert_eq(snap.nr, 0);
	/* Both were refused before com1 was loaded. */
	serial_save(&dvm[1].com1, &st);
	cr_assert_eq(st.rx_len, 0);
}
