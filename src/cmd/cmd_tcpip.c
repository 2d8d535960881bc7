/* ESP-AT "TCP/IP AT Commands" chapter, links and the data path: CIPSTART/EX,
 * CIPSEND/EX/L, CIPCLOSE, +IPD (active and passive), CIPRECVDATA, CIPRECVLEN,
 * CIPRECVTYPE/CIPRECVMODE (protocol.md §2, §3). The configuration and status
 * commands of the chapter are in cmd_tcpip_cfg.c. */
#include "cmd/cmd.h"
#include "cmd/tcpip.h"

#include "core/log.h"
#include "dev/device.h"
#include "net/policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static struct device *dev(struct at_req *r)
{
	return r->dev;
}

static struct tcpip *tc(struct device *d)
{
	return &d->tcpip;
}

/* The id printed in messages: none in single connection mode (§2). */
int tcpip_shown_id(struct device *d, int id)
{
	return tc(d)->mux ? id : -1;
}


const char *tcpip_type_str(const struct link *lk)
{
	static const char *const names[3][2] = { { "TCP", "TCPv6" }, { "UDP", "UDPv6" },
						 { "SSL", "SSLv6" } };
	return names[lk->proto][lk->v6];
}

struct link *tcpip_link(struct device *d, int id)
{
	if (id < 0 || id >= LINK_MAX)
		return NULL;
	return &tc(d)->links[id];
}

static bool link_open(const struct link *lk)
{
	return lk->state == LINK_OPEN || lk->state == LINK_PEER_CLOSED;
}

/* ---- receive path ----------------------------------------------------- */

static bool passive(struct device *d, int id)
{
	return tc(d)->recv_mode[id] == 1;
}

/* Reading policy: active links read one +IPD's worth at a time and only
 * while the serial side keeps up; passive links fill the module's window
 * (§2.28, design.md §1 back-pressure). */
void tcpip_set_policy(struct device *d, struct link *lk)
{
	if (!link_open(lk))
		return;
	if (passive(d, lk->id))
		link_set_reading(lk, true, LINK_RX_WINDOW);
	else /* TCP reads a window's worth, cut into +IPD of 2920 (F4); UDP
	      * one datagram at a time */
		link_set_reading(lk, !serial_congested(d->serial),
				 lk->proto == LINK_UDP ? LINK_IPD_MAX : LINK_RX_WINDOW);
}


static void ev_send_done(void *arg, struct link *lk, int err);

void tcpip_close_link(struct device *d, struct link *lk)
{
	int id = lk->id;
	/* A CIPSEND whose send this link still owes an answer ends now, with
	 * SEND FAIL (§2.9), before CLOSED: link_close() drops the answer, and
	 * the AT side would wait for it forever, ignoring every command.
	 * Passthrough has its own link-loss path. */
	bool owed = link_send_pending(lk) && tc(d)->send_kind != SEND_PASSTHROUGH;
	int err = lk->sending ? -ECONNABORTED : lk->send_err;
	server_forget(d, lk);
	link_close(lk);
	tc(d)->notified[id] = false;
	tc(d)->close_held[id] = false;
	if (owed)
		ev_send_done(d, lk, err);
	at_out_closed(&d->at.out, tcpip_shown_id(d, id));
}


/* The passthrough link (CIPMODE=1): its bytes go out raw, without +IPD,
 * in passthrough and in command mode alike (§2.19, §4.3, §4.4). */
static bool transparent(struct device *d, const struct link *lk)
{
	return d->cipmode == 1 && lk->id == 0;
}

static void pump_link(struct device *d, struct link *lk)
{
	struct tcpip *t = tc(d);
	struct at_out *o = &d->at.out;
	int id = lk->id;
	if (!link_open(lk) || o->hold)
		return;
	if (transparent(d, lk)) {
		while (link_buffered(lk) && !serial_congested(d->serial)) {
			size_t n = link_buffered(lk);
			at_out_raw(o, buf_head(&lk->rx), n);
			link_consume(lk, n);
		}
		if (!link_buffered(lk) && t->close_held[id]) {
			t->close_held[id] = false;
			if (!pt_link_lost(d, lk))
				tcpip_close_link(d, lk);
		} else {
			link_set_reading(lk, !serial_congested(d->serial), LINK_IPD_MAX);
		}
		return;
	}
	if (passive(d, id)) {
		size_t have = link_buffered(lk);
		if (have && !t->notified[id]) {
			size_t shown = t->report_mode[id] && lk->proto == LINK_UDP ? link_next_len(lk)
										     : have;
			at_out_ipd_notice(o, tcpip_shown_id(d, id), shown);
			t->notified[id] = true;
		}
		if (!have && t->close_held[id])
			tcpip_close_link(d, lk);
		return;
	}
	while (link_buffered(lk) && !serial_congested(d->serial) && !o->hold) {
		size_t n = link_next_len(lk);
		if (n > LINK_IPD_MAX)
			n = LINK_IPD_MAX;
		/* The address text only when AT+CIPDINFO shows it: inet_ntop
		 * per frame was a third of the user-space work (F8). */
		char ip[INET6_ADDRSTRLEN];
		const struct sockaddr_storage *from = link_next_from(lk);
		if (t->dinfo)
			link_addr_str(from, ip, sizeof(ip));
		at_out_ipd(o, tcpip_shown_id(d, id), n, t->dinfo ? ip : NULL, link_addr_port(from),
			   buf_head(&lk->rx));
		link_consume(lk, n);
	}
	if (!link_buffered(lk) && t->close_held[id])
		tcpip_close_link(d, lk);
	else
		tcpip_set_policy(d, lk);
}

