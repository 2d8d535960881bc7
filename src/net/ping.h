/* One ICMP echo request and its reply (AT+PING, protocol.md §2.31), on the
 * event loop. IPv4 and IPv6. Uses an unprivileged ICMP socket when the
 * system allows one (net.ipv4.ping_group_range covers the process's group),
 * else a raw socket (CAP_NET_RAW). With neither, the ping cannot be sent: it
 * ends as a timeout would, and the log says why and how to grant the right.
 * Never runs an external program. */
#ifndef ESPATD_NET_PING_H
#define ESPATD_NET_PING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct loop;
struct ping;

/* Bytes of payload after the 8-byte ICMP header (lwIP's PING_DATA_SIZE). */
#define PING_DATA_SIZE 32

/* status: 0 with the round trip in microseconds; -ETIMEDOUT (no reply in
 * time); -EPERM (no right to send ICMP; reported after the same wait). The
 * ping is already freed when this runs. */
typedef void (*ping_cb)(void *arg, int status, uint64_t rtt_us);

/* Send one echo request to dst (AF_INET or AF_INET6; the port is ignored)
 * and wait up to timeout_ms. The callback always runs later from the loop.
 * Returns 0, -EAFNOSUPPORT or -ENOMEM. */
int ping_start(struct ping **out, struct loop *l, const struct sockaddr_storage *dst,
	       uint32_t timeout_ms, ping_cb cb, void *arg);
/* The callback will not run. NULL is fine. */
void ping_cancel(struct ping *p);

/* Is buf[0..n), a datagram recvfrom() gave from `from`, the echo reply to
 * the request with identifier id and sequence number seq sent to dst? raw:
 * it came from a raw socket (IPv4: the IP header comes first; any host's
 * ICMP arrives, so id and source must match too); else from a ping socket
 * (ICMP only, the kernel's id, only our own replies). */
bool ping_is_reply(const struct sockaddr_storage *dst, bool raw, uint16_t id, uint16_t seq,
		   const uint8_t *buf, size_t n, const struct sockaddr_storage *from);

/* The Internet checksum (RFC 1071) of n bytes. */
uint16_t ping_checksum(const void *p, size_t n);

#endif
