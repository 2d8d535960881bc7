/* The mDNS message codec of AT+MDNS (net/mdns.c, protocol.md §2.34): name
 * decompression and its bounds, choosing the answers to a query (RFC 6762
 * §6, §6.7, §7.1, §18; RFC 6763 §9, §12), and the responses, announcements
 * and goodbyes built, read back with the same parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "net/mdns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static struct mdns_msg msg; /* large: not on the stack */
static struct mdns_msg back;

static void records(struct mdns_records *r)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->host, sizeof(r->host), "espressif");
	snprintf(r->instance, sizeof(r->instance), "my_instance");
	snprintf(r->service, sizeof(r->service), "_printer");
	snprintf(r->proto, sizeof(r->proto), "_tcp");
	r->port = 35;
	inet_pton(AF_INET, "192.168.200.90", &r->ip);
	r->ntxt = 2;
	snprintf(r->txt[0].key, sizeof(r->txt[0].key), "product");
	snprintf(r->txt[0].value, sizeof(r->txt[0].value), "my_printer");
	snprintf(r->txt[1].key, sizeof(r->txt[1].key), "firmware_version");
	snprintf(r->txt[1].value, sizeof(r->txt[1].value), "AT-V3.4.1.0");
}

/* ---- a tiny query writer ------------------------------------------------------ */

struct qb {
	uint8_t b[1024];
	size_t n;
};

static void qb_header(struct qb *q, uint16_t id, uint16_t flags, uint16_t qd, uint16_t an)
{
	uint8_t h[12] = { (uint8_t)(id >> 8), (uint8_t)id, (uint8_t)(flags >> 8), (uint8_t)flags,
			  (uint8_t)(qd >> 8), (uint8_t)qd, (uint8_t)(an >> 8), (uint8_t)an, 0, 0, 0, 0 };
	memcpy(q->b, h, sizeof(h));
	q->n = sizeof(h);
}

static void qb_u16(struct qb *q, uint16_t v)
{
	q->b[q->n++] = (uint8_t)(v >> 8);
	q->b[q->n++] = (uint8_t)v;
}

/* "a.b.c" as labels (no dots inside labels here). */
static void qb_name(struct qb *q, const char *dotted)
{
	const char *p = dotted;
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);
		q->b[q->n++] = (uint8_t)l;
		memcpy(q->b + q->n, p, l);
		q->n += l;
		p += l + (dot ? 1 : 0);
	}
	q->b[q->n++] = 0;
}

static void qb_question(struct qb *q, const char *name, uint16_t type, uint16_t cls)
{
	qb_name(q, name);
	qb_u16(q, type);
	qb_u16(q, cls);
}

static void text(const struct mdns_name *nm, char *out, size_t size)
{
	mdns_name_text(nm, out, size);
}

/* ---- records --------------------------------------------------------------------- */

static void test_records_check(void **st)
{
	struct mdns_records r;
	records(&r);
	assert_int_equal(mdns_records_check(&r), 0);
	r.host[0] = 0;
	assert_int_equal(mdns_records_check(&r), -EINVAL);
	records(&r);
	memset(r.service, 's', MDNS_LABEL_MAX); /* the longest label */
	r.service[MDNS_LABEL_MAX] = 0;
	assert_int_equal(mdns_records_check(&r), 0);
	r.service[0] = 0;
	assert_int_equal(mdns_records_check(&r), -EINVAL);
	records(&r);
	r.port = 0;
	assert_int_equal(mdns_records_check(&r), -EINVAL);
	records(&r);
	r.txt[1].key[0] = 0;
	assert_int_equal(mdns_records_check(&r), -EINVAL);
	records(&r);
	/* "key=value" of 256 bytes is one too many */
	memset(r.txt[0].value, 'v', 248);
	r.txt[0].value[248] = 0; /* 7 + 1 + 248 = 256 */
	assert_int_equal(mdns_records_check(&r), -EINVAL);
	r.txt[0].value[247] = 0;
	assert_int_equal(mdns_records_check(&r), 0);
	r.ntxt = MDNS_TXT_MAX + 1;
	assert_int_equal(mdns_records_check(&r), -EINVAL);
}

/* ---- names ------------------------------------------------------------------------ */

