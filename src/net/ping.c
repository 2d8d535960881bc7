/* ICMP echo on the event loop.
 *
 * Socket choice, per attempt: SOCK_DGRAM/IPPROTO_ICMP{,V6} (Linux "ping
 * sockets": no privilege, allowed when the process's group is inside
 * net.ipv4.ping_group_range, which also governs IPv6), else SOCK_RAW (needs
 * CAP_NET_RAW, e.g. root or `setcap cap_net_raw+ep espatd`). With a ping
 * socket the kernel picks the identifier and hands us only our replies; with
 * a raw socket we see every ICMP packet and keep the echo reply whose
 * identifier, sequence number and source match. */
#include "net/ping.h"

#include "core/log.h"
#include "core/loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ICMP4_ECHO_REQUEST 8
#define ICMP4_ECHO_REPLY 0
#define ICMP6_ECHO_REQ 128
#define ICMP6_ECHO_REP 129

struct ping {
	struct loop *loop;
	struct sockaddr_storage dst;
	int fd;
	bool raw;
	bool denied;           /* no socket could be opened: time out */
	uint16_t id, seq;
	uint64_t sent_us;
	struct loop_io io;
	struct loop_timer timer;
	ping_cb cb;
	void *arg;
};

static uint16_t next_seq;

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint16_t ping_checksum(const void *data, size_t n)
{
	const uint8_t *p = data;
	uint32_t sum = 0;
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Free the ping and report. */
static void finish(struct ping *p, int status, uint64_t rtt_us)
{
	ping_cb cb = p->cb;
	void *arg = p->arg;
	ping_cancel(p);
	cb(arg, status, rtt_us);
}

static void timed_out(void *arg)
{
	struct ping *p = arg;
	finish(p, p->denied ? -EPERM : -ETIMEDOUT, 0);
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)(const void *)b)->sin_addr.s_addr;
	return memcmp(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
		      &((const struct sockaddr_in6 *)(const void *)b)->sin6_addr,
		      sizeof(struct in6_addr)) == 0;
}

bool ping_is_reply(const struct sockaddr_storage *dst, bool raw, uint16_t id_sent,
		   uint16_t seq_sent, const uint8_t *buf, size_t n,
		   const struct sockaddr_storage *from)
{
	bool v6 = dst->ss_family == AF_INET6;
	const uint8_t *icmp = buf;
	if (!v6 && raw) {
		/* Raw IPv4 sockets deliver the IP header too. */
		if (n < 20)
			return false;
		size_t ihl = (size_t)(buf[0] & 0x0f) * 4;
		if (ihl < 20 || n < ihl)
			return false;
		icmp += ihl;
		n -= ihl;
	}
	if (n < 8 || icmp[0] != (v6 ? ICMP6_ECHO_REP : ICMP4_ECHO_REPLY))
		return false;
	uint16_t id = (uint16_t)(icmp[4] << 8 | icmp[5]);
	uint16_t seq = (uint16_t)(icmp[6] << 8 | icmp[7]);
	if (seq != seq_sent)
		return false;
	/* A ping socket only sees its own replies, with the kernel's id. */
	if (raw && (id != id_sent || !same_addr(from, dst)))
		return false;
	return true;
}

/* Our echo reply in this datagram? */
static bool is_our_reply(const struct ping *p, const uint8_t *buf, size_t n,
			 const struct sockaddr_storage *from)
{
	return ping_is_reply(&p->dst, p->raw, p->id, p->seq, buf, n, from);
}

static void readable(void *arg, unsigned events)
{
	struct ping *p = arg;
	for (;;) {
		uint8_t buf[1500];
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		memset(&from, 0, sizeof(from));
		ssize_t n = recvfrom(p->fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR)
				continue;
			/* An ICMP error about our request (unreachable...): the
			 * module just sees no reply and times out. */
			log_debug("ping: %s", strerror(errno));
			continue;
		}
		if (is_our_reply(p, buf, (size_t)n, &from)) {
			uint64_t rtt = mono_us() - p->sent_us;
			finish(p, 0, rtt);
			return;
		}
	}
}

