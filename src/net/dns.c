/* Asynchronous name resolution with c-ares on the event loop.
 *
 * Each set of servers lives in its own c-ares channel. The channel tells us
 * through its socket-state callback which descriptors to watch; a loop timer
 * driven by ares_timeout() lets c-ares retry and time out. Changing servers
 * starts a new channel; the old one is retired and destroyed once the
 * queries still running on it have ended (c-ares cannot change the servers of
 * a busy channel, and a channel must not be destroyed from its callbacks).
 *
 * A query's memory stays ours until c-ares has called back for every lookup
 * it started, even after the user's callback ran (deadline) or will never run
 * (dns_cancel): c-ares holds the pointer until then. User callbacks always run
 * from a loop timer, never from inside c-ares or dns_resolve(). */
#include "net/dns.h"

#include "core/log.h"
#include "core/loop.h"

#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define DNS_MAX_SERVERS 3
#define DNS_MAX_NAME 253

struct dns_chan;

/* One descriptor c-ares asked us to watch. */
struct dns_sock {
	struct loop_io io;
	struct dns_chan *c;
	ares_socket_t fd;
	struct dns_sock *next;
};

struct dns_chan {
	struct dns *d;
	ares_channel ch;
	struct loop_timer tmr; /* next c-ares timeout */
	struct dns_sock *socks;
	unsigned pending;      /* ares_getaddrinfo() calls not yet called back */
	bool retired;          /* replaced by newer servers; free when idle */
	bool destroying;       /* inside ares_destroy() */
	struct dns_chan *next; /* in d->retired */
};

struct dns_query {
	struct dns *d;          /* NULL once detached by dns_free() */
	struct dns_query *prev, *next;
	struct dns_chan *chan;  /* channel of the running lookup, or NULL */
	dns_cb cb;
	void *arg;
	struct loop_timer deadline; /* timeout_ms */
	struct loop_timer deliver;  /* runs the callback outside c-ares */
	int fams[2];            /* address families to try, in order; 0 = none */
	int stage;              /* index into fams of the running lookup */
	int status;             /* result to deliver */
	bool inflight;          /* c-ares holds a pointer to us */
	bool done;              /* result decided (maybe not yet delivered) */
	bool cancelled;         /* cancelled or delivered: no callback (again) */
	bool in_cb;             /* the user's callback is running */
	struct dns_result res;
	char name[];
};

struct dns {
	struct loop *l;
	struct dns_chan *cur;     /* channel new lookups use */
	struct dns_chan *retired; /* older channels with lookups still running */
	struct dns_query *queries;
	struct loop_timer gc;     /* destroys idle retired channels */
};

/* ---- channels ------------------------------------------------------------ */

static void chan_rearm(struct dns_chan *c)
{
	struct timeval tv;
	if (c->destroying)
		return;
	if (!ares_timeout(c->ch, NULL, &tv)) {
		loop_timer_stop(c->d->l, &c->tmr);
		return;
	}
	uint64_t ms = (uint64_t)tv.tv_sec * 1000u + ((uint64_t)tv.tv_usec + 999u) / 1000u;
	loop_timer_start(c->d->l, &c->tmr, ms);
}