static void test_read_name_compression(void **st)
{
	/* header, then "espressif.local" at 12, then a pointer to it */
	struct qb q;
	qb_header(&q, 0, 0, 0, 0);
	qb_name(&q, "espressif.local");
	size_t second = q.n;
	q.b[q.n++] = 2;
	q.b[q.n++] = 'x';
	q.b[q.n++] = 'y';
	q.b[q.n++] = 0xc0;
	q.b[q.n++] = 12;
	struct mdns_name nm;
	char t[300];
	size_t off = second;
	assert_int_equal(mdns_read_name(q.b, q.n, &off, &nm), 0);
	assert_int_equal(off, q.n); /* just past the pointer */
	text(&nm, t, sizeof(t));
	assert_string_equal(t, "xy.espressif.local.");
	/* the root name */
	uint8_t root[] = { 0 };
	off = 0;
	assert_int_equal(mdns_read_name(root, 1, &off, &nm), 0);
	assert_int_equal(nm.len, 1);
	text(&nm, t, sizeof(t));
	assert_string_equal(t, ".");
}

static void test_read_name_rejects(void **st)
{
	struct mdns_name nm;
	size_t off;
	/* a pointer to itself, and forwards */
	uint8_t self[] = { 0xc0, 0x00 };
	off = 0;
	assert_int_equal(mdns_read_name(self, sizeof(self), &off, &nm), -EBADMSG);
	uint8_t fwd[] = { 0xc0, 0x02, 0x00 };
	off = 0;
	assert_int_equal(mdns_read_name(fwd, sizeof(fwd), &off, &nm), -EBADMSG);
	/* two pointers that would bounce between each other: 2 -> 0 -> 2 */
	uint8_t loop[] = { 0xc0, 0x02, 0xc0, 0x00 };
	off = 2;
	assert_int_equal(mdns_read_name(loop, sizeof(loop), &off, &nm), -EBADMSG);
	/* extended label types 0x40 and 0x80 */
	uint8_t ext[] = { 0x41, 'a', 0 };
	off = 0;
	assert_int_equal(mdns_read_name(ext, sizeof(ext), &off, &nm), -EBADMSG);
	uint8_t ext2[] = { 0x81, 'a', 0 };
	off = 0;
	assert_int_equal(mdns_read_name(ext2, sizeof(ext2), &off, &nm), -EBADMSG);
	/* running off the end: in a label, before the root, in a pointer */
	uint8_t torn[] = { 3, 'a', 'b' };
	off = 0;
	assert_int_equal(mdns_read_name(torn, sizeof(torn), &off, &nm), -EBADMSG);
	uint8_t noroot[] = { 1, 'a' };
	off = 0;
	assert_int_equal(mdns_read_name(noroot, sizeof(noroot), &off, &nm), -EBADMSG);
	uint8_t half[] = { 1, 'a', 0xc0 };
	off = 0;
	assert_int_equal(mdns_read_name(half, sizeof(half), &off, &nm), -EBADMSG);
	/* longer than 255 bytes: five labels of 63 */
	uint8_t big[5 * 64 + 1];
	for (int i = 0; i < 5; i++) {
		big[i * 64] = 63;
		memset(big + i * 64 + 1, 'a', 63);
	}
	big[5 * 64] = 0;
	off = 0;
	assert_int_equal(mdns_read_name(big, sizeof(big), &off, &nm), -EBADMSG);
	/* exactly 255: three labels of 63, one of 61, the root */
	uint8_t max[255];
	size_t o = 0;
	for (int i = 0; i < 3; i++) {
		max[o++] = 63;
		memset(max + o, 'b', 63);
		o += 63;
	}
	max[o++] = 61;
	memset(max + o, 'c', 61);
	o += 61;
	max[o++] = 0;
	assert_int_equal(o, 255);
	off = 0;
	assert_int_equal(mdns_read_name(max, o, &off, &nm), 0);
	assert_int_equal(nm.len, 255);
}

