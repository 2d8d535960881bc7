/* The parameter grammar of a set command (protocol.md §1.4): split on every
 * unescaped comma (quotes do not protect commas), quoted strings with
 * backslash escapes, omitted fields, decimal / negative / 0x-hex integers. */
#ifndef ESPATD_AT_ARGS_H
#define ESPATD_AT_ARGS_H

#include <stddef.h>
#include <stdint.h>

#define AT_MAX_ARGS 16  /* protocol.md §1.4: room for 16 parameter pointers */

struct at_args {
	int n;
	struct {
		const char *p;
		size_t len;
	} v[AT_MAX_ARGS];
};

/* Split s[0..n) into fields. Returns 0 or -E2BIG (more than AT_MAX_ARGS). */
int at_args_split(struct at_args *a, const char *s, size_t n);

enum { AT_ARG_OK = 0, AT_ARG_OMITTED = 1 };

/* Field i as an integer: AT_ARG_OK, AT_ARG_OMITTED (empty or i >= n), or
 * -EINVAL (not a number, quoted, '+' sign, blanks, beyond 32 bits). */
int at_arg_int(const struct at_args *a, int i, int64_t *out);

/* Field i as a string: must start and end with '"'; "\x" -> "x"; an
 * unescaped '"' inside or a trailing lone '\' is -EINVAL. Writes a NUL
 * terminated value (may contain NUL bytes; *len tells the true length).
 * -ENOSPC if it does not fit in size-1 bytes. */
int at_arg_str(const struct at_args *a, int i, char *buf, size_t size, size_t *len);

/* Unescape an already-isolated quoted field; shared with at_arg_str. */
int at_unquote(const char *p, size_t n, char *buf, size_t size, size_t *len);

#endif
