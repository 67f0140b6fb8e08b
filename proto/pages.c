/* SPDX-License-Identifier: MIT */
/*
 * pages.c - PAGES frames: a batch of up to PROTO_MAX_BATCH guest pages as
 * runs of consecutive GPAs, each run all zero pages (a flag, no data) or
 * all data pages whose 4 KiB contents follow in the payload, raw or as one
 * zstd frame when that is smaller. The builder forms runs as pages are
 * added and keeps each data page's address, so that a raw frame can be
 * sent straight from guest RAM (proto_pages_encode_head: header and runs
 * here, the pages as iovecs; PROTO_PAGES_LIVE when the guest runs, the
 * CRC then ending with the runs); zero pages are found 32 or 16 bytes at a
 * time (AVX2, SSE2). The decoder trusts nothing: every count, address, flag and
 * length is checked, and a compressed payload must announce and inflate to
 * exactly the raw length. zstd contexts are cached per thread (created on first
 * use, freed when the thread exits), so encoding and decoding are safe from
 * any thread and allocate nothing after the first call.
 */
#include <immintrin.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
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
	b->raw = NULL;
}

bool proto_batch_full(const struct proto_batch *b)
{
	return b->nr_pages >= PROTO_MAX_BATCH;
}

/* 64 bytes a step: a page with data usually ends the scan at its first. */
bool proto_page_is_zero_sse2(const void *page)
{
	const __m128i *p = page;
	const __m128i zero = _mm_setzero_si128();

	for (size_t i = 0; i < PAGE_SIZE / 16; i += 4) {
		__m128i a = _mm_or_si128(_mm_loadu_si128(p + i),
					 _mm_loadu_si128(p + i + 1));
		__m128i b = _mm_or_si128(_mm_loadu_si128(p + i + 2),
					 _mm_loadu_si128(p + i + 3));

		a = _mm_or_si128(a, b);
		if (_mm_movemask_epi8(_mm_cmpeq_epi8(a, zero)) != 0xffff)
			return false;
	}
	return true;
}

__attribute__((target("avx2"))) bool proto_page_is_zero_avx2(const void *page)
{
	const __m256i *p = page;

	for (size_t i = 0; i < PAGE_SIZE / 32; i += 2) {
		__m256i a = _mm256_or_si256(_mm256_loadu_si256(p + i),
					    _mm256_loadu_si256(p + i + 1));

		if (!_mm256_testz_si256(a, a))
			return false;
	}
	return true;
}

bool proto_avx2_ok(void)
{
	return __builtin_cpu_supports("avx2");
}

bool proto_page_is_zero(const void *page)
{
	if (proto_avx2_ok())
		return proto_page_is_zero_avx2(page);
	return proto_page_is_zero_sse2(page);
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
	       gpa - r->gpa == (uint64_t)r->npages * PAGE_SIZE && gpa > r->gpa;
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
	if (page)
		b->page[b->nr_data++] = page;
	b->nr_pages++;
	return 0;
}

/* ---- encoding ------------------------------------------------------------ */

size_t proto_batch_max_frame(void)
{
	return PROTO_HDR_SIZE + PAGES_FIXED + PROTO_MAX_BATCH * RUN_SIZE +
	       ZSTD_compressBound(BATCH_BYTES);
}

/* One page into the zstd stream (the last ends the frame): false when
 * zstd fails or out fills up before it is done. */
static bool pages_compress_page(ZSTD_CCtx *cc, ZSTD_outBuffer *out,
				const uint8_t *page, bool last)
{
	ZSTD_inBuffer in = {page, PAGE_SIZE, 0};
	ZSTD_EndDirective e = last ? ZSTD_e_end : ZSTD_e_continue;

	for (;;) {
		size_t r = ZSTD_compressStream2(cc, out, &in, e);

		if (ZSTD_isError(r))
			return false;
		if (last ? r == 0 : in.pos == in.size)
			return true;
		if (out->pos == out->size)
			return false;
	}
}

