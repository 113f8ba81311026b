/*
 * test_pki.c: the platform CA: files and modes, issuing per profile, bad
 * CSRs, PKCS#12, revocation in CRL and OCSP, the TSA, audit checkpoints and
 * client certificate verification. Storage tests run on every backend.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/ts.h>
#include <openssl/x509v3.h>

#include "audit/audit.h"
#include "core/app.h"
#include "core/config.h"
#include "core/db.h"
#include "core/module.h"
#include "pki/pki.h"
#include "pki/pki_int.h"
#include "testutil.h"
#include "core/banned.h"

typedef struct fx {
	char *dir;
	egov_config cfg;
	db *d;
	db_conn *c;
} fx;

static void migrate(db_conn *c)
{
	const db_migration *m;
	size_t n = 0;

	assert_int_equal(db_migrate(c, "audit", audit_migrations, audit_migrations_count, NULL), EGOV_OK);
	m = pki_module.migrations;
	n = pki_module.nmigrations;
	assert_int_equal(db_migrate(c, "pki", m, n, NULL), EGOV_OK);
}

static void fx_open(fx *f, const char *url, const char *anchors)
{
	char err[512] = "";

	config_init(&f->cfg);
	assert_int_equal(config_set(&f->cfg, "data.dir", f->dir, err, sizeof err), EGOV_OK);
	if (anchors)
		assert_int_equal(config_set(&f->cfg, "pki.trust_anchors", anchors, err, sizeof err), EGOV_OK);
	assert_int_equal(pki_ca_init(f->dir, err, sizeof err), EGOV_OK);
	assert_int_equal(pki_open(&f->cfg, err, sizeof err), EGOV_OK);
	assert_int_equal(db_open(url, &f->d, err, sizeof err), EGOV_OK);
	assert_int_equal(db_conn_open(f->d, &f->c), EGOV_OK);
	assert_int_equal(test_db_reset(f->c), 0);
	migrate(f->c);
}

static void fx_close(fx *f)
{
	pki_close();
	db_conn_close(f->c);
	db_close(f->d);
	config_release(&f->cfg);
}

/* Runs body once per backend with a fresh CA and database. */
#define EACH_BACKEND(f, ...)                                        \
	do {                                                         \
		char urls_[2][512];                                  \
		int n_, i_;                                          \
		(f).dir = test_tmpdir();                             \
		n_ = test_backends((f).dir, urls_);                  \
		for (i_ = 0; i_ < n_; i_++) {                        \
			fx_open(&(f), urls_[i_], NULL);              \
			__VA_ARGS__;                                 \
			fx_close(&(f));                              \
		}                                                    \
		test_rmrf((f).dir);                                  \
		free((f).dir);                                       \
	} while (0)

/* ---- helpers ---------------------------------------------------------- */

static char *make_csr(EVP_PKEY *k, const char *cn)
{
	X509_REQ *r = X509_REQ_new();
	X509_NAME *n = X509_NAME_new();
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL, *out;
	long len;

	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *)"Forged Org", -1, -1, 0);
	X509_REQ_set_subject_name(r, n);
	X509_REQ_set_pubkey(r, k);
	/* Ed25519 signs without a separate digest. */
	X509_REQ_sign(r, k, EVP_PKEY_get_base_id(k) == EVP_PKEY_ED25519 ? NULL : EVP_sha256());
	PEM_write_bio_X509_REQ(b, r);
	len = BIO_get_mem_data(b, &data);
	out = strndup(data, (size_t)len);
	BIO_free(b);
	X509_NAME_free(n);
	X509_REQ_free(r);
	return out;
}

static char *ec_csr(const char *cn)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	char *csr = make_csr(k, cn);
	EVP_PKEY_free(k);
	return csr;
}

static X509 *pem_cert(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	return x;
}

static void issue(fx *f, const char *profile, pki_cert_info *ci)
{
	char *csr = ec_csr("Chan Tai Man");
	const char *code = NULL;

	assert_int_equal(pki_issue_from_csr(f->c, csr, strlen(csr), profile, "user-1", NULL, ci, &code), EGOV_OK);
	assert_null(code);
	free(csr);
}

/* ---- CA files ------------------------------------------------------------ */

