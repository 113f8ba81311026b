/*
 * exchange_registry.c: the registry of the data exchange, kept by the
 * central node (roles central and standalone): members, their subsystems
 * (with the gateway that serves each), the subsystems' certificates, the
 * services they offer, access rights and pub/sub event types. Storage,
 * the admin API under /api/v1/exchange/ and the `egov exchange member|
 * subsystem|service|access|event-type|cert|central` commands.
 *
 * Invariants:
 * - Every change runs in one transaction with a bump of
 *   exchange_registry_version, so a published configuration's version
 *   names exactly one registry state; a gateway never sees a half change.
 * - A parent exists before its children (member before subsystem,
 *   subsystem before service); removing something still in use is a 409,
 *   with the foreign keys as the final word on a race.
 * - Only certificates that chain to the platform CA or a configured trust
 *   anchor are registered; the configuration builder drops revoked and
 *   expired ones later (exchange_conf.c).
 * - Every change is audited (actor, action exchange.<kind>.<verb>, object
 *   exchange:<id>) once it is committed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "audit/audit.h"
#include "core/app.h"
#include "core/limits.h"
#include "core/timeutil.h"
#include "exchange/exchange_int.h"
#include "identity/identity.h"
#include "pki/pki.h"
#include "core/banned.h"

#define NAME_MAX_BYTES 800        /* 200 characters of up to 4 bytes */
#define TITLE_MAX_BYTES 800
#define URL_MAX 255
#define RULE_MAX 1024             /* methods or paths list */
#define PEM_MAX (16 * 1024)
#define OPENAPI_MAX (1024 * 1024) /* one service's description */
#define MAX_BODY_DEFAULT (1024 * 1024)
/* A service's back-end timeout, as exchange.backend_timeout_ms allows. */
#define TIMEOUT_MIN_MS 10
#define TIMEOUT_MAX_MS 600000

/* ---- schema ------------------------------------------------------------ */

const char exchange_registry_schema_v1[] = "CREATE TABLE exchange_member ("
	" id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at TEXT NOT NULL);"
	"CREATE TABLE exchange_subsystem ("
	" id TEXT PRIMARY KEY, member_id TEXT NOT NULL REFERENCES exchange_member(id),"
	" gateway TEXT NOT NULL, created_at TEXT NOT NULL);"
	"CREATE INDEX exchange_subsystem_member ON exchange_subsystem (member_id);"
	"CREATE TABLE exchange_cert ("
	" sha256 TEXT PRIMARY KEY, subsystem_id TEXT NOT NULL REFERENCES exchange_subsystem(id),"
	" usage TEXT NOT NULL CHECK (usage IN ('sign', 'tls')), serial TEXT NOT NULL,"
	" pki_serial TEXT, not_after TEXT NOT NULL, pem TEXT NOT NULL, created_at TEXT NOT NULL);"
	"CREATE INDEX exchange_cert_subsystem ON exchange_cert (subsystem_id);"
	"CREATE TABLE exchange_service ("
	" id TEXT PRIMARY KEY, subsystem_id TEXT NOT NULL REFERENCES exchange_subsystem(id),"
	" title TEXT NOT NULL, log_mode TEXT NOT NULL CHECK (log_mode IN ('full', 'digest')),"
	" max_body BIGINT NOT NULL, openapi TEXT, created_at TEXT NOT NULL);"
	"CREATE INDEX exchange_service_subsystem ON exchange_service (subsystem_id);"
	"CREATE TABLE exchange_access ("
	" client_id TEXT NOT NULL REFERENCES exchange_subsystem(id),"
	" service_id TEXT NOT NULL REFERENCES exchange_service(id),"
	" methods TEXT NOT NULL, paths TEXT NOT NULL, created_at TEXT NOT NULL,"
	" PRIMARY KEY (client_id, service_id));"
	"CREATE INDEX exchange_access_service ON exchange_access (service_id);"
	"CREATE TABLE exchange_event_type ("
	" id TEXT PRIMARY KEY, subsystem_id TEXT NOT NULL REFERENCES exchange_subsystem(id),"
	" created_at TEXT NOT NULL);"
	"CREATE TABLE exchange_registry_version ("
	" one INTEGER PRIMARY KEY CHECK (one = 1), version BIGINT NOT NULL);"
	"INSERT INTO exchange_registry_version (one, version) VALUES (1, 1)";
/* A gateway serving several subsystems registers its one TLS
 * certificate for each of them: a certificate is keyed by itself and
 * its subsystem. Services publish their back-end timeout. */
const char exchange_registry_schema_v2[] = "ALTER TABLE exchange_service ADD COLUMN timeout_ms BIGINT NOT NULL DEFAULT 0;"
	"CREATE TABLE exchange_cert_v2 ("
	" sha256 TEXT NOT NULL, subsystem_id TEXT NOT NULL REFERENCES exchange_subsystem(id),"
	" usage TEXT NOT NULL CHECK (usage IN ('sign', 'tls')), serial TEXT NOT NULL,"
	" pki_serial TEXT, not_after TEXT NOT NULL, pem TEXT NOT NULL, created_at TEXT NOT NULL,"
	" PRIMARY KEY (sha256, subsystem_id));"
	"INSERT INTO exchange_cert_v2 (sha256, subsystem_id, usage, serial, pki_serial, not_after, pem, created_at)"
	" SELECT sha256, subsystem_id, usage, serial, pki_serial, not_after, pem, created_at FROM exchange_cert;"
	"DROP TABLE exchange_cert;"
	"ALTER TABLE exchange_cert_v2 RENAME TO exchange_cert;"
	"CREATE INDEX exchange_cert_subsystem ON exchange_cert (subsystem_id)";

/* ---- validation ------------------------------------------------------- */

static void why_set(reg_why *w, const char *code, const char *field, const char *detail)
{
	if (w) {
		w->code = code;
		w->field = field;
		w->detail = detail;
	}
}

static size_t utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

bool exchange_gateway_url_valid(const char *s)
{
	const char *host, *colon;
	size_t n = s ? strlen(s) : 0, i;

	if (n < 9 || n > URL_MAX || strncmp(s, "https://", 8) != 0)
		return false;
	host = s + 8;
	/* host[:port], nothing after: the peer path is fixed by the protocol. */
	for (i = 0; host[i]; i++) {
		char ch = host[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
		      ch == '-' || ch == ':' || ch == '[' || ch == ']'))
			return false;
	}
	colon = strrchr(host, ':');
	if (colon && !strchr(colon, ']')) {
		long port;
		char *end;
		if (colon == host)
			return false;
		port = strtol(colon + 1, &end, 10);
		if (!colon[1] || *end || port < 1 || port > 65535)
			return false;
	}
	return host[0] != '\0' && host[0] != ':';
}

static const char *const known_methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};

bool exchange_methods_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > RULE_MAX)
		return false;
	if (strcmp(s, "*") == 0)
		return true;
	while (*s) {
		const char *end = strchr(s, ',');
		size_t len = end ? (size_t)(end - s) : strlen(s), i;
		bool ok = false;
		for (i = 0; i < sizeof known_methods / sizeof known_methods[0]; i++)
			if (strlen(known_methods[i]) == len && strncmp(known_methods[i], s, len) == 0)
				ok = true;
		if (!ok)
			return false;
		if (!end)
			break;
		s = end + 1;
		if (!*s)
			return false;
	}
	return true;
}

/* One path rule: an exact path, or a prefix ending in a slash and a star
 * (a slash and a star alone: every path). */
static bool path_rule_valid(const char *s, size_t len)
{
	size_t i;

	if (len < 1 || s[0] != '/')
		return false;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch <= ' ' || ch >= 0x7f || ch == ',' || ch == '?' || ch == '#' || ch == '\\')
			return false;
		if (ch == '*' && (i != len - 1 || s[i - 1] != '/'))
			return false;
	}
	return true;
}

bool exchange_paths_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > RULE_MAX)
		return false;
	if (strcmp(s, "*") == 0)
		return true;
	while (*s) {
		const char *end = strchr(s, ',');
		size_t len = end ? (size_t)(end - s) : strlen(s);
		if (!path_rule_valid(s, len))
			return false;
		if (!end)
			break;
		s = end + 1;
		if (!*s)
			return false;
	}
	return true;
}

/* ---- storage ----------------------------------------------------------- */

static void now_text(char out[32])
{
	time_format_rfc3339(time_now_us(), 0, out);
}

static egov_err bump(db_conn *c)
{
	return db_exec(c, "UPDATE exchange_registry_version SET version = version + 1 WHERE one = 1", NULL, 0,
		       NULL);
}

egov_err exchange_registry_version(db_conn *c, int64_t *version)
{
	bool found = false;
	egov_err err = db_query_int(c, "SELECT version FROM exchange_registry_version WHERE one = 1", NULL, 0,
				    version, &found);

	if (!err && !found)
		err = EGOV_ECORRUPT;
	return err;
}

static egov_err exists(db_conn *c, const char *sql, const char *id, bool *found)
{
	db_param p[1] = {DBP_S(id)};
	int64_t v = 0;

	return db_query_int(c, sql, p, 1, &v, found);
}

/* Runs fn inside a transaction with the version bump; rolls back on error. */
static egov_err in_tx(db_conn *c, egov_err (*fn)(db_conn *c, void *ctx), void *ctx)
{
	egov_err err;

	if ((err = db_begin(c)))
		return err;
	if ((err = fn(c, ctx)) || (err = bump(c)) || (err = db_commit(c))) {
		db_rollback(c);
		return err;
	}
	return EGOV_OK;
}

