/*
 * exchange_meta.c: what a gateway tells about the exchange rather than
 * carries through it.
 *
 *   Metaservices of the GovStack IM Directory Services API, answered from
 *   the global configuration on the consumer gateway: listClients,
 *   listMethods, allowedMethods, getOpenAPI (response shapes as in
 *   GovStack_IM_Directory_Services_API.yaml).
 *
 *   Operational figures for /metrics: calls, latency and bytes by client,
 *   service and side; refusals by problem code. Labels are configuration
 *   ids only (the gateway counts an exchange after it found both in the
 *   configuration), and the table is capped, so a caller cannot grow it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/crypto.h"
#include "core/json.h"
#include "core/limits.h"
#include "core/metrics.h"
#include "exchange/exchange_int.h"
#include "core/banned.h"

/* ---- metaservices ----------------------------------------------------------- */

/* Writes {"objectType":..,"instanceId":..,...} for an id of n parts. */
static void write_id_fields(jw *w, const char *id, const char *object_type)
{
	static const char *const keys[] = {"instanceId", "memberClass", "memberCode", "applicationCode",
					   "serviceCode"};
	char part[EXCHANGE_PART_MAX + 1];
	const char *p = id;
	size_t k = 0;

	jw_kstr(w, "objectType", object_type);
	while (*p && k < sizeof keys / sizeof keys[0]) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (len > EXCHANGE_PART_MAX)
			len = EXCHANGE_PART_MAX;
		memcpy(part, p, len);
		part[len] = '\0';
		jw_kstr(w, keys[k++], part);
		if (!slash)
			break;
		p = slash + 1;
	}
}

typedef struct clients_ctx {
	jw *w;
	const char *instance; /* filter, or NULL */
	/* members already written (a subsystem's member is listed once) */
	char (*seen)[EXCHANGE_ID_MAX];
	size_t nseen, cap;
	bool members;         /* this pass writes members, else subsystems */
} clients_ctx;

static int instance_matches(const char *id, const char *instance)
{
	size_t n;

	if (!instance)
		return 1;
	n = strlen(instance);
	return strncmp(id, instance, n) == 0 && id[n] == '/';
}

