/*
 * log.c: the gateway's message log as a user of the kernel's
 * chain-log engine (core/chainlog.h): the log's descriptor, input checks,
 * appends, the certificates kept beside the records, start and stop,
 * /metrics, the schema and the module. The engine writes the chain (group
 * commit, the head read under the appenders' lock, a replay failing its
 * record alone); the sealer, the verifier, archives and the command are in
 * the files exlog.h lists.
 *
 * Invariants:
 * - Callers' records are copied (exchange_log_append_async returns at
 *   once) and their callbacks run on the writer's thread after COMMIT
 *   returned, never before.
 * - Certificates queued by exchange_log_cert() are taken by the writer
 *   after the records of a batch (certs_take), so every certificate queued
 *   before a record is inserted in that record's transaction or an
 *   earlier one: a record is never durable without the certificate needed
 *   to verify it.
 * - g_log is read under g_lifecycle's read side by every caller and
 *   replaced under its write side, so a stop waits for callers inside.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/app.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/module.h"
#include "core/utf8.h"
#include "exchange/log/exlog_int.h"
#include "core/banned.h"

static const chainlog_col exlog_cols[EXLOG_NCOLS] = {
	{"time", CHAINLOG_TIME},
	{"side", CHAINLOG_TEXT},
	{"message_id", CHAINLOG_TEXT},
	{"client", CHAINLOG_TEXT},
	{"service", CHAINLOG_TEXT},
	{"method", CHAINLOG_TEXT},
	{"path", CHAINLOG_TEXT},
	{"represented_party", CHAINLOG_TEXT},
	{"data_subject", CHAINLOG_TEXT},
	{"purpose", CHAINLOG_TEXT},
	{"status", CHAINLOG_INT},
	{"log_mode", CHAINLOG_TEXT},
	{"request_content_type", CHAINLOG_TEXT},
	{"request_signed_at", CHAINLOG_TEXT},
	{"request_sig", CHAINLOG_TEXT},
	{"request_signer_cert", CHAINLOG_TEXT},
	{"request_body_sha256", CHAINLOG_TEXT},
	{"response_content_type", CHAINLOG_TEXT},
	{"response_signed_at", CHAINLOG_TEXT},
	{"response_sig", CHAINLOG_TEXT},
	{"response_signer_cert", CHAINLOG_TEXT},
	{"response_body_sha256", CHAINLOG_TEXT},
	{"request_body", CHAINLOG_STORED},
	{"response_body", CHAINLOG_STORED},
};

static void *certs_take(void *user);
static egov_err certs_insert(db_conn *c, void *side, void *user);
static void certs_done(void *side, egov_err err, void *user);

const chainlog_desc exlog_chain = {
	.table = "exchange_log",
	.seq_col = "seq",
	.prev_col = "prev_hash",
	.hash_col = "hash",
	.cols = exlog_cols,
	.ncols = EXLOG_NCOLS,
	.log_event = "exchange.log",
	.what = "message log",
	/* Records and body bytes one transaction may carry: bound the time a
	 * batch holds the write lock and the writer's memory. */
	.batch_max = 4096,
	.batch_bytes = (size_t)32 << 20,
	/* Bytes waiting for the writer. Past this the database is not
	 * keeping up and callers get EGOV_EBUSY (the gateway answers 503)
	 * instead of the process growing without bound. */
	.queue_bytes_max = (size_t)512 << 20,
	/* 27 columns x 32 rows stays under every backend's parameter limit. */
	.insert_rows_max = 32,
	/* Bodies may be a megabyte each and PostgreSQL hands a whole result
	 * over at once, so pages are small. */
	.verify_page = 256,
	/* UNIQUE (side, client, message_id): a replay fails alone. */
	.conflict_fails_one = true,
	.side_take = certs_take,
	.side_insert = certs_insert,
	.side_done = certs_done,
};

typedef struct cert_pending {
	char sha256[EXLOG_HEX_LEN + 1];
	struct cert_pending *next;
	char pem[];
} cert_pending;

static chainlog *g_log;
/* Read-held by everything that uses g_log, write-held by start and stop,
 * so a stop waits for callers inside. */
