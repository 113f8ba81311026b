/*
 * test_exchange_log.c: the gateway's message log on every backend:
 * appends with real ES256 signatures, group commit under concurrent
 * writers, a replay failing only its own record, the verifier's verdict on
 * each kind of tampering (done with plain SQL, as an intruder with database
 * access would, including one who recomputes the whole hash chain), RFC
 * 3161 sealing against the platform's real TSA served by an in-process
 * node on 127.0.0.1, the overdue flag, and archives verified with no
 * database, tampered ones refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdbool.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/config.h"
#include "core/crypto.h"
#include "core/db.h"
#include "core/module.h"
#include "core/router.h"
#include "core/server.h"
#include "exchange/keys/keys.h"
#include "exchange/log/exlog_int.h"
#include "exchange/wire/wire.h"
#include "pki/pki.h"
#include "testutil.h"
#include "core/banned.h"

/* ---- a signer: a real P-256 key and a self-signed certificate ----------- */

typedef struct signer {
	EVP_PKEY *key;
	char pem[4096];
	char sha[65];
} signer;

static signer sig_a, sig_b;

static void signer_make(signer *s, const char *cn)
{
	X509 *x = X509_new();
	X509_NAME *name;
	BIO *b = BIO_new(BIO_s_mem());
	unsigned char *der = NULL;
	char *p = NULL;
	long n;
	int dlen;

	s->key = EVP_EC_gen("P-256");
	assert_non_null(s->key);
	assert_non_null(x);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, s->key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	assert_true(X509_sign(x, s->key, EVP_sha256()) > 0);
	assert_int_equal(PEM_write_bio_X509(b, x), 1);
	n = BIO_get_mem_data(b, &p);
	assert_true(n > 0 && (size_t)n < sizeof s->pem);
	memcpy(s->pem, p, (size_t)n);
	s->pem[n] = '\0';
	dlen = i2d_X509(x, &der);
	assert_true(dlen > 0);
	crypto_sha256_hex(der, (size_t)dlen, s->sha);
	OPENSSL_free(der);
	BIO_free(b);
	X509_free(x);
}

/* A record with both signatures made over the canonical texts. */
typedef struct trec {
	exchange_log_rec rec;
	char mid[64], path[64], req_sig[128], resp_sig[128], req_sha[65], resp_sha[65];
	char req_body[64], resp_body[64];
} trec;

static void trec_make(trec *t, const char *side, const char *mid, int i, bool full)
{
	exchange_canon_req cq = {0};
	exchange_canon_resp cr = {0};
	buf canon;

	memset(t, 0, sizeof *t);
	snprintf(t->mid, sizeof t->mid, "%s", mid);
	snprintf(t->path, sizeof t->path, "/persons/%d?x=1", i);
	snprintf(t->req_body, sizeof t->req_body, "{\"q\":%d}", i);
	snprintf(t->resp_body, sizeof t->resp_body, "{\"name\":\"person %d\"}", i);
	crypto_sha256_hex(t->req_body, strlen(t->req_body), t->req_sha);
	crypto_sha256_hex(t->resp_body, strlen(t->resp_body), t->resp_sha);
	t->rec = (exchange_log_rec){.side = side,
				    .message_id = t->mid,
				    .client = "MO/GOV/DSB/APP",
				    .service = "MO/GOV/DSAJ/REG/persons",
				    .method = "POST",
				    .path = t->path,
				    .represented_party = "",
				    .data_subject = i % 2 ? "1234567(8)" : "",
				    .purpose = "benefit check",
				    .status = 200,
				    .request_sig = t->req_sig,
				    .request_signer_cert = sig_a.sha,
				    .request_body_sha256 = t->req_sha,
				    .request_body = full ? t->req_body : NULL,
				    .request_body_len = strlen(t->req_body),
				    .response_sig = t->resp_sig,
				    .response_signer_cert = sig_b.sha,
				    .response_body_sha256 = t->resp_sha,
				    .response_body = full ? t->resp_body : NULL,
				    .response_body_len = strlen(t->resp_body),
				    .request_signed_at = "2026-11-27T10:00:00Z",
				    .response_signed_at = "2026-11-27T10:00:01Z",
				    .request_content_type = "application/json",
				    .response_content_type = "application/json"};
	buf_init(&canon, 65536);
	cq = (exchange_canon_req){.message_id = t->mid,
				  .client = t->rec.client,
				  .service = t->rec.service,
				  .method = t->rec.method,
				  .path = t->path,
				  .content_type = t->rec.request_content_type,
				  .represented_party = "",
				  .data_subject = t->rec.data_subject,
				  .purpose = t->rec.purpose,
				  .signed_at = t->rec.request_signed_at,
				  .body_sha256 = t->req_sha};
	assert_int_equal(exchange_canon_request(&cq, &canon), EGOV_OK);
	assert_int_equal(exchange_es256_sign(sig_a.key, canon.data, canon.len, t->req_sig), EGOV_OK);
	cr = (exchange_canon_resp){.message_id = t->mid,
				   .service = t->rec.service,
				   .content_type = t->rec.response_content_type,
				   .request_sig = t->req_sig,
				   .signed_at = t->rec.response_signed_at,
				   .body_sha256 = t->resp_sha,
				   .status = 200};
	assert_int_equal(exchange_canon_response(&cr, &canon), EGOV_OK);
	assert_int_equal(exchange_es256_sign(sig_b.key, canon.data, canon.len, t->resp_sig), EGOV_OK);
	buf_release(&canon);
}

