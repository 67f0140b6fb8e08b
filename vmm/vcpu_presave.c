/* SPDX-License-Identifier: MIT */
/*
 * vcpu_presave.c - a vCPU's state taken on its own thread as it parks for
 * a pause that asked for it (vm_pause_saving), so that a migration's
 * switch-over does not wait for it.
 *
 * Taking a vCPU's state is ~11 KVM_GET_* ioctls, ~0.11 ms on our nested
 * hosts, all of it in the downtime when the loop thread takes it after
 * the stop-copy's pages are queued (docs/benchmarks.md, "The last pass
 * before the pause": state taken 170 us after RAM_END). Asked at the
 * pause, each vCPU thread takes its own as it parks, on its own CPU (idle
 * from then on), while the loop thread harvests the dirty log and queues
 * the last pages; vm_snapshot_take then finds it done. The vCPU is parked
 * from its first ioctl on (it entered vcpu_park after completing any exit
 * that needed one more KVM_RUN, and goes back into KVM_RUN only once the
 * pause ends), so the state is the one the loop thread would have read.
 *
 * State: presave, presave_gen are guarded by vm->lock (changes broadcast
 * on vm->cond); presave_blob, presave_len, presave_r and presave_why are
 * written by the vCPU thread while presave is VCPU_PRESAVE_SAVING and read
 * by the loop thread only once it is VCPU_PRESAVE_DONE for this pause.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "proto/proto.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"
#include "vmm/vmstate.h"

/* vm->lock held, on the vCPU thread: true when the state is to be taken. */
bool vcpu_presave_begin(struct vcpu *v)
{
	struct vm *vm = v->vm;

	if (!vm->presave || !v->presave_blob ||
	    (v->presave != VCPU_PRESAVE_NONE &&
	     v->presave_gen == vm->pause_gen))
		return false;
	v->presave = VCPU_PRESAVE_SAVING;
	v->presave_gen = vm->pause_gen;
	return true;
}

/* On the vCPU thread, vm->lock not held: take it, then say so. */
void vcpu_presave_run(struct vcpu *v)
{
	struct proto_rec_writer w;

	proto_rec_writer_init(&w, v->presave_blob, VMSTATE_BLOB_MAX);
	v->presave_why[0] = '\0';
	v->presave_r =
		vcpu_state_save(v, &w, v->presave_why, sizeof(v->presave_why));
	v->presave_len = w.len;
	pthread_mutex_lock(&v->vm->lock);
	v->presave = VCPU_PRESAVE_DONE;
	pthread_cond_broadcast(&v->vm->cond);
	pthread_mutex_unlock(&v->vm->lock);
}

/*
 * Loop thread, the VM paused: the state v took in this pause, waited for
 * if still being taken. 0 with *blob and *len set; -ENOENT when v took
 * none (its thread never ran, or the pause did not ask); its error else.
 */
int vcpu_presaved(struct vcpu *v, const uint8_t **blob, size_t *len, char *err,
		  size_t errlen)
{
	struct vm *vm = v->vm;
	int r = -ENOENT;

	pthread_mutex_lock(&vm->lock);
	while (v->presave == VCPU_PRESAVE_SAVING &&
	       v->presave_gen == vm->pause_gen)
		pthread_cond_wait(&vm->cond, &vm->lock);
	if (vm->state == VM_PAUSED && v->presave == VCPU_PRESAVE_DONE &&
	    v->presave_gen == vm->pause_gen)
		r = v->presave_r;
	pthread_mutex_unlock(&vm->lock);
	if (r == 0) {
		*blob = v->presave_blob;
		*len = v->presave_len;
	} else if (r != -ENOENT) {
		err_set(err, errlen, "%s", v->presave_why);
	}
	return r;
}

/* Loop thread: pause, each vCPU taking its own state as it parks. */
int vm_pause_saving(struct vm *vm)
{
	int r;

	for (int i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (!v->presave_blob)
			v->presave_blob = malloc(VMSTATE_BLOB_MAX);
	}
	pthread_mutex_lock(&vm->lock);
	vm->presave = true;
	pthread_mutex_unlock(&vm->lock);
	/* Each vCPU decides under vm->lock as it parks (vm_pause waits). */
	r = vm_pause(vm);
	pthread_mutex_lock(&vm->lock);
	vm->presave = false;
	pthread_mutex_unlock(&vm->lock);
	return r;
}

void vcpu_presave_free(struct vcpu *v)
{
	free(v->presave_blob);
	v->presave_blob = NULL;
	v->presave = VCPU_PRESAVE_NONE;
}
