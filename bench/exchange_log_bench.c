/*
 * exchange_log_bench.c: throughput of a gateway's message log.
 *
 *   exchange_log_bench DBURL [producers] [seconds] [body_bytes] [mode]
 *
 * 1. Each of `producers` threads (default 64, as many exchanges in flight
 *    as the gateway bench keeps) signs its records first (ES256 over the
 *    canonical texts, as a gateway does before it logs), then, once all
 *    are ready, appends them one after the other for `seconds`: each
 *    append counted has returned, so it is durable (group commit). Bodies
 *    are body_bytes each (default 1024), logged in `mode` full (default)
 *    or digest. Per-append latency is measured.
 * 2. exlog_verify_db() walks what was written: chain, every signature and
 *    body digest (no seals: nothing here runs a TSA).
 *
 * One line per figure, `name key=value ...`. The database should be empty
 * or hold only an earlier run's log (the schema is migrated if needed,
 * nothing dropped; message ids are fresh UUIDv7s).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/config.h"
#include "core/crypto.h"
#include "core/db.h"
#include "core/timeutil.h"
#include "exchange/keys/keys.h"
#include "exchange/log/exlog_int.h"
#include "exchange/wire/wire.h"

/* Records a producer signs before the clock starts: enough for 5 s at
 * 64 x 600 records/s each, far above the target. */
#define PRESIGN_MAX 4000

typedef struct presigned {
	char mid[37];
	char req_sig[128], resp_sig[128];
} presigned;

typedef struct shared {
	EVP_PKEY *key;
	char cert_sha[65];
	char *body;
	size_t body_len;
	char body_sha[65];
	bool full;
	int presign;
	pthread_barrier_t ready;
	atomic_bool stop;
	atomic_int_fast64_t appended, failed;
} shared;

typedef struct producer {
	shared *s;
	presigned *recs;
	int64_t *lat_us;
	int64_t n;
	pthread_t th;
} producer;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
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

static void fill_rec(const shared *s, const presigned *p, exchange_log_rec *r)
{
	*r = (exchange_log_rec){.side = "provider",
				.message_id = p->mid,
				.client = "MO/GOV/DSB/APP",
				.service = "MO/GOV/DSAJ/REG/persons",
				.method = "POST",
				.path = "/persons/search",
				.represented_party = "",
				.data_subject = "1234567(8)",
				.purpose = "benefit check",
				.status = 200,
				.request_sig = p->req_sig,
				.request_signer_cert = s->cert_sha,
				.request_body_sha256 = s->body_sha,
				.request_body = s->full ? s->body : NULL,
				.request_body_len = s->body_len,
				.response_sig = p->resp_sig,
				.response_signer_cert = s->cert_sha,
				.response_body_sha256 = s->body_sha,
				.response_body = s->full ? s->body : NULL,
				.response_body_len = s->body_len,
				.request_signed_at = "2026-11-27T10:00:00Z",
				.response_signed_at = "2026-11-27T10:00:00Z",
				.request_content_type = "application/json",
				.response_content_type = "application/json"};
}

static int presign(shared *s, presigned *p)
{
	exchange_log_rec r;
	exchange_canon_req cq;
	exchange_canon_resp cr;
	buf canon;
	int rc = -1;

	buf_init(&canon, 65536);
	if (uuid_v7(p->mid))
		goto out;
	fill_rec(s, p, &r);
	cq = (exchange_canon_req){.message_id = r.message_id,
				  .client = r.client,
				  .service = r.service,
				  .method = r.method,
				  .path = r.path,
				  .content_type = r.request_content_type,
				  .represented_party = r.represented_party,
				  .data_subject = r.data_subject,
				  .purpose = r.purpose,
				  .signed_at = r.request_signed_at,
				  .body_sha256 = r.request_body_sha256};
	if (exchange_canon_request(&cq, &canon) || exchange_es256_sign(s->key, canon.data, canon.len, p->req_sig))
		goto out;
	cr = (exchange_canon_resp){.message_id = r.message_id,
				   .service = r.service,
				   .content_type = r.response_content_type,
				   .request_sig = p->req_sig,
				   .signed_at = r.response_signed_at,
				   .body_sha256 = r.response_body_sha256,
				   .status = r.status};
	if (exchange_canon_response(&cr, &canon) || exchange_es256_sign(s->key, canon.data, canon.len, p->resp_sig))
		goto out;
	rc = 0;
out:
	buf_release(&canon);
	return rc;
}

