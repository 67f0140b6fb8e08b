/* SPDX-License-Identifier: MIT */
/*
 * ptwalk.c - the x86-64 guest page-table walker (Intel SDM vol. 3, 4.5):
 * 4-level paging only, with 4 KiB, 2 MiB and 1 GiB leaves, the reserved-bit
 * checks a real MMU makes (address bits at or above MAXPHYADDR, XD without
 * EFER.NXE, PS in a PML4E, the low frame bits of large leaves) and the
 * effective rights (R/W and U/S ANDed over the levels, XD ORed). Guest
 * memory is only reached through the caller's read callback; there is no
 * global state. A table that cannot be read stops the walk with
 * PTW_BAD_TABLE: its step is still recorded (table address and index) with
 * entry 0, so ptw_format can say which address was not RAM. With paging off
 * the result is GVA == GPA, a 4 KiB "page" with every right. Page tables may
 * point back at themselves (a recursive PML4 slot is legal x86): a
 * translation is bounded by the four levels, never by following pointers,
 * and the leaf enumeration reads each table page once, within a budget of
 * pages and time (its only state is a set of the tables it has read, freed
 * before it returns).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "ept/ptwalk.h"

#define PTW_BITS(hi, lo) ((~0ULL >> (63 - (hi))) & (~0ULL << (lo)))

#define PTW_CR0_PG   (1ULL << 31)
#define PTW_CR4_PAE  (1ULL << 5)
#define PTW_CR4_LA57 (1ULL << 12)
#define PTW_EFER_LMA (1ULL << 10)
#define PTW_EFER_NXE (1ULL << 11)

#define PTE_P	(1ULL << 0)
#define PTE_RW	(1ULL << 1)
#define PTE_US	(1ULL << 2)
#define PTE_PWT (1ULL << 3)
#define PTE_PCD (1ULL << 4)
#define PTE_A	(1ULL << 5)
#define PTE_D	(1ULL << 6)
#define PTE_PS	(1ULL << 7) /* PAT in a level-1 PTE */
#define PTE_G	(1ULL << 8)
#define PTE_XD	(1ULL << 63)

#define PTW_ENTRIES 512
#define PTW_PAGE    4096ULL

/* MAXPHYADDR clamped to what the frame fields can hold: [12, 52]. */
static unsigned int ptw_maxphyaddr(const struct ptw_ctx *c)
{
	if (c->maxphyaddr == 0 || c->maxphyaddr > 52)
		return 52;
	if (c->maxphyaddr < 12)
		return 12;
	return c->maxphyaddr;
}

/* The frame-address field of CR3 or an entry: bits maxphyaddr-1:12. */
static uint64_t ptw_addr_mask(const struct ptw_ctx *c)
{
	return PTW_BITS(ptw_maxphyaddr(c) - 1, 12);
}

static unsigned int ptw_shift(int level)
{
	return 12 + 9 * (level - 1);
}

static uint64_t ptw_level_size(int level)
{
	return 1ULL << ptw_shift(level);
}

static unsigned int ptw_index(uint64_t gva, int level)
{
	return (gva >> ptw_shift(level)) & (PTW_ENTRIES - 1);
}

static bool ptw_is_leaf(int level, uint64_t e)
{
	return level == 1 || ((level == 2 || level == 3) && (e & PTE_PS));
}

/* Reserved bits that are set in the present entry e at level. */
static uint64_t ptw_reserved(const struct ptw_ctx *c, int level, uint64_t e)
{
	uint64_t rsvd = 0;

	if (ptw_maxphyaddr(c) < 52)
		rsvd |= PTW_BITS(51, ptw_maxphyaddr(c));
	if (!(c->efer & PTW_EFER_NXE))
		rsvd |= PTE_XD;
	if (level == 4)
		rsvd |= PTE_PS;
	else if (level == 3 && (e & PTE_PS))
		rsvd |= PTW_BITS(29, 13);
	else if (level == 2 && (e & PTE_PS))
		rsvd |= PTW_BITS(20, 13);
	return e & rsvd;
}

