// SPDX-License-Identifier: MIT
/*
 * test_snapfile.c - the snapshot file's header and layout (proto/snapfile.c):
 * round trips, the layout's offsets (RAM at 2 MiB, state after RAM, the map
 * after the state, the loading set last), and every refusal: no magic,
 * another version (named before the checksum is looked at), a flipped bit
 * anywhere in the header, offsets that disagree with the layout, values out
 * of range, a short buffer.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "common/page.h"
#include "proto/proto.h"
#include "proto/snapfile.h"

static char err[256];

static struct snapf_hdr sample(void)
{
	struct snapf_hdr h = {
		.version = SNAPF_VERSION,
		.id = 0x1122334455667788ULL,
		.mem_size = 256ULL << 20,
		.nr_vcpus = 2,
		.guest = SNAPF_GUEST_ELF,
		.state_len = 70000,
		.created_ns = 1700000000123456789ULL,
		.meta_crc = 0xdeadbeef,
	};

	cr_assert_eq(snapf_layout(&h), 0);
	return h;
}

static void assert_same(const struct snapf_hdr *a, const struct snapf_hdr *b)
{
	cr_assert_eq(a->version, b->version);
	cr_assert_eq(a->id, b->id);
	cr_assert_eq(a->mem_size, b->mem_size);
	cr_assert_eq(a->nr_vcpus, b->nr_vcpus);
	cr_assert_eq(a->guest, b->guest);
	cr_assert_eq(a->state_off, b->state_off);
	cr_assert_eq(a->state_len, b->state_len);
	cr_assert_eq(a->map_off, b->map_off);
	cr_assert_eq(a->map_len, b->map_len);
	cr_assert_eq(a->ram_off, b->ram_off);
	cr_assert_eq(a->nr_pages, b->nr_pages);
	cr_assert_eq(a->ws_off, b->ws_off);
	cr_assert_eq(a->ws_pages, b->ws_pages);
	cr_assert_eq(a->file_size, b->file_size);
	cr_assert_eq(a->created_ns, b->created_ns);
	cr_assert_eq(a->meta_crc, b->meta_crc);
}

Test(snapfile, layout)
{
	struct snapf_hdr h = sample();

	cr_assert_eq(h.ram_off, 2ULL << 20);
	cr_assert_eq(h.nr_pages, 65536);
	cr_assert_eq(h.state_off, h.ram_off + 65536ULL * PAGE_SIZE);
	cr_assert_eq(h.map_off % 4096, 0);
	cr_assert_geq(h.map_off, h.state_off + h.state_len);
	cr_assert_eq(h.map_len, 65536 / 8);
	cr_assert_eq(h.file_size, h.map_off + 8192);
	cr_assert_eq(h.ws_off, 0);
	snapf_layout_ws(&h, 3);
	cr_assert_eq(h.ws_off, h.map_off + 8192);
	cr_assert_eq(snapf_ws_data_off(&h), h.ws_off + 4096);
	cr_assert_eq(h.file_size, h.ws_off + 4096 + 3 * PAGE_SIZE);
	snapf_layout_ws(&h, 0);
	cr_assert_eq(h.file_size, h.map_off + 8192);
	h.mem_size = 4097;
	cr_assert_eq(snapf_layout(&h), -EINVAL);
}

Test(snapfile, round_trip)
{
	uint8_t buf[SNAPF_HDR_SIZE];
	struct snapf_hdr h = sample(), d;

	snapf_hdr_encode(buf, &h);
	cr_assert_eq(snapf_hdr_decode(buf, sizeof(buf), &d, err, sizeof(err)),
		     0, "%s", err);
	assert_same(&h, &d);
	snapf_layout_ws(&h, 1000);
	snapf_hdr_encode(buf, &h);
	cr_assert_eq(snapf_hdr_decode(buf, sizeof(buf), &d, err, sizeof(err)),
		     0, "%s", err);
	assert_same(&h, &d);
	for (size_t i = SNAPF_HDR_BYTES; i < sizeof(buf); i++)
		cr_assert_eq(buf[i], 0);
}

Test(snapfile, magic_and_short)
{
	uint8_t buf[SNAPF_HDR_SIZE];
	struct snapf_hdr h = sample(), d;

	snapf_hdr_encode(buf, &h);
	cr_assert_eq(snapf_hdr_decode(buf, 100, &d, err, sizeof(err)), -EPROTO);
	cr_assert_str_eq(err, "not a vmm snapshot (shorter than its header)");
	buf[0] ^= 1;
	cr_assert_eq(snapf_hdr_decode(buf, sizeof(buf), &d, err, sizeof(err)),
		     -EPROTO);
	cr_assert_str_eq(err, "not a vmm snapshot (no magic)");
}

/* Another version is named as such, whatever else is wrong. */
Test(snapfile, version_first)
{
	uint8_t buf[SNAPF_HDR_SIZE];
	struct snapf_hdr h = sample(), d;

	h.version = 7;
	snapf_hdr_encode(buf, &h);
	buf[40] ^= 0xff; /* and a corrupt field */
	cr_assert_eq(snapf_hdr_decode(buf, sizeof(buf), &d, err, sizeof(err)),
		     -EPROTO);
	cr_assert_str_eq(err,
			 "snapshot version 7; this vmmctl reads version 1");
}

