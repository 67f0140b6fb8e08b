/* SPDX-License-Identifier: MIT */
/*
 * pagefault.c - the #PF handler.
 *
 * Today every page fault is a bug in the guest and panics with CR2 in the
 * message. This is the place where the `pagefault` workload will map a
 * faulting virtual page to a never-touched guest-physical page: fix the page
 * tables up, return, and trap_common's iretq retries the access.
 */
#include "kernel/kernel.h"

void pagefault_handle(struct trap_frame *f)
{
	trap_panic(f);
}
