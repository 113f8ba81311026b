/*
 * test_lease.c: lease_claim() (core/lease.h) on every backend: due rows in
 * order, the maximum, a lease that runs out and is claimed again, a spec
 * with a join, an alias, a composite key, parameters and extra
 * assignments, a callback that fails (nothing claimed), refused specs, two
 * connections claiming at once (no row twice), and on PostgreSQL a claimer
 * that passes over the rows another one holds instead of waiting for them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "core/db.h"
#include "core/lease.h"
#include "testutil.h"
#include "core/banned.h"

typedef void (*case_fn)(db *d, db_conn *c);

static void on_each_backend(case_fn fn)
{
	char *dir = test_tmpdir();
	char urls[2][512], msg[256];
	int i, n;

	assert_non_null(dir);
	n = test_backends(dir, urls);
	for (i = 0; i < n; i++) {
		db *d = NULL;
		db_conn *c = NULL;
		assert_int_equal(db_open(urls[i], &d, msg, sizeof msg), EGOV_OK);
		print_message("# backend %s\n", db_kind_name(d));
		assert_int_equal(db_conn_open(d, &c), EGOV_OK);
		assert_int_equal(test_db_reset(c), 0);
		fn(d, c);
		db_conn_close(c);
		db_close(d);
	}
	test_rmrf(dir);
	free(dir);
}

/* ---- a plain outbox ------------------------------------------------------------ */

static const lease_spec outbox = {
	.table = "box",
	.key = "id",
	.due = "due",
	.attempts = "attempts",
	.pending = "done = 0",
	.order = "due, id",
	.columns = "id, body",
};

typedef struct got {
	char id[16][32];
	int64_t attempt[16];
	int n;
	int fail_at; /* > 0: fail on that row (1-based) */
} got;

static egov_err take(void *ctx, db_rows *r, int64_t attempt)
{
	got *g = ctx;

	if (g->n >= 16)
		return EGOV_ELIMIT;
	if (g->fail_at && g->n + 1 == g->fail_at)
		return EGOV_EIO;
	snprintf(g->id[g->n], sizeof g->id[0], "%s", db_rows_text(r, 0));
	assert_string_equal(db_rows_text(r, 1), "hello");
	g->attempt[g->n++] = attempt;
	return EGOV_OK;
}

static void make_box(db_conn *c)
{
	assert_int_equal(db_exec_script(c, "CREATE TABLE box (id TEXT PRIMARY KEY, due BIGINT NOT NULL,"
					   " attempts INTEGER NOT NULL DEFAULT 0, done INTEGER NOT NULL DEFAULT 0,"
					   " body TEXT);"
					   "INSERT INTO box (id, due, body) VALUES ('r3', 30, 'hello');"
					   "INSERT INTO box (id, due, body) VALUES ('r1', 10, 'hello');"
					   "INSERT INTO box (id, due, body) VALUES ('r2', 20, 'hello');"
					   "INSERT INTO box (id, due, body) VALUES ('r4', 100, 'hello');"
					   "INSERT INTO box (id, due, done, body) VALUES ('r0', 5, 1, 'hello')"),
			 EGOV_OK);
}

static int64_t due_of(db_conn *c, const char *id)
{
	db_param p[1] = {DBP_S(id)};
	int64_t v = -1;
	bool found = false;

	assert_int_equal(db_query_int(c, "SELECT due FROM box WHERE id = ?", p, 1, &v, &found), EGOV_OK);
	assert_true(found);
	return v;
}

