/*
 * test_db.c: the db layer, every case on every backend test_backends()
 * names (SQLite always, PostgreSQL when EGOV_TEST_PG_URL is set). Each case
 * gets a fresh SQLite file and an emptied PostgreSQL schema.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>

#include "core/db.h"
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

static const char *blob_type(db_conn *c)
{
	return db_conn_kind(c) == DB_POSTGRES ? "BYTEA" : "BLOB";
}

static void make_table(db_conn *c)
{
	char sql[256];
	snprintf(sql, sizeof sql,
		 "CREATE TABLE t (id INTEGER PRIMARY KEY, n BIGINT, s TEXT, b %s, u TEXT UNIQUE)", blob_type(c));
	assert_int_equal(db_exec_script(c, sql), EGOV_OK);
}

static int64_t count_rows(db_conn *c, const char *table_sql)
{
	int64_t v = -1;
	bool found = false;
	assert_int_equal(db_query_int(c, table_sql, NULL, 0, &v, &found), EGOV_OK);
	assert_true(found);
	return v;
}

/* ---- parameters and types ------------------------------------------------ */

static void params_case(db *d, db_conn *c)
{
	static const unsigned char bin[] = {0, 1, 0, 255, 0, '\\', 'x', 0};
	db_rows *r = NULL;
	bool has = false;
	int64_t changes = -1;
	size_t len = 99;
	const unsigned char *b;

	make_table(c);
	db_param p1[] = {DBP_I(1), DBP_I(INT64_MAX), DBP_S("澳門 ção"), DBP_B(bin, sizeof bin), DBP_S("a")};
	assert_int_equal(db_exec(c, "INSERT INTO t (id, n, s, b, u) VALUES (?, ?, ?, ?, ?)", p1, 5, &changes),
			 EGOV_OK);
	assert_int_equal(changes, 1);
	db_param p2[] = {DBP_I(2), DBP_NULLV, DBP_NULLV, DBP_B(NULL, 0), DBP_S(NULL)};
	assert_int_equal(db_exec(c, "INSERT INTO t (id, n, s, b, u) VALUES (?, ?, ?, ?, ?)", p2, 5, NULL), EGOV_OK);
	db_param p3[] = {DBP_I(3), DBP_I(-42), DBP_S(""), DBP_NULLV, DBP_NULLV};
	assert_int_equal(db_exec(c, "INSERT INTO t (id, n, s, b, u) VALUES (?, ?, ?, ?, ?)", p3, 5, NULL), EGOV_OK);

	assert_int_equal(db_query(c, "SELECT id, n, s, b, u FROM t ORDER BY id", NULL, 0, &r), EGOV_OK);
	assert_int_equal(db_rows_ncols(r), 5);

	assert_int_equal(db_rows_next(r, &has), EGOV_OK);
	assert_true(has);
	assert_int_equal(db_rows_int(r, 0), 1);
	assert_true(db_rows_int(r, 1) == INT64_MAX);
	assert_string_equal(db_rows_text(r, 2), "澳門 ção");
	b = db_rows_blob(r, 3, &len);
	assert_non_null(b);
	assert_int_equal(len, sizeof bin);
	assert_memory_equal(b, bin, sizeof bin);
	assert_false(db_rows_isnull(r, 3));

	assert_int_equal(db_rows_next(r, &has), EGOV_OK);
	assert_true(has);
	assert_true(db_rows_isnull(r, 1));
	assert_int_equal(db_rows_int(r, 1), 0);
	assert_null(db_rows_text(r, 2));
	assert_true(db_rows_isnull(r, 2));
	assert_false(db_rows_isnull(r, 3)); /* an empty blob is not NULL */
	b = db_rows_blob(r, 3, &len);
	assert_non_null(b);
	assert_int_equal(len, 0);
	assert_true(db_rows_isnull(r, 4));

	assert_int_equal(db_rows_next(r, &has), EGOV_OK);
	assert_true(has);
	assert_int_equal(db_rows_int(r, 1), -42);
	assert_string_equal(db_rows_text(r, 2), "");
	assert_false(db_rows_isnull(r, 2));
	b = db_rows_blob(r, 3, &len);
	assert_null(b);
	assert_int_equal(len, 0);

	assert_int_equal(db_rows_next(r, &has), EGOV_OK);
	assert_false(has);
	assert_int_equal(db_rows_next(r, &has), EGOV_OK); /* stays at the end */
	assert_false(has);
	db_rows_free(r);

	/* Text search on UTF-8 and changes reported by UPDATE. */
	db_param q[] = {DBP_S("澳門 ção")};
	int64_t id = 0;
	bool found = false;
	assert_int_equal(db_query_int(c, "SELECT id FROM t WHERE s = ?", q, 1, &id, &found), EGOV_OK);
	assert_true(found);
	assert_int_equal(id, 1);
	db_param up[] = {DBP_I(7)};
	assert_int_equal(db_exec(c, "UPDATE t SET n = ? WHERE id >= 2", up, 1, &changes), EGOV_OK);
	assert_int_equal(changes, 2);
	(void)d;
}

