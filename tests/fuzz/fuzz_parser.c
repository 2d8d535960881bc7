/* libFuzzer harness: the byte-fed AT parser and the parameter grammar.
 * The first byte of the input picks chunk sizes so every fragmentation of
 * the same bytes is explored (one read may carry any part of a line). */
#include "at/args.h"
#include "at/parser.h"

#include <stdint.h>
#include <string.h>

static size_t echoed, lines;

static void on_echo(void *arg, const uint8_t *p, size_t n)
{
	echoed += n;
	if (n)
		(void)p[n - 1];
}

static void on_line(void *arg, const char *line, size_t n)
{
	struct at_args a;
	lines++;
	const char *eq = memchr(line, '=', n);
	if (!eq)
		return;
	if (at_args_split(&a, eq + 1, n - (size_t)(eq + 1 - line)) < 0)
		return;
	for (int i = 0; i < a.n; i++) {
		int64_t v;
		char buf[64];
		size_t len;
		at_arg_int(&a, i, &v);
		at_arg_str(&a, i, buf, sizeof(buf), &len);
	}
}

static void on_busy(void *arg, const uint8_t *p, size_t n)
{
	struct at_parser *ps = arg;
	/* Pretend the command finished: back to command mode. */
	at_parser_set_mode(ps, AT_PM_CMD);
}

static void on_data(void *arg, const uint8_t *p, size_t n, int done)
{
	struct at_parser *ps = arg;
	if (done)
		at_parser_set_mode(ps, AT_PM_CMD);
}

static void on_cancel(void *arg)
{
	struct at_parser *ps = arg;
	at_parser_set_mode(ps, AT_PM_CMD);
}

static const struct at_parser_ops ops = { on_echo, on_line, on_busy, on_data, on_cancel };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct at_parser p;
	if (size < 1)
		return 0;
	unsigned chunk = data[0] % 17 + 1;
	at_parser_init(&p, &ops, &p);
	/* Every few lines enter a data phase to exercise that path too. */
	size_t off = 1;
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk;
		at_parser_feed(&p, data + off, n);
		if (lines % 5 == 4 && p.mode == AT_PM_CMD) {
			/* alternate fixed-length and CIPSENDEX-style data phases */
			if (data[off] & 0x80)
				at_parser_expect_data_ex(&p, (size_t)(data[off] % 64) + 1);
			else
				at_parser_expect_data(&p, (size_t)(data[off] % 64) + 1);
		}
		off += n;
	}
	return 0;
}