static void claim_case(db *d, db_conn *c)
{
	got g = {0};
	int n = -1;

	(void)d;
	make_box(c);
	/* due at 50: r1, r2, r3 in order; r0 is done, r4 not due */
	assert_int_equal(lease_claim(c, &outbox, 50, 1000, 10, NULL, 0, take, &g, &n), EGOV_OK);
	assert_int_equal(n, 3);
	assert_int_equal(g.n, 3);
	assert_string_equal(g.id[0], "r1");
	assert_string_equal(g.id[1], "r2");
	assert_string_equal(g.id[2], "r3");
	assert_int_equal(g.attempt[0], 1);
	assert_int_equal(due_of(c, "r1"), 1050);
	assert_int_equal(due_of(c, "r4"), 100);
	assert_int_equal(due_of(c, "r0"), 5);
	/* leased: nothing due at 60 */
	memset(&g, 0, sizeof g);
	assert_int_equal(lease_claim(c, &outbox, 60, 1000, 10, NULL, 0, take, &g, &n), EGOV_OK);
	assert_int_equal(n, 0);
	assert_int_equal(g.n, 0);
	/* the maximum: r4 becomes due at 100, and only one is taken */
	assert_int_equal(lease_claim(c, &outbox, 100, 1000, 1, NULL, 0, take, &g, &n), EGOV_OK);
	assert_int_equal(n, 1);
	assert_string_equal(g.id[0], "r4");
	/* max 0 claims nothing and touches nothing */
	assert_int_equal(lease_claim(c, &outbox, 5000, 1000, 0, NULL, 0, take, &g, &n), EGOV_OK);
	assert_int_equal(n, 0);
	/* the leases of r1..r3 run out at 1050: claimed again, second attempt */
	memset(&g, 0, sizeof g);
	assert_int_equal(lease_claim(c, &outbox, 1049, 1000, 10, NULL, 0, take, &g, &n), EGOV_OK);
	assert_int_equal(n, 0);
	assert_int_equal(lease_claim(c, &outbox, 1050, 1000, 10, NULL, 0, take, &g, &n), EGOV_OK);
	assert_int_equal(n, 3);
	assert_string_equal(g.id[0], "r1");
	assert_int_equal(g.attempt[0], 2);
	assert_int_equal(g.attempt[2], 2);
	assert_int_equal(due_of(c, "r3"), 2050);
	/* finished rows are not pending, whatever their due time */
	assert_int_equal(db_exec(c, "UPDATE box SET done = 1", NULL, 0, NULL), EGOV_OK);
	memset(&g, 0, sizeof g);
	assert_int_equal(lease_claim(c, &outbox, 1000000, 1000, 10, NULL, 0, take, &g, &n), EGOV_OK);
	assert_int_equal(n, 0);
}

static void test_claim(void **state)
{
	(void)state;
	on_each_backend(claim_case);
}

/* A failing callback rolls the claim back: no lease, no attempt counted. */
static void rollback_case(db *d, db_conn *c)
{
	got g = {.fail_at = 2};
	int64_t attempts = -1;
	bool found = false;
	int n = -1;

	(void)d;
	make_box(c);
	assert_int_equal(lease_claim(c, &outbox, 50, 1000, 10, NULL, 0, take, &g, &n), EGOV_EIO);
	assert_int_equal(n, 0);
	assert_int_equal(due_of(c, "r1"), 10);
	assert_int_equal(db_query_int(c, "SELECT SUM(attempts) FROM box", NULL, 0, &attempts, &found), EGOV_OK);
	assert_int_equal(attempts, 0);
	/* and the connection is usable again, outside a transaction */
	memset(&g, 0, sizeof g);
	assert_int_equal(lease_claim(c, &outbox, 50, 1000, 10, NULL, 0, take, &g, &n), EGOV_OK);
	assert_int_equal(n, 3);
}

static void test_rollback(void **state)
{
	(void)state;
	on_each_backend(rollback_case);
}

/* ---- a pub/sub-shaped outbox: join, alias, composite key, parameters ------------ */

static const lease_spec pushes = {
	.table = "pbox",
	.alias = "o",
	.join = "JOIN psub s ON s.id = o.sub_id",
	.key = "sub_id, seq",
	.due = "next_us",
	.attempts = "attempts",
	.pending = "o.state = 0 AND o.inflight = 0 AND o.expires_us > ? AND s.push = 1",
	.order = "o.next_us, o.seq",
	.columns = "o.sub_id, o.seq, s.name",
	.set = "inflight = 1",
};

typedef struct pgot {
	char what[16][48];
	int n;
} pgot;

static egov_err ptake(void *ctx, db_rows *r, int64_t attempt)
{
	pgot *g = ctx;

	if (g->n >= 16)
		return EGOV_ELIMIT;
	snprintf(g->what[g->n++], sizeof g->what[0], "%s/%lld/%s/%lld", db_rows_text(r, 0),
		 (long long)db_rows_int(r, 1), db_rows_text(r, 2), (long long)attempt);
	return EGOV_OK;
}

