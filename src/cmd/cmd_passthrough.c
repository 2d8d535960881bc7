/* ESP-AT TCP/IP chapter, passthrough ("transparent transmission"):
 * AT+CIPMODE, AT+CIPSEND (execute), "+++", AT+CIPRECONNINTV and
 * AT+SAVETRANSLINK (protocol.md §2.7-§2.9, §2.19, §2.27, §4). */
#include "cmd/cmd.h"
#include "cmd/tcpip.h"

#include "core/log.h"
#include "dev/device.h"
#include "net/policy.h"
#include "store/store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define NS_PT "translink"
/* The serial side is paused when this much waits for the network: the MCU
 * feels it through RTS/CTS, as the module's 8 KB UART buffer fills (§4.2). */
#define PT_QUEUE_MAX 8192u

static struct device *dev(struct at_req *r)
{
	return r->dev;
}

static struct tcpip *tc(struct device *d)
{
	return &d->tcpip;
}

static struct link *pt_link(struct device *d)
{
	return &tc(d)->links[0];
}

/* ---- serial -> network (§4.2) ----------------------------------------- */

static void pt_pump(struct device *d)
{
	struct tcpip *t = tc(d);
	struct link *lk = pt_link(d);
	size_t packet = d->profile->pt_packet;
	if (lk->state == LINK_OPEN && !link_send_pending(lk) && buf_used(&t->pt_buf)) {
		size_t n = buf_used(&t->pt_buf);
		/* A full packet goes at once; a shorter one waits for
		 * AT+TRANSINTVL ms of silence (pt_flush). */
		if (n >= packet || !t->pt_flush.armed) {
			/* UDP: one datagram per packet (§4.2). TCP is a
			 * stream: every whole packet buffered goes in one
			 * send, the peer sees the same bytes (F5). */
			if (n > packet)
				n = lk->proto == LINK_UDP ? packet : n - n % packet;
			t->send_kind = SEND_PASSTHROUGH;
			if (link_send(lk, buf_head(&t->pt_buf), n, NULL) == 0)
				buf_consume(&t->pt_buf, n);
		}
	}
	serial_input_flow(d->serial, buf_used(&t->pt_buf), PT_QUEUE_MAX);
}

static void pt_flush_due(void *arg)
{
	pt_pump(arg);
}

void pt_data(struct device *d, const uint8_t *p, size_t n)
{
	struct tcpip *t = tc(d);
	struct link *lk = pt_link(d);
	if (lk->state != LINK_OPEN) {
		/* While the link is being re-established nothing can carry the
		 * bytes (§4.5, UNCONFIRMED on hardware): they are dropped and
		 * counted. */
		if (!t->pt_dropped)
			log_info("passthrough: link down, dropping serial data until it is back");
		t->pt_dropped += n;
		return;
	}
	buf_append(&t->pt_buf, p, n);
	/* Every arrival restarts the idle timer (0 ms: send right away). */
	loop_timer_start(d->loop, &t->pt_flush, (uint64_t)d->transintvl);
	if (buf_used(&t->pt_buf) >= d->profile->pt_packet)
		pt_pump(d);
	else
		serial_input_flow(d->serial, buf_used(&t->pt_buf), PT_QUEUE_MAX);
}

void pt_send_done(struct device *d, struct link *lk, int err)
{
	if (err)
		log_info("passthrough: send failed: %s", strerror(-err));
	pt_pump(d);
}

/* ---- entering and leaving --------------------------------------------- */

static void enter(struct device *d)
{
	struct tcpip *t = tc(d);
	t->pt_active = true;
	t->pt_dropped = 0;
	/* Status lines only with SYSMSG bit 2 while in passthrough (§7). */
	d->at.out.quiet_status = !(d->sysmsg & 4);
	at_engine_passthrough(&d->at);
}

