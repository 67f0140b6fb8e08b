/* SPDX-License-Identifier: MIT */
/*
 * serial.c - a 16550A UART as Linux and our ring-0 code drive it.
 *
 * Transmission is instantaneous: a byte written to THR goes straight to the
 * console, so THR and the transmitter are always empty (LSR THRE and TEMT
 * always set). The receiver holds a SERIAL_FIFO_SIZE-byte FIFO, fed by
 * serial_push_input() whether or not the guest enabled FIFOs (the caller
 * keeps what does not fit, so nothing is lost, and stops feeding until
 * rx_room tells it a read made room). Interrupts: line status while an
 * overrun is unread (a byte looped back into a full FIFO), RDA while
 * received data waits, THRE, in that priority as on the real part; no
 * modem-status interrupts (modem lines never change). Loopback
 * mode routes THR to the receiver and MCR to MSR, which Linux's probe uses.
 * Threads: vCPU threads dispatch register accesses and the event loop
 * pushes input; s->lock guards all state and is held while irq_line() and
 * console_write() are called, so level changes reach KVM in order.
 */
#include <errno.h>
#include <linux/serial_reg.h>
#include <stdio.h>
#include <string.h>

#include "devices/devices.h"

#define SERIAL_IIR_FIFO 0xc0 /* IIR bits 7:6: FIFOs enabled */
#define SERIAL_IER_MASK 0x0f
#define SERIAL_MCR_MASK 0x1f
#define SERIAL_MSR_IDLE (UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS)
#define SERIAL_DLL_9600 0x0c /* 115200 / 9600 */

static uint8_t serial_iir_locked(const struct serial *s)
{
	uint8_t iir = UART_IIR_NO_INT;

	if ((s->ier & UART_IER_RLSI) && s->lsr_err)
		iir = UART_IIR_RLSI;
	else if ((s->ier & UART_IER_RDI) && s->rx_len)
		iir = UART_IIR_RDI;
	else if ((s->ier & UART_IER_THRI) && s->thr_ipending)
		iir = UART_IIR_THRI;
	if (s->fcr & UART_FCR_ENABLE_FIFO)
		iir |= SERIAL_IIR_FIFO;
	return iir;
}

/* Recompute IIR, LSR and the interrupt line; s->lock held. */
static void serial_update_locked(struct serial *s)
{
	int level;

	s->iir = serial_iir_locked(s);
	s->lsr = UART_LSR_THRE | UART_LSR_TEMT | s->lsr_err;
	if (s->rx_len)
		s->lsr |= UART_LSR_DR;
	level = !(s->iir & UART_IIR_NO_INT);
	if (level == s->irq_level)
		return;
	s->irq_level = level;
	if (s->host && s->host->irq_line)
		s->host->irq_line(s->host->opaque, s->irq, level);
}

static size_t serial_rx_put(struct serial *s, const uint8_t *buf, size_t len)
{
	size_t i, n = SERIAL_FIFO_SIZE - s->rx_len;

	if (len < n)
		n = len;
	for (i = 0; i < n; i++) {
		unsigned int tail = (s->rx_head + s->rx_len) % SERIAL_FIFO_SIZE;

		s->rx[tail] = buf[i];
		s->rx_len++;
	}
	return n;
}

static uint8_t serial_rx_get(struct serial *s)
{
	uint8_t c;

	if (!s->rx_len)
		return 0;
	c = s->rx[s->rx_head];
	s->rx_head = (s->rx_head + 1) % SERIAL_FIFO_SIZE;
	/* Room again in a full FIFO: the feeder may go on. */
	if (s->rx_len-- == SERIAL_FIFO_SIZE && s->rx_room)
		s->rx_room(s->rx_room_opaque);
	return c;
}

static void serial_rx_clear(struct serial *s)
{
	s->rx_head = 0;
	s->rx_len = 0;
}

static uint8_t serial_msr_locked(const struct serial *s)
{
	uint8_t msr = 0;

	if (!(s->mcr & UART_MCR_LOOP))
		return s->msr;
	if (s->mcr & UART_MCR_DTR)
		msr |= UART_MSR_DSR;
	if (s->mcr & UART_MCR_RTS)
		msr |= UART_MSR_CTS;
	if (s->mcr & UART_MCR_OUT1)
		msr |= UART_MSR_RI;
	if (s->mcr & UART_MCR_OUT2)
		msr |= UART_MSR_DCD;
	return msr;
}

