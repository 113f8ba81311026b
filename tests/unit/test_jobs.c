/*
 * test_jobs.c: the kernel's job runner (core/jobs.h): a periodic job, a
 * job that asks to run again at once, a woken job and how wakes coalesce,
 * stop order, a blocking pass cut short by its interrupt, the back-off
 * after failed passes, refused descriptions, /metrics, and a job's own
 * database connection on every backend.
 *
 * Timing assertions have lower bounds that the runner guarantees and upper
 * bounds loose enough for a loaded machine.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "core/db.h"
#include "core/jobs.h"
#include "core/timeutil.h"
#include "testutil.h"
#include "core/banned.h"

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Polls until *v >= want or ms passed; returns whether it got there. */
static bool eventually(atomic_int *v, int want, int ms)
{
	int64_t until = time_mono_us() + (int64_t)ms * 1000;

	while (atomic_load(v) < want) {
		if (time_mono_us() > until)
			return false;
		sleep_ms(2);
	}
	return true;
}

/* ---- periodic, again at once, woken ------------------------------------------ */

static atomic_int periodic_n;

static int64_t periodic_run(job_ctx *j)
{
	(void)j;
	atomic_fetch_add(&periodic_n, 1);
	return -1;
}

static const job periodic_job = {.name = "test.periodic", .period_ms = 50, .run = periodic_run};

static void test_periodic(void **state)
{
	const job *list[] = {&periodic_job};
	int n;

	(void)state;
	atomic_store(&periodic_n, 0);
	assert_int_equal(jobs_start(NULL, list, 1), EGOV_OK);
	/* the first pass runs at start, not after a period */
	assert_true(eventually(&periodic_n, 1, 1000));
	sleep_ms(600);
	n = atomic_load(&periodic_n);
	jobs_stop(list, 1);
	print_message("# %d passes in about 600 ms at a 50 ms period\n", n);
	assert_true(n >= 5);
	assert_true(n <= 16);
	/* stopped means no more passes */
	n = atomic_load(&periodic_n);
	sleep_ms(120);
	assert_int_equal(atomic_load(&periodic_n), n);
}

static atomic_int again_n;

/* Wants to run again at once four times, then waits for a wake. A
 * returned delay is cut to the period, so a huge one still runs often. */
static int64_t again_run(job_ctx *j)
{
	(void)j;
	return atomic_fetch_add(&again_n, 1) < 4 ? 0 : -1;
}

static const job again_job = {.name = "test.again", .run = again_run};

static atomic_int capped_n;

static int64_t capped_run(job_ctx *j)
{
	(void)j;
	atomic_fetch_add(&capped_n, 1);
	return 3600 * 1000;
}

static const job capped_job = {.name = "test.capped", .period_ms = 30, .run = capped_run};

static void test_run_again(void **state)
{
	const job *list[] = {&again_job, &capped_job};

	(void)state;
	atomic_store(&again_n, 0);
	atomic_store(&capped_n, 0);
	assert_int_equal(jobs_start(NULL, list, 2), EGOV_OK);
	assert_true(eventually(&again_n, 5, 1000));
	assert_true(eventually(&capped_n, 4, 2000));
	sleep_ms(150);
	assert_int_equal(atomic_load(&again_n), 5);
	jobs_stop(list, 2);
}

static atomic_int woken_n;
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open = true;
static atomic_int in_pass;

