/*
 * oidc_authorize.c: the authorization endpoint (code flow) and the consent
 * form it shows.
 *
 * Invariants: nothing is redirected to a redirect_uri before the client is
 * known and the URI matched one of its registered URIs exactly (otherwise
 * the answer is a problem document here, never a redirect: no open
 * redirector); public clients must send an S256 PKCE challenge; the
 * session's acr, auth_time and the remembered grant are checked on every
 * request; the consent POST re-validates the whole request and carries the
 * session's CSRF token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/app.h"
#include "core/i18n.h"
#include "core/timeutil.h"
#include "core/uri.h"
#include "core/web.h"
#include "identity/identity.h"
#include "oidc/oidc_int.h"
#include "core/banned.h"

typedef struct authz {
	const char *response_type, *client_id, *redirect_uri, *scope, *state, *nonce;
	const char *code_challenge, *code_challenge_method, *prompt, *max_age, *acr_values;
	oidc_client cl;
	int need_acr;     /* lowest acr in acr_values, 0 if none */
	int64_t max_age_s; /* -1 if none */
} authz;

#define P(name) #name, offsetof(authz, name)
static const struct {
	const char *name;
	size_t off;
} params[] = {
	{P(response_type)}, {P(client_id)}, {P(redirect_uri)}, {P(scope)}, {P(state)}, {P(nonce)},
	{P(code_challenge)}, {P(code_challenge_method)}, {P(prompt)}, {P(max_age)}, {P(acr_values)},
};
#undef P
#define NPARAMS (sizeof params / sizeof params[0])

static const char **field(authz *a, size_t i)
{
	return (const char **)(void *)((char *)a + params[i].off);
}

static egov_err url_encode(buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	egov_err err = EGOV_OK;

	for (; *s && !err; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		    ch == '.' || ch == '_' || ch == '~')
			err = buf_addc(b, (char)ch);
		else if (!(err = buf_addc(b, '%')) && !(err = buf_addc(b, hex[ch >> 4])))
			err = buf_addc(b, hex[ch & 15]);
	}
	return err;
}

/* The authorize URL of this request, for the login page to come back to.
 * skip_prompt drops prompt=login (the login about to happen satisfies it)
 * and max_age_override (>= 0) replaces max_age so the fresh login counts. */
static egov_err self_url(authz *a, buf *b, int skip_prompt, int64_t max_age_override)
{
	egov_err err = buf_adds(b, "/oidc/authorize");
	char sep = '?';
	size_t i;

	for (i = 0; i < NPARAMS && !err; i++) {
		const char *v = *field(a, i);
		char num[24];
		if (skip_prompt && strcmp(params[i].name, "prompt") == 0)
			continue;
		if (max_age_override >= 0 && strcmp(params[i].name, "max_age") == 0) {
			snprintf(num, sizeof num, "%lld", (long long)max_age_override);
			v = num;
		}
		if (!v)
			continue;
		if (!(err = buf_addc(b, sep)) && !(err = buf_adds(b, params[i].name)) && !(err = buf_addc(b, '=')))
			err = url_encode(b, v);
		sep = '&';
	}
	if (!err && max_age_override >= 0 && !a->max_age)
		err = buf_addf(b, "%cmax_age=%lld", sep, (long long)max_age_override);
	return err;
}

static egov_err redirect(req *r, int status, buf *loc)
{
	egov_err err = resp_header(r, "Location", loc->data);

	buf_release(loc);
	resp_header(r, "Cache-Control", "no-store");
	return err ? err : resp_empty(r, status);
}

/* Redirects to the client with an OAuth error (only after the client and
 * redirect_uri were checked). */
