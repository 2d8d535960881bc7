/* Persistent settings store (protocol.md §6): namespace/key -> typed value,
 * kept in RAM as a sorted array and written as one text file.
 *
 * File format, version 1 (everything is ASCII, one record per line):
 *
 *   espatd-store 1
 *   <ns> <key> i <decimal int64>
 *   <ns> <key> s "<escaped string>"     \\ \" \xHH; other printable ASCII raw
 *   <ns> <key> b <lowercase hex | ->    "-" is the empty blob
 *   crc32 <8 lowercase hex digits>      CRC-32 (IEEE) of every byte before it
 *
 * Entries are written sorted by (ns, key) so equal contents give equal
 * files. The trailing CRC line makes a truncated or edited file detectable:
 * such a file is set aside as store.nvs.bad-<unix seconds>, never half used.
 *
 * Commit writes store.nvs.tmp, fsyncs it, renames it over store.nvs and
 * fsyncs the directory, so a crash at any instant leaves the old or the new
 * file, never a mix. */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

#define STORE_FILE "store.nvs"
#define STORE_MAGIC "espatd-store 1"
#define STORE_MAGIC_PREFIX "espatd-store "
#define CRC_PREFIX "crc32 "
#define CRC_LINE_LEN (sizeof(CRC_PREFIX) - 1 + 8 + 1) /* "crc32 " + hex + '\n' */
/* A file larger than this cannot be ours in any sane deployment (hundreds of
 * entries of at most 16 KiB); refuse it rather than try to allocate it. */
#define STORE_FILE_MAX (256u * 1024u * 1024u)

struct entry {
	char ns[STORE_NAME_MAX + 1];
	char key[STORE_NAME_MAX + 1];
	enum store_type type;
	int64_t i;
	uint8_t *data; /* str/blob bytes plus a NUL so strings need no copy */
	size_t len;    /* without that NUL */
};

struct store {
	char *path; /* <dir>/store.nvs, NULL for a RAM-only store */
	char *tmp_path;
	char *dir;
	struct entry *v; /* sorted by (ns, key) */
	size_t n, cap;
	bool dirty;
	/* The failure the last commit logged (0 after a good one). The store
	 * stays dirty after a failure, so every later AT command retries; an
	 * unwritable state dir must not log the same error for each of them. */
	int fail_rc;
	const char *fail_step;
};

/* ------------------------------------------------------------------ names */

static bool name_char_ok(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

/* Names never need escaping in the file because of this charset. */
static bool name_ok(const char *s)
{
	if (!s)
		return false;
	size_t n = 0;
	for (; s[n]; n++)
		if (n >= STORE_NAME_MAX || !name_char_ok(s[n]))
			return false;
	return n > 0;
}

static int entry_cmp(const struct entry *e, const char *ns, const char *key)
{
	int c = strcmp(e->ns, ns);
	return c ? c : strcmp(e->key, key);
}

/* Index of (ns, key) if present, else where it would be inserted. */
static bool find(const struct store *s, const char *ns, const char *key, size_t *idx)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = entry_cmp(&s->v[mid], ns, key);
		if (c == 0) {
			*idx = mid;
			return true;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*idx = lo;
	return false;
}

static struct entry *lookup(struct store *s, const char *ns, const char *key)
{
	size_t i;
	return find(s, ns, key, &i) ? &s->v[i] : NULL;
}

/* ------------------------------------------------------------ RAM entries */

static void entry_free(struct entry *e)
{
	free(e->data);
	e->data = NULL;
}

static void entries_clear(struct store *s)
{
	for (size_t i = 0; i < s->n; i++)
		entry_free(&s->v[i]);
	s->n = 0;
}

static void entry_remove(struct store *s, size_t i)
{
	entry_free(&s->v[i]);
	memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof(s->v[0]));
	s->n--;
}

