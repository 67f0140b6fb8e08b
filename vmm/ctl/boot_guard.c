/* SPDX-License-Identifier: MIT */
/*
 * boot_guard.c - what an operator may not do to a VM while a migration
 * holds it: stop or resume it (control commands) and end the process
 * (SIGTERM, SIGINT) when that would lose the only whole copy of some
 * memory or run the VM on both hosts. Such a command is refused with one
 * line naming the state and the way out; a signal is held (logged once)
 * and acted on when the migration ends. Everything runs on the event-loop
 * thread.
 *
 *   source, before GO   stop is a plain stop (the destination discards
 *                       what it received); resume of a VM the migration
 *                       paused cancels the migration first
 *   source, after GO    until the migration ends (completed, failed,
 *                       aborted): refused / held
 *   destination         while post-copy pages are still arriving
 *                       (ram_incomplete): refused / held
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "vmm/ctl/boot_app.h"

/* The way out of a post-copy migration, on this VMM's socket. */
static void boot_guard_abort_hint(struct boot_app *app, char *out, size_t len)
{
	snprintf(out, len, "run `vmmctl migrate --api %s --abort --confirm`",
		 app->has_ctl ? app->ctl.path : "SOCK");
}

bool boot_mig_guard(struct boot_app *app, char *why, size_t wlen, char *out,
		    size_t olen)
{
	const struct mig_stats *st;

	if (app->mig_src && mig_source_after_go(app->mig_src)) {
		st = mig_source_stats(app->mig_src);
		snprintf(why, wlen, "migration in %s: %s",
			 mig_state_name(st->state),
			 st->postcopy
				 ? "the destination runs the VM and lacks "
				   "pages only this host holds"
				 : "the destination was told to run the VM");
		if (st->postcopy)
			boot_guard_abort_hint(app, out, olen);
		else
			snprintf(out, olen, "wait: it ends in moments");
		return true;
	}
	if (app->mig_dest && atomic_load(&app->vm.ram_incomplete)) {
		st = mig_dest_stats(app->mig_dest);
		snprintf(why, wlen,
			 "incoming migration in postcopy (%s): guest RAM is "
			 "still arriving and stopping now loses the VM",
			 mig_state_name(st->state));
		boot_guard_abort_hint(app, out, olen);
		return true;
	}
	return false;
}

int boot_guard_refuse(struct boot_app *app, const char *verb,
		      struct ctl_error *err)
{
	char why[256], out[160], msg[512];

	if (!boot_mig_guard(app, why, sizeof(why), out, sizeof(out)))
		return 0;
	snprintf(msg, sizeof(msg),
		 "%s refused: %s; wait for the migration to end, or %s", verb,
		 why, out);
	return boot_fail(err, CTL_ERR_BAD_STATE, msg);
}

static const char *boot_guard_signame(int signum)
{
	return signum == SIGINT ? "SIGINT" : "SIGTERM";
}

bool boot_guard_hold_signal(struct boot_app *app, int signum)
{
	char why[256], out[160];

	if (!boot_mig_guard(app, why, sizeof(why), out, sizeof(out)))
		return false;
	if (!app->held_signal)
		fprintf(stderr,
			"vmmctl boot: %s held: %s; it will stop when the "
			"migration ends, or %s\n",
			boot_guard_signame(signum), why, out);
	app->held_signal = signum;
	return true;
}

void boot_guard_release(struct boot_app *app)
{
	int signum = app->held_signal;
	char why[256], out[160];

	if (!signum || boot_mig_guard(app, why, sizeof(why), out, sizeof(out)))
		return;
	app->held_signal = 0;
	/* A completed source has already asked to exit 0, as it always does. */
	vm_request_exit(&app->vm, 128 + signum,
			"received %s (held until the migration ended)",
			boot_guard_signame(signum));
}
