/* SPDX-License-Identifier: MIT */
/*
 * proto/ - the migration wire format: pure encode/decode over buffers.
 *
 * This layer owns the byte layout of every message that crosses the wire
 * between a migration source and destination (docs/protocol.md): a fixed
 * frame header with a type, a payload length and a CRC32C over header and
 * payload; the handshake; page batches (GPA runs, zero pages as a flag,
 * payload raw or zstd-compressed); state sections (vCPU, VM, device) as
 * opaque versioned blobs; and the control messages of the switch-over. It
 * does no I/O and knows nothing of KVM, sockets or threads: every function
 * is pure over the buffers it is given, validates every length, count and
 * enum before use, and reports what is wrong in one line.
 */
#ifndef PROTO_PROTO_H
#define PROTO_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/page.h"

struct iovec; /* <sys/uio.h>: a frame's parts sent where they are */

#define PROTO_MAGIC	  0x4d49474dU /* "MGIM" little-endian: 'M''G''I''M' */
#define PROTO_VERSION	  2 /* 2: PAGES_LIVE, data not under the CRC */
#define PROTO_HDR_SIZE	  16
#define PROTO_MAX_PAYLOAD (8U << 20) /* larger frames are refused */
#define PROTO_MAX_BATCH	  256	     /* pages in one PAGES frame */

/* Capabilities (HELLO / HELLO_ACK). */
#define PROTO_CAP_ZSTD	   (1ULL << 0)
#define PROTO_CAP_POSTCOPY (1ULL << 1)
#define PROTO_CAP_VERIFY   (1ULL << 2) /* SHA-256 of RAM at the end */
/* Parallel channels: HELLO and HELLO_ACK carry a channel count (below). */
#define PROTO_CAP_CHANNELS (1ULL << 3)
/*
 * With PROTO_CAP_VERIFY: a page's term is XXH3-128 of the page seeded with
 * its gpa (two lanes, the other two zero) instead of SHA-256(gpa || page):
 * ~20x cheaper, for a check against bugs, not against the peer (the
 * channel's TLS is that). Agreed like any other bit: both or SHA-256.
 */
#define PROTO_CAP_VERIFY_XXH3 (1ULL << 4)
/*
 * HELLO carries the guest's TSC frequency (below): the destination makes
 * its vCPUs tick at it, or refuses, before a page moves.
 */
#define PROTO_CAP_TSC (1ULL << 5)
/*
 * Every capability this version knows. A HELLO may offer unknown bits (a
 * newer peer's): the destination answers the intersection. A HELLO_ACK
 * with a bit outside PROTO_CAP_ALL is refused.
 */
#define PROTO_CAP_ALL                                                          \
	(PROTO_CAP_ZSTD | PROTO_CAP_POSTCOPY | PROTO_CAP_VERIFY |              \
	 PROTO_CAP_CHANNELS | PROTO_CAP_VERIFY_XXH3 | PROTO_CAP_TSC)

enum proto_type {
	PROTO_HELLO = 1,     /* src -> dst: version, caps, the VM's shape */
	PROTO_HELLO_ACK = 2, /* dst -> src: accepted caps */
	PROTO_PAGES = 3,     /* src -> dst: a batch of pages */
	PROTO_RAM_END = 4,   /* src -> dst: no more pages (end of pre-copy) */
	PROTO_STATE = 5,     /* src -> dst: one state section (blob) */
	PROTO_STATE_END = 6, /* src -> dst: every section sent */
	PROTO_READY = 7,     /* dst -> src: restored whole, not running yet */
	PROTO_GO = 8,	     /* src -> dst: run it (the source will not) */
	PROTO_RUNNING = 9,   /* dst -> src: vCPUs are running */
	PROTO_ERROR = 10,    /* either way: a reason; the sender gives up */
	PROTO_VERIFY = 11,   /* either way: SHA-256 of each RAM region */
	PROTO_SYNC = 12,     /* src -> dst, echoed back once all before it
				is processed: ends a pre-copy round */
	/*
	 * Post-copy (only when PROTO_CAP_POSTCOPY was agreed; see the
	 * "Post-copy" section of docs/protocol.md for which connection each
	 * travels on and in which order).
	 */
	PROTO_DISCARD = 13,	 /* src -> dst: pages not valid there; dst ->
				    src after RESUME: pages it still lacks */
	PROTO_POSTCOPY = 14,	 /* src -> dst: switching now (cookie, the
				    number of DISCARD runs before it) */
	PROTO_URGENT_HELLO = 15, /* src -> dst: first frame of the urgent
				    connection (cookie) */
	PROTO_PAGE_REQ = 16,	 /* dst -> src, urgent: send these pages */
	PROTO_POSTCOPY_END = 17, /* src -> dst: every page has been sent */
	PROTO_COMPLETE = 18,	 /* dst -> src: every page is present */
	PROTO_RESUME = 19,	 /* src -> dst: first frame of a new main
				    connection after a break (cookie) */
	PROTO_RESUME_ACK = 20,	 /* dst -> src: cookie, the number of
				    DISCARD runs (pages lacking) before it */
	PROTO_CHAN_HELLO = 21,	 /* src -> dst: first frame of an extra
				    channel (token, index, proof) */
	PROTO_TYPE_MAX
};

