/*
 * console_http.c: the staff console's routes (console.h lists them).
 *
 * A page request: who asks (identity: the operator token, a bearer token
 * or the session cookie), the menu of the pages that person may use
 * (each page's permissions, looked up once each per request), then the
 * page, the 403 page or the 404 page, each rendered inside the frame in
 * the request's language. The frame shows the person and the log-out
 * form only to a session, whose CSRF token it carries for the page's
 * script.
 *
 * Invariants: nothing a request brings (its path, its query, a person's
 * name) reaches the page unescaped; links built from the request's path
 * use the decoded, normalised path re-encoded, so a "//host" target can
 * never become a link to another site; every answer is Cache-Control:
 * no-store, since it carries a person's name and token.
 */
#include <stdio.h>
#include <string.h>

#include "audit/audit.h"
#include "console/console_int.h"
#include "core/app.h"
#include "core/limits.h"
#include "identity/identity.h"
#include "core/banned.h"

#define HTML_TYPE "text/html; charset=utf-8"
#define PERM_MEMO_MAX 32
#define HREF_MAX 4096 /* a path and query under EGOV_URI_MAX, escaped */

/* Who asks, as far as the frame cares. */
typedef struct who {
	identity_principal p;
	bool session; /* signed in with the session cookie: person, csrf, log-out */
	char csrf[IDENTITY_TOKEN_LEN + 1];
	char name[IDENTITY_NAME_MAX * 4 + 1];
	/* Permissions asked so far in this request. */
	const char *perm[PERM_MEMO_MAX];
	bool held[PERM_MEMO_MAX];
	size_t nperm;
} who;

static int lang_idx(req *r)
{
	int i = i18n_lang_index(req_lang(r));
	return i >= 0 ? i : 0;
}

/* ---- addresses -------------------------------------------------------------- */

/* Appends n bytes of s percent-encoded, keeping the unreserved characters
 * of RFC 3986 and those in keep. */
static egov_err add_pct(buf *b, const char *s, size_t n, const char *keep)
{
	static const char hex[] = "0123456789ABCDEF";
	egov_err err = EGOV_OK;
	size_t i;

	for (i = 0; !err && i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
		    c == '.' || c == '_' || c == '~' || (c && strchr(keep, c)))
			err = buf_addc(b, (char)c);
		else if (!(err = buf_addc(b, '%')) && !(err = buf_addc(b, hex[c >> 4])))
			err = buf_addc(b, hex[c & 15]);
	}
	return err;
}

/* The request's path, re-encoded, and its query as received without its
 * lang= pairs (raw: it only goes back out after a '?', escaped). */
static egov_err here(req *r, buf *path, buf *query)
{
	const char *q = strchr(req_target(r), '?');
	egov_err err;

	if ((err = add_pct(path, req_path(r), strlen(req_path(r)), "/")))
		return err;
	while (q && *q) {
		const char *pair = q + 1, *amp = strchr(pair, '&');
		size_t n = amp ? (size_t)(amp - pair) : strlen(pair);
		bool is_lang = (n == 4 && strncmp(pair, "lang", 4) == 0) || (n >= 5 && strncmp(pair, "lang=", 5) == 0);
		if (n && !is_lang && ((query->len && (err = buf_addc(query, '&'))) || (err = buf_add(query, pair, n))))
			return err;
		q = amp;
	}
	return EGOV_OK;
}

/* The language switch's links: this address in each language. */
static egov_err lang_links(req *r, console_view *v)
{
	buf path, query, b;
	egov_err err;
	int i;

	buf_init(&path, HREF_MAX);
	buf_init(&query, HREF_MAX);
	buf_init(&b, HREF_MAX);
	if ((err = here(r, &path, &query)))
		goto out;
	for (i = 0; i < I18N_NLANG; i++) {
		buf_reset(&b);
		if ((err = buf_add(&b, path.data, path.len)) || (err = buf_addc(&b, '?')) ||
		    (query.len && ((err = buf_add(&b, query.data, query.len)) || (err = buf_addc(&b, '&')))) ||
		    (err = buf_addf(&b, "lang=%s", i18n_langs[i])))
			goto out;
		if (!(v->lang_href[i] = arena_strdup(req_arena(r), b.data))) {
			err = EGOV_ENOMEM;
			goto out;
		}
	}
out:
	buf_release(&path);
	buf_release(&query);
	buf_release(&b);
	return err;
}

