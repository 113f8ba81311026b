/*
 * identity_http.c: the identity JSON API under /api/v1/identity/ (the
 * route table is in identity_module.c). Validation and problem codes live
 * here; the work is done through identity.h.
 *
 * Invariants:
 * - Who may call is the route's (.auth in identity_module.c): the router
 *   answers 401 without a session and 403 identity.csrf for a state change
 *   without the session's CSRF token before a handler runs; handlers read
 *   the session with identity_req_session().
 * - Login answers the same (identity.bad_credentials, same work) for an
 *   unknown e-mail and a wrong password; the password reset request always
 *   answers 202.
 * - Every security-relevant event is audited: registration, verification,
 *   login ok/failed/locked, logout, password reset, TOTP changes, recovery
 *   code use, session revocation. A change and its audit record are one
 *   transaction (audit_append_tx): both commit or neither, and no mail is
 *   queued for a change that has no record. Passwords are hashed before
 *   that transaction begins, never while it holds the write lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/app.h"
#include "core/i18n.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "identity/identity_int.h"
#include "core/banned.h"

static egov_err conn(db_conn **c)
{
	return db_thread_conn(app()->db, c);
}

/* The caller's session on a route with AUTH_SESSION: the router let no
 * request in without one. */
static egov_err caller(req *r, const identity_session **s)
{
	*s = identity_req_session(r);
	return *s ? EGOV_OK : EGOV_EAUTH;
}

/* 429 with the wait in seconds (Retry-After, rounded up, >= 1) and in
 * milliseconds (Retry-After-Ms and the body). */
static egov_err problem_retry(req *r, const char *code, int64_t ms)
{
	char key[96], type[96], v[32];
	buf b;
	jw w;

	if (ms < 1)
		ms = 1;
	snprintf(v, sizeof v, "%lld", (long long)((ms + 999) / 1000));
	resp_header(r, "Retry-After", v);
	snprintf(v, sizeof v, "%lld", (long long)ms);
	resp_header(r, "Retry-After-Ms", v);
	snprintf(key, sizeof key, "problem.%s", code);
	snprintf(type, sizeof type, "urn:egov:problem:%s", code);
	buf_init(&b, 4096);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_kstr(&w, "type", type);
	jw_kstr(&w, "title", i18n_text(req_lang(r), key));
	jw_kint(&w, "status", 429);
	jw_kstr(&w, "code", code);
	jw_kint(&w, "retry_after_ms", ms);
	jw_kstr(&w, "instance", req_path(r));
	jw_kstr(&w, "request_id", req_id(r));
	jw_obj_end(&w);
	if (w.err) {
		buf_release(&b);
		return w.err;
	}
	return resp_buf(r, 429, "application/problem+json", &b);
}

static void write_account(jw *w, const identity_account *a)
{
	jw_obj_begin(w);
	jw_kstr(w, "id", a->id);
	jw_kstr(w, "kind", identity_kind_name(a->kind));
	jw_kstr(w, "email", a->email);
	jw_kstr(w, "display_name", a->display_name);
	jw_kstr(w, "locale", a->locale);
	jw_kbool(w, "email_verified", a->email_verified);
	jw_kbool(w, "totp_enabled", a->totp_enabled);
	jw_kstr(w, "created_at", a->created_at);
	jw_obj_end(w);
}

static void write_time(jw *w, const char *k, int64_t us)
{
	char t[32];
	time_format_rfc3339(us, 0, t);
	jw_kstr(w, k, t);
}

static void write_session(jw *w, const identity_session *s, bool current)
{
	jw_obj_begin(w);
	jw_kstr(w, "id", s->id);
	jw_kint(w, "acr", s->acr);
	write_time(w, "auth_time", s->auth_time_us);
	write_time(w, "created_at", s->created_us);
	write_time(w, "last_seen_at", s->last_seen_us);
	write_time(w, "expires_at", s->expires_us);
	jw_kstr(w, "ip", s->ip);
	jw_kstr(w, "user_agent", s->user_agent);
	jw_kbool(w, "current", current);
	jw_obj_end(w);
}

