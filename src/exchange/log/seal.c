/*
 * seal.c: the message log's sealer: a job that, while records are
 * unsealed, asks the TSA of the global configuration for an RFC 3161
 * timestamp over the chain head every exchange.timestamp_interval_s and
 * keeps the token in exchange_log_seal, and the overdue flag the gateway
 * asks on every request.
 *
 * Invariants:
 * - The sealer's settings are set by exlog_sealer_open() (from
 *   exchange_log_start) under g_lifecycle's write side and read under its
 *   read side, so a stop waits for a pass or a seal in progress.
 * - One seal at a time (seal_mu): the job's, or exlog_seal_now()'s on a
 *   connection of its own.
 * - g_overdue is an atomic flag the job refreshes every second, because
 *   the gateway reads it on every request; a read failure leaves it as it
 *   was. It is computed once at open already.
 * - Another process sharing the database may seal the same head: the
 *   UNIQUE last_seq makes the second insert a no-op.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ts.h>
#include <openssl/x509.h>

#include "core/crypto.h"
#include "core/httpc.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "exchange/conf/conf.h"
#include "exchange/log/exlog_int.h"
#include "core/banned.h"

#define EXLOG_TSA_TIMEOUT_MS 10000

/* How long the TSA may take to answer. */
#define EXLOG_TSA_TIMEOUT_MS 10000
/* How often the overdue flag is refreshed. */
#define OVERDUE_REFRESH_MS 1000

typedef struct sealer {
	bool open;
	db *d;
	pthread_mutex_t seal_mu; /* one seal at a time: last_attempt_us, warned */
	int interval_s, grace_s;
	char anchor[4096]; /* PEM bundle seals chain to, "" if none */
	int64_t last_attempt_us;
	bool warned;
} sealer;

static sealer g = {.seal_mu = PTHREAD_MUTEX_INITIALIZER};
/* Read-held by a pass and exlog_seal_now(), write-held by open and close. */
static pthread_rwlock_t g_lifecycle = PTHREAD_RWLOCK_INITIALIZER;
static atomic_bool g_overdue;
static _Atomic int64_t g_seals, g_seal_failures, g_unsealed;

static egov_err sealed_to(db_conn *c, int64_t *seq)
{
	bool found = false;

	*seq = 0;
	return db_query_int(c, "SELECT COALESCE(MAX(last_seq), 0) FROM exchange_log_seal", NULL, 0, seq, &found);
}

static ASN1_INTEGER *random_nonce(void)
{
	unsigned char b[8];
	ASN1_INTEGER *n = NULL;
	BIGNUM *bn = NULL;

	if (crypto_random(b, sizeof b))
		return NULL;
	b[0] &= 0x7f;
	if ((bn = BN_bin2bn(b, sizeof b, NULL)))
		n = BN_to_ASN1_INTEGER(bn, NULL);
	BN_free(bn);
	return n;
}

/* A TimeStampReq (DER) over SHA-256 of hash, with a nonce and cert_req. */
static egov_err make_ts_req(const unsigned char hash[EXLOG_HASH_LEN], TS_REQ **out, unsigned char **der, int *len)
{
	unsigned char md[32];
	TS_REQ *q = TS_REQ_new();
	TS_MSG_IMPRINT *mi = TS_MSG_IMPRINT_new();
	X509_ALGOR *alg = X509_ALGOR_new();
	ASN1_INTEGER *nonce = random_nonce();
	egov_err err = EGOV_ENOMEM;

	crypto_sha256(hash, EXLOG_HASH_LEN, md);
	if (!q || !mi || !alg || !nonce)
		goto out;
	if (!X509_ALGOR_set0(alg, OBJ_nid2obj(NID_sha256), V_ASN1_NULL, NULL) || !TS_MSG_IMPRINT_set_algo(mi, alg) ||
	    !TS_MSG_IMPRINT_set_msg(mi, md, sizeof md) || !TS_REQ_set_version(q, 1) ||
	    !TS_REQ_set_msg_imprint(q, mi) || !TS_REQ_set_nonce(q, nonce) || !TS_REQ_set_cert_req(q, 1))
		goto out;
	*der = NULL;
	if ((*len = i2d_TS_REQ(q, der)) <= 0)
		goto out;
	*out = q;
	q = NULL;
	err = EGOV_OK;
out:
	ASN1_INTEGER_free(nonce);
	X509_ALGOR_free(alg);
	TS_MSG_IMPRINT_free(mi);
	TS_REQ_free(q);
	return err;
}

