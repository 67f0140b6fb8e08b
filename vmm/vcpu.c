/* SPDX-License-Identifier: MIT */
/*
 * vcpu.c - vCPU creation (straight into 64-bit mode) and the run loop.
 *
 * The run loop is one switch over exit reasons. Stopping a vCPU follows the
 * KVM rule for a consistent state: a pending PIO/MMIO exit is completed by
 * one more KVM_RUN with immediate_exit set, and only after KVM_RUN has
 * returned EINTR does the thread park (vcpu_park), so a paused vCPU never
 * has half-done I/O.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/sched.h"
#include "vmm/entry32.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define X86_CR0_PE	   (1ULL << 0)
#define X86_CR0_MP	   (1ULL << 1)
#define X86_CR0_ET	   (1ULL << 4)
#define X86_CR0_NE	   (1ULL << 5)
#define X86_CR0_WP	   (1ULL << 16)
#define X86_CR0_PG	   (1ULL << 31)
#define X86_CR4_PAE	   (1ULL << 5)
#define X86_CR4_OSFXSR	   (1ULL << 9)
#define X86_CR4_OSXMMEXCPT (1ULL << 10)
#define X86_EFER_LME	   (1ULL << 8)
#define X86_EFER_LMA	   (1ULL << 10)

/* Leaf 1 ECX bit 31: guests (Linux) then look for the 0x40000000 leaves. */
#define CPUID_1_ECX_HYPERVISOR (1U << 31)

#define GDT_SEL_CODE 0x08
#define GDT_SEL_DATA 0x10

static void vcpu_kick_handler(int sig)
{
	(void)sig; /* its only job is to make KVM_RUN return EINTR */
}

int vcpu_signals_init(void)
{
	struct sigaction sa = {.sa_handler = vcpu_kick_handler};

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGVCPU_KICK, &sa, NULL) < 0)
		return -errno;
	return 0;
}

/*
 * CPUID as KVM supports it (which includes KVM's signature and feature
 * leaves 0x40000000/0x40000001), with this vCPU's APIC id patched in and
 * the hypervisor bit set, as kvmtool and Firecracker do.
 */
int vcpu_set_cpuid(struct vcpu *v)
{
	const struct kvm_cpuid2 *sup = v->vm->kvm.cpuid;
	size_t sz = sizeof(*sup) + sup->nent * sizeof(sup->entries[0]);
	struct kvm_cpuid2 *c = malloc(sz);
	int r = 0;

	if (!c)
		return -ENOMEM;
	memcpy(c, sup, sz);
	for (unsigned int i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		if (e->function == 1) {
			e->ebx =
				(e->ebx & 0x00ffffff) | ((uint32_t)v->id << 24);
			e->ecx |= CPUID_1_ECX_HYPERVISOR;
		}
		if (e->function == 0xb || e->function == 0x1f)
			e->edx = v->id;
	}
	if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0) {
		r = -errno;
		free(c);
		return r;
	}
	/*
	 * Keep the table as KVM holds it (it drops entries it has no use
	 * for), which is what a source's KVM_GET_CPUID2 sends; without it,
	 * nothing is kept and a restore loads the source's table.
	 */
	free(v->cpuid);
	v->cpuid = NULL;
	c->nent = sup->nent;
	if (ioctl(v->fd, KVM_GET_CPUID2, c) == 0)
		v->cpuid = c;
	else
		free(c);
	return 0;
}

static void vcpu_flat_segment(struct kvm_segment *s, uint16_t sel, bool code)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = code ? 11 : 3; /* execute/read or read/write, accessed */
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = code;
	s->db = !code;
}

