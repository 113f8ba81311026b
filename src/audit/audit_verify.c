/*
 * audit_verify.c: walks the audit chain and names the first fault.
 *
 * The walk reads rows in seq order, a page at a time (keyset paging, so
 * memory stays flat on any backend), keeping only the last good record L
 * (initially a virtual record 0 whose hash is 32 zero bytes). A row R is
 * good when R.seq = L.seq + 1, R.prev_hash = L.hash ("linked") and R's
 * recomputed hash equals its stored hash ("consistent"). Hashing reuses one
 * digest context and hex is decoded by hand: no allocation per row.
 *
 * At the first row R that is not good the walk stops and the fault is
 * named by this rule, applied in order. Two lookups, run only then:
 * owner(h) = the lowest seq whose stored hash is h (0 for the zero hash),
 * successor(h) = the lowest seq above R.seq whose prev_hash is h.
 *   1. R.seq > L.seq + 1: DELETED at L.seq + 1 (a gap).
 *      R.seq < L.seq + 1 (only a first row numbered 0 or below):
 *      INSERTED at R.seq.
 *   2. Linked but not consistent: if successor(L.hash) exists, a later row
 *      also follows L, so R was slipped in: INSERTED at R.seq. Otherwise
 *      R's content was altered: CHANGED at R.seq.
 *   3. Not linked:
 *      a. owner(R.prev_hash) > R.seq: R's predecessor sits later in the
 *         log, so rows were moved: REORDERED at R.seq.
 *      b. successor(L.hash) exists: L's true follower sits later, so R (and
 *         what follows it up to that follower) was slipped in: INSERTED at
 *         R.seq.
 *      c. owner(R.prev_hash) = j < L.seq: R follows an earlier record, so
 *         the records j+1 .. L.seq were slipped in before it: INSERTED at
 *         j + 1.
 *      d. R is consistent when hashed with seq R.seq + d, 1 <= d <= 64:
 *         d records were removed and the rest renumbered: DELETED at R.seq.
 *      e. R is consistent and L.seq >= 1: R still names L's original hash,
 *         so L was rewritten with a recomputed hash: CHANGED at L.seq.
 *      f. Otherwise: CHANGED at R.seq.
 * Rows whose contents were swapped with every column but seq (hash and
 * prev_hash included) are caught by 3a; contents swapped while hash and
 * prev_hash stay put read as CHANGED, which they also are.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "audit/audit_int.h"
#include "core/banned.h"

/* Rows fetched per page: large enough that paging costs nothing next to
 * hashing, small enough to keep a PostgreSQL result to a few megabytes. */
#define VERIFY_PAGE 8192
#define STR_(x) #x
#define STR(x) STR_(x)
/* How far back a renumbering after deletions is recognised (rule 3d). */
#define VERIFY_RENUMBER_MAX 64

typedef struct good_rec {
	int64_t seq;
	unsigned char hash[AUDIT_HASH_LEN];
} good_rec;

/* The first bad row, copied out of the page so the lookups can run. */
typedef struct bad_row {
	int64_t seq;
	bool prev_ok, hash_ok, linked, consistent;
	unsigned char prev[AUDIT_HASH_LEN], hash[AUDIT_HASH_LEN];
	char *ts, *actor, *action, *object, *details;
} bad_row;

static const char page_sql[] = "SELECT seq, ts, actor, action, object, details, prev_hash, hash"
			       " FROM audit_log WHERE seq > ? ORDER BY seq LIMIT " STR(VERIFY_PAGE);

const char *audit_fault_name(audit_fault f)
{
	switch (f) {
	case AUDIT_FAULT_NONE:
		return "none";
	case AUDIT_FAULT_CHANGED:
		return "changed";
	case AUDIT_FAULT_DELETED:
		return "deleted";
	case AUDIT_FAULT_INSERTED:
		return "inserted";
	case AUDIT_FAULT_REORDERED:
		return "reordered";
	}
	return "unknown";
}

