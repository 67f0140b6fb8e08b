/* SPDX-License-Identifier: MIT */
/*
 * hello.c - the handshake. The source sends HELLO: protocol version, the
 * capabilities it offers, and the VM's shape (page size, RAM size and
 * regions, vCPU count, CPUID table, device list with state versions). The
 * destination decodes it, compares it with its own VM and either answers
 * HELLO_ACK with the capabilities both sides have, or ERROR with the first
 * difference in words a user can act on. The version comes first and is
 * the only field whose place no future version may move: a HELLO of
 * another version is decoded no further, so that the comparison refuses it
 * by its version instead of failing on a layout it cannot know.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/page.h"
#include "proto/wire.h"

#define HELLO_FIXED 28 /* version, caps, page_size, mem_size, nr_regions */
#define REGION_SIZE 16
#define CPUID_SIZE  28
#define DEVICE_SIZE (PROTO_NAME_MAX + 4)

_Static_assert(PROTO_HELLO_MAX_FRAME ==
		       PROTO_HDR_SIZE + HELLO_FIXED +
			       PROTO_MAX_REGIONS * REGION_SIZE + 8 +
			       PROTO_MAX_CPUID * CPUID_SIZE + 4 +
			       PROTO_MAX_DEVICES * DEVICE_SIZE + 4 + 4,
	       "PROTO_HELLO_MAX_FRAME is out of date");

/* NULL when name is a valid device name, else why not. */
static const char *hello_name_bad(const char *name)
{
	size_t n = strnlen(name, PROTO_NAME_MAX);

	if (n == PROTO_NAME_MAX)
		return "not NUL-terminated";
	if (n == 0)
		return "empty";
	for (size_t i = 0; i < n; i++)
		if (name[i] < 0x20 || name[i] > 0x7e)
			return "has a non-printable byte";
	return NULL;
}

static int hello_check_counts(const struct proto_hello *h, char *err,
			      size_t errlen)
{
	if (h->nr_regions > PROTO_MAX_REGIONS) {
		err_set(err, errlen, "HELLO: nr_regions %u exceeds %d",
			   h->nr_regions, PROTO_MAX_REGIONS);
		return -EPROTO;
	}
	if (h->nr_cpuid > PROTO_MAX_CPUID) {
		err_set(err, errlen, "HELLO: nr_cpuid %u exceeds %d",
			   h->nr_cpuid, PROTO_MAX_CPUID);
		return -EPROTO;
	}
	if (h->nr_devices > PROTO_MAX_DEVICES) {
		err_set(err, errlen, "HELLO: nr_devices %u exceeds %d",
			   h->nr_devices, PROTO_MAX_DEVICES);
		return -EPROTO;
	}
	if (h->nr_vcpus == 0 || h->nr_vcpus > PROTO_MAX_VCPUS) {
		err_set(err, errlen, "HELLO: nr_vcpus %u not in 1..%d",
			   h->nr_vcpus, PROTO_MAX_VCPUS);
		return -EPROTO;
	}
	if ((h->caps & PROTO_CAP_TSC) &&
	    (h->tsc_khz == 0 || h->tsc_khz > PROTO_MAX_TSC_KHZ)) {
		err_set(err, errlen, "HELLO: tsc_khz %u not in 1..%u",
			h->tsc_khz, PROTO_MAX_TSC_KHZ);
		return -EPROTO;
	}
	return 0;
}

static int hello_check_region(const struct proto_region *r, uint32_t i,
			      char *err, size_t errlen)
{
	const char *bad = NULL;

	if (r->gpa % PAGE_SIZE)
		bad = "gpa not page-aligned";
	else if (r->size == 0)
		bad = "size is zero";
	else if (r->size % PAGE_SIZE)
		bad = "size not page-aligned";
	else if (r->size - 1 > UINT64_MAX - r->gpa)
		bad = "end overflows";
	if (!bad)
		return 0;
	err_set(err, errlen,
		   "HELLO: region %u (gpa 0x%" PRIx64 " size 0x%" PRIx64
		   "): %s",
		   i, r->gpa, r->size, bad);
	return -EPROTO;
}