static pthread_rwlock_t g_lifecycle = PTHREAD_RWLOCK_INITIALIZER;
/* Certificates waiting for the writer, and the hex SHA-256s known to be in
 * exchange_log_cert since the log started. */
static pthread_mutex_t g_cert_mu = PTHREAD_MUTEX_INITIALIZER;
static cert_pending *g_certs;
static char (*g_known)[EXLOG_HEX_LEN + 1];
static size_t g_nknown;
/* The counters of logs stopped earlier in this process (under
 * g_lifecycle): /metrics counts since the process started. */
static chainlog_stats g_base;
static atomic_bool g_metrics_added;

/* ---- the record and its hash --------------------------------------------------- */

void exlog_row_vals(const exlog_row *r, db_param v[EXLOG_NCOLS])
{
	v[0] = DBP_S(r->time);
	v[1] = DBP_S(r->side);
	v[2] = DBP_S(r->message_id);
	v[3] = DBP_S(r->client);
	v[4] = DBP_S(r->service);
	v[5] = DBP_S(r->method);
	v[6] = DBP_S(r->path);
	v[7] = DBP_S(r->represented_party);
	v[8] = DBP_S(r->data_subject);
	v[9] = DBP_S(r->purpose);
	v[10] = DBP_I(r->status);
	v[11] = DBP_S(r->log_mode);
	v[12] = DBP_S(r->request_content_type);
	v[13] = DBP_S(r->request_signed_at);
	v[14] = DBP_S(r->request_sig);
	v[15] = DBP_S(r->request_signer_cert);
	v[16] = DBP_S(r->request_body_sha256);
	v[17] = DBP_S(r->response_content_type);
	v[18] = DBP_S(r->response_signed_at);
	v[19] = DBP_S(r->response_sig);
	v[20] = DBP_S(r->response_signer_cert);
	v[21] = DBP_S(r->response_body_sha256);
	v[22] = r->request_body ? DBP_B(r->request_body, r->request_body_len) : DBP_NULLV;
	v[23] = r->response_body ? DBP_B(r->response_body, r->response_body_len) : DBP_NULLV;
}

static const char *text_of(const db_param *v)
{
	return v->type == DBP_TEXT && v->p ? v->p : "";
}

void exlog_row_from_chain(const chainlog_row *c, exlog_row *r)
{
	const db_param *v = c->vals;

	memset(r, 0, sizeof *r);
	r->seq = c->seq;
	r->time = text_of(&v[0]);
	r->side = text_of(&v[1]);
	r->message_id = text_of(&v[2]);
	r->client = text_of(&v[3]);
	r->service = text_of(&v[4]);
	r->method = text_of(&v[5]);
	r->path = text_of(&v[6]);
	r->represented_party = text_of(&v[7]);
	r->data_subject = text_of(&v[8]);
	r->purpose = text_of(&v[9]);
	r->status = v[10].i;
	r->log_mode = text_of(&v[11]);
	r->request_content_type = text_of(&v[12]);
	r->request_signed_at = text_of(&v[13]);
	r->request_sig = text_of(&v[14]);
	r->request_signer_cert = text_of(&v[15]);
	r->request_body_sha256 = text_of(&v[16]);
	r->response_content_type = text_of(&v[17]);
	r->response_signed_at = text_of(&v[18]);
	r->response_sig = text_of(&v[19]);
	r->response_signer_cert = text_of(&v[20]);
	r->response_body_sha256 = text_of(&v[21]);
	if (v[22].type == DBP_BLOB) {
		r->request_body = v[22].p ? v[22].p : "";
		r->request_body_len = v[22].len;
	}
	if (v[23].type == DBP_BLOB) {
		r->response_body = v[23].p ? v[23].p : "";
		r->response_body_len = v[23].len;
	}
	r->prev_hash = c->prev_hash ? c->prev_hash : "";
	r->hash = c->hash ? c->hash : "";
}

