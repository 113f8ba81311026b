/*
 * test_console.c: the staff console's templates (console_frame.c: slots,
 * their errors, rendering and escaping) and its registry of pages
 * (console.c: what it refuses to serve, the menu order), on the real web/
 * directory. Run from the repository root, or set EGOV_WEB_DIR.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "console/console_int.h"
#include "core/web.h"
#include "testutil.h"
#include "core/banned.h"

static const char *web_dir(void)
{
	const char *d = getenv("EGOV_WEB_DIR");
	return d && *d ? d : "web";
}

static int setup(void **state)
{
	char errmsg[512] = "";
	char i18n_dir[1024];

	snprintf(i18n_dir, sizeof i18n_dir, "%s/i18n", web_dir());
	if (i18n_load(i18n_dir, errmsg, sizeof errmsg) != EGOV_OK || web_load(web_dir(), errmsg, sizeof errmsg) != EGOV_OK) {
		fprintf(stderr, "loading %s: %s\n", web_dir(), errmsg);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	web_free();
	i18n_free();
	return 0;
}

static egov_err parse(const char *text, bool frame, console_tpl **t, char *errmsg, size_t errlen)
{
	return console_tpl_parse("t.html", text, strlen(text), frame, t, errmsg, errlen);
}

static void test_slot_errors(void **state)
{
	static const struct {
		const char *text;
		bool frame;
		const char *why;
	} bad[] = {
		{"<!--console:nope-->", false, "unknown console slot \"nope\""},
		{"<!--console:href:de-->", false, "unknown console slot \"href:de\""},
		{"<!--console:href:zh-hant-->", false, "unknown console slot"},
		{"<!--console:title", false, "does not end"},
		{"<!--console:if:person--><!--console:if:menu--><!--console:end--><!--console:end-->", false,
		 "inside another if"},
		{"a<!--console:end-->", false, "\"end\" without its if"},
		{"<!--console:if:cards-->a", false, "if without its end"},
		{"<!--console:if:person-->", false, "if without its end"},
		{"<html></html>", true, "exactly one content slot"},
		{"<!--console:content--><!--console:content-->", true, "exactly one content slot"},
		{"<main><!--console:content--></main>", false, "has no content slot"},
	};
	char errmsg[256];
	console_tpl *t = NULL;
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		errmsg[0] = '\0';
		if (parse(bad[i].text, bad[i].frame, &t, errmsg, sizeof errmsg) != EGOV_EINVAL)
			fail_msg("accepted: %s", bad[i].text);
		assert_null(t);
		if (!strstr(errmsg, bad[i].why) || !strstr(errmsg, "t.html"))
			fail_msg("%s: message \"%s\", wanted \"%s\"", bad[i].text, errmsg, bad[i].why);
	}
	/* Ordinary comments and text around slots are kept as they are. */
	assert_int_equal(parse("<!-- a note --><p>x</p>", false, &t, errmsg, sizeof errmsg), EGOV_OK);
	console_tpl_free(t);
}

static char *render(const char *frame_text, const char *content_text, const console_view *in)
{
	console_tpl *frame = NULL, *content = NULL;
	console_view v = *in;
	char errmsg[256];
	buf b;

	if (parse(frame_text, true, &frame, errmsg, sizeof errmsg) ||
	    parse(content_text, false, &content, errmsg, sizeof errmsg))
		fail_msg("%s", errmsg);
	v.content = content;
	buf_init(&b, 1 << 20);
	assert_int_equal(console_render(frame, &v, &b), EGOV_OK);
	console_tpl_free(frame);
	console_tpl_free(content);
	return buf_detach(&b, NULL);
}

static int count(const char *hay, const char *needle)
{
	int n = 0;

	for (; (hay = strstr(hay, needle)); hay += strlen(needle))
		n++;
	return n;
}

static const char FRAME[] =
	"<title><!--console:title--></title>"
	"<!--console:if:person--><meta content=\"<!--console:csrf-->\"><p><!--console:person--></p><!--console:end-->"
	"<!--console:script-->"
	"<a href=\"<!--console:href:zh-Hant-->\">z</a><a href=\"<!--console:href:pt-->\">p</a>"
	"<a href=\"<!--console:href:en-->\">e</a>"
	"<!--console:if:menu--><nav><!--console:menu--></nav><!--console:end-->"
	"<main><!--console:content--></main>";
