/*
 * db_batch.c: group commit for short writes (see db_batch() in db.h).
 *
 * One writer thread per database handle, started on first use, with its
 * own connection. Callers queue a job and sleep on their own condition;
 * the writer takes everything queued (at most BATCH_MAX), opens one
 * transaction, runs each job inside a SAVEPOINT, commits once and wakes the
 * callers. A commit that fails fails every job of the batch that had not
 * failed already. Invariant: a caller is woken only after its job's
 * transaction has committed or rolled back.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/db_int.h"

#define BATCH_MAX 256

typedef struct batch_job {
	egov_err (*fn)(db_conn *c, void *ctx);
	void *ctx;
	egov_err err;
	bool done;
	pthread_cond_t cv;
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
};

static void finish(struct db_batcher *b, batch_job *jobs, egov_err commit_err)
{
	batch_job *j, *next;

	pthread_mutex_lock(&b->mu);
	for (j = jobs; j; j = next) {
		next = j->next;
		if (!j->err)
			j->err = commit_err;
		j->done = true;
		pthread_cond_signal(&j->cv);
	}
	pthread_mutex_unlock(&b->mu);
}

static void run_batch(struct db_batcher *b, batch_job *jobs)
{
	batch_job *j;
	egov_err err;

	if ((err = db_begin(b->c))) {
		finish(b, jobs, err);
		return;
	}
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

static void *writer_main(void *arg)
{
	struct db_batcher *b = arg;

	pthread_mutex_lock(&b->mu);
	for (;;) {
		batch_job *jobs, *last;
		int n = 1;
		while (!b->head && !b->stop)
			pthread_cond_wait(&b->cv, &b->mu);
		if (!b->head)
			break;
		jobs = last = b->head;
		while (last->next && n < BATCH_MAX) {
			last = last->next;
			n++;
		}
		b->head = last->next;
		if (!b->head)
			b->tail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&b->mu);
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

static egov_err direct(db *d, egov_err (*fn)(db_conn *c, void *ctx), void *ctx)
{
	db_conn *c = NULL;
	egov_err err;

	if ((err = db_thread_conn(d, &c)) || (err = db_begin(c)))
		return err;
	if ((err = fn(c, ctx)) || (err = db_commit(c)))
		db_rollback(c);
	return err;
}

egov_err db_batch(db *d, egov_err (*fn)(db_conn *c, void *ctx), void *ctx)
{
	struct db_batcher *b;
	batch_job job = {.fn = fn, .ctx = ctx};

	if (db_kind_of(d) == DB_POSTGRES)
		return direct(d, fn, ctx);
	starting = d;
	pthread_once(&d->batcher_once, batcher_start_once);
	b = d->batcher;
	if (!b)
		return direct(d, fn, ctx); /* could not start a writer: still correct */
	pthread_cond_init(&job.cv, NULL);
	pthread_mutex_lock(&b->mu);
	if (b->stop) {
		pthread_mutex_unlock(&b->mu);
		pthread_cond_destroy(&job.cv);
		return direct(d, fn, ctx);
	}
	if (b->tail)
		b->tail->next = &job;
	else
		b->head = &job;
	b->tail = &job;
	pthread_cond_signal(&b->cv);
	while (!job.done)
		pthread_cond_wait(&job.cv, &b->mu);
	pthread_mutex_unlock(&b->mu);
	pthread_cond_destroy(&job.cv);
	return job.err;
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
