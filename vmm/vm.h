/* SPDX-License-Identifier: MIT */
/*
 * vmm/ - the VM core: /dev/kvm, the VM and its vCPU threads, the loaders,
 * pause/resume, GVA->GPA walks of a live vCPU, the VM's device table and
 * the machine state (struct vm_snapshot). It owns the KVM file descriptors
 * and the threads. It builds on ept/ for guest RAM and on devices/ for the
 * bus and device models, which it wires to KVM through struct dev_host. It
 * knows nothing of migration/ or of the control plane above it (vmm/ctl/,
 * vmm/cli/): it reports through the on_exit/on_event callbacks its owner
 * sets. Threads: one per vCPU (blocked in KVM_RUN) and the owner's thread
 * (the event loop in vmmctl boot), which creates, pauses, resumes and
 * destroys the VM.
 *
 * vm.h - one virtual machine: its KVM fd, guest RAM, devices, vCPUs and the
 * run control that pauses, resumes and stops them.
 *
 * Threads: vm_create/vm_start/vm_pause/vm_resume/vm_join/vm_destroy run on
 * the event-loop thread. vCPU threads call vm_request_exit() and read the
 * run-control fields; those fields are guarded by vm->lock and announced
 * with vm->cond. Everything else is set up before vm_start and read-only
 * afterwards.
 */
#ifndef VMM_VM_H
#define VMM_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/devices.h"
#include "ept/dirty.h"
#include "ept/fault.h"
#include "ept/mem.h"
#include "vmm/acpi.h"
#include "vmm/kvm.h"
#include "vmm/linux_boot.h"
#include "vmm/multiboot.h"

struct vcpu;

struct vm_config {
	const char *kvm_path; /* NULL: /dev/kvm */
	const char *kernel;
	const char *append;	 /* guest command line, may be NULL */
	const char *serial_path; /* NULL: stdout */
	const char *hb_log_path; /* NULL: no heartbeat log */
	uint64_t mem_size;
	int nr_cpus;
	enum dirty_backend dirty_backend;
	uint32_t dirty_ring_entries; /* DIRTY_RING */
	bool mem_lazy;		     /* --mem-mode lazy: demand-zero RAM */
	bool incoming;		     /* no kernel, no boot: state arrives */
	/*
	 * --mem-prealloc: every page allocated at creation; --mlock: RAM kept
	 * in memory (mem_back.h). mem_handed_over (--incoming unix:): RAM
	 * will be the source's memfd (vm_mem_adopt), so neither is done to
	 * the RAM created here, only to the one adopted.
	 */
	bool mem_prealloc, mem_lock, mem_handed_over;
	uint64_t fault_stall_ms;     /* report faults waiting longer */
	const char *initrd; /* Multiboot module file, may be NULL */
	/* The optional devices (--device), built in this order by devices/. */
	struct dev_request devices[DEV_REQUEST_MAX];
	int nr_devices;
};

enum vm_state {
	VM_CREATED,
	VM_RUNNING,
	VM_PAUSED,
	VM_STOPPING,
};

/* Called (from any thread) once, when the VM has been asked to stop. */
typedef void (*vm_exit_fn)(void *opaque);
/* Called from a vCPU thread for device events (markers). */
typedef void (*vm_event_fn)(void *opaque, const char *name, uint64_t id,
			    uint64_t arg);

struct vm {
	struct vm_config cfg;
	struct kvm_sys kvm;
	int fd;
	struct guest_mem mem;
	struct dirty_tracker dirty;
	struct fault_service faults; /* lazy memory, or post-copy */
	/*
	 * Post-copy destination: some guest pages are still at the source
	 * and arrive only when asked for by the event-loop thread. That
	 * thread must then not touch guest RAM itself (it would wait on a
	 * fault only it can resolve): its RAM accessors refuse with -EAGAIN.
	 */
	atomic_bool ram_incomplete;
	uint64_t tsc_khz;
	uint32_t xsave_size; /* KVM_CAP_XSAVE2, at least struct kvm_xsave */
	uint64_t boot_cr3;   /* the identity page tables' PML4 */

