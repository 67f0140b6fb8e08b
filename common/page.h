/* SPDX-License-Identifier: MIT */
/* page.h - the host's and the guest's page: 4 KiB everywhere in the VMM. */
#ifndef COMMON_PAGE_H
#define COMMON_PAGE_H

#define PAGE_SHIFT 12
#define PAGE_SIZE  (1ULL << PAGE_SHIFT)

#endif /* COMMON_PAGE_H */
