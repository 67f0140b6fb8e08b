/* SPDX-License-Identifier: MIT */
/*
 * test_mem_layout.c - guest RAM layout, size parsing and translation.
 *
 * mem_layout() and mem_parse_size() are pure and tested over the edges of
 * the MMIO hole and the size limits. The rest runs on a real 16 MiB memfd
 * (no KVM needed): translation at region edges, ranges that wrap or leave
 * RAM, a read/write round trip, hva_to_gpa as the inverse of gpa_to_hva,
 * and a look at /proc/self/maps to prove guest RAM is never executable.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "ept/mem.h"
#include "common/guest_abi.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static void check_one(uint64_t size)
{
	struct mem_region r[GUEST_MEM_MAX_REGS];

	cr_assert_eq(mem_layout(size, r, GUEST_MEM_MAX_REGS), 1);
	cr_expect_eq(r[0].gpa, 0);
	cr_expect_eq(r[0].size, size);
	cr_expect_eq(r[0].file_off, 0);
	cr_expect_eq(r[0].slot, 0);
	cr_expect_null(r[0].hva);
}

static void check_two(uint64_t size)
{
	struct mem_region r[GUEST_MEM_MAX_REGS];

	cr_assert_eq(mem_layout(size, r, GUEST_MEM_MAX_REGS), 2);
	cr_expect_eq(r[0].gpa, 0);
	cr_expect_eq(r[0].size, GUEST_MMIO_HOLE_BASE);
	cr_expect_eq(r[0].file_off, 0);
	cr_expect_eq(r[0].slot, 0);
	cr_expect_eq(r[1].gpa, 4 * GiB);
	cr_expect_eq(r[1].size, size - 3 * GiB);
	cr_expect_eq(r[1].file_off, 3 * GiB);
	cr_expect_eq(r[1].slot, 1);
	cr_expect_null(r[1].hva);
}

Test(mem_layout, below_the_hole)
{
	check_one(16 * MiB);
	check_one(1 * GiB);
	check_one(3 * GiB);
}

Test(mem_layout, around_the_hole)
{
	check_two(3 * GiB + 4096);
	check_two(8 * GiB);
	check_two(64 * GiB);
}

Test(mem_layout, rejects_bad_sizes)
{
	struct mem_region r[GUEST_MEM_MAX_REGS];

	cr_expect_eq(mem_layout(0, r, 2), -EINVAL);
	cr_expect_eq(mem_layout(15 * MiB, r, 2), -EINVAL);
	cr_expect_eq(mem_layout(16 * MiB - 4096, r, 2), -EINVAL);
	cr_expect_eq(mem_layout(64 * GiB + 4096, r, 2), -EINVAL);
	cr_expect_eq(mem_layout(UINT64_MAX, r, 2), -EINVAL);
	cr_expect_eq(mem_layout(16 * MiB + 1, r, 2), -EINVAL);
	cr_expect_eq(mem_layout(1 * GiB + 512, r, 2), -EINVAL);
	/* Too small an array for the regions needed. */
	cr_expect_eq(mem_layout(8 * GiB, r, 1), -EINVAL);
	cr_expect_eq(mem_layout(1 * GiB, r, 0), -EINVAL);
}

static void parse_ok(const char *s, uint64_t want)
{
	uint64_t v = 0xdead;

	cr_expect_eq(mem_parse_size(s, &v), 0, "\"%s\" rejected", s);
	cr_expect_eq(v, want, "\"%s\" -> %llu, want %llu", s,
		     (unsigned long long)v, (unsigned long long)want);
}

static void parse_bad(const char *s)
{
	uint64_t v = 0xdead;

	cr_expect_eq(mem_parse_size(s, &v), -EINVAL, "\"%s\" accepted", s);
	cr_expect_eq(v, 0xdead, "\"%s\" wrote the output", s);
}

