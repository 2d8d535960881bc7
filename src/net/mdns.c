/* Multicast DNS responder (RFC 6762) for one DNS-SD service (RFC 6763).
 *
 * What it does, and the RFC sections it follows:
 * - answers queries for its records on the interface it was started on
 *   (§6), with the records RFC 6763 §12 says belong in the additional
 *   section (PTR -> SRV, TXT, A; SRV -> A);
 * - leaves out answers the querier already knows (known-answer
 *   suppression, §7.1: listed with at least half our TTL);
 * - multicasts a record at most once a second (§6), which also keeps a
 *   flood of queries from becoming a flood of answers;
 * - answers a legacy querier (source port not 5353) by unicast with its ID,
 *   its questions, TTLs of at most 10 s and no cache-flush bits (§6.7), and
 *   a query whose every question asks for unicast (QU bit) by unicast (§5.4);
 * - ignores responses, non-zero opcodes and rcodes (§18.3, §18.11);
 * - announces twice, one second apart, on start (§8.3) and sends a goodbye
 *   (every record with TTL 0, §10.1) on an orderly stop.
 * It does not probe (§8.1) or defend its names against conflicting
 * responders (§9): AT+MDNS publishes the names it is given, and a test bed
 * is not a place where two modules fight over "espressif.local". Shared
 * (PTR) answers go out at once rather than after §6's 20-120 ms delay. */
#include "net/mdns.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HDR_LEN 12
#define FLAG_QR 0x8000u
#define FLAG_AA 0x0400u
#define MAX_HOPS 128     /* compression pointers followed in one name */
#define READ_BURST 16    /* datagrams read per wake-up, so a flood cannot starve the loop */

/* ---- records ---------------------------------------------------------------- */

static bool label_ok(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n <= MDNS_LABEL_MAX;
}

int mdns_records_check(const struct mdns_records *r)
{
	if (!label_ok(r->host) || !label_ok(r->instance) || !label_ok(r->service) ||
	    !label_ok(r->proto) || r->port == 0 || r->ntxt > MDNS_TXT_MAX)
		return -EINVAL;
	for (size_t i = 0; i < r->ntxt; i++) {
		size_t k = strlen(r->txt[i].key), v = strlen(r->txt[i].value);
		if (k == 0 || k + 1 + v > MDNS_TXT_ITEM_MAX)
			return -EINVAL;
	}
	return 0;
}

static void name_labels(struct mdns_name *nm, const char *const *labels, size_t n)
{
	nm->len = 0;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(labels[i]);
		/* Checked labels always fit (4 labels of 63 and "local" make 199
		 * bytes); this only keeps unchecked ones from overrunning. */
		if (l > MDNS_LABEL_MAX || nm->len + 1 + l + 1 > MDNS_NAME_MAX)
			break;
		nm->b[nm->len++] = (uint8_t)l;
		memcpy(nm->b + nm->len, labels[i], l);
		nm->len += l;
	}
	nm->b[nm->len++] = 0;
}

static void host_name(const struct mdns_records *r, struct mdns_name *nm)
{
	const char *l[] = { r->host, "local" };
	name_labels(nm, l, 2);
}

static void service_name(const struct mdns_records *r, struct mdns_name *nm)
{
	const char *l[] = { r->service, r->proto, "local" };
	name_labels(nm, l, 3);
}

static void instance_name(const struct mdns_records *r, struct mdns_name *nm)
{
	const char *l[] = { r->instance, r->service, r->proto, "local" };
	name_labels(nm, l, 4);
}

/* RFC 6763 §9: the service type enumeration name. */
static void enum_name(struct mdns_name *nm)
{
	const char *l[] = { "_services", "_dns-sd", "_udp", "local" };
	name_labels(nm, l, 4);
}

