/*
 * verify.c: checking the message log, in the database or in
 * an archive file (offline).
 *
 * The chain is walked by the chain-log engine's verifier
 * (core/chainlog_verify.c), which names the first fault by its rule, over
 * the database or over an archive read here as a source of records (whose
 * chain picks up at the header's prev_hash). For every record whose link
 * verified this file also checks its two signatures over the canonical
 * texts of docs/exchange.md (with the certificates kept beside the log,
 * each checked to hash to the name it is kept under) and, in full mode,
 * that the bodies hash to the signed digests. Seals are read in last_seq
 * order beside the records: when the walk reaches a seal's last_seq, the
 * token must chain to the anchor and its imprint must be SHA-256 of that
 * record's hash. A seal past the last good record fails (the records it
 * sealed were removed or are after a fault).
 *
 * Memory stays flat: records and seals are paged (database) or streamed
 * (file); only certificates are held whole (a log names few).
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/ts.h>
#include <openssl/x509.h>

#include "core/buf.h"
#include "core/crypto.h"
#include "exchange/log/exlog_int.h"
#include "core/banned.h"

#define SEALS_PAGE 64
#define STR_(x) #x
#define STR(x) STR_(x)

/* ---- small helpers -------------------------------------------------------- */

const char *exlog_fault_name(exlog_fault f)
{
	/* The two enums name the same faults in the same order. */
	return chainlog_fault_name((chainlog_fault)f);
}