/* Each (function, index) once: the comparison looks leaves up by it. */
static int hello_check_leaves(const struct proto_hello *h, char *err,
			      size_t errlen)
{
	for (uint32_t i = 1; i < h->nr_cpuid; i++) {
		const struct proto_cpuid *e = &h->cpuid[i];

		for (uint32_t j = 0; j < i; j++) {
			if (h->cpuid[j].function != e->function ||
			    h->cpuid[j].index != e->index)
				continue;
			err_set(err, errlen,
				   "HELLO: CPUID leaf 0x%x.%u appears twice "
				   "(entries %u and %u)",
				   e->function, e->index, j, i);
			return -EPROTO;
		}
	}
	return 0;
}

int proto_hello_check(const struct proto_hello *h, char *err, size_t errlen)
{
	if (hello_check_counts(h, err, errlen) ||
	    hello_check_leaves(h, err, errlen))
		return -EPROTO;
	for (uint32_t i = 0; i < h->nr_regions; i++)
		if (hello_check_region(&h->regions[i], i, err, errlen))
			return -EPROTO;
	for (uint32_t i = 0; i < h->nr_devices; i++) {
		const char *bad = hello_name_bad(h->devices[i].name);

		if (bad) {
			err_set(err, errlen, "HELLO: device %u name %s", i,
				   bad);
			return -EPROTO;
		}
	}
	return 0;
}

/* ---- encoding ------------------------------------------------------------ */

static size_t hello_size(const struct proto_hello *h)
{
	return HELLO_FIXED + (size_t)h->nr_regions * REGION_SIZE + 8 +
	       (size_t)h->nr_cpuid * CPUID_SIZE + 4 +
	       (size_t)h->nr_devices * DEVICE_SIZE +
	       (h->caps & PROTO_CAP_CHANNELS ? 4 : 0) +
	       (h->caps & PROTO_CAP_TSC ? 4 : 0);
}

static uint8_t *hello_put_cpuid(uint8_t *q, const struct proto_cpuid *e)
{
	q = proto_put32(q, e->function);
	q = proto_put32(q, e->index);
	q = proto_put32(q, e->flags);
	q = proto_put32(q, e->eax);
	q = proto_put32(q, e->ebx);
	q = proto_put32(q, e->ecx);
	return proto_put32(q, e->edx);
}

static uint8_t *hello_put_device(uint8_t *q, const struct proto_device *d)
{
	size_t n = strnlen(d->name, PROTO_NAME_MAX);

	memset(q, 0, PROTO_NAME_MAX);
	memcpy(q, d->name, n);
	return proto_put32(q + PROTO_NAME_MAX, d->version);
}

int proto_hello_encode(uint8_t *buf, size_t cap, const struct proto_hello *h)
{
	size_t len;
	uint8_t *q;
	int ret;

	if (proto_hello_check(h, NULL, 0))
		return -EINVAL;
	len = hello_size(h);
	ret = proto_frame_room(cap, len);
	if (ret)
		return ret;
	q = buf + PROTO_HDR_SIZE;
	q = proto_put32(q, h->version);
	q = proto_put64(q, h->caps);
	q = proto_put32(q, h->page_size);
	q = proto_put64(q, h->mem_size);
	q = proto_put32(q, h->nr_regions);
	for (uint32_t i = 0; i < h->nr_regions; i++) {
		q = proto_put64(q, h->regions[i].gpa);
		q = proto_put64(q, h->regions[i].size);
	}
	q = proto_put32(q, h->nr_vcpus);
	q = proto_put32(q, h->nr_cpuid);
	for (uint32_t i = 0; i < h->nr_cpuid; i++)
		q = hello_put_cpuid(q, &h->cpuid[i]);
	q = proto_put32(q, h->nr_devices);
	for (uint32_t i = 0; i < h->nr_devices; i++)
		q = hello_put_device(q, &h->devices[i]);
	if (h->caps & PROTO_CAP_CHANNELS)
		q = proto_put32(q, h->nr_channels);
	if (h->caps & PROTO_CAP_TSC)
		proto_put32(q, h->tsc_khz);
	proto_frame_seal(buf, PROTO_HELLO, (uint32_t)len);
	return PROTO_HDR_SIZE + (int)len;
}

