/*
 * pki_limits.h: every limit the PKI puts on what it is given, each with
 * its reason. The kernel's own limits are in core/limits.h.
 *
 * Over a limit the answer is an error, never a truncation: 413 for a body
 * over its route's limit, 400 naming the field for a JSON string, an OCSP
 * malformedRequest or a TSA rejection for a protocol message.
 */
#ifndef EGOV_PKI_LIMITS_H
#define EGOV_PKI_LIMITS_H

/* ---- protocol messages (DER) ---------------------------------------------- */

/* An OCSP request or a time-stamp query: a few hundred bytes (16 ids of
 * about 80 bytes each, or one hash); 64 KiB refuses junk before parsing. */
#define PKI_PROTOCOL_BODY_MAX (64 * 1024)
/* Certificates asked about in one OCSP request: clients ask about one;
 * more would make one request sign a long answer. */
#define PKI_OCSP_MAX_IDS 16

/* ---- the certificates API (route .body_max and JSON fields) ---------------- */

/* A request to issue from a CSR: the CSR as a JSON string with its
 * escapes, the profile, owner and CN. */
#define PKI_ISSUE_BODY_MAX (32 * 1024)
/* A PKCS#12 request: profile, owner, CN and passphrase. */
#define PKI_PKCS12_BODY_MAX (8 * 1024)
/* A revocation: the reason. */
#define PKI_REVOKE_BODY_MAX 1024
/* A PEM CSR: an RSA-4096 request is about 1.7 KiB; 16 KiB leaves room for
 * extensions without inviting megabytes. */
#define PKI_CSR_MAX (16 * 1024)
/* A profile name ("system_tls_client") and a revocation reason
 * ("cessationOfOperation"): our own names, all short. */
#define PKI_NAME_FIELD_MAX 32
/* An owner, bytes: an account id or a subsystem's path, kept in the
 * certificate's UID. */
#define PKI_OWNER_MAX 255
/* A CN: RFC 5280's ub-common-name is 64 characters; in bytes, 4 each. */
#define PKI_CN_CHARS_MAX 64
#define PKI_CN_MAX 256
/* A PKCS#12 passphrase, bytes: at least 8 (it guards a private key
 * offline), at most what anyone types or a password manager makes. */
#define PKI_PASSPHRASE_MIN 8
#define PKI_PASSPHRASE_MAX 1024

/* ---- files and pages --------------------------------------------------------- */

/* A CRL file of a trust anchor (pki.trust_anchor_crls): national CAs
 * publish CRLs of tens of megabytes; more is not a CRL file. */
#define PKI_ANCHOR_CRL_FILE_MAX (64L * 1024 * 1024)
/* Audit checkpoints read per page while verifying: bounds memory whatever
 * the number of checkpoints. */
#define PKI_CHECKPOINT_PAGE 256

#endif
