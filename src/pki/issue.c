/*
 * issue.c: certificates for people and systems: profiles, CSR checks,
 * server-side key pairs as PKCS#12, the pki_cert table and revocation.
 *
 * Invariants: the subject of an issued certificate is built here from the
 * owner and a validated CN; of a CSR only its public key (after its
 * signature verified) and its CN are used. Serials are 128 random bits,
 * positive; the table's primary key settles a collision and the serial is
 * drawn again. Every certificate issued is in pki_cert before it is
 * returned. Private keys made for PKCS#12 are never written anywhere.
 * Through pki_issue_from_csr_audited(), pki_issue_pkcs12() and
 * pki_revoke(), a certificate is issued or revoked in one transaction with
 * its audit record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>

#include "audit/audit.h"
#include "core/app.h"
#include "core/crypto.h"
#include "core/timeutil.h"
#include "pki/pki_int.h"
#include "core/banned.h"

typedef struct profile {
	const char *name;
	const char *ku_ec, *ku_rsa;
	const char *eku; /* NULL: none */
} profile;

static const profile profiles[] = {
	{"person_auth", "critical,digitalSignature", "critical,digitalSignature", "clientAuth"},
	{"person_sign", "critical,digitalSignature,nonRepudiation", "critical,digitalSignature,nonRepudiation",
	 "emailProtection"},
	/* keyAgreement lets an EC key do ECDH; an RSA key encrypts instead. */
	{"system_tls_client", "critical,digitalSignature,keyAgreement", "critical,digitalSignature,keyEncipherment",
	 "clientAuth"},
	{"system_sign", "critical,digitalSignature,nonRepudiation", "critical,digitalSignature,nonRepudiation",
	 NULL},
	/* A node that is both ends of mutual TLS (an exchange gateway's peer
	 * listener, and its calls to other gateways). */
	{"system_tls", "critical,digitalSignature,keyAgreement", "critical,digitalSignature,keyEncipherment",
	 "serverAuth,clientAuth"},
};

static const profile *profile_find(const char *name)
{
	size_t i;

	for (i = 0; name && i < sizeof profiles / sizeof profiles[0]; i++)
		if (strcmp(profiles[i].name, name) == 0)
			return &profiles[i];
	return NULL;
}

bool pki_profile_valid(const char *name)
{
	return profile_find(name) != NULL;
}

static const struct {
	const char *name;
	int code;
} reasons[] = {
	{"unspecified", 0},        {"keyCompromise", 1},        {"cACompromise", 2},
	{"affiliationChanged", 3}, {"superseded", 4},           {"cessationOfOperation", 5},
	{"privilegeWithdrawn", 9},
};

int pki_reason_code(const char *name)
{
	size_t i;

	for (i = 0; name && i < sizeof reasons / sizeof reasons[0]; i++)
		if (strcmp(reasons[i].name, name) == 0)
			return reasons[i].code;
	return -1;
}

bool pki_reason_valid(const char *name)
{
	return pki_reason_code(name) >= 0;
}

void pki_cert_info_release(pki_cert_info *ci)
{
	if (!ci)
		return;
	free(ci->pem);
	ci->pem = NULL;
}

/* ---- checks ------------------------------------------------------------- */

/* Identifier-like text a person or system is known by: no control
 * characters, valid enough to go in a name; 1..max bytes. */
static bool text_ok(const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;
	size_t i;

	if (n == 0 || n > max)
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static bool cn_ok(const char *s)
{
	size_t chars = 0;
	const char *p;

	if (!text_ok(s, PKI_CN_MAX))
		return false;
	for (p = s; *p; p++)
		chars += ((unsigned char)*p & 0xc0) != 0x80;
	return chars <= PKI_CN_CHARS_MAX;
}

/* EC P-256/P-384, RSA of at least 2048 bits. */
static bool key_ok(EVP_PKEY *k)
{
	char group[64];
	size_t glen = 0;

	switch (EVP_PKEY_get_base_id(k)) {
	case EVP_PKEY_EC:
		if (!EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &glen))
			return false;
		return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0 ||
		       strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0;
	case EVP_PKEY_RSA:
		return EVP_PKEY_get_bits(k) >= 2048;
	default:
		return false;
	}
}

