/*
 * db.h: the storage interface, with two real backends behind it.
 *
 * A database URL picks the backend: "sqlite:PATH" (the embedded default;
 * WAL, synchronous=FULL so an acknowledged commit is durable) or
 * "postgres://..." / "postgresql://..." (libpq; synchronous_commit as the
 * cluster sets it, on by default).
 *
 * SQL is written once with '?' placeholders; the PostgreSQL backend rewrites
 * them to $1..$n. Parameters are always bound, never formatted into SQL.
 * Prepared statements are cached per connection, keyed by the SQL text.
 *
 * Threads: a db handle is shared; a db_conn belongs to one thread at a time.
 * db_thread_conn() gives each thread (each HTTP worker) its own connection,
 * opened on first use and closed when the thread exits or db_close() runs.
 *
 * Errors: a unique-constraint violation is EGOV_ECONFLICT (so races are
 * settled by the database, not by check-then-insert); a serialization
 * failure, deadlock or lock timeout is EGOV_EBUSY; a server that cannot be
 * reached is EGOV_EUNAVAILABLE; other failures are EGOV_EDB with the
 * backend's message in db_conn_errmsg().
 */
#ifndef EGOV_CORE_DB_H
#define EGOV_CORE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct db db;
typedef struct db_conn db_conn;
typedef struct db_rows db_rows;

typedef enum db_kind { DB_SQLITE, DB_POSTGRES } db_kind;

typedef enum db_param_type { DBP_NULL, DBP_INT, DBP_TEXT, DBP_BLOB } db_param_type;

typedef struct db_param {
	db_param_type type;
	int64_t i;
	const void *p; /* DBP_TEXT: NUL-terminated; DBP_BLOB: len bytes */
	size_t len;
} db_param;

#define DBP_NULLV ((db_param){.type = DBP_NULL})
#define DBP_I(v) ((db_param){.type = DBP_INT, .i = (int64_t)(v)})
#define DBP_S(v) ((db_param){.type = DBP_TEXT, .p = (v)})
#define DBP_B(v, n) ((db_param){.type = DBP_BLOB, .p = (v), .len = (n)})

/* Opens a backend from a URL. On failure *out is NULL and errmsg (if given)
 * says why. Does not connect until a connection is asked for, except that
 * SQLite creates its file's directory check here. */
egov_err db_open(const char *url, db **out, char *errmsg, size_t errlen);
/* Closes every connection this handle opened. */
void db_close(db *d);
db_kind db_kind_of(const db *d);
/* "sqlite" or "postgres" */
const char *db_kind_name(const db *d);

/* A new connection owned by the caller; close with db_conn_close(). */
egov_err db_conn_open(db *d, db_conn **out);
void db_conn_close(db_conn *c);
/* Why the last failed db_conn_open()/db_thread_conn() of this handle
 * failed (empty if none has), copied into buf. */
void db_open_errmsg(db *d, char *buf, size_t len);
/* The calling thread's own connection (opened lazily, owned by the db). */
egov_err db_thread_conn(db *d, db_conn **out);
db_kind db_conn_kind(const db_conn *c);
const char *db_conn_errmsg(const db_conn *c);

/* Runs one statement. *changes (if non-NULL) receives the rows affected. */
egov_err db_exec(db_conn *c, const char *sql, const db_param *params, int nparams, int64_t *changes);
/* Runs several ';'-separated statements without parameters (migrations). */
egov_err db_exec_script(db_conn *c, const char *sql);

/* Runs a query; iterate with db_rows_next(), free with db_rows_free().
 * Column accessors are valid until the next db_rows_next() call. */
egov_err db_query(db_conn *c, const char *sql, const db_param *params, int nparams, db_rows **out);
/* *has_row = true while a row is available. */
egov_err db_rows_next(db_rows *r, bool *has_row);
int db_rows_ncols(const db_rows *r);
bool db_rows_isnull(const db_rows *r, int col);
const char *db_rows_text(const db_rows *r, int col); /* NULL for SQL NULL */
int64_t db_rows_int(const db_rows *r, int col);        /* 0 for NULL */
const void *db_rows_blob(db_rows *r, int col, size_t *len);
void db_rows_free(db_rows *r);

