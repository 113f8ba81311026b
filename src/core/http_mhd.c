/*
 * http_mhd.c: libmicrohttpd's callbacks, the life cycle of a request:
 * setup, limits, body, dispatch to the router, the hand-over to the
 * blocking pool or a deferred answer, queueing the answer, completion.
 *
 * Life of a request (MHD calls us several times per request):
 *   http_uri_cb     request line read: take a req, keep the raw target
 *   http_access_cb #1
 *                   headers read: parse path and query, pick the language,
 *                   match the route, run its head callback (which may lower
 *                   the body limit or answer), check limits and content
 *                   type. Errors that make the body pointless (413 on
 *                   Content-Length, 415) are answered at once; MHD then
 *                   closes the connection. Other errors wait for the last
 *                   call, so the connection stays alive (answering on the
 *                   first call costs keep-alive in MHD 0.9.75: 3-5x slower).
 *   http_access_cb #2..
 *                   body chunks, appended up to the route's limit (a .spool
 *                   route's past SPOOL_THRESHOLD go to a temporary file)
 *   http_access_cb last
 *                   authenticate the caller and check the permission
 *                   (auth.c), run the handler, queue the response; for a
 *                   .blocking route hand the request to the blocking pool
 *                   (pool.c) and suspend the connection instead
 *   http_access_cb again (after the pool resumed it)
 *                   queue the pool's response
 *   http_completed_cb
 *                   metrics, access log line (accesslog.c); the req goes
 *                   back to this worker's spare slot for the next request
 *
 * Invariant: a request belongs to one thread at a time: its MHD worker,
 * or the pool thread between pool_submit() and MHD_resume_connection().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/app.h"
#include "core/crypto.h"
#include "core/http_int.h"
#include "core/i18n.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/pool.h"
#include "core/server_conn.h"
#include "core/server_proxy.h"
#include "core/server_tls.h"
#include "core/timeutil.h"
#include "core/web.h"
#include "core/banned.h"

static atomic_long inflight;
static atomic_uint_fast64_t req_counter;
static unsigned req_prefix;

long http_inflight(void)
{
	return atomic_load(&inflight);
}

void http_request_ids_init(void)
{
	crypto_random(&req_prefix, sizeof req_prefix);
}

/* ---- request setup ---------------------------------------------------- */

/* Each worker thread keeps one finished request struct, with the first
 * chunk of its arena, for the next request it starts: the calloc, the
 * 4 KiB malloc (which also made glibc consolidate its fast bins) and two
 * frees per request become a memset. MHD runs a connection's callbacks on
 * the worker that owns it, so the spare never crosses threads. */
static pthread_key_t spare_key;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;

static void spare_free(void *p)
{
	req *r = p;
	arena_release(&r->arena);
	free(r);
}

static void spare_init(void)
{
	pthread_key_create(&spare_key, spare_free);
}

static req *req_get(void)
{
	req *r;
	arena keep;

	pthread_once(&spare_once, spare_init);
	r = pthread_getspecific(spare_key);
	if (!r) {
		r = calloc(1, sizeof *r);
		if (r)
			arena_init(&r->arena, EGOV_REQUEST_ARENA_MAX);
		return r;
	}
	pthread_setspecific(spare_key, NULL);
	keep = r->arena;
	memset(r, 0, sizeof *r);
	r->arena = keep;
	return r;
}

static void req_put(req *r)
{
	pthread_once(&spare_once, spare_init);
	if (pthread_getspecific(spare_key) || pthread_setspecific(spare_key, r) != 0) {
		spare_free(r);
		return;
	}
	arena_reset(&r->arena);
}

void *http_uri_cb(void *cls, const char *uri, struct MHD_Connection *conn)
{
	const http_listener *l = cls;
	req *r = req_get();
	size_t len;

	if (!r)
		return NULL;
	r->listener = l;
	r->peer = l->peer;
	buf_init(&r->body, 0);
	spool_init(&r->spool);
	r->t0_us = time_mono_us();
	r->conn = conn;
	r->lang = "zh-Hant";
	r->metrics_slot = l->slot_unmatched;
	len = strlen(uri);
	if (len <= EGOV_URI_MAX) {
		r->raw_uri = arena_strndup(&r->arena, uri, len);
		r->raw_uri_len = len;
	}
	atomic_fetch_add(&inflight, 1);
	return r;
}

