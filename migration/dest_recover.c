/* SPDX-License-Identifier: MIT */
/*
 * dest_recover.c - post-copy recovery on the destination (dest.h): after a
 * break (dest.c moved the state to POSTCOPY_PAUSED) both connections close
 * and, once libuv has let go of them, the destination listens on its
 * address again; the first frame of a new connection must be the RESUME
 * of our migration, answered with the pages we lack (DISCARD runs) and
 * RESUME_ACK; anything else is refused and the wait goes on. Meanwhile the
 * VM runs and a vCPU touching a missing page waits. Event-loop thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/page.h"
#include "ept/ram_io.h"
#include "migration/dest.h"
#include "migration/tls.h"
#include "vmm/vm.h"

/* Pages resident here; the others never arrived (or are holes there too). */
static int dest_resident(struct mig_dest *d, struct bitmap *have)
{
	int r = bitmap_init(have, d->ss.vm->mem.nr_pages);

	if (!r)
		r = mem_resident(&d->ss.vm->mem, have);
	return r;
}

static uint64_t dest_missing_pages(struct mig_dest *d)
{
	struct bitmap have = {0};
	uint64_t n = 0;

	if (!dest_resident(d, &have))
		n = have.nbits - bitmap_count(&have);
	bitmap_free(&have);
	return n;
}

static void dest_relisten(struct mig_dest *d)
{
	char err[256];
	int r;

	if (d->pc_failed || d->complete_sent)
		return;
	memset(&d->ss.uch, 0, sizeof(d->ss.uch));
	/* recover_fd: the address of mig_dest_recover_listen, bound. */
	r = mig_channel_listen_fd(&d->ss.ch, d->ss.loop, d->spec, d->recover_fd,
				  d->ss.tcp_cc, &dest_channel_ops, d, err,
				  sizeof(err));
	d->recover_fd = -1;
	mig_channel_use_tls(&d->ss.ch, d->ss.tls, NULL);
	if (r)
		snprintf(d->ss.st.error, sizeof(d->ss.st.error),
			 "post-copy paused, and cannot listen for the resume: "
			 "%s",
			 err);
}

static void dest_reopen_closed(struct mig_channel *ch)
{
	struct mig_dest *d = ch->opaque;

	if (--d->pc_closing == 0)
		dest_relisten(d);
}

/*
 * Count ch in pc_closing until libuv has let go of every one of its
 * handles (mig_channel_close's on_closed), closing it if nobody has yet.
 */
static void dest_reopen_close(struct mig_dest *d, struct mig_channel *ch)
{
	if (mig_session_channel_idle(ch))
		return;
	d->pc_closing++;
	if (ch->closed || ch->flush_close)
		ch->on_closed = dest_reopen_closed; /* closing already */
	else
		mig_channel_close_after_flush(ch, dest_reopen_closed);
}

/*
 * Close both connections, then listen again for a RESUME. Called again
 * while they close (another stray, --recover --listen), it counts anew
 * what is still closing: each channel calls on_closed once, so relisten
 * runs once, after the last handle's close callback.
 */
void dest_recover_reopen(struct mig_dest *d)
{
	dest_urgent_stop(d);
	d->pc_closing = 1; /* held while both are looked at */
	dest_reopen_close(d, &d->ss.ch);
	dest_reopen_close(d, &d->ss.uch);
	dest_reopen_closed(&d->ss.ch);
}

/*
 * Listen on spec instead of our address (QEMU's migrate-recover): bound
 * first, so that a failure leaves the old listener as it was; the old
 * one closes after, and the channel takes the new socket once it has.
 */
int mig_dest_recover_listen(struct mig_dest *d, const char *spec, char *err,
			    size_t errlen)
{
	struct tls_ctx *none = NULL;
	int fd, r = 0;

	if (d->ss.st.state != MIG_POSTCOPY_PAUSED || d->pc_failed) {
		snprintf(err, errlen,
			 "the incoming migration is %s: --recover --listen "
			 "only while post-copy is paused",
			 mig_state_name(d->ss.st.state));
		return -EBUSY;
	}
	if (strlen(spec) >= sizeof(d->spec)) {
		snprintf(err, errlen, "'%.40s...': address too long", spec);
		return -EINVAL;
	}
	if (!d->ss.tls) /* plaintext: only where it was allowed to start */
		r = mig_tls_open(&none, spec, NULL, TLS_SERVER, NULL,
				 d->insecure, err, errlen);
	if (!r)
		r = mig_channel_bind(spec, &fd, err, errlen);
	if (r)
		return r;
	if (d->recover_fd >= 0)
		close(d->recover_fd); /* an earlier one, not listened on yet */
	d->recover_fd = fd;
	snprintf(d->spec, sizeof(d->spec), "%s", spec);
	fprintf(stderr,
		"vmm: incoming migration: post-copy paused, listening on %s "
		"for the resume\n",
		spec);
	/* Closing already: dest_relisten takes recover_fd when it is done. */
	if (!d->pc_closing)
		dest_recover_reopen(d);
	return 0;
}

