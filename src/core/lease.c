/*
 * lease.c: lease_claim() (core/lease.h). Three statements built from the
 * spec: a look for any due row (no transaction), the claim's SELECT (FOR
 * UPDATE OF the table SKIP LOCKED on PostgreSQL) inside BEGIN (IMMEDIATE on
 * SQLite), then one UPDATE per claimed row by its key, and COMMIT.
 *
 * Invariants:
 *  - The callback sees a row only inside the transaction that leases it;
 *    on any error the transaction is rolled back, so a row is either
 *    leased and handed to the callback or neither.
 *  - Keys are read as text and bound back as text: both backends compare
 *    a text parameter with an integer column numerically (SQLite applies
 *    the column's affinity, PostgreSQL infers the parameter's type).
 *  - The SELECT has finished (its rows freed) before the first UPDATE, so
 *    no statement writes the table another statement is still reading.
 */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/lease.h"
#include "core/banned.h"

/* Longest statement built from a spec; the specs are constants of ours
 * (a few hundred bytes), so going over it is a bug in one of them. */
#define LEASE_SQL_MAX 4096
#define LEASE_IDENT_MAX 63

typedef struct keys {
	char name[LEASE_KEYS_MAX][LEASE_IDENT_MAX + 1];
	int n;
} keys;

static bool ident_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_';
}

/* Splits "a, b" into identifiers; EGOV_EINVAL for anything else. */
static egov_err keys_parse(const char *list, keys *k)
{
	const char *p = list;
	size_t n;

	k->n = 0;
	if (!p)
		return EGOV_EINVAL;
	for (;;) {
		while (*p == ' ')
			p++;
		for (n = 0; ident_char(p[n]); n++) {
		}
		if (n == 0 || n > LEASE_IDENT_MAX || k->n == LEASE_KEYS_MAX)
			return EGOV_EINVAL;
		memcpy(k->name[k->n], p, n);
		k->name[k->n++][n] = '\0';
		p += n;
		while (*p == ' ')
			p++;
		if (*p != ',')
			break;
		p++; /* another name must follow */
	}
	return *p ? EGOV_EINVAL : EGOV_OK;
}

/* "FROM table [alias] [join] WHERE [(pending) AND] q.due <= ?" */
static egov_err add_from_where(buf *b, const lease_spec *s, const char *q)
{
	egov_err err;

	if ((err = buf_addf(b, " FROM %s", s->table)) || (s->alias && (err = buf_addf(b, " %s", s->alias))) ||
	    (s->join && (err = buf_addf(b, " %s", s->join))) || (err = buf_adds(b, " WHERE ")) ||
	    (s->pending && (err = buf_addf(b, "(%s) AND ", s->pending))))
		return err;
	return buf_addf(b, "%s.%s <= ?", q, s->due);
}

static egov_err build_probe(buf *b, const lease_spec *s, const char *q)
{
	egov_err err;

	if ((err = buf_adds(b, "SELECT 1")) || (err = add_from_where(b, s, q)))
		return err;
	return buf_adds(b, " LIMIT 1");
}

/* SELECT [columns,] q.key1, ... [, q.attempts] ... ORDER BY ... LIMIT ? */
static egov_err build_select(buf *b, const lease_spec *s, const char *q, const keys *k, bool pg)
{
	egov_err err;
	int i;

	if ((err = buf_adds(b, "SELECT ")) || (s->columns && (err = buf_addf(b, "%s, ", s->columns))))
		return err;
	for (i = 0; i < k->n; i++)
		if ((err = buf_addf(b, "%s%s.%s", i ? ", " : "", q, k->name[i])))
			return err;
	if ((s->attempts && (err = buf_addf(b, ", %s.%s", q, s->attempts))) || (err = add_from_where(b, s, q)))
		return err;
	if (s->order)
		err = buf_addf(b, " ORDER BY %s LIMIT ?", s->order);
	else
		err = buf_addf(b, " ORDER BY %s.%s LIMIT ?", q, s->due);
	if (!err && pg)
		err = buf_addf(b, " FOR UPDATE OF %s SKIP LOCKED", q);
	return err;
}

