/*
 * httpc.h: an asynchronous HTTP/1.1 client (libcurl's multi interface on
 * one event thread), for calls egov makes to other servers: gateways to
 * their peers and back-ends, deliveries to subscribers, timestamp requests.
 *
 * httpc_send() copies the request and returns at once; the callback runs
 * later on the client's thread with the response (or the failure) and must
 * not block: hand slow work (commits) to another thread. Connections are
 * kept alive and reused per host. Mutual TLS: a client certificate and key
 * (PEM files) and the CA bundle that must have issued the server's.
 *
 * httpc_start() once per process before the first request (egov serve
 * does it); httpc_stop() fails what is in flight with EGOV_EUNAVAILABLE.
 * httpc_send_sync() works without httpc_start() (the CLI).
 */
#ifndef EGOV_CORE_HTTPC_H
#define EGOV_CORE_HTTPC_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

#define HTTPC_HEADERS_MAX 32

typedef struct httpc_request {
	const char *method;        /* "GET", "POST", ... */
	const char *url;           /* http:// or https:// */
	const char *headers[HTTPC_HEADERS_MAX + 1]; /* "Name: value", NULL-terminated */
	const void *body;          /* may be NULL */
	size_t body_len;
	/* When set, the body is body_len bytes of body_fd from offset 0, read
	 * with pread() as it is sent (body is ignored). httpc duplicates the
	 * descriptor: the caller may close its own once httpc_send returns. */
	bool body_from_fd;
	int body_fd;
	/* A response body over this many bytes goes to an unlinked temporary
	 * file (core/spool.h) with its SHA-256 computed as it arrives, not to
	 * memory (httpc_response.spooled); 0: always in memory. response_max
	 * still caps it. */
	size_t spool_over;
	int timeout_ms;            /* whole exchange; 0 = 30 s */
	size_t response_max;       /* body bytes; more is EGOV_ELIMIT; 0 = 16 MiB */
	const char *client_cert;   /* PEM file, or NULL */
	const char *client_key;    /* PEM file, or NULL */
	const char *ca_file;       /* PEM bundle to verify the server; NULL = the system's */
	/* "sha256//BASE64[;sha256//BASE64...]": the server's public key must
	 * be one of these (SHA-256 of its SubjectPublicKeyInfo). When set,
	 * the host name is not checked against the certificate: the pin
	 * identifies the server (gateways are known by their certificates,
	 * not their names). */
	const char *pinned_pubkey;
} httpc_request;

typedef struct httpc_response {
	egov_err err;       /* EGOV_OK when a response arrived (any status);
			     * EGOV_EUNAVAILABLE cannot connect / TLS failed,
			     * EGOV_EBUSY timed out, EGOV_ELIMIT response too
			     * large, EGOV_EIO other transport errors */
	char errmsg[256];   /* what failed, for logs */
	int status;         /* HTTP status, 0 without a response */
	char content_type[128];
	buf body;           /* owned by the response; empty when spooled */
	/* A spooled body (httpc_request.spool_over): body_len bytes in
	 * body_fd (read them with pread from offset 0), whose SHA-256 is
	 * body_sha256. The response owns the descriptor:
	 * httpc_response_take_fd() moves it out. */
	bool spooled;
	int body_fd;
	size_t body_len;
	unsigned char body_sha256[32];
	/* Response headers as "name: value\0" entries, names lower-case. */
	buf headers;
	double total_ms;    /* time from send to the last byte */
} httpc_response;

/* The value of a response header (name in lower case), or NULL. */
const char *httpc_header(const httpc_response *r, const char *name);
void httpc_response_release(httpc_response *r);
/* Moves a spooled body's descriptor out (the caller closes it); -1 when
 * the body is not spooled. */
int httpc_response_take_fd(httpc_response *r);

/* Called once per request on the client's thread. resp is valid during the
 * call only: to keep the body, buf_detach() it (or move the struct and
 * leave resp->body empty); httpc releases whatever is left. */
typedef void (*httpc_done)(void *ctx, httpc_response *resp);

egov_err httpc_start(void);
void httpc_stop(void);
/* Queues a request. EGOV_EUNAVAILABLE if the client is not running,
 * EGOV_EINVAL for a bad request (method, URL), EGOV_ENOMEM. On an error
 * done is never called. */
egov_err httpc_send(const httpc_request *rq, httpc_done done, void *ctx);
/* The same, waiting on the calling thread. out must be released. */
egov_err httpc_send_sync(const httpc_request *rq, httpc_response *out);

#endif
