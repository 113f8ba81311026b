/*
 * httpc.c: the asynchronous HTTP client (httpc.h) over libcurl.
 *
 * One event thread owns a curl multi handle. httpc_send() copies the
 * request into a job, queues it under a mutex and wakes the thread
 * (curl_multi_wakeup); the thread adds queued jobs, drives the transfers and
 * calls each job's callback when it ends. Easy handles are kept on a free
 * list and reset for reuse; the multi handle's connection cache keeps
 * connections (and TLS sessions) alive between requests to the same host.
 *
 * Invariant: a job belongs to the caller until it is queued, then to the
 * event thread, which frees it after its callback returned.
 *
 * Every HTTPS call holds the floor egov's own listeners hold
 * (server.tls_priorities' default): TLS 1.2 or 1.3, ECDHE key exchange and
 * AEAD ciphers only, so a peer gateway or back-end that offers only TLS 1.0
 * or CBC suites with SHA-1 is refused (EGOV_EUNAVAILABLE), not spoken to.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "core/httpc.h"
#include "core/log.h"
#include "core/spool.h"
#include "core/banned.h"

#define RESPONSE_MAX_DEFAULT (16u * 1024 * 1024)
#define HEADERS_BYTES_MAX (32 * 1024)
#define FREE_EASY_MAX 256

typedef struct job {
	struct job *next;
	struct job *anext, *aprev; /* the in-flight list (event thread only) */
	CURL *easy;
	struct curl_slist *hdrs;
	char *method, *url, *client_cert, *client_key, *ca_file, *pinned;
	unsigned char *body;
	size_t body_len;
	int in_fd;          /* the body from a file (a dup), or -1 */
	size_t in_off;      /* next byte of in_fd to send */
	int timeout_ms;
	size_t response_max;
	size_t spool_over;
	spool sp;           /* the response body, once over spool_over */
	bool head;
	httpc_done done;
	void *ctx;
	httpc_response resp;
	bool over;          /* the body went over response_max */
} job;

