/* SPDX-License-Identifier: MIT */
/*
 * tls.h - mutual TLS 1.3 over a migration connection's socket, through
 * OpenSSL.
 *
 * A struct tls_ctx holds what one end trusts and proves, loaded from a
 * --tls-dir (ca.pem, cert.pem, key.pem, as Cloud Hypervisor names them) for
 * a role: TLS_CLIENT is the migration source, TLS_SERVER the destination.
 * TLS 1.3 only, AES-GCM only, the peer's certificate always verified
 * against ca.pem; the client also checks the destination's name (DNS or IP
 * SAN), the server admits only a client certificate that chains to its CA
 * and, with an authz list (--tls-authz), whose subject CN or a SAN is one
 * of the listed identities. Kernel TLS is asked for (SSL_OP_ENABLE_KTLS):
 * OpenSSL hands the record keys to the kernel when it has CONFIG_TLS, so
 * that a send can stay zero-copy, and otherwise encrypts in user space;
 * tls_conn_ktls() says which.
 *
 * A struct tls_conn is one session over a connected non-blocking socket
 * (OpenSSL's socket BIO on the fd, which kTLS needs). Every call returns at
 * once: -EAGAIN means "call again when the socket is ready", and want_read
 * / want_write say for what - a libuv uv_poll_t or poll() drives it. Any
 * other error is a negative errno with one line in err naming the cause
 * (which certificate, which file, which name). The socket stays the
 * caller's: tls_conn_free() never closes it. Bytes written on a socket
 * whose peer has gone raise SIGPIPE: the process must ignore it (as
 * vmm/control.c does).
 *
 * Threads: a tls_ctx is read-only once made and may be shared by any
 * threads; a tls_conn belongs to one thread at a time (the event loop, or
 * the urgent thread once the connection is handed to it).
 */
#ifndef MIGRATION_TLS_H
#define MIGRATION_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#define TLS_BINDING_LEN 32 /* bytes of a channel binding (SHA-256 sized) */

enum tls_role {
	TLS_CLIENT, /* connects: the migration source */
	TLS_SERVER, /* accepts: the destination */
};

struct tls_ctx {
	SSL_CTX *ssl;
	enum tls_role role;
	char ca_path[4096]; /* for messages: "... not signed by a CA in" */
	char **authz;	    /* TLS_SERVER: identities admitted; NULL: any */
	size_t nauthz;
	char authz_text[256]; /* the list as given, for messages */
};

struct tls_conn {
	struct tls_ctx *ctx;
	SSL *ssl;
	int fd;
	bool want_read;	 /* -EAGAIN: wait until the socket is readable */
	bool want_write; /* -EAGAIN: wait until the socket is writable */
	bool established;
	bool sniffed;	      /* the peer's first byte was looked at */
	bool denied;	      /* verify_err: not in the authz list */
	int alert;	      /* last fatal alert the peer sent; -1 none */
	char host[256];	      /* TLS_CLIENT: the name checked; "" none */
	char verify_err[512]; /* why the peer's certificate was refused */
	char peer_id[512];    /* the peer certificate, once established */
};

/*
 * Load dir/ca.pem, dir/cert.pem and dir/key.pem for role. authz (server
 * only; NULL or "" admits any certificate of the CA): "NAME[,NAME...]".
 * 0 with *out set, or -errno with one line naming the cause and the file.
 */
int tls_ctx_new(struct tls_ctx **out, const char *dir, enum tls_role role,
		const char *authz, char *err, size_t errlen);
void tls_ctx_free(struct tls_ctx *ctx);

/*
 * A session on the connected non-blocking socket fd. host (client: the
 * name or IP address literal of --to or --tls-hostname) is checked against
 * the server's certificate and sent as SNI when it is a name; NULL on a
 * server. Nothing is sent yet: tls_conn_handshake() does it.
 */
int tls_conn_new(struct tls_conn **out, struct tls_ctx *ctx, int fd,
		 const char *host, char *err, size_t errlen);
