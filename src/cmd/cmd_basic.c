/* ESP-AT "Basic AT Commands" chapter (protocol.md §1, §5.5, §6, §7). */
#include "cmd/cmd.h"

#include "core/clock.h"
#include "core/log.h"
#include "dev/device.h"
#include "store/store.h"

#include <string.h>

#define NS_SYS "sys"

static struct device *dev(struct at_req *r)
{
	return r->dev;
}

static enum at_rc at_exec(struct at_req *r)
{
	return AT_RC_OK;
}

static enum at_rc e0_exec(struct at_req *r)
{
	r->eng->echo = false;
	return AT_RC_OK;
}

static enum at_rc e1_exec(struct at_req *r)
{
	r->eng->echo = true;
	return AT_RC_OK;
}

static enum at_rc rst_exec(struct at_req *r)
{
	/* OK first, then the reboot and "ready" (protocol.md §1.10). */
	dev(r)->restart_pending = true;
	return AT_RC_OK;
}

/* AT+GSLP=<ms> (ESP-AT Basic docs): "<ms>", OK, then Deep-sleep: the UART
 * is off (typed bytes are lost, nothing is said) until the timer wakes the
 * chip, which then boots as after a reset ("ready"). An ESP32 restarts at
 * once for 0; an ESP8266 wakes only by its RST pin, so 0 sleeps for good. */
static enum at_rc gslp_setup(struct at_req *r)
{
	struct device *d = dev(r);
	int64_t ms;
	if (!at_nargs(r, 1, 1) || at_get_int(r, 0, 0, 0x7fffffff, true, &ms) < 0)
		return AT_RC_ERROR;
	at_out_line(r->out, "%lld", (long long)ms);
	d->deep_sleep_ms = ms == 0 && d->profile->gslp_zero_sleeps ? -1 : ms;
	d->restart_pending = true;
	return AT_RC_OK;
}

static enum at_rc restore_exec(struct at_req *r)
{
	dev(r)->restart_pending = true;
	dev(r)->restore_pending = true;
	return AT_RC_OK;
}

static enum at_rc gmr_exec(struct at_req *r)
{
	for (int i = 0; i < 4; i++)
		at_out_line(r->out, "%s", dev(r)->profile->gmr[i]);
	return AT_RC_OK;
}

static enum at_rc cmd_query(struct at_req *r)
{
	/* One line per command of every table, numbered from 0 with "AT"
	 * first, flags test/query/set/exec (ESP-AT Basic AT+CMD). */
	struct at_engine *e = r->eng;
	int idx = 0;
	for (size_t t = 0; t < e->ntables; t++) {
		for (size_t i = 0; i < e->tables[t]->n; i++) {
			const struct at_cmd *c = &e->tables[t]->cmds[i];
			at_out_line(r->out, "+CMD:%d,\"AT%s\",%d,%d,%d,%d", idx++, c->name,
				    c->test != NULL, c->query != NULL, c->setup != NULL,
				    c->exec != NULL);
		}
	}
	return AT_RC_OK;
}

/* A 0/1 flag command: query prints "+NAME:<v>" (with or without CR LF). */
static enum at_rc flag_setup(struct at_req *r, int64_t max, int64_t *v)
{
	if (!at_nargs(r, 1, 1))
		return AT_RC_ERROR;
	if (at_get_int(r, 0, 0, max, true, v) < 0)
		return AT_RC_ERROR;
	return AT_RC_OK;
}

static enum at_rc sysstore_query(struct at_req *r)
{
	at_out_line(r->out, "+SYSSTORE:%d", dev(r)->sysstore);
	return AT_RC_OK;
}

static enum at_rc sysstore_setup(struct at_req *r)
{
	int64_t v;
	if (flag_setup(r, 1, &v) != AT_RC_OK)
		return AT_RC_ERROR;
	dev(r)->sysstore = v; /* never saved itself (protocol.md §6.1) */
	return AT_RC_OK;
}

static enum at_rc sysmsg_query(struct at_req *r)
{
	at_out_text(r->out, "+SYSMSG:%d", dev(r)->sysmsg); /* no CR LF, §1.7 */
	return AT_RC_OK;
}

static enum at_rc sysmsg_setup(struct at_req *r)
{
	int64_t v;
	if (flag_setup(r, 7, &v) != AT_RC_OK)
		return AT_RC_ERROR;
	dev(r)->sysmsg = (int)v;
	device_save_int(dev(r), NS_SYS, "sysmsg", v, false);
	return AT_RC_OK;
}

static enum at_rc syslog_query(struct at_req *r)
{
	at_out_line(r->out, "+SYSLOG:%d", r->out->syslog);
	return AT_RC_OK;
}

static enum at_rc syslog_setup(struct at_req *r)
{
	int64_t v;
	if (flag_setup(r, 1, &v) != AT_RC_OK)
		return AT_RC_ERROR;
	r->out->syslog = v;
	return AT_RC_OK;
}

/* ---- UART ------------------------------------------------------------ */

