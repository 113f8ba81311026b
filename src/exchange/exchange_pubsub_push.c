/*
 * exchange_pubsub_push.c: push delivery, both ends.
 *
 * Provider side: one delivery thread claims due outbox rows and sends each
 * as a signed exchange (docs/exchange.md, "Publish / subscribe"): client
 * = the provider subsystem, service = SUBSCRIBER/push, POST
 * /{eventType}/{eventId}, body the EventItem, a fresh message id per
 * attempt, over mutual TLS to the subscriber's gateway named in the
 * global configuration. Sends go through httpc (no thread waits on a
 * subscriber); completions come back to the delivery thread, which checks
 * the TLS peer and the response signature, logs the exchange, and records
 * delivered (2xx) or the next attempt (back-off).
 *
 * Subscriber side: POST /peer/v1/push/{subscriber}/{eventType}/{eventId}
 * on the peer listener verifies as the provider path of the gateway does
 * (TLS peer certificate, signer certificate and signature, signing time,
 * replay), forwards to the push URL configured on this gateway for that
 * subscriber and event type (never a URL the sender names), signs the
 * back-end's answer, logs and returns it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "audit/audit.h"
#include "core/app.h"
#include "core/crypto.h"
#include "core/httpc.h"
#include "core/i18n.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "exchange/exchange_pubsub_int.h"
#include "core/banned.h"

#define INFLIGHT_MAX 64
/* Slack beyond the exchange timeout before a lease runs out. */
#define LEASE_MARGIN_MS 30000
#define WHY_MAX 512
#define RESPONSE_MAX (1024 * 1024)

/* Operational figures for /metrics (no database access on a scrape). */
static atomic_uint_fast64_t m_delivered, m_retried, m_received;

static egov_err write_metrics(buf *out)
{
	egov_err err;

	if ((err = metrics_write_header(out, "egov_exchange_pubsub_pushes_total", "counter",
					"Push attempts of this gateway's rooms, by outcome.")) ||
	    (err = buf_addf(out, "egov_exchange_pubsub_pushes_total{result=\"delivered\"} %llu\n",
			    (unsigned long long)atomic_load(&m_delivered))) ||
	    (err = buf_addf(out, "egov_exchange_pubsub_pushes_total{result=\"retry\"} %llu\n",
			    (unsigned long long)atomic_load(&m_retried))) ||
	    (err = metrics_write_header(out, "egov_exchange_pubsub_received_total", "counter",
					"Pushes this gateway forwarded to its subscribers' back-ends.")) ||
	    (err = buf_addf(out, "egov_exchange_pubsub_received_total %llu\n",
			    (unsigned long long)atomic_load(&m_received))))
		return err;
	return EGOV_OK;
}

/* ---- shared pieces ---------------------------------------------------------------- */

/* server.peer_tls_ca, else the bundle of the platform's root and issuing
 * certificates the gateway writes at start, else the root alone. */
static void peer_ca(const egov_config *cfg, char *out, size_t len)
{
	const char *dir = cfg->data_dir ? cfg->data_dir : ".";

	if (cfg->peer_tls_ca && *cfg->peer_tls_ca) {
		snprintf(out, len, "%s", cfg->peer_tls_ca);
		return;
	}
	snprintf(out, len, "%s/exchange/peer-ca.pem", dir);
	if (access(out, R_OK) != 0)
		snprintf(out, len, "%s/pki/root.crt", dir);
}

/* Whether the DER certificate is a certificate of subsystem with usage in cf. */
static bool cert_of(const exchange_conf *cf, const char *subsystem, const char *usage, const void *der, size_t len)
{
	char sha[65];

	if (!der || !len)
		return false;
	crypto_sha256_hex(der, len, sha);
	return exchange_conf_cert(cf, subsystem, usage, sha) != NULL;
}

/* The subscriber's gateway is known by its certificates, not its name:
 * pins ("sha256//BASE64;...", SHA-256 of each public key) of the tls
 * certificates of subsystem in cf. EGOV_ENOTFOUND if it has none. */
static egov_err tls_pins(const exchange_conf *cf, const char *subsystem, buf *out)
{
	const exchange_subsystem *s = exchange_conf_subsystem(cf, subsystem);
	unsigned char *der = NULL, md[32], b64[48];
	size_t i;
	int n = 0, len;

	buf_reset(out);
	for (i = 0; s && i < s->ncerts; i++) {
		BIO *bio;
		X509 *x;
		if (strcmp(s->certs[i].usage, "tls") != 0 || !s->certs[i].pem)
			continue;
		bio = BIO_new_mem_buf(s->certs[i].pem, -1);
		x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
		BIO_free(bio);
		der = NULL;
		len = x ? i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der) : -1;
		X509_free(x);
		if (len <= 0)
			continue;
		crypto_sha256(der, (size_t)len, md);
		OPENSSL_free(der);
		EVP_EncodeBlock(b64, md, sizeof md);
		if ((n && buf_addc(out, ';')) || buf_addf(out, "sha256//%s", (const char *)b64))
			return EGOV_ELIMIT;
		n++;
	}
	return n ? EGOV_OK : EGOV_ENOTFOUND;
}

