/* SPDX-License-Identifier: MIT */
/*
 * vmstate.c - save and restore a paused VM: each vCPU, the VM-wide KVM
 * state and each device, as blobs of proto records. A vCPU or VM record
 * holds the raw bytes of the kernel struct its ioctl takes (the KVM ABI is
 * fixed); a device record holds the device's own fixed-layout state; the
 * first record of every blob is a header with its version. Loading parses
 * and checks the whole blob (unknown tags, sizes, duplicates, missing
 * records, version, counts) before the first ioctl, then restores in the
 * order KVM requires, each rule written as a comment above the code that
 * obeys it. Runs on the thread that paused the VM (every vCPU parked, so
 * vCPU ioctls from here are safe) or on a VM whose vCPUs never ran.
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

/*
 * A blob is a run of records {u32 tag, u32 len, len bytes padded to 8}
 * (proto/proto.h), in any order on load, each tag exactly once.
 *
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

/* VM blob, VMSTATE_VM_VERSION: every record mandatory. */
enum vm_rec {
	VM_REC_HDR = 1,	       /* struct vmstate_hdr: version, id 0 */
	VM_REC_PIC_MASTER = 2, /* struct kvm_irqchip, KVM_IRQCHIP_PIC_MASTER */
	VM_REC_PIC_SLAVE = 3,  /* struct kvm_irqchip, KVM_IRQCHIP_PIC_SLAVE */
	VM_REC_IOAPIC = 4,     /* struct kvm_irqchip, KVM_IRQCHIP_IOAPIC */
	VM_REC_PIT2 = 5,       /* struct kvm_pit_state2 */
	VM_REC_CLOCK = 6,      /* struct kvm_clock_data, as KVM_GET_CLOCK */
	VM_REC_MAX
};

/* Device blob, the device's version: both records mandatory. */
enum dev_rec {
	DEV_REC_HDR = 1,   /* struct vmstate_hdr: version, id 0 */
	DEV_REC_STATE = 2, /* struct serial_state, testdev_state, pt_state */
	DEV_REC_MAX
};

#define REC_MAX_TAGS 16

_Static_assert(VCPU_REC_MAX <= REC_MAX_TAGS && VM_REC_MAX <= REC_MAX_TAGS &&
		       DEV_REC_MAX <= REC_MAX_TAGS,
	       "struct rec_set is too small");

struct vmstate_hdr {
	uint32_t version;
	uint32_t id;
};

struct vmstate_tsc {
	uint32_t khz;
	uint32_t pad;
};

/* Upper bounds that keep a corrupt count from sizing an allocation. */
#define VMSTATE_MAX_CPUID 256 /* KVM_MAX_CPUID_ENTRIES */
#define VMSTATE_MAX_MSRS  1024
#define VMSTATE_XSAVE_MIN ((uint32_t)sizeof(struct kvm_xsave))

/* ---- records: parse and check a whole blob ------------------------------- */

struct rec_type {
	const char *name;
	uint32_t size; /* exact size; with var, the minimum */
	bool var;      /* header + entries: the loader checks the count */
};

/* A parsed blob: the record of each tag (all of them are mandatory). */
struct rec_set {
	const uint8_t *data[REC_MAX_TAGS];
	uint32_t len[REC_MAX_TAGS];
	bool seen[REC_MAX_TAGS];
};

static int rec_check_one(const char *what, const struct rec_type *types,
			 uint32_t ntypes, const struct rec_set *set,
			 uint32_t tag, uint32_t len, size_t off, char *err,
			 size_t errlen)
{
	const struct rec_type *t;

	if (tag == 0 || tag >= ntypes || !types[tag].name) {
		snprintf(err, errlen, "%s: unknown record tag %u at offset %zu",
			 what, tag, off);
		return -EPROTO;
	}
	t = &types[tag];
	if (set->seen[tag]) {
		snprintf(err, errlen, "%s: duplicate %s record at offset %zu",
			 what, t->name, off);
		return -EPROTO;
	}
	if (t->var ? len < t->size : len != t->size) {
		snprintf(err, errlen, "%s: %s record of %u bytes, want %s%u",
			 what, t->name, len, t->var ? "at least " : "",
			 t->size);
		return -EPROTO;
	}
	return 0;
}