static struct {
	pthread_mutex_t mu;
	CURLM *multi;
	pthread_t thread;
	bool running, stop;
	job *queue, *queue_tail;
	CURL *free_easy[FREE_EASY_MAX];
	size_t nfree;
	job *active; /* in flight, owned by the event thread */
} hc = {.mu = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

/* The TLS 1.2 suites allowed, in the syntax of libcurl's TLS library
 * (TLS 1.3's suites are all AEAD): OpenSSL names, or a GnuTLS priority
 * string. NULL for another library: then only the version floor holds. */
#define CIPHERS_OPENSSL                                                                        \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:" \
	"ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
#define CIPHERS_GNUTLS                                                                         \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+CHACHA20-POLY1305:" \
	"+AES-128-GCM:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA"
static const char *tls_ciphers;

static void global_init(void)
{
	const curl_version_info_data *v;

	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	v = curl_version_info(CURLVERSION_NOW);
	if (v && v->ssl_version && strncasecmp(v->ssl_version, "OpenSSL", 7) == 0)
		tls_ciphers = CIPHERS_OPENSSL;
	else if (v && v->ssl_version && strncasecmp(v->ssl_version, "GnuTLS", 6) == 0)
		tls_ciphers = CIPHERS_GNUTLS;
}

/* ---- responses ---------------------------------------------------------- */

const char *httpc_header(const httpc_response *r, const char *name)
{
	const char *p = r->headers.data, *end = p ? p + r->headers.len : NULL;
	size_t n = strlen(name);

	while (p && p < end) {
		size_t len = strlen(p);
		if (len > n + 1 && strncmp(p, name, n) == 0 && p[n] == ':')
			return p + n + 2;
		p += len + 1;
	}
	return NULL;
}

void httpc_response_release(httpc_response *r)
{
	buf_release(&r->body);
	buf_release(&r->headers);
	if (r->spooled && r->body_fd >= 0)
		close(r->body_fd);
	r->spooled = false;
	r->body_fd = -1;
}

int httpc_response_take_fd(httpc_response *r)
{
	int fd = r->spooled ? r->body_fd : -1;

	r->spooled = false;
	r->body_fd = -1;
	return fd;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	job *j = ud;
	size_t n = size * nmemb;
	size_t have = j->sp.fd >= 0 ? j->sp.len : j->resp.body.len;

	if (have + n > j->response_max) {
		j->over = true;
		return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	if (j->spool_over && (j->sp.fd >= 0 || j->resp.body.len + n > j->spool_over)) {
		/* Past the threshold: what was kept goes to the file first. */
		if (j->sp.fd < 0 && j->resp.body.len && spool_write(&j->sp, j->resp.body.data, j->resp.body.len))
			return 0;
		buf_release(&j->resp.body);
		return spool_write(&j->sp, data, n) ? 0 : n;
	}
	return buf_add(&j->resp.body, data, n) ? 0 : n;
}

/* The request body from a file, for libcurl (it may rewind: a kept-alive
 * connection that turns out dead is retried on a new one). */
static size_t on_read(char *out, size_t size, size_t nitems, void *ud)
{
	job *j = ud;
	size_t n = size * nitems, left = j->body_len - j->in_off;

	if (n > left)
		n = left;
	if (n && spool_pread(j->in_fd, out, n, j->in_off))
		return CURL_READFUNC_ABORT;
	j->in_off += n;
	return n;
}

static int on_seek(void *ud, curl_off_t offset, int origin)
{
	job *j = ud;

	if (origin != SEEK_SET || offset < 0 || (size_t)offset > j->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	j->in_off = (size_t)offset;
	return CURL_SEEKFUNC_OK;
}

/* Keeps "name: value" with the name lower-cased and the line end cut; a new
 * status line (redirects are not followed, but 100 Continue and proxies
 * send more than one) starts the list again. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
	job *j = ud;
	size_t n = size * nmemb, i, colon;

	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		buf_reset(&j->resp.headers);
		return n;
	}
	while (n > 0 && (data[n - 1] == '\r' || data[n - 1] == '\n'))
		n--;
	for (colon = 0; colon < n && data[colon] != ':'; colon++)
		;
	if (colon == 0 || colon == n)
		return size * nmemb;
	if (j->resp.headers.len + n + 2 > HEADERS_BYTES_MAX)
		return size * nmemb; /* keep what fits; the rest is dropped */
	for (i = 0; i < colon; i++) {
		char c = data[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (buf_addc(&j->resp.headers, c))
			return 0;
	}
	i = colon + 1;
	while (i < n && (data[i] == ' ' || data[i] == '\t'))
		i++;
	if (buf_add(&j->resp.headers, ": ", 2) || buf_add(&j->resp.headers, data + i, n - i) ||
	    buf_addc(&j->resp.headers, '\0'))
		return 0;
	return size * nmemb;
}

/* ---- jobs --------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void job_free(job *j)
{
	if (!j)
		return;
	curl_slist_free_all(j->hdrs);
	free(j->method);
	free(j->url);
	free(j->client_cert);
	free(j->client_key);
	free(j->ca_file);
	free(j->pinned);
	free(j->body);
	if (j->in_fd >= 0)
		close(j->in_fd);
	spool_release(&j->sp);
	httpc_response_release(&j->resp);
	free(j);
}

static egov_err job_new(const httpc_request *rq, httpc_done done, void *ctx, job **out)
{
	job *j;
	size_t i;
	const char *m = rq->method;

	*out = NULL;
	if (!m || !rq->url || (strncmp(rq->url, "http://", 7) != 0 && strncmp(rq->url, "https://", 8) != 0))
		return EGOV_EINVAL;
	if (strcmp(m, "GET") && strcmp(m, "HEAD") && strcmp(m, "POST") && strcmp(m, "PUT") && strcmp(m, "PATCH") &&
	    strcmp(m, "DELETE") && strcmp(m, "OPTIONS"))
		return EGOV_EINVAL;
	if (!(j = calloc(1, sizeof *j)))
		return EGOV_ENOMEM;
	j->done = done;
	j->ctx = ctx;
	j->in_fd = -1;
	j->resp.body_fd = -1;
	j->spool_over = rq->spool_over;
	spool_init(&j->sp);
	j->head = strcmp(m, "HEAD") == 0;
	j->timeout_ms = rq->timeout_ms > 0 ? rq->timeout_ms : 30000;
	j->response_max = rq->response_max ? rq->response_max : RESPONSE_MAX_DEFAULT;
	buf_init(&j->resp.body, j->response_max);
	buf_init(&j->resp.headers, HEADERS_BYTES_MAX);
	j->method = strdup(m);
	j->url = strdup(rq->url);
	j->client_cert = dup_or_null(rq->client_cert);
	j->client_key = dup_or_null(rq->client_key);
	j->ca_file = dup_or_null(rq->ca_file);
	j->pinned = dup_or_null(rq->pinned_pubkey);
	if (!j->method || !j->url || (rq->client_cert && !j->client_cert) || (rq->client_key && !j->client_key) ||
	    (rq->ca_file && !j->ca_file) || (rq->pinned_pubkey && !j->pinned))
		goto nomem;
	if (rq->body_from_fd) {
		if (rq->body_fd < 0 || (j->in_fd = fcntl(rq->body_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
			job_free(j);
			return rq->body_fd < 0 ? EGOV_EINVAL : EGOV_EIO;
		}
		j->body_len = rq->body_len;
	} else if (rq->body_len) {
		if (!(j->body = malloc(rq->body_len)))
			goto nomem;
		memcpy(j->body, rq->body, rq->body_len);
		j->body_len = rq->body_len;
	}
	for (i = 0; i < HTTPC_HEADERS_MAX && rq->headers[i]; i++) {
		struct curl_slist *n = curl_slist_append(j->hdrs, rq->headers[i]);
		if (!n)
			goto nomem;
		j->hdrs = n;
	}
	{
		/* No "Expect: 100-continue" round trip before a body. */
		struct curl_slist *n = curl_slist_append(j->hdrs, "Expect:");
		if (!n)
			goto nomem;
		j->hdrs = n;
	}
	*out = j;
	return EGOV_OK;
nomem:
	job_free(j);
	return EGOV_ENOMEM;
}

static egov_err easy_setup(CURL *e, job *j)
{
	CURLcode rc = CURLE_OK;

#define SET(opt, val)                                        \
	do {                                                 \
		if (rc == CURLE_OK)                          \
			rc = curl_easy_setopt(e, opt, val);  \
	} while (0)
	SET(CURLOPT_URL, j->url);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_TIMEOUT_MS, (long)j->timeout_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS, (long)(j->timeout_ms < 10000 ? j->timeout_ms : 10000));
	SET(CURLOPT_HTTPHEADER, j->hdrs);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, j);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, j);
	SET(CURLOPT_PRIVATE, j);
	SET(CURLOPT_TCP_NODELAY, 1L);
	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (tls_ciphers)
		SET(CURLOPT_SSL_CIPHER_LIST, tls_ciphers);
	if (j->in_fd >= 0) {
		/* Streamed from the file: a POST with a read callback, under the
		 * caller's method name. */
		SET(CURLOPT_POST, 1L);
		SET(CURLOPT_CUSTOMREQUEST, j->method);
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
		SET(CURLOPT_READFUNCTION, on_read);
		SET(CURLOPT_READDATA, j);
		SET(CURLOPT_SEEKFUNCTION, on_seek);
		SET(CURLOPT_SEEKDATA, j);
	} else if (j->head) {
		SET(CURLOPT_NOBODY, 1L);
	} else if (strcmp(j->method, "GET") != 0) {
		SET(CURLOPT_CUSTOMREQUEST, j->method);
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
		SET(CURLOPT_POSTFIELDS, j->body ? (const char *)j->body : "");
	} else if (j->body_len) {
		/* A GET with a body (unusual, but the caller forwards it). */
		SET(CURLOPT_CUSTOMREQUEST, "GET");
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
		SET(CURLOPT_POSTFIELDS, (const char *)j->body);
	}
	if (j->client_cert) {
		SET(CURLOPT_SSLCERT, j->client_cert);
		SET(CURLOPT_SSLCERTTYPE, "PEM");
	}
	if (j->client_key) {
		SET(CURLOPT_SSLKEY, j->client_key);
		SET(CURLOPT_SSLKEYTYPE, "PEM");
	}
	if (j->ca_file)
		SET(CURLOPT_CAINFO, j->ca_file);
	if (j->pinned) {
		SET(CURLOPT_PINNEDPUBLICKEY, j->pinned);
		SET(CURLOPT_SSL_VERIFYHOST, 0L);
	}
