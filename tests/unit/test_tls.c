// SPDX-License-Identifier: MIT
/*
 * test_tls.c - the TLS engine (migration/tls*.c) over real TCP loopback
 * connections, one end on a thread, each driven by poll() on the want
 * flags (and once by a libuv uv_poll_t on a socket a uv_tcp_t accepted, as
 * migration/channel.c will): a mutual handshake and data both ways, channel
 * bindings, every refusal giving its line on the side that detects it
 * (unknown CA, expired, not yet valid, host mismatch, --tls-authz, a
 * plaintext peer either way), and the loading errors of a --tls-dir.
 * Certificates come from scripts/mkcerts.sh, run once before the tests;
 * the expired and not-yet-valid ones are signed here with the same CA.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <criterion/logging.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <uv.h>

#include "common/clock.h"
#include "migration/tls.h"

#define ERRLEN 768

static const char *certs; /* the directory of test certificate dirs */

/* ---- certificates ------------------------------------------------------ */

static void run(const char *cmd)
{
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static void path(char *buf, size_t len, const char *dir, const char *file)
{
	snprintf(buf, len, "%s/%s%s%s", certs, dir, file ? "/" : "",
		 file ? file : "");
}

static void copy(const char *from_dir, const char *to_dir, const char *file)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "cp %s/%s/%s %s/%s/%s", certs, from_dir,
		 file, certs, to_dir, file);
	run(cmd);
}

static void write_pem(const char *p, int (*w)(FILE *, void *), void *obj)
{
	FILE *f = fopen(p, "w");

	cr_assert(f, "%s: %s", p, strerror(errno));
	cr_assert_eq(w(f, obj), 1);
	fclose(f);
}

static int w_cert(FILE *f, void *x)
{
	return PEM_write_X509(f, x);
}

static int w_key(FILE *f, void *k)
{
	return PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
}

static void add_ext(X509 *x, X509 *ca, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *e;

	X509V3_set_ctx(&v3, ca, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	cr_assert(e);
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
}

/* dir: dst's CA, a localhost certificate valid from now+from to now+to. */
static void make_dated(const char *dir, long from, long to)
{
	char p[512];
	FILE *f;
	EVP_PKEY *cakey, *key = EVP_EC_gen("P-256");
	X509 *ca, *x = X509_new();

	path(p, sizeof(p), "dst", "ca-key.pem");
	cr_assert((f = fopen(p, "r")));
	cakey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	path(p, sizeof(p), "dst", "ca.pem");
	cr_assert((f = fopen(p, "r")));
	ca = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	cr_assert(cakey && ca && key && x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1000 + from);
	X509_gmtime_adj(X509_getm_notBefore(x), from);
	X509_gmtime_adj(X509_getm_notAfter(x), to);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)"localhost", -1, -1,
				   0);
	X509_set_issuer_name(x, X509_get_subject_name(ca));
	X509_set_pubkey(x, key);
	add_ext(x, ca, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
	add_ext(x, ca, NID_ext_key_usage, "serverAuth,clientAuth");
	cr_assert(X509_sign(x, cakey, EVP_sha256()));
	path(p, sizeof(p), dir, NULL);
	cr_assert_eq(mkdir(p, 0700), 0);
	copy("dst", dir, "ca.pem");
	path(p, sizeof(p), dir, "cert.pem");
	write_pem(p, w_cert, x);
	path(p, sizeof(p), dir, "key.pem");
	write_pem(p, w_key, key);
	X509_free(x);
	X509_free(ca);
	EVP_PKEY_free(key);
	EVP_PKEY_free(cakey);
}

/*
 * dst: CA A, CN=localhost. src: CA A, CN=src1. other: CA B. mixed: trusts
 * A, presents B's certificate. expired, future: CA A, dated.
 */
ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	static char dir[] = "/tmp/test_tls.XXXXXX";
	char cmd[2048];

	(void)set;
	cr_assert(mkdtemp(dir));
	certs = dir;
	setenv("TEST_TLS_CERTS", dir, 1);
	snprintf(cmd, sizeof(cmd),
		 "s=%s/scripts/mkcerts.sh; d=%s; $s $d/dst >/dev/null && "
		 "$s $d/src --ca $d/dst --client src1 >/dev/null && "
		 "$s $d/other --hosts localhost,127.0.0.1 >/dev/null && "
		 "mkdir $d/mixed && cp $d/dst/ca.pem $d/mixed/ && "
		 "cp $d/other/cert.pem $d/other/key.pem $d/mixed/",
		 VMM_SRC_DIR, dir);
	run(cmd);
	make_dated("expired", -20 * 86400L, -10 * 86400L);
	make_dated("future", 10 * 86400L, 20 * 86400L);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	char cmd[512];

	(void)stats;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", certs);
	run(cmd);
}

