// SPDX-License-Identifier: MIT
/*
 * hbread.c - follow a guest's heartbeat page from the host, with no help
 * from the VMM: map the file that backs the guest's RAM and poll the page.
 *
 *   hbread [--gpa ADDR] [--ms N] [--poll-us U] [--pread] FILE
 *
 * FILE is guest RAM as a file (QEMU: -object memory-backend-file,id=m,
 * size=256M,mem-path=/dev/shm/x,share=on -machine memory-backend=m), in
 * which ADDR (default GUEST_HB_PAGE_GPA) is also the file offset: true for
 * RAM below the PCI hole on QEMU's x86 machines. For N milliseconds
 * (default 1000) it prints "<seq> <CLOCK_MONOTONIC ns> <stall us>" on
 * stdout whenever the page's heartbeat number changes (stall: the guest's
 * own, sent with that beat; 0 from a guest that does not fill it in), then
 * a summary on stderr. The page
 * and its seqlock are described in common/guest_abi.h (struct
 * guest_hb_page). Polling is the point: the loop spins with `pause` on the
 * mapped page, so the timestamps are as close to the guest's stores as a
 * host thread gets; it costs one host CPU while it runs. --poll-us U
 * sleeps U us between reads instead (each timestamp then late by up to U us
 * plus the wake-up, but the CPU is left to the VMMs: a benchmark on two
 * cores wants that). --pread reads the page with pread() instead of a
 * mapping: a read of a hole in a tmpfs file then returns zeros without
 * allocating a page there, which a post-copy destination needs (QEMU places
 * its missing pages with UFFDIO_COPY, which fails on a page already there).
 * SIGINT and SIGTERM end the run early, with the output flushed.
 *
 * Exit: 0 when at least one heartbeat was seen, 1 when none was (the magic
 * never appeared, or seq never moved), 2 on bad usage or a file it cannot
 * map. Single-threaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/guest_abi.h"
#include "common/page.h"

#define EXIT_NONE  1
#define EXIT_USAGE 2

struct hb_opts {
	uint64_t gpa;
	uint64_t ms;
	uint64_t poll_us; /* 0: spin */
	bool pread;
	const char *file;
};

/* Where the page is read: a mapping of it, or (--pread) fd at gpa. */
struct hb_src {
	const volatile struct guest_hb_page *map;
	int fd;
	uint64_t off;
	uint64_t poll_us;
};

/* Set by SIGINT/SIGTERM; the main thread (the only one) polls it. */
static volatile sig_atomic_t hb_stop;

struct hb_stats {
	uint64_t beats;		    /* changes of seq seen */
	uint64_t first, last;	    /* seq values */
	uint64_t missed;	    /* numbers that went by unseen */
	uint64_t max_gap_ns;	    /* longest time between two changes seen */
	uint64_t first_ns, last_ns; /* host time they were seen */
	uint64_t first_tsc, last_tsc; /* guest TSC of first and last */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hbread [--gpa ADDR] [--ms N] [--poll-us U] [--pread] "
		"FILE\n"
		"  follow the guest heartbeat page at ADDR (default "
		"0x%llx) of the guest RAM file FILE\n"
		"  for N ms (default 1000): \"<seq> <CLOCK_MONOTONIC ns> "
		"<stall us>\" per new heartbeat\n"
		"  --poll-us U: sleep U us between reads (default: spin)\n"
		"  --pread: read with pread(), never fault a page into FILE\n",
		(unsigned long long)GUEST_HB_PAGE_GPA);
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return errno || end == s || *end || *s == '-' ? -EINVAL : 0;
}

