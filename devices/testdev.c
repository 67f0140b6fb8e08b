/* SPDX-License-Identifier: MIT */
/*
 * testdev.c - the test device: exit, heartbeat, markers and console for
 * ring-3 guest code, in one MMIO page (register map in common/guest_abi.h).
 *
 * Accesses arrive on any vCPU thread. t->lock guards the statistics, the
 * heartbeat log and the warning rate limit; the event loop takes it to
 * flush the log and read the statistics. Callbacks into the VMM
 * (request_exit, event) and console writes are made without t->lock, so
 * the VMM may call back into testdev_get_stats() from them. A heartbeat is
 * timestamped before anything else, even before the lock, so that the
 * downtime measured from the log is not inflated by lock waits.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "devices/devices.h"

#define TESTDEV_WARN_NS	   NSEC_PER_SEC /* at most one warning a second */
#define TESTDEV_GPA_MASK   ((1ULL << 48) - 1)
#define TESTDEV_LEN_SHIFT  48
#define TESTDEV_MARK_SHIFT 32

static void testdev_warn(struct testdev *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A warning on stderr, at most one per TESTDEV_WARN_NS. */
static void testdev_warn(struct testdev *t, const char *fmt, ...)
{
	uint64_t now = clock_now_ns(), suppressed;
	va_list ap;

	pthread_mutex_lock(&t->lock);
	if (t->warn_ns && now - t->warn_ns < TESTDEV_WARN_NS) {
		t->warn_suppressed++;
		pthread_mutex_unlock(&t->lock);
		return;
	}
	suppressed = t->warn_suppressed;
	t->warn_suppressed = 0;
	t->warn_ns = now;
	pthread_mutex_unlock(&t->lock);

	if (suppressed)
		fprintf(stderr, "testdev: %" PRIu64 " warnings suppressed\n",
			suppressed);
	fputs("testdev: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* A heartbeat-log error, reported once per distinct errno; t->lock held. */
static void testdev_log_error(struct testdev *t, int err)
{
	if (err == t->hb_err)
		return;
	t->hb_err = err;
	fprintf(stderr, "testdev: heartbeat log '%s': %s\n", t->hb_path,
		strerror(err));
}

/*
 * Heartbeat seq; stall_us is the guest's own stall before it (the
 * BEAT_STALL register), logged as a third column, or -1 (HEARTBEAT).
 */
static void testdev_heartbeat(struct testdev *t, uint32_t seq, int64_t stall_us)
{
	uint64_t ns = clock_now_ns(); /* first: this is the measurement */
	struct testdev_stats *st = &t->st;
	int r = 0;

	pthread_mutex_lock(&t->lock);
	if (st->heartbeats && seq != (uint32_t)(st->last_seq + 1))
		st->seq_errors++;
	st->heartbeats++;
	st->last_seq = seq;
	st->last_ns = ns;
	errno = 0;
	if (t->hb_log && stall_us < 0)
		r = fprintf(t->hb_log, "%" PRIu32 " %" PRIu64 "\n", seq, ns);
	else if (t->hb_log)
		r = fprintf(t->hb_log, "%" PRIu32 " %" PRIu64 " %" PRId64 "\n",
			    seq, ns, stall_us);
	if (r < 0)
		testdev_log_error(t, errno ? errno : EIO);
	pthread_mutex_unlock(&t->lock);
}

static void testdev_exit(struct testdev *t, uint32_t code)
{
	if (t->host && t->host->request_exit)
		t->host->request_exit(t->host->opaque, (int)code, "guest exit");
}

static void testdev_marker(struct testdev *t, uint64_t val)
{
	uint32_t id = (uint32_t)(val >> TESTDEV_MARK_SHIFT);
	uint32_t arg = (uint32_t)val;

	pthread_mutex_lock(&t->lock);
	if (id < MARK_MAX) {
		t->st.markers[id]++;
		t->st.marker_arg[id] = arg;
	}
	pthread_mutex_unlock(&t->lock);
	if (t->host && t->host->event)
		t->host->event(t->host->opaque, "marker", id, arg);
}

static void testdev_console_buf(struct testdev *t, uint64_t val)
{
	uint64_t len = val >> TESTDEV_LEN_SHIFT;
	uint64_t gpa = val & TESTDEV_GPA_MASK;
	const void *hva;

	if (!t->out || !t->host || !t->host->mem || !len)
		return;
	if (len > TESTDEV_CONSOLE_BUF_MAX) {
		testdev_warn(
			t, "CONSOLE_BUF of %" PRIu64 " bytes (max %d) ignored",
			len, TESTDEV_CONSOLE_BUF_MAX);
		return;
	}
	hva = mem_gpa_to_hva(t->host->mem, gpa, len);
	if (!hva) {
		testdev_warn(t,
			     "CONSOLE_BUF [0x%" PRIx64 "-0x%" PRIx64
			     "] is not guest RAM, ignored",
			     gpa, gpa + len - 1);
		return;
	}
	console_write(t->out, hva, len);
}

/* The value of a little-endian access of len bytes. */
static uint64_t testdev_value(const void *data, uint32_t len)
{
	uint64_t v = 0;

	memcpy(&v, data, len < sizeof(v) ? len : sizeof(v));
	return v;
}

static void testdev_write(void *opaque, uint64_t off, const void *data,
			  uint32_t len)
{
	struct testdev *t = opaque;
	uint64_t v = testdev_value(data, len);

	/* Each register takes one width; anything else is ignored. */
	switch (off) {
	case TESTDEV_REG_HEARTBEAT:
		if (len == 4)
			testdev_heartbeat(t, (uint32_t)v, -1);
		break;
	case TESTDEV_REG_BEAT_STALL:
		if (len == 8)
			testdev_heartbeat(t, (uint32_t)v, (int64_t)(v >> 32));
		break;
	case TESTDEV_REG_EXIT:
		if (len == 4)
			testdev_exit(t, (uint32_t)v);
		break;
	case TESTDEV_REG_MARKER:
		if (len == 8)
			testdev_marker(t, v);
		break;
	case TESTDEV_REG_CONSOLE:
		if (len == 1 && t->out)
			console_write(t->out, data, 1);
		break;
	case TESTDEV_REG_CONSOLE_BUF:
		if (len == 8)
			testdev_console_buf(t, v);
		break;
	default:
		break;
	}
}

static void testdev_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	uint32_t id = TESTDEV_ID;

	memset(data, 0, len);
	if (off == TESTDEV_REG_ID && len == sizeof(id))
		memcpy(data, &id, sizeof(id));
}

const struct bus_ops testdev_ops = {
	.read = testdev_read,
	.write = testdev_write,
};

static int testdev_open_log(struct testdev *t, const char *path)
{
	int fd, ret;

	snprintf(t->hb_path, sizeof(t->hb_path), "%s", path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	t->hb_log = fdopen(fd, "w");
	if (!t->hb_log) {
		ret = -errno;
		close(fd);
		return ret;
	}
	t->hb_buf = malloc(TESTDEV_HB_BUF);
	if (!t->hb_buf)
		return -ENOMEM;
	if (setvbuf(t->hb_log, t->hb_buf, _IOFBF, TESTDEV_HB_BUF))
		return -EINVAL;
	return 0;
}

int testdev_init(struct testdev *t, const struct dev_host *host,
		 struct console *out, const char *hb_path, char *err,
		 size_t errlen)
{
	int ret;

	memset(t, 0, sizeof(*t));
	t->host = host;
	t->out = out;
	ret = -pthread_mutex_init(&t->lock, NULL);
	if (ret) {
		if (err && errlen)
			snprintf(err, errlen, "testdev: %s", strerror(-ret));
		return ret;
	}
	if (!hb_path)
		return 0;
	ret = testdev_open_log(t, hb_path);
	if (ret) {
		if (err && errlen)
			snprintf(err, errlen,
				 "testdev: cannot open heartbeat log '%s': %s",
				 hb_path, strerror(-ret));
		if (t->hb_log)
			fclose(t->hb_log);
		free(t->hb_buf);
		pthread_mutex_destroy(&t->lock);
		t->hb_log = NULL;
		t->hb_buf = NULL;
		return ret;
	}
	return 0;
}

void testdev_flush(struct testdev *t)
{
	pthread_mutex_lock(&t->lock);
	if (t->hb_log && fflush(t->hb_log) == EOF)
		testdev_log_error(t, errno);
	pthread_mutex_unlock(&t->lock);
}

void testdev_get_stats(struct testdev *t, struct testdev_stats *out)
{
	pthread_mutex_lock(&t->lock);
	*out = t->st;
	pthread_mutex_unlock(&t->lock);
}

void testdev_destroy(struct testdev *t)
{
	testdev_flush(t);
	pthread_mutex_lock(&t->lock);
	if (t->hb_log && fclose(t->hb_log) == EOF)
		testdev_log_error(t, errno);
	t->hb_log = NULL;
	free(t->hb_buf);
	t->hb_buf = NULL;
	pthread_mutex_unlock(&t->lock);
	pthread_mutex_destroy(&t->lock);
}

const char *testdev_marker_name(unsigned int id)
{
	static const char *const names[MARK_MAX] = {
		[MARK_CPU_UP] = "cpu-up",
		[MARK_WORKLOAD_START] = "workload-start",
		[MARK_VERIFY_OK] = "verify-ok",
		[MARK_VERIFY_FAIL] = "verify-fail",
		[MARK_GUEST_PANIC] = "guest-panic",
		[MARK_REQ_DONE] = "req-done",
		[MARK_PF_COUNT] = "pf-count",
		[MARK_RESULT] = "result",
		[MARK_PT_PACKETS] = "pt-packets",
		[MARK_PT_SEQ_ERROR] = "pt-seq-error",
		[MARK_PT_QUIESCED] = "pt-quiesced",
		[MARK_PT_RESUMED] = "pt-resumed",
	};

	if (id >= MARK_MAX || !names[id])
		return "unknown";
	return names[id];
}

void testdev_save(struct testdev *t, struct testdev_state *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&t->lock);
	st->heartbeats = t->st.heartbeats;
	st->seq_errors = t->st.seq_errors;
	st->last_seq = t->st.last_seq;
	memcpy(st->markers, t->st.markers, sizeof(st->markers));
	memcpy(st->marker_arg, t->st.marker_arg, sizeof(st->marker_arg));
	pthread_mutex_unlock(&t->lock);
}

/*
 * The statistics continue from st: the next heartbeat must be last_seq + 1.
 * last_ns stays this process's own (0 until a heartbeat arrives here).
 */
int testdev_load(struct testdev *t, const struct testdev_state *st, char *err,
		 size_t errlen)
{
	if (st->pad || (!st->heartbeats && (st->last_seq || st->seq_errors))) {
		snprintf(err, errlen,
			 "testdev state: inconsistent (heartbeats %" PRIu64
			 ", last_seq %" PRIu32 ", seq_errors %" PRIu64 ")",
			 st->heartbeats, st->last_seq, st->seq_errors);
		return -EINVAL;
	}
	pthread_mutex_lock(&t->lock);
	t->st.heartbeats = st->heartbeats;
	t->st.seq_errors = st->seq_errors;
	t->st.last_seq = st->last_seq;
	memcpy(t->st.markers, st->markers, sizeof(t->st.markers));
	memcpy(t->st.marker_arg, st->marker_arg, sizeof(t->st.marker_arg));
	pthread_mutex_unlock(&t->lock);
	return 0;
}

/* ---- the device table's view --------------------------------------------- */

static int testdev_dev_save(void *dev, void *state, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	testdev_save(dev, state);
	return 0;
}

static int testdev_dev_load(void *dev, const void *state, char *err,
			    size_t errlen)
{
	return testdev_load(dev, state, err, errlen);
}

const struct dev_ops testdev_dev_ops = {
	.type = "testdev",
	.version = TESTDEV_STATE_VERSION,
	.state_size = sizeof(struct testdev_state),
	.save = testdev_dev_save,
	.load = testdev_dev_load,
};
