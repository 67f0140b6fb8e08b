// SPDX-License-Identifier: MIT
/*
 * test_ctl_proto.c - unit tests for the control protocol (vmm/ctl_proto.c)
 * and the control socket (vmm/control.c). The first half feeds request lines
 * to ctl_parse_request - every command, ids of every JSON type, and every way
 * a line can be wrong - and checks that the builders emit single parseable
 * lines. The second half runs control_start on a libuv loop in a thread with
 * a trivial handler and talks to it with control_call and with raw sockets:
 * replies, framing, events, over-long lines, a second server refused, stale
 * and foreign files at the path, the socket's mode, and control_stop.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "devices/dev.h"
#include "devices/pt.h"
#include "vmm/ctl/control.h"
#include "vmm/ctl/ctl_proto.h"
#include "common/guest_abi.h"

/* line must be one '\n'-terminated JSON object; returns it parsed. */
static json_t *load_line(char *line)
{
	size_t n;
	json_t *j;

	cr_assert_not_null(line);
	n = strlen(line);
	cr_assert_gt(n, 1);
	cr_assert_eq(line[n - 1], '\n', "no newline: %s", line);
	cr_assert_null(memchr(line, '\n', n - 1), "two lines: %s", line);
	j = json_loadb(line, n - 1, JSON_REJECT_DUPLICATES, NULL);
	cr_assert(json_is_object(j), "not an object: %s", line);
	free(line);
	return j;
}

/* ---- parsing ----------------------------------------------------------- */

static struct ctl_request req;
static struct ctl_error err;

static int parse(const char *line)
{
	return ctl_parse_request(line, strlen(line), &req, &err);
}

/* Parse a valid line and check its command; the caller frees req. */
static void expect_ok(const char *line, enum ctl_cmd cmd)
{
	int r = parse(line);

	cr_assert_eq(r, 0, "%s: %s", line, err.message);
	cr_assert_eq(req.cmd, cmd, "%s", line);
	cr_assert(json_is_object(req.args), "%s", line);
	cr_assert_not_null(req.root);
}

/* Parse a bad line: the code and (a part of) the message must match. */
static void expect_err_len(const char *line, size_t len, enum ctl_err code,
			   const char *msg)
{
	int r = ctl_parse_request(line, len, &req, &err);

	cr_assert_eq(r, -EINVAL, "accepted: %.*s", (int)len, line);
	cr_assert_eq(err.code, code, "%.*s: got %s (%s)", (int)len, line,
		     ctl_err_name(err.code), err.message);
	cr_assert_not_null(strstr(err.message, msg), "%.*s: message '%s'",
			   (int)len, line, err.message);
	for (const char *p = err.message; *p; p++)
		cr_assert((unsigned char)*p >= 0x20, "control char in '%s'",
			  err.message);
	cr_assert_null(req.root);
	json_decref(req.id);
	req.id = NULL;
}

static void expect_err(const char *line, enum ctl_err code, const char *msg)
{
	expect_err_len(line, strlen(line), code, msg);
}

Test(ctl_parse, every_command_without_id)
{
	static const char *const names[] = {"status", "pause", "resume",
					    "stop"};

	for (int i = 0; i < 4; i++) {
		char line[128];

		snprintf(line, sizeof(line), "{\"cmd\": \"%s\"}", names[i]);
		expect_ok(line, (enum ctl_cmd)i);
		cr_assert_null(req.id);
		cr_assert_eq(json_object_size(req.args), 0);
		ctl_request_free(&req);

		snprintf(line, sizeof(line),
			 "{\"id\": %d, \"cmd\": \"%s\", \"args\": {}}", 10 + i,
			 names[i]);
		expect_ok(line, (enum ctl_cmd)i);
		cr_assert_eq(json_integer_value(req.id), 10 + i);
		ctl_request_free(&req);
	}
	expect_ok(
		"{\"cmd\":\"guest-request\",\"args\":{\"request\":\"verify\"}}",
		CTL_CMD_GUEST_REQUEST);
	cr_assert_null(req.id);
	cr_assert_eq(req.guest_req, GUEST_REQ_VERIFY);
	ctl_request_free(&req);
}

Test(ctl_parse, ids_of_every_type_are_kept)
{
	static const char *const ids[] = {"1",
					  "-7",
					  "4.5",
					  "\"abc\"",
					  "null",
					  "true",
					  "false",
					  "[1,2]",
					  "{\"a\":[{}]}",
					  "\"\"",
					  "18446744073709"};

	for (unsigned i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		char line[256];
		json_t *reply,
			*want = json_loads(ids[i], JSON_DECODE_ANY, NULL);

		cr_assert_not_null(want);
		snprintf(line, sizeof(line), "{\"id\":%s,\"cmd\":\"status\"}",
			 ids[i]);
		expect_ok(line, CTL_CMD_STATUS);
		cr_assert_not_null(req.id, "%s", line);
		cr_assert(json_equal(req.id, want), "%s", line);
		/* ...and echoed by the reply built from the request. */
		reply = load_line(ctl_reply_ok(req.id, NULL));
		cr_assert(json_equal(json_object_get(reply, "id"), want), "%s",
			  line);
		json_decref(reply);
		ctl_request_free(&req);
		json_decref(want);
	}
}

Test(ctl_parse, members_in_any_order_and_empty_args)
{
	expect_ok("{\"args\":{},\"cmd\":\"pause\",\"id\":3}", CTL_CMD_PAUSE);
	cr_assert_eq(json_integer_value(req.id), 3);
	ctl_request_free(&req);
	expect_ok("  {\"cmd\":\"resume\"}  ", CTL_CMD_RESUME);
	ctl_request_free(&req);
}

Test(ctl_parse, guest_request_values)
{
	expect_ok("{\"id\":\"g\",\"cmd\":\"guest-request\","
		  "\"args\":{\"request\":\"stop-workload\"}}",
		  CTL_CMD_GUEST_REQUEST);
	cr_assert_eq(req.guest_req, GUEST_REQ_STOP_WORKLOAD);
	cr_assert_str_eq(json_string_value(req.id), "g");
	ctl_request_free(&req);
}

Test(ctl_parse, bad_json)
{
	expect_err("hello", CTL_ERR_BAD_JSON,
		   "'[' or '{' expected near 'hello' (line 1, column 5)");
	cr_assert_str_eq(err.message,
			 "'[' or '{' expected near 'hello' (line 1, column 5)");
	expect_err("", CTL_ERR_BAD_JSON, "expected near end of file");
	expect_err("{\"cmd\":\"status\"", CTL_ERR_BAD_JSON, "(line 1,");
	expect_err("{\"cmd\":", CTL_ERR_BAD_JSON, "unexpected token");
	expect_err("{\"cmd\":\"status\"} x", CTL_ERR_BAD_JSON,
		   "end of file expected");
	expect_err("{\"cmd\":\"status\",}", CTL_ERR_BAD_JSON, "(line 1,");
	expect_err("{cmd:status}", CTL_ERR_BAD_JSON, "(line 1,");
	expect_err("\xff\xfe", CTL_ERR_BAD_JSON, "unable to decode byte");
}

Test(ctl_parse, not_an_object)
{
	expect_err("[1,2]", CTL_ERR_BAD_JSON,
		   "request must be a JSON object, got array");
	expect_err("[]", CTL_ERR_BAD_JSON, "got array");
	/* Scalars never reach the type check: jansson wants '[' or '{'. */
	expect_err("42", CTL_ERR_BAD_JSON, "'[' or '{' expected");
	expect_err("\"status\"", CTL_ERR_BAD_JSON, "'[' or '{' expected");
}

Test(ctl_parse, nul_bytes)
{
	static const char line[] = "{\"cmd\":\"sta\0tus\"}";

	expect_err_len(line, sizeof(line) - 1, CTL_ERR_BAD_JSON,
		       "NUL byte in request (column 12)");
	expect_err_len("{\"cmd\":\"status\"}\0", 17, CTL_ERR_BAD_JSON,
		       "NUL byte");
	expect_err("{\"cmd\":\"a\\u0000b\"}", CTL_ERR_BAD_JSON,
		   "\\u0000 is not allowed");
}