static void pump_all(struct device *d)
{
	for (int i = 0; i < LINK_MAX; i++)
		pump_link(d, &tc(d)->links[i]);
}

void tcpip_resume(struct device *d)
{
	pump_all(d);
}

static void ev_received(void *arg, struct link *lk)
{
	if (lk->server_side)
		server_touch(arg, lk); /* traffic from the client restarts CIPSTO */
	pump_link(arg, lk);
}

static void ev_peer_closed(void *arg, struct link *lk, int err)
{
	struct device *d = arg;
	if (err)
		log_info("link %d: connection lost: %s", lk->id, strerror(-err));
	if (transparent(d, lk) && !link_buffered(lk) && pt_link_lost(d, lk))
		return;
	/* CLOSED comes after the data still buffered (§2.28: in passive mode
	 * not before the host has read it). */
	tc(d)->close_held[lk->id] = true;
	pump_link(d, lk);
}

/* ---- AT+CIPSTART / AT+CIPSTARTEX ------------------------------------- */

static void start_failed(struct device *d, struct link *lk, int err, bool had_socket)
{
	at_out_errno(&d->at.out, err);
	d->at.req.errcode = AT_ERR_EXEC_FAIL;
	at_engine_complete(&d->at, AT_RC_ERROR);
	/* A real module's cleanup prints CLOSED after the ERROR once a socket
	 * existed (§2.5, observed on ESP-AT 2.x). */
	if (had_socket)
		at_out_closed(&d->at.out, tcpip_shown_id(d, lk->id));
}

void tcpip_announce(struct device *d, struct link *lk)
{
	if (d->sysmsg & 2) {
		char ip[INET6_ADDRSTRLEN];
		link_addr_str(&lk->remote, ip, sizeof(ip));
		at_out_link_conn(&d->at.out, lk->id, tcpip_type_str(lk), lk->server_side, ip,
				 link_addr_port(&lk->remote), lk->local_port);
	} else {
		at_out_connect(&d->at.out, tcpip_shown_id(d, lk->id));
	}
}

static void ev_connect_done(void *arg, struct link *lk, int err)
{
	struct device *d = arg;
	struct tcpip *t = tc(d);
	if (t->pt_reconnecting) {
		pt_connect_done(d, lk, err);
		return;
	}
	if (lk->server_side) { /* an SSL client of our server finished its handshake */
		server_handshake_done(d, lk, err);
		return;
	}
	if (err) {
		char ip[INET6_ADDRSTRLEN];
		link_addr_str(&lk->remote, ip, sizeof(ip));
		log_info("link %d: connect to %s port %u failed: %s", lk->id, ip,
			 link_addr_port(&lk->remote), lk->tls_why[0] ? lk->tls_why : strerror(-err));
		start_failed(d, lk, err, true);
		return;
	}
	t->ever_linked = true;
	t->notified[lk->id] = false;
	t->close_held[lk->id] = false;
	tcpip_announce(d, lk);
	at_engine_complete(&d->at, AT_RC_OK);
	tcpip_set_policy(d, lk);
	pump_link(d, lk);
}

static void resolved(void *arg, int status, const struct dns_result *res)
{
	struct device *d = arg;
	struct tcpip *t = tc(d);
	struct link *lk = &t->links[t->pending_id];
	t->query = NULL;
	if (status < 0 || res->n == 0) {
		log_info("link %d: cannot resolve the remote host: %s", lk->id,
			 status == -ETIMEDOUT	   ? "DNS timeout"
			 : status == -ECONNREFUSED ? "the DNS server refused or is unreachable "
						     "(check AT+CIPDNS)"
						   : "unknown host");
		start_failed(d, lk, status, false);
		return;
	}
	struct sockaddr_storage remote = res->addr[0];
	if (remote.ss_family == AF_INET6)
		((struct sockaddr_in6 *)(void *)&remote)->sin6_port = htons((uint16_t)t->start_port);
	else
		((struct sockaddr_in *)(void *)&remote)->sin_port = htons((uint16_t)t->start_port);
	if (!policy_allows(d->opts.policy, &remote)) {
		char ip[INET6_ADDRSTRLEN];
		link_addr_str(&remote, ip, sizeof(ip));
		log_warn("link %d: %s port %d refused by the egress policy (--allow); the module "
			 "sees an unreachable host", lk->id, ip, t->start_port);
		start_failed(d, lk, -EHOSTUNREACH, true);
		return;
	}
	struct link_opts o = t->opts[lk->id];
	if (t->start_keepalive >= 0)
		o.keepalive = t->start_keepalive;
	t->opts[lk->id].keepalive = o.keepalive; /* shared with CIPTCPOPT, §2.5 */
	int rc;
	if (t->start_proto == LINK_SSL) {
		struct tls_cfg cfg;
		char why[128] = "";
		rc = ssl_client_cfg(d, lk->id, t->start_host, &cfg, why, sizeof(why));
		if (rc < 0) {
			log_warn("link %d: SSL configuration unusable: %s", lk->id, why);
			start_failed(d, lk, rc, false);
			return;
		}
		rc = link_connect_tls(lk, &remote, t->start_has_local ? &t->start_local : NULL, &o,
				      t->start_timeout, &cfg);
		if (rc < 0 && lk->tls_why[0])
			log_warn("link %d: %s", lk->id, lk->tls_why);
	} else {
		rc = link_connect(lk, (enum link_proto)t->start_proto, &remote,
				  t->start_has_local ? &t->start_local : NULL,
				  (uint16_t)t->start_local_port, t->start_udp_mode, &o,
				  t->start_timeout);
	}
	if (rc < 0) {
		log_info("link %d: cannot open a socket: %s", lk->id, strerror(-rc));
		start_failed(d, lk, rc, false);
	}
}