static uint8_t fold(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

/* DNS names compare case-insensitively (RFC 6762 §16). Length bytes are at
 * most 63, below 'A', so folding them changes nothing. */
static bool name_eq(const struct mdns_name *a, const struct mdns_name *b)
{
	if (a->len != b->len)
		return false;
	for (size_t i = 0; i < a->len; i++)
		if (fold(a->b[i]) != fold(b->b[i]))
			return false;
	return true;
}

/* TXT RDATA: the items, or one empty string when there are none (RFC 6763
 * §6.1: a TXT record is never empty). Returns its length. */
static size_t txt_rdata(const struct mdns_records *r, uint8_t *out, size_t size)
{
	size_t o = 0;
	if (r->ntxt == 0) {
		if (size)
			out[o++] = 0;
		return o;
	}
	for (size_t i = 0; i < r->ntxt && i < MDNS_TXT_MAX; i++) {
		size_t k = strlen(r->txt[i].key), v = strlen(r->txt[i].value);
		if (k + 1 + v > MDNS_TXT_ITEM_MAX || o + 2 + k + v > size)
			break;
		out[o++] = (uint8_t)(k + 1 + v);
		memcpy(out + o, r->txt[i].key, k);
		o += k;
		out[o++] = '=';
		memcpy(out + o, r->txt[i].value, v);
		o += v;
	}
	return o;
}

/* ---- parsing -------------------------------------------------------------------- */

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

int mdns_read_name(const uint8_t *buf, size_t n, size_t *off, struct mdns_name *out)
{
	size_t pos = *off, end = 0, len = 0, limit = 0;
	bool jumped = false;
	int hops = 0;
	for (;;) {
		if (pos >= n)
			return -EBADMSG;
		uint8_t c = buf[pos];
		if ((c & 0xc0) == 0xc0) {
			if (pos + 1 >= n)
				return -EBADMSG;
			size_t to = ((size_t)(c & 0x3f) << 8) | buf[pos + 1];
			/* Every pointer must point before the previous one's
			 * target (RFC 1035 §4.1.4: to an earlier occurrence), so
			 * no chain of pointers can loop. */
			if (!jumped) {
				end = pos + 2;
				limit = pos;
				jumped = true;
			}
			if (to >= limit || ++hops > MAX_HOPS)
				return -EBADMSG;
			limit = to;
			pos = to;
			continue;
		}
		if (c & 0xc0) /* 0x40, 0x80: extended/obsolete label types */
			return -EBADMSG;
		if (len + 1 + c > MDNS_NAME_MAX || pos + 1 + c > n)
			return -EBADMSG;
		out->b[len++] = c;
		if (c == 0)
			break;
		memcpy(out->b + len, buf + pos + 1, c);
		len += c;
		pos += 1 + (size_t)c;
	}
	out->len = len;
	*off = jumped ? end : pos + 1;
	return 0;
}

void mdns_name_text(const struct mdns_name *nm, char *out, size_t size)
{
	size_t o = 0, i = 0;
	if (!size)
		return;
	while (i < nm->len && nm->b[i] != 0) {
		size_t l = nm->b[i++];
		for (size_t k = 0; k < l && i < nm->len; k++, i++)
			if (o + 1 < size)
				out[o++] = (char)nm->b[i];
		if (o + 1 < size)
			out[o++] = '.';
	}
	if (o == 0 && o + 1 < size)
		out[o++] = '.';
	out[o] = 0;
}

static int parse_rr(const uint8_t *buf, size_t n, size_t *off, struct mdns_rr *rr)
{
	if (mdns_read_name(buf, n, off, &rr->name) < 0 || *off + 10 > n)
		return -EBADMSG;
	const uint8_t *p = buf + *off;
	rr->type = get16(p);
	rr->cls = get16(p + 2);
	rr->ttl = get32(p + 4);
	rr->rdlen = get16(p + 8);
	rr->rdoff = *off + 10;
	if (rr->rdoff + rr->rdlen > n)
		return -EBADMSG;
	*off = rr->rdoff + rr->rdlen;
	rr->target.len = 0;
	rr->srv_port = 0;
	size_t rd = rr->rdoff, rdend = rr->rdoff + rr->rdlen;
	if (rr->type == MDNS_T_SRV) {
		if (rr->rdlen < 7)
			return -EBADMSG;
		rr->srv_port = get16(buf + rd + 4);
		rd += 6;
	}
	if (rr->type == MDNS_T_PTR || rr->type == MDNS_T_SRV) {
		/* The name must lie within the RDATA (its pointers may not). */
		if (mdns_read_name(buf, rdend, &rd, &rr->target) < 0 || rd != rdend)
			return -EBADMSG;
	}
	return 0;
}

int mdns_parse(const uint8_t *buf, size_t n, struct mdns_msg *m)
{
	if (n < HDR_LEN)
		return -EBADMSG;
	m->id = get16(buf);
	m->flags = get16(buf + 2);
	m->qdcount = get16(buf + 4);
	m->ancount = get16(buf + 6);
	m->nq = m->nan = 0;
	size_t off = HDR_LEN;
	/* Each question takes 5 bytes or more, each record 11 or more: the
	 * counts cannot make this walk longer than the message. */
	for (unsigned i = 0; i < m->qdcount; i++) {
		struct mdns_question tmp, *q = m->nq < MDNS_MAX_QUESTIONS ? &m->q[m->nq] : &tmp;
		if (mdns_read_name(buf, n, &off, &q->name) < 0 || off + 4 > n)
			return -EBADMSG;
		q->type = get16(buf + off);
		q->cls = get16(buf + off + 2);
		off += 4;
		if (q != &tmp)
			m->nq++;
	}
	for (unsigned i = 0; i < m->ancount; i++) {
		struct mdns_rr tmp, *rr = m->nan < MDNS_MAX_ANSWERS ? &m->an[m->nan] : &tmp;
		if (parse_rr(buf, n, &off, rr) < 0)
			return -EBADMSG;
		if (rr != &tmp)
			m->nan++;
	}
	return 0;
}

/* ---- choosing the answers ------------------------------------------------------ */

static uint32_t rr_ttl(unsigned bit)
{
	return bit == MDNS_RR_SRV || bit == MDNS_RR_A ? MDNS_TTL_HOST : MDNS_TTL_OTHER;
}

/* Is the known answer `k` (from the query buf) our record `bit`? */
static bool is_ours(const struct mdns_records *r, const uint8_t *buf, const struct mdns_rr *k,
		    unsigned bit)
{
	struct mdns_name nm, tg;
	if ((k->cls & ~MDNS_C_TOPBIT) != MDNS_C_IN)
		return false;
	switch (bit) {
	case MDNS_RR_PTR:
		service_name(r, &nm);
		instance_name(r, &tg);
		return k->type == MDNS_T_PTR && name_eq(&k->name, &nm) && name_eq(&k->target, &tg);
	case MDNS_RR_ENUM:
		enum_name(&nm);
		service_name(r, &tg);
		return k->type == MDNS_T_PTR && name_eq(&k->name, &nm) && name_eq(&k->target, &tg);
	case MDNS_RR_SRV:
		instance_name(r, &nm);
		host_name(r, &tg);
		return k->type == MDNS_T_SRV && name_eq(&k->name, &nm) && k->srv_port == r->port &&
		       name_eq(&k->target, &tg);
	case MDNS_RR_TXT: {
		uint8_t rd[MDNS_TXT_MAX * (MDNS_TXT_ITEM_MAX + 1) + 1];
		size_t len = txt_rdata(r, rd, sizeof(rd));
		instance_name(r, &nm);
		return k->type == MDNS_T_TXT && name_eq(&k->name, &nm) && k->rdlen == len &&
		       memcmp(buf + k->rdoff, rd, len) == 0;
	}
	case MDNS_RR_A:
		host_name(r, &nm);
		return k->type == MDNS_T_A && name_eq(&k->name, &nm) && k->rdlen == 4 &&
		       memcmp(buf + k->rdoff, &r->ip, 4) == 0;
	}
	return false;
}

/* The records a question asks for. */
static unsigned asked(const struct mdns_records *r, const struct mdns_question *q)
{
	uint16_t cls = q->cls & ~MDNS_C_TOPBIT;
	if (cls != MDNS_C_IN && cls != MDNS_C_ANY)
		return 0;
	bool any = q->type == MDNS_T_ANY;
	struct mdns_name nm;
	host_name(r, &nm);
	if (name_eq(&q->name, &nm))
		return any || q->type == MDNS_T_A ? MDNS_RR_A : 0;
	service_name(r, &nm);
	if (name_eq(&q->name, &nm))
		return any || q->type == MDNS_T_PTR ? MDNS_RR_PTR : 0;
	instance_name(r, &nm);
	if (name_eq(&q->name, &nm)) {
		unsigned w = 0;
		if (any || q->type == MDNS_T_SRV)
			w |= MDNS_RR_SRV;
		if (any || q->type == MDNS_T_TXT)
			w |= MDNS_RR_TXT;
		return w;
	}
	enum_name(&nm);
	if (name_eq(&q->name, &nm))
		return any || q->type == MDNS_T_PTR ? MDNS_RR_ENUM : 0;
	return 0;
}

int mdns_plan(const struct mdns_records *r, const uint8_t *buf, size_t n, uint16_t src_port,
	      struct mdns_msg *m, struct mdns_plan *p)
{
	memset(p, 0, sizeof(*p));
	if (mdns_parse(buf, n, m) < 0)
		return -EBADMSG;
	/* §18.2-§18.3, §18.11: only standard queries with rcode 0. */
	if ((m->flags & FLAG_QR) || ((m->flags >> 11) & 0xf) != 0 || (m->flags & 0xf) != 0)
		return -EBADMSG;
	p->id = m->id;
	p->legacy = src_port != MDNS_PORT;
	bool all_qu = true;
	for (size_t i = 0; i < m->nq; i++) {
		unsigned w = asked(r, &m->q[i]);
		if (!w)
			continue;
		p->an |= w;
		if (!(m->q[i].cls & MDNS_C_TOPBIT))
			all_qu = false;
	}
	/* RFC 6763 §12.1, §12.2. */
	if (p->an & MDNS_RR_PTR)
		p->ar |= MDNS_RR_SRV | MDNS_RR_TXT | MDNS_RR_A;
	if (p->an & MDNS_RR_SRV)
		p->ar |= MDNS_RR_A;
	/* §7.1: what the querier lists with at least half our TTL, it knows. */
	for (size_t i = 0; i < m->nan; i++)
		for (unsigned bit = 1; bit <= MDNS_RR_ENUM; bit <<= 1)
			if (((p->an | p->ar) & bit) && m->an[i].ttl >= rr_ttl(bit) / 2 &&
			    is_ours(r, buf, &m->an[i], bit)) {
				p->an &= ~bit;
				p->ar &= ~bit;
			}
	p->ar &= ~p->an;
	if (!p->an)
		p->ar = 0;
	p->unicast = p->legacy || (p->an && all_qu);
	return 0;
}

/* ---- building --------------------------------------------------------------------- */

struct wbuf {
	uint8_t *p;
	size_t size, len;
	bool full;
};

static void put(struct wbuf *w, const void *src, size_t n)
{
	if (w->full || w->size - w->len < n) {
		w->full = true;
		return;
	}
	memcpy(w->p + w->len, src, n);
	w->len += n;
}

static void put16(struct wbuf *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	put(w, b, 2);
}

static void put32(struct wbuf *w, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	put(w, b, 4);
}

static void put_name(struct wbuf *w, const struct mdns_name *nm)
{
	put(w, nm->b, nm->len);
}

static unsigned count_bits(unsigned m)
{
	unsigned c = 0;
	for (; m; m &= m - 1)
		c++;
	return c;
}

/* One record; legacy: TTL capped, no cache-flush bit (§6.7). */
static void put_rr(struct wbuf *w, const struct mdns_records *r, unsigned bit, bool goodbye,
		   bool legacy)
{
	struct mdns_name nm, tg;
	uint16_t type = MDNS_T_PTR;
	bool unique = bit == MDNS_RR_SRV || bit == MDNS_RR_TXT || bit == MDNS_RR_A;
	uint32_t ttl = goodbye ? 0 : rr_ttl(bit);
	if (legacy && ttl > MDNS_TTL_LEGACY)
		ttl = MDNS_TTL_LEGACY;
	uint8_t rd[MDNS_TXT_MAX * (MDNS_TXT_ITEM_MAX + 1) + 1];
	size_t rdlen = 0;
	switch (bit) {
	case MDNS_RR_PTR:
		service_name(r, &nm);
		instance_name(r, &tg);
		memcpy(rd, tg.b, tg.len);
		rdlen = tg.len;
		break;
	case MDNS_RR_ENUM:
		enum_name(&nm);
		service_name(r, &tg);
		memcpy(rd, tg.b, tg.len);
		rdlen = tg.len;
		break;
	case MDNS_RR_SRV:
		type = MDNS_T_SRV;
		instance_name(r, &nm);
		host_name(r, &tg);
		/* priority 0, weight 0 (RFC 2782), port, target */
		rd[0] = rd[1] = rd[2] = rd[3] = 0;
		rd[4] = (uint8_t)(r->port >> 8);
		rd[5] = (uint8_t)r->port;
		memcpy(rd + 6, tg.b, tg.len);
		rdlen = 6 + tg.len;
		break;
	case MDNS_RR_TXT:
		type = MDNS_T_TXT;
		instance_name(r, &nm);
		rdlen = txt_rdata(r, rd, sizeof(rd));
		break;
	case MDNS_RR_A:
		type = MDNS_T_A;
		host_name(r, &nm);
		memcpy(rd, &r->ip, 4);
		rdlen = 4;
		break;
	default:
		return;
	}
	put_name(w, &nm);
	put16(w, type);
	/* §10.2: the cache-flush bit on records only we own. */
	put16(w, (uint16_t)(MDNS_C_IN | (unique && !legacy ? MDNS_C_TOPBIT : 0)));
	put32(w, ttl);
	put16(w, (uint16_t)rdlen);
	put(w, rd, rdlen);
}

/* PTR answers first, then the records they point to. */
static const unsigned order[] = { MDNS_RR_PTR, MDNS_RR_ENUM, MDNS_RR_SRV, MDNS_RR_TXT, MDNS_RR_A };

static int build(const struct mdns_records *r, unsigned an, unsigned ar, bool goodbye,
		 const struct mdns_plan *p, const struct mdns_msg *q, uint8_t *out, size_t size,
		 size_t *len)
{
	struct wbuf w = { .p = out, .size = size };
	bool legacy = p && p->legacy && q;
	size_t nq = legacy ? q->nq : 0;
	put16(&w, legacy ? p->id : 0); /* §18.1: ID 0 in multicast responses */
	put16(&w, (uint16_t)(FLAG_QR | FLAG_AA));
	put16(&w, (uint16_t)nq);
	put16(&w, (uint16_t)count_bits(an));
	put16(&w, 0);
	put16(&w, (uint16_t)count_bits(ar));
	/* §6.7: a legacy querier gets its questions back. */
	for (size_t i = 0; i < nq; i++) {
		put_name(&w, &q->q[i].name);
		put16(&w, q->q[i].type);
		put16(&w, q->q[i].cls);
	}
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (an & order[i])
			put_rr(&w, r, order[i], goodbye, legacy);
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (ar & order[i])
			put_rr(&w, r, order[i], goodbye, legacy);
	if (w.full)
		return -ENOSPC;
	*len = w.len;
	return 0;
}

int mdns_build(const struct mdns_records *r, const struct mdns_plan *p, const struct mdns_msg *q,
	       uint8_t *out, size_t size, size_t *len)
{
	return build(r, p->an, p->ar & ~p->an, false, p, q, out, size, len);
}

int mdns_build_announce(const struct mdns_records *r, bool goodbye, uint8_t *out, size_t size,
			size_t *len)
{
	return build(r, MDNS_RR_ALL, 0, goodbye, NULL, NULL, out, size, len);
}

/* ---- the responder ------------------------------------------------------------------ */

struct mdns {
	struct loop *loop;
	struct mdns_records rec;
	char ifname[IF_NAMESIZE];
	unsigned ifindex;
	struct in_addr ifaddr, ifmask;
	int fd;
	struct loop_io io;
	struct loop_timer announce;
	int announced;
	uint64_t last_mcast[5]; /* per record bit index: when last multicast */
	bool mcast_once[5];
};

static int bit_index(unsigned bit)
{
	int i = 0;
	while (bit > 1) {
		bit >>= 1;
		i++;
	}
	return i;
}

static void note_mcast(struct mdns *m, unsigned mask)
{
	uint64_t now = clock_now_ms();
	for (unsigned bit = 1; bit <= MDNS_RR_ENUM; bit <<= 1)
		if (mask & bit) {
			m->last_mcast[bit_index(bit)] = now;
			m->mcast_once[bit_index(bit)] = true;
		}
}

static unsigned rate_limited(const struct mdns *m, unsigned mask)
{
	uint64_t now = clock_now_ms();
	unsigned out = 0;
	for (unsigned bit = 1; bit <= MDNS_RR_ENUM; bit <<= 1) {
		int i = bit_index(bit);
		if ((mask & bit) && m->mcast_once[i] && now - m->last_mcast[i] < MDNS_RATE_MS)
			out |= bit;
	}
	return out;
}

static void send_to(struct mdns *m, const uint8_t *pkt, size_t len, const struct sockaddr_in *to)
{
	if (sendto(m->fd, pkt, len, MSG_NOSIGNAL, (const struct sockaddr *)to, sizeof(*to)) < 0) {
		char ip[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &to->sin_addr, ip, sizeof(ip));
		log_info("mdns: cannot send %zu bytes to %s:%u: %s", len, ip, ntohs(to->sin_port),
			 strerror(errno));
	}
}

static struct sockaddr_in group_addr(void)
{
	struct sockaddr_in g = { .sin_family = AF_INET, .sin_port = htons(MDNS_PORT) };
	inet_pton(AF_INET, MDNS_GROUP, &g.sin_addr);
	return g;
}

static void send_unsolicited(struct mdns *m, bool goodbye)
{
	static uint8_t pkt[MDNS_PKT_MAX];
	size_t len;
	if (mdns_build_announce(&m->rec, goodbye, pkt, sizeof(pkt), &len) < 0)
		return;
	struct sockaddr_in g = group_addr();
	send_to(m, pkt, len, &g);
	note_mcast(m, MDNS_RR_ALL);
}

static void announce_fire(void *arg)
{
	struct mdns *m = arg;
	send_unsolicited(m, false);
	if (++m->announced < MDNS_ANNOUNCE_COUNT)
		loop_timer_start(m->loop, &m->announce, MDNS_ANNOUNCE_GAP_MS);
}

static void handle(struct mdns *m, const uint8_t *buf, size_t n, const struct sockaddr_in *from)
{
	static struct mdns_msg q; /* ~22 KB: one thread, not re-entered */
	struct mdns_plan p;
	if (mdns_plan(&m->rec, buf, n, ntohs(from->sin_port), &q, &p) < 0 || !p.an)
		return;
	if (!p.unicast) {
		unsigned late = rate_limited(m, p.an | p.ar);
		p.an &= ~late;
		p.ar &= ~late;
		if (!p.an)
			return;
	}
	static uint8_t pkt[MDNS_PKT_MAX];
	size_t len;
	if (mdns_build(&m->rec, &p, &q, pkt, sizeof(pkt), &len) < 0)
		return;
	if (p.unicast) {
		send_to(m, pkt, len, from);
		return;
	}
	struct sockaddr_in g = group_addr();
	send_to(m, pkt, len, &g);
	note_mcast(m, p.an | p.ar);
}

static void on_readable(void *arg, unsigned events)
{
	struct mdns *m = arg;
	static uint8_t buf[MDNS_PKT_MAX];
	for (int i = 0; i < READ_BURST; i++) {
		struct sockaddr_in from;
		union {
			struct cmsghdr h;
			uint8_t b[CMSG_SPACE(sizeof(struct in_pktinfo))];
		} ctl;
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
		struct msghdr mh = {
			.msg_name = &from, .msg_namelen = sizeof(from),
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = ctl.b, .msg_controllen = sizeof(ctl.b),
		};
		ssize_t n = recvmsg(m->fd, &mh, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_debug("mdns: receive: %s", strerror(errno));
			return;
		}
		if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC) || from.sin_family != AF_INET)
			continue;
		/* The socket is bound to the port on every interface: answer
		 * only what arrived on ours (§11: link-local scope). */
		bool ours = false;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
				struct in_pktinfo pi;
				memcpy(&pi, CMSG_DATA(c), sizeof(pi));
				ours = (unsigned)pi.ipi_ifindex == m->ifindex;
			}
		/* §11: a query from off the link (a unicast one could be
		 * forged to turn the answer on a third party) is ignored. */
		bool on_link = ((from.sin_addr.s_addr ^ m->ifaddr.s_addr) & m->ifmask.s_addr) == 0;
		if (ours && on_link)
			handle(m, buf, (size_t)n, &from);
	}
}

