/*
 * test_json.c: json_bind() against a table with every field type, the
 * precheck's UTF-8 and depth rules, and the writer's output byte for byte.
 * Error cases are a table: body in, egov_err + code + field path out.
 * Arrays of objects have a table of their own, with the index in the path,
 * and json_bind_tree() is checked on a tree parsed here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cJSON.h>

#include "core/json.h"
#include "core/limits.h"
#include "testutil.h"
#include "core/banned.h"

typedef struct addr {
	const char *street;
	int64_t no;
	bool no_present;
} addr;

typedef struct body {
	const char *name;
	int64_t age;
	bool active;
	json_str_array tags;
	addr address;
	const char *meta;
	const char *note;
	int64_t count;
	bool note_present;
	bool age_present;
} body;

static const json_field addr_fields[] = {
	{.name = "street", .type = JSON_T_STRING, .offset = offsetof(addr, street), .required = true},
	{.name = "no", .type = JSON_T_INT, .offset = offsetof(addr, no), .nullable = true, .min = 1,
	 .max = 9999, .present_offset = JSON_PRESENT(addr, no_present)},
};

static const json_field body_fields[] = {
	{.name = "name", .type = JSON_T_STRING, .offset = offsetof(body, name), .required = true, .min_len = 1,
	 .max_len = 8},
	{.name = "age", .type = JSON_T_INT, .offset = offsetof(body, age), .min = 0, .max = 150,
	 .present_offset = JSON_PRESENT(body, age_present)},
	{.name = "active", .type = JSON_T_BOOL, .offset = offsetof(body, active)},
	{.name = "tags", .type = JSON_T_STRING_ARRAY, .offset = offsetof(body, tags), .max_len = 3, .min_len = 1},
	{.name = "address", .type = JSON_T_OBJECT, .offset = offsetof(body, address), .fields = addr_fields,
	 .nfields = sizeof addr_fields / sizeof addr_fields[0]},
	{.name = "meta", .type = JSON_T_RAW, .offset = offsetof(body, meta)},
	{.name = "note", .type = JSON_T_STRING, .offset = offsetof(body, note), .nullable = true,
	 .present_offset = JSON_PRESENT(body, note_present)},
	{.name = "count", .type = JSON_T_INT, .offset = offsetof(body, count)},
};
#define NFIELDS (sizeof body_fields / sizeof body_fields[0])

static egov_err bind(arena *a, const char *text, size_t len, body *b, json_error *je)
{
	memset(b, 0, sizeof *b);
	return json_bind(a, text, len, body_fields, NFIELDS, b, je);
}

typedef struct bad_case {
	const char *body;
	size_t len; /* 0: strlen(body) */
	egov_err err;
	const char *code;
	const char *field;
} bad_case;

