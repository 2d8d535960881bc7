#include "net/policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_port(const char *s, uint16_t *lo, uint16_t *hi)
{
	char *end;
	unsigned long a = strtoul(s, &end, 10);
	if (end == s || a < 1 || a > 65535)
		return -EINVAL;
	unsigned long b = a;
	if (*end == '-') {
		const char *t = end + 1;
		b = strtoul(t, &end, 10);
		if (end == t || b < a || b > 65535)
			return -EINVAL;
	}
	if (*end)
		return -EINVAL;
	*lo = (uint16_t)a;
	*hi = (uint16_t)b;
	return 0;
}

int policy_add(struct policy *p, const char *spec)
{
	struct policy_rule r = { .port_lo = 1, .port_hi = 65535 };
	char buf[128];
	if (strlen(spec) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, spec);
	char *addr = buf, *port = NULL;
	if (buf[0] == '[') { /* [v6]/len:port */
		char *close = strchr(buf, ']');
		if (!close)
			return -EINVAL;
		*close = '\0';
		addr = buf + 1;
		char *rest = close + 1;
		if (*rest == '/') {
			char *colon = strchr(rest, ':');
			if (colon) {
				*colon = '\0';
				port = colon + 1;
			}
			memmove(addr + strlen(addr), rest, strlen(rest) + 1);
		} else if (*rest == ':') {
			port = rest + 1;
		} else if (*rest) {
			return -EINVAL;
		}
	} else if (strchr(buf, '.') || !strchr(buf, ':')) { /* IPv4, maybe :port */
		char *colon = strchr(buf, ':');
		if (colon) {
			*colon = '\0';
			port = colon + 1;
		}
	}
	char *slash = strchr(addr, '/');
	int maxlen;
	if (slash)
		*slash = '\0';
	if (inet_pton(AF_INET, addr, r.addr) == 1) {
		r.family = AF_INET;
		maxlen = 32;
	} else if (inet_pton(AF_INET6, addr, r.addr) == 1) {
		r.family = AF_INET6;
		maxlen = 128;
	} else {
		return -EINVAL;
	}
	r.prefix = maxlen;
	if (slash) {
		char *end;
		long v = strtol(slash + 1, &end, 10);
		if (end == slash + 1 || *end || v < 0 || v > maxlen)
			return -EINVAL;
		r.prefix = (int)v;
	}
	if (port && parse_port(port, &r.port_lo, &r.port_hi) < 0)
		return -EINVAL;
	struct policy_rule *n = realloc(p->rules, (p->n + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	p->rules = n;
	p->rules[p->n++] = r;
	return 0;
}

static bool prefix_match(const uint8_t *a, const uint8_t *b, int bits)
{
	int full = bits / 8, rest = bits % 8;
	if (memcmp(a, b, (size_t)full) != 0)
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

bool policy_allows(const struct policy *p, const struct sockaddr_storage *a)
{
	if (!p || p->n == 0)
		return true;
	uint8_t addr[16];
	int family = a->ss_family;
	uint16_t port;
	if (family == AF_INET) {
		const struct sockaddr_in *s = (const void *)a;
		memcpy(addr, &s->sin_addr, 4);
		port = ntohs(s->sin_port);
	} else if (family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)a;
		port = ntohs(s->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr)) {
			family = AF_INET;
			memcpy(addr, &s->sin6_addr.s6_addr[12], 4);
		} else {
			memcpy(addr, &s->sin6_addr, 16);
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < p->n; i++) {
		const struct policy_rule *r = &p->rules[i];
		if (r->family == family && prefix_match(addr, r->addr, r->prefix) &&
		    port >= r->port_lo && port <= r->port_hi)
			return true;
	}
	return false;
}

void policy_free(struct policy *p)
{
	free(p->rules);
	p->rules = NULL;
	p->n = 0;
}
