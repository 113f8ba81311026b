/*
 * chainlog.h: an append-only, hash-chained table described by a
 * descriptor, appended to in groups by one writer thread or inside a
 * caller's own transaction, and one verifier for it. The audit log and the
 * exchange's message log are its users.
 *
 * A record is seq (1, 2, 3, ... without gaps), the descriptor's columns
 * and prev_hash and hash (lower-case hex), where
 *     hash = SHA-256(prev_hash as 32 raw bytes
 *                    || for seq and each hashed column, in descriptor
 *                       order: 8-byte big-endian length || bytes)
 * with integers as decimal text and prev_hash of record 1 all zeros.
 * Length-prefixing means no two different records serialise alike.
 *
 * Appending. The head (last seq and hash) is read inside the appending
 * transaction under a lock that serialises appenders: SQLite's write
 * transaction (BEGIN IMMEDIATE), on PostgreSQL `LOCK TABLE ... IN
 * EXCLUSIVE MODE` (readers still proceed). So writer threads of several
 * processes or nodes and appenders inside callers' transactions on one
 * database all extend a single chain, and nothing about the head is cached
 * across transactions: a rollback (of a batch, of a caller's transaction
 * or of a SAVEPOINT around an append) leaves nothing to restore.
 * - chainlog_append(): queued for the writer thread, which commits what is
 *   queued in one transaction (group commit: one fsync for many callers);
 *   returns once the record is durable.
 * - chainlog_append_async(): the same, returning at once; a callback runs
 *   on the writer thread after COMMIT returned (for deferred requests).
 * - chainlog_append_tx(): inside the caller's transaction; durable when the
 *   caller commits, gone if it rolls back.
 * - Without a running writer chainlog_append() appends in a transaction of
 *   its own on a connection of its own (a command run from the CLI).
 *
 * The time column (CHAINLOG_TIME) is filled by the appender under the lock:
 * RFC 3339 UTC with microseconds, never going backwards within a process,
 * so time order follows seq order.
 *
 * Verifying walks the chain in pages and names the first fault (changed,
 * deleted, inserted, reordered) by the rule in chainlog_verify.c. Removing
 * records from the end, or rewriting every record from some point on
 * (anyone who knows the algorithm can), can only be seen against an
 * anchored head: the checkpoint hook lets a user sign or timestamp it.
 */
#ifndef EGOV_CORE_CHAINLOG_H
#define EGOV_CORE_CHAINLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/db.h"
#include "core/err.h"

#define CHAINLOG_HASH_LEN 32
#define CHAINLOG_HEX_LEN 64
/* Columns a descriptor may have besides seq, prev_hash and hash: bounds
 * the stack arrays of the append and verify paths. */
#define CHAINLOG_COLS_MAX 32

typedef enum chainlog_kind {
	CHAINLOG_TEXT,   /* hashed: the text's bytes (a DBP_TEXT value) */
	CHAINLOG_INT,    /* hashed: decimal text (a DBP_INT value) */
	CHAINLOG_TIME,   /* hashed text the appender fills (the value given is ignored) */
	CHAINLOG_STORED, /* stored as given (blob, text or NULL), not hashed; read back as a blob */
} chainlog_kind;

typedef struct chainlog_col {
	const char *name;
	chainlog_kind kind;
} chainlog_col;

typedef struct chainlog chainlog;

typedef struct chainlog_desc {
	const char *table;
	/* Column names; prev_hash and hash are TEXT (hex), seq an integer
	 * primary key. */
	const char *seq_col, *prev_col, *hash_col;
	/* Hashed in this order after seq (CHAINLOG_STORED ones skipped). */
	const chainlog_col *cols;
	size_t ncols;
	/* For the writer's error log lines: log event and what the log is
	 * called ("audit", "audit log"). */
	const char *log_event, *what;

	/* Records per transaction: bounds the writer's memory and how long a
	 * batch holds the lock. */
	size_t batch_max;
	/* Bytes of records per transaction and bytes waiting for the writer
	 * (past it async appends fail EGOV_EBUSY); 0: no limit. */
	size_t batch_bytes, queue_bytes_max;
	/* Rows per INSERT statement, a power of two of at most 64: multi-row
	 * VALUES cut per-statement cost (a round trip each on PostgreSQL). */
	size_t insert_rows_max;
	/* Rows per page when verifying (small when rows are large). */
	int verify_page;

	/* A unique violation that is not on seq (a replayed message id) fails
	 * that record alone with EGOV_ECONFLICT and the rest of its batch
	 * commits: the batch is redone one record per SAVEPOINT. Without it
	 * any conflict retries the batch. chainlog_append_tx() wraps its
	 * insert in a SAVEPOINT so the caller's transaction survives one. */
	bool conflict_fails_one;

	/* Optional: rows of the user's that must commit in the same
	 * transaction as, and before, the records queued after them (the
	 * exchange's certificates). side_take runs on the writer thread after
	 * a batch's records were taken and returns what is queued (NULL: none);
	 * side_insert runs inside each attempt of the batch's transaction;
	 * side_done once with the batch's outcome. user is chainlog_open()'s. */
	void *(*side_take)(void *user);
	egov_err (*side_insert)(db_conn *c, void *side, void *user);
	void (*side_done)(void *side, egov_err err, void *user);
} chainlog_desc;

