/*
 * exchange_web.c: the data exchange's page in the staff console and the
 * one summary it needs that the registry's admin API has no route for.
 *
 *   /staff/exchange               the registry page, declared here
 *                                 (exchange_web_pages) and served by the
 *                                 console inside its frame:
 *                                 web/staff/exchange.html holds the page's
 *                                 content, web/js/staff-exchange.js its
 *                                 script
 *   GET /api/v1/exchange/console  the global configuration in force (version,
 *                                 dates) and each registered certificate's
 *                                 standing (good, expired, revoked)
 *
 * The route is in exchange.c's table (permission exchange.admin). The page
 * itself carries no registry data: its script reads and changes the
 * registry through the admin API with the session and its CSRF token
 * (from the frame), which checks the permission again on every call.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/app.h"
#include "core/limits.h"
#include "core/timeutil.h"
#include "core/b64url.h"
#include "exchange/exchange.h"
#include "pki/pki.h"
#include "core/banned.h"

static const char *const perms_registry[] = {"exchange.admin", NULL};

const console_page exchange_web_pages[EXCHANGE_WEB_NPAGES] = {
	{.path = "/staff/exchange",
	 .label = "staff.tools.exchange.title",
	 .summary = "staff.tools.exchange.text",
	 .perms = perms_registry,
	 .content = "/staff/exchange.html",
	 .script = "/js/staff-exchange.js",
	 .order = 900},
};

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
