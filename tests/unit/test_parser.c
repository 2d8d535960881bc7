/* The AT engine (parser + dispatch + result bytes) against a small command
 * table, with every input fed whole, one byte at a time, 3 bytes at a time
 * and in random cuts: the output must be byte-identical each way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "at/engine.h"
#include "core/buf.h"
#include "fakes/fragment.h"

#include <string.h>

static struct buf outbuf;
static struct at_engine eng;
static struct buf data_got;

static void sink(void *arg, const void *p, size_t n)
{
	buf_append(&outbuf, p, n);
}

static enum at_rc ok_exec(struct at_req *r)
{
	return AT_RC_OK;
}

static enum at_rc e0_exec(struct at_req *r)
{
	r->eng->echo = false;
	return AT_RC_OK;
}

static enum at_rc q_query(struct at_req *r)
{
	at_out_line(r->out, "+Q:1");
	return AT_RC_OK;
}

static enum at_rc args_setup(struct at_req *r)
{
	int64_t v;
	char s[16];
	if (!at_nargs(r, 2, 2) || at_get_int(r, 0, 0, 100, true, &v) < 0 ||
	    at_get_str(r, 1, 8, true, s, sizeof(s)) < 0)
		return AT_RC_ERROR;
	at_out_line(r->out, "+ARGS:%lld,%s", (long long)v, s);
	return AT_RC_OK;
}

static enum at_rc slow_exec(struct at_req *r)
{
	return AT_RC_PENDING;
}

static enum at_rc send_setup(struct at_req *r)
{
	int64_t n;
	if (at_get_int(r, 0, 1, 100, true, &n) < 0)
		return AT_RC_ERROR;
	buf_reset(&data_got);
	at_parser_expect_data(&r->eng->parser, (size_t)n);
	return AT_RC_PROMPT;
}

static void data_hook(struct device *d, const uint8_t *p, size_t n, int done)
{
	buf_append(&data_got, p, n);
	if (done)
		at_engine_complete(&eng, AT_RC_SEND_OK);
}

static const struct at_cmd cmds[] = {
	{ "", NULL, NULL, NULL, ok_exec },
	{ "E0", NULL, NULL, NULL, e0_exec },
	{ "+Q", NULL, q_query, NULL, NULL },
	{ "+ARGS", NULL, NULL, args_setup, NULL },
	{ "+SLOW", NULL, NULL, NULL, slow_exec },
	{ "+SEND", NULL, NULL, send_setup, NULL },
};
static const struct at_cmd_table table = AT_TABLE("test", cmds);
static const struct at_cmd_table *const tables[] = { &table };
static const struct at_engine_hooks hooks = { .data = data_hook };

static void engine_sink(void *arg, const uint8_t *p, size_t n)
{
	at_engine_input(arg, p, n);
}

static int setup(void **st)
{
	buf_init(&outbuf);
	buf_init(&data_got);
	at_engine_init(&eng, NULL, tables, 1, &hooks, sink, NULL);
	return 0;
}

static int teardown(void **st)
{
	at_engine_free(&eng);
	buf_free(&outbuf);
	buf_free(&data_got);
	return 0;
}

/* Each command string is sent as its own burst (a driver waits for the
 * result before the next command), fragmented per mode. */
static void transcript(const char *const *in, const char *expect, size_t expect_len, bool echo)
{
	enum frag_mode modes[] = { FRAG_WHOLE, FRAG_ONE, FRAG_N, FRAG_RANDOM };
	for (unsigned m = 0; m < 4; m++) {
		unsigned seed = 1234 + m;
		setup(NULL);
		eng.echo = echo;
		for (const char *const *s = in; *s; s++)
			frag_feed(engine_sink, &eng, *s, strlen(*s), modes[m], 3, &seed);
		if (buf_used(&outbuf) != expect_len || memcmp(buf_head(&outbuf), expect, expect_len)) {
			print_error("mode %u: got %zu bytes '%.*s'\n", m, buf_used(&outbuf),
				    (int)buf_used(&outbuf), (const char *)buf_head(&outbuf));
			fail();
		}
		teardown(NULL);
	}
}

