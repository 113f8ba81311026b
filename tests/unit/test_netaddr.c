/*
 * test_netaddr.c: addresses and CIDR lists as an operator writes them
 * (server.trusted_proxies, system.metrics_allow) and as peers present them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/netaddr.h"
#include "core/banned.h"

static netaddr addr(const char *text)
{
	netaddr a;

	if (!netaddr_parse(text, strlen(text), &a))
		fail_msg("\"%s\" did not parse", text);
	return a;
}

static void test_parse_format(void **state)
{
	static const char *const round[][2] = {
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"}, /* IPv4 on a dual-stack listener */
		{"2001:DB8::0:1", "2001:db8::1"},
		{"::1", "::1"},
		{"0.0.0.0", "0.0.0.0"},
	};
	static const char *const bad[] = {"", "192.0.2", "192.0.2.256", "192.0.2.7:80", "[::1]", "fe80::1%eth0",
					  "localhost", "1.2.3.4 ", "2001:db8::1::2"};
	char out[NETADDR_TEXT_MAX];
	netaddr a;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof round / sizeof round[0]; i++) {
		a = addr(round[i][0]);
		netaddr_format(&a, out);
		assert_string_equal(out, round[i][1]);
	}
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_false(netaddr_parse(bad[i], strlen(bad[i]), &a));
	/* Exactly len bytes are read. */
	assert_true(netaddr_parse("10.0.0.1junk", 8, &a));
	netaddr_format(&a, out);
	assert_string_equal(out, "10.0.0.1");
}

static void test_lists(void **state)
{
	netaddr_list l;
	char why[128];
	netaddr a;

	(void)state;
	assert_true(netaddr_list_parse("10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,::1", &l, why, sizeof why));
	assert_int_equal(l.n, 4);
	a = addr("10.255.1.2");
	assert_true(netaddr_list_has(&l, &a));
	a = addr("::ffff:10.1.1.1");
	assert_true(netaddr_list_has(&l, &a));
	a = addr("11.0.0.1");
	assert_false(netaddr_list_has(&l, &a));
	a = addr("192.0.2.7");
	assert_true(netaddr_list_has(&l, &a));
	a = addr("192.0.2.8");
	assert_false(netaddr_list_has(&l, &a));
	a = addr("2001:db8:ffff::1");
	assert_true(netaddr_list_has(&l, &a));
	a = addr("2001:db9::1");
	assert_false(netaddr_list_has(&l, &a));
	/* An IPv4 range never matches IPv6 outside the mapped space. */
	assert_true(netaddr_list_parse("0.0.0.0/0", &l, why, sizeof why));
	a = addr("2001:db8::1");
	assert_false(netaddr_list_has(&l, &a));
	a = addr("203.0.113.1");
	assert_true(netaddr_list_has(&l, &a));
	/* Odd prefixes. */
	assert_true(netaddr_list_parse("192.0.2.128/25, 2001:db8:8000::/33", &l, why, sizeof why));
	a = addr("192.0.2.200");
	assert_true(netaddr_list_has(&l, &a));
	a = addr("192.0.2.100");
	assert_false(netaddr_list_has(&l, &a));
	a = addr("2001:db8:8000::1");
	assert_true(netaddr_list_has(&l, &a));
	a = addr("2001:db8:7fff::1");
	assert_false(netaddr_list_has(&l, &a));
	/* Empty is an empty list. */
	assert_true(netaddr_list_parse("", &l, why, sizeof why));
	assert_int_equal(l.n, 0);
	assert_true(netaddr_list_parse(" , ", &l, why, sizeof why));
	assert_int_equal(l.n, 0);
	/* Refusals say which item and why. */
	assert_false(netaddr_list_parse("10.0.0.1/8", &l, why, sizeof why));
	assert_string_equal(why, "has \"10.0.0.1/8\", whose host bits are set");
	assert_false(netaddr_list_parse("10.0.0.0/33", NULL, why, sizeof why));
	assert_string_equal(why, "has \"10.0.0.0/33\", which is not an IP address or CIDR range");
	assert_false(netaddr_list_parse("::/129", NULL, why, sizeof why));
	assert_false(netaddr_list_parse("10.0.0.0/", NULL, why, sizeof why));
	assert_false(netaddr_list_parse("10.0.0.0/-1", NULL, why, sizeof why));
	assert_false(netaddr_list_parse("10.0.0.0/8x", NULL, why, sizeof why));
	assert_false(netaddr_list_parse("proxy.example", NULL, why, sizeof why));
	assert_string_equal(why, "has \"proxy.example\", which is not an IP address or CIDR range");
	{
		char many[NETADDR_LIST_MAX * 12 + 16] = "";
		size_t i, o = 0;
		for (i = 0; i <= NETADDR_LIST_MAX; i++)
			o += (size_t)snprintf(many + o, sizeof many - o, "10.0.0.%zu,", i);
		assert_false(netaddr_list_parse(many, NULL, why, sizeof why));
		assert_string_equal(why, "has more than 32 items");
	}
}

static void test_loopback_and_net(void **state)
{
	char out[NETADDR_TEXT_MAX];
	netaddr a, n;

	(void)state;
	a = addr("127.3.4.5");
	assert_true(netaddr_is_loopback(&a));
	a = addr("::1");
	assert_true(netaddr_is_loopback(&a));
	a = addr("::ffff:127.0.0.1");
	assert_true(netaddr_is_loopback(&a));
	a = addr("128.0.0.1");
	assert_false(netaddr_is_loopback(&a));
	a = addr("::2");
	assert_false(netaddr_is_loopback(&a));
	a = addr("2001:db8:1:2:3:4:5:6");
	netaddr_client_net(&a, &n);
	netaddr_format(&n, out);
	assert_string_equal(out, "2001:db8:1:2::");
	a = addr("192.0.2.9");
	netaddr_client_net(&a, &n);
	netaddr_format(&n, out);
	assert_string_equal(out, "192.0.2.9");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_format),
		cmocka_unit_test(test_lists),
		cmocka_unit_test(test_loopback_and_net),
	};
	return cmocka_run_group_tests_name("netaddr", tests, NULL, NULL);
}