bool tcpip_parse_type(const char *s, int *proto, bool *v6)
{
	static const struct { const char *name; int proto; bool v6; } types[] = {
		{ "TCP", LINK_TCP, false }, { "TCPv6", LINK_TCP, true },
		{ "UDP", LINK_UDP, false }, { "UDPv6", LINK_UDP, true },
		{ "SSL", LINK_SSL, false }, { "SSLv6", LINK_SSL, true },
	};
	/* lwesp sends "TCPV6": accept any case (§2, UNCONFIRMED on hardware). */
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (strcasecmp(s, types[i].name) == 0) {
			*proto = types[i].proto;
			*v6 = types[i].v6;
			return true;
		}
	}
	return false;
}

static int ssl_links(struct device *d)
{
	int n = 0;
	for (int i = 0; i < LINK_MAX; i++)
		if (link_in_use(&tc(d)->links[i]) && tc(d)->links[i].proto == LINK_SSL)
			n++;
	return n;
}

static bool station_up(struct device *d)
{
	return wifi_has_ip(&d->wifi) || device_ap_on(d);
}

static int parse_local_ip(struct at_req *r, int idx, bool v6, struct tcpip *t)
{
	char ip[64];
	int rc = at_get_str(r, idx, 46, false, ip, sizeof(ip));
	if (rc < 0)
		return -1;
	t->start_has_local = false;
	if (rc == AT_ARG_OMITTED || !ip[0])
		return 0;
	memset(&t->start_local, 0, sizeof(t->start_local));
	struct in_addr *a4 = &((struct sockaddr_in *)(void *)&t->start_local)->sin_addr;
	if (!v6 && inet_pton(AF_INET, ip, a4) == 1) {
		t->start_local.ss_family = AF_INET;
		/* The module's own virtual addresses, a static AT+CIPSTA one or
		 * the SoftAP's, do not exist on this host: binding to "this
		 * module" means any local address here (Zephyr's esp_at binds
		 * its UDP sockets to the station's address, §2.5). */
		const struct wifi_settings *ws = &dev(r)->ws;
		if ((ws->sta_static.set && a4->s_addr == ws->sta_static.ip.s_addr) ||
		    (device_ap_on(dev(r)) && a4->s_addr == ws->ap.ip.s_addr))
			a4->s_addr = htonl(INADDR_ANY);
	} else if (v6 && inet_pton(AF_INET6, ip,
				   &((struct sockaddr_in6 *)(void *)&t->start_local)->sin6_addr) == 1) {
		t->start_local.ss_family = AF_INET6;
	} else {
		r->errcode = AT_ERR_PARA_INVALID(idx);
		return -1;
	}
	t->start_has_local = true;
	return 0;
}

/* Parameters after <link ID> (first = index of "type"). */
static enum at_rc start_link(struct at_req *r, int id, int first)
{
	struct device *d = dev(r);
	struct tcpip *t = tc(d);
	char type[16], host[80];
	int64_t port, v;
	bool v6;
	if (!at_nargs(r, first + 3, first + 7))
		return AT_RC_ERROR;
	if (at_get_str(r, first, 8, true, type, sizeof(type)) < 0 ||
	    at_get_str(r, first + 1, 64, true, host, sizeof(host)) < 0 ||
	    at_get_int(r, first + 2, 1, 65535, true, &port) < 0)
		return AT_RC_ERROR;
	if (!tcpip_parse_type(type, &t->start_proto, &v6))
		return at_fail(r, AT_ERR_PARA_INVALID(first));
	if (t->start_proto == LINK_SSL && ssl_links(d) >= (int)d->profile->ssl_links) {
		log_info("AT+CIPSTART: the %s allows %u SSL link(s) at once", d->profile->chip,
			 d->profile->ssl_links);
		return at_fail(r, AT_ERR_EXEC_FAIL);
	}
	snprintf(t->start_host, sizeof(t->start_host), "%s", host);
	if (v6 && !d->ipv6) {
		log_info("%s needs AT+CIPV6=1 first", type);
		return at_fail(r, AT_ERR_EXEC_FAIL);
	}
	t->start_port = (int)port;
	t->start_keepalive = -1;
	t->start_udp_mode = 0;
	t->start_local_port = 0;
	t->start_timeout = 0;
	int k = first + 3;
	if (t->start_proto == LINK_UDP) {
		/* [,<local port>,<mode>,<"local IP">][,<timeout>] */
		if (at_get_int(r, k, 0, 65535, false, &v) < 0)
			return AT_RC_ERROR;
		bool have_lport = at_arg_int(&r->args, k, &v) == AT_ARG_OK;
		if (have_lport)
			t->start_local_port = (int)v;
		int rc = at_get_int(r, k + 1, 0, 2, false, &v);
		if (rc < 0)
			return AT_RC_ERROR;
		if (rc == AT_ARG_OK) {
			if (!have_lport && v != 0) /* <mode> needs <local port> */
				return at_fail(r, AT_ERR_PARA_INVALID(k + 1));
			t->start_udp_mode = (int)v;
		}
		if (parse_local_ip(r, k + 2, v6, t) < 0)
			return AT_RC_ERROR;
		k += 3;
	} else {
		/* [,<keep_alive>][,<"local IP">][,<timeout>] */
		int rc = at_get_int(r, k, 0, 7200, false, &v);
		if (rc < 0)
			return AT_RC_ERROR;
		if (rc == AT_ARG_OK)
			t->start_keepalive = (int)v;
		if (parse_local_ip(r, k + 1, v6, t) < 0)
			return AT_RC_ERROR;
		k += 2;
	}
	if (at_get_int(r, k, 0, 60000, false, &v) < 0)
		return AT_RC_ERROR;
	if (at_arg_int(&r->args, k, &v) == AT_ARG_OK)
		t->start_timeout = (uint32_t)v;
	if (r->args.n > k + 1)
		return at_fail(r, AT_ERR_PARA_NUM(k + 1, r->args.n));