static void test_params(void **state)
{
	on_each_backend(params_case);
}

static void helpers_case(db *d, db_conn *c)
{
	char *s = NULL;
	int64_t v = 5;
	bool found = true;

	make_table(c);
	db_param p[] = {DBP_I(10), DBP_S("ten")};
	assert_int_equal(db_exec(c, "INSERT INTO t (id, s) VALUES (?, ?)", p, 2, NULL), EGOV_OK);
	db_param k[] = {DBP_I(10)};
	assert_int_equal(db_query_text(c, "SELECT s FROM t WHERE id = ?", k, 1, &s), EGOV_OK);
	assert_string_equal(s, "ten");
	free(s);
	db_param miss[] = {DBP_I(11)};
	assert_int_equal(db_query_text(c, "SELECT s FROM t WHERE id = ?", miss, 1, &s), EGOV_OK);
	assert_null(s);
	assert_int_equal(db_query_int(c, "SELECT id FROM t WHERE id = ?", miss, 1, &v, &found), EGOV_OK);
	assert_false(found);
	assert_int_equal(v, 0);
	/* A comparison reads as 0/1 on both backends. */
	assert_int_equal(db_query_int(c, "SELECT id = 10 FROM t WHERE id = ?", k, 1, &v, &found), EGOV_OK);
	assert_true(found);
	assert_int_equal(v, 1);
	/* '?' inside a literal or a comment is not a parameter. */
	assert_int_equal(db_query_text(c, "SELECT '?' || s /* ? */ FROM t WHERE id = ? -- ?", k, 1, &s), EGOV_OK);
	assert_string_equal(s, "?ten");
	free(s);
	assert_int_equal(db_query_text(c, "SELECT 'it''s ?' || s FROM t WHERE id = ?", k, 1, &s), EGOV_OK);
	assert_string_equal(s, "it's ?ten");
	free(s);
	if (db_conn_kind(c) == DB_POSTGRES) {
		/* PostgreSQL-only quoting: dollar quotes and E'' escapes. */
		assert_int_equal(db_query_text(c, "SELECT $$a?$$ || $t$?'$t$ || E'\\'?' || s FROM t WHERE id = ?", k,
					       1, &s),
				 EGOV_OK);
		assert_string_equal(s, "a?" "?''?ten");
		free(s);
	}
	assert_int_equal(db_ping(c), EGOV_OK);
	(void)d;
}

static void test_helpers(void **state)
{
	on_each_backend(helpers_case);
}

/* ---- errors ---------------------------------------------------------------- */

static void conflict_case(db *d, db_conn *c)
{
	make_table(c);
	db_param a[] = {DBP_I(1), DBP_S("x")};
	db_param b[] = {DBP_I(2), DBP_S("x")};
	assert_int_equal(db_exec(c, "INSERT INTO t (id, u) VALUES (?, ?)", a, 2, NULL), EGOV_OK);
	assert_int_equal(db_exec(c, "INSERT INTO t (id, u) VALUES (?, ?)", a, 2, NULL), EGOV_ECONFLICT);
	assert_true(strlen(db_conn_errmsg(c)) > 0);
	assert_int_equal(db_exec(c, "INSERT INTO t (id, u) VALUES (?, ?)", b, 2, NULL), EGOV_ECONFLICT);
	/* The connection is still usable after a failure. */
	assert_int_equal(count_rows(c, "SELECT COUNT(*) FROM t"), 1);

	/* Other failures are EGOV_EDB with the backend's message. */
	assert_int_equal(db_exec(c, "INSERT INTO no_such_table VALUES (1)", NULL, 0, NULL), EGOV_EDB);
	assert_non_null(strstr(db_conn_errmsg(c), "no_such_table"));
	/* Wrong parameter count is refused, not guessed at. */
	assert_int_equal(db_exec(c, "INSERT INTO t (id, u) VALUES (?, ?)", a, 1, NULL), EGOV_EINVAL);
	/* db_exec runs exactly one statement. */
	assert_int_not_equal(db_exec(c, "SELECT 1; SELECT 2", NULL, 0, NULL), EGOV_OK);
	(void)d;
}

static void test_conflict(void **state)
{
	on_each_backend(conflict_case);
}