static void suite_init(void)
{
	certs = getenv("TEST_TLS_CERTS");
	cr_assert(certs);
	signal(SIGPIPE, SIG_IGN); /* as the VMM does */
}

TestSuite(tls, .init = suite_init, .timeout = 60);

static struct tls_ctx *ctx_of(const char *dir, enum tls_role role,
			      const char *authz)
{
	char p[512], err[ERRLEN] = "";
	struct tls_ctx *ctx;
	int r;

	path(p, sizeof(p), dir, NULL);
	r = tls_ctx_new(&ctx, p, role, authz, err, sizeof(err));
	cr_assert_eq(r, 0, "%s", err);
	return ctx;
}

/* ---- sockets and driving ----------------------------------------------- */

static void nonblock(int fd)
{
	cr_assert_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
}

/* A connected TCP pair over 127.0.0.1: fds[0] client, fds[1] server. */
static void tcp_pair(int fds[2])
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(l >= 0);
	cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(l, 1), 0);
	cr_assert_eq(getsockname(l, (struct sockaddr *)&a, &alen), 0);
	fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect(fds[0], (struct sockaddr *)&a, sizeof(a)), 0);
	fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	cr_assert(fds[1] >= 0);
	close(l);
	nonblock(fds[0]);
	nonblock(fds[1]);
}

static void wait_for(struct tls_conn *c)
{
	struct pollfd p = {.fd = c->fd};

	p.events = (c->want_read ? POLLIN : 0) | (c->want_write ? POLLOUT : 0);
	cr_assert(p.events);
	cr_assert_eq(poll(&p, 1, 10000), 1, "stuck waiting for the peer");
}

static int handshake(struct tls_conn *c, char *err)
{
	int r;

	while ((r = tls_conn_handshake(c, err, ERRLEN)) == -EAGAIN)
		wait_for(c);
	return r;
}

#define NO_CHECK 0xffffffffU /* a seed: bytes are neither made nor checked */

/* Byte i of a test stream. */
static uint8_t pattern(size_t i, unsigned seed)
{
	return (uint8_t)((i * 2654435761U) >> 13 ^ seed);
}

/* Write len bytes of the stream seed (NO_CHECK: of zeroes). */
static int write_all(struct tls_conn *c, size_t len, unsigned seed, char *err)
{
	static __thread uint8_t buf[100000];
	size_t off = 0;

	while (off < len) {
		size_t n = len - off < sizeof(buf) ? len - off : sizeof(buf);
		ssize_t w;

		for (size_t i = 0; seed != NO_CHECK && i < n; i++)
			buf[i] = pattern(off + i, seed);
		while ((w = tls_conn_write(c, buf, n, err, ERRLEN)) == -EAGAIN)
			wait_for(c);
		if (w < 0)
			return (int)w;
		off += (size_t)w;
	}
	return 0;
}

/*
 * Read len bytes and check them (unless seed is NO_CHECK): 0, -EBADMSG (a
 * wrong byte) or -errno.
 */
static int read_all(struct tls_conn *c, size_t len, unsigned seed, char *err)
{
	static __thread uint8_t buf[70000];
	size_t off = 0;

	while (off < len) {
		size_t want = len - off < sizeof(buf) ? len - off : sizeof(buf);
		ssize_t n = tls_conn_read(c, buf, want, err, ERRLEN);

		if (n == -EAGAIN) {
			wait_for(c);
			continue;
		}
		if (n <= 0)
			return n ? (int)n : -ECONNRESET;
		for (ssize_t i = 0; seed != NO_CHECK && i < n; i++)
			if (buf[i] != pattern(off + i, seed))
				return -EBADMSG;
		off += (size_t)n;
	}
	return 0;
}

/* One end of a session; the server's runs on a thread. */
struct end {
	struct tls_ctx *ctx;
	int fd;
	const char *host;
	struct tls_conn *c;
	int hs;	      /* handshake result */
	int io;	      /* data result */
	size_t bytes; /* read this many, then write them back */
	bool sink;    /* only read them, unchecked (throughput) */
	uint8_t binding[TLS_BINDING_LEN];
	char err[ERRLEN];
};

static void end_new(struct end *e)
{
	int r = tls_conn_new(&e->c, e->ctx, e->fd, e->host, e->err,
			     sizeof(e->err));

	cr_assert_eq(r, 0, "%s", e->err);
}

static void end_open(struct end *e)
{
	if (!e->c)
		end_new(e);
	e->hs = handshake(e->c, e->err);
	if (!e->hs)
		cr_assert_eq(tls_conn_binding(e->c, "vmm test", e->binding), 0);
}