/* Waits at the gate while the test holds it closed. */
static int64_t woken_run(job_ctx *j)
{
	(void)j;
	atomic_store(&in_pass, 1);
	pthread_mutex_lock(&gate_mu);
	while (!gate_open)
		pthread_cond_wait(&gate_cv, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
	atomic_store(&in_pass, 0);
	atomic_fetch_add(&woken_n, 1);
	return -1;
}

static const job woken_job = {.name = "test.woken", .run = woken_run};

static void gate(bool open)
{
	pthread_mutex_lock(&gate_mu);
	gate_open = open;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
}

static void test_woken(void **state)
{
	const job *list[] = {&woken_job};
	int i;

	(void)state;
	atomic_store(&woken_n, 0);
	gate(true);
	assert_int_equal(jobs_start(NULL, list, 1), EGOV_OK);
	assert_true(eventually(&woken_n, 1, 1000));
	/* period 0: nothing more until woken */
	sleep_ms(150);
	assert_int_equal(atomic_load(&woken_n), 1);
	job_wake(&woken_job);
	assert_true(eventually(&woken_n, 2, 1000));
	sleep_ms(100);
	assert_int_equal(atomic_load(&woken_n), 2);

	/* Coalescing: a hundred wakes while a pass runs make one more pass. */
	gate(false);
	job_wake(&woken_job);
	while (!atomic_load(&in_pass))
		sleep_ms(1);
	for (i = 0; i < 100; i++)
		job_wake(&woken_job);
	gate(true);
	assert_true(eventually(&woken_n, 4, 1000));
	sleep_ms(150);
	assert_int_equal(atomic_load(&woken_n), 4);
	/* and a hundred wakes while it sleeps, one pass too */
	for (i = 0; i < 100; i++)
		job_wake(&woken_job);
	assert_true(eventually(&woken_n, 5, 1000));
	sleep_ms(150);
	/* The wakes may straddle a pass's start, and on a starved machine
	 * (the sanitizer build beside other work) the thread that wakes is
	 * preempted between calls, so each pause lets a pass start: fewer
	 * passes than wakes is all that can be asserted here (the gated case
	 * above shows the coalescing exactly). */
	assert_true(atomic_load(&woken_n) < 5 + 50);
	jobs_stop(list, 1);
	/* waking a stopped job does nothing */
	job_wake(&woken_job);
}

/* ---- stop order and interrupts ------------------------------------------------ */

static pthread_mutex_t order_mu = PTHREAD_MUTEX_INITIALIZER;
static char order[64];
static atomic_int order_started;

static void order_add(const char *s)
{
	pthread_mutex_lock(&order_mu);
	size_t n = strlen(order);
	snprintf(order + n, sizeof order - n, "%s", s);
	pthread_mutex_unlock(&order_mu);
}

/* Three jobs whose passes block until their own interrupt lets them go,
 * then note that they ended: "iC eC" must come before "iB". */
#define BLOCKING_JOB(X, x)                                                                   \
	static atomic_bool X##_released;                                                    \
	static void X##_interrupt(void)                                                     \
	{                                                                                   \
		order_add("i" #X " ");                                                      \
		atomic_store(&X##_released, true);                                          \
	}                                                                                   \
	static int64_t X##_run(job_ctx *j)                                                  \
	{                                                                                   \
		atomic_fetch_add(&order_started, 1);                                        \
		while (!atomic_load(&X##_released))                                         \
			sleep_ms(1);                                                        \
		sleep_ms(20); /* a slow end: the next stop must wait for it */              \
		order_add(job_stopping(j) ? "e" #X " " : "?" #X " ");                       \
		return -1;                                                                  \
	}                                                                                   \
	static const job X##_job = {.name = "test.order." x, .run = X##_run, .interrupt = X##_interrupt};

BLOCKING_JOB(A, "a")
BLOCKING_JOB(B, "b")
BLOCKING_JOB(C, "c")

static void test_stop_order(void **state)
{
	const job *list[] = {&A_job, &B_job, &C_job};

	(void)state;
	order[0] = '\0';
	atomic_store(&order_started, 0);
	assert_int_equal(jobs_start(NULL, list, 3), EGOV_OK);
	assert_true(eventually(&order_started, 3, 1000));
	jobs_stop(list, 3);
	assert_string_equal(order, "iC eC iB eB iA eA ");
}

static int wake_pipe[2] = {-1, -1};
static atomic_int blocked_n, blocked_ended;

static void blocked_interrupt(void)
{
	char c = 'x';
	if (write(wake_pipe[1], &c, 1) != 1)
		fail_msg("cannot write to the pipe");
}

/* Blocks in read(2) as a pass blocks on a socket. */
static int64_t blocked_run(job_ctx *j)
{
	char c;

	atomic_fetch_add(&blocked_n, 1);
	if (read(wake_pipe[0], &c, 1) == 1 && job_stopping(j))
		atomic_store(&blocked_ended, 1);
	return -1;
}

static const job blocked_job = {.name = "test.blocked", .period_ms = 10, .run = blocked_run,
				.interrupt = blocked_interrupt};

static void test_interrupt(void **state)
{
	const job *list[] = {&blocked_job};
	int64_t t0;

	(void)state;
	assert_int_equal(pipe(wake_pipe), 0);
	atomic_store(&blocked_n, 0);
	atomic_store(&blocked_ended, 0);
	assert_int_equal(jobs_start(NULL, list, 1), EGOV_OK);
	assert_true(eventually(&blocked_n, 1, 1000));
	sleep_ms(50);
	t0 = time_mono_us();
	jobs_stop(list, 1);
	assert_true(time_mono_us() - t0 < 2000000);
	assert_int_equal(atomic_load(&blocked_ended), 1);
	assert_int_equal(atomic_load(&blocked_n), 1);
	close(wake_pipe[0]);
	close(wake_pipe[1]);
}

/* ---- failures back off ------------------------------------------------------- */

#define FAILS 4
static int64_t failing_at[FAILS + 2];
static atomic_int failing_n;

static int64_t failing_run(job_ctx *j)
{
	int n = atomic_load(&failing_n);

	if (n < FAILS + 2)
		failing_at[n] = time_mono_us();
	if (n < FAILS)
		job_fail(j, EGOV_EUNAVAILABLE, "attempt %d: the test says no", n + 1);
	atomic_fetch_add(&failing_n, 1);
	return 0; /* ignored after a failure; once it succeeds: at once */
}

static const job failing_job = {.name = "test.failing", .period_ms = 20, .run = failing_run};

static void test_backoff(void **state)
{
	const job *list[] = {&failing_job};
	int i;

	(void)state;
	atomic_store(&failing_n, 0);
	assert_int_equal(jobs_start(NULL, list, 1), EGOV_OK);
	/* Wakes during a back-off do not cut it short. */
	while (atomic_load(&failing_n) < FAILS) {
		job_wake(&failing_job);
		sleep_ms(5);
	}
	assert_true(eventually(&failing_n, FAILS + 2, 5000));
	jobs_stop(list, 1);
	for (i = 1; i <= FAILS; i++) {
		int64_t gap = failing_at[i] - failing_at[i - 1];
		int64_t want = (int64_t)JOB_BACKOFF_MIN_MS << (i - 1);
		print_message("# after failure %d: next pass %lld ms later (back-off %lld)\n", i,
			      (long long)(gap / 1000), (long long)want);
		assert_true(gap >= want * 1000 - 2000);
		assert_true(gap < want * 1000 + 1500000);
	}
	/* after it succeeds again, a pass that returns 0 runs at once */
	assert_true(failing_at[FAILS + 1] - failing_at[FAILS] < 500000);
}

/* ---- refused descriptions, metrics ----------------------------------------- */

static int64_t idle_run(job_ctx *j)
{
	(void)j;
	return -1;
}

static const job idle_job = {.name = "test.idle", .run = idle_run};
static const job idle_twin = {.name = "test.idle", .run = idle_run};
static const job bad_name = {.name = "Test Idle", .run = idle_run};
static const job no_run = {.name = "test.norun"};

static void test_refused(void **state)
{
	const job *ok_then_bad[] = {&idle_job, &bad_name};
	const job *one[] = {&idle_job}, *twin[] = {&idle_twin}, *norun[] = {&no_run};
	buf m;
	int i;

	(void)state;
	buf_init(&m, 1 << 16);
	assert_int_equal(jobs_start(NULL, ok_then_bad, 2), EGOV_EINVAL);
	/* the first was started and stopped again */
	assert_int_equal(jobs_metrics_write(&m), EGOV_OK);
	assert_null(strstr(m.data, "test.idle"));
	assert_int_equal(jobs_start(NULL, norun, 1), EGOV_EINVAL);
	assert_int_equal(jobs_start(NULL, one, 1), EGOV_OK);
	assert_int_equal(jobs_start(NULL, one, 1), EGOV_ECONFLICT);
	assert_int_equal(jobs_start(NULL, twin, 1), EGOV_ECONFLICT);
	/* its first pass is counted once it ran */
	for (i = 0; i < 500; i++) {
		buf_reset(&m);
		assert_int_equal(jobs_metrics_write(&m), EGOV_OK);
		if (strstr(m.data, "egov_job_passes_total{job=\"test.idle\"} 1\n"))
			break;
		sleep_ms(2);
	}
	assert_non_null(strstr(m.data, "# TYPE egov_job_passes_total counter\n"));
	assert_non_null(strstr(m.data, "egov_job_passes_total{job=\"test.idle\"} 1\n"));
	assert_non_null(strstr(m.data, "egov_job_failures_total{job=\"test.idle\"} 0\n"));
	assert_non_null(strstr(m.data, "egov_job_last_run_timestamp_seconds{job=\"test.idle\"} "));
	assert_non_null(strstr(m.data, "egov_job_last_run_duration_seconds{job=\"test.idle\"} "));
	jobs_stop(one, 1);
	jobs_stop(one, 1); /* twice is harmless */
	buf_reset(&m);
	assert_int_equal(jobs_metrics_write(&m), EGOV_OK);
	assert_null(strstr(m.data, "test.idle"));
	buf_release(&m);
}

static atomic_int failing_metrics_n;

static int64_t failing_metrics_run(job_ctx *j)
{
	job_fail(j, EGOV_EDB, "always");
	job_fail(j, EGOV_EIO, "the first failure is the one kept");
	atomic_fetch_add(&failing_metrics_n, 1);
	return 0;
}

static const job failing_metrics_job = {.name = "test.failing-metrics", .run = failing_metrics_run};

static void test_metrics(void **state)
{
	const job *list[] = {&failing_metrics_job};
	buf m;

	(void)state;
	atomic_store(&failing_metrics_n, 0);
	assert_int_equal(jobs_start(NULL, list, 1), EGOV_OK);
	assert_true(eventually(&failing_metrics_n, 2, 2000));
	buf_init(&m, 1 << 16);
	assert_int_equal(jobs_metrics_write(&m), EGOV_OK);
	jobs_stop(list, 1);
	assert_null(strstr(m.data, "failures_total{job=\"test.failing-metrics\"} 0\n"));
	assert_non_null(strstr(m.data, "failures_total{job=\"test.failing-metrics\"} "));
	/* a full buffer is an error, not a cut */
	buf_release(&m);
	assert_int_equal(jobs_start(NULL, list, 1), EGOV_OK);
	buf_init(&m, 64);
	assert_int_not_equal(jobs_metrics_write(&m), EGOV_OK);
	buf_release(&m);
	jobs_stop(list, 1);
}

/* ---- the job's own connection --------------------------------------------- */

static atomic_int conn_step;
static atomic_int conn_errors;

/* pass 1: a temporary table (visible to this connection only); pass 2: it
 * is still there (the same connection); pass 3 fails; pass 4: it is gone
 * (a failed pass closed the connection, job_conn opened another). */
static int64_t conn_run(job_ctx *j)
{
	db_conn *c = NULL;
	int64_t v = 0;
	bool found = false;
	int step = atomic_load(&conn_step) + 1;
	egov_err err;

	if ((err = job_conn(j, &c))) {
		atomic_fetch_add(&conn_errors, 1);
		job_fail(j, err, "no connection");
		return -1;
	}
	switch (step) {
	case 1:
		if (db_exec_script(c, "CREATE TEMP TABLE mine (x INTEGER); INSERT INTO mine VALUES (7)"))
			atomic_fetch_add(&conn_errors, 1);
		break;
	case 2:
		if (db_query_int(c, "SELECT x FROM mine", NULL, 0, &v, &found) || !found || v != 7)
			atomic_fetch_add(&conn_errors, 1);
		break;
	case 3:
		job_fail(j, EGOV_EDB, "a failure closes the connection");
		break;
	case 4:
		if (db_query_int(c, "SELECT x FROM mine", NULL, 0, &v, &found) == EGOV_OK)
			atomic_fetch_add(&conn_errors, 1);
		break;
	default:
		break;
	}
	atomic_store(&conn_step, step);
	return step == 3 ? 0 : -1;
}

static const job conn_job = {.name = "test.conn", .run = conn_run};

static int64_t pg_backends(db_conn *c)
{
	int64_t n = -1;
	bool found = false;

	assert_int_equal(db_query_int(c, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()",
				      NULL, 0, &n, &found),
			 EGOV_OK);
	return n;
}

static void test_own_connection(void **state)
{
	const job *list[] = {&conn_job};
	char *dir = test_tmpdir();
	char urls[2][512], msg[256];
	int i, n;

	(void)state;
	assert_non_null(dir);
	n = test_backends(dir, urls);
	for (i = 0; i < n; i++) {
		db *d = NULL;
		db_conn *mine = NULL;
		int64_t v = 0, before = 0;
		bool found = false;

		assert_int_equal(db_open(urls[i], &d, msg, sizeof msg), EGOV_OK);
		print_message("# backend %s\n", db_kind_name(d));
		assert_int_equal(db_thread_conn(d, &mine), EGOV_OK);
		assert_int_equal(test_db_reset(mine), 0);
		if (db_kind_of(d) == DB_POSTGRES)
			before = pg_backends(mine);
		atomic_store(&conn_step, 0);
		atomic_store(&conn_errors, 0);
		assert_int_equal(jobs_start(d, list, 1), EGOV_OK);
		assert_true(eventually(&conn_step, 1, 5000));
		/* the job's table is not this thread's */
		assert_int_not_equal(db_query_int(mine, "SELECT x FROM mine", NULL, 0, &v, &found), EGOV_OK);
		if (db_kind_of(d) == DB_POSTGRES)
			assert_int_equal(pg_backends(mine), before + 1);
		job_wake(&conn_job);
		assert_true(eventually(&conn_step, 2, 5000));
		job_wake(&conn_job);
		assert_true(eventually(&conn_step, 4, 5000));
		jobs_stop(list, 1);
		assert_int_equal(atomic_load(&conn_errors), 0);
		if (db_kind_of(d) == DB_POSTGRES) {
			/* closed at stop: the server sees the session end soon after */
			int tries = 0;
			while (pg_backends(mine) != before && tries++ < 100)
				sleep_ms(10);
			assert_int_equal(pg_backends(mine), before);
		}
		db_close(d);
	}
	/* without a database, job_conn says so */
	atomic_store(&conn_step, 0);
	atomic_store(&conn_errors, 0);
	assert_int_equal(jobs_start(NULL, list, 1), EGOV_OK);
	assert_true(eventually(&conn_errors, 1, 2000));
	jobs_stop(list, 1);
	assert_int_equal(atomic_load(&conn_step), 0);
	test_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_periodic),
		cmocka_unit_test(test_run_again),
		cmocka_unit_test(test_woken),
		cmocka_unit_test(test_stop_order),
		cmocka_unit_test(test_interrupt),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_metrics),
		cmocka_unit_test(test_own_connection),
	};
	return cmocka_run_group_tests_name("jobs", tests, NULL, NULL);
}
