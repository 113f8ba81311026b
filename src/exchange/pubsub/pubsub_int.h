/*
 * pubsub_int.h: the parts of publish/subscribe shared by its files (listed
 * in pubsub.h) and its unit tests.
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
#ifndef EGOV_EXCHANGE_PUBSUB_PUBSUB_INT_H
#define EGOV_EXCHANGE_PUBSUB_PUBSUB_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/db.h"
#include "core/json.h"
#include "exchange/pubsub/pubsub.h"
#include "exchange/wire/wire.h"

/* Subscription TTL (seconds an event stays deliverable) when none is
 * given: GovStack's default. */
#define PUBSUB_TTL_DEFAULT 3600

typedef enum pubsub_state {
	PUBSUB_PENDING = 0,
	PUBSUB_DELIVERED = 1,
	PUBSUB_EXPIRED = 2,
	PUBSUB_CANCELLED = 3,
} pubsub_state;

const char *pubsub_state_name(pubsub_state s);
/* The pending state as SQL text, for statements. */
#define PUBSUB_PENDING_SQL "0"

/* Whether url is an absolute http(s) URL without credentials, spaces or
 * control characters, at most PUBSUB_URL_MAX bytes. */
bool pubsub_url_valid(const char *url);

/* Delay before the retry after the attempts-th failed attempt (attempts
 * >= 1): retry_ms, doubled per further attempt, at most retry_max_s. */
int64_t pubsub_backoff_ms(int attempts, int retry_ms, int retry_max_s);

/* ---- storage (store.c, outbox.c) -------------------------------------------
 * Every function runs on the caller's connection; those that write more
 * than one row use their own transaction. */

/* The pub/sub tables alone as a list of migrations, for unit tests. */
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
egov_err pubsub_push_url_delete(db_conn *c, const char *subscriber, const char *event_type_id);
egov_err pubsub_push_url_each(db_conn *c, int (*fn)(void *ctx, const char *subscriber, const char *event_type_id,
						  const char *url),
			      void *ctx);

/* ---- statements the storage files share (store.c) ------------------------------ */

/* The columns pubsub_event_from_row() reads (alias e for the event). */
#define PUBSUB_EVENT_COLS "e.seq, e.id, e.provider, e.event_type, e.publisher, e.payload, e.created_us, e.cancelled"
/* Reads PUBSUB_EVENT_COLS starting at column col; e's payload malloc'd. */
egov_err pubsub_event_from_row(db_rows *r, int col, pubsub_event *e);
/* The time now as the tables keep it (RFC 3339, milliseconds). */
void pubsub_now(char out[32]);
/* Copies src ("" for NULL) into dst, cut to n - 1 bytes. */
void pubsub_copy(char *dst, size_t n, const char *src);
/* The one text sql selects with p (*out malloc'd); EGOV_ENOTFOUND if none. */
egov_err pubsub_text_of(db_conn *c, const char *sql, const db_param *p, int n, char **out);
/* Runs sql with p and stands *rows on its first row (free it);
 * EGOV_ENOTFOUND (and *rows NULL) when there is none. */
egov_err pubsub_row(db_conn *c, const char *sql, const db_param *p, int n, db_rows **rows);
/* Runs sql with p; EGOV_ENOTFOUND when it changed no row. */
egov_err pubsub_change(db_conn *c, const char *sql, const db_param *p, int n);
/* Runs fn in a transaction on c, rolled back when fn fails. */
egov_err pubsub_in_tx(db_conn *c, egov_err (*fn)(db_conn *c, void *ctx), void *ctx);

/* Writes the EventItem of e (with_status: this room's delivery figures
 * too), as the room answers it and as a push carries it. */
void pubsub_event_json(jw *w, const pubsub_event *e, bool with_status);

#endif
