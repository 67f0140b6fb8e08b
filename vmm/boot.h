/* SPDX-License-Identifier: MIT */
/*
 * boot.h - what the VMM writes into guest RAM before the first instruction
 * of a test guest: the identity page tables (4 KiB pages over all RAM, plus
 * the device MMIO window) and the boot-info page (common/guest_abi.h).
 * Runs on the main thread while no vCPU exists.
 */
#ifndef VMM_BOOT_H
#define VMM_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "ept/mem.h"
#include "common/guest_abi.h"

/* Bytes of page tables needed to identity-map m (4 KiB pages). */
uint64_t boot_pgt_size(const struct guest_mem *m);

/*
 * Build the page tables at pgt_base (page aligned, inside RAM). Returns 0 or
 * -ENOSPC when they do not fit.
 */
int boot_build_page_tables(const struct guest_mem *m, uint64_t pgt_base);

struct boot_params {
	uint64_t kernel_end;
	uint64_t tsc_khz;
	int nr_cpus;
	const char *cmdline;
};

/*
 * Place the page tables at the top of low RAM, build them and write the
 * boot-info page. Returns 0 or -errno with err saying what did not fit.
 */
int boot_write_guest(const struct guest_mem *m, const struct boot_params *p,
	       char *err, size_t errlen);

#endif /* VMM_BOOT_H */