	/* Devices: set up before vm_start, then used by vCPU threads. */
	struct bus pio, mmio;
	struct console console;
	struct serial com1;
	struct i8042 i8042;
	struct testdev testdev;
	/*
	 * Every migratable device, in the order both sides of a migration
	 * list them: com1 and testdev (embedded above), then the optional
	 * devices the table owns. Migration and the VM core reach them
	 * through the vm_devs_* calls below, never by type.
	 */
	struct dev_table devs;
	struct dev_host host;
	/*
	 * The PC platform (vm_machine.c), in every VM so that both sides of
	 * a migration have them: fw_cfg, the ACPI PM block and timer, the
	 * and RTC.
	 */
	struct fw_cfg fw_cfg;
	struct pm_timer pm_timer;
	struct acpi_pm acpi_pm;
	struct rtc rtc;
	bool machine_init;
	/* A Multiboot guest: where it entered, where its ACPI tables are. */
	bool multiboot;
	struct multiboot_entry mb;
	struct linux_entry lx; /* lx.kind != LINUX_NONE: a Linux kernel */
	struct acpi_layout acpi;
	/* ACPI S3 requests so far; each vCPU compares its sleep_seen. */
	atomic_uint sleep_seq;

	int nr_vcpus;
	struct vcpu *vcpus;

	/* Notifications to the event loop. */
	vm_exit_fn on_exit;
	vm_event_fn on_event;
	void *cb_opaque;

	/* Run control: guarded by lock, changes broadcast on cond. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum vm_state state;
	atomic_bool pause_req; /* read lock-free by vCPUs before KVM_RUN */
	atomic_bool exit_req;
	int nr_parked; /* vCPUs in vcpu_park(); vm_pause peeks lock-free */
	uint64_t pause_gen; /* pauses so far (vcpu_presave.c) */
	bool presave; /* this pause: vCPUs take their state as they park */
	/* vm_stage's threads boost their first stretch (vcpu_boost.c) */
	bool boost_staged;
	int exit_code;
	bool exit_error; /* the VMM failed, as opposed to a guest/user stop */
	char exit_why[256];
	uint64_t start_ns;
};

/* Build everything up to (not including) running vCPU threads. */
int vm_create(struct vm *vm, const struct vm_config *cfg, char *err,
	      size_t errlen);
/*
 * Start the devices and the vCPU threads; staged threads (vm_stage) are
 * only let go.
 */
int vm_start(struct vm *vm, char *err, size_t errlen);
/*
 * Create the vCPU threads parked before their first KVM_RUN, so that
 * vm_start later only wakes them (a migration destination stages at its
 * restore, and the thread creation leaves the downtime). Nothing of the
 * guest runs until vm_start; a VM that never starts joins them at exit.
 */
int vm_stage(struct vm *vm, char *err, size_t errlen);
/* vm_mem.c: --mem-prealloc and --mlock on the VM's RAM, as cfg says. */
int vm_mem_hold(struct vm *vm, char *err, size_t errlen);
/*
 * Live update destination, before any vCPU runs: guest RAM is the
 * source's memfd fd from now on (fd is the VM's from the call on: closed
 * here when it cannot be adopted), then held as cfg says. err names a size mismatch or the failing call.
 */
int vm_mem_adopt(struct vm *vm, int fd, char *err, size_t errlen);
/* Stop every vCPU at a KVM_RUN boundary; returns when all are parked. */
int vm_pause(struct vm *vm);
/*
 * vm_pause, each vCPU taking its own state as it parks (vcpu_presave.c),
 * so that vm_snapshot_take finds it taken: a migration's switch-over.
 */