/* Checks a TSA reply against the request (granted, version, imprint, nonce,
 * and with an anchor the signature) and returns the token's DER. */
static egov_err check_ts_reply(TS_REQ *q, const void *reply, size_t len, const char *anchor, unsigned char **tok,
			       int *tok_len, char *why, size_t whylen)
{
	const unsigned char *p = reply;
	TS_RESP *resp = NULL;
	TS_VERIFY_CTX *v = NULL;
	X509_STORE *store = NULL;
	egov_err err = EGOV_EAUTH;

	if (!(resp = d2i_TS_RESP(NULL, &p, (long)len))) {
		snprintf(why, whylen, "the TSA's reply is not a TimeStampResp");
		goto out;
	}
	if (ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(TS_RESP_get_status_info(resp))) != TS_STATUS_GRANTED ||
	    !TS_RESP_get_token(resp)) {
		snprintf(why, whylen, "the TSA refused the request");
		err = EGOV_EUNAVAILABLE;
		goto out;
	}
	err = EGOV_ENOMEM;
	if (!(v = TS_REQ_to_TS_VERIFY_CTX(q, NULL)))
		goto out;
	if (anchor && *anchor) {
		if (!(store = X509_STORE_new()) || X509_STORE_load_file(store, anchor) != 1) {
			snprintf(why, whylen, "cannot read the anchor %.160s", anchor);
			err = EGOV_EIO;
			goto out;
		}
		X509_STORE_set_purpose(store, X509_PURPOSE_TIMESTAMP_SIGN);
		/* Any certificate of the bundle is a trust anchor (a gateway
		 * may be given the issuing CA rather than the root). */
		X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
		TS_VERIFY_CTX_add_flags(v, TS_VFY_SIGNATURE);
		TS_VERIFY_CTX_set_store(v, store);
		store = NULL; /* the context owns it now */
	}
	if (TS_RESP_verify_response(v, resp) != 1) {
		snprintf(why, whylen, "the TSA's token does not match the request or does not verify");
		err = EGOV_EAUTH;
		goto out;
	}
	*tok = NULL;
	if ((*tok_len = i2d_PKCS7(TS_RESP_get_token(resp), tok)) <= 0)
		goto out;
	err = EGOV_OK;
out:
	ERR_clear_error();
	X509_STORE_free(store);
	TS_VERIFY_CTX_free(v);
	TS_RESP_free(resp);
	return err;
}

static egov_err post_ts_req(const char *tsa_url, const char *anchor, const unsigned char *der, int len,
			    httpc_response *resp, char *why, size_t whylen)
{
	httpc_request rq = {
		.method = "POST",
		.url = tsa_url,
		.headers = {"Content-Type: application/timestamp-query", "Accept: application/timestamp-reply", NULL},
		.body = der,
		.body_len = (size_t)len,
		.timeout_ms = EXLOG_TSA_TIMEOUT_MS,
		.response_max = EXLOG_TSA_REPLY_MAX,
		.ca_file = strncmp(tsa_url, "https:", 6) == 0 && anchor && *anchor ? anchor : NULL,
	};
	egov_err err = httpc_send_sync(&rq, resp);

	if (!err)
		err = resp->err;
	if (err) {
		snprintf(why, whylen, "cannot reach the TSA at %.100s: %.100s", tsa_url, resp->errmsg);
		return EGOV_EUNAVAILABLE;
	}
	if (resp->status != 200) {
		snprintf(why, whylen, "the TSA at %.160s answered %d", tsa_url, resp->status);
		return EGOV_EUNAVAILABLE;
	}
	return EGOV_OK;
}