static int setopt(int fd, int level, int name, const void *v, socklen_t len, const char *what)
{
	if (setsockopt(fd, level, name, v, len) == 0)
		return 0;
	int e = errno;
	log_warn("mdns: %s: %s", what, strerror(e));
	return -e;
}

static int open_socket(struct mdns *m)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
	if (fd < 0)
		return -errno;
	int one = 1, zero = 0, ttl = 255;
	struct ip_mreqn mr = { .imr_ifindex = (int)m->ifindex };
	inet_pton(AF_INET, MDNS_GROUP, &mr.imr_multiaddr);
	/* With the interface's address, not only its index: else the
	 * kernel picks the source by routing, another interface's address. */
	struct ip_mreqn ifr = { .imr_ifindex = (int)m->ifindex, .imr_address = m->ifaddr };
	struct sockaddr_in any = { .sin_family = AF_INET, .sin_port = htons(MDNS_PORT),
				   .sin_addr.s_addr = htonl(INADDR_ANY) };
	int rc;
	/* §15: several responders share port 5353 on one host (avahi, a
	 * second espatd), so the port is reused as mDNS implementations do. */
	if ((rc = setopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one), "SO_REUSEADDR")) < 0 ||
	    (rc = setopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one), "SO_REUSEPORT")) < 0 ||
	    /* Only the groups this socket joined, not every group any
	     * socket on the host joined. */
	    (rc = setopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof(zero),
			 "IP_MULTICAST_ALL")) < 0 ||
	    (rc = setopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one), "IP_PKTINFO")) < 0 ||
	    /* §11: responses go out with IP TTL 255. */
	    (rc = setopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl),
			 "IP_MULTICAST_TTL")) < 0 ||
	    (rc = setopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl), "IP_TTL")) < 0 ||
	    /* Resolvers on this host (nss-mdns, avahi) hear us too. */
	    (rc = setopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &one, sizeof(one),
			 "IP_MULTICAST_LOOP")) < 0 ||
	    (rc = setopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &ifr, sizeof(ifr),
			 "IP_MULTICAST_IF")) < 0) {
		close(fd);
		return rc;
	}
	if (bind(fd, (const struct sockaddr *)&any, sizeof(any)) < 0) {
		rc = -errno;
		log_warn("mdns: cannot bind UDP port %d: %s", MDNS_PORT, strerror(-rc));
		close(fd);
		return rc;
	}
	if ((rc = setopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr),
			 "joining " MDNS_GROUP)) < 0) {
		close(fd);
		return rc;
	}
	m->fd = fd;
	return 0;
}