	struct link *lk = &t->links[id];
	if (link_in_use(lk)) {
		log_info("link %d is already connected (AT+CIPCLOSE it first)", id);
		return at_fail(r, AT_ERR_EXEC_FAIL);
	}
	if (!station_up(d)) {
		log_info("AT+CIPSTART refused: no IP address yet (join with AT+CWJAP first)");
		return at_fail(r, AT_ERR_EXEC_FAIL);
	}
	if (d->cipmode && (t->mux || d->server_running))
		return at_fail(r, AT_ERR_EXEC_FAIL);
	t->pending_id = id;
	if (id == 0 && !t->mux) {
		struct pt_target pt = { .valid = true, .proto = t->start_proto, .v6 = v6,
					.port = t->start_port, .keepalive = t->start_keepalive,
					.local_port = t->start_local_port };
		snprintf(pt.host, sizeof(pt.host), "%.64s", host);
		pt_remember(d, &pt);
	}
	/* Without a timeout a dead DNS server could hold the command for a
	 * minute; 10 s is what a module's lookup gives up after. */
	t->query = dns_resolve(t->dns, host, v6 ? DNS_V6_ONLY : DNS_PREFER_V4,
			       t->start_timeout ? t->start_timeout : 10000, resolved, d);
	if (!t->query)
		return at_fail(r, AT_ERR_EXEC_FAIL);
	return AT_RC_PENDING;
}

static enum at_rc cipstart_setup(struct at_req *r)
{
	struct device *d = dev(r);
	if (!tc(d)->mux)
		return start_link(r, 0, 0);
	int64_t id;
	if (at_get_int(r, 0, 0, LINK_MAX - 1, true, &id) < 0)
		return AT_RC_ERROR;
	return start_link(r, (int)id, 1);
}

static enum at_rc cipstartex_setup(struct at_req *r)
{
	struct device *d = dev(r);
	if (!tc(d)->mux)
		return start_link(r, 0, 0);
	/* The lowest free link id (§2.6, UNCONFIRMED which one the module
	 * picks; lwesp reads it from +LINK_CONN). */
	for (int id = 0; id < LINK_MAX; id++)
		if (!link_in_use(&tc(d)->links[id]))
			return start_link(r, id, 0);
	log_info("AT+CIPSTARTEX: all %d links are in use", LINK_MAX);
	return at_fail(r, AT_ERR_EXEC_FAIL);
}

/* ---- AT+CIPSEND / AT+CIPSENDEX / AT+CIPSENDL --------------------------- */

static void sendl_pump(struct device *d);

static void ev_send_done(void *arg, struct link *lk, int err)
{
	struct device *d = arg;
	struct tcpip *t = tc(d);
	if (t->send_kind == SEND_PASSTHROUGH) {
		pt_send_done(d, lk, err);
		return;
	}
	/* Only the send the running command handed to its link answers for
	 * it: the last chunk of an AT+CIPSENDL cancelled by "+++" (§2.7) can
	 * finish while a later command runs, even a send on another link. */
	if (!t->send_waiting || lk->id != t->send_id) {
		log_debug("link %d: a cancelled send finished (%s)", lk->id,
			  err ? strerror(-err) : "ok");
		return;
	}
	t->send_waiting = false;
	if (err)
		log_info("link %d: send failed: %s", lk->id, strerror(-err));
	if (t->send_kind == SEND_LONG) {
		if (err) {
			at_out_hold(&d->at.out, false);
			serial_pause_input(d->serial, false);
			at_engine_complete(&d->at, AT_RC_SEND_FAIL);
			pump_all(d);
			return;
		}
		sendl_pump(d);
		return;
	}
	at_engine_complete(&d->at, err ? AT_RC_SEND_FAIL : AT_RC_SEND_OK);
}

/* The UDP destination of a send: 0 none or a literal address (in
 * t->send_dest), 1 a name to look up (t->send_host, the port in
 * t->send_dest), -1 an error. */
