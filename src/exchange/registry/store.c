/*
 * store.c: the registry's tables and every change to them.
 *
 * Invariants:
 * - Every change runs in one transaction with a bump of
 *   exchange_registry_version, so a published configuration's version
 *   names exactly one registry state; a gateway never sees a half change.
 * - A parent exists before its children (member before subsystem,
 *   subsystem before service); removing something still in use is a 409,
 *   with the foreign keys as the final word on a race.
 * - Only certificates that chain to the platform CA or a configured trust
 *   anchor are registered (certs.c); the configuration builder drops
 *   revoked and expired ones later (publish.c).
 * - Every change is audited (actor, action exchange.<kind>.<verb>, object
 *   exchange:<id>) once it is committed.
 * - The registry holds one instance: its members, subsystems, services
 *   and event types are of exchange.instance. Only an access right's
 *   client may be of another instance, and only of one this registry
 *   trusts (exchange_trusted_instance); withdrawing that trust takes those
 *   rights with it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "audit/audit.h"
#include "core/timeutil.h"
#include "exchange/registry/registry_int.h"
#include "core/banned.h"

/* The room's database and settings (registry_setup). */
static db *reg_db;
static const egov_config *reg_cfg;

void registry_setup(db *d, const egov_config *cfg)
{
	reg_db = d;
	reg_cfg = cfg;
}

egov_err registry_conn(db_conn **c)
{
	*c = NULL;
	return reg_db ? db_thread_conn(reg_db, c) : EGOV_EUNAVAILABLE;
}

const exchange_config *registry_settings(void)
{
	return exchange_settings(reg_cfg);
}

const egov_config *registry_config(void)
{
	return reg_cfg;
}

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

/* Federation: the instances this registry trusts, by their central
 * node's configuration signing certificate, and access rights whose
 * client is of one of them, which have no subsystem row here (the client
 * is in its own instance's registry): the client's foreign key goes. */
const char exchange_registry_schema_v3[] = "CREATE TABLE exchange_trusted_instance ("
	" instance TEXT PRIMARY KEY, url TEXT NOT NULL, cert_sha256 TEXT NOT NULL, cert_pem TEXT NOT NULL,"
	" not_after TEXT NOT NULL, created_at TEXT NOT NULL);"
	"CREATE TABLE exchange_access_v3 ("
	" client_id TEXT NOT NULL, service_id TEXT NOT NULL REFERENCES exchange_service(id),"
	" methods TEXT NOT NULL, paths TEXT NOT NULL, created_at TEXT NOT NULL,"
	" PRIMARY KEY (client_id, service_id));"
	"INSERT INTO exchange_access_v3 (client_id, service_id, methods, paths, created_at)"
	" SELECT client_id, service_id, methods, paths, created_at FROM exchange_access;"
	"DROP TABLE exchange_access;"
	"ALTER TABLE exchange_access_v3 RENAME TO exchange_access;"
	"CREATE INDEX exchange_access_service ON exchange_access (service_id)";

/* ---- checks ------------------------------------------------------------- */

void reg_why_set(reg_why *w, const char *code, const char *field, const char *detail)
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

/* ---- storage ----------------------------------------------------------- */

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

egov_err registry_exists(db_conn *c, const char *sql, const char *id, bool *found)
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

/* The parent of a new item (its first n parts, into parent) must be in
 * the registry: else EGOV_ENOTFOUND with code. now gets the time of the
 * change. */
static egov_err child_of(db_conn *c, const op *o, int n, const char *sql, const char *code,
			 char parent[EXCHANGE_ID_MAX], char now[32])
{
	bool found = false;
	egov_err err;

	time_format_rfc3339(time_now_us(), 0, now);
	if ((err = exchange_id_prefix(o->in->id, n, parent)) || (err = registry_exists(c, sql, parent, &found)))
		return err;
	if (!found) {
		reg_why_set(o->why, code, "id", NULL);
		return EGOV_ENOTFOUND;
	}
	return EGOV_OK;
}

