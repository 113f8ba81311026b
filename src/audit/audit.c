/*
 * audit.c: the audit log: input checks, the log's descriptor for the
 * chain-log engine (core/chainlog.h, which writes and verifies it), the
 * module's one log and its lifecycle, and the schema.
 *
 * Invariants:
 * - The record format is the engine's with the columns of audit_chain in
 *   that order; it is the format audit.h documents and existing databases
 *   hold, so they verify unchanged.
 * - g_log is read under g_lifecycle's read side by every append and
 *   replaced under its write side, so audit_close() waits for appends in
 *   progress and none uses a closed log.
 * - The checkpoint hook is the module's setting, not the log's: set before
 *   audit_open() (the trust layer may start first) it applies when the log
 *   opens.
 */
#include <pthread.h>
#include <string.h>

#include <stdio.h>

#include <cjson/cJSON.h>

#include "audit/audit.h"
#include "audit/audit_int.h"
#include "core/app.h"
#include "core/utf8.h"
#include "core/banned.h"

static const chainlog_col audit_cols[AUDIT_NCOLS] = {
	{"ts", CHAINLOG_TIME},	   {"actor", CHAINLOG_TEXT},   {"action", CHAINLOG_TEXT},
	{"object", CHAINLOG_TEXT}, {"details", CHAINLOG_TEXT},
};

const chainlog_desc audit_chain = {
	.table = "audit_log",
	.seq_col = "seq",
	.prev_col = "prev_hash",
	.hash_col = "hash",
	.cols = audit_cols,
	.ncols = AUDIT_NCOLS,
	.log_event = "audit",
	.what = "audit log",
	/* Far above what concurrent appenders queue between two commits;
	 * bounds the writer's memory and how long a batch holds the lock. */
	.batch_max = 4096,
	.insert_rows_max = 64,
	/* Large enough that paging costs nothing next to hashing, small
	 * enough to keep a PostgreSQL result to a few megabytes. */
	.verify_page = 8192,
};

static chainlog *g_log;
static pthread_rwlock_t g_lifecycle = PTHREAD_RWLOCK_INITIALIZER;
static pthread_mutex_t g_cp_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t g_cp_every;
static audit_checkpoint_fn g_cp_fn;
static void *g_cp_ctx;

/* ---- input checks ------------------------------------------------------ */

/* Strict UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF). Checked here because PostgreSQL refuses invalid text, and one
 * caller's bad bytes must not fail the whole batch it shares with others. */
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
	return utf8_valid(s, n);
}

