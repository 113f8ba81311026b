/*
 * chainlog.c: the chain-log writer (chainlog.h): the group-commit writer
 * thread on the kernel's group committer, appends inside a caller's
 * transaction, and appends without a writer. The record hash is in
 * chainlog_hash.c, the verifier in chainlog_verify.c.
 *
 * Invariants:
 * - Only the writer thread touches its db_conn, its hasher, its batch and
 *   parameter arrays; appenders only queue a `pending` (on their stack
 *   while they wait, else a private copy) and are told when it is settled.
 * - A record is reported committed only after COMMIT returned; a failed
 *   batch is rolled back whole and every caller in it gets the error.
 * - Every appending transaction reads the head after taking the
 *   appenders' lock, so a batch that fails or a caller's transaction that
 *   rolls back needs no head restored. `length` and `cp_len` are figures
 *   (metrics, the checkpoint hook), never the basis of an append.
 * - The time column is taken under the lock from one process-wide clock
 *   that never goes backwards, so time order follows seq order.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/chainlog.h"
#include "core/group_commit.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/wake.h"
#include "core/banned.h"

/* A conflict on seq or a lock timeout means another process appended or
 * held the lock past what the lock should allow; retry a few times rather
 * than fail the callers. */
#define CHAINLOG_RETRIES 3
/* Longest the writer lingers for a group to re-form (group_commit.h). */
#define CHAINLOG_LINGER_MAX_US 1000
/* Insert statement shapes: 1, 2, 4, ... 64 rows. */
#define CHAINLOG_SHAPES 7
/* Longest SQL text of the one-row statements built on the stack. */
#define CHAINLOG_SQL_MAX 512

typedef struct pending {
	gc_item item; /* first: the writer's queue links through it */
	const db_param *vals;
	/* async: called on the writer thread, then the pending is freed */
	void (*done)(void *ctx, egov_err err);
	void *ctx;
	/* a waiter's, on its stack: released when the batch is settled */
	wake_node *wake;
	egov_err err;
	int64_t seq;
	char time[32];
	char prev_hex[CHAINLOG_HEX_LEN + 1];
	char hash_hex[CHAINLOG_HEX_LEN + 1];
	db_param copy[]; /* async: the values, their bytes after them */
} pending;

struct chainlog {
	const chainlog_desc *d;
	db_conn *conn; /* the writer's */
	void *user;
	group_commit gc;
	group_commit_ops ops; /* the descriptor's limits */
	chainlog_hasher hasher;
	size_t shapes; /* insert_sql[k] inserts 2^k rows, k < shapes */
	char *insert_sql[CHAINLOG_SHAPES];
	pending **batch;
	wake_node **wakes;
	db_param *params;

	_Atomic int64_t length;
	int64_t cp_len; /* writer only: the head the hook last saw */
	pthread_mutex_t cp_mu;
	int64_t cp_every;
	chainlog_checkpoint_fn cp_fn;
	void *cp_ctx;

	char why[256]; /* writer only: the database's message for a failed batch */
	_Atomic int64_t st_batches, st_records, st_conflicts, st_failed, st_commit_us;
};

/* ---- shared by every appending path ------------------------------------------ */

/* The process's chain clock: never goes backwards, so records appended by
 * this process carry times in seq order (each is taken under the lock). */
static _Atomic int64_t last_time_us;

static void next_time(char out[32])
{
	int64_t now = time_now_us(), last = atomic_load(&last_time_us);

	do {
		if (now < last)
			now = last;
	} while (!atomic_compare_exchange_weak(&last_time_us, &last, now));
	time_format_rfc3339(now, 6, out);
}

/* Whether vals fit the descriptor's kinds. */
static bool vals_ok(const chainlog_desc *d, const db_param *vals)
{
	size_t i;

	if (!vals)
		return false;
	for (i = 0; i < d->ncols; i++) {
		const db_param *v = &vals[i];
		switch (d->cols[i].kind) {
		case CHAINLOG_TEXT:
			if (v->type != DBP_TEXT || !v->p)
				return false;
			break;
		case CHAINLOG_INT:
			if (v->type != DBP_INT)
				return false;
			break;
		case CHAINLOG_STORED:
			if ((v->type == DBP_TEXT && !v->p) || (v->type == DBP_BLOB && v->len && !v->p) ||
			    v->type == DBP_INT)
				return false;
			break;
		case CHAINLOG_TIME:
			break;
		}
	}
	return true;
}