typedef struct op {
	const exchange_reg_item *in;
	reg_why *why;
	bool replaced;
} op;

/* The parent of id (its first n parts) must exist in table. */
static egov_err need_parent(db_conn *c, const char *id, int n, const char *sql, const char *code, const char *field,
			    reg_why *why)
{
	char parent[EXCHANGE_ID_MAX];
	bool found = false;
	egov_err err;

	if ((err = exchange_id_prefix(id, n, parent)))
		return err;
	if ((err = exists(c, sql, parent, &found)))
		return err;
	if (!found) {
		why_set(why, code, field, NULL);
		return EGOV_ENOTFOUND;
	}
	return EGOV_OK;
}

static egov_err insert_member(db_conn *c, void *ctx)
{
	op *o = ctx;
	char now[32];
	db_param p[3];

	now_text(now);
	p[0] = DBP_S(o->in->id);
	p[1] = DBP_S(o->in->name);
	p[2] = DBP_S(now);
	return db_exec(c, "INSERT INTO exchange_member (id, name, created_at) VALUES (?, ?, ?)", p, 3, NULL);
}

static egov_err insert_subsystem(db_conn *c, void *ctx)
{
	op *o = ctx;
	char now[32], member[EXCHANGE_ID_MAX];
	db_param p[4];
	egov_err err;

	if ((err = need_parent(c, o->in->id, 3, "SELECT 1 FROM exchange_member WHERE id = ?",
			       "exchange.unknown_member", "id", o->why)))
		return err;
	exchange_id_prefix(o->in->id, 3, member);
	now_text(now);
	p[0] = DBP_S(o->in->id);
	p[1] = DBP_S(member);
	p[2] = DBP_S(o->in->gateway);
	p[3] = DBP_S(now);
	return db_exec(c, "INSERT INTO exchange_subsystem (id, member_id, gateway, created_at) VALUES (?, ?, ?, ?)",
		       p, 4, NULL);
}

