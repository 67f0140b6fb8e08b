/* SPDX-License-Identifier: MIT */
/*
 * vm_irq_route.c - the VM's GSI routing: the ISA lines as the MADT
 * (vmm/acpi.c) describes them.
 *
 * KVM's default table sends GSI n to IOAPIC pin n, so the in-kernel PIT,
 * which raises GSI 0, would reach pin 0, while the MADT's interrupt source
 * override tells the guest that IRQ0 is GSI 2 (pin 2), as on PC hardware.
 * This table makes the override true, as QEMU does: GSI 0-15 go to the
 * PICs (master 0-7, slave 8-15; 2 is the cascade), and GSI 0-23 to the
 * IOAPIC pin of the same number, except GSI 0 (the PIT) to pin 2 and
 * GSI 2 to no pin. Set once at creation, before any vCPU runs; the table
 * is configuration, not state: a migration destination builds the same.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "common/err.h"
#include "vmm/vm.h"

#define ISA_IRQS    16
#define IOAPIC_PINS 24
#define PIT_GSI	    0
#define PIT_PIN	    2 /* the MADT override's global system interrupt */
#define CASCADE_GSI 2
#define ROUTES_MAX  (ISA_IRQS + IOAPIC_PINS)

static void route_add(struct kvm_irq_routing *t, uint32_t gsi, uint32_t chip,
		      uint32_t pin)
{
	struct kvm_irq_routing_entry *e = &t->entries[t->nr++];

	memset(e, 0, sizeof(*e));
	e->gsi = gsi;
	e->type = KVM_IRQ_ROUTING_IRQCHIP;
	e->u.irqchip.irqchip = chip;
	e->u.irqchip.pin = pin;
}

int vm_irq_route_isa(int vm_fd, char *err, size_t errlen)
{
	struct kvm_irq_routing *t =
		calloc(1, sizeof(*t) + ROUTES_MAX * sizeof(t->entries[0]));
	int r = 0;

	if (!t) {
		err_set(err, errlen, "KVM_SET_GSI_ROUTING: %s",
			strerror(ENOMEM));
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < ISA_IRQS; i++)
		if (i != CASCADE_GSI)
			route_add(t, i,
				  i < 8 ? KVM_IRQCHIP_PIC_MASTER
					: KVM_IRQCHIP_PIC_SLAVE,
				  i % 8);
	for (uint32_t i = 0; i < IOAPIC_PINS; i++)
		if (i != CASCADE_GSI)
			route_add(t, i, KVM_IRQCHIP_IOAPIC,
				  i == PIT_GSI ? PIT_PIN : i);
	if (ioctl(vm_fd, KVM_SET_GSI_ROUTING, t) < 0) {
		r = -errno;
		err_set(err, errlen, "KVM_SET_GSI_ROUTING (%u ISA routes): %s",
			t->nr, strerror(errno));
	}
	free(t);
	return r;
}
