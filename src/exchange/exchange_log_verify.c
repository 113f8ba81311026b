/*
 * exchange_log_verify.c: checking the message log (in the database or in
 * an archive file, offline), writing archives, the data subject and
 * message id queries, and `egov exchange log ...`.
 *
 * One walker serves both sources. It reads records in seq order, keeping
 * only the last good record L (at first a virtual record start-1 whose
 * hash is the archive's starting prev_hash, or 32 zero bytes). A record R
 * is good when R.seq = L.seq + 1, R.prev_hash = L.hash and R's recomputed
 * hash is its stored hash; the walk stops at the first record that is not
 * and names the fault with the rule of the audit verifier
 * (src/audit/audit_verify.c), using two lookups the source answers:
 * owner(h), the lowest seq whose hash is h, and successor(h, s), the lowest
 * seq above s whose prev_hash is h.
 *
 * For every good record the walker also checks its two signatures over the
 * canonical texts of docs/exchange.md (with the certificates kept beside
 * the log, each checked to hash to the name it is kept under) and, in full
 * mode, that the bodies hash to the signed digests. Seals are read in
 * last_seq order beside the records: when the walk reaches a seal's
 * last_seq, the token must chain to the anchor and its imprint must be
 * SHA-256 of that record's hash. A seal past the last good record fails
 * (the records it sealed were removed or are after a fault).
 *
 * Memory stays flat: records and seals are paged (database) or streamed
 * (file); only certificates are held whole (a log names few).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/ts.h>
#include <openssl/x509.h>

#include "core/app.h"
#include "core/buf.h"
#include "core/crypto.h"
#include "core/timeutil.h"
#include "exchange/exchange_int.h"
#include "exchange/exchange_log_int.h"
#include "core/banned.h"

#define ARCHIVE_FORMAT "egov-exchange-log/1"
/* Records per page: bodies may be a megabyte each and PostgreSQL hands a
 * whole result over at once, so pages are small. */
#define ROWS_PAGE 256
#define SEALS_PAGE 64
/* How far back a renumbering after deletions is recognised. */
#define RENUMBER_MAX 64
/* One archive line: a record with two bodies at the largest service limit,
 * base64. Longer is not an archive we wrote. */
#define LINE_MAX_BYTES (256u << 20)
#define CANON_MAX (64 * 1024)
#define STR_(x) #x
#define STR(x) STR_(x)

/* ---- small helpers -------------------------------------------------------- */

const char *exlog_fault_name(exlog_fault f)
{
	switch (f) {
	case EXLOG_FAULT_NONE:
		return "none";
	case EXLOG_FAULT_CHANGED:
		return "changed";
	case EXLOG_FAULT_DELETED:
		return "deleted";
	case EXLOG_FAULT_INSERTED:
		return "inserted";
	case EXLOG_FAULT_REORDERED:
		return "reordered";
	}
	return "unknown";
}

bool exlog_verify_ok(const exlog_verify_result *r)
{
	return r->fault == EXLOG_FAULT_NONE && r->sig_bad == 0 && !r->seal_failed;
}

static egov_err b64_add(buf *out, const void *data, size_t len)
{
	size_t n;
	char *tmp;
	egov_err err;

	if (len > INT32_MAX / 2)
		return EGOV_ELIMIT;
	n = 4 * ((len + 2) / 3);
	if (!(tmp = malloc(n + 1)))
		return EGOV_ENOMEM;
	EVP_EncodeBlock((unsigned char *)tmp, data, (int)len);
	err = buf_add(out, tmp, n);
	free(tmp);
	return err;
}

/* Strict base64 (RFC 4648, padded). *out malloc'd (at least 1 byte). */
static egov_err b64_decode(const char *s, unsigned char **out, size_t *len)
{
	size_t n = strlen(s), pad = 0;
	unsigned char *p;
	int got;

	*out = NULL;
	*len = 0;
	if (n % 4 || n > INT32_MAX)
		return EGOV_EINVAL;
	if (n && s[n - 1] == '=')
		pad++;
	if (n > 1 && s[n - 2] == '=')
		pad++;
	if (!(p = malloc(n / 4 * 3 + 1)))
		return EGOV_ENOMEM;
	got = n ? EVP_DecodeBlock(p, (const unsigned char *)s, (int)n) : 0;
	if (got < 0 || (size_t)got < pad) {
		free(p);
		return EGOV_EINVAL;
	}
	*out = p;
	*len = (size_t)got - pad;
	return EGOV_OK;
}

/* ---- certificates --------------------------------------------------------- */

typedef struct cert_entry {
	char sha256[EXLOG_HEX_LEN + 1];
	char *pem;
	bool ok; /* the PEM hashes to the name it is kept under */
} cert_entry;

typedef struct certmap {
	cert_entry *v;
	size_t n, cap;
} certmap;

static void certmap_release(certmap *m)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		free(m->v[i].pem);
	free(m->v);
	memset(m, 0, sizeof *m);
}

static egov_err certmap_add(certmap *m, const char *sha256, const char *pem)
{
	cert_entry *v;

	if (!sha256 || !pem || strlen(sha256) != EXLOG_HEX_LEN)
		return EGOV_OK; /* a malformed entry names nothing a record can find */
	if (m->n == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 16;
		if (!(v = realloc(m->v, cap * sizeof *v)))
			return EGOV_ENOMEM;
		m->v = v;
		m->cap = cap;
	}
	memcpy(m->v[m->n].sha256, sha256, EXLOG_HEX_LEN + 1);
	if (!(m->v[m->n].pem = strdup(pem)))
		return EGOV_ENOMEM;
	m->v[m->n].ok = exlog_cert_matches(sha256, pem);
	m->n++;
	return EGOV_OK;
}

static int cert_cmp(const void *a, const void *b)
{
	return strcmp(((const cert_entry *)a)->sha256, ((const cert_entry *)b)->sha256);
}

static void certmap_sort(certmap *m)
{
	if (m->n)
		qsort(m->v, m->n, sizeof *m->v, cert_cmp);
}

static const cert_entry *certmap_find(const certmap *m, const char *sha256)
{
	cert_entry key;

	if (!m->n || strlen(sha256) != EXLOG_HEX_LEN)
		return NULL;
	memcpy(key.sha256, sha256, EXLOG_HEX_LEN + 1);
	return bsearch(&key, m->v, m->n, sizeof *m->v, cert_cmp);
}

/* ---- sources ---------------------------------------------------------------- */

typedef struct seal {
	int64_t first_seq, last_seq;
	char head[EXLOG_HEX_LEN + 1];
	unsigned char *tok;
	size_t tok_len;
	char time[40];
} seal;

typedef struct row_src row_src;
struct row_src {
	/* The next record in seq order, valid until the next call; *has false
	 * at the end. EGOV_ECORRUPT (why filled) for a record that cannot be
	 * read at all. */
	egov_err (*next)(row_src *s, exlog_row *row, bool *has, char *why, size_t whylen);
	/* Ends the walk before the lookups run. */
	void (*pause)(row_src *s);
	egov_err (*owner)(row_src *s, const char *hex, int64_t *seq, bool *found);
	egov_err (*successor)(row_src *s, const char *hex, int64_t above, int64_t *seq, bool *found);
	/* Next seal in last_seq order, valid until the next call; NULL at the
	 * end. */
	egov_err (*next_seal)(row_src *s, const seal **out);
};