/* PTW_OK when c describes 4-level long mode, else why not. */
static enum ptw_status ptw_check_mode(const struct ptw_ctx *c)
{
	if (!(c->cr0 & PTW_CR0_PG))
		return PTW_NO_PAGING;
	if (!(c->cr4 & PTW_CR4_PAE) || !(c->efer & PTW_EFER_LMA))
		return PTW_UNSUPPORTED;
	if (c->cr4 & PTW_CR4_LA57)
		return PTW_UNSUPPORTED;
	return PTW_OK;
}

static bool ptw_canonical(uint64_t gva)
{
	uint64_t top = gva >> 47;

	return top == 0 || top == 0x1ffff;
}

/* Sign-extend bit 47. */
static uint64_t ptw_canonicalize(uint64_t gva)
{
	return (gva & (1ULL << 47)) ? gva | PTW_BITS(63, 48)
				    : gva & PTW_BITS(47, 0);
}

static int ptw_fail(struct ptw_result *r, enum ptw_status status)
{
	r->status = status;
	r->writable = r->user = r->nx = false;
	return -EFAULT;
}

static void ptw_set_leaf(const struct ptw_ctx *c, uint64_t gva, int level,
			 uint64_t e, struct ptw_result *r)
{
	uint64_t size = ptw_level_size(level);

	r->status = PTW_OK;
	r->page_size = size;
	r->gpa = (e & ptw_addr_mask(c) & ~(size - 1)) | (gva & (size - 1));
	r->accessed = e & PTE_A;
	r->dirty = e & PTE_D;
}

/* Read one level's entry into a new step; false when the table is not RAM. */
static bool ptw_read_step(const struct ptw_ctx *c, int level, uint64_t table,
			  uint64_t gva, struct ptw_result *r)
{
	struct ptw_step *s = &r->steps[r->nr_steps++];
	uint64_t e = 0;

	s->level = level;
	s->table_gpa = table;
	s->index = ptw_index(gva, level);
	r->level = level;
	if (c->read(c->opaque, table + (uint64_t)s->index * 8, &e)) {
		s->entry = 0;
		return false;
	}
	s->entry = e;
	return true;
}

static int ptw_walk(const struct ptw_ctx *c, uint64_t gva, struct ptw_result *r)
{
	uint64_t table = c->cr3 & ptw_addr_mask(c);

	r->writable = r->user = true;
	for (int level = 4; level >= 1; level--) {
		uint64_t e;

		if (!ptw_read_step(c, level, table, gva, r))
			return ptw_fail(r, PTW_BAD_TABLE);
		e = r->steps[r->nr_steps - 1].entry;
		if (!(e & PTE_P))
			return ptw_fail(r, PTW_NOT_PRESENT);
		if (ptw_reserved(c, level, e))
			return ptw_fail(r, PTW_RESERVED);
		r->writable &= !!(e & PTE_RW);
		r->user &= !!(e & PTE_US);
		r->nx |= !!(e & PTE_XD);
		if (ptw_is_leaf(level, e)) {
			ptw_set_leaf(c, gva, level, e, r);
			return 0;
		}
		table = e & ptw_addr_mask(c);
	}
	return ptw_fail(r, PTW_BAD_TABLE); /* not reached: a PTE is a leaf */
}

int ptw_translate(const struct ptw_ctx *c, uint64_t gva, struct ptw_result *r)
{
	memset(r, 0, sizeof(*r));
	r->status = ptw_check_mode(c);
	if (r->status == PTW_NO_PAGING) {
		r->gpa = gva;
		r->page_size = PTW_PAGE;
		r->writable = r->user = true;
		return 0;
	}
	if (r->status != PTW_OK)
		return -EFAULT;
	if (!ptw_canonical(gva))
		return ptw_fail(r, PTW_NON_CANONICAL);
	return ptw_walk(c, gva, r);
}