/* Writes the EventItem a push carries. */
static egov_err event_json(const pubsub_event *e, buf *out)
{
	static const char *const names[] = {"instanceId", "memberClass", "memberCode", "applicationCode"};
	const char *p = e->publisher;
	char part[EXCHANGE_PART_MAX + 1], t[32];
	jw w;
	int i;

	jw_init(&w, out);
	jw_obj_begin(&w);
	jw_kstr(&w, "id", e->id);
	jw_kint(&w, "sequence", e->seq);
	jw_key(&w, "publisherId");
	jw_obj_begin(&w);
	for (i = 0; i < 4 && p; i++) {
		size_t n = strcspn(p, "/");
		snprintf(part, sizeof part, "%.*s", (int)(n < EXCHANGE_PART_MAX ? n : EXCHANGE_PART_MAX), p);
		jw_kstr(&w, names[i], part);
		p = p[n] ? p + n + 1 : NULL;
	}
	jw_obj_end(&w);
	jw_kstr(&w, "eventType", e->event_type);
	jw_key(&w, "event");
	jw_raw(&w, e->payload);
	time_format_rfc3339(e->created_us, 3, t);
	jw_kstr(&w, "publishedAt", t);
	jw_obj_end(&w);
	return w.err;
}

/* ---- provider side: the delivery thread -------------------------------------------- */

typedef struct job {
	struct job *next;
	pubsub_delivery d;
	char msg_id[37];
	char service[EXCHANGE_ID_MAX + 8];
	char path[PUBSUB_NAME_MAX + PUBSUB_EVENT_ID_MAX + 4];
	char signed_at[32];
	char sig[128];
	char cert_sha[65];
	char body_sha[65];
	buf body;
	buf pins;
	httpc_response resp;
} job;

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t thread;
	bool running, stop, wake, metrics_added;
	job *done; /* completed sends, for the thread */
	int inflight;
	db *d;
	char *cert, *key, *ca;
	int retry_ms, retry_max_s, timeout_ms, poll_ms;
} dw = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* On /metrics once delivery started in this process. */
egov_err pubsub_push_metrics(buf *out)
{
	bool on;

	pthread_mutex_lock(&dw.mu);
	on = dw.metrics_added;
	pthread_mutex_unlock(&dw.mu);
	return on ? write_metrics(out) : EGOV_OK;
}

static void job_free(job *j)
{
	if (!j)
		return;
	pubsub_delivery_release(&j->d);
	buf_release(&j->body);
	buf_release(&j->pins);
	httpc_response_release(&j->resp);
	free(j);
}

static void on_sent(void *ctx, httpc_response *resp)
{
	job *j = ctx;

	/* Moved whole: the thread reads it; httpc releases the empty rest. */
	j->resp = *resp;
	memset(resp, 0, sizeof *resp);
	pthread_mutex_lock(&dw.mu);
	if (dw.stop) {
		/* Stopped (httpc_stop fails what is left): the row stays
		 * leased and is sent again after the restart. */
		pthread_mutex_unlock(&dw.mu);
		job_free(j);
		return;
	}
	j->next = dw.done;
	dw.done = j;
	pthread_cond_signal(&dw.cond);
	pthread_mutex_unlock(&dw.mu);
}

static void retry_later(db_conn *c, const pubsub_delivery *d, const char *why)
{
	int64_t next = time_now_us() + pubsub_backoff_ms(d->attempts, dw.retry_ms, dw.retry_max_s) * 1000;

	atomic_fetch_add(&m_retried, 1);
	log_info("exchange.pubsub", "push of %s to %s, attempt %d: %s", d->ev.id, d->subscriber, d->attempts, why);
	if (pubsub_outbox_retry(c, d->sub_id, d->ev.seq, next, why))
		log_warn("exchange.pubsub", "cannot record the retry of %s: %s", d->ev.id, db_conn_errmsg(c));
}

/* Signs and sends one claimed delivery. On failure *why says why and
 * nothing was sent. */