static egov_err insert_service(db_conn *c, void *ctx)
{
	op *o = ctx;
	char now[32], sub[EXCHANGE_ID_MAX];
	db_param p[8];
	egov_err err;

	if ((err = need_parent(c, o->in->id, 4, "SELECT 1 FROM exchange_subsystem WHERE id = ?",
			       "exchange.unknown_subsystem", "id", o->why)))
		return err;
	exchange_id_prefix(o->in->id, 4, sub);
	now_text(now);
	p[0] = DBP_S(o->in->id);
	p[1] = DBP_S(sub);
	p[2] = DBP_S(o->in->title ? o->in->title : "");
	p[3] = DBP_S(o->in->log_mode ? o->in->log_mode : "full");
	p[4] = DBP_I(o->in->max_body > 0 ? o->in->max_body : MAX_BODY_DEFAULT);
	p[5] = o->in->openapi ? DBP_S(o->in->openapi) : DBP_NULLV;
	p[6] = DBP_S(now);
	p[7] = DBP_I(o->in->timeout_ms > 0 ? o->in->timeout_ms : 0);
	return db_exec(c,
		       "INSERT INTO exchange_service (id, subsystem_id, title, log_mode, max_body, openapi, created_at,"
		       " timeout_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		       p, 8, NULL);
}

static egov_err insert_event_type(db_conn *c, void *ctx)
{
	op *o = ctx;
	char now[32], sub[EXCHANGE_ID_MAX];
	db_param p[3];
	egov_err err;

	if ((err = need_parent(c, o->in->id, 4, "SELECT 1 FROM exchange_subsystem WHERE id = ?",
			       "exchange.unknown_subsystem", "id", o->why)))
		return err;
	exchange_id_prefix(o->in->id, 4, sub);
	now_text(now);
	p[0] = DBP_S(o->in->id);
	p[1] = DBP_S(sub);
	p[2] = DBP_S(now);
	return db_exec(c, "INSERT INTO exchange_event_type (id, subsystem_id, created_at) VALUES (?, ?, ?)", p, 3,
		       NULL);
}

static egov_err grant_access(db_conn *c, void *ctx)
{
	op *o = ctx;
	char now[32];
	bool found = false;
	db_param p[5];
	int64_t changes = 0;
	egov_err err;

	if ((err = exists(c, "SELECT 1 FROM exchange_subsystem WHERE id = ?", o->in->client, &found)))
		return err;
	if (!found) {
		why_set(o->why, "exchange.unknown_subsystem", "client", NULL);
		return EGOV_ENOTFOUND;
	}
	if ((err = exists(c, "SELECT 1 FROM exchange_service WHERE id = ?", o->in->service, &found)))
		return err;
	if (!found) {
		why_set(o->why, "exchange.unknown_service", "service", NULL);
		return EGOV_ENOTFOUND;
	}
	now_text(now);
	p[0] = DBP_S(o->in->methods);
	p[1] = DBP_S(o->in->paths);
	p[2] = DBP_S(o->in->client);
	p[3] = DBP_S(o->in->service);
	if ((err = db_exec(c, "UPDATE exchange_access SET methods = ?, paths = ? WHERE client_id = ? AND service_id = ?",
			   p, 4, &changes)))
		return err;
	if (changes > 0) {
		o->replaced = true;
		return EGOV_OK;
	}
	p[0] = DBP_S(o->in->client);
	p[1] = DBP_S(o->in->service);
	p[2] = DBP_S(o->in->methods);
	p[3] = DBP_S(o->in->paths);
	p[4] = DBP_S(now);
	return db_exec(c,
		       "INSERT INTO exchange_access (client_id, service_id, methods, paths, created_at)"
		       " VALUES (?, ?, ?, ?, ?)",
		       p, 5, NULL);
}

/* A certificate already registered may be registered once more only as
 * the TLS certificate of the same gateway serving another subsystem: every
 * registration tls, and the subsystems' gateway addresses the same. A
 * signing certificate stays one subsystem's: a signature names its
 * signer by the certificate's hash. */
static egov_err cert_shared_ok(db_conn *c, const exchange_reg_item *in, reg_why *why)
{
	db_param p[2] = {DBP_S(in->sha256), DBP_S(in->id)};
	db_rows *rows = NULL;
	char *gateway = NULL;
	bool has = false;
	egov_err err;

	/* Two registrations of one certificate at once must see each other:
	 * SQLite's BEGIN IMMEDIATE already serialises writers. */
	if (db_conn_kind(c) == DB_POSTGRES &&
	    (err = db_exec(c, "LOCK TABLE exchange_cert IN SHARE ROW EXCLUSIVE MODE", NULL, 0, NULL)))
		return err;
	if ((err = db_query_text(c, "SELECT gateway FROM exchange_subsystem WHERE id = ?", p + 1, 1, &gateway)))
		return err;
	if ((err = db_query(c,
			    "SELECT c.subsystem_id, c.usage, s.gateway FROM exchange_cert c"
			    " JOIN exchange_subsystem s ON s.id = c.subsystem_id WHERE c.sha256 = ?",
			    p, 1, &rows)))
		goto out;
	while (!(err = db_rows_next(rows, &has)) && has) {
		const char *sub = db_rows_text(rows, 0), *usage = db_rows_text(rows, 1), *gw = db_rows_text(rows, 2);
		if (sub && strcmp(sub, in->id) == 0) {
			why_set(why, "exchange.exists", "certificate", "already registered for this subsystem");
			err = EGOV_ECONFLICT;
			break;
		}
		if (!usage || strcmp(usage, "tls") != 0 || strcmp(in->usage, "tls") != 0) {
			why_set(why, "exchange.exists", "certificate",
				"a signing certificate belongs to one subsystem only");
			err = EGOV_ECONFLICT;
			break;
		}
		if (!gw || !gateway || strcmp(gw, gateway) != 0) {
			why_set(why, "exchange.exists", "certificate",
				"a TLS certificate is shared only by subsystems of the same gateway");
			err = EGOV_ECONFLICT;
			break;
		}
	}
out:
	db_rows_free(rows);
	free(gateway);
	return err;
}

static egov_err insert_cert(db_conn *c, void *ctx)
{
	op *o = ctx;
	const exchange_reg_item *in = o->in;
	char now[32];
	bool found = false;
	db_param p[8];
	egov_err err;

	if ((err = exists(c, "SELECT 1 FROM exchange_subsystem WHERE id = ?", in->id, &found)))
		return err;
	if (!found) {
		why_set(o->why, "exchange.unknown_subsystem", "subsystem", NULL);
		return EGOV_ENOTFOUND;
	}
	if ((err = cert_shared_ok(c, in, o->why)))
		return err;
	now_text(now);
	p[0] = DBP_S(in->sha256);
	p[1] = DBP_S(in->id);
	p[2] = DBP_S(in->usage);
	p[3] = DBP_S(in->serial);
	p[4] = in->pki_serial && *in->pki_serial ? DBP_S(in->pki_serial) : DBP_NULLV;
	p[5] = DBP_S(in->not_after);
	p[6] = DBP_S(in->pem);
	p[7] = DBP_S(now);
	return db_exec(c,
		       "INSERT INTO exchange_cert (sha256, subsystem_id, usage, serial, pki_serial, not_after, pem,"
		       " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		       p, 8, NULL);
}

/* What still refers to a member, subsystem or service, so removing it is a
 * 409 rather than a dangling reference. */
static egov_err in_use(db_conn *c, exchange_reg_kind kind, const char *id, bool *used)
{
	static const char *const member_q[] = {"SELECT 1 FROM exchange_subsystem WHERE member_id = ? LIMIT 1", NULL};
	static const char *const sub_q[] = {"SELECT 1 FROM exchange_service WHERE subsystem_id = ? LIMIT 1",
					    "SELECT 1 FROM exchange_event_type WHERE subsystem_id = ? LIMIT 1", NULL};
	const char *const *q = kind == EXCHANGE_REG_MEMBER ? member_q : kind == EXCHANGE_REG_SUBSYSTEM ? sub_q : NULL;
	egov_err err;

	*used = false;
	for (; q && *q && !*used; q++)
		if ((err = exists(c, *q, id, used)))
			return err;
	return EGOV_OK;
}

static egov_err delete_row(db_conn *c, void *ctx)
{
	op *o = ctx;
	const exchange_reg_item *in = o->in;
	db_param p[2] = {DBP_S(in->id), DBP_S(in->service)};
	int64_t changes = 0;
	bool used = false;
	const char *sql = NULL, *missing = NULL;
	/* A certificate's removal names a subsystem (in->id) when only that
	 * registration goes; otherwise in->id is the hash itself. */
	bool one_sub = in->kind == EXCHANGE_REG_CERT && in->id && in->sha256 && strcmp(in->id, in->sha256) != 0;
	egov_err err;

	switch (in->kind) {
	case EXCHANGE_REG_MEMBER:
		sql = "DELETE FROM exchange_member WHERE id = ?";
		missing = "exchange.unknown_member";
		break;
	case EXCHANGE_REG_SUBSYSTEM:
		sql = "DELETE FROM exchange_subsystem WHERE id = ?";
		missing = "exchange.unknown_subsystem";
		break;
	case EXCHANGE_REG_SERVICE:
		sql = "DELETE FROM exchange_service WHERE id = ?";
		missing = "exchange.unknown_service";
		break;
	case EXCHANGE_REG_EVENT_TYPE:
		sql = "DELETE FROM exchange_event_type WHERE id = ?";
		missing = "exchange.unknown_event_type";
		break;
	case EXCHANGE_REG_CERT:
		/* in->id is the subsystem when only its registration goes. */
		p[0] = DBP_S(in->sha256);
		p[1] = DBP_S(in->id);
		sql = one_sub ? "DELETE FROM exchange_cert WHERE sha256 = ? AND subsystem_id = ?"
			      : "DELETE FROM exchange_cert WHERE sha256 = ?";
		missing = "exchange.unknown_cert";
		break;
	case EXCHANGE_REG_ACCESS:
		p[0] = DBP_S(in->client);
		sql = "DELETE FROM exchange_access WHERE client_id = ? AND service_id = ?";
		missing = "exchange.unknown_access";
		break;
	}
	if ((err = in_use(c, in->kind, in->id, &used)))
		return err;
	if (used) {
		why_set(o->why, "exchange.in_use", NULL, NULL);
		return EGOV_ECONFLICT;
	}
	/* What exists only for this subsystem or service goes with it. */
	if (in->kind == EXCHANGE_REG_SUBSYSTEM &&
	    ((err = db_exec(c, "DELETE FROM exchange_cert WHERE subsystem_id = ?", p, 1, NULL)) ||
	     (err = db_exec(c, "DELETE FROM exchange_access WHERE client_id = ?", p, 1, NULL))))
		return err;
	if (in->kind == EXCHANGE_REG_SERVICE &&
	    (err = db_exec(c, "DELETE FROM exchange_access WHERE service_id = ?", p, 1, NULL)))
		return err;
	if ((err = db_exec(c, sql, p, in->kind == EXCHANGE_REG_ACCESS || one_sub ? 2 : 1, &changes)))
		return err;
	if (changes == 0) {
		why_set(o->why, missing, NULL, NULL);
		return EGOV_ENOTFOUND;
	}
	return EGOV_OK;
}

/* Checks an item to add; EGOV_EINVAL with why. */
static egov_err check_item(const exchange_reg_item *in, reg_why *why)
{
	switch (in->kind) {
	case EXCHANGE_REG_MEMBER:
		if (!exchange_id_valid(in->id, EXCHANGE_ID_MEMBER))
			goto bad_id;
		if (!in->name || !*in->name || utf8_chars(in->name) > 200) {
			why_set(why, "validation.invalid_field", "name", "1 to 200 characters");
			return EGOV_EINVAL;
		}
		break;
	case EXCHANGE_REG_SUBSYSTEM:
		if (!exchange_id_valid(in->id, EXCHANGE_ID_SUBSYSTEM))
			goto bad_id;
		if (!exchange_gateway_url_valid(in->gateway)) {
			why_set(why, "validation.invalid_field", "gateway", "https://HOST[:PORT]");
			return EGOV_EINVAL;
		}
		break;
	case EXCHANGE_REG_SERVICE:
		if (!exchange_id_valid(in->id, EXCHANGE_ID_SERVICE))
			goto bad_id;
		if (in->title && utf8_chars(in->title) > 200) {
			why_set(why, "validation.invalid_field", "title", "at most 200 characters");
			return EGOV_EINVAL;
		}
		if (in->log_mode && strcmp(in->log_mode, "full") != 0 && strcmp(in->log_mode, "digest") != 0) {
			why_set(why, "validation.invalid_field", "log", "full or digest");
			return EGOV_EINVAL;
		}
		if (in->max_body < 0 || in->max_body > EGOV_BODY_MAX_UPLOAD) {
			why_set(why, "validation.invalid_field", "max_body", "1 to 16777216 bytes");
			return EGOV_EINVAL;
		}
		if (in->timeout_ms != 0 && (in->timeout_ms < TIMEOUT_MIN_MS || in->timeout_ms > TIMEOUT_MAX_MS)) {
			why_set(why, "validation.invalid_field", "timeout_ms", "10 to 600000 milliseconds");
			return EGOV_EINVAL;
		}
		if (in->openapi) {
			cJSON *doc = NULL;
			if (strlen(in->openapi) > OPENAPI_MAX ||
			    json_precheck(in->openapi, strlen(in->openapi), EGOV_JSON_DEPTH_MAX) ||
			    !(doc = cJSON_Parse(in->openapi)) || !cJSON_IsObject(doc)) {
				cJSON_Delete(doc);
				why_set(why, "validation.invalid_field", "openapi", "a JSON object of at most 1 MiB");
				return EGOV_EINVAL;
			}
			cJSON_Delete(doc);
		}
		break;
	case EXCHANGE_REG_EVENT_TYPE:
		if (!exchange_id_valid(in->id, EXCHANGE_ID_SERVICE))
			goto bad_id;
		break;
	case EXCHANGE_REG_ACCESS:
		if (!exchange_id_valid(in->client, EXCHANGE_ID_SUBSYSTEM)) {
			why_set(why, "validation.invalid_field", "client", "INSTANCE/CLASS/MEMBER/SUBSYSTEM");
			return EGOV_EINVAL;
		}
		if (!exchange_id_valid(in->service, EXCHANGE_ID_SERVICE)) {
			why_set(why, "validation.invalid_field", "service", "INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE");
			return EGOV_EINVAL;
		}
		if (!exchange_methods_valid(in->methods)) {
			why_set(why, "validation.invalid_field", "methods", "* or a list like GET,POST");
			return EGOV_EINVAL;
		}
		if (!exchange_paths_valid(in->paths)) {
			why_set(why, "validation.invalid_field", "paths", "* or a list like /persons/*,/health");
			return EGOV_EINVAL;
		}
		break;
	case EXCHANGE_REG_CERT:
		break;
	}
	return EGOV_OK;
bad_id:
	why_set(why, "validation.invalid_field", "id",
		in->kind == EXCHANGE_REG_MEMBER	     ? "INSTANCE/CLASS/MEMBER"
		: in->kind == EXCHANGE_REG_SUBSYSTEM ? "INSTANCE/CLASS/MEMBER/SUBSYSTEM"
						     : "INSTANCE/CLASS/MEMBER/SUBSYSTEM/NAME");
	return EGOV_EINVAL;
}

/* The configured instance, so a registry holds one instance only. */
static bool instance_ok(const char *id)
{
	const char *inst = exchange_settings(app()->config)->instance;
	size_t n = strlen(inst);

	return strncmp(id, inst, n) == 0 && id[n] == '/';
}

egov_err exchange_reg_add(db_conn *c, const exchange_reg_item *in, bool *replaced, reg_why *why)
{
	static egov_err (*const fns[])(db_conn *, void *) = {
		[EXCHANGE_REG_MEMBER] = insert_member,	       [EXCHANGE_REG_SUBSYSTEM] = insert_subsystem,
		[EXCHANGE_REG_SERVICE] = insert_service,       [EXCHANGE_REG_EVENT_TYPE] = insert_event_type,
		[EXCHANGE_REG_ACCESS] = grant_access,	       [EXCHANGE_REG_CERT] = insert_cert,
	};
	op o = {.in = in, .why = why};
	const char *id = in->kind == EXCHANGE_REG_ACCESS ? in->client : in->id;
	egov_err err;

	why_set(why, NULL, NULL, NULL);
	if ((err = check_item(in, why)))
		return err;
	if (!instance_ok(id) || (in->kind == EXCHANGE_REG_ACCESS && !instance_ok(in->service))) {
		why_set(why, "validation.invalid_field",
			in->kind == EXCHANGE_REG_ACCESS ? (instance_ok(id) ? "service" : "client")
			: in->kind == EXCHANGE_REG_CERT ? "subsystem"
							: "id",
			"not of this instance (exchange.instance)");
		return EGOV_EINVAL;
	}
	err = in_tx(c, fns[in->kind], &o);
	if (err == EGOV_ECONFLICT && !why->code)
		why_set(why, "exchange.exists", in->kind == EXCHANGE_REG_CERT ? "certificate" : "id", NULL);
	if (replaced)
		*replaced = o.replaced;
	return err;
}

egov_err exchange_reg_remove(db_conn *c, const exchange_reg_item *in, reg_why *why)
{
	op o = {.in = in, .why = why};

	why_set(why, NULL, NULL, NULL);
	return in_tx(c, delete_row, &o);
}

/* ---- certificates ---------------------------------------------------------- */

/* The chain check for a certificate given to us (not issued here): the
 * platform CA or a trust anchor, through pki. A signing certificate
 * commonly has no TLS client usage, which pki's login check demands, so
 * then the chain is checked here once more without a purpose, against the
 * platform CA only. */
static egov_err check_chain(db_conn *c, X509 *x, const char *usage, char *pki_serial, size_t plen, reg_why *why)
{
	unsigned char *der = NULL;
	pki_verify_result res;
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509 *root = NULL, *issuing = NULL;
	STACK_OF(X509) *untrusted = NULL;
	const unsigned char *p;
	size_t rlen = 0, ilen = 0;
	int n = i2d_X509(x, &der);
	egov_err err;

	pki_serial[0] = '\0';
	if (n <= 0)
		return EGOV_ENOMEM;
	err = pki_verify_chain(c, der, (size_t)n, &res);
	if (err == EGOV_OK) {
		if (res.platform)
			snprintf(pki_serial, plen, "%s", res.serial);
		goto out;
	}
	if (err != EGOV_EAUTH)
		goto out;
	if (strcmp(usage, "sign") != 0 || !res.code || strcmp(res.code, "pki.cert_wrong_usage") != 0) {
		why_set(why, res.code ? res.code : "pki.cert_untrusted", "certificate", NULL);
		goto out;
	}
	err = EGOV_ENOMEM;
	p = pki_root_der(&rlen);
	if (!p || !(root = d2i_X509(NULL, &p, (long)rlen)))
		goto out;
	p = pki_issuing_der(&ilen);
	if (!p || !(issuing = d2i_X509(NULL, &p, (long)ilen)))
		goto out;
	if (!(store = X509_STORE_new()) || !X509_STORE_add_cert(store, root) || !(untrusted = sk_X509_new_null()) ||
	    !sk_X509_push(untrusted, issuing) || !(ctx = X509_STORE_CTX_new()) ||
	    !X509_STORE_CTX_init(ctx, store, x, untrusted))
		goto out;
	err = EGOV_EAUTH;
	if (X509_verify_cert(ctx) != 1 || X509_check_issued(issuing, x) != X509_V_OK) {
		why_set(why, "pki.cert_untrusted", "certificate", NULL);
		goto out;
	}
	{
		pki_cert_info ci = {0};
		egov_err e2 = pki_cert_get(c, res.serial, &ci);
		if (e2 == EGOV_OK && strcmp(ci.status, "good") == 0) {
			snprintf(pki_serial, plen, "%s", ci.serial);
			err = EGOV_OK;
		} else if (e2 == EGOV_OK || e2 == EGOV_ENOTFOUND) {
			why_set(why, e2 == EGOV_OK ? "pki.cert_revoked" : "pki.cert_untrusted", "certificate", NULL);
		} else {
			err = e2;
		}
		pki_cert_info_release(&ci);
	}
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	sk_X509_free(untrusted);
	X509_STORE_free(store);
	X509_free(root);
	X509_free(issuing);
	OPENSSL_free(der);
	return err;
}

static void asn1_text(const ASN1_TIME *t, char out[32])
{
	struct tm tm;

	out[0] = '\0';
	if (t && ASN1_TIME_to_tm(t, &tm) == 1)
		time_format_rfc3339((int64_t)timegm(&tm) * 1000000, 0, out);
}

/* Registers a certificate (PEM) for a subsystem. issued: it comes from
 * pki_issue_from_csr just now (so no chain check). */
static egov_err register_cert(db_conn *c, const char *sub, const char *usage, const char *pem, bool issued,
			      exchange_reg_item *it, char sha[65], reg_why *why)
{
	char serial[PKI_SERIAL_HEX * 2], pki_serial[PKI_SERIAL_HEX * 2] = "", not_after[32];
	X509 *x = exchange_pem_cert(pem, strlen(pem));
	egov_err err = EGOV_EINVAL;

	if (!x) {
		why_set(why, "pki.cert_invalid", "certificate", NULL);
		goto out;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
		why_set(why, "pki.cert_expired", "certificate", NULL);
		goto out;
	}
	if (!issued && (err = check_chain(c, x, usage, pki_serial, sizeof pki_serial, why)))
		goto out;
	{
		ASN1_INTEGER *s = X509_get_serialNumber(x);
		BIGNUM *bn = ASN1_INTEGER_to_BN(s, NULL);
		char *hex = bn ? BN_bn2hex(bn) : NULL;
		size_t i;
		snprintf(serial, sizeof serial, "%s", hex ? hex : "");
		for (i = 0; serial[i]; i++)
			if (serial[i] >= 'A' && serial[i] <= 'F')
				serial[i] = (char)(serial[i] - 'A' + 'a');
		OPENSSL_free(hex);
		BN_free(bn);
	}
	if (issued)
		snprintf(pki_serial, sizeof pki_serial, "%s", serial);
	asn1_text(X509_get0_notAfter(x), not_after);
	if ((err = exchange_cert_sha256(x, sha)))
		goto out;
	it->kind = EXCHANGE_REG_CERT;
	it->id = sub;
	it->usage = usage;
	it->serial = serial;
	it->pki_serial = pki_serial;
	it->not_after = not_after;
	it->pem = pem;
	it->sha256 = sha;
	err = exchange_reg_add(c, it, NULL, why);
out:
	X509_free(x);
	return err;
}

static bool usage_valid(const char *u)
{
	return u && (strcmp(u, "sign") == 0 || strcmp(u, "tls") == 0);
}

egov_err exchange_reg_cert_issue(db_conn *c, const char *sub, const char *usage, const char *csr, size_t len,
				 char sha[65], char **pem_out, reg_why *why)
{
	pki_cert_info ci = {0};
	exchange_reg_item it = {0};
	char cn[EXCHANGE_PART_MAX + 1];
	const char *code = NULL, *last;
	egov_err err;

	*pem_out = NULL;
	why_set(why, NULL, NULL, NULL);
	if (!exchange_id_valid(sub, EXCHANGE_ID_SUBSYSTEM) || !instance_ok(sub)) {
		why_set(why, "validation.invalid_field", "subsystem", "INSTANCE/CLASS/MEMBER/SUBSYSTEM");
		return EGOV_EINVAL;
	}
	if (!usage_valid(usage)) {
		why_set(why, "validation.invalid_field", "usage", "sign or tls");
		return EGOV_EINVAL;
	}
	{
		bool found = false;
		if ((err = exists(c, "SELECT 1 FROM exchange_subsystem WHERE id = ?", sub, &found)))
			return err;
		if (!found) {
			why_set(why, "exchange.unknown_subsystem", "subsystem", NULL);
			return EGOV_ENOTFOUND;
		}
	}
	/* The CA takes a CN of at most 64 characters; the owner (UID) is
	 * the full id either way. */
	last = strrchr(sub, '/');
	snprintf(cn, sizeof cn, "%s", strlen(sub) <= 64 ? sub : last + 1);
	err = pki_issue_from_csr(c, csr, len, strcmp(usage, "sign") == 0 ? "system_sign" : "system_tls", sub,
				 cn, &ci, &code);
	if (err) {
		if (code)
			why_set(why, code, "csr", NULL);
		return err;
	}
	if (audit_available()) {
		char object[64], details[EXCHANGE_ID_MAX + 64];
		snprintf(object, sizeof object, "cert:%s", ci.serial);
		snprintf(details, sizeof details, "{\"profile\":\"%s\",\"owner\":\"%s\"}", ci.profile, sub);
		audit_append("exchange", "pki.cert.issue", object, details, NULL);
	}
	err = register_cert(c, sub, usage, ci.pem, true, &it, sha, why);
	if (!err) {
		*pem_out = ci.pem;
		ci.pem = NULL;
	}
	pki_cert_info_release(&ci);
	return err;
}

egov_err exchange_reg_cert_add(db_conn *c, const char *sub, const char *usage, const char *pem, char sha[65],
			       reg_why *why)
{
	exchange_reg_item it = {0};

	why_set(why, NULL, NULL, NULL);
	if (!exchange_id_valid(sub, EXCHANGE_ID_SUBSYSTEM) || !instance_ok(sub)) {
		why_set(why, "validation.invalid_field", "subsystem", "INSTANCE/CLASS/MEMBER/SUBSYSTEM");
		return EGOV_EINVAL;
	}
	if (!usage_valid(usage)) {
		why_set(why, "validation.invalid_field", "usage", "sign or tls");
		return EGOV_EINVAL;
	}
	return register_cert(c, sub, usage, pem, false, &it, sha, why);
}

/* ---- reading ------------------------------------------------------------------ */

/* Queries per kind: all rows (filter NULL) or one (by id), in id order. */
static const char *list_sql(exchange_reg_kind kind, bool one, bool filtered)
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
	case EXCHANGE_REG_ACCESS:
		return filtered ? "SELECT client_id, service_id, methods, paths, created_at FROM exchange_access"
				  " WHERE client_id = ? OR service_id = ? ORDER BY client_id, service_id"
				: "SELECT client_id, service_id, methods, paths, created_at FROM exchange_access"
				  " ORDER BY client_id, service_id";
	}
	return NULL;
}

