/*
 * exchange_int.h: the data exchange module's internal interfaces, shared by
 * its files. The design and the wire protocol are in docs/exchange.md;
 * this header is the contract between the parts:
 *
 *   exchange_id.c        identifiers (MO/GOV/DSAJ[/SUBSYSTEM[/SERVICE]])
 *   exchange_registry.c  the registry tables (central role), admin API, CLI
 *   exchange_conf.c      the signed global configuration: built and signed
 *                        by the central node, downloaded, verified and
 *                        cached by gateways; lookups for the gateway
 *   exchange_keys.c      a gateway's signing keys per subsystem; ES256
 *                        sign/verify of the canonical strings
 *   exchange_gateway.c   /r1/... (consumer side) and /peer/v1/r1/...
 *                        (provider side); metaservices
 *   exchange_log*.c      the message log, a user of the kernel's chain log
 *                        (group commit, hash chain), with RFC 3161 sealing
 *                        in batches, verify, archive (exchange_log_int.h)
 *   exchange_pubsub.c    GovStack IM publish/subscribe
 *   exchange_config.c    the [exchange] configuration section
 *   exchange.c           the module's one descriptor: its route table, its
 *                        migrations, its hooks (each calls the parts in
 *                        order) and the CLI dispatch
 */
#ifndef EGOV_EXCHANGE_EXCHANGE_INT_H
#define EGOV_EXCHANGE_EXCHANGE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/b64url.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/db.h"
#include "core/err.h"
#include "core/http.h"
#include "core/module.h"

/* ---- identifiers ----------------------------------------------------- */

/* Each part: 1..64 of [A-Za-z0-9_.-] (no '/'). */
#define EXCHANGE_PART_MAX 64
/* INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICE plus NUL. */
#define EXCHANGE_ID_MAX (5 * (EXCHANGE_PART_MAX + 1))

typedef enum exchange_id_kind {
	EXCHANGE_ID_MEMBER = 3,    /* INSTANCE/CLASS/CODE */
	EXCHANGE_ID_SUBSYSTEM = 4, /* INSTANCE/CLASS/CODE/SUBSYSTEM */
	EXCHANGE_ID_SERVICE = 5,   /* INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICE */
} exchange_id_kind;

/* Whether s is a well-formed identifier of that kind. */
bool exchange_id_valid(const char *s, exchange_id_kind kind);
/* Copies the first n parts of id into out (e.g. the member of a subsystem).
 * EGOV_EINVAL if id has fewer parts. */
egov_err exchange_id_prefix(const char *id, int n, char out[EXCHANGE_ID_MAX]);

/* ---- the global configuration (exchange_conf.c) ------------------------ */

typedef struct exchange_conf exchange_conf; /* parsed, immutable, refcounted */

/* The conf currently in force on this node, with a reference taken (NULL if
 * none has been loaded or it has expired: *why then says which, as a
 * problem code "exchange.conf_missing" / "exchange.conf_expired").
 * Release with exchange_conf_put(). Safe from any thread. */
exchange_conf *exchange_conf_get(const char **why);
void exchange_conf_put(exchange_conf *cf);

int64_t exchange_conf_version(const exchange_conf *cf);
const char *exchange_conf_instance(const exchange_conf *cf);
const char *exchange_conf_tsa_url(const exchange_conf *cf); /* "" if none */

typedef struct exchange_cert {
	char usage[8];        /* "sign" or "tls" */
	char serial[40];
	char sha256[65];      /* SHA-256 of the DER certificate, hex */
	const char *pem;      /* owned by the conf */
} exchange_cert;

typedef struct exchange_subsystem {
	char id[EXCHANGE_ID_MAX];
	const char *gateway_url;   /* "https://host:port" of its gateway */
	const exchange_cert *certs;
	size_t ncerts;
} exchange_subsystem;

typedef struct exchange_service {
	char id[EXCHANGE_ID_MAX];  /* a subsystem id plus /SERVICE */
	char log_mode[8];          /* "full" or "digest" */
	int64_t max_body;          /* bytes, request and response */
	const char *openapi;       /* JSON text or NULL */
	const char *title;         /* or "" */
	/* How long the provider waits for the back-end (ms), published so
	 * the consumer waits as long; 0 in an older configuration without
	 * it: this node's exchange.backend_timeout_ms. */
	int64_t timeout_ms;
} exchange_service;