#define T(expect, echo, ...)                                                 \
	do {                                                                 \
		const char *in_[] = { __VA_ARGS__, NULL };                  \
		transcript(in_, expect, sizeof(expect) - 1, echo);          \
	} while (0)

static void test_echo_and_results(void **st)
{
	T("AT\r\n\r\nOK\r\n", true, "AT\r\n");
	T("ATE0\r\n\r\nOK\r\n\r\nOK\r\n", true, "ATE0\r\n", "AT\r\n");
	T("\r\nOK\r\n", false, "at\r\n");
	T("+Q:1\r\n\r\nOK\r\n", false, "AT+q?\r\n");
}

static void test_errors(void **st)
{
	T("\r\nERROR\r\n", false, "\r\n");                  /* empty line */
	T("\r\nERROR\r\n", false, "XY\r\n");                /* no AT */
	T("\r\nERROR\r\n", false, "AT+NOPE\r\n");           /* unknown */
	T("\r\nERROR\r\n", false, "AT+Q=?\r\n");            /* no test form */
	T("\r\nERROR\r\n", false, "AT+Q?x\r\n");            /* junk after ? */
	T("\r\nERROR\r\n", false, "AT+Q\r\n");              /* no exec form */
	T("\r\nERROR\r\n", false, "AT+ARGS=1\r\n");         /* too few */
	T("\r\nERROR\r\n", false, "AT+ARGS=101,\"x\"\r\n"); /* out of range */
	T("\r\nERROR\r\n", false, "AT+ARGS=1,x\r\n");       /* unquoted */
	T("\r\nERROR\r\n", false, "\x01\xff""AT\r\n");      /* binary */
	/* §1.3: the first non-name character ends the name; with no '?' or
	 * '=' the command executes, so "AT" plus junk is plain AT. */
	T("\r\nOK\r\n", false, "AT\x01\xff\r\n");
	/* A lone CR or LF does not end a line (§1.2). */
	T("\r\nOK\r\n", false, "AT\n\r\n");
}

static void test_nul_bytes(void **st)
{
	setup(NULL);
	eng.echo = false;
	at_engine_input(&eng, (const uint8_t *)"AT\0\r\n", 5);
	at_engine_input(&eng, (const uint8_t *)"AT+\0Q?\r\n", 8);
	const char expect[] = "\r\nOK\r\n\r\nERROR\r\n";
	assert_int_equal(buf_used(&outbuf), sizeof(expect) - 1);
	assert_memory_equal(buf_head(&outbuf), expect, sizeof(expect) - 1);
	teardown(NULL);
}

static void test_args_parsed(void **st)
{
	T("+ARGS:7,a,b\r\n\r\nOK\r\n", false, "AT+ARGS=7,\"a\\,b\"\r\n");
	T("+ARGS:16,x\r\n\r\nOK\r\n", false, "AT+ARGS=0x10,\"x\"\r\n");
}

static void test_syslog_codes(void **st)
{
	setup(NULL);
	eng.echo = false;
	eng.out.syslog = true;
	const char *in = "AT+NOPE\r\n";
	at_engine_input(&eng, (const uint8_t *)in, strlen(in));
	in = "AT+ARGS=1,x\r\n";
	at_engine_input(&eng, (const uint8_t *)in, strlen(in));
	const char expect[] = "ERR CODE:0x01090000\r\n\r\nERROR\r\n"
			      "ERR CODE:0x01080001\r\n\r\nERROR\r\n";
	assert_int_equal(buf_used(&outbuf), sizeof(expect) - 1);
	assert_memory_equal(buf_head(&outbuf), expect, sizeof(expect) - 1);
	teardown(NULL);
}

static void test_overlong_line(void **st)
{
	/* 254 characters + CR LF = 256 bytes: still a command. */
	char line[300] = "AT+ARGS=1,\"";
	while (strlen(line) < 253)
		strcat(line, "z");
	strcat(line, "\"\r\n");
	assert_int_equal(strlen(line), 256);
	T("\r\nERROR\r\n", false, line); /* parsed (string too long for +ARGS) */
	/* 255 characters then CR LF: the buffer overflowed and was dropped,
	 * leaving an empty line: ERROR. */
	char big[400];
	memset(big, 'A', 255);
	memcpy(big + 255, "\r\n", 3);
	T("\r\nERROR\r\n", false, big);
	/* 1000 bytes of garbage: what is left of it after the drops prefixes
	 * the next line (ERROR), as on the module; the retry then works. */
	char junk[1001];
	memset(junk, 'x', 1000);
	junk[1000] = '\0';
	T("\r\nERROR\r\n\r\nOK\r\n", false, junk, "AT\r\n", "AT\r\n");
}

