// SPDX-License-Identifier: MIT
/*
 * ctl_proto.c - parsing and building the control protocol's lines. A request
 * line is loaded with jansson (duplicate keys rejected), checked member by
 * member (only "id", "cmd" and "args" are allowed at the top level), then
 * handed to the command's own argument parser (ctl_args.c) from ctl_cmds[].
 * Every failure fills a struct ctl_error with a code and one specific line of
 * text; replies and events are dumped compact, so one message is always one
 * line. Pure functions over memory: no I/O, no global state, safe on any
 * thread.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/guest_abi.h"
#include "devices/dev.h"
#include "vmm/ctl/ctl_args.h"

struct ctl_cmd_desc {
	const char *name;
	/* Validate req->args (an object) and fill the decoded fields. */
	int (*parse_args)(struct ctl_request *req, struct ctl_error *err);
};

static const struct ctl_cmd_desc ctl_cmds[CTL_CMD_MAX] = {
	[CTL_CMD_STATUS] = {"status", ctl_args_none},
	[CTL_CMD_PAUSE] = {"pause", ctl_args_none},
	[CTL_CMD_RESUME] = {"resume", ctl_args_none},
	[CTL_CMD_STOP] = {"stop", ctl_args_none},
	[CTL_CMD_GUEST_REQUEST] = {"guest-request", ctl_args_guest_request},
	[CTL_CMD_STATS] = {"stats", ctl_args_none},
	[CTL_CMD_DIRTY_LOG] = {"dirty-log", ctl_args_dirty_log},
	[CTL_CMD_TRANSLATE] = {"translate", ctl_args_translate},
	[CTL_CMD_MIGRATE] = {"migrate", ctl_args_migrate},
	[CTL_CMD_MIGRATE_SET] = {"migrate-set", ctl_args_migrate_set},
	[CTL_CMD_SNAPSHOT] = {"snapshot", ctl_args_snapshot},
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
	[GUEST_REQ_TIMER_MARK] = "timer-mark",
};

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

int ctl_err_set(struct ctl_error *err, enum ctl_err code, const char *fmt, ...)
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

const char *ctl_json_type_name(const json_t *j)
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
			    ctl_json_type_name(root));
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
				   ctl_json_type_name(cmd));
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
				   ctl_json_type_name(args));
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

json_t *ctl_dev_status(const struct dev_status *st)
{
	json_t *o = json_object(), *v;

	for (int i = 0; o && i < st->nr; i++) {
		const struct dev_field *f = &st->f[i];

		switch (f->kind) {
		case DEV_FIELD_BOOL:
			v = json_boolean(f->u);
			break;
		case DEV_FIELD_STR:
			v = json_string(f->s ? f->s : "");
			break;
		case DEV_FIELD_MS:
			v = json_real((double)f->u / 1e6);
			break;
		default:
			v = json_integer((json_int_t)f->u);
			break;
		}
		if (json_object_set_new(o, f->key, v)) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}
