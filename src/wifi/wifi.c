#include "wifi/wifi.h"

#include "core/log.h"

#include <openssl/evp.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_timer(void *arg);

void wifi_init(struct wifi *w, struct loop *l, const struct wifi_events *ev, void *arg)
{
	memset(w, 0, sizeof(*w));
	w->loop = l;
	w->ev = ev;
	w->ev_arg = arg;
	w->join_ms = 1000;
	w->chan_lo = 1;
	w->chan_hi = 14;
	loop_timer_init(&w->timer, on_timer, w);
}

void wifi_set_channels(struct wifi *w, int first, int count)
{
	w->chan_lo = first;
	w->chan_hi = first + count - 1;
}

static bool channel_allowed(const struct wifi *w, int ch)
{
	return ch >= w->chan_lo && ch <= w->chan_hi;
}

void wifi_free(struct wifi *w)
{
	loop_timer_stop(w->loop, &w->timer);
	free(w->aps);
	w->aps = NULL;
	w->naps = 0;
}

int wifi_parse_mac(const char *s, uint8_t mac[6])
{
	unsigned m[6];
	char tail;
	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5],
		   &tail) != 6)
		return -EINVAL;
	if (strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)m[i];
	return 0;
}

void wifi_format_mac(char out[18], const uint8_t m[6])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

