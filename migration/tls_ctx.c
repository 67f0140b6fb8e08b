/* SPDX-License-Identifier: MIT */
/*
 * tls_ctx.c - what one end of a migration trusts and proves: the TLS 1.3
 * settings and the files of a --tls-dir, checked one by one so that a
 * failure names its file and its cause (see tls.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "common/err.h"
#include "migration/tls.h"

#define TLS_CIPHERS "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256"

/* OpenSSL's reason for the last failure, for the end of a message. */
static const char *tls_ctx_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	return r ? r : "no detail";
}

/* A regular, readable, non-empty file: else why, naming it. */
static int tls_file_check(const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int e;

	if (fd < 0) {
		e = errno;
		err_set(err, errlen, "%s: %s (%s)", path,
			e == ENOENT ? "missing" : "unreadable", strerror(e));
		return -e;
	}
	e = fstat(fd, &st) < 0 ? errno : 0;
	close(fd);
	if (e) {
		err_set(err, errlen, "%s: unreadable (%s)", path, strerror(e));
		return -e;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(err, errlen, "%s: unreadable (not a regular file)",
			path);
		return -EINVAL;
	}
	if (st.st_size == 0) {
		err_set(err, errlen, "%s: empty", path);
		return -EINVAL;
	}
	return 0;
}

static int tls_ctx_load_cert(struct tls_ctx *ctx, const char *path, char *err,
			     size_t errlen)
{
	int r = tls_file_check(path, err, errlen);

	if (r)
		return r;
	if (SSL_CTX_use_certificate_chain_file(ctx->ssl, path) != 1) {
		err_set(err, errlen, "%s: not a PEM certificate (%s)", path,
			tls_ctx_reason());
		return -EINVAL;
	}
	return 0;
}

static int tls_ctx_load_key(struct tls_ctx *ctx, const char *path,
			    const char *cert, char *err, size_t errlen)
{
	EVP_PKEY *key = NULL;
	FILE *f;
	int r = tls_file_check(path, err, errlen);

	if (r)
		return r;
	f = fopen(path, "re");
	if (f) {
		key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	if (!key) {
		err_set(err, errlen, "%s: not a PEM private key (%s)", path,
			f ? tls_ctx_reason() : strerror(errno));
		return -EINVAL;
	}
	r = SSL_CTX_use_PrivateKey(ctx->ssl, key) == 1 &&
	    SSL_CTX_check_private_key(ctx->ssl) == 1;
	EVP_PKEY_free(key);
	if (!r) {
		err_set(err, errlen,
			"%s: the key does not match the certificate in %s",
			path, cert);
		return -EINVAL;
	}
	return 0;
}

static int tls_ctx_load_ca(struct tls_ctx *ctx, char *err, size_t errlen)
{
	STACK_OF(X509_NAME) * names;
	int r = tls_file_check(ctx->ca_path, err, errlen);

	if (r)
		return r;
	if (SSL_CTX_load_verify_file(ctx->ssl, ctx->ca_path) != 1) {
		err_set(err, errlen, "%s: no PEM CA certificate in it (%s)",
			ctx->ca_path, tls_ctx_reason());
		return -EINVAL;
	}
	if (ctx->role != TLS_SERVER)
		return 0;
	/* Tell clients which CA to present a certificate of. */
	names = SSL_load_client_CA_file(ctx->ca_path);
	if (names)
		SSL_CTX_set_client_CA_list(ctx->ssl, names);
	return 0;
}

/* "a,b,c" into ctx->authz; an empty name is an error. */
static int tls_ctx_parse_authz(struct tls_ctx *ctx, const char *list, char *err,
			       size_t errlen)
{
	const char *p = list;
	size_t n = 1;

	snprintf(ctx->authz_text, sizeof(ctx->authz_text), "%s", list);
	for (const char *q = list; *q; q++)
		n += *q == ',';
	ctx->authz = calloc(n, sizeof(*ctx->authz));
	if (!ctx->authz)
		return -ENOMEM;
	while (ctx->nauthz < n) {
		size_t len = strcspn(p, ",");

		if (!len) {
			err_set(err, errlen,
				"authorized identities '%s': an empty name",
				list);
			return -EINVAL;
		}
		ctx->authz[ctx->nauthz] = strndup(p, len);
		if (!ctx->authz[ctx->nauthz])
			return -ENOMEM;
		ctx->nauthz++;
		p += len + (p[len] == ',');
	}
	return 0;
}

/* TLS 1.3 only, AES-GCM only, no session resumption, kTLS asked for. */
static int tls_ctx_settings(struct tls_ctx *ctx, char *err, size_t errlen)
{
	SSL_CTX *s = ctx->ssl;

	if (SSL_CTX_set_min_proto_version(s, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(s, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_ciphersuites(s, TLS_CIPHERS) != 1) {
		err_set(err, errlen, "TLS 1.3 with AES-GCM: %s",
			tls_ctx_reason());
		return -EINVAL;
	}
	SSL_CTX_set_options(s, SSL_OP_ENABLE_KTLS | SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(s, 0);
	SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_mode(s, SSL_MODE_ENABLE_PARTIAL_WRITE |
				    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_verify_depth(s, 8);
	return 0;
}

static int tls_ctx_load(struct tls_ctx *ctx, const char *dir, const char *authz,
			char *err, size_t errlen)
{
	char cert[sizeof(ctx->ca_path)], key[sizeof(ctx->ca_path)];
	int r;

	if (snprintf(ctx->ca_path, sizeof(ctx->ca_path), "%s/ca.pem", dir) >=
	    (int)sizeof(ctx->ca_path)) {
		err_set(err, errlen, "%s: path too long", dir);
		return -ENAMETOOLONG;
	}
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	r = tls_ctx_settings(ctx, err, errlen);
	if (!r)
		r = tls_ctx_load_cert(ctx, cert, err, errlen);
	if (!r)
		r = tls_ctx_load_key(ctx, key, cert, err, errlen);
	if (!r)
		r = tls_ctx_load_ca(ctx, err, errlen);
	if (!r && ctx->role == TLS_SERVER && authz && *authz)
		r = tls_ctx_parse_authz(ctx, authz, err, errlen);
	if (r == -ENOMEM)
		err_set(err, errlen, "%s: out of memory", dir);
	return r;
}

int tls_ctx_new(struct tls_ctx **out, const char *dir, enum tls_role role,
		const char *authz, char *err, size_t errlen)
{
	struct tls_ctx *ctx = calloc(1, sizeof(*ctx));
	int r;

	*out = NULL;
	if (!ctx) {
		err_set(err, errlen, "%s: out of memory", dir);
		return -ENOMEM;
	}
	ctx->role = role;
	ERR_clear_error();
	ctx->ssl = SSL_CTX_new(role == TLS_CLIENT ? TLS_client_method()
						  : TLS_server_method());
	if (!ctx->ssl) {
		err_set(err, errlen, "%s: TLS context: %s", dir,
			tls_ctx_reason());
		free(ctx);
		return -ENOMEM;
	}
	r = tls_ctx_load(ctx, dir, authz, err, errlen);
	ERR_clear_error();
	if (r) {
		tls_ctx_free(ctx);
		return r;
	}
	*out = ctx;
	return 0;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
	if (!ctx)
		return;
	for (size_t i = 0; i < ctx->nauthz; i++)
		free(ctx->authz[i]);
	free(ctx->authz);
	SSL_CTX_free(ctx->ssl);
	free(ctx);
}