static void set_early(req *r, int status, const char *code, const char *field)
{
	if (r->early_status)
		return;
	r->early_status = status;
	r->early_code = code;
	r->early_field = field;
}

static int id_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '_' || c == '.';
}

static void set_request_id(req *r)
{
	const char *h = req_header(r, "X-Request-Id");
	size_t i, n;

	if (h && (n = strlen(h)) > 0 && n <= EGOV_REQUEST_ID_MAX) {
		for (i = 0; i < n && id_char_ok(h[i]); i++)
			;
		if (i == n) {
			memcpy(r->id, h, n + 1);
			return;
		}
	}
	{
		static const char hex[] = "0123456789abcdef";
		unsigned long long seq = atomic_fetch_add_explicit(&req_counter, 1, memory_order_relaxed);
		char tmp[16];
		int k = 0, j;
		for (j = 0; j < 8; j++)
			r->id[j] = hex[(req_prefix >> (28 - 4 * j)) & 15];
		r->id[8] = '-';
		do {
			tmp[k++] = hex[seq & 15];
			seq >>= 4;
		} while (seq);
		for (j = 0; j < k; j++)
			r->id[9 + j] = tmp[k - 1 - j];
		r->id[9 + k] = '\0';
	}
}

static void set_remote_ip(req *r)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	r->ip[0] = '\0';
	if (!sa)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, r->ip, sizeof r->ip);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, r->ip,
			  sizeof r->ip);
}

static void pick_language(req *r)
{
	const char *q = uri_query_get(&r->query, "lang");
	const char *c, *al;
	int i;

	if (q && (i = i18n_lang_index(q)) >= 0) {
		r->lang = i18n_langs[i];
		r->lang_from_query = true;
		return;
	}
	c = req_cookie(r, "lang");
	if (c && (i = i18n_lang_index(c)) >= 0) {
		r->lang = i18n_langs[i];
		return;
	}
	al = req_header(r, MHD_HTTP_HEADER_ACCEPT_LANGUAGE);
	if (al && *al)
		r->lang = i18n_negotiate(al);
}

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	size_t *acc = cls;
	(void)kind;
	acc[0]++;
	acc[1] += strlen(key) + (value ? strlen(value) : 0) + 4;
	return MHD_YES;
}

static bool media_type_is(const char *header, const char *want)
{
	size_t n = strlen(want);
	if (!header)
		return false;
	while (*header == ' ')
		header++;
	if (strncasecmp(header, want, n) != 0)
		return false;
	header += n;
	while (*header == ' ')
		header++;
	return *header == '\0' || *header == ';';
}

/* First call: everything that can be decided from the request head. */
static void setup(req *r, const char *method)
{
	const char *why = NULL, *q;
	size_t counts[2] = {0, 0};
	size_t path_len;

	set_request_id(r);
	set_remote_ip(r);
	server_proxy_resolve(r);
	r->method_name = method;
	r->method = http_method_parse(method);

	if (r->peer) {
		/* Nothing is served on the peer listener without a certificate
		 * that chains to server.peer_tls_ca. */
		const char *code = server_tls_peer_check(r);
		if (code)
			set_early(r, 403, code, NULL);
	}
	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_header, counts);
	if (counts[0] > EGOV_HEADER_COUNT_MAX || counts[1] > EGOV_HEADER_BYTES_MAX)
		set_early(r, 431, "header_fields_too_large", NULL);
	if (!r->raw_uri) {
		set_early(r, 414, "uri_too_long", NULL);
		return;
	}
	q = memchr(r->raw_uri, '?', r->raw_uri_len);
	path_len = q ? (size_t)(q - r->raw_uri) : r->raw_uri_len;
	if (uri_path_parse(&r->arena, r->raw_uri, path_len, &r->path, &why)) {
		set_early(r, 400, why ? why : "bad_request", NULL);
		return;
	}
	if (q && uri_query_parse(&r->arena, q + 1, r->raw_uri_len - path_len - 1, &r->query, &why)) {
		set_early(r, 400, "query.invalid", NULL);
		/* still pick the language from headers below */
	}
	pick_language(r);
	if (!r->method) {
		set_early(r, 405, "method_not_allowed", NULL);
		return;
	}
	r->match_status = router_match(r->listener->rt, r->method, r->path.segs, r->path.nsegs, &r->match);
	/* The peer listener serves peer routes only, and the main listener
	 * never serves them. */
	if (r->match_status == 200 && route_is_peer(r->match.route) != r->peer)
		r->match_status = 404;
	else if (r->match_status != 200 && r->peer)
		r->match_status = 404;
	if (r->match_status == 200) {
		r->metrics_slot = r->match.index;
		r->body_max = r->match.route->body_max;
	} else if (r->match_status == 405) {
		http_allow_string(r->match.allow, r->allow, sizeof r->allow);
	} else if ((r->method == HTTP_GET || r->method == HTTP_HEAD) &&
		   !(r->path.nsegs > 0 && strcmp(r->path.segs[0], "api") == 0)) {
		r->metrics_slot = r->listener->slot_static;
	}
}