/*
 * Compress the batch's data pages, where they are, into dst when the
 * result is smaller than raw_len; returns the compressed length, 0 to send
 * raw, or -ENOMEM.
 */
static long pages_compress(uint8_t *dst, size_t room,
			   const struct proto_batch *b, size_t raw_len,
			   int level)
{
	ZSTD_CCtx *cc = pages_cctx();
	ZSTD_outBuffer out = {dst, room, 0};

	if (!cc)
		return -ENOMEM;
	if (out.size > raw_len - 1)
		out.size = raw_len - 1; /* anything larger is not worth it */
	ZSTD_CCtx_reset(cc, ZSTD_reset_session_and_parameters);
	if (ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel,
						level)) ||
	    ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(cc, raw_len)))
		return 0;
	for (int i = 0; i < b->nr_data; i++)
		if (!pages_compress_page(cc, &out, b->page[i],
					 i + 1 == b->nr_data))
			return 0;
	return (long)out.pos;
}

bool proto_pages_zstd_pays(const struct proto_batch *b, int level)
{
	uint8_t out[ZSTD_COMPRESSBOUND(PAGE_SIZE)];
	size_t raw = 0, packed = 0;
	ZSTD_CCtx *cc;

	if (!b->nr_data || !(cc = pages_cctx()))
		return false;
	for (int k = 0; k < PROTO_ZSTD_SAMPLE; k++) {
		int i = (int)((long)b->nr_data * k / PROTO_ZSTD_SAMPLE);
		size_t n = ZSTD_compressCCtx(cc, out, sizeof(out), b->page[i],
					     PAGE_SIZE, level);

		if (ZSTD_isError(n))
			return false;
		raw += PAGE_SIZE;
		packed += n;
		if (i + 1 >= b->nr_data)
			break;
	}
	return packed + raw / 8 < raw;
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

/* The fixed fields and the runs at q. */
static void pages_put_desc(uint8_t *q, const struct proto_batch *b,
			   uint16_t flags, size_t raw_len, size_t stored)
{
	q = proto_put16(q, (uint16_t)b->nr_runs);
	q = proto_put16(q, flags);
	q = proto_put32(q, (uint32_t)raw_len);
	q = proto_put32(q, (uint32_t)stored);
	for (int i = 0; i < b->nr_runs; i++) {
		q = proto_put64(q, b->runs[i].gpa);
		q = proto_put32(q, b->runs[i].npages);
		q = proto_put32(q, b->runs[i].flags);
	}
}

size_t proto_pages_crc_len(const uint8_t *p, size_t len)
{
	if (len < PAGES_FIXED || !(get_le16(p + 2) & PROTO_PAGES_LIVE))
		return len;
	return PAGES_FIXED + (size_t)get_le16(p) * RUN_SIZE;
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
					b, raw_len, zstd_level);
		if (stored < 0)
			return (int)stored;
	}
	if (stored > 0) {
		flags = PROTO_PAGES_ZSTD;
	} else {
		for (int i = 0; i < b->nr_data; i++)
			memcpy(q + head + (size_t)i * PAGE_SIZE, b->page[i],
			       PAGE_SIZE);
		stored = (long)raw_len;
	}
	pages_put_desc(q, b, flags, raw_len, (size_t)stored);
	proto_frame_seal(buf, PROTO_PAGES, (uint32_t)(head + stored));
	return PROTO_HDR_SIZE + (int)(head + stored);
}

int proto_pages_encode_head(uint8_t *buf, size_t cap,
			    const struct proto_batch *b, bool live,
			    struct iovec *iov, int *niov)
{
	size_t raw_len = (size_t)b->nr_data * PAGE_SIZE;
	size_t head = PAGES_FIXED + (size_t)b->nr_runs * RUN_SIZE;
	int n = 0;

