/* SPDX-License-Identifier: MIT */
/*
 * dev.c - the table of a VM's devices: registration, the constructors of
 * the optional device types, and the calls that go over every device
 * (start, the quiesce handshake, pinned buffers, resume).
 */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "devices/debug_exit.h"
#include "devices/pc_testdev.h"
#include "devices/dev.h"
#include "devices/pt.h"

/* The device types a configuration may ask for. */
/* The types `--device` may name, in the order help lists them. */
static const struct dev_type *const dev_types[] = {
	&pt_dev_type,
	&debug_exit_dev_type,
	&pc_testdev_dev_type,
};

#define NR_DEV_TYPES (sizeof(dev_types) / sizeof(dev_types[0]))

static const struct dev_type *dev_type_find(const char *type, size_t len)
{
	for (size_t i = 0; i < NR_DEV_TYPES; i++)
		if (strlen(dev_types[i]->type) == len &&
		    !strncmp(dev_types[i]->type, type, len))
			return dev_types[i];
	return NULL;
}

const char *dev_types_usage(void)
{
	static char buf[256];

	if (!buf[0])
		for (size_t i = 0; i < NR_DEV_TYPES; i++)
			snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf),
				 "%s%s", i ? ", " : "", dev_types[i]->usage);
	return buf;
}

const char *dev_types_help(void)
{
	static char buf[1024];
	size_t n = 0;

	if (buf[0])
		return buf;
	n += snprintf(buf, sizeof(buf), "\ndevices (--device SPEC):\n");
	for (size_t i = 0; i < NR_DEV_TYPES && n < sizeof(buf); i++)
		n += snprintf(buf + n, sizeof(buf) - n, "  %-22s%s\n",
			      dev_types[i]->usage, dev_types[i]->help);
	return buf;
}

int dev_request_parse(const char *arg, const struct dev_request *earlier,
		      int nr, struct dev_request *out, char *err,
		      size_t errlen)
{
	size_t len = strcspn(arg, ",");
	const struct dev_type *t = dev_type_find(arg, len);

	if (!t) {
		err_set(err, errlen, "unknown device '%.*s' (known: %s)",
			(int)len, arg, dev_types_usage());
		return -EINVAL;
	}
	for (int i = 0; i < nr; i++)
		if (earlier[i].type == t) {
			err_set(err, errlen,
				"%s: given twice (a VM has at most one)",
				t->type);
			return -EINVAL;
		}
	if (nr >= DEV_REQUEST_MAX) {
		err_set(err, errlen, "more than %d devices", DEV_REQUEST_MAX);
		return -EINVAL;
	}
	memset(out, 0, sizeof(*out));
	out->type = t;
	return t->parse ? t->parse(arg[len] ? arg + len + 1 : "", out->cfg,
				   err, errlen)
			: 0;
}

int dev_request_create(struct dev_table *t, const struct dev_request *req,
		       const struct dev_env *env, char *err, size_t errlen)
{
	const struct dev_spec spec = {
		.type = req->type->type,
		.name = req->type->instance,
		.cfg = req->cfg,
	};

	return req->type->create(t, &spec, env, err, errlen);
}

void dev_status_add(struct dev_status *st, const char *key,
		    enum dev_field_kind kind, uint64_t u, const char *str)
{
	if (st->nr >= DEV_STATUS_MAX)
		return;
	st->f[st->nr++] = (struct dev_field){
		.key = key, .kind = kind, .u = u, .s = str};
}

void dev_table_init(struct dev_table *t)
{
	memset(t, 0, sizeof(*t));
}

static int dev_table_put(struct dev_table *t, const char *name,
			 const struct dev_ops *ops, void *dev, bool owned,
			 char *err, size_t errlen)
{
	struct dev *d;

	if (strlen(name) >= DEV_NAME_MAX) {
		err_set(err, errlen, "device %s: name longer than %d bytes",
			name, DEV_NAME_MAX - 1);
		return -EINVAL;
	}
	if (ops->state_size > DEV_STATE_MAX) {
		err_set(err, errlen,
			"device %s: %u bytes of state, more than %d", name,
			ops->state_size, DEV_STATE_MAX);
		return -EINVAL;
	}
	if (dev_table_find(t, name)) {
		err_set(err, errlen, "device %s: registered twice", name);
		return -EEXIST;
	}
	if (t->nr == DEV_TABLE_MAX) {
		err_set(err, errlen, "device %s: more than %d devices", name,
			DEV_TABLE_MAX);
		return -ENOSPC;
	}
	d = &t->dev[t->nr++];
	memset(d, 0, sizeof(*d));
	strcpy(d->name, name);
	d->ops = ops;
	d->dev = dev;
	d->owned = owned;
	return 0;
}

