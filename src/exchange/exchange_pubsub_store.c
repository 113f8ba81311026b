/*
 * exchange_pubsub_store.c: publish/subscribe storage. The provider
 * gateway's room (event types, subscriptions, events and the delivery
 * outbox) and the subscriber gateway's push URLs. The outbox invariants
 * are in exchange_pubsub_int.h; every statement that moves a delivery on
 * requires state = pending, so a final state never changes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"
#include "exchange/exchange_pubsub_int.h"
#include "core/banned.h"

#define ST_PENDING "0"

/* IF NOT EXISTS: the exchange module's own migrations (exchange.c) create
 * these tables as one of their versions, on databases where an earlier
 * release had already made them under a migration of their own. */
const char pubsub_schema_sqlite[] = "CREATE TABLE IF NOT EXISTS exchange_pubsub_event_type ("
	" provider TEXT NOT NULL, name TEXT NOT NULL, json_schema TEXT NOT NULL,"
	" created_at TEXT NOT NULL, PRIMARY KEY (provider, name));"
	"CREATE TABLE IF NOT EXISTS exchange_pubsub_sub ("
	" id TEXT PRIMARY KEY, provider TEXT NOT NULL, event_type TEXT NOT NULL,"
	" subscriber TEXT NOT NULL, is_push INTEGER NOT NULL, ttl_s BIGINT NOT NULL,"
	" fifo INTEGER NOT NULL, created_at TEXT NOT NULL,"
	" UNIQUE (provider, event_type, subscriber));"
	"CREATE TABLE IF NOT EXISTS exchange_pubsub_event ("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, provider TEXT NOT NULL,"
	" event_type TEXT NOT NULL, publisher TEXT NOT NULL, payload TEXT NOT NULL,"
	" created_us BIGINT NOT NULL, cancelled INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE (provider, id));"
	"CREATE TABLE IF NOT EXISTS exchange_pubsub_outbox ("
	" sub_id TEXT NOT NULL, seq BIGINT NOT NULL, state INTEGER NOT NULL DEFAULT 0,"
	" attempts INTEGER NOT NULL DEFAULT 0, inflight INTEGER NOT NULL DEFAULT 0,"
	" next_attempt_us BIGINT NOT NULL, expires_us BIGINT NOT NULL, last_error TEXT,"
	" done_at TEXT, PRIMARY KEY (sub_id, seq));"
	"CREATE INDEX IF NOT EXISTS exchange_pubsub_outbox_due ON exchange_pubsub_outbox (next_attempt_us)"
	" WHERE state = 0;"
	"CREATE INDEX IF NOT EXISTS exchange_pubsub_outbox_seq ON exchange_pubsub_outbox (seq);"
	"CREATE TABLE IF NOT EXISTS exchange_pubsub_push_url ("
	" subscriber TEXT NOT NULL, event_type TEXT NOT NULL, url TEXT NOT NULL,"
	" updated_at TEXT NOT NULL, PRIMARY KEY (subscriber, event_type))";
const char pubsub_schema_postgres[] = "CREATE TABLE IF NOT EXISTS exchange_pubsub_event_type ("
	" provider TEXT NOT NULL, name TEXT NOT NULL, json_schema TEXT NOT NULL,"
	" created_at TEXT NOT NULL, PRIMARY KEY (provider, name));"
	"CREATE TABLE IF NOT EXISTS exchange_pubsub_sub ("
	" id TEXT PRIMARY KEY, provider TEXT NOT NULL, event_type TEXT NOT NULL,"
	" subscriber TEXT NOT NULL, is_push INTEGER NOT NULL, ttl_s BIGINT NOT NULL,"
	" fifo INTEGER NOT NULL, created_at TEXT NOT NULL,"
	" UNIQUE (provider, event_type, subscriber));"
	"CREATE TABLE IF NOT EXISTS exchange_pubsub_event ("
	" seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL, provider TEXT NOT NULL,"
	" event_type TEXT NOT NULL, publisher TEXT NOT NULL, payload TEXT NOT NULL,"
	" created_us BIGINT NOT NULL, cancelled INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE (provider, id));"
	"CREATE TABLE IF NOT EXISTS exchange_pubsub_outbox ("
	" sub_id TEXT NOT NULL, seq BIGINT NOT NULL, state INTEGER NOT NULL DEFAULT 0,"
	" attempts INTEGER NOT NULL DEFAULT 0, inflight INTEGER NOT NULL DEFAULT 0,"
	" next_attempt_us BIGINT NOT NULL, expires_us BIGINT NOT NULL, last_error TEXT,"
	" done_at TEXT, PRIMARY KEY (sub_id, seq));"
	"CREATE INDEX IF NOT EXISTS exchange_pubsub_outbox_due ON exchange_pubsub_outbox (next_attempt_us)"
	" WHERE state = 0;"
	"CREATE INDEX IF NOT EXISTS exchange_pubsub_outbox_seq ON exchange_pubsub_outbox (seq);"
	"CREATE TABLE IF NOT EXISTS exchange_pubsub_push_url ("
	" subscriber TEXT NOT NULL, event_type TEXT NOT NULL, url TEXT NOT NULL,"
	" updated_at TEXT NOT NULL, PRIMARY KEY (subscriber, event_type))";

