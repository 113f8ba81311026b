/*
 * identity.h: accounts, departments, roles, passwords, brute-force
 * protection, sessions, CSRF, TOTP and the authoriser of the trust layer.
 *
 * Other modules (OIDC, pages, mail) use only this header. Storage, HTTP
 * handlers and the CLI are private to src/identity/.
 *
 * Invariants:
 * - E-mail addresses are stored lower-cased (ASCII) and unique; a race for
 *   one address is settled by the UNIQUE constraint (EGOV_ECONFLICT).
 * - Secrets are never stored in clear: passwords as Argon2id strings,
 *   session ids, e-mail tokens and recovery codes as SHA-256 hex. (The TOTP
 *   secret is stored as given: HMAC needs it.)
 * - Every Argon2id hash or verify runs behind admission control
 *   (identity_password_hash/verify): at most `slots` at once, at most
 *   `queue` waiting, anything beyond fails at once with EGOV_EBUSY and a
 *   retry estimate, so a login flood cannot exhaust memory (19 MiB each).
 * - Times are microseconds since the epoch from identity_now_us(), which
 *   tests replace with identity_set_clock().
 *
 * Tables (migrations in identity_module.c), on both backends:
 *   identity_account, identity_dept, identity_grant, identity_session,
 *   identity_recovery, identity_token, identity_throttle and
 *   identity_cert_link (certificates of external CAs linked to accounts,
 *   identity_cert.c). Mail goes through notify's outbox (notify_enqueue);
 *   certificates are the PKI's (pki.h): this module touches no other
 *   module's tables.
 */
#ifndef EGOV_IDENTITY_IDENTITY_H
#define EGOV_IDENTITY_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/db.h"
#include "core/err.h"
#include "core/http.h"
#include "identity/identity_limits.h"

/* ---- policy (the limits are in identity_limits.h) ------------------------ */

/* Argon2id with the OWASP parameters: t=2, m=19 MiB, p=1 (libsodium is p=1). */
#define IDENTITY_ARGON2_OPSLIMIT 2
#define IDENTITY_ARGON2_MEMLIMIT (19456u * 1024u)

/* Sessions. Absolute lifetime depends on the assurance level: 12 h for
 * acr >= 2 (NIST AAL2 reauthentication), 24 h for password only (acr 1).
 * A pending session (password checked, second factor awaited) lives 5 min. */
#define IDENTITY_SESSION_IDLE_S (30 * 60)
#define IDENTITY_SESSION_ABS_AAL1_S (24 * 3600)
#define IDENTITY_SESSION_ABS_AAL2_S (12 * 3600)
#define IDENTITY_SESSION_PENDING_S (5 * 60)
/* last_seen is written only when older than this, to keep reads read-only. */
#define IDENTITY_SESSION_TOUCH_S 60
#define IDENTITY_SESSION_COOKIE "egov_sid"
#define IDENTITY_TOKEN_LEN 43           /* 256 random bits, base64url unpadded */

/* Brute force: per account (counted per e-mail address, so an address that
 * has no account is treated alike and the answers do not tell them apart)
 * the IDENTITY_THROTTLE_FREE-th consecutive failure blocks attempts for 1 s,
 * the next for 2 s, then 4 s ... up to IDENTITY_THROTTLE_CAP_S. Per source
 * address the same growth starts at IDENTITY_THROTTLE_IP_FREE failures (many
 * residents share a NAT). A counter with no failure for a day starts over.
 * At IDENTITY_LOCK_FAILURES consecutive failures the account locks (NIST's
 * cap) and its owner is told by e-mail; a password reset unlocks it. */
#define IDENTITY_THROTTLE_FREE 5
#define IDENTITY_THROTTLE_IP_FREE 50
#define IDENTITY_THROTTLE_CAP_S (15 * 60)
#define IDENTITY_LOCK_FAILURES 100

/* Tokens mailed to people. */
#define IDENTITY_VERIFY_TTL_S (24 * 3600)
#define IDENTITY_RESET_TTL_S (3600)

