/* SPDX-License-Identifier: MIT */
/*
 * vm.c - build a VM (KVM VM fd, irqchip, PIT, RAM, devices, guest image,
 * vCPUs), and run control: start, pause, resume, exit, teardown.
 *
 * Creation order follows what KVM requires: the TSS and identity-map
 * addresses and the irqchip exist before any vCPU is created (vCPUs created
 * earlier would get no in-kernel LAPIC); the PIT after the irqchip; memory
 * slots before the first KVM_RUN.
 */
#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "vmm/boot.h"
#include "vmm/loader.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"
#include "vmm/vmstate.h"

/* Inside the MMIO hole, above the device window: used by KVM on VMX. */
#define VM_TSS_ADDR	     0xfffbd000ULL
#define VM_IDENTITY_MAP_ADDR 0xfffbc000ULL

const char *vm_state_name(enum vm_state s)
{
	switch (s) {
	case VM_CREATED:
		return "created";
	case VM_RUNNING:
		return "running";
	case VM_PAUSED:
		return "paused";
	case VM_STOPPING:
		return "stopping";
	}
	return "unknown";
}

/* ---- dev_host callbacks: how devices reach the VM -------------------- */

static void vm_host_irq_line(void *opaque, unsigned int gsi, int level)
{
	vm_irq_line(opaque, gsi, level);
}

static void vm_host_request_exit(void *opaque, int code, const char *why)
{
	vm_request_exit(opaque, code, "%s", why);
}

static void vm_host_event(void *opaque, const char *name, uint64_t id,
			  uint64_t arg)
{
	struct vm *vm = opaque;

	if (vm->on_event)
		vm->on_event(vm->cb_opaque, name, id, arg);
}

int vm_irq_line(struct vm *vm, unsigned int gsi, int level)
{
	struct kvm_irq_level irq = {.irq = gsi, .level = level};

	if (ioctl(vm->fd, KVM_IRQ_LINE, &irq) < 0)
		return -errno;
	return 0;
}

/* ---- creation ------------------------------------------------------------ */