/* Lookups; NULL when unknown. Pointers live as long as the reference. */
const exchange_subsystem *exchange_conf_subsystem(const exchange_conf *cf, const char *id);
const exchange_service *exchange_conf_service(const exchange_conf *cf, const char *id);
bool exchange_conf_member_known(const exchange_conf *cf, const char *member_id);
/* Whether client may call method on path of service (access rights). */
bool exchange_conf_allowed(const exchange_conf *cf, const char *client, const char *service, const char *method,
			   const char *path);
/* The certificate of a subsystem by usage whose SHA-256 (hex) is sha256;
 * NULL if it is not in the configuration. */
const exchange_cert *exchange_conf_cert(const exchange_conf *cf, const char *subsystem, const char *usage,
					const char *sha256);
/* Iteration for the metaservices. fn returning non-zero stops. */
void exchange_conf_each_subsystem(const exchange_conf *cf, int (*fn)(void *ctx, const exchange_subsystem *s),
				  void *ctx);
void exchange_conf_each_service(const exchange_conf *cf, const char *subsystem,
				int (*fn)(void *ctx, const exchange_service *s), void *ctx);
/* The access rules of client on services of provider subsystem. */
typedef struct exchange_access {
	char client[EXCHANGE_ID_MAX];
	char service[EXCHANGE_ID_MAX];
	const char *methods; /* "GET,POST" or "*" */
	const char *paths;   /* comma-separated: "*", exact paths, or prefixes ending in a slash and a star */
} exchange_access;
void exchange_conf_each_access(const exchange_conf *cf, int (*fn)(void *ctx, const exchange_access *a), void *ctx);

/* ---- keys and signatures (exchange_keys.c) ------------------------------ */

/* Signs msg with the signing key of local subsystem sub (ES256, raw r||s,
 * base64url without padding in out, NUL-terminated). EGOV_ENOTFOUND if this
 * gateway holds no key for sub. *cert_sha256 (may be NULL) gets the hex
 * SHA-256 of the certificate that goes with the key. */
egov_err exchange_sign(const char *sub, const void *msg, size_t len, char out[128], char cert_sha256[65]);
/* Verifies an ES256 signature (base64url raw r||s) over msg with the public
 * key of a PEM certificate. EGOV_EAUTH if it does not verify. */
egov_err exchange_verify(const char *cert_pem, const void *msg, size_t len, const char *sig_b64);
/* Whether this gateway holds a signing key and certificate for sub. */
bool exchange_has_key(const char *sub);

/* ---- the message log (exchange_log.c) ------------------------------------ */

typedef struct exchange_log_rec {
	const char *side;              /* "consumer" or "provider" */
	const char *message_id;
	const char *client;            /* subsystem id */
	const char *service;           /* service id */
	const char *method;
	const char *path;              /* after the service, with ?query */
	const char *represented_party; /* "" if none */
	const char *data_subject;      /* "" if none */
	const char *purpose;           /* "" if none */
	int status;                    /* the response's status */
	const char *request_sig;       /* base64url */
	const char *request_signer_cert; /* sha256 hex of the signing certificate */
	const char *request_body_sha256;
	const void *request_body;      /* NULL in digest mode */
	size_t request_body_len;
	const char *response_sig;
	const char *response_signer_cert;
	const char *response_body_sha256;
	const void *response_body;
	size_t response_body_len;
	const char *request_signed_at, *response_signed_at; /* RFC 3339 */
	/* Both are lines of the canonical texts the signatures cover, so the
	 * log keeps them to verify the signatures later; NULL means "". */
	const char *request_content_type;
	const char *response_content_type;
} exchange_log_rec;

