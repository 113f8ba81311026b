/*
 * audit_http.c: the audit module's descriptor (the log opens in its start
 * hook and closes in its stop hook) and its read API for auditors: page
 * through the chain and verify it. Both need audit.read. Also its /metrics
 * gauge, its `egov verify` check and `egov audit verify`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "core/app.h"
#include "core/limits.h"
#include "core/metrics.h"
#include "core/module.h"
#include "core/timeutil.h"
#include "core/banned.h"

static int parse_num(const char *s, long long lo, long long hi, long long *out)
{
	char *end;
	long long v;

	if (!s || !*s)
		return -1;
	v = strtoll(s, &end, 10);
	if (*end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static egov_err audit_list(req *r)
{
	const char *as = req_query(r, "after"), *ls = req_query(r, "limit");
	long long after = 0, limit = AUDIT_PAGE_DEFAULT, last = 0;
	db_param p[2];
	db_rows *rows = NULL;
	db_conn *c = NULL;
	bool has = false;
	int n = 0;
	buf b;
	jw w;
	egov_err err;

	if (as && parse_num(as, 0, INT64_MAX, &after))
		return resp_problem(r, 400, "validation.invalid_field", "after", NULL);
	if (ls && parse_num(ls, 1, AUDIT_PAGE_MAX, &limit))
		return resp_problem(r, 400, "validation.invalid_field", "limit", "1..1000");
	if ((err = db_thread_conn(app()->db, &c)))
		return err;
	p[0] = DBP_I(after);
	p[1] = DBP_I(limit + 1);
	err = db_query(c,
		       "SELECT seq, ts, actor, action, object, details, prev_hash, hash FROM audit_log "
		       "WHERE seq > ? ORDER BY seq LIMIT ?",
		       p, 2, &rows);
	if (err)
		return err;
	buf_init(&b, EGOV_RESPONSE_MAX);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_key(&w, "items");
	jw_arr_begin(&w);
	while (!(err = db_rows_next(rows, &has)) && has && n < limit) {
		last = db_rows_int(rows, 0);
		jw_obj_begin(&w);
		jw_kint(&w, "seq", last);
		jw_kstr(&w, "ts", db_rows_text(rows, 1));
		jw_kstr(&w, "actor", db_rows_text(rows, 2));
		jw_kstr(&w, "action", db_rows_text(rows, 3));
		jw_kstr(&w, "object", db_rows_text(rows, 4));
		jw_key(&w, "details");
		jw_raw(&w, db_rows_text(rows, 5)); /* validated as a JSON object on append */
		jw_kstr(&w, "prev_hash", db_rows_text(rows, 6));
		jw_kstr(&w, "hash", db_rows_text(rows, 7));
		jw_obj_end(&w);
		n++;
	}
	jw_arr_end(&w);
	jw_key(&w, "next_after");
	if (!err && has)
		jw_int(&w, last);
	else
		jw_null(&w);
	jw_obj_end(&w);
	db_rows_free(rows);
	if (err || w.err) {
		buf_release(&b);
		return err ? err : w.err;
	}
	return resp_json(r, 200, &b);
}

static egov_err audit_verify_route(req *r)
{
	audit_verify_result res = {0};
	db_conn *c = NULL;
	buf b;
	jw w;
	egov_err err;

	if ((err = db_thread_conn(app()->db, &c)) || (err = audit_verify(c, &res)))
		return err;
	buf_init(&b, 4096);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_kbool(&w, "ok", res.fault == AUDIT_FAULT_NONE);
	jw_kint(&w, "records", res.records);
	if (res.fault == AUDIT_FAULT_NONE) {
		jw_kstr(&w, "head", res.head);
	} else {
		jw_kint(&w, "first_bad", res.first_bad);
		jw_kstr(&w, "fault", audit_fault_name(res.fault));
	}
	jw_obj_end(&w);
	return resp_jw(r, 200, &w);
}

/* ---- schema (the descriptor counts it, so it lives beside it) ------------------ */

/* SQLite gets INTEGER PRIMARY KEY: a 64-bit rowid alias, so rows append to
 * the table's own b-tree instead of also filling a separate index. */
