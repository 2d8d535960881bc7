/* State of the TCP/IP chapter (protocol.md §2): the five links, receive
 * modes, socket options, and the command in progress. Shared by the two
 * TCP/IP command files: cmd_tcpip.c (links and the data path) and
 * cmd_tcpip_cfg.c (addresses, DNS, options and status queries). */
#ifndef ESPATD_CMD_TCPIP_H
#define ESPATD_CMD_TCPIP_H

#include "at/engine.h"
#include "core/buf.h"
#include "net/dns.h"
#include "net/link.h"
#include "net/server.h"

#include <sys/socket.h>

#include <stdbool.h>
#include <stdint.h>

struct device;

#define TCPIP_DNS_MAX 3

/* cmd_ssl.c: the SSL client configuration of one link (protocol.md §2.26:
 * AT+CIPSSLCCONF, CIPSSLCCN, CIPSSLCSNI, CIPSSLCALPN, CIPSSLCPSK[HEX],
 * CIPSSLCCIPHER). */
#define SSL_NAME_MAX 64        /* <"common name">, <"sni"> */
#define SSL_PSK_MAX 32         /* <"psk">, <"hint"> */
#define SSL_ALPN_LEN_MAX 255   /* one ALPN protocol name (RFC 7301) */
struct ssl_link_cfg {
	int auth_mode;             /* 0 none, 1 client cert, 2 verify server, 3 both */
	int pki, ca;               /* <pki_number>, <ca_number> */
	char cn[SSL_NAME_MAX + 1];
	char sni[SSL_NAME_MAX + 1];
	int nalpn;
	char alpn[TLS_ALPN_MAX][SSL_ALPN_LEN_MAX + 1];
	uint8_t psk[SSL_PSK_MAX];  /* the pre-shared key */
	size_t psk_len;
	char psk_hint[SSL_PSK_MAX + 1]; /* sent as the PSK identity */
	int nciphers;
	uint16_t ciphers[TLS_CIPHER_MAX];
};
struct mfg_entry;
struct mfg_write;
struct ssl_state {
	struct ssl_link_cfg link[LINK_MAX];
	struct mfg_entry *mfg;     /* the manufacturing NVS (AT+SYSMFG), in RAM */
	struct mfg_write *write;   /* an AT+SYSMFG write waiting for its data */
};

/* What the send in flight is for. */
enum { SEND_NORMAL, SEND_EX, SEND_LONG, SEND_PASSTHROUGH };

/* How link 0 was opened: reconnects in passthrough (§4.5) and the boot
 * passthrough of AT+SAVETRANSLINK (§2.8, §4.6) open it again this way. */
struct pt_target {
	bool valid;
	int proto;          /* LINK_TCP / LINK_UDP */
	bool v6;
	char host[65];
	int port;
	int keepalive;
	int local_port;     /* UDP */
};

struct tcpip {
	int mux;                     /* AT+CIPMUX 0 single, 1 multiple */
	bool dinfo;                  /* AT+CIPDINFO */
	int recv_mode[LINK_MAX];     /* AT+CIPRECVTYPE: 0 active, 1 passive */
	int report_mode[LINK_MAX];   /* <data_len_report_mode> */
	bool notified[LINK_MAX];     /* passive: a notice awaits a read */
	bool close_held[LINK_MAX];   /* peer closed; CLOSED not printed yet */
	bool ever_linked;            /* for AT+CIPSTATUS stat 4 */
	struct link links[LINK_MAX];
	struct link_opts opts[LINK_MAX]; /* AT+CIPTCPOPT */
	int connpersist[LINK_MAX];   /* AT+CIPCONNPERSIST */
	int sendl_report, sendl_transmit; /* AT+CIPSENDLCFG */
	int recvlen_idle;            /* AT+CIPRECVLEN? value of an idle link (-1 or 0) */

	struct dns *dns;
	int dns_enable;              /* AT+CIPDNS: 0 automatic, 1 manual */
	int ndns;
	char dns_servers[TCPIP_DNS_MAX][46];
	uint16_t dns_port;           /* --dns-port (tests); 53 normally */

	/* the command in progress */
	struct dns_query *query;
	int pending_id;
	int start_proto, start_port, start_keepalive, start_udp_mode, start_local_port;
	uint32_t start_timeout;
	bool start_has_local;
	struct sockaddr_storage start_local;
	bool domain_show_all;        /* AT+CIPDOMAIN */

	/* a send in progress (CIPSEND/CIPSENDEX/CIPSENDL) */
	int send_id;
	size_t send_len;
	struct buf sendbuf;
	bool send_has_dest;
	struct sockaddr_storage send_dest;
	char send_host[65];          /* a UDP destination name being looked up */
	int send_kind;               /* enum in cmd_tcpip.c */
	bool send_waiting;           /* the running command waits for send_id's send_done */
	bool ex_escape;              /* CIPSENDEX: previous byte was '\' */
	uint64_t sendl_got, sendl_sent, sendl_next_report;

	/* server: AT+CIPSERVER, AT+CIPSERVERMAXCONN, AT+CIPSTO (§2.17-§2.20) */
	struct server server;
	int server_ca, server_netif;
	int server_maxconn;
	int sto;                     /* seconds, 0 = never */
	struct sto_slot {            /* per link idle timer */
		struct loop_timer timer;
		struct device *d;
		int id;
	} sto_slot[LINK_MAX];

