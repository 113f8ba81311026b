/*
 * chainlog_verify.c: walks a chain log and names the first fault
 * (chainlog.h), from the database or from a user's source of records.
 *
 * The walk reads records in seq order (keyset pages from the database, so
 * memory stays flat on any backend), keeping only the last good record L:
 * at first a virtual record start_seq - 1 whose hash is start_prev (32
 * zero bytes for a whole log). A record R is good when R.seq = L.seq + 1,
 * R.prev_hash = L.hash ("linked") and R's recomputed hash equals its stored
 * hash ("consistent"). Hashing reuses one digest context and hex is decoded
 * by table: no allocation per record. The user's good() hook sees each good
 * record in order.
 *
 * At the first record R that is not good the walk stops and the fault is
 * named by this rule, applied in order. Two lookups, run only then:
 * owner(h) = the lowest seq whose stored hash is h (start_seq - 1 for
 * start_prev), successor(h) = the lowest seq above R.seq whose prev_hash is
 * h.
 *   1. R.seq > L.seq + 1: DELETED at L.seq + 1 (a gap).
 *      R.seq < L.seq + 1 (only a first record numbered below start_seq):
 *      INSERTED at R.seq.
 *   2. Linked but not consistent: if successor(L.hash) exists, a later
 *      record also follows L, so R was slipped in: INSERTED at R.seq.
 *      Otherwise R's content was altered: CHANGED at R.seq.
 *   3. Not linked:
 *      a. owner(R.prev_hash) > R.seq: R's predecessor sits later in the
 *         log, so records were moved: REORDERED at R.seq.
 *      b. successor(L.hash) exists: L's true follower sits later, so R
 *         (and what follows it up to that follower) was slipped in:
 *         INSERTED at R.seq.
 *      c. owner(R.prev_hash) = j < L.seq: R follows an earlier record, so
 *         the records j+1 .. L.seq were slipped in before it: INSERTED at
 *         j + 1.
 *      d. R is consistent when hashed with seq R.seq + d, 1 <= d <= 64: d
 *         records were removed and the rest renumbered: DELETED at R.seq.
 *      e. R is consistent and L is a real record: R still names L's
 *         original hash, so L was rewritten with a recomputed hash: CHANGED
 *         at L.seq.
 *      f. Otherwise: CHANGED at R.seq.
 * Records whose contents were swapped with every column but seq (hash and
 * prev_hash included) are caught by 3a; contents swapped while hash and
 * prev_hash stay put read as CHANGED, which they also are. A record a
 * source cannot read at all (ECORRUPT) is CHANGED at L.seq + 1.
 */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/chainlog.h"
#include "core/banned.h"

/* How far back a renumbering after deletions is recognised (rule 3d). */
#define VERIFY_RENUMBER_MAX 64

const char *chainlog_fault_name(chainlog_fault f)
{
	switch (f) {
	case CHAINLOG_FAULT_NONE:
		return "none";
	case CHAINLOG_FAULT_CHANGED:
		return "changed";
	case CHAINLOG_FAULT_DELETED:
		return "deleted";
	case CHAINLOG_FAULT_INSERTED:
		return "inserted";
	case CHAINLOG_FAULT_REORDERED:
		return "reordered";
	}
	return "unknown";
}

/* ---- the database as a source ----------------------------------------------- */

typedef struct db_source {
	const chainlog_desc *d;
	db_conn *c;
	char *page_sql, *owner_sql, *succ_sql;
	db_rows *rows;
	int64_t after;
	int in_page;
	bool end;
	db_param vals[CHAINLOG_COLS_MAX];
} db_source;