egov_err exlog_hash(void *evp_md_ctx, const unsigned char prev[EXLOG_HASH_LEN], const exlog_row *r,
		    unsigned char out[EXLOG_HASH_LEN])
{
	chainlog_hasher h = {.ctx = evp_md_ctx};
	db_param v[EXLOG_NCOLS];

	exlog_row_vals(r, v);
	return chainlog_hash(&exlog_chain, &h, prev, r->seq, v, NULL, out);
}

void exlog_hex(const unsigned char in[EXLOG_HASH_LEN], char out[EXLOG_HEX_LEN + 1])
{
	chainlog_hex_encode(in, out);
}

bool exlog_unhex(const char *hex, unsigned char out[EXLOG_HASH_LEN])
{
	return chainlog_hex_decode(hex, out);
}

/* ---- input checks ---------------------------------------------------------------- */

/* Printable UTF-8 of at most max bytes (empty allowed). Control characters
 * would let a value forge lines in the CLI's output; invalid UTF-8 would
 * make PostgreSQL refuse the whole batch this record shares. */
static bool valid_text(const char *s, size_t max)
{
	size_t n, i;

	if (!s)
		return true; /* NULL means "" */
	n = strnlen(s, max + 1);
	if (n > max)
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return utf8_valid(s, n);
}

static bool nonempty(const char *s)
{
	return s && *s;
}

static bool valid_sha256_hex(const char *s)
{
	unsigned char b[EXLOG_HASH_LEN];

	return exlog_unhex(s, b);
}

/* What is wrong with a record, or NULL. A refused record is a bug of the
 * caller, so the reason goes to the log. */
static const char *rec_problem(const exchange_log_rec *r)
{
	bool has_resp_sig = nonempty(r->response_sig);

	if (!r->side || (strcmp(r->side, "consumer") != 0 && strcmp(r->side, "provider") != 0))
		return "side";
	if (!nonempty(r->message_id) || !valid_text(r->message_id, EXLOG_TEXT_MAX))
		return "message_id";
	if (!nonempty(r->client) || !valid_text(r->client, EXLOG_TEXT_MAX))
		return "client";
	if (!nonempty(r->service) || !valid_text(r->service, EXLOG_TEXT_MAX))
		return "service";
	if (!nonempty(r->method) || !valid_text(r->method, 32))
		return "method";
	if (!nonempty(r->path) || !valid_text(r->path, EXLOG_PATH_MAX))
		return "path";
	if (!valid_text(r->represented_party, EXLOG_TEXT_MAX))
		return "represented_party";
	if (!valid_text(r->data_subject, EXLOG_TEXT_MAX))
		return "data_subject";
	if (!valid_text(r->purpose, EXLOG_TEXT_MAX))
		return "purpose";
	if (!valid_text(r->request_content_type, EXLOG_TEXT_MAX))
		return "request_content_type";
	if (!valid_text(r->response_content_type, EXLOG_TEXT_MAX))
		return "response_content_type";
	if (!nonempty(r->request_signed_at) || !valid_text(r->request_signed_at, 64))
		return "request_signed_at";
	if (!valid_text(r->response_signed_at, 64))
		return "response_signed_at";
	if (!nonempty(r->request_sig) || !valid_text(r->request_sig, EXLOG_SIG_MAX))
		return "request_sig";
	if (!valid_text(r->response_sig, EXLOG_SIG_MAX))
		return "response_sig";
	if (r->status < 100 || r->status > 599)
		return "status";
	if (!valid_sha256_hex(r->request_signer_cert))
		return "request_signer_cert";
	if (!valid_sha256_hex(r->request_body_sha256))
		return "request_body_sha256";
	/* A response the provider signed carries all of its parts; a failure
	 * logged without one carries none of the signature's, but always the
	 * digest of what was answered. */
	if (!valid_sha256_hex(r->response_body_sha256))
		return "response_body_sha256";
	if (has_resp_sig && !valid_sha256_hex(r->response_signer_cert))
		return "response_signer_cert";
	if (has_resp_sig && !nonempty(r->response_signed_at))
		return "response_signed_at";
	if (!has_resp_sig && (nonempty(r->response_signer_cert) || nonempty(r->response_signed_at)))
		return "response_sig";
	/* Full mode is a non-NULL body on either side (an empty one may be
	 * NULL there); a NULL body's length is ignored, so a caller may pass
	 * the lengths in digest mode too. */
	return NULL;
}

