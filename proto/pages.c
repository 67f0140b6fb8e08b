/* SPDX-License-Identifier: MIT */
/*
 * pages.c - PAGES frames: a batch of up to PROTO_MAX_BATCH guest pages as
 * runs of consecutive GPAs, each run all zero pages (a flag, no data) or
 * all data pages whose 4 KiB contents follow in the payload, raw or as one
 * zstd frame when that is smaller. The builder forms runs as pages are
 * added; the decoder trusts nothing: every count, address, flag and length
 * is checked, and a compressed payload must announce and inflate to exactly
 * the raw length. zstd contexts are cached per thread (created on first
 * use, freed when the thread exits), so encoding and decoding are safe from
 * any thread and allocate nothing after the first call.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "common/page.h"
#include "proto/wire.h"

#define PAGES_FIXED 12 /* nr_runs, flags, raw length, stored length */
#define RUN_SIZE    16 /* gpa, npages, flags */
#define BATCH_BYTES ((size_t)(PROTO_MAX_BATCH * PAGE_SIZE))

_Static_assert(PROTO_HDR_SIZE + PAGES_FIXED + PROTO_MAX_BATCH * RUN_SIZE +
			       ZSTD_COMPRESSBOUND(BATCH_BYTES) <=
		       PROTO_HDR_SIZE + PROTO_MAX_PAYLOAD,
	       "a full batch must fit in one frame");

/* ---- per-thread zstd contexts -------------------------------------------- */

static pthread_key_t pages_cctx_key, pages_dctx_key;
static pthread_once_t pages_once = PTHREAD_ONCE_INIT;

static void pages_cctx_free(void *p)
{
	ZSTD_freeCCtx(p);
}

static void pages_dctx_free(void *p)
{
	ZSTD_freeDCtx(p);
}

static void pages_keys_init(void)
{
	pthread_key_create(&pages_cctx_key, pages_cctx_free);
	pthread_key_create(&pages_dctx_key, pages_dctx_free);
}

static ZSTD_CCtx *pages_cctx(void)
{
	ZSTD_CCtx *cc;

	pthread_once(&pages_once, pages_keys_init);
	cc = pthread_getspecific(pages_cctx_key);
	if (!cc) {
		cc = ZSTD_createCCtx();
		if (cc && pthread_setspecific(pages_cctx_key, cc)) {
			ZSTD_freeCCtx(cc);
			cc = NULL;
		}
	}
	return cc;
}

static ZSTD_DCtx *pages_dctx(void)
{
	ZSTD_DCtx *dc;

	pthread_once(&pages_once, pages_keys_init);
	dc = pthread_getspecific(pages_dctx_key);
	if (!dc) {
		dc = ZSTD_createDCtx();
		if (dc && pthread_setspecific(pages_dctx_key, dc)) {
			ZSTD_freeDCtx(dc);
			dc = NULL;
		}
	}
	return dc;
}

/* ---- builder ------------------------------------------------------------- */

void proto_batch_init(struct proto_batch *b)
{
	b->nr_runs = 0;
	b->nr_pages = 0;
	b->nr_data = 0;
}

bool proto_batch_full(const struct proto_batch *b)
{
	return b->nr_pages >= PROTO_MAX_BATCH;
}

bool proto_page_is_zero(const void *page)
{
	const uint8_t *p = page;

	for (size_t off = 0; off < PAGE_SIZE; off += 64) {
		uint64_t w[8], acc = 0;

		memcpy(w, p + off, sizeof(w));
		for (int i = 0; i < 8; i++)
			acc |= w[i];
		if (acc)
			return false;
	}
	return true;
}

/* Does the page at gpa continue the last run? */
static bool batch_extends(const struct proto_batch *b, uint64_t gpa,
			  uint32_t flags)
{
	const struct proto_run *r;

	if (!b->nr_runs)
		return false;
	r = &b->runs[b->nr_runs - 1];
	return r->flags == flags &&
	       gpa - r->gpa == (uint64_t)r->npages * PAGE_SIZE &&
	       gpa > r->gpa;
}

int proto_batch_add(struct proto_batch *b, uint64_t gpa, const void *page)
{
	uint32_t flags = page ? 0 : PROTO_RUN_ZERO;

	if (proto_batch_full(b))
		return -ENOSPC;
	if (gpa % PAGE_SIZE || gpa > UINT64_MAX - PAGE_SIZE + 1)
		return -EINVAL;
	if (batch_extends(b, gpa, flags)) {
		b->runs[b->nr_runs - 1].npages++;
	} else {
		b->runs[b->nr_runs].gpa = gpa;
		b->runs[b->nr_runs].npages = 1;
		b->runs[b->nr_runs].flags = flags;
		b->nr_runs++;
	}
	if (page) {
		memcpy(b->data + (size_t)b->nr_data * PAGE_SIZE, page,
		       PAGE_SIZE);
		b->nr_data++;
	}
	b->nr_pages++;
	return 0;
}

