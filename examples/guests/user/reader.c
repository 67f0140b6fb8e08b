/* SPDX-License-Identifier: MIT */
/*
 * reader.c - `dirty --readers N`: CPUs 1..N read the dirty region while
 * CPU 0 writes it, so that more than one vCPU touches guest memory at once
 * (post-copy tests: two vCPUs faulting at the same time).
 *
 * Every other CPU halts at boot (main.c) and nothing can wake it later, so
 * a reader decides at boot, from the boot command line, before CPU 0 has
 * parsed it: reader_wanted() finds "--readers N" in the text (CPU 0 checks
 * the flag properly when `dirty` runs, and exits with a usage error when N
 * is not below the CPU count). A reader then waits for CPU 0 to publish the
 * region (dirty_current()) and reads one word of a page at a time, in a
 * stride order of its own, forever; it never writes guest memory, so the
 * region still verifies. It spins: a reader costs the host a core. Use
 * one `dirty` per boot with readers: a second one moves the region under
 * them.
 */
#include "lib/string.h"
#include "lib/x86.h"
#include "user/dirty.h"
#include "user/user.h"

#define READER_FLAG "--readers"

/* Where "--readers" starts in s (at most len bytes), or NULL. */
static const char *reader_find(const char *s, size_t len)
{
	size_t flen = sizeof(READER_FLAG) - 1;

	for (size_t i = 0; i + flen <= len; i++)
		if (!memcmp(s + i, READER_FLAG, flen))
			return s + i;
	return NULL;
}

uint32_t reader_wanted(const struct boot_info *bi)
{
	size_t len = strnlen(bi->cmdline, GUEST_CMDLINE_MAX);
	const char *p = reader_find(bi->cmdline, len);
	const char *end = bi->cmdline + len;
	uint32_t n = 0;

	if (!p)
		return 0;
	for (p += sizeof(READER_FLAG) - 1; p < end && *p == ' '; p++)
		;
	for (; p < end && *p >= '0' && *p <= '9' && n < 1000; p++)
		n = n * 10 + (uint32_t)(*p - '0');
	return n;
}

void reader_run(uint32_t cpu)
{
	uint64_t pos = cpu * 7919ULL, sum = 0;

	console_printf("cpu %u reads the dirty region\n", cpu);
	for (;;) {
		/* Re-read: a new `dirty` unpublishes it, then replaces it. */
		const struct dirty_region *r = dirty_current();
		uint64_t n;

		n = r ? __atomic_load_n(&r->nr_filled, __ATOMIC_ACQUIRE) : 0;
		if (!n) {
			x86_pause();
			continue;
		}
		pos = (pos + 4099) % n;
		sum += *(volatile uint64_t *)dirty_page(r, pos);
	}
	(void)sum;
}
