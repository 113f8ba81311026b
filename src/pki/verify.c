/*
 * verify.c: verification of client certificates for certificate login.
 *
 * Invariants: trust comes only from the platform root and the configured
 * anchors; the issuing CA is offered as an untrusted intermediate, never
 * as an anchor. Checks run in a fixed order (parse, chain and time, usage,
 * revocation) so a certificate gets one stable code: the first failure.
 * Revocation is looked up in pki_cert for our own certificates; for a
 * foreign issuer it is checked against that issuer's CRL when
 * pki.trust_anchor_crls holds one (anchor_crl.c), and not at all otherwise
 * (no network fetches on the login path).
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "pki/pki_int.h"
#include "core/banned.h"

static X509 *parse_cert(const void *data, size_t len)
{
	const unsigned char *p = data;
	X509 *x = NULL;
	BIO *b;

	if (len == 0 || len > (1u << 20))
		return NULL;
	/* DER first: a DER certificate may well hold a '-' byte (in its
	 * random serial, say), so the bytes cannot tell PEM by a dash. */
	x = d2i_X509(NULL, &p, (long)len);
	if (x && p != (const unsigned char *)data + len) {
		X509_free(x);
		x = NULL;
	}
	if (!x && len > 10 && memchr(data, '-', len < 64 ? len : 64)) {
		if ((b = BIO_new_mem_buf(data, (int)len)))
			x = PEM_read_bio_X509(b, NULL, NULL, NULL);
		BIO_free(b);
	}
	ERR_clear_error();
	return x;
}

static void entry_text(X509_NAME *n, int nid, char *out, size_t outlen)
{
	int i = X509_NAME_get_index_by_NID(n, nid, -1);
	unsigned char *utf = NULL;
	int len;

	out[0] = '\0';
	if (i < 0)
		return;
	len = ASN1_STRING_to_UTF8(&utf, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i)));
	if (len > 0)
		snprintf(out, outlen, "%.*s", len, utf);
	OPENSSL_free(utf);
}

static void name_text(const X509_NAME *n, char *out, size_t outlen)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len;

	out[0] = '\0';
	if (b && X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		len = BIO_get_mem_data(b, &data);
		snprintf(out, outlen, "%.*s", (int)len, data);
	}
	BIO_free(b);
}

/* Hex SHA-256 of the certificate's SubjectPublicKeyInfo, "" if unreadable. */
static void spki_hash(X509 *x, char out[65])
{
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	int n;

	out[0] = '\0';
	n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	if (n > 0 && EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL) && mdlen == 32)
		for (i = 0; i < mdlen; i++)
			snprintf(out + 2 * i, 3, "%02x", md[i]);
	OPENSSL_free(der);
}

static const char *chain_code(int verr)
{
	switch (verr) {
	case X509_V_OK:
		return NULL;
	case X509_V_ERR_CERT_REVOKED:
		return "pki.cert_revoked";
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return "pki.cert_expired";
	case X509_V_ERR_INVALID_PURPOSE:
		return "pki.cert_wrong_usage";
	default:
		return "pki.cert_untrusted";
	}
}

