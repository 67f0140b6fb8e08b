/* SPDX-License-Identifier: MIT */
/*
 * ctl_args.h - inside the control protocol: the commands' argument parsers
 * (ctl_args.c) that ctl_proto.c's command table calls, and the error
 * helpers they share. Not for users of the protocol: they use ctl_proto.h.
 */
#ifndef VMM_CTL_CTL_ARGS_H
#define VMM_CTL_CTL_ARGS_H

#include "vmm/ctl/ctl_proto.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Validate req->args (an object) and fill the command's decoded fields:
 * 0, or -EINVAL with err filled.
 */
int ctl_args_none(struct ctl_request *req, struct ctl_error *err);
int ctl_args_guest_request(struct ctl_request *req, struct ctl_error *err);
int ctl_args_dirty_log(struct ctl_request *req, struct ctl_error *err);
int ctl_args_translate(struct ctl_request *req, struct ctl_error *err);
int ctl_args_migrate(struct ctl_request *req, struct ctl_error *err);
int ctl_args_migrate_set(struct ctl_request *req, struct ctl_error *err);
int ctl_args_snapshot(struct ctl_request *req, struct ctl_error *err);

/* Fill err; control characters become '?' so the message stays one line. */
__attribute__((format(printf, 3, 4))) int
ctl_err_set(struct ctl_error *err, enum ctl_err code, const char *fmt, ...);
/* The type of j as messages name it ("object", "integer", ...). */
const char *ctl_json_type_name(const json_t *j);

#endif /* VMM_CTL_CTL_ARGS_H */
