/* The parameter grammar of protocol.md §1.4, case by case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "at/args.h"

#include <errno.h>
#include <string.h>

static struct at_args split(const char *s)
{
	struct at_args a;
	assert_int_equal(at_args_split(&a, s, strlen(s)), 0);
	return a;
}

static void test_split_plain_and_omitted(void **st)
{
	struct at_args a = split("\"ssid\",\"pwd\",,1");
	assert_int_equal(a.n, 4);
	assert_int_equal(a.v[2].len, 0);
	int64_t v;
	assert_int_equal(at_arg_int(&a, 2, &v), AT_ARG_OMITTED);
	assert_int_equal(at_arg_int(&a, 3, &v), AT_ARG_OK);
	assert_int_equal(v, 1);
	assert_int_equal(at_arg_int(&a, 9, &v), AT_ARG_OMITTED);
}

static void test_split_commas_inside_quotes(void **st)
{
	/* The splitter ignores quotes: an unescaped comma always splits. */
	struct at_args a = split("\"a,b\"");
	assert_int_equal(a.n, 2);
	char buf[16];
	size_t len;
	assert_int_equal(at_arg_str(&a, 0, buf, sizeof(buf), &len), -EINVAL);
	a = split("\"a\\,b\"");
	assert_int_equal(a.n, 1);
	assert_int_equal(at_arg_str(&a, 0, buf, sizeof(buf), &len), AT_ARG_OK);
	assert_string_equal(buf, "a,b");
}

static void test_empty_and_too_many(void **st)
{
	struct at_args a = split("");
	assert_int_equal(a.n, 1);
	assert_int_equal(a.v[0].len, 0);
	char many[64] = "";
	for (int i = 0; i < AT_MAX_ARGS; i++)
		strcat(many, "1,");
	assert_int_equal(at_args_split(&a, many, strlen(many)), -E2BIG);
	many[strlen(many) - 1] = '\0';
	assert_int_equal(at_args_split(&a, many, strlen(many)), 0);
	assert_int_equal(a.n, AT_MAX_ARGS);
}

static void test_strings(void **st)
{
	char buf[32];
	size_t len;
	struct at_args a = split("\"\",\"x\\\\y\",\"q\\\"q\",\"bad\"x\",noquote,\"open,\"tail\\");
	assert_int_equal(at_arg_str(&a, 0, buf, sizeof(buf), &len), AT_ARG_OK);
	assert_int_equal(len, 0);
	assert_int_equal(at_arg_str(&a, 1, buf, sizeof(buf), &len), AT_ARG_OK);
	assert_string_equal(buf, "x\\y");
	assert_int_equal(at_arg_str(&a, 2, buf, sizeof(buf), &len), AT_ARG_OK);
	assert_string_equal(buf, "q\"q");
	assert_int_equal(at_arg_str(&a, 3, buf, sizeof(buf), &len), -EINVAL);
	assert_int_equal(at_arg_str(&a, 4, buf, sizeof(buf), &len), -EINVAL);
	assert_int_equal(at_arg_str(&a, 5, buf, sizeof(buf), &len), -EINVAL);
	assert_int_equal(at_arg_str(&a, 6, buf, sizeof(buf), &len), -EINVAL);
	/* An escaped closing quote leaves the string open. */
	a = split("\"abc\\\"");
	assert_int_equal(at_arg_str(&a, 0, buf, sizeof(buf), &len), -EINVAL);
	/* Too long for the buffer. */
	a = split("\"0123456789\"");
	assert_int_equal(at_arg_str(&a, 0, buf, 5, &len), -ENOSPC);
	assert_int_equal(len, 10);
}

static void test_integers(void **st)
{
	int64_t v;
	struct at_args a = split("0,-1,0x7FF,0X1f,4294967295,4294967296,-2147483648,-2147483649,"
				 "+1,\"1\",1 ,0x,-0x1,12a");
	assert_int_equal(at_arg_int(&a, 0, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(at_arg_int(&a, 1, &v), 0);
	assert_int_equal(v, -1);
	assert_int_equal(at_arg_int(&a, 2, &v), 0);
	assert_int_equal(v, 0x7ff);
	assert_int_equal(at_arg_int(&a, 3, &v), 0);
	assert_int_equal(v, 0x1f);
	assert_int_equal(at_arg_int(&a, 4, &v), 0);
	assert_int_equal(v, 4294967295LL);
	assert_int_equal(at_arg_int(&a, 5, &v), -EINVAL);
	assert_int_equal(at_arg_int(&a, 6, &v), 0);
	assert_int_equal(v, -2147483648LL);
	for (int i = 7; i < a.n; i++)
		assert_int_equal(at_arg_int(&a, i, &v), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_plain_and_omitted),
		cmocka_unit_test(test_split_commas_inside_quotes),
		cmocka_unit_test(test_empty_and_too_many),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_integers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
