/* SPDX-License-Identifier: MIT */
/*
 * mem_back.h - the memfd behind guest RAM as a thing of its own: handed
 * to another process and adopted there (live update: both VMMs map the
 * same pages, none is copied), populated ahead of the guest
 * (--mem-prealloc) and locked in memory (--mlock).
 *
 * Main thread, before any vCPU runs (adoption replaces the mapping under
 * the KVM memslots; populate and lock only touch the host's page tables).
 */
#ifndef EPT_MEM_BACK_H
#define EPT_MEM_BACK_H

#include <stddef.h>
#include <stdint.h>

#include "ept/mem.h"

/*
 * Back m with fd (another process's guest-RAM memfd; the mapping keeps its
 * address, so the KVM memslots stay as registered) and own fd from now on.
 * -EINVAL when fd is not a file of m->size bytes; err says which sizes.
 * On failure m is unchanged and the caller still owns fd.
 */
int mem_adopt_fd(struct guest_mem *m, int fd, char *err, size_t errlen);

/*
 * Allocate every page of guest RAM now (MADV_POPULATE_WRITE, Linux 5.14),
 * so that no host page fault is left for the guest's first touch. -EINVAL
 * with err naming the kernel's lack of it; -ENOMEM when RAM ran out.
 */
int mem_populate(struct guest_mem *m, char *err, size_t errlen);

/*
 * Keep guest RAM in memory (never swapped): pages already there and every
 * page the guest touches later (mlock2 MLOCK_ONFAULT: a page the guest
 * never touches is still not allocated). Checks RLIMIT_MEMLOCK first
 * (unless root) and names it when it is too small.
 */
int mem_lock(struct guest_mem *m, char *err, size_t errlen);

#endif /* EPT_MEM_BACK_H */