/* The state is POSTCOPY_PAUSED now: forget both connections, wait anew. */
void dest_recover_break(struct mig_dest *d)
{
	d->ss.st.postcopy_breaks++;
	d->urgent_ok = d->urgent_seen = false;
	d->pc_end = false;
	dest_recover_reopen(d);
}

/* The pages we lack, as DISCARD runs, then RESUME_ACK. */
static int dest_send_lacking(struct mig_dest *d, char *err, size_t errlen)
{
	struct proto_run *runs = malloc(PROTO_MAX_DISCARD_RUNS * sizeof(*runs));
	uint8_t *f = malloc(PROTO_DISCARD_MAX_FRAME);
	uint8_t buf[PROTO_POSTCOPY_FRAME];
	struct bitmap have = {0};
	uint64_t pos = 0, total = 0;
	uint32_t nr;
	int r = runs && f ? dest_resident(d, &have) : -ENOMEM;

	if (r)
		snprintf(err, errlen, "%s", strerror(-r));
	while (!r && (nr = mig_ram_runs(&d->ss.vm->mem, &have, false, &pos,
					runs, PROTO_MAX_DISCARD_RUNS))) {
		r = dest_reply(d, f,
			       proto_discard_encode(f, PROTO_DISCARD_MAX_FRAME,
						    runs, nr),
			       err, errlen);
		total += nr;
	}
	if (!r)
		r = dest_reply(d, buf,
			       proto_resume_ack_encode(buf, sizeof(buf),
						       d->ss.cookie, total),
			       err, errlen);
	bitmap_free(&have);
	free(runs);
	free(f);
	return r;
}

/* RESUME: the first frame of a new main connection while paused. */
enum dest_resume dest_recover_resume(struct mig_dest *d,
				     const struct proto_hdr *h,
				     const uint8_t *p, char *err, size_t errlen)
{
	uint8_t buf[PROTO_HDR_SIZE + 64], proof[PROTO_PROOF_LEN];
	uint64_t cookie = 0;
	char why[256];
	bool has = false;
	int r;

	if (!mig_state_frame_ok(MIG_SIDE_DEST, d->ss.st.state, h->type) ||
	    proto_cookie_proof_decode(p, h->len, PROTO_RESUME, &cookie, proof,
				      &has, why, sizeof(why)) ||
	    cookie != d->ss.cookie ||
	    (d->ss.tls &&
	     (!has || !mig_session_tls_check(&d->ss, &d->ss.ch, MIG_TLS_RECOVER,
					     proof)))) {
		/* Not our source: refuse it, keep waiting for ours. */
		dest_reply(d, buf,
			   proto_error_encode(buf, sizeof(buf), EPROTO,
					      "not the paused post-copy "
					      "migration"),
			   why, sizeof(why));
		dest_recover_reopen(d);
		return DEST_RESUME_REFUSE;
	}
	r = mig_channel_listen_next(&d->ss.ch, &d->ss.uch, &dest_urgent_ops, d);
	if (r)
		snprintf(err, errlen, "%s", strerror(-r));
	else
		r = dest_send_lacking(d, err, errlen);
	if (r)
		return DEST_RESUME_FAILED;
	d->ss.uch.idle_ok = true;
	return DEST_RESUME_OK;
}

/* What an abort loses, for the error line. */
void dest_recover_abort_message(struct mig_dest *d)
{
	uint64_t missing;

	dest_fault_stats(d);
	missing = dest_missing_pages(d);
	snprintf(
		d->ss.st.error, sizeof(d->ss.st.error),
		"post-copy aborted by the user: %llu pages (%llu MiB) of guest "
		"RAM had not arrived (%llu faults waiting); the VM cannot run "
		"without them and stops",
		(unsigned long long)missing,
		(unsigned long long)(missing * PAGE_SIZE >> 20),
		(unsigned long long)d->ss.st.faults_waiting);
}
