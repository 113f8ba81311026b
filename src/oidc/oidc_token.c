/*
 * oidc_token.c: the token endpoint (authorization_code and refresh_token
 * grants), UserInfo, revocation (RFC 7009), introspection (RFC 7662) and
 * the router's authenticator of access tokens (AUTH_BEARER), which lets
 * them call the egov API and UserInfo.
 *
 * Invariants: errors of this file's endpoints are OAuth JSON errors (RFC
 * 6749 §5.2), never problem documents (a token refused on the egov API's
 * routes is the router's problem document), and every answer carries
 * Cache-Control: no-store; an access token is believed only after its
 * signature, issuer, expiry, typ ("at+jwt"), denylist and token family
 * were checked; a grant, a replayed code's or a reused refresh token's
 * revocation of its family, and a revocation commit in one transaction
 * with their audit records. A verified access token's claims are bound
 * once into a typed struct (at_claims) by the kernel's JSON binder;
 * nothing below reads the JSON tree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "audit/audit.h"
#include "core/app.h"
#include "core/crypto.h"
#include "core/json.h"
#include "core/timeutil.h"
#include "core/uri.h"
#include "identity/identity.h"
#include "oidc/oidc_int.h"
#include "core/banned.h"

#define AT_TYP "at+jwt"

/* An OAuth error (RFC 6749 5.2). challenge: the WWW-Authenticate value
 * for a 401, NULL for the token endpoint's client-auth challenge (Basic). */
static egov_err oauth_error_challenge(req *r, int status, const char *error, const char *desc,
				      const char *challenge)
{
	buf b;
	jw w;

	buf_init(&b, 4096);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_kstr(&w, "error", error);
	if (desc)
		jw_kstr(&w, "error_description", desc);
	jw_obj_end(&w);
	if (w.err) {
		buf_release(&b);
		return w.err;
	}
	resp_header(r, "Cache-Control", "no-store");
	resp_header(r, "Pragma", "no-cache");
	if (status == 401 || challenge)
		resp_header(r, "WWW-Authenticate", challenge ? challenge : "Basic realm=\"egov\"");
	return resp_json(r, status, &b);
}

static egov_err oauth_error(req *r, int status, const char *error, const char *desc)
{
	return oauth_error_challenge(r, status, error, desc, NULL);
}

static egov_err form(req *r, uri_query *q)
{
	const char *body, *why = NULL;
	size_t len = 0;

	body = req_body(r, &len);
	if (!body) {
		memset(q, 0, sizeof *q);
		return EGOV_OK;
	}
	return uri_query_parse(req_arena(r), body, len, q, &why);
}

/* A form parameter that must not repeat (RFC 6749 §3.2). */
static const char *param(const uri_query *q, const char *name, int *dup)
{
	const char *v = NULL;
	size_t i;

	for (i = 0; i < q->n; i++) {
		if (strcmp(q->params[i].name, name) == 0) {
			if (v)
				*dup = 1;
			v = q->params[i].value;
		}
	}
	return v;
}

/* Percent-decodes one part of an HTTP Basic credential (RFC 6749 §2.3.1
 * form-encodes them) with the kernel's form parser. */
static const char *basic_part(req *r, const char *s, size_t n)
{
	char tmp[OIDC_BASIC_DECODED_MAX];
	uri_query q;
	const char *why = NULL;

	if (n + 3 > sizeof tmp)
		return NULL;
	tmp[0] = 'v';
	tmp[1] = '=';
	memcpy(tmp + 2, s, n);
	if (uri_query_parse(req_arena(r), tmp, n + 2, &q, &why) || q.n != 1)
		return n == 0 ? "" : NULL;
	return q.params[0].value;
}

/* Authenticates the client: client_secret_basic, client_secret_post, or
 * (public clients) client_id alone. EGOV_OK fills *cl. */
