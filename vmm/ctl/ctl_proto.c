// SPDX-License-Identifier: MIT
/*
 * ctl_proto.c - parsing and building the control protocol's lines. A request
 * line is loaded with jansson (duplicate keys rejected), checked member by
 * member (only "id", "cmd" and "args" are allowed at the top level), then
 * handed to the command's own argument parser from ctl_cmds[]. Every failure
 * fills a struct ctl_error with a code and one specific line of text; replies
 * and events are dumped compact, so one message is always one line. Pure
 * functions over memory: no I/O, no global state, safe on any thread.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/pt.h"
#include "vmm/ctl/ctl_proto.h"
#include "common/guest_abi.h"

struct ctl_cmd_desc {
	const char *name;
	/* Validate req->args (an object) and fill the decoded fields. */
	int (*parse_args)(struct ctl_request *req, struct ctl_error *err);
};

static int parse_no_args(struct ctl_request *req, struct ctl_error *err);
static int parse_guest_request(struct ctl_request *req, struct ctl_error *err);
static int parse_dirty_log(struct ctl_request *req, struct ctl_error *err);
static int parse_translate(struct ctl_request *req, struct ctl_error *err);
static int parse_migrate(struct ctl_request *req, struct ctl_error *err);

static const struct ctl_cmd_desc ctl_cmds[CTL_CMD_MAX] = {
	[CTL_CMD_STATUS] = {"status", parse_no_args},
	[CTL_CMD_PAUSE] = {"pause", parse_no_args},
	[CTL_CMD_RESUME] = {"resume", parse_no_args},
	[CTL_CMD_STOP] = {"stop", parse_no_args},
	[CTL_CMD_GUEST_REQUEST] = {"guest-request", parse_guest_request},
	[CTL_CMD_STATS] = {"stats", parse_no_args},
	[CTL_CMD_DIRTY_LOG] = {"dirty-log", parse_dirty_log},
	[CTL_CMD_TRANSLATE] = {"translate", parse_translate},
	[CTL_CMD_MIGRATE] = {"migrate", parse_migrate},
};

static const char *const ctl_err_names[] = {
	[CTL_ERR_NONE] = "none",
	[CTL_ERR_BAD_JSON] = "bad-json",
	[CTL_ERR_BAD_REQUEST] = "bad-request",
	[CTL_ERR_UNKNOWN_COMMAND] = "unknown-command",
	[CTL_ERR_BAD_ARGS] = "bad-args",
	[CTL_ERR_BAD_STATE] = "bad-state",
	[CTL_ERR_INTERNAL] = "internal",
	[CTL_ERR_TOO_LONG] = "too-long",
};

static const char *const guest_req_names[] = {
	[GUEST_REQ_VERIFY] = "verify",
	[GUEST_REQ_STOP_WORKLOAD] = "stop-workload",
	[GUEST_REQ_TOUCH] = "touch",
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

const char *ctl_cmd_name(enum ctl_cmd cmd)
{
	if ((unsigned)cmd >= CTL_CMD_MAX)
		return NULL;
	return ctl_cmds[cmd].name;
}

const char *ctl_err_name(enum ctl_err code)
{
	if ((unsigned)code >= ARRAY_SIZE(ctl_err_names))
		return "internal";
	return ctl_err_names[code];
}

int ctl_cmd_from_name(const char *name)
{
	for (int i = 0; i < CTL_CMD_MAX; i++)
		if (strcmp(ctl_cmds[i].name, name) == 0)
			return i;
	return -1;
}

int ctl_guest_req_from_name(const char *name)
{
	for (unsigned i = 0; i < ARRAY_SIZE(guest_req_names); i++)
		if (guest_req_names[i] && strcmp(guest_req_names[i], name) == 0)
			return (int)i;
	return -1;
}

const char *ctl_guest_req_name(int req)
{
	if (req < 0 || (unsigned)req >= ARRAY_SIZE(guest_req_names))
		return NULL;
	return guest_req_names[req];
}

/* Fill err; control characters become '?' so the message stays one line. */
static __attribute__((format(printf, 3, 4))) int
ctl_err_set(struct ctl_error *err, enum ctl_err code, const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	for (char *p = err->message; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return -EINVAL;
}

static const char *json_type_name(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
		return "integer";
	case JSON_REAL:
		return "real";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	case JSON_NULL:
		return "null";
	}
	return "unknown";
}

static int parse_no_args(struct ctl_request *req, struct ctl_error *err)
{
	void *it = json_object_iter(req->args);

	if (it)
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "'%s' takes no arguments, got '%s'",
				   ctl_cmd_name(req->cmd),
				   json_object_iter_key(it));
	return 0;
}

