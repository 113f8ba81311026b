/*
 * pki_int.h: the CA's process state and helpers shared by the pki files.
 * Not for other modules.
 *
 * Invariant: pki_g is written only by pki_open()/pki_close(), which run
 * before and after every other caller; in between it is read-only, except
 * the CRL cache, which crl_lock guards.
 */
#ifndef EGOV_PKI_INT_H
#define EGOV_PKI_INT_H

#include <pthread.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "pki/pki.h"

typedef struct pki_state {
	bool open;
	char dir[4096];
	char public_url[512];
	char tsa_policy[129];
	X509 *root, *issuing, *tsa;
	EVP_PKEY *issuing_key, *tsa_key;
	unsigned char *root_der, *issuing_der;
	size_t root_der_len, issuing_der_len;
	STACK_OF(X509) *anchors; /* extra trust anchors from pki.trust_anchors */
	pthread_mutex_t crl_lock;
	unsigned char *crl_der;
	size_t crl_len;
	int64_t crl_made_us;
} pki_state;

extern pki_state pki_g;

/* Test hook: when nonzero, the next issued certificates get this validity
 * (unix seconds) instead of the profile's, so tests can make expired ones. */
extern int64_t pki_test_not_before, pki_test_not_after;

/* Validity of issued certificates. */
#define PKI_EE_DAYS 730
#define PKI_ROOT_DAYS 7305
#define PKI_ISSUING_DAYS 3652
#define PKI_TSA_DAYS 1826
/* A CRL's nextUpdate; a cached one is rebuilt after PKI_CRL_REFRESH_US. */
#define PKI_CRL_HOURS 24
#define PKI_CRL_REFRESH_US (60LL * 1000000)
/* Most certificates asked about in one OCSP request. */
#define PKI_OCSP_MAX_IDS 16

/* CRLs of the external anchors (anchor_crl.c), from pki.trust_anchor_crls
 * (PEM bundle or one DER CRL). open: loads the file ("" or NULL = none);
 * a file that cannot be read or holds no CRL is an error naming the key.
 * for: the CRLs issued by name, reloading the file first when it changed
 * on disk (a failed reload keeps the last good set); NULL when there is
 * none. The caller frees the stack with sk_X509_CRL_pop_free(.., X509_CRL_free). */
egov_err pki_anchor_crls_open(const char *path, char *errmsg, size_t errlen);
void pki_anchor_crls_close(void);
STACK_OF(X509_CRL) *pki_anchor_crls_for(const X509_NAME *name);

/* ASN1_TIME to unix seconds; -1 if unreadable. */
int64_t pki_asn1_time_unix(const ASN1_TIME *t);
/* Serial as lower-case hex into out (at least PKI_SERIAL_HEX * 2 bytes). */
void pki_serial_hex(const ASN1_INTEGER *s, char *out, size_t outlen);
/* Normalises a serial given by a client (hex, any case, 1..32 digits) into
 * lower-case without leading zeros; false if it is not one. */
bool pki_serial_norm(const char *in, char out[PKI_SERIAL_HEX]);
/* Base64 of bytes into a malloc'd string. */
char *pki_b64(const unsigned char *p, size_t n);
/* Decodes base64 (standard alphabet, padding) into a malloc'd buffer. */
unsigned char *pki_unb64(const char *s, size_t *n);
/* Reads a PEM certificate file. */
X509 *pki_read_cert(const char *path);
/* Drops the cached CRL so the next pki_crl_der() rebuilds it. */
void pki_crl_invalidate(void);
/* RFC 5280 reason code of a reason name, -1 if unknown. */
int pki_reason_code(const char *name);

/* Self-service (pki_self.c): the most live (not revoked) certificates one
 * account may hold, so a session cannot fill the table or the CRL. */
#define PKI_SELF_LIVE_MAX 10
struct req; /* core/http.h: not included here, ocsp.c names a variable req */
struct jw;
/* A certificate as JSON (pki_http.c), shared by the operator and the
 * self-service API. self: the caller's own certificate, so no "owner";
 * "certificate" (the PEM) only when ci->pem is set. */
void pki_write_cert(struct jw *w, const pki_cert_info *ci, bool self);
/* Answers status with the certificate; 201 adds Location
 * location_prefix/SERIAL; self answers are also Cache-Control: no-store. */
egov_err pki_answer_cert(struct req *r, int status, const pki_cert_info *ci, const char *location_prefix,
			 bool self);
egov_err pki_self_list(struct req *r);
egov_err pki_self_issue(struct req *r);
egov_err pki_self_issue_p12(struct req *r);
egov_err pki_self_get(struct req *r);
egov_err pki_self_revoke(struct req *r);

#endif
