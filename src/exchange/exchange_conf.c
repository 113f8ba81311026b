/*
 * exchange_conf.c: the signed global configuration.
 *
 * Central side: builds the configuration from the registry (leaving out
 * certificates that are revoked or expired), signs it as a compact JWS
 * (ES256 with DATA/exchange/central.key, the certificate in x5c) and
 * serves it at GET /exchange/v1/globalconf. The signed document is cached
 * until the registry version or the platform CA's revocation list
 * changes, or it is half-way to expiry, so gateways polling it cost a
 * version query each.
 *
 * Gateway side: a thread downloads the document every
 * exchange.conf_refresh_s, verifies it (signature by the pinned
 * exchange.central_cert, the instance, a version not lower than the one in
 * force, not expired), swaps it in and writes it to
 * DATA/exchange/globalconf.jws (atomically), which the next start loads,
 * so a gateway restarted while the central node is down keeps working
 * until the copy expires.
 *
 * Invariants: a parsed configuration is immutable and refcounted; the one
 * in force is a pointer swapped under cur_lock, so exchange_conf_get() is
 * a lock, an increment and an unlock. Lookups are binary searches over
 * arrays sorted at parse time. Nothing of a document is believed before
 * its signature verified against the pinned certificate.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/app.h"
#include "core/arena.h"
#include "core/crypto.h"
#include "core/httpc.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "exchange/exchange_int.h"
#include "pki/pki.h"
#include "core/banned.h"

/* Largest configuration accepted or built: thousands of subsystems with
 * their certificates and OpenAPI documents. */
#define CONF_MAX (64 * 1024 * 1024)
#define PEM_MAX (16 * 1024)
#define DOWNLOAD_TIMEOUT_MS 15000

struct exchange_conf {
	atomic_int refs;
	int64_t version, generated_us, expires_us;
	char instance[EXCHANGE_PART_MAX + 1];
	const char *tsa_url;
	arena a;
	const char **members;
	size_t nmembers;
	exchange_subsystem *subs;
	size_t nsubs;
	exchange_service *services;
	size_t nservices;
	exchange_access *access;
	size_t naccess;
	const char **event_types;
	size_t nevent_types;
};

/* ---- the parsed configuration ------------------------------------------------ */

static void conf_free(exchange_conf *cf)
{
	if (!cf)
		return;
	arena_release(&cf->a);
	free(cf);
}

void exchange_conf_put(exchange_conf *cf)
{
	if (cf && atomic_fetch_sub(&cf->refs, 1) == 1)
		conf_free(cf);
}

int64_t exchange_conf_version(const exchange_conf *cf)
{
	return cf->version;
}

const char *exchange_conf_instance(const exchange_conf *cf)
{
	return cf->instance;
}

const char *exchange_conf_tsa_url(const exchange_conf *cf)
{
	return cf->tsa_url ? cf->tsa_url : "";
}

int64_t exchange_conf_expires_us(const exchange_conf *cf)
{
	return cf->expires_us;
}

