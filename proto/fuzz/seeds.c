/* SPDX-License-Identifier: MIT */
/*
 * seeds.c - the starting corpus of the fuzzer: one valid frame of every
 * message (HELLO small and full, HELLO_ACK, PAGES raw, zstd and zero-only,
 * STATE with records, the empty ones, ERROR, VERIFY, and post-copy's
 * DISCARD, POSTCOPY, URGENT_HELLO, PAGE_REQ, RESUME, RESUME_ACK), each
 * written as a file, so that the fuzzer starts from frames that pass the
 * header, the CRC (which it patches anyway) and the decoders' first
 * checks.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/page.h"
#include "proto/fuzz/fuzz.h"
#include "proto/proto.h"

static int seed_write(const char *dir, const char *name, const uint8_t *buf,
		      int len)
{
	char path[4096];
	FILE *f;

	if (len < 0)
		return len;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f)
		return -errno;
	if (fwrite(buf, 1, len, f) != (size_t)len) {
		fclose(f);
		return -EIO;
	}
	return fclose(f) ? -errno : 0;
}

static void seed_hello_fill(struct proto_hello *h, int n)
{
	memset(h, 0, sizeof(*h));
	h->version = PROTO_VERSION;
	h->caps = PROTO_CAP_ALL;
	h->nr_channels = 2;
	h->tsc_khz = 2800000;
	h->page_size = PAGE_SIZE;
	h->mem_size = 1ULL << 30;
	h->nr_regions = n < PROTO_MAX_REGIONS ? n : PROTO_MAX_REGIONS;
	for (uint32_t i = 0; i < h->nr_regions; i++) {
		h->regions[i].gpa = (uint64_t)i << 32;
		h->regions[i].size = 1ULL << 28;
	}
	h->nr_vcpus = 2;
	h->nr_cpuid = n;
	for (uint32_t i = 0; i < h->nr_cpuid; i++) {
		h->cpuid[i].function = i;
		h->cpuid[i].eax = 0x10000 * i + 1;
	}
	h->nr_devices = n < PROTO_MAX_DEVICES ? n : PROTO_MAX_DEVICES;
	for (uint32_t i = 0; i < h->nr_devices; i++) {
		snprintf(h->devices[i].name, PROTO_NAME_MAX, "dev%u", i);
		h->devices[i].version = 1;
	}
}

static int seed_hellos(const char *dir, uint8_t *buf, size_t cap)
{
	static struct proto_hello h;
	int ret;

	seed_hello_fill(&h, 2);
	ret = seed_write(dir, "hello-small", buf,
			 proto_hello_encode(buf, cap, &h));
	seed_hello_fill(&h, 40);
	if (!ret)
		ret = seed_write(dir, "hello-big", buf,
				 proto_hello_encode(buf, cap, &h));
	if (!ret)
		ret = seed_write(
			dir, "hello-ack", buf,
			proto_hello_ack_encode(buf, cap, PROTO_CAP_ZSTD));
	return ret;
}

/* The batch as a live frame: its head, then its pages gathered after it. */
static int seed_pages_live(const struct proto_batch *b, uint8_t *buf,
			   size_t cap)
{
	struct iovec iov[PROTO_MAX_BATCH];
	int niov, n = proto_pages_encode_head(buf, cap, b, true, iov, &niov);

	for (int i = 0; n > 0 && i < niov; i++) {
		if ((size_t)n + iov[i].iov_len > cap)
			return -ENOSPC;
		memcpy(buf + n, iov[i].iov_base, iov[i].iov_len);
		n += (int)iov[i].iov_len;
	}
	return n;
}

static int seed_pages(const char *dir, uint8_t *buf, size_t cap)
{
	static struct proto_batch b;
	static uint8_t pages[6][PAGE_SIZE]; /* the batch keeps their addresses */
	int ret;

	proto_batch_init(&b);
	for (int i = 0; i < 6; i++) {
		memset(pages[i], 'a' + i, PAGE_SIZE);
		proto_batch_add(&b, 0x100000 + i * 0x1000ULL,
				i == 2 || i == 3 ? NULL : pages[i]);
	}
	proto_batch_add(&b, 0x900000, pages[5]);
	ret = seed_write(dir, "pages-zstd", buf,
			 proto_pages_encode(buf, cap, &b, 1));
	if (!ret) {
		proto_batch_init(&b);
		memset(pages[0], 0x42, PAGE_SIZE);
		proto_batch_add(&b, 0x2000, pages[0]);
		proto_batch_add(&b, 0x4000, NULL);
		ret = seed_write(dir, "pages-raw", buf,
				 proto_pages_encode(buf, cap, &b, 0));
	}
	if (!ret)
		ret = seed_write(dir, "pages-live", buf,
				 seed_pages_live(&b, buf, cap));
	if (!ret) {
		proto_batch_init(&b);
		for (int i = 0; i < 16; i++)
			proto_batch_add(&b, i * 0x1000ULL, NULL);
		ret = seed_write(dir, "pages-zero", buf,
				 proto_pages_encode(buf, cap, &b, 1));
	}
	return ret;
}

