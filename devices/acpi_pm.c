/* SPDX-License-Identifier: MIT */
/*
 * acpi_pm.c - PM1a event and control blocks (see acpi_pm.h): status,
 * enable, and the sleep request a write of SLP_EN makes.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "common/err.h"
#include "devices/acpi_pm.h"
#include "devices/devices.h"

#define ACPI_PM_STS 0
#define ACPI_PM_EN  2
#define ACPI_PM_CNT 4

/* The 16-bit register at off (0, 2, 4); p->lock held. */
static uint16_t acpi_pm_reg(const struct acpi_pm *p, unsigned int off)
{
	switch (off) {
	case ACPI_PM_STS:
		return p->sts;
	case ACPI_PM_EN:
		return p->en;
	default:
		return p->cnt | ACPI_PM1_CNT_SCI;
	}
}

static void acpi_pm_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct acpi_pm *p = opaque;
	uint8_t *b = data;

	pthread_mutex_lock(&p->lock);
	for (uint32_t i = 0; i < len; i++) {
		unsigned int o = (unsigned int)off + i;

		b[i] = o < ACPI_PM_PORT_LEN
			       ? (uint8_t)(acpi_pm_reg(p, o & ~1U) >>
					   (8 * (o & 1)))
			       : 0xff;
	}
	pthread_mutex_unlock(&p->lock);
}

/* Write the bytes of val selected by mask into the register at off. */
static int acpi_pm_write_reg(struct acpi_pm *p, unsigned int off, uint16_t val,
			     uint16_t mask)
{
	switch (off) {
	case ACPI_PM_STS:
		p->sts &= ~(val & mask); /* write 1 to clear */
		return -1;
	case ACPI_PM_EN:
		p->en = (p->en & ~mask) | (val & mask);
		return -1;
	default:
		val &= mask;
		p->cnt = (p->cnt & ~mask) | (val & ~ACPI_PM1_SLP_EN);
		p->cnt &= ~ACPI_PM1_CNT_SCI;
		if (!(val & ACPI_PM1_SLP_EN))
			return -1;
		return (p->cnt & ACPI_PM1_SLP_TYP) >> 10;
	}
}

static void acpi_pm_sleep(struct acpi_pm *p, int typ)
{
	const struct dev_host *h = p->host;

	if (typ == ACPI_SLP_TYP_S5 && h && h->request_exit)
		h->request_exit(h->opaque, 0,
				"guest entered ACPI S5 (soft off)");
	else if (typ == ACPI_SLP_TYP_S3 && h && h->sleep)
		h->sleep(h->opaque);
}

static void acpi_pm_write(void *opaque, uint64_t off, const void *data,
			  uint32_t len)
{
	struct acpi_pm *p = opaque;
	uint8_t b[4] = {0};
	int typ = -1;

	memcpy(b, data, len < 4 ? len : 4);
	pthread_mutex_lock(&p->lock);
	for (unsigned int o = (unsigned int)off & ~1U;
	     o < off + len && o < ACPI_PM_PORT_LEN; o += 2) {
		uint16_t val = 0, mask = 0;

		for (unsigned int k = 0; k < 2; k++) {
			int i = (int)(o + k) - (int)off;

			if (i < 0 || i >= (int)len)
				continue;
			val |= (uint16_t)(b[i] << (8 * k));
			mask |= (uint16_t)(0xff << (8 * k));
		}
		int t = acpi_pm_write_reg(p, o, val, mask);

		typ = t >= 0 ? t : typ;
	}
	pthread_mutex_unlock(&p->lock);
	if (typ >= 0)
		acpi_pm_sleep(p, typ);
}

const struct bus_ops acpi_pm_ops = {
	.read = acpi_pm_read,
	.write = acpi_pm_write,
};

int acpi_pm_init(struct acpi_pm *p, const struct dev_host *host)
{
	int ret;

	memset(p, 0, sizeof(*p));
	ret = pthread_mutex_init(&p->lock, NULL);
	if (ret)
		return -ret;
	p->host = host;
	return 0;
}

void acpi_pm_destroy(struct acpi_pm *p)
{
	pthread_mutex_destroy(&p->lock);
}

bool acpi_pm_rtc_wake_enabled(struct acpi_pm *p)
{
	bool on;

	pthread_mutex_lock(&p->lock);
	on = p->en & ACPI_PM1_EN_RTC;
	pthread_mutex_unlock(&p->lock);
	return on;
}

void acpi_pm_wake(struct acpi_pm *p, bool rtc)
{
	pthread_mutex_lock(&p->lock);
	p->sts |= ACPI_PM1_STS_WAK | (rtc ? ACPI_PM1_STS_RTC : 0);
	pthread_mutex_unlock(&p->lock);
}

void acpi_pm_save(struct acpi_pm *p, struct acpi_pm_state *st)
{
	pthread_mutex_lock(&p->lock);
	*st = (struct acpi_pm_state){.sts = p->sts, .en = p->en, .cnt = p->cnt};
	pthread_mutex_unlock(&p->lock);
}

int acpi_pm_load(struct acpi_pm *p, const struct acpi_pm_state *st, char *err,
		 size_t errlen)
{
	if (st->pad || (st->cnt & ACPI_PM1_SLP_EN)) {
		err_set(err, errlen,
			"acpi-pm state: SLP_EN stored in PM1_CNT 0x%x, or pad "
			"%u not zero",
			st->cnt, st->pad);
		return -EINVAL;
	}
	pthread_mutex_lock(&p->lock);
	p->sts = st->sts;
	p->en = st->en;
	p->cnt = st->cnt;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

/* ---- the device table's view --------------------------------------------- */

DEV_OPS_STATE(acpi_pm_dev_ops, "acpi_pm", ACPI_PM_STATE_VERSION, struct acpi_pm,
	      struct acpi_pm_state, acpi_pm_save, acpi_pm_load);