Test(ctl_parse, duplicate_keys)
{
	expect_err("{\"cmd\":\"status\",\"cmd\":\"stop\"}", CTL_ERR_BAD_JSON,
		   "duplicate object key");
	expect_err(
		"{\"cmd\":\"guest-request\",\"args\":{\"request\":\"verify\","
		"\"request\":\"verify\"}}",
		CTL_ERR_BAD_JSON, "duplicate object key");
}

Test(ctl_parse, missing_or_ill_typed_cmd)
{
	expect_err("{}", CTL_ERR_BAD_REQUEST, "missing member 'cmd'");
	expect_err("{\"id\":1}", CTL_ERR_BAD_REQUEST, "missing member 'cmd'");
	expect_err("{\"cmd\":5}", CTL_ERR_BAD_REQUEST,
		   "'cmd' must be a string, got integer");
	cr_assert_str_eq(err.message, "'cmd' must be a string, got integer");
	expect_err("{\"cmd\":1.5}", CTL_ERR_BAD_REQUEST, "got real");
	expect_err("{\"cmd\":null}", CTL_ERR_BAD_REQUEST,
		   "'cmd' must be a string, got null");
	expect_err("{\"cmd\":{\"a\":1}}", CTL_ERR_BAD_REQUEST,
		   "'cmd' must be a string, got object");
	expect_err("{\"cmd\":[\"status\"]}", CTL_ERR_BAD_REQUEST, "got array");
	expect_err("{\"cmd\":true}", CTL_ERR_BAD_REQUEST, "got boolean");
}

Test(ctl_parse, unknown_command)
{
	expect_err("{\"cmd\":\"frobnicate\"}", CTL_ERR_UNKNOWN_COMMAND,
		   "'frobnicate'");
	cr_assert_str_eq(err.message, "'frobnicate'");
	expect_err("{\"cmd\":\"\"}", CTL_ERR_UNKNOWN_COMMAND, "''");
	expect_err("{\"cmd\":\"STATUS\"}", CTL_ERR_UNKNOWN_COMMAND, "STATUS");
	/* Control characters in a name are not echoed raw. */
	expect_err("{\"cmd\":\"a\\nb\\tc\"}", CTL_ERR_UNKNOWN_COMMAND,
		   "'a?b?c'");
}

Test(ctl_parse, error_keeps_the_id)
{
	int r = parse("{\"id\":{\"k\":7},\"cmd\":\"frobnicate\"}");
	json_t *want = json_pack("{s:i}", "k", 7);

	cr_assert_eq(r, -EINVAL);
	cr_assert_not_null(req.id);
	cr_assert(json_equal(req.id, want));
	cr_assert_eq(req.id->refcount, 1, "the id is the caller's now");
	json_decref(req.id);
	json_decref(want);

	r = parse("{\"id\":\"z\",\"cmd\":\"status\",\"args\":{\"x\":1}}");
	cr_assert_eq(r, -EINVAL);
	cr_assert_str_eq(json_string_value(req.id), "z");
	json_decref(req.id);

	expect_err("[1]", CTL_ERR_BAD_JSON, "got array");
	cr_assert_null(req.id);
}

Test(ctl_parse, args_wrong_type)
{
	expect_err("{\"cmd\":\"status\",\"args\":[]}", CTL_ERR_BAD_REQUEST,
		   "'args' must be an object, got array");
	expect_err("{\"cmd\":\"status\",\"args\":null}", CTL_ERR_BAD_REQUEST,
		   "got null");
	expect_err("{\"cmd\":\"guest-request\",\"args\":\"verify\"}",
		   CTL_ERR_BAD_REQUEST, "got string");
	expect_err("{\"cmd\":\"stop\",\"args\":0}", CTL_ERR_BAD_REQUEST,
		   "got integer");
}

Test(ctl_parse, args_for_no_arg_commands)
{
	static const char *const names[] = {"status", "pause", "resume",
					    "stop"};

	for (int i = 0; i < 4; i++) {
		char line[128], msg[128];

		snprintf(line, sizeof(line),
			 "{\"cmd\":\"%s\",\"args\":{\"force\":true}}",
			 names[i]);
		snprintf(msg, sizeof(msg),
			 "'%s' takes no arguments, got 'force'", names[i]);
		expect_err(line, CTL_ERR_BAD_ARGS, msg);
	}
}

Test(ctl_parse, guest_request_bad_args)
{
	expect_err("{\"cmd\":\"guest-request\"}", CTL_ERR_BAD_ARGS,
		   "needs args.request");
	expect_err("{\"cmd\":\"guest-request\",\"args\":{}}", CTL_ERR_BAD_ARGS,
		   "needs args.request");
	expect_err("{\"cmd\":\"guest-request\",\"args\":{\"request\":1}}",
		   CTL_ERR_BAD_ARGS, "'request' must be a string, got integer");
	expect_err("{\"cmd\":\"guest-request\",\"args\":{\"request\":null}}",
		   CTL_ERR_BAD_ARGS, "got null");
	expect_err("{\"cmd\":\"guest-request\",\"args\":{\"request\":\"x\"}}",
		   CTL_ERR_BAD_ARGS, "unknown request 'x'");
	expect_err("{\"cmd\":\"guest-request\",\"args\":{\"request\":\"\"}}",
		   CTL_ERR_BAD_ARGS, "unknown request ''");
	expect_err(
		"{\"cmd\":\"guest-request\",\"args\":{\"request\":\"verify\","
		"\"now\":1}}",
		CTL_ERR_BAD_ARGS, "unknown argument 'now'");
}

Test(ctl_parse, unknown_top_level_member)
{
	expect_err("{\"cmd\":\"status\",\"extra\":1}", CTL_ERR_BAD_REQUEST,
		   "unknown member 'extra'");
	expect_err("{\"command\":\"status\"}", CTL_ERR_BAD_REQUEST,
		   "unknown member 'command'");
	expect_err("{\"cmd\":\"status\",\"ID\":1}", CTL_ERR_BAD_REQUEST,
		   "unknown member 'ID'");
}

Test(ctl_parse, names)
{
	for (int i = 0; i < CTL_CMD_MAX; i++) {
		cr_assert_not_null(ctl_cmd_name(i));
		cr_assert_eq(ctl_cmd_from_name(ctl_cmd_name(i)), i);
	}
	cr_assert_null(ctl_cmd_name(CTL_CMD_MAX));
	cr_assert_eq(ctl_cmd_from_name("nope"), -1);
	cr_assert_str_eq(ctl_err_name(CTL_ERR_BAD_JSON), "bad-json");
	cr_assert_str_eq(ctl_err_name(CTL_ERR_BAD_REQUEST), "bad-request");
	cr_assert_str_eq(ctl_err_name(CTL_ERR_UNKNOWN_COMMAND),
			 "unknown-command");
	cr_assert_str_eq(ctl_err_name(CTL_ERR_BAD_ARGS), "bad-args");
	cr_assert_str_eq(ctl_err_name(CTL_ERR_BAD_STATE), "bad-state");
	cr_assert_str_eq(ctl_err_name(CTL_ERR_INTERNAL), "internal");
	cr_assert_str_eq(ctl_err_name(CTL_ERR_TOO_LONG), "too-long");
	cr_assert_eq(ctl_guest_req_from_name("verify"), GUEST_REQ_VERIFY);
	cr_assert_eq(ctl_guest_req_from_name("stop-workload"),
		     GUEST_REQ_STOP_WORKLOAD);
	cr_assert_eq(ctl_guest_req_from_name("none"), -1);
	cr_assert_str_eq(ctl_guest_req_name(GUEST_REQ_VERIFY), "verify");
}

/* ---- building ---------------------------------------------------------- */

