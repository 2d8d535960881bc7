/* ESP-AT "TCP/IP AT Commands", the network services: AT+PING (protocol.md
 * §2.31) and SNTP (AT+CIPSNTPCFG, AT+CIPSNTPTIME, AT+CIPSNTPINTV, §2.21 -
 * §2.23). The ICMP and SNTP machinery lives in net/ping.c and net/sntp.c;
 * this file only turns it into AT text.
 *
 * Device time is the host clock plus the offset SNTP learns (core/clock.h,
 * shared with AT+SYSTIMESTAMP); the system clock is never set. None of these
 * settings is saved (§6.4): every boot starts with SNTP off, time zone 0 and
 * a 3600 s interval. SNTP stays off until the MCU turns it on, so espatd
 * never contacts a time server by itself. */
#include "cmd/cmd.h"

#include "core/clock.h"
#include "core/log.h"
#include "dev/device.h"
#include "net/ping.h"
#include "net/policy.h"
#include "net/sntp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* One echo request; no reply within this time is +PING:TIMEOUT (UNCONFIRMED:
 * the module's timeout is inside its closed library; lwIP's ping and
 * ESP-IDF's esp_ping both wait 1 s). */
#define PING_TIMEOUT_MS 1000u
#define PING_HOST_MAX 64     /* like AT+CIPDOMAIN's <domain name> (UNCONFIRMED) */
#define SNTP_SERVER_MAX 64   /* UNCONFIRMED */
#define SNTP_INTV_DEF 3600u  /* ESP-IDF's default sync interval (§2.23, UNCONFIRMED) */
#define SNTP_INTV_MIN 15
#define SNTP_INTV_MAX 4294967

/* The servers used when AT+CIPSNTPCFG=1 names none (§2.21). */
static const char *const sntp_defaults[SVC_SNTP_SERVERS] = { "cn.ntp.org.cn", "ntp.sjtu.edu.cn",
							      "us.pool.ntp.org" };

static struct device *dev(struct at_req *r)
{
	return r->dev;
}

static struct services *svc(struct device *d)
{
	return &d->svc;
}

/* ---- AT+PING ------------------------------------------------------------ */

static void ping_answer(struct device *d, int status, uint64_t rtt_us)
{
	if (status == 0) {
		/* Whole milliseconds, rounded up: a reply is never "0 ms" away
		 * on a radio link (§2.31 `%s:%d`). */
		at_out_line(&d->at.out, "+PING:%llu", (unsigned long long)((rtt_us + 999) / 1000));
		at_engine_complete(&d->at, AT_RC_OK);
		return;
	}
	/* DNS failure or no reply: "+PING:TIMEOUT" then ERROR (§2.31). */
	at_out_line(&d->at.out, "+PING:TIMEOUT");
	d->at.req.errcode = AT_ERR_EXEC_FAIL;
	at_engine_complete(&d->at, AT_RC_ERROR);
}

static void ping_done(void *arg, int status, uint64_t rtt_us)
{
	struct device *d = arg;
	svc(d)->ping = NULL;
	if (status == 0)
		log_debug("AT+PING: reply after %llu us", (unsigned long long)rtt_us);
	else if (status == -ETIMEDOUT)
		log_info("AT+PING: no reply within %u ms", PING_TIMEOUT_MS);
	ping_answer(d, status, rtt_us);
}

static void ping_refused_fire(void *arg)
{
	ping_answer(arg, -ETIMEDOUT, 0);
}

static void set_port(struct sockaddr_storage *a, uint16_t port)
{
	if (a->ss_family == AF_INET6)
		((struct sockaddr_in6 *)(void *)a)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)(void *)a)->sin_port = htons(port);
}

/* ICMP has no port: a destination is allowed when some --allow rule covers
 * its address, whatever ports the rule names. */