/* ---- frame header -------------------------------------------------------- */

/*
 * Header, 16 bytes, little-endian:
 *   u32 magic, u16 type, u16 flags (0 for now), u32 payload length,
 *   u32 crc32c of the header (with this field zero) and the payload's
 *   checked part: all of it, except in a PAGES frame with PROTO_PAGES_LIVE
 *   where it ends with the runs (proto_frame_crc_len): that data was read
 *   from guest RAM while the guest ran, so no checksum taken before the
 *   kernel copied it could hold.
 */
struct proto_hdr {
	uint16_t type;
	uint16_t flags;
	uint32_t len;
	uint32_t crc;
};

/* CRC32C (Castagnoli), hardware-accelerated where the CPU has SSE4.2. */
uint32_t proto_crc32c(uint32_t crc, const void *buf, size_t len);

/*
 * Write a header for a payload already at buf + PROTO_HDR_SIZE (len bytes),
 * computing the CRC over both (its checked part).
 */
void proto_frame_seal(uint8_t *buf, enum proto_type type, uint32_t len);
/*
 * The same for a payload whose first inbuf bytes are at buf +
 * PROTO_HDR_SIZE and whose rest is the niov buffers of iov.
 */
void proto_frame_seal_iov(uint8_t *buf, enum proto_type type, uint32_t len,
			  size_t inbuf, const struct iovec *iov, int niov);
/*
 * How many of a payload's len bytes the CRC covers: len, or for a PAGES
 * frame with PROTO_PAGES_LIVE the fixed fields and the runs (as its
 * nr_runs says; never more than len).
 */
size_t proto_frame_crc_len(unsigned int type, const uint8_t *payload,
			   size_t len);

/*
 * Parse a header (exactly PROTO_HDR_SIZE bytes): magic, known type, flags
 * zero, len <= PROTO_MAX_PAYLOAD. Returns 0 or -EPROTO with err set.
 */
int proto_hdr_decode(const uint8_t *buf, struct proto_hdr *h, char *err,
		     size_t errlen);
/* Check the CRC of a whole frame (header + h->len payload bytes). */
int proto_frame_check(const uint8_t *frame, const struct proto_hdr *h,
		      char *err, size_t errlen);
/*
 * Both of the above on a buffer of len bytes that should start with a
 * whole frame: refuses a truncated header or payload too. Returns the
 * frame's length (header + payload; bytes after it are not looked at) or
 * -EPROTO with err set. The payload starts at buf + PROTO_HDR_SIZE.
 */
int proto_frame_decode(const uint8_t *buf, size_t len, struct proto_hdr *h,
		       char *err, size_t errlen);
const char *proto_type_name(unsigned int type);

/* ---- handshake ----------------------------------------------------------- */

#define PROTO_MAX_REGIONS 8
#define PROTO_MAX_CPUID	  256
#define PROTO_MAX_DEVICES 16
#define PROTO_NAME_MAX	  32
#define PROTO_MAX_VCPUS	  4096 /* HELLO's nr_vcpus and STATE's vCPU ids */

struct proto_region {
	uint64_t gpa;
	uint64_t size;
};

struct proto_cpuid {
	uint32_t function, index, flags, eax, ebx, ecx, edx;
};

struct proto_device {
	char name[PROTO_NAME_MAX]; /* NUL-terminated */
	uint32_t version;	   /* of its state blob */
};