static void tx_case(db *d, db_conn *c)
{
	db_conn *other = NULL;
	make_table(c);
	assert_int_equal(db_conn_open(d, &other), EGOV_OK);

	assert_int_equal(db_begin(c), EGOV_OK);
	assert_int_equal(db_exec(c, "INSERT INTO t (id) VALUES (1)", NULL, 0, NULL), EGOV_OK);
	/* Not visible to another connection before commit. */
	assert_int_equal(count_rows(other, "SELECT COUNT(*) FROM t"), 0);
	assert_int_equal(db_commit(c), EGOV_OK);
	assert_int_equal(count_rows(other, "SELECT COUNT(*) FROM t"), 1);

	assert_int_equal(db_begin(c), EGOV_OK);
	assert_int_equal(db_exec(c, "INSERT INTO t (id) VALUES (2)", NULL, 0, NULL), EGOV_OK);
	assert_int_equal(count_rows(c, "SELECT COUNT(*) FROM t"), 2);
	assert_int_equal(db_rollback(c), EGOV_OK);
	assert_int_equal(count_rows(c, "SELECT COUNT(*) FROM t"), 1);
	assert_int_equal(count_rows(other, "SELECT COUNT(*) FROM t"), 1);

	/* A conflict inside a transaction, then rollback, leaves nothing. */
	assert_int_equal(db_begin(c), EGOV_OK);
	assert_int_equal(db_exec(c, "INSERT INTO t (id) VALUES (3)", NULL, 0, NULL), EGOV_OK);
	assert_int_equal(db_exec(c, "INSERT INTO t (id) VALUES (1)", NULL, 0, NULL), EGOV_ECONFLICT);
	assert_int_equal(db_rollback(c), EGOV_OK);
	assert_int_equal(count_rows(other, "SELECT COUNT(*) FROM t"), 1);
	db_conn_close(other);
}

static void test_transactions(void **state)
{
	on_each_backend(tx_case);
}

/* db_begin() inside a transaction: a SAVEPOINT that commits with the outer
 * transaction, and rolls back alone, leaving the outer one usable even
 * after a conflict (which aborts a whole transaction on PostgreSQL). */
static void nested_case(db *d, db_conn *c)
{
	db_conn *other = NULL;
	make_table(c);
	assert_int_equal(db_conn_open(d, &other), EGOV_OK);

	assert_int_equal(db_begin(c), EGOV_OK);
	assert_int_equal(db_exec(c, "INSERT INTO t (id, u) VALUES (1, 'a')", NULL, 0, NULL), EGOV_OK);
	/* Inner part that commits: nothing is visible before the outer commit. */
	assert_int_equal(db_begin(c), EGOV_OK);
	assert_int_equal(db_exec(c, "INSERT INTO t (id) VALUES (2)", NULL, 0, NULL), EGOV_OK);
	assert_int_equal(db_commit(c), EGOV_OK);
	assert_int_equal(count_rows(other, "SELECT COUNT(*) FROM t"), 0);
	/* Inner part that conflicts and rolls back alone. */
	assert_int_equal(db_begin(c), EGOV_OK);
	assert_int_equal(db_exec(c, "INSERT INTO t (id) VALUES (3)", NULL, 0, NULL), EGOV_OK);
	assert_int_equal(db_exec(c, "INSERT INTO t (id, u) VALUES (4, 'a')", NULL, 0, NULL), EGOV_ECONFLICT);
	assert_int_equal(db_end(c, EGOV_ECONFLICT), EGOV_ECONFLICT);
	/* Two deep, through db_end(). */
	assert_int_equal(db_begin(c), EGOV_OK);
	assert_int_equal(db_begin(c), EGOV_OK);
	assert_int_equal(db_exec(c, "INSERT INTO t (id) VALUES (5)", NULL, 0, NULL), EGOV_OK);
	assert_int_equal(db_end(c, EGOV_OK), EGOV_OK);
	assert_int_equal(db_end(c, EGOV_OK), EGOV_OK);
	/* The outer transaction is still usable and commits what it kept. */
	assert_int_equal(db_exec(c, "INSERT INTO t (id) VALUES (6)", NULL, 0, NULL), EGOV_OK);
	assert_int_equal(db_end(c, EGOV_OK), EGOV_OK);
	assert_int_equal(count_rows(other, "SELECT COUNT(*) FROM t"), 4);
	assert_int_equal(count_rows(other, "SELECT COUNT(*) FROM t WHERE id IN (3, 4)"), 0);

	/* The outer one rolled back takes the committed inner parts with it. */
	assert_int_equal(db_begin(c), EGOV_OK);
	assert_int_equal(db_begin(c), EGOV_OK);
	assert_int_equal(db_exec(c, "INSERT INTO t (id) VALUES (7)", NULL, 0, NULL), EGOV_OK);
	assert_int_equal(db_commit(c), EGOV_OK);
	assert_int_equal(db_end(c, EGOV_EINVAL), EGOV_EINVAL);
	assert_int_equal(count_rows(other, "SELECT COUNT(*) FROM t"), 4);
	/* And a plain transaction afterwards is a transaction again. */
	assert_int_equal(db_begin(c), EGOV_OK);
	assert_int_equal(db_exec(c, "INSERT INTO t (id) VALUES (8)", NULL, 0, NULL), EGOV_OK);
	assert_int_equal(count_rows(other, "SELECT COUNT(*) FROM t"), 4);
	assert_int_equal(db_commit(c), EGOV_OK);
	assert_int_equal(count_rows(other, "SELECT COUNT(*) FROM t"), 5);
	db_conn_close(other);
}

static void test_nested_transactions(void **state)
{
	on_each_backend(nested_case);
}

/* ---- statement cache --------------------------------------------------------- */

