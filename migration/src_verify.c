/* SPDX-License-Identifier: MIT */
/*
 * src_verify.c - --verify on the source. Every side sums SHA-256(gpa ||
 * page) over its non-zero pages (ram.h). In pre-copy the sum is kept page
 * by page as pages are sent (src_verify_sent), so the switch hashes only
 * the last dirty set: after STATE_END the sum goes in VERIFY, and the
 * destination's, kept as it placed each page, must match before READY.
 * After RUNNING the paused RAM here is summed whole (no downtime: the
 * guest runs over there) and must equal what was sent: a write the dirty
 * log missed would show here. After post-copy the destination's sum of
 * what it holds must equal the sum of the paused RAM here. Loop thread.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "migration/ram.h"
#include "migration/source.h"
#include "vmm/vm.h"

/* Pre-copy begins: a term per page, if --verify was agreed. */
int src_verify_begin(struct mig_source *s, char *err, size_t errlen)
{
	int r;

	if (!(s->ss.caps & PROTO_CAP_VERIFY) || s->sent.term)
		return 0;
	r = mig_pagesum_init(&s->sent, s->ss.vm->mem.nr_pages,
			     mig_sum_algo_of(s->ss.caps));
	if (r)
		snprintf(err, errlen, "verify: page digests: %s", strerror(-r));
	return r;
}

/* Page i (gpa) goes out as page (NULL: a zero page). */
void src_verify_sent(struct mig_source *s, uint64_t i, uint64_t gpa,
		     const void *page)
{
	int r;

	if (!s->sent.term)
		return;
	r = mig_pagesum_set(&s->sent, i, gpa, page);
	if (r && !s->sent_err)
		s->sent_err = r;
}

int src_send_verify(struct mig_source *s)
{
	uint8_t buf[PROTO_HDR_SIZE + 8 + 48];
	struct proto_digest mine;

	if (s->sent_err)
		return s->sent_err;
	if (!s->sent.term)
		return -EPROTO;
	mig_sum_digest(&s->sent.sum, s->ss.vm->mem.size, &mine);
	return src_send_small(s, buf,
			      proto_verify_encode(buf, sizeof(buf), &mine, 1));
}

/* The destination's sum: of what it placed (stop-copy), or holds (post). */
int src_on_verify(struct mig_source *s, const uint8_t *p, size_t len, char *err,
		  size_t errlen)
{
	struct proto_digest d[PROTO_MAX_REGIONS], mine;
	uint32_t nr;

	if (proto_verify_decode(p, len, d, PROTO_MAX_REGIONS, &nr, err, errlen))
		return -EPROTO;
	if (nr != 1 || s->remote_verified || (s->pc && !s->pc_end_sent)) {
		snprintf(err, errlen, "VERIFY out of order");
		return -EPROTO;
	}
	s->digest = d[0];
	s->remote_verified = true;
	if (s->pc)
		return 0; /* compared at COMPLETE */
	mig_sum_digest(&s->sent.sum, s->ss.vm->mem.size, &mine);
	if (memcmp(mine.sha256, d[0].sha256, 32)) {
		snprintf(err, errlen,
			 "verify: the destination's RAM differs from what the "
			 "source sent (sums of page digests differ)");
		return -EIO;
	}
	return 0;
}

/* The sum of the paused RAM here against theirs (or what was sent). */
static int src_sum_paused(struct mig_source *s, const struct proto_digest *want,
			  const char *what, char *err, size_t errlen)
{
	struct proto_digest mine;
	struct mig_sum sum;
	int r;

	r = mig_sum_init(&sum, mig_sum_algo_of(s->ss.caps));
	if (!r)
		r = mig_sum_ram(&sum, &s->ss.vm->mem);
	mig_sum_digest(&sum, s->ss.vm->mem.size, &mine);
	mig_sum_free(&sum);
	if (r) {
		snprintf(err, errlen, "verify: hashing RAM: %s", strerror(-r));
		return r;
	}
	if (memcmp(mine.sha256, want->sha256, 32)) {
		snprintf(err, errlen, "verify: %s", what);
		return -EIO;
	}
	return 0;
}

/*
 * Pre-copy, RUNNING: the paused RAM here must be what was sent (the
 * destination has confirmed it placed exactly that).
 */
int src_verify_audit(struct mig_source *s, char *err, size_t errlen)
{
	struct proto_digest sent;
	uint64_t t0 = clock_now_ns();
	int r;

	if (!(s->ss.caps & PROTO_CAP_VERIFY) || s->pc)
		return 0;
	mig_sum_digest(&s->sent.sum, s->ss.vm->mem.size, &sent);
	r = src_sum_paused(s, &sent,
			   "the source's RAM at the pause differs from what "
			   "was sent (a write the dirty log missed)",
			   err, errlen);
	s->ss.st.verify_audit_ms = (clock_now_ns() - t0) / 1000000;
	return r;
}

/*
 * --verify after post-copy: the destination summed every page it holds
 * (mig_sum); sum the paused RAM here, which is what it should hold.
 */
int src_postcopy_verify(struct mig_source *s, char *err, size_t errlen)
{
	if (!(s->ss.caps & PROTO_CAP_VERIFY))
		return 0;
	if (!s->remote_verified) {
		snprintf(err, errlen,
			 "verify: COMPLETE without the destination's digest");
		return -EPROTO;
	}
	return src_sum_paused(s, &s->digest,
			      "the destination's RAM differs from the "
			      "source's after post-copy",
			      err, errlen);
}