/* Queues a record for the log writer (it copies rec and everything it
 * points to) and returns at once; done(ctx, err) runs on the writer's
 * thread once the record is durable (err EGOV_OK) or failed, and must not
 * block. EGOV_ECONFLICT when (side, client, message_id) is already logged:
 * a replay. Records are appended by one writer thread in groups (one
 * commit for many), hash-chained. If queuing itself fails, the error is
 * returned and done is not called: EGOV_EINVAL for a malformed record,
 * EGOV_EBUSY when the writer is too far behind, EGOV_EUNAVAILABLE when the
 * log is not running. Full mode is a non-NULL body on either side. */
egov_err exchange_log_append_async(const exchange_log_rec *rec, void (*done)(void *ctx, egov_err err), void *ctx);
/* The same, waiting (not on an HTTP worker). */
egov_err exchange_log_append(const exchange_log_rec *rec);
/* Remembers the certificate (PEM) behind a signer hash, so the log can be
 * verified offline later. Idempotent; cheap when already known. */
egov_err exchange_log_cert(const char *sha256, const char *pem);
/* `egov exchange log ARGS` (argv[0] = "log"). Returns the exit status. */
int exchange_log_command(int argc, char **argv, db *d);
/* Whether new exchanges are refused because timestamping has failed for
 * longer than exchange.timestamp_grace_s. */
bool exchange_log_sealing_overdue(void);
/* Starts the log's writer and sealer threads on d (the module's start
 * hook does it on a gateway). Until then appends fail EGOV_EUNAVAILABLE. */
egov_err exchange_log_start(db *d, const egov_config *cfg);
/* Commits what is queued and stops both threads; call before db_close().
 * Appends after this fail EGOV_EUNAVAILABLE. */
void exchange_log_stop(void);
/* The log's /metrics families, once it was started in this process. */
egov_err exchange_log_metrics(buf *out);

/* ---- publish/subscribe (exchange_pubsub.c) ------------------------------ */

/* Whether SERVICE code (the 5th part of a service id) is one of the
 * GovStack IM PubSub prefixes this gateway answers itself ("api", "pub",
 * "pull") instead of forwarding to a back-end. */
bool exchange_pubsub_reserved(const char *service_code);
/* The provider gateway, after it verified the signature and the access
 * right, hands a pub/sub call to the room: provider is the subsystem that
 * owns it, client the calling subsystem, path what follows the service
 * code (e.g. "/v1/eventType"). Runs on the blocking pool (may touch the
 * database). Fills *status, *out (body) and *content_type. */
egov_err exchange_pubsub_handle(const char *provider, const char *client, const char *service_code,
				const char *method, const char *path, const char *message_id, const void *body,
				size_t len, int *status, buf *out, const char **content_type);
/* `egov exchange pubsub ARGS`. Returns the exit status. */
int exchange_pubsub_command(int argc, char **argv, db *d);
/* The consumer gateway calls this before it forwards a call of its local
 * client to a reserved pub/sub service of provider. A subscription (POST
 * or PATCH /v1/subs/{eventType} on service code "api") that carries a push
 * URL (the client's X-Egov-Push-Url header: where its back-end takes the
 * pushes) records it here, on the subscriber's side: the only place a push
 * is ever forwarded to. push_url NULL or another call: nothing to do,
 * EGOV_OK. EGOV_EINVAL for a URL that is not a plain http(s) URL (answer
 * 400 pubsub.push_url_invalid, field X-Egov-Push-Url). Touches the
 * database (the calling thread's connection). */
egov_err exchange_pubsub_consumer_note(const char *client, const char *provider, const char *service_code,
				       const char *method, const char *path, const char *push_url);

/* ---- signing the wire format (exchange_gateway.c) ------------------------ */

/* Builds the canonical request or response text of docs/exchange.md into
 * out (reset first). Shared by the gateway and pub/sub deliveries. */
typedef struct exchange_canon_req {
	const char *message_id, *client, *service, *method, *path, *content_type, *represented_party,
		*data_subject, *purpose, *signed_at, *body_sha256;
} exchange_canon_req;
typedef struct exchange_canon_resp {
	const char *message_id, *service, *content_type, *request_sig, *signed_at, *body_sha256;
	int status;
} exchange_canon_resp;
egov_err exchange_canon_request(const exchange_canon_req *c, buf *out);
egov_err exchange_canon_response(const exchange_canon_resp *c, buf *out);

