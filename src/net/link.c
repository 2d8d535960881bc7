#include "net/link.h"

#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_DEFAULT_MS 20000u
/* Each handshake packet may take up to 10 s (protocol.md §2.5). */
#define HANDSHAKE_STEP_MS 10000u
#define READ_CHUNK 65536u

static void on_io(void *arg, unsigned events);
static void sync_want(void *arg);
static void on_conn_timeout(void *arg);
static void on_send_timeout(void *arg);
static void on_send_done(void *arg);
static void on_tls_pending(void *arg);
static void handshake_step(struct link *lk);
static void finish_send(struct link *lk, int err);

void link_init(struct link *lk, int id, struct loop *l, const struct link_events *ev, void *arg)
{
	memset(lk, 0, sizeof(*lk));
	lk->id = id;
	lk->fd = -1;
	lk->loop = l;
	lk->ev = ev;
	lk->ev_arg = arg;
	lk->read_on = true;
	lk->rx_limit = LINK_IPD_MAX;
	lk->opts.linger = -1;
	buf_init(&lk->rx);
	buf_init(&lk->tx);
	loop_timer_init(&lk->conn_timer, on_conn_timeout, lk);
	loop_timer_init(&lk->send_timer, on_send_timeout, lk);
	loop_defer_init(&lk->done, on_send_done, lk);
	loop_defer_init(&lk->want_sync, sync_want, lk);
	loop_timer_init(&lk->tls_timer, on_tls_pending, lk);
}

bool link_in_use(const struct link *lk)
{
	return lk->state != LINK_FREE;
}

void link_addr_str(const struct sockaddr_storage *a, char *out, size_t size)
{
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)a;
		/* An IPv4-mapped peer of a v6 socket is shown as IPv4. */
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], out, (socklen_t)size);
		else
			inet_ntop(AF_INET6, &s6->sin6_addr, out, (socklen_t)size);
	} else if (a->ss_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)a)->sin_addr, out,
			  (socklen_t)size);
	} else {
		snprintf(out, size, "0.0.0.0");
	}
}

uint16_t link_addr_port(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)a)->sin6_port);
	if (a->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)a)->sin_port);
	return 0;
}

