/* libFuzzer harness: the parameter grammar of a set command on its own
 * (src/at/args.c, protocol.md §1.4), with its promises checked:
 *   - at_args_split: fields tile the input exactly (field k+1 starts one
 *     comma after field k ends; an escaped character never splits), at most
 *     AT_MAX_ARGS of them, else -E2BIG;
 *   - at_arg_int: a value only for [-]decimal or 0x-hex digits within 32
 *     bits, and then the value a reference conversion gives;
 *   - at_arg_str / at_unquote: the same answer and bytes whatever the
 *     buffer size (0 bytes, 1 byte, a few, plenty), -ENOSPC exactly when
 *     the value does not fit, always NUL-terminated, never written past.
 * The bytes are what follows "AT+X=" on a line: up to 253 of them, any. */
#include "at/args.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) abort(); } while (0)

/* Reference integer conversion (protocol.md §1.4). */
static int ref_int(const char *p, size_t n, int64_t *out)
{
	if (n == 0)
		return AT_ARG_OMITTED;
	int neg = p[0] == '-';
	int hex = !neg && n > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
	size_t k = neg ? 1 : hex ? 2 : 0;
	if (k == n)
		return -EINVAL;
	uint64_t v = 0;
	for (; k < n; k++) {
		const char *digits = hex ? "0123456789abcdef" : "0123456789";
		char c = p[k];
		if (hex && c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		const char *d = c ? strchr(digits, c) : NULL;
		if (!d)
			return -EINVAL;
		v = v * (hex ? 16 : 10) + (uint64_t)(d - digits);
		if (v > UINT32_MAX)
			return -EINVAL;
	}
	if (neg && v > 0x80000000ull)
		return -EINVAL;
	*out = neg ? -(int64_t)v : (int64_t)v;
	return AT_ARG_OK;
}

static void check_str(const struct at_args *a, int i)
{
	char big[256 + 8];
	size_t len = (size_t)-1;
	memset(big, 0x5a, sizeof(big));
	int rc = at_arg_str(a, i, big, 257, &len);
	if (i >= a->n || a->v[i].len == 0) {
		CHECK(rc == AT_ARG_OMITTED);
		return;
	}
	CHECK(rc == 0 || rc == -EINVAL); /* every value of a line fits 257 */
	if (rc == 0) {
		CHECK(len + 2 <= a->v[i].len);
		CHECK(big[len] == '\0');
	}
	for (size_t k = 257; k < sizeof(big); k++)
		CHECK(big[k] == 0x5a);
	/* no room at all: nothing is written */
	char none = 0x5a;
	int r0 = at_unquote(a->v[i].p, a->v[i].len, &none, 0, NULL);
	CHECK(none == 0x5a);
	CHECK(rc == -EINVAL ? r0 == -EINVAL : r0 == (len ? -ENOSPC : 0));
	static const size_t sizes[] = { 1, 2, 5, 17 };
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		char small[32];
		size_t sl = (size_t)-1;
		memset(small, 0x5a, sizeof(small));
		int r2 = at_unquote(a->v[i].p, a->v[i].len, small, sizes[s], &sl);
		if (rc == -EINVAL) {
			CHECK(r2 == -EINVAL);
			continue;
		}
		CHECK(sl == len);
		CHECK(r2 == (len + 1 > sizes[s] ? -ENOSPC : 0));
		size_t keep = len < sizes[s] - 1 ? len : sizes[s] - 1;
		CHECK(memcmp(small, big, keep) == 0 && small[keep] == '\0');
		for (size_t k = sizes[s]; k < sizeof(small); k++)
			CHECK(small[k] == 0x5a);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 253)
		return 0;
	/* exactly size bytes on the heap: ASan sees any read past them */
	char *s = malloc(size ? size : 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	struct at_args a;
	memset(&a, 0xa5, sizeof(a));
	int rc = at_args_split(&a, s, size);
	if (rc < 0) {
		CHECK(rc == -E2BIG);
		free(s);
		return 0;
	}
	CHECK(rc == 0 && a.n >= 1 && a.n <= AT_MAX_ARGS);
	CHECK(a.v[0].p == s);
	for (int i = 0; i < a.n; i++) {
		const char *end = a.v[i].p + a.v[i].len;
		CHECK(end <= s + size);
		if (i + 1 < a.n) {
			CHECK(*end == ',');
			CHECK(a.v[i + 1].p == end + 1);
		} else {
			CHECK(end == s + size);
		}
	}
	/* Reference split: commas not preceded by an escaping backslash. */
	{
		int n = 1;
		for (size_t k = 0; k < size; k++) {
			if (s[k] == '\\') {
				k++;
				continue;
			}
			if (s[k] == ',')
				n++;
		}
		CHECK(n == a.n);
	}
	for (int i = 0; i <= a.n; i++) { /* one past the end: omitted */
		int64_t v = 0x1234, r = 0x1234;
		int got = at_arg_int(&a, i, &v);
		int want = i < a.n ? ref_int(a.v[i].p, a.v[i].len, &r) : AT_ARG_OMITTED;
		CHECK(got == want);
		if (got == AT_ARG_OK)
			CHECK(v == r && v >= INT32_MIN && v <= (int64_t)UINT32_MAX);
		else
			CHECK(v == 0x1234);
		check_str(&a, i);
	}
	free(s);
	return 0;
}
