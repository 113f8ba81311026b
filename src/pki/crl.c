/*
 * crl.c: the issuing CA's certificate revocation list (X.509 v2 CRL).
 *
 * Invariants: the CRL lists every revoked certificate in pki_cert, is
 * signed by the issuing CA, carries a CRL number that grows with time
 * (milliseconds since the epoch, so several nodes never go backwards) and a
 * nextUpdate PKI_CRL_HOURS ahead. One DER copy is cached under crl_lock;
 * a local revocation drops it, and a copy older than PKI_CRL_REFRESH_US is
 * rebuilt so a revocation on another node shows within that time.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "core/timeutil.h"
#include "pki/pki_int.h"
#include "core/banned.h"

void pki_crl_invalidate(void)
{
	pthread_mutex_lock(&pki_g.crl_lock);
	pki_g.crl_made_us = 0;
	pthread_mutex_unlock(&pki_g.crl_lock);
}

static egov_err add_revoked(X509_CRL *crl, const char *serial_hex, const char *when, const char *reason)
{
	X509_REVOKED *rv = X509_REVOKED_new();
	ASN1_TIME *t = NULL;
	ASN1_ENUMERATED *code = NULL;
	BIGNUM *bn = NULL;
	ASN1_INTEGER *serial = NULL;
	int64_t us = 0;
	int rc = pki_reason_code(reason);
	egov_err err = EGOV_ENOMEM;

	if (!rv || !BN_hex2bn(&bn, serial_hex) || !(serial = BN_to_ASN1_INTEGER(bn, NULL)))
		goto out;
	if (time_parse_rfc3339(when, &us))
		us = time_now_us();
	if (!(t = ASN1_TIME_set(NULL, (time_t)(us / 1000000))) || !X509_REVOKED_set_serialNumber(rv, serial) ||
	    !X509_REVOKED_set_revocationDate(rv, t))
		goto out;
	/* RFC 5280 5.3.1: reasonCode is absent rather than "unspecified". */
	if (rc > 0) {
		if (!(code = ASN1_ENUMERATED_new()) || !ASN1_ENUMERATED_set(code, rc) ||
		    !X509_REVOKED_add1_ext_i2d(rv, NID_crl_reason, code, 0, 0))
			goto out;
	}
	if (!X509_CRL_add0_revoked(crl, rv))
		goto out;
	rv = NULL;
	err = EGOV_OK;
out:
	ASN1_ENUMERATED_free(code);
	ASN1_TIME_free(t);
	ASN1_INTEGER_free(serial);
	BN_free(bn);
	X509_REVOKED_free(rv);
	return err;
}

static egov_err build(db_conn *c, unsigned char **der_out, size_t *len_out)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *last = NULL, *next = NULL;
	ASN1_INTEGER *number = NULL;
	db_rows *rows = NULL;
	bool has = false;
	time_t now = time(NULL);
	X509V3_CTX ctx;
	X509_EXTENSION *aki = NULL;
	unsigned char *der = NULL;
	int n;
	egov_err err = EGOV_ENOMEM;

	if (!crl || !X509_CRL_set_version(crl, 1) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(pki_g.issuing)) ||
	    !(last = ASN1_TIME_set(NULL, now)) || !(next = ASN1_TIME_adj(NULL, now, 0, PKI_CRL_HOURS * 3600)) ||
	    !X509_CRL_set1_lastUpdate(crl, last) || !X509_CRL_set1_nextUpdate(crl, next))
		goto out;
	if ((err = db_query(c, "SELECT serial, revoked_at, reason FROM pki_cert WHERE status = 'revoked'", NULL, 0,
			    &rows)))
		goto out;
	while (!(err = db_rows_next(rows, &has)) && has) {
		if ((err = add_revoked(crl, db_rows_text(rows, 0), db_rows_text(rows, 1) ? db_rows_text(rows, 1) : "",
				       db_rows_text(rows, 2))))
			goto out;
	}
	if (err)
		goto out;
	err = EGOV_ENOMEM;
	X509V3_set_ctx(&ctx, pki_g.issuing, NULL, NULL, crl, 0);
	if (!(number = ASN1_INTEGER_new()) || !ASN1_INTEGER_set_int64(number, time_now_us() / 1000) ||
	    !X509_CRL_add1_ext_i2d(crl, NID_crl_number, number, 0, 0) ||
	    !(aki = X509V3_EXT_nconf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always")) ||
	    !X509_CRL_add_ext(crl, aki, -1))
		goto out;
	if (!X509_CRL_sort(crl) || !X509_CRL_sign(crl, pki_g.issuing_key, EVP_sha256()))
		goto out;
	if ((n = i2d_X509_CRL(crl, &der)) <= 0 || !(*der_out = malloc((size_t)n)))
		goto out;
	memcpy(*der_out, der, (size_t)n);
	*len_out = (size_t)n;
	err = EGOV_OK;
out:
	ERR_clear_error();
	OPENSSL_free(der);
	X509_EXTENSION_free(aki);
	ASN1_INTEGER_free(number);
	ASN1_TIME_free(last);
	ASN1_TIME_free(next);
	db_rows_free(rows);
	X509_CRL_free(crl);
	return err;
}

egov_err pki_crl_der(db_conn *c, unsigned char **der, size_t *len)
{
	unsigned char *fresh = NULL;
	size_t flen = 0;
	int64_t now = time_mono_us();
	egov_err err = EGOV_EUNAVAILABLE;

	*der = NULL;
	*len = 0;
	if (!pki_g.open)
		return err;
	pthread_mutex_lock(&pki_g.crl_lock);
	if (!pki_g.crl_der || pki_g.crl_made_us == 0 || now - pki_g.crl_made_us > PKI_CRL_REFRESH_US) {
		/* Built under the lock: concurrent readers wait for one build
		 * instead of each signing their own. */
		if ((err = build(c, &fresh, &flen)))
			goto out;
		free(pki_g.crl_der);
		pki_g.crl_der = fresh;
		pki_g.crl_len = flen;
		pki_g.crl_made_us = now;
	}
	err = EGOV_ENOMEM;
	if (!(*der = malloc(pki_g.crl_len)))
		goto out;
	memcpy(*der, pki_g.crl_der, pki_g.crl_len);
	*len = pki_g.crl_len;
	err = EGOV_OK;
out:
	pthread_mutex_unlock(&pki_g.crl_lock);
	return err;
}
