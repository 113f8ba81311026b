/*
 * gateway.c: the gateway room's settings, start and stop, its jobs, the
 * routes that belong to neither side (GovStack's listClients at the root
 * and the head hook that applies a service's body limit), and the checks
 * of a caller's request both the consumer side and the metaservices make
 * before anything is looked up: the client headers and the identifiers in
 * the path. The sides are in consumer.c, provider.c and push.c (gateway.h
 * lists them all).
 *
 * The room's settings are set by exchange_gateway_start() on a gateway
 * before the first request and read-only after; on another node they stay
 * empty and the gateway's routes answer 404.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "exchange/gateway/gateway_int.h"
#include "core/banned.h"

static gateway_room room;

const gateway_room *gateway_room_get(void)
{
	return &room;
}

/* The decoded segments of a {*rest} value, split in the request's arena. */
static size_t rest_parts(req *r, const char **parts, size_t max)
{
	const char *rest = req_param(r, "rest");
	char *copy = rest && *rest ? arena_strdup(req_arena(r), rest) : NULL;

	return copy ? exchange_split_rest(copy, parts, max) : 0;
}

/* The headers that name the caller, the GovStack IM specification's first. */
static const char *const client_headers[] = {"X-GovStack-Client", "X-Road-Client", "Information-Mediator-Client"};

bool gateway_client_header(req *r, const char **client, const char **field)
{
	const char *first = NULL, *h;
	size_t i;

	*client = NULL;
	*field = NULL;
	for (i = 0; i < sizeof client_headers / sizeof client_headers[0]; i++) {
		if (!(h = req_header(r, client_headers[i])))
			continue;
		/* Each one sent must name a subsystem, and all the same one:
		 * none of them wins over another. */
		if (!exchange_id_valid(h, EXCHANGE_ID_SUBSYSTEM) || (first && strcmp(first, h) != 0)) {
			*field = client_headers[i];
			return false;
		}
		first = h;
	}
	*client = first;
	return true;
}

bool gateway_path_ids_valid(const char *const *parts, size_t nparts, size_t nid)
{
	size_t i;

	for (i = 0; i < nparts && i < nid; i++)
		if (!exchange_id_part_valid(parts[i]))
			return false;
	return true;
}

egov_err exchange_gateway_start(db *d, const egov_config *cfg, blob_store *blobs)
{
	const exchange_config *xc = exchange_settings(cfg);
	db_conn *c;
	egov_err err;

	if (!exchange_is_gateway(cfg))
		return EGOV_OK;
	if ((err = exchange_peer_tls_setup(cfg))) {
		log_error("exchange.start", "cannot write the peer CA bundle from %s/pki", cfg->data_dir);
		return err;
	}
	if ((err = db_thread_conn(d, &c)) || (err = gateway_backends_load(c)))
		return err;
	if ((err = gateway_replay_preload(c, (int64_t)xc->clock_skew_s * 1000000))) {
		log_error("exchange.start", "cannot read recent message ids from the message log: %s",
			  db_conn_errmsg(c));
		return err;
	}
	room = (gateway_room){.d = d, .cfg = cfg, .blobs = blobs, .xc = xc};
	return EGOV_OK;
}

void exchange_gateway_stop(void)
{
	/* What the jobs left: bodies to store (their exchanges are then
	 * logged and answered), refusals to audit. */
	gateway_bodies_flush();
	gateway_refusals_flush();
	gateway_backends_clear();
	gateway_replay_clear();
	room = (gateway_room){0};
}

/* GovStack's listClients at the root, as an X-Road security server has it. */
egov_err exchange_list_clients_root(req *r)
{
	static const char *const parts[] = {"listClients"};
	bool handled = false;
	egov_err err;

	if (!room.d)
		return gateway_refuse(r, 404, "not_found", NULL, NULL);
	err = exchange_meta_answer(r, NULL, parts, 1, &handled);
	return handled ? err : gateway_refuse(r, 404, "not_found", NULL, NULL);
}

/* Head time, both sides (before the body is read): the service's
 * max_body in the configuration in force becomes the request's body
 * limit, so an oversized body is refused with 413
 * exchange.payload_too_large on its Content-Length without being read,
 * and a chunked one is cut at the limit. */
egov_err exchange_service_limit_head(req *r)
{
	const char *parts[6], *why = NULL, *cl = req_header(r, "Content-Length");
	char service[EXCHANGE_ID_MAX];
	const exchange_service *svc;
	exchange_conf *cf;

	if (!room.d || ((!cl || strcmp(cl, "0") == 0) && !req_header(r, "Transfer-Encoding")))
		return EGOV_OK; /* no body: nothing to limit */
	if (rest_parts(r, parts, 6) < 5 || !exchange_join_id(parts, 5, service) ||
	    !exchange_id_valid(service, EXCHANGE_ID_SERVICE))
		return EGOV_OK; /* the handler refuses it */
	if (!(cf = exchange_conf_get(&why)))
		return EGOV_OK;
	svc = exchange_conf_service(cf, service);
	if (svc && svc->max_body > 0) {
		req_body_limit(r, (size_t)svc->max_body, "exchange.payload_too_large");
		if (cl && strtoull(cl, NULL, 10) > (unsigned long long)svc->max_body)
			exchange_metrics_error("exchange.payload_too_large");
	}
	exchange_conf_put(cf);
	return EGOV_OK;
}
