/*
 * exchange_pubsub_int.h: the parts of publish/subscribe shared by its files
 * and its unit tests.
 *
 *   exchange_pubsub_store.c  tables, migrations and every statement: event
 *                            types, subscriptions, events, the delivery
 *                            outbox, push URLs (subscriber side)
 *   exchange_pubsub.c        the room (GovStack IM PubSub calls handed over
 *                            by the provider gateway), the module
 *                            descriptor, start hook and CLI
 *   exchange_pubsub_push.c   the delivery thread (provider side) and the
 *                            peer route that receives pushes (subscriber
 *                            side)
 *
 * Outbox invariants: one row per (subscription, event), made in the same
 * transaction as the event. A row is 'pending' until it is 'delivered'
 * (a 2xx from the subscriber's back-end, or a pull confirmed), 'expired'
 * (the subscription's TTL after the event passed) or 'cancelled' (event
 * or subscription deleted); final states never change. A claim counts the
 * attempt and leases the row (inflight = 1, next_attempt_us = lease end)
 * in one transaction before any byte leaves; the outcome clears inflight.
 * After a crash the lease runs out, and a restart clears it at once, so
 * nothing claimed is lost: at least once.
 */
#ifndef EGOV_EXCHANGE_PUBSUB_INT_H
#define EGOV_EXCHANGE_PUBSUB_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/db.h"
#include "core/json.h"
#include "exchange/exchange_int.h"

/* An event type name: one identifier part (1..64 of [A-Za-z0-9_.-]). */
#define PUBSUB_NAME_MAX EXCHANGE_PART_MAX
/* Event ids are message ids: they travel in a URL path segment, so
 * 1..PUBSUB_EVENT_ID_MAX of [A-Za-z0-9_.:-]. */
#define PUBSUB_EVENT_ID_MAX 128
/* An event's JSON, and an event type's schema (bytes). */
#define PUBSUB_EVENT_MAX (1024 * 1024)
#define PUBSUB_SCHEMA_MAX (256 * 1024)
/* Subscription TTL (seconds an event stays deliverable): GovStack's
 * default, and at most 30 days. */
#define PUBSUB_TTL_DEFAULT 3600
#define PUBSUB_TTL_MAX (30 * 86400)
/* Longest push URL a subscriber may configure. */
#define PUBSUB_URL_MAX 2048

typedef enum pubsub_state {
	PUBSUB_PENDING = 0,
	PUBSUB_DELIVERED = 1,
	PUBSUB_EXPIRED = 2,
	PUBSUB_CANCELLED = 3,
} pubsub_state;

const char *pubsub_state_name(pubsub_state s);

/* Whether s is an event type name / an event id as above. */
bool pubsub_name_valid(const char *s);
bool pubsub_event_id_valid(const char *s);
/* Whether url is an absolute http(s) URL without credentials, spaces or
 * control characters, at most PUBSUB_URL_MAX bytes. */
bool pubsub_url_valid(const char *url);

/* Delay before the retry after the attempts-th failed attempt (attempts
 * >= 1): retry_ms, doubled per further attempt, at most retry_max_s. */
int64_t pubsub_backoff_ms(int attempts, int retry_ms, int retry_max_s);

/* ---- storage (exchange_pubsub_store.c) -------------------------------------
 * Every function runs on the caller's connection; those that write more
 * than one row use their own transaction. */

/* The pub/sub tables (IF NOT EXISTS), which the exchange module's
 * migrations create; pubsub_migrations() wraps them as a list of their own
 * for unit tests that need these tables alone. */
extern const char pubsub_schema_sqlite[], pubsub_schema_postgres[];
const db_migration *pubsub_migrations(size_t *n);

/* EGOV_ECONFLICT if (provider, name) exists. schema is JSON object text. */
egov_err pubsub_event_type_create(db_conn *c, const char *provider, const char *name, const char *schema);
/* *schema (malloc'd) gets the schema; EGOV_ENOTFOUND if unknown. */
egov_err pubsub_event_type_get(db_conn *c, const char *provider, const char *name, char **schema);
/* Deletes the type, its subscriptions, and cancels its pending deliveries.
 * EGOV_ENOTFOUND if unknown. */
