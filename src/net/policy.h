/* Egress policy (--allow): which remote addresses and ports the MCU may
 * reach through this host. No rule: everything is allowed; with rules,
 * anything they do not name is refused. */
#ifndef ESPATD_NET_POLICY_H
#define ESPATD_NET_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct policy_rule {
	int family;          /* AF_INET / AF_INET6 */
	uint8_t addr[16];
	int prefix;
	uint16_t port_lo, port_hi;
};

struct policy {
	struct policy_rule *rules;
	size_t n;
};

/* "CIDR[:PORT[-PORT]]": 10.0.0.0/8, 127.0.0.1:8000, [::1]:80-90, ::/0.
 * An address without /len means that one host. Returns 0 or -EINVAL. */
int policy_add(struct policy *p, const char *spec);
bool policy_allows(const struct policy *p, const struct sockaddr_storage *a);
void policy_free(struct policy *p);

#endif