static egov_err answer(req *r, int status, buf *b, jw *w)
{
	if (w->err) {
		buf_release(b);
		return w->err;
	}
	return resp_json(r, status, b);
}

static void link_for(char *out, size_t n, const char *path, const char *token, req *r)
{
	(void)r;
	snprintf(out, n, "%s%s?token=%s", identity_public_url(), path, token);
}

/* ---- registration and verification -------------------------------------------- */

typedef struct register_in {
	const char *email, *name, *password, *locale;
} register_in;

static const json_field register_fields[] = {
	{.name = "email", .type = JSON_T_STRING, .offset = offsetof(register_in, email), .required = true,
	 .max_len = IDENTITY_EMAIL_MAX},
	{.name = "name", .type = JSON_T_STRING, .offset = offsetof(register_in, name), .required = true,
	 .min_len = 1, .max_len = IDENTITY_NAME_MAX * 4},
	{.name = "password", .type = JSON_T_STRING, .offset = offsetof(register_in, password), .required = true,
	 .max_len = IDENTITY_PASSWORD_FIELD_MAX},
	{.name = "locale", .type = JSON_T_STRING, .offset = offsetof(register_in, locale),
	 .max_len = IDENTITY_LOCALE_FIELD_MAX},
};

static egov_err api_register(req *r)
{
	register_in in = {0};
	identity_account_new nw = {0};
	identity_account a;
	char token[IDENTITY_TOKEN_LEN + 1], link[1024], actor[48], hash[128] = "";
	const char *code = NULL, *field;
	int64_t retry = 0;
	db_conn *c = NULL;
	buf b;
	jw w;
	egov_err err;

	if ((err = req_json(r, register_fields, sizeof register_fields / sizeof register_fields[0], &in)))
		return err;
	nw.kind = IDENTITY_RESIDENT;
	nw.email = in.email;
	nw.display_name = in.name;
	nw.locale = in.locale ? in.locale : req_lang(r);
	nw.password = in.password;
	/* Checked and hashed before the transaction: a hash takes about ten
	 * milliseconds of a core, too long to hold the write lock. */
	if (!(err = identity_account_check(&nw, &code)) && (err = identity_password_hash(in.password, hash, &retry)))
		code = err == EGOV_EBUSY ? "identity.busy" : NULL;
	nw.password = NULL;
	nw.password_hash = hash;
	if (err == EGOV_EBUSY)
		return problem_retry(r, "identity.busy", retry);
	if (err && code)
		goto refused;
	if (err || (err = conn(&c)) || (err = db_begin(c)))
		goto out;
	if ((err = identity_account_create(c, &nw, &a, &code, &retry))) {
		db_rollback(c);
		if (code)
			goto refused;
		goto out;
	}
	identity_actor_of(a.id, actor);
	if (!(err = identity_token_issue(c, IDENTITY_TOKEN_VERIFY_EMAIL, a.id, IDENTITY_VERIFY_TTL_S, token))) {
		link_for(link, sizeof link, "/verify.html", token, r);
		if (!(err = identity_mail_send(c, a.email, "verify_email", a.locale, link)))
			err = identity_audit(r, c, actor, "identity.register", actor, "kind", "resident");
	}
	if ((err = db_end(c, err)))
		goto out;
	buf_init(&b, 16 * 1024);
	jw_init(&w, &b);
	write_account(&w, &a);
	err = answer(r, 201, &b, &w);
	goto out;
refused:
	field = strncmp(code, "identity.password", 17) == 0 ? "password"
		: strcmp(code, "identity.name_invalid") == 0 ? "name"
		: strcmp(code, "identity.locale_invalid") == 0 ? "locale" : "email";
	err = resp_problem(r, egov_err_http_status(err), code, field, NULL);
out:
	sodium_memzero(hash, sizeof hash);
	return err;
}

typedef struct token_in {
	const char *token, *password;
} token_in;

static const json_field verify_fields[] = {
	{.name = "token", .type = JSON_T_STRING, .offset = offsetof(token_in, token), .required = true,
	 .max_len = IDENTITY_TOKEN_FIELD_MAX},
};

