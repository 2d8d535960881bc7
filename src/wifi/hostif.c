#include "wifi/hostif.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

/* /proc/net/route: the interface and gateway of the IPv4 default route. */
static int default_route(char *ifname, size_t size, struct in_addr *gw)
{
	FILE *f = fopen("/proc/net/route", "re");
	if (!f)
		return -errno;
	char line[256];
	int rc = -ENOENT;
	if (!fgets(line, sizeof(line), f)) { /* header */
		fclose(f);
		return -ENOENT;
	}
	while (fgets(line, sizeof(line), f)) {
		char name[32];
		unsigned dest, gate, flags;
		if (sscanf(line, "%31s %x %x %x", name, &dest, &gate, &flags) != 4)
			continue;
		if (dest == 0 && (flags & 1u) /* RTF_UP */) {
			snprintf(ifname, size, "%s", name);
			gw->s_addr = gate; /* already network order in the file */
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

static int gateway_of(const char *ifname, struct in_addr *gw)
{
	char name[32];
	if (default_route(name, sizeof(name), gw) == 0 && strcmp(name, ifname) == 0)
		return 0;
	gw->s_addr = 0;
	return -ENOENT;
}

static void read_mac(const char *ifname, struct hostif *h)
{
	char path[96];
	snprintf(path, sizeof(path), "/sys/class/net/%s/address", ifname);
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	unsigned m[6];
	if (fscanf(f, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) == 6) {
		unsigned any = 0;
		for (int i = 0; i < 6; i++) {
			h->mac[i] = (uint8_t)m[i];
			any |= m[i];
		}
		h->has_mac = any != 0;
	}
	fclose(f);
}

static int pick_interface(char *out, size_t size)
{
	struct ifaddrs *ifs;
	if (getifaddrs(&ifs) < 0)
		return -errno;
	int rc = -ENOENT;
	for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
			continue;
		if ((i->ifa_flags & IFF_LOOPBACK) || !(i->ifa_flags & IFF_UP))
			continue;
		snprintf(out, size, "%s", i->ifa_name);
		rc = 0;
		break;
	}
	freeifaddrs(ifs);
	if (rc < 0) {
		snprintf(out, size, "lo");
		rc = 0;
	}
	return rc;
}

int hostif_get(const char *name, struct hostif *h)
{
	memset(h, 0, sizeof(*h));
	struct in_addr gw = { 0 };
	if (name)
		snprintf(h->name, sizeof(h->name), "%s", name);
	else if (default_route(h->name, sizeof(h->name), &gw) < 0)
		pick_interface(h->name, sizeof(h->name));
	gateway_of(h->name, &h->gw);

	struct ifaddrs *ifs;
	if (getifaddrs(&ifs) < 0)
		return -errno;
	bool found = false;
	for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
		if (!i->ifa_addr || strcmp(i->ifa_name, h->name) != 0)
			continue;
		found = true;
		if (i->ifa_addr->sa_family == AF_INET && !h->has_ip) {
			h->ip = ((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr;
			if (i->ifa_netmask)
				h->mask = ((struct sockaddr_in *)(void *)i->ifa_netmask)->sin_addr;
			h->has_ip = true;
		} else if (i->ifa_addr->sa_family == AF_INET6) {
			struct in6_addr a = ((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr;
			if (IN6_IS_ADDR_LINKLOCAL(&a) && !h->has_ip6ll) {
				h->ip6ll = a;
				h->has_ip6ll = true;
			} else if (!IN6_IS_ADDR_LINKLOCAL(&a) && !IN6_IS_ADDR_LOOPBACK(&a) &&
				   !h->has_ip6gl) {
				h->ip6gl = a;
				h->has_ip6gl = true;
			}
		}
	}
	freeifaddrs(ifs);
	if (!found)
		return -ENODEV;
	read_mac(h->name, h);
	return 0;
}
