/*
 * db_sqlite.c: the SQLite backend of db.h.
 *
 * Each connection opens the file in WAL mode with synchronous=FULL (so a
 * commit that returned is on disk), foreign keys on and a 5 s busy timeout.
 * db_begin() is BEGIN IMMEDIATE: taking the write lock up front turns a
 * writer-writer race into a wait, not a SQLITE_BUSY at commit time.
 *
 * Statement cache: a chained hash table per connection keyed by the SQL
 * text. Each entry owns its prepared statement and one embedded row cursor,
 * so the hot path (find, bind, step, reset) allocates nothing. An entry is
 * `busy` while a db_rows iterates it; a second query on the same text
 * meanwhile gets its own uncached statement, finalized by db_rows_free().
 *
 * Parameters of db_exec are bound without copying (the statement runs to
 * completion inside the call); those of db_query are copied by SQLite,
 * because the caller may free them before iterating the rows.
 *
 * Write gate: writers of this process take turns at the write lock through
 * a queue of their own before they ask SQLite (see gate_enter()).
 * Invariant: a connection holds the gate (c->gated) from the db_exec that
 * started its write transaction until the db_exec after which SQLite says
 * it no longer holds one, and never waits for the gate while holding
 * SQLite's write lock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <pthread.h>
#include <sqlite3.h>

#include "core/db_int.h"
#include "core/banned.h"

#define BUSY_TIMEOUT_MS 5000

typedef struct sq_stmt sq_stmt;

typedef struct sq_rows {
	struct db_rows base;
	sqlite3_stmt *st;
	sq_stmt *entry; /* NULL when st is not cached */
	bool done;
} sq_rows;

struct sq_stmt {
	sq_stmt *next;
	uint64_t hash;
	size_t len;
	sqlite3_stmt *st;
	bool busy;
	sq_rows rows;
	char sql[];
};

typedef struct sq_conn {
	struct db_conn base;
	sqlite3 *h;
	sq_stmt *buckets[DB_STMT_BUCKETS];
	int nstmts;
	bool gated; /* holds d->gate */
} sq_conn;

static egov_err map_rc(int rc)
{
	if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		return EGOV_ECONFLICT;
	switch (rc & 0xff) {
	case SQLITE_OK:
		return EGOV_OK;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return EGOV_EBUSY;
	case SQLITE_NOMEM:
		return EGOV_ENOMEM;
	default:
		return EGOV_EDB;
	}
}

static egov_err fail(sq_conn *c, int rc)
{
	return db_conn_seterr(&c->base, map_rc(rc), "%s", sqlite3_errmsg(c->h));
}

static void cache_clear(sq_conn *c, bool keep_busy)
{
	int i;
	for (i = 0; i < DB_STMT_BUCKETS; i++) {
		sq_stmt **pp = &c->buckets[i];
		while (*pp) {
			sq_stmt *e = *pp;
			if (keep_busy && e->busy) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			sqlite3_finalize(e->st);
			free(e);
			c->nstmts--;
		}
	}
}

static egov_err prepare(sq_conn *c, const char *sql, unsigned flags, sqlite3_stmt **out)
{
	const char *tail = NULL;
	int rc = sqlite3_prepare_v3(c->h, sql, -1, flags, out, &tail);
	if (rc != SQLITE_OK)
		return fail(c, rc);
	if (!*out)
		return db_conn_seterr(&c->base, EGOV_EINVAL, "empty SQL statement");
	while (tail && (*tail == ' ' || *tail == '\t' || *tail == '\n' || *tail == '\r' || *tail == ';'))
		tail++;
	if (tail && *tail) {
		sqlite3_finalize(*out);
		*out = NULL;
		return db_conn_seterr(&c->base, EGOV_EINVAL, "more than one statement (use db_exec_script)");
	}
	return EGOV_OK;
}

/* Finds or prepares the statement for sql. *entry is NULL when the caller
 * got an uncached statement it must finalize. */