static const db_migration migrations[] = {
	{.version = 1, .name = "pubsub", .sql_sqlite = pubsub_schema_sqlite, .sql_postgres = pubsub_schema_postgres},
};

const db_migration *pubsub_migrations(size_t *n)
{
	*n = sizeof migrations / sizeof migrations[0];
	return migrations;
}

const char *pubsub_state_name(pubsub_state s)
{
	static const char *const names[] = {"pending", "delivered", "expired", "cancelled"};
	return (unsigned)s < 4 ? names[s] : "unknown";
}

static void now3339(char out[32])
{
	time_format_rfc3339(time_now_us(), 3, out);
}

static void copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

/* ---- event types ------------------------------------------------------------ */

egov_err pubsub_event_type_create(db_conn *c, const char *provider, const char *name, const char *schema)
{
	char now[32];
	db_param p[4];

	now3339(now);
	p[0] = DBP_S(provider);
	p[1] = DBP_S(name);
	p[2] = DBP_S(schema);
	p[3] = DBP_S(now);
	return db_exec(c, "INSERT INTO exchange_pubsub_event_type (provider, name, json_schema, created_at)"
			  " VALUES (?, ?, ?, ?)",
		       p, 4, NULL);
}

egov_err pubsub_event_type_get(db_conn *c, const char *provider, const char *name, char **schema)
{
	db_param p[2] = {DBP_S(provider), DBP_S(name)};
	egov_err err;

	*schema = NULL;
	err = db_query_text(c, "SELECT json_schema FROM exchange_pubsub_event_type WHERE provider = ? AND name = ?", p,
			    2, schema);
	if (!err && !*schema)
		err = EGOV_ENOTFOUND;
	return err;
}

egov_err pubsub_event_type_delete(db_conn *c, const char *provider, const char *name)
{
	char now[32];
	db_param p[3];
	int64_t changes = 0;
	bool open = false;
	egov_err err;

	now3339(now);
	if ((err = db_begin(c)))
		goto out;
	open = true;
	p[0] = DBP_S(provider);
	p[1] = DBP_S(name);
	if ((err = db_exec(c, "DELETE FROM exchange_pubsub_event_type WHERE provider = ? AND name = ?", p, 2,
			   &changes)))
		goto out;
	if (!changes) {
		err = EGOV_ENOTFOUND;
		goto out;
	}
	p[0] = DBP_S(now);
	p[1] = DBP_S(provider);
	p[2] = DBP_S(name);
	if ((err = db_exec(c, "UPDATE exchange_pubsub_outbox SET state = 3, inflight = 0, done_at = ?"
			      " WHERE state = " ST_PENDING " AND sub_id IN (SELECT id FROM exchange_pubsub_sub"
			      " WHERE provider = ? AND event_type = ?)",
			   p, 3, NULL)))
		goto out;
	p[0] = DBP_S(provider);
	p[1] = DBP_S(name);
	if ((err = db_exec(c, "DELETE FROM exchange_pubsub_sub WHERE provider = ? AND event_type = ?", p, 2, NULL)))
		goto out;
	err = db_commit(c);
	open = false;
out:
	if (open)
		db_rollback(c);
	return err;
}

