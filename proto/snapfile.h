/* SPDX-License-Identifier: MIT */
/*
 * snapfile.h - the layout of a snapshot file (docs/snapshot.md): pure
 * encode/decode of its header and the arithmetic of its offsets, no I/O.
 *
 *   [0, 4096)            the header (below), little-endian
 *   [ram_off, +pages*4K) page i of RAM at ram_off (2 MiB) + i * 4096;
 *                        zero pages are holes (the file is sparse). RAM
 *                        comes first so that a live snapshot writes it
 *                        before the state's size is known.
 *   [state_off, +len)    the machine state: one HELLO frame (the VM's
 *                        shape, as a migration sends it), one STATE frame
 *                        per section, a STATE_END frame (proto.h)
 *   [map_off, +len)      one bit per page of RAM: 1 = its data is in the
 *                        file, 0 = a zero page (a hole in the file)
 *   [ws_off, ...)        optional loading set: ws_pages u64 page indexes
 *                        (padded to 4 KiB), then the pages' data in that
 *                        order, contiguous
 *
 * meta_crc is the CRC32C of state, map and the loading set's list;
 * hdr_crc that of the header's bytes with hdr_crc zero. RAM data is not
 * summed (a restore reads it once, by pages).
 */
#ifndef PROTO_SNAPFILE_H
#define PROTO_SNAPFILE_H

#include <stddef.h>
#include <stdint.h>

#define SNAPF_MAGIC	"VMMSNAP" /* 8 bytes with its NUL */
#define SNAPF_VERSION	1
#define SNAPF_HDR_SIZE	4096 /* the header's page */
#define SNAPF_HDR_BYTES 128  /* encoded bytes; the rest is zero */
#define SNAPF_ALIGN	4096ULL
#define SNAPF_RAM_OFF	(2ULL << 20)

enum snapf_guest {
	SNAPF_GUEST_ELF = 0,	   /* our ELF64 test guest */
	SNAPF_GUEST_MULTIBOOT = 1, /* a Multiboot v1 image */
	SNAPF_GUEST_LINUX = 2,	   /* vmlinux (PVH) or bzImage */
	SNAPF_GUEST_MAX
};

struct snapf_hdr {
	uint32_t version;
	uint64_t id;	   /* random: ties a loading set to its snapshot */
	uint64_t mem_size; /* bytes of RAM */
	uint32_t nr_vcpus;
	uint32_t guest; /* enum snapf_guest */
	uint64_t state_off, state_len;
	uint64_t map_off, map_len;
	uint64_t ram_off, nr_pages;
	uint64_t ws_off, ws_pages; /* ws_pages 0: no loading set */
	uint64_t file_size;	   /* bytes the whole file must have */
	uint64_t created_ns;	   /* CLOCK_REALTIME at the pause */
	uint32_t meta_crc;
};

/*
 * Fill the offsets of h from its mem_size (whole pages) and state_len:
 * RAM at SNAPF_RAM_OFF, the state after it, the map after the state, no
 * loading set; file_size the map's end (4 KiB aligned). 0 or -EINVAL.
 */
int snapf_layout(struct snapf_hdr *h);
/* Add a loading set of n pages after the map: ws_off, file_size. */
void snapf_layout_ws(struct snapf_hdr *h, uint64_t n);
/* Bytes of the loading set's page list (padded to 4 KiB). */
uint64_t snapf_ws_list_bytes(uint64_t n);
/* File offset of the loading set's data. */
uint64_t snapf_ws_data_off(const struct snapf_hdr *h);

/* Encode h into buf (SNAPF_HDR_SIZE bytes, zero padded), with hdr_crc. */
void snapf_hdr_encode(uint8_t *buf, const struct snapf_hdr *h);
/*
 * Decode and check a header page: magic, then version (a file of another
 * version is refused before anything else is read), then hdr_crc, then
 * that every offset and length is consistent. 0 or -EPROTO with one line
 * in err (without the file's name: the caller adds it).
 */
int snapf_hdr_decode(const uint8_t *buf, size_t len, struct snapf_hdr *h,
		     char *err, size_t errlen);
const char *snapf_guest_name(uint32_t guest);

#endif /* PROTO_SNAPFILE_H */
