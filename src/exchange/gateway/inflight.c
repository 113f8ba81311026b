/*
 * inflight.c: an exchange in flight (struct xchg, gateway_int.h) and what
 * both sides do with one: take the bodies (in memory or spooled), build a
 * problem document to sign, answer, log.
 *
 * Large bodies and the message log. The message log keeps bodies in its
 * rows (and in memory on the way). A spooled body is not loaded for it:
 * an exchange of a "full" service with a body over SPOOL_THRESHOLD is
 * logged by digest (log mode "digest"), and both its bodies go to the blob
 * store (DATA/blobs) named by their SHA-256: the digests the record holds
 * and the signatures cover. blob_put_fd() fsyncs, so that runs on the
 * body store job, before the record is appended: an answered exchange's
 * bodies are durable too. Whatever is queued when the job stops, the
 * module's stop stores (gateway_bodies_flush).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/spool.h"
#include "core/timeutil.h"
#include "exchange/gateway/gateway_int.h"
#include "core/banned.h"

static void fill_log_rec(const xchg *x, exchange_log_rec *rec);

xchg *xchg_new(req *r, exchange_conf *cf, int side)
{
	xchg *x = calloc(1, sizeof *x);

	if (!x)
		return NULL;
	x->r = r;
	x->cf = cf;
	x->side = side;
	x->t0_us = time_mono_us();
	x->content_type = "";
	x->rp = x->ds = x->purpose = "";
	x->req_fd = x->resp_fd = -1;
	buf_init(&x->resp_body, EGOV_RESPONSE_MAX);
	return x;
}

void xchg_free(xchg *x)
{
	if (!x)
		return;
	if (x->cf)
		exchange_conf_put(x->cf);
	buf_release(&x->resp_body);
	if (x->resp_fd >= 0)
		close(x->resp_fd);
	free(x);
}

void xchg_end(xchg *x)
{
	if (x->known)
		exchange_metrics_observe(x->client, x->service, x->side, x->status, time_mono_us() - x->t0_us,
					 x->req_len, x->resp_len);
	xchg_free(x);
}

void xchg_done(xchg *x)
{
	req_resume(x->r);
	xchg_end(x);
}

static void hex32(const unsigned char d[32], char out[65])
{
	static const char digits[] = "0123456789abcdef";
	int i;

	for (i = 0; i < 32; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[64] = '\0';
}

egov_err xchg_take_request_body(xchg *x)
{
	unsigned char d[32];
	size_t len = 0;
	egov_err err;

	x->req_body = req_body(x->r, &len);
	x->req_len = x->req_body ? len : 0;
	if (!x->req_body && (x->req_fd = req_body_fd(x->r, &len)) >= 0)
		x->req_len = len;
	if ((err = req_body_sha256(x->r, d)))
		return err;
	hex32(d, x->req_sha);
	return EGOV_OK;
}

void xchg_take_response_body(xchg *x, httpc_response *resp)
{
	buf_release(&x->resp_body);
	if (x->resp_fd >= 0)
		close(x->resp_fd);
	x->resp_fd = -1;
	if (resp->spooled) {
		x->resp_fd_len = resp->body_len;
		hex32(resp->body_sha256, x->resp_sha);
		x->resp_fd = httpc_response_take_fd(resp);
		buf_init(&x->resp_body, EGOV_RESPONSE_MAX);
		return;
	}
	/* buf structs move as a whole. */
	x->resp_body = resp->body;
	buf_init(&resp->body, 0);
}

void xchg_drop_response_file(xchg *x)
{
	if (x->resp_fd >= 0)
		close(x->resp_fd);
	x->resp_fd = -1;
	x->resp_fd_len = 0;
}

egov_err gateway_refuse(req *r, int status, const char *code, const char *field, const char *detail)
{
	exchange_metrics_error(code);
	return resp_problem(r, status, code, field, detail);
}

egov_err xchg_problem(xchg *x, int status, const char *code, const char *detail)
{
	exchange_problem p = {.status = status,
			      .code = code,
			      .lang = req_lang(x->r),
			      .detail = detail,
			      .instance = req_path(x->r),
			      .request_id = req_id(x->r)};

	xchg_drop_response_file(x);
	exchange_metrics_error(code);
	x->status = status;
	snprintf(x->resp_ct, sizeof x->resp_ct, "application/problem+json");
	return exchange_problem_json(&p, &x->resp_body);
}

