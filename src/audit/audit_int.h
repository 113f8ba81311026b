/*
 * audit_int.h: the audit module's private parts, shared by the writer
 * (audit.c) and the verifier (audit_verify.c). Not for other modules.
 *
 * The record hash is defined here once so that writing and verifying can
 * never disagree:
 *     hash = SHA-256(prev_hash as 32 raw bytes
 *                    || for each of seq (decimal), ts, actor, action,
 *                       object, details: 8-byte big-endian length || bytes)
 */
#ifndef EGOV_AUDIT_AUDIT_INT_H
#define EGOV_AUDIT_AUDIT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "audit/audit.h"
#include "core/err.h"

#define AUDIT_HASH_LEN 32
#define AUDIT_HEX_LEN 64

/* One hashing context, reused for every record so the hot paths do not
 * allocate. Owned by one thread at a time. */
typedef struct audit_hasher {
	EVP_MD_CTX *ctx;
	EVP_MD *md;
} audit_hasher;

egov_err audit_hasher_init(audit_hasher *h);
void audit_hasher_release(audit_hasher *h);

/* The fields of one record as they are hashed; strings are NUL-terminated. */
typedef struct audit_fields {
	int64_t seq;
	const char *ts;
	const char *actor;
	const char *action;
	const char *object;
	const char *details;
} audit_fields;

/* Computes the record hash into out. Returns EGOV_EINTERNAL only if the
 * digest machinery fails (it does not for valid inputs). */
egov_err audit_hash_compute(audit_hasher *h, const unsigned char prev[AUDIT_HASH_LEN], const audit_fields *f,
			    unsigned char out[AUDIT_HASH_LEN]);

/* Lower-case hex of 32 bytes into out (64 chars + NUL). */
void audit_hex_encode(const unsigned char in[AUDIT_HASH_LEN], char out[AUDIT_HEX_LEN + 1]);
/* Decodes exactly 64 lower-case hex digits, the only stored form; false on
 * anything else (so a re-cased hash counts as altered). */
bool audit_hex_decode(const char *hex, unsigned char out[AUDIT_HASH_LEN]);

/* Writer counters since audit_open(), for the benchmark (average batch
 * size, time in the commit path). */
typedef struct audit_stats {
	int64_t batches;   /* transactions the writer ran, failed ones too */
	int64_t records;   /* records in them */
	int64_t commit_us; /* wall time from BEGIN to COMMIT's return, summed */
} audit_stats;
void audit_stats_get(audit_log *a, audit_stats *out);

#endif
