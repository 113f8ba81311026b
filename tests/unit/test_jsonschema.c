/*
 * test_jsonschema.c: the JSON Schema validator (core/jsonschema.h).
 *
 * Two halves. The official JSON Schema Test Suite, draft 2020-12: every
 * file of the keywords egov supports, the optional ones it claims (format
 * assertion for the formats of jsonschema_format.c, ECMA-262 regexes,
 * big numbers, references into unknown keywords), each case compiled and
 * validated, failing on any case that does not give the suite's answer,
 * except the files and groups of `skips` below, each with its reason. The
 * suite's "remote" documents are registered under their http://localhost:1234/
 * URIs (never fetched), and so is the 2020-12 meta-schema. Then egov's
 * own cases: the error codes and pointers a form shows, strictness,
 * refusal of bad schemas, and hostile schemas and instances (deep nesting,
 * $ref loops, exponential anyOf, catastrophic regexes) ending in an error
 * quickly.
 *
 * Where the files are: EGOV_JSONSCHEMA_SUITE (default: where Debian's
 * libtest-json-schema-acceptance-perl installs the suite; scripts/
 * install-deps.sh test installs it) and EGOV_JSONSCHEMA_META (default: the
 * copy of the meta-schema in node_modules/ajv, a test dependency).
 */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <cJSON.h>

#include "core/jsonschema.h"
#include "testutil.h"
#include "core/banned.h"

#define SUITE_DEFAULT "/usr/share/perl5/auto/share/dist/Test-JSON-Schema-Acceptance"
#define META_DEFAULT "node_modules/ajv/dist/refs/json-schema-2020-12"

/* ---- helpers -------------------------------------------------------------- */

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (data = malloc((size_t)n + 1)) != NULL) {
		if (fread(data, 1, (size_t)n, f) != (size_t)n) {
			free(data);
			data = NULL;
		} else {
			data[n] = '\0';
		}
	}
	fclose(f);
	return data;
}

static cJSON *parse_file(const char *path)
{
	char *text = read_file(path);
	cJSON *j = text ? cJSON_Parse(text) : NULL;

	free(text);
	return j;
}

static cJSON *J(const char *text)
{
	cJSON *j = cJSON_Parse(text);

	if (!j)
		fail_msg("test JSON does not parse: %s", text);
	return j;
}

/* Compiles schema text with flags; the schema or NULL (errs filled). */
static jsonschema *compile(const char *text, unsigned flags, jsonschema_errors *errs)
{
	cJSON *j = J(text);
	jsonschema_options opt = {.flags = flags};
	jsonschema *s = NULL;

	(void)jsonschema_compile(j, &opt, &s, errs);
	cJSON_Delete(j);
	return s;
}

static egov_err validate(const jsonschema *s, const char *text, jsonschema_errors *errs)
{
	cJSON *j = J(text);
	egov_err err = jsonschema_validate(s, j, errs);

	cJSON_Delete(j);
	return err;
}

/* ---- the official suite ----------------------------------------------------- */

typedef struct skip {
	const char *file;  /* relative to tests/draft2020-12 */
	const char *group; /* a group's description; NULL: the whole file */
	const char *reason;
} skip;

static const skip skips[] = {
	{"vocabulary.json", NULL, "custom meta-schemas and $vocabulary: egov takes the 2020-12 dialect only"},
	{"optional/format-assertion.json", NULL, "custom meta-schemas ($vocabulary): 2020-12 dialect only"},
	{"optional/cross-draft.json", NULL, "references into draft 2019-09 documents: 2020-12 only"},
	{"optional/dependencies-compatibility.json", NULL, "\"dependencies\" is draft 7's, split in 2020-12"},
	{"optional/format/idn-email.json", NULL, "format not asserted: internationalised addresses"},
	{"optional/format/idn-hostname.json", NULL, "format not asserted: internationalised names"},
	{"optional/format/iri.json", NULL, "format not asserted: IRIs"},
	{"optional/format/iri-reference.json", NULL, "format not asserted: IRIs"},
	{"optional/format/uri-template.json", NULL, "format not asserted: URI templates"},
};

/* Files run with other flags than the default (strict, format as an
 * annotation). */
static const struct {
	const char *prefix;
	unsigned flags;
} modes[] = {
	{"unknownKeyword.json", JSONSCHEMA_ALLOW_UNKNOWN},
	{"optional/refOfUnknownKeyword.json", JSONSCHEMA_ALLOW_UNKNOWN},
	{"optional/format/unknown.json", JSONSCHEMA_ALLOW_UNKNOWN | JSONSCHEMA_FORMAT_ASSERT},
	{"optional/format/", JSONSCHEMA_FORMAT_ASSERT},
	{"optional/ecmascript-regex.json", JSONSCHEMA_FORMAT_ASSERT},
};

