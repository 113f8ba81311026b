/*
 * test_web.c: the message catalogues (i18n.c) and the in-memory front end
 * (web.c), on the real web/ directory and on small temporary ones for the
 * error cases. Run from the repository root, or set EGOV_WEB_DIR.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cJSON.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "core/i18n.h"
#include "core/web.h"
#include "testutil.h"
#include "core/banned.h"

static const char *web_dir(void)
{
	const char *d = getenv("EGOV_WEB_DIR");
	return d && *d ? d : "web";
}

static void load_real(void)
{
	char errmsg[512] = "";
	char i18n_dir[1024];

	snprintf(i18n_dir, sizeof i18n_dir, "%s/i18n", web_dir());
	if (i18n_load(i18n_dir, errmsg, sizeof errmsg) != EGOV_OK)
		fail_msg("i18n_load: %s", errmsg);
	if (web_load(web_dir(), errmsg, sizeof errmsg) != EGOV_OK)
		fail_msg("web_load: %s", errmsg);
}

static int teardown(void **state)
{
	web_free();
	i18n_free();
	return 0;
}

static void write_file(const char *dir, const char *rel, const char *text)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", dir, rel);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void make_dir(const char *dir, const char *rel)
{
	char path[1024];

	snprintf(path, sizeof path, "%s/%s", dir, rel);
	assert_int_equal(mkdir(path, 0755), 0);
}

/* A temporary web directory with three catalogues; en.json gets en_extra. */
static char *make_site(const char *zh, const char *pt, const char *en)
{
	char *dir = test_tmpdir();

	assert_non_null(dir);
	make_dir(dir, "i18n");
	write_file(dir, "i18n/zh-Hant.json", zh);
	write_file(dir, "i18n/pt.json", pt);
	write_file(dir, "i18n/en.json", en);
	return dir;
}

static egov_err load_site(const char *dir, char *errmsg, size_t errlen)
{
	char i18n_dir[1024];
	egov_err err;

	snprintf(i18n_dir, sizeof i18n_dir, "%s/i18n", dir);
	err = i18n_load(i18n_dir, errmsg, errlen);
	if (err)
		return err;
	return web_load(dir, errmsg, errlen);
}

/* ---------- catalogues ---------- */

static void test_catalogues_load(void **state)
{
	int i;

	load_real();
	for (i = 0; i < I18N_NLANG; i++) {
		const char *name = i18n_text(i18n_langs[i], "site.name");
		assert_true(i18n_has(i18n_langs[i], "site.name"));
		assert_string_not_equal(name, "site.name");
		assert_true(strlen(name) > 3);
	}
	assert_string_equal(i18n_text("zh-Hant", "nav.home"), "首頁");
	assert_string_equal(i18n_text("pt", "nav.home"), "Página inicial");
	assert_string_equal(i18n_text("en", "nav.home"), "Home");
	/* Unknown key: the key itself, so a gap shows instead of crashing. */
	assert_string_equal(i18n_text("pt", "no.such.key"), "no.such.key");
	assert_false(i18n_has("pt", "no.such.key"));
	/* Unknown language: English. */
	assert_string_equal(i18n_text("de", "nav.home"), "Home");
}

