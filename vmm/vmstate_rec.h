/* SPDX-License-Identifier: MIT */
/*
 * vmstate_rec.h - parse, check and write the record blobs of machine state
 * (vmstate_rec.c); shared by the vCPU, VM and device state code of vmm/.
 * Internal to vmm/: the blob formats are described where they are built.
 */
#ifndef VMM_VMSTATE_REC_H
#define VMM_VMSTATE_REC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

#define REC_MAX_TAGS 16

/* The first record of every blob. */
struct vmstate_hdr {
	uint32_t version;
	uint32_t id;
};

struct rec_type {
	const char *name;
	uint32_t size; /* exact size; with var, the minimum */
	bool var;      /* header + entries: the loader checks the count */
};

/* A parsed blob: the record of each tag (all of them are mandatory). */
struct rec_set {
	const uint8_t *data[REC_MAX_TAGS];
	uint32_t len[REC_MAX_TAGS];
	bool seen[REC_MAX_TAGS];
};

/*
 * Parse blob into set, checking each record against types[1..ntypes-1]
 * (what names the blob in messages): -EPROTO with err set unless every
 * named type is there exactly once, at its size.
 */
int rec_parse(const char *what, const struct rec_type *types, uint32_t ntypes,
	      const uint8_t *blob, size_t len, struct rec_set *set, char *err,
	      size_t errlen);
/* The header record at tag: this version, this id, or -EPROTO. */
int rec_check_hdr(const char *what, const struct rec_set *set, uint32_t tag,
		  uint32_t version, uint32_t id, char *err, size_t errlen);
void rec_put_hdr(struct proto_rec_writer *w, uint32_t tag, uint32_t version,
		 uint32_t id);
/* A copy of a record in aligned memory, for the kernel (free() it). */
void *rec_dup(const struct rec_set *set, uint32_t tag, size_t size);
/*
 * The largest blob of these types: every record at its size, a var one at
 * var_max[tag] bytes, each with its framing (tag, length, padding to 8).
 */
size_t rec_blob_max(const struct rec_type *types, uint32_t ntypes,
		    const uint32_t *var_max);
/* -ENOSPC with err set when the writer overflowed. */
int rec_writer_check(const char *what, const struct proto_rec_writer *w,
		     char *err, size_t errlen);

#endif /* VMM_VMSTATE_REC_H */