static egov_err seal_locked(sealer *l, db_conn *conn, const char *tsa_url, int64_t *last_seq, char *why, size_t whylen)
{
	unsigned char hash[EXLOG_HASH_LEN], *qder = NULL, *tok = NULL;
	char hex[EXLOG_HEX_LEN + 1], now[32];
	httpc_response resp;
	bool have_resp = false;
	int64_t head = 0, from = 0;
	TS_REQ *q = NULL;
	int qlen = 0, tlen = 0;
	egov_err err;

	memset(&resp, 0, sizeof resp);
	why[0] = '\0';
	if ((err = sealed_to(conn, &from)) || (err = chainlog_head(&exlog_chain, conn, &head, hash)))
		goto out;
	*last_seq = from;
	if (head <= from)
		goto out;
	if (!tsa_url || !*tsa_url) {
		snprintf(why, whylen, "no TSA: the global configuration names none");
		err = EGOV_EUNAVAILABLE;
		goto out;
	}
	if ((err = make_ts_req(hash, &q, &qder, &qlen)))
		goto out;
	have_resp = true;
	if ((err = post_ts_req(tsa_url, l->anchor, qder, qlen, &resp, why, whylen)) ||
	    (err = check_ts_reply(q, resp.body.data, resp.body.len, l->anchor, &tok, &tlen, why, whylen)))
		goto out;
	exlog_hex(hash, hex);
	time_format_rfc3339(time_now_us(), 6, now);
	{
		db_param p[] = {DBP_I(from + 1), DBP_I(head), DBP_S(hex), DBP_B(tok, (size_t)tlen), DBP_S(now)};
		err = db_exec(conn,
			      "INSERT INTO exchange_log_seal(first_seq, last_seq, head_hash, token, time)"
			      " VALUES (?, ?, ?, ?, ?)",
			      p, 5, NULL);
		/* Another process sharing the database sealed this head. */
		if (err == EGOV_ECONFLICT)
			err = EGOV_OK;
	}
	if (!err)
		*last_seq = head;
out:
	if (have_resp)
		httpc_response_release(&resp);
	OPENSSL_free(tok);
	OPENSSL_free(qder);
	TS_REQ_free(q);
	return err;
}

static void refresh_overdue(const sealer *l, db_conn *conn);

egov_err exlog_seal_now(const char *tsa_url, int64_t *last_seq)
{
	char why[256];
	int64_t seq = 0;
	db_conn *conn = NULL;
	egov_err err = EGOV_EUNAVAILABLE;

	why[0] = '\0';
	pthread_rwlock_rdlock(&g_lifecycle);
	if (g.open && !(err = db_conn_open(g.d, &conn))) {
		pthread_mutex_lock(&g.seal_mu);
		err = seal_locked(&g, conn, tsa_url, &seq, why, sizeof why);
		if (!err)
			refresh_overdue(&g, conn);
		pthread_mutex_unlock(&g.seal_mu);
		db_conn_close(conn);
	}
	pthread_rwlock_unlock(&g_lifecycle);
	if (err == EGOV_OK) {
		atomic_fetch_add(&g_seals, 1);
	} else {
		atomic_fetch_add(&g_seal_failures, 1);
		log_warn("exchange.log.seal", "sealing the message log failed: %s (%s)", egov_err_name(err), why);
	}
	if (last_seq)
		*last_seq = seq;
	return err;
}

/* Refreshes the overdue flag and the unsealed count from the database:
 * overdue when the oldest unsealed record is older than the grace period. */
static void refresh_overdue(const sealer *l, db_conn *conn)
{
	int64_t from = 0, head = 0, t = 0;
	bool found = false;
	char *oldest = NULL;
	db_param p[1];

	if (sealed_to(conn, &from) ||
	    db_query_int(conn, "SELECT COALESCE(MAX(seq), 0) FROM exchange_log", NULL, 0, &head, &found))
		return; /* a read failure leaves the flag as it was */
	atomic_store(&g_unsealed, head > from ? head - from : 0);
	if (head <= from) {
		atomic_store(&g_overdue, false);
		return;
	}
	p[0] = DBP_I(from);
	if (db_query_text(conn, "SELECT time FROM exchange_log WHERE seq > ? ORDER BY seq LIMIT 1", p, 1,
			  &oldest) == EGOV_OK &&
	    oldest && time_parse_rfc3339(oldest, &t) == EGOV_OK)
		atomic_store(&g_overdue, time_now_us() - t > (int64_t)l->grace_s * 1000000);
	free(oldest);
}

static char *conf_tsa_url(void)
{
	const char *why = NULL;
	exchange_conf *cf = exchange_conf_get(&why);
	char *url = NULL;

	if (cf) {
		url = strdup(exchange_conf_tsa_url(cf));
		exchange_conf_put(cf);
	}
	return url;
}

