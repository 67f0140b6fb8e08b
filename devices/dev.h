/* SPDX-License-Identifier: MIT */
/*
 * dev.h - what every migratable device offers (struct dev_ops) and the
 * table of a VM's device instances (struct dev_table), in the order both
 * sides of a migration list them.
 *
 * A device file defines its ops and registers each instance: a device the
 * VM embeds with dev_table_add(), a device the configuration asks for is
 * created by its constructor (dev_create(), by type name), which adopts it
 * into the table. The VM core and migration drive every device through
 * the table, never by its type: a second DMA-capable device needs only
 * its ops here.
 *
 * State: a device saves into and loads from one fixed-layout struct of
 * ops->state_size bytes (version ops->version); the VM core frames it
 * into a blob. The quiesce handshake (docs/pt-quiesce.md) is for devices
 * that write guest RAM on their own (DMA): they must stop, and release
 * every buffer, before the VM's state is saved.
 *
 * Threads: the table is built on the main thread before the vCPUs start
 * and read-only afterwards; the quiesce, resume, pinned and state calls
 * run on the event-loop thread (which also owns each entry's quiesced
 * flag). The quiesce-ack notification runs on the vCPU thread that wrote
 * the driver's acknowledgement.
 */
#ifndef DEVICES_DEV_H
#define DEVICES_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bus;
struct dev_host;

#define DEV_TABLE_MAX 16
#define DEV_NAME_MAX  32
#define DEV_STATE_MAX (48 * 1024) /* ops->state_size, at most */

/* A guest buffer a device holds for DMA. */
typedef void (*dev_pin_fn)(void *opaque, uint64_t gpa, uint64_t len);
/* A device's driver acknowledged a quiesce request. */
typedef void (*dev_ack_fn)(void *opaque);

/*
 * A device's status for people and tools (`vmmctl status`): named fields
 * the control plane renders without knowing the device.
 */
#define DEV_STATUS_MAX 24
enum dev_field_kind { DEV_FIELD_U64, DEV_FIELD_BOOL, DEV_FIELD_STR, DEV_FIELD_MS };
struct dev_field {
	const char *key; /* static storage */
	enum dev_field_kind kind;
	uint64_t u;	   /* U64, BOOL (0/1), MS (nanoseconds) */
	const char *s;	   /* STR: static storage */
};
struct dev_status {
	const char *section; /* the key of this status in `status`: "pt" */
	int nr;
	struct dev_field f[DEV_STATUS_MAX];
};

/* Append a field to st (dropped when full: DEV_STATUS_MAX is ample). */
void dev_status_add(struct dev_status *st, const char *key,
		    enum dev_field_kind kind, uint64_t u, const char *s);

struct dev_ops {
	const char *type;    /* "serial", "pt": for messages */
	uint32_t version;    /* of the state struct */
	uint32_t state_size; /* bytes save() writes and load() reads */
	/* 0 or -errno with err set (a DMA device refuses unless quiesced). */
	int (*save)(void *dev, void *state, char *err, size_t errlen);
	int (*load)(void *dev, const void *state, char *err, size_t errlen);
	/*
	 * Optional: the one older state version the device still loads
	 * (old_state_size bytes; load_old converts it and loads it).
	 */
	uint32_t old_version, old_state_size;
	int (*load_old)(void *dev, const void *state, char *err, size_t errlen);

	/* Optional: a device with a thread of its own (vm_start). */
	int (*start)(void *dev, char *err, size_t errlen);
	/* Adopted instances only: stop and free everything but *dev. */
	void (*destroy)(void *dev);

	/*
	 * Optional, all or none: the quiesce handshake of a DMA device.
	 * quiesce_request posts the request; true when the device holds
	 * nothing and does no DMA already (nothing to wait for).
	 * quiesce_poll: 0 once quiesced, -EAGAIN while the driver has not
	 * acknowledged, another -errno (err says why) when it acknowledged
	 * but still holds a buffer. quiesce_ns: request -> acknowledgement
	 * of the last acknowledged quiesce, 0 if none. resume ends the
	 * quiesce (the migration did not happen, or the state was loaded).
	 * pinned calls fn for every buffer the device holds; set_ack sets
	 * (or clears, fn NULL) the acknowledgement notification.
	 */
	bool (*quiesce_request)(void *dev);
	int (*quiesce_poll)(void *dev, char *err, size_t errlen);
	uint64_t (*quiesce_ns)(void *dev);
	void (*resume)(void *dev);
	void (*pinned)(void *dev, dev_pin_fn fn, void *opaque);
	void (*set_ack)(void *dev, dev_ack_fn fn, void *opaque);
	/*
	 * Optional: fill st (section and fields; loop thread). ram_arriving:
	 * post-copy pages are still at the source, so a device that writes
	 * guest RAM under its lock must not take that lock now (its DMA may
	 * wait on a fault only the caller's thread resolves): report only
	 * what needs no lock.
	 */
	void (*status)(void *dev, bool ram_arriving, struct dev_status *st);
};

/*
 * Define `const struct dev_ops var` for a device with no thread and no DMA
 * whose save cannot fail: void savefn(dtype *, stype *) and
 * int loadfn(dtype *, const stype *, char *err, size_t errlen).
 */