static egov_err send_one(job *j, char why[WHY_MAX])
{
	const pubsub_delivery *d = &j->d;
	const exchange_subsystem *sub;
	exchange_conf *cf = NULL;
	const char *cause = NULL;
	char url[EXCHANGE_ID_MAX * 2 + 256 + PUBSUB_EVENT_ID_MAX], hdr[8][EXCHANGE_ID_MAX + 160];
	httpc_request rq = {0};
	buf canon;
	egov_err err;

	buf_init(&canon, 16 * 1024);
	if (!(cf = exchange_conf_get(&cause))) {
		snprintf(why, WHY_MAX, "%s", cause ? cause : "exchange.conf_missing");
		err = EGOV_EUNAVAILABLE;
		goto out;
	}
	if (!(sub = exchange_conf_subsystem(cf, d->subscriber)) || !sub->gateway_url || !*sub->gateway_url) {
		snprintf(why, WHY_MAX, "subscriber %s is not in the global configuration", d->subscriber);
		err = EGOV_ENOTFOUND;
		goto out;
	}
	buf_init(&j->pins, 16 * 1024);
	if (tls_pins(cf, d->subscriber, &j->pins)) {
		snprintf(why, WHY_MAX, "no TLS certificate of %s in the global configuration", d->subscriber);
		err = EGOV_ENOTFOUND;
		goto out;
	}
	buf_init(&j->body, PUBSUB_EVENT_MAX + 64 * 1024);
	if ((err = event_json(&d->ev, &j->body)) || (err = uuid_v7(j->msg_id))) {
		snprintf(why, WHY_MAX, "cannot build the push: %s", egov_err_name(err));
		goto out;
	}
	crypto_sha256_hex(j->body.data, j->body.len, j->body_sha);
	snprintf(j->service, sizeof j->service, "%s/push", d->subscriber);
	snprintf(j->path, sizeof j->path, "/%s/%s", d->ev.event_type, d->ev.id);
	time_format_rfc3339(time_now_us(), 3, j->signed_at);
	if ((err = exchange_canon_request(&(exchange_canon_req){.message_id = j->msg_id,
								.client = d->ev.provider,
								.service = j->service,
								.method = "POST",
								.path = j->path,
								.content_type = "application/json",
								.represented_party = "",
								.data_subject = "",
								.purpose = "",
								.signed_at = j->signed_at,
								.body_sha256 = j->body_sha},
					  &canon)) ||
	    (err = exchange_sign(d->ev.provider, canon.data, canon.len, j->sig, j->cert_sha))) {
		snprintf(why, WHY_MAX, "cannot sign as %s: %s", d->ev.provider, egov_err_name(err));
		goto out;
	}
	snprintf(url, sizeof url, "%s/peer/v1/push/%s%s", sub->gateway_url, d->subscriber, j->path);
	snprintf(hdr[0], sizeof hdr[0], "X-Road-Client: %s", d->ev.provider);
	snprintf(hdr[1], sizeof hdr[1], "X-Road-Id: %s", j->msg_id);
	snprintf(hdr[2], sizeof hdr[2], "X-Egov-Signed-At: %s", j->signed_at);
	snprintf(hdr[3], sizeof hdr[3], "X-Egov-Signer-Cert: %s", j->cert_sha);
	snprintf(hdr[4], sizeof hdr[4], "X-Egov-Signature: %s", j->sig);
	snprintf(hdr[5], sizeof hdr[5], "Content-Type: application/json");
	rq = (httpc_request){.method = "POST",
			     .url = url,
			     .headers = {hdr[0], hdr[1], hdr[2], hdr[3], hdr[4], hdr[5], NULL},
			     .body = j->body.data,
			     .body_len = j->body.len,
			     .timeout_ms = dw.timeout_ms,
			     .response_max = RESPONSE_MAX,
			     .client_cert = dw.cert,
			     .client_key = dw.key,
			     .ca_file = dw.ca,
			     .pinned_pubkey = j->pins.data};
	if ((err = httpc_send(&rq, on_sent, j)))
		snprintf(why, WHY_MAX, "cannot send: %s", egov_err_name(err));
out:
	buf_release(&canon);
	if (cf)
		exchange_conf_put(cf);
	return err;
}