/* A one-row statement naming the descriptor's table and columns; false if
 * the names do not fit (a descriptor no one would write). */
static bool sql_fmt(char out[CHAINLOG_SQL_MAX], const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool sql_fmt(char out[CHAINLOG_SQL_MAX], const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, CHAINLOG_SQL_MAX, fmt, ap);
	va_end(ap);
	return n > 0 && n < CHAINLOG_SQL_MAX;
}

egov_err chainlog_head(const chainlog_desc *d, db_conn *c, int64_t *seq, unsigned char hash[CHAINLOG_HASH_LEN])
{
	char sql[CHAINLOG_SQL_MAX];
	db_rows *r = NULL;
	bool has = false;
	egov_err err = EGOV_EINVAL;

	*seq = 0;
	memset(hash, 0, CHAINLOG_HASH_LEN);
	if (!sql_fmt(sql, "SELECT %s, %s FROM %s ORDER BY %s DESC LIMIT 1", d->seq_col, d->hash_col, d->table,
		     d->seq_col))
		goto out;
	if ((err = db_query(c, sql, NULL, 0, &r)) || (err = db_rows_next(r, &has)) || !has)
		goto out;
	*seq = db_rows_int(r, 0);
	if (!chainlog_hex_decode(db_rows_text(r, 1), hash))
		err = EGOV_ECORRUPT;
out:
	db_rows_free(r);
	return err;
}

/* The appenders' lock. SQLite: the caller's write transaction (BEGIN
 * IMMEDIATE) is it. PostgreSQL: a table lock that conflicts with itself
 * and with every write, not with plain reads. */
static egov_err take_lock(const chainlog_desc *d, db_conn *c)
{
	char sql[CHAINLOG_SQL_MAX];

	if (db_conn_kind(c) != DB_POSTGRES)
		return EGOV_OK;
	if (!sql_fmt(sql, "LOCK TABLE %s IN EXCLUSIVE MODE", d->table))
		return EGOV_EINVAL;
	return db_exec(c, sql, NULL, 0, NULL);
}

static egov_err begin_locked(const chainlog_desc *d, db_conn *c)
{
	egov_err err = db_begin(c);

	if (!err && (err = take_lock(d, c)))
		db_rollback(c);
	return err;
}

/* Whether seq is taken: tells a replay (a conflict on another unique
 * key) from another process having appended past the lock. */
static egov_err seq_taken(const chainlog_desc *d, db_conn *c, int64_t seq, bool *found)
{
	char sql[CHAINLOG_SQL_MAX];
	db_param p[] = {DBP_I(seq)};
	int64_t one = 0;

	*found = false;
	if (!sql_fmt(sql, "SELECT 1 FROM %s WHERE %s = ?", d->table, d->seq_col))
		return EGOV_EINVAL;
	return db_query_int(c, sql, p, 1, &one, found);
}

/* "INSERT INTO t(seq, cols..., prev, hash) VALUES (?,...),..." for rows. */
static egov_err build_insert(const chainlog_desc *d, size_t rows, char **out)
{
	size_t i, r, per = d->ncols + 3;
	buf b;
	egov_err err;

	*out = NULL;
	buf_init(&b, 1 << 20);
	err = buf_addf(&b, "INSERT INTO %s(%s", d->table, d->seq_col);
	for (i = 0; i < d->ncols && !err; i++)
		err = buf_addf(&b, ", %s", d->cols[i].name);
	if (!err)
		err = buf_addf(&b, ", %s, %s) VALUES ", d->prev_col, d->hash_col);
	for (r = 0; r < rows && !err; r++) {
		err = buf_adds(&b, r ? ",(" : "(");
		for (i = 0; i < per && !err; i++)
			err = buf_adds(&b, i ? ",?" : "?");
		if (!err)
			err = buf_addc(&b, ')');
	}
	if (err)
		buf_release(&b);
	else
		*out = buf_detach(&b, NULL);
	return err;
}