Test(ctl_build, reply_ok)
{
	json_t *id = json_string("req-1");
	json_t *r = load_line(ctl_reply_ok(
		id, json_pack("{s:s, s:i}", "text", "two\nlines", "n", 5)));

	cr_assert_str_eq(json_string_value(json_object_get(r, "id")), "req-1");
	cr_assert(json_is_true(json_object_get(r, "ok")));
	cr_assert_str_eq(json_string_value(json_object_get(
				 json_object_get(r, "result"), "text")),
			 "two\nlines");
	cr_assert_eq(id->refcount, 1, "id is borrowed");
	json_decref(r);
	json_decref(id);

	r = load_line(ctl_reply_ok(NULL, NULL));
	cr_assert(json_is_null(json_object_get(r, "id")));
	cr_assert(json_is_object(json_object_get(r, "result")));
	cr_assert_eq(json_object_size(json_object_get(r, "result")), 0);
	json_decref(r);
}

Test(ctl_build, reply_ok_is_compact)
{
	char *s = ctl_reply_ok(NULL, json_pack("{s:[i,i]}", "a", 1, 2));

	cr_assert_str_eq(
		s, "{\"id\":null,\"ok\":true,\"result\":{\"a\":[1,2]}}\n");
	free(s);
}

Test(ctl_build, reply_error)
{
	struct ctl_error e = {.code = CTL_ERR_BAD_STATE};
	json_t *id = json_integer(9), *r, *er;

	snprintf(e.message, sizeof(e.message), "the VM is already paused");
	r = load_line(ctl_reply_error(id, &e));
	er = json_object_get(r, "error");
	cr_assert_eq(json_integer_value(json_object_get(r, "id")), 9);
	cr_assert(json_is_false(json_object_get(r, "ok")));
	cr_assert_str_eq(json_string_value(json_object_get(er, "code")),
			 "bad-state");
	cr_assert_str_eq(json_string_value(json_object_get(er, "message")),
			 "the VM is already paused");
	cr_assert_null(json_object_get(r, "result"));
	json_decref(r);
	json_decref(id);
}

Test(ctl_build, event)
{
	json_t *r = load_line(
		ctl_event("shutdown", json_pack("{s:s, s:i}", "reason",
						"guest-exit", "exit_code", 3)));

	cr_assert_str_eq(json_string_value(json_object_get(r, "event")),
			 "shutdown");
	cr_assert_eq(json_integer_value(json_object_get(
			     json_object_get(r, "data"), "exit_code")),
		     3);
	cr_assert_null(json_object_get(r, "ok"), "events are not replies");
	json_decref(r);

	r = load_line(ctl_event("marker", NULL));
	cr_assert(json_is_object(json_object_get(r, "data")));
	json_decref(r);
}

Test(ctl_build, request_line_round_trips)
{
	for (int i = 0; i < CTL_CMD_MAX; i++) {
		json_t *args = NULL;
		char *line;
		size_t n;

		if (i == CTL_CMD_GUEST_REQUEST)
			args = json_pack("{s:s}", "request", "stop-workload");
		if (i == CTL_CMD_DIRTY_LOG)
			args = json_pack("{s:s}", "action", "harvest");
		if (i == CTL_CMD_MIGRATE)
			args = json_pack("{s:s, s:i}", "to",
					 "tcp:127.0.0.1:7100",
					 "downtime_limit_ms", 5);
		if (i == CTL_CMD_TRANSLATE)
			args = json_pack("{s:i, s:s}", "cpu", 1, "gva",
					 "0xffff800000001000");
		if (i == CTL_CMD_MIGRATE_SET)
			args = json_pack("{s:i}", "max_bandwidth", 1 << 20);
		if (i == CTL_CMD_SNAPSHOT)
			args = json_pack("{s:s, s:b}", "to", "/tmp/s", "live",
					 1);
		line = ctl_request_line(ctl_cmd_name(i), args, 42 + i);
		cr_assert_not_null(line);
		n = strlen(line);
		cr_assert_eq(line[n - 1], '\n');
		cr_assert_null(memchr(line, '\n', n - 1));
		cr_assert_eq(ctl_parse_request(line, n - 1, &req, &err), 0,
			     "%s: %s", line, err.message);
		cr_assert_eq(req.cmd, (enum ctl_cmd)i);
		cr_assert_eq(json_integer_value(req.id), 42 + i);
		if (i == CTL_CMD_GUEST_REQUEST)
			cr_assert_eq(req.guest_req, GUEST_REQ_STOP_WORKLOAD);
		ctl_request_free(&req);
		free(line);
	}
}

/* The pt device's status as the control plane renders it. */
static json_t *pt_json(const struct pt_stats *st, uint32_t rate_pps)
{
	struct dev_status ds = {0};

	pt_status_fill(st, rate_pps, &ds);
	cr_assert_str_eq(ds.section, "pt");
	return ctl_dev_status(&ds);
}

/* status "pt": every field of struct pt_stats, by name, exactly. */
Test(ctl_build, pt_status)
{
	const struct pt_stats st = {
		.enabled = true,
		.qstate = PT_Q_ACKED,
		.ring_size = 64,
		.pinned = 3,
		.queued = 32,
		.next_seq = 5000000001ULL,
		.delivered = 4999999968ULL,
		.returned = 7,
		.irqs = 11,
		.doorbells = 12,
		.full_waits = 13,
		.quiesces = 2,
		.quiesce_acks = 1,
		.quiesce_ns = 1500000,
		.resumes = 1,
		.bad_accesses = 4,
	};
	json_t *o = pt_json(&st, 2000), *want;
	char *line;

	cr_assert_not_null(o);
	want = json_pack(
		"{s:I, s:b, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
		" s:I, s:I, s:I, s:I, s:f, s:I, s:I}",
		"rate_pps", (json_int_t)2000, "enabled", 1, "quiesce_state",
		"acked", "ring_size", (json_int_t)64, "pinned", (json_int_t)3,
		"queued", (json_int_t)32, "next_seq", (json_int_t)5000000001LL,
		"delivered", (json_int_t)4999999968LL, "returned",
		(json_int_t)7, "irqs", (json_int_t)11, "doorbells",
		(json_int_t)12, "full_waits", (json_int_t)13, "quiesces",
		(json_int_t)2, "quiesce_acks", (json_int_t)1, "quiesce_ms", 1.5,
		"resumes", (json_int_t)1, "bad_accesses", (json_int_t)4);
	line = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	cr_assert(json_equal(o, want), "%s", line);
	free(line);
	json_decref(want);

	/* It goes into a reply line like any result. */
	want = load_line(ctl_reply_ok(NULL, json_pack("{s:o}", "pt", o)));
	cr_assert_str_eq(
		json_string_value(json_object_get(
			json_object_get(json_object_get(want, "result"), "pt"),
			"quiesce_state")),
		"acked");
	json_decref(want);
}

Test(ctl_build, pt_status_names_every_quiesce_state)
{
	static const char *const names[] = {"running", "requested", "acked",
					    "resuming"};
	struct pt_stats st = {0};

	for (int q = PT_Q_RUNNING; q <= PT_Q_RESUMING; q++) {
		json_t *o;

		st.qstate = (enum pt_quiesce_state)q;
		o = pt_json(&st, 1);
		cr_assert_str_eq(
			json_string_value(json_object_get(o, "quiesce_state")),
			names[q]);
		cr_assert(json_is_false(json_object_get(o, "enabled")));
		cr_assert_float_eq(
			json_real_value(json_object_get(o, "quiesce_ms")), 0.0,
			1e-12);
		json_decref(o);
	}
}

/* While post-copy RAM arrives the counters are not read: rate only. */
Test(ctl_build, pt_status_while_ram_arrives)
{
	json_t *o = pt_json(NULL, 1000);
	json_t *want = json_pack("{s:I, s:b}", "rate_pps", (json_int_t)1000,
				 "ram_arriving", 1);

	cr_assert(json_equal(o, want));
	json_decref(want);
	json_decref(o);
}

/* ---- stats, dirty-log, translate, guest-request args ------------------ */

static void parse_ok(const char *line)
{
	cr_assert_eq(ctl_parse_request(line, strlen(line), &req, &err), 0,
		     "%s: %s", line, err.message);
}