static void chan_timeout(void *arg)
{
	struct dns_chan *c = arg;
	ares_process_fd(c->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	chan_rearm(c);
}

static void sock_ready(void *arg, unsigned events)
{
	struct dns_sock *s = arg;
	struct dns_chan *c = s->c; /* s may be gone after ares_process_fd() */
	ares_socket_t rd = (events & (LOOP_READ | LOOP_ERR)) ? s->fd : ARES_SOCKET_BAD;
	ares_socket_t wr = (events & LOOP_WRITE) ? s->fd : ARES_SOCKET_BAD;
	ares_process_fd(c->ch, rd, wr);
	chan_rearm(c);
}

static void sock_free(struct dns_chan *c, struct dns_sock *s)
{
	for (struct dns_sock **pp = &c->socks; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	loop_io_del(c->d->l, &s->io);
	free(s);
}

/* c-ares opens, changes interest in, or closes (0, 0) a socket. */
static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_chan *c = data;
	struct dns_sock *s = c->socks;
	while (s && s->fd != fd)
		s = s->next;
	unsigned want = (readable ? LOOP_READ : 0u) | (writable ? LOOP_WRITE : 0u);
	if (!want) {
		if (s)
			sock_free(c, s);
		return;
	}
	if (s) {
		int rc = loop_io_want(c->d->l, &s->io, want);
		if (rc < 0)
			log_warn("dns: watching socket %d: %s", (int)fd, strerror(-rc));
		return;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		/* c-ares will time the lookup out. */
		log_warn("dns: out of memory watching socket %d", (int)fd);
		return;
	}
	s->c = c;
	s->fd = fd;
	int rc = loop_io_add(c->d->l, &s->io, fd, want, sock_ready, s);
	if (rc < 0) {
		log_warn("dns: watching socket %d: %s", (int)fd, strerror(-rc));
		free(s);
		return;
	}
	s->next = c->socks;
	c->socks = s;
}

static int parse_server(const char *s, struct ares_addr_port_node *n)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *h = s, *port = NULL;
	size_t hl;

	memset(n, 0, sizeof(*n));
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end)
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(end - h);
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0')
			return -EINVAL;
	} else {
		const char *colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':')) { /* bare IPv6 address */
			hl = strlen(s);
		} else {
			hl = colon ? (size_t)(colon - s) : strlen(s);
			port = colon ? colon + 1 : NULL;
		}
	}
	if (hl == 0 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (inet_pton(AF_INET, host, &n->addr.addr4) == 1 && s[0] != '[') {
		n->family = AF_INET;
	} else if (inet_pton(AF_INET6, host, &n->addr.addr6) == 1) {
		n->family = AF_INET6;
	} else {
		return -EINVAL;
	}
	if (port) {
		size_t pl = strlen(port);
		if (pl == 0 || pl > 5 || strspn(port, "0123456789") != pl)
			return -EINVAL;
		long v = strtol(port, NULL, 10);
		if (v < 1 || v > 65535)
			return -EINVAL;
		n->udp_port = n->tcp_port = (int)v;
	}
	return 0;
}

static int map_ares(int st)
{
	switch (st) {
	case ARES_SUCCESS:
		return 0;
	case ARES_ENOTFOUND:
	case ARES_ENODATA:
		return -ENOENT;
	case ARES_ETIMEOUT:
		return -ETIMEDOUT;
	case ARES_ECONNREFUSED:
	case ARES_ESERVFAIL:
		return -ECONNREFUSED;
	default:
		return -EIO;
	}
}

static void chan_destroy(struct dns_chan *c)
{
	c->destroying = true;
	/* Calls back every lookup still running (ARES_EDESTRUCTION) and reports
	 * its sockets closed. */
	ares_destroy(c->ch);
	while (c->socks)
		sock_free(c, c->socks);
	loop_timer_stop(c->d->l, &c->tmr);
	free(c);
}

/* servers == NULL: the system's (resolv.conf). */
static int chan_new(struct dns *d, const struct ares_addr_port_node *servers,
		    struct dns_chan **out)
{
	struct dns_chan *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->d = d;
	loop_timer_init(&c->tmr, chan_timeout, c);

	struct ares_options o;
	memset(&o, 0, sizeof(o));
	o.sock_state_cb = sock_state;
	o.sock_state_cb_data = c;
	o.lookups = (char *)"fb"; /* /etc/hosts, then DNS */
	/* A module has no search list: names are looked up as given. */
	o.flags = ARES_FLAG_NOSEARCH;
	int st = ares_init_options(&c->ch, &o,
				   ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS | ARES_OPT_FLAGS);
	if (st != ARES_SUCCESS) {
		log_warn("dns: resolver setup failed: %s", ares_strerror(st));
		free(c);
		return st == ARES_ENOMEM ? -ENOMEM : -EIO;
	}
	if (servers) {
		st = ares_set_servers_ports(c->ch, (struct ares_addr_port_node *)servers);
		if (st != ARES_SUCCESS) {
			log_warn("dns: setting servers failed: %s", ares_strerror(st));
			chan_destroy(c);
			return st == ARES_ENOMEM ? -ENOMEM : -EINVAL;
		}
	}
	*out = c;
	return 0;
}

static void gc_run(void *arg)
{
	struct dns *d = arg;
	struct dns_chan **pp = &d->retired;
	while (*pp) {
		struct dns_chan *c = *pp;
		if (c->pending == 0) {
			*pp = c->next;
			chan_destroy(c);
		} else {
			pp = &c->next;
		}
	}
}

/* ---- queries ------------------------------------------------------------- */

static void query_unlink(struct dns_query *q)
{
	if (!q->d)
		return;
	if (q->prev)
		q->prev->next = q->next;
	else
		q->d->queries = q->next;
	if (q->next)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
}

static void query_stop_timers(struct dns_query *q)
{
	if (!q->d)
		return;
	loop_timer_stop(q->d->l, &q->deadline);
	loop_timer_stop(q->d->l, &q->deliver);
}

/* Free q if nobody needs it any more. */
static void query_maybe_free(struct dns_query *q)
{
	if (q->inflight || q->in_cb || !q->cancelled)
		return;
	query_stop_timers(q);
	query_unlink(q);
	free(q);
}

