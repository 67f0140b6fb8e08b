/* SPDX-License-Identifier: MIT */
/*
 * boot_app.h - the state of a `vmmctl boot` process, shared by
 * vmm/cli/cmd_boot.c (life cycle, event loop) and the control-command
 * handlers here (boot_ctl.c, boot_mig.c).
 */
#ifndef VMM_CTL_BOOT_APP_H
#define VMM_CTL_BOOT_APP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "migration/migration.h"
#include "migration/snapfile.h"
#include "vmm/ctl/control.h"
#include "vmm/ctl/serial_in.h"
#include "vmm/vm.h"

/* Everything below is owned by the event-loop thread. */
struct boot_app {
	uv_loop_t loop;
	struct vm vm;
	uint64_t dirty_mark_ns; /* dirty-log: start or last harvest */
	struct control ctl;
	bool has_ctl;
	uv_async_t exit_async;
	uv_signal_t sig_int, sig_term;
	uv_timer_t flush_timer;
	struct serial_in serial_in; /* the UART's input */
	const char *incoming;	    /* --incoming tcp:ADDR:PORT */
	struct mig_source *mig_src; /* the last outgoing migration */
	enum mig_mode mig_mode;	    /* the mode mig_src was started in */
	struct mig_dest *mig_dest;  /* the incoming migration */
	int held_signal; /* SIGTERM/SIGINT held by boot_guard.c, 0: none */
	struct snap_restore *restore; /* --restore: its file, lazy source */
	uint64_t snap_hb_seq; /* the last heartbeat in the last snapshot */
	/* Guest-driven events (boot_guest_event): any vCPU thread, atomics. */
	_Atomic uint64_t gev_second;	/* the second being counted */
	_Atomic uint64_t gev_in_second; /* events posted in it */
	_Atomic uint64_t gev_dropped;	/* over BOOT_GUEST_EVENTS_PER_S */
};

/* Guest-driven events (markers, stalls) posted per second, at most. */
#define BOOT_GUEST_EVENTS_PER_S 1000

/* Migration hooks (boot_ctl.c): events, and what an ending means. */
extern const struct mig_hooks boot_mig_src_hooks;
extern const struct mig_hooks boot_mig_dest_hooks;

/* The control handler (control_handler_fn) for a booted VM. */
int boot_handle(void *opaque, const struct ctl_request *req, json_t **result,
		struct ctl_error *err);

/*
 * boot_guard.c. True (why and out filled: the state, the way out) while
 * stopping or resuming the VM would lose it or run it on both hosts.
 */
bool boot_mig_guard(struct boot_app *app, char *why, size_t wlen, char *out,
		    size_t olen);
/* A signal that would end the VMM now: log it once, hold it (true). */
bool boot_guard_hold_signal(struct boot_app *app, int signum);
/* Act on a held signal once the guard allows it (a migration ended). */
void boot_guard_release(struct boot_app *app);

/*
 * Any thread: post a guest-driven event (a marker, a fault stall), unless
 * this second's BOOT_GUEST_EVENTS_PER_S are spent: then it is dropped and
 * counted (status "events"). Counters the event reports (status markers)
 * are kept by the device and stay exact.
 */
void boot_guest_event(struct boot_app *app, const char *name, json_t *data);

/* Inside vmm/ctl/: what boot_ctl.c and boot_mig.c share. */

/* stop/resume (verb): 0, or -1 with err filled while boot_mig_guard. */
int boot_guard_refuse(struct boot_app *app, const char *verb,
		      struct ctl_error *err);

/* The event loop must not touch guest RAM still at the source (vm.h). */
#define BOOT_RAM_ARRIVING                                                      \
	"guest RAM is still arriving from the migration source (post-copy): "  \
	"try again shortly"

/* Fill err with code and msg; returns -1 (the handler's failure). */
int boot_fail(struct ctl_error *err, enum ctl_err code, const char *msg);
/* The migrate command (boot_mig.c). */
int boot_migrate(struct boot_app *app, const struct ctl_request *req,
		 json_t **result, struct ctl_error *err);
/* status "migration": the outgoing migration's, else the incoming one's. */
json_t *boot_mig_status_json(struct boot_app *app);

/* Snapshots and restores (boot_snap.c). */
int boot_snapshot(struct boot_app *app, const struct ctl_request *req,
		  json_t **result, struct ctl_error *err);
/* status/stats "restore"; NULL when the VM was not restored. */
json_t *boot_restore_json(struct boot_app *app);
/*
 * --restore FILE: restore the VM (created incoming) and start its vCPUs.
 * 0, or -errno with one line in err.
 */
int boot_restore_start(struct boot_app *app, const char *path, bool lazy,
		       uint64_t record_ms, bool ws_race, char *err,
		       size_t errlen);
/* After vm_join: stop the lazy loader. Then free, before vm_destroy. */
void boot_restore_stop(struct boot_app *app);
void boot_restore_free(struct boot_app *app);

#endif /* VMM_CTL_BOOT_APP_H */