static void bad_row_release(bad_row *b)
{
	free(b->ts);
	free(b->actor);
	free(b->action);
	free(b->object);
	free(b->details);
}

static egov_err dup_text(const char *s, char **out)
{
	*out = strdup(s ? s : "");
	return *out ? EGOV_OK : EGOV_ENOMEM;
}

/* Whether stored fields hash to stored with the given seq. */
static bool consistent_as(audit_hasher *h, const unsigned char prev[AUDIT_HASH_LEN],
			  const unsigned char stored[AUDIT_HASH_LEN], const audit_fields *f, egov_err *err)
{
	unsigned char got[AUDIT_HASH_LEN];

	*err = audit_hash_compute(h, prev, f, got);
	return !*err && memcmp(got, stored, AUDIT_HASH_LEN) == 0;
}

/* owner(): lowest seq whose stored hash is h. */
static egov_err hash_owner(db_conn *c, const unsigned char h[AUDIT_HASH_LEN], int64_t *seq, bool *found)
{
	static const unsigned char zero[AUDIT_HASH_LEN];
	char hex[AUDIT_HEX_LEN + 1];
	db_param p[1];

	if (memcmp(h, zero, AUDIT_HASH_LEN) == 0) {
		*seq = 0;
		*found = true;
		return EGOV_OK;
	}
	audit_hex_encode(h, hex);
	p[0] = DBP_S(hex);
	return db_query_int(c, "SELECT seq FROM audit_log WHERE hash = ? ORDER BY seq LIMIT 1", p, 1, seq, found);
}

/* successor(): lowest seq above `above` whose prev_hash is h. */
static egov_err hash_successor(db_conn *c, const unsigned char h[AUDIT_HASH_LEN], int64_t above, int64_t *seq,
			       bool *found)
{
	char hex[AUDIT_HEX_LEN + 1];
	db_param p[2];

	audit_hex_encode(h, hex);
	p[0] = DBP_S(hex);
	p[1] = DBP_I(above);
	return db_query_int(c, "SELECT seq FROM audit_log WHERE prev_hash = ? AND seq > ? ORDER BY seq LIMIT 1", p, 2,
			    seq, found);
}

static void set_fault(audit_verify_result *res, audit_fault f, int64_t seq)
{
	res->fault = f;
	res->first_bad = seq;
}

/* Applies the rule in the file comment to the first bad row. */
static egov_err classify(db_conn *c, audit_hasher *h, const good_rec *last, const bad_row *r,
			 audit_verify_result *res)
{
	int64_t owner = 0, succ = 0;
	bool owner_found = false, succ_found = false;
	audit_fields f;
	egov_err err = EGOV_OK;
	int d;

	if (r->seq > last->seq + 1) {
		set_fault(res, AUDIT_FAULT_DELETED, last->seq + 1);
		goto out;
	}
	if (r->seq < last->seq + 1) {
		set_fault(res, AUDIT_FAULT_INSERTED, r->seq);
		goto out;
	}
	err = hash_successor(c, last->hash, r->seq, &succ, &succ_found);
	if (err)
		goto out;
	if (r->linked) {
		set_fault(res, succ_found ? AUDIT_FAULT_INSERTED : AUDIT_FAULT_CHANGED, r->seq);
		goto out;
	}
	if (r->prev_ok) {
		err = hash_owner(c, r->prev, &owner, &owner_found);
		if (err)
			goto out;
	}
	if (owner_found && owner > r->seq) {
		set_fault(res, AUDIT_FAULT_REORDERED, r->seq);
		goto out;
	}
	if (succ_found) {
		set_fault(res, AUDIT_FAULT_INSERTED, r->seq);
		goto out;
	}
	if (owner_found && owner < last->seq) {
		set_fault(res, AUDIT_FAULT_INSERTED, owner + 1);
		goto out;
	}
	if (r->prev_ok && r->hash_ok) {
		f = (audit_fields){.ts = r->ts,
				   .actor = r->actor,
				   .action = r->action,
				   .object = r->object,
				   .details = r->details};
		for (d = 1; d <= VERIFY_RENUMBER_MAX; d++) {
			f.seq = r->seq + d;
			if (consistent_as(h, r->prev, r->hash, &f, &err)) {
				set_fault(res, AUDIT_FAULT_DELETED, r->seq);
				goto out;
			}
			if (err)
				goto out;
		}
	}
	set_fault(res, AUDIT_FAULT_CHANGED, r->consistent && last->seq >= 1 ? last->seq : r->seq);
out:
	return err;
}