static int parse_dest(struct at_req *r, int idx, struct link *lk)
{
	struct tcpip *t = &r->dev->tcpip;
	char host[80];
	int64_t port;
	t->send_has_dest = false;
	if (r->args.n <= idx)
		return 0;
	if (!at_nargs(r, idx + 2, idx + 2))
		return -1;
	if (lk->proto != LINK_UDP) {
		r->errcode = AT_ERR_PARA_NUM(idx, r->args.n);
		return -1; /* a destination is for UDP only */
	}
	if (at_get_str(r, idx, 64, true, host, sizeof(host)) < 0 ||
	    at_get_int(r, idx + 1, 1, 65535, true, &port) < 0)
		return -1;
	struct sockaddr_storage *a = &t->send_dest;
	memset(a, 0, sizeof(*a));
	struct sockaddr_in *a4 = (void *)a;
	struct sockaddr_in6 *a6 = (void *)a;
	bool is4 = inet_pton(AF_INET, host, &a4->sin_addr) == 1;
	bool is6 = !is4 && inet_pton(AF_INET6, host, &a6->sin6_addr) == 1;
	if (is4 && !lk->v6) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
	} else if (is6 && lk->v6) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
	} else if (!is4 && !is6 && host[0]) {
		/* A name (ESP-AT: "IPv4 address, IPv6 address, or domain name";
		 * WiFiEspAT's beginPacket("pool.ntp.org", 123) sends one). */
		snprintf(t->send_host, sizeof(t->send_host), "%.64s", host);
		a4->sin_port = htons((uint16_t)port); /* same offset in sockaddr_in6 */
		return 1;
	} else {
		r->errcode = AT_ERR_PARA_INVALID(idx);
		return -1;
	}
	if (!policy_allows(r->dev->opts.policy, a)) {
		log_warn("UDP datagram to %s port %d refused by the egress policy (--allow)", host,
			 (int)port);
		r->errcode = AT_ERR_EXEC_FAIL;
		return -1;
	}
	t->send_has_dest = true;
	return 0;
}

/* The data phase of CIPSEND, CIPSENDEX and CIPSENDL; '>' follows. */
static void arm_send(struct device *d)
{
	struct tcpip *t = tc(d);
	if (t->send_kind == SEND_EX)
		at_parser_expect_data_ex(&d->at.parser, t->send_len);
	else
		at_parser_expect_data(&d->at.parser, t->send_len);
	/* Nothing may land between '>' and the end of the data (§1.11). */
	at_out_hold(&d->at.out, true);
}

static void send_resolved(void *arg, int status, const struct dns_result *res)
{
	struct device *d = arg;
	struct tcpip *t = tc(d);
	struct link *lk = &t->links[t->send_id];
	t->query = NULL;
	if (status < 0 || res->n == 0) {
		log_info("AT+CIPSEND on link %d: cannot resolve %s: %s", lk->id, t->send_host,
			 status == -ETIMEDOUT ? "DNS timeout" : "unknown host");
		d->at.req.errcode = AT_ERR_EXEC_FAIL;
		at_engine_complete(&d->at, AT_RC_ERROR);
		return;
	}
	uint16_t port = ((struct sockaddr_in *)(void *)&t->send_dest)->sin_port;
	t->send_dest = res->addr[0];
	if (t->send_dest.ss_family == AF_INET6)
		((struct sockaddr_in6 *)(void *)&t->send_dest)->sin6_port = port;
	else
		((struct sockaddr_in *)(void *)&t->send_dest)->sin_port = port;
	if (lk->state != LINK_OPEN || !policy_allows(d->opts.policy, &t->send_dest)) {
		log_info("AT+CIPSEND on link %d: %s", lk->id,
			 lk->state != LINK_OPEN ? "the link closed during the lookup"
						: "the destination is refused by --allow");
		d->at.req.errcode = AT_ERR_EXEC_FAIL;
		at_engine_complete(&d->at, AT_RC_ERROR);
		return;
	}
	t->send_has_dest = true;
	arm_send(d);
	at_engine_complete(&d->at, AT_RC_PROMPT);
}

static enum at_rc send_setup(struct at_req *r, int kind)
{
	struct device *d = dev(r);
	struct tcpip *t = tc(d);
	int64_t id = 0, len;
	int k = 0;
	if (d->cipmode) /* the set form is for normal mode only (§2.9) */
		return at_fail(r, AT_ERR_EXEC_FAIL);
	if (t->mux) {
		if (at_get_int(r, 0, 0, LINK_MAX - 1, true, &id) < 0)
			return AT_RC_ERROR;
		k = 1;
	}
	int64_t max = kind == SEND_LONG ? 0x7fffffff : d->profile->send_max;
	if (!at_nargs(r, k + 1, k + 3) || at_get_int(r, k, 1, max, true, &len) < 0)
		return AT_RC_ERROR;
	struct link *lk = &t->links[id];
	if (lk->state != LINK_OPEN) {
		log_info("AT+CIPSEND on link %d: the link is not connected", (int)id);
		return at_fail(r, AT_ERR_EXEC_FAIL);
	}
	int dest = parse_dest(r, k + 1, lk);
	if (dest < 0)
		return AT_RC_ERROR;
	t->send_id = (int)id;
	t->send_len = (size_t)len;
	t->send_waiting = false;
	t->send_kind = kind;
	buf_reset(&t->sendbuf);
	t->sendl_got = t->sendl_sent = 0;
	t->sendl_next_report = (uint64_t)t->sendl_report;
	lk->sent_total = 0;
	if (kind == SEND_LONG && lk->proto == LINK_UDP)
		return at_fail(r, AT_ERR_EXEC_FAIL); /* long data is a stream */
	if (dest == 1) {
		/* The module looks the name up before it prompts; the data
		 * phase starts when the answer is in (send_resolved). */
		t->query = dns_resolve(t->dns, t->send_host, lk->v6 ? DNS_V6_ONLY : DNS_V4_ONLY,
				       10000, send_resolved, d);
		if (!t->query)
			return at_fail(r, AT_ERR_EXEC_FAIL);
		return AT_RC_PENDING;
	}
	arm_send(d);
	return AT_RC_PROMPT;
}

