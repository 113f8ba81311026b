/*
 * identity_session.c: server-side sessions, CSRF tokens, and the router's
 * authenticator of sessions and check of permissions.
 *
 * Invariants:
 * - The cookie carries 256 random bits; the table keeps only their SHA-256,
 *   so a database leak yields no usable session.
 * - A session is live while now < expires (absolute, set at creation from
 *   the acr) and now - last_seen <= IDENTITY_SESSION_IDLE_S. A lookup that
 *   finds it dead deletes it.
 * - A pending session (password right, second factor awaited) authorises
 *   nothing but the TOTP step; the full session that follows gets a new id,
 *   so an id seen before the second factor is worthless after it.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/app.h"
#include "core/crypto.h"
#include "core/timeutil.h"
#include "identity/identity_int.h"
#include "core/banned.h"

static bool cookie_secure;

void identity_set_cookie_secure(bool secure)
{
	cookie_secure = secure;
}

void identity_session_cookie(const char *token, int max_age_s, char *out, size_t len)
{
	snprintf(out, len, "%s=%s; Path=/; HttpOnly; SameSite=Lax; Max-Age=%d%s", IDENTITY_SESSION_COOKIE,
		 token ? token : "", token ? max_age_s : 0, cookie_secure ? "; Secure" : "");
}

egov_err identity_session_create(db_conn *c, const char *account_id, int acr, bool pending, const char *ip,
				 const char *user_agent, char token_out[IDENTITY_TOKEN_LEN + 1],
				 identity_session *out)
{
	char hash[65];
	int64_t now = identity_now_us(), life_s;
	egov_err err;

	memset(out, 0, sizeof *out);
	if ((err = identity_random_token(token_out)) || (err = identity_random_token(out->csrf)) ||
	    (err = uuid_v7(out->id)))
		return err;
	if (pending)
		life_s = IDENTITY_SESSION_PENDING_S;
	else
		life_s = acr >= 2 ? IDENTITY_SESSION_ABS_AAL2_S : IDENTITY_SESSION_ABS_AAL1_S;
	identity_copy(out->account_id, sizeof out->account_id, account_id);
	out->acr = pending ? 0 : acr;
	out->pending = pending;
	out->auth_time_us = out->created_us = out->last_seen_us = now;
	out->expires_us = now + life_s * 1000000;
	identity_copy(out->ip, sizeof out->ip, ip);
	identity_copy(out->user_agent, sizeof out->user_agent, user_agent);
	identity_hash_hex(token_out, hash);
	{
		db_param p[] = {DBP_S(hash),          DBP_S(out->id),         DBP_S(account_id),
				DBP_I(out->acr),       DBP_I(pending ? 1 : 0), DBP_S(out->csrf),
				DBP_I(now),            DBP_I(now),             DBP_I(now),
				DBP_I(out->expires_us), DBP_S(out->ip),        DBP_S(out->user_agent)};
		err = db_exec(c,
			      "INSERT INTO identity_session (token_hash, id, account_id, acr, pending, csrf, auth_time,"
			      " created, last_seen, expires, ip, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			      p, 12, NULL);
	}
	return err;
}

#define SESSION_COLS                                                                                  \
	"s.id, s.account_id, s.acr, s.pending, s.csrf, s.auth_time, s.created, s.last_seen, s.expires, s.ip," \
	" s.user_agent"

static void read_session(db_rows *rows, identity_session *s)
{
	memset(s, 0, sizeof *s);
	identity_copy(s->id, sizeof s->id, db_rows_text(rows, 0));
	identity_copy(s->account_id, sizeof s->account_id, db_rows_text(rows, 1));
	s->acr = (int)db_rows_int(rows, 2);
	s->pending = db_rows_int(rows, 3) != 0;
	identity_copy(s->csrf, sizeof s->csrf, db_rows_text(rows, 4));
	s->auth_time_us = db_rows_int(rows, 5);
	s->created_us = db_rows_int(rows, 6);
	s->last_seen_us = db_rows_int(rows, 7);
	s->expires_us = db_rows_int(rows, 8);
	identity_copy(s->ip, sizeof s->ip, db_rows_text(rows, 9));
	identity_copy(s->user_agent, sizeof s->user_agent, db_rows_text(rows, 10));
}

static int session_dead(const identity_session *s, int64_t now)
{
	return now >= s->expires_us || now - s->last_seen_us > (int64_t)IDENTITY_SESSION_IDLE_S * 1000000;
}

egov_err identity_session_lookup(db_conn *c, const char *token, identity_session *out)
{
	char hash[65];
	db_rows *rows = NULL;
	bool has = false, disabled = false;
	int64_t now = identity_now_us();
	egov_err err;

	if (!token || strlen(token) != IDENTITY_TOKEN_LEN)
		return EGOV_EAUTH;
	identity_hash_hex(token, hash);
	{
		db_param p[] = {DBP_S(hash)};
		if ((err = db_query(c,
				    "SELECT " SESSION_COLS ", a.disabled, a.email FROM identity_session s"
				    " JOIN identity_account a ON a.id = s.account_id WHERE s.token_hash = ?",
				    p, 1, &rows)) ||
		    (err = db_rows_next(rows, &has)))
			goto out;
	}
	if (!has) {
		err = EGOV_EAUTH;
		goto out;
	}
	read_session(rows, out);
	disabled = db_rows_int(rows, 11) != 0;
	identity_copy(out->email, sizeof out->email, db_rows_text(rows, 12));
	db_rows_free(rows);
	rows = NULL;
	if (disabled || session_dead(out, now)) {
		db_param p[] = {DBP_S(hash)};
		err = db_exec(c, "DELETE FROM identity_session WHERE token_hash = ?", p, 1, NULL);
		if (!err)
			err = EGOV_EAUTH;
		goto out;
	}
	if (now - out->last_seen_us > (int64_t)IDENTITY_SESSION_TOUCH_S * 1000000) {
		db_param p[] = {DBP_I(now), DBP_S(hash)};
		if ((err = db_exec(c, "UPDATE identity_session SET last_seen = ? WHERE token_hash = ?", p, 2, NULL)))
			goto out;
		out->last_seen_us = now;
	}
out:
	db_rows_free(rows);
	return err;
}

egov_err identity_session_any_from_req(req *r, identity_session *out)
{
	const char *tok = req_cookie(r, IDENTITY_SESSION_COOKIE);
	db_conn *c = NULL;
	egov_err err;

	if (!tok || !app()->db)
		return EGOV_EAUTH;
	if ((err = db_thread_conn(app()->db, &c)))
		return err;
	return identity_session_lookup(c, tok, out);
}

egov_err identity_session_from_req(req *r, identity_session *out)
{
	egov_err err = identity_session_any_from_req(r, out);

	if (!err && out->pending)
		err = EGOV_EAUTH;
	return err;
}

egov_err identity_session_revoke(db_conn *c, const char *account_id, const char *session_id)
{
	db_param p[] = {DBP_S(session_id), DBP_S(account_id)};
	int64_t n = 0;
	egov_err err;

	if ((err = db_exec(c, "DELETE FROM identity_session WHERE id = ? AND account_id = ?", p, 2, &n)))
		return err;
	return n ? EGOV_OK : EGOV_ENOTFOUND;
}

egov_err identity_session_revoke_all(db_conn *c, const char *account_id, const char *except_id, int64_t *n)
{
	db_param p[] = {DBP_S(account_id), DBP_S(except_id ? except_id : "")};

	return db_exec(c, "DELETE FROM identity_session WHERE account_id = ? AND id <> ?", p, 2, n);
}

egov_err identity_session_list(db_conn *c, const char *account_id,
			       int (*fn)(void *ctx, const identity_session *s), void *ctx)
{
	db_rows *rows = NULL;
	identity_session s;
	bool has = false;
	int64_t now = identity_now_us();
	egov_err err;

	{
		db_param p[] = {DBP_S(account_id)};
		if ((err = db_query(c,
				    "SELECT " SESSION_COLS " FROM identity_session s WHERE s.account_id = ?"
				    " AND s.pending = 0 ORDER BY s.created DESC",
				    p, 1, &rows)))
			goto out;
	}
	while (!(err = db_rows_next(rows, &has)) && has) {
		read_session(rows, &s);
		if (session_dead(&s, now))
			continue;
		if (fn(ctx, &s))
			break;
	}
out:
	db_rows_free(rows);
	return err;
}

/* The "csrf" field of a form body (tokens are base64url: no decoding). */
static const char *form_csrf(req *r, char *out, size_t n)
{
	size_t len = 0;
	const char *b = req_body(r, &len), *p, *end;

	if (!b)
		return NULL;
	end = b + len;
	for (p = b; p < end;) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp ? amp : end;
		if ((size_t)(stop - p) > 5 && memcmp(p, "csrf=", 5) == 0) {
			size_t l = (size_t)(stop - p - 5);
			if (l >= n)
				return NULL;
			memcpy(out, p + 5, l);
			out[l] = '\0';
			return out;
		}
		p = stop + 1;
	}
	return NULL;
}

