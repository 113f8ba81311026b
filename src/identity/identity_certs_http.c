/*
 * identity_certs_http.c: the signed-in person's own certificates, under
 * /api/v1/identity/me/certificates: list, request from a CSR, request as a
 * PKCS#12 bundle, download, revoke. The accounts and sessions are this
 * module's; the certificates are the PKI's, reached through pki.h only
 * (the PKI knows no accounts: an account id is just the owner it records).
 *
 * Invariants:
 * - The caller is the full session of the egov_sid cookie (the routes'
 *   .auth: bearer tokens are not accepted here, for a certificate is a
 *   credential and an application acting for a person must not mint
 *   one). Every POST also carries the session's CSRF token.
 * - The owner of what is issued is the account id, and the subject is built
 *   from the account (CN = display name, UID = account id): nothing of the
 *   CSR's subject is used.
 * - Someone else's serial answers 404 exactly like an unknown one, so the
 *   API does not reveal which serials exist.
 * - Residents may use the person_* profiles only. An account with a second
 *   factor must have used it in this session before it may get a
 *   certificate (a certificate logs in at level 3, so it must not be
 *   obtainable with the password alone).
 * - Issuing and revoking are audited with actor "account:<id>", each in
 *   the PKI's transaction that issues or revokes (pki_issue_*, pki_revoke).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/app.h"
#include "core/limits.h"
#include "identity/identity_int.h"
#include "pki/pki.h"
#include "core/banned.h"

#define SELF_PREFIX "/api/v1/identity/me/certificates"

static egov_err conn(db_conn **c)
{
	return db_thread_conn(app()->db, c);
}

/* The CN for an account: its display name cut to 64 characters (at a
 * character boundary), the most issue.c accepts. out holds 64 characters
 * of up to 4 bytes, so only the character count ever cuts. */
static void cn_of(const identity_account *a, char *out, size_t outlen)
{
	size_t i = 0, chars = 0;
	const char *p = a->display_name;

	while (p[i] && i + 1 < outlen) {
		if (((unsigned char)p[i] & 0xc0) != 0x80 && ++chars > 64)
			break;
		out[i] = p[i];
		i++;
	}
	out[i] = '\0';
}

/* The caller's session (the routes' .auth let no request in without). */
static egov_err caller(req *r, const identity_session **s)
{
	*s = identity_req_session(r);
	return *s ? EGOV_OK : EGOV_EAUTH;
}

/* The caller's account, and whether it may have a certificate of profile
 * now. Queues the refusal and returns an error when not. */
static egov_err may_issue(req *r, db_conn *c, const identity_session *s, const char *profile,
			  identity_account *a)
{
	int64_t live = 0;
	egov_err err;

	if ((err = identity_account_get(c, s->account_id, a))) {
		if (err == EGOV_ENOTFOUND) {
			resp_problem(r, 401, "unauthorized", NULL, NULL);
			return EGOV_EAUTH;
		}
		return err;
	}
	if (!pki_profile_valid(profile)) {
		resp_problem(r, 400, "pki.profile_unknown", "profile", NULL);
		return EGOV_EINVAL;
	}
	if (a->kind == IDENTITY_RESIDENT && strncmp(profile, "person_", 7) != 0) {
		resp_problem(r, 403, "pki.profile_forbidden", "profile", NULL);
		return EGOV_EPERM;
	}
	if (a->totp_enabled && s->acr < 2) {
		resp_problem(r, 403, "pki.step_up_required", NULL, NULL);
		return EGOV_EPERM;
	}
	if ((err = pki_cert_count_live(c, s->account_id, &live)))
		return err;
	if (live >= IDENTITY_CERTS_LIVE_MAX) {
		resp_problem(r, 409, "pki.cert_limit", NULL, NULL);
		return EGOV_ECONFLICT;
	}
	return EGOV_OK;
}

/* ---- list ------------------------------------------------------------- */

static int list_one(void *ctx, const pki_cert_info *ci)
{
	pki_cert_write(ctx, ci, true);
	return 0;
}

egov_err identity_api_certs_list(req *r)
{
	const identity_session *s;
	db_conn *c = NULL;
	buf b;
	jw w;
	egov_err err;

	if ((err = caller(r, &s)) || (err = conn(&c)))
		return err;
	buf_init(&b, EGOV_RESPONSE_MAX);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_key(&w, "items");
	jw_arr_begin(&w);
	err = pki_cert_list_by_owner(c, s->account_id, list_one, &w);
	jw_arr_end(&w);
	jw_obj_end(&w);
	if (err || w.err) {
		buf_release(&b);
		return err ? err : w.err;
	}
	resp_header(r, "Cache-Control", "no-store");
	return resp_json(r, 200, &b);
}

