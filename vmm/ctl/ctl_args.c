// SPDX-License-Identifier: MIT
/*
 * ctl_args.c - each command's arguments: the members its "args" object may
 * have, their types and ranges, and the decoded fields of struct
 * ctl_request they fill. Migration's modes and push orders are parsed by
 * migration/names.c, where their names live. Pure functions, like
 * ctl_proto.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "migration/migration.h"
#include "vmm/ctl/ctl_args.h"

int ctl_args_none(struct ctl_request *req, struct ctl_error *err)
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

	*out = NULL; /* set on every path (-O2 cannot see ctl_err_set's < 0) */
	if (!v)
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "'%s' needs args.%s (%s)",
				   ctl_cmd_name(req->cmd), name, what);
	if (!json_is_string(v))
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "'%s' must be a string, got %s", name,
				   ctl_json_type_name(v));
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
				   name, v ? ctl_json_type_name(v) : "nothing");
	s = json_string_value(v);
	errno = 0;
	*out = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-')
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "'%s': '%s' is not a number", name, s);
	return 0;
}

int ctl_args_guest_request(struct ctl_request *req, struct ctl_error *err)
{
	static const char *const names[] = {"request", "arg", NULL};
	const char *r;
	int gr;

	if (check_arg_names(req, err, names) ||
	    get_string_arg(req, err, "request",
			   "verify, stop-workload, touch or timer-mark", &r))
		return -EINVAL;
	gr = ctl_guest_req_from_name(r);
	if (gr < 0)
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "unknown request '%s' (expected verify, "
				   "stop-workload, touch or timer-mark)",
				   r);
	req->guest_req = gr;
	req->req_arg = 0;
	if (json_object_get(req->args, "arg"))
		return get_u64_arg(req, err, "arg", &req->req_arg);
	return 0;
}

int ctl_args_dirty_log(struct ctl_request *req, struct ctl_error *err)
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

int ctl_args_translate(struct ctl_request *req, struct ctl_error *err)
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
				   ctl_json_type_name(v));
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
			 "hybrid, precopy, postcopy or local", &mode))
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

/* "compress": how pre-copy sends pages; post-copy sends them raw. */
static int parse_migrate_compress(struct ctl_request *req,
				  struct ctl_error *err)
{
	int c = MIG_COMPRESS_AUTO;

	if (get_enum_arg(req, err, "compress", mig_compress_parse,
			 "auto, none or zstd", &c))
		return -EINVAL;
	req->mig.compress = c;
	if (req->mig.mode == MIG_MODE_POSTCOPY &&
	    json_object_get(req->args, "compress"))
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "'compress' is not used with mode "
				   "postcopy (it has no pre-copy)");
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

/* "tls_dir", "tls_hostname", "insecure", "tcp_congestion": the transport. */
static int parse_migrate_tls(struct ctl_request *req, struct ctl_error *err)
{
	struct ctl_migrate *m = &req->mig;

	if ((json_object_get(req->args, "tls_dir") &&
	     get_string_arg(req, err, "tls_dir", "a directory", &m->tls_dir)) ||
	    (json_object_get(req->args, "tls_hostname") &&
	     get_string_arg(req, err, "tls_hostname", "a host name",
			    &m->tls_hostname)) ||
	    get_bool_arg(req, err, "insecure", &m->insecure) ||
	    (json_object_get(req->args, "tcp_congestion") &&
	     get_string_arg(req, err, "tcp_congestion",
			    "a congestion control name", &m->tcp_congestion)))
		return -EINVAL;
	if (m->tls_hostname && !m->tls_dir)
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "'tls_hostname' goes with 'tls_dir'");
	if (m->insecure && m->tls_dir)
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "'insecure' and 'tls_dir' exclude each "
				   "other");
	return 0;
}

/*
 * "max_bandwidth", "postcopy_bandwidth" (bytes/s, 0: no cap) and
 * "auto_converge" (pre-copy mode only: the others have post-copy).
 */
static int parse_migrate_rates(struct ctl_request *req, struct ctl_error *err)
{
	struct ctl_migrate *m = &req->mig;

	if (get_range_arg(req, err, "max_bandwidth", 0, CTL_MIG_BANDWIDTH_MAX,
			  &m->max_bandwidth) ||
	    get_range_arg(req, err, "postcopy_bandwidth", 0,
			  CTL_MIG_BANDWIDTH_MAX, &m->postcopy_bandwidth) ||
	    get_bool_arg(req, err, "auto_converge", &m->auto_converge))
		return -EINVAL;
	if (m->auto_converge && m->mode != MIG_MODE_PRECOPY)
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "'auto_converge' goes with mode precopy "
				   "(the other modes switch to post-copy "
				   "instead)");
	if (m->mode == MIG_MODE_PRECOPY &&
	    json_object_get(req->args, "postcopy_bandwidth"))
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "'postcopy_bandwidth' is not used with "
				   "mode precopy (it has no post-copy)");
	return 0;
}