#undef SET
	return rc == CURLE_OK ? EGOV_OK : EGOV_EINVAL;
}

static void job_finish(job *j, CURLcode rc)
{
	long status = 0;
	char *ct = NULL;
	double t = 0;

	curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(j->easy, CURLINFO_CONTENT_TYPE, &ct);
	curl_easy_getinfo(j->easy, CURLINFO_TOTAL_TIME, &t);
	j->resp.total_ms = t * 1000.0;
	if (ct)
		snprintf(j->resp.content_type, sizeof j->resp.content_type, "%s", ct);
	switch (rc) {
	case CURLE_OK:
		j->resp.err = EGOV_OK;
		j->resp.status = (int)status;
		break;
	case CURLE_OPERATION_TIMEDOUT:
		j->resp.err = EGOV_EBUSY;
		break;
	case CURLE_WRITE_ERROR:
		j->resp.err = j->over ? EGOV_ELIMIT : EGOV_EIO;
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
		j->resp.err = EGOV_EUNAVAILABLE;
		break;
	default:
		j->resp.err = EGOV_EIO;
		break;
	}
	if (rc == CURLE_OK && j->sp.fd >= 0) {
		if (spool_finish(&j->sp, j->resp.body_sha256)) {
			j->resp.err = EGOV_EIO;
			j->resp.status = 0;
			snprintf(j->resp.errmsg, sizeof j->resp.errmsg, "cannot finish the spooled body");
			return;
		}
		j->resp.body_len = j->sp.len;
		j->resp.body_fd = spool_detach_fd(&j->sp);
		j->resp.spooled = true;
	}
	if (rc != CURLE_OK) {
		j->resp.status = 0;
		snprintf(j->resp.errmsg, sizeof j->resp.errmsg, "%s", curl_easy_strerror(rc));
	}
}