static egov_err dbs_next(void *src, chainlog_row *row, bool *has, char *why, size_t whylen)
{
	db_source *s = src;
	const chainlog_desc *d = s->d;
	db_param p[1];
	const void *blob;
	size_t i, len;
	int col;
	egov_err err;

	(void)why;
	(void)whylen;
	*has = false;
	for (;;) {
		if (s->end)
			return EGOV_OK;
		if (!s->rows) {
			p[0] = DBP_I(s->after);
			if ((err = db_query(s->c, s->page_sql, p, 1, &s->rows)))
				return err;
			s->in_page = 0;
		}
		if ((err = db_rows_next(s->rows, has)))
			return err;
		if (*has)
			break;
		db_rows_free(s->rows);
		s->rows = NULL;
		if (s->in_page < d->verify_page)
			s->end = true;
	}
	row->seq = db_rows_int(s->rows, 0);
	for (i = 0; i < d->ncols; i++) {
		col = (int)i + 1;
		switch (d->cols[i].kind) {
		case CHAINLOG_INT:
			s->vals[i] = DBP_I(db_rows_int(s->rows, col));
			break;
		case CHAINLOG_STORED:
			len = 0;
			blob = db_rows_isnull(s->rows, col) ? NULL : db_rows_blob(s->rows, col, &len);
			s->vals[i] = db_rows_isnull(s->rows, col) ? DBP_NULLV : DBP_B(blob ? blob : "", blob ? len : 0);
			break;
		default:
			s->vals[i] = DBP_S(db_rows_text(s->rows, col));
			break;
		}
	}
	row->vals = s->vals;
	row->prev_hash = db_rows_text(s->rows, (int)d->ncols + 1);
	row->hash = db_rows_text(s->rows, (int)d->ncols + 2);
	s->after = row->seq;
	s->in_page++;
	return EGOV_OK;
}

static void dbs_pause(void *src)
{
	db_source *s = src;

	db_rows_free(s->rows);
	s->rows = NULL;
	s->end = true;
}

static egov_err dbs_owner(void *src, const char *hex, int64_t *seq, bool *found)
{
	db_source *s = src;
	db_param p[] = {DBP_S(hex)};

	return db_query_int(s->c, s->owner_sql, p, 1, seq, found);
}

static egov_err dbs_successor(void *src, const char *hex, int64_t above, int64_t *seq, bool *found)
{
	db_source *s = src;
	db_param p[] = {DBP_S(hex), DBP_I(above)};

	return db_query_int(s->c, s->succ_sql, p, 2, seq, found);
}

static egov_err dbs_init(db_source *s, const chainlog_desc *d, db_conn *c)
{
	const char *t = d->table, *seq = d->seq_col;
	size_t i;
	buf b;
	egov_err err;

	memset(s, 0, sizeof *s);
	s->d = d;
	s->c = c;
	/* Below any seq, so that a record numbered 0 or less is seen. */
	s->after = INT64_MIN;
	if (d->ncols > CHAINLOG_COLS_MAX || d->verify_page < 1)
		return EGOV_EINVAL;
	buf_init(&b, 1 << 16);
	err = buf_addf(&b, "SELECT %s", seq);
	for (i = 0; i < d->ncols && !err; i++)
		err = buf_addf(&b, ", %s", d->cols[i].name);
	if (err || (err = buf_addf(&b, ", %s, %s FROM %s WHERE %s > ? ORDER BY %s LIMIT %d", d->prev_col, d->hash_col,
				   t, seq, seq, d->verify_page))) {
		buf_release(&b);
		return err;
	}
	s->page_sql = buf_detach(&b, NULL);
	buf_init(&b, 1 << 12);
	if ((err = buf_addf(&b, "SELECT %s FROM %s WHERE %s = ? ORDER BY %s LIMIT 1", seq, t, d->hash_col, seq))) {
		buf_release(&b);
		return err;
	}
	s->owner_sql = buf_detach(&b, NULL);
	buf_init(&b, 1 << 12);
	if ((err = buf_addf(&b, "SELECT %s FROM %s WHERE %s = ? AND %s > ? ORDER BY %s LIMIT 1", seq, t, d->prev_col,
			    seq, seq))) {
		buf_release(&b);
		return err;
	}
	s->succ_sql = buf_detach(&b, NULL);
	return EGOV_OK;
}

static void dbs_release(db_source *s)
{
	db_rows_free(s->rows);
	free(s->page_sql);
	free(s->owner_sql);
	free(s->succ_sql);
}

static const chainlog_source db_source_ops = {dbs_next, dbs_pause, dbs_owner, dbs_successor};

/* ---- the walk ------------------------------------------------------------------- */

/* The first bad record, copied out of the page so the lookups can run. */
typedef struct bad_row {
	int64_t seq;
	bool prev_ok, hash_ok, linked, consistent;
	unsigned char prev[CHAINLOG_HASH_LEN], hash[CHAINLOG_HASH_LEN];
	db_param vals[CHAINLOG_COLS_MAX];
	char *texts[CHAINLOG_COLS_MAX];
} bad_row;