/* Checks the answer of a push; EGOV_OK with *why empty means delivered. */
static void check_answer(job *j, exchange_conf *cf, char why[WHY_MAX])
{
	const httpc_response *rs = &j->resp;
	const char *sig, *signer, *at, *id;
	const exchange_cert *sc, *mine;
	char body_sha[65];
	buf canon;

	why[0] = '\0';
	if (rs->err) {
		snprintf(why, WHY_MAX, "%s: %.300s", egov_err_name(rs->err), rs->errmsg);
		return;
	}
	if (!cf) {
		snprintf(why, WHY_MAX, "no valid global configuration to check the answer");
		return;
	}
	sig = httpc_header(rs, "x-egov-signature");
	signer = httpc_header(rs, "x-egov-signer-cert");
	at = httpc_header(rs, "x-egov-signed-at");
	id = httpc_header(rs, "x-road-id");
	if (!sig || !signer || !at || !id || strcmp(id, j->msg_id) != 0) {
		snprintf(why, WHY_MAX, "unsigned answer %d", rs->status);
		return;
	}
	if (!(sc = exchange_conf_cert(cf, j->d.subscriber, "sign", signer))) {
		snprintf(why, WHY_MAX, "answer signed by a certificate not in the configuration");
		return;
	}
	crypto_sha256_hex(rs->body.data ? rs->body.data : "", rs->body.len, body_sha);
	buf_init(&canon, 16 * 1024);
	if (exchange_canon_response(&(exchange_canon_resp){.message_id = j->msg_id,
							   .service = j->service,
							   .content_type = rs->content_type,
							   .request_sig = j->sig,
							   .signed_at = at,
							   .body_sha256 = body_sha,
							   .status = rs->status},
				    &canon) ||
	    exchange_verify(sc->pem, canon.data, canon.len, sig)) {
		buf_release(&canon);
		snprintf(why, WHY_MAX, "the answer's signature does not verify");
		return;
	}
	buf_release(&canon);
	/* Logged before it counts as delivered: what the log holds is what
	 * the outbox may rely on. */
	mine = exchange_conf_cert(cf, j->d.ev.provider, "sign", j->cert_sha);
	if (mine)
		exchange_log_cert(j->cert_sha, mine->pem);
	exchange_log_cert(signer, sc->pem);
	if (exchange_log_append(&(exchange_log_rec){.side = "consumer",
						    .message_id = j->msg_id,
						    .client = j->d.ev.provider,
						    .service = j->service,
						    .method = "POST",
						    .path = j->path,
						    .represented_party = "",
						    .data_subject = "",
						    .purpose = "",
						    .status = rs->status,
						    .request_sig = j->sig,
						    .request_signer_cert = j->cert_sha,
						    .request_body_sha256 = j->body_sha,
						    .request_body = j->body.data,
						    .request_body_len = j->body.len,
						    .response_sig = sig,
						    .response_signer_cert = signer,
						    .response_body_sha256 = body_sha,
						    .response_body = rs->body.data ? rs->body.data : "",
						    .response_body_len = rs->body.len,
						    .request_signed_at = j->signed_at,
						    .response_signed_at = at,
						    .request_content_type = "application/json",
						    .response_content_type = rs->content_type})) {
		snprintf(why, WHY_MAX, "cannot log the exchange");
		return;
	}
	if (rs->status < 200 || rs->status > 299)
		snprintf(why, WHY_MAX, "subscriber answered %d", rs->status);
}

static void finish(db_conn *c, job *j)
{
	char why[WHY_MAX];
	exchange_conf *cf = exchange_conf_get(NULL);

	check_answer(j, cf, why);
	if (cf)
		exchange_conf_put(cf);
	if (why[0]) {
		retry_later(c, &j->d, why);
	} else if (pubsub_outbox_delivered(c, j->d.sub_id, j->d.ev.seq)) {
		log_warn("exchange.pubsub", "cannot record the delivery of %s: %s", j->d.ev.id, db_conn_errmsg(c));
	} else {
		atomic_fetch_add(&m_delivered, 1);
		log_info("exchange.pubsub", "event %s delivered to %s (attempt %d)", j->d.ev.id, j->d.subscriber,
			 j->d.attempts);
	}
}

/* One pass: outcomes first (they free room), then expiry, then new sends. */
static egov_err pass(db_conn *c, int64_t *next_expire_us, int64_t *next_purge_us)
{
	pubsub_delivery claimed[INFLIGHT_MAX];
	int64_t now = time_now_us();
	char why[WHY_MAX];
	job *list, *j;
	int n = 0, i, room;
	egov_err err = EGOV_OK;

	pthread_mutex_lock(&dw.mu);
	list = dw.done;
	dw.done = NULL;
	pthread_mutex_unlock(&dw.mu);
	while ((j = list)) {
		list = j->next;
		finish(c, j);
		job_free(j);
		pthread_mutex_lock(&dw.mu);
		dw.inflight--;
		pthread_mutex_unlock(&dw.mu);
	}
	if (now >= *next_expire_us) {
		if ((err = pubsub_outbox_expire(c, now, NULL)))
			return err;
		*next_expire_us = now + 1000000;
	}
	/* Every delivery ends within the longest TTL: older events go. */
	if (now >= *next_purge_us) {
		if ((err = pubsub_purge(c, now - (int64_t)(PUBSUB_TTL_MAX + 86400) * 1000000, NULL)))
			return err;
		*next_purge_us = now + (int64_t)3600 * 1000000;
	}
	pthread_mutex_lock(&dw.mu);
	room = INFLIGHT_MAX - dw.inflight;
	pthread_mutex_unlock(&dw.mu);
	if (room <= 0)
		return EGOV_OK;
	if ((err = pubsub_outbox_claim(c, now, (int64_t)(dw.timeout_ms + LEASE_MARGIN_MS) * 1000, room, claimed, &n)))
		return err;
	for (i = 0; i < n; i++) {
		if (!(j = calloc(1, sizeof *j))) {
			retry_later(c, &claimed[i], "out of memory");
			pubsub_delivery_release(&claimed[i]);
			continue;
		}
		j->d = claimed[i];
		pthread_mutex_lock(&dw.mu);
		dw.inflight++;
		pthread_mutex_unlock(&dw.mu);
		if (send_one(j, why)) {
			retry_later(c, &j->d, why);
			job_free(j);
			pthread_mutex_lock(&dw.mu);
			dw.inflight--;
			pthread_mutex_unlock(&dw.mu);
		}
	}
	return EGOV_OK;
}