static egov_err redirect_error(req *r, authz *a, const char *error, const char *desc)
{
	buf b;
	egov_err err;

	buf_init(&b, 8192);
	if (!(err = buf_adds(&b, a->redirect_uri)) && !(err = buf_addc(&b, strchr(a->redirect_uri, '?') ? '&' : '?')) &&
	    !(err = buf_adds(&b, "error=")) && !(err = url_encode(&b, error))) {
		if (desc && !(err = buf_adds(&b, "&error_description=")))
			err = url_encode(&b, desc);
		if (!err && a->state && !(err = buf_adds(&b, "&state=")))
			err = url_encode(&b, a->state);
		if (!err && !(err = buf_adds(&b, "&iss=")))
			err = url_encode(&b, oidc_issuer());
	}
	if (err) {
		buf_release(&b);
		return err;
	}
	return redirect(r, req_method(r) == HTTP_POST ? 303 : 302, &b);
}

static egov_err to_login(req *r, authz *a, int skip_prompt, int64_t max_age_override)
{
	buf self, b;
	egov_err err;

	buf_init(&self, 8192);
	buf_init(&b, 16384);
	if (!(err = self_url(a, &self, skip_prompt, max_age_override)) && !(err = buf_adds(&b, "/login?return=")) &&
	    !(err = url_encode(&b, self.data)) && a->need_acr > 1)
		err = buf_addf(&b, "&acr=%d", a->need_acr);
	buf_release(&self);
	if (err) {
		buf_release(&b);
		return err;
	}
	return redirect(r, 302, &b);
}

/* What kind of failure validate() found. */
enum verdict { OK, FATAL, REDIRECT };

/* Checks the request. FATAL: *code and *detail for a problem document;
 * REDIRECT: *code is the OAuth error, *detail its description. */
static enum verdict validate(db_conn *c, authz *a, const char **code, const char **detail)
{
	const char *p;
	size_t i;

	*detail = NULL;
	for (i = 0; i < NPARAMS; i++) {
		const char *v = *field(a, i);
		if (v && strlen(v) > OIDC_STATE_MAX) {
			*code = "oidc.invalid_request";
			*detail = params[i].name;
			return FATAL;
		}
	}
	if (!a->client_id || oidc_client_get(c, a->client_id, &a->cl) != EGOV_OK) {
		*code = "oidc.unknown_client";
		return FATAL;
	}
	if (!a->redirect_uri || !oidc_client_redirect_ok(&a->cl, a->redirect_uri)) {
		*code = "oidc.redirect_uri_mismatch";
		return FATAL;
	}
	*code = "invalid_request";
	if (!a->response_type || strcmp(a->response_type, "code") != 0) {
		*code = "unsupported_response_type";
		*detail = "only response_type=code";
		return REDIRECT;
	}
	if (!a->scope || !oidc_scope_has(a->scope, "openid")) {
		*code = "invalid_scope";
		*detail = "scope must include openid";
		return REDIRECT;
	}
	if (strlen(a->scope) > OIDC_SCOPE_MAX || !oidc_scopes_subset(a->scope, a->cl.scopes)) {
		*code = "invalid_scope";
		*detail = "scope not allowed for this client";
		return REDIRECT;
	}
	if (a->nonce && strlen(a->nonce) > OIDC_NONCE_MAX) {
		*detail = "nonce too long";
		return REDIRECT;
	}
	if (a->code_challenge) {
		if (!a->code_challenge_method || strcmp(a->code_challenge_method, "S256") != 0) {
			*detail = "code_challenge_method must be S256";
			return REDIRECT;
		}
		if (strlen(a->code_challenge) != 43 || !oidc_pkce_valid(a->code_challenge) ||
		    strchr(a->code_challenge, '.') || strchr(a->code_challenge, '~')) {
			*detail = "code_challenge must be a base64url SHA-256";
			return REDIRECT;
		}
	} else if (a->cl.type == OIDC_PUBLIC) {
		*detail = "PKCE (S256) is required for public clients";
		return REDIRECT;
	} else if (a->code_challenge_method) {
		*detail = "code_challenge_method without code_challenge";
		return REDIRECT;
	}
	if (a->prompt) {
		if (!strcmp(a->prompt, "none") ? 0 : !strcmp(a->prompt, "login") ? 0 : strcmp(a->prompt, "consent")) {
			*detail = "prompt must be none, login or consent";
			return REDIRECT;
		}
	}
	a->max_age_s = -1;
	if (a->max_age) {
		char *end = NULL;
		long long v = strtoll(a->max_age, &end, 10);
		if (!*a->max_age || *end || v < 0 || v > 100000000 || a->max_age[0] == '-' || a->max_age[0] == '+') {
			*detail = "max_age must be a number of seconds";
			return REDIRECT;
		}
		a->max_age_s = v;
	}
	a->need_acr = 0;
	if (a->acr_values) {
		/* Any listed level satisfies the client, so the lowest one is required. */
		for (p = a->acr_values; *p;) {
			size_t l;
			while (*p == ' ')
				p++;
			l = strcspn(p, " ");
			if (!l)
				break;
			if (l == 1 && p[0] >= '1' && p[0] <= '3') {
				int v = p[0] - '0';
				if (!a->need_acr || v < a->need_acr)
					a->need_acr = v;
			}
			p += l;
		}
		if (!a->need_acr) {
			*detail = "acr_values must name 1, 2 or 3";
			return REDIRECT;
		}
	}
	return OK;
}

