/* SPDX-License-Identifier: MIT */
/*
 * test_acpi_pm.c - the PM1a event and control blocks (devices/acpi_pm.c):
 * write-1-to-clear status, enable bits, SCI_EN always on, SLP_EN asking
 * the host to sleep (S3) or exit (S5), the wake status, save/load.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "devices/devices.h"

static int nr_sleep, exit_code = -1;
static char err[256];

static void host_sleep(void *opaque)
{
	(void)opaque;
	nr_sleep++;
}

static void host_exit(void *opaque, int code, const char *why)
{
	(void)opaque;
	(void)why;
	exit_code = code;
}

static const struct dev_host host = {
	.sleep = host_sleep,
	.request_exit = host_exit,
};

static uint16_t inw(struct acpi_pm *p, unsigned int off)
{
	uint16_t v = 0;

	acpi_pm_ops.read(p, off, &v, 2);
	return v;
}

static void outw(struct acpi_pm *p, unsigned int off, uint16_t v)
{
	acpi_pm_ops.write(p, off, &v, 2);
}

Test(acpi_pm, registers)
{
	struct acpi_pm p;
	uint32_t l = 0;

	cr_assert_eq(acpi_pm_init(&p, &host), 0);
	cr_expect_eq(inw(&p, 4), ACPI_PM1_CNT_SCI, "ACPI mode is on");
	outw(&p, 2, ACPI_PM1_EN_RTC);
	cr_expect_eq(inw(&p, 2), ACPI_PM1_EN_RTC);
	cr_expect(acpi_pm_rtc_wake_enabled(&p));
	acpi_pm_wake(&p, true);
	cr_expect_eq(inw(&p, 0), ACPI_PM1_STS_WAK | ACPI_PM1_STS_RTC);
	acpi_pm_ops.read(&p, 0, &l, 4);
	cr_expect_eq(l,
		     (uint32_t)ACPI_PM1_EN_RTC << 16 | ACPI_PM1_STS_WAK |
			     ACPI_PM1_STS_RTC,
		     "one dword: status and enable");
	outw(&p, 0, ACPI_PM1_STS_RTC);
	cr_expect_eq(inw(&p, 0), ACPI_PM1_STS_WAK, "write 1 to clear");
	cr_expect_eq(nr_sleep, 0);
	acpi_pm_destroy(&p);
}

Test(acpi_pm, sleep_types)
{
	struct acpi_pm p;

	cr_assert_eq(acpi_pm_init(&p, &host), 0);
	outw(&p, 4, ACPI_SLP_TYP_S3 << 10); /* no SLP_EN: nothing */
	cr_expect_eq(nr_sleep, 0);
	cr_expect_eq(inw(&p, 4), ACPI_SLP_TYP_S3 << 10 | ACPI_PM1_CNT_SCI);
	outw(&p, 4, 0x2400); /* kvm-unit-tests' s3 */
	cr_expect_eq(nr_sleep, 1);
	cr_expect_eq(inw(&p, 4) & ACPI_PM1_SLP_EN, 0, "SLP_EN reads 0");
	cr_expect_eq(exit_code, -1);
	outw(&p, 4, ACPI_PM1_SLP_EN | ACPI_SLP_TYP_S5 << 10);
	cr_expect_eq(exit_code, 0, "S5 is soft off");
	cr_expect_eq(nr_sleep, 1);
	acpi_pm_destroy(&p);
}

Test(acpi_pm, save_load)
{
	struct acpi_pm a, b;
	struct acpi_pm_state st;

	cr_assert_eq(acpi_pm_init(&a, &host), 0);
	cr_assert_eq(acpi_pm_init(&b, &host), 0);
	outw(&a, 2, ACPI_PM1_EN_RTC);
	acpi_pm_wake(&a, false);
	acpi_pm_save(&a, &st);
	cr_assert_eq(acpi_pm_load(&b, &st, err, sizeof(err)), 0);
	cr_expect_eq(inw(&b, 0), ACPI_PM1_STS_WAK);
	cr_expect_eq(inw(&b, 2), ACPI_PM1_EN_RTC);
	st.cnt |= ACPI_PM1_SLP_EN;
	cr_expect_eq(acpi_pm_load(&b, &st, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "SLP_EN"), "%s", err);
	acpi_pm_destroy(&a);
	acpi_pm_destroy(&b);
}