static int rec_parse(const char *what, const struct rec_type *types,
		     uint32_t ntypes, const uint8_t *blob, size_t len,
		     struct rec_set *set, char *err, size_t errlen)
{
	struct proto_rec_reader rd;
	const uint8_t *data;
	uint32_t tag, dlen;
	size_t off = 0;
	int r;

	memset(set, 0, sizeof(*set));
	proto_rec_reader_init(&rd, blob, len);
	while ((r = proto_rec_next(&rd, &tag, &data, &dlen)) > 0) {
		r = rec_check_one(what, types, ntypes, set, tag, dlen, off, err,
				  errlen);
		if (r)
			return r;
		set->seen[tag] = true;
		set->data[tag] = data;
		set->len[tag] = dlen;
		off = rd.off;
	}
	if (r < 0) {
		snprintf(err, errlen,
			 "%s: truncated record at offset %zu of %zu", what, off,
			 len);
		return -EPROTO;
	}
	for (tag = 1; tag < ntypes; tag++) {
		if (types[tag].name && !set->seen[tag]) {
			snprintf(err, errlen, "%s: no %s record", what,
				 types[tag].name);
			return -EPROTO;
		}
	}
	return 0;
}

static int rec_check_hdr(const char *what, const struct rec_set *set,
			 uint32_t tag, uint32_t version, uint32_t id, char *err,
			 size_t errlen)
{
	struct vmstate_hdr h;

	memcpy(&h, set->data[tag], sizeof(h));
	if (h.version != version) {
		snprintf(err, errlen, "%s: version %u, this VMM reads %u", what,
			 h.version, version);
		return -EPROTO;
	}
	if (h.id != id) {
		snprintf(err, errlen, "%s: the blob is for id %u, not %u", what,
			 h.id, id);
		return -EPROTO;
	}
	return 0;
}

static void rec_put_hdr(struct proto_rec_writer *w, uint32_t tag,
			uint32_t version, uint32_t id)
{
	struct vmstate_hdr h = {.version = version, .id = id};

	proto_rec_put(w, tag, &h, sizeof(h));
}

/* A copy of a record in aligned memory, for the kernel (free() it). */
static void *rec_dup(const struct rec_set *set, uint32_t tag, size_t size)
{
	void *p = calloc(1, size);

	if (p)
		memcpy(p, set->data[tag], set->len[tag]);
	return p;
}

static int writer_check(const char *what, const struct proto_rec_writer *w,
			char *err, size_t errlen)
{
	if (!w->overflow)
		return 0;
	snprintf(err, errlen, "%s: state does not fit in %zu bytes", what,
		 w->cap);
	return -ENOSPC;
}

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

