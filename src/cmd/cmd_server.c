/* ESP-AT TCP/IP chapter, the server: AT+CIPSERVER, AT+CIPSERVERMAXCONN,
 * AT+CIPSTO (protocol.md §2.17, §2.18, §2.20). Accepted clients become
 * links with the lowest free id, announced as "<id>,CONNECT". */
#include "cmd/cmd.h"
#include "cmd/tcpip.h"

#include "core/log.h"
#include "dev/device.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define DEFAULT_PORT 333
/* AT+CIPSTO default: the current firmware's initialiser reads 0, the
 * NonOS docs say 180 (§2.20, UNCONFIRMED); a timeout keeps stale clients
 * from holding link ids forever, so 180. */
#define DEFAULT_STO 180

static struct device *dev(struct at_req *r)
{
	return r->dev;
}

static struct tcpip *tc(struct device *d)
{
	return &d->tcpip;
}

static void sto_expired(void *arg)
{
	struct sto_slot *a = arg;
	struct link *lk = &tc(a->d)->links[a->id];
	if (!link_in_use(lk) || !lk->server_side)
		return;
	log_info("link %d: client idle for %d s (AT+CIPSTO): closed", a->id, tc(a->d)->sto);
	tcpip_close_link(a->d, lk);
}

void server_touch(struct device *d, struct link *lk)
{
	struct tcpip *t = tc(d);
	if (t->sto > 0)
		loop_timer_start(d->loop, &t->sto_slot[lk->id].timer, (uint64_t)t->sto * 1000u);
}

void server_forget(struct device *d, struct link *lk)
{
	loop_timer_stop(d->loop, &tc(d)->sto_slot[lk->id].timer);
}

static int server_links(struct device *d)
{
	int n = 0;
	for (int i = 0; i < LINK_MAX; i++)
		if (link_in_use(&tc(d)->links[i]) && tc(d)->links[i].server_side)
			n++;
	return n;
}

static void accepted(void *arg, int fd)
{
	struct device *d = arg;
	struct tcpip *t = tc(d);
	struct link *lk = NULL;
	for (int i = 0; i < LINK_MAX && !lk; i++)
		if (!link_in_use(&t->links[i]))
			lk = &t->links[i];
	if (!lk || server_links(d) >= t->server_maxconn) {
		/* Beyond AT+CIPSERVERMAXCONN the client is not taken as a
		 * link: closed at once, so it knows (§2.18). */
		log_info("server: connection refused, %d of %d allowed clients connected "
			 "(AT+CIPSERVERMAXCONN)", server_links(d), t->server_maxconn);
		struct linger lg = { 1, 0 };
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fd);
		return;
	}
	struct tls_cfg cfg, *tls = NULL;
	if (t->server_ssl) {
		char why[128] = "";
		if (ssl_server_cfg(d, t->server_ca, &cfg, why, sizeof(why)) < 0) {
			log_warn("server: SSL client refused: %s", why);
			close(fd);
			return;
		}
		tls = &cfg;
	}
	if (link_adopt(lk, fd, &t->opts[lk->id], tls) < 0) {
		if (lk->tls_why[0])
			log_warn("server: %s", lk->tls_why);
		close(fd);
		return;
	}
	if (tls) /* announced once the handshake succeeds */
		return;
	server_handshake_done(d, lk, 0);
}

void server_handshake_done(struct device *d, struct link *lk, int err)
{
	struct tcpip *t = tc(d);
	if (err) {
		/* The module drops a client whose handshake fails, silently. */
		log_info("server: SSL client rejected: %s", lk->tls_why[0] ? lk->tls_why
									      : strerror(-err));
		return;
	}
	t->ever_linked = true;
	t->notified[lk->id] = false;
	t->close_held[lk->id] = false;
	tcpip_announce(d, lk);
	tcpip_set_policy(d, lk);
	server_touch(d, lk);
}

