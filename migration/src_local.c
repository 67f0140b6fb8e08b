/* SPDX-License-Identifier: MIT */
/*
 * src_local.c - the source of a live update (mode local, a unix:PATH
 * address; docs/migration.md "Live update"): what a local migration
 * refuses, and the connection, which hands the guest-RAM memfd to the
 * destination before HELLO. No page is sent and dirty logging never
 * starts: after HELLO_ACK source.c quiesces the DMA devices, pauses, and
 * sends RAM_END, the state sections and STATE_END (src_send_finish); then
 * READY, GO, RUNNING as in pre-copy. Loop thread.
 */
#include <errno.h>
#include <stdio.h>

#include "migration/channel_unix.h"
#include "migration/source.h"
#include "vmm/vm.h"

bool src_local(const struct mig_source *s)
{
	return s->p.mode == MIG_MODE_LOCAL;
}

enum mig_mode mig_source_mode(const struct mig_source *s)
{
	return s->p.mode;
}

/* The mode a unix:PATH address gets, or what contradicts it. */
int src_local_mode(struct mig_params *p, char *err, size_t errlen)
{
	bool unix_addr = mig_addr_is_unix(p->to);

	if (!unix_addr && p->mode == MIG_MODE_LOCAL) {
		snprintf(err, errlen,
			 "mode local (live update) needs a unix:PATH address");
		return -EINVAL;
	}
	if (!unix_addr)
		return 0;
	if (p->mode == MIG_MODE_PRECOPY || p->mode == MIG_MODE_POSTCOPY) {
		snprintf(err, errlen,
			 "%s is a live update (mode local: guest RAM is "
			 "shared, not copied); mode %s does not apply",
			 p->to, mig_mode_name(p->mode));
		return -EINVAL;
	}
	if (p->tls_dir || p->insecure || p->verify) {
		snprintf(err, errlen,
			 "%s is a live update on this host: no %s (the "
			 "socket file's mode admits the source; no page is "
			 "copied)",
			 p->to, p->verify ? "--verify" : "TLS or --insecure");
		return -EINVAL;
	}
	p->mode = MIG_MODE_LOCAL;
	return 0;
}

/* Waiting for HELLO_ACK: say so each second (migrate's watch). */
static void src_local_on_tick(uv_timer_t *t)
{
	struct mig_source *s = t->data;

	src_update_elapsed(s);
	mig_session_progress(&s->ss);
}

/*
 * Connect, hand the memfd over; the channel is up (HELLO is next). Until
 * HELLO_ACK the destination maps the RAM, and with --mem-prealloc
 * populates it (seconds for GiBs, its loop blocked meanwhile): the guest
 * runs here all along, so that silence is no stall, and a progress event
 * a second (on the quiesce timer, idle until HELLO_ACK) shows it goes on.
 * A destination that dies is seen at once (the socket closes); `migrate
 * --cancel` ends a wait for one that hangs.
 */
int src_local_connect(struct mig_source *s, char *err, size_t errlen)
{
	const struct guest_mem *m = &s->ss.vm->mem;
	int r = mig_unix_connect(&s->ss.ch, s->ss.loop, s->p.to, m->memfd,
				 m->size, &src_channel_ops, s, err, errlen);

	if (r)
		return r;
	s->ss.ch.idle_ok = true;
	uv_timer_start(&s->qtimer, src_local_on_tick, 1000, 1000);
	return 0;
}

/* HELLO_ACK: from here on the destination answers at once. */
void src_local_acked(struct mig_source *s)
{
	uv_timer_stop(&s->qtimer);
	s->ss.ch.idle_ok = false;
}
