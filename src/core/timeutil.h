/*
 * timeutil.h: RFC 3339 timestamps (UTC, "Z") and UUIDv7 identifiers.
 * Times are int64 microseconds since the Unix epoch.
 */
#ifndef EGOV_CORE_TIMEUTIL_H
#define EGOV_CORE_TIMEUTIL_H

#include <stdint.h>

#include "core/err.h"

int64_t time_now_us(void);         /* wall clock */
int64_t time_mono_us(void);        /* monotonic, for durations */
/* "2026-11-26T12:34:56.123456Z" (27 chars + NUL); frac_digits 0, 3 or 6. */
void time_format_rfc3339(int64_t us, int frac_digits, char out[32]);
/* Strict RFC 3339 (date-time with 'T', seconds, optional fraction up to
 * 9 digits, 'Z' or +hh:mm/-hh:mm), years 1970..9999. EGOV_EINVAL otherwise. */
egov_err time_parse_rfc3339(const char *s, int64_t *us_out);

/* A UUIDv7 (RFC 9562): 48-bit ms timestamp, random rest; lower-case,
 * 36 chars + NUL. Monotonic within a process. */
egov_err uuid_v7(char out[37]);
/* 1 if s is a lower- or upper-case hyphenated UUID. */
int uuid_valid(const char *s);

#endif