static const bad_case bad_cases[] = {
	/* not JSON */
	{"", 0, EGOV_EINVAL, "json.malformed", ""},
	{"   ", 0, EGOV_EINVAL, "json.malformed", ""},
	{"{", 0, EGOV_EINVAL, "json.malformed", ""},
	{"{\"name\":\"a\"", 0, EGOV_EINVAL, "json.malformed", ""},
	{"{\"name\":\"a\"} x", 0, EGOV_EINVAL, "json.malformed", ""},
	{"{\"name\":\"a\"}{}", 0, EGOV_EINVAL, "json.malformed", ""},
	{"{\"name\":\"a\",}", 0, EGOV_EINVAL, "json.malformed", ""},
	{"{'name':\"a\"}", 0, EGOV_EINVAL, "json.malformed", ""},
	{"{\"name\":\"a\",\"age\":01}", 0, EGOV_EINVAL, "json.malformed", ""},
	{"{\"name\":\"a\",\"age\":1.}", 0, EGOV_EINVAL, "json.malformed", ""},
	{"{\"name\":\"a\",\"age\":-.5}", 0, EGOV_EINVAL, "json.malformed", ""},
	{"{\"name\":\"a\",\"age\":+1}", 0, EGOV_EINVAL, "json.malformed", ""},
	{"{\"name\":\"a\",\"age\":1e}", 0, EGOV_EINVAL, "json.malformed", ""},
	{"{\"name\":\"a\",\"age\":NaN}", 0, EGOV_EINVAL, "json.malformed", ""},
	{"{\"name\":\"a\",\"count\":1000000000000000000000000000000000000000000000000000000000000000000000}", 0,
	 EGOV_EINVAL, "json.out_of_range", "count"}, /* 70 digits */
	{"{\"name\":\"a\tb\"}", 0, EGOV_EINVAL, "json.malformed", ""},     /* raw tab in string */
	{"{\"name\":\"a\\x\"}", 0, EGOV_EINVAL, "json.malformed", ""},     /* bad escape */
	{"{\"name\":\"\\u12\"}", 0, EGOV_EINVAL, "json.malformed", ""},    /* short \u */
	{"{\"name\":\"\\ud800\"}", 0, EGOV_EINVAL, "json.malformed", ""},  /* lone surrogate escape */
	{"\x01{\"name\":\"a\"}", 0, EGOV_EINVAL, "json.malformed", ""},     /* cJSON would skip it */
	{"\xEF\xBB\xBF{\"name\":\"a\"}", 0, EGOV_EINVAL, "json.malformed", ""}, /* BOM */
	{"]{\"name\":\"a\"}", 0, EGOV_EINVAL, "json.malformed", ""},
	{"{\"name\":\"a\"}\0", 13, EGOV_EINVAL, "json.malformed", ""},
	/* escaped NUL */
	{"{\"name\":\"a\\u0000b\"}", 0, EGOV_EINVAL, "json.nul", ""},
	{"{\"name\\u0000x\":\"a\"}", 0, EGOV_EINVAL, "json.nul", ""},
	/* UTF-8 */
	{"{\"name\":\"\xC0\x80\"}", 0, EGOV_EINVAL, "json.invalid_utf8", ""},          /* overlong NUL */
	{"{\"name\":\"\xC1\xBF\"}", 0, EGOV_EINVAL, "json.invalid_utf8", ""},          /* overlong 2-byte */
	{"{\"name\":\"\xE0\x80\xAF\"}", 0, EGOV_EINVAL, "json.invalid_utf8", ""},      /* overlong 3-byte */
	{"{\"name\":\"\xF0\x80\x80\xAF\"}", 0, EGOV_EINVAL, "json.invalid_utf8", ""},  /* overlong 4-byte */
	{"{\"name\":\"\xED\xA0\x80\"}", 0, EGOV_EINVAL, "json.invalid_utf8", ""},      /* U+D800 */
	{"{\"name\":\"\xED\xBF\xBF\"}", 0, EGOV_EINVAL, "json.invalid_utf8", ""},      /* U+DFFF */
	{"{\"name\":\"\xF4\x90\x80\x80\"}", 0, EGOV_EINVAL, "json.invalid_utf8", ""},  /* U+110000 */
	{"{\"name\":\"\xF5\x80\x80\x80\"}", 0, EGOV_EINVAL, "json.invalid_utf8", ""},
	{"{\"name\":\"\x80\"}", 0, EGOV_EINVAL, "json.invalid_utf8", ""},              /* lone continuation */
	{"{\"name\":\"\xC3\"}", 0, EGOV_EINVAL, "json.invalid_utf8", ""},              /* truncated */
	{"{\"name\":\"\xE4\xB8\"}", 0, EGOV_EINVAL, "json.invalid_utf8", ""},
	{"{\"name\":\"a\"}\xC3", 0, EGOV_EINVAL, "json.invalid_utf8", ""},             /* cut at the end */
	{"{\"name\":\"\xFF\"}", 0, EGOV_EINVAL, "json.invalid_utf8", ""},
	{"{\"n\xFF\":1}", 0, EGOV_EINVAL, "json.invalid_utf8", ""},
	/* shape */
	{"[]", 0, EGOV_EINVAL, "json.not_object", ""},
	{"\"x\"", 0, EGOV_EINVAL, "json.not_object", ""},
	{"null", 0, EGOV_EINVAL, "json.not_object", ""},
	{"{\"name\":\"a\",\"address\":[]}", 0, EGOV_EINVAL, "json.not_object", "address"},
	{"{\"name\":\"a\",\"address\":\"x\"}", 0, EGOV_EINVAL, "json.not_object", "address"},
	{"{\"name\":\"a\",\"nick\":\"b\"}", 0, EGOV_EINVAL, "json.unknown_field", "nick"},
	{"{\"name\":\"a\",\"address\":{\"street\":\"s\",\"zip\":1}}", 0, EGOV_EINVAL, "json.unknown_field",
	 "address.zip"},
	{"{\"name\":\"a\",\"Name\":\"b\"}", 0, EGOV_EINVAL, "json.unknown_field", "Name"},
	{"{\"name\":\"a\",\"name\":\"b\"}", 0, EGOV_EINVAL, "json.duplicate_field", "name"},
	{"{\"name\":\"a\",\"age\":1,\"age\":1}", 0, EGOV_EINVAL, "json.duplicate_field", "age"},
	{"{\"name\":\"a\",\"address\":{\"street\":\"s\",\"street\":\"t\"}}", 0, EGOV_EINVAL,
	 "json.duplicate_field", "address.street"},
	{"{\"name\":\"a\",\"meta\":{\"k\":1,\"j\":{\"x\":1,\"x\":2}}}", 0, EGOV_EINVAL, "json.duplicate_field",
	 "meta.j.x"},
	{"{\"name\":\"a\",\"meta\":[{},{\"y\":1,\"y\":1}]}", 0, EGOV_EINVAL, "json.duplicate_field",
	 "meta[1].y"},
	{"{}", 0, EGOV_EINVAL, "json.missing_field", "name"},
	{"{\"age\":3}", 0, EGOV_EINVAL, "json.missing_field", "name"},
	{"{\"name\":\"a\",\"address\":{}}", 0, EGOV_EINVAL, "json.missing_field", "address.street"},
	/* types */
	{"{\"name\":1}", 0, EGOV_EINVAL, "json.wrong_type", "name"},
	{"{\"name\":null}", 0, EGOV_EINVAL, "json.wrong_type", "name"},
	{"{\"name\":\"a\",\"age\":\"3\"}", 0, EGOV_EINVAL, "json.wrong_type", "age"},
	{"{\"name\":\"a\",\"age\":true}", 0, EGOV_EINVAL, "json.wrong_type", "age"},
	{"{\"name\":\"a\",\"age\":1.5}", 0, EGOV_EINVAL, "json.wrong_type", "age"},
	{"{\"name\":\"a\",\"count\":0.000001}", 0, EGOV_EINVAL, "json.wrong_type", "count"},
	{"{\"name\":\"a\",\"age\":null}", 0, EGOV_EINVAL, "json.wrong_type", "age"},
	{"{\"name\":\"a\",\"active\":1}", 0, EGOV_EINVAL, "json.wrong_type", "active"},
	{"{\"name\":\"a\",\"active\":\"true\"}", 0, EGOV_EINVAL, "json.wrong_type", "active"},
	{"{\"name\":\"a\",\"tags\":\"x\"}", 0, EGOV_EINVAL, "json.wrong_type", "tags"},
	{"{\"name\":\"a\",\"tags\":[\"x\",2]}", 0, EGOV_EINVAL, "json.wrong_type", "tags[1]"},
	{"{\"name\":\"a\",\"tags\":[\"x\",\"y\",null]}", 0, EGOV_EINVAL, "json.wrong_type", "tags[2]"},
	{"{\"name\":\"a\",\"tags\":[[\"x\"]]}", 0, EGOV_EINVAL, "json.wrong_type", "tags[0]"},
	{"{\"name\":\"a\",\"meta\":null}", 0, EGOV_EINVAL, "json.wrong_type", "meta"},
	{"{\"name\":\"a\",\"address\":{\"street\":\"s\",\"no\":\"1\"}}", 0, EGOV_EINVAL, "json.wrong_type",
	 "address.no"},
	/* lengths */
	{"{\"name\":\"123456789\"}", 0, EGOV_EINVAL, "json.too_long", "name"},
	{"{\"name\":\"\xE4\xB8\xAD\xE6\x96\x87\xE5\xAD\x97\"}", 0, EGOV_EINVAL, "json.too_long", "name"}, /* 9 bytes */
	{"{\"name\":\"\"}", 0, EGOV_EINVAL, "json.too_short", "name"},
	{"{\"name\":\"a\",\"tags\":[\"a\",\"b\",\"c\",\"d\"]}", 0, EGOV_EINVAL, "json.too_long", "tags"},
	{"{\"name\":\"a\",\"tags\":[\"a\",\"\"]}", 0, EGOV_EINVAL, "json.too_short", "tags[1]"},
	/* integers */
	{"{\"name\":\"a\",\"age\":151}", 0, EGOV_EINVAL, "json.out_of_range", "age"},
	{"{\"name\":\"a\",\"age\":-1}", 0, EGOV_EINVAL, "json.out_of_range", "age"},
	{"{\"name\":\"a\",\"count\":1e300}", 0, EGOV_EINVAL, "json.out_of_range", "count"},
	{"{\"name\":\"a\",\"count\":-1e300}", 0, EGOV_EINVAL, "json.out_of_range", "count"},
	{"{\"name\":\"a\",\"count\":1e400}", 0, EGOV_EINVAL, "json.out_of_range", "count"},
	{"{\"name\":\"a\",\"count\":9007199254740992}", 0, EGOV_EINVAL, "json.out_of_range", "count"},
	{"{\"name\":\"a\",\"count\":9223372036854775807}", 0, EGOV_EINVAL, "json.out_of_range", "count"},
	{"{\"name\":\"a\",\"count\":-9223372036854775808}", 0, EGOV_EINVAL, "json.out_of_range", "count"},
	{"{\"name\":\"a\",\"count\":18446744073709551616}", 0, EGOV_EINVAL, "json.out_of_range", "count"},
	{"{\"name\":\"a\",\"address\":{\"street\":\"s\",\"no\":0}}", 0, EGOV_EINVAL, "json.out_of_range",
	 "address.no"},
};