static void test_parse_rejects_torn_messages(void **st)
{
	struct qb q;
	qb_header(&q, 1, 0, 1, 0);
	qb_question(&q, "espressif.local", MDNS_T_A, MDNS_C_IN);
	assert_int_equal(mdns_parse(q.b, q.n, &msg), 0);
	assert_int_equal(msg.nq, 1);
	for (size_t n = 0; n < q.n; n++)
		assert_int_equal(mdns_parse(q.b, n, &msg), -EBADMSG);
	/* a count larger than what is there */
	qb_header(&q, 1, 0, 3, 0);
	qb_question(&q, "espressif.local", MDNS_T_A, MDNS_C_IN);
	assert_int_equal(mdns_parse(q.b, q.n, &msg), -EBADMSG);
	/* an answer whose RDATA runs past the end */
	qb_header(&q, 0, 0, 0, 1);
	qb_name(&q, "a.local");
	qb_u16(&q, MDNS_T_A);
	qb_u16(&q, MDNS_C_IN);
	qb_u16(&q, 0);
	qb_u16(&q, 120);
	qb_u16(&q, 5);
	q.b[q.n++] = 1;
	q.b[q.n++] = 2;
	q.b[q.n++] = 3;
	q.b[q.n++] = 4;
	assert_int_equal(mdns_parse(q.b, q.n, &msg), -EBADMSG);
	/* a PTR whose name does not end where its RDATA does */
	qb_header(&q, 0, 0, 0, 1);
	qb_name(&q, "a.local");
	qb_u16(&q, MDNS_T_PTR);
	qb_u16(&q, MDNS_C_IN);
	qb_u16(&q, 0);
	qb_u16(&q, 120);
	qb_u16(&q, 4);
	q.b[q.n++] = 1;
	q.b[q.n++] = 'b';
	q.b[q.n++] = 0;
	q.b[q.n++] = 0;
	assert_int_equal(mdns_parse(q.b, q.n, &msg), -EBADMSG);
}

/* ---- answering --------------------------------------------------------------------- */

static void plan_for(const struct mdns_records *r, const struct qb *q, uint16_t port,
		     struct mdns_plan *p)
{
	assert_int_equal(mdns_plan(r, q->b, q->n, port, &msg, p), 0);
}

static void test_plan_questions(void **st)
{
	struct mdns_records r;
	records(&r);
	struct mdns_plan p;
	struct qb q;

	qb_header(&q, 0x4242, 0, 1, 0);
	qb_question(&q, "EspressiF.LOCAL", MDNS_T_A, MDNS_C_IN);
	plan_for(&r, &q, 40000, &p);
	assert_int_equal(p.an, MDNS_RR_A);
	assert_int_equal(p.ar, 0);
	assert_true(p.legacy);
	assert_true(p.unicast);
	assert_int_equal(p.id, 0x4242);

	qb_header(&q, 0, 0, 1, 0);
	qb_question(&q, "_printer._tcp.local", MDNS_T_PTR, MDNS_C_IN);
	plan_for(&r, &q, MDNS_PORT, &p);
	assert_int_equal(p.an, MDNS_RR_PTR);
	assert_int_equal(p.ar, MDNS_RR_SRV | MDNS_RR_TXT | MDNS_RR_A);
	assert_false(p.legacy);
	assert_false(p.unicast);

	qb_header(&q, 0, 0, 1, 0);
	qb_question(&q, "my_instance._printer._tcp.local", MDNS_T_ANY, MDNS_C_ANY);
	plan_for(&r, &q, MDNS_PORT, &p);
	assert_int_equal(p.an, MDNS_RR_SRV | MDNS_RR_TXT);
	assert_int_equal(p.ar, MDNS_RR_A);

	qb_header(&q, 0, 0, 1, 0);
	qb_question(&q, "_services._dns-sd._udp.local", MDNS_T_PTR, MDNS_C_IN);
	plan_for(&r, &q, MDNS_PORT, &p);
	assert_int_equal(p.an, MDNS_RR_ENUM);

	/* two questions, one QU: multicast; both QU: unicast to port 5353 */
	qb_header(&q, 0, 0, 2, 0);
	qb_question(&q, "espressif.local", MDNS_T_A, MDNS_C_IN | MDNS_C_TOPBIT);
	qb_question(&q, "my_instance._printer._tcp.local", MDNS_T_TXT, MDNS_C_IN);
	plan_for(&r, &q, MDNS_PORT, &p);
	assert_int_equal(p.an, MDNS_RR_A | MDNS_RR_TXT);
	assert_false(p.unicast);
	qb_header(&q, 0, 0, 2, 0);
	qb_question(&q, "espressif.local", MDNS_T_A, MDNS_C_IN | MDNS_C_TOPBIT);
	qb_question(&q, "my_instance._printer._tcp.local", MDNS_T_TXT, MDNS_C_IN | MDNS_C_TOPBIT);
	plan_for(&r, &q, MDNS_PORT, &p);
	assert_true(p.unicast);
	assert_false(p.legacy);

	/* nothing of ours: other names, AAAA, class CH */
	const struct { const char *name; uint16_t type, cls; } none[] = {
		{ "other.local", MDNS_T_A, MDNS_C_IN },
		{ "espressif.local", MDNS_T_AAAA, MDNS_C_IN },
		{ "espressif.local", MDNS_T_PTR, MDNS_C_IN },
		{ "espressif.local", MDNS_T_A, 3 },
		{ "espressif", MDNS_T_A, MDNS_C_IN },
		{ "espressif.local.local", MDNS_T_A, MDNS_C_IN },
		{ "_http._tcp.local", MDNS_T_PTR, MDNS_C_IN },
		{ "_printer._udp.local", MDNS_T_PTR, MDNS_C_IN },
		{ "my_instance._printer._tcp.local", MDNS_T_A, MDNS_C_IN },
	};
	for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
		qb_header(&q, 0, 0, 1, 0);
		qb_question(&q, none[i].name, none[i].type, none[i].cls);
		plan_for(&r, &q, MDNS_PORT, &p);
		assert_int_equal(p.an, 0);
		assert_int_equal(p.ar, 0);
	}
}