static bool policy_allows_host(const struct policy *p, const struct sockaddr_storage *a)
{
	if (!p || p->n == 0)
		return true;
	struct sockaddr_storage t = *a;
	for (size_t i = 0; i < p->n; i++) {
		set_port(&t, p->rules[i].port_lo);
		if (policy_allows(p, &t))
			return true;
	}
	return false;
}

static void addr_str(const struct sockaddr_storage *a, char *out, size_t size)
{
	const void *p;
	if (a->ss_family == AF_INET6)
		p = &((const struct sockaddr_in6 *)(const void *)a)->sin6_addr;
	else
		p = &((const struct sockaddr_in *)(const void *)a)->sin_addr;
	if (!inet_ntop(a->ss_family, p, out, (socklen_t)size))
		snprintf(out, size, "?");
}

static void ping_resolved(void *arg, int status, const struct dns_result *res)
{
	struct device *d = arg;
	struct services *s = svc(d);
	s->ping_query = NULL;
	if (status < 0 || !res || res->n == 0) {
		log_info("AT+PING: cannot resolve the host: %s%s",
			 status == -ETIMEDOUT ? "DNS timeout" : "unknown host",
			 d->ipv6 ? "" : " (IPv6 needs AT+CIPV6=1)");
		ping_answer(d, -ENOENT, 0);
		return;
	}
	struct sockaddr_storage dst = res->addr[0];
	char ip[INET6_ADDRSTRLEN];
	addr_str(&dst, ip, sizeof(ip));
	if (!policy_allows_host(d->opts.policy, &dst)) {
		/* As an unreachable host: no reply, so a timeout. */
		log_warn("AT+PING: %s refused by the egress policy (--allow); answered as a timeout",
			 ip);
		loop_timer_start(d->loop, &s->ping_refused, PING_TIMEOUT_MS);
		return;
	}
	log_debug("AT+PING: echo request to %s", ip);
	int rc = ping_start(&s->ping, d->loop, &dst, PING_TIMEOUT_MS, ping_done, d);
	if (rc < 0) {
		log_warn("AT+PING: cannot ping %s: %s", ip, strerror(-rc));
		ping_answer(d, rc, 0);
	}
}

static enum at_rc ping_setup(struct at_req *r)
{
	struct device *d = dev(r);
	struct services *s = svc(d);
	char host[PING_HOST_MAX + 2];
	if (!at_nargs(r, 1, 1) || at_get_str(r, 0, PING_HOST_MAX, true, host, sizeof(host)) < 0)
		return AT_RC_ERROR;
	if (!host[0])
		return at_fail(r, AT_ERR_PARA_INVALID(0));
	/* No station address: nothing can answer (UNCONFIRMED: at once). */
	if (!wifi_has_ip(&d->wifi) || !d->tcpip.dns) {
		log_info("AT+PING: the station has no address (join an access point first)");
		at_out_line(r->out, "+PING:TIMEOUT");
		return at_fail(r, AT_ERR_EXEC_FAIL);
	}
	/* A name resolves through the CIPDNS servers, IPv4 first; IPv6 only
	 * with AT+CIPV6=1 (§2.31). An address completes without a lookup. */
	s->ping_query = dns_resolve(d->tcpip.dns, host, d->ipv6 ? DNS_PREFER_V4 : DNS_V4_ONLY, 0,
				    ping_resolved, d);
	if (!s->ping_query) {
		at_out_line(r->out, "+PING:TIMEOUT");
		return at_fail(r, AT_ERR_EXEC_FAIL);
	}
	return AT_RC_PENDING; /* busy until the answer (§1.9) */
}

/* ---- SNTP ------------------------------------------------------------------ */

static bool sntp_net_ready(void *arg)
{
	struct device *d = arg;
	return wifi_has_ip(&d->wifi);
}

static enum dns_family sntp_family(void *arg)
{
	struct device *d = arg;
	return d->ipv6 ? DNS_PREFER_V4 : DNS_V4_ONLY;
}