static socklen_t addr_len(const struct sockaddr_storage *a)
{
	return a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* epoll reports EPOLLERR and EPOLLHUP whatever the mask asks for: a reset
 * socket whose link reads nothing (passive data waiting for AT+CIPRECVDATA,
 * a full window, a peer-closed link) would wake the loop on every turn. A
 * link that wants no events is out of epoll until it wants some. */
static void io_want(struct link *lk, unsigned want)
{
	if (!want) {
		loop_io_del(lk->loop, &lk->io);
		return;
	}
	if (!lk->io.added) {
		if (loop_io_add(lk->loop, &lk->io, lk->fd, want, on_io, lk) < 0)
			log_warn("link %d: cannot watch its socket", lk->id);
		return;
	}
	loop_io_want(lk->loop, &lk->io, want);
}

/* The epoll mask follows the link's state at the end of the loop turn (a
 * loop_defer), not at every change: AT+CIPRECVDATA frees the window and the
 * read right after it fills it again, and epoll_ctl() is not called twice
 * for nothing (docs/performance.md). Events are only fetched after the
 * deferred work ran, so none is missed. */
static void sync_want(void *arg)
{
	struct link *lk = arg;
	if (lk->fd < 0)
		return;
	unsigned want = 0;
	if (lk->state == LINK_HANDSHAKE) {
		unsigned w = tls_wants(lk->tls);
		want = (w & TLS_WANT_WRITE ? LOOP_WRITE : 0) | (w & TLS_WANT_READ ? LOOP_READ : 0);
		io_want(lk, want ? want : LOOP_READ);
		return;
	}
	if (lk->state == LINK_CONNECTING || buf_used(&lk->tx))
		want |= LOOP_WRITE;
	if ((lk->state == LINK_OPEN) && lk->read_on && buf_used(&lk->rx) < lk->rx_limit)
		want |= LOOP_READ;
	/* TLS may need the other direction to make progress (renegotiation,
	 * post-handshake messages). */
	if (lk->tls && (want & LOOP_READ) && (tls_wants(lk->tls) & TLS_WANT_WRITE))
		want |= LOOP_WRITE;
	/* Bytes already decrypted raise no epoll event: fetch them from the
	 * loop once there is room again. */
	if (lk->tls && (want & LOOP_READ) && tls_pending(lk->tls))
		loop_timer_start(lk->loop, &lk->tls_timer, 0);
	io_want(lk, want);
}

static void update_want(struct link *lk)
{
	if (lk->fd >= 0)
		loop_defer(lk->loop, &lk->want_sync);
}

int link_apply_opts(struct link *lk, const struct link_opts *o)
{
	lk->opts = *o;
	if (lk->fd < 0 || lk->proto == LINK_UDP)
		return 0;
	int on = o->keepalive > 0;
	setsockopt(lk->fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	if (on) {
		int idle = o->keepalive, intvl = 1, cnt = 3; /* §2.5 */
		setsockopt(lk->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
		setsockopt(lk->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
		setsockopt(lk->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	}
	int nd = o->nodelay;
	setsockopt(lk->fd, IPPROTO_TCP, TCP_NODELAY, &nd, sizeof(nd));
	struct linger lg = { .l_onoff = o->linger >= 0, .l_linger = o->linger > 0 ? o->linger : 0 };
	setsockopt(lk->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	return 0;
}

/* "SEND OK" means the stack took the data (§2.9). The module's TCP send
 * buffer is a few KB (lwIP TCP_SND_BUF 5744 on ESP-AT); Linux would take
 * megabytes and answer SEND OK to a peer that stopped reading long ago, so
 * SO_SNDTIMEO and SEND FAIL would never show. Keep it module-sized. */
#define LINK_SNDBUF 8192

static void limit_sndbuf(struct link *lk)
{
	int v = LINK_SNDBUF;
	setsockopt(lk->fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
}

static void reset_buffers(struct link *lk)
{
	buf_reset(&lk->rx);
	buf_reset(&lk->tx);
	lk->dg_head = lk->dg_count = 0;
	lk->sending = false;
	lk->tx_has_dest = false;
}

static int open_socket(struct link *lk, int family, int type)
{
	int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	lk->fd = fd;
	int rc = loop_io_add(lk->loop, &lk->io, fd, 0, on_io, lk);
	if (rc < 0) {
		close(fd);
		lk->fd = -1;
		return rc;
	}
	return 0;
}

static void learn_local_port(struct link *lk)
{
	struct sockaddr_storage a;
	socklen_t len = sizeof(a);
	if (getsockname(lk->fd, (struct sockaddr *)&a, &len) == 0)
		lk->local_port = link_addr_port(&a);
}

static bool is_multicast(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return IN_MULTICAST(ntohl(((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr));
	return IN6_IS_ADDR_MULTICAST(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr);
}

static bool is_broadcast(const struct sockaddr_storage *a)
{
	return a->ss_family == AF_INET &&
	       ((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr == INADDR_BROADCAST;
}

static int udp_setup(struct link *lk, const struct sockaddr_storage *remote,
		     const struct sockaddr_storage *local, uint16_t local_port, int udp_mode)
{
	int one = 1;
	setsockopt(lk->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (is_broadcast(remote))
		setsockopt(lk->fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one));
	struct sockaddr_storage b;
	memset(&b, 0, sizeof(b));
	lk->multicast = is_multicast(remote);
	if (local && !lk->multicast) {
		b = *local;
	} else {
		b.ss_family = remote->ss_family;
	}
	/* A multicast receiver binds the group's port on any address. */
	if (b.ss_family == AF_INET6)
		((struct sockaddr_in6 *)(void *)&b)->sin6_port = htons(local_port);
	else
		((struct sockaddr_in *)(void *)&b)->sin_port = htons(local_port);
	if (bind(lk->fd, (struct sockaddr *)&b, addr_len(&b)) < 0)
		return -errno;
	if (lk->multicast) {
		if (remote->ss_family == AF_INET) {
			struct ip_mreq m = { 0 };
			m.imr_multiaddr = ((const struct sockaddr_in *)(const void *)remote)->sin_addr;
			if (local)
				m.imr_interface = ((const struct sockaddr_in *)(const void *)local)->sin_addr;
			if (setsockopt(lk->fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof(m)) < 0)
				return -errno;
			if (local)
				setsockopt(lk->fd, IPPROTO_IP, IP_MULTICAST_IF, &m.imr_interface,
					   sizeof(m.imr_interface));
		} else {
			struct ipv6_mreq m = { 0 };
			m.ipv6mr_multiaddr = ((const struct sockaddr_in6 *)(const void *)remote)->sin6_addr;
			if (setsockopt(lk->fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &m, sizeof(m)) < 0)
				return -errno;
		}
	}
	/* Remote fixed (mode 0): the kernel then delivers only its datagrams,
	 * as lwIP does for a connected UDP pcb. */
	if (udp_mode == 0 && !lk->multicast && !is_broadcast(remote) &&
	    connect(lk->fd, (const struct sockaddr *)remote, addr_len(remote)) < 0)
		return -errno;
	learn_local_port(lk);
	return 0;
}

int link_connect(struct link *lk, enum link_proto proto, const struct sockaddr_storage *remote,
		 const struct sockaddr_storage *local, uint16_t local_port, int udp_mode,
		 const struct link_opts *opts, uint32_t timeout_ms)
{
	/* An SSL link is made by link_connect_tls(); made here it would
	 * carry its data in the clear. */
	if (proto == LINK_SSL)
		return -EPROTONOSUPPORT;
	reset_buffers(lk);
	lk->proto = proto;
	lk->v6 = remote->ss_family == AF_INET6;
	lk->server_side = false;
	lk->remote = *remote;
	lk->udp_mode = udp_mode;
	lk->udp_changed = false;
	lk->dropped = 0;
	lk->sent_total = lk->recv_total = 0;
	int rc = open_socket(lk, remote->ss_family, proto == LINK_UDP ? SOCK_DGRAM : SOCK_STREAM);
	if (rc < 0)
		return rc;
	if (proto == LINK_UDP) {
		rc = udp_setup(lk, remote, local, local_port, udp_mode);
		if (rc < 0) {
			link_close(lk);
			return rc;
		}
		lk->state = LINK_CONNECTING; /* reported on the next turn */
		loop_timer_start(lk->loop, &lk->conn_timer, 0);
		update_want(lk);
		return 0;
	}
	link_apply_opts(lk, opts);
	limit_sndbuf(lk);
	if (local && bind(lk->fd, (const struct sockaddr *)local, addr_len(local)) < 0) {
		rc = -errno;
		link_close(lk);
		return rc;
	}
	if (connect(lk->fd, (const struct sockaddr *)remote, addr_len(remote)) < 0 &&
	    errno != EINPROGRESS) {
		rc = -errno;
		link_close(lk);
		return rc;
	}
	lk->state = LINK_CONNECTING;
	loop_timer_start(lk->loop, &lk->conn_timer,
			 timeout_ms ? timeout_ms : CONNECT_TIMEOUT_DEFAULT_MS);
	update_want(lk);
	return 0;
}

int link_connect_tls(struct link *lk, const struct sockaddr_storage *remote,
		     const struct sockaddr_storage *local, const struct link_opts *opts,
		     uint32_t timeout_ms, const struct tls_cfg *tls)
{
	int rc = link_connect(lk, LINK_TCP, remote, local, 0, 0, opts, timeout_ms);
	if (rc < 0)
		return rc;
	lk->proto = LINK_SSL;
	rc = tls_new(&lk->tls, lk->fd, tls, lk->tls_why, sizeof(lk->tls_why));
	if (rc < 0) {
		link_close(lk);
		return rc;
	}
	return 0;
}

static void start_handshake(struct link *lk)
{
	lk->state = LINK_HANDSHAKE;
	loop_timer_start(lk->loop, &lk->conn_timer, HANDSHAKE_STEP_MS);
}

int link_adopt(struct link *lk, int fd, const struct link_opts *opts, const struct tls_cfg *tls)
{
	reset_buffers(lk);
	lk->proto = tls ? LINK_SSL : LINK_TCP;
	lk->server_side = true;
	lk->fd = fd;
	socklen_t len = sizeof(lk->remote);
	getpeername(fd, (struct sockaddr *)&lk->remote, &len);
	lk->v6 = lk->remote.ss_family == AF_INET6;
	learn_local_port(lk);
	int rc = loop_io_add(lk->loop, &lk->io, fd, 0, on_io, lk);
	if (rc < 0)
		return rc;
	link_apply_opts(lk, opts);
	limit_sndbuf(lk);
	if (tls) {
		rc = tls_new(&lk->tls, fd, tls, lk->tls_why, sizeof(lk->tls_why));
		if (rc < 0) {
			loop_io_del(lk->loop, &lk->io);
			lk->fd = -1; /* the caller closes fd */
			return rc;
		}
		start_handshake(lk);
		update_want(lk);
		return 0;
	}
	lk->state = LINK_OPEN;
	update_want(lk);
	return 0;
}

void link_close(struct link *lk)
{
	loop_timer_stop(lk->loop, &lk->conn_timer);
	loop_timer_stop(lk->loop, &lk->send_timer);
	loop_defer_cancel(lk->loop, &lk->done);
	loop_defer_cancel(lk->loop, &lk->want_sync);
	loop_timer_stop(lk->loop, &lk->tls_timer);
	if (lk->tls) {
		tls_free(lk->tls); /* close_notify */
		lk->tls = NULL;
	}
	if (lk->fd >= 0) {
		loop_io_del(lk->loop, &lk->io);
		close(lk->fd);
		lk->fd = -1;
	}
	reset_buffers(lk);
	lk->state = LINK_FREE;
}

static void connect_finished(struct link *lk, int err)
{
	loop_timer_stop(lk->loop, &lk->conn_timer);
	if (!err && lk->tls && lk->state == LINK_CONNECTING) {
		/* TCP is up; now TLS. */
		learn_local_port(lk);
		start_handshake(lk);
		handshake_step(lk); /* the ClientHello goes now */
		return;
	}
	if (err) {
		link_close(lk);
	} else {
		lk->state = LINK_OPEN;
		learn_local_port(lk);
		update_want(lk);
	}
	lk->ev->connect_done(lk->ev_arg, lk, err);
}

static void on_conn_timeout(void *arg)
{
	struct link *lk = arg;
	if (lk->state == LINK_HANDSHAKE) {
		snprintf(lk->tls_why, sizeof(lk->tls_why), "TLS handshake: no answer for %u s",
			 HANDSHAKE_STEP_MS / 1000);
		connect_finished(lk, -ETIMEDOUT);
		return;
	}
	if (lk->state != LINK_CONNECTING)
		return;
	connect_finished(lk, lk->proto == LINK_UDP ? 0 : -ETIMEDOUT);
}

static void peer_gone(struct link *lk, int err)
{
	lk->state = LINK_PEER_CLOSED;
	io_want(lk, 0);
	loop_defer_cancel(lk->loop, &lk->want_sync);
	if (lk->sending) /* nothing more can be delivered: the send fails */
		finish_send(lk, err ? err : -EPIPE);
	lk->ev->peer_closed(lk->ev_arg, lk, err);
}

static void on_send_done(void *arg)
{
	struct link *lk = arg;
	lk->ev->send_done(lk->ev_arg, lk, lk->send_err);
}

/* The result always reaches the AT side from the loop (at the end of the
 * turn), never from inside link_send(): the stack answers later on the
 * module too, and callers may start the next send from the event. */
static void finish_send(struct link *lk, int err)
{
	lk->sending = false;
	lk->send_err = err;
	loop_timer_stop(lk->loop, &lk->send_timer);
	buf_reset(&lk->tx);
	update_want(lk);
	loop_defer(lk->loop, &lk->done);
}

static void on_send_timeout(void *arg)
{
	struct link *lk = arg;
	if (!lk->sending)
		return;
	/* SO_SNDTIMEO (AT+CIPTCPOPT): the stack did not take it in time. */
	finish_send(lk, -ETIMEDOUT);
}

static void try_send(struct link *lk)
{
	while (buf_used(&lk->tx)) {
		ssize_t n;
		if (lk->proto == LINK_UDP) {
			const struct sockaddr_storage *d = lk->tx_has_dest ? &lk->tx_dest : &lk->remote;
			bool connected = lk->udp_mode == 0 && !lk->multicast && !is_broadcast(&lk->remote) &&
					 !lk->tx_has_dest;
			n = connected ? send(lk->fd, buf_head(&lk->tx), buf_used(&lk->tx), MSG_NOSIGNAL)
				      : sendto(lk->fd, buf_head(&lk->tx), buf_used(&lk->tx), MSG_NOSIGNAL,
					       (const struct sockaddr *)d, addr_len(d));
		} else if (lk->tls) {
			n = tls_write(lk->tls, buf_head(&lk->tx), buf_used(&lk->tx));
			if (n == -EAGAIN)
				break;
			if (n < 0) {
				finish_send(lk, (int)n);
				return;
			}
		} else {
			n = send(lk->fd, buf_head(&lk->tx), buf_used(&lk->tx), MSG_NOSIGNAL);
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			int err = -errno;
			finish_send(lk, err);
			return;
		}
		lk->sent_total += (uint64_t)n;
		buf_consume(&lk->tx, (size_t)n);
	}
	if (!buf_used(&lk->tx) && lk->sending) {
		finish_send(lk, 0);
		return;
	}
	update_want(lk);
}

int link_send(struct link *lk, const void *p, size_t n, const struct sockaddr_storage *dest)
{
	if (lk->state != LINK_OPEN || lk->sending)
		return -ENOTCONN;
	if (buf_append(&lk->tx, p, n) < 0)
		return -ENOMEM;
	lk->sending = true;
	lk->tx_has_dest = dest != NULL;
	if (dest)
		lk->tx_dest = *dest;
	if (lk->opts.sndtimeo_ms && lk->proto != LINK_UDP)
		loop_timer_start(lk->loop, &lk->send_timer, lk->opts.sndtimeo_ms);
	try_send(lk);
	return 0;
}

static void udp_remote_update(struct link *lk, const struct sockaddr_storage *from)
{
	/* §2.5 <mode>: 1 the remote changes once, to the first other sender;
	 * 2 it follows every sender. */
	if (lk->udp_mode == 2 || (lk->udp_mode == 1 && !lk->udp_changed)) {
		if (memcmp(from, &lk->remote, addr_len(from)) != 0) {
			lk->remote = *from;
			lk->udp_changed = true;
		}
	}
}

static void read_udp(struct link *lk)
{
	static uint8_t dgram[READ_CHUNK];
	for (int i = 0; i < 16 && buf_used(&lk->rx) < lk->rx_limit; i++) {
		/* Active mode buffers one +IPD's worth (rx_limit): a datagram
		 * that would not fit behind those already read waits in the
		 * socket until they went out. Only a full passive window drops
		 * (protocol.md §2.28). */
		if (buf_used(&lk->rx) && lk->rx_limit != LINK_RX_WINDOW) {
			if (lk->dg_count == LINK_DGRAM_MAX)
				break;
			ssize_t next = recv(lk->fd, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
			if (next < 0 || buf_used(&lk->rx) + (size_t)next > lk->rx_limit)
				break;
		}
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(lk->fd, dgram, sizeof(dgram), 0, (struct sockaddr *)&from, &fl);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_debug("link %d: UDP receive error: %s", lk->id, strerror(errno));
			break;
		}
		/* Passive mode: a datagram that does not fit the window is
		 * dropped, as on the module (protocol.md §2.28). Active mode
		 * reads one datagram at a time into an empty buffer. */
		if ((buf_used(&lk->rx) && buf_used(&lk->rx) + (size_t)n > lk->rx_limit) ||
		    lk->dg_count == LINK_DGRAM_MAX || (lk->rx_limit == LINK_RX_WINDOW &&
						       (size_t)n > LINK_RX_WINDOW)) {
			lk->dropped++;
			log_info("link %d: UDP datagram of %zd bytes dropped: receive buffer full "
				 "(%zu bytes waiting for AT+CIPRECVDATA)", lk->id, n, buf_used(&lk->rx));
			continue;
		}
		udp_remote_update(lk, &from);
		unsigned slot = (lk->dg_head + lk->dg_count) % LINK_DGRAM_MAX;
		lk->dgrams[slot].len = (uint32_t)n;
		lk->dgrams[slot].from = from;
		lk->dg_count++;
		buf_append(&lk->rx, dgram, (size_t)n);
		lk->recv_total += (uint64_t)n;
	}
}

static int read_tcp(struct link *lk)
{
	size_t room = lk->rx_limit > buf_used(&lk->rx) ? lk->rx_limit - buf_used(&lk->rx) : 0;
	if (!room)
		return 0;
	uint8_t *dst = buf_reserve(&lk->rx, room);
	if (!dst)
		return -ENOMEM;
	if (lk->tls) {
		ssize_t t = tls_read(lk->tls, dst, room);
		if (t > 0) {
			buf_commit(&lk->rx, (size_t)t);
			lk->recv_total += (uint64_t)t;
			return 0;
		}
		if (t == -EAGAIN)
			return 0;
		if (t < 0)
			log_info("link %d: %s", lk->id, tls_error(lk->tls));
		return t == 0 ? 1 : (int)t;
	}
	ssize_t n = recv(lk->fd, dst, room, 0);
	if (n > 0) {
		buf_commit(&lk->rx, (size_t)n);
		lk->recv_total += (uint64_t)n;
		return 0;
	}
	if (n == 0)
		return 1; /* orderly close */
	if (errno == EAGAIN || errno == EINTR)
		return 0;
	return -errno;
}

static void handshake_step(struct link *lk)
{
	int rc = tls_handshake(lk->tls);
	if (rc == -EAGAIN) {
		loop_timer_start(lk->loop, &lk->conn_timer, HANDSHAKE_STEP_MS);
		update_want(lk);
		return;
	}
	if (rc < 0)
		snprintf(lk->tls_why, sizeof(lk->tls_why), "%s", tls_error(lk->tls));
	else
		log_debug("link %d: %s established%s%s", lk->id, tls_version(lk->tls),
			  tls_alpn(lk->tls) ? ", ALPN " : "", tls_alpn(lk->tls) ? tls_alpn(lk->tls) : "");
	if (rc == 0)
		lk->state = LINK_OPEN;
	loop_timer_stop(lk->loop, &lk->conn_timer);
	if (rc < 0) {
		link_close(lk);
	} else {
		learn_local_port(lk);
		update_want(lk);
	}
	lk->ev->connect_done(lk->ev_arg, lk, rc);
}

static void on_tls_pending(void *arg)
{
	on_io(arg, LOOP_READ);
}

static void on_io(void *arg, unsigned events)
{
	struct link *lk = arg;
	if (lk->state == LINK_HANDSHAKE) {
		handshake_step(lk);
		return;
	}
	if (lk->state == LINK_CONNECTING && lk->proto != LINK_UDP) {
		if (!(events & (LOOP_WRITE | LOOP_ERR)))
			return;
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt(lk->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		connect_finished(lk, -err);
		return;
	}
	if (lk->state != LINK_OPEN)
		return;
	if (events & LOOP_WRITE && buf_used(&lk->tx)) {
		try_send(lk);
		if (lk->state != LINK_OPEN)
			return;
	}
	if (!(events & (LOOP_READ | LOOP_ERR)))
		return;
	size_t before = buf_used(&lk->rx);
	unsigned dg_before = lk->dg_count;
	int rc = 0;
	if (lk->proto == LINK_UDP) {
		read_udp(lk);
	} else {
		rc = read_tcp(lk);
		/* Decrypted bytes may wait inside TLS with nothing on the
		 * socket: take them while there is room. */
		while (rc == 0 && lk->tls && tls_pending(lk->tls) &&
		       buf_used(&lk->rx) < lk->rx_limit)
			rc = read_tcp(lk);
	}
	if (buf_used(&lk->rx) != before || lk->dg_count != dg_before)
		lk->ev->received(lk->ev_arg, lk);
	if (lk->state != LINK_OPEN)
		return; /* closed by the handler */
	if (rc != 0) {
		peer_gone(lk, rc > 0 ? 0 : rc);
		return;
	}
	update_want(lk);
}

void link_set_reading(struct link *lk, bool on, size_t limit)
{
	lk->read_on = on;
	lk->rx_limit = limit;
	update_want(lk);
}

bool link_send_pending(const struct link *lk)
{
	return lk->sending || lk->done.queued;
}

void link_read_now(struct link *lk)
{
	if (lk->state == LINK_OPEN && lk->read_on && buf_used(&lk->rx) < lk->rx_limit)
		on_io(lk, LOOP_READ);
}

size_t link_buffered(const struct link *lk)
{
	return buf_used(&lk->rx);
}

size_t link_next_len(const struct link *lk)
{
	if (lk->proto == LINK_UDP)
		return lk->dg_count ? lk->dgrams[lk->dg_head].len : 0;
	return buf_used(&lk->rx);
}

const struct sockaddr_storage *link_next_from(const struct link *lk)
{
	if (lk->proto == LINK_UDP && lk->dg_count)
		return &lk->dgrams[lk->dg_head].from;
	return &lk->remote;
}

void link_consume(struct link *lk, size_t n)
{
	buf_consume(&lk->rx, n);
	while (lk->proto == LINK_UDP && n && lk->dg_count) {
		struct link_dgram *d = &lk->dgrams[lk->dg_head];
		size_t take = n < d->len ? n : d->len;
		d->len -= (uint32_t)take;
		n -= take;
		if (d->len == 0) {
			lk->dg_head = (lk->dg_head + 1) % LINK_DGRAM_MAX;
			lk->dg_count--;
		}
	}
	update_want(lk);
}
