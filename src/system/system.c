/*
 * system.c: the node's own endpoints: liveness (/healthz), readiness
 * (/readyz: database reachable, every module's migrations applied and
 * every module ready by its own account, e.g. a gateway holding a valid
 * global configuration),
 * Prometheus metrics (/metrics: the kernel's families, then every module's
 * .metrics in module order), the OpenAPI description and the version.
 *
 * All public but /metrics, which tells how the node is used (request rates
 * per route, logins refused, exchanges per client and service): it is
 * served to a scrape from an address in system.metrics_allow (loopback by
 * default) or one that carries system.metrics_token as a bearer token.
 * A scrape that carries a forwarding header came through a proxy, so the
 * address it comes from says nothing of where it started: only the token
 * opens it then.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/app.h"
#include "core/crypto.h"
#include "core/netaddr.h"
#include "core/limits.h"
#include "core/jobs.h"
#include "core/metrics.h"
#include "core/module.h"
#include "core/version.h"
#include "system/system_int.h"
#include "system/system_limits.h"
#include "core/banned.h"

static egov_err healthz(req *r)
{
	static const char body[] = "{\"status\":\"ok\"}";
	resp_header(r, "Cache-Control", "no-store");
	return resp_bytes(r, 200, "application/json", body, sizeof body - 1, false);
}

static egov_err readyz(req *r)
{
	db_conn *c = NULL;
	const char *db_state = "ok", *mig_state = "ok";
	size_t i;
	buf b;
	jw w;

	if (!app()->db || db_thread_conn(app()->db, &c) || db_ping(c)) {
		db_state = "unreachable";
		mig_state = "unknown";
	} else {
		for (i = 0; i < egov_modules_count; i++) {
			const egov_module *m = egov_modules[i];
			int pending = 0;
			if (!m->nmigrations)
				continue;
			if (db_migrations_pending(c, m->name, m->migrations, m->nmigrations, &pending)) {
				mig_state = "unknown";
				break;
			}
			if (pending) {
				mig_state = "pending";
				break;
			}
		}
	}
	resp_header(r, "Cache-Control", "no-store");
	if (strcmp(db_state, "ok") != 0 || strcmp(mig_state, "ok") != 0) {
		char detail[128];
		snprintf(detail, sizeof detail, "database: %s; migrations: %s", db_state, mig_state);
		return resp_problem(r, 503, "unavailable", NULL, detail);
	}
	for (i = 0; i < egov_modules_count; i++) {
		const char *why = egov_modules[i]->ready ? egov_modules[i]->ready() : NULL;
		if (why) {
			char detail[SYSTEM_READY_DETAIL_MAX];
			snprintf(detail, sizeof detail, "%s: %s", egov_modules[i]->name, why);
			return resp_problem(r, 503, "unavailable", NULL, detail);
		}
	}
	buf_init(&b, SYSTEM_SMALL_ANSWER_MAX);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_kstr(&w, "status", "ready");
	jw_key(&w, "checks");
	jw_obj_begin(&w);
	jw_kstr(&w, "database", db_state);
	jw_kstr(&w, "migrations", mig_state);
	jw_obj_end(&w);
	jw_obj_end(&w);
	return resp_jw(r, 200, &w);
}

static long resident_bytes(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f)
		return 0;
	if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
		rss = 0;
	fclose(f);
	return rss * sysconf(_SC_PAGESIZE);
}

/* ---- [system]: who may read /metrics ----------------------------------- */

typedef struct system_config {
	char *metrics_allow;
	char *metrics_token;
	netaddr_list allow; /* metrics_allow, parsed by finish */
} system_config;

#define METRICS_TOKEN_MIN 32

static bool check_token(const char *v, char *why, size_t whylen)
{
	size_t n = strlen(v);

	if (n == 0 || n >= METRICS_TOKEN_MIN)
		return true;
	snprintf(why, whylen, "is too short: %zu characters", n);
	return false;
}

#define OFF(field) offsetof(system_config, field)

static const config_key keys[] = {
	{
		.name = "metrics_allow", .type = CONFIG_STRING, .offset = OFF(metrics_allow),
		.str_default = "127.0.0.0/8, ::1", .check = config_check_net_list,
		.expect = "\"\" or comma-separated IP addresses and CIDR ranges",
		.desc = "Client addresses (after server.trusted_proxies) that may read "
			"/metrics without a token; others get 403, or 401 when "
			"system.metrics_token is set. A scrape that carries "
			"X-Forwarded-For, Forwarded or X-Real-IP came through a proxy "
			"and needs the token. Empty: the token only.",
	},
	{
		.name = "metrics_token", .type = CONFIG_STRING, .offset = OFF(metrics_token),
		.str_default = "", .check = check_token, .secret = true,
		.expect = "\"\" or at least 32 characters",
		.desc = "Bearer token that opens /metrics from any address "
			"(Prometheus: authorization credentials). Empty: no token is "
			"accepted. Prefer the environment variable "
			"EGOV_SYSTEM_METRICS_TOKEN, which keeps the secret out of files.",
	},
};

static egov_err finish(void *values, const egov_config *cfg, char *errmsg, size_t errlen)
{
	system_config *sc = values;
	char why[128];

	(void)cfg;
	if (!netaddr_list_parse(sc->metrics_allow, &sc->allow, why, sizeof why)) {
		snprintf(errmsg, errlen, "system.metrics_allow: %s", why);
		return EGOV_EINVAL;
	}
	return EGOV_OK;
}

