/*
 * identity_cert.c: certificate login (assurance level 3): the client
 * certificate of the request (mutual TLS, or a trusted proxy's header) is
 * verified by the PKI and mapped to an account, which gets a session at
 * acr 3. Routes:
 *   GET|POST /api/v1/identity/login/certificate  JSON, as the password login
 *   GET      /login/certificate?return=/path     303 to the same-origin path
 *   POST     /api/v1/identity/me/certificate-link            link the presented
 *            external certificate to the session's account (acr >= 2, CSRF)
 *   GET      /api/v1/identity/me/certificate-links           the account's links
 *   DELETE   /api/v1/identity/me/certificate-links/{serial}  unlink (CSRF)
 *
 * Invariants:
 * - Trust is decided by pki_verify_chain() only (chain to the platform root
 *   or a configured anchor, validity now, EKU clientAuth, revocation in our
 *   database), never by the TLS library or the proxy.
 * - A certificate this platform issued maps to the account named by its
 *   subject UID (the owner the PKI recorded). A foreign anchor's UID means
 *   nothing here: a certificate from an external anchor maps only through
 *   an explicit link (identity_cert_link, by issuer and serial, with the
 *   public key's hash matching), which the account's owner made from a
 *   session of acr >= 2 while presenting that certificate. Anything else
 *   is identity.cert_unknown_account.
 * - Every attempt that presents a certificate is audited, success as
 *   "identity.login.certificate", failure as
 *   "identity.login.certificate_failed" with the problem code.
 * - The page route redirects only to same-origin paths ("/x", never "//x"
 *   or "/\x"), so it cannot be used as an open redirect.
 */
#include <stdio.h>
#include <string.h>

#include "audit/audit.h"
#include "core/app.h"
#include "core/timeutil.h"
#include "identity/identity_int.h"
#include "pki/pki.h"
#include "core/banned.h"

#define RETURN_DEFAULT "/account.html"

/* The serial as links store it: hex without leading zeros (OpenSSL pads
 * to whole bytes, a person types what the certificate viewer shows).
 * A serial that is not plain hex (negative, against RFC 5280) is kept as
 * the PKI wrote it. */
static void link_serial(const pki_verify_result *res, char out[66])
{
	if (!identity_serial_norm(res->serial, out, 66))
		identity_copy(out, 66, res->serial);
}

egov_err identity_login_certificate(db_conn *c, const void *cert, size_t len, identity_account *out,
				    struct pki_verify_result *res, const char **code)
{
	egov_err err;

	*code = NULL;
	err = pki_verify_chain(c, cert, len, res);
	if (err == EGOV_EAUTH) {
		*code = res->code ? res->code : "pki.cert_untrusted";
		goto out;
	}
	if (err)
		goto out;
	if (res->platform && uuid_valid(res->uid)) {
		err = identity_account_get(c, res->uid, out);
	} else if (!res->platform && res->external) {
		identity_cert_link l;
		char serial[66];

		link_serial(res, serial);
		err = identity_cert_link_find(c, res->issuer, serial, &l);
		/* Same issuer and serial, another key: not the certificate
		 * that was linked, whatever the anchor signed. */
		if (!err && strcmp(l.spki_sha256, res->spki_sha256) != 0)
			err = EGOV_ENOTFOUND;
		if (!err)
			err = identity_account_get(c, l.account_id, out);
	} else {
		err = EGOV_ENOTFOUND;
	}
	if (err == EGOV_ENOTFOUND) {
		*code = "identity.cert_unknown_account";
		err = EGOV_EAUTH;
		goto out;
	}
	if (err)
		goto out;
	if (out->disabled) {
		*code = "identity.disabled";
		err = EGOV_EPERM;
	}
out:
	return err;
}

/* 401 for a certificate that does not authenticate anyone, 403 for one
 * that does but may not be used to log in. */
static int status_of(const char *code)
{
	if (strcmp(code, "pki.cert_wrong_usage") == 0 || strcmp(code, "identity.disabled") == 0)
		return 403;
	return 401;
}

