/* A Simple Network Time Protocol client (RFC 4330) on the event loop, in the
 * manner of lwIP's SNTP app that the module runs: up to three servers by name
 * or address, one request at a time, the next server when one does not
 * answer, a resync every interval. It learns an offset from the host clock
 * and reports it; it never sets any clock itself (design.md §4).
 *
 * Also the pure pieces the SNTP commands need, unit-tested without a network:
 * the 48-byte packet codec and the time zone rules of AT+CIPSNTPCFG
 * (protocol.md §2.21, §2.22). Nothing here formats AT replies. */
#ifndef ESPATD_NET_SNTP_H
#define ESPATD_NET_SNTP_H

#include "net/dns.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct loop;
struct policy;
struct sntp;

#define SNTP_MAX_SERVERS 3
#define SNTP_PACKET_LEN 48
/* lwIP's SNTP_RECV_TIMEOUT / SNTP_RETRY_TIMEOUT (15 s), doubled after every
 * round without an answer up to ten times that (SNTP_RETRY_TIMEOUT_MAX). */
#define SNTP_RECV_TIMEOUT_MS 15000u
#define SNTP_RETRY_MAX_MS 150000u
/* How often to look again when the network is down (no station address). */
#define SNTP_NET_POLL_MS 1000u

/* ---- packet codec ---------------------------------------------------------- */

/* Unix time in nanoseconds <-> the 64-bit NTP timestamp (seconds since 1900
 * and a binary fraction, RFC 4330 §3, with the 2036 era rule). */
uint64_t sntp_ts_from_unix_ns(int64_t unix_ns);
int64_t sntp_ts_to_unix_ns(uint64_t ts);

/* A client request (LI 0, VN 4, mode 3) whose transmit timestamp is `xmt`. */
void sntp_build_request(uint8_t pkt[SNTP_PACKET_LEN], uint64_t xmt);

struct sntp_reply {
	int leap, version, mode, stratum;
	uint64_t orig, recv, xmt; /* T1 echoed, T2, T3 */
};

/* Check a reply to the request whose transmit timestamp was `sent`:
 * 0 and *out filled; -EBADMSG for a packet that is not the answer (too short,
 * not mode 4, another request's timestamp: keep waiting); -EAGAIN for a
 * server that refuses to serve: a kiss-o'-death (stratum 0), an alarm (leap
 * 3), a zero transmit time (try another server); *out is filled then too. */
int sntp_parse_reply(const uint8_t *p, size_t n, uint64_t sent, struct sntp_reply *out);

/* Clock offset (server minus client) in nanoseconds from T1..T4, each as Unix
 * nanoseconds: ((T2 - T1) + (T3 - T4)) / 2 (RFC 4330 §5). */
int64_t sntp_offset_ns(int64_t t1, int64_t t2, int64_t t3, int64_t t4);

/* ---- time zones (AT+CIPSNTPCFG <timezone>) -------------------------------- */

/* <timezone> in either form of the reference: whole hours -12..14, or
 * [-][hh]mm with hh in -12..14 and mm in 0..59 (so 015 is 15, i.e. +00:15;
 * 1245 is +12:45; -500 is -05:00). *minutes: the UTC offset in minutes;
 * *shown: what the query prints, the whole hours of the offset (0 for
 * +00:15, 12 for +12:45). 0, or -EINVAL when the value fits neither form. */
int sntp_tz_parse(int64_t value, int *minutes, int *shown);

/* asctime(3) layout without its trailing newline, for Unix seconds:
 * "Thu Jan  1 00:00:08 1970". `out` needs 32 bytes or more. */
void sntp_asctime(int64_t unix_seconds, char *out, size_t size);

/* ---- the client ------------------------------------------------------------ */

struct sntp_events {
	/* Whether the network is up (the station has an address); while it is
	 * not, the client looks again every SNTP_NET_POLL_MS. */
	bool (*net_ready)(void *arg);
	/* How server names resolve: DNS_PREFER_V4 with IPv6 on, else
	 * DNS_V4_ONLY. */
	enum dns_family (*family)(void *arg);
	/* A good reply: offset_ns = server clock minus host realtime. The
	 * client may be stopped from here. */
	void (*synced)(void *arg, int64_t offset_ns, const struct sockaddr_storage *server);
};

struct sntp_cfg {
	struct loop *loop;
	struct dns *dns;                  /* resolves server names */
	const struct policy *policy;      /* egress policy; NULL allows all */
	uint16_t port;                    /* 123, or --ntp-port */
	const char *servers[SNTP_MAX_SERVERS];
	size_t nservers;                  /* 1..3 */
	uint32_t interval_s;              /* resync interval */
};

/* Start: the first request goes out now (or as soon as the network is up).
 * The server names are copied. 0 or -ENOMEM / -EINVAL. */
int sntp_start(struct sntp **out, const struct sntp_cfg *cfg, const struct sntp_events *ev,
	       void *arg);
/* A new resync interval, counted from now while waiting for the next sync. */
void sntp_set_interval(struct sntp *s, uint32_t interval_s);
/* Stop and free; nothing is called back afterwards. NULL is fine. */
void sntp_stop(struct sntp *s);

#endif