static X509_REQ *parse_csr(const void *data, size_t len)
{
	const unsigned char *p = data;
	X509_REQ *r = NULL;
	BIO *b;

	if (len == 0 || len > (1u << 20))
		return NULL;
	if (len > 10 && memchr(data, '-', len < 64 ? len : 64)) {
		b = BIO_new_mem_buf(data, (int)len);
		if (b)
			r = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
		BIO_free(b);
	} else {
		r = d2i_X509_REQ(NULL, &p, (long)len);
	}
	ERR_clear_error();
	return r;
}

/* The CSR subject's CN, UTF-8, into out; false if none or unusable. */
static bool csr_cn(X509_REQ *r, char *out, size_t outlen)
{
	X509_NAME *n = X509_REQ_get_subject_name(r);
	int i = n ? X509_NAME_get_index_by_NID(n, NID_commonName, -1) : -1;
	unsigned char *utf = NULL;
	int len;
	bool ok = false;

	if (i < 0)
		return false;
	len = ASN1_STRING_to_UTF8(&utf, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i)));
	if (len > 0 && (size_t)len < outlen && !memchr(utf, 0, (size_t)len)) {
		memcpy(out, utf, (size_t)len);
		out[len] = '\0';
		ok = cn_ok(out);
	}
	OPENSSL_free(utf);
	return ok;
}

/* ---- building ----------------------------------------------------------- */

static int add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;
	int ok;

	X509V3_set_ctx(&ctx, pki_g.issuing, x, NULL, NULL, 0);
	e = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
	if (!e)
		return 0;
	ok = X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok;
}

static void name_text(const X509_NAME *n, char *out, size_t outlen)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len;

	out[0] = '\0';
	if (!b)
		return;
	if (X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		len = BIO_get_mem_data(b, &data);
		snprintf(out, outlen, "%.*s", (int)len, data);
	}
	BIO_free(b);
}

static char *cert_pem(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL, *out = NULL;
	long len;

	if (b && PEM_write_bio_X509(b, x)) {
		len = BIO_get_mem_data(b, &data);
		out = malloc((size_t)len + 1);
		if (out) {
			memcpy(out, data, (size_t)len);
			out[len] = '\0';
		}
	}
	BIO_free(b);
	return out;
}

static egov_err build_cert(EVP_PKEY *pub, const profile *pr, const char *owner, const char *cn, X509 **out)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	unsigned char sb[16];
	BIGNUM *bn = NULL;
	char crl[700], aia[1500];
	int64_t nb = time(NULL) - 60, na = nb + 60 + (int64_t)PKI_EE_DAYS * 86400;
	bool rsa = EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA;
	egov_err err = EGOV_ENOMEM;

	if (pki_test_not_before || pki_test_not_after) {
		nb = pki_test_not_before;
		na = pki_test_not_after;
	}
	if (!x || !name || (err = crypto_random(sb, sizeof sb)))
		goto out;
	err = EGOV_ENOMEM;
	/* Positive and exactly 16 bytes long, so serials print alike. */
	sb[0] = (unsigned char)((sb[0] & 0x7f) | 0x40);
	bn = BN_bin2bn(sb, sizeof sb, NULL);
	snprintf(crl, sizeof crl, "URI:%s/pki/issuing.crl", pki_g.public_url);
	snprintf(aia, sizeof aia, "OCSP;URI:%s/pki/ocsp,caIssuers;URI:%s/pki/issuing.crt", pki_g.public_url,
		 pki_g.public_url);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) || !X509_set_version(x, 2) ||
	    !X509_NAME_add_entry_by_txt(name, "C", MBSTRING_UTF8, (const unsigned char *)"MO", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"egov", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "UID", MBSTRING_UTF8, (const unsigned char *)owner, -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) ||
	    !X509_set_subject_name(x, name) || !X509_set_issuer_name(x, X509_get_subject_name(pki_g.issuing)) ||
	    !ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb) || !ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na) ||
	    !X509_set_pubkey(x, pub))
		goto out;
	if (!add_ext(x, NID_basic_constraints, "critical,CA:FALSE") ||
	    !add_ext(x, NID_key_usage, rsa ? pr->ku_rsa : pr->ku_ec) ||
	    (pr->eku && !add_ext(x, NID_ext_key_usage, pr->eku)) ||
	    !add_ext(x, NID_subject_key_identifier, "hash") ||
	    !add_ext(x, NID_authority_key_identifier, "keyid:always") ||
	    !add_ext(x, NID_crl_distribution_points, crl) || !add_ext(x, NID_info_access, aia))
		goto out;
	if (!X509_sign(x, pki_g.issuing_key, EVP_sha256()))
		goto out;
	err = EGOV_OK;