static void cache_case(db *d, db_conn *c)
{
	char sql[128];
	int i;
	db_rows *r1 = NULL, *r2 = NULL;
	bool has;

	make_table(c);
	for (i = 0; i < 300; i++) {
		db_param p[] = {DBP_I(i), DBP_I(i * 3)};
		assert_int_equal(db_exec(c, "INSERT INTO t (id, n) VALUES (?, ?)", p, 2, NULL), EGOV_OK);
	}
	/* The same buffer holding different texts: the cache compares the
	 * text, not the pointer. */
	for (i = 0; i < 20; i++) {
		int64_t v = 0;
		bool found = false;
		snprintf(sql, sizeof sql, "SELECT n + %d FROM t WHERE id = ?", i % 4);
		db_param k[] = {DBP_I(i)};
		assert_int_equal(db_query_int(c, sql, k, 1, &v, &found), EGOV_OK);
		assert_true(found);
		assert_int_equal(v, i * 3 + i % 4);
	}
	/* The same text open twice at once (nested iteration). */
	assert_int_equal(db_query(c, "SELECT id FROM t WHERE id < 3 ORDER BY id", NULL, 0, &r1), EGOV_OK);
	assert_int_equal(db_rows_next(r1, &has), EGOV_OK);
	assert_true(has);
	assert_int_equal(db_query(c, "SELECT id FROM t WHERE id < 3 ORDER BY id", NULL, 0, &r2), EGOV_OK);
	for (i = 0; i < 3; i++) {
		assert_int_equal(db_rows_next(r2, &has), EGOV_OK);
		assert_true(has);
		assert_int_equal(db_rows_int(r2, 0), i);
	}
	assert_int_equal(db_rows_int(r1, 0), 0);
	assert_int_equal(db_rows_next(r1, &has), EGOV_OK);
	assert_int_equal(db_rows_int(r1, 0), 1);
	db_rows_free(r2);
	db_rows_free(r1);

	/* Query parameters may be freed before the rows are read. */
	char *key = strdup("k1");
	db_param up[] = {DBP_S("k1")};
	assert_int_equal(db_exec(c, "UPDATE t SET u = ? WHERE id = 5", up, 1, NULL), EGOV_OK);
	db_param kp[] = {DBP_S(key)};
	assert_int_equal(db_query(c, "SELECT id FROM t WHERE u = ?", kp, 1, &r1), EGOV_OK);
	memset(key, 'z', 2);
	free(key);
	assert_int_equal(db_rows_next(r1, &has), EGOV_OK);
	assert_true(has);
	assert_int_equal(db_rows_int(r1, 0), 5);
	db_rows_free(r1);

	/* More distinct texts than the cache holds still run correctly. */
	for (i = 0; i < 600; i++) {
		int64_t v = 0;
		snprintf(sql, sizeof sql, "SELECT %d + COUNT(*) FROM t", i);
		assert_int_equal(db_query_int(c, sql, NULL, 0, &v, NULL), EGOV_OK);
		assert_int_equal(v, 300 + i);
	}
	(void)d;
}

static void test_stmt_cache(void **state)
{
	on_each_backend(cache_case);
}

static void blobs_rows_case(db *d, db_conn *c)
{
	unsigned char big[70000];
	db_rows *r = NULL;
	bool has;
	size_t i, l1 = 0, l2 = 0;
	int rows = 0;

	for (i = 0; i < sizeof big; i++)
		big[i] = (unsigned char)(i * 7);
	make_table(c);
	for (i = 0; i < 3; i++) {
		db_param p[] = {DBP_I(i), DBP_B(big, sizeof big - i), DBP_S("x")};
		assert_int_equal(db_exec(c, "INSERT INTO t (id, b, s) VALUES (?, ?, ?)", p, 3, NULL), EGOV_OK);
	}
	/* Two blob columns of one row are both valid until the next row. */
	assert_int_equal(db_query(c, "SELECT b, b, id FROM t ORDER BY id", NULL, 0, &r), EGOV_OK);
	while (db_rows_next(r, &has) == EGOV_OK && has) {
		const void *a = db_rows_blob(r, 0, &l1);
		const void *b = db_rows_blob(r, 1, &l2);
		size_t want = sizeof big - (size_t)db_rows_int(r, 2);
		assert_int_equal(l1, want);
		assert_int_equal(l2, want);
		assert_memory_equal(a, big, want);
		assert_memory_equal(b, big, want);
		rows++;
	}
	assert_int_equal(rows, 3);
	db_rows_free(r);
	(void)d;
}

static void test_blob_rows(void **state)
{
	on_each_backend(blobs_rows_case);
}

/* ---- migrations -------------------------------------------------------------- */

static const db_migration migs[] = {
	{.version = 1, .name = "people", .sql = "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"},
	{.version = 2,
	 .name = "people_email",
	 .sql = "ALTER TABLE people ADD COLUMN email TEXT; CREATE UNIQUE INDEX people_email ON people (email)"},
	{.version = 5,
	 .name = "dialect",
	 .sql_sqlite = "CREATE TABLE dialect (v TEXT); INSERT INTO dialect VALUES ('sqlite')",
	 .sql_postgres = "CREATE TABLE dialect (v TEXT); INSERT INTO dialect VALUES ('postgres')"},
};