static void sntp_synced(void *arg, int64_t offset_ns, const struct sockaddr_storage *server)
{
	struct device *d = arg;
	const int64_t ns = 1000000000LL;
	int64_t off_s = (offset_ns + (offset_ns < 0 ? -ns / 2 : ns / 2)) / ns;
	clock_device_set((int64_t)time(NULL) + off_s);
	char ip[INET6_ADDRSTRLEN];
	addr_str(server, ip, sizeof(ip));
	log_info("sntp: time from %s: %+.3f s from the host clock", ip, (double)offset_ns / 1e9);
	/* After every sync while SNTP is on (§2.21, §3.1). */
	at_out_urc(&d->at.out, "+TIME_UPDATED");
}

static const struct sntp_events sntp_ev = {
	.net_ready = sntp_net_ready,
	.family = sntp_family,
	.synced = sntp_synced,
};

/* (Re)start or stop the client after a change of AT+CIPSNTPCFG. */
static void sntp_apply(struct device *d)
{
	struct services *s = svc(d);
	sntp_stop(s->sntp);
	s->sntp = NULL;
	if (!s->sntp_enable)
		return;
	struct sntp_cfg cfg = {
		.loop = d->loop,
		.dns = d->tcpip.dns,
		.policy = d->opts.policy,
		.port = d->opts.ntp_port ? d->opts.ntp_port : 123,
		.nservers = (size_t)s->nservers,
		.interval_s = s->sntp_intv,
	};
	for (int i = 0; i < s->nservers; i++)
		cfg.servers[i] = s->servers[i];
	int rc = sntp_start(&s->sntp, &cfg, &sntp_ev, d);
	if (rc < 0)
		log_warn("sntp: cannot start: %s", strerror(-rc));
	else
		log_info("sntp: on, first server %s, every %u s", s->servers[0],
			 (unsigned)s->sntp_intv);
}

static enum at_rc cipsntpcfg_query(struct at_req *r)
{
	struct services *s = svc(dev(r));
	if (!s->sntp_enable) {
		at_out_line(r->out, "+CIPSNTPCFG:0,%d", s->tz_shown);
		return AT_RC_OK;
	}
	char line[32 + SVC_SNTP_SERVERS * (SNTP_SERVER_MAX + 3)];
	size_t o = (size_t)snprintf(line, sizeof(line), "+CIPSNTPCFG:1,%d", s->tz_shown);
	for (int i = 0; i < s->nservers && o < sizeof(line); i++)
		o += (size_t)snprintf(line + o, sizeof(line) - o, ",\"%s\"", s->servers[i]);
	at_out_line(r->out, "%s", line);
	return AT_RC_OK;
}

static enum at_rc cipsntpcfg_setup(struct at_req *r)
{
	struct device *d = dev(r);
	struct services *s = svc(d);
	int64_t en, tz;
	/* =<enable>[,<timezone>][,<"server1">][,<"server2">][,<"server3">] */
	if (!at_nargs(r, 1, 2 + SVC_SNTP_SERVERS) || at_get_int(r, 0, 0, 1, true, &en) < 0)
		return AT_RC_ERROR;
	int rc = at_get_int(r, 1, -0x80000000LL, 0xffffffffLL, false, &tz);
	if (rc < 0)
		return AT_RC_ERROR;
	int minutes = s->tz_minutes, shown = s->tz_shown;
	if (rc == AT_ARG_OK && sntp_tz_parse(tz, &minutes, &shown) < 0)
		return at_fail(r, AT_ERR_PARA_INVALID(1));
	char srv[SVC_SNTP_SERVERS][SNTP_SERVER_MAX + 2];
	int n = 0;
	for (int i = 2; i < r->args.n; i++) {
		rc = at_get_str(r, i, SNTP_SERVER_MAX, false, srv[n], sizeof(srv[n]));
		if (rc < 0)
			return AT_RC_ERROR;
		if (rc == AT_ARG_OK && srv[n][0])
			n++; /* an omitted or empty server is no server */
	}
	s->sntp_enable = en != 0;
	s->tz_minutes = minutes;
	s->tz_shown = shown;
	if (s->sntp_enable) {
		/* None named: the module's defaults (§2.21). */
		s->nservers = n ? n : SVC_SNTP_SERVERS;
		for (int i = 0; i < s->nservers; i++)
			snprintf(s->servers[i], sizeof(s->servers[i]), "%.*s", SNTP_SERVER_MAX,
				 n ? srv[i] : sntp_defaults[i]);
	}
	sntp_apply(d); /* not saved (§6.4) */
	return AT_RC_OK;
}

