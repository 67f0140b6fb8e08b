/* SPDX-License-Identifier: MIT */
/*
 * acpi.h - minimal ACPI tables for guests that look for them: RSDP (rev 2),
 * RSDT, XSDT, FADT (rev 3, 244 bytes), FACS, an empty DSDT and a MADT.
 *
 * Where guests look: the RSDP is found by scanning [0xe0000, 0x100000) on
 * 16-byte boundaries for "RSD PTR " (kvm-unit-tests lib/acpi.c get_rsdp(),
 * like every BIOS-era OS), so every table goes into that area, at
 * ACPI_AREA_BASE by default, which the Multiboot memory map reports as
 * reserved. kvm-unit-tests reads the FADT through the XSDT (RSDP revision
 * >= 2) else the RSDT; from it pm_tmr_blk (vmexit inl_pmtimer), firmware_ctrl
 * (the FACS, s3), pm1a_evt_blk and pm1a_cnt_blk (s3 writes 0x400 to
 * pm1a_evt_blk + 2, PM1_EN.RTC_EN, and then SLP_TYP 1 | SLP_EN, 0x2400, to
 * pm1a_cnt_blk).
 *
 * FADT choices: the PIIX4-style PM block at 0x600 (PM1a event 4 bytes at
 * 0x600, PM1a control 2 bytes at 0x604, PM timer 4 bytes at 0x608, QEMU's
 * addresses), SCI on IRQ 9, no SMI command port (ACPI mode is always on, so
 * PM1a_CNT.SCI_EN must read 1), TMR_VAL_EXT set when the timer counts 32
 * bits. firmware_ctrl and dsdt carry the addresses; X_FIRMWARE_CTRL and
 * X_DSDT stay 0 (the spec forbids both forms at once).
 * MADT: local APIC at 0xfee00000, PCAT_COMPAT (the in-kernel 8259s exist),
 * one enabled Processor Local APIC entry per vCPU (UID = APIC ID = index),
 * one I/O APIC (ID 0, KVM's reset value) at 0xfec00000 with GSI base 0,
 * the overrides of KVM's wiring (ISA IRQ 0 -> GSI 2; IRQ 9, the SCI,
 * level-triggered active high) and LINT1 as NMI on every processor.
 *
 * Threads: main thread, before any vCPU runs.
 */
#ifndef VMM_ACPI_H
#define VMM_ACPI_H

#include <stddef.h>
#include <stdint.h>

#include "ept/mem.h"

#define ACPI_AREA_BASE	 0xe0000ULL
#define ACPI_AREA_END	 0x100000ULL
#define ACPI_PM_BASE	 0x600
#define ACPI_PM1_EVT_LEN 4
#define ACPI_PM1_CNT_LEN 2
#define ACPI_PM_TMR_LEN	 4
#define ACPI_PM_TMR_OFF	 8 /* from ACPI_PM_BASE: port 0x608 */
#define ACPI_SCI_IRQ	 9
#define ACPI_LAPIC_ADDR	 0xfee00000U
#define ACPI_IOAPIC_ADDR 0xfec00000U
#define ACPI_MAX_CPUS	 255

/* FADT flags. */
#define ACPI_FADT_WBINVD      (1U << 0)
#define ACPI_FADT_C1	      (1U << 2)
#define ACPI_FADT_PWR_BUTTON  (1U << 4) /* no fixed power button */
#define ACPI_FADT_SLP_BUTTON  (1U << 5) /* no fixed sleep button */
#define ACPI_FADT_TMR_VAL_EXT (1U << 8) /* the PM timer counts 32 bits */
#define ACPI_BOOT_NO_VGA      (1U << 2) /* IA-PC boot architecture flag */

#define ACPI_MADT_PCAT_COMPAT 1
#define ACPI_MADT_LAPIC	      0
#define ACPI_MADT_IOAPIC      1
#define ACPI_MADT_OVERRIDE    2
#define ACPI_MADT_LAPIC_NMI   4
#define ACPI_GAS_SYSTEM_IO    1