out:
	ERR_clear_error();
	BN_free(bn);
	X509_NAME_free(name);
	if (err) {
		X509_free(x);
		x = NULL;
	}
	*out = x;
	return err;
}

static void fill_info(X509 *x, const char *owner, const char *profile_name, pki_cert_info *out)
{
	char ts[32];

	memset(out, 0, sizeof *out);
	pki_serial_hex(X509_get0_serialNumber(x), out->serial, sizeof out->serial);
	snprintf(out->owner, sizeof out->owner, "%s", owner);
	snprintf(out->profile, sizeof out->profile, "%s", profile_name);
	name_text(X509_get_subject_name(x), out->subject, sizeof out->subject);
	time_format_rfc3339(pki_asn1_time_unix(X509_get0_notBefore(x)) * 1000000, 0, ts);
	snprintf(out->not_before, sizeof out->not_before, "%s", ts);
	time_format_rfc3339(pki_asn1_time_unix(X509_get0_notAfter(x)) * 1000000, 0, ts);
	snprintf(out->not_after, sizeof out->not_after, "%s", ts);
	snprintf(out->status, sizeof out->status, "good");
}

/* Builds, stores and describes a certificate for pub. Each attempt is a
 * transaction (a SAVEPOINT inside the caller's), so that a serial that
 * collides is drawn again without spoiling the caller's transaction. */
static egov_err issue_key(db_conn *c, EVP_PKEY *pub, const profile *pr, const char *owner, const char *cn,
			  pki_cert_info *out, X509 **cert_out)
{
	X509 *x = NULL;
	unsigned char *der = NULL;
	char *b64 = NULL;
	int dlen, tries;
	egov_err err = EGOV_EUNAVAILABLE;

	if (!pki_g.open)
		goto out;
	for (tries = 0; tries < 5; tries++) {
		X509_free(x);
		x = NULL;
		OPENSSL_free(der);
		der = NULL;
		free(b64);
		b64 = NULL;
		if ((err = build_cert(pub, pr, owner, cn, &x)))
			goto out;
		err = EGOV_ENOMEM;
		if ((dlen = i2d_X509(x, &der)) <= 0 || !(b64 = pki_b64(der, (size_t)dlen)))
			goto out;
		fill_info(x, owner, pr->name, out);
		{
			db_param p[] = {DBP_S(out->serial),     DBP_S(owner),         DBP_S(pr->name),
					DBP_S(out->subject),    DBP_S(out->not_before), DBP_S(out->not_after),
					DBP_S(b64)};
			if ((err = db_begin(c)))
				goto out;
			err = db_end(c, db_exec(c,
						"INSERT INTO pki_cert (serial, owner, profile, subject, not_before,"
						" not_after, status, der) VALUES (?, ?, ?, ?, ?, ?, 'good', ?)",
						p, 7, NULL));
		}
		if (err != EGOV_ECONFLICT)
			break;
	}
	if (err)
		goto out;
	err = EGOV_ENOMEM;
	if (!(out->pem = cert_pem(x)))
		goto out;
	err = EGOV_OK;
out:
	OPENSSL_free(der);
	free(b64);
	if (!err && cert_out) {
		*cert_out = x;
		x = NULL;
	}
	X509_free(x);
	return err;
}

