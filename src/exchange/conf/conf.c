/*
 * conf.c: the global configuration as parsed (conf_int.h has its struct):
 * lookups, and the one in force on this node.
 *
 * Invariants: a parsed configuration is immutable and refcounted; the one
 * in force is a pointer swapped under cur_lock, so exchange_conf_get() is
 * a lock, an increment and an unlock. Lookups are binary searches over
 * arrays sorted at parse time.
 *
 * Federation: the one in force is a view, made whenever the local
 * configuration or a federated one changes: the local configuration's
 * fields, with the federated configurations its federation list names
 * (by instance and signing certificate) attached. A lookup by identifier
 * goes to the configuration of the identifier's instance; an attached
 * one that expired answers nothing, while the local one's expiry keeps
 * refusing everything (exchange_conf_get). Federated configurations are
 * never attached to each other: trust is not transitive.
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
	size_t i;

	if (!cf)
		return;
	if (cf->base) {
		/* A view: its strings are its base's. */
		exchange_conf_put(cf->base);
		for (i = 0; i < cf->nattached; i++)
			exchange_conf_put(cf->attached[i]);
	} else {
		arena_release(&cf->a);
	}
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

const char *exchange_conf_signer(const exchange_conf *cf)
{
	return cf->signer;
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

static int cmp_fed(const void *a, const void *b)
{
	return strcmp(((const exchange_federation *)a)->instance, ((const exchange_federation *)b)->instance);
}

egov_err exchange_conf_index(exchange_conf *cf)
{
	qsort(cf->members, cf->nmembers, sizeof *cf->members, cmp_str);
	qsort(cf->subs, cf->nsubs, sizeof *cf->subs, cmp_id);
	qsort(cf->services, cf->nservices, sizeof *cf->services, cmp_id);
	qsort(cf->access, cf->naccess, sizeof *cf->access, cmp_access);
	qsort(cf->event_types, cf->nevent_types, sizeof *cf->event_types, cmp_str);
	if (cf->nfeds)
		qsort(cf->feds, cf->nfeds, sizeof *cf->feds, cmp_fed);
	/* One entry per id, or lookups would depend on sort stability. */
	if (has_dups_sorted(cf->feds, cf->nfeds, sizeof *cf->feds, cmp_fed) ||
	    has_dups_sorted(cf->members, cf->nmembers, sizeof *cf->members, cmp_str) ||
	    has_dups_sorted(cf->subs, cf->nsubs, sizeof *cf->subs, cmp_id) ||
	    has_dups_sorted(cf->services, cf->nservices, sizeof *cf->services, cmp_id) ||
	    has_dups_sorted(cf->access, cf->naccess, sizeof *cf->access, cmp_access))
		return EGOV_EINVAL;
	return EGOV_OK;
}

/* Whether id (an identifier or an instance alone) is of instance. */
static bool of_instance(const char *id, const char *instance)
{
	size_t n = strlen(instance);

	return strncmp(id, instance, n) == 0 && (id[n] == '/' || id[n] == '\0');
}

const exchange_conf *exchange_conf_of_instance(const exchange_conf *cf, const char *id)
{
	size_t i;

	if (!cf || !id)
		return NULL;
	if (of_instance(id, cf->instance))
		return cf;
	for (i = 0; i < cf->nattached; i++) {
		const exchange_conf *f = cf->attached[i];
		if (of_instance(id, f->instance))
			return time_now_us() < f->expires_us ? f : NULL;
	}
	return NULL;
}

const exchange_subsystem *exchange_conf_subsystem(const exchange_conf *cf, const char *id)
{
	const exchange_conf *c = exchange_conf_of_instance(cf, id);

	return c ? bsearch(id, c->subs, c->nsubs, sizeof *c->subs, cmp_id) : NULL;
}

const exchange_service *exchange_conf_service(const exchange_conf *cf, const char *id)
{
	const exchange_conf *c = exchange_conf_of_instance(cf, id);

	return c ? bsearch(id, c->services, c->nservices, sizeof *c->services, cmp_id) : NULL;
}

bool exchange_conf_member_known(const exchange_conf *cf, const char *member_id)
{
	const exchange_conf *c = exchange_conf_of_instance(cf, member_id);

	return c && bsearch(&member_id, c->members, c->nmembers, sizeof *c->members, cmp_str) != NULL;
}

bool exchange_conf_event_type_known(const exchange_conf *cf, const char *id)
{
	const exchange_conf *c = exchange_conf_of_instance(cf, id);

	return c && bsearch(&id, c->event_types, c->nevent_types, sizeof *c->event_types, cmp_str) != NULL;
}

bool exchange_conf_allowed(const exchange_conf *cf, const char *client, const char *service, const char *method,
			   const char *path)
{
	exchange_access key;
	const exchange_access *a;
	const exchange_conf *c;

	if (!client || !service || !method || strlen(client) >= sizeof key.client ||
	    strlen(service) >= sizeof key.service)
		return false;
	/* The provider's registry decides: the rights published by the
	 * service's instance, whatever the client's. */
	if (!(c = exchange_conf_of_instance(cf, service)))
		return false;
	memcpy(key.client, client, strlen(client) + 1);
	memcpy(key.service, service, strlen(service) + 1);
	if (!(a = bsearch(&key, c->access, c->naccess, sizeof *c->access, cmp_access)))
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

	if (subsystem && !(cf = exchange_conf_of_instance(cf, subsystem)))
		return;
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

void exchange_conf_each_federation(const exchange_conf *cf, int (*fn)(void *ctx, const exchange_federation *f),
				   void *ctx)
{
	size_t i;

	for (i = 0; i < cf->nfeds; i++)
		if (fn(ctx, &cf->feds[i]))
			return;
}

size_t exchange_conf_attached(const exchange_conf *cf, const exchange_conf **out, size_t max)
{
	size_t i;

	for (i = 0; i < cf->nattached && i < max; i++)
		out[i] = cf->attached[i];
	return i;
}

void exchange_conf_count(const exchange_conf *cf, exchange_conf_counts *out)
{
	out->members = cf->nmembers;
	out->subsystems = cf->nsubs;
	out->services = cf->nservices;
	out->access = cf->naccess;
	out->event_types = cf->nevent_types;
	out->federation = cf->nfeds;
}

/* ---- the configuration in force ---------------------------------------------- */

/* All under cur_lock: the view in force (what exchange_conf_get gives),
 * the local configuration it was made from, and the federated ones held
 * (attached to the view or waiting for the local one to trust them). */
static pthread_mutex_t cur_lock = PTHREAD_MUTEX_INITIALIZER;
static exchange_conf *cur, *cur_base;
static exchange_conf *held[EXCHANGE_FEDERATION_MAX];
static size_t nheld;

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

static const exchange_federation *trusted(const exchange_conf *base, const char *instance)
{
	exchange_federation key;

	if (!base || strlen(instance) >= sizeof key.instance)
		return NULL;
	memcpy(key.instance, instance, strlen(instance) + 1);
	return bsearch(&key, base->feds, base->nfeds, sizeof *base->feds, cmp_fed);
}

/* Whether the local configuration base trusts f: its instance with the
 * certificate that signed it. */
static bool trusts(const exchange_conf *base, const exchange_conf *f)
{
	const exchange_federation *t = trusted(base, f->instance);

	return t && strcmp(t->sha256, f->signer) == 0;
}

/* Makes the view in force from cur_base and the federated ones it trusts,
 * dropping those it does not (cur_lock held). The old view is returned
 * for the caller to put after unlocking. On ENOMEM the old view stays. */
static egov_err rebuild(exchange_conf **old)
{
	exchange_conf *v = NULL;
	size_t i, k;

	*old = NULL;
	for (i = k = 0; i < nheld; i++) {
		if (cur_base && trusts(cur_base, held[i]))
			held[k++] = held[i];
		else
			exchange_conf_put(held[i]); /* not trusted (any more) */
	}
	nheld = k;
	if (cur_base) {
		if (!(v = malloc(sizeof *v)))
			return EGOV_ENOMEM;
		*v = *cur_base;
		atomic_init(&v->refs, 1);
		arena_init(&v->a, 0);
		atomic_fetch_add(&cur_base->refs, 1);
		v->base = cur_base;
		v->nattached = 0;
		for (i = 0; i < nheld; i++) {
			atomic_fetch_add(&held[i]->refs, 1);
			v->attached[v->nattached++] = held[i];
		}
	}
	*old = cur;
	cur = v;
	return EGOV_OK;
}

egov_err exchange_conf_install(exchange_conf *cf)
{
	exchange_conf *old = NULL, *old_base = NULL;
	egov_err err;

	pthread_mutex_lock(&cur_lock);
	if (cur_base && cf->version < cur_base->version) {
		pthread_mutex_unlock(&cur_lock);
		exchange_conf_put(cf);
		return EGOV_ECONFLICT;
	}
	old_base = cur_base;
	cur_base = cf;
	if ((err = rebuild(&old))) {
		cur_base = old_base;
		old_base = cf;
	}
	pthread_mutex_unlock(&cur_lock);
	exchange_conf_put(old);
	exchange_conf_put(old_base);
	return err;
}

egov_err exchange_conf_install_federated(exchange_conf *cf)
{
	exchange_conf *old = NULL, *gone = NULL, *replaced = NULL;
	size_t i;
	egov_err err = EGOV_OK;

	pthread_mutex_lock(&cur_lock);
	if (!cur_base || !trusts(cur_base, cf)) {
		err = EGOV_ENOTFOUND;
		gone = cf;
		goto out;
	}
	for (i = 0; i < nheld && strcmp(held[i]->instance, cf->instance) != 0; i++)
		;
	/* A lower version from the same signer is an old copy played back;
	 * a new signer (the trust was renewed) starts over. */
	if (i < nheld && strcmp(held[i]->signer, cf->signer) == 0 && cf->version < held[i]->version) {
		err = EGOV_ECONFLICT;
		gone = cf;
		goto out;
	}
	if (i == nheld) {
		if (nheld == EXCHANGE_FEDERATION_MAX) {
			err = EGOV_ELIMIT;
			gone = cf;
			goto out;
		}
		nheld++;
	} else {
		replaced = held[i];
	}
	held[i] = cf;
	/* On failure the view in force stays (with its own references) and
	 * cf is held for the next rebuild. */
	err = rebuild(&old);
out:
	pthread_mutex_unlock(&cur_lock);
	exchange_conf_put(old);
	exchange_conf_put(gone);
	exchange_conf_put(replaced);
	return err;
}

void exchange_conf_clear(void)
{
	exchange_conf *old, *old_base, *h[EXCHANGE_FEDERATION_MAX];
	size_t i, n;

	pthread_mutex_lock(&cur_lock);
	old = cur;
	old_base = cur_base;
	cur = cur_base = NULL;
	n = nheld;
	memcpy(h, held, n * sizeof *h);
	nheld = 0;
	pthread_mutex_unlock(&cur_lock);
	exchange_conf_put(old);
	exchange_conf_put(old_base);
	for (i = 0; i < n; i++)
		exchange_conf_put(h[i]);
}