egov_err audit_verify(db_conn *c, audit_verify_result *res)
{
	unsigned char prev[AUDIT_HASH_LEN], hash[AUDIT_HASH_LEN], got[AUDIT_HASH_LEN];
	audit_hasher h = {0};
	good_rec last = {0};
	bad_row bad = {0};
	bool found_bad = false, has = false;
	int64_t after = INT64_MIN;
	db_rows *rows = NULL;
	audit_fields f;
	db_param p[1];
	int n;
	egov_err err;

	memset(res, 0, sizeof *res);
	err = audit_hasher_init(&h);
	if (err)
		goto out;

	while (!found_bad) {
		p[0] = DBP_I(after);
		err = db_query(c, page_sql, p, 1, &rows);
		if (err)
			goto out;
		for (n = 0;; n++) {
			bool prev_ok, hash_ok, linked, consistent, texts_ok;

			err = db_rows_next(rows, &has);
			if (err)
				goto out;
			if (!has)
				break;
			f.seq = db_rows_int(rows, 0);
			f.ts = db_rows_text(rows, 1);
			f.actor = db_rows_text(rows, 2);
			f.action = db_rows_text(rows, 3);
			f.object = db_rows_text(rows, 4);
			f.details = db_rows_text(rows, 5);
			after = f.seq;
			texts_ok = f.ts && f.actor && f.action && f.object && f.details;
			prev_ok = audit_hex_decode(db_rows_text(rows, 6), prev);
			hash_ok = audit_hex_decode(db_rows_text(rows, 7), hash);
			linked = prev_ok && memcmp(prev, last.hash, AUDIT_HASH_LEN) == 0;
			consistent = false;
			if (texts_ok && prev_ok && hash_ok) {
				err = audit_hash_compute(&h, prev, &f, got);
				if (err)
					goto out;
				consistent = memcmp(got, hash, AUDIT_HASH_LEN) == 0;
			}
			if (f.seq == last.seq + 1 && linked && consistent) {
				last.seq = f.seq;
				memcpy(last.hash, hash, AUDIT_HASH_LEN);
				res->records++;
				continue;
			}
			bad = (bad_row){.seq = f.seq,
					.prev_ok = prev_ok,
					.hash_ok = hash_ok,
					.linked = linked,
					.consistent = consistent};
			memcpy(bad.prev, prev, AUDIT_HASH_LEN);
			memcpy(bad.hash, hash, AUDIT_HASH_LEN);
			if ((err = dup_text(f.ts, &bad.ts)) || (err = dup_text(f.actor, &bad.actor)) ||
			    (err = dup_text(f.action, &bad.action)) || (err = dup_text(f.object, &bad.object)) ||
			    (err = dup_text(f.details, &bad.details)))
				goto out;
			found_bad = true;
			break;
		}
		db_rows_free(rows);
		rows = NULL;
		if (n < VERIFY_PAGE)
			break;
	}
	/* The page is closed before the lookups: one statement at a time is
	 * all a connection is promised. */
	if (found_bad) {
		err = classify(c, &h, &last, &bad, res);
		if (err)
			goto out;
	}
	audit_hex_encode(last.hash, res->head);
out:
	db_rows_free(rows);
	bad_row_release(&bad);
	audit_hasher_release(&h);
	return err;
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