/* ---- decoding ------------------------------------------------------------ */

/* Read a count and check it against its limit before anything uses it. */
static int hello_get_count(struct proto_cur *c, const char *field, uint32_t max,
			   uint32_t *nr)
{
	if (proto_cur_u32(c, field, nr))
		return -EPROTO;
	if (*nr > max)
		return proto_cur_fail(c, "%s %u exceeds %u", field, *nr, max);
	return 0;
}

static int hello_get_regions(struct proto_cur *c, struct proto_hello *h)
{
	const uint8_t *q;

	if (hello_get_count(c, "nr_regions", PROTO_MAX_REGIONS, &h->nr_regions))
		return -EPROTO;
	if (proto_cur_need(c, (size_t)h->nr_regions * REGION_SIZE, "regions"))
		return -EPROTO;
	q = proto_cur_take(c, (size_t)h->nr_regions * REGION_SIZE);
	for (uint32_t i = 0; i < h->nr_regions; i++, q += REGION_SIZE) {
		h->regions[i].gpa = get_le64(q);
		h->regions[i].size = get_le64(q + 8);
	}
	return 0;
}

static int hello_get_cpuid(struct proto_cur *c, struct proto_hello *h)
{
	const uint8_t *q;

	if (hello_get_count(c, "nr_cpuid", PROTO_MAX_CPUID, &h->nr_cpuid))
		return -EPROTO;
	if (proto_cur_need(c, (size_t)h->nr_cpuid * CPUID_SIZE, "cpuid"))
		return -EPROTO;
	q = proto_cur_take(c, (size_t)h->nr_cpuid * CPUID_SIZE);
	for (uint32_t i = 0; i < h->nr_cpuid; i++, q += CPUID_SIZE) {
		struct proto_cpuid *e = &h->cpuid[i];

		e->function = get_le32(q);
		e->index = get_le32(q + 4);
		e->flags = get_le32(q + 8);
		e->eax = get_le32(q + 12);
		e->ebx = get_le32(q + 16);
		e->ecx = get_le32(q + 20);
		e->edx = get_le32(q + 24);
	}
	return 0;
}

/* The name field must be the name, a NUL, and zeroes to its end. */
static int hello_get_name(struct proto_cur *c, uint32_t i, const uint8_t *q,
			  char *name)
{
	const char *bad;

	memcpy(name, q, PROTO_NAME_MAX);
	bad = hello_name_bad(name);
	if (bad)
		return proto_cur_fail(c, "device %u name %s", i, bad);
	for (size_t k = strlen(name); k < PROTO_NAME_MAX; k++)
		if (name[k])
			return proto_cur_fail(c,
					      "device %u name not "
					      "zero-padded",
					      i);
	return 0;
}

static int hello_get_devices(struct proto_cur *c, struct proto_hello *h)
{
	const uint8_t *q;

	if (hello_get_count(c, "nr_devices", PROTO_MAX_DEVICES, &h->nr_devices))
		return -EPROTO;
	if (proto_cur_need(c, (size_t)h->nr_devices * DEVICE_SIZE, "devices"))
		return -EPROTO;
	q = proto_cur_take(c, (size_t)h->nr_devices * DEVICE_SIZE);
	for (uint32_t i = 0; i < h->nr_devices; i++, q += DEVICE_SIZE) {
		if (hello_get_name(c, i, q, h->devices[i].name))
			return -EPROTO;
		h->devices[i].version = get_le32(q + PROTO_NAME_MAX);
	}
	return 0;
}

static int hello_get_fixed(struct proto_cur *c, struct proto_hello *h)
{
	if (proto_cur_u64(c, "caps", &h->caps) ||
	    proto_cur_u32(c, "page_size", &h->page_size) ||
	    proto_cur_u64(c, "mem_size", &h->mem_size))
		return -EPROTO;
	return 0;
}

