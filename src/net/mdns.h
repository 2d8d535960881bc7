/* A Multicast DNS responder (RFC 6762) publishing one DNS-SD service
 * (RFC 6763), as the module's AT+MDNS does with ESP-IDF's mdns component
 * (protocol.md §2.34): "<hostname>.local" A, "<service>.<proto>.local" PTR,
 * "<instance>.<service>.<proto>.local" SRV and TXT, and the service type
 * enumeration PTR (RFC 6763 §9), on one host interface, UDP 5353, group
 * 224.0.0.251. IPv4 only: the station's AAAA records are not published.
 *
 * Two halves: the pure message codec (parse a query, choose the answers,
 * build responses), unit-tested and fuzzed on byte arrays; and the
 * responder on the event loop, with its own socket. Nothing here formats
 * AT replies. */
#ifndef ESPATD_NET_MDNS_H
#define ESPATD_NET_MDNS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct mdns;

#define MDNS_PORT 5353
#define MDNS_GROUP "224.0.0.251"
#define MDNS_LABEL_MAX 63     /* one DNS label (RFC 1035 §2.3.4) */
#define MDNS_NAME_MAX 255     /* a whole name in wire form (RFC 1035 §2.3.4) */
#define MDNS_TXT_MAX 10       /* AT+MDNS <txt_number> range [1,10] */
#define MDNS_TXT_ITEM_MAX 255 /* one "key=value" character-string (RFC 6763 §6.1) */
/* RFC 6762 §17: up to 9000 bytes for a multicast DNS message. Ten TXT
 * items of 255 bytes and the other records fit well below that. */
#define MDNS_PKT_MAX 9000
/* RFC 6762 §10: 120 s for records naming the host (A, SRV), 75 min for
 * the others (PTR, TXT). */
#define MDNS_TTL_HOST 120u
#define MDNS_TTL_OTHER 4500u
/* RFC 6762 §6.7: legacy unicast answers carry a TTL of at most 10 s. */
#define MDNS_TTL_LEGACY 10u
/* RFC 6762 §8.3: at least two unsolicited responses, one second apart. */
#define MDNS_ANNOUNCE_COUNT 2
#define MDNS_ANNOUNCE_GAP_MS 1000u
/* RFC 6762 §6: a record is multicast at most once a second. */
#define MDNS_RATE_MS 1000u

/* DNS types and classes used here (RFC 1035 §3.2, RFC 2782, RFC 3596). */
enum {
	MDNS_T_A = 1,
	MDNS_T_PTR = 12,
	MDNS_T_TXT = 16,
	MDNS_T_AAAA = 28,
	MDNS_T_SRV = 33,
	MDNS_T_ANY = 255,
	MDNS_C_IN = 1,
	MDNS_C_ANY = 255,
	MDNS_C_TOPBIT = 0x8000, /* QU in a question, cache-flush in a record */
};

/* What is published; every string a NUL-terminated label. */
struct mdns_records {
	char host[MDNS_LABEL_MAX + 1];     /* "espressif" -> espressif.local */
	char instance[MDNS_LABEL_MAX + 1]; /* "my_instance" */
	char service[MDNS_LABEL_MAX + 1];  /* "_iot" */
	char proto[MDNS_LABEL_MAX + 1];    /* "_tcp" */
	uint16_t port;
	struct in_addr ip;                 /* the station's IPv4 address */
	size_t ntxt;
	struct {
		char key[MDNS_TXT_ITEM_MAX + 1];
		char value[MDNS_TXT_ITEM_MAX + 1];
	} txt[MDNS_TXT_MAX];
};

/* 0 when every label is 1..63 bytes, the port non-zero and each TXT item
 * a non-empty key with "key=value" <= 255 bytes; else -EINVAL. */
int mdns_records_check(const struct mdns_records *r);

/* ---- message codec ---------------------------------------------------------- */

/* The published records, as bits of a mask. */
enum {
	MDNS_RR_PTR = 1u << 0,  /* <service>.<proto>.local -> instance */
	MDNS_RR_SRV = 1u << 1,  /* instance -> port, <host>.local */
	MDNS_RR_TXT = 1u << 2,  /* instance -> key=value items */
	MDNS_RR_A = 1u << 3,    /* <host>.local -> ip */
	MDNS_RR_ENUM = 1u << 4, /* _services._dns-sd._udp.local -> service type */
	MDNS_RR_ALL = 0x1f,
};

