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
 * Appends go through one writer thread that commits them in groups (group
 * commit): audit_append() returns once its record is durable, and many
 * concurrent callers share one transaction and one fsync.
 *
 * Precisely: the hash input is prev_hash as 32 raw bytes, then for each of
 * seq (in decimal), time, actor, action, object and details an 8-byte
 * big-endian length followed by the bytes. Hashes are stored as lower-case
 * hex. The table is audit_log(seq, ts, actor, action, object, details,
 * prev_hash, hash); see audit_migrations.
 *
 * Appends go through one writer thread that commits them in groups (group
 * commit): audit_append() returns once its record is durable, and many
 * concurrent callers share one transaction and one fsync. A batch that
 * fails is rolled back whole and all its callers get the error. The writer
 * reads the head inside its write transaction, so several processes or
 * nodes on one database extend a single chain.
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

#include "core/db.h"
#include "core/err.h"

typedef struct audit_log audit_log;

/* Longest actor, action and object (bytes). They are identifiers (account,
 * verb, object URI), not prose; the cap bounds what one record can cost. */
#define AUDIT_FIELD_MAX 1024
/* Longest details text: one default JSON body's worth. */
#define AUDIT_DETAILS_MAX (64 * 1024)

/* Starts the writer thread on its own connection from d and reads the
 * head; the schema (audit_migrations) must be applied. Fails with the
 * database's error if the table cannot be read. */
egov_err audit_open(db *d, audit_log **out);
/* Flushes what is queued and stops the writer. No audit_append() may start
 * once this is called; one that races with it gets EGOV_EUNAVAILABLE. */
void audit_close(audit_log *a);

/* Appends a record and waits until it is committed. actor, action and
 * object must be non-empty, at most AUDIT_FIELD_MAX bytes and free of
 * control characters; details may be NULL (stored as "{}") and must
 * otherwise be a JSON object text of at most AUDIT_DETAILS_MAX bytes, stored
 * as given. Bad input: EGOV_EINVAL, nothing queued. After audit_close()
 * began: EGOV_EUNAVAILABLE. A database failure of the batch: its error, and
 * the record is not in the log. *seq_out (optional) receives the seq. */
egov_err audit_append(audit_log *a, const char *actor, const char *action, const char *object,
		      const char *details, int64_t *seq_out);

/* Records in the chain (the last committed seq), for /metrics. */
int64_t audit_length(audit_log *a);

typedef enum audit_fault {
	AUDIT_FAULT_NONE = 0,
	AUDIT_FAULT_CHANGED,   /* a record's content no longer matches its hash */
	AUDIT_FAULT_DELETED,   /* a gap in seq: records are missing */
	AUDIT_FAULT_INSERTED,  /* a record whose prev_hash does not link: added or replaced */
	AUDIT_FAULT_REORDERED, /* records present but out of order */
} audit_fault;

typedef struct audit_verify_result {
	int64_t records;     /* records found intact (all of them if no fault) */
	int64_t first_bad;   /* seq of the first bad record, 0 if none */
	audit_fault fault;
	char head[65];       /* hash of the last good record */
} audit_verify_result;

/* Walks the whole chain on connection c, in pages by seq so memory stays
 * flat. Returns EGOV_OK whether or not the chain is intact (see res->fault);
 * errors are for failures to read. The rule that names the fault is
 * documented in audit_verify.c; first_bad is the first record (by seq) that
 * was tampered with, or for DELETED the first missing seq. */
egov_err audit_verify(db_conn *c, audit_verify_result *res);
const char *audit_fault_name(audit_fault f);

/* The stored hash (hex) of the record at seq, for checks that anchor the
 * chain from outside (the PKI's checkpoints). *found false if there is
 * no such record. */
egov_err audit_record_hash(db_conn *c, int64_t seq, char hash[65], bool *found);

/* Checkpoint hook: called by the writer after each commit that crosses
 * a multiple of every_n records, with the head seq and hash (the head after
 * that commit, which may lie past the multiple). It runs on the writer
 * thread after the batch's callers were released, and the next batch waits
 * for it: hand slow work (signing, timestamping) to another thread. The
 * trust layer sets it to sign and timestamp the head. */
typedef void (*audit_checkpoint_fn)(void *ctx, int64_t seq, const char *hash_hex);
void audit_set_checkpoint(audit_log *a, int64_t every_n, audit_checkpoint_fn fn, void *ctx);

/* The module's schema. */
extern const db_migration audit_migrations[];
extern const size_t audit_migrations_count;

#endif