/* Stores a code for the signed-in person p and its audit record
 * "oidc.code.issue", on c inside the caller's transaction; after the
 * consent's record "oidc.consent.grant" (its details) when one was just
 * given. */
static egov_err store_code(req *r, db_conn *c, authz *a, const principal *p, char code[OIDC_TOKEN_LEN + 1],
			   const char *consent)
{
	oidc_code_data d;
	char object[96], details[300];
	egov_err err;

	memset(&d, 0, sizeof d);
	if (strlen(p->account_id) >= sizeof d.account_id)
		return EGOV_EINVAL; /* not an account id of ours */
	memcpy(d.account_id, p->account_id, strlen(p->account_id) + 1);
	snprintf(d.client_id, sizeof d.client_id, "%s", a->cl.client_id);
	snprintf(d.redirect_uri, sizeof d.redirect_uri, "%s", a->redirect_uri);
	snprintf(d.scope, sizeof d.scope, "%s", a->scope);
	snprintf(d.nonce, sizeof d.nonce, "%s", a->nonce ? a->nonce : "");
	snprintf(d.challenge, sizeof d.challenge, "%s", a->code_challenge ? a->code_challenge : "");
	d.acr = p->acr;
	d.auth_time = p->auth_time;
	if ((err = uuid_v7(d.family)) || (err = oidc_code_issue(c, &d, code)))
		return err;
	snprintf(object, sizeof object, "oidc_client:%s", a->cl.client_id);
	if (consent && (err = oidc_audit_tx(c, p->actor, "oidc.consent.grant", object, consent)))
		return err;
	snprintf(details, sizeof details, "{\"family\":\"%s\",\"acr\":%d,\"pkce\":%s,\"request_id\":\"%s\"}", d.family,
		 d.acr, d.challenge[0] ? "true" : "false", req_id(r));
	return oidc_audit_tx(c, p->actor, "oidc.code.issue", object, details);
}

/* Sends the browser back to the client with a code that is committed. */
static egov_err redirect_code(req *r, authz *a, char code[OIDC_TOKEN_LEN + 1])
{
	buf b;
	egov_err err;

	buf_init(&b, 8192);
	if (!(err = buf_adds(&b, a->redirect_uri)) && !(err = buf_addc(&b, strchr(a->redirect_uri, '?') ? '&' : '?')) &&
	    !(err = buf_adds(&b, "code=")) && !(err = buf_adds(&b, code))) {
		if (a->state && !(err = buf_adds(&b, "&state=")))
			err = url_encode(&b, a->state);
		if (!err && !(err = buf_adds(&b, "&iss=")))
			err = url_encode(&b, oidc_issuer());
	}
	OPENSSL_cleanse(code, OIDC_TOKEN_LEN + 1);
	if (err) {
		buf_release(&b);
		return err;
	}
	return redirect(r, req_method(r) == HTTP_POST ? 303 : 302, &b);
}

/* A code for a grant remembered or just given (consent: the scope the
 * person allowed, remembered and audited in the same transaction). */