static const char row_cols[] =
	"seq, time, side, message_id, client, service, method, path, represented_party, data_subject, purpose,"
	" status, log_mode, request_content_type, request_signed_at, request_sig, request_signer_cert,"
	" request_body_sha256, request_body, response_content_type, response_signed_at, response_sig,"
	" response_signer_cert, response_body_sha256, response_body, prev_hash, hash";

static const char *col_text(db_rows *r, int i)
{
	const char *s = db_rows_text(r, i);
	return s ? s : "";
}

/* Fills row from a result of row_cols. Bodies are NULL for SQL NULL. */
static void row_from_db(db_rows *r, exlog_row *row)
{
	row->seq = db_rows_int(r, 0);
	row->time = col_text(r, 1);
	row->side = col_text(r, 2);
	row->message_id = col_text(r, 3);
	row->client = col_text(r, 4);
	row->service = col_text(r, 5);
	row->method = col_text(r, 6);
	row->path = col_text(r, 7);
	row->represented_party = col_text(r, 8);
	row->data_subject = col_text(r, 9);
	row->purpose = col_text(r, 10);
	row->status = db_rows_int(r, 11);
	row->log_mode = col_text(r, 12);
	row->request_content_type = col_text(r, 13);
	row->request_signed_at = col_text(r, 14);
	row->request_sig = col_text(r, 15);
	row->request_signer_cert = col_text(r, 16);
	row->request_body_sha256 = col_text(r, 17);
	row->request_body = NULL;
	row->request_body_len = 0;
	if (!db_rows_isnull(r, 18)) {
		row->request_body = db_rows_blob(r, 18, &row->request_body_len);
		if (!row->request_body)
			row->request_body = "";
	}
	row->response_content_type = col_text(r, 19);
	row->response_signed_at = col_text(r, 20);
	row->response_sig = col_text(r, 21);
	row->response_signer_cert = col_text(r, 22);
	row->response_body_sha256 = col_text(r, 23);
	row->response_body = NULL;
	row->response_body_len = 0;
	if (!db_rows_isnull(r, 24)) {
		row->response_body = db_rows_blob(r, 24, &row->response_body_len);
		if (!row->response_body)
			row->response_body = "";
	}
	row->prev_hash = col_text(r, 25);
	row->hash = col_text(r, 26);
}

/* -- the database -- */

typedef struct db_src {
	row_src base;
	db_conn *c;      /* records and lookups */
	db_conn *sc;     /* seals: their page stays open beside the records' */
	db_rows *rows;
	int64_t after;
	int in_page;
	bool end;
	seal seals[SEALS_PAGE];
	int nseals, iseal;
	int64_t seal_after;
	bool seals_end;
} db_src;

static egov_err dbs_next(row_src *s, exlog_row *row, bool *has, char *why, size_t whylen)
{
	db_src *d = (db_src *)s;
	db_param p[1];
	egov_err err;
	char sql[sizeof row_cols + 128];

	*has = false;
	for (;;) {
		if (d->end)
			return EGOV_OK;
		if (!d->rows) {
			snprintf(sql, sizeof sql, "SELECT %s FROM exchange_log WHERE seq > ? ORDER BY seq LIMIT %d", row_cols,
				 ROWS_PAGE);
			p[0] = DBP_I(d->after);
			if ((err = db_query(d->c, sql, p, 1, &d->rows)))
				return err;
			d->in_page = 0;
		}
		if ((err = db_rows_next(d->rows, has)))
			return err;
		if (*has) {
			row_from_db(d->rows, row);
			d->after = row->seq;
			d->in_page++;
			return EGOV_OK;
		}
		db_rows_free(d->rows);
		d->rows = NULL;
		if (d->in_page < ROWS_PAGE)
			d->end = true;
	}
}

static void dbs_pause(row_src *s)
{
	db_src *d = (db_src *)s;

	db_rows_free(d->rows);
	d->rows = NULL;
	d->end = true;
}

static egov_err dbs_owner(row_src *s, const char *hex, int64_t *seq, bool *found)
{
	db_src *d = (db_src *)s;
	db_param p[] = {DBP_S(hex)};

	return db_query_int(d->c, "SELECT seq FROM exchange_log WHERE hash = ? ORDER BY seq LIMIT 1", p, 1, seq, found);
}

static egov_err dbs_successor(row_src *s, const char *hex, int64_t above, int64_t *seq, bool *found)
{
	db_src *d = (db_src *)s;
	db_param p[] = {DBP_S(hex), DBP_I(above)};

	return db_query_int(d->c, "SELECT seq FROM exchange_log WHERE prev_hash = ? AND seq > ? ORDER BY seq LIMIT 1", p,
			    2, seq, found);
}

static void seal_release(seal *x)
{
	free(x->tok);
	x->tok = NULL;
}

static egov_err dbs_next_seal(row_src *s, const seal **out)
{
	db_src *d = (db_src *)s;
	db_rows *r = NULL;
	db_param p[1];
	bool has = false;
	const void *tok;
	size_t len = 0;
	egov_err err = EGOV_OK;
	int i;

	*out = NULL;
	if (d->iseal < d->nseals) {
		*out = &d->seals[d->iseal++];
		return EGOV_OK;
	}
	for (i = 0; i < d->nseals; i++)
		seal_release(&d->seals[i]);
	d->nseals = d->iseal = 0;
	if (d->seals_end)
		return EGOV_OK;
	p[0] = DBP_I(d->seal_after);
	if ((err = db_query(d->sc,
			    "SELECT first_seq, last_seq, head_hash, token, time FROM exchange_log_seal"
			    " WHERE last_seq > ? ORDER BY last_seq LIMIT " STR(SEALS_PAGE),
			    p, 1, &r)))
		goto out;
	while (!(err = db_rows_next(r, &has)) && has) {
		seal *x = &d->seals[d->nseals];
		x->first_seq = db_rows_int(r, 0);
		x->last_seq = db_rows_int(r, 1);
		snprintf(x->head, sizeof x->head, "%s", col_text(r, 2));
		snprintf(x->time, sizeof x->time, "%s", col_text(r, 4));
		tok = db_rows_blob(r, 3, &len);
		x->tok_len = tok ? len : 0;
		if (!(x->tok = malloc(x->tok_len + 1))) {
			err = EGOV_ENOMEM;
			goto out;
		}
		if (x->tok_len)
			memcpy(x->tok, tok, x->tok_len);
		d->seal_after = x->last_seq;
		d->nseals++;
	}
	if (err)
		goto out;
	if (d->nseals < SEALS_PAGE)
		d->seals_end = true;
	if (d->nseals)
		*out = &d->seals[d->iseal++];
out:
	db_rows_free(r);
	return err;
}

static void db_src_release(db_src *d)
{
	int i;

	db_rows_free(d->rows);
	for (i = 0; i < d->nseals; i++)
		seal_release(&d->seals[i]);
	if (d->c)
		db_conn_close(d->c);
	if (d->sc)
		db_conn_close(d->sc);
}

/* -- an archive file -- */

typedef struct file_src {
	row_src base;
	const char *path;
	FILE *f;
	buf line;
	int64_t lineno;
	cJSON *j;
	unsigned char *bodies[2];
	seal *seals;
	size_t nseals, iseal;
} file_src;

