/* SPDX-License-Identifier: MIT */
/*
 * mem.c - guest RAM: one memfd, one host mapping, up to two regions.
 *
 * RAM below the MMIO hole sits at guest-physical 0; whatever does not fit
 * below GUEST_MMIO_HOLE_BASE continues at 4 GiB. Both regions are slices of
 * a single memfd mapped once, read/write and MAP_SHARED (never executable,
 * not prefaulted here: a post-copy destination needs its pages missing;
 * --mem-prealloc is mem_back.c's and declines post-copy), so the
 * file offset of a byte equals its offset in the mapping. Translation walks
 * the (at most two) regions; every range check is written so that gpa + len
 * cannot wrap.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "common/page.h"
#include "ept/mem.h"
#include "common/guest_abi.h"

int mem_layout(uint64_t ram_size, struct mem_region *regions, int max)
{
	uint64_t low = ram_size;
	int nr = 1;

	if (ram_size < GUEST_MEM_MIN || ram_size > GUEST_MEM_MAX ||
	    ram_size % PAGE_SIZE)
		return -EINVAL;
	if (low > GUEST_MMIO_HOLE_BASE) {
		low = GUEST_MMIO_HOLE_BASE;
		nr = 2;
	}
	if (!regions || max < nr)
		return -EINVAL;

	memset(regions, 0, sizeof(*regions) * nr);
	regions[0].size = low;
	if (nr == 2) {
		regions[1].gpa = GUEST_MMIO_HOLE_END;
		regions[1].size = ram_size - low;
		regions[1].file_off = low;
		regions[1].slot = 1;
	}
	return nr;
}

/* Shift for a suffix at s ("", K, M, G, optionally followed by "iB"). */
static int mem_suffix_shift(const char *s)
{
	int shift;

	switch (*s) {
	case '\0':
		return 20; /* MiB, as QEMU's -m */
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	default:
		return -1;
	}
	s++;
	if (*s == '\0' || strcmp(s, "iB") == 0)
		return shift;
	return -1;
}

int mem_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	int shift;

	if (!s || !out || *s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
			return -EINVAL;
	}
	shift = mem_suffix_shift(s);
	if (shift < 0 || v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = v << shift;
	return 0;
}

/* Put *m in the "unused" state that mem_destroy() recognises. */
static void mem_reset(struct guest_mem *m)
{
	memset(m, 0, sizeof(*m));
	m->memfd = -1;
}

static int mem_map(struct guest_mem *m)
{
	void *p;

	if (ftruncate(m->memfd, (off_t)m->size) < 0)
		return -errno;
	p = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_SHARED, m->memfd,
		 0);
	if (p == MAP_FAILED)
		return -errno;
	/* Guest RAM has no place in a VMM core dump. */
	if (madvise(p, m->size, MADV_DONTDUMP) < 0) {
		int ret = -errno;

		munmap(p, m->size);
		return ret;
	}
	m->base = p;
	return 0;
}

static int mem_states_init(struct guest_mem *m)
{
	for (int i = 0; i < MEM_PS_MAX; i++) {
		int ret = bitmap_init(&m->state[i], m->nr_pages);

		if (ret)
			return ret;
	}
	return 0;
}

int mem_create(struct guest_mem *m, uint64_t ram_size)
{
	int i, nr, ret;

	mem_reset(m);
	nr = mem_layout(ram_size, m->regions, GUEST_MEM_MAX_REGS);
	if (nr < 0)
		return nr;
	m->nr_regions = nr;
	m->size = ram_size;
	m->memfd = memfd_create("vmm-guest-ram", MFD_CLOEXEC);
	if (m->memfd < 0) {
		ret = -errno;
		mem_reset(m);
		return ret;
	}
	ret = mem_map(m);
	if (ret < 0) {
		close(m->memfd);
		mem_reset(m);
		return ret;
	}
	for (i = 0; i < nr; i++)
		m->regions[i].hva = m->base + m->regions[i].file_off;
	m->nr_pages = ram_size / PAGE_SIZE;
	ret = mem_states_init(m);
	if (ret)
		mem_destroy(m);
	return ret;
}