/* ---- the gateway's own parts (exchange_gateway.c, exchange_meta.c) -------- */

/* `egov exchange backend set|list|remove ...` (argv[0] = "backend"): the
 * provider gateway's back-end URL per service. Returns the exit status. */
int exchange_gateway_command(int argc, char **argv, db *d);
/* The back-end table (IF NOT EXISTS), one of the module's migrations. */
extern const char exchange_backend_schema[];
/* The gateway's part of the module's start and stop hooks: on a gateway,
 * the back-ends, the replay window and the gateway's threads. */
egov_err exchange_gateway_start(const egov_config *c);
void exchange_gateway_stop(void);
/* Its routes' handlers, in exchange.c's table: /r1/... (consumer side),
 * /peer/v1/r1/... (provider side, and the pub/sub rooms), /listClients,
 * and the head hook that applies a service's max_body. */
egov_err exchange_consumer_call(req *r);
egov_err exchange_provider_call(req *r);
egov_err exchange_list_clients_root(req *r);
egov_err exchange_service_limit_head(req *r);

/* Metaservices (GovStack IM Directory Services) on the consumer gateway.
 * parts are the decoded path segments after /r1 (nparts of them); client
 * the caller's X-Road-Client ("" if none). Answers and sets *handled when
 * the path is a metaservice; otherwise leaves r alone. */
egov_err exchange_meta_answer(req *r, const exchange_conf *cf, const char *client, const char *const *parts,
			      size_t nparts, bool *handled);

/* Operational figures (/metrics). side: 0 consumer, 1 provider. client and
 * service must be ids found in the configuration (bounded label set). */
void exchange_metrics_observe(const char *client, const char *service, int side, int status, int64_t dur_us,
			      size_t request_bytes, size_t response_bytes);
/* Counts a refusal by its problem code ("exchange.replay"). */
void exchange_metrics_error(const char *code);
egov_err exchange_metrics_write(buf *out);

/* ---- registry, configuration and key helpers (exchange_registry.c,
 * exchange_conf.c, exchange_keys.c) ------------------------------------------ */

struct evp_pkey_st; /* OpenSSL's EVP_PKEY */
struct x509_st;     /* OpenSSL's X509 */

/* Whether an event type of the configuration is known (id as a service id:
 * the owner subsystem plus /NAME). */
bool exchange_conf_event_type_known(const exchange_conf *cf, const char *id);
/* A service's back-end timeout as published: stored (ms) when set, else
 * this node's exchange.backend_timeout_ms. */
int64_t exchange_service_timeout_ms(int64_t stored);
/* When the configuration in force was generated and expires (unix us). */
int64_t exchange_conf_expires_us(const exchange_conf *cf);
int64_t exchange_conf_generated_us(const exchange_conf *cf);

/* Parses and verifies a signed global configuration (JWS, docs/exchange.md):
 * ES256 by the certificate pinned_pem (the x5c must be that certificate),
 * instance as configured, not expired at now_us. On success *out holds one
 * reference. On refusal EGOV_EAUTH (signature, certificate) or EGOV_EINVAL
 * (shape, instance, expired) with *why one of "exchange.conf_signature",
 * "exchange.conf_invalid", "exchange.conf_instance", "exchange.conf_expired". */
egov_err exchange_conf_parse(const char *jws, size_t len, const char *pinned_pem, const char *instance,
			     int64_t now_us, exchange_conf **out, const char **why);
/* Makes cf (a reference the caller gives up) the configuration in force,
 * unless its version is lower than the current one (EGOV_ECONFLICT, cf
 * released). */
egov_err exchange_conf_install(exchange_conf *cf);
/* Drops the configuration in force (tests, shutdown). */
void exchange_conf_clear(void);
/* Central side: the registry's global configuration payload (JSON) as of
 * now_us, leaving out revoked and expired certificates; *version is the
 * registry version it shows. */
egov_err exchange_conf_build(db_conn *c, int64_t now_us, buf *payload, int64_t *version);
/* Central side: signs a payload as a global configuration JWS with key and
 * its certificate (PEM) in the header's x5c. */
