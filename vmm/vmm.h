/* SPDX-License-Identifier: MIT */
/*
 * vmm/ - the VM core: /dev/kvm, the VM and its vCPU threads, the boot
 * loader for test guests, pause/resume, GVA->GPA walks of a live vCPU and
 * the machine state save/restore.
 *
 * It owns the KVM file descriptors and the threads. It builds on ept/ for
 * guest RAM and on devices/ for the bus and device models, which it wires to
 * KVM through struct dev_host. It knows nothing of migration/ or of the
 * control plane above it (vmm/ctl/, vmm/cli/): it reports through the
 * on_exit/on_event callbacks its owner sets. Threads: one per vCPU (blocked
 * in KVM_RUN) and the owner's thread (the event loop in vmmctl boot), which
 * is the thread that creates, pauses, resumes and destroys the VM.
 */
#ifndef VMM_VMM_H
#define VMM_VMM_H

#include "vmm/kvm.h"
#include "vmm/vm.h"
#include "vmm/vcpu.h"
#include "vmm/boot.h"
#include "vmm/loader.h"

#endif /* VMM_VMM_H */