/* Long mode with the VMM's identity page tables, as common/guest_abi.h says. */
static int vcpu_set_long_mode(struct vcpu *v, uint64_t cr3)
{
	struct kvm_sregs sr;

	if (ioctl(v->fd, KVM_GET_SREGS, &sr) < 0)
		return -errno;
	vcpu_flat_segment(&sr.cs, GDT_SEL_CODE, true);
	vcpu_flat_segment(&sr.ds, GDT_SEL_DATA, false);
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	sr.cr0 = X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE |
		 X86_CR0_WP | X86_CR0_PG;
	sr.cr3 = cr3;
	sr.cr4 = X86_CR4_PAE | X86_CR4_OSFXSR | X86_CR4_OSXMMEXCPT;
	sr.efer = X86_EFER_LME | X86_EFER_LMA;
	if (ioctl(v->fd, KVM_SET_SREGS, &sr) < 0)
		return -errno;
	return 0;
}

static int vcpu_set_entry(struct vcpu *v, uint64_t entry)
{
	struct kvm_regs regs = {
		.rip = entry,
		.rdi = GUEST_BOOT_INFO_GPA,
		.rsi = (uint64_t)v->id,
		.rflags = 0x2,
	};

	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

/* With an in-kernel irqchip, APs wait for INIT/SIPI; ours start at once. */
static int vcpu_set_runnable(struct vcpu *v)
{
	struct kvm_mp_state mp = {.mp_state = KVM_MP_STATE_RUNNABLE};

	if (ioctl(v->fd, KVM_SET_MP_STATE, &mp) < 0)
		return -errno;
	return 0;
}

static int vcpu_setup(struct vcpu *v, uint64_t entry, const char **step)
{
	int r;

	*step = "KVM_SET_CPUID2";
	r = vcpu_set_cpuid(v);
	if (r)
		return r;
	*step = "KVM_SET_SREGS";
	r = vcpu_set_long_mode(v, v->vm->boot_cr3);
	if (r)
		return r;
	*step = "KVM_SET_REGS";
	r = vcpu_set_entry(v, entry);
	if (r)
		return r;
	*step = "KVM_SET_MP_STATE";
	return vcpu_set_runnable(v);
}

int vcpu_boot_setup(struct vcpu *v, uint64_t entry, char *err, size_t errlen)
{
	const char *step = "";
	int r = vcpu_setup(v, entry, &step);

	if (r)
		snprintf(err, errlen, "vcpu%d: %s: %s", v->id, step,
			 strerror(-r));
	return r;
}

static int vcpu_set_mp_state(struct vcpu *v, __u32 state)
{
	struct kvm_mp_state mp = {.mp_state = state};

	if (ioctl(v->fd, KVM_SET_MP_STATE, &mp) < 0)
		return -errno;
	return 0;
}

/* Special and general registers from an entry32 state function. */
static int vcpu_set_state(struct vcpu *v, struct kvm_sregs *sr,
			  struct kvm_regs *regs, const char **step)
{
	*step = "KVM_SET_SREGS";
	if (ioctl(v->fd, KVM_SET_SREGS, sr) < 0)
		return -errno;
	*step = "KVM_SET_REGS";
	if (ioctl(v->fd, KVM_SET_REGS, regs) < 0)
		return -errno;
	return 0;
}

static int vcpu_entry(struct vcpu *v, vcpu_entry_fn bsp, const void *arg,
		      const char **step)
{
	struct kvm_sregs sr;
	struct kvm_regs regs;
	int r;

	*step = "KVM_SET_CPUID2";
	r = vcpu_set_cpuid(v);
	if (r)
		return r;
	*step = "KVM_GET_SREGS";
	if (ioctl(v->fd, KVM_GET_SREGS, &sr) < 0)
		return -errno;
	if (v->id == 0)
		bsp(&sr, &regs, arg);
	else
		entry32_reset(&sr, &regs);
	r = vcpu_set_state(v, &sr, &regs, step);
	if (r)
		return r;
	*step = "KVM_SET_MP_STATE";
	return vcpu_set_mp_state(v, v->id ? KVM_MP_STATE_INIT_RECEIVED
					  : KVM_MP_STATE_RUNNABLE);
}

int vcpu_boot_start(struct vcpu *v, vcpu_entry_fn bsp, const void *arg,
		    char *err, size_t errlen)
{
	const char *step = "";
	int r = vcpu_entry(v, bsp, arg, &step);

	if (r)
		snprintf(err, errlen, "vcpu%d: %s: %s", v->id, step,
			 strerror(-r));
	return r;
}

struct vcpu_mb_entry {
	uint32_t entry, info;
};

static void vcpu_mb_state(struct kvm_sregs *s, struct kvm_regs *r,
			  const void *arg)
{
	const struct vcpu_mb_entry *e = arg;

	entry32_multiboot(s, r, e->entry, e->info);
}

int vcpu_boot_entry32(struct vcpu *v, uint32_t entry, uint32_t info, char *err,
		      size_t errlen)
{
	struct vcpu_mb_entry e = {entry, info};

	return vcpu_boot_start(v, vcpu_mb_state, &e, err, errlen);
}

/* The RESET/INIT state, then rip/cs as the caller wants; mp_state. */
static int vcpu_reset(struct vcpu *v, bool wake, uint32_t vector)
{
	struct kvm_sregs sr;
	struct kvm_regs regs;
	const char *step;
	int r;

	if (ioctl(v->fd, KVM_GET_SREGS, &sr) < 0)
		return -errno;
	entry32_reset(&sr, &regs);
	if (wake) {
		/* ACPI: the waking vector is a real-mode CS:IP, (v >> 4):(v &
		 * 0xf). */
		sr.cs.selector = (uint16_t)(vector >> 4);
		sr.cs.base = vector & ~0xfULL;
		regs.rip = vector & 0xf;
	}
	r = vcpu_set_state(v, &sr, &regs, &step);
	if (!r)
		r = vcpu_set_mp_state(v, wake ? KVM_MP_STATE_RUNNABLE
					      : KVM_MP_STATE_INIT_RECEIVED);
	return r;
}

int vcpu_reset_wait_sipi(struct vcpu *v)
{
	return vcpu_reset(v, false, 0);
}

int vcpu_wake_real_mode(struct vcpu *v, uint32_t vector)
{
	return vcpu_reset(v, true, vector);
}

int vcpu_create(struct vcpu *v, struct vm *vm, int id, char *err, size_t errlen)
{
	const char *step = "KVM_CREATE_VCPU";
	void *run;
	int r;

	memset(v, 0, sizeof(*v));
	v->vm = vm;
	v->id = id;
	v->fd = ioctl(vm->fd, KVM_CREATE_VCPU, id);
	if (v->fd < 0) {
		r = -errno;
		goto fail;
	}
	step = "mmap kvm_run";
	run = mmap(NULL, vm->kvm.run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   v->fd, 0);
	if (run == MAP_FAILED) {
		r = -errno;
		goto fail;
	}
	v->run = run;
	return 0;
fail:
	snprintf(err, errlen, "vcpu%d: %s: %s", id, step, strerror(-r));
	return r;
}

static int vcpu_handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool out = run->io.direction == KVM_EXIT_IO_OUT;

	v->st.io++;
	for (uint32_t i = 0; i < run->io.count; i++) {
		bus_dispatch(&v->vm->pio, run->io.port, data, run->io.size,
			     out);
		data += run->io.size;
	}
	v->need_reentry = true;
	return 0;
}

