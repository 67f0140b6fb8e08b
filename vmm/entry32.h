/* SPDX-License-Identifier: MIT */
/*
 * entry32.h - architectural start states of a vCPU, as pure functions over
 * struct kvm_sregs / struct kvm_regs (no ioctl: the caller does
 * KVM_GET_SREGS, calls these, then KVM_SET_SREGS and KVM_SET_REGS).
 *
 * entry32_multiboot(): the Multiboot v1 machine state (spec section 3.2):
 * 32-bit protected mode, paging off, flat 4 GiB code (selector 0x08) and
 * data (0x10) segments, EFLAGS.IF clear, EAX = 0x2BADB002, EBX = the
 * information structure, EIP = the entry point, no stack. GDTR/IDTR are
 * left empty: the guest loads its own before it reloads a segment.
 *
 * entry32_reset(): the state after RESET/INIT (SDM vol. 3, 9.1.1): real
 * mode, CS 0xf000 with base 0xffff0000, IP 0xfff0, CR0 0x60000010. It is
 * the state of an application processor waiting for a Startup IPI. What the
 * caller must do for such an AP, with KVM's in-kernel LAPIC (KVM_CREATE_IRQCHIP
 * before KVM_CREATE_VCPU): set these registers, then KVM_SET_MP_STATE
 * KVM_MP_STATE_INIT_RECEIVED (not RUNNABLE), then KVM_RUN it as usual:
 * KVM blocks inside KVM_RUN until a SIPI arrives and then starts the vCPU
 * at CS = vector << 8, base vector << 12, IP 0, keeping the other registers
 * set here. A vCPU in KVM_MP_STATE_UNINITIALIZED (KVM's own state for a
 * fresh AP) also works for guests that send INIT before SIPI (all of
 * kvm-unit-tests does), but drops a SIPI sent without INIT.
 */
#ifndef VMM_ENTRY32_H
#define VMM_ENTRY32_H

#include <linux/kvm.h>
#include <stdint.h>

#define ENTRY32_SEL_CODE 0x08
#define ENTRY32_SEL_DATA 0x10
#define ENTRY32_CR0_PE	 (1ULL << 0)
#define ENTRY32_CR0_ET	 (1ULL << 4)
#define ENTRY32_CR0_NW	 (1ULL << 29)
#define ENTRY32_CR0_CD	 (1ULL << 30)
#define ENTRY32_RFLAGS	 0x2ULL /* reserved bit 1; IF clear */

/* Multiboot entry; sregs->apic_base and interrupt_bitmap are kept. */
void entry32_multiboot(struct kvm_sregs *s, struct kvm_regs *r, uint32_t entry,
		       uint32_t info);

/*
 * PVH entry (Xen's HVM direct boot ABI): the Multiboot state with EAX 0
 * and EBX = the hvm_start_info address.
 */
void entry32_pvh(struct kvm_sregs *s, struct kvm_regs *r, uint32_t entry,
		 uint32_t start_info);

/* RESET/INIT state (an AP waiting for SIPI); apic_base is kept. */
void entry32_reset(struct kvm_sregs *s, struct kvm_regs *r);

#endif /* VMM_ENTRY32_H */
