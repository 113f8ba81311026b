/*
 * audit_bench.c: throughput of the audit log.
 *
 *   audit_bench DBURL [writers] [seconds] [verify_records]
 *
 * 1. `writers` threads append as fast as they can for `seconds`; every
 *    append counted has returned, so it is durable (group commit).
 * 2. The log is filled up to `verify_records` (default 1,000,000) by many
 *    threads at once, so the single writer commits big batches.
 * 3. audit_verify() walks the whole log on its own connection.
 *
 * One line per figure, `name key=value ...`, for scripts/bench.sh. The
 * database should be empty or hold only a previous run's audit log; the
 * schema is migrated if needed, nothing is dropped.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "audit/audit_int.h"
#include "core/db.h"

/* Threads used to fill the log: each holds one record in flight, so this
 * is roughly the batch size the writer commits while filling. */
#define FILL_THREADS 256

typedef struct shared {
	atomic_bool stop;
	atomic_int_fast64_t appended;
	atomic_int_fast64_t failed;
	int64_t fill_target;
} shared;

typedef struct thread_arg {
	shared *s;
	int id;
} thread_arg;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_count(const char *s, long long min, long long max, long long *out)
{
	char *end = NULL;
	long long v = strtoll(s, &end, 10);
	if (!*s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static void *writer_main(void *p)
{
	thread_arg *t = p;
	shared *s = t->s;
	char actor[32], details[96];
	int64_t i = 0;

	snprintf(actor, sizeof actor, "user:bench-%d", t->id);
	while (!atomic_load(&s->stop)) {
		snprintf(details, sizeof details, "{\"thread\":%d,\"i\":%" PRId64 ",\"ip\":\"127.0.0.1\"}", t->id, i++);
		if (audit_append(actor, "document.read", "edoc:0190f1e2-7a3b-7c4d-8e5f-6a7b8c9d0e1f", details,
				 NULL) == EGOV_OK)
			atomic_fetch_add(&s->appended, 1);
		else
			atomic_fetch_add(&s->failed, 1);
	}
	return NULL;
}

static void *filler_main(void *p)
{
	thread_arg *t = p;
	shared *s = t->s;
	char details[96];
	int64_t i = 0;

	while (audit_length() < s->fill_target) {
		snprintf(details, sizeof details, "{\"thread\":%d,\"i\":%" PRId64 ",\"ip\":\"127.0.0.1\"}", t->id, i++);
		if (audit_append("user:filler", "document.read", "edoc:0190f1e2-7a3b-7c4d-8e5f-6a7b8c9d0e1f",
				 details, NULL) != EGOV_OK) {
			atomic_fetch_add(&s->failed, 1);
			break;
		}
	}
	return NULL;
}

static int run_threads(shared *s, int n, void *(*fn)(void *), double seconds)
{
	pthread_t *th = calloc((size_t)n, sizeof *th);
	thread_arg *args = calloc((size_t)n, sizeof *args);
	struct timespec pause;
	int i, started = 0, rc = -1;

	if (!th || !args)
		goto out;
	for (i = 0; i < n; i++) {
		args[i] = (thread_arg){.s = s, .id = i};
		if (pthread_create(&th[i], NULL, fn, &args[i]) != 0)
			break;
		started++;
	}
	if (seconds > 0) {
		pause.tv_sec = (time_t)seconds;
		pause.tv_nsec = (long)((seconds - (double)pause.tv_sec) * 1e9);
		nanosleep(&pause, NULL);
		atomic_store(&s->stop, true);
	}
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	rc = started == n ? 0 : -1;
out:
	free(th);
	free(args);
	return rc;
}

int main(int argc, char **argv)
{
	long long writers = 16, seconds = 5, verify_records = 1000000;
	audit_verify_result res;
	shared s = {0};
	db_conn *c = NULL;
	db *d = NULL;
	char msg[256] = "";
	audit_stats st0, st1;
	int64_t before, batches;
	double t0, t1, c0, c1;
	int rc = 1;

	if (argc < 2 || argc > 5 || (argc > 2 && parse_count(argv[2], 1, 4096, &writers)) ||
	    (argc > 3 && parse_count(argv[3], 1, 3600, &seconds)) ||
	    (argc > 4 && parse_count(argv[4], 0, 1000000000LL, &verify_records))) {
		fprintf(stderr, "usage: %s DBURL [writers] [seconds] [verify_records]\n", argv[0]);
		return 2;
	}
	if (db_open(argv[1], &d, msg, sizeof msg) || db_conn_open(d, &c)) {
		fprintf(stderr, "audit_bench: cannot open %s: %s\n", argv[1], msg);
		goto out;
	}
	if (db_migrate(c, "audit", audit_migrations, audit_migrations_count, NULL)) {
		fprintf(stderr, "audit_bench: migrate: %s\n", db_conn_errmsg(c));
		goto out;
	}
	if (audit_open(d)) {
		fprintf(stderr, "audit_bench: audit_open failed\n");
		goto out;
	}

	before = audit_length();
	audit_stats_get(&st0);
	t0 = now_s();
	if (run_threads(&s, (int)writers, writer_main, (double)seconds))
		goto out;
	t1 = now_s();
	audit_stats_get(&st1);
	batches = st1.batches - st0.batches;
	printf("audit.append durable_records_per_s=%.0f writers=%lld seconds=%.2f records=%" PRIdFAST64
	       " failed=%" PRIdFAST64 " avg_batch=%.1f avg_commit_ms=%.2f backend=%s\n",
	       (double)atomic_load(&s.appended) / (t1 - t0), writers, t1 - t0, atomic_load(&s.appended),
	       atomic_load(&s.failed), batches ? (double)(st1.records - st0.records) / (double)batches : 0.0,
	       batches ? (double)(st1.commit_us - st0.commit_us) / 1000.0 / (double)batches : 0.0, db_kind_name(d));
	if (atomic_load(&s.failed) || audit_length() - before != atomic_load(&s.appended)) {
		fprintf(stderr, "audit_bench: appends failed or went missing\n");
		goto out;
	}

	if (verify_records > audit_length()) {
		int64_t from = audit_length();
		s.fill_target = verify_records;
		t0 = now_s();
		if (run_threads(&s, FILL_THREADS, filler_main, 0))
			goto out;
		t1 = now_s();
		printf("audit.fill records=%" PRId64 " seconds=%.2f records_per_s=%.0f threads=%d\n",
		       audit_length() - from, t1 - t0, (double)(audit_length() - from) / (t1 - t0),
		       FILL_THREADS);
		if (atomic_load(&s.failed)) {
			fprintf(stderr, "audit_bench: fill failed\n");
			goto out;
		}
	}
	audit_close();

	c0 = cpu_s();
	t0 = now_s();
	if (audit_verify(c, &res)) {
		fprintf(stderr, "audit_bench: verify: %s\n", db_conn_errmsg(c));
		goto out;
	}
	t1 = now_s();
	c1 = cpu_s();
	/* CPU seconds too: on a shared machine wall time says more about the
	 * neighbours than about the verifier. */
	printf("audit.verify records=%" PRId64 " seconds=%.2f cpu_seconds=%.2f records_per_s=%.0f fault=%s\n",
	       res.records, t1 - t0, c1 - c0, (double)res.records / (t1 - t0), audit_fault_name(res.fault));
	rc = res.fault == AUDIT_FAULT_NONE ? 0 : 1;
out:
	audit_close();
	db_conn_close(c);
	db_close(d);
	return rc;
}
