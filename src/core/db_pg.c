/*
 * db_pg.c: the PostgreSQL backend of db.h, over libpq.
 *
 * SQL arrives with '?' placeholders; they become $1..$n once, when the
 * statement is prepared (quoted literals, quoted identifiers, comments and
 * dollar-quoted strings are skipped, so a '?' inside them stays). Because
 * of this, PostgreSQL's own '?'-operators (jsonb ?, ?| and ?&) cannot be
 * used through db_exec/db_query; use the jsonb_exists* functions instead.
 *
 * Prepared statements are cached per connection by SQL text, named s1, s2,
 * ... on the server. Parameters go as text, except DBP_BLOB which goes as
 * binary (bytea) so zero bytes survive; results come back as text, and
 * db_rows_blob() unescapes bytea, keeping the bytes until the next row.
 *
 * A lost connection is noticed when a call fails; the next call resets it
 * once (the server forgot our statements, so the cache is emptied) and
 * reports EGOV_EUNAVAILABLE if the server is still unreachable.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "core/db_int.h"
#include "core/banned.h"

/* Parameters kept on the stack; statements with more allocate. */
#define PG_STACK_PARAMS 16

typedef struct pg_stmt {
	struct pg_stmt *next;
	uint64_t hash;
	size_t len;
	int nparams;
	char name[16];
	char sql[];
} pg_stmt;

typedef struct pg_conn {
	struct db_conn base;
	PGconn *h;
	pg_stmt *buckets[DB_STMT_BUCKETS];
	int nstmts;
	unsigned next_id;
} pg_conn;

typedef struct pg_rows {
	struct db_rows base;
	PGresult *res;
	int row;
	int nrows;
	int ncols;
	unsigned char **blobs; /* per column, unescaped bytea of the current row */
	size_t *blob_lens;
} pg_rows;

static egov_err map_sqlstate(const char *st)
{
	if (!st)
		return EGOV_EDB;
	if (strcmp(st, "23505") == 0)
		return EGOV_ECONFLICT;
	if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0 || strcmp(st, "55P03") == 0)
		return EGOV_EBUSY;
	return EGOV_EDB;
}

static void trim_nl(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
}

static egov_err conn_fail(pg_conn *c)
{
	db_conn_seterr(&c->base, EGOV_EUNAVAILABLE, "%s", PQerrorMessage(c->h));
	trim_nl(c->base.errmsg);
	return EGOV_EUNAVAILABLE;
}

/* Maps a failed result (res may be NULL) to an error with a message. */
static egov_err res_fail(pg_conn *c, const PGresult *res)
{
	const char *state, *msg, *detail;
	egov_err err;

	if (!res || PQstatus(c->h) != CONNECTION_OK)
		return conn_fail(c);
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	err = map_sqlstate(state);
	if (msg)
		db_conn_seterr(&c->base, err, "%s%s%s (SQLSTATE %s)", msg, detail ? ": " : "", detail ? detail : "",
			       state ? state : "?");
	else
		db_conn_seterr(&c->base, err, "%s", PQresultErrorMessage(res));
	trim_nl(c->base.errmsg);
	return err;
}

static void notice_ignore(void *arg, const char *message)
{
	/* NOTICEs ("table already exists, skipping") are not errors; the
	 * default processor would print them on stderr. */
}

/* ---- placeholder rewriting ---------------------------------------------- */

static bool ident_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
	       (unsigned char)ch >= 0x80;
}

/* Length of a dollar-quote tag ("$tag$" or "$$") starting at s, or 0. */
static size_t dollar_tag(const char *s)
{
	size_t i = 1;
	if (s[1] >= '0' && s[1] <= '9')
		return 0; /* $1 is a parameter */
	while (ident_char(s[i]) && s[i] != '$')
		i++;
	return s[i] == '$' ? i + 1 : 0;
}

/* Copies sql to a malloc'd string with each '?' outside quotes and
 * comments replaced by $1..$n; *count receives n. */