static void parse_bad(const char *line, enum ctl_err code, const char *msg)
{
	cr_assert_eq(ctl_parse_request(line, strlen(line), &req, &err), -EINVAL,
		     "%s parsed", line);
	cr_assert_eq(err.code, code, "%s: code %d", line, err.code);
	cr_assert(strstr(err.message, msg), "%s: '%s' lacks '%s'", line,
		  err.message, msg);
	json_decref(req.id);
	req.id = NULL;
}

Test(ctl_parse, dirty_log_actions)
{
	parse_ok("{\"cmd\":\"dirty-log\",\"args\":{\"action\":\"start\"}}");
	cr_assert_eq(req.dirty_action, CTL_DIRTY_START);
	ctl_request_free(&req);
	parse_ok("{\"cmd\":\"dirty-log\",\"args\":{\"action\":\"stop\"}}");
	cr_assert_eq(req.dirty_action, CTL_DIRTY_STOP);
	ctl_request_free(&req);
	parse_bad("{\"cmd\":\"dirty-log\"}", CTL_ERR_BAD_ARGS,
		  "needs args.action");
	parse_bad("{\"cmd\":\"dirty-log\",\"args\":{\"action\":3}}",
		  CTL_ERR_BAD_ARGS, "must be a string, got integer");
	parse_bad("{\"cmd\":\"dirty-log\",\"args\":{\"action\":\"flush\"}}",
		  CTL_ERR_BAD_ARGS, "unknown action 'flush'");
	parse_bad("{\"cmd\":\"dirty-log\",\"args\":{\"action\":\"start\","
		  "\"x\":1}}",
		  CTL_ERR_BAD_ARGS, "unknown argument 'x'");
}

Test(ctl_parse, translate_numbers)
{
	parse_ok("{\"cmd\":\"translate\",\"args\":{\"cpu\":2,\"gva\":4096}}");
	cr_assert_eq(req.cpu, 2);
	cr_assert_eq(req.gva, 4096);
	ctl_request_free(&req);
	parse_ok("{\"cmd\":\"translate\",\"args\":{\"cpu\":\"0\","
		 "\"gva\":\"0xffffffff80001000\"}}");
	cr_assert_eq(req.gva, 0xffffffff80001000ULL);
	ctl_request_free(&req);
	parse_bad("{\"cmd\":\"translate\",\"args\":{\"gva\":1}}",
		  CTL_ERR_BAD_ARGS, "'cpu' must be");
	parse_bad("{\"cmd\":\"translate\",\"args\":{\"cpu\":-1,\"gva\":1}}",
		  CTL_ERR_BAD_ARGS, "'cpu' must be");
	parse_bad(
		"{\"cmd\":\"translate\",\"args\":{\"cpu\":0,\"gva\":\"0xzz\"}}",
		CTL_ERR_BAD_ARGS, "is not a number");
	parse_bad("{\"cmd\":\"translate\",\"args\":{\"cpu\":0,\"gva\":1.5}}",
		  CTL_ERR_BAD_ARGS, "got real");
	parse_bad("{\"cmd\":\"translate\",\"args\":{\"cpu\":99999,\"gva\":1}}",
		  CTL_ERR_BAD_ARGS, "out of range");
}

Test(ctl_parse, migrate_args)
{
	parse_ok("{\"cmd\":\"migrate\",\"args\":{\"to\":\"tcp:1.2.3.4:5\","
		 "\"downtime_limit_ms\":5,\"max_rounds\":\"7\",\"verify\":true}"
		 "}");
	cr_assert_str_eq(req.mig.to, "tcp:1.2.3.4:5");
	cr_assert_eq(req.mig.downtime_limit_ms, 5);
	cr_assert_eq(req.mig.max_rounds, 7);
	cr_assert(req.mig.verify);
	ctl_request_free(&req);
	parse_ok("{\"cmd\":\"migrate\",\"args\":{\"cancel\":true}}");
	cr_assert(req.mig.cancel);
	ctl_request_free(&req);
	parse_bad("{\"cmd\":\"migrate\"}", CTL_ERR_BAD_ARGS, "needs args.to");
	parse_bad("{\"cmd\":\"migrate\",\"args\":{\"to\":\"x\",\"mode\":"
		  "\"warp\"}}",
		  CTL_ERR_BAD_ARGS, "unknown mode 'warp'");
	parse_bad("{\"cmd\":\"migrate\",\"args\":{\"to\":\"x\",\"verify\":1}}",
		  CTL_ERR_BAD_ARGS, "must be a boolean");
	parse_bad(
		"{\"cmd\":\"migrate\",\"args\":{\"cancel\":true,\"to\":\"x\"}}",
		CTL_ERR_BAD_ARGS, "takes no other");
	parse_bad("{\"cmd\":\"migrate\",\"args\":{\"to\":\"x\","
		  "\"downtime_limit_ms\":-3}}",
		  CTL_ERR_BAD_ARGS, "non-negative");
}

/* ---- migrate: modes, budgets, resume, abort ---------------------------- */

#define MIG(args) "{\"cmd\":\"migrate\",\"args\":{" args "}}"

Test(ctl_parse, migrate_mode_defaults_to_hybrid)
{
	parse_ok(MIG("\"to\":\"tcp:1.2.3.4:5\""));
	cr_assert_eq(req.mig.mode, MIG_MODE_HYBRID);
	cr_assert_eq(req.mig.budget_ms, 0);
	cr_assert_eq(req.mig.budget_bytes, 0);
	cr_assert_not(req.mig.resume || req.mig.abort || req.mig.cancel);
	ctl_request_free(&req);
}

Test(ctl_parse, migrate_each_mode)
{
	static const struct {
		const char *name;
		enum mig_mode mode;
	} modes[] = {
		{"hybrid", MIG_MODE_HYBRID},
		{"precopy", MIG_MODE_PRECOPY},
		{"postcopy", MIG_MODE_POSTCOPY},
	};
	char line[128];

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		snprintf(line, sizeof(line),
			 MIG("\"to\":\"x\",\"mode\":\"%s\""), modes[i].name);
		parse_ok(line);
		cr_assert_eq(req.mig.mode, modes[i].mode, "%s", line);
		ctl_request_free(&req);
	}
}

Test(ctl_parse, migrate_bad_mode)
{
	parse_bad(MIG("\"to\":\"x\",\"mode\":\"warp\""), CTL_ERR_BAD_ARGS,
		  "unknown mode 'warp' (expected hybrid, precopy, postcopy or "
		  "local)");
	parse_bad(MIG("\"to\":\"x\",\"mode\":\"Hybrid\""), CTL_ERR_BAD_ARGS,
		  "unknown mode 'Hybrid'");
	parse_bad(MIG("\"to\":\"x\",\"mode\":1"), CTL_ERR_BAD_ARGS,
		  "'mode' must be a string, got integer");
}

Test(ctl_parse, migrate_budgets_in_range)
{
	parse_ok(MIG("\"to\":\"x\",\"precopy_budget_ms\":1"));
	cr_assert_eq(req.mig.budget_ms, 1);
	ctl_request_free(&req);
	parse_ok(MIG("\"to\":\"x\",\"precopy_budget_ms\":3600000"));
	cr_assert_eq(req.mig.budget_ms, 3600000);
	ctl_request_free(&req);
	parse_ok(MIG("\"to\":\"x\",\"mode\":\"precopy\","
		     "\"precopy_budget_bytes\":1048576"));
	cr_assert_eq(req.mig.budget_bytes, 1048576);
	cr_assert_eq(req.mig.mode, MIG_MODE_PRECOPY);
	ctl_request_free(&req);
	parse_ok(MIG("\"to\":\"x\",\"precopy_budget_bytes\":"
		     "\"1099511627776\",\"precopy_budget_ms\":500"));
	cr_assert_eq(req.mig.budget_bytes, 1ULL << 40);
	cr_assert_eq(req.mig.budget_ms, 500);
	ctl_request_free(&req);
}

