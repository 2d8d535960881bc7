/* ESP-AT "TCP/IP AT Commands", the configuration and status half
 * (protocol.md §2): AT+CIPSTATUS, AT+CIPSTATE, AT+CIFSR, AT+CIPMUX,
 * AT+CIPV6, AT+CIPDINFO, AT+CIPDOMAIN, AT+CIPDNS, AT+CIPTCPOPT,
 * AT+CIPCONNPERSIST, AT+CIPSENDLCFG. Links and the data path live in
 * cmd_tcpip.c. */
#include "cmd/tcpip.h"

#include "core/log.h"
#include "dev/device.h"
#include "store/store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_SYS "sys"     /* AT+CIPV6 lives here, next to cmd_basic_load's read */
#define NS_TCPIP "tcpip"

#define DOMAIN_MAX 64    /* <"domain name">, like CIPSTART's host (§2.5) */
#define SENDL_REPORT_DEF 1024
#define SENDL_TRANSMIT_DEF 2920

/* AT+CIPDNS defaults when no server is given (§2.32). */
static const char *const dns_defaults[TCPIP_DNS_MAX] = { "208.67.222.222", "114.114.114.114",
							  "8.8.8.8" };

static struct device *dev(struct at_req *r)
{
	return r->dev;
}


/* Normalise a numeric IPv4/IPv6 address; -1 if it is not one. A zone
 * ("%eth0") is dropped, as lwIP has none to print. */
static int norm_addr(const char *s, char *out, size_t size)
{
	char tmp[INET6_ADDRSTRLEN + 16];
	unsigned char a[sizeof(struct in6_addr)];
	if (snprintf(tmp, sizeof(tmp), "%s", s) >= (int)sizeof(tmp))
		return -1;
	if (inet_pton(AF_INET, tmp, a) == 1)
		return inet_ntop(AF_INET, a, out, (socklen_t)size) ? 0 : -1;
	char *pct = strchr(tmp, '%');
	if (pct)
		*pct = '\0';
	if (inet_pton(AF_INET6, tmp, a) == 1)
		return inet_ntop(AF_INET6, a, out, (socklen_t)size) ? 0 : -1;
	return -1;
}

/* ---- persistence ------------------------------------------------------- */

/* CIPTCPOPT record: per link linger, nodelay, sndtimeo, keepalive. */
struct tcpopt_rec {
	int32_t v[LINK_MAX][4];
};

static void save_tcpopt(struct device *d)
{
	struct tcpopt_rec rec;
	memset(&rec, 0, sizeof(rec));
	for (int i = 0; i < LINK_MAX; i++) {
		const struct link_opts *o = &d->tcpip.opts[i];
		rec.v[i][0] = o->linger;
		rec.v[i][1] = o->nodelay;
		rec.v[i][2] = (int32_t)o->sndtimeo_ms;
		rec.v[i][3] = o->keepalive;
	}
	device_save_blob(d, NS_TCPIP, "tcpopt", &rec, sizeof(rec), false);
}

static void save_dns(struct device *d)
{
	char list[TCPIP_DNS_MAX * 47] = "";
	size_t o = 0;
	for (int i = 0; i < d->tcpip.ndns; i++)
		o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? "," : "",
				      d->tcpip.dns_servers[i]);
	device_save_int(d, NS_TCPIP, "dns_en", d->tcpip.dns_enable, false);
	device_save_str(d, NS_TCPIP, "dns", list, false);
}

static void load_dns(struct device *d)
{
	struct tcpip *t = &d->tcpip;
	t->dns_enable = device_load_int(d, NS_TCPIP, "dns_en", 0) ? 1 : 0;
	t->ndns = 0;
	char list[TCPIP_DNS_MAX * 47 + 1];
	if (t->dns_enable && store_get_str(d->store, NS_TCPIP, "dns", list, sizeof(list)) == 0) {
		char *save = NULL;
		for (char *s = strtok_r(list, ",", &save); s && t->ndns < TCPIP_DNS_MAX;
		     s = strtok_r(NULL, ",", &save)) {
			if (norm_addr(s, t->dns_servers[t->ndns], sizeof(t->dns_servers[0])) == 0)
				t->ndns++;
		}
	}
	if (t->dns_enable && t->ndns == 0) {
		for (int i = 0; i < TCPIP_DNS_MAX; i++)
			snprintf(t->dns_servers[i], sizeof(t->dns_servers[i]), "%s", dns_defaults[i]);
		t->ndns = TCPIP_DNS_MAX;
	}
}

