/*
 * audit.c: the audit log's writer: input checks, the group-commit writer
 * thread, the record hash and the schema.
 *
 * Invariants:
 * - Only the writer thread touches its db_conn, its hasher and its scratch
 *   rows; appenders only queue a `pending` (on their own stack) and wait.
 * - A record is reported committed only after COMMIT returned; a failed
 *   batch is rolled back whole and every caller in it gets the error.
 * - The chain head is read inside each batch's write transaction (SQLite:
 *   BEGIN IMMEDIATE; PostgreSQL: LOCK TABLE ... EXCLUSIVE), so processes or
 *   nodes sharing one database extend the same chain without forking it. A
 *   failed batch therefore needs no head to be restored: the next one reads
 *   it again. The cached `length` is for audit_length() only.
 * - Timestamps never go backwards within a process, so ts order follows seq.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "audit/audit.h"
#include "audit/audit_int.h"
#include "core/utf8.h"
#include "core/timeutil.h"
#include "core/wake.h"
#include "core/banned.h"

/* Records one transaction may carry. Bounds the writer's scratch memory and
 * the time a batch holds the write lock; far above what concurrent
 * appenders queue between two commits. */
#define AUDIT_BATCH_MAX 4096
/* Rows per INSERT statement: multi-row VALUES cut per-statement overhead
 * (a round trip each on PostgreSQL). Chunks are powers of two down to 1 so
 * at most log2(64)+1 distinct statements are prepared. */
#define AUDIT_INSERT_ROWS_MAX 64
#define AUDIT_INSERT_SHAPES 7
#define AUDIT_COLS 8
/* A conflict on seq means another process appended between our head read
 * and our insert, which the write lock should prevent; retry a few times
 * rather than fail the callers. */
#define AUDIT_CONFLICT_RETRIES 3
/* Longest the writer lingers for a group to re-form (see writer_main). */
#define AUDIT_LINGER_MAX_US 1000

typedef struct pending {
	const char *actor;
	const char *action;
	const char *object;
	const char *details;
	struct pending *next;
	int64_t seq;
	egov_err err;
	/* Released when the batch is settled (core/wake.h): not the shared
	 * mutex and a condition, on which hundreds of waiters released at once
	 * would queue just to return, and one post by the writer, not
	 * hundreds, before it goes on to the next batch. */
	wake_node done;
} pending;

/* What the writer computed for one record of the batch being committed. */
typedef struct scratch_row {
	char ts[32];
	char prev_hex[AUDIT_HEX_LEN + 1];
	char hash_hex[AUDIT_HEX_LEN + 1];
} scratch_row;

struct audit_log {
	db_conn *conn;
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t mu;
	pthread_cond_t work_cv; /* the writer waits here for records */
	pending *q_head, *q_tail;
	size_t queued;
	size_t group;       /* size of the last batch: callers likely to return */
	int64_t linger_us;  /* how long the last commit took, capped */
	bool closing;

	_Atomic int64_t length;
	_Atomic int64_t stat_batches, stat_records, stat_commit_us;
	int64_t last_ts_us;

	int64_t cp_every;
	audit_checkpoint_fn cp_fn;
	void *cp_ctx;

	audit_hasher hasher;
	scratch_row *rows;
	pending **batch;
	db_param params[AUDIT_INSERT_ROWS_MAX * AUDIT_COLS];
	char *insert_sql[AUDIT_INSERT_SHAPES]; /* [k]: 2^k rows */
};

/* ---- hashing (shared with audit_verify.c through audit_int.h) ---------- */

egov_err audit_hasher_init(audit_hasher *h)
{
	egov_err err = EGOV_ENOMEM;

	h->md = EVP_MD_fetch(NULL, "SHA256", NULL);
	h->ctx = EVP_MD_CTX_new();
	if (!h->md || !h->ctx) {
		audit_hasher_release(h);
		goto out;
	}
	err = EGOV_OK;
out:
	return err;
}

void audit_hasher_release(audit_hasher *h)
{
	EVP_MD_CTX_free(h->ctx);
	EVP_MD_free(h->md);
	h->ctx = NULL;
	h->md = NULL;
}

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

static size_t format_seq(int64_t seq, char out[24])
{
	char tmp[24];
	size_t n = 0, i;
	uint64_t v = seq < 0 ? (uint64_t)0 - (uint64_t)seq : (uint64_t)seq;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	i = 0;
	if (seq < 0)
		out[i++] = '-';
	while (n)
		out[i++] = tmp[--n];
	out[i] = '\0';
	return i;
}

