/*
 * req_int.h: the request struct, private to the kernel's HTTP layer (the
 * files listed in http_int.h). Modules see only the accessors in http.h.
 */
#ifndef EGOV_CORE_REQ_INT_H
#define EGOV_CORE_REQ_INT_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/http.h"
#include "core/limits.h"
#include "core/router.h"
#include "core/spool.h"
#include "core/uri.h"

#define REQ_EXTRA_HEADERS_MAX 16

struct http_listener; /* http_int.h */

typedef struct resp_hdr {
	const char *name, *value;
} resp_hdr;

struct req {
	struct MHD_Connection *conn;
	const struct http_listener *listener; /* the daemon it arrived on */
	arena arena;
	int64_t t0_us;
	int phase;             /* 0 new, 1 reading body, 2 answered */
	http_method method;
	const char *method_name;
	const char *raw_uri;   /* NULL when over EGOV_URI_MAX */
	size_t raw_uri_len;
	uri_path path;
	uri_query query;
	route_match match;
	int match_status;      /* 200, 404, 405 */
	size_t metrics_slot;
	const char *lang;
	bool lang_from_query;
	char id[EGOV_REQUEST_ID_MAX + 1];
	char ip[48];           /* the client's address (server_proxy_resolve) */
	char via[48];          /* the trusted proxy it came through, or "" */
	bool proxied;          /* the connection's peer is a trusted proxy */
	bool peer;             /* arrived on the peer listener */
	const principal *principal; /* the caller (auth.c), in the arena; NULL: anonymous */

	/* body */
	buf body;
	size_t body_max;
	size_t discarded;      /* body bytes dropped after a refusal */
	bool has_body;
	spool spool;           /* a .spool route's body past SPOOL_THRESHOLD */
	const char *limit_code; /* problem code of a 413 (req_body_limit), or NULL */

	/* an error found before the handler runs (answered on the last call) */
	int early_status;
	const char *early_code;
	const char *early_field;

	/* response */
	int status;
	struct MHD_Response *resp;
	size_t resp_len;
	resp_hdr extra[REQ_EXTRA_HEADERS_MAX];
	size_t nextra;
	char allow[64];
	const char *csp_form_action; /* extra form-action source, or NULL */

	/* blocking routes and deferred answers (http_mhd.c): the handler runs
	 * on the blocking pool, or its answer comes from another thread */
	pthread_mutex_t off_mu;
	int off_state;         /* 0 none, 1 queued/running, 2 done */
	bool off_suspended;    /* the MHD worker suspended the connection */
	bool off_init;         /* off_mu was initialised */
	void (*gate_release)(void); /* what the route's gate holds, until taken */
};

/* Adds the headers every response carries (security, id, language, extras). */
egov_err req_finish_response(req *r);

#endif
