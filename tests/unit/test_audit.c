/*
 * test_audit.c: the audit log on every backend: appends and their chain,
 * a fixed record and its known hash (the stored format cannot drift),
 * group commit under concurrent writers, two writers on one database,
 * appends inside a caller's transaction (committed, rolled back, beside
 * the writer) and without a writer (a CLI command), the verifier's verdict
 * on each kind of tampering (done with plain SQL, as an intruder with
 * database access would), input checks, reopening, the checkpoint hook and
 * a failed batch leaving nothing behind.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdbool.h>
#include <pthread.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "audit/audit.h"
#include "audit/audit_int.h"
#include "core/app.h"
#include "core/db.h"
#include "testutil.h"
#include "core/banned.h"

typedef struct env {
	char *dir;
	char urls[2][512];
	int n;
} env;

static int setup(void **state)
{
	env *e = calloc(1, sizeof *e);
	assert_non_null(e);
	e->dir = test_tmpdir();
	assert_non_null(e->dir);
	e->n = test_backends(e->dir, e->urls);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	env *e = *state;
	test_rmrf(e->dir);
	free(e->dir);
	free(e);
	return 0;
}

/* Opens url with an empty audit schema. PostgreSQL tests share one
 * database, so what an earlier test left is dropped first. */
static void open_fresh(const char *url, db **d, db_conn **c)
{
	char msg[256] = "";
	int applied = 0;

	assert_int_equal(db_open(url, d, msg, sizeof msg), EGOV_OK);
	assert_int_equal(db_conn_open(*d, c), EGOV_OK);
	if (db_conn_kind(*c) == DB_POSTGRES)
		assert_int_equal(db_exec_script(*c, "DROP TABLE IF EXISTS audit_log CASCADE;"
						    "DROP FUNCTION IF EXISTS audit_poison() CASCADE"),
				 EGOV_OK);
	else
		assert_int_equal(db_exec_script(*c, "DROP TABLE IF EXISTS audit_log"), EGOV_OK);
	/* schema_migrations may not exist yet in a fresh database. */
	(void)db_exec(*c, "DELETE FROM schema_migrations WHERE module = 'audit'", NULL, 0, NULL);
	assert_int_equal(db_migrate(*c, "audit", audit_migrations, audit_migrations_count, &applied), EGOV_OK);
	assert_int_equal(applied, (int)audit_migrations_count);
}

/* The record hash computed independently of src/audit, from the format
 * documented in audit.h, so the format cannot drift unnoticed. */
static void put_field(unsigned char **p, const char *s)
{
	size_t n = strlen(s);
	int i;
	for (i = 7; i >= 0; i--)
		*(*p)++ = (unsigned char)((uint64_t)n >> (8 * i));
	memcpy(*p, s, n);
	*p += n;
}

static void ref_hash(const char *prev_hex, int64_t seq, const char *ts, const char *actor, const char *action,
		     const char *object, const char *details, char out[65])
{
	unsigned char *in, *p, md[32];
	unsigned int mdlen = 0;
	char seqs[32];
	int i;

	snprintf(seqs, sizeof seqs, "%lld", (long long)seq);
	in = malloc(32 + 6 * 8 + strlen(seqs) + strlen(ts) + strlen(actor) + strlen(action) + strlen(object) +
		     strlen(details));
	assert_non_null(in);
	p = in;
	for (i = 0; i < 32; i++) {
		unsigned int v = 0;
		assert_int_equal(sscanf(prev_hex + 2 * i, "%2x", &v), 1);
		*p++ = (unsigned char)v;
	}
	put_field(&p, seqs);
	put_field(&p, ts);
	put_field(&p, actor);
	put_field(&p, action);
	put_field(&p, object);
	put_field(&p, details);
	assert_int_equal(EVP_Digest(in, (size_t)(p - in), md, &mdlen, EVP_sha256(), NULL), 1);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	free(in);
}

static void append_n(int n, int64_t first_seq)
{
	char details[64];
	int64_t seq = 0;
	int i;

	for (i = 0; i < n; i++) {
		snprintf(details, sizeof details, "{\"i\":%d,\"note\":\"r\\u00e9sum\\u00e9\"}", i);
		assert_int_equal(audit_append("user:alice", "document.read", "edoc:42", details, &seq), EGOV_OK);
		assert_int_equal(seq, first_seq + i);
	}
}

static char *query_text(db_conn *c, const char *sql, int64_t seq)
{
	char *s = NULL;
	db_param p[1] = {DBP_I(seq)};
	assert_int_equal(db_query_text(c, sql, p, 1, &s), EGOV_OK);
	assert_non_null(s);
	return s;
}

/* ---- appends ------------------------------------------------------------ */

