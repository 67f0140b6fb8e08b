/* SPDX-License-Identifier: MIT */
/*
 * dirty.c - the two dirty-tracking back ends (see dirty.h for the rules
 * each obeys and which thread calls what).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "common/page.h"
#include "common/clock.h"
#include "ept/dirty.h"


const char *dirty_backend_name(enum dirty_backend b)
{
	return b == DIRTY_RING ? "ring" : "bitmap";
}

static int dirty_enable_cap(int vm_fd, uint32_t cap, uint64_t arg)
{
	struct kvm_enable_cap ec = {.cap = cap, .args = {arg}};

	if (ioctl(vm_fd, KVM_ENABLE_CAP, &ec) < 0)
		return -errno;
	return 0;
}

static int dirty_init_bitmap(struct dirty_tracker *t, char *err, size_t errlen)
{
	uint64_t max_pages = 0;
	int r;

	for (int i = 0; i < t->mem->nr_regions; i++)
		if (t->mem->regions[i].size >> PAGE_SHIFT > max_pages)
			max_pages = t->mem->regions[i].size >> PAGE_SHIFT;
	t->slot_buf = calloc(BITMAP_WORDS(max_pages), sizeof(uint64_t));
	if (!t->slot_buf)
		return -ENOMEM;
	r = dirty_enable_cap(t->vm_fd, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
			     KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE);
	if (r)
		snprintf(err, errlen,
			 "KVM_ENABLE_CAP(MANUAL_DIRTY_LOG_PROTECT2): %s",
			 strerror(-r));
	return r;
}

static int dirty_init_ring(struct dirty_tracker *t, int nr_vcpus, char *err,
			   size_t errlen)
{
	uint64_t bytes =
		(uint64_t)t->ring_entries * sizeof(struct kvm_dirty_gfn);
	int max = ioctl(t->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING);
	int r;

	if (max <= 0) {
		snprintf(err, errlen,
			 "--dirty-ring: this KVM has no dirty ring "
			 "(KVM_CAP_DIRTY_LOG_RING)");
		return -ENOTSUP;
	}
	if (t->ring_entries < 512 ||
	    (t->ring_entries & (t->ring_entries - 1)) ||
	    bytes > (uint64_t)max) {
		snprintf(err, errlen,
			 "--dirty-ring %u: need a power of two "
			 "from 512 to %llu entries",
			 t->ring_entries,
			 (unsigned long long)(max /
					      sizeof(struct kvm_dirty_gfn)));
		return -EINVAL;
	}
	r = dirty_enable_cap(t->vm_fd, KVM_CAP_DIRTY_LOG_RING, bytes);
	if (r) {
		snprintf(err, errlen,
			 "KVM_ENABLE_CAP(DIRTY_LOG_RING, %llu): %s",
			 (unsigned long long)bytes, strerror(-r));
		return r;
	}
	t->rings = calloc(nr_vcpus, sizeof(*t->rings));
	if (!t->rings)
		return -ENOMEM;
	t->nr_rings = nr_vcpus;
	return bitmap_init(&t->ring_hold, t->mem->nr_pages);
}

int dirty_init(struct dirty_tracker *t, enum dirty_backend backend, int vm_fd,
	       struct guest_mem *mem, uint32_t ring_entries, int nr_vcpus,
	       char *err, size_t errlen)
{
	memset(t, 0, sizeof(*t));
	t->backend = backend;
	t->vm_fd = vm_fd;
	t->mem = mem;
	t->ring_entries = ring_entries;
	pthread_mutex_init(&t->ring_lock, NULL);
	if (backend == DIRTY_RING)
		return dirty_init_ring(t, nr_vcpus, err, errlen);
	return dirty_init_bitmap(t, err, errlen);
}

int dirty_ring_map(struct dirty_tracker *t, int idx, int vcpu_fd, char *err,
		   size_t errlen)
{
	size_t len = (size_t)t->ring_entries * sizeof(struct kvm_dirty_gfn);
	void *p;

	if (t->backend != DIRTY_RING)
		return 0;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd,
		 KVM_DIRTY_LOG_PAGE_OFFSET * sysconf(_SC_PAGESIZE));
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "vcpu%d: mmap dirty ring: %s", idx,
			 strerror(errno));
		return -errno;
	}
	t->rings[idx].gfns = p;
	return 0;
}

void dirty_set_kick(struct dirty_tracker *t, dirty_kick_fn kick, void *opaque)
{
	t->kick = kick;
	t->kick_opaque = opaque;
}

/* ---- ring back end --------------------------------------------------------
 */