struct proto_hello {
	uint32_t version;
	uint64_t caps;
	uint32_t page_size;
	uint64_t mem_size;
	uint32_t nr_regions;
	struct proto_region regions[PROTO_MAX_REGIONS];
	uint32_t nr_vcpus;
	uint32_t nr_cpuid;
	struct proto_cpuid cpuid[PROTO_MAX_CPUID];
	uint32_t nr_devices;
	struct proto_device devices[PROTO_MAX_DEVICES];
	/*
	 * With PROTO_CAP_CHANNELS only (else absent on the wire and 0):
	 * the connections the source asks for, 2..PROTO_MAX_CHANNELS.
	 */
	uint32_t nr_channels;
	/*
	 * With PROTO_CAP_TSC only (else absent and 0): the kHz at which the
	 * guest's TSC ticks (KVM_GET_TSC_KHZ), 1..PROTO_MAX_TSC_KHZ.
	 */
	uint32_t tsc_khz;
};

#define PROTO_MAX_CHANNELS 8
#define PROTO_MAX_TSC_KHZ  100000000U /* 100 GHz */

/* The largest HELLO frame (every array full): a buffer this big always fits. */
#define PROTO_HELLO_MAX_FRAME                                                  \
	(PROTO_HDR_SIZE + 28 + PROTO_MAX_REGIONS * 16 + 8 +                    \
	 PROTO_MAX_CPUID * 28 + 4 + PROTO_MAX_DEVICES * (PROTO_NAME_MAX + 4) + \
	 4 + 4)

/*
 * Encoders write a whole frame (header + payload) into buf of size cap and
 * return its length, or -ENOSPC (cap too small), -EMSGSIZE (payload over
 * PROTO_MAX_PAYLOAD) or -EINVAL (the input is something the decoder would
 * refuse). Decoders take the payload (after the header was checked) and
 * return 0 or -EPROTO with err set; err may be NULL.
 */
int proto_hello_encode(uint8_t *buf, size_t cap, const struct proto_hello *h);
/*
 * A HELLO whose version is not PROTO_VERSION is decoded no further than
 * its version (the rest is another version's layout): it returns 0 with
 * every other field zero, and proto_hello_compare refuses it by version.
 * So always compare before using anything else in a received HELLO.
 */
int proto_hello_decode(const uint8_t *p, size_t len, struct proto_hello *h,
		       char *err, size_t errlen);
/*
 * What the decoder checks beyond the layout, and the encoder refuses with
 * -EINVAL: counts within limits, nr_vcpus 1..PROTO_MAX_VCPUS, regions
 * page-aligned, non-empty and not wrapping, device names non-empty,
 * printable and NUL-terminated within PROTO_NAME_MAX, with PROTO_CAP_TSC
 * tsc_khz 1..PROTO_MAX_TSC_KHZ. 0 or -EPROTO.
 */
int proto_hello_check(const struct proto_hello *h, char *err, size_t errlen);
/*
 * Compare a received HELLO with the local one: version, page size, memory
 * size and layout, vCPU count, CPUID (every leaf the source has must be
 * present and equal here), devices (same names, same versions). 0 when
 * compatible, else -EPROTO with the first difference in err, worded for
 * the user, remote being the source ("VM has 2 vCPUs here, source has 4").
 * Capabilities are not compared: they are negotiated.
 */
int proto_hello_compare(const struct proto_hello *local,
			const struct proto_hello *remote, char *err,
			size_t errlen);

int proto_hello_ack_encode(uint8_t *buf, size_t cap, uint64_t caps);
int proto_hello_ack_decode(const uint8_t *p, size_t len, uint64_t *caps,
			   char *err, size_t errlen);
/*
 * HELLO_ACK with PROTO_CAP_CHANNELS in caps: u64 caps, then u32
 * nr_channels (2..PROTO_MAX_CHANNELS, at most what HELLO asked) and u64
 * token (non-zero, random: names this migration to the extra channels).
 * Without the cap the frame is caps alone (nr 1, token 0 decoded).
 */
#define PROTO_HELLO_ACK_MAX_FRAME (PROTO_HDR_SIZE + 20)
int proto_hello_ack_chan_encode(uint8_t *buf, size_t cap, uint64_t caps,
				uint32_t nr_channels, uint64_t token);
