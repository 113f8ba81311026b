/*
 * metrics.c: lock-free counters per (slot, method, status) and a latency
 * histogram per slot. Writers use relaxed atomics: a scrape may see a
 * request in a counter before its histogram, which Prometheus tolerates.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"
#include "core/router.h"
#include "core/banned.h"

#define NMETHODS 7
static const int statuses[] = {200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404,
			       405, 406, 409, 410, 412, 413, 414, 415, 422, 428, 429, 431, 500, 502, 503, 504};
#define NSTATUS (sizeof statuses / sizeof statuses[0] + 1) /* + "other" */
static const double bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
				0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};
#define NBUCKETS (sizeof bounds / sizeof bounds[0])

typedef struct slot {
	_Atomic uint64_t count[NMETHODS][NSTATUS];
	_Atomic uint64_t bucket[NBUCKETS]; /* non-cumulative; summed when written */
	_Atomic uint64_t total;
	_Atomic uint64_t sum_us;
} slot;

static slot *slots;
static const char *const *slot_labels;
static size_t nslots;

egov_err metrics_init(const char *const *labels, size_t n)
{
	slots = calloc(n, sizeof *slots);
	if (!slots)
		return EGOV_ENOMEM;
	slot_labels = labels;
	nslots = n;
	return EGOV_OK;
}

void metrics_free(void)
{
	free(slots);
	slots = NULL;
	nslots = 0;
}

static size_t status_index(int status)
{
	size_t lo = 0, hi = NSTATUS - 1;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (statuses[mid] < status)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < NSTATUS - 1 && statuses[lo] == status ? lo : NSTATUS - 1;
}

static unsigned method_index(unsigned bit)
{
	unsigned i = 0;
	while (bit > 1 && i < NMETHODS - 1) {
		bit >>= 1;
		i++;
	}
	return i;
}

void metrics_http_observe(size_t s, unsigned method_bit, int status, int64_t dur_us)
{
	slot *sl;
	size_t b;
	double secs = (double)dur_us / 1e6;

	if (!slots || s >= nslots)
		return;
	sl = &slots[s];
	atomic_fetch_add_explicit(&sl->count[method_index(method_bit)][status_index(status)], 1,
				  memory_order_relaxed);
	for (b = 0; b < NBUCKETS && secs > bounds[b]; b++)
		;
	if (b < NBUCKETS)
		atomic_fetch_add_explicit(&sl->bucket[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&sl->total, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&sl->sum_us, (uint64_t)(dur_us > 0 ? dur_us : 0), memory_order_relaxed);
}

egov_err metrics_write_header(buf *out, const char *name, const char *type, const char *help)
{
	return buf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

egov_err metrics_http_write(buf *out)
{
	egov_err err;
	size_t s, m, st, b;

	err = metrics_write_header(out, "egov_http_requests_total", "counter",
				   "HTTP requests answered, by route pattern, method and status.");
	for (s = 0; !err && s < nslots; s++) {
		for (m = 0; m < NMETHODS; m++) {
			for (st = 0; st < NSTATUS; st++) {
				uint64_t v = atomic_load_explicit(&slots[s].count[m][st], memory_order_relaxed);
				if (!v)
					continue;
				if (st < NSTATUS - 1)
					err = buf_addf(out,
						       "egov_http_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} %llu\n",
						       slot_labels[s], http_method_name(1u << m), statuses[st],
						       (unsigned long long)v);
				else
					err = buf_addf(out,
						       "egov_http_requests_total{route=\"%s\",method=\"%s\",status=\"other\"} %llu\n",
						       slot_labels[s], http_method_name(1u << m), (unsigned long long)v);
				if (err)
					return err;
			}
		}
	}
	if (!err)
		err = metrics_write_header(out, "egov_http_request_duration_seconds", "histogram",
					   "Time from request line to response queued, by route pattern.");
	for (s = 0; !err && s < nslots; s++) {
		uint64_t total = atomic_load_explicit(&slots[s].total, memory_order_relaxed), cum = 0;
		if (!total)
			continue;
		for (b = 0; b < NBUCKETS && !err; b++) {
			cum += atomic_load_explicit(&slots[s].bucket[b], memory_order_relaxed);
			err = buf_addf(out, "egov_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
				       slot_labels[s], bounds[b], (unsigned long long)cum);
		}
		if (!err)
			err = buf_addf(out,
				       "egov_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
				       "egov_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
				       "egov_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
				       slot_labels[s], (unsigned long long)total, slot_labels[s],
				       (double)atomic_load_explicit(&slots[s].sum_us, memory_order_relaxed) / 1e6,
				       slot_labels[s], (unsigned long long)total);
	}
	return err;
}