int64_t exchange_conf_generated_us(const exchange_conf *cf)
{
	return cf->generated_us;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_sub(const void *a, const void *b)
{
	return strcmp(((const exchange_subsystem *)a)->id, ((const exchange_subsystem *)b)->id);
}

static int cmp_service(const void *a, const void *b)
{
	return strcmp(((const exchange_service *)a)->id, ((const exchange_service *)b)->id);
}

static int cmp_access(const void *a, const void *b)
{
	const exchange_access *x = a, *y = b;
	int d = strcmp(x->client, y->client);
	return d ? d : strcmp(x->service, y->service);
}

const exchange_subsystem *exchange_conf_subsystem(const exchange_conf *cf, const char *id)
{
	exchange_subsystem key;

	if (!id || strlen(id) >= sizeof key.id)
		return NULL;
	memcpy(key.id, id, strlen(id) + 1);
	return bsearch(&key, cf->subs, cf->nsubs, sizeof *cf->subs, cmp_sub);
}

const exchange_service *exchange_conf_service(const exchange_conf *cf, const char *id)
{
	exchange_service key;

	if (!id || strlen(id) >= sizeof key.id)
		return NULL;
	memcpy(key.id, id, strlen(id) + 1);
	return bsearch(&key, cf->services, cf->nservices, sizeof *cf->services, cmp_service);
}

bool exchange_conf_member_known(const exchange_conf *cf, const char *member_id)
{
	return member_id && bsearch(&member_id, cf->members, cf->nmembers, sizeof *cf->members, cmp_str) != NULL;
}

bool exchange_conf_event_type_known(const exchange_conf *cf, const char *id)
{
	return id && bsearch(&id, cf->event_types, cf->nevent_types, sizeof *cf->event_types, cmp_str) != NULL;
}

bool exchange_conf_allowed(const exchange_conf *cf, const char *client, const char *service, const char *method,
			   const char *path)
{
	exchange_access key;
	const exchange_access *a;

	if (!client || !service || !method || strlen(client) >= sizeof key.client ||
	    strlen(service) >= sizeof key.service)
		return false;
	memcpy(key.client, client, strlen(client) + 1);
	memcpy(key.service, service, strlen(service) + 1);
	if (!(a = bsearch(&key, cf->access, cf->naccess, sizeof *cf->access, cmp_access)))
		return false;
	return exchange_rule_method_allowed(a->methods, method) && exchange_rule_path_allowed(a->paths, path);
}

const exchange_cert *exchange_conf_cert(const exchange_conf *cf, const char *subsystem, const char *usage,
					const char *sha256)
{
	const exchange_subsystem *s = exchange_conf_subsystem(cf, subsystem);
	size_t i;

	if (!s || !usage || !sha256)
		return NULL;
	for (i = 0; i < s->ncerts; i++)
		if (strcmp(s->certs[i].usage, usage) == 0 && strcmp(s->certs[i].sha256, sha256) == 0)
			return &s->certs[i];
	return NULL;
}

void exchange_conf_each_subsystem(const exchange_conf *cf, int (*fn)(void *ctx, const exchange_subsystem *s),
				  void *ctx)
{
	size_t i;

	for (i = 0; i < cf->nsubs; i++)
		if (fn(ctx, &cf->subs[i]))
			return;
}

void exchange_conf_each_service(const exchange_conf *cf, const char *subsystem,
				int (*fn)(void *ctx, const exchange_service *s), void *ctx)
{
	size_t n = subsystem ? strlen(subsystem) : 0, i;

	for (i = 0; i < cf->nservices; i++) {
		const char *id = cf->services[i].id;
		if (subsystem && (strncmp(id, subsystem, n) != 0 || id[n] != '/'))
			continue;
		if (fn(ctx, &cf->services[i]))
			return;
	}
}

void exchange_conf_each_access(const exchange_conf *cf, int (*fn)(void *ctx, const exchange_access *a), void *ctx)
{
	size_t i;

	for (i = 0; i < cf->naccess; i++)
		if (fn(ctx, &cf->access[i]))
			return;
}

/* ---- parsing ---------------------------------------------------------------------- */

static const char *str_of(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool int_of(const cJSON *o, const char *name, int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble)
		return false;
	*out = (int64_t)v->valuedouble;
	return true;
}

static bool hex64(const char *s)
{
	size_t i;

	for (i = 0; s && s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s && i == 64;
}

static char *keep(exchange_conf *cf, const char *s)
{
	return s ? arena_strdup(&cf->a, s) : NULL;
}

static int has_dups_sorted(const void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	size_t i;

	for (i = 1; i < n; i++)
		if (cmp((const char *)base + (i - 1) * size, (const char *)base + i * size) == 0)
			return 1;
	return 0;
}

/* Fills cf from the verified payload. EGOV_EINVAL on any entry that is not
 * as docs/exchange.md describes (a central node never makes one). */
static egov_err fill(exchange_conf *cf, const cJSON *p)
{
	const cJSON *arr, *it;
	const char *s;
	size_t i;
	int64_t gen_us = 0, exp_us = 0;

	if (!cJSON_IsObject(p) || !(s = str_of(p, "instance")) || strlen(s) > EXCHANGE_PART_MAX ||
	    !int_of(p, "version", &cf->version) || !str_of(p, "generated_at") || !str_of(p, "expires_at") ||
	    time_parse_rfc3339(str_of(p, "generated_at"), &gen_us) ||
	    time_parse_rfc3339(str_of(p, "expires_at"), &exp_us))
		return EGOV_EINVAL;
	memcpy(cf->instance, s, strlen(s) + 1);
	cf->generated_us = gen_us;
	cf->expires_us = exp_us;
	cf->tsa_url = keep(cf, str_of(p, "tsa_url") ? str_of(p, "tsa_url") : "");

	arr = cJSON_GetObjectItemCaseSensitive(p, "members");
	if (!cJSON_IsArray(arr))
		return EGOV_EINVAL;
	cf->nmembers = (size_t)cJSON_GetArraySize(arr);
	if (!(cf->members = arena_alloc(&cf->a, (cf->nmembers + 1) * sizeof *cf->members)))
		return EGOV_ENOMEM;
	i = 0;
	cJSON_ArrayForEach(it, arr)
	{
		if (!(s = str_of(it, "id")) || !exchange_id_valid(s, EXCHANGE_ID_MEMBER))
			return EGOV_EINVAL;
		cf->members[i++] = keep(cf, s);
	}

	arr = cJSON_GetObjectItemCaseSensitive(p, "subsystems");
	if (!cJSON_IsArray(arr))
		return EGOV_EINVAL;
	cf->nsubs = (size_t)cJSON_GetArraySize(arr);
	if (!(cf->subs = arena_alloc(&cf->a, (cf->nsubs + 1) * sizeof *cf->subs)))
		return EGOV_ENOMEM;
	i = 0;
	cJSON_ArrayForEach(it, arr)
	{
		exchange_subsystem *sub = &cf->subs[i++];
		const cJSON *certs = cJSON_GetObjectItemCaseSensitive(it, "certs"), *c;
		exchange_cert *out;
		size_t k = 0;

		if (!(s = str_of(it, "id")) || !exchange_id_valid(s, EXCHANGE_ID_SUBSYSTEM) || !str_of(it, "gateway") ||
		    !cJSON_IsArray(certs))
			return EGOV_EINVAL;
		memcpy(sub->id, s, strlen(s) + 1);
		sub->gateway_url = keep(cf, str_of(it, "gateway"));
		sub->ncerts = (size_t)cJSON_GetArraySize(certs);
		if (!(out = arena_alloc(&cf->a, (sub->ncerts + 1) * sizeof *out)))
			return EGOV_ENOMEM;
		cJSON_ArrayForEach(c, certs)
		{
			const char *usage = str_of(c, "usage"), *serial = str_of(c, "serial"), *sha = str_of(c, "sha256");
			if (!usage || (strcmp(usage, "sign") != 0 && strcmp(usage, "tls") != 0) || !serial ||
			    strlen(serial) >= sizeof out[k].serial || !hex64(sha) || !str_of(c, "pem"))
				return EGOV_EINVAL;
			memcpy(out[k].usage, usage, strlen(usage) + 1);
			memcpy(out[k].serial, serial, strlen(serial) + 1);
			memcpy(out[k].sha256, sha, 65);
			out[k].pem = keep(cf, str_of(c, "pem"));
			k++;
		}
		sub->certs = out;
	}

	arr = cJSON_GetObjectItemCaseSensitive(p, "services");
	if (!cJSON_IsArray(arr))
		return EGOV_EINVAL;
	cf->nservices = (size_t)cJSON_GetArraySize(arr);
	if (!(cf->services = arena_alloc(&cf->a, (cf->nservices + 1) * sizeof *cf->services)))
		return EGOV_ENOMEM;
	i = 0;
	cJSON_ArrayForEach(it, arr)
	{
		exchange_service *sv = &cf->services[i++];
		const char *log = str_of(it, "log");
		const cJSON *oa = cJSON_GetObjectItemCaseSensitive(it, "openapi");

		if (!(s = str_of(it, "id")) || !exchange_id_valid(s, EXCHANGE_ID_SERVICE) || !log ||
		    (strcmp(log, "full") != 0 && strcmp(log, "digest") != 0) || !int_of(it, "max_body", &sv->max_body) ||
		    sv->max_body < 1)
			return EGOV_EINVAL;
		/* Optional: configurations before it was published lack it. */
		if (cJSON_GetObjectItemCaseSensitive(it, "timeout_ms") &&
		    (!int_of(it, "timeout_ms", &sv->timeout_ms) || sv->timeout_ms < 10 || sv->timeout_ms > 600000))
			return EGOV_EINVAL;
		memcpy(sv->id, s, strlen(s) + 1);
		memcpy(sv->log_mode, log, strlen(log) + 1);
		sv->title = keep(cf, str_of(it, "title") ? str_of(it, "title") : "");
		if (cJSON_IsObject(oa)) {
			char *text = cJSON_PrintUnformatted(oa);
			if (!text)
				return EGOV_ENOMEM;
			sv->openapi = keep(cf, text);
			cJSON_free(text);
		}
	}

	arr = cJSON_GetObjectItemCaseSensitive(p, "access");
	if (!cJSON_IsArray(arr))
		return EGOV_EINVAL;
	cf->naccess = (size_t)cJSON_GetArraySize(arr);
	if (!(cf->access = arena_alloc(&cf->a, (cf->naccess + 1) * sizeof *cf->access)))
		return EGOV_ENOMEM;
	i = 0;
	cJSON_ArrayForEach(it, arr)
	{
		exchange_access *ac = &cf->access[i++];
		const char *cl = str_of(it, "client"), *sv = str_of(it, "service");
		if (!exchange_id_valid(cl, EXCHANGE_ID_SUBSYSTEM) || !exchange_id_valid(sv, EXCHANGE_ID_SERVICE) ||
		    !exchange_methods_valid(str_of(it, "methods")) || !exchange_paths_valid(str_of(it, "paths")))
			return EGOV_EINVAL;
		memcpy(ac->client, cl, strlen(cl) + 1);
		memcpy(ac->service, sv, strlen(sv) + 1);
		ac->methods = keep(cf, str_of(it, "methods"));
		ac->paths = keep(cf, str_of(it, "paths"));
	}

	arr = cJSON_GetObjectItemCaseSensitive(p, "event_types");
	if (arr && !cJSON_IsArray(arr))
		return EGOV_EINVAL;
	cf->nevent_types = arr ? (size_t)cJSON_GetArraySize(arr) : 0;
	if (!(cf->event_types = arena_alloc(&cf->a, (cf->nevent_types + 1) * sizeof *cf->event_types)))
		return EGOV_ENOMEM;
	i = 0;
	cJSON_ArrayForEach(it, arr)
	{
		if (!(s = str_of(it, "id")) || !exchange_id_valid(s, EXCHANGE_ID_SERVICE))
			return EGOV_EINVAL;
		cf->event_types[i++] = keep(cf, s);
	}

	qsort(cf->members, cf->nmembers, sizeof *cf->members, cmp_str);
	qsort(cf->subs, cf->nsubs, sizeof *cf->subs, cmp_sub);
	qsort(cf->services, cf->nservices, sizeof *cf->services, cmp_service);
	qsort(cf->access, cf->naccess, sizeof *cf->access, cmp_access);
	qsort(cf->event_types, cf->nevent_types, sizeof *cf->event_types, cmp_str);
	/* One entry per id, or lookups would depend on sort stability. */
	if (has_dups_sorted(cf->members, cf->nmembers, sizeof *cf->members, cmp_str) ||
	    has_dups_sorted(cf->subs, cf->nsubs, sizeof *cf->subs, cmp_sub) ||
	    has_dups_sorted(cf->services, cf->nservices, sizeof *cf->services, cmp_service) ||
	    has_dups_sorted(cf->access, cf->naccess, sizeof *cf->access, cmp_access))
		return EGOV_EINVAL;
	return EGOV_OK;
}

static cJSON *decode_json_part(const char *s, size_t len)
{
	unsigned char *raw = malloc(len / 4 * 3 + 3);
	size_t n = 0;
	cJSON *j = NULL;

	if (raw && !b64url_decode(s, len, raw, len / 4 * 3 + 3, &n) &&
	    !json_precheck((const char *)raw, n, EGOV_JSON_DEPTH_MAX))
		j = cJSON_ParseWithLength((const char *)raw, n);
	free(raw);
	return j;
}

/* DER of the first certificate of a PEM text; caller frees with OPENSSL_free. */
static unsigned char *pem_der(const char *pem, int *len)
{
	X509 *x = exchange_pem_cert(pem, strlen(pem));
	unsigned char *der = NULL;

	*len = x ? i2d_X509(x, &der) : -1;
	X509_free(x);
	return *len > 0 ? der : NULL;
}

egov_err exchange_conf_parse(const char *jws, size_t len, const char *pinned_pem, const char *instance,
			     int64_t now_us, exchange_conf **out, const char **why)
{
	const char *dot1, *dot2;
	cJSON *hdr = NULL, *payload = NULL;
	const cJSON *x5c;
	unsigned char *pin_der = NULL, *x5c_der = NULL;
	int pin_len = 0;
	size_t x5c_len = 0;
	char *signing = NULL, *sig = NULL;
	exchange_conf *cf = NULL;
	egov_err err = EGOV_EAUTH;

	*out = NULL;
	*why = "exchange.conf_signature";
	if (!jws || len == 0 || len > CONF_MAX || memchr(jws, '\0', len) || !pinned_pem)
		goto out;
	dot1 = memchr(jws, '.', len);
	dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - jws)) : NULL;
	if (!dot1 || !dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - jws)))
		goto out;
	if (!(hdr = decode_json_part(jws, (size_t)(dot1 - jws))) || !cJSON_IsObject(hdr) || !str_of(hdr, "alg") ||
	    strcmp(str_of(hdr, "alg"), "ES256") != 0 || !str_of(hdr, "typ") ||
	    strcmp(str_of(hdr, "typ"), "egov-globalconf") != 0)
		goto out;
	/* The signer must be the pinned certificate itself: the header's copy
	 * is there for offline readers, never as a source of trust. */
	x5c = cJSON_GetObjectItemCaseSensitive(hdr, "x5c");
	if (!cJSON_IsArray(x5c) || !cJSON_IsString(cJSON_GetArrayItem(x5c, 0)) ||
	    !(pin_der = pem_der(pinned_pem, &pin_len)))
		goto out;
	{
		const char *b64 = cJSON_GetArrayItem(x5c, 0)->valuestring;
		size_t bl = strlen(b64);
		int n;
		if (!(x5c_der = malloc(bl / 4 * 3 + 3)))
			goto out;
		n = EVP_DecodeBlock(x5c_der, (const unsigned char *)b64, (int)bl);
		if (n < 0)
			goto out;
		x5c_len = (size_t)n - (bl >= 1 && b64[bl - 1] == '=') - (bl >= 2 && b64[bl - 2] == '=');
		if (x5c_len != (size_t)pin_len || memcmp(x5c_der, pin_der, x5c_len) != 0)
			goto out;
	}
	if (!(signing = malloc((size_t)(dot2 - jws) + 1)) || !(sig = malloc(len - (size_t)(dot2 + 1 - jws) + 1))) {
		err = EGOV_ENOMEM;
		goto out;
	}
	memcpy(signing, jws, (size_t)(dot2 - jws));
	signing[dot2 - jws] = '\0';
	memcpy(sig, dot2 + 1, len - (size_t)(dot2 + 1 - jws));
	sig[len - (size_t)(dot2 + 1 - jws)] = '\0';
	if (exchange_verify(pinned_pem, signing, (size_t)(dot2 - jws), sig))
		goto out;

	err = EGOV_EINVAL;
	*why = "exchange.conf_invalid";
	if (!(payload = decode_json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1))))
		goto out;
	if (!(cf = calloc(1, sizeof *cf))) {
		err = EGOV_ENOMEM;
		goto out;
	}
	atomic_init(&cf->refs, 1);
	arena_init(&cf->a, CONF_MAX * 2);
	if ((err = fill(cf, payload))) {
		if (err == EGOV_EINVAL)
			*why = "exchange.conf_invalid";
		goto out;
	}
	err = EGOV_EINVAL;
	if (instance && strcmp(cf->instance, instance) != 0) {
		*why = "exchange.conf_instance";
		goto out;
	}
	if (now_us && now_us >= cf->expires_us) {
		*why = "exchange.conf_expired";
		goto out;
	}
	*out = cf;
	cf = NULL;
	*why = NULL;
	err = EGOV_OK;