egov_err identity_api_verify_email(req *r)
{
	token_in in = {0};
	char id[37], actor[48];
	db_conn *c = NULL;
	egov_err err;

	if ((err = req_json(r, verify_fields, 1, &in)))
		return err;
	if ((err = conn(&c)) || (err = db_begin(c)))
		return err;
	err = identity_token_consume(c, IDENTITY_TOKEN_VERIFY_EMAIL, in.token, id);
	if (err == EGOV_EINVAL) {
		db_rollback(c);
		return resp_problem(r, 400, "identity.token_invalid", "token", NULL);
	}
	if (!err && !(err = identity_account_set_email_verified(c, id))) {
		identity_actor_of(id, actor);
		err = identity_audit(r, c, actor, "identity.email_verified", actor, NULL, NULL);
	}
	if ((err = db_end(c, err)))
		return err;
	return resp_empty(r, 204);
}

/* ---- login --------------------------------------------------------------------- */

typedef struct login_in {
	const char *email, *password;
} login_in;

static const json_field login_fields[] = {
	{.name = "email", .type = JSON_T_STRING, .offset = offsetof(login_in, email), .required = true,
	 .max_len = IDENTITY_EMAIL_FIELD_MAX},
	{.name = "password", .type = JSON_T_STRING, .offset = offsetof(login_in, password), .required = true,
	 .max_len = IDENTITY_PASSWORD_FIELD_MAX},
};

/* Sets the cookie and answers with the account, session and CSRF token. */
static egov_err answer_session(req *r, const identity_account *a, const identity_session *s, const char *token)
{
	char cookie[256];
	buf b;
	jw w;

	identity_session_cookie(token, (int)((s->expires_us - s->created_us) / 1000000), cookie, sizeof cookie);
	resp_header(r, "Set-Cookie", cookie);
	resp_header(r, "Cache-Control", "no-store");
	buf_init(&b, 16 * 1024);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_key(&w, "account");
	write_account(&w, a);
	jw_key(&w, "session");
	write_session(&w, s, true);
	jw_kstr(&w, "csrf", s->csrf);
	jw_obj_end(&w);
	return answer(r, 200, &b, &w);
}

/* A login's session, its counters and its audit record, committed
 * together through db_batch(): concurrent logins share one commit and one
 * flush (SQLite), and the cookie leaves only once its session and record
 * are durable. Runs on the batch's connection, inside its transaction. */
typedef struct login_job {
	req *r;
	const identity_login_attempt *att;
	const identity_account *a;
	bool pending;            /* the password is right, TOTP to come */
	const char *ua;
	char *token;
	identity_session *s;
} login_job;

static egov_err login_job_run(db_conn *c, void *ctx)
{
	login_job *j = ctx;
	char actor[48];
	egov_err err;

	identity_actor_of(j->a->id, actor);
	if ((err = identity_login_count(c, j->att, NULL)) ||
	    (err = identity_session_create(c, j->a->id, 1, j->pending, req_remote_ip(j->r), j->ua, j->token, j->s)))
		return err;
	return j->pending ? identity_audit(j->r, c, actor, "identity.login_password_ok", actor, "next", "totp")
			  : identity_audit(j->r, c, actor, "identity.login", actor, "acr", "1");
}

/* A refused login: the failure counted (and a lock, which mails the owner)
 * and audited in one transaction; a refusal that counts nothing (a
 * disabled account, the right password of a locked one) only audited. */
static egov_err login_refused(req *r, const identity_login_attempt *att, const identity_account *a,
			      const char *email, const char *code)
{
	char actor[48];
	bool locked_now = false;
	db_conn *c = NULL;
	egov_err err;

	if (!att->failed && code && strcmp(code, "identity.bad_credentials") == 0)
		return identity_audit(r, NULL, "anonymous", "identity.login_failed", "login", "email", email);
	if (!att->failed)
		return identity_audit(r, NULL, "anonymous", "identity.login_refused", "login", "code", code);
	if ((err = conn(&c)) || (err = db_begin(c)))
		return err;
	if (!(err = identity_login_count(c, att, &locked_now)) &&
	    !(err = identity_audit(r, c, "anonymous", "identity.login_failed", "login", "email", email)) && locked_now) {
		identity_actor_of(a->id, actor);
		err = identity_audit(r, c, "system", "identity.account_locked", actor, NULL, NULL);
	}
	return db_end(c, err);
}