static void test_ca_files(void **state)
{
	static const char *const files[] = {"root", "issuing", "tsa"};
	char *dir = test_tmpdir(), path[600], err[512];
	struct stat st;
	X509 *root, *iss, *tsa;
	X509_STORE *store;
	X509_STORE_CTX *ctx;
	STACK_OF(X509) *un;
	size_t i;

	(void)state;
	assert_int_equal(pki_ca_init(dir, err, sizeof err), EGOV_OK);
	snprintf(path, sizeof path, "%s/pki", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/pki/%s.key", dir, files[i]);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	snprintf(path, sizeof path, "%s/pki/root.crt", dir);
	root = pki_read_cert(path);
	snprintf(path, sizeof path, "%s/pki/issuing.crt", dir);
	iss = pki_read_cert(path);
	snprintf(path, sizeof path, "%s/pki/tsa.crt", dir);
	tsa = pki_read_cert(path);
	assert_non_null(root);
	assert_non_null(iss);
	assert_non_null(tsa);
	/* Root: CA, keyCertSign + cRLSign; issuing: pathlen 0; TSA: EKU critical. */
	assert_int_equal(X509_check_ca(root), 1);
	assert_true(X509_get_key_usage(root) & KU_KEY_CERT_SIGN);
	assert_true(X509_get_key_usage(root) & KU_CRL_SIGN);
	assert_int_equal(X509_get_pathlen(iss), 0);
	assert_true(X509_get_extended_key_usage(tsa) & XKU_TIMESTAMP);
	assert_int_equal(X509_EXTENSION_get_critical(X509_get_ext(tsa, X509_get_ext_by_NID(tsa, NID_ext_key_usage, -1))),
			 1);
	assert_int_equal(EVP_PKEY_get_base_id(X509_get0_pubkey(root)), EVP_PKEY_EC);
	/* About 20 years. */
	assert_true(pki_asn1_time_unix(X509_get0_notAfter(root)) - time(NULL) > 19LL * 365 * 86400);
	store = X509_STORE_new();
	X509_STORE_add_cert(store, root);
	un = sk_X509_new_null();
	sk_X509_push(un, iss);
	ctx = X509_STORE_CTX_new();
	X509_STORE_CTX_init(ctx, store, tsa, un);
	assert_int_equal(X509_verify_cert(ctx), 1);
	X509_STORE_CTX_free(ctx);
	sk_X509_free(un);
	X509_STORE_free(store);

	/* Idempotent: a second run keeps the same root. */
	assert_int_equal(pki_ca_init(dir, err, sizeof err), EGOV_OK);
	snprintf(path, sizeof path, "%s/pki/root.crt", dir);
	{
		X509 *again = pki_read_cert(path);
		assert_int_equal(X509_cmp(root, again), 0);
		X509_free(again);
	}
	/* A key without its certificate is refused, never replaced. */
	snprintf(path, sizeof path, "%s/pki/issuing.crt", dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(pki_ca_init(dir, err, sizeof err), EGOV_ECORRUPT);
	assert_non_null(strstr(err, "issuing.key"));
	X509_free(root);
	X509_free(iss);
	X509_free(tsa);
	test_rmrf(dir);
	free(dir);
}

/* ---- issuing ------------------------------------------------------------- */

static void check_profile(fx *f, const char *profile, uint32_t ku_want, uint32_t xku_want, bool has_eku)
{
	pki_cert_info ci;
	X509 *x;
	char cn[64];

	issue(f, profile, &ci);
	x = pem_cert(ci.pem);
	assert_non_null(x);
	assert_int_equal(X509_get_key_usage(x), ku_want);
	if (has_eku)
		assert_int_equal(X509_get_extended_key_usage(x), xku_want);
	else
		assert_int_equal(X509_get_ext_by_NID(x, NID_ext_key_usage, -1), -1);
	assert_int_equal(X509_check_ca(x), 0);
	/* The subject is ours: CN from the CSR, never its O. */
	assert_string_equal(ci.subject, "CN=Chan Tai Man,UID=user-1,O=egov,C=MO");
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_organizationName, cn, sizeof cn);
	assert_string_equal(cn, "egov");
	assert_int_equal(X509_check_issued(pki_g.issuing, x), X509_V_OK);
	assert_true(X509_get_ext_by_NID(x, NID_crl_distribution_points, -1) >= 0);
	assert_true(X509_get_ext_by_NID(x, NID_info_access, -1) >= 0);
	assert_int_equal(strlen(ci.serial), 32);
	X509_free(x);
	pki_cert_info_release(&ci);
}

static void test_issue_profiles(void **state)
{
	fx f;

	(void)state;
	EACH_BACKEND(f, {
		check_profile(&f, "person_auth", KU_DIGITAL_SIGNATURE, XKU_SSL_CLIENT, true);
		check_profile(&f, "person_sign", KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION, XKU_SMIME, true);
		check_profile(&f, "system_tls_client", KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT, XKU_SSL_CLIENT, true);
		check_profile(&f, "system_sign", KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION, 0, false);
	});
}

static void test_issue_serials_and_get(void **state)
{
	fx f;

	(void)state;
	EACH_BACKEND(f, {
		char serials[20][PKI_SERIAL_HEX];
		pki_cert_info ci, got;
		int64_t n = 0;
		bool found;
		int i, j;
		for (i = 0; i < 20; i++) {
			issue(&f, "person_auth", &ci);
			snprintf(serials[i], sizeof serials[i], "%s", ci.serial);
			pki_cert_info_release(&ci);
			for (j = 0; j < i; j++)
				assert_string_not_equal(serials[i], serials[j]);
		}
		assert_int_equal(db_query_int(f.c, "SELECT COUNT(*) FROM pki_cert", NULL, 0, &n, &found), EGOV_OK);
		assert_int_equal(n, 20);
		/* Upper case and leading zeros are the same serial. */
		{
			char up[40];
			snprintf(up, sizeof up, "00%s", serials[3]);
			for (i = 0; up[i]; i++)
				up[i] = (char)(up[i] >= 'a' && up[i] <= 'f' ? up[i] - 32 : up[i]);
			assert_int_equal(pki_cert_get(f.c, up, &got), EGOV_OK);
		}
		assert_string_equal(got.serial, serials[3]);
		assert_string_equal(got.status, "good");
		assert_non_null(strstr(got.pem, "BEGIN CERTIFICATE"));
		pki_cert_info_release(&got);
		assert_int_equal(pki_cert_get(f.c, "abcdef", &got), EGOV_ENOTFOUND);
		assert_int_equal(pki_cert_get(f.c, "xyz", &got), EGOV_ENOTFOUND);
	});
}

static void expect_code(fx *f, const char *csr, size_t len, const char *profile, const char *want)
{
	pki_cert_info ci;
	const char *code = NULL;

	assert_int_equal(pki_issue_from_csr(f->c, csr, len, profile, "user-1", NULL, &ci, &code), EGOV_EINVAL);
	assert_non_null(code);
	assert_string_equal(code, want);
}

static void test_bad_csrs(void **state)
{
	fx f;

	(void)state;
	EACH_BACKEND(f, {
		char *good = ec_csr("Someone"), *csr;
		EVP_PKEY *k;
		X509_REQ *r;
		BIO *b;
		unsigned char *der = NULL;
		int dlen;
		int64_t n = 0;
		bool found;

		expect_code(&f, "garbage", 7, "person_auth", "pki.csr_invalid");
		expect_code(&f, "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", 72,
			    "person_auth", "pki.csr_invalid");
		expect_code(&f, good, strlen(good), "root_ca", "pki.profile_unknown");
		/* RSA 1024 and Ed25519: key_weak. */
		k = EVP_RSA_gen(1024);
		csr = make_csr(k, "Weak");
		expect_code(&f, csr, strlen(csr), "person_auth", "pki.key_weak");
		free(csr);
		EVP_PKEY_free(k);
		k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		csr = make_csr(k, "Edwards");
		expect_code(&f, csr, strlen(csr), "person_auth", "pki.key_weak");
		free(csr);
		EVP_PKEY_free(k);
		/* secp256k1 is EC but not a curve we accept. */
		k = EVP_EC_gen("secp256k1");
		csr = make_csr(k, "Koblitz");
		expect_code(&f, csr, strlen(csr), "person_auth", "pki.key_weak");
		free(csr);
		EVP_PKEY_free(k);
		/* A flipped bit in the signature: csr_signature. */
		b = BIO_new_mem_buf(good, -1);
		r = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
		BIO_free(b);
		dlen = i2d_X509_REQ(r, &der);
		der[dlen - 5] ^= 0x01;
		expect_code(&f, (const char *)der, (size_t)dlen, "person_auth", "pki.csr_signature");
		OPENSSL_free(der);
		X509_REQ_free(r);
		/* A CN with a control character, and none at all. */
		csr = ec_csr("bad\x01name");
		expect_code(&f, csr, strlen(csr), "person_auth", "pki.csr_invalid");
		free(csr);
		/* RSA 2048 is accepted; the DER form of a CSR too. */
		k = EVP_RSA_gen(2048);
		csr = make_csr(k, "Rsa Holder");
		{
			pki_cert_info ci;
			const char *code = NULL;
			assert_int_equal(pki_issue_from_csr(f.c, csr, strlen(csr), "system_tls_client", "sys-1", NULL, &ci,
							    &code),
					 EGOV_OK);
			pki_cert_info_release(&ci);
		}
		free(csr);
		EVP_PKEY_free(k);
		assert_int_equal(db_query_int(f.c, "SELECT COUNT(*) FROM pki_cert", NULL, 0, &n, &found), EGOV_OK);
		assert_int_equal(n, 1);
		free(good);
	});
}

static void test_pkcs12(void **state)
{
	fx f;

	(void)state;
	EACH_BACKEND(f, {
		unsigned char *p12 = NULL;
		const unsigned char *p;
		size_t len = 0;
		pki_cert_info ci;
		const char *code = NULL;
		PKCS12 *pk;
		EVP_PKEY *k = NULL;
		X509 *x = NULL;
		STACK_OF(X509) *ca = NULL;

		assert_int_equal(pki_issue_pkcs12(f.c, "user-2", "person_sign", "Wong Siu Ming", "correct horse", NULL, &p12, &len,
						  &ci, &code),
				 EGOV_OK);
		p = p12;
		pk = d2i_PKCS12(NULL, &p, (long)len);
		assert_non_null(pk);
		assert_int_equal(PKCS12_parse(pk, "wrong pass", &k, &x, &ca), 0);
		assert_int_equal(PKCS12_parse(pk, "correct horse", &k, &x, &ca), 1);
		assert_int_equal(X509_check_private_key(x, k), 1);
		assert_int_equal(sk_X509_num(ca), 1);
		assert_true(X509_get_extended_key_usage(x) & XKU_SMIME);
		assert_string_equal(ci.subject, "CN=Wong Siu Ming,UID=user-2,O=egov,C=MO");
		free(p12);
		pki_cert_info_release(&ci);
		assert_int_equal(pki_issue_pkcs12(f.c, "user-2", "person_sign", "X", "short", NULL, &p12, &len, &ci, &code),
				 EGOV_EINVAL);
		assert_null(p12);
		EVP_PKEY_free(k);
		X509_free(x);
		sk_X509_pop_free(ca, X509_free);
		PKCS12_free(pk);
		free(p12);
		pki_cert_info_release(&ci);
	});
}

/* ---- revocation: CRL and OCSP ------------------------------------------- */

static bool crl_has(fx *f, const char *serial_hex)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t len = 0;
	X509_CRL *crl;
	STACK_OF(X509_REVOKED) *rv;
	bool found = false;
	int i;

	assert_int_equal(pki_crl_der(f->c, &der, &len), EGOV_OK);
	p = der;
	crl = d2i_X509_CRL(NULL, &p, (long)len);
	assert_non_null(crl);
	assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(pki_g.issuing)), 1);
	assert_int_equal(X509_CRL_get_version(crl), 1);
	assert_true(pki_asn1_time_unix(X509_CRL_get0_nextUpdate(crl)) > time(NULL) + 23 * 3600);
	rv = X509_CRL_get_REVOKED(crl);
	for (i = 0; i < sk_X509_REVOKED_num(rv); i++) {
		char hex[80];
		pki_serial_hex(X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(rv, i)), hex, sizeof hex);
		found |= strcmp(hex, serial_hex) == 0;
	}
	X509_CRL_free(crl);
	free(der);
	return found;
}