out:
	conf_free(cf);
	cJSON_Delete(hdr);
	cJSON_Delete(payload);
	OPENSSL_free(pin_der);
	free(x5c_der);
	free(signing);
	free(sig);
	return err;
}

/* ---- the configuration in force ---------------------------------------------- */

static pthread_mutex_t cur_lock = PTHREAD_MUTEX_INITIALIZER;
static exchange_conf *cur;

exchange_conf *exchange_conf_get(const char **why)
{
	exchange_conf *cf;

	pthread_mutex_lock(&cur_lock);
	if ((cf = cur))
		atomic_fetch_add(&cf->refs, 1);
	pthread_mutex_unlock(&cur_lock);
	if (!cf) {
		if (why)
			*why = "exchange.conf_missing";
		return NULL;
	}
	if (time_now_us() >= cf->expires_us) {
		exchange_conf_put(cf);
		if (why)
			*why = "exchange.conf_expired";
		return NULL;
	}
	if (why)
		*why = NULL;
	return cf;
}

egov_err exchange_conf_install(exchange_conf *cf)
{
	exchange_conf *old;

	pthread_mutex_lock(&cur_lock);
	if (cur && cf->version < cur->version) {
		pthread_mutex_unlock(&cur_lock);
		exchange_conf_put(cf);
		return EGOV_ECONFLICT;
	}
	old = cur;
	cur = cf;
	pthread_mutex_unlock(&cur_lock);
	exchange_conf_put(old);
	return EGOV_OK;
}