static void test_plan_ignores_non_queries(void **st)
{
	struct mdns_records r;
	records(&r);
	struct mdns_plan p;
	struct qb q;
	const uint16_t flags[] = { 0x8000, 0x8400, 0x0800 /* opcode 1 */, 0x2000 /* opcode 4 */,
				   0x0001 /* rcode 1 */, 0x0003 };
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		qb_header(&q, 0, flags[i], 1, 0);
		qb_question(&q, "espressif.local", MDNS_T_A, MDNS_C_IN);
		assert_int_equal(mdns_plan(&r, q.b, q.n, MDNS_PORT, &msg, &p), -EBADMSG);
	}
	/* TC (more known answers follow) and RD are still queries */
	qb_header(&q, 0, 0x0300, 1, 0);
	qb_question(&q, "espressif.local", MDNS_T_A, MDNS_C_IN);
	plan_for(&r, &q, MDNS_PORT, &p);
	assert_int_equal(p.an, MDNS_RR_A);
}

static void known_ptr(struct qb *q, uint32_t ttl, const char *target)
{
	qb_name(q, "_printer._tcp.local");
	qb_u16(q, MDNS_T_PTR);
	qb_u16(q, MDNS_C_IN);
	qb_u16(q, (uint16_t)(ttl >> 16));
	qb_u16(q, (uint16_t)ttl);
	struct qb t = { .n = 0 };
	qb_name(&t, target);
	qb_u16(q, (uint16_t)t.n);
	memcpy(q->b + q->n, t.b, t.n);
	q->n += t.n;
}

static void test_known_answer_suppression(void **st)
{
	struct mdns_records r;
	records(&r);
	struct mdns_plan p;
	struct qb q;
	/* §7.1: listed with at least half our 4500 s: not sent again */
	qb_header(&q, 0, 0, 1, 1);
	qb_question(&q, "_printer._tcp.local", MDNS_T_PTR, MDNS_C_IN);
	known_ptr(&q, 2250, "MY_INSTANCE._printer._tcp.local");
	plan_for(&r, &q, MDNS_PORT, &p);
	assert_int_equal(p.an, 0);
	assert_int_equal(p.ar, 0);
	/* less than half: sent */
	qb_header(&q, 0, 0, 1, 1);
	qb_question(&q, "_printer._tcp.local", MDNS_T_PTR, MDNS_C_IN);
	known_ptr(&q, 2249, "my_instance._printer._tcp.local");
	plan_for(&r, &q, MDNS_PORT, &p);
	assert_int_equal(p.an, MDNS_RR_PTR);
	/* another instance of the type is no answer of ours */
	qb_header(&q, 0, 0, 1, 1);
	qb_question(&q, "_printer._tcp.local", MDNS_T_PTR, MDNS_C_IN);
	known_ptr(&q, 4500, "other._printer._tcp.local");
	plan_for(&r, &q, MDNS_PORT, &p);
	assert_int_equal(p.an, MDNS_RR_PTR);
	/* a known A record with our address and enough TTL */
	qb_header(&q, 0, 0, 1, 1);
	qb_question(&q, "espressif.local", MDNS_T_A, MDNS_C_IN);
	qb_name(&q, "espressif.local");
	qb_u16(&q, MDNS_T_A);
	qb_u16(&q, MDNS_C_IN | MDNS_C_TOPBIT);
	qb_u16(&q, 0);
	qb_u16(&q, 60);
	qb_u16(&q, 4);
	memcpy(q.b + q.n, &r.ip, 4);
	q.n += 4;
	plan_for(&r, &q, MDNS_PORT, &p);
	assert_int_equal(p.an, 0);
}

