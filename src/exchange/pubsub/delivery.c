/*
 * delivery.c: push delivery on the provider side: a job that claims due
 * outbox rows (through the kernel's lease helper, outbox.c) and sends each
 * as a signed exchange (docs/exchange.md, "Publish / subscribe"): client =
 * the provider subsystem, service = SUBSCRIBER/push, POST
 * /{eventType}/{eventId}, body the EventItem, a fresh message id per
 * attempt, over mutual TLS to the subscriber's gateway named in the global
 * configuration and pinned by its TLS keys there.
 *
 * Sends go through httpc (no thread waits on a subscriber); each
 * completion is queued for the job and wakes it, and the next pass checks
 * the answer's signature against the configuration (conf/signed.c, the
 * rule a consumer gateway applies to a response), logs the exchange, and
 * records delivered (a signed 2xx) or the next attempt (back-off).
 *
 * The state below is the room's: set by pubsub_delivery_start() (the
 * gateway's start), read by the job's passes, and cleared by
 * pubsub_delivery_stop() after the job stopped; completions that arrive
 * after that are dropped, and their rows, still leased, are sent again
 * after a restart (at least once).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/httpc.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "exchange/conf/conf.h"
#include "exchange/keys/keys.h"
#include "exchange/log/exlog.h"
#include "exchange/pubsub/pubsub_int.h"
#include "core/banned.h"

/* Slack beyond the exchange timeout before a lease runs out. */
#define LEASE_MARGIN_MS 30000
/* What a push waits for the subscriber's gateway beyond the back-end
 * timeout: the subscriber answers a slow back-end itself first. */
#define PUSH_MARGIN_MS 5000
/* Expiry and retention run at most this often. */
#define EXPIRE_EVERY_US (1000LL * 1000)
#define PURGE_EVERY_US (3600LL * 1000 * 1000)

/* Operational figures for /metrics (no database access on a scrape). */
static atomic_uint_fast64_t m_delivered, m_retried, m_received;
static atomic_bool m_on;

typedef struct push {
	struct push *next;
	pubsub_delivery d;
	char msg_id[37];
	char service[EXCHANGE_ID_MAX + 8];
	char path[PUBSUB_NAME_MAX + PUBSUB_EVENT_ID_MAX + 4];
	char signed_at[EXCHANGE_SIGNED_AT_MAX];
	char sig[EXCHANGE_SIG_MAX];
	char cert_sha[65];
	char body_sha[65];
	buf body;
	httpc_response resp;
} push;

static struct {
	pthread_mutex_t mu;
	bool ready;      /* between start and stop */
	push *done;      /* completed sends, for the next pass */
	int inflight;
	int retry_ms, retry_max_s, timeout_ms, poll_ms;
	/* the job's own */
	int64_t next_expire_us, next_purge_us;
	bool recovered;
} dw = {.mu = PTHREAD_MUTEX_INITIALIZER};

