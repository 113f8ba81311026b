/*
 * provider.c: the provider side of a service call, /peer/v1/r1/{service
 * id}/{path...} on the peer listener (docs/exchange.md, "Calling a
 * service"): the inbound verifier (verify.c) checks the TLS peer, the
 * signature, the time and replay; then the access right and the size;
 * then the call goes to the back-end configured for the service, or to
 * the pub/sub room for the reserved service codes. The answer is signed
 * with the provider subsystem's key, logged, and sent once its record is
 * durable.
 *
 * Refusals before the request is shown authentic are answered at once,
 * signed once the service is known to be served here, and not logged;
 * from then on every answer is signed and logged.
 */
#include <stdio.h>
#include <string.h>

#include "core/limits.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "exchange/gateway/gateway_int.h"
#include "exchange/pubsub/pubsub.h"
#include "core/banned.h"

egov_err xchg_sign(xchg *x)
{
	exchange_canon_resp c = {0};
	buf canon;
	egov_err err;

	xchg_hash_response(x);
	time_format_rfc3339(time_now_us(), 3, x->resp_at);
	c.message_id = x->message_id;
	c.service = x->service;
	c.status = x->status;
	c.content_type = x->resp_ct;
	c.request_sig = x->req_sig;
	c.signed_at = x->resp_at;
	c.body_sha256 = x->resp_sha;
	buf_init(&canon, 64 * 1024);
	err = exchange_canon_response(&c, &canon);
	if (!err)
		err = exchange_sign(x->provider, canon.data, canon.len, x->resp_sig, x->resp_cert);
	buf_release(&canon);
	x->signed_resp = !err;
	return err;
}

void provider_problem_now(xchg *x, int status, const char *code, const char *detail)
{
	if (xchg_problem(x, status, code, detail) || xchg_sign(x)) {
		resp_problem(x->r, status, code, NULL, detail);
		return;
	}
	xchg_answer(x, true);
}

static void provider_logged(void *ctx, egov_err err)
{
	xchg *x = ctx;

	if (err == EGOV_ECONFLICT) {
		/* The durable check: this id was logged before (a replay that
		 * outlived the in-memory window, e.g. across a restart). */
		gateway_audit_refusal("exchange.replay", x->client, x->service, x->message_id,
				      "message id already in the log", req_remote_ip(x->r));
		provider_problem_now(x, 409, "exchange.replay", NULL);
	} else if (err) {
		log_error("exchange.log_failed", "provider %s %s: %s", x->service, x->message_id, egov_err_name(err));
		provider_problem_now(x, 503, "unavailable", "message log unavailable");
	} else {
		xchg_answer(x, true);
	}
	xchg_done(x);
}

void provider_finish(xchg *x)
{
	if (xchg_sign(x)) {
		log_error("exchange.sign_failed", "no signing key for %s", x->provider);
		resp_problem(x->r, 500, "internal", NULL, "cannot sign the response");
		xchg_done(x);
		return;
	}
	xchg_log(x, provider_logged);
}

void provider_refuse_logged(xchg *x, int status, const char *code, const char *detail)
{
	if (xchg_problem(x, status, code, detail)) {
		resp_problem(x->r, status, code, NULL, detail);
		xchg_done(x);
		return;
	}
	provider_finish(x);
}

static void backend_got(void *ctx, httpc_response *resp)
{
	xchg *x = ctx;

	if (resp->err) {
		log_warn("exchange.backend", "%s %s: %s", x->service, x->message_id, resp->errmsg);
		if (resp->err == EGOV_EBUSY)
			provider_refuse_logged(x, 504, "exchange.backend_timeout", NULL);
		else if (resp->err == EGOV_ELIMIT)
			provider_refuse_logged(x, 502, "exchange.response_too_large", NULL);
		else
			provider_refuse_logged(x, 502, "exchange.backend_unavailable", NULL);
		return;
	}
	x->status = resp->status;
	snprintf(x->resp_ct, sizeof x->resp_ct, "%s",
		 resp->content_type[0] ? resp->content_type : "application/octet-stream");
	xchg_take_response_body(x, resp);
	provider_finish(x);
}

