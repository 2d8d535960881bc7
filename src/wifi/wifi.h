/* The virtual Wi-Fi station (design.md §4): access points come from the
 * configuration; with none configured any SSID joins ("lab mode"). Joining
 * takes module-like time on the event loop and reports events through
 * callbacks; the addresses after a join are the host's. No AT text here. */
#ifndef ESPATD_WIFI_WIFI_H
#define ESPATD_WIFI_WIFI_H

#include "core/loop.h"
#include "wifi/hostif.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wifi_ap {
	char ssid[33];
	char pwd[65];
	int rssi;
	int channel;
	uint8_t bssid[6];
	int ecn;  /* 0 open, 3 WPA2_PSK ... (AT+CWLAP <ecn>) */
};

struct wifi_join_cfg {
	char ssid[33];
	char pwd[65];
	bool has_bssid;
	uint8_t bssid[6];
	int pci_en;
	int reconn_interval;
	int listen_interval;
	int scan_mode;
	int jap_timeout;  /* seconds */
	int pmf;
};

/* AT+CWSTATE values (protocol.md §5.5). */
enum wifi_state {
	WIFI_ST_IDLE = 0,
	WIFI_ST_NO_IP = 1,
	WIFI_ST_GOT_IP = 2,
	WIFI_ST_CONNECTING = 3,
	WIFI_ST_DISCONNECTED = 4,
};

/* +CWJAP:<code> failure reasons. */
enum { WIFI_JOIN_OK = 0, WIFI_JOIN_TIMEOUT = 1, WIFI_JOIN_BAD_PASSWORD = 2,
       WIFI_JOIN_NO_AP = 3, WIFI_JOIN_FAIL = 4 };

struct wifi_events {
	void (*connected)(void *arg);
	void (*got_ip)(void *arg);
	void (*disconnected)(void *arg);
	void (*join_done)(void *arg, int result);
};

struct wifi {
	struct loop *loop;
	const struct wifi_events *ev;
	void *ev_arg;
	struct wifi_ap *aps;  /* configured access points; none = lab mode */
	size_t naps;
	const char *netif;    /* host interface, NULL = default route */
	uint32_t join_ms;     /* time from CWJAP to WIFI GOT IP */
	enum wifi_state state;
	bool joining;
	bool ever_connected;
	struct wifi_join_cfg cfg; /* the configuration being used */
	struct wifi_ap cur;       /* the access point joined */
	struct hostif host;
	struct loop_timer timer;
	int phase;
	int pending_result;
	int chan_lo, chan_hi;     /* channels the country allows (AT+CWCOUNTRY) */
};

void wifi_init(struct wifi *w, struct loop *l, const struct wifi_events *ev, void *arg);
void wifi_free(struct wifi *w);
/* Channels first..first+count-1 only (AT+CWCOUNTRY): access points
 * elsewhere are neither found by scans nor joined. */
void wifi_set_channels(struct wifi *w, int first, int count);
/* A 64-character password is a raw WPA2 key: exactly 64 hex digits. */
bool wifi_is_raw_psk(const char *pwd);

/* Add an access point from "ssid[:password[:rssi[:channel[:bssid]]]]" or
 * from a parsed record. Returns 0 or -EINVAL. */
int wifi_add_ap_spec(struct wifi *w, const char *spec);
int wifi_add_ap(struct wifi *w, const struct wifi_ap *ap);
/* Load [ap] sections from a file (see docs/espatd.1). 0 or -errno; *line
 * gets the line number of a syntax error. */
int wifi_load_ap_file(struct wifi *w, const char *path, int *line);

/* Start joining; join_done() reports the result later (never re-entrantly). */
void wifi_join(struct wifi *w, const struct wifi_join_cfg *cfg);
/* Leave the access point; disconnected() fires first if it was connected. */
void wifi_leave(struct wifi *w);
/* The radio is gone (module reset): back to idle with no events. */
void wifi_reset(struct wifi *w);
bool wifi_has_ip(const struct wifi *w);
/* Access points "in range": the configured ones, or in lab mode the joined
 * one. Returns how many were written to out (at most max). */
size_t wifi_scan(const struct wifi *w, struct wifi_ap *out, size_t max);
/* Refresh host addresses (interface may have changed). */
int wifi_refresh_host(struct wifi *w);

int wifi_parse_mac(const char *s, uint8_t mac[6]);
/* "xx:xx:xx:xx:xx:xx", lower case, as ESP-AT prints MACs (§5.5). */
void wifi_format_mac(char out[18], const uint8_t mac[6]);

#endif