egov_err pubsub_push_metrics(buf *out)
{
	egov_err err;

	if (!atomic_load(&m_on))
		return EGOV_OK;
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

void pubsub_push_received(void)
{
	atomic_fetch_add(&m_received, 1);
}

static void push_free(push *p)
{
	if (!p)
		return;
	pubsub_delivery_release(&p->d);
	buf_release(&p->body);
	httpc_response_release(&p->resp);
	free(p);
}

static void inflight_add(int n)
{
	pthread_mutex_lock(&dw.mu);
	dw.inflight += n;
	pthread_mutex_unlock(&dw.mu);
}

/* On httpc's thread: queue the completion for the job. */
static void on_sent(void *ctx, httpc_response *resp)
{
	push *p = ctx;

	/* Moved whole: the job reads it; httpc releases the empty rest. */
	p->resp = *resp;
	memset(resp, 0, sizeof *resp);
	pthread_mutex_lock(&dw.mu);
	if (!dw.ready) {
		pthread_mutex_unlock(&dw.mu);
		push_free(p);
		return;
	}
	p->next = dw.done;
	dw.done = p;
	pthread_mutex_unlock(&dw.mu);
	job_wake(&pubsub_delivery_job);
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
static egov_err send_one(push *p, char why[PUBSUB_WHY_MAX])
{
	const exchange_peer_tls *tls = exchange_peer_tls_get();
	const pubsub_delivery *d = &p->d;
	const exchange_subsystem *sub;
	exchange_conf *cf = NULL;
	const char *cause = NULL;
	char url[EXCHANGE_ID_MAX * 2 + 256 + PUBSUB_EVENT_ID_MAX], hdr[6][EXCHANGE_ID_MAX + 160];
	httpc_request rq = {0};
	buf canon;
	jw w;
	egov_err err;

	buf_init(&canon, 16 * 1024);
	buf_init(&p->body, PUBSUB_EVENT_MAX + 64 * 1024);
	if (!(cf = exchange_conf_get(&cause))) {
		snprintf(why, PUBSUB_WHY_MAX, "%s", cause ? cause : "exchange.conf_missing");
		err = EGOV_EUNAVAILABLE;
		goto out;
	}
	if (!(sub = exchange_conf_subsystem(cf, d->subscriber)) || !sub->gateway_url || !*sub->gateway_url) {
		snprintf(why, PUBSUB_WHY_MAX, "subscriber %s is not in the global configuration", d->subscriber);
		err = EGOV_ENOTFOUND;
		goto out;
	}
	if (!sub->tls_pins) {
		snprintf(why, PUBSUB_WHY_MAX, "no TLS certificate of %s in the global configuration", d->subscriber);
		err = EGOV_ENOTFOUND;
		goto out;
	}
	jw_init(&w, &p->body);
	pubsub_event_json(&w, &d->ev, false);
	if ((err = w.err) || (err = uuid_v7(p->msg_id))) {
		snprintf(why, PUBSUB_WHY_MAX, "cannot build the push: %s", egov_err_name(err));
		goto out;
	}
	crypto_sha256_hex(p->body.data, p->body.len, p->body_sha);
	snprintf(p->service, sizeof p->service, "%s/push", d->subscriber);
	snprintf(p->path, sizeof p->path, "/%s/%s", d->ev.event_type, d->ev.id);
	time_format_rfc3339(time_now_us(), 3, p->signed_at);
	if ((err = exchange_canon_request(&(exchange_canon_req){.message_id = p->msg_id,
								.client = d->ev.provider,
								.service = p->service,
								.method = "POST",
								.path = p->path,
								.content_type = "application/json",
								.represented_party = "",
								.data_subject = "",
								.purpose = "",
								.signed_at = p->signed_at,
								.body_sha256 = p->body_sha},
					  &canon)) ||
	    (err = exchange_sign(d->ev.provider, canon.data, canon.len, p->sig, p->cert_sha))) {
		snprintf(why, PUBSUB_WHY_MAX, "cannot sign as %s: %s", d->ev.provider, egov_err_name(err));
		goto out;
	}
	snprintf(url, sizeof url, "%s/peer/v1/push/%s%s", sub->gateway_url, d->subscriber, p->path);
	snprintf(hdr[0], sizeof hdr[0], "X-Road-Client: %s", d->ev.provider);
	snprintf(hdr[1], sizeof hdr[1], "X-Road-Id: %s", p->msg_id);
	snprintf(hdr[2], sizeof hdr[2], "X-Egov-Signed-At: %s", p->signed_at);
	snprintf(hdr[3], sizeof hdr[3], "X-Egov-Signer-Cert: %s", p->cert_sha);
	snprintf(hdr[4], sizeof hdr[4], "X-Egov-Signature: %s", p->sig);
	snprintf(hdr[5], sizeof hdr[5], "Content-Type: application/json");
	rq = (httpc_request){.method = "POST",
			     .url = url,
			     .headers = {hdr[0], hdr[1], hdr[2], hdr[3], hdr[4], hdr[5], NULL},
			     .body = p->body.data,
			     .body_len = p->body.len,
			     .timeout_ms = dw.timeout_ms,
			     .response_max = PUBSUB_RESPONSE_MAX,
			     .client_cert = tls->cert,
			     .client_key = tls->key,
			     .ca_file = tls->ca[0] ? tls->ca : NULL,
			     .pinned_pubkey = sub->tls_pins};
	if ((err = httpc_send(&rq, on_sent, p)))
		snprintf(why, PUBSUB_WHY_MAX, "cannot send: %s", egov_err_name(err));
out:
	buf_release(&canon);
	exchange_conf_put(cf);
	return err;
}

/* Checks the answer of a push; *why empty means delivered. */
static void check_answer(push *p, const exchange_conf *cf, char why[PUBSUB_WHY_MAX])
{
	const httpc_response *rs = &p->resp;
	const exchange_cert *sc, *mine;
	const char *reason = NULL;
	char body_sha[65];
	exchange_answer a;

	why[0] = '\0';
	if (rs->err) {
		snprintf(why, PUBSUB_WHY_MAX, "%s: %.300s", egov_err_name(rs->err), rs->errmsg);
		return;
	}
	if (!cf) {
		snprintf(why, PUBSUB_WHY_MAX, "no valid global configuration to check the answer");
		return;
	}
	crypto_sha256_hex(rs->body.data ? rs->body.data : "", rs->body.len, body_sha);
	a = (exchange_answer){.message_id = httpc_header(rs, "x-road-id"),
			      .signed_at = httpc_header(rs, "x-egov-signed-at"),
			      .signer_cert = httpc_header(rs, "x-egov-signer-cert"),
			      .sig = httpc_header(rs, "x-egov-signature"),
			      .status = rs->status,
			      .content_type = rs->content_type,
			      .body_sha256 = body_sha};
	if (exchange_conf_verify_answer(cf, p->d.subscriber, p->service, p->msg_id, p->sig, &a, &sc, &reason)) {
		snprintf(why, PUBSUB_WHY_MAX, "answer %d: %s", rs->status, reason);
		return;
	}
	/* Logged before it counts as delivered: what the log holds is what
	 * the outbox may rely on. */
	if ((mine = exchange_conf_cert(cf, p->d.ev.provider, "sign", p->cert_sha)))
		exchange_log_cert(p->cert_sha, mine->pem);
	exchange_log_cert(a.signer_cert, sc->pem);
	if (exchange_log_append(&(exchange_log_rec){.side = "consumer",
						    .message_id = p->msg_id,
						    .client = p->d.ev.provider,
						    .service = p->service,
						    .method = "POST",
						    .path = p->path,
						    .represented_party = "",
						    .data_subject = "",
						    .purpose = "",
						    .status = rs->status,
						    .request_sig = p->sig,
						    .request_signer_cert = p->cert_sha,
						    .request_body_sha256 = p->body_sha,
						    .request_body = p->body.data,
						    .request_body_len = p->body.len,
						    .response_sig = a.sig,
						    .response_signer_cert = a.signer_cert,
						    .response_body_sha256 = body_sha,
						    .response_body = rs->body.data ? rs->body.data : "",
						    .response_body_len = rs->body.len,
						    .request_signed_at = p->signed_at,
						    .response_signed_at = a.signed_at,
						    .request_content_type = "application/json",
						    .response_content_type = rs->content_type})) {
		snprintf(why, PUBSUB_WHY_MAX, "cannot log the exchange");
		return;
	}
	if (rs->status < 200 || rs->status > 299)
		snprintf(why, PUBSUB_WHY_MAX, "subscriber answered %d", rs->status);
}

static void finish(db_conn *c, push *p)
{
	char why[PUBSUB_WHY_MAX];
	exchange_conf *cf = exchange_conf_get(NULL);

	check_answer(p, cf, why);
	exchange_conf_put(cf);
	if (why[0]) {
		retry_later(c, &p->d, why);
	} else if (pubsub_outbox_delivered(c, p->d.sub_id, p->d.ev.seq)) {
		log_warn("exchange.pubsub", "cannot record the delivery of %s: %s", p->d.ev.id, db_conn_errmsg(c));
	} else {
		atomic_fetch_add(&m_delivered, 1);
		log_info("exchange.pubsub", "event %s delivered to %s (attempt %d)", p->d.ev.id, p->d.subscriber,
			 p->d.attempts);
	}
}

/* One pass: outcomes first (they free room), then expiry, then new sends. */
static egov_err pass(db_conn *c)
{
	pubsub_delivery claimed[PUBSUB_INFLIGHT_MAX];
	int64_t now = time_now_us();
	char why[PUBSUB_WHY_MAX];
	push *list, *p;
	int n = 0, i, room;
	egov_err err = EGOV_OK;

	pthread_mutex_lock(&dw.mu);
	list = dw.done;
	dw.done = NULL;
	pthread_mutex_unlock(&dw.mu);
	while ((p = list)) {
		list = p->next;
		finish(c, p);
		push_free(p);
		inflight_add(-1);
	}
	if (now >= dw.next_expire_us) {
		if ((err = pubsub_outbox_expire(c, now, NULL)))
			return err;
		dw.next_expire_us = now + EXPIRE_EVERY_US;
	}
	/* Every delivery ends within the longest TTL: older events go. */
	if (now >= dw.next_purge_us) {
		if ((err = pubsub_purge(c, now - (int64_t)(PUBSUB_TTL_MAX + 86400) * 1000000, NULL)))
			return err;
		dw.next_purge_us = now + PURGE_EVERY_US;
	}
	pthread_mutex_lock(&dw.mu);
	room = PUBSUB_INFLIGHT_MAX - dw.inflight;
	pthread_mutex_unlock(&dw.mu);
	if (room <= 0)
		return EGOV_OK;
	if ((err = pubsub_outbox_claim(c, now, (int64_t)(dw.timeout_ms + LEASE_MARGIN_MS) * 1000, room, claimed, &n)))
		return err;
	for (i = 0; i < n; i++) {
		if (!(p = calloc(1, sizeof *p))) {
			retry_later(c, &claimed[i], "out of memory");
			pubsub_delivery_release(&claimed[i]);
			continue;
		}
		p->d = claimed[i];
		inflight_add(1);
		if (send_one(p, why)) {
			retry_later(c, &p->d, why);
			push_free(p);
			inflight_add(-1);
		}
	}
	return EGOV_OK;
}

static int64_t delivery_pass(job_ctx *j)
{
	int64_t recovered = 0;
	db_conn *c;
	bool ready;
	egov_err err;

	pthread_mutex_lock(&dw.mu);
	ready = dw.ready;
	pthread_mutex_unlock(&dw.mu);
	if (!ready)
		return -1; /* not a gateway: until woken */
	if ((err = job_conn(j, &c))) {
		job_fail(j, err, "cannot read the outbox: no connection");
		return -1;
	}
	/* Leases held when this process started belong to sends that died
	 * with the previous one: due again now. */
	if (!dw.recovered) {
		if ((err = pubsub_outbox_recover(c, time_now_us(), &recovered))) {
			job_fail(j, err, "cannot read the outbox: %s", db_conn_errmsg(c));
			return -1;
		}
		dw.recovered = true;
		if (recovered)
			log_info("exchange.pubsub", "%lld push(es) in flight at the last stop will be sent again",
				 (long long)recovered);
	}
	if ((err = pass(c))) {
		job_fail(j, err, "cannot read the outbox: %s", db_conn_errmsg(c));
		return -1;
	}
	return dw.poll_ms;
}

const job pubsub_delivery_job = {.name = "exchange.pubsub", .run = delivery_pass};

egov_err pubsub_delivery_start(const egov_config *cfg)
{
	const exchange_config *xc = exchange_settings(cfg);

	pthread_mutex_lock(&dw.mu);
	dw.retry_ms = xc->retry_ms;
	dw.retry_max_s = xc->retry_max_s;
	dw.timeout_ms = xc->backend_timeout_ms + PUSH_MARGIN_MS;
	/* Polls often enough to keep the first redelivery on time. */
	dw.poll_ms = xc->retry_ms < 1000 ? (xc->retry_ms > 20 ? xc->retry_ms : 20) : 1000;
	dw.next_expire_us = dw.next_purge_us = 0;
	dw.recovered = false;
	dw.ready = true;
	pthread_mutex_unlock(&dw.mu);
	atomic_store(&m_on, true); /* on /metrics from now on */
	log_info("exchange.pubsub", "push delivery started (retry %d ms, at most %d s)", dw.retry_ms, dw.retry_max_s);
	return EGOV_OK;
}

void pubsub_delivery_stop(void)
{
	push *p;

	/* Completions the job did not take; sends still in flight are
	 * dropped by on_sent from now on. Their rows stay leased and are
	 * sent again after the restart. */
	pthread_mutex_lock(&dw.mu);
	dw.ready = false;
	while ((p = dw.done)) {
		dw.done = p->next;
		push_free(p);
	}
	dw.inflight = 0;
	pthread_mutex_unlock(&dw.mu);
}