/* TOTP (RFC 6238): SHA-1, 6 digits, 30 s steps, one step either side. */
#define IDENTITY_TOTP_DIGITS 6
#define IDENTITY_TOTP_STEP_S 30
#define IDENTITY_TOTP_SECRET_B32 32     /* 160 bits in base32, no padding */
#define IDENTITY_RECOVERY_CODES 10
#define IDENTITY_RECOVERY_CODE_LEN 11   /* "xxxxx-xxxxx": 50 random bits */

/* ---- clock -------------------------------------------------------------- */
/* The identity clock (wall time, us). NULL restores the real clock. */
void identity_set_clock(int64_t (*now_us)(void));
int64_t identity_now_us(void);

/* ---- accounts ----------------------------------------------------------- */
typedef enum identity_kind { IDENTITY_RESIDENT, IDENTITY_STAFF, IDENTITY_SYSTEM } identity_kind;

/* "resident", "staff", "system". */
const char *identity_kind_name(identity_kind k);
/* EGOV_EINVAL for anything else. */
egov_err identity_kind_parse(const char *s, identity_kind *out);

typedef struct identity_account {
	char id[37];                       /* UUIDv7 */
	identity_kind kind;
	char email[IDENTITY_EMAIL_MAX + 1];
	char display_name[IDENTITY_NAME_MAX * 4 + 1];
	char locale[8];                    /* "zh-Hant", "pt", "en" */
	bool email_verified;
	bool disabled;
	bool locked;                       /* after IDENTITY_LOCK_FAILURES failures */
	bool totp_enabled;
	bool has_password;
	char created_at[32];               /* RFC 3339 */
} identity_account;

typedef struct identity_account_new {
	identity_kind kind;
	const char *email;        /* validated and lower-cased */
	const char *display_name; /* 1..IDENTITY_NAME_MAX characters */
	const char *locale;       /* NULL = "zh-Hant" */
	const char *password;     /* NULL = no password (system accounts, invited staff) */
	/* Or the password already hashed by identity_password_hash() (after
	 * identity_account_check()), so that no hash runs while the caller's
	 * transaction holds the write lock. Used when password is NULL. */
	const char *password_hash;
	bool email_verified;      /* true when an operator vouches for the address */
} identity_account_new;

/* Validation failures name a stable problem code through *code:
 * "identity.email_invalid", "identity.name_invalid", "identity.locale_invalid",
 * the password codes of identity_password_policy(), and "identity.email_taken"
 * (then the return is EGOV_ECONFLICT). Hashes the password (so EGOV_EBUSY
 * with *retry_after_ms is possible). On success fills *out. On c inside the
 * caller's transaction if one is open (then hash first: password_hash). */
egov_err identity_account_create(db_conn *c, const identity_account_new *in, identity_account *out,
				 const char **code, int64_t *retry_after_ms);
/* The checks identity_account_create() makes before it touches the
 * database (e-mail, name, locale, password policy), in its order, with its
 * codes. EGOV_OK or EGOV_EINVAL. */
egov_err identity_account_check(const identity_account_new *in, const char **code);
/* EGOV_ENOTFOUND if there is none. Email lookup is case-insensitive. */
egov_err identity_account_get(db_conn *c, const char *id, identity_account *out);
egov_err identity_account_get_by_email(db_conn *c, const char *email, identity_account *out);
egov_err identity_account_set_email_verified(db_conn *c, const char *id);
/* Disabling also revokes every session of the account. */
egov_err identity_account_disable(db_conn *c, const char *id);
/* Calls fn for every account in e-mail order; fn returning non-zero stops. */
egov_err identity_account_list(db_conn *c, int (*fn)(void *ctx, const identity_account *a), void *ctx);
/* 1 if s looks like an address we accept (local@domain, printable ASCII
 * or UTF-8, one '@', a dot in the domain, <= IDENTITY_EMAIL_MAX bytes). */
int identity_email_valid(const char *s);

/* ---- passwords ---------------------------------------------------------- */
/* Checks a candidate against the policy: valid UTF-8, 8..128 characters
 * (code points, counted after no normalisation), not on the common-password
 * list (compared case-insensitively). EGOV_OK, or EGOV_EINVAL with *code one
 * of identity.password_too_short, identity.password_too_long,
 * identity.password_invalid (bad UTF-8 or NUL), identity.password_common. */