static void load_tcpopt(struct device *d)
{
	struct tcpopt_rec rec;
	size_t len = 0;
	if (store_get_blob(d->store, NS_TCPIP, "tcpopt", &rec, sizeof(rec), &len) < 0 ||
	    len != sizeof(rec))
		return;
	for (int i = 0; i < LINK_MAX; i++) {
		int32_t *v = rec.v[i];
		if (v[0] < -1 || v[1] < 0 || v[1] > 1 || v[2] < 0 || v[3] < 0 || v[3] > 7200)
			continue; /* not ours: keep the factory values */
		struct link_opts *o = &d->tcpip.opts[i];
		o->linger = v[0];
		o->nodelay = v[1] != 0;
		o->sndtimeo_ms = (uint32_t)v[2];
		o->keepalive = v[3];
	}
}

void tcpip_apply_dns(struct device *d)
{
	struct tcpip *t = &d->tcpip;
	if (!t->dns)
		return;
	if (!t->dns_enable || t->ndns == 0) {
		/* Automatic: the host's resolv.conf stands in for DHCP's servers. */
		if (dns_set_servers(t->dns, NULL, 0) < 0)
			log_warn("dns: cannot use the system's servers");
		return;
	}
	char buf[TCPIP_DNS_MAX][64];
	const char *ptr[TCPIP_DNS_MAX];
	for (int i = 0; i < t->ndns; i++) {
		const char *s = t->dns_servers[i];
		if (t->dns_port == 53)
			snprintf(buf[i], sizeof(buf[i]), "%s", s);
		else if (strchr(s, ':'))
			snprintf(buf[i], sizeof(buf[i]), "[%s]:%u", s, (unsigned)t->dns_port);
		else
			snprintf(buf[i], sizeof(buf[i]), "%s:%u", s, (unsigned)t->dns_port);
		ptr[i] = buf[i];
	}
	if (dns_set_servers(t->dns, ptr, (size_t)t->ndns) < 0)
		log_warn("dns: cannot use the AT+CIPDNS servers (first %s)", ptr[0]);
}

void tcpip_load(struct device *d)
{
	struct tcpip *t = &d->tcpip;
	/* Factory values; none of these has an NVS record (§6.4). */
	t->mux = 0;
	t->dinfo = false;
	for (int i = 0; i < LINK_MAX; i++) {
		t->recv_mode[i] = 0;
		t->report_mode[i] = 0;
		t->connpersist[i] = 0;
		t->opts[i].keepalive = 0;
		t->opts[i].linger = -1;  /* §2.33: -1 off */
		t->opts[i].nodelay = false;
		t->opts[i].sndtimeo_ms = 0;
	}
	t->ever_linked = false;
	t->sendl_report = SENDL_REPORT_DEF;   /* §2.11 */
	t->sendl_transmit = SENDL_TRANSMIT_DEF;
	t->recvlen_idle = d->opts.recvlen_idle;
	t->dns_port = d->opts.dns_port ? d->opts.dns_port : 53;
	t->domain_show_all = false;
	/* Saved with AT+SYSSTORE=1 (§6.3): CIPDNS, CIPTCPOPT. CIPV6 is read by
	 * cmd_basic_load. */
	load_dns(d);
	load_tcpopt(d);
	tcpip_apply_dns(d);
	server_load(d);
	pt_load(d);
}

/* ---- AT+CIPSTATUS / AT+CIPSTATE? ---------------------------------------- */