egov_err pki_verify_chain(db_conn *c, const void *cert, size_t len, pki_verify_result *res)
{
	X509 *x = NULL;
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	STACK_OF(X509) *untrusted = NULL;
	STACK_OF(X509) *chain;
	STACK_OF(X509_CRL) *crls = NULL;
	uint32_t ku, xku;
	int i;
	egov_err err = EGOV_EAUTH;

	memset(res, 0, sizeof *res);
	res->code = "pki.cert_untrusted";
	if (!pki_g.open) {
		err = EGOV_EUNAVAILABLE;
		goto out;
	}
	if (!(x = parse_cert(cert, len))) {
		res->code = "pki.cert_invalid";
		goto out;
	}
	name_text(X509_get_subject_name(x), res->subject, sizeof res->subject);
	name_text(X509_get_issuer_name(x), res->issuer, sizeof res->issuer);
	pki_serial_hex(X509_get0_serialNumber(x), res->serial, sizeof res->serial);
	entry_text(X509_get_subject_name(x), NID_commonName, res->cn, sizeof res->cn);
	entry_text(X509_get_subject_name(x), NID_userId, res->uid, sizeof res->uid);
	spki_hash(x, res->spki_sha256);

	err = EGOV_ENOMEM;
	if (!(store = X509_STORE_new()) || !X509_STORE_add_cert(store, pki_g.root) ||
	    !(untrusted = sk_X509_new_null()) || !sk_X509_push(untrusted, pki_g.issuing))
		goto out;
	for (i = 0; i < sk_X509_num(pki_g.anchors); i++)
		if (!X509_STORE_add_cert(store, sk_X509_value(pki_g.anchors, i)))
			goto out;
	if (!(ctx = X509_STORE_CTX_new()) || !X509_STORE_CTX_init(ctx, store, x, untrusted))
		goto out;
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
	/* Our own certificates' status is in the database; a foreign one is
	 * checked against its issuer's CRL when the operator provides one.
	 * CRL_CHECK covers the leaf only: an external intermediate is
	 * configured as an anchor, and anchors are trusted as configured. */
	if (X509_check_issued(pki_g.issuing, x) != X509_V_OK &&
	    (crls = pki_anchor_crls_for(X509_get_issuer_name(x)))) {
		X509_STORE_CTX_set0_crls(ctx, crls);
		X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_CRL_CHECK);
	}
	err = EGOV_EAUTH;
	if (X509_verify_cert(ctx) != 1) {
		res->code = chain_code(X509_STORE_CTX_get_error(ctx));
		if (!res->code)
			res->code = "pki.cert_untrusted";
		goto out;
	}
	/* The chain ran through our issuing CA iff it is the direct issuer. */
	chain = X509_STORE_CTX_get0_chain(ctx);
	res->platform = X509_check_issued(pki_g.issuing, x) == X509_V_OK && sk_X509_num(chain) == 3;
	res->external = sk_X509_num(chain) > 0 &&
			X509_cmp(sk_X509_value(chain, sk_X509_num(chain) - 1), pki_g.root) != 0;
	/* The purpose check accepts a certificate with no EKU; login does not. */
	ku = X509_get_key_usage(x);
	xku = X509_get_extended_key_usage(x);
	if (!(X509_get_extension_flags(x) & EXFLAG_XKUSAGE) || !(xku & XKU_SSL_CLIENT) ||
	    ((X509_get_extension_flags(x) & EXFLAG_KUSAGE) && !(ku & KU_DIGITAL_SIGNATURE))) {
		res->code = "pki.cert_wrong_usage";
		goto out;
	}
	if (res->platform) {
		char norm[PKI_SERIAL_HEX];
		db_rows *rows = NULL;
		bool has = false;
		db_param p[1];

		if (!pki_serial_norm(res->serial, norm)) {
			res->code = "pki.cert_untrusted";
			goto out;
		}
		p[0] = DBP_S(norm);
		if ((err = db_query(c, "SELECT status, profile FROM pki_cert WHERE serial = ?", p, 1, &rows)) ||
		    (err = db_rows_next(rows, &has))) {
			db_rows_free(rows);
			res->code = "pki.cert_untrusted";
			goto out;
		}
		err = EGOV_EAUTH;
		if (!has) {
			/* Signed by our key yet not in our table: not something
			 * we issued through this module. */
			res->code = "pki.cert_untrusted";
		} else if (db_rows_text(rows, 0) && strcmp(db_rows_text(rows, 0), "good") != 0) {
			res->code = "pki.cert_revoked";
		} else {
			snprintf(res->profile, sizeof res->profile, "%s",
				 db_rows_text(rows, 1) ? db_rows_text(rows, 1) : "");
			res->code = NULL;
		}
		db_rows_free(rows);
		if (res->code)
			goto out;
	}
	res->code = NULL;
	err = EGOV_OK;
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	sk_X509_free(untrusted);
	X509_STORE_free(store);
	X509_free(x);
	return err;
}
