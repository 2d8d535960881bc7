#include "at/out.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#define S(lit) lit, sizeof(lit) - 1

void at_out_init(struct at_out *o, at_sink_fn sink, void *arg)
{
	memset(o, 0, sizeof(*o));
	o->sink = sink;
	o->sink_arg = arg;
	buf_init(&o->held);
}

void at_out_free(struct at_out *o)
{
	buf_free(&o->held);
}

void at_out_raw(struct at_out *o, const void *p, size_t n)
{
	if (n)
		o->sink(o->sink_arg, p, n);
}

void at_out_result(struct at_out *o, enum at_rc rc)
{
	switch (rc) {
	case AT_RC_OK: at_out_raw(o, S("\r\nOK\r\n")); break;
	case AT_RC_ERROR:
	case AT_RC_FAIL: at_out_raw(o, S("\r\nERROR\r\n")); break;
	case AT_RC_SEND_OK: at_out_raw(o, S("\r\nSEND OK\r\n")); break;
	case AT_RC_SEND_FAIL: at_out_raw(o, S("\r\nSEND FAIL\r\n")); break;
	/* No space after '>' and no CR LF (§1.7 code 7). */
	case AT_RC_PROMPT: at_out_raw(o, S("\r\nOK\r\n\r\n>")); break;
	case AT_RC_IGNORE:
	case AT_RC_DONE:
	case AT_RC_PENDING: break;
	}
}

__attribute__((format(printf, 4, 0)))
static void vformat(struct at_out *o, struct buf *dst, bool crlf, const char *fmt, va_list ap)
{
	char small[512];
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(small, sizeof(small), fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return;
	if (dst) {
		buf_vprintf(dst, fmt, ap);
		if (crlf)
			buf_append(dst, "\r\n", 2);
		return;
	}
	if ((size_t)n < sizeof(small) - 2) {
		if (crlf) {
			small[n++] = '\r';
			small[n++] = '\n';
		}
		at_out_raw(o, small, (size_t)n);
		return;
	}
	struct buf b;
	buf_init(&b);
	buf_vprintf(&b, fmt, ap);
	if (crlf)
		buf_append(&b, "\r\n", 2);
	at_out_raw(o, buf_head(&b), buf_used(&b));
	buf_free(&b);
}

void at_out_errcode(struct at_out *o, uint32_t code)
{
	if (o->syslog && code)
		at_out_line(o, "ERR CODE:0x%08x", code);
}

void at_out_line(struct at_out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vformat(o, NULL, true, fmt, ap);
	va_end(ap);
}

void at_out_text(struct at_out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vformat(o, NULL, false, fmt, ap);
	va_end(ap);
}

void at_out_urc(struct at_out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vformat(o, o->hold ? &o->held : NULL, true, fmt, ap);
	va_end(ap);
}

void at_out_hold(struct at_out *o, bool on)
{
	o->hold = on;
	if (!on && buf_used(&o->held)) {
		at_out_raw(o, buf_head(&o->held), buf_used(&o->held));
		buf_reset(&o->held);
	}
}

void at_out_ready(struct at_out *o)
{
	at_out_raw(o, S("\r\nready\r\n"));
}

void at_out_busy(struct at_out *o)
{
	at_out_errcode(o, 0x010b0000u); /* ESP_AT_SUB_CMD_PROCESSING, §1.9 */
	at_out_raw(o, S("\r\nbusy p...\r\n"));
}

void at_out_force_restart(struct at_out *o)
{
	at_out_raw(o, S("\r\nWill force to restart!!!\r\n"));
}

void at_out_wifi(struct at_out *o, const char *text)
{
	if (!o->quiet_status)
		at_out_urc(o, "%s", text);
}

void at_out_quitt(struct at_out *o)
{
	at_out_raw(o, S("\r\n+QUITT\r\n"));
}

void at_out_boot_prompt(struct at_out *o)
{
	at_out_raw(o, S("\r\n>"));
}

void at_out_connect(struct at_out *o, int id)
{
	if (o->quiet_status)
		return;
	if (id < 0)
		at_out_urc(o, "CONNECT");
	else
		at_out_urc(o, "%d,CONNECT", id);
}

void at_out_closed(struct at_out *o, int id)
{
	if (o->quiet_status)
		return;
	if (id < 0)
		at_out_urc(o, "CLOSED");
	else
		at_out_urc(o, "%d,CLOSED", id);
}

void at_out_link_conn(struct at_out *o, int id, const char *type, int tetype, const char *rip,
		      unsigned rport, unsigned lport)
{
	/* First field 0: ESP-AT only reports successes this way (§3.1). */
	if (o->quiet_status)
		return;
	at_out_urc(o, "+LINK_CONN:0,%d,\"%s\",%d,\"%s\",%u,%u", id < 0 ? 0 : id, type, tetype,
		   rip, rport, lport);
}

void at_out_ipd(struct at_out *o, int id, size_t len, const char *ip, unsigned port,
		const void *data)
{
	char head[96];
	int n;
	if (id < 0 && !ip)
		n = snprintf(head, sizeof(head), "\r\n+IPD,%zu:", len);
	else if (!ip)
		n = snprintf(head, sizeof(head), "\r\n+IPD,%d,%zu:", id, len);
	else if (id < 0)
		n = snprintf(head, sizeof(head), "\r\n+IPD,%zu,\"%s\",%u:", len, ip, port);
	else
		n = snprintf(head, sizeof(head), "\r\n+IPD,%d,%zu,\"%s\",%u:", id, len, ip, port);
	/* ESP-AT >= 2 appends CR LF after the data (§3.2). */
	if (o->sinkv) {
		struct iovec iov[3] = { { head, (size_t)n }, { (void *)data, len },
					{ (void *)"\r\n", 2 } };
		o->sinkv(o->sink_arg, iov, 3);
		return;
	}
	at_out_raw(o, head, (size_t)n);
	at_out_raw(o, data, len);
	at_out_raw(o, S("\r\n"));
}

void at_out_ipd_notice(struct at_out *o, int id, size_t len)
{
	char head[48];
	int n = id < 0 ? snprintf(head, sizeof(head), "\r\n+IPD,%zu\r\n", len)
		       : snprintf(head, sizeof(head), "\r\n+IPD,%d,%zu\r\n", id, len);
	at_out_raw(o, head, (size_t)n);
}

void at_out_recv_bytes(struct at_out *o, size_t n)
{
	char line[48];
	int k = snprintf(line, sizeof(line), "\r\nRecv %zu bytes\r\n", n);
	at_out_raw(o, line, (size_t)k);
}

void at_out_send_canceled(struct at_out *o)
{
	at_out_raw(o, S("\r\nSEND Canceled\r\n")); /* CIPSEND spelling, §2.7 */
}

void at_out_send_cancelled_l(struct at_out *o)
{
	at_out_raw(o, S("\r\nSEND CANCELLED\r\n")); /* CIPSENDL spelling, §2.7 */
}

void at_out_errno(struct at_out *o, int err)
{
	if (o->syslog && err)
		at_out_line(o, "+ERRNO:0x%x", err < 0 ? -err : err);
}