/* A link the module reports: open, or closed by the peer with data (or a
 * CLOSED) still held for the host (passive mode, §2.28). */
static bool link_listed(const struct device *d, int i)
{
	const struct link *lk = &d->tcpip.links[i];
	if (lk->state == LINK_OPEN)
		return true;
	return lk->state == LINK_PEER_CLOSED &&
	       (d->tcpip.close_held[i] || link_buffered(lk) > 0);
}

static void print_links(struct at_req *r, const char *name)
{
	struct device *d = dev(r);
	for (int i = 0; i < LINK_MAX; i++) {
		if (!link_listed(d, i))
			continue;
		const struct link *lk = &d->tcpip.links[i];
		char ip[INET6_ADDRSTRLEN];
		link_addr_str(&lk->remote, ip, sizeof(ip));
		/* The link ID is printed in single mode too (§2.2). */
		at_out_line(r->out, "+%s:%d,\"%s\",\"%s\",%u,%u,%d", name, i, tcpip_type_str(lk), ip,
			    (unsigned)link_addr_port(&lk->remote), (unsigned)lk->local_port,
			    lk->server_side ? 1 : 0);
	}
}

/* <stat> of AT+CIPSTATUS (§2.2, g_sta_state). */
static int sta_stat(const struct device *d)
{
	if (!device_sta_on(d))
		return 0;
	bool any = false;
	for (int i = 0; i < LINK_MAX; i++)
		any = any || link_listed(d, i);
	if (wifi_has_ip(&d->wifi))
		return any ? 3 : d->tcpip.ever_linked ? 4 : 2;
	if (d->wifi.state == WIFI_ST_IDLE)
		return 1;
	return 5; /* connecting, connected without IPv4, or disconnected */
}

static enum at_rc cipstatus_exec(struct at_req *r)
{
	/* Deprecated (gone from the docs in v4.1) but still implemented and
	 * used by WiFiEspAT, lwesp and Adafruit (§2.2). */
	at_out_line(r->out, "STATUS:%d", sta_stat(dev(r)));
	print_links(r, "CIPSTATUS");
	return AT_RC_OK;
}

static enum at_rc cipstate_query(struct at_req *r)
{
	print_links(r, "CIPSTATE"); /* no connection: just OK (§2.3) */
	return AT_RC_OK;
}

/* ---- AT+CIFSR ------------------------------------------------------------ */

static void cifsr_ip(struct at_req *r, const char *what, int af, const void *addr)
{
	char s[INET6_ADDRSTRLEN];
	inet_ntop(af, addr, s, sizeof(s));
	at_out_line(r->out, "+CIFSR:%s,\"%s\"", what, s);
}

static enum at_rc cifsr_exec(struct at_req *r)
{
	struct device *d = dev(r);
	char mac[18];
	/* AP lines only with a SoftAP, STA lines only with a station (§2.15).
	 * The SoftAP is virtual and has no IPv6 address. */
	if (device_ap_on(d)) {
		cifsr_ip(r, "APIP", AF_INET, &d->ws.ap.ip);
		wifi_format_mac(mac, d->ws.ap_mac);
		at_out_line(r->out, "+CIFSR:APMAC,\"%s\"", mac);
	}
	if (device_sta_on(d)) {
		struct in_addr zero = { 0 };
		bool up = wifi_has_ip(&d->wifi);
		/* Same source as AT+CIPSTA?: the static address if one is set,
		 * else the host's after a join, else "0.0.0.0" (§2.15). */
		const struct in_addr *ip = d->ws.sta_static.set ? &d->ws.sta_static.ip
					 : up && d->wifi.host.has_ip ? &d->wifi.host.ip
								       : &zero;
		cifsr_ip(r, "STAIP", AF_INET, ip);
		if (d->ipv6 && up && d->wifi.host.has_ip6ll)
			cifsr_ip(r, "STAIP6LL", AF_INET6, &d->wifi.host.ip6ll);
		if (d->ipv6 && up && d->wifi.host.has_ip6gl)
			cifsr_ip(r, "STAIP6GL", AF_INET6, &d->wifi.host.ip6gl);
		wifi_format_mac(mac, d->ws.sta_mac);
		at_out_line(r->out, "+CIFSR:STAMAC,\"%s\"", mac);
	}
	return AT_RC_OK;
}

