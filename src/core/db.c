/*
 * db.c: the backend-independent half of the db layer: URL parsing and
 * backend choice, the list of connections a handle owns, per-thread
 * connections, statistics, the one-row query helpers and the migrations
 * runner. Everything dialect-specific is behind struct db_backend.
 *
 * Invariants: every public entry point that runs SQL counts itself in the
 * handle's statistics (atomically, so workers never contend on a lock);
 * a migration and its schema_migrations row commit in one transaction, so
 * a crash leaves a migration either wholly applied and recorded or neither.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <libpq-fe.h>

#include "core/db_int.h"
#include "core/banned.h"

egov_err db_conn_seterr(db_conn *c, egov_err err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
	va_end(ap);
	return err;
}

uint64_t db_sql_hash(const char *sql, size_t *len)
{
	/* FNV-1a over 8-byte words: SQL texts are hashed on every call, so
	 * this is kept to a few nanoseconds for a typical statement. */
	size_t n = strlen(sql), i = 0;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, sql + i, 8);
		h = (h ^ w) * 0x100000001b3ULL;
		h ^= h >> 29;
	}
	for (; i < n; i++)
		h = (h ^ (unsigned char)sql[i]) * 0x100000001b3ULL;
	*len = n;
	return h ^ (h >> 32);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void stats_add(db *d, uint64_t t0, egov_err err)
{
	atomic_fetch_add_explicit(&d->queries, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&d->time_ns, now_ns() - t0, memory_order_relaxed);
	if (err)
		atomic_fetch_add_explicit(&d->errors, 1, memory_order_relaxed);
}

static void errset(char *errmsg, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errset(char *errmsg, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!errmsg || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(errmsg, errlen, fmt, ap);
	va_end(ap);
}

/* Checks the directory that will hold a SQLite file, creating one missing
 * last level (the data directory's own subdirectory) but no more. */
static egov_err sqlite_dir_check(const char *path, char *errmsg, size_t errlen)
{
	egov_err err = EGOV_OK;
	char *dir = strdup(path);
	char *slash;
	struct stat st;

	if (!dir) {
		err = EGOV_ENOMEM;
		goto out;
	}
	slash = strrchr(dir, '/');
	if (!slash)
		goto out; /* relative to the working directory */
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (stat(dir, &st) != 0) {
		if (errno == ENOENT && mkdir(dir, 0700) == 0)
			goto out;
		errset(errmsg, errlen, "database directory %s does not exist and cannot be created", dir);
		err = EGOV_EIO;
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		errset(errmsg, errlen, "%s is not a directory", dir);
		err = EGOV_EIO;
	}
out:
	free(dir);
	return err;
}

static void thread_conn_release(void *p)
{
	db_conn *c = p;
	db_conn_close(c);
}

egov_err db_open(const char *url, db **out, char *errmsg, size_t errlen)
{
	egov_err err = EGOV_OK;
	db *d = NULL;
	const struct db_backend *be = NULL;
	const char *target = NULL;
	db_conn *probe = NULL;
	bool key_made = false, lock_made = false, gate_made = false;

	*out = NULL;
	if (errmsg && errlen)
		errmsg[0] = '\0';
	if (!url || !*url) {
		errset(errmsg, errlen, "%s", "no database URL given");
		err = EGOV_EINVAL;
		goto out;
	}
	if (strncmp(url, "sqlite:", 7) == 0) {
		be = &db_sqlite_backend;
		target = url + 7;
		if (!*target) {
			errset(errmsg, errlen, "%s", "sqlite: URL has no file path (use sqlite:/path/to/egov.db)");
			err = EGOV_EINVAL;
			goto out;
		}
		if (strcmp(target, ":memory:") == 0 || strncmp(target, "file:", 5) == 0) {
			errset(errmsg, errlen, "%s",
			       "sqlite: needs a plain file path (an in-memory database would differ per connection)");
			err = EGOV_EINVAL;
			goto out;
		}
		err = sqlite_dir_check(target, errmsg, errlen);
		if (err)
			goto out;
	} else if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0) {
		char *perr = NULL;
		PQconninfoOption *opts = PQconninfoParse(url, &perr);
		if (!opts) {
			errset(errmsg, errlen, "bad PostgreSQL URL: %s", perr ? perr : "out of memory");
			/* libpq's message ends in a newline; drop it. */
			if (errmsg && errlen && *errmsg && errmsg[strlen(errmsg) - 1] == '\n')
				errmsg[strlen(errmsg) - 1] = '\0';
			PQfreemem(perr);
			err = EGOV_EINVAL;
			goto out;
		}
		PQconninfoFree(opts);
		be = &db_pg_backend;
		target = url;
	} else {
		errset(errmsg, errlen, "%s", "unknown database URL (expected sqlite:PATH or postgres://...)");
		err = EGOV_EINVAL;
		goto out;
	}

	d = calloc(1, sizeof *d);
	if (d)
		d->batcher_once = (pthread_once_t)PTHREAD_ONCE_INIT;
	if (!d || !(d->target = strdup(target))) {
		err = EGOV_ENOMEM;
		goto out;
	}
	d->be = be;
	if (pthread_mutex_init(&d->lock, NULL) != 0) {
		err = EGOV_ENOMEM;
		goto out;
	}
	lock_made = true;
	if (pthread_mutex_init(&d->gate.mu, NULL) != 0) {
		err = EGOV_ENOMEM;
		goto out;
	}
	gate_made = true;
	if (pthread_key_create(&d->key, thread_conn_release) != 0) {
		errset(errmsg, errlen, "%s", "out of thread-local keys");
		err = EGOV_ENOMEM;
		goto out;
	}
	key_made = true;

	/* SQLite: open once now so a bad file or an unwritable directory is
	 * reported at startup, and WAL mode (persistent in the file) is set
	 * before workers race to open their connections. */
	if (be->kind == DB_SQLITE) {
		err = be->conn_open(d, &probe, errmsg, errlen);
		if (err)
			goto out;
		be->conn_close(probe);
	}
	*out = d;
	d = NULL;
out:
	if (d) {
		if (key_made)
			pthread_key_delete(d->key);
		if (lock_made)
			pthread_mutex_destroy(&d->lock);
		if (gate_made)
			pthread_mutex_destroy(&d->gate.mu);
		free(d->target);
		free(d);
	}
	return err;
}

