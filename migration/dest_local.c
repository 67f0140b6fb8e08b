/* SPDX-License-Identifier: MIT */
/*
 * dest_local.c - the destination of a live update (unix:PATH; dest.h,
 * docs/migration.md "Live update"): listen on the socket file, take the
 * first connection whose header brings a memfd, and at HELLO map that
 * memfd as guest RAM in place of the one created at boot (vm_mem_adopt:
 * --mem-prealloc and --mlock act on it there, while the source still
 * runs), then check HELLO as any destination does. The rest - the state
 * sections, restore, READY, GO - is dest.c's usual flow. Loop thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migration/dest.h"
#include "vmm/vm.h"

/* A source's header and memfd came: the socket is the main channel now. */
static void dest_local_on_accept(struct mig_unix *u, int sock, int memfd,
				 const struct mig_unix_hdr *h)
{
	struct mig_dest *d = u->opaque;
	char err[256];

	(void)h; /* its size is checked against ours at HELLO */
	d->local_memfd = memfd;
	if (mig_unix_adopt(&d->ss.ch, d->ss.loop, d->spec, sock,
			   &dest_channel_ops, d, err, sizeof(err))) {
		dest_fail(d, "%s", err);
		return;
	}
	dest_channel_ops.on_connect(&d->ss.ch);
}

int dest_local_listen(struct mig_dest *d, const char *spec, char *err,
		      size_t errlen)
{
	d->local = true;
	return mig_unix_listen(&d->ux, d->ss.loop, spec, dest_local_on_accept,
			       d, err, errlen);
}

/* HELLO: guest RAM becomes the source's memfd, then the usual checks. */
int dest_local_hello(struct mig_dest *d, const uint8_t *p, size_t len,
		     char *err, size_t errlen)
{
	char why[256];
	int fd = d->local_memfd, r;

	if (fd < 0) {
		snprintf(err, errlen, "HELLO again, or without guest RAM");
		return -EPROTO;
	}
	d->local_memfd = -1; /* the VM's from here on */
	r = vm_mem_adopt(d->ss.vm, fd, why, sizeof(why));
	mig_unix_touch(&d->ss.ch); /* --mem-prealloc may take seconds */
	if (r) {
		snprintf(err, errlen, "%s%s",
			 r == -EINVAL ? "incompatible VM: " : "", why);
		return r;
	}
	return dest_recv_hello(d, p, len, err, errlen);
}

/*
 * STATE_END: restore as any destination. Test knob VMM_TEST_LOCAL_CRASH=1
 * (docs/migration.md): exit at once instead, as a new VMM that crashes
 * after the source paused and before READY would; the source must resume.
 */
int dest_local_restore(struct mig_dest *d, char *err, size_t errlen)
{
	const char *knob = getenv("VMM_TEST_LOCAL_CRASH");

	if (knob && !strcmp(knob, "1")) {
		fprintf(stderr, "vmm: VMM_TEST_LOCAL_CRASH=1: exiting before "
				"the restore\n");
		_exit(9);
	}
	return dest_switch_restore(d, err, errlen);
}
