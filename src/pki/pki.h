/*
 * pki.h: the platform CA: its keys and certificates, certificates issued
 * from CSRs or as PKCS#12, revocation (CRL, OCSP), an RFC 3161 time-stamping
 * authority, timestamped checkpoints of the audit chain, and verification
 * of client certificates for certificate login.
 *
 * Keys live in DATA/pki/ (mode 0600, directory 0700): root.key (offline in
 * spirit: only `egov init` reads it), issuing.key (signs certificates, CRLs
 * and OCSP responses) and tsa.key (signs timestamps). Certificates beside
 * them as PEM (root.crt, issuing.crt, tsa.crt). Private keys never leave
 * this module.
 *
 * Lifecycle: pki_ca_init() once (the module's init hook, `egov init`),
 * pki_open() once per process before any other call (its start hook,
 * `egov serve`). The CA stays loaded until the process exits: the audit
 * log's writer and requests the drain did not finish may still sign.
 * pki_close() is for tests and commands. After pki_open() every function
 * is safe to call from any thread.
 *
 * This module knows no accounts: an owner is an opaque string (the account
 * id for identity's self-service, a subsystem for the exchange).
 *
 * Errors a person can act on carry a stable code through `const char
 * **code` out-parameters (the same strings as the API's problem codes):
 *   pki.csr_invalid      the CSR cannot be parsed or its subject is unusable
 *   pki.csr_signature    the CSR's self-signature does not verify
 *   pki.key_weak         key type or size not accepted (EC P-256/P-384, RSA >= 2048)
 *   pki.profile_unknown  no such profile
 *   pki.reason_unknown   no such revocation reason
 *   pki.cert_invalid     a certificate given for verification cannot be parsed
 *   pki.cert_expired, pki.cert_revoked, pki.cert_untrusted, pki.cert_wrong_usage
 */
#ifndef EGOV_PKI_PKI_H
#define EGOV_PKI_PKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/db.h"
#include "core/err.h"
#include "core/http.h"

/* Creates DATA/pki with the root CA, the issuing CA and the TSA's key and
 * certificate, each only if missing (so it is idempotent). A key file
 * without its certificate (or the reverse) is refused as EGOV_ECORRUPT:
 * it is never silently replaced. errmsg says what failed. */
egov_err pki_ca_init(const char *data_dir, char *errmsg, size_t errlen);

/* Loads the CA for this process from cfg->data_dir and reads the [pki]
 * section (public_url, trust_anchors, trust_anchor_crls, tsa_policy; the
 * defaults when cfg has none). EGOV_ENOTFOUND if pki_ca_init() never ran
 * there. errmsg says what failed. */
egov_err pki_open(const egov_config *cfg, char *errmsg, size_t errlen);
void pki_close(void);
bool pki_is_open(void);

/* pki.public_url of cfg once finished: the public base URL of this node
 * ("http://127.0.0.1:8080", no trailing slash), which modules above put in
 * links and derive their own URLs from. "" if cfg holds no [pki] section. */
const char *pki_public_url(const egov_config *cfg);

/* ---- issuing --------------------------------------------------------- */

/* Longest serial as hex (128 bits) plus NUL. */
#define PKI_SERIAL_HEX 33

typedef struct pki_cert_info {
	char serial[PKI_SERIAL_HEX]; /* lower-case hex */
	char owner[256];
	char profile[32];
	char subject[512];           /* RFC 2253 */
	char not_before[32];         /* RFC 3339 UTC */
	char not_after[32];
	char status[16];             /* "good" or "revoked" */
	char revoked_at[32];         /* "" unless revoked */
	char reason[32];             /* "" unless revoked */
	char *pem;                   /* the certificate, malloc'd; caller frees */
} pki_cert_info;

void pki_cert_info_release(pki_cert_info *ci);

/* Whether name is a profile: person_auth, person_sign, system_tls_client,
 * system_sign, system_tls (serverAuth and clientAuth: a gateway). */
bool pki_profile_valid(const char *name);