static void append_verify_on(const char *url)
{
	audit_verify_result res;
	db_rows *r = NULL;
	db_conn *c = NULL;
	bool has = false;
	char want[65], prev[65];
	char *head = NULL;
	int64_t seq = 0;
	db *d = NULL;
	int rows = 0;

	open_fresh(url, &d, &c);
	assert_int_equal(audit_open(d), EGOV_OK);
	assert_int_equal(audit_length(), 0);
	assert_int_equal(audit_append("user:alice", "login", "session:1", NULL, &seq), EGOV_OK);
	assert_int_equal(seq, 1);
	assert_int_equal(audit_append("user:bob", "document.sign", "edoc:7", "{\"ok\":true,\"n\":[1,2]}", &seq),
			 EGOV_OK);
	assert_int_equal(seq, 2);
	append_n(3, 3);
	assert_int_equal(audit_length(), 5);

	/* Every stored hash is what the documented format gives. */
	memset(prev, '0', 64);
	prev[64] = '\0';
	assert_int_equal(db_query(c, "SELECT seq, ts, actor, action, object, details, prev_hash, hash"
				     " FROM audit_log ORDER BY seq",
				  NULL, 0, &r),
			 EGOV_OK);
	for (;;) {
		const char *ts;
		assert_int_equal(db_rows_next(r, &has), EGOV_OK);
		if (!has)
			break;
		rows++;
		assert_int_equal(db_rows_int(r, 0), rows);
		ts = db_rows_text(r, 1);
		/* RFC 3339 UTC with microseconds: 2026-01-02T03:04:05.123456Z */
		assert_int_equal(strlen(ts), 27);
		assert_int_equal(ts[10], 'T');
		assert_int_equal(ts[19], '.');
		assert_int_equal(ts[26], 'Z');
		assert_string_equal(db_rows_text(r, 6), prev);
		ref_hash(prev, rows, ts, db_rows_text(r, 2), db_rows_text(r, 3), db_rows_text(r, 4),
			 db_rows_text(r, 5), want);
		assert_string_equal(db_rows_text(r, 7), want);
		memcpy(prev, want, sizeof prev);
	}
	db_rows_free(r);
	assert_int_equal(rows, 5);
	head = query_text(c, "SELECT details FROM audit_log WHERE seq = ?", 1);
	assert_string_equal(head, "{}");
	free(head);

	assert_int_equal(audit_verify(c, &res), EGOV_OK);
	assert_int_equal(res.fault, AUDIT_FAULT_NONE);
	assert_int_equal(res.first_bad, 0);
	assert_int_equal(res.records, 5);
	head = query_text(c, "SELECT hash FROM audit_log WHERE seq = ?", 5);
	assert_string_equal(res.head, head);
	free(head);

	audit_close();
	db_conn_close(c);
	db_close(d);
}

static void test_append_verify(void **state)
{
	env *e = *state;
	for (int i = 0; i < e->n; i++)
		append_verify_on(e->urls[i]);
}

static void verify_empty_on(const char *url)
{
	audit_verify_result res;
	db_conn *c = NULL;
	db *d = NULL;

	open_fresh(url, &d, &c);
	assert_int_equal(audit_verify(c, &res), EGOV_OK);
	assert_int_equal(res.fault, AUDIT_FAULT_NONE);
	assert_int_equal(res.records, 0);
	assert_string_equal(res.head, "0000000000000000000000000000000000000000000000000000000000000000");
	db_conn_close(c);
	db_close(d);
}

static void test_verify_empty(void **state)
{
	env *e = *state;
	for (int i = 0; i < e->n; i++)
		verify_empty_on(e->urls[i]);
}

/* ---- concurrency ---------------------------------------------------------- */

#define THREADS 8
#define PER_THREAD 500

typedef struct worker {
	chainlog *other; /* a second writer on the same database, or NULL: the module's log */
	int id;
	int failures;
	int64_t seqs[PER_THREAD];
} worker;

static void *worker_main(void *arg)
{
	worker *w = arg;
	char details[64], actor[32];
	db_param v[AUDIT_NCOLS];
	egov_err err;
	int i;

	snprintf(actor, sizeof actor, "worker:%d", w->id);
	for (i = 0; i < PER_THREAD; i++) {
		snprintf(details, sizeof details, "{\"worker\":%d,\"i\":%d}", w->id, i);
		if (!w->other)
			err = audit_append(actor, "test.append", "obj:x", details, &w->seqs[i]);
		else if (!(err = audit_values(actor, "test.append", "obj:x", details, v)))
			err = chainlog_append(w->other, v, &w->seqs[i]);
		if (err != EGOV_OK)
			w->failures++;
	}
	return NULL;
}