egov_err identity_password_policy(const char *pw, const char **code);
/* 1 if pw is on the shipped common-password list (case-insensitive). */
int identity_password_is_common(const char *pw);

/* Argon2id string (crypto_pwhash_STRBYTES = 128 bytes incl. NUL). Runs
 * behind admission control: EGOV_EBUSY with *retry_after_ms (>= 1) when the
 * hashing slots and the queue are full. */
egov_err identity_password_hash(const char *pw, char out[128], int64_t *retry_after_ms);
/* *ok = whether pw matches hash. Same admission control. A NULL hash
 * verifies against a dummy so unknown accounts cost the same time. */
egov_err identity_password_verify(const char *hash, const char *pw, bool *ok, int64_t *retry_after_ms);
/* Sets a new password (policy checked, *code as above), unlocks the
 * account and clears its failure counter. */
egov_err identity_password_set(db_conn *c, const char *account_id, const char *pw, const char **code,
			       int64_t *retry_after_ms);
/* The same with the password hashed already (identity_password_hash(),
 * after identity_password_policy()), for a caller's transaction.
 * EGOV_ENOTFOUND for an unknown account. */
egov_err identity_password_set_hash(db_conn *c, const char *account_id, const char *hash);

/* Admission control. slots 0 = number of cores; queue 0 = 2 x slots.
 * Called once at start (and by tests); safe to call again when idle. */
void identity_admission_init(int slots, int queue);
typedef struct identity_admission_stats {
	int slots, queue_max;
	int running, waiting;
	uint64_t admitted, rejected;
	uint64_t kept_memory; /* hashes that ran in a slot's kept working memory */
	int64_t mean_hash_us; /* moving average of one hash's wall time */
} identity_admission_stats;
void identity_admission_stats_get(identity_admission_stats *out);

/* ---- brute force -------------------------------------------------------- */
/* Before checking a password: EGOV_EBUSY with *retry_after_ms if either the
 * account (or unknown e-mail) or the source address is in a delay. */
egov_err identity_throttle_check(db_conn *c, const char *email, const char *ip, int64_t *retry_after_ms);
/* After a failed check: counts it for both; *locked_now = the account just
 * reached IDENTITY_LOCK_FAILURES and was locked (the caller audits; the
 * owner's e-mail is queued here). account_id NULL for unknown e-mails. */
egov_err identity_throttle_fail(db_conn *c, const char *email, const char *account_id, const char *ip,
				bool *locked_now);
/* After a successful check: clears the account's counter (not the
 * address's: a good login must not launder a guessing source). */
egov_err identity_throttle_success(db_conn *c, const char *email);

/* The whole password step of a login: throttle, verify (dummy hash for
 * unknown e-mails), count. On success fills *out and returns EGOV_OK.
 * Failures, with *code:
 *   EGOV_EAUTH  identity.bad_credentials (unknown e-mail, wrong password,
 *               no password set: one answer for all)
 *   EGOV_EBUSY  identity.throttled (*retry_after_ms) or identity.busy
 *               (admission control, *retry_after_ms)
 *   EGOV_EPERM  identity.locked, identity.disabled (only after the
 *               password was right, so they reveal nothing to a guesser)
 * *locked_now (optional) tells the caller to audit a lock. */
egov_err identity_login_password(db_conn *c, const char *email, const char *password, const char *ip,
				 identity_account *out, const char **code, int64_t *retry_after_ms,
				 bool *locked_now);
/* identity_login_password() in its two halves, so that the counting can
 * share a transaction with the login's audit record (and its session):
 * identity_login_check() throttles and verifies and writes nothing; its
 * answers are identity_login_password()'s, and *att says what is left to
 * count. identity_login_count() then counts on c, inside the caller's
 * transaction: a failure (and a lock, mailing its owner: *locked_now) or
 * the end of an account's failures. Without a check it does nothing. */
typedef struct identity_login_attempt {
	char email[IDENTITY_EMAIL_MAX + 1];
	char ip[64];
	char account_id[37]; /* "" for an unknown e-mail */
	bool failed;         /* a wrong password: count it */
	bool clear;          /* right after earlier failures: reset the account's counter */
} identity_login_attempt;
egov_err identity_login_check(db_conn *c, const char *email, const char *password, const char *ip,
			      identity_account *out, identity_login_attempt *att, const char **code,
			      int64_t *retry_after_ms);
