/*
 * db_int.h: private parts of the db layer, shared by db.c and the backends
 * (db_sqlite.c, db_pg.c). Nothing outside src/core/db*.c includes it.
 *
 * A backend is a const table of functions (like curl's vtls). Its
 * connection and row structs embed struct db_conn / struct db_rows as their
 * first member, so db.c can hold them by the base type.
 *
 * Invariants: a db_conn is used by one thread at a time; c->errmsg always
 * holds a NUL-terminated string (empty when the last call succeeded or
 * failed without a backend message); every connection of a db is on its
 * list (d->conns) until db_conn_close() or db_close() removes it.
 */
#ifndef EGOV_CORE_DB_INT_H
#define EGOV_CORE_DB_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/db.h"

#define DB_ERRMSG_MAX 512
/* Statements cached per connection. egov's SQL texts are constants, so a
 * program has a few hundred at most; past this the cache is emptied rather
 * than grown, which bounds memory if a caller builds SQL dynamically. */
#define DB_STMT_CACHE_MAX 512
#define DB_STMT_BUCKETS 256

struct db_backend {
	const char *name;
	db_kind kind;
	const char *begin_sql;
	egov_err (*conn_open)(db *d, db_conn **out, char *errmsg, size_t errlen);
	void (*conn_close)(db_conn *c);
	egov_err (*exec)(db_conn *c, const char *sql, const db_param *p, int n, int64_t *changes);
	egov_err (*exec_script)(db_conn *c, const char *sql);
	egov_err (*query)(db_conn *c, const char *sql, const db_param *p, int n, db_rows **out);
	egov_err (*rows_next)(db_rows *r, bool *has_row);
	int (*rows_ncols)(const db_rows *r);
	bool (*rows_isnull)(const db_rows *r, int col);
	const char *(*rows_text)(const db_rows *r, int col);
	int64_t (*rows_int)(const db_rows *r, int col);
	const void *(*rows_blob)(db_rows *r, int col, size_t *len);
	void (*rows_free)(db_rows *r);
	egov_err (*ping)(db_conn *c);
};

/* SQLite: writers of this process queue here for the file's write lock
 * and are handed it in turn (db_sqlite.c, "write gate"). */
struct db_gate_waiter;
struct db_write_gate {
	pthread_mutex_t mu;
	bool held;
	struct db_gate_waiter *head, *tail;
};

struct db {
	const struct db_backend *be;
	char *target; /* SQLite: file path; PostgreSQL: the URL */
	pthread_key_t key;
	pthread_mutex_t lock; /* guards conns and open_errmsg */
	db_conn *conns;
	char open_errmsg[DB_ERRMSG_MAX];
	_Atomic uint64_t queries;
	_Atomic uint64_t errors;
	_Atomic uint64_t time_ns;
	struct db_batcher *batcher; /* db_batch.c; started on first use */
	pthread_once_t batcher_once;
	struct db_write_gate gate;  /* SQLite only */
};

/* Stops the batch writer, if one was started (db_close calls it). */
void db_batch_stop(db *d);

struct db_conn {
	const struct db_backend *be;
	db *d;
	db_conn *prev, *next;
	char errmsg[DB_ERRMSG_MAX];
	/* Transactions begun with db_begin() and not yet ended: 0 none, 1 the
	 * transaction, n > 1 with n - 1 SAVEPOINTs inside it. */
	int tx_depth;
};

struct db_rows {
	db_conn *c;
};

extern const struct db_backend db_sqlite_backend;
extern const struct db_backend db_pg_backend;

/* Sets c->errmsg (printf-style); returns err so callers can `return`. */
egov_err db_conn_seterr(db_conn *c, egov_err err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A hash of a NUL-terminated SQL text; *len receives its length. */
uint64_t db_sql_hash(const char *sql, size_t *len);

#endif
