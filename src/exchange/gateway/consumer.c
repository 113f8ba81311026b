/*
 * consumer.c: the consumer side of a service call,
 * /r1/{instance}/{class}/{member}/{subsystem}/{service}/{path...} on the
 * main listener (docs/exchange.md, "Calling a service"), and the
 * metaservices under /r1. Checks the calling subsystem (served by this
 * gateway, which holds its key), the service and the access right;
 * signs; sends to the provider's gateway over mutual TLS, its TLS key
 * pinned to the provider's tls certificates in the configuration;
 * verifies the signed answer against the configuration (conf/signed.c);
 * logs; answers once the record is durable.
 */
#include <stdio.h>
#include <string.h>

#include "core/limits.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "exchange/gateway/gateway_int.h"
#include "exchange/pubsub/pubsub.h"
#include "core/banned.h"

/* What the consumer waits for the provider beyond the service's back-end
 * timeout: the provider answers 504 itself first, with a signature. */
#define PROVIDER_MARGIN_MS 5000

static void consumer_logged(void *ctx, egov_err err)
{
	xchg *x = ctx;

	if (err == EGOV_ECONFLICT) {
		exchange_metrics_error("exchange.replay");
		x->status = 409;
		resp_problem(x->r, 409, "exchange.replay", "X-Road-Id", NULL);
	} else if (err) {
		log_error("exchange.log_failed", "consumer %s %s: %s", x->service, x->message_id, egov_err_name(err));
		exchange_metrics_error("unavailable");
		x->status = 503;
		resp_problem(x->r, 503, "unavailable", NULL, "message log unavailable");
	} else {
		xchg_answer(x, false);
	}
	xchg_done(x);
}

static void consumer_fail(xchg *x, int status, const char *code, const char *detail)
{
	exchange_metrics_error(code);
	x->status = status;
	buf_reset(&x->resp_body);
	xchg_drop_response_file(x);
	resp_problem(x->r, status, code, NULL, detail);
	xchg_done(x);
}

static void consumer_got(void *ctx, httpc_response *resp)
{
	xchg *x = ctx;
	const char *why = NULL, *allow;
	exchange_answer a;

	if (resp->err) {
		log_warn("exchange.provider", "%s %s: %s", x->service, x->message_id, resp->errmsg);
		if (resp->err == EGOV_EBUSY)
			consumer_fail(x, 504, "exchange.backend_timeout", "the provider's gateway did not answer in time");
		else
			consumer_fail(x, 502, "exchange.provider_unreachable", NULL);
		return;
	}
	x->status = resp->status;
	snprintf(x->resp_ct, sizeof x->resp_ct, "%s", resp->content_type);
	if (resp->status == 405 && (allow = httpc_header(resp, "allow")))
		snprintf(x->allow, sizeof x->allow, "%s", allow);
	a = (exchange_answer){.message_id = httpc_header(resp, "x-road-id"),
			      .signed_at = httpc_header(resp, "x-egov-signed-at"),
			      .signer_cert = httpc_header(resp, "x-egov-signer-cert"),
			      .sig = httpc_header(resp, "x-egov-signature"),
			      .status = resp->status,
			      .content_type = x->resp_ct,
			      .body_sha256 = x->resp_sha};
	/* The headers are checked before the body is taken (a spooled one's
	 * digest comes with it), the signature after. */
	if (!a.message_id || strcmp(a.message_id, x->message_id) != 0 || !a.signed_at || !a.signer_cert || !a.sig ||
	    strlen(a.sig) >= sizeof x->resp_sig || strlen(a.signed_at) >= sizeof x->resp_at ||
	    strlen(a.signer_cert) >= sizeof x->resp_cert) {
		consumer_fail(x, 502, "exchange.response_invalid", "response not signed");
		return;
	}
	snprintf(x->resp_at, sizeof x->resp_at, "%s", a.signed_at);
	snprintf(x->resp_cert, sizeof x->resp_cert, "%s", a.signer_cert);
	snprintf(x->resp_sig, sizeof x->resp_sig, "%s", a.sig);
	xchg_take_response_body(x, resp);
	xchg_hash_response(x);
	if (exchange_conf_verify_answer(x->cf, x->provider, x->service, x->message_id, x->req_sig, &a, NULL, &why)) {
		consumer_fail(x, 502, "exchange.response_invalid", why);
		return;
	}
	x->signed_resp = true;
	xchg_log(x, consumer_logged);
}