/* A new migration: "to" and the tuning arguments. */
static int parse_migrate_start(struct ctl_request *req, struct ctl_error *err)
{
	struct ctl_migrate *m = &req->mig;

	if (get_string_arg(req, err, "to", "tcp:HOST:PORT", &m->to) ||
	    parse_migrate_tls(req, err) || parse_migrate_mode(req, err) ||
	    parse_migrate_push(req, err) || parse_migrate_compress(req, err) ||
	    get_range_arg(req, err, "downtime_limit_ms", 0, 3600000,
			  &m->downtime_limit_ms) ||
	    get_range_arg(req, err, "max_rounds", 0, 100000, &m->max_rounds) ||
	    get_range_arg(req, err, "channels", 1, MIG_MAX_CHANNELS,
			  &m->channels) ||
	    get_range_arg(req, err, "quiesce_timeout_ms", 1,
			  CTL_MIG_QUIESCE_MS_MAX, &m->quiesce_timeout_ms) ||
	    parse_migrate_rates(req, err))
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

/* "recover": true with "listen": the destination's new address. */
static int parse_migrate_recover(struct ctl_request *req, struct ctl_error *err)
{
	static const char *const names[] = {"recover", "listen", NULL};

	if (only_args(req, err, names, "'recover' takes only 'listen'"))
		return -EINVAL;
	return get_string_arg(req, err, "listen", "tcp:HOST:PORT",
			      &req->mig.listen);
}

int ctl_args_migrate(struct ctl_request *req, struct ctl_error *err)
{
	static const char *const names[] = {"to",
					    "mode",
					    "downtime_limit_ms",
					    "max_rounds",
					    "channels",
					    "precopy_budget_ms",
					    "precopy_budget_bytes",
					    "quiesce_timeout_ms",
					    "push_order",
					    "compress",
					    "verify",
					    "max_bandwidth",
					    "postcopy_bandwidth",
					    "auto_converge",
					    "tls_dir",
					    "tls_hostname",
					    "insecure",
					    "tcp_congestion",
					    "cancel",
					    "resume",
					    "abort",
					    "confirm",
					    "recover",
					    "listen",
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
	    get_bool_arg(req, err, "recover", &m->recover) ||
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
	if (m->recover)
		return parse_migrate_recover(req, err);
	return parse_migrate_start(req, err);
}

/* migrate-set: the caps of the migration under way; at least one. */
int ctl_args_migrate_set(struct ctl_request *req, struct ctl_error *err)
{
	static const char *const names[] = {"max_bandwidth",
					    "postcopy_bandwidth", NULL};
	struct ctl_migrate *m = &req->mig;

	memset(m, 0, sizeof(*m));
	m->max_bandwidth = m->postcopy_bandwidth = UINT64_MAX;
	if (check_arg_names(req, err, names) ||
	    get_range_arg(req, err, "max_bandwidth", 0, CTL_MIG_BANDWIDTH_MAX,
			  &m->max_bandwidth) ||
	    get_range_arg(req, err, "postcopy_bandwidth", 0,
			  CTL_MIG_BANDWIDTH_MAX, &m->postcopy_bandwidth))
		return -EINVAL;
	if (m->max_bandwidth == UINT64_MAX &&
	    m->postcopy_bandwidth == UINT64_MAX)
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "migrate-set takes 'max_bandwidth' and/or "
				   "'postcopy_bandwidth' (bytes a second, 0: "
				   "no cap)");
	return 0;
}

/* snapshot: {"to": FILE, "live": bool}, or {"ws": FILE}. */
int ctl_args_snapshot(struct ctl_request *req, struct ctl_error *err)
{
	static const char *const to_names[] = {"to", "live", NULL};
	static const char *const ws_names[] = {"ws", NULL};
	struct ctl_snapshot *s = &req->snap;

	if (json_object_get(req->args, "ws")) {
		if (only_args(req, err, ws_names,
			      "'ws' goes alone (it stores a recorded working "
			      "set)") ||
		    get_string_arg(req, err, "ws", "a snapshot file", &s->ws))
			return -EINVAL;
		return 0;
	}
	if (check_arg_names(req, err, to_names) ||
	    get_string_arg(req, err, "to", "the file to write", &s->to) ||
	    get_bool_arg(req, err, "live", &s->live))
		return -EINVAL;
	if (!*s->to)
		return ctl_err_set(err, CTL_ERR_BAD_ARGS,
				   "'to' must name a file");
	return 0;
}
