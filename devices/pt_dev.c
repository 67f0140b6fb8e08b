/* SPDX-License-Identifier: MIT */
/*
 * pt_dev.c - the pt device as the device table sees it (devices/dev.h):
 * its constructor, which builds an instance from a struct pt_config and
 * maps it at PT_GPA, and its dev_ops over pt.h (state, thread, and the
 * quiesce handshake of docs/pt-quiesce.md).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "devices/devices.h"

_Static_assert(PT_RING_MAX <= 256, "pt_dev_pinned keeps the pins on the stack");
_Static_assert(sizeof(struct pt_state) <= DEV_STATE_MAX, "struct pt_state");

static int pt_dev_save(void *dev, void *state, char *err, size_t errlen)
{
	return pt_save(dev, state, err, errlen);
}

static int pt_dev_load(void *dev, const void *state, char *err, size_t errlen)
{
	return pt_load(dev, state, err, errlen);
}

static int pt_dev_start(void *dev, char *err, size_t errlen)
{
	return pt_start(dev, err, errlen);
}

static void pt_dev_destroy(void *dev)
{
	pt_destroy(dev);
}

/* Nothing to wait for when no queue is enabled and no buffer is held. */
static bool pt_dev_quiesce_request(void *dev)
{
	struct pt_stats st;

	pt_quiesce_request(dev);
	pt_get_stats(dev, &st);
	return !st.enabled && !st.pinned;
}

static int pt_dev_quiesce_poll(void *dev, char *err, size_t errlen)
{
	return pt_quiesce_check(dev, err, errlen);
}

static uint64_t pt_dev_quiesce_ns(void *dev)
{
	struct pt_stats st;

	pt_get_stats(dev, &st);
	return st.quiesce_acks ? st.quiesce_ns : 0;
}

static void pt_dev_resume(void *dev)
{
	pt_resume(dev);
}

static void pt_dev_pinned(void *dev, dev_pin_fn fn, void *opaque)
{
	struct pt_pin pins[PT_RING_MAX];
	int nr = pt_pinned(dev, pins, PT_RING_MAX);

	for (int k = 0; k < nr && k < PT_RING_MAX; k++)
		fn(opaque, pins[k].gpa, pins[k].len);
}

void pt_status_fill(const struct pt_stats *st, uint32_t rate_pps,
		    struct dev_status *o)
{
	o->section = "pt";
	dev_status_add(o, "rate_pps", DEV_FIELD_U64, rate_pps, NULL);
	if (!st) {
		dev_status_add(o, "ram_arriving", DEV_FIELD_BOOL, 1, NULL);
		return;
	}
	dev_status_add(o, "enabled", DEV_FIELD_BOOL, st->enabled, NULL);
	dev_status_add(o, "quiesce_state", DEV_FIELD_STR, 0,
		       pt_quiesce_state_name(st->qstate));
	dev_status_add(o, "quiesce_ms", DEV_FIELD_MS, st->quiesce_ns, NULL);
#define PT_U64(k) dev_status_add(o, #k, DEV_FIELD_U64, st->k, NULL)
	PT_U64(ring_size);
	PT_U64(pinned);
	PT_U64(queued);
	PT_U64(next_seq);
	PT_U64(delivered);
	PT_U64(returned);
	PT_U64(irqs);
	PT_U64(doorbells);
	PT_U64(full_waits);
	PT_U64(quiesces);
	PT_U64(quiesce_acks);
	PT_U64(resumes);
	PT_U64(bad_accesses);
#undef PT_U64
}

/* The counters need the device's lock: not while post-copy RAM arrives. */
static void pt_dev_status(void *dev, bool ram_arriving, struct dev_status *o)
{
	struct pt *p = dev;
	struct pt_stats st;

	if (!ram_arriving)
		pt_get_stats(p, &st);
	pt_status_fill(ram_arriving ? NULL : &st, p->cfg.rate_pps, o);
}

