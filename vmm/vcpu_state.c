/* SPDX-License-Identifier: MIT */
/*
 * vcpu_state.c - save and restore one vCPU of a paused VM as a blob of
 * proto records. A record holds the raw bytes of the kernel struct its
 * ioctl takes (the KVM ABI is fixed). Loading parses and checks the whole
 * blob (vmstate_rec.c, then the counts) before the first ioctl, then
 * restores in the order KVM requires, each rule written as a comment
 * above the code that obeys it. Runs on the thread that paused the VM
 * (every vCPU parked, so vCPU ioctls from here are safe) or on a VM whose
 * vCPUs never ran.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "vmm/vcpu.h"
#include "vmm/vm.h"
#include "vmm/vmstate.h"
#include "vmm/vmstate_rec.h"

/*
 * vCPU blob, VMSTATE_VCPU_VERSION, records in the order they are saved.
 * Every record is mandatory; each is the struct of its KVM_GET_* ioctl.
 */
enum vcpu_rec {
	VCPU_REC_HDR = 1,	   /* struct vmstate_hdr: version, vCPU id */
	VCPU_REC_MP_STATE = 2,	   /* struct kvm_mp_state */
	VCPU_REC_REGS = 3,	   /* struct kvm_regs */
	VCPU_REC_SREGS = 4,	   /* struct kvm_sregs */
	VCPU_REC_XSAVE = 5,	   /* struct kvm_xsave, >= 4096 bytes */
	VCPU_REC_XCRS = 6,	   /* struct kvm_xcrs */
	VCPU_REC_LAPIC = 7,	   /* struct kvm_lapic_state */
	VCPU_REC_DEBUGREGS = 8,	   /* struct kvm_debugregs */
	VCPU_REC_CPUID = 9,	   /* struct kvm_cpuid2 + nent entries */
	VCPU_REC_TSC_KHZ = 10,	   /* struct vmstate_tsc */
	VCPU_REC_MSRS = 11,	   /* struct kvm_msrs + nmsrs entries */
	VCPU_REC_VCPU_EVENTS = 12, /* struct kvm_vcpu_events */
	VCPU_REC_MAX
};

_Static_assert(VCPU_REC_MAX <= REC_MAX_TAGS, "struct rec_set is too small");

struct vmstate_tsc {
	uint32_t khz;
	uint32_t pad;
};

/* Upper bounds that keep a corrupt count from sizing an allocation. */
#define VMSTATE_MAX_CPUID 256 /* KVM_MAX_CPUID_ENTRIES */
#define VMSTATE_MAX_MSRS  1024
#define VMSTATE_XSAVE_MIN ((uint32_t)sizeof(struct kvm_xsave))

/* ---- vCPU: the fixed-size records ---------------------------------------- */

static const struct rec_type vcpu_recs[VCPU_REC_MAX] = {
	[VCPU_REC_HDR] = {"HDR", sizeof(struct vmstate_hdr), false},
	[VCPU_REC_MP_STATE] = {"MP_STATE", sizeof(struct kvm_mp_state), false},
	[VCPU_REC_REGS] = {"REGS", sizeof(struct kvm_regs), false},
	[VCPU_REC_SREGS] = {"SREGS", sizeof(struct kvm_sregs), false},
	[VCPU_REC_XSAVE] = {"XSAVE", sizeof(struct kvm_xsave), true},
	[VCPU_REC_XCRS] = {"XCRS", sizeof(struct kvm_xcrs), false},
	[VCPU_REC_LAPIC] = {"LAPIC", sizeof(struct kvm_lapic_state), false},
	[VCPU_REC_DEBUGREGS] = {"DEBUGREGS", sizeof(struct kvm_debugregs),
				false},
	[VCPU_REC_CPUID] = {"CPUID", sizeof(struct kvm_cpuid2), true},
	[VCPU_REC_TSC_KHZ] = {"TSC_KHZ", sizeof(struct vmstate_tsc), false},
	[VCPU_REC_MSRS] = {"MSRS", sizeof(struct kvm_msrs), true},
	[VCPU_REC_VCPU_EVENTS] = {"VCPU_EVENTS", sizeof(struct kvm_vcpu_events),
				  false},
};