Test(ctl_parse, migrate_budgets_out_of_range)
{
	parse_ok(MIG("\"to\":\"x\",\"quiesce_timeout_ms\":600000"));
	parse_bad(MIG("\"to\":\"x\",\"quiesce_timeout_ms\":0"),
		  CTL_ERR_BAD_ARGS,
		  "'quiesce_timeout_ms' 0 is out of range (1..600000)");
	parse_bad(MIG("\"to\":\"x\",\"precopy_budget_ms\":0"), CTL_ERR_BAD_ARGS,
		  "'precopy_budget_ms' 0 is out of range (1..3600000)");
	parse_bad(MIG("\"to\":\"x\",\"precopy_budget_ms\":3600001"),
		  CTL_ERR_BAD_ARGS,
		  "'precopy_budget_ms' 3600001 is out of range");
	parse_bad(MIG("\"to\":\"x\",\"precopy_budget_bytes\":1048575"),
		  CTL_ERR_BAD_ARGS,
		  "'precopy_budget_bytes' 1048575 is out of range");
	parse_bad(MIG("\"to\":\"x\",\"precopy_budget_bytes\":1099511627777"),
		  CTL_ERR_BAD_ARGS,
		  "'precopy_budget_bytes' 1099511627777 is out");
	parse_bad(MIG("\"to\":\"x\",\"precopy_budget_ms\":-1"),
		  CTL_ERR_BAD_ARGS,
		  "'precopy_budget_ms' must be a non-negative");
	parse_bad(MIG("\"to\":\"x\",\"precopy_budget_ms\":\"2s\""),
		  CTL_ERR_BAD_ARGS,
		  "'precopy_budget_ms': '2s' is not a number");
}

Test(ctl_parse, migrate_budgets_not_with_postcopy)
{
	parse_bad(MIG("\"to\":\"x\",\"mode\":\"postcopy\","
		      "\"precopy_budget_ms\":500"),
		  CTL_ERR_BAD_ARGS,
		  "'precopy_budget_ms' is not used with mode postcopy");
	parse_bad(MIG("\"to\":\"x\",\"mode\":\"postcopy\","
		      "\"precopy_budget_bytes\":1048576"),
		  CTL_ERR_BAD_ARGS,
		  "'precopy_budget_bytes' is not used with mode postcopy");
}

Test(ctl_parse, migrate_verify_with_every_mode)
{
	parse_ok(MIG("\"to\":\"x\",\"mode\":\"postcopy\",\"verify\":true"));
	cr_assert(req.mig.verify);
	cr_assert_eq(req.mig.mode, MIG_MODE_POSTCOPY);
	ctl_request_free(&req);
	parse_ok(MIG("\"to\":\"x\",\"verify\":true"));
	cr_assert(req.mig.verify);
	cr_assert_eq(req.mig.mode, MIG_MODE_HYBRID);
	ctl_request_free(&req);
}

Test(ctl_parse, migrate_resume)
{
	parse_ok(MIG("\"resume\":true"));
	cr_assert(req.mig.resume);
	cr_assert_null(req.mig.to);
	ctl_request_free(&req);
	parse_ok(MIG("\"resume\":true,\"to\":\"tcp:10.0.0.2:7100\""));
	cr_assert(req.mig.resume);
	cr_assert_str_eq(req.mig.to, "tcp:10.0.0.2:7100");
	ctl_request_free(&req);
	parse_bad(MIG("\"resume\":\"yes\""), CTL_ERR_BAD_ARGS,
		  "'resume' must be a boolean, got string");
	parse_bad(MIG("\"resume\":true,\"to\":7"), CTL_ERR_BAD_ARGS,
		  "'to' must be a string, got integer");
}

Test(ctl_parse, migrate_resume_takes_only_to)
{
	parse_bad(MIG("\"resume\":true,\"mode\":\"precopy\""), CTL_ERR_BAD_ARGS,
		  "'resume' takes only 'to', got 'mode'");
	parse_bad(MIG("\"resume\":true,\"verify\":true"), CTL_ERR_BAD_ARGS,
		  "'resume' takes only 'to', got 'verify'");
	parse_bad(MIG("\"resume\":true,\"abort\":true,\"confirm\":true"),
		  CTL_ERR_BAD_ARGS, "'resume' takes only 'to', got 'abort'");
	parse_bad(MIG("\"resume\":true,\"cancel\":true"), CTL_ERR_BAD_ARGS,
		  "'cancel' takes no other arguments");
}

Test(ctl_parse, migrate_abort_needs_confirm)
{
	parse_bad(MIG("\"abort\":true"), CTL_ERR_BAD_ARGS,
		  "abort gives up the post-copy migration: the destination "
		  "lacks pages and the guest's run there is lost; repeat "
		  "with confirm");
	parse_bad(MIG("\"abort\":true,\"confirm\":false"), CTL_ERR_BAD_ARGS,
		  "repeat with confirm");
	parse_bad(MIG("\"abort\":true,\"confirm\":1"), CTL_ERR_BAD_ARGS,
		  "'confirm' must be a boolean, got integer");
}

Test(ctl_parse, migrate_abort_with_confirm)
{
	parse_ok(MIG("\"abort\":true,\"confirm\":true"));
	cr_assert(req.mig.abort);
	cr_assert_not(req.mig.resume || req.mig.cancel);
	cr_assert_null(req.mig.to);
	ctl_request_free(&req);
	parse_bad(MIG("\"abort\":true,\"confirm\":true,\"to\":\"x\""),
		  CTL_ERR_BAD_ARGS, "'abort' takes only 'confirm', got 'to'");
}

Test(ctl_parse, migrate_confirm_without_abort)
{
	parse_bad(MIG("\"to\":\"x\",\"confirm\":true"), CTL_ERR_BAD_ARGS,
		  "'confirm' goes with 'abort'");
	parse_bad(MIG("\"resume\":true,\"confirm\":true"), CTL_ERR_BAD_ARGS,
		  "'confirm' goes with 'abort'");
	parse_bad(MIG("\"abort\":false,\"confirm\":true,\"to\":\"x\""),
		  CTL_ERR_BAD_ARGS, "'confirm' goes with 'abort'");
}

Test(ctl_parse, migrate_false_flags_start_a_migration)
{
	parse_ok(MIG("\"to\":\"x\",\"resume\":false,\"abort\":false,"
		     "\"cancel\":false"));
	cr_assert_not(req.mig.resume || req.mig.abort || req.mig.cancel);
	cr_assert_str_eq(req.mig.to, "x");
	ctl_request_free(&req);
	parse_bad(MIG("\"resume\":false"), CTL_ERR_BAD_ARGS, "needs args.to");
}

Test(ctl_parse, migrate_tuning_names_the_field)
{
	parse_bad(MIG("\"to\":\"x\",\"downtime_limit_ms\":3600001"),
		  CTL_ERR_BAD_ARGS,
		  "'downtime_limit_ms' 3600001 is out of range");
	parse_bad(MIG("\"to\":\"x\",\"max_rounds\":100001"), CTL_ERR_BAD_ARGS,
		  "'max_rounds' 100001 is out of range");
}

Test(ctl_parse, stats_and_touch_arg)
{
	parse_ok("{\"cmd\":\"stats\"}");
	cr_assert_eq(req.cmd, CTL_CMD_STATS);
	ctl_request_free(&req);
	parse_bad("{\"cmd\":\"stats\",\"args\":{\"x\":1}}", CTL_ERR_BAD_ARGS,
		  "takes no arguments");
	parse_ok("{\"cmd\":\"guest-request\",\"args\":{\"request\":\"touch\","
		 "\"arg\":7}}");
	cr_assert_eq(req.guest_req, GUEST_REQ_TOUCH);
	cr_assert_eq(req.req_arg, 7);
	ctl_request_free(&req);
	parse_bad("{\"cmd\":\"guest-request\",\"args\":{\"request\":\"touch\","
		  "\"arg\":\"x\"}}",
		  CTL_ERR_BAD_ARGS, "is not a number");
}

/* ---- the server and the client ----------------------------------------- */

struct srv {
	uv_loop_t loop;
	struct control ctl;
	uv_async_t quit; /* loop thread: control_stop, then close */
	pthread_t thread;
	int running;
	int shutdown_event; /* post "shutdown" right before control_stop */
	char dir[64];
	char path[128];
};

static struct srv S;