/* ---- issue from a CSR --------------------------------------------------- */

typedef struct csr_in {
	const char *profile, *csr;
} csr_in;

static const json_field csr_fields[] = {
	{.name = "profile", .type = JSON_T_STRING, .offset = offsetof(csr_in, profile), .required = true,
	 .min_len = 1, .max_len = IDENTITY_PROFILE_FIELD_MAX},
	{.name = "csr", .type = JSON_T_STRING, .offset = offsetof(csr_in, csr), .required = true, .min_len = 1,
	 .max_len = IDENTITY_CSR_MAX},
};

egov_err identity_api_certs_issue(req *r)
{
	const identity_session *s;
	identity_account a;
	csr_in in = {0};
	pki_cert_info ci = {0};
	pki_requester who;
	const char *code = NULL;
	char cn[260], actor[48];
	db_conn *c = NULL;
	egov_err err;

	if ((err = caller(r, &s)))
		return err;
	if (!pki_is_open())
		return resp_problem(r, 503, "unavailable", NULL, "the CA is not loaded");
	if ((err = req_json(r, csr_fields, sizeof csr_fields / sizeof csr_fields[0], &in)) || (err = conn(&c)) ||
	    (err = may_issue(r, c, s, in.profile, &a)))
		return err;
	cn_of(&a, cn, sizeof cn);
	identity_actor_of(s->account_id, actor);
	who = (pki_requester){.actor = actor, .via = "csr", .request_id = req_id(r)};
	err = pki_issue_from_csr_audited(c, in.csr, strlen(in.csr), in.profile, a.id, cn, &who, &ci, &code);
	if (err == EGOV_EINVAL && code)
		return resp_problem(r, 400, code, strcmp(code, "pki.profile_unknown") == 0 ? "profile" : "csr", NULL);
	if (!err)
		err = pki_cert_answer(r, 201, &ci, SELF_PREFIX, true);
	pki_cert_info_release(&ci);
	return err;
}

/* ---- issue as PKCS#12 -------------------------------------------------- */

typedef struct p12_in {
	const char *profile, *passphrase;
} p12_in;

static const json_field p12_fields[] = {
	{.name = "profile", .type = JSON_T_STRING, .offset = offsetof(p12_in, profile), .required = true,
	 .min_len = 1, .max_len = IDENTITY_PROFILE_FIELD_MAX},
	{.name = "passphrase", .type = JSON_T_STRING, .offset = offsetof(p12_in, passphrase), .required = true,
	 .min_len = IDENTITY_PASSPHRASE_MIN, .max_len = IDENTITY_PASSPHRASE_MAX},
};

egov_err identity_api_certs_issue_p12(req *r)
{
	const identity_session *s;
	identity_account a;
	p12_in in = {0};
	pki_cert_info ci = {0};
	pki_requester who;
	const char *code = NULL;
	unsigned char *p12 = NULL;
	size_t len = 0;
	char cn[260], disp[96], actor[48];
	db_conn *c = NULL;
	egov_err err;

	if ((err = caller(r, &s)))
		return err;
	if (!pki_is_open())
		return resp_problem(r, 503, "unavailable", NULL, "the CA is not loaded");
	if ((err = req_json(r, p12_fields, sizeof p12_fields / sizeof p12_fields[0], &in)) || (err = conn(&c)) ||
	    (err = may_issue(r, c, s, in.profile, &a)))
		return err;
	cn_of(&a, cn, sizeof cn);
	identity_actor_of(s->account_id, actor);
	who = (pki_requester){.actor = actor, .via = "pkcs12", .request_id = req_id(r)};
	err = pki_issue_pkcs12(c, a.id, in.profile, cn, in.passphrase, &who, &p12, &len, &ci, &code);
	if (err == EGOV_EINVAL && code) {
		err = resp_problem(r, 400, code, strcmp(code, "pki.profile_unknown") == 0 ? "profile" : NULL, NULL);
		goto out;
	}
	if (!err) {
		char loc[128];
		snprintf(loc, sizeof loc, SELF_PREFIX "/%s", ci.serial);
		snprintf(disp, sizeof disp, "attachment; filename=\"egov-%s.p12\"", ci.serial);
		resp_header(r, "Location", loc);
		resp_header(r, "X-Certificate-Serial", ci.serial);
		resp_header(r, "Content-Disposition", disp);
		resp_header(r, "Cache-Control", "no-store");
		err = resp_bytes(r, 201, "application/pkcs12", p12, len, true);
	}
out:
	if (p12)
		OPENSSL_cleanse(p12, len);
	free(p12);
	pki_cert_info_release(&ci);
	return err;
}