egov_err pubsub_event_type_delete(db_conn *c, const char *provider, const char *name);
/* Writes a JSON array of the names of provider's event types; *n = count. */
egov_err pubsub_event_type_list(db_conn *c, const char *provider, jw *w, int *n);

typedef struct pubsub_sub {
	char id[37];
	char provider[EXCHANGE_ID_MAX];
	char event_type[PUBSUB_NAME_MAX + 1];
	char subscriber[EXCHANGE_ID_MAX];
	bool push;      /* else pull */
	int64_t ttl_s;  /* seconds an event stays deliverable */
	bool fifo;      /* deliver in publishing order, one at a time */
} pubsub_sub;

/* Creates s (s->id is made). EGOV_ENOTFOUND if the event type is unknown,
 * EGOV_ECONFLICT if subscriber already subscribes to it. Only events
 * published afterwards are delivered. */
egov_err pubsub_sub_create(db_conn *c, pubsub_sub *s);
/* EGOV_ENOTFOUND if subscriber does not subscribe to the event type. */
egov_err pubsub_sub_get(db_conn *c, const char *provider, const char *event_type, const char *subscriber,
			pubsub_sub *out);
/* Changes mode, TTL and FIFO of the subscription named by s's provider,
 * event type and subscriber. Pending deliveries follow the new mode.
 * EGOV_ENOTFOUND if none. */
egov_err pubsub_sub_update(db_conn *c, const pubsub_sub *s);
/* Deletes the subscription and cancels its pending deliveries. */
egov_err pubsub_sub_delete(db_conn *c, const char *provider, const char *event_type, const char *subscriber);
/* Calls fn for each subscription of subscriber in provider's room. */
egov_err pubsub_sub_each(db_conn *c, const char *provider, const char *subscriber,
			 int (*fn)(void *ctx, const pubsub_sub *s), void *ctx);

/* Stores an event and one pending delivery per subscription of its type,
 * in one transaction. payload is JSON text. EGOV_ENOTFOUND if the event
 * type is unknown, EGOV_ECONFLICT if (provider, id) exists. *seq
 * (optional) gets the event's sequence number, *fanout (optional) the
 * number of deliveries made. */
egov_err pubsub_event_publish(db_conn *c, const char *provider, const char *event_type, const char *publisher,
			      const char *id, const char *payload, int64_t now_us, int64_t *seq, int *fanout);

typedef struct pubsub_event {
	int64_t seq;
	char id[PUBSUB_EVENT_ID_MAX + 1];
	char provider[EXCHANGE_ID_MAX];
	char event_type[PUBSUB_NAME_MAX + 1];
	char publisher[EXCHANGE_ID_MAX];
	char *payload; /* malloc'd JSON text */
	int64_t created_us;
	bool cancelled;
	/* deliveries by state (pubsub_event_get only) */
	int64_t count[4];
} pubsub_event;
void pubsub_event_release(pubsub_event *e);

/* EGOV_ENOTFOUND if no such event of that type in provider's room. */
egov_err pubsub_event_get(db_conn *c, const char *provider, const char *event_type, const char *id,
			  pubsub_event *out);
/* Stops the event: its pending deliveries become cancelled. */
egov_err pubsub_event_cancel(db_conn *c, const char *provider, const char *event_type, const char *id);

/* One claimed delivery (or the next pull). */
typedef struct pubsub_delivery {
	char sub_id[37];
	char subscriber[EXCHANGE_ID_MAX];
	int attempts; /* including this one */
	pubsub_event ev;
} pubsub_delivery;
void pubsub_delivery_release(pubsub_delivery *d);

/* Claims up to max due push deliveries (pending, not in flight,
 * next_attempt_us <= now, not expired, the subscription in push mode, and
 * for FIFO subscriptions only the oldest pending one): counts the attempt
 * and leases each until now + lease_us. out[] must hold max; *n = count.
 * Release each with pubsub_delivery_release(). */
