/*
 * audit_http.c: the audit module's descriptor and its read API for
 * auditors: page through the chain and verify it. Both need audit.read.
 */
#include <stdio.h>
#include <stdlib.h>

#include "audit/audit.h"
#include "core/app.h"
#include "core/limits.h"
#include "core/module.h"
#include "core/banned.h"

#define PAGE_DEFAULT 100
#define PAGE_MAX 1000

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
	long long after = 0, limit = PAGE_DEFAULT, last = 0;
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
	if (ls && parse_num(ls, 1, PAGE_MAX, &limit))
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

static const db_migration *schema(size_t *n)
{
	*n = audit_migrations_count;
	return audit_migrations;
}

static const route routes[] = {
	{.method = HTTP_GET, .path = "/api/v1/audit", .perm = "audit.read", .handler = audit_list},
	{.method = HTTP_GET, .path = "/api/v1/audit/verify", .perm = "audit.read", .handler = audit_verify_route},
};

const egov_module audit_module = {
	.name = "audit",
	.routes = routes,
	.nroutes = sizeof routes / sizeof routes[0],
	.migrations = schema,
};