/* The audit record of a certificate event: inside c's transaction when
 * it records a change, in one of its own (c NULL) when it records a
 * refusal. */
static egov_err audit_cert(req *r, db_conn *c, const char *actor, const char *action, const char *object,
			   const pki_verify_result *res, const char *code)
{
	buf b;
	jw w;
	egov_err err;

	if (!audit_available())
		return EGOV_OK;
	buf_init(&b, 4096);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_kstr(&w, "ip", req_remote_ip(r));
	jw_kstr(&w, "request_id", req_id(r));
	jw_kstr(&w, "via", req_is_tls(r) ? "tls" : "proxy");
	if (res) {
		jw_kstr(&w, "serial", res->serial);
		jw_kstr(&w, "subject", res->subject);
		jw_kstr(&w, "issuer", res->issuer);
		if (res->spki_sha256[0])
			jw_kstr(&w, "spki_sha256", res->spki_sha256);
	}
	if (code)
		jw_kstr(&w, "code", code);
	jw_obj_end(&w);
	if (!(err = w.err))
		err = c ? audit_append_tx(c, actor, action, object, b.data, NULL)
			: audit_append(actor, action, object, b.data, NULL);
	buf_release(&b);
	return err;
}

/* A same-origin path to send the browser to, or NULL. */
static const char *safe_return(const char *v)
{
	size_t i, n;

	if (!v || v[0] != '/' || v[1] == '/' || v[1] == '\\')
		return NULL;
	n = strlen(v);
	if (n > IDENTITY_RETURN_MAX)
		return NULL;
	for (i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x21 || v[i] == 0x7f || v[i] == '\\')
			return NULL;
	return v;
}

typedef struct login_out {
	identity_account a;
	identity_session s;
	char token[IDENTITY_TOKEN_LEN + 1];
	const char *code; /* problem code when refused */
} login_out;

/* The whole login: certificate, verification, account, session, audit.
 * EGOV_OK with o->code set means refused (answer it); EGOV_OK with
 * o->code NULL means a session was made; other errors are failures. */
static egov_err do_login(req *r, login_out *o)
{
	pki_verify_result res;
	const void *cert;
	const char *ua = req_header(r, "User-Agent");
	char actor[48];
	size_t len = 0;
	db_conn *c = NULL;
	egov_err err;

	o->code = NULL;
	if ((err = db_thread_conn(app()->db, &c)))
		return err;
	if (!(cert = req_client_cert(r, &len))) {
		o->code = "identity.cert_missing";
		return EGOV_OK;
	}
	err = identity_login_certificate(c, cert, len, &o->a, &res, &o->code);
	if (err == EGOV_EAUTH || err == EGOV_EPERM)
		return audit_cert(r, NULL, "anonymous", "identity.login.certificate_failed", "login", &res, o->code);
	if (err || (err = db_begin(c)))
		return err;
	identity_actor_of(o->a.id, actor);
	if (!(err = identity_session_create(c, o->a.id, 3, false, req_remote_ip(r), ua ? ua : "", o->token, &o->s)))
		err = audit_cert(r, c, actor, "identity.login.certificate", actor, &res, NULL);
	return db_end(c, err);
}

static void write_time(jw *w, const char *k, int64_t us)
{
	char t[32];
	time_format_rfc3339(us, 0, t);
	jw_kstr(w, k, t);
}