static egov_err api_login(req *r)
{
	login_in in = {0};
	identity_login_attempt att;
	identity_account a;
	identity_session s;
	char token[IDENTITY_TOKEN_LEN + 1], cookie[256];
	const char *code = NULL, *ua = req_header(r, "User-Agent");
	int64_t retry = 0;
	db_conn *c = NULL;
	login_job job;
	buf b;
	jw w;
	egov_err err;

	if ((err = req_json(r, login_fields, 2, &in)))
		return err;
	if ((err = conn(&c)))
		return err;
	err = identity_login_check(c, in.email, in.password, req_remote_ip(r), &a, &att, &code, &retry);
	if (err == EGOV_EBUSY)
		return problem_retry(r, code ? code : "identity.busy", retry);
	if (err == EGOV_EAUTH || err == EGOV_EPERM) {
		egov_err e2 = login_refused(r, &att, &a, in.email, code);
		if (e2)
			return e2;
		return resp_problem(r, err == EGOV_EAUTH ? 401 : 403, code, NULL, NULL);
	}
	if (err)
		return err;
	if (a.kind == IDENTITY_RESIDENT && !a.email_verified)
		return resp_problem(r, 403, "identity.email_unverified", NULL, NULL);
	job = (login_job){.r = r, .att = &att, .a = &a, .pending = a.totp_enabled, .ua = ua ? ua : "", .token = token,
			  .s = &s};
	if ((err = db_batch(app()->db, login_job_run, &job)))
		return err;
	if (!a.totp_enabled)
		return answer_session(r, &a, &s, token);
	identity_session_cookie(token, IDENTITY_SESSION_PENDING_S, cookie, sizeof cookie);
	resp_header(r, "Set-Cookie", cookie);
	resp_header(r, "Cache-Control", "no-store");
	buf_init(&b, 1024);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_kstr(&w, "next", "totp");
	jw_obj_end(&w);
	return answer(r, 200, &b, &w);
}

typedef struct totp_in {
	const char *code, *recovery_code;
} totp_in;

static const json_field totp_fields[] = {
	{.name = "code", .type = JSON_T_STRING, .offset = offsetof(totp_in, code), .max_len = IDENTITY_TOTP_FIELD_MAX},
	{.name = "recovery_code", .type = JSON_T_STRING, .offset = offsetof(totp_in, recovery_code),
	 .max_len = IDENTITY_RECOVERY_FIELD_MAX},
};

egov_err identity_api_login_totp(req *r)
{
	totp_in in = {0};
	identity_session pend, s;
	identity_account a;
	char token[IDENTITY_TOKEN_LEN + 1], actor[48];
	const char *ua = req_header(r, "User-Agent");
	int64_t retry = 0;
	db_conn *c = NULL;
	bool locked_now = false;
	int left = -1;
	egov_err err;

	if ((err = req_json(r, totp_fields, 2, &in)))
		return err;
	if (!in.code == !in.recovery_code)
		return resp_problem(r, 400, "validation.invalid_field", "code", "code or recovery_code");
	/* The second step of a login: the pending session is its half-made
	 * credential, so this route is public and looks for it here. */
	err = identity_session_any_from_req(r, &pend);
	if (err == EGOV_EAUTH || (!err && !pend.pending))
		return resp_problem(r, 401, "unauthorized", NULL, NULL);
	if (err || (err = conn(&c)) || (err = identity_account_get(c, pend.account_id, &a)))
		return err;
	/* The second factor is guessable too: it shares the account's
	 * throttle with the password. */
	if ((err = identity_throttle_check(c, a.email, req_remote_ip(r), &retry)) == EGOV_EBUSY)
		return problem_retry(r, "identity.throttled", retry);
	if (err)
		return err;
	identity_actor_of(a.id, actor);
	if ((err = db_begin(c)))
		return err;
	err = in.code ? identity_totp_verify(c, a.id, in.code) : identity_recovery_use(c, a.id, in.recovery_code, &left);
	if (err == EGOV_EINVAL) {
		if (!(err = identity_throttle_fail(c, a.email, a.id, req_remote_ip(r), &locked_now)) &&
		    !(err = identity_audit(r, c, actor, "identity.totp_failed", actor, NULL, NULL)) && locked_now)
			err = identity_audit(r, c, "system", "identity.account_locked", actor, NULL, NULL);
		if ((err = db_end(c, err)))
			return err;
		return resp_problem(r, 401, "identity.totp_invalid", in.code ? "code" : "recovery_code", NULL);
	}
	if (!err && !(err = identity_throttle_success(c, a.email)) && !(err = identity_session_revoke(c, a.id, pend.id)) &&
	    !(err = identity_session_create(c, a.id, 2, false, req_remote_ip(r), ua ? ua : "", token, &s)))
		err = identity_audit(r, c, actor, in.code ? "identity.login" : "identity.login_recovery_code", actor,
				     "acr", "2");
	if ((err = db_end(c, err)))
		return err;
	return answer_session(r, &a, &s, token);
}