static void log_denied(int af, int dgram_err, int raw_err)
{
	static bool explained;
	if (raw_err != EPERM && raw_err != EACCES) {
		log_warn("ping: cannot open an ICMP%s socket: %s; AT+PING answers +PING:TIMEOUT",
			 af == AF_INET6 ? "v6" : "", strerror(raw_err));
		return;
	}
	if (explained) {
		log_warn("ping: no right to send ICMP echo; AT+PING answers +PING:TIMEOUT "
			 "(see the first such message for the fix)");
		return;
	}
	explained = true;
	log_warn("ping: this process may not send ICMP echo, so AT+PING answers +PING:TIMEOUT. "
		 "An unprivileged ICMP socket was refused (%s: the process's group is outside "
		 "net.ipv4.ping_group_range) and a raw socket needs CAP_NET_RAW. Grant either: "
		 "sysctl -w net.ipv4.ping_group_range=\"0 2147483647\" (all groups; persist it in "
		 "/etc/sysctl.d/), or setcap cap_net_raw+ep on the espatd binary",
		 strerror(dgram_err));
}

static int open_socket(struct ping *p)
{
	int af = p->dst.ss_family;
	int proto = af == AF_INET6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
	int fd = socket(af, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
	if (fd >= 0) {
		p->raw = false;
		return fd;
	}
	int dgram_err = errno;
	fd = socket(af, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
	if (fd < 0) {
		log_denied(af, dgram_err, errno);
		return -1;
	}
	p->raw = true;
	if (af == AF_INET6) {
		/* Only echo replies, not every neighbour advertisement. */
		struct icmp6_filter f;
		ICMP6_FILTER_SETBLOCKALL(&f);
		ICMP6_FILTER_SETPASS(ICMP6_ECHO_REP, &f);
		setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &f, sizeof(f));
	}
	return fd;
}

static void send_echo(struct ping *p)
{
	uint8_t pkt[8 + PING_DATA_SIZE];
	bool v6 = p->dst.ss_family == AF_INET6;
	memset(pkt, 0, sizeof(pkt));
	pkt[0] = v6 ? ICMP6_ECHO_REQ : ICMP4_ECHO_REQUEST;
	pkt[4] = (uint8_t)(p->id >> 8);
	pkt[5] = (uint8_t)p->id;
	pkt[6] = (uint8_t)(p->seq >> 8);
	pkt[7] = (uint8_t)p->seq;
	for (size_t i = 0; i < PING_DATA_SIZE; i++)
		pkt[8 + i] = (uint8_t)i; /* lwIP's ping fills 0, 1, 2 ... */
	if (!v6) {
		/* The kernel sums ICMPv6 itself (and rewrites this for ping
		 * sockets). */
		uint16_t c = ping_checksum(pkt, sizeof(pkt));
		pkt[2] = (uint8_t)(c >> 8);
		pkt[3] = (uint8_t)c;
	}
	socklen_t len = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	p->sent_us = mono_us();
	if (sendto(p->fd, pkt, sizeof(pkt), 0, (const struct sockaddr *)&p->dst, len) < 0) {
		/* No route, a blackhole...: no reply will come; the module would
		 * wait for its timeout too. */
		log_info("ping: cannot send the echo request: %s", strerror(errno));
	}
}

int ping_start(struct ping **out, struct loop *l, const struct sockaddr_storage *dst,
	       uint32_t timeout_ms, ping_cb cb, void *arg)
{
	if (dst->ss_family != AF_INET && dst->ss_family != AF_INET6)
		return -EAFNOSUPPORT;
	struct ping *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->loop = l;
	p->dst = *dst;
	if (p->dst.ss_family == AF_INET6)
		((struct sockaddr_in6 *)(void *)&p->dst)->sin6_port = 0;
	else
		((struct sockaddr_in *)(void *)&p->dst)->sin_port = 0;
	p->cb = cb;
	p->arg = arg;
	p->id = (uint16_t)(getpid() ^ 0x4553); /* raw sockets only */
	p->seq = ++next_seq;
	p->fd = -1;
	loop_timer_init(&p->timer, timed_out, p);
	p->fd = open_socket(p);
	if (p->fd < 0) {
		p->denied = true;
	} else if (loop_io_add(l, &p->io, p->fd, LOOP_READ, readable, p) < 0) {
		close(p->fd);
		p->fd = -1;
		free(p);
		return -ENOMEM;
	} else {
		send_echo(p);
	}
	loop_timer_start(l, &p->timer, timeout_ms);
	*out = p;
	return 0;
}

void ping_cancel(struct ping *p)
{
	if (!p)
		return;
	loop_timer_stop(p->loop, &p->timer);
	if (p->fd >= 0) {
		loop_io_del(p->loop, &p->io);
		close(p->fd);
	}
	free(p);
}
