/*
 * federation.c: a gateway's copies of the configurations of the other
 * instances its own instance trusts (docs/exchange.md, "Federation").
 *
 * The local configuration names them (its "federation" list: instance,
 * the URL its trusting registry published for the instance's central
 * node, and the configuration signing certificate it trusts). The
 * federation job downloads each one's configuration from that URL every
 * exchange.federation_refresh_s (with If-None-Match), verifies it against
 * that certificate and that instance (conf/parse.c: the x5c must be the
 * certificate, the signature must verify, not expired), and holds it in
 * force beside the local one (exchange_conf_install_federated), which
 * attaches it for as long as the local configuration still trusts it. Its
 * validity is its own: the other central node's exchange.conf_validity_s.
 * Each accepted document is kept as DATA/exchange/globalconf-INSTANCE.jws
 * (an instance is 1 to 64 of A-Z a-z 0-9 _ . -, safe after that prefix),
 * which the next start loads.
 *
 * The job's state (per instance: the certificate it was fetched for, the
 * ETag, when it is next due, the failure last logged) belongs to the job's
 * thread; exchange_federation_start() and _stop() run when the job does
 * not. A change of the local configuration wakes the job, so a newly
 * trusted instance is fetched at once and a withdrawn one is dropped by
 * exchange_conf_install() itself, before the job runs.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/httpc.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "exchange/conf/conf.h"
#include "exchange/keys/keys.h"
#include "core/banned.h"

/* How long one download may take (as for the local configuration). */
#define FED_TIMEOUT_MS 15000

/* One trusted instance as the local configuration names it, copied so
 * that the download does not hold a reference to the configuration. */
typedef struct fed_entry {
	char instance[EXCHANGE_PART_MAX + 1];
	char sha256[65];
	char *url, *pem;
} fed_entry;

typedef struct fed_state {
	char instance[EXCHANGE_PART_MAX + 1];
	char sha256[65];   /* the certificate it is fetched for: a new one starts over */
	char etag[64];
	int64_t next_us;   /* when it is next due; 0 at once */
	const char *last_why; /* the failure last logged, "" if none */
} fed_state;

static struct {
	pthread_mutex_t lock;
	const egov_config *cfg; /* NULL: not a gateway, or stopped */
	fed_state st[EXCHANGE_FEDERATION_MAX];
	size_t n;
} fed = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const egov_config *fed_cfg(void)
{
	const egov_config *cfg;

	pthread_mutex_lock(&fed.lock);
	cfg = fed.cfg;
	pthread_mutex_unlock(&fed.lock);
	return cfg;
}

typedef struct entries {
	fed_entry e[EXCHANGE_FEDERATION_MAX];
	size_t n;
	bool oom;
} entries;

static int take_entry(void *ctx, const exchange_federation *f)
{
	entries *es = ctx;
	fed_entry *e;

	if (es->n == EXCHANGE_FEDERATION_MAX)
		return 1;
	e = &es->e[es->n];
	memcpy(e->instance, f->instance, sizeof e->instance);
	memcpy(e->sha256, f->sha256, sizeof e->sha256);
	e->url = strdup(f->url);
	e->pem = strdup(f->pem);
	if (!e->url || !e->pem) {
		free(e->url);
		free(e->pem);
		es->oom = true;
		return 1;
	}
	es->n++;
	return 0;
}

static void entries_release(entries *es)
{
	size_t i;

	for (i = 0; i < es->n; i++) {
		free(es->e[i].url);
		free(es->e[i].pem);
	}
	es->n = 0;
}

static void kept_path(const char *instance, char *out, size_t len)
{
	char rel[EXCHANGE_PART_MAX + 32];

	snprintf(rel, sizeof rel, "globalconf-%s.jws", instance);
	if (exchange_path(out, len, rel))
		out[0] = '\0';
}