static void serial_write_thr(struct serial *s, uint8_t val)
{
	/* THR is full for an instant: drop the THRE interrupt... */
	s->thr_ipending = 0;
	serial_update_locked(s);
	if (s->mcr & UART_MCR_LOOP) {
		/* A byte that finds the FIFO full is lost: overrun. */
		if (!serial_rx_put(s, &val, 1))
			s->lsr_err |= UART_LSR_OE;
	} else if (s->out)
		console_write(s->out, &val, 1);
	/* ...and raise it again once the byte has left: an edge per byte. */
	s->thr_ipending = 1;
}

static void serial_write_ier(struct serial *s, uint8_t val)
{
	uint8_t old = s->ier;

	s->ier = val & SERIAL_IER_MASK;
	/* Enabling THRI while THR is empty interrupts at once (16550A). */
	if ((s->ier & UART_IER_THRI) && !(old & UART_IER_THRI))
		s->thr_ipending = 1;
}

static void serial_write_fcr(struct serial *s, uint8_t val)
{
	/* Switching FIFOs on or off resets them. */
	if ((val ^ s->fcr) & UART_FCR_ENABLE_FIFO)
		serial_rx_clear(s);
	if (val & UART_FCR_CLEAR_RCVR)
		serial_rx_clear(s);
	/* Clear bits self-reset; the transmit FIFO is always empty. */
	s->fcr = val & ~(UART_FCR_CLEAR_RCVR | UART_FCR_CLEAR_XMIT);
}

static void serial_write_reg(struct serial *s, unsigned int reg, uint8_t val)
{
	bool dlab = s->lcr & UART_LCR_DLAB;

	switch (reg) {
	case UART_TX:
		if (dlab)
			s->dll = val;
		else
			serial_write_thr(s, val);
		break;
	case UART_IER:
		if (dlab)
			s->dlm = val;
		else
			serial_write_ier(s, val);
		break;
	case UART_FCR:
		serial_write_fcr(s, val);
		break;
	case UART_LCR:
		s->lcr = val;
		break;
	case UART_MCR:
		s->mcr = val & SERIAL_MCR_MASK;
		break;
	case UART_SCR:
		s->scr = val;
		break;
	default: /* LSR and MSR: factory test, ignored */
		break;
	}
	serial_update_locked(s);
}

static uint8_t serial_read_iir(struct serial *s)
{
	uint8_t iir = serial_iir_locked(s);

	/* Reading IIR acknowledges a THRE interrupt it reports. */
	if ((iir & UART_IIR_ID) == UART_IIR_THRI)
		s->thr_ipending = 0;
	return iir;
}

static uint8_t serial_read_reg(struct serial *s, unsigned int reg)
{
	bool dlab = s->lcr & UART_LCR_DLAB;
	uint8_t val;

	switch (reg) {
	case UART_RX:
		val = dlab ? s->dll : serial_rx_get(s);
		break;
	case UART_IER:
		val = dlab ? s->dlm : s->ier;
		break;
	case UART_IIR:
		val = serial_read_iir(s);
		break;
	case UART_LCR:
		val = s->lcr;
		break;
	case UART_MCR:
		val = s->mcr;
		break;
	case UART_LSR:
		val = s->lsr;
		s->lsr_err = 0; /* reading LSR clears its error bits */
		break;
	case UART_MSR:
		val = serial_msr_locked(s);
		break;
	case UART_SCR:
		val = s->scr;
		break;
	default:
		val = 0xff;
		break;
	}
	serial_update_locked(s);
	return val;
}

/* A wider access is a run of byte accesses to consecutive registers. */
static void serial_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct serial *s = opaque;
	uint8_t *p = data;
	uint32_t i;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < len; i++)
		p[i] = serial_read_reg(s, (unsigned int)(off + i));
	pthread_mutex_unlock(&s->lock);
}

static void serial_write(void *opaque, uint64_t off, const void *data,
			 uint32_t len)
{
	struct serial *s = opaque;
	const uint8_t *p = data;
	uint32_t i;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < len; i++)
		serial_write_reg(s, (unsigned int)(off + i), p[i]);
	pthread_mutex_unlock(&s->lock);
}

const struct bus_ops serial_ops = {
	.read = serial_read,
	.write = serial_write,
};

int serial_init(struct serial *s, const struct dev_host *host,
		struct console *out, unsigned int irq)
{
	int ret;

	memset(s, 0, sizeof(*s));
	ret = pthread_mutex_init(&s->lock, NULL);
	if (ret)
		return -ret;
	s->host = host;
	s->out = out;
	s->irq = irq;
	s->dll = SERIAL_DLL_9600;
	s->msr = SERIAL_MSR_IDLE;
	s->iir = UART_IIR_NO_INT;
	s->lsr = UART_LSR_THRE | UART_LSR_TEMT;
	return 0;
}

