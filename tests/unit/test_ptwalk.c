/* SPDX-License-Identifier: MIT */
/*
 * test_ptwalk.c - the guest page-table walker on synthetic page tables.
 *
 * Guest RAM is a 16 MiB calloc'd array read through a callback that fails
 * with -EFAULT outside it; a tiny builder hands out zeroed 4 KiB tables from
 * 1 MiB up and maps GVAs with 4 KiB, 2 MiB or 1 GiB leaves. The tests cover
 * each page size, the high half, the mode and canonical-address checks, a
 * stop at every level, each reserved-bit rule, tables outside RAM, the
 * effective rights, a recursive PML4 slot, ptw_format's truncation, the leaf
 * enumerator (each table read once through recursive slots, cycles and
 * shared sub-tables; its table and time budgets) and a seeded fuzz of
 * random entries and addresses.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "ept/ptwalk.h"

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

#define RAM_SIZE   (16 * MiB)
#define TABLE_BASE (1 * MiB)

#define PT_P   (1ULL << 0)
#define PT_RW  (1ULL << 1)
#define PT_US  (1ULL << 2)
#define PT_A   (1ULL << 5)
#define PT_D   (1ULL << 6)
#define PT_PS  (1ULL << 7)
#define PT_XD  (1ULL << 63)
#define PT_TBL (PT_P | PT_RW | PT_US | PT_A)

#define ADDR_MASK 0x000ffffffffff000ULL

#define CR0_PE	 (1ULL << 0)
#define CR0_PG	 (1ULL << 31)
#define CR4_PAE	 (1ULL << 5)
#define CR4_LA57 (1ULL << 12)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)
#define EFER_NXE (1ULL << 11)

struct fake {
	uint8_t *ram;
	uint64_t next; /* next free table */
	uint64_t pml4; /* CR3 */
	unsigned long reads;
};

static struct fake F;

static void setup(void)
{
	F.ram = calloc(1, RAM_SIZE);
	cr_assert_not_null(F.ram);
	F.next = TABLE_BASE;
	F.reads = 0;
	F.pml4 = F.next;
	F.next += 4 * KiB;
}

static void teardown(void)
{
	free(F.ram);
	F.ram = NULL;
}

TestSuite(ptwalk, .init = setup, .fini = teardown);

static int fake_read(void *opaque, uint64_t gpa, uint64_t *val)
{
	struct fake *f = opaque;

	f->reads++;
	if (gpa >= RAM_SIZE || RAM_SIZE - gpa < 8)
		return -EFAULT;
	memcpy(val, f->ram + gpa, 8);
	return 0;
}

static uint64_t ram_get(uint64_t gpa)
{
	uint64_t v;

	cr_assert(gpa + 8 <= RAM_SIZE);
	memcpy(&v, F.ram + gpa, 8);
	return v;
}

static void ram_set(uint64_t gpa, uint64_t v)
{
	cr_assert(gpa + 8 <= RAM_SIZE);
	memcpy(F.ram + gpa, &v, 8);
}

static uint64_t table_alloc(void)
{
	uint64_t t = F.next;

	cr_assert(t + 4 * KiB <= RAM_SIZE);
	F.next += 4 * KiB;
	return t;
}

static unsigned int idx(uint64_t gva, int level)
{
	return (gva >> (12 + 9 * (level - 1))) & 511;
}

/* GPA of the entry for gva at level, making missing tables on the way. */
static uint64_t entry_addr(uint64_t gva, int level)
{
	uint64_t table = F.pml4;

	for (int l = 4; l > level; l--) {
		uint64_t slot = table + idx(gva, l) * 8;
		uint64_t e = ram_get(slot);

		if (!(e & PT_P)) {
			e = table_alloc() | PT_TBL;
			ram_set(slot, e);
		}
		table = e & ADDR_MASK;
	}
	return table + idx(gva, level) * 8;
}

/* Map gva -> gpa with a leaf at level (1: 4 KiB, 2: 2 MiB, 3: 1 GiB). */
static uint64_t map(uint64_t gva, uint64_t gpa, int level, uint64_t flags)
{
	uint64_t slot = entry_addr(gva, level);

	ram_set(slot, gpa | flags | (level > 1 ? PT_PS : 0));
	return slot;
}

static void entry_or(uint64_t gva, int level, uint64_t bits)
{
	uint64_t slot = entry_addr(gva, level);

	ram_set(slot, ram_get(slot) | bits);
}

static void entry_clear(uint64_t gva, int level, uint64_t bits)
{
	uint64_t slot = entry_addr(gva, level);

	ram_set(slot, ram_get(slot) & ~bits);
}

static struct ptw_ctx ctx(void)
{
	return (struct ptw_ctx){
		.read = fake_read,
		.opaque = &F,
		.cr0 = CR0_PE | CR0_PG,
		.cr3 = F.pml4,
		.cr4 = CR4_PAE,
		.efer = EFER_LME | EFER_LMA | EFER_NXE,
		.maxphyaddr = 0,
	};
}

static struct ptw_result walk_ok(const struct ptw_ctx *c, uint64_t gva)
{
	struct ptw_result r;
	int ret = ptw_translate(c, gva, &r);

	cr_assert_eq(ret, 0, "gva %#" PRIx64 ": %s", gva,
		     ptw_status_name(r.status));
	cr_assert_eq(r.status, PTW_OK);
	return r;
}

static struct ptw_result walk_fail(const struct ptw_ctx *c, uint64_t gva,
				   enum ptw_status want, int level)
{
	struct ptw_result r;
	int ret = ptw_translate(c, gva, &r);

	cr_assert_eq(ret, -EFAULT);
	cr_assert_eq(r.status, want, "gva %#" PRIx64 ": %s, want %s", gva,
		     ptw_status_name(r.status), ptw_status_name(want));
	cr_assert_eq(r.level, level);
	cr_assert_not(r.writable || r.user || r.nx);
	return r;
}

