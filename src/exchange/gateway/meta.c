/*
 * meta.c: the metaservices of the GovStack IM Directory Services API,
 * answered from the global configuration on the consumer gateway:
 * listClients, listMethods, allowedMethods, getOpenAPI (response shapes as
 * in GovStack_IM_Directory_Services_API.yaml).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/json.h"
#include "core/limits.h"
#include "exchange/gateway/gateway_int.h"
#include "core/banned.h"

/* ---- metaservices ----------------------------------------------------------- */

static egov_err meta_refuse(req *r, int status, const char *code, const char *field, const char *detail);

/* Writes {"objectType":..,"instanceId":..,...} for an id of n parts. */
static void write_id_fields(jw *w, const char *id, const char *object_type)
{
	jw_kstr(w, "objectType", object_type);
	exchange_id_json(w, id);
}

typedef struct clients_ctx {
	jw *w;
	const char *instance; /* filter, or NULL */
	/* members already written (a subsystem's member is listed once) */
	char (*seen)[EXCHANGE_ID_MAX];
	size_t nseen, cap;
	bool members;         /* this pass writes members, else subsystems */
} clients_ctx;

static int each_client(void *ctx, const exchange_subsystem *s)
{
	clients_ctx *cc = ctx;
	char member[EXCHANGE_ID_MAX];
	size_t i;

	if (cc->instance && !exchange_id_in_instance(s->id, cc->instance))
		return 0;
	if (!cc->members) {
		jw_obj_begin(cc->w);
		jw_key(cc->w, "id");
		jw_obj_begin(cc->w);
		write_id_fields(cc->w, s->id, "APPLICATION");
		jw_obj_end(cc->w);
		jw_kstr(cc->w, "name", s->id);
		jw_obj_end(cc->w);
		return 0;
	}
	if (exchange_id_prefix(s->id, 3, member))
		return 0;
	for (i = 0; i < cc->nseen; i++)
		if (strcmp(cc->seen[i], member) == 0)
			return 0;
	if (cc->nseen == cc->cap) {
		size_t na = cc->cap ? cc->cap * 2 : 32;
		void *p = realloc(cc->seen, na * sizeof *cc->seen);
		if (!p)
			return 1;
		cc->seen = p;
		cc->cap = na;
	}
	memcpy(cc->seen[cc->nseen++], member, EXCHANGE_ID_MAX);
	jw_obj_begin(cc->w);
	jw_key(cc->w, "id");
	jw_obj_begin(cc->w);
	write_id_fields(cc->w, member, "MEMBER");
	jw_obj_end(cc->w);
	jw_kstr(cc->w, "name", member);
	jw_obj_end(cc->w);
	return 0;
}

/* listClients: every member (with a subsystem) and every subsystem of
 * this instance, or of the instance ?instanceId= names: this one or one
 * it federates with (an instance it does not know has none). */
