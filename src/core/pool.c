/*
 * pool.c: the kernel's blocking pool, where the handlers of .blocking routes
 * run (Argon2id password checks, PKCS#12 key wrapping, token grants that
 * wait on commits).
 *
 * Such a handler would hold an HTTP worker for tens of milliseconds to
 * seconds, and with workers sized to the cores a few of them stall every
 * other request. Their handlers run here instead: the worker hands the
 * request over, suspends the connection and goes on serving; the pool
 * thread builds the response and resumes it (http_mhd.c). The queue is
 * bounded: past it the request gets 503 at once.
 *
 * The worker's hand-over never waits for a pool thread. The pool threads run
 * at a lower priority (below) and are often preempted; with a mutex and a
 * condition variable around the queue, a worker handing over a request
 * waited for whichever pool thread held the mutex, or (glibc's
 * pthread_cond_signal) for woken pool threads to leave the old wait group,
 * and every request on that worker, a 429 included, waited with it: in a
 * profile of a login flood the workers' time off the CPU was almost all in
 * that hand-over. The queue is now a bounded lock-free ring (Vyukov's
 * multi-producer multi-consumer queue) and a semaphore counts what is in
 * it: sem_post does not block.
 *
 * Invariants: a cell's seq equals its position when free for that push and
 * position + 1 when it holds a request; the semaphore's count is the number
 * of requests queued (plus, at stop, one token per thread). Once stop is set
 * and no pool_submit() is under way, nothing more is queued.
 */
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/pool.h"
#include "core/banned.h"

#define BLOCKING_QUEUE_MAX 1024 /* a power of two */

typedef struct pool_cell {
	atomic_size_t seq; /* == position: free for that push; == position + 1: holds r */
	req *r;
} pool_cell;

static struct {
	pool_cell cell[BLOCKING_QUEUE_MAX];
	atomic_size_t head, tail; /* next position to take, to fill */
	sem_t ready;		  /* one post per request queued, one per thread at stop */
	atomic_bool stop;
	atomic_int submitting; /* pool_submit calls in progress */
	void (*run)(req *r);
	pthread_t *threads;
	size_t nthreads;
} pool;

/* The blocking pool's threads run at a lower priority than the HTTP
 * workers: their work is long by definition (password hashes, key
 * generation, token grants that wait on commits), and when it keeps the
 * cores busy a worker with a request to answer (a 429, a page) must get a
 * core the moment it wakes. Measured at 10x the hashing ceiling's load: 429
 * latency p90 1.2-1.5 ms at nice 0, 0.3-0.4 ms at nice 5 (nginx's fixed 429
 * beside the same hashing: 0.3 ms), logins unchanged; nice 10 and 19 were
 * no better. Raising nice needs no privilege; failing to is harmless. */
#define POOL_NICE 5

/* The oldest queued request, or NULL when the queue is empty. A position
 * a worker has claimed but not filled yet is waited for (it fills it next,
 * without blocking). */
static req *pool_take(void)
{
	size_t pos = atomic_load_explicit(&pool.head, memory_order_relaxed);

	for (;;) {
		pool_cell *c = &pool.cell[pos & (BLOCKING_QUEUE_MAX - 1)];
		size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
		intptr_t dif = (intptr_t)seq - (intptr_t)(pos + 1);
		if (dif == 0) {
			if (atomic_compare_exchange_weak_explicit(&pool.head, &pos, pos + 1, memory_order_relaxed,
								  memory_order_relaxed)) {
				req *r = c->r;
				atomic_store_explicit(&c->seq, pos + BLOCKING_QUEUE_MAX, memory_order_release);
				return r;
			}
		} else if (dif < 0) {
			if (pos == atomic_load_explicit(&pool.tail, memory_order_acquire))
				return NULL; /* empty */
			sched_yield(); /* claimed, not filled yet */
			pos = atomic_load_explicit(&pool.head, memory_order_relaxed);
		} else {
			pos = atomic_load_explicit(&pool.head, memory_order_relaxed);
		}
	}
}

static void *pool_main(void *arg)
{
	(void)arg;
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), POOL_NICE);
	for (;;) {
		req *r;
		if (sem_wait(&pool.ready) != 0)
			continue; /* EINTR */
		/* A post is a request queued, or at stop a token: a thread
		 * leaves on a token only once the queue is empty. */
		if (!(r = pool_take()))
			return NULL;
		pool.run(r);
	}
}

egov_err pool_start(size_t nthreads, void (*run)(req *r))
{
	size_t i;

	for (i = 0; i < BLOCKING_QUEUE_MAX; i++)
		atomic_store(&pool.cell[i].seq, i);
	atomic_store(&pool.head, 0);
	atomic_store(&pool.tail, 0);
	atomic_store(&pool.stop, false);
	atomic_store(&pool.submitting, 0);
	pool.run = run;
	if (sem_init(&pool.ready, 0, 0) != 0)
		return EGOV_EINTERNAL;
	pool.threads = calloc(nthreads, sizeof *pool.threads);
	if (!pool.threads) {
		sem_destroy(&pool.ready);
		return EGOV_ENOMEM;
	}
	for (i = 0; i < nthreads; i++) {
		if (pthread_create(&pool.threads[i], NULL, pool_main, NULL) != 0)
			break;
		pool.nthreads++;
	}
	if (!pool.nthreads) {
		free(pool.threads);
		pool.threads = NULL;
		sem_destroy(&pool.ready);
		return EGOV_EINTERNAL;
	}
	return EGOV_OK;
}

void pool_stop(void)
{
	size_t i;

	if (!pool.nthreads)
		return;
	/* No hand-over starts after this; those under way finish first, so
	 * every queued request is taken before the last thread leaves. */
	atomic_store(&pool.stop, true);
	while (atomic_load(&pool.submitting) > 0)
		sched_yield();
	for (i = 0; i < pool.nthreads; i++)
		sem_post(&pool.ready);
	for (i = 0; i < pool.nthreads; i++)
		pthread_join(pool.threads[i], NULL);
	free(pool.threads);
	pool.threads = NULL;
	pool.nthreads = 0;
	sem_destroy(&pool.ready);
}

bool pool_submit(req *r)
{
	size_t pos;
	bool ok = false;

	atomic_fetch_add(&pool.submitting, 1);
	if (atomic_load(&pool.stop))
		goto out;
	pos = atomic_load_explicit(&pool.tail, memory_order_relaxed);
	for (;;) {
		pool_cell *c = &pool.cell[pos & (BLOCKING_QUEUE_MAX - 1)];
		size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
		intptr_t dif = (intptr_t)seq - (intptr_t)pos;
		if (dif == 0) {
			if (atomic_compare_exchange_weak_explicit(&pool.tail, &pos, pos + 1, memory_order_relaxed,
								  memory_order_relaxed)) {
				c->r = r;
				atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
				sem_post(&pool.ready);
				ok = true;
				break;
			}
		} else if (dif < 0) {
			break; /* full */
		} else {
			pos = atomic_load_explicit(&pool.tail, memory_order_relaxed);
		}
	}
out:
	atomic_fetch_sub(&pool.submitting, 1);
	return ok;
}