/* One row's parameters: seq, the columns (the time filled in), prev, hash. */
static void bind_row(const chainlog_desc *d, db_param *p, int64_t seq, const db_param *vals, const char *time,
		     const char *prev_hex, const char *hash_hex)
{
	size_t i;

	p[0] = DBP_I(seq);
	for (i = 0; i < d->ncols; i++)
		p[1 + i] = d->cols[i].kind == CHAINLOG_TIME ? DBP_S(time) : vals[i];
	p[1 + d->ncols] = DBP_S(prev_hex);
	p[2 + d->ncols] = DBP_S(hash_hex);
}

/* ---- inside a caller's transaction, and without a writer ------------------- */

egov_err chainlog_append_tx(const chainlog_desc *d, db_conn *c, const db_param *vals, int64_t *seq_out)
{
	unsigned char prev[CHAINLOG_HASH_LEN], hash[CHAINLOG_HASH_LEN];
	char time[32], prev_hex[CHAINLOG_HEX_LEN + 1], hash_hex[CHAINLOG_HEX_LEN + 1];
	db_param p[CHAINLOG_COLS_MAX + 3];
	chainlog_hasher h = {0};
	char *sql = NULL;
	int64_t head = 0;
	egov_err err = EGOV_EINVAL;

	if (seq_out)
		*seq_out = 0;
	if (d->ncols > CHAINLOG_COLS_MAX || !vals_ok(d, vals))
		goto out;
	if ((err = chainlog_hasher_init(&h)) || (err = build_insert(d, 1, &sql)))
		goto out;
	if ((err = take_lock(d, c)) || (err = chainlog_head(d, c, &head, prev)))
		goto out;
	next_time(time);
	if ((err = chainlog_hash(d, &h, prev, head + 1, vals, time, hash)))
		goto out;
	chainlog_hex_encode(prev, prev_hex);
	chainlog_hex_encode(hash, hash_hex);
	bind_row(d, p, head + 1, vals, time, prev_hex, hash_hex);
	if (!d->conflict_fails_one) {
		err = db_exec(c, sql, p, (int)d->ncols + 3, NULL);
	} else if (!(err = db_exec(c, "SAVEPOINT chainlog_tx", NULL, 0, NULL))) {
		/* A replay must leave the caller's transaction usable, which
		 * PostgreSQL would otherwise have aborted. */
		err = db_exec(c, sql, p, (int)d->ncols + 3, NULL);
		if (err)
			db_exec(c, "ROLLBACK TO SAVEPOINT chainlog_tx", NULL, 0, NULL);
		db_exec(c, "RELEASE SAVEPOINT chainlog_tx", NULL, 0, NULL);
	}
	if (!err && seq_out)
		*seq_out = head + 1;
out:
	free(sql);
	chainlog_hasher_release(&h);
	return err;
}

egov_err chainlog_append_direct(const chainlog_desc *d, db *dbh, const db_param *vals, int64_t *seq_out)
{
	db_conn *c = NULL;
	int attempt;
	egov_err err;

	if (seq_out)
		*seq_out = 0;
	if ((err = db_conn_open(dbh, &c)))
		goto out;
	for (attempt = 0; attempt <= CHAINLOG_RETRIES; attempt++) {
		if ((err = db_begin(c)))
			break;
		err = chainlog_append_tx(d, c, vals, seq_out);
		if (!err)
			err = db_commit(c);
		/* A COMMIT that failed may leave the transaction open (SQLite
		 * on BUSY), so it is rolled back like any other failure. */
		if (err)
			db_rollback(c);
		if (err != EGOV_EBUSY)
			break;
	}
	if (err && seq_out)
		*seq_out = 0;
out:
	if (c)
		db_conn_close(c);
	return err;
}

/* ---- the writer ------------------------------------------------------------------ */

/* Gives p its seq, time and hash after prev (updated to p's hash). */
static egov_err chain_one(chainlog *l, pending *p, int64_t seq, unsigned char prev[CHAINLOG_HASH_LEN])
{
	unsigned char hash[CHAINLOG_HASH_LEN];
	egov_err err;

	p->seq = seq;
	next_time(p->time);
	if ((err = chainlog_hash(l->d, &l->hasher, prev, seq, p->vals, p->time, hash)))
		return err;
	chainlog_hex_encode(prev, p->prev_hex);
	chainlog_hex_encode(hash, p->hash_hex);
	memcpy(prev, hash, CHAINLOG_HASH_LEN);
	return EGOV_OK;
}

