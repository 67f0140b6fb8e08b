/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h - shared between the libFuzzer target and its seed writer.
 */
#ifndef PROTO_FUZZ_H
#define PROTO_FUZZ_H

/* Write one valid frame of every kind into dir; returns 0 or -errno. */
int fuzz_write_seeds(const char *dir);

#endif /* PROTO_FUZZ_H */