typedef struct tally {
	size_t passed, failed, skipped, files;
} tally;

static const char *skip_reason(const char *file, const char *group)
{
	size_t i;

	for (i = 0; i < sizeof skips / sizeof skips[0]; i++)
		if (strcmp(skips[i].file, file) == 0 && (!skips[i].group || (group && !strcmp(skips[i].group, group))))
			return skips[i].reason;
	return NULL;
}

static unsigned file_flags(const char *file)
{
	size_t i;

	for (i = 0; i < sizeof modes / sizeof modes[0]; i++)
		if (strncmp(file, modes[i].prefix, strlen(modes[i].prefix)) == 0)
			return modes[i].flags;
	return 0;
}

static void run_file(const char *path, const char *rel, const jsonschema_registry *reg, tally *t)
{
	cJSON *doc = parse_file(path), *g, *c;
	unsigned flags = file_flags(rel);

	if (!doc || !cJSON_IsArray(doc)) {
		printf("# FAIL %s: not a suite file\n", rel);
		t->failed++;
		cJSON_Delete(doc);
		return;
	}
	t->files++;
	cJSON_ArrayForEach(g, doc)
	{
		const char *desc = cJSON_GetStringValue(cJSON_GetObjectItem(g, "description"));
		const cJSON *tests = cJSON_GetObjectItem(g, "tests");
		const char *why = skip_reason(rel, desc);
		jsonschema_options opt = {.flags = flags, .registry = reg};
		jsonschema_errors errs;
		jsonschema *s = NULL;
		egov_err err;

		if (why) {
			t->skipped += (size_t)cJSON_GetArraySize(tests);
			continue;
		}
		err = jsonschema_compile(cJSON_GetObjectItem(g, "schema"), &opt, &s, &errs);
		if (err) {
			printf("# FAIL %s | %s: compile refused: %s at %s (%s)\n", rel, desc,
			       errs.n ? errs.items[0].code : "?", errs.n ? errs.items[0].pointer : "?",
			       errs.n ? errs.items[0].param : "");
			t->failed += (size_t)cJSON_GetArraySize(tests);
			continue;
		}
		cJSON_ArrayForEach(c, tests)
		{
			bool want = cJSON_IsTrue(cJSON_GetObjectItem(c, "valid"));
			egov_err v = jsonschema_validate(s, cJSON_GetObjectItem(c, "data"), &errs);
			if ((v == EGOV_OK) == want && (v == EGOV_OK || v == EGOV_EINVAL)) {
				t->passed++;
			} else {
				t->failed++;
				printf("# FAIL %s | %s | %s: expected %s, got %s (%s at %s)\n", rel, desc,
				       cJSON_GetStringValue(cJSON_GetObjectItem(c, "description")),
				       want ? "valid" : "invalid", egov_err_name(v), errs.n ? errs.items[0].code : "-",
				       errs.n ? errs.items[0].pointer : "-");
			}
		}
		jsonschema_free(s);
	}
	cJSON_Delete(doc);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Calls fn for every .json file under dir/rel, in name order. */
static void walk(const char *dir, const char *rel, void (*fn)(const char *path, const char *rel, void *arg),
		 void *arg)
{
	char path[2100], sub[1024];
	char *names[256];
	size_t n = 0, i;
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof path, "%s%s%s", dir, *rel ? "/" : "", rel);
	if (!(d = opendir(path)))
		return;
	while ((e = readdir(d)) != NULL && n < 256)
		if (e->d_name[0] != '.')
			names[n++] = strdup(e->d_name);
	closedir(d);
	qsort(names, n, sizeof *names, cmp_names);
	for (i = 0; i < n; i++) {
		size_t len = strlen(names[i]);
		snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", names[i]);
		snprintf(path, sizeof path, "%s/%s", dir, sub);
		if (len > 5 && strcmp(names[i] + len - 5, ".json") == 0)
			fn(path, sub, arg);
		else
			walk(dir, sub, fn, arg);
		free(names[i]);
	}
}

typedef struct reg_ctx {
	jsonschema_registry *reg;
	const char *prefix; /* URI the relative path is appended to */
	int errors;
} reg_ctx;

static void register_remote(const char *path, const char *rel, void *arg)
{
	reg_ctx *r = arg;
	char uri[1024];
	cJSON *doc;

	/* only this draft's remotes and the draft-independent ones */
	if (strncmp(rel, "draft", 5) == 0 && strncmp(rel, "draft2020-12/", 13) != 0)
		return;
	snprintf(uri, sizeof uri, "%s%s", r->prefix, rel);
	if (!(doc = parse_file(path)) || jsonschema_registry_add(r->reg, uri, doc) != EGOV_OK)
		r->errors++;
	cJSON_Delete(doc);
}

