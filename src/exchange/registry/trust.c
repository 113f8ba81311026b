/*
 * trust.c: the other instances this registry trusts (federation, as
 * X-Road federates instances; docs/exchange.md, "Federation").
 *
 * Trusting an instance is trusting its central node's configuration
 * signing certificate, as an X-Road central server trusts a federated
 * instance's configuration anchor: the certificate is not checked
 * against our platform CA (another instance has its own), it is pinned.
 * It must be a certificate with an EC P-256 key (the configuration is
 * signed with ES256) that has not expired. With it goes the base URL of
 * that central node, which this registry publishes to its gateways so
 * they download that instance's configuration from there and check it
 * against the pinned certificate.
 */
#include <string.h>
#include <time.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/x509.h>

#include "core/timeutil.h"
#include "exchange/keys/keys.h"
#include "exchange/registry/registry_int.h"
#include "core/banned.h"

/* Whether x's key is an EC key on P-256. */
static bool p256(X509 *x)
{
	EVP_PKEY *k = X509_get0_pubkey(x);
	char group[32];
	size_t n = 0;

	return k && EVP_PKEY_id(k) == EVP_PKEY_EC &&
	       EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof group, &n) == 1 &&
	       (strcmp(group, SN_X9_62_prime256v1) == 0 || strcmp(group, "P-256") == 0);
}

egov_err exchange_reg_trust_add(db_conn *c, const char *instance, const char *url, const char *pem, char sha[65],
				bool *replaced, reg_why *why)
{
	exchange_reg_item it = {.kind = EXCHANGE_REG_TRUST, .id = instance, .url = url, .pem = pem};
	X509 *x = NULL;
	struct tm tm;
	char not_after[32];
	egov_err err = EGOV_EINVAL;

	sha[0] = '\0';
	if (replaced)
		*replaced = false;
	reg_why_set(why, NULL, NULL, NULL);
	if (!pem || !(x = exchange_pem_cert(pem, strlen(pem)))) {
		reg_why_set(why, "pki.cert_invalid", "certificate", "a PEM certificate");
		goto out;
	}
	if (!p256(x)) {
		reg_why_set(why, "validation.invalid_field", "certificate", "an EC P-256 key (ES256)");
		goto out;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0 || ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1) {
		reg_why_set(why, "pki.cert_expired", "certificate", NULL);
		goto out;
	}
	time_format_rfc3339((int64_t)timegm(&tm) * 1000000, 0, not_after);
	if ((err = exchange_cert_sha256(x, sha)))
		goto out;
	it.sha256 = sha;
	it.not_after = not_after;
	err = exchange_reg_add(c, &it, replaced, why);
out:
	ERR_clear_error();
	X509_free(x);
	return err;
}
