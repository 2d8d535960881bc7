/* SNTP client (RFC 4330) and the time zone rules of AT+CIPSNTPCFG.
 *
 * One request at a time, as lwIP's sntp.c does: resolve the current server,
 * send a 48-byte client request from a connected UDP socket, wait up to
 * SNTP_RECV_TIMEOUT_MS for the answer. A server that does not answer (or
 * cannot be resolved, is refused by the egress policy, or answers with a
 * kiss-o'-death) hands over to the next one; after a whole round of failures
 * the client waits a retry time that doubles up to SNTP_RETRY_MAX_MS. After a
 * good answer the next request goes out one interval later.
 *
 * Differences from the module, all invisible on the serial line except in
 * timing: a refused port (ICMP port unreachable) fails the server at once
 * instead of after 15 s, and the first request goes out without lwIP's random
 * start-up delay (up to 5 s in ESP-IDF). */
#include "net/sntp.h"

#include "core/log.h"
#include "core/loop.h"
#include "net/policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Seconds from 1900-01-01 (NTP era 0) to 1970-01-01. */
#define NTP_UNIX_DELTA 2208988800LL
#define NS_PER_S 1000000000LL

/* ---- packet codec ---------------------------------------------------------- */

uint64_t sntp_ts_from_unix_ns(int64_t unix_ns)
{
	int64_t sec = unix_ns / NS_PER_S, ns = unix_ns % NS_PER_S;
	if (ns < 0) {
		ns += NS_PER_S;
		sec--;
	}
	/* Era wraps every 2^32 s: 2036-02-07 is seconds 0 of era 1. */
	uint32_t s = (uint32_t)(uint64_t)(sec + NTP_UNIX_DELTA);
	uint32_t frac = (uint32_t)(((uint64_t)ns << 32) / (uint64_t)NS_PER_S);
	return ((uint64_t)s << 32) | frac;
}

int64_t sntp_ts_to_unix_ns(uint64_t ts)
{
	uint32_t s = (uint32_t)(ts >> 32), frac = (uint32_t)ts;
	/* RFC 4330 §3: with the top bit clear the time is in 2036-2104. */
	int64_t sec = (int64_t)s - NTP_UNIX_DELTA;
	if (!(s & 0x80000000u))
		sec += 0x100000000LL;
	int64_t ns = (int64_t)(((uint64_t)frac * (uint64_t)NS_PER_S + 0x80000000u) >> 32);
	return sec * NS_PER_S + ns;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

void sntp_build_request(uint8_t pkt[SNTP_PACKET_LEN], uint64_t xmt)
{
	memset(pkt, 0, SNTP_PACKET_LEN);
	pkt[0] = (0u << 6) | (4u << 3) | 3u; /* LI 0, VN 4, mode 3 (client) */
	put64(pkt + 40, xmt);
}

int sntp_parse_reply(const uint8_t *p, size_t n, uint64_t sent, struct sntp_reply *out)
{
	if (n < SNTP_PACKET_LEN)
		return -EBADMSG;
	struct sntp_reply r;
	r.leap = p[0] >> 6;
	r.version = (p[0] >> 3) & 7;
	r.mode = p[0] & 7;
	r.stratum = p[1];
	r.orig = get64(p + 24);
	r.recv = get64(p + 32);
	r.xmt = get64(p + 40);
	/* Mode 4 (server) to our very request (RFC 4330 §5). */
	if (r.mode != 4 || r.version < 1 || r.orig != sent)
		return -EBADMSG;
	*out = r;
	/* Kiss-o'-death, unsynchronised server, or no time: ask another. */
	if (r.stratum == 0 || r.leap == 3 || r.xmt == 0)
		return -EAGAIN;
	return 0;
}

int64_t sntp_offset_ns(int64_t t1, int64_t t2, int64_t t3, int64_t t4)
{
	/* Halve each difference first: no overflow for any sane times. */
	return (t2 - t1) / 2 + (t3 - t4) / 2;
}

/* ---- time zones ------------------------------------------------------------ */

int sntp_tz_parse(int64_t value, int *minutes, int *shown)
{
	/* First form: whole hours, UTC-12 .. UTC+14. */
	if (value >= -12 && value <= 14) {
		*minutes = (int)value * 60;
		*shown = (int)value;
		return 0;
	}
	/* Second form: [-][hh]mm. The integer parser has already dropped any
	 * leading zero, so 015 arrives as 15: +00:15 (seed reference). Range
	 * first, so that no value can overflow the negation (found by
	 * fuzzing). */
	if (value < -1259 || value > 1459)
		return -EINVAL;
	int64_t a = value < 0 ? -value : value;
	int64_t hh = a / 100, mm = a % 100;
	if (mm > 59 || (value < 0 ? hh > 12 : hh > 14))
		return -EINVAL;
	int sign = value < 0 ? -1 : 1;
	*minutes = sign * (int)(hh * 60 + mm);
	*shown = sign * (int)hh; /* the query shows whole hours: 0 for +00:15 */
	return 0;
}

void sntp_asctime(int64_t unix_seconds, char *out, size_t size)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t t = (time_t)unix_seconds;
	struct tm tm;
	if (!gmtime_r(&t, &tm)) {
		snprintf(out, size, "???");
		return;
	}
	/* asctime(3): "%.3s %.3s%3d %.2d:%.2d:%.2d %d\n", without the \n. */
	snprintf(out, size, "%.3s %.3s%3d %.2d:%.2d:%.2d %d", days[tm.tm_wday % 7],
		 months[tm.tm_mon % 12], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 tm.tm_year + 1900);
}

