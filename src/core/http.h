/*
 * http.h: what a handler sees of a request, how it answers, and the shape
 * of a route. The server itself (libmicrohttpd, threads, limits, drain)
 * lives in server.c and http_mhd.c; the matching in router.c.
 *
 * A request's strings (path parameters, query values, headers, the body)
 * stay valid until the handler returns. Allocate request-lifetime data from
 * req_arena(). A handler answers with exactly one resp_*() call, or returns
 * an error and lets the router answer with a problem document.
 */
#ifndef EGOV_CORE_HTTP_H
#define EGOV_CORE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"

typedef struct req req;

typedef egov_err (*route_handler)(req *r);

/* Methods as bits so a route table can be checked for 405/Allow cheaply. */
typedef enum http_method {
	HTTP_GET = 1 << 0,
	HTTP_HEAD = 1 << 1,
	HTTP_POST = 1 << 2,
	HTTP_PUT = 1 << 3,
	HTTP_PATCH = 1 << 4,
	HTTP_DELETE = 1 << 5,
	HTTP_OPTIONS = 1 << 6,
} http_method;

/* Permission that means "anyone, no login". */
#define PERM_PUBLIC NULL

/* ---- who may call a route (route.auth) ---------------------------------
 * The credentials a route accepts, as bits; 0 lets anyone in. The router
 * authenticates once the body is in and before the handler runs, and
 * answers a request that carries none of them itself (401, or 403 for a
 * session without its CSRF token); the handler reads the caller with
 * req_principal(). When an Authorization header is present and the route
 * accepts a bearer or the operator token, the header decides (a cookie
 * beside it is not looked at); otherwise the session cookie does. */
#define AUTH_PUBLIC 0u
/* A signed-in person's full session (the identity module's cookie). */
#define AUTH_SESSION (1u << 0)
/* With AUTH_SESSION: a caller with a session must also send its CSRF
 * token (X-CSRF-Token, or a form's "csrf" field): every state change. */
#define AUTH_CSRF (1u << 1)
/* An OIDC access token ("Authorization: Bearer"), carrying route.scope;
 * on a route with a permission, "egov.api" or the permission as a scope. */
#define AUTH_BEARER (1u << 2)
/* The operator token (server.admin_token; the kernel's own check). */
#define AUTH_OPERATOR (1u << 3)
/* Another egov node: served on the peer listener only, whose TLS
 * handshake required a certificate chaining to server.peer_tls_ca (the
 * same as route.peer; req_client_cert() says which node it is). */
#define AUTH_PEER (1u << 4)
/* A request that carries none of the credentials still runs, as
 * PRINCIPAL_ANONYMOUS (a page that shows more to a signed-in person, the
 * OIDC authorization endpoint). A credential that does not check out
 * counts as none. Not with a permission. */
#define AUTH_OPTIONAL (1u << 5)
/* What a route with a permission (.perm) accepts: a person's session (with
 * AUTH_CSRF for state changes), an application's access token acting for
 * a person, or the operator token. A route with .perm and no .auth accepts
 * this too, and AUTH_CSRF when its method changes state. */
#define AUTH_API (AUTH_SESSION | AUTH_BEARER | AUTH_OPERATOR)

