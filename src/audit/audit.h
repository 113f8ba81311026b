/*
 * audit.h: the append-only, hash-chained audit log every module writes to.
 *
 * A record: seq (1, 2, 3, ... without gaps), time (RFC 3339 UTC with
 * microseconds), actor, action, object, details (a JSON object as text),
 * prev_hash and hash, where
 *     hash = SHA-256(prev_hash || canonical(seq, time, actor, action, object, details))
 * and prev_hash of record 1 is 64 zeros. The canonical form is the fields
 * length-prefixed, so no two different records serialise alike.
 *
 * Precisely: the hash input is prev_hash as 32 raw bytes, then for each of
 * seq (in decimal), time, actor, action, object and details an 8-byte
 * big-endian length followed by the bytes. Hashes are stored as lower-case
 * hex. The table is audit_log(seq, ts, actor, action, object, details,
 * prev_hash, hash); see audit_migrations. The log is a user of the
 * kernel's chain-log engine (core/chainlog.h), which keeps this format.
 *
 * The module owns its log: its start hook opens it on the node's database
 * (audit_open) and its stop hook closes it. Two ways to append:
 * - audit_append(): group commit. One writer thread commits what is queued
 *   in one transaction and returns once the record is durable; many
 *   concurrent callers share one transaction and one fsync. A batch that
 *   fails is rolled back whole and all its callers get the error. In a
 *   process that runs no writer (a command run from the CLI) it appends in
 *   a transaction of its own on a connection of its own.
 * - audit_append_tx(): inside the caller's transaction, so an audited
 *   change and its record commit together or not at all.
 * Both read the head inside the appending transaction under one lock
 * (SQLite's write transaction, PostgreSQL LOCK TABLE ... EXCLUSIVE), so
 * several processes or nodes on one database extend a single chain.
 *
 * audit_verify() walks the chain and reports the first record that was
 * changed, deleted, inserted or reordered. Removing records from the end,
 * or rewriting every record from some point on (anyone who knows the
 * algorithm can), can only be seen against an anchored head: the
 * checkpoint hook below lets the trust layer sign and timestamp the head
 * periodically.
 */
#ifndef EGOV_AUDIT_AUDIT_H
#define EGOV_AUDIT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/chainlog.h"
#include "core/db.h"
#include "core/err.h"
#include "audit/audit_limits.h"

/* AUDIT_FIELD_MAX, AUDIT_DETAILS_MAX: audit_limits.h. */

/* Starts the writer thread on a connection of its own from d and reads the
 * head; the schema (audit_migrations) must be applied. The module's start
 * hook calls it with the node's database. Fails with the database's error
 * if the table cannot be read, EGOV_ECONFLICT if the log is open already. */
egov_err audit_open(db *d);
/* Flushes what is queued and stops the writer; waits for appends in
 * progress. Appends afterwards go to the database directly (see
 * audit_append). Safe when not open. */
void audit_close(void);
/* Whether audit_append() can record: the log is open, or the node's
 * database is set up for direct appends. False only where neither is (a
 * unit test of another module), where callers skip auditing. */
bool audit_available(void);

/* Appends a record and waits until it is committed. actor, action and
 * object must be non-empty, at most AUDIT_FIELD_MAX bytes and free of
 * control characters; details may be NULL (stored as "{}") and must
 * otherwise be a JSON object text of at most AUDIT_DETAILS_MAX bytes, stored
 * as given. Bad input: EGOV_EINVAL, nothing queued. Without an open log it
 * appends in a transaction of its own on a new connection of app()->db;
 * with neither, EGOV_EUNAVAILABLE. A database failure of the batch: its
 * error, and the record is not in the log. *seq_out (optional) receives the
 * seq. */
egov_err audit_append(const char *actor, const char *action, const char *object, const char *details,
		      int64_t *seq_out);
/* Appends a record inside the caller's transaction on c (begun with
 * db_begin(), perhaps inside a SAVEPOINT): it commits with the caller's
 * change and is gone if the caller rolls back. Takes the log's lock until
 * the caller ends the transaction, so keep it short. Input as for
 * audit_append(). Errors are the database's; the caller rolls back. */
egov_err audit_append_tx(db_conn *c, const char *actor, const char *action, const char *object,
			 const char *details, int64_t *seq_out);

/* Records in the chain as the writer last saw them, for /metrics; 0 when
 * the log is not open. */
int64_t audit_length(void);

/* The faults audit_verify() names are the chain-log engine's: changed (a
 * record's content no longer matches its hash), deleted (a gap in seq),
 * inserted (a record whose prev_hash does not link) and reordered. */
typedef chainlog_fault audit_fault;
#define AUDIT_FAULT_NONE CHAINLOG_FAULT_NONE
#define AUDIT_FAULT_CHANGED CHAINLOG_FAULT_CHANGED
#define AUDIT_FAULT_DELETED CHAINLOG_FAULT_DELETED
#define AUDIT_FAULT_INSERTED CHAINLOG_FAULT_INSERTED
#define AUDIT_FAULT_REORDERED CHAINLOG_FAULT_REORDERED

typedef struct audit_verify_result {
	int64_t records;     /* records found intact (all of them if no fault) */
	int64_t first_bad;   /* seq of the first bad record, 0 if none */
	audit_fault fault;
	char head[65];       /* hash of the last good record */
} audit_verify_result;

/* Walks the whole chain on connection c, in pages by seq so memory stays
 * flat. Returns EGOV_OK whether or not the chain is intact (see res->fault);
 * errors are for failures to read. The rule that names the fault is
 * documented in core/chainlog_verify.c; first_bad is the first record (by
 * seq) that was tampered with, or for DELETED the first missing seq. */
egov_err audit_verify(db_conn *c, audit_verify_result *res);
const char *audit_fault_name(audit_fault f);

/* The stored hash (hex) of the record at seq, for checks that anchor the
 * chain from outside (the PKI's checkpoints). *found false if there is
 * no such record. */
egov_err audit_record_hash(db_conn *c, int64_t seq, char hash[65], bool *found);

/* Checkpoint hook: called by the writer after each commit that crosses
 * a multiple of every_n records, with the head seq and hash (the head after
 * that commit, which may lie past the multiple; records appended in
 * callers' transactions are counted once they commit). It runs on the
 * writer thread after the batch's callers were released, and the next
 * batch waits for it: hand slow work (signing, timestamping) to another
 * thread. The trust layer sets it to sign and timestamp the head. It may
 * be set before the log opens, and stays set across audit_close() and
 * audit_open(). */
typedef void (*audit_checkpoint_fn)(void *ctx, int64_t seq, const char *hash_hex);
void audit_set_checkpoint(int64_t every_n, audit_checkpoint_fn fn, void *ctx);

/* The module's schema. */
extern const db_migration audit_migrations[];
extern const size_t audit_migrations_count;

#endif
