/* SPDX-License-Identifier: MIT */
/*
 * vm_arch_state.c - save and restore the VM-wide KVM state of a paused VM
 * (irqchip: PIC master, PIC slave, IOAPIC; PIT2; the KVM clock) as a blob
 * of proto records, each the struct of its KVM_GET_* ioctl. Loading checks
 * the whole blob first (vmstate_rec.c), then restores in the order KVM
 * requires, each rule a comment above the code that obeys it. And the TSC
 * frequency the vCPUs tick at (read for HELLO, set from a source's HELLO
 * and from a vCPU blob). Runs on the thread that paused the VM, or on a VM
 * whose vCPUs never ran.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <linux/kvm.h>

#include "vmm/vcpu.h"
#include "vmm/vm.h"
#include "vmm/vmstate.h"
#include "vmm/vmstate_rec.h"

/* The longest stop kvmclock is advanced over (an hour): longer is a clock step.
 */
#define VM_CLOCK_ADVANCE_MAX_NS (3600ULL * 1000000000ULL)

/* VM blob, VMSTATE_VM_VERSION: every record mandatory. */
enum vm_rec {
	VM_REC_HDR = 1,	       /* struct vmstate_hdr: version, id 0 */
	VM_REC_PIC_MASTER = 2, /* struct kvm_irqchip, KVM_IRQCHIP_PIC_MASTER */
	VM_REC_PIC_SLAVE = 3,  /* struct kvm_irqchip, KVM_IRQCHIP_PIC_SLAVE */
	VM_REC_IOAPIC = 4,     /* struct kvm_irqchip, KVM_IRQCHIP_IOAPIC */
	VM_REC_PIT2 = 5,       /* struct kvm_pit_state2 */
	VM_REC_CLOCK = 6,      /* struct kvm_clock_data, as KVM_GET_CLOCK */
	VM_REC_MAX
};

_Static_assert(VM_REC_MAX <= REC_MAX_TAGS, "struct rec_set is too small");

/* ---- VM: irqchip, PIT, clock --------------------------------------------- */

static const struct rec_type vm_recs[VM_REC_MAX] = {
	[VM_REC_HDR] = {"HDR", sizeof(struct vmstate_hdr), false},
	[VM_REC_PIC_MASTER] = {"PIC_MASTER", sizeof(struct kvm_irqchip), false},
	[VM_REC_PIC_SLAVE] = {"PIC_SLAVE", sizeof(struct kvm_irqchip), false},
	[VM_REC_IOAPIC] = {"IOAPIC", sizeof(struct kvm_irqchip), false},
	[VM_REC_PIT2] = {"PIT2", sizeof(struct kvm_pit_state2), false},
	[VM_REC_CLOCK] = {"CLOCK", sizeof(struct kvm_clock_data), false},
};

size_t vm_arch_state_max(void)
{
	return rec_blob_max(vm_recs, VM_REC_MAX, NULL);
}

static const uint32_t vm_chip_ids[VM_REC_MAX] = {
	[VM_REC_PIC_MASTER] = KVM_IRQCHIP_PIC_MASTER,
	[VM_REC_PIC_SLAVE] = KVM_IRQCHIP_PIC_SLAVE,
	[VM_REC_IOAPIC] = KVM_IRQCHIP_IOAPIC,
};

/* Host wall time in ns: comparable between the two ends of a migration. */
static uint64_t vm_realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int vm_ioc_fail(const char *ioc, const char *what, char *err,
		       size_t errlen)
{
	int e = errno;

	snprintf(err, errlen, "vm: %s%s: %s", ioc, what, strerror(e));
	return -e;
}

static int vm_save_irqchip(struct vm *vm, struct proto_rec_writer *w,
			   enum vm_rec tag, char *err, size_t errlen)
{
	struct kvm_irqchip c;
	char what[32];

	memset(&c, 0, sizeof(c));
	c.chip_id = vm_chip_ids[tag];
	if (ioctl(vm->fd, KVM_GET_IRQCHIP, &c) < 0) {
		snprintf(what, sizeof(what), " (%s)", vm_recs[tag].name);
		return vm_ioc_fail("KVM_GET_IRQCHIP", what, err, errlen);
	}
	proto_rec_put(w, tag, &c, sizeof(c));
	return 0;
}