/* Collects the keys of one catalogue file. */
static cJSON *read_catalogue(const char *lang)
{
	char path[1024];
	char *text;
	long n;
	FILE *f;
	cJSON *root;

	snprintf(path, sizeof path, "%s/i18n/%s.json", web_dir(), lang);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	text = malloc((size_t)n + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
	text[n] = '\0';
	fclose(f);
	root = cJSON_Parse(text);
	free(text);
	assert_non_null(root);
	return root;
}

/* Every key of every catalogue exists in the other two, and no text is
 * empty: a page or problem title must never fall back silently. */
static void test_catalogues_same_keys(void **state)
{
	cJSON *roots[I18N_NLANG];
	int i, j, missing = 0;

	load_real();
	for (i = 0; i < I18N_NLANG; i++)
		roots[i] = read_catalogue(i18n_langs[i]);
	for (i = 0; i < I18N_NLANG; i++) {
		const cJSON *it;
		cJSON_ArrayForEach(it, roots[i]) {
			if (!cJSON_IsString(it) || it->valuestring[0] == '\0') {
				print_error("%s: \"%s\" is empty or not a string\n", i18n_langs[i], it->string);
				missing++;
			}
			for (j = 0; j < I18N_NLANG; j++) {
				if (!i18n_has(i18n_langs[j], it->string)) {
					print_error("key \"%s\" (in %s) is missing in %s\n", it->string,
						    i18n_langs[i], i18n_langs[j]);
					missing++;
				}
			}
		}
	}
	for (i = 0; i < I18N_NLANG; i++)
		cJSON_Delete(roots[i]);
	assert_int_equal(missing, 0);
}

/* The problem codes the API can answer with each have a title. */
static void test_problem_titles(void **state)
{
	static const char *const codes[] = {
		"not_found", "method_not_allowed", "unsupported_media_type", "payload_too_large",
		"uri_too_long", "header_fields_too_large", "bad_request", "unauthorized", "forbidden",
		"conflict", "too_many_requests", "internal", "unavailable", "json.malformed",
		"json.invalid_utf8", "json.too_deep", "json.not_object", "json.unknown_field",
		"json.duplicate_field", "json.missing_field", "json.wrong_type", "json.too_long",
		"json.out_of_range", "json.too_large", "json.nul", "uri.bad_escape", "uri.nul",
		"uri.encoded_slash", "uri.dot_segment", "uri.backslash", "uri.not_absolute",
		"uri.invalid_utf8", "uri.too_many", "query.invalid", "validation.invalid_field",
	};
	char key[128];
	size_t i;
	int l;

	load_real();
	for (i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		snprintf(key, sizeof key, "problem.%s", codes[i]);
		for (l = 0; l < I18N_NLANG; l++) {
			if (!i18n_has(i18n_langs[l], key))
				fail_msg("%s missing in %s", key, i18n_langs[l]);
		}
		/* Translated, not copied: the Chinese title differs from the English. */
		assert_string_not_equal(i18n_text("zh-Hant", key), i18n_text("en", key));
	}
}

static void test_lang_index(void **state)
{
	static const struct {
		const char *tag;
		int want;
	} cases[] = {
		{"zh-Hant", 0}, {"zh-TW", 0}, {"zh-HK", 0}, {"zh-MO", 0}, {"zh", 0}, {"ZH-hant", 0},
		{"pt", 1}, {"pt-PT", 1}, {"pt-BR", 1}, {"PT", 1}, {"en", 2}, {"en-GB", 2}, {"en-US", 2},
		{"", -1}, {"de", -1}, {"zhx", -1}, {"ptx", -1}, {"e", -1}, {"english", -1}, {"-", -1},
	};
	size_t i;

	assert_int_equal(i18n_lang_index(NULL), -1);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		if (i18n_lang_index(cases[i].tag) != cases[i].want)
			fail_msg("i18n_lang_index(\"%s\") = %d, want %d", cases[i].tag,
				 i18n_lang_index(cases[i].tag), cases[i].want);
	}
}