egov_err identity_login_count(db_conn *c, const identity_login_attempt *att, bool *locked_now);

/* The certificate step of a login (assurance level 3): verifies cert (DER
 * or PEM, len bytes; from req_client_cert()) with pki_verify_chain() into
 * *res and maps it to an account: a certificate of this platform's CA by
 * its subject UID, one of an external anchor (pki.trust_anchors) through
 * its identity_cert_link row (issuer and serial, and the stored public-key
 * hash must match). On success
 * fills *out and returns EGOV_OK. Failures, with *code:
 *   EGOV_EAUTH  a pki.cert_* code of pki_verify_chain() (pki.cert_invalid,
 *               pki.cert_untrusted, pki.cert_expired, pki.cert_revoked,
 *               pki.cert_wrong_usage), or identity.cert_unknown_account
 *   EGOV_EPERM  identity.disabled
 * Other errors (database) as themselves. The caller creates the session
 * (acr 3) and audits. Routes: GET|POST /api/v1/identity/login/certificate
 * and GET /login/certificate?return=PATH (identity_cert.c). */
struct pki_verify_result;
egov_err identity_login_certificate(db_conn *c, const void *cert, size_t len, identity_account *out,
				    struct pki_verify_result *res, const char **code);

/* ---- departments and roles ---------------------------------------------- */
typedef struct identity_dept {
	char code[IDENTITY_CODE_MAX + 1];   /* e.g. "DSAJ" */
	char name[IDENTITY_NAME_MAX * 4 + 1];
	char parent[IDENTITY_CODE_MAX + 1]; /* "" for a root (a bureau) */
} identity_dept;

/* code: 1..32 of [A-Za-z0-9_-]; parent NULL or "" for a root. EGOV_ECONFLICT
 * if the code exists, EGOV_ENOTFOUND if the parent does not. */
egov_err identity_dept_create(db_conn *c, const char *code, const char *name, const char *parent);
egov_err identity_dept_get(db_conn *c, const char *code, identity_dept *out);
/* In code order; fn returning non-zero stops. */
egov_err identity_dept_list(db_conn *c, int (*fn)(void *ctx, const identity_dept *d), void *ctx);

/* Roles are a const table in code (identity_roles.c):
 *   admin          *                      (everything, in a root department)
 *   identity_admin identity.admin         (accounts, departments, grants)
 *   auditor        audit.read
 *   notice_editor  info.notice.write
 *   client_admin   oidc.client.write      (OIDC client registrations)
 *   staff          staff.console          (every civil servant)
 * A grant of role R in department D gives R's permissions in D and every
 * department below it. */
int identity_role_valid(const char *role);
/* The role's permissions, NULL-terminated; NULL for an unknown role. */
const char *const *identity_role_perms(const char *role);

/* EGOV_EINVAL unknown role, EGOV_ENOTFOUND unknown account or department,
 * EGOV_ECONFLICT already granted. Revoke: EGOV_ENOTFOUND if not granted. */
egov_err identity_role_grant(db_conn *c, const char *account_id, const char *role, const char *dept);
egov_err identity_role_revoke(db_conn *c, const char *account_id, const char *role, const char *dept);
typedef struct identity_grant {
	char role[IDENTITY_CODE_MAX + 1];
	char dept[IDENTITY_CODE_MAX + 1];
} identity_grant;
egov_err identity_role_list(db_conn *c, const char *account_id, int (*fn)(void *ctx, const identity_grant *g),
			    void *ctx);
/* Whether the account holds perm. dept NULL: route-level check, any grant
 * whose role has perm counts, and "*" counts only when granted in a root
 * department. dept given: grants in dept or one of its ancestors count,
 * "*" included. Disabled accounts hold nothing. */
egov_err identity_permission_has(db_conn *c, const char *account_id, const char *perm, const char *dept,
				 bool *allowed);