static char *rewrite_params(const char *sql, size_t len, int *count)
{
	size_t qs = 0, i = 0, o = 0;
	char *out;
	int n = 0;

	for (i = 0; i < len; i++)
		qs += sql[i] == '?';
	out = malloc(len + qs * 6 + 1);
	if (!out)
		return NULL;
	i = 0;
	while (i < len) {
		char ch = sql[i];
		size_t start = i;
		if (ch == '\'' || ch == '"') {
			/* E'...' strings allow backslash escapes. */
			bool esc = ch == '\'' && i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e') &&
				   (i < 2 || !ident_char(sql[i - 2]));
			i++;
			while (i < len && sql[i] != ch) {
				if (esc && sql[i] == '\\' && i + 1 < len)
					i++;
				i++;
			}
			i = i < len ? i + 1 : len; /* '' re-enters on the next loop */
		} else if (ch == '-' && i + 1 < len && sql[i + 1] == '-') {
			while (i < len && sql[i] != '\n')
				i++;
		} else if (ch == '/' && i + 1 < len && sql[i + 1] == '*') {
			int depth = 1;
			i += 2;
			while (i < len && depth > 0) {
				if (sql[i] == '/' && i + 1 < len && sql[i + 1] == '*') {
					depth++;
					i += 2;
				} else if (sql[i] == '*' && i + 1 < len && sql[i + 1] == '/') {
					depth--;
					i += 2;
				} else {
					i++;
				}
			}
		} else if (ch == '$' && (i == 0 || !ident_char(sql[i - 1])) && dollar_tag(sql + i)) {
			size_t tl = dollar_tag(sql + i);
			const char *end = NULL;
			i += tl;
			while (i + tl <= len && !end) {
				if (sql[i] == '$' && memcmp(sql + i, sql + start, tl) == 0)
					end = sql + i;
				else
					i++;
			}
			i = end ? i + tl : len;
		} else if (ch == '?') {
			o += (size_t)snprintf(out + o, 8, "$%d", ++n);
			i++;
			continue;
		} else {
			i++;
		}
		memcpy(out + o, sql + start, i - start);
		o += i - start;
	}
	out[o] = '\0';
	*count = n;
	return out;
}

/* ---- statement cache ------------------------------------------------------ */

static void cache_clear(pg_conn *c, bool on_server)
{
	int i;
	char cmd[40];
	for (i = 0; i < DB_STMT_BUCKETS; i++) {
		pg_stmt *e = c->buckets[i], *next;
		for (; e; e = next) {
			next = e->next;
			if (on_server) {
				snprintf(cmd, sizeof cmd, "DEALLOCATE %s", e->name);
				PQclear(PQexec(c->h, cmd));
			}
			free(e);
		}
		c->buckets[i] = NULL;
	}
	c->nstmts = 0;
}

static void cache_drop(pg_conn *c, pg_stmt *victim)
{
	pg_stmt **pp = &c->buckets[victim->hash % DB_STMT_BUCKETS];
	char cmd[40];
	for (; *pp; pp = &(*pp)->next) {
		if (*pp == victim) {
			*pp = victim->next;
			break;
		}
	}
	snprintf(cmd, sizeof cmd, "DEALLOCATE %s", victim->name);
	PQclear(PQexec(c->h, cmd));
	free(victim);
	c->nstmts--;
}