#define DEV_OPS_STATE(var, typestr, ver, dtype, stype, savefn, loadfn)         \
	static int var##_save(void *dev, void *state, char *err,               \
			      size_t errlen)                                   \
	{                                                                      \
		(void)err;                                                     \
		(void)errlen;                                                  \
		savefn((dtype *)dev, (stype *)state);                          \
		return 0;                                                      \
	}                                                                      \
	static int var##_load(void *dev, const void *state, char *err,         \
			      size_t errlen)                                   \
	{                                                                      \
		return loadfn((dtype *)dev, (const stype *)state, err,         \
			      errlen);                                         \
	}                                                                      \
	const struct dev_ops var = {                                           \
		.type = typestr,                                               \
		.version = ver,                                                \
		.state_size = sizeof(stype),                                   \
		.save = var##_save,                                            \
		.load = var##_load,                                            \
	}

/* One device instance of the VM. */
struct dev {
	char name[DEV_NAME_MAX]; /* "serial-com1", "pt0": unique */
	const struct dev_ops *ops;
	void *dev;
	bool owned;    /* adopted: the table destroys and frees it */
	bool quiesced; /* the loop thread saw it quiesced (see above) */
};

struct dev_table {
	int nr;
	struct dev dev[DEV_TABLE_MAX];
};

/* What a device constructor may need of the machine. */
struct dev_env {
	const struct dev_host *host;
	struct bus *pio, *mmio;
};

/* An optional device the VM is built with: its type and configuration. */
struct dev_spec {
	const char *type; /* "pt" */
	const char *name; /* its instance name, "pt0" */
	const void *cfg;  /* the type's configuration (struct pt_config) */
};

/* A device type the configuration may ask for: `--device TYPE[,OPTS]`. */
struct dev_type {
	const char *type;     /* "pt": what --device names */
	const char *usage;    /* "pt[,rate=PPS]": for help and errors */
	const char *help;     /* what it is, for `vmmctl boot --help` */
	const char *instance; /* its instance's name in the table: "pt0" */
	size_t cfg_size;      /* the parsed configuration, <= DEV_CFG_MAX */
	/*
	 * Parse OPTS (what follows "TYPE,", "" when nothing does) into cfg,
	 * which comes zeroed. 0, or -EINVAL with err naming the option.
	 */
	int (*parse)(const char *opts, void *cfg, char *err, size_t errlen);
	int (*create)(struct dev_table *t, const struct dev_spec *spec,
		      const struct dev_env *env, char *err, size_t errlen);
};

#define DEV_CFG_MAX	 64
#define DEV_REQUEST_MAX	 8

/* One device the user asked for, parsed (the VM core builds it). */
struct dev_request {
	const struct dev_type *type;
	_Alignas(8) uint8_t cfg[DEV_CFG_MAX];
};

/*
 * Parse one `--device TYPE[,OPTS]` into out; earlier[0..nr) are the ones
 * already asked for (a VM has at most one instance of a type). 0, or
 * -EINVAL with err saying what is wrong ("unknown device 'x' (known:
 * ...)", "given twice", the type's own complaint).
 */
int dev_request_parse(const char *arg, const struct dev_request *earlier,
		      int nr, struct dev_request *out, char *err,
		      size_t errlen);
/* "pt[,rate=PPS], debug-exit": every type's usage, for errors. */
const char *dev_types_usage(void);
/* A help paragraph listing every type with its usage and help. */
const char *dev_types_help(void);
/* Build what req asks for into t. 0 or -errno, err. */
int dev_request_create(struct dev_table *t, const struct dev_request *req,
		       const struct dev_env *env, char *err, size_t errlen);

void dev_table_init(struct dev_table *t);
/*
 * Register dev (borrowed: its owner destroys it) under name, last in the
 * table. -EEXIST for a name already there, -ENOSPC when full, err set.
 */
int dev_table_add(struct dev_table *t, const char *name,
		  const struct dev_ops *ops, void *dev, char *err,
		  size_t errlen);
/* The same for a device a constructor malloc()ed: the table owns it. */
int dev_table_adopt(struct dev_table *t, const char *name,
		    const struct dev_ops *ops, void *dev, char *err,
		    size_t errlen);
/* Destroy and free the adopted devices, last registered first. */
void dev_table_destroy(struct dev_table *t);
/* The entry named name, or NULL. */
struct dev *dev_table_find(struct dev_table *t, const char *name);

/* Build the device spec asks for (by type) into t. 0 or -errno, err. */
int dev_create(struct dev_table *t, const struct dev_spec *spec,
	       const struct dev_env *env, char *err, size_t errlen);

/*
 * Start every device that has a thread, in table order; on failure *failed
 * is the device that did not start.
 */
int dev_table_start(struct dev_table *t, const struct dev **failed, char *err,
		    size_t errlen);

/* How many devices have the quiesce handshake. */
int dev_table_nr_quiesce(const struct dev_table *t);
/* Post a quiesce request to each; returns how many must still ack. */
int dev_table_quiesce_request(struct dev_table *t);
/*
 * 1 once every device is quiesced; 0 while one has not acknowledged (err
 * names the first: "device pt0: the driver did not acknowledge the
 * quiesce request"); -errno when one acknowledged but still holds a
 * buffer (err: "device pt0: buffer 3 at gpa ... is still pinned").
 */
int dev_table_quiesce_poll(struct dev_table *t, char *err, size_t errlen);
/* The longest request -> acknowledgement of the devices, ns. */
uint64_t dev_table_quiesce_ns(const struct dev_table *t);
/* End the quiesce of every device (the driver uses it again). */
void dev_table_resume(struct dev_table *t);
/* fn for each buffer any device holds for DMA. */
void dev_table_pinned(const struct dev_table *t, dev_pin_fn fn, void *opaque);
/* Set (fn NULL: clear) every device's quiesce-ack notification. */
void dev_table_set_ack(struct dev_table *t, dev_ack_fn fn, void *opaque);

#endif /* DEVICES_DEV_H */