static void query_deliver(struct dns_query *q)
{
	if (!q->cancelled && q->cb) {
		q->in_cb = true;
		q->cb(q->arg, q->status, q->status == 0 ? &q->res : NULL);
		q->in_cb = false;
	}
	q->cancelled = true; /* delivered: never again */
	query_maybe_free(q);
}

static void deliver_fire(void *arg)
{
	query_deliver(arg);
}

static void deadline_fire(void *arg)
{
	struct dns_query *q = arg;
	if (q->done || q->cancelled)
		return;
	log_debug("dns: %s: timed out", q->name);
	q->done = true;
	q->status = -ETIMEDOUT;
	loop_timer_stop(q->d->l, &q->deliver);
	query_deliver(q); /* c-ares's later answer is ignored */
}

/* Decide the result; the callback runs from a 0 ms timer. */
static void query_finish(struct dns_query *q, int status)
{
	q->done = true;
	q->status = status;
	if (q->cancelled || !q->d)
		return;
	loop_timer_stop(q->d->l, &q->deadline);
	loop_timer_start(q->d->l, &q->deliver, 0);
}

static void query_start_stage(struct dns_query *q);

static void add_addrs(struct dns_query *q, const struct ares_addrinfo *ai, int fam)
{
	for (const struct ares_addrinfo_node *n = ai ? ai->nodes : NULL; n; n = n->ai_next) {
		if (q->res.n == DNS_MAX_ADDRS)
			return;
		if (n->ai_family != fam || !n->ai_addr)
			continue;
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof(ss));
		if (fam == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
			if ((size_t)n->ai_addrlen < sizeof(*sin))
				continue;
			memcpy(sin, n->ai_addr, sizeof(*sin));
			sin->sin_port = 0;
		} else {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
			if ((size_t)n->ai_addrlen < sizeof(*sin6))
				continue;
			memcpy(sin6, n->ai_addr, sizeof(*sin6));
			sin6->sin6_port = 0;
		}
		bool dup = false;
		for (size_t i = 0; i < q->res.n && !dup; i++)
			dup = memcmp(&q->res.addr[i], &ss, sizeof(ss)) == 0;
		if (!dup)
			q->res.addr[q->res.n++] = ss;
	}
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct dns_query *q = arg;
	struct dns_chan *c = q->chan;
	int fam = q->fams[q->stage];

	q->inflight = false;
	q->chan = NULL;
	if (c) {
		c->pending--;
		if (c->retired && c->pending == 0 && !c->destroying)
			loop_timer_start(c->d->l, &c->d->gc, 0); /* not from in here */
	}
	if (q->cancelled || q->done) {
		ares_freeaddrinfo(ai);
		query_maybe_free(q);
		return;
	}
	if (status == ARES_SUCCESS)
		add_addrs(q, ai, fam);
	ares_freeaddrinfo(ai);
	log_debug("dns: %s (%s): %s, %zu address(es)", q->name,
		  fam == AF_INET ? "A" : "AAAA", ares_strerror(status), q->res.n);

	if (q->res.n > 0) {
		query_finish(q, 0);
	} else if ((status == ARES_SUCCESS || status == ARES_ENOTFOUND ||
		    status == ARES_ENODATA) && q->stage == 0 && q->fams[1]) {
		q->stage = 1;
		query_start_stage(q);
	} else {
		query_finish(q, status == ARES_SUCCESS ? -ENOENT : map_ares(status));
	}
}

/* Run the lookup for q->fams[q->stage] on the current channel. c-ares may
 * call back before this returns (e.g. /etc/hosts). */
static void query_start_stage(struct dns_query *q)
{
	struct dns_chan *c = q->d->cur;
	struct ares_addrinfo_hints h;
	memset(&h, 0, sizeof(h));
	h.ai_family = q->fams[q->stage];
	h.ai_flags = ARES_AI_NOSORT;
	q->chan = c;
	q->inflight = true;
	c->pending++;
	ares_getaddrinfo(c->ch, q->name, NULL, &h, on_addrinfo, q);
	chan_rearm(c);
}

