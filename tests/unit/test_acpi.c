/* SPDX-License-Identifier: MIT */
/*
 * test_acpi.c - the ACPI tables of vmm/acpi.c, parsed back the way
 * kvm-unit-tests' lib/acpi.c finds them: scan 0xe0000-0xfffff for the RSDP
 * on 16-byte steps, follow the XSDT (and the RSDT) to the FADT and MADT,
 * the FADT to the FACS. Every checksum and length is checked, and the
 * fields the tests read.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "ept/mem.h"
#include "vmm/acpi.h"

static struct guest_mem gm;
static char err[256];

static void setup(void)
{
	cr_assert_eq(mem_create(&gm, 16ULL << 20), 0);
}

static void teardown(void)
{
	mem_destroy(&gm);
}

TestSuite(acpi, .init = setup, .fini = teardown);

static uint8_t sum(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint8_t s = 0;

	while (n--)
		s += *b++;
	return s;
}

static void *at(uint64_t gpa, size_t len)
{
	void *p = mem_gpa_to_hva(&gm, gpa, len);

	cr_assert_not_null(p, "0x%llx is not RAM", (unsigned long long)gpa);
	return p;
}

/* A table at gpa with signature sig, its length and checksum checked. */
static struct acpi_header *table(uint64_t gpa, const char *sig)
{
	struct acpi_header *h = at(gpa, sizeof(*h));

	cr_assert_eq(memcmp(h->signature, sig, 4), 0, "%s at 0x%llx", sig,
		     (unsigned long long)gpa);
	cr_assert_geq(h->length, sizeof(*h));
	cr_assert_eq(sum(at(gpa, h->length), h->length), 0, "%s checksum", sig);
	return h;
}

/* lib/acpi.c get_rsdp(). */
static struct acpi_rsdp *find_rsdp(void)
{
	for (uint64_t a = 0xe0000; a < 0x100000; a += 16) {
		struct acpi_rsdp *r = at(a, sizeof(*r));

		if (!memcmp(r->signature, "RSD PTR ", 8))
			return r;
	}
	return NULL;
}

static uint64_t find_in_xsdt(const char *sig)
{
	struct acpi_rsdp *r = find_rsdp();
	struct acpi_header *x = table(r->xsdt, "XSDT");
	uint64_t *e = (uint64_t *)(x + 1);

	for (size_t i = 0; i < (x->length - sizeof(*x)) / 8; i++)
		if (!memcmp(((struct acpi_header *)at(e[i], 36))->signature,
			    sig, 4))
			return e[i];
	return 0;
}

Test(acpi, rsdp_found_where_kut_looks)
{
	struct acpi_config c;
	struct acpi_layout l;
	struct acpi_rsdp *r;

	acpi_config_default(&c, 2);
	cr_assert_eq(acpi_write(&gm, &c, &l, err, sizeof(err)), 0, "%s", err);
	r = find_rsdp();
	cr_assert_not_null(r);
	cr_expect_eq((uint64_t)((uint8_t *)r - gm.base), l.rsdp);
	cr_expect_eq(sum(r, 20), 0, "RSDP checksum");
	cr_expect_eq(sum(r, 36), 0, "RSDP extended checksum");
	cr_expect_eq(r->revision, 2);
	cr_expect_eq(r->length, 36);
	cr_expect_eq(r->rsdt, l.rsdt);
	cr_expect_eq(r->xsdt, l.xsdt);
	cr_expect_leq(l.end, ACPI_AREA_END);
}

Test(acpi, rsdt_and_xsdt_list_fadt_and_madt)
{
	struct acpi_config c;
	struct acpi_layout l;
	struct acpi_header *h;
	uint32_t *e32;
	uint64_t *e64;

	acpi_config_default(&c, 1);
	cr_assert_eq(acpi_write(&gm, &c, &l, err, sizeof(err)), 0, "%s", err);
	h = table(l.rsdt, "RSDT");
	cr_assert_eq(h->length, 36 + 2 * 4);
	e32 = (uint32_t *)(h + 1);
	cr_expect(e32[0] == l.fadt && e32[1] == l.madt);
	h = table(l.xsdt, "XSDT");
	cr_assert_eq(h->length, 36 + 2 * 8);
	e64 = (uint64_t *)(h + 1);
	cr_expect(e64[0] == l.fadt && e64[1] == l.madt);
	cr_expect_eq(find_in_xsdt("FACP"), l.fadt);
	cr_expect_eq(find_in_xsdt("APIC"), l.madt);
}

Test(acpi, fadt_fields_and_facs)
{
	struct acpi_config c;
	struct acpi_layout l;
	struct acpi_fadt *f;
	struct acpi_facs *s;

	acpi_config_default(&c, 1);
	cr_assert_eq(acpi_write(&gm, &c, &l, err, sizeof(err)), 0, "%s", err);
	f = (struct acpi_fadt *)table(l.fadt, "FACP");
	cr_expect_eq(f->h.length, 244);
	cr_expect_eq(f->h.revision, 3);
	cr_expect_eq(f->pm_tmr_blk, 0x608);
	cr_expect_eq(f->pm_tmr_len, 4);
	cr_expect_eq(f->pm1a_evt_blk, 0x600);
	cr_expect_eq(f->pm1_evt_len, 4);
	cr_expect_eq(f->pm1a_cnt_blk, 0x604);
	cr_expect_eq(f->pm1_cnt_len, 2);
	cr_expect_eq(f->sci_int, 9);
	cr_expect_eq(f->smi_cmd, 0, "ACPI mode always on");
	cr_expect(f->flags & ACPI_FADT_TMR_VAL_EXT);
	cr_expect(f->x_pm_tmr_blk.space_id == ACPI_GAS_SYSTEM_IO &&
		  f->x_pm_tmr_blk.address == 0x608 &&
		  f->x_pm_tmr_blk.bit_width == 32);
	cr_expect(f->x_pm1a_cnt_blk.address == 0x604 &&
		  f->x_pm1a_cnt_blk.bit_width == 16);
	cr_expect_eq(f->x_firmware_ctrl, 0);
	cr_expect_eq(f->firmware_ctrl, l.facs);
	cr_expect_eq(l.facs % 64, 0, "FACS 64-byte aligned");
	s = at(f->firmware_ctrl, sizeof(*s));
	cr_expect_eq(memcmp(s->signature, "FACS", 4), 0);
	cr_expect_eq(s->length, 64);
	cr_expect_eq(s->waking_vector, 0);
	cr_expect_eq(s->version, 2);
	cr_expect_eq(f->dsdt, l.dsdt);
	cr_expect_eq(table(f->dsdt, "DSDT")->length, 36);
}