static int seed_state(const char *dir, uint8_t *buf, size_t cap)
{
	struct proto_rec_writer w;
	struct proto_state s = {PROTO_STATE_VCPU, 1, 1, 0, NULL};
	uint8_t blob[256];
	uint64_t regs[4] = {1, 2, 3, 4};

	proto_rec_writer_init(&w, blob, sizeof(blob));
	proto_rec_put(&w, 1, regs, sizeof(regs));
	proto_rec_put(&w, 2, "lapic", 5);
	proto_rec_put(&w, 3, NULL, 0);
	s.blob = blob;
	s.len = (uint32_t)w.len;
	return seed_write(dir, "state-vcpu", buf,
			  proto_state_encode(buf, cap, &s));
}

static int seed_small(const char *dir, uint8_t *buf, size_t cap)
{
	static const enum proto_type empty[] = {
		PROTO_RAM_END,	    PROTO_STATE_END, PROTO_READY,
		PROTO_GO,	    PROTO_RUNNING,   PROTO_SYNC,
		PROTO_POSTCOPY_END, PROTO_COMPLETE};
	struct proto_digest d[2] = {{0, 1 << 20, {1, 2, 3}},
				    {1ULL << 32, 1 << 20, {4, 5, 6}}};
	char name[32];
	int ret = 0;

	for (size_t i = 0; !ret && i < sizeof(empty) / sizeof(empty[0]); i++) {
		snprintf(name, sizeof(name), "empty-%s",
			 proto_type_name(empty[i]));
		ret = seed_write(dir, name, buf,
				 proto_empty_encode(buf, cap, empty[i]));
	}
	if (!ret)
		ret = seed_write(dir, "error", buf,
				 proto_error_encode(buf, cap, EPROTO,
						    "RAM size differs"));
	if (!ret)
		ret = seed_write(dir, "verify", buf,
				 proto_verify_encode(buf, cap, d, 2));
	return ret;
}

static int seed_postcopy(const char *dir, uint8_t *buf, size_t cap)
{
	static const struct proto_run runs[] = {
		{0x0, 1, 0},
		{0x100000, 256, 0},
		{0x3000, 2, 0},
		{0xfffffffffffff000ULL, 1, 0},
	};
	static const uint64_t gpa[] = {0x1000, 0x7ffff000, 0x1000,
				       0xfffffffffffff000ULL};
	const uint64_t cookie = 0x5eed5eed5eed5eedULL;
	int ret;

	ret = seed_write(dir, "discard", buf,
			 proto_discard_encode(buf, cap, runs,
					      sizeof(runs) / sizeof(runs[0])));
	if (!ret)
		ret = seed_write(dir, "discard-one", buf,
				 proto_discard_encode(buf, cap, runs + 1, 1));
	if (!ret)
		ret = seed_write(dir, "postcopy", buf,
				 proto_postcopy_encode(buf, cap, cookie, 5));
	if (!ret)
		ret = seed_write(dir, "urgent-hello", buf,
				 proto_urgent_hello_encode(buf, cap, cookie));
	if (!ret)
		ret = seed_write(
			dir, "page-req", buf,
			proto_page_req_encode(buf, cap, gpa,
					      sizeof(gpa) / sizeof(gpa[0])));
	if (!ret)
		ret = seed_write(dir, "page-req-one", buf,
				 proto_page_req_encode(buf, cap, gpa, 1));
	if (!ret)
		ret = seed_write(dir, "resume", buf,
				 proto_resume_encode(buf, cap, cookie));
	if (!ret)
		ret = seed_write(dir, "resume-ack", buf,
				 proto_resume_ack_encode(buf, cap, cookie, 2));
	return ret;
}

int fuzz_write_seeds(const char *dir)
{
	size_t cap = proto_batch_max_frame();
	uint8_t *buf = malloc(cap);
	int ret;

	if (!buf)
		return -ENOMEM;
	ret = seed_hellos(dir, buf, cap);
	if (!ret)
		ret = seed_pages(dir, buf, cap);
	if (!ret)
		ret = seed_state(dir, buf, cap);
	if (!ret)
		ret = seed_small(dir, buf, cap);
	if (!ret)
		ret = seed_postcopy(dir, buf, cap);
	free(buf);
	return ret;
}
