/* SPDX-License-Identifier: MIT */
/*
 * touch.c - the `touch --mib N` workload: write exactly the page set the
 * host asks for, so that a host test can hold the dirty log against it.
 *
 * It takes N MiB from free RAM and writes every page once, so that first
 * touches are over before the host starts logging, waits until the other
 * CPUs have halted (from then on CPU 0 is the only writer), then posts
 * MARK_RESULT with the region's first page number (GPA >> 12) and only
 * ticks. A GUEST_REQ_TOUCH request with arg = seed is one round: one 8-byte
 * store, word 0 = TOUCH_WORD(seed, i), into every page i of the region for
 * which touch_page_selected(seed, i) (common/guest_abi.h), nothing else in the
 * region, and mailbox.result = the pages written. Besides those pages, a
 * round writes guest RAM only where tick() and the ack must (README.md):
 * the image's .data/.bss (tick and touch state, the ring-3 stack) and the
 * boot-info page (mailbox.result and ack). The page tables would be written
 * too if a round set an accessed or dirty bit for the first time, so every
 * such bit is set before MARK_RESULT: the region's by the first pass, the
 * mailbox's by tick_set_touch(), the stack's by the console line, the
 * image's accessed bits by touch_access_image().
 * STOP_WORKLOAD ends the workload.
 */
#include "lib/testdev.h"
#include "lib/x86.h"
#include "user/user.h"
#include "user/workload.h"

enum { TOUCH_MIB };

#define TOUCH_MAX_MIB	 (1ULL << 20)
#define PAGES_PER_MIB	 ((uint64_t)((1ULL << 20) / GUEST_PAGE_SIZE))
#define TOUCH_WORD(s, i) ((uint64_t)(s) << 32 | (uint32_t)((i) + 1))

static const struct wl_flag touch_flags[] = {
	[TOUCH_MIB] = {.name = "mib",
		       .min = 1,
		       .max = TOUCH_MAX_MIB,
		       .required = true},
	{0},
};

static struct {
	volatile uint64_t *base;
	uint64_t nr_pages;
	uint64_t rounds;
} touch;

static volatile uint64_t *touch_page(uint64_t i)
{
	return touch.base + i * (GUEST_PAGE_SIZE / sizeof(uint64_t));
}

/* The GUEST_REQ_TOUCH handler: one round; returns the pages written. */
static uint64_t touch_round(uint64_t arg)
{
	uint32_t seed = (uint32_t)arg;
	uint64_t i, written = 0;

	for (i = 0; i < touch.nr_pages; i++) {
		if (i % TICK_PAGES == 0)
			tick_heartbeat();
		if (!touch_page_selected(seed, i))
			continue;
		*touch_page(i) = TOUCH_WORD(seed, i);
		written++;
	}
	touch.rounds++;
	return written;
}

/* guest.ld: the image, page aligned at both ends. */
extern const char __kernel_start[], __kernel_end[];

/*
 * A load from every page of the image sets its accessed bit, so the first
 * round cannot be the first to run some page of code (that would write the
 * page tables). The dirty bits of what a round writes are set by then too.
 */
static void touch_access_image(void)
{
	const volatile char *p;

	for (p = __kernel_start; p < __kernel_end; p += GUEST_PAGE_SIZE)
		(void)*p;
}

/* The first touch of every page, so that rounds only dirty them. */
static void touch_prepare(void)
{
	uint64_t i;

	for (i = 0; i < touch.nr_pages; i++) {
		if (i % TICK_PAGES == 0)
			tick_heartbeat();
		*touch_page(i) = 0;
	}
}

static void touch_run(const struct wl_call *c)
{
	uint64_t mib = c->val[TOUCH_MIB];

	touch.nr_pages = mib * PAGES_PER_MIB;
	touch.rounds = 0;
	touch.base = mem_alloc(touch.nr_pages * GUEST_PAGE_SIZE);
	if (!touch.base) {
		console_printf("touch: cannot allocate %lu MiB from free "
			       "RAM\n",
			       mib);
		guest_exit(GUEST_EXIT_USAGE);
	}
	touch_prepare();
	guest_wait_others_halted();
	touch_access_image();
	tick_set_touch(touch_round);
	console_printf("touch: %lu MiB at 0x%lx\n", mib,
		       (uint64_t)(uintptr_t)touch.base);
	testdev_marker(MARK_RESULT,
		       (uint32_t)((uintptr_t)touch.base / GUEST_PAGE_SIZE));
	while (!tick())
		x86_pause();
	tick_set_touch(NULL);
	console_printf("touch: stopped after %lu rounds\n", touch.rounds);
}

const struct workload wl_touch = {
	.name = "touch",
	.flags = touch_flags,
	.run = touch_run,
};