void db_close(db *d)
{
	db_conn *c, *next;
	if (!d)
		return;
	db_batch_stop(d);
	/* Callers stop their worker threads first; deleting the key means no
	 * thread-exit destructor runs for this handle afterwards. */
	pthread_key_delete(d->key);
	pthread_mutex_lock(&d->lock);
	c = d->conns;
	d->conns = NULL;
	pthread_mutex_unlock(&d->lock);
	for (; c; c = next) {
		next = c->next;
		c->be->conn_close(c);
	}
	pthread_mutex_destroy(&d->lock);
	pthread_mutex_destroy(&d->gate.mu);
	free(d->target);
	free(d);
}

db_kind db_kind_of(const db *d)
{
	return d->be->kind;
}

const char *db_kind_name(const db *d)
{
	return d->be->name;
}

egov_err db_conn_open(db *d, db_conn **out)
{
	egov_err err;
	db_conn *c = NULL;
	char msg[DB_ERRMSG_MAX];

	*out = NULL;
	msg[0] = '\0';
	err = d->be->conn_open(d, &c, msg, sizeof msg);
	pthread_mutex_lock(&d->lock);
	if (err) {
		memcpy(d->open_errmsg, msg, sizeof msg);
	} else {
		c->be = d->be;
		c->d = d;
		c->prev = NULL;
		c->next = d->conns;
		if (d->conns)
			d->conns->prev = c;
		d->conns = c;
	}
	pthread_mutex_unlock(&d->lock);
	if (!err)
		*out = c;
	return err;
}

void db_open_errmsg(db *d, char *buf, size_t len)
{
	if (!len)
		return;
	pthread_mutex_lock(&d->lock);
	snprintf(buf, len, "%s", d->open_errmsg);
	pthread_mutex_unlock(&d->lock);
}

