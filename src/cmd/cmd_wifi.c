/* ESP-AT "Wi-Fi AT Commands" chapter over the virtual station (design.md §4,
 * protocol.md §3.3c, §5.5, §6). */
#include "cmd/cmd.h"

#include "core/log.h"
#include "dev/device.h"
#include "store/store.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_WIFI "wifi"
#define SCAN_MAX 32

static struct device *dev(struct at_req *r)
{
	return r->dev;
}


/* ---- events from the virtual station --------------------------------- */

static void ev_connected(void *arg)
{
	struct device *d = arg;
	at_out_wifi(&d->at.out, "WIFI CONNECTED");
}

static void ev_got_ip(void *arg)
{
	struct device *d = arg;
	d->tcpip.ever_linked = false; /* CIPSTATUS 2 again, not 4 (§2.2) */
	at_out_wifi(&d->at.out, "WIFI GOT IP");
	/* With AT+CIPV6=1 the station's IPv6 addresses are reported too; they
	 * are the host's, already there (§3.1; lwesp learns of them only so). */
	if (d->ipv6 && d->wifi.host.has_ip6ll)
		at_out_wifi(&d->at.out, "WIFI GOT IPv6 LL");
	if (d->ipv6 && d->wifi.host.has_ip6gl)
		at_out_wifi(&d->at.out, "WIFI GOT IPv6 GL");
}

static void ev_disconnected(void *arg)
{
	struct device *d = arg;
	at_out_wifi(&d->at.out, "WIFI DISCONNECT");
	tcpip_netif_down(d);
	cmd_mdns_stop(d); /* the address it published is gone */
}

static void ev_join_done(void *arg, int result)
{
	struct device *d = arg;
	if (!d->cwjap_running)
		return; /* auto-join at boot: only the URCs */
	d->cwjap_running = false;
	if (result == WIFI_JOIN_OK) {
		at_engine_complete(&d->at, AT_RC_OK);
		return;
	}
	at_out_line(&d->at.out, "+CWJAP:%d", result);
	at_engine_complete(&d->at, AT_RC_ERROR);
}

const struct wifi_events cmd_wifi_events = {
	.connected = ev_connected,
	.got_ip = ev_got_ip,
	.disconnected = ev_disconnected,
	.join_done = ev_join_done,
};

/* ---- persistence ------------------------------------------------------ */

static void save_join(struct device *d)
{
	const struct wifi_join_cfg *j = &d->ws.join;
	device_save_blob(d, NS_WIFI, "join", j, sizeof(*j), false);
}

static void save_ipv4(struct device *d, const char *key, const struct ipv4_cfg *c)
{
	device_save_blob(d, NS_WIFI, key, c, sizeof(*c), false);
}

static void load_blob(struct device *d, const char *key, void *dst, size_t size, bool *ok)
{
	size_t len = 0;
	int rc = store_get_blob(d->store, NS_WIFI, key, dst, size, &len);
	if (ok)
		*ok = rc == 0 && len == size;
	else if (rc == 0 && len != size)
		memset(dst, 0, size);
}

static void default_macs(struct device *d)
{
	struct hostif h;
	uint8_t *m = d->ws.sta_mac;
	if (hostif_get(d->wifi.netif, &h) == 0 && h.has_mac) {
		memcpy(m, h.mac, 6);
	} else {
		/* No hardware address (loopback): a fixed, locally
		 * administered one, so the value is stable. */
		static const uint8_t fallback[6] = { 0x02, 0xe5, 0xa7, 0x00, 0x00, 0x01 };
		memcpy(m, fallback, 6);
	}
	/* ESP32: the SoftAP MAC is the station MAC + 1. */
	memcpy(d->ws.ap_mac, m, 6);
	d->ws.ap_mac[5] = (uint8_t)(m[5] + 1);
}

static void default_softap(struct device *d);