/* ---- fixture ------------------------------------------------------------------ */

typedef struct env {
	char *dir;
	char urls[2][512];
	int n;
} env;

typedef struct fx {
	env *e;
	char sub[600];
	egov_config cfg;
	db *d;
	db_conn *c;
} fx;

static int group_setup(void **state)
{
	(void)state;
	signer_make(&sig_a, "client");
	signer_make(&sig_b, "provider");
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(sig_a.key);
	EVP_PKEY_free(sig_b.key);
	return 0;
}

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

/* A fresh log on backend k (in subdirectory tag for SQLite), the writer
 * started with grace_s. */
static void fx_open(fx *f, env *e, int k, int tag, int grace_s)
{
	char err[512] = "", url[700];
	const db_migration *m;
	size_t n = 0;

	memset(f, 0, sizeof *f);
	f->e = e;
	snprintf(f->sub, sizeof f->sub, "%s/b%d-%d", e->dir, k, tag);
	assert_int_equal(mkdir(f->sub, 0700), 0);
	if (strncmp(e->urls[k], "sqlite:", 7) == 0)
		snprintf(url, sizeof url, "sqlite:%s/log.db", f->sub);
	else
		snprintf(url, sizeof url, "%s", e->urls[k]);
	assert_int_equal(db_open(url, &f->d, err, sizeof err), EGOV_OK);
	assert_int_equal(db_conn_open(f->d, &f->c), EGOV_OK);
	assert_int_equal(test_db_reset(f->c), 0);
	m = exlog_migrations(&n);
	assert_int_equal(db_migrate(f->c, "exchange_log", m, n, NULL), EGOV_OK);
	config_init(&f->cfg);
	assert_int_equal(config_set(&f->cfg, "data.dir", f->sub, err, sizeof err), EGOV_OK);
	snprintf(url, sizeof url, "%d", grace_s);
	assert_int_equal(config_set(&f->cfg, "exchange.timestamp_grace_s", url, err, sizeof err), EGOV_OK);
	assert_int_equal(config_set(&f->cfg, "exchange.timestamp_interval_s", "3600", err, sizeof err), EGOV_OK);
	assert_int_equal(exchange_log_start(f->d, &f->cfg), EGOV_OK);
	assert_int_equal(jobs_start(f->d, (const job *const[]){&exlog_sealer_job}, 1), EGOV_OK);
	assert_int_equal(exchange_log_cert(sig_a.sha, sig_a.pem), EGOV_OK);
	assert_int_equal(exchange_log_cert(sig_b.sha, sig_b.pem), EGOV_OK);
}

static void fx_close(fx *f)
{
	jobs_stop((const job *const[]){&exlog_sealer_job}, 1);
	exchange_log_stop();
	db_conn_close(f->c);
	db_close(f->d);
	config_release(&f->cfg);
}

static int64_t count_rows(fx *f, const char *sql)
{
	int64_t n = -1;
	bool found = false;

	assert_int_equal(db_query_int(f->c, sql, NULL, 0, &n, &found), EGOV_OK);
	return n;
}

static void append_n(int from, int to, bool full)
{
	char mid[64];
	trec t;
	int i;

	for (i = from; i <= to; i++) {
		snprintf(mid, sizeof mid, "msg-%d", i);
		trec_make(&t, "consumer", mid, i, full);
		assert_int_equal(exchange_log_append(&t.rec), EGOV_OK);
	}
}

static void verify_ok(fx *f, const char *anchor, exlog_verify_result *r)
{
	assert_int_equal(exlog_verify_db(f->d, anchor, r), EGOV_OK);
	if (!exlog_verify_ok(r))
		fprintf(stderr, "fault %s at %lld (%s); sig %lld: %s; seal %lld: %s\n", exlog_fault_name(r->fault),
			(long long)r->first_bad, r->chain_why, (long long)r->sig_bad, r->sig_why,
			(long long)r->seal_bad, r->seal_why);
	assert_true(exlog_verify_ok(r));
}

/* ---- appends ---------------------------------------------------------------------- */