void db_conn_close(db_conn *c)
{
	db *d;
	if (!c)
		return;
	d = c->d;
	pthread_mutex_lock(&d->lock);
	if (c->prev)
		c->prev->next = c->next;
	else if (d->conns == c)
		d->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&d->lock);
	/* A thread's own connection closed by hand must not be closed again
	 * when the thread exits. */
	if (pthread_getspecific(d->key) == c)
		pthread_setspecific(d->key, NULL);
	c->be->conn_close(c);
}

egov_err db_thread_conn(db *d, db_conn **out)
{
	egov_err err = EGOV_OK;
	db_conn *c = pthread_getspecific(d->key);
	if (!c) {
		err = db_conn_open(d, &c);
		if (err)
			goto out;
		if (pthread_setspecific(d->key, c) != 0) {
			db_conn_close(c);
			c = NULL;
			err = EGOV_ENOMEM;
			goto out;
		}
	}
out:
	*out = c;
	return err;
}

db_kind db_conn_kind(const db_conn *c)
{
	return c->be->kind;
}

const char *db_conn_errmsg(const db_conn *c)
{
	return c->errmsg;
}

egov_err db_exec(db_conn *c, const char *sql, const db_param *params, int nparams, int64_t *changes)
{
	uint64_t t0 = now_ns();
	egov_err err;
	if (changes)
		*changes = 0;
	err = c->be->exec(c, sql, params, nparams, changes);
	stats_add(c->d, t0, err);
	return err;
}

egov_err db_exec_script(db_conn *c, const char *sql)
{
	uint64_t t0 = now_ns();
	egov_err err = c->be->exec_script(c, sql);
	stats_add(c->d, t0, err);
	return err;
}

egov_err db_query(db_conn *c, const char *sql, const db_param *params, int nparams, db_rows **out)
{
	uint64_t t0 = now_ns();
	egov_err err;
	*out = NULL;
	err = c->be->query(c, sql, params, nparams, out);
	stats_add(c->d, t0, err);
	return err;
}

egov_err db_rows_next(db_rows *r, bool *has_row)
{
	/* Stepping is where SQLite does the work of a query, so its time
	 * counts too; only the query itself counts as one statement. */
	uint64_t t0 = now_ns();
	egov_err err = r->c->be->rows_next(r, has_row);
	db *d = r->c->d;
	atomic_fetch_add_explicit(&d->time_ns, now_ns() - t0, memory_order_relaxed);
	if (err)
		atomic_fetch_add_explicit(&d->errors, 1, memory_order_relaxed);
	return err;
}

int db_rows_ncols(const db_rows *r)
{
	return r->c->be->rows_ncols(r);
}

bool db_rows_isnull(const db_rows *r, int col)
{
	return r->c->be->rows_isnull(r, col);
}

const char *db_rows_text(const db_rows *r, int col)
{
	return r->c->be->rows_text(r, col);
}

int64_t db_rows_int(const db_rows *r, int col)
{
	return r->c->be->rows_int(r, col);
}

const void *db_rows_blob(db_rows *r, int col, size_t *len)
{
	return r->c->be->rows_blob(r, col, len);
}

void db_rows_free(db_rows *r)
{
	if (r)
		r->c->be->rows_free(r);
}

egov_err db_query_text(db_conn *c, const char *sql, const db_param *params, int nparams, char **out)
{
	egov_err err;
	db_rows *r = NULL;
	bool has = false;
	const char *t;

	*out = NULL;
	err = db_query(c, sql, params, nparams, &r);
	if (err)
		goto out;
	err = db_rows_next(r, &has);
	if (err || !has)
		goto out;
	t = db_rows_text(r, 0);
	if (t && !(*out = strdup(t)))
		err = EGOV_ENOMEM;
out:
	db_rows_free(r);
	return err;
}

egov_err db_query_int(db_conn *c, const char *sql, const db_param *params, int nparams, int64_t *out, bool *found)
{
	egov_err err;
	db_rows *r = NULL;
	bool has = false;

	*out = 0;
	err = db_query(c, sql, params, nparams, &r);
	if (err)
		goto out;
	err = db_rows_next(r, &has);
	if (err || !has)
		goto out;
	*out = db_rows_int(r, 0);
out:
	if (found)
		*found = !err && has;
	db_rows_free(r);
	return err;
}