Test(ptwalk, map_4k)
{
	struct ptw_ctx c = ctx();
	struct ptw_result r;

	map(0x401000, 0x5000, 1, PT_P | PT_RW | PT_US);
	r = walk_ok(&c, 0x401123);
	cr_expect_eq(r.gpa, 0x5123);
	cr_expect_eq(r.page_size, 4 * KiB);
	cr_expect_eq(r.level, 1);
	cr_assert_eq(r.nr_steps, 4);
	cr_expect_eq(r.steps[0].table_gpa, F.pml4);
	for (int i = 0; i < 4; i++) {
		cr_expect_eq(r.steps[i].level, 4 - i);
		cr_expect_eq(r.steps[i].index, idx(0x401123, 4 - i));
	}
	cr_expect_eq(r.steps[3].entry, 0x5000 | PT_P | PT_RW | PT_US);
	cr_expect_eq(r.steps[1].table_gpa, r.steps[0].entry & ADDR_MASK);
	r = walk_ok(&c, 0x401fff);
	cr_expect_eq(r.gpa, 0x5fff);
}

Test(ptwalk, map_2m)
{
	struct ptw_ctx c = ctx();
	struct ptw_result r;

	map(0x40000000, 0x600000, 2, PT_P | PT_RW);
	r = walk_ok(&c, 0x40012345);
	cr_expect_eq(r.gpa, 0x612345);
	cr_expect_eq(r.page_size, 2 * MiB);
	cr_expect_eq(r.level, 2);
	cr_expect_eq(r.nr_steps, 3);
	r = walk_ok(&c, 0x401fffff);
	cr_expect_eq(r.gpa, 0x7fffff);
}

Test(ptwalk, map_1g)
{
	struct ptw_ctx c = ctx();
	struct ptw_result r;

	map(0x8000000000ULL, 0x40000000, 3, PT_P | PT_RW);
	r = walk_ok(&c, 0x8012345678ULL);
	cr_expect_eq(r.gpa, 0x52345678);
	cr_expect_eq(r.page_size, GiB);
	cr_expect_eq(r.level, 3);
	cr_expect_eq(r.nr_steps, 2);
	cr_expect_eq(r.steps[0].index, 1);
}

/* Bit 12 is PAT in large leaves and bit 7 in a PTE: neither is reserved. */
Test(ptwalk, pat_bits)
{
	struct ptw_ctx c = ctx();
	struct ptw_result r;

	map(0x8000000000ULL, 0x40000000 | (1ULL << 12), 3, PT_P);
	map(0x200000, 0x800000 | (1ULL << 12), 2, PT_P);
	map(0x1000, 0x3000 | PT_PS, 1, PT_P);
	r = walk_ok(&c, 0x8000000abcULL);
	cr_expect_eq(r.gpa, 0x40000abc);
	r = walk_ok(&c, 0x200abc);
	cr_expect_eq(r.gpa, 0x800abc);
	r = walk_ok(&c, 0x1abc);
	cr_expect_eq(r.gpa, 0x3abc);
	cr_expect_eq(r.page_size, 4 * KiB);
}

Test(ptwalk, high_half)
{
	struct ptw_ctx c = ctx();
	struct ptw_result r;

	map(0xffff800000000000ULL, 0x9000, 1, PT_P | PT_RW);
	map(0xffffffff80000000ULL, 0x200000, 2, PT_P);
	r = walk_ok(&c, 0xffff800000000010ULL);
	cr_expect_eq(r.gpa, 0x9010);
	cr_expect_eq(r.steps[0].index, 256);
	r = walk_ok(&c, 0xffffffff80123456ULL);
	cr_expect_eq(r.gpa, 0x323456);
	cr_expect_eq(r.steps[0].index, 511);
	cr_expect_eq(r.steps[1].index, 510);
}

Test(ptwalk, non_canonical)
{
	static const uint64_t bad[] = {
		0x0000800000000000ULL, 0xffff7fffffffffffULL,
		0x8000000000000000ULL, 0x0001000000000000ULL,
		0x7fffffffffffffffULL, 0xfffe800000000000ULL,
	};
	struct ptw_ctx c = ctx();

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ptw_result r =
			walk_fail(&c, bad[i], PTW_NON_CANONICAL, 0);

		cr_expect_eq(r.nr_steps, 0);
	}
	cr_expect_eq(F.reads, 0);
	/* The edges are canonical: they walk (and find nothing). */
	walk_fail(&c, 0x00007fffffffffffULL, PTW_NOT_PRESENT, 4);
	walk_fail(&c, 0xffff800000000000ULL, PTW_NOT_PRESENT, 4);
}

Test(ptwalk, not_present_each_level)
{
	struct ptw_ctx c = ctx();
	const uint64_t gva = 0x7f1234567000ULL;

	for (int level = 4; level >= 1; level--) {
		struct ptw_result r;

		map(gva, 0x5000, 1, PT_P | PT_RW);
		walk_ok(&c, gva);
		entry_clear(gva, level, PT_P);
		r = walk_fail(&c, gva, PTW_NOT_PRESENT, level);
		cr_expect_eq(r.nr_steps, 5 - level);
		cr_expect_eq(r.steps[r.nr_steps - 1].level, level);
		entry_or(gva, level, PT_P);
	}
	/* An empty PML4. */
	walk_fail(&c, 0x1000, PTW_NOT_PRESENT, 4);
}

Test(ptwalk, reserved_ps_in_pml4e)
{
	struct ptw_ctx c = ctx();

	map(0x1000, 0x5000, 1, PT_P);
	entry_or(0x1000, 4, PT_PS);
	walk_fail(&c, 0x1000, PTW_RESERVED, 4);
}

Test(ptwalk, reserved_large_leaf_bits)
{
	struct ptw_ctx c = ctx();

	map(0x200000, 0x400000 | (1ULL << 13), 2, PT_P);
	walk_fail(&c, 0x200000, PTW_RESERVED, 2);
	map(0x200000, 0x400000 | (1ULL << 20), 2, PT_P);
	walk_fail(&c, 0x200000, PTW_RESERVED, 2);
	map(0x200000, 0x400000, 2, PT_P);
	walk_ok(&c, 0x200000);

	map(0x8000000000ULL, 0x40000000 | (1ULL << 20), 3, PT_P);
	walk_fail(&c, 0x8000000000ULL, PTW_RESERVED, 3);
	map(0x8000000000ULL, 0x40000000 | (1ULL << 29), 3, PT_P);
	walk_fail(&c, 0x8000000000ULL, PTW_RESERVED, 3);
	map(0x8000000000ULL, 0x40000000 | (1ULL << 13), 3, PT_P);
	walk_fail(&c, 0x8000000000ULL, PTW_RESERVED, 3);
	map(0x8000000000ULL, 0x40000000, 3, PT_P);
	walk_ok(&c, 0x8000000000ULL);
}

