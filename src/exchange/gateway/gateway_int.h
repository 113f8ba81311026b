/*
 * gateway_int.h: what the gateway's files share (they are listed in
 * gateway.h). Not for other rooms.
 *
 * An exchange in flight (xchg) belongs to one thread at a time: the
 * handler until it hands it to httpc, then the httpc callback until it
 * hands it to the body store or the log writer, whose callback answers
 * and frees it. No thread waits on the network or on a commit.
 */
#ifndef EGOV_EXCHANGE_GATEWAY_GATEWAY_INT_H
#define EGOV_EXCHANGE_GATEWAY_GATEWAY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/blob.h"
#include "core/httpc.h"
#include "exchange/conf/conf.h"
#include "exchange/gateway/gateway.h"
#include "exchange/keys/keys.h"
#include "exchange/log/exlog.h"

/* ---- the room's settings (gateway.c) ------------------------------------------------ */

/* What the gateway was started with; d and cfg NULL on a node that is not
 * a gateway (then the gateway's routes answer 404). */
typedef struct gateway_room {
	db *d;
	const egov_config *cfg;
	blob_store *blobs;
	const exchange_config *xc;
} gateway_room;
const gateway_room *gateway_room_get(void);

/* The caller's subsystem from the request's client headers:
 * X-GovStack-Client (the GovStack IM specification's), X-Road-Client and
 * Information-Mediator-Client, any of them, as many as the caller likes.
 * *client is NULL when none is sent. false, with *field the header at
 * fault, when one does not name a subsystem or two name different ones:
 * no header wins over another. */
bool gateway_client_header(req *r, const char **client, const char **field);
/* Whether the first nid of the path's decoded segments are each an
 * identifier part (checked before anything is looked up: a malformed one
 * is 400 exchange.id_invalid, an unknown one 404). */
bool gateway_path_ids_valid(const char *const *parts, size_t nparts, size_t nid);

/* ---- exchanges in flight (inflight.c) ------------------------------------------------- */

enum { SIDE_CONSUMER = 0, SIDE_PROVIDER = 1 };

typedef struct xchg {
	req *r;
	exchange_conf *cf;
	int side;
	int64_t t0_us;
	const exchange_service *svc;
	char client[EXCHANGE_ID_MAX];
	char service[EXCHANGE_ID_MAX];
	char provider[EXCHANGE_ID_MAX];
	const char *service_code;
	char message_id[EXCHANGE_MSGID_MAX + 1];
	const char *method;
	const char *path;         /* raw path-and-query after the service code */
	const char *content_type; /* the request's, "" if none */
	const char *rp, *ds, *purpose;
	const char *req_body;
	size_t req_len;
	char req_sha[65], req_sig[EXCHANGE_SIG_MAX], req_cert[65], req_at[EXCHANGE_SIGNED_AT_MAX];
	/* the response */
	int status;
	char resp_ct[EXCHANGE_CONTENT_TYPE_MAX];
	buf resp_body;
	size_t resp_len;          /* of the body answered (resp_body is handed over) */
	char resp_sha[65], resp_sig[EXCHANGE_SIG_MAX], resp_cert[65], resp_at[EXCHANGE_SIGNED_AT_MAX];
	bool signed_resp;         /* resp_sig/cert/at are set */
	char allow[64];           /* Allow of a 405, "" if none */
	/* Large bodies (over SPOOL_THRESHOLD) stay in files: the request's
	 * spooled body (owned by the request), and the response's (owned
	 * here until answer() hands it to the response). -1: in memory. */
	int req_fd;
	int resp_fd;
	size_t resp_fd_len;
	struct xchg *bnext;       /* the body store's queue */
	void (*logged)(void *ctx, egov_err err); /* after the body store */
	bool known;               /* client and service are configuration ids (metrics labels) */
	bool log_full;            /* the log keeps the bodies (log mode "full"), unless spooled */
} xchg;

/* A new exchange of r on side, holding cf (the caller's reference). */
xchg *xchg_new(req *r, exchange_conf *cf, int side);
void xchg_free(xchg *x);
/* Ends a deferred exchange: figures, resume the connection, free. The
 * answer must have been set. */