egov_err identity_api_logout(req *r)
{
	const identity_session *s;
	char cookie[256], actor[48];
	db_conn *c = NULL;
	egov_err err;

	if ((err = caller(r, &s)) || (err = conn(&c)) || (err = db_begin(c)))
		return err;
	identity_actor_of(s->account_id, actor);
	if (!(err = identity_session_revoke(c, s->account_id, s->id)))
		err = identity_audit(r, c, actor, "identity.logout", actor, "session", s->id);
	if ((err = db_end(c, err)))
		return err;
	identity_session_cookie(NULL, 0, cookie, sizeof cookie);
	resp_header(r, "Set-Cookie", cookie);
	return resp_empty(r, 204);
}

/* ---- password reset -------------------------------------------------------------- */

typedef struct email_in {
	const char *email;
} email_in;

static const json_field email_fields[] = {
	{.name = "email", .type = JSON_T_STRING, .offset = offsetof(email_in, email), .required = true,
	 .max_len = IDENTITY_EMAIL_FIELD_MAX},
};

egov_err identity_api_reset_request(req *r)
{
	email_in in = {0};
	identity_account a;
	char token[IDENTITY_TOKEN_LEN + 1], link[1024], actor[48];
	db_conn *c = NULL;
	egov_err err;

	if ((err = req_json(r, email_fields, 1, &in)))
		return err;
	if ((err = conn(&c)))
		return err;
	err = identity_account_get_by_email(c, in.email, &a);
	if (err == EGOV_OK && !a.disabled) {
		if ((err = db_begin(c)))
			return err;
		identity_actor_of(a.id, actor);
		if (!(err = identity_token_issue(c, IDENTITY_TOKEN_RESET_PASSWORD, a.id, IDENTITY_RESET_TTL_S, token))) {
			link_for(link, sizeof link, "/reset.html", token, r);
			if (!(err = identity_mail_send(c, a.email, "reset_password", a.locale, link)))
				err = identity_audit(r, c, "anonymous", "identity.password_reset_requested", actor, NULL,
						     NULL);
		}
		if ((err = db_end(c, err)))
			return err;
	} else if (err && err != EGOV_ENOTFOUND) {
		return err;
	}
	return resp_empty(r, 202);
}

static const json_field reset_fields[] = {
	{.name = "token", .type = JSON_T_STRING, .offset = offsetof(token_in, token), .required = true,
	 .max_len = IDENTITY_TOKEN_FIELD_MAX},
	{.name = "password", .type = JSON_T_STRING, .offset = offsetof(token_in, password), .required = true,
	 .max_len = IDENTITY_PASSWORD_FIELD_MAX},
};