static void test_bind_rejects(void **state)
{
	size_t i;

	for (i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		const bad_case *c = &bad_cases[i];
		size_t len = c->len ? c->len : strlen(c->body);
		arena a;
		body b;
		json_error je;
		egov_err err;

		arena_init(&a, 1 << 20);
		err = bind(&a, c->body, len, &b, &je);
		if (err != c->err || !je.code || strcmp(je.code, c->code) != 0 || strcmp(je.field, c->field) != 0)
			print_error("case %zu %s: got err %d code %s field '%s', want %s '%s'\n", i, c->body, err,
				    je.code ? je.code : "(null)", je.field, c->code, c->field);
		assert_int_equal(err, c->err);
		assert_non_null(je.code);
		assert_string_equal(je.code, c->code);
		assert_string_equal(je.field, c->field);
		arena_release(&a);
	}
}

static void test_bind_all_types(void **state)
{
	static const char text[] = " {\"name\":\"\xF0\x9F\x98\x80\xC3\xA9\",\"age\":150,\"active\":true,"
				   "\"tags\":[\"a\",\"b\\\"c\",\"\\u00e9\"],"
				   "\"address\":{\"street\":\"Rua \\\"A\\\"\",\"no\":12},"
				   "\"meta\":{ \"k\" : [1, 2.5, \"x\", null, {\"z\":false}] },"
				   "\"note\":null,\"count\":-9007199254740991} \r\n\t";
	arena a;
	body b;
	json_error je;

	arena_init(&a, 1 << 20);
	assert_int_equal(bind(&a, text, strlen(text), &b, &je), EGOV_OK);
	assert_string_equal(b.name, "\xF0\x9F\x98\x80\xC3\xA9");
	assert_int_equal(b.age, 150);
	assert_true(b.age_present);
	assert_true(b.active);
	assert_int_equal(b.tags.n, 3);
	assert_string_equal(b.tags.items[0], "a");
	assert_string_equal(b.tags.items[1], "b\"c");
	assert_string_equal(b.tags.items[2], "\xC3\xA9");
	assert_string_equal(b.address.street, "Rua \"A\"");
	assert_int_equal(b.address.no, 12);
	assert_true(b.address.no_present);
	assert_string_equal(b.meta, "{\"k\":[1,2.5,\"x\",null,{\"z\":false}]}");
	assert_null(b.note);
	assert_true(b.note_present); /* present as null */
	assert_true(b.count == -9007199254740991LL);
	arena_release(&a);
}