static bool valid_details(const char *s)
{
	size_t n = strnlen(s, AUDIT_DETAILS_MAX + 1);
	const char *end = NULL;
	cJSON *j = NULL;
	bool ok = false;

	if (n > AUDIT_DETAILS_MAX || !utf8_valid(s, n))
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

egov_err audit_values(const char *actor, const char *action, const char *object, const char *details,
		      db_param v[AUDIT_NCOLS])
{
	if (!valid_name(actor) || !valid_name(action) || !valid_name(object))
		return EGOV_EINVAL;
	if (!details)
		details = "{}";
	else if (!valid_details(details))
		return EGOV_EINVAL;
	v[0] = DBP_NULLV; /* ts: the appender's */
	v[1] = DBP_S(actor);
	v[2] = DBP_S(action);
	v[3] = DBP_S(object);
	v[4] = DBP_S(details);
	return EGOV_OK;
}

/* ---- the module's log ------------------------------------------------------ */

egov_err audit_open(db *d)
{
	chainlog *l = NULL;
	egov_err err = EGOV_ECONFLICT;

	pthread_rwlock_wrlock(&g_lifecycle);
	if (g_log)
		goto out;
	if ((err = chainlog_open(&audit_chain, d, NULL, &l)))
		goto out;
	pthread_mutex_lock(&g_cp_mu);
	chainlog_set_checkpoint(l, g_cp_every, g_cp_fn, g_cp_ctx);
	pthread_mutex_unlock(&g_cp_mu);
	g_log = l;
out:
	pthread_rwlock_unlock(&g_lifecycle);
	return err;
}

void audit_close(void)
{
	chainlog *l;

	pthread_rwlock_wrlock(&g_lifecycle);
	l = g_log;
	g_log = NULL;
	pthread_rwlock_unlock(&g_lifecycle);
	chainlog_close(l);
}

bool audit_available(void)
{
	bool open;

	pthread_rwlock_rdlock(&g_lifecycle);
	open = g_log != NULL;
	pthread_rwlock_unlock(&g_lifecycle);
	return open || app()->db;
}

egov_err audit_append(const char *actor, const char *action, const char *object, const char *details,
		      int64_t *seq_out)
{
	db_param v[AUDIT_NCOLS];
	egov_err err;

	if (seq_out)
		*seq_out = 0;
	if ((err = audit_values(actor, action, object, details, v)))
		return err;
	pthread_rwlock_rdlock(&g_lifecycle);
	if (g_log)
		err = chainlog_append(g_log, v, seq_out);
	else if (app()->db)
		err = chainlog_append_direct(&audit_chain, app()->db, v, seq_out);
	else
		err = EGOV_EUNAVAILABLE;
	pthread_rwlock_unlock(&g_lifecycle);
	return err;
}

egov_err audit_append_tx(db_conn *c, const char *actor, const char *action, const char *object,
			 const char *details, int64_t *seq_out)
{
	db_param v[AUDIT_NCOLS];
	int64_t seq = 0;
	egov_err err;

	if (seq_out)
		*seq_out = 0;
	if ((err = audit_values(actor, action, object, details, v)) ||
	    (err = chainlog_append_tx(&audit_chain, c, v, &seq)))
		return err;
	/* So the writer's figure and the checkpoint hook catch up. */
	pthread_rwlock_rdlock(&g_lifecycle);
	chainlog_note_append(g_log, seq);
	pthread_rwlock_unlock(&g_lifecycle);
	if (seq_out)
		*seq_out = seq;
	return EGOV_OK;
}

int64_t audit_length(void)
{
	int64_t n;

	pthread_rwlock_rdlock(&g_lifecycle);
	n = chainlog_length(g_log);
	pthread_rwlock_unlock(&g_lifecycle);
	return n;
}

void audit_set_checkpoint(int64_t every_n, audit_checkpoint_fn fn, void *ctx)
{
	pthread_rwlock_rdlock(&g_lifecycle);
	pthread_mutex_lock(&g_cp_mu);
	g_cp_every = every_n;
	g_cp_fn = fn;
	g_cp_ctx = ctx;
	if (g_log)
		chainlog_set_checkpoint(g_log, every_n, fn, ctx);
	pthread_mutex_unlock(&g_cp_mu);
	pthread_rwlock_unlock(&g_lifecycle);
}

void audit_stats_get(audit_stats *out)
{
	chainlog_stats st = {0};

	pthread_rwlock_rdlock(&g_lifecycle);
	if (g_log)
		chainlog_stats_get(g_log, &st);
	pthread_rwlock_unlock(&g_lifecycle);
	out->batches = st.batches;
	out->records = st.records;
	out->commit_us = st.commit_us;
}

/* ---- verifying ----------------------------------------------------------------- */

const char *audit_fault_name(audit_fault f)
{
	return chainlog_fault_name(f);
}

egov_err audit_verify(db_conn *c, audit_verify_result *res)
{
	chainlog_verify_result r;
	egov_err err;

	memset(res, 0, sizeof *res);
	if ((err = chainlog_verify(&audit_chain, c, NULL, &r)))
		return err;
	res->records = r.records;
	res->first_bad = r.first_bad;
	res->fault = r.fault;
	memcpy(res->head, r.head, sizeof res->head);
	return EGOV_OK;
}

egov_err audit_record_hash(db_conn *c, int64_t seq, char hash[65], bool *found)
{
	db_param p[] = {DBP_I(seq)};
	db_rows *rows = NULL;
	const char *h;
	egov_err err;

	*found = false;
	hash[0] = '\0';
	if ((err = db_query(c, "SELECT hash FROM audit_log WHERE seq = ?", p, 1, &rows)) ||
	    (err = db_rows_next(rows, found)))
		goto out;
	if (*found) {
		h = db_rows_text(rows, 0);
		snprintf(hash, 65, "%s", h ? h : "");
	}
out:
	db_rows_free(rows);
	return err;
}