static void test_append_and_verify(void **state)
{
	env *e = *state;
	exlog_verify_result r;
	trec t;
	fx f;
	int k;

	for (k = 0; k < e->n; k++) {
		fx_open(&f, e, k, 0, 3600);
		append_n(1, 20, true);
		append_n(21, 30, false);
		assert_int_equal(count_rows(&f, "SELECT COUNT(*) FROM exchange_log"), 30);
		assert_int_equal(count_rows(&f, "SELECT COUNT(*) FROM exchange_log WHERE request_body IS NULL"), 10);
		assert_int_equal(count_rows(&f, "SELECT COUNT(*) FROM exchange_log_cert"), 2);
		verify_ok(&f, NULL, &r);
		assert_int_equal(r.records, 30);
		assert_int_equal(r.signatures, 60);
		assert_int_equal(r.last_seq, 30);

		/* Bad input is refused before it is queued. */
		trec_make(&t, "consumer", "bad-1", 1, true);
		t.rec.side = "middle";
		assert_int_equal(exchange_log_append(&t.rec), EGOV_EINVAL);
		trec_make(&t, "consumer", "bad-2", 1, true);
		t.rec.purpose = "line\nbreak";
		assert_int_equal(exchange_log_append(&t.rec), EGOV_EINVAL);
		trec_make(&t, "consumer", "bad-3", 1, true);
		t.rec.client = "\xff\xfe";
		assert_int_equal(exchange_log_append(&t.rec), EGOV_EINVAL);
		trec_make(&t, "consumer", "bad-4", 1, true);
		t.rec.request_body_sha256 = "abc";
		assert_int_equal(exchange_log_append(&t.rec), EGOV_EINVAL);
		/* A certificate under another's hash is refused. */
		assert_int_equal(exchange_log_cert(sig_a.sha, sig_b.pem), EGOV_OK); /* known: cheap path */
		assert_int_equal(exchange_log_cert("00000000000000000000000000000000000000000000000000000000000000aa",
						   sig_b.pem),
				 EGOV_EINVAL);
		fx_close(&f);
		/* Stopped: appends are refused, not lost. */
		trec_make(&t, "consumer", "late", 1, true);
		assert_int_equal(exchange_log_append(&t.rec), EGOV_EUNAVAILABLE);
	}
}

typedef struct worker_arg {
	int id, count;
	atomic_int *failures;
} worker_arg;

static void *worker(void *arg)
{
	worker_arg *w = arg;
	char mid[64];
	trec t;
	int i;

	for (i = 0; i < w->count; i++) {
		snprintf(mid, sizeof mid, "w%d-%d", w->id, i);
		trec_make(&t, "provider", mid, i, i % 2 == 0);
		if (exchange_log_append(&t.rec) != EGOV_OK)
			atomic_fetch_add(w->failures, 1);
	}
	return NULL;
}

static void test_concurrent_appends(void **state)
{
	enum { THREADS = 32, EACH = 40 };
	env *e = *state;
	pthread_t th[THREADS];
	worker_arg args[THREADS];
	atomic_int failures;
	exlog_verify_result r;
	int64_t rec0, bat0, rec1, bat1;
	fx f;
	int k, i;

	for (k = 0; k < e->n; k++) {
		fx_open(&f, e, k, 0, 3600);
		atomic_init(&failures, 0);
		exlog_stats(&rec0, &bat0);
		for (i = 0; i < THREADS; i++) {
			args[i] = (worker_arg){.id = i, .count = EACH, .failures = &failures};
			assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
		}
		for (i = 0; i < THREADS; i++)
			pthread_join(th[i], NULL);
		exlog_stats(&rec1, &bat1);
		assert_int_equal(atomic_load(&failures), 0);
		assert_int_equal(count_rows(&f, "SELECT COUNT(*) FROM exchange_log"), THREADS * EACH);
		assert_int_equal(rec1 - rec0, THREADS * EACH);
		/* Group commit: far fewer transactions than records. */
		assert_true(bat1 - bat0 < (THREADS * EACH) / 2);
		verify_ok(&f, NULL, &r);
		assert_int_equal(r.records, THREADS * EACH);
		fx_close(&f);
	}
}

typedef struct async_wait {
	sem_t sem;
	egov_err err;
} async_wait;

static void async_done(void *ctx, egov_err err)
{
	async_wait *w = ctx;
	w->err = err;
	sem_post(&w->sem);
}

static void test_replay_fails_alone(void **state)
{
	env *e = *state;
	exlog_verify_result r;
	async_wait w[4];
	trec t[4];
	fx f;
	int k, i, ok, conflicts;

	for (k = 0; k < e->n; k++) {
		fx_open(&f, e, k, 0, 3600);
		append_n(1, 3, true);
		/* Queued together, so they share a batch: two with one id,
		 * one new, one replaying a committed record. */
		trec_make(&t[0], "consumer", "dup", 10, true);
		trec_make(&t[1], "consumer", "dup", 11, true);
		trec_make(&t[2], "consumer", "fresh", 12, true);
		trec_make(&t[3], "consumer", "msg-2", 13, true);
		for (i = 0; i < 4; i++) {
			sem_init(&w[i].sem, 0, 0);
			assert_int_equal(exchange_log_append_async(&t[i].rec, async_done, &w[i]), EGOV_OK);
		}
		for (i = 0; i < 4; i++) {
			sem_wait(&w[i].sem);
			sem_destroy(&w[i].sem);
		}
		ok = (w[0].err == EGOV_OK) + (w[1].err == EGOV_OK);
		conflicts = (w[0].err == EGOV_ECONFLICT) + (w[1].err == EGOV_ECONFLICT);
		assert_int_equal(ok, 1);
		assert_int_equal(conflicts, 1);
		assert_int_equal(w[2].err, EGOV_OK);
		assert_int_equal(w[3].err, EGOV_ECONFLICT);
		/* The same id from the other side is another exchange. */
		trec_make(&t[0], "provider", "msg-2", 2, true);
		assert_int_equal(exchange_log_append(&t[0].rec), EGOV_OK);
		trec_make(&t[0], "consumer", "msg-3", 3, false);
		assert_int_equal(exchange_log_append(&t[0].rec), EGOV_ECONFLICT);
		assert_int_equal(count_rows(&f, "SELECT COUNT(*) FROM exchange_log"), 6);
		assert_int_equal(count_rows(&f, "SELECT MAX(seq) FROM exchange_log"), 6);
		verify_ok(&f, NULL, &r);
		assert_int_equal(r.records, 6);
		fx_close(&f);
	}
}