static void migrate_case(db *d, db_conn *c)
{
	int n = -1;
	char *s = NULL;

	assert_int_equal(db_migrations_pending(c, "test", migs, 2, &n), EGOV_OK);
	assert_int_equal(n, 2);
	assert_int_equal(db_migrate(c, "test", migs, 2, &n), EGOV_OK);
	assert_int_equal(n, 2);
	assert_int_equal(db_migrations_pending(c, "test", migs, 3, &n), EGOV_OK);
	assert_int_equal(n, 1);
	assert_int_equal(db_migrate(c, "test", migs, 3, &n), EGOV_OK);
	assert_int_equal(n, 1);
	/* Applied once: running again does nothing. */
	assert_int_equal(db_migrate(c, "test", migs, 3, &n), EGOV_OK);
	assert_int_equal(n, 0);
	assert_int_equal(db_migrations_pending(c, "test", migs, 3, &n), EGOV_OK);
	assert_int_equal(n, 0);
	/* Another module's numbering is its own. */
	assert_int_equal(db_migrations_pending(c, "other", migs, 1, &n), EGOV_OK);
	assert_int_equal(n, 1);

	assert_int_equal(db_query_text(c, "SELECT v FROM dialect", NULL, 0, &s), EGOV_OK);
	assert_string_equal(s, db_kind_name(d));
	free(s);
	assert_int_equal(count_rows(c, "SELECT COUNT(*) FROM schema_migrations WHERE module = 'test'"), 3);
	assert_int_equal(db_query_text(c, "SELECT name FROM schema_migrations WHERE module = 'test' AND version = 2",
				       NULL, 0, &s),
			 EGOV_OK);
	assert_string_equal(s, "people_email");
	free(s);
	assert_int_equal(db_query_text(c, "SELECT applied_at FROM schema_migrations WHERE version = 1", NULL, 0, &s),
			 EGOV_OK);
	assert_int_equal(strlen(s), 20); /* 2025-01-02T03:04:05Z */
	assert_int_equal(s[19], 'Z');
	free(s);

	/* The email index from migration 2 is there. */
	db_param p[] = {DBP_S("a@example.org")};
	assert_int_equal(db_exec(c, "INSERT INTO people (id, name, email) VALUES (1, 'a', ?)", p, 1, NULL), EGOV_OK);
	assert_int_equal(db_exec(c, "INSERT INTO people (id, name, email) VALUES (2, 'b', ?)", p, 1, NULL), EGOV_ECONFLICT);
}

static void test_migrations(void **state)
{
	on_each_backend(migrate_case);
}

static void migrate_fail_case(db *d, db_conn *c)
{
	static const db_migration bad[] = {
		{.version = 1, .name = "ok", .sql = "CREATE TABLE good (id INTEGER)"},
		{.version = 2,
		 .name = "broken",
		 .sql = "CREATE TABLE half (id INTEGER); INSERT INTO nowhere VALUES (1)"},
	};
	static const db_migration unordered[] = {
		{.version = 2, .name = "b", .sql = "SELECT 1"},
		{.version = 1, .name = "a", .sql = "SELECT 1"},
	};
	static const db_migration no_text[] = {
		{.version = 1, .name = "a", .sql_sqlite = "SELECT 1"},
		{.version = 2, .name = "b", .sql_postgres = "SELECT 1"},
	};
	int n = -1;
	int64_t v;
	bool found = true;

	assert_int_equal(db_migrate(c, "bad", bad, 2, &n), EGOV_EDB);
	assert_int_equal(n, 1);
	assert_non_null(strstr(db_conn_errmsg(c), "nowhere"));
	/* The failed migration left neither its table nor its record. */
	assert_int_equal(count_rows(c, "SELECT COUNT(*) FROM schema_migrations WHERE module = 'bad'"), 1);
	assert_int_not_equal(db_exec(c, "SELECT * FROM half", NULL, 0, NULL), EGOV_OK);
	assert_int_equal(db_query_int(c, "SELECT COUNT(*) FROM good", NULL, 0, &v, &found), EGOV_OK);
	assert_int_equal(db_migrations_pending(c, "bad", bad, 2, &n), EGOV_OK);
	assert_int_equal(n, 1);

	assert_int_equal(db_migrate(c, "unordered", unordered, 2, &n), EGOV_EINVAL);
	assert_int_equal(n, 0);
	assert_int_equal(db_migrate(c, "no_text", no_text, 2, &n), EGOV_EINVAL);
	assert_int_equal(n, 0);
	(void)d;
}

static void test_migration_failure(void **state)
{
	on_each_backend(migrate_fail_case);
}

/* ---- threads --------------------------------------------------------------- */

#define THREADS 8
#define PER_THREAD 100

struct worker {
	db *d;
	int id;
	int failures;
	db_conn *seen;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	db_conn *c = NULL, *again = NULL;
	int i;

