/*
 * pki_http.c: the CA's HTTP face: public CA certificates, CRL, OCSP and TSA
 * under /pki/, and the operators' certificates API under
 * /api/v1/certificates (a person's own certificates are identity's
 * self-service, built on pki.h), the schema and the module's descriptor
 * (its other hooks are in pki_module.c).
 *
 * Invariants: everything under /pki/ is public and speaks the binary protocols (DER) their
 * RFCs define; protocol errors there are protocol answers (OCSP
 * malformedRequest, TSA rejection), not problem documents. The API routes
 * carry permissions the router checks; their bad input is a problem
 * document with a pki.* code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/app.h"
#include "core/limits.h"
#include "core/module.h"
#include "core/uri.h"
#include "pki/pki_int.h"
#include "core/banned.h"

static egov_err conn(db_conn **c)
{
	return db_thread_conn(app()->db, c);
}

static egov_err not_ready(req *r)
{
	return resp_problem(r, 503, "unavailable", NULL, "the CA is not loaded");
}

/* ---- public: under /pki/ ---------------------------------------------- */

static egov_err ca_cert(req *r, const unsigned char *der, size_t len)
{
	if (!pki_g.open)
		return not_ready(r);
	resp_header(r, "Cache-Control", "public, max-age=3600");
	return resp_bytes(r, 200, "application/pkix-cert", der, len, false);
}

static egov_err root_get(req *r)
{
	size_t len = 0;
	const unsigned char *der = pki_root_der(&len);

	return ca_cert(r, der, len);
}

static egov_err issuing_get(req *r)
{
	size_t len = 0;
	const unsigned char *der = pki_issuing_der(&len);

	return ca_cert(r, der, len);
}

static egov_err crl_get(req *r)
{
	unsigned char *der = NULL;
	size_t len = 0;
	db_conn *c = NULL;
	egov_err err;

	if (!pki_g.open)
		return not_ready(r);
	if ((err = conn(&c)) || (err = pki_crl_der(c, &der, &len)))
		return err;
	resp_header(r, "Cache-Control", "public, max-age=60");
	err = resp_bytes(r, 200, "application/pkix-crl", der, len, true);
	free(der);
	return err;
}

static egov_err ocsp_answer(req *r, const void *data, size_t len)
{
	unsigned char *der = NULL;
	size_t dlen = 0;
	db_conn *c = NULL;
	egov_err err;

	/* Without a connection the responder still answers (internalError
	 * from the lookup); a NULL conn is never dereferenced there. */
	if ((err = conn(&c)))
		return err;
	if ((err = pki_ocsp_respond(c, data, len, &der, &dlen)))
		return err;
	resp_header(r, "Cache-Control", "no-store");
	err = resp_bytes(r, 200, "application/ocsp-response", der, dlen, true);
	free(der);
	return err;
}

static egov_err ocsp_post(req *r)
{
	size_t len = 0;
	const char *body = req_body(r, &len);

	return ocsp_answer(r, body ? body : "", body ? len : 0);
}

/* RFC 6960 A.1: GET {url}/{url-encoding of base-64 encoding of the DER}. */
/* RFC 6960 A.1: GET {url}/{url-encoding of base-64 encoding of the DER}.
 * Read from the raw target, not the parsed path: the parser folds "//"
 * into "/", and base64 can hold "//". */
static egov_err ocsp_get(req *r)
{
	static const char prefix[] = "/pki/ocsp/";
	const char *t = req_target(r), *end;
	unsigned char *der = NULL;
	char *b64 = NULL;
	size_t len = 0, n;
	egov_err err;

	if (strncmp(t, prefix, sizeof prefix - 1) == 0) {
		t += sizeof prefix - 1;
		end = strchr(t, '?');
		n = end ? (size_t)(end - t) : strlen(t);
		if ((b64 = arena_alloc(req_arena(r), n + 1)))
			uri_pct_decode(t, n, b64);
	}
	if (b64)
		der = pki_unb64(b64, &len);
	err = ocsp_answer(r, der ? (const char *)der : "", der ? len : 0);
	free(der);
	return err;
}

