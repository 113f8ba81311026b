/*
 * identity_limits.h: every limit the identity module puts on what it is
 * given, each with its reason. The kernel's own limits (headers, URIs,
 * JSON depth, arenas) are in core/limits.h.
 *
 * Over a limit the answer is an error, never a truncation: 413 for a body
 * over its route's limit, 400 naming the field for a JSON string over its
 * field's, 409 for a per-account count that is full.
 */
#ifndef EGOV_IDENTITY_LIMITS_H
#define EGOV_IDENTITY_LIMITS_H

/* ---- what an account is made of ---------------------------------------- */

/* An e-mail address, bytes: RFC 5321's limit on a path. */
#define IDENTITY_EMAIL_MAX 254
/* A display name, characters: longer than any real name (and the most a
 * certificate's CN can then carry is cut from it). Bytes: 4 per character. */
#define IDENTITY_NAME_MAX 200
/* A password, characters: NIST SP 800-63B asks for at least 8 and for
 * accepting at least 64. */
#define IDENTITY_PASSWORD_MIN 8
#define IDENTITY_PASSWORD_MAX 128
/* The same 128 characters of up to 4 UTF-8 bytes: what a login even
 * hashes (longer is a wrong password, at no hashing cost). */
#define IDENTITY_PASSWORD_BYTES_MAX 512
/* A department code or role name, bytes ([A-Za-z0-9_-]): short codes
 * like "DSAJ" that people type and read. */
#define IDENTITY_CODE_MAX 32

/* ---- what one account may hold ------------------------------------------ */

/* Certificates of external CAs linked to one account: a person has a few;
 * a session cannot fill the table. Full: 409 identity.cert_links_full. */
#define IDENTITY_CERT_LINKS_MAX 10
/* Live (not revoked) certificates the PKI issued to one account, so that a
 * session cannot fill the certificate table or the CRL. Full: 409
 * pki.cert_limit. */
#define IDENTITY_CERTS_LIVE_MAX 10

/* ---- request bodies (route .body_max) ------------------------------------ */

/* The JSON API's bodies: an e-mail address, a name, a password, a token or
 * a code; the largest, a registration, is well under 1 KiB. */
#define IDENTITY_BODY_MAX 4096
/* A certificate request from a CSR: the CSR (below) as a JSON string with
 * its escapes, and the profile. */
#define IDENTITY_CSR_BODY_MAX (32 * 1024)
/* A PKCS#12 request: profile and passphrase. */
#define IDENTITY_PKCS12_BODY_MAX (8 * 1024)
/* A revocation: the reason. */
#define IDENTITY_REVOKE_BODY_MAX 1024

/* ---- JSON fields (bytes) --------------------------------------------------- */

/* The e-mail field of a login or reset request: longer than any address we
 * keep, so an over-long one is answered as an unknown address would be
 * (no 400 that tells it apart). */
#define IDENTITY_EMAIL_FIELD_MAX 1024
/* A password field: past IDENTITY_PASSWORD_BYTES_MAX, so an over-long
 * password gets the policy's code (identity.password_too_long), not a
 * generic one. */
#define IDENTITY_PASSWORD_FIELD_MAX 4096
/* A mailed token field: tokens are 43 characters; room for what a mail
 * client may wrap around them, without letting junk through. */
#define IDENTITY_TOKEN_FIELD_MAX 128
/* A locale: "zh-Hant", "pt" or "en". */
#define IDENTITY_LOCALE_FIELD_MAX 8
/* A TOTP code (6 digits) and a recovery code ("xxxxx-xxxxx"), with room
 * for the spaces people type. */
#define IDENTITY_TOTP_FIELD_MAX 16
#define IDENTITY_RECOVERY_FIELD_MAX 32
/* A certificate profile name ("person_auth") and a revocation reason
 * ("cessationOfOperation"): the PKI's names, all short. */
#define IDENTITY_PROFILE_FIELD_MAX 32
#define IDENTITY_REASON_FIELD_MAX 32
/* A PEM CSR: an RSA-4096 request is about 1.7 KiB; 16 KiB leaves room for
 * extensions without inviting megabytes. */
#define IDENTITY_CSR_MAX (16 * 1024)
/* A PKCS#12 passphrase, bytes: at least 8 (it protects a private key
 * offline), at most what anyone types or a password manager makes. */
#define IDENTITY_PASSPHRASE_MIN 8
#define IDENTITY_PASSPHRASE_MAX 1024

/* ---- elsewhere ------------------------------------------------------------ */

/* The return path of the certificate log-in page (?return=), bytes: a
 * same-origin path; an authorization request's URL fits. */
#define IDENTITY_RETURN_MAX 1024
/* Password hashing slots at most, whatever the core count: each holds
 * 19 MiB of Argon2id memory. */
#define IDENTITY_HASH_SLOTS_MAX 64

#endif
