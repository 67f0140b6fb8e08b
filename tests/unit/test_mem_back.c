/* SPDX-License-Identifier: MIT */
/*
 * test_mem_back.c - the memfd behind guest RAM (ept/mem_back.h) on real
 * memfds, no KVM: another guest_mem's memfd adopted in place (same
 * address, the other's bytes seen, its writes seen by the other, the old
 * memfd closed), a size mismatch refused with one line and nothing
 * changed, populate making every page resident, lock on fault.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/page.h"
#include "ept/mem.h"
#include "ept/mem_back.h"
#include "ept/ram_io.h"

#define MiB (1ULL << 20)

Test(mem_back, adopt_shares_the_pages)
{
	struct guest_mem a, b;
	uint8_t *base;
	char err[200] = "";
	int old, fd;
	uint64_t v = 0x1122334455667788ULL, got = 0;

	cr_assert_eq(mem_create(&a, 16 * MiB), 0);
	cr_assert_eq(mem_create(&b, 16 * MiB), 0);
	cr_assert_eq(mem_write(&a, 5 * PAGE_SIZE, &v, sizeof(v)), 0);
	base = b.base;
	old = b.memfd;
	fd = dup(a.memfd);
	cr_assert_geq(fd, 0);
	cr_assert_eq(mem_adopt_fd(&b, fd, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(b.base, base, "the mapping moved");
	cr_expect_eq(b.memfd, fd);
	cr_expect_eq(fcntl(old, F_GETFD), -1, "the old memfd is still open");
	cr_assert_eq(mem_read(&b, 5 * PAGE_SIZE, &got, sizeof(got)), 0);
	cr_expect_eq(got, v);
	v = 42;
	cr_assert_eq(mem_write(&b, 7 * PAGE_SIZE, &v, sizeof(v)), 0);
	cr_assert_eq(mem_read(&a, 7 * PAGE_SIZE, &got, sizeof(got)), 0);
	cr_expect_eq(got, 42);
	mem_destroy(&a);
	cr_assert_eq(mem_read(&b, 5 * PAGE_SIZE, &got, sizeof(got)), 0);
	cr_expect_eq(got, 0x1122334455667788ULL, "pages gone with the giver");
	mem_destroy(&b);
}

Test(mem_back, adopt_refuses_another_size)
{
	struct guest_mem a, b;
	char err[200] = "";
	int fd;

	cr_assert_eq(mem_create(&a, 32 * MiB), 0);
	cr_assert_eq(mem_create(&b, 16 * MiB), 0);
	fd = dup(a.memfd);
	cr_assert_eq(mem_adopt_fd(&b, fd, err, sizeof(err)), -EINVAL);
	cr_expect_str_eq(err, "guest RAM handed over is 32 MiB, this VM has "
			      "16 MiB (--mem)");
	cr_expect_neq(b.memfd, fd, "adopted anyway");
	cr_expect_eq(fcntl(fd, F_GETFD) >= 0, true, "the caller's fd closed");
	close(fd);
	mem_destroy(&a);
	mem_destroy(&b);
}

Test(mem_back, populate_and_lock)
{
	struct guest_mem m;
	struct bitmap res;
	char err[200] = "";
	int r;

	cr_assert_eq(mem_create(&m, 16 * MiB), 0);
	cr_assert_eq(bitmap_init(&res, m.nr_pages), 0);
	cr_assert_eq(mem_resident(&m, &res), 0);
	cr_expect_eq(bitmap_count(&res), 0, "fresh RAM is resident");
	cr_assert_eq(mem_populate(&m, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(mem_resident(&m, &res), 0);
	cr_expect_eq(bitmap_count(&res), m.nr_pages);
	/* Root is not bound by RLIMIT_MEMLOCK; others may meet it. */
	r = mem_lock(&m, err, sizeof(err));
	if (r)
		cr_expect(geteuid() != 0 && r == -EPERM &&
				  strstr(err, "RLIMIT_MEMLOCK"),
			  "mem_lock: %d %s", r, err);
	bitmap_free(&res);
	mem_destroy(&m);
}