static const char CONTENT[] =
	"<h1>x</h1><!--console:if:cards--><ul><!--console:cards--></ul><!--console:end-->"
	"<!--console:if:no-cards--><p>none</p><!--console:end-->";

static void test_render_fills_and_escapes(void **state)
{
	const console_link links[] = {
		{.href = "/staff", .label = "Overview", .current = false},
		{.href = "/staff/a", .label = "A <&> \"B\"", .summary = "it's <b>", .current = true},
	};
	console_view v = {
		.title = "T & <t>",
		.script = "/js/a.js",
		.person = "<Ana> & \"Co\"",
		.csrf = "tok\"en",
		.lang_href = {"/staff?x=\"1\"&lang=zh-Hant", "/staff?lang=pt", "/staff?lang=en"},
		.menu = links,
		.nmenu = 2,
		.cards = links + 1,
		.ncards = 1,
	};
	char *out = render(FRAME, CONTENT, &v);

	assert_non_null(strstr(out, "<title>T &amp; &lt;t&gt;</title>"));
	assert_non_null(strstr(out, "<meta content=\"tok&quot;en\">"));
	assert_non_null(strstr(out, "<p>&lt;Ana&gt; &amp; &quot;Co&quot;</p>"));
	assert_non_null(strstr(out, "<script src=\"/js/a.js\" defer></script>"));
	assert_non_null(strstr(out, "<a href=\"/staff?x=&quot;1&quot;&amp;lang=zh-Hant\">z</a>"));
	assert_non_null(strstr(out, "<a href=\"/staff?lang=pt\">p</a>"));
	/* The menu: the current entry alone is marked. */
	assert_non_null(strstr(out, "<a class=\"console-nav__link\" href=\"/staff\">Overview</a>"));
	assert_non_null(strstr(out, "<a class=\"console-nav__link\" href=\"/staff/a\" aria-current=\"page\">"
				    "A &lt;&amp;&gt; &quot;B&quot;</a>"));
	assert_int_equal(count(out, "aria-current"), 1);
	/* The cards, inside the content, inside main. */
	assert_non_null(strstr(out, "<main><h1>x</h1><ul><li class=\"card\"><h3><a href=\"/staff/a\">"));
	assert_non_null(strstr(out, "<p>it&#39;s &lt;b&gt;</p>"));
	assert_null(strstr(out, "none"));
	assert_null(strstr(out, "<!--console:"));
	free(out);
}

static void test_render_leaves_out(void **state)
{
	console_view v = {.title = "T", .lang_href = {"/a", "/b", "/c"}};
	char *out = render(FRAME, CONTENT, &v);

	/* Nobody signed in: no person, no token; no menu; no script; no cards. */
	assert_null(strstr(out, "<meta"));
	assert_null(strstr(out, "<p></p>"));
	assert_null(strstr(out, "<nav>"));
	assert_null(strstr(out, "<script"));
	assert_null(strstr(out, "<ul>"));
	assert_non_null(strstr(out, "<p>none</p></main>"));
	free(out);
}

/* ---- the registry ----------------------------------------------------------- */

static const char *const perms_a[] = {"a.read", NULL};
static const char *const perms_none[] = {NULL};

#define PAGE(p, ord) \
	{.path = p, .label = "staff.tools.exchange.title", .summary = "staff.tools.exchange.text", .perms = perms_a, \
	 .content = "/staff/exchange.html", .script = "/js/staff-exchange.js", .order = ord}

static egov_err load_pages(const console_page *pages, size_t n, console_site *s, char *errmsg, size_t errlen)
{
	egov_module m = {.name = "m", .pages = pages, .npages = n};
	const egov_module *mods[] = {&m};

	return console_site_load(s, mods, 1, errmsg, errlen);
}