/* Inside a transaction, db_begin() opens a SAVEPOINT named by its depth,
 * so a store function that makes its several statements one transaction
 * runs unchanged inside a caller's larger one. */
static void savepoint_name(char out[32], int depth)
{
	snprintf(out, 32, "egov_tx%d", depth);
}

egov_err db_begin(db_conn *c)
{
	char sql[64], name[32];
	egov_err err;

	if (c->tx_depth == 0) {
		if (!(err = db_exec(c, c->be->begin_sql, NULL, 0, NULL)))
			c->tx_depth = 1;
		return err;
	}
	savepoint_name(name, c->tx_depth);
	snprintf(sql, sizeof sql, "SAVEPOINT %s", name);
	if (!(err = db_exec(c, sql, NULL, 0, NULL)))
		c->tx_depth++;
	return err;
}

egov_err db_commit(db_conn *c)
{
	char sql[64], name[32];

	if (c->tx_depth <= 1) {
		/* Over whatever the outcome: a COMMIT that fails is followed by
		 * the caller's ROLLBACK, which must be the real one. */
		c->tx_depth = 0;
		return db_exec(c, "COMMIT", NULL, 0, NULL);
	}
	savepoint_name(name, --c->tx_depth);
	snprintf(sql, sizeof sql, "RELEASE %s", name);
	return db_exec(c, sql, NULL, 0, NULL);
}

egov_err db_rollback(db_conn *c)
{
	char sql[64], name[32];
	egov_err err;

	if (c->tx_depth <= 1) {
		c->tx_depth = 0;
		return db_exec(c, "ROLLBACK", NULL, 0, NULL);
	}
	savepoint_name(name, --c->tx_depth);
	snprintf(sql, sizeof sql, "ROLLBACK TO %s", name);
	err = db_exec(c, sql, NULL, 0, NULL);
	snprintf(sql, sizeof sql, "RELEASE %s", name);
	if (!err)
		err = db_exec(c, sql, NULL, 0, NULL);
	return err;
}

egov_err db_end(db_conn *c, egov_err err)
{
	if (!err && !(err = db_commit(c)))
		return EGOV_OK;
	/* A failed COMMIT leaves SQLite's transaction open (PostgreSQL's is
	 * over, and its ROLLBACK then only warns). */
	db_rollback(c);
	return err;
}

egov_err db_ping(db_conn *c)
{
	uint64_t t0 = now_ns();
	egov_err err = c->be->ping(c);
	stats_add(c->d, t0, err);
	return err;
}

void db_stats_get(const db *d, db_stats *out)
{
	/* The fields are atomics; the handle itself is not modified. */
	db *m = (db *)(uintptr_t)d;
	out->queries = atomic_load_explicit(&m->queries, memory_order_relaxed);
	out->errors = atomic_load_explicit(&m->errors, memory_order_relaxed);
	out->time_us = atomic_load_explicit(&m->time_ns, memory_order_relaxed) / 1000;
}

/* ---- migrations ------------------------------------------------------- */

