/* SPDX-License-Identifier: MIT */
/*
 * push.c - the order of the post-copy background push (see push.h).
 */
#include <errno.h>
#include <sys/ioctl.h>

#include <linux/kvm.h>

#include "common/clock.h"
#include "common/page.h"
#include "ept/mem.h"
#include "ept/ptwalk.h"
#include "migration/push.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define PTE_ACCESSED 0x20ULL

int mig_push_init(struct mig_push *p, enum mig_push_order order,
		  uint64_t nr_pages)
{
	*p = (struct mig_push){.order = order};
	atomic_init(&p->head, 0);
	atomic_init(&p->tail, 0);
	atomic_init(&p->dropped, 0);
	if (order != MIG_PUSH_ACCESSED)
		return 0;
	return bitmap_init(&p->hot, nr_pages);
}

void mig_push_free(struct mig_push *p)
{
	atomic_store(&p->wk.stop, true);
	mig_push_walk_end(p);
	bitmap_free(&p->hot);
}

void mig_push_rewind(struct mig_push *p)
{
	p->first_pos = 0;
	p->near_next = p->near_end = 0;
	p->hot_cursor = 0;
	p->cursor = 0;
}

void mig_push_hint(struct mig_push *p, uint64_t i)
{
	uint_fast32_t head, tail;

	if (p->order == MIG_PUSH_LINEAR)
		return;
	head = atomic_load_explicit(&p->head, memory_order_relaxed);
	tail = atomic_load_explicit(&p->tail, memory_order_acquire);
	if (head - tail >= MIG_PUSH_HINTS) {
		atomic_fetch_add_explicit(&p->dropped, 1, memory_order_relaxed);
		return;
	}
	p->ring[head % MIG_PUSH_HINTS] = i;
	atomic_store_explicit(&p->head, head + 1, memory_order_release);
}

/* Loop: the oldest hint not followed yet. */
static bool push_take_hint(struct mig_push *p, uint64_t *i)
{
	uint_fast32_t tail =
		atomic_load_explicit(&p->tail, memory_order_relaxed);

	if (tail == atomic_load_explicit(&p->head, memory_order_acquire))
		return false;
	*i = p->ring[tail % MIG_PUSH_HINTS];
	atomic_store_explicit(&p->tail, tail + 1, memory_order_release);
	return true;
}

/* ---- the walk (its own thread; VM paused) ---------------------------------
 *
 * mig_push_walk_start (loop) reads each vCPU's paging registers and starts
 * a short-lived thread that walks the tables from them. Until the loop
 * joins it (mig_push_walk_end, or mig_push_free), the thread alone writes
 * p->hot and p->wk's results, and reads guest RAM, which does not change:
 * the source's VM stays paused through post-copy. The push takes nothing
 * from p->hot before hot_ready, set by the loop after the join.
 */

static void push_mark(struct mig_push *p, const struct guest_mem *m,
		      uint64_t gpa)
{
	uint64_t i;

	if (!mem_gpa_to_page(m, gpa & ~(PAGE_SIZE - 1), &i) &&
	    !bitmap_test_and_set(&p->hot, i))
		p->wk.marked++;
}

/* Every table entry the walker reads: its page is a page-table page. */
static int push_walk_read(void *opaque, uint64_t gpa, uint64_t *val)
{
	struct mig_push *p = opaque;
	int r = p->wk.read(p->wk.ropaque, gpa, val);

	if (!r)
		push_mark(p, p->wk.mem, gpa);
	return r;
}

static int push_walk_leaf(void *opaque, uint64_t gva, uint64_t gpa,
			  uint64_t size, uint64_t entry)
{
	struct mig_push *p = opaque;

	(void)gva;
	if (atomic_load(&p->wk.stop))
		return 1;
	if (!(entry & PTE_ACCESSED))
		return 0;
	for (uint64_t off = 0; off < size; off += PAGE_SIZE)
		push_mark(p, p->wk.mem, gpa + off);
	return 0;
}

static void push_walk_sum(struct ptw_walk_report *t,
			  const struct ptw_walk_report *r)
{
	t->tables += r->tables;
	t->revisits += r->revisits;
	t->cycles += r->cycles;
	t->leaves += r->leaves;
	t->ns += r->ns;
	if (r->stop != PTW_STOP_DONE)
		t->stop = r->stop; /* the last budget that ran out */
}

static void *push_walk_thread(void *arg)
{
	struct mig_push *p = arg;
	struct mig_push_walker *wk = &p->wk;

	for (int k = 0; k < wk->nr_ctx && !atomic_load(&wk->stop); k++) {
		struct ptw_ctx c = wk->ctx[k];
		struct ptw_walk_report rep = {0};
		int r;

		wk->read = c.read;
		wk->ropaque = c.opaque;
		c.read = push_walk_read;
		c.opaque = p;
		r = ptw_walk_leaves(&c, NULL, push_walk_leaf, p, &rep);
		push_walk_sum(&wk->rep, &rep);
		/* Paging off or not 4-level: nothing to learn there. */
		if (r < 0 && r != -EINVAL && r != -EOPNOTSUPP) {
			wk->err = -r;
			break;
		}
	}
	atomic_store(&wk->done, true);
	wk->wake(wk->wake_opaque);
	return NULL;
}