/* The first member of args not in names (NULL-terminated), or NULL. */
static const char *foreign_arg(struct ctl_request *req,
			       const char *const *names)
{
	const char *key;
	json_t *val;

	json_object_foreach(req->args, key, val)
	{
		const char *const *n = names;

		while (*n && strcmp(*n, key) != 0)
			n++;
		if (!*n)
			return key;
	}
	return NULL;
}

/* Refuse any member of args not in names (NULL-terminated). */
static int check_arg_names(struct ctl_request *req, struct ctl_error *err,
			   const char *const *names)
{
	const char *key = foreign_arg(req, names);

	if (key)
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "unknown argument '%s' for '%s'", key,
				   ctl_cmd_name(req->cmd));
	return 0;
}

/* args.name as a string; -EINVAL (err set) when missing or not a string. */
static int get_string_arg(struct ctl_request *req, struct ctl_error *err,
			  const char *name, const char *what, const char **out)
{
	json_t *v = json_object_get(req->args, name);

	if (!v)
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "'%s' needs args.%s (%s)",
				   ctl_cmd_name(req->cmd), name, what);
	if (!json_is_string(v))
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "'%s' must be a string, got %s", name,
				   json_type_name(v));
	*out = json_string_value(v);
	return 0;
}

/*
 * args.name as an unsigned number: a non-negative JSON integer, or a string
 * in decimal or 0x hex (64-bit addresses do not fit a JSON integer).
 */
static int get_u64_arg(struct ctl_request *req, struct ctl_error *err,
		       const char *name, uint64_t *out)
{
	json_t *v = json_object_get(req->args, name);
	const char *s;
	char *end;

	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v))
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "'%s' must be a non-negative integer or a "
				   "string like \"0x1000\", got %s",
				   name, v ? json_type_name(v) : "nothing");
	s = json_string_value(v);
	errno = 0;
	*out = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-')
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "'%s': '%s' is not a number", name, s);
	return 0;
}

static int parse_guest_request(struct ctl_request *req, struct ctl_error *err)
{
	static const char *const names[] = {"request", "arg", NULL};
	const char *r;
	int gr;

	if (check_arg_names(req, err, names) ||
	    get_string_arg(req, err, "request",
			   "verify, stop-workload or touch", &r))
		return -EINVAL;
	gr = ctl_guest_req_from_name(r);
	if (gr < 0)
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "unknown request '%s' (expected verify, "
				   "stop-workload or touch)",
				   r);
	req->guest_req = gr;
	req->req_arg = 0;
	if (json_object_get(req->args, "arg"))
		return get_u64_arg(req, err, "arg", &req->req_arg);
	return 0;
}

static int parse_dirty_log(struct ctl_request *req, struct ctl_error *err)
{
	static const char *const names[] = {"action", NULL};
	static const char *const actions[] = {
		[CTL_DIRTY_START] = "start",
		[CTL_DIRTY_HARVEST] = "harvest",
		[CTL_DIRTY_STOP] = "stop",
	};
	const char *a;

	if (check_arg_names(req, err, names) ||
	    get_string_arg(req, err, "action", "start, harvest or stop", &a))
		return -EINVAL;
	for (unsigned i = 0; i < ARRAY_SIZE(actions); i++) {
		if (strcmp(actions[i], a) == 0) {
			req->dirty_action = (int)i;
			return 0;
		}
	}
	return ctl_err_set(err, CTL_ERR_BAD_ARGS,
			   "unknown action '%s' (expected start, harvest or "
			   "stop)",
			   a);
}

static int parse_translate(struct ctl_request *req, struct ctl_error *err)
{
	static const char *const names[] = {"cpu", "gva", NULL};
	uint64_t cpu;

	if (check_arg_names(req, err, names) ||
	    get_u64_arg(req, err, "cpu", &cpu) ||
	    get_u64_arg(req, err, "gva", &req->gva))
		return -EINVAL;
	if (cpu > 4096)
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "'cpu' %llu is out of range",
				   (unsigned long long)cpu);
	req->cpu = (int)cpu;
	return 0;
}

/* args.name as a boolean; absent means false. */
static int get_bool_arg(struct ctl_request *req, struct ctl_error *err,
			const char *name, int *out)
{
	json_t *v = json_object_get(req->args, name);

	*out = 0;
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "'%s' must be a boolean, got %s", name,
				   json_type_name(v));
	*out = json_is_true(v);
	return 0;
}

