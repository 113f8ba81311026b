/*
 * audit_int.h: the audit module's private parts, for its own files, its
 * tests and its benchmark. Not for other modules.
 */
#ifndef EGOV_AUDIT_AUDIT_INT_H
#define EGOV_AUDIT_AUDIT_INT_H

#include <stdint.h>

#include "audit/audit.h"
#include "core/chainlog.h"
#include "core/err.h"

/* The log as the chain-log engine sees it: audit_log(seq, ts, actor,
 * action, object, details, prev_hash, hash), ts filled by the appender. */
extern const chainlog_desc audit_chain;
#define AUDIT_NCOLS 5

/* Checks a record's input as audit_append() documents and fills its
 * values in audit_chain's column order (details NULL becomes "{}"; the
 * strings are not copied). EGOV_EINVAL when the input is refused. */
egov_err audit_values(const char *actor, const char *action, const char *object, const char *details,
		      db_param v[AUDIT_NCOLS]);

/* Writer counters since audit_open(), zeros when the log is not open: for
 * the benchmark (average batch size, time in the commit path). */
typedef struct audit_stats {
	int64_t batches;   /* transactions the writer ran, failed ones too */
	int64_t records;   /* records committed in them */
	int64_t commit_us; /* wall time from BEGIN to COMMIT's return, summed */
} audit_stats;
void audit_stats_get(audit_stats *out);

#endif