static enum at_rc cipsend_setup(struct at_req *r)
{
	return send_setup(r, SEND_NORMAL);
}

static enum at_rc cipsendex_setup(struct at_req *r)
{
	return send_setup(r, SEND_EX);
}

static enum at_rc cipsendl_setup(struct at_req *r)
{
	return send_setup(r, SEND_LONG);
}

static void send_long_chunk(struct device *d, const uint8_t *p, size_t n, int done);

void tcpip_data(struct device *d, const uint8_t *p, size_t n, int done)
{
	struct tcpip *t = tc(d);
	struct link *lk = &t->links[t->send_id];
	if (t->pt_active) {
		pt_data(d, p, n);
		return;
	}
	if (t->send_kind == SEND_LONG) {
		send_long_chunk(d, p, n, done);
		return;
	}
	buf_append(&t->sendbuf, p, n);
	if (!done)
		return;
	/* "Recv N bytes" is printed before the data goes to the stack (§2.9);
	 * for CIPSENDEX N counts the bytes after unescaping (UNCONFIRMED,
	 * docs/commands.md). */
	at_out_recv_bytes(&d->at.out, buf_used(&t->sendbuf));
	at_out_hold(&d->at.out, false);
	int rc = link_send(lk, buf_head(&t->sendbuf), buf_used(&t->sendbuf),
			   t->send_has_dest ? &t->send_dest : NULL);
	buf_reset(&t->sendbuf);
	if (rc < 0) {
		log_info("link %d: send failed: %s", lk->id, strerror(-rc));
		at_engine_complete(&d->at, AT_RC_SEND_FAIL);
	} else {
		t->send_waiting = true;
	}
	pump_all(d);
}

/* CIPSENDL (§2.10): bytes go to the socket while they arrive, one send of
 * at most <transmit size> in flight; "+CIPSENDL:<sent>,<received>" every
 * <report size> bytes sent; SEND OK when all is sent. The serial side is
 * paused while too much waits, so a slow peer slows the MCU (RTS/CTS). */
#define SENDL_QUEUE_MAX (64u * 1024u)

static void sendl_pump(struct device *d)
{
	struct tcpip *t = tc(d);
	struct link *lk = &t->links[t->send_id];
	t->sendl_sent = lk->sent_total;
	while (t->sendl_sent >= t->sendl_next_report && t->sendl_next_report <= t->send_len) {
		at_out_line(&d->at.out, "+CIPSENDL:%llu,%llu", (unsigned long long)t->sendl_sent,
			    (unsigned long long)t->sendl_got);
		t->sendl_next_report += (uint64_t)t->sendl_report;
	}
	if (lk->sending)
		return;
	if (t->sendl_sent == t->send_len) {
		at_out_hold(&d->at.out, false);
		serial_pause_input(d->serial, false);
		at_engine_complete(&d->at, AT_RC_SEND_OK);
		pump_all(d);
		return;
	}
	size_t n = buf_used(&t->sendbuf);
	if (n > (size_t)t->sendl_transmit)
		n = (size_t)t->sendl_transmit;
	if (n) {
		if (link_send(lk, buf_head(&t->sendbuf), n, t->send_has_dest ? &t->send_dest : NULL) < 0) {
			at_out_hold(&d->at.out, false);
			serial_pause_input(d->serial, false);
			at_engine_complete(&d->at, AT_RC_SEND_FAIL);
			return;
		}
		t->send_waiting = true;
		buf_consume(&t->sendbuf, n);
	}
	serial_input_flow(d->serial, buf_used(&t->sendbuf), SENDL_QUEUE_MAX);
}

static void send_long_chunk(struct device *d, const uint8_t *p, size_t n, int done)
{
	struct tcpip *t = tc(d);
	buf_append(&t->sendbuf, p, n);
	t->sendl_got += n;
	/* Not while a result is still on its way (sending is over, send_done
	 * not yet delivered): that result answers for the chunk in flight. */
	if (!link_send_pending(&t->links[t->send_id]))
		sendl_pump(d);
	else
		serial_input_flow(d->serial, buf_used(&t->sendbuf), SENDL_QUEUE_MAX);
}

void tcpip_cancel(struct device *d)
{
	struct tcpip *t = tc(d);
	if (t->pt_active) {
		pt_exit(d);
		return;
	}
	at_out_hold(&d->at.out, false);
	buf_reset(&t->sendbuf);
	t->send_waiting = false; /* a chunk still in flight answers nobody */
	serial_pause_input(d->serial, false);
	if (t->send_kind == SEND_LONG)
		at_out_send_cancelled_l(&d->at.out);
	else
		at_out_send_canceled(&d->at.out);
	at_engine_complete(&d->at, AT_RC_IGNORE);
	pump_all(d);
}

