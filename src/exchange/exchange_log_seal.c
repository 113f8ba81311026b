/*
 * exchange_log_seal.c: the message log's sealer: a thread that, while
 * records are unsealed, asks the TSA of the global configuration for an
 * RFC 3161 timestamp over the chain head every exchange.timestamp_interval_s
 * and keeps the token in exchange_log_seal, and the overdue flag the
 * gateway asks on every request.
 *
 * Invariants:
 * - The sealer has its own connection; one seal at a time (seal_mu), from
 *   the thread or exlog_seal_now().
 * - g_overdue is an atomic flag the sealer refreshes every second, because
 *   the gateway reads it on every request; a read failure leaves it as it
 *   was.
 * - Another process sharing the database may seal the same head: the
 *   UNIQUE last_seq makes the second insert a no-op.
 */
#include <errno.h>
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
#include "exchange/exchange_int.h"
#include "exchange/exchange_log_int.h"
#include "core/banned.h"

/* The TSA's answer is a few kilobytes; more is not a timestamp reply. */
#define EXLOG_TSA_REPLY_MAX (64 * 1024)
#define EXLOG_TSA_TIMEOUT_MS 10000

typedef struct sealer {
	db_conn *conn;
	pthread_t thread;
	bool started;
	pthread_mutex_t seal_mu; /* one seal at a time: conn, last_attempt_us, warned */
	pthread_mutex_t mu;      /* closing */
	pthread_cond_t cv;
	bool closing;
	int interval_s, grace_s;
	char anchor[4096]; /* PEM bundle seals chain to, "" if none */
	int64_t last_attempt_us;
	bool warned;
} sealer;

static sealer *g_sealer;
/* Read-held by exlog_seal_now(), write-held by start and stop. */
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

static egov_err seal_locked(sealer *l, const char *tsa_url, int64_t *last_seq, char *why, size_t whylen)
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
	if ((err = sealed_to(l->conn, &from)) || (err = chainlog_head(&exlog_chain, l->conn, &head, hash)))
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
		err = db_exec(l->conn,
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

static void refresh_overdue(sealer *l);

egov_err exlog_seal_now(const char *tsa_url, int64_t *last_seq)
{
	char why[256];
	int64_t seq = 0;
	sealer *l;
	egov_err err = EGOV_EUNAVAILABLE;

	why[0] = '\0';
	pthread_rwlock_rdlock(&g_lifecycle);
	l = g_sealer;
	if (l) {
		pthread_mutex_lock(&l->seal_mu);
		err = seal_locked(l, tsa_url, &seq, why, sizeof why);
		if (!err)
			refresh_overdue(l);
		pthread_mutex_unlock(&l->seal_mu);
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
static void refresh_overdue(sealer *l)
{
	int64_t from = 0, head = 0, t = 0;
	bool found = false;
	char *oldest = NULL;
	db_param p[1];

	if (sealed_to(l->conn, &from) ||
	    db_query_int(l->conn, "SELECT COALESCE(MAX(seq), 0) FROM exchange_log", NULL, 0, &head, &found))
		return; /* a read failure leaves the flag as it was */
	atomic_store(&g_unsealed, head > from ? head - from : 0);
	if (head <= from) {
		atomic_store(&g_overdue, false);
		return;
	}
	p[0] = DBP_I(from);
	if (db_query_text(l->conn, "SELECT time FROM exchange_log WHERE seq > ? ORDER BY seq LIMIT 1", p, 1,
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

static void *sealer_main(void *arg)
{
	struct timespec until;
	char why[256];
	int64_t seq = 0, now, deadline;
	sealer *l = arg;
	char *url;
	egov_err err;

	pthread_mutex_lock(&l->mu);
	while (!l->closing) {
		pthread_mutex_unlock(&l->mu);
		now = time_mono_us();
		pthread_mutex_lock(&l->seal_mu);
		refresh_overdue(l);
		if (atomic_load(&g_unsealed) > 0 &&
		    (l->last_attempt_us == 0 || now - l->last_attempt_us >= (int64_t)l->interval_s * 1000000)) {
			l->last_attempt_us = now;
			url = conf_tsa_url();
			err = seal_locked(l, url, &seq, why, sizeof why);
			free(url);
			if (err) {
				atomic_fetch_add(&g_seal_failures, 1);
				/* Once per outage, not every interval. */
				if (!l->warned)
					log_warn("exchange.log.seal", "sealing the message log failed: %s (%s)",
						 egov_err_name(err), why);
				l->warned = true;
			} else {
				atomic_fetch_add(&g_seals, 1);
				if (l->warned)
					log_info("exchange.log.seal", "the message log is sealed again up to %" PRId64,
						 seq);
				l->warned = false;
				refresh_overdue(l);
			}
		}
		pthread_mutex_unlock(&l->seal_mu);

		pthread_mutex_lock(&l->mu);
		deadline = time_mono_us() + 1000000;
		until.tv_sec = (time_t)(deadline / 1000000);
		until.tv_nsec = (long)(deadline % 1000000) * 1000;
		while (!l->closing)
			if (pthread_cond_timedwait(&l->cv, &l->mu, &until) == ETIMEDOUT)
				break;
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

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

static void sealer_free(sealer *l)
{
	if (!l)
		return;
	if (l->conn)
		db_conn_close(l->conn);
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	pthread_mutex_destroy(&l->seal_mu);
	free(l);
}

egov_err exlog_sealer_start(db *d, int interval_s, int grace_s, const char *anchor)
{
	pthread_condattr_t attr;
	sealer *l = NULL;
	egov_err err = EGOV_ECONFLICT;

	pthread_rwlock_wrlock(&g_lifecycle);
	if (g_sealer)
		goto out;
	err = EGOV_ENOMEM;
	if (!(l = calloc(1, sizeof *l)))
		goto out;
	pthread_mutex_init(&l->seal_mu, NULL);
	pthread_mutex_init(&l->mu, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cv, &attr);
	pthread_condattr_destroy(&attr);
	l->interval_s = interval_s;
	l->grace_s = grace_s;
	snprintf(l->anchor, sizeof l->anchor, "%s", anchor ? anchor : "");
	if ((err = db_conn_open(d, &l->conn)))
		goto out;
	/* The flag is right from the start, before the first second passed. */
	refresh_overdue(l);
	err = EGOV_EINTERNAL;
	if (pthread_create(&l->thread, NULL, sealer_main, l) != 0)
		goto out;
	l->started = true;
	g_sealer = l;
	l = NULL;
	err = EGOV_OK;
out:
	sealer_free(l);
	pthread_rwlock_unlock(&g_lifecycle);
	return err;
}

void exlog_sealer_stop(void)
{
	sealer *l;

	pthread_rwlock_wrlock(&g_lifecycle);
	l = g_sealer;
	g_sealer = NULL;
	pthread_rwlock_unlock(&g_lifecycle);
	if (!l)
		return;
	pthread_mutex_lock(&l->mu);
	l->closing = true;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
	if (l->started)
		pthread_join(l->thread, NULL);
	atomic_store(&g_overdue, false);
	sealer_free(l);
}