static int vcpu_handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;

	v->st.mmio++;
	bus_dispatch(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data,
		     run->mmio.len, run->mmio.is_write);
	v->need_reentry = true;
	return 0;
}

static uint64_t vcpu_rip(struct vcpu *v)
{
	struct kvm_regs regs;

	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0)
		return ~0ULL;
	return regs.rip;
}

static int vcpu_handle_system_event(struct vcpu *v)
{
	switch (v->run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		vm_request_exit(v->vm, 0, "vcpu%d: guest shut down", v->id);
		return -1;
	case KVM_SYSTEM_EVENT_RESET:
		vm_request_exit(v->vm, 0, "vcpu%d: guest reset", v->id);
		return -1;
	default:
		vm_fail(v->vm, "vcpu%d: guest crashed (system event %u)", v->id,
			v->run->system_event.type);
		return -1;
	}
}

/* One exit; returns -1 when the vCPU must stop (exit already requested). */
static int vcpu_handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;

	v->st.exits++;
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		return vcpu_handle_io(v);
	case KVM_EXIT_MMIO:
		return vcpu_handle_mmio(v);
	case KVM_EXIT_INTR:
		v->st.intr++;
		return 0;
	case KVM_EXIT_DIRTY_RING_FULL:
		if (dirty_ring_full(&v->vm->dirty, v->id) == 0)
			return 0;
		vm_fail(v->vm, "vcpu%d: dirty ring full and cannot be reset",
			v->id);
		return -1;
	case KVM_EXIT_SYSTEM_EVENT:
		return vcpu_handle_system_event(v);
	case KVM_EXIT_SHUTDOWN:
		vm_fail(v->vm,
			"vcpu%d: guest triple fault (KVM_EXIT_SHUTDOWN) "
			"at rip 0x%llx",
			v->id, (unsigned long long)vcpu_rip(v));
		return -1;
	case KVM_EXIT_FAIL_ENTRY:
		vm_fail(v->vm,
			"vcpu%d: VM entry failed, hardware reason 0x%llx",
			v->id,
			(unsigned long long)
				run->fail_entry.hardware_entry_failure_reason);
		return -1;
	case KVM_EXIT_INTERNAL_ERROR:
		vm_fail(v->vm,
			"vcpu%d: KVM internal error, suberror %u at "
			"rip 0x%llx",
			v->id, run->internal.suberror,
			(unsigned long long)vcpu_rip(v));
		return -1;
	default:
		vm_fail(v->vm,
			"vcpu%d: unexpected exit reason %u at rip 0x%llx",
			v->id, run->exit_reason,
			(unsigned long long)vcpu_rip(v));
		return -1;
	}
}

