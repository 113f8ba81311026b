/*
 * archive.c: the message log's records as JSON lines, and
 * archives: `egov exchange log archive` writes the records from a seq on,
 * every certificate and the seals that cover them to a file that
 * verify.c checks with no database.
 *
 * An archive is created 0600 beside its final name, fsynced and renamed
 * into place (keys/files.c), so a reader never sees half of one. Reading one back, line
 * by line, is here too (the verifier's file source uses it).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "core/buf.h"
#include "core/timeutil.h"
#include "exchange/log/exlog_int.h"
#include "core/banned.h"

/* Records per page: bodies may be a megabyte each and PostgreSQL hands a
 * whole result over at once, so pages are small. */
#define ROWS_PAGE 256

egov_err exlog_b64_add(buf *out, const void *data, size_t len)
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

static const char *col_text(db_rows *r, int i)
{
	const char *s = db_rows_text(r, i);
	return s ? s : "";
}

/* A body column: NULL for SQL NULL (digest mode), else its bytes (an
 * empty body is "" and not NULL). */
static void col_body(db_rows *r, int i, const void **body, size_t *len)
{
	*body = NULL;
	*len = 0;
	if (db_rows_isnull(r, i))
		return;
	*body = db_rows_blob(r, i, len);
	if (!*body)
		*body = "";
}

void exlog_row_from_db(db_rows *r, exlog_row *row)
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
	col_body(r, 18, &row->request_body, &row->request_body_len);
	row->response_content_type = col_text(r, 19);
	row->response_signed_at = col_text(r, 20);
	row->response_sig = col_text(r, 21);
	row->response_signer_cert = col_text(r, 22);
	row->response_body_sha256 = col_text(r, 23);
	col_body(r, 24, &row->response_body, &row->response_body_len);
	row->prev_hash = col_text(r, 25);
	row->hash = col_text(r, 26);
}

egov_err exlog_json_text(buf *b, const char *name, const char *v, bool first)
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
	if ((err = buf_addf(b, ",\"%s\":\"", name)) || (err = exlog_b64_add(b, body, len)))
		return err;
	return buf_addc(b, '"');
}

egov_err exlog_record_json(buf *b, const exlog_row *r, bool with_bodies)
{
	egov_err err;

	if ((err = buf_addf(b, "{\"type\":\"record\",\"seq\":%" PRId64, r->seq)) ||
	    (err = exlog_json_text(b, "time", r->time, false)) || (err = exlog_json_text(b, "side", r->side, false)) ||
	    (err = exlog_json_text(b, "message_id", r->message_id, false)) ||
	    (err = exlog_json_text(b, "client", r->client, false)) || (err = exlog_json_text(b, "service", r->service, false)) ||
	    (err = exlog_json_text(b, "method", r->method, false)) || (err = exlog_json_text(b, "path", r->path, false)) ||
	    (err = exlog_json_text(b, "represented_party", r->represented_party, false)) ||
	    (err = exlog_json_text(b, "data_subject", r->data_subject, false)) ||
	    (err = exlog_json_text(b, "purpose", r->purpose, false)) ||
	    (err = buf_addf(b, ",\"status\":%" PRId64, r->status)) ||
	    (err = exlog_json_text(b, "log_mode", r->log_mode, false)) ||
	    (err = exlog_json_text(b, "request_content_type", r->request_content_type, false)) ||
	    (err = exlog_json_text(b, "request_signed_at", r->request_signed_at, false)) ||
	    (err = exlog_json_text(b, "request_sig", r->request_sig, false)) ||
	    (err = exlog_json_text(b, "request_signer_cert", r->request_signer_cert, false)) ||
	    (err = exlog_json_text(b, "request_body_sha256", r->request_body_sha256, false)) ||
	    (err = exlog_json_text(b, "response_content_type", r->response_content_type, false)) ||
	    (err = exlog_json_text(b, "response_signed_at", r->response_signed_at, false)) ||
	    (err = exlog_json_text(b, "response_sig", r->response_sig, false)) ||
	    (err = exlog_json_text(b, "response_signer_cert", r->response_signer_cert, false)) ||
	    (err = exlog_json_text(b, "response_body_sha256", r->response_body_sha256, false)))
		return err;
	if (with_bodies) {
		if ((err = json_body(b, "request_body", r->request_body, r->request_body_len)) ||
		    (err = json_body(b, "response_body", r->response_body, r->response_body_len)))
			return err;
	} else if ((err = buf_addf(b, ",\"request_body_len\":%zu,\"response_body_len\":%zu", r->request_body_len,
				   r->response_body_len))) {
		return err;
	}
	if ((err = exlog_json_text(b, "prev_hash", r->prev_hash, false)) || (err = exlog_json_text(b, "hash", r->hash, false)))
		return err;
	return buf_adds(b, "}\n");
}

/* Appends what b holds to the archive and empties b. */
static egov_err write_all(exchange_file *f, buf *b)
{
	egov_err err = exchange_file_append(f, b->data, b->len);

	buf_reset(b);
	return err;
}