/* This VM's XSAVE size: 4096, or more when KVM_CAP_XSAVE2 says so. */
static uint32_t vcpu_xsave_size(const struct vcpu *v)
{
	int r = ioctl(v->vm->fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

	return r > (int)VMSTATE_XSAVE_MIN ? (uint32_t)r : VMSTATE_XSAVE_MIN;
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
	int here = ioctl(v->fd, KVM_GET_TSC_KHZ, 0), e;
	struct vmstate_tsc t;

	memcpy(&t, set->data[VCPU_REC_TSC_KHZ], sizeof(t));
	if (here > 0 && (uint32_t)here == t.khz)
		return 0;
	if (ioctl(v->fd, KVM_SET_TSC_KHZ, (unsigned long)t.khz) == 0)
		return 0;
	e = errno;
	snprintf(err, errlen,
		 "vcpu%d: KVM_SET_TSC_KHZ %u (this host: %d kHz): %s", v->id,
		 t.khz, here, strerror(e));
	return -e;
}

/* ---- vCPU: MSRs ---------------------------------------------------------- */

/* KVM_GET_MSR_INDEX_LIST on /dev/kvm: every MSR KVM saves and restores. */
static struct kvm_msr_list *vcpu_msr_list(struct vcpu *v, char *err,
					  size_t errlen)
{
	struct kvm_msr_list probe = {.nmsrs = 0}, *l;
	int fd = v->vm->kvm.fd;

	if (ioctl(fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG) {
		vcpu_ioc_fail(v, "KVM_GET_MSR_INDEX_LIST", err, errlen);
		return NULL;
	}
	if (probe.nmsrs > VMSTATE_MAX_MSRS) {
		snprintf(err, errlen, "vcpu%d: KVM lists %u MSRs, more than %d",
			 v->id, probe.nmsrs, VMSTATE_MAX_MSRS);
		return NULL;
	}
	l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(l->indices[0]));
	if (!l) {
		vcpu_nomem(v, "KVM_GET_MSR_INDEX_LIST", err, errlen);
		return NULL;
	}
	l->nmsrs = probe.nmsrs;
	if (ioctl(fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		vcpu_ioc_fail(v, "KVM_GET_MSR_INDEX_LIST", err, errlen);
		free(l);
		return NULL;
	}
	return l;
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
	struct kvm_msr_list *l = vcpu_msr_list(v, err, errlen);
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
	free(l);
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

static int vcpu_load_cpuid(struct vcpu *v, const struct rec_set *set, char *err,
			   size_t errlen)
{
	struct kvm_cpuid2 *c =
		rec_dup(set, VCPU_REC_CPUID, set->len[VCPU_REC_CPUID]);
	int r = 0;

	if (!c)
		return vcpu_nomem(v, "KVM_SET_CPUID2", err, errlen);
	if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0)
		r = vcpu_ioc_fail(v, "KVM_SET_CPUID2", err, errlen);
	free(c);
	return r;
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
	return writer_check(what, w, err, errlen);
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

/* ---- VM: irqchip, PIT, clock --------------------------------------------- */

static const struct rec_type vm_recs[VM_REC_MAX] = {
	[VM_REC_HDR] = {"HDR", sizeof(struct vmstate_hdr), false},
	[VM_REC_PIC_MASTER] = {"PIC_MASTER", sizeof(struct kvm_irqchip), false},
	[VM_REC_PIC_SLAVE] = {"PIC_SLAVE", sizeof(struct kvm_irqchip), false},
	[VM_REC_IOAPIC] = {"IOAPIC", sizeof(struct kvm_irqchip), false},
	[VM_REC_PIT2] = {"PIT2", sizeof(struct kvm_pit_state2), false},
	[VM_REC_CLOCK] = {"CLOCK", sizeof(struct kvm_clock_data), false},
};

static const uint32_t vm_chip_ids[VM_REC_MAX] = {
	[VM_REC_PIC_MASTER] = KVM_IRQCHIP_PIC_MASTER,
	[VM_REC_PIC_SLAVE] = KVM_IRQCHIP_PIC_SLAVE,
	[VM_REC_IOAPIC] = KVM_IRQCHIP_IOAPIC,
};

static int vm_ioc_fail(const char *ioc, const char *what, char *err,
		       size_t errlen)
{
	int e = errno;

	snprintf(err, errlen, "vm: %s%s: %s", ioc, what, strerror(e));
	return -e;
}

static int vm_save_irqchip(struct vm *vm, struct proto_rec_writer *w,
			   enum vm_rec tag, char *err, size_t errlen)
{
	struct kvm_irqchip c;
	char what[32];

	memset(&c, 0, sizeof(c));
	c.chip_id = vm_chip_ids[tag];
	if (ioctl(vm->fd, KVM_GET_IRQCHIP, &c) < 0) {
		snprintf(what, sizeof(what), " (%s)", vm_recs[tag].name);
		return vm_ioc_fail("KVM_GET_IRQCHIP", what, err, errlen);
	}
	proto_rec_put(w, tag, &c, sizeof(c));
	return 0;
}

static int vm_save_pit_clock(struct vm *vm, struct proto_rec_writer *w,
			     char *err, size_t errlen)
{
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;

	memset(&pit, 0, sizeof(pit));
	memset(&clock, 0, sizeof(clock));
	if (ioctl(vm->fd, KVM_GET_PIT2, &pit) < 0)
		return vm_ioc_fail("KVM_GET_PIT2", "", err, errlen);
	proto_rec_put(w, VM_REC_PIT2, &pit, sizeof(pit));
	/* Once, here, with every vCPU stopped: the time the guest stopped. */
	if (ioctl(vm->fd, KVM_GET_CLOCK, &clock) < 0)
		return vm_ioc_fail("KVM_GET_CLOCK", "", err, errlen);
	proto_rec_put(w, VM_REC_CLOCK, &clock, sizeof(clock));
	return 0;
}

int vm_arch_state_save(struct vm *vm, struct proto_rec_writer *w, char *err,
		       size_t errlen)
{
	int r = 0;

	rec_put_hdr(w, VM_REC_HDR, VMSTATE_VM_VERSION, 0);
	for (int tag = VM_REC_PIC_MASTER; !r && tag <= VM_REC_IOAPIC; tag++)
		r = vm_save_irqchip(vm, w, tag, err, errlen);
	if (!r)
		r = vm_save_pit_clock(vm, w, err, errlen);
	if (!r)
		r = writer_check("vm", w, err, errlen);
	return r;
}

static int vm_check(const uint8_t *blob, size_t len, struct rec_set *set,
		    char *err, size_t errlen)
{
	struct kvm_irqchip c;
	int r;

	r = rec_parse("vm state", vm_recs, VM_REC_MAX, blob, len, set, err,
		      errlen);
	if (!r)
		r = rec_check_hdr("vm state", set, VM_REC_HDR,
				  VMSTATE_VM_VERSION, 0, err, errlen);
	for (int tag = VM_REC_PIC_MASTER; !r && tag <= VM_REC_IOAPIC; tag++) {
		memcpy(&c, set->data[tag], sizeof(c));
		if (c.chip_id == vm_chip_ids[tag])
			continue;
		snprintf(err, errlen, "vm state: %s record holds chip id %u",
			 vm_recs[tag].name, c.chip_id);
		r = -EPROTO;
	}
	return r;
}

static int vm_load_irqchips(struct vm *vm, const struct rec_set *set, char *err,
			    size_t errlen)
{
	struct kvm_irqchip c;
	char what[32];

	for (int tag = VM_REC_PIC_MASTER; tag <= VM_REC_IOAPIC; tag++) {
		memcpy(&c, set->data[tag], sizeof(c));
		if (ioctl(vm->fd, KVM_SET_IRQCHIP, &c) == 0)
			continue;
		snprintf(what, sizeof(what), " (%s)", vm_recs[tag].name);
		return vm_ioc_fail("KVM_SET_IRQCHIP", what, err, errlen);
	}
	return 0;
}

static int vm_load_pit(struct vm *vm, const struct rec_set *set, char *err,
		       size_t errlen)
{
	struct kvm_pit_state2 pit;

	memcpy(&pit, set->data[VM_REC_PIT2], sizeof(pit));
	if (ioctl(vm->fd, KVM_SET_PIT2, &pit) < 0)
		return vm_ioc_fail("KVM_SET_PIT2", "", err, errlen);
	return 0;
}

/*
 * KVM_SET_CLOCK with only `clock` and flags 0: the guest's kvmclock goes
 * on from the value it had at pause, as its TSC does (MSR_IA32_TSC is
 * restored as saved). KVM_CLOCK_REALTIME would add the wall time spent
 * paused to one clock and not the other; kernels before 5.16 refuse any
 * flag; and KVM_GET_CLOCK here (nested, no master clock) returns flags 0
 * with no realtime anyway. The other fields are saved for the record.
 */
static int vm_load_clock(struct vm *vm, const struct rec_set *set, char *err,
			 size_t errlen)
{
	struct kvm_clock_data saved, clock;

	memcpy(&saved, set->data[VM_REC_CLOCK], sizeof(saved));
	memset(&clock, 0, sizeof(clock));
	clock.clock = saved.clock;
	if (ioctl(vm->fd, KVM_SET_CLOCK, &clock) < 0)
		return vm_ioc_fail("KVM_SET_CLOCK", "", err, errlen);
	return 0;
}

int vm_arch_state_load(struct vm *vm, const uint8_t *blob, size_t len,
		       char *err, size_t errlen)
{
	struct rec_set set;
	int r = vm_check(blob, len, &set, err, errlen);

	if (r)
		return r;
	/*
	 * The irqchips before the PIT: KVM_SET_PIT2 re-arms the PIT timer,
	 * whose output goes into the PIC and IOAPIC restored here first.
	 */
	r = vm_load_irqchips(vm, &set, err, errlen);
	if (!r)
		r = vm_load_pit(vm, &set, err, errlen);
	/* The clock last: kvmclock runs from the moment it is set. */
	if (!r)
		r = vm_load_clock(vm, &set, err, errlen);
	return r;
}

/* ---- devices ------------------------------------------------------------- */

static int dev_put(struct proto_rec_writer *w, uint32_t version, const void *st,
		   uint32_t size)
{
	rec_put_hdr(w, DEV_REC_HDR, version, 0);
	proto_rec_put(w, DEV_REC_STATE, st, size);
	return w->overflow ? -ENOSPC : 0;
}

/* Check a device blob and copy its state record into st (size bytes). */
static int dev_parse(const char *name, uint32_t version, const uint8_t *blob,
		     size_t len, void *st, uint32_t size, char *err,
		     size_t errlen)
{
	const struct rec_type types[DEV_REC_MAX] = {
		[DEV_REC_HDR] = {"HDR", sizeof(struct vmstate_hdr), false},
		[DEV_REC_STATE] = {"STATE", size, false},
	};
	struct rec_set set;
	char what[48];
	int r;

	snprintf(what, sizeof(what), "%s state", name);
	r = rec_parse(what, types, DEV_REC_MAX, blob, len, &set, err, errlen);
	if (!r)
		r = rec_check_hdr(what, &set, DEV_REC_HDR, version, 0, err,
				  errlen);
	if (!r)
		memcpy(st, set.data[DEV_REC_STATE], size);
	return r;
}

static int dev_serial_save(void *dev, struct proto_rec_writer *w)
{
	struct serial_state st;

	serial_save(dev, &st);
	return dev_put(w, SERIAL_STATE_VERSION, &st, sizeof(st));
}

static int dev_serial_load(void *dev, const uint8_t *blob, size_t len,
			   char *err, size_t errlen)
{
	struct serial_state st;
	int r = dev_parse("serial-com1", SERIAL_STATE_VERSION, blob, len, &st,
			  sizeof(st), err, errlen);

	return r ? r : serial_load(dev, &st, err, errlen);
}

static int dev_testdev_save(void *dev, struct proto_rec_writer *w)
{
	struct testdev_state st;

	testdev_save(dev, &st);
	return dev_put(w, TESTDEV_STATE_VERSION, &st, sizeof(st));
}

static int dev_testdev_load(void *dev, const uint8_t *blob, size_t len,
			    char *err, size_t errlen)
{
	struct testdev_state st;
	int r = dev_parse("testdev", TESTDEV_STATE_VERSION, blob, len, &st,
			  sizeof(st), err, errlen);

	return r ? r : testdev_load(dev, &st, err, errlen);
}

/* The pt state record plus the blob's header and record framing. */
_Static_assert(sizeof(struct pt_state) + 64 <= VMSTATE_BLOB_MAX,
	       "struct pt_state does not fit in a device blob");

/*
 * pt0: struct pt_state is ~33 KiB, so on the heap. pt_save refuses
 * (-EBUSY) unless the driver has quiesced the device; the migration code
 * quiesces first and reports, so the reason is not printed here.
 */
static int dev_pt_save(void *dev, struct proto_rec_writer *w)
{
	struct pt_state *st = malloc(sizeof(*st));
	char err[256];
	int r;

	if (!st)
		return -ENOMEM;
	r = pt_save(dev, st, err, sizeof(err));
	if (!r)
		r = dev_put(w, PT_STATE_VERSION, st, sizeof(*st));
	free(st);
	return r;
}

static int dev_pt_load(void *dev, const uint8_t *blob, size_t len, char *err,
		       size_t errlen)
{
	struct pt_state *st = malloc(sizeof(*st));
	int r;

	if (!st) {
		snprintf(err, errlen, "pt0 state: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	r = dev_parse("pt0", PT_STATE_VERSION, blob, len, st, sizeof(*st), err,
		      errlen);
	if (!r)
		r = pt_load(dev, st, err, errlen);
	free(st);
	return r;
}

/*
 * Both sides list the devices in this order and match them by index (the
 * HELLO compares the lists by name): optional devices go last.
 */
int vm_devices(struct vm *vm, struct vm_device *out, int max)
{
	const struct vm_device all[] = {
		{"serial-com1", SERIAL_STATE_VERSION, dev_serial_save,
		 dev_serial_load, &vm->com1},
		{"testdev", TESTDEV_STATE_VERSION, dev_testdev_save,
		 dev_testdev_load, &vm->testdev},
		{"pt0", PT_STATE_VERSION, dev_pt_save, dev_pt_load, &vm->pt},
	};
	int n = (int)(sizeof(all) / sizeof(all[0]));

	if (!vm->pt_on)
		n--; /* pt0 is last */
	if (n > max)
		n = max < 0 ? 0 : max;
	for (int i = 0; i < n; i++)
		out[i] = all[i];
	return n;
}
