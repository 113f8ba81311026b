/*
 * jobs.c: the runner behind core/jobs.h. Each running job has a context
 * (its thread, a mutex and a condition on the monotonic clock, its wake and
 * stop flags, its connection and its figures), kept on one list so that
 * job_wake() and /metrics can find it by its description.
 *
 * Invariants:
 *  - A context is on the list from before its thread starts until
 *    jobs_stop() takes it off; it is freed only after that and after its
 *    thread was joined, so whoever found it on the list under reg_mu may
 *    lock it.
 *  - Lock order: reg_mu, then a context's mu. A pass runs with neither
 *    held, so it may wake any job, itself included.
 *  - wake is cleared just before a pass starts: a wake that arrives during
 *    the pass is kept and causes the next one.
 *  - Only the job's thread touches its connection and its pass state
 *    (failed, fails, messages); the figures are atomics, read by scrapes.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/jobs.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "core/banned.h"

#define JOB_MSG_MAX 256

struct job_ctx {
	const job *jb;
	db *d;
	db_conn *c;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* on CLOCK_MONOTONIC */
	bool wake, stop;   /* under mu */
	atomic_bool stopping;
	/* the job's thread only */
	bool failed;
	egov_err fail_err;
	unsigned fails; /* consecutive failed passes */
	char fail_msg[JOB_MSG_MAX];
	char logged_msg[JOB_MSG_MAX]; /* the failure last logged */
	/* figures for /metrics */
	atomic_uint_fast64_t passes, failures;
	_Atomic int64_t last_start_us, last_duration_us;
	struct job_ctx *next;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static job_ctx *reg;

/* reg_mu held */
static job_ctx *find(const job *jb)
{
	job_ctx *j;

	for (j = reg; j && j->jb != jb; j = j->next) {
	}
	return j;
}

static bool name_valid(const char *s)
{
	size_t n;

	if (!s)
		return false;
	for (n = 0; s[n]; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '.' || s[n] == '_' ||
		      s[n] == '-'))
			return false;
	return n >= 1 && n <= JOB_NAME_MAX;
}

/* ---- one pass ----------------------------------------------------------------------- */

/* The back-off after the nth consecutive failed pass. */
static int64_t backoff_ms(unsigned fails)
{
	int64_t ms = JOB_BACKOFF_MIN_MS;

	while (fails-- > 1 && ms < JOB_BACKOFF_MAX_MS)
		ms *= 2;
	return ms < JOB_BACKOFF_MAX_MS ? ms : JOB_BACKOFF_MAX_MS;
}

/* Runs one pass and returns the delay before the next (< 0: until woken);
 * *backoff is true when the pass failed, and wakes must wait. */
static int64_t one_pass(job_ctx *j, bool *backoff)
{
	const job *jb = j->jb;
	int64_t t0 = time_mono_us(), want, delay;

	j->failed = false;
	j->fail_err = EGOV_OK;
	j->fail_msg[0] = '\0';
	atomic_store(&j->last_start_us, time_now_us());
	want = jb->run(j);
	atomic_store(&j->last_duration_us, time_mono_us() - t0);
	atomic_fetch_add(&j->passes, 1);
	*backoff = j->failed;
	if (j->failed) {
		atomic_fetch_add(&j->failures, 1);
		j->fails++;
		delay = backoff_ms(j->fails);
		/* Logged when a run of failures starts or its reason changes,
		 * not on every pass. */
		if (j->fails == 1 || strcmp(j->fail_msg, j->logged_msg) != 0) {
			log_warn("job.failed", "%s: %s (%s); next pass in %lld ms", jb->name, j->fail_msg,
				 egov_err_name(j->fail_err), (long long)delay);
			memcpy(j->logged_msg, j->fail_msg, sizeof j->logged_msg);
		}
		if (j->c) {
			db_conn_close(j->c);
			j->c = NULL;
		}
		return delay;
	}
	if (j->fails) {
		log_info("job.recovered", "%s: a pass succeeded after %u failed", jb->name, j->fails);
		j->fails = 0;
		j->logged_msg[0] = '\0';
	}
	if (want < 0)
		return jb->period_ms > 0 ? jb->period_ms : -1;
	if (jb->period_ms > 0 && want > jb->period_ms)
		return jb->period_ms;
	return want;
}