static egov_err client_auth(req *r, const uri_query *q, oidc_client *cl, const char **why)
{
	const char *h = req_header(r, "Authorization");
	const char *id = NULL, *secret = NULL;
	int dup = 0;
	db_conn *c = NULL;
	egov_err err;

	memset(cl, 0, sizeof *cl);
	*why = "client authentication failed";
	if (h) {
		unsigned char dec[OIDC_BASIC_DECODED_MAX + 1]; /* + the NUL put after it */
		const char *colon;
		size_t hl;
		int n;
		if (strncasecmp(h, "Basic ", 6) != 0)
			return EGOV_EAUTH;
		h += 6;
		hl = strlen(h);
		if (hl == 0 || hl % 4 || hl > OIDC_BASIC_MAX)
			return EGOV_EAUTH;
		n = EVP_DecodeBlock(dec, (const unsigned char *)h, (int)hl);
		if (n < 0)
			return EGOV_EAUTH;
		/* EVP_DecodeBlock counts padding as zero bytes. */
		if (hl >= 1 && h[hl - 1] == '=')
			n--;
		if (hl >= 2 && h[hl - 2] == '=')
			n--;
		dec[n] = '\0';
		if (memchr(dec, '\0', (size_t)n) || !(colon = strchr((char *)dec, ':')))
			return EGOV_EAUTH;
		id = basic_part(r, (const char *)dec, (size_t)(colon - (const char *)dec));
		secret = basic_part(r, colon + 1, strlen(colon + 1));
		OPENSSL_cleanse(dec, sizeof dec);
		if (!id || !secret || param(q, "client_secret", &dup))
			return EGOV_EAUTH; /* one method at a time (RFC 6749 §2.3) */
		{
			const char *bid = param(q, "client_id", &dup);
			if (bid && strcmp(bid, id) != 0)
				return EGOV_EAUTH;
		}
	} else {
		id = param(q, "client_id", &dup);
		secret = param(q, "client_secret", &dup);
	}
	if (dup || !id)
		return EGOV_EAUTH;
	if ((err = db_thread_conn(app()->db, &c)))
		return err;
	err = oidc_client_get(c, id, cl);
	if (err == EGOV_ENOTFOUND)
		return EGOV_EAUTH;
	if (err)
		return err;
	if (cl->type == OIDC_CONFIDENTIAL ? !oidc_client_secret_ok(cl, secret) : secret != NULL) {
		oidc_client_release(cl);
		return EGOV_EAUTH;
	}
	*why = NULL;
	return EGOV_OK;
}

static const char *amr_of(int acr)
{
	return acr >= 3 ? "[\"swk\"]" : acr == 2 ? "[\"pwd\",\"otp\",\"mfa\"]" : "[\"pwd\"]";
}

typedef struct grant {
	const oidc_client *cl;
	const identity_account *acct;
	const char *scope;
	const char *nonce; /* NULL on refresh */
	const char *family;
	const char *refresh; /* the refresh token to hand out */
	int acr;
	int64_t auth_time;
} grant;

/* The grant's audit record, "oidc.token.issue", on c inside the
 * transaction that makes the grant (the code's redemption, the refresh
 * token's rotation): a grant is never made without it. jti names the
 * access token issue() will sign. */
static egov_err audit_grant(req *r, db_conn *c, const grant *g, const char *jti)
{
	char actor[64], object[96], details[256];

	if (!audit_available())
		return EGOV_OK; /* unit tests run without the log */
	snprintf(actor, sizeof actor, "account:%s", g->acct->id);
	snprintf(object, sizeof object, "oidc_client:%s", g->cl->client_id);
	snprintf(details, sizeof details, "{\"grant\":\"%s\",\"family\":\"%s\",\"jti\":\"%s\",\"request_id\":\"%s\"}",
		 g->nonce ? "authorization_code" : "refresh_token", g->family, jti, req_id(r));
	return audit_append_tx(c, actor, "oidc.token.issue", object, details, NULL);
}

/* Signs the access token (with jti) and the ID token of a grant that is
 * committed already, and answers with them. */