int dev_table_add(struct dev_table *t, const char *name,
		  const struct dev_ops *ops, void *dev, char *err,
		  size_t errlen)
{
	return dev_table_put(t, name, ops, dev, false, err, errlen);
}

int dev_table_adopt(struct dev_table *t, const char *name,
		    const struct dev_ops *ops, void *dev, char *err,
		    size_t errlen)
{
	return dev_table_put(t, name, ops, dev, true, err, errlen);
}

void dev_table_destroy(struct dev_table *t)
{
	for (int i = t->nr - 1; i >= 0; i--) {
		struct dev *d = &t->dev[i];

		if (!d->owned)
			continue;
		if (d->ops->destroy)
			d->ops->destroy(d->dev);
		free(d->dev);
	}
	t->nr = 0;
}

struct dev *dev_table_find(struct dev_table *t, const char *name)
{
	for (int i = 0; i < t->nr; i++)
		if (!strcmp(t->dev[i].name, name))
			return &t->dev[i];
	return NULL;
}

int dev_create(struct dev_table *t, const struct dev_spec *spec,
	       const struct dev_env *env, char *err, size_t errlen)
{
	const struct dev_type *type =
		dev_type_find(spec->type, strlen(spec->type));

	if (type)
		return type->create(t, spec, env, err, errlen);
	err_set(err, errlen, "device %s: no device type %s", spec->name,
		spec->type);
	return -EINVAL;
}

int dev_table_start(struct dev_table *t, const struct dev **failed, char *err,
		    size_t errlen)
{
	for (int i = 0; i < t->nr; i++) {
		struct dev *d = &t->dev[i];
		int r = d->ops->start ? d->ops->start(d->dev, err, errlen) : 0;

		if (r) {
			*failed = d;
			return r;
		}
	}
	return 0;
}

/* ---- the quiesce handshake, over every DMA device ------------------------ */

int dev_table_nr_quiesce(const struct dev_table *t)
{
	int n = 0;

	for (int i = 0; i < t->nr; i++)
		n += t->dev[i].ops->quiesce_request != NULL;
	return n;
}

int dev_table_quiesce_request(struct dev_table *t)
{
	int waiting = 0;

	for (int i = 0; i < t->nr; i++) {
		struct dev *d = &t->dev[i];

		if (!d->ops->quiesce_request)
			continue;
		d->quiesced = d->ops->quiesce_request(d->dev);
		waiting += !d->quiesced;
	}
	return waiting;
}

/* "pt: buffer 3 ..." -> "buffer 3 ...": the caller names the device. */
static const char *dev_msg(const struct dev *d, const char *msg)
{
	size_t n = strlen(d->ops->type);

	if (!strncmp(msg, d->ops->type, n) && !strncmp(msg + n, ": ", 2))
		return msg + n + 2;
	return msg;
}

int dev_table_quiesce_poll(struct dev_table *t, char *err, size_t errlen)
{
	const struct dev *pending = NULL;
	char msg[400];

	for (int i = 0; i < t->nr; i++) {
		struct dev *d = &t->dev[i];
		int r;

		if (!d->ops->quiesce_poll || d->quiesced)
			continue;
		msg[0] = '\0';
		r = d->ops->quiesce_poll(d->dev, msg, sizeof(msg));
		if (!r) {
			d->quiesced = true;
		} else if (r == -EAGAIN) {
			pending = pending ? pending : d;
		} else {
			err_set(err, errlen, "device %s: %s", d->name,
				dev_msg(d, msg));
			return r;
		}
	}
	if (!pending)
		return 1;
	err_set(err, errlen,
		"device %s: the driver did not acknowledge the quiesce request",
		pending->name);
	return 0;
}

uint64_t dev_table_quiesce_ns(const struct dev_table *t)
{
	uint64_t ns = 0;

	for (int i = 0; i < t->nr; i++) {
		const struct dev *d = &t->dev[i];
		uint64_t v =
			d->ops->quiesce_ns ? d->ops->quiesce_ns(d->dev) : 0;

		ns = v > ns ? v : ns;
	}
	return ns;
}

void dev_table_resume(struct dev_table *t)
{
	for (int i = 0; i < t->nr; i++) {
		struct dev *d = &t->dev[i];

		if (!d->ops->resume)
			continue;
		d->ops->resume(d->dev);
		d->quiesced = false;
	}
}

void dev_table_pinned(const struct dev_table *t, dev_pin_fn fn, void *opaque)
{
	for (int i = 0; i < t->nr; i++)
		if (t->dev[i].ops->pinned)
			t->dev[i].ops->pinned(t->dev[i].dev, fn, opaque);
}

void dev_table_set_ack(struct dev_table *t, dev_ack_fn fn, void *opaque)
{
	for (int i = 0; i < t->nr; i++)
		if (t->dev[i].ops->set_ack)
			t->dev[i].ops->set_ack(t->dev[i].dev, fn, opaque);
}
