/* Unit tests for the persistent store (src/store/store.h, protocol.md §6):
 * the RAM API, the file format, corrupt-file handling, commit failures and a
 * SIGKILL-during-commit stress test run in a forked child. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

/* ---------------------------------------------------------------- helpers */

struct fx {
	char dir[64];
	char path[128];
	struct store *s;
};

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_store.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/store.nvs", f->dir);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	store_close(f->s);
	chmod(f->dir, 0700); /* in case a test made it read-only */
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void reopen(struct fx *f)
{
	store_close(f->s);
	f->s = NULL;
	assert_int_equal(store_open(&f->s, f->dir), 0);
}

/* Whole file into a NUL-terminated heap buffer; NULL if absent. */
static char *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return NULL;
	char *buf = NULL;
	size_t n = 0, cap = 0, r;
	do {
		if (cap - n < 4096) {
			cap = cap * 2 + 8192;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		r = fread(buf + n, 1, cap - n - 1, fp);
		n += r;
	} while (r > 0);
	fclose(fp);
	buf[n] = 0;
	if (len)
		*len = n;
	return buf;
}

static void spew(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

/* Number of store.nvs.bad-* files; the name of the last one in *name. */
static int count_bad(const char *dir, char *name, size_t size)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "store.nvs.bad-", 14) != 0)
			continue;
		n++;
		if (name)
			snprintf(name, size, "%s/%s", dir, de->d_name);
	}
	closedir(d);
	return n;
}

static void remove_bad(const char *dir)
{
	char name[512];
	while (count_bad(dir, name, sizeof(name)) > 0)
		assert_int_equal(unlink(name), 0);
}

static int count_cb(void *arg, const char *key, enum store_type t)
{
	(void)key;
	(void)t;
	(*(int *)arg)++;
	return 0;
}

static int count_ns(struct store *s, const char *ns)
{
	int n = 0;
	assert_int_equal(store_foreach(s, ns, count_cb, &n), 0);
	return n;
}

/* Independent CRC-32 so the tests don't trust the code under test. */
static uint32_t t_crc32(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < n; i++) {
		c ^= b[i];
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0xedb88320u : c >> 1;
	}
	return ~c;
}

/* body + a correct "crc32" line, loaded with store_load_buffer. */
static int load_with_crc(struct store *s, const char *body)
{
	size_t n = strlen(body);
	char *buf = malloc(n + 32);
	assert_non_null(buf);
	memcpy(buf, body, n);
	n += (size_t)sprintf(buf + n, "crc32 %08x\n", t_crc32(body, n));
	int rc = store_load_buffer(s, (const uint8_t *)buf, n);
	free(buf);
	return rc;
}

/* A small committed store, its file returned in *img. */
static void make_small_file(struct fx *f, char **img, size_t *len)
{
	assert_int_equal(store_open(&f->s, f->dir), 0);
	assert_int_equal(store_set_str(f->s, "wifi", "ssid", "home net"), 0);
	assert_int_equal(store_set_int(f->s, "wifi", "mode", 1), 0);
	assert_int_equal(store_set_blob(f->s, "net", "mac", "\x18\xfe\x34\x00", 4), 0);
	assert_int_equal(store_commit(f->s), 0);
	store_close(f->s);
	f->s = NULL;
	*img = slurp(f->path, len);
	assert_non_null(*img);
}

/* Opens over a damaged file: must come up empty with the file set aside. */
static void expect_set_aside(struct fx *f, const void *content, size_t n)
{
	remove_bad(f->dir);
	spew(f->path, content, n);
	assert_int_equal(store_open(&f->s, f->dir), 0);
	assert_int_equal(count_ns(f->s, "wifi"), 0);
	assert_int_equal(count_ns(f->s, "net"), 0);
	assert_false(store_dirty(f->s));
	store_close(f->s);
	f->s = NULL;

	char bad[512];
	assert_int_equal(count_bad(f->dir, bad, sizeof(bad)), 1);
	assert_int_equal(access(f->path, F_OK), -1); /* moved, not copied */
	size_t blen;
	char *moved = slurp(bad, &blen);
	assert_non_null(moved);
	assert_int_equal(blen, n);
	assert_memory_equal(moved, content, n);
	free(moved);
}

/* --------------------------------------------------------------- RAM API */

