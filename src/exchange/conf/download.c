/*
 * download.c: a gateway's copy of the global configuration.
 *
 * The download job fetches GET {exchange.central_url}/exchange/v1/globalconf
 * every exchange.conf_refresh_s (with If-None-Match), verifies it (the
 * signature by the pinned exchange.central_cert, the instance, a version
 * not lower than the one in force, not expired), puts it in force and
 * writes it to DATA/exchange/globalconf.jws (atomically), which the next
 * start loads, so a gateway restarted while the central node is down
 * keeps working until the copy expires.
 *
 * The room's state (the node's settings, the pinned certificate, the last
 * ETag) is set by exchange_conf_start() before the job runs and cleared by
 * exchange_conf_stop() after it stopped. A failed download keeps the
 * configured cadence rather than the job runner's back-off: the central
 * node is asked as often as its operators expect, by every gateway, and
 * the failure is logged once per kind.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "core/httpc.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "exchange/conf/conf.h"
#include "exchange/keys/keys.h"
#include "core/banned.h"

/* How long one download may take: a configuration is at most
 * EXCHANGE_CONF_MAX, and the central node builds it from a cache. */
#define DOWNLOAD_TIMEOUT_MS 15000

static struct {
	pthread_mutex_t lock;
	const egov_config *cfg; /* NULL: not a gateway, or stopped */
	char *pinned_pem;
	char etag[64];
	const char *last_why;   /* the failure last logged, "" if none */
} gw = {.lock = PTHREAD_MUTEX_INITIALIZER, .last_why = ""};

/* The central node's signing certificate, as configured. *pem (malloc'd)
 * is its PEM text. */
static egov_err pinned_read(const egov_config *cfg, char **pem_out)
{
	const char *path = exchange_settings(cfg)->central_cert;
	buf pem = {0};
	X509 *x = NULL;
	egov_err err;

	*pem_out = NULL;
	if (!path || !*path)
		return EGOV_EINVAL;
	if ((err = exchange_file_read(path, EXCHANGE_PEM_MAX, &pem)))
		return err;
	if (!(x = exchange_pem_cert(pem.data, pem.len))) {
		buf_release(&pem);
		return EGOV_EINVAL;
	}
	X509_free(x);
	*pem_out = buf_detach(&pem, NULL);
	return EGOV_OK;
}

static const char *instance_of(const egov_config *cfg)
{
	const char *inst = exchange_settings(cfg)->instance;

	return *inst ? inst : "MO";
}

/* Verifies and installs a downloaded or kept document; save: write it to
 * DATA/exchange/globalconf.jws once in force. */
static egov_err take(const egov_config *cfg, const char *pinned, const char *jws, size_t len, bool save,
		     int64_t now_us, const char **why)
{
	exchange_conf *cf = NULL;
	char path[EXCHANGE_PATH_MAX];
	int64_t version;
	egov_err err;

	if ((err = exchange_conf_parse(jws, len, pinned, instance_of(cfg), now_us, &cf, why)))
		return err;
	version = exchange_conf_version(cf);
	if ((err = exchange_conf_install(cf))) {
		*why = err == EGOV_ECONFLICT ? "exchange.conf_version" : "exchange.conf_invalid";
		if (err == EGOV_ECONFLICT)
			log_warn("exchange.conf",
				 "refused a global configuration of version %lld: lower than the one in force",
				 (long long)version);
		return err;
	}
	/* The instances it trusts may have changed: a new one is fetched at
	 * once (a withdrawn one was dropped by the install). */
	job_wake(&exchange_federation_job);
	if (save && !(err = exchange_dirs()) && !(err = exchange_path(path, sizeof path, "globalconf.jws")))
		err = exchange_file_write(path, jws, len, 0644);
	if (err)
		log_warn("exchange.conf", "cannot keep the global configuration in DATA/exchange: %s", egov_err_name(err));
	return EGOV_OK;
}

egov_err exchange_conf_refresh(const char **why)
{
	httpc_request rq = {.method = "GET", .timeout_ms = DOWNLOAD_TIMEOUT_MS, .response_max = EXCHANGE_CONF_MAX};
	httpc_response resp = {0};
	const egov_config *cfg;
	char url[1024], inm[96], *pinned = NULL;
	egov_err err = EGOV_EUNAVAILABLE;

	*why = "exchange.conf_unreachable";
	pthread_mutex_lock(&gw.lock);
	cfg = gw.cfg;
	if (cfg && (pinned = strdup(gw.pinned_pem)) && gw.etag[0]) {
		snprintf(inm, sizeof inm, "If-None-Match: %s", gw.etag);
		rq.headers[0] = inm;
	}
	pthread_mutex_unlock(&gw.lock);
	if (!cfg || !pinned)
		goto out;
	*why = NULL;
	snprintf(url, sizeof url, "%s/exchange/v1/globalconf", exchange_settings(cfg)->central_url);
	rq.url = url;
	if (cfg->peer_tls_ca && *cfg->peer_tls_ca)
		rq.ca_file = cfg->peer_tls_ca;
	err = httpc_send_sync(&rq, &resp);
	if (err || resp.err) {
		*why = "exchange.conf_unreachable";
		err = err ? err : resp.err;
		goto out;
	}
	if (resp.status == 304)
		goto out; /* unchanged, and the one in force is that document */
	if (resp.status != 200 || !resp.body.data) {
		*why = "exchange.conf_unreachable";
		err = EGOV_EUNAVAILABLE;
		goto out;
	}
	if ((err = take(cfg, pinned, resp.body.data, resp.body.len, true, time_now_us(), why)))
		goto out;
	{
		const char *et = httpc_header(&resp, "etag");
		pthread_mutex_lock(&gw.lock);
		snprintf(gw.etag, sizeof gw.etag, "%s", et && strlen(et) < sizeof gw.etag ? et : "");
		pthread_mutex_unlock(&gw.lock);
	}
out:
	httpc_response_release(&resp);
	free(pinned);
	return err;
}