/* Checks made on the first call that decide whether the body is read. */
static int check_body_head(req *r)
{
	const char *cl = req_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *te = req_header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	const char *ct;
	bool body = (cl && strcmp(cl, "0") != 0) || te;

	if (!body || r->early_status)
		return 0;
	if (r->match_status != 200)
		return 1; /* the router's 404 or 405 comes before any body limit */
	if (r->body_max == 0) {
		set_early(r, 413, r->limit_code ? r->limit_code : "payload_too_large", NULL);
		return 1;
	}
	if (cl) {
		char *end;
		unsigned long long n;
		errno = 0;
		n = strtoull(cl, &end, 10);
		if (errno || *end || n > r->body_max) {
			set_early(r, 413, r->limit_code ? r->limit_code : "payload_too_large", NULL);
			return 1;
		}
	}
	ct = req_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (!(r->match.route->content_type && strcmp(r->match.route->content_type, "*") == 0) &&
	    !media_type_is(ct, r->match.route->content_type ? r->match.route->content_type : "application/json")) {
		set_early(r, 415, "unsupported_media_type", NULL);
		return 1;
	}
	/* A spooling route keeps at most SPOOL_THRESHOLD in memory. */
	r->body.cap_max = r->match.route->spool && r->body_max > SPOOL_THRESHOLD ? SPOOL_THRESHOLD : r->body_max;
	return 0;
}

/* A .spool route's body chunk: in memory up to SPOOL_THRESHOLD, then
 * (what was kept first) into the spool file. Over the limit: 413. */
static void body_add(req *r, const char *data, size_t n)
{
	size_t have = r->spool.fd >= 0 ? r->spool.len : r->body.len;
	egov_err err;

	if (n > r->body_max - have) {
		set_early(r, 413, r->limit_code ? r->limit_code : "payload_too_large", NULL);
		buf_release(&r->body);
		spool_release(&r->spool);
		return;
	}
	if (r->spool.fd < 0 && r->body.len + n <= SPOOL_THRESHOLD) {
		if (buf_add(&r->body, data, n)) {
			set_early(r, 503, "unavailable", NULL);
			buf_release(&r->body);
		}
		return;
	}
	err = EGOV_OK;
	if (r->spool.fd < 0 && r->body.len)
		err = spool_write(&r->spool, r->body.data, r->body.len);
	buf_release(&r->body);
	if (!err)
		err = spool_write(&r->spool, data, n);
	if (err) {
		log_error("http.spool", "cannot spool a request body: %s", egov_err_name(err));
		set_early(r, 503, "unavailable", NULL);
		spool_release(&r->spool);
	}
}

/* ---- answering --------------------------------------------------------- */

/* A handler's (or the authoriser's) error as a problem document: status and
 * code both from the error table (core/err.c). */
static void problem_for_err(req *r, egov_err err)
{
	resp_problem(r, egov_err_http_status(err), egov_err_problem_code(err), NULL, NULL);
}

static void serve_static(req *r)
{
	const web_file *f = web_find(r->path.decoded, r->lang);

	if (!f) {
		resp_problem(r, 404, "not_found", NULL, NULL);
		return;
	}
	resp_header(r, MHD_HTTP_HEADER_ETAG, f->etag);
	resp_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
		    strncmp(f->mime, "text/html", 9) == 0 ? "no-cache" : "public, max-age=3600");
	if (f->per_lang) {
		resp_header(r, MHD_HTTP_HEADER_VARY, "Accept-Language, Cookie");
		if (r->lang_from_query) {
			char cookie[96];
			snprintf(cookie, sizeof cookie, "lang=%s; Path=/; Max-Age=31536000; SameSite=Lax", r->lang);
			resp_header(r, MHD_HTTP_HEADER_SET_COOKIE, cookie);
		}
	}
	if (req_etag_matches(r, f->etag)) {
		resp_empty(r, 304);
		return;
	}
	resp_bytes(r, 200, f->mime, f->data, f->len, false);
}