static int test_handler(void *opaque, const struct ctl_request *rq,
			json_t **result, struct ctl_error *e)
{
	switch (rq->cmd) {
	case CTL_CMD_STATUS:
		*result = json_pack("{s:s, s:O}", "cmd", ctl_cmd_name(rq->cmd),
				    "args", rq->args);
		return 0;
	case CTL_CMD_PAUSE:
		e->code = CTL_ERR_BAD_STATE;
		snprintf(e->message, sizeof(e->message), "already paused");
		return -1;
	case CTL_CMD_STOP:
		usleep(200000); /* blocks the loop, as vm_join does */
		*result = NULL;
		return 0;
	case CTL_CMD_GUEST_REQUEST:
		*result = json_pack("{s:i}", "request", rq->guest_req);
		return 0;
	default:
		*result = NULL;
		return 0;
	}
}

static void srv_quit_cb(uv_async_t *a)
{
	if (S.shutdown_event)
		control_post_event(&S.ctl, "shutdown",
				   json_pack("{s:s, s:i}", "reason", "stop",
					     "exit_code", 0));
	control_stop(&S.ctl);
	uv_close((uv_handle_t *)a, NULL);
}

static void *srv_thread(void *arg)
{
	uv_run(&S.loop, UV_RUN_DEFAULT);
	return NULL;
}

static void srv_setup(void)
{
	memset(&S, 0, sizeof(S));
	snprintf(S.dir, sizeof(S.dir), "/tmp/test_ctl.XXXXXX");
	cr_assert_not_null(mkdtemp(S.dir));
	snprintf(S.path, sizeof(S.path), "%s/ctl.sock", S.dir);
}

static void srv_start(void)
{
	char e[256] = "";

	cr_assert_eq(uv_loop_init(&S.loop), 0);
	cr_assert_eq(control_start(&S.ctl, &S.loop, S.path, test_handler, NULL,
				   e, sizeof(e)),
		     0, "control_start: %s", e);
	cr_assert_eq(uv_async_init(&S.loop, &S.quit, srv_quit_cb), 0);
	cr_assert_eq(pthread_create(&S.thread, NULL, srv_thread, NULL), 0);
	S.running = 1;
}

static void srv_stop(void)
{
	if (!S.running)
		return;
	S.running = 0;
	cr_assert_eq(uv_async_send(&S.quit), 0);
	cr_assert_eq(pthread_join(S.thread, NULL), 0);
	cr_assert_eq(uv_loop_close(&S.loop), 0, "handles left open");
}

static void srv_teardown(void)
{
	srv_stop();
	unlink(S.path);
	rmdir(S.dir);
}

static int raw_connect(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	strcpy(sun.sun_path, path);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0,
		     "connect %s: %s", path, strerror(errno));
	return fd;
}

static void raw_send(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);

		cr_assert_gt(n, 0, "send: %s", strerror(errno));
		s += n;
		len -= n;
	}
}

/* Read one line (5 s timeout); NULL at EOF. */
static json_t *raw_line(int fd)
{
	static char buf[1 << 16];
	size_t len = 0;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		cr_assert_eq(poll(&p, 1, 5000), 1, "no line within 5 s");
		n = read(fd, buf + len, 1);
		cr_assert_geq(n, 0, "read: %s", strerror(errno));
		if (n == 0) {
			cr_assert_eq(len, 0, "EOF inside a line");
			return NULL;
		}
		if (buf[len] == '\n')
			break;
		cr_assert_lt(++len, sizeof(buf));
	}
	return json_loadb(buf, len, 0, NULL);
}

/* The server closed: EOF, or ECONNRESET when it left our bytes unread. */
static void raw_expect_closed(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char c;
	ssize_t n;

	cr_assert_eq(poll(&p, 1, 5000), 1, "not closed within 5 s");
	n = read(fd, &c, 1);
	cr_assert(n == 0 || (n < 0 && errno == ECONNRESET),
		  "expected the connection closed, read %zd (%s)", n,
		  n < 0 ? strerror(errno) : "data");
}

static const char *reply_err_code(json_t *r)
{
	return json_string_value(
		json_object_get(json_object_get(r, "error"), "code"));
}

TestSuite(control, .init = srv_setup, .fini = srv_teardown, .timeout = 30);

Test(control, call_status_echoes_result)
{
	char e[256] = "";
	json_t *reply = NULL, *res;

	srv_start();
	cr_assert_eq(control_call(S.path, "status", NULL, &reply, e, sizeof(e)),
		     0, "%s", e);
	cr_assert(json_is_true(json_object_get(reply, "ok")));
	cr_assert_eq(json_integer_value(json_object_get(reply, "id")), 1);
	res = json_object_get(reply, "result");
	cr_assert_str_eq(json_string_value(json_object_get(res, "cmd")),
			 "status");
	json_decref(reply);

	cr_assert_eq(control_call(S.path, "guest-request",
				  json_pack("{s:s}", "request", "verify"),
				  &reply, e, sizeof(e)),
		     0, "%s", e);
	res = json_object_get(reply, "result");
	cr_assert_eq(json_integer_value(json_object_get(res, "request")),
		     GUEST_REQ_VERIFY);
	json_decref(reply);

	cr_assert_eq(control_call(S.path, "resume", NULL, &reply, e, sizeof(e)),
		     0, "%s", e);
	cr_assert_eq(json_object_size(json_object_get(reply, "result")), 0);
	json_decref(reply);
}

Test(control, call_error_replies)
{
	char e[256] = "";
	json_t *reply = NULL, *er;

	srv_start();
	cr_assert_eq(
		control_call(S.path, "frobnicate", NULL, &reply, e, sizeof(e)),
		0, "%s", e);
	cr_assert(json_is_false(json_object_get(reply, "ok")));
	cr_assert_eq(json_integer_value(json_object_get(reply, "id")), 1);
	er = json_object_get(reply, "error");
	cr_assert_str_eq(reply_err_code(reply), "unknown-command");
	cr_assert_str_eq(json_string_value(json_object_get(er, "message")),
			 "'frobnicate'");
	json_decref(reply);

	cr_assert_eq(control_call(S.path, "pause", NULL, &reply, e, sizeof(e)),
		     0, "%s", e);
	cr_assert_str_eq(reply_err_code(reply), "bad-state");
	json_decref(reply);
}

Test(control, call_without_server)
{
	char e[256] = "", want[512];
	json_t *reply = (json_t *)1;

	cr_assert_eq(control_call(S.path, "status", NULL, &reply, e, sizeof(e)),
		     -ENOENT);
	cr_assert_null(reply);
	snprintf(want, sizeof(want),
		 "cannot connect to control socket %s: No such file or "
		 "directory",
		 S.path);
	cr_assert_str_eq(e, want);
}

Test(control, socket_mode_is_0600)
{
	struct stat st;

	srv_start();
	cr_assert_eq(stat(S.path, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	cr_assert_eq(st.st_mode & 07777, 0600, "mode %o", st.st_mode & 07777);
}

Test(control, events_reach_raw_clients)
{
	int fd, fd2;
	json_t *j;

	srv_start();
	fd = raw_connect(S.path);
	fd2 = raw_connect(S.path);
	/* A reply proves each connection has been accepted. */
	raw_send(fd, "{\"id\":\"a\",\"cmd\":\"resume\"}\n", 26);
	raw_send(fd2, "{\"id\":\"b\",\"cmd\":\"resume\"}\n", 26);
	j = raw_line(fd);
	cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "a");
	json_decref(j);
	j = raw_line(fd2);
	cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "b");
	json_decref(j);

	/* Posted from this thread, not the loop's. */
	for (int i = 0; i < 50; i++)
		control_post_event(&S.ctl, "marker",
				   json_pack("{s:s, s:i, s:i}", "name",
					     "cpu-up", "id", 1, "arg", i));
	for (int k = 0; k < 100; k++) {
		json_t *d;

		j = raw_line(k < 50 ? fd : fd2);
		cr_assert_not_null(j);
		cr_assert_str_eq(json_string_value(json_object_get(j, "event")),
				 "marker");
		d = json_object_get(j, "data");
		cr_assert_str_eq(json_string_value(json_object_get(d, "name")),
				 "cpu-up");
		cr_assert_eq(json_integer_value(json_object_get(d, "arg")),
			     k % 50, "events in order");
		json_decref(j);
	}
	close(fd);
	close(fd2);
}