struct vcpu_ioc {
	unsigned long get, set;
	const char *get_name, *set_name;
};

/* The ioctl numbers and their names, for error messages. */
#define VCPU_IOC(g, s) g, s, #g, #s

/* The ioctls of the records that are one fixed struct. */
static const struct vcpu_ioc vcpu_iocs[VCPU_REC_MAX] = {
	[VCPU_REC_MP_STATE] = {VCPU_IOC(KVM_GET_MP_STATE, KVM_SET_MP_STATE)},
	[VCPU_REC_REGS] = {VCPU_IOC(KVM_GET_REGS, KVM_SET_REGS)},
	[VCPU_REC_SREGS] = {VCPU_IOC(KVM_GET_SREGS, KVM_SET_SREGS)},
	[VCPU_REC_XCRS] = {VCPU_IOC(KVM_GET_XCRS, KVM_SET_XCRS)},
	[VCPU_REC_LAPIC] = {VCPU_IOC(KVM_GET_LAPIC, KVM_SET_LAPIC)},
	[VCPU_REC_DEBUGREGS] = {VCPU_IOC(KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS)},
	[VCPU_REC_VCPU_EVENTS] = {VCPU_IOC(KVM_GET_VCPU_EVENTS,
					   KVM_SET_VCPU_EVENTS)},
};

/* Room for any fixed-size vCPU struct, aligned as the kernel wants. */
union vcpu_fixed {
	struct kvm_mp_state mp;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_debugregs dregs;
	struct kvm_vcpu_events events;
};

static int vcpu_ioc_fail(const struct vcpu *v, const char *ioc, char *err,
			 size_t errlen)
{
	int e = errno;

	snprintf(err, errlen, "vcpu%d: %s: %s", v->id, ioc, strerror(e));
	return -e;
}

static int vcpu_nomem(const struct vcpu *v, const char *what, char *err,
		      size_t errlen)
{
	snprintf(err, errlen, "vcpu%d: %s: %s", v->id, what, strerror(ENOMEM));
	return -ENOMEM;
}

static int vcpu_save_fixed(struct vcpu *v, struct proto_rec_writer *w,
			   enum vcpu_rec tag, char *err, size_t errlen)
{
	union vcpu_fixed buf;

	memset(&buf, 0, sizeof(buf));
	if (ioctl(v->fd, vcpu_iocs[tag].get, &buf) < 0)
		return vcpu_ioc_fail(v, vcpu_iocs[tag].get_name, err, errlen);
	proto_rec_put(w, tag, &buf, vcpu_recs[tag].size);
	return 0;
}

static int vcpu_load_fixed(struct vcpu *v, const struct rec_set *set,
			   enum vcpu_rec tag, char *err, size_t errlen)
{
	union vcpu_fixed buf;

	memcpy(&buf, set->data[tag], vcpu_recs[tag].size);
	if (ioctl(v->fd, vcpu_iocs[tag].set, &buf) < 0)
		return vcpu_ioc_fail(v, vcpu_iocs[tag].set_name, err, errlen);
	return 0;
}

/* ---- vCPU: CPUID, XSAVE, TSC frequency ----------------------------------- */

/*
 * KVM_GET_CPUID2 fails with E2BIG while nent is too small, and (measured
 * on this kernel) leaves nent as it was: grow until it fits.
 */
static int vcpu_save_cpuid(struct vcpu *v, struct proto_rec_writer *w,
			   char *err, size_t errlen)
{
	uint32_t nent = v->vm->kvm.cpuid ? v->vm->kvm.cpuid->nent : 64;
	struct kvm_cpuid2 *c = NULL;
	int r;

	for (;;) {
		free(c);
		c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));
		if (!c)
			return vcpu_nomem(v, "KVM_GET_CPUID2", err, errlen);
		c->nent = nent;
		if (ioctl(v->fd, KVM_GET_CPUID2, c) == 0)
			break;
		if (errno != E2BIG || nent >= VMSTATE_MAX_CPUID) {
			r = vcpu_ioc_fail(v, "KVM_GET_CPUID2", err, errlen);
			free(c);
			return r;
		}
		nent = nent * 2 < VMSTATE_MAX_CPUID ? nent * 2
						    : VMSTATE_MAX_CPUID;
	}
	proto_rec_put(w, VCPU_REC_CPUID, c,
		      sizeof(*c) + c->nent * sizeof(c->entries[0]));
	free(c);
	return 0;
}

