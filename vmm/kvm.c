/* SPDX-License-Identifier: MIT */
/*
 * kvm.c - open /dev/kvm and refuse early, with one clear line, when the API
 * or a capability the VMM depends on is missing. The list below is every
 * KVM feature the VMM uses anywhere (boot, pause, state save/restore, dirty
 * logging), so a host that lacks one fails at start, not mid-migration.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm/kvm.h"

#define KVM_CPUID_MAX_ENTRIES 256

struct kvm_cap_req {
	int cap;
	const char *name;
};

#define CAP(x)                                                                 \
	{                                                                      \
		x, #x                                                          \
	}
static const struct kvm_cap_req kvm_required_caps[] = {
	CAP(KVM_CAP_USER_MEMORY),    CAP(KVM_CAP_IRQCHIP),
	CAP(KVM_CAP_PIT2),	     CAP(KVM_CAP_IRQ_ROUTING),
	CAP(KVM_CAP_SET_TSS_ADDR),   CAP(KVM_CAP_EXT_CPUID),
	CAP(KVM_CAP_IMMEDIATE_EXIT), CAP(KVM_CAP_MP_STATE),
	CAP(KVM_CAP_ADJUST_CLOCK),   CAP(KVM_CAP_GET_TSC_KHZ),
	CAP(KVM_CAP_XSAVE),	     CAP(KVM_CAP_XCRS),
	CAP(KVM_CAP_VCPU_EVENTS),    CAP(KVM_CAP_DEBUGREGS),
	CAP(KVM_CAP_SYNC_MMU),	     CAP(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2),
};
#undef CAP

static int kvm_check_caps(struct kvm_sys *k, char *err, size_t errlen)
{
	size_t n = sizeof(kvm_required_caps) / sizeof(kvm_required_caps[0]);
	size_t used = 0;
	int missing = 0;

	for (size_t i = 0; i < n; i++) {
		int r = ioctl(k->fd, KVM_CHECK_EXTENSION,
			      kvm_required_caps[i].cap);
		if (r > 0)
			continue;
		if (!missing)
			used = snprintf(err, errlen, "missing capabilities:");
		if (used < errlen)
			used += snprintf(err + used, errlen - used, " %s",
					 kvm_required_caps[i].name);
		missing++;
	}
	return missing ? -ENOTSUP : 0;
}

static int kvm_get_cpuid(struct kvm_sys *k, char *err, size_t errlen)
{
	size_t sz = sizeof(struct kvm_cpuid2) +
		    KVM_CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = calloc(1, sz);

	if (!c)
		return -ENOMEM;
	c->nent = KVM_CPUID_MAX_ENTRIES;
	if (ioctl(k->fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		int e = errno;

		snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID: %s",
			 strerror(e));
		free(c);
		return -e;
	}
	k->cpuid = c;
	return 0;
}

static int kvm_msr_list_fail(int e, char *err, size_t errlen)
{
	snprintf(err, errlen, "KVM_GET_MSR_INDEX_LIST: %s", strerror(e));
	return -e;
}

/*
 * Every MSR KVM saves and restores, asked once here rather than in each
 * state save (a migration's downtime): the list is the host's, fixed.
 */
static int kvm_get_msr_list(struct kvm_sys *k, char *err, size_t errlen)
{
	struct kvm_msr_list probe = {.nmsrs = 0}, *l;
	int e;

	/* E2BIG: nmsrs now says how many there are. */
	if (ioctl(k->fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return kvm_msr_list_fail(errno, err, errlen);
	l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(l->indices[0]));
	if (!l)
		return kvm_msr_list_fail(ENOMEM, err, errlen);
	l->nmsrs = probe.nmsrs;
	if (ioctl(k->fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		e = errno;
		free(l);
		return kvm_msr_list_fail(e, err, errlen);
	}
	k->msrs = l;
	return 0;
}

static int kvm_check(struct kvm_sys *k, char *err, size_t errlen)
{
	int r = ioctl(k->fd, KVM_GET_API_VERSION, 0);

	if (r < 0) {
		snprintf(err, errlen,
			 "not a KVM device (KVM_GET_API_VERSION: "
			 "%s)",
			 strerror(errno));
		return -ENOTTY;
	}
	if (r != KVM_API_VERSION) {
		snprintf(err, errlen, "KVM API version %d, need %d", r,
			 KVM_API_VERSION);
		return -ENOTSUP;
	}
	r = kvm_check_caps(k, err, errlen);
	if (r)
		return r;
	k->run_size = ioctl(k->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (k->run_size < (int)sizeof(struct kvm_run)) {
		snprintf(err, errlen, "KVM_GET_VCPU_MMAP_SIZE: %s",
			 k->run_size < 0 ? strerror(errno) : "too small");
		return -ENOTSUP;
	}
	k->max_vcpus = ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (k->max_vcpus <= 0)
		k->max_vcpus = 1;
	r = kvm_get_cpuid(k, err, errlen);
	return r ? r : kvm_get_msr_list(k, err, errlen);
}

int kvm_open(struct kvm_sys *k, const char *path, char *err, size_t errlen)
{
	char why[512] = "";
	int r;

	memset(k, 0, sizeof(*k));
	if (!path)
		path = KVM_DEFAULT_PATH;
	k->fd = open(path, O_RDWR | O_CLOEXEC);
	if (k->fd < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot open KVM device %s: %s%s", path,
			 strerror(-r),
			 r == -ENOENT ? " (is the kvm module loaded?)" : "");
		return r;
	}
	r = kvm_check(k, why, sizeof(why));
	if (r) {
		snprintf(err, errlen, "KVM device %s: %s", path, why);
		kvm_close(k);
		return r;
	}
	return 0;
}

void kvm_close(struct kvm_sys *k)
{
	if (k->fd > 0)
		close(k->fd);
	free(k->cpuid);
	free(k->msrs);
	memset(k, 0, sizeof(*k));
	k->fd = -1;
}
