/* The pure parts of SNTP and PING: the <timezone> rules of AT+CIPSNTPCFG
 * (every example of the seed reference), the asctime layout of
 * AT+CIPSNTPTIME?, the RFC 4330 packet codec and offset, and the ICMP
 * checksum (protocol.md §2.21-§2.23, §2.31). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "net/ping.h"
#include "net/sntp.h"

#include <errno.h>
#include <string.h>

#define NS 1000000000LL

static void tz_ok(int64_t value, int minutes, int shown)
{
	int m = 9999, s = 9999;
	assert_int_equal(sntp_tz_parse(value, &m, &s), 0);
	assert_int_equal(m, minutes);
	assert_int_equal(s, shown);
}

static void tz_bad(int64_t value)
{
	int m = 1, s = 2;
	assert_int_equal(sntp_tz_parse(value, &m, &s), -EINVAL);
}

static void test_tz_seed_examples(void **st)
{
	/* China, UTC+08:00: AT+CIPSNTPCFG=1,8,... or =1,800,... */
	tz_ok(8, 8 * 60, 8);
	tz_ok(800, 8 * 60, 8);
	/* New York, UTC-05:00: =1,-5,... or =1,-500,... */
	tz_ok(-5, -5 * 60, -5);
	tz_ok(-500, -5 * 60, -5);
	/* Chatham Islands, UTC+12:45: =1,1245,... */
	tz_ok(1245, 12 * 60 + 45, 12);
	/* =1,015: the integer is 15, not an hour count, so +00:15, shown 0. */
	tz_ok(15, 15, 0);
	/* The AT+CIPSNTPTIME? example of the English reference: =1,530. */
	tz_ok(530, 5 * 60 + 30, 5);
}

static void test_tz_limits(void **st)
{
	tz_ok(0, 0, 0);
	tz_ok(-12, -720, -12);
	tz_ok(14, 840, 14);
	tz_ok(1400, 840, 14);
	tz_ok(-1200, -720, -12);
	tz_ok(1459, 14 * 60 + 59, 14);
	tz_ok(-1259, -(12 * 60 + 59), -12);
	tz_ok(-13, -13, 0);  /* not whole hours: -00:13 */
	tz_ok(-30, -30, 0);  /* -030 */
	tz_ok(59, 59, 0);
	tz_bad(60);          /* minutes beyond 59 */
	tz_bad(99);
	tz_bad(1260);
	tz_bad(1500);        /* hours beyond 14 */
	tz_bad(-1300);       /* hours beyond -12 */
	tz_bad(100000);
	tz_bad(-2147483648LL);
}

