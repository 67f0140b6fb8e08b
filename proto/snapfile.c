/* SPDX-License-Identifier: MIT */
/*
 * snapfile.c - a snapshot file's header and layout (snapfile.h): pure.
 */
#include <errno.h>
#include <string.h>

#include "common/err.h"
#include "proto/proto.h"
#include "proto/snapfile.h"
#include "proto/wire.h"

/* Byte offsets of the encoded header's fields. */
enum {
	SF_MAGIC = 0,
	SF_VERSION = 8,
	SF_BYTES = 12,
	SF_ID = 16,
	SF_MEM = 24,
	SF_VCPUS = 32,
	SF_GUEST = 36,
	SF_STATE_OFF = 40,
	SF_STATE_LEN = 48,
	SF_MAP_OFF = 56,
	SF_MAP_LEN = 64,
	SF_RAM_OFF = 72,
	SF_PAGES = 80,
	SF_WS_OFF = 88,
	SF_WS_PAGES = 96,
	SF_FILE_SIZE = 104,
	SF_CREATED = 112,
	SF_META_CRC = 120,
	SF_HDR_CRC = 124,
};

_Static_assert(SF_HDR_CRC + 4 == SNAPF_HDR_BYTES, "header layout");

static uint64_t snapf_align(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

const char *snapf_guest_name(uint32_t guest)
{
	static const char *const names[SNAPF_GUEST_MAX] = {
		[SNAPF_GUEST_ELF] = "elf",
		[SNAPF_GUEST_MULTIBOOT] = "multiboot",
		[SNAPF_GUEST_LINUX] = "linux",
	};

	return guest < SNAPF_GUEST_MAX ? names[guest] : "?";
}

int snapf_layout(struct snapf_hdr *h)
{
	if (!h->mem_size || h->mem_size % PAGE_SIZE)
		return -EINVAL;
	h->nr_pages = h->mem_size / PAGE_SIZE;
	h->ram_off = SNAPF_RAM_OFF;
	h->state_off = h->ram_off + h->nr_pages * PAGE_SIZE;
	h->map_off = snapf_align(h->state_off + h->state_len, SNAPF_ALIGN);
	h->map_len = (h->nr_pages + 63) / 64 * 8;
	h->ws_off = 0;
	h->ws_pages = 0;
	h->file_size = snapf_align(h->map_off + h->map_len, SNAPF_ALIGN);
	return 0;
}

uint64_t snapf_ws_list_bytes(uint64_t n)
{
	return snapf_align(n * 8, SNAPF_ALIGN);
}

void snapf_layout_ws(struct snapf_hdr *h, uint64_t n)
{
	uint64_t end = snapf_align(h->map_off + h->map_len, SNAPF_ALIGN);

	h->ws_pages = n;
	h->ws_off = n ? end : 0;
	h->file_size = end + (n ? snapf_ws_list_bytes(n) + n * PAGE_SIZE : 0);
}

uint64_t snapf_ws_data_off(const struct snapf_hdr *h)
{
	return h->ws_off + snapf_ws_list_bytes(h->ws_pages);
}

void snapf_hdr_encode(uint8_t *buf, const struct snapf_hdr *h)
{
	memset(buf, 0, SNAPF_HDR_SIZE);
	memcpy(buf + SF_MAGIC, SNAPF_MAGIC, sizeof(SNAPF_MAGIC));
	put_le32(buf + SF_VERSION, h->version);
	put_le32(buf + SF_BYTES, SNAPF_HDR_BYTES);
	put_le64(buf + SF_ID, h->id);
	put_le64(buf + SF_MEM, h->mem_size);
	put_le32(buf + SF_VCPUS, h->nr_vcpus);
	put_le32(buf + SF_GUEST, h->guest);
	put_le64(buf + SF_STATE_OFF, h->state_off);
	put_le64(buf + SF_STATE_LEN, h->state_len);
	put_le64(buf + SF_MAP_OFF, h->map_off);
	put_le64(buf + SF_MAP_LEN, h->map_len);
	put_le64(buf + SF_RAM_OFF, h->ram_off);
	put_le64(buf + SF_PAGES, h->nr_pages);
	put_le64(buf + SF_WS_OFF, h->ws_off);
	put_le64(buf + SF_WS_PAGES, h->ws_pages);
	put_le64(buf + SF_FILE_SIZE, h->file_size);
	put_le64(buf + SF_CREATED, h->created_ns);
	put_le32(buf + SF_META_CRC, h->meta_crc);
	put_le32(buf + SF_HDR_CRC, proto_crc32c(0, buf, SNAPF_HDR_BYTES));
}

static void snapf_hdr_fields(const uint8_t *buf, struct snapf_hdr *h)
{
	h->id = get_le64(buf + SF_ID);
	h->mem_size = get_le64(buf + SF_MEM);
	h->nr_vcpus = get_le32(buf + SF_VCPUS);
	h->guest = get_le32(buf + SF_GUEST);
	h->state_off = get_le64(buf + SF_STATE_OFF);
	h->state_len = get_le64(buf + SF_STATE_LEN);
	h->map_off = get_le64(buf + SF_MAP_OFF);
	h->map_len = get_le64(buf + SF_MAP_LEN);
	h->ram_off = get_le64(buf + SF_RAM_OFF);
	h->nr_pages = get_le64(buf + SF_PAGES);
	h->ws_off = get_le64(buf + SF_WS_OFF);
	h->ws_pages = get_le64(buf + SF_WS_PAGES);
	h->file_size = get_le64(buf + SF_FILE_SIZE);
	h->created_ns = get_le64(buf + SF_CREATED);
	h->meta_crc = get_le32(buf + SF_META_CRC);
}

/* The offsets are those snapf_layout (and snapf_layout_ws) give. */
static int snapf_hdr_consistent(const struct snapf_hdr *h, char *err,
				size_t errlen)
{
	struct snapf_hdr want = *h;

	if (h->mem_size > (1ULL << 40) || h->state_len > (64ULL << 20) ||
	    !h->nr_vcpus || h->nr_vcpus > PROTO_MAX_VCPUS ||
	    h->guest >= SNAPF_GUEST_MAX || snapf_layout(&want)) {
		err_set(err, errlen,
			"header out of range (RAM %llu bytes, %u vCPUs, "
			"state %llu bytes, guest %u)",
			(unsigned long long)h->mem_size, h->nr_vcpus,
			(unsigned long long)h->state_len, h->guest);
		return -EPROTO;
	}
	if (h->ws_pages > want.nr_pages) {
		err_set(err, errlen, "loading set of %llu pages in %llu",
			(unsigned long long)h->ws_pages,
			(unsigned long long)want.nr_pages);
		return -EPROTO;
	}
	snapf_layout_ws(&want, h->ws_pages);
	if (want.state_off != h->state_off || want.map_off != h->map_off ||
	    want.map_len != h->map_len || want.ram_off != h->ram_off ||
	    want.nr_pages != h->nr_pages || want.ws_off != h->ws_off ||
	    want.file_size != h->file_size) {
		err_set(err, errlen, "header offsets are inconsistent");
		return -EPROTO;
	}
	return 0;
}

int snapf_hdr_decode(const uint8_t *buf, size_t len, struct snapf_hdr *h,
		     char *err, size_t errlen)
{
	uint8_t copy[SNAPF_HDR_BYTES];

	memset(h, 0, sizeof(*h));
	if (len < SNAPF_HDR_SIZE ||
	    memcmp(buf + SF_MAGIC, SNAPF_MAGIC, sizeof(SNAPF_MAGIC))) {
		err_set(err, errlen, "not a vmm snapshot (%s)",
			len < SNAPF_HDR_SIZE ? "shorter than its header"
					     : "no magic");
		return -EPROTO;
	}
	h->version = get_le32(buf + SF_VERSION);
	if (h->version != SNAPF_VERSION) {
		err_set(err, errlen,
			"snapshot version %u; this vmmctl reads version %u",
			h->version, SNAPF_VERSION);
		return -EPROTO;
	}
	memcpy(copy, buf, sizeof(copy));
	memset(copy + SF_HDR_CRC, 0, 4);
	if (get_le32(buf + SF_BYTES) != SNAPF_HDR_BYTES ||
	    proto_crc32c(0, copy, sizeof(copy)) != get_le32(buf + SF_HDR_CRC)) {
		err_set(err, errlen, "header checksum mismatch (corrupt)");
		return -EPROTO;
	}
	snapf_hdr_fields(buf, h);
	return snapf_hdr_consistent(h, err, errlen);
}