static egov_err insert_rows(chainlog *l, pending **rows, size_t count)
{
	size_t i, per = l->d->ncols + 3;
	int k = 0;

	while ((1u << (k + 1)) <= count && (size_t)(k + 1) < l->shapes)
		k++;
	for (i = 0; i < count; i++)
		bind_row(l->d, &l->params[i * per], rows[i]->seq, rows[i]->vals, rows[i]->time, rows[i]->prev_hex,
			 rows[i]->hash_hex);
	return db_exec(l->conn, l->insert_sql[k], l->params, (int)(count * per), NULL);
}

/* Rolls a failed batch back, keeping the database's message for the log
 * (the ROLLBACK would clear it). */
static void rollback(chainlog *l)
{
	snprintf(l->why, sizeof l->why, "%s", db_conn_errmsg(l->conn));
	db_rollback(l->conn);
}

/* batch[0..n) (and the side rows) in one transaction with multi-row
 * INSERTs. Any error, a replay among them too, leaves nothing behind. On
 * success *head/head_hash are the new head. */
static egov_err commit_fast(chainlog *l, void *side, size_t n, int64_t *head, unsigned char prev[CHAINLOG_HASH_LEN])
{
	size_t i, done, chunk;
	egov_err err;

	if ((err = begin_locked(l->d, l->conn))) {
		snprintf(l->why, sizeof l->why, "%s", db_conn_errmsg(l->conn));
		return err;
	}
	if ((side && (err = l->d->side_insert(l->conn, side, l->user))) ||
	    (err = chainlog_head(l->d, l->conn, head, prev)))
		goto out;
	for (i = 0; i < n; i++) {
		l->batch[i]->err = EGOV_OK;
		if ((err = chain_one(l, l->batch[i], *head + 1 + (int64_t)i, prev)))
			goto out;
	}
	for (done = 0; done < n; done += chunk) {
		chunk = n - done;
		if (chunk > l->d->insert_rows_max)
			chunk = l->d->insert_rows_max;
		/* Largest power of two not above what is left. */
		while (chunk & (chunk - 1))
			chunk &= chunk - 1;
		if ((err = insert_rows(l, l->batch + done, chunk)))
			goto out;
	}
	/* A COMMIT that failed may leave the transaction open (SQLite on
	 * BUSY), so it is rolled back like any other failure. */
	if (!(err = db_commit(l->conn)))
		*head += (int64_t)n;
out:
	if (err)
		rollback(l);
	return err;
}

/* The batch again, one record per SAVEPOINT: a replay fails that record
 * (EGOV_ECONFLICT) and consumes no seq; the others commit. */
static egov_err commit_slow(chainlog *l, void *side, size_t n, int64_t *head, unsigned char prev[CHAINLOG_HASH_LEN])
{
	unsigned char saved[CHAINLOG_HASH_LEN];
	bool taken = false;
	size_t i;
	egov_err err, e;

	if ((err = begin_locked(l->d, l->conn))) {
		snprintf(l->why, sizeof l->why, "%s", db_conn_errmsg(l->conn));
		return err;
	}
	if ((side && (err = l->d->side_insert(l->conn, side, l->user))) ||
	    (err = chainlog_head(l->d, l->conn, head, prev)))
		goto out;
	for (i = 0; i < n; i++) {
		pending *p = l->batch[i];

		memcpy(saved, prev, sizeof saved);
		if ((err = chain_one(l, p, *head + 1, prev)) ||
		    (err = db_exec(l->conn, "SAVEPOINT chainlog_rec", NULL, 0, NULL)))
			goto out;
		e = insert_rows(l, &p, 1);
		if (e == EGOV_OK) {
			p->err = EGOV_OK;
			(*head)++;
			if ((err = db_exec(l->conn, "RELEASE SAVEPOINT chainlog_rec", NULL, 0, NULL)))
				goto out;
			continue;
		}
		memcpy(prev, saved, sizeof saved);
		if ((err = db_exec(l->conn, "ROLLBACK TO SAVEPOINT chainlog_rec", NULL, 0, NULL)) ||
		    (err = db_exec(l->conn, "RELEASE SAVEPOINT chainlog_rec", NULL, 0, NULL)))
			goto out;
		if (e != EGOV_ECONFLICT) {
			err = e;
			goto out;
		}
		if ((err = seq_taken(l->d, l->conn, *head + 1, &taken)))
			goto out;
		if (taken) {
			/* Another process appended past our lock: retry the
			 * whole batch. */
			err = EGOV_EBUSY;
			goto out;
		}
		p->err = EGOV_ECONFLICT;
		p->seq = 0;
	}
	err = db_commit(l->conn);
out:
	if (err)
		rollback(l);
	return err;
}