egov_err pki_issue_from_csr(db_conn *c, const void *csr, size_t len, const char *profile_name, const char *owner,
			    const char *cn, pki_cert_info *out, const char **code)
{
	const profile *pr = profile_find(profile_name);
	X509_REQ *r = NULL;
	EVP_PKEY *pub = NULL;
	char csr_name[260];
	egov_err err = EGOV_EINVAL;

	memset(out, 0, sizeof *out);
	*code = NULL;
	if (!pr) {
		*code = "pki.profile_unknown";
		goto out;
	}
	if (!text_ok(owner, PKI_OWNER_MAX) || (cn && !cn_ok(cn))) {
		*code = "pki.csr_invalid";
		goto out;
	}
	if (!(r = parse_csr(csr, len)) || !(pub = X509_REQ_get_pubkey(r))) {
		*code = "pki.csr_invalid";
		goto out;
	}
	if (!key_ok(pub)) {
		*code = "pki.key_weak";
		goto out;
	}
	if (X509_REQ_verify(r, pub) != 1) {
		*code = "pki.csr_signature";
		goto out;
	}
	if (!cn) {
		if (!csr_cn(r, csr_name, sizeof csr_name)) {
			*code = "pki.csr_invalid";
			goto out;
		}
		cn = csr_name;
	}
	err = issue_key(c, pub, pr, owner, cn, out, NULL);
out:
	ERR_clear_error();
	EVP_PKEY_free(pub);
	X509_REQ_free(r);
	return err;
}

/* The audit record of a certificate issued for who, on c (inside the
 * issuing transaction). */
static egov_err audit_issued(db_conn *c, const pki_cert_info *ci, const pki_requester *who)
{
	char object[64];
	buf d;
	egov_err err;

	if (!who || !audit_available())
		return EGOV_OK;
	snprintf(object, sizeof object, "cert:%s", ci->serial);
	buf_init(&d, 2048);
	err = buf_adds(&d, "{\"profile\":\"");
	if (!err)
		err = buf_add_json_str(&d, ci->profile);
	if (!err)
		err = buf_adds(&d, "\",\"owner\":\"");
	if (!err)
		err = buf_add_json_str(&d, ci->owner);
	if (!err && who->via && !(err = buf_adds(&d, "\",\"via\":\"")))
		err = buf_add_json_str(&d, who->via);
	if (!err && who->request_id && !(err = buf_adds(&d, "\",\"request_id\":\"")))
		err = buf_add_json_str(&d, who->request_id);
	if (!err)
		err = buf_adds(&d, "\"}");
	if (!err)
		err = audit_append_tx(c, who->actor && *who->actor ? who->actor : "system", "pki.cert.issue", object,
				      d.data, NULL);
	buf_release(&d);
	return err;
}

egov_err pki_issue_from_csr_audited(db_conn *c, const void *csr, size_t len, const char *profile_name,
				    const char *owner, const char *cn, const pki_requester *who, pki_cert_info *out,
				    const char **code)
{
	egov_err err;

	if ((err = db_begin(c)))
		return err;
	if (!(err = pki_issue_from_csr(c, csr, len, profile_name, owner, cn, out, code)))
		err = audit_issued(c, out, who);
	if ((err = db_end(c, err)))
		pki_cert_info_release(out);
	return err;
}

