/* SPDX-License-Identifier: MIT */
/*
 * pt_life.c - the pt device's life cycle: init, the device thread that
 * ticks the traffic source (timerfd, a stop eventfd), start, stop and
 * destroy, the ack hook and the statistics. pt_init/pt_start/pt_destroy
 * run on the main or event-loop thread while no other thread uses the
 * device; the rest follows p->lock as pt.c's header comment says.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "devices/devices.h"
#include "devices/pt_int.h"

/* ---- life cycle and the device thread ----------------------------------- */

int pt_init(struct pt *p, const struct dev_host *host,
	    const struct pt_config *cfg, char *err, size_t errlen)
{
	struct pt_config c = cfg ? *cfg : (struct pt_config){0};
	int ret;

	memset(p, 0, sizeof(*p));
	p->timer_fd = -1;
	p->stop_fd = -1;
	if (!host || !host->mem) {
		err_set(err, errlen, "pt: no guest memory to DMA into");
		return -EINVAL;
	}
	if (!c.rate_pps)
		c.rate_pps = PT_RATE_DEFAULT;
	if (!c.gsi)
		c.gsi = PT_GSI;
	if (c.rate_pps > PT_RATE_MAX) {
		err_set(err, errlen, "pt: rate %" PRIu32 " pps above %d",
		       c.rate_pps, PT_RATE_MAX);
		return -EINVAL;
	}
	p->host = host;
	p->cfg = c;
	p->ring_gpa = PT_NO_RING;
	p->qstate = PT_Q_RUNNING;
	p->st.next_seq = 1;
	ret = -pthread_mutex_init(&p->lock, NULL);
	if (ret)
		err_set(err, errlen, "pt: pthread_mutex_init: %s",
		       strerror(-ret));
	return ret;
}

/* Wait for the next tick; false when the thread should end. */
static bool pt_thread_wait(struct pt *p)
{
	struct pollfd fds[2] = {
		{.fd = p->timer_fd, .events = POLLIN},
		{.fd = p->stop_fd, .events = POLLIN},
	};
	uint64_t ticks;

	for (;;) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "pt: poll: %s\n", strerror(errno));
			return false;
		}
		if (fds[1].revents)
			return false;
		if (!fds[0].revents)
			continue;
		if (read(p->timer_fd, &ticks, sizeof(ticks)) == sizeof(ticks))
			return true;
		if (errno != EAGAIN && errno != EINTR) {
			fprintf(stderr, "pt: read timerfd: %s\n",
				strerror(errno));
			return false;
		}
	}
}

/* The device thread: a tick every 1 ms credits the time that really passed. */
static void *pt_thread(void *arg)
{
	struct pt *p = arg;
	uint64_t last = clock_now_ns(), now;

	while (pt_thread_wait(p)) {
		now = clock_now_ns();
		pt_tick(p, now - last);
		last = now;
	}
	return NULL;
}

static void pt_close_fds(struct pt *p)
{
	if (p->timer_fd >= 0 && close(p->timer_fd) < 0)
		fprintf(stderr, "pt: close timerfd: %s\n", strerror(errno));
	if (p->stop_fd >= 0 && close(p->stop_fd) < 0)
		fprintf(stderr, "pt: close eventfd: %s\n", strerror(errno));
	p->timer_fd = -1;
	p->stop_fd = -1;
}

static int pt_open_fds(struct pt *p, char *err, size_t errlen)
{
	struct itimerspec its = {
		.it_interval = {.tv_nsec = PT_TICK_NS},
		.it_value = {.tv_nsec = PT_TICK_NS},
	};

	const char *what = "timerfd_create";
	int ret;

	p->timer_fd =
		timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (p->timer_fd >= 0) {
		what = "timerfd_settime";
		if (timerfd_settime(p->timer_fd, 0, &its, NULL) == 0) {
			what = "eventfd";
			p->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			if (p->stop_fd >= 0)
				return 0;
		}
	}
	ret = -errno;
	err_set(err, errlen, "pt: %s: %s", what, strerror(-ret));
	return ret;
}

int pt_start(struct pt *p, char *err, size_t errlen)
{
	int ret;

	if (p->thread_on) {
		err_set(err, errlen, "pt: the device thread is already running");
		return -EBUSY;
	}
	ret = pt_open_fds(p, err, errlen);
	if (!ret) {
		ret = -pthread_create(&p->thread, NULL, pt_thread, p);
		if (ret)
			err_set(err, errlen, "pt: pthread_create: %s",
			       strerror(-ret));
	}
	if (ret) {
		pt_close_fds(p);
		return ret;
	}
	p->thread_on = true;
	return 0;
}

/* Wake the thread through its eventfd and join it. */
static void pt_stop_thread(struct pt *p)
{
	uint64_t one = 1;
	ssize_t n;
	int ret;

	do
		n = write(p->stop_fd, &one, sizeof(one));
	while (n < 0 && errno == EINTR);
	if (n != sizeof(one)) {
		/* Cannot happen; if it does, poll() is a cancellation point */
		fprintf(stderr, "pt: write eventfd: %s\n",
			n < 0 ? strerror(errno) : "short write");
		ret = pthread_cancel(p->thread);
		if (ret)
			fprintf(stderr, "pt: pthread_cancel: %s\n",
				strerror(ret));
	}
	ret = pthread_join(p->thread, NULL);
	if (ret)
		fprintf(stderr, "pt: pthread_join: %s\n", strerror(ret));
	p->thread_on = false;
}

void pt_destroy(struct pt *p)
{
	if (p->thread_on)
		pt_stop_thread(p);
	pt_close_fds(p);
	pthread_mutex_destroy(&p->lock);
}

void pt_set_ack_hook(struct pt *p,
		     void (*fn)(void *opaque, enum pt_req req, uint32_t seq),
		     void *opaque)
{
	pthread_mutex_lock(&p->lock);
	p->on_ack = fn;
	p->ack_opaque = opaque;
	pthread_mutex_unlock(&p->lock);
}

void pt_get_stats(struct pt *p, struct pt_stats *out)
{
	pthread_mutex_lock(&p->lock);
	*out = p->st;
	out->enabled = p->enabled;
	out->qstate = p->qstate;
	out->ring_size = p->ring_size;
	out->pinned = p->tail - p->head;
	out->queued = p->q_len;
	pthread_mutex_unlock(&p->lock);
}

