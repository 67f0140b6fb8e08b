/* SPDX-License-Identifier: MIT */
/*
 * corrupt.c - the `corrupt --page P` workload: flip one byte of page P of
 * the current dirty region without bumping its generation, as a lost or
 * stale page would look after a broken migration. It exists so that tests
 * can prove `verify` catches exactly that; it is never part of a workload
 * that expects to pass.
 */
#include "lib/testdev.h"
#include "user/dirty.h"
#include "user/user.h"
#include "user/workload.h"

enum { CORRUPT_PAGE };

static const struct wl_flag corrupt_flags[] = {
	[CORRUPT_PAGE] = {.name = "page",
			  .min = 0,
			  .max = 1ULL << 40,
			  .required = true},
	{0},
};

static void corrupt_run(const struct wl_call *c)
{
	const struct dirty_region *r = dirty_current();
	uint64_t p = c->val[CORRUPT_PAGE];
	volatile uint8_t *b;

	if (!r || p >= r->nr_filled) {
		console_printf("corrupt: no page %lu in a dirty region\n", p);
		guest_exit(GUEST_EXIT_USAGE);
	}
	b = (volatile uint8_t *)dirty_page(r, p) + 123;
	*b ^= 0x5a;
	console_printf("corrupt: flipped a byte of page %lu\n", p);
}

const struct workload wl_corrupt = {
	.name = "corrupt",
	.flags = corrupt_flags,
	.run = corrupt_run,
};