/* Verifies and holds a federated document; save: keep it on disk. */
static egov_err take(const fed_entry *e, const char *jws, size_t len, bool save, int64_t now_us, const char **why)
{
	exchange_conf *cf = NULL;
	char path[EXCHANGE_PATH_MAX];
	egov_err err;

	if ((err = exchange_conf_parse(jws, len, e->pem, e->instance, now_us, &cf, why)))
		return err;
	if ((err = exchange_conf_install_federated(cf))) {
		*why = err == EGOV_ECONFLICT ? "exchange.conf_version" : "exchange.conf_untrusted";
		return err;
	}
	kept_path(e->instance, path, sizeof path);
	if (save && path[0] && ((err = exchange_dirs()) || (err = exchange_file_write(path, jws, len, 0644))))
		log_warn("exchange.federation", "cannot keep the configuration of %s in DATA/exchange: %s", e->instance,
			 egov_err_name(err));
	return EGOV_OK;
}

/* One download of a trusted instance's configuration. */
static egov_err fetch(const egov_config *cfg, const fed_entry *e, fed_state *s, const char **why)
{
	httpc_request rq = {.method = "GET", .timeout_ms = FED_TIMEOUT_MS, .response_max = EXCHANGE_CONF_MAX};
	httpc_response resp = {0};
	char url[EXCHANGE_URL_MAX + 64], inm[96];
	const char *et;
	egov_err err;

	*why = "exchange.conf_unreachable";
	snprintf(url, sizeof url, "%s/exchange/v1/globalconf", e->url);
	rq.url = url;
	if (s->etag[0]) {
		snprintf(inm, sizeof inm, "If-None-Match: %s", s->etag);
		rq.headers[0] = inm;
	}
	if (cfg->peer_tls_ca && *cfg->peer_tls_ca)
		rq.ca_file = cfg->peer_tls_ca;
	err = httpc_send_sync(&rq, &resp);
	if (err || resp.err) {
		err = err ? err : resp.err;
		goto out;
	}
	if (resp.status == 304) {
		*why = NULL;
		goto out;
	}
	if (resp.status != 200 || !resp.body.data) {
		err = EGOV_EUNAVAILABLE;
		goto out;
	}
	if ((err = take(e, resp.body.data, resp.body.len, true, time_now_us(), why)))
		goto out;
	*why = NULL;
	et = httpc_header(&resp, "etag");
	snprintf(s->etag, sizeof s->etag, "%s", et && strlen(et) < sizeof s->etag ? et : "");
out:
	httpc_response_release(&resp);
	return err;
}

/* The job's state for e: found, or made (a certificate that changed
 * starts over); NULL when the table is full. */
static fed_state *state_for(const fed_entry *e)
{
	fed_state *s;
	size_t i;

	for (i = 0; i < fed.n; i++)
		if (strcmp(fed.st[i].instance, e->instance) == 0)
			break;
	if (i == fed.n) {
		if (fed.n == EXCHANGE_FEDERATION_MAX)
			return NULL;
		fed.n++;
		memset(&fed.st[i], 0, sizeof fed.st[i]);
		fed.st[i].last_why = "";
	}
	s = &fed.st[i];
	if (strcmp(s->sha256, e->sha256) != 0) {
		memcpy(s->instance, e->instance, sizeof s->instance);
		memcpy(s->sha256, e->sha256, sizeof s->sha256);
		s->etag[0] = '\0';
		s->next_us = 0;
	}
	return s;
}

/* Forgets the state of instances no longer trusted. */
static void forget_untrusted(const entries *es)
{
	size_t i, k, j;

	for (i = k = 0; i < fed.n; i++) {
		for (j = 0; j < es->n && strcmp(es->e[j].instance, fed.st[i].instance) != 0; j++)
			;
		if (j < es->n)
			fed.st[k++] = fed.st[i];
	}
	fed.n = k;
}