static void test_bind_optional_and_defaults(void **state)
{
	static const char text[] = "{\"name\":\"a\",\"address\":{\"street\":\"s\",\"no\":null},\"tags\":[],"
				   "\"count\":1e2,\"meta\":\"plain\"}";
	arena a;
	body b;
	json_error je;

	arena_init(&a, 1 << 20);
	memset(&b, 0, sizeof b);
	b.age = 42; /* a default the body does not override */
	assert_int_equal(json_bind(&a, text, strlen(text), body_fields, NFIELDS, &b, &je), EGOV_OK);
	assert_int_equal(b.age, 42);
	assert_false(b.age_present);
	assert_false(b.note_present);
	assert_null(b.note);
	assert_int_equal(b.address.no, 0);
	assert_true(b.address.no_present);
	assert_int_equal(b.tags.n, 0);
	assert_int_equal(b.count, 100); /* value-integral numbers are integers */
	assert_string_equal(b.meta, "\"plain\"");
	arena_release(&a);
}

static void test_bind_int_edges(void **state)
{
	static const struct {
		const char *text;
		int64_t want;
	} ok[] = {
		{"{\"name\":\"a\",\"count\":9007199254740991}", 9007199254740991LL},
		{"{\"name\":\"a\",\"count\":-9007199254740991}", -9007199254740991LL},
		{"{\"name\":\"a\",\"count\":0}", 0},
		{"{\"name\":\"a\",\"count\":-0}", 0},
		{"{\"name\":\"a\",\"count\":1.0}", 1},
		{"{\"name\":\"a\",\"count\":25E-1}", INT64_MIN}, /* 2.5: wrong_type */
		{"{\"name\":\"a\",\"age\":0}", 0},
	};
	size_t i;

	for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		arena a;
		body b;
		json_error je;
		egov_err err;

		arena_init(&a, 1 << 16);
		err = bind(&a, ok[i].text, strlen(ok[i].text), &b, &je);
		if (ok[i].want == INT64_MIN) {
			assert_int_equal(err, EGOV_EINVAL);
			assert_string_equal(je.code, "json.wrong_type");
		} else {
			assert_int_equal(err, EGOV_OK);
			assert_true(b.count == ok[i].want || b.age == ok[i].want);
		}
		arena_release(&a);
	}
}

/* {"name":"a","meta": + depth-1 arrays: the outer object is depth 1. */
static char *nested(size_t depth)
{
	buf b;
	size_t i;

	buf_init(&b, 1 << 16);
	assert_int_equal(buf_adds(&b, "{\"name\":\"a\",\"meta\":"), EGOV_OK);
	for (i = 1; i < depth; i++)
		assert_int_equal(buf_addc(&b, '['), EGOV_OK);
	assert_int_equal(buf_adds(&b, "1"), EGOV_OK);
	for (i = 1; i < depth; i++)
		assert_int_equal(buf_addc(&b, ']'), EGOV_OK);
	assert_int_equal(buf_addc(&b, '}'), EGOV_OK);
	return buf_detach(&b, NULL);
}

static void test_depth_limit(void **state)
{
	char *at = nested(EGOV_JSON_DEPTH_MAX), *over = nested(EGOV_JSON_DEPTH_MAX + 1);
	char *deep = nested(5000);
	arena a;
	body b;
	json_error je;

	arena_init(&a, 1 << 20);
	assert_int_equal(bind(&a, at, strlen(at), &b, &je), EGOV_OK);
	assert_int_equal(bind(&a, over, strlen(over), &b, &je), EGOV_EINVAL);
	assert_string_equal(je.code, "json.too_deep");
	assert_string_equal(je.field, "");
	assert_int_equal(bind(&a, deep, strlen(deep), &b, &je), EGOV_EINVAL);
	assert_string_equal(je.code, "json.too_deep");
	/* brackets inside strings do not count */
	assert_null(json_precheck("[\"[[[[\\\"[[[\"]", 13, 1));
	assert_string_equal(json_precheck("[[1]]", 5, 1), "json.too_deep");
	assert_null(json_precheck("[[1]]", 5, 2));
	arena_release(&a);
	free(at);
	free(over);
	free(deep);
}

static void test_precheck_utf8(void **state)
{
	static const struct {
		const char *s;
		const char *want;
	} cases[] = {
		{"\"\xF0\x9F\x98\x80\"", NULL},          /* U+1F600 */
		{"\"\xF4\x8F\xBF\xBF\"", NULL},          /* U+10FFFF */
		{"\"\xED\x9F\xBF\"", NULL},              /* U+D7FF */
		{"\"\xEE\x80\x80\"", NULL},              /* U+E000 */
		{"\"\xC2\x80\xDF\xBF\"", NULL},          /* U+0080, U+07FF */
		{"\"\xE0\xA0\x80\"", NULL},              /* U+0800 */
		{"\"\xF0\x90\x80\x80\"", NULL},          /* U+10000 */
		{"\"\xC0\x80\"", "json.invalid_utf8"},
		{"\"\xED\xA0\x80\"", "json.invalid_utf8"},
		{"\"\xF4\x90\x80\x80\"", "json.invalid_utf8"},
		{"\"\xE0\x9F\xBF\"", "json.invalid_utf8"},
		{"\"\xF0\x8F\xBF\xBF\"", "json.invalid_utf8"},
		{"\"\xF0\x9F\x98\"", "json.invalid_utf8"},
		{"\"\xC3\x28\"", "json.invalid_utf8"},
		{"\"\xFE\"", "json.invalid_utf8"},
		{"\"\\u0000\"", "json.nul"},
		{"\"\\u0001\"", NULL},
		{"\"\\uD83D\\uDE00\"", NULL},
		{"\"abc", "json.malformed"},
		{"\"abc\\", "json.malformed"},
		{"1", NULL},
		{"-0.5e+10", NULL},
		{"\x7f", "json.malformed"},
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *got = json_precheck(cases[i].s, strlen(cases[i].s), EGOV_JSON_DEPTH_MAX);
		if (cases[i].want == NULL) {
			if (got)
				print_error("case %zu: got %s\n", i, got);
			assert_null(got);
		} else {
			assert_non_null(got);
			assert_string_equal(got, cases[i].want);
		}
	}
}

