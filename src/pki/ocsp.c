/*
 * ocsp.c: the OCSP responder (RFC 6960) for certificates of the issuing CA.
 *
 * Invariants: every request gets a DER OCSPResponse, never a crash or an
 * HTTP error: bytes that are not a request (or ask about more than
 * PKI_OCSP_MAX_IDS certificates) get malformedRequest, a database failure
 * internalError. Statuses come from pki_cert at the moment of the request
 * (no cache), so a revocation shows at once on every node. A serial of our
 * issuing CA that we never issued is "unknown". A request about any
 * certificate of another issuer gets the unsigned "unauthorized" (RFC 6960
 * 2.3): the issuing CA, which signs our answers (4.2.2.2 allows the CA),
 * cannot speak for another CA's certificates, and a signed "unknown" about
 * them would look like an answer from a responder that knows them.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ocsp.h>

#include "core/timeutil.h"
#include "pki/pki_int.h"
#include "core/banned.h"

static egov_err finish(OCSP_RESPONSE *resp, unsigned char **out, size_t *len)
{
	unsigned char *der = NULL;
	int n = resp ? i2d_OCSP_RESPONSE(resp, &der) : -1;
	egov_err err = EGOV_ENOMEM;

	if (n > 0 && (*out = malloc((size_t)n))) {
		memcpy(*out, der, (size_t)n);
		*len = (size_t)n;
		err = EGOV_OK;
	}
	OPENSSL_free(der);
	return err;
}

static egov_err status_only(int status, unsigned char **out, size_t *len)
{
	OCSP_RESPONSE *resp = OCSP_response_create(status, NULL);
	egov_err err = finish(resp, out, len);

	OCSP_RESPONSE_free(resp);
	return err;
}

/* lookup()'s answers besides the V_OCSP_CERTSTATUS_* ones. */
#define LOOKUP_DB_FAILED (-1)
#define LOOKUP_NOT_OURS (-2)

/* Status of one certificate id; LOOKUP_NOT_OURS when another issuer's (or
 * asked with a hash we do not know), LOOKUP_DB_FAILED on a database
 * failure. */
static int lookup(db_conn *c, OCSP_CERTID *id, int *reason, int64_t *revoked_at)
{
	ASN1_OBJECT *md_oid = NULL;
	ASN1_INTEGER *serial = NULL;
	const EVP_MD *md;
	OCSP_CERTID *ours = NULL;
	char hex[PKI_SERIAL_HEX * 2], norm[PKI_SERIAL_HEX];
	db_rows *rows = NULL;
	bool has = false;
	int status = LOOKUP_NOT_OURS;

	if (!OCSP_id_get0_info(NULL, &md_oid, NULL, &serial, id) ||
	    !(md = EVP_get_digestbyobj(md_oid)))
		goto out;
	/* Same hash as the client used, over our issuer's name and key. */
	ours = OCSP_cert_id_new(md, X509_get_subject_name(pki_g.issuing), X509_get0_pubkey_bitstr(pki_g.issuing),
				serial);
	if (!ours || OCSP_id_issuer_cmp(ours, id) != 0)
		goto out;
	status = V_OCSP_CERTSTATUS_UNKNOWN;
	pki_serial_hex(serial, hex, sizeof hex);
	if (!pki_serial_norm(hex, norm))
		goto out;
	{
		db_param p[] = {DBP_S(norm)};
		if (db_query(c, "SELECT status, revoked_at, reason FROM pki_cert WHERE serial = ?", p, 1, &rows) ||
		    db_rows_next(rows, &has)) {
			status = LOOKUP_DB_FAILED;
			goto out;
		}
	}
	if (!has)
		goto out;
	if (db_rows_text(rows, 0) && strcmp(db_rows_text(rows, 0), "revoked") == 0) {
		int64_t us = 0;
		status = V_OCSP_CERTSTATUS_REVOKED;
		if (!db_rows_text(rows, 1) || time_parse_rfc3339(db_rows_text(rows, 1), &us))
			us = 0;
		*revoked_at = us / 1000000;
		*reason = pki_reason_code(db_rows_text(rows, 2));
	} else {
		status = V_OCSP_CERTSTATUS_GOOD;
	}
out:
	db_rows_free(rows);
	OCSP_CERTID_free(ours);
	return status;
}

egov_err pki_ocsp_respond(db_conn *c, const void *request, size_t len, unsigned char **resp, size_t *resp_len)
{
	const unsigned char *p = request;
	OCSP_REQUEST *oreq = NULL;
	OCSP_BASICRESP *bs = NULL;
	OCSP_RESPONSE *out = NULL;
	ASN1_TIME *now = NULL, *next = NULL, *rev = NULL;
	int i, n;
	egov_err err;

	*resp = NULL;
	*resp_len = 0;
	if (!pki_g.open) {
		err = status_only(OCSP_RESPONSE_STATUS_TRYLATER, resp, resp_len);
		goto out;
	}
	if (len == 0 || len > PKI_PROTOCOL_BODY_MAX || !(oreq = d2i_OCSP_REQUEST(NULL, &p, (long)len)) ||
	    p != (const unsigned char *)request + len || (n = OCSP_request_onereq_count(oreq)) <= 0 ||
	    n > PKI_OCSP_MAX_IDS) {
		err = status_only(OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, resp, resp_len);
		goto out;
	}
	err = EGOV_ENOMEM;
	if (!(bs = OCSP_BASICRESP_new()) || !(now = ASN1_TIME_set(NULL, time(NULL))) ||
	    !(next = ASN1_TIME_adj(NULL, time(NULL), 0, 3600)))
		goto fail;
	for (i = 0; i < n; i++) {
		OCSP_CERTID *id = OCSP_onereq_get0_id(OCSP_request_onereq_get0(oreq, i));
		int reason = -1, status;
		int64_t revoked_at = 0;

		status = lookup(c, id, &reason, &revoked_at);
		if (status == LOOKUP_NOT_OURS) {
			err = status_only(OCSP_RESPONSE_STATUS_UNAUTHORIZED, resp, resp_len);
			goto out;
		}
		if (status < 0) {
			err = status_only(OCSP_RESPONSE_STATUS_INTERNALERROR, resp, resp_len);
			goto out;
		}
		ASN1_TIME_free(rev);
		rev = NULL;
		if (status == V_OCSP_CERTSTATUS_REVOKED && !(rev = ASN1_TIME_set(NULL, (time_t)revoked_at)))
			goto fail;
		/* nextUpdate an hour ahead: clients may cache that long; a
		 * revocation is visible to any client that asks again. */
		if (!OCSP_basic_add1_status(bs, id, status, reason > 0 ? reason : -1, rev, now, next))
			goto fail;
	}
	if (OCSP_copy_nonce(bs, oreq) <= 0)
		goto fail;
	if (!OCSP_basic_sign(bs, pki_g.issuing, pki_g.issuing_key, EVP_sha256(), NULL, 0))
		goto fail;
	out = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs);
	err = finish(out, resp, resp_len);
	goto out;
fail:
	ERR_clear_error();
	err = status_only(OCSP_RESPONSE_STATUS_INTERNALERROR, resp, resp_len);
out:
	ERR_clear_error();
	ASN1_TIME_free(now);
	ASN1_TIME_free(next);
	ASN1_TIME_free(rev);
	OCSP_RESPONSE_free(out);
	OCSP_BASICRESP_free(bs);
	OCSP_REQUEST_free(oreq);
	return err;
}