static egov_err api_reset_confirm(req *r)
{
	token_in in = {0};
	identity_account a;
	char id[37], actor[48], hash[128] = "";
	const char *code = NULL;
	int64_t retry = 0;
	db_conn *c = NULL;
	egov_err err;

	if ((err = req_json(r, reset_fields, 2, &in)))
		return err;
	/* Policy first, so a weak password does not burn the token. */
	if (identity_password_policy(in.password, &code))
		return resp_problem(r, 400, code, "password", NULL);
	if ((err = conn(&c)))
		return err;
	/* A dead token costs no hash; a live one is hashed for before the
	 * transaction that spends it (which still settles a race for it). */
	err = identity_token_peek(c, IDENTITY_TOKEN_RESET_PASSWORD, in.token);
	if (err == EGOV_EINVAL)
		return resp_problem(r, 400, "identity.token_invalid", "token", NULL);
	if (err)
		return err;
	err = identity_password_hash(in.password, hash, &retry);
	if (err == EGOV_EBUSY)
		return problem_retry(r, "identity.busy", retry);
	if (err || (err = db_begin(c)))
		goto out;
	err = identity_token_consume(c, IDENTITY_TOKEN_RESET_PASSWORD, in.token, id);
	if (err == EGOV_EINVAL) {
		db_rollback(c);
		err = resp_problem(r, 400, "identity.token_invalid", "token", NULL);
		goto out;
	}
	identity_actor_of(id, actor);
	/* The mail proves control of the address. */
	if (!err && !(err = identity_password_set_hash(c, id, hash)) && !(err = identity_account_set_email_verified(c, id)) &&
	    !(err = identity_session_revoke_all(c, id, NULL, NULL)) && !(err = identity_account_get(c, id, &a)) &&
	    !(err = identity_mail_send(c, a.email, "password_changed", a.locale, NULL)))
		err = identity_audit(r, c, actor, "identity.password_reset", actor, NULL, NULL);
	if (!(err = db_end(c, err)))
		err = resp_empty(r, 204);
out:
	sodium_memzero(hash, sizeof hash);
	return err;
}

/* ---- me and sessions --------------------------------------------------------------- */

static int add_grant(void *ctx, const identity_grant *g)
{
	jw *w = ctx;
	jw_obj_begin(w);
	jw_kstr(w, "role", g->role);
	jw_kstr(w, "dept", g->dept);
	jw_obj_end(w);
	return 0;
}

egov_err identity_api_me(req *r)
{
	const identity_session *s;
	identity_account a;
	db_conn *c = NULL;
	buf b;
	jw w;
	egov_err err;

	if ((err = caller(r, &s)) || (err = conn(&c)) || (err = identity_account_get(c, s->account_id, &a)))
		return err;
	resp_header(r, "Cache-Control", "no-store");
	buf_init(&b, 64 * 1024);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_key(&w, "account");
	write_account(&w, &a);
	jw_key(&w, "session");
	write_session(&w, s, true);
	jw_kstr(&w, "csrf", s->csrf);
	jw_key(&w, "grants");
	jw_arr_begin(&w);
	err = identity_role_list(c, a.id, add_grant, &w);
	jw_arr_end(&w);
	jw_obj_end(&w);
	if (err) {
		buf_release(&b);
		return err;
	}
	return answer(r, 200, &b, &w);
}

typedef struct list_ctx {
	jw *w;
	const char *current;
} list_ctx;

static int add_session(void *ctx, const identity_session *s)
{
	list_ctx *l = ctx;
	write_session(l->w, s, strcmp(s->id, l->current) == 0);
	return 0;
}

egov_err identity_api_sessions(req *r)
{
	const identity_session *s;
	db_conn *c = NULL;
	list_ctx l;
	buf b;
	jw w;
	egov_err err;

	if ((err = caller(r, &s)) || (err = conn(&c)))
		return err;
	buf_init(&b, EGOV_RESPONSE_MAX);
	jw_init(&w, &b);
	l.w = &w;
	l.current = s->id;
	jw_obj_begin(&w);
	jw_key(&w, "items");
	jw_arr_begin(&w);
	err = identity_session_list(c, s->account_id, add_session, &l);
	jw_arr_end(&w);
	jw_obj_end(&w);
	if (err) {
		buf_release(&b);
		return err;
	}
	return answer(r, 200, &b, &w);
}