/* Nobody signed in: to the log-in page, which brings the person back
 * here (path and query, lang= kept beside it as the log-in page's own). */
static egov_err to_login(req *r)
{
	buf path, query, loc;
	egov_err err;

	buf_init(&path, HREF_MAX);
	buf_init(&query, HREF_MAX);
	buf_init(&loc, 3 * HREF_MAX);
	if ((err = here(r, &path, &query)) || (err = buf_adds(&loc, "/login.html?")))
		goto out;
	if (req_query(r, "lang") && (err = buf_addf(&loc, "lang=%s&", req_lang(r))))
		goto out;
	if ((err = buf_adds(&loc, "return=")) || (err = add_pct(&loc, path.data, path.len, "")))
		goto out;
	if (query.len && ((err = add_pct(&loc, "?", 1, "")) || (err = add_pct(&loc, query.data, query.len, ""))))
		goto out;
	resp_header(r, "Location", loc.data);
	resp_header(r, "Cache-Control", "no-store");
	err = resp_empty(r, 303);
out:
	buf_release(&path);
	buf_release(&query);
	buf_release(&loc);
	return err;
}

/* ---- who asks, and what they may open ----------------------------------------- */

/* EGOV_EAUTH when nobody is signed in. */
static egov_err who_asks(req *r, who *w)
{
	identity_session s;
	identity_account a;
	db_conn *c = NULL;
	egov_err err;

	memset(w, 0, sizeof *w);
	if ((err = identity_principal_from_req(r, &w->p)))
		return err;
	if (!w->p.session_id[0])
		return EGOV_OK; /* a token: no person to show, nothing to log out of */
	/* The principal says who; the session holds the CSRF token the frame
	 * carries. */
	if ((err = identity_session_from_req(r, &s)))
		return err;
	w->session = true;
	snprintf(w->csrf, sizeof w->csrf, "%s", s.csrf);
	if ((err = db_thread_conn(app()->db, &c)))
		return err;
	err = identity_account_get(c, s.account_id, &a);
	if (err == EGOV_ENOTFOUND)
		return EGOV_EAUTH; /* gone since the session was read */
	if (err)
		return err;
	snprintf(w->name, sizeof w->name, "%s", a.display_name);
	return EGOV_OK;
}

static egov_err holds(who *w, const char *perm, bool *out)
{
	db_conn *c = NULL;
	egov_err err;
	size_t i;

	if (w->p.operator_token) {
		*out = true;
		return EGOV_OK;
	}
	for (i = 0; i < w->nperm; i++)
		if (strcmp(w->perm[i], perm) == 0) {
			*out = w->held[i];
			return EGOV_OK;
		}
	if ((err = db_thread_conn(app()->db, &c)) || (err = identity_permission_has(c, w->p.account_id, perm, NULL, out)))
		return err;
	if (w->nperm < PERM_MEMO_MAX) {
		w->perm[w->nperm] = perm;
		w->held[w->nperm++] = *out;
	}
	return EGOV_OK;
}

static egov_err holds_any(who *w, const char *const *perms, bool *out)
{
	egov_err err = EGOV_OK;

	*out = false;
	for (; !err && !*out && perms && *perms; perms++)
		err = holds(w, *perms, out);
	return err;
}

/* What the person may open: the menu (the landing page first, then every
 * page they may open, current marked) and the cards (the pages). */
typedef struct menu {
	console_link *links; /* links[0] is the landing page when home */
	size_t nlinks;
	bool home;           /* may open the landing page */
	bool page_allowed;   /* may open the page asked for */
} menu;