/*
 * Advance the handshake: 0 done (the peer is authenticated; the peer's
 * identity is in tls_conn_peer()), -EAGAIN with want_read/want_write, or
 * -errno with err set: -EKEYREJECTED (a certificate refused: unknown CA,
 * expired or not yet valid, names another host), -EACCES (a client not in
 * --tls-authz), -EPROTO (the peer does not speak TLS), -ECONNRESET (the
 * peer closed the connection), else the socket's errno or -EIO.
 *
 * TLS 1.3 lets a client finish before the server has checked the client's
 * certificate: a server's refusal reaches the client as an alert on its
 * first tls_conn_read(), which then says so.
 */
int tls_conn_handshake(struct tls_conn *c, char *err, size_t errlen);

/*
 * Up to len bytes of plaintext: > 0, 0 when the peer closed the session
 * (close_notify), -EAGAIN (want_read/want_write), or -errno with err set.
 * Data may be left inside the session (tls_conn_pending()) where no poll()
 * sees it: read until -EAGAIN, or read again while it is pending.
 */
ssize_t tls_conn_read(struct tls_conn *c, void *buf, size_t len, char *err,
		      size_t errlen);
/*
 * Write up to len bytes: > 0 bytes taken (SSL_MODE_ENABLE_PARTIAL_WRITE:
 * a short count as send() gives, at a record boundary, so large frames do
 * not wait for the whole write), -EAGAIN (want_write/want_read), or -errno
 * with err set. After -EAGAIN the next call must offer the same bytes
 * again (at least as many); the buffer may have moved meanwhile
 * (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER), so a queue may be compacted.
 */
ssize_t tls_conn_write(struct tls_conn *c, const void *buf, size_t len,
		       char *err, size_t errlen);
/* True when decrypted or buffered bytes wait inside the session. */
bool tls_conn_pending(const struct tls_conn *c);
/*
 * Send close_notify: 0 sent, -EAGAIN (want flags), or -errno. The peer's
 * own close_notify is not waited for (the socket is closed next).
 */
int tls_conn_shutdown(struct tls_conn *c);
/* Free the session; the socket stays open (its owner closes it). */
void tls_conn_free(struct tls_conn *c);

/* Whether the kernel does the record encryption for sending / receiving. */
void tls_conn_ktls(const struct tls_conn *c, bool *send_on, bool *recv_on);
/* "TLS_AES_256_GCM_SHA384" etc. once established. */
const char *tls_conn_cipher(const struct tls_conn *c);
/* The peer's certificate: "CN=name (DNS:a, IP:b)"; "" before. */
const char *tls_conn_peer(const struct tls_conn *c);

/*
 * Channel binding: TLS_BINDING_LEN bytes from the session's exporter
 * (RFC 8446 7.5, SSL_export_keying_material) under label. Both ends of one
 * session get the same value; no one else can compute it, and another
 * session gives another value. 0 or -errno.
 */
int tls_conn_binding(struct tls_conn *c, const char *label,
		     uint8_t out[TLS_BINDING_LEN]);
/*
 * Proof that the session c belongs to the same two peers as an earlier
 * session whose binding is prior: HMAC-SHA256(prior, binding(c, label)).
 * Both ends compute it; one sends it through c, the other compares with
 * tls_binding_equal(). It means nothing outside c (so a recorded proof
 * cannot be replayed into another session). 0 or -errno.
 */
int tls_conn_proof(struct tls_conn *c, const uint8_t prior[TLS_BINDING_LEN],
		   const char *label, uint8_t out[TLS_BINDING_LEN]);
/* Constant-time comparison of two bindings or proofs. */
bool tls_binding_equal(const uint8_t a[TLS_BINDING_LEN],
		       const uint8_t b[TLS_BINDING_LEN]);

/*
 * The first bytes a plaintext listener read look like a TLS ClientHello
 * (a handshake record, 0x16 0x03 0x00-0x04, then a length, then type 1):
 * the peer speaks TLS and this end does not. Needs 3 bytes; checks up to 6.
 */
bool tls_looks_like_client_hello(const uint8_t *p, size_t n);
/*
 * The first bytes a plaintext client read back look like a TLS record
 * (handshake 0x16 or alert 0x15, then 0x03 0x00-0x04): a TLS server
 * answered - it sends a fatal alert to a peer that does not speak TLS.
 */
bool tls_looks_like_record(const uint8_t *p, size_t n);

#endif /* MIGRATION_TLS_H */