/* An optional free-text header; false (answered) when malformed. */
static bool opt_header(req *r, const char *name, size_t max, const char **out)
{
	const char *h = req_header(r, name);

	*out = h ? h : "";
	if (h && !exchange_text_valid(h, max)) {
		gateway_refuse(r, 400, "exchange.header_invalid", name, NULL);
		return false;
	}
	return true;
}

/* What a call's headers say besides the caller, checked before anything
 * is looked up. */
typedef struct call_headers {
	const char *mid, *rp, *ds, *purpose, *content_type;
} call_headers;

/* false when a header is malformed (answered). */
static bool check_headers(req *r, call_headers *h)
{
	const char *ct;

	h->mid = req_header(r, "X-Road-Id");
	if (h->mid && !exchange_msgid_valid(h->mid)) {
		gateway_refuse(r, 400, "exchange.header_invalid", "X-Road-Id", NULL);
		return false;
	}
	if (!opt_header(r, "X-Road-Represented-Party", EXCHANGE_PARTY_MAX, &h->rp) ||
	    !opt_header(r, "X-Egov-Data-Subject", EXCHANGE_PARTY_MAX, &h->ds) ||
	    !opt_header(r, "X-Egov-Purpose", EXCHANGE_PURPOSE_MAX, &h->purpose))
		return false;
	ct = req_header(r, "Content-Type");
	h->content_type = ct ? ct : "";
	if (!exchange_text_valid(h->content_type, EXCHANGE_CONTENT_TYPE_MAX - 1)) {
		gateway_refuse(r, 400, "exchange.header_invalid", "Content-Type", NULL);
		return false;
	}
	return true;
}

/* /r1/{instance}/{class}/{member}/{subsystem}/{service}/{path...} and the
 * metaservices under /r1. The request is checked first (the caller's
 * headers, the identifiers in the path, the other headers), then looked
 * up in the configuration in force. */
