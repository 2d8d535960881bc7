/* Asynchronous name resolution on the event loop (c-ares), with the servers
 * of AT+CIPDNS or the system's, and /etc/hosts (protocol.md §2.4, §2.32). */
#ifndef ESPATD_NET_DNS_H
#define ESPATD_NET_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct loop;
struct dns;
struct dns_query;

/* AT+CIPDOMAIN <ip network>: 1 prefer IPv4 (fall back to IPv6), 2 IPv4
 * only, 3 IPv6 only. DNS_PREFER_V6 is for internal use (e.g. "TCPv6"). */
enum dns_family { DNS_PREFER_V4 = 1, DNS_V4_ONLY = 2, DNS_V6_ONLY = 3, DNS_PREFER_V6 = 4 };

#define DNS_MAX_ADDRS 8

struct dns_result {
	size_t n;
	struct sockaddr_storage addr[DNS_MAX_ADDRS]; /* port 0; preferred family first */
};

/* status: 0, or -ENOENT (no such name / no address of the family),
 * -ETIMEDOUT, -ECONNREFUSED (server unreachable), -EINVAL (bad name). */
typedef void (*dns_cb)(void *arg, int status, const struct dns_result *res);

int dns_new(struct dns **out, struct loop *l);
void dns_free(struct dns *d);
/* n == 0: the system's servers (/etc/resolv.conf). Otherwise up to 3
 * numeric IPv4/IPv6 addresses, optionally "addr:port" / "[v6]:port" (tests
 * run servers on high ports). Returns 0 or -EINVAL. */
int dns_set_servers(struct dns *d, const char *const *servers, size_t n);
/* Start a lookup. A numeric address completes without a query. The callback
 * always runs later from the loop, never inside dns_resolve(). timeout_ms 0 =
 * the resolver's default. Returns NULL only on out-of-memory. */
struct dns_query *dns_resolve(struct dns *d, const char *name, enum dns_family fam,
			      uint32_t timeout_ms, dns_cb cb, void *arg);
/* The callback will not run. */
void dns_cancel(struct dns_query *q);

#endif