	if (db_thread_conn(w->d, &c) || db_thread_conn(w->d, &again) || c != again) {
		w->failures++;
		return NULL;
	}
	w->seen = c;
	for (i = 0; i < PER_THREAD; i++) {
		egov_err err;
		db_param p[] = {DBP_I(w->id * 1000 + i), DBP_I(w->id)};
		if (i % 10 == 0) {
			/* Some writes inside explicit transactions. */
			err = db_begin(c);
			if (!err)
				err = db_exec(c, "INSERT INTO t (id, n) VALUES (?, ?)", p, 2, NULL);
			if (!err)
				err = db_commit(c);
			else
				db_rollback(c);
		} else {
			err = db_exec(c, "INSERT INTO t (id, n) VALUES (?, ?)", p, 2, NULL);
		}
		if (err) {
			fprintf(stderr, "worker %d: %s: %s\n", w->id, egov_err_name(err), db_conn_errmsg(c));
			w->failures++;
		}
	}
	return NULL;
}

static void threads_case(db *d, db_conn *c)
{
	pthread_t th[THREADS];
	struct worker w[THREADS];
	int i, j;
	db_stats st0, st1;

	make_table(c);
	db_stats_get(d, &st0);
	for (i = 0; i < THREADS; i++) {
		w[i] = (struct worker){.d = d, .id = i};
		assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
	}
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < THREADS; i++) {
		assert_int_equal(w[i].failures, 0);
		for (j = 0; j < i; j++)
			assert_true(w[i].seen != w[j].seen);
	}
	assert_int_equal(count_rows(c, "SELECT COUNT(*) FROM t"), THREADS * PER_THREAD);
	db_stats_get(d, &st1);
	assert_true(st1.queries >= st0.queries + THREADS * PER_THREAD);
	assert_true(st1.time_us > st0.time_us);

	/* The main thread's connection is closed by db_close. */
	db_conn *mine = NULL;
	assert_int_equal(db_thread_conn(d, &mine), EGOV_OK);
	assert_true(mine != c);
}

static void test_thread_conns(void **state)
{
	on_each_backend(threads_case);
}

/* ---- group commit (db_batch) and the SQLite write gate ------------------------ */

#define BATCH_THREADS 8
#define BATCH_PER_THREAD 40

struct batch_worker {
	db *d;
	int id;
	int failures;
};

struct batch_row {
	int64_t id, n;
	bool fail; /* the job fails after its insert: it must leave nothing */
};

static egov_err batch_insert(db_conn *c, void *ctx)
{
	struct batch_row *r = ctx;
	egov_err err = db_exec(c, "INSERT INTO t (id, n) VALUES (?, ?)", (db_param[]){DBP_I(r->id), DBP_I(r->n)}, 2,
			       NULL);
	return err ? err : r->fail ? EGOV_EINVAL : EGOV_OK;
}

/* Half the jobs flushed, half not, every fifth failing on purpose, from
 * several threads at once so that batches mix them. */
static void *batch_run(void *arg)
{
	struct batch_worker *w = arg;
	int i;

	for (i = 0; i < BATCH_PER_THREAD; i++) {
		struct batch_row r = {.id = w->id * 1000 + i, .n = i % 2, .fail = i % 5 == 4};
		egov_err err = i % 2 ? db_batch(w->d, batch_insert, &r) : db_batch_nosync(w->d, batch_insert, &r);
		if (err != (r.fail ? EGOV_EINVAL : EGOV_OK))
			w->failures++;
	}
	return NULL;
}

static void batch_case(db *d, db_conn *c)
{
	pthread_t th[BATCH_THREADS];
	struct batch_worker w[BATCH_THREADS];
	struct batch_row dup = {.id = 0, .n = 9};
	db_conn *mine = NULL;
	int64_t v = -1;
	int i;

	make_table(c);
	for (i = 0; i < BATCH_THREADS; i++) {
		w[i] = (struct batch_worker){.d = d, .id = i};
		assert_int_equal(pthread_create(&th[i], NULL, batch_run, &w[i]), 0);
	}
	for (i = 0; i < BATCH_THREADS; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < BATCH_THREADS; i++)
		assert_int_equal(w[i].failures, 0);
	/* Every job that succeeded is there and visible to another connection
	 * at once, flushed or not; every failed one left nothing. */
	assert_int_equal(count_rows(c, "SELECT COUNT(*) FROM t"), BATCH_THREADS * BATCH_PER_THREAD * 4 / 5);
	assert_int_equal(count_rows(c, "SELECT COUNT(*) FROM t WHERE id % 1000 % 5 = 4"), 0);
	/* A job's own error comes back to it alone. */
	assert_int_equal(db_batch_nosync(d, batch_insert, &dup), EGOV_ECONFLICT);
	assert_int_equal(count_rows(c, "SELECT n FROM t WHERE id = 0"), 0);
	/* Not flushing is the batch writer's business only: other connections
	 * still commit with synchronous=FULL. */
	if (db_kind_of(d) == DB_SQLITE) {
		assert_int_equal(db_thread_conn(d, &mine), EGOV_OK);
		assert_int_equal(db_query_int(mine, "PRAGMA synchronous", NULL, 0, &v, NULL), EGOV_OK);
		assert_int_equal(v, 2);
		assert_int_equal(db_query_int(c, "PRAGMA synchronous", NULL, 0, &v, NULL), EGOV_OK);
		assert_int_equal(v, 2);
	}
}

