/* The tcp transport: the "serial line" is one TCP connection, for MCU
 * simulators and remote test rigs (like an ESP-AT over a ser2net bridge).
 * One client at a time, as a wire has one end: later ones are accepted and
 * closed at once so they learn immediately instead of hanging in the backlog. */
#include "core/log.h"
#include "core/loop.h"
#include "transport/fdutil.h"
#include "transport/transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TCP_DEFAULT_HOST "127.0.0.1"
#define TCP_ACCEPT_PAUSE_MS 1000

struct tcp {
	struct transport t;
	char host[256];
	uint16_t port;        /* as configured; 0 = ephemeral */
	int lfd, cfd;         /* listener, attached client or -1 */
	struct loop_io lio, cio;
	struct loop_timer notify;   /* events decided inside write() */
	struct loop_timer relisten; /* accept paused after EMFILE */
	char where[INET6_ADDRSTRLEN + 8]; /* bound address, for logs */
	char peer[INET6_ADDRSTRLEN + 8];  /* attached client, for logs */
	bool rd_on, wr_on, started, pend_detach;
	uint8_t buf[FDU_READ_BUF];
};

static const struct transport_ops tcp_ops;

/* ---- address handling ------------------------------------------------- */

static int tcp_parse_port(const char *s, uint16_t *port)
{
	if (!*s || strlen(s) > 5 || strspn(s, "0123456789") != strlen(s))
		return -EINVAL;
	long v = strtol(s, NULL, 10);
	if (v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

/* "PORT", "HOST:PORT" or "[V6]:PORT". A bare IPv6 address is refused: with
 * its colons, "::1:3333" cannot be split reliably. */
static int tcp_parse(const char *hp, char *host, size_t cap, uint16_t *port)
{
	const char *colon = strrchr(hp, ':');
	const char *h = hp;
	size_t hl = colon ? (size_t)(colon - hp) : 0;
	if (!colon) {
		h = TCP_DEFAULT_HOST;
		hl = strlen(h);
	} else if (hp[0] == '[') {
		if (hl < 2 || hp[hl - 1] != ']')
			return -EINVAL;
		h = hp + 1;
		hl -= 2;
	} else if (memchr(hp, ':', hl)) {
		return -EINVAL;
	} else if (hl == 0) {
		h = TCP_DEFAULT_HOST;
		hl = strlen(h);
	}
	if (hl == 0 || hl >= cap)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	return tcp_parse_port(colon ? colon + 1 : hp, port);
}

static void tcp_fmt_addr(const struct sockaddr *sa, socklen_t len, char *out, size_t cap)
{
	char h[INET6_ADDRSTRLEN], s[8];
	if (getnameinfo(sa, len, h, sizeof(h), s, sizeof(s), NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(out, cap, "?");
		return;
	}
	snprintf(out, cap, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", h, s);
}

static bool tcp_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

/* ---- the attached client ---------------------------------------------- */

static unsigned tcp_mask(const struct tcp *c)
{
	return (c->rd_on ? LOOP_READ : 0u) | (c->wr_on ? LOOP_WRITE : 0u);
}

/* Deliver a detach decided inside write(), and release a writer waiting for
 * room: with nobody attached, writes are taken (and dropped). */
static void tcp_on_notify(void *arg)
{
	struct tcp *c = arg;
	if (c->pend_detach) {
		c->pend_detach = false;
		tr_emit_peer(&c->t, false);
	}
	if (c->cfd < 0 && c->wr_on)
		tr_emit_writable(&c->t);
}

static void tcp_detach(struct tcp *c, const char *why)
{
	if (c->cfd < 0)
		return;
	loop_io_del(c->t.loop, &c->cio);
	close(c->cfd);
	c->cfd = -1;
	log_info("tcp: client %s detached (%s); waiting for the next on %s", c->peer, why,
		 c->where);
	c->pend_detach = true;
	loop_timer_start(c->t.loop, &c->notify, 0);
}

static void tcp_sink(void *arg, const uint8_t *b, size_t n)
{
	struct tcp *c = arg;
	tr_emit_input(&c->t, b, n);
}

static void tcp_on_client(void *arg, unsigned events)
{
	struct tcp *c = arg;
	if (events & LOOP_WRITE)
		tr_emit_writable(&c->t);
	if (!(events & (LOOP_READ | LOOP_ERR)) || c->cfd < 0)
		return;
	if (!c->rd_on) {
		if (events & LOOP_ERR)
			tcp_detach(c, "connection error");
		return;
	}
	int err = 0;
	enum fdu_rd r = fdu_read_burst(c->cfd, c->buf, sizeof(c->buf), tcp_sink, c, &c->rd_on,
				       sizeof(c->buf), &err);
	if (r == FDU_RD_EOF)
		tcp_detach(c, "closed by the client");
	else if (r == FDU_RD_ERROR)
		tcp_detach(c, strerror(err));
}

static void tcp_attach(struct tcp *c, int fd, const char *name)
{
	int one = 1;
	/* AT replies are small and latency-bound; Nagle would hold "OK". */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	int rc = loop_io_add(c->t.loop, &c->cio, fd, tcp_mask(c), tcp_on_client, c);
	if (rc < 0) {
		log_warn("tcp: cannot watch client %s: %s; closing it", name, strerror(-rc));
		close(fd);
		return;
	}
	c->cfd = fd;
	snprintf(c->peer, sizeof(c->peer), "%s", name);
	if (c->pend_detach) { /* keep detach/attach in order */
		c->pend_detach = false;
		tr_emit_peer(&c->t, false);
	}
	log_info("tcp: client %s attached", name);
	tr_emit_peer(&c->t, true);
}

/* ---- the listener ------------------------------------------------------- */

static void tcp_on_relisten(void *arg)
{
	struct tcp *c = arg;
	loop_io_want(c->t.loop, &c->lio, LOOP_READ);
}

/* Out of descriptors: the pending connection stays in the backlog and the
 * listener stays readable, so stop watching it for a while instead of
 * spinning. */
static void tcp_pause_accept(struct tcp *c, int err)
{
	log_warn("tcp: cannot accept on %s: %s (out of file descriptors? see ulimit -n); "
		 "pausing accepts for %d ms",
		 c->where, strerror(err), TCP_ACCEPT_PAUSE_MS);
	loop_io_want(c->t.loop, &c->lio, 0);
	loop_timer_start(c->t.loop, &c->relisten, TCP_ACCEPT_PAUSE_MS);
}

static void tcp_on_listen(void *arg, unsigned events)
{
	struct tcp *c = arg;
	for (int i = 0; i < FDU_READ_BUDGET; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(c->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				tcp_pause_accept(c, errno);
			else if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("tcp: accept on %s failed: %s", c->where, strerror(errno));
			return;
		}
		char name[sizeof(c->peer)];
		tcp_fmt_addr((struct sockaddr *)&ss, sl, name, sizeof(name));
		if (c->cfd >= 0) {
			log_info("tcp: refusing %s: %s is attached (one client at a time)", name,
				 c->peer);
			close(fd);
			continue;
		}
		tcp_attach(c, fd, name);
	}
}

static int tcp_bind_one(const struct addrinfo *ai)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);
	if (fd < 0)
		return -errno;
	int one = 1;
	/* Restart right away even while the last client's socket sits in
	 * TIME_WAIT. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

/* Resolving happens once, at start, before the loop runs: a name here is a
 * bind address (normally numeric or from /etc/hosts), never a remote lookup
 * during operation. */
static int tcp_listen(struct tcp *c)
{
	char port[8];
	snprintf(port, sizeof(port), "%u", (unsigned)c->port);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	int g = getaddrinfo(c->host, port, &hints, &res);
	if (g != 0) {
		log_error("tcp: cannot resolve listen address %s: %s", c->host, gai_strerror(g));
		return -EINVAL;
	}
	int fd = -EADDRNOTAVAIL;
	const struct addrinfo *ai;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = tcp_bind_one(ai);
		if (fd >= 0)
			break;
	}
	if (fd < 0) {
		log_error("tcp: cannot listen on %s:%u: %s%s", c->host, (unsigned)c->port,
			  strerror(-fd),
			  fd == -EADDRINUSE ? " (another program, or another espatd, uses "
					      "this port)"
					    : "");
		freeaddrinfo(res);
		return fd;
	}
	if (!tcp_is_loopback(ai->ai_addr))
		log_warn("tcp: listening on %s, which is not loopback: anyone who can reach "
			 "it can drive this modem and open connections from this host",
			 c->host);
	freeaddrinfo(res);
	c->lfd = fd;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	tcp_fmt_addr((struct sockaddr *)&ss, sl, c->where, sizeof(c->where));
	return 0;
}

/* ---- ops ---------------------------------------------------------------- */

static int tcp_start(struct transport *t)
{
	struct tcp *c = (struct tcp *)t;
	if (c->started)
		return -EALREADY;
	int rc = tcp_listen(c);
	if (rc == 0)
		rc = loop_io_add(t->loop, &c->lio, c->lfd, LOOP_READ, tcp_on_listen, c);
	if (rc < 0)
		return rc;
	c->started = true;
	snprintf(t->desc, sizeof(t->desc), "tcp %s", c->where);
	log_info("serial port ready: %s (one client at a time)", t->desc);
	return 0;
}

static ssize_t tcp_write(struct transport *t, const void *b, size_t n)
{
	struct tcp *c = (struct tcp *)t;
	if (c->cfd < 0 || n == 0)
		return (ssize_t)n;
	for (;;) {
		/* MSG_NOSIGNAL: a client gone mid-write must not SIGPIPE us. */
		ssize_t w = send(c->cfd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w >= 0)
			return w;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -EAGAIN;
		tcp_detach(c, strerror(errno));
		return (ssize_t)n; /* the wire is gone: the bytes are too */
	}
}

static void tcp_want_write(struct transport *t, bool on)
{
	struct tcp *c = (struct tcp *)t;
	c->wr_on = on;
	if (c->cfd >= 0)
		loop_io_want(t->loop, &c->cio, tcp_mask(c));
	else if (on)
		loop_timer_start(t->loop, &c->notify, 0);
}

static void tcp_want_read(struct transport *t, bool on)
{
	struct tcp *c = (struct tcp *)t;
	c->rd_on = on;
	if (c->cfd >= 0)
		loop_io_want(t->loop, &c->cio, tcp_mask(c));
}

static int tcp_set_line(struct transport *t, const struct line_cfg *cfg)
{
	return -ENOTSUP;
}

static void tcp_destroy(struct transport *t)
{
	struct tcp *c = (struct tcp *)t;
	if (!c)
		return;
	loop_timer_stop(t->loop, &c->notify);
	loop_timer_stop(t->loop, &c->relisten);
	loop_io_del(t->loop, &c->cio);
	loop_io_del(t->loop, &c->lio);
	if (c->cfd >= 0)
		close(c->cfd);
	if (c->lfd >= 0)
		close(c->lfd);
	free(c);
}

static const struct transport_ops tcp_ops = {
	.kind = "tcp",
	.start = tcp_start,
	.write = tcp_write,
	.want_write = tcp_want_write,
	.want_read = tcp_want_read,
	.set_line = tcp_set_line,
	.destroy = tcp_destroy,
};

int transport_tcp_new(struct transport **out, struct loop *l, const char *hostport)
{
	if (!hostport)
		return -EINVAL;
	struct tcp *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (tcp_parse(hostport, c->host, sizeof(c->host), &c->port) < 0) {
		log_error("tcp: cannot parse \"%s\": use PORT, HOST:PORT or [IPV6]:PORT "
			  "(port 0..65535)",
			  hostport);
		free(c);
		return -EINVAL;
	}
	c->t.ops = &tcp_ops;
	c->t.loop = l;
	c->lfd = c->cfd = -1;
	c->rd_on = true;
	loop_timer_init(&c->notify, tcp_on_notify, c);
	loop_timer_init(&c->relisten, tcp_on_relisten, c);
	bool v6 = strchr(c->host, ':') != NULL;
	snprintf(c->t.desc, sizeof(c->t.desc), "tcp %s%.120s%s:%u", v6 ? "[" : "", c->host,
		 v6 ? "]" : "", (unsigned)c->port);
	*out = &c->t;
	return 0;
}

int transport_tcp_port(struct transport *t)
{
	if (!t || t->ops != &tcp_ops)
		return -EINVAL;
	struct tcp *c = (struct tcp *)t;
	if (c->lfd < 0)
		return c->port;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(c->lfd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}