static void test_member_limit(void **state)
{
	buf b;
	size_t i;
	arena a;
	body out;
	json_error je;

	/* meta (RAW) with EGOV_JSON_MEMBERS_MAX + 1 members */
	buf_init(&b, 1 << 20);
	assert_int_equal(buf_adds(&b, "{\"name\":\"a\",\"meta\":{"), EGOV_OK);
	for (i = 0; i <= EGOV_JSON_MEMBERS_MAX; i++)
		assert_int_equal(buf_addf(&b, "%s\"k%zu\":1", i ? "," : "", i), EGOV_OK);
	assert_int_equal(buf_adds(&b, "}}"), EGOV_OK);
	arena_init(&a, 1 << 20);
	assert_int_equal(bind(&a, b.data, b.len, &out, &je), EGOV_EINVAL);
	assert_string_equal(je.code, "json.too_large");
	assert_string_equal(je.field, "meta");

	/* the top level, all members unknown: the count is checked first */
	buf_reset(&b);
	assert_int_equal(buf_addc(&b, '{'), EGOV_OK);
	for (i = 0; i <= EGOV_JSON_MEMBERS_MAX; i++)
		assert_int_equal(buf_addf(&b, "%s\"k%zu\":1", i ? "," : "", i), EGOV_OK);
	assert_int_equal(buf_addc(&b, '}'), EGOV_OK);
	assert_int_equal(bind(&a, b.data, b.len, &out, &je), EGOV_EINVAL);
	assert_string_equal(je.code, "json.too_large");
	assert_string_equal(je.field, "");
	arena_release(&a);
	buf_release(&b);
}

static void test_arena_full(void **state)
{
	static const char text[] = "{\"name\":\"abcdefgh\",\"meta\":[1,2,3,4,5,6,7,8,9,10]}";
	arena a;
	body b;
	json_error je;

	arena_init(&a, 8);
	assert_int_equal(bind(&a, text, strlen(text), &b, &je), EGOV_ELIMIT);
	assert_string_equal(je.code, "json.too_large");
	assert_string_equal(je.field, "name");
	arena_release(&a);
}

static void test_not_nul_terminated(void **state)
{
	/* the body is exactly len bytes; what follows must not be read */
	char text[] = "{\"name\":\"ab\"}garbage";
	arena a;
	body b;
	json_error je;

	arena_init(&a, 1 << 16);
	assert_int_equal(bind(&a, text, 13, &b, &je), EGOV_OK);
	assert_string_equal(b.name, "ab");
	assert_int_equal(bind(&a, text, 12, &b, &je), EGOV_EINVAL);
	assert_string_equal(je.code, "json.malformed");
	arena_release(&a);
}

/* ---- writer ---- */

static void test_writer_output(void **state)
{
	buf b;
	jw w;

	buf_init(&b, 4096);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_kstr(&w, "s", "q\"b\\s/\n\r\t\x01\x1f\x7f é 中文 \xF0\x9F\x98\x80");
	jw_kint(&w, "min", INT64_MIN);
	jw_kint(&w, "max", INT64_MAX);
	jw_kbool(&w, "t", true);
	jw_kbool(&w, "f", false);
	jw_kstr(&w, "n", NULL);
	jw_key(&w, "a");
	jw_arr_begin(&w);
	jw_int(&w, 1);
	jw_str(&w, "x");
	jw_null(&w);
	jw_obj_begin(&w);
	jw_obj_end(&w);
	jw_arr_begin(&w);
	jw_arr_end(&w);
	jw_raw(&w, "{\"r\":[1,2]}");
	jw_arr_end(&w);
	jw_kstr(&w, "k\"ey", "");
	jw_obj_end(&w);
	assert_int_equal(w.err, EGOV_OK);
	assert_int_equal(w.depth, 0);
	assert_string_equal(b.data, "{\"s\":\"q\\\"b\\\\s/\\n\\r\\t\\u0001\\u001f\x7f é 中文 \xF0\x9F\x98\x80\","
				    "\"min\":-9223372036854775808,\"max\":9223372036854775807,"
				    "\"t\":true,\"f\":false,\"n\":null,"
				    "\"a\":[1,\"x\",null,{},[],{\"r\":[1,2]}],\"k\\\"ey\":\"\"}");
	buf_release(&b);
}