void cmd_wifi_load(struct device *d)
{
	struct wifi_settings *w = &d->ws;
	memset(w, 0, sizeof(*w));
	w->mode = (int)device_load_int(d, NS_WIFI, "mode", d->profile->cwmode_default);
	w->autoconn = device_load_int(d, NS_WIFI, "autoconn", 1) != 0;
	w->dhcp = (int)device_load_int(d, NS_WIFI, "dhcp", 3);
	w->reconn_interval = (int)device_load_int(d, NS_WIFI, "reconn_intv", 0);
	w->reconn_repeat = (int)device_load_int(d, NS_WIFI, "reconn_rep", 0);
	snprintf(w->hostname, sizeof(w->hostname), "%s", d->profile->hostname);
	/* ESP-AT's factory parameters: China, channels 1-13, following the
	 * AP's country (policy 0); AT+CWCOUNTRY changes are never saved. */
	w->country = (struct country){ .policy = 0, .code = "CN", .first = 1, .count = 13 };
	wifi_set_channels(&d->wifi, w->country.first, w->country.count);
	load_blob(d, "sta_static", &w->sta_static, sizeof(w->sta_static), NULL);
	bool ok = false;
	load_blob(d, "ap_ip", &w->ap, sizeof(w->ap), &ok);
	if (!ok) {
		w->ap.set = true;
		inet_pton(AF_INET, "192.168.4.1", &w->ap.ip);
		inet_pton(AF_INET, "192.168.4.1", &w->ap.gw);
		inet_pton(AF_INET, "255.255.255.0", &w->ap.mask);
	}
	default_macs(d);
	load_blob(d, "sta_mac", w->sta_mac, 6, NULL);
	load_blob(d, "ap_mac", w->ap_mac, 6, NULL);
	load_blob(d, "join", &w->join, sizeof(w->join), &w->have_join);
	load_blob(d, "softap", &w->sap, sizeof(w->sap), &ok);
	if (!ok)
		default_softap(d);
	w->sap.ssid[sizeof(w->sap.ssid) - 1] = w->sap.pwd[sizeof(w->sap.pwd) - 1] = '\0';
	w->join.ssid[sizeof(w->join.ssid) - 1] = '\0';
	w->join.pwd[sizeof(w->join.pwd) - 1] = '\0';
	w->lapopt_sort = 0;
	w->lapopt_mask = 0x7ff;
	w->lapopt_rssi = -100;
	w->lapopt_auth = 0xffff;
}

void cmd_wifi_boot(struct device *d)
{
	/* A stored join with CWAUTOCONN=1 joins at power-up (§5.5). */
	if (d->ws.have_join && d->ws.autoconn && device_sta_on(d) && d->ws.join.ssid[0]) {
		log_info("auto-joining saved access point \"%s\"", d->ws.join.ssid);
		wifi_join(&d->wifi, &d->ws.join);
	}
}

void cmd_wifi_reset(struct device *d)
{
	/* The module resets: no WIFI DISCONNECT, the radio is just gone. */
	d->cwjap_running = false;
	loop_timer_stop(d->loop, &d->scan_timer);
	wifi_reset(&d->wifi);
}

static void leave(struct device *d)
{
	wifi_leave(&d->wifi);
}

/* ---- AT+CWMODE -------------------------------------------------------- */

/* ---- AT+CWINIT -------------------------------------------------------- */

/* AT+CWINIT=0 frees the Wi-Fi driver (ESP-AT Wi-Fi docs): the station
 * leaves, the SoftAP stops, and the Wi-Fi commands fail until AT+CWINIT=1
 * or a restart (never saved). TinyGSM's radioOff() sends it. */
static enum at_rc cwinit_query(struct at_req *r)
{
	at_out_line(r->out, "+CWINIT:%d", dev(r)->ws.driver_off ? 0 : 1);
	return AT_RC_OK;
}

static enum at_rc cwinit_setup(struct at_req *r)
{
	struct device *d = dev(r);
	int64_t v;
	if (!at_nargs(r, 1, 1) || at_get_int(r, 0, 0, 1, true, &v) < 0)
		return AT_RC_ERROR;
	if (v == 0 && !d->ws.driver_off) {
		leave(d); /* WIFI DISCONNECT if it was connected */
		d->ws.driver_off = true;
		tcpip_netif_down(d); /* the SoftAP's links go too */
	} else if (v == 1) {
		d->ws.driver_off = false;
	}
	return AT_RC_OK;
}

static enum at_rc cwmode_query(struct at_req *r)
{
	if (dev(r)->ws.driver_off)
		return at_fail(r, AT_ERR_EXEC_FAIL);
	at_out_line(r->out, "+CWMODE:%d", dev(r)->ws.mode);
	return AT_RC_OK;
}

static enum at_rc cwmode_setup(struct at_req *r)
{
	struct device *d = dev(r);
	if (d->ws.driver_off)
		return at_fail(r, AT_ERR_EXEC_FAIL);
	int64_t mode, autoc = 1;
	if (!at_nargs(r, 1, 2) || at_get_int(r, 0, 0, 3, true, &mode) < 0 ||
	    at_get_int(r, 1, 0, 1, false, &autoc) < 0)
		return AT_RC_ERROR;
	bool had_sta = device_sta_on(d);
	d->ws.mode = (int)mode;
	device_save_int(d, NS_WIFI, "mode", mode, false);
	if (had_sta && !device_sta_on(d))
		leave(d);
	else if (!had_sta && device_sta_on(d) && autoc && d->ws.have_join && d->ws.join.ssid[0])
		wifi_join(&d->wifi, &d->ws.join);
	return AT_RC_OK;
}

/* ---- AT+CWJAP --------------------------------------------------------- */

