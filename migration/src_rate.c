/* SPDX-License-Identifier: MIT */
/*
 * src_rate.c - the source's bandwidth caps and --auto-converge.
 *
 * The caps (--max-bandwidth, --postcopy-bandwidth): a token bucket
 * (rate.h) the page pump asks before each batch; when it is empty the pump
 * stops and rtimer brings it back when the debt is paid. Stop-copy (the
 * guest is paused: a cap would only lengthen the downtime) and the urgent
 * thread's answers to faults are never throttled. A cap changed live
 * (mig_source_set_bandwidth) applies from the next batch.
 *
 * --auto-converge (pre-copy mode): after a round in which the guest
 * dirtied memory at half the link's measured rate or more, the vCPUs are
 * held paused a larger share (throttle_pct) of the time: they run
 * MIG_THROTTLE_RUN_MS, then are held RUN_MS x pct / (100 - pct) (ttimer
 * alternates vm_pause / vm_resume), as QEMU's cpu-throttle sleeps its vCPU
 * threads; the throttle ends before the switch's own pause.
 *
 * Loop thread: both timers, the bucket and the throttle state.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/page.h"
#include "migration/source.h"
#include "vmm/vm.h"

static void src_on_rtimer(uv_timer_t *t)
{
	struct mig_source *s = t->data;

	s->rtimer_armed = false;
	src_pump(s);
}

static void src_throttle_next(struct mig_source *s);

static void src_on_ttimer(uv_timer_t *t)
{
	src_throttle_next(t->data);
}

int src_rate_init(struct mig_source *s, uv_loop_t *loop, char *err,
		  size_t errlen)
{
	int r = uv_timer_init(loop, &s->rtimer);

	if (!r) {
		s->rtimer.data = s;
		s->rtimer_on = true;
		r = uv_timer_init(loop, &s->ttimer);
	}
	if (r) {
		snprintf(err, errlen, "uv_timer_init: %s", uv_strerror(r));
		return r;
	}
	s->ttimer.data = s;
	s->ttimer_on = true;
	src_rate_apply(s);
	return 0;
}

/* The cap of the phase under way into the bucket (and the statistics). */
void src_rate_apply(struct mig_source *s)
{
	uint64_t bps = s->p.max_bandwidth;

	if (s->pc && s->p.postcopy_bandwidth)
		bps = s->p.postcopy_bandwidth;
	mig_rate_set(&s->rate, bps, clock_now_ns());
	s->ss.st.max_bandwidth = s->p.max_bandwidth;
	s->ss.st.postcopy_bandwidth = s->p.postcopy_bandwidth;
}

/*
 * Before a batch: true when the cap holds the pump back (rtimer will
 * bring it back). Stop-copy is never held.
 */
bool src_rate_hold(struct mig_source *s)
{
	uint64_t wait;

	if (s->ss.st.state == MIG_STOP_COPY)
		return false;
	wait = mig_rate_wait_ns(&s->rate, clock_now_ns());
	if (!wait)
		return false;
	if (!s->rtimer_armed) {
		/* libuv counts milliseconds: round up, the bucket keeps time.
		 */
		uv_timer_start(&s->rtimer, src_on_rtimer,
			       (wait + 999999) / 1000000, 0);
		s->rtimer_armed = true;
	}
	return true;
}

void src_rate_spend(struct mig_source *s, uint64_t bytes)
{
	mig_rate_spend(&s->rate, bytes);
}

int mig_source_set_bandwidth(struct mig_source *s, uint64_t max_bps,
			     uint64_t postcopy_bps)
{
	if (s->ss.ended)
		return -EALREADY;
	if (max_bps != UINT64_MAX)
		s->p.max_bandwidth = max_bps;
	if (postcopy_bps != UINT64_MAX)
		s->p.postcopy_bandwidth = postcopy_bps;
	src_rate_apply(s);
	/* A pump held by the old cap may go now: let the timer say. */
	if (s->rtimer_armed) {
		uv_timer_stop(&s->rtimer);
		s->rtimer_armed = false;
		src_pump(s);
	}
	return 0;
}

/* ---- --auto-converge ---------------------------------------------------- */

_Static_assert(MIG_THROTTLE_MAX_PCT < 100, "the vCPUs must run at all");

/* One phase of the throttle: run MIG_THROTTLE_RUN_MS, then held. */
static void src_throttle_next(struct mig_source *s)
{
	uint32_t pct = s->ss.st.throttle_pct;
	uint64_t held = MIG_THROTTLE_RUN_MS * pct / (100 - pct);

	if (s->throttle_held) {
		vm_resume(s->ss.vm);
		s->throttle_held = false;
		uv_timer_start(&s->ttimer, src_on_ttimer, MIG_THROTTLE_RUN_MS,
			       0);
		return;
	}
	/* Paused by someone else (-EALREADY): leave it, try next period. */
	s->throttle_held = vm_pause(s->ss.vm) == 0;
	uv_timer_start(&s->ttimer, src_on_ttimer,
		       s->throttle_held ? held : MIG_THROTTLE_RUN_MS, 0);
}

/*
 * After a pre-copy round that goes on: raise the throttle while the guest
 * dirties at least half what the link carries (a round then leaves half
 * of the last or more: it converges slowly or never).
 */
void src_throttle_round(struct mig_source *s, const struct mig_decision *d)
{
	const struct mig_stats *st = &s->ss.st;
	uint32_t pct = st->throttle_pct;

	if (!s->p.auto_converge || s->p.mode != MIG_MODE_PRECOPY || d->stop ||
	    st->memory_dirty_rate * PAGE_SIZE * 2 < st->memory_bps)
		return;
	pct = pct ? pct + MIG_THROTTLE_STEP_PCT : MIG_THROTTLE_FIRST_PCT;
	if (pct > MIG_THROTTLE_MAX_PCT)
		pct = MIG_THROTTLE_MAX_PCT;
	if (pct == st->throttle_pct)
		return;
	s->ss.st.throttle_pct = pct;
	s->ss.st.throttle_raised++;
	if (!s->throttle_on) {
		s->throttle_on = true;
		src_throttle_next(s);
	}
}

/* Pre-copy is over (switch, failure, end): the vCPUs run freely again. */
void src_throttle_stop(struct mig_source *s)
{
	if (!s->throttle_on)
		return;
	uv_timer_stop(&s->ttimer);
	s->throttle_on = false;
	if (s->throttle_held)
		vm_resume(s->ss.vm);
	s->throttle_held = false;
}
