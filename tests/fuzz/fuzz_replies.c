/* libFuzzer harness for the bytes espatd parses that come from outside the
 * serial line and are its own code (DNS is c-ares', HTTP itself libcurl's).
 * The first byte picks which:
 *   odd          the store file loader;
 *   0 or 6 mod 8 an SNTP reply and the time zone (AT+CIPSNTPCFG);
 *   2 mod 8      the OTA server's answers (cmd_ota.c: the version query's
 *                rom_version, AT+CIPFWVER's version list), as received: cut
 *                at the first NUL;
 *   4 mod 8      an ICMP datagram AT+PING receives (bit 4 of the first byte:
 *                IPv6, bit 5: raw socket; then the id and sequence number
 *                sent, 2 bytes each, then the datagram). */
#include "cmd/ota_parse.h"
#include "net/ping.h"
#include "net/sntp.h"
#include "store/store.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static void store_case(const uint8_t *data, size_t size)
{
	struct store *s;
	if (store_open(&s, NULL) < 0)
		abort();
	store_load_buffer(s, data, size);
	char buf[64];
	int64_t v;
	store_get_str(s, "wifi", "ssid", buf, sizeof(buf));
	store_get_int(s, "sys", "sysmsg", &v);
	store_close(s);
}

static void sntp_case(const uint8_t *data, size_t size)
{
	struct sntp_reply r;
	uint64_t sent = 0;
	if (size >= 9)
		memcpy(&sent, data + 1, 8);
	sntp_parse_reply(data + 1, size - 1, sent, &r);
	int minutes, shown;
	int64_t tz = 0;
	memcpy(&tz, data, size < 8 ? size : 8);
	sntp_tz_parse(tz, &minutes, &shown);
	char out[64];
	sntp_asctime(tz, out, sizeof(out));
}

static void each_version(void *arg, const char *v)
{
	int *n = arg;
	CHECK(ota_version_ok(v));
	CHECK(strlen(v) <= OTA_VERSION_MAX);
	++*n;
}

static void ota_case(const uint8_t *data, size_t size)
{
	/* the body as on_meta() keeps it: exactly its bytes and a NUL */
	char *body = malloc(size + 1);
	if (!body)
		return;
	memcpy(body, data, size);
	body[size] = '\0';
	char v[OTA_VERSION_MAX + 1];
	if (ota_parse_rom_version(body, v) == 0)
		CHECK(ota_version_ok(v) && strstr(body, v));
	int n = 0;
	CHECK(ota_parse_versions(body, each_version, &n) == n);
	free(body);
}

static void ping_case(uint8_t sel, const uint8_t *data, size_t size)
{
	if (size < 4)
		return;
	uint16_t id = (uint16_t)(data[0] << 8 | data[1]);
	uint16_t seq = (uint16_t)(data[2] << 8 | data[3]);
	struct sockaddr_storage dst, from;
	memset(&dst, 0, sizeof(dst));
	memset(&from, 0, sizeof(from));
	if (sel & 0x10) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&dst;
		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&dst;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	}
	from = dst;
	/* exactly the datagram's bytes on the heap: ASan sees any read past */
	size -= 4;
	uint8_t *dg = malloc(size ? size : 1);
	if (!dg)
		return;
	memcpy(dg, data + 4, size);
	bool raw = sel & 0x20;
	if (ping_is_reply(&dst, raw, id, seq, dg, size, &from)) {
		/* a reply has a whole ICMP header carrying our sequence number */
		size_t off = (!(sel & 0x10) && raw) ? (size_t)(dg[0] & 0x0f) * 4 : 0;
		CHECK(size >= off + 8);
		CHECK(dg[off + 6] == (seq >> 8) && dg[off + 7] == (seq & 0xff));
	}
	free(dg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		store_case(data + 1, size - 1);
	else if ((data[0] & 6) == 2)
		ota_case(data + 1, size - 1);
	else if ((data[0] & 6) == 4)
		ping_case(data[0], data + 1, size - 1);
	else
		sntp_case(data, size);
	return 0;
}