static int vcpu_check_cpuid(const struct vcpu *v, const struct rec_set *set,
			    char *err, size_t errlen)
{
	uint32_t len = set->len[VCPU_REC_CPUID], nent;
	size_t esz = sizeof(struct kvm_cpuid_entry2);

	memcpy(&nent, set->data[VCPU_REC_CPUID], sizeof(nent));
	if (nent >= 1 && nent <= VMSTATE_MAX_CPUID &&
	    len == sizeof(struct kvm_cpuid2) + nent * esz)
		return 0;
	snprintf(err, errlen,
		 "vcpu%d state: CPUID record of %u bytes holds %u entries",
		 v->id, len, nent);
	return -EPROTO;
}

/* This VM's XSAVE size: 4096, or more when KVM_CAP_XSAVE2 said so. */
static uint32_t vm_xsave_size(const struct vm *vm)
{
	return vm->xsave_size > VMSTATE_XSAVE_MIN ? vm->xsave_size
						  : VMSTATE_XSAVE_MIN;
}

static uint32_t vcpu_xsave_size(const struct vcpu *v)
{
	return vm_xsave_size(v->vm);
}

static int vcpu_save_xsave(struct vcpu *v, struct proto_rec_writer *w,
			   char *err, size_t errlen)
{
	uint32_t size = vcpu_xsave_size(v);
	struct kvm_xsave *x = calloc(1, size);
	const char *ioc = "KVM_GET_XSAVE";
	int r = 0;

	if (!x)
		return vcpu_nomem(v, "KVM_GET_XSAVE", err, errlen);
	if (size > VMSTATE_XSAVE_MIN) {
		ioc = "KVM_GET_XSAVE2";
		r = ioctl(v->fd, KVM_GET_XSAVE2, x);
	} else {
		r = ioctl(v->fd, KVM_GET_XSAVE, x);
	}
	if (r < 0)
		r = vcpu_ioc_fail(v, ioc, err, errlen);
	else
		proto_rec_put(w, VCPU_REC_XSAVE, x, size);
	free(x);
	return r;
}

/* A shorter area (from a host with fewer features) is padded with zeros. */
static int vcpu_check_xsave(const struct vcpu *v, const struct rec_set *set,
			    char *err, size_t errlen)
{
	uint32_t len = set->len[VCPU_REC_XSAVE], max = vcpu_xsave_size(v);

	if (len <= max && len % 4 == 0)
		return 0;
	snprintf(err, errlen,
		 "vcpu%d state: XSAVE record of %u bytes, this KVM takes %u",
		 v->id, len, max);
	return -EPROTO;
}

static int vcpu_load_xsave(struct vcpu *v, const struct rec_set *set, char *err,
			   size_t errlen)
{
	struct kvm_xsave *x = rec_dup(set, VCPU_REC_XSAVE, vcpu_xsave_size(v));
	int r = 0;

	if (!x)
		return vcpu_nomem(v, "KVM_SET_XSAVE", err, errlen);
	if (ioctl(v->fd, KVM_SET_XSAVE, x) < 0)
		r = vcpu_ioc_fail(v, "KVM_SET_XSAVE", err, errlen);
	free(x);
	return r;
}

static int vcpu_save_tsc_khz(struct vcpu *v, struct proto_rec_writer *w,
			     char *err, size_t errlen)
{
	int khz = ioctl(v->fd, KVM_GET_TSC_KHZ, 0);
	struct vmstate_tsc t = {0};

	if (khz <= 0) {
		if (khz == 0)
			errno = EINVAL;
		return vcpu_ioc_fail(v, "KVM_GET_TSC_KHZ", err, errlen);
	}
	t.khz = (uint32_t)khz;
	proto_rec_put(w, VCPU_REC_TSC_KHZ, &t, sizeof(t));
	return 0;
}