static void *run(void *arg)
{
	db_conn *c = NULL;
	int64_t next_expire = 0, next_purge = 0, recovered = 0;
	bool failing = false, recovered_once = false;
	struct timespec until;

	(void)arg;
	pthread_mutex_lock(&dw.mu);
	while (!dw.stop) {
		egov_err err;
		pthread_mutex_unlock(&dw.mu);
		if (!c && db_conn_open(dw.d, &c))
			c = NULL;
		err = c ? EGOV_OK : EGOV_EUNAVAILABLE;
		/* Leases held when this process started belong to sends that
		 * died with the previous one: due again now. */
		if (!err && !recovered_once && !(err = pubsub_outbox_recover(c, time_now_us(), &recovered))) {
			recovered_once = true;
			if (recovered)
				log_info("exchange.pubsub", "%lld push(es) in flight at the last stop will be sent again",
					 (long long)recovered);
		}
		if (!err)
			err = pass(c, &next_expire, &next_purge);
		if (err && !failing)
			log_warn("exchange.pubsub", "cannot read the outbox: %s", c ? db_conn_errmsg(c) : "no connection");
		failing = err != EGOV_OK;
		if (err && c) {
			db_conn_close(c);
			c = NULL;
		}
		pthread_mutex_lock(&dw.mu);
		if (!dw.wake && !dw.done && !dw.stop) {
			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_sec += dw.poll_ms / 1000;
			until.tv_nsec += (long)(dw.poll_ms % 1000) * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			while (!dw.stop && !dw.wake && !dw.done &&
			       pthread_cond_timedwait(&dw.cond, &dw.mu, &until) == 0) {
			}
		}
		dw.wake = false;
	}
	pthread_mutex_unlock(&dw.mu);
	if (c)
		db_conn_close(c);
	return NULL;
}

egov_err pubsub_delivery_start(db *d, const egov_config *cfg)
{
	char ca[4096];
	pthread_condattr_t attr;
	egov_err err = EGOV_OK;

	pthread_mutex_lock(&dw.mu);
	if (dw.running) {
		err = EGOV_ECONFLICT;
		goto out;
	}
	peer_ca(cfg, ca, sizeof ca);
	dw.cert = strdup(cfg->peer_tls_cert ? cfg->peer_tls_cert : "");
	dw.key = strdup(cfg->peer_tls_key ? cfg->peer_tls_key : "");
	dw.ca = strdup(ca);
	if (!dw.cert || !dw.key || !dw.ca) {
		err = EGOV_ENOMEM;
		goto out;
	}
	dw.metrics_added = true; /* on /metrics from now on */
	dw.d = d;
	dw.retry_ms = exchange_settings(cfg)->retry_ms;
	dw.retry_max_s = exchange_settings(cfg)->retry_max_s;
	dw.timeout_ms = exchange_settings(cfg)->backend_timeout_ms + 5000;
	/* Polls often enough to keep the first redelivery on time. */
	dw.poll_ms = exchange_settings(cfg)->retry_ms < 1000 ? (exchange_settings(cfg)->retry_ms > 20 ? exchange_settings(cfg)->retry_ms : 20) : 1000;
	dw.stop = dw.wake = false;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&dw.cond, &attr);
	pthread_condattr_destroy(&attr);
	if (pthread_create(&dw.thread, NULL, run, NULL) != 0) {
		pthread_cond_destroy(&dw.cond);
		err = EGOV_EINTERNAL;
		goto out;
	}
	dw.running = true;
	log_info("exchange.pubsub", "push delivery started (retry %d ms, at most %d s)", dw.retry_ms, dw.retry_max_s);
out:
	if (err && !dw.running) {
		free(dw.cert);
		free(dw.key);
		free(dw.ca);
		dw.cert = dw.key = dw.ca = NULL;
	}
	pthread_mutex_unlock(&dw.mu);
	return err;
}

void pubsub_delivery_stop(void)
{
	job *j;

	pthread_mutex_lock(&dw.mu);
	if (!dw.running) {
		pthread_mutex_unlock(&dw.mu);
		return;
	}
	dw.stop = true;
	pthread_cond_signal(&dw.cond);
	pthread_mutex_unlock(&dw.mu);
	pthread_join(dw.thread, NULL);
	/* Completions the thread did not take; sends still in flight are
	 * dropped by on_sent once httpc stops. Their rows stay leased and
	 * are sent again after the restart. */
	pthread_mutex_lock(&dw.mu);
	while ((j = dw.done)) {
		dw.done = j->next;
		job_free(j);
	}
	pthread_cond_destroy(&dw.cond);
	free(dw.cert);
	free(dw.key);
	free(dw.ca);
	dw.cert = dw.key = dw.ca = NULL;
	dw.running = false;
	pthread_mutex_unlock(&dw.mu);
}

