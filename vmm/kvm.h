/* SPDX-License-Identifier: MIT */
/*
 * kvm.h - the /dev/kvm system handle: open it, check the API version and
 * every capability the VMM relies on, and answer system-wide queries.
 * Built once by the main thread; read-only afterwards.
 */
#ifndef VMM_KVM_H
#define VMM_KVM_H

#include <stddef.h>
#include <linux/kvm.h>

#define KVM_DEFAULT_PATH "/dev/kvm"

struct kvm_sys {
	int fd;
	int run_size;		  /* KVM_GET_VCPU_MMAP_SIZE */
	int max_vcpus;		  /* KVM_CAP_MAX_VCPUS */
	struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID, malloc'd */
	struct kvm_msr_list *msrs; /* KVM_GET_MSR_INDEX_LIST, malloc'd */
};

/*
 * Open path (KVM_DEFAULT_PATH when NULL) and check the API and every
 * required capability. On failure returns -errno and err is one line naming
 * the device and what is missing.
 */
int kvm_open(struct kvm_sys *k, const char *path, char *err, size_t errlen);
void kvm_close(struct kvm_sys *k);

#endif /* VMM_KVM_H */