static void *server_main(void *arg)
{
	struct end *e = arg;

	end_open(e);
	if (!e->hs && e->bytes && e->sink) {
		e->io = read_all(e->c, e->bytes, NO_CHECK, e->err);
	} else if (!e->hs && e->bytes) {
		e->io = read_all(e->c, e->bytes, 1, e->err);
		if (!e->io)
			e->io = write_all(e->c, e->bytes, 2, e->err);
	} else if (!e->hs) {
		/* Wait for the client's verdict: its close, or data. */
		uint8_t b;

		while ((e->io = (int)tls_conn_read(e->c, &b, 1, e->err,
						   sizeof(e->err))) == -EAGAIN)
			wait_for(e->c);
	}
	return NULL;
}

struct session {
	int fds[2];
	struct end cl, sv;
	pthread_t t;
};

/* Start a session: the server end on a thread, the client's handshake. */
static void session_start(struct session *s, struct tls_ctx *cl,
			  struct tls_ctx *sv, const char *host, size_t bytes)
{
	memset(s, 0, sizeof(*s));
	tcp_pair(s->fds);
	s->cl = (struct end){.ctx = cl, .fd = s->fds[0], .host = host};
	s->sv = (struct end){.ctx = sv, .fd = s->fds[1], .bytes = bytes};
	/* A server called before the client sent a byte waits for it. */
	end_new(&s->sv);
	cr_assert_eq(tls_conn_handshake(s->sv.c, s->sv.err, ERRLEN), -EAGAIN);
	cr_assert(s->sv.c->want_read);
	cr_assert_eq(pthread_create(&s->t, NULL, server_main, &s->sv), 0);
	end_open(&s->cl);
}

static void session_end_joined(struct session *s)
{
	tls_conn_free(s->cl.c);
	tls_conn_free(s->sv.c);
	close(s->fds[0]);
	close(s->fds[1]);
}

/* Close the client's socket (the server's read ends) and join. */
static void session_end(struct session *s)
{
	if (!s->cl.hs)
		tls_conn_shutdown(s->cl.c);
	shutdown(s->fds[0], SHUT_RDWR);
	pthread_join(s->t, NULL);
	session_end_joined(s);
}

/* One byte each way; then the server's thread is done: join it. */
static void session_exchange(struct session *s)
{
	cr_assert_eq(s->cl.hs, 0, "%s", s->cl.err);
	cr_assert_eq(write_all(s->cl.c, 1, 1, s->cl.err), 0, "%s", s->cl.err);
	cr_assert_eq(read_all(s->cl.c, 1, 2, s->cl.err), 0, "%s", s->cl.err);
	pthread_join(s->t, NULL);
	cr_assert_eq(s->sv.hs, 0, "%s", s->sv.err);
	cr_assert_eq(s->sv.io, 0, "%s", s->sv.err);
}

/* The client's first read after the handshake: the server's verdict. */
static int client_read_verdict(struct session *s)
{
	uint8_t b;
	ssize_t n;

	while ((n = tls_conn_read(s->cl.c, &b, 1, s->cl.err,
				  sizeof(s->cl.err))) == -EAGAIN)
		wait_for(s->cl.c);
	return (int)n;
}

#define assert_has(s, word)                                                    \
	cr_assert(strstr(s, word), "'%s' lacks '%s'", s, word)

/* ---- successful sessions ----------------------------------------------- */

Test(tls, mutual_handshake_and_data_both_ways)
{
	struct tls_ctx *cl = ctx_of("src", TLS_CLIENT, NULL);
	struct tls_ctx *sv = ctx_of("dst", TLS_SERVER, NULL);
	size_t len = 6U << 20;
	struct session s;
	bool ks, kr;
	uint8_t buf[1];
	ssize_t n;

	session_start(&s, cl, sv, "localhost", len);
	cr_assert_eq(s.cl.hs, 0, "%s", s.cl.err);
	cr_assert_eq(write_all(s.cl.c, len, 1, s.cl.err), 0, "%s", s.cl.err);
	cr_assert_eq(read_all(s.cl.c, len, 2, s.cl.err), 0, "%s", s.cl.err);
	pthread_join(s.t, NULL);
	cr_assert_eq(s.sv.hs, 0, "%s", s.sv.err);
	cr_assert_eq(s.sv.io, 0, "%s", s.sv.err);
	assert_has(tls_conn_peer(s.sv.c), "CN=src1");
	assert_has(tls_conn_peer(s.cl.c), "CN=localhost");
	assert_has(tls_conn_peer(s.cl.c), "IP:127.0.0.1");
	assert_has(tls_conn_cipher(s.cl.c), "GCM");
	assert_has(tls_conn_cipher(s.sv.c), "GCM");
	cr_assert(tls_binding_equal(s.cl.binding, s.sv.binding));
	/* This kernel has no CONFIG_TLS: only that the question works. */
	tls_conn_ktls(s.cl.c, &ks, &kr);
	cr_log_info("kTLS send %s, recv %s", ks ? "on" : "off",
		    kr ? "on" : "off");
	/* close_notify: the server reads the end of the session. */
	cr_assert_eq(tls_conn_shutdown(s.cl.c), 0);
	while ((n = tls_conn_read(s.sv.c, buf, 1, s.sv.err, ERRLEN)) == -EAGAIN)
		wait_for(s.sv.c);
	cr_assert_eq(n, 0, "%s", s.sv.err);
	session_end_joined(&s);
	tls_ctx_free(cl);
	tls_ctx_free(sv);
}