static egov_err stmt_get(sq_conn *c, const char *sql, sqlite3_stmt **st, sq_stmt **entry)
{
	egov_err err;
	size_t len;
	uint64_t h = db_sql_hash(sql, &len);
	sq_stmt *e, **bucket = &c->buckets[h % DB_STMT_BUCKETS];

	*st = NULL;
	*entry = NULL;
	for (e = *bucket; e; e = e->next) {
		if (e->hash == h && e->len == len && memcmp(e->sql, sql, len) == 0)
			break;
	}
	if (e && !e->busy) {
		*st = e->st;
		*entry = e;
		return EGOV_OK;
	}
	if (e) /* in use by an open db_rows: a private statement */
		return prepare(c, sql, 0, st);

	if (c->nstmts >= DB_STMT_CACHE_MAX)
		cache_clear(c, true);
	e = malloc(sizeof *e + len + 1);
	if (!e)
		return db_conn_seterr(&c->base, EGOV_ENOMEM, "out of memory");
	err = prepare(c, sql, SQLITE_PREPARE_PERSISTENT, &e->st);
	if (err) {
		free(e);
		return err;
	}
	e->hash = h;
	e->len = len;
	e->busy = false;
	memcpy(e->sql, sql, len + 1);
	e->next = *bucket;
	*bucket = e;
	c->nstmts++;
	*st = e->st;
	*entry = e;
	return EGOV_OK;
}

static void stmt_put(sqlite3_stmt *st, sq_stmt *entry)
{
	if (entry)
		sqlite3_reset(st);
	else
		sqlite3_finalize(st);
}

static egov_err bind(sq_conn *c, sqlite3_stmt *st, const db_param *p, int n, sqlite3_destructor_type how)
{
	int i, rc = SQLITE_OK;
	int want = sqlite3_bind_parameter_count(st);

	if (n != want || (n > 0 && !p))
		return db_conn_seterr(&c->base, EGOV_EINVAL, "statement takes %d parameters, %d given", want, n);
	for (i = 0; i < n && rc == SQLITE_OK; i++) {
		switch (p[i].type) {
		case DBP_NULL:
			rc = sqlite3_bind_null(st, i + 1);
			break;
		case DBP_INT:
			rc = sqlite3_bind_int64(st, i + 1, p[i].i);
			break;
		case DBP_TEXT:
			rc = p[i].p ? sqlite3_bind_text(st, i + 1, p[i].p, -1, how) : sqlite3_bind_null(st, i + 1);
			break;
		case DBP_BLOB:
			/* SQLite binds a NULL pointer as SQL NULL; an empty blob is
			 * still a blob. */
			rc = p[i].len == 0 ? sqlite3_bind_zeroblob(st, i + 1, 0)
					   : sqlite3_bind_blob64(st, i + 1, p[i].p, p[i].len, how);
			break;
		default:
			return db_conn_seterr(&c->base, EGOV_EINVAL, "parameter %d has an unknown type", i + 1);
		}
	}
	return rc == SQLITE_OK ? EGOV_OK : fail(c, rc);
}

/* ---- the write gate ----------------------------------------------------
 * SQLite lets one connection write at a time. One that finds the lock taken
 * sleeps in its busy handler (1 ms, then 2, 5, 10 ms ...) and tries again:
 * it is not told when the holder lets go. The group-commit writers of this
 * process (db_batch's and the audit log's) meet there on every request that
 * writes through both, and each meeting cost a millisecond or more while
 * the lock was free after a few hundred microseconds. So writers of this
 * process queue here first, in arrival order, and the one that ends its
 * write transaction hands the lock to the next directly. The gate only
 * decides who asks SQLite first: other processes, db_exec_script and writes
 * through db_query still meet SQLite's busy handler (5 s), as before, and a
 * wait here is bounded by the same 5 s (then EGOV_EBUSY, as SQLite's own
 * timeout would answer). */
struct db_gate_waiter {
	pthread_cond_t cv;
	bool granted;
	struct db_gate_waiter *next;
};

/* Whether the statement takes the write lock: a write, or a BEGIN that
 * takes it up front (named as well: SQLite's read-only flag for
 * transaction control has not meant the same in every version). */
static bool takes_write_lock(sqlite3_stmt *st, const char *sql)
{
	return !sqlite3_stmt_readonly(st) || strncasecmp(sql, "BEGIN IMMEDIATE", 15) == 0 ||
	       strncasecmp(sql, "BEGIN EXCLUSIVE", 15) == 0;
}

static egov_err gate_enter(sq_conn *c)
{
	struct db_write_gate *g = &c->base.d->gate;
	struct db_gate_waiter w = {.granted = false, .next = NULL};
	pthread_condattr_t attr;
	struct timespec until;
	egov_err err = EGOV_OK;

	pthread_mutex_lock(&g->mu);
	if (!g->held) {
		g->held = true;
		goto out;
	}
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&w.cv, &attr);
	pthread_condattr_destroy(&attr);
	if (g->tail)
		g->tail->next = &w;
	else
		g->head = &w;
	g->tail = &w;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += BUSY_TIMEOUT_MS / 1000;
	until.tv_nsec += (long)(BUSY_TIMEOUT_MS % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	while (!w.granted)
		if (pthread_cond_timedwait(&w.cv, &g->mu, &until) == ETIMEDOUT)
			break;
	if (!w.granted) {
		/* Leave the queue; nobody handed us the gate. */
		struct db_gate_waiter **pp = &g->head, *prev = NULL;
		while (*pp != &w) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		*pp = w.next;
		if (g->tail == &w)
			g->tail = prev;
		err = db_conn_seterr(&c->base, EGOV_EBUSY, "database is locked (no turn at the write lock in %d ms)",
				     BUSY_TIMEOUT_MS);
	}
	pthread_cond_destroy(&w.cv);
out:
	pthread_mutex_unlock(&g->mu);
	if (!err)
		c->gated = true;
	return err;
}