/* Asks the responder about cert (issued by issuer); returns the status. */
static int ocsp_status(fx *f, X509 *cert, X509 *issuer, bool nonce, int *reason)
{
	OCSP_REQUEST *oreq = OCSP_REQUEST_new();
	OCSP_CERTID *id = OCSP_cert_to_id(EVP_sha1(), cert, issuer);
	unsigned char *der = NULL, *resp_der = NULL;
	const unsigned char *p;
	size_t rlen = 0;
	int len, status = -1, rs = -1;
	OCSP_RESPONSE *resp;
	OCSP_BASICRESP *bs;
	X509_STORE *store = X509_STORE_new();
	STACK_OF(X509) *certs = sk_X509_new_null();
	ASN1_GENERALIZEDTIME *rev = NULL, *thisu = NULL, *nextu = NULL;

	OCSP_request_add0_id(oreq, OCSP_CERTID_dup(id));
	if (nonce)
		OCSP_request_add1_nonce(oreq, NULL, 16);
	len = i2d_OCSP_REQUEST(oreq, &der);
	assert_int_equal(pki_ocsp_respond(f->c, der, (size_t)len, &resp_der, &rlen), EGOV_OK);
	p = resp_der;
	resp = d2i_OCSP_RESPONSE(NULL, &p, (long)rlen);
	assert_non_null(resp);
	assert_int_equal(OCSP_response_status(resp), OCSP_RESPONSE_STATUS_SUCCESSFUL);
	bs = OCSP_response_get1_basic(resp);
	X509_STORE_add_cert(store, pki_g.root);
	sk_X509_push(certs, pki_g.issuing);
	/* For a foreign issuer our signature is valid but not authoritative,
	 * which OpenSSL's issuer check rightly refuses; skip only that. */
	assert_int_equal(OCSP_basic_verify(bs, certs, store, issuer == pki_g.issuing ? 0 : OCSP_NOCHECKS), 1);
	if (nonce)
		assert_int_equal(OCSP_check_nonce(oreq, bs), 1);
	assert_int_equal(OCSP_resp_find_status(bs, id, &status, &rs, &rev, &thisu, &nextu), 1);
	*reason = rs;
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(resp);
	X509_STORE_free(store);
	sk_X509_free(certs);
	free(resp_der);
	OPENSSL_free(der);
	OCSP_CERTID_free(id);
	OCSP_REQUEST_free(oreq);
	return status;
}