/* ---- the writer ---------------------------------------------------------- */

/* Opens a log of d on dbh (the table must exist: the head is read now, so a
 * missing table or a corrupt head fails here, not the first caller) and
 * starts its writer thread on a connection of its own. user goes to the
 * side hooks. *out owned by the caller: chainlog_close(). */
egov_err chainlog_open(const chainlog_desc *d, db *dbh, void *user, chainlog **out);
/* Commits what is queued (every pending caller is told) and stops the
 * writer; appends afterwards get EGOV_EUNAVAILABLE. The counters and the
 * length stay readable until chainlog_close(). */
void chainlog_stop(chainlog *l);
/* Stops the writer if it runs and frees l. NULL is fine. */
void chainlog_close(chainlog *l);

/* Appends a record and waits until it is committed. vals holds d->ncols
 * values in column order (the kinds above; checked). *seq_out (optional)
 * gets its seq. A failed batch is rolled back whole and every caller in it
 * gets the error; a replay (conflict_fails_one) gets EGOV_ECONFLICT alone.
 * EGOV_EINVAL for values of the wrong type; EGOV_EUNAVAILABLE once
 * chainlog_close() began. The values are not copied: they are read on the
 * writer thread while the caller waits. */
egov_err chainlog_append(chainlog *l, const db_param *vals, int64_t *seq_out);
/* Queues a copy of the record and returns at once; done(ctx, err) runs on
 * the writer's thread after COMMIT returned (EGOV_OK) or the record failed,
 * and must not block. If queuing fails done is not called: EGOV_EINVAL,
 * EGOV_ENOMEM, EGOV_EBUSY (queue_bytes_max), EGOV_EUNAVAILABLE (closing). */
egov_err chainlog_append_async(chainlog *l, const db_param *vals, void (*done)(void *ctx, egov_err err),
			       void *ctx);
/* Makes the writer run a batch though nothing is queued (side rows are). */
void chainlog_kick(chainlog *l);

/* Appends inside the caller's transaction on c (begun with db_begin(),
 * perhaps inside a SAVEPOINT): takes the appenders' lock, reads the head,
 * inserts. The record is durable when the caller commits and gone if it
 * rolls back; the lock is held until then, so keep such transactions
 * short. Errors are the database's (the caller should roll back, except
 * for EGOV_ECONFLICT of a replay with conflict_fails_one, which leaves the
 * transaction usable). *seq_out (optional) gets the seq it will have. */
egov_err chainlog_append_tx(const chainlog_desc *d, db_conn *c, const db_param *vals, int64_t *seq_out);
/* Appends in a transaction of its own on a new connection of dbh, for a
 * process that runs no writer (a command run from the CLI). */
egov_err chainlog_append_direct(const chainlog_desc *d, db *dbh, const db_param *vals, int64_t *seq_out);
/* Tells l's writer that a record with this seq was appended without it
 * (chainlog_append_tx, chainlog_append_direct): if that may cross a
 * checkpoint, the writer takes the lock (so after that transaction ends),
 * reads the head and runs the hook. Cheap; NULL l is fine. */
void chainlog_note_append(chainlog *l, int64_t seq);

/* The head as of the writer's last commit or head read (0 before the
 * first record): a figure for /metrics, not a basis for appending. */
int64_t chainlog_length(chainlog *l);

/* Checkpoint hook: called by the writer after each commit that takes the
 * log across a multiple of every_n records, with the head seq and hash
 * after that commit (which may lie past the multiple). It runs on the
 * writer thread after the batch's callers were released, and the next
 * batch waits for it: hand slow work (signing, timestamping) on. */
typedef void (*chainlog_checkpoint_fn)(void *ctx, int64_t seq, const char *hash_hex);
void chainlog_set_checkpoint(chainlog *l, int64_t every_n, chainlog_checkpoint_fn fn, void *ctx);

/* Writer counters since chainlog_open(). */
typedef struct chainlog_stats {
	int64_t batches;   /* transactions run, failed ones too */
	int64_t records;   /* records committed */
	int64_t conflicts; /* records refused alone (a replay) */
	int64_t failed;    /* records in batches that failed */
	int64_t commit_us; /* wall time of the batches' transactions, summed */
} chainlog_stats;
void chainlog_stats_get(chainlog *l, chainlog_stats *out);

/* The last seq and hash (0 and zeros when empty) on c; EGOV_ECORRUPT when
 * the stored head hash is not 64 lower-case hex digits. */