static void bad_row_release(bad_row *b)
{
	size_t i;

	for (i = 0; i < CHAINLOG_COLS_MAX; i++)
		free(b->texts[i]);
}

/* The hashed values of r into b (stored columns are not needed). */
static egov_err bad_row_copy(const chainlog_desc *d, const chainlog_row *r, bad_row *b)
{
	size_t i;

	for (i = 0; i < d->ncols; i++) {
		b->vals[i] = r->vals[i];
		if (d->cols[i].kind == CHAINLOG_STORED) {
			b->vals[i] = DBP_NULLV;
		} else if (r->vals[i].type == DBP_TEXT && r->vals[i].p) {
			if (!(b->texts[i] = strdup(r->vals[i].p)))
				return EGOV_ENOMEM;
			b->vals[i].p = b->texts[i];
		}
	}
	return EGOV_OK;
}

typedef struct walk {
	const chainlog_desc *d;
	const chainlog_source *src;
	void *sctx;
	chainlog_hasher h;
	int64_t start_seq;
	unsigned char start_prev[CHAINLOG_HASH_LEN];
	chainlog_verify_result *res;
} walk;

static void set_fault(chainlog_verify_result *res, chainlog_fault f, int64_t seq)
{
	res->fault = f;
	res->first_bad = seq;
}

/* Whether (seq, vals) after prev hashes to stored. A value that cannot be
 * hashed (a NULL text) is not consistent; only the digest failing is an
 * error. */
static egov_err consistent_as(walk *w, const unsigned char prev[CHAINLOG_HASH_LEN],
			      const unsigned char stored[CHAINLOG_HASH_LEN], int64_t seq, const db_param *vals, bool *ok)
{
	unsigned char got[CHAINLOG_HASH_LEN];
	egov_err err = chainlog_hash(w->d, &w->h, prev, seq, vals, NULL, got);

	*ok = !err && memcmp(got, stored, CHAINLOG_HASH_LEN) == 0;
	return err == EGOV_EINVAL ? EGOV_OK : err;
}

static egov_err owner_of(walk *w, const unsigned char h[CHAINLOG_HASH_LEN], int64_t *seq, bool *found)
{
	char hex[CHAINLOG_HEX_LEN + 1];

	if (memcmp(h, w->start_prev, CHAINLOG_HASH_LEN) == 0) {
		*seq = w->start_seq - 1;
		*found = true;
		return EGOV_OK;
	}
	chainlog_hex_encode(h, hex);
	return w->src->owner(w->sctx, hex, seq, found);
}

/* Applies the rule in the file comment to the first bad record. */
static egov_err classify(walk *w, int64_t last_seq, const unsigned char last_hash[CHAINLOG_HASH_LEN],
			 const bad_row *r)
{
	chainlog_verify_result *res = w->res;
	char last_hex[CHAINLOG_HEX_LEN + 1];
	int64_t owner = 0, succ = 0;
	bool owner_found = false, succ_found = false, ok = false;
	egov_err err = EGOV_OK;
	int d;

	if (r->seq > last_seq + 1) {
		set_fault(res, CHAINLOG_FAULT_DELETED, last_seq + 1);
		goto out;
	}
	if (r->seq < last_seq + 1) {
		set_fault(res, CHAINLOG_FAULT_INSERTED, r->seq);
		goto out;
	}
	chainlog_hex_encode(last_hash, last_hex);
	if ((err = w->src->successor(w->sctx, last_hex, r->seq, &succ, &succ_found)))
		goto out;
	if (r->linked) {
		set_fault(res, succ_found ? CHAINLOG_FAULT_INSERTED : CHAINLOG_FAULT_CHANGED, r->seq);
		goto out;
	}
	if (r->prev_ok && (err = owner_of(w, r->prev, &owner, &owner_found)))
		goto out;
	if (owner_found && owner > r->seq) {
		set_fault(res, CHAINLOG_FAULT_REORDERED, r->seq);
		goto out;
	}
	if (succ_found) {
		set_fault(res, CHAINLOG_FAULT_INSERTED, r->seq);
		goto out;
	}
	if (owner_found && owner < last_seq) {
		set_fault(res, CHAINLOG_FAULT_INSERTED, owner + 1);
		goto out;
	}
	if (r->prev_ok && r->hash_ok) {
		for (d = 1; d <= VERIFY_RENUMBER_MAX; d++) {
			if ((err = consistent_as(w, r->prev, r->hash, r->seq + d, r->vals, &ok)))
				goto out;
			if (ok) {
				set_fault(res, CHAINLOG_FAULT_DELETED, r->seq);
				goto out;
			}
		}
	}
	set_fault(res, CHAINLOG_FAULT_CHANGED, r->consistent && last_seq >= w->start_seq ? last_seq : r->seq);
out:
	return err;
}

