// SPDX-License-Identifier: MIT
/*
 * hbread.c - follow a guest's heartbeat page from the host, with no help
 * from the VMM: map the file that backs the guest's RAM and poll the page.
 *
 *   hbread [--gpa ADDR] [--ms N] FILE
 *
 * FILE is guest RAM as a file (QEMU: -object memory-backend-file,id=m,
 * size=256M,mem-path=/dev/shm/x,share=on -machine memory-backend=m), in
 * which ADDR (default GUEST_HB_PAGE_GPA) is also the file offset: true for
 * RAM below the PCI hole on QEMU's x86 machines. For N milliseconds
 * (default 1000) it prints "<seq> <CLOCK_MONOTONIC ns>" on stdout whenever
 * the page's heartbeat number changes, then a summary on stderr. The page
 * and its seqlock are described in common/guest_abi.h (struct
 * guest_hb_page). Polling is the point: the loop spins with `pause` on the
 * mapped page, so the timestamps are as close to the guest's stores as a
 * host thread gets; it costs one host CPU while it runs.
 *
 * Exit: 0 when at least one heartbeat was seen, 1 when none was (the magic
 * never appeared, or seq never moved), 2 on bad usage or a file it cannot
 * map. Single-threaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
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
	const char *file;
};

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
		"usage: hbread [--gpa ADDR] [--ms N] FILE\n"
		"  follow the guest heartbeat page at ADDR (default "
		"0x%llx) of the guest RAM file FILE\n"
		"  for N ms (default 1000): \"<seq> <CLOCK_MONOTONIC ns>\" "
		"per new heartbeat\n",
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
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int c;

	o->gpa = GUEST_HB_PAGE_GPA;
	o->ms = 1000;
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

/* Map the page at offset gpa of file read-only. */
static int hb_map(const struct hb_opts *o,
		  const volatile struct guest_hb_page **hb, char *err,
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
	} else {
		p = mmap(NULL, PAGE_SIZE, PROT_READ, MAP_SHARED, fd,
			 (off_t)o->gpa);
		if (p == MAP_FAILED) {
			r = -errno;
			err_set(err, errlen, "mmap %s at 0x%llx: %s", o->file,
				(unsigned long long)o->gpa, strerror(-r));
		} else {
			*hb = p;
		}
	}
	close(fd);
	return r;
}

/* One consistent (seq, tsc) pair under the page's seqlock. */
static void hb_read(const volatile struct guest_hb_page *hb, uint64_t *seq,
		    uint64_t *tsc)
{
	uint64_t v1, v2;

	for (;;) {
		v1 = __atomic_load_n(&hb->lock, __ATOMIC_ACQUIRE);
		if (v1 & 1) {
			__builtin_ia32_pause();
			continue;
		}
		*seq = __atomic_load_n(&hb->seq, __ATOMIC_ACQUIRE);
		*tsc = __atomic_load_n(&hb->tsc, __ATOMIC_ACQUIRE);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		v2 = __atomic_load_n(&hb->lock, __ATOMIC_RELAXED);
		if (v1 == v2)
			return;
	}
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

/* Spin on the page until the deadline; prints every new seq. */
static void hb_follow(const volatile struct guest_hb_page *hb, uint64_t end,
		      struct hb_stats *s)
{
	uint64_t seq, tsc, prev = 0, now;
	bool magic = false;

	while ((now = clock_now_ns()) < end) {
		if (!magic) {
			magic = __atomic_load_n(&hb->magic, __ATOMIC_ACQUIRE) ==
				GUEST_HB_MAGIC;
			if (!magic) {
				__builtin_ia32_pause();
				continue;
			}
			hb_read(hb, &prev, &tsc);
		}
		hb_read(hb, &seq, &tsc);
		if (seq == prev) {
			__builtin_ia32_pause();
			continue;
		}
		printf("%" PRIu64 " %" PRIu64 "\n", seq, now);
		hb_note(s, seq, tsc, now);
		prev = seq;
	}
	if (!magic)
		fprintf(stderr,
			"hbread: no heartbeat page (magic 0x%llx) "
			"appeared\n",
			(unsigned long long)GUEST_HB_MAGIC);
}

int main(int argc, char **argv)
{
	const volatile struct guest_hb_page *hb = NULL;
	struct hb_stats s = {0};
	struct hb_opts o;
	char err[256];
	uint64_t khz;

	if (parse_args(argc, argv, &o))
		return EXIT_USAGE;
	if (hb_map(&o, &hb, err, sizeof(err))) {
		fprintf(stderr, "hbread: %s\n", err);
		return EXIT_USAGE;
	}
	hb_follow(hb, clock_now_ns() + o.ms * NSEC_PER_MSEC, &s);
	fflush(stdout);
	khz = hb->tsc_khz;
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
