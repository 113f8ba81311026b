/*
 * test_uri.c: the path and query parsers, table-driven: every reason code,
 * the decoded form and segments of accepted paths, and the query pairs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/limits.h"
#include "core/uri.h"
#include "testutil.h"
#include "core/banned.h"

typedef struct path_case {
	const char *raw;
	size_t len; /* 0: strlen(raw) */
	const char *why; /* NULL: accepted */
	const char *decoded;
	size_t nsegs;
	const char *segs[4];
	bool trailing;
} path_case;

static const path_case path_cases[] = {
	{"/", 0, NULL, "/", 0, {NULL}, false},
	{"//", 0, NULL, "/", 0, {NULL}, false},
	{"/api/v1/notices", 0, NULL, "/api/v1/notices", 3, {"api", "v1", "notices"}, false},
	{"/api//v1/", 0, NULL, "/api/v1/", 2, {"api", "v1"}, true},
	{"/a%20b/%E4%B8%AD", 0, NULL, "/a b/\xE4\xB8\xAD", 2, {"a b", "\xE4\xB8\xAD"}, false},
	{"/\xE4\xB8\xAD", 0, NULL, "/\xE4\xB8\xAD", 1, {"\xE4\xB8\xAD"}, false},
	{"/a+b/%2B", 0, NULL, "/a+b/+", 2, {"a+b", "+"}, false}, /* '+' is literal in paths */
	{"/.../..a/.b", 0, NULL, "/.../..a/.b", 3, {"...", "..a", ".b"}, false},
	{"/%41%62", 0, NULL, "/Ab", 1, {"Ab"}, false},
	{"/a/b/extra", 4, NULL, "/a/b", 2, {"a", "b"}, false}, /* only len bytes */
	{"", 0, "uri.not_absolute", NULL, 0, {NULL}, false},
	{"a/b", 0, "uri.not_absolute", NULL, 0, {NULL}, false},
	{"%2Fa", 0, "uri.not_absolute", NULL, 0, {NULL}, false},
	{"/a%", 0, "uri.bad_escape", NULL, 0, {NULL}, false},
	{"/a%4", 0, "uri.bad_escape", NULL, 0, {NULL}, false},
	{"/a%4g", 0, "uri.bad_escape", NULL, 0, {NULL}, false},
	{"/a%%41", 0, "uri.bad_escape", NULL, 0, {NULL}, false},
	{"/a%00b", 0, "uri.nul", NULL, 0, {NULL}, false},
	{"/a\0b", 4, "uri.nul", NULL, 0, {NULL}, false},
	{"/a%2Fb", 0, "uri.encoded_slash", NULL, 0, {NULL}, false},
	{"/a%2fb", 0, "uri.encoded_slash", NULL, 0, {NULL}, false},
	{"/a%5Cb", 0, "uri.encoded_slash", NULL, 0, {NULL}, false},
	{"/a%5c..", 0, "uri.encoded_slash", NULL, 0, {NULL}, false},
	{"/.", 0, "uri.dot_segment", NULL, 0, {NULL}, false},
	{"/..", 0, "uri.dot_segment", NULL, 0, {NULL}, false},
	{"/a/../etc/passwd", 0, "uri.dot_segment", NULL, 0, {NULL}, false},
	{"/a/./b", 0, "uri.dot_segment", NULL, 0, {NULL}, false},
	{"/a/%2e%2e/b", 0, "uri.dot_segment", NULL, 0, {NULL}, false},
	{"/a/%2E", 0, "uri.dot_segment", NULL, 0, {NULL}, false},
	{"/a/.%2e/", 0, "uri.dot_segment", NULL, 0, {NULL}, false},
	{"/a\\b", 0, "uri.backslash", NULL, 0, {NULL}, false},
	{"\\a", 0, "uri.not_absolute", NULL, 0, {NULL}, false},
	{"/a%C0%80", 0, "uri.invalid_utf8", NULL, 0, {NULL}, false},
	{"/a%ED%A0%80", 0, "uri.invalid_utf8", NULL, 0, {NULL}, false},
	{"/a%F4%90%80%80", 0, "uri.invalid_utf8", NULL, 0, {NULL}, false},
	{"/a\xFF", 0, "uri.invalid_utf8", NULL, 0, {NULL}, false},
	{"/%E4%B8", 0, "uri.invalid_utf8", NULL, 0, {NULL}, false},
	{"/a%0Ab", 0, "uri.control", NULL, 0, {NULL}, false},
	{"/a\rb", 0, "uri.control", NULL, 0, {NULL}, false},
	{"/a%7F", 0, "uri.control", NULL, 0, {NULL}, false},
};

