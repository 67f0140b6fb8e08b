/* SPDX-License-Identifier: MIT */
/*
 * dest_recv.c - the destination receives (dest.h): the source's HELLO
 * checked against this VM, pre-copy pages into guest RAM (zero pages stay
 * holes), the state sections kept until STATE_END, the discard set and the
 * POSTCOPY frame; and the replies every phase queues. Event-loop thread;
 * each function returns 0 or -errno with one line in err, and dest.c acts
 * on it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/page.h"
#include "ept/ram_io.h"
#include "migration/dest.h"
#include "migration/hello.h"
#include "migration/sections.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"
#include "vmm/vmstate.h"

int dest_reply_on(struct mig_channel *ch, const uint8_t *buf, int n, char *err,
		  size_t errlen)
{
	int r = mig_channel_send_copy(ch, buf, n);

	/* A failed send reports itself through on_error. */
	if (n > 0 && r != -ENOMEM)
		return 0;
	snprintf(err, errlen, "encoding a reply failed");
	return n <= 0 ? -EINVAL : -ENOMEM;
}

int dest_reply(struct mig_dest *d, const uint8_t *buf, int n, char *err,
	       size_t errlen)
{
	return dest_reply_on(&d->ss.ch, buf, n, err, errlen);
}

int dest_reply_empty(struct mig_dest *d, enum proto_type t, char *err,
		     size_t errlen)
{
	uint8_t buf[PROTO_HDR_SIZE];

	return dest_reply(d, buf, proto_empty_encode(buf, sizeof(buf), t), err,
			  errlen);
}

/* ---- handshake ----------------------------------------------------------- */

/* Post-copy agreed: the listener takes one more (urgent) connection. */
static int dest_urgent_listen(struct mig_dest *d, char *err, size_t errlen)
{
	int r;

	if (!(d->ss.caps & PROTO_CAP_POSTCOPY)) {
		if (d->ss.xc.n < 2) /* else the last channel closes it */
			mig_channel_stop_listening(&d->ss.ch);
		return 0;
	}
	r = mig_channel_listen_next(&d->ss.ch, &d->ss.uch, &dest_urgent_ops, d);
	if (r) {
		snprintf(err, errlen, "listening for the urgent connection: %s",
			 r == -EINVAL ? "the listener is closed"
				      : uv_strerror(r));
		return r;
	}
	d->ss.uch.idle_ok = true; /* requests come when vCPUs fault */
	return 0;
}

/*
 * Post-copy needs userfaultfd here (vm.unprivileged_userfaultfd, or the
 * capability): try to open one now, before accepting post-copy, so that
 * the source falls back to pre-copy instead of failing at the switch.
 * Test knob: VMM_TEST_NO_UFFD=1 acts as if the kernel refused
 * (docs/migration.md). False with why set when it cannot.
 */
static bool dest_uffd_usable(struct mig_dest *d, char *why, size_t whylen)
{
	const char *knob = getenv("VMM_TEST_NO_UFFD");
	struct fault_service *fs;
	int r;

	if (knob && !strcmp(knob, "1")) {
		snprintf(why, whylen,
			 "userfaultfd: refused (VMM_TEST_NO_UFFD=1)");
		return false;
	}
	if (d->ss.vm->cfg.mem_prealloc) { /* no page would be missing */
		snprintf(why, whylen, "--mem-prealloc populated guest RAM");
		return false;
	}
	fs = calloc(1, sizeof(*fs));
	if (!fs) {
		snprintf(why, whylen, "userfaultfd: out of memory");
		return false;
	}
	r = fault_init(fs, &d->ss.vm->mem, why, whylen);
	fault_stop(fs);
	free(fs);
	return r == 0;
}

/* What was agreed: post-copy only where userfaultfd works here. */
static void dest_caps_agree(struct mig_dest *d, uint64_t caps)
{
	char why[200];

	d->ss.caps = caps;
	if (!(caps & PROTO_CAP_POSTCOPY) ||
	    dest_uffd_usable(d, why, sizeof(why)))
		return;
	d->ss.caps &= ~PROTO_CAP_POSTCOPY;
	snprintf(d->ss.st.notice, sizeof(d->ss.st.notice),
		 "post-copy refused: %s; the source migrates in pre-copy", why);
	fprintf(stderr, "vmm: incoming migration: %s\n", d->ss.st.notice);
}

/*
 * The guest's TSC ticks here at the rate it had, from the start: where KVM
 * cannot scale it, the migration ends before a page moves (restore would
 * refuse it after every page had).
 */
static int dest_hello_tsc(struct mig_dest *d, const struct proto_hello *remote,
			  char *why, size_t whylen)
{
	char e[200];
	int r;

	if (!(remote->caps & PROTO_CAP_TSC))
		return 0;
	r = vm_tsc_khz_set(d->ss.vm, remote->tsc_khz, e, sizeof(e));
	if (!r)
		return 0;
	snprintf(why, whylen,
		 "the guest's TSC ticks at %u kHz, and this host cannot make "
		 "it (%s)",
		 remote->tsc_khz, e);
	return r;
}

