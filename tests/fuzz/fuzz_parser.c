/* libFuzzer harness: the byte-fed AT parser, the parameter grammar and the
 * data phases, in two modes picked by the top bit of the first byte.
 *
 * data[0] < 0x80, "lines": the rest is cut into chunks of data[0] % 17 + 1
 * bytes (one read may carry any part of a line); every few lines a data
 * phase is entered to exercise that path too.
 *
 * data[0] >= 0x80, "script": the rest is a list of reads, each a header
 * byte and up to 31 bytes: the header's low 5 bits are the read's length,
 * its top 3 bits the silence before it (0, 1, 5, 19, 20, 21, 40 or 1000 ms,
 * either side of the 20 ms "+++" guard). The clock is driven as the engine
 * drives it: due guard decisions (at_parser_deadline) are taken at their
 * time, then the read arrives. Lines act like the engine's commands:
 * AT+CIPSEND=[<id>,]<n> enters a fixed-length data phase,
 * AT+CIPSENDEX=[<id>,]<n> the backslash-escaped one, bare AT+CIPSEND
 * passthrough; "+++" (a read of exactly that in a data phase, a guarded one
 * in passthrough) leaves. Commands complete at the end of their read, an
 * AT+CWJAP and the SEND OK of more than 16 bytes only after the next one
 * (input meanwhile is busy, or discarded). Every data byte is checked against what was fed:
 * nothing lost, duplicated, reordered or invented, data phases end exactly
 * at their length, the CIPSENDEX escapes are undone as specified. */
#include "at/args.h"
#include "at/parser.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static size_t echoed, lines;
static bool script;

/* script mode: the model of the engine */
enum phase { PH_NONE, PH_FIXED, PH_EX, PH_PASS };
static struct {
	struct at_parser *p;
	uint64_t now;
	enum phase ph;
	size_t want;          /* data phase length */
	size_t got;           /* data bytes handed on in this phase */
	bool done;            /* the data phase reported done */
	int finish_in;        /* the "command" completes after this many reads */
	size_t busy;          /* busy bytes of the current read */
	/* what went in and what came out in the current phase */
	uint8_t in[8192 + 64];
	size_t in_n;
	uint8_t out[8192 + 64];
	size_t out_n;
} m;

static void on_echo(void *arg, const uint8_t *p, size_t n)
{
	echoed += n;
	if (n)
		(void)p[n - 1];
}

