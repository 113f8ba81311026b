/*
 * console.c: the staff console's module: its descriptor, its routes, and
 * the registry of every module's pages (console_page in core/module.h),
 * built when the module starts.
 *
 * The console is the last module: it sits above the services, reads their
 * .pages through the kernel's list of modules (never their headers) and
 * uses identity for sessions and permissions. Start refuses a page it
 * could not serve (a path outside /staff/, a catalogue key missing in a
 * language, a template or script that is not in web/, two pages on one
 * path), so a mistake stops `egov serve` with its reason instead of
 * showing as a broken menu.
 *
 * Invariants: the site is built before the router exists and released
 * after the server drained; in between it is read-only, so the handlers
 * read it without a lock. Every template it holds lives under web/staff/,
 * which the console's routes cover, so none is ever served on its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console/console.h"
#include "console/console_int.h"
#include "core/log.h"
#include "core/web.h"
#include "core/banned.h"

static console_site site;
static bool loaded;

const console_site *console_site_get(void)
{
	return loaded ? &site : NULL;
}

const console_entry *console_entry_find(const console_site *s, const char *path)
{
	size_t i;

	for (i = 0; s && path && i < s->nentries; i++)
		if (strcmp(s->entries[i].page->path, path) == 0)
			return &s->entries[i];
	return NULL;
}

/* "/staff/a" or "/staff/a/b-2": segments of a-z, 0-9 and '-', not one of
 * the console's own. */