static void test_writer_errors(void **state)
{
	buf b;
	jw w;
	int i;

	/* depth: exactly the limit works, one more is a sticky error */
	buf_init(&b, 4096);
	jw_init(&w, &b);
	for (i = 0; i < EGOV_JSON_DEPTH_MAX_WRITER; i++)
		jw_arr_begin(&w);
	for (i = 0; i < EGOV_JSON_DEPTH_MAX_WRITER; i++)
		jw_arr_end(&w);
	assert_int_equal(w.err, EGOV_OK);
	assert_int_equal(b.len, 2 * EGOV_JSON_DEPTH_MAX_WRITER);
	buf_reset(&b);
	jw_init(&w, &b);
	for (i = 0; i <= EGOV_JSON_DEPTH_MAX_WRITER; i++)
		jw_arr_begin(&w);
	assert_int_equal(w.err, EGOV_EINTERNAL);
	jw_int(&w, 5);
	assert_int_equal(w.err, EGOV_EINTERNAL);
	assert_int_equal(b.len, EGOV_JSON_DEPTH_MAX_WRITER); /* nothing after the error */

	/* unbalanced end, key outside an object */
	buf_reset(&b);
	jw_init(&w, &b);
	jw_obj_end(&w);
	assert_int_equal(w.err, EGOV_EINTERNAL);
	jw_init(&w, &b);
	jw_key(&w, "k");
	assert_int_equal(w.err, EGOV_EINTERNAL);
	buf_release(&b);

	/* buf cap: ELIMIT, sticky, never a truncated success */
	buf_init(&b, 10);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_kstr(&w, "key", "a long value");
	assert_int_equal(w.err, EGOV_ELIMIT);
	jw_obj_end(&w);
	assert_int_equal(w.err, EGOV_ELIMIT);
	buf_release(&b);
}

/* ---- arrays of objects --------------------------------------------------------- */

typedef struct cert {
	const char *usage;
	int64_t serial;
} cert;

typedef struct member {
	const char *code;
	int64_t level;
	json_str_array tags;
	json_obj_array certs; /* of cert */
	bool level_present;
} member;

typedef struct roster {
	const char *name;
	json_obj_array members; /* of member */
	json_obj_array extra;   /* of cert, optional, nullable, default limits */
} roster;

static const json_field cert_fields[] = {
	{.name = "usage", .type = JSON_T_STRING, .offset = offsetof(cert, usage), .required = true, .max_len = 4},
	{.name = "serial", .type = JSON_T_INT, .offset = offsetof(cert, serial), .min = 1, .max = 1000},
};

static const json_field member_fields[] = {
	{.name = "code", .type = JSON_T_STRING, .offset = offsetof(member, code), .required = true, .min_len = 1,
	 .max_len = 8},
	{.name = "level", .type = JSON_T_INT, .offset = offsetof(member, level), .min = 1, .max = 9,
	 .present_offset = JSON_PRESENT(member, level_present)},
	{.name = "tags", .type = JSON_T_STRING_ARRAY, .offset = offsetof(member, tags), .max_len = 2},
	{.name = "certs", .type = JSON_T_OBJECT_ARRAY, .offset = offsetof(member, certs), .fields = cert_fields,
	 .nfields = sizeof cert_fields / sizeof cert_fields[0], .elem_size = sizeof(cert), .max_len = 2},
};

static const json_field roster_fields[] = {
	{.name = "name", .type = JSON_T_STRING, .offset = offsetof(roster, name)},
	{.name = "members", .type = JSON_T_OBJECT_ARRAY, .offset = offsetof(roster, members), .required = true,
	 .fields = member_fields, .nfields = sizeof member_fields / sizeof member_fields[0],
	 .elem_size = sizeof(member), .min_len = 1, .max_len = 3},
	{.name = "extra", .type = JSON_T_OBJECT_ARRAY, .offset = offsetof(roster, extra), .nullable = true,
	 .fields = cert_fields, .nfields = sizeof cert_fields / sizeof cert_fields[0], .elem_size = sizeof(cert)},
};
#define NROSTER (sizeof roster_fields / sizeof roster_fields[0])