Test(tls, ip_literal_host_is_checked_against_ip_sans)
{
	struct tls_ctx *cl = ctx_of("src", TLS_CLIENT, NULL);
	struct tls_ctx *sv = ctx_of("dst", TLS_SERVER, NULL);
	struct session s;

	session_start(&s, cl, sv, "127.0.0.1", 1000);
	cr_assert_eq(s.cl.hs, 0, "%s", s.cl.err);
	cr_assert_eq(write_all(s.cl.c, 1000, 1, s.cl.err), 0);
	cr_assert_eq(read_all(s.cl.c, 1000, 2, s.cl.err), 0);
	session_end(&s);
	cr_assert_eq(s.sv.io, 0, "%s", s.sv.err);
	tls_ctx_free(cl);
	tls_ctx_free(sv);
}

Test(tls, bindings_differ_across_sessions_and_proofs_tie_them)
{
	struct tls_ctx *cl = ctx_of("src", TLS_CLIENT, NULL);
	struct tls_ctx *sv = ctx_of("dst", TLS_SERVER, NULL);
	uint8_t pc[TLS_BINDING_LEN], ps[TLS_BINDING_LEN],
		other[TLS_BINDING_LEN];
	uint8_t first[TLS_BINDING_LEN];
	struct session a, b;

	session_start(&a, cl, sv, "localhost", 1);
	session_exchange(&a);
	memcpy(first, a.cl.binding, sizeof(first));
	session_start(&b, cl, sv, "localhost", 1);
	session_exchange(&b);
	cr_assert(tls_binding_equal(a.cl.binding, a.sv.binding));
	cr_assert(tls_binding_equal(b.cl.binding, b.sv.binding));
	cr_assert(!tls_binding_equal(first, b.cl.binding));
	/* The urgent connection's proof: the first session's binding,
	 * bound to the second session. */
	cr_assert_eq(tls_conn_proof(b.cl.c, first, "vmm urgent", pc), 0);
	cr_assert_eq(tls_conn_proof(b.sv.c, a.sv.binding, "vmm urgent", ps), 0);
	cr_assert(tls_binding_equal(pc, ps));
	cr_assert_eq(tls_conn_proof(a.sv.c, a.sv.binding, "vmm urgent", other),
		     0);
	cr_assert(!tls_binding_equal(pc, other));
	memcpy(other, pc, sizeof(other));
	other[TLS_BINDING_LEN - 1] ^= 1;
	cr_assert(!tls_binding_equal(pc, other));
	session_end_joined(&a);
	session_end_joined(&b);
	tls_ctx_free(cl);
	tls_ctx_free(sv);
}

Test(tls, authz_admits_a_listed_cn_or_san)
{
	struct tls_ctx *cl = ctx_of("src", TLS_CLIENT, NULL);
	const char *lists[] = {"other,src1", "127.0.0.1", "LOCALHOST"};

	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		struct tls_ctx *sv = ctx_of("dst", TLS_SERVER, lists[i]);
		struct session s;

		session_start(&s, cl, sv, "localhost", 10);
		cr_assert_eq(s.cl.hs, 0, "%s", s.cl.err);
		cr_assert_eq(write_all(s.cl.c, 10, 1, s.cl.err), 0);
		cr_assert_eq(read_all(s.cl.c, 10, 2, s.cl.err), 0, "%s: %s",
			     lists[i], s.cl.err);
		session_end(&s);
		cr_assert_eq(s.sv.hs, 0, "%s: %s", lists[i], s.sv.err);
		tls_ctx_free(sv);
	}
	tls_ctx_free(cl);
}

/*
 * The destination's side as migration/channel.c would drive it: libuv
 * accepts on a uv_tcp_t (never reading or writing through it), then a
 * uv_poll_t on the same socket follows the want flags.
 */
struct uv_server {
	uv_tcp_t listener, tcp;
	uv_poll_t poll;
	struct tls_ctx *ctx;
	struct tls_conn *c;
	int state; /* 0 handshake, 1 read, 2 write back, 3 done */
	size_t len, got, sent;
	int r;
	char err[ERRLEN];
};