static egov_err tsa_post(req *r)
{
	size_t len = 0, dlen = 0;
	const char *body = req_body(r, &len);
	unsigned char *der = NULL;
	egov_err err;

	if (!pki_g.open)
		return not_ready(r);
	if ((err = pki_tsa_respond(body ? body : "", body ? len : 0, &der, &dlen)))
		return err;
	err = resp_bytes(r, 200, "application/timestamp-reply", der, dlen, true);
	free(der);
	return err;
}

/* ---- API: /api/v1/certificates ---------------------------------------------- */

void pki_cert_write(jw *w, const pki_cert_info *ci, bool self)
{
	jw_obj_begin(w);
	jw_kstr(w, "serial", ci->serial);
	if (!self)
		jw_kstr(w, "owner", ci->owner);
	jw_kstr(w, "profile", ci->profile);
	jw_kstr(w, "subject", ci->subject);
	jw_kstr(w, "not_before", ci->not_before);
	jw_kstr(w, "not_after", ci->not_after);
	jw_kstr(w, "status", ci->status);
	jw_key(w, "revoked_at");
	jw_str(w, ci->revoked_at[0] ? ci->revoked_at : NULL);
	jw_key(w, "reason");
	jw_str(w, ci->reason[0] ? ci->reason : NULL);
	if (ci->pem)
		jw_kstr(w, "certificate", ci->pem);
	jw_obj_end(w);
}

egov_err pki_cert_answer(req *r, int status, const pki_cert_info *ci, const char *location_prefix, bool self)
{
	char loc[160];
	buf b;
	jw w;

	buf_init(&b, EGOV_RESPONSE_MAX);
	jw_init(&w, &b);
	pki_cert_write(&w, ci, self);
	if (w.err) {
		buf_release(&b);
		return w.err;
	}
	if (status == 201) {
		snprintf(loc, sizeof loc, "%s/%s", location_prefix, ci->serial);
		resp_header(r, "Location", loc);
	}
	if (self)
		resp_header(r, "Cache-Control", "no-store");
	return resp_json(r, status, &b);
}

typedef struct issue_in {
	const char *csr, *profile, *owner, *cn;
} issue_in;

static const json_field issue_fields[] = {
	{.name = "csr", .type = JSON_T_STRING, .offset = offsetof(issue_in, csr), .required = true, .min_len = 1,
	 .max_len = PKI_CSR_MAX},
	{.name = "profile", .type = JSON_T_STRING, .offset = offsetof(issue_in, profile), .required = true,
	 .max_len = PKI_NAME_FIELD_MAX},
	{.name = "owner", .type = JSON_T_STRING, .offset = offsetof(issue_in, owner), .required = true, .min_len = 1,
	 .max_len = PKI_OWNER_MAX},
	{.name = "cn", .type = JSON_T_STRING, .offset = offsetof(issue_in, cn), .min_len = 1,
	 .max_len = PKI_CN_MAX},
};

static const char *code_field(const char *code)
{
	if (strcmp(code, "pki.profile_unknown") == 0)
		return "profile";
	if (strcmp(code, "pki.reason_unknown") == 0)
		return "reason";
	if (strcmp(code, "pki.csr_invalid_passphrase") == 0)
		return "passphrase";
	return "csr";
}

static egov_err cert_issue(req *r)
{
	issue_in in = {0};
	pki_requester who;
	pki_cert_info ci = {0};
	const char *code = NULL;
	db_conn *c = NULL;
	egov_err err;

	if (!pki_g.open)
		return not_ready(r);
	if ((err = req_json(r, issue_fields, sizeof issue_fields / sizeof issue_fields[0], &in)))
		return err;
	if ((err = conn(&c)))
		return err;
	who = (pki_requester){.actor = req_principal(r)->actor, .request_id = req_id(r)};
	err = pki_issue_from_csr_audited(c, in.csr, strlen(in.csr), in.profile, in.owner, in.cn, &who, &ci, &code);
	if (err == EGOV_EINVAL && code)
		return resp_problem(r, 400, code, code_field(code), NULL);
	if (!err)
		err = pki_cert_answer(r, 201, &ci, "/api/v1/certificates", false);
	pki_cert_info_release(&ci);
	return err;
}