static void test_path_table(void **state)
{
	size_t i, k;

	for (i = 0; i < sizeof path_cases / sizeof path_cases[0]; i++) {
		const path_case *c = &path_cases[i];
		size_t len = c->len ? c->len : strlen(c->raw);
		arena a;
		uri_path p;
		const char *why = "unset";
		egov_err err;

		arena_init(&a, 1 << 16);
		err = uri_path_parse(&a, c->raw, len, &p, &why);
		if ((c->why == NULL) != (err == EGOV_OK) || (c->why && (!why || strcmp(why, c->why))))
			print_error("case %zu '%s': err %d why %s\n", i, c->raw, err, why ? why : "(null)");
		if (c->why) {
			assert_int_equal(err, EGOV_EINVAL);
			assert_non_null(why);
			assert_string_equal(why, c->why);
			assert_null(p.decoded);
			assert_int_equal(p.nsegs, 0);
		} else {
			assert_int_equal(err, EGOV_OK);
			assert_null(why);
			assert_string_equal(p.decoded, c->decoded);
			assert_int_equal(p.nsegs, c->nsegs);
			for (k = 0; k < c->nsegs; k++)
				assert_string_equal(p.segs[k], c->segs[k]);
			assert_int_equal(p.trailing_slash, c->trailing);
		}
		arena_release(&a);
	}
}

static void test_path_segment_limit(void **state)
{
	char raw[2 * EGOV_PATH_SEGMENTS_MAX + 3];
	size_t i, n = 0;
	arena a;
	uri_path p;
	const char *why;

	for (i = 0; i < EGOV_PATH_SEGMENTS_MAX; i++) {
		raw[n++] = '/';
		raw[n++] = 'x';
	}
	arena_init(&a, 1 << 16);
	assert_int_equal(uri_path_parse(&a, raw, n, &p, &why), EGOV_OK);
	assert_int_equal(p.nsegs, EGOV_PATH_SEGMENTS_MAX);
	raw[n++] = '/';
	assert_int_equal(uri_path_parse(&a, raw, n, &p, &why), EGOV_OK); /* trailing slash is no segment */
	assert_true(p.trailing_slash);
	raw[n++] = 'y';
	assert_int_equal(uri_path_parse(&a, raw, n, &p, &why), EGOV_EINVAL);
	assert_string_equal(why, "uri.too_many");
	arena_release(&a);
}