/* ---- AT+CIPMUX ------------------------------------------------------------ */

static bool any_link_in_use(const struct device *d)
{
	for (int i = 0; i < LINK_MAX; i++)
		if (link_in_use(&d->tcpip.links[i]))
			return true;
	return false;
}

static enum at_rc cipmux_query(struct at_req *r)
{
	at_out_line(r->out, "+CIPMUX:%d", dev(r)->tcpip.mux);
	return AT_RC_OK;
}

static enum at_rc cipmux_setup(struct at_req *r)
{
	struct device *d = dev(r);
	int64_t v;
	if (!at_nargs(r, 1, 1) || at_get_int(r, 0, 0, 1, true, &v) < 0)
		return AT_RC_ERROR;
	/* §2.16: refused while a connection exists ("connection exists"), for
	 * mux 1 in passthrough mode ("IPMODE != 0") and for mux 0 while a
	 * server runs ("CIPSERVER != 0"), even when the value is unchanged. */
	if (any_link_in_use(d) || (v == 1 && d->cipmode == 1) || (v == 0 && d->server_running))
		return at_fail(r, AT_ERR_EXEC_FAIL);
	d->tcpip.mux = (int)v; /* no NVS record: 0 after a reset (§6.4) */
	return AT_RC_OK;
}

/* ---- AT+CIPV6, AT+CIPDINFO ------------------------------------------------- */

static enum at_rc cipv6_query(struct at_req *r)
{
	at_out_line(r->out, "+CIPV6:%d", dev(r)->ipv6 ? 1 : 0);
	return AT_RC_OK;
}

static enum at_rc cipv6_setup(struct at_req *r)
{
	int64_t v;
	if (!at_nargs(r, 1, 1) || at_get_int(r, 0, 0, 1, true, &v) < 0)
		return AT_RC_ERROR;
	dev(r)->ipv6 = v != 0;
	device_save_int(dev(r), NS_SYS, "ipv6", v, false); /* SYSSTORE=1 only, §2.1 */
	return AT_RC_OK;
}

static enum at_rc cipdinfo_query(struct at_req *r)
{
	/* "true"/"false" and no CR LF (§2.25, §1.7; NonOS said TRUE/FALSE). */
	at_out_text(r->out, "+CIPDINFO:%s", dev(r)->tcpip.dinfo ? "true" : "false");
	return AT_RC_OK;
}

static enum at_rc cipdinfo_setup(struct at_req *r)
{
	int64_t v;
	if (!at_nargs(r, 1, 1) || at_get_int(r, 0, 0, 1, true, &v) < 0)
		return AT_RC_ERROR;
	dev(r)->tcpip.dinfo = v != 0; /* not saved (§6.4) */
	return AT_RC_OK;
}

/* ---- AT+CIPDOMAIN ---------------------------------------------------------- */

static void domain_done(void *arg, int status, const struct dns_result *res)
{
	struct device *d = arg;
	d->tcpip.query = NULL;
	if (status < 0 || !res || res->n == 0) {
		/* The reason ("unknown host") goes to the log only (§2.4). */
		log_info("AT+CIPDOMAIN: lookup failed: %s", strerror(status < 0 ? -status : ENOENT));
		d->at.req.errcode = AT_ERR_EXEC_FAIL;
		at_engine_complete(&d->at, AT_RC_ERROR);
		return;
	}
	size_t n = d->tcpip.domain_show_all ? res->n : 1;
	for (size_t i = 0; i < n; i++) {
		char ip[INET6_ADDRSTRLEN];
		link_addr_str(&res->addr[i], ip, sizeof(ip));
		/* Quoted in ESP-AT (`%s:"%s"`), unquoted in NonOS (§2.4). */
		at_out_line(&d->at.out, "+CIPDOMAIN:\"%s\"", ip);
	}
	at_engine_complete(&d->at, AT_RC_OK);
}