egov_err exchange_consumer_call(req *r)
{
	const gateway_room *g = gateway_room_get();
	const exchange_peer_tls *tls = exchange_peer_tls_get();
	db_conn *c = NULL;
	char *rest;
	const char *parts[EGOV_PATH_SEGMENTS_MAX];
	const char *why = NULL, *client, *field, *h, *access_path;
	const exchange_subsystem *cs, *ps;
	exchange_conf *cf;
	char member[EXCHANGE_ID_MAX];
	call_headers ch;
	size_t nparts;
	bool handled = false;
	xchg *x;
	httpc_request rq = {0};
	size_t nh = 0;
	buf canon;
	char *url;
	egov_err err;

	if (!g->d)
		return gateway_refuse(r, 404, "not_found", NULL, NULL);
	nparts = (rest = arena_strdup(req_arena(r), req_param(r, "rest") ? req_param(r, "rest") : ""))
			 ? exchange_split_rest(rest, parts, EGOV_PATH_SEGMENTS_MAX)
			 : 0;
	if (!gateway_client_header(r, &client, &field))
		return gateway_refuse(r, 400, "exchange.client_invalid", field, NULL);
	/* INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE: what is there of it must
	 * be well-formed (400); what is missing or unknown is a 404 below. */
	if (!gateway_path_ids_valid(parts, nparts, 5) || !exchange_raw_parts_nonempty(req_target(r), 1, 5))
		return gateway_refuse(r, 400, "exchange.id_invalid", "path", NULL);
	err = exchange_meta_answer(r, client, parts, nparts, &handled);
	if (handled)
		return err;
	if (!client)
		return gateway_refuse(r, 400, "exchange.client_invalid", "X-Road-Client", NULL);
	if (!check_headers(r, &ch))
		return EGOV_OK;
	cf = exchange_conf_get(&why);
	if (!cf)
		return gateway_refuse(r, 503, why ? why : "exchange.conf_missing", NULL, NULL);
	cs = exchange_conf_subsystem(cf, client);
	if (!cs || !cs->gateway_url || !exchange_url_eq(cs->gateway_url, g->xc->gateway_url) || !exchange_has_key(client)) {
		exchange_conf_put(cf);
		return gateway_refuse(r, 403, "exchange.client_not_local", "X-Road-Client", NULL);
	}
	/* Another instance than this one and those it federates with (or
	 * one whose configuration expired) is not a member that is unknown. */
	if (nparts >= 1 && !exchange_conf_of_instance(cf, parts[0])) {
		exchange_conf_put(cf);
		return gateway_refuse(r, 404, "exchange.unknown_instance", NULL, NULL);
	}
	if (nparts < 3 || !exchange_join_id(parts, 3, member) || !exchange_id_valid(member, EXCHANGE_ID_MEMBER) ||
	    !exchange_conf_member_known(cf, member)) {
		exchange_conf_put(cf);
		return gateway_refuse(r, 404, "exchange.unknown_member", NULL, NULL);
	}
	x = xchg_new(r, cf, SIDE_CONSUMER);
	if (!x) {
		exchange_conf_put(cf);
		return EGOV_ENOMEM;
	}
	snprintf(x->client, sizeof x->client, "%s", client);
	if (nparts < 4 || !exchange_join_id(parts, 4, x->provider) || !exchange_id_valid(x->provider, EXCHANGE_ID_SUBSYSTEM) ||
	    !(ps = exchange_conf_subsystem(cf, x->provider)) || !ps->gateway_url || !*ps->gateway_url) {
		xchg_free(x);
		return gateway_refuse(r, 404, "exchange.unknown_subsystem", NULL, NULL);
	}
	if (nparts < 5 || !exchange_join_id(parts, 5, x->service) || !exchange_id_valid(x->service, EXCHANGE_ID_SERVICE) ||
	    !(x->svc = exchange_conf_service(cf, x->service))) {
		xchg_free(x);
		return gateway_refuse(r, 404, "exchange.unknown_service", NULL, NULL);
	}
	x->service_code = parts[4];
	x->method = req_method_name(r);
	x->log_full = strcmp(x->svc->log_mode, "full") == 0;
	x->rp = ch.rp;
	x->ds = ch.ds;
	x->purpose = ch.purpose;
	x->content_type = ch.content_type;
	access_path = exchange_decoded_tail(req_arena(r), parts, nparts, 5);
	if (!access_path || !exchange_conf_allowed(cf, x->client, x->service, x->method, access_path)) {
		xchg_free(x);
		return gateway_refuse(r, 403, "exchange.access_denied", NULL, NULL);
	}
	if ((err = xchg_take_request_body(x))) {
		xchg_free(x);
		return err;
	}
	if (x->svc->max_body > 0 && (int64_t)x->req_len > x->svc->max_body) {
		xchg_free(x);
		return gateway_refuse(r, 413, "exchange.payload_too_large", NULL, NULL);
	}
	if (exchange_pubsub_reserved(x->service_code) && req_header(r, "X-Egov-Push-Url") &&
	    ((err = db_thread_conn(g->d, &c)) ||
	     (err = exchange_pubsub_consumer_note(c, x->client, x->provider, x->service_code, x->method, access_path,
						  req_header(r, "X-Egov-Push-Url"))))) {
		xchg_free(x);
		if (err == EGOV_EINVAL)
			return gateway_refuse(r, 400, "pubsub.push_url_invalid", "X-Egov-Push-Url", NULL);
		return err;
	}
	if (exchange_log_sealing_overdue()) {
		xchg_free(x);
		return gateway_refuse(r, 503, "exchange.timestamping_overdue", NULL, NULL);
	}
	if (ch.mid)
		snprintf(x->message_id, sizeof x->message_id, "%s", ch.mid);
	else if ((err = uuid_v7(x->message_id))) {
		xchg_free(x);
		return err;
	}
	x->path = exchange_raw_tail(req_arena(r), req_target(r), 6); /* r1 I C M S SERVICE */
	if (!x->path) {
		xchg_free(x);
		return EGOV_ENOMEM;
	}
	time_format_rfc3339(time_now_us(), 3, x->req_at);
	{
		exchange_canon_req cr = {x->message_id, x->client, x->service, x->method, x->path, x->content_type,
					 x->rp, x->ds, x->purpose, x->req_at, x->req_sha};
		buf_init(&canon, 64 * 1024);
		err = exchange_canon_request(&cr, &canon);
		if (!err)
			err = exchange_sign(x->client, canon.data, canon.len, x->req_sig, x->req_cert);
		buf_release(&canon);
	}
	if (err) {
		xchg_free(x);
		if (err == EGOV_ENOTFOUND)
			return gateway_refuse(r, 403, "exchange.client_not_local", "X-Road-Client", NULL);
		return err;
	}
	xchg_log_sign_certs(cf, x->client);
	xchg_log_sign_certs(cf, x->provider);
	x->known = true;

	{
		const char *base = ps->gateway_url;
		size_t lb = strlen(base), ls = strlen(x->service), lp = strlen(x->path);
		static const char mid_part[] = "/peer/v1/r1/";
		while (lb && base[lb - 1] == '/')
			lb--;
		url = arena_alloc(req_arena(r), lb + sizeof mid_part + ls + lp + 1);
		if (!url) {
			xchg_free(x);
			return EGOV_ENOMEM;
		}
		memcpy(url, base, lb);
		memcpy(url + lb, mid_part, sizeof mid_part - 1);
		memcpy(url + lb + sizeof mid_part - 1, x->service, ls);
		memcpy(url + lb + sizeof mid_part - 1 + ls, x->path, lp + 1);
	}
	rq.method = x->method;
	rq.url = url;
	xchg_request_body(x, &rq);
	/* The provider waits up to the service's timeout and then answers a
	 * signed 504 itself. */
	rq.timeout_ms = (int)(x->svc->timeout_ms > 0 ? x->svc->timeout_ms : g->xc->backend_timeout_ms) +
			PROVIDER_MARGIN_MS;
	rq.response_max = (size_t)(x->svc->max_body > EXCHANGE_PROBLEM_BODY_MAX ? x->svc->max_body : EXCHANGE_PROBLEM_BODY_MAX);
	rq.client_cert = tls->cert;
	rq.client_key = tls->key;
	rq.ca_file = tls->ca[0] ? tls->ca : NULL;
	/* The TLS server must be a gateway registered for the provider: its
	 * keys were pinned when the configuration was parsed. */
	rq.pinned_pubkey = ps->tls_pins;
	if (!rq.pinned_pubkey) {
		xchg_free(x);
		return gateway_refuse(r, 502, "exchange.provider_unreachable", NULL, "no TLS certificate for the provider");
	}
	xchg_add_header(r, rq.headers, &nh, "Content-Type", x->content_type);
	xchg_add_header(r, rq.headers, &nh, "Expect", "");
	if ((h = req_header(r, "Accept")))
		xchg_add_header(r, rq.headers, &nh, "Accept", h);
	if ((h = req_header(r, "Accept-Language")))
		xchg_add_header(r, rq.headers, &nh, "Accept-Language", h);
	xchg_add_header(r, rq.headers, &nh, "X-Request-Id", req_id(r));
	xchg_add_call_headers(x, rq.headers, &nh);
	xchg_add_header(r, rq.headers, &nh, "X-Egov-Signed-At", x->req_at);
	xchg_add_header(r, rq.headers, &nh, "X-Egov-Signer-Cert", x->req_cert);
	xchg_add_header(r, rq.headers, &nh, "X-Egov-Signature", x->req_sig);
	req_defer(r);
	err = httpc_send(&rq, consumer_got, x);
	if (err) {
		httpc_response fake = {0};
		fake.err = EGOV_EUNAVAILABLE;
		snprintf(fake.errmsg, sizeof fake.errmsg, "httpc_send: %s", egov_err_name(err));
		consumer_got(x, &fake);
	}
	return EGOV_OK;
}