static bool path_ok(const char *p)
{
	const char *q;
	bool empty = true;

	if (!p || strncmp(p, CONSOLE_HOME "/", sizeof CONSOLE_HOME) != 0)
		return false;
	if (strcmp(p, CONSOLE_SIGNED_OUT) == 0 || strcmp(p, CONSOLE_LOGOUT) == 0)
		return false;
	for (q = p + sizeof CONSOLE_HOME; *q; q++) {
		if (*q == '/') {
			if (empty)
				return false;
			empty = true;
		} else if ((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '-') {
			empty = false;
		} else {
			return false;
		}
	}
	return !empty;
}

/* The rendered template at path in every language, split at its slots. */
static egov_err load_tpl(const char *path, bool frame, console_tpl *out[I18N_NLANG], char *errmsg, size_t errlen)
{
	egov_err err = EGOV_OK;
	int i;

	if (!path || strncmp(path, CONSOLE_HOME "/", sizeof CONSOLE_HOME) != 0) {
		snprintf(errmsg, errlen, "%s: a console template lives under web/staff/", path ? path : "(none)");
		return EGOV_EINVAL;
	}
	for (i = 0; !err && i < I18N_NLANG; i++) {
		const web_file *f = web_find(path, i18n_langs[i]);
		if (!f || !f->per_lang) {
			snprintf(errmsg, errlen, "%s: no such template in the web directory", path);
			return EGOV_EINVAL;
		}
		err = console_tpl_parse(path, f->data, f->len, frame, &out[i], errmsg, errlen);
	}
	return err;
}

static egov_err key_ok(const char *mod, const console_page *pg, const char *what, const char *key, char *errmsg,
		       size_t errlen)
{
	int i;

	for (i = 0; i < I18N_NLANG; i++)
		if (!key || !i18n_has(i18n_langs[i], key)) {
			snprintf(errmsg, errlen, "module %s, page %s: %s key \"%s\" missing in %s", mod, pg->path, what,
				 key ? key : "(none)", i18n_langs[i]);
			return EGOV_EINVAL;
		}
	return EGOV_OK;
}

static egov_err page_ok(const char *mod, const console_page *pg, char *errmsg, size_t errlen)
{
	egov_err err;

	if (!path_ok(pg->path)) {
		snprintf(errmsg, errlen, "module %s: page path \"%s\" is not /staff/NAME (a-z, 0-9, -)", mod,
			 pg->path ? pg->path : "(none)");
		return EGOV_EINVAL;
	}
	if (!pg->perms || !pg->perms[0]) {
		snprintf(errmsg, errlen, "module %s, page %s: no permission lets anyone in", mod, pg->path);
		return EGOV_EINVAL;
	}
	if ((err = key_ok(mod, pg, "label", pg->label, errmsg, errlen)) ||
	    (err = key_ok(mod, pg, "summary", pg->summary, errmsg, errlen)))
		return err;
	if (pg->script && !web_find(pg->script, NULL)) {
		snprintf(errmsg, errlen, "module %s, page %s: script %s is not in the web directory", mod, pg->path,
			 pg->script);
		return EGOV_EINVAL;
	}
	return EGOV_OK;
}

static int entry_cmp(const void *a, const void *b)
{
	const console_page *x = ((const console_entry *)a)->page, *y = ((const console_entry *)b)->page;

	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return strcmp(x->path, y->path);
}

static void tpls_free(console_tpl *t[I18N_NLANG])
{
	int i;

	for (i = 0; i < I18N_NLANG; i++) {
		console_tpl_free(t[i]);
		t[i] = NULL;
	}
}

void console_site_release(console_site *s)
{
	size_t i;

	tpls_free(s->frame);
	tpls_free(s->home);
	tpls_free(s->forbidden);
	tpls_free(s->not_found);
	tpls_free(s->signed_out);
	for (i = 0; i < s->nentries; i++)
		tpls_free(s->entries[i].content);
	free(s->entries);
	memset(s, 0, sizeof *s);
}

egov_err console_site_load(console_site *s, const egov_module *const *mods, size_t nmods, char *errmsg,
			   size_t errlen)
{
	egov_err err = EGOV_OK;
	size_t i, j, n = 0;

	memset(s, 0, sizeof *s);
	if ((err = load_tpl("/staff/frame.html", true, s->frame, errmsg, errlen)) ||
	    (err = load_tpl("/staff/home.html", false, s->home, errmsg, errlen)) ||
	    (err = load_tpl("/staff/forbidden.html", false, s->forbidden, errmsg, errlen)) ||
	    (err = load_tpl("/staff/not-found.html", false, s->not_found, errmsg, errlen)) ||
	    (err = load_tpl("/staff/signed-out.html", false, s->signed_out, errmsg, errlen)))
		goto out;
	for (i = 0; i < nmods; i++)
		n += mods[i]->pages ? mods[i]->npages : 0;
	if (n > CONSOLE_PAGES_MAX) {
		snprintf(errmsg, errlen, "more than %d console pages", CONSOLE_PAGES_MAX);
		err = EGOV_ELIMIT;
		goto out;
	}
	if (n && !(s->entries = calloc(n, sizeof *s->entries))) {
		err = EGOV_ENOMEM;
		goto out;
	}
	for (i = 0; i < nmods; i++) {
		for (j = 0; mods[i]->pages && j < mods[i]->npages; j++) {
			const console_page *pg = &mods[i]->pages[j];
			console_entry *e;
			if ((err = page_ok(mods[i]->name, pg, errmsg, errlen)))
				goto out;
			if (console_entry_find(s, pg->path)) {
				snprintf(errmsg, errlen, "module %s: page %s is declared twice", mods[i]->name, pg->path);
				err = EGOV_EINVAL;
				goto out;
			}
			e = &s->entries[s->nentries++];
			e->page = pg;
			e->module = mods[i]->name;
			if ((err = load_tpl(pg->content, false, e->content, errmsg, errlen)))
				goto out;
		}
	}
	qsort(s->entries, s->nentries, sizeof *s->entries, entry_cmp);
out:
	if (err)
		console_site_release(s);
	return err;
}

static egov_err start(const egov_config *cfg)
{
	char errmsg[512];
	egov_err err;

	(void)cfg;
	if ((err = console_site_load(&site, egov_modules, egov_modules_count, errmsg, sizeof errmsg))) {
		log_error("console.start", "%s", errmsg);
		return err;
	}
	loaded = true;
	log_info("console.start", "%zu staff console page(s)", site.nentries);
	return EGOV_OK;
}

static void stop(void)
{
	loaded = false;
	console_site_release(&site);
}

#define FORM_TYPE "application/x-www-form-urlencoded"
/* The log-out form carries its CSRF token (43 characters) and nothing else. */
#define LOGOUT_BODY_MAX 256

static const route routes[] = {
	{.method = HTTP_GET, .path = CONSOLE_HOME, .handler = console_http_page},
	{.method = HTTP_GET, .path = CONSOLE_HOME "/{*page}", .handler = console_http_page, .name = "/staff/{page}"},
	{.method = HTTP_GET, .path = CONSOLE_SIGNED_OUT, .handler = console_http_signed_out},
	{.method = HTTP_POST, .path = CONSOLE_LOGOUT, .body_max = LOGOUT_BODY_MAX, .content_type = FORM_TYPE,
	 .handler = console_http_logout},
};

const egov_module console_module = {
	.name = "console",
	.routes = routes,
	.nroutes = sizeof routes / sizeof routes[0],
	.start = start,
	.stop = stop,
};