/* The guest's TSC must tick at the rate it had: scale it, or refuse. */
static int vcpu_load_tsc_khz(struct vcpu *v, const struct rec_set *set,
			     char *err, size_t errlen)
{
	struct vmstate_tsc t;

	memcpy(&t, set->data[VCPU_REC_TSC_KHZ], sizeof(t));
	return vcpu_tsc_khz_set(v, t.khz, err, errlen);
}

/* ---- vCPU: MSRs ---------------------------------------------------------- */

/* Every MSR KVM saves and restores (read once, at kvm_open). */
static const struct kvm_msr_list *vcpu_msr_list(struct vcpu *v, char *err,
						size_t errlen)
{
	const struct kvm_msr_list *l = v->vm->kvm.msrs;

	if (l->nmsrs <= VMSTATE_MAX_MSRS)
		return l;
	snprintf(err, errlen, "vcpu%d: KVM lists %u MSRs, more than %d", v->id,
		 l->nmsrs, VMSTATE_MAX_MSRS);
	return NULL;
}

static struct kvm_msrs *msrs_alloc(uint32_t n)
{
	return calloc(1, sizeof(struct kvm_msrs) +
				 n * sizeof(struct kvm_msr_entry));
}

/*
 * KVM_GET_MSRS returns how many MSRs it read, stopping at the first one it
 * cannot read: drop that one and go on from the next. m gets the rest.
 */
static int vcpu_read_msrs(struct vcpu *v, const struct kvm_msr_list *l,
			  struct kvm_msrs *m, struct kvm_msrs *batch, char *err,
			  size_t errlen)
{
	uint32_t pos = 0;
	int r;

	m->nmsrs = 0;
	while (pos < l->nmsrs) {
		batch->nmsrs = l->nmsrs - pos;
		for (uint32_t i = 0; i < batch->nmsrs; i++)
			batch->entries[i] = (struct kvm_msr_entry){
				.index = l->indices[pos + i]};
		r = ioctl(v->fd, KVM_GET_MSRS, batch);
		if (r < 0)
			return vcpu_ioc_fail(v, "KVM_GET_MSRS", err, errlen);
		memcpy(&m->entries[m->nmsrs], batch->entries,
		       r * sizeof(batch->entries[0]));
		m->nmsrs += r;
		pos += r;
		if (pos < l->nmsrs)
			pos++; /* l->indices[pos] is unreadable: skip it */
	}
	return 0;
}

static bool msrs_have(const struct kvm_msrs *m, uint32_t index)
{
	for (uint32_t i = 0; i < m->nmsrs; i++)
		if (m->entries[i].index == index)
			return true;
	return false;
}

#define MSR_IA32_TSC 0x10

static int vcpu_save_msrs(struct vcpu *v, struct proto_rec_writer *w, char *err,
			  size_t errlen)
{
	const struct kvm_msr_list *l = vcpu_msr_list(v, err, errlen);
	struct kvm_msrs *m = NULL, *batch = NULL;
	int r = -ENOMEM;

	if (!l)
		return -EIO;
	m = msrs_alloc(l->nmsrs);
	batch = msrs_alloc(l->nmsrs);
	if (m && batch)
		r = vcpu_read_msrs(v, l, m, batch, err, errlen);
	else
		vcpu_nomem(v, "KVM_GET_MSRS", err, errlen);
	/* Where KVM honours TSC writes, the TSC goes on only through it. */
	if (!r && !msrs_have(m, MSR_IA32_TSC)) {
		snprintf(err, errlen, "vcpu%d: KVM_GET_MSRS: cannot read TSC",
			 v->id);
		r = -EIO;
	}
	if (!r)
		proto_rec_put(w, VCPU_REC_MSRS, m,
			      sizeof(*m) + m->nmsrs * sizeof(m->entries[0]));
	free(batch);
	free(m);
	return r;
}

static int vcpu_check_msrs(const struct vcpu *v, const struct rec_set *set,
			   char *err, size_t errlen)
{
	uint32_t len = set->len[VCPU_REC_MSRS], n;
	size_t esz = sizeof(struct kvm_msr_entry);

	memcpy(&n, set->data[VCPU_REC_MSRS], sizeof(n));
	if (n <= VMSTATE_MAX_MSRS && len == sizeof(struct kvm_msrs) + n * esz)
		return 0;
	snprintf(err, errlen,
		 "vcpu%d state: MSRS record of %u bytes holds %u MSRs", v->id,
		 len, n);
	return -EPROTO;
}