/* Wait while a pause is requested. Returns false when the VM is exiting. */
static bool vcpu_park(struct vcpu *v)
{
	struct vm *vm = v->vm;
	bool stay;

	pthread_mutex_lock(&vm->lock);
	__atomic_add_fetch(&vm->nr_parked, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&vm->cond);
	while (atomic_load(&vm->pause_req) && !atomic_load(&vm->exit_req)) {
		if (vcpu_presave_begin(v)) {
			pthread_mutex_unlock(&vm->lock);
			vcpu_presave_run(v);
			pthread_mutex_lock(&vm->lock);
			continue;
		}
		pthread_cond_wait(&vm->cond, &vm->lock);
	}
	__atomic_sub_fetch(&vm->nr_parked, 1, __ATOMIC_RELAXED);
	stay = !atomic_load(&vm->exit_req);
	pthread_mutex_unlock(&vm->lock);
	if (stay)
		vcpu_boost_begin(v);
	return stay;
}

/* Out of guest mode with a vm_kick_sync() request pending: say so. */
static void vcpu_ack_kick(struct vcpu *v)
{
	if (!atomic_exchange(&v->ack_wanted, false))
		return;
	atomic_fetch_add(&v->epoch, 1);
	pthread_mutex_lock(&v->vm->lock);
	pthread_cond_broadcast(&v->vm->cond);
	pthread_mutex_unlock(&v->vm->lock);
}

/* KVM_RUN returned: tell a vm_kick_sync() caller waiting for us. */
static void vcpu_left_run(struct vcpu *v)
{
	atomic_store(&v->in_run, false);
	atomic_fetch_add(&v->epoch, 1);
	vcpu_ack_kick(v);
}