/* Asks the responder about cert (issued by issuer) and returns the
 * response status itself, for the answers that carry no certificate
 * status. */
static int ocsp_response_status(fx *f, X509 *cert, X509 *issuer)
{
	OCSP_REQUEST *oreq = OCSP_REQUEST_new();
	OCSP_RESPONSE *resp;
	unsigned char *der = NULL, *resp_der = NULL;
	const unsigned char *p;
	size_t rlen = 0;
	int len, st;

	OCSP_request_add0_id(oreq, OCSP_cert_to_id(EVP_sha1(), cert, issuer));
	len = i2d_OCSP_REQUEST(oreq, &der);
	assert_int_equal(pki_ocsp_respond(f->c, der, (size_t)len, &resp_der, &rlen), EGOV_OK);
	p = resp_der;
	resp = d2i_OCSP_RESPONSE(NULL, &p, (long)rlen);
	assert_non_null(resp);
	st = OCSP_response_status(resp);
	/* An error answer is unsigned: it holds no basic response. */
	{
		OCSP_BASICRESP *bs = OCSP_response_get1_basic(resp);
		assert_null(bs);
		OCSP_BASICRESP_free(bs);
		ERR_clear_error();
	}
	OCSP_RESPONSE_free(resp);
	free(resp_der);
	OPENSSL_free(der);
	OCSP_REQUEST_free(oreq);
	return st;
}