static int parse_args(int argc, char **argv, struct hb_opts *o)
{
	static const struct option longopts[] = {
		{"gpa", required_argument, NULL, 'g'},
		{"ms", required_argument, NULL, 'm'},
		{"poll-us", required_argument, NULL, 'p'},
		{"pread", no_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int c;

	o->gpa = GUEST_HB_PAGE_GPA;
	o->ms = 1000;
	o->poll_us = 0;
	o->pread = false;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'g':
			if (parse_u64(optarg, &o->gpa) || o->gpa % PAGE_SIZE) {
				fprintf(stderr,
					"hbread: --gpa %s is not a "
					"page-aligned address\n",
					optarg);
				return -EINVAL;
			}
			break;
		case 'm':
			if (parse_u64(optarg, &o->ms)) {
				fprintf(stderr,
					"hbread: --ms %s is not a "
					"number\n",
					optarg);
				return -EINVAL;
			}
			break;
		case 'p':
			if (parse_u64(optarg, &o->poll_us) ||
			    o->poll_us > 1000000) {
				fprintf(stderr,
					"hbread: --poll-us %s is not a "
					"number up to 1000000\n",
					optarg);
				return -EINVAL;
			}
			break;
		case 'r':
			o->pread = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return -EINVAL;
	}
	o->file = argv[optind];
	return 0;
}

/*
 * Open the page at offset gpa of file read-only: map it, or with --pread
 * keep the file open.
 */
static int hb_open(const struct hb_opts *o, struct hb_src *src, char *err,
		   size_t errlen)
{
	struct stat st;
	void *p;
	int fd, r = 0;

	fd = open(o->file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		err_set(err, errlen, "open %s: %s", o->file, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		err_set(err, errlen, "stat %s: %s", o->file, strerror(-r));
	} else if ((uint64_t)st.st_size < o->gpa + PAGE_SIZE) {
		r = -ERANGE;
		err_set(err, errlen,
			"%s is %lld bytes, too small for the page at 0x%llx",
			o->file, (long long)st.st_size,
			(unsigned long long)o->gpa);
	} else if (o->pread) {
		src->fd = fd;
		src->off = o->gpa;
		return 0;
	} else {
		p = mmap(NULL, PAGE_SIZE, PROT_READ, MAP_SHARED, fd,
			 (off_t)o->gpa);
		if (p == MAP_FAILED) {
			r = -errno;
			err_set(err, errlen, "mmap %s at 0x%llx: %s", o->file,
				(unsigned long long)o->gpa, strerror(-r));
		} else {
			src->map = p;
		}
	}
	close(fd);
	return r;
}

/* One beat as the page holds it: seq, tsc and stall belong together. */
struct hb_beat {
	uint64_t seq, tsc, stall;
	uint64_t khz; /* the page's tsc_khz */
};

/* One consistent beat under the page's seqlock. */
static void hb_read(const volatile struct guest_hb_page *hb, struct hb_beat *b)
{
	uint64_t v1, v2;

	for (;;) {
		v1 = __atomic_load_n(&hb->lock, __ATOMIC_ACQUIRE);
		if (v1 & 1) {
			__builtin_ia32_pause();
			continue;
		}
		b->seq = __atomic_load_n(&hb->seq, __ATOMIC_ACQUIRE);
		b->tsc = __atomic_load_n(&hb->tsc, __ATOMIC_ACQUIRE);
		b->stall = __atomic_load_n(&hb->stall, __ATOMIC_ACQUIRE);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		v2 = __atomic_load_n(&hb->lock, __ATOMIC_RELAXED);
		if (v1 == v2)
			return;
	}
}

/*
 * The same through pread(): two copies of the page's head that are equal
 * with an even lock belong together (a store between them changes the
 * lock). A read error (the file shrank) counts as no page: zeros.
 */
static void hb_pread(const struct hb_src *src, struct guest_hb_page *out)
{
	struct guest_hb_page a, b;

	for (;;) {
		if (pread(src->fd, &a, sizeof(a), (off_t)src->off) !=
			    (ssize_t)sizeof(a) ||
		    pread(src->fd, &b, sizeof(b), (off_t)src->off) !=
			    (ssize_t)sizeof(b)) {
			memset(out, 0, sizeof(*out));
			return;
		}
		if (!(a.lock & 1) && !memcmp(&a, &b, sizeof(a))) {
			*out = a;
			return;
		}
	}
}

/* magic and the beat of the page, the beat consistent. */
static void hb_get(const struct hb_src *src, uint64_t *magic, struct hb_beat *b)
{
	struct guest_hb_page p;

	if (src->map) {
		*magic = __atomic_load_n(&src->map->magic, __ATOMIC_ACQUIRE);
		hb_read(src->map, b);
		b->khz = src->map->tsc_khz;
		return;
	}
	hb_pread(src, &p);
	*magic = p.magic;
	b->seq = p.seq;
	b->tsc = p.tsc;
	b->stall = p.stall;
	b->khz = p.tsc_khz;
}

/* Between two reads: spin once, or sleep --poll-us. */
static void hb_wait(const struct hb_src *src)
{
	struct timespec ts;

	if (!src->poll_us) {
		__builtin_ia32_pause();
		return;
	}
	ts.tv_sec = 0;
	ts.tv_nsec = (long)(src->poll_us * NSEC_PER_USEC);
	nanosleep(&ts, NULL); /* EINTR: the signal ends the loop */
}

static void hb_note(struct hb_stats *s, uint64_t seq, uint64_t tsc,
		    uint64_t now)
{
	if (s->beats == 0) {
		s->first = seq;
		s->first_tsc = tsc;
		s->first_ns = now;
	} else {
		if (seq > s->last + 1)
			s->missed += seq - s->last - 1;
		if (now - s->last_ns > s->max_gap_ns)
			s->max_gap_ns = now - s->last_ns;
	}
	s->beats++;
	s->last = seq;
	s->last_ns = now;
	s->last_tsc = tsc;
}

/*
 * The guest TSC's rate against the host's clock between the first and the
 * last beat seen, in kHz (0: too few beats): compare with the tsc_khz the
 * guest works with. Each end is late by the time the reader took to see
 * the beat, so it is exact to a few us over the whole run.
 */
static uint64_t hb_tsc_khz_seen(const struct hb_stats *s)
{
	uint64_t dns = s->last_ns - s->first_ns;

	if (s->beats < 2 || !dns)
		return 0;
	return (s->last_tsc - s->first_tsc) * NSEC_PER_MSEC / dns;
}

/* Heartbeats per second of guest time (its TSC), 0 if unknown. */
static uint64_t hb_guest_rate(const struct hb_stats *s, uint64_t tsc_khz)
{
	uint64_t dt = s->last_tsc - s->first_tsc;

	if (!tsc_khz || !dt || s->last <= s->first)
		return 0;
	return (s->last - s->first) * tsc_khz * 1000 / dt;
}

/*
 * Poll the page until the deadline or a signal; prints every new seq. The
 * seq found when the magic first appears is the baseline, not a beat.
 */
static void hb_follow(const struct hb_src *src, uint64_t end,
		      struct hb_stats *s)
{
	uint64_t prev = 0, now, m;
	struct hb_beat b;
	bool magic = false;

	while ((now = clock_now_ns()) < end && !hb_stop) {
		hb_get(src, &m, &b);
		if (!magic) {
			magic = m == GUEST_HB_MAGIC;
			prev = b.seq;
			hb_wait(src);
			continue;
		}
		if (b.seq == prev) {
			hb_wait(src);
			continue;
		}
		printf("%" PRIu64 " %" PRIu64 " %" PRIu64 "\n", b.seq, now,
		       guest_hb_stall_us(b.stall, b.khz));
		hb_note(s, b.seq, b.tsc, now);
		prev = b.seq;
	}
	if (!magic)
		fprintf(stderr,
			"hbread: no heartbeat page (magic 0x%llx) "
			"appeared\n",
			(unsigned long long)GUEST_HB_MAGIC);
}

static void hb_on_signal(int sig)
{
	(void)sig;
	hb_stop = 1;
}

/* SIGINT/SIGTERM end the run; no SA_RESTART, so a sleep ends too. */
static int hb_signals(void)
{
	struct sigaction sa = {.sa_handler = hb_on_signal};

	if (sigaction(SIGINT, &sa, NULL) < 0 ||
	    sigaction(SIGTERM, &sa, NULL) < 0) {
		fprintf(stderr, "hbread: sigaction: %s\n", strerror(errno));
		return -errno;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct hb_src src = {.fd = -1};
	struct hb_stats s = {0};
	struct guest_hb_page p;
	struct hb_opts o;
	char err[256];
	uint64_t khz;

	if (parse_args(argc, argv, &o) || hb_signals())
		return EXIT_USAGE;
	if (hb_open(&o, &src, err, sizeof(err))) {
		fprintf(stderr, "hbread: %s\n", err);
		return EXIT_USAGE;
	}
	src.poll_us = o.poll_us;
	hb_follow(&src, clock_now_ns() + o.ms * NSEC_PER_MSEC, &s);
	fflush(stdout);
	if (src.map) {
		khz = src.map->tsc_khz;
	} else {
		hb_pread(&src, &p);
		khz = p.tsc_khz;
	}
	fprintf(stderr,
		"hbread: %" PRIu64 " heartbeats in %" PRIu64 " ms, seq %" PRIu64
		"..%" PRIu64 ", %" PRIu64 " not seen, longest gap %" PRIu64
		" us; guest: TSC %" PRIu64 " kHz (%" PRIu64
		" kHz by the host clock), %" PRIu64
		" heartbeats per s of its TSC\n",
		s.beats, o.ms, s.first, s.last, s.missed,
		(uint64_t)(s.max_gap_ns / NSEC_PER_USEC), khz,
		hb_tsc_khz_seen(&s), hb_guest_rate(&s, khz));
	return s.beats ? 0 : EXIT_NONE;
}
