/*
 * read.c: the registry's items as the admin API writes them (JSON) and as
 * the commands print them (tab-separated lines). One list query per kind
 * serves both, and one table per kind says which column becomes which
 * member, so the two never disagree.
 */
#include <stdio.h>
#include <string.h>

#include "exchange/registry/registry_int.h"
#include "core/banned.h"

/* Queries per kind: all rows (filter NULL) or one (by id), in id order. */
const char *registry_list_sql(exchange_reg_kind kind, bool one, bool filtered)
{
	switch (kind) {
	case EXCHANGE_REG_MEMBER:
		return one ? "SELECT id, name, created_at FROM exchange_member WHERE id = ?"
			   : "SELECT id, name, created_at FROM exchange_member ORDER BY id";
	case EXCHANGE_REG_SUBSYSTEM:
		return one	    ? "SELECT id, member_id, gateway, created_at FROM exchange_subsystem WHERE id = ?"
		       : filtered ? "SELECT id, member_id, gateway, created_at FROM exchange_subsystem"
				    " WHERE member_id = ? ORDER BY id"
				  : "SELECT id, member_id, gateway, created_at FROM exchange_subsystem ORDER BY id";
	case EXCHANGE_REG_SERVICE:
		return one ? "SELECT id, subsystem_id, title, log_mode, max_body, openapi, created_at, timeout_ms"
			     " FROM exchange_service WHERE id = ?"
		       : filtered ? "SELECT id, subsystem_id, title, log_mode, max_body, NULL, created_at, timeout_ms"
				    " FROM exchange_service WHERE subsystem_id = ? ORDER BY id"
				  : "SELECT id, subsystem_id, title, log_mode, max_body, NULL, created_at, timeout_ms"
				    " FROM exchange_service ORDER BY id";
	case EXCHANGE_REG_EVENT_TYPE:
		return one	    ? "SELECT id, subsystem_id, created_at FROM exchange_event_type WHERE id = ?"
		       : filtered ? "SELECT id, subsystem_id, created_at FROM exchange_event_type"
				    " WHERE subsystem_id = ? ORDER BY id"
				  : "SELECT id, subsystem_id, created_at FROM exchange_event_type ORDER BY id";
	case EXCHANGE_REG_CERT:
		return one	    ? "SELECT sha256, subsystem_id, usage, serial, pki_serial, not_after, created_at, pem"
			      " FROM exchange_cert WHERE sha256 = ? ORDER BY subsystem_id"
		       : filtered ? "SELECT sha256, subsystem_id, usage, serial, pki_serial, not_after, created_at, NULL"
				    " FROM exchange_cert WHERE subsystem_id = ? ORDER BY subsystem_id, sha256"
				  : "SELECT sha256, subsystem_id, usage, serial, pki_serial, not_after, created_at, NULL"
				    " FROM exchange_cert ORDER BY subsystem_id, sha256";
	case EXCHANGE_REG_TRUST:
		return one ? "SELECT instance, url, cert_sha256, not_after, created_at, cert_pem FROM exchange_trusted_instance"
			     " WHERE instance = ?"
			   : "SELECT instance, url, cert_sha256, not_after, created_at, NULL FROM exchange_trusted_instance"
			     " ORDER BY instance";
	case EXCHANGE_REG_ACCESS:
		return filtered ? "SELECT client_id, service_id, methods, paths, created_at FROM exchange_access"
				  " WHERE client_id = ? OR service_id = ? ORDER BY client_id, service_id"
				: "SELECT client_id, service_id, methods, paths, created_at FROM exchange_access"
				  " ORDER BY client_id, service_id";
	}
	return NULL;
}

/* How a column of the list query is written. */
typedef enum col_kind {
	COL_TEXT,     /* a string */
	COL_INT,      /* an integer */
	COL_RAW,      /* JSON text, left out when NULL */
	COL_OPTIONAL, /* a string, left out when NULL */
	COL_PRESENT,  /* true when not NULL */
	COL_TIMEOUT,  /* a service's back-end timeout as published */
} col_kind;

