/*
 * certs.c: the subsystems' certificates in the registry. A certificate is
 * either issued here, by the platform CA from a subsystem's CSR, or issued
 * elsewhere and given to us: then it must chain to the platform CA or a
 * trust anchor of the PKI. Either way it is registered with its serial,
 * expiry and SHA-256, which is how signatures and TLS peers name it.
 * Whether a registered certificate goes into the next global
 * configuration (not expired, not revoked) is decided here too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "audit/audit.h"
#include "core/timeutil.h"
#include "exchange/keys/keys.h"
#include "exchange/registry/registry_int.h"
#include "pki/pki.h"
#include "core/banned.h"

/* The chain check for a certificate given to us (not issued here): the
 * platform CA or a trust anchor, through pki. A signing certificate
 * commonly has no TLS client usage, which pki's login check demands, so
 * then the chain is checked here once more without a purpose, against the
 * platform CA only. */
static egov_err check_chain(db_conn *c, X509 *x, const char *usage, char *pki_serial, size_t plen, reg_why *why)
{
	unsigned char *der = NULL;
	pki_verify_result res;
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509 *root = NULL, *issuing = NULL;
	STACK_OF(X509) *untrusted = NULL;
	const unsigned char *p;
	size_t rlen = 0, ilen = 0;
	int n = i2d_X509(x, &der);
	egov_err err;

	pki_serial[0] = '\0';
	if (n <= 0)
		return EGOV_ENOMEM;
	err = pki_verify_chain(c, der, (size_t)n, &res);
	if (err == EGOV_OK) {
		if (res.platform)
			snprintf(pki_serial, plen, "%s", res.serial);
		goto out;
	}
	if (err != EGOV_EAUTH)
		goto out;
	if (strcmp(usage, "sign") != 0 || !res.code || strcmp(res.code, "pki.cert_wrong_usage") != 0) {
		reg_why_set(why, res.code ? res.code : "pki.cert_untrusted", "certificate", NULL);
		goto out;
	}
	err = EGOV_ENOMEM;
	p = pki_root_der(&rlen);
	if (!p || !(root = d2i_X509(NULL, &p, (long)rlen)))
		goto out;
	p = pki_issuing_der(&ilen);
	if (!p || !(issuing = d2i_X509(NULL, &p, (long)ilen)))
		goto out;
	if (!(store = X509_STORE_new()) || !X509_STORE_add_cert(store, root) || !(untrusted = sk_X509_new_null()) ||
	    !sk_X509_push(untrusted, issuing) || !(ctx = X509_STORE_CTX_new()) ||
	    !X509_STORE_CTX_init(ctx, store, x, untrusted))
		goto out;
	err = EGOV_EAUTH;
	if (X509_verify_cert(ctx) != 1 || X509_check_issued(issuing, x) != X509_V_OK) {
		reg_why_set(why, "pki.cert_untrusted", "certificate", NULL);
		goto out;
	}
	{
		pki_cert_info ci = {0};
		egov_err e2 = pki_cert_get(c, res.serial, &ci);
		if (e2 == EGOV_OK && strcmp(ci.status, "good") == 0) {
			snprintf(pki_serial, plen, "%s", ci.serial);
			err = EGOV_OK;
		} else if (e2 == EGOV_OK || e2 == EGOV_ENOTFOUND) {
			reg_why_set(why, e2 == EGOV_OK ? "pki.cert_revoked" : "pki.cert_untrusted", "certificate", NULL);
		} else {
			err = e2;
		}
		pki_cert_info_release(&ci);
	}
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	sk_X509_free(untrusted);
	X509_STORE_free(store);
	X509_free(root);
	X509_free(issuing);
	OPENSSL_free(der);
	return err;
}

static void asn1_text(const ASN1_TIME *t, char out[32])
{
	struct tm tm;

	out[0] = '\0';
	if (t && ASN1_TIME_to_tm(t, &tm) == 1)
		time_format_rfc3339((int64_t)timegm(&tm) * 1000000, 0, out);
}

/* Registers a certificate (PEM) for a subsystem. issued: it comes from
 * pki_issue_from_csr just now (so no chain check). */
