/* SPDX-License-Identifier: MIT */
/*
 * bus.c - port-I/O and MMIO address maps.
 *
 * A bus is an array of ranges kept sorted by base address and never
 * overlapping, so that one binary search finds the device for an address.
 * The main thread registers every range before the vCPUs start and then
 * seals the bus; from then on the array is never written again and every
 * vCPU thread calls bus_dispatch() without a lock. The only field written
 * after the seal is the `unhandled' counter, which is updated atomically.
 * Range names are not copied: they must outlive the bus (string literals
 * in practice).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "devices/bus.h"

void bus_init(struct bus *b, const char *name)
{
	memset(b, 0, sizeof(*b));
	b->name = name ? name : "bus";
}

void bus_destroy(struct bus *b)
{
	free(b->ranges);
	b->ranges = NULL;
	b->nr = 0;
	b->cap = 0;
}

/* Last address of a range; registration guarantees it does not wrap. */
static uint64_t range_last(const struct bus_range *r)
{
	return r->base + r->len - 1;
}

static const char *range_name(const struct bus_range *r)
{
	return r->name ? r->name : "?";
}

/* Index of the first range whose base is greater than addr. */
static int bus_upper_bound(const struct bus *b, uint64_t addr)
{
	int lo = 0, hi = b->nr;

	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;

		if (b->ranges[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int bus_grow(struct bus *b)
{
	int cap = b->cap ? b->cap * 2 : 16;
	struct bus_range *r;

	r = realloc(b->ranges, (size_t)cap * sizeof(*r));
	if (!r)
		return -ENOMEM;
	b->ranges = r;
	b->cap = cap;
	return 0;
}

/* The registered range that [base, last] overlaps, or NULL. */
static const struct bus_range *bus_overlap(const struct bus *b, int idx,
					   uint64_t base, uint64_t last)
{
	/* Sorted and disjoint: only the two neighbours of idx can overlap. */
	if (idx > 0 && range_last(&b->ranges[idx - 1]) >= base)
		return &b->ranges[idx - 1];
	if (idx < b->nr && b->ranges[idx].base <= last)
		return &b->ranges[idx];
	return NULL;
}

/* Why [base, base+len) cannot be added at idx: 0 or -errno, with err. */
static int bus_check(const struct bus *b, int idx, uint64_t base, uint64_t len,
		     const char *name, char *err, size_t errlen)
{
	const struct bus_range *o;
	uint64_t last = base + (len - 1);

	if (b->sealed) {
		err_set(err, errlen,
			"%s: '%s' registered after the bus was sealed", b->name,
			name);
		return -EBUSY;
	}
	/* A range may end at the very top of the space, but not wrap. */
	if (len == 0 || last < base) {
		err_set(err, errlen,
			"%s: '%s' has an invalid range (base 0x%" PRIx64
			" len 0x%" PRIx64 ")",
			b->name, name, base, len);
		return -EINVAL;
	}
	o = bus_overlap(b, idx, base, last);
	if (o) {
		err_set(err, errlen,
			"%s: '%s' [0x%" PRIx64 "-0x%" PRIx64 "] overlaps '%s' "
			"[0x%" PRIx64 "-0x%" PRIx64 "]",
			b->name, name, base, last, range_name(o), o->base,
			range_last(o));
		return -EEXIST;
	}
	return 0;
}

int bus_register(struct bus *b, uint64_t base, uint64_t len,
		 const struct bus_ops *ops, void *opaque, const char *name,
		 char *err, size_t errlen)
{
	int idx = bus_upper_bound(b, base);
	int ret;

	ret = bus_check(b, idx, base, len, name ? name : "?", err, errlen);
	if (ret)
		return ret;
	if (b->nr == b->cap) {
		ret = bus_grow(b);
		if (ret) {
			err_set(err, errlen, "%s: '%s': %s", b->name,
				name ? name : "?", strerror(-ret));
			return ret;
		}
	}
	memmove(&b->ranges[idx + 1], &b->ranges[idx],
		(size_t)(b->nr - idx) * sizeof(b->ranges[0]));
	b->ranges[idx] = (struct bus_range){
		.base = base,
		.len = len,
		.ops = ops,
		.opaque = opaque,
		.name = name,
	};
	b->nr++;
	return 0;
}

void bus_seal(struct bus *b)
{
	b->sealed = true;
}

const struct bus_range *bus_find(const struct bus *b, uint64_t addr)
{
	int idx = bus_upper_bound(b, addr);
	const struct bus_range *r;

	if (idx == 0)
		return NULL;
	r = &b->ranges[idx - 1];
	return addr <= range_last(r) ? r : NULL;
}

static int bus_miss(struct bus *b, void *data, uint32_t len, bool is_write)
{
	if (!is_write && data)
		memset(data, 0xff, len);
	__atomic_fetch_add(&b->unhandled, 1, __ATOMIC_RELAXED);
	return -ENOENT;
}

int bus_dispatch(struct bus *b, uint64_t addr, void *data, uint32_t len,
		 bool is_write)
{
	const struct bus_range *r = bus_find(b, addr);
	uint64_t off;

	if (!r || len == 0)
		return bus_miss(b, data, len, is_write);
	off = addr - r->base;
	/* Straddling the end of the range: no device sees half an access. */
	if (len > r->len - off)
		return bus_miss(b, data, len, is_write);
	if (is_write) {
		if (r->ops && r->ops->write)
			r->ops->write(r->opaque, off, data, len);
	} else {
		if (r->ops && r->ops->read)
			r->ops->read(r->opaque, off, data, len);
		else
			memset(data, 0xff, len);
	}
	return 0;
}