static egov_err issue(req *r, db_conn *c, const grant *g, const char *jti)
{
	int64_t now = oidc_now(), exp = now + oidc_token_ttl();
	char acr[16], at_hash[44];
	unsigned char h[32];
	buf claims, at, idt, out;
	jw w;
	egov_err err;

	buf_init(&claims, 16 * 1024);
	buf_init(&at, 16 * 1024);
	buf_init(&idt, 16 * 1024);
	buf_init(&out, 64 * 1024);
	snprintf(acr, sizeof acr, "%d", g->acr);
	jw_init(&w, &claims);
	jw_obj_begin(&w);
	jw_kstr(&w, "iss", oidc_issuer());
	jw_kstr(&w, "sub", g->acct->id);
	jw_kstr(&w, "aud", g->cl->client_id);
	jw_kstr(&w, "client_id", g->cl->client_id);
	jw_kint(&w, "exp", exp);
	jw_kint(&w, "iat", now);
	jw_kstr(&w, "jti", jti);
	jw_kstr(&w, "scope", g->scope);
	jw_kstr(&w, "acr", acr);
	jw_kint(&w, "auth_time", g->auth_time);
	jw_kstr(&w, "fam", g->family);
	jw_obj_end(&w);
	if ((err = w.err) || (err = oidc_sign(c, AT_TYP, claims.data, &at)))
		goto out;
	/* at_hash: left half of SHA-256 of the access token (OIDC Core §3.1.3.6). */
	crypto_sha256(at.data, at.len, h);
	b64url_encode(h, 16, at_hash);
	buf_reset(&claims);
	jw_init(&w, &claims);
	jw_obj_begin(&w);
	jw_kstr(&w, "iss", oidc_issuer());
	jw_kstr(&w, "sub", g->acct->id);
	jw_kstr(&w, "aud", g->cl->client_id);
	jw_kstr(&w, "azp", g->cl->client_id);
	jw_kint(&w, "exp", exp);
	jw_kint(&w, "iat", now);
	jw_kint(&w, "auth_time", g->auth_time);
	if (g->nonce && *g->nonce)
		jw_kstr(&w, "nonce", g->nonce);
	jw_kstr(&w, "acr", acr);
	jw_key(&w, "amr");
	jw_raw(&w, amr_of(g->acr));
	jw_kstr(&w, "at_hash", at_hash);
	jw_obj_end(&w);
	if ((err = w.err) || (err = oidc_sign(c, "JWT", claims.data, &idt)))
		goto out;
	jw_init(&w, &out);
	jw_obj_begin(&w);
	jw_kstr(&w, "access_token", at.data);
	jw_kstr(&w, "token_type", "Bearer");
	jw_kint(&w, "expires_in", exp - now);
	jw_kstr(&w, "scope", g->scope);
	jw_kstr(&w, "id_token", idt.data);
	if (g->refresh && *g->refresh)
		jw_kstr(&w, "refresh_token", g->refresh);
	jw_obj_end(&w);
	if ((err = w.err))
		goto out;
	resp_header(r, "Cache-Control", "no-store");
	resp_header(r, "Pragma", "no-cache");
	err = resp_json(r, 200, &out);
out:
	buf_release(&claims);
	buf_release(&at);
	buf_release(&idt);
	buf_release(&out);
	return err;
}

/* A family revoked by a client's act (a replayed code, a reused refresh
 * token, a revocation), on c inside the transaction that revokes it. */
static egov_err audit_revocation(req *r, db_conn *c, const char *action, const oidc_client *cl, const char *account,
				 const char *family)
{
	char actor[96], object[96], details[200];

	if (!audit_available())
		return EGOV_OK;
	snprintf(actor, sizeof actor, "oidc_client:%s", cl->client_id);
	snprintf(object, sizeof object, "oidc_family:%s", family);
	snprintf(details, sizeof details, "{\"account\":\"%s\",\"request_id\":\"%s\"}", account, req_id(r));
	return audit_append_tx(c, actor, action, object, details, NULL);
}

/* The checks of a redeemed code against the request: NULL if they pass,
 * else the error_description of an invalid_grant. */
static const char *code_mismatch(const oidc_code_data *d, const oidc_client *cl, const char *redirect_uri,
				 const char *verifier)
{
	if (strcmp(d->client_id, cl->client_id) != 0)
		return "code was issued to another client";
	if (strcmp(d->redirect_uri, redirect_uri) != 0)
		return "redirect_uri does not match";
	if (d->challenge[0]) {
		char ch[44];
		if (!verifier || !oidc_pkce_valid(verifier))
			return "code_verifier missing or malformed";
		oidc_pkce_s256(verifier, ch);
		if (!crypto_streq(ch, d->challenge))
			return "PKCE verification failed";
	} else if (verifier) {
		return "code_verifier without code_challenge";
	}
	return NULL;
}

