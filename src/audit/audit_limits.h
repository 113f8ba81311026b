/*
 * audit_limits.h: every limit the audit module puts on what it is given,
 * each with its reason. The kernel's own limits are in core/limits.h; the
 * chain-log engine's (batch sizes) are in the log's descriptor (audit.c).
 */
#ifndef EGOV_AUDIT_LIMITS_H
#define EGOV_AUDIT_LIMITS_H

/* An actor, action or object, bytes. They are identifiers (an account, a
 * verb, an object's URI), not prose; the cap bounds what one record can
 * cost to store, hash and print. Over it: EGOV_EINVAL, nothing appended. */
#define AUDIT_FIELD_MAX 1024
/* A record's details (a JSON object), bytes: one default JSON body's
 * worth, far above what a module records of one event. */
#define AUDIT_DETAILS_MAX (64 * 1024)
/* Records per page of GET /api/v1/audit: a screenful by default; at most
 * what an auditor's tool pages through in one answer of a few megabytes
 * (records of up to AUDIT_DETAILS_MAX are rare). ?limit= over it: 400. */
#define AUDIT_PAGE_DEFAULT 100
#define AUDIT_PAGE_MAX 1000

#endif