void xchg_hash_response(xchg *x)
{
	if (x->resp_fd < 0)
		crypto_sha256_hex(x->resp_body.data ? x->resp_body.data : "", x->resp_body.len, x->resp_sha);
}

void xchg_request_body(const xchg *x, httpc_request *rq)
{
	rq->body = x->req_len ? x->req_body : NULL;
	rq->body_len = x->req_len;
	rq->body_from_fd = x->req_fd >= 0;
	rq->body_fd = x->req_fd;
	rq->spool_over = SPOOL_THRESHOLD;
}

void xchg_add_call_headers(xchg *x, const char **h, size_t *n)
{
	xchg_add_header(x->r, h, n, "X-Road-Client", x->client);
	if (x->side == SIDE_PROVIDER)
		xchg_add_header(x->r, h, n, "X-Road-Service", x->service);
	xchg_add_header(x->r, h, n, "X-Road-Id", x->message_id);
	if (*x->rp)
		xchg_add_header(x->r, h, n, "X-Road-Represented-Party", x->rp);
	if (*x->ds)
		xchg_add_header(x->r, h, n, "X-Egov-Data-Subject", x->ds);
	if (*x->purpose)
		xchg_add_header(x->r, h, n, "X-Egov-Purpose", x->purpose);
}

/* Adds "Name: value" to an httpc header list. */
bool xchg_add_header(req *r, const char **h, size_t *n, const char *name, const char *value)
{
	size_t ln = strlen(name), lv = strlen(value);
	char *s;

	if (*n >= HTTPC_HEADERS_MAX)
		return false;
	s = arena_alloc(req_arena(r), ln + lv + 3);
	if (!s)
		return false;
	memcpy(s, name, ln);
	s[ln] = ':';
	s[ln + 1] = ' ';
	memcpy(s + ln + 2, value, lv + 1);
	if (!*value)
		s[ln + 1] = '\0'; /* "Name:" removes a header libcurl would add */
	h[(*n)++] = s;
	return true;
}

/* Remembers the signing certificates of a subsystem for the log. */
void xchg_log_sign_certs(const exchange_conf *cf, const char *subsystem)
{
	const exchange_subsystem *s = exchange_conf_subsystem(cf, subsystem);
	size_t i;

	for (i = 0; s && i < s->ncerts; i++)
		if (strcmp(s->certs[i].usage, "sign") == 0)
			exchange_log_cert(s->certs[i].sha256, s->certs[i].pem);
}

/* ---- the message log and the body store (see the top of the file) -------- */

/* Exchanges whose spooled bodies wait for the body store job, in order. */
static struct {
	pthread_mutex_t mu;
	xchg *head, *tail;
} bodies = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void log_append(xchg *x)
{
	exchange_log_rec rec;
	egov_err err;

	fill_log_rec(x, &rec);
	err = exchange_log_append_async(&rec, x->logged, x);
	if (err)
		x->logged(x, err);
}

static egov_err body_store(int fd, const char *data, size_t len, const char *sha)
{
	blob_store *bs = gateway_room_get()->blobs;
	char hex[65];
	egov_err err;

	if (!bs)
		return EGOV_EUNAVAILABLE;
	if (fd >= 0)
		err = blob_put_fd(bs, fd, len, hex);
	else
		err = blob_put(bs, data ? data : "", len, hex);
	if (!err && strcmp(hex, sha) != 0)
		err = EGOV_ECORRUPT; /* the file changed under us */
	return err;
}

/* Stores the bodies of the next queued exchange and logs it; false when
 * the queue is empty. */