Test(ptwalk, reserved_above_maxphyaddr)
{
	struct ptw_ctx c = ctx();
	struct ptw_result r;

	map(0x1000, 0x5000, 1, PT_P);
	c.maxphyaddr = 39;
	walk_ok(&c, 0x1000);
	entry_or(0x1000, 2, 1ULL << 40);
	walk_fail(&c, 0x1000, PTW_RESERVED, 2);
	c.maxphyaddr = 41;
	walk_fail(&c, 0x1000, PTW_BAD_TABLE, 1); /* bit 40 is an address */
	c.maxphyaddr = 0;
	walk_fail(&c, 0x1000, PTW_BAD_TABLE, 1);
	entry_clear(0x1000, 2, 1ULL << 40);

	/* In a leaf, and bit 51 with the full 52 bits. */
	c.maxphyaddr = 39;
	map(0x1000, 0x5000 | (1ULL << 39), 1, PT_P);
	walk_fail(&c, 0x1000, PTW_RESERVED, 1);
	c.maxphyaddr = 52;
	r = walk_ok(&c, 0x1000);
	cr_expect_eq(r.gpa, 0x5000 | (1ULL << 39));
	map(0x1000, 0x5000 | (1ULL << 51), 1, PT_P);
	r = walk_ok(&c, 0x1000);
	cr_expect_eq(r.gpa, 0x5000 | (1ULL << 51));
	/* Bits 62:52 are ignored in 4-level paging (protection keys, software).
	 */
	map(0x1000, 0x5000 | (0x7ffULL << 52), 1, PT_P);
	r = walk_ok(&c, 0x1000);
	cr_expect_eq(r.gpa, 0x5000);
}

Test(ptwalk, reserved_cr3_bits_masked)
{
	struct ptw_ctx c = ctx();
	struct ptw_result r;

	map(0x1000, 0x5000, 1, PT_P);
	c.cr3 = F.pml4 | 0xfff | (1ULL << 63); /* PCID and no-flush bit */
	r = walk_ok(&c, 0x1000);
	cr_expect_eq(r.steps[0].table_gpa, F.pml4);
}

Test(ptwalk, xd_and_nxe)
{
	struct ptw_ctx c = ctx();
	struct ptw_result r;

	map(0x1000, 0x5000, 1, PT_P | PT_RW);
	r = walk_ok(&c, 0x1000);
	cr_expect_not(r.nx);
	entry_or(0x1000, 2, PT_XD);
	c.efer &= ~EFER_NXE;
	walk_fail(&c, 0x1000, PTW_RESERVED, 2);
	c.efer |= EFER_NXE;
	r = walk_ok(&c, 0x1000);
	cr_expect(r.nx);
	cr_expect(r.writable);

	entry_clear(0x1000, 2, PT_XD);
	entry_or(0x1000, 1, PT_XD);
	r = walk_ok(&c, 0x1000);
	cr_expect(r.nx);
	c.efer &= ~EFER_NXE;
	walk_fail(&c, 0x1000, PTW_RESERVED, 1);
}

Test(ptwalk, bad_table)
{
	struct ptw_ctx c = ctx();
	struct ptw_result r;

	map(0x1000, 0x5000, 1, PT_P);
	ram_set(entry_addr(0x1000, 3), 0x100000000ULL | PT_TBL);
	r = walk_fail(&c, 0x1000, PTW_BAD_TABLE, 2);
	cr_assert_eq(r.nr_steps, 3);
	cr_expect_eq(r.steps[2].level, 2);
	cr_expect_eq(r.steps[2].table_gpa, 0x100000000ULL);
	cr_expect_eq(r.steps[2].index, 0);
	cr_expect_eq(r.steps[2].entry, 0);

	/* The last page of RAM is readable; CR3 just past it is not. */
	ram_set(entry_addr(0x1000, 3), (RAM_SIZE - 4 * KiB) | PT_TBL);
	walk_fail(&c, 0x1000, PTW_NOT_PRESENT, 2);
	c.cr3 = RAM_SIZE;
	r = walk_fail(&c, 0x1000, PTW_BAD_TABLE, 4);
	cr_expect_eq(r.nr_steps, 1);
}

Test(ptwalk, paging_off)
{
	struct ptw_ctx c = ctx();
	struct ptw_result r;

	c.cr0 &= ~CR0_PG;
	cr_assert_eq(ptw_translate(&c, 0x12345678, &r), 0);
	cr_expect_eq(r.status, PTW_NO_PAGING);
	cr_expect_eq(r.gpa, 0x12345678);
	cr_expect_eq(r.nr_steps, 0);
	/* Even with every other mode bit clear, and any address. */
	c.cr4 = c.efer = 0;
	cr_assert_eq(ptw_translate(&c, 0xdead800000000000ULL, &r), 0);
	cr_expect_eq(r.status, PTW_NO_PAGING);
	cr_expect_eq(r.gpa, 0xdead800000000000ULL);
	cr_expect_eq(F.reads, 0);
}

Test(ptwalk, unsupported_modes)
{
	struct ptw_ctx c = ctx();

	map(0x1000, 0x5000, 1, PT_P);
	c.cr4 &= ~CR4_PAE; /* 32-bit paging */
	walk_fail(&c, 0x1000, PTW_UNSUPPORTED, 0);
	c = ctx();
	c.efer &= ~EFER_LMA; /* PAE paging */
	walk_fail(&c, 0x1000, PTW_UNSUPPORTED, 0);
	c = ctx();
	c.cr4 |= CR4_LA57; /* 5-level */
	walk_fail(&c, 0x1000, PTW_UNSUPPORTED, 0);
	/* Checked before canonicality. */
	walk_fail(&c, 0x0000800000000000ULL, PTW_UNSUPPORTED, 0);
	cr_expect_eq(F.reads, 0);
}

