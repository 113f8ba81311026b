/*
 * test_exchange_gateway.c: the canonical texts a gateway signs
 * (docs/exchange.md, "Calling a service"): field order, empty optional
 * fields, no trailing newline, and refusal of fields that would break the
 * one-field-per-line framing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/buf.h"
#include "exchange/wire/wire.h"
#include "testutil.h"
#include "core/banned.h"

static void test_request_text(void **state)
{
	exchange_canon_req c = {
		.message_id = "01a21a95-0000-7000-8000-000000000001",
		.client = "MO/GOV/DSB/APP",
		.service = "MO/GOV/DSAJ/REG/persons",
		.method = "POST",
		.path = "/persons?a=1&b=%20x",
		.content_type = "application/json",
		.represented_party = NULL,
		.data_subject = "resident-42",
		.purpose = "",
		.signed_at = "2026-11-27T10:00:00.000Z",
		.body_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	};
	buf b;

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(exchange_canon_request(&c, &b), EGOV_OK);
	assert_string_equal(b.data, "egov-exchange/1 request\n"
				    "01a21a95-0000-7000-8000-000000000001\n"
				    "MO/GOV/DSB/APP\n"
				    "MO/GOV/DSAJ/REG/persons\n"
				    "POST\n"
				    "/persons?a=1&b=%20x\n"
				    "application/json\n"
				    "\n"
				    "resident-42\n"
				    "\n"
				    "2026-11-27T10:00:00.000Z\n"
				    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	/* A line break inside a field would let two requests sign alike. */
	c.purpose = "why\nPOST";
	assert_int_equal(exchange_canon_request(&c, &b), EGOV_EINVAL);
	c.purpose = "why\r";
	assert_int_equal(exchange_canon_request(&c, &b), EGOV_EINVAL);
	buf_release(&b);
}

static void test_response_text(void **state)
{
	exchange_canon_resp c = {
		.message_id = "m-1",
		.service = "MO/GOV/DSAJ/REG/persons",
		.content_type = NULL,
		.request_sig = "c2ln",
		.signed_at = "2026-11-27T10:00:01.000Z",
		.body_sha256 = "00",
		.status = 204,
	};
	buf b;

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(exchange_canon_response(&c, &b), EGOV_OK);
	assert_string_equal(b.data, "egov-exchange/1 response\nm-1\nMO/GOV/DSAJ/REG/persons\n204\n\nc2ln\n"
				    "2026-11-27T10:00:01.000Z\n00");
	/* The text is rebuilt from scratch each time (out is reset). */
	assert_int_equal(exchange_canon_response(&c, &b), EGOV_OK);
	assert_int_equal(strncmp(b.data, "egov-exchange/1 response\n", 25), 0);
	assert_null(strstr(b.data + 1, "egov-exchange/1"));
	c.status = 42;
	assert_int_equal(exchange_canon_response(&c, &b), EGOV_EINVAL);
	buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_text),
		cmocka_unit_test(test_response_text),
	};
	return cmocka_run_group_tests_name("exchange_gateway", tests, NULL, NULL);
}