/* UPDATE table SET due = ? [, attempts = attempts + 1] [, set] WHERE key1 = ? AND ... */
static egov_err build_update(buf *b, const lease_spec *s, const keys *k)
{
	egov_err err;
	int i;

	if ((err = buf_addf(b, "UPDATE %s SET %s = ?", s->table, s->due)) ||
	    (s->attempts && (err = buf_addf(b, ", %s = %s + 1", s->attempts, s->attempts))) ||
	    (s->set && (err = buf_addf(b, ", %s", s->set))))
		return err;
	for (i = 0; i < k->n && !err; i++)
		err = buf_addf(b, "%s%s = ?", i ? " AND " : " WHERE ", k->name[i]);
	return err;
}

static void free_keys(char **v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

egov_err lease_claim(db_conn *c, const lease_spec *s, int64_t now, int64_t lease, int max, const db_param *params,
		     int nparams, lease_row_fn fn, void *ctx, int *claimed)
{
	db_param p[LEASE_PARAMS_MAX + 2], up[LEASE_KEYS_MAX + 1];
	const char *q;
	buf probe, sel, upd;
	keys k;
	db_rows *rows = NULL;
	char **kv = NULL; /* the claimed rows' keys, k.n per row */
	size_t got = 0, i;
	int64_t any = 0;
	bool has = false, open = false, pg;
	int col0, j;
	egov_err err;

	*claimed = 0;
	buf_init(&probe, LEASE_SQL_MAX);
	buf_init(&sel, LEASE_SQL_MAX);
	buf_init(&upd, LEASE_SQL_MAX);
	if (!s || !s->table || !s->due || !fn || max < 0 || max > LEASE_CLAIM_MAX || nparams < 0 ||
	    nparams > LEASE_PARAMS_MAX || (nparams && !params) || keys_parse(s->key, &k)) {
		err = EGOV_EINVAL;
		goto out;
	}
	if (max == 0) {
		err = EGOV_OK;
		goto out;
	}
	pg = db_conn_kind(c) == DB_POSTGRES;
	q = s->alias ? s->alias : s->table;
	if (build_probe(&probe, s, q) || build_select(&sel, s, q, &k, pg) || build_update(&upd, s, &k)) {
		err = EGOV_EINVAL; /* a spec too long for LEASE_SQL_MAX */
		goto out;
	}
	if (nparams)
		memcpy(p, params, (size_t)nparams * sizeof *p);
	p[nparams] = DBP_I(now);
	p[nparams + 1] = DBP_I(max);
	/* Most passes find nothing due: say so without a transaction. */
	if ((err = db_query_int(c, probe.data, p, nparams + 1, &any, &has)) || !has)
		goto out;
	if (!(kv = calloc((size_t)max * (size_t)k.n, sizeof *kv))) {
		err = EGOV_ENOMEM;
		goto out;
	}
	if ((err = db_begin(c)))
		goto out;
	open = true;
	if ((err = db_query(c, sel.data, p, nparams + 2, &rows)))
		goto out;
	while (got < (size_t)max && !(err = db_rows_next(rows, &has)) && has) {
		col0 = db_rows_ncols(rows) - k.n - (s->attempts ? 1 : 0);
		for (j = 0; j < k.n; j++) {
			const char *v = db_rows_text(rows, col0 + j);
			if (!v) {
				err = EGOV_EINVAL; /* a key column that is NULL: not a key */
				goto out;
			}
			if (!(kv[got * (size_t)k.n + (size_t)j] = strdup(v))) {
				err = EGOV_ENOMEM;
				goto out;
			}
		}
		got++;
		if ((err = fn(ctx, rows, s->attempts ? db_rows_int(rows, col0 + k.n) + 1 : 0)))
			goto out;
	}
	if (err)
		goto out;
	db_rows_free(rows);
	rows = NULL;
	for (i = 0; i < got; i++) {
		up[0] = DBP_I(now + lease);
		for (j = 0; j < k.n; j++)
			up[1 + j] = DBP_S(kv[i * (size_t)k.n + (size_t)j]);
		if ((err = db_exec(c, upd.data, up, 1 + k.n, NULL)))
			goto out;
	}
	/* A COMMIT that fails may leave SQLite's transaction open: roll back. */
	if ((err = db_commit(c)))
		goto out;
	open = false;
	*claimed = (int)got;
out:
	db_rows_free(rows);
	if (open)
		db_rollback(c);
	free_keys(kv, kv ? (size_t)max * (size_t)k.n : 0);
	buf_release(&probe);
	buf_release(&sel);
	buf_release(&upd);
	return err;
}
