/*
 * test_err.c: the error table (core/err.h): each error maps to the HTTP
 * status and the problem code that clients have always seen for it (the
 * codes are in docs/api/problems.md), and a value outside the enum to a
 * 500 "internal".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/err.h"
#include "testutil.h"
#include "core/banned.h"

static void test_error_table(void **state)
{
	static const struct {
		egov_err err;
		int status;
		const char *code;
	} want[] = {
		{EGOV_ENOMEM, 503, "unavailable"},
		{EGOV_EINVAL, 400, "bad_request"},
		{EGOV_ENOTFOUND, 404, "not_found"},
		{EGOV_ECONFLICT, 409, "conflict"},
		{EGOV_ELIMIT, 413, "payload_too_large"},
		{EGOV_EPERM, 403, "forbidden"},
		{EGOV_EAUTH, 401, "unauthorized"},
		{EGOV_EBUSY, 429, "too_many_requests"},
		{EGOV_EDB, 500, "internal"},
		{EGOV_EIO, 500, "internal"},
		{EGOV_EUNAVAILABLE, 503, "unavailable"},
		{EGOV_EINTERNAL, 500, "internal"},
		{EGOV_ECORRUPT, 500, "internal"},
	};
	size_t i;

	(void)state;
	assert_int_equal(sizeof want / sizeof want[0], EGOV_ERR__COUNT - 1);
	for (i = 0; i < sizeof want / sizeof want[0]; i++) {
		assert_int_equal(egov_err_http_status(want[i].err), want[i].status);
		assert_string_equal(egov_err_problem_code(want[i].err), want[i].code);
		assert_non_null(egov_err_name(want[i].err));
	}
	assert_int_equal(egov_err_http_status(EGOV_ERR__COUNT), 500);
	assert_string_equal(egov_err_problem_code(EGOV_ERR__COUNT), "internal");
	assert_string_equal(egov_err_name(EGOV_ERR__COUNT), "internal");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_table),
	};
	return cmocka_run_group_tests_name("err", tests, NULL, NULL);
}