egov_err pubsub_outbox_claim(db_conn *c, int64_t now_us, int64_t lease_us, int max, pubsub_delivery *out, int *n);
/* The outcome of a claimed delivery. */
egov_err pubsub_outbox_delivered(db_conn *c, const char *sub_id, int64_t seq);
egov_err pubsub_outbox_retry(db_conn *c, const char *sub_id, int64_t seq, int64_t next_us, const char *why);
/* Marks pending deliveries past their expiry as expired; *n (optional)
 * gets how many. */
egov_err pubsub_outbox_expire(db_conn *c, int64_t now_us, int64_t *n);
/* After a restart: every lease this database holds ends now. */
egov_err pubsub_outbox_recover(db_conn *c, int64_t now_us, int64_t *n);
/* Retention: deletes events published before before_us whose deliveries
 * have all ended, with those deliveries; *n (optional) gets how many
 * events. */
egov_err pubsub_purge(db_conn *c, int64_t before_us, int64_t *n);
/* Counts of deliveries by state (index pubsub_state). */
egov_err pubsub_outbox_counts(db_conn *c, int64_t count[4]);
/* When the earliest pending push delivery falls due (*found false if none). */
egov_err pubsub_outbox_next_due(db_conn *c, int64_t *next_us, bool *found);

/* Pull: the oldest pending delivery of subscriber's subscription to the
 * event type. EGOV_ECONFLICT if there is no pull subscription,
 * EGOV_ENOTFOUND if nothing is pending. */
egov_err pubsub_pull_next(db_conn *c, const char *provider, const char *event_type, const char *subscriber,
			  int64_t now_us, pubsub_delivery *out);
/* Pull: acknowledges event_id. EGOV_ECONFLICT without a pull subscription,
 * EGOV_ENOTFOUND if that event is not pending for it. */
egov_err pubsub_pull_confirm(db_conn *c, const char *provider, const char *event_type, const char *subscriber,
			     const char *event_id);

/* Subscriber side: where this gateway forwards pushes for its subsystem
 * subscriber of event type event_type_id (PROVIDER_SUBSYSTEM/NAME). */
egov_err pubsub_push_url_set(db_conn *c, const char *subscriber, const char *event_type_id, const char *url);
/* *url malloc'd; EGOV_ENOTFOUND if none is configured. */
egov_err pubsub_push_url_get(db_conn *c, const char *subscriber, const char *event_type_id, char **url);
egov_err pubsub_push_url_delete(db_conn *c, const char *subscriber, const char *event_type_id);
egov_err pubsub_push_url_each(db_conn *c, int (*fn)(void *ctx, const char *subscriber, const char *event_type_id,
						  const char *url),
			      void *ctx);

/* ---- the room (exchange_pubsub.c) ------------------------------------------
 * exchange_pubsub_handle() on an explicit connection, for tests and the
 * public entry point. Fills *status and out as described there; the
 * answer's type is JSON or problem+json (returned in *content_type). cf
 * is the configuration whose event_types list the registered event types;
 * NULL skips that check. */
egov_err pubsub_handle_on(db_conn *c, const exchange_conf *cf, const char *provider, const char *client, const char *service_code,
			  const char *method, const char *path, const char *message_id, const void *body,
			  size_t len, int *status, buf *out, const char **content_type);

/* ---- delivery (exchange_pubsub_push.c) ------------------------------------- */

/* The exchange module's start hook for pub/sub: on a gateway, starts
 * delivery on the node's database. */
egov_err pubsub_start(const egov_config *cfg);
/* Starts the delivery thread on its own connection of d (gateway role). */
egov_err pubsub_delivery_start(db *d, const egov_config *cfg);
void pubsub_delivery_stop(void);
/* Delivery's /metrics families, once it was started in this process. */
egov_err pubsub_push_metrics(buf *out);
/* Makes the delivery thread look at the outbox now (after a publish). */
void pubsub_delivery_wake(void);
/* The peer route that receives pushes (subscriber side). */
egov_err pubsub_push_receive(req *r);

#endif