void pt_exit(struct device *d)
{
	struct tcpip *t = tc(d);
	t->pt_active = false;
	/* "+++" ends the reconnect attempts (§4.5), including one under way:
	 * a lookup or connect finishing later would otherwise open link 0
	 * behind the MCU's back and report it like an AT+CIPSTART's result
	 * ("CONNECT", or "ERROR" + "CLOSED" on a timeout), completing
	 * whatever command runs then. In passthrough no command can have
	 * started a lookup, so a pending one is the reconnect's. */
	if (t->query) {
		dns_cancel(t->query);
		t->query = NULL;
	}
	if (t->pt_reconnecting)
		link_close(pt_link(d));
	t->pt_reconnecting = false;
	loop_timer_stop(d->loop, &t->pt_retry);
	/* What is still queued goes out: the guard silence normally flushed
	 * it already. */
	loop_timer_stop(d->loop, &t->pt_flush);
	pt_pump(d);
	serial_pause_input(d->serial, false);
	d->at.out.quiet_status = false;
	/* The link stays, CIPMODE stays 1 (§4.4). */
	at_engine_idle(&d->at);
	if (d->sysmsg & 1)
		at_out_quitt(&d->at.out);
	log_info("passthrough left with +++");
}

static int link_count(struct device *d)
{
	int n = 0;
	for (int i = 0; i < LINK_MAX; i++)
		if (link_in_use(&tc(d)->links[i]))
			n++;
	return n;
}

/* §2.9: passthrough needs CIPMODE=1 and exactly one connection, link 0. */
enum at_rc pt_cipsend_exec(struct at_req *r)
{
	struct device *d = dev(r);
	struct link *lk = pt_link(d);
	if (d->cipmode != 1 || lk->state != LINK_OPEN || link_count(d) != 1) {
		log_info("AT+CIPSEND (passthrough) needs AT+CIPMODE=1 and one open link 0");
		return at_fail(r, AT_ERR_EXEC_FAIL);
	}
	if (lk->proto == LINK_UDP && lk->udp_mode != 0) /* remote must be fixed (§2.5) */
		return at_fail(r, AT_ERR_EXEC_FAIL);
	at_out_result(r->out, AT_RC_PROMPT);
	enter(d);
	return AT_RC_IGNORE;
}

/* ---- link loss and reconnect (§4.5) ------------------------------------ */

static void retry_later(struct device *d)
{
	uint64_t ms = (uint64_t)tc(d)->reconn_intv * 100u;
	loop_timer_start(d->loop, &tc(d)->pt_retry, ms);
}

static void resolved(void *arg, int status, const struct dns_result *res)
{
	struct device *d = arg;
	struct tcpip *t = tc(d);
	t->query = NULL;
	if (status < 0 || !res->n) {
		log_info("passthrough: cannot resolve %s; retrying", t->target.host);
		retry_later(d);
		return;
	}
	struct sockaddr_storage a = res->addr[0];
	if (a.ss_family == AF_INET6)
		((struct sockaddr_in6 *)(void *)&a)->sin6_port = htons((uint16_t)t->target.port);
	else
		((struct sockaddr_in *)(void *)&a)->sin_port = htons((uint16_t)t->target.port);
	if (!policy_allows(d->opts.policy, &a)) {
		log_warn("passthrough: %s port %d refused by the egress policy (--allow)",
			 t->target.host, t->target.port);
		retry_later(d);
		return;
	}
	struct link_opts o = t->opts[0];
	if (t->target.keepalive >= 0)
		o.keepalive = t->target.keepalive;
	t->pt_reconnecting = true;
	int rc;
	if (t->target.proto == LINK_SSL) {
		/* An SSL passthrough link comes back as SSL, with the link's
		 * SSL configuration: never in the clear. */
		struct tls_cfg cfg;
		char why[128] = "";
		rc = ssl_client_cfg(d, 0, t->target.host, &cfg, why, sizeof(why));
		if (rc == 0)
			rc = link_connect_tls(pt_link(d), &a, NULL, &o, 5000, &cfg);
		else
			log_warn("passthrough: SSL configuration unusable: %s", why);
	} else {
		rc = link_connect(pt_link(d), (enum link_proto)t->target.proto, &a, NULL,
				  (uint16_t)t->target.local_port, 0, &o, 5000);
	}
	if (rc < 0) {
		t->pt_reconnecting = false;
		retry_later(d);
	}
}