/* One step of the server: 0, or -EAGAIN (wait for the want flags). */
static int uv_server_step(struct uv_server *u)
{
	static uint8_t buf[1 << 16];
	size_t n =
		u->len - u->sent < sizeof(buf) ? u->len - u->sent : sizeof(buf);
	ssize_t k;

	if (u->state == 0) {
		k = tls_conn_handshake(u->c, u->err, ERRLEN);
		u->state += !k;
		return (int)k;
	}
	if (u->state == 1) {
		k = tls_conn_read(u->c, buf, sizeof(buf), u->err, ERRLEN);
		if (k <= 0)
			return k ? (int)k : -ECONNRESET;
		for (ssize_t i = 0; i < k; i++)
			if (buf[i] != pattern(u->got + i, 1))
				return -EBADMSG;
		u->got += (size_t)k;
		u->state += u->got == u->len;
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		buf[i] = pattern(u->sent + i, 2);
	k = tls_conn_write(u->c, buf, n, u->err, ERRLEN);
	if (k < 0)
		return (int)k;
	u->sent += (size_t)k;
	u->state += u->sent == u->len;
	return 0;
}

static void uv_server_on_poll(uv_poll_t *p, int status, int events)
{
	struct uv_server *u = p->data;
	int r = status;

	(void)events;
	while (!r && u->state < 3)
		r = uv_server_step(u);
	if (r == -EAGAIN) {
		uv_poll_start(p,
			      (u->c->want_read ? UV_READABLE : 0) |
				      (u->c->want_write ? UV_WRITABLE : 0),
			      uv_server_on_poll);
		return;
	}
	u->r = r;
	uv_close((uv_handle_t *)p, NULL); /* before the socket's handle */
	uv_close((uv_handle_t *)&u->tcp, NULL);
}

static void uv_server_on_accept(uv_stream_t *l, int status)
{
	struct uv_server *u = l->data;
	uv_os_fd_t fd;

	cr_assert_eq(status, 0);
	cr_assert_eq(uv_tcp_init(l->loop, &u->tcp), 0);
	cr_assert_eq(uv_accept(l, (uv_stream_t *)&u->tcp), 0);
	cr_assert_eq(uv_fileno((uv_handle_t *)&u->tcp, &fd), 0);
	cr_assert_eq(tls_conn_new(&u->c, u->ctx, fd, NULL, u->err, ERRLEN), 0);
	cr_assert_eq(uv_poll_init_socket(l->loop, &u->poll, fd), 0);
	u->poll.data = u;
	uv_poll_start(&u->poll, UV_READABLE, uv_server_on_poll);
	uv_close((uv_handle_t *)l, NULL);
}

struct uv_client {
	struct end e;
	int port;
	size_t len;
};

static void *uv_client_main(void *arg)
{
	struct uv_client *k = arg;
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(k->port)};

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	k->e.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect(k->e.fd, (struct sockaddr *)&a, sizeof(a)), 0);
	nonblock(k->e.fd);
	end_open(&k->e);
	if (!k->e.hs)
		k->e.io = write_all(k->e.c, k->len, 1, k->e.err);
	if (!k->e.hs && !k->e.io)
		k->e.io = read_all(k->e.c, k->len, 2, k->e.err);
	return NULL;
}

Test(tls, libuv_poll_drives_a_server_on_an_accepted_uv_tcp)
{
	struct uv_server u = {.ctx = ctx_of("dst", TLS_SERVER, NULL),
			      .len = 3U << 20};
	struct uv_client k = {.len = u.len};
	struct sockaddr_in a = {.sin_family = AF_INET};
	int alen = sizeof(a);
	uv_loop_t loop;
	pthread_t t;

	k.e = (struct end){.ctx = ctx_of("src", TLS_CLIENT, NULL),
			   .host = "localhost"};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(uv_loop_init(&loop), 0);
	cr_assert_eq(uv_tcp_init(&loop, &u.listener), 0);
	u.listener.data = &u;
	cr_assert_eq(uv_tcp_bind(&u.listener, (struct sockaddr *)&a, 0), 0);
	cr_assert_eq(
		uv_listen((uv_stream_t *)&u.listener, 1, uv_server_on_accept),
		0);
	cr_assert_eq(
		uv_tcp_getsockname(&u.listener, (struct sockaddr *)&a, &alen),
		0);
	k.port = ntohs(a.sin_port);
	cr_assert_eq(pthread_create(&t, NULL, uv_client_main, &k), 0);
	cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	pthread_join(t, NULL);
	cr_assert_eq(u.r, 0, "%s", u.err);
	cr_assert_eq(k.e.hs, 0, "%s", k.e.err);
	cr_assert_eq(k.e.io, 0, "%s", k.e.err);
	assert_has(tls_conn_peer(u.c), "CN=src1");
	cr_assert_eq(uv_loop_close(&loop), 0);
	tls_conn_free(u.c);
	tls_conn_free(k.e.c);
	close(k.e.fd);
	tls_ctx_free(u.ctx);
	tls_ctx_free(k.e.ctx);
}

/* ---- refusals, each on the side that detects it ------------------------ */