	if (!pages_batch_ok(b))
		return -EINVAL;
	if (head + raw_len > PROTO_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (cap < PROTO_HDR_SIZE + head)
		return -ENOSPC;
	for (int i = 0; i < b->nr_data; i++) {
		const uint8_t *pg = b->page[i];

		if (n &&
		    (const uint8_t *)iov[n - 1].iov_base + iov[n - 1].iov_len ==
			    pg) {
			iov[n - 1].iov_len += PAGE_SIZE;
			continue;
		}
		iov[n].iov_base = (void *)pg;
		iov[n++].iov_len = PAGE_SIZE;
	}
	pages_put_desc(buf + PROTO_HDR_SIZE, b, live ? PROTO_PAGES_LIVE : 0,
		       raw_len, raw_len);
	proto_frame_seal_iov(buf, PROTO_PAGES, (uint32_t)(head + raw_len), head,
			     iov, n);
	*niov = n;
	return PROTO_HDR_SIZE + (int)head;
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
	if (ph->flags & ~(PROTO_PAGES_ZSTD | PROTO_PAGES_LIVE))
		return proto_cur_fail(c, "unknown flags 0x%x", ph->flags);
	if ((ph->flags & PROTO_PAGES_ZSTD) && (ph->flags & PROTO_PAGES_LIVE))
		return proto_cur_fail(c, "zstd data cannot be live");
	if (ph->nr_runs < 1 || ph->nr_runs > PROTO_MAX_BATCH)
		return proto_cur_fail(c, "nr_runs %u not in 1..%d", ph->nr_runs,
				      PROTO_MAX_BATCH);
	if (ph->raw_len % PAGE_SIZE || ph->raw_len > BATCH_BYTES)
		return proto_cur_fail(c,
				      "raw length %u not a multiple of %llu "
				      "up to %zu",
				      ph->raw_len, PAGE_SIZE, BATCH_BYTES);
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

/* The decoded data pages are at raw (page[] too: the batch re-encodes). */
static void pages_set_raw(struct proto_batch *b, const uint8_t *raw)
{
	b->raw = raw;
	for (int i = 0; i < b->nr_data; i++)
		b->page[i] = raw + (size_t)i * PAGE_SIZE;
}

int proto_pages_decode(const uint8_t *p, size_t len, struct proto_batch *b,
		       char *err, size_t errlen)
{
	struct pages_hdr ph;
	struct proto_cur c;
	const uint8_t *src;
	int r;

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
	if (!(ph.flags & PROTO_PAGES_ZSTD)) {
		if (ph.stored_len != ph.raw_len) {
			proto_cur_fail(&c, "raw data %u bytes, raw length %u",
				       ph.stored_len, ph.raw_len);
			goto fail;
		}
		pages_set_raw(b, src); /* read in place: no copy */
		return 0;
	}
	r = pages_inflate(&c, src, ph.stored_len, ph.raw_len, b->data);
	if (r) {
		proto_batch_init(b);
		return r;
	}
	pages_set_raw(b, b->data);
	return 0;
fail:
	proto_batch_init(b);
	return -EPROTO;
}

int proto_pages_decode_head(const uint8_t *p, size_t have, size_t len,
			    struct proto_batch *b, size_t *head, char *err,
			    size_t errlen)
{
	struct pages_hdr ph;
	struct proto_cur c;
	size_t data;

	proto_batch_init(b);
	if (have > len)
		have = len;
	if (have < PAGES_FIXED || !(get_le16(p + 2) & PROTO_PAGES_LIVE) ||
	    (get_le16(p + 2) & PROTO_PAGES_ZSTD))
		return -ENOTSUP;
	proto_cur_init(&c, p, have, "PAGES", err, errlen);
	if (pages_get_hdr(&c, &ph) || pages_get_runs(&c, &ph, b))
		goto fail;
	*head = have - proto_cur_left(&c);
	data = len - *head;
	if (ph.stored_len != data || ph.raw_len != data) {
		proto_cur_fail(&c,
			       "stored length %u, raw length %u but %zu bytes "
			       "follow",
			       ph.stored_len, ph.raw_len, data);
		goto fail;
	}
	return 0;
fail:
	proto_batch_init(b);
	return -EPROTO;
}