static enum at_rc cwjap_query(struct at_req *r)
{
	struct device *d = dev(r);
	if (d->wifi.state != WIFI_ST_GOT_IP && d->wifi.state != WIFI_ST_NO_IP)
		return AT_RC_OK; /* not connected: no line, just OK (§5.5) */
	char mac[18];
	wifi_format_mac(mac, d->wifi.cur.bssid);
	const struct wifi_join_cfg *j = &d->wifi.cfg;
	at_out_line(r->out, "+CWJAP:\"%s\",\"%s\",%d,%d,%d,%d,%d,%d,%d", d->wifi.cur.ssid, mac,
		    d->wifi.cur.channel, d->wifi.cur.rssi, j->pci_en, d->ws.reconn_interval,
		    j->listen_interval, j->scan_mode, j->pmf);
	return AT_RC_OK;
}

static enum at_rc start_join(struct at_req *r)
{
	struct device *d = dev(r);
	if (!device_sta_on(d))
		return at_fail(r, AT_ERR_EXEC_FAIL);
	/* Already connected: the module leaves first (WIFI DISCONNECT). */
	if (d->wifi.state == WIFI_ST_GOT_IP || d->wifi.state == WIFI_ST_NO_IP)
		leave(d);
	d->cwjap_running = true;
	wifi_join(&d->wifi, &d->ws.join);
	return AT_RC_PENDING;
}

static enum at_rc cwjap_setup(struct at_req *r)
{
	struct device *d = dev(r);
	struct wifi_join_cfg j = d->ws.join;
	int64_t v[6];
	char mac[20];
	if (!at_nargs(r, 1, 9))
		return AT_RC_ERROR;
	if (!device_sta_on(d))
		return at_fail(r, AT_ERR_EXEC_FAIL);
	int s = at_get_str(r, 0, 32, false, j.ssid, sizeof(j.ssid));
	/* Up to 64 bytes, 64 being a raw key in hex (ESP-AT Wi-Fi AT+CWJAP;
	 * Zephyr's driver passes such keys through). */
	int p = at_get_str(r, 1, 64, false, j.pwd, sizeof(j.pwd));
	if (s < 0 || p < 0)
		return AT_RC_ERROR;
	if (strlen(j.pwd) == 64 && !wifi_is_raw_psk(j.pwd))
		return at_fail(r, AT_ERR_PARA_INVALID(1));
	/* Both omitted: reuse the last configuration (ESP-AT Wi-Fi AT+CWJAP). */
	if (s == AT_ARG_OMITTED && !d->ws.have_join)
		return at_fail(r, AT_ERR_PARA_PARSE(0));
	if (s == AT_ARG_OMITTED && p == AT_ARG_OK)
		return at_fail(r, AT_ERR_PARA_PARSE(0));
	if (s == AT_ARG_OK && p == AT_ARG_OMITTED)
		j.pwd[0] = '\0';
	if (s == AT_ARG_OK) {
		j.has_bssid = false;
		j.pci_en = 0;
		j.reconn_interval = 1;
		j.listen_interval = 3;
		j.scan_mode = 0;
		j.jap_timeout = 15;
		j.pmf = 1;
	}
	int b = at_get_str(r, 2, 17, false, mac, sizeof(mac));
	if (b < 0)
		return AT_RC_ERROR;
	if (b == AT_ARG_OK) {
		if (wifi_parse_mac(mac, j.bssid) < 0)
			return at_fail(r, AT_ERR_PARA_INVALID(2));
		j.has_bssid = true;
	}
	static const int64_t lim[6][2] = { { 0, 1 }, { 0, 7200 }, { 1, 100 },
					   { 0, 1 }, { 3, 600 }, { 0, 3 } };
	for (int i = 0; i < 6; i++) {
		int rc = at_get_int(r, 3 + i, lim[i][0], lim[i][1], false, &v[i]);
		if (rc < 0)
			return AT_RC_ERROR;
		if (rc == AT_ARG_OMITTED)
			continue;
		switch (i) {
		case 0: j.pci_en = (int)v[i]; break;
		case 1: j.reconn_interval = (int)v[i]; break;
		case 2: j.listen_interval = (int)v[i]; break;
		case 3: j.scan_mode = (int)v[i]; break;
		case 4: j.jap_timeout = (int)v[i]; break;
		case 5: j.pmf = (int)v[i]; break;
		}
	}
	d->ws.join = j;
	d->ws.have_join = true;
	/* CWJAP's reconnect interval is CWRECONNCFG's (ESP-AT Wi-Fi docs). */
	d->ws.reconn_interval = j.reconn_interval;
	device_save_int(d, NS_WIFI, "reconn_intv", j.reconn_interval, false);
	save_join(d);
	return start_join(r);
}

static enum at_rc cwjap_exec(struct at_req *r)
{
	if (!dev(r)->ws.have_join || !dev(r)->ws.join.ssid[0])
		return at_fail(r, AT_ERR_EXEC_FAIL);
	return start_join(r);
}

static enum at_rc cwqap_exec(struct at_req *r)
{
	/* WIFI DISCONNECT comes before OK on an ESP32 (real log). */
	leave(dev(r));
	return AT_RC_OK;
}