static void test_site_orders_pages(void **state)
{
	const console_page pages[] = {PAGE("/staff/zeta", 10), PAGE("/staff/b/c-2", 5), PAGE("/staff/alpha", 10)};
	egov_module none = {.name = "none"};
	egov_module m = {.name = "m", .pages = pages, .npages = 3};
	const egov_module *mods[] = {&none, &m};
	console_site s;
	char errmsg[256];
	int i;

	assert_int_equal(console_site_load(&s, mods, 2, errmsg, sizeof errmsg), EGOV_OK);
	assert_int_equal(s.nentries, 3);
	assert_string_equal(s.entries[0].page->path, "/staff/b/c-2");
	assert_string_equal(s.entries[1].page->path, "/staff/alpha");
	assert_string_equal(s.entries[2].page->path, "/staff/zeta");
	assert_string_equal(s.entries[0].module, "m");
	for (i = 0; i < I18N_NLANG; i++) {
		assert_non_null(s.frame[i]);
		assert_non_null(s.entries[2].content[i]);
	}
	assert_ptr_equal(console_entry_find(&s, "/staff/alpha"), &s.entries[1]);
	assert_null(console_entry_find(&s, "/staff/alpha/"));
	assert_null(console_entry_find(&s, "/staff"));
	console_site_release(&s);
	assert_int_equal(s.nentries, 0);
}

static void test_site_refuses(void **state)
{
	console_page bad_path = PAGE("/other/x", 1), upper = PAGE("/staff/Bad", 1), bare = PAGE("/staff/", 1),
		     reserved = PAGE("/staff/logout", 1), empty_seg = PAGE("/staff/a//b", 1),
		     trailing = PAGE("/staff/a/", 1), no_perm = PAGE("/staff/a", 1), empty_perm = PAGE("/staff/a", 1),
		     no_key = PAGE("/staff/a", 1), outside = PAGE("/staff/a", 1), missing = PAGE("/staff/a", 1),
		     no_script = PAGE("/staff/a", 1);
	const console_page twice[] = {PAGE("/staff/a", 1), PAGE("/staff/a", 2)};
	struct {
		const console_page *pg;
		size_t n;
		const char *why;
	} bad[] = {
		{&bad_path, 1, "is not /staff/NAME"},
		{&upper, 1, "is not /staff/NAME"},
		{&bare, 1, "is not /staff/NAME"},
		{&reserved, 1, "is not /staff/NAME"},
		{&empty_seg, 1, "is not /staff/NAME"},
		{&trailing, 1, "is not /staff/NAME"},
		{&no_perm, 1, "no permission"},
		{&empty_perm, 1, "no permission"},
		{&no_key, 1, "label key \"staff.nope\" missing in zh-Hant"},
		{&outside, 1, "lives under web/staff/"},
		{&missing, 1, "no such template"},
		{&no_script, 1, "script /js/nope.js is not in the web directory"},
		{twice, 2, "declared twice"},
	};
	console_site s;
	char errmsg[256];
	size_t i;

	no_perm.perms = NULL;
	empty_perm.perms = perms_none;
	no_key.label = "staff.nope";
	outside.content = "/index.html";
	missing.content = "/staff/nope.html";
	no_script.script = "/js/nope.js";
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		errmsg[0] = '\0';
		if (load_pages(bad[i].pg, bad[i].n, &s, errmsg, sizeof errmsg) != EGOV_EINVAL)
			fail_msg("accepted case %zu (%s)", i, bad[i].why);
		if (!strstr(errmsg, bad[i].why))
			fail_msg("case %zu: message \"%s\", wanted \"%s\"", i, errmsg, bad[i].why);
		assert_int_equal(s.nentries, 0);
		assert_null(s.frame[0]);
	}
}

/* The modules this binary is built with: every page they declare loads. */
static void test_site_real_modules(void **state)
{
	console_site s;
	char errmsg[256] = "";

	if (console_site_load(&s, egov_modules, egov_modules_count, errmsg, sizeof errmsg))
		fail_msg("%s", errmsg);
	assert_non_null(console_entry_find(&s, "/staff/exchange"));
	console_site_release(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slot_errors),
		cmocka_unit_test(test_render_fills_and_escapes),
		cmocka_unit_test(test_render_leaves_out),
		cmocka_unit_test(test_site_orders_pages),
		cmocka_unit_test(test_site_refuses),
		cmocka_unit_test(test_site_real_modules),
	};
	return cmocka_run_group_tests_name("console", tests, setup, teardown);
}