void exchange_conf_clear(void)
{
	exchange_conf *old;

	pthread_mutex_lock(&cur_lock);
	old = cur;
	cur = NULL;
	pthread_mutex_unlock(&cur_lock);
	exchange_conf_put(old);
}

/* ---- central: building and signing ------------------------------------------ */

int64_t exchange_service_timeout_ms(int64_t stored)
{
	const egov_config *cfg = app()->config;

	if (stored > 0)
		return stored;
	return exchange_settings(cfg)->backend_timeout_ms;
}

static bool cert_current(db_conn *c, const char *pki_serial, const char *not_after, int64_t now_us)
{
	int64_t na = 0;
	pki_cert_info ci = {0};
	bool ok;

	if (!not_after || time_parse_rfc3339(not_after, &na) || na <= now_us)
		return false;
	if (!pki_serial)
		return true; /* issued elsewhere: expiry is what we can see */
	if (pki_cert_get(c, pki_serial, &ci))
		return false;
	ok = strcmp(ci.status, "good") == 0;
	pki_cert_info_release(&ci);
	return ok;
}

/* "key": [ {names[0]: column 0, names[1]: column 1, ...}, ... ] for a query
 * whose columns are all text, in the query's order. */
static egov_err write_text_rows(jw *w, db_conn *c, const char *key, const char *sql, const char *const *names)
{
	db_rows *rows = NULL;
	bool has = false;
	egov_err err;
	int i;

	jw_key(w, key);
	jw_arr_begin(w);
	if ((err = db_query(c, sql, NULL, 0, &rows)))
		return err;
	while (!(err = db_rows_next(rows, &has)) && has) {
		jw_obj_begin(w);
		for (i = 0; names[i]; i++)
			jw_kstr(w, names[i], db_rows_text(rows, i));
		jw_obj_end(w);
	}
	db_rows_free(rows);
	if (!err)
		jw_arr_end(w);
	return err;
}