/* ---- AT+CIPCLOSE ------------------------------------------------------ */

static enum at_rc close_one(struct at_req *r, int id)
{
	struct device *d = dev(r);
	struct link *lk = &tc(d)->links[id];
	if (!link_in_use(lk)) {
		log_info("AT+CIPCLOSE: link %d is not connected", id);
		return at_fail(r, AT_ERR_EXEC_FAIL);
	}
	tcpip_close_link(d, lk); /* unread passive data is discarded, §2.13 */
	return AT_RC_OK;
}

static enum at_rc cipclose_setup(struct at_req *r)
{
	struct device *d = dev(r);
	int64_t id;
	if (!tc(d)->mux) /* the set form is for multiple connections (§2.13) */
		return at_fail(r, AT_ERR_EXEC_FAIL);
	if (!at_nargs(r, 1, 1) || at_get_int(r, 0, 0, LINK_MAX, true, &id) < 0)
		return AT_RC_ERROR;
	if (id < LINK_MAX)
		return close_one(r, (int)id);
	/* 5 = all: OK even when none was open */
	for (int i = 0; i < LINK_MAX; i++)
		if (link_in_use(&tc(d)->links[i]))
			tcpip_close_link(d, &tc(d)->links[i]);
	return AT_RC_OK;
}

static enum at_rc cipclose_exec(struct at_req *r)
{
	if (tc(dev(r))->mux)
		return at_fail(r, AT_ERR_EXEC_FAIL);
	return close_one(r, 0);
}

/* ---- passive receive: CIPRECVTYPE/MODE, CIPRECVDATA, CIPRECVLEN -------- */

static void set_recv_mode(struct device *d, int id, int mode, int report)
{
	struct tcpip *t = tc(d);
	t->recv_mode[id] = mode;
	if (report >= 0)
		t->report_mode[id] = report;
	t->notified[id] = false;
	tcpip_set_policy(d, &t->links[id]);
}

static enum at_rc ciprecvmode_query(struct at_req *r)
{
	at_out_line(r->out, "+CIPRECVMODE:%d", tc(dev(r))->recv_mode[0]);
	return AT_RC_OK;
}

static enum at_rc ciprecvmode_setup(struct at_req *r)
{
	struct device *d = dev(r);
	int64_t mode;
	if (!at_nargs(r, 1, 1) || at_get_int(r, 0, 0, 1, true, &mode) < 0)
		return AT_RC_ERROR;
	if (d->cipmode)
		return at_fail(r, AT_ERR_EXEC_FAIL); /* not in passthrough, §2.28 */
	for (int i = 0; i < LINK_MAX; i++) /* the legacy name sets every link */
		set_recv_mode(d, i, (int)mode, -1);
	pump_all(d);
	return AT_RC_OK;
}

static enum at_rc ciprecvtype_query(struct at_req *r)
{
	struct device *d = dev(r);
	struct tcpip *t = tc(d);
	int n = t->mux ? LINK_MAX : 1;
	for (int i = 0; i < n; i++)
		at_out_line(r->out, "+CIPRECVTYPE:%d,%d,%d", i, t->recv_mode[i], t->report_mode[i]);
	return AT_RC_OK;
}

static enum at_rc ciprecvtype_setup(struct at_req *r)
{
	struct device *d = dev(r);
	int64_t id = 0, mode, report = -1;
	int k = 0;
	if (tc(d)->mux) {
		if (at_get_int(r, 0, 0, LINK_MAX, true, &id) < 0)
			return AT_RC_ERROR;
		k = 1;
	}
	if (!at_nargs(r, k + 1, k + 2) || at_get_int(r, k, 0, 1, true, &mode) < 0 ||
	    at_get_int(r, k + 1, 0, 1, false, &report) < 0)
		return AT_RC_ERROR;
	if (d->cipmode)
		return at_fail(r, AT_ERR_EXEC_FAIL);
	for (int i = 0; i < LINK_MAX; i++)
		if (id == LINK_MAX || i == id)
			set_recv_mode(d, i, (int)mode, (int)report);
	pump_all(d);
	return AT_RC_OK;
}

