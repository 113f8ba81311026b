/*
 * db_batch.c: group commit for short writes (see db_batch() in db.h).
 *
 * One writer thread per database handle, started on first use, with its
 * own connection, served by the kernel's group committer
 * (core/group_commit.h). Callers queue a job and sleep on their own
 * semaphore (core/wake.h); the writer chooses the batch's flushing, opens
 * one transaction, takes everything queued by the time it holds the write
 * lock (at most BATCH_MAX), runs each job inside a SAVEPOINT, commits once
 * and wakes the callers. A commit that fails fails every job of the batch
 * that had not failed already. Invariant: a caller is woken only after its
 * job's transaction has committed or rolled back, and the commit is
 * flushed to disk unless every job of the batch came through
 * db_batch_nosync().
 *
 * The chain-log writer (chainlog.c) is the other user of the same core;
 * the two differ in what a batch is (functions in SAVEPOINTs here, hashed
 * rows there), in when the batch is taken (here after BEGIN, so jobs that
 * queue while BEGIN waits for the write lock join it; there after a
 * linger, because a chain batch is retried whole and reads its head only
 * once it holds the lock) and in how callers learn the outcome.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/db_int.h"
#include "core/group_commit.h"
#include "core/wake.h"
#include "core/banned.h"

#define BATCH_MAX 256

typedef struct batch_job {
	gc_item item; /* first: the queue links jobs through it */
	egov_err (*fn)(db_conn *c, void *ctx);
	void *ctx;
	egov_err err;
	bool sync; /* false: db_batch_nosync() */
	/* Released when the job is settled, outside the queue's mutex: a
	 * condition variable on that mutex made every woken caller queue for
	 * it again just to return. */
	wake_node done;
} batch_job;

struct db_batcher {
	group_commit gc;
	db_conn *c;
	bool c_unsynced; /* c is at synchronous=NORMAL */
	batch_job *settled[BATCH_MAX]; /* writer only */
};

static wake_node *settled_at(void *ctx, size_t i)
{
	return &((struct db_batcher *)ctx)->settled[i]->done;
}

/* Settles a batch and wakes its callers. The jobs live on their callers'
 * stacks: none is touched after the release. */
static void finish(struct db_batcher *b, gc_item *jobs, egov_err commit_err)
{
	batch_job *j;
	size_t n = 0;

	for (; jobs; jobs = jobs->next) {
		j = (batch_job *)jobs;
		if (!j->err)
			j->err = commit_err;
		b->settled[n++] = j;
	}
	wake_tree_release(n, settled_at, b);
}