static void test_revoke_crl_ocsp(void **state)
{
	fx f;

	(void)state;
	EACH_BACKEND(f, {
		pki_cert_info a, b;
		const char *code = NULL;
		X509 *xa, *xb, *foreign;
		EVP_PKEY *fk = EVP_EC_gen("P-256");
		unsigned char *resp = NULL;
		const unsigned char *p;
		size_t rlen = 0;
		OCSP_RESPONSE *o;
		int reason = 0;
		int64_t n = 0;
		bool found;

		assert_int_equal(audit_open(f.d), EGOV_OK);
		issue(&f, "person_auth", &a);
		issue(&f, "person_auth", &b);
		xa = pem_cert(a.pem);
		xb = pem_cert(b.pem);
		assert_false(crl_has(&f, a.serial));
		assert_int_equal(ocsp_status(&f, xa, pki_g.issuing, true, &reason), V_OCSP_CERTSTATUS_GOOD);

		assert_int_equal(pki_revoke(f.c, a.serial, "keyCompromise", "tester", &code), EGOV_OK);
		assert_true(crl_has(&f, a.serial));
		assert_false(crl_has(&f, b.serial));
		assert_int_equal(ocsp_status(&f, xa, pki_g.issuing, false, &reason), V_OCSP_CERTSTATUS_REVOKED);
		assert_int_equal(reason, 1);
		assert_int_equal(ocsp_status(&f, xb, pki_g.issuing, true, &reason), V_OCSP_CERTSTATUS_GOOD);
		/* A certificate from another issuer: unauthorized (RFC 6960 2.3),
		 * not an "unknown" signed by a CA that cannot speak for it. */
		foreign = X509_new();
		X509_set_pubkey(foreign, fk);
		ASN1_INTEGER_set(X509_get_serialNumber(foreign), 42);
		X509_set_issuer_name(foreign, X509_get_subject_name(foreign));
		assert_int_equal(ocsp_response_status(&f, foreign, foreign), OCSP_RESPONSE_STATUS_UNAUTHORIZED);
		/* Our issuer but a serial never issued: unknown. */
		X509_set_issuer_name(foreign, X509_get_subject_name(pki_g.issuing));
		assert_int_equal(ocsp_status(&f, foreign, pki_g.issuing, false, &reason), V_OCSP_CERTSTATUS_UNKNOWN);

		/* Audited; second revocation a conflict; unknown serial; bad reason. */
		{
			db_param prm[] = {DBP_S("pki.cert.revoke")};
			assert_int_equal(db_query_int(f.c, "SELECT COUNT(*) FROM audit_log WHERE action = ?", prm, 1, &n,
						      &found),
					 EGOV_OK);
			assert_int_equal(n, 1);
		}
		assert_int_equal(pki_revoke(f.c, a.serial, "superseded", "tester", &code), EGOV_ECONFLICT);
		assert_int_equal(pki_revoke(f.c, "0123", "superseded", "tester", &code), EGOV_ENOTFOUND);
		assert_int_equal(pki_revoke(f.c, b.serial, "bored", "tester", &code), EGOV_EINVAL);
		assert_string_equal(code, "pki.reason_unknown");

		/* Garbage, trailing bytes and empty: malformedRequest. */
		assert_int_equal(pki_ocsp_respond(f.c, "\x30\x03\x02\x01\x01", 5, &resp, &rlen), EGOV_OK);
		p = resp;
		o = d2i_OCSP_RESPONSE(NULL, &p, (long)rlen);
		assert_non_null(o);
		assert_int_equal(OCSP_response_status(o), OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
		OCSP_RESPONSE_free(o);
		free(resp);
		assert_int_equal(pki_ocsp_respond(f.c, "", 0, &resp, &rlen), EGOV_OK);
		free(resp);

		audit_close();
		X509_free(foreign);
		EVP_PKEY_free(fk);
		X509_free(xa);
		X509_free(xb);
		pki_cert_info_release(&a);
		pki_cert_info_release(&b);
	});
}

/* ---- TSA and checkpoints ------------------------------------------------- */

static void test_tsa(void **state)
{
	fx f;

	(void)state;
	EACH_BACKEND(f, {
		TS_REQ *q = TS_REQ_new();
		TS_MSG_IMPRINT *mi = TS_MSG_IMPRINT_new();
		X509_ALGOR *alg = X509_ALGOR_new();
		unsigned char md[32], *qder = NULL, *rder = NULL;
		const unsigned char *p;
		size_t rlen = 0;
		int qlen;
		TS_RESP *resp;
		TS_VERIFY_CTX *v;
		X509_STORE *store = X509_STORE_new();

		memset(md, 0xab, sizeof md);
		X509_ALGOR_set0(alg, OBJ_nid2obj(NID_sha256), V_ASN1_NULL, NULL);
		TS_MSG_IMPRINT_set_algo(mi, alg);
		TS_MSG_IMPRINT_set_msg(mi, md, sizeof md);
		TS_REQ_set_version(q, 1);
		TS_REQ_set_msg_imprint(q, mi);
		TS_REQ_set_cert_req(q, 1);
		qlen = i2d_TS_REQ(q, &qder);
		assert_int_equal(pki_tsa_respond(qder, (size_t)qlen, &rder, &rlen), EGOV_OK);
		p = rder;
		resp = d2i_TS_RESP(NULL, &p, (long)rlen);
		assert_non_null(resp);
		X509_STORE_add_cert(store, pki_g.root);
		v = TS_REQ_to_TS_VERIFY_CTX(q, NULL);
		TS_VERIFY_CTX_set_store(v, store);
		assert_int_equal(TS_RESP_verify_response(v, resp), 1);
		TS_VERIFY_CTX_free(v);
		TS_RESP_free(resp);
		free(rder);
		/* A bad query: a rejection, not a failure. */
		assert_int_equal(pki_tsa_respond("junk", 4, &rder, &rlen), EGOV_OK);
		p = rder;
		resp = d2i_TS_RESP(NULL, &p, (long)rlen);
		assert_non_null(resp);
		assert_int_equal(ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(TS_RESP_get_status_info(resp))),
				 TS_STATUS_REJECTION);
		TS_RESP_free(resp);
		free(rder);
		OPENSSL_free(qder);
		X509_ALGOR_free(alg);
		TS_MSG_IMPRINT_free(mi);
		TS_REQ_free(q);
	});
}