typedef struct col {
	const char *name;
	col_kind kind;
} col;

/* The columns of registry_list_sql() in order, per kind. */
static const col member_cols[] = {{"id", COL_TEXT}, {"name", COL_TEXT}, {"created_at", COL_TEXT}, {NULL, 0}};
static const col subsystem_cols[] = {
	{"id", COL_TEXT}, {"member", COL_TEXT}, {"gateway", COL_TEXT}, {"created_at", COL_TEXT}, {NULL, 0}};
static const col service_cols[] = {
	{"id", COL_TEXT},     {"subsystem", COL_TEXT},  {"title", COL_TEXT},	   {"log", COL_TEXT},
	{"max_body", COL_INT}, {"openapi", COL_RAW},	 {"created_at", COL_TEXT}, {"timeout_ms", COL_TIMEOUT},
	{NULL, 0}};
static const col event_type_cols[] = {
	{"id", COL_TEXT}, {"subsystem", COL_TEXT}, {"created_at", COL_TEXT}, {NULL, 0}};
static const col cert_cols[] = {
	{"sha256", COL_TEXT},	 {"subsystem", COL_TEXT}, {"usage", COL_TEXT},	    {"serial", COL_TEXT},
	{"platform", COL_PRESENT}, {"not_after", COL_TEXT}, {"created_at", COL_TEXT}, {"certificate", COL_OPTIONAL},
	{NULL, 0}};
static const col trust_cols[] = {{"instance", COL_TEXT},   {"url", COL_TEXT},	      {"cert_sha256", COL_TEXT},
				 {"not_after", COL_TEXT},  {"created_at", COL_TEXT}, {"certificate", COL_OPTIONAL},
				 {NULL, 0}};
static const col access_cols[] = {{"client", COL_TEXT},	{"service", COL_TEXT},	  {"methods", COL_TEXT},
				  {"paths", COL_TEXT},	{"created_at", COL_TEXT}, {NULL, 0}};

static const col *const kind_cols[] = {
	[EXCHANGE_REG_MEMBER] = member_cols,	   [EXCHANGE_REG_SUBSYSTEM] = subsystem_cols,
	[EXCHANGE_REG_SERVICE] = service_cols,	   [EXCHANGE_REG_EVENT_TYPE] = event_type_cols,
	[EXCHANGE_REG_ACCESS] = access_cols,	   [EXCHANGE_REG_CERT] = cert_cols,
	[EXCHANGE_REG_TRUST] = trust_cols,
};

static void write_fields(jw *w, exchange_reg_kind kind, db_rows *rows)
{
	const col *c;
	const char *t;
	int i;

	for (c = kind_cols[kind], i = 0; c->name; c++, i++) {
		t = db_rows_text(rows, i);
		switch (c->kind) {
		case COL_TEXT:
			jw_kstr(w, c->name, t);
			break;
		case COL_INT:
			jw_kint(w, c->name, db_rows_int(rows, i));
			break;
		case COL_RAW:
			if (t) {
				jw_key(w, c->name);
				jw_raw(w, t);
			}
			break;
		case COL_OPTIONAL:
			if (t)
				jw_kstr(w, c->name, t);
			break;
		case COL_PRESENT:
			jw_kbool(w, c->name, t != NULL);
			break;
		case COL_TIMEOUT:
			jw_kint(w, c->name, exchange_service_timeout_ms(db_rows_int(rows, i)));
			break;
		}
	}
}

egov_err exchange_reg_print(db_conn *c, exchange_reg_kind kind, const char *filter)
{
	db_param p[2] = {DBP_S(filter), DBP_S(filter)};
	int np = kind == EXCHANGE_REG_ACCESS ? 2 : 1;
	db_rows *rows = NULL;
	const col *k;
	bool has = false;
	egov_err err;
	int i;

	if ((err = db_query(c, registry_list_sql(kind, false, filter != NULL), p, filter ? np : 0, &rows)))
		return err;
	while (!(err = db_rows_next(rows, &has)) && has) {
		/* Documents (an OpenAPI description, a certificate) are left
		 * out of a line; the list query has NULL there anyway. */
		for (k = kind_cols[kind], i = 0; k->name; k++, i++) {
			const char *t = db_rows_text(rows, i);
			if (k->kind == COL_RAW || k->kind == COL_OPTIONAL)
				continue;
			printf("%s%s", i ? "\t" : "", t ? t : "-");
		}
		printf("\n");
	}
	db_rows_free(rows);
	return err;
}