static void test_batch(void **state)
{
	on_each_backend(batch_case);
}

struct holder {
	db *d;
	int64_t order; /* what the waiter saw of the holder's row */
	egov_err err;
	struct timespec began; /* when the waiter's BEGIN returned */
};

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* Starts its write transaction while the main thread holds the write lock:
 * it must wait its turn (not fail) and then see the holder's commit. */
static void *gate_waiter(void *arg)
{
	struct holder *h = arg;
	db_conn *c = NULL;
	bool found = false;

	if ((h->err = db_thread_conn(h->d, &c)) || (h->err = db_begin(c)))
		return NULL;
	clock_gettime(CLOCK_MONOTONIC, &h->began);
	h->err = db_query_int(c, "SELECT n FROM t WHERE id = 1", NULL, 0, &h->order, &found);
	if (!h->err && !found)
		h->order = -1;
	if (!h->err)
		h->err = db_exec(c, "INSERT INTO t (id, n) VALUES (2, 2)", NULL, 0, NULL);
	if (!h->err)
		h->err = db_commit(c);
	else
		db_rollback(c);
	return NULL;
}

static void gate_case(db *d, db_conn *c)
{
	struct holder h = {.d = d, .order = 0, .err = EGOV_EINTERNAL};
	struct timespec committed;
	pthread_t th;
	int64_t late_ms;
	int i;

	if (db_kind_of(d) != DB_SQLITE)
		return; /* PostgreSQL's BEGIN takes no write lock */
	make_table(c);
	assert_int_equal(db_begin(c), EGOV_OK);
	assert_int_equal(db_exec(c, "INSERT INTO t (id, n) VALUES (1, 1)", NULL, 0, NULL), EGOV_OK);
	assert_int_equal(pthread_create(&th, NULL, gate_waiter, &h), 0);
	sleep_ms(250);
	assert_int_equal(db_commit(c), EGOV_OK);
	clock_gettime(CLOCK_MONOTONIC, &committed);
	pthread_join(th, NULL);
	assert_int_equal(h.err, EGOV_OK);
	assert_int_equal(h.order, 1);
	/* Handed over at the commit: SQLite's busy handler alone would have
	 * been asleep (it retries 228 ms, then 328 ms, after the first try). */
	late_ms = (h.began.tv_sec - committed.tv_sec) * 1000 + (h.began.tv_nsec - committed.tv_nsec) / 1000000;
	print_message("# the waiter began %lld ms after the commit\n", (long long)late_ms);
	assert_true(late_ms < 40);
	assert_int_equal(count_rows(c, "SELECT COUNT(*) FROM t"), 2);
	/* A rollback (after a failed statement too) hands the lock on as a
	 * commit does; the autocommit DELETE takes and leaves it by itself. */
	for (i = 0; i < 3; i++) {
		h = (struct holder){.d = d, .order = 0, .err = EGOV_EINTERNAL};
		assert_int_equal(db_exec(c, "DELETE FROM t WHERE id = 2", NULL, 0, NULL), EGOV_OK);
		assert_int_equal(db_begin(c), EGOV_OK);
		assert_int_equal(db_exec(c, "UPDATE t SET n = 5 WHERE id = 1", NULL, 0, NULL), EGOV_OK);
		assert_int_equal(pthread_create(&th, NULL, gate_waiter, &h), 0);
		sleep_ms(50);
		if (i == 0) {
			assert_int_equal(db_rollback(c), EGOV_OK);
		} else if (i == 1) {
			assert_int_equal(db_exec(c, "INSERT INTO t (id, n) VALUES (1, 1)", NULL, 0, NULL), EGOV_ECONFLICT);
			assert_int_equal(db_rollback(c), EGOV_OK);
		} else {
			assert_int_equal(db_commit(c), EGOV_OK);
		}
		pthread_join(th, NULL);
		assert_int_equal(h.err, EGOV_OK);
		assert_int_equal(h.order, i == 2 ? 5 : 1);
	}
}

static void test_write_turns(void **state)
{
	on_each_backend(gate_case);
}

/* ---- durability and configuration ---------------------------------------------- */