static void wait_checkpoints(db_conn *c, int64_t want)
{
	int64_t n = 0;
	bool found;
	int i;

	for (i = 0; i < 300; i++) {
		assert_int_equal(db_query_int(c, "SELECT COUNT(*) FROM pki_audit_checkpoint", NULL, 0, &n, &found),
				 EGOV_OK);
		if (n >= want)
			return;
		usleep(10000);
	}
	fail_msg("only %lld checkpoints", (long long)n);
}

static void test_checkpoints(void **state)
{
	fx f;

	(void)state;
	EACH_BACKEND(f, {
		pki_checkpoint_result res;
		int i;

		assert_int_equal(audit_open(f.d), EGOV_OK);
		assert_int_equal(pki_audit_checkpoints_start(f.d, 2), EGOV_OK);
		for (i = 0; i < 6; i++)
			assert_int_equal(audit_append("tester", "test.event", "obj", NULL, NULL), EGOV_OK);
		wait_checkpoints(f.c, 3);
		audit_close();
		audit_set_checkpoint(0, NULL, NULL);
		assert_int_equal(pki_audit_checkpoints_verify(f.c, f.dir, &res), EGOV_OK);
		assert_int_equal(res.first_bad, 0);
		assert_true(res.checked >= 3);
		/* A changed hash at a checkpointed record. */
		assert_int_equal(db_exec_script(f.c, "UPDATE audit_log SET hash = '" "00000000000000000000000000000000"
						     "00000000000000000000000000000000' WHERE seq = 4"),
				 EGOV_OK);
		assert_int_equal(pki_audit_checkpoints_verify(f.c, f.dir, &res), EGOV_OK);
		assert_int_equal(res.first_bad, 4);
		assert_non_null(strstr(res.why, "hash differs"));
		/* A forged checkpoint (hash rewritten to match a rewritten chain)
		 * fails on its token instead. */
		assert_int_equal(db_exec_script(f.c, "UPDATE pki_audit_checkpoint SET hash = '" "00000000000000000000000000000000"
						     "00000000000000000000000000000000' WHERE seq = 4"),
				 EGOV_OK);
		assert_int_equal(pki_audit_checkpoints_verify(f.c, f.dir, &res), EGOV_OK);
		assert_int_equal(res.first_bad, 4);
		assert_non_null(strstr(res.why, "token"));
		/* Truncating the tail: the last checkpoint's record is gone. */
		assert_int_equal(db_exec_script(f.c, "DELETE FROM pki_audit_checkpoint WHERE seq = 4;"
						     "DELETE FROM audit_log WHERE seq >= 5"),
				 EGOV_OK);
		assert_int_equal(pki_audit_checkpoints_verify(f.c, f.dir, &res), EGOV_OK);
		assert_int_equal(res.first_bad, 6);
		assert_non_null(strstr(res.why, "truncated"));
	});
}