static int hello_get_vcpus(struct proto_cur *c, struct proto_hello *h)
{
	if (proto_cur_u32(c, "nr_vcpus", &h->nr_vcpus))
		return -EPROTO;
	if (h->nr_vcpus == 0 || h->nr_vcpus > PROTO_MAX_VCPUS)
		return proto_cur_fail(c, "nr_vcpus %u not in 1..%d",
				      h->nr_vcpus, PROTO_MAX_VCPUS);
	return 0;
}

/* The channel count, present only with PROTO_CAP_CHANNELS. */
static int hello_get_channels(struct proto_cur *c, struct proto_hello *h)
{
	if (!(h->caps & PROTO_CAP_CHANNELS))
		return 0;
	if (proto_cur_u32(c, "nr_channels", &h->nr_channels))
		return -EPROTO;
	if (h->nr_channels < 2 || h->nr_channels > PROTO_MAX_CHANNELS)
		return proto_cur_fail(c, "nr_channels %u not in 2..%d",
				      h->nr_channels, PROTO_MAX_CHANNELS);
	return 0;
}

/* The TSC frequency, present only with PROTO_CAP_TSC. */
static int hello_get_tsc(struct proto_cur *c, struct proto_hello *h)
{
	if (!(h->caps & PROTO_CAP_TSC))
		return 0;
	return proto_cur_u32(c, "tsc_khz", &h->tsc_khz); /* checked below */
}

int proto_hello_decode(const uint8_t *p, size_t len, struct proto_hello *h,
		       char *err, size_t errlen)
{
	struct proto_cur c;

	memset(h, 0, sizeof(*h));
	proto_cur_init(&c, p, len, "HELLO", err, errlen);
	if (proto_cur_u32(&c, "version", &h->version))
		return -EPROTO;
	if (h->version != PROTO_VERSION)
		return 0; /* another layout: proto_hello_compare refuses it */
	if (hello_get_fixed(&c, h) || hello_get_regions(&c, h) ||
	    hello_get_vcpus(&c, h) || hello_get_cpuid(&c, h) ||
	    hello_get_devices(&c, h) || hello_get_channels(&c, h) ||
	    hello_get_tsc(&c, h) || proto_cur_end(&c))
		return -EPROTO;
	return proto_hello_check(h, err, errlen);
}

/* ---- comparison ---------------------------------------------------------- */

static void hello_fmt_size(char *buf, size_t n, uint64_t v)
{
	if (v && v % (1ULL << 30) == 0)
		snprintf(buf, n, "%" PRIu64 " GiB", v >> 30);
	else if (v && v % (1ULL << 20) == 0)
		snprintf(buf, n, "%" PRIu64 " MiB", v >> 20);
	else
		snprintf(buf, n, "%" PRIu64 " bytes", v);
}

static int hello_cmp_memory(const struct proto_hello *l,
			    const struct proto_hello *r, char *err,
			    size_t errlen)
{
	char ls[32], rs[32];

	if (r->mem_size != l->mem_size) {
		hello_fmt_size(rs, sizeof(rs), r->mem_size);
		hello_fmt_size(ls, sizeof(ls), l->mem_size);
		err_set(err, errlen, "RAM size differs: source %s, here %s",
			   rs, ls);
		return -EPROTO;
	}
	if (r->nr_regions != l->nr_regions) {
		err_set(err, errlen,
			   "RAM layout differs: source has %u regions, here %u",
			   r->nr_regions, l->nr_regions);
		return -EPROTO;
	}
	for (uint32_t i = 0; i < r->nr_regions; i++) {
		const struct proto_region *a = &r->regions[i];
		const struct proto_region *b = &l->regions[i];

		if (a->gpa == b->gpa && a->size == b->size)
			continue;
		err_set(err, errlen,
			   "RAM region %u differs: source gpa 0x%" PRIx64
			   " size 0x%" PRIx64 ", here gpa 0x%" PRIx64
			   " size 0x%" PRIx64,
			   i, a->gpa, a->size, b->gpa, b->size);
		return -EPROTO;
	}
	return 0;
}