/* One line without its newline into b. *eof at the end of the file. */
static egov_err read_line(FILE *f, buf *b, bool *eof)
{
	char chunk[65536];
	size_t n;
	egov_err err;

	buf_reset(b);
	*eof = false;
	for (;;) {
		if (!fgets(chunk, sizeof chunk, f)) {
			if (ferror(f))
				return EGOV_EIO;
			*eof = b->len == 0;
			return EGOV_OK;
		}
		n = strlen(chunk);
		if (n && chunk[n - 1] == '\n') {
			return buf_add(b, chunk, n - 1);
		}
		if ((err = buf_add(b, chunk, n)))
			return err;
	}
}

static const char *jstr(const cJSON *o, const char *name)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(j) ? j->valuestring : NULL;
}

static bool jint(const cJSON *o, const char *name, int64_t *out)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!cJSON_IsNumber(j) || j->valuedouble != (double)(int64_t)j->valuedouble)
		return false;
	*out = (int64_t)j->valuedouble;
	return true;
}

static const char *line_type(const cJSON *o)
{
	const char *t = jstr(o, "type");
	return t ? t : "";
}

/* A record line into row; texts point into j. A body that is not base64
 * comes out as an error, as does any missing member. */
static egov_err row_from_json(const cJSON *j, exlog_row *row, unsigned char *bodies[2])
{
	static const struct {
		const char *name;
		size_t off;
	} texts[] = {
		{"time", offsetof(exlog_row, time)},
		{"side", offsetof(exlog_row, side)},
		{"message_id", offsetof(exlog_row, message_id)},
		{"client", offsetof(exlog_row, client)},
		{"service", offsetof(exlog_row, service)},
		{"method", offsetof(exlog_row, method)},
		{"path", offsetof(exlog_row, path)},
		{"represented_party", offsetof(exlog_row, represented_party)},
		{"data_subject", offsetof(exlog_row, data_subject)},
		{"purpose", offsetof(exlog_row, purpose)},
		{"log_mode", offsetof(exlog_row, log_mode)},
		{"request_content_type", offsetof(exlog_row, request_content_type)},
		{"request_signed_at", offsetof(exlog_row, request_signed_at)},
		{"request_sig", offsetof(exlog_row, request_sig)},
		{"request_signer_cert", offsetof(exlog_row, request_signer_cert)},
		{"request_body_sha256", offsetof(exlog_row, request_body_sha256)},
		{"response_content_type", offsetof(exlog_row, response_content_type)},
		{"response_signed_at", offsetof(exlog_row, response_signed_at)},
		{"response_sig", offsetof(exlog_row, response_sig)},
		{"response_signer_cert", offsetof(exlog_row, response_signer_cert)},
		{"response_body_sha256", offsetof(exlog_row, response_body_sha256)},
		{"prev_hash", offsetof(exlog_row, prev_hash)},
		{"hash", offsetof(exlog_row, hash)},
	};
	static const char *const body_names[2] = {"request_body", "response_body"};
	const void **body_ptr[2] = {&row->request_body, &row->response_body};
	size_t *body_len[2] = {&row->request_body_len, &row->response_body_len};
	const cJSON *b;
	const char *s;
	size_t i;
	egov_err err;

	memset(row, 0, sizeof *row);
	if (!jint(j, "seq", &row->seq) || !jint(j, "status", &row->status))
		return EGOV_ECORRUPT;
	for (i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		if (!(s = jstr(j, texts[i].name)))
			return EGOV_ECORRUPT;
		*(const char **)((char *)row + texts[i].off) = s;
	}
	for (i = 0; i < 2; i++) {
		b = cJSON_GetObjectItemCaseSensitive(j, body_names[i]);
		if (!b || cJSON_IsNull(b))
			continue;
		if (!cJSON_IsString(b))
			return EGOV_ECORRUPT;
		if ((err = b64_decode(b->valuestring, &bodies[i], body_len[i])))
			return err == EGOV_ENOMEM ? err : EGOV_ECORRUPT;
		*body_ptr[i] = bodies[i];
	}
	return EGOV_OK;
}

static void fs_clear_row(file_src *f)
{
	cJSON_Delete(f->j);
	f->j = NULL;
	free(f->bodies[0]);
	free(f->bodies[1]);
	f->bodies[0] = f->bodies[1] = NULL;
}

static egov_err fs_next(row_src *s, exlog_row *row, bool *has, char *why, size_t whylen)
{
	file_src *f = (file_src *)s;
	bool eof = false;
	egov_err err;

	*has = false;
	fs_clear_row(f);
	if (!f->f)
		return EGOV_OK;
	for (;;) {
		if ((err = read_line(f->f, &f->line, &eof)))
			return err;
		if (eof)
			return EGOV_OK;
		f->lineno++;
		if (!f->line.len)
			continue;
		if (!(f->j = cJSON_ParseWithLength(f->line.data, f->line.len))) {
			snprintf(why, whylen, "line %" PRId64 " is not JSON", f->lineno);
			return EGOV_ECORRUPT;
		}
		if (strcmp(line_type(f->j), "record") != 0) {
			cJSON_Delete(f->j);
			f->j = NULL;
			continue;
		}
		err = row_from_json(f->j, row, f->bodies);
		if (err == EGOV_ECORRUPT)
			snprintf(why, whylen, "line %" PRId64 " is not a complete record", f->lineno);
		if (err)
			return err;
		*has = true;
		return EGOV_OK;
	}
}

static void fs_pause(row_src *s)
{
	file_src *f = (file_src *)s;

	fs_clear_row(f);
	if (f->f)
		fclose(f->f);
	f->f = NULL;
}

/* Scans every record line of the file for the lookups (rare: at a fault). */
static egov_err fs_scan(file_src *f, const char *hex, bool by_prev, int64_t above, int64_t *seq, bool *found)
{
	FILE *in = fopen(f->path, "r");
	unsigned char *bodies[2] = {NULL, NULL};
	exlog_row row;
	cJSON *j = NULL;
	buf line;
	bool eof = false;
	egov_err err = EGOV_EIO;

	*found = false;
	buf_init(&line, LINE_MAX_BYTES);
	if (!in)
		goto out;
	for (;;) {
		if ((err = read_line(in, &line, &eof)) || eof)
			break;
		cJSON_Delete(j);
		free(bodies[0]);
		free(bodies[1]);
		bodies[0] = bodies[1] = NULL;
		if (!(j = cJSON_ParseWithLength(line.data, line.len)) || strcmp(line_type(j), "record") != 0 ||
		    row_from_json(j, &row, bodies) != EGOV_OK)
			continue;
		if (by_prev ? (strcmp(row.prev_hash, hex) == 0 && row.seq > above) : strcmp(row.hash, hex) == 0) {
			if (!*found || row.seq < *seq)
				*seq = row.seq;
			*found = true;
		}
	}
out:
	cJSON_Delete(j);
	free(bodies[0]);
	free(bodies[1]);
	buf_release(&line);
	if (in)
		fclose(in);
	return err;
}

static egov_err fs_owner(row_src *s, const char *hex, int64_t *seq, bool *found)
{
	return fs_scan((file_src *)s, hex, false, 0, seq, found);
}

static egov_err fs_successor(row_src *s, const char *hex, int64_t above, int64_t *seq, bool *found)
{
	return fs_scan((file_src *)s, hex, true, above, seq, found);
}

static egov_err fs_next_seal(row_src *s, const seal **out)
{
	file_src *f = (file_src *)s;

	*out = f->iseal < f->nseals ? &f->seals[f->iseal++] : NULL;
	return EGOV_OK;
}

static int seal_cmp(const void *a, const void *b)
{
	int64_t x = ((const seal *)a)->last_seq, y = ((const seal *)b)->last_seq;
	return x < y ? -1 : x > y;
}