egov_err chainlog_head(const chainlog_desc *d, db_conn *c, int64_t *seq, unsigned char hash[CHAINLOG_HASH_LEN]);

/* ---- the record hash --------------------------------------------------- */

/* A digest context reused for many records (no allocation per record).
 * Owned by one thread at a time. */
typedef struct chainlog_hasher {
	struct evp_md_ctx_st *ctx;
	struct evp_md_st *md;
	bool owns; /* ctx and md are the hasher's (chainlog_hasher_init) */
} chainlog_hasher;

egov_err chainlog_hasher_init(chainlog_hasher *h); /* EGOV_ENOMEM */
void chainlog_hasher_release(chainlog_hasher *h);
/* The record hash of (seq, vals) after prev into out. EGOV_EINVAL when a
 * hashed value is NULL or of the wrong type; EGOV_EINTERNAL only if the
 * digest machinery fails. time may replace the CHAINLOG_TIME value (NULL:
 * take it from vals). */
egov_err chainlog_hash(const chainlog_desc *d, chainlog_hasher *h, const unsigned char prev[CHAINLOG_HASH_LEN],
		       int64_t seq, const db_param *vals, const char *time, unsigned char out[CHAINLOG_HASH_LEN]);
void chainlog_hex_encode(const unsigned char in[CHAINLOG_HASH_LEN], char out[CHAINLOG_HEX_LEN + 1]);
/* Exactly 64 lower-case hex digits, the only stored form; false on
 * anything else (so a re-cased hash counts as altered). */
bool chainlog_hex_decode(const char *hex, unsigned char out[CHAINLOG_HASH_LEN]);

/* ---- verifying (chainlog_verify.c) -------------------------------------- */

typedef enum chainlog_fault {
	CHAINLOG_FAULT_NONE = 0,
	CHAINLOG_FAULT_CHANGED,   /* a record's content no longer matches its hash */
	CHAINLOG_FAULT_DELETED,   /* a gap in seq: records are missing */
	CHAINLOG_FAULT_INSERTED,  /* a record whose prev_hash does not link: added or replaced */
	CHAINLOG_FAULT_REORDERED, /* records present but out of order */
} chainlog_fault;

const char *chainlog_fault_name(chainlog_fault f); /* "none", "changed", ...; "unknown" */

/* One stored record as a source yields it, valid until the source's next
 * call: vals in descriptor order (TEXT and TIME as DBP_TEXT, INT as
 * DBP_INT, STORED as DBP_BLOB or DBP_NULL; a NULL text is a damaged row). */
typedef struct chainlog_row {
	int64_t seq;
	const db_param *vals;
	const char *prev_hash, *hash;
} chainlog_row;

/* Where records come from: the database (chainlog_verify) or a user's
 * (an archive file). */
typedef struct chainlog_source {
	/* The next record in seq order; *has false at the end. EGOV_ECORRUPT
	 * (why filled) for a record that cannot be read at all. */
	egov_err (*next)(void *src, chainlog_row *row, bool *has, char *why, size_t whylen);
	/* Ends the walk before the lookups run. */
	void (*pause)(void *src);
	/* The lowest seq whose hash is hex. */
	egov_err (*owner)(void *src, const char *hex, int64_t *seq, bool *found);
	/* The lowest seq above `above` whose prev_hash is hex. */
	egov_err (*successor)(void *src, const char *hex, int64_t above, int64_t *seq, bool *found);
} chainlog_source;

typedef struct chainlog_verify_opts {
	/* Where the chain picks up: start_seq (0 means 1) after start_prev
	 * (NULL: zeros), for an archive of the records from start_seq on. */
	int64_t start_seq;
	const unsigned char *start_prev;
	/* Optional: the user's checks of each record whose link verified, in
	 * seq order (signatures, seals). An error stops the walk and is
	 * returned. */
	egov_err (*good)(void *ctx, const chainlog_row *r);
	void *ctx;
} chainlog_verify_opts;

typedef struct chainlog_verify_result {
	int64_t records;   /* records found intact (all of them if no fault) */
	int64_t first_bad; /* seq of the first bad record (for DELETED the first missing), 0 if none */
	chainlog_fault fault;
	int64_t last_seq;  /* the last intact record (start_seq - 1 if none) */
	char head[CHAINLOG_HEX_LEN + 1]; /* its hash */
	char why[160];     /* more about the fault, when a source says more */
} chainlog_verify_result;

/* Walks d's table on c in pages of d->verify_page (memory stays flat).
 * Returns EGOV_OK whether or not the chain is intact (see res->fault);
 * errors are for failures to read, or a good() hook's. o may be NULL. */
egov_err chainlog_verify(const chainlog_desc *d, db_conn *c, const chainlog_verify_opts *o,
			 chainlog_verify_result *res);
/* The same over records from src. */
egov_err chainlog_verify_source(const chainlog_desc *d, const chainlog_source *src, void *src_ctx,
				const chainlog_verify_opts *o, chainlog_verify_result *res);

#endif
