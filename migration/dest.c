/* SPDX-License-Identifier: MIT */
/*
 * dest.c - the migration destination: accept one source, check its HELLO
 * against this VM, receive pages into guest RAM (zero pages stay holes),
 * collect the state sections, restore them in order, and run the VM only
 * when the source says GO.
 *
 *   LISTENING -> RECEIVING (HELLO ok) -> STATE_END: restore -> [VERIFY]
 *   -> READY sent -> GO: vCPUs start, RUNNING sent -> MIG_RUNNING
 *
 * Any failure before GO ends in MIG_FAILED and the caller exits: a VM that
 * was not received whole never runs. Everything runs on the event-loop
 * thread; no vCPU thread exists until GO.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migration/channel.h"
#include "migration/hello.h"
#include "migration/migration.h"
#include "migration/ram.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"
#include "vmm/vmstate.h"

#define PAGE 4096ULL

/* A state section kept until STATE_END. */
struct dest_blob {
	uint8_t *data;
	uint32_t len;
	uint16_t version;
};

struct mig_dest {
	struct vm *vm;
	uv_loop_t *loop;
	struct mig_hooks hooks;
	struct mig_channel ch;
	struct mig_stats st;
	uint64_t caps;
	bool hello_done, ram_end, state_end, restored, verify_done, ended;
	struct proto_batch *batch;
	struct dest_blob vcpu[GUEST_MAX_CPUS];
	struct dest_blob vmstate;
	struct dest_blob dev[PROTO_MAX_DEVICES];
	int nr_devs;
	struct proto_digest digest[PROTO_MAX_REGIONS]; /* ours, at STATE_END */
	int nr_digest;
	uint64_t go_ns;
};

const struct mig_stats *mig_dest_stats(const struct mig_dest *d)
{
	return &d->st;
}

static void dest_end(struct mig_dest *d, enum mig_state state)
{
	if (d->ended)
		return;
	d->ended = true;
	d->st.state = state;
	d->st.time_elapsed_ms = (vm_now_ns() - d->st.start_ns) / 1000000;
	/* Failed: let the ERROR we queued reach the source, then close. */
	if (state != MIG_RUNNING)
		mig_channel_close_after_flush(&d->ch, NULL);
	if (d->hooks.done)
		d->hooks.done(d->hooks.opaque, &d->st);
}

