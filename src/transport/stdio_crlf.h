/* Private to stdio.c, exposed for unit tests: the line-ending fix applied to
 * input typed on a terminal. */
#ifndef ESPATD_TRANSPORT_STDIO_CRLF_H
#define ESPATD_TRANSPORT_STDIO_CRLF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Copy n bytes from `in` to `out` (room for 2 * n), writing CR LF for every
 * LF not preceded by CR. *prev_cr says whether the byte before `in` (the end
 * of the previous chunk) was a CR, and is updated for the next call. Returns
 * the bytes written. */
size_t stdio_lf_to_crlf(const uint8_t *in, size_t n, uint8_t *out, bool *prev_cr);

#endif