/* One pass of the download job. */
static int64_t download_pass(job_ctx *j)
{
	const egov_config *cfg;
	const char *why = NULL;
	egov_err err;

	(void)j;
	pthread_mutex_lock(&gw.lock);
	cfg = gw.cfg;
	pthread_mutex_unlock(&gw.lock);
	if (!cfg)
		return -1; /* not a gateway: nothing to download, ever */
	err = exchange_conf_refresh(&why);
	/* Logged once per kind of failure, not on every poll. */
	if (err && why && strcmp(why, gw.last_why) != 0)
		log_warn("exchange.conf", "global configuration not updated from %s: %s (%s)",
			 exchange_settings(cfg)->central_url, why, egov_err_name(err));
	else if (!err && *gw.last_why)
		log_info("exchange.conf", "global configuration updated from %s again", exchange_settings(cfg)->central_url);
	gw.last_why = err && why ? why : "";
	return (int64_t)exchange_settings(cfg)->conf_refresh_s * 1000;
}

const job exchange_conf_job = {.name = "exchange.conf", .run = download_pass};

egov_err exchange_conf_start(const egov_config *cfg)
{
	const exchange_config *xc = exchange_settings(cfg);
	char path[EXCHANGE_PATH_MAX], *pinned = NULL;
	const char *why = NULL;
	buf doc = {0};
	egov_err err;

	if (!xc->central_url || !*xc->central_url) {
		log_error("exchange.conf", "exchange.central_url is empty: a gateway needs the central node's address");
		return EGOV_EINVAL;
	}
	if ((err = pinned_read(cfg, &pinned))) {
		log_error("exchange.conf", "exchange.central_cert: cannot read a PEM certificate from \"%s\"",
			  xc->central_cert ? xc->central_cert : "");
		return err;
	}
	/* The last copy first: a restart while the central node is down
	 * works from it until it expires (hence no expiry check here;
	 * exchange_conf_get() applies it). */
	if (!exchange_path(path, sizeof path, "globalconf.jws") &&
	    exchange_file_read(path, EXCHANGE_CONF_MAX, &doc) == EGOV_OK) {
		if (take(cfg, pinned, doc.data, doc.len, false, 0, &why))
			log_warn("exchange.conf", "ignoring %s: %s", path, why ? why : "unreadable");
		buf_release(&doc);
	}
	pthread_mutex_lock(&gw.lock);
	free(gw.pinned_pem);
	gw.pinned_pem = pinned;
	gw.cfg = cfg;
	gw.etag[0] = '\0';
	gw.last_why = "";
	pthread_mutex_unlock(&gw.lock);
	return EGOV_OK;
}

void exchange_conf_stop(void)
{
	pthread_mutex_lock(&gw.lock);
	gw.cfg = NULL;
	free(gw.pinned_pem);
	gw.pinned_pem = NULL;
	pthread_mutex_unlock(&gw.lock);
}

bool exchange_conf_serving(void)
{
	bool on;

	pthread_mutex_lock(&gw.lock);
	on = gw.cfg != NULL;
	pthread_mutex_unlock(&gw.lock);
	return on;
}

/* ---- egov exchange conf show ----------------------------------------------------- */

void exchange_conf_print(const exchange_conf *cf)
{
	exchange_conf_counts n;
	char gen[32], exp[32];

	exchange_conf_count(cf, &n);
	time_format_rfc3339(exchange_conf_generated_us(cf), 0, gen);
	time_format_rfc3339(exchange_conf_expires_us(cf), 0, exp);
	printf("instance\t%s\nversion\t%lld\ngenerated_at\t%s\nexpires_at\t%s\nstate\t%s\n"
	       "members\t%zu\nsubsystems\t%zu\nservices\t%zu\naccess\t%zu\nevent_types\t%zu\ntrusted_instances\t%zu\n",
	       exchange_conf_instance(cf), (long long)exchange_conf_version(cf), gen, exp,
	       time_now_us() < exchange_conf_expires_us(cf) ? "valid" : "expired", n.members, n.subsystems,
	       n.services, n.access, n.event_types, n.federation);
}

int exchange_conf_show_kept(const egov_config *cfg)
{
	exchange_conf *cf = NULL;
	const char *why = NULL;
	char path[EXCHANGE_PATH_MAX], *pinned = NULL;
	buf doc = {0};
	int rc = 1;

	if (pinned_read(cfg, &pinned)) {
		fprintf(stderr, "egov: exchange.central_cert: cannot read a PEM certificate\n");
		return 2;
	}
	if (exchange_path(path, sizeof path, "globalconf.jws") || exchange_file_read(path, EXCHANGE_CONF_MAX, &doc)) {
		fprintf(stderr, "egov: no global configuration kept yet (%s)\n", path);
		goto out;
	}
	if (exchange_conf_parse(doc.data, doc.len, pinned, instance_of(cfg), 0, &cf, &why)) {
		fprintf(stderr, "egov: %s: %s\n", path, why);
		goto out;
	}
	printf("file\t%s\n", path);
	exchange_conf_print(cf);
	exchange_federation_show_kept(cf);
	rc = 0;
out:
	exchange_conf_put(cf);
	buf_release(&doc);
	free(pinned);
	return rc;
}