egov_err identity_api_session_revoke(req *r)
{
	const identity_session *s;
	const char *id = req_param(r, "id");
	char actor[48];
	db_conn *c = NULL;
	egov_err err;

	if ((err = caller(r, &s)) || (err = conn(&c)))
		return err;
	if (!uuid_valid(id))
		return resp_problem(r, 404, "not_found", NULL, NULL);
	if ((err = db_begin(c)))
		return err;
	err = identity_session_revoke(c, s->account_id, id);
	if (err == EGOV_ENOTFOUND) {
		db_rollback(c);
		return resp_problem(r, 404, "not_found", NULL, NULL);
	}
	identity_actor_of(s->account_id, actor);
	if (!err)
		err = identity_audit(r, c, actor, "identity.session_revoke", actor, "session", id);
	if ((err = db_end(c, err)))
		return err;
	return resp_empty(r, 204);
}

egov_err identity_api_session_revoke_all(req *r)
{
	const identity_session *s;
	char actor[48];
	int64_t n = 0;
	db_conn *c = NULL;
	buf b;
	jw w;
	egov_err err;

	if ((err = caller(r, &s)) || (err = conn(&c)) || (err = db_begin(c)))
		return err;
	identity_actor_of(s->account_id, actor);
	if (!(err = identity_session_revoke_all(c, s->account_id, s->id, &n)))
		err = identity_audit(r, c, actor, "identity.session_revoke_all", actor, "kept", s->id);
	if ((err = db_end(c, err)))
		return err;
	buf_init(&b, 256);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_kint(&w, "revoked", n);
	jw_obj_end(&w);
	return answer(r, 200, &b, &w);
}

/* ---- TOTP ---------------------------------------------------------------------------- */

static void write_codes(jw *w, char codes[IDENTITY_RECOVERY_CODES][IDENTITY_RECOVERY_CODE_LEN + 1])
{
	int i;

	jw_obj_begin(w);
	jw_key(w, "recovery_codes");
	jw_arr_begin(w);
	for (i = 0; i < IDENTITY_RECOVERY_CODES; i++)
		jw_str(w, codes[i]);
	jw_arr_end(w);
	jw_obj_end(w);
}

egov_err identity_api_totp_enrol(req *r)
{
	const identity_session *s;
	char secret[IDENTITY_TOTP_SECRET_B32 + 1], actor[48];
	db_conn *c = NULL;
	buf uri, svg, b;
	jw w;
	egov_err err;

	if ((err = caller(r, &s)) || (err = conn(&c)))
		return err;
	buf_init(&uri, 4096);
	buf_init(&svg, 1 << 20);
	buf_init(&b, 2 << 20);
	jw_init(&w, &b);
	if ((err = db_begin(c)))
		goto out;
	identity_actor_of(s->account_id, actor);
	if (!(err = identity_totp_enrol_begin(c, s->account_id, secret, &uri, &svg)))
		err = identity_audit(r, c, actor, "identity.totp_enrol_begin", actor, NULL, NULL);
	if ((err = db_end(c, err)))
		goto out;
	resp_header(r, "Cache-Control", "no-store");
	jw_obj_begin(&w);
	jw_kstr(&w, "secret", secret);
	jw_kstr(&w, "uri", uri.data);
	jw_kstr(&w, "qr_svg", svg.data);
	jw_obj_end(&w);
	err = answer(r, 200, &b, &w);
out:
	sodium_memzero(secret, sizeof secret);
	buf_release(&uri);
	buf_release(&svg);
	buf_release(&b);
	return err;
}

egov_err identity_api_totp_confirm(req *r)
{
	const identity_session *s;
	totp_in in = {0};
	char codes[IDENTITY_RECOVERY_CODES][IDENTITY_RECOVERY_CODE_LEN + 1], actor[48];
	db_conn *c = NULL;
	buf b;
	jw w;
	egov_err err;

	if ((err = caller(r, &s)))
		return err;
	if ((err = req_json(r, totp_fields, 1, &in)) || (err = conn(&c)) || (err = db_begin(c)))
		return err;
	err = identity_totp_enrol_confirm(c, s->account_id, in.code, codes);
	if (err == EGOV_EINVAL || err == EGOV_ENOTFOUND) {
		db_rollback(c);
		return resp_problem(r, 400, "identity.totp_invalid", "code", NULL);
	}
	identity_actor_of(s->account_id, actor);
	if (!err)
		err = identity_audit(r, c, actor, "identity.totp_enabled", actor, NULL, NULL);
	if ((err = db_end(c, err))) {
		sodium_memzero(codes, sizeof codes);
		return err;
	}
	resp_header(r, "Cache-Control", "no-store");
	buf_init(&b, 4096);
	jw_init(&w, &b);
	write_codes(&w, codes);
	sodium_memzero(codes, sizeof codes);
	return answer(r, 200, &b, &w);
}