static egov_err build_once(db_conn *c, int64_t now_us, buf *out, int64_t *version)
{
	const egov_config *cfg = app()->config;
	db_rows *rows = NULL, *certs = NULL;
	bool has = false, chas = false;
	char gen[32], exp[32], tsa[600];
	int validity = exchange_settings(cfg)->conf_validity_s;
	jw w;
	egov_err err;

	if ((err = exchange_registry_version(c, version)))
		return err;
	time_format_rfc3339(now_us, 0, gen);
	time_format_rfc3339(now_us + (int64_t)validity * 1000000, 0, exp);
	snprintf(tsa, sizeof tsa, "%s/pki/tsa",
		 cfg && *pki_public_url(cfg) ? pki_public_url(cfg) : "http://127.0.0.1:8080");
	buf_reset(out);
	jw_init(&w, out);
	jw_obj_begin(&w);
	jw_kstr(&w, "instance", exchange_settings(cfg)->instance);
	jw_kint(&w, "version", *version);
	jw_kstr(&w, "generated_at", gen);
	jw_kstr(&w, "expires_at", exp);
	jw_kstr(&w, "tsa_url", tsa);

	if ((err = write_text_rows(&w, c, "members", "SELECT id, name FROM exchange_member ORDER BY id",
				   (const char *const[]){"id", "name", NULL})))
		goto out;

	/* Subsystems and their certificates, both in subsystem order: a merge. */
	jw_key(&w, "subsystems");
	jw_arr_begin(&w);
	if ((err = db_query(c, "SELECT id, gateway FROM exchange_subsystem ORDER BY id", NULL, 0, &rows)) ||
	    (err = db_query(c,
			    "SELECT subsystem_id, usage, serial, sha256, pem, pki_serial, not_after FROM exchange_cert"
			    " ORDER BY subsystem_id, usage, sha256",
			    NULL, 0, &certs)) ||
	    (err = db_rows_next(certs, &chas)))
		goto out;
	while (!(err = db_rows_next(rows, &has)) && has) {
		const char *id = db_rows_text(rows, 0);
		jw_obj_begin(&w);
		jw_kstr(&w, "id", id);
		jw_kstr(&w, "gateway", db_rows_text(rows, 1));
		jw_key(&w, "certs");
		jw_arr_begin(&w);
		while (chas && strcmp(db_rows_text(certs, 0), id) < 0)
			if ((err = db_rows_next(certs, &chas)))
				goto out;
		while (chas && strcmp(db_rows_text(certs, 0), id) == 0) {
			if (cert_current(c, db_rows_text(certs, 5), db_rows_text(certs, 6), now_us)) {
				jw_obj_begin(&w);
				jw_kstr(&w, "usage", db_rows_text(certs, 1));
				jw_kstr(&w, "serial", db_rows_text(certs, 2));
				jw_kstr(&w, "sha256", db_rows_text(certs, 3));
				jw_kstr(&w, "pem", db_rows_text(certs, 4));
				jw_obj_end(&w);
			}
			if ((err = db_rows_next(certs, &chas)))
				goto out;
		}
		jw_arr_end(&w);
		jw_obj_end(&w);
	}
	db_rows_free(rows);
	db_rows_free(certs);
	rows = certs = NULL;
	if (err)
		goto out;
	jw_arr_end(&w);

	jw_key(&w, "services");
	jw_arr_begin(&w);
	if ((err = db_query(c,
			    "SELECT id, title, log_mode, max_body, openapi, timeout_ms FROM exchange_service ORDER BY id",
			    NULL, 0, &rows)))
		goto out;
	while (!(err = db_rows_next(rows, &has)) && has) {
		jw_obj_begin(&w);
		jw_kstr(&w, "id", db_rows_text(rows, 0));
		jw_kstr(&w, "title", db_rows_text(rows, 1));
		jw_kstr(&w, "log", db_rows_text(rows, 2));
		jw_kint(&w, "max_body", db_rows_int(rows, 3));
		jw_kint(&w, "timeout_ms", exchange_service_timeout_ms(db_rows_int(rows, 5)));
		if (db_rows_text(rows, 4)) {
			jw_key(&w, "openapi");
			jw_raw(&w, db_rows_text(rows, 4));
		}
		jw_obj_end(&w);
	}
	db_rows_free(rows);
	rows = NULL;
	if (err)
		goto out;
	jw_arr_end(&w);

	if ((err = write_text_rows(&w, c, "access",
				   "SELECT client_id, service_id, methods, paths FROM exchange_access"
				   " ORDER BY client_id, service_id",
				   (const char *const[]){"client", "service", "methods", "paths", NULL})))
		goto out;

	if ((err = write_text_rows(&w, c, "event_types", "SELECT id FROM exchange_event_type ORDER BY id",
				   (const char *const[]){"id", NULL})))
		goto out;
	jw_obj_end(&w);
	err = w.err;
out:
	db_rows_free(rows);
	db_rows_free(certs);
	return err;
}