/* Runs THREADS appenders, every other one on other if it is given. */
static void run_workers(chainlog *other)
{
	static worker w[THREADS];
	pthread_t t[THREADS];
	bool seen[THREADS * PER_THREAD + 1];
	int i, j;

	memset(seen, 0, sizeof seen);
	for (i = 0; i < THREADS; i++) {
		w[i] = (worker){.other = i % 2 ? other : NULL, .id = i};
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (i = 0; i < THREADS; i++) {
		assert_int_equal(w[i].failures, 0);
		for (j = 0; j < PER_THREAD; j++) {
			int64_t s = w[i].seqs[j];
			assert_true(s >= 1 && s <= THREADS * PER_THREAD);
			assert_false(seen[s]);
			seen[s] = true;
			/* One caller's records keep its order. */
			if (j)
				assert_true(s > w[i].seqs[j - 1]);
		}
	}
}

static void check_full_chain(db_conn *c, int64_t n)
{
	audit_verify_result res;
	int64_t v = 0;
	bool found = false;

	assert_int_equal(db_query_int(c, "SELECT COUNT(*) FROM audit_log", NULL, 0, &v, &found), EGOV_OK);
	assert_int_equal(v, n);
	assert_int_equal(db_query_int(c, "SELECT MIN(seq) FROM audit_log", NULL, 0, &v, &found), EGOV_OK);
	assert_int_equal(v, 1);
	assert_int_equal(db_query_int(c, "SELECT MAX(seq) FROM audit_log", NULL, 0, &v, &found), EGOV_OK);
	assert_int_equal(v, n);
	assert_int_equal(audit_verify(c, &res), EGOV_OK);
	assert_int_equal(res.fault, AUDIT_FAULT_NONE);
	assert_int_equal(res.records, n);
}

static void concurrent_on(const char *url)
{
	db_conn *c = NULL;
	db *d = NULL;

	open_fresh(url, &d, &c);
	assert_int_equal(audit_open(d), EGOV_OK);
	run_workers(NULL);
	assert_int_equal(audit_length(), THREADS * PER_THREAD);
	audit_close();
	check_full_chain(c, THREADS * PER_THREAD);
	db_conn_close(c);
	db_close(d);
}

static void test_concurrent(void **state)
{
	env *e = *state;
	for (int i = 0; i < e->n; i++)
		concurrent_on(e->urls[i]);
}

/* Two writers on one database (as two nodes sharing PostgreSQL, or two
 * processes on one SQLite file) must extend a single chain. */
static void two_writers_on(const char *url)
{
	chainlog *other = NULL;
	db_conn *c = NULL;
	db *d = NULL, *d2 = NULL;
	char msg[256];

	open_fresh(url, &d, &c);
	assert_int_equal(db_open(url, &d2, msg, sizeof msg), EGOV_OK);
	assert_int_equal(audit_open(d), EGOV_OK);
	assert_int_equal(chainlog_open(&audit_chain, d2, NULL, &other), EGOV_OK);
	run_workers(other);
	audit_close();
	chainlog_close(other);
	check_full_chain(c, THREADS * PER_THREAD);
	db_close(d2);
	db_conn_close(c);
	db_close(d);
}

static void test_two_writers(void **state)
{
	env *e = *state;
	for (int i = 0; i < e->n; i++)
		two_writers_on(e->urls[i]);
}

/* ---- a fixed record and its known hash ------------------------------------ */

/* Two records written as a database of an earlier version holds them,
 * with hashes computed once by hand from the format in audit.h (SHA-256
 * over the raw previous hash and each field as an 8-byte big-endian length
 * and its bytes). They must verify, and the log must go on from them. */
#define KNOWN_HASH_1 "79f39860e4665a78e42698760875718f675764ab9e86cd2ba6d34cd195934538"
#define KNOWN_HASH_2 "4f79bb22f79cc430adb27121cdc36190b82dd7ede7655c9d774a9989b1867d10"

static void known_hash_on(const char *url)
{
	static const char zero[] = "0000000000000000000000000000000000000000000000000000000000000000";
	db_param r1[8] = {DBP_I(1),	       DBP_S("2026-01-02T03:04:05.123456Z"),
			  DBP_S("user:alice"), DBP_S("login"),
			  DBP_S("session:1"),  DBP_S("{}"),
			  DBP_S(zero),	       DBP_S(KNOWN_HASH_1)};
	db_param r2[8] = {DBP_I(2),
			  DBP_S("2026-01-02T03:04:06.000001Z"),
			  DBP_S("system"),
			  DBP_S("identity.account_locked"),
			  DBP_S("account:0190f1e2"),
			  DBP_S("{\"ip\":\"127.0.0.1\"}"),
			  DBP_S(KNOWN_HASH_1),
			  DBP_S(KNOWN_HASH_2)};
	static const char ins[] = "INSERT INTO audit_log(seq, ts, actor, action, object, details, prev_hash, hash)"
				  " VALUES (?,?,?,?,?,?,?,?)";
	audit_verify_result res;
	char want[65], *prev = NULL;
	db_conn *c = NULL;
	int64_t seq = 0;
	db *d = NULL;

	/* The reference implementation agrees with the constants. */
	ref_hash(zero, 1, "2026-01-02T03:04:05.123456Z", "user:alice", "login", "session:1", "{}", want);
	assert_string_equal(want, KNOWN_HASH_1);
	open_fresh(url, &d, &c);
	assert_int_equal(db_exec(c, ins, r1, 8, NULL), EGOV_OK);
	assert_int_equal(db_exec(c, ins, r2, 8, NULL), EGOV_OK);
	assert_int_equal(audit_verify(c, &res), EGOV_OK);
	assert_int_equal(res.fault, AUDIT_FAULT_NONE);
	assert_int_equal(res.records, 2);
	assert_string_equal(res.head, KNOWN_HASH_2);

	assert_int_equal(audit_open(d), EGOV_OK);
	assert_int_equal(audit_length(), 2);
	assert_int_equal(audit_append("user:bob", "document.read", "edoc:1", NULL, &seq), EGOV_OK);
	assert_int_equal(seq, 3);
	audit_close();
	prev = query_text(c, "SELECT prev_hash FROM audit_log WHERE seq = ?", 3);
	assert_string_equal(prev, KNOWN_HASH_2);
	free(prev);
	check_full_chain(c, 3);
	db_conn_close(c);
	db_close(d);
}

static void test_known_hash(void **state)
{
	env *e = *state;
	for (int i = 0; i < e->n; i++)
		known_hash_on(e->urls[i]);
}

/* ---- inside the caller's transaction, and without a writer --------------------- */

static int64_t count_where(db_conn *c, const char *action)
{
	db_param p[1] = {DBP_S(action)};
	int64_t n = 0;
	bool found = false;

	assert_int_equal(db_query_int(c, "SELECT COUNT(*) FROM audit_log WHERE action = ?", p, 1, &n, &found), EGOV_OK);
	return n;
}

static void append_tx_on(const char *url)
{
	db_conn *c = NULL, *t = NULL;
	int64_t seq = 0;
	db *d = NULL;

	open_fresh(url, &d, &c);
	assert_int_equal(db_exec_script(c, "DROP TABLE IF EXISTS audit_test_thing"), EGOV_OK);
	assert_int_equal(db_exec_script(c, "CREATE TABLE audit_test_thing (id TEXT PRIMARY KEY)"), EGOV_OK);
	assert_int_equal(audit_open(d), EGOV_OK);
	append_n(2, 1);
	assert_int_equal(db_conn_open(d, &t), EGOV_OK);

	/* Committed with the change it records. */
	assert_int_equal(db_begin(t), EGOV_OK);
	assert_int_equal(db_exec(t, "INSERT INTO audit_test_thing(id) VALUES ('a')", NULL, 0, NULL), EGOV_OK);
	assert_int_equal(audit_append_tx(t, "user:alice", "thing.create", "thing:a", NULL, &seq), EGOV_OK);
	assert_int_equal(seq, 3);
	assert_int_equal(db_commit(t), EGOV_OK);
	assert_int_equal(count_where(c, "thing.create"), 1);

	/* Rolled back with it: the seq is used again and the chain stays
	 * whole. */
	assert_int_equal(db_begin(t), EGOV_OK);
	assert_int_equal(db_exec(t, "INSERT INTO audit_test_thing(id) VALUES ('b')", NULL, 0, NULL), EGOV_OK);
	assert_int_equal(audit_append_tx(t, "user:alice", "thing.create", "thing:b", NULL, &seq), EGOV_OK);
	assert_int_equal(seq, 4);
	assert_int_equal(db_rollback(t), EGOV_OK);
	assert_int_equal(count_where(c, "thing.create"), 1);

	/* A SAVEPOINT rolled back inside a transaction that commits. */
	assert_int_equal(db_begin(t), EGOV_OK);
	assert_int_equal(db_exec(t, "SAVEPOINT s", NULL, 0, NULL), EGOV_OK);
	assert_int_equal(audit_append_tx(t, "user:alice", "thing.try", "thing:c", NULL, &seq), EGOV_OK);
	assert_int_equal(db_exec(t, "ROLLBACK TO SAVEPOINT s", NULL, 0, NULL), EGOV_OK);
	assert_int_equal(audit_append_tx(t, "user:alice", "thing.create", "thing:d", NULL, &seq), EGOV_OK);
	assert_int_equal(seq, 4);
	assert_int_equal(db_commit(t), EGOV_OK);
	assert_int_equal(count_where(c, "thing.try"), 0);

	/* Bad input is refused before anything is written. */
	assert_int_equal(db_begin(t), EGOV_OK);
	assert_int_equal(audit_append_tx(t, "user:a\nforged", "login", "session:1", NULL, &seq), EGOV_EINVAL);
	assert_int_equal(seq, 0);
	assert_int_equal(db_rollback(t), EGOV_OK);

	/* The writer goes on after them. */
	append_n(2, 5);
	audit_close();
	db_conn_close(t);
	check_full_chain(c, 6);
	assert_int_equal(db_exec_script(c, "DROP TABLE audit_test_thing"), EGOV_OK);
	db_conn_close(c);
	db_close(d);
}

static void test_append_tx(void **state)
{
	env *e = *state;
	for (int i = 0; i < e->n; i++)
		append_tx_on(e->urls[i]);
}

/* A command run from the CLI starts no writer: audit_append() appends in
 * its own transaction on the node's database. */
static void no_writer_on(const char *url)
{
	db_conn *c = NULL;
	int64_t seq = 0;
	db *d = NULL;

	open_fresh(url, &d, &c);
	assert_false(audit_available());
	assert_int_equal(audit_append("operator:cli", "identity.user_add", "account:1", NULL, &seq), EGOV_EUNAVAILABLE);
	app()->db = d;
	assert_true(audit_available());
	append_n(3, 1);
	assert_int_equal(audit_length(), 0); /* no writer to count */
	app()->db = NULL;
	check_full_chain(c, 3);
	db_conn_close(c);
	db_close(d);
}

static void test_no_writer(void **state)
{
	env *e = *state;
	for (int i = 0; i < e->n; i++)
		no_writer_on(e->urls[i]);
}

/* ---- tampering ---------------------------------------------------------------- */

#define CHAIN 10

typedef void (*tamper_fn)(db_conn *c);

static void exec_ok(db_conn *c, const char *sql, const db_param *p, int n)
{
	int64_t changes = 0;
	egov_err err = db_exec(c, sql, p, n, &changes);
	if (err)
		fail_msg("%s: %s", sql, db_conn_errmsg(c));
	assert_true(changes >= 1);
}

/* Shifts rows seq >= from up by one, leaving a hole at from. Through
 * negatives, as a plain seq = seq + 1 can trip the key mid-statement. */
static void open_hole(db_conn *c, int64_t from)
{
	db_param p[1] = {DBP_I(from)};
	exec_ok(c, "UPDATE audit_log SET seq = -seq WHERE seq >= ?", p, 1);
	exec_ok(c, "UPDATE audit_log SET seq = 1 - seq WHERE seq < 0", NULL, 0);
}

static void insert_row(db_conn *c, int64_t seq, const char *ts, const char *prev, const char *hash)
{
	db_param p[8] = {DBP_I(seq),	       DBP_S(ts), DBP_S("user:mallory"), DBP_S("document.sign"),
			 DBP_S("edoc:42"), DBP_S("{}"), DBP_S(prev),	 DBP_S(hash)};
	exec_ok(c,
		"INSERT INTO audit_log(seq, ts, actor, action, object, details, prev_hash, hash)"
		" VALUES (?,?,?,?,?,?,?,?)",
		p, 8);
}

static void t_change_actor(db_conn *c)
{
	exec_ok(c, "UPDATE audit_log SET actor = 'user:mallory' WHERE seq = 4", NULL, 0);
}

static void t_change_details(db_conn *c)
{
	exec_ok(c, "UPDATE audit_log SET details = '{\"i\":99}' WHERE seq = 7", NULL, 0);
}

static void t_change_ts(db_conn *c)
{
	exec_ok(c, "UPDATE audit_log SET ts = '2000-01-01T00:00:00.000000Z' WHERE seq = 1", NULL, 0);
}

static void t_change_last(db_conn *c)
{
	exec_ok(c, "UPDATE audit_log SET object = 'edoc:43' WHERE seq = 10", NULL, 0);
}

static void t_recase_hash(db_conn *c)
{
	exec_ok(c, "UPDATE audit_log SET hash = UPPER(hash) WHERE seq = 6", NULL, 0);
}

/* An intruder who knows the algorithm rewrites record 4 and its hash; the
 * chain breaks at record 5, whose prev_hash still names the original. */
static void t_change_rehash(db_conn *c)
{
	char *ts = query_text(c, "SELECT ts FROM audit_log WHERE seq = ?", 4);
	char *prev = query_text(c, "SELECT prev_hash FROM audit_log WHERE seq = ?", 4);
	char *det = query_text(c, "SELECT details FROM audit_log WHERE seq = ?", 4);
	char h[65];
	db_param p[1] = {DBP_S(h)};

	ref_hash(prev, 4, ts, "user:mallory", "document.read", "edoc:42", det, h);
	exec_ok(c, "UPDATE audit_log SET actor = 'user:mallory', hash = ? WHERE seq = 4", p, 1);
	free(ts);
	free(prev);
	free(det);
}

static void t_delete_middle(db_conn *c)
{
	exec_ok(c, "DELETE FROM audit_log WHERE seq = 5", NULL, 0);
}

static void t_delete_first(db_conn *c)
{
	exec_ok(c, "DELETE FROM audit_log WHERE seq = 1", NULL, 0);
}

static void t_delete_renumber(db_conn *c)
{
	exec_ok(c, "DELETE FROM audit_log WHERE seq IN (5, 6)", NULL, 0);
	exec_ok(c, "UPDATE audit_log SET seq = -seq WHERE seq > 6", NULL, 0);
	exec_ok(c, "UPDATE audit_log SET seq = -seq - 2 WHERE seq < 0", NULL, 0);
}

/* A forged record 4 that links to 3 with a correct hash; the rest renumbered. */
static void t_insert_valid(db_conn *c)
{
	char *prev = query_text(c, "SELECT hash FROM audit_log WHERE seq = ?", 3);
	const char *ts = "2026-01-01T00:00:00.000000Z";
	char h[65];

	open_hole(c, 4);
	ref_hash(prev, 4, ts, "user:mallory", "document.sign", "edoc:42", "{}", h);
	insert_row(c, 4, ts, prev, h);
	free(prev);
}

/* A forged record 4 that links to 3 but carries a made-up hash. */
static void t_insert_fresh_hash(db_conn *c)
{
	char *prev = query_text(c, "SELECT hash FROM audit_log WHERE seq = ?", 3);

	open_hole(c, 4);
	insert_row(c, 4, "2026-01-01T00:00:00.000000Z", prev,
		   "5f0c6e2b9a1d4c3e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49382716f5e4d3c2b1a0");
	free(prev);
}

/* A forged record 4 with a made-up prev_hash and a hash correct over it. */
static void t_insert_unlinked(db_conn *c)
{
	const char *prev = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	const char *ts = "2026-01-01T00:00:00.000000Z";
	char h[65];

	open_hole(c, 4);
	ref_hash(prev, 4, ts, "user:mallory", "document.sign", "edoc:42", "{}", h);
	insert_row(c, 4, ts, prev, h);
}

/* A copy of record 6 slipped in after it as record 7. */
static void t_insert_duplicate(db_conn *c)
{
	open_hole(c, 7);
	exec_ok(c,
		"INSERT INTO audit_log(seq, ts, actor, action, object, details, prev_hash, hash)"
		" SELECT 7, ts, actor, action, object, details, prev_hash, hash FROM audit_log WHERE seq = 6",
		NULL, 0);
}

/* A record numbered 0, before the first. */
static void t_insert_before_first(db_conn *c)
{
	insert_row(c, 0, "2026-01-01T00:00:00.000000Z",
		   "0000000000000000000000000000000000000000000000000000000000000000",
		   "5f0c6e2b9a1d4c3e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49382716f5e4d3c2b1a0");
}

/* Swaps every column but seq between records i and j. */
static void swap_rows(db_conn *c, int64_t i, int64_t j)
{
	static const char *cols[] = {"ts", "actor", "action", "object", "details", "prev_hash", "hash"};
	char *vi[7], *vj[7], sql[128];
	int k;

	for (k = 0; k < 7; k++) {
		snprintf(sql, sizeof sql, "SELECT %s FROM audit_log WHERE seq = ?", cols[k]);
		vi[k] = query_text(c, sql, i);
		vj[k] = query_text(c, sql, j);
	}
	for (k = 0; k < 7; k++) {
		db_param p[2];
		snprintf(sql, sizeof sql, "UPDATE audit_log SET %s = ? WHERE seq = ?", cols[k]);
		p[0] = DBP_S(vj[k]);
		p[1] = DBP_I(i);
		exec_ok(c, sql, p, 2);
		p[0] = DBP_S(vi[k]);
		p[1] = DBP_I(j);
		exec_ok(c, sql, p, 2);
		free(vi[k]);
		free(vj[k]);
	}
}

static void t_swap_far(db_conn *c)
{
	swap_rows(c, 3, 7);
}

static void t_swap_adjacent(db_conn *c)
{
	swap_rows(c, 5, 6);
}

static void t_swap_first(db_conn *c)
{
	swap_rows(c, 1, 2);
}

static void t_nothing(db_conn *c)
{
	(void)c;
}

static const struct tamper_case {
	const char *name;
	tamper_fn fn;
	audit_fault fault;
	int64_t first_bad;
} tamper_cases[] = {
	{"untouched", t_nothing, AUDIT_FAULT_NONE, 0},
	{"change actor", t_change_actor, AUDIT_FAULT_CHANGED, 4},
	{"change details", t_change_details, AUDIT_FAULT_CHANGED, 7},
	{"change ts of the first", t_change_ts, AUDIT_FAULT_CHANGED, 1},
	{"change the last", t_change_last, AUDIT_FAULT_CHANGED, 10},
	{"re-case a hash", t_recase_hash, AUDIT_FAULT_CHANGED, 6},
	{"change and rehash", t_change_rehash, AUDIT_FAULT_CHANGED, 4},
	{"delete middle", t_delete_middle, AUDIT_FAULT_DELETED, 5},
	{"delete first", t_delete_first, AUDIT_FAULT_DELETED, 1},
	{"delete and renumber", t_delete_renumber, AUDIT_FAULT_DELETED, 5},
	{"insert valid-hash forgery, renumbered", t_insert_valid, AUDIT_FAULT_INSERTED, 4},
	{"insert fresh-hash forgery, renumbered", t_insert_fresh_hash, AUDIT_FAULT_INSERTED, 4},
	{"insert unlinked forgery, renumbered", t_insert_unlinked, AUDIT_FAULT_INSERTED, 4},
	{"insert duplicate", t_insert_duplicate, AUDIT_FAULT_INSERTED, 7},
	{"insert before the first", t_insert_before_first, AUDIT_FAULT_INSERTED, 0},
	{"swap 3 and 7", t_swap_far, AUDIT_FAULT_REORDERED, 3},
	{"swap 5 and 6", t_swap_adjacent, AUDIT_FAULT_REORDERED, 5},
	{"swap 1 and 2", t_swap_first, AUDIT_FAULT_REORDERED, 1},
};

static void tamper_on(const char *url)
{
	size_t k;

	for (k = 0; k < sizeof tamper_cases / sizeof tamper_cases[0]; k++) {
		const struct tamper_case *tc = &tamper_cases[k];
		audit_verify_result res;
		db_conn *c = NULL;
		db *d = NULL;

		open_fresh(url, &d, &c);
		assert_int_equal(audit_open(d), EGOV_OK);
		append_n(CHAIN, 1);
		audit_close();
		tc->fn(c);
		assert_int_equal(audit_verify(c, &res), EGOV_OK);
		if (res.fault != tc->fault || res.first_bad != tc->first_bad)
			fail_msg("%s on %s: got %s at %lld, want %s at %lld", tc->name, db_conn_kind(c) == DB_SQLITE ? "sqlite" : "postgres",
				 audit_fault_name(res.fault), (long long)res.first_bad, audit_fault_name(tc->fault),
				 (long long)tc->first_bad);
		/* The records before the first bad one were counted as intact. */
		if (tc->fault != AUDIT_FAULT_NONE && tc->first_bad > 0)
			assert_true(res.records <= tc->first_bad);
		db_conn_close(c);
		db_close(d);
	}
}

static void test_tamper(void **state)
{
	env *e = *state;
	for (int i = 0; i < e->n; i++)
		tamper_on(e->urls[i]);
}

/* ---- input, lifecycle, hook, failure ------------------------------------------- */

static void bad_input_on(const char *url)
{
	static const char *bad_details[] = {"[1]", "\"x\"", "42", "null", "{bad", "{} x", "", "{\"a\":1}}"};
	char long_actor[AUDIT_FIELD_MAX + 2];
	db_conn *c = NULL;
	int64_t seq = -1;
	db *d = NULL;
	size_t k;

	open_fresh(url, &d, &c);
	assert_int_equal(audit_open(d), EGOV_OK);
	assert_int_equal(audit_append("", "login", "session:1", NULL, &seq), EGOV_EINVAL);
	assert_int_equal(seq, 0);
	assert_int_equal(audit_append(NULL, "login", "session:1", NULL, NULL), EGOV_EINVAL);
	assert_int_equal(audit_append("user:a", "", "session:1", NULL, NULL), EGOV_EINVAL);
	assert_int_equal(audit_append("user:a", "login", NULL, NULL, NULL), EGOV_EINVAL);
	assert_int_equal(audit_append("user:a\nforged", "login", "session:1", NULL, NULL), EGOV_EINVAL);
	/* Invalid UTF-8: a lone continuation byte, an overlong '/', a surrogate. */
	assert_int_equal(audit_append("user:\x80", "login", "session:1", NULL, NULL), EGOV_EINVAL);
	assert_int_equal(audit_append("user:a", "\xc0\xaf", "session:1", NULL, NULL), EGOV_EINVAL);
	assert_int_equal(audit_append("user:a", "login", "\xed\xa0\x80", NULL, NULL), EGOV_EINVAL);
	assert_int_equal(audit_append("user:a", "login", "session:1", "{\"a\":\"\xff\"}", NULL), EGOV_EINVAL);
	memset(long_actor, 'x', sizeof long_actor - 1);
	long_actor[sizeof long_actor - 1] = '\0';
	assert_int_equal(audit_append(long_actor, "login", "session:1", NULL, NULL), EGOV_EINVAL);
	long_actor[AUDIT_FIELD_MAX] = '\0';
	assert_int_equal(audit_append(long_actor, "login", "session:1", NULL, NULL), EGOV_OK);
	for (k = 0; k < sizeof bad_details / sizeof bad_details[0]; k++) {
		if (audit_append("user:a", "login", "session:1", bad_details[k], NULL) != EGOV_EINVAL)
			fail_msg("details %s accepted", bad_details[k]);
	}
	assert_int_equal(audit_append("user:a", "login", "session:1", " {\"a\":{\"b\":[]}} ", &seq), EGOV_OK);
	assert_int_equal(seq, 2);
	/* Non-ASCII text is fine: 陳大文, São Paulo. */
	assert_int_equal(audit_append("user:\xe9\x99\xb3\xe5\xa4\xa7\xe6\x96\x87", "login", "session:1",
				      "{\"city\":\"S\xc3\xa3o Paulo\"}", &seq),
			 EGOV_OK);
	assert_int_equal(seq, 3);
	assert_int_equal(audit_length(), 3);
	audit_close();
	check_full_chain(c, 3);
	db_conn_close(c);
	db_close(d);
}

static void test_bad_input(void **state)
{
	env *e = *state;
	for (int i = 0; i < e->n; i++)
		bad_input_on(e->urls[i]);
}

static void reopen_on(const char *url)
{
	db_conn *c = NULL;
	db *d = NULL;

	open_fresh(url, &d, &c);
	assert_int_equal(audit_open(d), EGOV_OK);
	append_n(3, 1);
	audit_close();
	assert_int_equal(audit_open(d), EGOV_OK);
	assert_int_equal(audit_length(), 3);
	append_n(4, 4);
	audit_close();
	check_full_chain(c, 7);
	db_conn_close(c);
	db_close(d);
}

static void test_reopen(void **state)
{
	env *e = *state;
	for (int i = 0; i < e->n; i++)
		reopen_on(e->urls[i]);
}

typedef struct cp_seen {
	int calls;
	int64_t seq[8];
	char hash[8][65];
} cp_seen;

static void on_checkpoint(void *ctx, int64_t seq, const char *hash_hex)
{
	cp_seen *s = ctx;
	if (s->calls < 8) {
		s->seq[s->calls] = seq;
		snprintf(s->hash[s->calls], 65, "%s", hash_hex);
	}
	s->calls++;
}

static void checkpoint_on(const char *url)
{
	cp_seen seen = {0};
	db_conn *c = NULL;
	db *d = NULL;
	int k;

	open_fresh(url, &d, &c);
	assert_int_equal(audit_open(d), EGOV_OK);
	audit_set_checkpoint(10, on_checkpoint, &seen);
	append_n(25, 1);
	audit_close();
	/* The hook is the module's setting: the next test runs without it. */
	audit_set_checkpoint(0, NULL, NULL);
	assert_int_equal(seen.calls, 2);
	for (k = 0; k < 2; k++) {
		char *h = query_text(c, "SELECT hash FROM audit_log WHERE seq = ?", seen.seq[k]);
		assert_int_equal(seen.seq[k], 10 * (k + 1));
		assert_string_equal(seen.hash[k], h);
		free(h);
	}
	db_conn_close(c);
	db_close(d);
}

static void test_checkpoint(void **state)
{
	env *e = *state;
	for (int i = 0; i < e->n; i++)
		checkpoint_on(e->urls[i]);
}

/* A batch the database refuses leaves nothing behind, and the chain goes
 * on from the last committed record. */
static void failed_batch_on(const char *url)
{
	db_conn *c = NULL;
	int64_t seq = 0;
	db *d = NULL;

	open_fresh(url, &d, &c);
	if (db_conn_kind(c) == DB_SQLITE)
		assert_int_equal(db_exec_script(c, "CREATE TRIGGER audit_poison BEFORE INSERT ON audit_log"
						   " WHEN NEW.actor = 'poison' BEGIN SELECT RAISE(ABORT, 'poison'); END"),
				 EGOV_OK);
	else
		assert_int_equal(db_exec_script(c, "CREATE FUNCTION audit_poison() RETURNS trigger LANGUAGE plpgsql AS"
						   " $$BEGIN IF NEW.actor = 'poison' THEN RAISE EXCEPTION 'poison'; END IF;"
						   " RETURN NEW; END$$;"
						   "CREATE TRIGGER audit_poison BEFORE INSERT ON audit_log"
						   " FOR EACH ROW EXECUTE FUNCTION audit_poison()"),
				 EGOV_OK);
	assert_int_equal(audit_open(d), EGOV_OK);
	append_n(2, 1);
	assert_int_equal(audit_append("poison", "login", "session:1", NULL, &seq), EGOV_EDB);
	assert_int_equal(seq, 0);
	assert_int_equal(audit_length(), 2);
	append_n(2, 3);
	audit_close();
	check_full_chain(c, 4);
	db_conn_close(c);
	db_close(d);
}

static void test_failed_batch(void **state)
{
	env *e = *state;
	for (int i = 0; i < e->n; i++)
		failed_batch_on(e->urls[i]);
}

static void test_fault_names(void **state)
{
	(void)state;
	assert_string_equal(audit_fault_name(AUDIT_FAULT_NONE), "none");
	assert_string_equal(audit_fault_name(AUDIT_FAULT_CHANGED), "changed");
	assert_string_equal(audit_fault_name(AUDIT_FAULT_DELETED), "deleted");
	assert_string_equal(audit_fault_name(AUDIT_FAULT_INSERTED), "inserted");
	assert_string_equal(audit_fault_name(AUDIT_FAULT_REORDERED), "reordered");
	assert_string_equal(audit_fault_name((audit_fault)99), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_append_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_known_hash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_tx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_writers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tamper, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_batch, setup, teardown),
		cmocka_unit_test(test_fault_names),
	};
	return cmocka_run_group_tests_name("audit", tests, NULL, NULL);
}
