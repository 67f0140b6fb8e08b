/* SPDX-License-Identifier: MIT */
/*
 * vmm/ctl/ - the control plane: the floor above migration/.
 *
 * It owns the control protocol (ctl_proto.c, ctl_args.c: one JSON object
 * per line, parsed and built without I/O, docs/control-api.md), the
 * control socket (control.c: the libuv server of a running VMM;
 * control_call.c: the blocking client vmmctl uses) and what a booted VMM
 * answers on it (boot_ctl.c: status, pause/resume/stop, statistics, dirty
 * logging, page walks; boot_mig.c: the migrate command and the events and
 * statistics of migration/). It uses migration/'s own types and names; it
 * knows nothing of the command line. Threads: the server and the handlers
 * run on the event-loop thread; control_post_event() may be called from
 * any thread (a mutex-guarded queue and a uv_async wake the loop).
 */
#ifndef VMM_CTL_CTL_H
#define VMM_CTL_CTL_H

#include "vmm/ctl/boot_app.h"
#include "vmm/ctl/control.h"
#include "vmm/ctl/ctl_proto.h"

#endif /* VMM_CTL_CTL_H */