static void register_meta(const char *path, const char *rel, void *arg)
{
	reg_ctx *r = arg;
	cJSON *doc = parse_file(path);
	const char *id = doc ? cJSON_GetStringValue(cJSON_GetObjectItem(doc, "$id")) : NULL;

	(void)rel;
	if (!id || jsonschema_registry_add(r->reg, id, doc) != EGOV_OK)
		r->errors++;
	cJSON_Delete(doc);
}

typedef struct suite_ctx {
	const jsonschema_registry *reg;
	tally t;
} suite_ctx;

static void suite_file(const char *path, const char *rel, void *arg)
{
	suite_ctx *sc = arg;

	run_file(path, rel, sc->reg, &sc->t);
}

static void test_official_suite(void **state)
{
	const char *suite = getenv("EGOV_JSONSCHEMA_SUITE"), *meta = getenv("EGOV_JSONSCHEMA_META");
	char tests_dir[1024], remotes_dir[1024], probe[1100];
	reg_ctx r = {0};
	suite_ctx sc = {0};
	size_t i;
	FILE *f;

	(void)state;
	if (!suite || !*suite)
		suite = SUITE_DEFAULT;
	if (!meta || !*meta)
		meta = META_DEFAULT;
	snprintf(tests_dir, sizeof tests_dir, "%s/tests/draft2020-12", suite);
	snprintf(remotes_dir, sizeof remotes_dir, "%s/remotes", suite);
	snprintf(probe, sizeof probe, "%s/type.json", tests_dir);
	if (!(f = fopen(probe, "r")))
		fail_msg("the JSON Schema Test Suite is not at %s (scripts/install-deps.sh test installs "
			 "libtest-json-schema-acceptance-perl; EGOV_JSONSCHEMA_SUITE names another copy)",
			 suite);
	fclose(f);
	snprintf(probe, sizeof probe, "%s/schema.json", meta);
	if (!(f = fopen(probe, "r")))
		fail_msg("the 2020-12 meta-schema is not at %s (npm ci installs it with ajv; "
			 "EGOV_JSONSCHEMA_META names another copy)",
			 meta);
	fclose(f);

	assert_int_equal(jsonschema_registry_new(&r.reg), EGOV_OK);
	r.prefix = "http://localhost:1234/";
	walk(remotes_dir, "", register_remote, &r);
	walk(meta, "", register_meta, &r);
	assert_int_equal(r.errors, 0);

	sc.reg = r.reg;
	walk(tests_dir, "", suite_file, &sc);
	for (i = 0; i < sizeof skips / sizeof skips[0]; i++)
		printf("# skipped %s%s%s: %s\n", skips[i].file, skips[i].group ? " | " : "",
		       skips[i].group ? skips[i].group : "", skips[i].reason);
	printf("# JSON Schema Test Suite, draft 2020-12: %zu files, %zu cases passed, %zu failed, %zu skipped\n",
	       sc.t.files, sc.t.passed, sc.t.failed, sc.t.skipped);
	jsonschema_registry_free(r.reg);
	assert_int_equal(sc.t.failed, 0);
	assert_true(sc.t.files >= 60 && sc.t.passed >= 1500);
}


/* ---- egov's own cases ------------------------------------------------------- */

static const jsonschema_error *find_error(const jsonschema_errors *e, const char *code, const char *pointer)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		if (!strcmp(e->items[i].code, code) && !strcmp(e->items[i].pointer, pointer))
			return &e->items[i];
	return NULL;
}

#define FORM_SCHEMA                                                                                         \
	"{\"$schema\": \"https://json-schema.org/draft/2020-12/schema\", \"type\": \"object\","            \
	" \"required\": [\"name\", \"members\", \"phone\"], \"additionalProperties\": false,"               \
	" \"properties\": {"                                                                                \
	"  \"name\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 5, \"title\": \"Name\"},"      \
	"  \"age\": {\"type\": \"integer\", \"minimum\": 0},"                                               \
	"  \"phone\": {\"type\": \"string\"},"                                                              \
	"  \"kind\": {\"enum\": [\"resident\", \"company\"]},"                                              \
	"  \"members\": {\"type\": \"array\", \"maxItems\": 4, \"items\": {\"$ref\": \"#/$defs/member\"}}}," \
	" \"$defs\": {\"member\": {\"type\": \"object\", \"required\": [\"code\"],"                          \
	"  \"properties\": {\"code\": {\"type\": \"string\", \"pattern\": \"^[A-Z]{3}$\"}}}}}"

/* What a form shows: each failing field by its pointer, with a code to
 * translate and the bound to put in the message. */