static enum at_rc cwstate_query(struct at_req *r)
{
	struct device *d = dev(r);
	const char *ssid = d->wifi.state == WIFI_ST_IDLE || d->wifi.state == WIFI_ST_DISCONNECTED
				   ? ""
			   : d->wifi.state == WIFI_ST_CONNECTING ? d->wifi.cfg.ssid
								  : d->wifi.cur.ssid;
	at_out_line(r->out, "+CWSTATE:%d,\"%s\"", d->wifi.state, ssid);
	return AT_RC_OK;
}

/* ---- AT+CWLAP / AT+CWLAPOPT ------------------------------------------ */

static int cmp_rssi(const void *a, const void *b)
{
	return ((const struct wifi_ap *)b)->rssi - ((const struct wifi_ap *)a)->rssi;
}

static void print_ap(struct device *d, const struct wifi_ap *ap)
{
	char mac[18], line[256] = "";
	wifi_format_mac(mac, ap->bssid);
	int cipher = ap->ecn == 0 ? 0 : ap->ecn == 1 ? 1 : 4;
	/* Fields in mask-bit order; the first printed one has no comma. */
	char f[11][48];
	snprintf(f[0], sizeof(f[0]), "%d", ap->ecn);
	snprintf(f[1], sizeof(f[1]), "\"%.32s\"", ap->ssid);
	snprintf(f[2], sizeof(f[2]), "%d", ap->rssi);
	snprintf(f[3], sizeof(f[3]), "\"%s\"", mac);
	snprintf(f[4], sizeof(f[4]), "%d", ap->channel);
	snprintf(f[5], sizeof(f[5]), "-1");
	snprintf(f[6], sizeof(f[6]), "-1");
	snprintf(f[7], sizeof(f[7]), "%d", cipher);
	snprintf(f[8], sizeof(f[8]), "%d", cipher);
	snprintf(f[9], sizeof(f[9]), "7");
	snprintf(f[10], sizeof(f[10]), "0");
	size_t o = 0;
	for (int i = 0; i < 11; i++) {
		if (!(d->ws.lapopt_mask & (1 << i)))
			continue;
		o += (size_t)snprintf(line + o, sizeof(line) - o, "%s%s", o ? "," : "", f[i]);
	}
	at_out_line(&d->at.out, "+CWLAP:(%s)", line);
}

static void scan_done(void *arg)
{
	struct device *d = arg;
	struct wifi_ap aps[SCAN_MAX];
	size_t n = wifi_scan(&d->wifi, aps, SCAN_MAX);
	if (d->ws.lapopt_sort)
		qsort(aps, n, sizeof(aps[0]), cmp_rssi);
	const struct scan_filter *sf = &d->ws.scan_filter;
	for (size_t i = 0; i < n; i++) {
		const struct wifi_ap *ap = &aps[i];
		if (ap->rssi < d->ws.lapopt_rssi || !(d->ws.lapopt_auth & (1 << ap->ecn)))
			continue;
		if (sf->has_ssid && strcmp(ap->ssid, sf->ssid) != 0)
			continue;
		if (sf->has_mac && memcmp(ap->bssid, sf->mac, 6) != 0)
			continue;
		if (sf->has_channel && ap->channel != sf->channel)
			continue;
		print_ap(d, ap);
	}
	at_engine_complete(&d->at, AT_RC_OK);
}

static enum at_rc start_scan(struct at_req *r)
{
	struct device *d = dev(r);
	if (!device_sta_on(d))
		return at_fail(r, AT_ERR_EXEC_FAIL);
	loop_timer_init(&d->scan_timer, scan_done, d);
	/* A scan takes time on the module: the command stays busy. */
	uint32_t t = d->wifi.join_ms < 1500 ? d->wifi.join_ms : 1500;
	loop_timer_start(d->loop, &d->scan_timer, t);
	return AT_RC_PENDING;
}

static enum at_rc cwlap_exec(struct at_req *r)
{
	struct device *d = dev(r);
	memset(&d->ws.scan_filter, 0, sizeof(d->ws.scan_filter));
	return start_scan(r);
}

static enum at_rc cwlap_setup(struct at_req *r)
{
	struct scan_filter f = { 0 };
	char mac[20];
	int64_t v;
	if (!at_nargs(r, 1, 6))
		return AT_RC_ERROR;
	int rc = at_get_str(r, 0, 32, false, f.ssid, sizeof(f.ssid));
	if (rc < 0)
		return AT_RC_ERROR;
	/* An empty SSID filters nothing, as an omitted one (the scan's SSID is
	 * unset): Mbed's rssi() sends AT+CWLAP="","<bssid>",. */
	f.has_ssid = rc == AT_ARG_OK && f.ssid[0];
	rc = at_get_str(r, 1, 17, false, mac, sizeof(mac));
	if (rc < 0)
		return AT_RC_ERROR;
	if (rc == AT_ARG_OK) {
		if (wifi_parse_mac(mac, f.mac) < 0)
			return at_fail(r, AT_ERR_PARA_INVALID(1));
		f.has_mac = true;
	}
	rc = at_get_int(r, 2, 1, 14, false, &v);
	if (rc < 0)
		return AT_RC_ERROR;
	if (rc == AT_ARG_OK) {
		f.has_channel = true;
		f.channel = (int)v;
	}
	if (at_get_int(r, 3, 0, 1, false, &v) < 0 || at_get_int(r, 4, 0, 1500, false, &v) < 0 ||
	    at_get_int(r, 5, 0, 1500, false, &v) < 0)
		return AT_RC_ERROR;
	dev(r)->ws.scan_filter = f;
	return start_scan(r);
}