Test(ptwalk, effective_rights)
{
	struct ptw_ctx c = ctx();
	struct ptw_result r;

	map(0x1000, 0x5000, 1, PT_P | PT_RW | PT_US);
	r = walk_ok(&c, 0x1000);
	cr_expect(r.writable);
	cr_expect(r.user);

	entry_clear(0x1000, 3, PT_RW);
	r = walk_ok(&c, 0x1000);
	cr_expect_not(r.writable);
	cr_expect(r.user);
	entry_or(0x1000, 3, PT_RW);

	entry_clear(0x1000, 1, PT_US);
	r = walk_ok(&c, 0x1000);
	cr_expect(r.writable);
	cr_expect_not(r.user);

	entry_clear(0x1000, 4, PT_RW);
	r = walk_ok(&c, 0x1000);
	cr_expect_not(r.writable);
	cr_expect_not(r.user);
}

Test(ptwalk, accessed_dirty)
{
	struct ptw_ctx c = ctx();
	struct ptw_result r;

	/* The tables have A set; only the leaf's A/D count. */
	map(0x1000, 0x5000, 1, PT_P);
	entry_or(0x1000, 2, PT_D);
	r = walk_ok(&c, 0x1000);
	cr_expect_not(r.accessed);
	cr_expect_not(r.dirty);
	map(0x1000, 0x5000, 1, PT_P | PT_A);
	r = walk_ok(&c, 0x1000);
	cr_expect(r.accessed);
	cr_expect_not(r.dirty);
	map(0x1000, 0x5000, 1, PT_P | PT_A | PT_D);
	r = walk_ok(&c, 0x1000);
	cr_expect(r.accessed);
	cr_expect(r.dirty);
	map(0x200000, 0x400000, 2, PT_P | PT_D);
	r = walk_ok(&c, 0x200000);
	cr_expect_not(r.accessed);
	cr_expect(r.dirty);
}

Test(ptwalk, recursive_pml4)
{
	struct ptw_ctx c = ctx();
	struct ptw_result r;
	uint64_t pdpt;

	map(0x1000, 0x5000, 1, PT_P | PT_RW);
	ram_set(F.pml4 + 511 * 8, F.pml4 | PT_P | PT_RW);
	pdpt = ram_get(F.pml4) & ADDR_MASK;

	/* PML4[511] four times: the PML4 itself. */
	r = walk_ok(&c, 0xfffffffffffff000ULL);
	cr_expect_eq(r.gpa, F.pml4);
	cr_expect_eq(r.page_size, 4 * KiB);
	cr_assert_eq(r.nr_steps, 4);
	for (int i = 0; i < 4; i++)
		cr_expect_eq(r.steps[i].table_gpa, F.pml4);
	r = walk_ok(&c, 0xfffffffffffffff8ULL);
	cr_expect_eq(r.gpa, F.pml4 + 0xff8);
	/* Three times, then slot 0: the table PML4[0] points at. */
	r = walk_ok(&c, 0xffffffffffe00000ULL);
	cr_expect_eq(r.gpa, pdpt);
	cr_expect_not(r.user);
}

Test(ptwalk, status_names)
{
	cr_expect_str_eq(ptw_status_name(PTW_OK), "ok");
	cr_expect_str_eq(ptw_status_name(PTW_NOT_PRESENT), "not-present");
	cr_expect_str_eq(ptw_status_name(PTW_RESERVED), "reserved-bit");
	cr_expect_str_eq(ptw_status_name(PTW_NON_CANONICAL), "non-canonical");
	cr_expect_str_eq(ptw_status_name(PTW_NO_PAGING), "paging-off");
	cr_expect_str_eq(ptw_status_name(PTW_UNSUPPORTED), "unsupported");
	cr_expect_str_eq(ptw_status_name(PTW_BAD_TABLE), "bad-table");
	cr_expect_not_null(ptw_status_name((enum ptw_status)42));
	cr_expect_not_null(ptw_status_name((enum ptw_status)7));
}

static int format_len(const struct ptw_result *r, uint64_t gva, char *buf,
		      size_t len)
{
	int n = ptw_format(r, gva, buf, len);

	cr_assert_geq(n, 0);
	cr_assert_lt((size_t)n, len);
	cr_assert_eq(strlen(buf), (size_t)n);
	return n;
}

Test(ptwalk, format_ok)
{
	struct ptw_ctx c = ctx();
	struct ptw_result r;
	char buf[1024], want[128];

	map(0x401000, 0x5000, 1, PT_P | PT_RW | PT_US | PT_A | PT_D);
	r = walk_ok(&c, 0x401123);
	format_len(&r, 0x401123, buf, sizeof(buf));
	snprintf(want, sizeof(want),
		 "PML4[0x000] @ 0x%016" PRIx64 " = 0x%016" PRIx64 " P W U A\n",
		 F.pml4, ram_get(F.pml4));
	cr_expect(strstr(buf, want), "%s", buf);
	cr_expect(strstr(buf, "\nPDPT[0x000] @ "), "%s", buf);
	cr_expect(strstr(buf, "\nPD[0x002] @ "), "%s", buf);
	cr_expect(strstr(buf, "\nPT[0x001] @ "), "%s", buf);
	cr_expect(strstr(buf, "= 0x0000000000005067 P W U A D\n"), "%s", buf);
	cr_expect(strstr(buf, "GVA 0x0000000000401123 -> GPA "
			      "0x0000000000005123 (4 KiB page, rw, user"),
		  "%s", buf);

	map(0x40000000, 0x600000, 2, PT_P | PT_XD);
	r = walk_ok(&c, 0x40000000);
	format_len(&r, 0x40000000, buf, sizeof(buf));
	cr_expect(strstr(buf, " P PS XD\n"), "%s", buf);
	cr_expect(strstr(buf, "(2 MiB page, ro, supervisor, nx)"), "%s", buf);
}