const db_migration audit_migrations[] = {
	{
		.version = 1,
		.name = "audit_log",
		.sql_sqlite = "CREATE TABLE audit_log ("
			      " seq INTEGER PRIMARY KEY,"
			      " ts TEXT NOT NULL,"
			      " actor TEXT NOT NULL,"
			      " action TEXT NOT NULL,"
			      " object TEXT NOT NULL,"
			      " details TEXT NOT NULL,"
			      " prev_hash TEXT NOT NULL,"
			      " hash TEXT NOT NULL)",
		.sql_postgres = "CREATE TABLE audit_log ("
				" seq BIGINT PRIMARY KEY,"
				" ts TEXT NOT NULL,"
				" actor TEXT NOT NULL,"
				" action TEXT NOT NULL,"
				" object TEXT NOT NULL,"
				" details TEXT NOT NULL,"
				" prev_hash TEXT NOT NULL,"
				" hash TEXT NOT NULL)",
	},
};
const size_t audit_migrations_count = sizeof audit_migrations / sizeof audit_migrations[0];

/* The node's database is open and migrated by now; the modules after this
 * one (started later, stopped earlier) may audit from their own hooks. */
static egov_err audit_start(const egov_config *cfg)
{
	(void)cfg;
	return audit_open(app()->db);
}

static const route routes[] = {
	/* Auditors (a staff session or an application's token for them) and
	 * the operator. */
	{.method = HTTP_GET, .path = "/api/v1/audit", .auth = AUTH_API, .perm = "audit.read", .handler = audit_list},
	{.method = HTTP_GET, .path = "/api/v1/audit/verify", .auth = AUTH_API, .perm = "audit.read",
	 .handler = audit_verify_route},
};

/* ---- the contract's other hooks ------------------------------------------- */

static egov_err write_metrics(buf *out)
{
	egov_err err = metrics_write_header(out, "egov_audit_records", "gauge", "Records in the audit chain.");

	if (!err)
		err = buf_addf(out, "egov_audit_records %lld\n",
			       (long long)audit_length());
	return err;
}

/* `egov verify` (and `egov audit verify`): the chain itself. The modules
 * after this one check what anchors it (the PKI's checkpoints). */
static int verify(db_conn *c, const egov_config *cfg, FILE *out)
{
	audit_verify_result res = {0};
	int64_t t0 = time_mono_us();

	(void)cfg;
	if (audit_verify(c, &res)) {
		fprintf(stderr, "egov: audit verify: cannot read the log: %s\n", db_conn_errmsg(c));
		return 2;
	}
	if (res.fault != AUDIT_FAULT_NONE) {
		fprintf(out, "audit chain BROKEN at record %lld: %s (%lld records before it are intact)\n",
			(long long)res.first_bad, audit_fault_name(res.fault), (long long)res.records);
		return 1;
	}
	fprintf(out, "audit chain intact: %lld records, head %s (%.2f s)\n", (long long)res.records, res.head,
		(double)(time_mono_us() - t0) / 1e6);
	return 0;
}

/* `egov audit verify`: the walk of `egov verify`, under the name operators
 * know; read-only, so checking the log never writes to it. */
static int verify_command(int argc, char **argv, db *d)
{
	db_conn *c = NULL;
	int rc;

	if (argc != 2 || strcmp(argv[1], "verify") != 0) {
		fputs("usage: egov audit verify [--config FILE] [--data DIR] [--database URL]\n", stderr);
		return 2;
	}
	if (db_conn_open(d, &c)) {
		fprintf(stderr, "egov: audit verify: cannot connect to the database\n");
		return 2;
	}
	rc = egov_modules_verify(c, app()->config, stdout);
	db_conn_close(c);
	return rc;
}

static const module_command commands[] = {
	{.name = "audit", .usage = "verify                  the audit log's hash chain, then its checkpoints",
	 .run = verify_command, .flags = MODULE_COMMAND_READ_ONLY},
};

const egov_module audit_module = {
	.name = "audit",
	.migrations = audit_migrations,
	.nmigrations = sizeof audit_migrations / sizeof audit_migrations[0],
	.routes = routes,
	.nroutes = sizeof routes / sizeof routes[0],
	.commands = commands,
	.ncommands = sizeof commands / sizeof commands[0],
	.metrics = write_metrics,
	.verify = verify,
	.start = audit_start,
	.stop = audit_close,
};