/* ---- dispatch, deferred answers and the hand-over to the pool ------------ */

static bool run_handler(req *r);

/* Returns true when the handler deferred its answer (req_defer): then
 * another thread may already own r, and the caller must take the lock
 * before it looks at r again. */
static bool dispatch(req *r)
{
	egov_err err;

	if (r->early_status) {
		resp_problem(r, r->early_status, r->early_code, r->early_field, NULL);
		return false;
	}
	if (r->match_status == 405) {
		resp_problem(r, 405, "method_not_allowed", NULL, NULL);
		return false;
	}
	if (r->match_status == 404) {
		if (r->metrics_slot == r->listener->slot_static && !r->peer)
			serve_static(r);
		else
			resp_problem(r, 404, "not_found", NULL, NULL);
		return false;
	}
	if (!http_authorize(r))
		return false; /* refused, and answered */
	if (r->match.route->blocking) {
		/* A gate that answers (or fails) keeps the request off the pool. */
		if (r->match.route->gate && (err = r->match.route->gate(r)) && !r->resp)
			problem_for_err(r, err);
		return false; /* else http_access_cb hands it to the blocking pool */
	}
	return run_handler(r);
}

void req_gate_hold(req *r, void (*release)(void))
{
	r->gate_release = release;
}

bool req_gate_take(req *r)
{
	bool held = r->gate_release != NULL;

	r->gate_release = NULL;
	return held;
}

/* Set by req_defer() on the thread running the handler, so that
 * run_handler learns of the deferral without touching r afterwards. */
static __thread bool handler_deferred;

void req_defer(req *r)
{
	if (!r->off_init) {
		pthread_mutex_init(&r->off_mu, NULL);
		r->off_init = true;
	}
	r->off_state = 1;
	handler_deferred = true;
}

/* Marks r answered and wakes its connection if the worker suspended it.
 * Decide under the lock, resume outside it: once resumed, the worker may
 * answer, complete and reuse r at once, so r must not be touched after
 * MHD_resume_connection. */
static void offloaded_done(req *r)
{
	struct MHD_Connection *conn = r->conn;
	bool suspended;

	pthread_mutex_lock(&r->off_mu);
	r->off_state = 2;
	suspended = r->off_suspended;
	pthread_mutex_unlock(&r->off_mu);
	if (suspended)
		MHD_resume_connection(conn);
}

void req_resume(req *r)
{
	offloaded_done(r);
}

static bool run_handler(req *r)
{
	egov_err err;

	handler_deferred = false;
	err = r->match.route->handler(r);
	if (handler_deferred) {
		handler_deferred = false;
		if (err)
			log_error("http.deferred_error", "a handler deferred its answer and returned %s",
				  egov_err_name(err));
		return true;
	}
	if (!r->resp) {
		if (!err) {
			log_error("http.no_response", "handler for %s answered nothing", r->match.route->path);
			err = EGOV_EINTERNAL;
		}
		problem_for_err(r, err);
	}
	return false;
}

void http_run_offloaded(req *r)
{
	if (!run_handler(r))
		offloaded_done(r);
}

static enum MHD_Result queue(req *r)
{
	enum MHD_Result ret;

	if (!r->resp) {
		/* Even the problem document could not be built: out of memory. */
		static const char msg[] = "{\"status\":503,\"code\":\"unavailable\"}";
		r->resp = MHD_create_response_from_buffer(sizeof msg - 1, (void *)(uintptr_t)msg,
							  MHD_RESPMEM_PERSISTENT);
		r->status = 503;
		if (!r->resp)
			return MHD_NO;
	}
	if (req_finish_response(r)) {
		MHD_destroy_response(r->resp);
		r->resp = NULL;
		return MHD_NO;
	}
	ret = MHD_queue_response(r->conn, (unsigned)r->status, r->resp);
	MHD_destroy_response(r->resp);
	r->resp = NULL;
	r->phase = 2;
	return ret;
}