Test(ptwalk, format_failures)
{
	struct ptw_ctx c = ctx();
	struct ptw_result r;
	char buf[1024];

	map(0x1000, 0x5000, 1, PT_P);
	entry_clear(0x1000, 2, PT_P);
	walk_fail(&c, 0x1000, PTW_NOT_PRESENT, 2);
	ptw_translate(&c, 0x1000, &r);
	format_len(&r, 0x1000, buf, sizeof(buf));
	cr_expect(strstr(buf, "GVA 0x0000000000001000: stopped at PD "
			      "(level 2): not-present\n"),
		  "%s", buf);

	ram_set(entry_addr(0x1000, 4), 0x100000000ULL | PT_TBL);
	ptw_translate(&c, 0x1000, &r);
	format_len(&r, 0x1000, buf, sizeof(buf));
	cr_expect(strstr(buf, "PDPT[0x000] @ 0x0000000100000000 = <not RAM>"),
		  "%s", buf);
	cr_expect(strstr(buf, "stopped at PDPT (level 3): bad-table"), "%s",
		  buf);

	ptw_translate(&c, 0x0000800000000000ULL, &r);
	format_len(&r, 0x0000800000000000ULL, buf, sizeof(buf));
	cr_expect_str_eq(buf, "GVA 0x0000800000000000: non-canonical\n");

	c.cr0 = 0;
	ptw_translate(&c, 0xb8000, &r);
	format_len(&r, 0xb8000, buf, sizeof(buf));
	cr_expect(strstr(buf, "-> GPA 0x00000000000b8000 (paging off)"), "%s",
		  buf);
}

Test(ptwalk, format_truncates)
{
	static const size_t lens[] = {0, 1, 10, 79, 80, 81};
	struct ptw_ctx c = ctx();
	struct ptw_result r;
	char full[1024], buf[1024];
	int n;

	map(0x401000, 0x5000, 1, PT_P | PT_RW);
	r = walk_ok(&c, 0x401000);
	n = format_len(&r, 0x401000, full, sizeof(full));
	cr_assert_gt(n, 100);
	cr_expect_eq(ptw_format(&r, 0x401000, NULL, 0), n);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		size_t len = lens[i];

		memset(buf, 'X', sizeof(buf));
		cr_expect_eq(ptw_format(&r, 0x401000, buf, len), n);
		for (size_t j = len; j < sizeof(buf); j++)
			cr_assert_eq(buf[j], 'X', "len %zu: byte %zu written",
				     len, j);
		if (len) {
			cr_expect_eq(strlen(buf), len - 1);
			cr_expect_eq(memcmp(buf, full, len - 1), 0);
		}
	}
	memset(buf, 'X', sizeof(buf));
	cr_expect_eq(ptw_format(&r, 0x401000, buf, n + 1), n);
	cr_expect_str_eq(buf, full);
	cr_expect_eq(buf[n + 1], 'X');
}

/* xorshift64*: deterministic, so a failure reproduces. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

struct leaf {
	uint64_t gva, gpa, size, entry;
};

struct leaves {
	struct leaf v[64];
	int n;
	int stop_at; /* return 42 on this call (1-based); 0: never */
	bool ordered;
	uint64_t last; /* the previous leaf's GVA (v keeps the first 64) */
};

static int collect(void *opaque, uint64_t gva, uint64_t gpa, uint64_t size,
		   uint64_t entry)
{
	struct leaves *l = opaque;

	if (l->n && gva <= l->last)
		l->ordered = false;
	l->last = gva;
	if (l->n < 64)
		l->v[l->n] = (struct leaf){gva, gpa, size, entry};
	l->n++;
	return l->n == l->stop_at ? 42 : 0;
}

static void build_five(void)
{
	map(0x401000, 0x5000, 1, PT_P | PT_RW);
	map(0x402000, 0x7000, 1, PT_P);
	map(0x40000000, 0x600000, 2, PT_P);
	map(0x8000000000ULL, 0x40000000, 3, PT_P);
	map(0xffff800000001000ULL, 0x9000, 1, PT_P);
}

static void expect_five(const struct leaves *l)
{
	static const struct leaf want[] = {
		{0x401000, 0x5000, 4 * KiB, 0},
		{0x402000, 0x7000, 4 * KiB, 0},
		{0x40000000, 0x600000, 2 * MiB, 0},
		{0x8000000000ULL, 0x40000000, GiB, 0},
		{0xffff800000001000ULL, 0x9000, 4 * KiB, 0},
	};

	cr_assert_eq(l->n, 5);
	cr_expect(l->ordered);
	for (int i = 0; i < 5; i++) {
		cr_expect_eq(l->v[i].gva, want[i].gva, "leaf %d", i);
		cr_expect_eq(l->v[i].gpa, want[i].gpa, "leaf %d", i);
		cr_expect_eq(l->v[i].size, want[i].size, "leaf %d", i);
		cr_expect_eq(l->v[i].entry & ADDR_MASK, want[i].gpa);
	}
}

Test(ptwalk, for_each_leaf)
{
	struct ptw_ctx c = ctx();
	struct leaves l = {.ordered = true};

	build_five();
	cr_expect_eq(ptw_for_each_leaf(&c, collect, &l), 0);
	expect_five(&l);
}

Test(ptwalk, for_each_leaf_stops)
{
	struct ptw_ctx c = ctx();
	struct leaves l = {.ordered = true, .stop_at = 2};

	build_five();
	cr_expect_eq(ptw_for_each_leaf(&c, collect, &l), 42);
	cr_expect_eq(l.n, 2);
	cr_expect_eq(l.v[1].gva, 0x402000);
}

Test(ptwalk, for_each_leaf_skips)
{
	struct ptw_ctx c = ctx();
	struct leaves l = {.ordered = true};
	uint64_t t = table_alloc();

	build_five();
	/* A PD outside RAM, a PS PML4E, a reserved 2 MiB leaf, a PT with
	 * only non-present entries, XD leaves with NXE clear. */
	ram_set(entry_addr(0x80000000, 3), 0x100000000ULL | PT_TBL);
	ram_set(entry_addr(0x10000000000ULL, 4), t | PT_TBL | PT_PS);
	ram_set(t, 0x40000000 | PT_P | PT_PS);
	map(0x600000, 0x400000 | (1ULL << 14), 2, PT_P);
	ram_set(entry_addr(0x800000, 2), table_alloc() | PT_TBL);
	map(0x7000, 0x7000, 1, PT_P | PT_XD);
	map(0xffff800000200000ULL, 0x200000, 2, PT_P | PT_XD);
	c.efer &= ~EFER_NXE;
	cr_expect_eq(ptw_for_each_leaf(&c, collect, &l), 0);
	expect_five(&l);

	/* With NXE the XD leaves are real. */
	c.efer |= EFER_NXE;
	l = (struct leaves){.ordered = true};
	cr_expect_eq(ptw_for_each_leaf(&c, collect, &l), 0);
	cr_expect_eq(l.n, 7);
	cr_expect(l.ordered);
	cr_expect_eq(l.v[0].gva, 0x7000);
	cr_expect_eq(l.v[6].gva, 0xffff800000200000ULL);
	cr_expect_eq(l.v[6].size, 2 * MiB);

	/* CR3 outside RAM: nothing, and one failed read is enough. */
	c.cr3 = 0x100000000ULL;
	l = (struct leaves){.ordered = true};
	F.reads = 0;
	cr_expect_eq(ptw_for_each_leaf(&c, collect, &l), 0);
	cr_expect_eq(l.n, 0);
	cr_expect_eq(F.reads, 1);
}