static void test_busy(void **st)
{
	setup(NULL);
	eng.echo = true;
	const char *in = "AT+SLOW\r\n";
	at_engine_input(&eng, (const uint8_t *)in, strlen(in));
	/* Two chunks while busy: two busy p... and no echo. */
	at_engine_input(&eng, (const uint8_t *)"AT\r\n", 4);
	at_engine_input(&eng, (const uint8_t *)"A", 1);
	at_engine_complete(&eng, AT_RC_OK);
	at_engine_input(&eng, (const uint8_t *)"AT\r\n", 4);
	const char expect[] = "AT+SLOW\r\n\r\nbusy p...\r\n\r\nbusy p...\r\n\r\nOK\r\nAT\r\n\r\nOK\r\n";
	assert_int_equal(buf_used(&outbuf), sizeof(expect) - 1);
	assert_memory_equal(buf_head(&outbuf), expect, sizeof(expect) - 1);
	teardown(NULL);
}

static void test_two_commands_one_chunk(void **st)
{
	/* §1.9: the second command of one burst arrived while the first was
	 * processed: busy p... for it. */
	setup(NULL);
	eng.echo = false;
	at_engine_input(&eng, (const uint8_t *)"AT\r\nAT\r\n", 8);
	const char expect[] = "\r\nOK\r\n\r\nbusy p...\r\n";
	assert_int_equal(buf_used(&outbuf), sizeof(expect) - 1);
	assert_memory_equal(buf_head(&outbuf), expect, sizeof(expect) - 1);
	teardown(NULL);
}

static void test_data_phase(void **st)
{
	/* CR, LF, NUL and '+' are data; nothing is echoed. */
	static const char data[] = "a\r\n\0+b";
	enum frag_mode modes[] = { FRAG_WHOLE, FRAG_ONE, FRAG_N, FRAG_RANDOM };
	for (unsigned m = 0; m < 4; m++) {
		unsigned seed = 99;
		setup(NULL);
		frag_feed(engine_sink, &eng, "AT+SEND=6\r\n", 11, modes[m], 3, &seed);
		frag_feed(engine_sink, &eng, data, 6, modes[m], 4, &seed);
		frag_feed(engine_sink, &eng, "AT\r\n", 4, modes[m], 3, &seed);
		const char expect[] = "AT+SEND=6\r\n\r\nOK\r\n\r\n>\r\nSEND OK\r\nAT\r\n\r\nOK\r\n";
		assert_int_equal(buf_used(&outbuf), sizeof(expect) - 1);
		assert_memory_equal(buf_head(&outbuf), expect, sizeof(expect) - 1);
		assert_int_equal(buf_used(&data_got), 6);
		assert_memory_equal(buf_head(&data_got), data, 6);
		teardown(NULL);
	}
	/* Excess bytes in the same burst: busy p... once, excess dropped. */
	setup(NULL);
	eng.echo = false;
	at_engine_input(&eng, (const uint8_t *)"AT+SEND=2\r\n", 11);
	at_engine_input(&eng, (const uint8_t *)"abcd", 4);
	const char expect[] = "\r\nOK\r\n\r\n>\r\nSEND OK\r\n\r\nbusy p...\r\n";
	assert_int_equal(buf_used(&outbuf), sizeof(expect) - 1);
	assert_memory_equal(buf_head(&outbuf), expect, sizeof(expect) - 1);
	assert_memory_equal(buf_head(&data_got), "ab", 2);
	teardown(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_echo_and_results),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_nul_bytes),
		cmocka_unit_test(test_args_parsed),
		cmocka_unit_test(test_syslog_codes),
		cmocka_unit_test(test_overlong_line),
		cmocka_unit_test(test_busy),
		cmocka_unit_test(test_two_commands_one_chunk),
		cmocka_unit_test(test_data_phase),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