/* A session that fails: the client's handshake and the server's end. */
static void refused(const char *cl_dir, const char *sv_dir, const char *host,
		    const char *authz, struct session *s)
{
	struct tls_ctx *cl = ctx_of(cl_dir, TLS_CLIENT, NULL);
	struct tls_ctx *sv = ctx_of(sv_dir, TLS_SERVER, authz);

	session_start(s, cl, sv, host, 0);
	if (!s->cl.hs) /* TLS 1.3: the server's refusal comes after */
		s->cl.hs = client_read_verdict(s);
	session_end(s);
	cr_log_info("client: %s", s->cl.err);
	cr_log_info("server: %s", s->sv.err);
	tls_ctx_free(cl);
	tls_ctx_free(sv);
}

/* A refused session: each end's result and the words its line holds. */
struct refusal {
	const char *cl_dir, *sv_dir, *host, *authz;
	int cl_r, sv_r;
	const char *cl_words[3], *sv_words[3];
};

#define BAD   (-EKEYREJECTED)
#define NAMES "names CN=localhost (DNS:localhost, IP:127.0.0.1), not "

static const struct refusal refusals[] = {
	/* The server's certificate is of another CA: the client says. */
	{"src",
	 "other",
	 "localhost",
	 NULL,
	 BAD,
	 BAD,
	 {"peer certificate CN=localhost", "is not signed by the CA in",
	  "src/ca.pem"},
	 {"peer refused the TLS session", "unknown CA"}},
	/* The client's is: the server says, the client hears it after. */
	{"mixed",
	 "dst",
	 "localhost",
	 NULL,
	 BAD,
	 BAD,
	 {"peer refused the TLS session", "does not accept our certificate"},
	 {"peer certificate CN=localhost", "is not signed by the CA in",
	  "dst/ca.pem"}},
	{"src",
	 "expired",
	 "localhost",
	 NULL,
	 BAD,
	 BAD,
	 {"peer certificate CN=localhost", "expired on 20"},
	 {"certificate expired"}},
	{"expired",
	 "dst",
	 "localhost",
	 NULL,
	 BAD,
	 BAD,
	 {"certificate expired"},
	 {"peer certificate CN=localhost", "expired on 20"}},
	{"src",
	 "future",
	 "localhost",
	 NULL,
	 BAD,
	 BAD,
	 {"is not valid before 20", "check both clocks"},
	 {"bad certificate"}},
	{"src",
	 "dst",
	 "dst.example",
	 NULL,
	 BAD,
	 BAD,
	 {NAMES "dst.example"},
	 {"bad certificate"}},
	{"src",
	 "dst",
	 "10.1.2.3",
	 NULL,
	 BAD,
	 BAD,
	 {NAMES "10.1.2.3"},
	 {"bad certificate"}},
	{"src",
	 "dst",
	 "::1",
	 NULL,
	 BAD,
	 BAD,
	 {NAMES "::1"},
	 {"bad certificate"}},
	{"src",
	 "dst",
	 "localhost",
	 "alpha,beta",
	 BAD,
	 -EACCES,
	 {"peer refused the TLS session"},
	 {"client CN=src1 (DNS:localhost, IP:127.0.0.1)",
	  "is not in --tls-authz (alpha,beta)"}},
};

static void assert_words(const char *err, const char *const words[3])
{
	for (int i = 0; i < 3 && words[i]; i++)
		assert_has(err, words[i]);
}

Test(tls, each_refusal_is_one_line_on_each_side)
{
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		const struct refusal *f = &refusals[i];
		struct session s;

		refused(f->cl_dir, f->sv_dir, f->host, f->authz, &s);
		cr_assert_eq(s.cl.hs, f->cl_r, "%zu: %s", i, s.cl.err);
		cr_assert_eq(s.sv.hs, f->sv_r, "%zu: %s", i, s.sv.err);
		assert_words(s.cl.err, f->cl_words);
		assert_words(s.sv.err, f->sv_words);
	}
}

/* A plaintext source (a proto/ frame's first bytes) to a TLS listener. */
Test(tls, plaintext_client_to_tls_server)
{
	static const uint8_t frame[] = {'M', 'G', 'I', 'M', 1, 0, 0, 0,
					16,  0,	  0,   0,   0, 0, 0, 0};
	struct tls_ctx *sv = ctx_of("dst", TLS_SERVER, NULL);
	struct pollfd p;
	uint8_t back[16];
	struct end e;
	int fds[2];
	pthread_t t;
	ssize_t n;

	tcp_pair(fds);
	e = (struct end){.ctx = sv, .fd = fds[1]};
	cr_assert_eq(pthread_create(&t, NULL, server_main, &e), 0);
	cr_assert_eq(send(fds[0], frame, sizeof(frame), 0),
		     (ssize_t)sizeof(frame));
	p = (struct pollfd){.fd = fds[0], .events = POLLIN};
	cr_assert_eq(poll(&p, 1, 10000), 1);
	n = recv(fds[0], back, sizeof(back), 0);
	pthread_join(t, NULL);
	cr_assert_eq(e.hs, -EPROTO, "%s", e.err);
	assert_has(e.err, "peer is not speaking TLS (plaintext?)");
	/* What the plaintext end can say: a TLS server answered. */
	cr_assert(n >= 3 && tls_looks_like_record(back, (size_t)n));
	cr_assert(!tls_looks_like_record(frame, sizeof(frame)));
	tls_conn_free(e.c);
	close(fds[0]);
	close(fds[1]);
	tls_ctx_free(sv);
}

