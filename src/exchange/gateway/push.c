/*
 * push.c: the subscriber side of a push: POST
 * /peer/v1/push/{subscriber}/{eventType}/{eventId} on the peer listener,
 * sent by the gateway of the room that published the event
 * (pubsub/delivery.c). It is verified as the provider side verifies a
 * service call (the one inbound verifier, verify.c: TLS peer, signer and
 * signature, signing time, replay), then forwarded to the push URL
 * configured on this gateway for that subscriber and event type, and only
 * there (never a URL the sender names). The back-end's answer (or a
 * problem of our own when it cannot be reached) is signed with the
 * subscriber's key, logged with both bodies, and returned: an exchange
 * like any other, whose provider is the subscriber.
 *
 * Refusals before the push is accepted are answered unsigned (the sender
 * retries whatever is not a signed 2xx) and audited as
 * exchange.pubsub.push_refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "exchange/gateway/gateway_int.h"
#include "exchange/pubsub/pubsub.h"
#include "core/banned.h"

static void push_refused(const xchg *x, const char *code)
{
	char details[160];

	snprintf(details, sizeof details, "{\"code\":\"%s\"}", code);
	gateway_audit(x->client[0] ? x->client : "peer", "exchange.pubsub.push_refused",
		      x->provider[0] ? x->provider : "push", details);
}

static void backend_got(void *ctx, httpc_response *rs)
{
	xchg *x = ctx;

	if (rs->err) {
		log_info("exchange.pubsub", "push %s for %s: back-end %s", x->message_id, x->provider, rs->errmsg);
		provider_refuse_logged(x, rs->err == EGOV_EBUSY ? 504 : 502,
				       rs->err == EGOV_EBUSY ? "exchange.backend_timeout" : "exchange.backend_unavailable",
				       NULL);
		return;
	}
	x->status = rs->status;
	snprintf(x->resp_ct, sizeof x->resp_ct, "%s", rs->content_type);
	xchg_take_response_body(x, rs);
	provider_finish(x);
}

static void forward(xchg *x, const char *url, const char *event_id)
{
	char hdr[3][EXCHANGE_ID_MAX + PUBSUB_EVENT_ID_MAX + 32];
	httpc_request rq;
	egov_err err;

	snprintf(hdr[0], sizeof hdr[0], "X-Road-Id: %s", event_id);
	snprintf(hdr[1], sizeof hdr[1], "X-Road-Client: %s", x->client);
	snprintf(hdr[2], sizeof hdr[2], "Content-Type: application/json");
	rq = (httpc_request){.method = "POST",
			     .url = url,
			     .headers = {hdr[0], hdr[1], hdr[2], NULL},
			     .body = x->req_body,
			     .body_len = x->req_len,
			     .timeout_ms = gateway_room_get()->xc->backend_timeout_ms,
			     .response_max = PUBSUB_RESPONSE_MAX};
	if ((err = httpc_send(&rq, backend_got, x))) {
		/* Answered like an unreachable back-end, signed and logged. */
		httpc_response rs = {.err = EGOV_EUNAVAILABLE};
		snprintf(rs.errmsg, sizeof rs.errmsg, "cannot send: %s", egov_err_name(err));
		backend_got(x, &rs);
	}
}

/* {subscriber: 4 parts}/{eventType}/{eventId} of the route's rest. */
static bool parse_target(const char *rest, xchg *x, char et[PUBSUB_NAME_MAX + 1], char ev[PUBSUB_EVENT_ID_MAX + 1])
{
	const char *slash2 = rest ? strrchr(rest, '/') : NULL, *slash1 = slash2 && slash2 > rest ? slash2 - 1 : NULL;

	while (slash1 && slash1 > rest && *slash1 != '/')
		slash1--;
	if (!slash1 || *slash1 != '/' || (size_t)(slash1 - rest) >= sizeof x->provider ||
	    (size_t)(slash2 - slash1 - 1) > PUBSUB_NAME_MAX || strlen(slash2 + 1) > PUBSUB_EVENT_ID_MAX)
		return false;
	snprintf(x->provider, sizeof x->provider, "%.*s", (int)(slash1 - rest), rest);
	snprintf(et, PUBSUB_NAME_MAX + 1, "%.*s", (int)(slash2 - slash1 - 1), slash1 + 1);
	snprintf(ev, PUBSUB_EVENT_ID_MAX + 1, "%s", slash2 + 1);
	return exchange_id_valid(x->provider, EXCHANGE_ID_SUBSYSTEM) && pubsub_name_valid(et) &&
	       pubsub_event_id_valid(ev);
}