static void write_row(jw *w, exchange_reg_kind kind, db_rows *rows)
{
	jw_obj_begin(w);
	write_fields(w, kind, rows);
	jw_obj_end(w);
}

egov_err exchange_reg_write_access(db_conn *c, const char *client, const char *service, jw *w, bool *found)
{
	db_param p[2] = {DBP_S(client), DBP_S(service)};
	db_rows *rows = NULL;
	egov_err err;

	*found = false;
	if (!(err = db_query(c,
			     "SELECT client_id, service_id, methods, paths, created_at FROM exchange_access"
			     " WHERE client_id = ? AND service_id = ?",
			     p, 2, &rows)) &&
	    !(err = db_rows_next(rows, found)) && *found)
		write_row(w, EXCHANGE_REG_ACCESS, rows);
	db_rows_free(rows);
	return err;
}


/* One certificate: its registration for sub (NULL: the first by
 * subsystem), with every subsystem it is registered for (a gateway's TLS
 * certificate may serve several). */
static egov_err write_cert(db_conn *c, const char *sha, const char *sub, jw *w, bool *found)
{
	db_param p[2] = {DBP_S(sha), DBP_S(sub)};
	db_rows *rows = NULL;
	bool has = false;
	egov_err err;

	*found = false;
	if ((err = db_query(c,
			    sub ? "SELECT sha256, subsystem_id, usage, serial, pki_serial, not_after, created_at, pem"
				  " FROM exchange_cert WHERE sha256 = ? AND subsystem_id = ?"
				: "SELECT sha256, subsystem_id, usage, serial, pki_serial, not_after, created_at, pem"
				  " FROM exchange_cert WHERE sha256 = ? ORDER BY subsystem_id LIMIT 1",
			    p, sub ? 2 : 1, &rows)) ||
	    (err = db_rows_next(rows, &has)) || !has) {
		db_rows_free(rows);
		return err;
	}
	*found = true;
	jw_obj_begin(w);
	write_fields(w, EXCHANGE_REG_CERT, rows);
	db_rows_free(rows);
	rows = NULL;
	jw_key(w, "subsystems");
	jw_arr_begin(w);
	if ((err = db_query(c, "SELECT subsystem_id FROM exchange_cert WHERE sha256 = ? ORDER BY subsystem_id", p, 1,
			    &rows)))
		return err;
	while (!(err = db_rows_next(rows, &has)) && has)
		jw_str(w, db_rows_text(rows, 0));
	db_rows_free(rows);
	jw_arr_end(w);
	jw_obj_end(w);
	return err;
}

egov_err exchange_reg_write(db_conn *c, exchange_reg_kind kind, const char *id, const char *filter, jw *w,
			    bool *found)
{
	db_param p[2] = {DBP_S(id ? id : filter), DBP_S(id ? id : filter)};
	int np = kind == EXCHANGE_REG_ACCESS ? 2 : 1;
	db_rows *rows = NULL;
	bool has = false;
	egov_err err;

	*found = false;
	if (id && kind == EXCHANGE_REG_CERT)
		return write_cert(c, id, filter, w, found);
	if ((err = db_query(c, registry_list_sql(kind, id != NULL, filter != NULL), p, id || filter ? np : 0, &rows)))
		return err;
	if (!id)
		jw_arr_begin(w);
	while (!(err = db_rows_next(rows, &has)) && has) {
		*found = true;
		write_row(w, kind, rows);
	}
	if (!id)
		jw_arr_end(w);
	db_rows_free(rows);
	return err;
}