static void join_case(db *d, db_conn *c)
{
	db_param p[1] = {DBP_I(50)};
	pgot g = {0};
	int64_t v = 0;
	bool found = false;
	int n = -1;

	(void)d;
	assert_int_equal(db_exec_script(c, "CREATE TABLE psub (id TEXT PRIMARY KEY, name TEXT, push INTEGER);"
					   "CREATE TABLE pbox (sub_id TEXT NOT NULL, seq BIGINT NOT NULL,"
					   " next_us BIGINT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
					   " inflight INTEGER NOT NULL DEFAULT 0, state INTEGER NOT NULL DEFAULT 0,"
					   " expires_us BIGINT NOT NULL, PRIMARY KEY (sub_id, seq));"
					   "INSERT INTO psub VALUES ('a', 'alpha', 1);"
					   "INSERT INTO psub VALUES ('b', 'beta', 0);"
					   /* a/7 and a/3 due, a/9 expired, b/1 not a push, a/8 delivered */
					   "INSERT INTO pbox (sub_id, seq, next_us, expires_us) VALUES ('a', 7, 10, 1000);"
					   "INSERT INTO pbox (sub_id, seq, next_us, expires_us) VALUES ('a', 3, 10, 1000);"
					   "INSERT INTO pbox (sub_id, seq, next_us, expires_us) VALUES ('a', 9, 10, 40);"
					   "INSERT INTO pbox (sub_id, seq, next_us, expires_us) VALUES ('b', 1, 10, 1000);"
					   "INSERT INTO pbox (sub_id, seq, next_us, state, expires_us)"
					   " VALUES ('a', 8, 10, 1, 1000)"),
			 EGOV_OK);
	assert_int_equal(lease_claim(c, &pushes, 50, 500, 10, p, 1, ptake, &g, &n), EGOV_OK);
	assert_int_equal(n, 2);
	assert_string_equal(g.what[0], "a/3/alpha/1");
	assert_string_equal(g.what[1], "a/7/alpha/1");
	/* the extra assignment and the lease, on exactly those rows */
	assert_int_equal(db_query_int(c, "SELECT COUNT(*) FROM pbox WHERE inflight = 1 AND next_us = 550", NULL, 0, &v,
				      &found),
			 EGOV_OK);
	assert_int_equal(v, 2);
	assert_int_equal(db_query_int(c, "SELECT next_us FROM pbox WHERE sub_id = 'a' AND seq = 7", NULL, 0, &v, &found),
			 EGOV_OK);
	assert_int_equal(v, 550);
	/* in flight: not pending any more, even once the lease ran out */
	memset(&g, 0, sizeof g);
	p[0] = DBP_I(600);
	assert_int_equal(lease_claim(c, &pushes, 600, 500, 10, p, 1, ptake, &g, &n), EGOV_OK);
	assert_int_equal(n, 0);
}

static void test_join(void **state)
{
	(void)state;
	on_each_backend(join_case);
}

/* ---- refused specs ------------------------------------------------------------- */

static egov_err never(void *ctx, db_rows *r, int64_t attempt)
{
	(void)ctx;
	(void)r;
	(void)attempt;
	fail_msg("the callback of a refused claim ran");
	return EGOV_EINTERNAL;
}

