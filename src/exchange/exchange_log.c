/*
 * exchange_log.c: the gateway's message log: input checks, the
 * group-commit writer thread, the record hash, the schema, and the sealer
 * thread that timestamps the chain head (RFC 3161) in batches.
 *
 * Invariants:
 * - Only the writer thread touches its db_conn and digest context; callers
 *   only queue a private copy of their record (exchange_log_append_async
 *   returns at once) and are told on the writer's thread when it is
 *   durable: done() runs after COMMIT returned, never before.
 * - The chain head is read inside each batch's write transaction (SQLite:
 *   BEGIN IMMEDIATE; PostgreSQL: LOCK TABLE ... EXCLUSIVE), as the audit
 *   log does, so a failed batch needs no head restored.
 * - One record's replay (UNIQUE side, client, message_id) fails that record
 *   only. The batch is first inserted with multi-row INSERTs; if that hits a
 *   unique violation the transaction is rolled back and the batch is redone
 *   one record per SAVEPOINT, so a replay costs its own batch a second pass
 *   and nothing else.
 * - Certificates queued by exchange_log_cert() are inserted in the same
 *   transaction as the records queued after them, so a record is never
 *   durable without the certificate needed to verify it.
 * - The sealer has its own connection; exlog_seal_now() serialises on
 *   seal_mu. sealing_overdue is an atomic flag the sealer refreshes every
 *   second, because the gateway asks for it on every request.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ts.h>
#include <openssl/x509.h>

#include "core/app.h"
#include "core/crypto.h"
#include "core/httpc.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/module.h"
#include "core/timeutil.h"
#include "core/utf8.h"
#include "exchange/exchange_int.h"
#include "exchange/exchange_log_int.h"
#include "core/banned.h"

/* Records one transaction may carry, and the body bytes: bound the time a
 * batch holds the write lock and the writer's memory. */
#define EXLOG_BATCH_MAX 4096
#define EXLOG_BATCH_BYTES (32u << 20)
/* Rows per INSERT statement; powers of two down to 1 (6 shapes). 27 columns
 * x 32 rows stays under every backend's parameter limit. */
#define EXLOG_COLS 27
#define EXLOG_INSERT_ROWS_MAX 32
#define EXLOG_INSERT_SHAPES 6
/* A transient failure (lock timeout, a seq taken by another process) is
 * retried this often before the callers get it. */
#define EXLOG_RETRIES 3
#define EXLOG_LINGER_MAX_US 1000
/* Field limits. Texts come from headers and paths the kernel already
 * bounded; these keep one record from being absurd. */
#define EXLOG_TEXT_MAX 1024
#define EXLOG_PATH_MAX 8192
#define EXLOG_SIG_MAX 128
#define EXLOG_PEM_MAX (16 * 1024)
/* The TSA's answer is a few kilobytes; more is not a timestamp reply. */
#define EXLOG_TSA_REPLY_MAX (64 * 1024)
#define EXLOG_TSA_TIMEOUT_MS 10000
/* Certificates remembered as stored; past this every call queues again
 * (harmless: INSERT ... DO NOTHING). */
#define EXLOG_KNOWN_CERTS 1024
/* Bytes waiting for the writer. Past this the database is not keeping up
 * and callers get EGOV_EBUSY (the gateway answers 503) instead of the
 * process growing without bound. */
#define EXLOG_QUEUE_BYTES_MAX ((size_t)512 << 20)

typedef struct pending {
	exlog_row row; /* texts and bodies point into mem */
	void (*done)(void *ctx, egov_err err);
	void *ctx;
	egov_err err;
	size_t bytes;
	char time[32];
	char prev_hex[EXLOG_HEX_LEN + 1];
	char hash_hex[EXLOG_HEX_LEN + 1];
	struct pending *next;
	char mem[];
} pending;

typedef struct cert_pending {
	char sha256[EXLOG_HEX_LEN + 1];
	struct cert_pending *next;
	char pem[];
} cert_pending;

typedef struct exlog {
	db *d;
	db_conn *conn; /* the writer's */
	EVP_MD_CTX *md;
	pthread_t writer;
	bool writer_started;

	pthread_mutex_t mu;
	pthread_cond_t work_cv;
	pending *q_head, *q_tail;
	cert_pending *certs;
	size_t queued, group, queued_bytes;
	int64_t linger_us;
	bool closing;
	int64_t last_ts_us;

	/* Hex SHA-256s known to be in exchange_log_cert (under mu). */
	char (*known)[EXLOG_HEX_LEN + 1];
	size_t nknown;

	pending **batch;
	db_param params[EXLOG_INSERT_ROWS_MAX * EXLOG_COLS];
	char *insert_sql[EXLOG_INSERT_SHAPES];

	/* the sealer */
	pthread_t sealer;
	bool sealer_started;
	pthread_mutex_t seal_mu; /* guards seal_conn */
	pthread_cond_t seal_cv;  /* under mu: stop */
	db_conn *seal_conn;
	int interval_s, grace_s;
	char anchor[4096]; /* PEM bundle seals chain to, "" if none */
	int64_t last_attempt_us;
	bool seal_warned;
} exlog;