/* Issues a certificate for the CSR's public key (PEM or DER, len bytes).
 * The subject is built here: CN = cn if given, else the CSR's CN once
 * validated (printable, 1..64 characters); UID = owner; O = egov; C = MO.
 * Nothing else of the CSR's subject or extensions is copied. owner is the
 * account or system the certificate belongs to (1..255 bytes). On bad
 * input EGOV_EINVAL and *code; on success *out is filled (free its pem
 * with pki_cert_info_release). */
egov_err pki_issue_from_csr(db_conn *c, const void *csr, size_t len, const char *profile, const char *owner,
			    const char *cn, pki_cert_info *out, const char **code);

/* Who asks for a certificate, as its audit record ("pki.cert.issue",
 * object "cert:SERIAL", details profile, owner, via, request_id) names
 * them. */
typedef struct pki_requester {
	const char *actor;      /* "account:<id>", "operator", ...: the record's actor */
	const char *via;        /* how it was asked for ("csr", "pkcs12"), or NULL */
	const char *request_id; /* the HTTP request's id, or NULL */
} pki_requester;
/* pki_issue_from_csr() and its audit record in one transaction (inside
 * the caller's if one is open on c): the certificate exists exactly when
 * its record does. who NULL: no record. Errors as pki_issue_from_csr(). */
egov_err pki_issue_from_csr_audited(db_conn *c, const void *csr, size_t len, const char *profile, const char *owner,
				    const char *cn, const pki_requester *who, pki_cert_info *out, const char **code);
/* Generates a P-256 key pair, issues a certificate for it as above (cn
 * required) and returns both as a PKCS#12 bundle (AES-256-CBC, PBKDF2,
 * HMAC-SHA-256) in *p12 (malloc'd, *p12_len bytes; caller frees). The key is
 * wiped and never stored. passphrase must be 8..1024 bytes. The
 * certificate and its audit record for who (NULL: none) commit together
 * before the bundle is made (its key derivation is slow): a failure after
 * that leaves an issued, recorded certificate that nobody received. */
egov_err pki_issue_pkcs12(db_conn *c, const char *owner, const char *profile, const char *cn,
			  const char *passphrase, const pki_requester *who, unsigned char **p12, size_t *p12_len,
			  pki_cert_info *out, const char **code);

/* A certificate by serial (hex, any case). EGOV_ENOTFOUND if unknown. */
egov_err pki_cert_get(db_conn *c, const char *serial, pki_cert_info *out);

/* How many certificates of owner are not revoked (expired ones count
 * until they are revoked), into *n. */
egov_err pki_cert_count_live(db_conn *c, const char *owner, int64_t *n);

/* A certificate as JSON: serial, owner (unless self: the caller's own),
 * profile, subject, validity, status, revocation, and "certificate" (the
 * PEM) when ci->pem is set. */
void pki_cert_write(jw *w, const pki_cert_info *ci, bool self);
/* Answers status with pki_cert_write's JSON; 201 adds Location
 * location_prefix/SERIAL; self answers are also Cache-Control: no-store. */
egov_err pki_cert_answer(req *r, int status, const pki_cert_info *ci, const char *location_prefix, bool self);

/* Calls fn for each certificate of owner, newest first (by not_before),
 * with pem NULL (fetch one with pki_cert_get). fn returning non-zero
 * stops the walk. */
egov_err pki_cert_list_by_owner(db_conn *c, const char *owner, int (*fn)(void *ctx, const pki_cert_info *ci),
				void *ctx);

/* ---- revocation ------------------------------------------------------ */

/* Whether name is a revocation reason: unspecified, keyCompromise,
 * cACompromise, affiliationChanged, superseded, cessationOfOperation,
 * privilegeWithdrawn. */
bool pki_reason_valid(const char *name);

/* Revokes a certificate and records "pki.cert.revoke" with actor in the
 * audit log (when audit_available()) in one transaction (call it outside
 * one of the caller's: the CRL is rebuilt once it commits). EGOV_ENOTFOUND
 * for an unknown serial, EGOV_ECONFLICT if it is already revoked,
 * EGOV_EINVAL (*code pki.reason_unknown) for a bad reason. */