Test(ptwalk, for_each_leaf_modes)
{
	struct ptw_ctx c = ctx();
	struct leaves l = {.ordered = true};

	build_five();
	c.cr0 &= ~CR0_PG;
	cr_expect_eq(ptw_for_each_leaf(&c, collect, &l), -EINVAL);
	c = ctx();
	c.cr4 |= CR4_LA57;
	cr_expect_eq(ptw_for_each_leaf(&c, collect, &l), -EOPNOTSUPP);
	cr_expect_eq(l.n, 0);
}

/*
 * One low 4 KiB mapping plus a recursive PML4[511]: the PML4 is read once,
 * the link back to it is counted as a cycle and not followed, so the only
 * leaf is the mapping (the walk once saw the PML4 again as a PDPT, a PD
 * and a PT: 5 leaves, and 512^4 reads with every slot recursive).
 */
Test(ptwalk, for_each_leaf_recursive)
{
	struct ptw_ctx c = ctx();
	struct leaves l = {.ordered = true};
	struct ptw_walk_report rep;

	map(0x1000, 0x5000, 1, PT_P);
	ram_set(F.pml4 + 511 * 8, F.pml4 | PT_P | PT_RW);
	cr_expect_eq(ptw_walk_leaves(&c, NULL, collect, &l, &rep), 0);
	cr_expect_eq(rep.stop, PTW_STOP_DONE);
	cr_expect_eq(l.n, 1);
	cr_expect_eq(l.v[0].gva, 0x1000);
	cr_expect_eq(l.v[0].gpa, 0x5000);
	cr_expect_eq(rep.tables, 4);
	cr_expect_eq(rep.revisits, 1);
	cr_expect_eq(rep.cycles, 1);
	cr_expect_eq(rep.leaves, 1);
	cr_expect_eq(F.reads, 4 * 512);
}

/* Every PML4 slot points back at the PML4: one table, 512 cycles. */
Test(ptwalk, for_each_leaf_all_slots_recursive)
{
	struct ptw_ctx c = ctx();
	struct leaves l = {.ordered = true};
	struct ptw_walk_report rep;

	for (int i = 0; i < 512; i++)
		ram_set(F.pml4 + i * 8, F.pml4 | PT_TBL);
	cr_expect_eq(ptw_walk_leaves(&c, NULL, collect, &l, &rep), 0);
	cr_expect_eq(rep.stop, PTW_STOP_DONE);
	cr_expect_eq(l.n, 0);
	cr_expect_eq(rep.tables, 1);
	cr_expect_eq(rep.revisits, 512);
	cr_expect_eq(rep.cycles, 512);
	cr_expect_eq(F.reads, 512);
}

/*
 * A cycle at every level that has tables: PML4[1] -> PML4, PDPT[1] ->
 * PML4, PDPT[2] -> PDPT, PD[1] -> PML4, PD[2] -> PDPT, PD[3] -> PD. A PT
 * entry is a leaf whatever it points at: PT[1] maps the PD page.
 */
Test(ptwalk, for_each_leaf_cycle_every_level)
{
	struct ptw_ctx c = ctx();
	struct leaves l = {.ordered = true};
	struct ptw_walk_report rep;
	uint64_t pdpt, pd, pt;

	map(0x0, 0x5000, 1, PT_P);
	pdpt = ram_get(F.pml4) & ADDR_MASK;
	pd = ram_get(pdpt) & ADDR_MASK;
	pt = ram_get(pd) & ADDR_MASK;
	ram_set(F.pml4 + 1 * 8, F.pml4 | PT_TBL);
	ram_set(pdpt + 1 * 8, F.pml4 | PT_TBL);
	ram_set(pdpt + 2 * 8, pdpt | PT_TBL);
	ram_set(pd + 1 * 8, F.pml4 | PT_TBL);
	ram_set(pd + 2 * 8, pdpt | PT_TBL);
	ram_set(pd + 3 * 8, pd | PT_TBL);
	ram_set(pt + 1 * 8, pd | PT_P);
	cr_expect_eq(ptw_walk_leaves(&c, NULL, collect, &l, &rep), 0);
	cr_expect_eq(rep.stop, PTW_STOP_DONE);
	cr_expect_eq(rep.tables, 4);
	cr_expect_eq(rep.revisits, 6);
	cr_expect_eq(rep.cycles, 6);
	cr_assert_eq(l.n, 2);
	cr_expect(l.ordered);
	cr_expect_eq(l.v[0].gpa, 0x5000);
	cr_expect_eq(l.v[1].gva, 0x1000);
	cr_expect_eq(l.v[1].gpa, pd);
	cr_expect_eq(F.reads, 4 * 512);
}

/*
 * One PDPT whose 512 entries all point at one PD whose 512 entries all
 * point at one PT of 512 leaves: 2^27 leaves when every path is followed
 * (seconds, and 512^4 with the PML4 doing the same). Each table is read
 * once: 4 x 512 reads, the PT's 512 leaves once, under GVA 0.
 */