/* Same shape as the password login's answer: account, session, csrf. */
egov_err identity_api_login_certificate(req *r)
{
	login_out o;
	char cookie[256];
	buf b;
	jw w;
	egov_err err;

	if ((err = do_login(r, &o)))
		return err;
	if (o.code)
		return resp_problem(r, status_of(o.code), o.code, NULL, NULL);
	identity_session_cookie(o.token, (int)((o.s.expires_us - o.s.created_us) / 1000000), cookie, sizeof cookie);
	resp_header(r, "Set-Cookie", cookie);
	resp_header(r, "Cache-Control", "no-store");
	buf_init(&b, 16 * 1024);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_key(&w, "account");
	jw_obj_begin(&w);
	jw_kstr(&w, "id", o.a.id);
	jw_kstr(&w, "kind", identity_kind_name(o.a.kind));
	jw_kstr(&w, "email", o.a.email);
	jw_kstr(&w, "display_name", o.a.display_name);
	jw_kstr(&w, "locale", o.a.locale);
	jw_kbool(&w, "email_verified", o.a.email_verified);
	jw_kbool(&w, "totp_enabled", o.a.totp_enabled);
	jw_kstr(&w, "created_at", o.a.created_at);
	jw_obj_end(&w);
	jw_key(&w, "session");
	jw_obj_begin(&w);
	jw_kstr(&w, "id", o.s.id);
	jw_kint(&w, "acr", o.s.acr);
	write_time(&w, "auth_time", o.s.auth_time_us);
	write_time(&w, "created_at", o.s.created_us);
	write_time(&w, "last_seen_at", o.s.last_seen_us);
	write_time(&w, "expires_at", o.s.expires_us);
	jw_kstr(&w, "ip", o.s.ip);
	jw_kstr(&w, "user_agent", o.s.user_agent);
	jw_kbool(&w, "current", true);
	jw_obj_end(&w);
	jw_kstr(&w, "csrf", o.s.csrf);
	jw_obj_end(&w);
	return resp_jw(r, 200, &w);
}

/* For a link or button on the log-in page: success goes to ?return= (a
 * same-origin path, else the account page), failure back to the log-in
 * page with the code, which the page shows in the reader's language. */
egov_err identity_page_login_certificate(req *r)
{
	const char *ret = safe_return(req_query(r, "return"));
	char cookie[256], loc[IDENTITY_RETURN_MAX + 64];
	login_out o;
	egov_err err;

	if ((err = do_login(r, &o)))
		return err;
	resp_header(r, "Cache-Control", "no-store");
	if (o.code) {
		snprintf(loc, sizeof loc, "/login.html?error=%s", o.code);
	} else {
		identity_session_cookie(o.token, (int)((o.s.expires_us - o.s.created_us) / 1000000), cookie,
					sizeof cookie);
		resp_header(r, "Set-Cookie", cookie);
		snprintf(loc, sizeof loc, "%s", ret ? ret : RETURN_DEFAULT);
	}
	resp_header(r, "Location", loc);
	return resp_empty(r, 303);
}

/* ---- links to certificates of external CAs ---------------------------- */

static void write_link(jw *w, const identity_cert_link *l)
{
	jw_obj_begin(w);
	jw_kstr(w, "issuer", l->issuer);
	jw_kstr(w, "serial", l->serial);
	jw_kstr(w, "subject", l->subject);
	jw_kstr(w, "spki_sha256", l->spki_sha256);
	jw_kstr(w, "created_at", l->created_at);
	jw_obj_end(w);
}

static egov_err answer_link(req *r, int status, const identity_cert_link *l)
{
	buf b;
	jw w;

	buf_init(&b, 4096);
	jw_init(&w, &b);
	write_link(&w, l);
	return resp_jw(r, status, &w);
}

/* Links the certificate presented with this request to the session's
 * account. The session must carry the second factor (acr >= 2): the link
 * lets the certificate alone log in at acr 3, so a password alone must not
 * be able to make one. Only certificates of external anchors are linked;
 * the platform's own map by their UID. Refusals are audited too. */
