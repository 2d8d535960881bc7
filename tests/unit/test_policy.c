/* The egress policy of --allow: rule syntax and matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "net/policy.h"

#include <arpa/inet.h>
#include <string.h>

static struct sockaddr_storage v4(const char *ip, uint16_t port)
{
	struct sockaddr_storage a;
	memset(&a, 0, sizeof(a));
	struct sockaddr_in *s = (void *)&a;
	s->sin_family = AF_INET;
	s->sin_port = htons(port);
	inet_pton(AF_INET, ip, &s->sin_addr);
	return a;
}

static struct sockaddr_storage v6(const char *ip, uint16_t port)
{
	struct sockaddr_storage a;
	memset(&a, 0, sizeof(a));
	struct sockaddr_in6 *s = (void *)&a;
	s->sin6_family = AF_INET6;
	s->sin6_port = htons(port);
	inet_pton(AF_INET6, ip, &s->sin6_addr);
	return a;
}

static void test_empty_allows_all(void **st)
{
	struct policy p = { 0 };
	struct sockaddr_storage a = v4("8.8.8.8", 53);
	assert_true(policy_allows(&p, &a));
	assert_true(policy_allows(NULL, &a));
}

static void test_rules(void **st)
{
	struct policy p = { 0 };
	assert_int_equal(policy_add(&p, "10.0.0.0/8"), 0);
	assert_int_equal(policy_add(&p, "192.0.2.7:443"), 0);
	assert_int_equal(policy_add(&p, "127.0.0.1:8000-8010"), 0);
	assert_int_equal(policy_add(&p, "[::1]:80"), 0);
	assert_int_equal(policy_add(&p, "[fd00::]/8"), 0);
	struct { struct sockaddr_storage a; bool ok; } cases[] = {
		{ v4("10.1.2.3", 1), true },
		{ v4("11.1.2.3", 1), false },
		{ v4("192.0.2.7", 443), true },
		{ v4("192.0.2.7", 444), false },
		{ v4("192.0.2.8", 443), false },
		{ v4("127.0.0.1", 8005), true },
		{ v4("127.0.0.1", 8011), false },
		{ v6("::1", 80), true },
		{ v6("::1", 81), false },
		{ v6("fd12::5", 9), true },
		{ v6("fe80::1", 9), false },
		{ v6("::ffff:10.9.9.9", 5), true }, /* an IPv4-mapped peer is IPv4 */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(policy_allows(&p, &cases[i].a), cases[i].ok);
	policy_free(&p);
}

static void test_bad_specs(void **st)
{
	struct policy p = { 0 };
	const char *bad[] = { "", "10.0.0.0/33", "10.0.0.1:0", "10.0.0.1:70000", "10.0.0.1:9-8",
			      "nothost", "[::1", "[::1]x", "::1/129", "10.0.0.1:80x" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_not_equal(policy_add(&p, bad[i]), 0);
	assert_int_equal(p.n, 0);
	assert_int_equal(policy_add(&p, "::/0"), 0);
	struct sockaddr_storage a = v6("2001:db8::1", 1);
	assert_true(policy_allows(&p, &a));
	policy_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_allows_all),
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_bad_specs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
