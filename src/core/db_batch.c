/*
 * db_batch.c: group commit for short writes (see db_batch() in db.h).
 *
 * One writer thread per database handle, started on first use, with its
 * own connection. Callers queue a job and sleep on their own semaphore
 * (core/wake.h);
 * the writer opens one transaction, takes everything queued by the time it
 * holds the write lock (at most BATCH_MAX), runs each job inside a
 * SAVEPOINT, commits once and wakes the callers. A commit that fails fails
 * every job of the batch that had not failed already. Invariant: a caller
 * is woken only after its job's transaction has committed or rolled back,
 * and the commit is flushed to disk unless every job of the batch came
 * through db_batch_nosync().
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/db_int.h"
#include "core/wake.h"
#include "core/banned.h"

#define BATCH_MAX 256

typedef struct batch_job {
	egov_err (*fn)(db_conn *c, void *ctx);
	void *ctx;
	egov_err err;
	bool sync; /* false: db_batch_nosync() */
	/* Released when the job is settled, outside the queue's mutex: a
	 * condition variable on that mutex made every woken caller queue for
	 * it again just to return. */
	wake_node done;
	struct batch_job *next;
} batch_job;

struct db_batcher {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	batch_job *head, *tail;
	bool stop;
	bool running;
	pthread_t thread;
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
static void finish(struct db_batcher *b, batch_job *jobs, egov_err commit_err)
{
	batch_job *j;
	size_t n = 0;

	for (j = jobs; j; j = j->next) {
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

/* Runs jobs (a list) in the transaction begun on b->c and commits. */
static void run_batch(struct db_batcher *b, batch_job *jobs)
{
	batch_job *j;
	egov_err err;

	for (j = jobs; j; j = j->next) {
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

/* Whether the next batch must be flushed: a db_batch() job is queued. */
static bool queued_sync(const struct db_batcher *b)
{
	const batch_job *j;
	int n = 0;

	for (j = b->head; j && n < BATCH_MAX; j = j->next, n++)
		if (j->sync)
			return true;
	return false;
}

/* Detaches the next batch (mu held): up to BATCH_MAX jobs, and for a batch
 * that is not flushed only the db_batch_nosync() jobs before the first
 * db_batch() one, which waits for the next. */
static batch_job *take(struct db_batcher *b, bool sync)
{
	batch_job *jobs = b->head, *last = NULL, *j;
	int n = 0;

	for (j = b->head; j && n < BATCH_MAX && (sync || !j->sync); j = j->next, n++)
		last = j;
	if (!last)
		return NULL;
	b->head = last->next;
	if (!b->head)
		b->tail = NULL;
	last->next = NULL;
	return jobs;
}

static void *writer_main(void *arg)
{
	struct db_batcher *b = arg;

	pthread_mutex_lock(&b->mu);
	for (;;) {
		batch_job *jobs;
		bool sync;
		egov_err err;

		while (!b->head && !b->stop)
			pthread_cond_wait(&b->cv, &b->mu);
		if (!b->head)
			break;
		/* The flushing must be chosen before BEGIN (SQLite refuses to
		 * change it inside a transaction), the jobs only after it: those
		 * that queue while BEGIN waits for the write lock (another
		 * writer's commit) join this batch instead of waiting for the
		 * next one. */
		sync = queued_sync(b);
		pthread_mutex_unlock(&b->mu);
		err = set_sync(b, sync);
		if (!err)
			err = db_begin(b->c);
		pthread_mutex_lock(&b->mu);
		jobs = take(b, sync);
		pthread_mutex_unlock(&b->mu);
		if (err)
			finish(b, jobs, err);
		else
			run_batch(b, jobs);
		pthread_mutex_lock(&b->mu);
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

static void batcher_start(db *d)
{
	struct db_batcher *b = calloc(1, sizeof *b);

	if (!b)
		return;
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	if (db_conn_open(d, &b->c) || pthread_create(&b->thread, NULL, writer_main, b) != 0) {
		if (b->c)
			db_conn_close(b->c);
		pthread_cond_destroy(&b->cv);
		pthread_mutex_destroy(&b->mu);
		free(b);
		return;
	}
	b->running = true;
	d->batcher = b;
}

/* The handle whose batcher_once is running: pthread_once takes no argument. */
static _Thread_local db *starting;

static void batcher_start_once(void)
{
	batcher_start(starting);
}

/* fn in a transaction of the calling thread's connection. On SQLite that
 * connection always flushes (a stronger promise than nosync asked for). */
static egov_err direct(db *d, egov_err (*fn)(db_conn *c, void *ctx), void *ctx, bool sync)
{
	db_conn *c = NULL;
	egov_err err;

	if ((err = db_thread_conn(d, &c)) || (err = db_begin(c)))
		return err;
	if (!sync && db_kind_of(d) == DB_POSTGRES &&
	    (err = db_exec(c, "SET LOCAL synchronous_commit TO OFF", NULL, 0, NULL))) {
		db_rollback(c);
		return err;
	}
	if ((err = fn(c, ctx)) || (err = db_commit(c)))
		db_rollback(c);
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
	pthread_mutex_lock(&b->mu);
	if (b->stop) {
		pthread_mutex_unlock(&b->mu);
		wake_destroy(&job.done);
		return direct(d, fn, ctx, sync);
	}
	if (b->tail)
		b->tail->next = &job;
	else
		b->head = &job;
	b->tail = &job;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
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
	pthread_mutex_lock(&b->mu);
	b->stop = true;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
	pthread_join(b->thread, NULL); /* drains what is queued first */
	db_conn_close(b->c);
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
	free(b);
	d->batcher = NULL;
}