static enum at_rc cwlapopt_setup(struct at_req *r)
{
	struct device *d = dev(r);
	int64_t sort, mask, rssi = -100, auth = 0xffff;
	if (!at_nargs(r, 2, 4) || at_get_int(r, 0, 0, 1, true, &sort) < 0 ||
	    at_get_int(r, 1, 0, 0x7ff, true, &mask) < 0 ||
	    at_get_int(r, 2, -100, 40, false, &rssi) < 0 ||
	    at_get_int(r, 3, 0, 0xffff, false, &auth) < 0)
		return AT_RC_ERROR;
	d->ws.lapopt_sort = (int)sort;
	d->ws.lapopt_mask = (int)mask;
	d->ws.lapopt_rssi = (int)rssi;
	d->ws.lapopt_auth = (int)auth;
	return AT_RC_OK;
}

/* ---- AT+CWAUTOCONN, AT+CWDHCP, AT+CWHOSTNAME, AT+CWRECONNCFG ----------- */

static enum at_rc cwautoconn_query(struct at_req *r)
{
	at_out_text(r->out, "+CWAUTOCONN:%d", dev(r)->ws.autoconn); /* no CR LF, §1.7 */
	return AT_RC_OK;
}

static enum at_rc cwautoconn_setup(struct at_req *r)
{
	int64_t v;
	if (!at_nargs(r, 1, 1) || at_get_int(r, 0, 0, 1, true, &v) < 0)
		return AT_RC_ERROR;
	dev(r)->ws.autoconn = v;
	device_save_int(dev(r), NS_WIFI, "autoconn", v, true); /* always saved, §6.2 */
	return AT_RC_OK;
}

static enum at_rc cwdhcp_query(struct at_req *r)
{
	at_out_text(r->out, "+CWDHCP:%d", dev(r)->ws.dhcp); /* no CR LF, §1.7 */
	return AT_RC_OK;
}

static enum at_rc cwdhcp_setup(struct at_req *r)
{
	struct device *d = dev(r);
	int64_t op, bits;
	if (!at_nargs(r, 2, 2) || at_get_int(r, 0, 0, 1, true, &op) < 0 ||
	    at_get_int(r, 1, 0, 3, true, &bits) < 0)
		return AT_RC_ERROR;
	if (op) {
		d->ws.dhcp |= (int)bits;
		/* DHCP and a static address exclude each other: last wins. */
		if (bits & 1) {
			d->ws.sta_static.set = false;
			save_ipv4(d, "sta_static", &d->ws.sta_static);
		}
	} else {
		d->ws.dhcp &= ~(int)bits;
	}
	device_save_int(d, NS_WIFI, "dhcp", d->ws.dhcp, false);
	return AT_RC_OK;
}

/* ---- AT+CWCOUNTRY ------------------------------------------------------ */

static enum at_rc cwcountry_query(struct at_req *r)
{
	const struct country *c = &dev(r)->ws.country;
	at_out_line(r->out, "+CWCOUNTRY:%d,\"%s\",%d,%d", c->policy, c->code, c->first, c->count);
	return AT_RC_OK;
}

/* AT+CWCOUNTRY=<policy>,<"code">,<first channel>,<channel count> (ESP-AT
 * Wi-Fi docs): the channels bound scans and joins from now on. The
 * virtual access points carry no country of their own, so policy 0
 * (follow the AP's) changes nothing after a join. */
static enum at_rc cwcountry_setup(struct at_req *r)
{
	struct country c = { 0 };
	int64_t policy, first, count;
	if (!at_nargs(r, 4, 4) || at_get_int(r, 0, 0, 1, true, &policy) < 0 ||
	    at_get_str(r, 1, 3, true, c.code, sizeof(c.code)) < 0 ||
	    at_get_int(r, 2, 1, 14, true, &first) < 0 || at_get_int(r, 3, 1, 14, true, &count) < 0)
		return AT_RC_ERROR;
	if (!c.code[0])
		return at_fail(r, AT_ERR_PARA_INVALID(1));
	if (first + count - 1 > 14) /* the 2.4 GHz band ends at channel 14 */
		return at_fail(r, AT_ERR_PARA_INVALID(3));
	c.policy = (int)policy;
	c.first = (int)first;
	c.count = (int)count;
	dev(r)->ws.country = c;
	wifi_set_channels(&dev(r)->wifi, c.first, c.count);
	return AT_RC_OK;
}