static void *producer_main(void *arg)
{
	producer *pr = arg;
	shared *s = pr->s;
	exchange_log_rec r;
	int64_t t0;
	int i;

	for (i = 0; i < s->presign; i++)
		if (presign(s, &pr->recs[i]))
			atomic_fetch_add(&s->failed, 1);
	pthread_barrier_wait(&s->ready);
	for (i = 0; i < s->presign && !atomic_load(&s->stop); i++) {
		fill_rec(s, &pr->recs[i], &r);
		t0 = time_mono_us();
		if (exchange_log_append(&r) == EGOV_OK) {
			pr->lat_us[pr->n++] = time_mono_us() - t0;
			atomic_fetch_add(&s->appended, 1);
		} else {
			atomic_fetch_add(&s->failed, 1);
		}
	}
	return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* A self-signed P-256 certificate for key, kept with the log. */
static int make_cert(shared *s)
{
	X509 *x = X509_new();
	BIO *b = BIO_new(BIO_s_mem());
	unsigned char *der = NULL;
	char *pem = NULL, *p = NULL;
	long n;
	int dlen, rc = -1;

	if (!x || !b || !(s->key = EVP_EC_gen("P-256")))
		goto out;
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, s->key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)"bench", -1,
				   -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	if (X509_sign(x, s->key, EVP_sha256()) <= 0 || PEM_write_bio_X509(b, x) != 1 ||
	    (n = BIO_get_mem_data(b, &p)) <= 0 || !(pem = strndup(p, (size_t)n)) || (dlen = i2d_X509(x, &der)) <= 0)
		goto out;
	crypto_sha256_hex(der, (size_t)dlen, s->cert_sha);
	if (exchange_log_cert(s->cert_sha, pem))
		goto out;
	rc = 0;
out:
	OPENSSL_free(der);
	free(pem);
	BIO_free(b);
	X509_free(x);
	return rc;
}