static void file_src_release(file_src *f)
{
	size_t i;

	fs_pause(&f->base);
	buf_release(&f->line);
	for (i = 0; i < f->nseals; i++)
		seal_release(&f->seals[i]);
	free(f->seals);
}

/* ---- the walker ------------------------------------------------------------------ */

typedef struct walker {
	row_src *src;
	const certmap *certs;
	X509_STORE *store; /* NULL: no anchor */
	int64_t start_seq;
	unsigned char start_prev[EXLOG_HASH_LEN];
	EVP_MD_CTX *md;
	buf canon;
	exlog_verify_result *res;
} walker;

static void sig_fail(walker *w, int64_t seq, const char *why)
{
	if (!w->res->sig_bad) {
		w->res->sig_bad = seq;
		snprintf(w->res->sig_why, sizeof w->res->sig_why, "%s", why);
	}
}

static void seal_fail(walker *w, int64_t last_seq, const char *why)
{
	if (!w->res->seal_failed) {
		w->res->seal_failed = true;
		w->res->seal_bad = last_seq;
		snprintf(w->res->seal_why, sizeof w->res->seal_why, "%s", why);
	}
}

static bool body_matches(const void *body, size_t len, const char *hex)
{
	char got[EXLOG_HEX_LEN + 1];

	crypto_sha256_hex(body ? body : "", body ? len : 0, got);
	return strcmp(got, hex) == 0;
}

/* The signatures and bodies of one record whose chain link verified. */
static egov_err check_record(walker *w, const exlog_row *r)
{
	const cert_entry *ce;
	egov_err err;

	if (strcmp(r->log_mode, "full") == 0) {
		if (!body_matches(r->request_body, r->request_body_len, r->request_body_sha256)) {
			sig_fail(w, r->seq, "the request body does not match its digest");
			return EGOV_OK;
		}
		if (!body_matches(r->response_body, r->response_body_len, r->response_body_sha256)) {
			sig_fail(w, r->seq, "the response body does not match its digest");
			return EGOV_OK;
		}
	} else if (strcmp(r->log_mode, "digest") != 0) {
		sig_fail(w, r->seq, "unknown log mode");
		return EGOV_OK;
	}

	if (!(ce = certmap_find(w->certs, r->request_signer_cert)) || !ce->ok) {
		sig_fail(w, r->seq, ce ? "the request signer's kept certificate does not match its hash"
				       : "the request signer's certificate is not kept with the log");
		return EGOV_OK;
	}
	{
		exchange_canon_req c = {.message_id = r->message_id,
					.client = r->client,
					.service = r->service,
					.method = r->method,
					.path = r->path,
					.content_type = r->request_content_type,
					.represented_party = r->represented_party,
					.data_subject = r->data_subject,
					.purpose = r->purpose,
					.signed_at = r->request_signed_at,
					.body_sha256 = r->request_body_sha256};
		if ((err = exchange_canon_request(&c, &w->canon))) {
			if (err == EGOV_ENOMEM)
				return err;
			sig_fail(w, r->seq, "the request cannot be put in canonical form");
			return EGOV_OK;
		}
	}
	if (exchange_verify(ce->pem, w->canon.data, w->canon.len, r->request_sig) != EGOV_OK) {
		sig_fail(w, r->seq, "the request signature does not verify");
		return EGOV_OK;
	}
	w->res->signatures++;
	if (!*r->response_sig)
		return EGOV_OK; /* a failure answered without the provider's signature */
	if (!(ce = certmap_find(w->certs, r->response_signer_cert)) || !ce->ok) {
		sig_fail(w, r->seq, ce ? "the response signer's kept certificate does not match its hash"
				       : "the response signer's certificate is not kept with the log");
		return EGOV_OK;
	}
	{
		exchange_canon_resp c = {.message_id = r->message_id,
					 .service = r->service,
					 .content_type = r->response_content_type,
					 .request_sig = r->request_sig,
					 .signed_at = r->response_signed_at,
					 .body_sha256 = r->response_body_sha256,
					 .status = (int)r->status};
		if ((err = exchange_canon_response(&c, &w->canon))) {
			if (err == EGOV_ENOMEM)
				return err;
			sig_fail(w, r->seq, "the response cannot be put in canonical form");
			return EGOV_OK;
		}
	}
	if (exchange_verify(ce->pem, w->canon.data, w->canon.len, r->response_sig) != EGOV_OK) {
		sig_fail(w, r->seq, "the response signature does not verify");
		return EGOV_OK;
	}
	w->res->signatures++;
	return EGOV_OK;
}

/* Why a seal's token fails for the record hash it seals, or NULL. */
static const char *check_token(X509_STORE *store, const seal *x, const unsigned char hash[EXLOG_HASH_LEN])
{
	const unsigned char *p = x->tok;
	unsigned char md[32], *imprint = NULL;
	TS_VERIFY_CTX *v = NULL;
	PKCS7 *tok = NULL;
	const char *why = NULL;

	if (!(tok = d2i_PKCS7(NULL, &p, (long)x->tok_len)) || p != x->tok + x->tok_len) {
		why = "the token cannot be read";
		goto out;
	}
	crypto_sha256(hash, EXLOG_HASH_LEN, md);
	if (!(v = TS_VERIFY_CTX_new()) || !(imprint = OPENSSL_malloc(sizeof md)) || !X509_STORE_up_ref(store)) {
		why = "out of memory";
		goto out;
	}
	memcpy(imprint, md, sizeof md);
	TS_VERIFY_CTX_set_flags(v, TS_VFY_VERSION | TS_VFY_SIGNATURE | TS_VFY_IMPRINT);
	TS_VERIFY_CTX_set_imprint(v, imprint, sizeof md);
	imprint = NULL;
	TS_VERIFY_CTX_set_store(v, store);
	if (TS_RESP_verify_token(v, tok) != 1)
		why = "the token's signature or imprint does not verify";
out:
	ERR_clear_error();
	OPENSSL_free(imprint);
	TS_VERIFY_CTX_free(v);
	PKCS7_free(tok);
	return why;
}

static void check_seal(walker *w, const seal *x, const exlog_row *r)
{
	unsigned char hash[EXLOG_HASH_LEN];
	const char *why = NULL;

	if (strcmp(x->head, r->hash) != 0)
		why = "the seal's head hash is not the hash of the record it seals";
	else if (!w->store)
		why = "no trust anchor to check the token against (give --anchor)";
	else if (!exlog_unhex(r->hash, hash))
		why = "the sealed record's hash is malformed";
	else
		why = check_token(w->store, x, hash);
	if (why) {
		seal_fail(w, x->last_seq, why);
		return;
	}
	w->res->seals++;
	w->res->sealed_to = x->last_seq;
}

/* A record's hashed texts, copied out of a page for the lookups. */
typedef struct row_copy {
	exlog_row row;
	char *texts[24];
	int n;
} row_copy;

static const size_t text_offsets[] = {
	offsetof(exlog_row, time),
	offsetof(exlog_row, side),
	offsetof(exlog_row, message_id),
	offsetof(exlog_row, client),
	offsetof(exlog_row, service),
	offsetof(exlog_row, method),
	offsetof(exlog_row, path),
	offsetof(exlog_row, represented_party),
	offsetof(exlog_row, data_subject),
	offsetof(exlog_row, purpose),
	offsetof(exlog_row, log_mode),
	offsetof(exlog_row, request_content_type),
	offsetof(exlog_row, request_signed_at),
	offsetof(exlog_row, request_sig),
	offsetof(exlog_row, request_signer_cert),
	offsetof(exlog_row, request_body_sha256),
	offsetof(exlog_row, response_content_type),
	offsetof(exlog_row, response_signed_at),
	offsetof(exlog_row, response_sig),
	offsetof(exlog_row, response_signer_cert),
	offsetof(exlog_row, response_body_sha256),
	offsetof(exlog_row, prev_hash),
	offsetof(exlog_row, hash),
};