const char *ptw_status_name(enum ptw_status s)
{
	static const char *const names[] = {
		[PTW_OK] = "ok",
		[PTW_NOT_PRESENT] = "not-present",
		[PTW_RESERVED] = "reserved-bit",
		[PTW_NON_CANONICAL] = "non-canonical",
		[PTW_NO_PAGING] = "paging-off",
		[PTW_UNSUPPORTED] = "unsupported",
		[PTW_BAD_TABLE] = "bad-table",
	};

	if ((unsigned int)s >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[s];
}

/* snprintf accounting: pos counts what would have been written. */
struct ptw_buf {
	char *buf;
	size_t len;
	size_t pos;
};

__attribute__((format(printf, 2, 3))) static void
ptw_printf(struct ptw_buf *b, const char *fmt, ...)
{
	char *dst = NULL;
	size_t room = 0;
	va_list ap;
	int n;

	if (b->pos < b->len) {
		dst = b->buf + b->pos;
		room = b->len - b->pos;
	}
	va_start(ap, fmt);
	n = vsnprintf(dst, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		b->pos += (size_t)n;
}

static const char *ptw_level_name(int level)
{
	static const char *const names[] = {"?", "PT", "PD", "PDPT", "PML4"};

	return level >= 1 && level <= 4 ? names[level] : names[0];
}

static const char *ptw_size_name(uint64_t size)
{
	if (size == 1ULL << 30)
		return "1 GiB";
	if (size == 1ULL << 21)
		return "2 MiB";
	return "4 KiB";
}

static void ptw_format_flags(struct ptw_buf *b, int level, uint64_t e)
{
	bool leaf = ptw_is_leaf(level, e);

	if (!(e & PTE_P))
		return;
	ptw_printf(b, " P");
	if (e & PTE_RW)
		ptw_printf(b, " W");
	if (e & PTE_US)
		ptw_printf(b, " U");
	if (e & PTE_PWT)
		ptw_printf(b, " PWT");
	if (e & PTE_PCD)
		ptw_printf(b, " PCD");
	if (e & PTE_A)
		ptw_printf(b, " A");
	if (leaf && (e & PTE_D))
		ptw_printf(b, " D");
	if (e & PTE_PS)
		ptw_printf(b, level == 1 ? " PAT" : " PS");
	if (leaf && (e & PTE_G))
		ptw_printf(b, " G");
	if (e & PTE_XD)
		ptw_printf(b, " XD");
}

static void ptw_format_step(struct ptw_buf *b, const struct ptw_result *r,
			    const struct ptw_step *s, bool last)
{
	ptw_printf(b, "%s[0x%03x] @ 0x%016" PRIx64 " = ",
		   ptw_level_name(s->level), s->index, s->table_gpa);
	if (last && r->status == PTW_BAD_TABLE) {
		ptw_printf(b, "<not RAM>\n");
		return;
	}
	ptw_printf(b, "0x%016" PRIx64, s->entry);
	ptw_format_flags(b, s->level, s->entry);
	ptw_printf(b, "\n");
}

static void ptw_format_end(struct ptw_buf *b, const struct ptw_result *r,
			   uint64_t gva)
{
	switch (r->status) {
	case PTW_OK:
		ptw_printf(b,
			   "GVA 0x%016" PRIx64 " -> GPA 0x%016" PRIx64
			   " (%s page, %s, %s%s%s%s)\n",
			   gva, r->gpa, ptw_size_name(r->page_size),
			   r->writable ? "rw" : "ro",
			   r->user ? "user" : "supervisor", r->nx ? ", nx" : "",
			   r->accessed ? ", accessed" : "",
			   r->dirty ? ", dirty" : "");
		break;
	case PTW_NO_PAGING:
		ptw_printf(b,
			   "GVA 0x%016" PRIx64 " -> GPA 0x%016" PRIx64
			   " (paging off)\n",
			   gva, r->gpa);
		break;
	case PTW_NOT_PRESENT:
	case PTW_RESERVED:
	case PTW_BAD_TABLE:
		ptw_printf(b,
			   "GVA 0x%016" PRIx64
			   ": stopped at %s (level %d): %s\n",
			   gva, ptw_level_name(r->level), r->level,
			   ptw_status_name(r->status));
		break;
	default:
		ptw_printf(b, "GVA 0x%016" PRIx64 ": %s\n", gva,
			   ptw_status_name(r->status));
		break;
	}
}

int ptw_format(const struct ptw_result *r, uint64_t gva, char *buf, size_t len)
{
	struct ptw_buf b = {.buf = buf, .len = len, .pos = 0};
	int n = r->nr_steps < 0 ? 0 : r->nr_steps > 4 ? 4 : r->nr_steps;

	if (len)
		buf[0] = '\0';
	for (int i = 0; i < n; i++)
		ptw_format_step(&b, r, &r->steps[i], i == n - 1);
	ptw_format_end(&b, r, gva);
	return b.pos > INT_MAX ? INT_MAX : (int)b.pos;
}

/* ---- leaf enumeration ------------------------------------------------------
 */

/*
 * The table pages a walk has read: open addressing with linear probing,
 * keys gpa | 1 (a table at GPA 0 is legal; 0 marks an empty slot), grown
 * to keep at most half the slots full. Its size is bounded by the table
 * budget.
 */
struct ptw_seen {
	uint64_t *slot;
	size_t cap; /* a power of two, or 0 before the first insert */
	size_t n;
};

#define PTW_SEEN_MIN 256

static size_t ptw_seen_pos(const struct ptw_seen *s, uint64_t key)
{
	uint64_t h = (key >> 12) * 0x9e3779b97f4a7c15ULL;

	return (size_t)(h >> 32) & (s->cap - 1);
}

static bool ptw_seen_has(const struct ptw_seen *s, uint64_t gpa)
{
	uint64_t key = gpa | 1;

	if (!s->cap)
		return false;
	for (size_t i = ptw_seen_pos(s, key);; i = (i + 1) & (s->cap - 1)) {
		if (s->slot[i] == key)
			return true;
		if (!s->slot[i])
			return false;
	}
}

static void ptw_seen_put(struct ptw_seen *s, uint64_t key)
{
	size_t i = ptw_seen_pos(s, key);

	while (s->slot[i])
		i = (i + 1) & (s->cap - 1);
	s->slot[i] = key;
	s->n++;
}

static int ptw_seen_grow(struct ptw_seen *s)
{
	struct ptw_seen g = {.cap = s->cap ? s->cap * 2 : PTW_SEEN_MIN};

	g.slot = calloc(g.cap, sizeof(*g.slot));
	if (!g.slot)
		return -ENOMEM;
	for (size_t i = 0; i < s->cap; i++)
		if (s->slot[i])
			ptw_seen_put(&g, s->slot[i]);
	free(s->slot);
	*s = g;
	return 0;
}

/* Add a table not in the set yet. 0 or -ENOMEM. */
static int ptw_seen_add(struct ptw_seen *s, uint64_t gpa)
{
	if ((s->n + 1) * 2 > s->cap && ptw_seen_grow(s))
		return -ENOMEM;
	ptw_seen_put(s, gpa | 1);
	return 0;
}

/* Leaves between two looks at the clock (fn's own cost counts too). */
#define PTW_CLOCK_EVERY 64

struct ptw_iter {
	const struct ptw_ctx *c;
	ptw_leaf_fn fn;
	void *opaque;
	struct ptw_seen seen;
	uint64_t path[5]; /* path[level]: the table being read there */
	uint64_t max_tables, start_ns, max_ns;
	bool halted; /* a budget ran out: unwind, returning 0 */
	struct ptw_walk_report rep;
};

#define PTW_NO_TABLE (~0ULL) /* never a (page-aligned) table address */

/* Returned up the recursion when a budget ran out (never fn's own 0). */
#define PTW_HALT 1

static int ptw_halt(struct ptw_iter *it, enum ptw_stop why)
{
	it->rep.stop = why;
	it->halted = true;
	return PTW_HALT;
}

static bool ptw_out_of_time(const struct ptw_iter *it)
{
	return clock_now_ns() - it->start_ns >= it->max_ns;
}

enum ptw_admit { PTW_SKIP, PTW_READ, PTW_OUT };

/*
 * Whether to read table at level: PTW_READ, PTW_SKIP (read before: counted)
 * or PTW_OUT (a budget ran out: it->halted is set).
 */
static enum ptw_admit ptw_admit(struct ptw_iter *it, int level, uint64_t table)
{
	if (ptw_seen_has(&it->seen, table)) {
		it->rep.revisits++;
		for (int l = level + 1; l <= 4; l++)
			if (it->path[l] == table) {
				it->rep.cycles++;
				break;
			}
		return PTW_SKIP;
	}
	if (it->rep.tables >= it->max_tables)
		ptw_halt(it, PTW_STOP_TABLES);
	else if (ptw_out_of_time(it))
		ptw_halt(it, PTW_STOP_TIME);
	else if (ptw_seen_add(&it->seen, table))
		ptw_halt(it, PTW_STOP_NOMEM);
	if (it->halted)
		return PTW_OUT;
	it->rep.tables++;
	it->path[level] = table;
	return PTW_READ;
}

static int ptw_visit_table(struct ptw_iter *it, int level, uint64_t table,
			   uint64_t base);

static int ptw_visit_leaf(struct ptw_iter *it, int level, uint64_t gva,
			  uint64_t e)
{
	uint64_t size = ptw_level_size(level);
	int ret;

	it->rep.leaves++;
	ret = it->fn(it->opaque, ptw_canonicalize(gva),
		     e & ptw_addr_mask(it->c) & ~(size - 1), size, e);
	if (ret) {
		it->rep.stop = PTW_STOP_CALLBACK;
		return ret;
	}
	if (it->rep.leaves % PTW_CLOCK_EVERY == 0 && ptw_out_of_time(it))
		return ptw_halt(it, PTW_STOP_TIME);
	return 0;
}

static int ptw_visit_entry(struct ptw_iter *it, int level, uint64_t gva,
			   uint64_t e)
{
	if (!(e & PTE_P) || ptw_reserved(it->c, level, e))
		return 0;
	if (ptw_is_leaf(level, e))
		return ptw_visit_leaf(it, level, gva, e);
	return ptw_visit_table(it, level - 1, e & ptw_addr_mask(it->c), gva);
}

/* base: the GVA bits above this level. A table that is not RAM is skipped. */
static int ptw_visit_table(struct ptw_iter *it, int level, uint64_t table,
			   uint64_t base)
{
	enum ptw_admit a = ptw_admit(it, level, table);
	int ret;

	if (a != PTW_READ)
		return a == PTW_OUT ? PTW_HALT : 0;
	for (unsigned int i = 0; i < PTW_ENTRIES; i++) {
		uint64_t gva = base | ((uint64_t)i << ptw_shift(level));
		uint64_t e = 0;

		if (it->c->read(it->c->opaque, table + (uint64_t)i * 8, &e))
			break;
		ret = ptw_visit_entry(it, level, gva, e);
		if (ret)
			return ret;
	}
	it->path[level] = PTW_NO_TABLE;
	return 0;
}

/*
 * Depth-first, in GVA order (the high half comes after the low half),
 * recursing at most four deep. The work is bounded by the budgets: at most
 * max_tables x 512 reads and calls of fn, and the clock is read before
 * each new table and every PTW_CLOCK_EVERY leaves, so a walk overruns
 * max_ns by at most that many calls of fn.
 */
int ptw_walk_leaves(const struct ptw_ctx *c, const struct ptw_walk_limits *lim,
		    ptw_leaf_fn fn, void *opaque, struct ptw_walk_report *rep)
{
	struct ptw_iter it = {.c = c, .fn = fn, .opaque = opaque};
	int ret;

	it.max_tables =
		lim && lim->max_tables ? lim->max_tables : PTW_WALK_MAX_TABLES;
	it.max_ns = lim && lim->max_ns ? lim->max_ns : PTW_WALK_MAX_NS;
	for (int l = 0; l <= 4; l++)
		it.path[l] = PTW_NO_TABLE;
	it.start_ns = clock_now_ns();
	switch (ptw_check_mode(c)) {
	case PTW_OK:
		ret = ptw_visit_table(&it, 4, c->cr3 & ptw_addr_mask(c), 0);
		break;
	case PTW_NO_PAGING:
		ret = -EINVAL;
		break;
	default:
		ret = -EOPNOTSUPP;
		break;
	}
	free(it.seen.slot);
	it.rep.ns = clock_now_ns() - it.start_ns;
	if (rep)
		*rep = it.rep;
	if (it.halted)
		return it.rep.stop == PTW_STOP_NOMEM ? -ENOMEM : 0;
	return ret;
}

int ptw_for_each_leaf(const struct ptw_ctx *c, ptw_leaf_fn fn, void *opaque)
{
	return ptw_walk_leaves(c, NULL, fn, opaque, NULL);
}

const char *ptw_stop_name(enum ptw_stop s)
{
	static const char *const names[] = {
		[PTW_STOP_DONE] = "done",
		[PTW_STOP_CALLBACK] = "callback",
		[PTW_STOP_TABLES] = "table-budget",
		[PTW_STOP_TIME] = "time-budget",
		[PTW_STOP_NOMEM] = "out-of-memory",
	};

	if ((unsigned int)s >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[s];
}