static int64_t federation_pass(job_ctx *j)
{
	const egov_config *cfg = fed_cfg();
	int64_t refresh_us, now, next;
	exchange_conf *cf;
	entries es = {0};
	size_t i;

	if (!cfg)
		return -1; /* not a gateway: nothing to download, ever */
	refresh_us = (int64_t)exchange_settings(cfg)->federation_refresh_s * 1000000;
	/* Without a local configuration nobody is trusted yet; its next
	 * download wakes the job. */
	if (!(cf = exchange_conf_get(NULL)))
		return refresh_us / 1000;
	exchange_conf_each_federation(cf, take_entry, &es);
	exchange_conf_put(cf);
	if (es.oom) {
		entries_release(&es);
		job_fail(j, EGOV_ENOMEM, "cannot copy the federation list");
		return -1;
	}
	forget_untrusted(&es);
	now = time_now_us();
	next = now + refresh_us;
	for (i = 0; i < es.n && !job_stopping(j); i++) {
		const char *why = NULL;
		fed_state *s = state_for(&es.e[i]);
		egov_err err;

		if (!s)
			break;
		if (now >= s->next_us) {
			err = fetch(cfg, &es.e[i], s, &why);
			s->next_us = time_now_us() + refresh_us;
			/* Logged once per kind of failure and instance. */
			if (err && why && strcmp(why, s->last_why) != 0)
				log_warn("exchange.federation", "configuration of %s not updated from %s: %s (%s)",
					 s->instance, es.e[i].url, why, egov_err_name(err));
			else if (!err && *s->last_why)
				log_info("exchange.federation", "configuration of %s updated from %s again", s->instance,
					 es.e[i].url);
			s->last_why = err && why ? why : "";
		}
		if (s->next_us < next)
			next = s->next_us;
	}
	entries_release(&es);
	now = time_now_us();
	return next > now ? (next - now) / 1000 + 1 : 0;
}

const job exchange_federation_job = {.name = "exchange.federation", .run = federation_pass};

void exchange_federation_start(const egov_config *cfg)
{
	char path[EXCHANGE_PATH_MAX];
	const char *why = NULL;
	exchange_conf *cf;
	entries es = {0};
	buf doc = {0};
	size_t i;

	pthread_mutex_lock(&fed.lock);
	fed.cfg = cfg;
	fed.n = 0;
	pthread_mutex_unlock(&fed.lock);
	/* The kept copies of what the kept local configuration trusts: a
	 * restart while another central node is down works from them until
	 * they expire (checked at every lookup). */
	if (!(cf = exchange_conf_get(NULL)))
		return;
	exchange_conf_each_federation(cf, take_entry, &es);
	exchange_conf_put(cf);
	for (i = 0; i < es.n; i++) {
		kept_path(es.e[i].instance, path, sizeof path);
		if (!path[0] || exchange_file_read(path, EXCHANGE_CONF_MAX, &doc) != EGOV_OK)
			continue;
		if (take(&es.e[i], doc.data, doc.len, false, 0, &why))
			log_warn("exchange.federation", "ignoring %s: %s", path, why ? why : "unreadable");
		buf_release(&doc);
	}
	entries_release(&es);
}

void exchange_federation_stop(void)
{
	pthread_mutex_lock(&fed.lock);
	fed.cfg = NULL;
	fed.n = 0;
	pthread_mutex_unlock(&fed.lock);
}

/* ---- egov exchange conf show -------------------------------------------------------- */

static int show_one(void *ctx, const exchange_federation *f)
{
	char path[EXCHANGE_PATH_MAX], exp[32];
	const char *why = NULL;
	exchange_conf *cf = NULL;
	buf doc = {0};

	(void)ctx;
	kept_path(f->instance, path, sizeof path);
	if (!path[0] || exchange_file_read(path, EXCHANGE_CONF_MAX, &doc) != EGOV_OK) {
		printf("federated\t%s\t-\t-\tnot downloaded yet\n", f->instance);
		return 0;
	}
	if (exchange_conf_parse(doc.data, doc.len, f->pem, f->instance, 0, &cf, &why)) {
		printf("federated\t%s\t-\t-\t%s\n", f->instance, why);
	} else {
		time_format_rfc3339(exchange_conf_expires_us(cf), 0, exp);
		printf("federated\t%s\t%lld\t%s\t%s\n", f->instance, (long long)exchange_conf_version(cf), exp,
		       time_now_us() < exchange_conf_expires_us(cf) ? "valid" : "expired");
	}
	exchange_conf_put(cf);
	buf_release(&doc);
	return 0;
}

void exchange_federation_show_kept(const exchange_conf *local)
{
	exchange_conf_each_federation(local, show_one, NULL);
}