static bool store_next(void)
{
	xchg *x;
	egov_err err;

	pthread_mutex_lock(&bodies.mu);
	if ((x = bodies.head) && !(bodies.head = x->bnext))
		bodies.tail = NULL;
	pthread_mutex_unlock(&bodies.mu);
	if (!x)
		return false;
	err = body_store(x->req_fd, x->req_body, x->req_len, x->req_sha);
	if (!err)
		err = body_store(x->resp_fd, x->resp_body.data, x->resp_fd >= 0 ? x->resp_fd_len : x->resp_body.len,
				 x->resp_sha);
	if (err) {
		log_error("exchange.body_store", "%s %s: %s", x->service, x->message_id, egov_err_name(err));
		x->logged(x, EGOV_EUNAVAILABLE);
	} else {
		log_append(x);
	}
	return true;
}

static int64_t bodies_pass(job_ctx *j)
{
	/* One exchange a pass, so a stop is seen between two. */
	(void)j;
	return store_next() ? 0 : -1;
}

const job gateway_bodies_job = {.name = "exchange.bodies", .run = bodies_pass};

void gateway_bodies_flush(void)
{
	while (store_next()) {
	}
}

void xchg_log(xchg *x, void (*done)(void *ctx, egov_err err))
{
	x->logged = done;
	if (!(x->log_full && (x->req_fd >= 0 || x->resp_fd >= 0))) {
		log_append(x);
		return;
	}
	pthread_mutex_lock(&bodies.mu);
	x->bnext = NULL;
	if (bodies.tail)
		bodies.tail->bnext = x;
	else
		bodies.head = x;
	bodies.tail = x;
	pthread_mutex_unlock(&bodies.mu);
	job_wake(&gateway_bodies_job);
}

/* Answers r with x's response and, when signed, its signature headers. */
void xchg_answer(xchg *x, bool with_signature)
{
	req *r = x->r;
	const char *ct = x->resp_ct[0] ? x->resp_ct : NULL;
	egov_err err;

	/* A request refused for having no (valid) X-Road-Id has none to
	 * answer with; an empty header would fail the whole answer. */
	if (x->message_id[0])
		resp_header(r, "X-Road-Id", x->message_id);
	if (x->allow[0])
		resp_header(r, "Allow", x->allow);
	if (with_signature && x->signed_resp) {
		resp_header(r, "X-Egov-Signed-At", x->resp_at);
		resp_header(r, "X-Egov-Signer-Cert", x->resp_cert);
		resp_header(r, "X-Egov-Signature", x->resp_sig);
	}
	/* The answer takes the body's bytes (or its file). */
	x->resp_len = x->resp_body.len;
	if (x->resp_fd >= 0) {
		x->resp_len = x->resp_fd_len;
		err = resp_fd(r, x->status, ct, x->resp_fd, x->resp_fd_len);
		x->resp_fd = -1;
	} else if (x->resp_body.data)
		err = resp_buf(r, x->status, ct, &x->resp_body);
	else
		err = resp_bytes(r, x->status, ct, "", 0, false);
	if (err)
		resp_problem(r, 503, "unavailable", NULL, NULL);
}

static void fill_log_rec(const xchg *x, exchange_log_rec *rec)
{
	/* A spooled body is never loaded to be logged: such an exchange is
	 * logged by digest, its bodies kept in the blob store (log_exchange). */
	bool full = x->log_full && x->req_fd < 0 && x->resp_fd < 0;

	memset(rec, 0, sizeof *rec);
	rec->side = x->side == SIDE_PROVIDER ? "provider" : "consumer";
	rec->message_id = x->message_id;
	rec->client = x->client;
	rec->service = x->service;
	rec->method = x->method;
	rec->path = x->path;
	rec->represented_party = x->rp;
	rec->data_subject = x->ds;
	rec->purpose = x->purpose;
	rec->status = x->status;
	rec->request_sig = x->req_sig;
	rec->request_signer_cert = x->req_cert;
	rec->request_body_sha256 = x->req_sha;
	rec->request_body = full ? x->req_body : NULL;
	rec->request_body_len = x->req_len;
	rec->response_sig = x->resp_sig;
	rec->response_signer_cert = x->resp_cert;
	rec->response_body_sha256 = x->resp_sha;
	rec->response_body = full ? x->resp_body.data : NULL;
	rec->response_body_len = x->resp_body.len;
	rec->request_signed_at = x->req_at;
	rec->response_signed_at = x->resp_at;
	rec->request_content_type = x->content_type;
	rec->response_content_type = x->resp_ct;
}