/*
 * KVM_SET_MSRS returns how many MSRs it set, stopping at the first one it
 * refuses: anything short of all of them is an error naming that MSR.
 * (kvm_pvm, the nested KVM of our machines, accepts MSR_IA32_TSC and
 * MSR_IA32_TSC_ADJUST and ignores both: its guests read the host's TSC,
 * which on one host goes on across a restore, the pause included.)
 * MSR_KVM_SYSTEM_TIME_NEW maps the guest's kvmclock page and writes it at
 * once (version bumped, flags cleared, time kept: measured); KVM writes
 * the time at the vCPU's first entry after KVM_SET_CLOCK (vm_arch_state.c
 * sets the clock after every vCPU). Post-copy's destination takes care
 * that this write does not stand in for the page (migration/dest_switch.c).
 */
static int vcpu_load_msrs(struct vcpu *v, const struct rec_set *set, char *err,
			  size_t errlen)
{
	struct kvm_msrs *m =
		rec_dup(set, VCPU_REC_MSRS, set->len[VCPU_REC_MSRS]);
	int r;

	if (!m)
		return vcpu_nomem(v, "KVM_SET_MSRS", err, errlen);
	r = ioctl(v->fd, KVM_SET_MSRS, m);
	if (r < 0) {
		r = vcpu_ioc_fail(v, "KVM_SET_MSRS", err, errlen);
	} else if ((uint32_t)r < m->nmsrs) {
		snprintf(err, errlen,
			 "vcpu%d: KVM_SET_MSRS set %d of %u MSRs: MSR 0x%x "
			 "refused",
			 v->id, r, m->nmsrs, m->entries[r].index);
		r = -EINVAL;
	} else {
		r = 0;
	}
	free(m);
	return r;
}

/*
 * The bits KVM itself rewrites from the vCPU's state whenever that state
 * changes (kvm_update_cpuid_runtime): OSXSAVE (CR4), APIC (APIC base),
 * MWAIT (MISC_ENABLE), OSPKE (CR4) and the XSAVE area sizes (XCR0, XSS).
 * Clear them in e, so that two tables can be compared without them.
 */
static void cpuid_runtime_clear(struct kvm_cpuid_entry2 *e)
{
	if (e->function == 1) {
		e->ecx &= ~((1U << 27) | (1U << 3));
		e->edx &= ~(1U << 9);
	} else if (e->function == 7 && e->index == 0) {
		e->ecx &= ~(1U << 4);
	} else if (e->function == 0xd && e->index <= 1) {
		e->ebx = 0;
	}
}

/* a and b hold the same entries but for the bits KVM rewrites. */
static bool cpuid_same(const struct kvm_cpuid2 *a, const struct kvm_cpuid2 *b)
{
	if (a->nent != b->nent)
		return false;
	for (uint32_t i = 0; i < a->nent; i++) {
		struct kvm_cpuid_entry2 x = a->entries[i], y = b->entries[i];

		cpuid_runtime_clear(&x);
		cpuid_runtime_clear(&y);
		if (memcmp(&x, &y, sizeof(x)))
			return false;
	}
	return true;
}

/*
 * KVM_SET_CPUID2 takes ~0.1 ms here, a tenth of a migration's downtime.
 * When the vCPU already has the same table but for the bits KVM rewrites
 * from CR4, XCR0, XSS, the APIC base and MISC_ENABLE (a destination made
 * with the source's configuration on the same kind of host), the load
 * skips it: the SREGS, XCRS and MSRS that follow set those bits as the
 * source had them. Any other difference is loaded.
 */
static int vcpu_load_cpuid(struct vcpu *v, const struct rec_set *set, char *err,
			   size_t errlen)
{
	struct kvm_cpuid2 *c =
		rec_dup(set, VCPU_REC_CPUID, set->len[VCPU_REC_CPUID]);

	if (!c)
		return vcpu_nomem(v, "KVM_SET_CPUID2", err, errlen);
	if (v->cpuid && cpuid_same(v->cpuid, c)) {
		free(c);
		return 0;
	}
	if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0) {
		int r = vcpu_ioc_fail(v, "KVM_SET_CPUID2", err, errlen);

		free(c);
		return r;
	}
	free(v->cpuid);
	v->cpuid = c;
	return 0;
}