typedef struct route {
	http_method method;
	const char *path;          /* "/api/v1/notices/{id}"; a final "{*rest}" matches the remainder */
	const char *perm;          /* required permission; PERM_PUBLIC for none */
	size_t body_max;           /* 0: no body accepted; else bytes (<= EGOV_BODY_MAX_UPLOAD) */
	const char *content_type;  /* accepted request type when body_max > 0; NULL = application/json,
				    * "*" = any (or none) */
	route_handler handler;
	const char *name;          /* metrics label; NULL = path */
	/* The handler may block for long (password hashing, key generation):
	 * it runs on the kernel's blocking pool while the connection is
	 * suspended, so the HTTP workers keep serving everyone else. */
	bool blocking;
	/* Optional, for .blocking routes: runs on the HTTP worker before the
	 * hand-off and may answer at once (a 429 when the work behind the
	 * route is saturated), so that refusing does not wait for a pool
	 * thread. Must be quick and must not block. */
	route_handler gate;
	/* Served only on the peer listener (server.peer_listen: mutual TLS
	 * between egov nodes), which serves nothing else. */
	bool peer;
	/* A body over SPOOL_THRESHOLD (core/spool.h) is written to an unlinked
	 * temporary file in DATA/tmp as it arrives, with its SHA-256 computed
	 * on the way, instead of being held in memory: req_body() is then
	 * NULL and the handler reads req_body_fd() / req_body_sha256().
	 * body_max may then be up to EGOV_BODY_MAX_SPOOLED. */
	bool spool;
	/* Optional: runs on the HTTP worker as soon as the request head is in,
	 * before any of the body is read (and before authorisation: it must
	 * not reveal anything). It may lower this request's body limit with
	 * req_body_limit() (a Content-Length over it is refused at once, a
	 * chunked body is cut at it) or answer at once with a resp_*() call
	 * (the body is then never read). Must be quick and must not block. */
	route_handler head;
	/* The credentials the route accepts (AUTH_* above); AUTH_PUBLIC when
	 * 0 and no .perm. */
	unsigned auth;
	/* With AUTH_BEARER and no .perm: the scope the access token must carry
	 * ("openid" for UserInfo). */
	const char *scope;
} route;

/* ---- the caller ---------------------------------------------------------- */
typedef enum principal_kind {
	PRINCIPAL_ANONYMOUS = 0, /* a public route, or AUTH_OPTIONAL without a credential */
	PRINCIPAL_SESSION,       /* a person, with a session cookie */
	PRINCIPAL_BEARER,        /* an application, with an access token acting for a person */
	PRINCIPAL_OPERATOR,      /* the operator token */
	PRINCIPAL_PEER,          /* another egov node, on the peer listener */
} principal_kind;

/* Identifiers in a principal: UUIDs, client ids (at most 64 bytes). */
#define PRINCIPAL_ID_MAX 64
/* The e-mail address of a session's account (RFC 5321 path limit). */
#define PRINCIPAL_EMAIL_MAX 254
/* A CSRF token: 256 random bits in base64url are 43 characters. */
#define PRINCIPAL_TOKEN_MAX 64
/* "account:<uuid>", "operator", ...: what audit records name. */
#define PRINCIPAL_ACTOR_MAX 96

/* Who is calling, as the router's authenticators found out. Strings are
 * empty where the kind has none. */
typedef struct principal {
	principal_kind kind;
	char account_id[PRINCIPAL_ID_MAX + 1]; /* SESSION, BEARER: the person */
	char email[PRINCIPAL_EMAIL_MAX + 1];   /* SESSION: the account's e-mail address */
	char session_id[PRINCIPAL_ID_MAX + 1]; /* SESSION: the session's public handle */
	char csrf[PRINCIPAL_TOKEN_MAX + 1];    /* SESSION: the token state changes carry */
	int acr;                               /* SESSION, BEARER: 1 password, 2 + TOTP, 3 certificate */
	int64_t auth_time;                     /* SESSION, BEARER: when the person authenticated (s) */
	char client_id[PRINCIPAL_ID_MAX + 1];  /* BEARER: the OIDC client holding the token */
	const char *scope;                     /* BEARER: the token's scopes, space-separated; else "" */
	/* The actor of the caller's audit records: "account:<id>" (SESSION,
	 * BEARER), "operator", "peer" or "anonymous". Filled by the router. */
	char actor[PRINCIPAL_ACTOR_MAX + 1];
	/* The authenticating module's own record of the credential (the
	 * identity module's identity_session for a SESSION), for that
	 * module's handlers only; in the request's arena. */
	const void *detail;
} principal;

/* The caller of this request: never NULL (kind PRINCIPAL_ANONYMOUS on a
 * public route). Valid until the request ends. */
const principal *req_principal(const req *r);