static void test_negotiate(void **state)
{
	static const struct {
		const char *header;
		const char *want;
	} cases[] = {
		{"zh-TW", "zh-Hant"},
		{"zh-MO,zh;q=0.9", "zh-Hant"},
		{"pt-BR;q=0.9, en;q=0.1", "pt"},
		{"en;q=0.1, pt-BR;q=0.9", "pt"},
		{"en-US,en;q=0.9", "en"},
		{"de-DE, en;q=0.5, pt;q=0.4", "en"},
		{"de, fr;q=0.8", "zh-Hant"},
		{"en;q=0, pt;q=0.2", "pt"},
		{"en;q=0", "zh-Hant"},
		{"pt;q=0.5, en;q=0.5", "pt"}, /* equal q: first listed wins */
		{"*", "zh-Hant"},
		{"en ; q=0.7 ,  pt ; q=0.8", "pt"},
		{"en;q=1.0, pt", "en"},
		{"en;q=2, pt;q=0.1", "pt"},      /* q above 1 is invalid: item ignored */
		{"en;q=abc, pt;q=0.1", "pt"},    /* so is garbage */
		{"en;q=0.12345, pt;q=0.1", "pt"}, /* and more than three decimals */
		{"en;foo=bar, pt;q=0.1", "pt"},
		{"\x01\x02garbage;;;,,,", "zh-Hant"},
		{";;;,,,q=1", "zh-Hant"},
		{"", "zh-Hant"},
		{NULL, "zh-Hant"},
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *got = i18n_negotiate(cases[i].header);
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("i18n_negotiate(\"%s\") = %s, want %s", cases[i].header ? cases[i].header : "(null)",
				 got, cases[i].want);
	}
}

static void test_i18n_load_errors(void **state)
{
	static const struct {
		const char *en;
		const char *expect; /* in the message */
	} cases[] = {
		{"{\"a\": 1}", "\"a\""},
		{"[\"a\"]", "not a JSON object"},
		{"{\"a\": \"x\"", "not a JSON object"},
		{"{\"a\": \"x\", \"a\": \"y\"}", "duplicate key \"a\""},
		{"{\"\": \"x\"}", "key empty"},
		{"{\"a\": \"\xff\"}", "UTF-8"},
	};
	char errmsg[512];
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *dir = make_site("{}", "{}", cases[i].en);
		errmsg[0] = '\0';
		assert_int_not_equal(load_site(dir, errmsg, sizeof errmsg), EGOV_OK);
		if (!strstr(errmsg, cases[i].expect) || !strstr(errmsg, "en.json"))
			fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, errmsg, cases[i].expect);
		/* Nothing half-loaded stays behind. */
		assert_false(i18n_has("zh-Hant", "site.name"));
		test_rmrf(dir);
		free(dir);
	}
	/* A missing catalogue names the file. */
	{
		char *dir = test_tmpdir();
		char i18n_dir[1024];
		assert_non_null(dir);
		snprintf(i18n_dir, sizeof i18n_dir, "%s/nope", dir ? dir : "");
		assert_int_equal(i18n_load(i18n_dir, errmsg, sizeof errmsg), EGOV_EIO);
		assert_non_null(strstr(errmsg, "zh-Hant.json"));
		test_rmrf(dir);
		free(dir);
	}
}

static void test_fallback_to_english(void **state)
{
	char errmsg[512] = "";
	char *dir = make_site("{\"a\": \"甲\"}", "{\"a\": \"á\"}", "{\"a\": \"A\", \"only.en\": \"E\"}");

	assert_int_equal(load_site(dir, errmsg, sizeof errmsg), EGOV_OK);
	assert_string_equal(i18n_text("zh-Hant", "a"), "甲");
	assert_string_equal(i18n_text("pt", "a"), "á");
	assert_string_equal(i18n_text("pt", "only.en"), "E");
	assert_false(i18n_has("pt", "only.en"));
	assert_true(i18n_has("en", "only.en"));
	test_rmrf(dir);
	free(dir);
}

/* ---------- the real front end ---------- */

static int is_quoted_sha256(const char *etag)
{
	size_t i;

	if (strlen(etag) != 66 || etag[0] != '"' || etag[65] != '"')
		return 0;
	for (i = 1; i < 65; i++)
		if (!strchr("0123456789abcdef", etag[i]))
			return 0;
	return 1;
}