egov_err pki_issue_pkcs12(db_conn *c, const char *owner, const char *profile_name, const char *cn,
			  const char *passphrase, const pki_requester *who, unsigned char **p12_out, size_t *p12_len,
			  pki_cert_info *out, const char **code)
{
	const profile *pr = profile_find(profile_name);
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	STACK_OF(X509) *ca = NULL;
	PKCS12 *p12 = NULL;
	unsigned char *der = NULL;
	size_t plen = passphrase ? strlen(passphrase) : 0;
	int n;
	egov_err err = EGOV_EINVAL;

	memset(out, 0, sizeof *out);
	*code = NULL;
	*p12_out = NULL;
	*p12_len = 0;
	if (!pr) {
		*code = "pki.profile_unknown";
		goto out;
	}
	if (!text_ok(owner, PKI_OWNER_MAX) || !cn_ok(cn) || plen < PKI_PASSPHRASE_MIN || plen > PKI_PASSPHRASE_MAX) {
		*code = "pki.csr_invalid";
		goto out;
	}
	err = EGOV_ENOMEM;
	if (!(k = EVP_EC_gen("P-256")))
		goto out;
	/* The certificate and its record commit together; the bundle, whose
	 * key derivation takes long, is made after the commit, not while the
	 * transaction holds the write lock. */
	if ((err = db_begin(c)))
		goto out;
	if (!(err = issue_key(c, k, pr, owner, cn, out, &x)))
		err = audit_issued(c, out, who);
	if ((err = db_end(c, err)))
		goto out;
	err = EGOV_ENOMEM;
	if (!(ca = sk_X509_new_null()) || !sk_X509_push(ca, pki_g.issuing))
		goto out;
	/* AES-256-CBC for key and certificates, PBKDF2 iterations as OpenSSL
	 * 3 defaults, and an HMAC-SHA-256 MAC. */
	p12 = PKCS12_create_ex(passphrase, cn, k, x, ca, NID_aes_256_cbc, NID_aes_256_cbc, 600000, -1, 0, NULL,
			       NULL);
	if (!p12 || !PKCS12_set_mac(p12, passphrase, -1, NULL, 0, 600000, EVP_sha256()))
		goto out;
	if ((n = i2d_PKCS12(p12, &der)) <= 0)
		goto out;
	if (!(*p12_out = malloc((size_t)n)))
		goto out;
	memcpy(*p12_out, der, (size_t)n);
	*p12_len = (size_t)n;
	err = EGOV_OK;
out:
	ERR_clear_error();
	if (err)
		pki_cert_info_release(out);
	OPENSSL_free(der);
	PKCS12_free(p12);
	sk_X509_free(ca); /* the issuing cert stays ours */
	X509_free(x);
	EVP_PKEY_free(k); /* EVP_PKEY_free clears the private key material */
	return err;
}

egov_err pki_cert_get(db_conn *c, const char *serial, pki_cert_info *out)
{
	char norm[PKI_SERIAL_HEX];
	db_rows *rows = NULL;
	bool has = false;
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t dlen = 0;
	X509 *x = NULL;
	egov_err err = EGOV_ENOTFOUND;

	memset(out, 0, sizeof *out);
	if (!pki_serial_norm(serial, norm))
		goto out;
	{
		db_param prm[] = {DBP_S(norm)};
		if ((err = db_query(c,
				    "SELECT serial, owner, profile, subject, not_before, not_after, status,"
				    " revoked_at, reason, der FROM pki_cert WHERE serial = ?",
				    prm, 1, &rows)) ||
		    (err = db_rows_next(rows, &has)))
			goto out;
	}
	err = EGOV_ENOTFOUND;
	if (!has)
		goto out;
#define COPY(field, col)                                                                         \
	snprintf(out->field, sizeof out->field, "%s", db_rows_text(rows, col) ? db_rows_text(rows, col) : "")
	COPY(serial, 0);
	COPY(owner, 1);
	COPY(profile, 2);
	COPY(subject, 3);
	COPY(not_before, 4);
	COPY(not_after, 5);
	COPY(status, 6);
	COPY(revoked_at, 7);
	COPY(reason, 8);
#undef COPY
	err = EGOV_ECORRUPT;
	if (!db_rows_text(rows, 9) || !(der = pki_unb64(db_rows_text(rows, 9), &dlen)))
		goto out;
	p = der;
	if (!(x = d2i_X509(NULL, &p, (long)dlen)))
		goto out;
	err = EGOV_ENOMEM;
	if (!(out->pem = cert_pem(x)))
		goto out;
	err = EGOV_OK;
out:
	X509_free(x);
	free(der);
	db_rows_free(rows);
	return err;
}

