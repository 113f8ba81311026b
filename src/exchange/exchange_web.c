/*
 * exchange_web.c: the staff console's pages for the data exchange registry
 * and the one summary they need that the registry's admin API has no
 * route for.
 *
 *   GET /staff                    landing page of the staff console
 *   GET /staff/exchange           the registry page (web/staff-exchange.html)
 *   GET /api/v1/exchange/console  the global configuration in force (version,
 *                                 dates) and each registered certificate's
 *                                 standing (good, expired, revoked)
 *
 * The routes are in exchange.c's table (permission exchange.admin for the
 * API; the pages check for themselves, to answer with pages).
 *
 * The pages are the rendered templates of web/ (the static table already
 * holds them per language); what these handlers add is who may see them:
 * nobody signed in is sent to the log-in page with a return path, a
 * signed-in person without the permission gets the translated 403 page
 * (web/staff-forbidden.html) with status 403. The page itself carries no
 * registry data: its script reads and changes the registry through the
 * admin API with the session and its CSRF token, which checks the
 * permission again on every call.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "core/app.h"
#include "core/limits.h"
#include "core/timeutil.h"
#include "core/web.h"
#include "exchange/exchange_int.h"
#include "identity/identity.h"
#include "pki/pki.h"
#include "core/banned.h"

#define PERM_ADMIN "exchange.admin"
#define PERM_STAFF "staff.console"


typedef struct staff_page {
	const char *path;     /* route */
	const char *file;     /* template under web/ */
	const char *ret;      /* the route, URL-encoded for ?return= */
	const char *const *perms; /* any one of them lets the person in */
} staff_page;

static const char *const perms_landing[] = {PERM_STAFF, PERM_ADMIN, NULL};
static const char *const perms_exchange[] = {PERM_ADMIN, NULL};

static const staff_page pages[] = {
	{"/staff", "/staff.html", "%2Fstaff", perms_landing},
	{"/staff/exchange", "/staff-exchange.html", "%2Fstaff%2Fexchange", perms_exchange},
};

static const staff_page *page_of(req *r)
{
	const char *path = req_route(r)->path;
	size_t i;

	for (i = 0; i < sizeof pages / sizeof pages[0]; i++)
		if (strcmp(pages[i].path, path) == 0)
			return &pages[i];
	return NULL;
}

/* A rendered template, answered with status. A ?lang= choice is kept in
 * the cookie as the static pages do, so the next page speaks it too. */
static egov_err send_template(req *r, int status, const char *file)
{
	const char *lang = req_lang(r);
	const web_file *f = web_find(file, lang);
	char cookie[96];

	if (!f)
		return EGOV_EUNAVAILABLE;
	resp_header(r, "Cache-Control", "no-store");
	resp_header(r, "Vary", "Accept-Language, Cookie");
	if (req_query(r, "lang")) {
		snprintf(cookie, sizeof cookie, "lang=%s; Path=/; Max-Age=31536000; SameSite=Lax", lang);
		resp_header(r, "Set-Cookie", cookie);
	}
	return resp_bytes(r, status, f->mime, f->data, f->len, false);
}

static egov_err to_login(req *r, const staff_page *pg)
{
	char loc[160];

	if (req_query(r, "lang"))
		snprintf(loc, sizeof loc, "/login.html?lang=%s&return=%s", req_lang(r), pg->ret);
	else
		snprintf(loc, sizeof loc, "/login.html?return=%s", pg->ret);
	resp_header(r, "Location", loc);
	resp_header(r, "Cache-Control", "no-store");
	return resp_empty(r, 303);
}

egov_err exchange_web_page(req *r)
{
	const staff_page *pg = page_of(r);
	identity_principal p;
	const char *const *perm;
	bool allowed = false;
	db_conn *c = NULL;
	char object[64];
	egov_err err;

	if (!pg)
		return EGOV_EINTERNAL;
	err = identity_principal_from_req(r, &p);
	if (err == EGOV_EAUTH)
		return to_login(r, pg);
	if (err)
		return err;
	if (p.operator_token) {
		allowed = true;
	} else {
		if ((err = db_thread_conn(app()->db, &c)))
			return err;
		for (perm = pg->perms; *perm && !allowed; perm++)
			if ((err = identity_permission_has(c, p.account_id, *perm, NULL, &allowed)))
				return err;
	}
	if (allowed)
		return send_template(r, 200, pg->file);
	/* A person who reached for an admin page without the right to: worth
	 * a line in the audit log, as the API's refusals are. */
	if (audit_available()) {
		char actor[48];
		snprintf(actor, sizeof actor, "account:%s", p.account_id);
		snprintf(object, sizeof object, "page:%s", pg->path);
		if ((err = audit_append(actor, "staff.page_forbidden", object, NULL, NULL)))
			return err;
	}
	return send_template(r, 403, "/staff-forbidden.html");
}

