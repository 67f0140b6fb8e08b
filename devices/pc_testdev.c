/* SPDX-License-Identifier: MIT */
/*
 * pc_testdev.c - QEMU's pc-testdev: scratch register, flush page, ISA IRQ
 * lines (see pc_testdev.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/err.h"
#include "common/page.h"
#include "devices/devices.h"
#include "devices/pc_testdev.h"

int pc_testdev_init(struct pc_testdev *t, const struct dev_host *host)
{
	*t = (struct pc_testdev){.host = host};
	return -pthread_mutex_init(&t->lock, NULL);
}

void pc_testdev_destroy(struct pc_testdev *t)
{
	pthread_mutex_destroy(&t->lock);
}

/* ---- the scratch register and the flush page ------------------------------
 */

static uint32_t pc_testdev_mask(uint64_t off, uint32_t len)
{
	uint32_t bytes = len >= 4 ? 0xffffffffU : (1U << (len * 8)) - 1;

	return bytes << ((off & 3) * 8);
}

static void pc_testdev_flush(struct pc_testdev *t, uint32_t gpa)
{
	const struct guest_mem *m = t->host ? t->host->mem : NULL;
	uint64_t page = gpa & ~(uint64_t)(PAGE_SIZE - 1);
	void *hva = m ? mem_gpa_to_hva(m, page, PAGE_SIZE) : NULL;

	/* Not RAM: nothing KVM maps, nothing to flush (QEMU's too). */
	if (hva && !madvise(hva, PAGE_SIZE, MADV_DONTNEED))
		t->flushes++;
}

static void pc_testdev_io_read(void *opaque, uint64_t off, void *data,
			       uint32_t len)
{
	struct pc_testdev *t = opaque;
	uint32_t v = 0;

	memset(data, 0, len);
	if (off >= PC_TESTDEV_FLUSH_OFF && off < PC_TESTDEV_BYTE_OFF)
		return;
	if ((off & 3) + len > 4)
		return; /* past the register */
	pthread_mutex_lock(&t->lock);
	v = (t->data & pc_testdev_mask(off, len)) >> ((off & 3) * 8);
	pthread_mutex_unlock(&t->lock);
	memcpy(data, &v, len);
}

static void pc_testdev_io_write(void *opaque, uint64_t off, const void *data,
				uint32_t len)
{
	struct pc_testdev *t = opaque;
	uint32_t v = 0, mask;

	if ((off & 3) + len > 4)
		return;
	memcpy(&v, data, len);
	pthread_mutex_lock(&t->lock);
	if (off >= PC_TESTDEV_FLUSH_OFF && off < PC_TESTDEV_BYTE_OFF) {
		if (off == PC_TESTDEV_FLUSH_OFF && len == 4)
			pc_testdev_flush(t, v);
	} else {
		mask = pc_testdev_mask(off, len);
		t->data = (t->data & ~mask) | ((v << ((off & 3) * 8)) & mask);
	}
	pthread_mutex_unlock(&t->lock);
}

const struct bus_ops pc_testdev_io_ops = {
	.read = pc_testdev_io_read,
	.write = pc_testdev_io_write,
};

/* ---- the IRQ lines --------------------------------------------------------
 */

/* Drive line to level; t->lock held. */
static void pc_testdev_line_locked(struct pc_testdev *t, unsigned int line,
				   int level)
{
	if (level)
		t->levels |= 1U << line;
	else
		t->levels &= ~(1U << line);
	if (t->host && t->host->irq_line)
		t->host->irq_line(t->host->opaque, line, level);
}

static void pc_testdev_irq_read(void *opaque, uint64_t off, void *data,
				uint32_t len)
{
	memset(data, 0, len);
}

