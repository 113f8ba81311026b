/*
 * jobs.h: background jobs. A module describes a job (a name, how often it
 * runs, one pass) and the kernel runs it on a thread of its own, wakes it,
 * backs it off when a pass fails, counts it for /metrics and stops it.
 *
 * A pass is the unit of work: it runs on the job's thread, may block (an
 * SMTP conversation, an HTTP call), and says when it wants to run again.
 * Between passes the thread sleeps until the delay is over, job_wake() is
 * called or the job is stopped. The first pass runs as soon as the job
 * starts.
 *
 *	static int64_t outbox_pass(job_ctx *j)
 *	{
 *		db_conn *c;
 *		egov_err err;
 *
 *		if ((err = job_conn(j, &c)) || (err = deliver_due(c, ...)))
 *			job_fail(j, err, "cannot read the outbox");
 *		return -1; // the period
 *	}
 *	const job notify_outbox_job = {.name = "notify.outbox", .period_ms = 1000, .run = outbox_pass};
 *	... .jobs = (const job *const[]){&notify_outbox_job}, .njobs = 1 in the module descriptor;
 *	notify_enqueue() then calls job_wake(&notify_outbox_job).
 *
 * Several nodes on one database may run the same job at the same time. The
 * runner does nothing to prevent it: a job must be safe because what it
 * takes from the database it claims (core/lease.h), not because one node
 * runs it.
 *
 * Invariants:
 *  - One thread per running job; a pass never overlaps another pass of the
 *    same job.
 *  - Wakes coalesce: any number of job_wake() calls while a pass runs (or
 *    while the job sleeps) cause one more pass, not one per call.
 *  - A failed pass (job_fail) is followed by a back-off that doubles with
 *    each consecutive failure, from JOB_BACKOFF_MIN_MS to JOB_BACKOFF_MAX_MS;
 *    wakes during a back-off wait for its end, so a failing database is not
 *    hammered by every request that wakes the job. The failure is logged
 *    once (and again when its message changes), the recovery once.
 *  - A failed pass closes the job's connection: the next job_conn() opens
 *    a fresh one rather than reuse one in an unknown state.
 *  - jobs_stop() returns only when the job's thread has ended and its
 *    connection is closed.
 */
#ifndef EGOV_CORE_JOBS_H
#define EGOV_CORE_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/db.h"
#include "core/err.h"

/* The first back-off after a failed pass, and the longest: short enough
 * that a passing hiccup (a busy database) costs little, long enough that a
 * database that is down is asked twice a minute rather than in a loop. */
#define JOB_BACKOFF_MIN_MS 100
#define JOB_BACKOFF_MAX_MS 30000

/* A job's name: [a-z0-9._-], 1..JOB_NAME_MAX bytes, unique among running
 * jobs. It is a /metrics label and a log field, so it is checked, not
 * escaped. */
#define JOB_NAME_MAX 48

/* The running job, handed to each pass. Owned by the kernel. */
typedef struct job_ctx job_ctx;

/* A job's description: const, defined once by its module. */
typedef struct job {
	const char *name;  /* "notify.outbox", for logs and /metrics */
	int period_ms;     /* run at least this often; 0: only when woken */
	/* One pass, on the job's own thread. May block (SMTP, HTTP). Returns
	 * how many ms until it wants to run again: < 0 means its period (or,
	 * with period 0, the next wake), 0 at once (more work is waiting); a
	 * delay longer than the period is cut to the period. A long pass
	 * checks job_stopping() between steps. */
	int64_t (*run)(job_ctx *j);
	/* Optional: called from the stopping thread, after job_stopping()
	 * became true, to cut a blocking pass short (close a socket, fail a
	 * transfer). It must also make a blocking call that the pass starts
	 * after it ran return at once: set a flag the pass checks. */
	void (*interrupt)(void);
} job;

/* Starts the n jobs of list, in order, each on a thread of its own. d (may
 * be NULL for jobs that use no database) is where job_conn() opens their
 * connections; it must stay open until they are stopped. On failure the
 * jobs this call started are stopped again and nothing is left running:
 * EGOV_EINVAL (a bad name or no run), EGOV_ECONFLICT (a job or its name is
 * already running), EGOV_ENOMEM or EGOV_EINTERNAL (no thread). */
egov_err jobs_start(db *d, const job *const *list, size_t n);

/* Stops the jobs of list in reverse order: each is interrupted, its pass
 * allowed to finish and its thread joined before the next one is stopped.
 * Jobs of the list that are not running are skipped, so this may follow a
 * jobs_start() that failed. Must not be called from a job's own pass. */
void jobs_stop(const job *const *list, size_t n);

/* Asks for a pass of jb as soon as possible (after the running one, if
 * any); callable from any thread, never blocks for long. Does nothing when
 * jb is not running. */
void job_wake(const job *jb);

/* Whether the job is being stopped: a long pass returns early when true. */
bool job_stopping(const job_ctx *j);

/* The job's own database connection, opened on first use and kept across
 * passes; closed after a failed pass and when the job stops. Only the
 * job's thread may use it. EGOV_EUNAVAILABLE when the job has no database
 * or it cannot be reached (db_open_errmsg() says why). */
egov_err job_conn(job_ctx *j, db_conn **out);

/* Marks the running pass as failed (its return value is then ignored and
 * the back-off applies), with err and a printf-style message for the log.
 * Call from the pass only. */
void job_fail(job_ctx *j, egov_err err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Appends the /metrics families of the running jobs: passes and failed
 * passes (counters), the start of the last pass (Unix time) and its
 * duration (gauges), each labelled job="NAME". Fails only when out is
 * full (EGOV_ELIMIT/ENOMEM). */
egov_err jobs_metrics_write(buf *out);

#endif