static void test_form_errors(void **state)
{
	jsonschema_errors e;
	jsonschema *s = compile(FORM_SCHEMA, 0, &e);
	const jsonschema_error *x;

	(void)state;
	assert_non_null(s);
	assert_int_equal(validate(s, "{\"name\": \"Ana\", \"age\": 30, \"phone\": \"+853\", \"kind\": \"resident\","
				     " \"members\": [{\"code\": \"ABC\"}]}",
				 &e),
			 EGOV_OK);
	assert_int_equal(e.n, 0);
	assert_int_equal(validate(s, "{\"name\": \"\xe4\xb8\xad\xe6\x96\x87\xe5\x90\x8d\xe5\xad\x97\xe5\x95\x8a\", \"phone\": \"1\","
				     " \"members\": []}",
				 &e),
			 EGOV_OK); /* five code points, fifteen bytes */
	assert_int_equal(validate(s, "{\"name\": \"toolong\", \"age\": -1, \"kind\": \"other\","
				     " \"members\": [{\"code\": \"ABC\"}, {\"code\": \"abc\"}, {}], \"extra\": 1}",
				 &e),
			 EGOV_EINVAL);
	assert_false(e.truncated);
	assert_non_null(x = find_error(&e, "schema.max_length", "/name"));
	assert_string_equal(x->keyword, "maxLength");
	assert_string_equal(x->param, "5");
	assert_non_null(x = find_error(&e, "schema.minimum", "/age"));
	assert_string_equal(x->param, "0");
	assert_non_null(find_error(&e, "schema.enum", "/kind"));
	assert_non_null(x = find_error(&e, "schema.pattern", "/members/1/code"));
	assert_string_equal(x->param, "^[A-Z]{3}$");
	assert_non_null(x = find_error(&e, "schema.required", "/members/2/code"));
	assert_string_equal(x->param, "code");
	assert_non_null(x = find_error(&e, "schema.required", "/phone"));
	assert_non_null(find_error(&e, "schema.additional_properties", "/extra"));
	assert_int_equal(e.n, 7);
	assert_int_equal(validate(s, "[]", &e), EGOV_EINVAL);
	assert_non_null(x = find_error(&e, "schema.type", ""));
	assert_string_equal(x->param, "object");
	/* a caller that only asks yes or no */
	assert_int_equal(validate(s, "{\"name\": 1}", NULL), EGOV_EINVAL);
	jsonschema_free(s);
}

static void test_pointer_escapes_and_combinators(void **state)
{
	jsonschema_errors e;
	jsonschema *s = compile("{\"properties\": {\"a/b~c\": {\"oneOf\": [{\"type\": \"string\"}, {\"type\": \"integer\"}]},"
				" \"n\": {\"not\": {\"const\": 0}}, \"t\": {\"type\": [\"integer\", \"null\"]}}}",
				0, &e);

	(void)state;
	assert_non_null(s);
	assert_int_equal(validate(s, "{\"a/b~c\": true, \"n\": 0, \"t\": 1.5}", &e), EGOV_EINVAL);
	assert_non_null(find_error(&e, "schema.one_of", "/a~1b~0c"));
	assert_non_null(find_error(&e, "schema.not", "/n"));
	assert_string_equal(find_error(&e, "schema.type", "/t")->param, "null,integer");
	assert_int_equal(e.n, 3); /* the branches' own errors are not reported */
	jsonschema_free(s);
}

static void test_errors_kept_at_most(void **state)
{
	jsonschema_errors e;
	jsonschema *s = compile("{\"items\": {\"type\": \"string\"}}", 0, &e);
	char text[1024];
	size_t i, len = 0;

	(void)state;
	assert_non_null(s);
	len += (size_t)snprintf(text + len, sizeof text - len, "[");
	for (i = 0; i < 100; i++)
		len += (size_t)snprintf(text + len, sizeof text - len, "%s%zu", i ? "," : "", i);
	snprintf(text + len, sizeof text - len, "]");
	assert_int_equal(validate(s, text, &e), EGOV_EINVAL);
	assert_int_equal(e.n, JSONSCHEMA_ERRORS_MAX);
	assert_true(e.truncated);
	assert_string_equal(e.items[31].pointer, "/31");
	jsonschema_free(s);
}

typedef struct bad_schema {
	const char *schema;
	unsigned flags;
	const char *code;
	const char *pointer;
} bad_schema;