egov_err identity_api_totp_disable(req *r)
{
	const identity_session *s;
	totp_in in = {0};
	char actor[48];
	db_conn *c = NULL;
	egov_err err;

	if ((err = caller(r, &s)))
		return err;
	if ((err = req_json(r, totp_fields, 1, &in)) || (err = conn(&c)) || (err = db_begin(c)))
		return err;
	/* Turning the factor off takes the factor. */
	err = identity_totp_verify(c, s->account_id, in.code);
	if (err == EGOV_EINVAL) {
		db_rollback(c);
		return resp_problem(r, 400, "identity.totp_invalid", "code", NULL);
	}
	identity_actor_of(s->account_id, actor);
	if (!err && !(err = identity_totp_disable(c, s->account_id)))
		err = identity_audit(r, c, actor, "identity.totp_disabled", actor, NULL, NULL);
	if ((err = db_end(c, err)))
		return err;
	return resp_empty(r, 204);
}

egov_err identity_api_recovery_regenerate(req *r)
{
	const identity_session *s;
	identity_account a;
	char codes[IDENTITY_RECOVERY_CODES][IDENTITY_RECOVERY_CODE_LEN + 1], actor[48];
	db_conn *c = NULL;
	buf b;
	jw w;
	egov_err err;

	if ((err = caller(r, &s)) || (err = conn(&c)) || (err = identity_account_get(c, s->account_id, &a)))
		return err;
	if (!a.totp_enabled)
		return resp_problem(r, 409, "identity.totp_not_enabled", NULL, NULL);
	identity_actor_of(a.id, actor);
	if ((err = db_begin(c)))
		return err;
	if (!(err = identity_recovery_regenerate(c, a.id, codes)))
		err = identity_audit(r, c, actor, "identity.recovery_codes_regenerated", actor, NULL, NULL);
	if ((err = db_end(c, err))) {
		sodium_memzero(codes, sizeof codes);
		return err;
	}
	resp_header(r, "Cache-Control", "no-store");
	buf_init(&b, 4096);
	jw_init(&w, &b);
	write_codes(&w, codes);
	sodium_memzero(codes, sizeof codes);
	return answer(r, 200, &b, &w);
}

/* ---- routes that hash a password ----------------------------------------------------------- */

/* Routes that hash a password: the gate reserves the request's place in the
 * hashing queue on the HTTP worker, or answers 429 there when every slot is
 * busy and the queue is full (before the request would wait for a pool
 * thread, and before its body is parsed: an overloaded server need not read
 * it to refuse it). Requests on their way to a pool thread hold their place,
 * so none is refused later, after the wait. The kernel gives the place back
 * if the handler never runs. */
egov_err identity_hash_gate(req *r)
{
	int64_t retry = 0;

	if (!identity_admission_reserve(&retry))
		return problem_retry(r, "identity.busy", retry);
	req_gate_hold(r, identity_admission_unreserve);
	return EGOV_OK;
}

/* The handler of a hashing route, on the pool thread: takes over the place
 * its gate reserved, and gives it back if it answered without hashing. */
static egov_err with_place(req *r, egov_err (*handler)(req *))
{
	egov_err err;

	if (req_gate_take(r))
		identity_admission_adopt();
	err = handler(r);
	identity_admission_unadopt();
	return err;
}

egov_err identity_api_register_placed(req *r)
{
	return with_place(r, api_register);
}

egov_err identity_api_login_placed(req *r)
{
	return with_place(r, api_login);
}

egov_err identity_api_reset_confirm_placed(req *r)
{
	return with_place(r, api_reset_confirm);
}
