/*
 * console_int.h: what the staff console's files share, private to
 * src/console/.
 *
 *   console_frame.c  templates with slots: parsed once at start from the
 *                    rendered web files, filled per request
 *   console.c        the registry of every module's pages, the module
 *                    descriptor, start and stop
 *   console_http.c   the routes: who asks, the menu, the page or the 403,
 *                    log-out
 *
 * A slot is an HTML comment in a template under web/ (which the kernel's
 * renderer leaves alone): <!--console:NAME-->. Names:
 *   title, csrf, person, script  the page's title, the session's CSRF token,
 *                                the signed-in person's name, the page's
 *                                <script> element (text escaped here)
 *   href:TAG                     the current address in language TAG
 *   menu, cards                  the menu's entries, the landing page's cards
 *   content                      the page's own template (frame only)
 *   if:person if:menu if:cards if:no-cards ... end
 *                                a part kept only when there is a person
 *                                signed in with a session, a menu, cards,
 *                                no cards (not nested)
 */
#ifndef EGOV_CONSOLE_CONSOLE_INT_H
#define EGOV_CONSOLE_CONSOLE_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/i18n.h"
#include "core/module.h"

/* The console's own paths (the module pages' are under them too). */
#define CONSOLE_HOME "/staff"
#define CONSOLE_SIGNED_OUT "/staff/signed-out"
#define CONSOLE_LOGOUT "/staff/logout"
/* Who may open the landing page besides those who may open some page. */
#define CONSOLE_PERM "staff.console"
/* Module pages the console takes: far more than a menu can show. */
#define CONSOLE_PAGES_MAX 128

/* ---- templates (console_frame.c) ------------------------------------------ */

typedef struct console_tpl console_tpl;

/* Splits a rendered template (len bytes of data, which must outlive the
 * result: the web table's) at its slots. frame: the template must hold
 * exactly one content slot; otherwise it must hold none. An unknown slot,
 * a nested or unclosed if, or a stray end is EGOV_EINVAL with errmsg
 * naming the file (name) and the slot. *out is the caller's to free with
 * console_tpl_free(). */
egov_err console_tpl_parse(const char *name, const char *data, size_t len, bool frame, console_tpl **out,
			   char *errmsg, size_t errlen);
void console_tpl_free(console_tpl *t);

/* A link of the menu or a card of the landing page. */
typedef struct console_link {
	const char *href;    /* one of our paths */
	const char *label;   /* text */
	const char *summary; /* text (cards) */
	bool current;        /* the page shown (aria-current) */
} console_link;

/* What a request fills the slots with. Texts are unescaped: rendering
 * escapes every one. NULL person: nobody signed in with a session (then
 * neither person nor csrf is written). */
typedef struct console_view {
	const char *title;
	const char *script;
	const char *person;
	const char *csrf;
	const char *lang_href[I18N_NLANG];
	const console_link *menu;
	size_t nmenu;
	const console_link *cards;
	size_t ncards;
	const console_tpl *content;
} console_view;

/* Appends frame filled from v (its content slot with v->content) to out.
 * Fails only when out is full (EGOV_ELIMIT) or memory runs out. */
egov_err console_render(const console_tpl *frame, const console_view *v, buf *out);

/* ---- the registry (console.c) --------------------------------------------- */

/* A module's page as the console keeps it: its descriptor and its content
 * template parsed per language. */
typedef struct console_entry {
	const console_page *page;
	const char *module;
	console_tpl *content[I18N_NLANG];
} console_entry;

/* The console's own pages, by language. */
typedef struct console_site {
	console_tpl *frame[I18N_NLANG];
	console_tpl *home[I18N_NLANG];
	console_tpl *forbidden[I18N_NLANG];
	console_tpl *not_found[I18N_NLANG];
	console_tpl *signed_out[I18N_NLANG];
	console_entry *entries; /* every module's pages, in menu order */
	size_t nentries;
} console_site;

/* Builds the site from the web table and every module's .pages: checks
 * each page (its path, keys in every catalogue, its templates and script,
 * no two alike) and orders them. EGOV_EINVAL with errmsg on the first
 * page it cannot serve. Needs web_load() and i18n_load() done. */
egov_err console_site_load(console_site *s, const egov_module *const *mods, size_t nmods, char *errmsg,
			   size_t errlen);
void console_site_release(console_site *s);
/* The site the routes serve: loaded by the module's start, released by
 * its stop; read-only in between. */
const console_site *console_site_get(void);

/* The module page at path, or NULL. */
const console_entry *console_entry_find(const console_site *s, const char *path);

/* ---- routes (console_http.c) ---------------------------------------------- */
egov_err console_http_page(req *r);
egov_err console_http_signed_out(req *r);
egov_err console_http_logout(req *r);

#endif