/* The source's HELLO against ours: the capabilities both have, or why not. */
static int dest_hello_check(struct mig_dest *d, const uint8_t *p, size_t len,
			    char *err, size_t errlen)
{
	struct proto_hello *remote = malloc(sizeof(*remote));
	struct proto_hello *local = malloc(sizeof(*local));
	char why[400];
	int r = -ENOMEM;

	if (remote && local) {
		mig_hello_local(d->ss.vm,
				PROTO_CAP_ZSTD | PROTO_CAP_VERIFY |
					PROTO_CAP_VERIFY_XXH3 |
					PROTO_CAP_POSTCOPY |
					PROTO_CAP_CHANNELS | PROTO_CAP_TSC,
				local);
		r = proto_hello_decode(p, len, remote, why, sizeof(why));
		if (!r)
			r = proto_hello_compare(local, remote, why,
						sizeof(why));
		if (!r)
			r = dest_hello_tsc(d, remote, why, sizeof(why));
	} else {
		snprintf(why, sizeof(why), "out of memory");
	}
	if (!r) {
		dest_caps_agree(d, remote->caps & local->caps);
		d->ss.xc.n = remote->nr_channels;
	} else {
		snprintf(err, errlen, "incompatible VM: %s", why);
	}
	free(remote);
	free(local);
	return r;
}

int dest_recv_hello(struct mig_dest *d, const uint8_t *p, size_t len, char *err,
		    size_t errlen)
{
	uint8_t buf[PROTO_HELLO_ACK_MAX_FRAME];
	int r;

	if (d->hello_done) {
		snprintf(err, errlen, "HELLO twice");
		return -EPROTO;
	}
	r = dest_hello_check(d, p, len, err, errlen);
	if (!r)
		r = dest_verify_begin(d, err, errlen);
	if (!r) /* the extra channels' turn comes before the urgent one's */
		r = dest_chans_listen(d, err, errlen);
	if (!r)
		r = dest_urgent_listen(d, err, errlen);
	/*
	 * The vCPU threads, parked until GO: created now, not in the
	 * downtime (60-70 us here, their stacks' first writes included).
	 */
	if (!r)
		r = vm_stage(d->ss.vm, err, errlen);
	if (r)
		return r;
	d->hello_done = true;
	return dest_reply(d, buf,
			  proto_hello_ack_chan_encode(buf, sizeof(buf),
						      d->ss.caps, d->ss.xc.n,
						      d->ss.xc.token),
			  err, errlen);
}

/* ---- pages --------------------------------------------------------------- */

/* --verify agreed: a term per page, and the test knob. */
int dest_verify_begin(struct mig_dest *d, char *err, size_t errlen)
{
	const char *knob = getenv("VMM_TEST_CORRUPT_GPA");
	int r;

	d->corrupt_gpa = knob ? strtoull(knob, NULL, 0) : ~0ULL;
	if (!(d->ss.caps & PROTO_CAP_VERIFY))
		return 0;
	d->ss.st.verify = true;
	d->ss.st.verify_xxh3 = mig_sum_algo_of(d->ss.caps) == MIG_SUM_XXH3;
	r = mig_pagesum_init(&d->placed, d->ss.vm->mem.nr_pages,
			     mig_sum_algo_of(d->ss.caps));
	if (r)
		snprintf(err, errlen, "verify: page digests: %s", strerror(-r));
	return r;
}

/*
 * npages at gpa now hold what guest RAM reads (zero: they are holes). Any
 * thread placing pages (the extra channels' too: under their lock).
 */
int dest_verify_placed(struct mig_dest *d, uint64_t gpa, uint32_t npages,
		       bool zero, char *err, size_t errlen)
{
	const struct guest_mem *m = &d->ss.vm->mem;
	bool lock = d->placed.term && d->ss.xc.x;
	int r = 0;

	if (lock)
		pthread_mutex_lock(&d->ss.xc.sum_lock);
	for (uint32_t k = 0; d->placed.term && !r && k < npages; k++) {
		uint64_t g = gpa + (uint64_t)k * PAGE_SIZE, i;
		uint8_t *hva = mem_gpa_to_hva(m, g, PAGE_SIZE);

		r = mem_gpa_to_page(m, g, &i);
		if (!r && g == d->corrupt_gpa && !zero)
			hva[0] ^= 0x5a;
		if (!r)
			r = mig_pagesum_set(&d->placed, i, g,
					    zero ? NULL : hva);
	}
	if (lock)
		pthread_mutex_unlock(&d->ss.xc.sum_lock);
	if (r)
		snprintf(err, errlen, "verify: hashing page 0x%llx: %s",
			 (unsigned long long)gpa, strerror(-r));
	return r;
}

static int dest_place_zero(struct mig_dest *d, const struct proto_run *run,
			   char *err, size_t errlen)
{
	for (uint32_t i = 0; i < run->npages; i++) {
		uint64_t gpa = run->gpa + i * PAGE_SIZE;
		int r = mem_punch_page(&d->ss.vm->mem, gpa);

		if (r) {
			snprintf(err, errlen, "zeroing page 0x%llx: %s",
				 (unsigned long long)gpa,
				 r == -EFAULT ? "outside guest RAM"
					      : strerror(-r));
			return r;
		}
	}
	d->ss.st.memory_constant += run->npages;
	return dest_verify_placed(d, run->gpa, run->npages, true, err, errlen);
}