/* ---- sessions and CSRF -------------------------------------------------- */
typedef struct identity_session {
	char id[37];              /* public handle (list/revoke); not the cookie */
	char account_id[37];
	int acr;                  /* 1 password, 2 +TOTP, 3 certificate; 0 pending */
	bool pending;             /* password checked, TOTP awaited */
	int64_t auth_time_us, created_us, last_seen_us, expires_us; /* expires: absolute */
	char ip[64];
	char user_agent[256];
	char csrf[IDENTITY_TOKEN_LEN + 1];
	char email[IDENTITY_EMAIL_MAX + 1]; /* the account's, by identity_session_lookup() only */
} identity_session;

/* Creates a session; *token_out receives the cookie value (256 random bits,
 * base64url), only its SHA-256 is stored. pending = TOTP still to come. */
egov_err identity_session_create(db_conn *c, const char *account_id, int acr, bool pending, const char *ip,
				 const char *user_agent, char token_out[IDENTITY_TOKEN_LEN + 1],
				 identity_session *out);
/* Looks a cookie value up. EGOV_EAUTH if unknown, expired (idle or
 * absolute; expired rows are deleted) or the account is disabled.
 * Touches last_seen when older than IDENTITY_SESSION_TOUCH_S. Pending
 * sessions are returned with pending = true: callers other than the TOTP
 * step must refuse them (identity_session_from_req does). */
egov_err identity_session_lookup(db_conn *c, const char *token, identity_session *out);
/* The request's full (non-pending) session from its egov_sid cookie;
 * EGOV_EAUTH if none, expired or pending. */
egov_err identity_session_from_req(req *r, identity_session *out);
/* Like identity_session_from_req but returns pending sessions too. */
egov_err identity_session_any_from_req(req *r, identity_session *out);
/* Deletes one session of the account by public id (EGOV_ENOTFOUND if it
 * is not the account's); revoke_all keeps except_id (may be NULL) and
 * returns the number revoked in *n (optional). */
egov_err identity_session_revoke(db_conn *c, const char *account_id, const char *session_id);
egov_err identity_session_revoke_all(db_conn *c, const char *account_id, const char *except_id, int64_t *n);
/* Live sessions of an account, newest first. */
egov_err identity_session_list(db_conn *c, const char *account_id,
			       int (*fn)(void *ctx, const identity_session *s), void *ctx);
/* The Set-Cookie value for token (NULL: a cookie that clears it). Secure
 * when identity_set_cookie_secure(true) was called (TLS in front). */
void identity_session_cookie(const char *token, int max_age_s, char *out, size_t len);
void identity_set_cookie_secure(bool secure);
/* CSRF for state-changing calls made with a session cookie: the token from
 * the X-CSRF-Token header, or for form posts the "csrf" field of an
 * application/x-www-form-urlencoded body, compared in constant time.
 * EGOV_OK or EGOV_EPERM (answer 403 identity.csrf). Routes check it with
 * AUTH_CSRF; a handler that decides late whether it needs it (the OIDC
 * consent form) calls it itself. */
egov_err identity_csrf_check(req *r, const identity_session *s);
/* The same for the request's session principal (req_principal()):
 * EGOV_EPERM also when the caller has no session. */
egov_err identity_csrf_check_principal(req *r);
/* The session of a route's caller (a route with AUTH_SESSION, called with
 * a session): the router's authenticator keeps it for the request. NULL
 * when the caller has none. */
const identity_session *identity_req_session(const req *r);

/* ---- TOTP and recovery codes -------------------------------------------- */
/* RFC 4226/6238 HOTP value of key at counter, truncated to digits (6..8). */
uint32_t identity_hotp(const unsigned char *key, size_t keylen, uint64_t counter, int digits);
/* Base32 (RFC 4648, no padding) both ways. decode: EGOV_EINVAL on bad input. */
egov_err identity_base32_encode(const unsigned char *in, size_t n, char *out, size_t outlen);
egov_err identity_base32_decode(const char *in, unsigned char *out, size_t outlen, size_t *n);
/* Starts enrolment: a new 160-bit secret is kept as pending (replacing an
 * earlier pending one; an enabled TOTP stays until confirmed). Fills
 * secret_b32, the otpauth:// URI (label "egov:<email>", issuer egov) and a
 * QR code of it as an SVG document into the bufs. */
egov_err identity_totp_enrol_begin(db_conn *c, const char *account_id, char secret_b32[IDENTITY_TOTP_SECRET_B32 + 1],
				   buf *uri, buf *svg);
