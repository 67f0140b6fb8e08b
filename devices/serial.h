/* SPDX-License-Identifier: MIT */
/*
 * serial.h - 8250/16550A-compatible UART (COM1: ports 0x3f8-0x3ff, IRQ 4).
 *
 * Transmitted bytes go to a struct console. Received bytes come from
 * serial_push_input() (the event loop feeds it from stdin or --serial-in:
 * vmm/ctl/serial_in.c) into a 64-byte FIFO; the interrupt line follows
 * IER/IIR as on the real part (level-triggered through dev_host->irq_line).
 * Back-pressure: the feeder stops while the FIFO is full, and the UART
 * calls its rx_room function when the guest has read one out of a full
 * FIFO.
 */
#ifndef DEVICES_SERIAL_H
#define DEVICES_SERIAL_H

#include <pthread.h>
#include <stdint.h>

#include "devices/bus.h"
#include "devices/console.h"
#include "devices/dev.h"

#define SERIAL_COM1_BASE 0x3f8
#define SERIAL_COM1_IRQ	 4
#define SERIAL_FIFO_SIZE 64

struct dev_host;

/* The receive FIFO has room again (called on a vCPU thread, s->lock held). */
typedef void (*serial_room_fn)(void *opaque);

struct serial {
	pthread_mutex_t lock; /* guards every field below */
	const struct dev_host *host;
	struct console *out;
	unsigned int irq;
	uint8_t ier, iir, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
	uint8_t lsr_err; /* sticky LSR error bits (OE); reading LSR clears */
	uint8_t rx[SERIAL_FIFO_SIZE];
	unsigned int rx_head, rx_len;
	serial_room_fn rx_room;
	void *rx_room_opaque;
	int irq_level;
	/*
	 * THRE interrupt pending: set when the transmitter empties or THRI is
	 * enabled while it is empty; cleared by writing THR or by reading IIR
	 * while THRE is the source reported there.
	 */
	int thr_ipending;
};

extern const struct bus_ops serial_ops;

int serial_init(struct serial *s, const struct dev_host *host,
		struct console *out, unsigned int irq);
void serial_destroy(struct serial *s);
/* Queue input bytes; returns how many fitted in the FIFO. */
size_t serial_push_input(struct serial *s, const void *buf, size_t len);
/* Free bytes in the receive FIFO now. */
size_t serial_rx_room(struct serial *s);
/* Call fn(opaque) when a guest read makes room in a full FIFO (NULL: none). */
void serial_set_rx_room(struct serial *s, serial_room_fn fn, void *opaque);

/*
 * Migratable state, version SERIAL_STATE_VERSION: bytes only, so the layout
 * is fixed (no padding, no byte order). IIR, LSR and the interrupt level
 * are derived state: saved for the record, recomputed by serial_load().
 * Version 2 adds lsr_err; a version 1 state (struct serial_state_v1, the
 * same fields without it) still loads, with no error pending.
 */
#define SERIAL_STATE_VERSION	2
#define SERIAL_STATE_VERSION_V1 1

struct serial_state_v1 {
	uint8_t ier, iir, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
	uint8_t thr_ipending;
	uint8_t rx_len;		      /* bytes waiting in rx[] */
	uint8_t rx[SERIAL_FIFO_SIZE]; /* oldest first */
};

struct serial_state {
	uint8_t ier, iir, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
	uint8_t thr_ipending;
	uint8_t rx_len;		      /* bytes waiting in rx[] */
	uint8_t rx[SERIAL_FIFO_SIZE]; /* oldest first */
	uint8_t lsr_err;	      /* sticky LSR error bits (UART_LSR_OE) */
};

void serial_save(struct serial *s, struct serial_state *st);
/*
 * Restore st (-EINVAL with err set when it is inconsistent), then drive
 * the interrupt line to the level the registers call for.
 */
int serial_load(struct serial *s, const struct serial_state *st, char *err,
		size_t errlen);

/* The device table's view: struct serial_state, no thread, no DMA. */
extern const struct dev_ops serial_dev_ops;

#endif /* DEVICES_SERIAL_H */
