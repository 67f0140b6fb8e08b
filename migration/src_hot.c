/* SPDX-License-Identifier: MIT */
/*
 * src_hot.c - hybrid's write-hot pages (source.h): the windows of dirty-log
 * harvests that find them, and the switch to post-copy, which sends them
 * in the downtime after the discard set instead of letting the guest fault
 * on each as soon as it runs over there: a round trip each, in series,
 * before it gets anywhere (docs/migration.md). Loop thread.
 */
#include "common/clock.h"
#include "ept/dirty.h"
#include "migration/source.h"
#include "vmm/vm.h"

/*
 * Word w of the harvest (dnew) into todo and the windows: roll, the window
 * is complete; last, the switch's final harvest, whose pages and those of
 * the window under way that were dirty in the last one join hot.
 */
static void src_hot_word(struct mig_source *s, uint64_t w, bool roll, bool last)
{
	uint64_t d = s->dnew.words[w];

	s->todo.words[w] |= d;
	if (last) {
		s->hot.words[w] |= (s->win.words[w] & s->wprev.words[w]) | d;
		return;
	}
	s->win.words[w] |= d;
	if (!roll)
		return;
	s->hot.words[w] = s->win.words[w] & s->wprev.words[w];
	s->wprev.words[w] = s->win.words[w];
	s->win.words[w] = 0;
}

uint64_t src_hot_take(struct mig_source *s, bool last)
{
	uint64_t now = clock_now_ns(), n;
	bool roll = now - s->win_ns >= SRC_HOT_WINDOW_NS;

	bitmap_zero(&s->dnew);
	n = dirty_take(&s->ss.vm->dirty, &s->dnew);
	for (uint64_t w = 0; w < BITMAP_WORDS(s->dnew.nbits); w++)
		src_hot_word(s, w, roll, last);
	if (roll && !last)
		s->win_ns = now;
	return n;
}

/* The lowest (at most) left set bits of x; left goes down by their count. */
static uint64_t src_hot_lowest(uint64_t x, uint32_t *left)
{
	uint64_t m = 0;

	for (; x && *left; (*left)--) {
		m |= x & -x;
		x &= x - 1;
	}
	return m;
}

/* The pages of todo among hot (word by word) into now, while left lasts. */
static void src_hot_fill(struct mig_source *s, uint32_t *left)
{
	struct bitmap *now = &s->now;

	for (uint64_t w = 0; *left && w < BITMAP_WORDS(now->nbits); w++)
		now->words[w] |= src_hot_lowest(
			s->hot.words[w] & s->todo.words[w] & ~now->words[w],
			left);
}

/* The vCPUs' dirty resume pages (push.c: no duplicates), then hot ones. */
void src_hot_pick(struct mig_source *s)
{
	int n = mig_push_resume(&s->push, s->ss.vm); /* < 0: none found */
	uint32_t left = SRC_HOT_MAX;

	bitmap_zero(&s->now);
	for (int k = 0; left && k < n; k++) {
		uint64_t i = s->push.first[k];

		if (bitmap_test(&s->todo, i)) {
			bitmap_set(&s->now, i);
			left--;
		}
	}
	src_hot_fill(s, &left);
}

/* Page i goes now, in the downtime: the push skips it. */
static int src_hot_send_page(struct mig_source *s, uint64_t i)
{
	bitmap_set(&s->ss.vm->mem.state[MEM_PS_SENT], i);
	bitmap_clear(&s->todo, i);
	src_add_page(s, i);
	s->ss.st.switch_hot++;
	return src_batch_full(s) ? src_send_batch(s) : 0;
}

int src_hot_send(struct mig_source *s)
{
	int r = 0;

	for (uint64_t i = bitmap_next_set(&s->now, 0); !r && i < s->now.nbits;
	     i = bitmap_next_set(&s->now, i + 1))
		r = src_hot_send_page(s, i);
	return r ? r : src_send_batch(s);
}
