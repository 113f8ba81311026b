/*
 * test_pool.c: the kernel's blocking pool (core/pool.h): every request
 * handed over runs once, stop lets the queue empty before it returns and
 * refuses later hand-overs, a full queue refuses at once instead of
 * waiting.
 *
 * The pool never looks inside a request, so these tests hand it tokens
 * that are not real requests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>

#include "core/pool.h"
#include "testutil.h"
#include "core/banned.h"

#define TOKENS 4096

static atomic_int ran[TOKENS];
static atomic_int total;
static char token[TOKENS]; /* &token[i] stands for request i */

static void count_run(req *r)
{
	size_t i = (size_t)((char *)(void *)r - token);

	atomic_fetch_add(&ran[i], 1);
	atomic_fetch_add(&total, 1);
}

static void reset(void)
{
	size_t i;

	for (i = 0; i < TOKENS; i++)
		atomic_store(&ran[i], 0);
	atomic_store(&total, 0);
}

static req *tok(size_t i)
{
	return (req *)(void *)&token[i];
}

static void test_every_request_runs_once(void **state)
{
	size_t i, queued = 0;

	(void)state;
	reset();
	assert_int_equal(pool_start(4, count_run), EGOV_OK);
	for (i = 0; i < TOKENS; i++) {
		/* A full queue refuses; a caller would answer 503. Retry here. */
		while (!pool_submit(tok(i)))
			sched_yield();
		queued++;
	}
	pool_stop();
	assert_int_equal(atomic_load(&total), (int)queued);
	for (i = 0; i < TOKENS; i++)
		assert_int_equal(atomic_load(&ran[i]), 1);
	/* Stopped: nothing is taken any more, and stopping again is harmless. */
	assert_false(pool_submit(tok(0)));
	pool_stop();
}

/* One thread, held inside its first request: the queue fills to its bound
 * and the next hand-over is refused at once. */
static sem_t started, release_it;

static void hold_run(req *r)
{
	if (r == tok(0)) {
		sem_post(&started);
		while (sem_wait(&release_it) != 0)
			;
	}
	count_run(r);
}

static void test_full_queue_refuses_without_waiting(void **state)
{
	size_t i, accepted = 1;

	(void)state;
	reset();
	assert_int_equal(sem_init(&started, 0, 0), 0);
	assert_int_equal(sem_init(&release_it, 0, 0), 0);
	assert_int_equal(pool_start(1, hold_run), EGOV_OK);
	assert_true(pool_submit(tok(0)));
	while (sem_wait(&started) != 0)
		;
	for (i = 1; i < TOKENS && pool_submit(tok(i)); i++)
		accepted++;
	assert_true(i < TOKENS);  /* a hand-over was refused ... */
	assert_int_equal(accepted, 1 + 1024); /* ... once the 1024-slot ring was full */
	sem_post(&release_it);
	pool_stop();
	assert_int_equal(atomic_load(&total), (int)accepted);
	sem_destroy(&started);
	sem_destroy(&release_it);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_request_runs_once),
		cmocka_unit_test(test_full_queue_refuses_without_waiting),
	};
	return cmocka_run_group_tests_name("pool", tests, NULL, NULL);
}
