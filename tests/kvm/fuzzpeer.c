// SPDX-License-Identifier: MIT
/*
 * fuzzpeer.c - the fake peer's sockets, frame reassembly and generator
 * (fuzzpeer.h). Every socket is non-blocking and every wait is a poll()
 * with a limit, so the peer thread itself can never hang the test.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "tests/kvm/fuzzpeer.h"

#define FZ_RX_MAX  (PROTO_MAX_PAYLOAD + PROTO_HDR_SIZE)
#define FZ_TICK_MS 10

uint64_t fz_rand(struct fz_peer *p)
{
	uint64_t z = (p->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint32_t fz_below(struct fz_peer *p, uint32_t n)
{
	return n ? (uint32_t)(fz_rand(p) % n) : 0;
}

bool fz_chance(struct fz_peer *p, uint32_t percent)
{
	return fz_below(p, 100) < percent;
}

int fz_init(struct fz_peer *p, uint64_t seed)
{
	memset(p, 0, sizeof(*p));
	p->rng = seed;
	p->lfd = -1;
	for (int i = 0; i < FZ_MAX_CONN; i++)
		p->c[i].fd = -1;
	p->fbuf = malloc(FZ_FBUF);
	return p->fbuf ? 0 : -ENOMEM;
}

void fz_fini(struct fz_peer *p)
{
	for (int i = 0; i < FZ_MAX_CONN; i++) {
		fz_close(p, i);
		free(p->c[i].buf);
		p->c[i].buf = NULL;
	}
	if (p->lfd >= 0)
		close(p->lfd);
	p->lfd = -1;
	free(p->fbuf);
	p->fbuf = NULL;
}

static void fz_addr(struct sockaddr_in *a, int port)
{
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

int fz_listen(int *fd)
{
	unsigned int seed = 0;
	struct sockaddr_in a;
	int one = 1, s;

	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		return -errno;
	for (int i = 0; i < 100; i++) {
		int port = FZ_PORT_LO + (seed + i) % (FZ_PORT_HI - FZ_PORT_LO);

		s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			   0);
		if (s < 0)
			return -errno;
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		fz_addr(&a, port);
		if (!bind(s, (struct sockaddr *)&a, sizeof(a)) &&
		    !listen(s, 4)) {
			*fd = s;
			return port;
		}
		close(s);
		if (errno != EADDRINUSE)
			return -errno;
	}
	return -EADDRINUSE;
}

bool fz_open(const struct fz_peer *p, int ci)
{
	return ci >= 0 && ci < FZ_MAX_CONN && p->c[ci].fd >= 0;
}

static void fz_set_fd(struct fz_peer *p, int ci, int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	p->c[ci].fd = fd;
	p->c[ci].len = 0;
}

int fz_connect(struct fz_peer *p, int ci, int port)
{
	struct sockaddr_in a;
	struct pollfd pfd;
	int err = 0;
	socklen_t el = sizeof(err);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	fz_close(p, ci);
	fz_addr(&a, port);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
	if (poll(&pfd, 1, 2000) != 1 ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
		close(fd);
		return -1;
	}
	fz_set_fd(p, ci, fd);
	return 0;
}

static int fz_free_slot(struct fz_peer *p)
{
	for (int i = 0; i < FZ_MAX_CONN; i++)
		if (p->c[i].fd < 0)
			return i;
	return -1;
}

int fz_accept(struct fz_peer *p, int ms)
{
	struct pollfd pfd = {.fd = p->lfd, .events = POLLIN};
	int ci = fz_free_slot(p), fd;

	if (ci < 0 || p->lfd < 0 || poll(&pfd, 1, ms) != 1)
		return -1;
	fd = accept4(p->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return -1;
	fz_set_fd(p, ci, fd);
	return ci;
}

void fz_close(struct fz_peer *p, int ci)
{
	if (!fz_open(p, ci))
		return;
	close(p->c[ci].fd);
	p->c[ci].fd = -1;
	p->c[ci].len = 0;
}

void fz_shutdown(struct fz_peer *p, int ci)
{
	if (fz_open(p, ci))
		shutdown(p->c[ci].fd, SHUT_WR);
}

/* Whole frames out of c's buffer, to on_frame; a malformed one is noted. */
static void fz_parse(struct fz_peer *p, int ci)
{
	struct fz_conn *c = &p->c[ci];
	size_t off = 0;

	while (c->len - off >= PROTO_HDR_SIZE) {
		struct proto_hdr h;
		char err[128];

		if (proto_hdr_decode(c->buf + off, &h, err, sizeof(err)) ||
		    (c->len - off >= PROTO_HDR_SIZE + h.len &&
		     proto_frame_check(c->buf + off, &h, err, sizeof(err)))) {
			snprintf(p->bad, sizeof(p->bad), "conn %d: %s", ci,
				 err);
			fz_close(p, ci);
			return;
		}
		if (c->len - off < PROTO_HDR_SIZE + h.len)
			break;
		if (ci == 0)
			p->rx[h.type]++;
		else
			p->urx[h.type]++;
		if (p->on_frame)
			p->on_frame(p, ci, &h, c->buf + off + PROTO_HDR_SIZE);
		if (!fz_open(p, ci))
			return; /* the plan closed it */
		off += PROTO_HDR_SIZE + h.len;
	}
	memmove(c->buf, c->buf + off, c->len - off);
	c->len -= off;
}