static const char *or_empty(const char *s)
{
	return s ? s : "";
}

/* The record's values in exlog_chain's order, pointing into rec: NULL
 * texts as "", the log mode from the bodies, and in full mode a body of
 * length 0 (or a NULL one beside a logged other side) as an empty blob. */
static void rec_vals(const exchange_log_rec *r, db_param v[EXLOG_NCOLS])
{
	bool full = r->request_body || r->response_body;
	const exlog_row row = {
		.time = "", /* the appender's */
		.side = r->side,
		.message_id = r->message_id,
		.client = r->client,
		.service = r->service,
		.method = r->method,
		.path = r->path,
		.represented_party = or_empty(r->represented_party),
		.data_subject = or_empty(r->data_subject),
		.purpose = or_empty(r->purpose),
		.status = r->status,
		.log_mode = full ? "full" : "digest",
		.request_content_type = or_empty(r->request_content_type),
		.request_signed_at = or_empty(r->request_signed_at),
		.request_sig = or_empty(r->request_sig),
		.request_signer_cert = or_empty(r->request_signer_cert),
		.request_body_sha256 = or_empty(r->request_body_sha256),
		.response_content_type = or_empty(r->response_content_type),
		.response_signed_at = or_empty(r->response_signed_at),
		.response_sig = or_empty(r->response_sig),
		.response_signer_cert = or_empty(r->response_signer_cert),
		.response_body_sha256 = or_empty(r->response_body_sha256),
		.request_body = full ? (r->request_body ? r->request_body : "") : NULL,
		.request_body_len = r->request_body ? r->request_body_len : 0,
		.response_body = full ? (r->response_body ? r->response_body : "") : NULL,
		.response_body_len = r->response_body ? r->response_body_len : 0,
	};

	exlog_row_vals(&row, v);
}

/* The record's values, or EGOV_EINVAL for a record that is refused (a bug
 * of the caller's, so the reason goes to the log). */
static egov_err checked_vals(const exchange_log_rec *rec, db_param v[EXLOG_NCOLS])
{
	const char *why;

	if (!rec)
		return EGOV_EINVAL;
	if ((why = rec_problem(rec))) {
		log_warn("exchange.log", "record refused: bad %s (message id %.64s)", why,
			 rec->message_id ? rec->message_id : "");
		return EGOV_EINVAL;
	}
	rec_vals(rec, v);
	return EGOV_OK;
}

/* ---- certificates kept beside the records ------------------------------------------ */

static void *certs_take(void *user)
{
	cert_pending *cp;

	(void)user;
	pthread_mutex_lock(&g_cert_mu);
	cp = g_certs;
	g_certs = NULL;
	pthread_mutex_unlock(&g_cert_mu);
	return cp;
}

static egov_err certs_insert(db_conn *c, void *side, void *user)
{
	cert_pending *cp = side;
	egov_err err = EGOV_OK;

	(void)user;
	for (; cp && !err; cp = cp->next) {
		db_param p[] = {DBP_S(cp->sha256), DBP_S(cp->pem)};
		err = db_exec(c, "INSERT INTO exchange_log_cert(sha256, pem) VALUES (?, ?) ON CONFLICT (sha256) DO NOTHING",
			      p, 2, NULL);
	}
	return err;
}

static void free_certs(cert_pending *cp)
{
	cert_pending *next;

	for (; cp; cp = next) {
		next = cp->next;
		free(cp);
	}
}

/* Remembers what was stored; what failed is dropped with its batch (the
 * gateway offers a signer's certificate again with each exchange). */
static void certs_done(void *side, egov_err err, void *user)
{
	cert_pending *cp;
	size_t i;

	(void)user;
	pthread_mutex_lock(&g_cert_mu);
	for (cp = side; cp && !err && g_known; cp = cp->next) {
		for (i = 0; i < g_nknown; i++)
			if (memcmp(g_known[i], cp->sha256, EXLOG_HEX_LEN) == 0)
				break;
		if (i == g_nknown && g_nknown < EXLOG_KNOWN_CERTS_MAX)
			memcpy(g_known[g_nknown++], cp->sha256, sizeof g_known[0]);
	}
	pthread_mutex_unlock(&g_cert_mu);
	free_certs(side);
}

