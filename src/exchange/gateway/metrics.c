/*
 * metrics.c: a gateway's operational figures for /metrics: calls, latency
 * and bytes by client, service and side; refusals by problem code. Labels
 * are configuration ids only (the gateway counts an exchange after it
 * found both in the configuration), and the table is capped, so a caller
 * cannot grow it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/metrics.h"
#include "exchange/gateway/gateway_int.h"
#include "core/banned.h"

/* ---- operational figures ------------------------------------------------------ */

/* Latency buckets (seconds): a gateway pair adds about a millisecond; a
 * back-end may take seconds. */
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

typedef struct series {
	char client[EXCHANGE_ID_MAX];
	char service[EXCHANGE_ID_MAX];
	int side;
	uint64_t calls;
	int status[EXCHANGE_STATUSES_MAX];
	uint64_t by_status[EXCHANGE_STATUSES_MAX];
	uint64_t hist[NBUCKETS];
	uint64_t lat_us;
	uint64_t bytes_req, bytes_resp;
} series;

static struct {
	pthread_mutex_t mu;
	series *v;    /* open addressing, EXCHANGE_SERIES_MAX * 2 slots, allocated on first use */
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
	size_t cap = EXCHANGE_SERIES_MAX * 2, i;

	if (!mx.v && !(mx.v = calloc(cap, sizeof *mx.v)))
		return &mx.other[side ? 1 : 0];
	for (i = (size_t)series_hash(client, service, side) & (cap - 1); mx.v[i].client[0]; i = (i + 1) & (cap - 1))
		if (mx.v[i].side == side && strcmp(mx.v[i].client, client) == 0 &&
		    strcmp(mx.v[i].service, service) == 0)
			return &mx.v[i];
	if (mx.n >= EXCHANGE_SERIES_MAX || strlen(client) >= EXCHANGE_ID_MAX || strlen(service) >= EXCHANGE_ID_MAX)
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
	for (i = 0; i < EXCHANGE_STATUSES_MAX - 1 && s->status[i] && s->status[i] != status; i++)
		;
	if (!s->status[i])
		s->status[i] = i == EXCHANGE_STATUSES_MAX - 1 ? -1 : status;
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
	char labels[3 * EXCHANGE_ID_MAX + 64];
	egov_err err = EGOV_OK;
	size_t i;

	if (!s->calls)
		return EGOV_OK;
	/* The series' labels, the same on every line. */
	snprintf(labels, sizeof labels, "client=\"%s\",service=\"%s\",side=\"%s\"", s->client[0] ? s->client : "other",
		 s->service[0] ? s->service : "other", s->side ? "provider" : "consumer");
	switch (what) {
	case 0:
		for (i = 0; i < EXCHANGE_STATUSES_MAX && s->status[i] && !err; i++) {
			char st[16];
			if (s->status[i] < 0)
				snprintf(st, sizeof st, "other");
			else
				snprintf(st, sizeof st, "%d", s->status[i]);
			err = buf_addf(out, "egov_exchange_calls_total{%s,status=\"%s\"} %llu\n", labels, st,
				       (unsigned long long)s->by_status[i]);
		}
		break;
	case 1:
		for (i = 0; i < NBUCKETS && !err; i++)
			err = buf_addf(out, "egov_exchange_latency_seconds_bucket{%s,le=\"%g\"} %llu\n", labels, buckets[i],
				       (unsigned long long)s->hist[i]);
		if (!err)
			err = buf_addf(out,
				       "egov_exchange_latency_seconds_bucket{%s,le=\"+Inf\"} %llu\n"
				       "egov_exchange_latency_seconds_sum{%s} %.6f\n"
				       "egov_exchange_latency_seconds_count{%s} %llu\n",
				       labels, (unsigned long long)s->calls, labels, (double)s->lat_us / 1e6, labels,
				       (unsigned long long)s->calls);
		break;
	default:
		err = buf_addf(out,
			       "egov_exchange_bytes_total{%s,direction=\"request\"} %llu\n"
			       "egov_exchange_bytes_total{%s,direction=\"response\"} %llu\n",
			       labels, (unsigned long long)s->bytes_req, labels, (unsigned long long)s->bytes_resp);
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
		for (i = 0; mx.v && i < EXCHANGE_SERIES_MAX * 2 && !err; i++)
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