void xchg_done(xchg *x);
/* The same for an exchange answered before it was deferred. */
void xchg_end(xchg *x);
/* Takes the request body: in memory, or spooled by the kernel (its digest
 * computed while it arrived), into req_body/req_fd, req_len, req_sha. */
egov_err xchg_take_request_body(xchg *x);
/* Takes an httpc response's body: its buf, or its spooled file with the
 * digest httpc computed on the way (then resp_sha is set too). */
void xchg_take_response_body(xchg *x, httpc_response *resp);
/* Forgets a spooled response body (a problem document replaces it). */
void xchg_drop_response_file(xchg *x);
/* The digest of a response body held in memory (a spooled one's came
 * with it). */
void xchg_hash_response(xchg *x);
/* Builds a problem document in x's response (status, type, body), as the
 * kernel's resp_problem() would for the request, so that it can be
 * signed before it is sent. */
egov_err xchg_problem(xchg *x, int status, const char *code, const char *detail);
/* Answers the request with x's response and, when signed and asked for,
 * its signature headers. */
void xchg_answer(xchg *x, bool with_signature);
/* Signs x's response (status, resp_ct, resp_body) with the key of x's
 * provider (the subsystem that answers). */
egov_err xchg_sign(xchg *x);
/* Logs x, then calls done(x, err) on another thread: the body store
 * first when a full-mode exchange has a spooled body. */
void xchg_log(xchg *x, void (*done)(void *ctx, egov_err err));
/* Remembers the signing certificates of a subsystem for the log. */
void xchg_log_sign_certs(const exchange_conf *cf, const char *subsystem);
/* The X-Road headers the back-end or the provider gets with a call
 * (X-Road-Client, -Id, -Represented-Party, X-Egov-Data-Subject,
 * -Purpose), added to an httpc header list in the request's arena. */
bool xchg_add_header(req *r, const char **h, size_t *n, const char *name, const char *value);
void xchg_add_call_headers(xchg *x, const char **h, size_t *n);
/* The request's body as an outgoing call's (in memory or its spooled
 * file), and a response over SPOOL_THRESHOLD spooled. */
void xchg_request_body(const xchg *x, httpc_request *rq);
/* A refusal on the consumer side, or one the provider cannot sign:
 * counted, answered by the kernel. */
egov_err gateway_refuse(req *r, int status, const char *code, const char *field, const char *detail);
/* The body store (gateway_bodies_job): a full-mode exchange's spooled
 * bodies written to the blob store (fsynced) before its record is
 * appended. */
/* Finishes what the body store still holds (their callbacks run); the
 * module's stop, after the job stopped. */
void gateway_bodies_flush(void);

/* ---- the provider side (provider.c) ------------------------------------------------------ */

/* Answers with a signed problem, not logged: the request was not shown to
 * be authentic, or logging itself failed. The exchange stays the caller's. */
void provider_problem_now(xchg *x, int status, const char *code, const char *detail);
/* Signs x's response, logs the exchange and answers once it is durable
 * (the log's verdict: a replay is 409, a failure 503, both signed); x is
 * then done. */
void provider_finish(xchg *x);
/* A refusal of an authentic request: signed, logged, counted; x is then
 * done. */
void provider_refuse_logged(xchg *x, int status, const char *code, const char *detail);

/* ---- the back-end table (backends.c) -------------------------------------------------- */

/* The back-end of service, copied into the request's arena, with the
 * timeout set on this gateway (0 when none). */
bool gateway_backend_find(req *r, const char *service, const char **url, int *timeout_ms);
/* How long the provider waits for the back-end: the service's timeout in
 * the configuration, which a timeout set on this gateway may only lower. */
int gateway_backend_timeout(const exchange_service *svc, int local_ms);
/* Loads the table now (start); the backends job reloads it every second. */
egov_err gateway_backends_load(db_conn *c);
void gateway_backends_clear(void);

/* ---- the replay window (replay.c) ------------------------------------------------------ */

/* Whether (client, message id) was already seen on this gateway's receiving
 * side (service calls and pushes alike): 0 the first time (then it is
 * remembered until expires, UTC microseconds), 1 if seen and not yet
 * expired, -1 when the window is full. Thread-safe. */