static egov_err list_clients(req *r, const exchange_conf *cf)
{
	clients_ctx cc = {0};
	const exchange_conf *ic;
	buf b;
	jw w;
	egov_err err;

	cc.instance = req_query(r, "instanceId");
	ic = cc.instance ? exchange_conf_of_instance(cf, cc.instance) : cf;
	buf_init(&b, EGOV_RESPONSE_MAX);
	jw_init(&w, &b);
	cc.w = &w;
	jw_obj_begin(&w);
	jw_key(&w, "member");
	jw_arr_begin(&w);
	if (ic) {
		cc.members = true;
		exchange_conf_each_subsystem(ic, each_client, &cc);
		cc.members = false;
		exchange_conf_each_subsystem(ic, each_client, &cc);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	free(cc.seen);
	err = resp_jw(r, 200, &w);
	return err;
}

/* The endpoints an OpenAPI description names: every method of every path. */
static void write_openapi_endpoints(jw *w, const char *openapi)
{
	static const char *const methods[] = {"get", "head", "post", "put", "patch", "delete", "options"};
	cJSON *doc = openapi ? cJSON_Parse(openapi) : NULL;
	cJSON *paths = doc ? cJSON_GetObjectItemCaseSensitive(doc, "paths") : NULL, *p;
	size_t i;

	if (cJSON_IsObject(paths)) {
		cJSON_ArrayForEach(p, paths)
		{
			if (!cJSON_IsObject(p) || !p->string)
				continue;
			for (i = 0; i < sizeof methods / sizeof methods[0]; i++) {
				char up[8];
				size_t k;
				if (!cJSON_GetObjectItemCaseSensitive(p, methods[i]))
					continue;
				for (k = 0; methods[i][k]; k++)
					up[k] = (char)(methods[i][k] - 'a' + 'A');
				up[k] = '\0';
				jw_obj_begin(w);
				jw_kstr(w, "method", up);
				jw_kstr(w, "path", p->string);
				jw_obj_end(w);
			}
		}
	}
	cJSON_Delete(doc);
}

typedef struct methods_ctx {
	jw *w;
	const exchange_conf *cf;
	const char *client;      /* allowedMethods: only what it may call */
	const char *service_id;  /* ?serviceId filter (a service code), or NULL */
	const exchange_service *svc;
} methods_ctx;

/* The next item of a comma-separated list into out (cut to its size);
 * *list moves past it, NULL after the last. */
static void next_item(const char **list, char *out, size_t size)
{
	const char *end = strchr(*list, ',');
	size_t n = end ? (size_t)(end - *list) : strlen(*list);

	if (n >= size)
		n = size - 1;
	memcpy(out, *list, n);
	out[n] = '\0';
	*list = end ? end + 1 : NULL;
}

/* Every method of the rule with every path of it, as endpoints. */
static void write_access_endpoints(jw *w, const char *methods, const char *paths)
{
	const char *m = methods && *methods ? methods : "*", *p;
	char mbuf[16], pbuf[EXCHANGE_RULE_MAX + 1];

	while (m) {
		next_item(&m, mbuf, sizeof mbuf);
		for (p = paths && *paths ? paths : "*"; p;) {
			next_item(&p, pbuf, sizeof pbuf);
			jw_obj_begin(w);
			jw_kstr(w, "method", mbuf);
			jw_kstr(w, "path", pbuf);
			jw_obj_end(w);
		}
	}
}

static int each_rule(void *ctx, const exchange_access *a)
{
	methods_ctx *mc = ctx;

	if (strcmp(a->client, mc->client) == 0 && strcmp(a->service, mc->svc->id) == 0)
		write_access_endpoints(mc->w, a->methods, a->paths);
	return 0;
}

typedef struct any_ctx {
	const char *client, *service;
	bool found;
} any_ctx;

static int any_rule(void *ctx, const exchange_access *a)
{
	any_ctx *ac = ctx;

	if (strcmp(a->client, ac->client) == 0 && strcmp(a->service, ac->service) == 0) {
		ac->found = true;
		return 1;
	}
	return 0;
}

static int each_method_service(void *ctx, const exchange_service *s)
{
	methods_ctx *mc = ctx;
	const char *code = strrchr(s->id, '/');

	code = code ? code + 1 : s->id;
	if (mc->service_id && strcmp(mc->service_id, code) != 0 && strcmp(mc->service_id, s->id) != 0)
		return 0;
	if (mc->client) {
		any_ctx ac = {mc->client, s->id, false};
		exchange_conf_each_access(mc->cf, any_rule, &ac);
		if (!ac.found)
			return 0;
	}
	jw_obj_begin(mc->w);
	write_id_fields(mc->w, s->id, "SERVICE");
	jw_kstr(mc->w, "serviceType", s->openapi ? "OPENAPI" : "REST");
	jw_key(mc->w, "endpointList");
	jw_obj_begin(mc->w);
	jw_key(mc->w, "member");
	jw_arr_begin(mc->w);
	if (mc->client) {
		mc->svc = s;
		exchange_conf_each_access(mc->cf, each_rule, mc);
	} else {
		write_openapi_endpoints(mc->w, s->openapi);
	}
	jw_arr_end(mc->w);
	jw_obj_end(mc->w);
	jw_obj_end(mc->w);
	return 0;
}

static egov_err list_methods(req *r, const exchange_conf *cf, const char *provider, const char *client)
{
	methods_ctx mc = {0};
	buf b;
	jw w;

	buf_init(&b, EGOV_RESPONSE_MAX);
	jw_init(&w, &b);
	mc.w = &w;
	/* The provider's instance grants access: its rights are read. */
	if (!(mc.cf = exchange_conf_of_instance(cf, provider))) {
		buf_release(&b);
		return meta_refuse(r, 404, "exchange.unknown_instance", NULL, NULL);
	}
	mc.client = client;
	mc.service_id = req_query(r, "serviceId");
	jw_obj_begin(&w);
	jw_key(&w, "member");
	jw_arr_begin(&w);
	exchange_conf_each_service(cf, provider, each_method_service, &mc);
	jw_arr_end(&w);
	jw_obj_end(&w);
	return resp_jw(r, 200, &w);
}

/* The representations getOpenAPI offers, as the specification names them,
 * JSON (the description as registered) first. */
static const char *const openapi_types[] = {"application/json", "text/yaml"};

static egov_err get_openapi(req *r, const exchange_conf *cf, const char *provider, const char *code, int as)
{
	char id[EXCHANGE_ID_MAX];
	const exchange_service *s;
	buf yaml;
	egov_err err;
	int n;

	n = snprintf(id, sizeof id, "%s/%s", provider, code);
	if (n < 0 || (size_t)n >= sizeof id || !exchange_id_valid(id, EXCHANGE_ID_SERVICE) ||
	    !(s = exchange_conf_service(cf, id))) {
		exchange_metrics_error("exchange.unknown_service");
		return resp_problem(r, 404, "exchange.unknown_service", "serviceCode", NULL);
	}
	if (!s->openapi) {
		exchange_metrics_error("exchange.unknown_service");
		return resp_problem(r, 404, "exchange.unknown_service", "serviceCode", "no OpenAPI description");
	}
	resp_header(r, "Vary", "Accept");
	if (as == 0)
		return resp_bytes(r, 200, openapi_types[0], s->openapi, strlen(s->openapi), true);
	buf_init(&yaml, EGOV_RESPONSE_MAX);
	if ((err = exchange_json_to_yaml(s->openapi, strlen(s->openapi), &yaml))) {
		buf_release(&yaml);
		return err == EGOV_EINVAL ? EGOV_EINTERNAL : err;
	}
	err = resp_buf(r, 200, openapi_types[1], &yaml);
	buf_release(&yaml);
	return err;
}

static bool is_meta_name(const char *s)
{
	return strcmp(s, "listMethods") == 0 || strcmp(s, "allowedMethods") == 0 || strcmp(s, "getOpenAPI") == 0;
}

static egov_err meta_refuse(req *r, int status, const char *code, const char *field, const char *detail)
{
	exchange_metrics_error(code);
	return resp_problem(r, status, code, field, detail);
}

/* The per-subsystem metaservices once the request is checked: the caller
 * served here, the provider known, then the answer. */
static egov_err per_subsystem(req *r, const exchange_conf *cf, const char *client, const char *const *parts,
			      const char *code, int as)
{
	char provider[EXCHANGE_ID_MAX], member[EXCHANGE_ID_MAX];
	const exchange_subsystem *cs;
	int n;

	cs = exchange_conf_subsystem(cf, client);
	if (!cs || !exchange_has_key(client))
		return meta_refuse(r, 403, "exchange.client_not_local", "X-Road-Client", NULL);
	if (!exchange_conf_of_instance(cf, parts[0]))
		return meta_refuse(r, 404, "exchange.unknown_instance", NULL, NULL);
	n = snprintf(member, sizeof member, "%s/%s/%s", parts[0], parts[1], parts[2]);
	if (n < 0 || (size_t)n >= sizeof member || !exchange_id_valid(member, EXCHANGE_ID_MEMBER) ||
	    !exchange_conf_member_known(cf, member))
		return meta_refuse(r, 404, "exchange.unknown_member", NULL, NULL);
	n = snprintf(provider, sizeof provider, "%s/%s", member, parts[3]);
	if (n < 0 || (size_t)n >= sizeof provider || !exchange_id_valid(provider, EXCHANGE_ID_SUBSYSTEM) ||
	    !exchange_conf_subsystem(cf, provider))
		return meta_refuse(r, 404, "exchange.unknown_subsystem", NULL, NULL);
	if (strcmp(parts[4], "listMethods") == 0)
		return list_methods(r, cf, provider, NULL);
	if (strcmp(parts[4], "allowedMethods") == 0)
		return list_methods(r, cf, provider, client);
	return get_openapi(r, cf, provider, code, as);
}

egov_err exchange_meta_answer(req *r, const char *client, const char *const *parts, size_t nparts, bool *handled)
{
	const char *why = NULL, *code = NULL, *inst;
	exchange_conf *cf;
	bool list;
	int as = 0;
	egov_err err;

	*handled = false;
	list = nparts == 1 && strcmp(parts[0], "listClients") == 0;
	if (!list && (nparts != 5 || !is_meta_name(parts[4])))
		return EGOV_OK;
	*handled = true;
	/* The request first, whatever the configuration holds. */
	if (req_method(r) != HTTP_GET && req_method(r) != HTTP_HEAD) {
		resp_header(r, "Allow", "GET, HEAD");
		return resp_problem(r, 405, "method_not_allowed", NULL, NULL);
	}
	if (list) {
		if ((inst = req_query(r, "instanceId")) && !exchange_id_part_valid(inst))
			return meta_refuse(r, 400, "exchange.id_invalid", "instanceId", NULL);
	} else {
		/* For this gateway's own clients (as a service call is). */
		if (!client)
			return meta_refuse(r, 400, "exchange.client_invalid", "X-Road-Client", NULL);
		if (strcmp(parts[4], "getOpenAPI") == 0) {
			code = req_query(r, "serviceCode");
			if (!code || !*code)
				return meta_refuse(r, 400, "exchange.service_code_missing", "serviceCode", NULL);
			if (!exchange_id_part_valid(code))
				return meta_refuse(r, 400, "exchange.id_invalid", "serviceCode", NULL);
			if ((as = exchange_accept_pick(req_header(r, "Accept"), openapi_types, 2)) < 0)
				return meta_refuse(r, 406, "not_acceptable", "Accept", "application/json or text/yaml");
		}
	}
	if (!(cf = exchange_conf_get(&why)))
		return meta_refuse(r, 503, why ? why : "exchange.conf_missing", NULL, NULL);
	err = list ? list_clients(r, cf) : per_subsystem(r, cf, client, parts, code, as);
	exchange_conf_put(cf);
	return err;
}