static egov_err menu_build(req *r, const console_site *s, who *w, const char *current, const console_entry *page,
			   menu *m)
{
	const char *lang = req_lang(r);
	console_link *pages = NULL;
	bool ok = false, staff = false;
	size_t i, n = 0;
	egov_err err;

	memset(m, 0, sizeof *m);
	if (!(m->links = arena_alloc(req_arena(r), (s->nentries + 1) * sizeof *m->links)))
		return EGOV_ENOMEM;
	pages = m->links + 1;
	for (i = 0; i < s->nentries; i++) {
		const console_page *pg = s->entries[i].page;
		if ((err = holds_any(w, pg->perms, &ok)))
			return err;
		if (&s->entries[i] == page)
			m->page_allowed = ok;
		if (ok)
			pages[n++] = (console_link){.href = pg->path, .label = i18n_text(lang, pg->label),
						    .summary = i18n_text(lang, pg->summary),
						    .current = strcmp(pg->path, current) == 0};
	}
	if ((err = holds(w, CONSOLE_PERM, &staff)))
		return err;
	m->home = staff || n > 0;
	if (m->home) {
		m->links[0] = (console_link){.href = CONSOLE_HOME, .label = i18n_text(lang, "console.home"),
					     .current = strcmp(current, CONSOLE_HOME) == 0};
		m->nlinks = n + 1;
	} else {
		m->links = pages;
		m->nlinks = n;
	}
	return EGOV_OK;
}

/* ---- answers ------------------------------------------------------------------ */

/* "{page} — Staff console", in the request's language. */
static const char *title_of(req *r, const char *label_key)
{
	const char *lang = req_lang(r), *pattern = i18n_text(lang, "console.title");
	const char *label = i18n_text(lang, label_key), *at = strstr(pattern, "{page}");
	buf b;
	char *t = NULL;

	if (!at)
		return label;
	buf_init(&b, 4096);
	if (!buf_add(&b, pattern, (size_t)(at - pattern)) && !buf_adds(&b, label) && !buf_adds(&b, at + 6))
		t = arena_strdup(req_arena(r), b.data);
	buf_release(&b);
	return t ? t : label;
}

/* Renders the frame around content with status, for w (NULL: nobody). */
static egov_err answer(req *r, int status, const console_tpl *const content[I18N_NLANG], const char *title,
		       const char *script, const who *w, const menu *m)
{
	const console_site *s = console_site_get();
	console_view v = {0};
	int li = lang_idx(r);
	char cookie[96];
	buf b;
	egov_err err;

	v.title = title;
	v.script = script;
	if (w && w->session) {
		v.person = w->name;
		v.csrf = w->csrf;
	}
	if (m) {
		v.menu = m->links;
		v.nmenu = m->nlinks;
		v.cards = m->home ? m->links + 1 : m->links;
		v.ncards = m->home ? m->nlinks - 1 : m->nlinks;
	}
	v.content = content[li];
	if ((err = lang_links(r, &v)))
		return err;
	buf_init(&b, EGOV_RESPONSE_MAX);
	if ((err = console_render(s->frame[li], &v, &b))) {
		buf_release(&b);
		return err;
	}
	resp_header(r, "Cache-Control", "no-store");
	resp_header(r, "Vary", "Accept-Language, Cookie");
	if (req_query(r, "lang")) {
		/* As the static pages do: the next page speaks it too. */
		snprintf(cookie, sizeof cookie, "lang=%s; Path=/; Max-Age=31536000; SameSite=Lax", req_lang(r));
		resp_header(r, "Set-Cookie", cookie);
	}
	return resp_buf(r, status, HTML_TYPE, &b);
}

/* A person reached for a page without the right to: worth a line in the
 * audit log, as the API's refusals are. */
