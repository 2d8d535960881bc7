/* The TLS backend on OpenSSL 3 (design.md §3). Certificates come as PEM
 * text or DER bytes from the store, never from paths a user names. */
#include "tls/tls.h"

#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tls_conn {
	SSL_CTX *ctx;
	SSL *ssl;
	bool server;
	unsigned wants;
	char err[256];
	uint8_t psk[64];
	size_t psk_len;
	char psk_identity[129];
};

static void set_err(char *dst, size_t n, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	if (e) {
		char buf[200];
		ERR_error_string_n(e, buf, sizeof(buf));
		/* A message cut at n bytes still says what failed first; the
		 * result is looked at so that -O3's -Wformat-truncation (an
		 * error with -Werror in a Release build) accepts the cut. */
		if (snprintf(dst, n, "%s (%s)", what, buf) < 0)
			snprintf(dst, n, "%s", what);
	} else {
		snprintf(dst, n, "%s", what);
	}
	ERR_clear_error();
}

/* Encrypted PEM: there is no passphrase to give. Without this callback
 * OpenSSL's default one asks for it on the controlling terminal, which
 * would stall the daemon's loop. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
	return 0;
}

/* The certificates in b: every one of PEM text, else a single DER one
 * (mbedtls_x509_crt_parse on the module takes either). Never NULL unless
 * out of memory; empty when nothing parses. */
static STACK_OF(X509) *read_certs(const struct tls_blob *b)
{
	STACK_OF(X509) *out = sk_X509_new_null();
	if (!out || !b->p || b->n > INT_MAX)
		return out;
	BIO *bio = BIO_new_mem_buf(b->p, (int)b->n);
	STACK_OF(X509_INFO) *infos = bio ? PEM_X509_INFO_read_bio(bio, NULL, no_password, NULL)
					 : NULL;
	BIO_free(bio);
	for (int i = 0; infos && i < sk_X509_INFO_num(infos); i++) {
		X509 *x = sk_X509_INFO_value(infos, i)->x509;
		if (x && sk_X509_push(out, x))
			X509_up_ref(x);
	}
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	if (sk_X509_num(out) == 0) {
		const unsigned char *q = b->p;
		X509 *x = d2i_X509(NULL, &q, (long)b->n);
		if (x && q == b->p + b->n && sk_X509_push(out, x))
			x = NULL;
		X509_free(x);
	}
	ERR_clear_error();
	return out;
}

int tls_check_cert(const uint8_t *p, size_t n, char *why, size_t whylen)
{
	struct tls_blob b = { p, n };
	STACK_OF(X509) *certs = read_certs(&b);
	int num = certs ? sk_X509_num(certs) : 0;
	sk_X509_pop_free(certs, X509_free);
	if (!num) {
		set_err(why, whylen, "no certificate (PEM or DER) in the data");
		return -EINVAL;
	}
	return 0;
}

/* A private key, PEM or DER; an encrypted one cannot be read. */
static EVP_PKEY *read_key(const struct tls_blob *b)
{
	if (!b->p || b->n > INT_MAX)
		return NULL;
	BIO *bio = BIO_new_mem_buf(b->p, (int)b->n);
	EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL) : NULL;
	BIO_free(bio);
	if (!k) {
		const unsigned char *q = b->p;
		k = d2i_AutoPrivateKey(NULL, &q, (long)b->n);
		if (k && q != b->p + b->n) {
			EVP_PKEY_free(k);
			k = NULL;
		}
	}
	ERR_clear_error();
	return k;
}

int tls_check_key(const uint8_t *p, size_t n, char *why, size_t whylen)
{
	struct tls_blob b = { p, n };
	EVP_PKEY *k = read_key(&b);
	if (!k) {
		set_err(why, whylen, "no private key (PEM or DER, unencrypted) in the data");
		return -EINVAL;
	}
	EVP_PKEY_free(k);
	return 0;
}

static int load_ca(SSL_CTX *ctx, const struct tls_blob *ca, char *why, size_t whylen)
{
	STACK_OF(X509) *certs = read_certs(ca);
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	int n = 0;
	for (int i = 0; certs && i < sk_X509_num(certs); i++)
		if (X509_STORE_add_cert(store, sk_X509_value(certs, i)) == 1)
			n++;
	sk_X509_pop_free(certs, X509_free);
	if (!n) {
		set_err(why, whylen, "the CA certificate cannot be read");
		return -EINVAL;
	}
	return 0;
}