/* ---- the access callback: head, body, answer ---------------------------- */

enum MHD_Result http_access_cb(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
			       const char *version, const char *upload_data, size_t *upload_data_size,
			       void **con_cls)
{
	req *r = *con_cls;

	(void)cls;
	(void)url;
	if (!r)
		return MHD_NO; /* could not allocate: drop the connection */
	if (r->phase == 0) {
		const char *code;
		int status;

		r->conn = conn;
		r->phase = 1;
		server_conn_head_done(conn);
		setup(r, method);
		if ((code = server_conn_head_refusal(r, version, &status))) {
			/* The body's framing (or the head itself) cannot be
			 * trusted: answer now and let MHD close. */
			set_early(r, status, code, NULL);
			dispatch(r);
			return queue(r);
		}
		if (!r->early_status && r->match_status == 200 && r->match.route->head) {
			/* The route looks at the head first: it may lower the body
			 * limit, or answer now without reading the body. */
			r->match.route->head(r);
			if (r->resp)
				return queue(r);
		}
		if (check_body_head(r)) {
			/* Refuse before reading a body we will not accept. */
			dispatch(r);
			return queue(r);
		}
		return MHD_YES;
	}
	if (r->phase == 2) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (r->early_status) {
			/* A chunked body went over the route's limit, or the request
			 * is already refused. MHD 0.9.75 cannot queue a response while
			 * a body is arriving, so the rest is read and dropped and the
			 * 413 goes out on the last call; a body that keeps coming past
			 * EGOV_BODY_MAX_UPLOAD gets the connection closed instead. */
			r->discarded += *upload_data_size;
			*upload_data_size = 0;
			return r->discarded > EGOV_BODY_MAX_UPLOAD ? MHD_NO : MHD_YES;
		}
		if (r->match.route->spool) {
			body_add(r, upload_data, *upload_data_size);
		} else if (buf_add(&r->body, upload_data, *upload_data_size)) {
			set_early(r, 413, r->limit_code ? r->limit_code : "payload_too_large", NULL);
			buf_release(&r->body);
		}
		r->has_body = true;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->off_state == 2)
		return queue(r); /* resumed: the pool built the response */
	if (r->off_state == 1)
		return MHD_YES;
	if (dispatch(r))
		goto suspend; /* deferred: its answer may already be there */
	if (r->resp || r->match_status != 200 || !r->match.route->blocking)
		return queue(r);
	pthread_mutex_init(&r->off_mu, NULL);
	r->off_init = true;
	r->off_state = 1;
	if (!pool_submit(r)) {
		r->off_state = 0;
		resp_problem(r, 503, "unavailable", NULL, "blocking pool full");
		return queue(r);
	}
suspend:
	/* The pool (or whoever answers a deferred request) may finish before
	 * we get here: then answer at once. */
	{
		bool done;
		pthread_mutex_lock(&r->off_mu);
		done = r->off_state == 2;
		if (!done) {
			MHD_suspend_connection(conn);
			r->off_suspended = true;
		}
		pthread_mutex_unlock(&r->off_mu);
		return done ? queue(r) : MHD_YES;
	}
}

/* ---- completion: metrics and access log ---------------------------------- */

void http_completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
		       enum MHD_RequestTerminationCode toe)
{
	req *r = *con_cls;
	int64_t dur;

	(void)cls;
	server_conn_head_wait(conn);
	if (!r)
		return;
	dur = time_mono_us() - r->t0_us;
	if (r->phase != 2) {
		/* MHD answered or dropped it itself (malformed, headers too
		 * large, client gone, timeout). */
		r->status = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? r->status : 0;
	}
	if (r->gate_release) {
		r->gate_release(); /* the handler never took what the gate held */
		r->gate_release = NULL;
	}
	metrics_http_observe(r->metrics_slot, r->method ? (unsigned)r->method : HTTP_GET, r->status, dur);
	log_access_request(r, dur);
	if (r->resp)
		MHD_destroy_response(r->resp);
	buf_release(&r->body);
	spool_release(&r->spool);
	if (r->off_init)
		pthread_mutex_destroy(&r->off_mu);
	*con_cls = NULL;
	req_put(r);
	atomic_fetch_sub(&inflight, 1);
}