void pubsub_delivery_wake(void)
{
	pthread_mutex_lock(&dw.mu);
	if (dw.running) {
		dw.wake = true;
		pthread_cond_signal(&dw.cond);
	}
	pthread_mutex_unlock(&dw.mu);
}

/* ---- subscriber side: receiving a push ---------------------------------------------- */

typedef struct push {
	req *r;
	exchange_conf *cf;
	char client[EXCHANGE_ID_MAX];
	char subscriber[EXCHANGE_ID_MAX];
	char service[EXCHANGE_ID_MAX + 8];
	char path[PUBSUB_NAME_MAX + PUBSUB_EVENT_ID_MAX + 4];
	char msg_id[PUBSUB_EVENT_ID_MAX + 1];
	char req_sig[128], req_signer[65], req_at[64], req_sha[65];
	char resp_sig[128], resp_signer[65], resp_at[32], resp_sha[65];
	char resp_ctype[128];
	int status;
	buf resp_body;
	const char *problem_code;
	const void *body;
	size_t len;
	int64_t t0;
} push;

static void push_free(push *p)
{
	if (!p)
		return;
	if (p->cf)
		exchange_conf_put(p->cf);
	buf_release(&p->resp_body);
	free(p);
}

static void refuse_audit(req *r, const char *client, const char *object, const char *code)
{
	char details[160];

	snprintf(details, sizeof details, "{\"code\":\"%s\"}", code);
	if (audit_available() &&
	    audit_append(client && *client ? client : "peer", "exchange.pubsub.push_refused",
			 object && *object ? object : "push", details, NULL))
		log_warn("exchange.pubsub", "cannot audit a refused push (%s)", code);
	(void)r;
}

static void push_answer(void *ctx, egov_err err)
{
	push *p = ctx;
	buf b;

	if (err == EGOV_ECONFLICT) {
		resp_problem(p->r, 409, "exchange.replay", NULL, NULL);
	} else if (err) {
		resp_problem(p->r, 503, "unavailable", NULL, NULL);
	} else {
		resp_header(p->r, "X-Road-Id", p->msg_id);
		resp_header(p->r, "X-Egov-Signed-At", p->resp_at);
		resp_header(p->r, "X-Egov-Signer-Cert", p->resp_signer);
		resp_header(p->r, "X-Egov-Signature", p->resp_sig);
		b = p->resp_body;
		buf_init(&p->resp_body, RESPONSE_MAX);
		resp_buf(p->r, p->status, p->resp_ctype[0] ? p->resp_ctype : NULL, &b);
		buf_release(&b);
	}
	req_resume(p->r);
	push_free(p);
}

/* An answer of our own (the back-end could not be reached), signed and
 * logged like a back-end's. */
static void own_problem(push *p, int status, const char *code)
{
	char key[96], type[96];
	jw w;

	snprintf(key, sizeof key, "problem.%s", code);
	snprintf(type, sizeof type, "urn:egov:problem:%s", code);
	buf_reset(&p->resp_body);
	jw_init(&w, &p->resp_body);
	jw_obj_begin(&w);
	jw_kstr(&w, "type", type);
	jw_kstr(&w, "title", i18n_text("en", key));
	jw_kint(&w, "status", status);
	jw_kstr(&w, "code", code);
	jw_obj_end(&w);
	p->status = status;
	snprintf(p->resp_ctype, sizeof p->resp_ctype, "application/problem+json");
}

static void on_backend(void *ctx, httpc_response *rs)
{
	push *p = ctx;
	buf canon;
	exchange_log_rec rec;
	egov_err err;

	if (rs->err) {
		log_info("exchange.pubsub", "push %s for %s: back-end %s", p->msg_id, p->subscriber, rs->errmsg);
		own_problem(p, rs->err == EGOV_EBUSY ? 504 : 502,
			    rs->err == EGOV_EBUSY ? "exchange.backend_timeout" : "exchange.backend_unavailable");
	} else {
		buf_reset(&p->resp_body);
		if (rs->body.len && buf_add(&p->resp_body, rs->body.data, rs->body.len)) {
			own_problem(p, 502, "exchange.backend_unavailable");
		} else {
			p->status = rs->status;
			snprintf(p->resp_ctype, sizeof p->resp_ctype, "%s", rs->content_type);
		}
	}
	crypto_sha256_hex(p->resp_body.data ? p->resp_body.data : "", p->resp_body.len, p->resp_sha);
	time_format_rfc3339(time_now_us(), 3, p->resp_at);
	buf_init(&canon, 16 * 1024);
	err = exchange_canon_response(&(exchange_canon_resp){.message_id = p->msg_id,
							     .service = p->service,
							     .content_type = p->resp_ctype,
							     .request_sig = p->req_sig,
							     .signed_at = p->resp_at,
							     .body_sha256 = p->resp_sha,
							     .status = p->status},
				      &canon);
	if (!err)
		err = exchange_sign(p->subscriber, canon.data, canon.len, p->resp_sig, p->resp_signer);
	buf_release(&canon);
	if (!err) {
		/* The log keeps the certificates behind both signatures. */
		const exchange_cert *mine = exchange_conf_cert(p->cf, p->subscriber, "sign", p->resp_signer);
		if (mine)
			exchange_log_cert(p->resp_signer, mine->pem);
	}
	if (err) {
		resp_problem(p->r, 500, "internal", NULL, NULL);
		req_resume(p->r);
		push_free(p);
		return;
	}
	rec = (exchange_log_rec){.side = "provider",
				 .message_id = p->msg_id,
				 .client = p->client,
				 .service = p->service,
				 .method = "POST",
				 .path = p->path,
				 .represented_party = "",
				 .data_subject = "",
				 .purpose = "",
				 .status = p->status,
				 .request_sig = p->req_sig,
				 .request_signer_cert = p->req_signer,
				 .request_body_sha256 = p->req_sha,
				 .request_body = p->body,
				 .request_body_len = p->len,
				 .response_sig = p->resp_sig,
				 .response_signer_cert = p->resp_signer,
				 .response_body_sha256 = p->resp_sha,
				 .response_body = p->resp_body.data ? p->resp_body.data : "",
				 .response_body_len = p->resp_body.len,
				 .request_signed_at = p->req_at,
				 .response_signed_at = p->resp_at,
				 .request_content_type = "application/json",
				 .response_content_type = p->resp_ctype};
	if ((err = exchange_log_append_async(&rec, push_answer, p)))
		push_answer(p, err);
}