int proto_hello_ack_chan_decode(const uint8_t *p, size_t len, uint64_t *caps,
				uint32_t *nr_channels, uint64_t *token,
				char *err, size_t errlen);

/*
 * CHAN_HELLO (src -> dst, the first frame of extra channel index,
 * 1..nr_channels-1): u64 token (from HELLO_ACK, non-zero), u32 index,
 * then over TLS a PROTO_PROOF_LEN-byte proof (as URGENT_HELLO's). The
 * channel then carries only PAGES and SYNC (docs/protocol.md, "Parallel
 * channels"). encode: proof NULL writes none; decode: *has_proof says.
 */
#define PROTO_CHAN_HELLO_FRAME (PROTO_HDR_SIZE + 12 + 32)
int proto_chan_hello_encode(uint8_t *buf, size_t cap, uint64_t token,
			    uint32_t index, const uint8_t *proof);
int proto_chan_hello_decode(const uint8_t *p, size_t len, uint64_t *token,
			    uint32_t *index, uint8_t *proof, bool *has_proof,
			    char *err, size_t errlen);

/* ---- page batches -------------------------------------------------------- */

/*
 * A batch is up to PROTO_MAX_BATCH pages in runs of consecutive GPAs. Each
 * run is either zero pages (no data) or data pages whose contents follow in
 * the payload, raw or (PROTO_PAGES_ZSTD) as one zstd frame of all the
 * batch's data pages. Payload layout: u16 nr_runs, u16 flags, u32 raw data
 * length, u32 stored data length, then nr_runs x {u64 gpa, u32 npages,
 * u32 run flags (PROTO_RUN_ZERO)}, then the stored data.
 */
#define PROTO_PAGES_ZSTD 0x1
/*
 * PROTO_PAGES_LIVE: raw data read from guest RAM while the guest ran, as
 * the kernel copied it: the frame's CRC covers the header and the runs
 * only (a page changed after it was queued is dirty, so sent again).
 */
#define PROTO_PAGES_LIVE 0x2
#define PROTO_RUN_ZERO	 0x1

struct proto_run {
	uint64_t gpa;
	uint32_t npages;
	uint32_t flags;
};

/*
 * Builder: the caller adds pages in any order; runs form from neighbours.
 * A data page is not copied: the batch keeps its address (page[]), which
 * must stay mapped until the frame is encoded or, sent by reference
 * (proto_pages_encode_head), written. The decoder gives the raw data of
 * the data pages, in order, at raw: inside the payload it decoded, or in
 * data[] when it had to inflate them.
 */
struct proto_batch {
	int nr_runs;
	int nr_pages;
	int nr_data; /* pages with data */
	struct proto_run runs[PROTO_MAX_BATCH];
	const uint8_t *page[PROTO_MAX_BATCH];	   /* builder: each data page */
	const uint8_t *raw;			   /* decoder: nr_data pages */
	uint8_t data[PROTO_MAX_BATCH * PAGE_SIZE]; /* inflated data */
};

void proto_batch_init(struct proto_batch *b);
/* Returns true when the batch is full (PROTO_MAX_BATCH pages). */
bool proto_batch_full(const struct proto_batch *b);
/*
 * Add the page at gpa; page NULL means a zero page (no data), else its
 * 4096 bytes stay where they are (see struct proto_batch). Returns 0,
 * -ENOSPC when the batch is full, -EINVAL when gpa is not page-aligned.
 */
int proto_batch_add(struct proto_batch *b, uint64_t gpa, const void *page);
/*
 * True when all 4096 bytes are zero: 32 bytes at a time with AVX2 when the
 * CPU has it (checked once), else 16 (SSE2); the first non-zero 64-byte
 * line ends the scan. The two are exposed for the unit tests.
 */
bool proto_page_is_zero(const void *page);
bool proto_page_is_zero_sse2(const void *page);
bool proto_page_is_zero_avx2(const void *page); /* when proto_avx2_ok() */
bool proto_avx2_ok(void);

/*
 * Encode the batch as a PAGES frame. zstd_level 0 means raw; otherwise
 * compress with that level (e.g. -1 or 1) and keep the result only when it
 * is smaller than the raw data. Returns the frame length or -errno
 * (-EINVAL for an empty or inconsistent batch, -ENOMEM when no zstd
 * context could be made). cap must be at least proto_batch_max_frame().
 * zstd contexts (compression and decompression) are cached per thread,
 * created on first use and freed when the thread exits: encode and decode
 * are safe from any thread; the first call on a thread allocates.
 */
