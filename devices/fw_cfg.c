/* SPDX-License-Identifier: MIT */
/*
 * fw_cfg.c - the I/O port form of QEMU's fw_cfg (see fw_cfg.h).
 */
#include <errno.h>
#include <string.h>

#include "common/err.h"
#include "devices/fw_cfg.h"

/* The item the selector names, or NULL. */
static const struct fw_cfg_item *fw_cfg_item(const struct fw_cfg *f,
					     uint16_t sel)
{
	uint16_t key = sel & FW_CFG_KEY_MASK;

	if ((sel & FW_CFG_ARCH) || key >= FW_CFG_NR_KEYS || !f->items[key].len)
		return NULL;
	return &f->items[key];
}

static void fw_cfg_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct fw_cfg *f = opaque;
	const struct fw_cfg_item *it;
	uint8_t b = 0;

	if (len != 1) {
		memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&f->lock);
	it = fw_cfg_item(f, f->sel);
	if (it && f->off < it->len)
		b = it->data[f->off++];
	pthread_mutex_unlock(&f->lock);
	*(uint8_t *)data = b;
}

static void fw_cfg_write(void *opaque, uint64_t off, const void *data,
			 uint32_t len)
{
	struct fw_cfg *f = opaque;
	uint16_t sel;

	/* Only the selector; data-port writes are obsolete in QEMU too. */
	if (off != 0 || len != 2)
		return;
	memcpy(&sel, data, sizeof(sel));
	pthread_mutex_lock(&f->lock);
	f->sel = sel;
	f->off = 0;
	pthread_mutex_unlock(&f->lock);
}

const struct bus_ops fw_cfg_ops = {
	.read = fw_cfg_read,
	.write = fw_cfg_write,
};

/* A little-endian integer item of n bytes. */
static void fw_cfg_set(struct fw_cfg *f, uint16_t key, uint64_t v, uint8_t n)
{
	f->items[key].len = n;
	for (uint8_t i = 0; i < n; i++)
		f->items[key].data[i] = (uint8_t)(v >> (8 * i));
}

int fw_cfg_init(struct fw_cfg *f, unsigned int nr_cpus, uint64_t ram_size,
		uint64_t max_ram, char *err, size_t errlen)
{
	int r;

	memset(f, 0, sizeof(*f));
	if (!nr_cpus || nr_cpus > UINT16_MAX) {
		err_set(err, errlen, "fw_cfg: %u vCPUs does not fit NB_CPUS",
			nr_cpus);
		return -EINVAL;
	}
	r = pthread_mutex_init(&f->lock, NULL);
	if (r) {
		err_set(err, errlen, "fw_cfg: mutex: %s", strerror(r));
		return -r;
	}
	f->items[FW_CFG_SIGNATURE].len = 4;
	memcpy(f->items[FW_CFG_SIGNATURE].data, "QEMU", 4);
	fw_cfg_set(f, FW_CFG_ID, 1, 4);
	fw_cfg_set(f, FW_CFG_RAM_SIZE, ram_size, 8);
	fw_cfg_set(f, FW_CFG_NB_CPUS, nr_cpus, 2);
	fw_cfg_set(f, FW_CFG_MAX_CPUS, nr_cpus, 2);
	fw_cfg_set(f, FW_CFG_MAX_RAM, max_ram, 8);
	return 0;
}

void fw_cfg_destroy(struct fw_cfg *f)
{
	pthread_mutex_destroy(&f->lock);
}

void fw_cfg_save(struct fw_cfg *f, struct fw_cfg_state *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&f->lock);
	st->sel = f->sel;
	st->off = f->off;
	pthread_mutex_unlock(&f->lock);
}

int fw_cfg_load(struct fw_cfg *f, const struct fw_cfg_state *st, char *err,
		size_t errlen)
{
	const struct fw_cfg_item *it = fw_cfg_item(f, st->sel);
	uint32_t max = it ? it->len : 0;

	if (st->pad || st->off > max) {
		err_set(err, errlen,
			"fw_cfg state: offset %u past the end (%u bytes) of "
			"item 0x%x, or pad %u not zero",
			st->off, max, st->sel, st->pad);
		return -EINVAL;
	}
	pthread_mutex_lock(&f->lock);
	f->sel = st->sel;
	f->off = st->off;
	pthread_mutex_unlock(&f->lock);
	return 0;
}

/* ---- the device table's view --------------------------------------------- */

DEV_OPS_STATE(fw_cfg_dev_ops, "fw_cfg", FW_CFG_STATE_VERSION, struct fw_cfg,
	      struct fw_cfg_state, fw_cfg_save, fw_cfg_load);
