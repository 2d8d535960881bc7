/* ESP-AT "TCP/IP AT Commands": AT+MDNS, the mDNS function (protocol.md
 * §2.34). Only the set command exists (§1.12: no test handler; the
 * reference documents no query or execute form):
 *
 *   AT+MDNS=1,<"hostname">,<"service_type">,<port>[,<"instance">][,<"proto">]
 *            [,<txt_number>][,<"key">,<"value">]...
 *   AT+MDNS=0
 *
 * <instance> defaults to <hostname>, <proto> to "_tcp"; <txt_number> is in
 * [1,10] and exactly that many key/value pairs follow. With 0 the reference
 * says not to give the other parameters, so giving any is an error. The
 * lookup form some notes mention (AT+MDNS=2,...) is not in the reference
 * and is not implemented: 2 is an invalid <enable>.
 *
 * The responder itself (net/mdns.c) publishes "<hostname>.local" with the
 * station's address and the service on the host interface that stands in
 * for the station (design.md §4). The reference leaves open when it may
 * start and what a second enable does; espatd's choices (docs/commands.md):
 * the station must have its IPv4 address, and AT+MDNS=1 while running is an
 * error (turn it off first). It stops, without goodbye packets as a module
 * that resets or loses its link sends none, on AT+RST / AT+RESTORE and when
 * the station loses its address; AT+MDNS=0 stops it with goodbyes. Nothing
 * is saved (§6.4). */
#include "cmd/cmd.h"

#include "core/log.h"
#include "dev/device.h"
#include "net/mdns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define ARG_TXT_NUMBER 6 /* index of <txt_number>; the pairs follow it */
#define DEFAULT_PROTO "_tcp"

/* The station's IPv4 address as AT+CIPSTA? shows it: the static one if
 * set, else the host's after a join (same source as AT+CIFSR, §2.15). */
static bool station_ip(const struct device *d, struct in_addr *ip)
{
	if (!device_sta_on(d) || !wifi_has_ip(&d->wifi))
		return false;
	if (d->ws.sta_static.set) {
		*ip = d->ws.sta_static.ip;
		return true;
	}
	if (!d->wifi.host.has_ip)
		return false;
	*ip = d->wifi.host.ip;
	return true;
}

/* A required label: present, 1..63 bytes (one DNS label). */
static int get_label(struct at_req *r, int i, bool required, char *buf, size_t size)
{
	int rc = at_get_str(r, i, MDNS_LABEL_MAX, required, buf, size);
	if (rc == AT_ARG_OK && !buf[0] && required) {
		r->errcode = AT_ERR_PARA_INVALID(i);
		return -1;
	}
	return rc;
}