/* Hands the gate to the first in the queue, else leaves it free. */
static void gate_leave(sq_conn *c)
{
	struct db_write_gate *g = &c->base.d->gate;
	struct db_gate_waiter *w;

	c->gated = false;
	pthread_mutex_lock(&g->mu);
	w = g->head;
	if (w) {
		g->head = w->next;
		if (!g->head)
			g->tail = NULL;
		w->granted = true;
		pthread_cond_signal(&w->cv);
	} else {
		g->held = false;
	}
	pthread_mutex_unlock(&g->mu);
}

/* Process-wide SQLite settings, before the first connection: no memory
 * statistics, which otherwise take one global mutex on every allocation of
 * every connection (measured as lock contention between HTTP workers). */
static pthread_once_t sqlite_configured = PTHREAD_ONCE_INIT;

static void configure_sqlite(void)
{
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static egov_err sq_conn_open(db *d, db_conn **out, char *errmsg, size_t errlen)
{
	egov_err err = EGOV_OK;
	sq_conn *c = NULL;
	sqlite3_stmt *st = NULL;
	int rc;

	*out = NULL;
	pthread_once(&sqlite_configured, configure_sqlite);
	if (!sqlite3_threadsafe()) {
		snprintf(errmsg, errlen, "SQLite library was built without thread support");
		err = EGOV_EINTERNAL;
		goto out;
	}
	c = calloc(1, sizeof *c);
	if (!c) {
		err = EGOV_ENOMEM;
		goto out;
	}
	c->base.be = &db_sqlite_backend;
	c->base.d = d;
	rc = sqlite3_open_v2(d->target, &c->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		snprintf(errmsg, errlen, "cannot open %s: %s", d->target,
			 c->h ? sqlite3_errmsg(c->h) : sqlite3_errstr(rc));
		err = map_rc(rc);
		goto out;
	}
	sqlite3_extended_result_codes(c->h, 1);
	sqlite3_busy_timeout(c->h, BUSY_TIMEOUT_MS);
	/* journal_mode answers with the mode in force: a file system that
	 * cannot do WAL must not silently fall back to a rollback journal. */
	rc = sqlite3_prepare_v2(c->h, "PRAGMA journal_mode=WAL", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		snprintf(errmsg, errlen, "cannot set WAL mode on %s: %s", d->target, sqlite3_errmsg(c->h));
		err = map_rc(rc);
		goto out;
	}
	if (sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
		snprintf(errmsg, errlen, "%s: WAL mode not available (journal_mode is %s)", d->target,
			 (const char *)sqlite3_column_text(st, 0));
		err = EGOV_EDB;
		goto out;
	}
	/* No PRAGMA mmap_size: with writes growing the file, every read
	 * transaction remapped it (measured: a munmap per request on the
	 * refresh-token path); reads through the page cache cost less. */
	rc = sqlite3_exec(c->h, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", NULL,
			  NULL, NULL);
	if (rc != SQLITE_OK) {
		snprintf(errmsg, errlen, "%s: %s", d->target, sqlite3_errmsg(c->h));
		err = map_rc(rc);
		goto out;
	}
	*out = &c->base;
	c = NULL;
out:
	sqlite3_finalize(st);
	if (c) {
		sqlite3_close_v2(c->h);
		free(c);
	}
	return err;
}

static void sq_conn_close(db_conn *bc)
{
	sq_conn *c = (sq_conn *)bc;
	cache_clear(c, false);
	sqlite3_close_v2(c->h); /* rolls back what is open */
	if (c->gated)
		gate_leave(c);
	free(c);
}

static egov_err sq_exec(db_conn *bc, const char *sql, const db_param *p, int n, int64_t *changes)
{
	sq_conn *c = (sq_conn *)bc;
	sqlite3_stmt *st;
	sq_stmt *entry;
	egov_err err;
	int rc;

	err = stmt_get(c, sql, &st, &entry);
	if (err)
		return err;
	err = bind(c, st, p, n, SQLITE_STATIC);
	if (err)
		goto out;
	if (!c->gated && takes_write_lock(st, sql) && sqlite3_txn_state(c->h, NULL) != SQLITE_TXN_WRITE &&
	    (err = gate_enter(c)))
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	if (rc != SQLITE_DONE) {
		err = fail(c, rc);
		goto out;
	}
	if (changes)
		*changes = sqlite3_changes64(c->h);
	c->base.errmsg[0] = '\0';
out:
	stmt_put(st, entry);
	/* COMMIT, ROLLBACK, an autocommit write done, or a BEGIN that failed. */
	if (c->gated && sqlite3_txn_state(c->h, NULL) != SQLITE_TXN_WRITE)
		gate_leave(c);
	return err;
}

static egov_err sq_exec_script(db_conn *bc, const char *sql)
{
	sq_conn *c = (sq_conn *)bc;
	int rc = sqlite3_exec(c->h, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return fail(c, sqlite3_extended_errcode(c->h));
	c->base.errmsg[0] = '\0';
	return EGOV_OK;
}

static egov_err sq_query(db_conn *bc, const char *sql, const db_param *p, int n, db_rows **out)
{
	sq_conn *c = (sq_conn *)bc;
	sqlite3_stmt *st;
	sq_stmt *entry;
	sq_rows *r;
	egov_err err;

	err = stmt_get(c, sql, &st, &entry);
	if (err)
		return err;
	err = bind(c, st, p, n, SQLITE_TRANSIENT);
	if (err)
		goto fail;
	if (entry) {
		r = &entry->rows;
		entry->busy = true;
	} else if (!(r = malloc(sizeof *r))) {
		err = db_conn_seterr(bc, EGOV_ENOMEM, "out of memory");
		goto fail;
	}
	r->base.c = bc;
	r->st = st;
	r->entry = entry;
	r->done = false;
	*out = &r->base;
	return EGOV_OK;
fail:
	stmt_put(st, entry);
	return err;
}

static egov_err sq_rows_next(db_rows *br, bool *has_row)
{
	sq_rows *r = (sq_rows *)br;
	int rc;

	*has_row = false;
	if (r->done)
		return EGOV_OK;
	rc = sqlite3_step(r->st);
	if (rc == SQLITE_ROW) {
		*has_row = true;
		return EGOV_OK;
	}
	r->done = true;
	if (rc == SQLITE_DONE)
		return EGOV_OK;
	return fail((sq_conn *)r->base.c, rc);
}

static int sq_rows_ncols(const db_rows *br)
{
	return sqlite3_column_count(((const sq_rows *)br)->st);
}

static bool sq_rows_isnull(const db_rows *br, int col)
{
	return sqlite3_column_type(((const sq_rows *)br)->st, col) == SQLITE_NULL;
}

static const char *sq_rows_text(const db_rows *br, int col)
{
	return (const char *)sqlite3_column_text(((const sq_rows *)br)->st, col);
}

static int64_t sq_rows_int(const db_rows *br, int col)
{
	return sqlite3_column_int64(((const sq_rows *)br)->st, col);
}

static const void *sq_rows_blob(db_rows *br, int col, size_t *len)
{
	sq_rows *r = (sq_rows *)br;
	const void *p;
	*len = 0;
	if (sqlite3_column_type(r->st, col) == SQLITE_NULL)
		return NULL;
	p = sqlite3_column_blob(r->st, col);
	*len = (size_t)sqlite3_column_bytes(r->st, col);
	return p ? p : "";
}

static void sq_rows_free(db_rows *br)
{
	sq_rows *r = (sq_rows *)br;
	if (r->entry) {
		sqlite3_reset(r->st);
		r->entry->busy = false;
	} else {
		sqlite3_finalize(r->st);
		free(r);
	}
}

static egov_err sq_ping(db_conn *c)
{
	return sq_exec(c, "SELECT 1", NULL, 0, NULL);
}

const struct db_backend db_sqlite_backend = {
	.name = "sqlite",
	.kind = DB_SQLITE,
	.begin_sql = "BEGIN IMMEDIATE",
	.conn_open = sq_conn_open,
	.conn_close = sq_conn_close,
	.exec = sq_exec,
	.exec_script = sq_exec_script,
	.query = sq_query,
	.rows_next = sq_rows_next,
	.rows_ncols = sq_rows_ncols,
	.rows_isnull = sq_rows_isnull,
	.rows_text = sq_rows_text,
	.rows_int = sq_rows_int,
	.rows_blob = sq_rows_blob,
	.rows_free = sq_rows_free,
	.ping = sq_ping,
};