/* ---- tampering -------------------------------------------------------------------- */

static void exec(fx *f, const char *sql)
{
	if (db_exec_script(f->c, sql) != EGOV_OK)
		fail_msg("%s: %s", sql, db_conn_errmsg(f->c));
}

/* Recomputes every record's prev_hash and hash from seq from on, as an
 * intruder who knows the format would after editing a record. */
static void rechain(fx *f)
{
	unsigned char prev[EXLOG_HASH_LEN] = {0}, hash[EXLOG_HASH_LEN];
	char hex_prev[EXLOG_HEX_LEN + 1], hex[EXLOG_HEX_LEN + 1];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	db_conn *rc = NULL;
	db_rows *rows = NULL;
	bool has = false;
	exlog_row r;

	assert_int_equal(db_conn_open(f->d, &rc), EGOV_OK);
	assert_int_equal(db_query(rc,
				  "SELECT seq, time, side, message_id, client, service, method, path, represented_party,"
				  " data_subject, purpose, status, log_mode, request_content_type, request_signed_at,"
				  " request_sig, request_signer_cert, request_body_sha256, response_content_type,"
				  " response_signed_at, response_sig, response_signer_cert, response_body_sha256"
				  " FROM exchange_log ORDER BY seq",
				  NULL, 0, &rows),
			 EGOV_OK);
	while (db_rows_next(rows, &has) == EGOV_OK && has) {
		memset(&r, 0, sizeof r);
		r.seq = db_rows_int(rows, 0);
		r.time = db_rows_text(rows, 1);
		r.side = db_rows_text(rows, 2);
		r.message_id = db_rows_text(rows, 3);
		r.client = db_rows_text(rows, 4);
		r.service = db_rows_text(rows, 5);
		r.method = db_rows_text(rows, 6);
		r.path = db_rows_text(rows, 7);
		r.represented_party = db_rows_text(rows, 8);
		r.data_subject = db_rows_text(rows, 9);
		r.purpose = db_rows_text(rows, 10);
		r.status = db_rows_int(rows, 11);
		r.log_mode = db_rows_text(rows, 12);
		r.request_content_type = db_rows_text(rows, 13);
		r.request_signed_at = db_rows_text(rows, 14);
		r.request_sig = db_rows_text(rows, 15);
		r.request_signer_cert = db_rows_text(rows, 16);
		r.request_body_sha256 = db_rows_text(rows, 17);
		r.response_content_type = db_rows_text(rows, 18);
		r.response_signed_at = db_rows_text(rows, 19);
		r.response_sig = db_rows_text(rows, 20);
		r.response_signer_cert = db_rows_text(rows, 21);
		r.response_body_sha256 = db_rows_text(rows, 22);
		assert_int_equal(exlog_hash(md, prev, &r, hash), EGOV_OK);
		exlog_hex(prev, hex_prev);
		exlog_hex(hash, hex);
		{
			db_param p[] = {DBP_S(hex_prev), DBP_S(hex), DBP_I(r.seq)};
			assert_int_equal(db_exec(f->c, "UPDATE exchange_log SET prev_hash = ?, hash = ? WHERE seq = ?", p,
						 3, NULL),
					 EGOV_OK);
		}
		memcpy(prev, hash, sizeof prev);
	}
	db_rows_free(rows);
	db_conn_close(rc);
	EVP_MD_CTX_free(md);
}

typedef struct tamper_case {
	const char *name;
	const char *sql;     /* run on a log of records 1..10 */
	bool rechain;        /* then recompute the chain */
	exlog_fault fault;
	int64_t first_bad;
	int64_t sig_bad;     /* expected first record failing signatures, 0 none */
} tamper_case;

/* Moves every row from seq 5 up by one (through negatives, so the primary
 * key never collides) and slips a copy of record 4, re-hashed, in at 5. */