egov_err identity_api_link_add(req *r)
{
	const identity_session *s = identity_req_session(r);
	pki_verify_result res;
	identity_cert_link in, existing;
	const void *cert;
	const char *code = NULL;
	char actor[48];
	size_t len = 0;
	int status = 0;
	db_conn *c = NULL;
	egov_err err;

	if (!s)
		return EGOV_EAUTH; /* the route's .auth let no request in without */
	if ((err = db_thread_conn(app()->db, &c)))
		return err;
	identity_actor_of(s->account_id, actor);
	if (s->acr < 2)
		return resp_problem(r, 403, "identity.aal2_required", NULL, NULL);
	if (!(cert = req_client_cert(r, &len)))
		return resp_problem(r, 400, "identity.cert_missing", NULL, NULL);
	err = pki_verify_chain(c, cert, len, &res);
	if (err == EGOV_EAUTH) {
		code = res.code ? res.code : "pki.cert_untrusted";
		status = 403;
	} else if (err) {
		return err;
	} else if (res.platform || !res.external) {
		code = "identity.cert_platform";
		status = 400;
	}
	if (!code) {
		memset(&in, 0, sizeof in);
		identity_copy(in.account_id, sizeof in.account_id, s->account_id);
		identity_copy(in.issuer, sizeof in.issuer, res.issuer);
		link_serial(&res, in.serial);
		identity_copy(in.spki_sha256, sizeof in.spki_sha256, res.spki_sha256);
		identity_copy(in.subject, sizeof in.subject, res.subject);
		if ((err = db_begin(c)))
			return err;
		err = identity_cert_link_add(c, &in, &existing);
		if (!err && !(err = identity_cert_link_find(c, in.issuer, in.serial, &existing)) &&
		    !(err = audit_cert(r, c, actor, "identity.cert.link", actor, &res, NULL)))
			return (err = db_end(c, EGOV_OK)) ? err : answer_link(r, 201, &existing);
		if (err != EGOV_ECONFLICT && err != EGOV_ELIMIT)
			return db_end(c, err);
		db_rollback(c);
		if (err == EGOV_ECONFLICT && strcmp(existing.account_id, s->account_id) == 0 &&
		    strcmp(existing.spki_sha256, res.spki_sha256) == 0)
			return answer_link(r, 200, &existing); /* linked already: nothing changes */
		code = err == EGOV_ECONFLICT ? "identity.cert_linked_elsewhere" : "identity.cert_links_full";
		status = 409;
	}
	/* A refusal changed nothing: its record is a transaction of its own. */
	if ((err = audit_cert(r, NULL, actor, "identity.cert.link_failed", actor, &res, code)))
		return err;
	return resp_problem(r, status, code, NULL, NULL);
}

static int add_link(void *ctx, const identity_cert_link *l)
{
	write_link(ctx, l);
	return 0;
}

egov_err identity_api_link_list(req *r)
{
	const identity_session *s = identity_req_session(r);
	db_conn *c = NULL;
	buf b;
	jw w;
	egov_err err;

	if (!s)
		return EGOV_EAUTH;
	if ((err = db_thread_conn(app()->db, &c)))
		return err;
	buf_init(&b, 64 * 1024);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_key(&w, "items");
	jw_arr_begin(&w);
	err = identity_cert_link_list(c, s->account_id, add_link, &w);
	jw_arr_end(&w);
	jw_obj_end(&w);
	if (!err)
		err = w.err;
	if (err) {
		buf_release(&b);
		return err;
	}
	resp_header(r, "Cache-Control", "no-store");
	return resp_json(r, 200, &b);
}

egov_err identity_api_link_remove(req *r)
{
	const identity_session *s = identity_req_session(r);
	pki_verify_result res;
	char serial[66], actor[48];
	int64_t n = 0;
	db_conn *c = NULL;
	egov_err err;

	if (!s)
		return EGOV_EAUTH;
	if ((err = db_thread_conn(app()->db, &c)))
		return err;
	if (!identity_serial_norm(req_param(r, "serial"), serial, sizeof serial))
		return resp_problem(r, 404, "not_found", NULL, NULL);
	if ((err = db_begin(c)))
		return err;
	if ((err = identity_cert_link_remove(c, s->account_id, serial, &n)))
		return db_end(c, err);
	if (n == 0) {
		db_rollback(c);
		return resp_problem(r, 404, "not_found", NULL, NULL);
	}
	memset(&res, 0, sizeof res);
	identity_copy(res.serial, sizeof res.serial, serial);
	identity_actor_of(s->account_id, actor);
	if ((err = db_end(c, audit_cert(r, c, actor, "identity.cert.unlink", actor, &res, NULL))))
		return err;
	return resp_empty(r, 204);
}