static void test_pages_render(void **state)
{
	static const char *const pages[] = {"/", "/index.html", "/design.html"};
	size_t p;
	int i;

	load_real();
	for (p = 0; p < sizeof pages / sizeof pages[0]; p++) {
		for (i = 0; i < I18N_NLANG; i++) {
			const web_file *f = web_find(pages[p], i18n_langs[i]);
			char want[64];

			assert_non_null(f);
			assert_true(f->per_lang);
			assert_string_equal(f->mime, "text/html; charset=utf-8");
			assert_int_equal(strlen(f->data), f->len);
			assert_null(strstr(f->data, "{{"));
			assert_null(strstr(f->data, "}}"));
			snprintf(want, sizeof want, "<html lang=\"%s\"", i18n_langs[i]);
			assert_non_null(strstr(f->data, want));
			assert_non_null(strstr(f->data, i18n_text(i18n_langs[i], "site.name")));
			/* The language switch marks exactly the page's own language. */
			snprintf(want, sizeof want, "hreflang=\"%s\" aria-current=\"page\"", i18n_langs[i]);
			assert_non_null(strstr(f->data, want));
			assert_non_null(strstr(f->data, "aria-current=\"false\""));
			assert_true(is_quoted_sha256(f->etag));
			/* No inline script or style: the CSP would block them. */
			assert_null(strstr(f->data, "<style"));
			assert_null(strstr(f->data, " style="));
			assert_null(strstr(f->data, "<script>"));
			assert_null(strstr(f->data, " on"/* handler */ "click="));
		}
	}
	/* "/" and "/index.html" are the same file. */
	assert_ptr_equal(web_find("/", "pt"), web_find("/index.html", "pt"));
	/* An unknown or absent language gets the default. */
	assert_ptr_equal(web_find("/", NULL), web_find("/", "zh-Hant"));
	assert_ptr_equal(web_find("/", "de"), web_find("/", "zh-Hant"));
	assert_ptr_equal(web_find("/", "pt-BR"), web_find("/", "pt"));
}

static void test_etags(void **state)
{
	char zh[80], pt[80], en[80], css[80];
	const web_file *f;

	load_real();
	snprintf(zh, sizeof zh, "%s", web_find("/", "zh-Hant")->etag);
	snprintf(pt, sizeof pt, "%s", web_find("/", "pt")->etag);
	snprintf(en, sizeof en, "%s", web_find("/", "en")->etag);
	f = web_find("/css/egov.css", "pt");
	assert_non_null(f);
	assert_false(f->per_lang);
	assert_ptr_equal(f, web_find("/css/egov.css", "en"));
	assert_true(is_quoted_sha256(f->etag));
	snprintf(css, sizeof css, "%s", f->etag);
	assert_string_not_equal(zh, pt);
	assert_string_not_equal(zh, en);
	assert_string_not_equal(pt, en);

	/* Stable across loads: same bytes, same tag. */
	web_free();
	i18n_free();
	load_real();
	assert_string_equal(web_find("/", "zh-Hant")->etag, zh);
	assert_string_equal(web_find("/", "pt")->etag, pt);
	assert_string_equal(web_find("/", "en")->etag, en);
	assert_string_equal(web_find("/css/egov.css", NULL)->etag, css);
}

static void test_paths_not_found(void **state)
{
	static const char *const bad[] = {
		"", "index.html", "/..", "/../", "/../x", "/../index.html", "/index.html/..",
		"/index.html/", "/css/../index.html", "/./index.html", "//index.html", "/%2e%2e/",
		"/%2e%2e/index.html", "/css", "/css/egov.css/", "/INDEX.HTML", "/index.html\\",
		"/i18n/../index.html", "/nope.html", "/.hidden", "/index.htm", "/index.html?x",
	};
	char longpath[5000];
	size_t i;

	load_real();
	assert_null(web_find(NULL, "en"));
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (web_find(bad[i], "en"))
			fail_msg("web_find(\"%s\") found a file", bad[i]);
	}
	memset(longpath, 'a', sizeof longpath - 1);
	longpath[0] = '/';
	longpath[sizeof longpath - 1] = '\0';
	assert_null(web_find(longpath, "en"));
	/* The things that are there. */
	assert_non_null(web_find("/favicon.svg", "en"));
	assert_non_null(web_find("/js/egov.js", "en"));
	assert_non_null(web_find("/i18n/en.json", "en"));
}