static void insert_forged(fx *f)
{
	unsigned char prev[EXLOG_HASH_LEN], hash[EXLOG_HASH_LEN];
	char hex[EXLOG_HEX_LEN + 1];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	exlog_row r;
	char *h4 = NULL;
	db_param p1[] = {DBP_I(4)};

	exec(f, "UPDATE exchange_log SET seq = -seq WHERE seq >= 5;"
		"UPDATE exchange_log SET seq = -seq + 1 WHERE seq < 0");
	assert_int_equal(db_query_text(f->c, "SELECT hash FROM exchange_log WHERE seq = ?", p1, 1, &h4), EGOV_OK);
	assert_true(exlog_unhex(h4, prev));
	memset(&r, 0, sizeof r);
	r = (exlog_row){.seq = 5, .time = "2026-11-27T10:00:00.000000Z", .side = "consumer", .message_id = "forged",
			.client = "MO/GOV/DSB/APP", .service = "MO/GOV/DSAJ/REG/persons", .method = "GET",
			.path = "/x", .represented_party = "", .data_subject = "", .purpose = "", .status = 200,
			.log_mode = "digest", .request_content_type = "", .request_signed_at = "x", .request_sig = "x",
			.request_signer_cert = sig_a.sha, .request_body_sha256 = sig_a.sha,
			.response_content_type = "", .response_signed_at = "", .response_sig = "",
			.response_signer_cert = "", .response_body_sha256 = sig_a.sha};
	assert_int_equal(exlog_hash(md, prev, &r, hash), EGOV_OK);
	exlog_hex(hash, hex);
	{
		db_param p[] = {DBP_S(r.time),	 DBP_S(sig_a.sha), DBP_S(sig_a.sha), DBP_S(sig_a.sha),
				DBP_S(h4),	 DBP_S(hex)};
		assert_int_equal(
			db_exec(f->c,
				"INSERT INTO exchange_log (seq, time, side, message_id, client, service, method, path,"
				" represented_party, data_subject, purpose, status, log_mode, request_content_type,"
				" request_signed_at, request_sig, request_signer_cert, request_body_sha256,"
				" response_content_type, response_signed_at, response_sig, response_signer_cert,"
				" response_body_sha256, prev_hash, hash) VALUES (5, ?, 'consumer', 'forged',"
				" 'MO/GOV/DSB/APP', 'MO/GOV/DSAJ/REG/persons', 'GET', '/x', '', '', '', 200, 'digest', '',"
				" 'x', 'x', ?, ?, '', '', '', '', ?, ?, ?)",
				p, 6, NULL),
			EGOV_OK);
	}
	free(h4);
	EVP_MD_CTX_free(md);
}

static const tamper_case tamper_cases[] = {
	{"changed purpose", "UPDATE exchange_log SET purpose = 'curiosity' WHERE seq = 5", false,
	 EXLOG_FAULT_CHANGED, 5, 0},
	{"deleted", "DELETE FROM exchange_log WHERE seq = 5", false, EXLOG_FAULT_DELETED, 5, 0},
	{"deleted, renumbered",
	 "DELETE FROM exchange_log WHERE seq = 5; UPDATE exchange_log SET seq = -seq WHERE seq > 5;"
	 " UPDATE exchange_log SET seq = -seq - 1 WHERE seq < 0",
	 false, EXLOG_FAULT_DELETED, 5, 0},
	{"reordered",
	 "UPDATE exchange_log SET seq = -1 WHERE seq = 5; UPDATE exchange_log SET seq = 5 WHERE seq = 6;"
	 " UPDATE exchange_log SET seq = 6 WHERE seq = -1",
	 false, EXLOG_FAULT_REORDERED, 5, 0},
	/* The forged record links and hashes correctly but its signature
	 * does not verify; the record after it no longer links. */
	{"inserted", NULL, false, EXLOG_FAULT_INSERTED, 5, 5},
	{"tail truncated (undetectable without a seal)", "DELETE FROM exchange_log WHERE seq > 8", false,
	 EXLOG_FAULT_NONE, 0, 0},
	{"request body changed",
	 "UPDATE exchange_log SET request_body = (SELECT request_body FROM exchange_log WHERE seq = 4) WHERE seq = 3",
	 false,
	 EXLOG_FAULT_NONE, 0, 3},
	{"response body dropped", "UPDATE exchange_log SET response_body = NULL WHERE seq = 4", false,
	 EXLOG_FAULT_NONE, 0, 4},
	{"purpose changed, chain recomputed", "UPDATE exchange_log SET purpose = 'curiosity' WHERE seq = 7", true,
	 EXLOG_FAULT_NONE, 0, 7},
	{"data subject changed, chain recomputed", "UPDATE exchange_log SET data_subject = '7654321(0)' WHERE seq = 2",
	 true, EXLOG_FAULT_NONE, 0, 2},
	{"status changed, chain recomputed", "UPDATE exchange_log SET status = 404 WHERE seq = 6", true,
	 EXLOG_FAULT_NONE, 0, 6},
	{"kept certificate swapped",
	 "UPDATE exchange_log_cert SET pem = (SELECT pem FROM exchange_log_cert c2 WHERE c2.sha256 <> exchange_log_cert.sha256)",
	 false, EXLOG_FAULT_NONE, 0, 1},
	{"kept certificate deleted", "DELETE FROM exchange_log_cert", false, EXLOG_FAULT_NONE, 0, 1},
};