egov_err exchange_log_cert(const char *sha256, const char *pem)
{
	cert_pending *cp = NULL;
	bool running = false, known = false;
	size_t i, n = 0;
	egov_err err = EGOV_EINVAL;

	if (!valid_sha256_hex(sha256) || !pem || (n = strnlen(pem, EXCHANGE_PEM_MAX + 1)) > EXCHANGE_PEM_MAX)
		goto out;
	pthread_rwlock_rdlock(&g_lifecycle);
	if (g_log) {
		running = true;
		pthread_mutex_lock(&g_cert_mu);
		for (i = 0; i < g_nknown && !known; i++)
			known = memcmp(g_known[i], sha256, EXLOG_HEX_LEN) == 0;
		pthread_mutex_unlock(&g_cert_mu);
	}
	pthread_rwlock_unlock(&g_lifecycle);
	err = running ? EGOV_OK : EGOV_EUNAVAILABLE;
	if (!running || known)
		goto out;
	err = EGOV_EINVAL;
	/* A certificate stored under the wrong hash would make every record
	 * that names it fail verification later; refuse it now. */
	if (!exchange_pem_matches(sha256, pem))
		goto out;
	err = EGOV_ENOMEM;
	if (!(cp = calloc(1, sizeof *cp + n + 1)))
		goto out;
	memcpy(cp->sha256, sha256, EXLOG_HEX_LEN + 1);
	memcpy(cp->pem, pem, n + 1);
	pthread_rwlock_rdlock(&g_lifecycle);
	err = EGOV_EUNAVAILABLE;
	if (g_log) {
		pthread_mutex_lock(&g_cert_mu);
		cp->next = g_certs;
		g_certs = cp;
		cp = NULL;
		pthread_mutex_unlock(&g_cert_mu);
		/* Stored even if no record follows soon. */
		chainlog_kick(g_log);
		err = EGOV_OK;
	}
	pthread_rwlock_unlock(&g_lifecycle);
out:
	free(cp);
	return err;
}

/* ---- appending ------------------------------------------------------------------------ */

egov_err exchange_log_append_async(const exchange_log_rec *rec, void (*done)(void *ctx, egov_err err), void *ctx)
{
	db_param v[EXLOG_NCOLS];
	egov_err err;

	if ((err = checked_vals(rec, v)))
		return err;
	pthread_rwlock_rdlock(&g_lifecycle);
	err = g_log ? chainlog_append_async(g_log, v, done, ctx) : EGOV_EUNAVAILABLE;
	pthread_rwlock_unlock(&g_lifecycle);
	return err;
}

egov_err exchange_log_append(const exchange_log_rec *rec)
{
	db_param v[EXLOG_NCOLS];
	egov_err err;

	if ((err = checked_vals(rec, v)))
		return err;
	pthread_rwlock_rdlock(&g_lifecycle);
	err = g_log ? chainlog_append(g_log, v, NULL) : EGOV_EUNAVAILABLE;
	pthread_rwlock_unlock(&g_lifecycle);
	return err;
}

/* g_base plus the running log's counters (g_lifecycle held). */
static void stats_locked(chainlog_stats *out)
{
	chainlog_stats st = {0};

	if (g_log)
		chainlog_stats_get(g_log, &st);
	out->batches = g_base.batches + st.batches;
	out->records = g_base.records + st.records;
	out->conflicts = g_base.conflicts + st.conflicts;
	out->failed = g_base.failed + st.failed;
	out->commit_us = g_base.commit_us + st.commit_us;
}

void exlog_stats(int64_t *records, int64_t *batches)
{
	chainlog_stats st;

	pthread_rwlock_rdlock(&g_lifecycle);
	stats_locked(&st);
	pthread_rwlock_unlock(&g_lifecycle);
	*records = st.records;
	*batches = st.batches;
}

/* ---- metrics ------------------------------------------------------------------------- */