/* ---- the client ------------------------------------------------------------ */

enum sntp_state { ST_WAIT, ST_RESOLVING, ST_REQUEST };

struct sntp {
	struct loop *loop;
	struct dns *dns;
	const struct policy *policy;
	uint16_t port;
	char *servers[SNTP_MAX_SERVERS];
	size_t nservers;
	uint32_t interval_s;
	struct sntp_events ev;
	void *arg;

	enum sntp_state state;
	bool resync_wait;      /* ST_WAIT for the next interval's sync */
	size_t cur;            /* server in use */
	size_t fails;          /* failures since the last answer, this round */
	uint32_t retry_ms;
	struct loop_timer next;    /* the next attempt */
	struct loop_timer timeout; /* the answer to the request in flight */
	struct dns_query *q;
	int fd;
	struct loop_io io;
	struct sockaddr_storage addr;
	uint64_t sent;         /* transmit timestamp of the request */
	int64_t t1;            /* host realtime at sending, ns */
};

static int64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void addr_str(const struct sockaddr_storage *a, char *out, size_t size)
{
	const void *p;
	if (a->ss_family == AF_INET6)
		p = &((const struct sockaddr_in6 *)(const void *)a)->sin6_addr;
	else
		p = &((const struct sockaddr_in *)(const void *)a)->sin_addr;
	if (!inet_ntop(a->ss_family, p, out, (socklen_t)size))
		snprintf(out, size, "?");
}

static void close_socket(struct sntp *s)
{
	if (s->fd >= 0) {
		loop_io_del(s->loop, &s->io);
		close(s->fd);
		s->fd = -1;
	}
}

static void attempt(void *arg);

/* Wait `ms`, then try (again). */
static void wait_then_try(struct sntp *s, uint64_t ms)
{
	s->state = ST_WAIT;
	s->resync_wait = false;
	loop_timer_start(s->loop, &s->next, ms);
}

/* The current server gave no usable answer: the next one now, or, after a
 * whole round of failures, the retry time. */
static void server_failed(struct sntp *s)
{
	close_socket(s);
	loop_timer_stop(s->loop, &s->timeout);
	s->cur = (s->cur + 1) % s->nservers;
	if (++s->fails < s->nservers) {
		wait_then_try(s, 0);
		return;
	}
	s->fails = 0;
	log_info("sntp: no usable answer from any server; next try in %u s", (unsigned)(s->retry_ms / 1000));
	wait_then_try(s, s->retry_ms);
	s->retry_ms = s->retry_ms * 2 > SNTP_RETRY_MAX_MS ? SNTP_RETRY_MAX_MS : s->retry_ms * 2;
}

static void request_timeout(void *arg)
{
	struct sntp *s = arg;
	log_info("sntp: no answer from %s within %u s", s->servers[s->cur],
		 (unsigned)(SNTP_RECV_TIMEOUT_MS / 1000));
	server_failed(s);
}

static void on_readable(void *arg, unsigned events)
{
	struct sntp *s = arg;
	uint8_t buf[128];
	for (;;) {
		ssize_t n = recv(s->fd, buf, sizeof(buf), 0);
		int64_t t4 = realtime_ns();
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* ECONNREFUSED: nothing listens there (ICMP port unreachable). */
			log_info("sntp: %s: %s", s->servers[s->cur], strerror(errno));
			server_failed(s);
			return;
		}
		struct sntp_reply r;
		int rc = sntp_parse_reply(buf, (size_t)n, s->sent, &r);
		if (rc == -EBADMSG) {
			log_debug("sntp: ignoring a packet from %s that is not the answer",
				  s->servers[s->cur]);
			continue;
		}
		if (rc < 0) {
			log_info("sntp: %s will not serve (stratum %d, leap %d)", s->servers[s->cur],
				 r.stratum, r.leap);
			server_failed(s);
			return;
		}
		int64_t off = sntp_offset_ns(s->t1, sntp_ts_to_unix_ns(r.recv),
					     sntp_ts_to_unix_ns(r.xmt), t4);
		struct sockaddr_storage from = s->addr;
		close_socket(s);
		loop_timer_stop(s->loop, &s->timeout);
		s->fails = 0;
		s->retry_ms = SNTP_RECV_TIMEOUT_MS;
		wait_then_try(s, (uint64_t)s->interval_s * 1000u);
		s->resync_wait = true;
		/* Last: the callback may stop (free) the client. */
		s->ev.synced(s->arg, off, &from);
		return;
	}
}

