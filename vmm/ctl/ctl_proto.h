/* SPDX-License-Identifier: MIT */
/*
 * ctl_proto.h - the control protocol's messages: pure parsing and building,
 * no I/O. One JSON object per line (docs/control-api.md):
 *
 *   request: {"id": <any JSON, optional>, "cmd": "<name>", "args": {...}}
 *   reply:   {"id": <same>, "ok": true,  "result": {...}}
 *            {"id": <same>, "ok": false, "error": {"code": "...",
 *                                                  "message": "..."}}
 *   event:   {"event": "<name>", "data": {...}}
 *
 * JSON is parsed and produced with jansson; nothing here is hand-rolled.
 */
#ifndef VMM_CTL_CTL_PROTO_H
#define VMM_CTL_CTL_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "migration/migration.h"

#define CTL_LINE_MAX 65536 /* longest request line accepted */

enum ctl_cmd {
	CTL_CMD_STATUS,
	CTL_CMD_PAUSE,
	CTL_CMD_RESUME,
	CTL_CMD_STOP,
	CTL_CMD_GUEST_REQUEST, /* args: {"request": "verify"|..., "arg": n} */
	CTL_CMD_STATS,	       /* vCPU, dirty-log and fault counters */
	CTL_CMD_DIRTY_LOG,     /* args: {"action": "start"|"harvest"|"stop"} */
	CTL_CMD_TRANSLATE,     /* args: {"cpu": n, "gva": n or "0x..."} */
	CTL_CMD_MIGRATE,       /* args: {"to": ..., "mode": ..., ...} */
	CTL_CMD_MIGRATE_SET,   /* args: {"max_bandwidth": n, ...} */
	CTL_CMD_SNAPSHOT,      /* args: {"to": path, "live": b} | {"ws": path} */
	CTL_CMD_MAX
};

/* Error codes, sent as their string names (ctl_err_name). */
enum ctl_err {
	CTL_ERR_NONE,
	CTL_ERR_BAD_JSON,	 /* "bad-json": not a JSON object */
	CTL_ERR_BAD_REQUEST,	 /* "bad-request": missing/ill-typed members */
	CTL_ERR_UNKNOWN_COMMAND, /* "unknown-command" */
	CTL_ERR_BAD_ARGS,	 /* "bad-args": args wrong for the command */
	CTL_ERR_BAD_STATE,	 /* "bad-state": e.g. resume when running */
	CTL_ERR_INTERNAL,	 /* "internal": the VMM failed doing it */
	CTL_ERR_TOO_LONG,	 /* "too-long": line over CTL_LINE_MAX */
};

struct ctl_error {
	enum ctl_err code;
	char message[256];
};

struct ctl_request {
	json_t *id; /* borrowed from root; NULL when absent */
	enum ctl_cmd cmd;
	json_t *args; /* borrowed; an object (empty when absent) */
	json_t *root; /* owned: ctl_request_free() releases it */
	/* Decoded arguments, per command: */
	int guest_req;	  /* CTL_CMD_GUEST_REQUEST: enum guest_req */
	uint64_t req_arg; /* CTL_CMD_GUEST_REQUEST: "arg", 0 when absent */
	int dirty_action; /* CTL_CMD_DIRTY_LOG: enum ctl_dirty_action */
	int cpu;	  /* CTL_CMD_TRANSLATE */
	uint64_t gva;	  /* CTL_CMD_TRANSLATE */
	struct ctl_migrate {
		const char *to;		     /* borrowed; NULL: resume's own */
		enum mig_mode mode;	     /* default: hybrid */
		uint64_t downtime_limit_ms;  /* 0: the default */
		uint64_t max_rounds;	     /* 0: the default */
		uint64_t channels;	     /* 0: one (the main connection) */
		uint64_t budget_ms;	     /* precopy_budget_ms; 0: none */
		uint64_t budget_bytes;	     /* precopy_budget_bytes; 0: none */
		uint64_t quiesce_timeout_ms; /* 0: the default */
		enum mig_push_order push_order; /* default: accessed */
		enum mig_compress compress;	/* default: auto */
		int verify;
		const char *tls_dir;	  /* borrowed; NULL: plaintext */
		const char *tls_hostname; /* borrowed; NULL: to's host */
		int insecure;		  /* plaintext off loopback */
		const char *tcp_congestion; /* borrowed; NULL: the system's */
		int cancel;
		int resume;  /* post-copy recovery, optionally to "to" */
		int abort;   /* give post-copy up (needs "confirm") */
		int recover; /* destination: listen for the resume on... */
		const char *listen; /* ...this address (borrowed) */
		/* bytes a second, 0: none (migrate-set: UINT64_MAX absent) */
		uint64_t max_bandwidth, postcopy_bandwidth;
		int auto_converge; /* mode precopy only */
	} mig;			   /* CTL_CMD_MIGRATE, CTL_CMD_MIGRATE_SET */
	struct ctl_snapshot {
		const char *to; /* borrowed; NULL: store the working set */
		int live;
		const char *ws; /* borrowed: the snapshot to store it in */
	} snap;			/* CTL_CMD_SNAPSHOT */
};

/* migrate "precopy_budget_ms" / "precopy_budget_bytes" ranges. */
#define CTL_MIG_BUDGET_MS_MAX	 3600000ULL
#define CTL_MIG_BUDGET_BYTES_MIN (1ULL << 20)
#define CTL_MIG_BUDGET_BYTES_MAX (1ULL << 40)
#define CTL_MIG_QUIESCE_MS_MAX	 600000ULL /* migrate "quiesce_timeout_ms" */
/* "max_bandwidth", "postcopy_bandwidth" (bytes/s; 0: no cap): 1 TiB/s */
#define CTL_MIG_BANDWIDTH_MAX (1ULL << 40)

enum ctl_dirty_action {
	CTL_DIRTY_START,
	CTL_DIRTY_HARVEST,
	CTL_DIRTY_STOP,
};

const char *ctl_cmd_name(enum ctl_cmd cmd);
const char *ctl_err_name(enum ctl_err code);

/* Name lookups: enum ctl_cmd / enum guest_req, or -1 when unknown. */
int ctl_cmd_from_name(const char *name);
int ctl_guest_req_from_name(const char *name);
const char *ctl_guest_req_name(int req); /* NULL when out of range */

/*
 * Parse and validate one request line (without the newline). On success
 * returns 0 and fills req (free it with ctl_request_free). On failure
 * returns -EINVAL, fills err, and req->id holds the request's id when it
 * could be read (so the error reply can carry it) - it is a new reference
 * that the caller releases with json_decref (may be NULL).
 */
int ctl_parse_request(const char *line, size_t len, struct ctl_request *req,
		      struct ctl_error *err);
void ctl_request_free(struct ctl_request *req);

/*
 * Build one reply or event line, newline-terminated, malloc'd (caller
 * frees). result/data may be NULL (an empty object is sent); the functions
 * steal the reference to result/data. id may be NULL (sent as null).
 */
char *ctl_reply_ok(json_t *id, json_t *result);
char *ctl_reply_error(json_t *id, const struct ctl_error *err);
char *ctl_event(const char *name, json_t *data);

/* Build a request line for a client (steals args; may be NULL). */
char *ctl_request_line(const char *cmd, json_t *args, int id);

struct dev_status;

/*
 * A device's status (devices/dev.h) as a new object, its fields in order
 * (NULL when out of memory). The control plane never names a device: the
 * key it goes under in `status` is st->section.
 */
json_t *ctl_dev_status(const struct dev_status *st);

#endif /* VMM_CTL_CTL_PROTO_H */