static egov_err stmt_get(pg_conn *c, const char *sql, pg_stmt **out)
{
	egov_err err = EGOV_OK;
	size_t len;
	uint64_t h = db_sql_hash(sql, &len);
	pg_stmt *e, **bucket = &c->buckets[h % DB_STMT_BUCKETS];
	char *text = NULL;
	PGresult *res = NULL;

	*out = NULL;
	for (e = *bucket; e; e = e->next) {
		if (e->hash == h && e->len == len && memcmp(e->sql, sql, len) == 0) {
			*out = e;
			return EGOV_OK;
		}
	}
	/* Inside a transaction, DEALLOCATE would be harmless, but keep the
	 * eviction simple: the whole cache goes, as in the SQLite backend. */
	if (c->nstmts >= DB_STMT_CACHE_MAX)
		cache_clear(c, true);
	e = malloc(sizeof *e + len + 1);
	if (!e || !(text = rewrite_params(sql, len, &e->nparams))) {
		err = db_conn_seterr(&c->base, EGOV_ENOMEM, "out of memory");
		goto out;
	}
	snprintf(e->name, sizeof e->name, "s%u", ++c->next_id);
	res = PQprepare(c->h, e->name, text, e->nparams, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		err = res_fail(c, res);
		goto out;
	}
	e->hash = h;
	e->len = len;
	memcpy(e->sql, sql, len + 1);
	e->next = *bucket;
	*bucket = e;
	c->nstmts++;
	*out = e;
	e = NULL;
out:
	PQclear(res);
	free(text);
	free(e);
	return err;
}

/* ---- connections ---------------------------------------------------------- */

static egov_err pg_conn_open(db *d, db_conn **out, char *errmsg, size_t errlen)
{
	egov_err err = EGOV_OK;
	pg_conn *c = NULL;
	/* The URL comes last so that settings it names win over ours. */
	const char *const keys[] = {"connect_timeout", "application_name", "client_encoding", "dbname", NULL};
	const char *const vals[] = {"5", "egov", "UTF8", d->target, NULL};

	*out = NULL;
	c = calloc(1, sizeof *c);
	if (!c) {
		err = EGOV_ENOMEM;
		goto out;
	}
	c->base.be = &db_pg_backend;
	c->base.d = d;
	c->h = PQconnectdbParams(keys, vals, 1);
	if (!c->h) {
		err = EGOV_ENOMEM;
		goto out;
	}
	if (PQstatus(c->h) != CONNECTION_OK) {
		snprintf(errmsg, errlen, "cannot connect to PostgreSQL: %s", PQerrorMessage(c->h));
		trim_nl(errmsg);
		err = EGOV_EUNAVAILABLE;
		goto out;
	}
	PQsetNoticeProcessor(c->h, notice_ignore, NULL);
	*out = &c->base;
	c = NULL;
out:
	if (c) {
		PQfinish(c->h);
		free(c);
	}
	return err;
}

static void pg_conn_close(db_conn *bc)
{
	pg_conn *c = (pg_conn *)bc;
	cache_clear(c, false);
	PQfinish(c->h);
	free(c);
}

/* Resets a connection found broken by an earlier call, once. */
static egov_err ensure_conn(pg_conn *c)
{
	if (PQstatus(c->h) == CONNECTION_OK)
		return EGOV_OK;
	cache_clear(c, false);
	c->base.tx_depth = 0; /* whatever was open died with the connection */
	PQreset(c->h);
	if (PQstatus(c->h) != CONNECTION_OK)
		return conn_fail(c);
	PQsetNoticeProcessor(c->h, notice_ignore, NULL);
	return EGOV_OK;
}