static enum at_rc ciprecvdata_setup(struct at_req *r)
{
	struct device *d = dev(r);
	struct tcpip *t = tc(d);
	int64_t id = 0, len, keep = 0;
	int k = 0;
	if (t->mux) {
		if (at_get_int(r, 0, 0, LINK_MAX - 1, true, &id) < 0)
			return AT_RC_ERROR;
		k = 1;
	}
	if (!at_nargs(r, k + 1, k + 2) || at_get_int(r, k, 1, 0x7fffffff, true, &len) < 0 ||
	    at_get_int(r, k + 1, 0, 1, false, &keep) < 0)
		return AT_RC_ERROR;
	struct link *lk = &t->links[id];
	if (!passive(d, (int)id) || !link_open(lk) || !link_buffered(lk)) {
		log_debug("AT+CIPRECVDATA on link %d: no data", (int)id);
		return at_fail(r, AT_ERR_EXEC_FAIL);
	}
	/* UDP gives at most one datagram per read; with
	 * <keep_datagram_integrity> a datagram larger than len is not cut. */
	size_t n = lk->proto == LINK_UDP ? link_next_len(lk) : link_buffered(lk);
	if (keep && lk->proto == LINK_UDP && n > (size_t)len)
		return at_fail(r, AT_ERR_EXEC_FAIL);
	if (n > (size_t)len)
		n = (size_t)len;
	if (t->dinfo) {
		char ip[INET6_ADDRSTRLEN];
		const struct sockaddr_storage *from = link_next_from(lk);
		link_addr_str(from, ip, sizeof(ip));
		at_out_text(r->out, "+CIPRECVDATA:%zu,\"%s\",%u,", n, ip, link_addr_port(from));
	} else {
		at_out_text(r->out, "+CIPRECVDATA:%zu,", n);
	}
	at_out_raw(r->out, buf_head(&lk->rx), n);
	link_consume(lk, n);
	at_out_result(r->out, AT_RC_OK);
	/* §2.29: what is left gets a fresh notice after the OK. */
	t->notified[id] = false;
	if (link_buffered(lk)) {
		size_t shown = t->report_mode[id] && lk->proto == LINK_UDP ? link_next_len(lk)
									  : link_buffered(lk);
		at_out_ipd_notice(r->out, tcpip_shown_id(d, (int)id), shown);
		t->notified[id] = true;
	} else if (t->close_held[id]) {
		tcpip_close_link(d, lk);
	} else {
		/* Room again: what the peer sent meanwhile gets its notice now,
		 * so the data, the OK and the notice leave in one write. */
		link_read_now(lk);
	}
	return AT_RC_DONE;
}

static enum at_rc ciprecvlen_query(struct at_req *r)
{
	struct device *d = dev(r);
	struct tcpip *t = tc(d);
	char line[96];
	size_t o = 0;
	int n = t->mux ? LINK_MAX : 1;
	for (int i = 0; i < n; i++) {
		const struct link *lk = &t->links[i];
		/* An idle link: -1 as ESP-AT 2.x prints it (what WiFiEspAT
		 * expects), or 0 as 3.x does, per --recvlen-idle (§2.30, §9). */
		long v = link_open(lk) ? (long)link_buffered(lk) : t->recvlen_idle;
		o += (size_t)snprintf(line + o, sizeof(line) - o, "%s%ld", i ? "," : "", v);
	}
	at_out_line(r->out, "+CIPRECVLEN:%s", line);
	return AT_RC_OK;
}

/* ---- lifecycle -------------------------------------------------------- */

static const struct link_events link_ev = {
	.connect_done = ev_connect_done,
	.received = ev_received,
	.peer_closed = ev_peer_closed,
	.send_done = ev_send_done,
};

const struct link_events *tcpip_link_events(void)
{
	return &link_ev;
}

void tcpip_init_links(struct device *d)
{
	struct tcpip *t = tc(d);
	for (int i = 0; i < LINK_MAX; i++)
		link_init(&t->links[i], i, d->loop, &link_ev, d);
	buf_init(&t->sendbuf);
	server_state_init(d);
	pt_state_init(d);
}

void tcpip_reset(struct device *d)
{
	struct tcpip *t = tc(d);
	if (t->query) {
		dns_cancel(t->query);
		t->query = NULL;
	}
	for (int i = 0; i < LINK_MAX; i++) {
		link_close(&t->links[i]);
		t->notified[i] = t->close_held[i] = false;
	}
	buf_reset(&t->sendbuf);
	t->ever_linked = false;
	server_reset(d);
	pt_reset(d);
}

void tcpip_free(struct device *d)
{
	tcpip_reset(d);
	buf_free(&tc(d)->sendbuf);
	buf_free(&tc(d)->pt_buf);
	for (int i = 0; i < LINK_MAX; i++) {
		buf_free(&tc(d)->links[i].rx);
		buf_free(&tc(d)->links[i].tx);
	}
}

void tcpip_netif_down(struct device *d)
{
	/* §2.14: without CIPCONNPERSIST the links go when the address goes. */
	for (int i = 0; i < LINK_MAX; i++) {
		struct link *lk = &tc(d)->links[i];
		if (link_in_use(lk) && !tc(d)->connpersist[i] && !lk->server_side)
			tcpip_close_link(d, lk);
	}
}

static const struct at_cmd tcpip_cmds[] = {
	/* name            test  query              setup               exec */
	{ "+CIPSTART",     NULL, NULL,              cipstart_setup,     NULL },
	{ "+CIPSTARTEX",   NULL, NULL,              cipstartex_setup,   NULL },
	{ "+CIPSEND",      NULL, NULL,              cipsend_setup,      pt_cipsend_exec },
	{ "+CIPSENDEX",    NULL, NULL,              cipsendex_setup,    NULL },
	{ "+CIPSENDL",     NULL, NULL,              cipsendl_setup,     NULL },
	{ "+CIPCLOSE",     NULL, NULL,              cipclose_setup,     cipclose_exec },
	{ "+CIPRECVMODE",  NULL, ciprecvmode_query, ciprecvmode_setup,  NULL },
	{ "+CIPRECVTYPE",  NULL, ciprecvtype_query, ciprecvtype_setup,  NULL },
	{ "+CIPRECVDATA",  NULL, NULL,              ciprecvdata_setup,  NULL },
	{ "+CIPRECVLEN",   NULL, ciprecvlen_query,  NULL,               NULL },
};

const struct at_cmd_table cmd_tcpip_table = AT_TABLE("TCP/IP", tcpip_cmds);