/* Page index of a ring entry (slot id == region index, see mem_layout). */
static int dirty_gfn_page(const struct dirty_tracker *t,
			  const struct kvm_dirty_gfn *e, uint64_t *page)
{
	uint32_t slot = e->slot & 0xffff;
	const struct mem_region *r;

	if ((e->slot >> 16) || slot >= (uint32_t)t->mem->nr_regions)
		return -EINVAL;
	r = &t->mem->regions[slot];
	if (e->offset >= r->size >> PAGE_SHIFT)
		return -EINVAL;
	*page = (r->file_off >> PAGE_SHIFT) + e->offset;
	return 0;
}

/* Collect one ring in order into ring_hold. Caller holds ring_lock. */
static uint64_t dirty_ring_collect(struct dirty_tracker *t,
				   struct dirty_ring *ring)
{
	uint64_t n = 0, page;

	for (;;) {
		struct kvm_dirty_gfn *e =
			&ring->gfns[ring->fetch & (t->ring_entries - 1)];
		uint32_t flags = __atomic_load_n(&e->flags, __ATOMIC_ACQUIRE);

		if (!(flags & KVM_DIRTY_GFN_F_DIRTY))
			break;
		if (dirty_gfn_page(t, e, &page) == 0)
			bitmap_set(&t->ring_hold, page);
		__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET,
				 __ATOMIC_RELEASE);
		ring->fetch++;
		n++;
	}
	return n;
}

static int dirty_ring_reset(struct dirty_tracker *t)
{
	if (ioctl(t->vm_fd, KVM_RESET_DIRTY_RINGS, 0) < 0)
		return -errno;
	return 0;
}

/* Move ring_hold into DIRTY. Caller holds ring_lock, after the reset. */
static uint64_t dirty_ring_publish(struct dirty_tracker *t)
{
	struct bitmap *dirty = &t->mem->state[MEM_PS_DIRTY];
	uint64_t n = 0;

	for (uint64_t w = 0; w < BITMAP_WORDS(t->ring_hold.nbits); w++) {
		uint64_t word = bitmap_xchg_word(&t->ring_hold, w);

		if (!word)
			continue;
		n += __builtin_popcountll(word);
		bitmap_or_words(dirty, w, &word, 1);
	}
	return n;
}

int dirty_ring_full(struct dirty_tracker *t, int idx)
{
	int r;

	if (t->backend != DIRTY_RING || idx >= t->nr_rings)
		return -EINVAL;
	pthread_mutex_lock(&t->ring_lock);
	dirty_ring_collect(t, &t->rings[idx]);
	r = dirty_ring_reset(t);
	t->st.ring_full_exits++;
	pthread_mutex_unlock(&t->ring_lock);
	return r;
}

static int dirty_harvest_ring(struct dirty_tracker *t, uint64_t *pages,
			      bool rearm)
{
	int r = t->kick ? t->kick(t->kick_opaque) : 0;

	if (r)
		return r;
	pthread_mutex_lock(&t->ring_lock);
	for (int i = 0; i < t->nr_rings; i++)
		if (t->rings[i].gfns)
			dirty_ring_collect(t, &t->rings[i]);
	r = rearm ? dirty_ring_reset(t) : 0;
	if (!r)
		*pages = dirty_ring_publish(t); /* reset, then publish */
	pthread_mutex_unlock(&t->ring_lock);
	return r;
}

/* ---- bitmap back end ------------------------------------------------------
 */

