/* --trace FILE: every serial byte in both directions, timestamped, escaped so a
 * person can read it. */
#ifndef ESPATD_CORE_TRACE_H
#define ESPATD_CORE_TRACE_H

#include <stddef.h>

enum trace_dir { TRACE_IN, TRACE_OUT };

int trace_open(const char *path);
void trace_close(void);
void trace_bytes(enum trace_dir dir, const void *p, size_t n);
void trace_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