int mig_push_walk_start(struct mig_push *p, struct vm *vm, void (*wake)(void *),
			void *opaque)
{
	struct mig_push_walker *wk = &p->wk;
	uint64_t last_cr3 = ~0ULL;
	int r;

	if (p->order != MIG_PUSH_ACCESSED || wk->started)
		return 0;
	wk->mem = &vm->mem;
	wk->wake = wake;
	wk->wake_opaque = opaque;
	for (int cpu = 0; cpu < vm->nr_vcpus && cpu < GUEST_MAX_CPUS; cpu++) {
		struct ptw_ctx c;

		r = vm_ptw_ctx(vm, cpu, &c, NULL);
		if (r)
			return r;
		/* vCPUs that share their tables are walked once. */
		if (c.cr3 != last_cr3)
			wk->ctx[wk->nr_ctx++] = c;
		last_cr3 = c.cr3;
	}
	wk->t0 = clock_now_ns();
	r = -pthread_create(&wk->thread, NULL, push_walk_thread, p);
	if (r)
		return r;
	wk->started = true;
	return 0;
}

bool mig_push_walk_done(struct mig_push *p)
{
	return p->wk.started && !p->wk.joined && atomic_load(&p->wk.done);
}

int64_t mig_push_walk_end(struct mig_push *p)
{
	struct mig_push_walker *wk = &p->wk;

	if (!wk->started || wk->joined)
		return 0;
	pthread_join(wk->thread, NULL);
	wk->joined = true;
	wk->wall_ns = clock_now_ns() - wk->t0;
	p->hot_cursor = 0; /* the push may have looked before the walk */
	p->hot_ready = true;
	return wk->err ? -wk->err : (int64_t)wk->marked;
}

/* ---- resume pages (loop thread, VM paused) --------------------------------
 */

static void push_first_add(struct mig_push *p, const struct guest_mem *m,
			   uint64_t gpa)
{
	uint64_t i;

	if (mem_gpa_to_page(m, gpa & ~(PAGE_SIZE - 1), &i))
		return;
	for (int k = 0; k < p->nr_first; k++)
		if (p->first[k] == i)
			return;
	if (p->nr_first < MIG_PUSH_FIRST)
		p->first[p->nr_first++] = i;
}

/* The tables the walk for gva read, then the page it maps. */
static void push_first_gva(struct mig_push *p, const struct guest_mem *m,
			   const struct ptw_ctx *c, uint64_t gva)
{
	struct ptw_result r;

	ptw_translate(c, gva, &r);
	for (int k = 0; k < r.nr_steps && k < 4; k++)
		push_first_add(p, m, r.steps[k].table_gpa);
	if (r.status == PTW_OK || r.status == PTW_NO_PAGING)
		push_first_add(p, m, r.gpa);
}

static int push_resume_vcpu(struct mig_push *p, struct vm *vm, int cpu)
{
	struct kvm_regs regs;
	struct kvm_sregs sr;
	struct ptw_ctx c;
	int r = vm_ptw_ctx(vm, cpu, &c, &sr);

	if (r)
		return r;
	if (ioctl(vm->vcpus[cpu].fd, KVM_GET_REGS, &regs) < 0)
		return -errno;
	push_first_gva(p, &vm->mem, &c, regs.rip);
	push_first_gva(p, &vm->mem, &c, regs.rsp);
	push_first_gva(p, &vm->mem, &c, regs.rsp - 8); /* pushes go down */
	push_first_gva(p, &vm->mem, &c, sr.gdt.base);
	push_first_gva(p, &vm->mem, &c, sr.idt.base);
	push_first_gva(p, &vm->mem, &c, sr.tr.base);
	return 0;
}

int mig_push_resume(struct mig_push *p, struct vm *vm)
{
	p->nr_first = p->first_pos = 0;
	for (int cpu = 0; cpu < vm->nr_vcpus; cpu++) {
		int r = push_resume_vcpu(p, vm, cpu);

		if (r)
			return r;
	}
	return p->nr_first;
}

/* ---- the order (loop thread) -----------------------------------------------
 */

static bool push_next_first(struct mig_push *p, struct bitmap *todo,
			    uint64_t *page)
{
	while (p->first_pos < p->nr_first) {
		uint64_t i = p->first[p->first_pos++];

		if (bitmap_test_and_clear(todo, i)) {
			p->pushed_first++;
			*page = i;
			return true;
		}
	}
	return false;
}

/* The rest of the current neighbour run, then the next hint's. */
static bool push_next_near(struct mig_push *p, struct bitmap *todo,
			   uint64_t *page)
{
	uint64_t f;

	for (;;) {
		while (p->near_next < p->near_end) {
			uint64_t i = p->near_next++;

			if (bitmap_test_and_clear(todo, i)) {
				p->pushed_near++;
				*page = i;
				return true;
			}
		}
		if (!push_take_hint(p, &f))
			return false;
		p->near_next = f + 1;
		p->near_end = f + 1 + MIG_PUSH_NEAR < todo->nbits
				      ? f + 1 + MIG_PUSH_NEAR
				      : todo->nbits;
	}
}

static bool push_next_hot(struct mig_push *p, struct bitmap *todo,
			  uint64_t *page)
{
	if (!p->hot.words || !p->hot_ready)
		return false;
	for (uint64_t i = bitmap_next_set(&p->hot, p->hot_cursor);
	     i < p->hot.nbits; i = bitmap_next_set(&p->hot, i + 1)) {
		p->hot_cursor = i + 1;
		if (bitmap_test_and_clear(todo, i)) {
			p->pushed_hot++;
			*page = i;
			return true;
		}
	}
	p->hot_cursor = p->hot.nbits;
	return false;
}

bool mig_push_next(struct mig_push *p, struct bitmap *todo, uint64_t *page)
{
	uint64_t i;

	if (push_next_first(p, todo, page) || push_next_near(p, todo, page) ||
	    push_next_hot(p, todo, page))
		return true;
	i = bitmap_next_set(todo, p->cursor);
	if (i >= todo->nbits) {
		p->cursor = todo->nbits;
		return false;
	}
	bitmap_clear(todo, i);
	p->cursor = i + 1;
	*page = i;
	return true;
}
