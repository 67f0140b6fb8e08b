/* SPDX-License-Identifier: MIT */
/*
 * translate.c - GVA -> GPA for a vCPU of a live VM (vmmctl translate).
 *
 * vCPU registers can only be read consistently while that vCPU is outside
 * KVM_RUN, so a running VM is paused for the walk and resumed after it
 * (the same trade QEMU's gva2gpa makes with run_on_cpu). Runs on the
 * event-loop thread.
 */
#include <errno.h>
#include <sys/ioctl.h>

#include "ept/ptwalk.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

static int translate_read(void *opaque, uint64_t gpa, uint64_t *val)
{
	return mem_read(opaque, gpa, val, sizeof(*val));
}

/* MAXPHYADDR from CPUID leaf 0x80000008, as this VM's vCPUs see it. */
static unsigned int translate_maxphyaddr(const struct vm *vm)
{
	const struct kvm_cpuid2 *c = vm->kvm.cpuid;

	for (unsigned int i = 0; i < c->nent; i++)
		if (c->entries[i].function == 0x80000008)
			return c->entries[i].eax & 0xff;
	return 36; /* the architectural default without the leaf */
}

int vm_ptw_ctx(struct vm *vm, int cpu, struct ptw_ctx *ctx,
	       struct kvm_sregs *out)
{
	struct kvm_sregs sr;

	if (cpu < 0 || cpu >= vm->nr_vcpus)
		return -EINVAL;
	if (ioctl(vm->vcpus[cpu].fd, KVM_GET_SREGS, &sr) < 0)
		return -errno;
	if (out)
		*out = sr;
	*ctx = (struct ptw_ctx){
		.read = translate_read,
		.opaque = &vm->mem,
		.cr0 = sr.cr0,
		.cr3 = sr.cr3,
		.cr4 = sr.cr4,
		.efer = sr.efer,
		.maxphyaddr = translate_maxphyaddr(vm),
	};
	return 0;
}

static int translate_walk(struct vm *vm, int cpu, uint64_t gva,
			  struct ptw_result *r)
{
	struct ptw_ctx ctx;
	int ret = vm_ptw_ctx(vm, cpu, &ctx, NULL);

	if (!ret)
		ptw_translate(&ctx, gva, r);
	return ret;
}

int vm_translate(struct vm *vm, int cpu, uint64_t gva, struct ptw_result *r)
{
	bool paused_here = false;
	int ret;

	if (cpu < 0 || cpu >= vm->nr_vcpus)
		return -EINVAL;
	/* Page tables may not have arrived yet (post-copy): see vm.h. */
	if (atomic_load(&vm->ram_incomplete))
		return -EAGAIN;
	ret = vm_pause(vm);
	if (ret == 0)
		paused_here = true;
	else if (ret != -EALREADY)
		return ret;
	ret = translate_walk(vm, cpu, gva, r);
	if (paused_here)
		vm_resume(vm);
	return ret;
}