static egov_err csrf_check(req *r, const char *expected)
{
	char field[IDENTITY_TOKEN_LEN + 2];
	const char *t = req_header(r, "X-CSRF-Token");
	const char *ct = req_header(r, "Content-Type");

	if (!t && ct && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0)
		t = form_csrf(r, field, sizeof field);
	if (!t || !expected[0])
		return EGOV_EPERM;
	return crypto_streq(t, expected) ? EGOV_OK : EGOV_EPERM;
}

egov_err identity_csrf_check(req *r, const identity_session *s)
{
	return csrf_check(r, s->csrf);
}

egov_err identity_csrf_check_principal(req *r)
{
	const principal *p = req_principal(r);

	return p->kind == PRINCIPAL_SESSION ? csrf_check(r, p->csrf) : EGOV_EPERM;
}

/* ---- the router's authenticator and permission check ---------------------- */

static int safe_method(const req *r)
{
	http_method m = req_method(r);
	return m == HTTP_GET || m == HTTP_HEAD || m == HTTP_OPTIONS;
}

/* Sessions for the router (AUTH_SESSION): the full session of the egov_sid
 * cookie, and with AUTH_CSRF its token. The session itself goes along as
 * the principal's detail, for identity_req_session(). */
static egov_err session_authenticate(req *r, unsigned auth, const char *perm, const char *scope, principal *p,
				     const char **code)
{
	identity_session *s;
	egov_err err;

	(void)perm;
	(void)scope;
	if (!req_cookie(r, IDENTITY_SESSION_COOKIE))
		return EGOV_ENOTFOUND;
	if (!(s = arena_alloc(req_arena(r), sizeof *s)))
		return EGOV_ENOMEM;
	if ((err = identity_session_from_req(r, s)))
		return err;
	/* A cookie rides along with cross-site requests; the token does
	 * not. */
	if ((auth & AUTH_CSRF) && !safe_method(r) && identity_csrf_check(r, s)) {
		*code = "identity.csrf";
		return EGOV_EPERM;
	}
	p->kind = PRINCIPAL_SESSION;
	identity_copy(p->account_id, sizeof p->account_id, s->account_id);
	identity_copy(p->email, sizeof p->email, s->email);
	identity_copy(p->session_id, sizeof p->session_id, s->id);
	identity_copy(p->csrf, sizeof p->csrf, s->csrf);
	p->acr = s->acr;
	p->auth_time = s->auth_time_us / 1000000;
	p->detail = s;
	return EGOV_OK;
}

/* Roles for the router: whether the caller's account holds perm. */
static egov_err permission_check(req *r, const principal *p, const char *perm, bool *allowed)
{
	db_conn *c = NULL;
	egov_err err;

	(void)r;
	*allowed = false;
	if ((err = db_thread_conn(app()->db, &c)))
		return err;
	return identity_permission_has(c, p->account_id, perm, NULL, allowed);
}

void identity_auth_install(void)
{
	http_set_authenticator(AUTH_SESSION, session_authenticate);
	http_set_permission_check(permission_check);
}

const identity_session *identity_req_session(const req *r)
{
	const principal *p = req_principal(r);

	return p->kind == PRINCIPAL_SESSION ? p->detail : NULL;
}

egov_err identity_principal_from_req(req *r, identity_principal *out)
{
	const principal *p = NULL;
	egov_err err;

	memset(out, 0, sizeof *out);
	if ((err = req_authenticate(r, AUTH_API, &p, NULL)))
		return err;
	out->operator_token = p->kind == PRINCIPAL_OPERATOR;
	identity_copy(out->account_id, sizeof out->account_id, p->account_id);
	identity_copy(out->session_id, sizeof out->session_id, p->session_id);
	out->acr = p->acr;
	return EGOV_OK;
}