static void test_mime_types(void **state)
{
	static const struct {
		const char *name;
		const char *want;
	} cases[] = {
		{"/index.html", "text/html; charset=utf-8"},
		{"/a/B.HTML", "text/html; charset=utf-8"},
		{"/css/egov.css", "text/css; charset=utf-8"},
		{"/js/egov.js", "text/javascript; charset=utf-8"},
		{"/js/x.mjs", "text/javascript; charset=utf-8"},
		{"/i18n/en.json", "application/json"},
		{"/favicon.svg", "image/svg+xml; charset=utf-8"},
		{"/logo.png", "image/png"},
		{"/favicon.ico", "image/x-icon"},
		{"/fonts/a.woff2", "font/woff2"},
		{"/robots.txt", "text/plain; charset=utf-8"},
		{"/site.webmanifest", "application/manifest+json"},
		{"/x.exe", "application/octet-stream"},
		{"/noext", "application/octet-stream"},
		{"/dir.css/noext", "application/octet-stream"},
		{"/trailingdot.", "application/octet-stream"},
		{"/.css", "text/css; charset=utf-8"},
	};
	size_t i;

	assert_string_equal(web_mime_type(NULL), "application/octet-stream");
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
		assert_string_equal(web_mime_type(cases[i].name), cases[i].want);

	load_real();
	assert_string_equal(web_find("/css/egov.css", "en")->mime, "text/css; charset=utf-8");
	assert_string_equal(web_find("/js/egov.js", "en")->mime, "text/javascript; charset=utf-8");
	assert_string_equal(web_find("/favicon.svg", "en")->mime, "image/svg+xml; charset=utf-8");
}

/* ---------- templates on temporary directories ---------- */

static void test_template_escapes(void **state)
{
	char errmsg[512] = "";
	char *dir = make_site("{\"k\": \"<b>&\\\"'甲\"}", "{\"k\": \"ç<i>\"}", "{\"k\": \"<script>alert(1)</script>\"}");
	const web_file *f;

	write_file(dir, "page.html", "<p title=\"{{k}}\" lang=\"{{lang}}\" dir=\"{{dir}}\">{{k}}</p>"
				     "<a aria-current=\"{{current:pt}}\"></a>");
	make_dir(dir, "sub");
	write_file(dir, "sub/index.html", "{{lang}}");
	write_file(dir, "plain.txt", "{{not a template}}");
	write_file(dir, ".hidden.html", "{{broken");
	make_dir(dir, ".git");
	write_file(dir, ".git/config", "secret");
	make_dir(dir, ".well-known");
	write_file(dir, ".well-known/security.txt", "Contact: mailto:security@example.mo\n");
	make_dir(dir, "sub/.well-known");
	write_file(dir, "sub/.well-known/x.txt", "x");
	assert_int_equal(load_site(dir, errmsg, sizeof errmsg), EGOV_OK);

	f = web_find("/page.html", "zh-Hant");
	assert_non_null(f);
	assert_string_equal(f->data, "<p title=\"&lt;b&gt;&amp;&quot;&#39;甲\" lang=\"zh-Hant\" dir=\"ltr\">"
				     "&lt;b&gt;&amp;&quot;&#39;甲</p><a aria-current=\"false\"></a>");
	f = web_find("/page.html", "pt");
	assert_string_equal(f->data, "<p title=\"ç&lt;i&gt;\" lang=\"pt\" dir=\"ltr\">ç&lt;i&gt;</p>"
				     "<a aria-current=\"page\"></a>");
	f = web_find("/page.html", "en");
	assert_null(strstr(f->data, "<script>"));
	assert_non_null(strstr(f->data, "&lt;script&gt;alert(1)&lt;/script&gt;"));

	/* "/dir/" is "/dir/index.html". */
	f = web_find("/sub/", "pt");
	assert_non_null(f);
	assert_string_equal(f->data, "pt");
	assert_ptr_equal(f, web_find("/sub/index.html", "pt"));
	assert_null(web_find("/sub", "pt"));

	/* Only HTML is a template; hidden files are not part of the site. */
	f = web_find("/plain.txt", "en");
	assert_non_null(f);
	assert_string_equal(f->data, "{{not a template}}");
	assert_false(f->per_lang);
	assert_null(web_find("/.hidden.html", "en"));
	assert_null(web_find("/.git/config", "en"));
	assert_null(web_find("/sub/.well-known/x.txt", "en"));
	f = web_find("/.well-known/security.txt", "en");
	assert_non_null(f);
	assert_string_equal(f->mime, "text/plain; charset=utf-8");
	test_rmrf(dir);
	free(dir);
}

