/* SPDX-License-Identifier: MIT */
/*
 * vmstate_rec.c - the blobs of machine state: a run of proto records
 * {u32 tag, u32 len, len bytes padded to 8} (proto/proto.h), in any order
 * on load, each tag exactly once, the first a header with the blob's
 * version. A loader parses and checks a whole blob here (unknown tags,
 * sizes, duplicates, missing records, version) before its first ioctl.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/vmstate_rec.h"

static int rec_check_one(const char *what, const struct rec_type *types,
			 uint32_t ntypes, const struct rec_set *set,
			 uint32_t tag, uint32_t len, size_t off, char *err,
			 size_t errlen)
{
	const struct rec_type *t;

	if (tag == 0 || tag >= ntypes || !types[tag].name) {
		snprintf(err, errlen, "%s: unknown record tag %u at offset %zu",
			 what, tag, off);
		return -EPROTO;
	}
	t = &types[tag];
	if (set->seen[tag]) {
		snprintf(err, errlen, "%s: duplicate %s record at offset %zu",
			 what, t->name, off);
		return -EPROTO;
	}
	if (t->var ? len < t->size : len != t->size) {
		snprintf(err, errlen, "%s: %s record of %u bytes, want %s%u",
			 what, t->name, len, t->var ? "at least " : "",
			 t->size);
		return -EPROTO;
	}
	return 0;
}

int rec_parse(const char *what, const struct rec_type *types, uint32_t ntypes,
	      const uint8_t *blob, size_t len, struct rec_set *set, char *err,
	      size_t errlen)
{
	struct proto_rec_reader rd;
	const uint8_t *data;
	uint32_t tag, dlen;
	size_t off = 0;
	int r;

	memset(set, 0, sizeof(*set));
	proto_rec_reader_init(&rd, blob, len);
	while ((r = proto_rec_next(&rd, &tag, &data, &dlen)) > 0) {
		r = rec_check_one(what, types, ntypes, set, tag, dlen, off, err,
				  errlen);
		if (r)
			return r;
		set->seen[tag] = true;
		set->data[tag] = data;
		set->len[tag] = dlen;
		off = rd.off;
	}
	if (r < 0) {
		snprintf(err, errlen,
			 "%s: truncated record at offset %zu of %zu", what, off,
			 len);
		return -EPROTO;
	}
	for (tag = 1; tag < ntypes; tag++) {
		if (types[tag].name && !set->seen[tag]) {
			snprintf(err, errlen, "%s: no %s record", what,
				 types[tag].name);
			return -EPROTO;
		}
	}
	return 0;
}

int rec_check_hdr(const char *what, const struct rec_set *set, uint32_t tag,
		  uint32_t version, uint32_t id, char *err, size_t errlen)
{
	struct vmstate_hdr h;

	memcpy(&h, set->data[tag], sizeof(h));
	if (h.version != version) {
		snprintf(err, errlen, "%s: version %u, this VMM reads %u", what,
			 h.version, version);
		return -EPROTO;
	}
	if (h.id != id) {
		snprintf(err, errlen, "%s: the blob is for id %u, not %u", what,
			 h.id, id);
		return -EPROTO;
	}
	return 0;
}

void rec_put_hdr(struct proto_rec_writer *w, uint32_t tag, uint32_t version,
		 uint32_t id)
{
	struct vmstate_hdr h = {.version = version, .id = id};

	proto_rec_put(w, tag, &h, sizeof(h));
}

/* A copy of a record in aligned memory, for the kernel (free() it). */
void *rec_dup(const struct rec_set *set, uint32_t tag, size_t size)
{
	void *p = calloc(1, size);

	if (p)
		memcpy(p, set->data[tag], set->len[tag]);
	return p;
}

size_t rec_blob_max(const struct rec_type *types, uint32_t ntypes,
		    const uint32_t *var_max)
{
	size_t n = 0;

	for (uint32_t t = 1; t < ntypes; t++) {
		size_t len = types[t].var ? var_max[t] : types[t].size;

		n += 8 + ((len + 7) & ~(size_t)7); /* proto_rec_put's framing */
	}
	return n;
}

int rec_writer_check(const char *what, const struct proto_rec_writer *w,
		     char *err, size_t errlen)
{
	if (!w->overflow)
		return 0;
	snprintf(err, errlen, "%s: state does not fit in %zu bytes", what,
		 w->cap);
	return -ENOSPC;
}