#define MEMBER_EXISTS "SELECT 1 FROM exchange_member WHERE id = ?"
#define SUBSYSTEM_EXISTS "SELECT 1 FROM exchange_subsystem WHERE id = ?"

static egov_err insert_member(db_conn *c, void *ctx)
{
	op *o = ctx;
	char now[32];
	db_param p[3];

	time_format_rfc3339(time_now_us(), 0, now);
	p[0] = DBP_S(o->in->id);
	p[1] = DBP_S(o->in->name);
	p[2] = DBP_S(now);
	return db_exec(c, "INSERT INTO exchange_member (id, name, created_at) VALUES (?, ?, ?)", p, 3, NULL);
}

static egov_err insert_subsystem(db_conn *c, void *ctx)
{
	op *o = ctx;
	char now[32], member[EXCHANGE_ID_MAX];
	egov_err err;

	if ((err = child_of(c, o, 3, MEMBER_EXISTS, "exchange.unknown_member", member, now)))
		return err;
	return db_exec(c, "INSERT INTO exchange_subsystem (id, member_id, gateway, created_at) VALUES (?, ?, ?, ?)",
		       (db_param[]){DBP_S(o->in->id), DBP_S(member), DBP_S(o->in->gateway), DBP_S(now)}, 4, NULL);
}

static egov_err insert_service(db_conn *c, void *ctx)
{
	op *o = ctx;
	const exchange_reg_item *in = o->in;
	char now[32], sub[EXCHANGE_ID_MAX];
	egov_err err;

	if ((err = child_of(c, o, 4, SUBSYSTEM_EXISTS, "exchange.unknown_subsystem", sub, now)))
		return err;
	return db_exec(c,
		       "INSERT INTO exchange_service (id, subsystem_id, title, log_mode, max_body, openapi, created_at,"
		       " timeout_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		       (db_param[]){DBP_S(in->id), DBP_S(sub), DBP_S(in->title ? in->title : ""),
				    DBP_S(in->log_mode ? in->log_mode : "full"),
				    DBP_I(in->max_body > 0 ? in->max_body : EXCHANGE_MAX_BODY_DEFAULT),
				    in->openapi ? DBP_S(in->openapi) : DBP_NULLV, DBP_S(now),
				    DBP_I(in->timeout_ms > 0 ? in->timeout_ms : 0)},
		       8, NULL);
}

static egov_err insert_event_type(db_conn *c, void *ctx)
{
	op *o = ctx;
	char now[32], sub[EXCHANGE_ID_MAX];
	egov_err err;

	if ((err = child_of(c, o, 4, SUBSYSTEM_EXISTS, "exchange.unknown_subsystem", sub, now)))
		return err;
	return db_exec(c, "INSERT INTO exchange_event_type (id, subsystem_id, created_at) VALUES (?, ?, ?)",
		       (db_param[]){DBP_S(o->in->id), DBP_S(sub), DBP_S(now)}, 3, NULL);
}