static int vm_create_kvm_vm(struct vm *vm, char *err, size_t errlen)
{
	struct kvm_pit_config pit = {.flags = 0};
	uint64_t idmap = VM_IDENTITY_MAP_ADDR;
	const char *step = "KVM_CREATE_VM";
	int xs;

	vm->fd = ioctl(vm->kvm.fd, KVM_CREATE_VM, 0);
	if (vm->fd < 0)
		goto fail;
	/* Fixed for the VM: asked once, not in each state save or load. */
	xs = ioctl(vm->fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	vm->xsave_size = xs > (int)sizeof(struct kvm_xsave)
				 ? (uint32_t)xs
				 : (uint32_t)sizeof(struct kvm_xsave);
	step = "KVM_SET_IDENTITY_MAP_ADDR";
	if (ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
		goto fail;
	step = "KVM_SET_TSS_ADDR";
	if (ioctl(vm->fd, KVM_SET_TSS_ADDR, VM_TSS_ADDR) < 0)
		goto fail;
	step = "KVM_CREATE_IRQCHIP";
	if (ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0)
		goto fail;
	step = "KVM_CREATE_PIT2";
	if (ioctl(vm->fd, KVM_CREATE_PIT2, &pit) < 0)
		goto fail;
	/* IRQ0 (the PIT) on IOAPIC pin 2, as the MADT says (vm_irq_route.c) */
	return vm_irq_route_isa(vm->fd, err, errlen);
fail:
	snprintf(err, errlen, "%s: %s", step, strerror(errno));
	return -errno;
}

static int vm_create_memory(struct vm *vm, char *err, size_t errlen)
{
	int r = mem_create(&vm->mem, vm->cfg.mem_size);

	if (r) {
		snprintf(err, errlen, "guest RAM (%llu MiB): %s",
			 (unsigned long long)(vm->cfg.mem_size >> 20),
			 strerror(-r));
		return r;
	}
	r = mem_register_slots(&vm->mem, vm->fd, 0);
	if (r) {
		snprintf(err, errlen, "KVM_SET_USER_MEMORY_REGION: %s",
			 strerror(-r));
		return r;
	}
	return vm->cfg.mem_handed_over ? 0 : vm_mem_hold(vm, err, errlen);
}

/*
 * The optional devices the configuration asks for: devices/ builds each
 * from its spec, maps it and adds it to the table (after the embedded
 * ones, in this order).
 */
static int vm_create_optional(struct vm *vm, char *err, size_t errlen)
{
	const struct dev_env env = {
		.host = &vm->host,
		.pio = &vm->pio,
		.mmio = &vm->mmio,
	};
	int r = 0;

	for (int i = 0; !r && i < vm->cfg.nr_devices; i++)
		r = dev_request_create(&vm->devs, &vm->cfg.devices[i], &env,
				       err, errlen);
	return r;
}

static int vm_create_devices(struct vm *vm, char *err, size_t errlen)
{
	int r;

	vm->host = (struct dev_host){
		.opaque = vm,
		.irq_line = vm_host_irq_line,
		.request_exit = vm_host_request_exit,
		.event = vm_host_event,
		.mem = &vm->mem,
	};
	bus_init(&vm->pio, "pio");
	bus_init(&vm->mmio, "mmio");
	r = console_open(&vm->console, vm->cfg.serial_path, err, errlen);
	if (r)
		return r;
	r = serial_init(&vm->com1, &vm->host, &vm->console, SERIAL_COM1_IRQ);
	if (r) {
		snprintf(err, errlen, "serial: %s", strerror(-r));
		return r;
	}
	i8042_init(&vm->i8042, &vm->host);
	r = testdev_init(&vm->testdev, &vm->host, &vm->console,
			 vm->cfg.hb_log_path, err, errlen);
	if (!r)
		r = vm_devs_register(vm, err, errlen);
	if (!r)
		r = vm_machine_devices(vm, err, errlen);
	if (!r)
		r = vm_create_optional(vm, err, errlen);
	if (!r)
		r = bus_register(&vm->pio, SERIAL_COM1_BASE, 8, &serial_ops,
				 &vm->com1, "serial-com1", err, errlen);
	if (!r)
		r = bus_register(&vm->pio, I8042_DATA_PORT, 5, &i8042_ops,
				 &vm->i8042, "i8042", err, errlen);
	if (!r)
		r = bus_register(&vm->mmio, TESTDEV_GPA, TESTDEV_SIZE,
				 &testdev_ops, &vm->testdev, "testdev", err,
				 errlen);
	bus_seal(&vm->pio);
	bus_seal(&vm->mmio);
	return r;
}

/*
 * An incoming VM's vCPUs get the configuration's CPUID now, outside the
 * downtime: the source's, the same but for what KVM rewrites at run time,
 * then need not be loaded (vcpu_state.c).
 */
static int vm_incoming_cpuid(struct vm *vm, char *err, size_t errlen)
{
	for (int i = 0; i < vm->nr_vcpus; i++) {
		int r = vcpu_set_cpuid(&vm->vcpus[i]);

		if (r) {
			snprintf(err, errlen, "vcpu%d: KVM_SET_CPUID2: %s", i,
				 strerror(-r));
			return r;
		}
	}
	return 0;
}

static int vm_create_vcpus(struct vm *vm, char *err, size_t errlen)
{
	int r;

	vm->vcpus = calloc(vm->cfg.nr_cpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return -ENOMEM;
	for (int i = 0; i < vm->cfg.nr_cpus; i++) {
		r = vcpu_create(&vm->vcpus[i], vm, i, err, errlen);
		if (r)
			return r;
		vm->nr_vcpus++;
	}
	r = vm_tsc_khz(vm);
	if (r < 0) {
		snprintf(err, errlen, "vcpu0: KVM_GET_TSC_KHZ: %s",
			 r == -EINVAL ? "returned 0" : strerror(-r));
		return r;
	}
	vm->tsc_khz = r;
	for (int i = 0; i < vm->nr_vcpus; i++) {
		r = dirty_ring_map(&vm->dirty, i, vm->vcpus[i].fd, err, errlen);
		if (r)
			return r;
	}
	return 0;
}

static int vm_boot(struct vm *vm, const struct elf_image *img, char *err,
		   size_t errlen)
{
	struct boot_params bp = {
		.kernel_end = img->highest,
		.tsc_khz = vm->tsc_khz,
		.nr_cpus = vm->nr_vcpus,
		.cmdline = vm->cfg.append,
	};
	const struct boot_info *bi;
	int r = boot_write_guest(&vm->mem, &bp, err, errlen);

	if (r)
		return r;
	bi = mem_gpa_to_hva(&vm->mem, GUEST_BOOT_INFO_GPA, sizeof(*bi));
	vm->boot_cr3 = bi->pgt_base;
	for (int i = 0; i < vm->nr_vcpus; i++) {
		r = vcpu_boot_setup(&vm->vcpus[i], img->entry, err, errlen);
		if (r)
			return r;
	}
	return 0;
}

static void vm_fault_stalled(void *opaque, uint64_t gpa, uint64_t waited_ns,
			     pid_t tid)
{
	struct vm *vm = opaque;

	(void)tid;
	if (vm->on_event)
		vm->on_event(vm->cb_opaque, "fault-stalled", gpa, waited_ns);
}

/*
 * Lazy memory: everything the VMM wrote (image, page tables, boot info) is
 * in place; every other page of RAM is populated by the fault service on
 * first touch, with zeroes.
 */
static int vm_lazy_memory(struct vm *vm, char *err, size_t errlen)
{
	int r = fault_init(&vm->faults, &vm->mem, err, errlen);

	for (int i = 0; !r && i < vm->mem.nr_regions; i++) {
		struct fault_range fr = {
			.gpa = vm->mem.regions[i].gpa,
			.size = vm->mem.regions[i].size,
			.resolver = FAULT_ZERO,
		};

		r = fault_register(&vm->faults, &fr, err, errlen);
	}
	if (r)
		return r;
	fault_set_hooks(&vm->faults, NULL, vm_fault_stalled, vm,
			vm->cfg.fault_stall_ms * 1000000ULL);
	r = fault_start(&vm->faults);
	if (r)
		snprintf(err, errlen, "starting the fault thread: %s",
			 strerror(-r));
	return r;
}

static int vm_kick_dirty(void *opaque)
{
	return vm_kick_sync(opaque);
}

static int vm_create_steps(struct vm *vm, char *err, size_t errlen)
{
	struct elf_image img = {0};
	int r;

	r = kvm_open(&vm->kvm, vm->cfg.kvm_path, err, errlen);
	if (r)
		return r;
	if (vm->cfg.nr_cpus > vm->kvm.max_vcpus) {
		snprintf(err, errlen, "--cpus %d: this KVM supports at most %d",
			 vm->cfg.nr_cpus, vm->kvm.max_vcpus);
		return -EINVAL;
	}
	r = vm_create_kvm_vm(vm, err, errlen);
	if (!r)
		r = vm_create_memory(vm, err, errlen);
	if (!r)
		r = vm_create_devices(vm, err, errlen);
	if (!r && !vm->cfg.incoming)
		r = vm_load_kernel(vm, &img, err, errlen);
	/* The dirty ring must be enabled before any vCPU exists. */
	if (!r)
		r = dirty_init(&vm->dirty, vm->cfg.dirty_backend, vm->fd,
			       &vm->mem, vm->cfg.dirty_ring_entries,
			       vm->cfg.nr_cpus, err, errlen);
	if (!r)
		dirty_set_kick(&vm->dirty, vm_kick_dirty, vm);
	if (!r)
		r = vm_create_vcpus(vm, err, errlen);
	if (!r && vm->cfg.incoming)
		r = vm_incoming_cpuid(vm, err, errlen);
	/* An incoming VM gets its RAM and vCPU state from a migration. */
	if (!r && !vm->cfg.incoming)
		r = vm->multiboot		  ? vm_boot_multiboot(vm, err, errlen)
		    : vm->lx.kind != LINUX_NONE ? vm_boot_linux(vm, err, errlen)
						: vm_boot(vm, &img, err, errlen);
	if (!r && vm->cfg.mem_lazy && !vm->cfg.incoming)
		r = vm_lazy_memory(vm, err, errlen);
	return r;
}

int vm_create(struct vm *vm, const struct vm_config *cfg, char *err,
	      size_t errlen)
{
	int r;

	memset(vm, 0, sizeof(*vm));
	vm->cfg = *cfg;
	vm->fd = -1;
	vm->kvm.fd = -1;
	vm->mem.memfd = -1;
	vm->console.fd = -1;
	vm->faults.uffd = -1;
	vm->faults.stop_efd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	vm->state = VM_CREATED;
	r = vm_create_steps(vm, err, errlen);
	if (r)
		vm_destroy(vm);
	return r;
}

/* ---- run control ----------------------------------------------------------
 */

/*
 * Threads created until the caller restores old inherit a mask without
 * SIGINT/SIGTERM (the loop owns them) and SIGVCPU_KICK (a vCPU thread
 * unblocks its own).
 */
static void vm_block(sigset_t *old)
{
	sigset_t block;

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGVCPU_KICK);
	pthread_sigmask(SIG_BLOCK, &block, old);
}

/* Create the vCPU threads that are not yet (vm_block'ed). */
static int vm_spawn_vcpus(struct vm *vm, char *err, size_t errlen)
{
	int r = 0;

	for (int i = 0; i < vm->nr_vcpus && !r; i++)
		if (!vm->vcpus[i].thread_started)
			r = vcpu_start(&vm->vcpus[i]);
	if (r) {
		snprintf(err, errlen, "starting vCPU threads: %s",
			 strerror(-r));
		vm_request_exit(vm, 1, "could not start vCPU threads");
	}
	return r;
}

int vm_stage(struct vm *vm, char *err, size_t errlen)
{
	sigset_t old;
	int r;

	pthread_mutex_lock(&vm->lock);
	if (vm->state != VM_CREATED) {
		pthread_mutex_unlock(&vm->lock);
		snprintf(err, errlen, "staging vCPU threads: the VM is %s",
			 vm_state_name(vm->state));
		return -EBUSY;
	}
	/* They park in vcpu_before_run() until vm_start clears it. */
	atomic_store(&vm->pause_req, true);
	vm->boost_staged = true; /* read by the threads created below */
	pthread_mutex_unlock(&vm->lock);
	vm_block(&old);
	r = vm_spawn_vcpus(vm, err, errlen);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

int vm_start(struct vm *vm, char *err, size_t errlen)
{
	const struct dev *failed = NULL;
	sigset_t old;
	int r;

	vm_block(&old);
	vm->start_ns = clock_now_ns();
	pthread_mutex_lock(&vm->lock);
	vm->state = VM_RUNNING;
	pthread_mutex_unlock(&vm->lock);
	/*
	 * The devices' own threads (pt's traffic source) before the vCPUs: a
	 * DMA device only writes into buffers the driver posts, so DMA before
	 * the guest runs is harmless. A migration destination gets here at
	 * GO, after its devices were loaded.
	 */
	r = dev_table_start(&vm->devs, &failed, err, errlen);
	if (r) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		vm_request_exit(vm, 1, "could not start the %s device",
				failed->ops->type);
		return r;
	}
	r = vm_spawn_vcpus(vm, err, errlen);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r)
		return r;
	/* Staged threads: let them go. */
	pthread_mutex_lock(&vm->lock);
	atomic_store(&vm->pause_req, false);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

static int vm_wait_parked(struct vm *vm)
{
	struct timespec deadline;
	int r = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 5;
	while (vm->nr_parked < vm->nr_vcpus && !atomic_load(&vm->exit_req) &&
	       r == 0)
		r = pthread_cond_timedwait(&vm->cond, &vm->lock, &deadline);
	if (atomic_load(&vm->exit_req))
		return -ESHUTDOWN;
	return vm->nr_parked == vm->nr_vcpus ? 0 : -ETIMEDOUT;
}

/*
 * The vCPUs park within ~0.1 ms of their kick. Sleeping on vm->cond for
 * that lets this CPU halt, and the last vCPU's wake-up then waits for it
 * to come back (or lands on the vCPU's own CPU, behind it): watch for them
 * here for a while instead, yielding to a vCPU that shares this CPU. The
 * wait on vm->cond below decides; this only comes first.
 */
#define VM_PARK_WATCH_NS 300000

static void vm_watch_parked(struct vm *vm)
{
	uint64_t end = clock_now_ns() + VM_PARK_WATCH_NS;

	while (__atomic_load_n(&vm->nr_parked, __ATOMIC_ACQUIRE) <
		       vm->nr_vcpus &&
	       clock_now_ns() < end)
		sched_yield();
}

int vm_pause(struct vm *vm)
{
	int r;

	pthread_mutex_lock(&vm->lock);
	if (vm->state != VM_RUNNING) {
		r = vm->state == VM_PAUSED ? -EALREADY : -ESHUTDOWN;
		pthread_mutex_unlock(&vm->lock);
		return r;
	}
	vm->pause_gen++;
	atomic_store(&vm->pause_req, true);
	pthread_mutex_unlock(&vm->lock);
	for (int i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	vm_watch_parked(vm);
	pthread_mutex_lock(&vm->lock);
	r = vm_wait_parked(vm);
	if (r == 0) {
		vm->state = VM_PAUSED;
	} else {
		/* Not every vCPU stopped: let the ones that did run again. */
		atomic_store(&vm->pause_req, false);
		pthread_cond_broadcast(&vm->cond);
	}
	pthread_mutex_unlock(&vm->lock);
	return r;
}

int vm_resume(struct vm *vm)
{
	int r = 0;

	pthread_mutex_lock(&vm->lock);
	if (vm->state == VM_PAUSED) {
		atomic_store(&vm->pause_req, false);
		vm->state = VM_RUNNING;
		pthread_cond_broadcast(&vm->cond);
	} else {
		r = vm->state == VM_RUNNING ? -EALREADY : -ESHUTDOWN;
	}
	pthread_mutex_unlock(&vm->lock);
	return r;
}

static void vm_exit_v(struct vm *vm, int code, bool error, const char *fmt,
		      va_list ap)
{
	bool first = false;

	pthread_mutex_lock(&vm->lock);
	if (!atomic_load(&vm->exit_req)) {
		first = true;
		vm->exit_code = code;
		vm->exit_error = error;
		vsnprintf(vm->exit_why, sizeof(vm->exit_why), fmt, ap);
		vm->state = VM_STOPPING;
		atomic_store(&vm->exit_req, true);
	}
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	if (!first)
		return;
	for (int i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	if (vm->on_exit)
		vm->on_exit(vm->cb_opaque);
}

void vm_request_exit(struct vm *vm, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vm_exit_v(vm, code, false, fmt, ap);
	va_end(ap);
}

void vm_fail(struct vm *vm, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vm_exit_v(vm, 1, true, fmt, ap);
	va_end(ap);
}

void vm_join(struct vm *vm)
{
	for (int i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (v->thread_started) {
			pthread_join(v->thread, NULL);
			v->thread_started = false;
		}
	}
}

/* Every vCPU out of KVM_RUN since `epoch`, or not in it at all. */
static bool vm_all_left_run(struct vm *vm, const uint64_t *epoch)
{
	for (int i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (atomic_load(&v->in_run) &&
		    atomic_load(&v->epoch) == epoch[i])
			return false;
	}
	return true;
}

int vm_kick_sync(struct vm *vm)
{
	uint64_t epoch[GUEST_MAX_CPUS];
	struct timespec deadline;
	int r = 0;

	for (int i = 0; i < vm->nr_vcpus; i++) {
		epoch[i] = atomic_load(&vm->vcpus[i].epoch);
		atomic_store(&vm->vcpus[i].ack_wanted, true);
		vcpu_kick(&vm->vcpus[i]);
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 2;
	pthread_mutex_lock(&vm->lock);
	while (!vm_all_left_run(vm, epoch) && r == 0)
		r = pthread_cond_timedwait(&vm->cond, &vm->lock, &deadline);
	pthread_mutex_unlock(&vm->lock);
	return vm_all_left_run(vm, epoch) ? 0 : -ETIMEDOUT;
}

int vm_guest_request(struct vm *vm, int req, uint64_t arg)
{
	if (atomic_load(&vm->ram_incomplete))
		return -EAGAIN;
	if (vm->multiboot || vm->lx.kind != LINUX_NONE)
		return -ENOTSUP; /* no boot-info mailbox: not our guest */
	struct boot_info *bi =
		mem_gpa_to_hva(&vm->mem, GUEST_BOOT_INFO_GPA, sizeof(*bi));
	uint32_t seq;

	if (!bi)
		return -EFAULT;
	bi->mailbox.arg = arg;
	bi->mailbox.req = req;
	seq = bi->mailbox.seq + 1;
	__atomic_store_n(&bi->mailbox.seq, seq, __ATOMIC_RELEASE);
	/* A host write: dirty logging (migration) must resend the page. */
	ept_mark_dirty(&vm->mem,
		       GUEST_BOOT_INFO_GPA +
			       offsetof(struct boot_info, mailbox),
		       sizeof(bi->mailbox));
	return (int)seq;
}

void vm_destroy(struct vm *vm)
{
	for (int i = 0; vm->vcpus && i < vm->nr_vcpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	free(vm->vcpus);
	vm->vcpus = NULL;
	vm->nr_vcpus = 0;
	dirty_destroy(&vm->dirty);
	/* Lazy memory, or a post-copy migration that did not complete. */
	if (vm->cfg.mem_lazy || vm->cfg.incoming)
		fault_stop(&vm->faults);
	/*
	 * After fault_stop (a device thread may wait on a post-copy fault
	 * that only the stopped service could resolve; stopping it releases
	 * the thread), before the RAM a DMA device writes goes away.
	 */
	dev_table_destroy(&vm->devs);
	vm_machine_destroy(vm);
	testdev_destroy(&vm->testdev);
	serial_destroy(&vm->com1);
	console_close(&vm->console);
	bus_destroy(&vm->pio);
	bus_destroy(&vm->mmio);
	mem_destroy(&vm->mem);
	if (vm->fd >= 0)
		close(vm->fd);
	vm->fd = -1;
	if (vm->kvm.fd >= 0)
		kvm_close(&vm->kvm);
}
