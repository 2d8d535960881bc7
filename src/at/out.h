/* The one place that formats replies and URCs (design.md §2). Result bytes
 * follow protocol.md §1.7; URCs follow §3.1. While a data phase is open
 * (between '>' and the end of its data) URCs are held back and written when
 * it ends, so nothing lands inside a data phase (§1.11). */
#ifndef ESPATD_AT_OUT_H
#define ESPATD_AT_OUT_H

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum at_rc {
	AT_RC_OK,          /* "\r\nOK\r\n" */
	AT_RC_ERROR,       /* "\r\nERROR\r\n" */
	AT_RC_FAIL,        /* same bytes as ERROR (esp_at_rc_t 2) */
	AT_RC_SEND_OK,     /* "\r\nSEND OK\r\n" */
	AT_RC_SEND_FAIL,   /* "\r\nSEND FAIL\r\n" */
	AT_RC_IGNORE,      /* nothing */
	AT_RC_DONE,        /* handler already wrote its own result */
	AT_RC_PROMPT,      /* "\r\nOK\r\n\r\n>" and a data phase begins */
	AT_RC_PENDING,     /* not a result: the command goes on asynchronously */
};

typedef void (*at_sink_fn)(void *arg, const void *p, size_t n);
struct iovec;
/* Optional: several pieces that leave in one write (an +IPD's header,
 * payload and CR LF). */
typedef void (*at_sinkv_fn)(void *arg, const struct iovec *iov, int iovcnt);

struct at_out {
	at_sink_fn sink;
	at_sinkv_fn sinkv;
	void *sink_arg;
	bool syslog;   /* AT+SYSLOG: print ERR CODE / +ERRNO lines */
	bool hold;     /* a data phase is open: URCs wait in `held` */
	/* In passthrough, connection and Wi-Fi status lines are dropped unless
	 * AT+SYSMSG bit 2 asks for them (§3.1, §7). */
	bool quiet_status;
	struct buf held;
};

void at_out_init(struct at_out *o, at_sink_fn sink, void *arg);
void at_out_free(struct at_out *o);

/* Raw bytes: echo, +IPD payloads, passthrough data. */
void at_out_raw(struct at_out *o, const void *p, size_t n);
/* A final result code. */
void at_out_result(struct at_out *o, enum at_rc rc);
/* "ERR CODE:0x%08x\r\n" when SYSLOG is on (§1.8). */
void at_out_errcode(struct at_out *o, uint32_t code);
/* Information line of a command: text then CR LF. */
void at_out_line(struct at_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Information text without the CR LF (the §1.7 exceptions: +CWDHCP,
 * +CWAUTOCONN, +SYSMSG, +CIPDINFO, +CIPSNTPTIME ...). */
void at_out_text(struct at_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An asynchronous line (CONNECT, CLOSED, WIFI ...) plus CR LF; held during a
 * data phase. */
void at_out_urc(struct at_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Open/close a data phase (URC hold). Closing flushes held URCs. */
void at_out_hold(struct at_out *o, bool on);

/* Status lines: "WIFI CONNECTED", "WIFI GOT IP", "WIFI DISCONNECT" (§3.1). */
void at_out_wifi(struct at_out *o, const char *text);
/* "\r\n+QUITT\r\n": passthrough left, with SYSMSG bit 0 (§2.7). */
void at_out_quitt(struct at_out *o);
/* "\r\n>": passthrough entered at boot by AT+SAVETRANSLINK (§3.1). */
void at_out_boot_prompt(struct at_out *o);

/* Link messages (§3.1, §3.2). id < 0: single connection mode. */
void at_out_connect(struct at_out *o, int id);
void at_out_closed(struct at_out *o, int id);
void at_out_link_conn(struct at_out *o, int id, const char *type, int tetype, const char *rip,
		      unsigned rport, unsigned lport);
/* Active-mode "+IPD" with its data and trailing CR LF; ip NULL without
 * AT+CIPDINFO. */
void at_out_ipd(struct at_out *o, int id, size_t len, const char *ip, unsigned port,
		const void *data);
/* Passive-mode notice "\r\n+IPD,<id>,<len>\r\n". */
void at_out_ipd_notice(struct at_out *o, int id, size_t len);
void at_out_recv_bytes(struct at_out *o, size_t n);
void at_out_send_canceled(struct at_out *o);
void at_out_send_cancelled_l(struct at_out *o);
/* "+ERRNO:0x%x" with AT+SYSLOG=1 (§1.8). */
void at_out_errno(struct at_out *o, int err);

/* Fixed messages (§3.1). */
void at_out_ready(struct at_out *o);
void at_out_busy(struct at_out *o);
void at_out_force_restart(struct at_out *o);

#endif