static egov_err issue_code(req *r, db_conn *c, authz *a, const principal *p, bool consent)
{
	char code[OIDC_TOKEN_LEN + 1] = "", details[OIDC_SCOPE_MAX + 128];
	egov_err err;

	if ((err = db_begin(c)))
		return err;
	if (consent) {
		buf d;
		buf_init(&d, sizeof details);
		if (!buf_adds(&d, "{\"scope\":\"") && !buf_add_json_str(&d, a->scope) && !buf_adds(&d, "\"}"))
			snprintf(details, sizeof details, "%s", d.data);
		else
			snprintf(details, sizeof details, "{}");
		buf_release(&d);
		err = oidc_grant_save(c, p->account_id, a->cl.client_id, a->scope);
	}
	/* The records last, after every row this transaction writes: the
	 * chain's lock is then taken after the rows' locks, in every
	 * transaction the same way round (no two wait for each other). */
	if (!err)
		err = store_code(r, c, a, p, code, consent ? details : NULL);
	if ((err = db_end(c, err))) {
		OPENSSL_cleanse(code, sizeof code);
		return err;
	}
	return redirect_code(r, a, code);
}

/* Replaces each marker in the rendered template. */
static egov_err render_consent(req *r, authz *a, const principal *s)
{
	const web_file *f = web_find("/oidc-consent.html", req_lang(r));
	const char *lang = req_lang(r), *p, *end;
	buf b;
	egov_err err = EGOV_OK;
	size_t i;

	if (!f)
		return EGOV_EUNAVAILABLE;
	buf_init(&b, 256 * 1024);
	p = f->data;
	end = f->data + f->len;
	while (!err && p < end) {
		const char *m = memmem(p, (size_t)(end - p), "%%", 2), *close;
		if (!m) {
			err = buf_add(&b, p, (size_t)(end - p));
			break;
		}
		if ((err = buf_add(&b, p, (size_t)(m - p))))
			break;
		close = memmem(m + 2, (size_t)(end - m - 2), "%%", 2);
		if (!close) {
			err = buf_add(&b, m, (size_t)(end - m));
			break;
		}
		if (!strncmp(m, "%%CLIENT%%", 10)) {
			err = buf_add_html(&b, a->cl.name);
		} else if (!strncmp(m, "%%CSRF%%", 8)) {
			err = buf_add_html(&b, s->csrf);
		} else if (!strncmp(m, "%%SCOPES%%", 10)) {
			const char *q = a->scope;
			while (!err && *q) {
				char word[80], key[100];
				size_t l;
				while (*q == ' ')
					q++;
				l = strcspn(q, " ");
				if (!l)
					break;
				if (l < sizeof word) {
					memcpy(word, q, l);
					word[l] = '\0';
					snprintf(key, sizeof key, "oidc.scope.%s", word);
					if (!(err = buf_adds(&b, "<li>")))
						err = buf_add_html(&b, i18n_has(lang, key) ? i18n_text(lang, key) : word);
					if (!err)
						err = buf_adds(&b, "</li>");
				}
				q += l;
			}
		} else if (!strncmp(m, "%%FIELDS%%", 10)) {
			for (i = 0; i < NPARAMS && !err; i++) {
				const char *v = *field(a, i);
				if (!v)
					continue;
				if (!(err = buf_addf(&b, "<input type=\"hidden\" name=\"%s\" value=\"", params[i].name)) &&
				    !(err = buf_add_html(&b, v)))
					err = buf_adds(&b, "\">");
			}
		} else {
			err = buf_add(&b, m, (size_t)(close + 2 - m));
		}
		p = close + 2;
	}
	if (err) {
		buf_release(&b);
		return err;
	}
	resp_header(r, "Cache-Control", "no-store");
	/* The consent POST is answered with a redirect to the client: let the
	 * browser follow it (CSP form-action covers redirects). */
	{
		char origin[OIDC_REDIRECT_URI_MAX + 1];
		const char *p3 = strstr(a->redirect_uri, "://");
		size_t n = p3 ? (size_t)(p3 + 3 - a->redirect_uri) + strcspn(p3 + 3, "/?#") : 0;
		if (n && n < sizeof origin) {
			memcpy(origin, a->redirect_uri, n);
			origin[n] = '\0';
			resp_csp_form_action(r, origin); /* refused origins keep 'self' only */
		}
	}
	return resp_buf(r, 200, "text/html; charset=utf-8", &b);
}

