/*
 * metrics.h: request counters and latency histograms for /metrics, in the
 * Prometheus text exposition format (version 0.0.4).
 *
 * Slots are fixed at start (one per route, plus "static" and "unmatched"),
 * so observing a request is a few relaxed atomic adds and never allocates.
 */
#ifndef EGOV_CORE_METRICS_H
#define EGOV_CORE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

/* labels[i] names slot i (a route pattern); copied by reference, must outlive. */
egov_err metrics_init(const char *const *labels, size_t nslots);
void metrics_free(void);
/* method: index 0..6 as in http_method bit order; status: the HTTP status. */
void metrics_http_observe(size_t slot, unsigned method_bit, int status, int64_t dur_us);
/* Appends the HTTP families (requests_total, request_duration_seconds). */
egov_err metrics_http_write(buf *out);

/* Modules add their own families through their descriptor's .metrics
 * (core/module.h), which /metrics asks after the kernel's families. */

/* Helpers for other families: a HELP/TYPE header and a sample line. */
egov_err metrics_write_header(buf *out, const char *name, const char *type, const char *help);

#endif
