/*
 * test_chainlog.c: the chain-log engine (core/chainlog.h) with a
 * descriptor of the test's own, on every backend: the record hash against
 * an independent computation (integers as decimal, stored columns not
 * hashed), waiting and asynchronous appends, a replay failing alone in a
 * batch and inside a caller's transaction, side rows committed with the
 * records, appends inside callers' transactions (committed, rolled back)
 * and without a writer, writer threads of two "nodes" and in-transaction
 * appenders on several connections extending one chain at once, the
 * checkpoint hook (also after in-transaction appends), and the verifier:
 * its good() hook, a source of the test's own that starts mid-chain, and a
 * tampered record.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdbool.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "core/chainlog.h"
#include "core/db.h"
#include "testutil.h"
#include "core/banned.h"

/* ---- the test's log ------------------------------------------------------ */

/* chain_t(seq, at, who, n, note, body, prev, hash), UNIQUE (who, note). */
static const chainlog_col cols[] = {
	{"at", CHAINLOG_TIME},
	{"who", CHAINLOG_TEXT},
	{"n", CHAINLOG_INT},
	{"body", CHAINLOG_STORED},
	{"note", CHAINLOG_TEXT},
};
#define NCOLS 5

static void *side_take(void *user);
static egov_err side_insert(db_conn *c, void *side, void *user);
static void side_done(void *side, egov_err err, void *user);

static const chainlog_desc desc = {
	.table = "chain_t",
	.seq_col = "seq",
	.prev_col = "prev",
	.hash_col = "hash",
	.cols = cols,
	.ncols = NCOLS,
	.log_event = "test.chainlog",
	.what = "test log",
	.batch_max = 64,
	.insert_rows_max = 8,
	.verify_page = 7, /* small, so the walk crosses pages */
	.conflict_fails_one = true,
	.side_take = side_take,
	.side_insert = side_insert,
	.side_done = side_done,
};

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

static void open_fresh(const char *url, db **d, db_conn **c)
{
	char msg[256] = "";
	bool pg;

	assert_int_equal(db_open(url, d, msg, sizeof msg), EGOV_OK);
	assert_int_equal(db_conn_open(*d, c), EGOV_OK);
	pg = db_conn_kind(*c) == DB_POSTGRES;
	assert_int_equal(db_exec_script(*c, "DROP TABLE IF EXISTS chain_t; DROP TABLE IF EXISTS chain_side;"
					    "DROP TABLE IF EXISTS chain_thing"),
			 EGOV_OK);
	assert_int_equal(db_exec_script(*c, pg ? "CREATE TABLE chain_t (seq BIGINT PRIMARY KEY, at TEXT NOT NULL,"
						 " who TEXT NOT NULL, n BIGINT NOT NULL, note TEXT NOT NULL, body BYTEA,"
						 " prev TEXT NOT NULL, hash TEXT NOT NULL, UNIQUE (who, note))"
					       : "CREATE TABLE chain_t (seq INTEGER PRIMARY KEY, at TEXT NOT NULL,"
						 " who TEXT NOT NULL, n INTEGER NOT NULL, note TEXT NOT NULL, body BLOB,"
						 " prev TEXT NOT NULL, hash TEXT NOT NULL, UNIQUE (who, note))"),
			 EGOV_OK);
	assert_int_equal(db_exec_script(*c, "CREATE TABLE chain_side (name TEXT PRIMARY KEY);"
					    "CREATE TABLE chain_thing (id TEXT PRIMARY KEY)"),
			 EGOV_OK);
}

static void close_all(db *d, db_conn *c)
{
	assert_int_equal(db_exec_script(c, "DROP TABLE chain_t; DROP TABLE chain_side; DROP TABLE chain_thing"),
			 EGOV_OK);
	db_conn_close(c);
	db_close(d);
}

