/*
 * oidc_limits.h: every limit the OpenID Connect provider puts on what it
 * is given, each with its reason. The kernel's own limits are in
 * core/limits.h.
 *
 * Over a limit the answer is an error, never a truncation: an OAuth error
 * (invalid_request, invalid_client) on the protocol endpoints, a 400
 * naming the field on the client API, 413 for a body over its route's
 * limit.
 */
#ifndef EGOV_OIDC_LIMITS_H
#define EGOV_OIDC_LIMITS_H

/* ---- tokens and keys --------------------------------------------------------- */

/* A compact JWS: ours are under 1.5 KiB; 8 KiB refuses junk before any
 * decoding (and sizes the decoding buffer). */
#define OIDC_JWT_MAX 8192
/* A key id in a token's header: ours are 43-character thumbprints. */
#define OIDC_KID_MAX 64
/* Signing keys kept in memory: the active one and those still published
 * for verification after a rotation; a handful at most. */
#define OIDC_KEYS_CACHED_MAX 16
/* An HTTP Basic client credential (base64), characters: a client id and a
 * 43-character secret, form-encoded, fit in well under 300 bytes. */
#define OIDC_BASIC_MAX 400
#define OIDC_BASIC_DECODED_MAX 300

/* ---- clients ---------------------------------------------------------------- */

/* A client id: ours are UUIDs; 64 bounds what a request can make us look up. */
#define OIDC_CLIENT_ID_MAX 64
/* A client's display name, characters (4 bytes each at most): shown on
 * the consent page, a line's worth. */
#define OIDC_CLIENT_NAME_MAX 200
/* A redirect URI, bytes: real ones are well under 200. */
#define OIDC_REDIRECT_URI_MAX 512
/* Redirect URIs of one client: one per environment of an application. */
#define OIDC_REDIRECT_URIS_MAX 10
/* Scopes a client may register, and the longest scope word: ours are short
 * names ("openid", "info.notice.write"). */
#define OIDC_CLIENT_SCOPES_MAX 16
#define OIDC_SCOPE_WORD_MAX 64
/* "public" or "confidential". */
#define OIDC_CLIENT_TYPE_FIELD_MAX 16

/* ---- authorization requests ------------------------------------------------------ */

/* A scope parameter, bytes: every scope a client may have, spaces between. */
#define OIDC_SCOPE_MAX 512
/* A nonce: clients send 16-64 characters; 256 leaves room for any scheme. */
#define OIDC_NONCE_MAX 256
/* Any one authorization parameter (state included, which clients use to
 * carry their own context): beyond it the request is refused, not cut. */
#define OIDC_STATE_MAX 512
/* RFC 7636: a verifier is 43..128 unreserved characters; an S256
 * challenge is 43. */
#define OIDC_PKCE_MIN 43
#define OIDC_PKCE_MAX 128

/* ---- request bodies (route .body_max) ------------------------------------------- */

/* A form of the protocol endpoints (token, revocation, introspection,
 * UserInfo, the consent form): a code or token, a verifier, a redirect
 * URI and the client's credentials, or the authorization parameters
 * echoed by the consent page. */
#define OIDC_FORM_BODY_MAX (16 * 1024)
/* A client registration: a name, up to OIDC_REDIRECT_URIS_MAX URIs and
 * OIDC_CLIENT_SCOPES_MAX scopes. */
#define OIDC_CLIENT_BODY_MAX (16 * 1024)

#endif