int proto_pages_encode(uint8_t *buf, size_t cap, const struct proto_batch *b,
		       int zstd_level);
size_t proto_batch_max_frame(void);

/*
 * The same PAGES frame, raw, without copying a page: the header and the
 * runs go into buf (cap >= PROTO_PAGES_HEAD_MAX), the data pages are
 * described by iov (room for PROTO_MAX_BATCH entries; neighbouring pages
 * merged), to be written after buf's bytes as they are. live: the pages
 * may change until written (a running guest's RAM): PROTO_PAGES_LIVE, the
 * CRC covers the header and the runs only; else it covers the pages too
 * (read once here). Returns the bytes in buf (the frame is that plus
 * nr_data pages) and sets *niov; -EINVAL for an empty or inconsistent
 * batch, -ENOSPC when cap is too small.
 */
#define PROTO_PAGES_HEAD_MAX (PROTO_HDR_SIZE + 12 + PROTO_MAX_BATCH * 16)
int proto_pages_encode_head(uint8_t *buf, size_t cap,
			    const struct proto_batch *b, bool live,
			    struct iovec *iov, int *niov);
/*
 * Would zstd at level shrink this batch's data by at least 1/8? Judged on
 * a sample (PROTO_ZSTD_SAMPLE pages spread over the batch) at a fraction
 * of the cost of compressing it all. False for a batch without data, or
 * when no zstd context could be made.
 */
#define PROTO_ZSTD_SAMPLE 2
bool proto_pages_zstd_pays(const struct proto_batch *b, int level);

/*
 * Decode a PAGES payload: runs into b->runs, the data at b->raw (in p when
 * raw, so valid as long as p is; inflated into b->data), with every count and
 * length validated (runs page-aligned, within the batch limit, data length =
 * data pages x 4096, decompressed size exact). On failure b is left empty. Runs
 * are not checked against the VM's RAM layout, nor for overlap (a later page
 * wins): the caller checks each run against its regions before writing a byte.
 */
int proto_pages_decode(const uint8_t *p, size_t len, struct proto_batch *b,
		       char *err, size_t errlen);
/*
 * The same for a PAGES payload of len bytes of which only the first have
 * are here (a receiver that places the data itself as it arrives): the
 * fixed fields and the runs must be within have, the frame raw and live
 * (PROTO_PAGES_LIVE, not zstd: -ENOTSUP, b empty, no error text), and its
 * data exactly len minus them. b->raw is left NULL; *head is the offset of
 * the first data byte in the payload.
 */
int proto_pages_decode_head(const uint8_t *p, size_t have, size_t len,
			    struct proto_batch *b, size_t *head, char *err,
			    size_t errlen);

/* ---- state sections ------------------------------------------------------ */

enum proto_state_kind {
	PROTO_STATE_VCPU = 1,	/* id = vCPU index */
	PROTO_STATE_VM = 2,	/* irqchip, PIT, clock; id 0 */
	PROTO_STATE_DEVICE = 3, /* id = index in HELLO's device list */
	PROTO_STATE_KIND_MAX
};

/*
 * Payload: u16 kind, u16 version, u32 id, u32 blob length, blob. The id
 * must be < PROTO_MAX_VCPUS for a vCPU, 0 for the VM, < PROTO_MAX_DEVICES
 * for a device. The encoder may be given a blob that already sits at
 * buf + PROTO_STATE_OVERHEAD (written there in place): it is not copied.
 */
#define PROTO_STATE_OVERHEAD (PROTO_HDR_SIZE + 12) /* frame bytes + blob */
struct proto_state {
	uint16_t kind;
	uint16_t version;
	uint32_t id;
	uint32_t len;
	const uint8_t *blob; /* decode: points into the payload */
};

int proto_state_encode(uint8_t *buf, size_t cap, const struct proto_state *s);
int proto_state_decode(const uint8_t *p, size_t len, struct proto_state *s,
		       char *err, size_t errlen);

/*
 * Blob records: a state blob is a sequence of {u32 tag, u32 len, bytes
 * padded to 8} records. The writer appends; the reader iterates with every
 * length checked against what is left.
 */