/* Runs sql through the statement cache; *out is a successful result. */
static egov_err run(pg_conn *c, const char *sql, const db_param *p, int n, PGresult **out)
{
	egov_err err;
	pg_stmt *e = NULL;
	PGresult *res = NULL;
	const char *vals_s[PG_STACK_PARAMS];
	int lens_s[PG_STACK_PARAMS], fmts_s[PG_STACK_PARAMS];
	char nums_s[PG_STACK_PARAMS][24];
	const char **vals = vals_s;
	int *lens = lens_s, *fmts = fmts_s;
	char(*nums)[24] = nums_s;
	int i, attempt;
	ExecStatusType st;

	*out = NULL;
	err = ensure_conn(c);
	if (err)
		goto out;
	if (n < 0 || (n > 0 && !p)) {
		err = db_conn_seterr(&c->base, EGOV_EINVAL, "bad parameter list");
		goto out;
	}
	if (n > PG_STACK_PARAMS) {
		vals = malloc(sizeof *vals * (size_t)n);
		lens = malloc(sizeof *lens * (size_t)n);
		fmts = malloc(sizeof *fmts * (size_t)n);
		nums = malloc(sizeof *nums * (size_t)n);
		if (!vals || !lens || !fmts || !nums) {
			err = db_conn_seterr(&c->base, EGOV_ENOMEM, "out of memory");
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		lens[i] = 0;
		fmts[i] = 0;
		switch (p[i].type) {
		case DBP_NULL:
			vals[i] = NULL;
			break;
		case DBP_INT:
			snprintf(nums[i], sizeof nums[i], "%lld", (long long)p[i].i);
			vals[i] = nums[i];
			break;
		case DBP_TEXT:
			vals[i] = p[i].p;
			break;
		case DBP_BLOB:
			if (p[i].len > INT_MAX) {
				err = db_conn_seterr(&c->base, EGOV_ELIMIT, "parameter %d: blob too large", i + 1);
				goto out;
			}
			vals[i] = p[i].p ? p[i].p : "";
			lens[i] = (int)p[i].len;
			fmts[i] = 1;
			break;
		default:
			err = db_conn_seterr(&c->base, EGOV_EINVAL, "parameter %d has an unknown type", i + 1);
			goto out;
		}
	}
	/* The second attempt is for a statement the server no longer knows or
	 * can no longer run as prepared (a table changed under it); it is
	 * only safe outside a transaction, which the failure did not abort. */
	for (attempt = 0; attempt < 2; attempt++) {
		const char *state;
		err = stmt_get(c, sql, &e);
		if (err)
			goto out;
		if (n != e->nparams) {
			err = db_conn_seterr(&c->base, EGOV_EINVAL, "statement takes %d parameters, %d given",
					     e->nparams, n);
			goto out;
		}
		res = PQexecPrepared(c->h, e->name, n, vals, lens, fmts, 0);
		st = PQresultStatus(res);
		if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
			*out = res;
			res = NULL;
			c->base.errmsg[0] = '\0';
			err = EGOV_OK;
			goto out;
		}
		err = res_fail(c, res);
		state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
		if (attempt == 0 && state && (strcmp(state, "26000") == 0 || strcmp(state, "0A000") == 0) &&
		    PQtransactionStatus(c->h) == PQTRANS_IDLE) {
			cache_drop(c, e);
			PQclear(res);
			res = NULL;
			continue;
		}
		break;
	}
out:
	PQclear(res);
	if (vals != vals_s) {
		free(vals);
		free(lens);
		free(fmts);
		free(nums);
	}
	return err;
}

static egov_err pg_exec(db_conn *bc, const char *sql, const db_param *p, int n, int64_t *changes)
{
	PGresult *res = NULL;
	egov_err err = run((pg_conn *)bc, sql, p, n, &res);
	if (!err && changes) {
		const char *t = PQcmdTuples(res);
		*changes = *t ? strtoll(t, NULL, 10) : 0;
	}
	PQclear(res);
	return err;
}

static egov_err pg_exec_script(db_conn *bc, const char *sql)
{
	pg_conn *c = (pg_conn *)bc;
	PGresult *res = NULL;
	egov_err err = ensure_conn(c);
	ExecStatusType st;

	if (err)
		goto out;
	res = PQexec(c->h, sql);
	st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
		err = res_fail(c, res);
		goto out;
	}
	c->base.errmsg[0] = '\0';
out:
	PQclear(res);
	return err;
}

/* ---- rows ------------------------------------------------------------------ */

static void blobs_release(pg_rows *r)
{
	int i;
	if (!r->blobs)
		return;
	for (i = 0; i < r->ncols; i++) {
		if (r->blobs[i]) {
			PQfreemem(r->blobs[i]);
			r->blobs[i] = NULL;
		}
	}
}