static int reserve_one(struct store *s)
{
	if (s->n < s->cap)
		return 0;
	size_t cap = s->cap ? s->cap * 2 : 16;
	struct entry *v = realloc(s->v, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->v = v;
	s->cap = cap;
	return 0;
}

static bool value_equal(const struct entry *e, enum store_type t, int64_t iv, const void *p,
			size_t n)
{
	if (e->type != t)
		return false;
	if (t == STORE_INT)
		return e->i == iv;
	return e->len == n && (n == 0 || memcmp(e->data, p, n) == 0);
}

/* The one place values enter RAM (setters and loader). Leaves the store
 * untouched on failure. *changed says whether anything differs now. */
static int put(struct store *s, const char *ns, const char *key, enum store_type t, int64_t iv,
	       const void *p, size_t n, bool *changed)
{
	size_t idx;
	bool found = find(s, ns, key, &idx);
	*changed = false;
	if (found && value_equal(&s->v[idx], t, iv, p, n))
		return 0; /* protocol.md §6.1: unchanged values are not rewritten */

	uint8_t *data = NULL;
	if (t != STORE_INT) {
		data = malloc(n + 1);
		if (!data)
			return -ENOMEM;
		if (n)
			memcpy(data, p, n);
		data[n] = 0;
	}
	if (!found) {
		if (reserve_one(s) < 0) {
			free(data);
			return -ENOMEM;
		}
		memmove(&s->v[idx + 1], &s->v[idx], (s->n - idx) * sizeof(s->v[0]));
		s->n++;
		memset(&s->v[idx], 0, sizeof(s->v[idx]));
		memcpy(s->v[idx].ns, ns, strlen(ns) + 1);
		memcpy(s->v[idx].key, key, strlen(key) + 1);
	}
	struct entry *e = &s->v[idx];
	entry_free(e);
	e->type = t;
	e->i = iv;
	e->data = data;
	e->len = t == STORE_INT ? 0 : n;
	*changed = true;
	return 0;
}

static int set_value(struct store *s, const char *ns, const char *key, enum store_type t,
		     int64_t iv, const void *p, size_t n)
{
	if (!name_ok(ns) || !name_ok(key) || n > STORE_VALUE_MAX || (n && !p))
		return -EINVAL;
	bool changed;
	int rc = put(s, ns, key, t, iv, p, n, &changed);
	if (changed)
		s->dirty = true;
	return rc;
}

/* Common prologue of the getters: name check, presence, type. */
static int get_entry(struct store *s, const char *ns, const char *key, enum store_type t,
		     const struct entry **out)
{
	if (!name_ok(ns) || !name_ok(key))
		return -EINVAL;
	const struct entry *e = lookup(s, ns, key);
	if (!e)
		return -ENOENT;
	if (e->type != t)
		return -EINVAL;
	*out = e;
	return 0;
}

/* ------------------------------------------------------------ public: RAM */

int store_get_int(struct store *s, const char *ns, const char *key, int64_t *out)
{
	const struct entry *e;
	int rc = get_entry(s, ns, key, STORE_INT, &e);
	if (rc == 0)
		*out = e->i;
	return rc;
}

int store_get_str(struct store *s, const char *ns, const char *key, char *buf, size_t size)
{
	const struct entry *e;
	int rc = get_entry(s, ns, key, STORE_STR, &e);
	if (rc < 0)
		return rc;
	if (e->len + 1 > size) {
		if (size)
			buf[0] = 0; /* never leave a caller with an unterminated buffer */
		return -ENOSPC;
	}
	memcpy(buf, e->data, e->len + 1);
	return 0;
}

int store_get_blob(struct store *s, const char *ns, const char *key, void *buf, size_t size,
		   size_t *len)
{
	const struct entry *e;
	int rc = get_entry(s, ns, key, STORE_BLOB, &e);
	if (rc < 0)
		return rc;
	if (len)
		*len = e->len; /* also on -ENOSPC, so the caller can size a buffer */
	if (e->len > size)
		return -ENOSPC;
	if (e->len)
		memcpy(buf, e->data, e->len);
	return 0;
}

int store_set_int(struct store *s, const char *ns, const char *key, int64_t v)
{
	return set_value(s, ns, key, STORE_INT, v, NULL, 0);
}

int store_set_str(struct store *s, const char *ns, const char *key, const char *v)
{
	if (!v)
		return -EINVAL;
	size_t n = strnlen(v, STORE_VALUE_MAX + 1);
	return set_value(s, ns, key, STORE_STR, 0, v, n);
}

int store_set_blob(struct store *s, const char *ns, const char *key, const void *p, size_t n)
{
	return set_value(s, ns, key, STORE_BLOB, 0, p, n);
}

int store_erase_key(struct store *s, const char *ns, const char *key)
{
	if (!name_ok(ns) || !name_ok(key))
		return -EINVAL;
	size_t idx;
	if (!find(s, ns, key, &idx))
		return -ENOENT;
	entry_remove(s, idx);
	s->dirty = true;
	return 0;
}

int store_erase_ns(struct store *s, const char *ns)
{
	if (!name_ok(ns))
		return -EINVAL;
	size_t first;
	find(s, ns, "", &first); /* "" sorts before every key of ns */
	size_t end = first;
	while (end < s->n && strcmp(s->v[end].ns, ns) == 0)
		entry_free(&s->v[end++]);
	if (end == first)
		return 0;
	memmove(&s->v[first], &s->v[end], (s->n - end) * sizeof(s->v[0]));
	s->n -= end - first;
	s->dirty = true;
	return 0;
}

int store_erase_all(struct store *s)
{
	if (s->n)
		s->dirty = true;
	entries_clear(s);
	return 0;
}

/* Re-finds the next key after each callback, so the callback may set or
 * erase entries (even the current one) without invalidating the walk. */
int store_foreach(struct store *s, const char *ns, store_iter_fn fn, void *arg)
{
	if (!name_ok(ns) || !fn)
		return -EINVAL;
	char key[STORE_NAME_MAX + 1] = "";
	size_t idx;
	find(s, ns, key, &idx);
	while (idx < s->n && strcmp(s->v[idx].ns, ns) == 0) {
		const struct entry *e = &s->v[idx];
		enum store_type t = e->type;
		memcpy(key, e->key, sizeof(key));
		int rc = fn(arg, key, t);
		if (rc)
			return rc;
		if (find(s, ns, key, &idx))
			idx++;
	}
	return 0;
}

bool store_dirty(const struct store *s)
{
	return s->dirty;
}

const char *store_path(const struct store *s)
{
	return s->path;
}

/* ----------------------------------------------------------------- CRC-32 */

/* Bitwise CRC-32 (IEEE 802.3, as zlib): files are small, clarity wins. */
static uint32_t crc32_ieee(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int b = 0; b < 8; b++)
			c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
	}
	return ~c;
}