static void test_set_get_types(void **state)
{
	(void)state;
	struct store *s;
	assert_int_equal(store_open(&s, NULL), 0);
	assert_null(store_path(s));

	int64_t v;
	assert_int_equal(store_set_int(s, "ns", "i", INT64_MIN), 0);
	assert_int_equal(store_get_int(s, "ns", "i", &v), 0);
	assert_true(v == INT64_MIN);
	assert_int_equal(store_set_int(s, "ns", "i2", INT64_MAX), 0);
	assert_int_equal(store_get_int(s, "ns", "i2", &v), 0);
	assert_true(v == INT64_MAX);

	char buf[64];
	assert_int_equal(store_set_str(s, "ns", "s", "hello world"), 0);
	assert_int_equal(store_get_str(s, "ns", "s", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "hello world");
	assert_int_equal(store_set_str(s, "ns", "empty", ""), 0);
	assert_int_equal(store_get_str(s, "ns", "empty", buf, 1), 0);
	assert_string_equal(buf, "");

	uint8_t blob[4] = { 0, 1, 0xfe, 0xff }, out[8];
	size_t len = 99;
	assert_int_equal(store_set_blob(s, "ns", "b", blob, 4), 0);
	assert_int_equal(store_get_blob(s, "ns", "b", out, sizeof(out), &len), 0);
	assert_int_equal(len, 4);
	assert_memory_equal(out, blob, 4);
	assert_int_equal(store_set_blob(s, "ns", "b0", NULL, 0), 0);
	assert_int_equal(store_get_blob(s, "ns", "b0", NULL, 0, &len), 0);
	assert_int_equal(len, 0);

	assert_int_equal(store_get_int(s, "ns", "nope", &v), -ENOENT);
	assert_int_equal(store_get_int(s, "other", "i", &v), -ENOENT);
	store_close(s);
}

static void test_overwrite_and_type_change(void **state)
{
	(void)state;
	struct store *s;
	char buf[16];
	int64_t v;
	assert_int_equal(store_open(&s, NULL), 0);
	assert_int_equal(store_set_str(s, "a", "k", "one"), 0);
	assert_int_equal(store_set_str(s, "a", "k", "three"), 0);
	assert_int_equal(store_get_str(s, "a", "k", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "three");
	/* a key holds one value: setting another type replaces it */
	assert_int_equal(store_set_int(s, "a", "k", 7), 0);
	assert_int_equal(store_get_int(s, "a", "k", &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(store_get_str(s, "a", "k", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(count_ns(s, "a"), 1);
	store_close(s);
}

static void test_type_mismatch(void **state)
{
	(void)state;
	struct store *s;
	char buf[16];
	int64_t v;
	size_t len;
	assert_int_equal(store_open(&s, NULL), 0);
	assert_int_equal(store_set_int(s, "a", "i", 1), 0);
	assert_int_equal(store_set_str(s, "a", "s", "x"), 0);
	assert_int_equal(store_set_blob(s, "a", "b", "x", 1), 0);
	assert_int_equal(store_get_str(s, "a", "i", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(store_get_blob(s, "a", "i", buf, sizeof(buf), &len), -EINVAL);
	assert_int_equal(store_get_int(s, "a", "s", &v), -EINVAL);
	assert_int_equal(store_get_blob(s, "a", "s", buf, sizeof(buf), &len), -EINVAL);
	assert_int_equal(store_get_int(s, "a", "b", &v), -EINVAL);
	assert_int_equal(store_get_str(s, "a", "b", buf, sizeof(buf)), -EINVAL);
	store_close(s);
}

static void test_enospc(void **state)
{
	(void)state;
	struct store *s;
	char buf[8];
	uint8_t out[3];
	size_t len = 0;
	assert_int_equal(store_open(&s, NULL), 0);
	assert_int_equal(store_set_str(s, "a", "s", "1234567"), 0); /* fits exactly in 8 */
	assert_int_equal(store_get_str(s, "a", "s", buf, 8), 0);
	assert_string_equal(buf, "1234567");
	assert_int_equal(store_get_str(s, "a", "s", buf, 7), -ENOSPC); /* no room for NUL */
	assert_string_equal(buf, "");
	assert_int_equal(store_get_str(s, "a", "s", NULL, 0), -ENOSPC);

	assert_int_equal(store_set_blob(s, "a", "b", "abcd", 4), 0);
	assert_int_equal(store_get_blob(s, "a", "b", out, sizeof(out), &len), -ENOSPC);
	assert_int_equal(len, 4); /* tells the caller how much to allocate */
	store_close(s);
}

static void test_names_and_limits(void **state)
{
	(void)state;
	struct store *s;
	assert_int_equal(store_open(&s, NULL), 0);
	char name32[33], name33[34];
	memset(name32, 'k', 32);
	name32[32] = 0;
	memset(name33, 'k', 33);
	name33[33] = 0;
	assert_int_equal(store_set_int(s, "A-z_0.9", name32, 1), 0);
	assert_int_equal(store_set_int(s, "ns", name33, 1), -EINVAL);
	assert_int_equal(store_set_int(s, name33, "k", 1), -EINVAL);
	assert_int_equal(store_set_int(s, "", "k", 1), -EINVAL);
	assert_int_equal(store_set_int(s, "ns", "", 1), -EINVAL);
	assert_int_equal(store_set_int(s, "n s", "k", 1), -EINVAL);
	assert_int_equal(store_set_int(s, "ns", "k\n", 1), -EINVAL);
	assert_int_equal(store_set_int(s, "ns", "k/", 1), -EINVAL);
	assert_int_equal(store_set_int(s, NULL, "k", 1), -EINVAL);
	assert_int_equal(store_set_str(s, "ns", "k", NULL), -EINVAL);

	char *big = malloc(STORE_VALUE_MAX + 2);
	assert_non_null(big);
	memset(big, 'v', STORE_VALUE_MAX + 1);
	big[STORE_VALUE_MAX + 1] = 0;
	assert_int_equal(store_set_str(s, "ns", "big", big), -EINVAL);
	assert_int_equal(store_set_blob(s, "ns", "big", big, STORE_VALUE_MAX + 1), -EINVAL);
	assert_int_equal(count_ns(s, "ns"), 0);
	big[STORE_VALUE_MAX] = 0;
	assert_int_equal(store_set_str(s, "ns", "big", big), 0);
	assert_int_equal(store_set_blob(s, "ns", "bigb", big, STORE_VALUE_MAX), 0);
	free(big);
	store_close(s);
}

static void test_erase(void **state)
{
	(void)state;
	struct store *s;
	int64_t v;
	assert_int_equal(store_open(&s, NULL), 0);
	assert_int_equal(store_set_int(s, "a", "1", 1), 0);
	assert_int_equal(store_set_int(s, "a", "2", 2), 0);
	assert_int_equal(store_set_int(s, "b", "1", 3), 0);
	assert_int_equal(store_set_int(s, "b", "2", 4), 0);
	assert_int_equal(store_set_int(s, "c", "1", 5), 0);

	assert_int_equal(store_erase_key(s, "a", "1"), 0);
	assert_int_equal(store_get_int(s, "a", "1", &v), -ENOENT);
	assert_int_equal(store_erase_key(s, "a", "1"), -ENOENT);
	assert_int_equal(store_get_int(s, "a", "2", &v), 0);

	assert_int_equal(store_erase_ns(s, "b"), 0);
	assert_int_equal(count_ns(s, "b"), 0);
	assert_int_equal(count_ns(s, "a"), 1);
	assert_int_equal(count_ns(s, "c"), 1);
	assert_int_equal(store_erase_ns(s, "zzz"), 0);

	assert_int_equal(store_erase_all(s), 0);
	assert_int_equal(count_ns(s, "a") + count_ns(s, "c"), 0);
	store_close(s);
}

struct walk {
	char keys[16][STORE_NAME_MAX + 1];
	enum store_type types[16];
	int n, stop_at;
	struct store *erase_from;
};

static int walk_cb(void *arg, const char *key, enum store_type t)
{
	struct walk *w = arg;
	snprintf(w->keys[w->n], sizeof(w->keys[0]), "%s", key);
	w->types[w->n++] = t;
	if (w->erase_from) /* erasing the current key must not derail the walk */
		assert_int_equal(store_erase_key(w->erase_from, "m", key), 0);
	return w->n == w->stop_at ? 42 : 0;
}

static void test_foreach_order(void **state)
{
	(void)state;
	struct store *s;
	assert_int_equal(store_open(&s, NULL), 0);
	const char *keys[] = { "zeta", "alpha", "Mid", "beta", "_x", "1" };
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(store_set_int(s, "m", keys[i], (int64_t)i), 0);
	assert_int_equal(store_set_str(s, "l", "before", "x"), 0);
	assert_int_equal(store_set_blob(s, "n", "after", "x", 1), 0);
	assert_int_equal(store_set_str(s, "m", "str", "x"), 0);

	struct walk w = { .stop_at = -1 };
	assert_int_equal(store_foreach(s, "m", walk_cb, &w), 0);
	assert_int_equal(w.n, 7);
	const char *want[] = { "1", "Mid", "_x", "alpha", "beta", "str", "zeta" }; /* byte order */
	for (int i = 0; i < 7; i++)
		assert_string_equal(w.keys[i], want[i]);
	assert_int_equal(w.types[0], STORE_INT);
	assert_int_equal(w.types[5], STORE_STR);

	struct walk stop = { .stop_at = 3 };
	assert_int_equal(store_foreach(s, "m", walk_cb, &stop), 42);
	assert_int_equal(stop.n, 3);

	struct walk er = { .stop_at = -1, .erase_from = s };
	assert_int_equal(store_foreach(s, "m", walk_cb, &er), 0);
	assert_int_equal(er.n, 7);
	assert_int_equal(count_ns(s, "m"), 0);
	assert_int_equal(count_ns(s, "l"), 1);
	assert_int_equal(count_ns(s, "n"), 1);
	assert_int_equal(count_ns(s, "nothing"), 0);
	store_close(s);
}

static void test_dirty_tracking(void **state)
{
	struct fx *f = *state;
	assert_int_equal(store_open(&f->s, f->dir), 0);
	assert_false(store_dirty(f->s));
	assert_int_equal(store_commit(f->s), 0);
	assert_int_equal(access(f->path, F_OK), -1); /* nothing to write yet */

	assert_int_equal(store_set_int(f->s, "a", "i", 5), 0);
	assert_int_equal(store_set_str(f->s, "a", "s", "x"), 0);
	assert_int_equal(store_set_blob(f->s, "a", "b", "yz", 2), 0);
	assert_true(store_dirty(f->s));
	assert_int_equal(store_commit(f->s), 0);
	assert_false(store_dirty(f->s));

	/* protocol.md §6.1: rewriting the same value is not a change */
	assert_int_equal(store_set_int(f->s, "a", "i", 5), 0);
	assert_int_equal(store_set_str(f->s, "a", "s", "x"), 0);
	assert_int_equal(store_set_blob(f->s, "a", "b", "yz", 2), 0);
	assert_int_equal(store_erase_key(f->s, "a", "none"), -ENOENT);
	assert_int_equal(store_erase_ns(f->s, "none"), 0);
	assert_int_equal(store_set_int(f->s, "a", "", 1), -EINVAL);
	assert_false(store_dirty(f->s));

	/* a clean commit must not touch the file */
	struct stat st1, st2;
	assert_int_equal(stat(f->path, &st1), 0);
	assert_int_equal(store_commit(f->s), 0);
	assert_int_equal(stat(f->path, &st2), 0);
	assert_true(st1.st_ino == st2.st_ino);

	assert_int_equal(store_set_int(f->s, "a", "i", 6), 0);
	assert_true(store_dirty(f->s));
	assert_int_equal(store_commit(f->s), 0);
	assert_int_equal(store_set_int(f->s, "a", "s", 0), 0); /* type change */
	assert_true(store_dirty(f->s));
	assert_int_equal(store_commit(f->s), 0);
	assert_int_equal(store_erase_ns(f->s, "a"), 0);
	assert_true(store_dirty(f->s));
	assert_int_equal(store_commit(f->s), 0);
	assert_int_equal(store_erase_all(f->s), 0);
	assert_false(store_dirty(f->s)); /* already empty */
}

static void test_ram_only(void **state)
{
	(void)state;
	struct store *s;
	assert_int_equal(store_open(&s, NULL), 0);
	assert_int_equal(store_set_int(s, "a", "b", 1), 0);
	assert_true(store_dirty(s));
	assert_int_equal(store_commit(s), 0);
	assert_false(store_dirty(s));
	store_close(s);
	store_close(NULL);
}

/* ------------------------------------------------------------ persistence */

static void test_persistence(void **state)
{
	struct fx *f = *state;
	uint8_t all[256];
	char str[256];
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	for (int i = 1; i < 256; i++)
		str[i - 1] = (char)i; /* every byte a C string can hold */
	str[255] = 0;

	char *big = malloc(STORE_VALUE_MAX + 1);
	assert_non_null(big);
	for (int i = 0; i < STORE_VALUE_MAX; i++)
		big[i] = (char)(1 + i % 255);
	big[STORE_VALUE_MAX] = 0;

	assert_int_equal(store_open(&f->s, f->dir), 0);
	assert_string_equal(store_path(f->s), f->path);
	assert_int_equal(store_set_blob(f->s, "bin", "all", all, sizeof(all)), 0);
	assert_int_equal(store_set_blob(f->s, "bin", "empty", NULL, 0), 0);
	assert_int_equal(store_set_blob(f->s, "bin", "big", big, STORE_VALUE_MAX), 0);
	assert_int_equal(store_set_str(f->s, "txt", "all", str), 0);
	assert_int_equal(store_set_str(f->s, "txt", "tricky", " a \"b\" \\n\n\r\t \\x41 "), 0);
	assert_int_equal(store_set_str(f->s, "txt", "empty", ""), 0);
	assert_int_equal(store_set_str(f->s, "txt", "big", big), 0);
	assert_int_equal(store_set_int(f->s, "int", "min", INT64_MIN), 0);
	assert_int_equal(store_set_int(f->s, "int", "max", INT64_MAX), 0);
	assert_int_equal(store_set_int(f->s, "int", "zero", 0), 0);
	assert_int_equal(store_set_int(f->s, "int", "neg", -1), 0);
	assert_int_equal(store_commit(f->s), 0);
	reopen(f);
	assert_false(store_dirty(f->s));

	uint8_t *out = malloc(STORE_VALUE_MAX + 1);
	assert_non_null(out);
	size_t len;
	assert_int_equal(store_get_blob(f->s, "bin", "all", out, 256, &len), 0);
	assert_int_equal(len, 256);
	assert_memory_equal(out, all, 256);
	assert_int_equal(store_get_blob(f->s, "bin", "empty", out, 0, &len), 0);
	assert_int_equal(len, 0);
	assert_int_equal(store_get_blob(f->s, "bin", "big", out, STORE_VALUE_MAX, &len), 0);
	assert_int_equal(len, STORE_VALUE_MAX);
	assert_memory_equal(out, big, STORE_VALUE_MAX);

	char *sout = (char *)out;
	assert_int_equal(store_get_str(f->s, "txt", "all", sout, 256), 0);
	assert_string_equal(sout, str);
	assert_int_equal(store_get_str(f->s, "txt", "tricky", sout, 256), 0);
	assert_string_equal(sout, " a \"b\" \\n\n\r\t \\x41 ");
	assert_int_equal(store_get_str(f->s, "txt", "empty", sout, 1), 0);
	assert_string_equal(sout, "");
	assert_int_equal(store_get_str(f->s, "txt", "big", sout, STORE_VALUE_MAX + 1), 0);
	assert_string_equal(sout, big);

	int64_t v;
	assert_int_equal(store_get_int(f->s, "int", "min", &v), 0);
	assert_true(v == INT64_MIN);
	assert_int_equal(store_get_int(f->s, "int", "max", &v), 0);
	assert_true(v == INT64_MAX);
	assert_int_equal(store_get_int(f->s, "int", "zero", &v), 0);
	assert_true(v == 0);
	assert_int_equal(store_get_int(f->s, "int", "neg", &v), 0);
	assert_true(v == -1);
	free(out);
	free(big);

	/* human-inspectable: only printable ASCII and newlines in the file */
	size_t n;
	char *img = slurp(f->path, &n);
	assert_non_null(img);
	for (size_t i = 0; i < n; i++)
		assert_true(img[i] == '\n' || (img[i] >= 0x20 && img[i] < 0x7f));
	free(img);

	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(f->dir, &st), 0);
	assert_int_equal(access(f->path, F_OK), 0);
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(count_bad(f->dir, NULL, 0), 0);
}

/* Pins the on-disk format: changing it must be a deliberate version bump. */
static void test_file_format(void **state)
{
	struct fx *f = *state;
	assert_int_equal(store_open(&f->s, f->dir), 0);
	assert_int_equal(store_set_str(f->s, "wifi", "ssid", "my \"net\"\n\\"), 0);
	assert_int_equal(store_set_int(f->s, "wifi", "chan", -5), 0);
	assert_int_equal(store_set_blob(f->s, "net", "mac", "\x01\xab", 2), 0);
	assert_int_equal(store_set_blob(f->s, "net", "empty", NULL, 0), 0);
	assert_int_equal(store_commit(f->s), 0);
	char *img = slurp(f->path, NULL);
	assert_non_null(img);
	assert_string_equal(img, "espatd-store 1\n"
				 "net empty b -\n"
				 "net mac b 01ab\n"
				 "wifi chan i -5\n"
				 "wifi ssid s \"my \\\"net\\\"\\x0a\\\\\"\n"
				 "crc32 ade6e6df\n");
	free(img);

	/* same contents, other insertion order: byte-identical file */
	char other[128];
	snprintf(other, sizeof(other), "%s/other", f->dir);
	struct store *s2;
	assert_int_equal(store_open(&s2, other), 0);
	assert_int_equal(store_set_blob(s2, "net", "empty", NULL, 0), 0);
	assert_int_equal(store_set_int(s2, "wifi", "chan", -5), 0);
	assert_int_equal(store_set_str(s2, "wifi", "ssid", "my \"net\"\n\\"), 0);
	assert_int_equal(store_set_blob(s2, "net", "mac", "\x01\xab", 2), 0);
	assert_int_equal(store_commit(s2), 0);
	char p2[160];
	snprintf(p2, sizeof(p2), "%s/store.nvs", other);
	char *a = slurp(f->path, NULL), *b = slurp(p2, NULL);
	assert_string_equal(a, b);
	free(a);
	free(b);
	store_close(s2);

	/* an empty store is still a valid file (after erasing everything) */
	assert_int_equal(store_erase_all(f->s), 0);
	assert_int_equal(store_commit(f->s), 0);
	img = slurp(f->path, NULL);
	assert_string_equal(img, "espatd-store 1\ncrc32 8e5b116b\n");
	free(img);
	reopen(f);
	assert_int_equal(count_ns(f->s, "wifi"), 0);
	assert_int_equal(count_bad(f->dir, NULL, 0), 0);
}

static void test_open_dir_handling(void **state)
{
	struct fx *f = *state;
	char deep[160];
	snprintf(deep, sizeof(deep), "%s/a/b/c/", f->dir);
	assert_int_equal(store_open(&f->s, deep), 0);
	struct stat st;
	assert_int_equal(stat(deep, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(store_set_int(f->s, "a", "b", 1), 0);
	assert_int_equal(store_commit(f->s), 0);
	store_close(f->s);
	f->s = NULL;

	/* a file where the directory should be */
	char file[160];
	snprintf(file, sizeof(file), "%s/plain", f->dir);
	spew(file, "x", 1);
	struct store *s = NULL;
	assert_int_equal(store_open(&s, file), -ENOTDIR);
	snprintf(file, sizeof(file), "%s/plain/sub", f->dir);
	assert_true(store_open(&s, file) < 0);
	assert_true(store_open(&s, "/proc/espatd-store-test") < 0);
	assert_null(s);
	assert_int_equal(store_open(&s, ""), -EINVAL);
}

/* A temp file left by a killed commit must neither be loaded nor block. */
static void test_stale_tmp_ignored(void **state)
{
	struct fx *f = *state;
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
	spew(tmp, "espatd-store 1\nhalf", 19);
	assert_int_equal(store_open(&f->s, f->dir), 0);
	assert_int_equal(count_ns(f->s, "a"), 0);
	assert_int_equal(count_bad(f->dir, NULL, 0), 0);
	assert_int_equal(store_set_int(f->s, "a", "b", 1), 0);
	assert_int_equal(store_commit(f->s), 0);
	assert_int_equal(access(tmp, F_OK), -1);
	reopen(f);
	assert_int_equal(count_ns(f->s, "a"), 1);
}

/* ---------------------------------------------------------- corrupt files */

static void test_corrupt_flip_every_byte(void **state)
{
	struct fx *f = *state;
	char *img;
	size_t n;
	make_small_file(f, &img, &n);
	for (size_t i = 0; i < n; i++) {
		img[i] ^= 0x01;
		expect_set_aside(f, img, n);
		img[i] ^= 0x01;
	}
	/* the pristine image still loads */
	remove_bad(f->dir);
	spew(f->path, img, n);
	assert_int_equal(store_open(&f->s, f->dir), 0);
	assert_int_equal(count_ns(f->s, "wifi"), 2);
	assert_int_equal(count_bad(f->dir, NULL, 0), 0);
	free(img);
}

static void test_corrupt_truncate(void **state)
{
	struct fx *f = *state;
	char *img;
	size_t n;
	make_small_file(f, &img, &n);
	for (size_t len = 0; len < n; len++)
		expect_set_aside(f, img, len);
	free(img);
}

static void test_corrupt_misc(void **state)
{
	struct fx *f = *state;
	const char foreign[] = "[wifi]\nssid=home\n";
	expect_set_aside(f, foreign, sizeof(foreign) - 1);
	expect_set_aside(f, "", 0);
	const char future[] = "espatd-store 2\ncrc32 00000000\n";
	expect_set_aside(f, future, sizeof(future) - 1);

	/* a hand-edited file with a recomputed CRC but a broken entry */
	static const char dup[] = "espatd-store 1\nwifi mode i 1\nwifi mode i 2\n";
	char edited[128];
	int elen = snprintf(edited, sizeof(edited), "%scrc32 %08x\n", dup,
			    t_crc32(dup, sizeof(dup) - 1));
	expect_set_aside(f, edited, (size_t)elen);

	/* appending anything after the CRC line is damage too */
	char *img;
	size_t n;
	make_small_file(f, &img, &n);
	img = realloc(img, n + 2);
	memcpy(img + n, "x\n", 2);
	expect_set_aside(f, img, n + 2);
	free(img);

	/* random garbage, with and without a plausible header */
	unsigned seed = 12345;
	uint8_t buf[600];
	for (int round = 0; round < 50; round++) {
		size_t len = (size_t)(rand_r(&seed) % (int)sizeof(buf));
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)rand_r(&seed);
		if (round % 2 && len > 15)
			memcpy(buf, "espatd-store 1\n", 15);
		expect_set_aside(f, buf, len);
	}
}

static void test_corrupt_not_a_file(void **state)
{
	struct fx *f = *state;
	assert_int_equal(mkdir(f->path, 0700), 0);
	assert_int_equal(store_open(&f->s, f->dir), 0);
	assert_int_equal(count_ns(f->s, "a"), 0);
	char bad[512];
	assert_int_equal(count_bad(f->dir, bad, sizeof(bad)), 1);
	struct stat st;
	assert_int_equal(stat(bad, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	/* the path is free again, so saving works */
	assert_int_equal(store_set_int(f->s, "a", "b", 1), 0);
	assert_int_equal(store_commit(f->s), 0);
	rmdir(bad);
}

/* Files set aside within the same second must not overwrite each other. */
static void test_corrupt_twice_keeps_both(void **state)
{
	struct fx *f = *state;
	spew(f->path, "one", 3);
	assert_int_equal(store_open(&f->s, f->dir), 0);
	store_close(f->s);
	spew(f->path, "two", 3);
	assert_int_equal(store_open(&f->s, f->dir), 0);
	assert_int_equal(count_bad(f->dir, NULL, 0), 2);
}

/* Each case: a CRC-valid body that must still be refused. */
static void test_load_buffer_rejects(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"espatd-store 1\na b i 1\na b i 2\n",           /* duplicate key */
		"espatd-store 1\na b x 1\n",                     /* unknown type */
		"espatd-store 1\na b ii 1\n",                    /* type too long */
		"espatd-store 1\na b i\n",                       /* no value */
		"espatd-store 1\na b i \n",                      /* empty int */
		"espatd-store 1\na b i +1\n",                    /* not canonical */
		"espatd-store 1\na b i 01\n",                    /* leading zero */
		"espatd-store 1\na b i -0\n",                    /* negative zero */
		"espatd-store 1\na b i 1 \n",                    /* trailing space */
		"espatd-store 1\na b i 9223372036854775808\n",   /* overflow */
		"espatd-store 1\na b i -9223372036854775809\n",  /* underflow */
		"espatd-store 1\na b i 99999999999999999999\n",  /* 20 digits */
		"espatd-store 1\na b s abc\n",                   /* unquoted */
		"espatd-store 1\na b s \"abc\n",                 /* unterminated */
		"espatd-store 1\na b s \"\n",                    /* lone quote */
		"espatd-store 1\na b s \"a\"b\"\n",              /* raw quote */
		"espatd-store 1\na b s \"a\\\"\n",               /* escaped close */
		"espatd-store 1\na b s \"\\x00\"\n",             /* NUL in a string */
		"espatd-store 1\na b s \"\\x4\"\n",              /* short escape */
		"espatd-store 1\na b s \"\\n\"\n",               /* unknown escape */
		"espatd-store 1\na b s \"\t\"\n",                /* raw control char */
		"espatd-store 1\na b s \"\r\"\n",                /* CR line ending */
		"espatd-store 1\na b b 0\n",                     /* odd hex */
		"espatd-store 1\na b b 0g\n",                    /* not hex */
		"espatd-store 1\na b b \n",                      /* empty blob not "-" */
		"espatd-store 1\na  b i 1\n",                    /* empty name */
		"espatd-store 1\na/x b i 1\n",                   /* bad name char */
		"espatd-store 1\n"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa b i 1\n",     /* 33-char name */
		"espatd-store 1\n\n",                            /* empty line */
		"espatd-store 1\na b i 1",                       /* no newline */
		"espatd-store 1 \n",                             /* header junk */
		"espatd-store 10\n",                             /* other version */
		"Espatd-store 1\n",                              /* wrong magic */
		"espatd-store 1",                                /* header w/o \n */
		"",                                              /* nothing */
	};
	struct store *s;
	assert_int_equal(store_open(&s, NULL), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(store_set_int(s, "keep", "k", 1), 0);
		int rc = load_with_crc(s, bad[i]);
		if (rc != -EINVAL)
			print_error("case %zu accepted: %s\n", i, bad[i]);
		assert_int_equal(rc, -EINVAL);
		assert_int_equal(count_ns(s, "a"), 0); /* left empty */
		assert_int_equal(count_ns(s, "keep"), 0);
		assert_false(store_dirty(s));
	}

	/* over-long values, built at run time */
	size_t cap = 4 * STORE_VALUE_MAX + 64;
	char *body = malloc(cap);
	assert_non_null(body);
	int off = sprintf(body, "espatd-store 1\na b b ");
	for (int i = 0; i <= STORE_VALUE_MAX; i++)
		off += sprintf(body + off, "00");
	sprintf(body + off, "\n");
	assert_int_equal(load_with_crc(s, body), -EINVAL);
	off = sprintf(body, "espatd-store 1\na b s \"");
	memset(body + off, 'x', STORE_VALUE_MAX + 1);
	sprintf(body + off + STORE_VALUE_MAX + 1, "\"\n");
	assert_int_equal(load_with_crc(s, body), -EINVAL);
	/* ... and exactly at the limit they load */
	sprintf(body + off + STORE_VALUE_MAX, "\"\n");
	assert_int_equal(load_with_crc(s, body), 0);
	free(body);

	/* raw buffers, no CRC help */
	assert_int_equal(store_load_buffer(s, NULL, 0), -EINVAL);
	assert_int_equal(store_load_buffer(s, (const uint8_t *)"x", 1), -EINVAL);
	static const char upper[] = "espatd-store 1\ncrc32 8E5B116B\n";
	assert_int_equal(store_load_buffer(s, (const uint8_t *)upper, sizeof(upper) - 1), -EINVAL);
	store_close(s);
}

static void test_load_buffer_accepts(void **state)
{
	(void)state;
	struct store *s;
	int64_t v;
	char buf[32];
	size_t len;
	assert_int_equal(store_open(&s, NULL), 0);
	assert_int_equal(store_set_int(s, "old", "k", 1), 0);
	/* unsorted input is tolerated (sorted on load); escapes in any case */
	assert_int_equal(load_with_crc(s, "espatd-store 1\n"
					  "z k i -9223372036854775808\n"
					  "a k s \"sp ace\\x0A\\\\\"\n"
					  "a j b -\n"
					  "a i b 00fF\n"),
			 0);
	assert_false(store_dirty(s));
	assert_int_equal(store_get_int(s, "old", "k", &v), -ENOENT); /* replaced */
	assert_int_equal(store_get_int(s, "z", "k", &v), 0);
	assert_true(v == INT64_MIN);
	assert_int_equal(store_get_str(s, "a", "k", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "sp ace\n\\");
	assert_int_equal(store_get_blob(s, "a", "j", buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 0);
	assert_int_equal(store_get_blob(s, "a", "i", buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 2);
	assert_memory_equal(buf, "\x00\xff", 2);
	struct walk w = { .stop_at = -1 };
	assert_int_equal(store_foreach(s, "a", walk_cb, &w), 0);
	assert_int_equal(w.n, 3);
	assert_string_equal(w.keys[0], "i");
	assert_string_equal(w.keys[2], "k");
	store_close(s);
}

/* ---------------------------------------------------------- commit errors */

static void check_failed_commit_keeps_ram(struct fx *f, int64_t want)
{
	int64_t v;
	int rc = store_commit(f->s);
	assert_true(rc < 0);
	assert_true(store_dirty(f->s));
	assert_int_equal(store_get_int(f->s, "a", "v", &v), 0);
	assert_true(v == want);
}

static void test_commit_failure(void **state)
{
	struct fx *f = *state;
	int64_t v;
	assert_int_equal(store_open(&f->s, f->dir), 0);
	assert_int_equal(store_set_int(f->s, "a", "v", 1), 0);
	assert_int_equal(store_commit(f->s), 0);
	assert_int_equal(store_set_int(f->s, "a", "v", 2), 0);

	/* Root ignores permissions, so block the temp file's name instead. */
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
	assert_int_equal(mkdir(tmp, 0700), 0);
	assert_int_equal(store_commit(f->s), -EISDIR);
	check_failed_commit_keeps_ram(f, 2);
	assert_int_equal(rmdir(tmp), 0);

	if (geteuid() != 0) {
		assert_int_equal(chmod(f->dir, 0500), 0);
		check_failed_commit_keeps_ram(f, 2);
		assert_int_equal(chmod(f->dir, 0700), 0);
	}

	/* the old file is intact: a fresh open sees the last good commit */
	struct store *s2;
	assert_int_equal(store_open(&s2, f->dir), 0);
	assert_int_equal(store_get_int(s2, "a", "v", &v), 0);
	assert_int_equal(v, 1);
	store_close(s2);

	/* once the obstacle is gone the retry succeeds */
	assert_int_equal(store_commit(f->s), 0);
	assert_false(store_dirty(f->s));
	reopen(f);
	assert_int_equal(store_get_int(f->s, "a", "v", &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(count_bad(f->dir, NULL, 0), 0);
}

/* A directory that vanished after open: commit fails cleanly. */
static void test_commit_dir_removed(void **state)
{
	struct fx *f = *state;
	char sub[160];
	snprintf(sub, sizeof(sub), "%s/gone", f->dir);
	assert_int_equal(store_open(&f->s, sub), 0);
	assert_int_equal(store_set_str(f->s, "a", "s", "kept"), 0);
	assert_int_equal(rmdir(sub), 0);
	assert_int_equal(store_commit(f->s), -ENOENT);
	assert_true(store_dirty(f->s));
	char buf[8];
	assert_int_equal(store_get_str(f->s, "a", "s", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "kept");
}

/* ------------------------------------------------------- kill during write */

#define KILL_KEYS 200
#define KILL_ROUNDS 200

static void set_state(struct store *s, char c)
{
	char key[16], val[33];
	memset(val, c, 32);
	val[32] = 0;
	for (int i = 0; i < KILL_KEYS; i++) {
		snprintf(key, sizeof(key), "k%03d", i);
		if (store_set_str(s, "kill", key, val) < 0)
			_exit(2);
	}
}

/* Returns 'A' or 'B' if the store holds exactly that state, 0 otherwise. */
static char which_state(struct store *s)
{
	char key[16], val[64], first = 0;
	if (count_ns(s, "kill") != KILL_KEYS)
		return 0;
	for (int i = 0; i < KILL_KEYS; i++) {
		snprintf(key, sizeof(key), "k%03d", i);
		if (store_get_str(s, "kill", key, val, sizeof(val)) < 0 || strlen(val) != 32)
			return 0;
		if (!first)
			first = val[0];
		for (int j = 0; j < 32; j++)
			if (val[j] != first)
				return 0;
	}
	return first == 'A' || first == 'B' ? first : 0;
}

/* The child never returns: it commits A, B, A, ... until killed. */
static void noreturn_committer(const char *dir)
{
	struct store *s;
	if (store_open(&s, dir) < 0)
		_exit(3);
	for (char c = 'B';; c = c == 'A' ? 'B' : 'A') {
		set_state(s, c);
		if (store_commit(s) < 0)
			_exit(4);
	}
}

static uint32_t xorshift(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static void test_kill_during_commit(void **state)
{
	struct fx *f = *state;
	assert_int_equal(store_open(&f->s, f->dir), 0);
	set_state(f->s, 'A');
	assert_int_equal(store_commit(f->s), 0);
	store_close(f->s);
	f->s = NULL;

	uint32_t seed = (uint32_t)time(NULL) ^ (uint32_t)getpid() << 16;
	if (!seed)
		seed = 1;
	print_message("kill test seed %u\n", seed);
	int seen[2] = { 0, 0 };
	for (int round = 0; round < KILL_ROUNDS; round++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			noreturn_committer(f->dir);

		struct timespec ts = { 0, (long)(xorshift(&seed) % 5001) * 1000 };
		nanosleep(&ts, NULL);
		assert_int_equal(kill(pid, SIGKILL), 0);
		int st;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		if (!WIFSIGNALED(st))
			print_error("child exited by itself, status %d\n", WEXITSTATUS(st));
		assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

		assert_int_equal(store_open(&f->s, f->dir), 0);
		char c = which_state(f->s);
		if (!c)
			print_error("round %d: store is neither state A nor B\n", round);
		assert_true(c == 'A' || c == 'B');
		seen[c - 'A']++;
		assert_int_equal(count_bad(f->dir, NULL, 0), 0);
		store_close(f->s);
		f->s = NULL;
	}
	print_message("kill test: %d rounds ended in A, %d in B\n", seen[0], seen[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_get_types),
		cmocka_unit_test(test_overwrite_and_type_change),
		cmocka_unit_test(test_type_mismatch),
		cmocka_unit_test(test_enospc),
		cmocka_unit_test(test_names_and_limits),
		cmocka_unit_test(test_erase),
		cmocka_unit_test(test_foreach_order),
		cmocka_unit_test_setup_teardown(test_dirty_tracking, fx_setup, fx_teardown),
		cmocka_unit_test(test_ram_only),
		cmocka_unit_test_setup_teardown(test_persistence, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_file_format, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_open_dir_handling, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_stale_tmp_ignored, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_flip_every_byte, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_truncate, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_misc, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_not_a_file, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_twice_keeps_both, fx_setup, fx_teardown),
		cmocka_unit_test(test_load_buffer_rejects),
		cmocka_unit_test(test_load_buffer_accepts),
		cmocka_unit_test_setup_teardown(test_commit_failure, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_commit_dir_removed, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_kill_during_commit, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