egov_err chainlog_verify_source(const chainlog_desc *d, const chainlog_source *src, void *src_ctx,
				const chainlog_verify_opts *o, chainlog_verify_result *res)
{
	unsigned char last_hash[CHAINLOG_HASH_LEN], prev[CHAINLOG_HASH_LEN], hash[CHAINLOG_HASH_LEN];
	walk w = {.d = d, .src = src, .sctx = src_ctx, .res = res};
	bool found_bad = false, has = false, prev_ok, hash_ok, linked, consistent;
	bad_row bad;
	chainlog_row row;
	int64_t last_seq;
	egov_err err;

	memset(res, 0, sizeof *res);
	memset(&bad, 0, sizeof bad);
	w.start_seq = o && o->start_seq ? o->start_seq : 1;
	if (o && o->start_prev)
		memcpy(w.start_prev, o->start_prev, CHAINLOG_HASH_LEN);
	last_seq = w.start_seq - 1;
	memcpy(last_hash, w.start_prev, sizeof last_hash);
	if (d->ncols > CHAINLOG_COLS_MAX) {
		err = EGOV_EINVAL;
		goto out;
	}
	if ((err = chainlog_hasher_init(&w.h)))
		goto out;

	for (;;) {
		res->why[0] = '\0';
		err = src->next(src_ctx, &row, &has, res->why, sizeof res->why);
		if (err == EGOV_ECORRUPT) {
			set_fault(res, CHAINLOG_FAULT_CHANGED, last_seq + 1);
			err = EGOV_OK;
			break;
		}
		if (err)
			goto out;
		if (!has)
			break;
		prev_ok = chainlog_hex_decode(row.prev_hash, prev);
		hash_ok = chainlog_hex_decode(row.hash, hash);
		linked = prev_ok && memcmp(prev, last_hash, CHAINLOG_HASH_LEN) == 0;
		consistent = false;
		if (prev_ok && hash_ok && (err = consistent_as(&w, prev, hash, row.seq, row.vals, &consistent)))
			goto out;
		if (row.seq == last_seq + 1 && linked && consistent) {
			last_seq = row.seq;
			memcpy(last_hash, hash, sizeof last_hash);
			res->records++;
			if (o && o->good && (err = o->good(o->ctx, &row)))
				goto out;
			continue;
		}
		bad.seq = row.seq;
		bad.prev_ok = prev_ok;
		bad.hash_ok = hash_ok;
		bad.linked = linked;
		bad.consistent = consistent;
		memcpy(bad.prev, prev, sizeof prev);
		memcpy(bad.hash, hash, sizeof hash);
		if ((err = bad_row_copy(d, &row, &bad)))
			goto out;
		found_bad = true;
		break;
	}
	/* The page is closed before the lookups: one statement at a time is
	 * all a connection is promised. */
	src->pause(src_ctx);
	if (found_bad && (err = classify(&w, last_seq, last_hash, &bad)))
		goto out;
	res->last_seq = last_seq;
	chainlog_hex_encode(last_hash, res->head);
out:
	bad_row_release(&bad);
	chainlog_hasher_release(&w.h);
	return err;
}

egov_err chainlog_verify(const chainlog_desc *d, db_conn *c, const chainlog_verify_opts *o,
			 chainlog_verify_result *res)
{
	db_source s;
	egov_err err;

	memset(res, 0, sizeof *res);
	if (!(err = dbs_init(&s, d, c)))
		err = chainlog_verify_source(d, &db_source_ops, &s, o, res);
	dbs_release(&s);
	return err;
}
