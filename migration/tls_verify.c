/* SPDX-License-Identifier: MIT */
/*
 * tls_verify.c - why a peer's certificate was refused, in one line that
 * names the certificate and the file or name it failed against, and the
 * destination's --tls-authz check (see tls.h). Runs inside OpenSSL's
 * handshake, on the thread that drives the connection.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/x509v3.h>

#include "common/err.h"
#include "migration/tls.h"
#include "migration/tls_verify.h"

/* Append "DNS:a, IP:b" for the certificate's subjectAltNames. */
static void tls_cert_sans(X509 *cert, char *buf, size_t len)
{
	GENERAL_NAMES *gens =
		X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const unsigned char *d;
		char ip[INET6_ADDRSTRLEN] = "?";
		int n;

		if (off >= len)
			break;
		if (g->type == GEN_DNS) {
			d = ASN1_STRING_get0_data(g->d.dNSName);
			n = ASN1_STRING_length(g->d.dNSName);
			off += snprintf(buf + off, len - off, "%sDNS:%.*s",
					off ? ", " : "", n, (const char *)d);
		} else if (g->type == GEN_IPADD) {
			d = ASN1_STRING_get0_data(g->d.iPAddress);
			n = ASN1_STRING_length(g->d.iPAddress);
			if (n == 4 || n == 16)
				inet_ntop(n == 4 ? AF_INET : AF_INET6, d, ip,
					  sizeof(ip));
			off += snprintf(buf + off, len - off, "%sIP:%s",
					off ? ", " : "", ip);
		}
	}
	GENERAL_NAMES_free(gens);
}

/* The subject's CN into buf (false: none, or one with a NUL inside). */
static bool tls_cert_cn(X509 *cert, char *buf, size_t len)
{
	int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert),
					  NID_commonName, buf, (int)len);

	return n > 0 && strlen(buf) == (size_t)n;
}

void tls_cert_describe(X509 *cert, char *buf, size_t len)
{
	char cn[256], name[260], sans[256];

	if (!cert) {
		snprintf(buf, len, "(no certificate)");
		return;
	}
	if (tls_cert_cn(cert, cn, sizeof(cn)))
		snprintf(name, sizeof(name), "CN=%s", cn);
	else
		X509_NAME_oneline(X509_get_subject_name(cert), name,
				  sizeof(name));
	tls_cert_sans(cert, sans, sizeof(sans));
	if (sans[0])
		snprintf(buf, len, "%s (%s)", name, sans);
	else
		snprintf(buf, len, "%s", name);
}

/* Whether name is the CN or a SAN of cert (an IP name: an IP SAN). */
static bool tls_cert_names(X509 *cert, const char *name)
{
	GENERAL_NAMES *gens;
	unsigned char ip[16];
	int iplen = inet_pton(AF_INET, name, ip) == 1	 ? 4
		    : inet_pton(AF_INET6, name, ip) == 1 ? 16
							 : 0;
	char cn[256];
	bool hit = false;

	if (!iplen && tls_cert_cn(cert, cn, sizeof(cn)) &&
	    !strcasecmp(cn, name))
		return true;
	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; !hit && gens && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const ASN1_STRING *s = g->type == GEN_DNS     ? g->d.dNSName
				       : g->type == GEN_IPADD ? g->d.iPAddress
							      : NULL;
		const unsigned char *d = s ? ASN1_STRING_get0_data(s) : NULL;
		int n = s ? ASN1_STRING_length(s) : 0;

		if (g->type == GEN_IPADD)
			hit = iplen && n == iplen && !memcmp(d, ip, n);
		else if (g->type == GEN_DNS)
			hit = !iplen && (size_t)n == strlen(name) &&
			      !strncasecmp((const char *)d, name, n);
	}
	GENERAL_NAMES_free(gens);
	return hit;
}

static bool tls_authz_admits(const struct tls_ctx *ctx, X509 *cert)
{
	for (size_t i = 0; i < ctx->nauthz; i++)
		if (tls_cert_names(cert, ctx->authz[i]))
			return true;
	return false;
}

static void tls_time_text(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm tm;

	if (!t || ASN1_TIME_to_tm(t, &tm) != 1 ||
	    !strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buf, len, "(unreadable time)");
}

static bool tls_err_unknown_ca(int e)
{
	return e == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
	       e == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
	       e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
	       e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
	       e == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE ||
	       e == X509_V_ERR_CERT_SIGNATURE_FAILURE;
}

/* One line for the first failure OpenSSL reports on the peer's chain. */
static void tls_verify_explain(struct tls_conn *c, X509_STORE_CTX *st,
			       X509 *cert)
{
	int e = X509_STORE_CTX_get_error(st);
	const char *whose = X509_STORE_CTX_get_error_depth(st)
				    ? "CA certificate"
				    : "peer certificate";
	char who[512], issuer[256], when[64];

	tls_cert_describe(cert, who, sizeof(who));
	if (e == X509_V_ERR_CERT_HAS_EXPIRED) {
		tls_time_text(X509_get0_notAfter(cert), when, sizeof(when));
		err_set(c->verify_err, sizeof(c->verify_err),
			"%s %s expired on %s", whose, who, when);
	} else if (e == X509_V_ERR_CERT_NOT_YET_VALID) {
		tls_time_text(X509_get0_notBefore(cert), when, sizeof(when));
		err_set(c->verify_err, sizeof(c->verify_err),
			"%s %s is not valid before %s (check both clocks)",
			whose, who, when);
	} else if (e == X509_V_ERR_HOSTNAME_MISMATCH ||
		   e == X509_V_ERR_IP_ADDRESS_MISMATCH) {
		err_set(c->verify_err, sizeof(c->verify_err),
			"%s names %s, not %s", whose, who, c->host);
	} else if (tls_err_unknown_ca(e)) {
		/* Name the peer's own certificate, whatever link failed. */
		cert = X509_STORE_CTX_get0_cert(st)
			       ? X509_STORE_CTX_get0_cert(st)
			       : cert;
		whose = "peer certificate";
		tls_cert_describe(cert, who, sizeof(who));
		X509_NAME_oneline(cert ? X509_get_issuer_name(cert) : NULL,
				  issuer, sizeof(issuer));
		err_set(c->verify_err, sizeof(c->verify_err),
			"%s %s (issuer %s) is not signed by the CA in %s",
			whose, who, cert ? issuer : "?", c->ctx->ca_path);
	} else {
		err_set(c->verify_err, sizeof(c->verify_err),
			"%s %s refused: %s (checked against %s)", whose, who,
			X509_verify_cert_error_string(e), c->ctx->ca_path);
	}
}

int tls_verify_cb(int ok, X509_STORE_CTX *st)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(
		st, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls_conn *c = ssl ? SSL_get_app_data(ssl) : NULL;
	X509 *cert = X509_STORE_CTX_get_current_cert(st);
	char who[512];

	if (!c)
		return 0;
	if (!ok) {
		if (!c->verify_err[0])
			tls_verify_explain(c, st, cert);
		return 0;
	}
	if (X509_STORE_CTX_get_error_depth(st) || !c->ctx->nauthz ||
	    tls_authz_admits(c->ctx, cert))
		return 1;
	tls_cert_describe(cert, who, sizeof(who));
	err_set(c->verify_err, sizeof(c->verify_err),
		"client %s is not in --tls-authz (%s)", who,
		c->ctx->authz_text);
	c->denied = true;
	X509_STORE_CTX_set_error(st, X509_V_ERR_APPLICATION_VERIFICATION);
	return 0;
}
