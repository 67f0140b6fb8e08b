/* SPDX-License-Identifier: MIT */
/*
 * acpi_pm.h - the ACPI fixed-hardware PM1a event and control blocks where
 * the FADT puts them (vmm/acpi.h: PM1a_EVT at 0x600, 4 bytes; PM1a_CNT at
 * 0x604, 2 bytes; the PM timer at 0x608 is devices/pm_timer.h).
 *
 * PM1_STS (0x600, 16 bits): write 1 to clear; WAK_STS (bit 15) and RTC_STS
 * (bit 10) are set when the machine wakes (acpi_pm_wake). PM1_EN (0x602):
 * read/write; RTC_EN (bit 10) lets the RTC alarm wake the machine.
 * PM1_CNT (0x604): SCI_EN (bit 0) always reads 1 (there is no SMI command
 * port: ACPI mode is always on); SLP_TYP (bits 12:10) is kept; SLP_EN
 * (bit 13) reads 0 and, written as 1, enters sleep state SLP_TYP with
 * QEMU's PIIX4 numbering (its DSDT's _S3 and _S5 packages): 1 suspends to
 * RAM (dev_host->sleep), 0 is soft-off (the VM exits with status 0);
 * other types are ignored. No SCI is raised: guests poll or get woken.
 *
 * Threads: vCPU threads dispatch and the VM core wakes; p->lock guards
 * the registers (dev_host->sleep is called without it).
 */
#ifndef DEVICES_ACPI_PM_H
#define DEVICES_ACPI_PM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/bus.h"
#include "devices/dev.h"

#define ACPI_PM_PORT	 0x600
#define ACPI_PM_PORT_LEN 6 /* PM1a_EVT (4) and PM1a_CNT (2) */

#define ACPI_PM1_STS_RTC (1U << 10)
#define ACPI_PM1_STS_WAK (1U << 15)
#define ACPI_PM1_EN_RTC	 (1U << 10)
#define ACPI_PM1_CNT_SCI (1U << 0)
#define ACPI_PM1_SLP_TYP (7U << 10)
#define ACPI_PM1_SLP_EN	 (1U << 13)
#define ACPI_SLP_TYP_S3	 1 /* QEMU's _S3 */
#define ACPI_SLP_TYP_S5	 0 /* QEMU's _S5 */

struct dev_host;

struct acpi_pm {
	pthread_mutex_t lock; /* guards sts, en, cnt */
	const struct dev_host *host;
	uint16_t sts, en, cnt;
};

extern const struct bus_ops acpi_pm_ops;

int acpi_pm_init(struct acpi_pm *p, const struct dev_host *host);
void acpi_pm_destroy(struct acpi_pm *p);
/* May the RTC alarm wake the machine (PM1_EN.RTC_EN)? */
bool acpi_pm_rtc_wake_enabled(struct acpi_pm *p);
/* The machine woke from sleep (by the RTC alarm if rtc): set PM1_STS. */
void acpi_pm_wake(struct acpi_pm *p, bool rtc);

/* Migratable state, version ACPI_PM_STATE_VERSION: the three registers. */
#define ACPI_PM_STATE_VERSION 1

struct acpi_pm_state {
	uint16_t sts, en, cnt;
	uint16_t pad; /* zero */
};

void acpi_pm_save(struct acpi_pm *p, struct acpi_pm_state *st);
int acpi_pm_load(struct acpi_pm *p, const struct acpi_pm_state *st, char *err,
		 size_t errlen);

extern const struct dev_ops acpi_pm_dev_ops;

#endif /* DEVICES_ACPI_PM_H */