static egov_err commit_batch(chainlog *l, void *side, size_t n, int64_t *head, char head_hex[CHAINLOG_HEX_LEN + 1])
{
	unsigned char hash[CHAINLOG_HASH_LEN];
	egov_err err = EGOV_OK;
	bool slow = false;
	int attempt;

	for (attempt = 0; attempt <= CHAINLOG_RETRIES; attempt++) {
		err = slow ? commit_slow(l, side, n, head, hash) : commit_fast(l, side, n, head, hash);
		if (err == EGOV_ECONFLICT && !slow && l->d->conflict_fails_one) {
			slow = true;
			attempt--; /* the second pass is not a retry */
			continue;
		}
		if (err != EGOV_EBUSY && err != EGOV_ECONFLICT)
			break;
	}
	if (!err)
		chainlog_hex_encode(hash, head_hex);
	return err;
}

static void run_checkpoint(chainlog *l, int64_t head, const char *hex)
{
	chainlog_checkpoint_fn fn;
	int64_t every;
	void *ctx;

	pthread_mutex_lock(&l->cp_mu);
	fn = l->cp_fn;
	every = l->cp_every;
	ctx = l->cp_ctx;
	pthread_mutex_unlock(&l->cp_mu);
	if (fn && every > 0 && l->cp_len / every != head / every)
		fn(ctx, head, hex);
	l->cp_len = head;
}

static wake_node *wake_at(void *ctx, size_t i)
{
	return ((chainlog *)ctx)->wakes[i];
}

/* The group committer's run(): one transaction for the batch, then each
 * caller told. */
static void writer_run(void *ctx, gc_item *items, size_t n, int mode, egov_err begun)
{
	char head_hex[CHAINLOG_HEX_LEN + 1];
	int64_t t0, head = 0;
	chainlog *l = ctx;
	void *side = NULL;
	size_t i = 0, nw = 0;
	egov_err err, e;

	(void)mode;
	(void)begun;
	for (; items; items = items->next)
		l->batch[i++] = (pending *)items;
	if (l->d->side_take)
		side = l->d->side_take(l->user);
	t0 = time_mono_us();
	err = commit_batch(l, side, n, &head, head_hex);
	atomic_fetch_add(&l->st_commit_us, time_mono_us() - t0);
	atomic_fetch_add(&l->st_batches, 1);
	if (side && l->d->side_done)
		l->d->side_done(side, err, l->user);
	/* Before any caller learns of its record, so that the figure never
	 * lags what a caller has seen committed. */
	if (!err)
		atomic_store(&l->length, head);
	if (err) {
		log_error(l->d->log_event, "%s commit of %zu records failed: %s (%s)", l->d->what, n, egov_err_name(err),
			  l->why);
		atomic_fetch_add(&l->st_failed, (int64_t)n);
	}
	for (i = 0; i < n; i++) {
		pending *p = l->batch[i];

		e = err ? err : p->err;
		if (e) {
			p->seq = 0;
			if (e == EGOV_ECONFLICT && !err)
				atomic_fetch_add(&l->st_conflicts, 1);
		} else {
			atomic_fetch_add(&l->st_records, 1);
		}
		if (p->wake) {
			p->err = e;
			l->wakes[nw++] = p->wake;
		} else {
			p->done(p->ctx, e);
			free(p);
		}
	}
	/* The waiters' pendings live on their stacks: none is touched after
	 * this. */
	wake_tree_release(nw, wake_at, l);
	/* After the callers are released: a checkpoint may be slow. */
	if (!err)
		run_checkpoint(l, head, head_hex);
}