/* ---- vCPU: save and load ------------------------------------------------- */

static int vcpu_save_steps(struct vcpu *v, struct proto_rec_writer *w,
			   char *err, size_t errlen)
{
	static const enum vcpu_rec fixed[] = {
		VCPU_REC_REGS,	VCPU_REC_SREGS,	    VCPU_REC_XCRS,
		VCPU_REC_LAPIC, VCPU_REC_DEBUGREGS,
	};
	int r;

	rec_put_hdr(w, VCPU_REC_HDR, VMSTATE_VCPU_VERSION, (uint32_t)v->id);
	/*
	 * MP_STATE before REGS/SREGS (KVM API): KVM_GET_MP_STATE first takes
	 * pending INIT/SIPI events into the vCPU, which may change them.
	 */
	r = vcpu_save_fixed(v, w, VCPU_REC_MP_STATE, err, errlen);
	for (size_t i = 0; !r && i < sizeof(fixed) / sizeof(fixed[0]); i++)
		r = vcpu_save_fixed(v, w, fixed[i], err, errlen);
	if (!r)
		r = vcpu_save_xsave(v, w, err, errlen);
	if (!r)
		r = vcpu_save_cpuid(v, w, err, errlen);
	if (!r)
		r = vcpu_save_tsc_khz(v, w, err, errlen);
	if (!r)
		r = vcpu_save_msrs(v, w, err, errlen);
	/*
	 * VCPU_EVENTS last: the other GETs may still move pending events
	 * (MP_STATE, LAPIC), and it is what the next entry injects.
	 */
	if (!r)
		r = vcpu_save_fixed(v, w, VCPU_REC_VCPU_EVENTS, err, errlen);
	return r;
}

int vcpu_state_save(struct vcpu *v, struct proto_rec_writer *w, char *err,
		    size_t errlen)
{
	char what[32];
	int r = vcpu_save_steps(v, w, err, errlen);

	if (r)
		return r;
	snprintf(what, sizeof(what), "vcpu%d", v->id);
	return rec_writer_check(what, w, err, errlen);
}

/* Each check of vcpu_check() at its limit: XSAVE, CPUID and MSRs full. */
size_t vcpu_state_max(const struct vm *vm)
{
	uint32_t var[VCPU_REC_MAX] = {
		[VCPU_REC_XSAVE] = vm_xsave_size(vm),
		[VCPU_REC_CPUID] =
			sizeof(struct kvm_cpuid2) +
			VMSTATE_MAX_CPUID * sizeof(struct kvm_cpuid_entry2),
		[VCPU_REC_MSRS] =
			sizeof(struct kvm_msrs) +
			VMSTATE_MAX_MSRS * sizeof(struct kvm_msr_entry),
	};

	return rec_blob_max(vcpu_recs, VCPU_REC_MAX, var);
}

static int vcpu_check(const struct vcpu *v, const uint8_t *blob, size_t len,
		      struct rec_set *set, char *err, size_t errlen)
{
	char what[32];
	int r;

	snprintf(what, sizeof(what), "vcpu%d state", v->id);
	r = rec_parse(what, vcpu_recs, VCPU_REC_MAX, blob, len, set, err,
		      errlen);
	if (!r)
		r = rec_check_hdr(what, set, VCPU_REC_HDR, VMSTATE_VCPU_VERSION,
				  (uint32_t)v->id, err, errlen);
	if (!r)
		r = vcpu_check_cpuid(v, set, err, errlen);
	if (!r)
		r = vcpu_check_xsave(v, set, err, errlen);
	if (!r)
		r = vcpu_check_msrs(v, set, err, errlen);
	return r;
}