static egov_err register_cert(db_conn *c, const char *sub, const char *usage, const char *pem, bool issued,
			      exchange_reg_item *it, char sha[65], reg_why *why)
{
	char serial[PKI_SERIAL_HEX * 2], pki_serial[PKI_SERIAL_HEX * 2] = "", not_after[32];
	X509 *x = exchange_pem_cert(pem, strlen(pem));
	egov_err err = EGOV_EINVAL;

	if (!x) {
		reg_why_set(why, "pki.cert_invalid", "certificate", NULL);
		goto out;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
		reg_why_set(why, "pki.cert_expired", "certificate", NULL);
		goto out;
	}
	if (!issued && (err = check_chain(c, x, usage, pki_serial, sizeof pki_serial, why)))
		goto out;
	{
		ASN1_INTEGER *s = X509_get_serialNumber(x);
		BIGNUM *bn = ASN1_INTEGER_to_BN(s, NULL);
		char *hex = bn ? BN_bn2hex(bn) : NULL;
		size_t i;
		snprintf(serial, sizeof serial, "%s", hex ? hex : "");
		for (i = 0; serial[i]; i++)
			if (serial[i] >= 'A' && serial[i] <= 'F')
				serial[i] = (char)(serial[i] - 'A' + 'a');
		OPENSSL_free(hex);
		BN_free(bn);
	}
	if (issued)
		snprintf(pki_serial, sizeof pki_serial, "%s", serial);
	asn1_text(X509_get0_notAfter(x), not_after);
	if ((err = exchange_cert_sha256(x, sha)))
		goto out;
	it->kind = EXCHANGE_REG_CERT;
	it->id = sub;
	it->usage = usage;
	it->serial = serial;
	it->pki_serial = pki_serial;
	it->not_after = not_after;
	it->pem = pem;
	it->sha256 = sha;
	err = exchange_reg_add(c, it, NULL, why);
out:
	X509_free(x);
	return err;
}

/* The subsystem and usage of a certificate to register, as given. */
static egov_err cert_for_valid(const char *sub, const char *usage, reg_why *why)
{
	reg_why_set(why, NULL, NULL, NULL);
	if (!exchange_id_valid(sub, EXCHANGE_ID_SUBSYSTEM) || !registry_instance_ok(sub)) {
		reg_why_set(why, "validation.invalid_field", "subsystem", "INSTANCE/CLASS/MEMBER/SUBSYSTEM");
		return EGOV_EINVAL;
	}
	if (!usage || (strcmp(usage, "sign") != 0 && strcmp(usage, "tls") != 0)) {
		reg_why_set(why, "validation.invalid_field", "usage", "sign or tls");
		return EGOV_EINVAL;
	}
	return EGOV_OK;
}

egov_err exchange_reg_cert_issue(db_conn *c, const char *sub, const char *usage, const char *csr, size_t len,
				 char sha[65], char **pem_out, reg_why *why)
{
	pki_cert_info ci = {0};
	exchange_reg_item it = {0};
	char cn[EXCHANGE_PART_MAX + 1];
	const char *code = NULL, *last;
	egov_err err;

	*pem_out = NULL;
	if ((err = cert_for_valid(sub, usage, why)))
		return err;
	{
		bool found = false;
		if ((err = registry_exists(c, "SELECT 1 FROM exchange_subsystem WHERE id = ?", sub, &found)))
			return err;
		if (!found) {
			reg_why_set(why, "exchange.unknown_subsystem", "subsystem", NULL);
			return EGOV_ENOTFOUND;
		}
	}
	/* The CA takes a CN of at most 64 characters; the owner (UID) is
	 * the full id either way. */
	last = strrchr(sub, '/');
	snprintf(cn, sizeof cn, "%s", strlen(sub) <= 64 ? sub : last + 1);
	err = pki_issue_from_csr(c, csr, len, strcmp(usage, "sign") == 0 ? "system_sign" : "system_tls", sub,
				 cn, &ci, &code);
	if (err) {
		if (code)
			reg_why_set(why, code, "csr", NULL);
		return err;
	}
	if (audit_available()) {
		char object[64], details[EXCHANGE_ID_MAX + 64];
		snprintf(object, sizeof object, "cert:%s", ci.serial);
		snprintf(details, sizeof details, "{\"profile\":\"%s\",\"owner\":\"%s\"}", ci.profile, sub);
		audit_append("exchange", "pki.cert.issue", object, details, NULL);
	}
	err = register_cert(c, sub, usage, ci.pem, true, &it, sha, why);
	if (!err) {
		*pem_out = ci.pem;
		ci.pem = NULL;
	}
	pki_cert_info_release(&ci);
	return err;
}

egov_err exchange_reg_cert_add(db_conn *c, const char *sub, const char *usage, const char *pem, char sha[65],
			       reg_why *why)
{
	exchange_reg_item it = {0};
	egov_err err;

	if ((err = cert_for_valid(sub, usage, why)))
		return err;
	return register_cert(c, sub, usage, pem, false, &it, sha, why);
}


bool registry_cert_current(db_conn *c, const char *pki_serial, const char *not_after, int64_t now_us)
{
	int64_t na = 0;
	pki_cert_info ci = {0};
	bool ok;

	if (!not_after || time_parse_rfc3339(not_after, &na) || na <= now_us)
		return false;
	if (!pki_serial)
		return true; /* issued elsewhere: expiry is what we can see */
	if (pki_cert_get(c, pki_serial, &ci))
		return false;
	ok = strcmp(ci.status, "good") == 0;
	pki_cert_info_release(&ci);
	return ok;
}