/* Convenience: runs a query expected to return at most one row and copies
 * its first column as text into a malloc'd string (*out NULL if no row). */
egov_err db_query_text(db_conn *c, const char *sql, const db_param *params, int nparams, char **out);
egov_err db_query_int(db_conn *c, const char *sql, const db_param *params, int nparams, int64_t *out, bool *found);

/* Group commit for short writes. Runs fn(c, ctx) inside a transaction that
 * it shares with other callers' functions, on the database's batch writer
 * connection, and returns once that transaction is durable: many
 * concurrent writers share one commit and one fsync instead of taking
 * turns at SQLite's single write lock. Each fn runs inside its own
 * SAVEPOINT: if it returns an error its changes are rolled back and the
 * error comes back to its caller only; the others commit. fn must be quick
 * and must not block (no audit_append, no nested db_batch, no network).
 * It sees the changes of functions batched before it. On PostgreSQL, which
 * groups concurrent commits itself, fn runs in its own transaction on the
 * calling thread's connection, committed without waiting for its flush
 * and followed by a durable commit that flushes it (so the locks it took,
 * the audit chain's included, are held only until the commit, not the
 * flush). Not to be called with a transaction of the caller's open. */
egov_err db_batch(db *d, egov_err (*fn)(db_conn *c, void *ctx), void *ctx);
/* The same, for a caller that makes a durable commit of its own (its audit
 * record, say) after this one and before it acts on the result: fn's
 * changes are committed and visible to every connection when this returns,
 * but the commit is not flushed on its own account (SQLite: synchronous=
 * NORMAL for a batch of such jobs only; PostgreSQL: synchronous_commit off
 * for the transaction). Both logs are sequential, so the caller's later
 * durable commit on the same database (any connection) flushes this one
 * too; a crash before that loses this commit, and nothing that depended on
 * it was let out yet. A batch that also carries db_batch() jobs is flushed
 * for them all. */
egov_err db_batch_nosync(db *d, egov_err (*fn)(db_conn *c, void *ctx), void *ctx);

/* Transactions. db_begin() is BEGIN (SQLite: BEGIN IMMEDIATE, taking the
 * write lock); inside a transaction begun with it, it opens a SAVEPOINT
 * instead, and the db_commit() or db_rollback() that follows releases or
 * rolls back to it: a function that makes its statements one transaction
 * can run inside a caller's larger one (an audited change and its
 * audit_append_tx() record). A rolled-back SAVEPOINT leaves the outer
 * transaction usable on both backends. */
egov_err db_begin(db_conn *c);
egov_err db_commit(db_conn *c);
egov_err db_rollback(db_conn *c);
/* Ends what db_begin() began: commits when err is EGOV_OK, else (or when
 * the commit fails) rolls back. Returns err, or the commit's error. */
egov_err db_end(db_conn *c, egov_err err);

/* Cheap liveness check (used by /readyz). */
egov_err db_ping(db_conn *c);

/* Milliseconds spent in statements, by kind, for /metrics. */
typedef struct db_stats {
	uint64_t queries;
	uint64_t errors;
	uint64_t time_us;
} db_stats;
void db_stats_get(const db *d, db_stats *out);

/* ---- migrations ---------------------------------------------------------
 * Each module owns a numbered list. `sql` is used on both backends unless
 * a dialect-specific text is given. Versions start at 1 and only grow;
 * an applied migration is never edited, a new one is added. */
typedef struct db_migration {
	int version;
	const char *name;
	const char *sql;          /* both dialects, or NULL */
	const char *sql_sqlite;   /* overrides sql on SQLite */
	const char *sql_postgres; /* overrides sql on PostgreSQL */
} db_migration;

/* Applies the pending migrations of one module, each in its own
 * transaction, recording them in schema_migrations. *applied (optional)
 * receives how many ran. */
egov_err db_migrate(db_conn *c, const char *module, const db_migration *m, size_t n, int *applied);
/* How many of a module's migrations are not yet applied. */
egov_err db_migrations_pending(db_conn *c, const char *module, const db_migration *m, size_t n, int *pending);

#endif
