/* SPDX-License-Identifier: MIT */
/*
 * ept/ - guest physical memory and second-level faults.
 *
 * This layer owns guest RAM: one memfd mapped MAP_SHARED (read/write, never
 * executable) and carved into regions around the MMIO hole below 4 GiB, the
 * KVM memslots that expose those regions to the guest, and translation
 * between guest-physical addresses and host pointers. Later it also owns the
 * per-page state bitmaps, dirty tracking, the userfaultfd fault service and
 * the guest page-table walker. It knows nothing of migration/ or vmm/: it is
 * handed a VM file descriptor and works on memory alone.
 */
#ifndef EPT_EPT_H
#define EPT_EPT_H

#include "ept/mem.h"

#endif /* EPT_EPT_H */