/* The code grant, in one transaction: the code is spent (for good, even
 * when a check after that refuses the grant), and the family, its first
 * refresh token and the grant's audit record commit together. */
static egov_err grant_code(req *r, db_conn *c, const uri_query *q, const oidc_client *cl)
{
	const char *code, *redirect_uri, *verifier, *refused = NULL;
	oidc_code_data d;
	oidc_refresh_data rd;
	identity_account acct;
	char refresh[OIDC_TOKEN_LEN + 1] = "", jti[37];
	int dup = 0;
	grant g;
	egov_err err;

	code = param(q, "code", &dup);
	redirect_uri = param(q, "redirect_uri", &dup);
	verifier = param(q, "code_verifier", &dup);
	if (dup || !code || !redirect_uri)
		return oauth_error(r, 400, "invalid_request", "code and redirect_uri are required, once each");
	if ((err = uuid_v7(jti)) || (err = db_begin(c)))
		return err;
	err = oidc_code_redeem(c, code, &d);
	if (err == EGOV_ECONFLICT) {
		/* RFC 6749 §4.1.2: a code used twice revokes what it gave. */
		if (!(err = oidc_family_revoke(c, d.family)))
			err = audit_revocation(r, c, "oidc.code.replay", cl, d.account_id, d.family);
		if ((err = db_end(c, err)))
			return err;
		return oauth_error(r, 400, "invalid_grant", "authorization code already used");
	}
	if (err == EGOV_ENOTFOUND) {
		if ((err = db_end(c, EGOV_OK)))
			return err;
		return oauth_error(r, 400, "invalid_grant", "unknown or expired authorization code");
	}
	if (err)
		return db_end(c, err);
	if (!(refused = code_mismatch(&d, cl, redirect_uri, verifier))) {
		err = identity_account_get(c, d.account_id, &acct);
		if (err == EGOV_ENOTFOUND || (!err && acct.disabled)) {
			refused = "account not available";
			err = EGOV_OK;
		}
	}
	if (!err && !refused) {
		/* Its own SAVEPOINT: a conflict must not undo the spending. */
		if (!(err = db_begin(c)))
			err = db_end(c, oidc_family_create(c, d.family, cl->client_id, d.account_id));
		if (err == EGOV_ECONFLICT) {
			refused = "code already used";
			err = EGOV_OK;
		}
	}
	if (err || refused) {
		if ((err = db_end(c, err)))
			return err;
		return oauth_error(r, 400, "invalid_grant", refused);
	}
	memset(&rd, 0, sizeof rd);
	snprintf(rd.family, sizeof rd.family, "%s", d.family);
	snprintf(rd.client_id, sizeof rd.client_id, "%s", cl->client_id);
	snprintf(rd.account_id, sizeof rd.account_id, "%s", d.account_id);
	snprintf(rd.scope, sizeof rd.scope, "%s", d.scope);
	rd.acr = d.acr;
	rd.auth_time = d.auth_time;
	g = (grant){.cl = cl, .acct = &acct, .scope = d.scope, .nonce = d.nonce, .family = d.family,
		    .refresh = refresh, .acr = d.acr, .auth_time = d.auth_time};
	if (!(err = oidc_refresh_issue(c, &rd, refresh)))
		err = audit_grant(r, c, &g, jti);
	if (!(err = db_end(c, err)))
		err = issue(r, c, &g, jti);
	OPENSSL_cleanse(refresh, sizeof refresh);
	return err;
}

/* What a refresh grant does inside its rotation's transaction. */
typedef struct refresh_job {
	req *r;
	const oidc_client *cl;
	const char *scope;       /* asked for, or NULL */
	const char *jti;
	const char *refresh;     /* the new refresh token */
	identity_account acct;
	bool unavailable;        /* the account is gone or disabled: family revoked */
} refresh_job;