egov_err exchange_conf_sign(struct evp_pkey_st *key, const char *cert_pem, const char *payload, buf *jws);
/* Central side: the current signed configuration (cached until the registry
 * or the certificates' status change, or it is half-way to expiry). The
 * caller frees *jws. EGOV_ENOTFOUND when DATA/exchange/central.key is
 * missing (run egov exchange central init). */
egov_err exchange_conf_current(db_conn *c, char **jws, size_t *len, int64_t *version);
/* Gateway side: starts the download thread, after loading
 * DATA/exchange/globalconf.jws if present. */
egov_err exchange_conf_start(const egov_config *cfg);
/* Gateway side: one download now (the thread's step; the CLI and tests).
 * *why as for exchange_conf_parse, or "exchange.conf_unreachable". */
egov_err exchange_conf_refresh(const egov_config *cfg, const char **why);
/* `egov exchange conf show`. */
int exchange_conf_command(int argc, char **argv, db *d);
egov_err exchange_http_globalconf(req *r);

/* core/b64url.h's encoder with the output size checked: the length written,
 * 0 when outlen is too small (it needs 4/3 n + 2). Decode: b64url_decode. */
size_t exchange_b64url_encode(const void *in, size_t n, char *out, size_t outlen);
/* ES256 (raw r||s, base64url) with an EVP_PKEY. */
egov_err exchange_es256_sign(struct evp_pkey_st *key, const void *msg, size_t len, char out[128]);
egov_err exchange_es256_verify(struct evp_pkey_st *key, const void *msg, size_t len, const char *sig_b64);
/* DATA/exchange/<rel> into out; exchange_dirs() makes DATA/exchange and
 * DATA/exchange/keys (0700). */
egov_err exchange_path(char *out, size_t len, const char *rel);
egov_err exchange_dirs(void);
/* DATA/exchange/keys/<sub with '/' as '+'>.<ext> */
egov_err exchange_key_path(const char *sub, const char *ext, char *out, size_t len);
/* Writes a file atomically and durably (temp, fsync, rename, fsync dir). */
egov_err exchange_file_write(const char *path, const void *data, size_t len, int mode);
/* Reads a whole file into out (initialised here, capped at max; NUL-
 * terminated). EGOV_ENOTFOUND if missing. */
egov_err exchange_file_read(const char *path, size_t max, buf *out);
/* P-256 keys: load (must be mode 0600: EGOV_ECORRUPT otherwise), create
 * (written 0600), a CSR for one; certificates from PEM; SHA-256 of the DER. */
egov_err exchange_key_load(const char *path, struct evp_pkey_st **out);
egov_err exchange_key_create(const char *path, struct evp_pkey_st **out);
egov_err exchange_csr_pem(struct evp_pkey_st *key, const char *cn, buf *out);
struct x509_st *exchange_pem_cert(const char *pem, size_t len);
egov_err exchange_cert_sha256(struct x509_st *x, char out[65]);
/* Forgets the cached signing keys (tests). */
void exchange_keys_forget(void);
/* `egov exchange keygen|cert install`; -1 when argv is not one of them. */
int exchange_keys_command(int argc, char **argv);

/* The registry (central role). */
typedef enum exchange_reg_kind {
	EXCHANGE_REG_MEMBER,
	EXCHANGE_REG_SUBSYSTEM,
	EXCHANGE_REG_SERVICE,
	EXCHANGE_REG_EVENT_TYPE,
	EXCHANGE_REG_ACCESS,
	EXCHANGE_REG_CERT,
} exchange_reg_kind;

/* One thing to add or remove; which members count depends on kind. */
typedef struct exchange_reg_item {
	exchange_reg_kind kind;
	const char *id;          /* member, subsystem, service, event type; cert: its subsystem */
	const char *name;        /* member */
	const char *gateway;     /* subsystem */
	const char *title, *log_mode, *openapi; /* service; NULL = "", "full", none */
	int64_t max_body;        /* service; 0 = 1 MiB */
	int64_t timeout_ms;      /* service; 0 = exchange.backend_timeout_ms */
	const char *client, *service, *methods, *paths; /* access */
	const char *usage, *serial, *pki_serial, *not_after, *pem, *sha256; /* cert */
} exchange_reg_item;