/* One run of a PAGES batch into guest RAM; *data advances past its pages. */
static int dest_place_run(struct mig_dest *d, const struct proto_run *run,
			  const uint8_t **data, char *err, size_t errlen)
{
	uint64_t len = (uint64_t)run->npages * PAGE_SIZE;
	int r;

	d->ss.st.memory_processed += len;
	if (run->flags & PROTO_RUN_ZERO)
		return dest_place_zero(d, run, err, errlen);
	r = mem_pwrite(&d->ss.vm->mem, run->gpa, *data, len);
	if (r) {
		snprintf(err, errlen, "writing %u pages at 0x%llx: %s",
			 run->npages, (unsigned long long)run->gpa,
			 r == -EFAULT ? "outside guest RAM" : strerror(-r));
		return r;
	}
	*data += len;
	d->ss.st.memory_normal += run->npages;
	d->ss.st.memory_normal_bytes += len;
	return dest_verify_placed(d, run->gpa, run->npages, false, err, errlen);
}

/* PAGES in pre-copy or stop-copy (post-copy's are dest_pc_pages). */
int dest_recv_pages(struct mig_dest *d, const uint8_t *p, size_t len, char *err,
		    size_t errlen)
{
	const uint8_t *data;
	int r;

	if (d->ram_end) {
		snprintf(err, errlen, "PAGES after RAM_END");
		return -EPROTO;
	}
	r = proto_pages_decode(p, len, d->batch, err, errlen);
	data = d->batch->raw;
	for (int i = 0; !r && i < d->batch->nr_runs; i++)
		r = dest_place_run(d, &d->batch->runs[i], &data, err, errlen);
	return r;
}

/* ---- state --------------------------------------------------------------- */

/* A STATE section, checked and kept to STATE_END (sections.h). */
int dest_recv_state(struct mig_dest *d, const uint8_t *p, size_t len, char *err,
		    size_t errlen)
{
	struct proto_state s;
	int r;

	if (!d->ram_end || d->state_end) {
		snprintf(err, errlen, "STATE out of order");
		return -EPROTO;
	}
	r = proto_state_decode(p, len, &s, err, errlen);
	if (r)
		return r;
	return mig_sections_add(d->ss.vm, &d->snap, &s, err, errlen);
}

/* ---- the way to post-copy ------------------------------------------------ */

/* Pages the source says are not valid here: drop them. */
int dest_recv_discard(struct mig_dest *d, const uint8_t *p, size_t len,
		      char *err, size_t errlen)
{
	uint64_t t0 = clock_now_ns();
	uint32_t nr;
	int r;

	if (!(d->ss.caps & PROTO_CAP_POSTCOPY) || d->postcopy) {
		snprintf(err, errlen, "DISCARD out of order");
		return -EPROTO;
	}
	if (!d->discard)
		d->discard =
			malloc(PROTO_MAX_DISCARD_RUNS * sizeof(*d->discard));
	if (!d->discard) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = proto_discard_decode(p, len, d->discard, PROTO_MAX_DISCARD_RUNS,
				 &nr, err, errlen);
	for (uint32_t i = 0; !r && i < nr; i++) {
		const struct proto_run *run = &d->discard[i];

		r = mem_punch_range(&d->ss.vm->mem, run->gpa, run->npages);
		if (r)
			snprintf(err, errlen,
				 "discarding %u pages at 0x%llx: %s",
				 run->npages, (unsigned long long)run->gpa,
				 r == -EFAULT ? "outside guest RAM"
					      : strerror(-r));
		else
			r = dest_verify_placed(d, run->gpa, run->npages, true,
					       err, errlen);
	}
	if (!r)
		d->nr_discard += nr;
	d->discard_ns += clock_now_ns() - t0;
	return r;
}

/* POSTCOPY: the switch went to post-copy; the state sections follow. */
int dest_recv_postcopy(struct mig_dest *d, const uint8_t *p, size_t len,
		       char *err, size_t errlen)
{
	uint64_t cookie, nr_runs;
	int r;

	if (!(d->ss.caps & PROTO_CAP_POSTCOPY) || d->postcopy || d->ram_end) {
		snprintf(err, errlen, "POSTCOPY out of order");
		return -EPROTO;
	}
	r = proto_postcopy_decode(p, len, &cookie, &nr_runs, err, errlen);
	if (r)
		return r;
	if (nr_runs != d->nr_discard) {
		snprintf(err, errlen,
			 "POSTCOPY counts %llu discard runs, %llu arrived",
			 (unsigned long long)nr_runs,
			 (unsigned long long)d->nr_discard);
		return -EPROTO;
	}
	d->ss.cookie = cookie;
	d->postcopy = true;
	d->ram_end = true;
	d->ss.st.discard_us = d->discard_ns / 1000;
	/* Pushed pages must not hold up the answers to requests. */
	d->ss.ch.read_chunk = DEST_PC_READ_CHUNK;
	return 0;
}