egov_err pki_cert_count_live(db_conn *c, const char *owner, int64_t *n)
{
	db_param p[] = {DBP_S(owner)};
	bool found = false;

	*n = 0;
	return db_query_int(c, "SELECT COUNT(*) FROM pki_cert WHERE owner = ? AND status = 'good'", p, 1, n, &found);
}

egov_err pki_cert_list_by_owner(db_conn *c, const char *owner, int (*fn)(void *ctx, const pki_cert_info *ci),
				void *ctx)
{
	db_rows *rows = NULL;
	bool has = false;
	egov_err err;

	{
		db_param prm[] = {DBP_S(owner)};
		if ((err = db_query(c,
				    "SELECT serial, owner, profile, subject, not_before, not_after, status,"
				    " revoked_at, reason FROM pki_cert WHERE owner = ?"
				    " ORDER BY not_before DESC, serial",
				    prm, 1, &rows)))
			goto out;
	}
	while (!(err = db_rows_next(rows, &has)) && has) {
		pki_cert_info ci;

		memset(&ci, 0, sizeof ci);
#define COPY(field, col)                                                                         \
	snprintf(ci.field, sizeof ci.field, "%s", db_rows_text(rows, col) ? db_rows_text(rows, col) : "")
		COPY(serial, 0);
		COPY(owner, 1);
		COPY(profile, 2);
		COPY(subject, 3);
		COPY(not_before, 4);
		COPY(not_after, 5);
		COPY(status, 6);
		COPY(revoked_at, 7);
		COPY(reason, 8);
#undef COPY
		if (fn(ctx, &ci))
			break;
	}
out:
	db_rows_free(rows);
	return err;
}

egov_err pki_revoke(db_conn *c, const char *serial, const char *reason, const char *actor, const char **code)
{
	char norm[PKI_SERIAL_HEX], now[32], object[64], details[128];
	int64_t changes = 0, have = 0;
	bool found = false, begun = false;
	egov_err err = EGOV_EINVAL;

	*code = NULL;
	if (!pki_reason_valid(reason)) {
		*code = "pki.reason_unknown";
		goto out;
	}
	err = EGOV_ENOTFOUND;
	if (!pki_serial_norm(serial, norm))
		goto out;
	time_format_rfc3339(time_now_us() / 1000000 * 1000000, 0, now);
	/* The revocation and its audit record are one transaction: a
	 * certificate is never revoked without the record saying who did it. */
	if ((err = db_begin(c)))
		goto out;
	begun = true;
	{
		db_param p[] = {DBP_S(now), DBP_S(reason), DBP_S(norm)};
		/* The status guard makes a second revocation a conflict, even
		 * when two arrive at once. */
		if ((err = db_exec(c,
				   "UPDATE pki_cert SET status = 'revoked', revoked_at = ?, reason = ?"
				   " WHERE serial = ? AND status = 'good'",
				   p, 3, &changes)))
			goto out;
	}
	if (changes == 0) {
		db_param p[] = {DBP_S(norm)};
		if ((err = db_query_int(c, "SELECT COUNT(*) FROM pki_cert WHERE serial = ?", p, 1, &have, &found)))
			goto out;
		err = have > 0 ? EGOV_ECONFLICT : EGOV_ENOTFOUND;
		goto out;
	}
	snprintf(object, sizeof object, "cert:%s", norm);
	snprintf(details, sizeof details, "{\"reason\":\"%s\"}", reason);
	if (audit_available())
		err = audit_append_tx(c, actor && *actor ? actor : "system", "pki.cert.revoke", object, details, NULL);
out:
	if (begun && !(err = db_end(c, err)))
		pki_crl_invalidate(); /* after the commit: a CRL built before it would miss this one */
	return err;
}