/* ---- the event thread ----------------------------------------------------- */

static CURL *easy_get(void)
{
	CURL *e = NULL;

	pthread_mutex_lock(&hc.mu);
	if (hc.nfree)
		e = hc.free_easy[--hc.nfree];
	pthread_mutex_unlock(&hc.mu);
	if (e)
		curl_easy_reset(e);
	else
		e = curl_easy_init();
	return e;
}

static void easy_put(CURL *e)
{
	pthread_mutex_lock(&hc.mu);
	if (hc.nfree < FREE_EASY_MAX) {
		hc.free_easy[hc.nfree++] = e;
		e = NULL;
	}
	pthread_mutex_unlock(&hc.mu);
	if (e)
		curl_easy_cleanup(e);
}

static void active_add(job *j)
{
	j->aprev = NULL;
	j->anext = hc.active;
	if (hc.active)
		hc.active->aprev = j;
	hc.active = j;
}

static void active_remove(job *j)
{
	if (j->aprev)
		j->aprev->anext = j->anext;
	else
		hc.active = j->anext;
	if (j->anext)
		j->anext->aprev = j->aprev;
	j->anext = j->aprev = NULL;
}

static void complete(job *j, CURLcode rc)
{
	active_remove(j);
	job_finish(j, rc);
	j->done(j->ctx, &j->resp);
	if (j->easy) {
		curl_multi_remove_handle(hc.multi, j->easy);
		easy_put(j->easy);
		j->easy = NULL;
	}
	job_free(j);
}

static void fail_now(job *j, egov_err err, const char *why)
{
	j->resp.err = err;
	snprintf(j->resp.errmsg, sizeof j->resp.errmsg, "%s", why);
	j->done(j->ctx, &j->resp);
	job_free(j);
}

static void take_queue(void)
{
	job *j;

	pthread_mutex_lock(&hc.mu);
	j = hc.queue;
	hc.queue = hc.queue_tail = NULL;
	pthread_mutex_unlock(&hc.mu);
	while (j) {
		job *next = j->next;
		j->next = NULL;
		if (!(j->easy = easy_get())) {
			fail_now(j, EGOV_ENOMEM, "out of memory");
		} else if (easy_setup(j->easy, j) || curl_multi_add_handle(hc.multi, j->easy) != CURLM_OK) {
			easy_put(j->easy);
			j->easy = NULL;
			fail_now(j, EGOV_EINVAL, "request refused by the HTTP client");
		} else {
			active_add(j);
		}
		j = next;
	}
}