static void test_tampering_detected(void **state)
{
	env *e = *state;
	exlog_verify_result r;
	size_t i;
	fx f;
	int k;

	for (k = 0; k < e->n; k++) {
		fx_open(&f, e, k, 0, 3600);
		for (i = 0; i < sizeof tamper_cases / sizeof tamper_cases[0]; i++) {
			const tamper_case *tc = &tamper_cases[i];

			exec(&f, "DELETE FROM exchange_log");
			append_n(1, 10, true);
			if (strstr(tc->name, "certificate")) {
				/* put them back first: an earlier case removed them */
				db_param p[] = {DBP_S(sig_a.sha), DBP_S(sig_a.pem), DBP_S(sig_b.sha), DBP_S(sig_b.pem)};
				exec(&f, "DELETE FROM exchange_log_cert");
				assert_int_equal(db_exec(f.c, "INSERT INTO exchange_log_cert VALUES (?, ?), (?, ?)", p, 4, NULL),
						 EGOV_OK);
			}
			verify_ok(&f, NULL, &r);
			if (tc->sql)
				exec(&f, tc->sql);
			else
				insert_forged(&f);
			if (tc->rechain)
				rechain(&f);
			assert_int_equal(exlog_verify_db(f.d, NULL, &r), EGOV_OK);
			if (r.fault != tc->fault || r.first_bad != tc->first_bad || r.sig_bad != tc->sig_bad)
				fail_msg("%s: got %s at %lld, sig_bad %lld (%s)", tc->name, exlog_fault_name(r.fault),
					 (long long)r.first_bad, (long long)r.sig_bad, r.sig_why);
			assert_int_equal(exlog_verify_ok(&r), tc->fault == EXLOG_FAULT_NONE && tc->sig_bad == 0);
		}
		fx_close(&f);
	}
}

/* ---- sealing against a real TSA ------------------------------------------------------ */

typedef struct tsa_node {
	char dir[600];
	char url[128];
	char root[700];
	egov_config cfg;
	router *rt;
	server *srv;
} tsa_node;

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* The platform's CA and TSA (src/pki) served over HTTP on 127.0.0.1 by the
 * kernel's server in this process: the same code `egov serve` runs. */
static void tsa_start(tsa_node *t, const char *parent, const char *name)
{
	char err[512] = "", listen[64];
	int port = free_port();

	memset(t, 0, sizeof *t);
	snprintf(t->dir, sizeof t->dir, "%s/%s", parent, name);
	assert_int_equal(mkdir(t->dir, 0700), 0);
	snprintf(t->root, sizeof t->root, "%s/pki/root.crt", t->dir);
	snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
	snprintf(t->url, sizeof t->url, "http://127.0.0.1:%d/pki/tsa", port);
	config_init(&t->cfg);
	assert_int_equal(config_set(&t->cfg, "data.dir", t->dir, err, sizeof err), EGOV_OK);
	assert_int_equal(config_set(&t->cfg, "server.listen", listen, err, sizeof err), EGOV_OK);
	assert_int_equal(config_set(&t->cfg, "server.threads", "2", err, sizeof err), EGOV_OK);
	assert_int_equal(pki_ca_init(t->dir, err, sizeof err), EGOV_OK);
	assert_int_equal(pki_open(&t->cfg, err, sizeof err), EGOV_OK);
	assert_int_equal(router_new(&t->rt), EGOV_OK);
	assert_int_equal(router_add(t->rt, pki_module.routes, pki_module.nroutes, err, sizeof err), EGOV_OK);
	if (server_start(&t->cfg, t->rt, &t->srv, err, sizeof err) != EGOV_OK)
		fail_msg("server_start: %s", err);
}

static void tsa_stop(tsa_node *t)
{
	server_stop(t->srv, 0);
	router_free(t->rt);
	pki_close();
	config_release(&t->cfg);
}