struct proto_rec_writer {
	uint8_t *buf;
	size_t cap, len;
	bool overflow;
};

struct proto_rec_reader {
	const uint8_t *buf;
	size_t len, off;
};

void proto_rec_writer_init(struct proto_rec_writer *w, uint8_t *buf,
			   size_t cap);
void proto_rec_put(struct proto_rec_writer *w, uint32_t tag, const void *data,
		   uint32_t len);
void proto_rec_reader_init(struct proto_rec_reader *r, const uint8_t *buf,
			   size_t len);
/* 1 with the next record, 0 at the end, -EPROTO when truncated. */
int proto_rec_next(struct proto_rec_reader *r, uint32_t *tag,
		   const uint8_t **data, uint32_t *len);

/* ---- small messages ------------------------------------------------------ */

/*
 * RAM_END, STATE_END, READY, GO, RUNNING, SYNC, POSTCOPY_END, COMPLETE:
 * empty payload.
 */
int proto_empty_encode(uint8_t *buf, size_t cap, enum proto_type type);
/* 0 when type is one of those and len is 0, else -EPROTO. */
int proto_empty_decode(const uint8_t *p, size_t len, enum proto_type type,
		       char *err, size_t errlen);

/*
 * ERROR: u32 code (a positive errno, 1..PROTO_ERRNO_MAX), u16 length,
 * reason text (not terminated, at most PROTO_REASON_MAX bytes). The
 * encoder takes code with either sign and cuts a longer reason. The
 * decoder NUL-terminates the reason into reason (cut to reason_len - 1)
 * with every byte outside printable ASCII replaced by '?'.
 */
#define PROTO_REASON_MAX 1024
#define PROTO_ERRNO_MAX	 4095
int proto_error_encode(uint8_t *buf, size_t cap, int code, const char *reason);
int proto_error_decode(const uint8_t *p, size_t len, int *code, char *reason,
		       size_t reason_len, char *err, size_t errlen);

/*
 * VERIFY: u32 nr (<= PROTO_MAX_REGIONS), then nr x {u64 gpa, u64 size,
 * u8 sha256[32]}. The decoder refuses nr > max (the room in d).
 */
#define PROTO_VERIFY_MAX_FRAME (PROTO_HDR_SIZE + 4 + PROTO_MAX_REGIONS * 48)
struct proto_digest {
	uint64_t gpa;
	uint64_t size;
	uint8_t sha256[32];
};

int proto_verify_encode(uint8_t *buf, size_t cap, const struct proto_digest *d,
			uint32_t nr);
int proto_verify_decode(const uint8_t *p, size_t len, struct proto_digest *d,
			uint32_t max, uint32_t *nr, char *err, size_t errlen);

/* ---- post-copy ----------------------------------------------------------- */

/*
 * The messages of post-copy live migration (docs/protocol.md, "Post-copy").
 * They may be sent only when both sides agreed PROTO_CAP_POSTCOPY, so a
 * version-1 peer that does not know them never sees one.
 *
 * The cookie is a random non-zero 64-bit value the source picks for one
 * migration. POSTCOPY announces it on the main connection; the second,
 * urgent connection proves that it belongs to this migration by sending the
 * same cookie in URGENT_HELLO, its first frame, and after a break a new main
 * connection does the same with RESUME. Every decoder refuses cookie 0
 * (which a receiver can use for "none announced"); every encoder refuses it
 * with -EINVAL.
 */

/*
 * DISCARD: u32 nr_runs (1..PROTO_MAX_DISCARD_RUNS), then nr_runs x {u64
 * gpa, u32 npages, u32 flags}: gpa page-aligned, npages >= 1, the run does
 * not wrap past 2^64, flags 0. Runs may overlap and are not checked against
 * the VM's RAM layout (the receiver checks them against its regions). The
 * list is split over as many frames as it takes and ended by POSTCOPY (src
 * -> dst) or RESUME_ACK (dst -> src), which carry the total number of runs.
 */
#define PROTO_MAX_DISCARD_RUNS 65536
#define PROTO_DISCARD_RUN_SIZE 16
#define PROTO_DISCARD_MAX_FRAME                                                \
	(PROTO_HDR_SIZE + 4 + PROTO_MAX_DISCARD_RUNS * PROTO_DISCARD_RUN_SIZE)