static int dirty_harvest_slot(struct dirty_tracker *t,
			      const struct mem_region *reg, uint64_t *pages,
			      bool rearm)
{
	uint64_t npages = reg->size >> PAGE_SHIFT;
	uint64_t nwords = BITMAP_WORDS(npages), n = 0;
	struct kvm_dirty_log log = {.slot = reg->slot,
				    .dirty_bitmap = t->slot_buf};
	struct kvm_clear_dirty_log clr = {.slot = reg->slot,
					  .first_page = 0,
					  .num_pages = (uint32_t)npages,
					  .dirty_bitmap = t->slot_buf};

	memset(t->slot_buf, 0, nwords * sizeof(uint64_t));
	if (ioctl(t->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
		return -errno;
	for (uint64_t w = 0; w < nwords; w++)
		n += __builtin_popcountll(t->slot_buf[w]);
	if (!n)
		return 0;
	/* Clear exactly what was fetched: the same bitmap, the whole slot. */
	if (rearm && ioctl(t->vm_fd, KVM_CLEAR_DIRTY_LOG, &clr) < 0)
		return -errno;
	bitmap_or_words(&t->mem->state[MEM_PS_DIRTY],
			(reg->file_off >> PAGE_SHIFT) / 64, t->slot_buf,
			nwords);
	*pages += n;
	return 0;
}

static int dirty_harvest_bitmap(struct dirty_tracker *t, uint64_t *pages,
				bool rearm)
{
	for (int i = 0; i < t->mem->nr_regions; i++) {
		int r = dirty_harvest_slot(t, &t->mem->regions[i], pages,
					   rearm);

		if (r)
			return r;
	}
	return 0;
}

/* ---- common ----------------------------------------------------------------
 */

/* Host writes (ept_mark_dirty) join the dirty set. */
static uint64_t dirty_publish_host(struct dirty_tracker *t)
{
	struct bitmap *host = &t->mem->state[MEM_PS_HOST_DIRTY];
	struct bitmap *dirty = &t->mem->state[MEM_PS_DIRTY];
	uint64_t n = 0;

	for (uint64_t w = 0; w < BITMAP_WORDS(host->nbits); w++) {
		uint64_t word = bitmap_xchg_word(host, w);

		if (!word)
			continue;
		n += __builtin_popcountll(word);
		bitmap_or_words(dirty, w, &word, 1);
	}
	return n;
}

/* rearm: write-protect again what was found, for the next harvest. */
static int dirty_harvest_do(struct dirty_tracker *t, uint64_t *pages,
			    bool rearm, char *err, size_t errlen)
{
	uint64_t t0 = clock_now_ns(), n = 0, host;
	int r;

	if (!t->active) {
		snprintf(err, errlen, "dirty logging is not started");
		return -EINVAL;
	}
	if (t->backend == DIRTY_RING)
		r = dirty_harvest_ring(t, &n, rearm);
	else
		r = dirty_harvest_bitmap(t, &n, rearm);
	if (r) {
		snprintf(err, errlen, "dirty harvest (%s): %s",
			 dirty_backend_name(t->backend), strerror(-r));
		return r;
	}
	host = dirty_publish_host(t);
	t->st.host_pages += host;
	t->st.harvests++;
	t->st.last_pages = n + host;
	t->st.pages += n + host;
	t->st.last_ns = clock_now_ns() - t0;
	t->st.total_ns += t->st.last_ns;
	if (pages)
		*pages = n + host;
	return 0;
}

int dirty_harvest(struct dirty_tracker *t, uint64_t *pages, char *err,
		  size_t errlen)
{
	return dirty_harvest_do(t, pages, true, err, errlen);
}

int dirty_harvest_last(struct dirty_tracker *t, uint64_t *pages, char *err,
		       size_t errlen)
{
	return dirty_harvest_do(t, pages, false, err, errlen);
}

int dirty_start(struct dirty_tracker *t, char *err, size_t errlen)
{
	int r;

	bitmap_zero(&t->mem->state[MEM_PS_HOST_DIRTY]);
	r = mem_register_slots(t->mem, t->vm_fd, KVM_MEM_LOG_DIRTY_PAGES);
	if (r) {
		snprintf(err, errlen,
			 "enabling dirty logging on the memslots: "
			 "%s",
			 strerror(-r));
		return r;
	}
	t->active = true;
	return 0;
}

int dirty_stop(struct dirty_tracker *t)
{
	int r;

	if (!t->active)
		return 0;
	r = mem_register_slots(t->mem, t->vm_fd, 0);
	t->active = false;
	if (t->backend == DIRTY_RING) {
		/* Drain what is left so the rings do not fill while off. */
		pthread_mutex_lock(&t->ring_lock);
		for (int i = 0; i < t->nr_rings; i++)
			if (t->rings[i].gfns)
				dirty_ring_collect(t, &t->rings[i]);
		dirty_ring_reset(t);
		bitmap_zero(&t->ring_hold);
		pthread_mutex_unlock(&t->ring_lock);
	}
	return r;
}

uint64_t dirty_take(struct dirty_tracker *t, struct bitmap *out)
{
	struct bitmap *dirty = &t->mem->state[MEM_PS_DIRTY];
	uint64_t n = 0;

	for (uint64_t w = 0; w < BITMAP_WORDS(dirty->nbits); w++) {
		uint64_t word = bitmap_xchg_word(dirty, w);

		if (word) {
			bitmap_or_words(out, w, &word, 1);
			n += __builtin_popcountll(word);
		}
	}
	return n;
}

void dirty_forget(struct dirty_tracker *t)
{
	bitmap_zero(&t->mem->state[MEM_PS_DIRTY]);
}

void dirty_destroy(struct dirty_tracker *t)
{
	size_t len = (size_t)t->ring_entries * sizeof(struct kvm_dirty_gfn);

	for (int i = 0; i < t->nr_rings; i++)
		if (t->rings[i].gfns)
			munmap(t->rings[i].gfns, len);
	free(t->rings);
	t->rings = NULL;
	t->nr_rings = 0;
	free(t->slot_buf);
	t->slot_buf = NULL;
	bitmap_free(&t->ring_hold);
}
