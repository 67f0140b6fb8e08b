/* SPDX-License-Identifier: MIT */
/*
 * vm_machine.c - the PC platform around guests we did not write: the
 * devices they look for (fw_cfg, the ACPI PM block and timer, the RTC,
 * optionally isa-debug-exit), the Multiboot boot path (the image, its
 * module, ACPI tables, the BSP in 32-bit protected mode and the APs
 * waiting for INIT/SIPI), and ACPI S3: sleep and wake at the FACS waking
 * vector.
 *
 * Threads: the devices and the boot state are set up on the main thread
 * before vm_start. A sleep request comes from the vCPU thread that wrote
 * SLP_EN; every vCPU thread then carries it out for itself, out of
 * KVM_RUN (vm_sleep_vcpu), the BSP's waiting on vm->cond for the wake.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "common/err.h"
#include "vmm/acpi.h"
#include "vmm/loader.h"
#include "vmm/multiboot.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define NS_PER_SEC 1000000000ULL

static void vm_host_sleep(void *opaque)
{
	struct vm *vm = opaque;

	atomic_fetch_add(&vm->sleep_seq, 1);
	for (int i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
}

static int vm_machine_init(struct vm *vm, char *err, size_t errlen)
{
	int r = fw_cfg_init(&vm->fw_cfg, (unsigned int)vm->cfg.nr_cpus,
			    vm->cfg.mem_size, 0, err, errlen);

	if (!r)
		r = pm_timer_init(&vm->pm_timer, 32, err, errlen);
	if (r)
		return r;
	r = acpi_pm_init(&vm->acpi_pm, &vm->host);
	if (!r)
		r = rtc_init(&vm->rtc);
	if (r)
		err_set(err, errlen, "acpi_pm, rtc: %s", strerror(-r));
	return r;
}

int vm_machine_devices(struct vm *vm, char *err, size_t errlen)
{
	const struct {
		const char *name;
		uint16_t port, len;
		const struct bus_ops *bus;
		const struct dev_ops *ops;
		void *dev;
	} devs[] = {
		{"fw_cfg", FW_CFG_PORT, FW_CFG_PORT_LEN, &fw_cfg_ops,
		 &fw_cfg_dev_ops, &vm->fw_cfg},
		{"acpi_pm", ACPI_PM_PORT, ACPI_PM_PORT_LEN, &acpi_pm_ops,
		 &acpi_pm_dev_ops, &vm->acpi_pm},
		{"pm_timer", ACPI_PM_BASE + ACPI_PM_TMR_OFF, PM_TIMER_PORT_LEN,
		 &pm_timer_ops, &pm_timer_dev_ops, &vm->pm_timer},
		{"rtc", RTC_PORT, RTC_PORT_LEN, &rtc_ops, &rtc_dev_ops,
		 &vm->rtc},
	};
	int r;

	vm->host.sleep = vm_host_sleep;
	r = vm_machine_init(vm, err, errlen);
	if (r)
		return r;
	vm->machine_init = true;
	for (size_t i = 0; !r && i < sizeof(devs) / sizeof(devs[0]); i++) {
		r = bus_register(&vm->pio, devs[i].port, devs[i].len,
				 devs[i].bus, devs[i].dev, devs[i].name, err,
				 errlen);
		if (!r)
			r = dev_table_add(&vm->devs, devs[i].name, devs[i].ops,
					  devs[i].dev, err, errlen);
	}
	return r;
}

void vm_machine_destroy(struct vm *vm)
{
	if (!vm->machine_init)
		return;
	fw_cfg_destroy(&vm->fw_cfg);
	acpi_pm_destroy(&vm->acpi_pm);
	rtc_destroy(&vm->rtc);
	vm->machine_init = false;
}

/* ---- the kernel image: Linux, a Multiboot image, or our ELF64 guest ------ */

static int vm_load_multiboot(struct vm *vm, const uint8_t *img, size_t len,
			     char *err, size_t errlen)
{
	struct multiboot_args a = {
		.name = vm->cfg.kernel,
		.append = vm->cfg.append,
		.modname = vm->cfg.initrd,
	};
	struct acpi_config ac;
	uint8_t *mod = NULL;
	char why[256];
	int r = 0;

	if (vm->cfg.initrd)
		r = loader_read_file("initrd", vm->cfg.initrd, &mod, &a.modlen,
				     err, errlen);
	if (r)
		return r;
	a.mod = mod;
	r = multiboot_load(&vm->mem, img, len, &a, &vm->mb, why, sizeof(why));
	free(mod);
	if (r) {
		err_set(err, errlen, "kernel %s: %s", vm->cfg.kernel, why);
		return r;
	}
	acpi_config_default(&ac, (unsigned int)vm->cfg.nr_cpus);
	r = acpi_write(&vm->mem, &ac, &vm->acpi, why, sizeof(why));
	if (r)
		err_set(err, errlen, "ACPI tables: %s", why);
	return r;
}

