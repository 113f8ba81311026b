/*
 * identity_int.h: helpers shared by the files of the identity module only.
 */
#ifndef EGOV_IDENTITY_INT_H
#define EGOV_IDENTITY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/db.h"
#include "core/err.h"
#include "identity/identity.h"

/* A fresh 256-bit random token, base64url without padding (43 chars). */
egov_err identity_random_token(char out[IDENTITY_TOKEN_LEN + 1]);
/* SHA-256 hex of a NUL-terminated string. */
void identity_hash_hex(const char *s, char out[65]);
/* Copies s (NULL as "") into dst of size n, truncating only if it cannot
 * fit (callers size dst from the same limits that validated s). */
void identity_copy(char *dst, size_t n, const char *s);
/* Code points in a valid UTF-8 string. */
size_t identity_utf8_len(const char *s);
/* Lower-cases ASCII letters in place. */
void identity_ascii_lower(char *s);
/* RFC 3339 of identity_now_us(). */
void identity_now_rfc3339(char out[32]);

/* Whether a hash asked for now would be refused (every slot busy, the
 * queue full), with the wait estimate; counts as a rejection. Does not
 * block: the routes that hash call it on the HTTP worker (route.gate). */
/* Admission control seen from the HTTP side (identity_password.c): a
 * place in the queue reserved on the HTTP worker (false when slots and
 * queue are full, with *retry_after_ms), given back unused with
 * identity_admission_unreserve(); the thread that will hash adopts it, so
 * its next hash takes a slot without being refused again, and
 * identity_admission_unadopt() gives it back if it did not hash. */
bool identity_admission_reserve(int64_t *retry_after_ms);
void identity_admission_unreserve(void);
void identity_admission_adopt(void);
void identity_admission_unadopt(void);

/* identity_audit.c. Appends the audit record of an event of request r (details: the
 * address, the request id and, when extra_k is given, extra_k: extra_v):
 * inside c's transaction, so that the change it records commits with it;
 * c NULL for an event that changed nothing (a refused login), in a
 * transaction of its own. Skipped where there is no audit log (a unit
 * test of another module). */
egov_err identity_audit(req *r, db_conn *c, const char *actor, const char *action, const char *object,
			const char *extra_k, const char *extra_v);
/* "account:<id>" for an account's audit records. */
void identity_actor_of(const char *account_id, char out[48]);

/* `egov user|dept|role ...` (argv[0] says which), identity_cli.c. */
int identity_cli_run(int argc, char **argv, db *d);
/* Demo data: departments and a demo resident/civil servant. */
egov_err identity_demo(db_conn *c);

/* Links between accounts and certificates of external CAs
 * (identity_certlink.c). Strings as pki_verify_chain() writes them. */
typedef struct identity_cert_link {
	char account_id[37];
	char issuer[512];     /* RFC 2253 */
	char serial[66];      /* lower-case hex, no leading zeros */
	char spki_sha256[65]; /* hex */
	char subject[512];
	char created_at[32];
} identity_cert_link;
/* EGOV_ENOTFOUND if (issuer, serial) is linked to no account. */
egov_err identity_cert_link_find(db_conn *c, const char *issuer, const char *serial, identity_cert_link *out);
/* Inserts in (created_at is set here). EGOV_ELIMIT when the account has
 * IDENTITY_CERT_LINKS_MAX links; EGOV_ECONFLICT when (issuer, serial) is
 * linked already, with that link in *existing (zeroed if it went away). */
egov_err identity_cert_link_add(db_conn *c, const identity_cert_link *in, identity_cert_link *existing);
/* The account's links, oldest first; fn returning non-zero stops. */
egov_err identity_cert_link_list(db_conn *c, const char *account_id,
				 int (*fn)(void *ctx, const identity_cert_link *l), void *ctx);
/* Removes the account's links of serial (any issuer); *removed = rows. */
egov_err identity_cert_link_remove(db_conn *c, const char *account_id, const char *serial, int64_t *removed);
/* A serial from a client (hex, any case) as stored; false if not hex or
 * longer than outlen - 1 digits. */
bool identity_serial_norm(const char *in, char *out, size_t outlen);

/* ---- handlers, routed by identity_module.c ---------------------------- */

/* The JSON API (identity_http.c). The *_placed handlers hash a password:
 * identity_hash_gate reserves their place in the hashing queue first. */
egov_err identity_hash_gate(req *r);
egov_err identity_api_register_placed(req *r);
egov_err identity_api_verify_email(req *r);
egov_err identity_api_login_placed(req *r);
egov_err identity_api_login_totp(req *r);
egov_err identity_api_logout(req *r);
egov_err identity_api_reset_request(req *r);
egov_err identity_api_reset_confirm_placed(req *r);
egov_err identity_api_me(req *r);
egov_err identity_api_sessions(req *r);
egov_err identity_api_session_revoke(req *r);
egov_err identity_api_session_revoke_all(req *r);
egov_err identity_api_totp_enrol(req *r);
egov_err identity_api_totp_confirm(req *r);
egov_err identity_api_totp_disable(req *r);
egov_err identity_api_recovery_regenerate(req *r);

/* Certificate login and links to external certificates (identity_cert.c). */
egov_err identity_api_login_certificate(req *r);
egov_err identity_page_login_certificate(req *r);
egov_err identity_api_link_add(req *r);
egov_err identity_api_link_list(req *r);
egov_err identity_api_link_remove(req *r);

/* A person's own certificates, issued by the PKI (identity_certs_http.c);
 * at most IDENTITY_CERTS_LIVE_MAX live ones per account. */
egov_err identity_api_certs_list(req *r);
egov_err identity_api_certs_issue(req *r);
egov_err identity_api_certs_issue_p12(req *r);
egov_err identity_api_certs_get(req *r);
egov_err identity_api_certs_revoke(req *r);

#endif