static egov_err row_copy_init(row_copy *c, const exlog_row *r)
{
	size_t i;
	char *s;

	memset(c, 0, sizeof *c);
	c->row = *r;
	c->row.request_body = c->row.response_body = NULL;
	for (i = 0; i < sizeof text_offsets / sizeof text_offsets[0]; i++) {
		const char *from = *(const char *const *)((const char *)r + text_offsets[i]);
		if (!(s = strdup(from ? from : "")))
			return EGOV_ENOMEM;
		c->texts[c->n++] = s;
		*(const char **)((char *)&c->row + text_offsets[i]) = s;
	}
	return EGOV_OK;
}

static void row_copy_release(row_copy *c)
{
	int i;

	for (i = 0; i < c->n; i++)
		free(c->texts[i]);
	c->n = 0;
}

typedef struct bad_row {
	row_copy copy;
	bool prev_ok, hash_ok, linked, consistent;
	unsigned char prev[EXLOG_HASH_LEN], hash[EXLOG_HASH_LEN];
} bad_row;

static void set_fault(exlog_verify_result *res, exlog_fault f, int64_t seq)
{
	res->fault = f;
	res->first_bad = seq;
}

static egov_err owner_of(walker *w, const unsigned char h[EXLOG_HASH_LEN], int64_t *seq, bool *found)
{
	char hex[EXLOG_HEX_LEN + 1];

	if (memcmp(h, w->start_prev, EXLOG_HASH_LEN) == 0) {
		*seq = w->start_seq - 1;
		*found = true;
		return EGOV_OK;
	}
	exlog_hex(h, hex);
	return w->src->owner(w->src, hex, seq, found);
}

/* The rule of the file comment (the audit verifier's) for the first bad
 * record r after the last good one (last_seq, last_hash). */
static egov_err classify(walker *w, int64_t last_seq, const unsigned char last_hash[EXLOG_HASH_LEN], bad_row *r)
{
	exlog_verify_result *res = w->res;
	char last_hex[EXLOG_HEX_LEN + 1];
	unsigned char got[EXLOG_HASH_LEN];
	int64_t owner = 0, succ = 0, seq = r->copy.row.seq;
	bool owner_found = false, succ_found = false;
	exlog_row f;
	egov_err err = EGOV_OK;
	int d;

	if (seq > last_seq + 1) {
		set_fault(res, EXLOG_FAULT_DELETED, last_seq + 1);
		goto out;
	}
	if (seq < last_seq + 1) {
		set_fault(res, EXLOG_FAULT_INSERTED, seq);
		goto out;
	}
	exlog_hex(last_hash, last_hex);
	if ((err = w->src->successor(w->src, last_hex, seq, &succ, &succ_found)))
		goto out;
	if (r->linked) {
		set_fault(res, succ_found ? EXLOG_FAULT_INSERTED : EXLOG_FAULT_CHANGED, seq);
		goto out;
	}
	if (r->prev_ok && (err = owner_of(w, r->prev, &owner, &owner_found)))
		goto out;
	if (owner_found && owner > seq) {
		set_fault(res, EXLOG_FAULT_REORDERED, seq);
		goto out;
	}
	if (succ_found) {
		set_fault(res, EXLOG_FAULT_INSERTED, seq);
		goto out;
	}
	if (owner_found && owner < last_seq) {
		set_fault(res, EXLOG_FAULT_INSERTED, owner + 1);
		goto out;
	}
	if (r->prev_ok && r->hash_ok) {
		f = r->copy.row;
		for (d = 1; d <= RENUMBER_MAX; d++) {
			f.seq = seq + d;
			if ((err = exlog_hash(w->md, r->prev, &f, got)))
				goto out;
			if (memcmp(got, r->hash, EXLOG_HASH_LEN) == 0) {
				set_fault(res, EXLOG_FAULT_DELETED, seq);
				goto out;
			}
		}
	}
	set_fault(res, EXLOG_FAULT_CHANGED, r->consistent && last_seq >= w->start_seq ? last_seq : seq);
out:
	return err;
}

static egov_err walk(walker *w)
{
	unsigned char last_hash[EXLOG_HASH_LEN], prev[EXLOG_HASH_LEN], hash[EXLOG_HASH_LEN], got[EXLOG_HASH_LEN];
	exlog_verify_result *res = w->res;
	int64_t last_seq = w->start_seq - 1;
	const seal *cur = NULL;
	bad_row bad;
	bool found_bad = false, has = false;
	char why[160];
	exlog_row row;
	egov_err err;

	memset(&bad, 0, sizeof bad);
	memcpy(last_hash, w->start_prev, sizeof last_hash);
	if ((err = w->src->next_seal(w->src, &cur)))
		goto out;
	for (;;) {
		bool prev_ok, hash_ok, linked, consistent = false;

		why[0] = '\0';
		err = w->src->next(w->src, &row, &has, why, sizeof why);
		if (err == EGOV_ECORRUPT) {
			set_fault(res, EXLOG_FAULT_CHANGED, last_seq + 1);
			snprintf(res->chain_why, sizeof res->chain_why, "%s", why);
			err = EGOV_OK;
			break;
		}
		if (err)
			goto out;
		if (!has)
			break;
		prev_ok = exlog_unhex(row.prev_hash, prev);
		hash_ok = exlog_unhex(row.hash, hash);
		linked = prev_ok && memcmp(prev, last_hash, EXLOG_HASH_LEN) == 0;
		if (prev_ok && hash_ok) {
			if ((err = exlog_hash(w->md, prev, &row, got)))
				goto out;
			consistent = memcmp(got, hash, EXLOG_HASH_LEN) == 0;
		}
		if (row.seq == last_seq + 1 && linked && consistent) {
			last_seq = row.seq;
			memcpy(last_hash, hash, sizeof last_hash);
			res->records++;
			if ((err = check_record(w, &row)))
				goto out;
			while (cur && cur->last_seq <= row.seq) {
				/* A seal below the start belongs to records the
				 * archive leaves out. */
				if (cur->last_seq == row.seq)
					check_seal(w, cur, &row);
				if ((err = w->src->next_seal(w->src, &cur)))
					goto out;
			}
			continue;
		}
		bad.prev_ok = prev_ok;
		bad.hash_ok = hash_ok;
		bad.linked = linked;
		bad.consistent = consistent;
		memcpy(bad.prev, prev, sizeof prev);
		memcpy(bad.hash, hash, sizeof hash);
		if ((err = row_copy_init(&bad.copy, &row)))
			goto out;
		found_bad = true;
		break;
	}
	/* The page is closed before the lookups: one statement at a time. */
	w->src->pause(w->src);
	if (found_bad && (err = classify(w, last_seq, last_hash, &bad)))
		goto out;
	if (cur) {
		snprintf(why, sizeof why,
			 res->fault == EXLOG_FAULT_NONE
				 ? "the log ends before the record this seal covers: records were removed from its end"
				 : "not checked: the record it covers is after the first chain fault");
		seal_fail(w, cur->last_seq, why);
	}
	res->last_seq = last_seq;
	exlog_hex(last_hash, res->head);
out:
	row_copy_release(&bad.copy);
	return err;
}