/* ---- the console's summary ---------------------------------------------------- */

static void time_text(int64_t us, char out[32])
{
	time_format_rfc3339(us, 0, out);
}

/* The central node's current document: decoded from the JWS it serves
 * (the payload is this node's own, just signed; no need to verify). */
static egov_err central_conf(db_conn *c, jw *w)
{
	char *jws = NULL;
	size_t len = 0, n = 0;
	int64_t version = 0;
	const char *dot1, *dot2;
	unsigned char *raw = NULL;
	cJSON *doc = NULL, *v;
	egov_err err;

	err = exchange_conf_current(c, &jws, &len, &version);
	if (err == EGOV_ENOTFOUND) {
		jw_key(w, "published");
		jw_bool(w, false);
		return EGOV_OK;
	}
	if (err)
		return err;
	dot1 = strchr(jws, '.');
	dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	if (!dot2 || !(raw = malloc((size_t)(dot2 - dot1) + 1)) ||
	    b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), raw, (size_t)(dot2 - dot1), &n) ||
	    !(doc = cJSON_ParseWithLength((const char *)raw, n))) {
		err = EGOV_EINTERNAL;
		goto out;
	}
	jw_kbool(w, "published", true);
	jw_kint(w, "version", version);
	if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(doc, "generated_at")))
		jw_kstr(w, "generated_at", v->valuestring);
	if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(doc, "expires_at")))
		jw_kstr(w, "expires_at", v->valuestring);
out:
	cJSON_Delete(doc);
	free(raw);
	free(jws);
	return err;
}

/* A gateway's copy in force (downloaded from the central node). */
static void gateway_conf(jw *w)
{
	const char *why = NULL;
	exchange_conf *cf = exchange_conf_get(&why);
	char t[32];

	jw_kbool(w, "published", cf != NULL);
	if (!cf)
		return;
	jw_kint(w, "version", exchange_conf_version(cf));
	time_text(exchange_conf_generated_us(cf), t);
	jw_kstr(w, "generated_at", t);
	time_text(exchange_conf_expires_us(cf), t);
	jw_kstr(w, "expires_at", t);
	exchange_conf_put(cf);
}

/* good, expired or revoked: the reason a certificate is or is not in the
 * next global configuration (the same test exchange_conf.c applies). */
static const char *cert_standing(db_conn *c, const char *pki_serial, const char *not_after, int64_t now_us)
{
	pki_cert_info ci = {0};
	const char *s = "good";
	int64_t na = 0;

	if (!not_after || time_parse_rfc3339(not_after, &na) || na <= now_us)
		return "expired";
	if (!pki_serial)
		return "good";
	if (pki_cert_get(c, pki_serial, &ci))
		return "revoked"; /* not the platform's any more: left out alike */
	if (strcmp(ci.status, "good") != 0)
		s = "revoked";
	pki_cert_info_release(&ci);
	return s;
}

static egov_err write_certs(db_conn *c, jw *w)
{
	db_rows *rows = NULL;
	bool has = false;
	int64_t now = time_now_us();
	egov_err err;

	if ((err = db_query(c, "SELECT sha256, pki_serial, not_after FROM exchange_cert ORDER BY subsystem_id, sha256",
			    NULL, 0, &rows)))
		return err;
	jw_key(w, "certs");
	jw_arr_begin(w);
	while (!(err = db_rows_next(rows, &has)) && has) {
		jw_obj_begin(w);
		jw_kstr(w, "sha256", db_rows_text(rows, 0));
		jw_kstr(w, "status", cert_standing(c, db_rows_text(rows, 1), db_rows_text(rows, 2), now));
		jw_obj_end(w);
	}
	jw_arr_end(w);
	db_rows_free(rows);
	return err;
}

egov_err exchange_web_console(req *r)
{
	const egov_config *cfg = app()->config;
	const char *role = cfg && cfg->role ? cfg->role : "standalone";
	int64_t version = 0;
	db_conn *c = NULL;
	buf b;
	jw w;
	egov_err err;

	if ((err = db_thread_conn(app()->db, &c)) || (err = exchange_registry_version(c, &version)))
		return err;
	buf_init(&b, EGOV_RESPONSE_MAX);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_kstr(&w, "instance", exchange_settings(cfg)->instance);
	jw_kstr(&w, "role", role);
	jw_kint(&w, "registry_version", version);
	jw_key(&w, "conf");
	jw_obj_begin(&w);
	if (strcmp(role, "gateway") == 0)
		gateway_conf(&w);
	else if ((err = central_conf(c, &w)))
		goto fail;
	jw_obj_end(&w);
	if ((err = write_certs(c, &w)))
		goto fail;
	jw_obj_end(&w);
	resp_header(r, "Cache-Control", "no-store");
	return resp_jw(r, 200, &w);
fail:
	buf_release(&b);
	return err;
}