egov_err audit_hash_compute(audit_hasher *h, const unsigned char prev[AUDIT_HASH_LEN], const audit_fields *f,
			    unsigned char out[AUDIT_HASH_LEN])
{
	char seqs[24];
	size_t seqn = format_seq(f->seq, seqs);
	unsigned int outlen = 0;
	egov_err err = EGOV_EINTERNAL;

	if (!EVP_DigestInit_ex(h->ctx, h->md, NULL) || !EVP_DigestUpdate(h->ctx, prev, AUDIT_HASH_LEN) ||
	    !hash_field(h->ctx, seqs, seqn) || !hash_field(h->ctx, f->ts, strlen(f->ts)) ||
	    !hash_field(h->ctx, f->actor, strlen(f->actor)) || !hash_field(h->ctx, f->action, strlen(f->action)) ||
	    !hash_field(h->ctx, f->object, strlen(f->object)) ||
	    !hash_field(h->ctx, f->details, strlen(f->details)) || !EVP_DigestFinal_ex(h->ctx, out, &outlen) ||
	    outlen != AUDIT_HASH_LEN)
		goto out;
	err = EGOV_OK;
out:
	return err;
}

void audit_hex_encode(const unsigned char in[AUDIT_HASH_LEN], char out[AUDIT_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	int i;

	for (i = 0; i < AUDIT_HASH_LEN; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[AUDIT_HEX_LEN] = '\0';
}

/* Digit values for lower-case hex, 0 for anything else; 1 is added so that
 * 0 can mean "not a digit". A table, as branching on random hex digits
 * mispredicts about every other character and dominated verification. */
static const unsigned char hex_plus1[256] = {
	['0'] = 1,  ['1'] = 2,	['2'] = 3,  ['3'] = 4,	['4'] = 5,  ['5'] = 6,	['6'] = 7,  ['7'] = 8,
	['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

bool audit_hex_decode(const char *hex, unsigned char out[AUDIT_HASH_LEN])
{
	const unsigned char *h = (const unsigned char *)hex;
	unsigned bad = 0, hi, lo;
	int i;

	if (!hex || strnlen(hex, AUDIT_HEX_LEN + 1) != AUDIT_HEX_LEN)
		return false;
	for (i = 0; i < AUDIT_HASH_LEN; i++) {
		hi = hex_plus1[h[2 * i]];
		lo = hex_plus1[h[2 * i + 1]];
		bad |= (hi == 0) | (lo == 0);
		out[i] = (unsigned char)((hi - 1) << 4 | ((lo - 1) & 0xf));
	}
	return !bad;
}

/* ---- input checks ------------------------------------------------------ */

/* Strict UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF). Checked here because PostgreSQL refuses invalid text, and one
 * caller's bad bytes must not fail the whole batch it shares with others. */
static bool valid_utf8(const unsigned char *s, size_t n)
{
	return utf8_valid((const char *)s, n);
}

static bool valid_name(const char *s)
{
	size_t n = 0;

	if (!s || !*s)
		return false;
	for (; s[n]; n++) {
		/* Control characters would let a value forge line breaks in
		 * exports and consoles that print the log. */
		if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f)
			return false;
		if (n >= AUDIT_FIELD_MAX)
			return false;
	}
	return valid_utf8((const unsigned char *)s, n);
}

static bool valid_details(const char *s)
{
	size_t n = strnlen(s, AUDIT_DETAILS_MAX + 1);
	const char *end = NULL;
	cJSON *j = NULL;
	bool ok = false;

	if (n > AUDIT_DETAILS_MAX || !valid_utf8((const unsigned char *)s, n))
		goto out;
	/* A cheap gate before parsing: objects only. */
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	if (*s != '{')
		goto out;
	j = cJSON_ParseWithOpts(s, &end, 1);
	ok = j && cJSON_IsObject(j);
out:
	cJSON_Delete(j);
	return ok;
}

/* ---- the writer ---------------------------------------------------------- */

static const char insert_head[] =
	"INSERT INTO audit_log(seq, ts, actor, action, object, details, prev_hash, hash) VALUES ";
static const char insert_row[] = "(?,?,?,?,?,?,?,?)";

static egov_err build_insert_sql(audit_log *a)
{
	egov_err err = EGOV_OK;
	int k, i, rows;
	size_t len, off;

	for (k = 0; k < AUDIT_INSERT_SHAPES; k++) {
		rows = 1 << k;
		len = sizeof insert_head + (size_t)rows * sizeof insert_row;
		a->insert_sql[k] = malloc(len);
		if (!a->insert_sql[k]) {
			err = EGOV_ENOMEM;
			goto out;
		}
		off = sizeof insert_head - 1;
		memcpy(a->insert_sql[k], insert_head, off);
		for (i = 0; i < rows; i++) {
			if (i)
				a->insert_sql[k][off++] = ',';
			memcpy(a->insert_sql[k] + off, insert_row, sizeof insert_row - 1);
			off += sizeof insert_row - 1;
		}
		a->insert_sql[k][off] = '\0';
	}
out:
	return err;
}

/* Reads the last seq and hash; (0, zeros) for an empty log. */
static egov_err load_head(db_conn *c, int64_t *seq, unsigned char hash[AUDIT_HASH_LEN])
{
	db_rows *r = NULL;
	bool has = false;
	egov_err err;

	*seq = 0;
	memset(hash, 0, AUDIT_HASH_LEN);
	err = db_query(c, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", NULL, 0, &r);
	if (err)
		goto out;
	err = db_rows_next(r, &has);
	if (err || !has)
		goto out;
	*seq = db_rows_int(r, 0);
	if (!audit_hex_decode(db_rows_text(r, 1), hash))
		err = EGOV_ECORRUPT;
out:
	db_rows_free(r);
	return err;
}

static void next_timestamp(audit_log *a, char out[32])
{
	int64_t now = time_now_us();

	if (now < a->last_ts_us)
		now = a->last_ts_us;
	a->last_ts_us = now;
	time_format_rfc3339(now, 6, out);
}

static egov_err insert_rows(audit_log *a, int64_t first_seq, size_t from, size_t count)
{
	egov_err err = EGOV_OK;
	size_t i;
	db_param *p = a->params;
	int k = 0;

	while ((1u << (k + 1)) <= count && k + 1 < AUDIT_INSERT_SHAPES)
		k++;
	for (i = 0; i < count; i++) {
		pending *e = a->batch[from + i];
		scratch_row *s = &a->rows[from + i];
		p = &a->params[i * AUDIT_COLS];
		p[0] = DBP_I(first_seq + (int64_t)i);
		p[1] = DBP_S(s->ts);
		p[2] = DBP_S(e->actor);
		p[3] = DBP_S(e->action);
		p[4] = DBP_S(e->object);
		p[5] = DBP_S(e->details);
		p[6] = DBP_S(s->prev_hex);
		p[7] = DBP_S(s->hash_hex);
	}
	err = db_exec(a->conn, a->insert_sql[k], a->params, (int)(count * AUDIT_COLS), NULL);
	return err;
}

/* One transaction for batch[0..n). On success *last_seq/last_hex are the new
 * head; on failure nothing of the batch remains. */
static egov_err commit_batch_once(audit_log *a, size_t n, int64_t *last_seq, char last_hex[AUDIT_HEX_LEN + 1])
{
	unsigned char prev[AUDIT_HASH_LEN], hash[AUDIT_HASH_LEN];
	int64_t head_seq = 0;
	size_t i, done, chunk;
	bool in_tx = false;
	audit_fields f;
	egov_err err;

	err = db_begin(a->conn);
	if (err)
		goto out;
	in_tx = true;
	if (db_conn_kind(a->conn) == DB_POSTGRES) {
		/* Serialises writers across nodes; plain readers still proceed. */
		err = db_exec(a->conn, "LOCK TABLE audit_log IN EXCLUSIVE MODE", NULL, 0, NULL);
		if (err)
			goto out;
	}
	err = load_head(a->conn, &head_seq, prev);
	if (err)
		goto out;

	for (i = 0; i < n; i++) {
		pending *e = a->batch[i];
		scratch_row *s = &a->rows[i];
		next_timestamp(a, s->ts);
		f = (audit_fields){.seq = head_seq + 1 + (int64_t)i,
				   .ts = s->ts,
				   .actor = e->actor,
				   .action = e->action,
				   .object = e->object,
				   .details = e->details};
		err = audit_hash_compute(&a->hasher, prev, &f, hash);
		if (err)
			goto out;
		audit_hex_encode(prev, s->prev_hex);
		audit_hex_encode(hash, s->hash_hex);
		memcpy(prev, hash, AUDIT_HASH_LEN);
	}
	for (done = 0; done < n; done += chunk) {
		chunk = n - done;
		if (chunk > AUDIT_INSERT_ROWS_MAX)
			chunk = AUDIT_INSERT_ROWS_MAX;
		/* Largest power of two not above what is left. */
		while (chunk & (chunk - 1))
			chunk &= chunk - 1;
		err = insert_rows(a, head_seq + 1 + (int64_t)done, done, chunk);
		if (err)
			goto out;
	}
	/* A COMMIT that failed may leave the transaction open (SQLite on
	 * BUSY), so it is rolled back like any other failure. */
	err = db_commit(a->conn);
	if (err)
		goto out;
	in_tx = false;
	for (i = 0; i < n; i++)
		a->batch[i]->seq = head_seq + 1 + (int64_t)i;
	*last_seq = head_seq + (int64_t)n;
	memcpy(last_hex, a->rows[n - 1].hash_hex, sizeof a->rows[n - 1].hash_hex);
out:
	if (in_tx && err)
		db_rollback(a->conn);
	return err;
}

static void run_checkpoint(audit_log *a, int64_t old_len, int64_t new_len, const char *hash_hex)
{
	audit_checkpoint_fn fn;
	int64_t every;
	void *ctx;

	pthread_mutex_lock(&a->mu);
	fn = a->cp_fn;
	every = a->cp_every;
	ctx = a->cp_ctx;
	pthread_mutex_unlock(&a->mu);
	if (fn && every > 0 && old_len / every != new_len / every)
		fn(ctx, new_len, hash_hex);
}

/* Commits batch[0..n); on success the new head is in *head_seq/head_hex and
 * *old_len is the length before. */
static egov_err commit_batch(audit_log *a, size_t n, int64_t *old_len, int64_t *head_seq,
			     char head_hex[AUDIT_HEX_LEN + 1])
{
	int64_t last_seq = 0;
	egov_err err = EGOV_OK;
	int attempt;

	for (attempt = 0; attempt <= AUDIT_CONFLICT_RETRIES; attempt++) {
		err = commit_batch_once(a, n, &last_seq, head_hex);
		if (err != EGOV_ECONFLICT)
			break;
	}
	if (err)
		goto out;
	*old_len = atomic_load(&a->length);
	*head_seq = last_seq;
	atomic_store(&a->length, last_seq);
out:
	return err;
}

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Waits (mu held) until the group that was just released has queued again
 * or the linger time passed. Without this the writer would commit the first
 * one or two callers to come back, each batch paying a whole fsync, while
 * the rest are still waking up: batches shrink to a few records. A lone
 * sequential caller has group 1 and never waits. */
static void linger(audit_log *a)
{
	struct timespec until;
	int64_t deadline;

	if (a->queued >= a->group || a->closing)
		return;
	deadline = mono_us() + a->linger_us;
	until.tv_sec = (time_t)(deadline / 1000000);
	until.tv_nsec = (long)(deadline % 1000000) * 1000;
	while (a->queued < a->group && !a->closing)
		if (pthread_cond_timedwait(&a->work_cv, &a->mu, &until) == ETIMEDOUT)
			break;
}

static wake_node *batch_at(void *ctx, size_t i)
{
	return &((audit_log *)ctx)->batch[i]->done;
}

static void *writer_main(void *arg)
{
	char head_hex[AUDIT_HEX_LEN + 1];
	int64_t t0, took, old_len = 0, head_seq = 0;
	audit_log *a = arg;
	size_t n, i;
	egov_err err;

	pthread_mutex_lock(&a->mu);
	for (;;) {
		while (!a->q_head && !a->closing)
			pthread_cond_wait(&a->work_cv, &a->mu);
		if (!a->q_head)
			break;
		linger(a);
		for (n = 0; a->q_head && n < AUDIT_BATCH_MAX; n++) {
			a->batch[n] = a->q_head;
			a->q_head = a->q_head->next;
		}
		if (!a->q_head)
			a->q_tail = NULL;
		a->queued -= n;
		pthread_mutex_unlock(&a->mu);

		t0 = mono_us();
		err = commit_batch(a, n, &old_len, &head_seq, head_hex);
		took = mono_us() - t0;
		atomic_fetch_add(&a->stat_batches, 1);
		atomic_fetch_add(&a->stat_records, (int64_t)n);
		atomic_fetch_add(&a->stat_commit_us, took);
		for (i = 0; i < n; i++)
			a->batch[i]->err = err;
		/* The pendings live on their callers' stacks: none is touched
		 * by the writer after this. */
		wake_tree_release(n, batch_at, a);
		/* After the callers are released: a checkpoint may be slow. */
		if (!err)
			run_checkpoint(a, old_len, head_seq, head_hex);

		pthread_mutex_lock(&a->mu);
		a->group = n;
		/* Waiting longer than a commit takes would cost more than the
		 * fsync it saves. */
		a->linger_us = took < AUDIT_LINGER_MAX_US ? took : AUDIT_LINGER_MAX_US;
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

/* ---- public ---------------------------------------------------------------- */

static void log_free(audit_log *a)
{
	int k;

	if (!a)
		return;
	if (a->conn)
		db_conn_close(a->conn);
	audit_hasher_release(&a->hasher);
	for (k = 0; k < AUDIT_INSERT_SHAPES; k++)
		free(a->insert_sql[k]);
	free(a->rows);
	free(a->batch);
	pthread_cond_destroy(&a->work_cv);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

egov_err audit_open(db *d, audit_log **out)
{
	unsigned char hash[AUDIT_HASH_LEN];
	pthread_condattr_t attr;
	audit_log *a = NULL;
	int64_t seq = 0;
	egov_err err = EGOV_ENOMEM;

	*out = NULL;
	a = calloc(1, sizeof *a);
	if (!a)
		goto out;
	pthread_mutex_init(&a->mu, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&a->work_cv, &attr);
	pthread_condattr_destroy(&attr);
	a->group = 1;
	a->rows = calloc(AUDIT_BATCH_MAX, sizeof *a->rows);
	a->batch = calloc(AUDIT_BATCH_MAX, sizeof *a->batch);
	if (!a->rows || !a->batch)
		goto out;
	err = build_insert_sql(a);
	if (err)
		goto out;
	err = audit_hasher_init(&a->hasher);
	if (err)
		goto out;
	err = db_conn_open(d, &a->conn);
	if (err)
		goto out;
	/* Read the head now so a missing table or a corrupt head fails the
	 * open, not the first caller. */
	err = load_head(a->conn, &seq, hash);
	if (err)
		goto out;
	atomic_store(&a->length, seq);
	if (pthread_create(&a->thread, NULL, writer_main, a) != 0) {
		err = EGOV_EINTERNAL;
		goto out;
	}
	a->thread_started = true;
	*out = a;
	a = NULL;
out:
	log_free(a);
	return err;
}

void audit_close(audit_log *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	a->closing = true;
	pthread_cond_signal(&a->work_cv);
	pthread_mutex_unlock(&a->mu);
	if (a->thread_started)
		pthread_join(a->thread, NULL);
	log_free(a);
}

egov_err audit_append(audit_log *a, const char *actor, const char *action, const char *object,
		      const char *details, int64_t *seq_out)
{
	pending p = {0};
	egov_err err = EGOV_EINVAL;

	if (seq_out)
		*seq_out = 0;
	if (!a || !valid_name(actor) || !valid_name(action) || !valid_name(object))
		goto out;
	if (!details)
		details = "{}";
	else if (!valid_details(details))
		goto out;
	p.actor = actor;
	p.action = action;
	p.object = object;
	p.details = details;

	if ((err = wake_init(&p.done)))
		goto out;
	pthread_mutex_lock(&a->mu);
	if (a->closing) {
		pthread_mutex_unlock(&a->mu);
		wake_destroy(&p.done);
		err = EGOV_EUNAVAILABLE;
		goto out;
	}
	if (a->q_tail)
		a->q_tail->next = &p;
	else
		a->q_head = &p;
	a->q_tail = &p;
	a->queued++;
	/* Wake the writer when work appears and when the group is complete;
	 * between the two it is lingering on a timer. */
	if (a->queued == 1 || a->queued >= a->group)
		pthread_cond_signal(&a->work_cv);
	pthread_mutex_unlock(&a->mu);
	wake_wait(&p.done);
	wake_destroy(&p.done);
	err = p.err;
	if (!err && seq_out)
		*seq_out = p.seq;
out:
	return err;
}

int64_t audit_length(audit_log *a)
{
	return a ? atomic_load(&a->length) : 0;
}

void audit_stats_get(audit_log *a, audit_stats *out)
{
	out->batches = atomic_load(&a->stat_batches);
	out->records = atomic_load(&a->stat_records);
	out->commit_us = atomic_load(&a->stat_commit_us);
}

void audit_set_checkpoint(audit_log *a, int64_t every_n, audit_checkpoint_fn fn, void *ctx)
{
	pthread_mutex_lock(&a->mu);
	a->cp_every = every_n;
	a->cp_fn = fn;
	a->cp_ctx = ctx;
	pthread_mutex_unlock(&a->mu);
}