static const bad_case bad_rosters[] = {
	{"{}", 0, EGOV_EINVAL, "json.missing_field", "members"},
	{"{\"members\":null}", 0, EGOV_EINVAL, "json.wrong_type", "members"},
	{"{\"members\":{}}", 0, EGOV_EINVAL, "json.wrong_type", "members"},
	{"{\"members\":\"a\"}", 0, EGOV_EINVAL, "json.wrong_type", "members"},
	{"{\"members\":[]}", 0, EGOV_EINVAL, "json.too_short", "members"},
	{"{\"members\":[{\"code\":\"a\"},{\"code\":\"b\"},{\"code\":\"c\"},{\"code\":\"d\"}]}", 0, EGOV_EINVAL,
	 "json.too_long", "members"},
	{"{\"members\":[1]}", 0, EGOV_EINVAL, "json.not_object", "members[0]"},
	{"{\"members\":[{\"code\":\"a\"},null]}", 0, EGOV_EINVAL, "json.not_object", "members[1]"},
	{"{\"members\":[{\"code\":\"a\"},[]]}", 0, EGOV_EINVAL, "json.not_object", "members[1]"},
	{"{\"members\":[{\"code\":\"a\"},{\"level\":2}]}", 0, EGOV_EINVAL, "json.missing_field", "members[1].code"},
	{"{\"members\":[{\"code\":\"a\",\"x\":1}]}", 0, EGOV_EINVAL, "json.unknown_field", "members[0].x"},
	{"{\"members\":[{\"code\":\"a\",\"code\":\"b\"}]}", 0, EGOV_EINVAL, "json.duplicate_field",
	 "members[0].code"},
	{"{\"members\":[{\"code\":\"a\",\"level\":\"2\"}]}", 0, EGOV_EINVAL, "json.wrong_type", "members[0].level"},
	{"{\"members\":[{\"code\":\"a\"},{\"code\":\"b\",\"level\":10}]}", 0, EGOV_EINVAL, "json.out_of_range",
	 "members[1].level"},
	{"{\"members\":[{\"code\":\"123456789\"}]}", 0, EGOV_EINVAL, "json.too_long", "members[0].code"},
	{"{\"members\":[{\"code\":\"\"}]}", 0, EGOV_EINVAL, "json.too_short", "members[0].code"},
	{"{\"members\":[{\"code\":\"a\",\"tags\":[\"x\",1]}]}", 0, EGOV_EINVAL, "json.wrong_type",
	 "members[0].tags[1]"},
	{"{\"members\":[{\"code\":\"a\",\"certs\":[{\"usage\":\"tls\"},{}]}]}", 0, EGOV_EINVAL,
	 "json.missing_field", "members[0].certs[1].usage"},
	{"{\"members\":[{\"code\":\"a\"},{\"code\":\"b\",\"certs\":[{\"usage\":\"sign\",\"serial\":0}]}]}", 0,
	 EGOV_EINVAL, "json.out_of_range", "members[1].certs[0].serial"},
	{"{\"members\":[{\"code\":\"a\",\"certs\":[{\"usage\":\"a\"},{\"usage\":\"b\"},{\"usage\":\"c\"}]}]}", 0,
	 EGOV_EINVAL, "json.too_long", "members[0].certs"},
	{"{\"members\":[{\"code\":\"a\",\"certs\":{\"usage\":\"a\"}}]}", 0, EGOV_EINVAL, "json.wrong_type",
	 "members[0].certs"},
	{"{\"members\":[{\"code\":\"a\"}],\"members\":[{\"code\":\"b\"}]}", 0, EGOV_EINVAL, "json.duplicate_field",
	 "members"},
	{"{\"members\":[{\"code\":\"a\"}],\"extra\":[{\"usage\":\"x\",\"usage\":\"y\"}]}", 0, EGOV_EINVAL,
	 "json.duplicate_field", "extra[0].usage"},
};

static egov_err bind_roster(arena *a, const char *text, roster *r, json_error *je)
{
	memset(r, 0, sizeof *r);
	return json_bind(a, text, strlen(text), roster_fields, NROSTER, r, je);
}

static void test_object_array_rejects(void **state)
{
	size_t i;

	for (i = 0; i < sizeof bad_rosters / sizeof bad_rosters[0]; i++) {
		const bad_case *c = &bad_rosters[i];
		arena a;
		roster r;
		json_error je;
		egov_err err;

		arena_init(&a, 1 << 20);
		err = bind_roster(&a, c->body, &r, &je);
		if (err != c->err || !je.code || strcmp(je.code, c->code) != 0 || strcmp(je.field, c->field) != 0)
			print_error("case %zu %s: got err %d code %s field '%s', want %s '%s'\n", i, c->body, err,
				    je.code ? je.code : "(null)", je.field, c->code, c->field);
		assert_int_equal(err, c->err);
		assert_string_equal(je.code, c->code);
		assert_string_equal(je.field, c->field);
		arena_release(&a);
	}
}

static void test_object_array_binds(void **state)
{
	static const char text[] = "{\"name\":\"r\",\"members\":[{\"code\":\"a\",\"level\":3,\"tags\":[\"t\"],"
				   "\"certs\":[{\"usage\":\"sign\",\"serial\":7},{\"usage\":\"tls\"}]},"
				   "{\"code\":\"b\",\"certs\":[]},{\"tags\":[],\"code\":\"c\"}],\"extra\":null}";
	const member *m;
	const cert *k;
	arena a;
	roster r;
	json_error je;

	arena_init(&a, 1 << 20);
	assert_int_equal(bind_roster(&a, text, &r, &je), EGOV_OK);
	assert_null(je.code);
	assert_string_equal(r.name, "r");
	assert_int_equal(r.members.n, 3);
	m = r.members.items;
	assert_string_equal(m[0].code, "a");
	assert_int_equal(m[0].level, 3);
	assert_true(m[0].level_present);
	assert_int_equal(m[0].tags.n, 1);
	assert_string_equal(m[0].tags.items[0], "t");
	assert_int_equal(m[0].certs.n, 2);
	k = m[0].certs.items;
	assert_string_equal(k[0].usage, "sign");
	assert_int_equal(k[0].serial, 7);
	assert_string_equal(k[1].usage, "tls");
	assert_int_equal(k[1].serial, 0); /* absent: zero */
	/* absent members of an element stay zero, presence flags false */
	assert_string_equal(m[1].code, "b");
	assert_int_equal(m[1].level, 0);
	assert_false(m[1].level_present);
	assert_int_equal(m[1].certs.n, 0);
	assert_null(m[1].certs.items);
	assert_int_equal(m[1].tags.n, 0);
	assert_string_equal(m[2].code, "c");
	/* null for a nullable array leaves it empty */
	assert_int_equal(r.extra.n, 0);
	assert_null(r.extra.items);
	arena_release(&a);
}