int main(int argc, char **argv)
{
	long long producers = 64, seconds = 5, body_bytes = 1024;
	int64_t rec0, bat0, rec1, bat1, total = 0, k = 0, j;
	exlog_verify_result res;
	producer *prs = NULL;
	int64_t *all = NULL;
	shared s = {0};
	egov_config cfg;
	char msg[256] = "";
	const db_migration *m;
	db_conn *c = NULL;
	db *d = NULL;
	double t0, t1;
	size_t nm = 0;
	int i, rc = 1;
	bool started = false;

	config_init(&cfg);
	if (argc < 2 || argc > 6 || (argc > 2 && parse_count(argv[2], 1, 1024, &producers)) ||
	    (argc > 3 && parse_count(argv[3], 1, 600, &seconds)) ||
	    (argc > 4 && parse_count(argv[4], 0, 1 << 20, &body_bytes)) ||
	    (argc > 5 && strcmp(argv[5], "full") != 0 && strcmp(argv[5], "digest") != 0)) {
		fprintf(stderr, "usage: %s DBURL [producers] [seconds] [body_bytes] [full|digest]\n", argv[0]);
		return 2;
	}
	s.full = argc <= 5 || strcmp(argv[5], "full") == 0;
	s.presign = PRESIGN_MAX;
	if (db_open(argv[1], &d, msg, sizeof msg) || db_conn_open(d, &c)) {
		fprintf(stderr, "exchange_log_bench: cannot open %s: %s\n", argv[1], msg);
		goto out;
	}
	m = exlog_migrations(&nm);
	if (db_migrate(c, "exchange_log", m, nm, NULL)) {
		fprintf(stderr, "exchange_log_bench: migrate: %s\n", db_conn_errmsg(c));
		goto out;
	}
	/* No TSA here: the sealer would only fail; an hour keeps it quiet. */
	if (config_set(&cfg, "exchange.timestamp_interval_s", "3600", msg, sizeof msg) ||
	    config_set(&cfg, "exchange.timestamp_grace_s", "3600", msg, sizeof msg) ||
	    exchange_log_start(d, &cfg)) {
		fprintf(stderr, "exchange_log_bench: cannot start the log\n");
		goto out;
	}
	started = true;
	if (make_cert(&s)) {
		fprintf(stderr, "exchange_log_bench: cannot make a signing key\n");
		goto out;
	}
	if (!(s.body = malloc((size_t)body_bytes + 1)))
		goto out;
	for (j = 0; j < body_bytes; j++)
		s.body[j] = (char)('a' + j % 26);
	s.body_len = (size_t)body_bytes;
	crypto_sha256_hex(s.body, s.body_len, s.body_sha);

	prs = calloc((size_t)producers, sizeof *prs);
	if (!prs || pthread_barrier_init(&s.ready, NULL, (unsigned)producers + 1))
		goto out;
	for (i = 0; i < producers; i++) {
		prs[i].s = &s;
		prs[i].recs = calloc(PRESIGN_MAX, sizeof *prs[i].recs);
		prs[i].lat_us = calloc(PRESIGN_MAX, sizeof *prs[i].lat_us);
		if (!prs[i].recs || !prs[i].lat_us || pthread_create(&prs[i].th, NULL, producer_main, &prs[i]))
			goto out;
	}
	pthread_barrier_wait(&s.ready);
	exlog_stats(&rec0, &bat0);
	t0 = now_s();
	{
		struct timespec pause = {(time_t)seconds, 0};
		nanosleep(&pause, NULL);
	}
	atomic_store(&s.stop, true);
	for (i = 0; i < producers; i++)
		pthread_join(prs[i].th, NULL);
	t1 = now_s();
	exlog_stats(&rec1, &bat1);
	for (i = 0; i < producers; i++)
		total += prs[i].n;
	if (!(all = malloc((size_t)(total ? total : 1) * sizeof *all)))
		goto out;
	for (i = 0; i < producers; i++)
		for (j = 0; j < prs[i].n; j++)
			all[k++] = prs[i].lat_us[j];
	qsort(all, (size_t)total, sizeof *all, cmp_i64);
	printf("exchange_log.append durable_records_per_s=%.0f producers=%lld seconds=%.2f records=%" PRId64
	       " failed=%" PRIdFAST64 " avg_batch=%.1f p50_ms=%.2f p99_ms=%.2f body_bytes=%lld mode=%s backend=%s\n",
	       (double)total / (t1 - t0), producers, t1 - t0, total, atomic_load(&s.failed),
	       bat1 > bat0 ? (double)(rec1 - rec0) / (double)(bat1 - bat0) : 0.0,
	       total ? (double)all[total / 2] / 1000.0 : 0.0, total ? (double)all[total * 99 / 100] / 1000.0 : 0.0,
	       body_bytes, s.full ? "full" : "digest", db_kind_name(d));
	if (atomic_load(&s.failed)) {
		fprintf(stderr, "exchange_log_bench: appends failed\n");
		goto out;
	}

	t0 = now_s();
	if (exlog_verify_db(d, NULL, &res)) {
		fprintf(stderr, "exchange_log_bench: verify could not read the log\n");
		goto out;
	}
	t1 = now_s();
	printf("exchange_log.verify records=%" PRId64 " signatures=%" PRId64 " seconds=%.2f records_per_s=%.0f ok=%d\n",
	       res.records, res.signatures, t1 - t0, (double)res.records / (t1 - t0),
	       res.fault == EXLOG_FAULT_NONE && res.sig_bad == 0);
	rc = res.fault == EXLOG_FAULT_NONE && res.sig_bad == 0 ? 0 : 1;
out:
	if (started)
		exchange_log_stop();
	for (i = 0; prs && i < producers; i++) {
		free(prs[i].recs);
		free(prs[i].lat_us);
	}
	free(prs);
	free(all);
	free(s.body);
	EVP_PKEY_free(s.key);
	if (c)
		db_conn_close(c);
	db_close(d);
	config_release(&cfg);
	return rc;
}
