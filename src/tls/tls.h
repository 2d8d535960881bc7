/* A narrow TLS backend interface (design.md §2, curl's vtls): one session
 * over a connected non-blocking socket, with an explicit handshake step and
 * "I need to read / write" flags so it runs on the event loop. Links know
 * TLS only through this; tls_openssl.c implements it. */
#ifndef ESPATD_TLS_TLS_H
#define ESPATD_TLS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tls_conn;

enum { TLS_WANT_READ = 1u, TLS_WANT_WRITE = 2u };

#define TLS_ALPN_MAX 5
#define TLS_CIPHER_MAX 16

/* A certificate (chain) or a private key: PEM text or DER bytes, as the
 * module's mbedTLS takes either; p == NULL for none. */
struct tls_blob {
	const uint8_t *p;
	size_t n;
};

struct tls_pki {
	struct tls_blob ca;
	struct tls_blob cert;
	struct tls_blob key;
};

struct tls_cfg {
	bool server;
	/* client: 0 none, 1 present a client certificate, 2 verify the
	 * server against the CA, 3 both (AT+CIPSSLCCONF auth modes);
	 * server: 1 = require and verify client certificates */
	int auth_mode;
	struct tls_pki pki;
	const char *sni;          /* ClientHello server name; NULL none */
	const char *expect_name;  /* name the server certificate must carry */
	const char *alpn[TLS_ALPN_MAX];
	int nalpn;
	const uint8_t *psk;       /* pre-shared key, NULL none */
	size_t psk_len;
	const char *psk_identity;
	uint16_t ciphers[TLS_CIPHER_MAX]; /* IANA suite ids; 0 entries = default */
	int nciphers;
};

/* Check that data parses as certificate(s) or a private key, PEM or DER;
 * used when certificates are provisioned so bad data is refused at once. */
int tls_check_cert(const uint8_t *p, size_t n, char *why, size_t whylen);
int tls_check_key(const uint8_t *p, size_t n, char *why, size_t whylen);

/* Start a session on fd. Returns 0 or -errno / -EINVAL with a reason. */
int tls_new(struct tls_conn **out, int fd, const struct tls_cfg *cfg, char *why, size_t whylen);
/* 0 when the handshake is complete; -EAGAIN (see tls_wants); other
 * negative: failed, tls_error() says why in words. */
int tls_handshake(struct tls_conn *c);
/* > 0 bytes; 0 the peer closed; -EAGAIN; other negative: failed. */
ssize_t tls_read(struct tls_conn *c, void *p, size_t n);
/* >= 0 bytes taken; -EAGAIN; other negative: failed. */
ssize_t tls_write(struct tls_conn *c, const void *p, size_t n);
unsigned tls_wants(const struct tls_conn *c);
/* Decrypted bytes ready without touching the socket. */
size_t tls_pending(const struct tls_conn *c);
const char *tls_error(const struct tls_conn *c);
/* Negotiated protocol ("TLSv1.3") and ALPN (NULL if none). */
const char *tls_version(const struct tls_conn *c);
const char *tls_alpn(const struct tls_conn *c);
/* Send close_notify (best effort) and free. */
void tls_free(struct tls_conn *c);

#endif
