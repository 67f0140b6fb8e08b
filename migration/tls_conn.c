/* SPDX-License-Identifier: MIT */
/*
 * tls_conn.c - one TLS 1.3 session over a non-blocking socket: the
 * handshake, reads and writes that never block, the failure lines, kTLS
 * state and channel bindings (see tls.h). Every call runs on the thread
 * that owns the connection.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/x509v3.h>

#include "common/err.h"
#include "migration/tls.h"
#include "migration/tls_verify.h"

#define TLS_REC_HANDSHAKE 0x16
#define TLS_REC_ALERT	  0x15

/* The peer's fatal alerts, for tls_conn_fail(). */
static void tls_info_cb(const SSL *ssl, int where, int ret)
{
	struct tls_conn *c = SSL_get_app_data(ssl);

	if (c && (where & SSL_CB_READ_ALERT) == SSL_CB_READ_ALERT &&
	    (ret >> 8) == SSL3_AL_FATAL)
		c->alert = ret & 0xff;
}

static bool tls_is_ip(const char *host)
{
	unsigned char b[16];

	return inet_pton(AF_INET, host, b) == 1 ||
	       inet_pton(AF_INET6, host, b) == 1;
}

/* Client: the name the server's certificate must carry, and SNI. */
static int tls_conn_set_host(struct tls_conn *c, const char *host)
{
	X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);

	snprintf(c->host, sizeof(c->host), "%s", host);
	if (tls_is_ip(host))
		return X509_VERIFY_PARAM_set1_ip_asc(vp, host) == 1 ? 0
								    : -EINVAL;
	SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (SSL_set_tlsext_host_name(c->ssl, host) != 1 ||
	    SSL_set1_host(c->ssl, host) != 1)
		return -EINVAL;
	return 0;
}

int tls_conn_new(struct tls_conn **out, struct tls_ctx *ctx, int fd,
		 const char *host, char *err, size_t errlen)
{
	struct tls_conn *c;
	bool client = ctx->role == TLS_CLIENT;

	*out = NULL;
	if (client && (!host || !*host || strlen(host) >= sizeof(c->host))) {
		err_set(err, errlen,
			"TLS client: no valid host name to check "
			"the server's certificate against");
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->ssl = SSL_new(ctx->ssl))) {
		free(c);
		err_set(err, errlen, "TLS session: out of memory");
		return -ENOMEM;
	}
	c->ctx = ctx;
	c->fd = fd;
	c->alert = -1;
	SSL_set_app_data(c->ssl, c);
	SSL_set_info_callback(c->ssl, tls_info_cb);
	SSL_set_verify(c->ssl,
		       client ? SSL_VERIFY_PEER
			      : SSL_VERIFY_PEER |
					SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
		       tls_verify_cb);
	if (SSL_set_fd(c->ssl, fd) != 1 ||
	    (client && tls_conn_set_host(c, host))) {
		err_set(err, errlen, "TLS session on '%s': cannot set it up",
			host ? host : "server");
		tls_conn_free(c);
		ERR_clear_error();
		return -EINVAL;
	}
	if (client)
		SSL_set_connect_state(c->ssl);
	else
		SSL_set_accept_state(c->ssl);
	*out = c;
	return 0;
}

/*
 * Before OpenSSL has read a byte: a TLS peer's first record is a handshake
 * (or, refusing us, an alert). Anything else is a peer that does not speak
 * TLS; a server answers it with a fatal unexpected_message alert, in the
 * clear, which a plaintext client recognises (tls_looks_like_record). A
 * server waits here for that first byte (it has nothing to send before);
 * EOF and socket errors are left to OpenSSL to report.
 */
static int tls_conn_sniff(struct tls_conn *c, char *err, size_t errlen)
{
	static const uint8_t alert[] = {TLS_REC_ALERT, 3, 3, 0, 2, 2, 10};
	bool server = c->ctx->role == TLS_SERVER;
	uint8_t b;
	ssize_t n;

	if (c->sniffed || BIO_number_read(SSL_get_rbio(c->ssl))) {
		c->sniffed = true;
		return 0;
	}
	n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && server && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		c->want_read = true;
		return -EAGAIN;
	}
	if (n != 1)
		return 0;
	c->sniffed = true;
	if (b == TLS_REC_HANDSHAKE || b == TLS_REC_ALERT)
		return 0;
	if (server) /* best effort: the connection is dropped next */
		(void)send(c->fd, alert, sizeof(alert),
			   MSG_NOSIGNAL | MSG_DONTWAIT);
	err_set(err, errlen,
		"peer is not speaking TLS (plaintext?): its first byte is "
		"0x%02x, not a TLS record; give both ends --tls-dir",
		b);
	return -EPROTO;
}