/* ---- encoding ------------------------------------------------------------ */

size_t proto_batch_max_frame(void)
{
	return PROTO_HDR_SIZE + PAGES_FIXED + PROTO_MAX_BATCH * RUN_SIZE +
	       ZSTD_compressBound(BATCH_BYTES);
}

/*
 * Compress raw into dst when the result is smaller than raw; returns the
 * compressed length, 0 to send raw, or -ENOMEM.
 */
static long pages_compress(uint8_t *dst, size_t room, const uint8_t *raw,
			   size_t raw_len, int level)
{
	ZSTD_CCtx *cc = pages_cctx();
	size_t n;

	if (!cc)
		return -ENOMEM;
	if (room > raw_len - 1)
		room = raw_len - 1; /* anything larger is not worth it */
	n = ZSTD_compressCCtx(cc, dst, room, raw, raw_len, level);
	if (ZSTD_isError(n) || n >= raw_len)
		return 0;
	return (long)n;
}

/* The encoder refuses what the decoder would: the same checks on runs. */
static bool pages_run_ok(const struct proto_run *r)
{
	return r->npages >= 1 && r->npages <= PROTO_MAX_BATCH &&
	       !(r->flags & ~PROTO_RUN_ZERO) && r->gpa % PAGE_SIZE == 0 &&
	       (uint64_t)r->npages * PAGE_SIZE - 1 <= UINT64_MAX - r->gpa;
}

static bool pages_batch_ok(const struct proto_batch *b)
{
	uint64_t pages = 0, data = 0;

	if (b->nr_runs < 1 || b->nr_runs > PROTO_MAX_BATCH ||
	    b->nr_pages > PROTO_MAX_BATCH)
		return false;
	for (int i = 0; i < b->nr_runs; i++) {
		if (!pages_run_ok(&b->runs[i]))
			return false;
		pages += b->runs[i].npages;
		if (!(b->runs[i].flags & PROTO_RUN_ZERO))
			data += b->runs[i].npages;
	}
	return pages == (uint64_t)b->nr_pages && data == (uint64_t)b->nr_data;
}

int proto_pages_encode(uint8_t *buf, size_t cap, const struct proto_batch *b,
		       int zstd_level)
{
	size_t raw_len = (size_t)b->nr_data * PAGE_SIZE;
	size_t head = PAGES_FIXED + (size_t)b->nr_runs * RUN_SIZE;
	uint8_t *q = buf + PROTO_HDR_SIZE;
	uint16_t flags = 0;
	long stored = 0;
	int ret;

	if (!pages_batch_ok(b))
		return -EINVAL;
	ret = proto_frame_room(cap, head + raw_len);
	if (ret)
		return ret;
	if (zstd_level && raw_len) {
		stored = pages_compress(q + head, cap - PROTO_HDR_SIZE - head,
					b->data, raw_len, zstd_level);
		if (stored < 0)
			return (int)stored;
	}
	if (stored > 0) {
		flags = PROTO_PAGES_ZSTD;
	} else {
		memcpy(q + head, b->data, raw_len);
		stored = (long)raw_len;
	}
	q = proto_put16(q, (uint16_t)b->nr_runs);
	q = proto_put16(q, flags);
	q = proto_put32(q, (uint32_t)raw_len);
	q = proto_put32(q, (uint32_t)stored);
	for (int i = 0; i < b->nr_runs; i++) {
		q = proto_put64(q, b->runs[i].gpa);
		q = proto_put32(q, b->runs[i].npages);
		q = proto_put32(q, b->runs[i].flags);
	}
	proto_frame_seal(buf, PROTO_PAGES, (uint32_t)(head + stored));
	return PROTO_HDR_SIZE + (int)(head + stored);
}

/* ---- decoding ------------------------------------------------------------ */

struct pages_hdr {
	uint16_t nr_runs, flags;
	uint32_t raw_len, stored_len;
};

static int pages_get_hdr(struct proto_cur *c, struct pages_hdr *ph)
{
	if (proto_cur_u16(c, "nr_runs", &ph->nr_runs) ||
	    proto_cur_u16(c, "flags", &ph->flags) ||
	    proto_cur_u32(c, "raw length", &ph->raw_len) ||
	    proto_cur_u32(c, "stored length", &ph->stored_len))
		return -EPROTO;
	if (ph->flags & ~PROTO_PAGES_ZSTD)
		return proto_cur_fail(c, "unknown flags 0x%x", ph->flags);
	if (ph->nr_runs < 1 || ph->nr_runs > PROTO_MAX_BATCH)
		return proto_cur_fail(c, "nr_runs %u not in 1..%d", ph->nr_runs,
				      PROTO_MAX_BATCH);
	if (ph->raw_len % PAGE_SIZE || ph->raw_len > BATCH_BYTES)
		return proto_cur_fail(c,
				      "raw length %u not a multiple of %llu "
				      "up to %zu",
				      ph->raw_len, PAGE_SIZE,
				      BATCH_BYTES);
	return 0;
}