static egov_err write_metrics(buf *out);

egov_err exchange_log_metrics(buf *out)
{
	return atomic_load(&g_metrics_added) ? write_metrics(out) : EGOV_OK;
}

static egov_err write_metrics(buf *out)
{
	chainlog_stats st;
	egov_err err;

	pthread_rwlock_rdlock(&g_lifecycle);
	stats_locked(&st);
	pthread_rwlock_unlock(&g_lifecycle);
	if ((err = metrics_write_header(out, "egov_exchange_log_records_total", "counter",
					"Exchanges appended to the message log")) ||
	    (err = buf_addf(out, "egov_exchange_log_records_total %" PRId64 "\n", st.records)) ||
	    (err = metrics_write_header(out, "egov_exchange_log_batches_total", "counter",
					"Message log transactions (group commits)")) ||
	    (err = buf_addf(out, "egov_exchange_log_batches_total %" PRId64 "\n", st.batches)) ||
	    (err = metrics_write_header(out, "egov_exchange_log_refused_total", "counter",
					"Message log appends refused, by reason")) ||
	    (err = buf_addf(out, "egov_exchange_log_refused_total{reason=\"replay\"} %" PRId64 "\n", st.conflicts)) ||
	    (err = buf_addf(out, "egov_exchange_log_refused_total{reason=\"error\"} %" PRId64 "\n", st.failed)))
		return err;
	return exlog_seal_metrics(out);
}

/* ---- lifecycle ------------------------------------------------------------------------ */

void exlog_default_anchor(const egov_config *cfg, char *out, size_t len)
{
	struct stat st;

	out[0] = '\0';
	if (cfg->peer_tls_ca && *cfg->peer_tls_ca) {
		if (stat(cfg->peer_tls_ca, &st) == 0)
			snprintf(out, len, "%s", cfg->peer_tls_ca);
		return;
	}
	if (cfg->data_dir && snprintf(out, len, "%s/pki/root.crt", cfg->data_dir) < (int)len && stat(out, &st) == 0)
		return;
	out[0] = '\0';
}

egov_err exchange_log_start(db *d, const egov_config *cfg)
{
	const exchange_config *xc = exchange_settings(cfg);
	char anchor[4096];
	chainlog *l = NULL;
	egov_err err = EGOV_EINVAL;

	if (!d || !cfg)
		return err;
	pthread_rwlock_wrlock(&g_lifecycle);
	err = EGOV_ECONFLICT;
	if (g_log)
		goto out;
	err = EGOV_ENOMEM;
	pthread_mutex_lock(&g_cert_mu);
	free(g_known);
	g_nknown = 0;
	g_known = calloc(EXLOG_KNOWN_CERTS_MAX, sizeof *g_known);
	pthread_mutex_unlock(&g_cert_mu);
	if (!g_known)
		goto out;
	/* A missing table or a corrupt head fails the start, not a caller. */
	if ((err = chainlog_open(&exlog_chain, d, NULL, &l)))
		goto out;
	exlog_default_anchor(cfg, anchor, sizeof anchor);
	if ((err = exlog_sealer_open(d, xc->timestamp_interval_s > 0 ? xc->timestamp_interval_s : 1,
				     xc->timestamp_grace_s > 0 ? xc->timestamp_grace_s : 1, anchor)))
		goto out;
	atomic_store(&g_metrics_added, true); /* on /metrics from now on */
	g_log = l;
	l = NULL;
out:
	chainlog_close(l);
	pthread_rwlock_unlock(&g_lifecycle);
	return err;
}

