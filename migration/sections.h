/* SPDX-License-Identifier: MIT */
/*
 * sections.h - a paused VM's state (struct vm_snapshot) as the stream
 * carries it: a STATE frame per section (every vCPU, the VM, every device,
 * in the snapshot's order), then STATE_END. The switch-over sends it as
 * one write; a snapshot file stores it after its HELLO.
 */
#ifndef MIGRATION_SECTIONS_H
#define MIGRATION_SECTIONS_H

#include <stddef.h>
#include <stdint.h>

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

#endif /* MIGRATION_SECTIONS_H */
