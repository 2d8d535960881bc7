/* espatd: options and wiring; no logic lives here. */
#include "core/log.h"
#include "core/loop.h"
#include "core/trace.h"
#include "dev/device.h"
#include "net/policy.h"
#include "store/store.h"
#include "transport/serial.h"
#include "transport/transport.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct options {
	const char *pty, *serial, *tcp;
	bool stdio;
	uint32_t baud;
	bool rtscts;
	bool pace;
	const char *state_dir;
	bool no_state;
	const char *profile;
	const char *trace;
	const char *netif;
	const char *ap_file;
	uint32_t join_ms;
	uint32_t boot_ms;
	uint32_t dns_port;
	uint32_t ntp_port;
	uint32_t ota_timeout;
	int recvlen_idle;
	const char *ota_server, *ota_server_ssl, *ota_token, *ota_ca;
};

static void usage(FILE *f)
{
	fprintf(f,
"Usage: espatd [TRANSPORT] [OPTIONS]\n"
"An ESP-AT compatible network coprocessor: speaks Espressif's AT command set on\n"
"a serial line and carries the connections over this host's network.\n"
"\n"
"Transport (choose one):\n"
"  --pty PATH           create a pseudo-terminal; PATH becomes a symlink to it.\n"
"                       Point your MCU code or a terminal (picocom PATH) at PATH.\n"
"  --serial DEV         use a real UART, e.g. /dev/ttyUSB0\n"
"      --baud N         its speed at power-up (default 115200)\n"
"      --rtscts         with RTS/CTS hardware flow control\n"
"  --tcp [HOST:]PORT    accept one AT client at a time over TCP (HOST defaults\n"
"                       to 127.0.0.1; anything else is reachable by others)\n"
"  --stdio              AT on standard input/output (a terminal or a script)\n"
"  --pace               send no faster than a UART at the line's rate: --baud\n"
"                       (default 115200) at power-up, then AT+UART_CUR; 8N1 is\n"
"                       baud/10 bytes a second. For --pty, --tcp and --stdio,\n"
"                       so firmware meets a module's timing (a real UART paces\n"
"                       itself)\n"
"\n"
"Module:\n"
"  --profile NAME       esp32 (default: ESP-AT 3.x on an ESP32) or esp8266\n"
"                       (ESP-AT 2.x): AT+GMR text and the module's limits\n"
"  --state-dir DIR      where saved settings live (default\n"
"                       $XDG_STATE_HOME/espatd or ~/.local/state/espatd)\n"
"  --no-state           keep everything in RAM, write no file\n"
"  --boot-time MS       how long AT+RST / AT+RESTORE take (default 300)\n"
"\n"
"Virtual Wi-Fi (AT+CWJAP joins these; with none, any SSID joins):\n"
"  --ap SSID[:PASSWORD[:RSSI[:CHANNEL[:BSSID]]]]   an access point (repeatable)\n"
"  --ap-file FILE       access points from a file of [ap] sections\n"
"  --netif IFACE        host interface whose addresses the station reports\n"
"                       (default: the interface of the default route)\n"
"  --join-time MS       time from AT+CWJAP to WIFI GOT IP (default 1000)\n"
"\n"
"Compatibility:\n"
"  --recvlen-idle N     what AT+CIPRECVLEN? shows for a link with no socket:\n"
"                       -1 (default, ESP-AT 2.x; WiFiEspAT needs it) or 0 (3.x;\n"
"                       TinyGSM's ESP32 client needs it)\n"
"  --dns-port PORT      port of the AT+CIPDNS servers (default 53; for tests that\n"
"                       run their own DNS server unprivileged)\n"
"  --ntp-port PORT      port of the AT+CIPSNTPCFG servers (default 123; for tests)\n"
"\n"
"Safety:\n"
"  --allow CIDR[:PORT[-PORT]]  let the MCU reach only these destinations\n"
"                       (repeatable; without any, everything is allowed), e.g.\n"
"                       --allow 10.0.0.0/8 --allow 192.0.2.7:443 --allow [::1]:80\n"
"  --ota-server URL     AT+CIUPDATE/AT+CIPFWVER server speaking ESP-AT's OTA\n"
"                       API: an http:// URL serves ota mode 0, an https:// one\n"
"                       ota mode 1 (give both for both modes)\n"
"  --ota-token TOKEN    the OTA token sent as \"Authorization: token TOKEN\"\n"
"  --ota-ca FILE        CA for ota mode 1 (default <state-dir>/mfg/client_ca/client_ca.0)\n"
"  --ota-timeout S      give up an update after S seconds (default 180, the module's)\n"
"\n"
"Diagnostics:\n"
"  --log-level LEVEL    error, warn, info (default) or debug; logs go to stderr\n"
"  --trace FILE         write every serial byte, both ways, timestamped\n"
"  -h, --help           this help\n"
"  -V, --version        print the version\n"
"\n"
"Example: espatd --pty /tmp/ttyESP   then   picocom -c --omap crlf /tmp/ttyESP\n"
"and type AT, AT+GMR, AT+CWJAP=\"lab\",\"secret\". See man espatd.\n");
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static char *default_state_dir(void)
{
	const char *xdg = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");
	char buf[PATH_MAX];
	if (xdg && *xdg)
		snprintf(buf, sizeof(buf), "%s/espatd", xdg);
	else if (home && *home)
		snprintf(buf, sizeof(buf), "%s/.local/state/espatd", home);
	else
		return NULL;
	return strdup(buf);
}

enum { OPT_BAUD = 256, OPT_RTSCTS, OPT_STATE, OPT_NOSTATE, OPT_PROFILE, OPT_LOG, OPT_TRACE,
       OPT_AP, OPT_APFILE, OPT_NETIF, OPT_JOIN, OPT_BOOT, OPT_PTY, OPT_SERIAL, OPT_TCP,
       OPT_STDIO, OPT_DNSPORT, OPT_NTPPORT, OPT_RECVLEN, OPT_ALLOW, OPT_PACE, OPT_OTATIMEOUT,
       OPT_OTASERVER, OPT_OTATOKEN, OPT_OTACA };

static const struct option longopts[] = {
	{ "pty", required_argument, NULL, OPT_PTY },
	{ "serial", required_argument, NULL, OPT_SERIAL },
	{ "baud", required_argument, NULL, OPT_BAUD },
	{ "rtscts", no_argument, NULL, OPT_RTSCTS },
	{ "tcp", required_argument, NULL, OPT_TCP },
	{ "stdio", no_argument, NULL, OPT_STDIO },
	{ "pace", no_argument, NULL, OPT_PACE },
	{ "state-dir", required_argument, NULL, OPT_STATE },
	{ "no-state", no_argument, NULL, OPT_NOSTATE },
	{ "profile", required_argument, NULL, OPT_PROFILE },
	{ "log-level", required_argument, NULL, OPT_LOG },
	{ "trace", required_argument, NULL, OPT_TRACE },
	{ "ap", required_argument, NULL, OPT_AP },
	{ "ap-file", required_argument, NULL, OPT_APFILE },
	{ "netif", required_argument, NULL, OPT_NETIF },
	{ "join-time", required_argument, NULL, OPT_JOIN },
	{ "boot-time", required_argument, NULL, OPT_BOOT },
	{ "dns-port", required_argument, NULL, OPT_DNSPORT },
	{ "ntp-port", required_argument, NULL, OPT_NTPPORT },
	{ "allow", required_argument, NULL, OPT_ALLOW },
	{ "ota-timeout", required_argument, NULL, OPT_OTATIMEOUT },
	{ "ota-server", required_argument, NULL, OPT_OTASERVER },
	{ "ota-token", required_argument, NULL, OPT_OTATOKEN },
	{ "ota-ca", required_argument, NULL, OPT_OTACA },
	{ "recvlen-idle", required_argument, NULL, OPT_RECVLEN },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static struct device the_device;
static struct serial the_serial;
static struct loop_timer eof_timer;

static void on_stop_signal(void *arg)
{
	log_info("stopping on signal");
	loop_stop(arg, 0);
}

static void serial_input(void *arg, const uint8_t *p, size_t n)
{
	device_input(arg, p, n);
}

static void eof_check(void *arg)
{
	struct loop *l = arg;
	/* Scripts on stdin: finish the running command, flush, then exit. */
	if (the_device.at.busy || the_device.booting || serial_queued(&the_serial) ||
	    serial_pending_input(&the_serial))
		loop_timer_start(l, &eof_timer, 20);
	else
		loop_stop(l, 0);
}

static void serial_flush_hook(void *arg)
{
	serial_flush(arg);
}

static void serial_eof(void *arg)
{
	struct device *d = arg;
	loop_timer_init(&eof_timer, eof_check, d->loop);
	loop_timer_start(d->loop, &eof_timer, 0);
}

static bool serial_ready(void *arg)
{
	return device_accepts_input(arg);
}

static void serial_drained(void *arg)
{
	tcpip_resume(arg);
}

static const struct serial_events serial_ev = {
	.input = serial_input,
	.drained = serial_drained,
	.eof = serial_eof,
};

static int make_transport(const struct options *o, struct loop *l, struct transport **t)
{
	int count = !!o->pty + !!o->serial + !!o->tcp + o->stdio;
	if (count != 1) {
		fprintf(stderr, "espatd: choose exactly one of --pty, --serial, --tcp, --stdio "
				"(try: espatd --pty /tmp/ttyESP)\n");
		return -EINVAL;
	}
	struct line_cfg line = { .baud = o->baud, .databits = 8, .stopbits = 1,
				 .flow = o->rtscts ? 3 : 0 };
	if (o->pty)
		return transport_pty_new(t, l, o->pty);
	if (o->serial)
		return transport_uart_new(t, l, o->serial, &line);
	if (o->tcp)
		return transport_tcp_new(t, l, o->tcp);
	return transport_stdio_new(t, l);
}

static struct policy the_policy;

static int parse_args(int argc, char **argv, struct options *o, struct wifi *aps)
{
	int c;
	enum log_level lv;
	while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_PTY: o->pty = optarg; break;
		case OPT_SERIAL: o->serial = optarg; break;
		case OPT_TCP: o->tcp = optarg; break;
		case OPT_STDIO: o->stdio = true; break;
		case OPT_RTSCTS: o->rtscts = true; break;
		case OPT_PACE: o->pace = true; break;
		case OPT_STATE: o->state_dir = optarg; break;
		case OPT_NOSTATE: o->no_state = true; break;
		case OPT_PROFILE: o->profile = optarg; break;
		case OPT_TRACE: o->trace = optarg; break;
		case OPT_NETIF: o->netif = optarg; break;
		case OPT_APFILE: o->ap_file = optarg; break;
		case OPT_BAUD:
			if (parse_u32(optarg, 80, 5000000, &o->baud) < 0) {
				fprintf(stderr, "espatd: --baud wants 80..5000000, got '%s'\n", optarg);
				return -1;
			}
			break;
		case OPT_JOIN:
			if (parse_u32(optarg, 0, 600000, &o->join_ms) < 0) {
				fprintf(stderr, "espatd: --join-time wants milliseconds, got '%s'\n", optarg);
				return -1;
			}
			break;
		case OPT_BOOT:
			if (parse_u32(optarg, 0, 60000, &o->boot_ms) < 0) {
				fprintf(stderr, "espatd: --boot-time wants milliseconds, got '%s'\n", optarg);
				return -1;
			}
			break;
		case OPT_OTASERVER:
			if (strncmp(optarg, "https://", 8) == 0)
				o->ota_server_ssl = optarg;
			else if (strncmp(optarg, "http://", 7) == 0)
				o->ota_server = optarg;
			else {
				fprintf(stderr, "espatd: --ota-server wants http://HOST[:PORT] or "
						"https://HOST[:PORT], got '%s'\n", optarg);
				return -1;
			}
			break;
		case OPT_OTATOKEN: o->ota_token = optarg; break;
		case OPT_OTACA: o->ota_ca = optarg; break;
		case OPT_OTATIMEOUT:
			if (parse_u32(optarg, 1, 3600, &o->ota_timeout) < 0) {
				fprintf(stderr, "espatd: --ota-timeout wants seconds (1..3600), got '%s'\n",
					optarg);
				return -1;
			}
			break;
		case OPT_ALLOW:
			if (policy_add(&the_policy, optarg) < 0) {
				fprintf(stderr, "espatd: bad --allow '%s' (want CIDR[:PORT[-PORT]], "
						"e.g. 10.0.0.0/8:443 or [::1]:80)\n", optarg);
				return -1;
			}
			break;
		case OPT_DNSPORT:
			if (parse_u32(optarg, 1, 65535, &o->dns_port) < 0) {
				fprintf(stderr, "espatd: --dns-port wants 1..65535, got '%s'\n", optarg);
				return -1;
			}
			break;
		case OPT_NTPPORT:
			if (parse_u32(optarg, 1, 65535, &o->ntp_port) < 0) {
				fprintf(stderr, "espatd: --ntp-port wants 1..65535, got '%s'\n", optarg);
				return -1;
			}
			break;
		case OPT_RECVLEN:
			if (strcmp(optarg, "-1") == 0) {
				o->recvlen_idle = -1;
			} else if (strcmp(optarg, "0") == 0) {
				o->recvlen_idle = 0;
			} else {
				fprintf(stderr, "espatd: --recvlen-idle wants -1 or 0\n");
				return -1;
			}
			break;
		case OPT_LOG:
			if (log_parse_level(optarg, &lv) < 0) {
				fprintf(stderr, "espatd: --log-level wants error, warn, info or debug\n");
				return -1;
			}
			log_set_level(lv);
			break;
		case OPT_AP:
			if (wifi_add_ap_spec(aps, optarg) < 0) {
				fprintf(stderr, "espatd: bad --ap '%s' (want SSID[:PASSWORD[:RSSI[:CHANNEL[:BSSID]]]])\n",
					optarg);
				return -1;
			}
			break;
		case 'h': usage(stdout); exit(0);
		case 'V': printf("espatd %s\n", ESPATD_VERSION); exit(0);
		default:
			fprintf(stderr, "Try 'espatd --help'.\n");
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "espatd: unexpected argument '%s'. Try 'espatd --help'.\n", argv[optind]);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = { .baud = 115200, .profile = "esp32", .join_ms = 1000, .boot_ms = 300,
			     .dns_port = 53, .ntp_port = 123, .recvlen_idle = -1 };
	struct wifi aps; /* collects --ap before the device exists */
	memset(&aps, 0, sizeof(aps));
	if (parse_args(argc, argv, &o, &aps) < 0)
		return 2;
	if (o.ap_file) {
		int line = 0, rc = wifi_load_ap_file(&aps, o.ap_file, &line);
		if (rc < 0) {
			if (line)
				fprintf(stderr, "espatd: %s:%d: not a valid [ap] entry\n", o.ap_file, line);
			else
				fprintf(stderr, "espatd: cannot read %s: %s\n", o.ap_file, strerror(-rc));
			return 2;
		}
	}
	const struct profile *prof = profile_find(o.profile);
	if (!prof) {
		fprintf(stderr, "espatd: unknown --profile '%s' (esp32 or esp8266)\n", o.profile);
		return 2;
	}
	char *state_dir = NULL;
	if (!o.no_state) {
		state_dir = o.state_dir ? strdup(o.state_dir) : default_state_dir();
		if (!state_dir)
			log_warn("no --state-dir and no HOME: settings will not be saved");
	}
	if (o.trace && trace_open(o.trace) < 0) {
		fprintf(stderr, "espatd: cannot open trace file %s: %s\n", o.trace, strerror(errno));
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	/* SIGTERM and SIGINT stay pending until the loop takes them through
	 * its signalfd (loop_signal): one that arrives while espatd is still
	 * starting then stops it cleanly (pty symlink removed, everything
	 * freed) instead of killing it half set up. */
	sigset_t stop_sigs;
	sigemptyset(&stop_sigs);
	sigaddset(&stop_sigs, SIGTERM);
	sigaddset(&stop_sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &stop_sigs, NULL);

	struct loop *l;
	if (loop_new(&l) < 0)
		return 1;
	struct transport *t = NULL;
	int rc = make_transport(&o, l, &t);
	if (rc < 0) {
		if (rc != -EINVAL)
			fprintf(stderr, "espatd: cannot set up the transport: %s\n", strerror(-rc));
		return 2;
	}
	struct device_opts dopt = {
		.profile = prof,
		.state_dir = state_dir,
		.boot_ms = o.boot_ms,
		.uart = { .baud = o.baud, .databits = 8, .stopbits = 1, .parity = 0,
			  .flow = o.rtscts ? 3 : 0 },
		.recvlen_idle = o.recvlen_idle,
		.dns_port = (uint16_t)o.dns_port,
		.ntp_port = (uint16_t)o.ntp_port,
		.policy = &the_policy,
		.ota_timeout_s = o.ota_timeout,
		.ota_server = o.ota_server,
		.ota_server_ssl = o.ota_server_ssl,
		.ota_token = o.ota_token,
		.ota_ca = o.ota_ca,
	};
	struct device *d = &the_device;
	rc = serial_init(&the_serial, t, &serial_ev, d);
	if (rc < 0) {
		fprintf(stderr, "espatd: cannot start %s: %s\n", t->desc, strerror(-rc));
		return 1;
	}
	log_set_before_line(serial_flush_hook, &the_serial);
	if (o.pace)
		serial_set_pace(&the_serial, &dopt.uart);
	rc = device_init(d, l, &the_serial, &dopt);
	if (rc < 0) {
		fprintf(stderr, "espatd: cannot use state dir %s: %s\n",
			state_dir ? state_dir : "(none)", strerror(-rc));
		return 1;
	}
	if (o.stdio && !isatty(STDIN_FILENO))
		serial_pace_lines(&the_serial, serial_ready);
	d->wifi.aps = aps.aps;
	d->wifi.naps = aps.naps;
	d->wifi.netif = o.netif;
	d->wifi.join_ms = o.join_ms;
	loop_signal(l, SIGTERM, on_stop_signal, l);
	loop_signal(l, SIGINT, on_stop_signal, l);

	if (the_policy.n)
		log_info("egress policy: %zu --allow rule(s); every other destination is refused",
			 the_policy.n);
	log_info("espatd %s imitating %s on %s; state in %s; Wi-Fi: %s", ESPATD_VERSION,
		 prof->name, t->desc, state_dir ? state_dir : "RAM only",
		 aps.naps ? "configured access points" : "lab mode (any SSID joins)");
	device_boot(d, 0);
	rc = loop_run(l);

	device_free(d);
	log_set_before_line(NULL, NULL);
	serial_free(&the_serial);
	loop_free(l);
	trace_close();
	policy_free(&the_policy);
	free(state_dir);
	return rc < 0 ? 1 : 0;
}
