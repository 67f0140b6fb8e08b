/* SPDX-License-Identifier: MIT */
/*
 * hello.h - this VM's shape as the handshake describes it, built the same
 * way on both sides so that proto_hello_compare() can refuse a mismatch.
 */
#ifndef MIGRATION_HELLO_H
#define MIGRATION_HELLO_H

#include "proto/proto.h"

struct vm;

void mig_hello_local(struct vm *vm, uint64_t caps, struct proto_hello *h);

#endif /* MIGRATION_HELLO_H */