/* Confirms with a code of the pending secret: TOTP becomes enabled and
 * IDENTITY_RECOVERY_CODES new recovery codes are written to codes (the only
 * time they exist in clear). EGOV_EINVAL wrong code (identity.totp_invalid),
 * EGOV_ENOTFOUND nothing pending. */
egov_err identity_totp_enrol_confirm(db_conn *c, const char *account_id, const char *code,
				     char codes[IDENTITY_RECOVERY_CODES][IDENTITY_RECOVERY_CODE_LEN + 1]);
/* Checks a code of the enabled secret at now, +-1 step; a step at or before
 * the last accepted one is refused (replay). EGOV_EINVAL if wrong. */
egov_err identity_totp_verify(db_conn *c, const char *account_id, const char *code);
/* Turns TOTP off and deletes the recovery codes. */
egov_err identity_totp_disable(db_conn *c, const char *account_id);
/* Replaces all recovery codes with new ones. */
egov_err identity_recovery_regenerate(db_conn *c, const char *account_id,
				      char codes[IDENTITY_RECOVERY_CODES][IDENTITY_RECOVERY_CODE_LEN + 1]);
/* Uses one recovery code (case and '-' insensitive); EGOV_EINVAL if unknown
 * or already used. *left (optional) = unused codes remaining. */
egov_err identity_recovery_use(db_conn *c, const char *account_id, const char *code, int *left);
/* The QR code of text as a standalone SVG (black modules on white). */
egov_err identity_qr_svg(const char *text, buf *out);

/* ---- e-mail tokens and the outbox --------------------------------------- */
typedef enum identity_token_purpose { IDENTITY_TOKEN_VERIFY_EMAIL, IDENTITY_TOKEN_RESET_PASSWORD } identity_token_purpose;
/* A single-use token (256 bits, base64url; stored hashed) valid ttl_s. */
egov_err identity_token_issue(db_conn *c, identity_token_purpose p, const char *account_id, int ttl_s,
			      char token_out[IDENTITY_TOKEN_LEN + 1]);
/* Consumes it: *account_id_out (37 bytes) on success; EGOV_EINVAL if
 * unknown, expired, used or of another purpose. */
egov_err identity_token_consume(db_conn *c, identity_token_purpose p, const char *token, char account_id_out[37]);
/* Whether it would be consumed now, without consuming it (read-only): for
 * a caller that must do slow work (hash a password) only for a live token,
 * before the transaction that consumes it. EGOV_OK or EGOV_EINVAL. */
egov_err identity_token_peek(db_conn *c, identity_token_purpose p, const char *token);

/* Queues a message in notify's outbox (notify_enqueue, so inside c's
 * transaction if one is open) in lang ("zh-Hant", "pt", "en") from a
 * built-in template: "verify_email" (var: link), "reset_password" (link),
 * "account_locked" (no var), "password_changed" (no var). link may be NULL
 * for templates without one. */
egov_err identity_mail_send(db_conn *c, const char *to, const char *template_key, const char *lang,
			    const char *link);
/* Base URL put in mailed links ("http://127.0.0.1:8080"); default "". */
void identity_set_public_url(const char *url);
const char *identity_public_url(void);

/* ---- authorisation ------------------------------------------------------ */
/* Installs the router's authenticator of sessions (AUTH_SESSION, with
 * AUTH_CSRF) and its permission check (roles); the start hook calls it.
 * Access tokens are the OIDC module's, the operator token the kernel's. */
void identity_auth_install(void);

/* Who made a request, in the form pages and routes that predate
 * req_principal() read it. */
typedef struct identity_principal {
	char account_id[37];
	int acr;
	bool operator_token;      /* server.admin_token: every permission */
	char session_id[37];      /* "" unless a session cookie */
} identity_principal;

/* Who is calling, as a route with AUTH_API would see it (operator token,
 * access token or session cookie; no CSRF check), for a handler of a
 * public route: req_authenticate(r, AUTH_API). EGOV_EAUTH if nobody. */
egov_err identity_principal_from_req(req *r, identity_principal *out);

/* The module descriptor (identity_module.c). */
struct egov_module;
extern const struct egov_module identity_module;

#endif