egov_err pubsub_push_receive(req *r)
{
	const egov_config *cfg = exchange_cfg();
	const char *rest = req_param(r, "rest"), *why = NULL, *code = NULL;
	const char *client, *msg_id, *at, *signer, *sig, *ctype;
	const exchange_cert *sc;
	char et_id[EXCHANGE_ID_MAX + PUBSUB_NAME_MAX + 2], et[PUBSUB_NAME_MAX + 1], ev[PUBSUB_EVENT_ID_MAX + 1];
	char hdr[3][PUBSUB_URL_MAX + 64], *url = NULL;
	const char *slash1, *slash2;
	const void *der;
	size_t derlen = 0, n;
	int64_t now = time_now_us(), signed_us = 0;
	int status = 401;
	db_conn *c = NULL;
	httpc_request rq;
	push *p = NULL;
	buf canon;
	egov_err err = EGOV_OK;

	buf_init(&canon, 16 * 1024);
	if (!(p = calloc(1, sizeof *p))) {
		err = EGOV_ENOMEM;
		goto out;
	}
	buf_init(&p->resp_body, RESPONSE_MAX);
	p->r = r;
	p->t0 = now;
	p->body = req_body(r, &p->len);
	if (!p->body)
		p->body = "";
	/* {subscriber: 4 parts}/{eventType}/{eventId} */
	slash2 = rest ? strrchr(rest, '/') : NULL;
	slash1 = slash2 && slash2 > rest ? slash2 - 1 : NULL;
	while (slash1 && slash1 > rest && *slash1 != '/')
		slash1--;
	if (!slash1 || *slash1 != '/' || (size_t)(slash1 - rest) >= sizeof p->subscriber ||
	    (size_t)(slash2 - slash1 - 1) > PUBSUB_NAME_MAX || strlen(slash2 + 1) > PUBSUB_EVENT_ID_MAX) {
		status = 404;
		code = "not_found";
		goto refuse;
	}
	snprintf(p->subscriber, sizeof p->subscriber, "%.*s", (int)(slash1 - rest), rest);
	snprintf(et, sizeof et, "%.*s", (int)(slash2 - slash1 - 1), slash1 + 1);
	snprintf(ev, sizeof ev, "%s", slash2 + 1);
	if (!exchange_id_valid(p->subscriber, EXCHANGE_ID_SUBSYSTEM) || !pubsub_name_valid(et) ||
	    !pubsub_event_id_valid(ev)) {
		status = 404;
		code = "not_found";
		goto refuse;
	}
	if (!(p->cf = exchange_conf_get(&why))) {
		status = 503;
		code = why ? why : "exchange.conf_missing";
		goto refuse;
	}
	if (exchange_log_sealing_overdue()) {
		status = 503;
		code = "exchange.timestamping_overdue";
		goto refuse;
	}
	if (!exchange_conf_subsystem(p->cf, p->subscriber) || !exchange_has_key(p->subscriber)) {
		status = 404;
		code = "exchange.unknown_subsystem";
		goto refuse;
	}
	client = req_header(r, "X-Road-Client");
	msg_id = req_header(r, "X-Road-Id");
	at = req_header(r, "X-Egov-Signed-At");
	signer = req_header(r, "X-Egov-Signer-Cert");
	sig = req_header(r, "X-Egov-Signature");
	ctype = req_header(r, "Content-Type");
	code = "exchange.signature_invalid";
	if (!client || !exchange_id_valid(client, EXCHANGE_ID_SUBSYSTEM) || !msg_id || !pubsub_event_id_valid(msg_id) ||
	    !at || strlen(at) >= sizeof p->req_at || !signer || strlen(signer) != 64 || !sig ||
	    strlen(sig) >= sizeof p->req_sig)
		goto refuse;
	snprintf(p->client, sizeof p->client, "%s", client);
	snprintf(p->msg_id, sizeof p->msg_id, "%s", msg_id);
	snprintf(p->req_at, sizeof p->req_at, "%s", at);
	snprintf(p->req_signer, sizeof p->req_signer, "%s", signer);
	snprintf(p->req_sig, sizeof p->req_sig, "%s", sig);
	snprintf(p->service, sizeof p->service, "%s/push", p->subscriber);
	snprintf(p->path, sizeof p->path, "/%s/%s", et, ev);
	/* The TLS peer must be a gateway of the sender, the signer its
	 * signing certificate, both in the configuration in force. */
	der = req_client_cert(r, &derlen);
	if (!req_is_peer(r) || !cert_of(p->cf, client, "tls", der, derlen))
		goto refuse;
	if (!(sc = exchange_conf_cert(p->cf, client, "sign", signer)))
		goto refuse;
	crypto_sha256_hex(p->body, p->len, p->req_sha);
	if (exchange_canon_request(&(exchange_canon_req){.message_id = msg_id,
							 .client = client,
							 .service = p->service,
							 .method = "POST",
							 .path = p->path,
							 .content_type = ctype ? ctype : "",
							 .represented_party = "",
							 .data_subject = "",
							 .purpose = "",
							 .signed_at = at,
							 .body_sha256 = p->req_sha},
				   &canon) ||
	    exchange_verify(sc->pem, canon.data, canon.len, sig))
		goto refuse;
	if (!ctype || strncmp(ctype, "application/json", 16) != 0) {
		status = 415;
		code = "unsupported_media_type";
		goto refuse;
	}
	if (time_parse_rfc3339(at, &signed_us) ||
	    llabs(signed_us - now) > (int64_t)exchange_settings(cfg)->clock_skew_s * 1000000) {
		code = "exchange.signature_invalid";
		goto refuse;
	}
	/* Only pushes for what this subsystem subscribed to through this
	 * gateway (or an operator configured) go anywhere, and only to the
	 * URL recorded here. */
	n = (size_t)snprintf(et_id, sizeof et_id, "%s/%s", client, et);
	if (n >= sizeof et_id || (err = db_thread_conn(exchange_db(), &c)))
		goto out;
	err = pubsub_push_url_get(c, p->subscriber, et_id, &url);
	if (err == EGOV_ENOTFOUND) {
		err = EGOV_OK;
		status = 404;
		code = "pubsub.push_unknown";
		goto refuse;
	}
	if (err)
		goto out;
	/* The gateway's one replay window (reloaded from the message log at
	 * start, where received pushes are logged on the provider side). */
	switch (exchange_replay_seen(client, msg_id, now, now + 2 * (int64_t)exchange_settings(cfg)->clock_skew_s * 1000000)) {
	case 1:
		status = 409;
		code = "exchange.replay";
		goto refuse;
	case -1:
		err = EGOV_EBUSY;
		goto out;
	default:
		break;
	}
	exchange_log_cert(signer, sc->pem);
	atomic_fetch_add(&m_received, 1);
	snprintf(hdr[0], sizeof hdr[0], "X-Road-Id: %s", ev);
	snprintf(hdr[1], sizeof hdr[1], "X-Road-Client: %s", client);
	snprintf(hdr[2], sizeof hdr[2], "Content-Type: application/json");
	rq = (httpc_request){.method = "POST",
			     .url = url,
			     .headers = {hdr[0], hdr[1], hdr[2], NULL},
			     .body = p->body,
			     .body_len = p->len,
			     .timeout_ms = exchange_settings(cfg)->backend_timeout_ms,
			     .response_max = RESPONSE_MAX};
	req_defer(r);
	if ((err = httpc_send(&rq, on_backend, p))) {
		/* Answered like an unreachable back-end, signed and logged. */
		httpc_response rs = {.err = EGOV_EUNAVAILABLE};
		buf_init(&rs.body, 1);
		buf_init(&rs.headers, 1);
		snprintf(rs.errmsg, sizeof rs.errmsg, "cannot send: %s", egov_err_name(err));
		on_backend(p, &rs);
		httpc_response_release(&rs);
		err = EGOV_OK;
	}
	p = NULL;
	goto out;
refuse:
	if (status == 401 || status == 409 || (code && !strcmp(code, "pubsub.push_unknown")))
		refuse_audit(r, p && p->client[0] ? p->client : NULL, p ? p->subscriber : NULL, code);
	err = resp_problem(r, status, code, NULL, NULL);
out:
	free(url);
	buf_release(&canon);
	push_free(p);
	return err;
}