static int load_cert_key(SSL_CTX *ctx, const struct tls_pki *pki, char *why, size_t whylen)
{
	if (!pki->cert.p || !pki->key.p) {
		snprintf(why, whylen, "a certificate and its private key are needed");
		return -EINVAL;
	}
	STACK_OF(X509) *certs = read_certs(&pki->cert);
	int rc = -EINVAL;
	for (int i = 0; certs && i < sk_X509_num(certs); i++) {
		X509 *x = sk_X509_value(certs, i);
		if (i == 0) {
			if (SSL_CTX_use_certificate(ctx, x) != 1)
				break;
			rc = 0;
		} else {
			X509_up_ref(x);
			if (SSL_CTX_add_extra_chain_cert(ctx, x) != 1) /* the chain */
				X509_free(x);
		}
	}
	sk_X509_pop_free(certs, X509_free);
	if (rc < 0) {
		set_err(why, whylen, "the certificate cannot be read");
		return rc;
	}
	EVP_PKEY *k = read_key(&pki->key);
	if (!k || SSL_CTX_use_PrivateKey(ctx, k) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		EVP_PKEY_free(k);
		set_err(why, whylen, "the private key cannot be read or does not match the certificate");
		return -EINVAL;
	}
	EVP_PKEY_free(k);
	return 0;
}

static unsigned int psk_client_cb(SSL *ssl, const char *hint, char *identity,
				  unsigned int max_identity_len, unsigned char *psk,
				  unsigned int max_psk_len)
{
	struct tls_conn *c = SSL_get_app_data(ssl);
	if (!c || strlen(c->psk_identity) + 1 > max_identity_len || c->psk_len > max_psk_len)
		return 0;
	strcpy(identity, c->psk_identity);
	memcpy(psk, c->psk, c->psk_len);
	return (unsigned int)c->psk_len;
}

/* IANA suite ids (AT+CIPSSLCCIPHER) to OpenSSL's names: TLS 1.3 suites and
 * the rest go to different lists. */
static int set_ciphers(struct tls_conn *c, const struct tls_cfg *cfg, char *why, size_t whylen)
{
	char list12[1024] = "", list13[256] = "";
	for (int i = 0; i < cfg->nciphers; i++) {
		unsigned char id[2] = { (unsigned char)(cfg->ciphers[i] >> 8),
					(unsigned char)cfg->ciphers[i] };
		const SSL_CIPHER *ci = SSL_CIPHER_find(c->ssl, id);
		if (!ci) {
			snprintf(why, whylen, "cipher suite 0x%04X is not available", cfg->ciphers[i]);
			return -EINVAL;
		}
		const char *name = SSL_CIPHER_get_name(ci);
		bool v13 = SSL_CIPHER_get_protocol_id(ci) >= 0x1301 &&
			   SSL_CIPHER_get_protocol_id(ci) <= 0x1305;
		char *dst = v13 ? list13 : list12;
		size_t size = v13 ? sizeof(list13) : sizeof(list12);
		size_t len = strlen(dst);
		snprintf(dst + len, size - len, "%s%s", len ? ":" : "", name);
	}
	/* Only the named suites. A version none of them is for is turned
	 * off: an empty TLS 1.2 list is refused by OpenSSL and would leave
	 * its default list in place. */
	if (list12[0] && SSL_set_cipher_list(c->ssl, list12) != 1) {
		set_err(why, whylen, "bad cipher list");
		return -EINVAL;
	}
	if (!list12[0])
		SSL_set_min_proto_version(c->ssl, TLS1_3_VERSION);
	if (SSL_set_ciphersuites(c->ssl, list13) != 1) {
		set_err(why, whylen, "bad TLS 1.3 cipher list");
		return -EINVAL;
	}
	if (!list13[0])
		SSL_set_max_proto_version(c->ssl, TLS1_2_VERSION);
	return 0;
}

