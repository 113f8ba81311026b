/*
 * testutil.h: shared helpers for egov's cmocka unit tests.
 *
 * Storage tests run on every backend: SQLite always, PostgreSQL when
 * EGOV_TEST_PG_URL names a database (scripts/test.sh starts a throwaway
 * cluster and sets it). test_backends() returns the URLs to run on.
 */
#ifndef EGOV_TESTS_TESTUTIL_H
#define EGOV_TESTS_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A fresh temporary directory (caller frees the string). */
static inline char *test_tmpdir(void)
{
	char tmpl[] = "/tmp/egov-test-XXXXXX";
	char *d = mkdtemp(tmpl);
	return d ? strdup(d) : NULL;
}

/* Recursively removes a directory made by test_tmpdir(). */
static inline void test_rmrf(const char *dir)
{
	char cmd[512];
	if (!dir || strncmp(dir, "/tmp/egov-test-", 15) != 0)
		return;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

/* Fills urls[] with the database URLs to test on; returns how many.
 * The SQLite one lives in dir. PostgreSQL tests share one database, so each
 * test drops and recreates what it uses. */
static inline int test_backends(const char *dir, char urls[2][512])
{
	int n = 0;
	const char *pg = getenv("EGOV_TEST_PG_URL");
	snprintf(urls[n++], 512, "sqlite:%s/test.db", dir);
	if (pg && *pg)
		snprintf(urls[n++], 512, "%s", pg);
	return n;
}

/* Storage tests include core/db.h before this header to get
 * test_db_reset(): it empties a PostgreSQL test database (dropping every
 * table of the shared schema) and does nothing on SQLite, whose file is
 * fresh per test directory. Returns 0 on success. */
#ifdef EGOV_CORE_DB_H
static inline int test_db_reset(db_conn *c)
{
	if (db_conn_kind(c) != DB_POSTGRES)
		return 0;
	return db_exec_script(c, "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public") == EGOV_OK ? 0 : -1;
}
#endif

#endif
