/* ESP-AT OTA (protocol.md §2.24): AT+CIUPDATE and AT+CIPFWVER, speaking the
 * HTTP API of ESP-AT's own OTA client to the --ota-server:
 *
 *   GET /v1/device/rom/?is_format_simple=true          -> ..."rom_version": "<v>",...
 *   GET /v1/device/rom/?action=download_rom&version=<v>&filename=<name>.bin
 *   GET /v1/device/rom/                                 -> AT+CIPFWVER ("version": "<v>" each)
 *
 * each with "Authorization: token <--ota-token>". Ota mode 0 uses the http://
 * server, mode 1 the https:// one (verified against --ota-ca, else
 * <state-dir>/mfg/client_ca/client_ca.0; never unverified).
 *
 * Partitions (<firmware name>, a fixed list so no name from the AT port ever
 * forms a path): "ota" lands in <state-dir>/ota/firmware.bin with its version
 * in <state-dir>/ota/version, and AT+GMR shows that version after a restart;
 * client_ca/client_cert/client_key/server_ca/server_cert/server_key replace
 * <state-dir>/mfg/<name>/<name>.0, which AT+SYSMFG and the TLS links read. A
 * download goes to <state-dir>/ota/.download.tmp and is installed (rename)
 * only when complete and valid. */
#include "cmd/cmd.h"
#include "cmd/ota_parse.h"
#include "cmd/tcpip.h"

#include "core/fsutil.h"
#include "core/log.h"
#include "dev/device.h"
#include "net/http.h"
#include "tls/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OTA_TIMEOUT_MS (3 * 60 * 1000)  /* ESP_AT_OTA_TIMEOUT_MS */
#define OTA_NAME_MAX 64
#define OTA_META_MAX 65536              /* version answers */
#define OTA_CERT_MAX 65536              /* a certificate partition (MFG_BIN_MAX) */
#define OTA_IMAGE_MAX (64u << 20)
#define TMP_NAME ".download.tmp"

enum ota_phase { PH_IDLE, PH_QUERY, PH_DOWNLOAD, PH_FWVER };
enum { ST_IDLE = 0, ST_FOUND = 1, ST_CONNECTED = 2, ST_GOT_VERSION = 3, ST_DONE = 4,
       ST_FAILED = -1 };

struct ota_state {
	struct http *http;
	struct http_req *req;
	struct loop_timer timeout;
	enum ota_phase phase;
	int state;               /* AT+CIUPDATE? */
	int mode;
	bool blocking;
	bool announced;          /* +CIPUPDATE:1 printed */
	char version[OTA_VERSION_MAX + 1];
	char part[OTA_NAME_MAX + 1];
	char *meta;              /* version answer */
	size_t meta_len;
	int fd;                  /* the temp file of a download */
	size_t got;
};

static const struct {
	const char *name;
	int kind;                /* 0 image, 1 certificate, 2 key */
} parts[] = {
	{ "ota", 0 },
	{ "client_ca", 1 }, { "client_cert", 1 }, { "client_key", 2 },
	{ "server_ca", 1 }, { "server_cert", 1 }, { "server_key", 2 },
};
#define PARTS_N (sizeof(parts) / sizeof(parts[0]))

static int part_index(const char *name)
{
	for (size_t i = 0; i < PARTS_N; i++)
		if (strcmp(parts[i].name, name) == 0)
			return (int)i;
	return -1;
}

static struct ota_state *os(struct device *d)
{
	return d->ota;
}

/* ---- files inside the state dir ----------------------------------------- */