int mdns_start(struct mdns **out, const struct mdns_cfg *cfg)
{
	*out = NULL;
	if (mdns_records_check(&cfg->rec) < 0 || !cfg->ifname || !cfg->ifname[0] ||
	    strlen(cfg->ifname) >= IF_NAMESIZE)
		return -EINVAL;
	unsigned idx = if_nametoindex(cfg->ifname);
	if (idx == 0)
		return -ENODEV;
	struct mdns *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->loop = cfg->loop;
	m->rec = cfg->rec;
	snprintf(m->ifname, sizeof(m->ifname), "%s", cfg->ifname);
	m->ifindex = idx;
	m->ifaddr = cfg->ifaddr;
	m->ifmask = cfg->ifmask;
	m->fd = -1;
	loop_timer_init(&m->announce, announce_fire, m);
	int rc = open_socket(m);
	if (rc == 0) {
		rc = loop_io_add(m->loop, &m->io, m->fd, LOOP_READ, on_readable, m);
		if (rc < 0)
			close(m->fd);
	}
	if (rc < 0) {
		free(m);
		return rc;
	}
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &m->rec.ip, ip, sizeof(ip));
	log_info("mdns: %s.local is %s; %s.%s.%s.local on port %u; on %s", m->rec.host, ip,
		 m->rec.instance, m->rec.service, m->rec.proto, (unsigned)m->rec.port, m->ifname);
	announce_fire(m); /* the first announcement now, the next in a second */
	*out = m;
	return 0;
}

void mdns_stop(struct mdns *m, bool goodbye)
{
	if (!m)
		return;
	loop_timer_stop(m->loop, &m->announce);
	if (m->fd >= 0) {
		if (goodbye)
			send_unsolicited(m, true);
		loop_io_del(m->loop, &m->io);
		close(m->fd);
	}
	log_info("mdns: stopped%s", goodbye ? " (goodbye sent)" : "");
	free(m);
}