static enum at_rc mdns_enable(struct at_req *r)
{
	struct device *d = r->dev;
	static struct mdns_cfg cfg; /* ~5 KB of TXT room; one command at a time */
	struct mdns_records *rec = &cfg.rec;
	memset(&cfg, 0, sizeof(cfg));
	int64_t port, ntxt = 0;
	if (!at_nargs(r, 4, ARG_TXT_NUMBER + 1 + 2 * MDNS_TXT_MAX) ||
	    get_label(r, 1, true, rec->host, sizeof(rec->host)) < 0 ||
	    get_label(r, 2, true, rec->service, sizeof(rec->service)) < 0 ||
	    at_get_int(r, 3, 1, 65535, true, &port) < 0)
		return AT_RC_ERROR;
	/* Omitted or empty: the defaults the reference gives. */
	int rc = get_label(r, 4, false, rec->instance, sizeof(rec->instance));
	if (rc < 0)
		return AT_RC_ERROR;
	if (rc == AT_ARG_OMITTED || !rec->instance[0])
		snprintf(rec->instance, sizeof(rec->instance), "%s", rec->host);
	rc = get_label(r, 5, false, rec->proto, sizeof(rec->proto));
	if (rc < 0)
		return AT_RC_ERROR;
	if (rc == AT_ARG_OMITTED || !rec->proto[0])
		snprintf(rec->proto, sizeof(rec->proto), "%s", DEFAULT_PROTO);
	rc = at_get_int(r, ARG_TXT_NUMBER, 1, MDNS_TXT_MAX, false, &ntxt);
	if (rc < 0)
		return AT_RC_ERROR;
	/* Key/value pairs only after a <txt_number>, and exactly that many. */
	if (rc == AT_ARG_OMITTED) {
		ntxt = 0;
		if (!at_nargs(r, 4, ARG_TXT_NUMBER + 1))
			return AT_RC_ERROR;
	} else {
		int want = ARG_TXT_NUMBER + 1 + 2 * (int)ntxt;
		if (!at_nargs(r, want, want))
			return AT_RC_ERROR;
	}
	for (int i = 0; i < (int)ntxt; i++) {
		int ki = ARG_TXT_NUMBER + 1 + 2 * i, vi = ki + 1;
		char *key = rec->txt[i].key, *val = rec->txt[i].value;
		if (at_get_str(r, ki, MDNS_TXT_ITEM_MAX - 1, true, key, sizeof(rec->txt[i].key)) < 0 ||
		    at_get_str(r, vi, MDNS_TXT_ITEM_MAX, true, val, sizeof(rec->txt[i].value)) < 0)
			return AT_RC_ERROR;
		/* RFC 6763 §6.4: a key is non-empty and has no '='. */
		if (!key[0] || strchr(key, '='))
			return at_fail(r, AT_ERR_PARA_INVALID(ki));
		/* One TXT item "key=value" is a DNS character-string (§6.1). */
		if (strlen(key) + 1 + strlen(val) > MDNS_TXT_ITEM_MAX)
			return at_fail(r, AT_ERR_PARA_LENGTH(vi));
	}
	rec->ntxt = (size_t)ntxt;
	rec->port = (uint16_t)port;

	if (d->mdns) {
		log_info("AT+MDNS: already on; AT+MDNS=0 first");
		return at_fail(r, AT_ERR_EXEC_FAIL);
	}
	if (!station_ip(d, &rec->ip)) {
		log_info("AT+MDNS: the station has no address (join an access point first)");
		return at_fail(r, AT_ERR_EXEC_FAIL);
	}
	cfg.loop = d->loop;
	cfg.ifname = d->wifi.host.name;
	if (d->wifi.host.has_ip) {
		cfg.ifaddr = d->wifi.host.ip;
		cfg.ifmask = d->wifi.host.mask;
	}
	rc = mdns_start(&d->mdns, &cfg);
	if (rc < 0) {
		log_warn("AT+MDNS: cannot start the responder on %s: %s", cfg.ifname,
			 strerror(-rc));
		return at_fail(r, AT_ERR_EXEC_FAIL);
	}
	return AT_RC_OK;
}

static enum at_rc mdns_setup(struct at_req *r)
{
	int64_t en;
	if (at_get_int(r, 0, 0, 1, true, &en) < 0)
		return AT_RC_ERROR;
	if (en == 1)
		return mdns_enable(r);
	/* "Please do not set the following parameters." */
	if (!at_nargs(r, 1, 1))
		return AT_RC_ERROR;
	/* Off when already off is fine: the state asked for holds. */
	mdns_stop(r->dev->mdns, true);
	r->dev->mdns = NULL;
	return AT_RC_OK;
}

void cmd_mdns_stop(struct device *d)
{
	mdns_stop(d->mdns, false);
	d->mdns = NULL;
}

/* No test (=?) handler (§1.12), no query, no execute form. */
static const struct at_cmd mdns_cmds[] = {
	/* name      test  query  setup       exec */
	{ "+MDNS",   NULL, NULL,  mdns_setup, NULL },
};

const struct at_cmd_table cmd_mdns_table = AT_TABLE("mDNS", mdns_cmds);
