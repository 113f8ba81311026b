/*
 * http.c: the registry's admin API under /api/v1/exchange/ (members,
 * subsystems, services, event-types, access, certs, trusts, status), for the
 * permission exchange.admin (routes in exchange.c). Bodies are bound by
 * the field tables below; what the registry refuses comes back as its
 * problem code and field (reg_why). Every change is audited with the
 * caller as actor once it is committed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "exchange/registry/registry_int.h"
#include "pki/pki.h"
#include "core/banned.h"

/* The audit actor of the caller, as the route contract names it
 * ("account:<id>" for a session or an access token, "operator" for the
 * operator token). */
static void actor_of(req *r, char *out, size_t len)
{
	snprintf(out, len, "%s", req_principal(r)->actor);
}

static egov_err answer_why(req *r, egov_err err, const reg_why *why)
{
	if (why->code)
		return resp_problem(r, egov_err_http_status(err), why->code, why->field, why->detail);
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
	if (strncmp(p, "trusts", 6) == 0)
		return EXCHANGE_REG_TRUST;
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

	if (kind != EXCHANGE_REG_MEMBER && kind != EXCHANGE_REG_TRUST && (filter = req_query(r, qname))) {
		bool ok = kind == EXCHANGE_REG_SUBSYSTEM ? exchange_id_valid(filter, EXCHANGE_ID_MEMBER)
			  : kind == EXCHANGE_REG_ACCESS
			      ? exchange_id_valid(filter, EXCHANGE_ID_SUBSYSTEM) ||
					exchange_id_valid(filter, EXCHANGE_ID_SERVICE)
			      : exchange_id_valid(filter, EXCHANGE_ID_SUBSYSTEM);
		if (!ok)
			return resp_problem(r, 400, "validation.invalid_field", qname, NULL);
	}
	if ((err = registry_conn(&c)))
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
	[EXCHANGE_REG_TRUST] = "exchange.unknown_instance",
};

/* The route parameter that names the item of a kind. */
static const char *id_param(exchange_reg_kind kind)
{
	return kind == EXCHANGE_REG_CERT ? "sha256" : kind == EXCHANGE_REG_TRUST ? "instance" : "rest";
}

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
	case EXCHANGE_REG_TRUST:
		return exchange_id_part_valid(id);
	default:
		return exchange_id_valid(id, EXCHANGE_ID_SERVICE);
	}
}

egov_err exchange_http_get(req *r)
{
	exchange_reg_kind kind = route_kind(r);
	const char *id = req_param(r, id_param(kind)), *sub = NULL;
	db_conn *c = NULL;
	bool found = false;
	buf b;
	jw w;
	egov_err err;

	if (kind == EXCHANGE_REG_TRUST && id && !rest_valid(kind, id))
		return resp_problem(r, 400, "exchange.id_invalid", "instance", NULL);
	if (!id || !rest_valid(kind, id))
		return resp_problem(r, 404, missing_codes[kind], NULL, NULL);
	if (kind == EXCHANGE_REG_CERT && (sub = req_query(r, "subsystem")) &&
	    !exchange_id_valid(sub, EXCHANGE_ID_SUBSYSTEM))
		return resp_problem(r, 400, "validation.invalid_field", "subsystem", NULL);
	if ((err = registry_conn(&c)))
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
		/* id is "CLIENT SERVICE" here. */
		const char *sp = strchr(id, ' ');
		char client[EXCHANGE_ID_MAX];
		snprintf(client, sizeof client, "%.*s", (int)(sp - id), id);
		if ((err = exchange_reg_write_access(c, client, sp + 1, &w, &found))) {
			buf_release(&b);
			return err;
		}
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
			 : kind == EXCHANGE_REG_TRUST	   ? "trusts"
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
	 .max_len = EXCHANGE_NAME_MAX},
};
static const json_field subsystem_fields[] = {
	{.name = "id", .type = JSON_T_STRING, .offset = offsetof(item_in, id), .required = true, .max_len = 512},
	{.name = "gateway", .type = JSON_T_STRING, .offset = offsetof(item_in, gateway), .required = true,
	 .max_len = EXCHANGE_URL_MAX},
};
static const json_field service_fields[] = {
	{.name = "id", .type = JSON_T_STRING, .offset = offsetof(item_in, id), .required = true, .max_len = 512},
	{.name = "title", .type = JSON_T_STRING, .offset = offsetof(item_in, title), .max_len = EXCHANGE_NAME_MAX},
	{.name = "log", .type = JSON_T_STRING, .offset = offsetof(item_in, log), .max_len = 16},
	{.name = "max_body", .type = JSON_T_INT, .offset = offsetof(item_in, max_body), .min = 1,
	 .max = EGOV_BODY_MAX_UPLOAD},
	{.name = "openapi", .type = JSON_T_RAW, .offset = offsetof(item_in, openapi)},
	{.name = "timeout_ms", .type = JSON_T_INT, .offset = offsetof(item_in, timeout_ms), .min = EXCHANGE_TIMEOUT_MIN_MS,
	 .max = EXCHANGE_TIMEOUT_MAX_MS},
};
static const json_field event_type_fields[] = {
	{.name = "id", .type = JSON_T_STRING, .offset = offsetof(item_in, id), .required = true, .max_len = 512},
};
static const json_field access_fields[] = {
	{.name = "client", .type = JSON_T_STRING, .offset = offsetof(item_in, client), .required = true,
	 .max_len = 512},
	{.name = "service", .type = JSON_T_STRING, .offset = offsetof(item_in, service), .required = true,
	 .max_len = 512},
	{.name = "methods", .type = JSON_T_STRING, .offset = offsetof(item_in, methods), .max_len = EXCHANGE_RULE_MAX},
	{.name = "paths", .type = JSON_T_STRING, .offset = offsetof(item_in, paths), .max_len = EXCHANGE_RULE_MAX},
};