static const struct proto_cpuid *
hello_find_leaf(const struct proto_hello *h, uint32_t function, uint32_t index)
{
	for (uint32_t i = 0; i < h->nr_cpuid; i++)
		if (h->cpuid[i].function == function &&
		    h->cpuid[i].index == index)
			return &h->cpuid[i];
	return NULL;
}

static int hello_cmp_leaf(const struct proto_cpuid *r,
			  const struct proto_cpuid *l, char *err, size_t errlen)
{
	static const char *const names[] = {"flags", "eax", "ebx", "ecx",
					    "edx"};
	const uint32_t rv[] = {r->flags, r->eax, r->ebx, r->ecx, r->edx};
	const uint32_t lv[] = {l->flags, l->eax, l->ebx, l->ecx, l->edx};

	for (size_t i = 0; i < sizeof(rv) / sizeof(rv[0]); i++) {
		if (rv[i] == lv[i])
			continue;
		err_set(err, errlen,
			   "CPUID leaf 0x%x.%u %s differ%s: source 0x%08x, "
			   "here 0x%08x",
			   r->function, r->index, names[i], i ? "s" : "", rv[i],
			   lv[i]);
		return -EPROTO;
	}
	return 0;
}

static int hello_cmp_cpuid(const struct proto_hello *l,
			   const struct proto_hello *r, char *err,
			   size_t errlen)
{
	for (uint32_t i = 0; i < r->nr_cpuid; i++) {
		const struct proto_cpuid *e = &r->cpuid[i];
		const struct proto_cpuid *here;

		here = hello_find_leaf(l, e->function, e->index);
		if (!here) {
			err_set(err, errlen,
				   "CPUID leaf 0x%x.%u of the source is "
				   "missing here",
				   e->function, e->index);
			return -EPROTO;
		}
		if (hello_cmp_leaf(e, here, err, errlen))
			return -EPROTO;
	}
	return 0;
}

/* The first device of a that b does not have, or NULL. */
static const char *hello_extra_device(const struct proto_hello *a,
				      const struct proto_hello *b)
{
	for (uint32_t i = 0; i < a->nr_devices; i++) {
		uint32_t j = 0;

		while (j < b->nr_devices &&
		       strncmp(a->devices[i].name, b->devices[j].name,
			       PROTO_NAME_MAX))
			j++;
		if (j == b->nr_devices)
			return a->devices[i].name;
	}
	return NULL;
}

/* The device counts differ: name a device only one side has. */
static int hello_count_differs(const struct proto_hello *l,
			       const struct proto_hello *r, char *err,
			       size_t errlen)
{
	const char *name = hello_extra_device(r, l);
	const char *where = "is missing here";

	if (!name) {
		name = hello_extra_device(l, r);
		where = "is not on the source";
	}
	if (name)
		err_set(err, errlen,
			   "device count differs: source has %u devices, "
			   "here %u (%.*s %s)",
			   r->nr_devices, l->nr_devices, PROTO_NAME_MAX, name,
			   where);
	else
		err_set(err, errlen,
			   "device count differs: source has %u devices, "
			   "here %u",
			   r->nr_devices, l->nr_devices);
	return -EPROTO;
}

static int hello_cmp_devices(const struct proto_hello *l,
			     const struct proto_hello *r, char *err,
			     size_t errlen)
{
	if (r->nr_devices != l->nr_devices)
		return hello_count_differs(l, r, err, errlen);
	for (uint32_t i = 0; i < r->nr_devices; i++) {
		const struct proto_device *a = &r->devices[i];
		const struct proto_device *b = &l->devices[i];

		if (strncmp(a->name, b->name, PROTO_NAME_MAX)) {
			err_set(err, errlen,
				   "device %u differs: source has %.*s, here "
				   "%.*s",
				   i, PROTO_NAME_MAX, a->name, PROTO_NAME_MAX,
				   b->name);
			return -EPROTO;
		}
		if (a->version != b->version) {
			err_set(err, errlen,
				   "device %.*s state version differs: source "
				   "%u, here %u",
				   PROTO_NAME_MAX, a->name, a->version,
				   b->version);
			return -EPROTO;
		}
	}
	return 0;
}