/* ---- building -------------------------------------------------------------------- */

static const struct mdns_rr *find(const struct mdns_msg *m, uint16_t type)
{
	for (size_t i = 0; i < m->nan; i++)
		if (m->an[i].type == type)
			return &m->an[i];
	return NULL;
}

static void test_announce_and_goodbye(void **st)
{
	struct mdns_records r;
	records(&r);
	uint8_t pkt[MDNS_PKT_MAX];
	size_t len;
	char t[300];
	for (int goodbye = 0; goodbye <= 1; goodbye++) {
		assert_int_equal(mdns_build_announce(&r, goodbye, pkt, sizeof(pkt), &len), 0);
		assert_int_equal(mdns_parse(pkt, len, &back), 0);
		assert_int_equal(back.id, 0);
		assert_int_equal(back.flags, 0x8400);
		assert_int_equal(back.nq, 0);
		assert_int_equal(back.nan, 5);
		const struct mdns_rr *a = find(&back, MDNS_T_A);
		assert_non_null(a);
		text(&a->name, t, sizeof(t));
		assert_string_equal(t, "espressif.local.");
		assert_int_equal(a->cls, MDNS_C_IN | MDNS_C_TOPBIT);
		assert_int_equal(a->ttl, goodbye ? 0 : MDNS_TTL_HOST);
		assert_memory_equal(pkt + a->rdoff, &r.ip, 4);
		const struct mdns_rr *srv = find(&back, MDNS_T_SRV);
		assert_non_null(srv);
		assert_int_equal(srv->srv_port, 35);
		assert_int_equal(srv->ttl, goodbye ? 0 : MDNS_TTL_HOST);
		text(&srv->target, t, sizeof(t));
		assert_string_equal(t, "espressif.local.");
		text(&srv->name, t, sizeof(t));
		assert_string_equal(t, "my_instance._printer._tcp.local.");
		const struct mdns_rr *txt = find(&back, MDNS_T_TXT);
		assert_non_null(txt);
		assert_int_equal(txt->ttl, goodbye ? 0 : MDNS_TTL_OTHER);
		const char want[] = "\x12product=my_printer\x1c" "firmware_version=AT-V3.4.1.0";
		assert_int_equal(txt->rdlen, sizeof(want) - 1);
		assert_memory_equal(pkt + txt->rdoff, want, sizeof(want) - 1);
		/* the PTR records are shared: no cache-flush bit (§10.2) */
		assert_int_equal(back.an[0].type, MDNS_T_PTR);
		assert_int_equal(back.an[0].cls, MDNS_C_IN);
		text(&back.an[0].name, t, sizeof(t));
		assert_string_equal(t, "_printer._tcp.local.");
		text(&back.an[0].target, t, sizeof(t));
		assert_string_equal(t, "my_instance._printer._tcp.local.");
		assert_int_equal(back.an[1].type, MDNS_T_PTR);
		text(&back.an[1].name, t, sizeof(t));
		assert_string_equal(t, "_services._dns-sd._udp.local.");
		text(&back.an[1].target, t, sizeof(t));
		assert_string_equal(t, "_printer._tcp.local.");
	}
	/* no room: -ENOSPC, never a partial message */
	assert_int_equal(mdns_build_announce(&r, false, pkt, 40, &len), -ENOSPC);
}

static void test_empty_txt_is_one_empty_string(void **st)
{
	struct mdns_records r;
	records(&r);
	r.ntxt = 0;
	uint8_t pkt[MDNS_PKT_MAX];
	size_t len;
	assert_int_equal(mdns_build_announce(&r, false, pkt, sizeof(pkt), &len), 0);
	assert_int_equal(mdns_parse(pkt, len, &back), 0);
	const struct mdns_rr *txt = find(&back, MDNS_T_TXT);
	assert_non_null(txt);
	assert_int_equal(txt->rdlen, 1);
	assert_int_equal(pkt[txt->rdoff], 0);
}