#define NF(t) (sizeof(t) / sizeof(t)[0])

egov_err exchange_http_add(req *r)
{
	exchange_reg_kind kind = route_kind(r);
	item_in in = {0};
	exchange_reg_item it = {0};
	char actor[PRINCIPAL_ACTOR_MAX + 1], key[2 * EXCHANGE_ID_MAX + 2];
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
	if ((err = registry_conn(&c)))
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
	const char *id = req_param(r, id_param(kind));
	char client[EXCHANGE_ID_MAX], actor[PRINCIPAL_ACTOR_MAX + 1];
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
	} else if (kind == EXCHANGE_REG_TRUST && !rest_valid(kind, id)) {
		return resp_problem(r, 400, "exchange.id_invalid", "instance", NULL);
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
	if ((err = registry_conn(&c)))
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
	{.name = "csr", .type = JSON_T_STRING, .offset = offsetof(cert_in, csr), .min_len = 1, .max_len = EXCHANGE_PEM_MAX},
	{.name = "certificate", .type = JSON_T_STRING, .offset = offsetof(cert_in, certificate), .min_len = 1,
	 .max_len = EXCHANGE_PEM_MAX},
};

egov_err exchange_http_cert_add(req *r)
{
	cert_in in = {0};
	char sha[65], actor[PRINCIPAL_ACTOR_MAX + 1];
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
	if ((err = registry_conn(&c)))
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

typedef struct trust_in {
	const char *instance, *url, *certificate;
} trust_in;

static const json_field trust_fields[] = {
	{.name = "instance", .type = JSON_T_STRING, .offset = offsetof(trust_in, instance), .required = true,
	 .max_len = 256},
	{.name = "url", .type = JSON_T_STRING, .offset = offsetof(trust_in, url), .required = true,
	 .max_len = EXCHANGE_URL_MAX},
	{.name = "certificate", .type = JSON_T_STRING, .offset = offsetof(trust_in, certificate), .required = true,
	 .min_len = 1, .max_len = EXCHANGE_PEM_MAX},
};

/* POST /api/v1/exchange/trusts: trust another instance's central node, or
 * change its URL or certificate (200). */
egov_err exchange_http_trust_add(req *r)
{
	trust_in in = {0};
	exchange_reg_item it = {.kind = EXCHANGE_REG_TRUST};
	char sha[65], actor[PRINCIPAL_ACTOR_MAX + 1];
	reg_why why = {0};
	bool replaced = false;
	db_conn *c = NULL;
	egov_err err;

	if ((err = req_json(r, trust_fields, NF(trust_fields), &in)))
		return err;
	if ((err = registry_conn(&c)))
		return err;
	if ((err = exchange_reg_trust_add(c, in.instance, in.url, in.certificate, sha, &replaced, &why)))
		return answer_why(r, err, &why);
	actor_of(r, actor, sizeof actor);
	it.id = in.instance;
	it.url = in.url;
	it.sha256 = sha;
	if ((err = exchange_reg_audit(actor, EXCHANGE_REG_TRUST, replaced ? "change" : "add", &it, req_id(r))))
		return err;
	return answer_item(r, c, EXCHANGE_REG_TRUST, in.instance, NULL, replaced);
}

egov_err exchange_http_status(req *r)
{
	const egov_config *cfg = registry_config();
	int64_t version = 0;
	db_conn *c = NULL;
	buf b;
	jw w;
	egov_err err;

	if ((err = registry_conn(&c)) || (err = exchange_registry_version(c, &version)))
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