/* OpenSSL's reasons for a record that is not TLS at all. */
static bool tls_reason_not_tls(unsigned long e)
{
	int r = ERR_GET_REASON(e);

	return ERR_GET_LIB(e) == ERR_LIB_SSL &&
	       (r == SSL_R_WRONG_VERSION_NUMBER || r == SSL_R_HTTP_REQUEST ||
		r == SSL_R_HTTPS_PROXY_REQUEST ||
		r == SSL_R_PACKET_LENGTH_TOO_LONG ||
		r == SSL_R_RECORD_LENGTH_MISMATCH);
}

/* Alerts a peer sends when it refuses our certificate or identity. */
static bool tls_alert_refuses_us(int a)
{
	return a == SSL_AD_BAD_CERTIFICATE ||
	       a == SSL_AD_UNSUPPORTED_CERTIFICATE ||
	       a == SSL_AD_CERTIFICATE_REVOKED ||
	       a == SSL_AD_CERTIFICATE_EXPIRED ||
	       a == SSL_AD_CERTIFICATE_UNKNOWN || a == SSL_AD_UNKNOWN_CA ||
	       a == SSL_AD_ACCESS_DENIED || a == SSL_AD_HANDSHAKE_FAILURE ||
	       a == SSL_AD_CERTIFICATE_REQUIRED;
}

/* The peer closed the TCP connection without a TLS close_notify. */
static int tls_conn_eof(struct tls_conn *c, char *err, size_t errlen)
{
	err_set(err, errlen,
		c->established ? "connection closed by peer without TLS "
				 "close_notify"
			       : "peer closed the connection during the TLS "
				 "handshake (is it a plaintext peer, not "
				 "speaking TLS?)");
	return -ECONNRESET;
}

/* SSL_ERROR_SSL: the certificate verdict, the peer's alert, or why. */
static int tls_conn_fail_ssl(struct tls_conn *c, const char *what, char *err,
			     size_t errlen)
{
	unsigned long e = ERR_peek_error();
	const char *reason = e ? ERR_reason_error_string(e) : NULL;

	if (c->verify_err[0]) {
		err_set(err, errlen, "%s", c->verify_err);
		return c->denied ? -EACCES : -EKEYREJECTED;
	}
	if (c->alert >= 0) {
		bool us = tls_alert_refuses_us(c->alert);

		err_set(err, errlen,
			"peer refused the TLS session: alert '%s'%s",
			SSL_alert_desc_string_long(c->alert),
			us ? " (it does not accept our certificate or "
			     "identity; "
			     "its log says why)"
			   : "");
		return us ? -EKEYREJECTED : -EPROTO;
	}
	if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
	    ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
		return tls_conn_eof(c, err, errlen);
	if (!c->established && tls_reason_not_tls(e)) {
		err_set(err, errlen,
			"peer is not speaking TLS (plaintext?): %s; give both "
			"ends --tls-dir",
			reason ? reason : "not a TLS record");
		return -EPROTO;
	}
	err_set(err, errlen, "%s failed: %s", what,
		reason ? reason : "unknown OpenSSL error");
	return -EPROTO;
}

/* A failed SSL_* call: -EAGAIN with the want flags, or -errno and why. */
static int tls_conn_fail(struct tls_conn *c, int ret, const char *what,
			 char *err, size_t errlen)
{
	int e = errno; /* before anything else may change it */
	int se = SSL_get_error(c->ssl, ret);
	int r;

	switch (se) {
	case SSL_ERROR_WANT_READ:
		c->want_read = true;
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		c->want_write = true;
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		err_set(err, errlen, "peer closed the TLS session during %s",
			what);
		return -ECONNRESET;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() || !e) {
			ERR_clear_error();
			return tls_conn_eof(c, err, errlen);
		}
		err_set(err, errlen, "%s: %s", what, strerror(e));
		return -e;
	case SSL_ERROR_SSL:
		r = tls_conn_fail_ssl(c, what, err, errlen);
		ERR_clear_error();
		return r;
	default:
		err_set(err, errlen, "%s: unexpected OpenSSL state %d", what,
			se);
		ERR_clear_error();
		return -EIO;
	}
}

int tls_conn_handshake(struct tls_conn *c, char *err, size_t errlen)
{
	X509 *peer;
	int r;

	c->want_read = c->want_write = false;
	if (c->established)
		return 0;
	r = tls_conn_sniff(c, err, errlen);
	if (r)
		return r;
	ERR_clear_error();
	errno = 0;
	r = SSL_do_handshake(c->ssl);
	if (r != 1)
		return tls_conn_fail(c, r, "TLS handshake", err, errlen);
	c->established = true;
	c->sniffed = true;
	peer = SSL_get0_peer_certificate(c->ssl);
	tls_cert_describe(peer, c->peer_id, sizeof(c->peer_id));
	return 0;
}