/* ---- verification -------------------------------------------------------- */

static void expect_verify(fx *f, const char *pem, const char *code)
{
	pki_verify_result res;
	egov_err err = pki_verify_chain(f->c, pem, strlen(pem), &res);

	if (!code) {
		assert_int_equal(err, EGOV_OK);
		assert_null(res.code);
	} else {
		assert_int_equal(err, EGOV_EAUTH);
		assert_non_null(res.code);
		assert_string_equal(res.code, code);
	}
}

/* A self-signed client certificate (with clientAuth) under its own key. */
static char *self_signed(EVP_PKEY *k, const char *cn)
{
	X509 *x = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *e;
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL, *out;
	long len;

	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_set_version(x, 2);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
				   0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, k);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	e = X509V3_EXT_nconf_nid(NULL, &ctx, NID_ext_key_usage, "clientAuth");
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	X509_sign(x, k, EVP_sha256());
	PEM_write_bio_X509(b, x);
	len = BIO_get_mem_data(b, &data);
	out = strndup(data, (size_t)len);
	BIO_free(b);
	X509_free(x);
	return out;
}

static void test_verify_chain(void **state)
{
	fx f;

	(void)state;
	EACH_BACKEND(f, {
		pki_cert_info ok, rev, sign, old;
		pki_verify_result res;
		const char *code;
		EVP_PKEY *fk = EVP_EC_gen("P-256");
		char *foreign = self_signed(fk, "Foreign Person");

		issue(&f, "person_auth", &ok);
		issue(&f, "person_auth", &rev);
		issue(&f, "person_sign", &sign);
		pki_test_not_before = time(NULL) - 3 * 86400;
		pki_test_not_after = time(NULL) - 86400;
		issue(&f, "person_auth", &old);
		pki_test_not_before = pki_test_not_after = 0;
		assert_int_equal(pki_revoke(f.c, rev.serial, "keyCompromise", "tester", &code), EGOV_OK);

		assert_int_equal(pki_verify_chain(f.c, ok.pem, strlen(ok.pem), &res), EGOV_OK);
		assert_true(res.platform);
		assert_string_equal(res.uid, "user-1");
		assert_string_equal(res.cn, "Chan Tai Man");
		assert_string_equal(res.serial, ok.serial);
		assert_string_equal(res.profile, "person_auth");
		expect_verify(&f, rev.pem, "pki.cert_revoked");
		expect_verify(&f, old.pem, "pki.cert_expired");
		expect_verify(&f, sign.pem, "pki.cert_wrong_usage");
		expect_verify(&f, foreign, "pki.cert_untrusted");
		expect_verify(&f, "not a certificate", "pki.cert_invalid");
		/* Our key signed it but it is not in our table: untrusted. */
		assert_int_equal(db_exec_script(f.c, "DELETE FROM pki_cert"), EGOV_OK);
		expect_verify(&f, ok.pem, "pki.cert_untrusted");

		pki_cert_info_release(&ok);
		pki_cert_info_release(&rev);
		pki_cert_info_release(&sign);
		pki_cert_info_release(&old);

		/* The same foreign certificate, configured as a trust anchor. */
		{
			char path[600], err[512];
			FILE *fp;
			snprintf(path, sizeof path, "%s/anchors.pem", f.dir);
			fp = fopen(path, "w");
			fputs(foreign, fp);
			fclose(fp);
			assert_int_equal(config_set(&f.cfg, "pki.trust_anchors", path, err, sizeof err), EGOV_OK);
			assert_int_equal(pki_open(&f.cfg, err, sizeof err), EGOV_OK);
			assert_int_equal(pki_verify_chain(f.c, foreign, strlen(foreign), &res), EGOV_OK);
			assert_false(res.platform);
			assert_string_equal(res.cn, "Foreign Person");
			assert_int_equal(config_set(&f.cfg, "pki.trust_anchors", "", err, sizeof err), EGOV_OK);
		}
		free(foreign);
		EVP_PKEY_free(fk);
	});
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ca_files),
		cmocka_unit_test(test_issue_profiles),
		cmocka_unit_test(test_issue_serials_and_get),
		cmocka_unit_test(test_bad_csrs),
		cmocka_unit_test(test_pkcs12),
		cmocka_unit_test(test_revoke_crl_ocsp),
		cmocka_unit_test(test_tsa),
		cmocka_unit_test(test_checkpoints),
		cmocka_unit_test(test_verify_chain),
	};
	return cmocka_run_group_tests_name("pki", tests, NULL, NULL);
}