static void try_connect(void *arg)
{
	struct device *d = arg;
	struct tcpip *t = tc(d);
	if (!t->target.valid || link_in_use(pt_link(d)) || t->query)
		return;
	if (!wifi_has_ip(&d->wifi)) { /* the station joins first (auto-join) */
		retry_later(d);
		return;
	}
	t->query = dns_resolve(t->dns, t->target.host, t->target.v6 ? DNS_V6_ONLY : DNS_PREFER_V4,
			       5000, resolved, d);
	if (!t->query)
		retry_later(d);
}

void pt_connect_done(struct device *d, struct link *lk, int err)
{
	struct tcpip *t = tc(d);
	t->pt_reconnecting = false;
	if (err) {
		log_debug("passthrough: reconnect failed: %s", strerror(-err));
		if (t->pt_active)
			retry_later(d);
		return;
	}
	log_info("passthrough: link 0 connected again");
	t->ever_linked = true;
	t->notified[0] = t->close_held[0] = false;
	tcpip_announce(d, lk); /* shown only with SYSMSG bit 2 */
	tcpip_set_policy(d, lk);
}

bool pt_link_lost(struct device *d, struct link *lk)
{
	struct tcpip *t = tc(d);
	if (!t->pt_active || lk->id != 0)
		return false;
	tcpip_close_link(d, lk); /* CLOSED only with SYSMSG bit 2 */
	buf_reset(&t->pt_buf);
	serial_pause_input(d->serial, false);
	if (!lk->server_side && t->target.valid && !t->mux) {
		log_info("passthrough: link lost, reconnecting every %d ms (AT+CIPRECONNINTV)",
			 t->reconn_intv * 100);
		retry_later(d);
	}
	/* A server in passthrough waits for its next client. */
	return true;
}

void pt_remember(struct device *d, const struct pt_target *t)
{
	tc(d)->target = *t;
}

/* ---- AT+CIPMODE ------------------------------------------------------- */

static enum at_rc cipmode_query(struct at_req *r)
{
	at_out_line(r->out, "+CIPMODE:%d", dev(r)->cipmode);
	return AT_RC_OK;
}

static enum at_rc cipmode_setup(struct at_req *r)
{
	struct device *d = dev(r);
	struct tcpip *t = tc(d);
	int64_t mode;
	if (!at_nargs(r, 1, 1) || at_get_int(r, 0, 0, 1, true, &mode) < 0)
		return AT_RC_ERROR;
	if (mode == 1) {
		/* §2.19: one TCP/SSL link, a UDP link with a fixed remote, or a
		 * server that takes a single client. */
		bool client = false;
		for (int i = 0; i < LINK_MAX; i++) {
			const struct link *lk = &t->links[i];
			if (link_in_use(lk) && !lk->server_side)
				client = true;
			if (link_in_use(lk) && lk->proto == LINK_UDP && lk->udp_mode != 0)
				return at_fail(r, AT_ERR_EXEC_FAIL);
		}
		if (link_count(d) > 1 || (d->server_running && (client || t->server_maxconn > 1)) ||
		    (t->mux && !d->server_running)) {
			log_info("AT+CIPMODE=1 refused: passthrough takes one link (single mode) "
				 "or a server with AT+CIPSERVERMAXCONN=1");
			return at_fail(r, AT_ERR_EXEC_FAIL);
		}
	}
	d->cipmode = (int)mode; /* never saved (§2.19) */
	for (int i = 0; i < LINK_MAX; i++)
		tcpip_set_policy(d, &t->links[i]);
	return AT_RC_OK;
}

/* ---- AT+CIPRECONNINTV ------------------------------------------------- */

static enum at_rc reconnintv_query(struct at_req *r)
{
	at_out_line(r->out, "+CIPRECONNINTV:%d", tc(dev(r))->reconn_intv);
	return AT_RC_OK;
}

static enum at_rc reconnintv_setup(struct at_req *r)
{
	struct device *d = dev(r);
	int64_t v;
	if (!at_nargs(r, 1, 1) || at_get_int(r, 0, 1, 36000, true, &v) < 0)
		return AT_RC_ERROR;
	tc(d)->reconn_intv = (int)v;
	device_save_int(d, NS_PT, "reconn_intv", v, false);
	return AT_RC_OK;
}

