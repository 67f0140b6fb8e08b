/* SPDX-License-Identifier: MIT */
/*
 * sections.h - a paused VM's state (struct vm_snapshot) as the stream
 * carries it: a STATE frame per section (every vCPU, the VM, every device,
 * in the snapshot's order), then STATE_END. The switch-over sends it as
 * one write; a snapshot file stores it after its HELLO. Both readers (a
 * destination, a snapshot file's loader) take each section back with
 * mig_sections_add.
 */
#ifndef MIGRATION_SECTIONS_H
#define MIGRATION_SECTIONS_H

#include <stddef.h>
#include <stdint.h>

struct proto_state;
struct vm;
struct vm_snapshot;

/* Bytes mig_sections_encode writes for snap. */
size_t mig_sections_size(const struct vm_snapshot *snap);
/*
 * Every section's STATE frame and STATE_END into buf (room: cap, at least
 * mig_sections_size). Bytes written, or -errno (-E2BIG: a section too
 * large for a frame).
 */
int mig_sections_encode(const struct vm_snapshot *snap, uint8_t *buf,
			size_t cap);
/*
 * A decoded STATE section into snap, for vm's restore: a vCPU, the VM or a
 * device vm has, not in snap yet, no larger than the VM core's largest
 * valid blob of its kind (asked before anything is allocated for it).
 * -EPROTO with err naming the section when it is none of these, -ENOMEM.
 */
int mig_sections_add(struct vm *vm, struct vm_snapshot *snap,
		     const struct proto_state *ps, char *err, size_t errlen);

#endif /* MIGRATION_SECTIONS_H */
