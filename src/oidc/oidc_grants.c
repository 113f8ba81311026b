/*
 * oidc_grants.c: the signed-in person's granted applications, under
 * /api/v1/identity/me/grants: which clients they allowed (from the
 * remembered consent) and withdrawing that access.
 *
 * Invariants: the caller is a person's session (the routes' .auth: a
 * bearer token of an application cannot list or withdraw grants); DELETE
 * also carries the session's CSRF token. Withdrawing removes the
 * remembered grant (the next sign-in asks again) and revokes the
 * refresh-token families the caller holds for the client, in one
 * transaction with its audit record "oidc.grant.withdraw". Access tokens
 * already issued live out their short lifetime (oidc.token_ttl).
 */
#include <stdio.h>
#include <string.h>

#include "core/app.h"
#include "core/limits.h"
#include "oidc/oidc_int.h"
#include "core/banned.h"

static void write_scopes(jw *w, const char *scopes)
{
	const char *p = scopes;
	char word[OIDC_SCOPE_MAX + 1];

	jw_arr_begin(w);
	while (*p) {
		size_t n = strcspn(p, " ");
		if (n > 0 && n < sizeof word) {
			memcpy(word, p, n);
			word[n] = '\0';
			jw_str(w, word);
		}
		p += n;
		p += strspn(p, " ");
	}
	jw_arr_end(w);
}

static int list_one(void *ctx, const oidc_grant_info *g)
{
	jw *w = ctx;

	jw_obj_begin(w);
	jw_kstr(w, "client_id", g->client_id);
	jw_kstr(w, "name", g->name[0] ? g->name : g->client_id);
	jw_key(w, "scopes");
	write_scopes(w, g->scopes);
	jw_kstr(w, "granted_at", g->granted_at);
	jw_obj_end(w);
	return 0;
}

egov_err oidc_grants_list(req *r)
{
	const principal *p = req_principal(r);
	db_conn *c = NULL;
	buf b;
	jw w;
	egov_err err;

	if (p->kind != PRINCIPAL_SESSION)
		return EGOV_EAUTH; /* the route's .auth let no request in without */
	if ((err = db_thread_conn(app()->db, &c)))
		return err;
	buf_init(&b, EGOV_RESPONSE_MAX);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_key(&w, "items");
	jw_arr_begin(&w);
	err = oidc_grant_list(c, p->account_id, list_one, &w);
	jw_arr_end(&w);
	jw_obj_end(&w);
	if (err || w.err) {
		buf_release(&b);
		return err ? err : w.err;
	}
	resp_header(r, "Cache-Control", "no-store");
	return resp_json(r, 200, &b);
}

egov_err oidc_grants_withdraw(req *r)
{
	const principal *p = req_principal(r);
	const char *id = req_param(r, "client_id");
	char object[96], details[128];
	int64_t families = 0;
	db_conn *c = NULL;
	egov_err err;

	if (p->kind != PRINCIPAL_SESSION)
		return EGOV_EAUTH;
	if ((err = db_thread_conn(app()->db, &c)))
		return err;
	if (!id || !*id || strlen(id) > OIDC_CLIENT_ID_MAX)
		return resp_problem(r, 404, "not_found", NULL, NULL);
	if ((err = db_begin(c)))
		return err;
	err = oidc_grant_withdraw(c, p->account_id, id, &families);
	if (err == EGOV_ENOTFOUND) {
		db_rollback(c);
		return resp_problem(r, 404, "not_found", NULL, NULL);
	}
	snprintf(object, sizeof object, "oidc_client:%s", id);
	snprintf(details, sizeof details, "{\"families_revoked\":%lld,\"request_id\":\"%s\"}", (long long)families,
		 req_id(r));
	if (!err)
		err = oidc_audit_tx(c, p->actor, "oidc.grant.withdraw", object, details);
	if ((err = db_end(c, err)))
		return err;
	return resp_empty(r, 204);
}