static void fz_read(struct fz_peer *p, int ci)
{
	struct fz_conn *c = &p->c[ci];
	ssize_t n;

	if (!c->buf) {
		c->buf = malloc(FZ_RX_MAX);
		c->cap = c->buf ? FZ_RX_MAX : 0;
	}
	if (c->len == c->cap) {
		fz_close(p, ci);
		return;
	}
	n = read(c->fd, c->buf + c->len, c->cap - c->len);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		fz_close(p, ci); /* EOF or reset: the real side let go */
		return;
	}
	if (n > 0) {
		c->len += (size_t)n;
		fz_parse(p, ci);
	}
}

/*
 * One poll of every connection (and the listener: a connection the real
 * source opens, its urgent one, is accepted). want_out: also wait for ci
 * to be writable; returns whether it is.
 */
static bool fz_poll(struct fz_peer *p, int ms, int want_out)
{
	struct pollfd pfd[FZ_MAX_CONN + 1];
	int map[FZ_MAX_CONN + 1], n = 0;
	bool out = false;

	for (int i = 0; i < FZ_MAX_CONN; i++) {
		short ev = p->deaf ? 0 : POLLIN;

		if (i == want_out)
			ev |= POLLOUT;
		if (p->c[i].fd < 0 || !ev)
			continue;
		pfd[n] = (struct pollfd){.fd = p->c[i].fd, .events = ev};
		map[n++] = i;
	}
	if (p->lfd >= 0 && !p->deaf) {
		pfd[n] = (struct pollfd){.fd = p->lfd, .events = POLLIN};
		map[n++] = -1;
	}
	if (!n) {
		usleep((useconds_t)ms * 1000);
		return false;
	}
	if (poll(pfd, (nfds_t)n, ms) <= 0)
		return false;
	for (int i = 0; i < n; i++) {
		if (!pfd[i].revents)
			continue;
		if (map[i] < 0) {
			fz_accept(p, 0);
			continue;
		}
		if (map[i] == want_out && (pfd[i].revents & POLLOUT))
			out = true;
		if ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    !p->deaf && p->c[map[i]].fd >= 0)
			fz_read(p, map[i]);
	}
	return out;
}

int fz_send(struct fz_peer *p, int ci, const uint8_t *buf, size_t len,
	    int limit_ms)
{
	uint64_t last = clock_now_ms();
	size_t off = 0;

	while (off < len) {
		ssize_t n;

		if (atomic_load(&p->stop) || !fz_open(p, ci))
			return -1;
		if (clock_now_ms() - last > (uint64_t)limit_ms)
			return -1;
		n = send(p->c[ci].fd, buf + off, len - off,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			off += (size_t)n;
			last = clock_now_ms();
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			fz_close(p, ci);
			return -1;
		}
		fz_poll(p, FZ_TICK_MS, ci);
	}
	p->frames_sent++;
	return 0;
}

void fz_pump(struct fz_peer *p, int ms)
{
	uint64_t end = clock_now_ms() + (uint64_t)ms;

	while (!atomic_load(&p->stop) && clock_now_ms() < end) {
		fz_poll(p, FZ_TICK_MS, -1);
		if (p->on_idle)
			p->on_idle(p);
	}
}

bool fz_wait(struct fz_peer *p, bool (*pred)(struct fz_peer *p), int ms)
{
	uint64_t end = clock_now_ms() + (uint64_t)ms;

	while (!pred(p)) {
		if (atomic_load(&p->stop) || clock_now_ms() >= end)
			return false;
		fz_poll(p, FZ_TICK_MS, -1);
		if (p->on_idle)
			p->on_idle(p);
	}
	return true;
}