/* Sleeps (mu held) until delay_ms passed (< 0: forever), a wake (unless
 * backoff) or stop. */
static void sleep_until_due(job_ctx *j, int64_t delay_ms, bool backoff)
{
	struct timespec until;

	if (delay_ms == 0)
		return;
	if (delay_ms > 0) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += (time_t)(delay_ms / 1000);
		until.tv_nsec += (long)(delay_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
	}
	while (!j->stop && (backoff || !j->wake)) {
		if (delay_ms < 0)
			pthread_cond_wait(&j->cv, &j->mu);
		else if (pthread_cond_timedwait(&j->cv, &j->mu, &until) != 0)
			break; /* the delay is over */
	}
}

static void *runner(void *arg)
{
	job_ctx *j = arg;
	char tname[16];
	bool backoff = false;
	int64_t delay;

	/* Seen in top and gdb: "j:" and as much of the name as fits. */
	snprintf(tname, sizeof tname, "j:%s", j->jb->name);
	pthread_setname_np(pthread_self(), tname);
	pthread_mutex_lock(&j->mu);
	while (!j->stop) {
		j->wake = false;
		pthread_mutex_unlock(&j->mu);
		delay = one_pass(j, &backoff);
		pthread_mutex_lock(&j->mu);
		sleep_until_due(j, delay, backoff);
	}
	pthread_mutex_unlock(&j->mu);
	if (j->c) {
		db_conn_close(j->c);
		j->c = NULL;
	}
	return NULL;
}

/* ---- start and stop ------------------------------------------------------------------ */

static void ctx_free(job_ctx *j)
{
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->mu);
	free(j);
}

/* Starts one job (reg_mu held). */
static egov_err start_one(db *d, const job *jb)
{
	pthread_condattr_t ca;
	job_ctx *j = NULL, *o;
	egov_err err = EGOV_OK;

	if (!jb || !jb->run || !name_valid(jb->name) || jb->period_ms < 0) {
		log_error("job.invalid", "a job without a run function, or named \"%s\" (want [a-z0-9._-]{1,%d})",
			  jb && jb->name ? jb->name : "", JOB_NAME_MAX);
		return EGOV_EINVAL;
	}
	for (o = reg; o; o = o->next) {
		if (o->jb == jb || strcmp(o->jb->name, jb->name) == 0) {
			log_error("job.conflict", "job %s is already running", jb->name);
			return EGOV_ECONFLICT;
		}
	}
	if (!(j = calloc(1, sizeof *j)))
		return EGOV_ENOMEM;
	j->jb = jb;
	j->d = d;
	pthread_mutex_init(&j->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&j->cv, &ca);
	pthread_condattr_destroy(&ca);
	j->next = reg;
	reg = j;
	if (pthread_create(&j->thread, NULL, runner, j) != 0) {
		reg = j->next;
		ctx_free(j);
		log_error("job.thread", "cannot start a thread for job %s", jb->name);
		err = EGOV_EINTERNAL;
	}
	return err;
}

egov_err jobs_start(db *d, const job *const *list, size_t n)
{
	size_t i;
	egov_err err = EGOV_OK;

	for (i = 0; i < n; i++) {
		pthread_mutex_lock(&reg_mu);
		err = start_one(d, list[i]);
		pthread_mutex_unlock(&reg_mu);
		if (err)
			break;
	}
	if (err)
		jobs_stop(list, i);
	return err;
}