static enum at_rc cwhostname_query(struct at_req *r)
{
	at_out_line(r->out, "+CWHOSTNAME:%s", dev(r)->ws.hostname);
	return AT_RC_OK;
}

static enum at_rc cwhostname_setup(struct at_req *r)
{
	struct device *d = dev(r);
	char name[33];
	if (!at_nargs(r, 1, 1) || at_get_str(r, 0, 32, true, name, sizeof(name)) < 0)
		return AT_RC_ERROR;
	if (!device_sta_on(d) || !name[0])
		return at_fail(r, AT_ERR_EXEC_FAIL);
	snprintf(d->ws.hostname, sizeof(d->ws.hostname), "%s", name); /* not saved */
	return AT_RC_OK;
}

static enum at_rc cwreconncfg_query(struct at_req *r)
{
	at_out_line(r->out, "+CWRECONNCFG:%d,%d", dev(r)->ws.reconn_interval,
		    dev(r)->ws.reconn_repeat);
	return AT_RC_OK;
}

static enum at_rc cwreconncfg_setup(struct at_req *r)
{
	struct device *d = dev(r);
	int64_t intv, rep;
	if (!at_nargs(r, 2, 2) || at_get_int(r, 0, 0, 7200, true, &intv) < 0 ||
	    at_get_int(r, 1, 0, 1000, true, &rep) < 0)
		return AT_RC_ERROR;
	d->ws.reconn_interval = (int)intv;
	d->ws.reconn_repeat = (int)rep;
	d->ws.join.reconn_interval = (int)intv;
	device_save_int(d, NS_WIFI, "reconn_intv", intv, false);
	device_save_int(d, NS_WIFI, "reconn_rep", rep, false);
	return AT_RC_OK;
}

/* ---- AT+CIPSTA / AT+CIPAP --------------------------------------------- */

static void print_ip_lines(struct at_req *r, const char *name, struct in_addr ip,
			   struct in_addr gw, struct in_addr mask)
{
	char a[INET_ADDRSTRLEN], g[INET_ADDRSTRLEN], m[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &ip, a, sizeof(a));
	inet_ntop(AF_INET, &gw, g, sizeof(g));
	inet_ntop(AF_INET, &mask, m, sizeof(m));
	at_out_line(r->out, "+%s:ip:\"%s\"", name, a);
	at_out_line(r->out, "+%s:gateway:\"%s\"", name, g);
	at_out_line(r->out, "+%s:netmask:\"%s\"", name, m);
}

static enum at_rc cipsta_query(struct at_req *r)
{
	struct device *d = dev(r);
	struct in_addr zero = { 0 };
	if (d->ws.sta_static.set) {
		print_ip_lines(r, "CIPSTA", d->ws.sta_static.ip, d->ws.sta_static.gw,
			       d->ws.sta_static.mask);
	} else if (wifi_has_ip(&d->wifi) && d->wifi.host.has_ip) {
		print_ip_lines(r, "CIPSTA", d->wifi.host.ip, d->wifi.host.gw, d->wifi.host.mask);
	} else {
		print_ip_lines(r, "CIPSTA", zero, zero, zero);
	}
	if (d->ipv6 && wifi_has_ip(&d->wifi)) {
		char s[INET6_ADDRSTRLEN];
		if (d->wifi.host.has_ip6ll) {
			inet_ntop(AF_INET6, &d->wifi.host.ip6ll, s, sizeof(s));
			at_out_line(r->out, "+CIPSTA:ip6ll:\"%s\"", s);
		}
		if (d->wifi.host.has_ip6gl) {
			inet_ntop(AF_INET6, &d->wifi.host.ip6gl, s, sizeof(s));
			at_out_line(r->out, "+CIPSTA:ip6gl:\"%s\"", s);
		}
	}
	return AT_RC_OK;
}

static int parse_ipv4_args(struct at_req *r, struct ipv4_cfg *c)
{
	char s[3][20];
	if (!at_nargs(r, 1, 3) || r->args.n == 2) {
		/* gateway and netmask come together */
		if (!r->errcode)
			r->errcode = AT_ERR_PARA_NUM(3, r->args.n);
		return -1;
	}
	for (int i = 0; i < r->args.n; i++) {
		if (at_get_str(r, i, 15, true, s[i], sizeof(s[i])) < 0)
			return -1;
	}
	struct in_addr *dst[3] = { &c->ip, &c->gw, &c->mask };
	for (int i = 0; i < r->args.n; i++) {
		if (inet_pton(AF_INET, s[i], dst[i]) != 1) {
			r->errcode = AT_ERR_PARA_INVALID(i);
			return -1;
		}
	}
	if (r->args.n == 1) {
		/* Only the address: a /24 with the gateway at .1. */
		inet_pton(AF_INET, "255.255.255.0", &c->mask);
		c->gw.s_addr = htonl((ntohl(c->ip.s_addr) & 0xffffff00u) | 1u);
	}
	c->set = true;
	return 0;
}