static enum at_rc cipdomain_setup(struct at_req *r)
{
	struct device *d = dev(r);
	char name[DOMAIN_MAX + 2];
	int64_t net = DNS_PREFER_V4, timeout = 0, all = 0;
	if (!at_nargs(r, 1, 4) || at_get_str(r, 0, DOMAIN_MAX, true, name, sizeof(name)) < 0 ||
	    at_get_int(r, 1, 1, 3, false, &net) < 0 || at_get_int(r, 2, 0, 60000, false, &timeout) < 0 ||
	    at_get_int(r, 3, 0, 1, false, &all) < 0)
		return AT_RC_ERROR;
	if (!name[0])
		return at_fail(r, AT_ERR_PARA_INVALID(0));
	/* IPv6 lookups need AT+CIPV6=1 first (§2.1). */
	if (net == DNS_V6_ONLY && !d->ipv6)
		return at_fail(r, AT_ERR_PARA_INVALID(1));
	/* No station address, no DNS (the docs join first, §2.4 example). */
	if (!wifi_has_ip(&d->wifi) || !d->tcpip.dns)
		return at_fail(r, AT_ERR_EXEC_FAIL);
	d->tcpip.domain_show_all = all != 0;
	d->tcpip.query = dns_resolve(d->tcpip.dns, name, (enum dns_family)net, (uint32_t)timeout,
				     domain_done, d);
	if (!d->tcpip.query)
		return at_fail(r, AT_ERR_EXEC_FAIL);
	return AT_RC_PENDING; /* busy until the answer (§1.9) */
}

/* ---- AT+CIPDNS ------------------------------------------------------------- */

static int resolv_conf_servers(char out[TCPIP_DNS_MAX][46])
{
	FILE *f = fopen("/etc/resolv.conf", "r");
	if (!f)
		return 0;
	int n = 0;
	char line[512];
	while (n < TCPIP_DNS_MAX && fgets(line, sizeof(line), f)) {
		char kw[16], addr[128];
		if (sscanf(line, "%15s %127s", kw, addr) != 2 || strcmp(kw, "nameserver") != 0)
			continue;
		if (norm_addr(addr, out[n], 46) == 0)
			n++;
	}
	fclose(f);
	return n;
}

static enum at_rc cipdns_query(struct at_req *r)
{
	struct tcpip *t = &dev(r)->tcpip;
	char sys[TCPIP_DNS_MAX][46];
	const char *list[TCPIP_DNS_MAX];
	int n = 0;
	if (t->dns_enable) {
		for (n = 0; n < t->ndns; n++)
			list[n] = t->dns_servers[n];
	} else {
		/* Automatic: what "DHCP" gave, i.e. the host's servers; the
		 * firmware's defaults until there are some (§2.32). */
		n = resolv_conf_servers(sys);
		for (int i = 0; i < n; i++)
			list[i] = sys[i];
		if (n == 0) {
			for (n = 0; n < TCPIP_DNS_MAX; n++)
				list[n] = dns_defaults[n];
		}
	}
	char line[16 + TCPIP_DNS_MAX * 50];
	size_t o = (size_t)snprintf(line, sizeof(line), "+CIPDNS:%d", t->dns_enable);
	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(line + o, sizeof(line) - o, ",\"%s\"", list[i]);
	at_out_line(r->out, "%s", line);
	return AT_RC_OK;
}