static int send_request(struct sntp *s)
{
	int fd = socket(s->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
	if (fd < 0)
		return -errno;
	socklen_t len = s->addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						      : sizeof(struct sockaddr_in);
	/* Connected: only this server's datagrams arrive, and a closed port
	 * shows up as ECONNREFUSED. */
	if (connect(fd, (const struct sockaddr *)&s->addr, len) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	uint8_t pkt[SNTP_PACKET_LEN];
	s->t1 = realtime_ns();
	s->sent = sntp_ts_from_unix_ns(s->t1);
	sntp_build_request(pkt, s->sent);
	if (send(fd, pkt, sizeof(pkt), 0) != (ssize_t)sizeof(pkt)) {
		int e = errno ? errno : EIO;
		close(fd);
		return -e;
	}
	s->fd = fd;
	int rc = loop_io_add(s->loop, &s->io, fd, LOOP_READ, on_readable, s);
	if (rc < 0) {
		close(fd);
		s->fd = -1;
		return rc;
	}
	return 0;
}

static void resolved(void *arg, int status, const struct dns_result *res)
{
	struct sntp *s = arg;
	s->q = NULL;
	const char *name = s->servers[s->cur];
	if (status < 0 || !res || res->n == 0) {
		log_info("sntp: cannot resolve %s: %s", name,
			 status == -ETIMEDOUT ? "DNS timeout" : "unknown host");
		server_failed(s);
		return;
	}
	s->addr = res->addr[0];
	if (s->addr.ss_family == AF_INET6)
		((struct sockaddr_in6 *)(void *)&s->addr)->sin6_port = htons(s->port);
	else
		((struct sockaddr_in *)(void *)&s->addr)->sin_port = htons(s->port);
	char ip[INET6_ADDRSTRLEN];
	addr_str(&s->addr, ip, sizeof(ip));
	if (!policy_allows(s->policy, &s->addr)) {
		log_warn("sntp: %s (%s) port %u refused by the egress policy (--allow)", name, ip,
			 (unsigned)s->port);
		server_failed(s);
		return;
	}
	int rc = send_request(s);
	if (rc < 0) {
		log_info("sntp: cannot send to %s (%s): %s", name, ip, strerror(-rc));
		server_failed(s);
		return;
	}
	log_debug("sntp: request sent to %s (%s) port %u", name, ip, (unsigned)s->port);
	s->state = ST_REQUEST;
	loop_timer_start(s->loop, &s->timeout, SNTP_RECV_TIMEOUT_MS);
}

static void attempt(void *arg)
{
	struct sntp *s = arg;
	if (s->ev.net_ready && !s->ev.net_ready(s->arg)) {
		/* No network yet: look again soon, without counting a failure. */
		wait_then_try(s, SNTP_NET_POLL_MS);
		return;
	}
	enum dns_family fam = s->ev.family ? s->ev.family(s->arg) : DNS_V4_ONLY;
	s->state = ST_RESOLVING;
	s->q = dns_resolve(s->dns, s->servers[s->cur], fam, 0, resolved, s);
	if (!s->q) {
		log_warn("sntp: out of memory");
		server_failed(s);
	}
}

int sntp_start(struct sntp **out, const struct sntp_cfg *cfg, const struct sntp_events *ev,
	       void *arg)
{
	if (cfg->nservers < 1 || cfg->nservers > SNTP_MAX_SERVERS || !ev->synced)
		return -EINVAL;
	struct sntp *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->loop = cfg->loop;
	s->dns = cfg->dns;
	s->policy = cfg->policy;
	s->port = cfg->port ? cfg->port : 123;
	s->interval_s = cfg->interval_s;
	s->ev = *ev;
	s->arg = arg;
	s->fd = -1;
	s->retry_ms = SNTP_RECV_TIMEOUT_MS;
	loop_timer_init(&s->next, attempt, s);
	loop_timer_init(&s->timeout, request_timeout, s);
	for (size_t i = 0; i < cfg->nservers; i++) {
		s->servers[i] = strdup(cfg->servers[i]);
		if (!s->servers[i]) {
			s->nservers = i;
			sntp_stop(s);
			return -ENOMEM;
		}
	}
	s->nservers = cfg->nservers;
	wait_then_try(s, 0);
	*out = s;
	return 0;
}

void sntp_set_interval(struct sntp *s, uint32_t interval_s)
{
	if (!s)
		return;
	s->interval_s = interval_s;
	/* Waiting for a resync: the new interval counts from now. A retry or
	 * a request in progress goes on unchanged. */
	if (s->state == ST_WAIT && s->resync_wait) {
		wait_then_try(s, (uint64_t)interval_s * 1000u);
		s->resync_wait = true;
	}
}

void sntp_stop(struct sntp *s)
{
	if (!s)
		return;
	loop_timer_stop(s->loop, &s->next);
	loop_timer_stop(s->loop, &s->timeout);
	if (s->q)
		dns_cancel(s->q);
	close_socket(s);
	for (size_t i = 0; i < s->nservers; i++)
		free(s->servers[i]);
	free(s);
}