int exchange_replay_seen(const char *client, const char *message_id, int64_t now, int64_t expires);
/* At start: the message ids the provider side logged within the window,
 * so that a replay across a restart is refused before it goes anywhere. */
egov_err gateway_replay_preload(db_conn *c, int64_t skew_us);
void gateway_replay_clear(void);

/* ---- refusals to the audit log (refusals.c) --------------------------------------------- */

/* Queues an audit record of a refused message (actor, action, object,
 * details JSON); never blocks. The refusals job writes them. */
void gateway_audit(const char *actor, const char *action, const char *object, const char *details);
/* The record of a refused service call: action code, actor the client
 * (or "peer"), object the service, details client, service, message id,
 * reason and the caller's address. */
void gateway_audit_refusal(const char *code, const char *client, const char *service, const char *mid,
			   const char *reason, const char *ip);
/* Writes what is still queued (the module's stop, after the job stopped). */
void gateway_refusals_flush(void);

/* ---- the inbound verifier (verify.c) ----------------------------------------------------- */

/* What a signed message that arrives at this gateway (a service call on the
 * provider side, a push on the subscriber side) claims besides its
 * signature headers: the canonical request's fields. */
typedef struct inbound_msg {
	const char *client;        /* X-Road-Client, checked here */
	const char *service, *method, *path, *content_type, *rp, *ds, *purpose;
	const char *body_sha256;
} inbound_msg;

/* What the verifier found: the message's signature headers (copied), its
 * signer's certificate, its signing time. */
typedef struct inbound {
	char message_id[EXCHANGE_MSGID_MAX + 1];
	char signed_at[EXCHANGE_SIGNED_AT_MAX];
	char signer_cert[65];
	char sig[EXCHANGE_SIG_MAX];
	const exchange_cert *signer; /* in the configuration the caller holds */
	int64_t signed_us;
} inbound;

/* Why a message was refused: the answer's status and problem code, and
 * the reason for the audit record and the problem's detail. audit says
 * whether the refusal is audited. */
typedef struct inbound_why {
	int status;
	const char *code;
	const char *reason;
	bool audit;
} inbound_why;

/* Step 1, authenticity: the client is a subsystem id (400
 * exchange.client_invalid), the TLS peer is a tls certificate of the
 * client in cf, the signature headers are well-formed, the signer is a
 * sign certificate of the client in cf, the signature over the canonical
 * request verifies, and the signing time is within exchange.clock_skew_s
 * of now (401 exchange.signature_invalid, audited). The message id is
 * copied into in even when the rest fails, for the answer's X-Road-Id. */
egov_err inbound_verify(req *r, const exchange_conf *cf, const inbound_msg *m, int64_t now, inbound *in,
			inbound_why *why);
/* Step 2, the one replay rule: a message id is accepted once per client
 * while its signing time is within the skew window (409 exchange.replay,
 * audited; 503 unavailable when the window is full). */
egov_err inbound_accept(const char *client, const inbound *in, int64_t now, inbound_why *why);

/* ---- metaservices and figures (meta.c, metrics.c) ---------------------------------------- */

/* Metaservices (GovStack IM Directory Services) on the consumer gateway.
 * parts are the decoded path segments after /r1 (nparts of them, the
 * first four checked by the caller to be identifier parts); client the
 * caller's subsystem from its client headers (NULL if none). Answers and
 * sets *handled when the path is a metaservice; otherwise leaves r alone.
 * The request is checked (method, client, parameters, Accept) before the
 * configuration in force is looked at. */
egov_err exchange_meta_answer(req *r, const char *client, const char *const *parts, size_t nparts, bool *handled);
/* Operational figures. side: 0 consumer, 1 provider. client and service
 * must be ids found in the configuration (bounded label set). */
void exchange_metrics_observe(const char *client, const char *service, int side, int status, int64_t dur_us,
			      size_t request_bytes, size_t response_bytes);
/* Counts a refusal by its problem code ("exchange.replay"). */
void exchange_metrics_error(const char *code);

#endif