static int vcpu_restore(struct vcpu *v, const struct rec_set *set, char *err,
			size_t errlen)
{
	int r;

	/*
	 * CPUID first: KVM checks XCR0, the XSAVE features, MSRs and the
	 * LAPIC against the guest's CPUID, and sizes its state from it.
	 */
	r = vcpu_load_cpuid(v, set, err, errlen);
	/* The TSC rate before MSR_IA32_TSC, which KVM scales by it. */
	if (!r)
		r = vcpu_load_tsc_khz(v, set, err, errlen);
	/*
	 * SREGS before LAPIC: SREGS carries the APIC base (enable, x2APIC
	 * mode) that decides how KVM_SET_LAPIC reads the registers; and
	 * CR0/CR4/EFER come before the state that depends on the mode.
	 */
	if (!r)
		r = vcpu_load_fixed(v, set, VCPU_REC_SREGS, err, errlen);
	/* REGS before VCPU_EVENTS: KVM_SET_REGS drops a pending exception. */
	if (!r)
		r = vcpu_load_fixed(v, set, VCPU_REC_REGS, err, errlen);
	if (!r)
		r = vcpu_load_xsave(v, set, err, errlen);
	if (!r)
		r = vcpu_load_fixed(v, set, VCPU_REC_XCRS, err, errlen);
	if (!r)
		r = vcpu_load_fixed(v, set, VCPU_REC_DEBUGREGS, err, errlen);
	/*
	 * LAPIC before MSRS: MSR_IA32_TSC_DEADLINE only arms a LAPIC whose
	 * timer is already in TSC-deadline mode.
	 */
	if (!r)
		r = vcpu_load_fixed(v, set, VCPU_REC_LAPIC, err, errlen);
	if (!r)
		r = vcpu_load_msrs(v, set, err, errlen);
	if (!r)
		r = vcpu_load_fixed(v, set, VCPU_REC_VCPU_EVENTS, err, errlen);
	/*
	 * MP_STATE last: KVM_SET_LAPIC and KVM_SET_VCPU_EVENTS (latched INIT,
	 * SIPI vector) feed what the vCPU does next; the saved run state
	 * (runnable, halted, waiting for SIPI) has the final word.
	 */
	if (!r)
		r = vcpu_load_fixed(v, set, VCPU_REC_MP_STATE, err, errlen);
	return r;
}

int vcpu_state_load(struct vcpu *v, const uint8_t *blob, size_t len, char *err,
		    size_t errlen)
{
	struct rec_set set;
	int r = vcpu_check(v, blob, len, &set, err, errlen);

	if (r)
		return r;
	return vcpu_restore(v, &set, err, errlen);
}

/*
 * The paravirtual MSRs whose value is the address of a guest area KVM
 * writes itself (bit 0: enabled): kvmclock (both indices), steal time,
 * async page faults, PV EOI.
 */
static const uint32_t vcpu_pv_area_msrs[] = {
	0x4b564d01, /* MSR_KVM_SYSTEM_TIME_NEW */
	0x00000012, /* MSR_KVM_SYSTEM_TIME */
	0x4b564d03, /* MSR_KVM_STEAL_TIME */
	0x4b564d02, /* MSR_KVM_ASYNC_PF_EN */
	0x4b564d04, /* MSR_KVM_PV_EOI_EN */
};

int vcpu_state_guest_pages(const uint8_t *blob, size_t len, uint64_t *gpa,
			   int max)
{
	const struct kvm_msrs *m;
	struct rec_set set;
	char err[128];
	int n = 0;

	if (rec_parse("vcpu state", vcpu_recs, VCPU_REC_MAX, blob, len, &set,
		      err, sizeof(err)))
		return -EPROTO;
	m = rec_dup(&set, VCPU_REC_MSRS, set.len[VCPU_REC_MSRS]);
	if (!m)
		return -ENOMEM;
	/* The entries the record holds, whatever its count says. */
	uint64_t cap =
		(set.len[VCPU_REC_MSRS] - sizeof(*m)) / sizeof(m->entries[0]);
	uint32_t nr = m->nmsrs < cap ? m->nmsrs : (uint32_t)cap;
	const size_t nr_pv =
		sizeof(vcpu_pv_area_msrs) / sizeof(vcpu_pv_area_msrs[0]);

	for (uint32_t i = 0; i < nr; i++)
		for (size_t k = 0; k < nr_pv; k++)
			if (m->entries[i].index == vcpu_pv_area_msrs[k] &&
			    (m->entries[i].data & 1) && n < max)
				gpa[n++] = m->entries[i].data & ~0xfffULL;
	free((void *)m);
	return n;
}
