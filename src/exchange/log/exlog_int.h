/*
 * exlog_int.h: the message log's private parts, shared by its files
 * (listed in exlog.h) and their tests. Not for the other rooms of the
 * exchange: they use exlog.h.
 *
 * The record hash is the chain-log engine's (core/chainlog.h) over the
 * columns of exlog_chain, so writing and verifying can never disagree:
 *     hash = SHA-256(prev_hash as 32 raw bytes
 *                    || for each hashed field, in the order of
 *                       exlog_row below from seq to response_body_sha256:
 *                       8-byte big-endian length || bytes)
 * with seq and status as decimal text. Bodies are not hashed themselves:
 * their SHA-256 is, and it is also what the signatures cover; log_mode
 * ("full" or "digest") is hashed, so dropping a body from a full record is
 * caught by the digest check, not hidden by the mode.
 *
 * A seal's RFC 3161 imprint is SHA-256 over the 32 raw bytes of the record
 * hash at last_seq (which covers every record before it).
 */
#ifndef EGOV_EXCHANGE_LOG_EXLOG_INT_H
#define EGOV_EXCHANGE_LOG_EXLOG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/buf.h"
#include "core/chainlog.h"
#include "core/config.h"
#include "core/db.h"
#include "core/err.h"
#include "exchange/exchange.h"
#include "exchange/keys/keys.h"
#include "exchange/log/exlog.h"
#include "exchange/wire/wire.h"

struct cJSON;

#define EXLOG_HASH_LEN CHAINLOG_HASH_LEN
#define EXLOG_HEX_LEN CHAINLOG_HEX_LEN

/* One record as stored. Texts are NUL-terminated and never NULL; a body is
 * NULL when not logged (digest mode). */
typedef struct exlog_row {
	int64_t seq;
	const char *time;
	const char *side;
	const char *message_id;
	const char *client;
	const char *service;
	const char *method;
	const char *path;
	const char *represented_party;
	const char *data_subject;
	const char *purpose;
	int64_t status;
	const char *log_mode;
	const char *request_content_type;
	const char *request_signed_at;
	const char *request_sig;
	const char *request_signer_cert;
	const char *request_body_sha256;
	const char *response_content_type;
	const char *response_signed_at;
	const char *response_sig;
	const char *response_signer_cert;
	const char *response_body_sha256;
	/* not hashed: */
	const void *request_body;
	size_t request_body_len;
	const void *response_body;
	size_t response_body_len;
	const char *prev_hash;
	const char *hash;
} exlog_row;

/* The log as the chain-log engine sees it: the hashed fields of exlog_row
 * in order (time filled by the appender), then the two bodies, stored and
 * not hashed. */
extern const chainlog_desc exlog_chain;
#define EXLOG_NCOLS 24
/* A row's values in exlog_chain's column order (pointing into r). */
void exlog_row_vals(const exlog_row *r, db_param v[EXLOG_NCOLS]);
/* The other way: a record a chain-log source yielded (pointing into it). */
void exlog_row_from_chain(const chainlog_row *c, exlog_row *r);

/* The record hash into out. ctx is an EVP_MD_CTX the caller reuses. */
egov_err exlog_hash(void *evp_md_ctx, const unsigned char prev[EXLOG_HASH_LEN], const exlog_row *r,
		    unsigned char out[EXLOG_HASH_LEN]);
void exlog_hex(const unsigned char in[EXLOG_HASH_LEN], char out[EXLOG_HEX_LEN + 1]);
/* Exactly 64 lower-case hex digits; false otherwise. */
bool exlog_unhex(const char *hex, unsigned char out[EXLOG_HASH_LEN]);

/* The log's tables alone as a list of migrations, for unit tests. */
const db_migration *exlog_migrations(size_t *n);

/* An archive's first line names its format. */
#define EXLOG_ARCHIVE_FORMAT "egov-exchange-log/1"

/* Records appended and transactions run since the process started (the
 * benchmark's average batch size). */
void exlog_stats(int64_t *records, int64_t *batches);

/* ---- reading records (archive.c) ------------------------------ */

/* The columns of a record, in the order exlog_row_from_db() reads them. */
#define EXLOG_ROW_COLS                                                                                          \
	"seq, time, side, message_id, client, service, method, path, represented_party, data_subject, purpose,"   \
	" status, log_mode, request_content_type, request_signed_at, request_sig, request_signer_cert,"            \
	" request_body_sha256, request_body, response_content_type, response_signed_at, response_sig,"            \
	" response_signer_cert, response_body_sha256, response_body, prev_hash, hash"
/* Fills row from a result of EXLOG_ROW_COLS (valid until the next row).
 * Bodies are NULL for SQL NULL, texts "" for SQL NULL. */
void exlog_row_from_db(db_rows *r, exlog_row *row);
/* One record as a JSON object and a newline (an archive's record line,
 * also `show`). with_bodies false writes the body lengths instead. */