static void pc_testdev_irq_write(void *opaque, uint64_t off, const void *data,
				 uint32_t len)
{
	struct pc_testdev *t = opaque;
	const uint8_t *b = data;

	pthread_mutex_lock(&t->lock);
	for (uint32_t i = 0; i < len && off + i < PC_TESTDEV_NR_LINES; i++)
		pc_testdev_line_locked(t, (unsigned int)(off + i), b[i] != 0);
	pthread_mutex_unlock(&t->lock);
}

const struct bus_ops pc_testdev_irq_ops = {
	.read = pc_testdev_irq_read,
	.write = pc_testdev_irq_write,
};

/* ---- state ----------------------------------------------------------------
 */

void pc_testdev_save(struct pc_testdev *t, struct pc_testdev_state *st)
{
	pthread_mutex_lock(&t->lock);
	*st = (struct pc_testdev_state){.data = t->data, .levels = t->levels};
	pthread_mutex_unlock(&t->lock);
}

int pc_testdev_load(struct pc_testdev *t, const struct pc_testdev_state *st,
		    char *err, size_t errlen)
{
	if (st->levels >> PC_TESTDEV_NR_LINES) {
		err_set(err, errlen,
			"pc-testdev state: line levels 0x%x name a line >= %d",
			st->levels, PC_TESTDEV_NR_LINES);
		return -EINVAL;
	}
	pthread_mutex_lock(&t->lock);
	t->data = st->data;
	/* Only lines left high: a fresh irqchip has every line low. */
	t->levels = 0;
	for (unsigned int i = 0; i < PC_TESTDEV_NR_LINES; i++)
		if (st->levels & (1U << i))
			pc_testdev_line_locked(t, i, 1);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

DEV_OPS_STATE(pc_testdev_dev_ops, "pc_testdev", PC_TESTDEV_STATE_VERSION,
	      struct pc_testdev, struct pc_testdev_state, pc_testdev_save,
	      pc_testdev_load);

/* ---- the device table's view ----------------------------------------------
 */

static void pc_testdev_free(void *dev)
{
	pc_testdev_destroy(dev);
}

/* pc_testdev_dev_ops and a destroy, for the instance the table owns. */
static const struct dev_ops pc_testdev_owned_ops = {
	.type = "pc_testdev",
	.version = PC_TESTDEV_STATE_VERSION,
	.state_size = sizeof(struct pc_testdev_state),
	.save = pc_testdev_dev_ops_save,
	.load = pc_testdev_dev_ops_load,
	.destroy = pc_testdev_free,
};

static int pc_testdev_create(struct dev_table *t, const struct dev_spec *spec,
			     const struct dev_env *env, char *err,
			     size_t errlen)
{
	struct pc_testdev *d = malloc(sizeof(*d));
	const char *name;
	int r;

	if (!d || pc_testdev_init(d, env->host)) {
		free(d);
		err_set(err, errlen, "device %s: %s", spec->name,
			strerror(ENOMEM));
		return -ENOMEM;
	}
	r = dev_table_adopt(t, spec->name, &pc_testdev_owned_ops, d, err,
			    errlen);
	if (r) {
		pc_testdev_destroy(d);
		free(d);
		return r;
	}
	name = dev_table_find(t, spec->name)->name;
	r = bus_register(env->pio, PC_TESTDEV_IO_PORT, PC_TESTDEV_IO_LEN,
			 &pc_testdev_io_ops, d, name, err, errlen);
	if (!r)
		r = bus_register(env->pio, PC_TESTDEV_IRQ_PORT,
				 PC_TESTDEV_NR_LINES, &pc_testdev_irq_ops, d,
				 name, err, errlen);
	return r;
}

const struct dev_type pc_testdev_dev_type = {
	.type = "pc-testdev",
	.usage = "pc-testdev",
	.help = "QEMU's pc-testdev, as kvm-unit-tests uses it: scratch\n"
		"                        register at ports 0xe0/0xe8, flush "
		"page\n"
		"                        0xe4, ISA IRQ lines 0x2000-0x2017",
	.instance = "pc_testdev",
	.create = pc_testdev_create,
};