typedef struct p12_in {
	const char *profile, *owner, *cn, *passphrase;
} p12_in;

static const json_field p12_fields[] = {
	{.name = "profile", .type = JSON_T_STRING, .offset = offsetof(p12_in, profile), .required = true,
	 .max_len = PKI_NAME_FIELD_MAX},
	{.name = "owner", .type = JSON_T_STRING, .offset = offsetof(p12_in, owner), .required = true, .min_len = 1,
	 .max_len = PKI_OWNER_MAX},
	{.name = "cn", .type = JSON_T_STRING, .offset = offsetof(p12_in, cn), .required = true, .min_len = 1,
	 .max_len = PKI_CN_MAX},
	{.name = "passphrase", .type = JSON_T_STRING, .offset = offsetof(p12_in, passphrase), .required = true,
	 .min_len = PKI_PASSPHRASE_MIN, .max_len = PKI_PASSPHRASE_MAX},
};

static egov_err cert_issue_p12(req *r)
{
	p12_in in = {0};
	pki_requester who;
	pki_cert_info ci = {0};
	const char *code = NULL;
	unsigned char *p12 = NULL;
	size_t len = 0;
	db_conn *c = NULL;
	egov_err err;

	if (!pki_g.open)
		return not_ready(r);
	if ((err = req_json(r, p12_fields, sizeof p12_fields / sizeof p12_fields[0], &in)))
		return err;
	if ((err = conn(&c)))
		return err;
	who = (pki_requester){.actor = req_principal(r)->actor, .request_id = req_id(r)};
	err = pki_issue_pkcs12(c, in.owner, in.profile, in.cn, in.passphrase, &who, &p12, &len, &ci, &code);
	if (err == EGOV_EINVAL && code)
		return resp_problem(r, 400, code, strcmp(code, "pki.profile_unknown") == 0 ? "profile" : "cn", NULL);
	if (!err) {
		char loc[128];
		snprintf(loc, sizeof loc, "/api/v1/certificates/%s", ci.serial);
		resp_header(r, "Location", loc);
		resp_header(r, "X-Certificate-Serial", ci.serial);
		resp_header(r, "Cache-Control", "no-store");
		err = resp_bytes(r, 201, "application/pkcs12", p12, len, true);
	}
	if (p12)
		OPENSSL_cleanse(p12, len);
	free(p12);
	pki_cert_info_release(&ci);
	return err;
}

static egov_err cert_get(req *r)
{
	pki_cert_info ci = {0};
	db_conn *c = NULL;
	egov_err err;

	if ((err = conn(&c)))
		return err;
	err = pki_cert_get(c, req_param(r, "serial"), &ci);
	if (err == EGOV_ENOTFOUND)
		return resp_problem(r, 404, "not_found", NULL, NULL);
	if (!err)
		err = pki_cert_answer(r, 200, &ci, "/api/v1/certificates", false);
	pki_cert_info_release(&ci);
	return err;
}

typedef struct revoke_in {
	const char *reason;
} revoke_in;

static const json_field revoke_fields[] = {
	{.name = "reason", .type = JSON_T_STRING, .offset = offsetof(revoke_in, reason), .required = true,
	 .max_len = PKI_NAME_FIELD_MAX},
};

static egov_err cert_revoke(req *r)
{
	revoke_in in = {0};
	pki_cert_info ci = {0};
	const char *code = NULL;
	db_conn *c = NULL;
	egov_err err;

	if (!pki_g.open)
		return not_ready(r);
	if ((err = req_json(r, revoke_fields, 1, &in)))
		return err;
	if ((err = conn(&c)))
		return err;
	err = pki_revoke(c, req_param(r, "serial"), in.reason, req_principal(r)->actor, &code);
	if (err == EGOV_EINVAL && code)
		return resp_problem(r, 400, code, "reason", NULL);
	if (err == EGOV_ENOTFOUND)
		return resp_problem(r, 404, "not_found", NULL, NULL);
	if (err == EGOV_ECONFLICT)
		return resp_problem(r, 409, "pki.cert_already_revoked", NULL, NULL);
	if (err)
		return err;
	err = pki_cert_get(c, req_param(r, "serial"), &ci);
	if (!err)
		err = pki_cert_answer(r, 200, &ci, "/api/v1/certificates", false);
	pki_cert_info_release(&ci);
	return err;
}