static int vm_save_pit_clock(struct vm *vm, struct proto_rec_writer *w,
			     char *err, size_t errlen)
{
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;

	memset(&pit, 0, sizeof(pit));
	memset(&clock, 0, sizeof(clock));
	if (ioctl(vm->fd, KVM_GET_PIT2, &pit) < 0)
		return vm_ioc_fail("KVM_GET_PIT2", "", err, errlen);
	proto_rec_put(w, VM_REC_PIT2, &pit, sizeof(pit));
	/* Once, here, with every vCPU stopped: the time the guest stopped. */
	if (ioctl(vm->fd, KVM_GET_CLOCK, &clock) < 0)
		return vm_ioc_fail("KVM_GET_CLOCK", "", err, errlen);
	/*
	 * Where KVM gives no host wall time with it (no master clock, as in
	 * the nested KVM of our machines), read it now: the loader advances
	 * the clock by the wall time from here to its KVM_SET_CLOCK.
	 */
	if (!(clock.flags & KVM_CLOCK_REALTIME)) {
		clock.realtime = vm_realtime_ns();
		clock.flags |= KVM_CLOCK_REALTIME;
	}
	proto_rec_put(w, VM_REC_CLOCK, &clock, sizeof(clock));
	return 0;
}

int vm_arch_state_save(struct vm *vm, struct proto_rec_writer *w, char *err,
		       size_t errlen)
{
	int r = 0;

	rec_put_hdr(w, VM_REC_HDR, VMSTATE_VM_VERSION, 0);
	for (int tag = VM_REC_PIC_MASTER; !r && tag <= VM_REC_IOAPIC; tag++)
		r = vm_save_irqchip(vm, w, tag, err, errlen);
	if (!r)
		r = vm_save_pit_clock(vm, w, err, errlen);
	if (!r)
		r = rec_writer_check("vm", w, err, errlen);
	return r;
}

static int vm_check(const uint8_t *blob, size_t len, struct rec_set *set,
		    char *err, size_t errlen)
{
	struct kvm_irqchip c;
	int r;

	r = rec_parse("vm state", vm_recs, VM_REC_MAX, blob, len, set, err,
		      errlen);
	if (!r)
		r = rec_check_hdr("vm state", set, VM_REC_HDR,
				  VMSTATE_VM_VERSION, 0, err, errlen);
	for (int tag = VM_REC_PIC_MASTER; !r && tag <= VM_REC_IOAPIC; tag++) {
		memcpy(&c, set->data[tag], sizeof(c));
		if (c.chip_id == vm_chip_ids[tag])
			continue;
		snprintf(err, errlen, "vm state: %s record holds chip id %u",
			 vm_recs[tag].name, c.chip_id);
		r = -EPROTO;
	}
	return r;
}

static int vm_load_irqchips(struct vm *vm, const struct rec_set *set, char *err,
			    size_t errlen)
{
	struct kvm_irqchip c;
	char what[32];

	for (int tag = VM_REC_PIC_MASTER; tag <= VM_REC_IOAPIC; tag++) {
		memcpy(&c, set->data[tag], sizeof(c));
		if (ioctl(vm->fd, KVM_SET_IRQCHIP, &c) == 0)
			continue;
		snprintf(what, sizeof(what), " (%s)", vm_recs[tag].name);
		return vm_ioc_fail("KVM_SET_IRQCHIP", what, err, errlen);
	}
	return 0;
}

static int vm_load_pit(struct vm *vm, const struct rec_set *set, char *err,
		       size_t errlen)
{
	struct kvm_pit_state2 pit;

	memcpy(&pit, set->data[VM_REC_PIT2], sizeof(pit));
	if (ioctl(vm->fd, KVM_SET_PIT2, &pit) < 0)
		return vm_ioc_fail("KVM_SET_PIT2", "", err, errlen);
	return 0;
}

