/*
 * conf.c: the global configuration as parsed (conf_int.h has its struct):
 * lookups, and the one in force on this node.
 *
 * Invariants: a parsed configuration is immutable and refcounted; the one
 * in force is a pointer swapped under cur_lock, so exchange_conf_get() is
 * a lock, an increment and an unlock. Lookups are binary searches over
 * arrays sorted at parse time.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"
#include "exchange/conf/conf_int.h"
#include "core/banned.h"

/* ---- the parsed configuration ------------------------------------------------ */

exchange_conf *exchange_conf_new(size_t cap)
{
	exchange_conf *cf = calloc(1, sizeof *cf);

	if (!cf)
		return NULL;
	atomic_init(&cf->refs, 1);
	arena_init(&cf->a, cap);
	return cf;
}

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

/* Subsystems and services by their id, their first member; a lookup's
 * key is the id itself. */
static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

static int cmp_access(const void *a, const void *b)
{
	const exchange_access *x = a, *y = b;
	int d = strcmp(x->client, y->client);
	return d ? d : strcmp(x->service, y->service);
}

static int has_dups_sorted(const void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	size_t i;

	for (i = 1; i < n; i++)
		if (cmp((const char *)base + (i - 1) * size, (const char *)base + i * size) == 0)
			return 1;
	return 0;
}

egov_err exchange_conf_index(exchange_conf *cf)
{
	qsort(cf->members, cf->nmembers, sizeof *cf->members, cmp_str);
	qsort(cf->subs, cf->nsubs, sizeof *cf->subs, cmp_id);
	qsort(cf->services, cf->nservices, sizeof *cf->services, cmp_id);
	qsort(cf->access, cf->naccess, sizeof *cf->access, cmp_access);
	qsort(cf->event_types, cf->nevent_types, sizeof *cf->event_types, cmp_str);
	/* One entry per id, or lookups would depend on sort stability. */
	if (has_dups_sorted(cf->members, cf->nmembers, sizeof *cf->members, cmp_str) ||
	    has_dups_sorted(cf->subs, cf->nsubs, sizeof *cf->subs, cmp_id) ||
	    has_dups_sorted(cf->services, cf->nservices, sizeof *cf->services, cmp_id) ||
	    has_dups_sorted(cf->access, cf->naccess, sizeof *cf->access, cmp_access))
		return EGOV_EINVAL;
	return EGOV_OK;
}

const exchange_subsystem *exchange_conf_subsystem(const exchange_conf *cf, const char *id)
{
	return id ? bsearch(id, cf->subs, cf->nsubs, sizeof *cf->subs, cmp_id) : NULL;
}

const exchange_service *exchange_conf_service(const exchange_conf *cf, const char *id)
{
	return id ? bsearch(id, cf->services, cf->nservices, sizeof *cf->services, cmp_id) : NULL;
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

void exchange_conf_count(const exchange_conf *cf, exchange_conf_counts *out)
{
	out->members = cf->nmembers;
	out->subsystems = cf->nsubs;
	out->services = cf->nservices;
	out->access = cf->naccess;
	out->event_types = cf->nevent_types;
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