static void uart_print(struct at_req *r, const char *name, const struct line_cfg *c)
{
	at_out_line(r->out, "+%s:%u,%u,%u,%u,%u", name, c->baud, c->databits, c->stopbits,
		    c->parity, c->flow);
}

/* Exactly five parameters, each in range, else a plain ERROR (at_uart_cmd.c
 * emits no code of its own). */
static int uart_parse(struct at_req *r, struct line_cfg *c)
{
	static const int64_t lim[5][2] = { { 80, 5000000 }, { 5, 8 }, { 1, 3 }, { 0, 2 }, { 0, 3 } };
	int64_t v[5];
	if (!at_nargs(r, 5, 5))
		return -1;
	for (int i = 0; i < 5; i++)
		if (at_get_int(r, i, lim[i][0], lim[i][1], true, &v[i]) < 0)
			return -1;
	c->baud = (uint32_t)v[0];
	c->databits = (uint8_t)v[1];
	c->stopbits = (uint8_t)v[2];
	c->parity = (uint8_t)v[3];
	c->flow = (uint8_t)v[4];
	return 0;
}

static void uart_apply(struct device *d, const struct line_cfg *c)
{
	d->uart_cur = *c;
	/* The OK is already queued: serial_set_line waits for it to leave at
	 * the old rate (protocol.md §5.5). On a pty/tcp/stdio there is no line
	 * to change; the value is kept and reported. */
	serial_set_line(d->serial, c);
}

static enum at_rc uart_cur_query(struct at_req *r)
{
	uart_print(r, "UART_CUR", &dev(r)->uart_cur);
	return AT_RC_OK;
}

static enum at_rc uart_query(struct at_req *r)
{
	uart_print(r, "UART", &dev(r)->uart_cur);
	return AT_RC_OK;
}

static enum at_rc uart_def_query(struct at_req *r)
{
	uart_print(r, "UART_DEF", &dev(r)->uart_def);
	return AT_RC_OK;
}

static enum at_rc uart_cur_setup(struct at_req *r)
{
	struct line_cfg c;
	if (uart_parse(r, &c) < 0)
		return AT_RC_ERROR;
	at_out_result(r->out, AT_RC_OK);
	uart_apply(dev(r), &c);
	return AT_RC_DONE;
}

static enum at_rc uart_def_setup(struct at_req *r)
{
	struct device *d = dev(r);
	struct line_cfg c;
	if (uart_parse(r, &c) < 0)
		return AT_RC_ERROR;
	/* Always saved (protocol.md §6.2); a failed write is an ERROR, and
	 * then nothing changed: neither the value queried now nor the one the
	 * store would write at its next successful save. */
	struct line_cfg old;
	size_t len = 0;
	bool had = store_get_blob(d->store, NS_SYS, "uart_def", &old, sizeof(old), &len) == 0 &&
		   len == sizeof(old);
	device_save_blob(d, NS_SYS, "uart_def", &c, sizeof(c), true);
	if (store_commit(d->store) < 0) {
		if (had)
			store_set_blob(d->store, NS_SYS, "uart_def", &old, sizeof(old));
		else
			store_erase_key(d->store, NS_SYS, "uart_def");
		return AT_RC_ERROR;
	}
	d->uart_def = c;
	at_out_result(r->out, AT_RC_OK);
	uart_apply(d, &c);
	return AT_RC_DONE;
}

/* ---- RF power, time, passthrough interval ------------------------------ */

static enum at_rc rfpower_query(struct at_req *r)
{
	struct device *d = dev(r);
	int wifi = profile_rf_effective(d->profile, d->rfpower[0]);
	if (d->profile->rf_ble)
		at_out_line(r->out, "+RFPOWER:%d,%d,%d,%d", wifi, d->rfpower[1], d->rfpower[2],
			    d->rfpower[3]);
	else
		at_out_line(r->out, "+RFPOWER:%d", wifi);
	return AT_RC_OK;
}

static enum at_rc rfpower_setup(struct at_req *r)
{
	struct device *d = dev(r);
	const struct profile *p = d->profile;
	if (!at_nargs(r, 1, p->rf_ble ? 4 : 1))
		return AT_RC_ERROR;
	int64_t v[4] = { d->rfpower[0], d->rfpower[1], d->rfpower[2], d->rfpower[3] };
	if (at_get_int(r, 0, p->rf_min, p->rf_max, true, &v[0]) < 0)
		return AT_RC_ERROR;
	for (int i = 1; i < r->args.n; i++)
		if (at_get_int(r, i, 0, 7, false, &v[i]) < 0)
			return AT_RC_ERROR;
	for (int i = 0; i < 4; i++)
		d->rfpower[i] = (int)v[i];
	return AT_RC_OK;
}

static enum at_rc systimestamp_query(struct at_req *r)
{
	at_out_line(r->out, "+SYSTIMESTAMP:%lld", (long long)device_time(dev(r)));
	return AT_RC_OK;
}

