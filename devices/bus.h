/* SPDX-License-Identifier: MIT */
/*
 * bus.h - an address map from port or MMIO ranges to device handlers.
 *
 * Ownership: ranges are registered by the main thread before vCPUs start;
 * after bus_seal() the map is read-only and bus_dispatch() is lock-free and
 * called concurrently by every vCPU thread.
 */
#ifndef DEVICES_BUS_H
#define DEVICES_BUS_H

#include <stdbool.h>
#include <stdint.h>

struct bus_ops {
	/* off is relative to the range base; len is 1, 2, 4 or 8. */
	void (*read)(void *opaque, uint64_t off, void *data, uint32_t len);
	void (*write)(void *opaque, uint64_t off, const void *data,
		      uint32_t len);
};

struct bus_range {
	uint64_t base;
	uint64_t len;
	const struct bus_ops *ops;
	void *opaque;
	const char *name;
};

struct bus {
	const char *name;	  /* "pio" or "mmio", for messages */
	struct bus_range *ranges; /* sorted by base, never overlapping */
	int nr, cap;
	bool sealed;
	uint64_t unhandled; /* accesses that hit no device */
};

void bus_init(struct bus *b, const char *name);
void bus_destroy(struct bus *b);

/*
 * Add [base, base+len). Returns 0, -EINVAL for len 0 or wrap-around,
 * -EEXIST when it overlaps a registered range (err names both), -EBUSY when
 * sealed, -ENOMEM.
 */
int bus_register(struct bus *b, uint64_t base, uint64_t len,
		 const struct bus_ops *ops, void *opaque, const char *name,
		 char *err, size_t errlen);

/* No more registrations; dispatch may start. */
void bus_seal(struct bus *b);

/* The range holding addr, or NULL. */
const struct bus_range *bus_find(const struct bus *b, uint64_t addr);

/*
 * Route one access. A read that hits no device returns all ones; a write to
 * nowhere is dropped. Returns 0 when a device handled it, -ENOENT otherwise.
 * An access that straddles the end of a range is not dispatched (-ENOENT).
 */
int bus_dispatch(struct bus *b, uint64_t addr, void *data, uint32_t len,
		 bool is_write);

#endif /* DEVICES_BUS_H */
