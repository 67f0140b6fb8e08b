/* SPDX-License-Identifier: MIT */
/*
 * vmm/ - the virtual machine: /dev/kvm, the VM and its vCPU threads, the
 * boot loader for test guests, pause/resume, and the control plane (the
 * JSON control socket and the vmmctl client).
 *
 * It owns the KVM file descriptors and the threads. It builds on ept/ for
 * guest RAM and on devices/ for the bus and device models, which it wires to
 * KVM through struct dev_host. Threads: one per vCPU (blocked in KVM_RUN)
 * and the event-loop thread (libuv: control socket, timers, signals), which
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