egov_err exchange_conf_build(db_conn *c, int64_t now_us, buf *payload, int64_t *version)
{
	int64_t after = 0;
	int tries;
	egov_err err = EGOV_EBUSY;

	/* The reads are separate statements: when a change lands between
	 * them the version moved, and the build starts over. */
	for (tries = 0; tries < 5; tries++) {
		if ((err = build_once(c, now_us, payload, version)) || (err = exchange_registry_version(c, &after)))
			return err;
		if (after == *version)
			return EGOV_OK;
		err = EGOV_EBUSY;
	}
	return err;
}

egov_err exchange_conf_sign(EVP_PKEY *key, const char *cert_pem, const char *payload, buf *jws)
{
	unsigned char *der = NULL;
	int dlen = 0;
	char *x5c = NULL, *enc = NULL, sig[128];
	size_t plen = strlen(payload), elen = plen / 3 * 4 + 4;
	buf hdr;
	egov_err err = EGOV_EINVAL;

	buf_init(&hdr, 64 * 1024);
	if (!(der = pem_der(cert_pem, &dlen)))
		goto out;
	err = EGOV_ENOMEM;
	if (!(x5c = malloc((size_t)dlen / 3 * 4 + 8)) || !(enc = malloc(elen > 128 * 1024 ? elen : 128 * 1024)))
		goto out;
	EVP_EncodeBlock((unsigned char *)x5c, der, dlen);
	if ((err = buf_addf(&hdr, "{\"alg\":\"ES256\",\"typ\":\"egov-globalconf\",\"x5c\":[\"%s\"]}", x5c)))
		goto out;
	buf_reset(jws);
	err = EGOV_ELIMIT;
	if (!exchange_b64url_encode(hdr.data, hdr.len, enc, elen > 128 * 1024 ? elen : 128 * 1024))
		goto out;
	if ((err = buf_adds(jws, enc)) || (err = buf_addc(jws, '.')))
		goto out;
	err = EGOV_ELIMIT;
	if (plen && !exchange_b64url_encode(payload, plen, enc, elen > 128 * 1024 ? elen : 128 * 1024))
		goto out;
	if ((err = buf_adds(jws, plen ? enc : "")))
		goto out;
	if ((err = exchange_es256_sign(key, jws->data, jws->len, sig)))
		goto out;
	if ((err = buf_addc(jws, '.')) || (err = buf_adds(jws, sig)))
		goto out;
out:
	buf_release(&hdr);
	OPENSSL_free(der);
	free(x5c);
	free(enc);
	return err;
}

static pthread_mutex_t central_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	EVP_PKEY *key;
	char *cert_pem;
	char *jws;
	size_t len;
	int64_t version, generated_us, validity_us;
	char crl_sha[65];
} central;

/* Loads the central key and certificate once (central_lock held). */
static egov_err central_load(void)
{
	char kpath[4096], cpath[4096];
	buf pem = {0};
	X509 *x = NULL;
	egov_err err;

	if (central.key)
		return EGOV_OK;
	if ((err = exchange_path(kpath, sizeof kpath, "central.key")) ||
	    (err = exchange_path(cpath, sizeof cpath, "central.crt")))
		return err;
	if ((err = exchange_key_load(kpath, &central.key)))
		return err;
	if ((err = exchange_file_read(cpath, PEM_MAX, &pem)))
		goto out;
	err = EGOV_ECORRUPT;
	if (!(x = exchange_pem_cert(pem.data, pem.len)) || X509_check_private_key(x, central.key) != 1)
		goto out;
	central.cert_pem = buf_detach(&pem, NULL);
	err = EGOV_OK;
out:
	X509_free(x);
	buf_release(&pem);
	if (err) {
		EVP_PKEY_free(central.key);
		central.key = NULL;
	}
	return err;
}

/* A fingerprint of the revocation list, so a revocation made through the
 * CA (which does not touch the registry) rebuilds the document. */
static void crl_fingerprint(db_conn *c, char out[65])
{
	unsigned char *der = NULL;
	size_t len = 0;

	out[0] = '\0';
	if (pki_is_open() && pki_crl_der(c, &der, &len) == EGOV_OK)
		crypto_sha256_hex(der, len, out);
	free(der);
}