/* args.name, when present, as a number in min..max; *out untouched if not. */
static int get_range_arg(struct ctl_request *req, struct ctl_error *err,
			 const char *name, uint64_t min, uint64_t max,
			 uint64_t *out)
{
	uint64_t v;

	if (!json_object_get(req->args, name))
		return 0;
	if (get_u64_arg(req, err, name, &v))
		return -EINVAL;
	if (v < min || v > max)
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "'%s' %llu is out of range (%llu..%llu)",
				   name, (unsigned long long)v,
				   (unsigned long long)min,
				   (unsigned long long)max);
	*out = v;
	return 0;
}

/* Refuse any member of args not in names: msg says what may go along. */
static int only_args(struct ctl_request *req, struct ctl_error *err,
		     const char *const *names, const char *msg)
{
	const char *key = foreign_arg(req, names);

	if (key)
		return ctl_err_set(err, CTL_ERR_BAD_ARGS, "%s, got '%s'", msg,
				   key);
	return 0;
}

/*
 * An optional string argument that parse (migration/names.c) turns into
 * an enum value: into *out (left alone when absent). expected lists the
 * names for messages.
 */
static int get_enum_arg(struct ctl_request *req, struct ctl_error *err,
			const char *key, int (*parse)(const char *name),
			const char *expected, int *out)
{
	const char *v;
	int i;

	if (!json_object_get(req->args, key))
		return 0;
	if (get_string_arg(req, err, key, expected, &v))
		return -EINVAL;
	i = parse(v);
	if (i >= 0) {
		*out = i;
		return 0;
	}
	return ctl_err_set(err, CTL_ERR_BAD_ARGS,
			   "unknown %s '%s' (expected %s)", key, v, expected);
}

static int parse_migrate_mode(struct ctl_request *req, struct ctl_error *err)
{
	int mode = MIG_MODE_HYBRID;

	if (get_enum_arg(req, err, "mode", mig_mode_parse,
			 "hybrid, precopy or postcopy", &mode))
		return -EINVAL;
	req->mig.mode = mode;
	return 0;
}

/* "push_order": the post-copy push order; not with mode precopy. */
static int parse_migrate_push(struct ctl_request *req, struct ctl_error *err)
{
	int order = MIG_PUSH_ACCESSED;

	if (get_enum_arg(req, err, "push_order", mig_push_order_parse,
			 "accessed, faults or linear", &order))
		return -EINVAL;
	req->mig.push_order = order;
	if (req->mig.mode == MIG_MODE_PRECOPY &&
	    json_object_get(req->args, "push_order"))
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "'push_order' is not used with mode "
				   "precopy (it has no post-copy)");
	return 0;
}

/* The pre-copy budgets: in range, and only when there is a pre-copy. */
static int parse_migrate_budgets(struct ctl_request *req, struct ctl_error *err)
{
	static const char *const names[] = {"precopy_budget_ms",
					    "precopy_budget_bytes"};
	struct ctl_migrate *m = &req->mig;

	for (unsigned i = 0; i < ARRAY_SIZE(names); i++)
		if (m->mode == MIG_MODE_POSTCOPY &&
		    json_object_get(req->args, names[i]))
			return ctl_err_set(err, CTL_ERR_BAD_ARGS,
					   "'%s' is not used with mode "
					   "postcopy (it has no pre-copy)",
					   names[i]);
	if (get_range_arg(req, err, "precopy_budget_ms", 1,
			  CTL_MIG_BUDGET_MS_MAX, &m->budget_ms) ||
	    get_range_arg(req, err, "precopy_budget_bytes",
			  CTL_MIG_BUDGET_BYTES_MIN, CTL_MIG_BUDGET_BYTES_MAX,
			  &m->budget_bytes))
		return -EINVAL;
	return 0;
}

/* A new migration: "to" and the tuning arguments. */
static int parse_migrate_start(struct ctl_request *req, struct ctl_error *err)
{
	struct ctl_migrate *m = &req->mig;

	if (get_string_arg(req, err, "to", "tcp:HOST:PORT", &m->to) ||
	    parse_migrate_mode(req, err) || parse_migrate_push(req, err) ||
	    get_range_arg(req, err, "downtime_limit_ms", 0, 3600000,
			  &m->downtime_limit_ms) ||
	    get_range_arg(req, err, "max_rounds", 0, 100000, &m->max_rounds) ||
	    get_range_arg(req, err, "quiesce_timeout_ms", 1,
			  CTL_MIG_QUIESCE_MS_MAX, &m->quiesce_timeout_ms))
		return -EINVAL;
	return parse_migrate_budgets(req, err);
}