static void write_fields(jw *w, exchange_reg_kind kind, db_rows *rows)
{
	const char *t;

	switch (kind) {
	case EXCHANGE_REG_MEMBER:
		jw_kstr(w, "id", db_rows_text(rows, 0));
		jw_kstr(w, "name", db_rows_text(rows, 1));
		jw_kstr(w, "created_at", db_rows_text(rows, 2));
		break;
	case EXCHANGE_REG_SUBSYSTEM:
		jw_kstr(w, "id", db_rows_text(rows, 0));
		jw_kstr(w, "member", db_rows_text(rows, 1));
		jw_kstr(w, "gateway", db_rows_text(rows, 2));
		jw_kstr(w, "created_at", db_rows_text(rows, 3));
		break;
	case EXCHANGE_REG_SERVICE:
		jw_kstr(w, "id", db_rows_text(rows, 0));
		jw_kstr(w, "subsystem", db_rows_text(rows, 1));
		jw_kstr(w, "title", db_rows_text(rows, 2));
		jw_kstr(w, "log", db_rows_text(rows, 3));
		jw_kint(w, "max_body", db_rows_int(rows, 4));
		if ((t = db_rows_text(rows, 5))) {
			jw_key(w, "openapi");
			jw_raw(w, t);
		}
		jw_kstr(w, "created_at", db_rows_text(rows, 6));
		jw_kint(w, "timeout_ms", exchange_service_timeout_ms(db_rows_int(rows, 7)));
		break;
	case EXCHANGE_REG_EVENT_TYPE:
		jw_kstr(w, "id", db_rows_text(rows, 0));
		jw_kstr(w, "subsystem", db_rows_text(rows, 1));
		jw_kstr(w, "created_at", db_rows_text(rows, 2));
		break;
	case EXCHANGE_REG_CERT:
		jw_kstr(w, "sha256", db_rows_text(rows, 0));
		jw_kstr(w, "subsystem", db_rows_text(rows, 1));
		jw_kstr(w, "usage", db_rows_text(rows, 2));
		jw_kstr(w, "serial", db_rows_text(rows, 3));
		jw_key(w, "platform");
		jw_bool(w, db_rows_text(rows, 4) != NULL);
		jw_kstr(w, "not_after", db_rows_text(rows, 5));
		jw_kstr(w, "created_at", db_rows_text(rows, 6));
		if ((t = db_rows_text(rows, 7)))
			jw_kstr(w, "certificate", t);
		break;
	case EXCHANGE_REG_ACCESS:
		jw_kstr(w, "client", db_rows_text(rows, 0));
		jw_kstr(w, "service", db_rows_text(rows, 1));
		jw_kstr(w, "methods", db_rows_text(rows, 2));
		jw_kstr(w, "paths", db_rows_text(rows, 3));
		jw_kstr(w, "created_at", db_rows_text(rows, 4));
		break;
	}
}