Test(ptwalk, for_each_leaf_shared_subtree)
{
	struct ptw_ctx c = ctx();
	struct leaves l = {.ordered = true};
	struct ptw_walk_report rep;
	uint64_t pdpt = table_alloc(), pd = table_alloc(), pt = table_alloc();
	uint64_t t0;

	ram_set(F.pml4, pdpt | PT_TBL);
	for (int i = 0; i < 512; i++) {
		ram_set(pdpt + i * 8, pd | PT_TBL);
		ram_set(pd + i * 8, pt | PT_TBL);
		ram_set(pt + i * 8, (0x200000 + i * 4 * KiB) | PT_P | PT_A);
	}
	t0 = clock_now_ns();
	cr_expect_eq(ptw_walk_leaves(&c, NULL, collect, &l, &rep), 0);
	cr_expect_lt(clock_now_ns() - t0, 100 * 1000 * 1000ULL);
	cr_expect_eq(rep.stop, PTW_STOP_DONE);
	cr_expect_eq(rep.tables, 4);
	cr_expect_eq(rep.revisits, 2 * 511);
	cr_expect_eq(rep.cycles, 0);
	cr_expect_eq(rep.leaves, 512);
	cr_expect_eq(l.n, 512);
	cr_expect(l.ordered);
	cr_expect_eq(l.v[63].gva, 63 * 4 * KiB);
	cr_expect_eq(l.v[63].gpa, 0x200000 + 63 * 4 * KiB);
	cr_expect_eq(F.reads, 4 * 512);
}

/* The table budget: the leaves found before it ran out stay reported. */
Test(ptwalk, for_each_leaf_table_budget)
{
	struct ptw_walk_limits lim = {.max_tables = 4};
	struct ptw_ctx c = ctx();
	struct leaves l = {.ordered = true};
	struct ptw_walk_report rep;

	build_five();
	/* PML4, PDPT, PD, PT: the two 4 KiB leaves; the 2 MiB one needs a
	 * fifth table (the PD under PDPT[1]). */
	cr_expect_eq(ptw_walk_leaves(&c, &lim, collect, &l, &rep), 0);
	cr_expect_eq(rep.stop, PTW_STOP_TABLES);
	cr_expect_eq(rep.tables, 4);
	cr_assert_eq(l.n, 2);
	cr_expect_eq(l.v[1].gva, 0x402000);
	cr_expect_str_eq(ptw_stop_name(rep.stop), "table-budget");

	/* Enough for all: the same five as without a budget. */
	lim.max_tables = 9;
	l = (struct leaves){.ordered = true};
	cr_expect_eq(ptw_walk_leaves(&c, &lim, collect, &l, &rep), 0);
	cr_expect_eq(rep.stop, PTW_STOP_DONE);
	expect_five(&l);
}

/* A time budget of 1 ns runs out before the second table. */
Test(ptwalk, for_each_leaf_time_budget)
{
	struct ptw_walk_limits lim = {.max_ns = 1};
	struct ptw_ctx c = ctx();
	struct leaves l = {.ordered = true};
	struct ptw_walk_report rep;

	build_five();
	cr_expect_eq(ptw_walk_leaves(&c, &lim, collect, &l, &rep), 0);
	cr_expect_eq(rep.stop, PTW_STOP_TIME);
	cr_expect_leq(rep.tables, 1);
	cr_expect_eq(l.n, 0);
	cr_expect_str_eq(ptw_stop_name(rep.stop), "time-budget");
}

/* fn stopping the walk is reported as such, and its value returned. */
Test(ptwalk, for_each_leaf_report_callback)
{
	struct ptw_ctx c = ctx();
	struct leaves l = {.ordered = true, .stop_at = 3};
	struct ptw_walk_report rep;

	build_five();
	cr_expect_eq(ptw_walk_leaves(&c, NULL, collect, &l, &rep), 42);
	cr_expect_eq(rep.stop, PTW_STOP_CALLBACK);
	cr_expect_eq(rep.leaves, 3);
	cr_expect_str_eq(ptw_stop_name(rep.stop), "callback");
	cr_expect_str_eq(ptw_stop_name((enum ptw_stop)99), "unknown");
}

/*
 * A normal tree of 1000 scattered 4 KiB mappings (tables shared only as a
 * tree shares them): every mapping is a leaf, in GVA order, each once, and
 * more tables than the visited set's first size.
 */
struct scatter {
	uint64_t prev, n, bad;
};

static int scatter_leaf(void *opaque, uint64_t gva, uint64_t gpa, uint64_t size,
			uint64_t entry)
{
	struct scatter *s = opaque;

	if ((s->n && gva <= s->prev) || size != 4 * KiB ||
	    gpa != ((gva >> 12) & 0xfff) * 4 * KiB)
		s->bad++;
	s->prev = gva;
	s->n++;
	return 0;
}

Test(ptwalk, for_each_leaf_normal_tree)
{
	struct ptw_ctx c = ctx();
	struct ptw_walk_report rep;
	struct scatter s = {0};
	uint64_t seed = 42, mapped = 0;

	for (int i = 0; i < 1000; i++) {
		uint64_t gva = (rnd(&seed) & 0x00007ffffffff000ULL);

		if (ram_get(entry_addr(gva, 1)) & PT_P)
			continue;
		map(gva, ((gva >> 12) & 0xfff) * 4 * KiB, 1, PT_P);
		mapped++;
	}
	cr_expect_eq(ptw_walk_leaves(&c, NULL, scatter_leaf, &s, &rep), 0);
	cr_expect_eq(rep.stop, PTW_STOP_DONE);
	cr_expect_eq(s.n, mapped);
	cr_expect_eq(s.bad, 0);
	cr_expect_eq(rep.revisits, 0);
	cr_expect_eq(rep.tables, (F.next - TABLE_BASE) / (4 * KiB));
	cr_expect_gt(rep.tables, 256);
}

#define FUZZ_TABLES 8

static uint64_t fuzz_addr_mask(unsigned int maxphyaddr)
{
	unsigned int m = maxphyaddr ? maxphyaddr : 52;

	return ((1ULL << m) - 1) & ~0xfffULL;
}

