/* Files inside the state dir: directories opened without following links,
 * and files replaced atomically (temp file, fsync, rename, fsync dir), so a
 * kill at any moment leaves the old or the new content. */
#ifndef ESPATD_CORE_FSUTIL_H
#define ESPATD_CORE_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>

/* Write all n bytes (EINTR, short writes). 0 or -errno. */
int fs_write_all(int fd, const void *p, size_t n);
/* Open directory `name` under dirfd `at` (no symlinks), creating it (0700)
 * when asked. A descriptor or -errno. */
int fs_open_dir_at(int at, const char *name, bool create);
/* Replace dirfd/name with p[0..n) atomically, mode 0600. 0 or -errno. */
int fs_write_atomic_at(int dirfd, const char *name, const void *p, size_t n);

#endif