/* The default count limit, and the arena's cap, before anything else. */
static void test_object_array_limits(void **state)
{
	buf b;
	arena a;
	roster r;
	json_error je;
	size_t i;

	buf_init(&b, 1 << 20);
	assert_int_equal(buf_adds(&b, "{\"members\":[{\"code\":\"a\"}],\"extra\":["), EGOV_OK);
	for (i = 0; i <= EGOV_JSON_ARRAY_MAX; i++)
		assert_int_equal(buf_addf(&b, "%s{\"usage\":\"u\"}", i ? "," : ""), EGOV_OK);
	assert_int_equal(buf_adds(&b, "]}"), EGOV_OK);
	arena_init(&a, 1 << 20);
	assert_int_equal(bind_roster(&a, b.data, &r, &je), EGOV_EINVAL);
	assert_string_equal(je.code, "json.too_long");
	assert_string_equal(je.field, "extra");
	arena_release(&a);
	/* exactly the limit binds */
	buf_reset(&b);
	assert_int_equal(buf_adds(&b, "{\"members\":[{\"code\":\"a\"}],\"extra\":["), EGOV_OK);
	for (i = 0; i < EGOV_JSON_ARRAY_MAX; i++)
		assert_int_equal(buf_addf(&b, "%s{\"usage\":\"u\",\"serial\":%zu}", i ? "," : "", i + 1), EGOV_OK);
	assert_int_equal(buf_adds(&b, "]}"), EGOV_OK);
	arena_init(&a, 1 << 20);
	assert_int_equal(bind_roster(&a, b.data, &r, &je), EGOV_OK);
	assert_int_equal(r.extra.n, EGOV_JSON_ARRAY_MAX);
	assert_int_equal(((const cert *)r.extra.items)[EGOV_JSON_ARRAY_MAX - 1].serial, EGOV_JSON_ARRAY_MAX);
	arena_release(&a);
	/* an arena too small for the structs: ELIMIT, not a partial bind */
	arena_init(&a, 2048);
	assert_int_equal(bind_roster(&a, b.data, &r, &je), EGOV_ELIMIT);
	assert_string_equal(je.code, "json.too_large");
	arena_release(&a);
	buf_release(&b);
}

/* A table without elem_size is a bug of ours: EGOV_EINTERNAL, never a 400. */
static void test_object_array_table_bug(void **state)
{
	static const json_field broken[] = {
		{.name = "members", .type = JSON_T_OBJECT_ARRAY, .offset = offsetof(roster, members),
		 .fields = member_fields, .nfields = sizeof member_fields / sizeof member_fields[0]},
	};
	static const char text[] = "{\"members\":[]}";
	arena a;
	roster r;
	json_error je;

	arena_init(&a, 1 << 16);
	memset(&r, 0, sizeof r);
	assert_int_equal(json_bind(&a, text, strlen(text), broken, 1, &r, &je), EGOV_EINTERNAL);
	arena_release(&a);
}

/* json_bind_tree: the same rules over a tree the caller parsed, and the
 * flag that passes over members the table does not name. */
static void test_bind_tree(void **state)
{
	static const char text[] = "{\"members\":[{\"code\":\"a\",\"since\":2020}],\"kid\":\"k1\",\"name\":\"n\"}";
	cJSON *root = cJSON_Parse(text), *arr = cJSON_CreateArray();
	arena a;
	roster r;
	json_error je;

	assert_non_null(root);
	assert_non_null(arr);
	arena_init(&a, 1 << 16);
	memset(&r, 0, sizeof r);
	assert_int_equal(json_bind_tree(&a, root, roster_fields, NROSTER, 0, &r, &je), EGOV_EINVAL);
	assert_string_equal(je.code, "json.unknown_field");
	assert_string_equal(je.field, "members[0].since");
	memset(&r, 0, sizeof r);
	assert_int_equal(json_bind_tree(&a, root, roster_fields, NROSTER, JSON_BIND_SKIP_UNKNOWN, &r, &je), EGOV_OK);
	assert_null(je.code);
	assert_string_equal(r.name, "n");
	assert_int_equal(r.members.n, 1);
	assert_string_equal(((const member *)r.members.items)[0].code, "a");
	/* the other rules still hold with the flag */
	cJSON_DeleteItemFromObjectCaseSensitive(root, "members");
	assert_int_equal(json_bind_tree(&a, root, roster_fields, NROSTER, JSON_BIND_SKIP_UNKNOWN, &r, &je),
			 EGOV_EINVAL);
	assert_string_equal(je.code, "json.missing_field");
	assert_string_equal(je.field, "members");
	assert_int_equal(json_bind_tree(&a, NULL, roster_fields, NROSTER, 0, &r, &je), EGOV_EINVAL);
	assert_string_equal(je.code, "json.malformed");
	assert_int_equal(json_bind_tree(&a, arr, roster_fields, NROSTER, 0, &r, &je), EGOV_EINVAL);
	assert_string_equal(je.code, "json.not_object");
	arena_release(&a);
	cJSON_Delete(arr);
	cJSON_Delete(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bind_rejects),
		cmocka_unit_test(test_bind_all_types),
		cmocka_unit_test(test_bind_optional_and_defaults),
		cmocka_unit_test(test_bind_int_edges),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_precheck_utf8),
		cmocka_unit_test(test_member_limit),
		cmocka_unit_test(test_arena_full),
		cmocka_unit_test(test_not_nul_terminated),
		cmocka_unit_test(test_writer_output),
		cmocka_unit_test(test_writer_errors),
		cmocka_unit_test(test_object_array_rejects),
		cmocka_unit_test(test_object_array_binds),
		cmocka_unit_test(test_object_array_limits),
		cmocka_unit_test(test_object_array_table_bug),
		cmocka_unit_test(test_bind_tree),
	};
	return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