/* The decisions shared by GET and the consent POST. consent: NULL on GET,
 * else "allow" or "deny". */
static egov_err decide(req *r, authz *a, const char *consent)
{
	const principal *s = req_principal(r);
	db_conn *c = NULL;
	const char *code = NULL, *detail = NULL;
	bool covers = false;
	int64_t now = oidc_now();
	int prompt_none;
	egov_err err;

	if ((err = db_thread_conn(app()->db, &c)))
		return err;
	switch (validate(c, a, &code, &detail)) {
	case FATAL:
		return resp_problem(r, 400, code, detail ? detail : (strstr(code, "redirect") ? "redirect_uri" : "client_id"),
				    NULL);
	case REDIRECT:
		return redirect_error(r, a, code, detail);
	case OK:
		break;
	}
	prompt_none = a->prompt && strcmp(a->prompt, "none") == 0;
	if (s->kind != PRINCIPAL_SESSION) {
		if (consent)
			return resp_problem(r, 401, "unauthorized", NULL, NULL);
		return prompt_none ? redirect_error(r, a, "login_required", NULL) : to_login(r, a, 0, -1);
	}
	if (consent) {
		if (identity_csrf_check_principal(r) != EGOV_OK)
			return resp_problem(r, 403, "identity.csrf", NULL, NULL);
	} else {
		if (a->prompt && strcmp(a->prompt, "login") == 0)
			return to_login(r, a, 1, a->max_age_s >= 0 && a->max_age_s < 60 ? a->max_age_s : 60);
		if (a->max_age_s >= 0 && now - s->auth_time > a->max_age_s)
			return prompt_none ? redirect_error(r, a, "login_required", "max_age exceeded")
					   : to_login(r, a, 0, -1);
	}
	if (a->need_acr && s->acr < a->need_acr) {
		/* Step-up: the login page raises the session to the level asked. */
		if (prompt_none || consent)
			return redirect_error(r, a, "login_required", "a higher authentication level is required");
		return to_login(r, a, 0, -1);
	}
	if (consent) {
		if (strcmp(consent, "allow") != 0)
			return redirect_error(r, a, "access_denied", "the user declined");
		return issue_code(r, c, a, s, true);
	}
	if ((err = oidc_grant_covers(c, s->account_id, a->cl.client_id, a->scope, &covers)))
		return err;
	if (covers && !(a->prompt && strcmp(a->prompt, "consent") == 0))
		return issue_code(r, c, a, s, false);
	if (prompt_none)
		return redirect_error(r, a, "consent_required", NULL);
	return render_consent(r, a, s);
}

egov_err oidc_authorize_get(req *r)
{
	authz a;
	size_t i;
	egov_err err;

	memset(&a, 0, sizeof a);
	for (i = 0; i < NPARAMS; i++)
		*field(&a, i) = req_query(r, params[i].name);
	err = decide(r, &a, NULL);
	oidc_client_release(&a.cl);
	return err;
}

egov_err oidc_authorize_consent(req *r)
{
	authz a;
	uri_query q;
	const char *body, *why = NULL, *decision;
	size_t len = 0, i;
	egov_err err;

	memset(&a, 0, sizeof a);
	body = req_body(r, &len);
	if (!body || uri_query_parse(req_arena(r), body, len, &q, &why))
		return resp_problem(r, 400, "oidc.invalid_request", NULL, why);
	for (i = 0; i < NPARAMS; i++)
		*field(&a, i) = uri_query_get(&q, params[i].name);
	decision = uri_query_get(&q, "decision");
	if (!decision || (strcmp(decision, "allow") && strcmp(decision, "deny")))
		return resp_problem(r, 400, "validation.invalid_field", "decision", "allow or deny");
	err = decide(r, &a, decision);
	oidc_client_release(&a.cl);
	return err;
}