egov_err pubsub_event_type_list(db_conn *c, const char *provider, jw *w, int *n)
{
	db_param p[1] = {DBP_S(provider)};
	db_rows *rows = NULL;
	bool has = false;
	egov_err err;

	*n = 0;
	if ((err = db_query(c, "SELECT name FROM exchange_pubsub_event_type WHERE provider = ? ORDER BY name", p, 1,
			    &rows)))
		goto out;
	jw_arr_begin(w);
	while (!(err = db_rows_next(rows, &has)) && has) {
		jw_str(w, db_rows_text(rows, 0));
		(*n)++;
	}
	jw_arr_end(w);
out:
	db_rows_free(rows);
	return err;
}

/* ---- subscriptions ------------------------------------------------------------ */

#define SUB_COLS "id, provider, event_type, subscriber, is_push, ttl_s, fifo"

static void sub_from_row(db_rows *r, pubsub_sub *s)
{
	copy(s->id, sizeof s->id, db_rows_text(r, 0));
	copy(s->provider, sizeof s->provider, db_rows_text(r, 1));
	copy(s->event_type, sizeof s->event_type, db_rows_text(r, 2));
	copy(s->subscriber, sizeof s->subscriber, db_rows_text(r, 3));
	s->push = db_rows_int(r, 4) != 0;
	s->ttl_s = db_rows_int(r, 5);
	s->fifo = db_rows_int(r, 6) != 0;
}