static void forward(xchg *x, const char *url_base, int timeout_ms)
{
	req *r = x->r;
	httpc_request rq = {0};
	size_t nh = 0;
	const char *accept = req_header(r, "Accept");
	char *url;
	size_t lb = strlen(url_base), lp = strlen(x->path);
	egov_err err;

	while (lb && url_base[lb - 1] == '/')
		lb--;
	url = arena_alloc(req_arena(r), lb + lp + 1);
	if (!url) {
		provider_refuse_logged(x, 503, "unavailable", NULL);
		return;
	}
	memcpy(url, url_base, lb);
	memcpy(url + lb, x->path, lp + 1);
	rq.method = x->method;
	rq.url = url;
	xchg_request_body(x, &rq);
	rq.timeout_ms = timeout_ms;
	rq.response_max = (size_t)(x->svc->max_body > 0 ? x->svc->max_body : EGOV_BODY_MAX_UPLOAD);
	xchg_add_header(r, rq.headers, &nh, "Content-Type", x->content_type);
	xchg_add_header(r, rq.headers, &nh, "Expect", "");
	if (accept)
		xchg_add_header(r, rq.headers, &nh, "Accept", accept);
	xchg_add_call_headers(x, rq.headers, &nh);
	xchg_add_header(r, rq.headers, &nh, "X-Request-Id", req_id(r));
	if ((err = httpc_send(&rq, backend_got, x))) {
		httpc_response fake = {0};
		fake.err = EGOV_EUNAVAILABLE;
		snprintf(fake.errmsg, sizeof fake.errmsg, "httpc_send: %s", egov_err_name(err));
		backend_got(x, &fake);
	}
}

/* The pub/sub room answers on this (blocking pool) thread. */
static void to_room(xchg *x, const char *path)
{
	const gateway_room *g = gateway_room_get();
	pubsub_call k = {.provider = x->provider,
			 .client = x->client,
			 .service_code = x->service_code,
			 .method = x->method,
			 .path = path,
			 .message_id = x->message_id,
			 .body = x->req_body,
			 .len = x->req_len};
	pubsub_answer a = {0};
	db_conn *c = NULL;
	buf out;
	egov_err err;

	buf_init(&out, EGOV_RESPONSE_MAX);
	a.out = &out;
	if (!(err = db_thread_conn(g->d, &c)))
		err = pubsub_room_answer(c, x->cf, &k, &a);
	if (err) {
		buf_release(&out);
		log_warn("exchange.pubsub", "%s %s: %s", x->service, x->message_id, egov_err_name(err));
		provider_refuse_logged(x, egov_err_http_status(err), err == EGOV_ENOTFOUND ? "not_found" : "internal",
				       NULL);
		return;
	}
	x->status = a.status;
	snprintf(x->resp_ct, sizeof x->resp_ct, "%s", a.content_type && *a.content_type ? a.content_type
											 : "application/json");
	snprintf(x->allow, sizeof x->allow, "%s", a.allow);
	buf_release(&x->resp_body);
	x->resp_body = out;
	provider_finish(x);
}

/* The service of the request, which must be one this gateway serves: else
 * there is no key to sign a refusal with (404, unsigned). */
static bool own_service(xchg *x, const char *const *parts, size_t nparts)
{
	if (nparts < 5 || !exchange_join_id(parts, 5, x->service) || !exchange_id_valid(x->service, EXCHANGE_ID_SERVICE) ||
	    !(x->svc = exchange_conf_service(x->cf, x->service)) || !exchange_join_id(parts, 4, x->provider) ||
	    !exchange_has_key(x->provider))
		return false;
	x->service_code = parts[4];
	x->log_full = strcmp(x->svc->log_mode, "full") == 0;
	return true;
}

static const char *header_or_empty(req *r, const char *name)
{
	const char *h = req_header(r, name);

	return h ? h : "";
}