static void test_template_errors(void **state)
{
	static const struct {
		const char *page;
		const char *expect[3];
	} cases[] = {
		{"<p>\n{{missing.key}}</p>", {"page.html:2", "\"missing.key\"", "zh-Hant"}},
		{"{{only.en}}", {"page.html", "\"only.en\"", "zh-Hant"}},
		{"{{only.zh}}", {"page.html", "\"only.zh\"", "language pt"}},
		{"<p>{{ k }}</p>", {"page.html:1", "malformed", ""}},
		{"<p>{{k}</p>", {"page.html", "malformed", ""}},
		{"<p>{{</p>", {"page.html", "malformed", ""}},
		{"<p>{{k", {"page.html", "malformed", ""}},
		{"{{current:de}}", {"page.html", "unknown language", ""}},
		{"{{current:zh-TW}}", {"page.html", "unknown language", ""}},
	};
	char errmsg[512];
	size_t i;
	int j;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *dir = make_site("{\"k\": \"甲\", \"only.zh\": \"乙\"}", "{\"k\": \"a\"}",
				      "{\"k\": \"a\", \"only.en\": \"b\"}");
		make_dir(dir, "sub");
		write_file(dir, "sub/page.html", cases[i].page);
		errmsg[0] = '\0';
		assert_int_not_equal(load_site(dir, errmsg, sizeof errmsg), EGOV_OK);
		for (j = 0; j < 3; j++) {
			if (!strstr(errmsg, cases[i].expect[j]))
				fail_msg("case %zu: \"%s\" lacks \"%s\"", i, errmsg, cases[i].expect[j]);
		}
		assert_non_null(strstr(errmsg, "/sub/page.html"));
		/* A failed load serves nothing. */
		assert_null(web_find("/sub/page.html", "en"));
		test_rmrf(dir);
		free(dir);
	}
}

static void test_symlinks(void **state)
{
	char errmsg[512] = "";
	char target[1024], link[1024];
	char *outside = test_tmpdir();
	char *dir = make_site("{}", "{}", "{}");
	const web_file *f;

	assert_non_null(outside);
	write_file(outside, "secret.txt", "secret");
	write_file(dir, "real.txt", "real");
	snprintf(link, sizeof link, "%s/alias.txt", dir);
	assert_int_equal(symlink("real.txt", link), 0);
	assert_int_equal(load_site(dir, errmsg, sizeof errmsg), EGOV_OK);
	f = web_find("/alias.txt", "en");
	assert_non_null(f);
	assert_string_equal(f->data, "real");
	web_free();

	/* A link out of the tree is refused, not followed. */
	snprintf(target, sizeof target, "%s/secret.txt", outside);
	snprintf(link, sizeof link, "%s/leak.txt", dir);
	assert_int_equal(symlink(target, link), 0);
	assert_int_not_equal(load_site(dir, errmsg, sizeof errmsg), EGOV_OK);
	assert_non_null(strstr(errmsg, "leak.txt"));
	assert_null(web_find("/leak.txt", "en"));
	assert_int_equal(unlink(link), 0);

	/* So is a link to a directory, even one inside (no loops). */
	snprintf(link, sizeof link, "%s/loop", dir);
	assert_int_equal(symlink(".", link), 0);
	assert_int_not_equal(load_site(dir, errmsg, sizeof errmsg), EGOV_OK);
	assert_non_null(strstr(errmsg, "loop"));

	test_rmrf(dir);
	test_rmrf(outside);
	free(dir);
	free(outside);
}