/* "resume": true, with an optional new "to" and nothing else. */
static int parse_migrate_resume(struct ctl_request *req, struct ctl_error *err)
{
	static const char *const names[] = {"resume", "to", NULL};

	if (only_args(req, err, names, "'resume' takes only 'to'"))
		return -EINVAL;
	if (json_object_get(req->args, "to"))
		return get_string_arg(req, err, "to", "tcp:HOST:PORT",
				      &req->mig.to);
	return 0;
}

/* "abort": true loses the guest's run on the destination: confirm it. */
static int parse_migrate_abort(struct ctl_request *req, struct ctl_error *err,
			       int confirm)
{
	static const char *const names[] = {"abort", "confirm", NULL};

	if (only_args(req, err, names, "'abort' takes only 'confirm'"))
		return -EINVAL;
	if (!confirm)
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "abort gives up the post-copy migration: "
				   "the destination lacks pages and the "
				   "guest's run there is lost; repeat with "
				   "confirm");
	return 0;
}

static int parse_migrate(struct ctl_request *req, struct ctl_error *err)
{
	static const char *const names[] = {"to",
					    "mode",
					    "downtime_limit_ms",
					    "max_rounds",
					    "precopy_budget_ms",
					    "precopy_budget_bytes",
					    "quiesce_timeout_ms",
					    "push_order",
					    "verify",
					    "cancel",
					    "resume",
					    "abort",
					    "confirm",
					    NULL};
	static const char *const cancel_names[] = {"cancel", NULL};
	struct ctl_migrate *m = &req->mig;
	int confirm;

	memset(m, 0, sizeof(*m));
	if (check_arg_names(req, err, names) ||
	    get_bool_arg(req, err, "cancel", &m->cancel) ||
	    get_bool_arg(req, err, "resume", &m->resume) ||
	    get_bool_arg(req, err, "abort", &m->abort) ||
	    get_bool_arg(req, err, "confirm", &confirm) ||
	    get_bool_arg(req, err, "verify", &m->verify))
		return -EINVAL;
	if (json_object_get(req->args, "confirm") && !m->abort)
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "'confirm' goes with 'abort'");
	if (m->cancel)
		return only_args(req, err, cancel_names,
				 "'cancel' takes no other arguments");
	if (m->resume)
		return parse_migrate_resume(req, err);
	if (m->abort)
		return parse_migrate_abort(req, err, confirm);
	return parse_migrate_start(req, err);
}

static json_t *ctl_load(const char *line, size_t len, struct ctl_error *err)
{
	json_error_t jerr;
	const char *nul;
	json_t *root;

	nul = memchr(line, '\0', len);
	if (nul) {
		ctl_err_set(err, CTL_ERR_BAD_JSON,
			    "NUL byte in request (column %zu)",
			    (size_t)(nul - line) + 1);
		return NULL;
	}
	root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		ctl_err_set(err, CTL_ERR_BAD_JSON, "%s (line %d, column %d)",
			    jerr.text, jerr.line, jerr.column);
		return NULL;
	}
	if (!json_is_object(root)) {
		ctl_err_set(err, CTL_ERR_BAD_JSON,
			    "request must be a JSON object, got %s",
			    json_type_name(root));
		json_decref(root);
		return NULL;
	}
	return root;
}

/* Check the top-level members of root and fill req->cmd and req->args. */
static int ctl_parse_envelope(json_t *root, struct ctl_request *req,
			      struct ctl_error *err)
{
	const char *key, *name;
	json_t *val, *cmd, *args;
	int c;

	json_object_foreach(root, key, val)
	{
		if (strcmp(key, "id") && strcmp(key, "cmd") &&
		    strcmp(key, "args"))
			return ctl_err_set(err, CTL_ERR_BAD_REQUEST,
					   "unknown member '%s' (expected id, "
					   "cmd, args)",
					   key);
	}
	cmd = json_object_get(root, "cmd");
	if (!cmd)
		return ctl_err_set(err, CTL_ERR_BAD_REQUEST,
				   "missing member 'cmd'");
	if (!json_is_string(cmd))
		return ctl_err_set(err, CTL_ERR_BAD_REQUEST,
				   "'cmd' must be a string, got %s",
				   json_type_name(cmd));
	name = json_string_value(cmd);
	c = ctl_cmd_from_name(name);
	if (c < 0)
		return ctl_err_set(err, CTL_ERR_UNKNOWN_COMMAND, "'%s'", name);
	req->cmd = c;