static egov_err refresh_then(db_conn *c, void *ctx, egov_err result, const oidc_refresh_data *d)
{
	refresh_job *j = ctx;
	grant g;
	egov_err err;

	if (result == EGOV_ECONFLICT)
		return audit_revocation(j->r, c, "oidc.refresh.reuse", j->cl, d->account_id, d->family);
	if (result)
		return EGOV_OK;
	err = identity_account_get(c, d->account_id, &j->acct);
	if (err == EGOV_ENOTFOUND || (!err && j->acct.disabled)) {
		j->unavailable = true;
		return oidc_family_revoke(c, d->family);
	}
	if (err)
		return err;
	g = (grant){.cl = j->cl, .acct = &j->acct, .scope = j->scope ? j->scope : d->scope, .nonce = NULL,
		    .family = d->family, .refresh = j->refresh, .acr = d->acr, .auth_time = d->auth_time};
	return audit_grant(j->r, c, &g, j->jti);
}

/* The refresh grant: the rotation, the account's check and the grant's
 * audit record (or a reuse's revocation and its record) in one
 * transaction shared with concurrent grants through db_batch(): one
 * commit and one flush where there were two. The checks that must not
 * spend the token (client, scope) come first in it. */
static egov_err grant_refresh(req *r, db_conn *c, const uri_query *q, const oidc_client *cl)
{
	const char *token, *scope;
	oidc_refresh_data d;
	oidc_rotation rot;
	char refresh[OIDC_TOKEN_LEN + 1] = "", jti[37];
	int dup = 0;
	refresh_job job;
	grant g;
	egov_err err;

	token = param(q, "refresh_token", &dup);
	scope = param(q, "scope", &dup);
	if (dup || !token)
		return oauth_error(r, 400, "invalid_request", "refresh_token is required, once");
	if ((err = uuid_v7(jti)))
		return err;
	job = (refresh_job){.r = r, .cl = cl, .scope = scope, .jti = jti, .refresh = refresh};
	rot = (oidc_rotation){.token = token, .client_id = cl->client_id, .scope = scope};
	err = oidc_refresh_rotate_then(app()->db, &rot, &d, refresh, true, refresh_then, &job);
	if (err == EGOV_EPERM)
		return oauth_error(r, 400, "invalid_grant", "refresh token was issued to another client");
	if (err == EGOV_EINVAL)
		return oauth_error(r, 400, "invalid_scope", "scope may only narrow");
	if (err == EGOV_ECONFLICT)
		return oauth_error(r, 400, "invalid_grant", "refresh token reused; its family is revoked");
	if (err == EGOV_ENOTFOUND)
		return oauth_error(r, 400, "invalid_grant", "unknown, expired or revoked refresh token");
	if (err)
		return err;
	if (job.unavailable) {
		OPENSSL_cleanse(refresh, sizeof refresh);
		return oauth_error(r, 400, "invalid_grant", "account not available");
	}
	g = (grant){.cl = cl, .acct = &job.acct, .scope = scope ? scope : d.scope, .nonce = NULL, .family = d.family,
		    .refresh = refresh, .acr = d.acr, .auth_time = d.auth_time};
	err = issue(r, c, &g, jti);
	OPENSSL_cleanse(refresh, sizeof refresh);
	return err;
}

egov_err oidc_token_post(req *r)
{
	uri_query q;
	oidc_client cl;
	const char *gt, *why = NULL;
	db_conn *c = NULL;
	int dup = 0;
	egov_err err;

	if (form(r, &q))
		return oauth_error(r, 400, "invalid_request", "malformed form body");
	gt = param(&q, "grant_type", &dup);
	if (dup || !gt)
		return oauth_error(r, 400, "invalid_request", "grant_type is required, once");
	if ((err = client_auth(r, &q, &cl, &why)))
		return err == EGOV_EAUTH ? oauth_error(r, 401, "invalid_client", why) : err;
	if ((err = db_thread_conn(app()->db, &c)))
		goto out;
	if (strcmp(gt, "authorization_code") == 0)
		err = grant_code(r, c, &q, &cl);
	else if (strcmp(gt, "refresh_token") == 0)
		err = grant_refresh(r, c, &q, &cl);
	else
		err = oauth_error(r, 400, "unsupported_grant_type", NULL);
out:
	oidc_client_release(&cl);
	return err;
}

/* ---- access tokens ---------------------------------------------------- */

/* The claims of an access token as issue() writes them. Strings are NULL
 * when absent; the numbers have presence flags. */
typedef struct at_claims {
	const char *jti, *fam, *sub, *scope;
	const char *client_id, *aud, *iss, *acr;
	int64_t exp, iat, auth_time;
	bool exp_present, iat_present, auth_time_present;
} at_claims;

