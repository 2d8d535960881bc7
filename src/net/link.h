/* One network link (ESP-AT "link ID" 0..4): a TCP, UDP (or, later, SSL)
 * socket on the event loop with a receive buffer the AT side drains, and one
 * send in flight. Links know nothing of AT text (design.md §2); they report
 * through events. */
#ifndef ESPATD_NET_LINK_H
#define ESPATD_NET_LINK_H

#include "core/buf.h"
#include "core/loop.h"
#include "tls/tls.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define LINK_MAX 5
#define LINK_RX_WINDOW 5760   /* module receive window (protocol.md §2.28) */
#define LINK_IPD_MAX 2920     /* most payload bytes per +IPD (§3.2) */
#define LINK_DGRAM_MAX 64     /* datagrams remembered in the receive buffer */

enum link_proto { LINK_TCP, LINK_UDP, LINK_SSL };

enum link_state {
	LINK_FREE,
	LINK_CONNECTING,
	LINK_HANDSHAKE,   /* TCP is up, TLS is being negotiated (SSL links) */
	LINK_OPEN,
	LINK_PEER_CLOSED, /* the peer is gone; buffered data may remain */
};

struct link;

struct link_events {
	/* A connect started with link_connect() finished, or an adopted SSL
	 * link finished its handshake: err 0 or -errno (nothing is left of
	 * the link then). */
	void (*connect_done)(void *arg, struct link *lk, int err);
	/* New bytes in the receive buffer. */
	void (*received)(void *arg, struct link *lk);
	/* The peer closed or the socket failed (err 0 = orderly close). The
	 * link stays in LINK_PEER_CLOSED until link_close(). */
	void (*peer_closed)(void *arg, struct link *lk, int err);
	/* The send started with link_send() was accepted by the stack (0) or
	 * failed (-errno). */
	void (*send_done)(void *arg, struct link *lk, int err);
};

/* One UDP datagram's place in the receive buffer. */
struct link_dgram {
	uint32_t len;
	struct sockaddr_storage from;
};

struct link_opts {
	int keepalive;        /* seconds, 0 off: TCP_KEEPIDLE=v, INTVL=1, CNT=3 (§2.5) */
	int linger;           /* -1 off, 0 RST on close, >0 seconds (§2.33) */
	bool nodelay;
	uint32_t sndtimeo_ms; /* 0 = wait as long as it takes */
};

struct link {
	int id;
	enum link_proto proto;
	bool v6;
	bool server_side;     /* accepted by our server ("tetype" 1) */
	enum link_state state;
	int fd;
	struct loop *loop;
	struct loop_io io;
	const struct link_events *ev;
	void *ev_arg;
	struct sockaddr_storage remote; /* current remote (UDP may change, §2.5) */
	uint16_t local_port;
	int udp_mode;         /* 0 fixed, 1 change once, 2 change every time */
	bool udp_changed;
	bool multicast;

	/* receive side */
	bool read_on;         /* the AT side wants bytes (not congested) */
	size_t rx_limit;      /* read while buffered bytes are below this */
	struct buf rx;
	struct link_dgram dgrams[LINK_DGRAM_MAX]; /* UDP: ring of datagrams in rx */
	unsigned dg_head, dg_count;
	uint64_t dropped;     /* UDP datagrams dropped for want of room */

	/* send side: one send in flight */
	struct buf tx;
	bool sending;
	struct sockaddr_storage tx_dest;
	bool tx_has_dest;
	struct loop_timer send_timer;
	struct loop_defer done; /* delivers send_done at the end of the loop turn */
	struct loop_defer want_sync; /* sets the epoll mask at the end of the turn */
	int send_err;
	struct loop_timer conn_timer;
	struct link_opts opts;
	uint64_t sent_total, recv_total;
	struct tls_conn *tls;         /* SSL links */
	struct loop_timer tls_timer;  /* read what TLS already decrypted */
	char tls_why[256];            /* why the last TLS step failed */
};

void link_init(struct link *lk, int id, struct loop *l, const struct link_events *ev, void *arg);
/* Start a connection. TCP: non-blocking connect, connect_done() later.
 * UDP: bound now (local port 0 = any), connect_done() on the next turn.
 * local: bind address or NULL. timeout_ms 0 = 20 s. Returns 0 or -errno
 * (nothing was created). */
int link_connect(struct link *lk, enum link_proto proto, const struct sockaddr_storage *remote,
		 const struct sockaddr_storage *local, uint16_t local_port, int udp_mode,
		 const struct link_opts *opts, uint32_t timeout_ms);
/* The same for an SSL link: TCP, then the TLS handshake described by tls
 * (used at once: its strings need not outlive the call). */
int link_connect_tls(struct link *lk, const struct sockaddr_storage *remote,
		     const struct sockaddr_storage *local, const struct link_opts *opts,
		     uint32_t timeout_ms, const struct tls_cfg *tls);
/* Adopt an accepted TCP socket (server side); with tls, a handshake first
 * and connect_done() when it ends. */
int link_adopt(struct link *lk, int fd, const struct link_opts *opts, const struct tls_cfg *tls);
/* Queue n bytes as one send (UDP: one datagram, to dest if given). */
int link_send(struct link *lk, const void *p, size_t n, const struct sockaddr_storage *dest);
/* Close now, drop buffered data; no events afterwards. */
void link_close(struct link *lk);
/* Reading policy: read while rx holds fewer than `limit` bytes and `on`. */
void link_set_reading(struct link *lk, bool on, size_t limit);
/* Consume n bytes from the front of the receive buffer (UDP: whole or part
 * of the first datagram). */
void link_consume(struct link *lk, size_t n);
/* Read the socket now if the reading policy allows, as if epoll had said it
 * is readable: after the host drained the buffer, the next notice then
 * follows in the same loop turn (docs/performance.md, F3). Events may
 * follow, peer_closed included. */
void link_read_now(struct link *lk);
/* Bytes of the first datagram (UDP) or all buffered bytes (TCP). */
size_t link_next_len(const struct link *lk);
size_t link_buffered(const struct link *lk);
/* Remote of the first buffered datagram (UDP) or the link's remote. */
const struct sockaddr_storage *link_next_from(const struct link *lk);
int link_apply_opts(struct link *lk, const struct link_opts *opts);
bool link_in_use(const struct link *lk);
/* A send started with link_send() has not reported send_done() yet. */
bool link_send_pending(const struct link *lk);

/* "192.168.1.2" / "::1" and the port of an address. */
void link_addr_str(const struct sockaddr_storage *a, char *out, size_t size);
uint16_t link_addr_port(const struct sockaddr_storage *a);

#endif
