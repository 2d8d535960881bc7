/* ESP-AT TCP/IP chapter, the SSL configuration (protocol.md §2.26) and the
 * manufacturing NVS that holds the certificates (AT+SYSMFG, Basic chapter).
 *
 * Per link: AT+CIPSSLCCONF (auth mode, <pki_number>, <ca_number>; saved with
 * AT+SYSSTORE=1 as the module's NVM_009 record), AT+CIPSSLCCN, AT+CIPSSLCSNI,
 * AT+CIPSSLCALPN, AT+CIPSSLCPSK, AT+CIPSSLCPSKHEX, AT+CIPSSLCCIPHER (never
 * saved, §6.4). ssl_client_cfg() and ssl_server_cfg() turn them into a
 * struct tls_cfg for the links.
 *
 * The manufacturing NVS: namespaces (client_cert, client_key, client_ca,
 * server_cert, server_key, server_ca, and any other the host creates) of
 * keys "<namespace>.<n>" and such. It lives in RAM and, with a state dir, in
 * <state-dir>/mfg/<namespace>/<key>: one file per value, its bytes as they
 * are (a PEM file placed there by hand is a value), rewritten atomically.
 * A value of another type than binary (8) has its type in a hidden file
 * ".<key>.type" beside it. AT+RESTORE does not touch it, as it does not
 * touch the module's mfg_nvs partition. Certificates and keys are checked
 * when they arrive (AT+SYSMFG) or are loaded (boot): bad PEM is refused
 * then, never met by a handshake. */
/* System headers first: <dirent.h> reaches <linux/limits.h>, whose
 * LINK_MAX (127) would otherwise replace net/link.h's (5). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/tcpip.h"

#include "core/fsutil.h"
#include "core/log.h"
#include "dev/device.h"
#include "store/store.h"

_Static_assert(LINK_MAX == 5, "LINK_MAX must be net/link.h's");

#define NS_SSL "ssl"            /* CIPSSLCCONF: auth<i>, pkiid<i>, caid<i> as NVM_009 */
#define PKI_INDEX_MAX 255       /* pki/ca numbers are u8 in NVM_009 */
#define MFG_NAME_MAX 15         /* NVS namespace and key names */
#define MFG_BIN_MAX 65536       /* one binary value */
#define MFG_STR_MAX 3999        /* one string (NVS: 4000 bytes with the NUL) */

enum { MFG_U8 = 1, MFG_I8, MFG_U16, MFG_I16, MFG_U32, MFG_I32, MFG_STR, MFG_BIN };

struct mfg_entry {
	struct mfg_entry *next;
	char ns[MFG_NAME_MAX + 1];
	char key[MFG_NAME_MAX + 1];
	int type;
	size_t len;
	uint8_t *data;          /* len bytes and a NUL */
};

struct mfg_write {
	char ns[MFG_NAME_MAX + 1];
	char key[MFG_NAME_MAX + 1];
	int type;
	size_t want, got;
	uint8_t *buf;
	void (*saved_data)(struct device *, const uint8_t *, size_t, int);
	void (*saved_cancel)(struct device *);
};

/* The certificate namespaces of the module's mfg_nvs, in its order. */
enum pki_kind { PKI_NONE, PKI_CERT, PKI_KEY };
static const struct {
	const char *ns;
	enum pki_kind kind;
} pki_ns[] = {
	{ "client_cert", PKI_CERT }, { "client_key", PKI_KEY }, { "client_ca", PKI_CERT },
	{ "server_cert", PKI_CERT }, { "server_key", PKI_KEY }, { "server_ca", PKI_CERT },
};
#define PKI_NS_N (sizeof(pki_ns) / sizeof(pki_ns[0]))

static struct device *dev(struct at_req *r)
{
	return r->dev;
}

static struct ssl_state *ss(struct device *d)
{
	return &d->tcpip.ssl;
}

static enum pki_kind pki_kind(const char *ns)
{
	for (size_t i = 0; i < PKI_NS_N; i++)
		if (strcmp(pki_ns[i].ns, ns) == 0)
			return pki_ns[i].kind;
	return PKI_NONE;
}

/* ---- names -------------------------------------------------------------- */

/* Namespace: 1..15 of [A-Za-z0-9_]. Key: 1..15 of [A-Za-z0-9_.-], not
 * starting with '.'. Neither can hold '/' or be "." / "..", so a name from
 * the AT port never leaves <state-dir>/mfg. */
static bool ns_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > MFG_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return false;
	}
	return true;
}

static bool key_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > MFG_NAME_MAX || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

/* ---- the manufacturing NVS in RAM ----------------------------------------- */

