/* ESP-AT TCP/IP chapter, the SSL configuration (protocol.md §2.26): per link
 * auth mode, certificates (manufacturing NVS namespaces), CN, SNI, ALPN,
 * PSK, cipher suites. First cut: auth mode 0 clients and a server with the
 * certificate pair 0; the configuration commands follow. */
#include "cmd/cmd.h"
#include "cmd/tcpip.h"

#include "core/log.h"
#include "dev/device.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* PEM text of <state-dir>/mfg/<ns>/<ns>.<n>, or NULL. */
static char *read_mfg(struct device *d, const char *ns, int n)
{
	if (!d->opts.state_dir)
		return NULL;
	char path[4096];
	snprintf(path, sizeof(path), "%s/mfg/%s/%s.%d", d->opts.state_dir, ns, ns, n);
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	char *buf = malloc(65537);
	size_t len = buf ? fread(buf, 1, 65536, f) : 0;
	fclose(f);
	if (!buf)
		return NULL;
	buf[len] = '\0';
	return buf;
}

static char *held[3]; /* PEM texts handed out in the last cfg */

static void drop_held(void)
{
	for (int i = 0; i < 3; i++) {
		free(held[i]);
		held[i] = NULL;
	}
}

static bool ip_literal(const char *s)
{
	unsigned char b[16];
	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

int ssl_client_cfg(struct device *d, int id, const char *host, struct tls_cfg *cfg, char *why,
		   size_t whylen)
{
	memset(cfg, 0, sizeof(*cfg));
	drop_held();
	/* The server name goes out as SNI unless the host is an address. */
	cfg->sni = ip_literal(host) ? NULL : host;
	cfg->expect_name = host;
	cfg->auth_mode = 0;
	return 0;
}

int ssl_server_cfg(struct device *d, int ca_enable, struct tls_cfg *cfg, char *why, size_t whylen)
{
	memset(cfg, 0, sizeof(*cfg));
	drop_held();
	cfg->server = true;
	cfg->auth_mode = ca_enable;
	held[0] = read_mfg(d, "server_cert", 0);
	held[1] = read_mfg(d, "server_key", 0);
	held[2] = ca_enable ? read_mfg(d, "server_ca", 0) : NULL;
	cfg->pem.cert = held[0];
	cfg->pem.key = held[1];
	cfg->pem.ca = held[2];
	if (!cfg->pem.cert || !cfg->pem.key) {
		snprintf(why, whylen, "no server certificate and key (server_cert.0, server_key.0 "
				      "under the state dir's mfg/)");
		return -ENOENT;
	}
	return 0;
}

void ssl_load(struct device *d)
{
	drop_held();
}

static const struct at_cmd ssl_cmds[] = {
	{ "+CIPSSLCCONF", NULL, NULL, NULL, NULL },
};

const struct at_cmd_table cmd_ssl_table = { .chapter = "TCP/IP (SSL)", .cmds = ssl_cmds, .n = 0 };