static void dest_fail(struct mig_dest *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Tell the source why (best effort), then give everything up. */
static void dest_fail(struct mig_dest *d, const char *fmt, ...)
{
	uint8_t buf[PROTO_HDR_SIZE + 1100];
	va_list ap;
	int n;

	if (d->ended)
		return;
	va_start(ap, fmt);
	vsnprintf(d->st.error, sizeof(d->st.error), fmt, ap);
	va_end(ap);
	n = proto_error_encode(buf, sizeof(buf), EPROTO, d->st.error);
	if (n > 0 && d->ch.connected && !d->ch.failed) {
		uint8_t *f = malloc(n);

		if (f) {
			memcpy(f, buf, n);
			mig_channel_send(&d->ch, f, n);
		}
	}
	dest_end(d, MIG_FAILED);
}

static void dest_send(struct mig_dest *d, const uint8_t *buf, int n)
{
	uint8_t *f = n > 0 ? malloc(n) : NULL;

	if (!f) {
		dest_fail(d, "encoding a reply failed");
		return;
	}
	memcpy(f, buf, n);
	mig_channel_send(&d->ch, f, n);
}

static void dest_send_empty(struct mig_dest *d, enum proto_type t)
{
	uint8_t buf[PROTO_HDR_SIZE];

	dest_send(d, buf, proto_empty_encode(buf, sizeof(buf), t));
}

/* ---- handshake ------------------------------------------------------------
 */

static void dest_on_hello(struct mig_dest *d, const uint8_t *p, size_t len)
{
	struct proto_hello *remote = malloc(sizeof(*remote));
	struct proto_hello *local = malloc(sizeof(*local));
	uint8_t buf[PROTO_HDR_SIZE + 16];
	char err[256];
	int r = -ENOMEM;

	if (remote && local) {
		mig_hello_local(d->vm, PROTO_CAP_ZSTD | PROTO_CAP_VERIFY,
				local);
		r = proto_hello_decode(p, len, remote, err, sizeof(err));
		if (!r)
			r = proto_hello_compare(local, remote, err,
						sizeof(err));
	} else {
		snprintf(err, sizeof(err), "out of memory");
	}
	if (!r) {
		d->caps = remote->caps & local->caps;
		d->nr_devs = (int)local->nr_devices;
	}
	free(remote);
	free(local);
	if (r) {
		dest_fail(d, "incompatible VM: %s", err);
		return;
	}
	d->hello_done = true;
	d->st.state = MIG_RECEIVING;
	dest_send(d, buf, proto_hello_ack_encode(buf, sizeof(buf), d->caps));
}

/* ---- pages ----------------------------------------------------------------
 */

static int dest_place_zero(struct mig_dest *d, const struct proto_run *run)
{
	for (uint32_t i = 0; i < run->npages; i++) {
		uint64_t gpa = run->gpa + i * PAGE;
		int r = mig_ram_zero_page(&d->vm->mem, gpa);

		if (r) {
			dest_fail(d, "zeroing page 0x%llx: %s",
				  (unsigned long long)gpa,
				  r == -EFAULT ? "outside guest RAM"
					       : strerror(-r));
			return r;
		}
	}
	d->st.memory_constant += run->npages;
	return 0;
}

/* One run of a PAGES batch into guest RAM; *data advances past its pages. */
static int dest_place_run(struct mig_dest *d, const struct proto_run *run,
			  const uint8_t **data)
{
	uint64_t len = (uint64_t)run->npages * PAGE;
	int r;

	d->st.memory_processed += len;
	if (run->flags & PROTO_RUN_ZERO)
		return dest_place_zero(d, run);
	r = mig_ram_write(&d->vm->mem, run->gpa, *data, len);
	if (r) {
		dest_fail(d, "writing %u pages at 0x%llx: %s", run->npages,
			  (unsigned long long)run->gpa,
			  r == -EFAULT ? "outside guest RAM" : strerror(-r));
		return r;
	}
	*data += len;
	d->st.memory_normal += run->npages;
	d->st.memory_normal_bytes += len;
	return 0;
}

static void dest_on_pages(struct mig_dest *d, const uint8_t *p, size_t len)
{
	const uint8_t *data;
	char err[256];

	if (!d->hello_done || d->ram_end) {
		dest_fail(d, "PAGES %s",
			  d->ram_end ? "after RAM_END" : "before HELLO");
		return;
	}
	if (proto_pages_decode(p, len, d->batch, err, sizeof(err))) {
		dest_fail(d, "%s", err);
		return;
	}
	data = d->batch->data;
	for (int i = 0; i < d->batch->nr_runs; i++)
		if (dest_place_run(d, &d->batch->runs[i], &data))
			return;
}

/* ---- state -----------------------------------------------------------------
 */

static struct dest_blob *dest_slot(struct mig_dest *d,
				   const struct proto_state *s)
{
	switch (s->kind) {
	case PROTO_STATE_VCPU:
		return s->id < (uint32_t)d->vm->nr_vcpus ? &d->vcpu[s->id]
							 : NULL;
	case PROTO_STATE_VM:
		return s->id == 0 ? &d->vmstate : NULL;
	case PROTO_STATE_DEVICE:
		return s->id < (uint32_t)d->nr_devs ? &d->dev[s->id] : NULL;
	}
	return NULL;
}

static void dest_on_state(struct mig_dest *d, const uint8_t *p, size_t len)
{
	struct proto_state s;
	struct dest_blob *b;
	char err[256];

	if (!d->ram_end || d->state_end) {
		dest_fail(d, "STATE out of order");
		return;
	}
	if (proto_state_decode(p, len, &s, err, sizeof(err))) {
		dest_fail(d, "%s", err);
		return;
	}
	b = dest_slot(d, &s);
	if (!b || b->data) {
		dest_fail(d, "STATE kind %u id %u: %s", s.kind, s.id,
			  b ? "sent twice" : "no such vCPU or device here");
		return;
	}
	b->data = malloc(s.len ? s.len : 1);
	if (!b->data) {
		dest_fail(d, "out of memory");
		return;
	}
	memcpy(b->data, s.blob, s.len);
	b->len = s.len;
	b->version = s.version;
}

static int dest_restore_devices(struct mig_dest *d, char *err, size_t errlen)
{
	struct vm_device devs[PROTO_MAX_DEVICES];
	int nr = vm_devices(d->vm, devs, PROTO_MAX_DEVICES);

	for (int i = 0; i < nr; i++) {
		int r;

		if (!d->dev[i].data) {
			snprintf(err, errlen, "no state for device %s",
				 devs[i].name);
			return -EPROTO;
		}
		r = devs[i].load(devs[i].dev, d->dev[i].data, d->dev[i].len,
				 err, errlen);
		if (r)
			return r;
	}
	return 0;
}

/*
 * Restore order: devices (plain data), then every vCPU (vcpu_state_load
 * obeys the per-vCPU ordering rules), then the VM-wide state last, so that
 * KVM_SET_CLOCK is the final step before the vCPUs run.
 */
static int dest_restore(struct mig_dest *d, char *err, size_t errlen)
{
	int r = dest_restore_devices(d, err, errlen);

	for (int i = 0; !r && i < d->vm->nr_vcpus; i++) {
		if (!d->vcpu[i].data) {
			snprintf(err, errlen, "no state for vCPU %d", i);
			return -EPROTO;
		}
		r = vcpu_state_load(&d->vm->vcpus[i], d->vcpu[i].data,
				    d->vcpu[i].len, err, errlen);
	}
	if (!r && !d->vmstate.data) {
		snprintf(err, errlen, "no VM state (irqchip, PIT, clock)");
		return -EPROTO;
	}
	if (!r)
		r = vm_arch_state_load(d->vm, d->vmstate.data, d->vmstate.len,
				       err, errlen);
	return r;
}

static void dest_maybe_ready(struct mig_dest *d)
{
	if (!d->restored)
		return;
	if ((d->caps & PROTO_CAP_VERIFY) && !d->verify_done)
		return; /* the source's digests come after STATE_END */
	d->st.state = MIG_WAIT_READY;
	dest_send_empty(d, PROTO_READY);
}

static void dest_on_state_end(struct mig_dest *d)
{
	char err[256] = "";

	if (!d->ram_end || d->state_end) {
		dest_fail(d, "STATE_END out of order");
		return;
	}
	d->state_end = true;
	d->st.restore_us = vm_now_ns();
	if (dest_restore(d, err, sizeof(err))) {
		dest_fail(d, "restoring the VM: %s", err);
		return;
	}
	d->restored = true;
	d->st.restore_us = (vm_now_ns() - d->st.restore_us) / 1000;
	/* Hash now, while the source hashes its side: not one after the other.
	 */
	if (d->caps & PROTO_CAP_VERIFY) {
		d->nr_digest = mig_ram_digest(&d->vm->mem, d->digest,
					      PROTO_MAX_REGIONS);
		if (d->nr_digest < 0) {
			dest_fail(d, "verify: cannot hash guest RAM here: %s",
				  strerror(-d->nr_digest));
			return;
		}
	}
	dest_maybe_ready(d);
}

/* The source's digests: compare with ours, then send ours back. */
static void dest_on_verify(struct mig_dest *d, const uint8_t *p, size_t len)
{
	struct proto_digest remote[PROTO_MAX_REGIONS];
	const struct proto_digest *local = d->digest;
	uint8_t buf[PROTO_HDR_SIZE + 8 + PROTO_MAX_REGIONS * 48];
	char err[256];
	uint32_t nr;
	int n;

	if (!d->state_end || !(d->caps & PROTO_CAP_VERIFY) || d->verify_done) {
		dest_fail(d, "VERIFY out of order");
		return;
	}
	if (proto_verify_decode(p, len, remote, PROTO_MAX_REGIONS, &nr, err,
				sizeof(err))) {
		dest_fail(d, "%s", err);
		return;
	}
	n = d->nr_digest;
	if ((uint32_t)n != nr) {
		dest_fail(d, "verify: the source hashed %u regions, here %d",
			  nr, n);
		return;
	}
	for (uint32_t i = 0; i < nr; i++) {
		if (memcmp(remote[i].sha256, local[i].sha256, 32)) {
			dest_fail(d,
				  "verify: SHA-256 of RAM region at 0x%llx "
				  "differs between source and destination",
				  (unsigned long long)local[i].gpa);
			return;
		}
	}
	d->verify_done = true;
	dest_send(d, buf, proto_verify_encode(buf, sizeof(buf), local, nr));
	dest_maybe_ready(d);
}

/* GO: the source has let go; run the VM. */
static void dest_on_go(struct mig_dest *d)
{
	char err[256];

	if (d->st.state != MIG_WAIT_READY) {
		dest_fail(d, "GO before READY");
		return;
	}
	d->go_ns = vm_now_ns();
	if (vm_start(d->vm, err, sizeof(err))) {
		dest_fail(d, "starting the vCPUs: %s", err);
		return;
	}
	dest_send_empty(d, PROTO_RUNNING);
	dest_end(d, MIG_RUNNING);
}

static void dest_on_frame(struct mig_channel *ch, const struct proto_hdr *h,
			  const uint8_t *p)
{
	struct mig_dest *d = ch->opaque;
	char reason[1100], err[256];
	int code;

	if (d->ended)
		return;
	if (h->type != PROTO_HELLO && !d->hello_done) {
		dest_fail(d, "%s before HELLO", proto_type_name(h->type));
		return;
	}
	switch (h->type) {
	case PROTO_HELLO:
		if (d->hello_done)
			dest_fail(d, "HELLO twice");
		else
			dest_on_hello(d, p, h->len);
		break;
	case PROTO_PAGES:
		dest_on_pages(d, p, h->len);
		break;
	case PROTO_RAM_END:
		d->ram_end = true;
		break;
	case PROTO_SYNC:
		/* Every frame before it is processed: echo it. */
		if (d->ram_end)
			dest_fail(d, "SYNC after RAM_END");
		else
			dest_send_empty(d, PROTO_SYNC);
		break;
	case PROTO_STATE:
		dest_on_state(d, p, h->len);
		break;
	case PROTO_STATE_END:
		dest_on_state_end(d);
		break;
	case PROTO_VERIFY:
		dest_on_verify(d, p, h->len);
		break;
	case PROTO_GO:
		dest_on_go(d);
		break;
	case PROTO_ERROR:
		if (proto_error_decode(p, h->len, &code, reason, sizeof(reason),
				       err, sizeof(err)))
			snprintf(reason, sizeof(reason), "(%s)", err);
		dest_fail(d, "the source gave up: %s", reason);
		break;
	default:
		dest_fail(d, "unexpected %s from the source",
			  proto_type_name(h->type));
	}
}

static void dest_on_error(struct mig_channel *ch, int e, const char *why)
{
	struct mig_dest *d = ch->opaque;

	(void)e;
	if (d->ended) {
		/* Running: the source closing the connection is the end. */
		mig_channel_close(&d->ch, NULL);
		return;
	}
	dest_fail(d, "%s", why);
}

static void dest_on_connect(struct mig_channel *ch)
{
	struct mig_dest *d = ch->opaque;

	d->st.state = MIG_RECEIVING;
	d->st.start_ns = vm_now_ns();
}

static const struct mig_channel_ops dest_channel_ops = {
	.on_frame = dest_on_frame,
	.on_error = dest_on_error,
	.on_connect = dest_on_connect,
};

int mig_dest_start(struct mig_dest **out, struct vm *vm, uv_loop_t *loop,
		   const char *spec, const struct mig_hooks *hooks, char *err,
		   size_t errlen)
{
	struct mig_dest *d = calloc(1, sizeof(*d));
	int r;

	if (!d)
		return -ENOMEM;
	d->vm = vm;
	d->loop = loop;
	d->hooks = *hooks;
	d->st.state = MIG_LISTENING;
	d->st.start_ns = vm_now_ns();
	d->st.memory_total = vm->mem.size;
	d->batch = malloc(sizeof(*d->batch));
	if (!d->batch) {
		free(d);
		return -ENOMEM;
	}
	r = mig_channel_listen(&d->ch, loop, spec, &dest_channel_ops, d, err,
			       errlen);
	if (r) {
		mig_dest_free(d);
		return r;
	}
	*out = d;
	return 0;
}

static void dest_release(struct mig_dest *d)
{
	for (int i = 0; i < GUEST_MAX_CPUS; i++)
		free(d->vcpu[i].data);
	for (int i = 0; i < PROTO_MAX_DEVICES; i++)
		free(d->dev[i].data);
	free(d->vmstate.data);
	free(d->batch);
	free(d);
}

static void dest_free_cb(struct mig_channel *ch)
{
	dest_release(ch->opaque);
}

void mig_dest_free(struct mig_dest *d)
{
	if (!d)
		return;
	if (d->ch.loop && !d->ch.closed) {
		d->ch.flush_close = false;
		mig_channel_close(&d->ch, dest_free_cb);
		return;
	}
	if (d->ch.loop && d->ch.pending_closes) {
		d->ch.on_closed = dest_free_cb;
		return;
	}
	dest_release(d);
}

const char *mig_state_name(enum mig_state s)
{
	static const char *const names[] = {
		[MIG_NONE] = "none",
		[MIG_SETUP] = "setup",
		[MIG_PRECOPY] = "precopy",
		[MIG_STOP_COPY] = "stop-copy",
		[MIG_WAIT_READY] = "wait-ready",
		[MIG_COMPLETED] = "completed",
		[MIG_FAILED] = "failed",
		[MIG_CANCELLED] = "cancelled",
		[MIG_LISTENING] = "listening",
		[MIG_RECEIVING] = "receiving",
		[MIG_RUNNING] = "running",
	};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) && names[s]
		       ? names[s]
		       : "unknown";
}