bool exlog_verify_ok(const exlog_verify_result *r)
{
	return r->fault == EXLOG_FAULT_NONE && r->sig_bad == 0 && !r->seal_failed;
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
	m->v[m->n].ok = exchange_pem_matches(sha256, pem);
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

/* ---- seals ---------------------------------------------------------------- */

typedef struct seal {
	int64_t first_seq, last_seq;
	char head[EXLOG_HEX_LEN + 1];
	unsigned char *tok;
	size_t tok_len;
	char time[40];
} seal;

/* Seals in last_seq order: the next one, valid until the next call; NULL
 * at the end. */
typedef egov_err (*next_seal_fn)(void *src, const seal **out);

static void seal_release(seal *x)
{
	free(x->tok);
	x->tok = NULL;
}

/* -- from the database, a page at a time on a connection of their own, so
 * their page stays open beside the records' -- */

typedef struct db_seals {
	db_conn *sc;
	seal seals[SEALS_PAGE];
	int nseals, iseal;
	int64_t seal_after;
	bool seals_end;
} db_seals;

static egov_err dbs_next_seal(void *s, const seal **out)
{
	db_seals *d = s;
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
		snprintf(x->head, sizeof x->head, "%s", db_rows_text(r, 2) ? db_rows_text(r, 2) : "");
		snprintf(x->time, sizeof x->time, "%s", db_rows_text(r, 4) ? db_rows_text(r, 4) : "");
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

static void db_seals_release(db_seals *d)
{
	int i;

	for (i = 0; i < d->nseals; i++)
		seal_release(&d->seals[i]);
	if (d->sc)
		db_conn_close(d->sc);
}

/* ---- an archive file as a source of records -------------------------------------- */

typedef struct file_src {
	const char *path;
	FILE *f;
	buf line;
	int64_t lineno;
	cJSON *j;
	unsigned char *bodies[2];
	exlog_row row;
	db_param vals[EXLOG_NCOLS];
	seal *seals;
	size_t nseals, iseal;
} file_src;

static void fs_clear_row(file_src *f)
{
	cJSON_Delete(f->j);
	f->j = NULL;
	free(f->bodies[0]);
	free(f->bodies[1]);
	f->bodies[0] = f->bodies[1] = NULL;
}

static egov_err fs_next(void *s, chainlog_row *out, bool *has, char *why, size_t whylen)
{
	file_src *f = s;
	exlog_row *row = &f->row;
	bool eof = false;
	egov_err err;

	*has = false;
	fs_clear_row(f);
	if (!f->f)
		return EGOV_OK;
	for (;;) {
		if ((err = exlog_read_line(f->f, &f->line, &eof)))
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
		if (strcmp(exlog_line_type(f->j), "record") != 0) {
			cJSON_Delete(f->j);
			f->j = NULL;
			continue;
		}
		err = exlog_row_from_json(f->j, row, f->bodies);
		if (err == EGOV_ECORRUPT)
			snprintf(why, whylen, "line %" PRId64 " is not a complete record", f->lineno);
		if (err)
			return err;
		exlog_row_vals(row, f->vals);
		*out = (chainlog_row){.seq = row->seq, .vals = f->vals, .prev_hash = row->prev_hash, .hash = row->hash};
		*has = true;
		return EGOV_OK;
	}
}

static void fs_pause(void *s)
{
	file_src *f = s;

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
	buf_init(&line, EXLOG_LINE_MAX);
	if (!in)
		goto out;
	for (;;) {
		if ((err = exlog_read_line(in, &line, &eof)) || eof)
			break;
		cJSON_Delete(j);
		free(bodies[0]);
		free(bodies[1]);
		bodies[0] = bodies[1] = NULL;
		if (!(j = cJSON_ParseWithLength(line.data, line.len)) || strcmp(exlog_line_type(j), "record") != 0 ||
		    exlog_row_from_json(j, &row, bodies) != EGOV_OK)
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

static egov_err fs_owner(void *s, const char *hex, int64_t *seq, bool *found)
{
	return fs_scan(s, hex, false, 0, seq, found);
}

static egov_err fs_successor(void *s, const char *hex, int64_t above, int64_t *seq, bool *found)
{
	return fs_scan(s, hex, true, above, seq, found);
}

static const chainlog_source file_source = {fs_next, fs_pause, fs_owner, fs_successor};

static egov_err fs_next_seal(void *s, const seal **out)
{
	file_src *f = s;

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

	fs_pause(f);
	buf_release(&f->line);
	for (i = 0; i < f->nseals; i++)
		seal_release(&f->seals[i]);
	free(f->seals);
}

/* ---- the checks beside the chain ------------------------------------------------ */

typedef struct checker {
	const certmap *certs;
	X509_STORE *store; /* NULL: no anchor */
	buf canon;
	exlog_verify_result *res;
	next_seal_fn next_seal;
	void *seal_src;
	const seal *cur; /* the next seal to reach */
} checker;

static void sig_fail(checker *w, int64_t seq, const char *why)
{
	if (!w->res->sig_bad) {
		w->res->sig_bad = seq;
		snprintf(w->res->sig_why, sizeof w->res->sig_why, "%s", why);
	}
}

static void seal_fail(checker *w, int64_t last_seq, const char *why)
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
static egov_err check_record(checker *w, const exlog_row *r)
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

static void check_seal(checker *w, const seal *x, const exlog_row *r)
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

/* The engine's good() hook: a record whose link verified. */
static egov_err check_good(void *ctx, const chainlog_row *cr)
{
	checker *w = ctx;
	exlog_row row;
	egov_err err;

	exlog_row_from_chain(cr, &row);
	if ((err = check_record(w, &row)))
		return err;
	while (w->cur && w->cur->last_seq <= row.seq) {
		/* A seal below the start belongs to records the archive leaves
		 * out. */
		if (w->cur->last_seq == row.seq)
			check_seal(w, w->cur, &row);
		if ((err = w->next_seal(w->seal_src, &w->cur)))
			return err;
	}
	return EGOV_OK;
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

static egov_err checker_init(checker *w, const certmap *certs, const char *anchor, exlog_verify_result *res,
			     next_seal_fn next_seal, void *seal_src)
{
	memset(w, 0, sizeof *w);
	w->certs = certs;
	w->res = res;
	w->next_seal = next_seal;
	w->seal_src = seal_src;
	buf_init(&w->canon, EXLOG_CANON_MAX);
	return load_store(anchor, &w->store);
}

static void checker_release(checker *w)
{
	X509_STORE_free(w->store);
	buf_release(&w->canon);
}

/* Walks the chain from src (NULL: the database on c) with the checks, and
 * fills what the engine found into w->res. */
static egov_err check_all(checker *w, db_conn *c, const chainlog_source *src, void *src_ctx, int64_t start_seq,
			  const unsigned char start_prev[EXLOG_HASH_LEN])
{
	chainlog_verify_opts o = {.start_seq = start_seq, .start_prev = start_prev, .good = check_good, .ctx = w};
	exlog_verify_result *res = w->res;
	chainlog_verify_result cr;
	char why[160];
	egov_err err;

	if ((err = w->next_seal(w->seal_src, &w->cur)))
		return err;
	err = src ? chainlog_verify_source(&exlog_chain, src, src_ctx, &o, &cr) : chainlog_verify(&exlog_chain, c, &o, &cr);
	if (err)
		return err;
	res->records = cr.records;
	/* The two enums name the same faults in the same order. */
	res->fault = (exlog_fault)cr.fault;
	res->first_bad = cr.first_bad;
	snprintf(res->chain_why, sizeof res->chain_why, "%s", cr.why);
	res->last_seq = cr.last_seq;
	memcpy(res->head, cr.head, sizeof res->head);
	if (w->cur) {
		snprintf(why, sizeof why,
			 res->fault == EXLOG_FAULT_NONE
				 ? "the log ends before the record this seal covers: records were removed from its end"
				 : "not checked: the record it covers is after the first chain fault");
		seal_fail(w, w->cur->last_seq, why);
	}
	return EGOV_OK;
}

/* ---- the two entry points ---------------------------------------------------------- */

egov_err exlog_verify_db(db *d, const char *anchor, exlog_verify_result *res)
{
	db_seals seals = {0};
	certmap certs = {0};
	db_conn *c = NULL;
	db_rows *r = NULL;
	bool has = false;
	checker w;
	egov_err err;

	memset(res, 0, sizeof *res);
	if ((err = checker_init(&w, &certs, anchor, res, dbs_next_seal, &seals)))
		goto out;
	if ((err = db_conn_open(d, &c)) || (err = db_conn_open(d, &seals.sc)))
		goto out;
	if ((err = db_query(c, "SELECT sha256, pem FROM exchange_log_cert", NULL, 0, &r)))
		goto out;
	while (!(err = db_rows_next(r, &has)) && has)
		if ((err = certmap_add(&certs, db_rows_text(r, 0), db_rows_text(r, 1))))
			goto out;
	if (err)
		goto out;
	db_rows_free(r);
	r = NULL;
	certmap_sort(&certs);
	err = check_all(&w, c, NULL, NULL, 1, NULL);
out:
	db_rows_free(r);
	if (c)
		db_conn_close(c);
	db_seals_release(&seals);
	certmap_release(&certs);
	checker_release(&w);
	return err;
}

/* First pass over an archive: the header, the certificates and the seals. */
static egov_err read_archive_meta(file_src *f, certmap *certs, int64_t *start_seq,
				  unsigned char start_prev[EXLOG_HASH_LEN])
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
		if ((err = exlog_read_line(f->f, &f->line, &eof)) || eof)
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
			if (!(s = exlog_jstr(j, "format")) || strcmp(s, EXLOG_ARCHIVE_FORMAT) != 0 || !exlog_jint(j, "from", &v) || v < 1 ||
			    !(s = exlog_jstr(j, "prev_hash")) || !exlog_unhex(s, start_prev))
				break;
			/* A whole log starts from zeros whatever the header
			 * claims, so a rewritten first record cannot hide
			 * behind a matching header. */
			if (v == 1)
				memset(start_prev, 0, EXLOG_HASH_LEN);
			*start_seq = v;
			header = true;
			continue;
		}
		if (strcmp(exlog_line_type(j), "cert") == 0) {
			if ((err = certmap_add(certs, exlog_jstr(j, "sha256"), exlog_jstr(j, "pem"))))
				break;
		} else if (strcmp(exlog_line_type(j), "seal") == 0) {
			if (!(s = exlog_jstr(j, "token")) || exlog_b64_decode(s, &tok, &tlen) != EGOV_OK)
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
			if (!exlog_jint(j, "first_seq", &x->first_seq) || !exlog_jint(j, "last_seq", &x->last_seq) ||
			    !(s = exlog_jstr(j, "head_hash")))
				break;
			snprintf(x->head, sizeof x->head, "%s", s);
			snprintf(x->time, sizeof x->time, "%s", (s = exlog_jstr(j, "time")) ? s : "");
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
	unsigned char start_prev[EXLOG_HASH_LEN] = {0};
	file_src src = {.path = path};
	int64_t start_seq = 1;
	certmap certs = {0};
	checker w;
	egov_err err;

	memset(res, 0, sizeof *res);
	buf_init(&src.line, EXLOG_LINE_MAX);
	if ((err = checker_init(&w, &certs, anchor, res, fs_next_seal, &src)))
		goto out;
	err = EGOV_ENOTFOUND;
	if (!(src.f = fopen(path, "r")))
		goto out;
	if ((err = read_archive_meta(&src, &certs, &start_seq, start_prev)))
		goto out;
	certmap_sort(&certs);
	rewind(src.f);
	err = check_all(&w, NULL, &file_source, &src, start_seq, start_prev);
out:
	file_src_release(&src);
	certmap_release(&certs);
	checker_release(&w);
	return err;
}
