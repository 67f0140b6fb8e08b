/* SPDX-License-Identifier: MIT */
/*
 * src_verify.c - --verify on the source: after stop-copy a SHA-256 of each
 * RAM region goes with the state and the destination's must match before
 * READY; after post-copy the destination's order-free sum of what it holds
 * (ram.h) must equal the sum of the paused RAM here. Loop thread.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "migration/ram.h"
#include "migration/source.h"
#include "vmm/vm.h"

int src_send_verify(struct mig_source *s)
{
	uint8_t buf[PROTO_HDR_SIZE + 8 + PROTO_MAX_REGIONS * 48];
	int n = mig_ram_digest(&s->ss.vm->mem, s->digest, PROTO_MAX_REGIONS);

	if (n < 0)
		return n;
	s->nr_digest = n;
	return src_send_small(
		s, buf,
		proto_verify_encode(buf, sizeof(buf), s->digest, (uint32_t)n));
}

/* The destination's digests (stop-copy), or its sum (post-copy). */
int src_on_verify(struct mig_source *s, const uint8_t *p, size_t len, char *err,
		  size_t errlen)
{
	struct proto_digest d[PROTO_MAX_REGIONS];
	uint32_t nr;

	if (proto_verify_decode(p, len, d, PROTO_MAX_REGIONS, &nr, err, errlen))
		return -EPROTO;
	if (s->pc) {
		/* Post-copy: the destination's sum, compared at COMPLETE. */
		if (nr != 1 || s->remote_verified || !s->pc_end_sent) {
			snprintf(err, errlen, "VERIFY out of order");
			return -EPROTO;
		}
		s->digest[0] = d[0];
		s->remote_verified = true;
		return 0;
	}
	if ((int)nr != s->nr_digest) {
		snprintf(err, errlen,
			 "verify: destination hashed %u regions, source %d", nr,
			 s->nr_digest);
		return -EIO;
	}
	if (mig_ram_digests_differ(d, s->digest, nr, err, errlen))
		return -EIO;
	s->remote_verified = true;
	return 0;
}

/*
 * --verify after post-copy: the destination summed every page it holds
 * (mig_sum); sum the paused RAM here, which is what it should hold.
 */
int src_postcopy_verify(struct mig_source *s, char *err, size_t errlen)
{
	struct proto_digest mine;
	struct mig_sum sum;
	int r;

	if (!(s->ss.caps & PROTO_CAP_VERIFY))
		return 0;
	if (!s->remote_verified) {
		snprintf(err, errlen,
			 "verify: COMPLETE without the destination's digest");
		return -EPROTO;
	}
	r = mig_sum_init(&sum);
	if (!r)
		r = mig_sum_ram(&sum, &s->ss.vm->mem);
	mig_sum_digest(&sum, s->ss.vm->mem.size, &mine);
	mig_sum_free(&sum);
	if (r) {
		snprintf(err, errlen, "verify: hashing RAM: %s", strerror(-r));
		return r;
	}
	if (memcmp(mine.sha256, s->digest[0].sha256, 32)) {
		snprintf(err, errlen,
			 "verify: the destination's RAM differs from the "
			 "source's after post-copy");
		return -EIO;
	}
	return 0;
}