static egov_err pg_query(db_conn *bc, const char *sql, const db_param *p, int n, db_rows **out)
{
	PGresult *res = NULL;
	pg_rows *r;
	egov_err err = run((pg_conn *)bc, sql, p, n, &res);
	if (err)
		return err;
	r = calloc(1, sizeof *r);
	if (!r) {
		PQclear(res);
		return db_conn_seterr(bc, EGOV_ENOMEM, "out of memory");
	}
	r->base.c = bc;
	r->res = res;
	r->row = -1;
	r->nrows = PQntuples(res);
	r->ncols = PQnfields(res);
	*out = &r->base;
	return EGOV_OK;
}

static egov_err pg_rows_next(db_rows *br, bool *has_row)
{
	pg_rows *r = (pg_rows *)br;
	blobs_release(r);
	if (r->row < r->nrows)
		r->row++;
	*has_row = r->row < r->nrows;
	return EGOV_OK;
}

static int pg_rows_ncols(const db_rows *br)
{
	return ((const pg_rows *)br)->ncols;
}

static bool valid(const pg_rows *r, int col)
{
	return r->row >= 0 && r->row < r->nrows && col >= 0 && col < r->ncols;
}

static bool pg_rows_isnull(const db_rows *br, int col)
{
	const pg_rows *r = (const pg_rows *)br;
	return !valid(r, col) || PQgetisnull(r->res, r->row, col);
}

static const char *pg_rows_text(const db_rows *br, int col)
{
	const pg_rows *r = (const pg_rows *)br;
	if (pg_rows_isnull(br, col))
		return NULL;
	return PQgetvalue(r->res, r->row, col);
}

static int64_t pg_rows_int(const db_rows *br, int col)
{
	const char *t = pg_rows_text(br, col);
	if (!t)
		return 0;
	/* Booleans read as integers, as SQLite's comparisons give 0/1. */
	if (t[0] == 't' && !t[1])
		return 1;
	if (t[0] == 'f' && !t[1])
		return 0;
	return strtoll(t, NULL, 10);
}

static const void *pg_rows_blob(db_rows *br, int col, size_t *len)
{
	pg_rows *r = (pg_rows *)br;
	const char *t = pg_rows_text(br, col);

	*len = 0;
	if (!t)
		return NULL;
	if (!r->blobs) {
		r->blobs = calloc((size_t)r->ncols, sizeof *r->blobs);
		r->blob_lens = calloc((size_t)r->ncols, sizeof *r->blob_lens);
		if (!r->blobs || !r->blob_lens) {
			free(r->blobs);
			free(r->blob_lens);
			r->blobs = NULL;
			r->blob_lens = NULL;
			return NULL;
		}
	}
	if (!r->blobs[col])
		r->blobs[col] = PQunescapeBytea((const unsigned char *)t, &r->blob_lens[col]);
	if (r->blobs[col])
		*len = r->blob_lens[col];
	return r->blobs[col];
}

static void pg_rows_free(db_rows *br)
{
	pg_rows *r = (pg_rows *)br;
	blobs_release(r);
	free(r->blobs);
	free(r->blob_lens);
	PQclear(r->res);
	free(r);
}

static egov_err pg_ping(db_conn *bc)
{
	return pg_exec(bc, "SELECT 1", NULL, 0, NULL);
}

const struct db_backend db_pg_backend = {
	.name = "postgres",
	.kind = DB_POSTGRES,
	.begin_sql = "BEGIN",
	.conn_open = pg_conn_open,
	.conn_close = pg_conn_close,
	.exec = pg_exec,
	.exec_script = pg_exec_script,
	.query = pg_query,
	.rows_next = pg_rows_next,
	.rows_ncols = pg_rows_ncols,
	.rows_isnull = pg_rows_isnull,
	.rows_text = pg_rows_text,
	.rows_int = pg_rows_int,
	.rows_blob = pg_rows_blob,
	.rows_free = pg_rows_free,
	.ping = pg_ping,
};