static void grammar(const char *line, size_t n)
{
	struct at_args a;
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

static bool prefix(const char *line, size_t n, const char *s)
{
	size_t k = strlen(s);
	return n >= k && memcmp(line, s, k) == 0;
}

/* The last parameter of "AT+X=..." as a data length, or 0. */
static size_t length_arg(const char *line, size_t n, size_t skip)
{
	struct at_args a;
	int64_t v;
	if (at_args_split(&a, line + skip, n - skip) < 0 || a.n < 1 || a.n > 2)
		return 0;
	if (at_arg_int(&a, a.n - 1, &v) != AT_ARG_OK || v < 1 || v > 8192)
		return 0;
	return (size_t)v;
}

static void start_phase(enum phase ph, size_t want)
{
	m.ph = ph;
	m.want = want;
	m.got = 0;
	m.done = false;
	m.in_n = m.out_n = 0;
}

static void script_line(const char *line, size_t n)
{
	size_t want;
	if (n == 10 && memcmp(line, "AT+CIPSEND", 10) == 0) {
		at_parser_passthrough(m.p, m.now);
		start_phase(PH_PASS, 0);
		return;
	}
	if (prefix(line, n, "AT+CIPSENDEX=") && (want = length_arg(line, n, 13))) {
		at_parser_expect_data_ex(m.p, want);
		start_phase(PH_EX, want);
		return;
	}
	if (prefix(line, n, "AT+CIPSEND=") && (want = length_arg(line, n, 11))) {
		at_parser_expect_data(m.p, want);
		start_phase(PH_FIXED, want);
		return;
	}
	/* any other command runs until the end of this read, a join one longer */
	at_parser_set_mode(m.p, AT_PM_BUSY);
	m.finish_in = prefix(line, n, "AT+CWJAP") ? 2 : 1;
}

static void on_line(void *arg, const char *line, size_t n)
{
	lines++;
	CHECK(n <= AT_LINE_KEEP_MAX);
	grammar(line, n);
	if (script)
		script_line(line, n);
}

static void on_busy(void *arg, const uint8_t *p, size_t n)
{
	struct at_parser *ps = arg;
	if (script) {
		m.busy += n;
		return;
	}
	/* Pretend the command finished: back to command mode. */
	at_parser_set_mode(ps, AT_PM_CMD);
}

static void on_data(void *arg, const uint8_t *p, size_t n, int done)
{
	struct at_parser *ps = arg;
	if (!script) {
		if (done)
			at_parser_set_mode(ps, AT_PM_CMD);
		return;
	}
	CHECK(m.ph != PH_NONE && !m.done);
	if (m.ph == PH_PASS) {
		CHECK(!done);
		CHECK(m.out_n + n <= m.in_n);
		CHECK(memcmp(p, m.in + m.out_n, n) == 0);
		m.out_n += n;
		/* keep the buffers small: drop what matched */
		if (m.out_n > 4096) {
			memmove(m.in, m.in + m.out_n, m.in_n - m.out_n);
			m.in_n -= m.out_n;
			m.out_n = 0;
		}
		return;
	}
	CHECK(m.out_n + n <= sizeof(m.out));
	memcpy(m.out + m.out_n, p, n);
	m.out_n += n;
	m.got += n;
	if (done) {
		/* SEND OK goes out later: input is discarded until then */
		CHECK(ps->mode == AT_PM_DISCARD);
		m.done = true;
		m.finish_in = m.want > 16 ? 2 : 1;
	}
}

static void on_cancel(void *arg)
{
	struct at_parser *ps = arg;
	if (script) {
		CHECK(m.ph != PH_NONE && !m.done);
		if (m.ph == PH_PASS) {
			/* a guarded "+++": the three '+' are all that is missing */
			CHECK(m.in_n == m.out_n + 3);
			CHECK(memcmp(m.in + m.out_n, "+++", 3) == 0);
		}
		m.ph = PH_NONE;
	}
	at_parser_set_mode(ps, AT_PM_CMD);
}

static const struct at_parser_ops ops = { on_echo, on_line, on_busy, on_data, on_cancel };

/* CIPSENDEX (protocol.md §2.12): "\0" ends the data, "\x" is x, a lone
 * backslash at the end of the count is dropped. */
static size_t unescape_ref(const uint8_t *in, size_t n, uint8_t *out, bool *ended)
{
	size_t o = 0;
	*ended = false;
	for (size_t i = 0; i < n; i++) {
		if (in[i] != '\\') {
			out[o++] = in[i];
			continue;
		}
		if (i + 1 == n)
			break;
		if (in[++i] == '0') {
			*ended = true;
			CHECK(i + 1 == n); /* nothing is consumed after the end */
			break;
		}
		out[o++] = in[i];
	}
	return o;
}

/* After a fixed or CIPSENDEX data phase ended (done): the data handed on is
 * exactly what the phase's rules make of what was fed. */
static void check_phase_end(void)
{
	if (m.ph == PH_FIXED) {
		CHECK(m.got == m.want);
		CHECK(m.in_n == m.want);
		CHECK(memcmp(m.in, m.out, m.want) == 0);
	} else if (m.ph == PH_EX) {
		uint8_t ref[sizeof(m.in)];
		bool ended;
		CHECK(m.in_n <= m.want);
		size_t r = unescape_ref(m.in, m.in_n, ref, &ended);
		CHECK(ended || m.in_n == m.want);
		CHECK(r == m.out_n && memcmp(ref, m.out, r) == 0);
	}
}

static void advance(uint64_t to)
{
	uint64_t due;
	while ((due = at_parser_deadline(m.p)) && due <= to) {
		m.now = due;
		at_parser_tick(m.p, due);
	}
	m.now = to;
}

static void run_script(struct at_parser *p, const uint8_t *data, size_t size)
{
	static const uint16_t gaps[8] = { 0, 1, 5, 19, 20, 21, 40, 1000 };
	memset(&m, 0, sizeof(m));
	m.p = p;
	m.now = 1000;
	size_t off = 0;
	while (off < size) {
		uint8_t h = data[off++];
		size_t n = h & 0x1f;
		if (n > size - off)
			n = size - off;
		advance(m.now + gaps[h >> 5]);
		if (n == 0)
			continue;
		const uint8_t *rd = data + off;
		off += n;
		/* as at_engine_input(): what was due first (advance() took it) */
		at_parser_tick(p, m.now);
		enum at_pmode before = p->mode;
		enum phase ph = m.ph;
		size_t in0 = m.in_n;
		if (before == AT_PM_DATA || before == AT_PM_PASSTHROUGH) {
			CHECK(m.in_n + n <= sizeof(m.in));
			memcpy(m.in + m.in_n, rd, n);
			m.in_n += n;
		}
		m.busy = 0;
		at_parser_feed_at(p, rd, n, m.now);
		if (before == AT_PM_DATA && m.ph == ph) {
			/* what followed the end of the data was busy, not data */
			CHECK(m.busy <= n);
			m.in_n -= m.busy;
			if (m.done)
				check_phase_end();
			else
				CHECK(m.busy == 0 && m.in_n == in0 + n);
		}
		if (m.finish_in && !--m.finish_in) {
			/* the command (or SEND OK) completes */
			if (m.done)
				m.ph = PH_NONE;
			if (p->mode == AT_PM_BUSY || p->mode == AT_PM_DISCARD)
				at_parser_set_mode(p, AT_PM_CMD);
		}
	}
	/* the line goes silent: held '+' are decided */
	advance(m.now + 1000);
	if (m.ph == PH_PASS && p->mode == AT_PM_PASSTHROUGH) {
		CHECK(p->plus == 0);
		CHECK(m.in_n == m.out_n);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct at_parser p;
	if (size < 1)
		return 0;
	at_parser_init(&p, &ops, &p);
	lines = 0;
	script = data[0] & 0x80;
	if (script) {
		run_script(&p, data + 1, size - 1);
		return 0;
	}
	unsigned chunk = data[0] % 17 + 1;
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
