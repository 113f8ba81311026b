/*
 * outbox.c: the delivery outbox of the provider gateway's rooms (push
 * deliveries claimed through the kernel's lease helper, their outcomes,
 * expiry and retention), pulling, and the subscriber gateway's push URLs.
 * The outbox invariants are in pubsub_int.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/lease.h"
#include "exchange/pubsub/pubsub_int.h"
#include "core/banned.h"

/* ---- the outbox ------------------------------------------------------------- */

void pubsub_delivery_release(pubsub_delivery *d)
{
	pubsub_event_release(&d->ev);
}

int64_t pubsub_backoff_ms(int attempts, int retry_ms, int retry_max_s)
{
	int64_t d = retry_ms > 0 ? retry_ms : 1, cap = (int64_t)(retry_max_s > 0 ? retry_max_s : 1) * 1000;
	int i;

	for (i = 1; i < attempts && d < cap; i++)
		d *= 2;
	return d < cap ? d : cap;
}

#define DELIVERY_COLS "o.sub_id, s.subscriber, o.attempts, " PUBSUB_EVENT_COLS
#define DELIVERY_FROM                                                                                          \
	" FROM exchange_pubsub_outbox o JOIN exchange_pubsub_sub s ON s.id = o.sub_id"                         \
	" JOIN exchange_pubsub_event e ON e.seq = o.seq"

static egov_err delivery_from_row(db_rows *r, pubsub_delivery *d)
{
	*d = (pubsub_delivery){0};
	pubsub_copy(d->sub_id, sizeof d->sub_id, db_rows_text(r, 0));
	pubsub_copy(d->subscriber, sizeof d->subscriber, db_rows_text(r, 1));
	d->attempts = (int)db_rows_int(r, 2) + 1;
	return pubsub_event_from_row(r, 3, &d->ev);
}

/* Due push deliveries: pending, not in flight, not expired, of a push
 * subscription, and for a FIFO subscription only the oldest pending one,
 * so the next event waits until the one before it is delivered or has
 * expired. The claim leases a row (in flight until now + lease) and
 * counts the attempt before any byte leaves. */
static const lease_spec outbox_lease = {
	.table = "exchange_pubsub_outbox",
	.alias = "o",
	.join = "JOIN exchange_pubsub_sub s ON s.id = o.sub_id JOIN exchange_pubsub_event e ON e.seq = o.seq",
	.key = "sub_id, seq",
	.due = "next_attempt_us",
	.attempts = "attempts",
	.pending = "o.state = " PUBSUB_PENDING_SQL " AND o.inflight = 0 AND o.expires_us > ? AND s.is_push = 1"
		   " AND (s.fifo = 0 OR NOT EXISTS (SELECT 1 FROM exchange_pubsub_outbox p WHERE p.sub_id = o.sub_id"
		   " AND p.state = " PUBSUB_PENDING_SQL " AND p.seq < o.seq))",
	.order = "o.next_attempt_us, o.seq",
	.columns = DELIVERY_COLS,
	.set = "inflight = 1",
};

typedef struct claim_ctx {
	pubsub_delivery *out;
	int max, got;
} claim_ctx;

static egov_err take_claimed(void *ctx, db_rows *row, int64_t attempt)
{
	claim_ctx *k = ctx;
	pubsub_delivery *d;
	egov_err err;

	if (k->got >= k->max)
		return EGOV_EINTERNAL;
	d = &k->out[k->got];
	if ((err = delivery_from_row(row, d))) {
		pubsub_delivery_release(d);
		return err;
	}
	d->attempts = (int)attempt;
	k->got++;
	return EGOV_OK;
}

egov_err pubsub_outbox_claim(db_conn *c, int64_t now_us, int64_t lease_us, int max, pubsub_delivery *out, int *n)
{
	claim_ctx k = {.out = out, .max = max};
	int claimed = 0, i;
	egov_err err;

	*n = 0;
	err = lease_claim(c, &outbox_lease, now_us, lease_us, max, (db_param[]){DBP_I(now_us)}, 1, take_claimed, &k,
			  &claimed);
	if (err) {
		/* Nothing was claimed: what the callback kept goes. */
		for (i = 0; i < k.got; i++)
			pubsub_delivery_release(&out[i]);
		return err;
	}
	*n = claimed;
	return EGOV_OK;
}

egov_err pubsub_outbox_delivered(db_conn *c, const char *sub_id, int64_t seq)
{
	char now[32];

	pubsub_now(now);
	return db_exec(c, "UPDATE exchange_pubsub_outbox SET state = 1, inflight = 0, done_at = ?, last_error = NULL"
			  " WHERE sub_id = ? AND seq = ? AND state = " PUBSUB_PENDING_SQL,
		       (db_param[]){DBP_S(now), DBP_S(sub_id), DBP_I(seq)}, 3, NULL);
}