/* ---- request -------------------------------------------------------- */
http_method req_method(const req *r);
const char *req_method_name(const req *r);
const char *req_path(const req *r);                          /* decoded path */
/* The request target as received: path and query, still percent-encoded
 * (for a gateway that forwards it byte for byte). */
const char *req_target(const req *r);
const char *req_param(req *r, const char *name);             /* path parameter or NULL; {*rest} joined */
const char *req_query(const req *r, const char *name);       /* decoded query value or NULL */
const char *req_header(const req *r, const char *name);      /* case-insensitive, or NULL */
const char *req_cookie(const req *r, const char *name);
const char *req_body(const req *r, size_t *len);              /* NULL if none or spooled */
/* A spooled body (route .spool, over SPOOL_THRESHOLD): its file
 * descriptor, open for reading with pread() at any offset, and its length
 * in *len; -1 when the body is in memory (req_body) or absent. The request
 * owns the descriptor (closed when the request ends). */
int req_body_fd(const req *r, size_t *len);
/* The SHA-256 of the body, in memory or spooled (computed while it
 * arrived), of no bytes when there is none. */
egov_err req_body_sha256(req *r, unsigned char out[32]);
/* Lowers this request's body limit (never raises it) and names the
 * problem code of the 413 when it is exceeded (NULL: payload_too_large).
 * For a route's head callback; code must outlive the request. */
void req_body_limit(req *r, size_t max, const char *code);
arena *req_arena(req *r);
const char *req_id(const req *r);                             /* request id (also X-Request-Id) */
const char *req_lang(const req *r);                           /* "zh-Hant", "pt" or "en" */
const char *req_remote_ip(const req *r);
const struct route *req_route(const req *r);
/* The client certificate as DER (*len bytes), valid until the handler
 * returns: the TLS peer's, or else the X-Client-Cert header (URL-encoded
 * PEM) of a peer listed in server.trusted_proxies. NULL if none. Not
 * verified: check it with pki_verify_chain() before believing it. */
const void *req_client_cert(req *r, size_t *len);
/* Whether this server speaks HTTPS (server.tls_cert and tls_key set). */
bool req_is_tls(const req *r);
/* Whether the request came in on the peer listener (server.peer_listen);
 * then req_client_cert() is the peer node's certificate (the TLS
 * handshake required one from server.peer_tls_ca; check which node it is). */
bool req_is_peer(const req *r);

/* ---- deferred answers -------------------------------------------------
 * A handler that waits on something that is not CPU (another server, a
 * commit on another thread) calls req_defer(r) before it starts that work
 * and returns EGOV_OK without answering: the connection is suspended and no
 * thread waits for it. Whoever finishes the work, on any thread, answers
 * with one resp_*() call and then calls req_resume(r); r must not be
 * touched after that. The request's strings and body stay valid until
 * req_resume. */
void req_defer(req *r);
void req_resume(req *r);

/* A route's gate may hold something for its handler (a place in a queue):
 * req_gate_hold() records how to give it back; the handler takes it over
 * with req_gate_take() (true when one was held, and the kernel then no
 * longer gives it back); whatever was not taken is given back when the
 * request ends (refused before the handler ran, the client gone). At most
 * one hold per request. */
void req_gate_hold(req *r, void (*release)(void));
bool req_gate_take(req *r);

/* 1 if the request's If-None-Match matches etag (a quoted strong tag):
 * "*", or any member of the list, compared weakly as RFC 9110 asks for
 * If-None-Match (a W/ prefix is ignored). */
int req_etag_matches(const req *r, const char *etag);

/* A strong ETag for a representation: a quoted 64-bit hash of its bytes
 * (not cryptographic: a validator for caches, computed per request). */
void http_etag(const void *data, size_t len, char out[20]);

/* Binds the JSON body through a field table; on failure answers 400 with the
 * field and returns EGOV_EINVAL (the handler just returns it). */
egov_err req_json(req *r, const json_field *fields, size_t nfields, void *out);