egov_err pki_revoke(db_conn *c, const char *serial, const char *reason, const char *actor, const char **code);

/* The current CRL (DER, signed by the issuing CA, nextUpdate in 24 h),
 * copied into *der (malloc'd). Rebuilt after a revocation here, and when
 * the cached one is older than a minute (another node may have revoked). */
egov_err pki_crl_der(db_conn *c, unsigned char **der, size_t *len);

/* The CA certificates as DER (static for the process; do not free). */
const unsigned char *pki_root_der(size_t *len);
const unsigned char *pki_issuing_der(size_t *len);

/* Answers an RFC 6960 OCSP request (DER). Always produces a response in
 * *resp (malloc'd): malformedRequest for bytes that are not a request,
 * internalError on a database failure, else a basic response signed by the
 * issuing CA with good/revoked/unknown per certificate and the nonce
 * echoed. Fails only when out of memory. */
egov_err pki_ocsp_respond(db_conn *c, const void *request, size_t len, unsigned char **resp, size_t *resp_len);

/* ---- time stamping --------------------------------------------------- */

/* Answers an RFC 3161 time-stamp query (DER) with a reply in *resp
 * (malloc'd): a granted token (SHA-256/384/512 imprints, signed by the TSA
 * key, with the chain) or a rejection with failure info for a bad query. */
egov_err pki_tsa_respond(const void *query, size_t len, unsigned char **resp, size_t *resp_len);

/* Registers the audit checkpoint hook: every pki.checkpoint_every
 * records the head (seq, hash) is timestamped in-process and stored in
 * pki_audit_checkpoint through a connection of d. */
egov_err pki_audit_checkpoints_start(db *d, int64_t every_n);

typedef struct pki_checkpoint_result {
	int64_t checked;  /* checkpoints that verified */
	int64_t first_bad; /* seq of the first that failed, 0 if none */
	char why[128];     /* why it failed */
} pki_checkpoint_result;

/* Checks every stored checkpoint: the token's signature chains to the root
 * in DATA/pki/root.crt, it covers (seq, hash), and the audit record at seq
 * still has that hash. Needs no pki_open(). EGOV_OK whether or not one
 * failed (see res); errors are for failing to read. */
egov_err pki_audit_checkpoints_verify(db_conn *c, const char *data_dir, pki_checkpoint_result *res);

/* ---- verification of client certificates ----------------------------- */

typedef struct pki_verify_result {
	const char *code;      /* NULL if valid, else a pki.cert_* code */
	char subject[512];     /* RFC 2253 */
	char issuer[512];
	char serial[PKI_SERIAL_HEX * 2]; /* lower-case hex */
	char cn[128];
	char uid[256];         /* subject UID (our owner), "" if none */
	bool platform;         /* issued by this platform's CA */
	bool external;         /* the chain ends at a pki.trust_anchors anchor,
				* not at the platform root */
	char profile[32];      /* our profile, "" for foreign certificates */
	char spki_sha256[65];  /* SHA-256 of the SubjectPublicKeyInfo (DER), hex */
} pki_verify_result;

/* Verifies a client certificate (DER or PEM, len bytes) for login: the
 * chain to the platform root or a configured trust anchor (the issuing CA
 * is supplied as intermediate), validity at this moment, EKU clientAuth
 * with digitalSignature, and for our own certificates their status in the
 * database. A certificate not issued by the platform is checked against
 * the CRLs of pki.trust_anchor_crls when that bundle holds one from its
 * issuer (then a missing, stale or badly signed CRL fails the check as
 * pki.cert_untrusted); with no such CRL its revocation is not checked.
 * Returns EGOV_OK if valid; EGOV_EAUTH with res->code if not;
 * other errors (database) as themselves. res is filled as far as the
 * certificate could be read. */
egov_err pki_verify_chain(db_conn *c, const void *cert, size_t len, pki_verify_result *res);

/* The module's descriptor (src/modules.c). */
struct egov_module;
extern const struct egov_module pki_module;

#endif
