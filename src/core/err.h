/*
 * err.h: the one error enum of egov.
 *
 * Every fallible function returns an egov_err; results come back through
 * out-parameters. EGOV_OK is zero so `if (err)` reads naturally. The mapping
 * to the wire (HTTP status and problem code) lives in exactly one place, the
 * error table in err.c.
 */
#ifndef EGOV_CORE_ERR_H
#define EGOV_CORE_ERR_H

typedef enum egov_err {
	EGOV_OK = 0,
	EGOV_ENOMEM,       /* allocation failed */
	EGOV_EINVAL,       /* input failed validation (400) */
	EGOV_ENOTFOUND,    /* no such object (404) */
	EGOV_ECONFLICT,    /* uniqueness or state conflict (409) */
	EGOV_ELIMIT,       /* a limit from limits.h was exceeded (413) */
	EGOV_EPERM,        /* authenticated but not allowed (403) */
	EGOV_EAUTH,        /* authentication required or failed (401) */
	EGOV_EBUSY,        /* overloaded; retry later (429/503) */
	EGOV_EDB,          /* database error (500) */
	EGOV_EIO,          /* file system or socket error (500) */
	EGOV_EUNAVAILABLE, /* dependency not ready (503) */
	EGOV_EINTERNAL,    /* invariant broken; a bug (500) */
	EGOV_ECORRUPT,     /* stored data failed an integrity check */
	EGOV_ERR__COUNT
} egov_err;

/* Stable lower-case name of an error, e.g. "not_found". Never NULL. */
const char *egov_err_name(egov_err err);

/* The HTTP status an error maps to, from the error table (the only such
 * mapping in egov). 500 for a value outside the enum. */
int egov_err_http_status(egov_err err);

/* The problem code (docs/api/problems.md) of the problem document that
 * answers an error a handler returned, e.g. "not_found" or "unavailable";
 * from the same table. Never NULL; "internal" outside the enum. */
const char *egov_err_problem_code(egov_err err);

#endif