egov_err exlog_record_json(buf *b, const exlog_row *r, bool with_bodies);
/* The same line's text members, for the archive's other lines. */
egov_err exlog_json_text(buf *b, const char *name, const char *v, bool first);
/* Base64 (RFC 4648, padded) of len bytes, appended to out. */
egov_err exlog_b64_add(buf *out, const void *data, size_t len);
/* Strict base64 (RFC 4648, padded). *out malloc'd (at least 1 byte). */
egov_err exlog_b64_decode(const char *s, unsigned char **out, size_t *len);
/* One line of an archive without its newline into b; *eof at the end. */
egov_err exlog_read_line(FILE *f, buf *b, bool *eof);
/* A line's members: a string (NULL if absent or not one), an integer
 * (false if absent or not a whole number), its "type" ("" if none). */
const char *exlog_jstr(const struct cJSON *o, const char *name);
bool exlog_jint(const struct cJSON *o, const char *name, int64_t *out);
const char *exlog_line_type(const struct cJSON *o);
/* A record line into row; texts point into j, decoded bodies into
 * bodies[] (the caller frees them). EGOV_ECORRUPT for a missing member or
 * a body that is not base64. */
egov_err exlog_row_from_json(const struct cJSON *j, exlog_row *row, unsigned char *bodies[2]);

/* ---- sealing (seal.c) ---------------------------------------------------- */

/* The log's side of the sealer (log.c calls them): readies it on d with
 * the node's settings and computes the overdue flag at once, so that a
 * restart with records long unsealed refuses exchanges from the first
 * request; forgets it at stop (the flag goes down). */
egov_err exlog_sealer_open(db *d, int interval_s, int grace_s, const char *anchor);
void exlog_sealer_close(void);
/* The sealer's /metrics families. */
egov_err exlog_seal_metrics(buf *out);

/* Seals the log now: an RFC 3161 token from tsa_url over the current head,
 * stored in exchange_log_seal. *last_seq (optional) gets the seq sealed up
 * to (0 when the log is empty); when nothing is unsealed it is the last
 * seal's and no request is made. Needs exchange_log_start(); runs on a
 * connection of its own. EGOV_EUNAVAILABLE
 * when the TSA cannot be reached or answers with an error, EGOV_EAUTH when
 * its token does not match the request. The sealer job seals with the
 * configuration's tsa_url; tests call it directly. */
egov_err exlog_seal_now(const char *tsa_url, int64_t *last_seq);

/* The PEM bundle that seal tokens must chain to when none is given: the
 * CA bundle of server.peer_tls_ca (on a gateway, the platform CA that also
 * runs the TSA), else DATA/pki/root.crt (the platform root on the node
 * that holds the CA). "" when the file does not exist. Every node has its
 * own DATA/pki, so on a gateway only the first is the platform's. */
void exlog_default_anchor(const egov_config *cfg, char *out, size_t len);

/* ---- verifying (verify.c) ---------------------------------- */

typedef enum exlog_fault {
	EXLOG_FAULT_NONE,
	EXLOG_FAULT_CHANGED,
	EXLOG_FAULT_DELETED,
	EXLOG_FAULT_INSERTED,
	EXLOG_FAULT_REORDERED,
} exlog_fault;

const char *exlog_fault_name(exlog_fault f);

typedef struct exlog_verify_result {
	int64_t records;       /* records whose chain link verified */
	exlog_fault fault;     /* the first chain fault */
	int64_t first_bad;     /* and where */
	char chain_why[160];   /* more about it, when there is more to say */
	int64_t signatures;    /* signatures that verified */
	int64_t sig_bad;       /* seq of the first record whose signatures or bodies fail, 0 if none */
	char sig_why[160];
	int64_t seals;         /* seals that verified */
	int64_t seal_bad;      /* last_seq of the first seal that fails, 0 if none */
	bool seal_failed;      /* (seal_bad may be 0 for a seal of nothing) */
	char seal_why[160];
	int64_t sealed_to;     /* highest seq covered by a verified seal */
	int64_t last_seq;      /* the last record that verified */
	char head[EXLOG_HEX_LEN + 1];
} exlog_verify_result;

/* Whether everything verified. */
bool exlog_verify_ok(const exlog_verify_result *r);

/* Verifies the log in d: the chain, every record's signatures and bodies
 * (certificates from exchange_log_cert), every seal (the token chains to a
 * certificate of the PEM bundle anchor and its imprint is the record hash
 * at last_seq). Errors are for failing to read; what fails to verify is in
 * *res. anchor NULL: seals cannot be checked and count as failures. */
egov_err exlog_verify_db(db *d, const char *anchor, exlog_verify_result *res);
/* The same for an archive written by exlog_archive(), with no database. */
egov_err exlog_verify_file(const char *path, const char *anchor, exlog_verify_result *res);
/* Writes the records from seq `from` (1 = all), every certificate and the
 * seals that cover them as JSON lines to path (created 0600, replaced
 * atomically). *records (optional) gets how many records went out. */
egov_err exlog_archive(db *d, const char *path, int64_t from, int64_t *records);

#endif