int vm_load_kernel(struct vm *vm, struct elf_image *img, char *err,
		   size_t errlen)
{
	enum linux_kind kind;
	uint8_t *buf = NULL;
	size_t len = 0;
	int r;

	r = loader_read_file("kernel", vm->cfg.kernel, &buf, &len, err, errlen);
	if (r)
		return r;
	kind = linux_probe(buf, len);
	if (kind != LINUX_NONE) {
		r = vm_load_linux(vm, kind, buf, len, err, errlen);
		free(buf);
		return r;
	}
	vm->multiboot = multiboot_probe(buf, len);
	if (vm->multiboot)
		r = vm_load_multiboot(vm, buf, len, err, errlen);
	free(buf);
	/* Our own guest: the ELF64 loader, with its own messages. */
	if (!vm->multiboot)
		r = elf_load_file(vm->cfg.kernel, &vm->mem, img, err, errlen);
	return r;
}

/* BSP at the Multiboot entry; every AP waits for INIT/SIPI. */
int vm_boot_multiboot(struct vm *vm, char *err, size_t errlen)
{
	int r = 0;

	for (int i = 0; !r && i < vm->nr_vcpus; i++)
		r = vcpu_boot_entry32(&vm->vcpus[i], vm->mb.entry, vm->mb.info,
				      err, errlen);
	return r;
}

/* ---- ACPI S3 --------------------------------------------------------------
 */

bool vm_sleep_pending(const struct vcpu *v)
{
	return atomic_load(&v->vm->sleep_seq) != v->sleep_seen;
}

static uint64_t vm_realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/*
 * The BSP sleeps: until the RTC alarm, when it may wake the machine, else
 * until the VM exits. false: the VM is exiting.
 */
static bool vm_sleep_wait(struct vm *vm, bool *by_rtc)
{
	uint64_t at = 0;
	struct timespec ts;
	int r = 0;

	*by_rtc = acpi_pm_rtc_wake_enabled(&vm->acpi_pm) &&
		  rtc_next_alarm(&vm->rtc, vm_realtime_ns(), &at);
	ts.tv_sec = (time_t)(at / NS_PER_SEC);
	ts.tv_nsec = (long)(at % NS_PER_SEC);
	pthread_mutex_lock(&vm->lock);
	while (!atomic_load(&vm->exit_req) && r != ETIMEDOUT)
		r = *by_rtc ? pthread_cond_timedwait(&vm->cond, &vm->lock, &ts)
			    : pthread_cond_wait(&vm->cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
	return !atomic_load(&vm->exit_req);
}

/*
 * Where the FACS is: where the loader put it, or on a migration
 * destination (which loaded nothing) where acpi_write puts it for this
 * machine's shape, as the source's did. 0 when there is none.
 */
static uint64_t vm_facs_gpa(struct vm *vm)
{
	struct acpi_config ac;
	struct acpi_layout l;
	size_t len = ACPI_AREA_END - ACPI_AREA_BASE;
	uint8_t *scratch;
	char why[128];

	if (vm->acpi.facs || !vm->cfg.incoming)
		return vm->acpi.facs;
	scratch = malloc(len);
	acpi_config_default(&ac, (unsigned int)vm->cfg.nr_cpus);
	if (scratch && !acpi_build(&ac, scratch, len, &l, why, sizeof(why)))
		vm->acpi = l;
	free(scratch);
	return vm->acpi.facs;
}

/*
 * The firmware waking vector the guest left in the FACS; 0 when it has
 * no FACS (not a Multiboot guest: nothing there says "FACS").
 */
static uint32_t vm_waking_vector(struct vm *vm)
{
	uint64_t gpa = vm_facs_gpa(vm);
	struct acpi_facs facs;

	if (!gpa || mem_read(&vm->mem, gpa, &facs, sizeof(facs)) ||
	    memcmp(facs.signature, "FACS", 4))
		return 0;
	return facs.waking_vector;
}

int vm_sleep_vcpu(struct vcpu *v)
{
	struct vm *vm = v->vm;
	bool by_rtc;
	int r;

	v->sleep_seen = atomic_load(&vm->sleep_seq);
	if (v->id) {
		r = vcpu_reset_wait_sipi(v);
		if (r)
			vm_fail(vm, "vcpu%d: entering S3: %s", v->id,
				strerror(-r));
		return r;
	}
	if (!vm_sleep_wait(vm, &by_rtc))
		return -ESHUTDOWN;
	if (by_rtc)
		rtc_alarm_fired(&vm->rtc);
	acpi_pm_wake(&vm->acpi_pm, by_rtc);
	r = vcpu_wake_real_mode(v, vm_waking_vector(vm));
	if (r)
		vm_fail(vm, "vcpu0: waking from S3: %s", strerror(-r));
	return r;
}