static enum at_rc cipsntptime_query(struct at_req *r)
{
	struct device *d = dev(r);
	/* Local time by the <timezone> offset once the clock is set (SNTP or
	 * AT+SYSTIMESTAMP); before that the module's count from 1970 at boot,
	 * as an unsynced module shows it ("Thu Jan  1 00:02:08 1970" with a
	 * zone set, esp-at#315). */
	int64_t t = device_time(d);
	if (clock_device_is_set())
		t += (int64_t)svc(d)->tz_minutes * 60;
	char when[48];
	sntp_asctime(t, when, sizeof(when));
	/* asctime without its '\n', and no CR LF before OK (§1.7, §2.22). */
	at_out_text(r->out, "+CIPSNTPTIME:%s", when);
	return AT_RC_OK;
}

static enum at_rc cipsntpintv_query(struct at_req *r)
{
	at_out_line(r->out, "+CIPSNTPINTV:%u", (unsigned)svc(dev(r))->sntp_intv);
	return AT_RC_OK;
}

static enum at_rc cipsntpintv_setup(struct at_req *r)
{
	struct services *s = svc(dev(r));
	int64_t v;
	if (!at_nargs(r, 1, 1) || at_get_int(r, 0, SNTP_INTV_MIN, SNTP_INTV_MAX, true, &v) < 0)
		return AT_RC_ERROR;
	s->sntp_intv = (uint32_t)v;
	/* A sync already scheduled now waits the new interval from now. */
	sntp_set_interval(s->sntp, s->sntp_intv);
	return AT_RC_OK;
}

/* ---- chapter hooks ------------------------------------------------------------ */

void cmd_services_reset(struct device *d)
{
	struct services *s = svc(d);
	ping_cancel(s->ping);
	s->ping = NULL;
	if (s->ping_query) {
		dns_cancel(s->ping_query);
		s->ping_query = NULL;
	}
	loop_timer_stop(d->loop, &s->ping_refused);
	sntp_stop(s->sntp);
	s->sntp = NULL;
}

void cmd_services_load(struct device *d)
{
	struct services *s = svc(d);
	cmd_services_reset(d);
	loop_timer_init(&s->ping_refused, ping_refused_fire, d);
	/* Factory values; nothing here is saved (§6.4). SNTP is off: the
	 * module starts it at power-up, espatd leaves that to the MCU so it
	 * never reaches public servers on its own (docs/commands.md). */
	s->sntp_enable = false;
	s->tz_minutes = 0;
	s->tz_shown = 0;
	s->nservers = 0;
	s->sntp_intv = SNTP_INTV_DEF;
}

void cmd_services_free(struct device *d)
{
	cmd_services_reset(d);
}

/* No test (=?) handler (§1.12). */
static const struct at_cmd services_cmds[] = {
	/* name            test  query              setup              exec */
	{ "+CIPSNTPCFG",   NULL, cipsntpcfg_query,  cipsntpcfg_setup,  NULL },
	{ "+CIPSNTPTIME",  NULL, cipsntptime_query, NULL,              NULL },
	{ "+CIPSNTPINTV",  NULL, cipsntpintv_query, cipsntpintv_setup, NULL },
	{ "+PING",         NULL, NULL,              ping_setup,        NULL },
};

const struct at_cmd_table cmd_services_table = AT_TABLE("TCP/IP services", services_cmds);