/* Under /pki/ everything is public (relying parties fetch it without an
 * account); the certificates API takes a permission (AUTH_API: a staff
 * session, an application's access token for a person, or the operator). */
static const route routes[] = {
	{.method = HTTP_GET, .path = "/pki/root.crt", .handler = root_get},
	{.method = HTTP_GET, .path = "/pki/issuing.crt", .handler = issuing_get},
	{.method = HTTP_GET, .path = "/pki/issuing.crl", .handler = crl_get},
	{.method = HTTP_POST, .path = "/pki/ocsp", .body_max = PKI_PROTOCOL_BODY_MAX,
	 .content_type = "application/ocsp-request", .handler = ocsp_post},
	{.method = HTTP_GET, .path = "/pki/ocsp/{*rest}", .handler = ocsp_get, .name = "/pki/ocsp/{req}"},
	{.method = HTTP_POST, .path = "/pki/tsa", .body_max = PKI_PROTOCOL_BODY_MAX,
	 .content_type = "application/timestamp-query", .handler = tsa_post},
	{.method = HTTP_POST, .path = "/api/v1/certificates", .auth = AUTH_API | AUTH_CSRF, .perm = "pki.cert.issue",
	 .body_max = PKI_ISSUE_BODY_MAX, .handler = cert_issue},
	{.method = HTTP_POST, .path = "/api/v1/certificates/pkcs12", .auth = AUTH_API | AUTH_CSRF,
	 .perm = "pki.cert.issue", .body_max = PKI_PKCS12_BODY_MAX, .handler = cert_issue_p12, .blocking = true},
	{.method = HTTP_GET, .path = "/api/v1/certificates/{serial}", .auth = AUTH_API, .perm = "pki.cert.read",
	 .handler = cert_get},
	{.method = HTTP_POST, .path = "/api/v1/certificates/{serial}/revoke", .auth = AUTH_API | AUTH_CSRF,
	 .perm = "pki.cert.revoke", .body_max = PKI_REVOKE_BODY_MAX, .handler = cert_revoke},
};

static const db_migration migrations[] = {
	{.version = 1,
	 .name = "certificates and audit checkpoints",
	 .sql = "CREATE TABLE pki_cert ("
		" serial TEXT PRIMARY KEY,"
		" owner TEXT NOT NULL,"
		" profile TEXT NOT NULL,"
		" subject TEXT NOT NULL,"
		" not_before TEXT NOT NULL,"
		" not_after TEXT NOT NULL,"
		" status TEXT NOT NULL CHECK (status IN ('good', 'revoked')),"
		" revoked_at TEXT,"
		" reason TEXT,"
		" der TEXT NOT NULL);"
		"CREATE INDEX pki_cert_owner ON pki_cert (owner);"
		"CREATE INDEX pki_cert_status ON pki_cert (status);"
		"CREATE TABLE pki_audit_checkpoint ("
		" seq BIGINT PRIMARY KEY,"
		" hash TEXT NOT NULL,"
		" token TEXT NOT NULL,"
		" created_at TEXT NOT NULL);"},
};

/* The CA stays loaded until exit (pki.h): no stop hook. */
const egov_module pki_module = {
	.name = "pki",
	.config = &pki_config_section,
	.migrations = migrations,
	.nmigrations = sizeof migrations / sizeof migrations[0],
	.routes = routes,
	.nroutes = sizeof routes / sizeof routes[0],
	.init = pki_module_init,
	.start = pki_module_start,
	.verify = pki_module_verify,
};