static void vals_of(db_param v[NCOLS], const char *who, int64_t n, const char *note, const void *body, size_t len)
{
	v[0] = DBP_NULLV;
	v[1] = DBP_S(who);
	v[2] = DBP_I(n);
	v[3] = body ? DBP_B(body, len) : DBP_NULLV;
	v[4] = DBP_S(note);
}

static int64_t count(db_conn *c, const char *sql)
{
	int64_t n = -1;
	bool found = false;

	assert_int_equal(db_query_int(c, sql, NULL, 0, &n, &found), EGOV_OK);
	return n;
}

static void verify_intact(db_conn *c, int64_t n)
{
	chainlog_verify_result r;

	assert_int_equal(chainlog_verify(&desc, c, NULL, &r), EGOV_OK);
	if (r.fault != CHAINLOG_FAULT_NONE)
		fail_msg("%s at %lld", chainlog_fault_name(r.fault), (long long)r.first_bad);
	assert_int_equal(r.records, n);
	assert_int_equal(r.last_seq, n);
	assert_int_equal(count(c, "SELECT COUNT(*) FROM chain_t"), n);
}

/* ---- side rows: names queued by the test, inserted with the records ------ */

typedef struct side_row {
	char name[32];
	struct side_row *next;
} side_row;

static pthread_mutex_t side_mu = PTHREAD_MUTEX_INITIALIZER;
static side_row *side_q;
static atomic_int side_done_calls;

static void *side_take(void *user)
{
	side_row *r;

	(void)user;
	pthread_mutex_lock(&side_mu);
	r = side_q;
	side_q = NULL;
	pthread_mutex_unlock(&side_mu);
	return r;
}

static egov_err side_insert(db_conn *c, void *side, void *user)
{
	side_row *r;
	egov_err err = EGOV_OK;

	(void)user;
	for (r = side; r && !err; r = r->next) {
		db_param p[] = {DBP_S(r->name)};
		err = db_exec(c, "INSERT INTO chain_side(name) VALUES (?)", p, 1, NULL);
	}
	return err;
}

static void side_done(void *side, egov_err err, void *user)
{
	side_row *r, *next;

	(void)err;
	(void)user;
	atomic_fetch_add(&side_done_calls, 1);
	for (r = side; r; r = next) {
		next = r->next;
		free(r);
	}
}

static void side_queue(const char *name)
{
	side_row *r = calloc(1, sizeof *r);

	assert_non_null(r);
	snprintf(r->name, sizeof r->name, "%s", name);
	pthread_mutex_lock(&side_mu);
	r->next = side_q;
	side_q = r;
	pthread_mutex_unlock(&side_mu);
}

/* ---- the hash ------------------------------------------------------------------ */

static void put_field(unsigned char **p, const char *s)
{
	size_t n = strlen(s);
	int i;

	for (i = 7; i >= 0; i--)
		*(*p)++ = (unsigned char)((uint64_t)n >> (8 * i));
	memcpy(*p, s, n);
	*p += n;
}

/* From the format in chainlog.h, independently of the engine: the body is
 * not hashed, n is decimal text. */