static struct mfg_entry *mfg_find(struct device *d, const char *ns, const char *key)
{
	for (struct mfg_entry *e = ss(d)->mfg; e; e = e->next)
		if (strcmp(e->ns, ns) == 0 && strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

static bool mfg_ns_used(struct device *d, const char *ns)
{
	for (struct mfg_entry *e = ss(d)->mfg; e; e = e->next)
		if (strcmp(e->ns, ns) == 0)
			return true;
	return false;
}

static void entry_free(struct mfg_entry *e)
{
	free(e->data);
	free(e);
}

static void mfg_remove(struct device *d, struct mfg_entry *victim)
{
	for (struct mfg_entry **pp = &ss(d)->mfg; *pp; pp = &(*pp)->next) {
		if (*pp == victim) {
			*pp = victim->next;
			entry_free(victim);
			return;
		}
	}
}

static void mfg_clear(struct device *d)
{
	while (ss(d)->mfg) {
		struct mfg_entry *e = ss(d)->mfg;
		ss(d)->mfg = e->next;
		entry_free(e);
	}
}

/* Insert or replace, keeping namespace/key order; takes data. */
static void mfg_put(struct device *d, const char *ns, const char *key, int type, uint8_t *data,
		    size_t len)
{
	struct mfg_entry *old = mfg_find(d, ns, key);
	if (old) {
		free(old->data);
		old->data = data;
		old->len = len;
		old->type = type;
		return;
	}
	struct mfg_entry *e = calloc(1, sizeof(*e));
	if (!e) {
		free(data);
		return;
	}
	snprintf(e->ns, sizeof(e->ns), "%s", ns);
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->type = type;
	e->data = data;
	e->len = len;
	struct mfg_entry **pp = &ss(d)->mfg;
	while (*pp) {
		int c = strcmp((*pp)->ns, ns);
		if (c > 0 || (c == 0 && strcmp((*pp)->key, key) > 0))
			break;
		pp = &(*pp)->next;
	}
	e->next = *pp;
	*pp = e;
}

/* <ns>.<n> of a certificate namespace, PEM or DER; p == NULL if none. */
static struct tls_blob mfg_pki(struct device *d, const char *ns, int n)
{
	char key[MFG_NAME_MAX + 8];
	snprintf(key, sizeof(key), "%s.%d", ns, n);
	struct mfg_entry *e = mfg_find(d, ns, key);
	if (!e || (e->type != MFG_BIN && e->type != MFG_STR))
		return (struct tls_blob){ NULL, 0 };
	return (struct tls_blob){ e->data, e->len };
}

/* A certificate namespace takes only data that parses, PEM or DER (the
 * module's mbedTLS reads either): certificates in the _cert/_ca
 * namespaces, a private key in the _key ones. */
static int check_value(const char *ns, int type, const uint8_t *p, size_t len, char *why,
		       size_t whylen)
{
	enum pki_kind k = pki_kind(ns);
	if (type == MFG_STR && memchr(p, '\0', len)) {
		snprintf(why, whylen, "the data holds a NUL byte");
		return -EINVAL;
	}
	if (k == PKI_NONE)
		return 0;
	if (type != MFG_BIN && type != MFG_STR) {
		snprintf(why, whylen, "%s holds PEM or DER (type 8 or 7), not numbers", ns);
		return -EINVAL;
	}
	return k == PKI_CERT ? tls_check_cert(p, len, why, whylen)
			     : tls_check_key(p, len, why, whylen);
}

/* ---- the manufacturing NVS on disk: <state-dir>/mfg ------------------------ */

static int open_mfg_dir(struct device *d, bool create)
{
	if (!d->opts.state_dir)
		return -ENOENT;
	int top = open(d->opts.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (top < 0)
		return -errno;
	int fd = fs_open_dir_at(top, "mfg", create);
	close(top);
	return fd;
}

static void type_file_name(char *out, size_t size, const char *key)
{
	snprintf(out, size, ".%.15s.type", key);
}

/* Persist one value (no state dir: nothing to do). */
static int mfg_save(struct device *d, const char *ns, const char *key, int type, const void *p,
		    size_t n)
{
	if (!d->opts.state_dir)
		return 0;
	int top = open_mfg_dir(d, true);
	if (top < 0)
		return top;
	int dir = fs_open_dir_at(top, ns, true);
	close(top);
	if (dir < 0)
		return dir;
	char tname[MFG_NAME_MAX + 8];
	type_file_name(tname, sizeof(tname), key);
	int rc = 0;
	if (type != MFG_BIN) {
		char t[4];
		int tl = snprintf(t, sizeof(t), "%d\n", type);
		rc = fs_write_atomic_at(dir, tname, t, (size_t)tl);
	} else if (unlinkat(dir, tname, 0) < 0 && errno != ENOENT) {
		rc = -errno;
	}
	if (rc == 0)
		rc = fs_write_atomic_at(dir, key, p, n);
	close(dir);
	return rc;
}

/* Erase one key, or the whole namespace (key NULL), on disk. */
static int mfg_unlink(struct device *d, const char *ns, const char *key)
{
	if (!d->opts.state_dir)
		return 0;
	int top = open_mfg_dir(d, false);
	if (top == -ENOENT)
		return 0;
	if (top < 0)
		return top;
	int dir = fs_open_dir_at(top, ns, false);
	close(top);
	if (dir == -ENOENT)
		return 0;
	if (dir < 0)
		return dir;
	int rc = 0;
	char tname[MFG_NAME_MAX + 8];
	if (key) {
		type_file_name(tname, sizeof(tname), key);
		unlinkat(dir, tname, 0);
		if (unlinkat(dir, key, 0) < 0 && errno != ENOENT)
			rc = -errno;
	} else {
		int dup_fd = dup(dir);
		DIR *dp = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
		if (!dp) {
			if (dup_fd >= 0)
				close(dup_fd);
			close(dir);
			return -errno;
		}
		struct dirent *de;
		while ((de = readdir(dp)) != NULL) {
			const char *n = de->d_name;
			if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
				continue;
			if (unlinkat(dir, n, 0) < 0 && rc == 0)
				rc = -errno;
		}
		closedir(dp);
	}
	fsync(dir);
	close(dir);
	return rc;
}

static int read_type_file(int dir, const char *key)
{
	char tname[MFG_NAME_MAX + 8], t[8] = "";
	type_file_name(tname, sizeof(tname), key);
	int fd = openat(dir, tname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return MFG_BIN;
	ssize_t n = read(fd, t, sizeof(t) - 1);
	close(fd);
	int v = n > 0 ? atoi(t) : 0;
	return v >= MFG_U8 && v <= MFG_BIN ? v : -1;
}

/* One value file: its bytes (NUL-terminated), checked like an AT+SYSMFG
 * write would be. Problems are logged with the path and skipped. */
static void load_value(struct device *d, int dir, const char *ns, const char *key,
		       const char *path)
{
	int type = read_type_file(dir, key);
	if (type < 0) {
		log_warn("mfg: %s ignored: its .%s.type file is not a type 1..8", path, key);
		return;
	}
	int fd = openat(dir, key, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		log_warn("mfg: %s ignored: %s%s", path, strerror(errno),
			 errno == ELOOP ? " (a symlink: copy the file there instead)" : "");
		return;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_warn("mfg: %s ignored: not a regular file", path);
		close(fd);
		return;
	}
	size_t max = type == MFG_STR ? MFG_STR_MAX : MFG_BIN_MAX;
	if ((uint64_t)st.st_size > max) {
		log_warn("mfg: %s ignored: %lld bytes, more than the %zu a value may hold", path,
			 (long long)st.st_size, max);
		close(fd);
		return;
	}
	uint8_t *buf = malloc((size_t)st.st_size + 1);
	size_t len = 0;
	while (buf && len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (!buf)
		return;
	buf[len] = '\0';
	char why[256] = "";
	if (type <= MFG_I32) {
		/* numbers are kept as their decimal text */
		char *end;
		errno = 0;
		long long v = strtoll((const char *)buf, &end, 10);
		if (errno || end == (char *)buf || (*end && *end != '\n')) {
			log_warn("mfg: %s ignored: not a number of type %d", path, type);
			free(buf);
			return;
		}
		len = (size_t)snprintf((char *)buf, (size_t)st.st_size + 1, "%lld", v);
	} else if (len == 0 || check_value(ns, type, buf, len, why, sizeof(why)) < 0) {
		log_warn("mfg: %s ignored: %s", path, len ? why : "empty");
		free(buf);
		return;
	}
	mfg_put(d, ns, key, type, buf, len);
}

static void load_ns(struct device *d, int top, const char *ns)
{
	int dir = fs_open_dir_at(top, ns, false);
	if (dir < 0) {
		log_warn("mfg: %s/mfg/%s ignored: %s", d->opts.state_dir, ns, strerror(-dir));
		return;
	}
	int dup_fd = dup(dir);
	DIR *dp = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	if (!dp) {
		if (dup_fd >= 0)
			close(dup_fd);
		close(dir);
		return;
	}
	struct dirent *de;
	while ((de = readdir(dp)) != NULL) {
		const char *key = de->d_name;
		if (key[0] == '.')
			continue; /* ".", "..", type files, temp files */
		char path[4096];
		snprintf(path, sizeof(path), "%s/mfg/%s/%s", d->opts.state_dir, ns, key);
		if (!key_ok(key)) {
			log_warn("mfg: %s ignored: a key is 1..15 of A-Z a-z 0-9 _ . -", path);
			continue;
		}
		load_value(d, dir, ns, key, path);
	}
	closedir(dp);
	close(dir);
}

static void mfg_load(struct device *d)
{
	mfg_clear(d);
	int top = open_mfg_dir(d, false);
	if (top < 0) {
		if (top != -ENOENT)
			log_warn("mfg: %s/mfg cannot be read: %s", d->opts.state_dir, strerror(-top));
		return;
	}
	int dup_fd = dup(top);
	DIR *dp = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	if (!dp) {
		if (dup_fd >= 0)
			close(dup_fd);
		close(top);
		return;
	}
	struct dirent *de;
	while ((de = readdir(dp)) != NULL) {
		const char *ns = de->d_name;
		if (ns[0] == '.')
			continue;
		if (!ns_ok(ns)) {
			log_warn("mfg: %s/mfg/%s ignored: a namespace is 1..15 of A-Z a-z 0-9 _",
				 d->opts.state_dir, ns);
			continue;
		}
		load_ns(d, top, ns);
	}
	closedir(dp);
	close(top);
	int n = 0;
	for (struct mfg_entry *e = ss(d)->mfg; e; e = e->next)
		n++;
	if (n)
		log_info("mfg: %d value(s) loaded from %s/mfg", n, d->opts.state_dir);
}

/* ---- per-link configuration --------------------------------------------- */

static void link_defaults(struct ssl_link_cfg *c)
{
	memset(c, 0, sizeof(*c));
}

static void save_cconf(struct device *d, int id)
{
	const struct ssl_link_cfg *c = &ss(d)->link[id];
	char k[16];
	snprintf(k, sizeof(k), "auth%d", id);
	device_save_int(d, NS_SSL, k, c->auth_mode, false);
	snprintf(k, sizeof(k), "pkiid%d", id);
	device_save_int(d, NS_SSL, k, c->pki, false);
	snprintf(k, sizeof(k), "caid%d", id);
	device_save_int(d, NS_SSL, k, c->ca, false);
}

static void load_cconf(struct device *d, int id)
{
	struct ssl_link_cfg *c = &ss(d)->link[id];
	char k[16];
	snprintf(k, sizeof(k), "auth%d", id);
	int64_t a = device_load_int(d, NS_SSL, k, 0);
	snprintf(k, sizeof(k), "pkiid%d", id);
	int64_t p = device_load_int(d, NS_SSL, k, 0);
	snprintf(k, sizeof(k), "caid%d", id);
	int64_t ca = device_load_int(d, NS_SSL, k, 0);
	if (a < 0 || a > 3 || p < 0 || p > PKI_INDEX_MAX || ca < 0 || ca > PKI_INDEX_MAX)
		return; /* not ours: factory values */
	c->auth_mode = (int)a;
	c->pki = (int)p;
	c->ca = (int)ca;
}

/* The links a set command names: [<link ID>,] first (5 = all in multiple
 * connections mode; absent in single mode, meaning link 0, or every link
 * when `single_all`). Returns the index of the next parameter, or -1. */
static int link_mask(struct at_req *r, bool single_all, unsigned *mask)
{
	struct device *d = dev(r);
	if (!d->tcpip.mux) {
		*mask = single_all ? (1u << LINK_MAX) - 1 : 1u;
		return 0;
	}
	int64_t id;
	if (at_get_int(r, 0, 0, LINK_MAX, true, &id) < 0)
		return -1;
	*mask = id == LINK_MAX ? (1u << LINK_MAX) - 1 : 1u << id;
	return 1;
}

/* Query lines: every link in multiple connections mode, link 0 in single. */
static int shown_links(struct at_req *r)
{
	return dev(r)->tcpip.mux ? LINK_MAX : 1;
}

/* ---- AT+CIPSSLCCONF ---------------------------------------------------- */

static enum at_rc cconf_query(struct at_req *r)
{
	for (int i = 0; i < shown_links(r); i++) {
		const struct ssl_link_cfg *c = &ss(dev(r))->link[i];
		at_out_line(r->out, "+CIPSSLCCONF:%d,%d,%d,%d", i, c->auth_mode, c->pki, c->ca);
	}
	return AT_RC_OK;
}

/* What auth mode `auth` needs from the manufacturing NVS; prints the
 * module's message for the first missing item. */
static bool pki_present(struct device *d, struct at_out *out, int auth, int pki, int ca,
			char *why, size_t whylen)
{
	if (auth & 1) {
		if (!mfg_pki(d, "client_cert", pki).p) {
			if (out)
				at_out_line(out, "NO CERT FOUND");
			snprintf(why, whylen, "auth mode %d needs the client certificate client_cert.%d "
				 "(AT+SYSMFG, or %s/mfg/client_cert/client_cert.%d)", auth, pki,
				 d->opts.state_dir ? d->opts.state_dir : "<state-dir>", pki);
			return false;
		}
		if (!mfg_pki(d, "client_key", pki).p) {
			if (out)
				at_out_line(out, "NO PRVT_KEY FOUND");
			snprintf(why, whylen, "auth mode %d needs the private key client_key.%d "
				 "(AT+SYSMFG, or %s/mfg/client_key/client_key.%d)", auth, pki,
				 d->opts.state_dir ? d->opts.state_dir : "<state-dir>", pki);
			return false;
		}
	}
	if (auth & 2) {
		if (!mfg_pki(d, "client_ca", ca).p) {
			if (out)
				at_out_line(out, "NO CA FOUND");
			snprintf(why, whylen, "auth mode %d needs the CA certificate client_ca.%d "
				 "(AT+SYSMFG, or %s/mfg/client_ca/client_ca.%d)", auth, ca,
				 d->opts.state_dir ? d->opts.state_dir : "<state-dir>", ca);
			return false;
		}
	}
	return true;
}

static enum at_rc cconf_setup(struct at_req *r)
{
	struct device *d = dev(r);
	unsigned mask;
	/* Single mode sets every link: the module writes auth0..auth4 then
	 * (esp-at issue #384's NVS log). */
	int k = link_mask(r, true, &mask);
	int64_t auth, pki = 0, ca = 0;
	if (k < 0 || !at_nargs(r, k + 1, k + 3) || at_get_int(r, k, 0, 3, true, &auth) < 0 ||
	    at_get_int(r, k + 1, 0, PKI_INDEX_MAX, false, &pki) < 0 ||
	    at_get_int(r, k + 2, 0, PKI_INDEX_MAX, false, &ca) < 0)
		return AT_RC_ERROR;
	char why[256];
	if (!pki_present(d, r->out, (int)auth, (int)pki, (int)ca, why, sizeof(why))) {
		log_info("AT+CIPSSLCCONF: %s", why);
		return at_fail(r, AT_ERR_EXEC_FAIL);
	}
	for (int i = 0; i < LINK_MAX; i++) {
		if (!(mask & (1u << i)))
			continue;
		struct ssl_link_cfg *c = &ss(d)->link[i];
		c->auth_mode = (int)auth;
		c->pki = (int)pki;
		c->ca = (int)ca;
		save_cconf(d, i); /* with AT+SYSSTORE=1 (§6.3) */
	}
	return AT_RC_OK;
}

/* ---- AT+CIPSSLCCN / AT+CIPSSLCSNI ---------------------------------------- */

/* Values print with %s, no quotes, as the binary's format strings (§2.26). */
static enum at_rc cn_query(struct at_req *r)
{
	for (int i = 0; i < shown_links(r); i++)
		at_out_line(r->out, "+CIPSSLCCN:%d,%s", i, ss(dev(r))->link[i].cn);
	return AT_RC_OK;
}

static enum at_rc sni_query(struct at_req *r)
{
	for (int i = 0; i < shown_links(r); i++)
		at_out_line(r->out, "+CIPSSLCSNI:%d,%s", i, ss(dev(r))->link[i].sni);
	return AT_RC_OK;
}

static enum at_rc name_setup(struct at_req *r, bool sni)
{
	unsigned mask;
	int k = link_mask(r, false, &mask);
	char v[SSL_NAME_MAX + 1];
	if (k < 0 || !at_nargs(r, k + 1, k + 1) ||
	    at_get_str(r, k, SSL_NAME_MAX, true, v, sizeof(v)) < 0)
		return AT_RC_ERROR;
	for (int i = 0; i < LINK_MAX; i++) {
		if (!(mask & (1u << i)))
			continue;
		struct ssl_link_cfg *c = &ss(dev(r))->link[i];
		snprintf(sni ? c->sni : c->cn, SSL_NAME_MAX + 1, "%s", v);
	}
	return AT_RC_OK;
}

static enum at_rc cn_setup(struct at_req *r)
{
	return name_setup(r, false);
}

static enum at_rc sni_setup(struct at_req *r)
{
	return name_setup(r, true);
}

/* ---- AT+CIPSSLCALPN ---------------------------------------------------- */

static enum at_rc alpn_query(struct at_req *r)
{
	for (int i = 0; i < shown_links(r); i++) {
		const struct ssl_link_cfg *c = &ss(dev(r))->link[i];
		at_out_text(r->out, "+CIPSSLCALPN:%d", i);
		for (int j = 0; j < c->nalpn; j++)
			at_out_text(r->out, ",%s", c->alpn[j]);
		at_out_line(r->out, "%s", "");
	}
	return AT_RC_OK;
}

static enum at_rc alpn_setup(struct at_req *r)
{
	unsigned mask;
	int k = link_mask(r, false, &mask);
	int64_t n;
	if (k < 0 || at_get_int(r, k, 0, TLS_ALPN_MAX, true, &n) < 0)
		return AT_RC_ERROR;
	/* exactly <counts> names follow */
	if (!at_nargs(r, k + 1 + (int)n, k + 1 + (int)n))
		return AT_RC_ERROR;
	char names[TLS_ALPN_MAX][SSL_ALPN_LEN_MAX + 1];
	for (int j = 0; j < n; j++) {
		if (at_get_str(r, k + 1 + j, SSL_ALPN_LEN_MAX, true, names[j], sizeof(names[j])) < 0)
			return AT_RC_ERROR;
		if (!names[j][0]) /* an empty protocol name is not allowed (RFC 7301) */
			return at_fail(r, AT_ERR_PARA_INVALID(k + 1 + j));
	}
	for (int i = 0; i < LINK_MAX; i++) {
		if (!(mask & (1u << i)))
			continue;
		struct ssl_link_cfg *c = &ss(dev(r))->link[i];
		c->nalpn = (int)n;
		for (int j = 0; j < n; j++)
			snprintf(c->alpn[j], sizeof(c->alpn[j]), "%s", names[j]);
	}
	return AT_RC_OK;
}

/* ---- AT+CIPSSLCPSK / AT+CIPSSLCPSKHEX ------------------------------------ */

static enum at_rc psk_query_common(struct at_req *r, bool hex)
{
	for (int i = 0; i < shown_links(r); i++) {
		const struct ssl_link_cfg *c = &ss(dev(r))->link[i];
		at_out_text(r->out, "+CIPSSLCPSK%s:%d,", hex ? "HEX" : "", i);
		if (hex) {
			for (size_t j = 0; j < c->psk_len; j++)
				at_out_text(r->out, "%02x", c->psk[j]);
		} else {
			/* %s on the module: up to a NUL (set one with PSKHEX) */
			size_t n = strnlen((const char *)c->psk, c->psk_len);
			at_out_raw(r->out, c->psk, n);
		}
		at_out_line(r->out, ",%s", c->psk_hint);
	}
	return AT_RC_OK;
}

static enum at_rc psk_query(struct at_req *r)
{
	return psk_query_common(r, false);
}

static enum at_rc pskhex_query(struct at_req *r)
{
	return psk_query_common(r, true);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static enum at_rc psk_setup_common(struct at_req *r, bool hex)
{
	unsigned mask;
	int k = link_mask(r, false, &mask);
	char psk[2 * SSL_PSK_MAX + 1], hint[SSL_PSK_MAX + 1];
	if (k < 0 || !at_nargs(r, k + 2, k + 2) ||
	    at_get_str(r, k, hex ? 2 * SSL_PSK_MAX : SSL_PSK_MAX, true, psk, sizeof(psk)) < 0 ||
	    at_get_str(r, k + 1, SSL_PSK_MAX, true, hint, sizeof(hint)) < 0)
		return AT_RC_ERROR;
	uint8_t key[SSL_PSK_MAX];
	size_t len = strlen(psk);
	if (hex) {
		if (len % 2)
			return at_fail(r, AT_ERR_PARA_INVALID(k));
		for (size_t j = 0; j < len / 2; j++) {
			int hi = hexval(psk[2 * j]), lo = hexval(psk[2 * j + 1]);
			if (hi < 0 || lo < 0)
				return at_fail(r, AT_ERR_PARA_INVALID(k));
			key[j] = (uint8_t)(hi << 4 | lo);
		}
		len /= 2;
	} else {
		memcpy(key, psk, len);
	}
	for (int i = 0; i < LINK_MAX; i++) {
		if (!(mask & (1u << i)))
			continue;
		struct ssl_link_cfg *c = &ss(dev(r))->link[i];
		memcpy(c->psk, key, len);
		c->psk_len = len;
		snprintf(c->psk_hint, sizeof(c->psk_hint), "%s", hint);
	}
	return AT_RC_OK;
}

static enum at_rc psk_setup(struct at_req *r)
{
	return psk_setup_common(r, false);
}

static enum at_rc pskhex_setup(struct at_req *r)
{
	return psk_setup_common(r, true);
}

/* ---- AT+CIPSSLCCIPHER -------------------------------------------------- */

static enum at_rc cipher_query(struct at_req *r)
{
	for (int i = 0; i < shown_links(r); i++) {
		const struct ssl_link_cfg *c = &ss(dev(r))->link[i];
		at_out_text(r->out, "+CIPSSLCCIPHER:%d", i);
		for (int j = 0; j < c->nciphers; j++)
			at_out_text(r->out, ",0x%04X", c->ciphers[j]);
		at_out_line(r->out, "%s", "");
	}
	return AT_RC_OK;
}

static enum at_rc cipher_setup(struct at_req *r)
{
	unsigned mask;
	int k = link_mask(r, false, &mask);
	int64_t n;
	if (k < 0 || at_get_int(r, k, 0, TLS_CIPHER_MAX, true, &n) < 0)
		return AT_RC_ERROR;
	if (!at_nargs(r, k + 1 + (int)n, k + 1 + (int)n))
		return AT_RC_ERROR;
	uint16_t ids[TLS_CIPHER_MAX];
	for (int j = 0; j < n; j++) {
		int64_t v;
		if (at_get_int(r, k + 1 + j, 1, 0xFFFF, true, &v) < 0)
			return AT_RC_ERROR;
		ids[j] = (uint16_t)v;
	}
	for (int i = 0; i < LINK_MAX; i++) {
		if (!(mask & (1u << i)))
			continue;
		struct ssl_link_cfg *c = &ss(dev(r))->link[i];
		c->nciphers = (int)n;
		memcpy(c->ciphers, ids, sizeof(ids[0]) * (size_t)n);
	}
	return AT_RC_OK;
}

/* ---- AT+SYSMFG ---------------------------------------------------------- */

/* The namespaces there are: the certificate ones always (the module's
 * partition has them), then any other that holds a value. */
static void list_namespaces(struct at_req *r)
{
	struct device *d = dev(r);
	for (size_t i = 0; i < PKI_NS_N; i++)
		at_out_line(r->out, "+SYSMFG:\"%s\"", pki_ns[i].ns);
	const char *last = "";
	for (struct mfg_entry *e = ss(d)->mfg; e; e = e->next) {
		if (pki_kind(e->ns) != PKI_NONE || strcmp(e->ns, last) == 0)
			continue;
		at_out_line(r->out, "+SYSMFG:\"%s\"", e->ns);
		last = e->ns;
	}
}

static enum at_rc sysmfg_query(struct at_req *r)
{
	list_namespaces(r);
	return AT_RC_OK;
}

static bool ns_exists(struct device *d, const char *ns)
{
	return pki_kind(ns) != PKI_NONE || mfg_ns_used(d, ns);
}

/* Parameter i as a namespace / key name. */
static int get_name(struct at_req *r, int i, bool key, char *out)
{
	char v[64];
	if (at_get_str(r, i, sizeof(v) - 1, true, v, sizeof(v)) < 0)
		return -1;
	if (!(key ? key_ok(v) : ns_ok(v))) {
		r->errcode = AT_ERR_PARA_INVALID(i);
		return -1;
	}
	snprintf(out, MFG_NAME_MAX + 1, "%.15s", v);
	return 0;
}

static enum at_rc sysmfg_erase(struct at_req *r)
{
	struct device *d = dev(r);
	char ns[MFG_NAME_MAX + 1], key[MFG_NAME_MAX + 1];
	if (!at_nargs(r, 2, 3) || get_name(r, 1, false, ns) < 0)
		return AT_RC_ERROR;
	int rc;
	if (r->args.n == 3) {
		if (get_name(r, 2, true, key) < 0)
			return AT_RC_ERROR;
		struct mfg_entry *e = mfg_find(d, ns, key);
		if (!e) {
			log_info("AT+SYSMFG: %s has no key %s", ns, key);
			return at_fail(r, AT_ERR_EXEC_FAIL);
		}
		rc = mfg_unlink(d, ns, key);
		if (rc == 0)
			mfg_remove(d, e);
	} else {
		rc = mfg_unlink(d, ns, NULL);
		for (struct mfg_entry **pp = &ss(d)->mfg; rc == 0 && *pp;) {
			struct mfg_entry *e = *pp;
			if (strcmp(e->ns, ns) == 0) {
				*pp = e->next;
				entry_free(e);
			} else {
				pp = &e->next;
			}
		}
	}
	if (rc < 0) {
		log_error("AT+SYSMFG: cannot erase under %s/mfg/%s: %s", d->opts.state_dir, ns,
			  strerror(-rc));
		return at_fail(r, AT_ERR_EXEC_FAIL);
	}
	return AT_RC_OK;
}

static enum at_rc sysmfg_read(struct at_req *r)
{
	struct device *d = dev(r);
	char ns[MFG_NAME_MAX + 1], key[MFG_NAME_MAX + 1];
	if (!at_nargs(r, 1, 5))
		return AT_RC_ERROR;
	if (r->args.n == 1) {
		list_namespaces(r);
		return AT_RC_OK;
	}
	if (get_name(r, 1, false, ns) < 0)
		return AT_RC_ERROR;
	if (r->args.n == 2) {
		if (!ns_exists(d, ns)) {
			log_info("AT+SYSMFG: no namespace %s", ns);
			return at_fail(r, AT_ERR_EXEC_FAIL);
		}
		for (struct mfg_entry *e = ss(d)->mfg; e; e = e->next)
			if (strcmp(e->ns, ns) == 0)
				at_out_line(r->out, "+SYSMFG:\"%s\",\"%s\",%d", e->ns, e->key, e->type);
		return AT_RC_OK;
	}
	if (get_name(r, 2, true, key) < 0)
		return AT_RC_ERROR;
	int64_t off = 0, len = -1;
	if (r->args.n == 4) /* <offset> needs its <length> */
		return at_fail(r, AT_ERR_PARA_NUM(5, r->args.n));
	if (r->args.n == 5 && (at_get_int(r, 3, 0, MFG_BIN_MAX, true, &off) < 0 ||
			       at_get_int(r, 4, 1, MFG_BIN_MAX, true, &len) < 0))
		return AT_RC_ERROR;
	struct mfg_entry *e = mfg_find(d, ns, key);
	if (!e) {
		log_info("AT+SYSMFG: %s has no key %s", ns, key);
		return at_fail(r, AT_ERR_EXEC_FAIL);
	}
	if (len < 0)
		len = (int64_t)e->len;
	if ((uint64_t)off + (uint64_t)len > e->len) {
		log_info("AT+SYSMFG: %s.%s holds %zu bytes; offset %lld + length %lld is beyond",
			 ns, key, e->len, (long long)off, (long long)len);
		return at_fail(r, AT_ERR_PARA_INVALID(4));
	}
	/* Numbers print as text; <length> counts its characters (ESP-AT
	 * sysmfg examples), strings and binaries their bytes. */
	at_out_text(r->out, "+SYSMFG:\"%s\",\"%s\",%d,%lld,", e->ns, e->key, e->type,
		    (long long)len);
	at_out_raw(r->out, e->data + off, (size_t)len);
	at_out_line(r->out, "%s", "");
	return AT_RC_OK;
}

static void write_end(struct device *d)
{
	struct mfg_write *w = ss(d)->write;
	if (!w)
		return;
	d->at.hooks.data = w->saved_data;
	d->at.hooks.cancel = w->saved_cancel;
	free(w->buf);
	free(w);
	ss(d)->write = NULL;
}

/* Check and keep a complete value; 0 or -1 (logged). */
static int store_value(struct device *d, const char *ns, const char *key, int type, uint8_t *buf,
		       size_t len)
{
	char why[256] = "";
	if (check_value(ns, type, buf, len, why, sizeof(why)) < 0) {
		log_warn("AT+SYSMFG: %s.%s refused: %s", ns, key, why);
		free(buf);
		return -1;
	}
	int rc = mfg_save(d, ns, key, type, buf, len);
	if (rc < 0) {
		log_error("AT+SYSMFG: cannot write %s/mfg/%s/%s: %s", d->opts.state_dir, ns, key,
			  strerror(-rc));
		free(buf);
		return -1;
	}
	mfg_put(d, ns, key, type, buf, len);
	log_info("AT+SYSMFG: %s.%s written (%zu bytes, type %d)", ns, key, len, type);
	return 0;
}

static void write_data(struct device *d, const uint8_t *p, size_t n, int done)
{
	struct mfg_write *w = ss(d)->write;
	if (!w)
		return;
	size_t take = n < w->want - w->got ? n : w->want - w->got;
	memcpy(w->buf + w->got, p, take);
	w->got += take;
	if (!done)
		return;
	at_out_hold(&d->at.out, false);
	uint8_t *buf = w->buf;
	size_t len = w->got;
	buf[len] = '\0';
	w->buf = NULL;
	char ns[MFG_NAME_MAX + 1], key[MFG_NAME_MAX + 1];
	snprintf(ns, sizeof(ns), "%s", w->ns);
	snprintf(key, sizeof(key), "%s", w->key);
	int type = w->type;
	write_end(d);
	int rc = store_value(d, ns, key, type, buf, len);
	if (rc < 0)
		d->at.req.errcode = AT_ERR_EXEC_FAIL;
	at_engine_complete(&d->at, rc < 0 ? AT_RC_ERROR : AT_RC_OK);
}

/* "+++" read alone during the data: the module has no cancel for this
 * data phase (UNCONFIRMED), so they are data like any other bytes. */
static void write_cancel(struct device *d)
{
	struct at_parser *p = &d->at.parser;
	size_t take = p->data_left < 3 ? p->data_left : 3;
	p->data_left -= take;
	int done = p->data_left == 0;
	if (done)
		at_parser_set_mode(p, AT_PM_DISCARD);
	write_data(d, (const uint8_t *)"+++", take, done);
	if (take < 3) /* beyond <value>: as any excess byte */
		at_out_busy(&d->at.out);
}

static enum at_rc sysmfg_write(struct at_req *r)
{
	struct device *d = dev(r);
	char ns[MFG_NAME_MAX + 1], key[MFG_NAME_MAX + 1];
	int64_t type, v;
	if (!at_nargs(r, 5, 5) || get_name(r, 1, false, ns) < 0 || get_name(r, 2, true, key) < 0 ||
	    at_get_int(r, 3, MFG_U8, MFG_BIN, true, &type) < 0)
		return AT_RC_ERROR;
	static const int64_t lo[] = { 0, 0, -128, 0, -32768, 0, INT32_MIN, 1, 1 };
	static const int64_t hi[] = { 0, 255, 127, 65535, 32767, UINT32_MAX, INT32_MAX,
				      MFG_STR_MAX, MFG_BIN_MAX };
	if (at_get_int(r, 4, lo[type], hi[type], true, &v) < 0)
		return AT_RC_ERROR;
	if (type <= MFG_I32) {
		if (pki_kind(ns) != PKI_NONE) {
			log_info("AT+SYSMFG: %s holds certificates and keys (type 8), not numbers", ns);
			return at_fail(r, AT_ERR_PARA_INVALID(3));
		}
		char text[24];
		int n = snprintf(text, sizeof(text), "%lld", (long long)v);
		uint8_t *buf = malloc((size_t)n + 1);
		if (!buf)
			return at_fail(r, AT_ERR_EXEC_FAIL);
		memcpy(buf, text, (size_t)n + 1);
		return store_value(d, ns, key, (int)type, buf, (size_t)n) < 0
			       ? at_fail(r, AT_ERR_EXEC_FAIL)
			       : AT_RC_OK;
	}
	/* string / binary: '>' and then exactly <value> bytes */
	struct mfg_write *w = calloc(1, sizeof(*w));
	if (w)
		w->buf = malloc((size_t)v + 1);
	if (!w || !w->buf) {
		free(w);
		return at_fail(r, AT_ERR_EXEC_FAIL);
	}
	snprintf(w->ns, sizeof(w->ns), "%s", ns);
	snprintf(w->key, sizeof(w->key), "%s", key);
	w->type = (int)type;
	w->want = (size_t)v;
	/* The engine hands data-phase bytes to one hook; this command owns it
	 * until its data is complete (write_end gives it back). */
	w->saved_data = d->at.hooks.data;
	w->saved_cancel = d->at.hooks.cancel;
	d->at.hooks.data = write_data;
	d->at.hooks.cancel = write_cancel;
	ss(d)->write = w;
	at_parser_expect_data(&d->at.parser, (size_t)v);
	at_out_hold(&d->at.out, true); /* nothing between '>' and the data */
	return AT_RC_PROMPT;
}

static enum at_rc sysmfg_setup(struct at_req *r)
{
	int64_t op;
	if (at_get_int(r, 0, 0, 2, true, &op) < 0)
		return AT_RC_ERROR;
	if (op == 0)
		return sysmfg_erase(r);
	if (op == 1)
		return sysmfg_read(r);
	return sysmfg_write(r);
}

/* ---- for the links --------------------------------------------------------- */

static bool ip_literal(const char *s)
{
	unsigned char b[16];
	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

int ssl_client_cfg(struct device *d, int id, const char *host, struct tls_cfg *cfg, char *why,
		   size_t whylen)
{
	memset(cfg, 0, sizeof(*cfg));
	if (id < 0 || id >= LINK_MAX)
		return -EINVAL;
	const struct ssl_link_cfg *c = &ss(d)->link[id];
	cfg->auth_mode = c->auth_mode;
	/* A missing item prints the module's message before the ERROR; only
	 * while a command runs (not for a passthrough reconnect). */
	if (!pki_present(d, d->at.busy ? &d->at.out : NULL, c->auth_mode, c->pki, c->ca, why,
			 whylen))
		return -ENOENT;
	if (c->auth_mode & 1) {
		cfg->pki.cert = mfg_pki(d, "client_cert", c->pki);
		cfg->pki.key = mfg_pki(d, "client_key", c->pki);
	}
	if (c->auth_mode & 2)
		cfg->pki.ca = mfg_pki(d, "client_ca", c->ca);
	/* The name the server certificate must carry: AT+CIPSSLCCN, else the
	 * host as given (esp-tls checks the host name). SNI: AT+CIPSSLCSNI,
	 * else the host unless it is an address (RFC 6066 §3). */
	cfg->expect_name = c->cn[0] ? c->cn : host;
	cfg->sni = c->sni[0] ? c->sni : ip_literal(host) ? NULL : host;
	for (int j = 0; j < c->nalpn; j++)
		cfg->alpn[j] = c->alpn[j];
	cfg->nalpn = c->nalpn;
	if (c->psk_len) {
		cfg->psk = c->psk;
		cfg->psk_len = c->psk_len;
		cfg->psk_identity = c->psk_hint;
	}
	memcpy(cfg->ciphers, c->ciphers, sizeof(cfg->ciphers));
	cfg->nciphers = c->nciphers;
	/* Say what is checked, so a failure that follows can be acted on. */
	char verify[160] = "the server is not verified (AT+CIPSSLCCONF auth mode 0/1)";
	char mine[48] = "";
	if (c->auth_mode & 2)
		snprintf(verify, sizeof(verify), "the server must be signed by client_ca.%d and "
			 "carry the name \"%s\"", c->ca, cfg->expect_name);
	if (c->auth_mode & 1)
		snprintf(mine, sizeof(mine), "; client certificate client_cert.%d", c->pki);
	log_info("link %d: TLS to %s: %s%s%s%s%s", id, host, verify, mine,
		 cfg->sni ? "; SNI " : "; no SNI", cfg->sni ? cfg->sni : "",
		 c->psk_len ? "; with a PSK" : "");
	return 0;
}

int ssl_server_cfg(struct device *d, int ca_enable, struct tls_cfg *cfg, char *why, size_t whylen)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->server = true;
	cfg->auth_mode = ca_enable;
	cfg->pki.cert = mfg_pki(d, "server_cert", 0);
	cfg->pki.key = mfg_pki(d, "server_key", 0);
	if (ca_enable)
		cfg->pki.ca = mfg_pki(d, "server_ca", 0);
	const char *dir = d->opts.state_dir ? d->opts.state_dir : "<state-dir>";
	if (!cfg->pki.cert.p || !cfg->pki.key.p) {
		snprintf(why, whylen, "no server certificate and key: provision server_cert.0 and "
				      "server_key.0 (AT+SYSMFG, or %s/mfg/server_cert/server_cert.0 "
				      "and %s/mfg/server_key/server_key.0)", dir, dir);
		return -ENOENT;
	}
	if (ca_enable && !cfg->pki.ca.p) {
		snprintf(why, whylen, "<CA enable> 1 needs the CA that signs client certificates: "
				      "provision server_ca.0 (AT+SYSMFG, or "
				      "%s/mfg/server_ca/server_ca.0)", dir);
		return -ENOENT;
	}
	return 0;
}

void ssl_load(struct device *d)
{
	write_end(d); /* a write cut short by a restart */
	for (int i = 0; i < LINK_MAX; i++) {
		link_defaults(&ss(d)->link[i]);
		load_cconf(d, i); /* saved with AT+SYSSTORE=1 (§6.3) */
	}
	/* The partition survives restarts: without a state dir the RAM copy
	 * is all there is, so it stays. */
	if (d->opts.state_dir)
		mfg_load(d);
}

void ssl_free(struct device *d)
{
	write_end(d);
	mfg_clear(d);
}

static const struct at_cmd ssl_cmds[] = {
	/* name                 test  query          setup           exec */
	{ "+CIPSSLCCONF",       NULL, cconf_query,   cconf_setup,    NULL },
	{ "+CIPSSLCCN",         NULL, cn_query,      cn_setup,       NULL },
	{ "+CIPSSLCSNI",        NULL, sni_query,     sni_setup,      NULL },
	{ "+CIPSSLCALPN",       NULL, alpn_query,    alpn_setup,     NULL },
	{ "+CIPSSLCPSK",        NULL, psk_query,     psk_setup,      NULL },
	{ "+CIPSSLCPSKHEX",     NULL, pskhex_query,  pskhex_setup,   NULL },
	{ "+CIPSSLCCIPHER",     NULL, cipher_query,  cipher_setup,   NULL },
	{ "+SYSMFG",            NULL, sysmfg_query,  sysmfg_setup,   NULL },
};

const struct at_cmd_table cmd_ssl_table = AT_TABLE("TCP/IP (SSL)", ssl_cmds);