static bool is_ip_literal(const char *s)
{
	unsigned char buf[16];
	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* What belongs to the context: trust anchors and our own certificate. */
static int setup_ctx(struct tls_conn *c, const struct tls_cfg *cfg, char *why, size_t whylen)
{
	bool need_ca = cfg->server ? cfg->auth_mode != 0 : (cfg->auth_mode & 2) != 0;
	bool need_cert = cfg->server || (cfg->auth_mode & 1);
	if (need_ca) {
		if (!cfg->pki.ca.p) {
			snprintf(why, whylen, cfg->server ? "no CA certificate to verify clients with"
							  : "no CA certificate to verify the server with");
			return -EINVAL;
		}
		if (load_ca(c->ctx, &cfg->pki.ca, why, whylen) < 0)
			return -EINVAL;
	}
	if (need_cert && load_cert_key(c->ctx, &cfg->pki, why, whylen) < 0)
		return -EINVAL;
	return 0;
}

static int setup_client(struct tls_conn *c, const struct tls_cfg *cfg, char *why, size_t whylen)
{
	SSL *ssl = c->ssl;
	if (cfg->auth_mode & 2) {
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
		if (cfg->expect_name && cfg->expect_name[0]) {
			X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
			if (is_ip_literal(cfg->expect_name))
				X509_VERIFY_PARAM_set1_ip_asc(vp, cfg->expect_name);
			else
				SSL_set1_host(ssl, cfg->expect_name);
		}
	} else {
		SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	}
	if (cfg->sni && cfg->sni[0] && SSL_set_tlsext_host_name(ssl, cfg->sni) != 1) {
		set_err(why, whylen, "bad SNI");
		return -EINVAL;
	}
	if (cfg->nalpn) {
		unsigned char wire[TLS_ALPN_MAX * 256];
		size_t o = 0;
		for (int i = 0; i < cfg->nalpn; i++) {
			size_t l = strlen(cfg->alpn[i]);
			if (l == 0 || l > 255)
				continue;
			wire[o++] = (unsigned char)l;
			memcpy(wire + o, cfg->alpn[i], l);
			o += l;
		}
		if (o && SSL_set_alpn_protos(ssl, wire, (unsigned int)o) != 0) {
			set_err(why, whylen, "bad ALPN list");
			return -EINVAL;
		}
	}
	if (cfg->psk && cfg->psk_len) {
		if (cfg->psk_len > sizeof(c->psk))
			return -EINVAL;
		memcpy(c->psk, cfg->psk, cfg->psk_len);
		c->psk_len = cfg->psk_len;
		snprintf(c->psk_identity, sizeof(c->psk_identity), "%s",
			 cfg->psk_identity ? cfg->psk_identity : "");
		SSL_set_psk_client_callback(ssl, psk_client_cb);
	}
	return 0;
}

static int setup_server(struct tls_conn *c, const struct tls_cfg *cfg, char *why, size_t whylen)
{
	if (cfg->auth_mode)
		SSL_set_verify(c->ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	return 0;
}

int tls_new(struct tls_conn **out, int fd, const struct tls_cfg *cfg, char *why, size_t whylen)
{
	struct tls_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->server = cfg->server;
	c->ctx = SSL_CTX_new(cfg->server ? TLS_server_method() : TLS_client_method());
	if (!c->ctx) {
		free(c);
		set_err(why, whylen, "cannot create a TLS context");
		return -ENOMEM;
	}
	/* TLS 1.2 and 1.3, as ESP-AT's mbedTLS offers. */
	SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
	int rc = setup_ctx(c, cfg, why, whylen);
	if (rc == 0) {
		c->ssl = SSL_new(c->ctx);
		rc = c->ssl ? 0 : -ENOMEM;
	}
	if (rc == 0) {
		SSL_set_app_data(c->ssl, c);
		SSL_set_fd(c->ssl, fd);
		rc = cfg->server ? setup_server(c, cfg, why, whylen) : setup_client(c, cfg, why, whylen);
	}
	if (rc == 0 && cfg->nciphers)
		rc = set_ciphers(c, cfg, why, whylen);
	if (rc < 0) {
		tls_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

/* OpenSSL's reason texts ("sslv3 alert bad record mac") do not say what
 * to change; these words do, for the failures a configuration causes. */
static const char *verify_hint(long vr)
{
	switch (vr) {
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		return "the peer's certificate is not signed by the CA configured here";
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return "the peer's certificate is not for the name checked";
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return "the peer's certificate is outside its validity dates (checked against "
		       "this host's clock)";
	default:
		return NULL;
	}
}

static const char *reason_hint(const struct tls_conn *c, int reason)
{
	switch (reason) {
	case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
		return c->server ? NULL : "the server refused the handshake: it may want a client "
					  "certificate, or share no cipher suite with us";
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
		return "the server requires a client certificate";
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
		return "the peer does not trust the CA of our certificate";
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
		return "the peer rejected our certificate";
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
		return "the peer says our certificate has expired";
	case SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL:
		return "the server speaks none of the ALPN protocols offered";
	case SSL_R_TLSV1_UNRECOGNIZED_NAME:
		return "the server does not serve the SNI name sent";
	case SSL_R_SSLV3_ALERT_BAD_RECORD_MAC:
	case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
	case SSL_R_SSLV3_ALERT_ILLEGAL_PARAMETER:
		return c->psk_len ? "the server does not accept our pre-shared key or identity"
				  : NULL;
	case SSL_R_NO_SHARED_CIPHER:
		return "no cipher suite in common with the peer";
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
		return "the client sent no certificate, and one is required";
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
		return "the peer does not speak TLS";
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
		return "no TLS version in common (TLS 1.2 and 1.3 are offered)";
	default:
		return NULL;
	}
}

static int failed(struct tls_conn *c, int ret, const char *during)
{
	int e = SSL_get_error(c->ssl, ret);
	c->wants = 0;
	if (e == SSL_ERROR_WANT_READ) {
		c->wants = TLS_WANT_READ;
		return -EAGAIN;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		c->wants = TLS_WANT_WRITE;
		return -EAGAIN;
	}
	long vr = SSL_get_verify_result(c->ssl);
	if (vr != X509_V_OK && (SSL_get_verify_mode(c->ssl) & SSL_VERIFY_PEER)) {
		const char *h = verify_hint(vr);
		snprintf(c->err, sizeof(c->err), "%s: certificate check failed: %s%s%s", during,
			 X509_verify_cert_error_string(vr), h ? ": " : "", h ? h : "");
		ERR_clear_error();
		return -EPROTO;
	}
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
		snprintf(c->err, sizeof(c->err), "%s: the peer closed the connection", during);
		return -ECONNRESET;
	}
	const char *h = reason_hint(c, ERR_GET_REASON(ERR_peek_last_error()));
	char what[160];
	snprintf(what, sizeof(what), "%s%s%s", during, h ? ": " : "", h ? h : "");
	set_err(c->err, sizeof(c->err), what);
	return -EPROTO;
}

int tls_handshake(struct tls_conn *c)
{
	int r = c->server ? SSL_accept(c->ssl) : SSL_connect(c->ssl);
	if (r == 1) {
		c->wants = 0;
		return 0;
	}
	int rc = failed(c, r, "TLS handshake");
	return rc == 0 ? -ECONNRESET : rc;
}

ssize_t tls_read(struct tls_conn *c, void *p, size_t n)
{
	size_t got = 0;
	int r = SSL_read_ex(c->ssl, p, n, &got);
	if (r == 1) {
		c->wants = 0;
		return (ssize_t)got;
	}
	return failed(c, 0, "TLS read");
}

ssize_t tls_write(struct tls_conn *c, const void *p, size_t n)
{
	size_t put = 0;
	if (n == 0)
		return 0;
	int r = SSL_write_ex(c->ssl, p, n, &put);
	if (r == 1) {
		c->wants = 0;
		return (ssize_t)put;
	}
	int rc = failed(c, 0, "TLS write");
	return rc == 0 ? -EPIPE : rc;
}

unsigned tls_wants(const struct tls_conn *c)
{
	return c->wants;
}

size_t tls_pending(const struct tls_conn *c)
{
	return (size_t)SSL_pending(c->ssl);
}

const char *tls_error(const struct tls_conn *c)
{
	return c->err[0] ? c->err : "unknown TLS error";
}

const char *tls_version(const struct tls_conn *c)
{
	return SSL_get_version(c->ssl);
}

const char *tls_alpn(const struct tls_conn *c)
{
	static char buf[256];
	const unsigned char *p;
	unsigned int len;
	SSL_get0_alpn_selected(c->ssl, &p, &len);
	if (!len)
		return NULL;
	snprintf(buf, sizeof(buf), "%.*s", (int)len, (const char *)p);
	return buf;
}

void tls_free(struct tls_conn *c)
{
	if (!c)
		return;
	if (c->ssl) {
		SSL_shutdown(c->ssl); /* close_notify, best effort */
		SSL_free(c->ssl);
	}
	SSL_CTX_free(c->ctx);
	OPENSSL_cleanse(c->psk, sizeof(c->psk));
	free(c);
	ERR_clear_error();
}
