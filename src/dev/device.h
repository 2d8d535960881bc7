/* The emulated module: its settings (RAM values, loaded from the store at
 * boot), the AT engine, the virtual Wi-Fi, and the boot/restart sequence. */
#ifndef ESPATD_DEV_DEVICE_H
#define ESPATD_DEV_DEVICE_H

#include "at/engine.h"
#include "cmd/tcpip.h"
#include "core/loop.h"
#include "dev/profile.h"
#include "transport/serial.h"
#include "wifi/wifi.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

struct store;
struct policy;
struct ping;
struct sntp;
struct ota_state;

struct ipv4_cfg {
	bool set;
	struct in_addr ip, gw, mask;
};

/* Wi-Fi chapter settings (protocol.md §5.5, §6). */
struct wifi_settings {
	int mode;                   /* AT+CWMODE 0..3 */
	bool driver_off;            /* AT+CWINIT=0 until AT+CWINIT=1 or a restart */
	bool autoconn;              /* AT+CWAUTOCONN, always saved */
	int dhcp;                   /* AT+CWDHCP bits: 0 STA, 1 SoftAP */
	struct ipv4_cfg sta_static; /* AT+CIPSTA */
	struct ipv4_cfg ap;         /* AT+CIPAP */
	uint8_t sta_mac[6], ap_mac[6];
	char hostname[33];
	int reconn_interval, reconn_repeat; /* AT+CWRECONNCFG */
	bool have_join;             /* a join configuration exists */
	struct wifi_join_cfg join;  /* the last AT+CWJAP configuration */
	int lapopt_sort, lapopt_mask, lapopt_rssi, lapopt_auth; /* AT+CWLAPOPT */
	struct scan_filter {        /* AT+CWLAP=<ssid>,<mac>,<channel>: the scan running */
		bool has_ssid, has_mac, has_channel;
		char ssid[33];
		uint8_t mac[6];
		int channel;
	} scan_filter;
	struct country {             /* AT+CWCOUNTRY, never saved */
		int policy;
		char code[4];
		int first, count;        /* channels first..first+count-1 */
	} country;
	struct softap_cfg {          /* AT+CWSAP: the virtual SoftAP */
		char ssid[33];
		char pwd[65];
		int channel, ecn, max_conn, hidden;
	} sap;
};

/* AT+PING and SNTP state (cmd_services.c, protocol.md §2.21-§2.23, §2.31). */
#define SVC_SNTP_SERVERS 3
struct services {
	struct ping *ping;              /* echo request in flight */
	struct dns_query *ping_query;   /* AT+PING host lookup */
	struct loop_timer ping_refused; /* refused by --allow: answered as a timeout */
	struct sntp *sntp;              /* the running client; NULL when off */
	bool sntp_enable;               /* AT+CIPSNTPCFG <enable> */
	int tz_minutes;                 /* <timezone> as a UTC offset in minutes */
	int tz_shown;                   /* <timezone> as the query prints it */
	int nservers;
	char servers[SVC_SNTP_SERVERS][65];
	uint32_t sntp_intv;             /* AT+CIPSNTPINTV, seconds */
};

struct device_opts {
	const struct profile *profile;
	const char *state_dir;      /* NULL = nothing persists */
	uint32_t boot_ms;           /* restart time for AT+RST / AT+RESTORE */
	struct line_cfg uart;       /* line at power-up (before UART_DEF) */
	int recvlen_idle;           /* --recvlen-idle: -1 (ESP-AT 2.x) or 0 (3.x) */
	uint16_t dns_port;          /* --dns-port: port of the CIPDNS servers */
	uint16_t ntp_port;          /* --ntp-port: port of the SNTP servers (0 = 123) */
	const struct policy *policy; /* --allow: where the MCU may connect */
	uint32_t ota_timeout_s;     /* --ota-timeout; 0 = the module's 3 minutes */
	const char *ota_server;     /* --ota-server http://... (ota mode 0) */
	const char *ota_server_ssl; /* --ota-server https://... (ota mode 1) */
	const char *ota_token;      /* --ota-token */
	const char *ota_ca;         /* --ota-ca FILE (ota mode 1) */
};

struct device {
	struct loop *loop;
	struct serial *serial;
	struct store *store;
	const struct profile *profile;
	struct device_opts opts;
	struct at_engine at;
	struct wifi wifi;
	struct loop_timer boot_timer;
	bool booting;
	bool booted_once;           /* the serial line has its power-up settings */
	bool restart_pending;       /* after this command's result */
	bool restore_pending;       /* AT+RESTORE: erase the store first */
	bool cwjap_running;         /* a CWJAP command waits for join_done */
	struct loop_timer scan_timer;

	/* Basic settings */
	bool sysstore;
	int sysmsg;
	int transintvl;
	int sleep_mode;             /* AT+SLEEP: recorded; a host does not sleep */
	int64_t deep_sleep_ms;      /* AT+GSLP: the next restart waits this long; <0 forever */
	int rfpower[4];
	struct line_cfg uart_cur, uart_def;
	bool ipv6;                  /* AT+CIPV6 */

	struct wifi_settings ws;
	struct tcpip tcpip;
	int cipmode;                /* AT+CIPMODE (passthrough issue) */
	bool server_running;        /* AT+CIPSERVER (server issue) */
	struct services svc;        /* AT+PING, AT+CIPSNTP* */
	struct ota_state *ota;      /* AT+CIUPDATE, AT+CIPFWVER (cmd_ota.c) */
	struct profile ota_profile; /* the profile with AT+GMR showing the OTA version */
	char ota_gmr0[160];
	struct mdns *mdns;          /* AT+MDNS responder (cmd_mdns.c); NULL when off */
};

/* CWMODE has a station (1, 3) / a SoftAP (2, 3), while the Wi-Fi driver
 * is up (AT+CWINIT). */
static inline bool device_sta_on(const struct device *d)
{
	return !d->ws.driver_off && (d->ws.mode == 1 || d->ws.mode == 3);
}

static inline bool device_ap_on(const struct device *d)
{
	return !d->ws.driver_off && (d->ws.mode == 2 || d->ws.mode == 3);
}

/* Set up everything but do not boot yet. */
int device_init(struct device *d, struct loop *l, struct serial *s, const struct device_opts *o);
void device_free(struct device *d);
/* Power-up: load settings, then "ready" (and auto-join) after boot_ms. */
void device_boot(struct device *d, uint32_t delay_ms);
/* Whether typed bytes would reach a command line or a data phase now (not
 * busy, not rebooting). */
bool device_accepts_input(const struct device *d);
/* Feed serial input. */
void device_input(struct device *d, const uint8_t *p, size_t n);

/* Persist an integer/string/blob: always when `always`, else only with
 * AT+SYSSTORE=1 (protocol.md §6.1-§6.3). */
void device_save_int(struct device *d, const char *ns, const char *key, int64_t v, bool always);
void device_save_str(struct device *d, const char *ns, const char *key, const char *v, bool always);
void device_save_blob(struct device *d, const char *ns, const char *key, const void *p, size_t n,
		      bool always);
int64_t device_load_int(struct device *d, const char *ns, const char *key, int64_t def);

/* Device time (SYSTIMESTAMP, SNTP): seconds since the epoch; before it is
 * set, seconds since boot, as an unsynced module counts from 1970. */
int64_t device_time(const struct device *d);

#endif