static egov_err forbidden(req *r, const console_site *s, const who *w, const menu *m, const char *path)
{
	char actor[48], object[AUDIT_FIELD_MAX + 1];
	egov_err err;

	if (audit_available() && !w->p.operator_token) {
		snprintf(actor, sizeof actor, "account:%s", w->p.account_id);
		snprintf(object, sizeof object, "page:%s", path);
		if ((err = audit_append(actor, "staff.page_forbidden", object, NULL, NULL)))
			return err;
	}
	return answer(r, 403, (const console_tpl *const *)s->forbidden, title_of(r, "staff.forbidden.title"), NULL, w,
		      m);
}

egov_err console_http_page(req *r)
{
	const console_site *s = console_site_get();
	const char *path = req_path(r);
	bool home = strcmp(path, CONSOLE_HOME) == 0 || strcmp(path, CONSOLE_HOME "/") == 0;
	const console_entry *e = NULL;
	who w;
	menu m;
	egov_err err;

	if (!s)
		return EGOV_EUNAVAILABLE;
	if (!home)
		e = console_entry_find(s, path);
	err = who_asks(r, &w);
	if (err == EGOV_EAUTH)
		return to_login(r);
	if (err)
		return err;
	if ((err = menu_build(r, s, &w, home ? CONSOLE_HOME : path, e, &m)))
		return err;
	if (home) {
		if (!m.home)
			return forbidden(r, s, &w, &m, CONSOLE_HOME);
		return answer(r, 200, (const console_tpl *const *)s->home, i18n_text(req_lang(r), "console.name"), NULL,
			      &w, &m);
	}
	if (!e)
		return answer(r, 404, (const console_tpl *const *)s->not_found,
			      title_of(r, "console.not_found.title"), NULL, &w, &m);
	if (!m.page_allowed)
		return forbidden(r, s, &w, &m, e->page->path);
	return answer(r, 200, (const console_tpl *const *)e->content, title_of(r, e->page->label), e->page->script,
		      &w, &m);
}

egov_err console_http_signed_out(req *r)
{
	const console_site *s = console_site_get();

	if (!s)
		return EGOV_EUNAVAILABLE;
	return answer(r, 200, (const console_tpl *const *)s->signed_out, title_of(r, "console.signed_out.title"), NULL,
		      NULL, NULL);
}

/* The frame's log-out form: ends this session (its record and the
 * session go in one transaction, so neither is left without the other)
 * and says so on the signed-out page. A form post, not a script's call,
 * so that it works before the page's script has loaded. */
egov_err console_http_logout(req *r)
{
	identity_session s;
	char cookie[256], actor[48];
	db_conn *c = NULL;
	buf b;
	jw w;
	egov_err err;

	err = identity_session_from_req(r, &s);
	if (err == EGOV_EAUTH)
		goto done; /* ended already: say so all the same */
	if (err)
		return err;
	if (identity_csrf_check(r, &s))
		return resp_problem(r, 403, "identity.csrf", NULL, NULL);
	/* The API's log-out record, so that a reader of the log finds every
	 * log-out under one name. */
	snprintf(actor, sizeof actor, "account:%s", s.account_id);
	buf_init(&b, 1024);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_kstr(&w, "ip", req_remote_ip(r));
	jw_kstr(&w, "request_id", req_id(r));
	jw_kstr(&w, "session", s.id);
	jw_obj_end(&w);
	if ((err = w.err) || (err = db_thread_conn(app()->db, &c)) || (err = db_begin(c)))
		goto out;
	err = identity_session_revoke(c, s.account_id, s.id);
	if (err == EGOV_ENOTFOUND)
		err = EGOV_OK; /* revoked by another request meanwhile */
	if (!err && audit_available())
		err = audit_append_tx(c, actor, "identity.logout", actor, b.data, NULL);
	if (err)
		db_rollback(c);
	else
		err = db_commit(c);
out:
	buf_release(&b);
	if (err)
		return err;
done:
	identity_session_cookie(NULL, 0, cookie, sizeof cookie);
	resp_header(r, "Set-Cookie", cookie);
	resp_header(r, "Location", CONSOLE_SIGNED_OUT);
	resp_header(r, "Cache-Control", "no-store");
	return resp_empty(r, 303);
}