/* Why the registry refused: a problem code, the field, a hint. */
typedef struct reg_why {
	const char *code, *field, *detail;
} reg_why;

/* The registry's schema, versions 1 and 2 of the module's migrations. */
extern const char exchange_registry_schema_v1[], exchange_registry_schema_v2[];
/* All of the module's migrations (exchange.c), for unit tests. */
const db_migration *exchange_migrations(size_t *n);
bool exchange_gateway_url_valid(const char *s);
bool exchange_methods_valid(const char *s);
bool exchange_paths_valid(const char *s);
egov_err exchange_registry_version(db_conn *c, int64_t *version);
/* Adds (access: grants or replaces, *replaced says which) in one
 * transaction with the version bump. EGOV_EINVAL, EGOV_ENOTFOUND (the
 * parent), EGOV_ECONFLICT (exists) with *why. */
egov_err exchange_reg_add(db_conn *c, const exchange_reg_item *in, bool *replaced, reg_why *why);
/* Removes; EGOV_ENOTFOUND, EGOV_ECONFLICT (still in use) with *why. */
egov_err exchange_reg_remove(db_conn *c, const exchange_reg_item *in, reg_why *why);
/* Issues a certificate for a subsystem from a CSR through the platform CA
 * (profile system_sign or system_tls_client, owner = the subsystem id) and
 * registers it; *pem_out (malloc'd) is the certificate. */
egov_err exchange_reg_cert_issue(db_conn *c, const char *sub, const char *usage, const char *csr, size_t len,
				 char sha[65], char **pem_out, reg_why *why);
/* Registers a certificate issued elsewhere; it must chain to the platform
 * CA or a trust anchor. */
egov_err exchange_reg_cert_add(db_conn *c, const char *sub, const char *usage, const char *pem, char sha[65],
			       reg_why *why);
/* Writes one item (id given) or a list (filter: a parent id, or NULL).
 * A certificate by id (its SHA-256) is its registration for the subsystem
 * filter (NULL: the first), with "subsystems": all it is registered for. */
egov_err exchange_reg_write(db_conn *c, exchange_reg_kind kind, const char *id, const char *filter, jw *w,
			    bool *found);
egov_err exchange_reg_audit(const char *actor, exchange_reg_kind kind, const char *verb, const exchange_reg_item *in,
			    const char *request_id);
/* Makes DATA/exchange/central.key and .crt (platform CA, system_sign);
 * idempotent. msg says what happened. */
egov_err exchange_central_init(db_conn *c, char *msg, size_t msglen);
int exchange_registry_command(int argc, char **argv, db *d);
int exchange_central_command(int argc, char **argv, db *d);
/* Admin API handlers (routes in exchange.c). */
egov_err exchange_http_list(req *r);
egov_err exchange_http_get(req *r);
egov_err exchange_http_add(req *r);
egov_err exchange_http_remove(req *r);
egov_err exchange_http_cert_add(req *r);
egov_err exchange_http_status(req *r);
/* The staff console (exchange_web.c): the registry page the console
 * serves (the descriptor's .pages) and GET /api/v1/exchange/console (the
 * configuration in force and each certificate's standing). */
#define EXCHANGE_WEB_NPAGES 1
extern const console_page exchange_web_pages[EXCHANGE_WEB_NPAGES];
egov_err exchange_web_console(req *r);

/* ---- the gateway's parsing of outside input (exchange_wire.c) ----------------
 * Pure functions (buf, arena and utf8 only), shared by the gateway and the
 * fuzz target tests/fuzz/fuzz_exchange.c. */

#define EXCHANGE_MSGID_MAX 64      /* X-Road-Id: 1..64 of [A-Za-z0-9._:-] */
#define EXCHANGE_SIGNED_AT_MAX 32  /* X-Egov-Signed-At, with its NUL */
#define EXCHANGE_SIG_MAX 128       /* X-Egov-Signature (base64url), with its NUL */