egov_err exlog_archive(db *d, const char *path, int64_t from, int64_t *records)
{
	char now[32], sql[sizeof EXLOG_ROW_COLS + 128];
	int64_t after, n = 0, in_page;
	db_conn *c = NULL;
	db_rows *r = NULL;
	char *prev = NULL;
	bool has = false;
	exlog_row row;
	db_param p[1];
	exchange_file f = {.fd = -1};
	bool open_file = false;
	buf b;
	egov_err err = EGOV_EINVAL;

	buf_init(&b, EXLOG_LINE_MAX);
	if (records)
		*records = 0;
	if (from < 1)
		goto out;
	if ((err = db_conn_open(d, &c)))
		goto out;
	/* Where the chain picks up: the prev_hash of the first record. */
	p[0] = DBP_I(from);
	if ((err = db_query_text(c, "SELECT prev_hash FROM exchange_log WHERE seq = ?", p, 1, &prev)))
		goto out;
	if ((err = exchange_file_begin(&f, path, 0600)))
		goto out;
	open_file = true;
	time_format_rfc3339(time_now_us(), 0, now);
	if ((err = buf_addf(&b, "{\"format\":\"" EXLOG_ARCHIVE_FORMAT "\",\"from\":%" PRId64 ",\"prev_hash\":\"%s\"", from,
			    prev ? prev : "0000000000000000000000000000000000000000000000000000000000000000")) ||
	    (err = exlog_json_text(&b, "created_at", now, false)) || (err = buf_adds(&b, "}\n")) ||
	    (err = write_all(&f, &b)))
		goto out;

	if ((err = db_query(c, "SELECT sha256, pem FROM exchange_log_cert ORDER BY sha256", NULL, 0, &r)))
		goto out;
	while (!(err = db_rows_next(r, &has)) && has) {
		if ((err = buf_adds(&b, "{\"type\":\"cert\"")) ||
		    (err = exlog_json_text(&b, "sha256", col_text(r, 0), false)) ||
		    (err = exlog_json_text(&b, "pem", col_text(r, 1), false)) || (err = buf_adds(&b, "}\n")) ||
		    (err = write_all(&f, &b)))
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
		    (err = exlog_json_text(&b, "head_hash", col_text(r, 2), false)) ||
		    (err = exlog_json_text(&b, "time", col_text(r, 4), false)) || (err = buf_adds(&b, ",\"token\":\"")) ||
		    (err = exlog_b64_add(&b, tok ? tok : "", tok ? tlen : 0)) || (err = buf_adds(&b, "\"}\n")) ||
		    (err = write_all(&f, &b)))
			goto out;
	}
	db_rows_free(r);
	r = NULL;
	if (err)
		goto out;

	after = from - 1;
	snprintf(sql, sizeof sql, "SELECT %s FROM exchange_log WHERE seq > ? ORDER BY seq LIMIT %d", EXLOG_ROW_COLS,
		 ROWS_PAGE);
	do {
		p[0] = DBP_I(after);
		if ((err = db_query(c, sql, p, 1, &r)))
			goto out;
		in_page = 0;
		while (!(err = db_rows_next(r, &has)) && has) {
			exlog_row_from_db(r, &row);
			after = row.seq;
			in_page++;
			n++;
			if ((err = exlog_record_json(&b, &row, true)) || (err = write_all(&f, &b)))
				goto out;
		}
		db_rows_free(r);
		r = NULL;
		if (err)
			goto out;
	} while (in_page == ROWS_PAGE);

	open_file = false;
	if ((err = exchange_file_commit(&f)))
		goto out;
	if (records)
		*records = n;
out:
	if (open_file)
		exchange_file_abandon(&f);
	db_rows_free(r);
	if (c)
		db_conn_close(c);
	free(prev);
	buf_release(&b);
	return err;
}

/* ---- reading an archive ------------------------------------------------------------ */

egov_err exlog_b64_decode(const char *s, unsigned char **out, size_t *len)
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

egov_err exlog_read_line(FILE *f, buf *b, bool *eof)
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

const char *exlog_jstr(const cJSON *o, const char *name)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(j) ? j->valuestring : NULL;
}

bool exlog_jint(const cJSON *o, const char *name, int64_t *out)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!cJSON_IsNumber(j) || j->valuedouble != (double)(int64_t)j->valuedouble)
		return false;
	*out = (int64_t)j->valuedouble;
	return true;
}

const char *exlog_line_type(const cJSON *o)
{
	const char *t = exlog_jstr(o, "type");
	return t ? t : "";
}

egov_err exlog_row_from_json(const cJSON *j, exlog_row *row, unsigned char *bodies[2])
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
	if (!exlog_jint(j, "seq", &row->seq) || !exlog_jint(j, "status", &row->status))
		return EGOV_ECORRUPT;
	for (i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		if (!(s = exlog_jstr(j, texts[i].name)))
			return EGOV_ECORRUPT;
		*(const char **)((char *)row + texts[i].off) = s;
	}
	for (i = 0; i < 2; i++) {
		b = cJSON_GetObjectItemCaseSensitive(j, body_names[i]);
		if (!b || cJSON_IsNull(b))
			continue;
		if (!cJSON_IsString(b))
			return EGOV_ECORRUPT;
		if ((err = exlog_b64_decode(b->valuestring, &bodies[i], body_len[i])))
			return err == EGOV_ENOMEM ? err : EGOV_ECORRUPT;
		*body_ptr[i] = bodies[i];
	}
	return EGOV_OK;
}