static void test_sealing(void **state)
{
	env *e = *state;
	exlog_verify_result r;
	tsa_node tsa, other;
	int64_t last = 0;
	char wrong_root[700];
	fx f;
	int k;

	/* A second CA only for its root: a token must not verify against it. */
	tsa_start(&other, e->dir, "other-ca");
	snprintf(wrong_root, sizeof wrong_root, "%s", other.root);
	tsa_stop(&other);
	tsa_start(&tsa, e->dir, "ca");
	for (k = 0; k < e->n; k++) {
		fx_open(&f, e, k, 0, 3600);
		/* Nothing to seal: no request, nothing stored. */
		assert_int_equal(exlog_seal_now(tsa.url, &last), EGOV_OK);
		assert_int_equal(last, 0);
		append_n(1, 10, true);
		assert_int_equal(exlog_seal_now(tsa.url, &last), EGOV_OK);
		assert_int_equal(last, 10);
		append_n(11, 15, false);
		assert_int_equal(exlog_seal_now(tsa.url, &last), EGOV_OK);
		assert_int_equal(last, 15);
		assert_int_equal(exlog_seal_now(tsa.url, &last), EGOV_OK); /* nothing new */
		assert_int_equal(count_rows(&f, "SELECT COUNT(*) FROM exchange_log_seal"), 2);
		append_n(16, 17, false);
		/* A TSA that is not there: no seal, an error. */
		assert_int_equal(exlog_seal_now("http://127.0.0.1:1/pki/tsa", &last), EGOV_EUNAVAILABLE);
		assert_int_equal(exlog_seal_now("", &last), EGOV_EUNAVAILABLE);

		verify_ok(&f, tsa.root, &r);
		assert_int_equal(r.seals, 2);
		assert_int_equal(r.sealed_to, 15);
		assert_int_equal(r.last_seq, 17);

		/* Without an anchor, or with another CA's, seals do not pass. */
		assert_int_equal(exlog_verify_db(f.d, NULL, &r), EGOV_OK);
		assert_true(r.seal_failed);
		assert_int_equal(exlog_verify_db(f.d, wrong_root, &r), EGOV_OK);
		assert_true(r.seal_failed);
		assert_int_equal(r.seal_bad, 10);

		/* An intruder who rewrites a sealed record's time (not under
		 * any signature) and recomputes the whole chain: the chain and
		 * the signatures pass, the seals do not. */
		exec(&f, "UPDATE exchange_log SET time = '2020-01-01T00:00:00.000000Z' WHERE seq = 12");
		rechain(&f);
		assert_int_equal(exlog_verify_db(f.d, tsa.root, &r), EGOV_OK);
		assert_int_equal(r.fault, EXLOG_FAULT_NONE);
		assert_int_equal(r.sig_bad, 0);
		assert_true(r.seal_failed);
		assert_int_equal(r.seals, 1); /* records up to 11 kept their hashes */
		assert_int_equal(r.seal_bad, 15);
		fx_close(&f);

		/* Truncating sealed records is caught by the seal. */
		fx_open(&f, e, k, 1, 3600);
		append_n(1, 6, true);
		assert_int_equal(exlog_seal_now(tsa.url, &last), EGOV_OK);
		exec(&f, "DELETE FROM exchange_log WHERE seq > 4");
		assert_int_equal(exlog_verify_db(f.d, tsa.root, &r), EGOV_OK);
		assert_int_equal(r.fault, EXLOG_FAULT_NONE);
		assert_true(r.seal_failed);
		assert_int_equal(r.seal_bad, 6);
		fx_close(&f);
	}
	tsa_stop(&tsa);
}

static void test_overdue(void **state)
{
	env *e = *state;
	tsa_node tsa;
	int64_t last = 0;
	fx f;
	int i;

	tsa_start(&tsa, e->dir, "ca");
	fx_open(&f, e, 0, 0, 1);
	assert_false(exchange_log_sealing_overdue());
	append_n(1, 2, false);
	/* No configuration names a TSA here, so the sealer cannot seal: past
	 * the grace period (1 s) the flag goes up within its 1 s refresh. */
	for (i = 0; i < 40 && !exchange_log_sealing_overdue(); i++)
		usleep(100 * 1000);
	assert_true(exchange_log_sealing_overdue());
	assert_int_equal(exlog_seal_now(tsa.url, &last), EGOV_OK);
	assert_int_equal(last, 2);
	assert_false(exchange_log_sealing_overdue());
	fx_close(&f);

	/* A restart with old unsealed records is overdue at once. */
	fx_open(&f, e, 0, 1, 3600);
	append_n(1, 1, false);
	exec(&f, "UPDATE exchange_log SET time = '2020-01-01T00:00:00.000000Z'");
	exchange_log_stop();
	assert_int_equal(exchange_log_start(f.d, &f.cfg), EGOV_OK);
	assert_true(exchange_log_sealing_overdue());
	fx_close(&f);
	tsa_stop(&tsa);
}

/* ---- archives --------------------------------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
	FILE *in = fopen(path, "rb");
	char *s;
	long n;

	assert_non_null(in);
	fseek(in, 0, SEEK_END);
	n = ftell(in);
	rewind(in);
	s = malloc((size_t)n + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t)n, in), (size_t)n);
	s[n] = '\0';
	fclose(in);
	*len = (size_t)n;
	return s;
}

static void spit(const char *path, const char *s, size_t n)
{
	FILE *out = fopen(path, "wb");

	assert_non_null(out);
	assert_int_equal(fwrite(s, 1, n, out), n);
	fclose(out);
}

/* Writes archive src to dst with the first occurrence of from replaced. */
static void tamper_file(const char *src, const char *dst, const char *from, const char *to)
{
	size_t n, fl = strlen(from), tl = strlen(to);
	char *s = slurp(src, &n), *at = strstr(s, from), *o;

	assert_non_null(at);
	o = malloc(n - fl + tl + 1);
	assert_non_null(o);
	memcpy(o, s, (size_t)(at - s));
	memcpy(o + (at - s), to, tl);
	memcpy(o + (at - s) + tl, at + fl, n - (size_t)(at - s) - fl);
	spit(dst, o, n - fl + tl);
	free(o);
	free(s);
}

/* Drops the line of src that contains needle. */
static void drop_line(const char *src, const char *dst, const char *needle)
{
	size_t n;
	char *s = slurp(src, &n), *at = strstr(s, needle), *start, *end;

	assert_non_null(at);
	for (start = at; start > s && start[-1] != '\n'; start--)
		;
	end = strchr(at, '\n');
	assert_non_null(end);
	end++;
	memmove(start, end, n - (size_t)(end - s));
	spit(dst, s, n - (size_t)(end - start));
	free(s);
}