Test(control, framing)
{
	static const char part1[] = "{\"id\":1,\"cmd\":\"status\"}\n\n{\"id\":"
				    "2,\"cmd\":\"stop\"}\r\n"
				    "{\"id\":3,\"cmd\"";
	static const char part2[] = ":\"resume\"}\nnot json\n"
				    "{\"id\":5,\"cmd\":\"status\",\"x\":0}\n"
				    "{\"id\":6,\"cmd\":\"status\"}\n";
	int fd, i;
	json_t *j;

	srv_start();
	fd = raw_connect(S.path);
	raw_send(fd, part1, sizeof(part1) - 1);
	for (i = 1; i <= 2; i++) {
		j = raw_line(fd);
		cr_assert_eq(json_integer_value(json_object_get(j, "id")), i);
		cr_assert(json_is_true(json_object_get(j, "ok")));
		json_decref(j);
	}
	usleep(20000); /* the third request arrives in two pieces */
	raw_send(fd, part2, sizeof(part2) - 1);
	j = raw_line(fd);
	cr_assert_eq(json_integer_value(json_object_get(j, "id")), 3);
	json_decref(j);
	j = raw_line(fd);
	cr_assert(json_is_null(json_object_get(j, "id")));
	cr_assert_str_eq(reply_err_code(j), "bad-json");
	json_decref(j);
	j = raw_line(fd);
	cr_assert_eq(json_integer_value(json_object_get(j, "id")), 5);
	cr_assert_str_eq(reply_err_code(j), "bad-request");
	json_decref(j);
	j = raw_line(fd);
	cr_assert_eq(json_integer_value(json_object_get(j, "id")), 6,
		     "the connection survives bad lines");
	json_decref(j);
	close(fd);
}

Test(control, too_long_line_closes_the_client)
{
	size_t n = CTL_LINE_MAX + 100;
	char *big = malloc(n);
	char e[256] = "";
	json_t *j, *reply;
	int fd;

	srv_start();
	memset(big, 'a', n);
	fd = raw_connect(S.path);
	raw_send(fd, big, n);
	j = raw_line(fd);
	cr_assert_not_null(j);
	cr_assert(json_is_false(json_object_get(j, "ok")));
	cr_assert_str_eq(reply_err_code(j), "too-long");
	json_decref(j);
	raw_expect_closed(fd);
	close(fd);
	free(big);

	/* A line of exactly CTL_LINE_MAX bytes is still accepted. */
	big = malloc(CTL_LINE_MAX + 1);
	memset(big, ' ', CTL_LINE_MAX);
	memcpy(big, "{\"cmd\":\"stop\"}", 14);
	big[CTL_LINE_MAX] = '\n';
	fd = raw_connect(S.path);
	raw_send(fd, big, CTL_LINE_MAX + 1);
	j = raw_line(fd);
	cr_assert(json_is_true(json_object_get(j, "ok")));
	json_decref(j);
	close(fd);
	free(big);

	/* The server keeps serving. */
	cr_assert_eq(control_call(S.path, "status", NULL, &reply, e, sizeof(e)),
		     0, "%s", e);
	json_decref(reply);
}

Test(control, client_gone_before_its_reply)
{
	char e[256] = "";
	json_t *reply;
	int fd;

	signal(SIGPIPE, SIG_DFL); /* control_start must cope on its own */
	srv_start();
	fd = raw_connect(S.path);
	raw_send(fd, "{\"cmd\":\"stop\"}\n", 15);
	close(fd); /* while the handler sleeps: its reply hits EPIPE */
	usleep(300000);
	for (int i = 0; i < 10; i++)
		control_post_event(&S.ctl, "marker", NULL);
	cr_assert_eq(control_call(S.path, "status", NULL, &reply, e, sizeof(e)),
		     0, "the server died: %s", e);
	json_decref(reply);
}

/*
 * A thread posting faster than the loop writes: the loop is not running,
 * so nothing drains; the queue holds CONTROL_EVQ_MAX and counts the rest.
 * control_stop still writes what was queued.
 */
Test(control, event_queue_is_bounded)
{
	char e[256] = "";

	cr_assert_eq(uv_loop_init(&S.loop), 0);
	cr_assert_eq(control_start(&S.ctl, &S.loop, S.path, test_handler, NULL,
				   e, sizeof(e)),
		     0, "control_start: %s", e);
	for (int i = 0; i < CONTROL_EVQ_MAX + 500; i++)
		control_post_event(&S.ctl, "marker",
				   json_pack("{s:i}", "arg", i));
	cr_assert_eq(control_events_dropped(&S.ctl), 500);
	control_stop(&S.ctl);
	uv_run(&S.loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&S.loop), 0, "handles left open");
}

Test(control, second_server_refused)
{
	struct control c2;
	uv_loop_t loop2;
	char e[256] = "", want[512];
	struct stat st;

	srv_start();
	cr_assert_eq(uv_loop_init(&loop2), 0);
	cr_assert_eq(control_start(&c2, &loop2, S.path, test_handler, NULL, e,
				   sizeof(e)),
		     -EADDRINUSE);
	snprintf(want, sizeof(want),
		 "control socket %s is in use by another VMM", S.path);
	cr_assert_str_eq(e, want);
	cr_assert_eq(uv_loop_close(&loop2), 0);
	cr_assert_eq(stat(S.path, &st), 0, "the live socket is untouched");
	control_post_event(&c2, "ignored", NULL); /* dropped, no crash */
}

Test(control, stale_socket_replaced)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	char e[256] = "";
	json_t *reply;

	/* A socket file nobody listens on: what a killed VMM leaves. */
	strcpy(sun.sun_path, S.path);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	srv_start();
	cr_assert_eq(control_call(S.path, "status", NULL, &reply, e, sizeof(e)),
		     0, "%s", e);
	json_decref(reply);
}

Test(control, foreign_file_not_removed)
{
	struct control c2;
	uv_loop_t loop2;
	char e[256] = "";
	struct stat st;
	FILE *f = fopen(S.path, "w");

	cr_assert_not_null(f);
	fclose(f);
	cr_assert_eq(uv_loop_init(&loop2), 0);
	cr_assert_eq(control_start(&c2, &loop2, S.path, test_handler, NULL, e,
				   sizeof(e)),
		     -EEXIST);
	cr_assert_not_null(strstr(e, "is not a socket"), "%s", e);
	cr_assert_eq(stat(S.path, &st), 0);
	cr_assert(S_ISREG(st.st_mode));
	cr_assert_eq(uv_loop_close(&loop2), 0);
}

Test(control, stop_flushes_events_and_unlinks)
{
	struct stat st;
	json_t *j;
	int fd;

	srv_start();
	fd = raw_connect(S.path);
	raw_send(fd, "{\"cmd\":\"status\"}\n", 17);
	j = raw_line(fd);
	json_decref(j);
	S.shutdown_event = 1;
	srv_stop(); /* posts "shutdown" and calls control_stop at once */
	j = raw_line(fd);
	cr_assert_not_null(j, "the shutdown event was lost");
	cr_assert_str_eq(json_string_value(json_object_get(j, "event")),
			 "shutdown");
	json_decref(j);
	raw_expect_closed(fd);
	close(fd);
	cr_assert_eq(stat(S.path, &st), -1);
	cr_assert_eq(errno, ENOENT);
}

Test(control, stop_with_a_client_that_does_not_read)
{
	time_t t0;
	int fd;
	json_t *j;

	srv_start();
	fd = raw_connect(S.path);
	raw_send(fd, "{\"cmd\":\"status\"}\n", 17);
	j = raw_line(fd);
	json_decref(j);
	/* Fill the socket buffers, and more, with events nobody reads. */
	for (int i = 0; i < 5000; i++)
		control_post_event(&S.ctl, "marker",
				   json_pack("{s:s, s:i}", "pad",
					     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
					     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
					     "i", i));
	usleep(100000);
	t0 = time(NULL);
	srv_stop(); /* must end after CONTROL_LINGER_MS, not hang */
	cr_assert_leq(time(NULL) - t0, 1 + CONTROL_LINGER_MS / 1000);
	close(fd);
}