/* jti, fam, sub and scope are what a token is checked and used by. Claims
 * the table does not name are passed over (RFC 7519 §4), so a token from a
 * node that writes one more is still good here. */
static const json_field at_fields[] = {
	{.name = "jti", .type = JSON_T_STRING, .offset = offsetof(at_claims, jti), .required = true},
	{.name = "fam", .type = JSON_T_STRING, .offset = offsetof(at_claims, fam), .required = true},
	{.name = "sub", .type = JSON_T_STRING, .offset = offsetof(at_claims, sub), .required = true},
	{.name = "scope", .type = JSON_T_STRING, .offset = offsetof(at_claims, scope), .required = true},
	{.name = "client_id", .type = JSON_T_STRING, .offset = offsetof(at_claims, client_id)},
	{.name = "aud", .type = JSON_T_STRING, .offset = offsetof(at_claims, aud)},
	{.name = "iss", .type = JSON_T_STRING, .offset = offsetof(at_claims, iss)},
	{.name = "acr", .type = JSON_T_STRING, .offset = offsetof(at_claims, acr)},
	{.name = "exp", .type = JSON_T_INT, .offset = offsetof(at_claims, exp),
	 .present_offset = JSON_PRESENT(at_claims, exp_present)},
	{.name = "iat", .type = JSON_T_INT, .offset = offsetof(at_claims, iat),
	 .present_offset = JSON_PRESENT(at_claims, iat_present)},
	{.name = "auth_time", .type = JSON_T_INT, .offset = offsetof(at_claims, auth_time),
	 .present_offset = JSON_PRESENT(at_claims, auth_time_present)},
};

/* Verifies an access token completely and binds its claims into *out
 * (strings in r's arena). EGOV_EAUTH with *why when it is not good. */
static egov_err access_check(req *r, db_conn *c, const char *tok, at_claims *out, const char **why)
{
	cJSON *payload = NULL;
	bool denied = true, revoked = true;
	egov_err err;

	memset(out, 0, sizeof *out);
	if ((err = oidc_verify(c, tok, AT_TYP, NULL, &payload, why)))
		goto out;
	*why = "jwt.claims";
	if ((err = json_bind_tree(req_arena(r), payload, at_fields, sizeof at_fields / sizeof at_fields[0],
				  JSON_BIND_SKIP_UNKNOWN, out, NULL))) {
		if (err == EGOV_EINVAL)
			err = EGOV_EAUTH;
		goto out;
	}
	if ((err = oidc_deny_has(c, out->jti, &denied)) || (err = oidc_family_revoked(c, out->fam, &revoked)))
		goto out;
	*why = "jwt.revoked";
	if (denied || revoked) {
		err = EGOV_EAUTH;
		goto out;
	}
	*why = NULL;
out:
	cJSON_Delete(payload);
	return err;
}

static egov_err bearer_error(req *r, const char *error)
{
	char h[128];

	/* RFC 6750 3: the resource server's challenge is Bearer, once. */
	snprintf(h, sizeof h, "Bearer realm=\"egov\", error=\"%s\"", error);
	return oauth_error_challenge(r, strcmp(error, "insufficient_scope") == 0 ? 403 : 401, error, NULL, h);
}

egov_err oidc_userinfo(req *r)
{
	const principal *p = req_principal(r);
	identity_account acct;
	db_conn *c = NULL;
	buf b;
	jw w;
	egov_err err;

	if (p->kind != PRINCIPAL_BEARER)
		return EGOV_EAUTH; /* the route's .auth let no request in without */
	if ((err = db_thread_conn(app()->db, &c)))
		return err;
	err = identity_account_get(c, p->account_id, &acct);
	if (err == EGOV_ENOTFOUND || (!err && acct.disabled))
		return bearer_error(r, "invalid_token");
	if (err)
		return err;
	buf_init(&b, 16 * 1024);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_kstr(&w, "sub", acct.id);
	if (oidc_scope_has(p->scope, "email")) {
		jw_kstr(&w, "email", acct.email);
		jw_kbool(&w, "email_verified", acct.email_verified);
	}
	if (oidc_scope_has(p->scope, "profile")) {
		jw_kstr(&w, "name", acct.display_name);
		jw_kstr(&w, "locale", acct.locale);
	}
	jw_obj_end(&w);
	if (w.err) {
		buf_release(&b);
		return w.err;
	}
	resp_header(r, "Cache-Control", "no-store");
	return resp_json(r, 200, &b);
}