static void *event_main(void *arg)
{
	(void)arg;
	for (;;) {
		int running = 0, left = 0;
		CURLMsg *m;
		bool stop;

		take_queue();
		curl_multi_perform(hc.multi, &running);
		while ((m = curl_multi_info_read(hc.multi, &left))) {
			job *j = NULL;
			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
			complete(j, m->data.result);
		}
		pthread_mutex_lock(&hc.mu);
		stop = hc.stop;
		pthread_mutex_unlock(&hc.mu);
		if (stop)
			break;
		curl_multi_poll(hc.multi, NULL, 0, 1000, NULL);
	}
	return NULL;
}

egov_err httpc_start(void)
{
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK)
		return EGOV_EINTERNAL;
	if (hc.running)
		return EGOV_OK;
	if (!(hc.multi = curl_multi_init()))
		return EGOV_ENOMEM;
	/* Enough kept-alive connections for many peers at once. */
	curl_multi_setopt(hc.multi, CURLMOPT_MAXCONNECTS, 256L);
	hc.stop = false;
	if (pthread_create(&hc.thread, NULL, event_main, NULL) != 0) {
		curl_multi_cleanup(hc.multi);
		hc.multi = NULL;
		return EGOV_EINTERNAL;
	}
	hc.running = true;
	return EGOV_OK;
}

void httpc_stop(void)
{
	job *j;

	if (!hc.running)
		return;
	pthread_mutex_lock(&hc.mu);
	hc.stop = true;
	pthread_mutex_unlock(&hc.mu);
	curl_multi_wakeup(hc.multi);
	pthread_join(hc.thread, NULL);
	hc.running = false;
	/* Fail what was queued or in flight: every callback runs once. */
	pthread_mutex_lock(&hc.mu);
	j = hc.queue;
	hc.queue = hc.queue_tail = NULL;
	pthread_mutex_unlock(&hc.mu);
	while (j) {
		job *next = j->next;
		fail_now(j, EGOV_EUNAVAILABLE, "HTTP client stopped");
		j = next;
	}
	while (hc.active) {
		job *jj = hc.active;
		active_remove(jj);
		curl_multi_remove_handle(hc.multi, jj->easy);
		curl_easy_cleanup(jj->easy);
		jj->easy = NULL;
		fail_now(jj, EGOV_EUNAVAILABLE, "HTTP client stopped");
	}
	while (hc.nfree)
		curl_easy_cleanup(hc.free_easy[--hc.nfree]);
	curl_multi_cleanup(hc.multi);
	hc.multi = NULL;
}

egov_err httpc_send(const httpc_request *rq, httpc_done done, void *ctx)
{
	job *j;
	egov_err err;

	if (!hc.running)
		return EGOV_EUNAVAILABLE;
	if ((err = job_new(rq, done, ctx, &j)))
		return err;
	pthread_mutex_lock(&hc.mu);
	if (hc.stop) {
		pthread_mutex_unlock(&hc.mu);
		job_free(j);
		return EGOV_EUNAVAILABLE;
	}
	if (hc.queue_tail)
		hc.queue_tail->next = j;
	else
		hc.queue = j;
	hc.queue_tail = j;
	pthread_mutex_unlock(&hc.mu);
	curl_multi_wakeup(hc.multi);
	return EGOV_OK;
}

static void sync_done(void *ctx, httpc_response *resp)
{
	httpc_response *out = ctx;

	*out = *resp;
	/* The caller owns the buffers (and a spooled body's file) now. */
	buf_init(&resp->body, 0);
	buf_init(&resp->headers, 0);
	resp->spooled = false;
	resp->body_fd = -1;
}

egov_err httpc_send_sync(const httpc_request *rq, httpc_response *out)
{
	job *j;
	CURL *e;
	egov_err err;
	CURLcode rc;

	memset(out, 0, sizeof *out);
	out->body_fd = -1;
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK)
		return EGOV_EINTERNAL;
	if ((err = job_new(rq, sync_done, out, &j)))
		return err;
	if (!(e = curl_easy_init())) {
		job_free(j);
		return EGOV_ENOMEM;
	}
	j->easy = e;
	if ((err = easy_setup(e, j))) {
		curl_easy_cleanup(e);
		j->easy = NULL;
		job_free(j);
		return err;
	}
	rc = curl_easy_perform(e);
	job_finish(j, rc);
	j->done(j->ctx, &j->resp);
	curl_easy_cleanup(e);
	j->easy = NULL;
	job_free(j);
	return EGOV_OK;
}
