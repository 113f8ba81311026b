/*
 * oidc_int.h: what the files of the OIDC module share. Nothing here is for
 * other modules (they use oidc.h); unit tests include it to reach the
 * pieces one by one.
 *
 * Files and their rooms:
 *   oidc_jwt_parse.c  strict compact-JWS parsing (no crypto; fuzzed)
 *   oidc_jwt.c        ES256 sign/verify, DER <-> raw r||s, claim checks, PKCE
 *   oidc_keys.c       signing keys: files under DATA/oidc/, rows in oidc_key, rotation, JWKS
 *   oidc_store.c      clients, grants, codes, refresh-token families, denylist
 *   oidc_http.c       discovery, JWKS, client admin API, module descriptor
 *   oidc_authorize.c  the authorization endpoint and the consent form
 *   oidc_token.c      token, userinfo, revocation, introspection, the access-token authenticator
 *   oidc_grants.c     the signed-in person's granted applications (list, withdraw)
 */
#ifndef EGOV_OIDC_INT_H
#define EGOV_OIDC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "core/b64url.h"
#include "core/buf.h"
#include "core/db.h"
#include "core/config.h"
#include "core/err.h"
#include "core/http.h"
#include "oidc/oidc.h"
#include "oidc/oidc_limits.h"

/* ---- policy (the limits are in oidc_limits.h) -------------------------------- */
#define OIDC_LEEWAY_S 30               /* clock skew accepted on exp/nbf/iat */
#define OIDC_CODE_TTL_S 60
#define OIDC_REFRESH_TTL_S (14 * 24 * 3600)
#define OIDC_TOKEN_LEN 43              /* 256 random bits, base64url */
/* A retired key stays published this long past the last token it signed. */
#define OIDC_KEY_MARGIN_S 3600

/* ---- clock -------------------------------------------------------------- */
/* Seconds since the epoch; tests move it with oidc_set_clock(). */
int64_t oidc_now(void);
void oidc_set_clock(int64_t (*now_s)(void));

/* base64url: core/b64url.h */

/* A fresh 256-bit random token (43 characters). */
egov_err oidc_random_token(char out[OIDC_TOKEN_LEN + 1]);

/* ---- JWT ---------------------------------------------------------------- */
typedef struct jwt_parsed {
	char kid[OIDC_KID_MAX + 1];
	char typ[32];
	cJSON *payload;             /* owned: release with jwt_parsed_release() */
	unsigned char sig[64];      /* raw r||s */
	size_t signing_len;         /* header.payload prefix of the token */
} jwt_parsed;

/* Strict compact-JWS parsing, no signature check: exactly three non-empty
 * base64url parts, header a JSON object with "alg":"ES256" and a "kid"
 * (anything else, "none" and HS256 included, is refused), no "crit", a
 * payload that is a JSON object, a 64-byte signature. *why names the
 * failure. On error nothing needs releasing. */
egov_err jwt_parse(const char *tok, size_t len, jwt_parsed *out, const char **why);
void jwt_parsed_release(jwt_parsed *p);

/* ECDSA signature conversions for P-256. raw is r||s, 32 bytes each. */
egov_err jwt_sig_der_to_raw(const unsigned char *der, size_t derlen, unsigned char raw[64]);
egov_err jwt_sig_raw_to_der(const unsigned char raw[64], unsigned char *der, size_t derlen, size_t *outlen);

/* Signs payload_json (a JSON object text) with an ES256 key: appends the
 * compact JWS to out. typ: "JWT" or "at+jwt". */
egov_err jwt_sign(EVP_PKEY *key, const char *kid, const char *typ, const char *payload_json, buf *out);
/* Checks the signature of a parsed token with key (the public key for its
 * kid). EGOV_EAUTH when it does not verify. */