static exlog *g_log;
/* Read-held by everything that uses g_log, write-held by start and stop,
 * so a stop waits for callers inside and a long seal does not hold up
 * appends. */
static pthread_rwlock_t g_lifecycle = PTHREAD_RWLOCK_INITIALIZER;
static atomic_bool g_overdue;
static _Atomic int64_t g_records, g_batches, g_replays, g_failed, g_seals, g_seal_failures, g_unsealed;
static atomic_bool g_metrics_added;

/* ---- hashing --------------------------------------------------------------- */

static int hash_field(EVP_MD_CTX *ctx, const char *s, size_t n)
{
	unsigned char len[8];
	uint64_t v = n;
	int i;

	for (i = 7; i >= 0; i--) {
		len[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
	return EVP_DigestUpdate(ctx, len, 8) && EVP_DigestUpdate(ctx, s, n);
}

static int hash_str(EVP_MD_CTX *ctx, const char *s)
{
	return hash_field(ctx, s, strlen(s));
}

static int hash_int(EVP_MD_CTX *ctx, int64_t v)
{
	char s[24];
	int n = snprintf(s, sizeof s, "%" PRId64, v);

	return hash_field(ctx, s, (size_t)n);
}

egov_err exlog_hash(void *evp_md_ctx, const unsigned char prev[EXLOG_HASH_LEN], const exlog_row *r,
		    unsigned char out[EXLOG_HASH_LEN])
{
	EVP_MD_CTX *ctx = evp_md_ctx;
	unsigned int outlen = 0;

	if (!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) || !EVP_DigestUpdate(ctx, prev, EXLOG_HASH_LEN) ||
	    !hash_int(ctx, r->seq) || !hash_str(ctx, r->time) || !hash_str(ctx, r->side) ||
	    !hash_str(ctx, r->message_id) || !hash_str(ctx, r->client) || !hash_str(ctx, r->service) ||
	    !hash_str(ctx, r->method) || !hash_str(ctx, r->path) || !hash_str(ctx, r->represented_party) ||
	    !hash_str(ctx, r->data_subject) || !hash_str(ctx, r->purpose) || !hash_int(ctx, r->status) ||
	    !hash_str(ctx, r->log_mode) || !hash_str(ctx, r->request_content_type) ||
	    !hash_str(ctx, r->request_signed_at) || !hash_str(ctx, r->request_sig) ||
	    !hash_str(ctx, r->request_signer_cert) || !hash_str(ctx, r->request_body_sha256) ||
	    !hash_str(ctx, r->response_content_type) || !hash_str(ctx, r->response_signed_at) ||
	    !hash_str(ctx, r->response_sig) || !hash_str(ctx, r->response_signer_cert) ||
	    !hash_str(ctx, r->response_body_sha256) || !EVP_DigestFinal_ex(ctx, out, &outlen) ||
	    outlen != EXLOG_HASH_LEN)
		return EGOV_EINTERNAL;
	return EGOV_OK;
}

void exlog_hex(const unsigned char in[EXLOG_HASH_LEN], char out[EXLOG_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	int i;

	for (i = 0; i < EXLOG_HASH_LEN; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[EXLOG_HEX_LEN] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool exlog_unhex(const char *hex, unsigned char out[EXLOG_HASH_LEN])
{
	int i, hi, lo;

	if (!hex || strnlen(hex, EXLOG_HEX_LEN + 1) != EXLOG_HEX_LEN)
		return false;
	for (i = 0; i < EXLOG_HASH_LEN; i++) {
		hi = hexval(hex[2 * i]);
		lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

/* ---- input checks and the private copy --------------------------------------- */

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

/* Appends s (NULL as "") to the copy at *off and returns where it went. */
static const char *put_text(char *mem, size_t *off, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	char *at = mem + *off;

	if (n)
		memcpy(at, s, n);
	at[n] = '\0';
	*off += n + 1;
	return at;
}

static size_t text_size(const char *s)
{
	return (s ? strlen(s) : 0) + 1;
}

/* One allocation holding the row and everything it points to. */
static egov_err copy_rec(const exchange_log_rec *r, pending **out)
{
	const char *const texts[] = {r->side,
				     r->message_id,
				     r->client,
				     r->service,
				     r->method,
				     r->path,
				     r->represented_party,
				     r->data_subject,
				     r->purpose,
				     r->request_content_type,
				     r->request_signed_at,
				     r->request_sig,
				     r->request_signer_cert,
				     r->request_body_sha256,
				     r->response_content_type,
				     r->response_signed_at,
				     r->response_sig,
				     r->response_signer_cert,
				     r->response_body_sha256};
	bool full = r->request_body || r->response_body;
	size_t size = 0, off = 0, i;
	pending *p;

	for (i = 0; i < sizeof texts / sizeof texts[0]; i++)
		size += text_size(texts[i]);
	if (r->request_body)
		size += r->request_body_len;
	if (r->response_body)
		size += r->response_body_len;
	p = calloc(1, sizeof *p + size + 1);
	if (!p)
		return EGOV_ENOMEM;
	p->row.side = put_text(p->mem, &off, r->side);
	p->row.message_id = put_text(p->mem, &off, r->message_id);
	p->row.client = put_text(p->mem, &off, r->client);
	p->row.service = put_text(p->mem, &off, r->service);
	p->row.method = put_text(p->mem, &off, r->method);
	p->row.path = put_text(p->mem, &off, r->path);
	p->row.represented_party = put_text(p->mem, &off, r->represented_party);
	p->row.data_subject = put_text(p->mem, &off, r->data_subject);
	p->row.purpose = put_text(p->mem, &off, r->purpose);
	p->row.request_content_type = put_text(p->mem, &off, r->request_content_type);
	p->row.request_signed_at = put_text(p->mem, &off, r->request_signed_at);
	p->row.request_sig = put_text(p->mem, &off, r->request_sig);
	p->row.request_signer_cert = put_text(p->mem, &off, r->request_signer_cert);
	p->row.request_body_sha256 = put_text(p->mem, &off, r->request_body_sha256);
	p->row.response_content_type = put_text(p->mem, &off, r->response_content_type);
	p->row.response_signed_at = put_text(p->mem, &off, r->response_signed_at);
	p->row.response_sig = put_text(p->mem, &off, r->response_sig);
	p->row.response_signer_cert = put_text(p->mem, &off, r->response_signer_cert);
	p->row.response_body_sha256 = put_text(p->mem, &off, r->response_body_sha256);
	p->row.status = r->status;
	p->row.log_mode = full ? "full" : "digest";
	if (full) {
		/* A body of length 0 is still logged (as an empty blob). */
		p->row.request_body = p->mem + off;
		if (r->request_body && r->request_body_len)
			memcpy(p->mem + off, r->request_body, r->request_body_len);
		p->row.request_body_len = r->request_body ? r->request_body_len : 0;
		off += p->row.request_body_len;
		p->row.response_body = p->mem + off;
		if (r->response_body && r->response_body_len)
			memcpy(p->mem + off, r->response_body, r->response_body_len);
		p->row.response_body_len = r->response_body ? r->response_body_len : 0;
		off += p->row.response_body_len;
	}
	p->row.time = p->time;
	p->row.prev_hash = p->prev_hex;
	p->row.hash = p->hash_hex;
	p->bytes = sizeof *p + size;
	*out = p;
	return EGOV_OK;
}

/* ---- the writer ---------------------------------------------------------------- */

static const char insert_head[] =
	"INSERT INTO exchange_log(seq, time, side, message_id, client, service, method, path,"
	" represented_party, data_subject, purpose, status, log_mode, request_content_type, request_signed_at,"
	" request_sig, request_signer_cert, request_body_sha256, request_body, response_content_type,"
	" response_signed_at, response_sig, response_signer_cert, response_body_sha256, response_body,"
	" prev_hash, hash) VALUES ";
static const char insert_row[] = "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";

static egov_err build_insert_sql(exlog *l)
{
	size_t len, off;
	int k, i, rows;

	for (k = 0; k < EXLOG_INSERT_SHAPES; k++) {
		rows = 1 << k;
		len = sizeof insert_head + (size_t)rows * sizeof insert_row;
		if (!(l->insert_sql[k] = malloc(len)))
			return EGOV_ENOMEM;
		off = sizeof insert_head - 1;
		memcpy(l->insert_sql[k], insert_head, off);
		for (i = 0; i < rows; i++) {
			if (i)
				l->insert_sql[k][off++] = ',';
			memcpy(l->insert_sql[k] + off, insert_row, sizeof insert_row - 1);
			off += sizeof insert_row - 1;
		}
		l->insert_sql[k][off] = '\0';
	}
	return EGOV_OK;
}

static egov_err begin_locked(db_conn *c)
{
	egov_err err = db_begin(c);

	/* Serialises writers across processes on one PostgreSQL database;
	 * readers still proceed. SQLite's BEGIN IMMEDIATE already does. */
	if (!err && db_conn_kind(c) == DB_POSTGRES &&
	    (err = db_exec(c, "LOCK TABLE exchange_log IN EXCLUSIVE MODE", NULL, 0, NULL)))
		db_rollback(c);
	return err;
}

static egov_err load_head(db_conn *c, int64_t *seq, unsigned char hash[EXLOG_HASH_LEN])
{
	db_rows *r = NULL;
	bool has = false;
	egov_err err;

	*seq = 0;
	memset(hash, 0, EXLOG_HASH_LEN);
	err = db_query(c, "SELECT seq, hash FROM exchange_log ORDER BY seq DESC LIMIT 1", NULL, 0, &r);
	if (err)
		goto out;
	err = db_rows_next(r, &has);
	if (err || !has)
		goto out;
	*seq = db_rows_int(r, 0);
	if (!exlog_unhex(db_rows_text(r, 1), hash))
		err = EGOV_ECORRUPT;
out:
	db_rows_free(r);
	return err;
}

static egov_err insert_certs(exlog *l, cert_pending *cp)
{
	egov_err err = EGOV_OK;

	for (; cp && !err; cp = cp->next) {
		db_param p[] = {DBP_S(cp->sha256), DBP_S(cp->pem)};
		err = db_exec(l->conn, "INSERT INTO exchange_log_cert(sha256, pem) VALUES (?, ?) ON CONFLICT (sha256) DO NOTHING",
			      p, 2, NULL);
	}
	return err;
}

static void next_time(exlog *l, char out[32])
{
	int64_t now = time_now_us();

	if (now < l->last_ts_us)
		now = l->last_ts_us;
	l->last_ts_us = now;
	time_format_rfc3339(now, 6, out);
}

/* Gives p its seq, time and hash after prev (updated to p's hash). */
static egov_err chain_one(exlog *l, pending *p, int64_t seq, unsigned char prev[EXLOG_HASH_LEN])
{
	unsigned char hash[EXLOG_HASH_LEN];
	egov_err err;

	p->row.seq = seq;
	next_time(l, p->time);
	if ((err = exlog_hash(l->md, prev, &p->row, hash)))
		return err;
	exlog_hex(prev, p->prev_hex);
	exlog_hex(hash, p->hash_hex);
	memcpy(prev, hash, EXLOG_HASH_LEN);
	return EGOV_OK;
}

static void bind_row(db_param *p, const pending *e)
{
	const exlog_row *r = &e->row;
	bool full = strcmp(r->log_mode, "full") == 0;

	p[0] = DBP_I(r->seq);
	p[1] = DBP_S(r->time);
	p[2] = DBP_S(r->side);
	p[3] = DBP_S(r->message_id);
	p[4] = DBP_S(r->client);
	p[5] = DBP_S(r->service);
	p[6] = DBP_S(r->method);
	p[7] = DBP_S(r->path);
	p[8] = DBP_S(r->represented_party);
	p[9] = DBP_S(r->data_subject);
	p[10] = DBP_S(r->purpose);
	p[11] = DBP_I(r->status);
	p[12] = DBP_S(r->log_mode);
	p[13] = DBP_S(r->request_content_type);
	p[14] = DBP_S(r->request_signed_at);
	p[15] = DBP_S(r->request_sig);
	p[16] = DBP_S(r->request_signer_cert);
	p[17] = DBP_S(r->request_body_sha256);
	p[18] = full ? DBP_B(r->request_body, r->request_body_len) : DBP_NULLV;
	p[19] = DBP_S(r->response_content_type);
	p[20] = DBP_S(r->response_signed_at);
	p[21] = DBP_S(r->response_sig);
	p[22] = DBP_S(r->response_signer_cert);
	p[23] = DBP_S(r->response_body_sha256);
	p[24] = full ? DBP_B(r->response_body, r->response_body_len) : DBP_NULLV;
	p[25] = DBP_S(r->prev_hash);
	p[26] = DBP_S(r->hash);
}

static egov_err insert_rows(exlog *l, pending **rows, size_t count)
{
	size_t i;
	int k = 0;

	while ((1u << (k + 1)) <= count && k + 1 < EXLOG_INSERT_SHAPES)
		k++;
	for (i = 0; i < count; i++)
		bind_row(&l->params[i * EXLOG_COLS], rows[i]);
	return db_exec(l->conn, l->insert_sql[k], l->params, (int)(count * EXLOG_COLS), NULL);
}

/* Every record of batch[0..n) in one transaction with multi-row INSERTs.
 * Any error (a replay among them too) leaves nothing behind. */
static egov_err commit_fast(exlog *l, cert_pending *certs, size_t n)
{
	unsigned char prev[EXLOG_HASH_LEN];
	int64_t head = 0;
	size_t i, done, chunk;
	egov_err err;

	if ((err = begin_locked(l->conn)))
		return err;
	if ((err = insert_certs(l, certs)) || (err = load_head(l->conn, &head, prev)))
		goto out;
	for (i = 0; i < n; i++)
		if ((err = chain_one(l, l->batch[i], head + 1 + (int64_t)i, prev)))
			goto out;
	for (done = 0; done < n; done += chunk) {
		chunk = n - done;
		if (chunk > EXLOG_INSERT_ROWS_MAX)
			chunk = EXLOG_INSERT_ROWS_MAX;
		while (chunk & (chunk - 1))
			chunk &= chunk - 1;
		if ((err = insert_rows(l, l->batch + done, chunk)))
			goto out;
	}
	for (i = 0; i < n; i++)
		l->batch[i]->err = EGOV_OK;
	/* A COMMIT that failed may leave the transaction open (SQLite on
	 * BUSY), so it is rolled back like any other failure. */
	err = db_commit(l->conn);
out:
	if (err)
		db_rollback(l->conn);
	return err;
}

static egov_err already_logged(exlog *l, const exlog_row *r, bool *found)
{
	db_param p[] = {DBP_S(r->side), DBP_S(r->client), DBP_S(r->message_id)};
	int64_t one = 0;

	return db_query_int(l->conn, "SELECT 1 FROM exchange_log WHERE side = ? AND client = ? AND message_id = ?", p,
			    3, &one, found);
}

/* The batch again, one record per SAVEPOINT: a replay fails that record
 * (ECONFLICT) and consumes no seq; the others commit. */
static egov_err commit_slow(exlog *l, cert_pending *certs, size_t n)
{
	unsigned char prev[EXLOG_HASH_LEN], saved[EXLOG_HASH_LEN];
	int64_t head = 0;
	bool found = false;
	size_t i;
	egov_err err, e;

	if ((err = begin_locked(l->conn)))
		return err;
	if ((err = insert_certs(l, certs)) || (err = load_head(l->conn, &head, prev)))
		goto out;
	for (i = 0; i < n; i++) {
		pending *p = l->batch[i];

		memcpy(saved, prev, sizeof saved);
		if ((err = chain_one(l, p, head + 1, prev)) ||
		    (err = db_exec(l->conn, "SAVEPOINT exlog_rec", NULL, 0, NULL)))
			goto out;
		e = insert_rows(l, &p, 1);
		if (e == EGOV_OK) {
			p->err = EGOV_OK;
			head++;
			if ((err = db_exec(l->conn, "RELEASE SAVEPOINT exlog_rec", NULL, 0, NULL)))
				goto out;
			continue;
		}
		memcpy(prev, saved, sizeof prev);
		if ((err = db_exec(l->conn, "ROLLBACK TO SAVEPOINT exlog_rec", NULL, 0, NULL)) ||
		    (err = db_exec(l->conn, "RELEASE SAVEPOINT exlog_rec", NULL, 0, NULL)))
			goto out;
		if (e != EGOV_ECONFLICT) {
			err = e;
			goto out;
		}
		if ((err = already_logged(l, &p->row, &found)))
			goto out;
		if (!found) {
			/* The seq was taken: another process appended past
			 * our lock. Retry the whole batch. */
			err = EGOV_EBUSY;
			goto out;
		}
		p->err = EGOV_ECONFLICT;
	}
	err = db_commit(l->conn);
out:
	if (err)
		db_rollback(l->conn);
	return err;
}

static egov_err commit_batch(exlog *l, cert_pending *certs, size_t n)
{
	egov_err err = EGOV_OK;
	bool slow = false;
	int attempt;

	for (attempt = 0; attempt <= EXLOG_RETRIES; attempt++) {
		err = slow ? commit_slow(l, certs, n) : commit_fast(l, certs, n);
		if (err == EGOV_ECONFLICT && !slow) {
			slow = true;
			attempt--; /* the second pass is not a retry */
			continue;
		}
		if (err != EGOV_EBUSY && err != EGOV_ECONFLICT)
			break;
	}
	return err;
}

static int64_t mono_us(void)
{
	return time_mono_us();
}

/* As the audit writer: wait (mu held) for the group just released to queue
 * again, at most as long as a commit takes, so batches do not shrink to the
 * first caller or two to come back. */
static void linger(exlog *l)
{
	struct timespec until;
	int64_t deadline;

	if (l->queued >= l->group || l->closing)
		return;
	deadline = mono_us() + l->linger_us;
	until.tv_sec = (time_t)(deadline / 1000000);
	until.tv_nsec = (long)(deadline % 1000000) * 1000;
	while (l->queued < l->group && !l->closing)
		if (pthread_cond_timedwait(&l->work_cv, &l->mu, &until) == ETIMEDOUT)
			break;
}

static void remember_certs(exlog *l, cert_pending *cp)
{
	size_t i;

	for (; cp; cp = cp->next) {
		for (i = 0; i < l->nknown; i++)
			if (memcmp(l->known[i], cp->sha256, EXLOG_HEX_LEN) == 0)
				break;
		if (i == l->nknown && l->nknown < EXLOG_KNOWN_CERTS)
			memcpy(l->known[l->nknown++], cp->sha256, sizeof l->known[0]);
	}
}

static void free_certs(cert_pending *cp)
{
	cert_pending *next;

	for (; cp; cp = next) {
		next = cp->next;
		free(cp);
	}
}

static void *writer_main(void *arg)
{
	exlog *l = arg;
	cert_pending *certs;
	int64_t t0, took;
	size_t n, i, bytes;
	egov_err err;

	pthread_mutex_lock(&l->mu);
	for (;;) {
		while (!l->q_head && !l->certs && !l->closing)
			pthread_cond_wait(&l->work_cv, &l->mu);
		if (!l->q_head && !l->certs)
			break;
		linger(l);
		bytes = 0;
		for (n = 0; l->q_head && n < EXLOG_BATCH_MAX && (n == 0 || bytes + l->q_head->bytes <= EXLOG_BATCH_BYTES);
		     n++) {
			l->batch[n] = l->q_head;
			bytes += l->q_head->bytes;
			l->q_head = l->q_head->next;
		}
		if (!l->q_head)
			l->q_tail = NULL;
		l->queued -= n;
		l->queued_bytes -= bytes;
		certs = l->certs;
		l->certs = NULL;
		pthread_mutex_unlock(&l->mu);

		t0 = mono_us();
		err = commit_batch(l, certs, n);
		took = mono_us() - t0;
		atomic_fetch_add(&g_batches, 1);
		if (err) {
			log_error("exchange.log", "message log commit of %zu records failed: %s (%s)", n,
				  egov_err_name(err), db_conn_errmsg(l->conn));
			atomic_fetch_add(&g_failed, (int64_t)n);
		}
		for (i = 0; i < n; i++) {
			pending *p = l->batch[i];
			egov_err e = err ? err : p->err;

			if (e == EGOV_OK)
				atomic_fetch_add(&g_records, 1);
			else if (e == EGOV_ECONFLICT)
				atomic_fetch_add(&g_replays, 1);
			if (p->done)
				p->done(p->ctx, e);
			free(p);
		}

		pthread_mutex_lock(&l->mu);
		if (!err)
			remember_certs(l, certs);
		free_certs(certs);
		if (n)
			l->group = n;
		l->linger_us = took < EXLOG_LINGER_MAX_US ? took : EXLOG_LINGER_MAX_US;
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

/* ---- public: appending ---------------------------------------------------------- */

egov_err exchange_log_append_async(const exchange_log_rec *rec, void (*done)(void *ctx, egov_err err), void *ctx)
{
	const char *why;
	pending *p = NULL;
	exlog *l;
	egov_err err = EGOV_EINVAL;

	if (!rec)
		goto out;
	if ((why = rec_problem(rec))) {
		log_warn("exchange.log", "record refused: bad %s (message id %.64s)", why,
			 rec->message_id ? rec->message_id : "");
		goto out;
	}
	if ((err = copy_rec(rec, &p)))
		goto out;
	p->done = done;
	p->ctx = ctx;
	pthread_rwlock_rdlock(&g_lifecycle);
	l = g_log;
	if (!l) {
		pthread_rwlock_unlock(&g_lifecycle);
		err = EGOV_EUNAVAILABLE;
		goto out;
	}
	pthread_mutex_lock(&l->mu);
	pthread_rwlock_unlock(&g_lifecycle);
	if (l->closing || l->queued_bytes + p->bytes > EXLOG_QUEUE_BYTES_MAX) {
		err = l->closing ? EGOV_EUNAVAILABLE : EGOV_EBUSY;
		pthread_mutex_unlock(&l->mu);
		goto out;
	}
	l->queued_bytes += p->bytes;
	if (l->q_tail)
		l->q_tail->next = p;
	else
		l->q_head = p;
	l->q_tail = p;
	l->queued++;
	/* Wake the writer when work appears and when the group is complete;
	 * between the two it lingers on a timer. */
	if (l->queued == 1 || l->queued >= l->group)
		pthread_cond_signal(&l->work_cv);
	pthread_mutex_unlock(&l->mu);
	p = NULL;
	err = EGOV_OK;
out:
	free(p);
	return err;
}

typedef struct sync_wait {
	sem_t sem;
	egov_err err;
} sync_wait;

static void sync_done(void *ctx, egov_err err)
{
	sync_wait *w = ctx;

	w->err = err;
	sem_post(&w->sem);
}

egov_err exchange_log_append(const exchange_log_rec *rec)
{
	sync_wait w = {.err = EGOV_EINTERNAL};
	egov_err err;

	if (sem_init(&w.sem, 0, 0) != 0)
		return EGOV_EINTERNAL;
	err = exchange_log_append_async(rec, sync_done, &w);
	if (!err) {
		while (sem_wait(&w.sem) != 0 && errno == EINTR)
			;
		err = w.err;
	}
	sem_destroy(&w.sem);
	return err;
}

bool exlog_cert_matches(const char *sha256, const char *pem)
{
	unsigned char *der = NULL;
	char hex[EXLOG_HEX_LEN + 1];
	X509 *x = NULL;
	BIO *b = NULL;
	int n;
	bool ok = false;

	if (!(b = BIO_new_mem_buf(pem, -1)) || !(x = PEM_read_bio_X509(b, NULL, NULL, NULL)) ||
	    (n = i2d_X509(x, &der)) <= 0)
		goto out;
	crypto_sha256_hex(der, (size_t)n, hex);
	ok = strcmp(hex, sha256) == 0;
out:
	ERR_clear_error();
	OPENSSL_free(der);
	X509_free(x);
	BIO_free(b);
	return ok;
}

egov_err exchange_log_cert(const char *sha256, const char *pem)
{
	cert_pending *cp = NULL;
	bool running = false, known = false;
	size_t i, n = 0;
	exlog *l;
	egov_err err = EGOV_EINVAL;

	if (!valid_sha256_hex(sha256) || !pem || (n = strnlen(pem, EXLOG_PEM_MAX + 1)) > EXLOG_PEM_MAX)
		goto out;
	pthread_rwlock_rdlock(&g_lifecycle);
	if ((l = g_log)) {
		running = true;
		pthread_mutex_lock(&l->mu);
		for (i = 0; i < l->nknown && !known; i++)
			known = memcmp(l->known[i], sha256, EXLOG_HEX_LEN) == 0;
		pthread_mutex_unlock(&l->mu);
	}
	pthread_rwlock_unlock(&g_lifecycle);
	err = running ? EGOV_OK : EGOV_EUNAVAILABLE;
	if (!running || known)
		goto out;
	err = EGOV_EINVAL;
	/* A certificate stored under the wrong hash would make every record
	 * that names it fail verification later; refuse it now. */
	if (!exlog_cert_matches(sha256, pem))
		goto out;
	err = EGOV_ENOMEM;
	if (!(cp = calloc(1, sizeof *cp + n + 1)))
		goto out;
	memcpy(cp->sha256, sha256, EXLOG_HEX_LEN + 1);
	memcpy(cp->pem, pem, n + 1);
	pthread_rwlock_rdlock(&g_lifecycle);
	l = g_log;
	err = EGOV_EUNAVAILABLE;
	if (l) {
		pthread_mutex_lock(&l->mu);
		if (!l->closing) {
			cp->next = l->certs;
			l->certs = cp;
			cp = NULL;
			pthread_cond_signal(&l->work_cv);
			err = EGOV_OK;
		}
		pthread_mutex_unlock(&l->mu);
	}
	pthread_rwlock_unlock(&g_lifecycle);
out:
	free(cp);
	return err;
}

/* ---- sealing -------------------------------------------------------------------- */

static egov_err sealed_to(db_conn *c, int64_t *seq)
{
	bool found = false;
	egov_err err;

	*seq = 0;
	err = db_query_int(c, "SELECT COALESCE(MAX(last_seq), 0) FROM exchange_log_seal", NULL, 0, seq, &found);
	return err;
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

static egov_err seal_locked(exlog *l, const char *tsa_url, int64_t *last_seq, char *why, size_t whylen)
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
	if ((err = sealed_to(l->seal_conn, &from)) || (err = load_head(l->seal_conn, &head, hash)))
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
		err = db_exec(l->seal_conn,
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

static void refresh_overdue(exlog *l);

egov_err exlog_seal_now(const char *tsa_url, int64_t *last_seq)
{
	char why[256];
	int64_t seq = 0;
	exlog *l;
	egov_err err = EGOV_EUNAVAILABLE;

	why[0] = '\0';
	pthread_rwlock_rdlock(&g_lifecycle);
	l = g_log;
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
static void refresh_overdue(exlog *l)
{
	int64_t from = 0, head = 0, t = 0;
	bool found = false;
	char *oldest = NULL;
	db_param p[1];

	if (sealed_to(l->seal_conn, &from) ||
	    db_query_int(l->seal_conn, "SELECT COALESCE(MAX(seq), 0) FROM exchange_log", NULL, 0, &head, &found))
		return; /* a read failure leaves the flag as it was */
	atomic_store(&g_unsealed, head > from ? head - from : 0);
	if (head <= from) {
		atomic_store(&g_overdue, false);
		return;
	}
	p[0] = DBP_I(from);
	if (db_query_text(l->seal_conn, "SELECT time FROM exchange_log WHERE seq > ? ORDER BY seq LIMIT 1", p, 1,
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
	exlog *l = arg;
	char *url;
	egov_err err;

	pthread_mutex_lock(&l->mu);
	while (!l->closing) {
		pthread_mutex_unlock(&l->mu);
		now = mono_us();
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
				if (!l->seal_warned)
					log_warn("exchange.log.seal", "sealing the message log failed: %s (%s)",
						 egov_err_name(err), why);
				l->seal_warned = true;
			} else {
				atomic_fetch_add(&g_seals, 1);
				if (l->seal_warned)
					log_info("exchange.log.seal", "the message log is sealed again up to %" PRId64,
						 seq);
				l->seal_warned = false;
				refresh_overdue(l);
			}
		}
		pthread_mutex_unlock(&l->seal_mu);

		pthread_mutex_lock(&l->mu);
		deadline = mono_us() + 1000000;
		until.tv_sec = (time_t)(deadline / 1000000);
		until.tv_nsec = (long)(deadline % 1000000) * 1000;
		while (!l->closing)
			if (pthread_cond_timedwait(&l->seal_cv, &l->mu, &until) == ETIMEDOUT)
				break;
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

void exlog_stats(int64_t *records, int64_t *batches)
{
	*records = atomic_load(&g_records);
	*batches = atomic_load(&g_batches);
}

bool exchange_log_sealing_overdue(void)
{
	return atomic_load(&g_overdue);
}

/* ---- metrics --------------------------------------------------------------------- */

static egov_err write_metrics(buf *out);

egov_err exchange_log_metrics(buf *out)
{
	return atomic_load(&g_metrics_added) ? write_metrics(out) : EGOV_OK;
}

static egov_err write_metrics(buf *out)
{
	egov_err err;

	if ((err = metrics_write_header(out, "egov_exchange_log_records_total", "counter",
					"Exchanges appended to the message log")) ||
	    (err = buf_addf(out, "egov_exchange_log_records_total %" PRId64 "\n", atomic_load(&g_records))) ||
	    (err = metrics_write_header(out, "egov_exchange_log_batches_total", "counter",
					"Message log transactions (group commits)")) ||
	    (err = buf_addf(out, "egov_exchange_log_batches_total %" PRId64 "\n", atomic_load(&g_batches))) ||
	    (err = metrics_write_header(out, "egov_exchange_log_refused_total", "counter",
					"Message log appends refused, by reason")) ||
	    (err = buf_addf(out, "egov_exchange_log_refused_total{reason=\"replay\"} %" PRId64 "\n",
			    atomic_load(&g_replays))) ||
	    (err = buf_addf(out, "egov_exchange_log_refused_total{reason=\"error\"} %" PRId64 "\n",
			    atomic_load(&g_failed))) ||
	    (err = metrics_write_header(out, "egov_exchange_log_seals_total", "counter",
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

static void exlog_free(exlog *l)
{
	int k;

	if (!l)
		return;
	if (l->conn)
		db_conn_close(l->conn);
	if (l->seal_conn)
		db_conn_close(l->seal_conn);
	EVP_MD_CTX_free(l->md);
	for (k = 0; k < EXLOG_INSERT_SHAPES; k++)
		free(l->insert_sql[k]);
	free(l->batch);
	free(l->known);
	free_certs(l->certs);
	pthread_cond_destroy(&l->seal_cv);
	pthread_cond_destroy(&l->work_cv);
	pthread_mutex_destroy(&l->seal_mu);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

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
	pthread_condattr_t attr;
	unsigned char hash[EXLOG_HASH_LEN];
	int64_t seq = 0;
	exlog *l = NULL;
	egov_err err = EGOV_ENOMEM;

	if (!d || !cfg)
		return EGOV_EINVAL;
	pthread_rwlock_wrlock(&g_lifecycle);
	if (g_log) {
		err = EGOV_ECONFLICT;
		goto out;
	}
	if (!(l = calloc(1, sizeof *l)))
		goto out;
	l->d = d;
	pthread_mutex_init(&l->mu, NULL);
	pthread_mutex_init(&l->seal_mu, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&l->work_cv, &attr);
	pthread_cond_init(&l->seal_cv, &attr);
	pthread_condattr_destroy(&attr);
	l->group = 1;
	l->interval_s = exchange_settings(cfg)->timestamp_interval_s;
	l->grace_s = exchange_settings(cfg)->timestamp_grace_s;
	exlog_default_anchor(cfg, l->anchor, sizeof l->anchor);
	if (!(l->batch = calloc(EXLOG_BATCH_MAX, sizeof *l->batch)) ||
	    !(l->known = calloc(EXLOG_KNOWN_CERTS, sizeof *l->known)) || !(l->md = EVP_MD_CTX_new()))
		goto out;
	if ((err = build_insert_sql(l)) || (err = db_conn_open(d, &l->conn)) || (err = db_conn_open(d, &l->seal_conn)))
		goto out;
	/* A missing table or a corrupt head fails the start, not a caller. */
	if ((err = load_head(l->conn, &seq, hash)))
		goto out;
	refresh_overdue(l);
	if (pthread_create(&l->writer, NULL, writer_main, l) != 0) {
		err = EGOV_EINTERNAL;
		goto out;
	}
	l->writer_started = true;
	if (pthread_create(&l->sealer, NULL, sealer_main, l) != 0) {
		err = EGOV_EINTERNAL;
		goto out;
	}
	l->sealer_started = true;
	atomic_store(&g_metrics_added, true); /* on /metrics from now on */
	g_log = l;
	l = NULL;
	err = EGOV_OK;
out:
	if (l) {
		pthread_mutex_lock(&l->mu);
		l->closing = true;
		pthread_cond_broadcast(&l->work_cv);
		pthread_cond_broadcast(&l->seal_cv);
		pthread_mutex_unlock(&l->mu);
		if (l->writer_started)
			pthread_join(l->writer, NULL);
		if (l->sealer_started)
			pthread_join(l->sealer, NULL);
		exlog_free(l);
	}
	pthread_rwlock_unlock(&g_lifecycle);
	return err;
}

void exchange_log_stop(void)
{
	exlog *l;

	pthread_rwlock_wrlock(&g_lifecycle);
	l = g_log;
	g_log = NULL;
	pthread_rwlock_unlock(&g_lifecycle);
	if (!l)
		return;
	pthread_mutex_lock(&l->mu);
	l->closing = true;
	pthread_cond_broadcast(&l->work_cv);
	pthread_cond_broadcast(&l->seal_cv);
	pthread_mutex_unlock(&l->mu);
	/* The writer drains the queue before it exits: every record queued
	 * before the stop is committed (or failed) and its caller told. */
	if (l->writer_started)
		pthread_join(l->writer, NULL);
	if (l->sealer_started)
		pthread_join(l->sealer, NULL);
	atomic_store(&g_overdue, false);
	exlog_free(l);
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