/* ---- response ------------------------------------------------------- */
/* Adds a response header (copied). */
egov_err resp_header(req *r, const char *name, const char *value);
/* Widens this response's CSP form-action to also allow origin (a page whose
 * form POST is answered with a redirect elsewhere, like OAuth consent:
 * browsers apply form-action to the redirect too). origin is
 * "scheme://host[:port]"; anything else is refused with EGOV_EINVAL. */
egov_err resp_csp_form_action(req *r, const char *origin);
/* Answers with a JSON body. Takes the buf's bytes (b is left empty). */
egov_err resp_json(req *r, int status, buf *b);
/* Answers with a buf's bytes of a given type, taking them (b is left empty). */
egov_err resp_buf(req *r, int status, const char *content_type, buf *b);
/* Answers with the JSON a writer built into its buf. If the writer failed
 * (w->err), frees the buf and returns that error instead. */
egov_err resp_jw(req *r, int status, jw *w);
/* Answers with bytes of a given type; copy = false means data outlives the response (static). */
egov_err resp_bytes(req *r, int status, const char *content_type, const void *data, size_t len, bool copy);
egov_err resp_empty(req *r, int status);
/* Answers with len bytes read from fd (from offset 0, whatever its file
 * position), which the response takes: it is closed once sent, or at once
 * when this fails. For large bodies kept in a (spool) file. */
egov_err resp_fd(req *r, int status, const char *content_type, int fd, size_t len);
/* RFC 9457 problem+json. code is stable ("json.unknown_field"); the title
 * comes from the message catalogue in the request's language; field and
 * detail may be NULL. Returns EGOV_OK once queued. */
egov_err resp_problem(req *r, int status, const char *code, const char *field, const char *detail);

/* Whether the request carries "Authorization: Bearer <server.admin_token>"
 * (compared in constant time; false when no operator token is configured).
 * The operator holds every permission. */
bool req_is_operator(const req *r);

/* ---- authenticators -------------------------------------------------------
 * The kernel knows no module: the modules that issue credentials install
 * what checks them (identity: sessions and CSRF; OIDC: access tokens), in
 * their start hooks, before the server starts. The kernel checks the
 * operator token and the peer listener's certificates itself.
 *
 * An authenticator is asked about a request whose route accepts its kind
 * of credential; auth, perm and scope are what the route asks for (auth
 * bits, permission or NULL, scope or NULL). It returns:
 *   EGOV_OK           the credential is good: *p filled (kind and what the
 *                     kind has; the router fills p->actor)
 *   EGOV_ENOTFOUND    the request carries no such credential
 *   EGOV_EAUTH (401), EGOV_EPERM (403)
 *                     refused; *code may name the problem ("identity.csrf"),
 *                     else the error table's; or it answers itself (an
 *                     OAuth resource's WWW-Authenticate challenge)
 *   other errors      a failure (the database), answered from the error table
 * A route with a permission answers refusals with the error table's
 * problems (401 unauthorized, 403 forbidden) whatever the code. Must be
 * thread-safe. */
typedef egov_err (*http_authenticator)(req *r, unsigned auth, const char *perm, const char *scope, principal *p,
				       const char **code);
/* kind: AUTH_SESSION or AUTH_BEARER. NULL uninstalls. */
void http_set_authenticator(unsigned kind, http_authenticator fn);

/* Whether a caller holds a permission, for routes with .perm (the identity
 * module's roles). Called after authentication, never for the operator
 * (who holds every permission). *allowed false: 403. Without one installed
 * only the operator holds permissions. */
typedef egov_err (*http_permission_check)(req *r, const principal *p, const char *perm, bool *allowed);
void http_set_permission_check(http_permission_check fn);

/* Runs the authenticators for the credentials in auth as the router would
 * (AUTH_CSRF included), without a permission, for a handler of a public
 * route that looks at the caller itself. EGOV_OK: *out is the caller (it
 * stays valid until the request ends, and req_principal() returns it from
 * then on); EGOV_EAUTH/EGOV_EPERM: refused (*code, optional, as above),
 * nothing answered; other errors: failures. */
egov_err req_authenticate(req *r, unsigned auth, const principal **out, const char **code);

#endif