egov_err jwt_verify_sig(const char *tok, const jwt_parsed *p, EVP_PKEY *key);
/* Registered-claim checks at now (seconds) with OIDC_LEEWAY_S: exp required
 * and in the future, nbf/iat (if present) not in the future, iss equal,
 * aud (string or array) containing aud unless aud is NULL. EGOV_EAUTH with
 * *why ("jwt.expired", "jwt.iss", ...) otherwise. */
egov_err jwt_check_claims(const cJSON *payload, const char *iss, const char *aud, int64_t now, const char **why);

/* PKCE S256: challenge = base64url(SHA-256(verifier)). */
void oidc_pkce_s256(const char *verifier, char challenge[44]);
/* 1 if the string is 43..128 characters of [A-Za-z0-9-._~]. */
int oidc_pkce_valid(const char *s);

/* ---- signing keys ------------------------------------------------------- */
/* Directory for private key files (default DATA/oidc from the app config). */
void oidc_keys_set_dir(const char *dir);
/* Rotation period and token lifetime (defaults from the config, else 30 d, 300 s). */
void oidc_keys_set_policy(int rotation_days, int token_ttl_s);
/* The active signing key (creating the first one, or the next when the
 * active one's period ended). *key is a new reference: EVP_PKEY_free it. */
egov_err oidc_keys_active(db_conn *c, char kid[OIDC_KID_MAX + 1], EVP_PKEY **key);
/* The public key for kid if it is still published. EGOV_ENOTFOUND otherwise.
 * *key is a new reference. */
egov_err oidc_keys_public(db_conn *c, const char *kid, EVP_PKEY **key);
/* Makes a new key the active one now; the old one signs no more but stays
 * published for the token lifetime plus a margin. */
egov_err oidc_keys_rotate(db_conn *c, char kid[OIDC_KID_MAX + 1]);
/* Ends the signing period of the active key(s) now, keeping them published
 * for the overlap; the serving node makes the next key (in its own data
 * directory) at its next signing, within its cache period (a minute).
 * *n (optional) = keys retired. What `egov oidc rotate-key` does. */
egov_err oidc_keys_retire(db_conn *c, int64_t *n);
/* Writes {"keys":[...]} with every published public key. */
egov_err oidc_keys_jwks(db_conn *c, buf *out);
/* Forgets the in-memory cache (tests). */
void oidc_keys_reset(void);

/* Signs a claims object with the active key. */
egov_err oidc_sign(db_conn *c, const char *typ, const char *payload_json, buf *out);
/* Parses, checks the signature against a published key and the claims
 * (iss = the issuer, header typ and aud unless NULL). *payload is owned by the caller
 * (cJSON_Delete). EGOV_EAUTH with *why on any failure. */
egov_err oidc_verify(db_conn *c, const char *tok, const char *typ, const char *aud, cJSON **payload,
		     const char **why);

/* ---- configuration ------------------------------------------------------ */
/* The [oidc] section (oidc_config.c): its values, as config_section_values
 * gives them. */
typedef struct oidc_config {
	char *issuer;              /* issuer URL; finished: pki.public_url when "" */
	int key_rotation_days;     /* days a signing key stays the active one */
	int access_token_ttl_s;    /* lifetime of access and ID tokens */
} oidc_config;
extern const config_section oidc_config_section;
/* The issuer URL (config oidc.issuer; tests may set it). */
const char *oidc_issuer(void);
void oidc_set_issuer(const char *iss);
int oidc_token_ttl(void);

/* ---- storage ------------------------------------------------------------ */
typedef enum oidc_client_type { OIDC_PUBLIC, OIDC_CONFIDENTIAL } oidc_client_type;

typedef struct oidc_client {
	char client_id[OIDC_CLIENT_ID_MAX + 1];
	char name[OIDC_CLIENT_NAME_MAX * 4 + 1];
	oidc_client_type type;
	char secret_hash[65];                 /* "" for public clients */
	char *redirect_uris;                  /* JSON array text, malloc'd */
	char scopes[OIDC_SCOPE_MAX + 1];      /* space-separated */
	char created_by[PRINCIPAL_ACTOR_MAX + 1]; /* the actor who registered it */
	char created_at[32];
} oidc_client;