static int open_sub(struct device *d, const char *a, const char *b, bool create)
{
	if (!d->opts.state_dir)
		return -ENOENT;
	int fd = open(d->opts.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	const char *names[2] = { a, b };
	for (int i = 0; i < 2 && names[i]; i++) {
		int nfd = openat(fd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0 && errno == ENOENT && create) {
			if (mkdirat(fd, names[i], 0700) < 0 && errno != EEXIST) {
				int e = errno;
				close(fd);
				return -e;
			}
			nfd = openat(fd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		int e = errno;
		close(fd);
		if (nfd < 0)
			return -e;
		fd = nfd;
	}
	return fd;
}

static int read_small(int dir, const char *name, char *buf, size_t size, size_t *len)
{
	int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t n = 0;
	for (;;) {
		if (n == size) {
			close(fd);
			return -EFBIG;
		}
		ssize_t r = read(fd, buf + n, size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	*len = n;
	return 0;
}

/* ---- AT+GMR after an OTA ------------------------------------------------- */

bool ota_version_ok(const char *v)
{
	size_t n = strlen(v);
	if (n == 0 || n > OTA_VERSION_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (v[i] < 0x21 || v[i] > 0x7e || v[i] == '"' || v[i] == '\\')
			return false;
	return true;
}

/* The profile's first AT+GMR line with the "AT version:" value replaced. */
static void apply_version(struct device *d, const char *v)
{
	const struct profile *base = d->opts.profile;
	const char *g0 = base->gmr[0];
	const char *tail = strchr(g0, '(');
	d->ota_profile = *base;
	snprintf(d->ota_gmr0, sizeof(d->ota_gmr0), "AT version:%s%s", v, tail ? tail : "");
	d->ota_profile.gmr[0] = d->ota_gmr0;
	d->profile = &d->ota_profile;
}

void cmd_ota_load(struct device *d)
{
	if (!d->ota) {
		d->ota = calloc(1, sizeof(*d->ota));
		if (!d->ota) {
			log_error("OTA: out of memory");
			return;
		}
		d->ota->fd = -1;
		loop_timer_init(&d->ota->timeout, NULL, NULL);
	}
	d->profile = d->opts.profile;
	int dir = open_sub(d, "ota", NULL, false);
	if (dir < 0)
		return;
	char v[OTA_VERSION_MAX + 2];
	size_t n = 0;
	struct stat st;
	if (fstatat(dir, "firmware.bin", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
	    read_small(dir, "version", v, sizeof(v) - 1, &n) == 0) {
		v[n] = 0;
		v[strcspn(v, "\r\n")] = 0;
		if (ota_version_ok(v)) {
			apply_version(d, v);
			log_info("OTA: running firmware %s", v);
		}
	}
	close(dir);
}

/* ---- the transfer ----------------------------------------------------------- */

static void end_transfer(struct device *d)
{
	struct ota_state *o = os(d);
	http_cancel(o->req);
	o->req = NULL;
	loop_timer_stop(d->loop, &o->timeout);
	free(o->meta);
	o->meta = NULL;
	o->meta_len = 0;
	if (o->fd >= 0) {
		close(o->fd);
		o->fd = -1;
		int dir = open_sub(d, "ota", NULL, false);
		if (dir >= 0) {
			unlinkat(dir, TMP_NAME, 0);
			close(dir);
		}
	}
	o->phase = PH_IDLE;
}

static void progress(struct device *d, int st)
{
	struct ota_state *o = os(d);
	o->state = st;
	if (o->blocking)
		at_out_line(&d->at.out, "+CIPUPDATE:%d", st);
	else
		at_out_urc(&d->at.out, "+CIPUPDATE:%d", st);
}

static void finish(struct device *d, bool ok, const char *why)
{
	struct ota_state *o = os(d);
	enum ota_phase ph = o->phase;
	end_transfer(d);
	if (ph == PH_FWVER) {
		if (!ok) {
			log_info("AT+CIPFWVER: %s", why);
			d->at.req.errcode = AT_ERR_EXEC_FAIL;
		}
		at_engine_complete(&d->at, ok ? AT_RC_OK : AT_RC_ERROR);
		return;
	}
	if (!ok) {
		log_warn("OTA of \"%s\" failed: %s", o->part, why);
		o->state = ST_FAILED;
		if (o->blocking) {
			d->at.req.errcode = AT_ERR_EXEC_FAIL;
			at_engine_complete(&d->at, AT_RC_ERROR);
		} else {
			at_out_urc(&d->at.out, "+CIPUPDATE:-1");
		}
		return;
	}
	progress(d, ST_DONE);
	if (o->blocking) {
		/* The module restarts into the new image right after OK. */
		if (strcmp(o->part, "ota") == 0)
			d->restart_pending = true;
		at_engine_complete(&d->at, AT_RC_OK);
	}
}

/* The module's 3 minutes, or --ota-timeout (tests). */
static uint64_t ota_timeout_ms(const struct device *d)
{
	return d->opts.ota_timeout_s ? (uint64_t)d->opts.ota_timeout_s * 1000u : OTA_TIMEOUT_MS;
}

static void on_timeout(void *arg)
{
	finish(arg, false, "no complete answer within the OTA timeout (3 minutes on the module)");
}

static const char *server_url(struct device *d, int mode)
{
	return mode == 0 ? d->opts.ota_server : d->opts.ota_server_ssl;
}

static const char *ca_file(struct device *d, char *buf, size_t size)
{
	if (d->opts.ota_ca)
		return d->opts.ota_ca;
	if (!d->opts.state_dir)
		return NULL;
	snprintf(buf, size, "%s/mfg/client_ca/client_ca.0", d->opts.state_dir);
	return buf;
}

static void on_event(void *arg, enum http_event ev)
{
	struct device *d = arg;
	struct ota_state *o = os(d);
	if (ev == HTTP_EV_RESOLVED && !o->announced && o->phase != PH_FWVER) {
		o->announced = true;
		progress(d, ST_FOUND);
	} else if (ev == HTTP_EV_CONNECTED && o->phase == PH_QUERY) {
		progress(d, ST_CONNECTED);
	}
}

static int on_meta(void *arg, const void *p, size_t n)
{
	struct ota_state *o = os(arg);
	if (o->meta_len + n > OTA_META_MAX)
		return -1;
	char *m = realloc(o->meta, o->meta_len + n + 1);
	if (!m)
		return -1;
	memcpy(m + o->meta_len, p, n);
	o->meta = m;
	o->meta_len += n;
	m[o->meta_len] = 0;
	return 0;
}

static int on_image(void *arg, const void *p, size_t n)
{
	struct device *d = arg;
	struct ota_state *o = os(d);
	size_t cap = parts[part_index(o->part)].kind == 0 ? OTA_IMAGE_MAX : OTA_CERT_MAX;
	if (o->got + n > cap)
		return -1;
	if (fs_write_all(o->fd, p, n) < 0)
		return -1;
	o->got += n;
	return 0;
}

static void download_done(void *arg, int status, long code, const char *why);
static void query_done(void *arg, int status, long code, const char *why);
static void fwver_done(void *arg, int status, long code, const char *why);

static bool start_get(struct device *d, const char *path, int (*data)(void *, const void *, size_t),
		      void (*done)(void *, int, long, const char *))
{
	struct ota_state *o = os(d);
	const char *base = server_url(d, o->mode);
	char cabuf[4096], url[1024];
	if (!base) {
		log_warn("OTA: no %s server (--ota-server)", o->mode ? "https://" : "http://");
		return false;
	}
	size_t bl = strlen(base);
	while (bl && base[bl - 1] == '/')
		bl--;
	snprintf(url, sizeof(url), "%.*s%s", (int)bl, base, path);
	struct http_get g = {
		.url = url,
		.token = d->opts.ota_token,
		.ca_file = o->mode ? ca_file(d, cabuf, sizeof(cabuf)) : NULL,
		.policy = d->opts.policy,
		.event = on_event,
		.data = data,
		.done = done,
		.arg = d,
	};
	if (o->mode && !g.ca_file) {
		log_warn("OTA: ota mode 1 needs a CA (--ota-ca or client_ca.0 in the state dir)");
		return false;
	}
	o->req = http_start(o->http, &g);
	return o->req != NULL;
}

/* Percent-encode all but RFC 3986's unreserved characters (what
 * curl_easy_escape() does), so a version or partition name cannot change
 * the query. `out` holds 3 bytes per input byte plus the NUL. */
static void url_escape(const char *in, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (const unsigned char *c = (const unsigned char *)in; *c && o + 4 <= size; c++) {
		if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
		    (*c >= '0' && *c <= '9') || strchr("-._~", *c)) {
			out[o++] = (char)*c;
		} else {
			out[o++] = '%';
			out[o++] = hex[*c >> 4];
			out[o++] = hex[*c & 15];
		}
	}
	out[o] = '\0';
}

static const char *start_download(struct device *d)
{
	struct ota_state *o = os(d);
	if (part_index(o->part) < 0)
		return "no such partition";
	int dir = open_sub(d, "ota", NULL, true);
	if (dir < 0)
		return "no state dir to store the download";
	unlinkat(dir, TMP_NAME, 0);
	o->fd = openat(dir, TMP_NAME, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	close(dir);
	if (o->fd < 0)
		return "cannot create the temporary file";
	o->got = 0;
	char v[3 * sizeof(o->version)], p[3 * sizeof(o->part)];
	url_escape(o->version, v, sizeof(v));
	url_escape(o->part, p, sizeof(p));
	char path[512];
	snprintf(path, sizeof(path), "/v1/device/rom/?action=download_rom&version=%s&filename=%s.bin",
		 v, p);
	o->phase = PH_DOWNLOAD;
	if (!start_get(d, path, on_image, download_done))
		return "cannot start the download";
	return NULL;
}

/* `"<key>": "<value>"` starting at p; returns the end or NULL. */
static const char *json_str(const char *p, const char *key, char *out, size_t size)
{
	char pat[40];
	snprintf(pat, sizeof(pat), "\"%s\": \"", key);
	const char *s = strstr(p, pat);
	if (!s)
		return NULL;
	s += strlen(pat);
	const char *e = strchr(s, '"');
	if (!e || (size_t)(e - s) >= size)
		return NULL;
	memcpy(out, s, (size_t)(e - s));
	out[e - s] = 0;
	return e + 1;
}

int ota_parse_rom_version(const char *answer, char out[OTA_VERSION_MAX + 1])
{
	const char *e = json_str(answer, "rom_version", out, OTA_VERSION_MAX + 1);
	return e && *e == ',' && ota_version_ok(out) ? 0 : -1;
}

int ota_parse_versions(const char *answer, void (*each)(void *arg, const char *v), void *arg)
{
	const char *p = answer;
	char v[OTA_VERSION_MAX + 1];
	int n = 0;
	while ((p = json_str(p, "version", v, sizeof(v)))) {
		if (ota_version_ok(v)) {
			each(arg, v);
			n++;
		}
	}
	return n;
}

static void query_done(void *arg, int status, long code, const char *why)
{
	struct device *d = arg;
	struct ota_state *o = os(d);
	o->req = NULL;
	if (status < 0) {
		char buf[256];
		snprintf(buf, sizeof(buf), "version query: %s (HTTP %ld)", why, code);
		finish(d, false, buf);
		return;
	}
	char v[OTA_VERSION_MAX + 1];
	if (!o->meta || ota_parse_rom_version(o->meta, v) < 0) {
		finish(d, false, "no rom_version in the answer");
		return;
	}
	snprintf(o->version, sizeof(o->version), "%s", v);
	free(o->meta);
	o->meta = NULL;
	o->meta_len = 0;
	progress(d, ST_GOT_VERSION);
	const char *err = start_download(d);
	if (err)
		finish(d, false, err);
}

static bool pki_ok(int kind, const char *p, size_t n, char *why, size_t whylen)
{
	return (kind == 2 ? tls_check_key((const uint8_t *)p, n, why, whylen)
			  : tls_check_cert((const uint8_t *)p, n, why, whylen)) == 0;
}

/* A certificate partition: <state-dir>/mfg/<ns>/<ns>.0, then reload the
 * manufacturing NVS so the next TLS connection uses it. */
static int install_cert(struct device *d, int kind, const char *ns, char *why, size_t whylen)
{
	int tdir = open_sub(d, "ota", NULL, false);
	if (tdir < 0)
		return tdir;
	char *buf = malloc(OTA_CERT_MAX + 1);
	size_t n = 0;
	int rc = buf ? read_small(tdir, TMP_NAME, buf, OTA_CERT_MAX, &n) : -ENOMEM;
	close(tdir);
	if (rc == 0 && n == 0)
		rc = -EINVAL;
	if (rc == 0 && !pki_ok(kind, buf, n, why, whylen)) /* PEM or DER */
		rc = -EINVAL;
	if (rc == 0) {
		int dir = open_sub(d, "mfg", ns, true);
		if (dir < 0) {
			rc = dir;
		} else {
			char key[OTA_NAME_MAX + 8], tkey[OTA_NAME_MAX + 16];
			snprintf(key, sizeof(key), "%s.0", ns);
			snprintf(tkey, sizeof(tkey), ".%s.type", key);
			unlinkat(dir, tkey, 0); /* binary (8): no type file */
			rc = fs_write_atomic_at(dir, key, buf, n);
			close(dir);
		}
	}
	free(buf);
	if (rc < 0)
		return rc;
	/* ssl_load() reloads the partition from disk; it also resets the link
	 * settings, so keep the RAM ones (not all are saved). A SYSMFG write
	 * in progress would be cut: then the new value waits for a restart. */
	struct ssl_state *s = &d->tcpip.ssl;
	if (!s->write) {
		struct ssl_link_cfg *save = malloc(sizeof(s->link));
		if (save) {
			memcpy(save, s->link, sizeof(s->link));
			ssl_load(d);
			memcpy(s->link, save, sizeof(s->link));
			free(save);
		}
	}
	return 0;
}

static void download_done(void *arg, int status, long code, const char *why)
{
	struct device *d = arg;
	struct ota_state *o = os(d);
	o->req = NULL;
	if (status < 0) {
		char buf[256];
		snprintf(buf, sizeof(buf), "download: %s (HTTP %ld)", why, code);
		finish(d, false, buf);
		return;
	}
	int pi = part_index(o->part);
	if (o->got == 0) {
		finish(d, false, "empty download");
		return;
	}
	if (fsync(o->fd) < 0 || close(o->fd) < 0) {
		o->fd = -1;
		finish(d, false, strerror(errno));
		return;
	}
	o->fd = -1;
	char why2[160] = "";
	int rc;
	if (parts[pi].kind == 0) {
		int dir = open_sub(d, "ota", NULL, false);
		rc = dir;
		if (dir >= 0) {
			char v[OTA_VERSION_MAX + 2];
			int vl = snprintf(v, sizeof(v), "%s\n", o->version);
			/* The version file is what AT+GMR reads; the image goes
			 * first so a cut between the two leaves the old version
			 * with the new image, never a version without an image. */
			rc = renameat(dir, TMP_NAME, dir, "firmware.bin") < 0 ? -errno : 0;
			if (rc == 0) {
				fsync(dir);
				rc = fs_write_atomic_at(dir, "version", v, (size_t)vl);
			}
			close(dir);
		}
	} else {
		rc = install_cert(d, parts[pi].kind, o->part, why2, sizeof(why2));
	}
	int dir = open_sub(d, "ota", NULL, false);
	if (dir >= 0) {
		unlinkat(dir, TMP_NAME, 0);
		close(dir);
	}
	if (rc < 0) {
		char buf[256];
		snprintf(buf, sizeof(buf), "not installed: %s", why2[0] ? why2 : strerror(-rc));
		finish(d, false, buf);
		return;
	}
	log_info("OTA: \"%s\" version %s installed (%zu bytes)", o->part, o->version, o->got);
	finish(d, true, "");
}

/* A start that fails: blocking, ERROR; non-blocking, the module has already
 * said OK and reports the failure afterwards (seed reference). */
static enum at_rc start_failed(struct at_req *r, bool blocking)
{
	if (blocking)
		return at_fail(r, AT_ERR_EXEC_FAIL);
	at_out_result(r->out, AT_RC_OK);
	at_out_urc(r->out, "+CIPUPDATE:-1");
	return AT_RC_DONE;
}

/* libcurl is set up (and loaded, net/curl_api.h) by the first command that
 * downloads, not at start: most sessions never do. */
static bool http_ready(struct device *d)
{
	struct ota_state *o = os(d);
	if (!o)
		return false;
	if (!o->http && http_new(&o->http, d->loop) < 0) {
		log_error("OTA: cannot set up libcurl");
		return false;
	}
	return true;
}

static enum at_rc ota_begin(struct at_req *r, int mode, const char *version, const char *part,
			    bool blocking)
{
	struct device *d = r->dev;
	struct ota_state *o = os(d);
	if (!http_ready(d))
		return at_fail(r, AT_ERR_EXEC_FAIL);
	if (o->phase != PH_IDLE) {
		log_info("AT+CIUPDATE: ALREADY IN OTA");
		return at_fail(r, AT_ERR_EXEC_FAIL);
	}
	if (!server_url(d, mode)) {
		log_warn("AT+CIUPDATE: no OTA server for ota mode %d (--ota-server %s...)", mode,
			 mode ? "https://" : "http://");
		o->state = ST_FAILED;
		return start_failed(r, blocking);
	}
	o->mode = mode;
	o->blocking = blocking;
	o->announced = false;
	snprintf(o->version, sizeof(o->version), "%s", version);
	snprintf(o->part, sizeof(o->part), "%s", part);
	loop_timer_init(&o->timeout, on_timeout, d);
	loop_timer_start(d->loop, &o->timeout, ota_timeout_ms(d));
	if (!version[0]) {
		o->phase = PH_QUERY;
		if (!start_get(d, "/v1/device/rom/?is_format_simple=true", on_meta, query_done)) {
			end_transfer(d);
			o->state = ST_FAILED;
			return start_failed(r, blocking);
		}
	} else {
		const char *err = start_download(d);
		if (err) {
			log_warn("OTA of \"%s\" failed: %s", part, err);
			end_transfer(d);
			o->state = ST_FAILED;
			return start_failed(r, blocking);
		}
	}
	return blocking ? AT_RC_PENDING : AT_RC_OK;
}

static enum at_rc ciupdate_exec(struct at_req *r)
{
	return ota_begin(r, 0, "", "ota", true);
}

static enum at_rc ciupdate_setup(struct at_req *r)
{
	int64_t mode = 0, nb = 0;
	char version[OTA_VERSION_MAX + 2] = "", part[OTA_NAME_MAX + 2] = "";
	if (!at_nargs(r, 1, 4) || at_get_int(r, 0, 0, 1, true, &mode) < 0 ||
	    at_get_str(r, 1, OTA_VERSION_MAX, false, version, sizeof(version)) < 0 ||
	    at_get_str(r, 2, OTA_NAME_MAX, false, part, sizeof(part)) < 0 ||
	    at_get_int(r, 3, 0, 1, false, &nb) < 0)
		return AT_RC_ERROR;
	if (version[0] && !ota_version_ok(version))
		return at_fail(r, AT_ERR_PARA_INVALID(1));
	if (!part[0])
		snprintf(part, sizeof(part), "ota");
	return ota_begin(r, (int)mode, version, part, nb == 0);
}

static enum at_rc ciupdate_query(struct at_req *r)
{
	struct ota_state *o = os(r->dev);
	at_out_line(r->out, "+CIPUPDATE:%d", o ? o->state : 0);
	return AT_RC_OK;
}

/* ---- AT+CIPFWVER ------------------------------------------------------------ */

static void fwver_line(void *arg, const char *v)
{
	struct device *d = arg;
	at_out_line(&d->at.out, "+CIPFWVER:\"%s\"", v);
}

static void fwver_done(void *arg, int status, long code, const char *why)
{
	struct device *d = arg;
	struct ota_state *o = os(d);
	o->req = NULL;
	if (status < 0) {
		char buf[256];
		snprintf(buf, sizeof(buf), "%s (HTTP %ld)", why, code);
		finish(d, false, buf);
		return;
	}
	int n = ota_parse_versions(o->meta ? o->meta : "", fwver_line, d);
	finish(d, n > 0, "no version in the answer");
}

static enum at_rc cipfwver_query(struct at_req *r)
{
	struct device *d = r->dev;
	struct ota_state *o = os(d);
	if (!o || o->phase != PH_IDLE || !server_url(d, 0) || !http_ready(d))
		return at_fail(r, AT_ERR_EXEC_FAIL); /* no OTA server (§2.24) */
	o->mode = 0;
	o->phase = PH_FWVER;
	loop_timer_init(&o->timeout, on_timeout, d);
	loop_timer_start(d->loop, &o->timeout, ota_timeout_ms(d));
	if (!start_get(d, "/v1/device/rom/", on_meta, fwver_done)) {
		end_transfer(d);
		return at_fail(r, AT_ERR_EXEC_FAIL);
	}
	return AT_RC_PENDING;
}

/* ---- life cycle ------------------------------------------------------------- */

void cmd_ota_reset(struct device *d)
{
	struct ota_state *o = os(d);
	if (!o)
		return;
	if (o->phase != PH_IDLE)
		log_info("OTA: download abandoned by the restart");
	end_transfer(d);
	o->state = ST_IDLE;
}

void cmd_ota_free(struct device *d)
{
	struct ota_state *o = os(d);
	if (!o)
		return;
	end_transfer(d);
	http_free(o->http);
	free(o);
	d->ota = NULL;
}

static const struct at_cmd ota_cmds[] = {
	/* name          test  query           setup           exec */
	{ "+CIUPDATE",   NULL, ciupdate_query, ciupdate_setup, ciupdate_exec },
	{ "+CIPFWVER",   NULL, cipfwver_query, NULL,           NULL },
};

const struct at_cmd_table cmd_ota_table = AT_TABLE("OTA", ota_cmds);