/* ---- one certificate --------------------------------------------------- */

/* The caller's certificate named by the path; 404 queued (and
 * EGOV_ENOTFOUND returned) when there is none or it is someone else's. */
static egov_err own_cert(req *r, db_conn *c, const identity_session *s, pki_cert_info *ci)
{
	egov_err err = pki_cert_get(c, req_param(r, "serial"), ci);

	if (!err && strcmp(ci->owner, s->account_id) != 0) {
		pki_cert_info_release(ci);
		err = EGOV_ENOTFOUND;
	}
	if (err == EGOV_ENOTFOUND)
		resp_problem(r, 404, "not_found", NULL, NULL);
	return err;
}

egov_err identity_api_certs_get(req *r)
{
	const identity_session *s;
	pki_cert_info ci = {0};
	char disp[96];
	const char *accept = req_header(r, "Accept");
	db_conn *c = NULL;
	egov_err err;

	if ((err = caller(r, &s)) || (err = conn(&c)) || (err = own_cert(r, c, s, &ci)))
		return err;
	if (accept && strstr(accept, "application/json") && !strstr(accept, "application/x-pem-file")) {
		err = pki_cert_answer(r, 200, &ci, SELF_PREFIX, true);
	} else {
		snprintf(disp, sizeof disp, "attachment; filename=\"egov-%s.pem\"", ci.serial);
		resp_header(r, "Content-Disposition", disp);
		resp_header(r, "Cache-Control", "no-store");
		err = resp_bytes(r, 200, "application/x-pem-file", ci.pem, strlen(ci.pem), true);
	}
	pki_cert_info_release(&ci);
	return err;
}

/* ---- revoke ------------------------------------------------------------ */

typedef struct revoke_in {
	const char *reason;
} revoke_in;

static const json_field revoke_fields[] = {
	{.name = "reason", .type = JSON_T_STRING, .offset = offsetof(revoke_in, reason),
	 .max_len = IDENTITY_REASON_FIELD_MAX},
};

/* The reasons a holder can state about their own certificate; the others
 * (cACompromise, privilegeWithdrawn) are the CA's to give. */
static bool holder_reason(const char *reason)
{
	static const char *const ok[] = {"unspecified", "keyCompromise", "affiliationChanged", "superseded",
					 "cessationOfOperation"};
	size_t i;

	for (i = 0; i < sizeof ok / sizeof ok[0]; i++)
		if (strcmp(ok[i], reason) == 0)
			return true;
	return false;
}

egov_err identity_api_certs_revoke(req *r)
{
	const identity_session *s;
	revoke_in in = {0};
	pki_cert_info ci = {0};
	const char *code = NULL;
	char actor[48], serial[PKI_SERIAL_HEX];
	db_conn *c = NULL;
	egov_err err;

	if ((err = caller(r, &s)))
		return err;
	if (!pki_is_open())
		return resp_problem(r, 503, "unavailable", NULL, "the CA is not loaded");
	if ((err = req_json(r, revoke_fields, 1, &in)))
		return err;
	if (!in.reason)
		in.reason = "unspecified";
	if ((err = conn(&c)) || (err = own_cert(r, c, s, &ci)))
		return err;
	snprintf(serial, sizeof serial, "%s", ci.serial);
	pki_cert_info_release(&ci);
	if (!pki_reason_valid(in.reason))
		return resp_problem(r, 400, "pki.reason_unknown", "reason", NULL);
	if (!holder_reason(in.reason))
		return resp_problem(r, 400, "pki.reason_forbidden", "reason", NULL);
	identity_actor_of(s->account_id, actor);
	err = pki_revoke(c, serial, in.reason, actor, &code);
	if (err == EGOV_EINVAL && code)
		return resp_problem(r, 400, code, "reason", NULL);
	if (err == EGOV_ENOTFOUND)
		return resp_problem(r, 404, "not_found", NULL, NULL);
	if (err == EGOV_ECONFLICT)
		return resp_problem(r, 409, "pki.cert_already_revoked", NULL, NULL);
	if (err)
		return err;
	if (!(err = pki_cert_get(c, serial, &ci)))
		err = pki_cert_answer(r, 200, &ci, SELF_PREFIX, true);
	pki_cert_info_release(&ci);
	return err;
}
