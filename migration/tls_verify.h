/* SPDX-License-Identifier: MIT */
/*
 * tls_verify.h - inside migration/tls*.c only: naming certificates for
 * messages, and the verify callback that turns OpenSSL's verdict on the
 * peer's certificate (and the --tls-authz check) into one line in the
 * connection's verify_err.
 */
#ifndef MIGRATION_TLS_VERIFY_H
#define MIGRATION_TLS_VERIFY_H

#include <stddef.h>

#include <openssl/x509.h>

/* "CN=name (DNS:a, IP:b)": the subject's CN (or whole name) and SANs. */
void tls_cert_describe(X509 *cert, char *buf, size_t len);
/* SSL_set_verify callback; the SSL's app data is its struct tls_conn. */
int tls_verify_cb(int ok, X509_STORE_CTX *st);

#endif /* MIGRATION_TLS_VERIFY_H */