static enum at_rc cipdns_setup(struct at_req *r)
{
	struct device *d = dev(r);
	struct tcpip *t = &d->tcpip;
	int64_t en;
	char srv[TCPIP_DNS_MAX][46];
	int n = 0;
	if (!at_nargs(r, 1, 1 + TCPIP_DNS_MAX) || at_get_int(r, 0, 0, 1, true, &en) < 0)
		return AT_RC_ERROR;
	for (int i = 1; i < r->args.n; i++) {
		char s[64];
		int rc = at_get_str(r, i, 45, false, s, sizeof(s));
		if (rc < 0)
			return AT_RC_ERROR;
		if (rc == AT_ARG_OMITTED || !en)
			continue; /* the servers only count with <enable> 1 (§2.32) */
		if (norm_addr(s, srv[n], sizeof(srv[n])) < 0)
			return at_fail(r, AT_ERR_PARA_INVALID(i));
		/* "The three parameters cannot be set to the same server." */
		for (int k = 0; k < n; k++)
			if (strcmp(srv[k], srv[n]) == 0)
				return at_fail(r, AT_ERR_PARA_INVALID(i));
		n++;
	}
	if (en && n == 0) {
		/* Manual without servers: the firmware's defaults (§2.32). */
		for (n = 0; n < TCPIP_DNS_MAX; n++)
			snprintf(srv[n], sizeof(srv[n]), "%s", dns_defaults[n]);
	}
	t->dns_enable = (int)en;
	t->ndns = n;
	for (int i = 0; i < n; i++)
		memcpy(t->dns_servers[i], srv[i], sizeof(srv[i]));
	save_dns(d); /* SYSSTORE=1 only (§6.3) */
	tcpip_apply_dns(d);
	return AT_RC_OK;
}

/* ---- AT+CIPTCPOPT ---------------------------------------------------------- */

static enum at_rc ciptcpopt_query(struct at_req *r)
{
	struct tcpip *t = &dev(r)->tcpip;
	/* Single mode: link 0 is the only link (§2). */
	int n = t->mux ? LINK_MAX : 1;
	for (int i = 0; i < n; i++) {
		const struct link_opts *o = &t->opts[i];
		at_out_line(r->out, "+CIPTCPOPT:%d,%d,%d,%u,%d", i, o->linger, o->nodelay ? 1 : 0,
			    (unsigned)o->sndtimeo_ms, o->keepalive);
	}
	return AT_RC_OK;
}

static enum at_rc ciptcpopt_setup(struct at_req *r)
{
	struct device *d = dev(r);
	struct tcpip *t = &d->tcpip;
	/* =[<so_linger>],[<tcp_nodelay>],[<so_sndtimeo>][,<keep_alive>]: the
	 * first three positions are always there, each may be empty (§2.33);
	 * multi mode puts <link ID> first, 5 = all links. */
	int base = t->mux ? 1 : 0;
	int64_t id = 0;
	if (!at_nargs(r, base + 3, base + 4))
		return AT_RC_ERROR;
	if (base && at_get_int(r, 0, 0, LINK_MAX, true, &id) < 0)
		return AT_RC_ERROR;
	/* Ranges: linger -1 off / 0 RST / >0 seconds, nodelay 0/1, sndtimeo
	 * ms, keep_alive 0..7200 s as CIPSTART's (§2.33, §2.5). */
	static const int64_t lim[4][2] = { { -1, 0x7fffffff }, { 0, 1 }, { 0, 0x7fffffff },
					   { 0, 7200 } };
	int64_t v[4];
	bool given[4];
	for (int k = 0; k < 4; k++) {
		int rc = at_get_int(r, base + k, lim[k][0], lim[k][1], false, &v[k]);
		if (rc < 0)
			return AT_RC_ERROR;
		given[k] = rc == AT_ARG_OK;
	}
	int first = id == LINK_MAX ? 0 : (int)id;
	int last = id == LINK_MAX ? LINK_MAX - 1 : (int)id;
	for (int i = first; i <= last; i++) {
		struct link_opts *o = &t->opts[i];
		/* An omitted option keeps its last value (§2.5 keep_alive). */
		if (given[0])
			o->linger = (int)v[0];
		if (given[1])
			o->nodelay = v[1] != 0;
		if (given[2])
			o->sndtimeo_ms = (uint32_t)v[2];
		if (given[3])
			o->keepalive = (int)v[3];
		if (link_in_use(&t->links[i]))
			link_apply_opts(&t->links[i], o);
	}
	save_tcpopt(d); /* SYSSTORE=1 only (§6.3) */
	return AT_RC_OK;
}