egov_err pubsub_outbox_retry(db_conn *c, const char *sub_id, int64_t seq, int64_t next_us, const char *why)
{
	db_param p[4] = {DBP_I(next_us), DBP_S(why ? why : ""), DBP_S(sub_id), DBP_I(seq)};

	return db_exec(c, "UPDATE exchange_pubsub_outbox SET inflight = 0, next_attempt_us = ?, last_error = ?"
			  " WHERE sub_id = ? AND seq = ? AND state = " PUBSUB_PENDING_SQL,
		       p, 4, NULL);
}

egov_err pubsub_outbox_expire(db_conn *c, int64_t now_us, int64_t *n)
{
	char now[32];
	db_param p[2];
	int64_t one = 0;
	bool found = false;
	egov_err err;

	if (n)
		*n = 0;
	p[0] = DBP_I(now_us);
	if ((err = db_query_int(c, "SELECT 1 FROM exchange_pubsub_outbox WHERE state = " PUBSUB_PENDING_SQL
				   " AND inflight = 0 AND expires_us <= ? LIMIT 1",
				p, 1, &one, &found)) ||
	    !found)
		return err;
	pubsub_now(now);
	p[0] = DBP_S(now);
	p[1] = DBP_I(now_us);
	/* A delivery in flight is left to its outcome. */
	return db_exec(c, "UPDATE exchange_pubsub_outbox SET state = 2, done_at = ?"
			  " WHERE state = " PUBSUB_PENDING_SQL " AND inflight = 0 AND expires_us <= ?",
		       p, 2, n);
}

egov_err pubsub_outbox_recover(db_conn *c, int64_t now_us, int64_t *n)
{
	db_param p[1] = {DBP_I(now_us)};

	return db_exec(c, "UPDATE exchange_pubsub_outbox SET inflight = 0, next_attempt_us = ?"
			  " WHERE state = " PUBSUB_PENDING_SQL " AND inflight = 1",
		       p, 1, n);
}

egov_err pubsub_outbox_counts(db_conn *c, int64_t count[4])
{
	db_rows *rows = NULL;
	bool has = false;
	egov_err err;

	memset(count, 0, 4 * sizeof count[0]);
	if ((err = db_query(c, "SELECT state, COUNT(*) FROM exchange_pubsub_outbox GROUP BY state", NULL, 0, &rows)))
		goto out;
	while (!(err = db_rows_next(rows, &has)) && has) {
		int64_t st = db_rows_int(rows, 0);
		if (st >= 0 && st < 4)
			count[st] = db_rows_int(rows, 1);
	}
out:
	db_rows_free(rows);
	return err;
}

egov_err pubsub_outbox_next_due(db_conn *c, int64_t *next_us, bool *found)
{
	db_rows *rows = NULL;
	bool has = false;
	egov_err err;

	*found = false;
	if ((err = db_query(c, "SELECT MIN(o.next_attempt_us) FROM exchange_pubsub_outbox o"
			       " JOIN exchange_pubsub_sub s ON s.id = o.sub_id"
			       " WHERE o.state = " PUBSUB_PENDING_SQL " AND s.is_push = 1",
			    NULL, 0, &rows)) ||
	    (err = db_rows_next(rows, &has)))
		goto out;
	if (has && !db_rows_isnull(rows, 0)) {
		*next_us = db_rows_int(rows, 0);
		*found = true;
	}
out:
	db_rows_free(rows);
	return err;
}

egov_err pubsub_purge(db_conn *c, int64_t before_us, int64_t *n)
{
	db_param p[1] = {DBP_I(before_us)};
	bool open = false;
	egov_err err;

	if ((err = db_begin(c)))
		goto out;
	open = true;
	if ((err = db_exec(c, "DELETE FROM exchange_pubsub_outbox WHERE state <> " PUBSUB_PENDING_SQL " AND seq IN ("
			      "SELECT seq FROM exchange_pubsub_event WHERE created_us < ?)",
			   p, 1, NULL)))
		goto out;
	if ((err = db_exec(c, "DELETE FROM exchange_pubsub_event WHERE created_us < ? AND NOT EXISTS ("
			      "SELECT 1 FROM exchange_pubsub_outbox o WHERE o.seq = exchange_pubsub_event.seq)",
			   p, 1, n)))
		goto out;
	err = db_commit(c);
	open = false;
out:
	if (open)
		db_rollback(c);
	return err;
}

/* ---- pull -------------------------------------------------------------------- */

