/*
 * gateway.h: the gateway role's data path as the module sees it
 * (docs/exchange.md, "Calling a service"): its route handlers, its start
 * and stop, its jobs. The gateway's files:
 *
 *   gateway.c    the room's settings, start and stop, the routes that are
 *                neither side (listClients at the root, the head hook)
 *   consumer.c   /r1/... on the main listener: checks the calling
 *                subsystem, signs, sends to the provider's gateway over
 *                mutual TLS, verifies the signed answer, logs, answers
 *   provider.c   /peer/v1/r1/... on the peer listener: verifies, checks
 *                the access right and the size, forwards to the back-end
 *                (or hands a pub/sub call to the room), signs, logs
 *   push.c       /peer/v1/push/... on the peer listener: a push from a
 *                room's gateway, verified as a call is, forwarded to the
 *                subscriber's push URL, answered signed and logged
 *   verify.c     the one verifier of a signed message that arrives
 *   inflight.c   an exchange in flight: bodies, signed answers, the
 *                message log and the body store job
 *   backends.c   the provider's back-end table, its reload job and
 *                `egov exchange backend ...`
 *   replay.c     the replay window, reloaded from the message log at start
 *   refusals.c   refusals written to the audit log by a job, off the
 *                request path
 *   meta.c       metaservices; metrics.c: /metrics figures
 */
#ifndef EGOV_EXCHANGE_GATEWAY_GATEWAY_H
#define EGOV_EXCHANGE_GATEWAY_GATEWAY_H

#include "core/blob.h"
#include "core/buf.h"
#include "core/db.h"
#include "core/http.h"
#include "core/jobs.h"
#include "exchange/exchange.h"

/* On a gateway: the back-ends, the replay window (from the message log on
 * d) and the room's settings; elsewhere nothing. d, cfg and blobs must
 * outlive the gateway. */
egov_err exchange_gateway_start(db *d, const egov_config *cfg, blob_store *blobs);
/* After its jobs stopped: writes the refusals and bodies still queued
 * (their exchanges are answered), frees the tables. */
void exchange_gateway_stop(void);
/* The gateway's jobs: back-end reloads, the body store, refusals. Each
 * does nothing before the gateway started. */
extern const job gateway_backends_job, gateway_bodies_job, gateway_refusals_job;

/* Route handlers (exchange.c's table): /r1/... (consumer side),
 * /peer/v1/r1/... (provider side, and the pub/sub rooms), /peer/v1/push/...
 * (pushes received), /listClients, and the head hook that applies a
 * service's max_body. */
egov_err exchange_consumer_call(req *r);
egov_err exchange_provider_call(req *r);
egov_err exchange_push_receive(req *r);
egov_err exchange_list_clients_root(req *r);
egov_err exchange_service_limit_head(req *r);

/* The figures for /metrics. */
egov_err exchange_metrics_write(buf *out);

/* The back-end table (IF NOT EXISTS), one of the module's migrations. */
extern const char exchange_backend_schema[];
/* `egov exchange backend set|list|remove ...` (argv[0] = "backend"): the
 * provider gateway's back-end URL per service. Returns the exit status. */
int exchange_gateway_command(int argc, char **argv, db *d);

#endif