static const config_section config = {
	.name = "system",
	.desc = "The node's own endpoints: who may read /metrics.",
	.keys = keys,
	.nkeys = sizeof keys / sizeof keys[0],
	.size = sizeof(system_config),
	.finish = finish,
};

/* NULL when r may read /metrics, else the problem's status and code. */
static int metrics_refusal(req *r, const char **code)
{
	const system_config *sc = app()->config ? config_section_values(app()->config, &config) : NULL;
	const char *h = req_header(r, "Authorization"), *ip = req_remote_ip(r);
	netaddr a;

	if (!sc)
		return 0; /* a node made without the configuration (tests) */
	if (sc->metrics_token[0] && h && strncasecmp(h, "Bearer ", 7) == 0 && crypto_streq(h + 7, sc->metrics_token))
		return 0;
	if (!req_header(r, "X-Forwarded-For") && !req_header(r, "Forwarded") && !req_header(r, "X-Real-IP") &&
	    netaddr_parse(ip, strlen(ip), &a) && netaddr_list_has(&sc->allow, &a))
		return 0;
	*code = sc->metrics_token[0] ? "unauthorized" : "forbidden";
	return sc->metrics_token[0] ? 401 : 403;
}

static egov_err metrics(req *r)
{
	db_stats st = {0};
	const char *code = NULL;
	int refused;
	buf b;
	egov_err err;

	if ((refused = metrics_refusal(r, &code)))
		return resp_problem(r, refused, code, NULL, NULL);
	buf_init(&b, EGOV_RESPONSE_MAX);
	err = metrics_http_write(&b);
	if (app()->db)
		db_stats_get(app()->db, &st);
	if (!err)
		err = metrics_write_header(&b, "egov_db_queries_total", "counter", "Database statements run.");
	if (!err)
		err = buf_addf(&b, "egov_db_queries_total %llu\n", (unsigned long long)st.queries);
	if (!err)
		err = metrics_write_header(&b, "egov_db_errors_total", "counter", "Database statements that failed.");
	if (!err)
		err = buf_addf(&b, "egov_db_errors_total %llu\n", (unsigned long long)st.errors);
	if (!err)
		err = metrics_write_header(&b, "egov_db_query_seconds_total", "counter",
					   "Time spent in database statements.");
	if (!err)
		err = buf_addf(&b, "egov_db_query_seconds_total %.6f\n", (double)st.time_us / 1e6);
	if (!err)
		err = metrics_write_header(&b, "egov_build_info", "gauge", "Version and storage backend of this node.");
	if (!err)
		err = buf_addf(&b, "egov_build_info{version=\"%s\",database=\"%s\",role=\"%s\"} 1\n", EGOV_VERSION,
			       app()->db ? db_kind_name(app()->db) : "none",
			       app()->config ? app()->config->role : "standalone");
	if (!err)
		err = metrics_write_header(&b, "process_start_time_seconds", "gauge",
					   "Start time of the process since the Unix epoch.");
	if (!err)
		err = buf_addf(&b, "process_start_time_seconds %.3f\n", (double)app()->started_unix_ms / 1e3);
	if (!err)
		err = metrics_write_header(&b, "process_resident_memory_bytes", "gauge", "Resident memory size.");
	if (!err)
		err = buf_addf(&b, "process_resident_memory_bytes %ld\n", resident_bytes());
	if (!err)
		err = jobs_metrics_write(&b);
	if (!err)
		err = egov_modules_metrics(&b);
	if (err) {
		buf_release(&b);
		return err;
	}
	return resp_buf(r, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
}

static egov_err openapi(req *r)
{
	static char etag[68];
	size_t len;
	const char *doc = system_openapi(&len);

	if (!etag[0]) { /* benign race: every thread computes the same value */
		char hex[65];
		crypto_sha256_hex(doc, len, hex);
		snprintf(etag, sizeof etag, "\"%.64s\"", hex);
	}
	resp_header(r, "ETag", etag);
	if (req_etag_matches(r, etag))
		return resp_empty(r, 304);
	return resp_bytes(r, 200, "application/json", doc, len, false);
}

static egov_err version(req *r)
{
	buf b;
	jw w;

	buf_init(&b, SYSTEM_SMALL_ANSWER_MAX);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_kstr(&w, "name", "egov");
	jw_kstr(&w, "version", EGOV_VERSION);
	jw_kstr(&w, "role", app()->config ? app()->config->role : "standalone");
	jw_kstr(&w, "database", app()->db ? db_kind_name(app()->db) : "none");
	jw_obj_end(&w);
	return resp_jw(r, 200, &w);
}

static const route routes[] = {
	{.method = HTTP_GET, .path = "/healthz", .handler = healthz},
	{.method = HTTP_GET, .path = "/readyz", .handler = readyz},
	{.method = HTTP_GET, .path = "/metrics", .handler = metrics},
	{.method = HTTP_GET, .path = "/api/openapi.json", .handler = openapi},
	{.method = HTTP_GET, .path = "/api/v1/version", .handler = version},
};

const egov_module system_module = {
	.name = "system",
	.config = &config,
	.routes = routes,
	.nroutes = sizeof routes / sizeof routes[0],
};