static bool numeric(struct dns_query *q, const char *name, enum dns_family fam)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	int af;
	if (inet_pton(AF_INET, name, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		af = AF_INET;
	} else if (inet_pton(AF_INET6, name, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		af = AF_INET6;
	} else {
		return false;
	}
	if ((fam == DNS_V4_ONLY && af != AF_INET) || (fam == DNS_V6_ONLY && af != AF_INET6)) {
		q->status = -ENOENT;
	} else {
		q->res.addr[0] = ss;
		q->res.n = 1;
		q->status = 0;
	}
	return true;
}

struct dns_query *dns_resolve(struct dns *d, const char *name, enum dns_family fam,
			      uint32_t timeout_ms, dns_cb cb, void *arg)
{
	size_t len = name ? strnlen(name, DNS_MAX_NAME + 1) : 0;
	struct dns_query *q = calloc(1, sizeof(*q) + len + 1);
	if (!q)
		return NULL;
	q->d = d;
	q->cb = cb;
	q->arg = arg;
	if (len)
		memcpy(q->name, name, len);
	q->name[len] = '\0';
	loop_timer_init(&q->deadline, deadline_fire, q);
	loop_timer_init(&q->deliver, deliver_fire, q);
	q->next = d->queries;
	if (d->queries)
		d->queries->prev = q;
	d->queries = q;

	switch (fam) {
	case DNS_PREFER_V4:
		q->fams[0] = AF_INET;
		q->fams[1] = AF_INET6;
		break;
	case DNS_V4_ONLY:
		q->fams[0] = AF_INET;
		break;
	case DNS_V6_ONLY:
		q->fams[0] = AF_INET6;
		break;
	case DNS_PREFER_V6:
		q->fams[0] = AF_INET6;
		q->fams[1] = AF_INET;
		break;
	}

	if (len == 0 || len > DNS_MAX_NAME || !q->fams[0]) {
		log_debug("dns: refusing lookup of a bad name or family");
		q->status = -EINVAL;
		q->done = true;
	} else if (numeric(q, q->name, fam)) {
		q->done = true;
	}
	if (q->done) {
		loop_timer_start(d->l, &q->deliver, 0);
		return q;
	}

	log_debug("dns: looking up %s (family %d, timeout %u ms)", q->name, (int)fam,
		  (unsigned)timeout_ms);
	if (timeout_ms > 0)
		loop_timer_start(d->l, &q->deadline, timeout_ms);
	query_start_stage(q);
	return q;
}

void dns_cancel(struct dns_query *q)
{
	if (!q || q->cancelled)
		return;
	q->cancelled = true;
	query_stop_timers(q);
	query_maybe_free(q);
}

/* ---- the resolver -------------------------------------------------------- */

int dns_new(struct dns **out, struct loop *l)
{
	struct dns *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->l = l;
	loop_timer_init(&d->gc, gc_run, d);
	int st = ares_library_init(ARES_LIB_INIT_ALL);
	if (st != ARES_SUCCESS) {
		free(d);
		return st == ARES_ENOMEM ? -ENOMEM : -EIO;
	}
	int rc = chan_new(d, NULL, &d->cur);
	if (rc < 0) {
		ares_library_cleanup();
		free(d);
		return rc;
	}
	*out = d;
	return 0;
}

int dns_set_servers(struct dns *d, const char *const *servers, size_t n)
{
	struct ares_addr_port_node nodes[DNS_MAX_SERVERS];
	if (n > DNS_MAX_SERVERS || (n && !servers))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!servers[i] || parse_server(servers[i], &nodes[i]) < 0)
			return -EINVAL;
		nodes[i].next = i + 1 < n ? &nodes[i + 1] : NULL;
	}
	struct dns_chan *c;
	int rc = chan_new(d, n ? nodes : NULL, &c);
	if (rc < 0)
		return rc;
	struct dns_chan *old = d->cur;
	d->cur = c;
	if (old->pending == 0) {
		chan_destroy(old);
	} else {
		/* Lookups running on it finish with the old servers. */
		old->retired = true;
		old->next = d->retired;
		d->retired = old;
	}
	if (n)
		log_debug("dns: %zu server(s), first %s", n, servers[0]);
	else
		log_debug("dns: system servers");
	return 0;
}

void dns_free(struct dns *d)
{
	if (!d)
		return;
	for (struct dns_query *q = d->queries; q; q = q->next) {
		q->cancelled = true;
		query_stop_timers(q);
	}
	loop_timer_stop(d->l, &d->gc);
	/* Their callbacks free the queries that were waiting for c-ares. */
	while (d->retired) {
		struct dns_chan *c = d->retired;
		d->retired = c->next;
		chan_destroy(c);
	}
	chan_destroy(d->cur);
	d->cur = NULL;
	struct dns_query *q = d->queries;
	while (q) {
		struct dns_query *next = q->next;
		if (q->in_cb) { /* dns_free() from its callback: freed on return */
			query_unlink(q);
			q->d = NULL;
		} else {
			q->inflight = false; /* its channel is gone */
			query_maybe_free(q);
		}
		q = next;
	}
	ares_library_cleanup();
	free(d);
}