static egov_err load_store(const char *anchor, X509_STORE **out)
{
	X509_STORE *store = NULL;
	egov_err err = EGOV_OK;

	*out = NULL;
	if (!anchor || !*anchor)
		goto out;
	err = EGOV_ENOMEM;
	if (!(store = X509_STORE_new()))
		goto out;
	err = EGOV_ENOTFOUND;
	if (X509_STORE_load_file(store, anchor) != 1)
		goto out;
	/* Tokens were made over the years: the TSA certificate must have
	 * been valid when it signed, not now. Any certificate of the bundle
	 * is an anchor (a gateway may hold the issuing CA, not the root). */
	X509_STORE_set_flags(store, X509_V_FLAG_NO_CHECK_TIME | X509_V_FLAG_PARTIAL_CHAIN);
	X509_STORE_set_purpose(store, X509_PURPOSE_TIMESTAMP_SIGN);
	*out = store;
	store = NULL;
	err = EGOV_OK;
out:
	ERR_clear_error();
	X509_STORE_free(store);
	return err;
}

static egov_err walker_init(walker *w, row_src *src, const certmap *certs, const char *anchor,
			    exlog_verify_result *res)
{
	egov_err err;

	memset(w, 0, sizeof *w);
	w->src = src;
	w->certs = certs;
	w->res = res;
	w->start_seq = 1;
	buf_init(&w->canon, CANON_MAX);
	if (!(w->md = EVP_MD_CTX_new()))
		return EGOV_ENOMEM;
	if ((err = load_store(anchor, &w->store)))
		return err;
	return EGOV_OK;
}

static void walker_release(walker *w)
{
	EVP_MD_CTX_free(w->md);
	X509_STORE_free(w->store);
	buf_release(&w->canon);
}

egov_err exlog_verify_db(db *d, const char *anchor, exlog_verify_result *res)
{
	db_src src = {.base = {dbs_next, dbs_pause, dbs_owner, dbs_successor, dbs_next_seal}};
	certmap certs = {0};
	db_rows *r = NULL;
	bool has = false;
	walker w;
	egov_err err;

	memset(res, 0, sizeof *res);
	if ((err = walker_init(&w, &src.base, &certs, anchor, res)))
		goto out;
	if ((err = db_conn_open(d, &src.c)) || (err = db_conn_open(d, &src.sc)))
		goto out;
	if ((err = db_query(src.c, "SELECT sha256, pem FROM exchange_log_cert", NULL, 0, &r)))
		goto out;
	while (!(err = db_rows_next(r, &has)) && has)
		if ((err = certmap_add(&certs, db_rows_text(r, 0), db_rows_text(r, 1))))
			goto out;
	if (err)
		goto out;
	db_rows_free(r);
	r = NULL;
	certmap_sort(&certs);
	err = walk(&w);
out:
	db_rows_free(r);
	db_src_release(&src);
	certmap_release(&certs);
	walker_release(&w);
	return err;
}

/* First pass over an archive: the header, the certificates and the seals. */
static egov_err read_archive_meta(file_src *f, certmap *certs, walker *w)
{
	unsigned char *tok = NULL;
	cJSON *j = NULL;
	bool eof = false, header = false;
	const char *s;
	int64_t v;
	seal *x;
	size_t tlen = 0, cap = 0;
	egov_err err;

	for (;;) {
		if ((err = read_line(f->f, &f->line, &eof)) || eof)
			break;
		cJSON_Delete(j);
		if (!f->line.len)
			continue;
		err = EGOV_ECORRUPT;
		if (!(j = cJSON_ParseWithLength(f->line.data, f->line.len))) {
			/* A damaged record is the walk's to name (with its
			 * place in the chain); anything else damaged makes
			 * this no archive we can check. */
			if (header && strncmp(f->line.data, "{\"type\":\"record\"", 16) == 0) {
				err = EGOV_OK;
				continue;
			}
			break;
		}
		if (!header) {
			/* The first line says what this is and where the
			 * chain picks up. */
			if (!(s = jstr(j, "format")) || strcmp(s, ARCHIVE_FORMAT) != 0 || !jint(j, "from", &v) || v < 1 ||
			    !(s = jstr(j, "prev_hash")) || !exlog_unhex(s, w->start_prev))
				break;
			/* A whole log starts from zeros whatever the header
			 * claims, so a rewritten first record cannot hide
			 * behind a matching header. */
			if (v == 1)
				memset(w->start_prev, 0, sizeof w->start_prev);
			w->start_seq = v;
			header = true;
			continue;
		}
		if (strcmp(line_type(j), "cert") == 0) {
			if ((err = certmap_add(certs, jstr(j, "sha256"), jstr(j, "pem"))))
				break;
		} else if (strcmp(line_type(j), "seal") == 0) {
			if (!(s = jstr(j, "token")) || b64_decode(s, &tok, &tlen) != EGOV_OK)
				break;
			if (f->nseals == cap) {
				cap = cap ? 2 * cap : 64;
				if (!(x = realloc(f->seals, cap * sizeof *x))) {
					err = EGOV_ENOMEM;
					break;
				}
				f->seals = x;
			}
			x = &f->seals[f->nseals];
			memset(x, 0, sizeof *x);
			if (!jint(j, "first_seq", &x->first_seq) || !jint(j, "last_seq", &x->last_seq) ||
			    !(s = jstr(j, "head_hash")))
				break;
			snprintf(x->head, sizeof x->head, "%s", s);
			snprintf(x->time, sizeof x->time, "%s", (s = jstr(j, "time")) ? s : "");
			x->tok = tok;
			x->tok_len = tlen;
			tok = NULL;
			f->nseals++;
		}
		err = EGOV_OK;
	}
	if (!err && !header)
		err = EGOV_ECORRUPT;
	cJSON_Delete(j);
	free(tok);
	if (!err && f->nseals)
		qsort(f->seals, f->nseals, sizeof *f->seals, seal_cmp);
	return err;
}

egov_err exlog_verify_file(const char *path, const char *anchor, exlog_verify_result *res)
{
	file_src src = {.base = {fs_next, fs_pause, fs_owner, fs_successor, fs_next_seal}, .path = path};
	certmap certs = {0};
	walker w;
	egov_err err;

	memset(res, 0, sizeof *res);
	buf_init(&src.line, LINE_MAX_BYTES);
	if ((err = walker_init(&w, &src.base, &certs, anchor, res)))
		goto out;
	err = EGOV_ENOTFOUND;
	if (!(src.f = fopen(path, "r")))
		goto out;
	if ((err = read_archive_meta(&src, &certs, &w)))
		goto out;
	certmap_sort(&certs);
	rewind(src.f);
	err = walk(&w);
out:
	file_src_release(&src);
	certmap_release(&certs);
	walker_release(&w);
	return err;
}

/* ---- archive ------------------------------------------------------------------------ */

static egov_err json_text(buf *b, const char *name, const char *v, bool first)
{
	egov_err err;

	if ((err = buf_addf(b, "%s\"%s\":\"", first ? "" : ",", name)) || (err = buf_add_json_str(b, v)))
		return err;
	return buf_addc(b, '"');
}