/* ---- AT+SAVETRANSLINK ------------------------------------------------- */

static void save_translink(struct device *d, int mode, const struct pt_target *t, int port)
{
	/* Always written, whatever AT+SYSSTORE says (§2.8, §6.2). The saved
	 * AT+CIPRECONNINTV shares the namespace but is its own record, saved
	 * only with SYSSTORE=1 (§6.3): what the flash holds for it stays. */
	static const char *const keys[] = { "mode", "host", "port", "proto", "v6",
					    "keepalive", "lport", "ca" };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		store_erase_key(d->store, NS_PT, keys[i]);
	store_set_int(d->store, NS_PT, "mode", mode);
	if (mode == 1) {
		store_set_str(d->store, NS_PT, "host", t->host);
		store_set_int(d->store, NS_PT, "port", t->port);
		store_set_int(d->store, NS_PT, "proto", t->proto);
		store_set_int(d->store, NS_PT, "v6", t->v6);
		store_set_int(d->store, NS_PT, "keepalive", t->keepalive);
		store_set_int(d->store, NS_PT, "lport", t->local_port);
	} else if (mode == 3) {
		store_set_int(d->store, NS_PT, "port", port);
		store_set_int(d->store, NS_PT, "v6", t->v6);
		store_set_int(d->store, NS_PT, "proto", t->proto);
		store_set_int(d->store, NS_PT, "ca", t->keepalive); /* <CA enable> */
	}
}

static enum at_rc savetranslink_setup(struct at_req *r)
{
	struct device *d = dev(r);
	int64_t mode, v;
	struct pt_target t = { .valid = true, .proto = LINK_TCP, .keepalive = 0 };
	char type[16] = "TCP";
	if (!at_nargs(r, 1, 7) || at_get_int(r, 0, 0, 3, true, &mode) < 0)
		return AT_RC_ERROR;
	if (mode == 0) {
		if (!at_nargs(r, 1, 1))
			return AT_RC_ERROR;
		save_translink(d, 0, NULL, 0);
		return AT_RC_OK;
	}
	if (mode == 2) /* BLE passthrough: no Bluetooth here */
		return at_fail(r, AT_ERR_PARA_INVALID(0));
	if (mode == 3) {
		/* =3[,<port>][,<"type">][,<CA enable>][,<netif>] */
		int64_t port = 333, ca = 0, netif = 0;
		if (!at_nargs(r, 1, 5) || at_get_int(r, 1, 1, 65535, false, &port) < 0 ||
		    at_get_str(r, 2, 8, false, type, sizeof(type)) < 0 ||
		    at_get_int(r, 3, 0, 1, false, &ca) < 0 || at_get_int(r, 4, 0, 3, false, &netif) < 0)
			return AT_RC_ERROR;
		if (!tcpip_parse_type(type, &t.proto, &t.v6) || t.proto == LINK_UDP)
			return at_fail(r, AT_ERR_PARA_INVALID(2));
		if (t.proto == LINK_SSL && !d->profile->ssl_server)
			return at_fail(r, AT_ERR_PARA_INVALID(2));
		if (t.proto != LINK_SSL && ca) /* <CA enable> is for SSL */
			return at_fail(r, AT_ERR_PARA_INVALID(3));
		t.keepalive = (int)ca;
		save_translink(d, 3, &t, (int)port);
		return AT_RC_OK;
	}
	/* =1,<"remote host">,<remote port>[,<"type">,<keep_alive> | <local port>] */
	if (!at_nargs(r, 3, 5) || at_get_str(r, 1, 64, true, t.host, sizeof(t.host)) < 0 ||
	    at_get_int(r, 2, 1, 65535, true, &v) < 0)
		return AT_RC_ERROR;
	t.port = (int)v;
	if (at_get_str(r, 3, 8, false, type, sizeof(type)) < 0)
		return AT_RC_ERROR;
	if (!t.host[0] || !tcpip_parse_type(type, &t.proto, &t.v6))
		return at_fail(r, AT_ERR_PARA_INVALID(3));
	if (t.proto == LINK_UDP) {
		if (at_get_int(r, 4, 0, 65535, false, &v) < 0)
			return AT_RC_ERROR;
		t.local_port = at_arg_int(&r->args, 4, &v) == AT_ARG_OK ? (int)v : 0;
	} else {
		if (at_get_int(r, 4, 0, 7200, false, &v) < 0)
			return AT_RC_ERROR;
		t.keepalive = at_arg_int(&r->args, 4, &v) == AT_ARG_OK ? (int)v : 0;
	}
	save_translink(d, 1, &t, 0);
	return AT_RC_OK;
}