Test(acpi, fadt_24bit_timer)
{
	struct acpi_config c;
	struct acpi_layout l;

	acpi_config_default(&c, 1);
	c.pm_tmr_32bit = 0;
	cr_assert_eq(acpi_write(&gm, &c, &l, err, sizeof(err)), 0, "%s", err);
	cr_expect_not(((struct acpi_fadt *)table(l.fadt, "FACP"))->flags &
		      ACPI_FADT_TMR_VAL_EXT);
}

Test(acpi, madt_one_lapic_per_vcpu_and_one_ioapic)
{
	struct acpi_config c;
	struct acpi_layout l;
	struct acpi_madt *m;
	uint8_t *p, *end;
	int lapics = 0, ioapics = 0, overrides = 0, nmis = 0;

	acpi_config_default(&c, 3);
	cr_assert_eq(acpi_write(&gm, &c, &l, err, sizeof(err)), 0, "%s", err);
	m = (struct acpi_madt *)table(l.madt, "APIC");
	cr_expect_eq(m->lapic_addr, 0xfee00000);
	cr_expect_eq(m->flags, ACPI_MADT_PCAT_COMPAT);
	p = (uint8_t *)(m + 1);
	end = (uint8_t *)m + m->h.length;
	cr_expect_eq(l.end, l.madt + m->h.length);
	while (p < end) {
		cr_assert_geq(p[1], 2, "entry length");
		cr_assert_leq(p + p[1], end, "entry inside the table");
		if (p[0] == ACPI_MADT_LAPIC) {
			struct acpi_madt_lapic *e = (void *)p;

			cr_expect_eq(e->length, 8);
			cr_expect_eq(e->apic_id, lapics);
			cr_expect_eq(e->uid, lapics);
			cr_expect_eq(e->flags, 1);
			lapics++;
		} else if (p[0] == ACPI_MADT_IOAPIC) {
			struct acpi_madt_ioapic *e = (void *)p;

			cr_expect(e->length == 12 && e->addr == 0xfec00000 &&
				  e->gsi_base == 0 && e->id == 0);
			ioapics++;
		} else if (p[0] == ACPI_MADT_OVERRIDE) {
			struct acpi_madt_override *e = (void *)p;

			cr_expect_eq(e->length, 10);
			cr_expect((e->source == 0 && e->gsi == 2) ||
				  (e->source == 9 && e->gsi == 9 &&
				   e->flags == 0xd));
			overrides++;
		} else if (p[0] == ACPI_MADT_LAPIC_NMI) {
			cr_expect_eq(p[1], 6);
			nmis++;
		}
		p += p[1];
	}
	cr_expect_eq(p, end);
	cr_expect_eq(lapics, 3);
	cr_expect_eq(ioapics, 1);
	cr_expect_eq(overrides, 2);
	cr_expect_eq(nmis, 1);
}

Test(acpi, refuses_bad_configs)
{
	static uint8_t buf[0x20000];
	struct acpi_config c;
	struct acpi_layout l;

	acpi_config_default(&c, 0);
	cr_expect_eq(acpi_build(&c, buf, sizeof(buf), &l, err, sizeof(err)),
		     -EINVAL);
	cr_expect(strstr(err, "0 vCPUs"), "%s", err);
	acpi_config_default(&c, 256);
	cr_expect_eq(acpi_build(&c, buf, sizeof(buf), &l, err, sizeof(err)),
		     -EINVAL);
	acpi_config_default(&c, 255);
	cr_expect_eq(acpi_build(&c, buf, sizeof(buf), &l, err, sizeof(err)), 0,
		     "%s", err);
	c.base = 0xd0000;
	cr_expect_eq(acpi_build(&c, buf, sizeof(buf), &l, err, sizeof(err)),
		     -EINVAL);
	cr_expect(strstr(err, "where guests look"), "%s", err);
	c.base = 0xe0008;
	cr_expect_eq(acpi_build(&c, buf, sizeof(buf), &l, err, sizeof(err)),
		     -EINVAL);
	c.base = 0xffc00;
	cr_expect_eq(acpi_build(&c, buf, sizeof(buf), &l, err, sizeof(err)),
		     -EINVAL, "tables would run past 1 MiB");
	acpi_config_default(&c, 2);
	cr_expect_eq(acpi_build(&c, buf, 64, &l, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "of room"), "%s", err);
}

Test(acpi, checksum_helper)
{
	uint8_t b[5] = {1, 2, 3, 4, 0};

	b[4] = acpi_checksum(b, 4);
	cr_expect_eq(sum(b, 5), 0);
}