ssize_t tls_conn_read(struct tls_conn *c, void *buf, size_t len, char *err,
		      size_t errlen)
{
	size_t n = 0;
	int r;

	c->want_read = c->want_write = false;
	ERR_clear_error();
	errno = 0;
	r = SSL_read_ex(c->ssl, buf, len, &n);
	if (r == 1)
		return (ssize_t)n;
	if (SSL_get_error(c->ssl, r) == SSL_ERROR_ZERO_RETURN)
		return 0;
	return tls_conn_fail(c, r, "TLS read", err, errlen);
}

ssize_t tls_conn_write(struct tls_conn *c, const void *buf, size_t len,
		       char *err, size_t errlen)
{
	size_t n = 0;
	int r;

	c->want_read = c->want_write = false;
	if (!len)
		return 0;
	ERR_clear_error();
	errno = 0;
	r = SSL_write_ex(c->ssl, buf, len, &n);
	if (r == 1)
		return (ssize_t)n;
	return tls_conn_fail(c, r, "TLS write", err, errlen);
}

bool tls_conn_pending(const struct tls_conn *c)
{
	return SSL_has_pending(c->ssl) == 1;
}

int tls_conn_shutdown(struct tls_conn *c)
{
	int r;

	c->want_read = c->want_write = false;
	if (!c->established || SSL_in_init(c->ssl))
		return 0;
	ERR_clear_error();
	r = SSL_shutdown(c->ssl);
	if (r >= 0)
		return 0;
	r = SSL_get_error(c->ssl, r);
	ERR_clear_error();
	if (r == SSL_ERROR_WANT_WRITE || r == SSL_ERROR_WANT_READ) {
		c->want_write = r == SSL_ERROR_WANT_WRITE;
		c->want_read = r == SSL_ERROR_WANT_READ;
		return -EAGAIN;
	}
	return -EPIPE;
}

void tls_conn_free(struct tls_conn *c)
{
	if (!c)
		return;
	SSL_free(c->ssl); /* SSL_set_fd's BIO does not close the fd */
	free(c);
}

void tls_conn_ktls(const struct tls_conn *c, bool *send_on, bool *recv_on)
{
	*send_on = BIO_get_ktls_send(SSL_get_wbio(c->ssl)) ? true : false;
	*recv_on = BIO_get_ktls_recv(SSL_get_rbio(c->ssl)) ? true : false;
}

const char *tls_conn_cipher(const struct tls_conn *c)
{
	const char *s = c->established ? SSL_get_cipher_name(c->ssl) : NULL;

	return s ? s : "";
}

const char *tls_conn_peer(const struct tls_conn *c)
{
	return c->peer_id;
}

int tls_conn_binding(struct tls_conn *c, const char *label,
		     uint8_t out[TLS_BINDING_LEN])
{
	if (!c->established)
		return -ENOTCONN;
	if (SSL_export_keying_material(c->ssl, out, TLS_BINDING_LEN, label,
				       strlen(label), NULL, 0, 0) != 1) {
		ERR_clear_error();
		return -EIO;
	}
	return 0;
}

int tls_conn_proof(struct tls_conn *c, const uint8_t prior[TLS_BINDING_LEN],
		   const char *label, uint8_t out[TLS_BINDING_LEN])
{
	uint8_t b[TLS_BINDING_LEN];
	unsigned int len = 0;
	int r = tls_conn_binding(c, label, b);

	if (r)
		return r;
	if (!HMAC(EVP_sha256(), prior, TLS_BINDING_LEN, b, sizeof(b), out,
		  &len) ||
	    len != TLS_BINDING_LEN)
		r = -EIO;
	OPENSSL_cleanse(b, sizeof(b));
	ERR_clear_error();
	return r;
}

bool tls_binding_equal(const uint8_t a[TLS_BINDING_LEN],
		       const uint8_t b[TLS_BINDING_LEN])
{
	return CRYPTO_memcmp(a, b, TLS_BINDING_LEN) == 0;
}

/* A record header: type, then version 3.0-3.4 (TLS 1.3 says 3.1 or 3.3). */
static bool tls_record_start(const uint8_t *p, size_t n, uint8_t type)
{
	return n >= 3 && p[0] == type && p[1] == 3 && p[2] <= 4;
}

bool tls_looks_like_client_hello(const uint8_t *p, size_t n)
{
	if (!tls_record_start(p, n, TLS_REC_HANDSHAKE))
		return false;
	if (n >= 5 &&
	    (((p[3] << 8) | p[4]) == 0 || ((p[3] << 8) | p[4]) > (1 << 14)))
		return false;
	return n < 6 || p[5] == 1; /* handshake type client_hello */
}

bool tls_looks_like_record(const uint8_t *p, size_t n)
{
	return tls_record_start(p, n, TLS_REC_HANDSHAKE) ||
	       tls_record_start(p, n, TLS_REC_ALERT);
}