static const bad_schema bad_schemas[] = {
	{"5", 0, "schema.not_schema", ""},
	{"{\"properties\": {\"a\": {\"type\": \"strin\"}}}", 0, "schema.keyword_invalid", "/properties/a/type"},
	{"{\"properties\": {\"a\": {\"maxLenght\": 3}}}", 0, "schema.unknown_keyword", "/properties/a/maxLenght"},
	{"{\"type\": \"string\", \"type\": \"integer\"}", 0, "schema.duplicate_keyword", ""},
	{"{\"minLength\": -1}", 0, "schema.keyword_invalid", "/minLength"},
	{"{\"minLength\": 1.5}", 0, "schema.keyword_invalid", "/minLength"},
	{"{\"multipleOf\": 0}", 0, "schema.keyword_invalid", "/multipleOf"},
	{"{\"required\": [\"a\", \"a\"]}", 0, "schema.keyword_invalid", "/required"},
	{"{\"items\": 3}", 0, "schema.not_schema", "/items"},
	{"{\"allOf\": []}", 0, "schema.keyword_invalid", "/allOf"},
	{"{\"pattern\": \"(?i)abc\"}", 0, "schema.pattern_invalid", "/pattern"},
	{"{\"pattern\": \"\\\\a\"}", 0, "schema.pattern_invalid", "/pattern"},
	{"{\"pattern\": \"a**\"}", 0, "schema.pattern_invalid", "/pattern"},
	{"{\"pattern\": \"a{2\"}", 0, "schema.pattern_invalid", "/pattern"},
	{"{\"pattern\": \"(a)\\\\2\"}", 0, "schema.pattern_invalid", "/pattern"},
	{"{\"patternProperties\": {\"[\": true}}", 0, "schema.pattern_invalid", "/patternProperties"},
	{"{\"format\": \"emial\"}", 0, "schema.format_unknown", "/format"},
	{"{\"format\": \"idn-email\"}", JSONSCHEMA_FORMAT_ASSERT, "schema.format_unsupported", "/format"},
	{"{\"$schema\": \"http://json-schema.org/draft-07/schema#\"}", 0, "schema.unsupported_dialect", "/$schema"},
	{"{\"$ref\": \"https://example.org/x.json\"}", 0, "schema.ref_unresolved", "/$ref"},
	{"{\"$ref\": \"#/$defs/missing\"}", 0, "schema.ref_unresolved", "/$ref"},
	{"{\"$ref\": \"#nowhere\"}", 0, "schema.ref_unresolved", "/$ref"},
	{"{\"$ref\": \"#/$defs/a\", \"$defs\": {\"a\": {\"$ref\": \"#/$defs/b\"}, \"b\": {\"$ref\": \"#/$defs/a\"}}}", 0,
	 "schema.ref_loop", NULL},
	{"{\"allOf\": [{\"$ref\": \"#\"}]}", 0, "schema.ref_loop", NULL},
	{"{\"type\": \"object\", \"dependentSchemas\": {\"a\": {\"$ref\": \"#\"}}}", 0, "schema.ref_loop", NULL},
	{"{\"$id\": \"http://egov.example/a.json#frag\"}", 0, "schema.id_invalid", "/$id"},
	{"{\"$defs\": {\"a\": {\"$anchor\": \"1bad\"}}}", 0, "schema.anchor_invalid", "/$defs/a/$anchor"},
	{"{\"$defs\": {\"a\": {\"$id\": \"http://egov.example/x\"}, \"b\": {\"$id\": \"http://egov.example/x\"}}}", 0,
	 "schema.duplicate_id", NULL},
};

static void test_bad_schemas(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof bad_schemas / sizeof bad_schemas[0]; i++) {
		const bad_schema *b = &bad_schemas[i];
		jsonschema_errors e;
		jsonschema *s = compile(b->schema, b->flags, &e);
		if (s || e.n == 0)
			fail_msg("compiled but should not: %s", b->schema);
		if (strcmp(e.items[0].code, b->code) != 0 || (b->pointer && strcmp(e.items[0].pointer, b->pointer) != 0))
			fail_msg("%s: got %s at '%s', want %s at '%s'", b->schema, e.items[0].code, e.items[0].pointer,
				 b->code, b->pointer ? b->pointer : "*");
	}
}

/* Everything the specification allows to be ignored is refused by
 * default, and accepted when asked. */
static void test_strict_and_lenient(void **state)
{
	jsonschema_errors e;
	jsonschema *s;

	(void)state;
	assert_null(compile("{\"x-ui\": {\"widget\": \"date\"}, \"format\": \"postcode\"}", 0, &e));
	assert_int_equal(e.n, 2);
	assert_non_null(s = compile("{\"x-ui\": {\"widget\": \"date\"}, \"format\": \"postcode\"}",
				    JSONSCHEMA_ALLOW_UNKNOWN, &e));
	assert_int_equal(validate(s, "\"anything\"", &e), EGOV_OK);
	jsonschema_free(s);
	/* annotations and meta-data are known keywords, and ignored */
	assert_non_null(s = compile("{\"title\": \"t\", \"description\": \"d\", \"default\": 1, \"examples\": [1],"
				    " \"deprecated\": false, \"readOnly\": true, \"writeOnly\": false, \"$comment\": \"c\","
				    " \"contentMediaType\": \"text/plain\", \"contentEncoding\": \"base64\"}",
				    0, &e));
	jsonschema_free(s);
}