static void sparse_file(const char *dir, const char *rel, off_t size)
{
	char path[1024];
	int fd;

	snprintf(path, sizeof path, "%s/%s", dir, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	close(fd);
}

/* A directory too big to serve from memory is refused, not truncated. */
static void test_caps(void **state)
{
	char errmsg[512] = "";
	char name[64];
	char *dir;
	int i;

	dir = make_site("{}", "{}", "{}");
	for (i = 0; i < 2049; i++) {
		snprintf(name, sizeof name, "f%04d.txt", i);
		write_file(dir, name, "x");
	}
	assert_int_equal(load_site(dir, errmsg, sizeof errmsg), EGOV_ELIMIT);
	assert_non_null(strstr(errmsg, "more than 2048 files"));
	test_rmrf(dir);
	free(dir);

	dir = make_site("{}", "{}", "{}");
	sparse_file(dir, "big.png", 8 * 1024 * 1024 + 1);
	assert_int_equal(load_site(dir, errmsg, sizeof errmsg), EGOV_ELIMIT);
	assert_non_null(strstr(errmsg, "/big.png: larger than"));
	test_rmrf(dir);
	free(dir);

	dir = make_site("{}", "{}", "{}");
	for (i = 0; i < 9; i++) {
		snprintf(name, sizeof name, "big%d.png", i);
		sparse_file(dir, name, 8 * 1024 * 1024);
	}
	assert_int_equal(load_site(dir, errmsg, sizeof errmsg), EGOV_ELIMIT);
	assert_non_null(strstr(errmsg, "web directory is larger than"));
	assert_null(web_find("/big0.png", "en"));
	test_rmrf(dir);
	free(dir);
}

static void test_missing_dir(void **state)
{
	char errmsg[512] = "";

	assert_int_equal(web_load("/nonexistent/egov-web", errmsg, sizeof errmsg), EGOV_EIO);
	assert_non_null(strstr(errmsg, "/nonexistent/egov-web"));
	assert_null(web_find("/", "en"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_catalogues_load, teardown),
		cmocka_unit_test_teardown(test_catalogues_same_keys, teardown),
		cmocka_unit_test_teardown(test_problem_titles, teardown),
		cmocka_unit_test(test_lang_index),
		cmocka_unit_test(test_negotiate),
		cmocka_unit_test_teardown(test_i18n_load_errors, teardown),
		cmocka_unit_test_teardown(test_fallback_to_english, teardown),
		cmocka_unit_test_teardown(test_pages_render, teardown),
		cmocka_unit_test_teardown(test_etags, teardown),
		cmocka_unit_test_teardown(test_paths_not_found, teardown),
		cmocka_unit_test_teardown(test_mime_types, teardown),
		cmocka_unit_test_teardown(test_template_escapes, teardown),
		cmocka_unit_test_teardown(test_template_errors, teardown),
		cmocka_unit_test_teardown(test_symlinks, teardown),
		cmocka_unit_test_teardown(test_caps, teardown),
		cmocka_unit_test_teardown(test_missing_dir, teardown),
	};
	return cmocka_run_group_tests_name("web", tests, NULL, NULL);
}