struct acpi_rsdp {
	char signature[8]; /* "RSD PTR " */
	uint8_t checksum;  /* of the first 20 bytes */
	char oem_id[6];
	uint8_t revision; /* 2: XSDT present */
	uint32_t rsdt;
	uint32_t length; /* 36 */
	uint64_t xsdt;
	uint8_t ext_checksum; /* of all 36 bytes */
	uint8_t reserved[3];
} __attribute__((packed));

struct acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum; /* the whole table sums to 0 */
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));

struct acpi_gas {
	uint8_t space_id;
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;
	uint64_t address;
} __attribute__((packed));

struct acpi_fadt {
	struct acpi_header h;
	uint32_t firmware_ctrl, dsdt;
	uint8_t reserved0, pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
	uint32_t pm1a_evt_blk, pm1b_evt_blk, pm1a_cnt_blk, pm1b_cnt_blk;
	uint32_t pm2_cnt_blk, pm_tmr_blk, gpe0_blk, gpe1_blk;
	uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len;
	uint8_t gpe0_blk_len, gpe1_blk_len, gpe1_base, cst_cnt;
	uint16_t p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
	uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
	uint16_t boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint8_t reserved2[3];
	uint64_t x_firmware_ctrl, x_dsdt;
	struct acpi_gas x_pm1a_evt_blk, x_pm1b_evt_blk, x_pm1a_cnt_blk;
	struct acpi_gas x_pm1b_cnt_blk, x_pm2_cnt_blk, x_pm_tmr_blk;
	struct acpi_gas x_gpe0_blk, x_gpe1_blk;
} __attribute__((packed));

struct acpi_facs {
	char signature[4];
	uint32_t length; /* 64 */
	uint32_t hw_signature;
	uint32_t waking_vector; /* written by the guest (s3) */
	uint32_t global_lock;
	uint32_t flags;
	uint64_t x_waking_vector;
	uint8_t version; /* 2 */
	uint8_t reserved[31];
} __attribute__((packed));

struct acpi_madt {
	struct acpi_header h;
	uint32_t lapic_addr;
	uint32_t flags;
} __attribute__((packed));

struct acpi_madt_lapic {
	uint8_t type, length, uid, apic_id;
	uint32_t flags; /* 1: enabled */
} __attribute__((packed));

struct acpi_madt_ioapic {
	uint8_t type, length, id, reserved;
	uint32_t addr, gsi_base;
} __attribute__((packed));

struct acpi_madt_override {
	uint8_t type, length, bus, source;
	uint32_t gsi;
	uint16_t flags;
} __attribute__((packed));

struct acpi_madt_lapic_nmi {
	uint8_t type, length, uid;
	uint16_t flags;
	uint8_t lint;
} __attribute__((packed));

struct acpi_config {
	uint64_t base; /* guest address of the RSDP, 16-aligned, BIOS area */
	unsigned int nr_cpus;
	uint16_t pm1a_evt, pm1a_cnt, pm_tmr; /* I/O ports */
	int pm_tmr_32bit;		     /* 1: 32-bit counter, else 24 */
};

/* Where each table went (guest-physical), and the end of the last. */
struct acpi_layout {
	uint64_t rsdp, rsdt, xsdt, facs, fadt, dsdt, madt, end;
};

/* The defaults above (ACPI_AREA_BASE, the 0x600 PM block, 32-bit timer). */
void acpi_config_default(struct acpi_config *c, unsigned int nr_cpus);

/*
 * Pure: lay the tables out for c and write them into buf, which stands for
 * guest memory from c->base on (len bytes). -EINVAL with err set when c is
 * invalid or the tables would leave the BIOS area or buf.
 */
int acpi_build(const struct acpi_config *c, uint8_t *buf, size_t len,
	       struct acpi_layout *out, char *err, size_t errlen);

/* acpi_build() straight into guest RAM (-EFAULT when the area is not RAM). */
int acpi_write(const struct guest_mem *m, const struct acpi_config *c,
	       struct acpi_layout *out, char *err, size_t errlen);

/* The byte that makes len bytes at p sum to zero, given it is now 0. */
uint8_t acpi_checksum(const void *p, size_t len);

#endif /* VMM_ACPI_H */
