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
#include <linux/kvm.h>
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

/* ---- what PC firmware leaves for a Multiboot guest ------------------------
 *
 * A Multiboot loader runs after the firmware (SeaBIOS under QEMU), and
 * images such as kvm-unit-tests' realmode rely on what it left: the 8259s
 * initialised, the PIT ticking on IRQ 0, an interrupt vector table in
 * page 0 whose hardware-IRQ handlers acknowledge the PIC. The in-kernel
 * PIC and PIT are un-initialised after KVM_CREATE_IRQCHIP/KVM_CREATE_PIT2,
 * so the VMM sets that state itself, as SeaBIOS's pic_setup(), pit_setup()
 * and enable_hwirq() calls leave it (QEMU 7.2 + SeaBIOS, traced on this
 * machine: master IMR 0xb8, slave 0x8e):
 *   PIC   ICW1 0x11 (edge, cascade, ICW4), ICW2 vector base 0x08 (master)
 *         and 0x70 (slave), ICW3 cascade on IRQ 2, ICW4 8086 mode; ELCR 0
 *         (every line edge: no PCI here); unmasked IRQ 0 (timer), 1 and 12
 *         (PS/2), 2 (cascade), 6 (floppy), 8 (RTC), 13 (FPU), 14 (ATA) -
 *         IRQ 11, which realmode pulses through pc-testdev, stays masked:
 *         under QEMU it is the timer tick that ends its `sti; hlt`.
 *   PIT   channel 0 mode 2, count 0 (65536: 18.2 Hz), lobyte/hibyte.
 *   IVT   every vector at an IRET; 0x08-0x0f and 0x70-0x77 at handlers
 *         that send the 8259s an EOI (SeaBIOS's also count ticks in the
 *         BDA; nothing here reads it). They live at F000:FF00, in the
 *         reserved BIOS area the memory map hides.
 * Ordering: after KVM_CREATE_IRQCHIP and KVM_CREATE_PIT2 (vm_create) and
 * after the image is loaded (the IVT is in page 0, which the loader never
 * writes), before any vCPU runs; never on a migration destination, which
 * gets the PIC and PIT in the irqchip and PIT records and the IVT with RAM.
 * The BSP's LAPIC must pass PIC interrupts on: KVM resets its LVT0 to
 * ExtINT, unmasked, which vm_fw_check_lvt0 verifies.
 */
#define FW_STUB_GPA   0xfff00ULL
#define FW_STUB_SEG   0xf000
#define FW_PIC1_IMR   0xb8
#define FW_PIC2_IMR   0x8e
#define APIC_LVT0_OFF 0x350

static const uint8_t fw_stubs[] = {
	/* +0: any vector */
	0xcf, /* iret */
	/* +1: IRQ 0-7 */
	0x50, 0xb0, 0x20, 0xe6, 0x20, /* push ax; mov al,0x20; out 0x20,al */
	0x58, 0xcf,		      /* pop ax; iret */
	/* +8: IRQ 8-15: EOI to the slave, then the master */
	0x50, 0xb0, 0x20, 0xe6, 0xa0, /* push ax; mov al,0x20; out 0xa0,al */
	0xe6, 0x20, 0x58, 0xcf,	      /* out 0x20,al; pop ax; iret */
};

static int vm_fw_ivt(struct vm *vm, char *err, size_t errlen)
{
	uint32_t ivt[256];
	uint16_t off;

	for (int v = 0; v < 256; v++) {
		off = (v >= 0x08 && v < 0x10)	? 1
		      : (v >= 0x70 && v < 0x78) ? 8
						: 0;
		ivt[v] = (uint32_t)FW_STUB_SEG << 16 |
			 (uint16_t)((FW_STUB_GPA & 0xffff) + off);
	}
	if (mem_write(&vm->mem, FW_STUB_GPA, fw_stubs, sizeof(fw_stubs)) ||
	    mem_write(&vm->mem, 0, ivt, sizeof(ivt))) {
		err_set(err, errlen, "firmware IVT: low memory is not RAM");
		return -EFAULT;
	}
	return 0;
}

static int vm_fw_pic(struct vm *vm, char *err, size_t errlen)
{
	static const uint8_t base[2] = {0x08, 0x70};
	static const uint8_t imr[2] = {FW_PIC1_IMR, FW_PIC2_IMR};
	struct kvm_irqchip chip;

	for (uint32_t id = KVM_IRQCHIP_PIC_MASTER; id <= KVM_IRQCHIP_PIC_SLAVE;
	     id++) {
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = id;
		if (ioctl(vm->fd, KVM_GET_IRQCHIP, &chip) < 0)
			goto fail;
		chip.chip.pic.irq_base = base[id];
		chip.chip.pic.imr = imr[id];
		chip.chip.pic.init4 = 1;
		chip.chip.pic.init_state = 0;
		chip.chip.pic.elcr = 0;
		if (ioctl(vm->fd, KVM_SET_IRQCHIP, &chip) < 0)
			goto fail;
	}
	return 0;
fail:
	err_set(err, errlen, "firmware PIC state: KVM_GET/SET_IRQCHIP: %s",
		strerror(errno));
	return -errno;
}

static int vm_fw_pit(struct vm *vm, char *err, size_t errlen)
{
	struct kvm_pit_state2 pit;
	struct kvm_pit_channel_state *c = &pit.channels[0];

	memset(&pit, 0, sizeof(pit));
	if (ioctl(vm->fd, KVM_GET_PIT2, &pit) < 0)
		goto fail;
	c->count = 0; /* 65536 */
	c->mode = 2;
	c->bcd = 0;
	c->rw_mode = 3; /* lobyte, then hibyte */
	c->read_state = 3;
	c->write_state = 3;
	c->gate = 1;
	if (ioctl(vm->fd, KVM_SET_PIT2, &pit) < 0)
		goto fail;
	return 0;
fail:
	err_set(err, errlen, "firmware PIT state: KVM_GET/SET_PIT2: %s",
		strerror(errno));
	return -errno;
}

static int vm_fw_check_lvt0(struct vm *vm, char *err, size_t errlen)
{
	struct kvm_lapic_state *l = calloc(1, sizeof(*l));
	uint32_t lvt0 = 0;
	int r = 0;

	if (!l || ioctl(vm->vcpus[0].fd, KVM_GET_LAPIC, l) < 0) {
		r = l ? -errno : -ENOMEM;
		err_set(err, errlen, "vcpu0: KVM_GET_LAPIC: %s", strerror(-r));
		free(l);
		return r;
	}
	memcpy(&lvt0, &l->regs[APIC_LVT0_OFF], sizeof(lvt0));
	free(l);
	if (((lvt0 >> 8) & 7) != 7 || (lvt0 & (1U << 16))) {
		err_set(err, errlen,
			"vcpu0: LAPIC LVT0 is 0x%x, not an unmasked ExtINT: "
			"PIC interrupts would not reach the BSP",
			lvt0);
		return -EINVAL;
	}
	return 0;
}

/* BSP at the Multiboot entry; every AP waits for INIT/SIPI. */
int vm_boot_multiboot(struct vm *vm, char *err, size_t errlen)
{
	int r = vm_fw_ivt(vm, err, errlen);

	if (!r)
		r = vm_fw_pic(vm, err, errlen);
	if (!r)
		r = vm_fw_pit(vm, err, errlen);
	for (int i = 0; !r && i < vm->nr_vcpus; i++)
		r = vcpu_boot_entry32(&vm->vcpus[i], vm->mb.entry, vm->mb.info,
				      err, errlen);
	if (!r)
		r = vm_fw_check_lvt0(vm, err, errlen);
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