static void write_row(jw *w, exchange_reg_kind kind, db_rows *rows)
{
	jw_obj_begin(w);
	write_fields(w, kind, rows);
	jw_obj_end(w);
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
	if ((err = db_query(c, list_sql(kind, id != NULL, filter != NULL), p, id || filter ? np : 0, &rows)))
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

/* ---- audit ------------------------------------------------------------------ */

static const char *const kind_names[] = {
	[EXCHANGE_REG_MEMBER] = "member",	  [EXCHANGE_REG_SUBSYSTEM] = "subsystem",
	[EXCHANGE_REG_SERVICE] = "service",	  [EXCHANGE_REG_EVENT_TYPE] = "event_type",
	[EXCHANGE_REG_ACCESS] = "access",	  [EXCHANGE_REG_CERT] = "cert",
};

egov_err exchange_reg_audit(const char *actor, exchange_reg_kind kind, const char *verb, const exchange_reg_item *in,
			    const char *request_id)
{
	char action[48], object[2 * EXCHANGE_ID_MAX + 16];
	buf d;
	egov_err err = EGOV_OK;

	if (!audit_available())
		return EGOV_OK;
	snprintf(action, sizeof action, "exchange.%s.%s", kind_names[kind], verb);
	if (kind == EXCHANGE_REG_ACCESS)
		snprintf(object, sizeof object, "exchange:%s>%s", in->client, in->service);
	else if (kind == EXCHANGE_REG_CERT)
		snprintf(object, sizeof object, "exchange:cert:%s", in->sha256 ? in->sha256 : in->id);
	else
		snprintf(object, sizeof object, "exchange:%s", in->id);
	buf_init(&d, 4096);
	err = buf_adds(&d, "{");
	if (!err && kind == EXCHANGE_REG_ACCESS && in->methods)
		err = buf_addf(&d, "\"methods\":\"%s\",\"paths\":\"%s\",", in->methods, in->paths);
	if (!err && kind == EXCHANGE_REG_SUBSYSTEM && in->gateway) {
		err = buf_adds(&d, "\"gateway\":\"");
		if (!err)
			err = buf_add_json_str(&d, in->gateway);
		if (!err)
			err = buf_adds(&d, "\",");
	}
	if (!err && kind == EXCHANGE_REG_CERT && in->usage)
		err = buf_addf(&d, "\"subsystem\":\"%s\",\"usage\":\"%s\",\"serial\":\"%s\",", in->id, in->usage,
			       in->serial ? in->serial : "");
	if (!err)
		err = buf_addf(&d, "\"request_id\":\"%s\"}", request_id ? request_id : "");
	if (!err)
		err = audit_append(actor, action, object, d.data, NULL);
	buf_release(&d);
	return err;
}

/* ---- HTTP --------------------------------------------------------------------- */

static void actor_of(req *r, char *out, size_t len)
{
	identity_principal p;

	if (identity_principal_from_req(r, &p) != EGOV_OK)
		snprintf(out, len, "unknown");
	else if (p.operator_token)
		snprintf(out, len, "operator");
	else
		snprintf(out, len, "account:%s", p.account_id);
}

static egov_err conn(db_conn **c)
{
	return db_thread_conn(app()->db, c);
}

static int status_of(egov_err err)
{
	return egov_err_http_status(err);
}

static egov_err answer_why(req *r, egov_err err, const reg_why *why)
{
	if (why->code)
		return resp_problem(r, status_of(err), why->code, why->field, why->detail);
	return err;
}

/* The kind a route serves, from its path. */
static exchange_reg_kind route_kind(req *r)
{
	const char *p = req_route(r)->path + strlen("/api/v1/exchange/");

	if (strncmp(p, "members", 7) == 0)
		return EXCHANGE_REG_MEMBER;
	if (strncmp(p, "subsystems", 10) == 0)
		return EXCHANGE_REG_SUBSYSTEM;
	if (strncmp(p, "services", 8) == 0)
		return EXCHANGE_REG_SERVICE;
	if (strncmp(p, "event-types", 11) == 0)
		return EXCHANGE_REG_EVENT_TYPE;
	if (strncmp(p, "certs", 5) == 0)
		return EXCHANGE_REG_CERT;
	return EXCHANGE_REG_ACCESS;
}

egov_err exchange_http_list(req *r)
{
	exchange_reg_kind kind = route_kind(r);
	const char *filter = NULL, *qname = kind == EXCHANGE_REG_SUBSYSTEM ? "member"
					    : kind == EXCHANGE_REG_ACCESS   ? "subsystem"
									    : "subsystem";
	db_conn *c = NULL;
	bool found;
	buf b;
	jw w;
	egov_err err;

	if (kind != EXCHANGE_REG_MEMBER && (filter = req_query(r, qname))) {
		bool ok = kind == EXCHANGE_REG_SUBSYSTEM ? exchange_id_valid(filter, EXCHANGE_ID_MEMBER)
			  : kind == EXCHANGE_REG_ACCESS
			      ? exchange_id_valid(filter, EXCHANGE_ID_SUBSYSTEM) ||
					exchange_id_valid(filter, EXCHANGE_ID_SERVICE)
			      : exchange_id_valid(filter, EXCHANGE_ID_SUBSYSTEM);
		if (!ok)
			return resp_problem(r, 400, "validation.invalid_field", qname, NULL);
	}
	if ((err = conn(&c)))
		return err;
	buf_init(&b, EGOV_RESPONSE_MAX);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_key(&w, "items");
	if ((err = exchange_reg_write(c, kind, NULL, filter, &w, &found))) {
		buf_release(&b);
		return err;
	}
	jw_obj_end(&w);
	return resp_jw(r, 200, &w);
}

static const char *const missing_codes[] = {
	[EXCHANGE_REG_MEMBER] = "exchange.unknown_member",	   [EXCHANGE_REG_SUBSYSTEM] = "exchange.unknown_subsystem",
	[EXCHANGE_REG_SERVICE] = "exchange.unknown_service",	   [EXCHANGE_REG_EVENT_TYPE] = "exchange.unknown_event_type",
	[EXCHANGE_REG_ACCESS] = "exchange.unknown_access",	   [EXCHANGE_REG_CERT] = "exchange.unknown_cert",
};

static bool rest_valid(exchange_reg_kind kind, const char *id)
{
	size_t i;

	switch (kind) {
	case EXCHANGE_REG_MEMBER:
		return exchange_id_valid(id, EXCHANGE_ID_MEMBER);
	case EXCHANGE_REG_SUBSYSTEM:
		return exchange_id_valid(id, EXCHANGE_ID_SUBSYSTEM);
	case EXCHANGE_REG_CERT:
		for (i = 0; id[i]; i++)
			if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
				return false;
		return i == 64;
	default:
		return exchange_id_valid(id, EXCHANGE_ID_SERVICE);
	}
}

egov_err exchange_http_get(req *r)
{
	exchange_reg_kind kind = route_kind(r);
	const char *id = req_param(r, kind == EXCHANGE_REG_CERT ? "sha256" : "rest"), *sub = NULL;
	db_conn *c = NULL;
	bool found = false;
	buf b;
	jw w;
	egov_err err;

	if (!id || !rest_valid(kind, id))
		return resp_problem(r, 404, missing_codes[kind], NULL, NULL);
	if (kind == EXCHANGE_REG_CERT && (sub = req_query(r, "subsystem")) &&
	    !exchange_id_valid(sub, EXCHANGE_ID_SUBSYSTEM))
		return resp_problem(r, 400, "validation.invalid_field", "subsystem", NULL);
	if ((err = conn(&c)))
		return err;
	buf_init(&b, EGOV_RESPONSE_MAX);
	jw_init(&w, &b);
	if ((err = exchange_reg_write(c, kind, id, sub, &w, &found)) || !found) {
		buf_release(&b);
		return err ? err : resp_problem(r, 404, missing_codes[kind], NULL, NULL);
	}
	return resp_jw(r, 200, &w);
}

/* Answers 201 (or 200 when replaced) with the item as stored. */
static egov_err answer_item(req *r, db_conn *c, exchange_reg_kind kind, const char *id, const char *sub,
			    bool replaced)
{
	char loc[EXCHANGE_ID_MAX * 2 + 64];
	bool found = false;
	buf b;
	jw w;
	egov_err err;

	buf_init(&b, EGOV_RESPONSE_MAX);
	jw_init(&w, &b);
	if (kind == EXCHANGE_REG_ACCESS) {
		/* id is "CLIENT SERVICE" here: one row of the list query. */
		const char *sp = strchr(id, ' ');
		char client[EXCHANGE_ID_MAX];
		db_param p[2];
		db_rows *rows = NULL;
		bool has = false;
		snprintf(client, sizeof client, "%.*s", (int)(sp - id), id);
		p[0] = DBP_S(client);
		p[1] = DBP_S(sp + 1);
		if ((err = db_query(c,
				    "SELECT client_id, service_id, methods, paths, created_at FROM exchange_access"
				    " WHERE client_id = ? AND service_id = ?",
				    p, 2, &rows)) ||
		    (err = db_rows_next(rows, &has))) {
			db_rows_free(rows);
			buf_release(&b);
			return err;
		}
		if (has)
			write_row(&w, kind, rows);
		found = has;
		db_rows_free(rows);
		snprintf(loc, sizeof loc, "/api/v1/exchange/access/%s/%s", client, sp + 1);
	} else {
		if ((err = exchange_reg_write(c, kind, id, sub, &w, &found))) {
			buf_release(&b);
			return err;
		}
		snprintf(loc, sizeof loc, "/api/v1/exchange/%s/%s",
			 kind == EXCHANGE_REG_MEMBER	   ? "members"
			 : kind == EXCHANGE_REG_SUBSYSTEM  ? "subsystems"
			 : kind == EXCHANGE_REG_SERVICE	   ? "services"
			 : kind == EXCHANGE_REG_EVENT_TYPE ? "event-types"
							   : "certs",
			 id);
	}
	if (!found) {
		buf_release(&b);
		return EGOV_EINTERNAL;
	}
	if (!replaced)
		resp_header(r, "Location", loc);
	return resp_jw(r, replaced ? 200 : 201, &w);
}

typedef struct item_in {
	const char *id, *name, *gateway, *title, *log, *openapi, *client, *service, *methods, *paths;
	int64_t max_body, timeout_ms;
} item_in;

static const json_field member_fields[] = {
	{.name = "id", .type = JSON_T_STRING, .offset = offsetof(item_in, id), .required = true, .max_len = 256},
	{.name = "name", .type = JSON_T_STRING, .offset = offsetof(item_in, name), .required = true, .min_len = 1,
	 .max_len = NAME_MAX_BYTES},
};
static const json_field subsystem_fields[] = {
	{.name = "id", .type = JSON_T_STRING, .offset = offsetof(item_in, id), .required = true, .max_len = 512},
	{.name = "gateway", .type = JSON_T_STRING, .offset = offsetof(item_in, gateway), .required = true,
	 .max_len = URL_MAX},
};
static const json_field service_fields[] = {
	{.name = "id", .type = JSON_T_STRING, .offset = offsetof(item_in, id), .required = true, .max_len = 512},
	{.name = "title", .type = JSON_T_STRING, .offset = offsetof(item_in, title), .max_len = TITLE_MAX_BYTES},
	{.name = "log", .type = JSON_T_STRING, .offset = offsetof(item_in, log), .max_len = 16},
	{.name = "max_body", .type = JSON_T_INT, .offset = offsetof(item_in, max_body), .min = 1,
	 .max = EGOV_BODY_MAX_UPLOAD},
	{.name = "openapi", .type = JSON_T_RAW, .offset = offsetof(item_in, openapi)},
	{.name = "timeout_ms", .type = JSON_T_INT, .offset = offsetof(item_in, timeout_ms), .min = TIMEOUT_MIN_MS,
	 .max = TIMEOUT_MAX_MS},
};
static const json_field event_type_fields[] = {
	{.name = "id", .type = JSON_T_STRING, .offset = offsetof(item_in, id), .required = true, .max_len = 512},
};
static const json_field access_fields[] = {
	{.name = "client", .type = JSON_T_STRING, .offset = offsetof(item_in, client), .required = true,
	 .max_len = 512},
	{.name = "service", .type = JSON_T_STRING, .offset = offsetof(item_in, service), .required = true,
	 .max_len = 512},
	{.name = "methods", .type = JSON_T_STRING, .offset = offsetof(item_in, methods), .max_len = RULE_MAX},
	{.name = "paths", .type = JSON_T_STRING, .offset = offsetof(item_in, paths), .max_len = RULE_MAX},
};

#define NF(t) (sizeof(t) / sizeof(t)[0])

egov_err exchange_http_add(req *r)
{
	exchange_reg_kind kind = route_kind(r);
	item_in in = {0};
	exchange_reg_item it = {0};
	char actor[64], key[2 * EXCHANGE_ID_MAX + 2];
	reg_why why = {0};
	bool replaced = false;
	db_conn *c = NULL;
	egov_err err;

	switch (kind) {
	case EXCHANGE_REG_MEMBER:
		err = req_json(r, member_fields, NF(member_fields), &in);
		break;
	case EXCHANGE_REG_SUBSYSTEM:
		err = req_json(r, subsystem_fields, NF(subsystem_fields), &in);
		break;
	case EXCHANGE_REG_SERVICE:
		err = req_json(r, service_fields, NF(service_fields), &in);
		break;
	case EXCHANGE_REG_EVENT_TYPE:
		err = req_json(r, event_type_fields, NF(event_type_fields), &in);
		break;
	case EXCHANGE_REG_ACCESS:
		err = req_json(r, access_fields, NF(access_fields), &in);
		break;
	default:
		return EGOV_EINTERNAL;
	}
	if (err)
		return err;
	it.kind = kind;
	it.id = in.id;
	it.name = in.name;
	it.gateway = in.gateway;
	it.title = in.title;
	it.log_mode = in.log;
	it.max_body = in.max_body;
	it.timeout_ms = in.timeout_ms;
	it.openapi = in.openapi;
	it.client = in.client;
	it.service = in.service;
	it.methods = in.methods ? in.methods : "*";
	it.paths = in.paths ? in.paths : "*";
	if ((err = conn(&c)))
		return err;
	if ((err = exchange_reg_add(c, &it, &replaced, &why)))
		return answer_why(r, err, &why);
	actor_of(r, actor, sizeof actor);
	if ((err = exchange_reg_audit(actor, kind, replaced ? "change" : "add", &it, req_id(r))))
		return err;
	if (kind == EXCHANGE_REG_ACCESS)
		snprintf(key, sizeof key, "%s %s", it.client, it.service);
	else
		snprintf(key, sizeof key, "%s", it.id);
	return answer_item(r, c, kind, key, NULL, replaced);
}

egov_err exchange_http_remove(req *r)
{
	exchange_reg_kind kind = route_kind(r);
	const char *id = req_param(r, kind == EXCHANGE_REG_CERT ? "sha256" : "rest");
	char client[EXCHANGE_ID_MAX], actor[64];
	exchange_reg_item it = {.kind = kind, .id = id};
	reg_why why = {0};
	db_conn *c = NULL;
	egov_err err;

	if (!id)
		return resp_problem(r, 404, missing_codes[kind], NULL, NULL);
	if (kind == EXCHANGE_REG_ACCESS) {
		/* CLIENT/SERVICE: the first four parts and the five after. */
		if (exchange_id_prefix(id, 4, client) || !exchange_id_valid(client, EXCHANGE_ID_SUBSYSTEM) ||
		    !exchange_id_valid(id + strlen(client) + (id[strlen(client)] ? 1 : 0), EXCHANGE_ID_SERVICE))
			return resp_problem(r, 404, missing_codes[kind], NULL, NULL);
		it.client = client;
		it.service = id + strlen(client) + 1;
	} else if (!rest_valid(kind, id)) {
		return resp_problem(r, 404, missing_codes[kind], NULL, NULL);
	}
	if (kind == EXCHANGE_REG_CERT) {
		const char *sub = req_query(r, "subsystem");
		if (sub && !exchange_id_valid(sub, EXCHANGE_ID_SUBSYSTEM))
			return resp_problem(r, 400, "validation.invalid_field", "subsystem", NULL);
		/* With ?subsystem= only that registration goes. */
		it.sha256 = id;
		if (sub)
			it.id = sub;
	}
	if ((err = conn(&c)))
		return err;
	if ((err = exchange_reg_remove(c, &it, &why)))
		return answer_why(r, err, &why);
	actor_of(r, actor, sizeof actor);
	if ((err = exchange_reg_audit(actor, kind, "remove", &it, req_id(r))))
		return err;
	return resp_empty(r, 204);
}

typedef struct cert_in {
	const char *subsystem, *usage, *csr, *certificate;
} cert_in;

static const json_field cert_fields[] = {
	{.name = "subsystem", .type = JSON_T_STRING, .offset = offsetof(cert_in, subsystem), .required = true,
	 .max_len = 512},
	{.name = "usage", .type = JSON_T_STRING, .offset = offsetof(cert_in, usage), .required = true, .max_len = 8},
	{.name = "csr", .type = JSON_T_STRING, .offset = offsetof(cert_in, csr), .min_len = 1, .max_len = PEM_MAX},
	{.name = "certificate", .type = JSON_T_STRING, .offset = offsetof(cert_in, certificate), .min_len = 1,
	 .max_len = PEM_MAX},
};

egov_err exchange_http_cert_add(req *r)
{
	cert_in in = {0};
	char sha[65], actor[64];
	char *pem = NULL;
	exchange_reg_item it = {.kind = EXCHANGE_REG_CERT};
	reg_why why = {0};
	db_conn *c = NULL;
	egov_err err;

	if ((err = req_json(r, cert_fields, NF(cert_fields), &in)))
		return err;
	if (!in.csr == !in.certificate)
		return resp_problem(r, 400, "validation.invalid_field", in.csr ? "certificate" : "csr",
				    "exactly one of csr and certificate");
	if (!pki_is_open())
		return resp_problem(r, 503, "unavailable", NULL, "the platform CA is not open");
	if ((err = conn(&c)))
		return err;
	if (in.csr)
		err = exchange_reg_cert_issue(c, in.subsystem, in.usage, in.csr, strlen(in.csr), sha, &pem, &why);
	else
		err = exchange_reg_cert_add(c, in.subsystem, in.usage, in.certificate, sha, &why);
	free(pem);
	/* A certificate that does not verify is bad input here, not a failed
	 * login: 400 with the pki code. */
	if (err == EGOV_EAUTH && why.code)
		err = EGOV_EINVAL;
	if (err)
		return answer_why(r, err, &why);
	actor_of(r, actor, sizeof actor);
	it.id = in.subsystem;
	it.usage = in.usage;
	it.sha256 = sha;
	if ((err = exchange_reg_audit(actor, EXCHANGE_REG_CERT, "add", &it, req_id(r))))
		return err;
	return answer_item(r, c, EXCHANGE_REG_CERT, sha, in.subsystem, false);
}

egov_err exchange_http_status(req *r)
{
	const egov_config *cfg = app()->config;
	int64_t version = 0;
	db_conn *c = NULL;
	buf b;
	jw w;
	egov_err err;

	if ((err = conn(&c)) || (err = exchange_registry_version(c, &version)))
		return err;
	buf_init(&b, 4096);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_kstr(&w, "instance", exchange_settings(cfg)->instance);
	jw_kstr(&w, "role", cfg && cfg->role ? cfg->role : "standalone");
	jw_kint(&w, "version", version);
	jw_obj_end(&w);
	return resp_jw(r, 200, &w);
}

/* ---- commands ------------------------------------------------------------------ */

typedef struct cli {
	const char *gateway, *openapi, *log, *title, *methods, *paths, *usage, *csr, *name, *max_body, *timeout_ms;
	const char *pos[3];
	int npos;
} cli;

static int cli_parse(int argc, char **argv, int first, cli *o)
{
	static const struct {
		const char *flag;
		size_t off;
	} flags[] = {
		{"--gateway", offsetof(cli, gateway)}, {"--openapi", offsetof(cli, openapi)},
		{"--log", offsetof(cli, log)},	       {"--title", offsetof(cli, title)},
		{"--methods", offsetof(cli, methods)}, {"--paths", offsetof(cli, paths)},
		{"--usage", offsetof(cli, usage)},     {"--csr", offsetof(cli, csr)},
		{"--name", offsetof(cli, name)},       {"--max-body", offsetof(cli, max_body)},
		{"--timeout-ms", offsetof(cli, timeout_ms)},
	};
	int i;
	size_t k;

	for (i = first; i < argc; i++) {
		if (strncmp(argv[i], "--", 2) != 0) {
			if (o->npos >= 3) {
				fprintf(stderr, "egov: %s: too many arguments\n", argv[i]);
				return -1;
			}
			o->pos[o->npos++] = argv[i];
			continue;
		}
		for (k = 0; k < sizeof flags / sizeof flags[0]; k++)
			if (strcmp(argv[i], flags[k].flag) == 0)
				break;
		if (k == sizeof flags / sizeof flags[0] || i + 1 >= argc) {
			fprintf(stderr, "egov: %s: %s\n", argv[i],
				k == sizeof flags / sizeof flags[0] ? "unknown option" : "needs a value");
			return -1;
		}
		*(const char **)((char *)o + flags[k].off) = argv[++i];
	}
	return 0;
}

static int cli_fail(egov_err err, const reg_why *why)
{
	if (why->code)
		fprintf(stderr, "egov: %s%s%s%s%s\n", why->field ? why->field : "", why->field ? ": " : "", why->code,
			why->detail ? ": " : "", why->detail ? why->detail : "");
	else
		fprintf(stderr, "egov: %s\n", egov_err_name(err));
	return err == EGOV_EINVAL || err == EGOV_ECONFLICT || err == EGOV_ENOTFOUND || err == EGOV_EAUTH ? 1 : 2;
}

static int cli_list(db_conn *c, exchange_reg_kind kind, const char *filter)
{
	db_param p[2] = {DBP_S(filter), DBP_S(filter)};
	int np = kind == EXCHANGE_REG_ACCESS ? 2 : 1;
	db_rows *rows = NULL;
	bool has = false;
	int i, n;

	if (db_query(c, list_sql(kind, false, filter != NULL), p, filter ? np : 0, &rows))
		return 2;
	while (!db_rows_next(rows, &has) && has) {
		n = db_rows_ncols(rows);
		for (i = 0; i < n; i++) {
			const char *t = db_rows_text(rows, i);
			if ((kind == EXCHANGE_REG_SERVICE && i == 5) || (kind == EXCHANGE_REG_CERT && i == 7))
				continue;
			printf("%s%s", i ? "\t" : "", t ? t : "-");
		}
		printf("\n");
	}
	db_rows_free(rows);
	return 0;
}

static int cli_add(db_conn *c, exchange_reg_item *it, const char *verb)
{
	reg_why why = {0};
	bool replaced = false;
	egov_err err = exchange_reg_add(c, it, &replaced, &why);

	if (err)
		return cli_fail(err, &why);
	exchange_reg_audit("operator:cli", it->kind, replaced ? "change" : verb, it, NULL);
	return 0;
}

static int cli_remove(db_conn *c, exchange_reg_item *it)
{
	reg_why why = {0};
	egov_err err = exchange_reg_remove(c, it, &why);

	if (err)
		return cli_fail(err, &why);
	exchange_reg_audit("operator:cli", it->kind, "remove", it, NULL);
	return 0;
}

static int usage_err(const char *u)
{
	fprintf(stderr, "usage: egov exchange %s\n", u);
	return 2;
}

static int cmd_simple(db_conn *c, exchange_reg_kind kind, const char *verb, const cli *o)
{
	exchange_reg_item it = {.kind = kind, .id = o->pos[0]};
	buf doc = {0};
	int rc;

	if (strcmp(verb, "list") == 0)
		return cli_list(c, kind, o->pos[0]);
	if (!o->pos[0])
		return usage_err("member|subsystem|service|event-type add|remove ID ...");
	if (strcmp(verb, "remove") == 0)
		return cli_remove(c, &it);
	if (strcmp(verb, "add") != 0)
		return usage_err("member|subsystem|service|event-type add|list|remove ...");
	it.name = o->name ? o->name : o->pos[1];
	it.gateway = o->gateway;
	it.title = o->title;
	it.log_mode = o->log;
	if (o->max_body) {
		char *end;
		it.max_body = strtoll(o->max_body, &end, 10);
		if (!*o->max_body || *end || it.max_body < 1) {
			fprintf(stderr, "egov: --max-body: a number of bytes\n");
			return 2;
		}
	}
	if (o->timeout_ms) {
		char *end;
		it.timeout_ms = strtoll(o->timeout_ms, &end, 10);
		if (!*o->timeout_ms || *end || it.timeout_ms < TIMEOUT_MIN_MS || it.timeout_ms > TIMEOUT_MAX_MS) {
			fprintf(stderr, "egov: --timeout-ms: 10 to 600000 milliseconds\n");
			return 2;
		}
	}
	if (o->openapi) {
		if (exchange_file_read(o->openapi, OPENAPI_MAX, &doc)) {
			fprintf(stderr, "egov: --openapi: cannot read %s (at most 1 MiB)\n", o->openapi);
			return 2;
		}
		it.openapi = doc.data;
	}
	if (kind == EXCHANGE_REG_MEMBER && !it.name) {
		fprintf(stderr, "egov: member add ID NAME (or --name NAME)\n");
		return 2;
	}
	rc = cli_add(c, &it, "add");
	buf_release(&doc);
	return rc;
}

static int cmd_access(db_conn *c, const char *verb, const cli *o)
{
	exchange_reg_item it = {.kind = EXCHANGE_REG_ACCESS, .client = o->pos[0], .service = o->pos[1]};

	if (strcmp(verb, "list") == 0)
		return cli_list(c, EXCHANGE_REG_ACCESS, o->pos[0]);
	if (!o->pos[0] || !o->pos[1])
		return usage_err("access grant|revoke CLIENT SERVICE [--methods GET,POST] [--paths /a/*,/b]");
	if (strcmp(verb, "revoke") == 0) {
		if (!exchange_id_valid(it.client, EXCHANGE_ID_SUBSYSTEM) ||
		    !exchange_id_valid(it.service, EXCHANGE_ID_SERVICE)) {
			fprintf(stderr, "egov: not a CLIENT subsystem and a SERVICE id\n");
			return 1;
		}
		return cli_remove(c, &it);
	}
	if (strcmp(verb, "grant") != 0)
		return usage_err("access grant|revoke|list ...");
	it.methods = o->methods ? o->methods : "*";
	it.paths = o->paths ? o->paths : "*";
	return cli_add(c, &it, "add");
}

/* Opens the platform CA for commands that issue or check certificates. */
static int open_pki(void)
{
	char msg[512];

	if (pki_is_open())
		return 0;
	if (pki_open(app()->config, msg, sizeof msg)) {
		fprintf(stderr, "egov: pki: %s\n", msg);
		return -1;
	}
	return 0;
}

static int cmd_cert(db_conn *c, const char *verb, const cli *o)
{
	exchange_reg_item it = {.kind = EXCHANGE_REG_CERT};
	reg_why why = {0};
	char sha[65];
	char *pem = NULL;
	buf in = {0};
	egov_err err;
	int rc = 2;

	if (strcmp(verb, "list") == 0)
		return cli_list(c, EXCHANGE_REG_CERT, o->pos[0]);
	if (strcmp(verb, "remove") == 0) {
		if (!o->pos[0])
			return usage_err("cert remove SHA256 [SUBSYSTEM]");
		it.id = it.sha256 = o->pos[0];
		/* With a subsystem only that registration goes. */
		if (o->pos[1])
			it.id = o->pos[1];
		return cli_remove(c, &it);
	}
	if (strcmp(verb, "issue") != 0 && strcmp(verb, "add") != 0)
		return usage_err("cert issue|add|list|remove|install ...");
	if (!o->pos[0] || !o->usage || (strcmp(verb, "issue") == 0 ? !o->csr : !o->pos[1]))
		return usage_err("cert issue SUBSYSTEM --usage sign|tls --csr FILE\n"
				 "       egov exchange cert add SUBSYSTEM --usage sign|tls FILE");
	if (open_pki())
		return 2;
	if (exchange_file_read(strcmp(verb, "issue") == 0 ? o->csr : o->pos[1], PEM_MAX, &in)) {
		fprintf(stderr, "egov: cannot read %s\n", strcmp(verb, "issue") == 0 ? o->csr : o->pos[1]);
		return 2;
	}
	if (strcmp(verb, "issue") == 0)
		err = exchange_reg_cert_issue(c, o->pos[0], o->usage, in.data, in.len, sha, &pem, &why);
	else
		err = exchange_reg_cert_add(c, o->pos[0], o->usage, in.data, sha, &why);
	if (err) {
		rc = cli_fail(err, &why);
		goto out;
	}
	it.id = o->pos[0];
	it.usage = o->usage;
	it.sha256 = sha;
	exchange_reg_audit("operator:cli", EXCHANGE_REG_CERT, "add", &it, NULL);
	if (pem)
		fputs(pem, stdout);
	else
		printf("%s\n", sha);
	rc = 0;
out:
	free(pem);
	buf_release(&in);
	return rc;
}

int exchange_registry_command(int argc, char **argv, db *d)
{
	static const struct {
		const char *name;
		exchange_reg_kind kind;
	} simple[] = {
		{"member", EXCHANGE_REG_MEMBER},
		{"subsystem", EXCHANGE_REG_SUBSYSTEM},
		{"service", EXCHANGE_REG_SERVICE},
		{"event-type", EXCHANGE_REG_EVENT_TYPE},
	};
	cli o = {0};
	db_conn *c = NULL;
	size_t i;

	if (argc < 3)
		return -1;
	for (i = 0; i < sizeof simple / sizeof simple[0]; i++)
		if (strcmp(argv[1], simple[i].name) == 0)
			break;
	if (i == sizeof simple / sizeof simple[0] && strcmp(argv[1], "access") != 0 && strcmp(argv[1], "cert") != 0)
		return -1;
	if (cli_parse(argc, argv, 3, &o))
		return 2;
	if (db_thread_conn(d, &c)) {
		fprintf(stderr, "egov: cannot connect to the database\n");
		return 2;
	}
	if (i < sizeof simple / sizeof simple[0])
		return cmd_simple(c, simple[i].kind, argv[2], &o);
	if (strcmp(argv[1], "access") == 0)
		return cmd_access(c, argv[2], &o);
	return cmd_cert(c, argv[2], &o);
}

/* ---- the central node's signing key --------------------------------------- */

egov_err exchange_central_init(db_conn *c, char *msg, size_t msglen)
{
	char kpath[4096], cpath[4096];
	EVP_PKEY *k = NULL;
	buf csr = {0}, have = {0};
	pki_cert_info ci = {0};
	const char *code = NULL;
	const char *inst = exchange_settings(app()->config)->instance;
	char cn[80];
	egov_err err;

	msg[0] = '\0';
	if ((err = exchange_dirs()) || (err = exchange_path(kpath, sizeof kpath, "central.key")) ||
	    (err = exchange_path(cpath, sizeof cpath, "central.crt"))) {
		snprintf(msg, msglen, "cannot create DATA/exchange");
		return err;
	}
	err = exchange_key_load(kpath, &k);
	if (err == EGOV_OK && exchange_file_read(cpath, PEM_MAX, &have) == EGOV_OK) {
		X509 *x = exchange_pem_cert(have.data, have.len);
		bool ok = x && X509_check_private_key(x, k) == 1;
		X509_free(x);
		if (ok) {
			snprintf(msg, msglen, "%s exists", cpath);
			goto out;
		}
		snprintf(msg, msglen, "%s does not match %s; remove both to start over", cpath, kpath);
		err = EGOV_ECORRUPT;
		goto out;
	}
	if (err == EGOV_ENOTFOUND) {
		if ((err = exchange_key_create(kpath, &k))) {
			snprintf(msg, msglen, "cannot write %s", kpath);
			goto out;
		}
	} else if (err) {
		snprintf(msg, msglen, "%s is not a P-256 key readable only by its owner", kpath);
		goto out;
	}
	snprintf(cn, sizeof cn, "%s exchange central", inst);
	if ((err = exchange_csr_pem(k, cn, &csr)))
		goto out;
	if ((err = pki_issue_from_csr(c, csr.data, csr.len, "system_sign", "exchange:central", cn, &ci, &code))) {
		snprintf(msg, msglen, "the CA refused: %s", code ? code : egov_err_name(err));
		goto out;
	}
	if ((err = exchange_file_write(cpath, ci.pem, strlen(ci.pem), 0644))) {
		snprintf(msg, msglen, "cannot write %s", cpath);
		goto out;
	}
	if (audit_available()) {
		char object[64];
		snprintf(object, sizeof object, "cert:%s", ci.serial);
		audit_append("operator:cli", "exchange.central.init", object, NULL, NULL);
	}
	snprintf(msg, msglen, "made %s (serial %s)", cpath, ci.serial);
out:
	pki_cert_info_release(&ci);
	buf_release(&csr);
	buf_release(&have);
	EVP_PKEY_free(k);
	return err;
}

int exchange_central_command(int argc, char **argv, db *d)
{
	char msg[512];
	db_conn *c = NULL;

	if (argc < 2 || strcmp(argv[1], "central") != 0)
		return -1;
	if (argc != 3 || strcmp(argv[2], "init") != 0) {
		fprintf(stderr, "usage: egov exchange central init\n");
		return 2;
	}
	if (open_pki())
		return 2;
	if (db_thread_conn(d, &c)) {
		fprintf(stderr, "egov: cannot connect to the database\n");
		return 2;
	}
	if (exchange_central_init(c, msg, sizeof msg)) {
		fprintf(stderr, "egov: exchange central init: %s\n", msg);
		return 2;
	}
	fprintf(stderr, "egov: %s\n", msg);
	return 0;
}