void server_state_init(struct device *d)
{
	struct tcpip *t = tc(d);
	server_init(&t->server, d->loop, accepted, d);
	for (int i = 0; i < LINK_MAX; i++) {
		t->sto_slot[i].d = d;
		t->sto_slot[i].id = i;
		loop_timer_init(&t->sto_slot[i].timer, sto_expired, &t->sto_slot[i]);
	}
}

void server_load(struct device *d)
{
	struct tcpip *t = tc(d);
	t->server_maxconn = 5; /* §2.18, UNCONFIRMED default */
	t->sto = DEFAULT_STO;
	t->server_ca = 0;
	t->server_netif = 0;
}

void server_reset(struct device *d)
{
	tc(d)->server_ssl = false;
	server_close(&tc(d)->server);
	d->server_running = false;
	for (int i = 0; i < LINK_MAX; i++)
		loop_timer_stop(d->loop, &tc(d)->sto_slot[i].timer);
}

int server_start(struct device *d, bool v6, int port, int ca, int netif)
{
	struct tcpip *t = tc(d);
	/* <netif> 1 (station): listen on the station's address; otherwise
	 * on every address of the host, as the module listens on all its
	 * interfaces. */
	struct sockaddr_storage a, *bind_addr = NULL;
	if (netif == 1 && d->wifi.host.has_ip && !v6) {
		memset(&a, 0, sizeof(a));
		a.ss_family = AF_INET;
		((struct sockaddr_in *)(void *)&a)->sin_addr = d->wifi.host.ip;
		bind_addr = &a;
	}
	int rc = server_listen(&t->server, v6, bind_addr, (uint16_t)port);
	if (rc < 0) {
		log_warn("server: cannot listen on port %d: %s", port, strerror(-rc));
		return rc;
	}
	t->server_ca = ca;
	t->server_netif = netif;
	d->server_running = true;
	log_info("server listening on port %d (%s); anyone who can reach this host on it "
		 "reaches the MCU", port, bind_addr ? "station address" : "all addresses");
	return 0;
}

static enum at_rc cipserver_query(struct at_req *r)
{
	struct device *d = dev(r);
	struct tcpip *t = tc(d);
	if (!server_running(&t->server)) {
		at_out_line(r->out, "+CIPSERVER:0");
		return AT_RC_OK;
	}
	static const char *const types[2][2] = { { "TCP", "TCPv6" }, { "SSL", "SSLv6" } };
	at_out_line(r->out, "+CIPSERVER:1,%u,\"%s\",%d,%d", t->server.port,
		    types[t->server_ssl][t->server.v6], t->server_ca, t->server_netif);
	return AT_RC_OK;
}

static enum at_rc cipserver_stop(struct at_req *r)
{
	struct device *d = dev(r);
	struct tcpip *t = tc(d);
	int64_t all = 0;
	if (!at_nargs(r, 1, 2) || at_get_int(r, 1, 0, 1, false, &all) < 0)
		return AT_RC_ERROR;
	if (!server_running(&t->server)) /* no "no change" + OK as NonOS had (§2.17) */
		return at_fail(r, AT_ERR_EXEC_FAIL);
	server_close(&t->server);
	d->server_running = false;
	if (all) /* 1: the server's clients go too */
		for (int i = 0; i < LINK_MAX; i++)
			if (link_in_use(&t->links[i]) && t->links[i].server_side)
				tcpip_close_link(d, &t->links[i]);
	return AT_RC_OK;
}