void serial_destroy(struct serial *s)
{
	pthread_mutex_destroy(&s->lock);
}

size_t serial_push_input(struct serial *s, const void *buf, size_t len)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = serial_rx_put(s, buf, len);
	serial_update_locked(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t serial_rx_room(struct serial *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = SERIAL_FIFO_SIZE - s->rx_len;
	pthread_mutex_unlock(&s->lock);
	return n;
}

void serial_set_rx_room(struct serial *s, serial_room_fn fn, void *opaque)
{
	pthread_mutex_lock(&s->lock);
	s->rx_room = fn;
	s->rx_room_opaque = opaque;
	pthread_mutex_unlock(&s->lock);
}

void serial_save(struct serial *s, struct serial_state *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&s->lock);
	st->ier = s->ier;
	st->iir = s->iir;
	st->lcr = s->lcr;
	st->mcr = s->mcr;
	st->lsr = s->lsr;
	st->msr = s->msr;
	st->scr = s->scr;
	st->dll = s->dll;
	st->dlm = s->dlm;
	st->fcr = s->fcr;
	st->thr_ipending = (uint8_t)s->thr_ipending;
	st->rx_len = (uint8_t)s->rx_len;
	for (unsigned int i = 0; i < s->rx_len; i++)
		st->rx[i] = s->rx[(s->rx_head + i) % SERIAL_FIFO_SIZE];
	st->lsr_err = s->lsr_err;
	pthread_mutex_unlock(&s->lock);
}

/* Values the registers can never hold are a corrupt or foreign state. */
static int serial_state_check(const struct serial_state *st, char *err,
			      size_t errlen)
{
	const char *bad = NULL;

	if (st->rx_len > SERIAL_FIFO_SIZE)
		bad = "rx_len beyond the FIFO";
	else if (st->ier & ~SERIAL_IER_MASK)
		bad = "reserved IER bits set";
	else if (st->mcr & ~SERIAL_MCR_MASK)
		bad = "reserved MCR bits set";
	else if (st->fcr & (UART_FCR_CLEAR_RCVR | UART_FCR_CLEAR_XMIT))
		bad = "self-clearing FCR bits set";
	else if (st->thr_ipending > 1)
		bad = "thr_ipending is not 0 or 1";
	else if (st->lsr_err & ~UART_LSR_OE)
		bad = "lsr_err holds bits other than OE";
	if (!bad)
		return 0;
	snprintf(err, errlen, "serial state: %s", bad);
	return -EINVAL;
}

int serial_load(struct serial *s, const struct serial_state *st, char *err,
		size_t errlen)
{
	int r = serial_state_check(st, err, errlen);

	if (r)
		return r;
	pthread_mutex_lock(&s->lock);
	s->ier = st->ier;
	s->lcr = st->lcr;
	s->mcr = st->mcr;
	s->msr = st->msr;
	s->scr = st->scr;
	s->dll = st->dll;
	s->dlm = st->dlm;
	s->fcr = st->fcr;
	s->thr_ipending = st->thr_ipending;
	memcpy(s->rx, st->rx, st->rx_len);
	s->rx_head = 0;
	s->rx_len = st->rx_len;
	s->lsr_err = st->lsr_err;
	/*
	 * IIR, LSR and the line follow from the registers. Drive the line
	 * whatever level it had here, so this VM's irqchip hears it once.
	 */
	s->irq_level = -1;
	serial_update_locked(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* ---- the device table's view --------------------------------------------- */

static int serial_dev_save(void *dev, void *state, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	serial_save(dev, state);
	return 0;
}

static int serial_dev_load(void *dev, const void *state, char *err,
			   size_t errlen)
{
	return serial_load(dev, state, err, errlen);
}

/* Version 1: the same fields but lsr_err, which starts clear. */
static int serial_dev_load_v1(void *dev, const void *state, char *err,
			      size_t errlen)
{
	struct serial_state st;

	memset(&st, 0, sizeof(st));
	memcpy(&st, state, sizeof(struct serial_state_v1));
	return serial_load(dev, &st, err, errlen);
}

const struct dev_ops serial_dev_ops = {
	.type = "serial",
	.version = SERIAL_STATE_VERSION,
	.state_size = sizeof(struct serial_state),
	.save = serial_dev_save,
	.load = serial_dev_load,
	.old_version = SERIAL_STATE_VERSION_V1,
	.old_state_size = sizeof(struct serial_state_v1),
	.load_old = serial_dev_load_v1,
};
