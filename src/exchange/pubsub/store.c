/*
 * store.c: publish/subscribe storage on the provider gateway: the room's
 * event types, subscriptions and events, the schema of every pub/sub
 * table, and the statements the outbox shares with them. The outbox
 * invariants are in pubsub_int.h; every statement that moves a delivery
 * on requires state = pending, so a final state never changes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/timeutil.h"
#include "exchange/pubsub/pubsub_int.h"
#include "core/banned.h"

/* The tables on both backends: they differ only in how the events' seq
 * is made. IF NOT EXISTS: the exchange module's own migrations
 * (exchange.c) create them as one of their versions, on databases where
 * an earlier release had already made them under a migration of its own. */
#define PUBSUB_SCHEMA(SEQ)                                                                                       \
	"CREATE TABLE IF NOT EXISTS exchange_pubsub_event_type ("                                                \
	" provider TEXT NOT NULL, name TEXT NOT NULL, json_schema TEXT NOT NULL,"                                \
	" created_at TEXT NOT NULL, PRIMARY KEY (provider, name));"                                              \
	"CREATE TABLE IF NOT EXISTS exchange_pubsub_sub ("                                                       \
	" id TEXT PRIMARY KEY, provider TEXT NOT NULL, event_type TEXT NOT NULL,"                                \
	" subscriber TEXT NOT NULL, is_push INTEGER NOT NULL, ttl_s BIGINT NOT NULL,"                           \
	" fifo INTEGER NOT NULL, created_at TEXT NOT NULL,"                                                      \
	" UNIQUE (provider, event_type, subscriber));"                                                           \
	"CREATE TABLE IF NOT EXISTS exchange_pubsub_event ("                                                     \
	" seq " SEQ ", id TEXT NOT NULL, provider TEXT NOT NULL,"                                                \
	" event_type TEXT NOT NULL, publisher TEXT NOT NULL, payload TEXT NOT NULL,"                             \
	" created_us BIGINT NOT NULL, cancelled INTEGER NOT NULL DEFAULT 0,"                                     \
	" UNIQUE (provider, id));"                                                                               \
	"CREATE TABLE IF NOT EXISTS exchange_pubsub_outbox ("                                                    \
	" sub_id TEXT NOT NULL, seq BIGINT NOT NULL, state INTEGER NOT NULL DEFAULT 0,"                          \
	" attempts INTEGER NOT NULL DEFAULT 0, inflight INTEGER NOT NULL DEFAULT 0,"                             \
	" next_attempt_us BIGINT NOT NULL, expires_us BIGINT NOT NULL, last_error TEXT,"                        \
	" done_at TEXT, PRIMARY KEY (sub_id, seq));"                                                             \
	"CREATE INDEX IF NOT EXISTS exchange_pubsub_outbox_due ON exchange_pubsub_outbox (next_attempt_us)"      \
	" WHERE state = 0;"                                                                                      \
	"CREATE INDEX IF NOT EXISTS exchange_pubsub_outbox_seq ON exchange_pubsub_outbox (seq);"                 \
	"CREATE TABLE IF NOT EXISTS exchange_pubsub_push_url ("                                                  \
	" subscriber TEXT NOT NULL, event_type TEXT NOT NULL, url TEXT NOT NULL,"                                \
	" updated_at TEXT NOT NULL, PRIMARY KEY (subscriber, event_type))"

const char pubsub_schema_sqlite[] = PUBSUB_SCHEMA("INTEGER PRIMARY KEY AUTOINCREMENT");
const char pubsub_schema_postgres[] = PUBSUB_SCHEMA("BIGSERIAL PRIMARY KEY");

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

/* ---- shared statements -------------------------------------------------------- */

void pubsub_now(char out[32])
{
	time_format_rfc3339(time_now_us(), 3, out);
}

void pubsub_copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

egov_err pubsub_text_of(db_conn *c, const char *sql, const db_param *p, int n, char **out)
{
	egov_err err;

	*out = NULL;
	err = db_query_text(c, sql, p, n, out);
	if (!err && !*out)
		err = EGOV_ENOTFOUND;
	return err;
}

egov_err pubsub_row(db_conn *c, const char *sql, const db_param *p, int n, db_rows **rows)
{
	bool has = false;
	egov_err err;

	*rows = NULL;
	if ((err = db_query(c, sql, p, n, rows)) || (err = db_rows_next(*rows, &has)) || !has) {
		db_rows_free(*rows);
		*rows = NULL;
		return err ? err : EGOV_ENOTFOUND;
	}
	return EGOV_OK;
}