egov_err exchange_conf_current(db_conn *c, char **jws, size_t *len, int64_t *version)
{
	const egov_config *cfg = app()->config;
	int64_t now = time_now_us(), reg = 0;
	int64_t validity_us = (int64_t)(exchange_settings(cfg)->conf_validity_s) *
			      1000000;
	char crl[65];
	buf payload, out;
	egov_err err;

	*jws = NULL;
	*len = 0;
	pthread_mutex_lock(&central_lock);
	if ((err = central_load()))
		goto out;
	if ((err = exchange_registry_version(c, &reg)))
		goto out;
	crl_fingerprint(c, crl);
	if (!central.jws || central.version != reg || strcmp(central.crl_sha, crl) != 0 ||
	    now - central.generated_us >= validity_us / 2 || central.validity_us != validity_us) {
		buf_init(&payload, CONF_MAX);
		buf_init(&out, CONF_MAX);
		if (!(err = exchange_conf_build(c, now, &payload, &reg)) &&
		    !(err = exchange_conf_sign(central.key, central.cert_pem, payload.data, &out))) {
			free(central.jws);
			central.jws = buf_detach(&out, &central.len);
			central.version = reg;
			central.generated_us = now;
			central.validity_us = validity_us;
			memcpy(central.crl_sha, crl, sizeof crl);
		}
		buf_release(&payload);
		buf_release(&out);
		if (err)
			goto out;
	}
	if (!(*jws = malloc(central.len + 1))) {
		err = EGOV_ENOMEM;
		goto out;
	}
	memcpy(*jws, central.jws, central.len + 1);
	*len = central.len;
	*version = central.version;
out:
	pthread_mutex_unlock(&central_lock);
	return err;
}

egov_err exchange_http_globalconf(req *r)
{
	db_conn *c = NULL;
	char *jws = NULL, etag[20];
	size_t len = 0;
	int64_t version = 0;
	egov_err err;

	if ((err = db_thread_conn(app()->db, &c)))
		return err;
	err = exchange_conf_current(c, &jws, &len, &version);
	if (err == EGOV_ENOTFOUND)
		return resp_problem(r, 503, "exchange.conf_missing", NULL, "no central signing key (egov exchange central init)");
	if (err)
		return err;
	http_etag(jws, len, etag);
	resp_header(r, "ETag", etag);
	resp_header(r, "Cache-Control", "no-cache");
	if (req_etag_matches(r, etag)) {
		free(jws);
		return resp_empty(r, 304);
	}
	err = resp_bytes(r, 200, "application/jose", jws, len, true);
	free(jws);
	return err;
}

/* ---- gateway: download, verify, keep ------------------------------------------ */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	bool running;
	char *pinned_pem;
	char etag[64];
} gw = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static egov_err pinned_load(const egov_config *cfg)
{
	buf pem = {0};
	X509 *x = NULL;
	egov_err err;

	if (gw.pinned_pem)
		return EGOV_OK;
	if (!exchange_settings(cfg)->central_cert || !*exchange_settings(cfg)->central_cert)
		return EGOV_EINVAL;
	if ((err = exchange_file_read(exchange_settings(cfg)->central_cert, PEM_MAX, &pem)))
		return err;
	if (!(x = exchange_pem_cert(pem.data, pem.len))) {
		buf_release(&pem);
		return EGOV_EINVAL;
	}
	X509_free(x);
	gw.pinned_pem = buf_detach(&pem, NULL);
	return EGOV_OK;
}

static const char *instance_of(const egov_config *cfg)
{
	const char *inst = exchange_settings(cfg)->instance;

	return *inst ? inst : "MO";
}

/* Verifies and installs a downloaded or stored document; save: write it to
 * DATA/exchange/globalconf.jws once in force. */
static egov_err take(const egov_config *cfg, const char *jws, size_t len, bool save, int64_t now_us,
		     const char **why)
{
	exchange_conf *cf = NULL;
	char path[4096];
	int64_t version;
	egov_err err;

	if ((err = exchange_conf_parse(jws, len, gw.pinned_pem, instance_of(cfg), now_us, &cf, why)))
		return err;
	version = cf->version;
	if ((err = exchange_conf_install(cf))) {
		*why = "exchange.conf_version";
		log_warn("exchange.conf", "refused a global configuration of version %lld: lower than the one in force",
			 (long long)version);
		return err;
	}
	if (save && !(err = exchange_dirs()) && !(err = exchange_path(path, sizeof path, "globalconf.jws")))
		err = exchange_file_write(path, jws, len, 0644);
	if (err)
		log_warn("exchange.conf", "cannot keep the global configuration in DATA/exchange: %s", egov_err_name(err));
	return EGOV_OK;
}

egov_err exchange_conf_refresh(const egov_config *cfg, const char **why)
{
	httpc_request rq = {.method = "GET", .timeout_ms = DOWNLOAD_TIMEOUT_MS, .response_max = CONF_MAX};
	httpc_response resp = {0};
	char url[1024], inm[96];
	egov_err err;

	*why = NULL;
	if ((err = pinned_load(cfg))) {
		*why = "exchange.conf_signature";
		return err;
	}
	snprintf(url, sizeof url, "%s/exchange/v1/globalconf", exchange_settings(cfg)->central_url);
	rq.url = url;
	if (cfg->peer_tls_ca && *cfg->peer_tls_ca)
		rq.ca_file = cfg->peer_tls_ca;
	pthread_mutex_lock(&gw.lock);
	if (gw.etag[0]) {
		snprintf(inm, sizeof inm, "If-None-Match: %s", gw.etag);
		rq.headers[0] = inm;
	}
	pthread_mutex_unlock(&gw.lock);
	err = httpc_send_sync(&rq, &resp);
	if (err || resp.err) {
		*why = "exchange.conf_unreachable";
		err = err ? err : resp.err;
		goto out;
	}
	if (resp.status == 304) {
		/* Unchanged, and the one in force is that document. */
		goto out;
	}
	if (resp.status != 200 || !resp.body.data) {
		*why = "exchange.conf_unreachable";
		err = EGOV_EUNAVAILABLE;
		goto out;
	}
	if ((err = take(cfg, resp.body.data, resp.body.len, true, time_now_us(), why)))
		goto out;
	{
		const char *et = httpc_header(&resp, "etag");
		pthread_mutex_lock(&gw.lock);
		snprintf(gw.etag, sizeof gw.etag, "%s", et && strlen(et) < sizeof gw.etag ? et : "");
		pthread_mutex_unlock(&gw.lock);
	}
out:
	httpc_response_release(&resp);
	return err;
}