/* ---- lifecycle -------------------------------------------------------- */

void pt_state_init(struct device *d)
{
	struct tcpip *t = tc(d);
	buf_init(&t->pt_buf);
	loop_timer_init(&t->pt_flush, pt_flush_due, d);
	loop_timer_init(&t->pt_retry, try_connect, d);
}

void pt_load(struct device *d)
{
	tc(d)->reconn_intv = (int)device_load_int(d, NS_PT, "reconn_intv", 1);
	d->cipmode = 0;
}

void pt_reset(struct device *d)
{
	struct tcpip *t = tc(d);
	loop_timer_stop(d->loop, &t->pt_flush);
	loop_timer_stop(d->loop, &t->pt_retry);
	buf_reset(&t->pt_buf);
	t->pt_active = false;
	t->pt_reconnecting = false;
	memset(&t->target, 0, sizeof(t->target));
	d->at.out.quiet_status = false;
	d->cipmode = 0;
}

void pt_boot(struct device *d)
{
	struct tcpip *t = tc(d);
	int64_t mode = device_load_int(d, NS_PT, "mode", 0);
	if (mode != 1 && mode != 3)
		return;
	char host[65] = "";
	store_get_str(d->store, NS_PT, "host", host, sizeof(host));
	d->cipmode = 1;
	if (mode == 1) {
		struct pt_target pt = {
			.valid = true,
			.proto = (int)device_load_int(d, NS_PT, "proto", LINK_TCP),
			.v6 = device_load_int(d, NS_PT, "v6", 0) != 0,
			.port = (int)device_load_int(d, NS_PT, "port", 0),
			.keepalive = (int)device_load_int(d, NS_PT, "keepalive", 0),
			.local_port = (int)device_load_int(d, NS_PT, "lport", 0),
		};
		snprintf(pt.host, sizeof(pt.host), "%s", host);
		if (!pt.host[0] || pt.port <= 0 ||
		    (pt.proto != LINK_TCP && pt.proto != LINK_UDP && pt.proto != LINK_SSL))
			return;
		t->target = pt;
		t->mux = 0;
		log_info("AT+SAVETRANSLINK: passthrough to %s port %d at power-up", pt.host, pt.port);
		try_connect(d);
	} else {
		int port = (int)device_load_int(d, NS_PT, "port", 333);
		t->mux = 1;
		t->server_maxconn = 1;
		t->server_ssl = device_load_int(d, NS_PT, "proto", LINK_TCP) == LINK_SSL;
		int ca = (int)device_load_int(d, NS_PT, "ca", 0);
		if (server_start(d, device_load_int(d, NS_PT, "v6", 0) != 0, port, ca, 0) < 0)
			return;
		log_info("AT+SAVETRANSLINK: passthrough server on port %d at power-up", port);
	}
	/* §4.6: the "\r\n>" prompt, then raw data both ways. */
	at_out_boot_prompt(&d->at.out);
	enter(d);
}

static const struct at_cmd pt_cmds[] = {
	/* name                test  query             setup                exec */
	{ "+CIPMODE",          NULL, cipmode_query,    cipmode_setup,       NULL },
	{ "+CIPRECONNINTV",    NULL, reconnintv_query, reconnintv_setup,    NULL },
	{ "+SAVETRANSLINK",    NULL, NULL,             savetranslink_setup, NULL },
};

const struct at_cmd_table cmd_passthrough_table = AT_TABLE("TCP/IP (passthrough)", pt_cmds);