static void test_archive_round_trip(void **state)
{
	env *e = *state;
	exlog_verify_result r;
	char path[700], bad[700];
	tsa_node tsa;
	int64_t n = 0, last = 0;
	fx f;
	int k;

	tsa_start(&tsa, e->dir, "ca");
	for (k = 0; k < e->n; k++) {
		fx_open(&f, e, k, 0, 3600);
		append_n(1, 8, true);
		assert_int_equal(exlog_seal_now(tsa.url, &last), EGOV_OK);
		append_n(9, 12, false);
		assert_int_equal(exlog_seal_now(tsa.url, &last), EGOV_OK);
		append_n(13, 14, true);
		snprintf(path, sizeof path, "%s/archive.jsonl", f.sub);
		snprintf(bad, sizeof bad, "%s/bad.jsonl", f.sub);
		assert_int_equal(exlog_archive(f.d, path, 1, &n), EGOV_OK);
		assert_int_equal(n, 14);
		fx_close(&f);

		/* No database from here on. */
		assert_int_equal(exlog_verify_file(path, tsa.root, &r), EGOV_OK);
		assert_true(exlog_verify_ok(&r));
		assert_int_equal(r.records, 14);
		assert_int_equal(r.signatures, 28);
		assert_int_equal(r.seals, 2);
		assert_int_equal(r.sealed_to, 12);

		/* Each kind of tampering with the file. */
		tamper_file(path, bad, "\"purpose\":\"benefit check\"", "\"purpose\":\"curiosity\"");
		assert_int_equal(exlog_verify_file(bad, tsa.root, &r), EGOV_OK);
		assert_int_equal(r.fault, EXLOG_FAULT_CHANGED);
		assert_int_equal(r.first_bad, 1);
		drop_line(path, bad, "\"message_id\":\"msg-5\"");
		assert_int_equal(exlog_verify_file(bad, tsa.root, &r), EGOV_OK);
		assert_int_equal(r.fault, EXLOG_FAULT_DELETED);
		assert_int_equal(r.first_bad, 5);
		drop_line(path, bad, "\"message_id\":\"msg-14\"");
		assert_int_equal(exlog_verify_file(bad, tsa.root, &r), EGOV_OK);
		assert_int_equal(r.fault, EXLOG_FAULT_NONE); /* unsealed tail: undetectable */
		drop_line(path, bad, "\"message_id\":\"msg-12\"");
		assert_int_equal(exlog_verify_file(bad, tsa.root, &r), EGOV_OK);
		assert_true(r.seal_failed); /* sealed tail: the seal catches it */
		/* A body: base64 of {"q":3} is eyJxIjozfQ==. */
		tamper_file(path, bad, "\"request_body\":\"eyJxIjozfQ==\"", "\"request_body\":\"eyJxIjo5fQ==\"");
		assert_int_equal(exlog_verify_file(bad, tsa.root, &r), EGOV_OK);
		assert_int_equal(r.fault, EXLOG_FAULT_NONE);
		assert_int_equal(r.sig_bad, 3);
		tamper_file(path, bad, "\"token\":\"M", "\"token\":\"N");
		assert_int_equal(exlog_verify_file(bad, tsa.root, &r), EGOV_OK);
		assert_true(r.seal_failed);
		drop_line(path, bad, "\"type\":\"cert\"");
		assert_int_equal(exlog_verify_file(bad, tsa.root, &r), EGOV_OK);
		assert_true(r.sig_bad == 1);
		tamper_file(path, bad, "\"format\":\"egov-exchange-log/1\"", "\"format\":\"something-else\"");
		assert_int_equal(exlog_verify_file(bad, tsa.root, &r), EGOV_ECORRUPT);
		tamper_file(path, bad, "{\"type\":\"record\",\"seq\":3,", "{\"type\":\"record\",\"seq\":3");
		assert_int_equal(exlog_verify_file(bad, tsa.root, &r), EGOV_OK);
		assert_int_equal(r.fault, EXLOG_FAULT_CHANGED);
		assert_int_equal(r.first_bad, 3);
		assert_int_equal(exlog_verify_file("/nonexistent/archive", tsa.root, &r), EGOV_ENOTFOUND);

		/* A partial archive picks the chain up where it starts. */
		fx_open(&f, e, k, 1, 3600);
		append_n(1, 8, true);
		assert_int_equal(exlog_seal_now(tsa.url, &last), EGOV_OK);
		assert_int_equal(exlog_archive(f.d, path, 5, &n), EGOV_OK);
		assert_int_equal(n, 4);
		fx_close(&f);
		assert_int_equal(exlog_verify_file(path, tsa.root, &r), EGOV_OK);
		assert_true(exlog_verify_ok(&r));
		assert_int_equal(r.records, 4);
		assert_int_equal(r.seals, 1);
	}
	tsa_stop(&tsa);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_append_and_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_appends, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_fails_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tampering_detected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sealing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overdue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_archive_round_trip, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