static const char MIG_TABLE[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
				"module TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL, "
				"applied_at TEXT NOT NULL, PRIMARY KEY (module, version))";
static const char MIG_APPLIED[] = "SELECT 1 FROM schema_migrations WHERE module = ? AND version = ?";
static const char MIG_RECORD[] = "INSERT INTO schema_migrations (module, version, name, applied_at) "
				 "VALUES (?, ?, ?, ?)";
/* Serializes migrating nodes that share a PostgreSQL database; SQLite's
 * BEGIN IMMEDIATE already does. The key is arbitrary but fixed. */
static const char MIG_LOCK_PG[] = "SELECT pg_advisory_xact_lock(7166530172634906113)";

static const char *mig_sql(const db_conn *c, const db_migration *m)
{
	const char *s = c->be->kind == DB_SQLITE ? m->sql_sqlite : m->sql_postgres;
	return s ? s : m->sql;
}

static egov_err mig_check(db_conn *c, const char *module, const db_migration *m, size_t n)
{
	size_t i;
	if (!module || !*module || (n && !m))
		return db_conn_seterr(c, EGOV_EINVAL, "migrations: no module name");
	for (i = 0; i < n; i++) {
		if (m[i].version < 1 || (i > 0 && m[i].version <= m[i - 1].version))
			return db_conn_seterr(c, EGOV_EINVAL, "migrations of %s: version %d out of order", module,
					      m[i].version);
		if (!m[i].name || !mig_sql(c, &m[i]))
			return db_conn_seterr(c, EGOV_EINVAL, "migrations of %s: version %d has no %s text", module,
					      m[i].version, c->be->name);
	}
	return EGOV_OK;
}

/* Opens a transaction holding the migration lock (SQLite: the write lock). */
static egov_err mig_lock(db_conn *c)
{
	egov_err err = db_begin(c);
	if (err)
		return err;
	if (c->be->kind == DB_POSTGRES) {
		err = db_exec(c, MIG_LOCK_PG, NULL, 0, NULL);
		if (err)
			db_rollback(c);
	}
	return err;
}

static egov_err mig_table(db_conn *c)
{
	egov_err err = mig_lock(c);
	if (err)
		return err;
	err = db_exec(c, MIG_TABLE, NULL, 0, NULL);
	if (!err)
		err = db_commit(c);
	if (err)
		db_rollback(c);
	return err;
}

static egov_err mig_is_applied(db_conn *c, const char *module, int version, bool *applied)
{
	int64_t one;
	db_param p[2] = {DBP_S(module), DBP_I(version)};
	return db_query_int(c, MIG_APPLIED, p, 2, &one, applied);
}

static void utc_now(char out[32])
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

egov_err db_migrate(db_conn *c, const char *module, const db_migration *m, size_t n, int *applied)
{
	egov_err err;
	size_t i;
	bool done, in_tx = false;
	char when[32];
	char *save = NULL;

	if (applied)
		*applied = 0;
	err = mig_check(c, module, m, n);
	if (err)
		goto out;
	err = mig_table(c);
	if (err)
		goto out;
	for (i = 0; i < n; i++) {
		err = mig_is_applied(c, module, m[i].version, &done);
		if (err)
			goto out;
		if (done)
			continue;
		err = mig_lock(c);
		if (err)
			goto out;
		in_tx = true;
		/* Another node may have applied it while we waited for the lock. */
		err = mig_is_applied(c, module, m[i].version, &done);
		if (err)
			goto out;
		if (!done) {
			err = db_exec_script(c, mig_sql(c, &m[i]));
			if (err) {
				/* Keep the backend's message; the rollback would clear it. */
				save = strdup(c->errmsg);
				goto out;
			}
			utc_now(when);
			db_param p[4] = {DBP_S(module), DBP_I(m[i].version), DBP_S(m[i].name), DBP_S(when)};
			err = db_exec(c, MIG_RECORD, p, 4, NULL);
			if (err)
				goto out;
		}
		err = db_commit(c);
		in_tx = false;
		if (err)
			goto out;
		if (!done && applied)
			(*applied)++;
	}
out:
	if (in_tx) {
		if (!save)
			save = strdup(c->errmsg);
		db_rollback(c);
		if (err)
			snprintf(c->errmsg, sizeof c->errmsg, "migration %s %d failed: %s", module,
				 m[i].version, save ? save : "");
	}
	free(save);
	return err;
}

egov_err db_migrations_pending(db_conn *c, const char *module, const db_migration *m, size_t n, int *pending)
{
	egov_err err;
	size_t i;
	bool done;

	*pending = 0;
	err = mig_check(c, module, m, n);
	if (err)
		goto out;
	err = mig_table(c);
	if (err)
		goto out;
	for (i = 0; i < n; i++) {
		err = mig_is_applied(c, module, m[i].version, &done);
		if (err)
			goto out;
		if (!done)
			(*pending)++;
	}
out:
	return err;
}
