/*
 * pubsub.h: GovStack Information Mediator publish/subscribe, as the
 * gateway and the module use it (docs/exchange.md, "Publish / subscribe").
 * The room's own parts are in pubsub_int.h:
 *
 *   store.c     event types, subscriptions and events
 *   outbox.c    the delivery outbox (claimed through the kernel's lease
 *               helper), pull, and the subscriber side's push URLs
 *   room.c      the room's operations: a route table of their own, matched
 *               by the kernel's router once the gateway verified a call
 *   delivery.c  the push delivery job (provider side)
 *   cli.c       `egov exchange pubsub ...`
 *
 * The gateway verifies a call to the reserved services (TLS peer,
 * signature, replay, access right), hands it to the room, and signs and
 * logs the answer; it also receives the pushes (gateway/push.c). The room
 * keeps no connection of its own: callers pass theirs.
 */
#ifndef EGOV_EXCHANGE_PUBSUB_PUBSUB_H
#define EGOV_EXCHANGE_PUBSUB_PUBSUB_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/db.h"
#include "core/jobs.h"
#include "exchange/exchange.h"

/* Whether SERVICE code (the 5th part of a service id) is one of the
 * GovStack IM PubSub prefixes this gateway answers itself ("api", "pub",
 * "pull") instead of forwarding to a back-end. */
bool exchange_pubsub_reserved(const char *service_code);

/* A verified call to a room: provider is the subsystem that owns it,
 * client the calling subsystem, path what follows the service code
 * (decoded, e.g. "/v1/eventType"). */
typedef struct pubsub_call {
	const char *provider, *client, *service_code, *method, *path, *message_id;
	const void *body;
	size_t len;
} pubsub_call;

/* The room's answer: status, body (in out, which the caller owns), its
 * type (JSON or problem+json, NULL for none), and on a 405 the methods
 * the path has ("GET, HEAD, POST"), for the Allow header. */
typedef struct pubsub_answer {
	int status;
	buf *out;
	const char *content_type;
	char allow[64];
} pubsub_answer;

/* Answers a call on connection c (it may touch the database: run it on
 * the blocking pool). cf is the configuration whose event_types list the
 * registered event types; NULL skips that check (tests). Fills *a; an
 * error is returned only when it is no caller's fault (EGOV_EINVAL for a
 * call that is not a room's, a database error). */
egov_err pubsub_room_answer(db_conn *c, const exchange_conf *cf, const pubsub_call *k, pubsub_answer *a);

/* The consumer gateway calls this before it forwards a call of its local
 * client to a reserved pub/sub service of provider. A subscription (POST
 * or PATCH /v1/subs/{eventType} on service code "api") that carries a push
 * URL (the client's X-Egov-Push-Url header: where its back-end takes the
 * pushes) records it here, on the subscriber's side: the only place a push
 * is ever forwarded to. push_url NULL or another call: nothing to do,
 * EGOV_OK. EGOV_EINVAL for a URL that is not a plain http(s) URL (answer
 * 400 pubsub.push_url_invalid, field X-Egov-Push-Url). */
egov_err exchange_pubsub_consumer_note(db_conn *c, const char *client, const char *provider,
				       const char *service_code, const char *method, const char *path,
				       const char *push_url);
/* Subscriber side: where this gateway forwards pushes for its subsystem
 * subscriber of event type event_type_id (PROVIDER_SUBSYSTEM/NAME). *url
 * malloc'd; EGOV_ENOTFOUND if none is configured. */
egov_err pubsub_push_url_get(db_conn *c, const char *subscriber, const char *event_type_id, char **url);
/* Whether s is an event type name (one identifier part) or an event id
 * (1..PUBSUB_EVENT_ID_MAX of [A-Za-z0-9_.:-]). */
bool pubsub_name_valid(const char *s);
bool pubsub_event_id_valid(const char *s);

/* Push delivery on a gateway: readies it with the node's settings (the
 * job does nothing before), and forgets it after the job stopped. */
egov_err pubsub_delivery_start(const egov_config *cfg);
void pubsub_delivery_stop(void);
/* The delivery job: claims due pushes and sends them; woken by a publish
 * and by each answer. */
extern const job pubsub_delivery_job;
/* Delivery's /metrics families, once it was started in this process. */
egov_err pubsub_push_metrics(buf *out);
/* Counts a push this gateway forwarded to a subscriber's back-end. */
void pubsub_push_received(void);

/* The pub/sub tables (IF NOT EXISTS), which the exchange module's
 * migrations create. */
extern const char pubsub_schema_sqlite[], pubsub_schema_postgres[];

/* `egov exchange pubsub ARGS`. Returns the exit status. */
int exchange_pubsub_command(int argc, char **argv, db *d);

#endif