static void check_asctime(int64_t t, const char *want)
{
	char buf[48];
	sntp_asctime(t, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

static void test_asctime(void **st)
{
	/* Unsynced module: seconds since boot in 1970, day padded by a space. */
	check_asctime(0, "Thu Jan  1 00:00:00 1970");
	check_asctime(8, "Thu Jan  1 00:00:08 1970");
	check_asctime(128, "Thu Jan  1 00:02:08 1970");
	/* The seed reference's example. */
	check_asctime(1481510012, "Mon Dec 12 02:33:32 2016");
	/* The English reference's pair: UTC+8 and UTC+5:30 of one instant. */
	check_asctime(1634636876 + 8 * 3600, "Tue Oct 19 17:47:56 2021");
	check_asctime(1634636876 + 330 * 60, "Tue Oct 19 15:17:56 2021");
	check_asctime(-3600, "Wed Dec 31 23:00:00 1969");
	check_asctime(4102444800LL, "Fri Jan  1 00:00:00 2100");
}

static void test_timestamps(void **st)
{
	assert_true(sntp_ts_from_unix_ns(0) == (2208988800ULL << 32));
	assert_true(sntp_ts_to_unix_ns(2208988800ULL << 32) == 0);
	/* Half a second is half of 2^32. */
	assert_true(sntp_ts_from_unix_ns(NS / 2) == ((2208988800ULL << 32) | 0x80000000u));
	int64_t t = 1700000000LL * NS + 123456789;
	int64_t back = sntp_ts_to_unix_ns(sntp_ts_from_unix_ns(t));
	assert_true(back - t <= 1 && t - back <= 1);
	/* Era 1 starts 2036-02-07 06:28:16 UTC: seconds field 0 again. */
	uint64_t e1 = sntp_ts_from_unix_ns(2085978496LL * NS);
	assert_true(e1 >> 32 == 0);
	assert_true(sntp_ts_to_unix_ns(e1) == 2085978496LL * NS);
	assert_true(sntp_ts_to_unix_ns(sntp_ts_from_unix_ns(2085978495LL * NS)) ==
		    2085978495LL * NS);
	/* Before 1970 still in era 0 (top bit set). */
	assert_true(sntp_ts_to_unix_ns(sntp_ts_from_unix_ns(-NS)) == -NS);
}

static void test_request(void **st)
{
	uint8_t pkt[SNTP_PACKET_LEN];
	memset(pkt, 0xaa, sizeof(pkt));
	sntp_build_request(pkt, 0x0102030405060708ULL);
	assert_int_equal(pkt[0], 0x23); /* LI 0, VN 4, mode 3 */
	for (int i = 1; i < 40; i++)
		assert_int_equal(pkt[i], 0);
	static const uint8_t xmt[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	assert_memory_equal(pkt + 40, xmt, 8);
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void make_reply(uint8_t *p, int li, int vn, int mode, int stratum, uint64_t orig,
		       uint64_t recv, uint64_t xmt)
{
	memset(p, 0, SNTP_PACKET_LEN);
	p[0] = (uint8_t)(li << 6 | vn << 3 | mode);
	p[1] = (uint8_t)stratum;
	put64(p + 24, orig);
	put64(p + 32, recv);
	put64(p + 40, xmt);
}

static void test_reply(void **st)
{
	uint8_t p[SNTP_PACKET_LEN + 12];
	struct sntp_reply r;
	uint64_t sent = 0x1111222233334444ULL;
	make_reply(p, 0, 4, 4, 1, sent, 0x5000000000000000ULL, 0x5000000100000000ULL);
	assert_int_equal(sntp_parse_reply(p, SNTP_PACKET_LEN, sent, &r), 0);
	assert_int_equal(r.stratum, 1);
	assert_int_equal(r.mode, 4);
	assert_true(r.recv == 0x5000000000000000ULL);
	assert_true(r.xmt == 0x5000000100000000ULL);
	/* Extension fields / a MAC after the 48 bytes are fine; an NTPv3
	 * server too. */
	assert_int_equal(sntp_parse_reply(p, sizeof(p), sent, &r), 0);
	make_reply(p, 0, 3, 4, 2, sent, 1, 2);
	assert_int_equal(sntp_parse_reply(p, SNTP_PACKET_LEN, sent, &r), 0);
	/* Not the answer: keep waiting. */
	assert_int_equal(sntp_parse_reply(p, SNTP_PACKET_LEN - 1, sent, &r), -EBADMSG);
	make_reply(p, 0, 4, 4, 1, sent + 1, 1, 2);
	assert_int_equal(sntp_parse_reply(p, SNTP_PACKET_LEN, sent, &r), -EBADMSG);
	make_reply(p, 0, 4, 3, 1, sent, 1, 2); /* a client request */
	assert_int_equal(sntp_parse_reply(p, SNTP_PACKET_LEN, sent, &r), -EBADMSG);
	make_reply(p, 0, 0, 4, 1, sent, 1, 2);
	assert_int_equal(sntp_parse_reply(p, SNTP_PACKET_LEN, sent, &r), -EBADMSG);
	/* A server that will not serve: another server. */
	make_reply(p, 0, 4, 4, 0, sent, 1, 2); /* kiss-o'-death */
	assert_int_equal(sntp_parse_reply(p, SNTP_PACKET_LEN, sent, &r), -EAGAIN);
	assert_int_equal(r.stratum, 0); /* filled, for the log */
	make_reply(p, 3, 4, 4, 16, sent, 1, 2); /* alarm: not synchronised */
	assert_int_equal(sntp_parse_reply(p, SNTP_PACKET_LEN, sent, &r), -EAGAIN);
	make_reply(p, 0, 4, 4, 2, sent, 1, 0);
	assert_int_equal(sntp_parse_reply(p, SNTP_PACKET_LEN, sent, &r), -EAGAIN);
}

static void test_offset(void **st)
{
	/* Server one second ahead, 500 ms each way. */
	assert_true(sntp_offset_ns(0, NS / 2 + NS, NS / 2 + NS, NS) == NS);
	/* A year ahead, asymmetric path: the average. */
	int64_t year = 365LL * 86400 * NS;
	int64_t t1 = 1700000000LL * NS;
	assert_true(sntp_offset_ns(t1, t1 + year + 10, t1 + year + 20, t1 + 40) == year - 5);
	/* Behind. */
	assert_true(sntp_offset_ns(t1, t1 - 3 * NS, t1 - 3 * NS, t1) == -3 * NS);
}

static void test_checksum(void **st)
{
	/* RFC 1071 §3 example: one's complement sum 0xddf2. */
	static const uint8_t b[8] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };
	assert_int_equal(ping_checksum(b, sizeof(b)), (uint16_t)~0xddf2);
	/* An echo request with its checksum in place sums to zero. */
	uint8_t pkt[8 + 3] = { 8, 0, 0, 0, 0x12, 0x34, 0, 1, 'a', 'b', 'c' };
	uint16_t c = ping_checksum(pkt, sizeof(pkt));
	pkt[2] = (uint8_t)(c >> 8);
	pkt[3] = (uint8_t)c;
	assert_int_equal(ping_checksum(pkt, sizeof(pkt)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tz_seed_examples),
		cmocka_unit_test(test_tz_limits),
		cmocka_unit_test(test_asctime),
		cmocka_unit_test(test_timestamps),
		cmocka_unit_test(test_request),
		cmocka_unit_test(test_reply),
		cmocka_unit_test(test_offset),
		cmocka_unit_test(test_checksum),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