int proto_hello_compare(const struct proto_hello *local,
			const struct proto_hello *remote, char *err,
			size_t errlen)
{
	if (remote->version != local->version) {
		err_set(err, errlen,
			   "protocol version differs: source speaks %u, here "
			   "%u",
			   remote->version, local->version);
		return -EPROTO;
	}
	if (remote->page_size != local->page_size) {
		err_set(err, errlen, "page size differs: source %u, here %u",
			   remote->page_size, local->page_size);
		return -EPROTO;
	}
	if (hello_cmp_memory(local, remote, err, errlen))
		return -EPROTO;
	if (remote->nr_vcpus != local->nr_vcpus) {
		err_set(err, errlen, "VM has %u vCPUs here, source has %u",
			   local->nr_vcpus, remote->nr_vcpus);
		return -EPROTO;
	}
	if (hello_cmp_cpuid(local, remote, err, errlen))
		return -EPROTO;
	return hello_cmp_devices(local, remote, err, errlen);
}

/* ---- HELLO_ACK: u64 caps [, u32 nr_channels, u64 token] ------------------ */

int proto_hello_ack_chan_encode(uint8_t *buf, size_t cap, uint64_t caps,
				uint32_t nr_channels, uint64_t token)
{
	bool chan = caps & PROTO_CAP_CHANNELS;
	size_t len = chan ? 20 : 8;
	int ret;

	if (caps & ~PROTO_CAP_ALL)
		return -EINVAL;
	if (chan && (nr_channels < 2 || nr_channels > PROTO_MAX_CHANNELS ||
		     !token))
		return -EINVAL;
	ret = proto_frame_room(cap, len);
	if (ret)
		return ret;
	put_le64(buf + PROTO_HDR_SIZE, caps);
	if (chan) {
		put_le32(buf + PROTO_HDR_SIZE + 8, nr_channels);
		put_le64(buf + PROTO_HDR_SIZE + 12, token);
	}
	proto_frame_seal(buf, PROTO_HELLO_ACK, (uint32_t)len);
	return PROTO_HDR_SIZE + (int)len;
}

int proto_hello_ack_encode(uint8_t *buf, size_t cap, uint64_t caps)
{
	if (caps & PROTO_CAP_CHANNELS)
		return -EINVAL;
	return proto_hello_ack_chan_encode(buf, cap, caps, 1, 0);
}

static int hello_ack_get_channels(struct proto_cur *c, uint32_t *nr,
				  uint64_t *token)
{
	if (proto_cur_u32(c, "nr_channels", nr) ||
	    proto_cur_u64(c, "token", token))
		return -EPROTO;
	if (*nr < 2 || *nr > PROTO_MAX_CHANNELS)
		return proto_cur_fail(c, "nr_channels %u not in 2..%d", *nr,
				      PROTO_MAX_CHANNELS);
	if (!*token)
		return proto_cur_fail(c, "token 0");
	return 0;
}

int proto_hello_ack_chan_decode(const uint8_t *p, size_t len, uint64_t *caps,
				uint32_t *nr_channels, uint64_t *token,
				char *err, size_t errlen)
{
	struct proto_cur c;

	*nr_channels = 1;
	*token = 0;
	proto_cur_init(&c, p, len, "HELLO_ACK", err, errlen);
	if (proto_cur_u64(&c, "caps", caps))
		return -EPROTO;
	if (*caps & ~PROTO_CAP_ALL)
		return proto_cur_fail(&c, "unknown caps 0x%" PRIx64,
				      (uint64_t)(*caps & ~PROTO_CAP_ALL));
	if ((*caps & PROTO_CAP_CHANNELS) &&
	    hello_ack_get_channels(&c, nr_channels, token))
		return -EPROTO;
	return proto_cur_end(&c);
}

int proto_hello_ack_decode(const uint8_t *p, size_t len, uint64_t *caps,
			   char *err, size_t errlen)
{
	uint32_t nr;
	uint64_t token;

	return proto_hello_ack_chan_decode(p, len, caps, &nr, &token, err,
					   errlen);
}