static void test_format_assertion(void **state)
{
	static const struct {
		const char *format, *value;
		bool valid;
	} cases[] = {
		{"date", "2024-02-29", true}, {"date", "2023-02-29", false}, {"date", "2024-13-01", false},
		{"date-time", "2024-05-01T08:30:00+08:00", true}, {"date-time", "2024-05-01 08:30:00", false},
		{"time", "23:59:60Z", true}, {"time", "12:00:00", false}, {"duration", "P1Y2M10DT2H30M", true},
		{"duration", "P1Y2W", false}, {"email", "ana@example.mo", true}, {"email", "ana@@example.mo", false},
		{"uri", "https://gov.mo/a?b#c", true}, {"uri", "/relative", false},
		{"uuid", "123e4567-e89b-12d3-a456-426614174000", true}, {"uuid", "123e4567e89b12d3a456426614174000", false},
		{"ipv4", "192.168.0.1", true}, {"ipv4", "192.168.0.01", false}, {"ipv6", "2001:db8::1", true},
		{"ipv6", "2001:db8:::1", false}, {"hostname", "www.gov.mo", true}, {"hostname", "-bad.mo", false},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char schema[128], value[160];
		jsonschema_errors e;
		jsonschema *s, *plain;
		snprintf(schema, sizeof schema, "{\"format\": \"%s\"}", cases[i].format);
		snprintf(value, sizeof value, "\"%s\"", cases[i].value);
		assert_non_null(s = compile(schema, JSONSCHEMA_FORMAT_ASSERT, &e));
		assert_non_null(plain = compile(schema, 0, &e));
		if ((validate(s, value, &e) == EGOV_OK) != cases[i].valid)
			fail_msg("format %s, %s: want %s", cases[i].format, cases[i].value,
				 cases[i].valid ? "valid" : "invalid");
		if (!cases[i].valid) {
			assert_string_equal(e.items[0].code, "schema.format");
			assert_string_equal(e.items[0].param, cases[i].format);
		}
		assert_int_equal(validate(plain, value, &e), EGOV_OK); /* an annotation by default */
		jsonschema_free(s);
		jsonschema_free(plain);
	}
}