static void durability_case(db *d, db_conn *c)
{
	char *s = NULL;
	int64_t v = -1;

	if (db_kind_of(d) == DB_SQLITE) {
		assert_int_equal(db_query_int(c, "PRAGMA synchronous", NULL, 0, &v, NULL), EGOV_OK);
		assert_int_equal(v, 2); /* FULL */
		assert_int_equal(db_query_text(c, "PRAGMA journal_mode", NULL, 0, &s), EGOV_OK);
		assert_string_equal(s, "wal");
		free(s);
		assert_int_equal(db_query_int(c, "PRAGMA foreign_keys", NULL, 0, &v, NULL), EGOV_OK);
		assert_int_equal(v, 1);
		assert_int_equal(db_query_int(c, "PRAGMA busy_timeout", NULL, 0, &v, NULL), EGOV_OK);
		assert_true(v >= 1000);
	} else {
		assert_int_equal(db_query_text(c, "SHOW synchronous_commit", NULL, 0, &s), EGOV_OK);
		assert_string_equal(s, "on");
		free(s);
		assert_int_equal(db_query_text(c, "SHOW fsync", NULL, 0, &s), EGOV_OK);
		assert_string_equal(s, "on");
		free(s);
		assert_int_equal(db_query_text(c, "SHOW server_encoding", NULL, 0, &s), EGOV_OK);
		assert_string_equal(s, "UTF8");
		free(s);
	}
	/* Foreign keys are enforced on both. */
	assert_int_equal(db_exec_script(c, "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
					   "CREATE TABLE child (id INTEGER PRIMARY KEY, "
					   "parent_id INTEGER NOT NULL REFERENCES parent (id))"),
			 EGOV_OK);
	assert_int_equal(db_exec(c, "INSERT INTO child (id, parent_id) VALUES (1, 99)", NULL, 0, NULL), EGOV_EDB);
}

static void test_durability(void **state)
{
	on_each_backend(durability_case);
}

static void test_bad_urls(void **state)
{
	static const char *const bad[] = {
		"", "mysql://localhost/x", "sqlite:", "sqlite::memory:", "postgres://host:notaport/db?sslmode",
		"postgres://h/d?nosuchoption=1", "sqlite:/nonexistent-egov-dir/sub/x.db",
	};
	size_t i;
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char msg[256] = "";
		db *d = (db *)&msg; /* must be reset to NULL */
		assert_int_not_equal(db_open(bad[i], &d, msg, sizeof msg), EGOV_OK);
		assert_null(d);
		assert_true(strlen(msg) > 0);
	}
	db *d = NULL;
	assert_int_equal(db_open(NULL, &d, NULL, 0), EGOV_EINVAL);
}

static int closed_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd); /* never listened: connecting is refused */
	return port;
}

static void test_pg_closed_port(void **state)
{
	char url[128], msg[256] = "";
	db *d = NULL;
	db_conn *c = NULL;
	int port = closed_port();

	assert_true(port > 0);
	snprintf(url, sizeof url, "postgres://postgres@127.0.0.1:%d/egov_test", port);
	assert_int_equal(db_open(url, &d, msg, sizeof msg), EGOV_OK);
	assert_int_equal(db_kind_of(d), DB_POSTGRES);
	assert_string_equal(db_kind_name(d), "postgres");
	assert_int_equal(db_conn_open(d, &c), EGOV_EUNAVAILABLE);
	assert_null(c);
	db_open_errmsg(d, msg, sizeof msg);
	assert_non_null(strstr(msg, "connect"));
	assert_int_equal(db_thread_conn(d, &c), EGOV_EUNAVAILABLE);
	assert_null(c);
	db_close(d);
}

/* A connection the server dropped is reset on the next call. */
static void test_pg_reconnect(void **state)
{
	const char *url = getenv("EGOV_TEST_PG_URL");
	char msg[256];
	db *d = NULL;
	db_conn *c = NULL, *killer = NULL;
	int64_t pid = 0, pid2 = 0;
	egov_err err;

	if (!url || !*url) {
		skip();
		return;
	}
	assert_int_equal(db_open(url, &d, msg, sizeof msg), EGOV_OK);
	assert_int_equal(db_conn_open(d, &c), EGOV_OK);
	assert_int_equal(db_conn_open(d, &killer), EGOV_OK);
	assert_int_equal(db_query_int(c, "SELECT pg_backend_pid()", NULL, 0, &pid, NULL), EGOV_OK);
	db_param p[] = {DBP_I(pid)};
	assert_int_equal(db_exec(killer, "SELECT pg_terminate_backend(CAST(? AS INTEGER))", p, 1, NULL), EGOV_OK);
	/* The first call finds the connection gone; the one after resets. */
	err = db_query_int(c, "SELECT pg_backend_pid()", NULL, 0, &pid2, NULL);
	if (err) {
		assert_true(strlen(db_conn_errmsg(c)) > 0);
		err = db_query_int(c, "SELECT pg_backend_pid()", NULL, 0, &pid2, NULL);
	}
	assert_int_equal(err, EGOV_OK);
	assert_true(pid2 != pid);
	db_close(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_helpers),
		cmocka_unit_test(test_conflict),
		cmocka_unit_test(test_transactions),
		cmocka_unit_test(test_nested_transactions),
		cmocka_unit_test(test_stmt_cache),
		cmocka_unit_test(test_blob_rows),
		cmocka_unit_test(test_migrations),
		cmocka_unit_test(test_migration_failure),
		cmocka_unit_test(test_thread_conns),
		cmocka_unit_test(test_batch),
		cmocka_unit_test(test_write_turns),
		cmocka_unit_test(test_durability),
		cmocka_unit_test(test_bad_urls),
		cmocka_unit_test(test_pg_closed_port),
		cmocka_unit_test(test_pg_reconnect),
	};
	return cmocka_run_group_tests_name("db", tests, NULL, NULL);
}