static enum at_rc cipserver_setup(struct at_req *r)
{
	struct device *d = dev(r);
	struct tcpip *t = tc(d);
	int64_t mode, port = DEFAULT_PORT, ca = 0, netif = 0;
	char type[16] = "TCP";
	if (!at_nargs(r, 1, 5) || at_get_int(r, 0, 0, 1, true, &mode) < 0)
		return AT_RC_ERROR;
	if (mode == 0)
		return cipserver_stop(r);
	if (at_get_int(r, 1, 1, 65535, false, &port) < 0 ||
	    at_get_str(r, 2, 8, false, type, sizeof(type)) < 0 ||
	    at_get_int(r, 3, 0, 1, false, &ca) < 0 || at_get_int(r, 4, 0, 3, false, &netif) < 0)
		return AT_RC_ERROR;
	bool v6, ssl;
	if (strcasecmp(type, "TCP") == 0 || strcasecmp(type, "SSL") == 0) {
		v6 = false;
	} else if (strcasecmp(type, "TCPv6") == 0 || strcasecmp(type, "SSLv6") == 0) {
		v6 = true;
	} else {
		return at_fail(r, AT_ERR_PARA_INVALID(2));
	}
	ssl = strncasecmp(type, "SSL", 3) == 0;
	if (ssl && !d->profile->ssl_server) { /* the ESP8266 has none (§2.17) */
		log_info("AT+CIPSERVER: the %s has no SSL server", d->profile->chip);
		return at_fail(r, AT_ERR_EXEC_FAIL);
	}
	if (!ssl && ca) /* <CA enable> is for SSL servers */
		return at_fail(r, AT_ERR_PARA_INVALID(3));
	/* Only with multiple connections, only one server (§2.17). */
	if (!t->mux || server_running(&t->server)) {
		log_info("AT+CIPSERVER needs AT+CIPMUX=1 and no server running");
		return at_fail(r, AT_ERR_EXEC_FAIL);
	}
	if (v6 && !d->ipv6)
		return at_fail(r, AT_ERR_EXEC_FAIL);
	if (d->cipmode && t->server_maxconn > 1)
		return at_fail(r, AT_ERR_EXEC_FAIL);
	t->server_ssl = ssl;
	int rc = server_start(d, v6, (int)port, (int)ca, (int)netif);
	if (rc < 0) {
		at_out_errno(r->out, rc);
		return at_fail(r, AT_ERR_EXEC_FAIL);
	}
	return AT_RC_OK;
}

static enum at_rc maxconn_query(struct at_req *r)
{
	at_out_line(r->out, "+CIPSERVERMAXCONN:%d", tc(dev(r))->server_maxconn);
	return AT_RC_OK;
}

static enum at_rc maxconn_setup(struct at_req *r)
{
	struct device *d = dev(r);
	int64_t n;
	if (!at_nargs(r, 1, 1) || at_get_int(r, 0, 1, LINK_MAX, true, &n) < 0)
		return AT_RC_ERROR;
	if (server_running(&tc(d)->server)) /* only before the server starts */
		return at_fail(r, AT_ERR_EXEC_FAIL);
	tc(d)->server_maxconn = (int)n;
	return AT_RC_OK;
}

static enum at_rc cipsto_query(struct at_req *r)
{
	at_out_line(r->out, "+CIPSTO:%d", tc(dev(r))->sto);
	return AT_RC_OK;
}

static enum at_rc cipsto_setup(struct at_req *r)
{
	struct device *d = dev(r);
	struct tcpip *t = tc(d);
	int64_t v;
	if (!at_nargs(r, 1, 1) || at_get_int(r, 0, 0, 7200, true, &v) < 0)
		return AT_RC_ERROR;
	t->sto = (int)v;
	/* Running clients get the new timeout from now on. */
	for (int i = 0; i < LINK_MAX; i++) {
		struct link *lk = &t->links[i];
		if (link_in_use(lk) && lk->server_side) {
			if (t->sto)
				server_touch(d, lk);
			else
				server_forget(d, lk);
		}
	}
	return AT_RC_OK;
}

static const struct at_cmd server_cmds[] = {
	/* name                 test  query           setup            exec */
	{ "+CIPSERVER",         NULL, cipserver_query, cipserver_setup, NULL },
	{ "+CIPSERVERMAXCONN",  NULL, maxconn_query,   maxconn_setup,   NULL },
	{ "+CIPSTO",            NULL, cipsto_query,    cipsto_setup,    NULL },
};

const struct at_cmd_table cmd_server_table = AT_TABLE("TCP/IP (server)", server_cmds);