/* A random entry, usually pointing at one of the fuzz tables. */
static uint64_t fuzz_entry(uint64_t *s)
{
	uint64_t r = rnd(s), e = r & 0x1ff;
	unsigned int kind = rnd(s) % 16;

	if (kind < 10)
		e |= TABLE_BASE + (rnd(s) % FUZZ_TABLES) * 4 * KiB;
	else if (kind < 12)
		e |= rnd(s) & ADDR_MASK; /* anywhere, RAM or not */
	else if (kind < 14)
		e |= rnd(s) & ADDR_MASK & (RAM_SIZE - 1);
	else
		e = rnd(s); /* raw noise */
	if (rnd(s) % 8 == 0)
		e |= PT_XD;
	if (rnd(s) % 8 != 0)
		e |= PT_P;
	if (rnd(s) % 4)
		e &= ~PT_PS;
	return e;
}

static uint64_t fuzz_gva(uint64_t *s)
{
	uint64_t g = rnd(s);

	if (rnd(s) % 8 == 0)
		return g; /* usually non-canonical */
	return (g & (1ULL << 47)) ? g | 0xffff000000000000ULL
				  : g & 0x0000ffffffffffffULL;
}

static struct ptw_ctx fuzz_ctx(uint64_t *s)
{
	static const unsigned int phys[] = {0, 36, 39, 40, 46, 48, 52};
	struct ptw_ctx c = ctx();

	c.cr3 = TABLE_BASE + (rnd(s) % FUZZ_TABLES) * 4 * KiB;
	c.maxphyaddr = phys[rnd(s) % 7];
	if (rnd(s) % 2)
		c.efer &= ~EFER_NXE;
	if (rnd(s) % 64 == 0)
		c.cr0 &= ~CR0_PG;
	if (rnd(s) % 64 == 0)
		c.cr4 ^= rnd(s) % 2 ? CR4_PAE : CR4_LA57;
	return c;
}

static void fuzz_check_ok(const struct ptw_ctx *c, uint64_t gva,
			  const struct ptw_result *r)
{
	uint64_t size = r->page_size, frame;
	int level = size == GiB ? 3 : size == 2 * MiB ? 2 : 1;

	cr_assert(size == 4 * KiB || size == 2 * MiB || size == GiB);
	cr_assert_eq(r->level, level);
	cr_assert_eq(r->nr_steps, 5 - level);
	frame = r->steps[r->nr_steps - 1].entry &
		fuzz_addr_mask(c->maxphyaddr) & ~(size - 1);
	cr_assert(r->gpa >= frame && r->gpa - frame < size,
		  "gva %#" PRIx64 " gpa %#" PRIx64 " frame %#" PRIx64, gva,
		  r->gpa, frame);
	cr_assert_eq(r->gpa & (size - 1), gva & (size - 1));
	cr_assert_lt(r->gpa, 1ULL << (c->maxphyaddr ? c->maxphyaddr : 52));
	if (!(c->efer & EFER_NXE))
		cr_assert_not(r->nx);
}

static void fuzz_check(const struct ptw_ctx *c, uint64_t gva)
{
	struct ptw_result r;
	char buf[512];
	int ret = ptw_translate(c, gva, &r), n;

	cr_assert_leq((unsigned int)r.status, (unsigned int)PTW_BAD_TABLE);
	cr_assert_eq(ret == 0, r.status == PTW_OK || r.status == PTW_NO_PAGING);
	cr_assert(r.nr_steps >= 0 && r.nr_steps <= 4);
	if (r.status == PTW_OK)
		fuzz_check_ok(c, gva, &r);
	if (r.status == PTW_NOT_PRESENT || r.status == PTW_RESERVED ||
	    r.status == PTW_BAD_TABLE) {
		cr_assert(r.level >= 1 && r.level <= 4);
		cr_assert_eq(r.nr_steps, 5 - r.level);
	}
	n = ptw_format(&r, gva, buf, sizeof(buf));
	cr_assert(n > 0 && (size_t)n < sizeof(buf));
	cr_assert_eq(strlen(buf), (size_t)n);
}

Test(ptwalk, fuzz_translate)
{
	uint64_t seed = 0x9e3779b97f4a7c15ULL;

	for (int i = 0; i < 100000; i++) {
		struct ptw_ctx c = fuzz_ctx(&seed);
		uint64_t gva = fuzz_gva(&seed);

		/* Random entries on every slot this GVA can hit. */
		for (int t = 0; t < FUZZ_TABLES; t++)
			for (int level = 1; level <= 4; level++)
				ram_set(TABLE_BASE + t * 4 * KiB +
						idx(gva, level) * 8,
					fuzz_entry(&seed));
		fuzz_check(&c, gva);
	}
}

struct fuzz_leaves {
	const struct ptw_ctx *c;
	uint64_t prev;
	unsigned long n;
};

/* Every enumerated leaf translates to the same place. */
static int fuzz_leaf(void *opaque, uint64_t gva, uint64_t gpa, uint64_t size,
		     uint64_t entry)
{
	struct fuzz_leaves *fl = opaque;
	struct ptw_result r;

	cr_assert(fl->n == 0 || gva > fl->prev);
	cr_assert_eq(gva & (size - 1), 0);
	cr_assert_eq(gpa & (size - 1), 0);
	cr_assert_eq(ptw_translate(fl->c, gva | (size - 8), &r), 0,
		     "gva %#" PRIx64 ": %s", gva, ptw_status_name(r.status));
	cr_assert_eq(r.gpa, gpa | (size - 8));
	cr_assert_eq(r.page_size, size);
	cr_assert_eq(r.steps[r.nr_steps - 1].entry, entry);
	fl->prev = gva;
	return ++fl->n >= 20000;
}

Test(ptwalk, fuzz_for_each_leaf)
{
	uint64_t seed = 0x0123456789abcdefULL;

	for (int i = 0; i < 100; i++) {
		struct ptw_ctx c = fuzz_ctx(&seed);
		struct fuzz_leaves fl = {.c = &c};
		int ret;

		memset(F.ram + TABLE_BASE, 0, FUZZ_TABLES * 4 * KiB);
		for (int t = 0; t < FUZZ_TABLES; t++)
			for (int k = 0; k < 6; k++)
				ram_set(TABLE_BASE + t * 4 * KiB +
						(rnd(&seed) % 512) * 8,
					fuzz_entry(&seed));
		ret = ptw_for_each_leaf(&c, fuzz_leaf, &fl);
		cr_assert(ret == 0 || ret == 1 || ret == -EINVAL ||
			  ret == -EOPNOTSUPP);
	}
}