int proto_discard_encode(uint8_t *buf, size_t cap, const struct proto_run *r,
			 uint32_t nr);
/* The decoder refuses nr_runs > max (the room in r). */
int proto_discard_decode(const uint8_t *p, size_t len, struct proto_run *r,
			 uint32_t max, uint32_t *nr, char *err, size_t errlen);

/*
 * POSTCOPY (src -> dst) and RESUME_ACK (dst -> src): u64 cookie (non-zero),
 * u64 nr_runs - the number of DISCARD runs the sender sent since the start
 * of the list (HELLO_ACK for POSTCOPY, RESUME for RESUME_ACK), all frames
 * together; the receiver compares it with the number it received.
 */
#define PROTO_POSTCOPY_FRAME (PROTO_HDR_SIZE + 16)
int proto_postcopy_encode(uint8_t *buf, size_t cap, uint64_t cookie,
			  uint64_t nr_runs);
int proto_postcopy_decode(const uint8_t *p, size_t len, uint64_t *cookie,
			  uint64_t *nr_runs, char *err, size_t errlen);
int proto_resume_ack_encode(uint8_t *buf, size_t cap, uint64_t cookie,
			    uint64_t nr_runs);
int proto_resume_ack_decode(const uint8_t *p, size_t len, uint64_t *cookie,
			    uint64_t *nr_runs, char *err, size_t errlen);

/*
 * URGENT_HELLO (src -> dst, the first frame of the urgent connection) and
 * RESUME (src -> dst, the first frame of a new main connection after a
 * break in post-copy): u64 cookie (non-zero), nothing else.
 */
#define PROTO_COOKIE_FRAME (PROTO_HDR_SIZE + 8)
int proto_urgent_hello_encode(uint8_t *buf, size_t cap, uint64_t cookie);
int proto_urgent_hello_decode(const uint8_t *p, size_t len, uint64_t *cookie,
			      char *err, size_t errlen);
int proto_resume_encode(uint8_t *buf, size_t cap, uint64_t cookie);
int proto_resume_decode(const uint8_t *p, size_t len, uint64_t *cookie,
			char *err, size_t errlen);
/*
 * The same two frames over TLS: u64 cookie, then a PROTO_PROOF_LEN-byte
 * proof that the connection belongs to the same two peers as the first
 * main connection (an HMAC keyed by that session's exporter value over
 * this session's; migration/tls.h, tls_conn_proof). The proof, not the
 * cookie, admits the connection; the cookie only names the migration.
 * type: PROTO_URGENT_HELLO or PROTO_RESUME. encode: proof NULL writes the
 * cookie alone. decode: a payload of the cookie alone leaves *has_proof
 * false; proof receives PROTO_PROOF_LEN bytes.
 */
#define PROTO_PROOF_LEN	  32
#define PROTO_PROOF_FRAME (PROTO_COOKIE_FRAME + PROTO_PROOF_LEN)
int proto_cookie_proof_encode(uint8_t *buf, size_t cap, enum proto_type type,
			      uint64_t cookie, const uint8_t *proof);
int proto_cookie_proof_decode(const uint8_t *p, size_t len,
			      enum proto_type type, uint64_t *cookie,
			      uint8_t *proof, bool *has_proof, char *err,
			      size_t errlen);

/*
 * PAGE_REQ (dst -> src, on the urgent connection): u32 nr
 * (1..PROTO_MAX_PAGE_REQ), then nr x u64 gpa, each page-aligned. The same
 * page may appear more than once. The source answers with PAGES frames on
 * the urgent connection. The decoder writes at most PROTO_MAX_PAGE_REQ
 * addresses into gpa.
 */
#define PROTO_MAX_PAGE_REQ	 64
#define PROTO_PAGE_REQ_MAX_FRAME (PROTO_HDR_SIZE + 4 + PROTO_MAX_PAGE_REQ * 8)
int proto_page_req_encode(uint8_t *buf, size_t cap, const uint64_t *gpa,
			  uint32_t nr);
int proto_page_req_decode(const uint8_t *p, size_t len,
			  uint64_t gpa[PROTO_MAX_PAGE_REQ], uint32_t *nr,
			  char *err, size_t errlen);

#endif /* PROTO_PROTO_H */