egov_err oidc_revoke_post(req *r)
{
	uri_query q;
	oidc_client cl;
	oidc_refresh_data d;
	const char *tok, *why = NULL;
	at_claims p;
	db_conn *c = NULL;
	int64_t exp = 0;
	int dup = 0;
	egov_err err;

	if (form(r, &q))
		return oauth_error(r, 400, "invalid_request", "malformed form body");
	if ((err = client_auth(r, &q, &cl, &why)))
		return err == EGOV_EAUTH ? oauth_error(r, 401, "invalid_client", why) : err;
	tok = param(&q, "token", &dup);
	if (!tok || dup) {
		err = oauth_error(r, 400, "invalid_request", "token is required, once");
		goto out;
	}
	if ((err = db_thread_conn(app()->db, &c)))
		goto out;
	if (oidc_refresh_lookup(c, tok, &d, &exp) == EGOV_OK) {
		if (strcmp(d.client_id, cl.client_id) == 0) {
			if ((err = db_begin(c)))
				goto out;
			if (!(err = oidc_family_revoke(c, d.family)))
				err = audit_revocation(r, c, "oidc.token.revoke", &cl, d.account_id, d.family);
			if ((err = db_end(c, err)))
				goto out;
		}
	} else if (access_check(r, c, tok, &p, &why) == EGOV_OK) {
		if (p.client_id && p.exp_present && strcmp(p.client_id, cl.client_id) == 0) {
			char actor[96], object[64];
			snprintf(actor, sizeof actor, "oidc_client:%s", cl.client_id);
			snprintf(object, sizeof object, "oidc_access:%s", p.jti);
			if ((err = db_begin(c)))
				goto out;
			if (!(err = oidc_deny_add(c, p.jti, p.exp)) && audit_available())
				err = audit_append_tx(c, actor, "oidc.token.revoke", object, NULL, NULL);
			if ((err = db_end(c, err)))
				goto out;
		}
	}
	/* RFC 7009 §2.2: unknown and foreign tokens are answered alike. */
	resp_header(r, "Cache-Control", "no-store");
	err = resp_empty(r, 200);
out:
	oidc_client_release(&cl);
	return err;
}

egov_err oidc_introspect_post(req *r)
{
	uri_query q;
	oidc_client cl;
	oidc_refresh_data d;
	const char *tok, *why = NULL;
	at_claims p;
	db_conn *c = NULL;
	int64_t exp = 0;
	int dup = 0;
	buf b;
	jw w;
	egov_err err;

	if (form(r, &q))
		return oauth_error(r, 400, "invalid_request", "malformed form body");
	if ((err = client_auth(r, &q, &cl, &why)))
		return err == EGOV_EAUTH ? oauth_error(r, 401, "invalid_client", why) : err;
	if (cl.type != OIDC_CONFIDENTIAL) {
		oidc_client_release(&cl);
		return oauth_error(r, 401, "invalid_client", "introspection needs a confidential client");
	}
	tok = param(&q, "token", &dup);
	if (!tok || dup) {
		oidc_client_release(&cl);
		return oauth_error(r, 400, "invalid_request", "token is required, once");
	}
	if ((err = db_thread_conn(app()->db, &c))) {
		oidc_client_release(&cl);
		return err;
	}
	buf_init(&b, 16 * 1024);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	if (oidc_refresh_lookup(c, tok, &d, &exp) == EGOV_OK) {
		jw_kbool(&w, "active", true);
		jw_kstr(&w, "token_type", "refresh_token");
		jw_kstr(&w, "scope", d.scope);
		jw_kstr(&w, "client_id", d.client_id);
		jw_kstr(&w, "sub", d.account_id);
		jw_kint(&w, "exp", exp);
		jw_kstr(&w, "iss", oidc_issuer());
	} else if (access_check(r, c, tok, &p, &why) == EGOV_OK) {
		/* The claims RFC 7662 §2.2 names, as the token has them. */
		const struct {
			const char *name, *v;
		} strs[] = {{"scope", p.scope}, {"client_id", p.client_id}, {"sub", p.sub}, {"aud", p.aud},
			    {"iss", p.iss},     {"jti", p.jti},             {"acr", p.acr}};
		const struct {
			const char *name;
			int64_t v;
			bool present;
		} nums[] = {{"exp", p.exp, p.exp_present},
			    {"iat", p.iat, p.iat_present},
			    {"auth_time", p.auth_time, p.auth_time_present}};
		size_t i;
		jw_kbool(&w, "active", true);
		jw_kstr(&w, "token_type", "Bearer");
		for (i = 0; i < sizeof strs / sizeof strs[0]; i++)
			if (strs[i].v)
				jw_kstr(&w, strs[i].name, strs[i].v);
		for (i = 0; i < sizeof nums / sizeof nums[0]; i++)
			if (nums[i].present)
				jw_kint(&w, nums[i].name, nums[i].v);
	} else {
		jw_kbool(&w, "active", false);
	}
	jw_obj_end(&w);
	oidc_client_release(&cl);
	if (w.err) {
		buf_release(&b);
		return w.err;
	}
	resp_header(r, "Cache-Control", "no-store");
	return resp_json(r, 200, &b);
}