/* ---- AT+CIPCONNPERSIST ----------------------------------------------------- */

static enum at_rc cipconnpersist_query(struct at_req *r)
{
	const int *p = dev(r)->tcpip.connpersist;
	/* Multi: all five links; single: link 0 (§2.14). */
	if (dev(r)->tcpip.mux)
		at_out_line(r->out, "+CIPCONNPERSIST:%d,%d,%d,%d,%d", p[0], p[1], p[2], p[3], p[4]);
	else
		at_out_line(r->out, "+CIPCONNPERSIST:%d", p[0]);
	return AT_RC_OK;
}

static enum at_rc cipconnpersist_setup(struct at_req *r)
{
	struct tcpip *t = &dev(r)->tcpip;
	int base = t->mux ? 1 : 0;
	int64_t id = 0, v;
	if (!at_nargs(r, base + 1, base + 1))
		return AT_RC_ERROR;
	/* §2.14 has no "5 = all" for this command (§2 lists where 5 means all). */
	if (base && at_get_int(r, 0, 0, LINK_MAX - 1, true, &id) < 0)
		return AT_RC_ERROR;
	if (at_get_int(r, base, 0, 1, true, &v) < 0)
		return AT_RC_ERROR;
	t->connpersist[id] = (int)v; /* not saved (§6.4) */
	return AT_RC_OK;
}

/* ---- AT+CIPSENDLCFG -------------------------------------------------------- */

static enum at_rc cipsendlcfg_query(struct at_req *r)
{
	at_out_line(r->out, "+CIPSENDLCFG:%d,%d", dev(r)->tcpip.sendl_report,
		    dev(r)->tcpip.sendl_transmit);
	return AT_RC_OK;
}

static enum at_rc cipsendlcfg_setup(struct at_req *r)
{
	struct tcpip *t = &dev(r)->tcpip;
	int64_t rep, tx = t->sendl_transmit;
	/* report 100..2^20, transmit 100..2920 (§2.11); not saved (§6.4). */
	if (!at_nargs(r, 1, 2) || at_get_int(r, 0, 100, 1 << 20, true, &rep) < 0 ||
	    at_get_int(r, 1, 100, 2920, false, &tx) < 0)
		return AT_RC_ERROR;
	t->sendl_report = (int)rep;
	t->sendl_transmit = (int)tx;
	return AT_RC_OK;
}

/* No test (=?) handler anywhere in this chapter (§1.12). */
static const struct at_cmd tcpip_cfg_cmds[] = {
	/* name              test  query                 setup                 exec */
	{ "+CIPV6",          NULL, cipv6_query,          cipv6_setup,          NULL },
	{ "+CIPSTATE",       NULL, cipstate_query,       NULL,                 NULL },
	{ "+CIPSTATUS",      NULL, NULL,                 NULL,                 cipstatus_exec },
	{ "+CIPDOMAIN",      NULL, NULL,                 cipdomain_setup,      NULL },
	{ "+CIPSENDLCFG",    NULL, cipsendlcfg_query,    cipsendlcfg_setup,    NULL },
	{ "+CIPCONNPERSIST", NULL, cipconnpersist_query, cipconnpersist_setup, NULL },
	{ "+CIFSR",          NULL, NULL,                 NULL,                 cifsr_exec },
	{ "+CIPMUX",         NULL, cipmux_query,         cipmux_setup,         NULL },
	{ "+CIPDINFO",       NULL, cipdinfo_query,       cipdinfo_setup,       NULL },
	{ "+CIPDNS",         NULL, cipdns_query,         cipdns_setup,         NULL },
	{ "+CIPTCPOPT",      NULL, ciptcpopt_query,      ciptcpopt_setup,      NULL },
};

const struct at_cmd_table cmd_tcpip_cfg_table = AT_TABLE("TCP/IP config", tcpip_cfg_cmds);
