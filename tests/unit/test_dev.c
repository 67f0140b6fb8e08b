// SPDX-License-Identifier: MIT
/*
 * test_dev.c - the device table (devices/dev.h) over real devices: a UART
 * and two pt devices DMAing into one real guest_mem, each driven through
 * its registers as a vCPU would. Registration and order, the quiesce
 * handshake aggregated over both pt devices (who is still waiting, who
 * refuses, the pinned buffers of both), resume, the ack notification,
 * the constructor by type and the start of the devices' threads.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "devices/devices.h"

#define MiB (1ULL << 20)
/* Each device's ring and buffers, far apart in guest RAM. */
#define RING(k)	    (0x200000ULL + (uint64_t)(k)*0x100000ULL)
#define BUF(k, i)   (RING(k) + 0x10000ULL + (uint64_t)(i)*PT_BUF_MIN)
#define NR_BUFS_MAX 8

static struct guest_mem gm;
static struct serial uart;
static struct pt pts[2];
static struct dev_table t;
static char err[512];
static int irqs, acks;

static void count_irq(void *opaque, unsigned int gsi, int level)
{
	(void)opaque;
	(void)gsi;
	irqs += level;
}

static const struct dev_host host = {
	.irq_line = count_irq,
	.mem = &gm,
};

static void setup(void)
{
	cr_assert_eq(mem_create(&gm, 16 * MiB), 0);
	cr_assert_eq(serial_init(&uart, &host, NULL, SERIAL_COM1_IRQ), 0);
	for (int k = 0; k < 2; k++)
		cr_assert_eq(pt_init(&pts[k], &host, NULL, err, sizeof(err)), 0,
			     "%s", err);
	dev_table_init(&t);
	cr_assert_eq(dev_table_add(&t, "serial-com1", &serial_dev_ops, &uart,
				   err, sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(dev_table_add(&t, "pt0", &pt_dev_ops, &pts[0], err,
				   sizeof(err)),
		     0, "%s", err);
	cr_assert_eq(dev_table_add(&t, "pt1", &pt_dev_ops, &pts[1], err,
				   sizeof(err)),
		     0, "%s", err);
	irqs = acks = 0;
	err[0] = '\0';
}

static void teardown(void)
{
	dev_table_destroy(&t); /* nothing adopted: frees nothing */
	for (int k = 0; k < 2; k++)
		pt_destroy(&pts[k]);
	serial_destroy(&uart);
	mem_destroy(&gm);
}

TestSuite(dev, .init = setup, .fini = teardown, .timeout = 60);

/* ---- the guest drivers of pt0 and pt1 ------------------------------------ */

static void reg_write(int k, uint64_t off, uint64_t v, uint32_t len)
{
	pt_ops.write(&pts[k], off, &v, len);
}

static uint32_t reg_read(int k, uint64_t off)
{
	uint32_t v = 0;

	pt_ops.read(&pts[k], off, &v, sizeof(v));
	return v;
}

/* Register an 8-entry ring, enable it and post n buffers. */
static void drv_start(int k, uint32_t n)
{
	struct pt_desc *d =
		mem_gpa_to_hva(&gm, RING(k) + sizeof(struct pt_ring_hdr),
			       NR_BUFS_MAX * sizeof(*d));

	cr_assert_not_null(d);
	reg_write(k, PT_REG_RING, RING(k), 8);
	reg_write(k, PT_REG_RING_SIZE, NR_BUFS_MAX, 4);
	reg_write(k, PT_REG_ENABLE, 1, 4);
	for (uint32_t i = 0; i < n; i++) {
		d[i].buf_gpa = BUF(k, i);
		d[i].buf_len = PT_BUF_MIN;
		d[i].flags = 0;
	}
	reg_write(k, PT_REG_TAIL, n, 4);
}

/* The driver acks the current request; with stop, it disables first. */
static void drv_ack(int k, bool stop)
{
	if (stop)
		reg_write(k, PT_REG_ENABLE, 0, 4);
	reg_write(k, PT_REG_ACK, reg_read(k, PT_REG_REQ_SEQ), 4);
}

static void count_ack(void *opaque)
{
	cr_assert_eq(opaque, &t);
	acks++;
}

/* ---- registration ---------------------------------------------------------
 */

Test(dev, registered_in_order_and_found_by_name)
{
	static const char *const names[] = {"serial-com1", "pt0", "pt1"};
	char longname[DEV_NAME_MAX + 1];

	cr_assert_eq(t.nr, 3);
	for (int i = 0; i < t.nr; i++) {
		cr_assert_str_eq(t.dev[i].name, names[i]);
		cr_assert_eq(dev_table_find(&t, names[i]), &t.dev[i]);
		cr_assert_not(t.dev[i].owned);
	}
	cr_assert_eq(t.dev[1].dev, &pts[0]);
	cr_assert_eq(t.dev[0].ops->version, SERIAL_STATE_VERSION);
	cr_assert_eq(t.dev[2].ops->version, PT_STATE_VERSION);
	cr_assert_null(dev_table_find(&t, "pt2"));
	cr_assert_eq(dev_table_nr_quiesce(&t), 2);

	cr_assert_eq(dev_table_add(&t, "pt0", &pt_dev_ops, &pts[1], err,
				   sizeof(err)),
		     -EEXIST);
	cr_assert(strstr(err, "pt0"), "%s", err);
	memset(longname, 'x', DEV_NAME_MAX);
	longname[DEV_NAME_MAX] = '\0';
	cr_assert_eq(dev_table_add(&t, longname, &pt_dev_ops, &pts[1], err,
				   sizeof(err)),
		     -EINVAL);
	for (int i = t.nr; i < DEV_TABLE_MAX; i++) {
		char name[16];

		snprintf(name, sizeof(name), "uart%d", i);
		cr_assert_eq(dev_table_add(&t, name, &serial_dev_ops, &uart,
					   err, sizeof(err)),
			     0, "%s", err);
	}
	cr_assert_eq(dev_table_add(&t, "one-more", &serial_dev_ops, &uart, err,
				   sizeof(err)),
		     -ENOSPC);
	cr_assert_eq(t.nr, DEV_TABLE_MAX);
	cr_assert_str_eq(t.dev[3].name, "uart3");
}

/* ---- the quiesce handshake over two DMA devices -------------------------- */

static struct {
	int n;
	uint64_t gpa[2 * NR_BUFS_MAX];
} pins;

static void record_pin(void *opaque, uint64_t gpa, uint64_t len)
{
	cr_assert_eq(opaque, &pins);
	cr_assert_eq(len, PT_BUF_MIN);
	cr_assert_lt(pins.n, 2 * NR_BUFS_MAX);
	pins.gpa[pins.n++] = gpa;
}

static int pinned_now(void)
{
	pins.n = 0;
	dev_table_pinned(&t, record_pin, &pins);
	return pins.n;
}

Test(dev, quiesce_waits_for_every_device)
{
	struct pt_stats st[2];

	drv_start(0, 2);
	drv_start(1, 1);
	cr_assert_eq(pinned_now(), 3);
	cr_assert_eq(pins.gpa[0], BUF(0, 0));
	cr_assert_eq(pins.gpa[1], BUF(0, 1));
	cr_assert_eq(pins.gpa[2], BUF(1, 0));

	dev_table_set_ack(&t, count_ack, &t);
	cr_assert_eq(dev_table_quiesce_request(&t), 2);
	cr_assert_eq(dev_table_quiesce_poll(&t, err, sizeof(err)), 0);
	cr_assert_str_eq(err, "device pt0: the driver did not acknowledge "
			      "the quiesce request");

	/* pt0's driver stops and acks: pt1 is the one waited for now. */
	drv_ack(0, true);
	cr_assert_eq(acks, 1);
	cr_assert_eq(dev_table_quiesce_poll(&t, err, sizeof(err)), 0);
	cr_assert(strstr(err, "device pt1: the driver did not"), "%s", err);
	cr_assert_eq(pinned_now(), 1);

	/* pt1's driver acks but keeps its queue: refused, pt1 named. */
	drv_ack(1, false);
	cr_assert_eq(acks, 2);
	cr_assert_eq(dev_table_quiesce_poll(&t, err, sizeof(err)), -EBUSY);
	cr_assert(strstr(err, "device pt1: driver acknowledged the quiesce "
			      "but left the queue enabled"),
		  "%s", err);
	cr_assert(strstr(err, "still pinned"), "%s", err);

	reg_write(1, PT_REG_ENABLE, 0, 4);
	cr_assert_eq(dev_table_quiesce_poll(&t, err, sizeof(err)), 1, "%s",
		     err);
	cr_assert_eq(pinned_now(), 0);
	pt_get_stats(&pts[0], &st[0]);
	pt_get_stats(&pts[1], &st[1]);
	cr_assert_eq(dev_table_quiesce_ns(&t),
		     st[0].quiesce_ns > st[1].quiesce_ns ? st[0].quiesce_ns
							 : st[1].quiesce_ns);

	/* Resume: both drivers are asked back; the notification is off. */
	dev_table_set_ack(&t, NULL, NULL);
	dev_table_resume(&t);
	for (int k = 0; k < 2; k++) {
		cr_assert_eq(reg_read(k, PT_REG_REQ), PT_REQ_RESUME);
		drv_ack(k, false);
		pt_get_stats(&pts[k], &st[k]);
		cr_assert_eq(st[k].qstate, PT_Q_RUNNING);
		cr_assert_eq(st[k].resumes, 1);
	}
	cr_assert_eq(acks, 2);
}

Test(dev, idle_devices_need_no_ack)
{
	drv_start(1, 2);
	reg_write(1, PT_REG_ENABLE, 0, 4); /* gives its buffers back */
	dev_table_set_ack(&t, count_ack, &t);
	cr_assert_eq(dev_table_quiesce_request(&t), 0);
	cr_assert_eq(dev_table_quiesce_poll(&t, err, sizeof(err)), 1, "%s",
		     err);
	cr_assert_eq(reg_read(0, PT_REG_REQ), PT_REQ_QUIESCE);
	cr_assert_eq(reg_read(1, PT_REG_REQ), PT_REQ_QUIESCE);
	/* An ack after all is still a notification. */
	drv_ack(0, false);
	cr_assert_eq(acks, 1);
	cr_assert_eq(dev_table_quiesce_ns(&t), pts[0].st.quiesce_ns);
}

/* ---- construction by type, threads ----------------------------------------
 */

Test(dev, created_by_type_mapped_and_started)
{
	struct bus mmio;
	const struct dev_env env = {.host = &host, .mmio = &mmio};
	const struct pt_config cfg = {.rate_pps = 2000};
	const struct dev_spec spec = {"pt", "pt2", &cfg};
	const struct dev_spec bad = {"nic", "eth0", NULL};
	const struct dev *failed = NULL;
	const struct bus_range *r;
	struct dev *d;

	bus_init(&mmio, "mmio");
	cr_assert_eq(dev_create(&t, &bad, &env, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "no device type nic"), "%s", err);
	cr_assert_eq(dev_create(&t, &spec, &env, err, sizeof(err)), 0, "%s",
		     err);
	d = dev_table_find(&t, "pt2");
	cr_assert_not_null(d);
	cr_assert(d->owned);
	cr_assert_eq(d, &t.dev[3]);
	cr_assert_eq(((struct pt *)d->dev)->cfg.rate_pps, 2000);
	r = bus_find(&mmio, PT_GPA);
	cr_assert_not_null(r);
	cr_assert_eq(r->opaque, d->dev);
	cr_assert_str_eq(r->name, "pt2");

	/* Every pt's thread starts; a second start fails and says who. */
	cr_assert_eq(dev_table_start(&t, &failed, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(dev_table_start(&t, &failed, err, sizeof(err)), -EBUSY);
	cr_assert_eq(failed, &t.dev[1]);
	dev_table_destroy(&t); /* stops and frees pt2 only */
	cr_assert_eq(t.nr, 0);
	bus_destroy(&mmio);
}