static void *refresh_main(void *arg)
{
	const egov_config *cfg = arg;
	const char *why = NULL, *last = "";
	struct timespec until;

	for (;;) {
		egov_err err = exchange_conf_refresh(cfg, &why);
		/* Log a failure once per kind, not on every poll. */
		if (err && why && strcmp(why, last) != 0)
			log_warn("exchange.conf", "global configuration not updated from %s: %s (%s)",
				 exchange_settings(cfg)->central_url, why, egov_err_name(err));
		else if (!err && *last)
			log_info("exchange.conf", "global configuration updated from %s again", exchange_settings(cfg)->central_url);
		last = err && why ? why : "";
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += exchange_settings(cfg)->conf_refresh_s;
		pthread_mutex_lock(&gw.lock);
		while (gw.running && pthread_cond_timedwait(&gw.wake, &gw.lock, &until) == 0)
			;
		if (!gw.running) {
			pthread_mutex_unlock(&gw.lock);
			break;
		}
		pthread_mutex_unlock(&gw.lock);
	}
	return NULL;
}

egov_err exchange_conf_start(const egov_config *cfg)
{
	char path[4096];
	const char *why = NULL;
	buf doc = {0};
	egov_err err;

	if (!exchange_settings(cfg)->central_url || !*exchange_settings(cfg)->central_url) {
		log_error("exchange.conf", "exchange.central_url is empty: a gateway needs the central node's address");
		return EGOV_EINVAL;
	}
	if ((err = pinned_load(cfg))) {
		log_error("exchange.conf", "exchange.central_cert: cannot read a PEM certificate from \"%s\"",
			  exchange_settings(cfg)->central_cert ? exchange_settings(cfg)->central_cert : "");
		return err;
	}
	/* The last copy first: a restart while the central node is down
	 * works from it until it expires (hence no expiry check here;
	 * exchange_conf_get() applies it). */
	if (!exchange_path(path, sizeof path, "globalconf.jws") &&
	    exchange_file_read(path, CONF_MAX, &doc) == EGOV_OK) {
		if (take(cfg, doc.data, doc.len, false, 0, &why))
			log_warn("exchange.conf", "ignoring %s: %s", path, why ? why : "unreadable");
		buf_release(&doc);
	}
	pthread_mutex_lock(&gw.lock);
	gw.running = true;
	pthread_mutex_unlock(&gw.lock);
	if (pthread_create(&gw.thread, NULL, refresh_main, (void *)(uintptr_t)cfg) != 0) {
		gw.running = false;
		return EGOV_ENOMEM;
	}
	pthread_detach(gw.thread);
	return EGOV_OK;
}

/* ---- egov exchange conf show ----------------------------------------------------- */

static void print_summary(const exchange_conf *cf)
{
	char gen[32], exp[32];

	time_format_rfc3339(cf->generated_us, 0, gen);
	time_format_rfc3339(cf->expires_us, 0, exp);
	printf("instance\t%s\nversion\t%lld\ngenerated_at\t%s\nexpires_at\t%s\nstate\t%s\n"
	       "members\t%zu\nsubsystems\t%zu\nservices\t%zu\naccess\t%zu\nevent_types\t%zu\n",
	       cf->instance, (long long)cf->version, gen, exp, time_now_us() < cf->expires_us ? "valid" : "expired",
	       cf->nmembers, cf->nsubs, cf->nservices, cf->naccess, cf->nevent_types);
}

int exchange_conf_command(int argc, char **argv, db *d)
{
	const egov_config *cfg = app()->config;
	exchange_conf *cf = NULL;
	const char *why = NULL;
	char path[4096];
	buf doc = {0};
	int rc = 1;

	if (argc != 3 || strcmp(argv[1], "conf") != 0 || strcmp(argv[2], "show") != 0)
		return -1;
	if (cfg->role && strcmp(cfg->role, "gateway") == 0) {
		if (pinned_load(cfg)) {
			fprintf(stderr, "egov: exchange.central_cert: cannot read a PEM certificate\n");
			return 2;
		}
		if (exchange_path(path, sizeof path, "globalconf.jws") || exchange_file_read(path, CONF_MAX, &doc)) {
			fprintf(stderr, "egov: no global configuration kept yet (%s)\n", path);
			return 1;
		}
		if (exchange_conf_parse(doc.data, doc.len, gw.pinned_pem, instance_of(cfg), 0, &cf, &why)) {
			fprintf(stderr, "egov: %s: %s\n", path, why);
			goto out;
		}
		printf("file\t%s\n", path);
		print_summary(cf);
		rc = 0;
	} else {
		db_conn *c = NULL;
		char *jws = NULL;
		size_t len = 0;
		int64_t version = 0;
		char msg[512];

		if (!pki_is_open() && pki_open(cfg, msg, sizeof msg))
			fprintf(stderr, "egov: pki: %s (revocations not checked)\n", msg);
		if (db_thread_conn(d, &c) || exchange_conf_current(c, &jws, &len, &version)) {
			fprintf(stderr, "egov: cannot build the global configuration (egov exchange central init?)\n");
			rc = 2;
			goto out;
		}
		if (!exchange_conf_parse(jws, len, central.cert_pem, instance_of(cfg), 0, &cf, &why))
			print_summary(cf);
		free(jws);
		rc = cf ? 0 : 2;
	}
out:
	exchange_conf_put(cf);
	buf_release(&doc);
	return rc;
}