egov_err exchange_push_receive(req *r)
{
	const gateway_room *g = gateway_room_get();
	const char *why = NULL, *ctype = req_header(r, "Content-Type");
	char et[PUBSUB_NAME_MAX + 1], ev[PUBSUB_EVENT_ID_MAX + 1], et_id[EXCHANGE_ID_MAX + PUBSUB_NAME_MAX + 2];
	char *url = NULL, *path;
	int64_t now = time_now_us();
	db_conn *c = NULL;
	int n;
	inbound in;
	inbound_why no = {0};
	inbound_msg m;
	xchg *x;
	egov_err err = EGOV_OK;

	if (!(x = xchg_new(r, NULL, SIDE_PROVIDER)))
		return EGOV_ENOMEM;
	x->method = "POST";
	x->log_full = true;
	if (!parse_target(req_param(r, "rest"), x, et, ev)) {
		no = (inbound_why){.status = 404, .code = "not_found"};
		goto refuse;
	}
	if (!(x->cf = exchange_conf_get(&why))) {
		no = (inbound_why){.status = 503, .code = why ? why : "exchange.conf_missing"};
		goto refuse;
	}
	if (exchange_log_sealing_overdue()) {
		no = (inbound_why){.status = 503, .code = "exchange.timestamping_overdue"};
		goto refuse;
	}
	if (!exchange_conf_subsystem(x->cf, x->provider) || !exchange_has_key(x->provider)) {
		no = (inbound_why){.status = 404, .code = "exchange.unknown_subsystem"};
		goto refuse;
	}
	n = snprintf(x->service, sizeof x->service, "%s/push", x->provider);
	if (n < 0 || (size_t)n >= sizeof x->service) {
		no = (inbound_why){.status = 404, .code = "exchange.unknown_subsystem"};
		goto refuse;
	}
	if (!(path = arena_alloc(req_arena(r), strlen(et) + strlen(ev) + 3))) {
		err = EGOV_ENOMEM;
		goto out;
	}
	snprintf(path, strlen(et) + strlen(ev) + 3, "/%s/%s", et, ev);
	x->path = path;
	x->content_type = ctype ? ctype : "";
	if ((err = xchg_take_request_body(x)))
		goto out;
	m = (inbound_msg){.client = req_header(r, "X-Road-Client"),
			  .service = x->service,
			  .method = x->method,
			  .path = x->path,
			  .content_type = x->content_type,
			  .rp = "",
			  .ds = "",
			  .purpose = "",
			  .body_sha256 = x->req_sha};
	if (m.client && exchange_id_valid(m.client, EXCHANGE_ID_SUBSYSTEM))
		snprintf(x->client, sizeof x->client, "%s", m.client);
	if (inbound_verify(r, x->cf, &m, now, &in, &no))
		goto refuse;
	if (strncmp(x->content_type, "application/json", 16) != 0) {
		no = (inbound_why){.status = 415, .code = "unsupported_media_type"};
		goto refuse;
	}
	/* Only pushes for what this subsystem subscribed to through this
	 * gateway (or an operator configured) go anywhere, and only to the
	 * URL recorded here. */
	snprintf(et_id, sizeof et_id, "%s/%s", x->client, et);
	if ((err = db_thread_conn(g->d, &c)))
		goto out;
	err = pubsub_push_url_get(c, x->provider, et_id, &url);
	if (err == EGOV_ENOTFOUND) {
		no = (inbound_why){.status = 404, .code = "pubsub.push_unknown", .audit = true};
		err = EGOV_OK;
		goto refuse;
	}
	if (err)
		goto out;
	if (inbound_accept(x->client, &in, now, &no))
		goto refuse;
	memcpy(x->message_id, in.message_id, sizeof x->message_id);
	memcpy(x->req_cert, in.signer_cert, sizeof x->req_cert);
	memcpy(x->req_sig, in.sig, sizeof x->req_sig);
	memcpy(x->req_at, in.signed_at, sizeof x->req_at);
	exchange_log_cert(x->req_cert, in.signer->pem);
	xchg_log_sign_certs(x->cf, x->provider);
	pubsub_push_received();
	req_defer(r);
	forward(x, url, ev);
	free(url);
	return EGOV_OK;

refuse:
	if (no.audit)
		push_refused(x, no.code);
	err = resp_problem(r, no.status, no.code, NULL, NULL);
out:
	free(url);
	xchg_free(x);
	return err;
}