static void ref_hash(const char *prev_hex, int64_t seq, const char *at, const char *who, int64_t n, const char *note,
		     char out[65])
{
	unsigned char in[4096], *p = in, md[32];
	unsigned int mdlen = 0;
	char num[32];
	int i;

	for (i = 0; i < 32; i++) {
		unsigned int v = 0;
		assert_int_equal(sscanf(prev_hex + 2 * i, "%2x", &v), 1);
		*p++ = (unsigned char)v;
	}
	snprintf(num, sizeof num, "%lld", (long long)seq);
	put_field(&p, num);
	put_field(&p, at);
	put_field(&p, who);
	snprintf(num, sizeof num, "%lld", (long long)n);
	put_field(&p, num);
	put_field(&p, note);
	assert_int_equal(EVP_Digest(in, (size_t)(p - in), md, &mdlen, EVP_sha256(), NULL), 1);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void hash_on(const char *url)
{
	char prev[65], want[65];
	db_param v[NCOLS];
	chainlog *l = NULL;
	db_rows *r = NULL;
	db_conn *c = NULL;
	bool has = false;
	int64_t seq = 0;
	db *d = NULL;
	int rows = 0;

	open_fresh(url, &d, &c);
	assert_int_equal(chainlog_open(&desc, d, NULL, &l), EGOV_OK);
	vals_of(v, "alice", -42, "first", "\x00\x01", 2);
	assert_int_equal(chainlog_append(l, v, &seq), EGOV_OK);
	assert_int_equal(seq, 1);
	vals_of(v, "bob", 9007199254740993LL, "second: r\xc3\xa9sum\xc3\xa9", NULL, 0);
	assert_int_equal(chainlog_append(l, v, &seq), EGOV_OK);
	assert_int_equal(seq, 2);
	vals_of(v, "carol", 0, "", "", 0); /* an empty body is a body, not NULL */
	assert_int_equal(chainlog_append(l, v, &seq), EGOV_OK);
	assert_int_equal(seq, 3);
	/* Values of the wrong kind are refused before anything is queued. */
	v[2] = DBP_S("7");
	assert_int_equal(chainlog_append(l, v, &seq), EGOV_EINVAL);
	assert_int_equal(seq, 0);
	assert_int_equal(chainlog_length(l), 3);
	chainlog_close(l);

	memset(prev, '0', 64);
	prev[64] = '\0';
	assert_int_equal(db_query(c, "SELECT seq, at, who, n, note, prev, hash, body IS NULL FROM chain_t ORDER BY seq",
				  NULL, 0, &r),
			 EGOV_OK);
	for (;;) {
		assert_int_equal(db_rows_next(r, &has), EGOV_OK);
		if (!has)
			break;
		rows++;
		assert_int_equal(db_rows_int(r, 0), rows);
		assert_int_equal(strlen(db_rows_text(r, 1)), 27);
		assert_string_equal(db_rows_text(r, 5), prev);
		ref_hash(prev, rows, db_rows_text(r, 1), db_rows_text(r, 2), db_rows_int(r, 3), db_rows_text(r, 4), want);
		assert_string_equal(db_rows_text(r, 6), want);
		assert_int_equal(db_rows_int(r, 7), rows == 2);
		memcpy(prev, want, sizeof prev);
	}
	db_rows_free(r);
	assert_int_equal(rows, 3);
	verify_intact(c, 3);
	close_all(d, c);
}

static void test_hash(void **state)
{
	env *e = *state;
	for (int i = 0; i < e->n; i++)
		hash_on(e->urls[i]);
}

/* ---- asynchronous appends, replays, side rows ------------------------------------ */

typedef struct async_wait {
	sem_t sem;
	egov_err err;
	db *d;
	bool visible; /* the record could be read from another connection in done() */
	const char *who, *note;
} async_wait;

static void async_done(void *ctx, egov_err err)
{
	async_wait *w = ctx;
	db_conn *c = NULL;
	db_param p[] = {DBP_S(w->who), DBP_S(w->note)};
	int64_t one = 0;
	bool found = false;

	w->err = err;
	if (!err && db_conn_open(w->d, &c) == EGOV_OK) {
		w->visible = db_query_int(c, "SELECT 1 FROM chain_t WHERE who = ? AND note = ?", p, 2, &one, &found) ==
				     EGOV_OK &&
			     found;
		db_conn_close(c);
	}
	sem_post(&w->sem);
}

static void async_on(const char *url)
{
	async_wait w[6];
	db_param v[NCOLS];
	chainlog *l = NULL;
	db_conn *c = NULL;
	char note[6][16];
	int64_t seq = 0;
	db *d = NULL;
	int i;

	open_fresh(url, &d, &c);
	assert_int_equal(chainlog_open(&desc, d, NULL, &l), EGOV_OK);
	vals_of(v, "dave", 1, "n2", NULL, 0);
	assert_int_equal(chainlog_append(l, v, &seq), EGOV_OK);
	/* A side row queued before records commits with them. */
	side_queue("cert-1");
	for (i = 0; i < 6; i++) {
		char body[16];
		/* Record 2 replays the one appended above. */
		snprintf(note[i], sizeof note[i], "n%d", i);
		snprintf(body, sizeof body, "b%d", i);
		memset(&w[i], 0, sizeof w[i]);
		assert_int_equal(sem_init(&w[i].sem, 0, 0), 0);
		w[i].d = d;
		w[i].who = "dave";
		w[i].note = note[i];
		vals_of(v, "dave", i, note[i], body, strlen(body));
		/* The values are copied: the buffers change at once. */
		assert_int_equal(chainlog_append_async(l, v, async_done, &w[i]), EGOV_OK);
		memset(body, 'x', sizeof body - 1);
	}
	for (i = 0; i < 6; i++) {
		assert_int_equal(sem_wait(&w[i].sem), 0);
		sem_destroy(&w[i].sem);
		assert_int_equal(w[i].err, i == 2 ? EGOV_ECONFLICT : EGOV_OK);
		assert_true(w[i].visible == (i != 2));
	}
	/* A replay waiting for its commit fails alone too. */
	vals_of(v, "dave", 9, "n4", NULL, 0);
	assert_int_equal(chainlog_append(l, v, &seq), EGOV_ECONFLICT);
	assert_int_equal(seq, 0);
	/* A side row alone is stored once the writer is kicked. */
	side_queue("cert-2");
	chainlog_kick(l);
	chainlog_stop(l);
	{
		chainlog_stats st;
		chainlog_stats_get(l, &st);
		assert_int_equal(st.records, 6);
		assert_int_equal(st.conflicts, 2);
		assert_int_equal(st.failed, 0);
	}
	chainlog_close(l);
	assert_int_equal(count(c, "SELECT COUNT(*) FROM chain_side"), 2);
	assert_int_equal(count(c, "SELECT COUNT(*) FROM chain_t WHERE body IS NOT NULL"), 5);
	{
		db_param p[] = {DBP_S("n3")};
		db_rows *r = NULL;
		const void *b;
		size_t len = 0;
		bool has = false;

		assert_int_equal(db_query(c, "SELECT body FROM chain_t WHERE note = ?", p, 1, &r), EGOV_OK);
		assert_int_equal(db_rows_next(r, &has), EGOV_OK);
		assert_true(has);
		b = db_rows_blob(r, 0, &len);
		assert_int_equal(len, 2);
		assert_memory_equal(b, "b3", 2);
		db_rows_free(r);
	}
	verify_intact(c, 6);
	close_all(d, c);
}

static void test_async(void **state)
{
	env *e = *state;
	for (int i = 0; i < e->n; i++)
		async_on(e->urls[i]);
}

/* ---- inside a caller's transaction, and without a writer ---------------------------- */

static void tx_on(const char *url)
{
	db_param v[NCOLS];
	db_conn *c = NULL, *t = NULL;
	int64_t seq = 0;
	db *d = NULL;

	open_fresh(url, &d, &c);
	assert_int_equal(db_conn_open(d, &t), EGOV_OK);
	/* No writer anywhere: direct appends. */
	vals_of(v, "erin", 1, "direct", NULL, 0);
	assert_int_equal(chainlog_append_direct(&desc, d, v, &seq), EGOV_OK);
	assert_int_equal(seq, 1);

	/* Committed with the change it records. */
	assert_int_equal(db_begin(t), EGOV_OK);
	assert_int_equal(db_exec(t, "INSERT INTO chain_thing(id) VALUES ('a')", NULL, 0, NULL), EGOV_OK);
	vals_of(v, "erin", 2, "thing a", "a", 1);
	assert_int_equal(chainlog_append_tx(&desc, t, v, &seq), EGOV_OK);
	assert_int_equal(seq, 2);
	/* A replay inside the transaction leaves it usable. */
	vals_of(v, "erin", 3, "direct", NULL, 0);
	assert_int_equal(chainlog_append_tx(&desc, t, v, &seq), EGOV_ECONFLICT);
	assert_int_equal(seq, 0);
	vals_of(v, "erin", 4, "thing a again", NULL, 0);
	assert_int_equal(chainlog_append_tx(&desc, t, v, &seq), EGOV_OK);
	assert_int_equal(seq, 3);
	assert_int_equal(db_commit(t), EGOV_OK);

	/* Rolled back: nothing to restore, the next append takes seq 4. */
	assert_int_equal(db_begin(t), EGOV_OK);
	vals_of(v, "erin", 5, "rolled back", NULL, 0);
	assert_int_equal(chainlog_append_tx(&desc, t, v, &seq), EGOV_OK);
	assert_int_equal(seq, 4);
	assert_int_equal(db_rollback(t), EGOV_OK);
	vals_of(v, "erin", 6, "direct again", NULL, 0);
	assert_int_equal(chainlog_append_direct(&desc, d, v, &seq), EGOV_OK);
	assert_int_equal(seq, 4);
	assert_int_equal(count(c, "SELECT COUNT(*) FROM chain_thing"), 1);
	db_conn_close(t);
	verify_intact(c, 4);
	close_all(d, c);
}

static void test_tx(void **state)
{
	env *e = *state;
	for (int i = 0; i < e->n; i++)
		tx_on(e->urls[i]);
}

/* ---- many appenders of every kind on one chain ------------------------------------------ */

#define WRITERS 4
#define TXERS 3
#define PER 150

typedef struct appender {
	chainlog *l; /* a writer's log, or NULL: in-transaction on a connection of d */
	db *d;
	int id;
	int failures;
	int committed;
	int64_t last_seq;
	bool ordered;
} appender;

static void *appender_main(void *arg)
{
	appender *a = arg;
	db_param v[NCOLS];
	db_conn *c = NULL;
	char who[16], note[32], thing[32];
	int64_t seq = 0;
	egov_err err;
	int i;

	snprintf(who, sizeof who, "a%d", a->id);
	a->ordered = true;
	if (!a->l && db_conn_open(a->d, &c)) {
		a->failures = PER;
		return NULL;
	}
	for (i = 0; i < PER; i++) {
		snprintf(note, sizeof note, "%d", i);
		vals_of(v, who, i, note, NULL, 0);
		if (a->l) {
			err = chainlog_append(a->l, v, &seq);
		} else {
			/* Every fifth transaction rolls back with its record. */
			db_param p[] = {DBP_S(thing)};

			snprintf(thing, sizeof thing, "%s-%d", who, i);
			if (!(err = db_begin(c)) && !(err = db_exec(c, "INSERT INTO chain_thing(id) VALUES (?)", p, 1, NULL)))
				err = chainlog_append_tx(&desc, c, v, &seq);
			if (!err && i % 5 == 4) {
				db_rollback(c);
				continue;
			}
			if (!err)
				err = db_commit(c);
			if (err)
				db_rollback(c);
		}
		if (err) {
			a->failures++;
			continue;
		}
		if (seq <= a->last_seq)
			a->ordered = false;
		a->last_seq = seq;
		a->committed++;
	}
	if (c)
		db_conn_close(c);
	return NULL;
}

static void many_on(const char *url)
{
	static appender a[WRITERS + TXERS];
	pthread_t t[WRITERS + TXERS];
	chainlog *l1 = NULL, *l2 = NULL;
	db_conn *c = NULL;
	db *d = NULL, *d2 = NULL;
	char msg[256];
	int i, total = 0;

	open_fresh(url, &d, &c);
	/* A second handle is a second node: its own writer and connections. */
	assert_int_equal(db_open(url, &d2, msg, sizeof msg), EGOV_OK);
	assert_int_equal(chainlog_open(&desc, d, NULL, &l1), EGOV_OK);
	assert_int_equal(chainlog_open(&desc, d2, NULL, &l2), EGOV_OK);
	for (i = 0; i < WRITERS + TXERS; i++) {
		a[i] = (appender){.l = i < WRITERS ? (i % 2 ? l2 : l1) : NULL, .d = i % 2 ? d2 : d, .id = i};
		assert_int_equal(pthread_create(&t[i], NULL, appender_main, &a[i]), 0);
	}
	for (i = 0; i < WRITERS + TXERS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		if (a[i].failures)
			fail_msg("appender %d: %d failures", i, a[i].failures);
		assert_true(a[i].ordered);
		total += a[i].committed;
	}
	chainlog_close(l1);
	chainlog_close(l2);
	assert_int_equal(total, WRITERS * PER + TXERS * (PER - PER / 5));
	assert_int_equal(count(c, "SELECT COUNT(*) FROM chain_thing"), TXERS * (PER - PER / 5));
	verify_intact(c, total);
	db_close(d2);
	close_all(d, c);
}

static void test_many(void **state)
{
	env *e = *state;
	for (int i = 0; i < e->n; i++)
		many_on(e->urls[i]);
}

/* ---- checkpoints ------------------------------------------------------------------------- */

typedef struct cp_seen {
	pthread_mutex_t mu;
	int calls;
	int64_t seq[8];
} cp_seen;

static void on_checkpoint(void *ctx, int64_t seq, const char *hash_hex)
{
	cp_seen *s = ctx;

	(void)hash_hex;
	pthread_mutex_lock(&s->mu);
	if (s->calls < 8)
		s->seq[s->calls] = seq;
	s->calls++;
	pthread_mutex_unlock(&s->mu);
}

static int cp_calls(cp_seen *s)
{
	int n;

	pthread_mutex_lock(&s->mu);
	n = s->calls;
	pthread_mutex_unlock(&s->mu);
	return n;
}

static void checkpoint_on(const char *url)
{
	cp_seen seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
	db_param v[NCOLS];
	chainlog *l = NULL;
	db_conn *c = NULL, *t = NULL;
	char note[16];
	int64_t seq = 0;
	db *d = NULL;
	int i;

	open_fresh(url, &d, &c);
	assert_int_equal(chainlog_open(&desc, d, NULL, &l), EGOV_OK);
	chainlog_set_checkpoint(l, 4, on_checkpoint, &seen);
	for (i = 1; i <= 5; i++) {
		snprintf(note, sizeof note, "w%d", i);
		vals_of(v, "fay", i, note, NULL, 0);
		assert_int_equal(chainlog_append(l, v, &seq), EGOV_OK);
	}
	assert_int_equal(cp_calls(&seen), 1);
	assert_int_equal(seen.seq[0], 4);

	/* Records 6..8 in a caller's transaction: once it commits, the writer
	 * notices the crossing of 8 on its own. */
	assert_int_equal(db_conn_open(d, &t), EGOV_OK);
	assert_int_equal(db_begin(t), EGOV_OK);
	for (i = 6; i <= 8; i++) {
		snprintf(note, sizeof note, "t%d", i);
		vals_of(v, "fay", i, note, NULL, 0);
		assert_int_equal(chainlog_append_tx(&desc, t, v, &seq), EGOV_OK);
		chainlog_note_append(l, seq);
	}
	assert_int_equal(db_commit(t), EGOV_OK);
	db_conn_close(t);
	for (i = 0; i < 500 && cp_calls(&seen) < 2; i++)
		usleep(10000);
	assert_int_equal(cp_calls(&seen), 2);
	assert_int_equal(seen.seq[1], 8);
	assert_int_equal(chainlog_length(l), 8);
	chainlog_close(l);
	verify_intact(c, 8);
	close_all(d, c);
}

static void test_checkpoint(void **state)
{
	env *e = *state;
	for (int i = 0; i < e->n; i++)
		checkpoint_on(e->urls[i]);
}

/* ---- verifying ------------------------------------------------------------------------------ */

static egov_err count_good(void *ctx, const chainlog_row *r)
{
	int64_t *n = ctx;

	if (r->seq != *n + 1 || r->vals[2].type != DBP_INT || r->vals[2].i != r->seq * 10)
		return EGOV_EINTERNAL;
	(*n)++;
	return EGOV_OK;
}

/* A source of the test's own: rows copied out of the database, from 4 on. */
typedef struct mem_src {
	int64_t seq[32];
	char text[32][4][80];
	db_param vals[32][NCOLS];
	int n, next;
} mem_src;

static egov_err ms_next(void *s, chainlog_row *row, bool *has, char *why, size_t whylen)
{
	mem_src *m = s;

	(void)why;
	(void)whylen;
	*has = m->next < m->n;
	if (*has) {
		*row = (chainlog_row){.seq = m->seq[m->next],
				      .vals = m->vals[m->next],
				      .prev_hash = m->text[m->next][2],
				      .hash = m->text[m->next][3]};
		m->next++;
	}
	return EGOV_OK;
}

static void ms_pause(void *s)
{
	(void)s;
}

static egov_err ms_find(mem_src *m, const char *hex, int col, int64_t above, int64_t *seq, bool *found)
{
	int i;

	*found = false;
	for (i = 0; i < m->n && !*found; i++)
		if (strcmp(m->text[i][col], hex) == 0 && m->seq[i] > above) {
			*seq = m->seq[i];
			*found = true;
		}
	return EGOV_OK;
}

static egov_err ms_owner(void *s, const char *hex, int64_t *seq, bool *found)
{
	return ms_find(s, hex, 3, INT64_MIN, seq, found);
}

static egov_err ms_successor(void *s, const char *hex, int64_t above, int64_t *seq, bool *found)
{
	return ms_find(s, hex, 2, above, seq, found);
}

static const chainlog_source mem_source = {ms_next, ms_pause, ms_owner, ms_successor};

static void verify_on(const char *url)
{
	static mem_src m;
	chainlog_verify_opts o = {0};
	chainlog_verify_result r;
	unsigned char start_prev[32];
	db_param v[NCOLS];
	chainlog *l = NULL;
	db_rows *rows = NULL;
	db_conn *c = NULL;
	char note[16], *h3 = NULL;
	int64_t good = 0;
	bool has = false;
	db *d = NULL;
	int i;

	open_fresh(url, &d, &c);
	assert_int_equal(chainlog_open(&desc, d, NULL, &l), EGOV_OK);
	for (i = 1; i <= 20; i++) {
		snprintf(note, sizeof note, "v%d", i);
		vals_of(v, "gus", i * 10, note, "body", 4);
		assert_int_equal(chainlog_append(l, v, NULL), EGOV_OK);
	}
	chainlog_close(l);

	/* good() sees every record in order, across pages of 7. */
	o.good = count_good;
	o.ctx = &good;
	assert_int_equal(chainlog_verify(&desc, c, &o, &r), EGOV_OK);
	assert_int_equal(r.fault, CHAINLOG_FAULT_NONE);
	assert_int_equal(good, 20);

	/* A source that starts at record 4, after record 3's hash. */
	memset(&m, 0, sizeof m);
	assert_int_equal(db_query(c, "SELECT seq, at, who, n, note, prev, hash FROM chain_t WHERE seq >= 4 ORDER BY seq",
				  NULL, 0, &rows),
			 EGOV_OK);
	while (db_rows_next(rows, &has) == EGOV_OK && has) {
		int k = m.n++;
		m.seq[k] = db_rows_int(rows, 0);
		snprintf(m.text[k][0], 80, "%s", db_rows_text(rows, 1));
		snprintf(m.text[k][1], 80, "%s", db_rows_text(rows, 2));
		snprintf(m.text[k][2], 80, "%s", db_rows_text(rows, 5));
		snprintf(m.text[k][3], 80, "%s", db_rows_text(rows, 6));
		m.vals[k][0] = DBP_S(m.text[k][0]);
		m.vals[k][1] = DBP_S(m.text[k][1]);
		m.vals[k][2] = DBP_I(db_rows_int(rows, 3));
		m.vals[k][3] = DBP_NULLV;
		snprintf(note, sizeof note, "v%lld", (long long)m.seq[k]);
		m.vals[k][4] = DBP_S(strdup(note));
	}
	db_rows_free(rows);
	assert_int_equal(m.n, 17);
	{
		db_param p[] = {DBP_I(3)};
		assert_int_equal(db_query_text(c, "SELECT hash FROM chain_t WHERE seq = ?", p, 1, &h3), EGOV_OK);
	}
	assert_true(chainlog_hex_decode(h3, start_prev));
	o = (chainlog_verify_opts){.start_seq = 4, .start_prev = start_prev};
	assert_int_equal(chainlog_verify_source(&desc, &mem_source, &m, &o, &r), EGOV_OK);
	assert_int_equal(r.fault, CHAINLOG_FAULT_NONE);
	assert_int_equal(r.records, 17);
	assert_int_equal(r.last_seq, 20);
	/* Without the start it does not link: an insertion at 4. */
	m.next = 0;
	assert_int_equal(chainlog_verify_source(&desc, &mem_source, &m, NULL, &r), EGOV_OK);
	assert_int_equal(r.fault, CHAINLOG_FAULT_DELETED);
	assert_int_equal(r.first_bad, 1);
	/* A changed integer is a changed record; the body is not hashed. */
	m.next = 0;
	m.vals[5][2] = DBP_I(1);
	assert_int_equal(chainlog_verify_source(&desc, &mem_source, &m, &o, &r), EGOV_OK);
	assert_int_equal(r.fault, CHAINLOG_FAULT_CHANGED);
	assert_int_equal(r.first_bad, 9);
	assert_int_equal(r.records, 5);
	for (i = 0; i < m.n; i++)
		free((void *)(uintptr_t)m.vals[i][4].p);
	free(h3);

	assert_int_equal(db_exec_script(c, "UPDATE chain_t SET body = NULL WHERE seq = 5"), EGOV_OK);
	verify_intact(c, 20);
	assert_int_equal(db_exec_script(c, "UPDATE chain_t SET n = 0 WHERE seq = 12"), EGOV_OK);
	assert_int_equal(chainlog_verify(&desc, c, NULL, &r), EGOV_OK);
	assert_int_equal(r.fault, CHAINLOG_FAULT_CHANGED);
	assert_int_equal(r.first_bad, 12);
	assert_int_equal(r.records, 11);
	close_all(d, c);
}

static void test_verify(void **state)
{
	env *e = *state;
	for (int i = 0; i < e->n; i++)
		verify_on(e->urls[i]);
}

static void test_hex_and_names(void **state)
{
	unsigned char b[32];
	char hex[65];
	int i;

	(void)state;
	for (i = 0; i < 32; i++)
		b[i] = (unsigned char)(i * 8 + 1);
	chainlog_hex_encode(b, hex);
	assert_string_equal(hex, "0109111921293139414951596169717981899199a1a9b1b9c1c9d1d9e1e9f1f9");
	memset(b, 0, sizeof b);
	assert_true(chainlog_hex_decode(hex, b));
	assert_int_equal(b[31], 0xf9);
	hex[3] = 'A';
	assert_false(chainlog_hex_decode(hex, b));
	assert_false(chainlog_hex_decode("00", b));
	assert_false(chainlog_hex_decode(NULL, b));
	assert_string_equal(chainlog_fault_name(CHAINLOG_FAULT_NONE), "none");
	assert_string_equal(chainlog_fault_name(CHAINLOG_FAULT_REORDERED), "reordered");
	assert_string_equal(chainlog_fault_name((chainlog_fault)42), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify, setup, teardown),
		cmocka_unit_test(test_hex_and_names),
	};
	return cmocka_run_group_tests_name("chainlog", tests, NULL, NULL);
}
