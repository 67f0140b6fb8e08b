/* SPDX-License-Identifier: MIT */
/*
 * vmstate.h - save and restore the KVM state of a paused VM: each vCPU
 * (vcpu_state.c) and the VM-wide state (irqchip, PIT, clock:
 * vm_arch_state.c), as blobs of proto records (proto/proto.h: {tag, len,
 * bytes}). snapshot.h gathers them, with the device blobs, into the
 * machine's state.
 *
 * Save only with every vCPU stopped (vm_pause), which also guarantees that
 * a pending PIO/MMIO exit was completed by one more KVM_RUN with
 * immediate_exit. The KVM ordering rules are written as comments above the
 * code that obeys them. Runs on the thread that paused the VM.
 */
#ifndef VMM_VMSTATE_H
#define VMM_VMSTATE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

struct vm;
struct vcpu;

#define VMSTATE_VCPU_VERSION 1
#define VMSTATE_VM_VERSION   1

/* Largest blob any save produces (XSAVE, LAPIC, MSRs, device state). */
#define VMSTATE_BLOB_MAX (64 * 1024)

int vcpu_state_save(struct vcpu *v, struct proto_rec_writer *w, char *err,
		    size_t errlen);
int vcpu_state_load(struct vcpu *v, const uint8_t *blob, size_t len, char *err,
		    size_t errlen);

/*
 * The largest valid blob on this VM: a peer's section above it is refused
 * before it is kept (snapshot.h: vm_snapshot_section_max).
 */
size_t vcpu_state_max(const struct vm *vm);
/*
 * The guest pages KVM writes by itself while this vCPU blob is loaded
 * (KVM_SET_MSRS of the paravirtual MSRs that point at a guest area:
 * kvmclock, steal time, async PF, PV EOI): up to max page addresses into
 * gpa, how many, or -errno for a blob that does not parse.
 */
int vcpu_state_guest_pages(const uint8_t *blob, size_t len, uint64_t *gpa,
			   int max);
size_t vm_arch_state_max(void);

/*
 * The TSC frequency a guest saw, kept where it moves: KVM_SET_TSC_KHZ on
 * vCPU v where it ticks otherwise here (a no-op where it matches). 0, or
 * -errno with one line in err naming the vCPU, both rates and the cause.
 */
int vcpu_tsc_khz_set(struct vcpu *v, uint32_t khz, char *err, size_t errlen);
/* vCPU 0's TSC frequency in kHz, or -errno. */
int vm_tsc_khz(struct vm *vm);
/* vcpu_tsc_khz_set on every vCPU of a VM that is not running. */
int vm_tsc_khz_set(struct vm *vm, uint32_t khz, char *err, size_t errlen);

/* irqchip (PIC master, PIC slave, IOAPIC), PIT2, and KVM clock. */
int vm_arch_state_save(struct vm *vm, struct proto_rec_writer *w, char *err,
		       size_t errlen);
int vm_arch_state_load(struct vm *vm, const uint8_t *blob, size_t len,
		       char *err, size_t errlen);

#endif /* VMM_VMSTATE_H */