int vm_pause_saving(struct vm *vm);
int vm_resume(struct vm *vm);
/* Any thread: ask the VM to stop with this exit code (first caller wins). */
void vm_request_exit(struct vm *vm, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Any thread: the VMM failed; stop with exit code 1 and this reason. */
void vm_fail(struct vm *vm, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Wait for every vCPU thread to end (after vm_request_exit). */
void vm_join(struct vm *vm);
void vm_destroy(struct vm *vm);

/*
 * Make every vCPU leave guest mode at least once (kick-before-harvest for
 * the dirty ring); returns when each has, or is outside KVM_RUN anyway.
 * -ETIMEDOUT after 2 s (a vCPU blocked on a userfaultfd fault from ring-0
 * code cannot be kicked: docs/kvm-host.md).
 */
int vm_kick_sync(struct vm *vm);

struct ptw_result;
/*
 * Walk vCPU cpu's page tables for gva (pausing a running VM meanwhile).
 * -EINVAL for a bad cpu; the walk's own outcome is in r->status.
 */
int vm_translate(struct vm *vm, int cpu, uint64_t gva, struct ptw_result *r);
struct ptw_ctx;
/*
 * The walker's context for vCPU cpu: its paging registers, reads through
 * vm->mem; the special registers read for it into *sr too, unless NULL.
 * Only while that vCPU is outside KVM_RUN (the VM paused).
 */
int vm_ptw_ctx(struct vm *vm, int cpu, struct ptw_ctx *ctx,
	       struct kvm_sregs *sr);

/* Assert or deassert an interrupt line (KVM_IRQ_LINE). */
int vm_irq_line(struct vm *vm, unsigned int gsi, int level);
/* vm_irq_route.c: the ISA GSI routes the MADT describes (IRQ0 on pin 2). */
int vm_irq_route_isa(int vm_fd, char *err, size_t errlen);
/*
 * Write a host->guest request into the boot-info mailbox. -EAGAIN while
 * post-copy pages are still arriving (ram_incomplete).
 */
int vm_guest_request(struct vm *vm, int req, uint64_t arg);

const char *vm_state_name(enum vm_state s);

struct elf_image;
/*
 * The PC platform (vm_machine.c). vm_machine_devices: build and register
 * fw_cfg, acpi_pm, pm_timer, rtc, after
 * vm_devs_register. vm_load_kernel: load cfg.kernel, a Multiboot image
 * (with cfg.initrd as its module and ACPI tables; vm->multiboot set), a
 * Linux vmlinux (PVH) or bzImage (vm->lx, linux_boot.h), or
 * our ELF64 guest (into *img). vm_boot_multiboot: the BSP at the
 * Multiboot entry, the APs waiting for INIT/SIPI.
 */
int vm_machine_devices(struct vm *vm, char *err, size_t errlen);
void vm_machine_destroy(struct vm *vm);
int vm_load_kernel(struct vm *vm, struct elf_image *img, char *err,
		   size_t errlen);
int vm_boot_multiboot(struct vm *vm, char *err, size_t errlen);
/*
 * ACPI S3, on each vCPU thread out of KVM_RUN: pending once the guest
 * asked to sleep and this vCPU has not gone to sleep since. An AP resets
 * to wait for SIPI; the BSP waits for the wake-up (the RTC alarm, when
 * PM1_EN.RTC_EN and the alarm are on; else the VM's exit) and restarts in
 * real mode at the FACS waking vector. A VM paused while its BSP sleeps
 * does not park it (vm_pause times out). 0, or <0 when the vCPU must stop.
 */
bool vm_sleep_pending(const struct vcpu *v);
int vm_sleep_vcpu(struct vcpu *v);

/*
 * The VM's devices (vm_devs.c), over vm->devs. The quiesce, resume,
 * pinned and ack calls run on the event-loop thread; see devices/dev.h.
 */
/* Register com1 and testdev (initialised by the caller), first, in order. */
int vm_devs_register(struct vm *vm, char *err, size_t errlen);
/* The i-th device, or NULL past the last: for (i = 0; (d = ...); i++). */
const struct dev *vm_dev_at(const struct vm *vm, int i);
/* The device named name, its own struct, or NULL. */
void *vm_dev_find(struct vm *vm, const char *name);
/* How many devices have the quiesce handshake (0: nothing to quiesce). */
int vm_devs_nr_quiesce(struct vm *vm);
/* Ask every DMA device to quiesce; returns how many must still ack. */
int vm_devs_quiesce_request(struct vm *vm);
/*
 * 1: every device is quiesced; 0: one has not acknowledged yet (err says
 * "device pt0: the driver did not acknowledge the quiesce request");
 * <0: one acknowledged but still holds a buffer (err says which).
 */
int vm_devs_quiesce_poll(struct vm *vm, char *err, size_t errlen);
/* The longest request -> acknowledgement of the last quiesce, ns. */
uint64_t vm_devs_quiesce_ns(struct vm *vm);
/* The quiesce is over: every DMA device's driver may use it again. */
void vm_devs_resume(struct vm *vm);
/* fn(opaque, gpa, len) for every guest buffer a device holds for DMA. */
void vm_devs_pinned(struct vm *vm, dev_pin_fn fn, void *opaque);
/*
 * fn(opaque) on the vCPU thread that wrote a driver's quiesce ack; fn
 * NULL clears it.
 */
void vm_devs_set_ack_hook(struct vm *vm, dev_ack_fn fn, void *opaque);

#endif /* VMM_VM_H */