egov_err pubsub_change(db_conn *c, const char *sql, const db_param *p, int n)
{
	int64_t changes = 0;
	egov_err err = db_exec(c, sql, p, n, &changes);

	if (!err && !changes)
		err = EGOV_ENOTFOUND;
	return err;
}

egov_err pubsub_in_tx(db_conn *c, egov_err (*fn)(db_conn *c, void *ctx), void *ctx)
{
	egov_err err;

	if ((err = db_begin(c)))
		return err;
	if ((err = fn(c, ctx)) || (err = db_commit(c)))
		db_rollback(c);
	return err;
}

/* Cancels the pending deliveries that where (a condition on the outbox
 * with one or two text or integer parameters) selects. */
static egov_err cancel_pending(db_conn *c, const char *where, db_param a, db_param b, int n)
{
	char now[32], sql[512];
	db_param p[3];

	pubsub_now(now);
	snprintf(sql, sizeof sql,
		 "UPDATE exchange_pubsub_outbox SET state = 3, inflight = 0, done_at = ? WHERE state = " PUBSUB_PENDING_SQL
		 " AND %s",
		 where);
	p[0] = DBP_S(now);
	p[1] = a;
	p[2] = b;
	return db_exec(c, sql, p, n + 1, NULL);
}

/* ---- event types ------------------------------------------------------------ */

egov_err pubsub_event_type_create(db_conn *c, const char *provider, const char *name, const char *schema)
{
	char now[32];

	pubsub_now(now);
	return db_exec(c, "INSERT INTO exchange_pubsub_event_type (provider, name, json_schema, created_at)"
			  " VALUES (?, ?, ?, ?)",
		       (db_param[]){DBP_S(provider), DBP_S(name), DBP_S(schema), DBP_S(now)}, 4, NULL);
}

egov_err pubsub_event_type_get(db_conn *c, const char *provider, const char *name, char **schema)
{
	return pubsub_text_of(c, "SELECT json_schema FROM exchange_pubsub_event_type WHERE provider = ? AND name = ?",
			      (db_param[]){DBP_S(provider), DBP_S(name)}, 2, schema);
}

typedef struct key2 {
	const char *a, *b;
} key2;

static egov_err event_type_delete(db_conn *c, void *ctx)
{
	const key2 *k = ctx;
	egov_err err;

	if ((err = pubsub_change(c, "DELETE FROM exchange_pubsub_event_type WHERE provider = ? AND name = ?",
				 (db_param[]){DBP_S(k->a), DBP_S(k->b)}, 2)) ||
	    (err = cancel_pending(c, "sub_id IN (SELECT id FROM exchange_pubsub_sub WHERE provider = ? AND event_type = ?)",
				  DBP_S(k->a), DBP_S(k->b), 2)))
		return err;
	return db_exec(c, "DELETE FROM exchange_pubsub_sub WHERE provider = ? AND event_type = ?",
		       (db_param[]){DBP_S(k->a), DBP_S(k->b)}, 2, NULL);
}

egov_err pubsub_event_type_delete(db_conn *c, const char *provider, const char *name)
{
	key2 k = {provider, name};

	return pubsub_in_tx(c, event_type_delete, &k);
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
	pubsub_copy(s->id, sizeof s->id, db_rows_text(r, 0));
	pubsub_copy(s->provider, sizeof s->provider, db_rows_text(r, 1));
	pubsub_copy(s->event_type, sizeof s->event_type, db_rows_text(r, 2));
	pubsub_copy(s->subscriber, sizeof s->subscriber, db_rows_text(r, 3));
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
	pubsub_now(now);
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
	db_rows *rows = NULL;
	egov_err err;

	if ((err = pubsub_row(c, "SELECT " SUB_COLS " FROM exchange_pubsub_sub"
				 " WHERE provider = ? AND event_type = ? AND subscriber = ?",
			      (db_param[]){DBP_S(provider), DBP_S(event_type), DBP_S(subscriber)}, 3, &rows)))
		return err;
	sub_from_row(rows, out);
	db_rows_free(rows);
	return EGOV_OK;
}

