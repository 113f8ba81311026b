/*
 * lease.h: claiming due rows of an outbox-style table for a while.
 *
 * A table of work to do (mail to send, pushes to deliver, timers to fire)
 * keeps, per row, when it is due next. A worker claims due rows by pushing
 * that time into the future (the lease) and counting the attempt, in one
 * transaction, before it does any of the work. If the worker dies, the
 * lease runs out and the row is due again; if it finishes, it records the
 * outcome itself (sent, failed, next attempt) on the same key.
 *
 * Several workers, on one node or many, may claim from the same table at
 * the same time: on PostgreSQL the rows are selected FOR UPDATE SKIP LOCKED
 * (a row another claimer holds is passed over, not waited for, and a row it
 * claimed is no longer due once it commits); SQLite takes one writer at a
 * time (BEGIN IMMEDIATE). Either way no row is claimed twice within its
 * lease.
 *
 *	static const lease_spec outbox = {
 *		.table = "notify_outbox", .key = "id", .due = "next_attempt_us",
 *		.attempts = "attempts", .pending = "sent_at IS NULL AND failed_at IS NULL",
 *		.order = "next_attempt_us, created_at", .columns = "id, to_addr, subject, body",
 *	};
 *	err = lease_claim(c, &outbox, now_us, lease_us, 1, NULL, 0, take, &msg, &n);
 *
 * The spec's texts are SQL written by the module (never outside input);
 * values go in as bound parameters.
 */
#ifndef EGOV_CORE_LEASE_H
#define EGOV_CORE_LEASE_H

#include <stdint.h>

#include "core/db.h"
#include "core/err.h"

/* Rows one claim may take: one transaction holds their locks (PostgreSQL)
 * or the write lock (SQLite) while the callback runs, so a claim is a
 * bounded bite; a worker that wants more claims again. */
#define LEASE_CLAIM_MAX 1000
/* Key columns per table; outbox keys are one or two columns. */
#define LEASE_KEYS_MAX 4
/* Bound parameters the pending condition may use. */
#define LEASE_PARAMS_MAX 16

typedef struct lease_spec {
	const char *table;    /* the table whose rows are claimed */
	const char *alias;    /* its alias in join, pending, order and columns; NULL: none (use the table's name) */
	const char *join;     /* NULL, or joins after the table: "JOIN exchange_pubsub_sub s ON s.id = o.sub_id" */
	const char *key;      /* the table's key column(s), comma-separated: "id" or "sub_id, seq"; text or integer */
	const char *due;      /* integer column: when the row is due next (the claim moves it to now + lease) */
	const char *attempts; /* integer column each claim counts up, or NULL */
	const char *pending;  /* NULL, or the SQL condition of rows still to do; its '?' are bound from params */
	const char *order;    /* ORDER BY of the claim (most urgent first); NULL: the due column */
	const char *columns;  /* NULL, or the SELECT list the callback reads, as columns 0, 1, ... */
	const char *set;      /* NULL, or more assignments the claim makes, unqualified: "inflight = 1" */
} lease_spec;

/* Called once per claimed row inside the claim's transaction, before its
 * row is updated: read row's columns (spec->columns, from 0) and keep what
 * the work needs. attempt counts this claim (the attempts column plus one;
 * 0 without one). An error rolls the whole claim back and is returned. */
typedef egov_err (*lease_row_fn)(void *ctx, db_rows *row, int64_t attempt);

/* Claims up to max rows of spec's table that are pending and due at now
 * (due column <= now), in spec's order: for each, calls fn and sets its due
 * column to now + lease and counts its attempt, all in one transaction on
 * c. now and lease are in the due column's unit. params (nparams of them)
 * are bound to the '?' of spec->pending. *claimed receives how many rows
 * were claimed. A quick look without a transaction comes first, so a pass
 * that finds nothing due does not take SQLite's write lock.
 *
 * Fails with EGOV_EINVAL for a spec that cannot be used (no table, key or
 * due column, more than LEASE_KEYS_MAX keys, max outside 0..LEASE_CLAIM_MAX,
 * too many params, SQL too long), a database error (EGOV_EBUSY when SQLite
 * is locked past its timeout), or fn's error. On any failure nothing was
 * claimed (the transaction rolled back) and the caller must drop whatever
 * fn kept. c must not be inside a transaction. */
egov_err lease_claim(db_conn *c, const lease_spec *spec, int64_t now, int64_t lease, int max, const db_param *params,
		     int nparams, lease_row_fn fn, void *ctx, int *claimed);

#endif
