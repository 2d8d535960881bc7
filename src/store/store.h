/* Persistent settings shaped like ESP's NVS: namespace/key -> typed value
 * (protocol.md §6). One file in the state dir, rewritten atomically (temp
 * file, fsync, rename, fsync dir) so a kill at any moment leaves either the
 * old or the new file. A corrupt or foreign file is set aside and reported. */
#ifndef ESPATD_STORE_STORE_H
#define ESPATD_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_NAME_MAX 32   /* namespace and key: 1..32 chars of [A-Za-z0-9_.-] */
#define STORE_VALUE_MAX 16384 /* string/blob bytes */

struct store;

enum store_type { STORE_INT = 1, STORE_STR = 2, STORE_BLOB = 3 };

/* Open <dir>/store.nvs (creating dir with mode 0700 if needed). dir NULL =
 * RAM only (nothing ever written). A missing file is an empty store; an
 * unreadable/corrupt/foreign one is renamed to store.nvs.bad-<unix time>,
 * logged with log_warn, and the store starts empty. Returns 0 or -errno
 * (only for out-of-memory or an unusable dir). */
int store_open(struct store **out, const char *dir);
void store_close(struct store *s);

/* Getters: 0, -ENOENT (absent), -EINVAL (other type), -ENOSPC (too small;
 * str needs room for the NUL). */
int store_get_int(struct store *s, const char *ns, const char *key, int64_t *out);
int store_get_str(struct store *s, const char *ns, const char *key, char *buf, size_t size);
int store_get_blob(struct store *s, const char *ns, const char *key, void *buf, size_t size,
		   size_t *len);

/* Setters change RAM and mark the store dirty when the value differs;
 * store_commit() writes. -EINVAL for bad names / too long values. */
int store_set_int(struct store *s, const char *ns, const char *key, int64_t v);
int store_set_str(struct store *s, const char *ns, const char *key, const char *v);
int store_set_blob(struct store *s, const char *ns, const char *key, const void *p, size_t n);
int store_erase_key(struct store *s, const char *ns, const char *key);
int store_erase_ns(struct store *s, const char *ns);
int store_erase_all(struct store *s);

/* Iterate keys of a namespace in sorted key order; stop early if fn returns
 * non-zero (that value is returned). */
typedef int (*store_iter_fn)(void *arg, const char *key, enum store_type type);
int store_foreach(struct store *s, const char *ns, store_iter_fn fn, void *arg);

bool store_dirty(const struct store *s);
/* Write if dirty. On failure (-errno: read-only dir, disk full) the RAM
 * values stay, the store stays dirty, and one log_error says why. */
int store_commit(struct store *s);
const char *store_path(const struct store *s);

/* Replace the contents of s with the file image p[0..n) (the loader behind
 * store_open, exposed for the fuzzer). Returns 0, -EINVAL for content that
 * is not a valid store file, -ENOMEM; on error s is left empty. The store is
 * clean afterwards. Never touches the file system. */
int store_load_buffer(struct store *s, const uint8_t *p, size_t n);

#endif
