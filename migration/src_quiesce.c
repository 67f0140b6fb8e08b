/* SPDX-License-Identifier: MIT */
/*
 * src_quiesce.c - the source's side of the paravirtual quiesce handshake
 * (docs/pt-quiesce.md): before the VM stops here, each passthrough
 * device's driver is asked to stop DMA and release its pinned buffers;
 * the switch goes on once every device holds nothing, or is refused with
 * a line naming the device (source.c moves the state: QUIESCE, then back
 * to PRECOPY to go on). Until then, the buffers a device holds count as
 * dirty in every round. Loop thread, but src_dev_acked (the vCPU thread
 * that wrote a driver's ACK).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>

#include "common/page.h"
#include "migration/source.h"
#include "vmm/vm.h"

/* ---- the devices, through the VM's device table ----------------------- */

/* On the vCPU thread that wrote a driver's quiesce ACK: wake the loop. */
static void src_dev_acked(void *opaque)
{
	struct mig_source *s = opaque;

	atomic_store(&s->q_acked, true);
	uv_async_send(&s->ss.async);
}

/* Whether any device of the VM has the quiesce handshake. */
bool src_devs_quiesce_needed(struct mig_source *s)
{
	return vm_devs_nr_quiesce(s->ss.vm) > 0;
}

/*
 * Ask each driver to stop DMA and release its buffers. The request is
 * posted even to a device nobody enabled, which keeps the driver from
 * enabling it meanwhile. True when no device holds anything to wait for.
 */
bool src_devs_quiesce_request(struct mig_source *s)
{
	atomic_store(&s->q_acked, false);
	vm_devs_set_ack_hook(s->ss.vm, src_dev_acked, s);
	s->q_asked = true;
	return !vm_devs_quiesce_request(s->ss.vm);
}

/*
 * Acked (or timed out): 0 when every device holds nothing now (quiesce_us
 * noted), -EAGAIN while a driver has not acked (err names it), else why the
 * VM may not move (err names the device and the buffer).
 */
static int src_devs_quiesce_check(struct mig_source *s, char *err,
				  size_t errlen)
{
	int r = vm_devs_quiesce_poll(s->ss.vm, err, errlen);

	if (r == 0)
		return -EAGAIN;
	if (r < 0)
		return r;
	s->ss.st.quiesce_us = vm_devs_quiesce_ns(s->ss.vm) / 1000;
	return 0;
}

/* The migration did not happen: the drivers may use their devices again. */
static void src_devs_quiesce_cancel(struct mig_source *s)
{
	if (!s->q_asked)
		return;
	s->q_asked = false;
	vm_devs_set_ack_hook(s->ss.vm, NULL, NULL);
	vm_devs_resume(s->ss.vm);
}

/* The end: no ACK may reach us any more. */
void src_devs_release(struct mig_source *s)
{
	if (s->q_asked)
		vm_devs_set_ack_hook(s->ss.vm, NULL, NULL);
}

/* One pinned buffer: its pages go into todo, counted in s->pinned_new. */
static void src_take_pin(void *opaque, uint64_t gpa, uint64_t len)
{
	struct mig_source *s = opaque;
	uint64_t end = gpa + len;

	for (uint64_t g = gpa & ~(PAGE_SIZE - 1); g < end; g += PAGE_SIZE) {
		uint64_t i;

		if (!mem_gpa_to_page(&s->ss.vm->mem, g, &i) &&
		    !bitmap_test_and_set(&s->todo, i))
			s->pinned_new++;
	}
}

/*
 * The buffers a DMA device holds (pinned) may be written at any moment:
 * they count as dirty in every round, the last included. (A quiesced
 * device holds none: the switch is refused otherwise.)
 */
uint64_t src_devs_take_pinned(struct mig_source *s)
{
	s->pinned_new = 0;
	vm_devs_pinned(s->ss.vm, src_take_pin, s);
	return s->pinned_new;
}

/* ---- the outcome ------------------------------------------------------- */

/*
 * Acked (or timed out): 0 when every device holds nothing now, -EAGAIN to
 * wait on (no timeout yet), else why the switch is refused (err).
 */
int src_quiesce_outcome(struct mig_source *s, bool timed_out, char *err,
			size_t errlen)
{
	char why[400];
	int r = src_devs_quiesce_check(s, why, sizeof(why));

	if (!r || (r == -EAGAIN && !timed_out))
		return r;
	if (r == -EAGAIN)
		snprintf(err, errlen,
			 "%s within %llu ms; the VM keeps running here with "
			 "the device",
			 why, (unsigned long long)s->p.quiesce_timeout_ms);
	else
		snprintf(err, errlen,
			 "%s; the switch-over is refused and the VM keeps "
			 "running here with the device",
			 why);
	return r == -EAGAIN ? -ETIMEDOUT : r;
}

/* The migration did not happen: the devices may be used again. */
void src_quiesce_cancel(struct mig_source *s)
{
	if (s->qtimer_on)
		uv_timer_stop(&s->qtimer);
	src_devs_quiesce_cancel(s);
}