/* A plaintext listener reads a ClientHello, answers in plaintext or not. */
static void tls_client_to_plaintext(bool answer, struct end *cl)
{
	struct tls_ctx *ctx = ctx_of("src", TLS_CLIENT, NULL);
	uint8_t hello[2048];
	struct pollfd p;
	int fds[2], r;
	ssize_t n;

	tcp_pair(fds);
	*cl = (struct end){.ctx = ctx, .fd = fds[0], .host = "localhost"};
	cr_assert_eq(tls_conn_new(&cl->c, ctx, fds[0], "localhost", cl->err,
				  sizeof(cl->err)),
		     0);
	cr_assert_eq(tls_conn_handshake(cl->c, cl->err, ERRLEN), -EAGAIN);
	p = (struct pollfd){.fd = fds[1], .events = POLLIN};
	cr_assert_eq(poll(&p, 1, 10000), 1);
	n = recv(fds[1], hello, sizeof(hello), 0);
	cr_assert(n > 0 && tls_looks_like_client_hello(hello, (size_t)n));
	if (answer)
		cr_assert_eq(send(fds[1], "MGIM\1\0\0\0", 8, 0), 8);
	close(fds[1]);
	r = handshake(cl->c, cl->err);
	cl->hs = r;
	tls_conn_free(cl->c);
	close(fds[0]);
	tls_ctx_free(ctx);
}

Test(tls, tls_client_to_plaintext_server)
{
	struct end cl;

	tls_client_to_plaintext(true, &cl);
	cr_assert_eq(cl.hs, -EPROTO, "%s", cl.err);
	assert_has(cl.err, "peer is not speaking TLS (plaintext?)");
	tls_client_to_plaintext(false, &cl);
	cr_assert_eq(cl.hs, -ECONNRESET, "%s", cl.err);
	assert_has(cl.err, "closed the connection during the TLS handshake");
}

Test(tls, client_hello_recognised)
{
	static const uint8_t ch[] = {0x16, 0x03, 0x01, 0x01, 0x20, 0x01};
	static const uint8_t sh[] = {0x16, 0x03, 0x03, 0x00, 0x7a, 0x02};
	static const uint8_t al[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02};

	cr_assert(tls_looks_like_client_hello(ch, sizeof(ch)));
	cr_assert(tls_looks_like_client_hello(ch, 3));
	cr_assert(!tls_looks_like_client_hello(ch, 2));
	cr_assert(!tls_looks_like_client_hello(sh, sizeof(sh)));
	cr_assert(!tls_looks_like_client_hello(al, sizeof(al)));
	cr_assert(!tls_looks_like_client_hello((const uint8_t *)"GET / ", 6));
	cr_assert(!tls_looks_like_client_hello((const uint8_t *)"MGIM\1\0", 6));
	cr_assert(tls_looks_like_record(sh, sizeof(sh)));
	cr_assert(tls_looks_like_record(al, sizeof(al)));
	cr_assert(!tls_looks_like_record((const uint8_t *)"\x16\x04\x00", 3));
}

/* ---- loading a --tls-dir ----------------------------------------------- */

/* A copy of dst in dir, then cmd run inside it; the load's error. */
static int load_broken(const char *dir, const char *cmd, const char *authz,
		       char *err)
{
	char c[2048], p[512];
	struct tls_ctx *ctx = NULL;
	int r;

	path(p, sizeof(p), dir, NULL);
	snprintf(c, sizeof(c), "mkdir %s && cp %s/dst/*.pem %s && cd %s && %s",
		 p, certs, p, p, cmd);
	run(c);
	r = tls_ctx_new(&ctx, p, TLS_SERVER, authz, err, ERRLEN);
	cr_assert_eq(!!ctx, !r);
	cr_log_info("%s", err);
	tls_ctx_free(ctx);
	return r;
}