static int pages_check_run(struct proto_cur *c, int i,
			   const struct proto_run *r, uint32_t *pages)
{
	uint64_t bytes;

	if (r->flags & ~PROTO_RUN_ZERO)
		return proto_cur_fail(c, "run %d unknown flags 0x%x", i,
				      r->flags);
	if (r->npages == 0)
		return proto_cur_fail(c, "run %d has no pages", i);
	if (r->npages > PROTO_MAX_BATCH - *pages)
		return proto_cur_fail(c,
				      "run %d: more than %d pages in the "
				      "batch",
				      i, PROTO_MAX_BATCH);
	if (r->gpa % PAGE_SIZE)
		return proto_cur_fail(
			c, "run %d gpa 0x%" PRIx64 " not page-aligned", i,
			r->gpa);
	bytes = (uint64_t)r->npages * PAGE_SIZE;
	if (bytes - 1 > UINT64_MAX - r->gpa)
		return proto_cur_fail(c,
				      "run %d gpa 0x%" PRIx64 " + %u pages "
				      "overflows",
				      i, r->gpa, r->npages);
	*pages += r->npages;
	return 0;
}

static int pages_get_runs(struct proto_cur *c, const struct pages_hdr *ph,
			  struct proto_batch *b)
{
	uint32_t pages = 0, data = 0;
	const uint8_t *q;

	if (proto_cur_need(c, (size_t)ph->nr_runs * RUN_SIZE, "runs"))
		return -EPROTO;
	q = proto_cur_take(c, (size_t)ph->nr_runs * RUN_SIZE);
	for (int i = 0; i < ph->nr_runs; i++, q += RUN_SIZE) {
		struct proto_run *r = &b->runs[i];

		r->gpa = get_le64(q);
		r->npages = get_le32(q + 8);
		r->flags = get_le32(q + 12);
		if (pages_check_run(c, i, r, &pages))
			return -EPROTO;
		if (!(r->flags & PROTO_RUN_ZERO))
			data += r->npages;
	}
	if ((uint64_t)data * PAGE_SIZE != ph->raw_len)
		return proto_cur_fail(c, "%u data pages but raw length %u",
				      data, ph->raw_len);
	b->nr_runs = ph->nr_runs;
	b->nr_pages = (int)pages;
	b->nr_data = (int)data;
	return 0;
}

static int pages_inflate(struct proto_cur *c, const uint8_t *src, size_t n,
			 uint32_t raw_len, uint8_t *dst)
{
	unsigned long long content;
	ZSTD_DCtx *dc;
	size_t got;

	if (n >= raw_len)
		return proto_cur_fail(c,
				      "zstd data %zu bytes not smaller "
				      "than raw %u",
				      n, raw_len);
	if (ZSTD_findFrameCompressedSize(src, n) != n)
		return proto_cur_fail(c, "zstd data is not one whole frame");
	content = ZSTD_getFrameContentSize(src, n);
	if (content != raw_len)
		return proto_cur_fail(c,
				      "zstd content size %lld, raw length "
				      "%u",
				      (long long)content, raw_len);
	dc = pages_dctx();
	if (!dc) {
		proto_cur_fail(c, "out of memory for a zstd context");
		return -ENOMEM;
	}
	got = ZSTD_decompressDCtx(dc, dst, raw_len, src, n);
	if (ZSTD_isError(got))
		return proto_cur_fail(c, "zstd: %s", ZSTD_getErrorName(got));
	if (got != raw_len)
		return proto_cur_fail(c, "zstd gave %zu bytes, raw length %u",
				      got, raw_len);
	return 0;
}

int proto_pages_decode(const uint8_t *p, size_t len, struct proto_batch *b,
		       char *err, size_t errlen)
{
	struct pages_hdr ph;
	struct proto_cur c;
	const uint8_t *src;

	proto_batch_init(b);
	proto_cur_init(&c, p, len, "PAGES", err, errlen);
	if (pages_get_hdr(&c, &ph) || pages_get_runs(&c, &ph, b))
		goto fail;
	if (ph.stored_len != proto_cur_left(&c)) {
		proto_cur_fail(&c, "stored length %u but %zu bytes follow",
			       ph.stored_len, proto_cur_left(&c));
		goto fail;
	}
	src = proto_cur_take(&c, ph.stored_len);
	if (ph.flags & PROTO_PAGES_ZSTD) {
		int ret = pages_inflate(&c, src, ph.stored_len, ph.raw_len,
					b->data);

		if (ret) {
			proto_batch_init(b);
			return ret;
		}
	} else if (ph.stored_len != ph.raw_len) {
		proto_cur_fail(&c, "raw data %u bytes, raw length %u",
			       ph.stored_len, ph.raw_len);
		goto fail;
	} else {
		memcpy(b->data, src, ph.raw_len);
	}
	return 0;
fail:
	proto_batch_init(b);
	return -EPROTO;
}
