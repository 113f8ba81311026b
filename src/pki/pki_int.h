/*
 * pki_int.h: the CA's process state and helpers shared by the pki files.
 * Not for other modules.
 *
 * Invariant: pki_g is written only by pki_open()/pki_close(), which run
 * before and after every other caller (a serving process never closes
 * it: see pki.h); in between it is read-only, except the CRL cache, which
 * crl_lock guards.
 */
#ifndef EGOV_PKI_INT_H
#define EGOV_PKI_INT_H

#include <pthread.h>
#include <stdio.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/http.h"
#include "pki/pki.h"
#include "pki/pki_limits.h"

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

/* The [pki] section (pki_config.c): its values, as config_section_values
 * gives them. Strings are owned by the configuration. */
typedef struct pki_config {
	char *public_url;        /* base URL put in certificates (CRL, OCSP); finished: never "" */
	char *trust_anchors;     /* PEM bundle of extra trust anchors; "" = none */
	char *trust_anchor_crls; /* CRLs (PEM bundle or DER) of those anchors; "" = none */
	int checkpoint_every;    /* audit records between timestamped checkpoints */
	char *tsa_policy;        /* TSA policy OID */
} pki_config;
extern const config_section pki_config_section;
#define PKI_TSA_POLICY_DEFAULT "2.25.3706810965685816365986010801573439615"

/* The module's hooks (pki_module.c; the descriptor is in pki_http.c):
 * init makes the CA (`egov init`), start loads it, registers the audit
 * checkpoints and installs the kernel's TLS trust hook, verify checks the
 * checkpoints (`egov verify`). */
egov_err pki_module_init(const egov_config *cfg, char *errmsg, size_t errlen);
egov_err pki_module_start(const egov_config *cfg);
int pki_module_verify(db_conn *c, const egov_config *cfg, FILE *out);

#endif