static egov_err json_body(buf *b, const char *name, const void *body, size_t len)
{
	egov_err err;

	if (!body)
		return buf_addf(b, ",\"%s\":null", name);
	if ((err = buf_addf(b, ",\"%s\":\"", name)) || (err = b64_add(b, body, len)))
		return err;
	return buf_addc(b, '"');
}

/* One record as a JSON object (the archive's record line, also `show`).
 * with_bodies false writes the body lengths instead. */
static egov_err record_json(buf *b, const exlog_row *r, bool with_bodies)
{
	egov_err err;

	if ((err = buf_addf(b, "{\"type\":\"record\",\"seq\":%" PRId64, r->seq)) ||
	    (err = json_text(b, "time", r->time, false)) || (err = json_text(b, "side", r->side, false)) ||
	    (err = json_text(b, "message_id", r->message_id, false)) ||
	    (err = json_text(b, "client", r->client, false)) || (err = json_text(b, "service", r->service, false)) ||
	    (err = json_text(b, "method", r->method, false)) || (err = json_text(b, "path", r->path, false)) ||
	    (err = json_text(b, "represented_party", r->represented_party, false)) ||
	    (err = json_text(b, "data_subject", r->data_subject, false)) ||
	    (err = json_text(b, "purpose", r->purpose, false)) ||
	    (err = buf_addf(b, ",\"status\":%" PRId64, r->status)) ||
	    (err = json_text(b, "log_mode", r->log_mode, false)) ||
	    (err = json_text(b, "request_content_type", r->request_content_type, false)) ||
	    (err = json_text(b, "request_signed_at", r->request_signed_at, false)) ||
	    (err = json_text(b, "request_sig", r->request_sig, false)) ||
	    (err = json_text(b, "request_signer_cert", r->request_signer_cert, false)) ||
	    (err = json_text(b, "request_body_sha256", r->request_body_sha256, false)) ||
	    (err = json_text(b, "response_content_type", r->response_content_type, false)) ||
	    (err = json_text(b, "response_signed_at", r->response_signed_at, false)) ||
	    (err = json_text(b, "response_sig", r->response_sig, false)) ||
	    (err = json_text(b, "response_signer_cert", r->response_signer_cert, false)) ||
	    (err = json_text(b, "response_body_sha256", r->response_body_sha256, false)))
		return err;
	if (with_bodies) {
		if ((err = json_body(b, "request_body", r->request_body, r->request_body_len)) ||
		    (err = json_body(b, "response_body", r->response_body, r->response_body_len)))
			return err;
	} else if ((err = buf_addf(b, ",\"request_body_len\":%zu,\"response_body_len\":%zu", r->request_body_len,
				   r->response_body_len))) {
		return err;
	}
	if ((err = json_text(b, "prev_hash", r->prev_hash, false)) || (err = json_text(b, "hash", r->hash, false)))
		return err;
	return buf_adds(b, "}\n");
}