/* Every single-bit flip in the encoded bytes is refused. */
Test(snapfile, bit_flips)
{
	uint8_t buf[SNAPF_HDR_SIZE];
	struct snapf_hdr h = sample(), d;

	snapf_hdr_encode(buf, &h);
	for (int i = 0; i < SNAPF_HDR_BYTES * 8; i++) {
		buf[i / 8] ^= (uint8_t)(1 << (i % 8));
		cr_assert_eq(snapf_hdr_decode(buf, sizeof(buf), &d, err,
					      sizeof(err)),
			     -EPROTO, "bit %d", i);
		buf[i / 8] ^= (uint8_t)(1 << (i % 8));
	}
}

/* A header whose checksum is right but whose offsets are not the layout's. */
Test(snapfile, inconsistent)
{
	uint8_t buf[SNAPF_HDR_SIZE];
	struct snapf_hdr h = sample(), d, bad;

	bad = h;
	bad.ram_off += 4096;
	snapf_hdr_encode(buf, &bad);
	cr_assert_eq(snapf_hdr_decode(buf, sizeof(buf), &d, err, sizeof(err)),
		     -EPROTO);
	cr_assert_str_eq(err, "header offsets are inconsistent");
	bad = h;
	bad.file_size -= 4096;
	snapf_hdr_encode(buf, &bad);
	cr_assert_eq(snapf_hdr_decode(buf, sizeof(buf), &d, err, sizeof(err)),
		     -EPROTO);
	bad = h;
	bad.nr_vcpus = 0;
	snapf_hdr_encode(buf, &bad);
	cr_assert_eq(snapf_hdr_decode(buf, sizeof(buf), &d, err, sizeof(err)),
		     -EPROTO);
	cr_assert(strstr(err, "out of range"), "%s", err);
	bad = h;
	bad.guest = SNAPF_GUEST_MAX;
	snapf_hdr_encode(buf, &bad);
	cr_assert_eq(snapf_hdr_decode(buf, sizeof(buf), &d, err, sizeof(err)),
		     -EPROTO);
	bad = h;
	snapf_layout_ws(&bad, bad.nr_pages + 1);
	snapf_hdr_encode(buf, &bad);
	cr_assert_eq(snapf_hdr_decode(buf, sizeof(buf), &d, err, sizeof(err)),
		     -EPROTO);
	cr_assert(strstr(err, "loading set"), "%s", err);
}

Test(snapfile, guest_names)
{
	cr_assert_str_eq(snapf_guest_name(SNAPF_GUEST_ELF), "elf");
	cr_assert_str_eq(snapf_guest_name(SNAPF_GUEST_LINUX), "linux");
	cr_assert_str_eq(snapf_guest_name(99), "?");
}