/* -------------------------------------------------------------- serialize */

struct sbuf {
	char *p;
	size_t n, cap;
	bool oom;
};

static void sb_grow(struct sbuf *b, size_t more)
{
	if (b->oom || b->n + more <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->n + more)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	sb_grow(b, n);
	if (b->oom)
		return;
	memcpy(b->p + b->n, s, n);
	b->n += n;
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static const char hexdig[] = "0123456789abcdef";

static void sb_hexbyte(struct sbuf *b, uint8_t c)
{
	char h[2] = { hexdig[c >> 4], hexdig[c & 15] };
	sb_add(b, h, 2);
}

/* Strings stay readable: printable ASCII (space included) as is. */
static void sb_escaped(struct sbuf *b, const uint8_t *p, size_t n)
{
	sb_add(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (c == '\\' || c == '"') {
			char e[2] = { '\\', (char)c };
			sb_add(b, e, 2);
		} else if (c >= 0x20 && c < 0x7f) {
			sb_add(b, (const char *)&c, 1);
		} else {
			sb_add(b, "\\x", 2);
			sb_hexbyte(b, c);
		}
	}
	sb_add(b, "\"", 1);
}

static void sb_entry(struct sbuf *b, const struct entry *e)
{
	char num[32];
	sb_str(b, e->ns);
	sb_add(b, " ", 1);
	sb_str(b, e->key);
	switch (e->type) {
	case STORE_INT:
		snprintf(num, sizeof(num), " i %" PRId64, e->i);
		sb_str(b, num);
		break;
	case STORE_STR:
		sb_add(b, " s ", 3);
		sb_escaped(b, e->data, e->len);
		break;
	case STORE_BLOB:
		sb_add(b, " b ", 3);
		if (e->len == 0)
			sb_add(b, "-", 1);
		for (size_t i = 0; i < e->len; i++)
			sb_hexbyte(b, e->data[i]);
		break;
	}
	sb_add(b, "\n", 1);
}

static int serialize(const struct store *s, struct sbuf *b)
{
	char crc[CRC_LINE_LEN + 1];
	sb_str(b, STORE_MAGIC "\n");
	for (size_t i = 0; i < s->n; i++)
		sb_entry(b, &s->v[i]);
	if (b->oom)
		return -ENOMEM;
	snprintf(crc, sizeof(crc), CRC_PREFIX "%08" PRIx32 "\n",
		 crc32_ieee((const uint8_t *)b->p, b->n));
	sb_add(b, crc, CRC_LINE_LEN);
	return b->oom ? -ENOMEM : 0;
}

/* ------------------------------------------------------------------ parse */

/* Why a buffer was refused, for the log line a person reads. */
struct load_err {
	const char *what;
	size_t line; /* 1-based, 0 = whole file */
};

struct span {
	const char *p;
	size_t n;
};

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

/* Splits off the text up to the next space; false if there is none. */
static bool next_field(struct span *rest, struct span *field)
{
	const char *sp = memchr(rest->p, ' ', rest->n);
	if (!sp)
		return false;
	field->p = rest->p;
	field->n = (size_t)(sp - rest->p);
	rest->n -= field->n + 1;
	rest->p = sp + 1;
	return true;
}

static bool parse_name(struct span f, char out[STORE_NAME_MAX + 1])
{
	if (f.n == 0 || f.n > STORE_NAME_MAX)
		return false;
	for (size_t i = 0; i < f.n; i++)
		if (!name_char_ok(f.p[i]))
			return false;
	memcpy(out, f.p, f.n);
	out[f.n] = 0;
	return true;
}

/* Strict decimal: optional '-', no '+', no spaces, no leading zeros. */
static bool parse_int(struct span f, int64_t *out)
{
	size_t i = 0;
	bool neg = f.n > 0 && f.p[0] == '-';
	if (neg)
		i++;
	if (i == f.n || f.n - i > 19 || (f.p[i] == '0' && f.n - i > 1))
		return false;
	uint64_t v = 0;
	for (; i < f.n; i++) {
		if (f.p[i] < '0' || f.p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(f.p[i] - '0'); /* 19 digits cannot wrap */
	}
	uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	if (v > limit || (neg && v == 0))
		return false; /* "-0" is not canonical */
	*out = neg ? (v == limit ? INT64_MIN : -(int64_t)v) : (int64_t)v;
	return true;
}

/* Decodes into out (STORE_VALUE_MAX bytes); rejects NUL since strings are C
 * strings in the API. */
static bool parse_str(struct span f, uint8_t *out, size_t *len)
{
	if (f.n < 2 || f.p[0] != '"' || f.p[f.n - 1] != '"')
		return false;
	size_t n = 0;
	for (size_t i = 1; i < f.n - 1; i++) {
		uint8_t c = (uint8_t)f.p[i];
		if (c == '\\') {
			if (i + 1 >= f.n - 1)
				return false;
			char k = f.p[++i];
			if (k == '\\' || k == '"') {
				c = (uint8_t)k;
			} else if (k == 'x' && i + 2 < f.n - 1 && hexval(f.p[i + 1]) >= 0 &&
				   hexval(f.p[i + 2]) >= 0) {
				c = (uint8_t)(hexval(f.p[i + 1]) * 16 + hexval(f.p[i + 2]));
				i += 2;
			} else {
				return false;
			}
		} else if (c < 0x20 || c >= 0x7f || c == '"') {
			return false;
		}
		if (c == 0 || n == STORE_VALUE_MAX)
			return false;
		out[n++] = c;
	}
	*len = n;
	return true;
}

static bool parse_blob(struct span f, uint8_t *out, size_t *len)
{
	if (f.n == 1 && f.p[0] == '-') {
		*len = 0;
		return true;
	}
	if (f.n == 0 || f.n % 2 || f.n / 2 > STORE_VALUE_MAX)
		return false;
	for (size_t i = 0; i < f.n; i += 2) {
		int hi = hexval(f.p[i]), lo = hexval(f.p[i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i / 2] = (uint8_t)(hi * 16 + lo);
	}
	*len = f.n / 2;
	return true;
}

/* One "<ns> <key> <type> <value>" line (without its '\n') into the store.
 * scratch holds STORE_VALUE_MAX decoded bytes. */
static int parse_line(struct store *s, struct span line, uint8_t *scratch, struct load_err *err)
{
	struct span rest = line, f_ns, f_key, f_type;
	char ns[STORE_NAME_MAX + 1], key[STORE_NAME_MAX + 1];
	int64_t iv = 0;
	size_t n = 0;
	enum store_type t;

	err->what = "malformed entry";
	if (!next_field(&rest, &f_ns) || !next_field(&rest, &f_key) ||
	    !next_field(&rest, &f_type) || f_type.n != 1)
		return -EINVAL;
	if (!parse_name(f_ns, ns) || !parse_name(f_key, key)) {
		err->what = "invalid namespace or key name";
		return -EINVAL;
	}
	switch (f_type.p[0]) {
	case 'i':
		t = STORE_INT;
		if (!parse_int(rest, &iv))
			return -EINVAL;
		break;
	case 's':
		t = STORE_STR;
		if (!parse_str(rest, scratch, &n))
			return -EINVAL;
		break;
	case 'b':
		t = STORE_BLOB;
		if (!parse_blob(rest, scratch, &n))
			return -EINVAL;
		break;
	default:
		err->what = "unknown value type";
		return -EINVAL;
	}
	size_t idx;
	if (find(s, ns, key, &idx)) {
		err->what = "duplicate key";
		return -EINVAL;
	}
	bool changed;
	return put(s, ns, key, t, iv, scratch, n, &changed);
}

/* The last line must be "crc32 xxxxxxxx\n" over everything before it. On
 * success *body_len is the length of the part the CRC covers. */
static int check_crc(const uint8_t *p, size_t n, size_t *body_len, struct load_err *err)
{
	err->what = "no checksum line, the file is truncated";
	if (n < CRC_LINE_LEN || p[n - 1] != '\n')
		return -EINVAL;
	size_t start = n - CRC_LINE_LEN;
	if ((start > 0 && p[start - 1] != '\n') ||
	    memcmp(p + start, CRC_PREFIX, sizeof(CRC_PREFIX) - 1) != 0)
		return -EINVAL;
	uint32_t want = 0;
	for (size_t i = start + sizeof(CRC_PREFIX) - 1; i < n - 1; i++) {
		/* lowercase only, as written: any edit of the line is an error */
		int h = p[i] >= 'A' && p[i] <= 'F' ? -1 : hexval((char)p[i]);
		if (h < 0)
			return -EINVAL;
		want = want << 4 | (uint32_t)h;
	}
	if (crc32_ieee(p, start) != want) {
		err->what = "checksum mismatch, the file is damaged";
		return -EINVAL;
	}
	*body_len = start;
	return 0;
}

static int check_magic(const uint8_t *p, size_t n, size_t *hdr_len, struct load_err *err)
{
	const size_t ml = sizeof(STORE_MAGIC) - 1, pl = sizeof(STORE_MAGIC_PREFIX) - 1;
	if (n > ml && memcmp(p, STORE_MAGIC "\n", ml + 1) == 0) {
		*hdr_len = ml + 1;
		return 0;
	}
	if (n >= pl && memcmp(p, STORE_MAGIC_PREFIX, pl) == 0)
		err->what = "unsupported format version";
	else
		err->what = "no espatd-store header, not a settings file";
	return -EINVAL;
}

static int parse_body(struct store *s, const uint8_t *p, size_t n, struct load_err *err)
{
	uint8_t *scratch = malloc(STORE_VALUE_MAX);
	if (!scratch)
		return -ENOMEM;
	size_t off = 0, line = 2;
	int rc = 0;
	while (off < n && rc == 0) {
		const uint8_t *nl = memchr(p + off, '\n', n - off);
		if (!nl) { /* check_crc() guarantees a final '\n'; belt and braces */
			err->what = "malformed entry";
			rc = -EINVAL;
			break;
		}
		size_t len = (size_t)(nl - (p + off));
		struct span sp = { (const char *)p + off, len };
		err->line = line++;
		rc = parse_line(s, sp, scratch, err);
		off += len + 1;
	}
	free(scratch);
	return rc;
}

/* Replaces the contents of s; on any error s is left empty. */
static int load_buffer(struct store *s, const uint8_t *p, size_t n, struct load_err *err)
{
	size_t hdr = 0, body = 0;
	int rc;
	entries_clear(s);
	s->dirty = false;
	err->line = 0;
	err->what = "out of memory";
	if (!p && n)
		return -EINVAL;
	rc = check_magic(p, n, &hdr, err);
	if (rc == 0)
		rc = check_crc(p, n, &body, err);
	/* the header line cannot double as the CRC line */
	if (rc == 0 && body < hdr) {
		err->what = "no checksum line, the file is truncated";
		rc = -EINVAL;
	}
	if (rc == 0)
		rc = parse_body(s, p + hdr, body - hdr, err);
	if (rc < 0)
		entries_clear(s);
	return rc;
}

int store_load_buffer(struct store *s, const uint8_t *p, size_t n)
{
	struct load_err err;
	return load_buffer(s, p, n, &err);
}

/* --------------------------------------------------------------- file I/O */

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO; /* would spin forever otherwise */
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads the whole file; a buffer of size 0 is returned as NULL. */
static int read_all(int fd, uint8_t **out, size_t *outlen)
{
	uint8_t *buf = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		if (n == cap) {
			if (cap >= STORE_FILE_MAX) {
				free(buf);
				return -EFBIG;
			}
			size_t ncap = cap ? cap * 2 : 65536;
			uint8_t *nb = realloc(buf, ncap);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
			cap = ncap;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = -errno;
			free(buf);
			return e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*out = buf;
	*outlen = n;
	return 0;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) < 0 && errno != EINVAL ? -errno : 0; /* EINVAL: fs can't */
	close(fd);
	return rc;
}

/* Moves a file we cannot use out of the way, keeping it for a person to
 * inspect rather than overwriting it at the next commit. */
static void set_aside(struct store *s, const char *what, size_t line)
{
	char where[64] = "";
	if (line)
		snprintf(where, sizeof(where), " at line %zu", line);
	size_t len = strlen(s->path) + 48;
	char *bad = malloc(len);
	if (!bad) {
		log_warn("store: settings file %s is unusable (%s%s) and could not be moved "
			 "aside (out of memory); starting with empty settings",
			 s->path, what, where);
		return;
	}
	long long now = (long long)time(NULL);
	struct stat st;
	snprintf(bad, len, "%s.bad-%lld", s->path, now);
	/* Several bad files within a second must not overwrite each other. */
	for (int k = 1; k < 100 && lstat(bad, &st) == 0; k++)
		snprintf(bad, len, "%s.bad-%lld-%d", s->path, now, k);
	if (rename(s->path, bad) == 0)
		log_warn("store: settings file %s is unusable (%s%s); moved it to %s and "
			 "starting with empty settings",
			 s->path, what, where, bad);
	else
		log_warn("store: settings file %s is unusable (%s%s) and could not be moved "
			 "aside (%s); starting with empty settings, the next save will replace it",
			 s->path, what, where, strerror(errno));
	free(bad);
}

/* Errors that say nothing about the file itself: fail the open instead of
 * discarding a possibly good file. */
static bool transient_errno(int e)
{
	return e == ENOMEM || e == EMFILE || e == ENFILE || e == EINTR;
}

static int load_file(struct store *s)
{
	/* O_NONBLOCK: a FIFO planted at the path must not hang the daemon */
	int fd = open(s->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno == ENOENT)
		return 0; /* first start: empty store */
	if (fd < 0 && transient_errno(errno))
		return -errno;
	if (fd < 0) {
		char what[128];
		snprintf(what, sizeof(what), "cannot open it: %s", strerror(errno));
		set_aside(s, what, 0);
		return 0;
	}
	struct stat st;
	uint8_t *buf = NULL;
	size_t n = 0;
	int rc = fstat(fd, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? read_all(fd, &buf, &n) : -EISDIR;
	close(fd);
	if (rc < 0 && transient_errno(-rc))
		return rc;
	if (rc < 0) {
		char what[128];
		snprintf(what, sizeof(what), "%s",
			 rc == -EISDIR ? "not a regular file"
			 : rc == -EFBIG ? "larger than any settings file could be"
					: strerror(-rc));
		set_aside(s, what, 0);
		return 0;
	}
	struct load_err err;
	rc = load_buffer(s, buf, n, &err);
	free(buf);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0)
		set_aside(s, err.what, err.line);
	return 0;
}

/* Keeps errno for the caller when p is not a directory. */
static bool is_dir(const char *p)
{
	int e = errno;
	struct stat st;
	bool ok = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
	errno = e;
	return ok;
}

/* mkdir -p with mode 0700: the store may hold Wi-Fi passwords. */
static int mkdir_p(const char *dir)
{
	char *p = strdup(dir);
	if (!p)
		return -ENOMEM;
	int rc = 0;
	for (char *c = p + 1; rc == 0; c++) {
		bool end = *c == 0;
		if (*c != '/' && !end)
			continue;
		*c = 0;
		if (mkdir(p, 0700) < 0 && errno != EEXIST && !is_dir(p))
			rc = -errno;
		if (end)
			break;
		*c = '/';
	}
	free(p);
	struct stat st;
	if (rc == 0 && stat(dir, &st) < 0)
		rc = -errno;
	if (rc == 0 && !S_ISDIR(st.st_mode))
		rc = -ENOTDIR;
	return rc;
}

/* "<dir>/<name>" without doubling a trailing slash, for tidy log lines. */
static char *join(const char *dir, const char *name)
{
	size_t dl = strlen(dir);
	const char *sep = dl && dir[dl - 1] == '/' ? "" : "/";
	size_t n = dl + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s%s%s", dir, sep, name);
	return p;
}

static int open_paths(struct store *s, const char *dir)
{
	if (dir[0] == 0)
		return -EINVAL;
	int rc = mkdir_p(dir);
	if (rc < 0) {
		log_error("store: cannot use state directory %s: %s", dir, strerror(-rc));
		return rc;
	}
	s->dir = strdup(dir);
	s->path = join(dir, STORE_FILE);
	s->tmp_path = join(dir, STORE_FILE ".tmp");
	if (!s->dir || !s->path || !s->tmp_path)
		return -ENOMEM;
	return load_file(s);
}

int store_open(struct store **out, const char *dir)
{
	struct store *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	int rc = dir ? open_paths(s, dir) : 0;
	if (rc < 0) {
		store_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	entries_clear(s);
	free(s->v);
	free(s->path);
	free(s->tmp_path);
	free(s->dir);
	free(s);
}

/* ----------------------------------------------------------------- commit */

/* Writes the temp file and renames it into place; *step names what failed. */
static int write_file(struct store *s, const struct sbuf *b, const char **step)
{
	*step = "creating " STORE_FILE ".tmp";
	int fd = open(s->tmp_path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	*step = "writing " STORE_FILE ".tmp";
	int rc = write_all(fd, b->p, b->n);
	if (rc == 0) {
		*step = "syncing " STORE_FILE ".tmp";
		rc = fsync(fd) < 0 ? -errno : 0;
	}
	/* close() can report a delayed write error (NFS); don't ignore it */
	if (close(fd) < 0 && rc == 0) {
		*step = "closing " STORE_FILE ".tmp";
		rc = -errno;
	}
	if (rc == 0 && rename(s->tmp_path, s->path) < 0) {
		*step = "renaming " STORE_FILE ".tmp over " STORE_FILE;
		rc = -errno;
	}
	if (rc < 0)
		unlink(s->tmp_path);
	return rc;
}

int store_commit(struct store *s)
{
	if (!s->dirty)
		return 0;
	if (!s->path) {
		s->dirty = false; /* RAM-only: the "save" trivially succeeds */
		return 0;
	}
	struct sbuf b = { 0 };
	const char *step = "formatting the file";
	int rc = serialize(s, &b);
	if (rc == 0)
		rc = write_file(s, &b, &step);
	free(b.p);
	/* After the rename the new file is visible; only durability is in doubt,
	 * so stay dirty and let the next commit sync again. */
	if (rc == 0) {
		step = "syncing the directory";
		rc = fsync_dir(s->dir);
	}
	if (rc < 0) {
		if (rc == s->fail_rc && s->fail_step && strcmp(step, s->fail_step) == 0) {
			log_debug("store: saving settings to %s still fails: %s failed: %s", s->path,
				  step, strerror(-rc));
			return rc;
		}
		log_error("store: could not save settings to %s: %s failed: %s; check that %s "
			  "is writable and the disk is not full (settings stay in memory, each "
			  "later change or command retries; logged again only if the error changes)",
			  s->path, step, strerror(-rc), s->dir);
		s->fail_rc = rc;
		s->fail_step = step;
		return rc;
	}
	if (s->fail_rc)
		log_info("store: settings saved to %s again", s->path);
	s->fail_rc = 0;
	s->fail_step = NULL;
	s->dirty = false;
	return 0;
}