void oidc_client_release(oidc_client *cl);
/* Creates a client; fills client_id, and for confidential clients a new
 * secret (secret_out, 43 characters) whose SHA-256 alone is stored. */
egov_err oidc_client_create(db_conn *c, oidc_client *cl, char secret_out[OIDC_TOKEN_LEN + 1]);
egov_err oidc_client_get(db_conn *c, const char *client_id, oidc_client *out);
egov_err oidc_client_delete(db_conn *c, const char *client_id);
egov_err oidc_client_list(db_conn *c, int (*fn)(void *ctx, const oidc_client *cl), void *ctx);
/* 1 if uri is exactly one of the client's redirect URIs. */
int oidc_client_redirect_ok(const oidc_client *cl, const char *uri);
/* Constant-time secret check. */
int oidc_client_secret_ok(const oidc_client *cl, const char *secret);

/* 1 if every space-separated word of want is in have. */
int oidc_scopes_subset(const char *want, const char *have);
int oidc_scope_has(const char *scopes, const char *word);

/* Remembered consent. */
egov_err oidc_grant_covers(db_conn *c, const char *account_id, const char *client_id, const char *scope, bool *covers);
egov_err oidc_grant_save(db_conn *c, const char *account_id, const char *client_id, const char *scope);

typedef struct oidc_grant_info {
	char client_id[OIDC_CLIENT_ID_MAX + 1];
	char name[OIDC_CLIENT_NAME_MAX * 4 + 1]; /* the client's name; "" if it is gone */
	char scopes[OIDC_SCOPE_MAX + 1];
	char granted_at[32];
} oidc_grant_info;
/* The remembered grants of an account, newest first; fn returning
 * non-zero stops. */
egov_err oidc_grant_list(db_conn *c, const char *account_id, int (*fn)(void *ctx, const oidc_grant_info *g),
			 void *ctx);
/* Withdraws an account's consent for a client: deletes the remembered
 * grant and revokes every token family the account holds for the client
 * (their refresh tokens stop working), in one transaction. *families
 * (optional) = families revoked. EGOV_ENOTFOUND when there was neither a
 * grant nor a live family. */
egov_err oidc_grant_withdraw(db_conn *c, const char *account_id, const char *client_id, int64_t *families);

typedef struct oidc_code_data {
	char client_id[OIDC_CLIENT_ID_MAX + 1];
	char account_id[37];
	char redirect_uri[OIDC_REDIRECT_URI_MAX + 1];
	char scope[OIDC_SCOPE_MAX + 1];
	char nonce[OIDC_NONCE_MAX + 1];
	char challenge[OIDC_PKCE_MAX + 1];    /* "" = no PKCE */
	char family[37];                      /* tokens issued from the code */
	int acr;
	int64_t auth_time;
	int64_t expires_at;
} oidc_code_data;

/* Stores a code (hashed) valid OIDC_CODE_TTL_S; code_out gets it. */
egov_err oidc_code_issue(db_conn *c, const oidc_code_data *d, char code_out[OIDC_TOKEN_LEN + 1]);
/* Redeems a code once. EGOV_OK fills *d. A replay returns EGOV_ECONFLICT
 * and fills *d (so the caller can revoke d->family); unknown or expired
 * codes EGOV_ENOTFOUND. */
egov_err oidc_code_redeem(db_conn *c, const char *code, oidc_code_data *d);

typedef struct oidc_refresh_data {
	char family[37];
	char client_id[OIDC_CLIENT_ID_MAX + 1];
	char account_id[37];
	char scope[OIDC_SCOPE_MAX + 1];
	int acr;
	int64_t auth_time;
} oidc_refresh_data;

