#include "dev/device.h"

#include "cmd/cmd.h"
#include "core/clock.h"
#include "core/log.h"
#include "net/dns.h"
#include "store/store.h"

#include <errno.h>
#include <string.h>

static const struct at_cmd_table *const tables[] = {
	&cmd_basic_table,
	&cmd_wifi_table,
	&cmd_tcpip_table,
	&cmd_tcpip_cfg_table,
	&cmd_ssl_table,
	&cmd_server_table,
	&cmd_passthrough_table,
	&cmd_services_table,
	&cmd_ota_table,
	&cmd_mdns_table,
};

static void sink(void *arg, const void *p, size_t n)
{
	struct device *d = arg;
	serial_write(d->serial, p, n);
}

static void sinkv(void *arg, const struct iovec *iov, int iovcnt)
{
	struct device *d = arg;
	serial_writev(d->serial, iov, iovcnt);
}

static void reboot(struct device *d)
{
	d->restart_pending = false;
	if (d->restore_pending) {
		d->restore_pending = false;
		store_erase_all(d->store);
		store_commit(d->store);
		log_info("AT+RESTORE: saved settings erased");
	}
	cmd_wifi_reset(d);
	tcpip_reset(d);
	cmd_services_reset(d);
	cmd_ota_reset(d);
	cmd_mdns_stop(d);
	int64_t sleep_ms = d->deep_sleep_ms;
	d->deep_sleep_ms = 0;
	if (sleep_ms < 0) {
		/* Only a reset ends it; on a pty there is no RST pin. */
		log_warn("AT+GSLP=0: the ESP8266 sleeps until reset; restart espatd to wake it");
		d->booting = true;
		at_engine_suspend(&d->at);
		return;
	}
	if (sleep_ms > 0)
		log_info("AT+GSLP: deep sleep for %lld ms, then a restart; input meanwhile is lost",
			 (long long)sleep_ms);
	device_boot(d, d->opts.boot_ms + (uint32_t)sleep_ms);
}

static void after_command(struct device *d)
{
	if (store_dirty(d->store))
		store_commit(d->store); /* logs its own failure; RAM values stay */
	if (d->restart_pending)
		reboot(d);
}

static void force_restart(struct device *d)
{
	log_warn("AT+RST typed while a command was running: forced restart");
	reboot(d);
}

static const struct at_engine_hooks hooks = {
	.after_command = after_command,
	.force_restart = force_restart,
	.data = tcpip_data,
	.cancel = tcpip_cancel,
};

static void booted(void *arg)
{
	struct device *d = arg;
	d->booting = false;
	at_engine_resume(&d->at);
	at_out_ready(&d->at.out);
	log_info("module ready (profile %s)", d->profile->name);
	cmd_wifi_boot(d);
	pt_boot(d);
}

int device_init(struct device *d, struct loop *l, struct serial *s, const struct device_opts *o)
{
	memset(d, 0, sizeof(*d));
	d->loop = l;
	d->serial = s;
	d->opts = *o;
	d->profile = o->profile;
	int rc = store_open(&d->store, o->state_dir);
	if (rc < 0 && rc != -ENOMEM && o->state_dir) {
		log_error("cannot use state dir %s: %s; settings will live in RAM only "
			  "(fix the directory's permissions or pass --state-dir)",
			  o->state_dir, strerror(-rc));
		rc = store_open(&d->store, NULL);
	}
	if (rc < 0)
		return rc;
	wifi_init(&d->wifi, l, &cmd_wifi_events, d);
	rc = dns_new(&d->tcpip.dns, l);
	if (rc < 0) {
		store_close(d->store);
		return rc;
	}
	tcpip_init_links(d);
	at_engine_init(&d->at, d, tables, sizeof(tables) / sizeof(tables[0]), &hooks, sink, d);
	at_engine_set_loop(&d->at, l);
	d->at.out.sinkv = sinkv;
	loop_timer_init(&d->boot_timer, booted, d);
	return 0;
}

void device_free(struct device *d)
{
	loop_timer_stop(d->loop, &d->boot_timer);
	loop_timer_stop(d->loop, &d->scan_timer);
	wifi_free(&d->wifi);
	tcpip_free(d);
	ssl_free(d);
	cmd_services_free(d);
	cmd_ota_free(d);
	cmd_mdns_stop(d);
	dns_free(d->tcpip.dns);
	d->tcpip.dns = NULL;
	at_engine_free(&d->at);
	store_close(d->store);
	d->store = NULL;
}

void device_boot(struct device *d, uint32_t delay_ms)
{
	d->booting = true;
	at_engine_suspend(&d->at);
	d->at.echo = true;        /* §1.6 */
	d->at.out.syslog = false; /* §6.4: SYSLOG is never saved */
	clock_device_reset();
	cmd_basic_load(d);
	cmd_wifi_load(d);
	tcpip_load(d);
	ssl_load(d);
	cmd_services_load(d);
	cmd_ota_load(d);
	if (delay_ms == 0)
		booted(d); /* power-up: ready before the first byte is read */
	else
		loop_timer_start(d->loop, &d->boot_timer, delay_ms);
}

bool device_accepts_input(const struct device *d)
{
	if (d->booting)
		return false;
	if (d->at.parser.mode == AT_PM_DATA)
		return true;
	return d->at.parser.mode == AT_PM_CMD && !d->at.busy;
}

void device_input(struct device *d, const uint8_t *p, size_t n)
{
	at_engine_input(&d->at, p, n);
}

static bool should_save(struct device *d, bool always)
{
	return always || d->sysstore;
}

void device_save_int(struct device *d, const char *ns, const char *key, int64_t v, bool always)
{
	if (should_save(d, always))
		store_set_int(d->store, ns, key, v);
}

void device_save_str(struct device *d, const char *ns, const char *key, const char *v, bool always)
{
	if (should_save(d, always))
		store_set_str(d->store, ns, key, v);
}

void device_save_blob(struct device *d, const char *ns, const char *key, const void *p, size_t n,
		      bool always)
{
	if (should_save(d, always))
		store_set_blob(d->store, ns, key, p, n);
}

int64_t device_load_int(struct device *d, const char *ns, const char *key, int64_t def)
{
	int64_t v;
	return store_get_int(d->store, ns, key, &v) == 0 ? v : def;
}

int64_t device_time(const struct device *d)
{
	return clock_device_time();
}