static void test_path_arena_full(void **state)
{
	arena a;
	uri_path p;
	const char *why = "unset";

	arena_init(&a, 16);
	assert_int_equal(uri_path_parse(&a, "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 32, &p, &why), EGOV_ELIMIT);
	assert_null(why);
	arena_release(&a);
}

typedef struct query_case {
	const char *raw;
	const char *why;
	size_t n;
	const char *pairs[8]; /* name, value, name, value ... */
} query_case;

static const query_case query_cases[] = {
	{"", NULL, 0, {NULL}},
	{"&&", NULL, 0, {NULL}},
	{"a=1", NULL, 1, {"a", "1"}},
	{"a=1&b=%20x&a=2", NULL, 3, {"a", "1", "b", " x", "a", "2"}},
	{"q=hello+world&e=", NULL, 2, {"q", "hello world", "e", ""}},
	{"flag&x=a=b", NULL, 2, {"flag", "", "x", "a=b"}},
	{"&a=1&&b=2&", NULL, 2, {"a", "1", "b", "2"}},
	{"%E4%B8%AD=%E6%96%87", NULL, 1, {"\xE4\xB8\xAD", "\xE6\x96\x87"}},
	{"t=a%0Ab%2B", NULL, 1, {"t", "a\nb+"}},
	{"=v", NULL, 1, {"", "v"}},
	{"a=%", "uri.bad_escape", 0, {NULL}},
	{"a=%z1", "uri.bad_escape", 0, {NULL}},
	{"a%2=1", "uri.bad_escape", 0, {NULL}},
	{"a=x%00", "uri.nul", 0, {NULL}},
	{"a%00=1", "uri.nul", 0, {NULL}},
	{"a=%C0%80", "uri.invalid_utf8", 0, {NULL}},
	{"a=%ED%A0%80", "uri.invalid_utf8", 0, {NULL}},
	{"a=\xF4\x90\x80\x80", "uri.invalid_utf8", 0, {NULL}},
};

static void test_query_table(void **state)
{
	size_t i, k;

	for (i = 0; i < sizeof query_cases / sizeof query_cases[0]; i++) {
		const query_case *c = &query_cases[i];
		arena a;
		uri_query q;
		const char *why = "unset";
		egov_err err;

		arena_init(&a, 1 << 16);
		err = uri_query_parse(&a, c->raw, strlen(c->raw), &q, &why);
		if ((c->why == NULL) != (err == EGOV_OK))
			print_error("case %zu '%s': err %d why %s\n", i, c->raw, err, why ? why : "(null)");
		if (c->why) {
			assert_int_equal(err, EGOV_EINVAL);
			assert_string_equal(why, c->why);
			assert_int_equal(q.n, 0);
		} else {
			assert_int_equal(err, EGOV_OK);
			assert_null(why);
			assert_int_equal(q.n, c->n);
			for (k = 0; k < c->n; k++) {
				assert_string_equal(q.params[k].name, c->pairs[2 * k]);
				assert_string_equal(q.params[k].value, c->pairs[2 * k + 1]);
			}
		}
		arena_release(&a);
	}
}

static void test_query_get_and_limit(void **state)
{
	buf b;
	size_t i;
	arena a;
	uri_query q;
	const char *why;

	arena_init(&a, 1 << 20);
	assert_int_equal(uri_query_parse(&a, "a=1&b=2&a=3", 11, &q, &why), EGOV_OK);
	assert_string_equal(uri_query_get(&q, "a"), "1");
	assert_string_equal(uri_query_get(&q, "b"), "2");
	assert_null(uri_query_get(&q, "c"));
	assert_null(uri_query_get(&q, "A"));

	buf_init(&b, 1 << 16);
	for (i = 0; i < EGOV_QUERY_PARAMS_MAX; i++)
		assert_int_equal(buf_addf(&b, "%sp%zu=%zu", i ? "&" : "", i, i), EGOV_OK);
	assert_int_equal(uri_query_parse(&a, b.data, b.len, &q, &why), EGOV_OK);
	assert_int_equal(q.n, EGOV_QUERY_PARAMS_MAX);
	assert_string_equal(uri_query_get(&q, "p63"), "63");
	assert_int_equal(buf_adds(&b, "&&"), EGOV_OK); /* empty pairs do not count */
	assert_int_equal(uri_query_parse(&a, b.data, b.len, &q, &why), EGOV_OK);
	assert_int_equal(buf_adds(&b, "x"), EGOV_OK);
	assert_int_equal(uri_query_parse(&a, b.data, b.len, &q, &why), EGOV_EINVAL);
	assert_string_equal(why, "uri.too_many");
	assert_int_equal(q.n, 0);
	buf_release(&b);
	arena_release(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_table),
		cmocka_unit_test(test_path_segment_limit),
		cmocka_unit_test(test_path_arena_full),
		cmocka_unit_test(test_query_table),
		cmocka_unit_test(test_query_get_and_limit),
	};
	return cmocka_run_group_tests_name("uri", tests, NULL, NULL);
}
