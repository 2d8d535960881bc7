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

#include <sys/socket.h>

#include <stdbool.h>
#include <stdint.h>

struct device;

#define TCPIP_DNS_MAX 3

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
	int send_kind;               /* enum in cmd_tcpip.c */
	bool ex_escape;              /* CIPSENDEX: previous byte was '\' */
	uint64_t sendl_got, sendl_sent, sendl_next_report;
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

#endif
