/* SPDX-License-Identifier: MIT */
/*
 * acpi.c - the ACPI tables of acpi.h, built in a buffer then copied into
 * guest RAM. Layout from c->base: RSDP, RSDT, XSDT, FACS (64-byte aligned,
 * as the spec requires), FADT, DSDT, MADT, each 16-byte aligned.
 */
#include <errno.h>
#include <string.h>

#include "common/err.h"
#include "vmm/acpi.h"

_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP is 36 bytes");
_Static_assert(sizeof(struct acpi_header) == 36, "header is 36 bytes");
_Static_assert(sizeof(struct acpi_fadt) == 244, "FADT rev 3 is 244 bytes");
_Static_assert(sizeof(struct acpi_facs) == 64, "FACS is 64 bytes");

#define ACPI_OEM_ID	  "VMM   "
#define ACPI_OEM_TABLE_ID "VMMACPI "
#define ACPI_CREATOR	  "VMM "
#define ACPI_NR_TABLES	  2   /* in the RSDT/XSDT: FADT, MADT */
#define ACPI_OVERRIDE_LVL 0xd /* active high, level-triggered */

uint8_t acpi_checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += b[i];
	return (uint8_t)-sum;
}

static uint64_t align(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static size_t madt_size(unsigned int nr_cpus)
{
	return sizeof(struct acpi_madt) +
	       nr_cpus * sizeof(struct acpi_madt_lapic) +
	       sizeof(struct acpi_madt_ioapic) +
	       2 * sizeof(struct acpi_madt_override) +
	       sizeof(struct acpi_madt_lapic_nmi);
}

static void acpi_layout(const struct acpi_config *c, struct acpi_layout *l)
{
	l->rsdp = c->base;
	l->rsdt = align(l->rsdp + sizeof(struct acpi_rsdp), 16);
	l->xsdt = align(l->rsdt + sizeof(struct acpi_header) +
				ACPI_NR_TABLES * sizeof(uint32_t),
			16);
	l->facs = align(l->xsdt + sizeof(struct acpi_header) +
				ACPI_NR_TABLES * sizeof(uint64_t),
			64);
	l->fadt = align(l->facs + sizeof(struct acpi_facs), 16);
	l->dsdt = align(l->fadt + sizeof(struct acpi_fadt), 16);
	l->madt = align(l->dsdt + sizeof(struct acpi_header), 16);
	l->end = l->madt + madt_size(c->nr_cpus);
}

/* The header of a table of len bytes; its checksum is set last. */
static void acpi_header(void *p, const char *sig, uint32_t len, uint8_t rev)
{
	struct acpi_header *h = p;

	memcpy(h->signature, sig, 4);
	h->length = len;
	h->revision = rev;
	memcpy(h->oem_id, ACPI_OEM_ID, 6);
	memcpy(h->oem_table_id, ACPI_OEM_TABLE_ID, 8);
	h->oem_revision = 1;
	memcpy(h->creator_id, ACPI_CREATOR, 4);
	h->creator_revision = 1;
}

static void acpi_seal(void *p)
{
	struct acpi_header *h = p;

	h->checksum = acpi_checksum(p, h->length);
}

static void acpi_rsdp(uint8_t *p, const struct acpi_layout *l)
{
	struct acpi_rsdp r = {.revision = 2, .length = sizeof(r)};

	memcpy(r.signature, "RSD PTR ", 8);
	memcpy(r.oem_id, ACPI_OEM_ID, 6);
	r.rsdt = (uint32_t)l->rsdt;
	r.xsdt = l->xsdt;
	r.checksum = acpi_checksum(&r, 20);
	r.ext_checksum = acpi_checksum(&r, sizeof(r));
	memcpy(p, &r, sizeof(r));
}

static void acpi_sdts(uint8_t *rsdt, uint8_t *xsdt, const struct acpi_layout *l)
{
	uint32_t r[ACPI_NR_TABLES] = {(uint32_t)l->fadt, (uint32_t)l->madt};
	uint64_t x[ACPI_NR_TABLES] = {l->fadt, l->madt};
	size_t hl = sizeof(struct acpi_header);

	acpi_header(rsdt, "RSDT", (uint32_t)(hl + sizeof(r)), 1);
	memcpy(rsdt + hl, r, sizeof(r));
	acpi_seal(rsdt);
	acpi_header(xsdt, "XSDT", (uint32_t)(hl + sizeof(x)), 1);
	memcpy(xsdt + hl, x, sizeof(x));
	acpi_seal(xsdt);
}

static struct acpi_gas acpi_io(uint16_t port, uint8_t bytes)
{
	return (struct acpi_gas){ACPI_GAS_SYSTEM_IO, (uint8_t)(bytes * 8), 0, 0,
				 port};
}

static void acpi_fadt(uint8_t *p, const struct acpi_config *c,
		      const struct acpi_layout *l)
{
	struct acpi_fadt f = {0};

	acpi_header(&f, "FACP", sizeof(f), 3);
	f.firmware_ctrl = (uint32_t)l->facs;
	f.dsdt = (uint32_t)l->dsdt;
	f.sci_int = ACPI_SCI_IRQ;
	f.pm1a_evt_blk = c->pm1a_evt;
	f.pm1a_cnt_blk = c->pm1a_cnt;
	f.pm_tmr_blk = c->pm_tmr;
	f.pm1_evt_len = ACPI_PM1_EVT_LEN;
	f.pm1_cnt_len = ACPI_PM1_CNT_LEN;
	f.pm_tmr_len = ACPI_PM_TMR_LEN;
	f.p_lvl2_lat = 101;  /* > 100: no C2 */
	f.p_lvl3_lat = 1001; /* > 1000: no C3 */
	f.boot_arch = ACPI_BOOT_NO_VGA;
	f.flags = ACPI_FADT_WBINVD | ACPI_FADT_C1 | ACPI_FADT_PWR_BUTTON |
		  ACPI_FADT_SLP_BUTTON;
	if (c->pm_tmr_32bit)
		f.flags |= ACPI_FADT_TMR_VAL_EXT;
	f.x_pm1a_evt_blk = acpi_io(c->pm1a_evt, ACPI_PM1_EVT_LEN);
	f.x_pm1a_cnt_blk = acpi_io(c->pm1a_cnt, ACPI_PM1_CNT_LEN);
	f.x_pm_tmr_blk = acpi_io(c->pm_tmr, ACPI_PM_TMR_LEN);
	f.h.checksum = acpi_checksum(&f, sizeof(f));
	memcpy(p, &f, sizeof(f));
}

static void acpi_facs(uint8_t *p)
{
	struct acpi_facs f = {.length = sizeof(f), .version = 2};

	memcpy(f.signature, "FACS", 4);
	memcpy(p, &f, sizeof(f));
}

/* Append one MADT entry of n bytes at pos; returns the next position. */
static uint8_t *madt_put(uint8_t *pos, const void *e, size_t n)
{
	memcpy(pos, e, n);
	return pos + n;
}

static void acpi_madt(uint8_t *p, const struct acpi_config *c)
{
	struct acpi_madt m = {.lapic_addr = ACPI_LAPIC_ADDR,
			      .flags = ACPI_MADT_PCAT_COMPAT};
	struct acpi_madt_ioapic io = {ACPI_MADT_IOAPIC, sizeof(io), 0, 0,
				      ACPI_IOAPIC_ADDR, 0};
	struct acpi_madt_override irq0 = {
		ACPI_MADT_OVERRIDE, sizeof(irq0), 0, 0, 2, 0};
	struct acpi_madt_override sci = {
		ACPI_MADT_OVERRIDE, sizeof(sci),  0,
		ACPI_SCI_IRQ,	    ACPI_SCI_IRQ, ACPI_OVERRIDE_LVL};
	struct acpi_madt_lapic_nmi nmi = {ACPI_MADT_LAPIC_NMI, sizeof(nmi),
					  0xff, 0, 1};
	uint8_t *pos = p + sizeof(m);

	acpi_header(&m, "APIC", (uint32_t)madt_size(c->nr_cpus), 1);
	memcpy(p, &m, sizeof(m));
	for (unsigned int i = 0; i < c->nr_cpus; i++) {
		struct acpi_madt_lapic l = {ACPI_MADT_LAPIC, sizeof(l),
					    (uint8_t)i, (uint8_t)i, 1};

		pos = madt_put(pos, &l, sizeof(l));
	}
	pos = madt_put(pos, &io, sizeof(io));
	pos = madt_put(pos, &irq0, sizeof(irq0));
	pos = madt_put(pos, &sci, sizeof(sci));
	madt_put(pos, &nmi, sizeof(nmi));
	acpi_seal(p);
}

void acpi_config_default(struct acpi_config *c, unsigned int nr_cpus)
{
	*c = (struct acpi_config){
		.base = ACPI_AREA_BASE,
		.nr_cpus = nr_cpus,
		.pm1a_evt = ACPI_PM_BASE,
		.pm1a_cnt = ACPI_PM_BASE + ACPI_PM1_EVT_LEN,
		.pm_tmr = ACPI_PM_BASE + ACPI_PM_TMR_OFF,
		.pm_tmr_32bit = 1,
	};
}

static int acpi_check(const struct acpi_config *c, const struct acpi_layout *l,
		      size_t len, char *err, size_t errlen)
{
	if (!c->nr_cpus || c->nr_cpus > ACPI_MAX_CPUS) {
		err_set(err, errlen, "acpi: %u vCPUs, must be 1 to %d",
			c->nr_cpus, ACPI_MAX_CPUS);
		return -EINVAL;
	}
	if (c->base < ACPI_AREA_BASE || c->base % 16 ||
	    l->end > ACPI_AREA_END) {
		err_set(err, errlen,
			"acpi: tables [0x%llx-0x%llx) must start 16-aligned "
			"and lie in [0x%llx-0x%llx), where guests look",
			(unsigned long long)c->base, (unsigned long long)l->end,
			(unsigned long long)ACPI_AREA_BASE,
			(unsigned long long)ACPI_AREA_END);
		return -EINVAL;
	}
	if (l->end - c->base > len) {
		err_set(err, errlen, "acpi: %llu bytes of tables, %zu of room",
			(unsigned long long)(l->end - c->base), len);
		return -EINVAL;
	}
	return 0;
}

int acpi_build(const struct acpi_config *c, uint8_t *buf, size_t len,
	       struct acpi_layout *out, char *err, size_t errlen)
{
	struct acpi_layout l;
	int r;

	acpi_layout(c, &l);
	r = acpi_check(c, &l, len, err, errlen);
	if (r)
		return r;
	memset(buf, 0, l.end - c->base);
	acpi_rsdp(buf + (l.rsdp - c->base), &l);
	acpi_sdts(buf + (l.rsdt - c->base), buf + (l.xsdt - c->base), &l);
	acpi_facs(buf + (l.facs - c->base));
	acpi_fadt(buf + (l.fadt - c->base), c, &l);
	acpi_header(buf + (l.dsdt - c->base), "DSDT",
		    sizeof(struct acpi_header), 2);
	acpi_seal(buf + (l.dsdt - c->base));
	acpi_madt(buf + (l.madt - c->base), c);
	*out = l;
	return 0;
}

int acpi_write(const struct guest_mem *m, const struct acpi_config *c,
	       struct acpi_layout *out, char *err, size_t errlen)
{
	uint64_t room = c->base < ACPI_AREA_END ? ACPI_AREA_END - c->base : 0;
	uint8_t *hva = room ? mem_gpa_to_hva(m, c->base, room) : NULL;
	int r;

	if (!hva) {
		err_set(err, errlen, "acpi: [0x%llx-0x%llx) is not guest RAM",
			(unsigned long long)c->base,
			(unsigned long long)ACPI_AREA_END);
		return -EFAULT;
	}
	r = acpi_build(c, hva, room, out, err, errlen);
	if (!r)
		ept_mark_dirty(m, c->base, out->end - c->base);
	return r;
}