/* ---- control_call against a scripted server ---------------------------- */

struct fake {
	int lfd;
	const char *script; /* written after the request arrives */
	char got[512];	    /* the request line received */
};

static void *fake_thread(void *arg)
{
	struct fake *f = arg;
	int fd = accept(f->lfd, NULL, NULL);
	size_t len = 0;

	if (fd < 0)
		return NULL;
	while (len < sizeof(f->got) - 1) {
		ssize_t n = read(fd, f->got + len, 1);

		if (n <= 0 || f->got[len] == '\n')
			break;
		len++;
	}
	f->got[len] = '\0';
	if (f->script)
		(void)!write(fd, f->script, strlen(f->script));
	close(fd);
	return NULL;
}

static int fake_call(const char *script, json_t **reply, char *e, size_t elen,
		     struct fake *f)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	pthread_t t;
	int r;

	f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	f->script = script;
	strcpy(sun.sun_path, S.path);
	cr_assert_eq(bind(f->lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	cr_assert_eq(listen(f->lfd, 1), 0);
	cr_assert_eq(pthread_create(&t, NULL, fake_thread, f), 0);
	r = control_call(S.path, "stop", NULL, reply, e, elen);
	pthread_join(t, NULL);
	close(f->lfd);
	return r;
}

Test(control, call_skips_events)
{
	struct fake f;
	char e[256] = "";
	json_t *reply = NULL, *want;

	cr_assert_eq(fake_call("{\"event\":\"marker\",\"data\":{}}\n\n"
			       "{\"event\":\"shutdown\",\"data\":{}}\n"
			       "{\"id\":1,\"ok\":true,\"result\":{\"x\":2}}\n",
			       &reply, e, sizeof(e), &f),
		     0, "%s", e);
	want = json_pack("{s:i, s:b, s:{s:i}}", "id", 1, "ok", 1, "result", "x",
			 2);
	cr_assert(json_equal(reply, want));
	json_decref(want);
	json_decref(reply);
	want = json_loads(f.got, 0, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(want, "cmd")),
			 "stop");
	json_decref(want);
}

Test(control, call_reports_early_close_and_garbage)
{
	struct fake f;
	char e[256] = "";
	json_t *reply = NULL;

	cr_assert_eq(fake_call("{\"event\":\"shutdown\",\"data\":{}}\n", &reply,
			       e, sizeof(e), &f),
		     -ECONNRESET);
	cr_assert_null(reply);
	cr_assert_not_null(strstr(e, "closed the connection before replying"),
			   "%s", e);
	cr_assert_not_null(strstr(e, S.path), "%s", e);
	unlink(S.path);

	cr_assert_eq(fake_call("garbage\n", &reply, e, sizeof(e), &f), -EPROTO);
	cr_assert_null(reply);
	cr_assert_not_null(strstr(e, "not a JSON object"), "%s", e);
}

Test(ctl_parse, migrate_push_order)
{
	parse_ok(MIG("\"to\":\"x\""));
	cr_assert_eq(req.mig.push_order, MIG_PUSH_ACCESSED);
	ctl_request_free(&req);
	parse_ok(MIG("\"to\":\"x\",\"mode\":\"postcopy\",\"push_order\":"
		     "\"linear\""));
	cr_assert_eq(req.mig.push_order, MIG_PUSH_LINEAR);
	ctl_request_free(&req);
	parse_ok(MIG("\"to\":\"x\",\"push_order\":\"faults\""));
	cr_assert_eq(req.mig.push_order, MIG_PUSH_FAULTS);
	ctl_request_free(&req);
	parse_bad(MIG("\"to\":\"x\",\"push_order\":\"random\""),
		  CTL_ERR_BAD_ARGS,
		  "unknown push_order 'random' (expected accessed, faults or "
		  "linear)");
	parse_bad(MIG("\"to\":\"x\",\"mode\":\"precopy\",\"push_order\":"
		      "\"faults\""),
		  CTL_ERR_BAD_ARGS,
		  "'push_order' is not used with mode precopy");
	parse_bad(MIG("\"to\":\"x\",\"push_order\":3"), CTL_ERR_BAD_ARGS,
		  "push_order");
}

Test(ctl_parse, migrate_compress)
{
	parse_ok(MIG("\"to\":\"x\""));
	cr_assert_eq(req.mig.compress, MIG_COMPRESS_AUTO);
	ctl_request_free(&req);
	parse_ok(MIG("\"to\":\"x\",\"compress\":\"none\""));
	cr_assert_eq(req.mig.compress, MIG_COMPRESS_NONE);
	ctl_request_free(&req);
	parse_ok(MIG("\"to\":\"x\",\"mode\":\"precopy\",\"compress\":"
		     "\"zstd\""));
	cr_assert_eq(req.mig.compress, MIG_COMPRESS_ZSTD);
	ctl_request_free(&req);
	parse_bad(MIG("\"to\":\"x\",\"compress\":\"lz4\""),
		  CTL_ERR_BAD_ARGS,
		  "unknown compress 'lz4' (expected auto, none or zstd)");
	parse_bad(MIG("\"to\":\"x\",\"mode\":\"postcopy\",\"compress\":"
		      "\"zstd\""),
		  CTL_ERR_BAD_ARGS,
		  "'compress' is not used with mode postcopy");
}

Test(ctl_parse, migrate_bandwidth_and_auto_converge)
{
	parse_ok(MIG("\"to\":\"x\",\"mode\":\"precopy\",\"max_bandwidth\":"
		     "104857600,\"auto_converge\":true"));
	cr_assert_eq(req.mig.max_bandwidth, 104857600);
	cr_assert(req.mig.auto_converge);
	ctl_request_free(&req);
	parse_ok(MIG("\"to\":\"x\",\"postcopy_bandwidth\":1048576"));
	cr_assert_eq(req.mig.postcopy_bandwidth, 1048576);
	ctl_request_free(&req);
	parse_bad(MIG("\"to\":\"x\",\"auto_converge\":true"), CTL_ERR_BAD_ARGS,
		  "'auto_converge' goes with mode precopy");
	parse_bad(MIG("\"to\":\"x\",\"mode\":\"precopy\","
		      "\"postcopy_bandwidth\":1"),
		  CTL_ERR_BAD_ARGS, "'postcopy_bandwidth' is not used");
	parse_bad(MIG("\"to\":\"x\",\"max_bandwidth\":-1"), CTL_ERR_BAD_ARGS,
		  "max_bandwidth");
}

Test(ctl_parse, migrate_set)
{
	parse_ok("{\"cmd\":\"migrate-set\",\"args\":{\"max_bandwidth\":0}}");
	cr_assert_eq(req.cmd, CTL_CMD_MIGRATE_SET);
	cr_assert_eq(req.mig.max_bandwidth, 0);
	cr_assert_eq(req.mig.postcopy_bandwidth, UINT64_MAX);
	ctl_request_free(&req);
	parse_ok("{\"cmd\":\"migrate-set\",\"args\":{\"postcopy_bandwidth\":"
		 "5}}");
	cr_assert_eq(req.mig.max_bandwidth, UINT64_MAX);
	cr_assert_eq(req.mig.postcopy_bandwidth, 5);
	ctl_request_free(&req);
	parse_bad("{\"cmd\":\"migrate-set\",\"args\":{}}", CTL_ERR_BAD_ARGS,
		  "migrate-set takes");
	parse_bad("{\"cmd\":\"migrate-set\",\"args\":{\"to\":\"x\"}}",
		  CTL_ERR_BAD_ARGS, "to");
	parse_bad("{\"cmd\":\"migrate-set\",\"args\":{\"max_bandwidth\":"
		  "2199023255553}}",
		  CTL_ERR_BAD_ARGS, "out of range");
}
