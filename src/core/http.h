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
} route;

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
 * The kernel's default authoriser, and the trust layer's, grant it every
 * permission. */
bool req_is_operator(const req *r);

/* ---- authorisation hook --------------------------------------------
 * The router calls this before a route with a permission runs. Returns
 * EGOV_OK to allow, EGOV_EAUTH (401) or EGOV_EPERM (403). The kernel's
 * default accepts the operator token from the config (server.admin_token)
 * as "Authorization: Bearer TOKEN" for every permission; the trust layer
 * installs its own. */
typedef egov_err (*http_authorizer)(req *r, const char *perm);
void http_set_authorizer(http_authorizer fn);

#endif