int mem_gpa_to_page(const struct guest_mem *m, uint64_t gpa, uint64_t *page)
{
	const struct mem_region *r = mem_find_region(m, gpa);

	if (!r)
		return -EFAULT;
	*page = (r->file_off + (gpa - r->gpa)) / PAGE_SIZE;
	return 0;
}

uint64_t mem_page_to_gpa(const struct guest_mem *m, uint64_t i)
{
	uint64_t off = i * PAGE_SIZE;

	for (int r = 0; r < m->nr_regions; r++) {
		const struct mem_region *reg = &m->regions[r];

		if (off >= reg->file_off && off - reg->file_off < reg->size)
			return reg->gpa + (off - reg->file_off);
	}
	return ~0ULL;
}

void ept_mark_dirty(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	uint64_t end = gpa + len;
	uint64_t page;

	if (!len || !m->state[MEM_PS_HOST_DIRTY].words)
		return;
	for (uint64_t a = gpa & ~(PAGE_SIZE - 1); a < end;
	     a += PAGE_SIZE)
		if (mem_gpa_to_page(m, a, &page) == 0)
			bitmap_set((struct bitmap *)&m->state[MEM_PS_HOST_DIRTY],
				   page);
}

/*
 * Idempotent, and safe on a struct that mem_create() failed on. Only a
 * struct with a mapping owns its memfd (mem_create() sets both or neither),
 * so an all-zero struct that never saw mem_create() does not close fd 0.
 */
void mem_destroy(struct guest_mem *m)
{
	for (int i = 0; i < MEM_PS_MAX; i++)
		bitmap_free(&m->state[i]);
	if (m->base) {
		munmap(m->base, m->size);
		if (m->memfd >= 0)
			close(m->memfd);
	}
	mem_reset(m);
}

/*
 * No rollback on failure: this also re-registers live slots with new flags
 * (dirty logging on/off), and deleting a slot that worked before would turn
 * a failed flag change into a VM without RAM. The caller decides.
 */
int mem_register_slots(struct guest_mem *m, int vm_fd, uint32_t flags)
{
	int i;

	for (i = 0; i < m->nr_regions; i++) {
		const struct mem_region *r = &m->regions[i];
		struct kvm_userspace_memory_region kr = {
			.slot = r->slot,
			.flags = flags,
			.guest_phys_addr = r->gpa,
			.memory_size = r->size,
			.userspace_addr = (uint64_t)(uintptr_t)r->hva,
		};

		if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &kr) < 0)
			return -errno;
	}
	return 0;
}

const struct mem_region *mem_find_region(const struct guest_mem *m,
					 uint64_t gpa)
{
	int i;

	for (i = 0; i < m->nr_regions; i++) {
		const struct mem_region *r = &m->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return r;
	}
	return NULL;
}

void *mem_gpa_to_hva(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
	const struct mem_region *r = mem_find_region(m, gpa);
	uint64_t off;

	if (!r)
		return NULL;
	off = gpa - r->gpa;
	if (len > r->size - off)
		return NULL;
	return r->hva + off;
}

int mem_hva_to_gpa(const struct guest_mem *m, const void *hva, uint64_t *gpa)
{
	uintptr_t p = (uintptr_t)hva;
	int i;

	for (i = 0; i < m->nr_regions; i++) {
		const struct mem_region *r = &m->regions[i];
		uintptr_t start = (uintptr_t)r->hva;

		if (r->hva && p >= start && p - start < r->size) {
			*gpa = r->gpa + (p - start);
			return 0;
		}
	}
	return -EFAULT;
}

int mem_write(const struct guest_mem *m, uint64_t gpa, const void *src,
	      uint64_t len)
{
	void *hva = mem_gpa_to_hva(m, gpa, len);

	if (!hva)
		return -EFAULT;
	if (len)
		memcpy(hva, src, len);
	return 0;
}

int mem_read(const struct guest_mem *m, uint64_t gpa, void *dst, uint64_t len)
{
	const void *hva = mem_gpa_to_hva(m, gpa, len);

	if (!hva)
		return -EFAULT;
	if (len)
		memcpy(dst, hva, len);
	return 0;
}