static enum at_rc cipsta_setup(struct at_req *r)
{
	struct device *d = dev(r);
	struct ipv4_cfg c = { 0 };
	/* Accepted in any Wi-Fi mode: the address waits for the station.
	 * Zephyr's esp_at sets it before AT+CWMODE, and after a restart the
	 * saved mode may be 0 (protocol.md §5.3). */
	if (parse_ipv4_args(r, &c) < 0)
		return AT_RC_ERROR;
	d->ws.sta_static = c;
	d->ws.dhcp &= ~1;
	save_ipv4(d, "sta_static", &c);
	device_save_int(d, NS_WIFI, "dhcp", d->ws.dhcp, false);
	return AT_RC_OK;
}

static enum at_rc cipap_query(struct at_req *r)
{
	struct device *d = dev(r);
	if (!device_ap_on(d))
		return at_fail(r, AT_ERR_EXEC_FAIL);
	print_ip_lines(r, "CIPAP", d->ws.ap.ip, d->ws.ap.gw, d->ws.ap.mask);
	return AT_RC_OK;
}

static enum at_rc cipap_setup(struct at_req *r)
{
	struct device *d = dev(r);
	struct ipv4_cfg c = { 0 };
	if (!device_ap_on(d))
		return at_fail(r, AT_ERR_EXEC_FAIL);
	if (parse_ipv4_args(r, &c) < 0)
		return AT_RC_ERROR;
	d->ws.ap = c;
	d->ws.dhcp &= ~2;
	save_ipv4(d, "ap_ip", &c);
	device_save_int(d, NS_WIFI, "dhcp", d->ws.dhcp, false);
	return AT_RC_OK;
}

/* ---- AT+CWSAP / AT+CWLIF: the virtual SoftAP --------------------------- */

static void default_softap(struct device *d)
{
	struct softap_cfg *s = &d->ws.sap;
	const uint8_t *m = d->ws.ap_mac;
	/* "ESP_" and the last three bytes of the SoftAP MAC, open, channel 1,
	 * four stations, visible (a fresh module's SoftAP). */
	snprintf(s->ssid, sizeof(s->ssid), "ESP_%02X%02X%02X", m[3], m[4], m[5]);
	s->pwd[0] = '\0';
	s->channel = 1;
	s->ecn = 0;
	s->max_conn = 4;
	s->hidden = 0;
}

static enum at_rc cwsap_query(struct at_req *r)
{
	struct device *d = dev(r);
	if (!device_ap_on(d))
		return at_fail(r, AT_ERR_EXEC_FAIL);
	const struct softap_cfg *s = &d->ws.sap;
	at_out_line(r->out, "+CWSAP:\"%s\",\"%s\",%d,%d,%d,%d", s->ssid, s->pwd, s->channel, s->ecn,
		    s->max_conn, s->hidden);
	return AT_RC_OK;
}

static enum at_rc cwsap_setup(struct at_req *r)
{
	struct device *d = dev(r);
	struct softap_cfg s = d->ws.sap;
	int64_t ch, ecn, maxc = s.max_conn, hidden = 0;
	if (!at_nargs(r, 4, 6) || at_get_str(r, 0, 32, true, s.ssid, sizeof(s.ssid)) < 0 ||
	    at_get_str(r, 1, 64, true, s.pwd, sizeof(s.pwd)) < 0 ||
	    at_get_int(r, 2, 1, 13, true, &ch) < 0 || at_get_int(r, 3, 0, 4, true, &ecn) < 0 ||
	    at_get_int(r, 4, 1, 10, false, &maxc) < 0 || at_get_int(r, 5, 0, 1, false, &hidden) < 0)
		return AT_RC_ERROR;
	if (!device_ap_on(d))
		return at_fail(r, AT_ERR_EXEC_FAIL);
	/* WEP is not offered; an open AP has no password; WPA needs 8..64. */
	size_t pl = strlen(s.pwd);
	if (ecn == 1 || !s.ssid[0] || (ecn == 0 && pl) || (ecn != 0 && (pl < 8 || pl > 64)))
		return at_fail(r, AT_ERR_PARA_INVALID(ecn == 1 ? 3 : 1));
	s.channel = (int)ch;
	s.ecn = (int)ecn;
	s.max_conn = (int)maxc;
	s.hidden = (int)hidden;
	d->ws.sap = s;
	device_save_blob(d, NS_WIFI, "softap", &s, sizeof(s), false);
	return AT_RC_OK;
}

static enum at_rc cwlif_exec(struct at_req *r)
{
	/* Nobody joins the virtual SoftAP: the station list is empty. */
	if (!device_ap_on(dev(r)))
		return at_fail(r, AT_ERR_EXEC_FAIL);
	return AT_RC_OK;
}