static egov_err grant_access(db_conn *c, void *ctx)
{
	op *o = ctx;
	char now[32];
	bool found = false;
	db_param p[5];
	int64_t changes = 0;
	egov_err err;

	/* A client of this instance is registered here; one of another
	 * instance is in that instance's registry, which must be trusted. */
	if (registry_instance_ok(o->in->client)) {
		if ((err = registry_exists(c, "SELECT 1 FROM exchange_subsystem WHERE id = ?", o->in->client, &found)))
			return err;
		if (!found) {
			reg_why_set(o->why, "exchange.unknown_subsystem", "client", NULL);
			return EGOV_ENOTFOUND;
		}
	} else {
		if ((err = registry_trusts(c, o->in->client, &found)))
			return err;
		if (!found) {
			reg_why_set(o->why, "validation.invalid_field", "client",
				"not of this instance nor of one it trusts (egov exchange trust add)");
			return EGOV_EINVAL;
		}
	}
	if ((err = registry_exists(c, "SELECT 1 FROM exchange_service WHERE id = ?", o->in->service, &found)))
		return err;
	if (!found) {
		reg_why_set(o->why, "exchange.unknown_service", "service", NULL);
		return EGOV_ENOTFOUND;
	}
	time_format_rfc3339(time_now_us(), 0, now);
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
			reg_why_set(why, "exchange.exists", "certificate", "already registered for this subsystem");
			err = EGOV_ECONFLICT;
			break;
		}
		if (!usage || strcmp(usage, "tls") != 0 || strcmp(in->usage, "tls") != 0) {
			reg_why_set(why, "exchange.exists", "certificate",
				"a signing certificate belongs to one subsystem only");
			err = EGOV_ECONFLICT;
			break;
		}
		if (!gw || !gateway || strcmp(gw, gateway) != 0) {
			reg_why_set(why, "exchange.exists", "certificate",
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

	if ((err = registry_exists(c, "SELECT 1 FROM exchange_subsystem WHERE id = ?", in->id, &found)))
		return err;
	if (!found) {
		reg_why_set(o->why, "exchange.unknown_subsystem", "subsystem", NULL);
		return EGOV_ENOTFOUND;
	}
	if ((err = cert_shared_ok(c, in, o->why)))
		return err;
	time_format_rfc3339(time_now_us(), 0, now);
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

/* Trusts an instance, or changes how: its URL and certificate. */
static egov_err upsert_trust(db_conn *c, void *ctx)
{
	op *o = ctx;
	const exchange_reg_item *in = o->in;
	char now[32];
	int64_t changes = 0;
	egov_err err;

	time_format_rfc3339(time_now_us(), 0, now);
	if ((err = db_exec(c,
			   "UPDATE exchange_trusted_instance SET url = ?, cert_sha256 = ?, cert_pem = ?, not_after = ?"
			   " WHERE instance = ?",
			   (db_param[]){DBP_S(in->url), DBP_S(in->sha256), DBP_S(in->pem), DBP_S(in->not_after),
					DBP_S(in->id)},
			   5, &changes)))
		return err;
	if (changes > 0) {
		o->replaced = true;
		return EGOV_OK;
	}
	return db_exec(c,
		       "INSERT INTO exchange_trusted_instance (instance, url, cert_sha256, cert_pem, not_after, created_at)"
		       " VALUES (?, ?, ?, ?, ?, ?)",
		       (db_param[]){DBP_S(in->id), DBP_S(in->url), DBP_S(in->sha256), DBP_S(in->pem),
				    DBP_S(in->not_after), DBP_S(now)},
		       6, NULL);
}

egov_err registry_trusts(db_conn *c, const char *id, bool *found)
{
	char instance[EXCHANGE_PART_MAX + 1];
	size_t n = id ? strcspn(id, "/") : 0;

	*found = false;
	if (n == 0 || n > EXCHANGE_PART_MAX)
		return EGOV_OK;
	memcpy(instance, id, n);
	instance[n] = '\0';
	return registry_exists(c, "SELECT 1 FROM exchange_trusted_instance WHERE instance = ?", instance, found);
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
		if ((err = registry_exists(c, *q, id, used)))
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
	case EXCHANGE_REG_TRUST:
		sql = "DELETE FROM exchange_trusted_instance WHERE instance = ?";
		missing = "exchange.unknown_instance";
		break;
	}
	if ((err = in_use(c, in->kind, in->id, &used)))
		return err;
	if (used) {
		reg_why_set(o->why, "exchange.in_use", NULL, NULL);
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
	/* The rights granted to the clients of an instance no longer trusted
	 * go with the trust (as a subsystem's go with it). */
	if (in->kind == EXCHANGE_REG_TRUST) {
		char prefix[EXCHANGE_PART_MAX + 2];
		snprintf(prefix, sizeof prefix, "%s/", in->id);
		if ((err = db_exec(c, "DELETE FROM exchange_access WHERE substr(client_id, 1, ?) = ?",
				   (db_param[]){DBP_I((int64_t)strlen(prefix)), DBP_S(prefix)}, 2, NULL)))
			return err;
	}
	if ((err = db_exec(c, sql, p, in->kind == EXCHANGE_REG_ACCESS || one_sub ? 2 : 1, &changes)))
		return err;
	if (changes == 0) {
		reg_why_set(o->why, missing, NULL, NULL);
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
			reg_why_set(why, "validation.invalid_field", "name", "1 to 200 characters");
			return EGOV_EINVAL;
		}
		break;
	case EXCHANGE_REG_SUBSYSTEM:
		if (!exchange_id_valid(in->id, EXCHANGE_ID_SUBSYSTEM))
			goto bad_id;
		if (!exchange_gateway_url_valid(in->gateway)) {
			reg_why_set(why, "validation.invalid_field", "gateway", "https://HOST[:PORT]");
			return EGOV_EINVAL;
		}
		break;
	case EXCHANGE_REG_SERVICE:
		if (!exchange_id_valid(in->id, EXCHANGE_ID_SERVICE))
			goto bad_id;
		if (in->title && utf8_chars(in->title) > 200) {
			reg_why_set(why, "validation.invalid_field", "title", "at most 200 characters");
			return EGOV_EINVAL;
		}
		if (in->log_mode && strcmp(in->log_mode, "full") != 0 && strcmp(in->log_mode, "digest") != 0) {
			reg_why_set(why, "validation.invalid_field", "log", "full or digest");
			return EGOV_EINVAL;
		}
		if (in->max_body < 0 || in->max_body > EGOV_BODY_MAX_UPLOAD) {
			reg_why_set(why, "validation.invalid_field", "max_body", "1 to 16777216 bytes");
			return EGOV_EINVAL;
		}
		if (in->timeout_ms != 0 && (in->timeout_ms < EXCHANGE_TIMEOUT_MIN_MS || in->timeout_ms > EXCHANGE_TIMEOUT_MAX_MS)) {
			reg_why_set(why, "validation.invalid_field", "timeout_ms", "10 to 600000 milliseconds");
			return EGOV_EINVAL;
		}
		if (in->openapi) {
			cJSON *doc = NULL;
			if (strlen(in->openapi) > EXCHANGE_OPENAPI_MAX ||
			    json_precheck(in->openapi, strlen(in->openapi), EGOV_JSON_DEPTH_MAX) ||
			    !(doc = cJSON_Parse(in->openapi)) || !cJSON_IsObject(doc)) {
				cJSON_Delete(doc);
				reg_why_set(why, "validation.invalid_field", "openapi", "a JSON object of at most 1 MiB");
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
			reg_why_set(why, "validation.invalid_field", "client", "INSTANCE/CLASS/MEMBER/SUBSYSTEM");
			return EGOV_EINVAL;
		}
		if (!exchange_id_valid(in->service, EXCHANGE_ID_SERVICE)) {
			reg_why_set(why, "validation.invalid_field", "service", "INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE");
			return EGOV_EINVAL;
		}
		if (!exchange_methods_valid(in->methods)) {
			reg_why_set(why, "validation.invalid_field", "methods", "* or a list like GET,POST");
			return EGOV_EINVAL;
		}
		if (!exchange_paths_valid(in->paths)) {
			reg_why_set(why, "validation.invalid_field", "paths", "* or a list like /persons/*,/health");
			return EGOV_EINVAL;
		}
		break;
	case EXCHANGE_REG_CERT:
		break;
	case EXCHANGE_REG_TRUST:
		if (!exchange_id_part_valid(in->id)) {
			reg_why_set(why, "validation.invalid_field", "instance", "1 to 64 of A-Z a-z 0-9 _ . -");
			return EGOV_EINVAL;
		}
		if (strcmp(in->id, registry_settings()->instance) == 0) {
			reg_why_set(why, "validation.invalid_field", "instance", "this instance itself");
			return EGOV_EINVAL;
		}
		if (!exchange_conf_url_valid(in->url)) {
			reg_why_set(why, "validation.invalid_field", "url", "http(s)://HOST[:PORT][/PATH]");
			return EGOV_EINVAL;
		}
		if (!in->pem || !in->sha256 || !in->not_after) {
			reg_why_set(why, "validation.invalid_field", "certificate", NULL);
			return EGOV_EINVAL;
		}
		break;
	}
	return EGOV_OK;
bad_id:
	reg_why_set(why, "validation.invalid_field", "id",
		in->kind == EXCHANGE_REG_MEMBER	     ? "INSTANCE/CLASS/MEMBER"
		: in->kind == EXCHANGE_REG_SUBSYSTEM ? "INSTANCE/CLASS/MEMBER/SUBSYSTEM"
						     : "INSTANCE/CLASS/MEMBER/SUBSYSTEM/NAME");
	return EGOV_EINVAL;
}

/* The configured instance, so a registry holds one instance only. */
bool registry_instance_ok(const char *id)
{
	return exchange_id_in_instance(id, registry_settings()->instance);
}

int64_t exchange_service_timeout_ms(int64_t stored)
{
	return stored > 0 ? stored : registry_settings()->backend_timeout_ms;
}

egov_err exchange_reg_add(db_conn *c, const exchange_reg_item *in, bool *replaced, reg_why *why)
{
	static egov_err (*const fns[])(db_conn *, void *) = {
		[EXCHANGE_REG_MEMBER] = insert_member,	       [EXCHANGE_REG_SUBSYSTEM] = insert_subsystem,
		[EXCHANGE_REG_SERVICE] = insert_service,       [EXCHANGE_REG_EVENT_TYPE] = insert_event_type,
		[EXCHANGE_REG_ACCESS] = grant_access,	       [EXCHANGE_REG_CERT] = insert_cert,
		[EXCHANGE_REG_TRUST] = upsert_trust,
	};
	op o = {.in = in, .why = why};
	const char *id = in->kind == EXCHANGE_REG_ACCESS ? in->client : in->id;
	egov_err err;

	reg_why_set(why, NULL, NULL, NULL);
	if ((err = check_item(in, why)))
		return err;
	/* One instance per registry: an access right's client may be of a
	 * trusted instance (grant_access checks it), and a trusted instance
	 * is another one (checked above). */
	if ((in->kind != EXCHANGE_REG_ACCESS && in->kind != EXCHANGE_REG_TRUST && !registry_instance_ok(id)) ||
	    (in->kind == EXCHANGE_REG_ACCESS && !registry_instance_ok(in->service))) {
		reg_why_set(why, "validation.invalid_field",
			in->kind == EXCHANGE_REG_ACCESS ? "service"
			: in->kind == EXCHANGE_REG_CERT ? "subsystem"
							: "id",
			"not of this instance (exchange.instance)");
		return EGOV_EINVAL;
	}
	err = in_tx(c, fns[in->kind], &o);
	if (err == EGOV_ECONFLICT && !why->code)
		reg_why_set(why, "exchange.exists", in->kind == EXCHANGE_REG_CERT ? "certificate" : "id", NULL);
	if (replaced)
		*replaced = o.replaced;
	return err;
}

egov_err exchange_reg_remove(db_conn *c, const exchange_reg_item *in, reg_why *why)
{
	op o = {.in = in, .why = why};

	reg_why_set(why, NULL, NULL, NULL);
	return in_tx(c, delete_row, &o);
}

/* ---- audit ------------------------------------------------------------------ */

static const char *const kind_names[] = {
	[EXCHANGE_REG_MEMBER] = "member",	  [EXCHANGE_REG_SUBSYSTEM] = "subsystem",
	[EXCHANGE_REG_SERVICE] = "service",	  [EXCHANGE_REG_EVENT_TYPE] = "event_type",
	[EXCHANGE_REG_ACCESS] = "access",	  [EXCHANGE_REG_CERT] = "cert",
	[EXCHANGE_REG_TRUST] = "trust",
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
	else if (kind == EXCHANGE_REG_TRUST)
		snprintf(object, sizeof object, "exchange:trust:%s", in->id);
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
	if (!err && kind == EXCHANGE_REG_TRUST && in->url && in->sha256) {
		err = buf_adds(&d, "\"url\":\"");
		if (!err)
			err = buf_add_json_str(&d, in->url);
		if (!err)
			err = buf_addf(&d, "\",\"cert_sha256\":\"%s\",", in->sha256);
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