/* ---- public: the writer ------------------------------------------------------------- */

static void log_free(chainlog *l)
{
	size_t k;

	if (!l)
		return;
	/* The writer first: it uses what follows. */
	group_commit_release(&l->gc);
	if (l->conn)
		db_conn_close(l->conn);
	chainlog_hasher_release(&l->hasher);
	for (k = 0; k < CHAINLOG_SHAPES; k++)
		free(l->insert_sql[k]);
	free(l->batch);
	free(l->wakes);
	free(l->params);
	pthread_mutex_destroy(&l->cp_mu);
	free(l);
}

static bool desc_ok(const chainlog_desc *d)
{
	size_t r = d->insert_rows_max;

	return d->table && d->seq_col && d->prev_col && d->hash_col && d->cols && d->ncols &&
	       d->ncols <= CHAINLOG_COLS_MAX && d->batch_max >= 1 && r >= 1 && r <= 64 && !(r & (r - 1)) &&
	       d->verify_page >= 1 && d->log_event && d->what &&
	       (!d->side_take || (d->side_insert && d->side_done));
}

egov_err chainlog_open(const chainlog_desc *d, db *dbh, void *user, chainlog **out)
{
	unsigned char hash[CHAINLOG_HASH_LEN];
	chainlog *l = NULL;
	int64_t seq = 0;
	size_t k;
	egov_err err = EGOV_EINVAL;

	*out = NULL;
	if (!desc_ok(d))
		goto out;
	err = EGOV_ENOMEM;
	if (!(l = calloc(1, sizeof *l)))
		goto out;
	pthread_mutex_init(&l->cp_mu, NULL);
	l->d = d;
	l->user = user;
	for (l->shapes = 1; ((size_t)1 << l->shapes) <= d->insert_rows_max; l->shapes++)
		;
	if (!(l->batch = calloc(d->batch_max, sizeof *l->batch)) || !(l->wakes = calloc(d->batch_max, sizeof *l->wakes)) ||
	    !(l->params = calloc(d->insert_rows_max * (d->ncols + 3), sizeof *l->params)))
		goto out;
	for (k = 0; k < l->shapes; k++)
		if ((err = build_insert(d, (size_t)1 << k, &l->insert_sql[k])))
			goto out;
	if ((err = chainlog_hasher_init(&l->hasher)) || (err = db_conn_open(dbh, &l->conn)))
		goto out;
	/* The head now, so a missing table or a corrupt head fails the open,
	 * not the first caller. */
	if ((err = chainlog_head(d, l->conn, &seq, hash)))
		goto out;
	atomic_store(&l->length, seq);
	l->cp_len = seq;
	l->ops = (group_commit_ops){.batch_max = d->batch_max,
				    .batch_bytes = d->batch_bytes,
				    .queue_bytes_max = d->queue_bytes_max,
				    .linger_max_us = CHAINLOG_LINGER_MAX_US,
				    .run = writer_run};
	if ((err = group_commit_start(&l->gc, &l->ops, l)))
		goto out;
	*out = l;
	l = NULL;
out:
	log_free(l);
	return err;
}

void chainlog_stop(chainlog *l)
{
	/* The writer serves the queue before it exits: every record queued
	 * before this is committed (or failed) and its caller told. */
	group_commit_stop(&l->gc);
}

void chainlog_close(chainlog *l)
{
	if (!l)
		return;
	chainlog_stop(l);
	log_free(l);
}

static size_t vals_bytes(const chainlog_desc *d, const db_param *vals)
{
	size_t i, n = 0;

	for (i = 0; i < d->ncols; i++) {
		if (vals[i].type == DBP_TEXT && vals[i].p && d->cols[i].kind != CHAINLOG_TIME)
			n += strlen(vals[i].p) + 1;
		else if (vals[i].type == DBP_BLOB)
			n += vals[i].len;
	}
	return n;
}