Test(tls, dir_errors_name_the_file_and_cause)
{
	char err[ERRLEN];

	cr_assert_eq(load_broken("nocert", "rm cert.pem", NULL, err), -ENOENT);
	assert_has(err, "nocert/cert.pem: missing");
	cr_assert_lt(load_broken("dircert", "rm cert.pem && mkdir cert.pem",
				 NULL, err),
		     0);
	assert_has(err, "dircert/cert.pem: unreadable");
	cr_assert_lt(load_broken("junkcert", "echo junk > cert.pem", NULL, err),
		     0);
	assert_has(err, "junkcert/cert.pem: not a PEM certificate");
	cr_assert_lt(load_broken("keycert", "cp key.pem cert.pem", NULL, err),
		     0);
	assert_has(err, "keycert/cert.pem: not a PEM certificate");
	cr_assert_lt(load_broken("junkkey", "echo junk > key.pem", NULL, err),
		     0);
	assert_has(err, "junkkey/key.pem: not a PEM private key");
	cr_assert_lt(load_broken("otherkey", "cp ../other/key.pem key.pem",
				 NULL, err),
		     0);
	assert_has(err, "otherkey/key.pem: the key does not match the "
			"certificate in");
	assert_has(err, "otherkey/cert.pem");
	cr_assert_eq(load_broken("noca", "rm ca.pem", NULL, err), -ENOENT);
	assert_has(err, "noca/ca.pem: missing");
	cr_assert_lt(load_broken("junkca", "echo junk > ca.pem", NULL, err), 0);
	assert_has(err, "junkca/ca.pem: no PEM CA certificate");
	cr_assert_lt(load_broken("emptyca", ": > ca.pem", NULL, err), 0);
	assert_has(err, "emptyca/ca.pem: empty");
	cr_assert_lt(load_broken("authz", "true", "a,,b", err), 0);
	assert_has(err, "'a,,b': an empty name");
}

/* ---- throughput (logged; the bytes are checked) ------------------------ */

struct plain {
	int fd;
	size_t len;
	int r;
};

static void *plain_reader(void *arg)
{
	struct plain *p = arg;
	static uint8_t buf[1 << 16];
	size_t got = 0;

	while (got < p->len) {
		struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
		ssize_t n = recv(p->fd, buf, sizeof(buf), 0);

		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0 || errno != EAGAIN) {
			p->r = -EIO;
			break;
		}
		poll(&pfd, 1, 10000);
	}
	return NULL;
}

static double plain_mbps(size_t len)
{
	static uint8_t buf[1 << 16];
	struct plain p;
	int fds[2];
	pthread_t t;
	uint64_t t0;
	size_t off = 0;

	tcp_pair(fds);
	p = (struct plain){.fd = fds[1], .len = len};
	cr_assert_eq(pthread_create(&t, NULL, plain_reader, &p), 0);
	t0 = clock_now_ns();
	while (off < len) {
		size_t n = len - off < sizeof(buf) ? len - off : sizeof(buf);
		ssize_t w = send(fds[0], buf, n, MSG_NOSIGNAL);
		struct pollfd pfd = {.fd = fds[0], .events = POLLOUT};

		if (w > 0)
			off += (size_t)w;
		else
			poll(&pfd, 1, 10000);
	}
	pthread_join(t, NULL);
	cr_assert_eq(p.r, 0);
	close(fds[0]);
	close(fds[1]);
	return len / 1e6 / ((clock_now_ns() - t0) / 1e9);
}

Test(tls, throughput_against_plain_tcp)
{
	const char *mb = getenv("TLS_BENCH_MB");
	size_t len = (size_t)(mb ? atoi(mb) : 16) << 20;
	struct tls_ctx *cl = ctx_of("src", TLS_CLIENT, NULL);
	struct tls_ctx *sv = ctx_of("dst", TLS_SERVER, NULL);
	char cipher[64];
	struct session s;
	uint64_t t0;
	double tls;

	memset(&s, 0, sizeof(s));
	tcp_pair(s.fds);
	s.cl = (struct end){.ctx = cl, .fd = s.fds[0], .host = "localhost"};
	s.sv = (struct end){
		.ctx = sv, .fd = s.fds[1], .bytes = len, .sink = true};
	cr_assert_eq(pthread_create(&s.t, NULL, server_main, &s.sv), 0);
	end_open(&s.cl);
	cr_assert_eq(s.cl.hs, 0, "%s", s.cl.err);
	snprintf(cipher, sizeof(cipher), "%s", tls_conn_cipher(s.cl.c));
	t0 = clock_now_ns();
	cr_assert_eq(write_all(s.cl.c, len, NO_CHECK, s.cl.err), 0, "%s",
		     s.cl.err);
	pthread_join(s.t, NULL);
	tls = len / 1e6 / ((clock_now_ns() - t0) / 1e9);
	cr_assert_eq(s.sv.io, 0, "%s", s.sv.err);
	tls_conn_free(s.cl.c);
	tls_conn_free(s.sv.c);
	close(s.fds[0]);
	close(s.fds[1]);
	cr_log_info("%zu MiB one way over %s: TLS %.0f MB/s, plain TCP "
		    "%.0f MB/s",
		    len >> 20, cipher, tls, plain_mbps(len));
	tls_ctx_free(cl);
	tls_ctx_free(sv);
}