/* Before KVM_RUN: park if a pause is due. Returns false to end the thread. */
static bool vcpu_before_run(struct vcpu *v)
{
	struct vm *vm = v->vm;

	/*
	 * KVM_RUN has returned since the boost began (vcpu_park), and the
	 * exit is handled (a heartbeat stamped): the first stretch is over.
	 */
	if (v->boost == VCPU_BOOST_ON)
		vcpu_boost_end(v);
	for (;;) {
		if (atomic_load(&vm->exit_req))
			return false;
		/*
		 * A kick can land after we cleared immediate_exit for an
		 * earlier one and be lost; the request itself is not: answer it
		 * here, out of guest mode, before entering KVM_RUN again.
		 */
		vcpu_ack_kick(v);
		if (vm_sleep_pending(v)) {
			if (v->need_reentry) {
				/* Finish the SLP_EN write first. */
				__atomic_store_n(&v->run->immediate_exit, 1,
						 __ATOMIC_SEQ_CST);
				return true;
			}
			if (vm_sleep_vcpu(v))
				return false;
			continue;
		}
		if (!atomic_load(&vm->pause_req))
			return true;
		if (v->need_reentry) {
			/* Complete the pending exit, then come straight back.
			 */
			__atomic_store_n(&v->run->immediate_exit, 1,
					 __ATOMIC_SEQ_CST);
			return true;
		}
		if (!vcpu_park(v))
			return false;
	}
}

static void vcpu_run_loop(struct vcpu *v)
{
	int e;

	while (vcpu_before_run(v)) {
		atomic_store(&v->in_run, true);
		e = ioctl(v->fd, KVM_RUN, 0) < 0 ? errno : 0;
		vcpu_left_run(v);
		v->need_reentry = false;
		if (e == EINTR || e == EAGAIN) {
			__atomic_store_n(&v->run->immediate_exit, 0,
					 __ATOMIC_SEQ_CST);
			v->st.intr++;
			continue;
		}
		if (e) {
			vm_fail(v->vm, "vcpu%d: KVM_RUN: %s", v->id,
				strerror(e));
			return;
		}
		if (vcpu_handle_exit(v) < 0)
			return;
	}
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	sigset_t set;
	char name[16];

	atomic_store(&v->tid, gettid());
	snprintf(name, sizeof(name), "vcpu%d", v->id);
	pthread_setname_np(pthread_self(), name);
	sigemptyset(&set);
	sigaddset(&set, SIGVCPU_KICK);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	/*
	 * The shortest slice (common/sched.h): a vCPU woken where other
	 * threads share its CPU (the VM resumed after a migration, a fault
	 * answered) is picked before them rather than after their longer
	 * slices; its share of the CPU is the same. docs/benchmarks.md,
	 * "After GO". Older kernels refuse it and nothing changes. A staged
	 * vCPU runs its first stretch real-time first (vcpu_boost.c) and
	 * takes the slice when that ends.
	 */
	if (v->vm->boost_staged)
		vcpu_boost_arm(v);
	if (v->boost == VCPU_BOOST_OFF)
		(void)sched_short_slice(VCPU_SLICE_NS);
	vcpu_run_loop(v);
	vcpu_boost_end(v);
	vcpu_boost_free(v);
	return NULL;
}

int vcpu_start(struct vcpu *v)
{
	int r = pthread_create(&v->thread, NULL, vcpu_thread, v);

	if (r)
		return -r;
	/* The thread names itself (for top -H, perf and gdb). */
	v->thread_started = true;
	return 0;
}

void vcpu_kick(struct vcpu *v)
{
	if (!v->run)
		return;
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (v->thread_started)
		pthread_kill(v->thread, SIGVCPU_KICK);
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->run)
		munmap(v->run, v->vm->kvm.run_size);
	if (v->fd > 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
	free(v->cpuid);
	v->cpuid = NULL;
	vcpu_presave_free(v);
}