static void refused_case(db *d, db_conn *c)
{
	char longtext[5000]; /* over the statement limit of lease.c */
	lease_spec s = outbox;
	db_param p[LEASE_PARAMS_MAX + 1];
	int n = -1;

	(void)d;
	make_box(c);
	s.key = NULL;
	assert_int_equal(lease_claim(c, &s, 50, 1, 1, NULL, 0, never, NULL, &n), EGOV_EINVAL);
	s.key = "id; DROP TABLE box";
	assert_int_equal(lease_claim(c, &s, 50, 1, 1, NULL, 0, never, NULL, &n), EGOV_EINVAL);
	s.key = "a, b, c, d, e";
	assert_int_equal(lease_claim(c, &s, 50, 1, 1, NULL, 0, never, NULL, &n), EGOV_EINVAL);
	s.key = "id,";
	assert_int_equal(lease_claim(c, &s, 50, 1, 1, NULL, 0, never, NULL, &n), EGOV_EINVAL);
	s = outbox;
	s.due = NULL;
	assert_int_equal(lease_claim(c, &s, 50, 1, 1, NULL, 0, never, NULL, &n), EGOV_EINVAL);
	s = outbox;
	assert_int_equal(lease_claim(c, &s, 50, 1, LEASE_CLAIM_MAX + 1, NULL, 0, never, NULL, &n), EGOV_EINVAL);
	assert_int_equal(lease_claim(c, &s, 50, 1, -1, NULL, 0, never, NULL, &n), EGOV_EINVAL);
	memset(p, 0, sizeof p);
	assert_int_equal(lease_claim(c, &s, 50, 1, 1, p, LEASE_PARAMS_MAX + 1, never, NULL, &n), EGOV_EINVAL);
	assert_int_equal(lease_claim(c, &s, 50, 1, 1, NULL, 0, NULL, NULL, &n), EGOV_EINVAL);
	/* a spec whose SQL would be too long */
	memset(longtext, 'x', sizeof longtext - 1);
	longtext[sizeof longtext - 1] = '\0';
	s.pending = longtext;
	assert_int_equal(lease_claim(c, &s, 50, 1, 1, NULL, 0, never, NULL, &n), EGOV_EINVAL);
	assert_int_equal(n, 0);
	/* nothing was touched */
	assert_int_equal(due_of(c, "r1"), 10);
}

static void test_refused(void **state)
{
	(void)state;
	on_each_backend(refused_case);
}

/* ---- two claimers at once ------------------------------------------------------- */

#define ROWS 120

typedef struct claimer {
	db *d;
	int count[ROWS];
	int claims;
	egov_err err;
} claimer;

static egov_err note(void *ctx, db_rows *r, int64_t attempt)
{
	claimer *cl = ctx;
	int64_t id = db_rows_int(r, 0);
	struct timespec ts = {0, 300 * 1000}; /* hold the claim a little */

	(void)attempt;
	if (id < 0 || id >= ROWS)
		return EGOV_EINTERNAL;
	cl->count[id]++;
	nanosleep(&ts, NULL);
	return EGOV_OK;
}

static const lease_spec numbered = {
	.table = "nbox",
	.key = "id",
	.due = "due",
	.attempts = "attempts",
	.columns = "id",
};

static void *claim_all(void *arg)
{
	claimer *cl = arg;
	db_conn *c = NULL;
	int n = 0, idle = 0;

	if ((cl->err = db_conn_open(cl->d, &c)))
		return NULL;
	/* until two claims in a row find nothing: the other may hold the rest */
	while (idle < 2) {
		cl->err = lease_claim(c, &numbered, 1000, 1000000, 4, NULL, 0, note, cl, &n);
		if (cl->err == EGOV_EBUSY)
			continue;
		if (cl->err)
			break;
		cl->claims++;
		idle = n ? 0 : idle + 1;
	}
	db_conn_close(c);
	return NULL;
}