/* Starts a token family (one per code redemption). */
egov_err oidc_family_create(db_conn *c, const char *family, const char *client_id, const char *account_id);
egov_err oidc_family_revoke(db_conn *c, const char *family);
egov_err oidc_family_revoked(db_conn *c, const char *family, bool *revoked);
/* Issues a refresh token of a family. */
egov_err oidc_refresh_issue(db_conn *c, const oidc_refresh_data *d, char token_out[OIDC_TOKEN_LEN + 1]);
/* Rotates: the old token is spent, a new one of the same family is written
 * to token_out. Reuse of a spent token revokes the family and returns
 * EGOV_ECONFLICT (with *d filled); unknown, expired or revoked:
 * EGOV_ENOTFOUND. */
egov_err oidc_refresh_rotate(db_conn *c, const char *token, oidc_refresh_data *d, char token_out[OIDC_TOKEN_LEN + 1]);
/* What a refresh grant asks of oidc_refresh_rotate_batch(). */
typedef struct oidc_rotation {
	const char *token;     /* the refresh token presented */
	const char *client_id; /* the authenticated client */
	const char *scope;     /* the narrower scope asked for, or NULL */
} oidc_rotation;
/* The same through db_batch(): concurrent rotations share one commit. A
 * live token issued to another client is left unspent (EGOV_EPERM), as is
 * one asked for a scope that is empty or not within its own (EGOV_EINVAL);
 * *d is filled then too. flush false (db_batch_nosync()) is for a caller
 * that makes a durable commit of its own (the grant's audit record) before
 * it hands token_out out: that commit flushes the rotation with it, so a
 * grant waits for one flush to disk instead of two. */
egov_err oidc_refresh_rotate_batch(db *dbh, const oidc_rotation *rot, oidc_refresh_data *d,
				   char token_out[OIDC_TOKEN_LEN + 1], bool flush);
/* The same, with then(c, ctx, outcome, d) run in the rotation's
 * transaction after it (outcome: what the rotation returns): the grant's
 * audit record commits with the rotation, or a reuse's with the family's
 * revocation, in one commit shared with concurrent grants. An error from
 * then undoes the rotation and comes back as the result. */
egov_err oidc_refresh_rotate_then(db *dbh, const oidc_rotation *rot, oidc_refresh_data *d,
				  char token_out[OIDC_TOKEN_LEN + 1], bool flush,
				  egov_err (*then)(db_conn *c, void *ctx, egov_err result, const oidc_refresh_data *d),
				  void *ctx);
/* Looks a live refresh token up without spending it. EGOV_ENOTFOUND if not live. */
egov_err oidc_refresh_lookup(db_conn *c, const char *token, oidc_refresh_data *d, int64_t *expires_at);

/* Access-token denylist (revoked before exp). */
egov_err oidc_deny_add(db_conn *c, const char *jti, int64_t exp);
egov_err oidc_deny_has(db_conn *c, const char *jti, bool *denied);

const db_migration *oidc_migrations(size_t *n);

/* ---- HTTP (oidc_authorize.c, oidc_token.c) ------------------------------- */
egov_err oidc_authorize_get(req *r);
egov_err oidc_authorize_consent(req *r);
egov_err oidc_token_post(req *r);
egov_err oidc_userinfo(req *r);
egov_err oidc_revoke_post(req *r);
egov_err oidc_introspect_post(req *r);
/* The signed-in person's granted applications (oidc_grants.c). */
egov_err oidc_grants_list(req *r);
egov_err oidc_grants_withdraw(req *r);
/* Installs the router's authenticator of access tokens (AUTH_BEARER),
 * oidc_token.c; the start hook calls it. */
void oidc_bearer_install(void);

/* Audit helper: actor ("anonymous" when empty), action, object, details
 * JSON (may be NULL), appended inside c's transaction so that the change
 * it records commits with it. Returns the audit error (the caller rolls
 * back and fails the request); skips where there is no audit log (unit
 * tests). */
egov_err oidc_audit_tx(db_conn *c, const char *actor, const char *action, const char *object, const char *details);

#endif