	args = json_object_get(root, "args");
	if (!args) {
		/* Absent args read as {}, owned by root like the rest. */
		if (json_object_set_new(root, "args", json_object()) < 0)
			return ctl_err_set(err, CTL_ERR_INTERNAL,
					   "out of memory");
		args = json_object_get(root, "args");
	} else if (!json_is_object(args)) {
		return ctl_err_set(err, CTL_ERR_BAD_REQUEST,
				   "'args' must be an object, got %s",
				   json_type_name(args));
	}
	req->args = args;
	return 0;
}

int ctl_parse_request(const char *line, size_t len, struct ctl_request *req,
		      struct ctl_error *err)
{
	json_t *root;
	int ret;

	memset(req, 0, sizeof(*req));
	memset(err, 0, sizeof(*err));
	root = ctl_load(line, len, err);
	if (!root)
		return -EINVAL;
	req->root = root;
	req->id = json_object_get(root, "id");

	ret = ctl_parse_envelope(root, req, err);
	if (ret == 0)
		ret = ctl_cmds[req->cmd].parse_args(req, err);
	if (ret < 0) {
		/* The error reply needs the id after root is gone. */
		json_incref(req->id);
		json_decref(root);
		req->root = NULL;
		req->args = NULL;
		return -EINVAL;
	}
	return 0;
}

void ctl_request_free(struct ctl_request *req)
{
	json_decref(req->root);
	req->root = NULL;
	req->id = NULL;
	req->args = NULL;
}

/* Dump obj compact plus '\n' into a malloc'd string; releases obj. */
static char *ctl_dump_line(json_t *obj)
{
	size_t n;
	char *s;

	if (!obj)
		return NULL;
	n = json_dumpb(obj, NULL, 0, JSON_COMPACT);
	s = n ? malloc(n + 2) : NULL;
	if (s && json_dumpb(obj, s, n, JSON_COMPACT) == n) {
		s[n] = '\n';
		s[n + 1] = '\0';
	} else {
		free(s);
		s = NULL;
	}
	json_decref(obj);
	return s;
}

/* Build {"id": id, "ok": ok, key: val}; borrows id, steals val. */
static char *ctl_reply(json_t *id, int ok, const char *key, json_t *val)
{
	return ctl_dump_line(
		json_pack("{s:O?, s:b, s:o}", "id", id, "ok", ok, key, val));
}

char *ctl_reply_ok(json_t *id, json_t *result)
{
	return ctl_reply(id, 1, "result", result ? result : json_object());
}

char *ctl_reply_error(json_t *id, const struct ctl_error *err)
{
	json_t *e = json_pack("{s:s, s:s}", "code", ctl_err_name(err->code),
			      "message", err->message);

	return ctl_reply(id, 0, "error", e);
}

char *ctl_event(const char *name, json_t *data)
{
	return ctl_dump_line(json_pack("{s:s, s:o}", "event", name, "data",
				       data ? data : json_object()));
}

char *ctl_request_line(const char *cmd, json_t *args, int id)
{
	return ctl_dump_line(json_pack("{s:i, s:s, s:o*}", "id", id, "cmd", cmd,
				       "args", args));
}

json_t *ctl_pt_status(const struct pt_stats *st, uint32_t rate_pps)
{
	json_t *o;

	if (!st)
		return json_pack("{s:I, s:b}", "rate_pps", (json_int_t)rate_pps,
				 "ram_arriving", 1);
	o = json_pack("{s:I, s:b, s:s, s:f}", "rate_pps", (json_int_t)rate_pps,
		      "enabled", st->enabled, "quiesce_state",
		      pt_quiesce_state_name(st->qstate), "quiesce_ms",
		      (double)st->quiesce_ns / 1e6);
	if (!o)
		return NULL;
#define SET(k, v) json_object_set_new(o, k, json_integer((json_int_t)(v)))
	SET("ring_size", st->ring_size);
	SET("pinned", st->pinned);
	SET("queued", st->queued);
	SET("next_seq", st->next_seq);
	SET("delivered", st->delivered);
	SET("returned", st->returned);
	SET("irqs", st->irqs);
	SET("doorbells", st->doorbells);
	SET("full_waits", st->full_waits);
	SET("quiesces", st->quiesces);
	SET("quiesce_acks", st->quiesce_acks);
	SET("resumes", st->resumes);
	SET("bad_accesses", st->bad_accesses);
#undef SET
	return o;
}
