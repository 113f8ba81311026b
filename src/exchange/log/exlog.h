/*
 * exlog.h: the gateway's message log as the other rooms use it: one
 * record per exchange, on each side, durable before the exchange is
 * answered (docs/exchange.md, "Message log"). The log's own parts are in
 * exlog_int.h:
 *
 *   log.c      the log as a user of the kernel's chain-log engine
 *              (core/chainlog.h): descriptor, input checks, appends,
 *              the certificates kept beside the records, start and stop,
 *              /metrics, schema
 *   seal.c     the sealer job: RFC 3161 timestamps of the head, and the
 *              overdue flag
 *   verify.c   checking the log, in the database or an archive
 *   archive.c  the JSON-lines form of records, archives
 *   recent.c   the message ids answered lately, read back at start
 *   query.c    `egov exchange log ...`
 */
#ifndef EGOV_EXCHANGE_LOG_EXLOG_H
#define EGOV_EXCHANGE_LOG_EXLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/db.h"
#include "core/err.h"
#include "core/jobs.h"

typedef struct exchange_log_rec {
	const char *side;              /* "consumer" or "provider" */
	const char *message_id;
	const char *client;            /* subsystem id */
	const char *service;           /* service id */
	const char *method;
	const char *path;              /* after the service, with ?query */
	const char *represented_party; /* "" if none */
	const char *data_subject;      /* "" if none */
	const char *purpose;           /* "" if none */
	int status;                    /* the response's status */
	const char *request_sig;       /* base64url */
	const char *request_signer_cert; /* sha256 hex of the signing certificate */
	const char *request_body_sha256;
	const void *request_body;      /* NULL in digest mode */
	size_t request_body_len;
	const char *response_sig;
	const char *response_signer_cert;
	const char *response_body_sha256;
	const void *response_body;
	size_t response_body_len;
	const char *request_signed_at, *response_signed_at; /* RFC 3339 */
	/* Both are lines of the canonical texts the signatures cover, so the
	 * log keeps them to verify the signatures later; NULL means "". */
	const char *request_content_type;
	const char *response_content_type;
} exchange_log_rec;

/* Queues a record for the log writer (it copies rec and everything it
 * points to) and returns at once; done(ctx, err) runs on the writer's
 * thread once the record is durable (err EGOV_OK) or failed, and must not
 * block. EGOV_ECONFLICT when (side, client, message_id) is already logged:
 * a replay. Records are appended by one writer thread in groups (one
 * commit for many), hash-chained. If queuing itself fails, the error is
 * returned and done is not called: EGOV_EINVAL for a malformed record,
 * EGOV_EBUSY when the writer is too far behind, EGOV_EUNAVAILABLE when the
 * log is not running. Full mode is a non-NULL body on either side. */
egov_err exchange_log_append_async(const exchange_log_rec *rec, void (*done)(void *ctx, egov_err err), void *ctx);
/* The same, waiting (not on an HTTP worker). */
egov_err exchange_log_append(const exchange_log_rec *rec);
/* Remembers the certificate (PEM) behind a signer hash, so the log can be
 * verified offline later. Idempotent; cheap when already known. */
egov_err exchange_log_cert(const char *sha256, const char *pem);
/* Whether new exchanges are refused because timestamping has failed for
 * longer than exchange.timestamp_grace_s. */
bool exchange_log_sealing_overdue(void);

/* Starts the log's writer on d and readies the sealer (the module's start
 * hook does it on a gateway): the overdue flag is right from here on.
 * Until then appends fail EGOV_EUNAVAILABLE. cfg must outlive the log. */
egov_err exchange_log_start(db *d, const egov_config *cfg);
/* Commits what is queued and stops the writer; call after the sealer job
 * stopped and before db_close(). Appends after this fail
 * EGOV_EUNAVAILABLE. */
void exchange_log_stop(void);
/* The sealer: every exchange.timestamp_interval_s while records are
 * unsealed, and the overdue flag every second. Does nothing while the log
 * is not started. */
extern const job exlog_sealer_job;
/* The log's /metrics families, once it was started in this process. */
egov_err exchange_log_metrics(buf *out);

/* `egov exchange log ARGS` (argv[0] = "log"); cfg the node's. Returns the
 * exit status. */
int exchange_log_command(int argc, char **argv, db *d, const egov_config *cfg);

/* Calls fn for each (client, message id, request signed-at) the provider
 * side of the log recorded at or after since_us, newest first, until fn
 * returns non-zero; *count (may be NULL) gets how many. */
egov_err exchange_log_recent(db_conn *c, int64_t since_us, int (*fn)(void *ctx, const char *client,
								     const char *message_id, int64_t signed_at_us),
			     void *ctx, size_t *count);

/* The log's tables (IF NOT EXISTS), which the exchange module's
 * migrations create. */
extern const char exlog_schema_sqlite[], exlog_schema_postgres[];

#endif