#define MDNS_MAX_QUESTIONS 16
#define MDNS_MAX_ANSWERS 32

/* Names are kept in wire form, uncompressed: length-prefixed labels ending
 * with the zero-length root label; at most MDNS_NAME_MAX bytes. */
struct mdns_name {
	uint8_t b[MDNS_NAME_MAX];
	size_t len;
};

struct mdns_question {
	struct mdns_name name;
	uint16_t type, cls; /* cls with its top (QU) bit */
};

struct mdns_rr {
	struct mdns_name name;
	uint16_t type, cls;
	uint32_t ttl;
	size_t rdoff, rdlen;      /* the RDATA within the message */
	struct mdns_name target;  /* PTR and SRV: the name in the RDATA */
	uint16_t srv_port;
};

/* A message, its questions and answers (the authority and additional
 * sections are not read). Only the first MDNS_MAX_QUESTIONS questions and
 * MDNS_MAX_ANSWERS answers are kept; the rest are still walked to check the
 * message is whole. */
struct mdns_msg {
	uint16_t id, flags;
	uint16_t qdcount, ancount;
	size_t nq, nan;
	struct mdns_question q[MDNS_MAX_QUESTIONS];
	struct mdns_rr an[MDNS_MAX_ANSWERS];
};

/* Parse buf[0..n). 0, or -EBADMSG for anything malformed: short, a name
 * longer than 255 bytes or with a label over 63, a compression pointer that
 * does not point backwards, a record running past the end. */
int mdns_parse(const uint8_t *buf, size_t n, struct mdns_msg *m);

/* Read the (possibly compressed) name at *off into out; *off moves past it.
 * 0 or -EBADMSG. */
int mdns_read_name(const uint8_t *buf, size_t n, size_t *off, struct mdns_name *out);

/* "a.b.local." text of a wire name for logs and tests (dots inside labels
 * are not escaped). */
void mdns_name_text(const struct mdns_name *nm, char *out, size_t size);

/* The response a query calls for. */
struct mdns_plan {
	unsigned an, ar;  /* records in the answer / additional sections */
	bool legacy;      /* source port not 5353: a one-shot querier (§6.7) */
	bool unicast;     /* answer to the source (legacy, or every question QU, §5.4) */
	uint16_t id;      /* echoed to a legacy querier */
};

/* Decide the answer to the message buf[0..n) that arrived from source port
 * `src_port`: 0 with *p filled (p->an == 0: nothing of ours was asked, or
 * every answer is already known, §7.1); -EBADMSG when it is not a query to
 * answer (malformed, a response, a non-zero opcode or rcode, §18). *m gets
 * the parsed message, which mdns_build needs for a legacy answer. */
int mdns_plan(const struct mdns_records *r, const uint8_t *buf, size_t n, uint16_t src_port,
	      struct mdns_msg *m, struct mdns_plan *p);

/* Build the response for a plan (q: the query, for a legacy answer's ID and
 * questions; may be NULL otherwise). 0 with *len, or -ENOSPC. */
int mdns_build(const struct mdns_records *r, const struct mdns_plan *p, const struct mdns_msg *q,
	       uint8_t *out, size_t size, size_t *len);

/* An unsolicited response with every record (an announcement, §8.3), or
 * with TTL 0 (a goodbye, §10.1). 0 with *len, or -ENOSPC. */
int mdns_build_announce(const struct mdns_records *r, bool goodbye, uint8_t *out, size_t size,
			size_t *len);

/* ---- the responder ------------------------------------------------------------ */

struct mdns_cfg {
	struct loop *loop;
	const char *ifname;   /* the host interface standing in for the station */
	struct in_addr ifaddr; /* its own IPv4 address, the source of what is sent
				* (INADDR_ANY: the kernel's choice) */
	struct in_addr ifmask; /* its netmask: queries from off the link are ignored */
	struct mdns_records rec;
};

/* Open the socket on cfg->ifname, join the group, announce now and once
 * more a second later. 0, or -EINVAL (records), -ENODEV (interface),
 * -ENOMEM, or a socket error such as -EADDRINUSE. */
int mdns_start(struct mdns **out, const struct mdns_cfg *cfg);
/* Stop and free; with `goodbye` first send every record with TTL 0
 * (§10.1). NULL is fine. */
void mdns_stop(struct mdns *m, bool goodbye);

#endif