static egov_err write_all(int fd, buf *b)
{
	size_t off = 0;
	ssize_t n;

	while (off < b->len) {
		n = write(fd, b->data + off, b->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return EGOV_EIO;
		off += (size_t)n;
	}
	buf_reset(b);
	return EGOV_OK;
}

egov_err exlog_archive(db *d, const char *path, int64_t from, int64_t *records)
{
	char tmp[4200], now[32], sql[sizeof row_cols + 128];
	int64_t after, n = 0, in_page;
	db_conn *c = NULL;
	db_rows *r = NULL;
	char *prev = NULL;
	bool has = false;
	exlog_row row;
	db_param p[1];
	int fd = -1;
	buf b;
	egov_err err = EGOV_EINVAL;

	buf_init(&b, LINE_MAX_BYTES);
	if (records)
		*records = 0;
	if (from < 1 || snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
		goto out;
	if ((err = db_conn_open(d, &c)))
		goto out;
	/* Where the chain picks up: the prev_hash of the first record. */
	p[0] = DBP_I(from);
	if ((err = db_query_text(c, "SELECT prev_hash FROM exchange_log WHERE seq = ?", p, 1, &prev)))
		goto out;
	err = EGOV_EIO;
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		goto out;
	time_format_rfc3339(time_now_us(), 0, now);
	if ((err = buf_addf(&b, "{\"format\":\"" ARCHIVE_FORMAT "\",\"from\":%" PRId64 ",\"prev_hash\":\"%s\"", from,
			    prev ? prev : "0000000000000000000000000000000000000000000000000000000000000000")) ||
	    (err = json_text(&b, "created_at", now, false)) || (err = buf_adds(&b, "}\n")) ||
	    (err = write_all(fd, &b)))
		goto out;

	if ((err = db_query(c, "SELECT sha256, pem FROM exchange_log_cert ORDER BY sha256", NULL, 0, &r)))
		goto out;
	while (!(err = db_rows_next(r, &has)) && has) {
		if ((err = buf_adds(&b, "{\"type\":\"cert\"")) ||
		    (err = json_text(&b, "sha256", col_text(r, 0), false)) ||
		    (err = json_text(&b, "pem", col_text(r, 1), false)) || (err = buf_adds(&b, "}\n")) ||
		    (err = write_all(fd, &b)))
			goto out;
	}
	db_rows_free(r);
	r = NULL;
	if (err)
		goto out;

	p[0] = DBP_I(from);
	if ((err = db_query(c,
			    "SELECT first_seq, last_seq, head_hash, token, time FROM exchange_log_seal"
			    " WHERE last_seq >= ? ORDER BY last_seq",
			    p, 1, &r)))
		goto out;
	while (!(err = db_rows_next(r, &has)) && has) {
		size_t tlen = 0;
		const void *tok = db_rows_blob(r, 3, &tlen);

		if ((err = buf_addf(&b, "{\"type\":\"seal\",\"first_seq\":%" PRId64 ",\"last_seq\":%" PRId64,
				    db_rows_int(r, 0), db_rows_int(r, 1))) ||
		    (err = json_text(&b, "head_hash", col_text(r, 2), false)) ||
		    (err = json_text(&b, "time", col_text(r, 4), false)) || (err = buf_adds(&b, ",\"token\":\"")) ||
		    (err = b64_add(&b, tok ? tok : "", tok ? tlen : 0)) || (err = buf_adds(&b, "\"}\n")) ||
		    (err = write_all(fd, &b)))
			goto out;
	}
	db_rows_free(r);
	r = NULL;
	if (err)
		goto out;

	after = from - 1;
	snprintf(sql, sizeof sql, "SELECT %s FROM exchange_log WHERE seq > ? ORDER BY seq LIMIT %d", row_cols,
		 ROWS_PAGE);
	do {
		p[0] = DBP_I(after);
		if ((err = db_query(c, sql, p, 1, &r)))
			goto out;
		in_page = 0;
		while (!(err = db_rows_next(r, &has)) && has) {
			row_from_db(r, &row);
			after = row.seq;
			in_page++;
			n++;
			if ((err = record_json(&b, &row, true)) || (err = write_all(fd, &b)))
				goto out;
		}
		db_rows_free(r);
		r = NULL;
		if (err)
			goto out;
	} while (in_page == ROWS_PAGE);

	err = EGOV_EIO;
	if (fsync(fd) != 0 || close(fd) != 0) {
		fd = -1;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		goto out;
	if (records)
		*records = n;
	err = EGOV_OK;
out:
	if (fd >= 0)
		close(fd);
	if (err)
		unlink(tmp);
	db_rows_free(r);
	if (c)
		db_conn_close(c);
	free(prev);
	buf_release(&b);
	return err;
}

/* ---- queries ------------------------------------------------------------------------- */

/* Prints every record matching where (one parameter) as JSON lines. */
static egov_err print_records(db *d, const char *where, const char *value, bool with_bodies, int64_t *count)
{
	char sql[sizeof row_cols + 256];
	db_conn *c = NULL;
	db_rows *r = NULL;
	bool has = false;
	exlog_row row;
	db_param p[] = {DBP_S(value)};
	buf b;
	egov_err err;

	*count = 0;
	buf_init(&b, LINE_MAX_BYTES);
	snprintf(sql, sizeof sql, "SELECT %s FROM exchange_log WHERE %s ORDER BY seq", row_cols, where);
	if ((err = db_conn_open(d, &c)) || (err = db_query(c, sql, p, 1, &r)))
		goto out;
	while (!(err = db_rows_next(r, &has)) && has) {
		row_from_db(r, &row);
		buf_reset(&b);
		if ((err = record_json(&b, &row, with_bodies)))
			goto out;
		fwrite(b.data, 1, b.len, stdout);
		(*count)++;
	}
out:
	db_rows_free(r);
	if (c)
		db_conn_close(c);
	buf_release(&b);
	return err;
}

/* ---- the command ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fputs("usage: egov exchange log verify [--file ARCHIVE] [--anchor CA.pem]\n"
	      "       egov exchange log archive --out FILE [--from SEQ]\n"
	      "       egov exchange log show --message-id ID\n"
	      "       egov exchange log list --subject ID\n",
	      f);
}

/* The value after flag name in argv, or NULL; *bad when a flag is unknown
 * or lacks its value. */
static const char *flag(int argc, char **argv, const char *name, const char *const *known, bool *bad)
{
	const char *v = NULL;
	int i, k;

	for (i = 2; i < argc; i++) {
		for (k = 0; known[k] && strcmp(argv[i], known[k]) != 0; k++)
			;
		if (!known[k] || i + 1 >= argc) {
			*bad = true;
			return NULL;
		}
		if (strcmp(argv[i], name) == 0)
			v = argv[i + 1];
		i++;
	}
	return v;
}

static void print_result(const exlog_verify_result *r)
{
	if (r->fault == EXLOG_FAULT_NONE)
		printf("chain intact: %" PRId64 " records, head %s\n", r->records, r->head);
	else
		printf("chain BROKEN at record %" PRId64 ": %s%s%s (%" PRId64 " records before it are intact)\n",
		       r->first_bad, exlog_fault_name(r->fault), r->chain_why[0] ? ", " : "", r->chain_why, r->records);
	if (r->sig_bad)
		printf("signatures BAD at record %" PRId64 ": %s (%" PRId64 " signatures verified)\n", r->sig_bad,
		       r->sig_why, r->signatures);
	else
		printf("signatures verified: %" PRId64 "\n", r->signatures);
	if (r->seal_failed)
		printf("seal BAD (sealing up to record %" PRId64 "): %s (%" PRId64 " seals verified)\n", r->seal_bad,
		       r->seal_why, r->seals);
	else
		printf("seals verified: %" PRId64 ", sealed up to record %" PRId64 " (%" PRId64
		       " records after the last seal)\n",
		       r->seals, r->sealed_to, r->last_seq > r->sealed_to ? r->last_seq - r->sealed_to : 0);
	printf("%s\n", exlog_verify_ok(r) ? "OK" : "FAILED");
}

static int cmd_verify(int argc, char **argv, db *d)
{
	static const char *const known[] = {"--file", "--anchor", NULL};
	const egov_config *cfg = app()->config;
	exlog_verify_result res;
	char anchor[4096] = "";
	const char *file, *a;
	bool bad = false;
	egov_err err;

	file = flag(argc, argv, "--file", known, &bad);
	a = flag(argc, argv, "--anchor", known, &bad);
	if (bad) {
		usage(stderr);
		return 2;
	}
	if (a)
		snprintf(anchor, sizeof anchor, "%s", a);
	else if (cfg)
		exlog_default_anchor(cfg, anchor, sizeof anchor);
	if (*anchor && access(anchor, R_OK) != 0) {
		fprintf(stderr, "egov: exchange log verify: cannot read the anchor %s\n", anchor);
		return 2;
	}
	if (file && access(file, R_OK) != 0) {
		fprintf(stderr, "egov: exchange log verify: cannot read %s\n", file);
		return 2;
	}
	err = file ? exlog_verify_file(file, anchor, &res) : exlog_verify_db(d, anchor, &res);
	if (err == EGOV_ENOTFOUND) {
		fprintf(stderr, "egov: exchange log verify: the anchor %s holds no certificate\n", anchor);
		return 2;
	}
	if (err == EGOV_ECORRUPT) {
		fprintf(stderr, "egov: exchange log verify: %s is not a message log archive\n", file ? file : "the log");
		return 1;
	}
	if (err) {
		fprintf(stderr, "egov: exchange log verify: %s\n", egov_err_name(err));
		return 2;
	}
	if (!*anchor)
		printf("no trust anchor (give --anchor): seals cannot be checked\n");
	print_result(&res);
	return exlog_verify_ok(&res) ? 0 : 1;
}

static bool parse_seq(const char *s, int64_t *out)
{
	char *end = NULL;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || !end || *end || end == s || v < 1)
		return false;
	*out = v;
	return true;
}

static int cmd_archive(int argc, char **argv, db *d)
{
	static const char *const known[] = {"--out", "--from", NULL};
	const char *out, *from_s;
	int64_t from = 1, n = 0;
	bool bad = false;
	egov_err err;

	out = flag(argc, argv, "--out", known, &bad);
	from_s = flag(argc, argv, "--from", known, &bad);
	if (bad || !out || (from_s && !parse_seq(from_s, &from))) {
		usage(stderr);
		return 2;
	}
	if ((err = exlog_archive(d, out, from, &n))) {
		fprintf(stderr, "egov: exchange log archive: cannot write %s: %s\n", out, egov_err_name(err));
		return 2;
	}
	printf("archived %" PRId64 " records from %" PRId64 " to %s\n", n, from, out);
	return 0;
}

static int cmd_query(int argc, char **argv, db *d, const char *name, const char *where, bool bodies)
{
	const char *const known[] = {name, NULL};
	const char *v;
	int64_t n = 0;
	bool bad = false;
	egov_err err;

	v = flag(argc, argv, name, known, &bad);
	if (bad || !v || !*v) {
		usage(stderr);
		return 2;
	}
	if ((err = print_records(d, where, v, bodies, &n))) {
		fprintf(stderr, "egov: exchange log: cannot read the log: %s\n", egov_err_name(err));
		return 2;
	}
	/* show names one exchange: finding none is a failure; list asks
	 * what there is, and nothing is an answer. */
	return n || strcmp(name, "--subject") == 0 ? 0 : 1;
}

int exchange_log_command(int argc, char **argv, db *d)
{
	const char *sub = argc >= 2 ? argv[1] : "";

	if (strcmp(sub, "verify") == 0)
		return cmd_verify(argc, argv, d);
	if (strcmp(sub, "archive") == 0)
		return cmd_archive(argc, argv, d);
	if (strcmp(sub, "show") == 0)
		return cmd_query(argc, argv, d, "--message-id", "message_id = ?", true);
	if (strcmp(sub, "list") == 0)
		return cmd_query(argc, argv, d, "--subject", "data_subject = ?", false);
	usage(stderr);
	return 2;
}