static egov_err pull_sub(db_conn *c, const char *provider, const char *event_type, const char *subscriber,
			 pubsub_sub *s)
{
	egov_err err = pubsub_sub_get(c, provider, event_type, subscriber, s);

	if (err == EGOV_ENOTFOUND || (!err && s->push))
		err = EGOV_ECONFLICT;
	return err;
}

egov_err pubsub_pull_next(db_conn *c, const char *provider, const char *event_type, const char *subscriber,
			  int64_t now_us, pubsub_delivery *out)
{
	pubsub_sub s;
	db_rows *rows = NULL;
	egov_err err;

	*out = (pubsub_delivery){0};
	if ((err = pull_sub(c, provider, event_type, subscriber, &s)) ||
	    (err = pubsub_row(c,
			      "SELECT " DELIVERY_COLS DELIVERY_FROM " WHERE o.sub_id = ? AND o.state = " PUBSUB_PENDING_SQL
			      " AND o.expires_us > ? ORDER BY o.seq LIMIT 1",
			      (db_param[]){DBP_S(s.id), DBP_I(now_us)}, 2, &rows)) ||
	    (err = delivery_from_row(rows, out)))
		goto out;
	db_rows_free(rows);
	rows = NULL;
	/* Counted, so the operator sees how often a puller fetched it. */
	err = db_exec(c, "UPDATE exchange_pubsub_outbox SET attempts = attempts + 1 WHERE sub_id = ? AND seq = ?",
		      (db_param[]){DBP_S(out->sub_id), DBP_I(out->ev.seq)}, 2, NULL);
out:
	db_rows_free(rows);
	if (err)
		pubsub_delivery_release(out);
	return err;
}

egov_err pubsub_pull_confirm(db_conn *c, const char *provider, const char *event_type, const char *subscriber,
			     const char *event_id)
{
	pubsub_sub s;
	char now[32];
	egov_err err;

	if ((err = pull_sub(c, provider, event_type, subscriber, &s)))
		return err;
	pubsub_now(now);
	return pubsub_change(c, "UPDATE exchange_pubsub_outbox SET state = 1, done_at = ?, last_error = NULL"
				" WHERE sub_id = ? AND state = " PUBSUB_PENDING_SQL " AND seq = (SELECT seq FROM"
				" exchange_pubsub_event WHERE provider = ? AND event_type = ? AND id = ?)",
			     (db_param[]){DBP_S(now), DBP_S(s.id), DBP_S(provider), DBP_S(event_type), DBP_S(event_id)}, 5);
}

/* ---- push URLs (subscriber side) ---------------------------------------------- */

egov_err pubsub_push_url_set(db_conn *c, const char *subscriber, const char *event_type_id, const char *url)
{
	char now[32];

	pubsub_now(now);
	return db_exec(c, "INSERT INTO exchange_pubsub_push_url (subscriber, event_type, url, updated_at)"
			  " VALUES (?, ?, ?, ?) ON CONFLICT (subscriber, event_type)"
			  " DO UPDATE SET url = excluded.url, updated_at = excluded.updated_at",
		       (db_param[]){DBP_S(subscriber), DBP_S(event_type_id), DBP_S(url), DBP_S(now)}, 4, NULL);
}

egov_err pubsub_push_url_get(db_conn *c, const char *subscriber, const char *event_type_id, char **url)
{
	return pubsub_text_of(c, "SELECT url FROM exchange_pubsub_push_url WHERE subscriber = ? AND event_type = ?",
			      (db_param[]){DBP_S(subscriber), DBP_S(event_type_id)}, 2, url);
}

egov_err pubsub_push_url_delete(db_conn *c, const char *subscriber, const char *event_type_id)
{
	return pubsub_change(c, "DELETE FROM exchange_pubsub_push_url WHERE subscriber = ? AND event_type = ?",
			     (db_param[]){DBP_S(subscriber), DBP_S(event_type_id)}, 2);
}

egov_err pubsub_push_url_each(db_conn *c, int (*fn)(void *ctx, const char *subscriber, const char *event_type_id,
						  const char *url),
			      void *ctx)
{
	db_rows *rows = NULL;
	bool has = false;
	egov_err err;

	if ((err = db_query(c, "SELECT subscriber, event_type, url FROM exchange_pubsub_push_url"
			       " ORDER BY subscriber, event_type",
			    NULL, 0, &rows)))
		goto out;
	while (!(err = db_rows_next(rows, &has)) && has)
		if (fn(ctx, db_rows_text(rows, 0), db_rows_text(rows, 1), db_rows_text(rows, 2)))
			break;
out:
	db_rows_free(rows);
	return err;
}