bool exchange_msgid_valid(const char *s);
/* Free text in a header: at most max bytes of UTF-8, no control
 * characters (it goes into a signed line-based text and into the log). */
bool exchange_text_valid(const char *s, size_t max);
/* Splits a router {*rest} value (decoded segments joined by '/') in place
 * into at most max parts; returns how many. */
size_t exchange_split_rest(char *rest, const char **parts, size_t max);
/* Joins parts[0..n) with '/'; false if it does not fit. */
bool exchange_join_id(const char *const *parts, size_t n, char out[EXCHANGE_ID_MAX]);
/* The raw (still percent-encoded) path-and-query of target after its first
 * nsegs segments: what is signed and forwarded. "/" (plus the query) when
 * nothing follows; NULL when target has fewer segments or a is full. */
const char *exchange_raw_tail(arena *a, const char *target, int nsegs);
/* "/" plus parts[skip..nparts) joined by '/': the decoded path that access
 * rules are matched against (a decoded '?' written back as "%3F", so that
 * it is never read as the start of a query). */
const char *exchange_decoded_tail(arena *a, const char *const *parts, size_t nparts, size_t skip);
/* The shape of a provider's signature headers: a valid message id, a
 * signed-at that fits (parsed later), a signer certificate hash (64
 * lowercase hex) and a base64url signature that fits. */
bool exchange_sig_headers_valid(const char *mid, const char *signed_at, const char *cert, const char *sig);
/* Access rules: whether method is in a list like "GET,POST" or "*";
 * whether path (a query after '?' is ignored) matches "*", an exact path
 * or a prefix ending in a slash and a star. A path with a ".." segment
 * never matches. */
bool exchange_rule_method_allowed(const char *list, const char *method);
bool exchange_rule_path_allowed(const char *list, const char *path);

/* ---- the replay window (exchange_gateway.c) ------------------------------------ */

/* Whether (client, message id) was already seen on this gateway's receiving
 * side (service calls and pub/sub pushes alike): 0 the first time (then it
 * is remembered until expires, UTC microseconds), 1 if seen and not yet
 * expired, -1 when the window is full. Reloaded from the message log at
 * start, so a replay across a restart is refused too. Thread-safe. */
int exchange_replay_seen(const char *client, const char *message_id, int64_t now, int64_t expires);

/* ---- the provider's recent message ids (exchange_recent.c) ------------------- */

/* Calls fn for each (client, message id, request signed-at) the provider
 * side of the message log recorded at or after since_us, newest first,
 * until fn returns non-zero; *count (may be NULL) gets how many. */
egov_err exchange_log_recent(db_conn *c, int64_t since_us, int (*fn)(void *ctx, const char *client,
								     const char *message_id, int64_t signed_at_us),
			     void *ctx, size_t *count);

/* ---- module glue (exchange.c, exchange_config.c) ----------------------------- */

/* The node's database and config (set by the start hook). */
db *exchange_db(void);
const egov_config *exchange_cfg(void);

/* The [exchange] section's values (exchange_config.c). */
typedef struct exchange_config {
	char *instance;            /* "MO" */
	int conf_validity_s;       /* central: lifetime of a published global configuration */
	char *central_url;         /* gateway: base URL of the central node */
	char *central_cert;        /* gateway: PEM of the central's configuration signing certificate */
	char *gateway_url;         /* gateway: its own peer URL as registered ("https://host:port") */
	int conf_refresh_s;        /* gateway: seconds between downloads */
	int clock_skew_s;          /* accepted difference of signed-at times */
	int backend_timeout_ms;    /* default back-end timeout */
	int timestamp_interval_s;  /* seconds between seals of the message log */
	int timestamp_grace_s;     /* unsealed this long: refuse new exchanges */
	int retry_ms;              /* pub/sub: first redelivery delay; doubles */
	int retry_max_s;           /* pub/sub: longest redelivery delay */
} exchange_config;
extern const config_section exchange_config_section;
/* The [exchange] values of cfg; the keys' defaults when cfg is NULL or
 * holds no such section (a bare egov_config). Never NULL. */
const exchange_config *exchange_settings(const egov_config *cfg);

#endif