	/* passthrough: AT+CIPMODE=1 + AT+CIPSEND, AT+CIPRECONNINTV (§4) */
	bool pt_active;              /* the serial side is raw data now */
	bool pt_reconnecting;        /* a connect of link 0 made by passthrough */
	struct buf pt_buf;           /* serial bytes not sent yet */
	struct loop_timer pt_flush;  /* AT+TRANSINTVL idle time */
	struct loop_timer pt_retry;  /* AT+CIPRECONNINTV */
	int reconn_intv;             /* x 100 ms */
	struct pt_target target;
	char start_host[80];          /* CIPSTART host: TLS name checks and SNI */
	bool server_ssl;              /* AT+CIPSERVER "SSL" / "SSLv6" */
	uint64_t pt_dropped;         /* typed while the link was down */
	struct ssl_state ssl;        /* cmd_ssl.c */
};

extern const struct at_cmd_table cmd_tcpip_table;
extern const struct at_cmd_table cmd_tcpip_cfg_table;

/* Once, at start: the link objects and buffers. */
void tcpip_init_links(struct device *d);
/* "+++" during a data phase: SEND Canceled / SEND CANCELLED (§2.7). */
void tcpip_cancel(struct device *d);
/* Boot: factory values, then saved ones (CIPDNS, CIPTCPOPT, CIPV6...). */
void tcpip_load(struct device *d);
/* Module reset: close every link silently. */
void tcpip_reset(struct device *d);
/* Shut down: close links cleanly. */
void tcpip_free(struct device *d);
/* The serial side drained: read sockets again and write pending +IPD. */
void tcpip_resume(struct device *d);
/* Station lost its address (CWQAP): close links without CIPCONNPERSIST. */
void tcpip_netif_down(struct device *d);
/* Apply the AT+CIPDNS servers to the resolver. */
void tcpip_apply_dns(struct device *d);
/* The link id that a link-id parameter means in the current mode: in
 * single mode the id is 0 and the parameter is absent. */
struct link *tcpip_link(struct device *d, int id);
/* Data-phase bytes (engine hook). */
void tcpip_data(struct device *d, const uint8_t *p, size_t n, int done);
/* Type string of a link: "TCP", "UDPv6"... */
const char *tcpip_type_str(const struct link *lk);
/* "TCP", "UDP", "SSL" and their "v6" forms, any case, as AT+CIPSTART and
 * AT+SAVETRANSLINK take them; false for anything else. */
bool tcpip_parse_type(const char *s, int *proto, bool *v6);
/* The id shown in messages: -1 (none) in single connection mode. */
int tcpip_shown_id(struct device *d, int id);
/* Print CLOSED for a link and free it. */
void tcpip_close_link(struct device *d, struct link *lk);
/* Set a link's reading policy from its receive mode. */
void tcpip_set_policy(struct device *d, struct link *lk);
/* Announce a new link: CONNECT or +LINK_CONN (SYSMSG bit 1). */
void tcpip_announce(struct device *d, struct link *lk);
const struct link_events *tcpip_link_events(void);

/* cmd_ssl.c: the SSL configuration of the module (protocol.md §2.26) */
extern const struct at_cmd_table cmd_ssl_table;
void ssl_load(struct device *d);
/* Fill cfg for an SSL client on link `id` to `host` (CIPSSLCCONF auth mode,
 * certificates, CN, SNI, ALPN, PSK, ciphers). Its strings point into the
 * configuration: use cfg at once. 0, or -errno with a reason for the log
 * (a missing certificate also prints the module's NO ... FOUND line while
 * a command runs). */
int ssl_client_cfg(struct device *d, int id, const char *host, struct tls_cfg *cfg, char *why,
		   size_t whylen);
/* The same for the server (AT+CIPSERVER "SSL", <CA enable>). */
int ssl_server_cfg(struct device *d, int ca_enable, struct tls_cfg *cfg, char *why, size_t whylen);
/* Shut down: free the manufacturing NVS kept in RAM. */
void ssl_free(struct device *d);

/* cmd_server.c */
extern const struct at_cmd_table cmd_server_table;
void server_state_init(struct device *d);
void server_load(struct device *d);
void server_reset(struct device *d);
/* A server-side link had traffic from its client: restart AT+CIPSTO. */
void server_touch(struct device *d, struct link *lk);
void server_forget(struct device *d, struct link *lk);
int server_start(struct device *d, bool v6, int port, int ca, int netif);
/* An SSL client of the server finished (or failed) its handshake. */
void server_handshake_done(struct device *d, struct link *lk, int err);

/* cmd_passthrough.c */
extern const struct at_cmd_table cmd_passthrough_table;
void pt_state_init(struct device *d);
void pt_load(struct device *d);
void pt_reset(struct device *d);
/* After "ready": a saved AT+SAVETRANSLINK starts passthrough (§4.6). */
void pt_boot(struct device *d);
void pt_data(struct device *d, const uint8_t *p, size_t n);
void pt_exit(struct device *d);
void pt_send_done(struct device *d, struct link *lk, int err);
/* Link 0 broke while passthrough owns it; true when handled. */
bool pt_link_lost(struct device *d, struct link *lk);
/* A connect made by passthrough finished. */
void pt_connect_done(struct device *d, struct link *lk, int err);
/* Remember how link 0 was opened. */
void pt_remember(struct device *d, const struct pt_target *t);
/* AT+CIPSEND (execute): enter passthrough (§2.9). */
enum at_rc pt_cipsend_exec(struct at_req *r);

#endif
