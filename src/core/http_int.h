/*
 * http_int.h: the private interfaces between the files of the kernel's HTTP
 * layer. Modules never include it: they see http.h.
 *
 *   server.c     the daemons (main and peer listener), start, signals,
 *                drain, stop
 *   http_mhd.c   libmicrohttpd's callbacks: the request life cycle (setup,
 *                limits, body, dispatch, queue, completion)
 *   pool.c       the blocking pool (pool.h)
 *   accesslog.c  the access log: one line per request, buffered per thread
 *   req.c        what handlers call: accessors and resp_*()
 *
 * The request struct is in req_int.h. A request belongs to one thread at a
 * time: its MHD worker, or the pool thread (or whoever answers a deferred
 * request) between the hand-over and MHD_resume_connection().
 */
#ifndef EGOV_CORE_HTTP_INT_H
#define EGOV_CORE_HTTP_INT_H

#include <microhttpd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/req_int.h"
#include "core/router.h"

/* What a listener's requests need from the running server. server.c owns
 * it (one per daemon) for as long as its daemon runs, and passes it as the
 * closure of http_uri_cb; every request keeps a pointer to it. */
typedef struct http_listener {
	const router *rt;
	const char *const *labels; /* metrics and access-log label per slot */
	size_t slot_static;	   /* GET/HEAD outside /api that matched no route */
	size_t slot_unmatched;	   /* anything else that matched no route */
	bool peer;		   /* the peer listener: peer routes only */
} http_listener;

/* ---- http_mhd.c: the callbacks server.c gives libmicrohttpd --------------
 * http_uri_cb's closure is the listener; the others ignore theirs. */
void *http_uri_cb(void *cls, const char *uri, struct MHD_Connection *conn);
enum MHD_Result http_access_cb(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
			       const char *version, const char *upload_data, size_t *upload_data_size,
			       void **con_cls);
void http_completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
		       enum MHD_RequestTerminationCode toe);

/* The blocking pool's run function: runs r's handler and, unless it
 * deferred its answer, wakes the connection. */
void http_run_offloaded(req *r);

/* Requests begun (request line read) and not yet completed, on every
 * listener. */
long http_inflight(void);

/* Picks this process's random request-id prefix; once, before the daemons
 * start. */
void http_request_ids_init(void);

/* ---- auth.c ----------------------------------------------------------------
 * Authenticates r's caller for its route (.auth, .perm) and checks the
 * permission; false when refused, and then the refusal is answered. */
bool http_authorize(req *r);
/* Whether a route is served on the peer listener (.peer or AUTH_PEER). */
bool route_is_peer(const route *rt);
/* The credentials a route accepts for method m: .auth, or for a route with
 * .perm and no .auth, AUTH_API (and AUTH_CSRF when m changes state). */
unsigned route_auth_of(const route *rt, http_method m);

/* ---- accesslog.c ---------------------------------------------------------
 * Writes r's access log line (nothing when the access log is off); on the
 * worker that completes r, after its answer went out. */
void log_access_request(const req *r, int64_t dur_us);

#endif