static void test_legacy_answer(void **st)
{
	struct mdns_records r;
	records(&r);
	struct mdns_plan p;
	struct qb q;
	qb_header(&q, 0xbeef, 0x0100, 1, 0);
	qb_question(&q, "_printer._tcp.local", MDNS_T_PTR, MDNS_C_IN);
	plan_for(&r, &q, 33333, &p);
	uint8_t pkt[MDNS_PKT_MAX];
	size_t len;
	assert_int_equal(mdns_build(&r, &p, &msg, pkt, sizeof(pkt), &len), 0);
	assert_int_equal(pkt[0], 0xbe);
	assert_int_equal(pkt[1], 0xef);
	assert_int_equal(mdns_parse(pkt, len, &back), 0);
	assert_int_equal(back.flags, 0x8400);
	/* the question comes back, the TTLs are 10 s, no cache-flush bits */
	assert_int_equal(back.nq, 1);
	assert_int_equal(back.q[0].type, MDNS_T_PTR);
	assert_int_equal(back.q[0].cls, MDNS_C_IN);
	assert_int_equal(back.nan, 1);
	assert_int_equal(back.an[0].ttl, MDNS_TTL_LEGACY);
	assert_int_equal(back.an[0].cls, MDNS_C_IN);
	/* additional: SRV, TXT, A after the answer (arcount 3) */
	assert_int_equal(pkt[10], 0);
	assert_int_equal(pkt[11], 3);

	/* a multicast answer: ID 0, no question, full TTL, flush bit */
	qb_header(&q, 0x1111, 0, 1, 0);
	qb_question(&q, "espressif.local", MDNS_T_A, MDNS_C_IN);
	plan_for(&r, &q, MDNS_PORT, &p);
	assert_int_equal(mdns_build(&r, &p, &msg, pkt, sizeof(pkt), &len), 0);
	assert_int_equal(mdns_parse(pkt, len, &back), 0);
	assert_int_equal(back.id, 0);
	assert_int_equal(back.nq, 0);
	assert_int_equal(back.nan, 1);
	assert_int_equal(back.an[0].ttl, MDNS_TTL_HOST);
	assert_int_equal(back.an[0].cls, MDNS_C_IN | MDNS_C_TOPBIT);
}

static void test_longest_records_fit(void **st)
{
	struct mdns_records r;
	memset(&r, 0, sizeof(r));
	memset(r.host, 'h', MDNS_LABEL_MAX);
	memset(r.instance, 'i', MDNS_LABEL_MAX);
	memset(r.service, 's', MDNS_LABEL_MAX);
	memset(r.proto, 'p', MDNS_LABEL_MAX);
	r.port = 65535;
	r.ntxt = MDNS_TXT_MAX;
	for (int i = 0; i < MDNS_TXT_MAX; i++) {
		memset(r.txt[i].key, 'k', 100);
		memset(r.txt[i].value, 'v', MDNS_TXT_ITEM_MAX - 101);
	}
	assert_int_equal(mdns_records_check(&r), 0);
	uint8_t pkt[MDNS_PKT_MAX];
	size_t len;
	assert_int_equal(mdns_build_announce(&r, false, pkt, sizeof(pkt), &len), 0);
	assert_int_equal(mdns_parse(pkt, len, &back), 0);
	assert_int_equal(back.nan, 5);
	assert_int_equal(find(&back, MDNS_T_TXT)->rdlen, MDNS_TXT_MAX * 256);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_records_check),
		cmocka_unit_test(test_read_name_compression),
		cmocka_unit_test(test_read_name_rejects),
		cmocka_unit_test(test_parse_rejects_torn_messages),
		cmocka_unit_test(test_plan_questions),
		cmocka_unit_test(test_plan_ignores_non_queries),
		cmocka_unit_test(test_known_answer_suppression),
		cmocka_unit_test(test_announce_and_goodbye),
		cmocka_unit_test(test_empty_txt_is_one_empty_string),
		cmocka_unit_test(test_legacy_answer),
		cmocka_unit_test(test_longest_records_fit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
