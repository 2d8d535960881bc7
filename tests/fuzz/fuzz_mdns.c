/* libFuzzer harness for the mDNS responder's packet codec (net/mdns.c,
 * AT+MDNS, protocol.md §2.34): whatever arrives on UDP 5353 goes through
 * mdns_plan (parse, choose answers, known-answer suppression) and, when
 * there is something to answer, mdns_build. The first two bytes pick the
 * source port's kind (legacy or 5353) and how many TXT items the published
 * records have; the rest is the datagram. Checked: a built answer always
 * parses back with its counts, fits the buffer, and a legacy one echoes
 * the ID. */
#include "net/mdns.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static struct mdns_msg q, back;
static uint8_t out[MDNS_PKT_MAX];

static void records(struct mdns_records *r, unsigned ntxt)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->host, sizeof(r->host), "espressif");
	snprintf(r->instance, sizeof(r->instance), "my_instance");
	snprintf(r->service, sizeof(r->service), "_printer");
	snprintf(r->proto, sizeof(r->proto), "_tcp");
	r->port = 35;
	inet_pton(AF_INET, "192.168.200.90", &r->ip);
	r->ntxt = ntxt % (MDNS_TXT_MAX + 1);
	for (size_t i = 0; i < r->ntxt; i++) {
		snprintf(r->txt[i].key, sizeof(r->txt[i].key), "k%zu", i);
		snprintf(r->txt[i].value, sizeof(r->txt[i].value), "value %zu", i);
	}
}

static unsigned bits(unsigned m)
{
	unsigned c = 0;
	for (; m; m &= m - 1)
		c++;
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint16_t port = (data[0] & 1) ? 40000 : MDNS_PORT;
	struct mdns_records r;
	records(&r, data[1]);
	data += 2;
	size -= 2;

	/* The parser alone, and the name reader from every offset. */
	if (mdns_parse(data, size, &q) == 0) {
		CHECK(q.nq <= MDNS_MAX_QUESTIONS && q.nan <= MDNS_MAX_ANSWERS);
		for (size_t i = 0; i < q.nan; i++)
			CHECK(q.an[i].rdoff + q.an[i].rdlen <= size);
	}
	for (size_t off = 0; off < size && off < 64; off++) {
		struct mdns_name nm;
		size_t o = off;
		if (mdns_read_name(data, size, &o, &nm) == 0) {
			CHECK(o > off && o <= size && nm.len >= 1 && nm.len <= MDNS_NAME_MAX);
			char t[MDNS_NAME_MAX * 2];
			mdns_name_text(&nm, t, sizeof(t));
		}
	}

	struct mdns_plan p;
	if (mdns_plan(&r, data, size, port, &q, &p) < 0 || !p.an)
		return 0;
	CHECK((p.an & ~MDNS_RR_ALL) == 0 && (p.ar & p.an) == 0);
	size_t len = 0;
	CHECK(mdns_build(&r, &p, &q, out, sizeof(out), &len) == 0);
	CHECK(len <= sizeof(out));
	CHECK(mdns_parse(out, len, &back) == 0);
	CHECK(back.flags == 0x8400);
	CHECK(back.ancount == bits(p.an));
	if (p.legacy) {
		CHECK(back.id == p.id && back.qdcount == q.nq);
		for (size_t i = 0; i < back.nan; i++)
			CHECK(back.an[i].ttl <= MDNS_TTL_LEGACY);
	} else {
		CHECK(back.id == 0 && back.qdcount == 0);
	}
	return 0;
}