egov_err pubsub_sub_create(db_conn *c, pubsub_sub *s)
{
	char now[32], id[37], *schema = NULL;
	db_param p[8];
	egov_err err;

	if ((err = pubsub_event_type_get(c, s->provider, s->event_type, &schema)))
		goto out;
	if ((err = uuid_v7(id)))
		goto out;
	now3339(now);
	p[0] = DBP_S(id);
	p[1] = DBP_S(s->provider);
	p[2] = DBP_S(s->event_type);
	p[3] = DBP_S(s->subscriber);
	p[4] = DBP_I(s->push ? 1 : 0);
	p[5] = DBP_I(s->ttl_s);
	p[6] = DBP_I(s->fifo ? 1 : 0);
	p[7] = DBP_S(now);
	err = db_exec(c, "INSERT INTO exchange_pubsub_sub (" SUB_COLS ", created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		      p, 8, NULL);
	if (!err)
		memcpy(s->id, id, sizeof id);
out:
	free(schema);
	return err;
}

egov_err pubsub_sub_get(db_conn *c, const char *provider, const char *event_type, const char *subscriber,
			pubsub_sub *out)
{
	db_param p[3] = {DBP_S(provider), DBP_S(event_type), DBP_S(subscriber)};
	db_rows *rows = NULL;
	bool has = false;
	egov_err err;

	if ((err = db_query(c, "SELECT " SUB_COLS " FROM exchange_pubsub_sub"
			       " WHERE provider = ? AND event_type = ? AND subscriber = ?",
			    p, 3, &rows)) ||
	    (err = db_rows_next(rows, &has)))
		goto out;
	if (!has) {
		err = EGOV_ENOTFOUND;
		goto out;
	}
	sub_from_row(rows, out);
out:
	db_rows_free(rows);
	return err;
}

egov_err pubsub_sub_update(db_conn *c, const pubsub_sub *s)
{
	db_param p[6] = {DBP_I(s->push ? 1 : 0), DBP_I(s->ttl_s), DBP_I(s->fifo ? 1 : 0),
			 DBP_S(s->provider),     DBP_S(s->event_type), DBP_S(s->subscriber)};
	int64_t changes = 0;
	egov_err err;

	err = db_exec(c, "UPDATE exchange_pubsub_sub SET is_push = ?, ttl_s = ?, fifo = ?"
			 " WHERE provider = ? AND event_type = ? AND subscriber = ?",
		      p, 6, &changes);
	if (!err && !changes)
		err = EGOV_ENOTFOUND;
	return err;
}

egov_err pubsub_sub_delete(db_conn *c, const char *provider, const char *event_type, const char *subscriber)
{
	pubsub_sub s;
	char now[32];
	db_param p[2];
	bool open = false;
	egov_err err;

	now3339(now);
	if ((err = db_begin(c)))
		goto out;
	open = true;
	if ((err = pubsub_sub_get(c, provider, event_type, subscriber, &s)))
		goto out;
	p[0] = DBP_S(now);
	p[1] = DBP_S(s.id);
	if ((err = db_exec(c, "UPDATE exchange_pubsub_outbox SET state = 3, inflight = 0, done_at = ?"
			      " WHERE sub_id = ? AND state = " ST_PENDING,
			   p, 2, NULL)))
		goto out;
	p[0] = DBP_S(s.id);
	if ((err = db_exec(c, "DELETE FROM exchange_pubsub_sub WHERE id = ?", p, 1, NULL)))
		goto out;
	err = db_commit(c);
	open = false;
out:
	if (open)
		db_rollback(c);
	return err;
}

egov_err pubsub_sub_each(db_conn *c, const char *provider, const char *subscriber,
			 int (*fn)(void *ctx, const pubsub_sub *s), void *ctx)
{
	db_param p[2] = {DBP_S(provider), DBP_S(subscriber)};
	db_rows *rows = NULL;
	bool has = false;
	pubsub_sub s;
	egov_err err;

	if ((err = db_query(c, "SELECT " SUB_COLS " FROM exchange_pubsub_sub WHERE provider = ? AND subscriber = ?"
			       " ORDER BY event_type",
			    p, 2, &rows)))
		goto out;
	while (!(err = db_rows_next(rows, &has)) && has) {
		sub_from_row(rows, &s);
		if (fn(ctx, &s))
			break;
	}
out:
	db_rows_free(rows);
	return err;
}

/* ---- events ----------------------------------------------------------------- */

void pubsub_event_release(pubsub_event *e)
{
	free(e->payload);
	e->payload = NULL;
}

egov_err pubsub_event_publish(db_conn *c, const char *provider, const char *event_type, const char *publisher,
			      const char *id, const char *payload, int64_t now_us, int64_t *seq, int *fanout)
{
	db_param p[7];
	int64_t s = 0, changes = 0;
	bool open = false, found = false;
	egov_err err;

	if ((err = db_begin(c)))
		goto out;
	open = true;
	p[0] = DBP_S(provider);
	p[1] = DBP_S(event_type);
	if ((err = db_query_int(c, "SELECT 1 FROM exchange_pubsub_event_type WHERE provider = ? AND name = ?", p, 2,
				&s, &found)))
		goto out;
	if (!found) {
		err = EGOV_ENOTFOUND;
		goto out;
	}
	p[0] = DBP_S(id);
	p[1] = DBP_S(provider);
	p[2] = DBP_S(event_type);
	p[3] = DBP_S(publisher);
	p[4] = DBP_S(payload);
	p[5] = DBP_I(now_us);
	if ((err = db_exec(c, "INSERT INTO exchange_pubsub_event (id, provider, event_type, publisher, payload,"
			      " created_us) VALUES (?, ?, ?, ?, ?, ?)",
			   p, 6, NULL)))
		goto out;
	p[0] = DBP_S(provider);
	p[1] = DBP_S(id);
	if ((err = db_query_int(c, "SELECT seq FROM exchange_pubsub_event WHERE provider = ? AND id = ?", p, 2, &s,
				&found)))
		goto out;
	if (!found) {
		err = EGOV_EINTERNAL;
		goto out;
	}
	/* A delivery per subscription existing now; each expires after its
	 * subscription's TTL. */
	p[0] = DBP_I(s);
	p[1] = DBP_I(now_us);
	p[2] = DBP_I(now_us);
	p[3] = DBP_S(provider);
	p[4] = DBP_S(event_type);
	if ((err = db_exec(c, "INSERT INTO exchange_pubsub_outbox (sub_id, seq, next_attempt_us, expires_us)"
			      " SELECT id, CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT) + ttl_s * 1000000"
			      " FROM exchange_pubsub_sub"
			      " WHERE provider = ? AND event_type = ?",
			   p, 5, &changes)))
		goto out;
	err = db_commit(c);
	open = false;
	if (!err && seq)
		*seq = s;
	if (!err && fanout)
		*fanout = (int)changes;
out:
	if (open)
		db_rollback(c);
	return err;
}

#define EVENT_COLS "e.seq, e.id, e.provider, e.event_type, e.publisher, e.payload, e.created_us, e.cancelled"

/* Reads EVENT_COLS starting at column col. */
static egov_err event_from_row(db_rows *r, int col, pubsub_event *e)
{
	e->seq = db_rows_int(r, col);
	copy(e->id, sizeof e->id, db_rows_text(r, col + 1));
	copy(e->provider, sizeof e->provider, db_rows_text(r, col + 2));
	copy(e->event_type, sizeof e->event_type, db_rows_text(r, col + 3));
	copy(e->publisher, sizeof e->publisher, db_rows_text(r, col + 4));
	e->payload = strdup(db_rows_text(r, col + 5) ? db_rows_text(r, col + 5) : "null");
	e->created_us = db_rows_int(r, col + 6);
	e->cancelled = db_rows_int(r, col + 7) != 0;
	return e->payload ? EGOV_OK : EGOV_ENOMEM;
}

egov_err pubsub_event_get(db_conn *c, const char *provider, const char *event_type, const char *id,
			  pubsub_event *out)
{
	db_param p[3] = {DBP_S(provider), DBP_S(event_type), DBP_S(id)};
	db_rows *rows = NULL;
	bool has = false;
	egov_err err;

	*out = (pubsub_event){0};
	if ((err = db_query(c, "SELECT " EVENT_COLS " FROM exchange_pubsub_event e"
			       " WHERE e.provider = ? AND e.event_type = ? AND e.id = ?",
			    p, 3, &rows)) ||
	    (err = db_rows_next(rows, &has)))
		goto out;
	if (!has) {
		err = EGOV_ENOTFOUND;
		goto out;
	}
	if ((err = event_from_row(rows, 0, out)))
		goto out;
	db_rows_free(rows);
	rows = NULL;
	p[0] = DBP_I(out->seq);
	if ((err = db_query(c, "SELECT state, COUNT(*) FROM exchange_pubsub_outbox WHERE seq = ? GROUP BY state", p,
			    1, &rows)))
		goto out;
	while (!(err = db_rows_next(rows, &has)) && has) {
		int64_t st = db_rows_int(rows, 0);
		if (st >= 0 && st < 4)
			out->count[st] = db_rows_int(rows, 1);
	}
out:
	db_rows_free(rows);
	if (err)
		pubsub_event_release(out);
	return err;
}

egov_err pubsub_event_cancel(db_conn *c, const char *provider, const char *event_type, const char *id)
{
	char now[32];
	db_param p[3];
	int64_t seq = 0, changes = 0;
	bool open = false, found = false;
	egov_err err;

	now3339(now);
	if ((err = db_begin(c)))
		goto out;
	open = true;
	p[0] = DBP_S(provider);
	p[1] = DBP_S(event_type);
	p[2] = DBP_S(id);
	if ((err = db_query_int(c, "SELECT seq FROM exchange_pubsub_event WHERE provider = ? AND event_type = ?"
				   " AND id = ?",
				p, 3, &seq, &found)))
		goto out;
	if (!found) {
		err = EGOV_ENOTFOUND;
		goto out;
	}
	p[0] = DBP_I(seq);
	if ((err = db_exec(c, "UPDATE exchange_pubsub_event SET cancelled = 1 WHERE seq = ?", p, 1, &changes)))
		goto out;
	p[0] = DBP_S(now);
	p[1] = DBP_I(seq);
	if ((err = db_exec(c, "UPDATE exchange_pubsub_outbox SET state = 3, inflight = 0, done_at = ?"
			      " WHERE seq = ? AND state = " ST_PENDING,
			   p, 2, NULL)))
		goto out;
	err = db_commit(c);
	open = false;
out:
	if (open)
		db_rollback(c);
	return err;
}

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

#define DELIVERY_COLS "o.sub_id, s.subscriber, o.attempts, " EVENT_COLS
#define DELIVERY_FROM                                                                                          \
	" FROM exchange_pubsub_outbox o JOIN exchange_pubsub_sub s ON s.id = o.sub_id"                         \
	" JOIN exchange_pubsub_event e ON e.seq = o.seq"

static egov_err delivery_from_row(db_rows *r, pubsub_delivery *d)
{
	*d = (pubsub_delivery){0};
	copy(d->sub_id, sizeof d->sub_id, db_rows_text(r, 0));
	copy(d->subscriber, sizeof d->subscriber, db_rows_text(r, 1));
	d->attempts = (int)db_rows_int(r, 2) + 1;
	return event_from_row(r, 3, &d->ev);
}

egov_err pubsub_outbox_claim(db_conn *c, int64_t now_us, int64_t lease_us, int max, pubsub_delivery *out, int *n)
{
	/* FIFO subscriptions: only a row with no older pending one is due,
	 * so the next event waits until the one before it is delivered or
	 * has expired. */
	static const char where[] = " WHERE o.state = " ST_PENDING " AND o.inflight = 0 AND o.next_attempt_us <= ?"
				    " AND o.expires_us > ? AND s.is_push = 1 AND (s.fifo = 0 OR NOT EXISTS ("
				    "SELECT 1 FROM exchange_pubsub_outbox p WHERE p.sub_id = o.sub_id"
				    " AND p.state = " ST_PENDING " AND p.seq < o.seq))"
				    " ORDER BY o.next_attempt_us, o.seq LIMIT ?";
	char sql[1024];
	db_param p[3] = {DBP_I(now_us), DBP_I(now_us), DBP_I(max)};
	db_rows *rows = NULL;
	bool has = false, open = false;
	int64_t due = 0;
	int i, got = 0;
	egov_err err;

	*n = 0;
	/* Most passes find nothing due: look first without taking the
	 * write lock (SQLite's BEGIN IMMEDIATE) every poll. */
	if ((err = db_query_int(c, "SELECT 1 FROM exchange_pubsub_outbox WHERE state = " ST_PENDING
				   " AND inflight = 0 AND next_attempt_us <= ? LIMIT 1",
				p, 1, &due, &has)) ||
	    !has)
		return err;
	snprintf(sql, sizeof sql, "SELECT " DELIVERY_COLS DELIVERY_FROM "%s%s", where,
		 db_conn_kind(c) == DB_POSTGRES ? " FOR UPDATE OF o SKIP LOCKED" : "");
	if ((err = db_begin(c)))
		goto out;
	open = true;
	if ((err = db_query(c, sql, p, 3, &rows)))
		goto out;
	while (got < max && !(err = db_rows_next(rows, &has)) && has) {
		if ((err = delivery_from_row(rows, &out[got]))) {
			pubsub_delivery_release(&out[got]);
			goto out;
		}
		got++;
	}
	if (err)
		goto out;
	db_rows_free(rows);
	rows = NULL;
	for (i = 0; i < got; i++) {
		p[0] = DBP_I(now_us + lease_us);
		p[1] = DBP_S(out[i].sub_id);
		p[2] = DBP_I(out[i].ev.seq);
		if ((err = db_exec(c, "UPDATE exchange_pubsub_outbox SET attempts = attempts + 1, inflight = 1,"
				      " next_attempt_us = ? WHERE sub_id = ? AND seq = ?",
				   p, 3, NULL)))
			goto out;
	}
	err = db_commit(c);
	open = false;
out:
	db_rows_free(rows);
	if (open)
		db_rollback(c);
	if (err) {
		for (i = 0; i < got; i++)
			pubsub_delivery_release(&out[i]);
		got = 0;
	}
	*n = got;
	return err;
}

egov_err pubsub_outbox_delivered(db_conn *c, const char *sub_id, int64_t seq)
{
	char now[32];
	db_param p[3];

	now3339(now);
	p[0] = DBP_S(now);
	p[1] = DBP_S(sub_id);
	p[2] = DBP_I(seq);
	return db_exec(c, "UPDATE exchange_pubsub_outbox SET state = 1, inflight = 0, done_at = ?, last_error = NULL"
			  " WHERE sub_id = ? AND seq = ? AND state = " ST_PENDING,
		       p, 3, NULL);
}

egov_err pubsub_outbox_retry(db_conn *c, const char *sub_id, int64_t seq, int64_t next_us, const char *why)
{
	db_param p[4] = {DBP_I(next_us), DBP_S(why ? why : ""), DBP_S(sub_id), DBP_I(seq)};

	return db_exec(c, "UPDATE exchange_pubsub_outbox SET inflight = 0, next_attempt_us = ?, last_error = ?"
			  " WHERE sub_id = ? AND seq = ? AND state = " ST_PENDING,
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
	if ((err = db_query_int(c, "SELECT 1 FROM exchange_pubsub_outbox WHERE state = " ST_PENDING
				   " AND inflight = 0 AND expires_us <= ? LIMIT 1",
				p, 1, &one, &found)) ||
	    !found)
		return err;
	now3339(now);
	p[0] = DBP_S(now);
	p[1] = DBP_I(now_us);
	/* A delivery in flight is left to its outcome. */
	return db_exec(c, "UPDATE exchange_pubsub_outbox SET state = 2, done_at = ?"
			  " WHERE state = " ST_PENDING " AND inflight = 0 AND expires_us <= ?",
		       p, 2, n);
}

egov_err pubsub_outbox_recover(db_conn *c, int64_t now_us, int64_t *n)
{
	db_param p[1] = {DBP_I(now_us)};

	return db_exec(c, "UPDATE exchange_pubsub_outbox SET inflight = 0, next_attempt_us = ?"
			  " WHERE state = " ST_PENDING " AND inflight = 1",
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
			       " WHERE o.state = " ST_PENDING " AND s.is_push = 1",
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
	if ((err = db_exec(c, "DELETE FROM exchange_pubsub_outbox WHERE state <> " ST_PENDING " AND seq IN ("
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
	db_param p[3];
	db_rows *rows = NULL;
	bool has = false;
	egov_err err;

	*out = (pubsub_delivery){0};
	if ((err = pull_sub(c, provider, event_type, subscriber, &s)))
		goto out;
	p[0] = DBP_S(s.id);
	p[1] = DBP_I(now_us);
	if ((err = db_query(c, "SELECT " DELIVERY_COLS DELIVERY_FROM " WHERE o.sub_id = ? AND o.state = " ST_PENDING
			       " AND o.expires_us > ? ORDER BY o.seq LIMIT 1",
			    p, 2, &rows)) ||
	    (err = db_rows_next(rows, &has)))
		goto out;
	if (!has) {
		err = EGOV_ENOTFOUND;
		goto out;
	}
	if ((err = delivery_from_row(rows, out)))
		goto out;
	db_rows_free(rows);
	rows = NULL;
	/* Counted, so the operator sees how often a puller fetched it. */
	p[0] = DBP_S(out->sub_id);
	p[1] = DBP_I(out->ev.seq);
	err = db_exec(c, "UPDATE exchange_pubsub_outbox SET attempts = attempts + 1 WHERE sub_id = ? AND seq = ?", p,
		      2, NULL);
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
	db_param p[5];
	int64_t changes = 0;
	egov_err err;

	if ((err = pull_sub(c, provider, event_type, subscriber, &s)))
		return err;
	now3339(now);
	p[0] = DBP_S(now);
	p[1] = DBP_S(s.id);
	p[2] = DBP_S(provider);
	p[3] = DBP_S(event_type);
	p[4] = DBP_S(event_id);
	err = db_exec(c, "UPDATE exchange_pubsub_outbox SET state = 1, done_at = ?, last_error = NULL"
			 " WHERE sub_id = ? AND state = " ST_PENDING " AND seq = (SELECT seq FROM"
			 " exchange_pubsub_event WHERE provider = ? AND event_type = ? AND id = ?)",
		      p, 5, &changes);
	if (!err && !changes)
		err = EGOV_ENOTFOUND;
	return err;
}

/* ---- push URLs (subscriber side) ---------------------------------------------- */

egov_err pubsub_push_url_set(db_conn *c, const char *subscriber, const char *event_type_id, const char *url)
{
	char now[32];
	db_param p[4];

	now3339(now);
	p[0] = DBP_S(subscriber);
	p[1] = DBP_S(event_type_id);
	p[2] = DBP_S(url);
	p[3] = DBP_S(now);
	return db_exec(c, "INSERT INTO exchange_pubsub_push_url (subscriber, event_type, url, updated_at)"
			  " VALUES (?, ?, ?, ?) ON CONFLICT (subscriber, event_type)"
			  " DO UPDATE SET url = excluded.url, updated_at = excluded.updated_at",
		       p, 4, NULL);
}

egov_err pubsub_push_url_get(db_conn *c, const char *subscriber, const char *event_type_id, char **url)
{
	db_param p[2] = {DBP_S(subscriber), DBP_S(event_type_id)};
	egov_err err;

	*url = NULL;
	err = db_query_text(c, "SELECT url FROM exchange_pubsub_push_url WHERE subscriber = ? AND event_type = ?", p,
			    2, url);
	if (!err && !*url)
		err = EGOV_ENOTFOUND;
	return err;
}

egov_err pubsub_push_url_delete(db_conn *c, const char *subscriber, const char *event_type_id)
{
	db_param p[2] = {DBP_S(subscriber), DBP_S(event_type_id)};
	int64_t changes = 0;
	egov_err err;

	err = db_exec(c, "DELETE FROM exchange_pubsub_push_url WHERE subscriber = ? AND event_type = ?", p, 2,
		      &changes);
	if (!err && !changes)
		err = EGOV_ENOTFOUND;
	return err;
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