static enum at_rc systimestamp_setup(struct at_req *r)
{
	int64_t v;
	if (!at_nargs(r, 1, 1) || at_get_int(r, 0, 0, 0xffffffffLL, true, &v) < 0)
		return AT_RC_ERROR;
	clock_device_set(v);
	return AT_RC_OK;
}

static enum at_rc transintvl_query(struct at_req *r)
{
	at_out_line(r->out, "+TRANSINTVL:%d", dev(r)->transintvl);
	return AT_RC_OK;
}

static enum at_rc transintvl_setup(struct at_req *r)
{
	int64_t v;
	if (!at_nargs(r, 1, 1) || at_get_int(r, 0, 0, 1000, true, &v) < 0)
		return AT_RC_ERROR;
	dev(r)->transintvl = (int)v;
	return AT_RC_OK;
}

static enum at_rc sleep_query(struct at_req *r)
{
	at_out_line(r->out, "+SLEEP:%d", dev(r)->sleep_mode);
	return AT_RC_OK;
}

static enum at_rc sleep_setup(struct at_req *r)
{
	int64_t v;
	if (!at_nargs(r, 1, 1) || at_get_int(r, 0, 0, 3, true, &v) < 0)
		return AT_RC_ERROR;
	/* Power saving changes nothing a host can imitate: the mode is kept
	 * and reported; the link keeps its latency (docs/commands.md). */
	dev(r)->sleep_mode = (int)v;
	return AT_RC_OK;
}

/* Order follows the module's own table (AT+CMD? on ESP-AT 2.x). */
static const struct at_cmd basic_cmds[] = {
	/* name            test  query               setup               exec */
	{ "",              NULL, NULL,               NULL,               at_exec },
	{ "E0",            NULL, NULL,               NULL,               e0_exec },
	{ "E1",            NULL, NULL,               NULL,               e1_exec },
	{ "+RST",          NULL, NULL,               NULL,               rst_exec },
	{ "+GMR",          NULL, NULL,               NULL,               gmr_exec },
	{ "+CMD",          NULL, cmd_query,          NULL,               NULL },
	{ "+GSLP",         NULL, NULL,               gslp_setup,         NULL },
	{ "+SYSTIMESTAMP", NULL, systimestamp_query, systimestamp_setup, NULL },
	{ "+SLEEP",        NULL, sleep_query,        sleep_setup,        NULL },
	{ "+RESTORE",      NULL, NULL,               NULL,               restore_exec },
	{ "+TRANSINTVL",   NULL, transintvl_query,   transintvl_setup,   NULL },
	{ "+RFPOWER",      NULL, rfpower_query,      rfpower_setup,      NULL },
	{ "+SYSMSG",       NULL, sysmsg_query,       sysmsg_setup,       NULL },
	{ "+SYSSTORE",     NULL, sysstore_query,     sysstore_setup,     NULL },
	{ "+SYSLOG",       NULL, syslog_query,       syslog_setup,       NULL },
	{ "+UART",         NULL, uart_query,         uart_def_setup,     NULL },
	{ "+UART_CUR",     NULL, uart_cur_query,     uart_cur_setup,     NULL },
	{ "+UART_DEF",     NULL, uart_def_query,     uart_def_setup,     NULL },
};

const struct at_cmd_table cmd_basic_table = AT_TABLE("Basic", basic_cmds);

void cmd_basic_load(struct device *d)
{
	const struct profile *p = d->profile;
	/* SYSSTORE comes from the factory parameters, normally 1 (§6.1). */
	d->sysstore = true;
	d->sysmsg = (int)device_load_int(d, NS_SYS, "sysmsg", 0);
	d->transintvl = 20;
	d->sleep_mode = 1; /* modem-sleep, the IDF default with a station (UNCONFIRMED) */
	d->rfpower[0] = p->rf_default;
	/* BLE levels: ESP_PWR_LVL_P3 (index 5) is the IDF default (UNCONFIRMED
	 * for ESP-AT, docs/commands.md). */
	d->rfpower[1] = d->rfpower[2] = d->rfpower[3] = 5;
	d->ipv6 = device_load_int(d, NS_SYS, "ipv6", 0) != 0;

	/* The line at power-up: a saved AT+UART_DEF, else the command line's.
	 * A restart returns a line changed by AT+UART_CUR to it. */
	struct line_cfg c, was = d->booted_once ? d->uart_cur : d->opts.uart;
	size_t len = 0;
	if (store_get_blob(d->store, NS_SYS, "uart_def", &c, sizeof(c), &len) == 0 &&
	    len == sizeof(c) && c.baud >= 80 && c.baud <= 5000000) {
		d->uart_def = c;
		if (memcmp(&c, &d->opts.uart, sizeof(c)) != 0)
			log_info("using the saved AT+UART_DEF line, %u baud (AT+RESTORE clears it)",
				 c.baud);
	} else {
		d->uart_def = d->opts.uart;
	}
	d->uart_cur = d->uart_def;
	d->booted_once = true;
	if (memcmp(&d->uart_cur, &was, sizeof(c)) != 0)
		serial_set_line(d->serial, &d->uart_cur);
}
