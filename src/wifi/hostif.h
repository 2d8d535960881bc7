/* The host's network interface that stands in for the station (design.md §4):
 * the interface of the default route, or the one named by --netif. */
#ifndef ESPATD_WIFI_HOSTIF_H
#define ESPATD_WIFI_HOSTIF_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

struct hostif {
	char name[32];
	struct in_addr ip, gw, mask;
	bool has_ip;
	struct in6_addr ip6ll, ip6gl;
	bool has_ip6ll, has_ip6gl;
	uint8_t mac[6];
	bool has_mac;
};

/* Fill *h for `name` (NULL = default route's interface, else the first
 * non-loopback interface with IPv4, else "lo"). Returns 0 or -errno. */
int hostif_get(const char *name, struct hostif *h);

#endif