/* Sets the writer connection's flushing for the next batch. */
static egov_err set_sync(struct db_batcher *b, bool sync)
{
	egov_err err;

	if (sync != b->c_unsynced)
		return EGOV_OK;
	err = db_exec(b->c, sync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", NULL, 0, NULL);
	if (!err)
		b->c_unsynced = !sync;
	return err;
}

/* The batch is flushed when a db_batch() job is queued (mode 1). */
static int batch_mode(void *ctx, const gc_item *q)
{
	int n = 0;

	(void)ctx;
	for (; q && n < BATCH_MAX; q = q->next, n++)
		if (((const batch_job *)q)->sync)
			return 1;
	return 0;
}

/* The flushing must be chosen before BEGIN (SQLite refuses to change it
 * inside a transaction), the jobs only after it: those that queue while
 * BEGIN waits for the write lock (another writer's commit) join this batch
 * instead of waiting for the next one. */
static egov_err batch_begin(void *ctx, int mode)
{
	struct db_batcher *b = ctx;
	egov_err err = set_sync(b, mode == 1);

	return err ? err : db_begin(b->c);
}

/* A batch that is not flushed takes only the db_batch_nosync() jobs before
 * the first db_batch() one, which waits for the next. */
static bool batch_fits(void *ctx, const gc_item *it, int mode)
{
	(void)ctx;
	return mode == 1 || !((const batch_job *)it)->sync;
}

/* Runs the jobs in the transaction begun on b->c and commits. */
static void batch_run(void *ctx, gc_item *jobs, size_t n, int mode, egov_err begun)
{
	struct db_batcher *b = ctx;
	batch_job *j;
	gc_item *it;
	egov_err err;

	(void)n;
	(void)mode;
	if (begun) {
		finish(b, jobs, begun);
		return;
	}
	for (it = jobs; it; it = it->next) {
		j = (batch_job *)it;
		if ((j->err = db_exec(b->c, "SAVEPOINT egov_batch", NULL, 0, NULL)))
			continue;
		j->err = j->fn(b->c, j->ctx);
		if (j->err)
			db_exec(b->c, "ROLLBACK TO egov_batch", NULL, 0, NULL);
		if ((err = db_exec(b->c, "RELEASE egov_batch", NULL, 0, NULL)) && !j->err)
			j->err = err;
	}
	err = db_commit(b->c);
	if (err)
		db_rollback(b->c);
	finish(b, jobs, err);
}

static const group_commit_ops batch_ops = {
	.batch_max = BATCH_MAX,
	.mode = batch_mode,
	.begin = batch_begin,
	.fits = batch_fits,
	.run = batch_run,
};

static void batcher_start(db *d)
{
	struct db_batcher *b = calloc(1, sizeof *b);

	if (!b)
		return;
	if (db_conn_open(d, &b->c) || group_commit_start(&b->gc, &batch_ops, b)) {
		if (b->c)
			db_conn_close(b->c);
		free(b);
		return;
	}
	d->batcher = b;
}

/* The handle whose batcher_once is running: pthread_once takes no argument. */
static _Thread_local db *starting;

static void batcher_start_once(void)
{
	batcher_start(starting);
}

/* fn in a transaction of the calling thread's connection. On SQLite that
 * connection always flushes (a stronger promise than nosync asked for).
 *
 * On PostgreSQL the transaction commits without waiting for its flush,
 * and for db_batch() a durable commit of the caller's own follows (a
 * flush barrier: a statement that is given a transaction id commits with
 * synchronous_commit on, and flushes the log up to it, this transaction's
 * commit included). So the locks fn took are released before the flush,
 * not after: a job that appends an audit record holds the chain's lock
 * to its commit, and with the flush inside it the callers' commits
 * followed one another, one flush each; released first, their barriers
 * are flushed together by the server's own group commit. Nothing is
 * acted on before the barrier returns. */
static egov_err direct(db *d, egov_err (*fn)(db_conn *c, void *ctx), void *ctx, bool sync)
{
	db_conn *c = NULL;
	bool pg = db_kind_of(d) == DB_POSTGRES;
	egov_err err;

	if ((err = db_thread_conn(d, &c)) || (err = db_begin(c)))
		return err;
	if (pg && (err = db_exec(c, "SET LOCAL synchronous_commit TO OFF", NULL, 0, NULL))) {
		db_rollback(c);
		return err;
	}
	if ((err = fn(c, ctx)) || (err = db_commit(c))) {
		db_rollback(c);
		return err;
	}
	if (pg && sync)
		err = db_exec(c, "SELECT txid_current()", NULL, 0, NULL);
	return err;
}

static egov_err batch(db *d, egov_err (*fn)(db_conn *c, void *ctx), void *ctx, bool sync)
{
	struct db_batcher *b;
	batch_job job = {.fn = fn, .ctx = ctx, .sync = sync};

	if (db_kind_of(d) == DB_POSTGRES)
		return direct(d, fn, ctx, sync);
	starting = d;
	pthread_once(&d->batcher_once, batcher_start_once);
	b = d->batcher;
	if (!b)
		return direct(d, fn, ctx, sync); /* could not start a writer: still correct */
	if (wake_init(&job.done))
		return direct(d, fn, ctx, sync);
	if (group_commit_queue(&b->gc, &job.item)) {
		/* Stopping: the caller's own transaction is still correct. */
		wake_destroy(&job.done);
		return direct(d, fn, ctx, sync);
	}
	wake_wait(&job.done);
	wake_destroy(&job.done);
	return job.err;
}

egov_err db_batch(db *d, egov_err (*fn)(db_conn *c, void *ctx), void *ctx)
{
	return batch(d, fn, ctx, true);
}

egov_err db_batch_nosync(db *d, egov_err (*fn)(db_conn *c, void *ctx), void *ctx)
{
	return batch(d, fn, ctx, false);
}

void db_batch_stop(db *d)
{
	struct db_batcher *b = d->batcher;

	if (!b)
		return;
	group_commit_release(&b->gc); /* serves what is queued first */
	db_conn_close(b->c);
	free(b);
	d->batcher = NULL;
}