/* A stable, locally administered BSSID for an SSID that has none. */
static void bssid_from_ssid(const char *ssid, uint8_t mac[6])
{
	uint32_t h = 2166136261u;
	for (const char *p = ssid; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	mac[0] = 0x02; /* locally administered, unicast */
	mac[1] = 0xe5;
	mac[2] = (uint8_t)(h >> 24);
	mac[3] = (uint8_t)(h >> 16);
	mac[4] = (uint8_t)(h >> 8);
	mac[5] = (uint8_t)h;
}

int wifi_add_ap(struct wifi *w, const struct wifi_ap *ap)
{
	if (!ap->ssid[0])
		return -EINVAL;
	struct wifi_ap *n = realloc(w->aps, (w->naps + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	w->aps = n;
	w->aps[w->naps++] = *ap;
	return 0;
}

static void ap_defaults(struct wifi_ap *ap)
{
	memset(ap, 0, sizeof(*ap));
	ap->rssi = -45;
	ap->channel = 6;
	ap->ecn = -1;
}

static int ap_finish(struct wifi_ap *ap, bool have_bssid)
{
	if (!ap->ssid[0])
		return -EINVAL;
	if (!have_bssid)
		bssid_from_ssid(ap->ssid, ap->bssid);
	if (ap->ecn < 0)
		ap->ecn = ap->pwd[0] ? 3 : 0;
	if (ap->rssi < -100 || ap->rssi > 0 || ap->channel < 1 || ap->channel > 14 ||
	    ap->ecn > 9)
		return -EINVAL;
	return 0;
}

static int copy_field(char *dst, size_t size, const char *s)
{
	if (strlen(s) >= size)
		return -EINVAL;
	strcpy(dst, s);
	return 0;
}

int wifi_add_ap_spec(struct wifi *w, const char *spec)
{
	struct wifi_ap ap;
	ap_defaults(&ap);
	char tmp[256];
	if (copy_field(tmp, sizeof(tmp), spec) < 0)
		return -EINVAL;
	char *fields[5] = { 0 };
	int n = 0;
	char *p = tmp;
	/* The BSSID holds colons itself: split at most 4 times. */
	while (n < 4 && p) {
		fields[n++] = p;
		p = strchr(p, ':');
		if (p)
			*p++ = '\0';
	}
	if (p)
		fields[n++] = p;
	bool have_bssid = false;
	if (copy_field(ap.ssid, sizeof(ap.ssid), fields[0]) < 0)
		return -EINVAL;
	if (n > 1 && copy_field(ap.pwd, sizeof(ap.pwd), fields[1]) < 0)
		return -EINVAL;
	if (n > 2 && fields[2][0])
		ap.rssi = atoi(fields[2]);
	if (n > 3 && fields[3][0])
		ap.channel = atoi(fields[3]);
	if (n > 4 && fields[4][0]) {
		if (wifi_parse_mac(fields[4], ap.bssid) < 0)
			return -EINVAL;
		have_bssid = true;
	}
	if (ap_finish(&ap, have_bssid) < 0)
		return -EINVAL;
	return wifi_add_ap(w, &ap);
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int wifi_load_ap_file(struct wifi *w, const char *path, int *lineno)
{
	FILE *f = fopen(path, "re");
	*lineno = 0;
	if (!f)
		return -errno;
	char line[512];
	struct wifi_ap ap;
	bool in_ap = false, have_bssid = false;
	int rc = 0;
	while (fgets(line, sizeof(line), f)) {
		++*lineno;
		char *s = trim(line);
		if (!*s || *s == '#' || *s == ';')
			continue;
		if (strcmp(s, "[ap]") == 0) {
			if (in_ap && (ap_finish(&ap, have_bssid) < 0 || wifi_add_ap(w, &ap) < 0)) {
				rc = -EINVAL;
				break;
			}
			ap_defaults(&ap);
			in_ap = true;
			have_bssid = false;
			continue;
		}
		char *eq = strchr(s, '=');
		if (!in_ap || !eq) {
			rc = -EINVAL;
			break;
		}
		*eq = '\0';
		char *key = trim(s), *val = trim(eq + 1);
		size_t vl = strlen(val);
		if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
			val[vl - 1] = '\0';
			val++;
		}
		int bad = 0;
		if (strcmp(key, "ssid") == 0)
			bad = copy_field(ap.ssid, sizeof(ap.ssid), val);
		else if (strcmp(key, "password") == 0)
			bad = copy_field(ap.pwd, sizeof(ap.pwd), val);
		else if (strcmp(key, "rssi") == 0)
			ap.rssi = atoi(val);
		else if (strcmp(key, "channel") == 0)
			ap.channel = atoi(val);
		else if (strcmp(key, "ecn") == 0)
			ap.ecn = atoi(val);
		else if (strcmp(key, "bssid") == 0) {
			bad = wifi_parse_mac(val, ap.bssid);
			have_bssid = true;
		} else
			bad = -EINVAL;
		if (bad) {
			rc = -EINVAL;
			break;
		}
	}
	if (rc == 0 && in_ap && (ap_finish(&ap, have_bssid) < 0 || wifi_add_ap(w, &ap) < 0))
		rc = -EINVAL;
	if (rc == 0)
		*lineno = 0;
	fclose(f);
	return rc;
}

static const struct wifi_ap *find_ap(const struct wifi *w, const struct wifi_join_cfg *cfg)
{
	const struct wifi_ap *best = NULL;
	for (size_t i = 0; i < w->naps; i++) {
		const struct wifi_ap *ap = &w->aps[i];
		if (strcmp(ap->ssid, cfg->ssid) != 0 || !channel_allowed(w, ap->channel))
			continue;
		if (cfg->has_bssid && memcmp(ap->bssid, cfg->bssid, 6) != 0)
			continue;
		/* scan_mode 1 picks the strongest; 0 the first found. */
		if (!best || (cfg->scan_mode == 1 && ap->rssi > best->rssi))
			best = ap;
		if (cfg->scan_mode == 0)
			break;
	}
	return best;
}

bool wifi_is_raw_psk(const char *pwd)
{
	size_t n = 0;
	while (pwd[n] && isxdigit((unsigned char)pwd[n]))
		n++;
	return n == 64 && !pwd[n];
}

/* The 64-hex-digit key WPA2 derives from a passphrase: PBKDF2-HMAC-SHA1 of
 * the passphrase salted with the SSID, 4096 rounds, 32 bytes (IEEE 802.11i
 * H.4). A station may give either form (ESP-AT Wi-Fi AT+CWJAP: the
 * password is up to 64 bytes; IDF reads 64 as the raw key). */
static bool psk_of(const char *pass, const char *ssid, char hex[65])
{
	unsigned char key[32];
	if (!PKCS5_PBKDF2_HMAC_SHA1(pass, (int)strlen(pass), (const unsigned char *)ssid,
				    (int)strlen(ssid), 4096, (int)sizeof(key), key))
		return false;
	for (size_t i = 0; i < sizeof(key); i++)
		snprintf(hex + 2 * i, 3, "%02x", key[i]);
	return true;
}

static bool password_matches(const struct wifi_ap *ap, const char *given)
{
	if (strcmp(ap->pwd, given) == 0)
		return true;
	char hex[65];
	if (wifi_is_raw_psk(given) && !wifi_is_raw_psk(ap->pwd))
		return psk_of(ap->pwd, ap->ssid, hex) && strcasecmp(hex, given) == 0;
	if (wifi_is_raw_psk(ap->pwd) && !wifi_is_raw_psk(given))
		return psk_of(given, ap->ssid, hex) && strcasecmp(hex, ap->pwd) == 0;
	return strcasecmp(ap->pwd, given) == 0 && wifi_is_raw_psk(given);
}

/* Decide now how the join will end; the timer plays it out. */
static int judge(struct wifi *w, const struct wifi_join_cfg *cfg)
{
	if (w->naps == 0) {
		/* Lab mode: any SSID is in range. */
		memset(&w->cur, 0, sizeof(w->cur));
		snprintf(w->cur.ssid, sizeof(w->cur.ssid), "%s", cfg->ssid);
		snprintf(w->cur.pwd, sizeof(w->cur.pwd), "%s", cfg->pwd);
		w->cur.rssi = -45;
		/* channel 6, or the nearest one the country allows */
		w->cur.channel = 6 < w->chan_lo ? w->chan_lo : 6 > w->chan_hi ? w->chan_hi : 6;
		w->cur.ecn = cfg->pwd[0] ? 3 : 0;
		if (cfg->has_bssid)
			memcpy(w->cur.bssid, cfg->bssid, 6);
		else
			bssid_from_ssid(cfg->ssid, w->cur.bssid);
		return WIFI_JOIN_OK;
	}
	const struct wifi_ap *ap = find_ap(w, cfg);
	if (!ap)
		return WIFI_JOIN_NO_AP;
	if (ap->ecn != 0 && !password_matches(ap, cfg->pwd))
		return WIFI_JOIN_BAD_PASSWORD;
	if (cfg->pci_en && ap->ecn <= 1)
		return WIFI_JOIN_FAIL; /* pci_en refuses OPEN and WEP */
	w->cur = *ap;
	return WIFI_JOIN_OK;
}

enum { PH_NONE, PH_CONNECT, PH_GOT_IP, PH_FAIL };

void wifi_join(struct wifi *w, const struct wifi_join_cfg *cfg)
{
	w->cfg = *cfg;
	w->joining = true;
	w->state = WIFI_ST_CONNECTING;
	w->pending_result = judge(w, cfg);
	uint64_t limit = (uint64_t)(cfg->jap_timeout > 0 ? cfg->jap_timeout : 15) * 1000u;
	if (w->pending_result == WIFI_JOIN_OK && w->join_ms > limit)
		w->pending_result = WIFI_JOIN_TIMEOUT;
	if (w->pending_result == WIFI_JOIN_OK) {
		w->phase = PH_CONNECT;
		loop_timer_start(w->loop, &w->timer, w->join_ms * 6 / 10);
	} else {
		w->phase = PH_FAIL;
		uint64_t t = w->pending_result == WIFI_JOIN_TIMEOUT ? limit : w->join_ms;
		loop_timer_start(w->loop, &w->timer, t);
	}
}

static void on_timer(void *arg)
{
	struct wifi *w = arg;
	switch (w->phase) {
	case PH_CONNECT:
		w->state = WIFI_ST_NO_IP;
		w->ever_connected = true;
		w->phase = PH_GOT_IP;
		loop_timer_start(w->loop, &w->timer, w->join_ms - w->join_ms * 6 / 10);
		w->ev->connected(w->ev_arg);
		break;
	case PH_GOT_IP:
		w->phase = PH_NONE;
		w->joining = false;
		if (wifi_refresh_host(w) < 0)
			log_warn("station has no host address: interface %s not found "
				 "(check --netif)", w->netif ? w->netif : "of the default route");
		w->state = WIFI_ST_GOT_IP;
		log_info("station joined \"%s\" (virtual), address %s via %s", w->cur.ssid,
			 w->host.has_ip ? inet_ntoa(w->host.ip) : "none", w->host.name);
		w->ev->got_ip(w->ev_arg);
		w->ev->join_done(w->ev_arg, WIFI_JOIN_OK);
		break;
	case PH_FAIL:
		w->phase = PH_NONE;
		w->joining = false;
		w->state = WIFI_ST_DISCONNECTED;
		log_info("joining \"%s\" failed: %s", w->cfg.ssid,
			 w->pending_result == WIFI_JOIN_NO_AP ? "no such access point configured"
			 : w->pending_result == WIFI_JOIN_BAD_PASSWORD ? "wrong password"
			 : w->pending_result == WIFI_JOIN_TIMEOUT ? "timeout"
								 : "refused");
		w->ev->join_done(w->ev_arg, w->pending_result);
		break;
	}
}

void wifi_leave(struct wifi *w)
{
	bool was = w->state == WIFI_ST_NO_IP || w->state == WIFI_ST_GOT_IP;
	loop_timer_stop(w->loop, &w->timer);
	w->phase = PH_NONE;
	w->joining = false;
	if (was || w->state == WIFI_ST_CONNECTING)
		w->state = WIFI_ST_DISCONNECTED;
	if (was)
		w->ev->disconnected(w->ev_arg);
}

void wifi_reset(struct wifi *w)
{
	loop_timer_stop(w->loop, &w->timer);
	w->phase = PH_NONE;
	w->joining = false;
	w->state = WIFI_ST_IDLE;
}

bool wifi_has_ip(const struct wifi *w)
{
	return w->state == WIFI_ST_GOT_IP;
}

size_t wifi_scan(const struct wifi *w, struct wifi_ap *out, size_t max)
{
	size_t n = 0;
	if (w->naps == 0) {
		if ((w->state == WIFI_ST_GOT_IP || w->state == WIFI_ST_NO_IP) && max)
			out[n++] = w->cur;
		return n;
	}
	for (size_t i = 0; i < w->naps && n < max; i++)
		if (channel_allowed(w, w->aps[i].channel))
			out[n++] = w->aps[i];
	return n;
}

int wifi_refresh_host(struct wifi *w)
{
	return hostif_get(w->netif, &w->host);
}