/* The ack hook (vCPU thread, without p->lock): a QUIESCE ack notifies. */
static void pt_dev_acked(void *opaque, enum pt_req req, uint32_t seq)
{
	struct pt *p = opaque;
	dev_ack_fn fn;
	void *arg;

	(void)seq;
	if (req != PT_REQ_QUIESCE)
		return;
	pthread_mutex_lock(&p->lock);
	fn = p->q_ack_fn;
	arg = p->q_ack_opaque;
	pthread_mutex_unlock(&p->lock);
	if (fn)
		fn(arg);
}

static void pt_dev_set_ack(void *dev, dev_ack_fn fn, void *opaque)
{
	struct pt *p = dev;

	pthread_mutex_lock(&p->lock);
	p->q_ack_fn = fn;
	p->q_ack_opaque = opaque;
	pthread_mutex_unlock(&p->lock);
	pt_set_ack_hook(p, fn ? pt_dev_acked : NULL, fn ? p : NULL);
}

const struct dev_ops pt_dev_ops = {
	.type = "pt",
	.version = PT_STATE_VERSION,
	.state_size = sizeof(struct pt_state),
	.save = pt_dev_save,
	.load = pt_dev_load,
	.start = pt_dev_start,
	.destroy = pt_dev_destroy,
	.quiesce_request = pt_dev_quiesce_request,
	.quiesce_poll = pt_dev_quiesce_poll,
	.quiesce_ns = pt_dev_quiesce_ns,
	.resume = pt_dev_resume,
	.pinned = pt_dev_pinned,
	.set_ack = pt_dev_set_ack,
	.status = pt_dev_status,
};

/* spec->cfg: a struct pt_config, or NULL for the defaults. */
static int pt_dev_create(struct dev_table *t, const struct dev_spec *spec,
			 const struct dev_env *env, char *err, size_t errlen)
{
	struct pt *p = malloc(sizeof(*p));
	int r;

	if (!p) {
		err_set(err, errlen, "device %s: %s", spec->name,
			strerror(ENOMEM));
		return -ENOMEM;
	}
	r = pt_init(p, env->host, spec->cfg, err, errlen);
	if (r) {
		free(p);
		return r;
	}
	r = dev_table_adopt(t, spec->name, &pt_dev_ops, p, err, errlen);
	if (r) {
		pt_destroy(p);
		free(p);
		return r;
	}
	/* The second page of the device window (guest_abi.h). */
	return bus_register(env->mmio, PT_GPA, PT_SIZE, &pt_ops, p,
			    dev_table_find(t, spec->name)->name, err, errlen);
}

/* "rate=PPS" (1..PT_RATE_MAX), comma-separated; none: the defaults. */
static int pt_dev_parse(const char *opts, void *cfg, char *err, size_t errlen)
{
	struct pt_config *c = cfg;
	char *end;

	*c = (struct pt_config){.rate_pps = PT_RATE_DEFAULT, .gsi = PT_GSI};
	while (*opts) {
		size_t len = strcspn(opts, ",");
		unsigned long long v;

		if (len < 5 || strncmp(opts, "rate=", 5)) {
			err_set(err, errlen,
				"pt: unknown option '%.*s' (known: rate=PPS)",
				(int)len, opts);
			return -EINVAL;
		}
		errno = 0;
		v = strtoull(opts + 5, &end, 10);
		if (errno || end != opts + len || end == opts + 5 || !v ||
		    v > PT_RATE_MAX) {
			err_set(err, errlen,
				"pt: rate must be 1..%d packets/s, got '%.*s'",
				PT_RATE_MAX, (int)(len - 5), opts + 5);
			return -EINVAL;
		}
		c->rate_pps = (uint32_t)v;
		opts += len + (opts[len] == ',');
	}
	return 0;
}

_Static_assert(sizeof(struct pt_config) <= DEV_CFG_MAX, "struct pt_config");

const struct dev_type pt_dev_type = {
	.type = "pt",
	.usage = "pt[,rate=PPS]",
	.help = "the passthrough-style DMA receive device; its traffic\n"
		"                        source makes PPS packets/s, 1..100000\n"
		"                        (default 1000)",
	.instance = "pt0",
	.cfg_size = sizeof(struct pt_config),
	.parse = pt_dev_parse,
	.create = pt_dev_create,
};