egov_err pubsub_sub_update(db_conn *c, const pubsub_sub *s)
{
	return pubsub_change(c, "UPDATE exchange_pubsub_sub SET is_push = ?, ttl_s = ?, fifo = ?"
				" WHERE provider = ? AND event_type = ? AND subscriber = ?",
			     (db_param[]){DBP_I(s->push ? 1 : 0), DBP_I(s->ttl_s), DBP_I(s->fifo ? 1 : 0),
					  DBP_S(s->provider), DBP_S(s->event_type), DBP_S(s->subscriber)},
			     6);
}

typedef struct sub_key {
	const char *provider, *event_type, *subscriber;
} sub_key;

static egov_err sub_delete(db_conn *c, void *ctx)
{
	const sub_key *k = ctx;
	pubsub_sub s;
	egov_err err;

	if ((err = pubsub_sub_get(c, k->provider, k->event_type, k->subscriber, &s)) ||
	    (err = cancel_pending(c, "sub_id = ?", DBP_S(s.id), DBP_NULLV, 1)))
		return err;
	return db_exec(c, "DELETE FROM exchange_pubsub_sub WHERE id = ?", (db_param[]){DBP_S(s.id)}, 1, NULL);
}

egov_err pubsub_sub_delete(db_conn *c, const char *provider, const char *event_type, const char *subscriber)
{
	sub_key k = {provider, event_type, subscriber};

	return pubsub_in_tx(c, sub_delete, &k);
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

egov_err pubsub_event_from_row(db_rows *r, int col, pubsub_event *e)
{
	e->seq = db_rows_int(r, col);
	pubsub_copy(e->id, sizeof e->id, db_rows_text(r, col + 1));
	pubsub_copy(e->provider, sizeof e->provider, db_rows_text(r, col + 2));
	pubsub_copy(e->event_type, sizeof e->event_type, db_rows_text(r, col + 3));
	pubsub_copy(e->publisher, sizeof e->publisher, db_rows_text(r, col + 4));
	e->payload = strdup(db_rows_text(r, col + 5) ? db_rows_text(r, col + 5) : "null");
	e->created_us = db_rows_int(r, col + 6);
	e->cancelled = db_rows_int(r, col + 7) != 0;
	return e->payload ? EGOV_OK : EGOV_ENOMEM;
}

egov_err pubsub_event_get(db_conn *c, const char *provider, const char *event_type, const char *id,
			  pubsub_event *out)
{
	db_rows *rows = NULL;
	bool has = false;
	egov_err err;

	*out = (pubsub_event){0};
	if ((err = pubsub_row(c, "SELECT " PUBSUB_EVENT_COLS " FROM exchange_pubsub_event e"
				 " WHERE e.provider = ? AND e.event_type = ? AND e.id = ?",
			      (db_param[]){DBP_S(provider), DBP_S(event_type), DBP_S(id)}, 3, &rows)) ||
	    (err = pubsub_event_from_row(rows, 0, out)))
		goto out;
	db_rows_free(rows);
	rows = NULL;
	if ((err = db_query(c, "SELECT state, COUNT(*) FROM exchange_pubsub_outbox WHERE seq = ? GROUP BY state",
			    (db_param[]){DBP_I(out->seq)}, 1, &rows)))
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

typedef struct event_key {
	const char *provider, *event_type, *id;
} event_key;

static egov_err event_cancel(db_conn *c, void *ctx)
{
	const event_key *k = ctx;
	int64_t seq = 0;
	bool found = false;
	egov_err err;

	if ((err = db_query_int(c, "SELECT seq FROM exchange_pubsub_event WHERE provider = ? AND event_type = ?"
				   " AND id = ?",
				(db_param[]){DBP_S(k->provider), DBP_S(k->event_type), DBP_S(k->id)}, 3, &seq, &found)))
		return err;
	if (!found)
		return EGOV_ENOTFOUND;
	if ((err = db_exec(c, "UPDATE exchange_pubsub_event SET cancelled = 1 WHERE seq = ?", (db_param[]){DBP_I(seq)},
			   1, NULL)))
		return err;
	return cancel_pending(c, "seq = ?", DBP_I(seq), DBP_NULLV, 1);
}

egov_err pubsub_event_cancel(db_conn *c, const char *provider, const char *event_type, const char *id)
{
	event_key k = {provider, event_type, id};

	return pubsub_in_tx(c, event_cancel, &k);
}
