/*
 * test_exchange_im.c: the wire functions behind the GovStack Information
 * Mediator metaservices and identifiers (docs/exchange.md): one identifier
 * part, empty parts hidden by a router that reads "a//b" as "a/b", the
 * Accept header of getOpenAPI (RFC 9110 content negotiation), the YAML a
 * JSON description becomes, and the address of a federated central node.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "exchange/wire/wire.h"
#include "testutil.h"
#include "core/banned.h"

static void test_id_part(void **state)
{
	char longest[EXCHANGE_PART_MAX + 2];

	(void)state;
	assert_true(exchange_id_part_valid("DSAJ"));
	assert_true(exchange_id_part_valid("a_b.c-9"));
	assert_false(exchange_id_part_valid(""));
	assert_false(exchange_id_part_valid(NULL));
	assert_false(exchange_id_part_valid("DS\"AJ"));
	assert_false(exchange_id_part_valid("DS'AJ"));
	assert_false(exchange_id_part_valid("a b"));
	assert_false(exchange_id_part_valid("a/b"));
	assert_false(exchange_id_part_valid("caf\xc3\xa9"));
	memset(longest, 'A', EXCHANGE_PART_MAX);
	longest[EXCHANGE_PART_MAX] = '\0';
	assert_true(exchange_id_part_valid(longest));
	longest[EXCHANGE_PART_MAX] = 'A';
	longest[EXCHANGE_PART_MAX + 1] = '\0';
	assert_false(exchange_id_part_valid(longest));
}

static void test_raw_parts(void **state)
{
	(void)state;
	assert_true(exchange_raw_parts_nonempty("/r1/MO/GOV/DSAJ/REG/persons/x", 1, 5));
	assert_true(exchange_raw_parts_nonempty("/r1/MO/GOV/DSAJ/REG/persons//x", 1, 5)); /* the tail is free */
	assert_true(exchange_raw_parts_nonempty("/r1/MO/GOV/DSAJ", 1, 5));               /* missing is not empty */
	assert_true(exchange_raw_parts_nonempty("/r1/listClients?instanceId=MO", 1, 5));
	assert_true(exchange_raw_parts_nonempty("/r1/MO/GOV/DSAJ/REG/persons?x=//", 1, 5));
	assert_false(exchange_raw_parts_nonempty("/r1/MO//DSAJ/REG/persons/x", 1, 5));
	assert_false(exchange_raw_parts_nonempty("/r1//MO/GOV/DSAJ/REG/persons", 1, 5));
	assert_false(exchange_raw_parts_nonempty("/r1/MO/GOV/DSAJ/REG//x", 1, 5));
	assert_false(exchange_raw_parts_nonempty("/r1/MO/GOV/DSAJ/REG/", 1, 5));
	assert_false(exchange_raw_parts_nonempty("/peer/v1/r1/MO/GOV//REG/persons", 3, 5));
	assert_true(exchange_raw_parts_nonempty("/peer/v1/r1/MO/GOV/DSAJ/REG/persons", 3, 5));
}

static void test_accept(void **state)
{
	static const char *const offers[] = {"application/json", "text/yaml"};
	static const struct {
		const char *accept;
		int want;
	} cases[] = {
		{NULL, 0},
		{"", 0},
		{"  ", 0},
		{"application/json", 0},
		{"text/yaml", 1},
		{"TEXT/YAML", 1},
		{"*/*", 0},
		{"text/*", 1},
		{"application/*", 0},
		{"text/yaml;q=0.5, application/json", 0},
		{"application/json;q=0.4, text/yaml;q=0.5", 1},
		{"application/json;q=0.9, text/yaml;q=0.9", 0}, /* a tie: the server's order */
		{"application/json;q=0, */*", 1},              /* the exact range wins over the star */
		{"text/*;q=0.2, text/yaml;q=0, application/json;q=0.1", 0},
		{"text/html", -1},
		{"image/*", -1},
		{"application/json;q=0, text/yaml;q=0", -1},
		{"application/json;q=2", -1},                  /* not a qvalue: the range is passed over */
		{"application/json;q=0.1234", -1},
		{"application/json ; q=1.000 , text/yaml;q=0.999", 0},
		{"text/yaml; charset=utf-8", 1},
		{",,, text/yaml", 1},
		{"application", -1},
		{"*", -1},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int got = exchange_accept_pick(cases[i].accept, offers, 2);
		if (got != cases[i].want)
			fail_msg("Accept \"%s\": got %d, want %d", cases[i].accept ? cases[i].accept : "(none)", got,
				 cases[i].want);
	}
}

static void test_yaml(void **state)
{
	static const char json[] = "{\"openapi\":\"3.0.0\",\"info\":{\"title\":\"a: b\",\"version\":\"1.10\","
				   "\"x\":[\"yes\",\"Off\",\"null\",\"~\",\"\",\"-\",1e21,7,true,null,{},[]],"
				   "\"u\":\"\xe9\x99\xb3\"},\"paths\":{\"/p\":{\"get\":{\"responses\":{\"200\":{}}}}}}";
	static const char want[] = "openapi: '3.0.0'\n"
				   "info:\n"
				   "  title: 'a: b'\n"
				   "  version: '1.10'\n"
				   "  x:\n"
				   "  - 'yes'\n"
				   "  - 'Off'\n"
				   "  - 'null'\n"
				   "  - '~'\n"
				   "  - ''\n"
				   "  - '-'\n"
				   "  - 1.0e+21\n"
				   "  - 7\n"
				   "  - true\n"
				   "  - null\n"
				   "  - {}\n"
				   "  - []\n"
				   "  u: \xe9\x99\xb3\n"
				   "paths:\n"
				   "  /p:\n"
				   "    get:\n"
				   "      responses:\n"
				   "        '200': {}\n";
	buf b;

	(void)state;
	buf_init(&b, 64 * 1024);
	assert_int_equal(exchange_json_to_yaml(json, strlen(json), &b), EGOV_OK);
	assert_string_equal(b.data, want);
	assert_int_equal(exchange_json_to_yaml("{\"a\":", 5, &b), EGOV_EINVAL);
	buf_release(&b);
	/* Over the buffer's cap: an error, never a cut document. */
	buf_init(&b, 16);
	assert_int_equal(exchange_json_to_yaml(json, strlen(json), &b), EGOV_ELIMIT);
	buf_release(&b);
}

static void test_conf_url(void **state)
{
	(void)state;
	assert_true(exchange_conf_url_valid("http://127.0.0.1:8080"));
	assert_true(exchange_conf_url_valid("https://central.gov.hk"));
	assert_true(exchange_conf_url_valid("https://central.gov.hk/exchange-hk"));
	assert_true(exchange_conf_url_valid("https://[::1]:8443"));
	assert_false(exchange_conf_url_valid(""));
	assert_false(exchange_conf_url_valid(NULL));
	assert_false(exchange_conf_url_valid("ftp://central"));
	assert_false(exchange_conf_url_valid("https://"));
	assert_false(exchange_conf_url_valid("https://:80"));
	assert_false(exchange_conf_url_valid("https://user@central"));
	assert_false(exchange_conf_url_valid("https://central/x?y"));
	assert_false(exchange_conf_url_valid("https://central/x#y"));
	assert_false(exchange_conf_url_valid("https://central/a b"));
	assert_false(exchange_conf_url_valid("https://central/a\\b"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_id_part),	  cmocka_unit_test(test_raw_parts), cmocka_unit_test(test_accept),
		cmocka_unit_test(test_yaml),	  cmocka_unit_test(test_conf_url),
	};
	return cmocka_run_group_tests_name("exchange_im", tests, NULL, NULL);
}