static void concurrent_case(db *d, db_conn *c)
{
	claimer *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
	pthread_t ta, tb;
	int64_t claimed = 0;
	bool found = false;
	int i, both = 0, total = 0, by_a = 0;

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(db_exec_script(c, "CREATE TABLE nbox (id INTEGER PRIMARY KEY, due BIGINT NOT NULL,"
					   " attempts INTEGER NOT NULL DEFAULT 0)"),
			 EGOV_OK);
	assert_int_equal(db_begin(c), EGOV_OK);
	for (i = 0; i < ROWS; i++) {
		db_param p[2] = {DBP_I(i), DBP_I(i % 7)};
		assert_int_equal(db_exec(c, "INSERT INTO nbox (id, due) VALUES (?, ?)", p, 2, NULL), EGOV_OK);
	}
	assert_int_equal(db_commit(c), EGOV_OK);
	a->d = b->d = d;
	assert_int_equal(pthread_create(&ta, NULL, claim_all, a), 0);
	assert_int_equal(pthread_create(&tb, NULL, claim_all, b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_int_equal(a->err, EGOV_OK);
	assert_int_equal(b->err, EGOV_OK);
	for (i = 0; i < ROWS; i++) {
		assert_true(a->count[i] + b->count[i] == 1); /* each row once, by one of them */
		both += a->count[i] && b->count[i];
		total += a->count[i] + b->count[i];
		by_a += a->count[i];
	}
	print_message("# %d rows: %d claimed by one, %d by the other, in %d + %d claims\n", ROWS, by_a,
		      total - by_a, a->claims, b->claims);
	assert_int_equal(both, 0);
	assert_int_equal(total, ROWS);
	assert_int_equal(db_query_int(c, "SELECT COUNT(*) FROM nbox WHERE attempts = 1 AND due = 1001000", NULL, 0,
				      &claimed, &found),
			 EGOV_OK);
	assert_int_equal(claimed, ROWS);
	free(a);
	free(b);
}

static void test_concurrent(void **state)
{
	(void)state;
	on_each_backend(concurrent_case);
}

/* ---- PostgreSQL: a claimer passes over rows another holds ----------------------- */

static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;
static int hold_state; /* 0 before, 1 holding, 2 let go */

typedef struct holder {
	db *d;
	got g;
	int n;
	egov_err err;
} holder;

/* Takes a row, then holds the claim's transaction open until let go. */
static egov_err hold(void *ctx, db_rows *r, int64_t attempt)
{
	holder *h = ctx;
	egov_err err = take(&h->g, r, attempt);

	pthread_mutex_lock(&hold_mu);
	if (h->g.n == 2) {
		hold_state = 1;
		pthread_cond_broadcast(&hold_cv);
		while (hold_state != 2)
			pthread_cond_wait(&hold_cv, &hold_mu);
	}
	pthread_mutex_unlock(&hold_mu);
	return err;
}

static void *hold_claim(void *arg)
{
	holder *h = arg;
	db_conn *c = NULL;

	if (!(h->err = db_conn_open(h->d, &c))) {
		h->err = lease_claim(c, &outbox, 50, 1000, 2, NULL, 0, hold, h, &h->n);
		db_conn_close(c);
	}
	return NULL;
}

static void skip_locked_case(db *d, db_conn *c)
{
	holder h = {.d = d};
	got g = {0};
	pthread_t t;
	int n = -1;

	if (db_conn_kind(c) != DB_POSTGRES)
		return; /* SQLite has one writer at a time: there is no row to pass over */
	make_box(c);
	hold_state = 0;
	assert_int_equal(pthread_create(&t, NULL, hold_claim, &h), 0);
	pthread_mutex_lock(&hold_mu);
	while (hold_state != 1)
		pthread_cond_wait(&hold_cv, &hold_mu);
	pthread_mutex_unlock(&hold_mu);
	/* r1 and r2 are held by the other claim: this one gets r3 at once */
	assert_int_equal(lease_claim(c, &outbox, 50, 1000, 10, NULL, 0, take, &g, &n), EGOV_OK);
	assert_int_equal(n, 1);
	assert_string_equal(g.id[0], "r3");
	pthread_mutex_lock(&hold_mu);
	hold_state = 2;
	pthread_cond_broadcast(&hold_cv);
	pthread_mutex_unlock(&hold_mu);
	pthread_join(t, NULL);
	assert_int_equal(h.err, EGOV_OK);
	assert_int_equal(h.n, 2);
	assert_string_equal(h.g.id[0], "r1");
	assert_string_equal(h.g.id[1], "r2");
	/* once it committed, its rows are leased: nothing is due */
	memset(&g, 0, sizeof g);
	assert_int_equal(lease_claim(c, &outbox, 60, 1000, 10, NULL, 0, take, &g, &n), EGOV_OK);
	assert_int_equal(n, 0);
}

static void test_skip_locked(void **state)
{
	(void)state;
	on_each_backend(skip_locked_case);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_claim),
		cmocka_unit_test(test_rollback),
		cmocka_unit_test(test_join),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_skip_locked),
	};
	return cmocka_run_group_tests_name("lease", tests, NULL, NULL);
}