static void test_registry(void **state)
{
	jsonschema_registry *reg = NULL;
	jsonschema_options opt = {0};
	jsonschema_errors e;
	jsonschema *s = NULL;
	cJSON *addr = J("{\"$defs\": {\"postcode\": {\"type\": \"string\", \"maxLength\": 8}},"
			" \"type\": \"object\", \"required\": [\"street\"],"
			" \"properties\": {\"street\": {\"type\": \"string\"}, \"code\": {\"$ref\": \"#/$defs/postcode\"}}}");
	cJSON *form = J("{\"$id\": \"https://egov.example/forms/move.json\", \"properties\": {"
			"\"from\": {\"$ref\": \"../schemas/address.json\"}, \"code\": {\"$ref\": "
			"\"https://egov.example/schemas/address.json#/$defs/postcode\"}}}");

	(void)state;
	assert_int_equal(jsonschema_registry_new(&reg), EGOV_OK);
	assert_int_equal(jsonschema_registry_add(reg, "https://egov.example/schemas/address.json", addr), EGOV_OK);
	assert_int_equal(jsonschema_registry_add(reg, "https://egov.example/schemas/address.json", addr),
			 EGOV_ECONFLICT);
	assert_int_equal(jsonschema_registry_add(reg, "relative.json", addr), EGOV_EINVAL);
	assert_int_equal(jsonschema_registry_add(reg, "https://egov.example/x.json#f", addr), EGOV_EINVAL);
	/* without the registry the reference is refused, never fetched */
	assert_int_equal(jsonschema_compile(form, &opt, &s, &e), EGOV_EINVAL);
	assert_string_equal(e.items[0].code, "schema.ref_unresolved");
	opt.registry = reg;
	assert_int_equal(jsonschema_compile(form, &opt, &s, &e), EGOV_OK);
	cJSON_Delete(form);
	cJSON_Delete(addr);
	jsonschema_registry_free(reg); /* the schema keeps what it needs */
	assert_int_equal(validate(s, "{\"from\": {\"street\": \"Rua A\", \"code\": \"999078\"}, \"code\": \"1\"}", &e),
			 EGOV_OK);
	assert_int_equal(validate(s, "{\"from\": {\"code\": \"123456789\"}}", &e), EGOV_EINVAL);
	assert_non_null(find_error(&e, "schema.required", "/from/street"));
	assert_non_null(find_error(&e, "schema.max_length", "/from/code"));
	jsonschema_free(s);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_hostile_instance(void **state)
{
	jsonschema_errors e;
	jsonschema *s = compile("{\"items\": {\"$ref\": \"#\"}}", 0, &e);
	char text[512];
	size_t i;

	(void)state;
	assert_non_null(s);
	for (i = 0; i < 100; i++)
		text[i] = '[';
	for (i = 0; i < 100; i++)
		text[100 + i] = ']';
	text[200] = '\0';
	assert_int_equal(validate(s, text, &e), EGOV_ELIMIT);
	assert_string_equal(e.items[0].code, "schema.too_deep");
	for (i = 0; i < JSONSCHEMA_INSTANCE_DEPTH_MAX; i++)
		text[i] = '[';
	for (i = 0; i < JSONSCHEMA_INSTANCE_DEPTH_MAX; i++)
		text[JSONSCHEMA_INSTANCE_DEPTH_MAX + i] = ']';
	text[2 * JSONSCHEMA_INSTANCE_DEPTH_MAX] = '\0';
	assert_int_equal(validate(s, text, &e), EGOV_OK); /* at the limit */
	jsonschema_free(s);
}

static void test_catastrophic_regex(void **state)
{
	jsonschema_errors e;
	jsonschema *s = compile("{\"pattern\": \"^(a+)+$\"}", 0, &e);
	char text[128];
	double t0;

	(void)state;
	assert_non_null(s);
	text[0] = '"';
	memset(text + 1, 'a', 60);
	memcpy(text + 61, "b\"", 3);
	t0 = now_s();
	assert_int_equal(validate(s, text, &e), EGOV_ELIMIT);
	assert_string_equal(e.items[0].code, "schema.too_complex");
	assert_true(now_s() - t0 < 1.0);
	assert_int_equal(validate(s, "\"aaaa\"", &e), EGOV_OK);
	/* bytes that are not UTF-8 (cJSON lets them through) cannot match */
	assert_int_equal(validate(s, "\"a\xff\"", &e), EGOV_EINVAL);
	assert_string_equal(e.items[0].code, "schema.pattern");
	jsonschema_free(s);
}

/* anyOf four ways, fifteen deep, through shared $refs, every branch
 * failing: 4^15 evaluations unless the budget stops it. */
static void test_exponential_schema(void **state)
{
	char text[4096];
	size_t len = 0, i;
	jsonschema_errors e;
	jsonschema *s;
	double t0;

	(void)state;
	len += (size_t)snprintf(text + len, sizeof text - len, "{\"$ref\": \"#/$defs/d0\", \"$defs\": {");
	for (i = 0; i < 15; i++)
		len += (size_t)snprintf(text + len, sizeof text - len,
					"\"d%zu\": {\"anyOf\": [{\"$ref\": \"#/$defs/d%zu\"}, {\"$ref\": \"#/$defs/d%zu\"},"
					" {\"$ref\": \"#/$defs/d%zu\"}, {\"$ref\": \"#/$defs/d%zu\"}]},",
					i, i + 1, i + 1, i + 1, i + 1);
	snprintf(text + len, sizeof text - len, "\"d15\": false}}");
	assert_non_null(s = compile(text, 0, &e));
	t0 = now_s();
	assert_int_equal(validate(s, "1", &e), EGOV_ELIMIT);
	assert_string_equal(e.items[0].code, "schema.too_complex");
	assert_true(now_s() - t0 < 2.0);
	jsonschema_free(s);
}

static void test_limits_on_schemas(void **state)
{
	char *text = malloc(64 * 1024);
	size_t len = 0, i;
	jsonschema_errors e;

	(void)state;
	assert_non_null(text);
	/* nesting deeper than the limit */
	for (i = 0; i < JSONSCHEMA_SCHEMA_DEPTH_MAX + 5; i++)
		len += (size_t)snprintf(text + len, 64 * 1024 - len, "{\"not\": ");
	len += (size_t)snprintf(text + len, 64 * 1024 - len, "true");
	for (i = 0; i < JSONSCHEMA_SCHEMA_DEPTH_MAX + 5; i++)
		len += (size_t)snprintf(text + len, 64 * 1024 - len, "}");
	assert_null(compile(text, 0, &e));
	assert_string_equal(e.items[0].code, "schema.too_deep");
	/* a chain of $refs longer than the limit */
	len = (size_t)snprintf(text, 64 * 1024, "{\"$ref\": \"#/$defs/r0\", \"$defs\": {");
	for (i = 0; i < JSONSCHEMA_REF_CHAIN_MAX + 2; i++)
		len += (size_t)snprintf(text + len, 64 * 1024 - len, "\"r%zu\": {\"$ref\": \"#/$defs/r%zu\"},", i, i + 1);
	snprintf(text + len, 64 * 1024 - len, "\"r%d\": true}}", JSONSCHEMA_REF_CHAIN_MAX + 2);
	assert_null(compile(text, 0, &e));
	assert_string_equal(e.items[0].code, "schema.ref_chain_too_long");
	free(text);
}

typedef struct thread_arg {
	const jsonschema *s;
	int bad;
} thread_arg;

static void *validate_many(void *p)
{
	thread_arg *a = p;
	cJSON *good = J("{\"name\": \"Ana\", \"phone\": \"1\", \"members\": [{\"code\": \"ABC\"}]}");
	cJSON *bad = J("{\"name\": \"toolong\", \"phone\": \"1\", \"members\": [{\"code\": \"abc\"}]}");
	jsonschema_errors e;
	int i;

	for (i = 0; i < 2000; i++) {
		if (jsonschema_validate(a->s, good, &e) != EGOV_OK)
			a->bad++;
		if (jsonschema_validate(a->s, bad, &e) != EGOV_EINVAL || e.n != 2 ||
		    !find_error(&e, "schema.pattern", "/members/0/code"))
			a->bad++;
	}
	cJSON_Delete(good);
	cJSON_Delete(bad);
	return NULL;
}

static void test_threads_share_a_schema(void **state)
{
	jsonschema_errors e;
	jsonschema *s = compile(FORM_SCHEMA, 0, &e);
	pthread_t th[4];
	thread_arg args[4];
	int i;

	(void)state;
	assert_non_null(s);
	for (i = 0; i < 4; i++) {
		args[i] = (thread_arg){s, 0};
		assert_int_equal(pthread_create(&th[i], NULL, validate_many, &args[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].bad, 0);
	}
	jsonschema_free(s);
}

/* The work budget and the error count leave room for a real form: 100
 * fields of several keywords each, checked in well under a millisecond. */
static void test_hundred_field_form(void **state)
{
	char *schema = malloc(64 * 1024), *inst = malloc(16 * 1024);
	size_t sl = 0, il = 0, i;
	jsonschema_errors e;
	jsonschema *s;
	double t0, per;
	int k;

	(void)state;
	assert_true(schema && inst);
	sl += (size_t)snprintf(schema + sl, 64 * 1024 - sl, "{\"type\": \"object\", \"additionalProperties\": false,"
							    " \"required\": [\"f0\"], \"properties\": {");
	il += (size_t)snprintf(inst + il, 16 * 1024 - il, "{");
	for (i = 0; i < 100; i++) {
		sl += (size_t)snprintf(schema + sl, 64 * 1024 - sl,
				       "%s\"f%zu\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 40,"
				       " \"pattern\": \"^[A-Za-z0-9 ]+$\"}",
				       i ? "," : "", i);
		il += (size_t)snprintf(inst + il, 16 * 1024 - il, "%s\"f%zu\": \"Value number %zu\"", i ? "," : "", i, i);
	}
	snprintf(schema + sl, 64 * 1024 - sl, "}}");
	snprintf(inst + il, 16 * 1024 - il, "}");
	assert_non_null(s = compile(schema, 0, &e));
	{
		cJSON *j = J(inst);
		t0 = now_s();
		for (k = 0; k < 200; k++)
			assert_int_equal(jsonschema_validate(s, j, &e), EGOV_OK);
		per = (now_s() - t0) / 200;
		cJSON_Delete(j);
	}
	printf("# a 100-field form validates in %.1f us\n", per * 1e6);
	assert_true(per < 0.005); /* generous: sanitizer builds are slow */
	jsonschema_free(s);
	free(schema);
	free(inst);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_form_errors),
		cmocka_unit_test(test_pointer_escapes_and_combinators),
		cmocka_unit_test(test_errors_kept_at_most),
		cmocka_unit_test(test_bad_schemas),
		cmocka_unit_test(test_strict_and_lenient),
		cmocka_unit_test(test_format_assertion),
		cmocka_unit_test(test_registry),
		cmocka_unit_test(test_hostile_instance),
		cmocka_unit_test(test_catastrophic_regex),
		cmocka_unit_test(test_exponential_schema),
		cmocka_unit_test(test_limits_on_schemas),
		cmocka_unit_test(test_threads_share_a_schema),
		cmocka_unit_test(test_hundred_field_form),
		cmocka_unit_test(test_official_suite),
	};
	return cmocka_run_group_tests_name("jsonschema", tests, NULL, NULL);
}