void exchange_log_stop(void)
{
	chainlog_stats st;
	chainlog *l;

	/* The sealer first: it reads the head the writer extends. */
	exlog_sealer_close();
	pthread_rwlock_wrlock(&g_lifecycle);
	l = g_log;
	g_log = NULL;
	pthread_rwlock_unlock(&g_lifecycle);
	if (!l)
		return;
	/* The writer drains the queue before it stops: every record queued
	 * before the stop is committed (or failed) and its caller told. */
	chainlog_stop(l);
	chainlog_stats_get(l, &st);
	chainlog_close(l);
	pthread_rwlock_wrlock(&g_lifecycle);
	g_base.batches += st.batches;
	g_base.records += st.records;
	g_base.conflicts += st.conflicts;
	g_base.failed += st.failed;
	g_base.commit_us += st.commit_us;
	pthread_mutex_lock(&g_cert_mu);
	free_certs(g_certs);
	g_certs = NULL;
	free(g_known);
	g_known = NULL;
	g_nknown = 0;
	pthread_mutex_unlock(&g_cert_mu);
	pthread_rwlock_unlock(&g_lifecycle);
}

/* ---- schema and module ---------------------------------------------------------- */

/* Texts NOT NULL ("" for absent), bodies NULL in digest mode. SQLite gets
 * INTEGER PRIMARY KEY (the rowid) so rows append to the table's b-tree. */
#define EXLOG_COLUMNS(SEQ, BLOB)                                                                              \
	" seq " SEQ " PRIMARY KEY, time TEXT NOT NULL, side TEXT NOT NULL, message_id TEXT NOT NULL,"          \
	" client TEXT NOT NULL, service TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL,"              \
	" represented_party TEXT NOT NULL, data_subject TEXT NOT NULL, purpose TEXT NOT NULL,"                \
	" status INTEGER NOT NULL, log_mode TEXT NOT NULL, request_content_type TEXT NOT NULL,"               \
	" request_signed_at TEXT NOT NULL, request_sig TEXT NOT NULL, request_signer_cert TEXT NOT NULL,"      \
	" request_body_sha256 TEXT NOT NULL, request_body " BLOB ", response_content_type TEXT NOT NULL,"      \
	" response_signed_at TEXT NOT NULL, response_sig TEXT NOT NULL, response_signer_cert TEXT NOT NULL,"   \
	" response_body_sha256 TEXT NOT NULL, response_body " BLOB ", prev_hash TEXT NOT NULL,"               \
	" hash TEXT NOT NULL, UNIQUE (side, client, message_id)"

/* IF NOT EXISTS: the exchange module's own migrations (exchange.c) create
 * these tables as one of their versions, on databases where an earlier
 * release had already made them under a migration of their own. */
const char exlog_schema_sqlite[] =
	"CREATE TABLE IF NOT EXISTS exchange_log (" EXLOG_COLUMNS("INTEGER", "BLOB") ");"
	"CREATE INDEX IF NOT EXISTS exchange_log_message ON exchange_log(message_id);"
	"CREATE INDEX IF NOT EXISTS exchange_log_subject ON exchange_log(data_subject, seq)"
	" WHERE data_subject <> '';"
	"CREATE TABLE IF NOT EXISTS exchange_log_cert (sha256 TEXT PRIMARY KEY, pem TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS exchange_log_seal (id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL UNIQUE,"
	" head_hash TEXT NOT NULL, token BLOB NOT NULL, time TEXT NOT NULL)";
const char exlog_schema_postgres[] =
	"CREATE TABLE IF NOT EXISTS exchange_log (" EXLOG_COLUMNS("BIGINT", "BYTEA") ");"
	"CREATE INDEX IF NOT EXISTS exchange_log_message ON exchange_log(message_id);"
	"CREATE INDEX IF NOT EXISTS exchange_log_subject ON exchange_log(data_subject, seq)"
	" WHERE data_subject <> '';"
	"CREATE TABLE IF NOT EXISTS exchange_log_cert (sha256 TEXT PRIMARY KEY, pem TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS exchange_log_seal (id BIGSERIAL PRIMARY KEY,"
	" first_seq BIGINT NOT NULL, last_seq BIGINT NOT NULL UNIQUE,"
	" head_hash TEXT NOT NULL, token BYTEA NOT NULL, time TEXT NOT NULL)";

static const db_migration migrations[] = {
	{.version = 1, .name = "exchange_log", .sql_sqlite = exlog_schema_sqlite, .sql_postgres = exlog_schema_postgres},
};

const db_migration *exlog_migrations(size_t *n)
{
	*n = sizeof migrations / sizeof migrations[0];
	return migrations;
}