Test(mem_parse_size, good)
{
	parse_ok("512M", 512 * MiB);
	parse_ok("512m", 512 * MiB);
	parse_ok("1G", GiB);
	parse_ok("1g", GiB);
	parse_ok("2048", 2048 * MiB);
	parse_ok("64K", 64 << 10);
	parse_ok("64k", 64 << 10);
	parse_ok("64KiB", 64 << 10);
	parse_ok("3MiB", 3 * MiB);
	parse_ok("4GiB", 4 * GiB);
	parse_ok("4giB", 4 * GiB);
	parse_ok("0016M", 16 * MiB);
	parse_ok("0", 0); /* mem_layout() judges the limits */
	parse_ok("100000G", 100000 * GiB);
	parse_ok("17179869183G", 17179869183ULL * GiB); /* 2^64 - 1 GiB */
	parse_ok("18014398509481983K", UINT64_MAX >> 10 << 10);
}

Test(mem_parse_size, bad)
{
	static const char *const bad[] = {
		"",
		"-1",
		"-1G",
		"+1G",
		" 1G",
		"1G ",
		"1X",
		"1G2",
		"0x10",
		"G",
		"1.5G",
		"1GB",
		"1KB",
		"1Gi",
		"1GIB",
		"1GiBx",
		"1T",
		"1B",
		"1 G",
		"1\nG",
		"17179869184G", /* 2^64: overflow after the shift */
		"18014398509481984K",
		"18446744073709551616", /* overflow while reading digits */
		"99999999999999999999999999K",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		parse_bad(bad[i]);
	cr_expect_eq(mem_parse_size(NULL, &(uint64_t){0}), -EINVAL);
}

static struct guest_mem gm;

static void gm_setup(void)
{
	cr_assert_eq(mem_create(&gm, 16 * MiB), 0);
}

static void gm_teardown(void)
{
	mem_destroy(&gm);
}

TestSuite(mem_ram, .init = gm_setup, .fini = gm_teardown);

Test(mem_ram, created)
{
	cr_assert_geq(gm.memfd, 0);
	cr_assert_not_null(gm.base);
	cr_expect_eq(gm.size, 16 * MiB);
	cr_assert_eq(gm.nr_regions, 1);
	cr_expect_eq(gm.regions[0].hva, gm.base);
	/* Fresh memory reads as zero. */
	cr_expect_eq(gm.base[0], 0);
	cr_expect_eq(gm.base[16 * MiB - 1], 0);
}

Test(mem_ram, gpa_to_hva_edges)
{
	uint8_t *b = gm.base;
	uint64_t end = 16 * MiB;

	cr_expect_eq(mem_gpa_to_hva(&gm, 0, 1), b);
	cr_expect_eq(mem_gpa_to_hva(&gm, 0, end), b);
	cr_expect_eq(mem_gpa_to_hva(&gm, 0, 0), b);
	cr_expect_eq(mem_gpa_to_hva(&gm, end - 1, 1), b + end - 1);
	cr_expect_eq(mem_gpa_to_hva(&gm, end - 4096, 4096), b + end - 4096);
	cr_expect_eq(mem_gpa_to_hva(&gm, end - 1, 0), b + end - 1);
	cr_expect_null(mem_gpa_to_hva(&gm, 0, end + 1));
	cr_expect_null(mem_gpa_to_hva(&gm, end - 1, 2));
	cr_expect_null(mem_gpa_to_hva(&gm, end, 1));
	cr_expect_null(mem_gpa_to_hva(&gm, end, 0));
	/* gpa + len wraps around */
	cr_expect_null(mem_gpa_to_hva(&gm, 4096, UINT64_MAX));
	cr_expect_null(mem_gpa_to_hva(&gm, UINT64_MAX, 2));
	cr_expect_null(mem_gpa_to_hva(&gm, UINT64_MAX - 4095, 8192));
	/* In the hole and above it: no RAM with 16 MiB. */
	cr_expect_null(mem_gpa_to_hva(&gm, GUEST_MMIO_HOLE_BASE, 1));
	cr_expect_null(mem_gpa_to_hva(&gm, GUEST_MMIO_HOLE_END, 1));
}

Test(mem_ram, find_region)
{
	cr_expect_eq(mem_find_region(&gm, 0), &gm.regions[0]);
	cr_expect_eq(mem_find_region(&gm, 16 * MiB - 1), &gm.regions[0]);
	cr_expect_null(mem_find_region(&gm, 16 * MiB));
	cr_expect_null(mem_find_region(&gm, UINT64_MAX));
}

Test(mem_ram, read_write_round_trip)
{
	uint8_t in[8192], out[8192];
	size_t i;

	for (i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 7 + 3);
	cr_assert_eq(mem_write(&gm, 0x100ff0, in, sizeof(in)), 0);
	memset(out, 0, sizeof(out));
	cr_assert_eq(mem_read(&gm, 0x100ff0, out, sizeof(out)), 0);
	cr_expect_arr_eq(in, out, sizeof(in));
	cr_expect_arr_eq(gm.base + 0x100ff0, in, sizeof(in));

	/* The last byte of RAM, and len 0 at valid / invalid addresses. */
	cr_expect_eq(mem_write(&gm, 16 * MiB - 1, in, 1), 0);
	cr_expect_eq(mem_write(&gm, 16 * MiB - 1, in, 0), 0);
	cr_expect_eq(mem_read(&gm, 0, out, 0), 0);
	cr_expect_eq(mem_read(&gm, 16 * MiB, out, 0), -EFAULT);
	cr_expect_eq(mem_write(&gm, 16 * MiB, in, 0), -EFAULT);

	/* Past the end, and wrapping. */
	cr_expect_eq(mem_write(&gm, 16 * MiB - 1, in, 2), -EFAULT);
	cr_expect_eq(mem_read(&gm, 16 * MiB - 4096, out, 8192), -EFAULT);
	cr_expect_eq(mem_read(&gm, UINT64_MAX, out, 2), -EFAULT);
	cr_expect_eq(mem_read(&gm, GUEST_MMIO_HOLE_BASE, out, 1), -EFAULT);
}

Test(mem_ram, hva_to_gpa_inverse)
{
	static const uint64_t gpas[] = {0,    1,	4095,
					4096, 0x123456, 16 * MiB - 1};
	uint64_t gpa;
	size_t i;

	for (i = 0; i < sizeof(gpas) / sizeof(gpas[0]); i++) {
		void *hva = mem_gpa_to_hva(&gm, gpas[i], 1);

		cr_assert_not_null(hva);
		gpa = ~0ULL;
		cr_expect_eq(mem_hva_to_gpa(&gm, hva, &gpa), 0);
		cr_expect_eq(gpa, gpas[i]);
	}
	cr_expect_eq(mem_hva_to_gpa(&gm, gm.base + 16 * MiB, &gpa), -EFAULT);
	cr_expect_eq(mem_hva_to_gpa(&gm, gm.base - 1, &gpa), -EFAULT);
	cr_expect_eq(mem_hva_to_gpa(&gm, &gpa, &gpa), -EFAULT);
	cr_expect_eq(mem_hva_to_gpa(&gm, NULL, &gpa), -EFAULT);
}

/* The permissions of the mapping that starts at base, from /proc/self/maps. */
static int maps_perms(const void *base, char perms[5])
{
	unsigned long start, end;
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");
	int found = 0;

	cr_assert_not_null(f);
	while (!found && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx %4s", &start, &end, perms) != 3)
			continue;
		found = start == (unsigned long)base;
	}
	fclose(f);
	return found;
}

Test(mem_ram, not_executable)
{
	char perms[5] = "";

	cr_assert(maps_perms(gm.base, perms), "mapping not in /proc/self/maps");
	cr_expect_eq(perms[0], 'r');
	cr_expect_eq(perms[1], 'w');
	cr_expect_eq(perms[2], '-', "guest RAM mapped %s", perms);
	cr_expect_eq(perms[3], 's', "guest RAM mapped %s", perms);
}

Test(mem_ram, destroy_is_idempotent)
{
	mem_destroy(&gm);
	cr_expect_eq(gm.memfd, -1);
	cr_expect_null(gm.base);
	cr_expect_eq(gm.nr_regions, 0);
	mem_destroy(&gm);
	cr_expect_eq(gm.memfd, -1);
}

Test(mem_create, rejects_bad_size)
{
	struct guest_mem m;

	memset(&m, 0xa5, sizeof(m));
	cr_expect_eq(mem_create(&m, 15 * MiB), -EINVAL);
	cr_expect_eq(m.memfd, -1);
	cr_expect_null(m.base);
	mem_destroy(&m);
	cr_expect_eq(mem_create(&m, 16 * MiB + 100), -EINVAL);
	mem_destroy(&m);
}

Test(mem_create, zeroed_struct_destroy_keeps_fd0)
{
	struct guest_mem m;

	memset(&m, 0, sizeof(m));
	mem_destroy(&m);
	cr_expect_eq(m.memfd, -1);
	/* fd 0 (whatever it is) must still be open. */
	cr_expect_neq(fcntl(0, F_GETFD), -1);
}

Test(mem_create, two_regions_above_the_hole)
{
	struct guest_mem m;
	uint64_t gpa;
	uint8_t *hi;

	/*
	 * 3 GiB + 16 MiB: a sparse memfd costs only the pages touched; skip
	 * when the address space is limited (e.g. under a ulimit -v).
	 */
	if (mem_create(&m, 3 * GiB + 16 * MiB) == -ENOMEM)
		cr_skip_test("no address space for 3 GiB");
	cr_assert_eq(m.nr_regions, 2);
	cr_expect_eq(m.regions[1].hva, m.base + 3 * GiB);
	hi = mem_gpa_to_hva(&m, GUEST_MMIO_HOLE_END, 16 * MiB);
	cr_expect_eq(hi, m.base + 3 * GiB);
	cr_expect_eq(mem_gpa_to_hva(&m, GUEST_MMIO_HOLE_BASE - 1, 1),
		     m.base + 3 * GiB - 1);
	/* Straddling the hole, or inside it, is not RAM. */
	cr_expect_null(mem_gpa_to_hva(&m, GUEST_MMIO_HOLE_BASE - 1, 2));
	cr_expect_null(mem_gpa_to_hva(&m, GUEST_MMIO_HOLE_BASE, 1));
	cr_expect_null(mem_gpa_to_hva(&m, GUEST_MMIO_HOLE_END - 1, 2));
	cr_expect_null(mem_gpa_to_hva(&m, GUEST_MMIO_HOLE_END + 16 * MiB, 1));
	cr_expect_eq(mem_hva_to_gpa(&m, hi + 5, &gpa), 0);
	cr_expect_eq(gpa, GUEST_MMIO_HOLE_END + 5);
	cr_expect_eq(mem_write(&m, GUEST_MMIO_HOLE_BASE - 2, "abcd", 4),
		     -EFAULT);
	mem_destroy(&m);
}

/* A VM fd from /dev/kvm, or skip: the rest of this file needs no KVM. */
static int kvm_vm_or_skip(int *kvm)
{
	int vm;

	*kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (*kvm < 0)
		cr_skip_test("no /dev/kvm");
	vm = ioctl(*kvm, KVM_CREATE_VM, 0);
	if (vm < 0) {
		close(*kvm);
		cr_skip_test("KVM_CREATE_VM failed");
	}
	return vm;
}

Test(mem_ram, register_slots)
{
	int kvm, vm = kvm_vm_or_skip(&kvm);

	cr_expect_eq(mem_register_slots(&gm, vm, 0), 0);
	/* Re-registering a slot with new flags (dirty logging) works too. */
	cr_expect_eq(mem_register_slots(&gm, vm, KVM_MEM_LOG_DIRTY_PAGES), 0);
	cr_expect_eq(mem_register_slots(&gm, vm, 1U << 31), -EINVAL);
	cr_expect_eq(mem_register_slots(&gm, -1, 0), -EBADF);
	close(vm);
	close(kvm);
}

Test(mem_create, register_two_slots)
{
	struct guest_mem m;
	int kvm, vm = kvm_vm_or_skip(&kvm);

	if (mem_create(&m, 3 * GiB + 16 * MiB) == -ENOMEM)
		cr_skip_test("no address space for 3 GiB");
	cr_expect_eq(mem_register_slots(&m, vm, 0), 0);
	mem_destroy(&m);
	close(vm);
	close(kvm);
}
