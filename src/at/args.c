#include "at/args.h"

#include <errno.h>
#include <string.h>

int at_args_split(struct at_args *a, const char *s, size_t n)
{
	a->n = 0;
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] == '\\') {
			if (i + 1 < n)
				i++; /* the escaped character never splits */
			continue;
		}
		if (i == n || s[i] == ',') {
			if (a->n == AT_MAX_ARGS)
				return -E2BIG;
			a->v[a->n].p = s + start;
			a->v[a->n].len = i - start;
			a->n++;
			start = i + 1;
		}
	}
	return 0;
}

int at_arg_int(const struct at_args *a, int i, int64_t *out)
{
	if (i >= a->n || a->v[i].len == 0)
		return AT_ARG_OMITTED;
	const char *p = a->v[i].p;
	size_t n = a->v[i].len;
	size_t k = 0;
	int neg = 0, base = 10;
	if (p[0] == '-') {
		neg = 1;
		k = 1;
	} else if (n > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		k = 2;
	}
	if (k == n)
		return -EINVAL;
	uint64_t v = 0;
	for (; k < n; k++) {
		unsigned d;
		char c = p[k];
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (base == 16 && c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return -EINVAL;
		v = v * (unsigned)base + d;
		if (v > 0xffffffffull) /* beyond 32 bits (protocol.md §1.4) */
			return -EINVAL;
	}
	if (neg) {
		if (v > 0x80000000ull)
			return -EINVAL;
		*out = -(int64_t)v;
	} else {
		*out = (int64_t)v;
	}
	return AT_ARG_OK;
}

int at_unquote(const char *p, size_t n, char *buf, size_t size, size_t *len)
{
	if (n < 2 || p[0] != '"' || p[n - 1] != '"')
		return -EINVAL;
	size_t o = 0;
	int rc = 0;
	for (size_t k = 1; k + 1 < n; k++) {
		char c = p[k];
		if (c == '"')
			return -EINVAL;
		if (c == '\\') {
			if (k + 2 >= n) /* the closing quote was escaped */
				return -EINVAL;
			c = p[++k];
		}
		if (o + 1 < size)
			buf[o] = c;
		else
			rc = -ENOSPC;
		o++;
	}
	if (size)
		buf[o < size ? o : size - 1] = '\0';
	if (len)
		*len = o;
	return rc;
}

int at_arg_str(const struct at_args *a, int i, char *buf, size_t size, size_t *len)
{
	if (i >= a->n || a->v[i].len == 0)
		return AT_ARG_OMITTED;
	return at_unquote(a->v[i].p, a->v[i].len, buf, size, len);
}
