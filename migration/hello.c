/* SPDX-License-Identifier: MIT */
/*
 * hello.c - describe the local VM for the handshake: RAM layout, vCPUs,
 * the CPUID KVM offers (what both VMs' vCPUs are built from), devices.
 */
#include <stdio.h>
#include <string.h>

#include "common/page.h"
#include "migration/hello.h"
#include "vmm/vm.h"

/*
 * KVM_GET_SUPPORTED_CPUID passes through the APIC id of whichever host CPU
 * ran the ioctl (leaf 1 EBX[31:24], leaves 0xb/0x1f EDX). vcpu.c replaces
 * them with each vCPU's own id, so they are not part of the VM's shape.
 */
static void mig_hello_normalise(struct proto_cpuid *c)
{
	if (c->function == 1)
		c->ebx &= 0x00ffffff;
	if (c->function == 0xb || c->function == 0x1f)
		c->edx = 0;
}

void mig_hello_local(struct vm *vm, uint64_t caps, struct proto_hello *h)
{
	const struct kvm_cpuid2 *c = vm->kvm.cpuid;
	const struct dev *d;
	int nr = 0;

	memset(h, 0, sizeof(*h));
	h->version = PROTO_VERSION;
	h->caps = caps;
	h->page_size = PAGE_SIZE;
	h->mem_size = vm->mem.size;
	h->nr_regions = vm->mem.nr_regions;
	for (int i = 0; i < vm->mem.nr_regions; i++) {
		h->regions[i].gpa = vm->mem.regions[i].gpa;
		h->regions[i].size = vm->mem.regions[i].size;
	}
	h->nr_vcpus = vm->nr_vcpus;
	for (unsigned int i = 0; i < c->nent && i < PROTO_MAX_CPUID; i++) {
		const struct kvm_cpuid_entry2 *e = &c->entries[i];

		h->cpuid[i] = (struct proto_cpuid){
			e->function, e->index, e->flags, e->eax,
			e->ebx,	     e->ecx,   e->edx};
		mig_hello_normalise(&h->cpuid[i]);
		h->nr_cpuid++;
	}
	for (; nr < PROTO_MAX_DEVICES && (d = vm_dev_at(vm, nr)); nr++) {
		snprintf(h->devices[nr].name, PROTO_NAME_MAX, "%s", d->name);
		h->devices[nr].version = d->ops->version;
	}
	h->nr_devices = nr;
}