/* One pass of the sealer job: the flag, and a seal when one is due. */
static int64_t sealer_pass(job_ctx *j)
{
	char why[256];
	int64_t seq = 0, now = time_mono_us();
	db_conn *conn;
	char *url;
	egov_err err;

	pthread_rwlock_rdlock(&g_lifecycle);
	if (!g.open) {
		pthread_rwlock_unlock(&g_lifecycle);
		return -1; /* no log on this node (yet): until woken */
	}
	if ((err = job_conn(j, &conn))) {
		pthread_rwlock_unlock(&g_lifecycle);
		job_fail(j, err, "cannot reach the database of the message log");
		return -1;
	}
	pthread_mutex_lock(&g.seal_mu);
	refresh_overdue(&g, conn);
	if (atomic_load(&g_unsealed) > 0 &&
	    (g.last_attempt_us == 0 || now - g.last_attempt_us >= (int64_t)g.interval_s * 1000000)) {
		g.last_attempt_us = now;
		url = conf_tsa_url();
		err = seal_locked(&g, conn, url, &seq, why, sizeof why);
		free(url);
		if (err) {
			atomic_fetch_add(&g_seal_failures, 1);
			/* Once per outage, not every interval. */
			if (!g.warned)
				log_warn("exchange.log.seal", "sealing the message log failed: %s (%s)", egov_err_name(err),
					 why);
			g.warned = true;
		} else {
			atomic_fetch_add(&g_seals, 1);
			if (g.warned)
				log_info("exchange.log.seal", "the message log is sealed again up to %" PRId64, seq);
			g.warned = false;
			refresh_overdue(&g, conn);
		}
	}
	pthread_mutex_unlock(&g.seal_mu);
	pthread_rwlock_unlock(&g_lifecycle);
	return OVERDUE_REFRESH_MS;
}

const job exlog_sealer_job = {.name = "exchange.log.seal", .run = sealer_pass};

bool exchange_log_sealing_overdue(void)
{
	return atomic_load(&g_overdue);
}

egov_err exlog_seal_metrics(buf *out)
{
	egov_err err;

	if ((err = metrics_write_header(out, "egov_exchange_log_seals_total", "counter",
					"RFC 3161 seals of the message log, by result")) ||
	    (err = buf_addf(out, "egov_exchange_log_seals_total{result=\"ok\"} %" PRId64 "\n", atomic_load(&g_seals))) ||
	    (err = buf_addf(out, "egov_exchange_log_seals_total{result=\"failed\"} %" PRId64 "\n",
			    atomic_load(&g_seal_failures))) ||
	    (err = metrics_write_header(out, "egov_exchange_log_unsealed_records", "gauge",
					"Records not yet covered by a seal")) ||
	    (err = buf_addf(out, "egov_exchange_log_unsealed_records %" PRId64 "\n", atomic_load(&g_unsealed))) ||
	    (err = metrics_write_header(out, "egov_exchange_log_sealing_overdue", "gauge",
					"1 while new exchanges are refused for want of a seal")) ||
	    (err = buf_addf(out, "egov_exchange_log_sealing_overdue %d\n", atomic_load(&g_overdue) ? 1 : 0)))
		return err;
	return EGOV_OK;
}

/* ---- lifecycle ------------------------------------------------------------------- */

egov_err exlog_sealer_open(db *d, int interval_s, int grace_s, const char *anchor)
{
	db_conn *conn = NULL;
	egov_err err;

	pthread_rwlock_wrlock(&g_lifecycle);
	err = EGOV_ECONFLICT;
	if (g.open)
		goto out;
	g.d = d;
	g.interval_s = interval_s;
	g.grace_s = grace_s;
	g.last_attempt_us = 0;
	g.warned = false;
	snprintf(g.anchor, sizeof g.anchor, "%s", anchor ? anchor : "");
	/* The flag is right from the start, before the first pass. */
	if ((err = db_conn_open(d, &conn)))
		goto out;
	refresh_overdue(&g, conn);
	db_conn_close(conn);
	g.open = true;
out:
	pthread_rwlock_unlock(&g_lifecycle);
	if (!err)
		job_wake(&exlog_sealer_job);
	return err;
}

void exlog_sealer_close(void)
{
	pthread_rwlock_wrlock(&g_lifecycle);
	g.open = false;
	g.d = NULL;
	atomic_store(&g_overdue, false);
	pthread_rwlock_unlock(&g_lifecycle);
}