/* ---- access tokens as the router's credential (AUTH_BEARER) ------------- */

/* The router's authenticator of access tokens. A route that accepts
 * nothing else is an OAuth protected resource (UserInfo): it is answered
 * as RFC 6750 asks (401 invalid_token with a Bearer challenge, 403
 * insufficient_scope). Elsewhere (routes with a permission, which accept a
 * session or the operator too) a refusal is the kernel's 401. Scopes gate
 * what a token may do beyond the account's own rights: on a route with a
 * permission "egov.api" lets it act with all of them, the permission's
 * name as a scope (e.g. "info.notice.write") with that one; a route's
 * .scope must be among the token's. */
static egov_err bearer_authenticate(req *r, unsigned auth, const char *perm, const char *scope, principal *out,
				    const char **code)
{
	const char *h = req_header(r, "Authorization"), *why = NULL;
	bool resource = !(auth & (AUTH_SESSION | AUTH_OPERATOR));
	at_claims p;
	db_conn *c = NULL;
	egov_err err;

	(void)code;
	if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
		if (resource)
			oauth_error_challenge(r, 401, "invalid_token", "bearer access token required",
					      "Bearer realm=\"egov\"");
		return h || resource ? EGOV_EAUTH : EGOV_ENOTFOUND;
	}
	if (!app()->db)
		return resource ? EGOV_EUNAVAILABLE : EGOV_EAUTH;
	if ((err = db_thread_conn(app()->db, &c)))
		return resource ? err : EGOV_EAUTH;
	err = access_check(r, c, h + 7, &p, &why);
	if (err && (err != EGOV_EAUTH || !resource))
		return resource ? err : EGOV_EAUTH;
	if (err) {
		bearer_error(r, "invalid_token");
		return EGOV_EAUTH;
	}
	if (scope && !oidc_scope_has(p.scope, scope)) {
		if (!resource)
			return EGOV_EAUTH;
		bearer_error(r, "insufficient_scope");
		return EGOV_EPERM;
	}
	if (perm && !oidc_scope_has(p.scope, "egov.api") && !oidc_scope_has(p.scope, perm))
		return EGOV_EAUTH;
	if (strlen(p.sub) > PRINCIPAL_ID_MAX || (p.client_id && strlen(p.client_id) > PRINCIPAL_ID_MAX))
		return EGOV_EAUTH;
	out->kind = PRINCIPAL_BEARER;
	memcpy(out->account_id, p.sub, strlen(p.sub) + 1);
	if (p.client_id)
		memcpy(out->client_id, p.client_id, strlen(p.client_id) + 1);
	out->acr = p.acr && p.acr[0] >= '1' && p.acr[0] <= '3' && !p.acr[1] ? p.acr[0] - '0' : 1;
	out->auth_time = p.auth_time_present ? p.auth_time : 0;
	out->scope = p.scope; /* in the request's arena */
	return EGOV_OK;
}

void oidc_bearer_install(void)
{
	http_set_authenticator(AUTH_BEARER, bearer_authenticate);
}