void jobs_stop(const job *const *list, size_t n)
{
	job_ctx *j, **pp;

	while (n-- > 0) {
		pthread_mutex_lock(&reg_mu);
		for (pp = &reg; *pp && (*pp)->jb != list[n]; pp = &(*pp)->next) {
		}
		j = *pp;
		if (j)
			*pp = j->next;
		pthread_mutex_unlock(&reg_mu);
		if (!j)
			continue;
		pthread_mutex_lock(&j->mu);
		j->stop = true;
		atomic_store(&j->stopping, true);
		pthread_cond_signal(&j->cv);
		pthread_mutex_unlock(&j->mu);
		if (j->jb->interrupt)
			j->jb->interrupt();
		pthread_join(j->thread, NULL);
		ctx_free(j);
	}
}

/* ---- from the pass and from elsewhere -------------------------------------------------- */

void job_wake(const job *jb)
{
	job_ctx *j;

	pthread_mutex_lock(&reg_mu);
	if ((j = find(jb))) {
		pthread_mutex_lock(&j->mu);
		j->wake = true;
		pthread_cond_signal(&j->cv);
		pthread_mutex_unlock(&j->mu);
	}
	pthread_mutex_unlock(&reg_mu);
}

bool job_stopping(const job_ctx *j)
{
	return atomic_load(&j->stopping);
}

egov_err job_conn(job_ctx *j, db_conn **out)
{
	egov_err err;

	*out = NULL;
	if (!j->c) {
		if (!j->d)
			return EGOV_EUNAVAILABLE;
		if ((err = db_conn_open(j->d, &j->c))) {
			j->c = NULL;
			return err;
		}
	}
	*out = j->c;
	return EGOV_OK;
}

void job_fail(job_ctx *j, egov_err err, const char *fmt, ...)
{
	va_list ap;

	/* The first failure of a pass is its cause; later ones follow from it. */
	if (j->failed)
		return;
	j->failed = true;
	j->fail_err = err ? err : EGOV_EINTERNAL;
	va_start(ap, fmt);
	vsnprintf(j->fail_msg, sizeof j->fail_msg, fmt, ap);
	va_end(ap);
}

/* ---- /metrics ----------------------------------------------------------------------- */

typedef enum figure { F_PASSES, F_FAILURES, F_LAST_START, F_LAST_DURATION } figure;

static const struct {
	const char *name, *type, *help;
} families[] = {
	[F_PASSES] = {"egov_job_passes_total", "counter", "Passes each background job ran."},
	[F_FAILURES] = {"egov_job_failures_total", "counter", "Passes that failed, by job."},
	[F_LAST_START] = {"egov_job_last_run_timestamp_seconds", "gauge",
			  "When the job's last pass started (Unix time)."},
	[F_LAST_DURATION] = {"egov_job_last_run_duration_seconds", "gauge", "How long the job's last pass took."},
};

egov_err jobs_metrics_write(buf *out)
{
	const job_ctx *j;
	size_t f;
	egov_err err = EGOV_OK;

	pthread_mutex_lock(&reg_mu);
	for (f = 0; f < sizeof families / sizeof families[0] && !err; f++) {
		err = metrics_write_header(out, families[f].name, families[f].type, families[f].help);
		for (j = reg; j && !err; j = j->next) {
			switch ((figure)f) {
			case F_PASSES:
				err = buf_addf(out, "%s{job=\"%s\"} %llu\n", families[f].name, j->jb->name,
					       (unsigned long long)atomic_load(&j->passes));
				break;
			case F_FAILURES:
				err = buf_addf(out, "%s{job=\"%s\"} %llu\n", families[f].name, j->jb->name,
					       (unsigned long long)atomic_load(&j->failures));
				break;
			case F_LAST_START:
				err = buf_addf(out, "%s{job=\"%s\"} %.3f\n", families[f].name, j->jb->name,
					       (double)atomic_load(&j->last_start_us) / 1e6);
				break;
			case F_LAST_DURATION:
				err = buf_addf(out, "%s{job=\"%s\"} %.6f\n", families[f].name, j->jb->name,
					       (double)atomic_load(&j->last_duration_us) / 1e6);
				break;
			}
		}
	}
	pthread_mutex_unlock(&reg_mu);
	return err;
}
