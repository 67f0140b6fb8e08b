/* SPDX-License-Identifier: MIT */
/*
 * vcpu.h - one virtual CPU and the thread that runs it.
 *
 * The thread owns the kvm_run page and the counters; other threads only
 * set run->immediate_exit and send SIGVCPU_KICK (vcpu_kick) to make it
 * leave KVM_RUN, then wait on the VM's run control.
 */
#ifndef VMM_VCPU_H
#define VMM_VCPU_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/types.h>
#include <linux/kvm.h>

#define SIGVCPU_KICK  SIGUSR1
#define VCPU_SLICE_NS 100000 /* a vCPU thread's slice: the shortest */

/* vcpu_boost.c: where a vCPU's first stretch after a start stands. */
enum vcpu_boost {
	VCPU_BOOST_OFF,	  /* an ordinary thread */
	VCPU_BOOST_ARMED, /* staged and parked, SCHED_FIFO */
	VCPU_BOOST_ON,	  /* in its first stretch, the timer set */
};

/* vcpu_presave.c: the state a vCPU took as it parked for a pause. */
enum vcpu_presave {
	VCPU_PRESAVE_NONE,
	VCPU_PRESAVE_SAVING, /* its thread is taking it */
	VCPU_PRESAVE_DONE,   /* taken (or failed: presave_r) */
};

struct vm;

struct vcpu_stats {
	uint64_t exits;
	uint64_t io;
	uint64_t mmio;
	uint64_t intr;
};

struct vcpu {
	struct vm *vm;
	int id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;
	bool need_reentry; /* last exit must be completed by one more KVM_RUN */
	/* For vm_kick_sync: written by the vCPU thread, read by the kicker. */
	atomic_bool in_run;	    /* inside (or about to enter) KVM_RUN */
	atomic_uint_fast64_t epoch; /* KVM_RUN returns so far */
	atomic_bool ack_wanted;	    /* a kicker waits on vm->cond */
	struct vcpu_stats st;	    /* written by the vCPU thread only */
	unsigned int sleep_seen;    /* vm->sleep_seq carried out (own thread) */
	/* KVM's CPUID table as last set (vcpu_state.c may skip a load). */
	struct kvm_cpuid2 *cpuid;
	_Atomic pid_t tid; /* the thread's Linux id, once it runs (tests) */
	/* vcpu_boost.c, all the vCPU thread's own */
	enum vcpu_boost boost;
	timer_t boost_timer;
	bool boost_timer_ok;
	/*
	 * vcpu_presave.c: presave, presave_gen under vm->lock; the rest the
	 * vCPU thread's while SAVING, the loop thread's once DONE.
	 */
	enum vcpu_presave presave;
	uint64_t presave_gen;  /* the vm->pause_gen it was taken in */
	uint8_t *presave_blob; /* VMSTATE_BLOB_MAX bytes */
	size_t presave_len;
	int presave_r;
	char presave_why[160];
};

/* Create the vCPU (fd and kvm_run mapping). */
int vcpu_create(struct vcpu *v, struct vm *vm, int id, char *err,
		size_t errlen);
/*
 * The configuration's CPUID (KVM's supported table, the vCPU's APIC ID,
 * the hypervisor bit). Booting sets it; an incoming VM sets it at
 * creation too, so that the source's table, the same but for the bits
 * KVM rewrites at run time, need not be loaded in the downtime.
 */
int vcpu_set_cpuid(struct vcpu *v);
/* Put a new vCPU in 64-bit mode at entry, per common/guest_abi.h. */
int vcpu_boot_setup(struct vcpu *v, uint64_t entry, char *err, size_t errlen);
/*
 * A Multiboot guest: vCPU 0 at entry in 32-bit protected mode (EBX =
 * info), the others in the INIT state waiting for a Startup IPI.
 */
int vcpu_boot_entry32(struct vcpu *v, uint32_t entry, uint32_t info, char *err,
		      size_t errlen);
/*
 * Any other protocol (Linux PVH, bzImage): vCPU 0 in the state bsp()
 * writes (given the registers KVM_GET_SREGS returned), the others in the
 * INIT state waiting for a Startup IPI.
 */
typedef void (*vcpu_entry_fn)(struct kvm_sregs *s, struct kvm_regs *r,
			      const void *arg);
int vcpu_boot_start(struct vcpu *v, vcpu_entry_fn bsp, const void *arg,
		    char *err, size_t errlen);
/* ACPI S3, on the vCPU's own thread: wait for SIPI again... */
int vcpu_reset_wait_sipi(struct vcpu *v);
/* ...or (the BSP) wake in real mode at the FACS waking vector. */
int vcpu_wake_real_mode(struct vcpu *v, uint32_t vector);
int vcpu_start(struct vcpu *v);
/* Make the thread leave KVM_RUN soon (any thread). */
void vcpu_kick(struct vcpu *v);
void vcpu_destroy(struct vcpu *v);
/*
 * A staged vCPU's first stretch ahead of every ordinary thread on its CPU
 * (vcpu_boost.c), all on the vCPU's own thread: arm before it first parks,
 * begin when it leaves the park, end when KVM_RUN returns, free at its end.
 */
void vcpu_boost_arm(struct vcpu *v);
void vcpu_boost_begin(struct vcpu *v);
void vcpu_boost_end(struct vcpu *v);
void vcpu_boost_free(struct vcpu *v);
/*
 * The state taken on the vCPU's own thread as it parks for a pause that
 * asked for it (vm_pause_saving), vcpu_presave.c: begin decides (vm->lock
 * held), run takes it (not held), free at the vCPU's end. The loop thread
 * gets it with vcpu_presaved: -ENOENT when none was taken in this pause.
 */
bool vcpu_presave_begin(struct vcpu *v);
void vcpu_presave_run(struct vcpu *v);
int vcpu_presaved(struct vcpu *v, const uint8_t **blob, size_t *len, char *err,
		  size_t errlen);
void vcpu_presave_free(struct vcpu *v);
/* Install the (empty) kick signal handler; once per process. */
int vcpu_signals_init(void);

#endif /* VMM_VCPU_H */