static int each_client(void *ctx, const exchange_subsystem *s)
{
	clients_ctx *cc = ctx;
	char member[EXCHANGE_ID_MAX];
	size_t i;

	if (!instance_matches(s->id, cc->instance))
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

/* listClients: every member (with a subsystem) and every subsystem. */
static egov_err list_clients(req *r, const exchange_conf *cf)
{
	clients_ctx cc = {0};
	buf b;
	jw w;
	egov_err err;

	cc.instance = req_query(r, "instanceId");
	buf_init(&b, EGOV_RESPONSE_MAX);
	jw_init(&w, &b);
	cc.w = &w;
	jw_obj_begin(&w);
	jw_key(&w, "member");
	jw_arr_begin(&w);
	cc.members = true;
	exchange_conf_each_subsystem(cf, each_client, &cc);
	cc.members = false;
	exchange_conf_each_subsystem(cf, each_client, &cc);
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

/* The comma-separated items of list, each as an endpoint with the other
 * value fixed. */
static void write_access_endpoints(jw *w, const char *methods, const char *paths)
{
	const char *m = methods && *methods ? methods : "*";

	for (;;) {
		const char *mend = strchr(m, ','), *p = paths && *paths ? paths : "*";
		size_t mlen = mend ? (size_t)(mend - m) : strlen(m);
		char mbuf[16];
		if (mlen >= sizeof mbuf)
			mlen = sizeof mbuf - 1;
		memcpy(mbuf, m, mlen);
		mbuf[mlen] = '\0';
		for (;;) {
			const char *pend = strchr(p, ',');
			size_t plen = pend ? (size_t)(pend - p) : strlen(p);
			char pbuf[1024];
			if (plen >= sizeof pbuf)
				plen = sizeof pbuf - 1;
			memcpy(pbuf, p, plen);
			pbuf[plen] = '\0';
			jw_obj_begin(w);
			jw_kstr(w, "method", mbuf);
			jw_kstr(w, "path", pbuf);
			jw_obj_end(w);
			if (!pend)
				break;
			p = pend + 1;
		}
		if (!mend)
			break;
		m = mend + 1;
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
	mc.cf = cf;
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

static egov_err get_openapi(req *r, const exchange_conf *cf, const char *provider)
{
	const char *code = req_query(r, "serviceCode");
	char id[EXCHANGE_ID_MAX];
	const exchange_service *s;
	int n;

	if (!code || !*code)
		return resp_problem(r, 400, "exchange.service_code_missing", "serviceCode", NULL);
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
	return resp_bytes(r, 200, "application/json", s->openapi, strlen(s->openapi), true);
}

static bool is_meta_name(const char *s)
{
	return strcmp(s, "listMethods") == 0 || strcmp(s, "allowedMethods") == 0 || strcmp(s, "getOpenAPI") == 0;
}

egov_err exchange_meta_answer(req *r, const exchange_conf *cf, const char *client, const char *const *parts,
			      size_t nparts, bool *handled)
{
	char provider[EXCHANGE_ID_MAX], member[EXCHANGE_ID_MAX];
	const exchange_subsystem *cs;
	int n;

	*handled = false;
	if (nparts == 1 && strcmp(parts[0], "listClients") == 0) {
		*handled = true;
		if (req_method(r) != HTTP_GET && req_method(r) != HTTP_HEAD)
			return resp_problem(r, 405, "method_not_allowed", NULL, NULL);
		return list_clients(r, cf);
	}
	if (nparts != 5 || !is_meta_name(parts[4]))
		return EGOV_OK;
	*handled = true;
	if (req_method(r) != HTTP_GET && req_method(r) != HTTP_HEAD)
		return resp_problem(r, 405, "method_not_allowed", NULL, NULL);
	/* For this gateway's own clients (as a service call is). */
	if (!*client) {
		exchange_metrics_error("exchange.client_invalid");
		return resp_problem(r, 400, "exchange.client_invalid", "X-Road-Client", NULL);
	}
	cs = exchange_conf_subsystem(cf, client);
	if (!cs || !exchange_has_key(client)) {
		exchange_metrics_error("exchange.client_not_local");
		return resp_problem(r, 403, "exchange.client_not_local", "X-Road-Client", NULL);
	}
	n = snprintf(member, sizeof member, "%s/%s/%s", parts[0], parts[1], parts[2]);
	if (n < 0 || (size_t)n >= sizeof member || !exchange_id_valid(member, EXCHANGE_ID_MEMBER) ||
	    !exchange_conf_member_known(cf, member)) {
		exchange_metrics_error("exchange.unknown_member");
		return resp_problem(r, 404, "exchange.unknown_member", NULL, NULL);
	}
	n = snprintf(provider, sizeof provider, "%s/%s", member, parts[3]);
	if (n < 0 || (size_t)n >= sizeof provider || !exchange_id_valid(provider, EXCHANGE_ID_SUBSYSTEM) ||
	    !exchange_conf_subsystem(cf, provider)) {
		exchange_metrics_error("exchange.unknown_subsystem");
		return resp_problem(r, 404, "exchange.unknown_subsystem", NULL, NULL);
	}
	if (strcmp(parts[4], "listMethods") == 0)
		return list_methods(r, cf, provider, NULL);
	if (strcmp(parts[4], "allowedMethods") == 0)
		return list_methods(r, cf, provider, client);
	return get_openapi(r, cf, provider);
}

/* ---- operational figures ------------------------------------------------------ */

/* Latency buckets (seconds): a gateway pair adds about a millisecond; a
 * back-end may take seconds. */
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])
/* Distinct statuses counted per series; more fall into the last one as
 * "other" (a service answers a handful). */
#define STATUSES_MAX 8
/* Series (client, service, side): bounded by the configuration, and
 * capped in case it is large. Past the cap, exchanges count under the
 * series "other". */
#define SERIES_MAX 4096

typedef struct series {
	char client[EXCHANGE_ID_MAX];
	char service[EXCHANGE_ID_MAX];
	int side;
	uint64_t calls;
	int status[STATUSES_MAX];
	uint64_t by_status[STATUSES_MAX];
	uint64_t hist[NBUCKETS];
	uint64_t lat_us;
	uint64_t bytes_req, bytes_resp;
} series;

static struct {
	pthread_mutex_t mu;
	series *v;    /* open addressing, SERIES_MAX * 2 slots, allocated on first use */
	size_t n;
	series other[2];
} mx = {.mu = PTHREAD_MUTEX_INITIALIZER, .other = {{.side = 0}, {.side = 1}}};

/* Refusal counters by code: a fixed list, so a label cannot come from outside. */
static const char *const error_codes[] = {
	"exchange.client_invalid", "exchange.client_not_local", "exchange.unknown_member",
	"exchange.unknown_subsystem", "exchange.unknown_service", "exchange.access_denied",
	"exchange.signature_invalid", "exchange.replay", "exchange.payload_too_large",
	"exchange.backend_unavailable", "exchange.backend_timeout", "exchange.provider_unreachable",
	"exchange.response_invalid", "exchange.response_too_large", "exchange.conf_missing",
	"exchange.conf_expired", "exchange.timestamping_overdue", "exchange.header_invalid", "other",
};
#define NCODES (sizeof error_codes / sizeof error_codes[0])
static atomic_uint_fast64_t errors[NCODES];

void exchange_metrics_error(const char *code)
{
	size_t i;

	for (i = 0; i < NCODES - 1; i++)
		if (strcmp(error_codes[i], code) == 0)
			break;
	atomic_fetch_add_explicit(&errors[i], 1, memory_order_relaxed);
}

static uint64_t series_hash(const char *client, const char *service, int side)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)side;
	const char *p;

	for (p = client; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	h = (h ^ '\n') * 1099511628211ull;
	for (p = service; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return h;
}

static series *series_find(const char *client, const char *service, int side)
{
	size_t cap = SERIES_MAX * 2, i;

	if (!mx.v && !(mx.v = calloc(cap, sizeof *mx.v)))
		return &mx.other[side ? 1 : 0];
	for (i = (size_t)series_hash(client, service, side) & (cap - 1); mx.v[i].client[0]; i = (i + 1) & (cap - 1))
		if (mx.v[i].side == side && strcmp(mx.v[i].client, client) == 0 &&
		    strcmp(mx.v[i].service, service) == 0)
			return &mx.v[i];
	if (mx.n >= SERIES_MAX || strlen(client) >= EXCHANGE_ID_MAX || strlen(service) >= EXCHANGE_ID_MAX)
		return &mx.other[side ? 1 : 0];
	memcpy(mx.v[i].client, client, strlen(client) + 1);
	memcpy(mx.v[i].service, service, strlen(service) + 1);
	mx.v[i].side = side;
	mx.n++;
	return &mx.v[i];
}

void exchange_metrics_observe(const char *client, const char *service, int side, int status, int64_t dur_us,
			      size_t request_bytes, size_t response_bytes)
{
	series *s;
	size_t i;
	double sec = (double)(dur_us > 0 ? dur_us : 0) / 1e6;

	pthread_mutex_lock(&mx.mu);
	s = series_find(client, service, side);
	s->calls++;
	for (i = 0; i < STATUSES_MAX - 1 && s->status[i] && s->status[i] != status; i++)
		;
	if (!s->status[i])
		s->status[i] = i == STATUSES_MAX - 1 ? -1 : status;
	s->by_status[i]++;
	for (i = 0; i < NBUCKETS; i++)
		if (sec <= buckets[i])
			s->hist[i]++;
	s->lat_us += (uint64_t)(dur_us > 0 ? dur_us : 0);
	s->bytes_req += request_bytes;
	s->bytes_resp += response_bytes;
	pthread_mutex_unlock(&mx.mu);
}

static egov_err write_series(buf *out, const series *s, int what)
{
	const char *side = s->side ? "provider" : "consumer";
	const char *client = s->client[0] ? s->client : "other", *service = s->service[0] ? s->service : "other";
	egov_err err = EGOV_OK;
	size_t i;

	if (!s->calls)
		return EGOV_OK;
	switch (what) {
	case 0:
		for (i = 0; i < STATUSES_MAX && s->status[i] && !err; i++) {
			char st[16];
			if (s->status[i] < 0)
				snprintf(st, sizeof st, "other");
			else
				snprintf(st, sizeof st, "%d", s->status[i]);
			err = buf_addf(out,
				       "egov_exchange_calls_total{client=\"%s\",service=\"%s\",side=\"%s\",status=\"%s\"} "
				       "%llu\n",
				       client, service, side, st, (unsigned long long)s->by_status[i]);
		}
		break;
	case 1:
		for (i = 0; i < NBUCKETS && !err; i++)
			err = buf_addf(out,
				       "egov_exchange_latency_seconds_bucket{client=\"%s\",service=\"%s\",side=\"%s\","
				       "le=\"%g\"} %llu\n",
				       client, service, side, buckets[i], (unsigned long long)s->hist[i]);
		if (!err)
			err = buf_addf(out,
				       "egov_exchange_latency_seconds_bucket{client=\"%s\",service=\"%s\",side=\"%s\","
				       "le=\"+Inf\"} %llu\n"
				       "egov_exchange_latency_seconds_sum{client=\"%s\",service=\"%s\",side=\"%s\"} %.6f\n"
				       "egov_exchange_latency_seconds_count{client=\"%s\",service=\"%s\",side=\"%s\"} %llu\n",
				       client, service, side, (unsigned long long)s->calls, client, service, side,
				       (double)s->lat_us / 1e6, client, service, side, (unsigned long long)s->calls);
		break;
	default:
		err = buf_addf(out,
			       "egov_exchange_bytes_total{client=\"%s\",service=\"%s\",side=\"%s\",direction=\"request\"} "
			       "%llu\n"
			       "egov_exchange_bytes_total{client=\"%s\",service=\"%s\",side=\"%s\",direction=\"response\"} "
			       "%llu\n",
			       client, service, side, (unsigned long long)s->bytes_req, client, service, side,
			       (unsigned long long)s->bytes_resp);
		break;
	}
	return err;
}

egov_err exchange_metrics_write(buf *out)
{
	static const char *const names[][2] = {
		{"egov_exchange_calls_total", "Exchanges answered, by client, service, side and status."},
		{"egov_exchange_latency_seconds", "Time from receiving an exchange to answering it."},
		{"egov_exchange_bytes_total", "Body bytes of exchanges, by direction."},
	};
	static const char *const types[] = {"counter", "histogram", "counter"};
	egov_err err = EGOV_OK;
	size_t i, k;
	int what;

	pthread_mutex_lock(&mx.mu);
	for (what = 0; what < 3 && !err; what++) {
		err = metrics_write_header(out, names[what][0], types[what], names[what][1]);
		for (i = 0; mx.v && i < SERIES_MAX * 2 && !err; i++)
			if (mx.v[i].client[0])
				err = write_series(out, &mx.v[i], what);
		for (k = 0; k < 2 && !err; k++)
			err = write_series(out, &mx.other[k], what);
	}
	pthread_mutex_unlock(&mx.mu);
	if (!err)
		err = metrics_write_header(out, "egov_exchange_errors_total", "counter",
					   "Exchanges refused, by problem code.");
	for (i = 0; i < NCODES && !err; i++)
		err = buf_addf(out, "egov_exchange_errors_total{code=\"%s\"} %llu\n", error_codes[i],
			       (unsigned long long)atomic_load_explicit(&errors[i], memory_order_relaxed));
	return err;
}