/* /peer/v1/r1/{instance}/{class}/{member}/{subsystem}/{service}/{path...} */
egov_err exchange_provider_call(req *r)
{
	const char *parts[EGOV_PATH_SEGMENTS_MAX];
	const char *why = NULL, *access_path, *tail;
	char *rest;
	exchange_conf *cf;
	size_t nparts = 0;
	int64_t now = time_now_us();
	inbound in;
	inbound_why no;
	inbound_msg m;
	bool refused;
	xchg *x;

	if (!gateway_room_get()->d)
		return gateway_refuse(r, 404, "not_found", NULL, NULL);
	if ((rest = arena_strdup(req_arena(r), req_path(r) + strlen("/peer/v1/r1/"))))
		nparts = exchange_split_rest(rest, parts, EGOV_PATH_SEGMENTS_MAX);
	if (!(cf = exchange_conf_get(&why)))
		return gateway_refuse(r, 503, why ? why : "exchange.conf_missing", NULL, NULL);
	if (!(x = xchg_new(r, cf, SIDE_PROVIDER))) {
		exchange_conf_put(cf);
		return EGOV_ENOMEM;
	}
	x->method = req_method_name(r);
	if (!gateway_path_ids_valid(parts, nparts, 5) || !exchange_raw_parts_nonempty(req_target(r), 3, 5)) {
		xchg_free(x);
		return gateway_refuse(r, 400, "exchange.id_invalid", "path", NULL);
	}
	if (!own_service(x, parts, nparts)) {
		xchg_free(x);
		return gateway_refuse(r, 404, "exchange.unknown_service", NULL, NULL);
	}
	if (xchg_take_request_body(x)) {
		provider_problem_now(x, 503, "unavailable", NULL);
		goto answered;
	}
	x->content_type = header_or_empty(r, "Content-Type");
	x->rp = header_or_empty(r, "X-Road-Represented-Party");
	x->ds = header_or_empty(r, "X-Egov-Data-Subject");
	x->purpose = header_or_empty(r, "X-Egov-Purpose");
	tail = exchange_raw_tail(req_arena(r), req_target(r), 8); /* peer v1 r1 I C M S SERVICE */
	x->path = tail ? tail : "/";
	m = (inbound_msg){.client = req_header(r, "X-Road-Client"),
			  .service = x->service,
			  .method = x->method,
			  .path = x->path,
			  .content_type = x->content_type,
			  .rp = x->rp,
			  .ds = x->ds,
			  .purpose = x->purpose,
			  .body_sha256 = x->req_sha};
	if (m.client && exchange_id_valid(m.client, EXCHANGE_ID_SUBSYSTEM))
		snprintf(x->client, sizeof x->client, "%s", m.client);
	/* Refusals up to the replay check are answered at once, signed, and
	 * not logged: the request is not shown to be authentic. */
	refused = inbound_verify(r, cf, &m, now, &in, &no) || inbound_accept(x->client, &in, now, &no);
	/* What the verifier read so far: a signed refusal answers the
	 * request's signature too. */
	memcpy(x->message_id, in.message_id, sizeof x->message_id);
	memcpy(x->req_cert, in.signer_cert, sizeof x->req_cert);
	memcpy(x->req_sig, in.sig, sizeof x->req_sig);
	memcpy(x->req_at, in.signed_at, sizeof x->req_at);
	if (refused) {
		if (no.audit)
			gateway_audit_refusal(no.code, x->client, x->service, x->message_id, no.reason,
					      req_remote_ip(r));
		provider_problem_now(x, no.status, no.code, no.status == 401 || no.status == 503 ? no.reason : NULL);
		goto answered;
	}
	/* From here the request is authentic: every answer is logged, after
	 * its record is durable, so the answer is deferred. */
	exchange_log_cert(x->req_cert, in.signer->pem);
	xchg_log_sign_certs(cf, x->provider);
	x->known = true;
	req_defer(r);
	access_path = exchange_decoded_tail(req_arena(r), parts, nparts, 5);
	if (!access_path || !exchange_conf_allowed(cf, x->client, x->service, x->method, access_path)) {
		gateway_audit_refusal("exchange.access_denied", x->client, x->service, x->message_id,
				      "no access right for this method and path", req_remote_ip(r));
		provider_refuse_logged(x, 403, "exchange.access_denied", NULL);
		return EGOV_OK;
	}
	if (x->svc->max_body > 0 && (int64_t)x->req_len > x->svc->max_body) {
		provider_refuse_logged(x, 413, "exchange.payload_too_large", NULL);
		return EGOV_OK;
	}
	if (exchange_pubsub_reserved(x->service_code)) {
		if (!req_route(r)->blocking)
			provider_refuse_logged(x, 404, "exchange.unknown_service", NULL);
		else
			to_room(x, access_path);
		return EGOV_OK;
	}
	{
		const char *url;
		int timeout_ms;
		if (!gateway_backend_find(r, x->service, &url, &timeout_ms)) {
			provider_refuse_logged(x, 502, "exchange.backend_unavailable", "no back-end configured");
			return EGOV_OK;
		}
		forward(x, url, gateway_backend_timeout(x->svc, timeout_ms));
	}
	return EGOV_OK;

answered:
	xchg_end(x);
	return EGOV_OK;
}