/* AT+CWQIF disconnects every station from the SoftAP, AT+CWQIF=<mac> one
 * (protocol.md §1.12). Nobody joins the virtual SoftAP, so there is none
 * to disconnect: all of them is done at once, a given one is not found. */
static enum at_rc cwqif_exec(struct at_req *r)
{
	if (!device_ap_on(dev(r)))
		return at_fail(r, AT_ERR_EXEC_FAIL);
	return AT_RC_OK;
}

static enum at_rc cwqif_setup(struct at_req *r)
{
	char mac[20];
	uint8_t m[6];
	if (!at_nargs(r, 1, 1) || at_get_str(r, 0, 17, true, mac, sizeof(mac)) < 0)
		return AT_RC_ERROR;
	if (wifi_parse_mac(mac, m) < 0)
		return at_fail(r, AT_ERR_PARA_INVALID(0));
	return at_fail(r, AT_ERR_EXEC_FAIL);
}

/* ---- AT+CIPSTAMAC / AT+CIPAPMAC --------------------------------------- */

static enum at_rc mac_query(struct at_req *r, const char *name, const uint8_t *m)
{
	char s[18];
	wifi_format_mac(s, m);
	at_out_line(r->out, "+%s:\"%s\"", name, s);
	return AT_RC_OK;
}

static enum at_rc mac_setup(struct at_req *r, uint8_t *m, const uint8_t *other, const char *key)
{
	struct device *d = dev(r);
	char s[20];
	uint8_t v[6];
	if (!at_nargs(r, 1, 1) || at_get_str(r, 0, 17, true, s, sizeof(s)) < 0)
		return AT_RC_ERROR;
	static const uint8_t zero[6], ones[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	/* Unicast only, not all-zero/all-one, and STA != AP (Wi-Fi docs). */
	if (wifi_parse_mac(s, v) < 0 || (v[0] & 1) || !memcmp(v, zero, 6) ||
	    !memcmp(v, ones, 6) || !memcmp(v, other, 6))
		return at_fail(r, AT_ERR_PARA_INVALID(0));
	memcpy(m, v, 6);
	device_save_blob(d, NS_WIFI, key, v, 6, false);
	return AT_RC_OK;
}

static enum at_rc cipstamac_query(struct at_req *r)
{
	return mac_query(r, "CIPSTAMAC", dev(r)->ws.sta_mac);
}

static enum at_rc cipstamac_setup(struct at_req *r)
{
	return mac_setup(r, dev(r)->ws.sta_mac, dev(r)->ws.ap_mac, "sta_mac");
}

static enum at_rc cipapmac_query(struct at_req *r)
{
	return mac_query(r, "CIPAPMAC", dev(r)->ws.ap_mac);
}

static enum at_rc cipapmac_setup(struct at_req *r)
{
	return mac_setup(r, dev(r)->ws.ap_mac, dev(r)->ws.sta_mac, "ap_mac");
}

static const struct at_cmd wifi_cmds[] = {
	/* name            test  query              setup              exec */
	{ "+CWINIT",       NULL, cwinit_query,      cwinit_setup,      NULL },
	{ "+CWMODE",       NULL, cwmode_query,      cwmode_setup,      NULL },
	{ "+CWSTATE",      NULL, cwstate_query,     NULL,              NULL },
	{ "+CWJAP",        NULL, cwjap_query,       cwjap_setup,       cwjap_exec },
	{ "+CWRECONNCFG",  NULL, cwreconncfg_query, cwreconncfg_setup, NULL },
	{ "+CWLAP",        NULL, NULL,              cwlap_setup,       cwlap_exec },
	{ "+CWLAPOPT",     NULL, NULL,              cwlapopt_setup,    NULL },
	{ "+CWQAP",        NULL, NULL,              NULL,              cwqap_exec },
	{ "+CWSAP",        NULL, cwsap_query,       cwsap_setup,       NULL },
	{ "+CWLIF",        NULL, NULL,              NULL,              cwlif_exec },
	{ "+CWQIF",        NULL, NULL,              cwqif_setup,       cwqif_exec },
	{ "+CWCOUNTRY",    NULL, cwcountry_query,   cwcountry_setup,   NULL },
	{ "+CWDHCP",       NULL, cwdhcp_query,      cwdhcp_setup,      NULL },
	{ "+CWAUTOCONN",   NULL, cwautoconn_query,  cwautoconn_setup,  NULL },
	{ "+CIPSTAMAC",    NULL, cipstamac_query,   cipstamac_setup,   NULL },
	{ "+CIPAPMAC",     NULL, cipapmac_query,    cipapmac_setup,    NULL },
	{ "+CIPSTA",       NULL, cipsta_query,      cipsta_setup,      NULL },
	{ "+CIPAP",        NULL, cipap_query,       cipap_setup,       NULL },
	{ "+CWHOSTNAME",   NULL, cwhostname_query,  cwhostname_setup,  NULL },
};

const struct at_cmd_table cmd_wifi_table = AT_TABLE("Wi-Fi", wifi_cmds);