egov_err chainlog_append(chainlog *l, const db_param *vals, int64_t *seq_out)
{
	pending p = {0};
	wake_node done;
	egov_err err = EGOV_EINVAL;

	if (seq_out)
		*seq_out = 0;
	if (!l || !vals_ok(l->d, vals))
		goto out;
	p.vals = vals;
	p.wake = &done;
	if (l->d->batch_bytes || l->d->queue_bytes_max)
		p.item.bytes = sizeof p + vals_bytes(l->d, vals);
	if ((err = wake_init(&done)))
		goto out;
	if ((err = group_commit_queue(&l->gc, &p.item))) {
		wake_destroy(&done);
		goto out;
	}
	wake_wait(&done);
	wake_destroy(&done);
	err = p.err;
	if (!err && seq_out)
		*seq_out = p.seq;
out:
	return err;
}

/* One allocation holding the pending, its values and their bytes. */
static egov_err copy_pending(const chainlog_desc *d, const db_param *vals, pending **out)
{
	size_t i, n, size = d->ncols * sizeof(db_param) + vals_bytes(d, vals);
	char *mem;
	pending *p;

	if (!(p = calloc(1, sizeof *p + size + 1)))
		return EGOV_ENOMEM;
	mem = (char *)(p->copy + d->ncols);
	for (i = 0; i < d->ncols; i++) {
		p->copy[i] = vals[i];
		if (d->cols[i].kind == CHAINLOG_TIME) {
			p->copy[i] = DBP_NULLV;
		} else if (vals[i].type == DBP_TEXT) {
			n = strlen(vals[i].p) + 1;
			memcpy(mem, vals[i].p, n);
			p->copy[i].p = mem;
			mem += n;
		} else if (vals[i].type == DBP_BLOB) {
			/* An empty blob is still a blob, not NULL. */
			if (vals[i].len)
				memcpy(mem, vals[i].p, vals[i].len);
			p->copy[i].p = mem;
			mem += vals[i].len;
		}
	}
	p->vals = p->copy;
	p->item.bytes = sizeof *p + size;
	*out = p;
	return EGOV_OK;
}

egov_err chainlog_append_async(chainlog *l, const db_param *vals, void (*done)(void *ctx, egov_err err), void *ctx)
{
	pending *p = NULL;
	egov_err err = EGOV_EINVAL;

	if (!l || !done || !vals_ok(l->d, vals))
		goto out;
	if ((err = copy_pending(l->d, vals, &p)))
		goto out;
	p->done = done;
	p->ctx = ctx;
	if ((err = group_commit_queue(&l->gc, &p->item)))
		goto out;
	p = NULL;
out:
	free(p);
	return err;
}

void chainlog_kick(chainlog *l)
{
	if (l)
		group_commit_kick(&l->gc);
}

void chainlog_note_append(chainlog *l, int64_t seq)
{
	int64_t every, old;
	bool hook;

	if (!l)
		return;
	pthread_mutex_lock(&l->cp_mu);
	every = l->cp_every;
	hook = l->cp_fn != NULL;
	pthread_mutex_unlock(&l->cp_mu);
	/* Optimistic until the writer next reads the head, which it stores. */
	old = atomic_load(&l->length);
	while (old < seq && !atomic_compare_exchange_weak(&l->length, &old, seq))
		;
	if (hook && every > 0 && old / every != seq / every)
		group_commit_kick(&l->gc);
}

int64_t chainlog_length(chainlog *l)
{
	return l ? atomic_load(&l->length) : 0;
}

void chainlog_set_checkpoint(chainlog *l, int64_t every_n, chainlog_checkpoint_fn fn, void *ctx)
{
	pthread_mutex_lock(&l->cp_mu);
	l->cp_every = every_n;
	l->cp_fn = fn;
	l->cp_ctx = ctx;
	pthread_mutex_unlock(&l->cp_mu);
}

void chainlog_stats_get(chainlog *l, chainlog_stats *out)
{
	out->batches = atomic_load(&l->st_batches);
	out->records = atomic_load(&l->st_records);
	out->conflicts = atomic_load(&l->st_conflicts);
	out->failed = atomic_load(&l->st_failed);
	out->commit_us = atomic_load(&l->st_commit_us);
}