/*
 * The guest's kvmclock advances by the time it spent stopped, as QEMU
 * does, so that it keeps pace with the guest's TSC, which on our hosts
 * goes on with the host's (docs/migration.md, "Clocks"): KVM_SET_CLOCK
 * gets the saved value plus the wall time (CLOCK_REALTIME) since it was
 * read, with flags 0 (kernels before 5.16 refuse any, and
 * KVM_CLOCK_REALTIME would need a master clock this host has not). A
 * record without a wall time, or a wall time in the future (clocks of two
 * hosts that disagree), continues from the saved value: never backwards.
 */
static int vm_load_clock(struct vm *vm, const struct rec_set *set, char *err,
			 size_t errlen)
{
	struct kvm_clock_data saved, clock;
	uint64_t now = vm_realtime_ns();

	memcpy(&saved, set->data[VM_REC_CLOCK], sizeof(saved));
	memset(&clock, 0, sizeof(clock));
	clock.clock = saved.clock;
	if ((saved.flags & KVM_CLOCK_REALTIME) && now > saved.realtime &&
	    now - saved.realtime < VM_CLOCK_ADVANCE_MAX_NS)
		clock.clock += now - saved.realtime;
	if (ioctl(vm->fd, KVM_SET_CLOCK, &clock) < 0)
		return vm_ioc_fail("KVM_SET_CLOCK", "", err, errlen);
	return 0;
}

/*
 * KVM_KVMCLOCK_CTRL on every vCPU once the clock is set: the guest learns
 * it was stopped (PVCLOCK_GUEST_STOPPED) and its watchdogs forgive the
 * gap. EINVAL: that vCPU has no kvmclock page (the guest does not use it).
 */
static int vm_kvmclock_ctrl(struct vm *vm, char *err, size_t errlen)
{
	char what[32];

	for (int i = 0; i < vm->nr_vcpus; i++) {
		if (ioctl(vm->vcpus[i].fd, KVM_KVMCLOCK_CTRL, 0) == 0 ||
		    errno == EINVAL)
			continue;
		snprintf(what, sizeof(what), " (vcpu%d)", i);
		return vm_ioc_fail("KVM_KVMCLOCK_CTRL", what, err, errlen);
	}
	return 0;
}

int vm_arch_state_load(struct vm *vm, const uint8_t *blob, size_t len,
		       char *err, size_t errlen)
{
	struct rec_set set;
	int r = vm_check(blob, len, &set, err, errlen);

	if (r)
		return r;
	/*
	 * The irqchips before the PIT: KVM_SET_PIT2 re-arms the PIT timer,
	 * whose output goes into the PIC and IOAPIC restored here first.
	 */
	r = vm_load_irqchips(vm, &set, err, errlen);
	if (!r)
		r = vm_load_pit(vm, &set, err, errlen);
	/* The clock last: kvmclock runs from the moment it is set. */
	if (!r)
		r = vm_load_clock(vm, &set, err, errlen);
	if (!r)
		r = vm_kvmclock_ctrl(vm, err, errlen);
	return r;
}

/* ---- the TSC frequency --------------------------------------------------- */

int vcpu_tsc_khz_set(struct vcpu *v, uint32_t khz, char *err, size_t errlen)
{
	int here = ioctl(v->fd, KVM_GET_TSC_KHZ, 0), e;

	if (here > 0 && (uint32_t)here == khz)
		return 0;
	if (ioctl(v->fd, KVM_SET_TSC_KHZ, (unsigned long)khz) == 0)
		return 0;
	e = errno;
	snprintf(err, errlen,
		 "vcpu%d: KVM_SET_TSC_KHZ %u (this host: %d kHz): %s", v->id,
		 khz, here, strerror(e));
	return -e;
}

int vm_tsc_khz(struct vm *vm)
{
	int khz = ioctl(vm->vcpus[0].fd, KVM_GET_TSC_KHZ, 0);

	if (khz < 0)
		return -errno;
	return khz ? khz : -EINVAL;
}

int vm_tsc_khz_set(struct vm *vm, uint32_t khz, char *err, size_t errlen)
{
	for (int i = 0; i < vm->nr_vcpus; i++) {
		int r = vcpu_tsc_khz_set(&vm->vcpus[i], khz, err, errlen);

		if (r)
			return r;
	}
	return 0;
}
